"""Affinity Propagation on a sparse similarity graph: the driver.

Like ``_engine.py`` for dense matrices, this module owns the buffers, the
set-up (graph validation, diagonal, noise), the iteration loop (run from
Python through ``_engine.iterate_until_converged``, so Ctrl-C, ``verbose``
and the convergence test are the dense engine's) and the final assignment.
The message kernels are in ``_kernels/sparse_messages.py``.

Semantics of a sparse similarity matrix
---------------------------------------
* A stored pair ``(i, k)`` is a similarity (an explicitly stored 0 is the
  similarity 0). A pair that is not stored has similarity ``-inf``: ``k``
  can never be the exemplar of ``i``.
* The diagonal carries the preference: it is inserted where the matrix does
  not store it, and a stored diagonal value is replaced (as dense AP
  replaces the diagonal).
* The default preference is the median of the stored values (a stored
  diagonal included, so that a complete graph gets the dense default).
* Duplicate pairs are an error; asymmetric graphs are fine.
* A sample whose row stores only its diagonal is its own exemplar (see
  ``sparse_messages.py``, "Isolated samples").
* Assignment follows scikit-learn's: each sample goes to its most similar
  exemplar among its stored pairs, then each cluster's exemplar becomes the
  member with the largest sum of similarities from the other members (a
  member that some other member does not store a pair with cannot win),
  and samples are assigned again. A sample that stores no pair with any
  exemplar becomes an exemplar itself before this assignment.

On a complete graph (every pair stored) the float64 result is identical to
the dense engine's: the same noise stream (drawn in CSR order, which is the
dense row-major order), the same updates, the same order of every sum.
"""

import time
import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning

from fastap import _engine
from fastap._kernels import graph as graph_kernels
from fastap._kernels import sparse_messages as kernels

# Below this many stored pairs one thread is as fast as two (the parallel
# passes pay for two parallel regions per iteration). Per iteration, k-NN
# graphs, serial / 2 threads: 3,710 pairs 20 / 25 us, 7,498 pairs 40 / 40 us,
# 14,202 pairs 83 / 74 us, 32,194 pairs 231 / 132 us.
PARALLEL_MIN_PAIRS = 10_000

# Stored pairs of degeneracy noise drawn at a time (8 MiB of float64).
_NOISE_BLOCK_PAIRS = 1 << 20


class SparseGraph:
    """A similarity graph in CSR order with every diagonal pair stored.

    Attributes
    ----------
    n : int
    indptr : ndarray (n + 1,), int64
    indices : ndarray (nnz,), int32, sorted within each row
    S : ndarray (nnz,), float32 or float64
        Similarities; the preferences on the diagonal once prepared.
    diagonal : ndarray (n,), int64
        Position of the pair ``(i, i)``.
    """

    def __init__(self, indptr, indices, S, diagonal):
        self.n = indptr.size - 1
        self.indptr = indptr
        self.indices = indices
        self.S = S
        self.diagonal = diagonal

    @property
    def nnz(self):
        return self.S.size

    def to_scipy(self, like=None):
        """The graph as a CSR matrix (a CSR array when ``like`` is a sparse array)."""
        container = sparse.csr_array if isinstance(like, sparse.sparray) else sparse.csr_matrix
        return container((self.S, self.indices, self.indptr), shape=(self.n, self.n))


# --------------------------------------------------------------------------
# Memory.
# --------------------------------------------------------------------------


def _position_dtype(nnz):
    return np.int32 if nnz < 2**31 else np.int64


def fit_memory_bytes(n_samples, n_pairs, dtype):
    """Bytes a sparse fit holds at its peak: per stored pair ``S``, ``R``,
    ``A`` (dtype), a column index (int32) and a CSC position; O(n) vectors."""
    itemsize = np.dtype(dtype).itemsize
    per_pair = 3 * itemsize + 4 + np.dtype(_position_dtype(n_pairs)).itemsize
    return n_pairs * per_pair + n_samples * (4 * 8 + 2 * itemsize + 2)


def check_memory(n_samples, n_pairs, dtype):
    """Raise MemoryError, before allocating, when a sparse fit clearly cannot fit."""
    needed = fit_memory_bytes(n_samples, n_pairs, dtype)
    available = _engine.available_memory_bytes()
    if available is None or needed <= available:
        return
    raise MemoryError(
        f"Sparse affinity propagation on {n_samples} samples with {n_pairs} stored pairs in "
        f"{np.dtype(dtype).name} needs about {needed / 2**30:.1f} GiB, but only "
        f"{available / 2**30:.1f} GiB of memory is available."
    )


# --------------------------------------------------------------------------
# Set-up.
# --------------------------------------------------------------------------


def canonical_csr(S, square=True):
    """``(indptr, indices, data)`` of a sparse matrix (square unless
    ``square=False``), sorted within rows, without summing duplicates (which
    are an error), with float32 or float64 data (other dtypes become
    float64 here, after the duplicate check: SciPy's ``astype`` would sum
    them first).

    ``S`` is any SciPy sparse matrix or array with finite values (already
    validated). The arrays are new (the input is never modified).
    """
    n_rows, n_cols = S.shape
    if square and n_rows != n_cols:
        raise ValueError(
            f"The matrix of similarities must be a square array. Got {S.shape} instead."
        )
    if S.format == "coo":
        # COO -> CSR in SciPy sums duplicates; build CSR by a stable sort on
        # the row instead, so that duplicates stay visible.
        row = np.asarray(S.row if hasattr(S, "row") else S.coords[0])
        col = np.asarray(S.col if hasattr(S, "col") else S.coords[1])
        order = np.argsort(row, kind="stable")
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
        csr = sparse.csr_matrix((S.data[order], col[order], indptr), shape=(n_rows, n_cols))
    elif S.format == "csr":
        csr = sparse.csr_matrix(S, copy=True)
    else:
        csr = sparse.csr_matrix(S.tocsr(copy=True))  # CSC, LIL, DOK...: never duplicates summed
    csr.sort_indices()  # in place; keeps duplicates
    indptr = csr.indptr.astype(np.int64, copy=False)
    indices = csr.indices.astype(np.int32, copy=False)
    if kernels.has_duplicates(indptr, indices):
        raise ValueError(
            "The sparse similarity matrix stores some pair (i, j) more than once; "
            "duplicate entries are ambiguous (SciPy would sum them): remove them, "
            "or call sum_duplicates() if the sum is what you mean."
        )
    return indptr, indices, csr.data.astype(message_dtype(csr.dtype), copy=False)


def message_dtype(dtype):
    """Similarities and messages of a sparse fit: float32 stays float32,
    everything else is float64."""
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def default_preference(data):
    """Median of the stored similarities (a stored diagonal included)."""
    if data.size == 0:
        return data.dtype.type(0)
    return data.dtype.type(np.median(data))


def with_diagonal(indptr, indices, data, preference):
    """A :class:`SparseGraph` with every diagonal pair present, holding the
    preference (0-d or (n,) array of the dtype of ``data``).

    When every row already stores its diagonal, the graph uses the given
    arrays and ``data`` is overwritten there (callers pass arrays they own);
    otherwise the arrays are copied with the missing pairs inserted.
    """
    n = indptr.size - 1
    preference = np.ascontiguousarray(
        np.broadcast_to(np.asarray(preference, dtype=data.dtype), (n,))
    )
    diagonal = np.empty(n, dtype=np.int64)
    kernels.find_diagonal(indptr, indices, diagonal)
    missing = diagonal < 0
    if not missing.any():
        kernels.set_diagonal(diagonal, data, preference)
        return SparseGraph(indptr, indices, data, diagonal)
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.diff(indptr) + missing, out=new_indptr[1:])
    nnz = int(new_indptr[-1])
    new_indices = np.empty(nnz, dtype=np.int32)
    new_data = np.empty(nnz, dtype=data.dtype)
    kernels.insert_diagonal(
        indptr, indices, data, new_indptr, new_indices, new_data, diagonal, preference
    )
    return SparseGraph(new_indptr, new_indices, new_data, diagonal)


def add_degeneracy_noise(graph, random_state):
    """scikit-learn's ``S += (eps * S + tiny * 100) * N(0, 1)`` on the stored
    pairs, the normals drawn in CSR order by blocks from ``random_state``: on
    a complete graph the very stream of the dense N x N draw."""
    values = graph.S
    info = np.finfo(values.dtype)
    for start in range(0, values.size, _NOISE_BLOCK_PAIRS):
        stop = min(start + _NOISE_BLOCK_PAIRS, values.size)
        noise = random_state.standard_normal(size=stop - start)
        kernels.add_degeneracy_noise(values[start:stop], noise, info.eps, info.tiny * 100)


def _is_complete_with_equal_similarities(graph):
    """The dense engine's degenerate case, on a graph storing every pair:
    ``(True, the off-diagonal value)`` or ``(False, None)``."""
    n = graph.n
    if n < 2 or graph.nnz != n * n:
        return False, None
    preferences = graph.S[graph.diagonal]
    if not np.all(preferences == preferences[0]):
        return False, None
    off_diagonal = np.ones(graph.nnz, dtype=bool)
    off_diagonal[graph.diagonal] = False
    values = graph.S[off_diagonal]
    return bool(np.all(values == values[0])), values[0]


# --------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------


class SparseMessageState:
    """The buffers of one sparse run and one iteration (the interface of
    ``_engine.MessageState`` that ``_engine.iterate_until_converged`` uses).

    Parameters
    ----------
    graph : SparseGraph
        Prepared (preference and noise in ``graph.S``), read only from here.
    damping : float
    n_threads : int
        Threads the caller has given Numba; the parallel kernels run when
        there are several and the graph stores ``PARALLEL_MIN_PAIRS`` pairs.
    """

    def __init__(self, graph, damping, n_threads):
        n, nnz = graph.n, graph.nnz
        dtype = graph.S.dtype
        self.graph = graph
        self.col_indptr = np.empty(n + 1, dtype=np.int64)
        self.col_order = np.empty(nnz, dtype=_position_dtype(nnz))
        kernels.column_order(graph.indptr, graph.indices, self.col_indptr, self.col_order)
        self.R = np.zeros(nnz, dtype=dtype)
        self.A = np.zeros(nnz, dtype=dtype)
        self.col_sum = np.zeros(n, dtype=dtype)
        self.is_exemplar = np.zeros(n, dtype=np.bool_)
        self.parallel = n_threads > 1 and nnz >= PARALLEL_MIN_PAIRS
        self.availability_pending = False
        self.set_damping(damping)
        self.n_iter = 0

    def set_damping(self, damping):
        """Use ``damping`` from the next iteration on."""
        dtype = self.graph.S.dtype.type
        self.damping_value = float(damping)
        self.damping = dtype(damping)
        self.one_minus_damping = dtype(1 - damping)  # as scikit-learn: 1 - d in float64 first
        if not self.availability_pending:
            self.last_damping, self.last_one_minus_damping = self.damping, self.one_minus_damping

    def iterate(self):
        """Run one iteration; return ``(n_exemplars, n_changed)``."""
        g = self.graph
        if self.parallel:
            update_rows, finish_columns = (
                kernels.update_rows_parallel, kernels.finish_columns_parallel
            )
        else:
            update_rows, finish_columns = kernels.update_rows_serial, kernels.finish_columns_serial
        update_rows(
            g.indptr, g.indices, g.diagonal, g.S, self.A, self.R, self.col_sum, self.damping,
            self.one_minus_damping, self.last_damping, self.last_one_minus_damping,
            self.availability_pending,
        )
        counts = finish_columns(
            g.indptr, g.diagonal, self.col_indptr, self.col_order, self.A, self.R, self.col_sum,
            self.damping, self.one_minus_damping, self.is_exemplar,
        )
        self.n_iter += 1
        self.availability_pending = True
        self.last_damping, self.last_one_minus_damping = self.damping, self.one_minus_damping
        return counts

    def complete_availability(self):
        """Bring ``A`` off the diagonal to the end of the last iteration."""
        if self.availability_pending:
            g = self.graph
            kernels.complete_availability(
                g.indptr, g.indices, g.diagonal, self.A, self.R, self.col_sum,
                self.last_damping, self.last_one_minus_damping,
            )
            self.availability_pending = False


def assign_clusters(graph, is_exemplar):
    """Exemplar flags -> ``(cluster_centers_indices, labels)`` (see the module notes)."""
    n = graph.n
    if not is_exemplar.any():
        return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
    is_exemplar = is_exemplar.copy()
    labels = np.empty(n, dtype=np.int64)
    for _ in range(2):
        exemplar_label = np.cumsum(is_exemplar) - 1
        kernels.nearest_exemplar(
            graph.indptr, graph.indices, graph.S, is_exemplar, exemplar_label, labels
        )
        stranded = labels < 0
        if not stranded.any():
            break
        is_exemplar |= stranded  # stores no pair with any exemplar: its own exemplar
    # Refinement: in each cluster the member with the largest within-cluster
    # column sum (the first such member) becomes the exemplar.
    n_clusters = int(is_exemplar.sum())
    cluster_sizes = np.bincount(labels, minlength=n_clusters)
    col_indptr = np.empty(n + 1, dtype=np.int64)
    col_order = np.empty(graph.nnz, dtype=_position_dtype(graph.nnz))
    kernels.column_order(graph.indptr, graph.indices, col_indptr, col_order)
    pair_rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(graph.indptr))
    column_sums = np.empty(n, dtype=graph.S.dtype)
    kernels.within_cluster_column_sums(
        col_indptr, col_order, pair_rows, graph.S, labels, cluster_sizes, column_sums
    )
    del col_order, pair_rows
    order = np.lexsort((np.arange(n), -column_sums, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = order[first_of_cluster]
    # The new exemplar of a cluster stores a pair with every member (its sum
    # is finite: the old exemplar's is), so no sample is stranded now.
    is_exemplar[:] = False
    is_exemplar[exemplars] = True
    exemplar_label = np.cumsum(is_exemplar) - 1
    kernels.nearest_exemplar(
        graph.indptr, graph.indices, graph.S, is_exemplar, exemplar_label, labels
    )
    labels = np.flatnonzero(is_exemplar)[labels]
    cluster_centers_indices = np.unique(labels)
    return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)


def run_sparse_affinity_propagation(
    graph,
    *,
    damping,
    max_iter,
    convergence_iter,
    random_state,
    n_threads,
    verbose=False,
    messages_out=None,
    adaptive_damping=None,
    callback=None,
    callback_every=1,
    warn=True,
):
    """Affinity Propagation on a graph with its preferences on the diagonal.

    Parameters
    ----------
    graph : SparseGraph
        From :func:`with_diagonal` (finite similarities, preferences on the
        diagonal). Its similarities receive the degeneracy noise in place.
    damping, max_iter, convergence_iter, verbose, random_state, n_threads
        As in :func:`fastap._engine.run_affinity_propagation`.
    messages_out : dict or None
        When a dict, receives ``"responsibility"`` and ``"availability"``
        (arrays in the CSR order of the graph, completed to the end of the
        last iteration).
    adaptive_damping, callback, callback_every
        As in :func:`fastap._engine.iterate_until_converged`.
    warn : bool
        Issue scikit-learn's ConvergenceWarnings (the caller may warn later).

    Returns
    -------
    FitResult
    """
    n = graph.n
    degenerate, equal_value = _is_complete_with_equal_similarities(graph)
    if n == 1 or degenerate:
        # The dense engine's shortcut (on a complete graph only: on another
        # one "one cluster" could pair samples that store no pair).
        warnings.warn(
            "All samples have mutually equal similarities. Returning arbitrary cluster center(s)."
        )
        if degenerate and graph.S[graph.diagonal[0]] > equal_value:
            return _engine.FitResult(np.arange(n), np.arange(n), 0, True, None, damping)
        return _engine.FitResult(
            np.array([0]), np.zeros(n, dtype=np.intp), 0, True, None, damping
        )

    add_degeneracy_noise(graph, random_state)
    state = SparseMessageState(graph, damping, n_threads)
    progress = _engine._Progress(verbose, n)
    loop = _engine.iterate_until_converged(
        state,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        adaptive_damping=adaptive_damping,
        callback=callback,
        callback_every=callback_every,
        progress=progress,
    )
    if verbose:
        print(f"Converged after {loop.n_iter - 1} iterations." if loop.converged
              else "Did not converge")
    if messages_out is not None:
        state.complete_availability()
        messages_out["responsibility"] = state.R
        messages_out["availability"] = state.A
    is_exemplar = state.is_exemplar
    final_damping = state.damping_value
    del state  # frees R, A and the column view before the assignment

    cluster_centers_indices, labels = assign_clusters(graph, is_exemplar)
    if warn:
        _engine.warn_if_not_converged(cluster_centers_indices, loop.converged)
    return _engine.FitResult(
        cluster_centers_indices, labels, loop.n_iter, loop.converged, None, final_damping
    )


# --------------------------------------------------------------------------
# Merging fragments: AP again, on the clusters, weighted by their sizes.
# --------------------------------------------------------------------------

# Above this many clusters a merge level runs sparse AP on a k-NN graph of
# the clusters instead of dense AP (three m x m float64 matrices: 0.6 GiB
# at 5,000).
MERGE_DENSE_MAX_CLUSTERS = 5000

# Neighbours per cluster in a sparse merge level (at least n_neighbors). A
# level on too few neighbours fragments again, and worse: a fragment that
# cannot reach its own cluster's exemplar joins a foreign one when that
# costs less than a preference, and merges are never undone. With 200, a
# cluster sees the exemplars of about 200 fragments of the first stage.
MERGE_NEIGHBORS = 200

# Pairs sampled to estimate the median similarity of all pairs.
_MEDIAN_SAMPLE_PAIRS = 1_000_000
_MEDIAN_EXACT_MAX_SAMPLES = 2000


def pair_similarities(Xf, metric, rows, cols):
    """Similarities of the pairs ``(rows[t], cols[t])`` (float64)."""
    if metric == "cosine":
        return np.einsum("ij,ij->i", Xf[rows], Xf[cols])
    difference = Xf[rows] - Xf[cols]
    return -np.einsum("ij,ij->i", difference, difference)


def median_of_all_pairs(Xf, metric):
    """Median similarity over all ``n x n`` pairs (the dense default
    preference), exact up to 2,000 samples, else estimated from 10^6 pairs
    drawn uniformly (diagonal included, as in the dense matrix) by a
    generator of fixed seed, so the estimate does not depend on
    ``random_state`` and does not consume its stream."""
    n = Xf.shape[0]
    if n <= _MEDIAN_EXACT_MAX_SAMPLES:
        rows, cols = np.divmod(np.arange(n * n), n)
    else:
        generator = np.random.default_rng(0)
        rows = generator.integers(0, n, _MEDIAN_SAMPLE_PAIRS)
        cols = generator.integers(0, n, _MEDIAN_SAMPLE_PAIRS)
    return float(np.median(pair_similarities(Xf, metric, rows, cols)))


class Groups:
    """Clusters of samples while merging: for cluster ``a``, its exemplar (a
    sample), its size and the sum of its members' feature rows."""

    def __init__(self, exemplars, sizes, sums):
        self.exemplars = exemplars
        self.sizes = sizes
        self.sums = sums

    @classmethod
    def of_samples(cls, Xf, labels, exemplars):
        m = exemplars.size
        sizes = np.bincount(labels, minlength=m).astype(np.float64)
        member_of = sparse.csr_matrix(
            (np.ones(labels.size), (labels, np.arange(labels.size))), shape=(m, labels.size)
        )
        return cls(exemplars, sizes, np.asarray(member_of @ Xf))

    def merged(self, group_labels, group_exemplars):
        """The clusters of clusters: ``group_labels[a]`` is the new cluster of ``a``."""
        m = group_exemplars.size
        sums = np.zeros((m, self.sums.shape[1]))
        np.add.at(sums, group_labels, self.sums)
        sizes = np.bincount(group_labels, weights=self.sizes, minlength=m)
        return Groups(self.exemplars[group_exemplars], sizes, sums)


def weighted_similarities(Xf, metric, groups, indptr, indices, preference):
    """Similarities between clusters for a merge level, for the stored pairs
    ``(a, b)`` of a CSR structure over the clusters.

    Moving every member of ``a`` to the exemplar ``e_b`` of ``b`` adds
    ``sum_{i in a} s(x_i, x_{e_b})`` to AP's objective: for ``-||.||^2``
    that is ``-n_a ||mean_a - x_{e_b}||^2`` plus a constant of row ``a``
    (which AP ignores), for the cosine ``(sum_{i in a} x_i) . x_{e_b}``;
    both need only the cluster's size and feature sum, and they are exact,
    not an approximation by the exemplar. On the diagonal, keeping ``a``
    costs its exemplar's preference plus the other members' similarities
    to it.
    """
    exemplar_preference = np.ascontiguousarray(
        np.broadcast_to(preference, (Xf.shape[0],))[groups.exemplars], dtype=np.float64
    )
    out = np.empty(indices.size, dtype=np.float64)
    graph_kernels.cluster_similarities(
        groups.sums, groups.sizes, np.ascontiguousarray(Xf[groups.exemplars]),
        exemplar_preference, metric == "cosine", indptr, indices, out,
    )
    return out


def merge_level(Xf, metric, groups, fit_kwargs, n_neighbors, preference):
    """AP on the clusters of ``groups`` (dense up to
    ``MERGE_DENSE_MAX_CLUSTERS`` clusters, else on their k-NN graph)."""
    m = groups.exemplars.size
    if m <= MERGE_DENSE_MAX_CLUSTERS:
        indptr = np.arange(0, m * m + 1, m, dtype=np.int64)
        indices = np.tile(np.arange(m, dtype=np.int32), m)
        S = weighted_similarities(Xf, metric, groups, indptr, indices, preference).reshape(m, m)
        del indices
        return _engine.run_affinity_propagation(S, np.diagonal(S).copy(), **fit_kwargs)
    from fastap._graph import kneighbors, symmetric_union

    neighbors = kneighbors(Xf[groups.exemplars], max(n_neighbors, MERGE_NEIGHBORS))
    indptr, indices = symmetric_union(neighbors, with_self=True)
    del neighbors
    values = weighted_similarities(Xf, metric, groups, indptr, indices, preference)
    diagonal = np.empty(m, dtype=np.int64)
    kernels.find_diagonal(indptr, indices, diagonal)
    graph = with_diagonal(indptr, indices, values, values[diagonal])
    del indptr, indices, values
    return run_sparse_affinity_propagation(graph, **fit_kwargs)


def refine_and_assign(Xf, metric, labels, groups, preference):
    """scikit-learn's final assignment, without the N x N matrix.

    In each cluster the member ``j`` with the largest ``sum_{i != j} s(i, j)
    + preference_j`` becomes the exemplar (the first such member); for
    ``-||.||^2`` that is the member nearest the cluster mean, for the cosine
    the one most aligned with the members' sum. Then every sample goes to
    its most similar exemplar.
    """
    n = labels.size
    sums = groups.sums[labels]
    if metric == "cosine":
        self_similarity = np.einsum("ij,ij->i", Xf, Xf)
        score = np.einsum("ij,ij->i", sums, Xf) - self_similarity
    else:
        difference = sums / groups.sizes[labels][:, None] - Xf
        score = -groups.sizes[labels] * np.einsum("ij,ij->i", difference, difference)
    score += np.broadcast_to(preference, (n,))
    order = np.lexsort((np.arange(n), -score, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = np.sort(order[first_of_cluster])
    if metric == "cosine":
        new_labels = np.empty(n, dtype=np.intp)
        for start in range(0, n, 65536):
            block = Xf[start : start + 65536] @ Xf[exemplars].T
            new_labels[start : start + 65536] = np.argmax(block, axis=1)
    else:
        from sklearn import config_context
        from sklearn.metrics import pairwise_distances_argmin

        with config_context(assume_finite=True):
            new_labels = pairwise_distances_argmin(Xf, Xf[exemplars])
    new_labels[exemplars] = np.arange(exemplars.size)
    return exemplars, new_labels


def merge_fragments(Xf, metric, labels, centers, preference, fit_kwargs, n_neighbors,
                    verbose=False):
    """Merge the clusters of a sparse fit: AP on the clusters, weighted by
    their sizes (see :func:`weighted_similarities`), level after level until a
    level is dense (at most ``MERGE_DENSE_MAX_CLUSTERS`` clusters) or merges
    nothing; then :func:`refine_and_assign`.

    Returns ``(cluster_centers_indices, labels, n_iter, converged)``, with
    the iterations and convergence of all levels together.
    """
    groups = Groups.of_samples(Xf, labels, centers)
    n_iter, converged = 0, True
    while groups.exemplars.size > 1:
        m = groups.exemplars.size
        with warnings.catch_warnings():
            # The caller warns once for the whole fit.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.filterwarnings("ignore", message="All samples have mutually equal")
            result = merge_level(Xf, metric, groups, fit_kwargs, n_neighbors, preference)
        n_iter += result.n_iter
        converged &= bool(result.converged)
        if result.cluster_centers_indices.size == 0:
            break  # AP on the clusters found no exemplar: keep them
        labels = result.labels[labels]
        groups = groups.merged(result.labels, result.cluster_centers_indices)
        if verbose:
            print(f"[fastap] merge level: {m} -> {groups.exemplars.size} clusters")
        if m <= MERGE_DENSE_MAX_CLUSTERS or groups.exemplars.size == m:
            break
    centers, labels = refine_and_assign(Xf, metric, labels, groups, preference)
    return centers, labels, n_iter, converged


# --------------------------------------------------------------------------
# The estimator's two sparse fits.
# --------------------------------------------------------------------------


def _fit_kwargs(estimator, random_state, options):
    return dict(
        options,
        max_iter=estimator.max_iter,
        convergence_iter=estimator.convergence_iter,
        random_state=random_state,
        verbose=estimator.verbose,
    )


def fit_precomputed(estimator, X, **options):
    """``AffinityPropagation(affinity="precomputed").fit`` on a sparse matrix.

    ``options``: ``n_threads``, ``damping`` and the loop's options (see
    :func:`run_sparse_affinity_propagation`). Returns ``(FitResult,
    affinity_matrix, preference)``; the matrix is the graph the messages ran
    on, as a CSR matrix (a CSR array for sparse-array input).
    """
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import validate_data

    from fastap._estimator import _validated_preference

    if estimator.merge_fragments is True:
        raise ValueError(
            "merge_fragments=True needs the features (it compares the clusters' members "
            "with other exemplars): use affinity='nearest_neighbors'."
        )
    # LIL, DOK, ... become CSR (they cannot hold duplicates); COO is kept as
    # it is, so that its duplicates are seen. The dtype is left as it is
    # until canonical_csr has looked for duplicates (a cast would sum them).
    S = validate_data(estimator, X, accept_sparse=["csr", "csc", "coo"], dtype="numeric")
    check_memory(S.shape[0], S.nnz + S.shape[0], message_dtype(S.dtype))
    indptr, indices, data = canonical_csr(S)
    n = indptr.size - 1
    preference = default_preference(data) if estimator.preference is None else (
        estimator.preference
    )
    preference = _validated_preference(preference, n, data.dtype)
    graph = with_diagonal(indptr, indices, data, preference)
    del indptr, indices, data  # with the diagonal inserted, a new copy
    result = run_sparse_affinity_propagation(
        graph, **_fit_kwargs(estimator, check_random_state(estimator.random_state), options)
    )
    return result, graph.to_scipy(like=X), preference


def fit_nearest_neighbors(estimator, X, **options):
    """``AffinityPropagation(affinity="nearest_neighbors").fit``.

    ``options`` as in :func:`fit_precomputed`. Returns ``(FitResult,
    affinity_matrix, preference, X)`` (X validated, for
    ``cluster_centers_``).
    """
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import validate_data

    from fastap import _graph
    from fastap._estimator import _validated_preference

    X = validate_data(estimator, X)
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    n = X.shape[0]
    metric = estimator.metric
    k = min(estimator.n_neighbors, max(n - 1, 0))
    check_memory(n, 2 * k * n + n, dtype)
    random_state = check_random_state(estimator.random_state)
    verbose = estimator.verbose

    started = time.perf_counter()
    Xf = _graph.normalized_rows(X) if metric == "cosine" else np.ascontiguousarray(
        X, dtype=np.float64
    )
    approximate = n > _graph.EXACT_MAX_SAMPLES
    seed = random_state.randint(np.iinfo(np.int32).max) if approximate else None
    neighbors = _graph.kneighbors(Xf, k, random_state=seed)
    # The messages run on the samples renumbered for locality (see
    # _graph.locality_order); results are mapped back at the end.
    order = _graph.locality_order(*_graph.symmetric_union(neighbors))
    neighbors = _graph.renumbered(neighbors, order)
    Xf = Xf[order]
    # Diagonal pairs stored from the start: the preference goes in place.
    indptr, indices = _graph.symmetric_union(neighbors, with_self=True)
    del neighbors
    values = np.empty(indices.size, dtype=np.float64)
    if metric == "cosine":
        _graph.kernels.dot_products(Xf, indptr, indices, values)
    else:
        _graph.kernels.negative_squared_distances(Xf, indptr, indices, values)
    values = values.astype(dtype, copy=False)
    if verbose:
        print(
            f"[fastap] {k}-nearest-neighbour graph: {indices.size} pairs, "
            f"{time.perf_counter() - started:.1f} s"
        )

    if estimator.preference is None:
        preference = median_of_all_pairs(Xf, metric)
    else:
        preference = estimator.preference
    preference = _validated_preference(preference, n, dtype)
    original_preference = preference
    if preference.ndim == 1:
        preference = preference[order]
    fit_kwargs = _fit_kwargs(estimator, random_state, options)
    merge = estimator.merge_fragments in (True, "auto")
    graph = with_diagonal(indptr, indices, values, preference)  # in place: no copy
    del indptr, indices, values
    result = run_sparse_affinity_propagation(graph, warn=not merge, **fit_kwargs)
    if merge:
        if result.cluster_centers_indices.size > 0:
            merge_kwargs = {
                name: fit_kwargs[name]
                for name in ("damping", "max_iter", "convergence_iter", "random_state",
                             "n_threads")
            }
            centers, labels, n_iter, converged = merge_fragments(
                Xf, metric, result.labels, result.cluster_centers_indices,
                preference.astype(np.float64), merge_kwargs, k, verbose=verbose,
            )
            result = result._replace(
                cluster_centers_indices=centers, labels=labels,
                n_iter=result.n_iter + n_iter, converged=result.converged and converged,
            )
        _engine.warn_if_not_converged(result.cluster_centers_indices, result.converged)
    result = in_original_order(result, order)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(n)
    affinity_matrix = graph.to_scipy()[inverse][:, inverse]
    affinity_matrix.sort_indices()
    return result, affinity_matrix, original_preference, X


def in_original_order(result, order):
    """A FitResult on samples renumbered by ``order`` (sample ``order[i]`` was
    ``i``), in the original numbering; clusters numbered by exemplar index."""
    n = order.size
    labels = np.empty(n, dtype=np.intp)
    centers = order[result.cluster_centers_indices]
    if centers.size == 0:
        labels[order] = result.labels
        return result._replace(labels=labels)
    by_index = np.argsort(centers)
    new_label = np.empty(centers.size, dtype=np.intp)
    new_label[by_index] = np.arange(centers.size)
    labels[order] = new_label[result.labels]
    return result._replace(cluster_centers_indices=centers[by_index], labels=labels)


# Estimator options of the dense engine that the sparse fits do not offer.
_DENSE_ONLY_OPTIONS = ("preference_quantile", "n_clusters", "warm_start", "keep_messages",
                       "record_history")


def fit(estimator, X):
    """The sparse fits of :class:`fastap.AffinityPropagation`: a sparse
    precomputed matrix, or ``affinity="nearest_neighbors"``.

    Returns the fitted attributes as a dict (``cluster_centers_`` only with
    features); the estimator sets them once the whole fit has succeeded.
    """
    for name in _DENSE_ONLY_OPTIONS:
        value = getattr(estimator, name, None)
        if value is not None and value is not False:  # 0.0 == False: a quantile of 0 counts
            raise ValueError(
                f"{name} is not supported with sparse similarities or "
                "affinity='nearest_neighbors'."
            )
    if estimator.affinity != "nearest_neighbors" and estimator.metric != "euclidean":
        raise ValueError("metric applies to affinity='nearest_neighbors' only.")
    n_threads = _engine.resolve_n_threads(estimator.n_jobs)
    damping = estimator.damping
    adaptive = damping == "auto"
    with _engine.numba_threads(n_threads):
        kwargs = {
            "n_threads": n_threads,
            "damping": 0.5 if adaptive else damping,
            "adaptive_damping": _engine.AdaptiveDamping(0.5) if adaptive else None,
            "callback": getattr(estimator, "callback", None),
            "callback_every": getattr(estimator, "callback_every", 1),
        }
        if estimator.affinity == "nearest_neighbors":
            result, S, preference, X = fit_nearest_neighbors(estimator, X, **kwargs)
        else:
            result, S, preference = fit_precomputed(estimator, X, **kwargs)
            X = None
    attributes = {
        "affinity_matrix_": S,
        "cluster_centers_indices_": result.cluster_centers_indices,
        "labels_": result.labels,
        "n_iter_": result.n_iter,
        "converged_": result.converged,
        "preference_": preference[()] if np.ndim(preference) == 0 else preference,
        "damping_": result.final_damping,
    }
    if X is not None:
        attributes["cluster_centers_"] = X[result.cluster_centers_indices].copy()
    return attributes
