"""The compact engine: ``S`` stored, ``R`` and most of ``A`` not.

:class:`CompactMessageState` is the lean engine (``_lean.LeanMessageState``:
``R = c S - z + E``) with the availabilities compressed too: the pairs whose
responsibility was never positive share one availability per column
(``acol``), and only the others, the exceptions, keep their own, in per-row
lists (``_kernels/compact_messages.py`` has the derivation). An iteration
then reads ``S`` once plus the lists, and the messages cost O(N) plus the
lists instead of an N x N matrix. Every message, and so every result, is
the lean engine's bitwise, in float32 and float64.

The lists only grow. When they would outgrow their budget
(:data:`EXCEPTION_BUDGET_FRACTION` of one N x N matrix) the state turns into
the lean engine in place (the N x N ``A`` formed from ``acol`` and the
lists, the same messages), or raises MemoryError when that matrix cannot
be allocated either.
"""

import numba
import numpy as np

from fastap import _resources
from fastap._kernels import compact_messages, lean_messages, messages
from fastap._lean import LeanMessageState

# Lists may hold at most this fraction of the bytes of one N x N matrix of
# the message dtype; beyond it the lean engine's A costs little more.
EXCEPTION_BUDGET_FRACTION = 0.5

# Slots per row at the start (grown per row, doubling, as rows fill).
INITIAL_EXCEPTION_SLOTS = 16


def exception_budget_bytes(n_samples, dtype):
    """Bytes the exception lists may take before the state turns lean."""
    return int(EXCEPTION_BUDGET_FRACTION * n_samples * n_samples * np.dtype(dtype).itemsize)


class CompactMessageState(LeanMessageState):
    """Affinity Propagation on ``S`` with ``R`` and most of ``A`` implicit.

    Implements ``_run.MessageState``; parameters as
    ``_lean.LeanMessageState`` (no warm messages, ``matrices`` unused).

    Attributes
    ----------
    acol : ndarray (n,), dtype of ``S``
        Availability of every never-positive pair of each column.
    A_diagonal : ndarray (n,), dtype of ``S``
        ``A(k, k)``.
    exception_count : ndarray (n,), int64
        Pairs of each row with their own availability.
    A : ndarray (n, n) or None
        None, unless the lists outgrew their budget and the state runs as
        the lean engine (``fell_back_at``: the iteration after which it did).
    """

    def prepare(self):
        self._prepare_similarities()
        self._matrices = None
        self.A = self.R = None
        self.fell_back_at = None
        self._prepare_lean_buffers()
        n = self.n_samples
        dtype = self.S.dtype
        self.acol = np.zeros(n, dtype=dtype)
        self.A_diagonal = np.zeros(n, dtype=dtype)
        self.row_availability = np.zeros((self._n_scratch, n), dtype=dtype)
        self.slot = np.zeros((self._n_scratch, n), dtype=np.int32)
        self.exception_budget = exception_budget_bytes(n, dtype)
        self.chunk_out = np.empty_like(self.chunk_max)
        self._allocate_exceptions(np.full(n, INITIAL_EXCEPTION_SLOTS, dtype=np.int64))
        self.reset()

    def _allocate_exceptions(self, slots):
        """A pool with ``slots[i]`` slots for row ``i``, the entries kept."""
        n = self.n_samples
        start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(slots, out=start[1:])
        columns = np.zeros(start[-1], dtype=np.int32)
        values = np.zeros(start[-1], dtype=self.S.dtype)
        if getattr(self, "exception_start", None) is not None:
            compact_messages.copy_exception_pool(
                self.exception_columns, self.exception_values, self.exception_start,
                self.exception_count, columns, values, start,
            )
        else:
            self.exception_count = np.zeros(n, dtype=np.int64)
            self.missed = np.zeros(n, dtype=np.int64)
        self.exception_columns, self.exception_values = columns, values
        self.exception_start = start

    def pool_bytes(self):
        """Bytes of the exception pool now."""
        return self.exception_columns.nbytes + self.exception_values.nbytes

    def _exceptions(self):
        return (self.exception_columns, self.exception_values, self.exception_start,
                self.exception_count, self.missed)

    def _corrections(self):
        return (self.correction_columns, self.correction_values, self.correction_count,
                self.evicted)

    @property
    def is_lean(self):
        """The lists outgrew their budget: the state runs as the lean engine."""
        return self.A is not None

    # -- iterations ---------------------------------------------------------

    def reset(self):
        if self.is_lean:  # back to the compact form: a reset has no exceptions
            self.A = None
            self.exception_start = None
            self._allocate_exceptions(
                np.full(self.n_samples, INITIAL_EXCEPTION_SLOTS, dtype=np.int64)
            )
        np.copyto(self.chunk_out, self.chunk_max)
        self.acol.fill(0)
        self.A_diagonal.fill(0)
        self.exception_count.fill(0)
        self.missed.fill(0)
        self._materialized = None
        self.n_iterations = 0
        self._reset_row_state()

    def iterate(self):
        self._materialized = None
        self.n_iterations += 1
        if self.is_lean:
            return super().iterate()
        dtype = self.dtype.type
        damping = self.damping
        scale = damping * self.scale + (1 - damping)
        previous = (self.scale, self.last_damping, 1 - self.last_damping)
        current = (scale, damping, 1 - damping)
        if self.availability_pending:
            self._advance_columns()
        arguments = (
            self.S, (self.chunk_max, self.chunk_out), self.acol, self.A_diagonal, self.col_sum,
            self.group_sums, self.R_diagonal, self.row_offset, self._corrections(),
            self._exceptions(),
            self.availability_pending, previous, current, self._resolution, self.group_rows,
            self.row_availability, self.slot, self.chunk_values, self.chunk_top, self._saved,
        )
        if self.parallel:
            with numba.parallel_chunksize(1):  # groups handed out one at a time
                compact_messages.update_compact_messages_parallel(*arguments)
        else:
            compact_messages.update_compact_messages_serial(*arguments)
        messages.add_group_sums(self.group_sums, self.col_sum_acc)
        self.scale = scale
        self.last_damping = damping
        self.availability_pending = True
        result = compact_messages.finish_compact_iteration(
            self.A_diagonal, self.R_diagonal, self.col_sum, self.col_sum_acc, dtype(damping),
            dtype(1 - damping), self.is_exemplar,
        )
        self._grow_corrections_if_full()
        self._resize_exceptions()
        return result

    def _advance_columns(self):
        """The never-positive pairs' availability of the last iteration."""
        dtype = self.dtype.type
        lean_messages.cold_availability_terms(
            self.col_sum, dtype(1 - self.last_damping), self.cold_terms
        )
        compact_messages.advance_column_availability(
            self.acol, self.cold_terms, dtype(self.last_damping)
        )

    def _resize_exceptions(self):
        """Rows whose lists were full get room (doubling) and their missed
        pairs; beyond the budget the state turns lean. A pool four times
        larger than its entries (after a transient) shrinks."""
        rows = np.flatnonzero(self.missed).astype(np.int64)
        slots = np.diff(self.exception_start)
        if rows.size == 0:
            entries = int(self.exception_count.sum())
            if slots.sum() > 4 * max(entries, INITIAL_EXCEPTION_SLOTS * self.n_samples):
                self._allocate_exceptions(
                    np.maximum(2 * self.exception_count, INITIAL_EXCEPTION_SLOTS)
                )
            return
        needed = self.exception_count[rows] + self.missed[rows]
        slots[rows] = np.maximum(2 * slots[rows], needed + needed // 2)
        itemsize = self.exception_columns.itemsize + self.exception_values.itemsize
        if int(slots.sum()) * itemsize > self.exception_budget:
            slots[rows] = needed  # no headroom near the budget
        available = _resources.available_memory_bytes()
        new_bytes = int(slots.sum()) * itemsize
        if new_bytes > self.exception_budget or (
            available is not None and new_bytes > available
        ):
            self._fall_back_to_lean()
            return
        self._allocate_exceptions(slots)
        compact_messages.append_missed_exceptions(
            rows, self.S, self.acol, self.row_offset, self._corrections(), self._exceptions(),
            self.dtype.type(self.scale), self.chunk_out,
        )
        self.missed.fill(0)

    def _fall_back_to_lean(self):
        """Form the lean engine's (pending) ``A`` and run on it from now on:
        the same messages, so the same results."""
        n = self.n_samples
        needed = n * n * self.dtype.itemsize
        available = _resources.available_memory_bytes()
        if available is not None and needed > available:
            raise MemoryError(
                f"The compact engine's exception lists outgrew their budget "
                f"({self.exception_budget / 2**30:.2f} GiB) and the lean engine's "
                f"{n} x {n} availability matrix ({needed / 2**30:.1f} GiB) does not fit in "
                f"the {available / 2**30:.1f} GiB available. Ways out: a higher preference "
                "(smaller clusters, fewer exceptions), float32, or affinity='nearest_neighbors'."
            )
        A = np.empty((n, n), dtype=self.dtype)
        compact_messages.materialize_compact_availability(
            self.acol, self.A_diagonal, self._exceptions(), A
        )
        self.A = A
        self.fell_back_at = self.n_iterations
        self.exception_columns = self.exception_values = None

    def complete_availability(self):
        if self.is_lean:
            return super().complete_availability()
        if self.availability_pending:
            dtype = self.dtype.type
            self._advance_columns()
            compact_messages.complete_compact_exceptions(
                self.S, self.col_sum, self.row_offset, self._corrections(), self._exceptions(),
                dtype(self.scale), dtype(self.last_damping), dtype(1 - self.last_damping),
                *self._whole_pool_scratch(),
            )
            self.availability_pending = False

    def _whole_pool_scratch(self):
        """``slot`` and ``saved`` for a parallel kernel outside the pass, one
        row per thread of Numba's whole pool."""
        threads = numba.config.NUMBA_NUM_THREADS
        slot = np.zeros((threads, self.n_samples), dtype=np.int32)
        return slot, np.empty((threads, 2, self.capacity), dtype=np.float64)

    def _shift_messages(self, delta):
        self._materialized = None
        if self.is_lean:
            return super()._shift_messages(delta)
        self.complete_availability()
        compact_messages.shift_compact_preference(
            self.S, self.acol, self.col_sum, self.row_offset, self._corrections(),
            self._exceptions(), delta, self.dtype.type(self.scale),
        )
        self.R_diagonal += delta
        self.col_sum += delta

    # -- results ------------------------------------------------------------

    def messages(self):
        """``(R, A)`` completed to the last iteration, both materialised into
        new N x N arrays (kept until the state changes)."""
        if self.is_lean:
            return super().messages()
        if self._materialized is None:
            self.complete_availability()
            A = np.empty((self.n_samples, self.n_samples), dtype=self.dtype)
            compact_messages.materialize_compact_availability(
                self.acol, self.A_diagonal, self._exceptions(), A
            )
            self._materialized = (self.responsibility(), A)
        return self._materialized

    def release(self):
        super().release()
        self.acol = self.A_diagonal = self.row_availability = self.slot = self.chunk_out = None
        self.exception_columns = self.exception_values = self._materialized = None
