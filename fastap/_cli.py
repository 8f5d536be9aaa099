"""Command line: ``fastap demo``, ``fastap fit``, ``fastap info``, ``fastap warmup``."""

import argparse
import sys
import time
import warnings


def _peak_rss_mib():
    import resource

    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fit_and_time(estimator, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        estimator.fit(X)
        elapsed = time.perf_counter() - started
    converged = not any("did not converge" in str(w.message) for w in caught)
    return elapsed, converged


def demo(n_samples, dtype, compare, n_jobs):
    """Cluster a built-in dataset with fastap and, side by side, scikit-learn."""
    import numpy as np
    from sklearn.cluster import AffinityPropagation as SklearnAP
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from fastap import AffinityPropagation
    from fastap._engine import resolve_n_threads

    X, _ = make_blobs(
        n_samples=n_samples, n_features=8, centers=10, cluster_std=1.0, random_state=0
    )
    X = X.astype(dtype)
    print(
        f"Dataset: make_blobs(n_samples={n_samples}, n_features=8, centers=10, "
        f"cluster_std=1.0, random_state=0), {dtype}"
    )
    print(f"Threads: {resolve_n_threads(n_jobs)}\n")

    print("Compiling fastap's kernels (cached on disk after the first run)...", flush=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 600 samples: the parallel pass and the sampled median (used above
        # 512 samples) compile here, not inside the timed fit.
        AffinityPropagation(max_iter=2, random_state=0, n_jobs=n_jobs).fit(X[: min(600, n_samples)])
    print(f"  ready in {time.perf_counter() - started:.1f} s\n", flush=True)

    ours = AffinityPropagation(random_state=0, n_jobs=n_jobs)
    ours_time, _ = _fit_and_time(ours, X)
    n_clusters = len(ours.cluster_centers_indices_)
    rows = [("fastap", ours_time, ours.n_iter_, n_clusters, ours.converged_)]
    theirs = None
    if compare:
        theirs = SklearnAP(random_state=0)
        theirs_time, theirs_converged = _fit_and_time(theirs, X)
        rows.append(
            ("scikit-learn", theirs_time, theirs.n_iter_, len(theirs.cluster_centers_indices_),
             theirs_converged)
        )

    header = ("implementation", "fit time", "iterations", "clusters", "converged")
    print("{:<14} {:>10} {:>11} {:>9} {:>10}".format(*header))
    for name, elapsed, n_iter, n_clusters, converged in rows:
        print(f"{name:<14} {elapsed:>9.2f}s {n_iter:>11} {n_clusters:>9} {str(converged):>10}")
    if theirs is not None:
        same = np.array_equal(ours.labels_, theirs.labels_)
        ari = adjusted_rand_score(ours.labels_, theirs.labels_)
        print(
            f"\nSpeed-up: {rows[1][1] / rows[0][1]:.1f}x; identical labels: {same} "
            f"(adjusted Rand index {ari:.3f})"
        )
    print(f"Peak memory of this process: {_peak_rss_mib():.0f} MiB")
    return 0


def info():
    """Print versions, threads and where compiled kernels are cached."""
    import numba
    import numpy
    import scipy
    import sklearn

    import fastap
    from fastap._kernels._jit import cache_directory

    print(f"fastap {fastap.__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"numpy {numpy.__version__}, scipy {scipy.__version__}")
    print(f"scikit-learn {sklearn.__version__}")
    print(f"numba {numba.__version__}")
    print(f"threads: {numba.get_num_threads()} (of {numba.config.NUMBA_NUM_THREADS})")
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started yet (chosen at the first parallel call)"
    print(f"threading layer: {layer}")
    print(f"kernel cache: {cache_directory()}")
    return 0


def warmup_command():
    """Compile and cache the kernels for float32 and float64."""
    from fastap import warmup

    started = time.perf_counter()
    warmup()
    print(f"fastap kernels compiled and cached in {time.perf_counter() - started:.1f} s")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message):
        """Print ``prog: error: message`` and a pointer to --help; exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv=None):
    """Entry point of the ``fastap`` command."""
    from fastap import _cli_fit

    parser = _Parser(prog="fastap", description="Fast Affinity Propagation.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="cluster a built-in dataset; compare with scikit-learn"
    )
    demo_parser.add_argument("--n-samples", type=int, default=2000)
    demo_parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    demo_parser.add_argument("--n-jobs", type=int, default=None)
    demo_parser.add_argument(
        "--no-compare", action="store_true", help="skip the scikit-learn fit"
    )
    _cli_fit.add_parser(commands)
    commands.add_parser("info", help="versions, threads, kernel cache")
    commands.add_parser("warmup", help="compile and cache the kernels")
    args = parser.parse_args(argv)

    if args.command == "demo":
        if args.n_samples < 1:
            parser.error("--n-samples must be at least 1")
        return demo(args.n_samples, args.dtype, not args.no_compare, args.n_jobs)
    if args.command == "fit":
        return _cli_fit.fit_command(args)
    if args.command == "info":
        return info()
    return warmup_command()


if __name__ == "__main__":
    sys.exit(main())
