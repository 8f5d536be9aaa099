"""One row block of the distributed engine: its S, R, A rows and their updates.

A :class:`RowBlock` lives where its rows live: on a Dask worker as an
actor (``fastap/dask/_cluster.py``), or in this process for the in-process
stand-in the tests use (``_state.LocalBlocks``). It never imports Dask.
Every method does a whole step for the block with the kernels of
``fastap/_kernels/block_messages.py`` and returns only O(n) values; the
coordination (order of the column sums, convergence) is
``_state.BlockMessageState``'s.
"""

import numpy as np

from fastap._dense import group_rows_of
from fastap._kernels import assign, block_messages, messages, noise, setup
from fastap._kernels import preference as preference_kernels
from fastap._kernels._order import bits_view
from fastap._preference import count_below_and_equal
from fastap._resources import numba_threads

# Elements of one float64 product chunk when similarities are computed (64 MiB).
_SIMILARITY_CHUNK_ELEMENTS = 1 << 23


def block_bytes(n_rows, n_samples, dtype):
    """Bytes a block holds: S, R and A rows plus O(n) vectors and scratch."""
    itemsize = np.dtype(dtype).itemsize
    return 3 * n_rows * n_samples * itemsize + 8 * n_samples * itemsize


class MessageBlock:
    """What the dense and the sparse row blocks share: the messages' life
    cycle (``R``, ``A``, ``col_sum``, ``is_exemplar``, allocated like ``S``),
    the passes of the exact selection over the values a block presents
    (:meth:`_selection_values`) and their window, and the round trip.
    Subclasses hold ``S``, ``n_threads`` and ``first_row`` and list their
    arrays in :meth:`_arrays`."""

    def _selection_values(self):
        raise NotImplementedError

    def _arrays(self):
        raise NotImplementedError

    # Exact median and quantiles (see _state.median_of_blocks): a sample
    # brackets the value, one pass keeps the values inside the bracket here
    # (the window), and radix selection runs over the windows; over all the
    # values when it misses.

    def median_sample(self, size, seed):
        """``size`` of the presented values, drawn with a fixed-seed generator."""
        flat = self._selection_values().reshape(-1)
        if flat.size == 0 or size == 0:
            return flat[:0].copy()
        picks = np.random.default_rng([seed, self.first_row]).integers(0, flat.size, size)
        return flat[picks]

    def drop_window(self):
        self._window = None
        return True

    def _keys_of(self, window):
        return bits_view(self._window if window else self._selection_values())

    def digit_histogram(self, prefix, shift, window=False):
        """16-bit digit histogram of the presented values' keys (or the window's)."""
        with numba_threads(self.n_threads):
            return setup.digit_histogram(self._keys_of(window), prefix, shift, self.n_threads)

    def count_not_above_and_next(self, key, window=False):
        """Number of keys <= ``key`` and the smallest key above it."""
        bits = self._keys_of(window)
        with numba_threads(self.n_threads):
            return setup.count_not_above_and_next(bits, bits.dtype.type(key), self.n_threads)

    def unbox_and_call(self, method, box):
        """``method(*box[0])``: a call whose arguments came boxed (see
        ``_cluster.ActorBlocks.call``)."""
        return getattr(self, method)(*box[0])

    def count_below_and_equal(self, value):
        """Presented values below ``value`` and equal to it (a quantile's tie)."""
        return count_below_and_equal(self._selection_values(), value)

    def reset(self):
        if self.R is None:  # released
            self.R = np.zeros_like(self.S)
            self.A = np.zeros_like(self.S)
        self.R[:] = 0
        self.A[:] = 0
        self.col_sum[:] = 0
        self.is_exemplar[:] = False
        return True

    def messages(self):
        """The block's ``R`` and ``A`` (not copies: the caller copies them
        into the gathered arrays; the run releases them next)."""
        return self.R, self.A

    def release(self):
        """Free R and A (the similarities stay, for the assignment)."""
        self.R = self.A = None
        return True

    def echo(self, payload=None):
        """Return ``payload`` (a round trip, for latency measurements)."""
        return payload

    def memory_bytes(self):
        """Bytes held by the block's arrays."""
        return int(sum(a.nbytes for a in self._arrays() if a is not None))


class RowBlock(MessageBlock):
    """Rows ``[first_row, last_row)`` of S, R and A, updated in place.

    Parameters
    ----------
    n_samples : int
    first_row, last_row : int
    dtype : float32 or float64
    n_threads : int
        Numba threads for this block's kernels (results never depend on it).
    memory_limit : int or None
        Bytes this process may use (a Dask worker's limit); the block is
        refused before allocating when it would not fit in 80% of it (Dask
        pauses a worker there; the blocks are unmanaged memory to Dask).
    S_rows : ndarray (last_row - first_row, n_samples) or None
        The block's rows of a precomputed ``S`` (copied; checked by
        :meth:`check_similarities`, not here), or None to set them later
        (:meth:`set_similarities`, :meth:`compute_similarities`).
    """

    def __init__(self, n_samples, first_row, last_row, dtype, n_threads=1, memory_limit=None,
                 S_rows=None):
        self.n_samples = int(n_samples)
        self.first_row = int(first_row)
        self.last_row = int(last_row)
        self.dtype = np.dtype(dtype)
        self.n_threads = max(1, int(n_threads))
        n_rows = self.last_row - self.first_row
        self.check_memory(n_samples, first_row, last_row, dtype, memory_limit)
        self.S = None
        self._window = None
        self.R = np.zeros((n_rows, self.n_samples), dtype=self.dtype)
        self.A = np.zeros((n_rows, self.n_samples), dtype=self.dtype)
        self.col_sum = np.zeros(self.n_samples, dtype=self.dtype)
        self.is_exemplar = np.zeros(n_rows, dtype=bool)
        self.row_values = np.empty((self.n_threads, self.n_samples), dtype=self.dtype)
        self.chunk_top = np.empty(
            (self.n_threads, messages.search_chunks(self.n_samples)), dtype=np.int64
        )
        self._plan_units()
        if S_rows is not None:
            self._take_similarities(S_rows)

    @staticmethod
    def check_memory(n_samples, first_row, last_row, dtype, memory_limit, **options):
        """MemoryError when the block would not fit in 80% of ``memory_limit``
        (run by the constructor, and by ``_cluster.start_blocks`` on the
        client before the actor is submitted)."""
        n_rows = int(last_row) - int(first_row)
        needed = block_bytes(n_rows, int(n_samples), dtype)
        if memory_limit and needed > 0.8 * memory_limit:
            raise MemoryError(
                f"A block of {n_rows} rows x {n_samples} columns in {np.dtype(dtype).name} "
                f"needs about {needed / 2**30:.2f} GiB (S, R and A rows), more than 80% of this "
                f"worker's memory limit ({memory_limit / 2**30:.2f} GiB). Use more workers, "
                "workers with more memory, or float32 input."
            )

    def _plan_units(self):
        """Cut the block's rows into units of work for the pass and decide
        which column sums the pass adds itself (see block_messages.py).

        Column sums are added by fixed groups of rows (``group_rows_of(n)``,
        as the single machine adds them with the counter noise): first the
        rows of a group begun in the previous block (added in step 4,
        continuing its partial sum), then one unit per group that starts
        here, each summed from zero in the pass, while the rows are in cache.
        """
        n, first, last = self.n_samples, self.first_row, self.last_row
        self.group_rows = group_rows = group_rows_of(n)
        self.groups = []  # (sum row, complete in this block)
        first_group = -(-first // group_rows) * group_rows
        self.lead_rows = min(first_group, last) - first
        self.lead_completes = self.lead_rows > 0 and min(first_group, n) <= last
        bounds, sum_rows = [0], []
        if self.lead_rows > 0:
            bounds.append(self.lead_rows)
            sum_rows.append(-1)
        for k, group_start in enumerate(range(first_group, last, group_rows)):
            group_stop = min(group_start + group_rows, n)
            bounds.append(min(group_stop, last) - first)
            sum_rows.append(k)
            self.groups.append((k, group_stop <= last))
        n_sums = len(self.groups)
        self.unit_bounds = np.asarray(bounds, dtype=np.int64)
        self.unit_sum_rows = np.asarray(sum_rows, dtype=np.int64)
        self.unit_sums = np.zeros((max(n_sums, 1), self.n_samples if n_sums else 1))

    # ------------------------------------------------------------------
    # Similarities and preference.
    # ------------------------------------------------------------------

    def set_similarities(self, S_rows):
        """Take a copy of the block's rows of a precomputed ``S`` (the
        caller's array is never modified) and check them."""
        self._take_similarities(S_rows)
        return self.check_similarities()

    def _take_similarities(self, S_rows):
        S_rows = np.asarray(S_rows)
        expected = (self.last_row - self.first_row, self.n_samples)
        if S_rows.shape != expected:
            raise ValueError(f"Block rows of shape {S_rows.shape}, expected {expected}.")
        self.S = np.array(S_rows, dtype=self.dtype, order="C", copy=True)

    def check_similarities(self):
        """Refuse NaN and infinity (dropping the rows at once).

        A method call, not the constructor's: a Dask task that raises (the
        actor's construction) leaves its exception, its arguments and the
        block in a reference cycle on the worker until the worker's garbage
        collector runs; a method's error goes back without one.
        """
        if not np.all(np.isfinite(self.S)):
            self.S = None
            raise ValueError("The similarities contain NaN or infinity.")
        return True

    def compute_similarities(self, X, affinity):
        """The block's rows of ``S`` from all samples ``X`` (float64 (n, d)).

        ``"euclidean"``: ``-||x_i - x_j||^2`` with the single machine's
        arithmetic (float64 Gram rows finished by
        ``setup.negative_squared_distances_from_gram``); ``"cosine"``: unit
        rows multiplied in float64. BLAS may round a block's product
        differently from the whole product in the last bit.
        """
        from sklearn.preprocessing import normalize
        from sklearn.utils.extmath import row_norms

        X = np.asarray(X, dtype=np.float64)
        n_rows = self.last_row - self.first_row
        S = np.empty((n_rows, self.n_samples), dtype=self.dtype)
        if affinity == "euclidean":
            squared_norms = row_norms(X, squared=True)
        elif affinity == "cosine":
            X = normalize(X, copy=True)
        else:
            raise ValueError(f"Unknown affinity {affinity!r}.")
        # float64 products by chunks of rows (64 MiB): the block never holds
        # a second b x n float64 array besides S.
        chunk = max(1, _SIMILARITY_CHUNK_ELEMENTS // self.n_samples)
        with numba_threads(self.n_threads):
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                rows = slice(self.first_row + start, self.first_row + stop)
                product = X[rows] @ X.T
                if affinity == "euclidean":
                    setup.negative_squared_distances_from_gram(
                        product, squared_norms, self.first_row + start, S[start:stop]
                    )
                else:
                    S[start:stop] = product
        self.S = S
        return True

    def gather_window(self, low, high):
        """Count the entries below ``low`` and keep those in ``[low, high]``.

        Returns ``(n_below, n_inside)``, ``n_inside`` None when the window
        would hold more than 5% of the block (then nothing is kept).
        """
        n_tasks = self.n_threads
        capacity = max(1, int(0.05 * self.S.size / n_tasks) + 1)
        window_values = np.empty((n_tasks, capacity), dtype=self.dtype)
        with numba_threads(self.n_threads):
            below, inside = setup.count_below_and_gather_window(
                self.S, self.dtype.type(low), self.dtype.type(high), window_values
            )
        if inside.max() >= capacity:
            self._window = None
            return int(below.sum()), None
        self._window = np.concatenate(
            [window_values[t, : inside[t]] for t in range(n_tasks)]
        ).reshape(1, -1)
        return int(below.sum()), int(inside.sum())

    def _selection_values(self):
        return self.S

    def diagonal(self):
        """The block's part of the diagonal of ``S`` (a copy)."""
        rows = np.arange(self.last_row - self.first_row)
        return self.S[rows, rows + self.first_row].copy()

    def place_preference(self, preference_rows):
        """Preferences on the block's part of the diagonal (no noise yet)."""
        diagonal = np.arange(self.first_row, self.last_row)
        self.S[diagonal - self.first_row, diagonal] = preference_rows
        return True

    def off_diagonal_all_equal(self, value):
        """True when every off-diagonal entry of the block equals ``value``."""
        off_diagonal = np.ones(self.S.shape, dtype=bool)
        rows = np.arange(self.S.shape[0])
        off_diagonal[rows, rows + self.first_row] = False
        return bool(np.all(self.S[off_diagonal] == value))

    def add_noise(self, seed):
        """The counter noise on every entry (after the preferences)."""
        info = np.finfo(self.dtype)
        with numba_threads(self.n_threads):
            noise.add_counter_noise(self.S, self.first_row, seed, info.eps, info.tiny * 100)
        return True

    def set_preference(self, preference_rows, seed):
        """A new preference with its noise on the diagonal, bitwise as
        :meth:`place_preference` then :meth:`add_noise` would give it."""
        info = np.finfo(self.dtype)
        noise.set_block_diagonal(
            self.S, self.first_row, np.asarray(preference_rows, dtype=np.float64), seed,
            info.eps, info.tiny * 100,
        )
        return True

    def shift_preference(self, delta, finish_previous, damping, one_minus_damping):
        """The messages moved to a preference ``delta`` higher
        (``block_messages.shift_block_preference``; a warm search step)."""
        with numba_threads(self.n_threads):
            block_messages.shift_block_preference(
                self.A, self.R, self.first_row, self.col_sum, self.dtype.type(delta),
                finish_previous, damping, one_minus_damping,
            )
        return True

    def off_diagonal_sums_and_maxima(self, running):
        """The block's rows added into the running off-diagonal column sums
        (float64) the previous block handed over, and its rows' off-diagonal
        maxima: ``preference_range``'s two passes, by blocks."""
        running = np.array(running, dtype=np.float64, copy=True)
        maxima = np.empty(self.last_row - self.first_row, dtype=np.float64)
        with numba_threads(self.n_threads):
            preference_kernels.add_off_diagonal_column_sums_and_row_maxima(
                self.S, self.first_row, running, maxima
            )
        return running, maxima

    # ------------------------------------------------------------------
    # One iteration, in three calls (see block_messages.py).
    # ------------------------------------------------------------------

    def update(self, damping, one_minus_damping, previous_damping, previous_one_minus_damping,
               finish_previous):
        """Steps 1-3 for the block's rows; the previous iteration's
        availabilities are finished with the damping it ran with."""
        with numba_threads(self.n_threads):
            block_messages.update_block_rows(
                self.S, self.A, self.R, self.first_row, self.col_sum, damping,
                one_minus_damping, previous_damping, previous_one_minus_damping,
                finish_previous, self.row_values, self.chunk_top, self.unit_bounds,
                self.unit_sum_rows, self.unit_sums,
            )
        return True

    def add_positive_parts(self, column_start, running, partial):
        """Step 4 on one column segment: the block's share added into the
        running sums and the partial group sum that the previous block
        handed over; returns the updated ``(running, partial)``."""
        running = np.array(running, dtype=np.float64, copy=True)
        partial = np.array(partial, dtype=np.float64, copy=True)
        columns = slice(column_start, column_start + running.size)
        with numba_threads(self.n_threads):
            if self.lead_rows > 0:
                block_messages.add_rows_positive_parts(
                    self.R, 0, self.lead_rows, self.first_row, column_start, partial
                )
                if self.lead_completes:
                    running += partial
                    partial[:] = 0.0
            for sum_row, complete in self.groups:
                if complete:
                    running += self.unit_sums[sum_row, columns]
                else:
                    partial[:] = self.unit_sums[sum_row, columns]
        return running, partial

    def finish(self, col_sum, damping, one_minus_damping):
        """Diagonal availabilities and exemplar flags from the complete sums.

        Returns the block's flags (a copy) and its ``n_changed``.
        """
        self.col_sum[:] = col_sum
        _, n_changed = block_messages.finish_block_iteration(
            self.A, self.R, self.first_row, self.col_sum, damping, one_minus_damping,
            self.is_exemplar,
        )
        return self.is_exemplar.copy(), n_changed

    def complete_availability(self, damping, one_minus_damping):
        with numba_threads(self.n_threads):
            block_messages.finish_block_availability(
                self.A, self.R, self.first_row, self.col_sum, damping, one_minus_damping
            )
        return True

    def set_messages(self, R_rows, A_rows):
        """Continue from the given rows of ``R`` and ``A`` (a warm start, ``A``
        complete); returns the block's exemplar flags as they imply."""
        self.R[:] = R_rows
        self.A[:] = A_rows
        self.col_sum[:] = 0
        self.is_exemplar[:] = self.message_flags()
        return self.is_exemplar.copy()

    def message_flags(self):
        """``A(k, k) + R(k, k) > 0`` for the block's rows."""
        rows = np.arange(self.last_row - self.first_row)
        columns = rows + self.first_row
        return self.A[rows, columns] + self.R[rows, columns] > 0

    def evidence_margin(self, exemplars, assigned_rows):
        """``assign.evidence_margin`` of the block's rows (float64)."""
        margin = np.full(self.last_row - self.first_row, np.nan)
        with numba_threads(self.n_threads):
            assign.evidence_margin(
                self.A, self.R, np.asarray(exemplars, dtype=np.intp),
                np.asarray(assigned_rows, dtype=np.intp), margin,
            )
        return margin

    # ------------------------------------------------------------------
    # Clusters from exemplars (scikit-learn's refinement, by blocks).
    # ------------------------------------------------------------------

    def nearest_exemplar(self, exemplars):
        labels = np.empty(self.last_row - self.first_row, dtype=np.intp)
        with numba_threads(self.n_threads):
            block_messages.nearest_exemplar_of_block(
                self.S, self.first_row, np.asarray(exemplars, dtype=np.intp), labels
            )
        return labels

    def add_within_cluster_rows(self, labels, running):
        running = np.array(running, dtype=self.dtype, copy=True)
        with numba_threads(self.n_threads):
            block_messages.add_within_cluster_rows(
                self.S, self.first_row, np.asarray(labels, dtype=np.intp), running
            )
        return running

    def best_exemplar_similarity(self, exemplars, is_exemplar):
        values = np.empty(self.last_row - self.first_row, dtype=np.float64)
        with numba_threads(self.n_threads):
            block_messages.best_exemplar_similarity_of_block(
                self.S, self.first_row, np.asarray(exemplars, dtype=np.intp),
                np.asarray(is_exemplar, dtype=bool), values,
            )
        return values

    def exemplar_rows(self, rows):
        """Similarities of the given global rows (all in this block)."""
        return self.S[np.asarray(rows, dtype=np.intp) - self.first_row].copy()

    def _arrays(self):
        return (self.S, self.R, self.A, self.col_sum, self.row_values, self.chunk_top,
                self.unit_sums)
