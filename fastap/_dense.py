"""The dense engine: three N x N matrices and the fused message pass.

:class:`DenseMessageState` implements the run's message-state protocol
(``_run.MessageState``) over ``S``, ``R`` and ``A`` in the input's dtype:
it owns every buffer (allocated once per fit), chooses the serial or
parallel kernel, and keeps scikit-learn's arithmetic so that float64 runs
are bitwise scikit-learn's. The updates themselves are in
``_kernels/messages.py``.
"""

import glob
import threading

import numpy as np

from fastap._damping import DampingPairs
from fastap._kernels import assign, legacy_normal, messages, setup
from fastap._preference import preference_range_of_similarities

# Below these sizes one thread beats two (per-iteration times, 2-core VM,
# serial / parallel: float64 N=400 244/311 us, N=600 477/443 us; float32
# N=100 31/36 us, N=200 99/71 us). The parallel float64 pass pays for its
# ordered column sums (a second parallel region per block of rows).
PARALLEL_MIN_SAMPLES = {np.dtype(np.float64): 500, np.dtype(np.float32): 150}

# Bytes of R per block of rows in the ordered parallel pass: the block must
# still be in cache when its column sums are added (step 4); 1-2 MiB measured
# best at N=4000 and 8000 (float64, 1.72x the bandwidth floor; 256 KiB: 1.88x).
BLOCK_BYTES = 1024 * 1024

# Rows of degeneracy noise drawn at a time (about 8 MiB of float64).
_NOISE_BLOCK_ELEMENTS = 1 << 20


def _block_rows(n_samples, itemsize, n_threads):
    rows = BLOCK_BYTES // (n_samples * itemsize)
    return int(max(2 * n_threads, min(rows, 256)))


def group_rows_of(n_samples):
    """Rows per group of the grouped column sums: a function of the problem
    only (never of the thread count), so results do not depend on threads.
    Larger groups mean fewer group sums to add (64 rows measured best at
    N = 4000 and 8000)."""
    return int(max(1, min(64, n_samples // 8)))


def memory_nodes():
    """Memory (NUMA) nodes of this machine as Linux lists them; 1 elsewhere."""
    return max(1, len(glob.glob("/sys/devices/system/node/node[0-9]*")))


class MessageMatrices:
    """R and A, allocated before the set-up, their pages mapped meanwhile.

    The set-up (similarity, median) leaves a core idle part of the time; a
    helper thread uses it to make the OS map the message matrices' pages
    (slow on virtual machines: ~2.5 s per GiB at first touch, measured here),
    which the first iteration would otherwise wait for.

    On a machine with several memory nodes a page lands on the node of the
    thread that first writes it: there the matrices are left unmapped and
    :meth:`DenseMessageState.prepare` zeroes each row from the thread whose
    share of the pass it is (``messages.zero_rows_as_pass``), so that the
    iterations read local memory. Both ways give zero matrices.
    """

    def __init__(self, n_samples, dtype, n_threads=1):
        self.first_touch_by_rows = n_threads > 1 and memory_nodes() > 1
        allocate = np.empty if self.first_touch_by_rows else np.zeros
        self.R = allocate((n_samples, n_samples), dtype=dtype)
        self.A = allocate((n_samples, n_samples), dtype=dtype)
        self._toucher = None
        if not self.first_touch_by_rows:
            self._toucher = threading.Thread(target=self._touch, daemon=True)
            self._toucher.start()

    def _touch(self):
        setup.touch_pages(self.R)
        setup.touch_pages(self.A)

    def ready(self):
        """Wait for the helper thread; hand over ``(R, A)`` (kept no longer here,
        so that they are freed with the state that uses them). Unless
        :attr:`first_touch_by_rows`, they are zero."""
        if self._toucher is not None:
            self._toucher.join()
        R, A = self.R, self.A
        self.R = self.A = None
        return R, A


def add_degeneracy_noise(S, random_state):
    """scikit-learn's ``S += (eps * S + tiny * 100) * N(0, 1)``, drawn by row
    blocks from the same RandomState (the same stream as one N x N draw).
    Returns the normals drawn for the diagonal.

    A ``RandomState`` is drawn from by ``legacy_normal`` (NumPy's values,
    bitwise, in parallel; on two quiet cores at N = 8,000 as fast as NumPy's
    serial draw, 0.49 against 0.50 s, on one busy core 1.7x faster); any
    other stream (the counter noise's) by its own ``standard_normal``.
    """
    n = S.shape[0]
    info = np.finfo(S.dtype)
    rows_per_block = max(1, _NOISE_BLOCK_ELEMENTS // n)
    diagonal_normals = np.empty(n, dtype=np.float64)
    buffer = np.empty(min(rows_per_block, n) * n, dtype=np.float64)
    for start in range(0, n, rows_per_block):
        stop = min(start + rows_per_block, n)
        noise = buffer[: (stop - start) * n].reshape(stop - start, n)
        if isinstance(random_state, np.random.RandomState):
            legacy_normal.fill_standard_normal(random_state, noise)
        else:
            noise[:] = random_state.standard_normal(size=(stop - start, n))
        rows = np.arange(stop - start)
        diagonal_normals[start:stop] = noise[rows, start + rows]
        legacy_normal.add_degeneracy_noise_parallel(
            S[start:stop].reshape(-1), noise.reshape(-1), info.eps, info.tiny * 100
        )
    return diagonal_normals


def assign_clusters(S, is_exemplar):
    """Exemplar flags -> ``(cluster_centers_indices, labels)``, as scikit-learn:
    nearest exemplar, then each cluster's member with the largest
    within-cluster column sum (the first such) becomes its exemplar, and
    the samples are assigned again."""
    n = S.shape[0]
    exemplars = np.flatnonzero(is_exemplar)
    if exemplars.size == 0:
        return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
    labels = np.empty(n, dtype=np.intp)
    column_sums = np.empty(n, dtype=S.dtype)
    assign.nearest_exemplar(S, exemplars, labels)
    assign.within_cluster_column_sums(S, labels, column_sums)
    order = np.lexsort((np.arange(n), -column_sums, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = order[first_of_cluster]
    assign.nearest_exemplar(S, exemplars, labels)
    labels = exemplars[labels]
    cluster_centers_indices = np.unique(labels)
    return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)


class ObjectiveTracker:
    """Net similarity of a changing exemplar set over a dense ``S``.

    Frey & Dueck's objective: every sample's similarity to its most similar
    exemplar, exemplars counting their preference. Each sample's best
    similarity is kept up to date as exemplars come and go (see
    ``assign.update_best_exemplar_similarity``) instead of regathered.
    """

    def __init__(self, n_samples):
        self._best_value = np.empty(n_samples, dtype=np.float64)
        self._best_index = np.full(n_samples, -1, dtype=np.intp)
        self._was_exemplar = np.zeros(n_samples, dtype=bool)
        # The best values are not those of the current exemplars and S (at
        # the start, after a call with no exemplar, after S changed).
        self._recompute = True

    def invalidate(self):
        """``S`` changed: search every row in full at the next call."""
        self._recompute = True

    def net_similarity(self, S, is_exemplar):
        n_exemplars = int(is_exemplar.sum())
        if n_exemplars == 0:
            self._recompute = True
            self._was_exemplar[:] = is_exemplar
            return np.nan
        removed = self._was_exemplar & ~is_exemplar
        added = np.flatnonzero(is_exemplar & ~self._was_exemplar)
        # Reading many added columns row by row costs more than one search
        # over the set.
        full = self._recompute or 2 * added.size > n_exemplars
        assign.update_best_exemplar_similarity(
            S, np.flatnonzero(is_exemplar), removed, added, self._best_value, self._best_index,
            full,
        )
        self._recompute = False
        self._was_exemplar[:] = is_exemplar
        return assign.net_similarity(S, is_exemplar, self._best_value)


class DenseMessageState(DampingPairs):
    """Dense Affinity Propagation: ``S``, ``R``, ``A`` and one fused pass.

    Implements ``_run.MessageState``.

    Parameters
    ----------
    S : ndarray (n, n), C order, float32 or float64
        Finite similarities, overwritten as scikit-learn overwrites its
        ``affinity_matrix_``: preferences on the diagonal plus noise.
    preference : ndarray, 0-d or (n,), dtype of ``S``
        Finite preferences.
    damping : float
        Damping of the first iteration.
    random_state : numpy.random.RandomState
        The degeneracy noise's stream.
    n_threads : int
        Threads the caller has given Numba; the parallel kernel runs when
        there are several and ``n >= PARALLEL_MIN_SAMPLES[dtype]``.
    matrices : MessageMatrices or None
        Zero message matrices allocated ahead (None: allocated here).
    warm_messages : tuple (R, A) or None
        Messages to continue from (a warm start), updated in place: ``A``
        complete, as :meth:`messages` leaves it. Exclusive with ``matrices``.
    preference_offset : ndarray (n,) or None
        Added to every preference that :meth:`set_preference` puts on the
        diagonal (a merge level searches one scalar for clusters whose
        diagonal also holds their members' similarities).
    prepared : bool
        ``S`` already holds its preferences and noise (:meth:`prepare` only
        makes the messages ready; tests and benchmarks iterate on a matrix
        prepared elsewhere). No :meth:`set_preference` then.
    grouped_sums : bool
        float64: add the column sums by fixed groups of rows (see
        messages.py) rather than row by row, scikit-learn's order, which its
        bitwise parity needs. With the counter noise there is no
        scikit-learn result to match, and the distributed engine, whose
        blocks sum their own groups in their row pass, must agree with this
        one: the estimator asks for groups. float32 always adds by groups.

    Attributes
    ----------
    R, A : ndarray (n, n), dtype of ``S``
        Responsibilities and availabilities (``A`` complete on its diagonal
        only, until :meth:`complete_availability`).
    is_exemplar : ndarray (n,), bool
        ``A(k, k) + R(k, k) > 0`` after the last iteration.
    """

    def __init__(self, S, preference=None, *, damping, random_state=None, n_threads=1,
                 matrices=None,
                 warm_messages=None, preference_offset=None, prepared=False,
                 grouped_sums=False):
        self.S = S
        self.n_samples = S.shape[0]
        self.dtype = S.dtype
        self.preference = np.diagonal(S).copy() if preference is None else preference
        self.preference_offset = preference_offset
        self._prepared = prepared
        self.grouped = S.dtype == np.float32 or bool(grouped_sums)
        # The scalar the last set_preference put on the diagonal (a warm
        # step shifts the messages by its change).
        self._scalar_preference = self.preference if np.ndim(self.preference) == 0 else None
        self.random_state = random_state
        self.n_threads = n_threads
        self._matrices = matrices
        self._warm_messages = warm_messages
        self.R = self.A = None
        self.is_exemplar = np.zeros(self.n_samples, dtype=bool)
        # The last iteration's off-diagonal availabilities are finished at
        # the start of the next pass (see messages.py), with the damping
        # that iteration ran with (last_damping); False while A is complete
        # (zero at the start, or after complete_availability).
        self.availability_pending = False
        self.set_damping(damping)
        self._objective = ObjectiveTracker(self.n_samples)

    # -- set-up -------------------------------------------------------------

    def equal_similarities(self):
        n = self.n_samples
        if n == 1:
            return False
        preference = self.preference
        if np.all(preference == preference.flat[0]) and setup.off_diagonal_all_equal(self.S):
            return bool(preference.flat[0] > self.S.flat[n - 1])
        return None

    def preference_range(self):
        low, high = preference_range_of_similarities(self.S)
        if self.preference_offset is None:
            return low, high
        offset = self.preference_offset
        return low - float(offset.max()), high - float(offset.min())

    def similarity_quantile(self, q):
        return setup.off_diagonal_quantile(self.S, q, max(2, self.n_threads))

    def prepare(self):
        S = self.S
        n = self.n_samples
        self._prepare_similarities()
        first_touch_by_rows = False
        if self._warm_messages is not None:
            self.R, self.A = self._warm_messages
        else:
            matrices = self._matrices or MessageMatrices(n, S.dtype, self.n_threads)
            first_touch_by_rows = matrices.first_touch_by_rows
            self.R, self.A = matrices.ready()
        self._matrices = self._warm_messages = None
        # Flags as the messages stand, so that a warm start counts changes
        # against the previous fit's exemplars (matrices still to be zeroed
        # by rows hold no messages yet).
        if first_touch_by_rows:
            self.is_exemplar = np.zeros(n, dtype=bool)
        else:
            self.is_exemplar = np.diagonal(self.A) + np.diagonal(self.R) > 0
        self.col_sum = np.zeros(n, dtype=S.dtype)
        self.col_sum_acc = np.zeros(n, dtype=np.float64)
        self.parallel = self.n_threads > 1 and n >= PARALLEL_MIN_SAMPLES[S.dtype]
        n_tasks = self.n_threads if self.parallel else 1
        self.row_values = np.empty((n_tasks, n), dtype=S.dtype)
        self.chunk_top = np.empty((n_tasks, messages.search_chunks(n)), dtype=np.int64)
        self.block_rows = _block_rows(n, S.dtype.itemsize, n_tasks)
        if self.grouped:
            self.group_rows = group_rows_of(n)
            self.group_sums = np.empty((-(-n // self.group_rows), n), dtype=np.float64)
        if first_touch_by_rows:
            self._zero_messages_by_rows()

    def _zero_messages_by_rows(self):
        """Zero R and A, each row from the thread whose share of the pass it is."""
        n_tasks = self.row_values.shape[0]
        rows_per_unit = self.group_rows if self.grouped else self.block_rows
        for M in (self.R, self.A):
            messages.zero_rows_as_pass(M, n_tasks, rows_per_unit, self.grouped)

    def _prepare_similarities(self):
        """Preferences on the diagonal, then the degeneracy noise (unless
        ``S`` came prepared)."""
        if not self._prepared:
            self.S.flat[:: self.n_samples + 1] = self.preference
            self.diagonal_normals = add_degeneracy_noise(self.S, self.random_state)

    # -- iterations ---------------------------------------------------------

    def iterate(self):
        common = (self.S, self.A, self.R, self.col_sum)
        pairs = (*self.damping_pair, *self.last_damping_pair)
        finish_previous = self.availability_pending
        if self.grouped:
            kernel = (
                messages.update_messages_grouped_parallel
                if self.parallel else messages.update_messages_grouped_serial
            )
            kernel(*common, self.group_sums, *pairs, finish_previous, self.row_values,
                   self.chunk_top, self.group_rows)
            messages.add_group_sums(self.group_sums, self.col_sum_acc)
        elif self.parallel:
            messages.update_messages_parallel(
                *common, self.col_sum_acc, *pairs, finish_previous, self.row_values,
                self.chunk_top, self.block_rows,
            )
        else:
            messages.update_messages_serial(
                *common, self.col_sum_acc, *pairs, finish_previous, self.row_values,
                self.chunk_top,
            )
        self.availability_pending = True
        self.keep_damping_as_last()
        return messages.finish_iteration(
            self.A, self.R, self.col_sum, self.col_sum_acc, *self.damping_pair, self.is_exemplar,
        )

    def complete_availability(self):
        if self.availability_pending:
            messages.complete_availability(
                self.A, self.R, self.col_sum, *self.last_damping_pair
            )
            self.availability_pending = False

    def set_preference(self, preference, *, shift_messages):
        """See ``_run.MessageState``; the off-diagonal noise does not depend
        on the preference, the diagonal's is redrawn from the same normals.
        The shift (``messages.shift_preference``) also completes ``A``."""
        dtype = self.S.dtype.type
        S = self.S
        diagonal = preference if self.preference_offset is None else (
            preference + self.preference_offset
        )
        S.flat[:: self.n_samples + 1] = diagonal
        info = np.finfo(S.dtype)
        setup.add_diagonal_noise(S, self.diagonal_normals, info.eps, info.tiny * 100)
        self._objective.invalidate()
        if shift_messages:
            delta = dtype(preference) - dtype(self._scalar_preference)
            messages.shift_preference(
                self.A, self.R, self.col_sum, delta, self.availability_pending,
                *self.last_damping_pair,
            )
            self.availability_pending = False
        self._scalar_preference = preference
        self.preference = np.asarray(diagonal, dtype=S.dtype)

    def reset(self):
        self.R.fill(0)
        self.A.fill(0)
        self.availability_pending = False
        self.is_exemplar[:] = False
        self.keep_damping_as_last()

    # -- results ------------------------------------------------------------

    def net_similarity(self):
        return self._objective.net_similarity(self.S, self.is_exemplar)

    def assign(self, is_exemplar):
        return assign_clusters(self.S, is_exemplar)

    def messages(self):
        self.complete_availability()
        return self.R, self.A

    def membership_confidence(self, cluster_centers_indices, labels):
        """Evidence margin ``E(i, own) - max_other E(i, e)``, ``E = A + R``,
        over the exemplars the messages chose (the flags), which
        scikit-learn's refinement may then move to another member of the
        same cluster: each cluster is traced back to its message exemplar
        (the one its center was nearest to). NaN throughout when the
        messages do not describe the clusters."""
        R, A = self.messages()
        margin = np.full(self.n_samples, np.nan)
        centers = np.asarray(cluster_centers_indices, dtype=np.intp)
        message_exemplars = np.flatnonzero(np.diagonal(A) + np.diagonal(R) > 0)
        if centers.size == 0 or message_exemplars.size != centers.size:
            return margin
        nearest = np.empty(self.n_samples, dtype=np.intp)
        assign.nearest_exemplar(self.S, message_exemplars, nearest)
        message_exemplar_of_cluster = message_exemplars[nearest[centers]]
        assign.evidence_margin(
            A, R, message_exemplars, message_exemplar_of_cluster[labels], margin
        )
        return margin

    def release(self):
        self.R = self.A = None
        self.row_values = self.chunk_top = self.group_sums = None
