"""Command line: ``fastap demo``, ``fastap fit``, ``fastap info``, ``fastap warmup``.

Every subcommand ends a failure the user can cause or fix (a bad option, a
file, a problem too large for this machine's memory) with one line on
stderr and exit code 1 (2 for a bad option, options that contradict each
other or do not apply to the input: argparse's usage errors), Ctrl-C with exit code 130 and
no traceback, and a closed output pipe (``fastap info | head -2``) quietly,
as Unix tools do. Heavy modules (NumPy, Numba, scikit-learn) are imported
inside :func:`main`, so that an interruption while they load is handled too.
"""

import argparse
import os
import sys
import time
import warnings

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# What a shell reports for a process killed by SIGPIPE (128 + 13): the exit
# status of `yes | head` under `set -o pipefail`.
EXIT_BROKEN_PIPE = 141

# The demo's timings: best of this many runs (fewer when a run is slow).
DEMO_REPEATS = 3
DEMO_REPEAT_BUDGET_S = 20.0


def _peak_rss_mib():
    import resource

    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_load():
    """``(load, n_cores, busy)`` just before timing.

    ``load`` is the 1-minute load average (runnable processes, this one not
    yet counting), or with psutil installed the share of the CPUs in use
    over a quarter second, as cores; busy: other processes occupy at least
    a quarter of the cores, enough to slow a parallel fit and skew a
    comparison.
    """
    n_cores = os.cpu_count() or 1
    try:
        import psutil

        load = psutil.cpu_percent(interval=0.25) / 100 * n_cores
    except ImportError:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return None, n_cores, False
    return load, n_cores, load >= max(0.5, 0.25 * n_cores)


def _load_words(load, n_cores, busy):
    if load is None:
        return "machine load unknown"
    state = "busy: other processes are using the cores" if busy else "quiet"
    return f"{load:.1f} of {n_cores} cores in use ({state})"


def _best_time(fit_once, repeats=DEMO_REPEATS, budget=DEMO_REPEAT_BUDGET_S):
    """Best wall time of up to ``repeats`` runs (stops early past ``budget``
    seconds); returns ``(best_seconds, runs, last_result)``."""
    times, result = [], None
    while len(times) < repeats and sum(times) < budget:
        started = time.perf_counter()
        result = fit_once()
        times.append(time.perf_counter() - started)
    return min(times), len(times), result


def speedup_words(theirs_seconds, ours_seconds, load, n_cores, busy):
    """The demo's speed-up line: the ratio of the two fit times, or, when
    other processes were using the cores (``busy``, from
    :func:`machine_load`), why no ratio is given: they slow fastap's fit,
    which runs on every core, more than scikit-learn's, which runs on one,
    so the ratio would say more about the machine than about the
    libraries."""
    if busy:
        return (
            f"Speed-up: not given: other processes were using {load:.1f} of the {n_cores} "
            "cores, which slows fastap's parallel fit more than scikit-learn's serial one, so "
            "the ratio of the two times above would mislead (rerun on a quiet machine)"
        )
    return f"Speed-up: {theirs_seconds / ours_seconds:.1f}x"


def same_partition(a, b):
    """Whether two labelings group the samples identically (up to the
    cluster numbers)."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    pairs = np.unique(np.stack([a, b]), axis=1).shape[1]
    return pairs == np.unique(a).size == np.unique(b).size


def demo(n_samples, dtype, compare, n_jobs, affinity="euclidean", n_neighbors=None):
    """Cluster a built-in dataset with fastap and, side by side, scikit-learn."""
    from sklearn.cluster import AffinityPropagation as SklearnAP
    from sklearn.datasets import make_blobs
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import adjusted_rand_score

    from fastap import AffinityPropagation, _resources
    from fastap._cli_fit import check_memory_early

    if affinity == "euclidean":
        check_memory_early(n_samples, dtype)  # before generating data and compiling
    X, _ = make_blobs(
        n_samples=n_samples, n_features=8, centers=10, cluster_std=1.0, random_state=0
    )
    X = X.astype(dtype)
    print(
        f"Dataset: make_blobs(n_samples={n_samples}, n_features=8, centers=10, "
        f"cluster_std=1.0, random_state=0), {dtype}"
    )
    options = {"affinity": affinity}
    if n_neighbors is not None:
        options["n_neighbors"] = n_neighbors
    if affinity != "euclidean":
        print(f"fastap: affinity={affinity!r}" + (
            f", n_neighbors={n_neighbors}" if n_neighbors is not None else ""
        ))
    print(f"Threads: {_resources.resolve_n_threads(n_jobs)}\n")

    print("Compiling fastap's kernels (cached on disk after the first run)...", flush=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 600 samples: the parallel pass and the sampled median (used above
        # 512 samples) compile here, not inside the timed fit.
        AffinityPropagation(max_iter=2, random_state=0, n_jobs=n_jobs, **options).fit(
            X[: min(600, n_samples)]
        )
    print(f"  ready in {time.perf_counter() - started:.1f} s\n", flush=True)

    load, n_cores, busy = machine_load()
    print(f"Machine load before timing: {_load_words(load, n_cores, busy)}", flush=True)

    def fit(estimator):
        def once():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                estimator.fit(X)
            not_converged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            return getattr(estimator, "converged_", not not_converged)
        return once

    ours = AffinityPropagation(random_state=0, n_jobs=n_jobs, **options)
    ours_time, runs, ours_converged = _best_time(fit(ours))
    rows = [("fastap", ours_time, runs, ours.n_iter_, len(ours.cluster_centers_indices_),
             ours_converged)]
    theirs = None
    if compare:
        theirs = SklearnAP(random_state=0)
        theirs_time, runs, theirs_converged = _best_time(fit(theirs))
        rows.append(("scikit-learn", theirs_time, runs, theirs.n_iter_,
                     len(theirs.cluster_centers_indices_), theirs_converged))

    header = ("implementation", "fit time", "runs", "iterations", "clusters", "converged")
    print("{:<14} {:>10} {:>5} {:>11} {:>9} {:>10}".format(*header))
    for name, elapsed, runs, n_iter, n_clusters, converged in rows:
        print(f"{name:<14} {elapsed:>9.2f}s {runs:>5} {n_iter:>11} {n_clusters:>9} "
              f"{str(converged):>10}")
    print("(fit time: the best of the runs)")
    if theirs is not None:
        same = same_partition(ours.labels_, theirs.labels_)
        ari = adjusted_rand_score(ours.labels_, theirs.labels_)
        print(f"\n{speedup_words(rows[1][1], rows[0][1], load, n_cores, busy)}")
        print(f"Same clusters as scikit-learn: {'yes' if same else 'no'} "
              f"(adjusted Rand index {ari:.3f})")
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

    print(f"fastap {fastap.__version__} ({os.path.dirname(fastap.__file__)})")
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


def warmup_command(args=None):
    """Compile and cache the kernels of the chosen groups, timing each."""
    from fastap import warmup

    options = {}
    if args is not None:
        options = dict(dtypes=args.dtype or ("float64", "float32"), engines=args.engine,
                       sparse=args.sparse, dask=args.dask)
    started = time.perf_counter()
    warmup(report=lambda group, seconds: print(f"{group:<24} {seconds:6.1f} s", flush=True),
           **options)
    print(f"fastap kernels compiled and cached in {time.perf_counter() - started:.1f} s")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message):
        """Print ``prog: error: message`` and a pointer to --help; exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _namespace_trap():
    """The message when ``fastap`` was imported as a namespace package.

    ``python -m fastap`` run from the folder that contains a clone named
    ``fastap`` imports the clone's folder (no ``__init__.py``) as the
    package: nothing of fastap's API is there.
    """
    import fastap

    if getattr(fastap, "__file__", None) is not None:
        return None
    folders = [str(folder) for folder in getattr(fastap, "__path__", [])]
    here = [folder for folder in folders if not os.path.isfile(os.path.join(folder, "_cli.py"))]
    shadow = here[0] if here else (folders[0] if folders else "fastap")
    return (
        f"fastap: error: Python took the folder {shadow} for the fastap package (it has no "
        "__init__.py): run python -m fastap from another folder (e.g. cd into it), or use "
        "the fastap command"
    )


def _parser():
    from fastap import __version__, _cli_fit

    parser = _Parser(prog="fastap", description="Fast Affinity Propagation.")
    parser.add_argument("--version", action="version", version=f"fastap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="cluster a built-in dataset; compare with scikit-learn",
        description=(
            "Cluster a built-in dataset (make_blobs: 8 features, 10 centers) with fastap "
            "and, unless --no-compare, with scikit-learn's AffinityPropagation; print each "
            "one's fit time (the best of up to 3 runs), iterations and clusters, whether "
            "they found the same clusters, and the speed-up. The machine's load is measured "
            "first: on a busy machine the two times are shown without a speed-up."
        ),
    )
    demo_parser.add_argument(
        "--n-samples", type=_cli_fit.at_least_one("--n-samples"), default=2000
    )
    demo_parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    demo_parser.add_argument("--n-jobs", type=_cli_fit.n_jobs, default=None)
    demo_parser.add_argument(
        "--affinity",
        choices=["euclidean", "nearest_neighbors"],
        default="euclidean",
        help="fastap's similarity (nearest_neighbors: a sparse k-NN graph, memory per "
        "neighbour pair)",
    )
    demo_parser.add_argument(
        "--n-neighbors", type=_cli_fit.at_least_one("--n-neighbors"), default=None,
        metavar="K", help="neighbours per sample with --affinity nearest_neighbors",
    )
    demo_parser.add_argument(
        "--no-compare", action="store_true", help="skip the scikit-learn fit"
    )
    _cli_fit.add_parser(commands)
    commands.add_parser(
        "info", help="versions, threads, kernel cache",
        description="Print the versions of fastap and its dependencies, the threads a fit "
        "uses, Numba's threading layer and where compiled kernels are cached.",
    )
    warmup_parser = commands.add_parser(
        "warmup", help="compile and cache the kernels",
        description="Compile fastap's kernels into the kernel cache (see `fastap info`), "
        "by group, printing the time of each. Default: both dtypes, their default dense "
        "engines and the sparse kernels.",
    )
    warmup_parser.add_argument(
        "--dtype", action="append", choices=["float64", "float32"], default=None,
        help="only this dtype (repeatable; default both)",
    )
    warmup_parser.add_argument(
        "--engine", action="append", choices=["stored", "lean", "compact"], default=None,
        help="only this dense engine (repeatable; default: float64 stored, float32 lean "
        "and stored)",
    )
    warmup_parser.add_argument(
        "--sparse", action=argparse.BooleanOptionalAction, default=True,
        help="the sparse-graph kernels (default on)",
    )
    warmup_parser.add_argument(
        "--dask", action="store_true", help="also fastap.dask's block kernels",
    )
    return parser


def _run(args):
    from fastap import _cli_fit

    if args.command == "demo":
        if args.n_neighbors is not None and args.affinity != "nearest_neighbors":
            from fastap._cli_data import UsageError

            raise UsageError("--n-neighbors applies to --affinity nearest_neighbors only")
        return demo(args.n_samples, args.dtype, not args.no_compare, args.n_jobs,
                    args.affinity, args.n_neighbors)
    if args.command == "fit":
        return _cli_fit.fit_command(args)
    if args.command == "info":
        return info()
    return warmup_command(args)


def main(argv=None):
    """Entry point of the ``fastap`` command."""
    command = "fastap"
    try:
        trap = _namespace_trap()
        if trap is not None:
            print(trap, file=sys.stderr)
            return EXIT_ERROR
        parser = _parser()
        args = parser.parse_args(argv)
        _import_heavy_modules()
        command = f"fastap {args.command}"
        status = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except KeyboardInterrupt:
        if command != "fastap":  # during start-up: quietly
            print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`fastap info | head -2`).
        from fastap._cli_fit import silence_stdout

        silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # noqa: BLE001 - every failure is one line
        return _report(command, error)


def _import_heavy_modules():
    """NumPy, SciPy, scikit-learn, Numba and the estimator, with Ctrl-C ending
    the process at once, quietly (exit 130): an interruption inside an import
    leaves a half-loaded module behind, whose next import fails with an
    unrelated ImportError."""
    import signal

    def leave(signum, frame):
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, leave)
    try:
        import fastap._estimator  # noqa: F401  (numpy, scipy, sklearn, numba)
    finally:
        signal.signal(signal.SIGINT, previous)


def _report(command, error):
    """One line on stderr for an error; exit code 1, or 2 for a usage error
    (worded as argparse's, with the pointer to --help). Errors that are not
    the user's to fix keep their traceback (a bug to report)."""
    from fastap._cli_data import CommandError, UsageError
    from fastap._cli_fit import in_command_line_words

    expected = (CommandError, MemoryError, ValueError, TypeError, OSError, ImportError)
    if not isinstance(error, expected):
        raise error
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, MemoryError) and not str(error).strip():
        text = "out of memory"
    if isinstance(error, UsageError):
        print(f"{command}: error: {text} (see {command} --help)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{command}: error: {in_command_line_words(text)}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
