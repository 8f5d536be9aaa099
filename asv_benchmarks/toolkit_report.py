"""Numbers for the preference and convergence toolkit; prints markdown tables.

    python asv_benchmarks/toolkit_report.py                 # all sections (~10 min on 2 cores)
    python asv_benchmarks/toolkit_report.py --quick         # small sizes, a minute

1. Target number of clusters: total iterations of the bisection with warm
   starts (each step continues from the previous messages) against the same
   bisection restarted from zero messages at every step (apclusterK-style),
   on the same similarities, noise and steps logic.
2. Adaptive damping on overlapping blobs where scikit-learn's defaults do
   not converge: fixed damping 0.5 (identical to scikit-learn's result for
   float64, see tests/test_parity.py) against ``damping="auto"``.
3. The cost of ``record_history=True``.
"""

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from fastap import AffinityPropagation, _dense, _resources, _run, _search, _similarity


def warmed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, _ = make_blobs(300, random_state=0)
        AffinityPropagation(random_state=0, n_clusters=3).fit(X)
        AffinityPropagation(random_state=0, record_history=True, damping="auto").fit(X)


def search_table(problems, damping, max_iter, convergence_iter):
    print(f"\n### n_clusters search, damping={damping}, max_iter={max_iter} per step, "
          f"convergence_iter={convergence_iter}\n")
    print("| N | centers | target K | warm: iterations / steps / K / s | "
          "cold: iterations / steps / K / s | iterations cold / warm |")
    print("|---|---|---|---|---|---|")
    ratios = []
    sums = {True: 0, False: 0}
    hits = {True: 0, False: 0}
    for n, centers, target, seed in problems:
        X, _ = make_blobs(n_samples=n, n_features=8, centers=centers, cluster_std=2.0,
                          random_state=seed)
        base = _similarity.negative_squared_euclidean(X, np.float64)
        cells = []
        totals = {}
        for warm in (True, False):
            S = base.copy()
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state = _dense.DenseMessageState(
                    S, np.asarray(0.0), damping=damping, random_state=np.random.RandomState(0),
                    n_threads=_resources.resolve_n_threads(None),
                )
                options = _run.RunOptions(damping=damping, max_iter=max_iter,
                                          convergence_iter=convergence_iter)
                result = _search.NClustersSearch(state, target, options, warm=warm).run()
                steps = result.search_steps
            seconds = time.perf_counter() - started
            total = sum(step.n_iter for step in steps)
            totals[warm] = total
            sums[warm] += total
            hits[warm] += len(result.cluster_centers_indices) == target
            cells.append(f"{total} / {len(steps)} / {len(result.cluster_centers_indices)} / "
                         f"{seconds:.1f}")
        ratio = totals[False] / totals[True]
        ratios.append(ratio)
        print(f"| {n} | {centers} | {target} | {cells[0]} | {cells[1]} | {ratio:.1f}x |")
        sys.stdout.flush()
    print(f"\nMedian ratio: {statistics.median(ratios):.1f}x; all problems together: "
          f"{sums[False]} / {sums[True]} iterations cold / warm ({sums[False] / sums[True]:.1f}x); "
          f"target hit: warm {hits[True]}/{len(problems)}, cold {hits[False]}/{len(problems)}.")
    return ratios


def damping_table(n, seeds, max_iter):
    print(f"\n### Adaptive damping: make_blobs(n_samples={n}, n_features=2, centers=50, "
          f"cluster_std=1.0, center_box=(-20, 20)), max_iter={max_iter}\n")
    print("| seed | damping 0.5: converged / iterations / clusters / ARI | "
          "auto: converged / iterations / clusters / ARI / final damping | time 0.5 / auto |")
    print("|---|---|---|---|")
    converged = {"fixed": 0, "auto": 0}
    for seed in seeds:
        X, truth = make_blobs(n_samples=n, n_features=2, centers=50, cluster_std=1.0,
                              center_box=(-20, 20), random_state=seed)
        cells, times = [], []
        for damping in (0.5, "auto"):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = AffinityPropagation(damping=damping, max_iter=max_iter,
                                            random_state=0).fit(X)
            times.append(time.perf_counter() - started)
            ari = adjusted_rand_score(truth, model.labels_)
            cell = (f"{'yes' if model.converged_ else 'no'} / {model.n_iter_} / "
                    f"{len(model.cluster_centers_indices_)} / {ari:.2f}")
            if damping == "auto":
                cell += f" / {model.damping_:.2f}"
            converged["auto" if damping == "auto" else "fixed"] += model.converged_
            cells.append(cell)
        print(f"| {seed} | {cells[0]} | {cells[1]} | {times[0]:.1f} / {times[1]:.1f} s |")
        sys.stdout.flush()
    print(f"\nConverged: damping 0.5 {converged['fixed']}/{len(seeds)}, "
          f"auto {converged['auto']}/{len(seeds)}.")


def history_cost(n, repeats):
    X, _ = make_blobs(n_samples=n, n_features=8, centers=10, cluster_std=1.0, random_state=0)
    times = {False: [], True: []}
    for _ in range(repeats):
        for record in (False, True):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = AffinityPropagation(random_state=0, record_history=record).fit(X)
            times[record].append(time.perf_counter() - started)
    plain, recorded = statistics.median(times[False]), statistics.median(times[True])
    print(f"\n### record_history cost, N={n} float64, {model.n_iter_} iterations, "
          f"medians of {repeats}\n")
    print(f"without: {plain:.2f} s, with: {recorded:.2f} s ({recorded / plain:.2f}x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--sections", nargs="+", default=["search", "damping", "history"],
                        choices=["search", "damping", "history"])
    parser.add_argument("--damping-seeds", nargs="+", type=int, default=list(range(5)))
    args = parser.parse_args()
    warmed()
    if args.quick:
        problems = [(500, 10, 5, 0), (500, 10, 20, 1)]
        search_table(problems, 0.5, 200, 15)
        damping_table(1000, [5], 600)
        history_cost(1000, 3)
        return
    problems = [
        (1000, 10, 3, 4), (1000, 10, 5, 1), (1000, 10, 20, 2), (1000, 50, 25, 3),
        (1000, 20, 10, 5), (1000, 20, 60, 6), (2000, 10, 5, 0), (2000, 10, 40, 0),
    ]
    if "search" in args.sections:
        search_table(problems, 0.5, 200, 15)
        search_table(problems, 0.9, 1000, 15)
    if "damping" in args.sections:
        damping_table(4000, args.damping_seeds, 1000)
    if "history" in args.sections:
        history_cost(4000, 3)


if __name__ == "__main__":
    main()
