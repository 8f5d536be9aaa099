"""The lean float32 engine against the stored-R float32 engine (issue 11.1).

    python asv_benchmarks/lean_report.py                      # all sections
    python asv_benchmarks/lean_report.py --sizes 8000 --skip-agreement
    python asv_benchmarks/lean_report.py --rss-only 8000 lean # one child process

Prints tables (markdown), each with the machine load next to it (other
processes share the cores: timings taken beside them are noisy; the ratios
are measured side by side in one process, engines alternating):

1. Per-iteration time, iterations 20-60 (``callback``-free: timestamps
   around ``iterate``), float32 make_blobs(N, 8 features, 10 centers),
   medians of ``--repeats`` runs per engine, ``--threads`` threads; with the
   3-transfer bandwidth floor (``A = A d + S``) measured in the same run.
2. Peak RSS of a whole float32 fit at ``--rss-size`` (each engine in its
   own process; VmHWM).
3. Agreement: labels of the lean engine against the stored engine on
   iris, wine, breast_cancer, digits (preference: median, and quantiles
   0.05 and 0.25) and make_blobs problems: ARI, clusters, iterations,
   convergence.
"""

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def load():
    return "load %.1f" % os.getloadavg()[0]


# --------------------------------------------------------------------------
# 1. Per-iteration time.
# --------------------------------------------------------------------------


def prepared_similarities(n_samples):
    from sklearn.datasets import make_blobs

    from fastap._dense import add_degeneracy_noise
    from fastap._kernels import setup
    from fastap._similarity import similarities

    X, _ = make_blobs(n_samples, n_features=8, centers=10, random_state=0)
    S = similarities(X.astype(np.float32), "euclidean", np.float32)
    preference = setup.median_of_matrix(S, 2)
    S.flat[:: n_samples + 1] = preference
    add_degeneracy_noise(S, np.random.RandomState(0))
    return S


def make_state(engine, S, n_threads):
    from fastap._dense import DenseMessageState
    from fastap._lean import LeanMessageState

    cls = LeanMessageState if engine == "lean" else DenseMessageState
    state = cls(S, damping=0.5, n_threads=n_threads, prepared=True)
    state.prepare()
    return state


def per_iteration(engine, S, n_threads, first=20, last=60):
    state = make_state(engine, S, n_threads)
    stamps = []
    for _ in range(last):
        state.iterate()
        stamps.append(time.perf_counter())
    state.release()
    return (stamps[last - 1] - stamps[first - 1]) / (last - first)


@numba.njit(parallel=True, cache=True)
def read_two_write_one(S, A, factor):
    """The 3-transfer floor: read S and A, write A (what a lean pass must move)."""
    for i in numba.prange(S.shape[0]):
        s_row, a_row = S[i], A[i]
        for k in range(s_row.size):
            a_row[k] = a_row[k] * factor + s_row[k]


def floor_three_transfers(S, repeats=7):
    A = np.zeros_like(S)
    factor = S.dtype.type(0.5)
    read_two_write_one(S, A, factor)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        read_two_write_one(S, A, factor)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def timing_section(sizes, repeats, n_threads):
    print(f"\n## Per iteration, float32, {n_threads} threads, iterations 20-60, "
          f"medians of {repeats} ({machine()})\n")
    print("| N | stored | lean | stored / lean | 3-transfer floor | lean / floor | load |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        S = prepared_similarities(n)
        runs = {"stored": [], "lean": []}
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            for engine in ("stored", "lean"):
                runs[engine].append(per_iteration(engine, S, n_threads))
            loads.append(os.getloadavg()[0])
        floor = floor_three_transfers(S)
        stored, lean = (float(np.median(runs[e])) for e in ("stored", "lean"))
        print(f"| {n} | {stored * 1e3:.1f} ms | {lean * 1e3:.1f} ms | {stored / lean:.2f}x | "
              f"{floor * 1e3:.1f} ms | {lean / floor:.2f}x | {min(loads):.1f}-{max(loads):.1f} |",
              flush=True)
        del S


# --------------------------------------------------------------------------
# 2. Peak RSS (one process per engine).
# --------------------------------------------------------------------------


def rss_child(n_samples, engine):
    from sklearn.datasets import make_blobs

    from fastap import AffinityPropagation

    X, _ = make_blobs(n_samples, n_features=8, centers=10, random_state=0)
    X = X.astype(np.float32)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(random_state=0, engine=engine, n_jobs=2, max_iter=60).fit(X)
    seconds = time.perf_counter() - started
    print(f"{peak_rss_mib():.0f} {seconds:.2f} {model.n_iter_}")


def peak_rss_mib():
    """This process's own peak RSS: VmHWM (ru_maxrss also counts the peak of
    the parent this process was forked from)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_section(n_samples):
    print(f"\n## Peak RSS of a float32 fit, N = {n_samples}, max_iter=60 ({machine()})\n")
    print("| engine | peak RSS | fit time | iterations | load |")
    print("|---|---|---|---|---|")
    for engine in ("stored", "lean"):
        output = subprocess.run(
            [sys.executable, __file__, "--rss-only", str(n_samples), engine],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        print(f"| {engine} | {output[0]} MiB | {output[1]} s | {output[2]} | {load()} |",
              flush=True)


# --------------------------------------------------------------------------
# 3. Agreement.
# --------------------------------------------------------------------------


def agreement_section():
    from sklearn import datasets
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from fastap import AffinityPropagation

    cases = []
    for name in ("iris", "wine", "breast_cancer", "digits"):
        X = getattr(datasets, f"load_{name}")().data
        for quantile in (None, 0.05, 0.25):
            cases.append((name, X, quantile))
    for n, centers, std in ((500, 5, 1.0), (1000, 10, 1.0), (2000, 10, 1.5), (1500, 8, 3.0)):
        X, _ = make_blobs(n, n_features=8, centers=centers, cluster_std=std, random_state=0)
        cases.append((f"blobs({n}, {centers}, std {std})", X, None))
    print(f"\n## Agreement, float32: lean against stored ({machine()}, {load()})\n")
    print("| data | preference | ARI | clusters stored / lean | iterations stored / lean "
          "| converged stored / lean |")
    print("|---|---|---|---|---|---|")
    for name, X, quantile in cases:
        X = np.asarray(X, dtype=np.float32)
        fits = {}
        for engine in ("stored", "lean"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits[engine] = AffinityPropagation(
                    random_state=0, engine=engine, preference_quantile=quantile, max_iter=1000,
                ).fit(X)
        stored, lean = fits["stored"], fits["lean"]
        ari = adjusted_rand_score(stored.labels_, lean.labels_)
        print(
            f"| {name} | {'median' if quantile is None else f'q={quantile}'} | {ari:.4f} | "
            f"{len(stored.cluster_centers_indices_)} / {len(lean.cluster_centers_indices_)} | "
            f"{stored.n_iter_} / {lean.n_iter_} | {stored.converged_} / {lean.converged_} |",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[8000, 16000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-size", type=int, default=8000)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--rss-only", nargs=2, metavar=("N", "ENGINE"))
    args = parser.parse_args()
    if args.rss_only:
        rss_child(int(args.rss_only[0]), args.rss_only[1])
        return
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"# Lean engine report: {machine()}, numba {numba.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if not args.skip_timing and args.sizes:
        timing_section(args.sizes, args.repeats, args.threads)
    if not args.skip_rss:
        rss_section(args.rss_size)
    if not args.skip_agreement:
        agreement_section()


if __name__ == "__main__":
    main()
