"""The compact engine against the lean engine, float32 (issue 19).

    python asv_benchmarks/compact_report.py --sizes 16000            # per iteration
    python asv_benchmarks/compact_report.py --rss 64000 --damping 0.9 --engines compact
    python asv_benchmarks/compact_report.py --counters 16000         # step 0's table
    python asv_benchmarks/compact_report.py --profile 4000 --damping 0.9   # where time goes
    python asv_benchmarks/compact_report.py --rss-only 8000 compact 0.5   # one child

Prints markdown tables with the machine load next to each (other processes
share the cores: timings beside them are noisy).

1. ``--sizes``: per-iteration time of both engines side by side in one
   process on one prepared ``S`` (make_blobs(N, 8 features, 10 centers),
   median preference, ``--damping``), their iterations interleaved (each
   iteration of one engine followed by the same iteration of the other, so
   both see the same load), iterations 20-60, medians of ``--repeats`` runs;
   the two engines' (n_exemplars, n_changed) are checked equal at every
   iteration, and the compact engine's exception lists are reported.
2. ``--rss``: a whole float32 fit per engine, each in its own process:
   peak RSS (VmHWM), fit time, iterations, converged, and the compact
   state's exception fraction.
3. ``--counters``: step 0's go/no-go counters on the compact engine's
   state (every ``--every``-th iteration): the chunks a branch-and-bound row
   search over the bound ``max S(i, chunk) + max acol(chunk)`` would read
   (visiting chunks in decreasing bound, stopping when the bound falls
   below the running second maximum), and the exception lists (pairs ever
   positive), for 10 and 100 centers, damping 0.5 and 0.9, the given order
   and a locality order of the samples (k-means cells of about 256).
4. ``--profile``: one thread, both engines' whole iterations and the
   compact iteration's parts timed alone over all rows (on copies of the
   state after 30 iterations).
"""

import argparse
import os
import subprocess
import sys
import time
import warnings

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lean_report import load, machine, peak_rss_mib  # noqa: E402

from fastap._kernels import compact_messages as cm  # noqa: E402
from fastap._kernels.lean_messages import lean_chunk_sums, lean_search_row  # noqa: E402
from fastap._kernels.messages import SEARCH_CHUNK  # noqa: E402


def blobs(n_samples, centers, locality=False):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples, n_features=8, centers=centers, random_state=0)
    X = X.astype(np.float32)
    if locality:
        from sklearn.cluster import KMeans

        cells = KMeans(max(1, n_samples // 256), n_init=1, random_state=0).fit_predict(X)
        X = X[np.argsort(cells, kind="stable")]
    return X


def prepared_similarities(X):
    from fastap._dense import add_degeneracy_noise
    from fastap._kernels import setup
    from fastap._similarity import similarities

    n = X.shape[0]
    S = similarities(X, "euclidean", np.float32)
    S.flat[:: n + 1] = setup.median_of_matrix(S, 2)
    add_degeneracy_noise(S, np.random.RandomState(0))
    return S


def make_state(engine, S, damping, n_threads):
    from fastap._compact import CompactMessageState
    from fastap._lean import LeanMessageState

    cls = CompactMessageState if engine == "compact" else LeanMessageState
    state = cls(S, damping=damping, n_threads=n_threads, prepared=True)
    state.prepare()
    return state


# --------------------------------------------------------------------------
# 1. Per iteration, side by side.
# --------------------------------------------------------------------------


def interleaved_run(S, damping, n_threads, first=20, last=60):
    """Seconds per iteration of (lean, compact), iterations first..last."""
    states = {engine: make_state(engine, S, damping, n_threads) for engine in ("lean", "compact")}
    spent = {"lean": 0.0, "compact": 0.0}
    for t in range(last):
        outcomes = {}
        for engine, state in states.items():
            started = time.perf_counter()
            outcomes[engine] = state.iterate()
            if t >= first:
                spent[engine] += time.perf_counter() - started
        if outcomes["lean"] != outcomes["compact"]:
            raise AssertionError(f"iteration {t}: lean {outcomes['lean']} != compact "
                                 f"{outcomes['compact']}")
    compact = states["compact"]
    fraction = compact.exception_count.sum() / S.shape[0] ** 2
    lists = (fraction, compact.pool_bytes() / 2**20, compact.is_lean)
    for state in states.values():
        state.release()
    return spent["lean"] / (last - first), spent["compact"] / (last - first), lists


def timing_section(sizes, repeats, n_threads, damping):
    print(f"\n## Per iteration, float32, {n_threads} threads, damping {damping}, "
          f"iterations 20-60, interleaved, medians of {repeats} ({machine()})\n")
    print("| N | lean | compact | compact / lean | exceptions (of N^2) | pool | fell back "
          "| load |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        S = prepared_similarities(blobs(n, 10))
        runs = []
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            runs.append(interleaved_run(S, damping, n_threads))
            loads.append(os.getloadavg()[0])
        lean = float(np.median([run[0] for run in runs]))
        compact = float(np.median([run[1] for run in runs]))
        fraction, pool, fell_back = runs[-1][2]
        print(f"| {n} | {lean * 1e3:.1f} ms | {compact * 1e3:.1f} ms | {compact / lean:.2f}x | "
              f"{fraction:.1%} | {pool:.0f} MiB | {fell_back} | "
              f"{min(loads):.1f}-{max(loads):.1f} |", flush=True)
        del S


# --------------------------------------------------------------------------
# 2. Peak RSS of whole fits (one process per engine).
# --------------------------------------------------------------------------


def rss_child(n_samples, engine, damping):
    from fastap import AffinityPropagation, _compact

    recorded = {}
    original = _compact.CompactMessageState.release

    def release(state):  # the lists' size, just before the state frees them
        recorded["fraction"] = state.exception_count.sum() / state.n_samples**2
        recorded["fell_back_at"] = state.fell_back_at
        original(state)

    _compact.CompactMessageState.release = release
    X = blobs(n_samples, 10)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(
            random_state=0, engine=engine, n_jobs=2, damping=damping, max_iter=1000,
        ).fit(X)
    seconds = time.perf_counter() - started
    print(f"{peak_rss_mib():.0f} {seconds:.1f} {model.n_iter_} {model.converged_} "
          f"{model.cluster_centers_indices_.size} {recorded.get('fraction', float('nan')):.4f} "
          f"{recorded.get('fell_back_at')}")


def rss_section(n_samples, damping, engines):
    print(f"\n## Whole float32 fit, N = {n_samples}, damping {damping}, 2 threads, "
          f"max_iter=1000 ({machine()})\n")
    print("| engine | peak RSS | fit time | iterations | converged | clusters | exceptions "
          "| fell back at | load before / after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine in engines:
        before = load()
        output = subprocess.run(
            [sys.executable, __file__, "--rss-only", str(n_samples), engine, str(damping)],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        print(f"| {engine} | {float(output[0]) / 1024:.2f} GiB | {output[1]} s | {output[2]} | "
              f"{output[3]} | {output[4]} | {float(output[5]):.2%} | {output[6]} | "
              f"{before} / {load()} |", flush=True)


# --------------------------------------------------------------------------
# 3. Step 0's counters.
# --------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def chunks_read(S, chunk_max, acol, A_diagonal, ex_columns, ex_values, ex_start, ex_count,
                chunk):
    """Per row, the chunks a branch-and-bound search of ``A + S`` reads:
    chunks in decreasing ``chunk_max(i, c) + max acol(c)``, the row's
    diagonal chunk first, until a bound is below the running second max."""
    n = S.shape[0]
    n_chunks = chunk_max.shape[1]
    column_max = np.full(n_chunks, -np.inf, dtype=np.float64)
    for k in range(n):
        column_max[k // chunk] = max(column_max[k // chunk], acol[k])
    read = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        values = acol.astype(np.float64) + S[i]
        for p in range(ex_start[i], ex_start[i] + ex_count[i]):
            values[ex_columns[p]] = ex_values[p] + S[i, ex_columns[p]]
        values[i] = A_diagonal[i] + S[i, i]
        bounds = chunk_max[i].astype(np.float64) + column_max
        bounds[i // chunk] = np.inf  # the diagonal is evaluated anyway
        order = np.argsort(-bounds)
        best = second = -np.inf
        for position in range(n_chunks):
            c = order[position]
            if bounds[c] < second:
                break
            read[i] += 1
            for k in range(c * chunk, min(c * chunk + chunk, n)):
                v = values[k]
                if v > best:
                    second = best
                    best = v
                elif v > second:
                    second = v
    return read


def counter_run(X, damping, n_threads, every, max_iter=400, convergence_iter=15):
    S = prepared_similarities(X)
    state = make_state("compact", S, damping, n_threads)
    n = S.shape[0]
    fractions, largest, stable, t = [], 0.0, 0, 0
    for t in range(1, max_iter + 1):
        n_exemplars, n_changed = state.iterate()
        stable = stable + 1 if n_changed == 0 and n_exemplars > 0 else 0
        if state.is_lean:
            break
        largest = max(largest, state.exception_count.sum() / n**2)
        if t % every == 0:
            state.complete_availability()
            read = chunks_read(
                state.S, state.chunk_max, state.acol, state.A_diagonal, state.exception_columns,
                state.exception_values, state.exception_start, state.exception_count,
                SEARCH_CHUNK,
            )
            fractions.append(read.sum() / (n * state.chunk_max.shape[1]))
        if stable >= convergence_iter:
            break
    clusters = int(state.is_exemplar.sum())
    fell_back = state.fell_back_at
    state.release()
    return t, stable >= convergence_iter, clusters, fractions, largest, fell_back


def counters_section(n_samples, n_threads, every):
    print(f"\n## Step 0: chunks a bound-based search reads, exception lists; float32 "
          f"make_blobs(N = {n_samples}, 8 features), median preference, every {every}th "
          f"iteration ({machine()})\n")
    print("| centers | damping | order | iterations | converged | exemplars | chunks read "
          "(mean) | chunks read (max) | exceptions (max, of N^2) | fell back | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for centers in (10, 100):
        for locality in (False, True):
            X = blobs(n_samples, centers, locality)
            for damping in (0.5, 0.9):
                iterations, converged, clusters, fractions, largest, fell_back = counter_run(
                    X, damping, n_threads, every
                )
                mean = np.mean(fractions) if fractions else float("nan")
                top = np.max(fractions) if fractions else float("nan")
                print(f"| {centers} | {damping} | {'cells' if locality else 'given'} | "
                      f"{iterations} | {converged} | {clusters} | {mean:.1%} | {top:.1%} | "
                      f"{largest:.2%} | {fell_back} | {load()} |", flush=True)


# --------------------------------------------------------------------------
# 4. Where a compact iteration spends its time (one thread).
# --------------------------------------------------------------------------


@numba.njit(cache=True)
def phase_exceptions(S, acol, col_sum, row_offset, ex_columns, ex_values, ex_start, ex_count,
                     slot, A_row, chunk_out, scale, damping):
    """Step 1's and the restore's work on the lists (on copies)."""
    one_minus = S.dtype.type(1) - damping
    e_columns = np.zeros(1, dtype=np.int32)
    e_values = np.zeros(1)
    saved = np.zeros(1)
    for j in range(S.shape[0]):
        start = ex_start[j]
        columns = ex_columns[start:ex_start[j + 1]]
        values = ex_values[start:ex_start[j + 1]]
        n_exceptions = ex_count[j]
        cm._mark_exceptions(columns, n_exceptions, slot)
        cm._finish_exceptions(S[j], col_sum, scale, S.dtype.type(row_offset[j]), columns, values,
                              n_exceptions, e_columns, e_values, 0, slot, damping, one_minus,
                              saved)
        n_exceptions = cm._drop_settled(S[j], acol, columns, values, n_exceptions, slot,
                                        chunk_out[j])
        for p in range(n_exceptions):
            A_row[columns[p]] = values[p]
        cm._restore_row(j, acol, A_row, slot, columns, n_exceptions, e_columns, 0)


@numba.njit(cache=True)
def phase_keys_and_search(S, A_row, chunk_top, chunk_values):
    total = 0.0
    for j in range(S.shape[0]):
        cm._row_keys(S[j], A_row, chunk_top)
        total += lean_search_row(S[j], A_row, chunk_top, chunk_values)[1]
    return total


@numba.njit(cache=True)
def phase_sums(S, chunk_max, row_offset, group_sum, scale):
    n = S.shape[0]
    hot = 0
    for j in range(n):
        offset = S.dtype.type(row_offset[j])
        for chunk in range(chunk_max.shape[1]):
            if scale * chunk_max[j, chunk] - offset > 0:
                hot += 1
                lo = np.uint64(chunk * SEARCH_CHUNK)
                hi = np.uint64(min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n))
                lean_chunk_sums(lo, hi, S[j], group_sum, scale, offset)
    return hot


def timed(function, *arguments, repeats=3):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*arguments)
        times.append(time.perf_counter() - started)
    return float(np.median(times)), result


def profile_section(n_samples, damping, warm_up=30):
    numba.set_num_threads(1)
    S = prepared_similarities(blobs(n_samples, 10))
    states = {engine: make_state(engine, S, damping, 1) for engine in ("lean", "compact")}
    whole = {"lean": [], "compact": []}
    for t in range(warm_up + 5):
        for engine, state in states.items():
            started = time.perf_counter()
            state.iterate()
            if t >= warm_up:
                whole[engine].append(time.perf_counter() - started)
    state = states["compact"]
    dtype = S.dtype.type
    A_row = state.acol.copy()
    scale = dtype(state.scale)
    exceptions = timed(
        phase_exceptions, S, state.acol, state.col_sum, state.row_offset,
        state.exception_columns, state.exception_values.copy(), state.exception_start,
        state.exception_count.copy(), np.zeros(n_samples, dtype=np.int32), A_row,
        state.chunk_out.copy(), scale, dtype(damping),
    )[0]
    keys = timed(phase_keys_and_search, S, A_row, state.chunk_top[0], state.chunk_values[0])[0]
    sums, hot = timed(phase_sums, S, state.chunk_max, state.row_offset,
                      np.zeros(n_samples), scale)
    lean, compact = (float(np.median(whole[e])) for e in ("lean", "compact"))
    fraction = state.exception_count.sum() / n_samples**2
    print(f"\n## One thread, N = {n_samples}, damping {damping}, after {warm_up} iterations "
          f"(exceptions {fraction:.2%} of N^2, hot chunks {hot / state.chunk_max.size:.0%}; "
          f"{machine()}, {load()})\n")
    print("| part | ms per iteration |")
    print("|---|---|")
    for name, seconds in (("lean: whole iteration", lean), ("compact: whole iteration", compact),
                          ("compact: lists (mark, finish, drop, form, restore)", exceptions),
                          ("compact: keys of A + S and the search", keys),
                          ("compact: column sums of the hot chunks", sums)):
        print(f"| {name} | {seconds * 1e3:.1f} |")
    print(f"| compact: the rest (scalars, new pairs, list growth, E, group copies) | "
          f"{(compact - exceptions - keys - sums) * 1e3:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--damping", type=float, default=0.5)
    parser.add_argument("--rss", type=int, nargs="*", default=[])
    parser.add_argument("--engines", nargs="*", default=["lean", "compact"])
    parser.add_argument("--counters", type=int)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--profile", type=int, nargs="*", default=[])
    parser.add_argument("--rss-only", nargs=3, metavar=("N", "ENGINE", "DAMPING"))
    args = parser.parse_args()
    if args.rss_only:
        rss_child(int(args.rss_only[0]), args.rss_only[1], float(args.rss_only[2]))
        return
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"# Compact engine report: {machine()}, numba {numba.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.sizes:
        timing_section(args.sizes, args.repeats, args.threads, args.damping)
    for n in args.rss:
        rss_section(n, args.damping, args.engines)
    if args.counters:
        counters_section(args.counters, args.threads, args.every)
    for n in args.profile:
        profile_section(n, args.damping)


if __name__ == "__main__":
    main()
