"""Sparse Affinity Propagation: k-NN fits and one sparse iteration.

The issue's large numbers (N = 10^6, quality against dense) take minutes and
come from ``asv_benchmarks/sparse_report.py``; these track the same code on
sizes asv can repeat.
"""

import warnings

import numba
import numpy as np

from .common import QUICK, Benchmark
from .datasets import blobs

SPARSE_SIZES = [300] if QUICK else [5000, 50000]
MERGE = [False, True]


class SparseFit(Benchmark):
    """``affinity="nearest_neighbors"`` fit (graph, sparse AP, merging)."""

    param_names = ["n_samples", "merge_fragments"]
    params = [SPARSE_SIZES, MERGE]

    def setup(self, n_samples, merge_fragments):
        from fastap import AffinityPropagation

        self.X = blobs(n_samples)
        self.estimator = AffinityPropagation(
            affinity="nearest_neighbors", n_neighbors=30, merge_fragments=merge_fragments,
            random_state=0, n_jobs=numba.get_num_threads(),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            AffinityPropagation(affinity="nearest_neighbors", max_iter=3).fit(blobs(300))

    def time_fit(self, n_samples, merge_fragments):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.estimator.fit(self.X)

    def peakmem_fit(self, n_samples, merge_fragments):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.estimator.fit(self.X)


class SparseIteration(Benchmark):
    """One sparse iteration on a k-NN graph (k = 30); divide by the stored
    pairs (``track_stored_pairs``) for the time per pair."""

    param_names = ["n_samples", "dtype"]
    params = [SPARSE_SIZES, ["float32", "float64"]]
    number = 5
    repeat = (1, 5, 30.0)

    def setup(self, n_samples, dtype):
        from fastap import _graph, _sparse

        X = blobs(n_samples)
        neighbors = _graph.kneighbors(X, 30)
        indptr, indices = _graph.symmetric_union(neighbors, with_self=True)
        values = _graph.pair_similarities(
            np.ascontiguousarray(X, dtype=np.float64), "euclidean", indptr, indices
        ).astype(dtype)
        graph = _sparse.with_diagonal(indptr, indices, values, np.median(values))
        self.state = _sparse.SparseMessageState(
            graph, damping=0.5, random_state=np.random.RandomState(0),
            n_threads=numba.get_num_threads(),
        )
        self.state.prepare()
        self.state.iterate()
        self.state.iterate()

    def time_iteration(self, n_samples, dtype):
        self.state.iterate()

    def track_stored_pairs(self, n_samples, dtype):
        return self.state.graph.nnz
