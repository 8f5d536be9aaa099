"""Affinity Propagation on a sparse similarity graph: the driver.

Like ``_dense.py`` for dense matrices, this module holds a sparse graph's
similarities and messages behind the run's message-state protocol
(:class:`SparseMessageState`; the loop itself is ``_run.py``'s, so Ctrl-C,
``verbose``, the convergence test and the toolkit are the dense engine's),
and prepares the graph (validation, diagonal, noise). The message kernels
are in ``_kernels/sparse_messages.py``, the graph's set-up in
``_kernels/sparse_graph.py``, the assignment in ``_kernels/sparse_assign.py``.

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

import numpy as np
from scipy import sparse

from fastap import _preference, _resources
from fastap._damping import DampingPairs
from fastap._kernels import noise, setup, sparse_assign, sparse_graph
from fastap._kernels import sparse_messages as kernels
from fastap._search import run_or_search
from fastap._similarity import check_square, similarity_dtype

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
    """Bytes a sparse fit holds at its peak (``_resources.sparse_fit_memory``:
    per stored pair ``S``, ``R``, ``A``, a column index and a CSC position)."""
    return _resources.sparse_fit_memory(n_samples, n_pairs, dtype).bytes


def check_memory(n_samples, n_pairs, dtype):
    """Raise MemoryError, before allocating, when a sparse fit clearly cannot fit."""
    _resources.check_sparse_memory(
        n_samples, n_pairs, dtype, fit_memory_bytes(n_samples, n_pairs, dtype)
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
    if square:
        check_square(S.shape)
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
    if sparse_graph.has_duplicates(indptr, indices):
        raise ValueError(
            "The sparse similarity matrix stores some pair (i, j) more than once; "
            "duplicate entries are ambiguous (SciPy would sum them): remove them, "
            "or call sum_duplicates() if the sum is what you mean."
        )
    return indptr, indices, csr.data.astype(similarity_dtype(csr.dtype), copy=False)


def default_preference(data):
    """Median of the stored similarities (a stored diagonal included)."""
    if data.size == 0:
        return data.dtype.type(0)
    return data.dtype.type(np.median(data))


def off_diagonal_values(graph):
    """The stored similarities off the diagonal (a copy)."""
    keep = np.ones(graph.nnz, dtype=bool)
    keep[graph.diagonal] = False
    return graph.S[keep]


def with_diagonal(indptr, indices, data, preference, first_row=0):
    """A :class:`SparseGraph` with every diagonal pair present, holding the
    preference (0-d or (n,) array of the dtype of ``data``).

    When every row already stores its diagonal, the graph uses the given
    arrays and ``data`` is overwritten there (callers pass arrays they own);
    otherwise the arrays are copied with the missing pairs inserted.
    ``first_row``: the rows are rows ``first_row, first_row + 1, ...`` of a
    wider graph (a row block of the distributed engine); the result's
    ``diagonal`` then holds the positions of those rows' diagonal pairs.
    """
    n = indptr.size - 1
    preference = np.ascontiguousarray(
        np.broadcast_to(np.asarray(preference, dtype=data.dtype), (n,))
    )
    diagonal = np.empty(n, dtype=np.int64)
    sparse_graph.find_diagonal(indptr, indices, first_row, diagonal)
    missing = diagonal < 0
    if not missing.any():
        sparse_graph.set_diagonal(diagonal, data, preference)
        return SparseGraph(indptr, indices, data, diagonal)
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.diff(indptr) + missing, out=new_indptr[1:])
    nnz = int(new_indptr[-1])
    new_indices = np.empty(nnz, dtype=np.int32)
    new_data = np.empty(nnz, dtype=data.dtype)
    sparse_graph.insert_diagonal(
        indptr, indices, data, first_row, new_indptr, new_indices, new_data, diagonal, preference
    )
    return SparseGraph(new_indptr, new_indices, new_data, diagonal)


def complete_matrix(graph):
    """The graph as its dense matrix when it stores every pair (a view), else None."""
    if graph.nnz != graph.n * graph.n:
        return None
    return graph.S.reshape(graph.n, graph.n)


def stored_quantile(graph, q, n_threads):
    """The q-quantile of the stored off-diagonal similarities (NumPy's
    linear interpolation; the dense kernel's on a complete graph, so that it
    equals the dense engine's bitwise)."""
    dense = complete_matrix(graph)
    if dense is not None:
        return setup.off_diagonal_quantile(dense, q, max(2, n_threads))
    values = off_diagonal_values(graph)
    return graph.S.dtype.type(np.quantile(values, q) if values.size else 0)


def stored_quantile_tie(graph, value):
    """``_preference.QuantileTie`` of ``value`` among the stored off-diagonal
    similarities (to warn when a ``preference_quantile`` lands on a wide tie)."""
    dense = complete_matrix(graph)
    if dense is not None:
        return _preference.off_diagonal_tie(dense, value)
    return _preference.values_tie(off_diagonal_values(graph), value)


def add_degeneracy_noise(graph, random_state):
    """scikit-learn's ``S += (eps * S + tiny * 100) * N(0, 1)`` on the stored
    pairs, the normals drawn in CSR order by blocks from ``random_state``: on
    a complete graph the very stream of the dense N x N draw. Returns the
    normals drawn for the diagonal.

    ``random_state`` a ``noise.CounterNoiseStream`` (``noise="counter"``):
    pair ``(i, k)`` gets the counter normal of ``(i, k)`` instead, as the
    distributed engine's row blocks add it."""
    values = graph.S
    info = np.finfo(values.dtype)
    if isinstance(random_state, noise.CounterNoiseStream):
        noise.add_counter_noise_to_pairs(
            graph.indptr, graph.indices, values, 0, random_state.seed, info.eps,
            info.tiny * 100,
        )
        diagonal_normals = np.empty(graph.n, dtype=np.float64)
        noise.diagonal_counter_normals(random_state.seed, diagonal_normals)
        return diagonal_normals
    diagonal_normals = np.empty(graph.n, dtype=np.float64)
    for start in range(0, values.size, _NOISE_BLOCK_PAIRS):
        stop = min(start + _NOISE_BLOCK_PAIRS, values.size)
        normals = random_state.standard_normal(size=stop - start)
        on_diagonal = (graph.diagonal >= start) & (graph.diagonal < stop)
        diagonal_normals[on_diagonal] = normals[graph.diagonal[on_diagonal] - start]
        setup.add_degeneracy_noise(values[start:stop], normals, info.eps, info.tiny * 100)
    return diagonal_normals


def _equal_complete_graph(graph):
    """The dense engine's degenerate case, on a graph storing every pair:
    ``(True, the off-diagonal value)`` or ``(False, None)``."""
    n = graph.n
    if n < 2 or graph.nnz != n * n:
        return False, None
    preferences = graph.S[graph.diagonal]
    if not np.all(preferences == preferences[0]):
        return False, None
    values = off_diagonal_values(graph)
    return bool(np.all(values == values[0])), values[0]


# --------------------------------------------------------------------------
# The message state.
# --------------------------------------------------------------------------


class SparseMessageState(DampingPairs):
    """Sparse Affinity Propagation: messages along the stored pairs.

    Implements ``_run.MessageState`` (see ``_dense.DenseMessageState`` for
    the dense counterpart; on a complete graph the two agree bitwise in
    float64).

    Parameters
    ----------
    graph : SparseGraph
        From :func:`with_diagonal` (finite similarities, preferences on the
        diagonal). Its similarities receive the noise in :meth:`prepare`.
    damping : float
    random_state : numpy.random.RandomState
    n_threads : int
        Threads the caller has given Numba; the parallel kernels run when
        there are several and the graph stores ``PARALLEL_MIN_PAIRS`` pairs.
    warm_messages : tuple (R, A) or None
        Messages of an earlier fit on the same graph (arrays in its CSR
        order), updated in place.
    prepared : bool
        The graph's similarities already hold their noise (:meth:`prepare`
        only makes the messages ready).
    """

    def __init__(self, graph, *, damping, random_state=None, n_threads=1, warm_messages=None,
                 prepared=False):
        self.graph = graph
        self.n_samples = graph.n
        self.dtype = graph.S.dtype
        self.random_state = random_state
        self.n_threads = n_threads
        self._warm_messages = warm_messages
        self._prepared = prepared
        self.preference = graph.S[graph.diagonal].copy()
        self.R = self.A = None
        self.is_exemplar = np.zeros(graph.n, dtype=np.bool_)
        self.availability_pending = False
        self.set_damping(damping)
        self._objective_values = None

    # -- set-up -------------------------------------------------------------

    def equal_similarities(self):
        if self.n_samples == 1:
            return False
        # The dense engine's shortcut, on a complete graph only: on another
        # one "one cluster" could pair samples that store no pair.
        degenerate, equal_value = _equal_complete_graph(self.graph)
        if degenerate:
            return bool(self.graph.S[self.graph.diagonal[0]] > equal_value)
        return None


    def preference_range(self):
        """The dense engine's range on a complete graph; otherwise a bracket
        from the stored values: ``high`` the largest stored similarity and
        ``low = (n - 1) min - (n - 2) high``, below the dense bound on any
        completion of the graph."""
        dense = complete_matrix(self.graph)
        if dense is not None:
            return _preference.preference_range_of_similarities(dense)
        values = off_diagonal_values(self.graph)
        if values.size == 0:
            return 0.0, 0.0
        n = self.n_samples
        high = float(values.max())
        return float((n - 1) * float(values.min()) - (n - 2) * high), high

    def similarity_quantile(self, q):
        return stored_quantile(self.graph, q, self.n_threads)

    def prepare(self):
        g = self.graph
        n, nnz = g.n, g.nnz
        if not self._prepared:
            self.diagonal_normals = add_degeneracy_noise(g, self.random_state)
        self.col_indptr = np.empty(n + 1, dtype=np.int64)
        self.col_order = np.empty(nnz, dtype=_position_dtype(nnz))
        sparse_graph.column_order(g.indptr, g.indices, self.col_indptr, self.col_order)
        if self._warm_messages is not None:
            self.R, self.A = self._warm_messages
            self.is_exemplar = self.A[g.diagonal] + self.R[g.diagonal] > 0
        else:
            self.R = np.zeros(nnz, dtype=self.dtype)
            self.A = np.zeros(nnz, dtype=self.dtype)
        self._warm_messages = None
        self.col_sum = np.zeros(n, dtype=self.dtype)
        self.parallel = self.n_threads > 1 and nnz >= PARALLEL_MIN_PAIRS

    # -- iterations ---------------------------------------------------------

    def iterate(self):
        g = self.graph
        if self.parallel:
            update_rows, finish_columns = (
                kernels.update_rows_parallel, kernels.finish_columns_parallel
            )
        else:
            update_rows, finish_columns = kernels.update_rows_serial, kernels.finish_columns_serial
        update_rows(
            g.indptr, g.indices, g.diagonal, g.S, self.A, self.R, self.col_sum,
            *self.damping_pair, *self.last_damping_pair, self.availability_pending,
        )
        counts = finish_columns(
            g.indptr, g.diagonal, self.col_indptr, self.col_order, self.A, self.R, self.col_sum,
            *self.damping_pair, self.is_exemplar,
        )
        self.availability_pending = True
        self.keep_damping_as_last()
        return counts

    def complete_availability(self):
        if self.availability_pending:
            g = self.graph
            kernels.complete_stored_availability(
                g.indptr, g.indices, g.diagonal, self.A, self.R, self.col_sum,
                *self.last_damping_pair,
            )
            self.availability_pending = False

    def set_preference(self, preference, *, shift_messages):
        g = self.graph
        diagonal_values = np.empty(g.n, dtype=self.dtype)
        diagonal_values[:] = preference
        info = np.finfo(self.dtype)
        setup.add_degeneracy_noise(diagonal_values, self.diagonal_normals, info.eps,
                                   info.tiny * 100)
        g.S[g.diagonal] = diagonal_values
        if shift_messages:
            delta = self.dtype.type(preference) - self.dtype.type(self.preference.flat[0])
            is_isolated = np.diff(g.indptr) == 1  # only the diagonal stored
            kernels.shift_block_stored_preference(
                g.indptr, g.indices, g.diagonal, self.A, self.R, self.col_sum, is_isolated,
                delta, self.availability_pending, *self.last_damping_pair,
            )
            self.availability_pending = False
        self.preference = np.broadcast_to(np.asarray(preference, dtype=self.dtype), (g.n,))

    def reset(self):
        self.R.fill(0)
        self.A.fill(0)
        self.availability_pending = False
        self.is_exemplar[:] = False
        self.keep_damping_as_last()

    # -- results ------------------------------------------------------------

    def net_similarity(self):
        """The objective on stored pairs: ``-inf`` while some sample stores
        no pair with any exemplar."""
        if not self.is_exemplar.any():
            return np.nan
        g = self.graph
        if self._objective_values is None:
            self._objective_values = np.empty(g.n, dtype=np.float64)
        sparse_assign.best_stored_exemplar_similarity(
            g.indptr, g.indices, 0, g.S, self.is_exemplar, self._objective_values
        )
        return float(np.sum(self._objective_values))

    def assign(self, is_exemplar):
        return assign_clusters(self.graph, is_exemplar)

    def messages(self):
        self.complete_availability()
        return self.R, self.A

    def membership_confidence(self, cluster_centers_indices, labels):
        """As the dense engine's, on stored pairs (NaN where a sample does
        not store its cluster's message exemplar)."""
        R, A = self.messages()
        g = self.graph
        margin = np.full(g.n, np.nan)
        flags = A[g.diagonal] + R[g.diagonal] > 0
        centers = np.asarray(cluster_centers_indices, dtype=np.intp)
        if centers.size == 0 or int(flags.sum()) != centers.size:
            return margin
        nearest = np.empty(g.n, dtype=np.int64)
        sparse_assign.nearest_stored_exemplar(
            g.indptr, g.indices, 0, g.S, flags, np.arange(g.n), nearest
        )
        message_exemplar_of_cluster = nearest[centers]
        if np.any(message_exemplar_of_cluster < 0):
            return margin
        assigned = message_exemplar_of_cluster[labels]
        sparse_assign.stored_evidence_margin(
            g.indptr, g.indices, A, R, flags, assigned, margin
        )
        return margin

    def release(self):
        self.R = self.A = None
        self.col_order = self.col_indptr = None


def assign_clusters(graph, is_exemplar):
    """Exemplar flags -> ``(cluster_centers_indices, labels)`` (see the module notes)."""

    def nearest(flags, exemplar_label):
        labels = np.empty(graph.n, dtype=np.int64)
        sparse_assign.nearest_stored_exemplar(
            graph.indptr, graph.indices, 0, graph.S, flags, exemplar_label, labels
        )
        return labels

    def add_within_cluster_sums(labels, sums, members):
        col_indptr = np.empty(graph.n + 1, dtype=np.int64)
        col_order = np.empty(graph.nnz, dtype=_position_dtype(graph.nnz))
        sparse_graph.column_order(graph.indptr, graph.indices, col_indptr, col_order)
        pair_rows = np.repeat(np.arange(graph.n, dtype=np.int32), np.diff(graph.indptr))
        sparse_assign.add_within_cluster_stored_sums(
            col_indptr, col_order, pair_rows, 0, graph.S, labels, sums, members
        )

    return assign_stored_clusters(
        graph.n, graph.S.dtype, is_exemplar, nearest, add_within_cluster_sums
    )


def assign_stored_clusters(n, dtype, is_exemplar, nearest, add_within_cluster_sums):
    """The assignment of the module notes from two operations on the graph's
    rows, wherever they live (this process, or the distributed engine's row
    blocks): ``nearest(flags, exemplar_label)`` -> int64 labels (n,) (see
    ``sparse_assign.nearest_stored_exemplar``), and
    ``add_within_cluster_sums(labels, sums, members)``, which adds every
    row's terms into ``sums`` (n,) of ``dtype`` and ``members`` (n,) int64
    in increasing row order (``sparse_assign.add_within_cluster_stored_sums``)."""
    if not is_exemplar.any():
        return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
    is_exemplar = is_exemplar.copy()
    for _ in range(2):
        exemplar_label = np.cumsum(is_exemplar) - 1
        labels = nearest(is_exemplar, exemplar_label)
        stranded = labels < 0
        if not stranded.any():
            break
        is_exemplar |= stranded  # stores no pair with any exemplar: its own exemplar
    # Refinement: in each cluster the member with the largest within-cluster
    # column sum (the first such member) becomes the exemplar.
    n_clusters = int(is_exemplar.sum())
    cluster_sizes = np.bincount(labels, minlength=n_clusters)
    sums = np.zeros(n, dtype=dtype)
    members = np.zeros(n, dtype=np.int64)
    add_within_cluster_sums(labels, sums, members)
    column_sums = np.empty(n, dtype=dtype)
    sparse_assign.within_cluster_sums_or_missing(sums, members, labels, cluster_sizes, column_sums)
    order = np.lexsort((np.arange(n), -column_sums, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = order[first_of_cluster]
    # The new exemplar of a cluster stores a pair with every member (its sum
    # is finite: the old exemplar's is), so no sample is stranded now.
    is_exemplar[:] = False
    is_exemplar[exemplars] = True
    labels = nearest(is_exemplar, np.cumsum(is_exemplar) - 1)
    labels = np.flatnonzero(is_exemplar)[labels]
    cluster_centers_indices = np.unique(labels)
    return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)




# --------------------------------------------------------------------------
# A fit on a graph, and its results in the caller's numbering.
# --------------------------------------------------------------------------


def fit_graph(S, options, *, preference, preference_quantile, n_clusters, random_state,
              n_threads, warm_messages=None, adaptive_damping=None):
    """Affinity Propagation on a sparse similarity matrix (see the module notes).

    Parameters
    ----------
    S : SciPy sparse matrix or array (n, n), CSR, CSC or COO
        Finite values (validated), any numeric dtype; not modified.
    options : _run.RunOptions
    preference : ndarray (0-d or (n,)) or None
        Validated; None: the median of the stored similarities, or with
        ``preference_quantile`` that quantile of the off-diagonal ones.
    n_clusters : int or None
    random_state : numpy.random.RandomState
    warm_messages : tuple of two CSR matrices or None
        The previous fit's messages (used when they have this graph's pairs).

    Returns
    -------
    result : _run.RunResult
        Messages as CSR matrices.
    affinity_matrix : scipy.sparse.csr_matrix or csr_array
        The graph the messages ran on (preferences and noise on the diagonal).
    preference : ndarray
        The preference used.
    """
    check_memory(S.shape[0], S.nnz + S.shape[0], similarity_dtype(S.dtype))
    indptr, indices, data = canonical_csr(S)
    # As on dense input: an n_clusters search starts at the preference the
    # caller chose (or its quantile), else where the search chooses.
    chosen = preference is not None or preference_quantile is not None
    if preference is None and preference_quantile is None:
        preference = np.asarray(default_preference(data))
    graph = with_diagonal(indptr, indices, data,
                          data.dtype.type(0) if preference is None else preference)
    del indptr, indices, data  # with the diagonal inserted, a new copy
    if preference is None:
        preference = np.asarray(stored_quantile(graph, preference_quantile, n_threads))
        if n_clusters is None:  # a search moves the preference itself
            _preference.warn_if_quantile_in_tie(
                preference_quantile, preference, stored_quantile_tie(graph, preference),
                what="stored off-diagonal similarities",
            )
        sparse_graph.set_diagonal(graph.diagonal, graph.S, np.full(graph.n, preference))
    state = SparseMessageState(
        graph, damping=options.damping, random_state=random_state, n_threads=n_threads,
        warm_messages=warm_message_arrays(graph, warm_messages),
    )
    result = run_or_search(state, options, n_clusters=n_clusters,
                           start=preference[()] if chosen else None,
                           adaptive_damping=adaptive_damping)
    if result.preference is not None:
        preference = np.asarray(result.preference)
    result.messages = _message_matrices(graph, result.messages, like=S)
    return result, graph.to_scipy(like=S), preference


def warm_message_arrays(graph, messages, order=None):
    """The arrays, in the graph's CSR order, of the previous fit's messages
    (CSR matrices in the caller's numbering; ``order`` renumbers them as the
    graph's samples) when they store exactly the graph's pairs, else None."""
    if messages is None:
        return None
    arrays = []
    for matrix in messages:
        if not sparse.issparse(matrix) or matrix.shape != (graph.n, graph.n):
            return None
        matrix = sparse.csr_matrix(matrix)
        if order is not None:
            matrix = matrix[order][:, order]
        matrix.sort_indices()
        if not (np.array_equal(matrix.indptr, graph.indptr)
                and np.array_equal(matrix.indices, graph.indices)
                and matrix.dtype == graph.S.dtype):
            return None
        arrays.append(np.ascontiguousarray(matrix.data))
    return tuple(arrays)


def _message_matrices(graph, messages, like=None, inverse=None):
    if messages is None:
        return None
    matrices = []
    for values in messages:
        matrix = SparseGraph(graph.indptr, graph.indices, values, graph.diagonal).to_scipy(like)
        if inverse is not None:
            matrix = matrix[inverse][:, inverse]
            matrix.sort_indices()
        matrices.append(matrix)
    return tuple(matrices)


def graph_matrix(graph, order):
    """The graph as a CSR matrix in the caller's numbering (sample
    ``order[i]`` of the caller is the graph's ``i``)."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    matrix = graph.to_scipy()[inverse][:, inverse]
    matrix.sort_indices()
    return matrix


def in_original_order(result, graph, order):
    """A RunResult on samples renumbered by ``order`` (sample ``order[i]``
    was ``i``), in the original numbering; clusters numbered by exemplar
    index, per-sample arrays and messages renumbered."""
    n = order.size
    inverse = np.empty_like(order)
    inverse[order] = np.arange(n)
    labels = np.empty(n, dtype=np.intp)
    centers = order[result.cluster_centers_indices]
    if centers.size == 0:
        labels[order] = result.labels
    else:
        by_index = np.argsort(centers)
        new_label = np.empty(centers.size, dtype=np.intp)
        new_label[by_index] = np.arange(centers.size)
        labels[order] = new_label[result.labels]
        centers = centers[by_index]
    result.cluster_centers_indices, result.labels = centers, labels
    if result.membership_confidence is not None:
        confidence = np.empty(n)
        confidence[order] = result.membership_confidence
        result.membership_confidence = confidence
    result.messages = _message_matrices(graph, result.messages, inverse=inverse)
    return result
