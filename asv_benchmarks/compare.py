"""fastap against scikit-learn, side by side in one run; prints a markdown table.

    python asv_benchmarks/compare.py                   # the issue's table (slow: sklearn at N=8000)
    python asv_benchmarks/compare.py --sizes 500 2000 --repeats 3

Each fit runs in a fresh Python process so that its peak RSS is its own.
Data: make_blobs(n_samples=N, n_features=8, centers=10, cluster_std=1.0,
random_state=0); AffinityPropagation(random_state=0). fastap's compiled
kernels are warmed (loaded from the disk cache) before timing. Times are
whole ``fit`` calls, medians of ``--repeats`` runs; the per-iteration time
is one fused pass (median of 7) against the bandwidth floor measured in the
same run (benchmarks/floor.py).
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time, warnings
    import numpy as np
    from sklearn.datasets import make_blobs
    implementation, n, dtype, n_jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    X, _ = make_blobs(n_samples=n, n_features=8, centers=10, cluster_std=1.0, random_state=0)
    X = X.astype(dtype)
    if implementation == "fastap":
        import numba
        from fastap import AffinityPropagation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            AffinityPropagation(max_iter=2, random_state=0, n_jobs=n_jobs).fit(X[:500])
        estimator = AffinityPropagation(random_state=0, n_jobs=n_jobs)
    else:
        from sklearn.cluster import AffinityPropagation
        estimator = AffinityPropagation(random_state=0)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        estimator.fit(X)
        elapsed = time.perf_counter() - started
    print(json.dumps({
        "seconds": elapsed,
        "n_iter": int(estimator.n_iter_),
        "n_clusters": int(len(estimator.cluster_centers_indices_)),
        "labels_hash": int(np.asarray(estimator.labels_, dtype=np.int64) @ np.arange(n) % 1000003),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_fit_mib": baseline,
    }))
    """
)

ITERATION = textwrap.dedent(
    """
    import json, sys, time
    import numba
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from benchmarks.floor import floor_seconds
    from fastap._dense import DenseMessageState
    n, dtype = int(sys.argv[1]), np.dtype(sys.argv[2])
    rng = np.random.RandomState(0)
    S = -rng.rand(n, n).astype(dtype)
    state = DenseMessageState(S, damping=0.5, n_threads=numba.get_num_threads(), prepared=True)
    state.prepare()
    state.iterate()
    times = []
    for _ in range(7):
        started = time.perf_counter(); state.iterate(); times.append(time.perf_counter() - started)
    del state, S
    print(json.dumps({"iteration": float(np.median(times)), "floor": floor_seconds(n, dtype)}))
    """
)


def run_child(code, *args):
    env = dict(os.environ)
    output = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else 0.5 * (values[middle - 1] + values[middle])


def versions(n_jobs):
    """One line of versions and the CPU, as printed above the table."""
    import numba
    import numpy
    import sklearn

    import fastap

    return (
        f"fastap {fastap.__version__}, scikit-learn {sklearn.__version__}, "
        f"numba {numba.__version__}, numpy {numpy.__version__}, "
        f"python {sys.version.split()[0]}, threads for fastap: {n_jobs}\n"
        f"CPU: {_cpu_name()}, {os.cpu_count()} logical CPUs, "
        f"{_memory_gib():.0f} GiB memory"
    )


def measure(sizes, repeats=3, n_jobs=2, sklearn_repeats=None):
    """Yield one row (a dict) per size and fastap dtype, as it is measured."""
    sklearn_repeats = sklearn_repeats or repeats
    run_child(CHILD, "fastap", 600, "float64", n_jobs)  # fill the kernel cache
    run_child(CHILD, "fastap", 600, "float32", n_jobs)
    for n in sizes:
        sk = [run_child(CHILD, "sklearn", n, "float64", 1) for _ in range(sklearn_repeats)]
        sk_time = median([r["seconds"] for r in sk])
        for dtype in ("float64", "float32"):
            fa = [run_child(CHILD, "fastap", n, dtype, n_jobs) for _ in range(repeats)]
            fa_time = median([r["seconds"] for r in fa])
            per_iteration = run_child(ITERATION, n, dtype, HERE) if n >= 1000 else None
            yield {
                "N": n,
                "dtype": dtype,
                "fastap_s": fa_time,
                "sklearn_s": sk_time,
                "speedup": sk_time / fa_time,
                "fastap_iter": fa[0]["n_iter"],
                "sklearn_iter": sk[0]["n_iter"],
                "fastap_clusters": fa[0]["n_clusters"],
                "sklearn_clusters": sk[0]["n_clusters"],
                "same_labels": fa[0]["labels_hash"] == sk[0]["labels_hash"],
                "fastap_rss": max(r["peak_rss_mib"] for r in fa),
                "sklearn_rss": max(r["peak_rss_mib"] for r in sk),
                "iteration_ms": per_iteration and per_iteration["iteration"] * 1e3,
                "floor_ms": per_iteration and per_iteration["floor"] * 1e3,
                "all_fastap_s": [round(r["seconds"], 3) for r in fa],
                "all_sklearn_s": [round(r["seconds"], 3) for r in sk],
            }


def parse_arguments(description=__doc__, argv=None, extra=None):
    """The options shared by compare.py and report.py."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 4000, 8000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument(
        "--sklearn-repeats",
        type=int,
        default=None,
        help="repeats for scikit-learn (default: --repeats)",
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def main():
    args = parse_arguments()
    print(versions(args.n_jobs) + "\n")
    rows = []
    for row in measure(args.sizes, args.repeats, args.n_jobs, args.sklearn_repeats):
        rows.append(row)
        _print_row(row, header=len(rows) == 1)
    print("\nRaw times (s):")
    print(raw_times(rows))


def raw_times(rows):
    """Every repeat's time, one line per row."""
    return "\n".join(
        f"  N={row['N']} {row['dtype']}: fastap {row['all_fastap_s'] or 'not recorded'}, "
        f"scikit-learn float64 {row['all_sklearn_s'] or 'not recorded'}"
        for row in rows
    )


def markdown_table(rows):
    """The README's table for ``rows``."""
    return "\n".join(_format_row(row, header=index == 0) for index, row in enumerate(rows))


def _print_row(row, header):
    print(_format_row(row, header), flush=True)


def _format_row(row, header):
    lines = []
    if header:
        lines.append(
            "| N | fastap dtype | fastap fit | scikit-learn fit | speed-up "
            "| iterations fastap / sklearn | clusters fastap / sklearn | same labels "
            "| per iteration / floor | peak RSS fastap / sklearn |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
    per_iteration = "-"
    if row["iteration_ms"]:
        ratio = row["iteration_ms"] / row["floor_ms"]
        per_iteration = f"{row['iteration_ms']:.1f} / {row['floor_ms']:.1f} ms ({ratio:.2f}x)"
    same = "yes" if row["same_labels"] else "no"
    lines.append(
        f"| {row['N']} | {row['dtype']} | {row['fastap_s']:.3f} s | {row['sklearn_s']:.3f} s "
        f"| {row['speedup']:.1f}x | {row['fastap_iter']} / {row['sklearn_iter']} "
        f"| {row['fastap_clusters']} / {row['sklearn_clusters']} | {same} "
        f"| {per_iteration} | {row['fastap_rss']:.0f} / {row['sklearn_rss']:.0f} MiB |"
    )
    return "\n".join(lines)


def _memory_gib():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
