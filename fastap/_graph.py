"""k-nearest-neighbour similarity graphs, without N x N memory.

The neighbours come from a library, chosen by size (measured on
``make_blobs`` with 16 features, k = 30, one thread of a 2-vCPU VM):

* up to ``EXACT_MAX_SAMPLES`` samples, scikit-learn's exact
  ``NearestNeighbors`` with a k-d tree (brute force for sparse features or
  more than ``KD_TREE_MAX_FEATURES`` features): 0.5 s at 20,000 samples,
  5.6 s at 100,000, but 58 s at 300,000 (the tree degrades in 16
  dimensions);
* above, pynndescent's approximate nearest-neighbour descent: about 35 s at
  300,000 samples plus ~20 s of compilation once per process (recall 0.9999
  against the exact lists at 100,000). It runs on one thread: its lists
  depend on its thread count (measured at 200,000 samples: 1 and 2 threads
  differ in 3,003 rows; runs with the same count and ``random_state``
  agree), and fastap's results must not depend on ``n_jobs``. One thread
  costs 1.75x the two-thread time of the descent (11.9 s against 6.8 s at
  200,000 samples).

The graph stores ``(i, j)`` and ``(j, i)`` whenever ``j`` is among the
``n_neighbors`` nearest neighbours of ``i`` or ``i`` among those of ``j``
(the union, so every row stores at least ``n_neighbors`` pairs and the
graph is symmetric), with the same similarity both ways, computed exactly
from the features in float64: ``-||x_i - x_j||^2`` (``metric="euclidean"``)
or the cosine similarity ``x_i . x_j / (|x_i| |x_j|)`` (``metric="cosine"``,
found as the Euclidean neighbours of the normalised rows). The diagonal is
not stored (the fit inserts the preference).
"""

import numpy as np
from scipy import sparse

from fastap._kernels import graph as kernels

EXACT_MAX_SAMPLES = 100_000
KD_TREE_MAX_FEATURES = 30


def normalized_rows(X):
    """Rows of ``X`` scaled to unit length (zero rows stay zero), float64."""
    from sklearn.preprocessing import normalize

    return normalize(X.astype(np.float64, copy=False), norm="l2", copy=True)


def kneighbors(X, n_neighbors, *, random_state=None, exact=None):
    """Indices (n, n_neighbors) int32 of the Euclidean nearest neighbours of
    each row of ``X``, itself excluded (padding -1 where fewer exist).

    ``exact=None`` chooses by size (see the module notes); True or False
    forces scikit-learn's exact search or pynndescent.
    """
    n = X.shape[0]
    n_neighbors = int(min(n_neighbors, n - 1))
    if n_neighbors <= 0:
        return np.full((n, 0), -1, dtype=np.int32)
    if exact is None:
        exact = n <= EXACT_MAX_SAMPLES
    if exact:
        from sklearn.neighbors import NearestNeighbors

        tree = not sparse.issparse(X) and X.shape[1] <= KD_TREE_MAX_FEATURES
        search = NearestNeighbors(
            n_neighbors=n_neighbors, algorithm="kd_tree" if tree else "brute"
        ).fit(X)
        # X=None: each sample is not its own neighbour, even among duplicates.
        neighbors = search.kneighbors(return_distance=False)
        return neighbors.astype(np.int32)

    from pynndescent import NNDescent

    # One thread: the descent's lists depend on its thread count (see above).
    index = NNDescent(
        X, n_neighbors=n_neighbors + 1, metric="euclidean", random_state=random_state,
        n_jobs=1, low_memory=True, compressed=True,
    )
    found = index.neighbor_graph[0]
    del index
    return _drop_self(found.astype(np.int32), n_neighbors)


def _drop_self(found, n_neighbors):
    """Remove each row's own index (or, when absent, its last neighbour)."""
    n = found.shape[0]
    is_self = found == np.arange(n, dtype=found.dtype)[:, None]
    # Keep the first n_neighbors entries that are not the row itself.
    keep = ~is_self & (np.cumsum(~is_self, axis=1) <= n_neighbors)
    return found[keep].reshape(n, n_neighbors)


def symmetric_union(neighbors, with_self=False):
    """CSR structure ``(indptr, indices)`` of the union of the neighbour
    lists and their transpose, rows sorted; the diagonal pair ``(i, i)``
    stored only ``with_self``."""
    n, k = neighbors.shape
    rev_indptr = np.empty(n + 1, dtype=np.int64)
    rev_indices = np.empty(int(np.count_nonzero(neighbors >= 0)), dtype=np.int32)
    kernels.reverse_lists(neighbors, rev_indptr, rev_indices)
    slots = k + bool(with_self)
    scratch = np.empty(n * slots + rev_indices.size, dtype=np.int32)
    row_length = np.empty(n, dtype=np.int64)
    kernels.union_rows(neighbors, rev_indptr, rev_indices, bool(with_self), scratch, row_length)
    del rev_indices
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_length, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    kernels.compact_rows(slots, rev_indptr, scratch, indptr, indices)
    return indptr, indices


def locality_order(indptr, indices):
    """Reverse Cuthill-McKee order of a symmetric graph's samples.

    Renumbered in this order, neighbours get nearby indices, so the message
    passes read memory close together: on 100,000 blobs (16 features,
    k = 30) the column pass went from 8.9 to 4.6 ns per stored pair.
    """
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    n = indptr.size - 1
    structure = sparse.csr_matrix(
        (np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(n, n)
    )
    return reverse_cuthill_mckee(structure, symmetric_mode=True).astype(np.intp)


def renumbered(neighbors, order):
    """Neighbour lists of the samples taken in ``order``, renumbered so that
    sample ``order[i]`` becomes ``i`` (padding -1 stays)."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    lists = neighbors[order]
    return np.where(lists >= 0, inverse[np.maximum(lists, 0)], -1).astype(np.int32)


def nearest_neighbors_graph_arrays(X, n_neighbors, *, metric="euclidean", dtype=np.float64,
                                   random_state=None, exact=None):
    """``(indptr, indices, data)`` of the symmetrised k-NN similarity graph
    of dense features ``X`` (see the module notes)."""
    Xf = features_for_metric(X, metric)
    neighbors = kneighbors(Xf, n_neighbors, random_state=random_state, exact=exact)
    indptr, indices = symmetric_union(neighbors)
    del neighbors
    return indptr, indices, pair_similarities(Xf, metric, indptr, indices).astype(
        dtype, copy=False
    )


def features_for_metric(X, metric):
    """The float64 rows whose Euclidean neighbours are ``metric``'s: ``X``
    itself, or its rows scaled to unit length for the cosine."""
    if metric == "cosine":
        return normalized_rows(np.asarray(X))
    return np.ascontiguousarray(X, dtype=np.float64)


def pair_similarities(Xf, metric, indptr, indices):
    """Similarities of the stored pairs of a CSR structure, float64, from
    rows prepared by :func:`features_for_metric`."""
    values = np.empty(indices.size, dtype=np.float64)
    if metric == "cosine":
        kernels.dot_products(Xf, indptr, indices, values)
    else:
        kernels.negative_squared_distances(Xf, indptr, indices, values)
    return values


def locality_ordered_graph(Xf, n_neighbors, metric, random_state=None):
    """The k-NN graph of ``Xf`` (from :func:`features_for_metric`) on the
    samples renumbered for locality (:func:`locality_order`), with every
    diagonal pair stored (value 0: the fit puts the preference there).

    Returns ``(order, Xf[order], indptr, indices, values)``; sample
    ``order[i]`` of the input is sample ``i`` of the graph.
    """
    neighbors = kneighbors(Xf, n_neighbors, random_state=random_state)
    order = locality_order(*symmetric_union(neighbors))
    neighbors = renumbered(neighbors, order)
    Xf = Xf[order]
    indptr, indices = symmetric_union(neighbors, with_self=True)
    del neighbors
    return order, Xf, indptr, indices, pair_similarities(Xf, metric, indptr, indices)


def nearest_neighbors_graph(X, n_neighbors=30, *, metric="euclidean", random_state=None):
    """The k-nearest-neighbour similarity graph of ``X``, as a sparse matrix.

    Ready for ``AffinityPropagation(affinity="precomputed").fit``: pairs not
    stored mean "never an exemplar for this sample". It is the graph
    ``affinity="nearest_neighbors"`` builds.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Dense features.
    n_neighbors : int, default=30
        Neighbours per sample (at most ``n_samples - 1``); the graph is the
        union of each sample's list and the lists it appears in.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Similarity of a stored pair: ``-||x_i - x_j||^2`` or the cosine
        similarity.
    random_state : int, RandomState instance or None, default=None
        Seed of the approximate search (used above 100,000 samples).

    Returns
    -------
    S : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
        float32 for float32 ``X``, else float64; no diagonal stored.
    """
    from sklearn.utils import check_array

    X = check_array(X, dtype=[np.float64, np.float32])
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or (
        n_neighbors < 1
    ):
        raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}.")
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    indptr, indices, data = nearest_neighbors_graph_arrays(
        X, n_neighbors, metric=metric, dtype=dtype, random_state=random_state
    )
    n = X.shape[0]
    return sparse.csr_matrix((data, indices, indptr), shape=(n, n))
