"""One row block of a sparse similarity graph on the distributed engine.

The sparse sibling of :class:`fastap.dask._block.RowBlock`: rows
``[first_row, last_row)`` of the graph as a CSR graph of their own (local
``indptr``, global column ``indices``, the stored similarities ``S``, their
responsibilities ``R`` and availabilities ``A``, one value per stored pair),
updated in place with the single machine's sparse kernels
(``fastap/_kernels/sparse_messages.py``: the row pass as it is, the column
pass split into the block's share of the column sums and its diagonals).
Its methods mirror ``RowBlock``'s, so that ``_state.BlockMessageState``'s
exchange drives both; it lives on a Dask worker as an actor or in this
process (``_state.LocalBlocks``), and never imports Dask.
"""

import numpy as np

from fastap._kernels import noise, setup, sparse_assign, sparse_graph
from fastap._kernels import preference as preference_kernels
from fastap._kernels import sparse_messages as kernels
from fastap._resources import numba_threads
from fastap._sparse import PARALLEL_MIN_PAIRS, with_diagonal
from fastap.dask._block import MessageBlock

# The stored values a preference is selected from (``select_from``).
SELECTIONS = ("stored", "off_diagonal")


def sparse_block_bytes(n_rows, n_pairs, n_samples, dtype):
    """Bytes a block holds: per stored pair ``S``, ``R``, ``A``, a column
    index and a CSC position (as ``_sparse.fit_memory_bytes``); per row its
    pointer and diagonal; per sample of the graph the column sums and the
    CSC pointers."""
    itemsize = np.dtype(dtype).itemsize
    position = 4 if n_pairs < 2**31 else 8
    return (n_pairs * (3 * itemsize + 4 + position) + n_rows * 17
            + n_samples * (itemsize + 16))


class SparseRowBlock(MessageBlock):
    """Rows ``[first_row, last_row)`` of a sparse graph with their messages.

    Parameters
    ----------
    n_samples, first_row, last_row : int
    dtype : float32 or float64
    n_threads : int
        Numba threads for this block's kernels (results never depend on it).
    memory_limit : int or None
        Bytes this process may use; the block is refused when it would not
        fit in 80% of it (see ``RowBlock``).
    n_pairs : int
        Stored pairs of the block's rows, the diagonal counted (for the
        memory check).
    """

    def __init__(self, n_samples, first_row, last_row, dtype, n_threads=1, memory_limit=None,
                 n_pairs=0):
        self.n_samples = int(n_samples)
        self.first_row = int(first_row)
        self.last_row = int(last_row)
        self.dtype = np.dtype(dtype)
        self.n_threads = max(1, int(n_threads))
        n_rows = self.last_row - self.first_row
        self.check_memory(n_samples, first_row, last_row, dtype, memory_limit, n_pairs=n_pairs)
        self.indptr = self.indices = self.S = self.diagonal = None
        self.col_indptr = self.col_order = None
        self.R = self.A = None
        self.col_sum = np.zeros(self.n_samples, dtype=self.dtype)
        self.is_exemplar = np.zeros(n_rows, dtype=bool)
        self.isolated_samples = np.empty(0, dtype=np.int64)
        self.is_isolated = np.zeros(self.n_samples, dtype=bool)
        self.parallel = False
        self._selection = None
        self._window = None

    @staticmethod
    def check_memory(n_samples, first_row, last_row, dtype, memory_limit, n_pairs=0, **options):
        """MemoryError when the block would not fit in 80% of ``memory_limit``
        (see ``RowBlock.check_memory``)."""
        n_rows = int(last_row) - int(first_row)
        needed = sparse_block_bytes(n_rows, int(n_pairs), int(n_samples), dtype)
        if memory_limit and needed > 0.8 * memory_limit:
            raise MemoryError(
                f"A block of {n_rows} rows storing {n_pairs} pairs in {np.dtype(dtype).name} "
                f"needs about {needed / 2**30:.2f} GiB (S, R and A per stored pair), more than "
                f"80% of this worker's memory limit ({memory_limit / 2**30:.2f} GiB). Use more "
                "workers, workers with more memory, or float32 input."
            )

    # ------------------------------------------------------------------
    # The graph, the preference, the noise.
    # ------------------------------------------------------------------

    def set_graph(self, indptr, indices, data):
        """Take copies of the block's rows in canonical CSR form
        (``_sparse.canonical_csr``: sorted columns, no duplicate; ``indptr``
        from 0); returns the number of stored values."""
        n_rows = self.last_row - self.first_row
        indptr = np.array(indptr, dtype=np.int64, copy=True)
        if indptr.shape != (n_rows + 1,) or indptr[0] != 0 or indptr[-1] != np.size(data):
            raise ValueError(f"Block rows {self.first_row}-{self.last_row}: bad CSR pointers.")
        self.indptr = indptr
        self.indices = np.array(indices, dtype=np.int32, copy=True)
        self.S = np.array(data, dtype=self.dtype, copy=True)
        if not np.all(np.isfinite(self.S)):
            raise ValueError("The similarities contain NaN or infinity.")
        return int(self.S.size)

    def select_from(self, which):
        """Present the stored values (``"stored"``, a stored diagonal
        included: the default preference's median) or the off-diagonal ones
        (``"off_diagonal"``: ``preference_quantile``) to the selection
        methods below; returns their number."""
        if which not in SELECTIONS:
            raise ValueError(f"Unknown selection {which!r}.")
        values = self.S
        if which == "off_diagonal":
            diagonal = self.diagonal
            if diagonal is None:  # before place_preference: where the rows store it
                diagonal = np.empty(self.last_row - self.first_row, dtype=np.int64)
                sparse_graph.find_diagonal(self.indptr, self.indices, self.first_row, diagonal)
            keep = np.ones(self.S.size, dtype=bool)
            keep[diagonal[diagonal >= 0]] = False
            values = self.S[keep]
        self._selection = np.ascontiguousarray(values).reshape(1, -1)
        return int(values.size)

    def place_preference(self, preference_rows):
        """The diagonal pairs inserted where the rows do not store them, the
        preference on every one (``_sparse.with_diagonal``; no noise yet),
        and the block's CSC order; the messages are allocated."""
        graph = with_diagonal(
            self.indptr, self.indices, self.S,
            np.asarray(preference_rows, dtype=self.dtype), first_row=self.first_row,
        )
        self.indptr, self.indices, self.S, self.diagonal = (
            graph.indptr, graph.indices, graph.S, graph.diagonal
        )
        nnz = self.S.size
        self.col_indptr = np.empty(self.n_samples + 1, dtype=np.int64)
        self.col_order = np.empty(nnz, dtype=np.int32 if nnz < 2**31 else np.int64)
        sparse_graph.column_order(self.indptr, self.indices, self.col_indptr, self.col_order)
        self.parallel = self.n_threads > 1 and nnz >= PARALLEL_MIN_PAIRS
        self._selection = None
        return True

    def graph_summary(self):
        """``(stored pairs, isolated samples)``: the rows storing only their
        diagonal, as global indices (after :meth:`place_preference`)."""
        isolated = np.flatnonzero(np.diff(self.indptr) == 1).astype(np.int64) + self.first_row
        return int(self.S.size), isolated

    def set_isolated(self, isolated_samples):
        """The isolated samples of the whole graph (their column sums are
        ``+inf``, see ``sparse_messages.py``)."""
        self.isolated_samples = np.asarray(isolated_samples, dtype=np.int64)
        self.is_isolated[:] = False
        self.is_isolated[self.isolated_samples] = True
        return True

    def first_off_diagonal(self):
        """The first stored off-diagonal value of the block's first row, or None."""
        row = slice(self.indptr[0], self.indptr[1])
        off = np.flatnonzero(self.indices[row] != self.first_row)
        return self.S[row][off[0]] if off.size else None

    def off_diagonal_all_equal(self, value):
        """True when every stored off-diagonal value equals ``value``."""
        keep = np.ones(self.S.size, dtype=bool)
        keep[self.diagonal] = False
        return bool(np.all(self.S[keep] == value))

    def add_noise(self, seed):
        """The counter noise on every stored pair (after the preferences)."""
        info = np.finfo(self.dtype)
        with numba_threads(self.n_threads):
            noise.add_counter_noise_to_pairs(
                self.indptr, self.indices, self.S, self.first_row, seed, info.eps,
                info.tiny * 100,
            )
        return True

    def set_preference(self, preference_rows, seed):
        """A new preference with its noise on the diagonal, bitwise as
        :meth:`place_preference` then :meth:`add_noise` would give it."""
        info = np.finfo(self.dtype)
        noise.set_stored_diagonal(
            self.diagonal, self.S, self.first_row,
            np.asarray(preference_rows, dtype=np.float64), seed, info.eps, info.tiny * 100,
        )
        return True

    def shift_preference(self, delta, finish_previous, damping, one_minus_damping):
        """The messages moved to a preference ``delta`` higher
        (``sparse_messages.shift_block_stored_preference``; a warm search step)."""
        with numba_threads(self.n_threads):
            kernels.shift_block_stored_preference(
                self.indptr, self.indices, self.diagonal, self.A, self.R, self.col_sum,
                self.is_isolated, self.dtype.type(delta), finish_previous, damping,
                one_minus_damping,
            )
        return True

    def off_diagonal_sums_and_maxima(self, running):
        """``RowBlock.off_diagonal_sums_and_maxima`` on a complete graph,
        whose rows in CSR order are the dense rows."""
        running = np.array(running, dtype=np.float64, copy=True)
        n_rows = self.last_row - self.first_row
        maxima = np.empty(n_rows, dtype=np.float64)
        preference_kernels.add_off_diagonal_column_sums_and_row_maxima(
            self.S.reshape(n_rows, self.n_samples), self.first_row, running, maxima
        )
        return running, maxima

    def off_diagonal_extremes(self):
        """``(number, smallest, largest)`` of the stored off-diagonal values
        (the smallest and largest None without any)."""
        keep = np.ones(self.S.size, dtype=bool)
        keep[self.diagonal] = False
        values = self.S[keep]
        if values.size == 0:
            return 0, None, None
        return int(values.size), values.min(), values.max()

    # ------------------------------------------------------------------
    # Exact selection over the blocks (see _state.median_of_blocks), on the
    # values :meth:`select_from` presented.
    # ------------------------------------------------------------------

    def gather_window(self, low, high):
        """Count the values below ``low`` and keep those in ``[low, high]``
        (None when they would exceed 5% of the block's values)."""
        capacity = max(1, int(0.05 * self._selection.size) + 1)
        window_values = np.empty((1, capacity), dtype=self.dtype)
        below, inside = setup.count_below_and_gather_window(
            self._selection, self.dtype.type(low), self.dtype.type(high), window_values
        )
        if inside[0] >= capacity:
            self._window = None
            return int(below[0]), None
        self._window = window_values[:, : inside[0]].copy()
        return int(below[0]), int(inside[0])

    def drop_selection(self):
        """Let the presented values go (a copy of the block's values)."""
        self._selection = self._window = None
        return True

    def _selection_values(self):
        return self._selection

    # ------------------------------------------------------------------
    # One iteration, in three calls (as RowBlock's).
    # ------------------------------------------------------------------

    def update(self, damping, one_minus_damping, previous_damping, previous_one_minus_damping,
               finish_previous):
        """The row pass over the block's rows (``sparse_messages.update_rows_*``)."""
        update_rows = (
            kernels.update_rows_parallel if self.parallel else kernels.update_rows_serial
        )
        with numba_threads(self.n_threads):
            update_rows(
                self.indptr, self.indices, self.diagonal, self.S, self.A, self.R, self.col_sum,
                damping, one_minus_damping, previous_damping, previous_one_minus_damping,
                finish_previous,
            )
        return True

    def add_positive_parts(self, column_start, running, partial):
        """The block's share of the column sums of one segment added into the
        running sums the previous block handed over (``partial`` travels
        unused: no row groups here)."""
        running = np.array(running, dtype=np.float64, copy=True)
        with numba_threads(self.n_threads):
            kernels.add_block_positive_parts(
                self.col_indptr, self.col_order, self.diagonal, self.first_row, self.R,
                column_start, running,
            )
        return running, partial

    def finish(self, col_sum, damping, one_minus_damping):
        """Diagonal availabilities and exemplar flags from the complete sums;
        returns the block's flags (a copy) and its ``n_changed``."""
        self.col_sum[:] = col_sum
        _, n_changed = kernels.finish_block_columns(
            self.indptr, self.diagonal, self.first_row, self.A, self.R, self.col_sum,
            self.isolated_samples, damping, one_minus_damping, self.is_exemplar,
        )
        return self.is_exemplar.copy(), n_changed

    def complete_availability(self, damping, one_minus_damping):
        with numba_threads(self.n_threads):
            kernels.complete_stored_availability(
                self.indptr, self.indices, self.diagonal, self.A, self.R, self.col_sum,
                damping, one_minus_damping,
            )
        return True

    def structure(self):
        """The block's ``indptr`` (from 0) and ``indices``, the diagonal pairs
        inserted: the CSR pattern its messages follow."""
        return self.indptr, self.indices

    def set_messages(self, indptr, indices, R_values, A_values):
        """Continue from the given messages of the block's rows (a warm
        start, ``A`` complete) when they store exactly the block's pairs;
        returns the block's exemplar flags as they imply, or None (pairs
        differ: nothing taken)."""
        if not (np.array_equal(indptr, self.indptr) and np.array_equal(indices, self.indices)):
            return None
        self.reset()
        self.R[:] = R_values
        self.A[:] = A_values
        self.is_exemplar[:] = self.message_flags()
        return self.is_exemplar.copy()

    def message_flags(self):
        """``A(k, k) + R(k, k) > 0`` for the block's rows."""
        return self.A[self.diagonal] + self.R[self.diagonal] > 0

    def stored_evidence_margin(self, is_exemplar, assigned_rows):
        """``sparse_assign.stored_evidence_margin`` of the block's rows."""
        margin = np.full(self.last_row - self.first_row, np.nan)
        with numba_threads(self.n_threads):
            sparse_assign.stored_evidence_margin(
                self.indptr, self.indices, self.A, self.R, np.asarray(is_exemplar, dtype=bool),
                np.asarray(assigned_rows, dtype=np.int64), margin,
            )
        return margin

    # ------------------------------------------------------------------
    # Clusters (``_sparse.assign_stored_clusters``' two row operations).
    # ------------------------------------------------------------------

    def nearest_stored_exemplar(self, is_exemplar, exemplar_label):
        labels = np.empty(self.last_row - self.first_row, dtype=np.int64)
        with numba_threads(self.n_threads):
            sparse_assign.nearest_stored_exemplar(
                self.indptr, self.indices, self.first_row, self.S,
                np.asarray(is_exemplar, dtype=bool), np.asarray(exemplar_label, dtype=np.int64),
                labels,
            )
        return labels

    def add_within_cluster_sums(self, labels, sums, members):
        """The block's rows added into the running within-cluster sums and
        member counts the previous block handed over."""
        sums = np.array(sums, dtype=self.dtype, copy=True)
        members = np.array(members, dtype=np.int64, copy=True)
        pair_rows = np.repeat(
            np.arange(self.last_row - self.first_row, dtype=np.int32), np.diff(self.indptr)
        )
        with numba_threads(self.n_threads):
            sparse_assign.add_within_cluster_stored_sums(
                self.col_indptr, self.col_order, pair_rows, self.first_row, self.S,
                np.asarray(labels, dtype=np.int64), sums, members,
            )
        return sums, members

    def best_exemplar_similarity(self, is_exemplar):
        """Each row's term of the net similarity (float64, ``-inf`` for a row
        storing no exemplar)."""
        values = np.empty(self.last_row - self.first_row, dtype=np.float64)
        with numba_threads(self.n_threads):
            sparse_assign.best_stored_exemplar_similarity(
                self.indptr, self.indices, self.first_row, self.S,
                np.asarray(is_exemplar, dtype=bool), values,
            )
        return values

    def _arrays(self):
        return (self.indptr, self.indices, self.S, self.diagonal, self.col_indptr,
                self.col_order, self.R, self.A, self.col_sum)
