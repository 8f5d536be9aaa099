"""fastap.dask on a large sparse k-NN graph against the single machine, per iteration.

    python asv_benchmarks/dask_sparse_report.py [--n 1000000] [--iterations 25]

The graph: make_blobs(N, 16 features, 100 centers, random_state=0), its
30-nearest-neighbour similarity graph (``fastap.nearest_neighbors_graph``,
built once and kept in ``--graph-cache``). Both fits run
``AffinityPropagation(affinity="precomputed", noise="counter", damping=0.9,
max_iter=--iterations)``: the single machine with 2 Numba threads in this
process, then a LocalCluster of 2 worker processes x 1 thread. Per-iteration
times are medians of the gaps between ``callback`` calls (every iteration);
set-up is the time to the first call minus one iteration. Both fits must give
the same labels (checked). Print ``uptime`` next to the numbers: on a shared
machine they move.
"""

import argparse
import os
import resource
import subprocess
import time
import warnings

import numpy as np


def _graph(n_samples, cache):
    from scipy import sparse

    path = os.path.join(cache, f"knn_graph_{n_samples}.npz")
    if os.path.exists(path):
        return sparse.load_npz(path), 0.0
    from sklearn.datasets import make_blobs

    import fastap

    X, _ = make_blobs(n_samples, n_features=16, centers=100, random_state=0)
    started = time.perf_counter()
    graph = fastap.nearest_neighbors_graph(X, 30, random_state=0)
    seconds = time.perf_counter() - started
    os.makedirs(cache, exist_ok=True)
    sparse.save_npz(path, graph)
    return graph, seconds


def _timed_fit(estimator_class, graph, iterations, **options):
    stamps = []
    estimator = estimator_class(
        affinity="precomputed", noise="counter", damping=0.9, max_iter=iterations,
        random_state=0, callback=lambda info: stamps.append(time.perf_counter()), **options,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(graph)
    total = time.perf_counter() - started
    gaps = np.diff(stamps)
    per_iteration = float(np.median(gaps))
    return estimator, {
        "iteration_ms": per_iteration * 1e3,
        "set_up_s": stamps[0] - started - per_iteration,
        "fit_s": total,
        "n_iter": int(estimator.n_iter_),
    }


def _peak_rss_mib():
    """This process's own peak RSS (VmHWM: ru_maxrss would also count the
    peak of a parent a worker was forked from)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--graph-cache", default="/tmp/fastap_bench")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    import fastap
    import fastap.dask

    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    graph, build_s = _graph(args.n, args.graph_cache)
    print(f"graph: N={args.n}, {graph.nnz:,} stored pairs, built in {build_s:.0f} s "
          "(0: loaded from the cache)", flush=True)
    single, single_times = _timed_fit(fastap.AffinityPropagation, graph, args.iterations, n_jobs=2)
    print(f"single machine, 2 threads: {single_times}", flush=True)
    client_before_cluster = _peak_rss_mib()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        distributed, distributed_times = _timed_fit(
            fastap.dask.AffinityPropagation, graph, args.iterations, client=client
        )
        worker_peaks = client.run(_peak_rss_mib)
    print(f"2 workers x 1 thread: {distributed_times}")
    same = np.array_equal(single.labels_, distributed.labels_)
    ratio = distributed_times["iteration_ms"] / single_times["iteration_ms"]
    print(f"\n| N | stored pairs | one machine, 2 threads | 2 workers x 1 thread | ratio | "
          f"set-up one / Dask | worker peak RSS | client peak RSS | same labels |\n"
          f"|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.n:,} | {graph.nnz:,} | {single_times['iteration_ms']:.0f} ms | "
          f"{distributed_times['iteration_ms']:.0f} ms | {ratio:.2f} | "
          f"{single_times['set_up_s']:.1f} / {distributed_times['set_up_s']:.1f} s | "
          f"{max(worker_peaks.values()):.0f} MiB | {client_before_cluster:.0f} MiB | {same} |")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
