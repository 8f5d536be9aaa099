"""The distributed engine (fastap.dask) against the single machine, per iteration.

    python asv_benchmarks/dask_report.py [--n 4000 16000] [--dtype float64] [--iterations 8]

For each N (make_blobs, 8 features, 20 centers, damping 0.9, the median
preference):

- single machine: the dense engine with 1 and 2 Numba threads, in its own
  process (its peak RSS is that process's);
- in-process: the blocks' kernels and state on P = 2 blocks in this
  process (``LocalBlocks``, no Dask) against the dense engine, both on one
  thread, iterations alternated: the engine's own overhead (step 4 reading
  R again for float64 blocks after the first), robust to a busy machine;
- distributed: a LocalCluster of 2 worker processes x 1 thread, one block
  per worker, the same iterations through ``BlockMessageState``; the
  iteration's phases timed apart: the column-sum pipeline (block 0 -> 1 in
  column segments, the order that makes results independent of P) against
  an unordered gather of each block's own sums (what a tree reduction would
  cost: not P-independent), and the latency of an empty round of calls;
- per-worker peak RSS and the bytes each block holds; the client's peak RSS.

Then the round trip of one actor call against one pinned task (the two
mechanisms the engine could use), empty and with an 8 N-byte vector.

Timings are medians over ``--iterations`` iterations after 2 warm-up
iterations. Print ``uptime`` next to them: on a shared machine they move.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _peak_rss_mib():
    """This process's peak RSS (VmHWM: reset by exec, unlike ru_maxrss, which a
    forked worker inherits from its parent)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _blobs(n, dtype):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=n, n_features=8, centers=20, random_state=0)
    return X.astype(dtype)


def _median_ms(seconds):
    return float(np.median(seconds) * 1e3)


def _measure_single(n, dtype, iterations, threads):
    """Per-iteration time of the dense engine on one machine (child process)."""
    from fastap import _dense
    from fastap._kernels import setup
    from fastap._resources import numba_threads
    from fastap._similarity import negative_squared_euclidean

    dtype = np.dtype(dtype)
    with numba_threads(threads):
        S = negative_squared_euclidean(_blobs(n, dtype), dtype)
        preference = np.asarray(setup.median_of_matrix(S, n_tasks=threads))
        state = _dense.DenseMessageState(
            S, preference, damping=0.9, random_state=np.random.RandomState(0), n_threads=threads
        )
        state.prepare()
        for _ in range(2):
            state.iterate()
        times = []
        for _ in range(iterations):
            started = time.perf_counter()
            state.iterate()
            times.append(time.perf_counter() - started)
    return {"iteration_ms": _median_ms(times), "peak_rss_mib": _peak_rss_mib()}


def _measure_in_process(n, dtype, iterations):
    """Blocks (P = 2, in this process) against the dense engine, one thread,
    iterations alternated; returns the two medians (ms)."""
    import numba

    from fastap import _dense
    from fastap._kernels import setup
    from fastap._similarity import negative_squared_euclidean
    from fastap.dask._block import RowBlock
    from fastap.dask._state import BlockMessageState, LocalBlocks, even_bounds, place_preference

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        dtype = np.dtype(dtype)
        S = negative_squared_euclidean(_blobs(n, dtype), dtype)
        preference = np.asarray(setup.median_of_matrix(S, n_tasks=1))
        bounds = even_bounds(n, 2)
        blocks = LocalBlocks(RowBlock(n, a, b, dtype) for a, b in zip(bounds[:-1], bounds[1:]))
        for p in range(2):
            blocks.call(p, "set_similarities", S[bounds[p]:bounds[p + 1]])
        place_preference(blocks, bounds, preference, dtype)
        blocks_state = BlockMessageState(blocks, bounds, dtype, preference, 0.9, 0)
        blocks_state.prepare()
        dense = _dense.DenseMessageState(
            S, preference, damping=0.9, random_state=np.random.RandomState(0), n_threads=1
        )
        dense.prepare()
        for _ in range(2):
            dense.iterate()
            blocks_state.iterate()
        dense_times, block_times = [], []
        for _ in range(iterations):
            started = time.perf_counter()
            dense.iterate()
            dense_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            blocks_state.iterate()
            block_times.append(time.perf_counter() - started)
    finally:
        numba.set_num_threads(previous)
    return {"dense_ms": _median_ms(dense_times), "blocks_ms": _median_ms(block_times)}


def _child(n, dtype, iterations, threads):
    code = (
        f"import json, sys; sys.path.insert(0, {HERE!r}); import dask_report; "
        f"print('RESULT' + json.dumps(dask_report._measure_single({n}, {dtype!r}, "
        f"{iterations}, {threads})))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"single-machine run failed:\n{completed.stdout}\n{completed.stderr}")


def _measure_distributed(client, n, dtype, iterations):
    from fastap._kernels.noise import counter_noise_seed
    from fastap.dask._cluster import start_blocks
    from fastap.dask._state import BlockMessageState, even_bounds, median_of_blocks
    from fastap.dask._state import place_preference

    dtype = np.dtype(dtype)
    X = _blobs(n, dtype)
    bounds = even_bounds(n, len(client.scheduler_info(n_workers=-1)["workers"]))
    blocks = start_blocks(client, bounds, dtype)
    try:
        started = time.perf_counter()
        blocks.results([
            blocks.call(p, "compute_similarities", X.astype(np.float64), "euclidean")
            for p in range(len(blocks))
        ])
        similarities_s = time.perf_counter() - started
        started = time.perf_counter()
        preference = np.asarray(median_of_blocks(blocks, bounds, dtype))
        median_s = time.perf_counter() - started
        place_preference(blocks, bounds, preference, dtype)
        state = BlockMessageState(blocks, bounds, dtype, preference, 0.9, counter_noise_seed(0))
        state.prepare()
        for _ in range(2):
            state.iterate()
        iteration, pipeline, gather, ping = [], [], [], []
        for _ in range(iterations):
            started = time.perf_counter()
            state.iterate()
            iteration.append(time.perf_counter() - started)
            # The column-sum step alone (it only reads R: repeatable).
            started = time.perf_counter()
            state._column_sums()
            pipeline.append(time.perf_counter() - started)
            # Unordered alternative: every block's own sums at once, added here.
            started = time.perf_counter()
            zeros = np.zeros(n)
            parts = blocks.results([
                blocks.call(p, "add_positive_parts", 0, zeros, zeros)
                for p in range(len(blocks))
            ])
            np.sum([running for running, _ in parts], axis=0)
            gather.append(time.perf_counter() - started)
            started = time.perf_counter()
            blocks.results([blocks.call(p, "echo") for p in range(len(blocks))])
            ping.append(time.perf_counter() - started)
        block_bytes = blocks.results([blocks.call(p, "memory_bytes") for p in range(len(blocks))])
        worker_peaks = client.run(_peak_rss_mib)
    finally:
        blocks.close()
    return {
        "iteration_ms": _median_ms(iteration),
        "pipeline_ms": _median_ms(pipeline),
        "gather_ms": _median_ms(gather),
        "ping_ms": _median_ms(ping),
        "segments": len(state.segments),
        "similarities_s": similarities_s,
        "median_s": median_s,
        "block_mib": [b / 2**20 for b in block_bytes],
        "worker_peak_rss_mib": sorted(worker_peaks.values()),
    }


def _echo(x=None):
    return x


def _measure_latency(client, n, repeats=30):
    """Round trips: one actor call per worker vs one pinned task per worker."""
    from fastap.dask._cluster import start_blocks
    from fastap.dask._state import even_bounds

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    blocks = start_blocks(client, even_bounds(2 * len(workers), len(workers)), np.float64)
    rows = {}
    try:
        for label, payload in (("empty", None), (f"{8 * n} B", np.zeros(n))):
            actor, task = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                blocks.results([blocks.call(p, "echo", payload) for p in range(len(blocks))])
                actor.append(time.perf_counter() - started)
                started = time.perf_counter()
                futures = [
                    client.submit(_echo, payload, workers=[w], pure=False) for w in workers
                ]
                client.gather(futures)
                task.append(time.perf_counter() - started)
            rows[label] = (_median_ms(actor), _median_ms(task))
    finally:
        blocks.close()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4000, 16000])
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="single machine's threads")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"cores: {os.cpu_count()}, dtype {args.dtype}, damping 0.9, "
          f"{args.iterations} timed iterations (medians)\n")
    rows = []
    for n in args.n:
        single = {t: _child(n, args.dtype, args.iterations, t) for t in args.threads}
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            distributed = _measure_distributed(client, n, args.dtype, args.iterations)
            latency = _measure_latency(client, n) if n == args.n[0] else None
        client_peak = _peak_rss_mib()
        in_process = _measure_in_process(n, args.dtype, args.iterations)
        rows.append((n, single, distributed, in_process))
        print(f"N={n}: single {json.dumps(single)}\n  distributed {json.dumps(distributed)}"
              f"\n  in-process {json.dumps(in_process)}")
        print(f"  client peak RSS after the distributed fit: {client_peak:.0f} MiB")
        if latency:
            print("\n| round trip, 2 workers | actor call | pinned task |\n|---|---|---|")
            for label, (actor, task) in latency.items():
                print(f"| {label} | {actor:.1f} ms | {task:.1f} ms |")
        print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout}")

    threads = " / ".join(str(t) for t in args.threads)
    print(f"\n| N | single, {threads} threads | 2 workers x 1 thread | column-sum pipeline "
          "| unordered gather | empty round | worker peak RSS | block | in-process P=2 / dense, "
          "1 thread |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, single, dist, in_process in rows:
        singles = " / ".join(f"{single[t]['iteration_ms']:.0f}" for t in args.threads)
        print(
            f"| {n} | {singles} ms | {dist['iteration_ms']:.0f} ms | "
            f"{dist['pipeline_ms']:.0f} ms ({dist['segments']} segments) | "
            f"{dist['gather_ms']:.0f} ms | {dist['ping_ms']:.1f} ms | "
            f"{max(dist['worker_peak_rss_mib']):.0f} MiB | {max(dist['block_mib']):.0f} MiB | "
            f"{in_process['blocks_ms']:.0f} / {in_process['dense_ms']:.0f} ms = "
            f"{in_process['blocks_ms'] / in_process['dense_ms']:.2f} |"
        )
    print("\nsingle machine's peak RSS: "
          + ", ".join(f"N={n}: {s[args.threads[0]]['peak_rss_mib']:.0f} MiB"
                      for n, s, _, _ in rows))


if __name__ == "__main__":
    main()
