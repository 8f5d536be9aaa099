"""float32 against float64 on the README's problem: clusters, convergence, speed.

    python asv_benchmarks/float32_report.py                  # N = 2000 and 4000
    python asv_benchmarks/float32_report.py --sizes 2000 --speed-sizes 2000 4000

Data: make_blobs(n_samples=N, n_features=8, centers=10, cluster_std=1.0,
random_state=0), random_state=0 everywhere. Prints two markdown tables:

1. Convergence at scikit-learn's defaults (damping 0.5, max_iter 200) and
   with the remedies (damping 0.7, 0.9, "auto", max_iter=1000): fastap in
   float64 and float32 (the default lean engine), scikit-learn on float64
   and on float32 input (which it computes in float64): converged,
   iterations, clusters, and whether the labels equal scikit-learn's
   float64 labels at the same settings (adjusted Rand index).
2. Speed where both converge to the same clusters (damping 0.9): fit time
   of fastap float64 and float32 (``--n-jobs`` threads, warm kernel cache: the kernels
   are loaded by a small fit first; best of ``--repeats``) against
   scikit-learn's (one run), with the ratio, in this one process.

The machine's load average is printed next to the tables: on a shared
machine the times (not the clusters) move with it.
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from fastap import AffinityPropagation

N_JOBS = None  # fastap's threads (--n-jobs)

SETTINGS = [
    ("defaults", {}),
    ("damping=0.7", {"damping": 0.7}),
    ("damping=0.9", {"damping": 0.9}),
    ('damping="auto"', {"damping": "auto"}),
    ("max_iter=1000", {"max_iter": 1000}),
]


def fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        estimator.fit(X)
        return time.perf_counter() - started


def describe(model, reference_labels):
    agreement = adjusted_rand_score(reference_labels, model.labels_)
    converged = getattr(model, "converged_", model.n_iter_ < model.max_iter)
    return (f"{'yes' if converged else 'no'}, {model.n_iter_}, "
            f"{len(model.cluster_centers_indices_)}, ARI {agreement:.2f}")


def convergence_table(sizes):
    print("| N | setting | scikit-learn float64: converged, iterations, clusters | "
          "scikit-learn float32 input | fastap float64 | fastap float32 |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        X, _ = make_blobs(n_samples=n, n_features=8, centers=10, cluster_std=1.0, random_state=0)
        for name, options in SETTINGS:
            sklearn_options = dict(options)
            if sklearn_options.get("damping") == "auto":
                sklearn_options.pop("damping")  # scikit-learn has no "auto": its default
            cells = []
            reference = SklearnAP(random_state=0, **sklearn_options)
            fit(reference, X)
            for model, data in [
                (reference, None),
                (SklearnAP(random_state=0, **sklearn_options), X.astype(np.float32)),
                (AffinityPropagation(random_state=0, n_jobs=N_JOBS, **options), X),
                (AffinityPropagation(random_state=0, n_jobs=N_JOBS, **options), X.astype(np.float32)),
            ]:
                if data is not None:
                    fit(model, data)
                cells.append(describe(model, reference.labels_))
            if options.get("damping") == "auto":
                cells[0] = cells[1] = "(no damping='auto': its defaults)"
            print(f"| {n} | {name} | " + " | ".join(cells) + " |", flush=True)


def speed_table(sizes, repeats):
    print("| N | scikit-learn float64 | fastap float64 | fastap float32 | clusters (all) | "
          "speed-up float64 / float32 |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        X, _ = make_blobs(n_samples=n, n_features=8, centers=10, cluster_std=1.0, random_state=0)
        for dtype in (np.float64, np.float32):  # load the kernels from the disk cache
            fit(AffinityPropagation(random_state=0, damping=0.9, n_jobs=N_JOBS),
                X[:500].astype(dtype))
        reference = SklearnAP(random_state=0, damping=0.9)
        sklearn_seconds = fit(reference, X)
        times, clusters = {}, [len(reference.cluster_centers_indices_)]
        for dtype in (np.float64, np.float32):
            model = AffinityPropagation(random_state=0, damping=0.9, n_jobs=N_JOBS)
            times[dtype] = min(fit(model, X.astype(dtype)) for _ in range(repeats))
            assert model.converged_
            clusters.append(len(model.cluster_centers_indices_))
            if adjusted_rand_score(reference.labels_, model.labels_) != 1.0:
                clusters.append("labels differ")
        print(f"| {n} | {sklearn_seconds:.3f} s | {times[np.float64]:.3f} s | "
              f"{times[np.float32]:.3f} s | {' / '.join(map(str, clusters))} | "
              f"{sklearn_seconds / times[np.float64]:.1f}x / "
              f"{sklearn_seconds / times[np.float32]:.1f}x |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000],
                        help="sizes of the convergence table")
    parser.add_argument("--speed-sizes", type=int, nargs="*", default=None,
                        help="sizes of the speed table (default: --sizes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="fastap's threads (default: all cores; 1 on a busy machine)")
    args = parser.parse_args()
    global N_JOBS
    N_JOBS = args.n_jobs
    print(f"load average before: {os.getloadavg()}\n")
    convergence_table(args.sizes)
    print(f"\nload average: {os.getloadavg()}\n")
    speed_table(args.sizes if args.speed_sizes is None else args.speed_sizes, args.repeats)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
