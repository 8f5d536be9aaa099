"""Sparse Affinity Propagation: the numbers of issue 5, regenerated.

    python asv_benchmarks/sparse_report.py complete [--n 2000]
    python asv_benchmarks/sparse_report.py quality [--n 8000] [--neighbors 10 30 100 300]
    python asv_benchmarks/sparse_report.py scale [--n 1000000] [--neighbors 30]

Each measurement runs in its own process (peak RSS is that process's), with
2 threads unless ``--threads`` says otherwise, and prints a markdown table.

- ``complete``: a sparse matrix storing every pair (N = 2000, float64)
  against the dense engine on the same matrix: identical exemplars, labels
  and iterations, and the ratio of the fit times.
- ``quality``: make_blobs(8000, 8 features, 10 centers, random_state=0),
  damping 0.9, max_iter 1000, convergence_iter 100; dense fastap at each
  preference (the median of the similarities, scikit-learn's default, and a
  lower one), then ``affinity="nearest_neighbors"`` with and without
  ``merge_fragments``: adjusted Rand index against dense, clusters,
  iterations. A dense fit on a random 95% of the samples is the control for
  how sensitive the dense clustering itself is at that preference.
- ``scale``: make_blobs(N, 16 features, 100 centers), the whole
  ``affinity="nearest_neighbors"`` fit with default parameters, with its
  breakdown: neighbour search, graph, sparse AP (iterations, time per
  iteration, bytes per stored pair), merge levels, peak RSS.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(kind, params):
    """Run ``_measure_<kind>(**params)`` in a fresh process; return its JSON."""
    code = (
        f"import json, sys; sys.path.insert(0, {HERE!r}); import sparse_report; "
        f"print('RESULT' + json.dumps(sparse_report._measure_{kind}(**{params!r})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"measurement {kind} failed:\n{completed.stdout}\n{completed.stderr}")


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _blobs(n, n_features, centers):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(
        n_samples=n, n_features=n_features, centers=centers, cluster_std=1.0, random_state=0
    )
    return X


# --------------------------------------------------------------------------
# Complete graph vs dense.
# --------------------------------------------------------------------------


def _measure_complete(n, threads, repeats):
    import warnings

    import numpy as np
    from scipy import sparse
    from sklearn.metrics import euclidean_distances

    import fastap

    warnings.simplefilter("ignore")
    S = -euclidean_distances(_blobs(n, 8, 10), squared=True)
    complete = sparse.csr_matrix(
        (S.ravel().copy(), np.tile(np.arange(n), n), np.arange(0, n * n + 1, n)), shape=(n, n)
    )
    params = {"affinity": "precomputed", "random_state": 0, "n_jobs": threads}
    fastap.AffinityPropagation(max_iter=2, **params).fit(S[:600, :600])  # compile
    fastap.AffinityPropagation(max_iter=2, **params).fit(complete[:600, :600])
    times = {"dense": [], "sparse": []}
    fits = {}
    for _ in range(repeats):
        for name, data in (("dense", S), ("sparse", complete)):
            started = time.perf_counter()
            fits[name] = fastap.AffinityPropagation(**params).fit(data)
            times[name].append(time.perf_counter() - started)
    dense, ours = fits["dense"], fits["sparse"]
    return {
        "n": n,
        "n_pairs": int(complete.nnz),
        "identical": bool(
            np.array_equal(dense.labels_, ours.labels_)
            and np.array_equal(dense.cluster_centers_indices_, ours.cluster_centers_indices_)
            and dense.n_iter_ == ours.n_iter_
        ),
        "n_iter": [int(dense.n_iter_), int(ours.n_iter_)],
        "clusters": [int(dense.cluster_centers_indices_.size),
                     int(ours.cluster_centers_indices_.size)],
        "dense_s": float(np.median(times["dense"])),
        "sparse_s": float(np.median(times["sparse"])),
    }


def complete(args):
    r = _child("complete", {"n": args.n, "threads": args.threads, "repeats": args.repeats})
    print(f"Complete graph, N={r['n']} ({r['n_pairs']} stored pairs), float64, "
          f"{args.threads} threads, medians of {args.repeats} fits\n")
    print("| identical to dense | iterations dense / sparse | clusters | dense fit | sparse fit "
          "| sparse / dense |")
    print("|---|---|---|---|---|---|")
    print(f"| {'yes' if r['identical'] else 'NO'} | {r['n_iter'][0]} / {r['n_iter'][1]} "
          f"| {r['clusters'][0]} | {r['dense_s']:.2f} s | {r['sparse_s']:.2f} s "
          f"| {r['sparse_s'] / r['dense_s']:.2f}x |")


# --------------------------------------------------------------------------
# Quality against dense.
# --------------------------------------------------------------------------

_QUALITY = {"damping": 0.9, "max_iter": 1000, "convergence_iter": 100, "random_state": 0}


def _measure_dense_labels(n, preference, threads, keep_fraction=1.0):
    import warnings

    import numpy as np
    from sklearn.metrics import euclidean_distances

    import fastap

    warnings.simplefilter("ignore")
    X = _blobs(n, 8, 10)
    kept = np.arange(n)
    if keep_fraction < 1.0:
        rng = np.random.RandomState(1)
        kept = np.sort(rng.choice(n, int(n * keep_fraction), replace=False))
        X = X[kept]
    if preference == "median":
        preference = float(np.median(-euclidean_distances(X.astype(np.float64), squared=True)))
    started = time.perf_counter()
    ap = fastap.AffinityPropagation(preference=preference, n_jobs=threads, **_QUALITY).fit(X)
    return {
        "preference": preference,
        "labels": ap.labels_.tolist(),
        "kept": kept.tolist(),
        "clusters": int(ap.cluster_centers_indices_.size),
        "n_iter": int(ap.n_iter_),
        "converged": bool(ap.converged_),
        "seconds": time.perf_counter() - started,
    }


def _measure_knn_labels(n, preference, threads, n_neighbors, merge):
    import warnings

    import fastap

    warnings.simplefilter("ignore")
    X = _blobs(n, 8, 10)
    started = time.perf_counter()
    ap = fastap.AffinityPropagation(
        affinity="nearest_neighbors", n_neighbors=n_neighbors, merge_fragments=merge,
        preference=preference, n_jobs=threads, **_QUALITY,
    ).fit(X)
    return {
        "labels": ap.labels_.tolist(),
        "clusters": int(ap.cluster_centers_indices_.size),
        "n_iter": int(ap.n_iter_),
        "converged": bool(ap.converged_),
        "seconds": time.perf_counter() - started,
        "pairs": int(ap.affinity_matrix_.nnz),
    }


def quality(args):
    from sklearn.metrics import adjusted_rand_score

    print(f"make_blobs(n_samples={args.n}, n_features=8, centers=10, cluster_std=1.0, "
          "random_state=0), float64, damping=0.9, max_iter=1000, convergence_iter=100, "
          f"random_state=0, {args.threads} threads\n")
    for preference in ["median"] + [float(p) for p in args.preferences]:
        dense = _child("dense_labels", {"n": args.n, "preference": preference,
                                        "threads": args.threads})
        control = _child("dense_labels", {"n": args.n, "preference": dense["preference"],
                                          "threads": args.threads, "keep_fraction": 0.95})
        on_kept = [dense["labels"][i] for i in control["kept"]]
        stability = adjusted_rand_score(on_kept, control["labels"])
        name = "median of the similarities" if preference == "median" else "given"
        print(f"Preference {dense['preference']:.2f} ({name}): dense fastap "
              f"{dense['clusters']} clusters, {dense['n_iter']} iterations, converged "
              f"{dense['converged']}, {dense['seconds']:.1f} s. Control, how stable the dense "
              f"clustering itself is: dense fastap on a random 95% of the samples finds "
              f"{control['clusters']} clusters, ARI {stability:.3f}"
              f" against the full dense fit on those samples.\n")
        print("| n_neighbors | stored pairs | merge_fragments | clusters | ARI vs dense "
              "| iterations | converged | fit |")
        print("|---|---|---|---|---|---|---|---|")
        for k in args.neighbors:
            for merge in (False, True):
                r = _child("knn_labels", {"n": args.n, "preference": dense["preference"],
                                          "threads": args.threads, "n_neighbors": k,
                                          "merge": merge})
                ari = adjusted_rand_score(dense["labels"], r["labels"])
                print(f"| {k} | {r['pairs']} | {merge} | {r['clusters']} | {ari:.3f} "
                      f"| {r['n_iter']} | {r['converged']} | {r['seconds']:.1f} s |", flush=True)
        print()


# --------------------------------------------------------------------------
# Scale.
# --------------------------------------------------------------------------


def _measure_scale(n, n_neighbors, threads):
    import warnings

    import numpy as np

    import fastap
    from fastap import _graph, _neighbors, _run, _sparse

    warnings.simplefilter("ignore")
    X = _blobs(n, 16, 100)
    rss_data = _peak_rss_mib()
    timings = {"kneighbors": [], "union": [], "order": [], "iterate": {}, "runs": [],
               "merge": []}

    def timed(store, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            value = function(*args, **kwargs)
            store.append(time.perf_counter() - started)
            return value
        return wrapper

    _graph.kneighbors = timed(timings["kneighbors"], _graph.kneighbors)
    _graph.symmetric_union = timed(timings["union"], _graph.symmetric_union)
    _graph.locality_order = timed(timings["order"], _graph.locality_order)
    _neighbors.merge_fragments = timed(timings["merge"], _neighbors.merge_fragments)
    iterate = _sparse.SparseMessageState.iterate

    def timed_iterate(state):
        started = time.perf_counter()
        value = iterate(state)
        timings["iterate"].setdefault(state.graph.nnz, []).append(time.perf_counter() - started)
        return value

    _sparse.SparseMessageState.iterate = timed_iterate
    run = _run.run

    def timed_run(state, options, *args):
        started = time.perf_counter()
        result = run(state, options, *args)
        graph = getattr(state, "graph", None)
        if graph is None:  # a dense merge level
            return result
        dtype = graph.S.dtype
        timings["runs"].append({
            "samples": int(graph.n), "pairs": int(graph.nnz),
            "dtype": str(dtype), "seconds": time.perf_counter() - started,
            "n_iter": int(result.n_iter), "converged": bool(result.converged),
            "clusters": int(result.cluster_centers_indices.size),
            "bytes_per_pair": _sparse.fit_memory_bytes(0, graph.nnz, dtype) / graph.nnz,
        })
        return result

    _run.run = timed_run
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    ap = fastap.AffinityPropagation(
        affinity="nearest_neighbors", n_neighbors=n_neighbors, random_state=0, n_jobs=threads
    ).fit(X)
    total = time.perf_counter() - started
    for pairs, values in list(timings["iterate"].items()):
        timings["iterate"][pairs] = {"count": len(values), "median": float(np.median(values)),
                                     "sum": float(np.sum(values))}
    return {
        "n": n, "k": n_neighbors, "threads": threads, "total_s": total,
        "clusters": int(ap.cluster_centers_indices_.size), "n_iter": int(ap.n_iter_),
        "converged": bool(ap.converged_), "preference": float(ap.preference_),
        "timings": timings, "peak_rss_mib": _peak_rss_mib(), "rss_after_data_mib": rss_data,
        "stored_pairs": int(ap.affinity_matrix_.nnz),
        "load": [load_before, os.getloadavg()[0]],
    }


def scale(args):
    for k in args.neighbors:
        r = _child("scale", {"n": args.n, "n_neighbors": k, "threads": args.threads})
        t = r["timings"]
        print(f"make_blobs(n_samples={r['n']}, n_features=16, centers=100, random_state=0), "
              f"affinity='nearest_neighbors', n_neighbors={k}, float64, default parameters "
              f"(preference {r['preference']:.1f}, merge_fragments='auto'), "
              f"{r['threads']} threads\n")
        print(f"- whole fit: **{r['total_s']:.1f} s**, peak RSS **{r['peak_rss_mib']:.0f} MiB** "
              f"({r['rss_after_data_mib']:.0f} MiB after making the data), "
              f"{r['clusters']} clusters, {r['n_iter']} iterations in all, "
              f"converged {r['converged']}")
        print(f"- neighbour search: {t['kneighbors'][0]:.1f} s; symmetric graph "
              f"({r['stored_pairs']} stored pairs, diagonal included): "
              f"{sum(t['union']):.1f} s; locality order: {sum(t['order']):.1f} s")
        for run in t["runs"]:
            per = t["iterate"].get(str(run["pairs"]), t["iterate"].get(run["pairs"]))
            per_text = (f", {per['median'] * 1e3:.1f} ms per iteration "
                        f"({per['median'] / run['pairs'] * 1e9:.2f} ns per stored pair)"
                        if per else "")
            print(f"- sparse AP on {run['samples']} samples, {run['pairs']} stored pairs "
                  f"({run['dtype']}, {run['bytes_per_pair']:.0f} bytes per stored pair): "
                  f"{run['seconds']:.1f} s, {run['n_iter']} iterations{per_text}, "
                  f"{run['clusters']} clusters, converged {run['converged']}")
        if t["merge"]:
            print(f"- merge levels in all (sparse levels above included): {t['merge'][0]:.1f} s")
        accounted = (t["kneighbors"][0] + sum(t["union"]) + sum(t["order"])
                     + t["runs"][0]["seconds"] + sum(t["merge"]))
        print(f"- the rest (similarities of the stored pairs, preference, noise, assignment, "
              f"renumbering back): {r['total_s'] - accounted:.1f} s")
        print(f"- load average of the machine (1 min) before / after: "
              f"{r['load'][0]:.1f} / {r['load'][1]:.1f}")
        print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["complete", "quality", "scale"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--neighbors", type=int, nargs="+")
    parser.add_argument("--preferences", type=float, nargs="*", default=[-3000.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    defaults = {"complete": (2000, None), "quality": (8000, [10, 30, 100, 300]),
                "scale": (1_000_000, [30])}
    n, neighbors = defaults[args.what]
    args.n = args.n or n
    args.neighbors = args.neighbors or neighbors
    {"complete": complete, "quality": quality, "scale": scale}[args.what](args)


if __name__ == "__main__":
    main()
