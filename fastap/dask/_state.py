"""The message state of the distributed engine, over row blocks anywhere.

:class:`BlockMessageState` implements the run loop's message-state protocol
(``fastap/_run.py``) over P row blocks
(:class:`fastap.dask._block.RowBlock`). It talks to them through a
*transport* with two operations, ``call(p, method, *args)`` returning a
future (``.result()``), and ``len()``: :class:`LocalBlocks` calls blocks in
this process (the stand-in the tests run with P in {1, 2, 3, 7}), and
``fastap.dask._cluster.ActorBlocks`` calls Dask actors. The state is the
same code in both cases. A sparse graph's blocks (``_sparse_block.py``)
run the same exchange through its subclass ``_sparse_state.SparseBlockMessageState``.

One iteration
-------------
1. every block runs steps 1-3 on its rows (in parallel);
2. the column sums of ``max(R, 0)`` travel block 0 -> 1 -> ... -> P-1 in
   column segments, each block adding its rows into the running sums
   (a pipeline: block p works on segment c while block p-1 works on c+1);
   the sums are thus added in the single machine's order whatever P;
3. the totals, rounded to the message dtype, go to every block, which
   finishes its diagonal availabilities and returns its exemplar flags.

Bytes per iteration, through the client: ``16 n`` (running and partial
group sums; ``8 n`` for sparse blocks) to and from each block in step 2,
``itemsize * n`` to each block in step 3, ``n`` flag bytes back. Dense rows
are added by fixed groups of rows (the single machine's order with the
counter noise, ``DenseMessageState(grouped_sums=True)``): each block sums
its own groups in its row pass while the rows are in cache, so step 2 only
adds a few vectors per block and never reads ``R`` again.

Beyond the iterations
---------------------
The ``n_clusters`` search (``fastap/_search.py``) drives this state as it
drives the single machine's: its bracket (the off-diagonal column sums
passed block to block in row order, each block's row maxima) and start
(the exact off-diagonal median) are computed over the blocks, and a warm
step's ``set_preference(p, shift_messages=True)`` has every block shift its
rows' messages, its diagonal responsibilities and its own copy of the
column sums (every block holds the same totals since step 3), element for
element as the single machine's kernel. ``messages()`` gathers ``R`` and
``A`` to the client (``keep_messages``, ``warm_start``), block by block
into the two arrays, after checking that they fit there; a warm start sends
each block its rows back (:meth:`BlockMessageState.prepare`); the
membership confidence is computed by the blocks on their rows.
"""

import numpy as np

from fastap import _resources
from fastap._kernels._order import bits_view, order_key
from fastap._kernels.setup import key_to_value, middle_mean, select_key
from fastap._preference import QuantileTie, preference_range_bound

# Columns per segment of the column-sum pipeline: small enough that block
# p + 1 starts soon after block p, large enough that a call's latency
# (about 1-2 ms for a Dask actor) is small against the work it carries.
SEGMENT_COLUMNS = 1 << 16


class _Done:
    """A result already computed (the in-process transport's future)."""

    def __init__(self, value):
        self.value = value

    def result(self, timeout=None):
        return self.value

    def done(self):
        return True


class LocalBlocks:
    """In-process stand-in for the cluster: RowBlock objects called directly."""

    def __init__(self, blocks):
        self.blocks = list(blocks)

    def __len__(self):
        return len(self.blocks)

    def call(self, p, method, *args):
        return _Done(getattr(self.blocks[p], method)(*args))

    def results(self, futures):
        return [future.result() for future in futures]


def even_bounds(n_samples, n_blocks):
    """Row bounds of ``n_blocks`` contiguous blocks of nearly equal size."""
    n_blocks = max(1, min(int(n_blocks), n_samples))
    return np.array([p * n_samples // n_blocks for p in range(n_blocks + 1)], dtype=np.int64)


def column_segments(n_samples, n_blocks, segment_columns=SEGMENT_COLUMNS):
    """Column segments of the pipeline: at least ``2 (P - 1)`` when P > 1,
    so the blocks overlap, each at most ``segment_columns`` long."""
    n_segments = max(-(-n_samples // segment_columns), 2 * (n_blocks - 1), 1)
    n_segments = min(n_segments, n_samples)
    edges = [c * n_samples // n_segments for c in range(n_segments + 1)]
    return list(zip(edges[:-1], edges[1:]))


class BlockMessageState:
    """Affinity Propagation's messages over row blocks (see the module notes).

    Parameters
    ----------
    blocks : LocalBlocks or ActorBlocks
        The transport to P blocks holding their rows of ``S`` with the
        preferences on the diagonal (:func:`place_preference`), no noise yet
        (:meth:`prepare` adds it).
    bounds : ndarray (P + 1,)
        Row bounds of the blocks.
    dtype : float32 or float64
    preference : ndarray, 0-d or (n_samples,), of ``dtype``
        The preference on the diagonal.
    damping : float
    seed : int
        The counter noise's seed.
    segment_columns : int
        Longest column segment of the pipeline.
    warm_messages : tuple (R, A) or None
        The messages of an earlier fit to continue from (a warm start),
        sent to the blocks by :meth:`prepare`: n x n arrays of ``dtype``
        (``A`` complete, as :meth:`messages` leaves it); on a sparse graph,
        CSR matrices (``_sparse_state.SparseBlockMessageState``).
    """

    def __init__(self, blocks, bounds, dtype, preference, damping, seed,
                 segment_columns=SEGMENT_COLUMNS, warm_messages=None):
        self.blocks = blocks
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.n_samples = int(self.bounds[-1])
        self.dtype = np.dtype(dtype)
        self.preference = np.asarray(preference, dtype=self.dtype)
        self.seed = int(seed)
        self.is_exemplar = np.zeros(self.n_samples, dtype=bool)
        self.segments = column_segments(self.n_samples, len(blocks), segment_columns)
        # The last iteration's off-diagonal availabilities are finished at
        # the start of the next pass, with the damping that iteration ran
        # with (last_damping); False while A is complete.
        self.availability_pending = False
        self.set_damping(damping)
        self.n_iter = 0
        self._warm_messages = warm_messages

    # ------------------------------------------------------------------
    # Damping.
    # ------------------------------------------------------------------

    def set_damping(self, damping):
        """Use ``damping`` from the next iteration on."""
        dtype = self.dtype.type
        self.damping = float(damping)
        # As the single machine: 1 - d in float64 first, then rounded.
        self._pair = (dtype(damping), dtype(1 - damping))
        if not self.availability_pending:
            self.last_damping, self._last_pair = self.damping, self._pair

    @property
    def damping_value(self):
        """The damping as a float (the name the single machine's loop reads)."""
        return self.damping

    # ------------------------------------------------------------------
    # Set-up.
    # ------------------------------------------------------------------

    def equal_similarities(self):
        """scikit-learn's degenerate case: None, or whether the preference
        beats the common similarity (one sample: False)."""
        n = self.n_samples
        if n == 1:
            return False
        if not np.all(self.preference == self.preference.flat[0]):
            return None
        first_row = self.blocks.call(0, "exemplar_rows", [0]).result()[0]
        common = first_row[1]
        if not all(self._call_all("off_diagonal_all_equal", common)):
            return None
        return bool(self.preference.flat[0] > first_row[n - 1])

    def prepare(self):
        """The counter noise on every block's similarities; zero messages, or
        the warm messages given (sent to the blocks, then let go here)."""
        self._call_all("add_noise", self.seed)
        self.reset()
        warm, self._warm_messages = self._warm_messages, None
        if warm is not None:
            flags = self._send_messages(*warm)
            if flags is not None:
                # Flags as the messages stand, so that the first iteration
                # counts changes against the previous fit's exemplars.
                self.is_exemplar = np.concatenate(flags)
            else:
                self.reset()  # the pairs differ: a cold start, as on one machine

    def _send_messages(self, R, A):
        """Each block's rows of ``R`` and ``A``; the blocks' flags."""
        futures = [
            self.blocks.call(p, "set_messages", self._rows_of(R, p), self._rows_of(A, p))
            for p in range(len(self.blocks))
        ]
        return self.blocks.results(futures)

    def preference_range(self):
        """``preference_range`` (``method="bound"``) of the similarities the
        blocks hold, bitwise the single machine's: the off-diagonal column
        sums pass block to block in row order (the single machine's order),
        each block adds its rows' maxima; before :meth:`prepare`."""
        running = np.zeros(self.n_samples)
        maxima = []
        for p in range(len(self.blocks)):
            running, block_maxima = self.blocks.call(
                p, "off_diagonal_sums_and_maxima", running
            ).result()
            maxima.append(block_maxima)
        return preference_range_bound(running, np.concatenate(maxima))

    def similarity_quantile(self, q):
        """The q-quantile of the off-diagonal similarities, exactly (the
        search's start; before :meth:`prepare`)."""
        return off_diagonal_quantile_of_blocks(self.blocks, self.bounds, self.dtype, q)

    # ------------------------------------------------------------------
    # One iteration.
    # ------------------------------------------------------------------

    def _call_all(self, method, *args):
        futures = [self.blocks.call(p, method, *args) for p in range(len(self.blocks))]
        return self.blocks.results(futures)

    def _carries_partial_sums(self):
        """Whether a partial group sum travels with the running sums (dense
        rows are added in groups, see ``_block.py``; the sparse blocks add
        every row into the running sums)."""
        return True

    def _column_sums(self):
        """Step 2: the column sums of Rp added block after block, by segment."""
        P = len(self.blocks)
        # Without a partial group sum an empty vector travels.
        partial_size = 1 if self._carries_partial_sums() else 0
        futures = [[
            self.blocks.call(
                0, "add_positive_parts", start, np.zeros(stop - start),
                np.zeros((stop - start) * partial_size),
            )
            for start, stop in self.segments
        ]]
        futures += [[] for _ in range(1, P)]
        # Block p gets segment c as soon as block p - 1 has returned it (a
        # block runs its calls in the order they arrive): while block p adds
        # segment c, block p - 1 adds c + 1. Waiting for all of block p - 1's
        # segments first would leave one block working at a time.
        n_segments = len(self.segments)
        while len(futures[-1]) < n_segments:
            ready = [
                p for p in range(1, P)
                if len(futures[p]) < len(futures[p - 1])
                and futures[p - 1][len(futures[p])].done()
            ]
            if not ready:  # wait for the oldest segment still to be passed on
                p = next(p for p in range(1, P) if len(futures[p]) < len(futures[p - 1]))
                futures[p - 1][len(futures[p])].result()
                continue
            for p in ready:
                c = len(futures[p])
                futures[p].append(self.blocks.call(
                    p, "add_positive_parts", self.segments[c][0], *futures[p - 1][c].result()
                ))
        totals = np.empty(self.n_samples, dtype=np.float64)
        for (start, stop), (running, _) in zip(self.segments, self.blocks.results(futures[-1])):
            totals[start:stop] = running
        return totals

    def iterate(self):
        """Run one iteration; return ``(n_exemplars, n_changed)``."""
        damping, one_minus_damping = self._pair
        self._call_all("update", *self._pair, *self._last_pair, self.availability_pending)
        col_sum = self._column_sums().astype(self.dtype)
        finished = self._call_all("finish", col_sum, damping, one_minus_damping)
        self.is_exemplar = np.concatenate([flags for flags, _ in finished])
        n_changed = int(sum(changed for _, changed in finished))
        self.availability_pending = True
        self.last_damping, self._last_pair = self.damping, self._pair
        self.n_iter += 1
        return int(np.count_nonzero(self.is_exemplar)), n_changed

    def complete_availability(self):
        """Bring ``A`` off the diagonal to the end of the last iteration."""
        if self.availability_pending:
            self._call_all("complete_availability", *self._last_pair)
            self.availability_pending = False

    # ------------------------------------------------------------------
    # Preference, reset, messages.
    # ------------------------------------------------------------------

    def _rows_of(self, values, p):
        return values[self.bounds[p]:self.bounds[p + 1]]

    def set_preference(self, preference, *, shift_messages):
        """A new preference with its noise on the diagonal, bitwise as a
        fresh set-up with it; ``shift_messages``: every block moves its
        rows' messages and its copy of the column sums to it, as the single
        machine's ``messages.shift_preference`` (which also completes ``A``)."""
        dtype = self.dtype.type
        delta = dtype(preference) - dtype(self.preference.flat[0]) if shift_messages else None
        self.preference = np.asarray(preference, dtype=self.dtype)
        preference = np.broadcast_to(self.preference, (self.n_samples,)).astype(np.float64)
        futures = [
            self.blocks.call(p, "set_preference", self._rows_of(preference, p), self.seed)
            for p in range(len(self.blocks))
        ]
        self.blocks.results(futures)
        if shift_messages:
            self._call_all("shift_preference", delta, self.availability_pending,
                           *self._last_pair)
            self.availability_pending = False

    def reset(self):
        """Zero messages and no exemplars, as at the start."""
        self._call_all("reset")
        self.is_exemplar = np.zeros(self.n_samples, dtype=bool)
        self.availability_pending = False
        self.set_damping(self.damping)
        self.n_iter = 0

    def release(self):
        """Free the messages on the blocks (the similarities stay for assign)."""
        self._call_all("release")

    def _gathered_shape(self):
        """Shape of ``R`` (and ``A``) gathered on the client."""
        return (self.n_samples, self.n_samples)

    def check_messages_fit(self):
        """Raise MemoryError when the gathered ``R`` and ``A`` would not fit
        in the client's available memory (before anything is gathered)."""
        check_gathered_messages_fit(self._gathered_shape(), self.dtype, self.n_samples)

    def messages(self):
        """``(R, A)`` completed to the last iteration, gathered: n x n on the
        client, filled block by block (refused first when they would not
        fit, :meth:`check_messages_fit`)."""
        self.check_messages_fit()
        self.complete_availability()
        R = np.empty(self._gathered_shape(), dtype=self.dtype)
        A = np.empty_like(R)
        start = 0
        for p in range(len(self.blocks)):
            R_part, A_part = self.blocks.call(p, "messages").result()
            stop = start + len(R_part)
            R[start:stop] = R_part
            A[start:stop] = A_part
            start = stop
        return R, A

    # ------------------------------------------------------------------
    # Clusters and objective.
    # ------------------------------------------------------------------

    def _nearest_exemplar(self, exemplars):
        return np.concatenate(self._call_all("nearest_exemplar", exemplars))

    def assign(self, is_exemplar=None):
        """``(cluster_centers_indices, labels)`` from exemplar flags (default:
        the current ones), as scikit-learn refines them
        (``_engine._assign_clusters`` by blocks: the within-cluster column
        sums travel block to block in row order)."""
        n = self.n_samples
        exemplars = np.flatnonzero(self.is_exemplar if is_exemplar is None else is_exemplar)
        if exemplars.size == 0:
            return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
        labels = self._nearest_exemplar(exemplars)
        column_sums = np.zeros(n, dtype=self.dtype)
        for p in range(len(self.blocks)):
            column_sums = self.blocks.call(
                p, "add_within_cluster_rows", labels, column_sums
            ).result()
        # First member with the largest within-cluster column sum (np.argmax).
        order = np.lexsort((np.arange(n), -column_sums, labels))
        first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
        exemplars = order[first_of_cluster]
        labels = exemplars[self._nearest_exemplar(exemplars)]
        cluster_centers_indices = np.unique(labels)
        return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)

    def net_similarity(self):
        """Frey & Dueck's net similarity of the current exemplars (float64,
        added in row order as the single machine adds it); NaN without any."""
        exemplars = np.flatnonzero(self.is_exemplar)
        if exemplars.size == 0:
            return float("nan")
        values = np.concatenate(
            self._call_all("best_exemplar_similarity", exemplars, self.is_exemplar)
        )
        return float(np.add.accumulate(values)[-1])  # strictly in order

    def _message_flags(self):
        """``A(k, k) + R(k, k) > 0`` (the exemplars the messages chose)."""
        return np.concatenate(self._call_all("message_flags"))

    def membership_confidence(self, cluster_centers_indices, labels):
        """The single machine's evidence margin (``DenseMessageState.
        membership_confidence``), each block computing its rows' from its
        messages: NaN throughout when the messages do not describe the
        clusters."""
        self.complete_availability()
        margin = np.full(self.n_samples, np.nan)
        centers = np.asarray(cluster_centers_indices, dtype=np.intp)
        message_exemplars = np.flatnonzero(self._message_flags())
        if centers.size == 0 or message_exemplars.size != centers.size:
            return margin
        nearest = self._nearest_exemplar(message_exemplars)
        assigned = message_exemplars[nearest[centers]][labels]
        futures = [
            self.blocks.call(p, "evidence_margin", message_exemplars, self._rows_of(assigned, p))
            for p in range(len(self.blocks))
        ]
        return np.concatenate(self.blocks.results(futures))


def check_gathered_messages_fit(shape, dtype, n_samples):
    """MemoryError, naming the size, when ``R`` and ``A`` of ``shape`` (n x n,
    or one value per stored pair) would not fit in the memory the client's
    machine has available (``keep_messages`` and ``warm_start`` gather them
    there)."""
    needed = 2 * int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(shape) == 1:  # the CSR pattern: a column index per pair, a pointer per row
        needed += 4 * shape[0] + 8 * (n_samples + 1)
    available = _resources.available_memory_bytes()
    if available is None or needed <= available:
        return
    what = (f"two {n_samples} x {n_samples} matrices" if len(shape) == 2
            else f"two arrays of {shape[0]} stored pairs")
    raise MemoryError(
        f"keep_messages=True (and warm_start=True) gathers the final messages (responsibility_ "
        f"and availability_: {what} in {np.dtype(dtype).name}, about {_size(needed)}) on the "
        f"client, but only {_size(available)} of memory is available there. Fit without them "
        "(the clusters need O(N) memory on the client), with float32 input, or from a client "
        "machine with more memory."
    )


def _size(n_bytes):
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


# --------------------------------------------------------------------------
# Set-up over blocks: the exact median, preferences and noise.
# --------------------------------------------------------------------------


def select_key_of_blocks(blocks, width, rank, window, excluded_keys=None):
    """Key of 0-based ``rank`` among all blocks' keys (or their windows'),
    leaving out one occurrence of each of ``excluded_keys``: the single
    machine's radix selection with digit histograms summed over the blocks."""

    def histogram(prefix, shift):
        futures = [
            blocks.call(p, "digit_histogram", prefix, shift, window) for p in range(len(blocks))
        ]
        return np.sum(blocks.results(futures), axis=0)

    return select_key(width, rank, histogram, excluded_keys)


def _middle_values(blocks, dtype, low_rank, window, n_before):
    """The values of ranks ``low_rank`` and ``low_rank + 1`` (ranks counted
    after ``n_before`` entries that lie below every key searched)."""
    width = dtype.itemsize * 8
    low_key = select_key_of_blocks(blocks, width, low_rank - n_before, window)
    futures = [
        blocks.call(p, "count_not_above_and_next", low_key, window) for p in range(len(blocks))
    ]
    counted = blocks.results(futures)
    not_above = n_before + sum(int(count) for count, _ in counted)
    next_key = min(int(key) for _, key in counted)
    low = key_to_value(low_key, dtype)
    high = low if not_above > low_rank + 1 else key_to_value(next_key, dtype)
    return low, high


# The bracket: the sample's quantiles 0.5 -+ 0.01 hold ~2% of the entries
# (as setup.median_of_matrix; ~5 standard errors of a 2**16 sample's median).
_MEDIAN_SAMPLE = 1 << 16
_MEDIAN_WINDOW = 0.01


def median_of_blocks(blocks, bounds, dtype, sizes=None):
    """Exactly ``np.median(S)`` of the n x n matrix the blocks hold, diagonal
    included (scikit-learn's default preference), without gathering it;
    with ``sizes`` (values per block), of the values the blocks present
    instead (a sparse graph's stored values, ``_sparse_state.py``).

    A sample of 2**16 entries (drawn on the blocks in proportion to their
    rows) brackets the median; one pass over every block counts the entries
    below the bracket and keeps those inside it on the block; radix
    selection over order-preserving keys then runs on the kept windows
    (16-bit digit histograms summed over the blocks, 4 rounds for float64,
    2 for float32). If the bracket misses, or a window would exceed 5% of
    its block, the selection runs over the whole blocks instead (5 passes).
    Only histograms, counts and the sample travel: O(2**16) values.
    """
    dtype = np.dtype(dtype)
    if sizes is None:
        sizes = np.diff(bounds) * int(bounds[-1])
    sizes = [int(size) for size in sizes]
    size = sum(sizes)
    low_rank = (size - 1) // 2
    high_rank = size // 2
    window = False
    n_before = 0
    if size > 4 * _MEDIAN_SAMPLE:
        shares = [max(1, _MEDIAN_SAMPLE * part // size) if part else 0 for part in sizes]
        futures = [blocks.call(p, "median_sample", shares[p], 0) for p in range(len(blocks))]
        sample = np.sort(np.concatenate(blocks.results(futures)))
        low = sample[int((0.5 - _MEDIAN_WINDOW) * sample.size)]
        high = sample[int((0.5 + _MEDIAN_WINDOW) * sample.size)]
        futures = [blocks.call(p, "gather_window", low, high) for p in range(len(blocks))]
        gathered = blocks.results(futures)
        n_below = sum(below for below, _ in gathered)
        kept = all(inside is not None for _, inside in gathered)
        n_inside = sum(inside for _, inside in gathered) if kept else 0
        if kept and n_below <= low_rank and high_rank < n_below + n_inside:
            window, n_before = True, n_below
    try:
        low, high = _middle_values(blocks, dtype, low_rank, window, n_before)
    finally:
        if window:
            blocks.results([blocks.call(p, "drop_window") for p in range(len(blocks))])
    if size % 2 == 1:
        return dtype.type(low)
    return middle_mean(low, high, dtype)


def off_diagonal_quantile_of_blocks(blocks, bounds, dtype, q):
    """``np.quantile(S[off-diagonal], q)`` (linear method) of the matrix the
    blocks hold, exactly, as ``setup.off_diagonal_quantile`` on one machine
    (``preference_quantile``): the two neighbouring order statistics by
    radix selection over the blocks with the diagonal's keys taken out of
    every histogram (the diagonal, n values, is gathered), then NumPy's own
    interpolation between them."""
    dtype = np.dtype(dtype)
    n = int(bounds[-1])
    n_off = n * n - n
    virtual_index = (n_off - 1) * q
    lower = min(int(np.floor(virtual_index)), n_off - 1)
    upper = min(lower + 1, n_off - 1)
    diagonal = np.concatenate(blocks.results(
        [blocks.call(p, "diagonal") for p in range(len(blocks))]
    ))
    diagonal_keys = order_key(bits_view(np.ascontiguousarray(diagonal, dtype=dtype)))
    width = dtype.itemsize * 8
    low, high = (
        key_to_value(select_key_of_blocks(blocks, width, rank, False, diagonal_keys), dtype)
        for rank in (lower, upper)
    )
    return dtype.type(np.quantile(np.array([low, high], dtype=dtype), virtual_index - lower))


def tie_of_blocks(blocks, dtype, value, n_values, diagonal=None):
    """``_preference.QuantileTie`` of ``value`` among the values the blocks
    present (their rows of ``S``, or a graph's selected values), the
    ``diagonal`` values (gathered) taken out: one counting pass."""
    futures = [blocks.call(p, "count_below_and_equal", value) for p in range(len(blocks))]
    counted = blocks.results(futures)
    below = sum(int(count) for count, _ in counted)
    equal = sum(int(count) for _, count in counted)
    if diagonal is not None:
        below -= int(np.count_nonzero(diagonal < value))
        equal -= int(np.count_nonzero(diagonal == value))
    return QuantileTie(below, equal, n_values)


def off_diagonal_tie_of_blocks(blocks, bounds, dtype, value):
    """:func:`tie_of_blocks` over the off-diagonal entries of the blocks' ``S``."""
    n = int(bounds[-1])
    diagonal = np.concatenate(blocks.results(
        [blocks.call(p, "diagonal") for p in range(len(blocks))]
    ))
    return tie_of_blocks(blocks, dtype, value, n * n - n, diagonal)


def place_preference(blocks, bounds, preference, dtype):
    """Preferences on the diagonal of every block (the noise comes with
    ``BlockMessageState.prepare``)."""
    n_samples = int(bounds[-1])
    preference = np.broadcast_to(np.asarray(preference, dtype=dtype), (n_samples,))
    futures = [
        blocks.call(p, "place_preference", preference[bounds[p]:bounds[p + 1]])
        for p in range(len(blocks))
    ]
    blocks.results(futures)
