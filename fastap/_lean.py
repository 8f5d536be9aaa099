"""The lean engine: ``S`` and ``A`` stored, ``R`` rebuilt on the fly.

:class:`LeanMessageState` implements the run's message-state protocol
(``_run.MessageState``) like ``_dense.DenseMessageState``, whose set-up
(preferences, noise, the equal-similarities test, preference range and
quantiles), objective and assignment it shares, with two N x N matrices
instead of three: off the diagonal ``R(i, k) = c S(i, k) - z(i) + E(i, k)``
with one scalar ``c``, one value ``z(i)`` per row and a short per-row list
``E`` (see ``_kernels/lean_messages.py`` for the recurrence, the list's rule
and its error bound). An iteration reads ``S`` and ``A`` and writes ``A``.

It is the float32 default; for float64 it is an explicit choice (float64
keeps the stored-R engine, bitwise equal to scikit-learn). A warm start
from given ``(R, A)`` needs the stored engine: an arbitrary ``R`` has no
lean form.
"""

import numba
import numpy as np

from fastap._dense import DenseMessageState
from fastap._kernels import lean_messages, messages, setup

# Below this size one thread beats two (the dense engine's float32 figure).
PARALLEL_MIN_SAMPLES = 150


def group_rows(n_samples):
    """Rows per group of the column sums: a function of the problem only
    (never of the thread count), so results do not depend on threads."""
    return int(max(1, min(64, n_samples // 8)))


class LeanMessageState(DenseMessageState):
    """Affinity Propagation on ``S`` and ``A`` with ``R`` never stored.

    Implements ``_run.MessageState``. Parameters as
    ``_dense.DenseMessageState``, except ``warm_messages`` (not supported:
    use the stored engine) and ``matrices`` (only its ``A`` is used; do
    not allocate one for this engine).

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

    def __init__(self, S, preference=None, *, damping, random_state=None, n_threads=1,
                 matrices=None, warm_messages=None, preference_offset=None, prepared=False):
        if warm_messages is not None:
            raise ValueError(
                "The lean engine cannot continue from stored messages (R has no lean form); "
                "use the stored engine for a warm start."
            )
        super().__init__(
            S, preference, damping=damping, random_state=random_state, n_threads=n_threads,
            matrices=matrices, preference_offset=preference_offset, prepared=prepared,
        )

    # -- set-up -------------------------------------------------------------

    def prepare(self):
        n = self.n_samples
        self._prepare_similarities()
        if self._matrices is not None:
            _, self.A = self._matrices.ready()  # R is dropped here
        else:
            self.A = np.empty((n, n), dtype=self.S.dtype)
        self._matrices = None
        self.R = None
        # Zeroed by rows in parallel: the pages are mapped by the threads
        # that will use them (first touch).
        lean_messages.zero_rows(self.A)
        self._prepare_lean_buffers()
        self.reset()

    def _prepare_lean_buffers(self):
        """Everything but ``A``: the row state, the lists and the scratch."""
        S = self.S
        n = self.n_samples
        self.parallel = self.n_threads > 1 and n >= PARALLEL_MIN_SAMPLES
        # Scratch rows are indexed by numba.get_thread_id(), which ranges
        # over the whole pool, not only the threads currently in use.
        self._n_scratch = numba.config.NUMBA_NUM_THREADS if self.parallel else 1
        self.col_sum = np.zeros(n, dtype=S.dtype)
        self.col_sum_acc = np.zeros(n, dtype=np.float64)
        self.R_diagonal = np.zeros(n, dtype=S.dtype)
        self.row_offset = np.zeros(n, dtype=np.float64)
        self.correction_count = np.zeros(n, dtype=np.int64)
        self.evicted = np.zeros(n, dtype=np.float64)
        self.correction_columns = None
        self._allocate_corrections(lean_messages.INITIAL_CAPACITY)
        self.chunk_values = np.empty(
            (self._n_scratch, lean_messages.SEARCH_CHUNK), dtype=S.dtype
        )
        key_dtype = np.dtype(np.int32 if S.dtype == np.float32 else np.int64)
        n_chunks = lean_messages.search_chunks(n)
        # Each thread's row padded to whole 64-byte cache lines: threads
        # writing neighbouring rows would otherwise share lines.
        per_line = 64 // key_dtype.itemsize
        self.chunk_top = np.empty(
            (self._n_scratch, -(-n_chunks // per_line) * per_line), dtype=key_dtype
        )
        # Off-diagonal maxima of S per search chunk: where c max(S) - z is
        # not positive the pass skips step 4 and takes a cheaper step 1.
        self.chunk_max = np.empty((n, n_chunks), dtype=S.dtype)
        lean_messages.off_diagonal_chunk_maxima(S, self.chunk_max)
        self.cold_terms = np.empty(n, dtype=S.dtype)
        self.group_rows = group_rows(n)
        self.group_sums = np.empty((-(-n // self.group_rows), n), dtype=np.float64)
        self._resolution = float(np.finfo(S.dtype).eps) / 2

    # -- iterations ---------------------------------------------------------

    def set_damping(self, damping):
        self.damping = float(damping)
        if not self.availability_pending:
            self.last_damping = self.damping

    def reset(self):
        self.A.fill(0)
        self._reset_row_state()

    def _reset_row_state(self):
        """Everything but ``A`` as after :meth:`prepare`."""
        self.col_sum.fill(0)
        self.col_sum_acc.fill(0)
        self.R_diagonal.fill(0)
        self.row_offset.fill(0)
        self.correction_count.fill(0)
        self.evicted.fill(0)
        self.is_exemplar[:] = False
        self.scale = 0.0  # c
        self.availability_pending = False
        self.last_damping = self.damping

    def iterate(self):
        dtype = self.dtype.type
        damping = self.damping
        one_minus_damping = 1 - damping
        scale = damping * self.scale + one_minus_damping
        # The last iteration's availabilities are finished with its damping.
        previous = (self.scale, self.last_damping, 1 - self.last_damping)
        current = (scale, damping, one_minus_damping)
        if self.availability_pending:
            lean_messages.cold_availability_terms(
                self.col_sum, dtype(1 - self.last_damping), self.cold_terms
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
                lean_messages.update_lean_messages_parallel(*arguments)
        else:
            lean_messages.update_lean_messages_serial(*arguments)
        messages.add_group_sums(self.group_sums, self.col_sum_acc)
        self.scale = scale
        self.last_damping = damping
        self.availability_pending = True
        result = lean_messages.finish_lean_iteration(
            self.A, self.R_diagonal, self.col_sum, self.col_sum_acc, dtype(damping),
            dtype(one_minus_damping), self.is_exemplar,
        )
        self._grow_corrections_if_full()
        return result

    def complete_availability(self):
        if self.availability_pending:
            dtype = self.dtype.type
            lean_messages.complete_lean_availability(
                self.S, self.A, self.col_sum, self.row_offset, self.correction_columns,
                self.correction_values, self.correction_count, dtype(self.scale),
                dtype(self.last_damping), dtype(1 - self.last_damping),
            )
            self.availability_pending = False

    def set_preference(self, preference, *, shift_messages):
        """See ``_run.MessageState``. The off-diagonal ``R`` does not read
        ``S``'s diagonal, so only ``R``'s diagonal, the column sums and ``A``
        move (``lean_messages.shift_lean_preference``, which also completes ``A``)."""
        dtype = self.dtype.type
        S = self.S
        n = self.n_samples
        diagonal = preference if self.preference_offset is None else (
            preference + self.preference_offset
        )
        S.flat[:: n + 1] = diagonal
        info = np.finfo(S.dtype)
        setup.add_diagonal_noise(S, self.diagonal_normals, info.eps, info.tiny * 100)
        self._objective.invalidate()
        if shift_messages:
            delta = np.full(n, dtype(preference) - dtype(self._scalar_preference), dtype=S.dtype)
            self._shift_messages(delta)
            self.availability_pending = False
        self._scalar_preference = preference
        self.preference = np.asarray(diagonal, dtype=S.dtype)

    def _shift_messages(self, delta):
        """Messages to preferences ``delta`` higher (``A`` completed too)."""
        dtype = self.dtype.type
        lean_messages.shift_lean_preference(
            self.S, self.A, self.col_sum, self.R_diagonal, self.row_offset,
            self.correction_columns, self.correction_values, self.correction_count, delta,
            self.availability_pending, dtype(self.scale), dtype(self.last_damping),
            dtype(1 - self.last_damping),
        )

    # -- results ------------------------------------------------------------

    def messages(self):
        """``(R, A)`` completed to the last iteration; ``R`` is materialised
        into a new N x N array (the only time this engine holds three)."""
        self.complete_availability()
        return self.responsibility(), self.A

    def responsibility(self):
        """The whole ``R`` this state stands for, as a new array."""
        R = np.empty((self.n_samples, self.n_samples), dtype=self.dtype)
        lean_messages.materialize_responsibility(
            self.S, self.R_diagonal, self.row_offset, self.correction_columns,
            self.correction_values, self.correction_count, self.dtype.type(self.scale), R,
        )
        return R

    def release(self):
        self.A = self.R = None
        self.chunk_values = self.chunk_top = self.group_sums = self.chunk_max = None
        self.correction_columns = self.correction_values = self._saved = None

    # -- the correction lists -----------------------------------------------

    @property
    def capacity(self):
        """Entries per row the correction lists can hold now."""
        return self.correction_columns.shape[1]

    def _allocate_corrections(self, capacity):
        n = self.n_samples
        columns = np.zeros((n, capacity), dtype=np.int32)
        values = np.zeros((n, capacity), dtype=np.float64)
        if self.correction_columns is not None:
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
