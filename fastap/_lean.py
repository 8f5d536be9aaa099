"""The lean message state: ``S`` and ``A`` stored, ``R`` rebuilt on the fly.

Implements the message-state protocol the run loop drives (``n_samples``,
``dtype``, ``is_exemplar``, ``damping``, ``set_damping``, ``iterate``,
``complete_availability``, ``set_preference``, ``reset``, ``messages``,
``assign``, ``net_similarity``) with two N x N matrices instead of three:
off the diagonal ``R(i, k) = c S(i, k) - z(i) + E(i, k)`` with one scalar
``c``, one value ``z(i)`` per row and a short per-row list ``E`` (see
``_kernels/lean_messages.py`` for the recurrence, the list's rule and its
error bound). An iteration reads ``S`` and ``A`` and writes ``A``.

It is the float32 default; for float64 it is an explicit choice (float64
keeps the stored-R engine, bitwise equal to scikit-learn). A warm start
from given ``(R, A)`` needs the stored engine: an arbitrary ``R`` has no
lean form.
"""

import numba
import numpy as np

from fastap._kernels import assign, lean_messages, messages, setup

# Below this size one thread beats two (the dense engine's float32 figure).
PARALLEL_MIN_SAMPLES = 150


def group_rows(n_samples):
    """Rows per group of the column sums: a function of the problem only
    (never of the thread count), so results do not depend on threads."""
    return int(max(1, min(64, n_samples // 8)))


class LeanMessageState:
    """Messages of one run on ``S`` with ``R`` never stored.

    Parameters
    ----------
    S : ndarray (n, n), C order, float32 or float64
        Similarities with preferences and noise on the diagonal; read only
        here, except its diagonal in :meth:`set_preference`.
    damping : float
        Damping of the first iteration.
    n_threads : int
        Threads the caller has given Numba; the parallel pass runs when
        there are several and ``n >= PARALLEL_MIN_SAMPLES``.
    diagonal_normals : ndarray (n,) float64 or None
        The standard normals drawn for the diagonal's degeneracy noise
        (needed by :meth:`set_preference` only).
    preference : float or ndarray (n,) or None
        The preference on ``S``'s diagonal (the reference for the shift of
        :meth:`set_preference`).

    Attributes
    ----------
    A : ndarray (n, n), dtype of ``S``
        Availabilities (complete on the diagonal only until
        :meth:`complete_availability`).
    is_exemplar : ndarray (n,), bool
        ``A(k, k) + R(k, k) > 0`` after the last iteration.
    evicted : ndarray (n,), float64
        Largest correction entry lost per row (zero unless a row needed more
        than ``lean_messages.MAX_CAPACITY`` entries).
    """

    def __init__(self, S, damping, n_threads, diagonal_normals=None, preference=None):
        n = S.shape[0]
        self.S = S
        self.n_samples = n
        self.dtype = S.dtype
        self.diagonal_normals = diagonal_normals
        self.preference = preference
        # Zeroed by rows in parallel: the pages are mapped by the threads
        # that will use them (first touch).
        self.A = np.empty((n, n), dtype=S.dtype)
        lean_messages.zero_rows(self.A)
        self.col_sum = np.zeros(n, dtype=S.dtype)
        self.col_sum_acc = np.zeros(n, dtype=np.float64)
        self.R_diagonal = np.zeros(n, dtype=S.dtype)
        self.row_offset = np.zeros(n, dtype=np.float64)
        self.correction_count = np.zeros(n, dtype=np.int64)
        self.evicted = np.zeros(n, dtype=np.float64)
        self.parallel = n_threads > 1 and n >= PARALLEL_MIN_SAMPLES
        # Scratch rows are indexed by numba.get_thread_id(), which ranges
        # over the whole pool, not only the threads currently in use.
        self._n_scratch = numba.config.NUMBA_NUM_THREADS if self.parallel else 1
        self._allocate_corrections(lean_messages.INITIAL_CAPACITY)
        self.chunk_values = np.empty(
            (self._n_scratch, lean_messages.SEARCH_CHUNK), dtype=S.dtype
        )
        key_dtype = np.int32 if S.dtype == np.float32 else np.int64
        n_chunks = lean_messages.search_chunks(n)
        self.chunk_top = np.empty((self._n_scratch, n_chunks), dtype=key_dtype)
        # Off-diagonal maxima of S per search chunk: where c max(S) - z is
        # not positive the pass skips step 4 and takes a cheaper step 1.
        self.chunk_max = np.empty((n, n_chunks), dtype=S.dtype)
        lean_messages.off_diagonal_chunk_maxima(S, self.chunk_max)
        self.cold_terms = np.empty(n, dtype=S.dtype)
        self.group_rows = group_rows(n)
        self.group_sums = np.empty((-(-n // self.group_rows), n), dtype=np.float64)
        self._resolution = float(np.finfo(S.dtype).eps) / 2
        self.is_exemplar = np.zeros(n, dtype=bool)
        self.set_damping(damping)
        self.reset()

    # -- the protocol ----------------------------------------------------

    def set_damping(self, damping):
        """Use ``damping`` from the next iteration on."""
        self.damping = float(damping)

    def reset(self):
        """Zero messages and no exemplars, as at the start."""
        self.A.fill(0)
        self.col_sum.fill(0)
        self.col_sum_acc.fill(0)
        self.R_diagonal.fill(0)
        self.row_offset.fill(0)
        self.correction_count.fill(0)
        self.evicted.fill(0)
        self.is_exemplar.fill(False)
        self.scale = 0.0  # c
        # Damping the last iteration ran with: its availabilities are
        # finished at the start of the next pass with it.
        self.previous_damping = self.damping
        self.availability_pending = False
        self.n_iter = 0

    def iterate(self):
        """Run one iteration; return ``(n_exemplars, n_changed)``."""
        dtype = self.dtype.type
        damping = self.damping
        one_minus_damping = 1 - damping
        scale = damping * self.scale + one_minus_damping
        previous = (self.scale, self.previous_damping, 1 - self.previous_damping)
        current = (scale, damping, one_minus_damping)
        if self.availability_pending:
            lean_messages.cold_availability_terms(
                self.col_sum, dtype(1 - self.previous_damping), self.cold_terms
            )
        arguments = (
            self.S, self.A, self.col_sum, self.group_sums, self.R_diagonal, self.row_offset,
            self.correction_columns, self.correction_values, self.correction_count,
            self.evicted, self.availability_pending, previous, current, self._resolution,
            self.chunk_values, self.chunk_top, self._saved, self.group_rows, self.chunk_max,
            self.cold_terms,
        )
        if self.parallel:
            with numba.parallel_chunksize(1):  # groups handed out one at a time
                lean_messages.update_messages_parallel(*arguments)
        else:
            lean_messages.update_messages_serial(*arguments)
        messages.add_group_sums(self.group_sums, self.col_sum_acc)
        self.scale = scale
        self.previous_damping = damping
        self.availability_pending = True
        self.n_iter += 1
        result = lean_messages.finish_iteration(
            self.A, self.R_diagonal, self.col_sum, self.col_sum_acc, dtype(damping),
            dtype(one_minus_damping), self.is_exemplar,
        )
        self._grow_corrections_if_full()
        return result

    def complete_availability(self):
        """Bring ``A`` off the diagonal to the end of the last iteration."""
        if self.availability_pending:
            dtype = self.dtype.type
            lean_messages.complete_availability(
                self.S, self.A, self.col_sum, self.row_offset, self.correction_columns,
                self.correction_values, self.correction_count, dtype(self.scale),
                dtype(self.previous_damping), dtype(1 - self.previous_damping),
            )
            self.availability_pending = False

    def set_preference(self, preference, *, shift_messages):
        """Put ``preference`` and its noise on ``S``'s diagonal, bitwise as a
        fresh set-up with it would; with ``shift_messages`` carry ``R`` and
        ``A`` over to it (in one pass that also completes ``A``)."""
        dtype = self.dtype.type
        n = self.n_samples
        S = self.S
        S.flat[:: n + 1] = preference
        info = np.finfo(self.dtype)
        setup.add_diagonal_noise(S, self.diagonal_normals, info.eps, info.tiny * 100)
        if shift_messages:
            delta = (
                np.broadcast_to(np.asarray(preference, dtype=self.dtype), (n,))
                - np.broadcast_to(np.asarray(self.preference, dtype=self.dtype), (n,))
            ).astype(self.dtype)
            lean_messages.shift_preference(
                S, self.A, self.col_sum, self.R_diagonal, self.row_offset,
                self.correction_columns, self.correction_values, self.correction_count, delta,
                self.availability_pending, dtype(self.scale), dtype(self.previous_damping),
                dtype(1 - self.previous_damping),
            )
            self.availability_pending = False
        self.preference = preference

    def messages(self):
        """``(R, A)`` completed to the end of the last iteration; ``R`` is
        materialised into a new N x N array."""
        self.complete_availability()
        return self.responsibility(), self.A

    def responsibility(self):
        """The whole ``R`` this state stands for, as a new array."""
        R = np.empty_like(self.A)
        lean_messages.materialize_responsibility(
            self.S, self.R_diagonal, self.row_offset, self.correction_columns,
            self.correction_values, self.correction_count, self.dtype.type(self.scale), R,
        )
        return R

    def assign(self):
        """``(cluster_centers_indices, labels)``: scikit-learn's refinement on
        ``S`` from the exemplar flags."""
        return assign_clusters(self.S, self.is_exemplar)

    def net_similarity(self):
        """Frey & Dueck's objective for the current exemplars (NaN if none)."""
        exemplars = np.flatnonzero(self.is_exemplar)
        if exemplars.size == 0:
            return np.nan
        n = self.n_samples
        best_value = np.empty(n, dtype=np.float64)
        best_index = np.full(n, -1, dtype=np.intp)
        none = np.empty(0, dtype=np.intp)
        assign.update_best_exemplar_similarity(
            self.S, exemplars, np.zeros(n, dtype=bool), none, best_value, best_index, True
        )
        return assign.net_similarity(self.S, self.is_exemplar, best_value)

    # -- the correction lists --------------------------------------------

    @property
    def capacity(self):
        """Entries per row the correction lists can hold now."""
        return self.correction_columns.shape[1]

    def _allocate_corrections(self, capacity):
        n = self.n_samples
        columns = np.zeros((n, capacity), dtype=np.int32)
        values = np.zeros((n, capacity), dtype=np.float64)
        if hasattr(self, "correction_columns"):
            old = self.capacity
            columns[:, :old] = self.correction_columns
            values[:, :old] = self.correction_values
        self.correction_columns = columns
        self.correction_values = values
        self._saved = np.empty((self._n_scratch, 2, capacity), dtype=np.float64)

    def _grow_corrections_if_full(self):
        """A row gains at most one entry per iteration: doubling the capacity
        as soon as one row is full means no entry is ever evicted below
        ``MAX_CAPACITY``."""
        capacity = self.capacity
        if capacity < lean_messages.MAX_CAPACITY and self.correction_count.max() >= capacity:
            self._allocate_corrections(min(2 * capacity, lean_messages.MAX_CAPACITY))


def assign_clusters(S, is_exemplar):
    """Exemplar flags -> ``(cluster_centers_indices, labels)``, as scikit-learn."""
    n = S.shape[0]
    exemplars = np.flatnonzero(is_exemplar)
    if exemplars.size == 0:
        return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
    labels = np.empty(n, dtype=np.intp)
    column_sums = np.empty(n, dtype=S.dtype)
    assign.nearest_exemplar(S, exemplars, labels)
    assign.within_cluster_column_sums(S, labels, column_sums)
    # First member with the largest within-cluster column sum (np.argmax).
    order = np.lexsort((np.arange(n), -column_sums, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = order[first_of_cluster]
    assign.nearest_exemplar(S, exemplars, labels)
    labels = exemplars[labels]
    cluster_centers_indices = np.unique(labels)
    return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)
