"""The driver: allocation, set-up, the iteration loop, convergence, dispatch.

The estimator (``_estimator.py``) validates and follows scikit-learn's
conventions; the kernels (``_kernels/``) loop over matrix elements. This
module sits between them: it owns every buffer (allocated once per fit),
chooses serial or parallel kernels, runs the iterations from Python (so
Ctrl-C interrupts a fit within one iteration) and keeps scikit-learn's
convergence bookkeeping.
"""

import contextlib
import os
import sys
import threading
import time
import warnings
from typing import NamedTuple

import numba
import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning

from fastap._kernels import assign, messages, setup

# Below these sizes one thread beats two (per-iteration times, 2-core VM,
# serial / parallel: float64 N=400 244/311 us, N=600 477/443 us; float32
# N=100 31/36 us, N=200 99/71 us). The parallel float64 pass pays for its
# ordered column sums (a second parallel region per block of rows).
PARALLEL_MIN_SAMPLES = {np.dtype(np.float64): 500, np.dtype(np.float32): 150}

# Bytes of R per block of rows in the ordered parallel pass: the block must
# still be in cache when its column sums are added (step 4); 1-2 MiB measured
# best at N=4000 and 8000 (float64, 1.72x the bandwidth floor; 256 KiB: 1.88x).
_BLOCK_BYTES = 1024 * 1024

# Rows of degeneracy noise drawn at a time (about 8 MiB of float64).
_NOISE_BLOCK_ELEMENTS = 1 << 20
# Rows of a float64 Gram block for float32 similarities (64 MiB): smaller
# blocks make many short parallel calls right after each BLAS product, whose
# threads still spin, and the two pools fight over the cores (measured at
# N = 20,000, 8 features: 4.3 s with 8 MiB blocks, 0.8 s with 64 MiB).
_SIMILARITY_BLOCK_ELEMENTS = 1 << 23


class FitResult(NamedTuple):
    """What one run of Affinity Propagation returns."""

    cluster_centers_indices: np.ndarray
    labels: np.ndarray
    n_iter: int
    converged: bool
    history: dict | None = None
    final_damping: float | None = None


class IterationInfo(NamedTuple):
    """What a fit's ``callback`` receives after an iteration.

    Attributes
    ----------
    iteration : int
        Iterations run so far in this fit (1 after the first).
    n_exemplars : int
        Samples currently flagged as exemplars.
    n_changed : int
        Samples whose exemplar flag changed in this iteration.
    damping : float
        Damping used in this iteration.
    elapsed : float
        Seconds since the iterations started.
    """

    iteration: int
    n_exemplars: int
    n_changed: int
    damping: float
    elapsed: float


# --------------------------------------------------------------------------
# Threads and memory.
# --------------------------------------------------------------------------


def resolve_n_threads(n_jobs):
    """Number of Numba threads for ``n_jobs`` (joblib's conventions).

    ``None`` keeps Numba's current setting (all cores unless changed with
    ``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``); ``-1`` means all
    cores, ``-2`` all but one, and so on; positive values are capped at the
    number of cores Numba was started with.
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return numba.get_num_threads()
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return max(1, min(n_jobs, available))


@contextlib.contextmanager
def numba_threads(n_threads):
    """Run the body with ``n_threads`` Numba threads, then restore the old count."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def available_memory_bytes():
    """Memory the OS can give this process now, or None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fit_memory_bytes(n_samples, dtype, n_new_matrices):
    """Bytes a fit allocates: ``n_new_matrices`` N x N matrices plus O(N)."""
    itemsize = np.dtype(dtype).itemsize
    return n_new_matrices * n_samples * n_samples * itemsize + 64 * n_samples * itemsize


def check_memory(n_samples, dtype, n_new_matrices):
    """Raise MemoryError, before allocating, when a fit clearly cannot fit."""
    needed = fit_memory_bytes(n_samples, dtype, n_new_matrices)
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    dtype = np.dtype(dtype)
    hint = ""
    if dtype == np.float64:
        half = fit_memory_bytes(n_samples, np.float32, n_new_matrices)
        hint = f" float32 input would need {half / 2**30:.1f} GiB."
    raise MemoryError(
        f"Affinity propagation on {n_samples} samples in {dtype.name} needs about "
        f"{needed / 2**30:.1f} GiB ({n_new_matrices} matrices of {n_samples} x {n_samples}), "
        f"but only {available / 2**30:.1f} GiB of memory is available.{hint}"
    )


# --------------------------------------------------------------------------
# Set-up.
# --------------------------------------------------------------------------


def negative_squared_euclidean(X, out_dtype):
    """``-euclidean_distances(X, squared=True)`` with one N x N allocation.

    Dense input: the Gram matrix ``X @ X.T`` is computed in float64 (as
    scikit-learn does, upcasting float32 input) and finished in place: for
    float64 in the result buffer itself (bitwise equal to scikit-learn), for
    float32 by blocks of rows into the float32 result. Sparse input goes
    through scikit-learn's own function, negated in place.
    """
    from sklearn.metrics import euclidean_distances
    from sklearn.utils.extmath import row_norms

    if sparse.issparse(X):
        S = np.ascontiguousarray(euclidean_distances(X, squared=True), dtype=out_dtype)
        setup.negate_in_place(S)
        return S
    X = np.asarray(X, dtype=np.float64)
    n_samples = X.shape[0]
    squared_norms = row_norms(X, squared=True)
    S = np.empty((n_samples, n_samples), dtype=out_dtype)
    if out_dtype == np.float64:
        # The very product scikit-learn computes (BLAS picks its kernels by
        # shape, so a blocked product can differ in the last bit).
        np.matmul(X, X.T, out=S)
        setup.negative_squared_distances_from_gram(S, squared_norms, 0, S)
        return S
    rows = max(1, _SIMILARITY_BLOCK_ELEMENTS // n_samples)
    gram_rows = np.empty((min(rows, n_samples), n_samples), dtype=np.float64)
    for start in range(0, n_samples, rows):
        stop = min(start + rows, n_samples)
        block = gram_rows[: stop - start]
        np.matmul(X[start:stop], X.T, out=block)
        setup.negative_squared_distances_from_gram(block, squared_norms, start, S[start:stop])
    return S


def cosine_similarities(X, out_dtype):
    """Cosine similarities of the rows of ``X`` with one N x N allocation.

    Rows are scaled to unit length in float64 (zero rows stay zero, as in
    scikit-learn's ``cosine_similarity``) and multiplied by blocks of rows
    into the result.
    """
    from sklearn.metrics.pairwise import cosine_similarity
    from sklearn.preprocessing import normalize

    if sparse.issparse(X):
        return np.ascontiguousarray(cosine_similarity(X), dtype=out_dtype)
    unit = normalize(np.asarray(X, dtype=np.float64), copy=True)
    n_samples = unit.shape[0]
    S = np.empty((n_samples, n_samples), dtype=out_dtype)
    if out_dtype == np.float64:
        np.matmul(unit, unit.T, out=S)
        return S
    rows = max(1, _SIMILARITY_BLOCK_ELEMENTS // n_samples)
    for start in range(0, n_samples, rows):
        stop = min(start + rows, n_samples)
        S[start:stop] = unit[start:stop] @ unit.T
    return S


def _has_equal_similarities_and_preferences(S, preference):
    return bool(np.all(preference == preference.flat[0])) and setup.off_diagonal_all_equal(S)


def _add_degeneracy_noise(S, random_state):
    """scikit-learn's ``S += (eps * S + tiny * 100) * N(0, 1)``, drawn by row
    blocks from the same RandomState (the same stream as one N x N draw).
    Returns the normals drawn for the diagonal."""
    n = S.shape[0]
    info = np.finfo(S.dtype)
    epsilon = info.eps
    tiny_times_100 = info.tiny * 100
    rows_per_block = max(1, _NOISE_BLOCK_ELEMENTS // n)
    diagonal_normals = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows_per_block):
        stop = min(start + rows_per_block, n)
        noise = random_state.standard_normal(size=(stop - start, n))
        rows = np.arange(stop - start)
        diagonal_normals[start:stop] = noise[rows, start + rows]
        setup.add_degeneracy_noise(S[start:stop], noise, epsilon, tiny_times_100)
    return diagonal_normals


def _block_rows(n_samples, itemsize, n_threads):
    rows = _BLOCK_BYTES // (n_samples * itemsize)
    return int(max(2 * n_threads, min(rows, 256)))


def _group_rows(n_samples):
    """Rows per group of the grouped column sums: a function of the problem
    only (never of the thread count), so results do not depend on threads.
    Larger groups mean fewer group sums to add (64 rows measured best at
    N = 4000 and 8000)."""
    return int(max(1, min(64, n_samples // 8)))


class MessageMatrices:
    """R and A, allocated before the set-up, their pages mapped meanwhile.

    The set-up (similarity, median, the serial noise draw) leaves a core
    idle much of the time; a helper thread uses it to make the OS map the
    message matrices' pages (slow on virtual machines: ~2.5 s per GiB at
    first touch, measured here), which the first iteration would otherwise
    wait for.
    """

    def __init__(self, n_samples, dtype):
        self.R = np.zeros((n_samples, n_samples), dtype=dtype)
        self.A = np.zeros((n_samples, n_samples), dtype=dtype)
        self._toucher = threading.Thread(target=self._touch, daemon=True)
        self._toucher.start()

    def _touch(self):
        setup.touch_pages(self.R)
        setup.touch_pages(self.A)

    def ready(self):
        """Wait for the helper thread; hand over ``(R, A)`` (kept no longer here,
        so that they are freed with the state that uses them)."""
        self._toucher.join()
        R, A = self.R, self.A
        self.R = self.A = None
        return R, A


class MessageState:
    """The buffers of one run of the loop, allocated once, and one iteration.

    Parameters
    ----------
    S : ndarray (n, n), C order, float32 or float64
        Similarities with preferences and noise, read only from here on.
    damping : float
    n_threads : int
        Threads the caller has given Numba; the parallel kernel runs when
        there are several and ``n >= PARALLEL_MIN_SAMPLES[dtype]``.
    matrices : MessageMatrices or None
        Zero message matrices allocated ahead (None: allocated here).
    warm_messages : tuple (R, A) or None
        Messages to continue from (a warm start), updated in place: ``A``
        complete, as :meth:`complete_availability` leaves it. Exclusive with
        ``matrices``.

    Attributes
    ----------
    R, A : ndarray (n, n), dtype of ``S``
        Responsibilities and availabilities (``A`` complete on its diagonal
        only, until :meth:`complete_availability`).
    is_exemplar : ndarray (n,), bool
        ``A(k, k) + R(k, k) > 0`` after the last iteration.
    """

    def __init__(self, S, damping, n_threads, matrices=None, warm_messages=None):
        n = S.shape[0]
        self.S = S
        if warm_messages is not None:
            self.R, self.A = warm_messages
        else:
            if matrices is None:
                matrices = MessageMatrices(n, S.dtype)
            self.R, self.A = matrices.ready()
        self.col_sum = np.zeros(n, dtype=S.dtype)
        self.col_sum_acc = np.zeros(n, dtype=np.float64)
        # Flags as the messages stand, so that a warm start counts changes
        # against the previous fit's exemplars.
        self.is_exemplar = np.diagonal(self.A) + np.diagonal(self.R) > 0
        self.parallel = n_threads > 1 and n >= PARALLEL_MIN_SAMPLES[S.dtype]
        n_tasks = n_threads if self.parallel else 1
        self.row_values = np.empty((n_tasks, n), dtype=S.dtype)
        self.chunk_top = np.empty((n_tasks, messages.search_chunks(n)), dtype=np.int64)
        self.block_rows = _block_rows(n, S.dtype.itemsize, n_tasks)
        # float64 follows scikit-learn's order of the column sums; float32
        # adds them by fixed groups of rows (see messages.py).
        self.grouped = S.dtype == np.float32
        if self.grouped:
            self.group_rows = _group_rows(n)
            self.group_sums = np.empty((-(-n // self.group_rows), n), dtype=np.float64)
        # The last iteration's off-diagonal availabilities are finished at
        # the start of the next pass (see messages.py), with the damping that
        # iteration ran with (last_damping); False while A is complete (zero
        # at the start, or after complete_availability).
        self.availability_pending = False
        self.set_damping(damping)
        self.n_iter = 0

    def set_damping(self, damping):
        """Use ``damping`` from the next iteration on."""
        dtype = self.S.dtype.type
        self.damping_value = float(damping)
        self.damping = dtype(damping)
        self.one_minus_damping = dtype(1 - damping)  # as scikit-learn: 1 - d in float64 first
        if not self.availability_pending:
            self.last_damping, self.last_one_minus_damping = self.damping, self.one_minus_damping

    def iterate(self):
        """Run one iteration; return ``(n_exemplars, n_changed)``."""
        common = (self.S, self.A, self.R, self.col_sum)
        pairs = (self.damping, self.one_minus_damping, self.last_damping,
                 self.last_one_minus_damping)
        finish_previous = self.availability_pending
        if self.grouped:
            kernel = (
                messages.update_messages_grouped_parallel
                if self.parallel else messages.update_messages_grouped_serial
            )
            kernel(
                *common, self.group_sums, *pairs, finish_previous, self.row_values,
                self.chunk_top, self.group_rows,
            )
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
        self.n_iter += 1
        self.availability_pending = True
        self.last_damping, self.last_one_minus_damping = self.damping, self.one_minus_damping
        return messages.finish_iteration(
            self.A, self.R, self.col_sum, self.col_sum_acc, self.damping, self.one_minus_damping,
            self.is_exemplar,
        )

    def complete_availability(self):
        """Bring ``A`` off the diagonal to the end of the last iteration."""
        if self.availability_pending:
            messages.complete_availability(
                self.A, self.R, self.col_sum, self.last_damping, self.last_one_minus_damping
            )
            self.availability_pending = False

    def shift_preference(self, delta):
        """Carry the messages over to a preference ``delta`` higher: complete
        ``A`` and shift what the new diagonal of ``S`` moves, in one pass
        (see ``messages.shift_preference``)."""
        messages.shift_preference(
            self.A, self.R, self.col_sum, self.S.dtype.type(delta), self.availability_pending,
            self.last_damping, self.last_one_minus_damping,
        )
        self.availability_pending = False


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


class _Progress:
    """Prints iteration, exemplars and changes at most every ``interval`` s."""

    def __init__(self, enabled, n_samples, interval=1.0):
        self.enabled = enabled
        self.interval = interval
        self.started = time.perf_counter()
        self.last = self.started
        if enabled:
            print(f"[fastap] affinity propagation on {n_samples} samples", file=sys.stdout)

    def update(self, iteration, n_exemplars, n_changed):
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            print(
                f"[fastap] iteration {iteration + 1}: {n_exemplars} exemplars, "
                f"{n_changed} changed, {now - self.started:.1f} s",
                file=sys.stdout,
            )


class AdaptiveDamping:
    """Raise the damping while the exemplar set keeps flipping.

    After Wang et al. (2007): oscillations are what keeps AP from
    converging, and more damping removes them at the cost of slower
    progress. Every ``window`` iterations the run is inspected; if the
    exemplar set changed in at least ``oscillation_fraction`` of them and
    still changes (within the last quarter of the window), the damping goes
    up by ``step``, at most to ``maximum``. The first inspection comes after
    two windows: the early transient of a run that then settles is not an
    oscillation.

    Parameters
    ----------
    initial : float
        Damping of the first iteration.
    window : int
        Iterations between two inspections.
    step, maximum, oscillation_fraction : float
    """

    def __init__(self, initial=0.5, window=30, step=0.05, maximum=0.95, oscillation_fraction=0.5):
        self.initial = float(initial)
        self.window = int(window)
        self.step = step
        self.maximum = maximum
        self.oscillation_fraction = oscillation_fraction
        self.reset()

    def reset(self):
        """Back to the initial damping, as for a fresh run."""
        self.damping = self.initial
        self._seen = -self.window  # a first window of warm-up, not counted
        self._changed = 0
        self._since_change = 0

    def observe(self, n_changed):
        """Record one iteration; return the new damping if it was raised, else None."""
        self._seen += 1
        self._changed += n_changed > 0 and self._seen > 0
        self._since_change = 0 if n_changed > 0 else self._since_change + 1
        if self._seen < self.window:
            return None
        oscillating = (
            self._changed >= self.oscillation_fraction * self._seen
            and self._since_change < max(1, self.window // 4)
        )
        self._seen = self._changed = 0
        if oscillating and self.damping < self.maximum:
            # Rounded so that the steps land on 0.55, 0.6, ... exactly.
            self.damping = round(min(self.damping + self.step, self.maximum), 10)
            return self.damping
        return None


class _History:
    """Per-iteration record: exemplars, changes, net similarity, damping.

    Net similarity (Frey & Dueck's objective: every sample's similarity to
    its most similar exemplar, exemplars counting their preference) costs a
    read of the exemplar columns of ``S``; it is recomputed only in the
    iterations where the exemplar set changed.
    """

    def __init__(self, n_samples):
        self.columns = {"n_exemplars": [], "n_changed": [], "net_similarity": [], "damping": []}
        # Each sample's best similarity to an exemplar, kept up to date as
        # exemplars come and go (see assign.update_best_exemplar_similarity).
        self._best_value = np.empty(n_samples, dtype=np.float64)
        self._best_index = np.full(n_samples, -1, dtype=np.intp)
        self._was_exemplar = np.zeros(n_samples, dtype=bool)
        # The best values are not those of the current exemplars and S (at
        # the start, after a record with no exemplar, after S changed):
        # the next record searches every row in full.
        self._recompute = True
        self._net_similarity = np.nan

    def similarities_changed(self):
        """``S`` changed (a new preference in a search): recompute at the
        next record, even if the exemplars stay."""
        self._recompute = True

    def record(self, state, n_exemplars, n_changed, damping):
        if n_changed > 0 or self._recompute:
            is_exemplar = state.is_exemplar
            if n_exemplars == 0:
                self._net_similarity = np.nan
            else:
                removed = self._was_exemplar & ~is_exemplar
                added = np.flatnonzero(is_exemplar & ~self._was_exemplar)
                # Reading many added columns row by row costs more than one
                # search over the set.
                full = self._recompute or 2 * added.size > n_exemplars
                assign.update_best_exemplar_similarity(
                    state.S, np.flatnonzero(is_exemplar), removed, added,
                    self._best_value, self._best_index, full,
                )
                self._net_similarity = assign.net_similarity(
                    state.S, is_exemplar, self._best_value
                )
            self._recompute = n_exemplars == 0
            self._was_exemplar[:] = is_exemplar
        self.columns["n_exemplars"].append(n_exemplars)
        self.columns["n_changed"].append(n_changed)
        self.columns["net_similarity"].append(self._net_similarity)
        self.columns["damping"].append(damping)

    def as_arrays(self):
        return {
            "n_exemplars": np.asarray(self.columns["n_exemplars"], dtype=np.intp),
            "n_changed": np.asarray(self.columns["n_changed"], dtype=np.intp),
            "net_similarity": np.asarray(self.columns["net_similarity"], dtype=np.float64),
            "damping": np.asarray(self.columns["damping"], dtype=np.float64),
        }


class LoopResult(NamedTuple):
    """How :func:`iterate_until_converged` ended."""

    n_iter: int
    converged: bool
    stopped_by_callback: bool


def iterate_until_converged(
    state,
    *,
    max_iter,
    convergence_iter,
    adaptive_damping=None,
    history=None,
    callback=None,
    callback_every=1,
    progress=None,
    iterations_before=0,
    started=None,
):
    """Iterate ``state`` until its exemplars settle, ``max_iter`` or a stop.

    scikit-learn's convergence test: the exemplar flags have been identical
    for the last ``convergence_iter`` iterations (checked from iteration
    ``convergence_iter`` on) and there is at least one exemplar. Runs one
    iteration per call into the kernels, so Ctrl-C stops it within one
    iteration.

    Parameters
    ----------
    state : MessageState
    max_iter, convergence_iter : int
    adaptive_damping : AdaptiveDamping or None
        Consulted after every iteration; may raise ``state``'s damping.
    history : _History or None
        Receives one record per iteration.
    callback : callable or None
        ``callback(IterationInfo)`` every ``callback_every`` iterations; a
        true return value stops the loop.
    progress : _Progress or None
    iterations_before : int
        Iterations of the same fit already run (earlier steps of an
        ``n_clusters`` search): the callback counts over the whole fit.
    started : float or None
        ``time.perf_counter()`` at the start of the fit (default: now).

    Returns
    -------
    LoopResult
        ``stopped_by_callback`` whenever the callback returned true (also on
        the iteration that converged).
    """
    if started is None:
        started = time.perf_counter()
    unchanged_run = 0
    converged = False
    stopped = False
    iteration = -1
    for iteration in range(max_iter):
        damping = state.damping_value
        n_exemplars, n_changed = state.iterate()
        unchanged_run = unchanged_run + 1 if (iteration > 0 and n_changed == 0) else 1
        if history is not None:
            history.record(state, n_exemplars, n_changed, damping)
        if progress is not None:
            progress.update(iteration, n_exemplars, n_changed)
        if iteration >= convergence_iter and unchanged_run >= convergence_iter and n_exemplars > 0:
            converged = True
        fit_iteration = iterations_before + iteration + 1
        if callback is not None and fit_iteration % callback_every == 0:
            info = IterationInfo(
                fit_iteration, int(n_exemplars), int(n_changed), damping,
                time.perf_counter() - started,
            )
            if callback(info):
                stopped = True
                break
        if converged:
            break
        if adaptive_damping is not None:
            raised = adaptive_damping.observe(n_changed)
            if raised is not None:
                state.set_damping(raised)
    return LoopResult(iteration + 1, converged, stopped)


def _assign_clusters(S, is_exemplar):
    """Exemplar flags -> (cluster_centers_indices, labels), as scikit-learn."""
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


def warn_if_not_converged(cluster_centers_indices, converged):
    """scikit-learn's two ConvergenceWarnings."""
    if cluster_centers_indices.size == 0:
        warnings.warn(
            "Affinity propagation did not converge and this model will not have any "
            "cluster centers.",
            ConvergenceWarning,
        )
    elif not converged:
        warnings.warn(
            "Affinity propagation did not converge, this model may return degenerate "
            "cluster centers and labels.",
            ConvergenceWarning,
        )


def prepare_similarities(S, preference, random_state):
    """Preferences on the diagonal, then scikit-learn's degeneracy noise.

    Returns the standard normals drawn for the diagonal, with which the
    preference can later be changed as if the noise had been drawn for the
    new one (see :func:`set_preference`).
    """
    S.flat[:: S.shape[0] + 1] = preference
    return _add_degeneracy_noise(S, random_state)


def set_preference(S, preference, diagonal_normals):
    """Put a new preference with its noise on the diagonal of a prepared ``S``:
    bitwise what :func:`prepare_similarities` gives for that preference and
    the same random state (the off-diagonal noise does not depend on it)."""
    n = S.shape[0]
    S.flat[:: n + 1] = preference
    info = np.finfo(S.dtype)
    setup.add_diagonal_noise(S, diagonal_normals, info.eps, info.tiny * 100)


def run_affinity_propagation(
    S,
    preference,
    *,
    damping,
    max_iter,
    convergence_iter,
    random_state,
    n_threads,
    verbose=False,
    messages_out=None,
    matrices=None,
    warm_messages=None,
    adaptive_damping=None,
    record_history=False,
    callback=None,
    callback_every=1,
):
    """Affinity Propagation on a similarity matrix, in place.

    Parameters
    ----------
    S : ndarray of shape (n_samples, n_samples), C order, float32 or float64
        Finite similarities. Overwritten as scikit-learn overwrites its
        ``affinity_matrix_``: preferences on the diagonal plus noise.
    preference : ndarray, 0-d or of shape (n_samples,)
        Finite preferences (already validated).
    damping, max_iter, convergence_iter, verbose
        As in :class:`fastap.AffinityPropagation`; ``damping`` is the
        initial damping when ``adaptive_damping`` is given.
    random_state : numpy.random.RandomState
    n_threads : int
        Threads for the parallel kernels (the caller sets Numba's count).
    messages_out : dict or None
        When a dict, receives the final ``"responsibility"`` and
        ``"availability"`` matrices (completed to the end of the last
        iteration).
    matrices : MessageMatrices or None
        Message matrices allocated ahead by the caller (see MessageMatrices).
    warm_messages : tuple (R, A) or None
        Messages of an earlier run to continue from (warm start), as
        ``messages_out`` returned them; updated in place.
    adaptive_damping : AdaptiveDamping or None
    record_history : bool
        Return the per-iteration record in ``FitResult.history``.
    callback, callback_every
        See :func:`iterate_until_converged`.

    Returns
    -------
    FitResult
    """
    n = S.shape[0]
    if n == 1 or _has_equal_similarities_and_preferences(S, preference):
        warnings.warn(
            "All samples have mutually equal similarities. Returning arbitrary cluster center(s)."
        )
        history = _History(0).as_arrays() if record_history else None  # no iterations
        if preference.flat[0] > S.flat[n - 1]:
            return FitResult(np.arange(n), np.arange(n), 0, True, history, damping)
        return FitResult(np.array([0]), np.zeros(n, dtype=np.intp), 0, True, history, damping)

    prepare_similarities(S, preference, random_state)

    state = MessageState(S, damping, n_threads, matrices, warm_messages)
    history = _History(n) if record_history else None
    loop = iterate_until_converged(
        state,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        adaptive_damping=adaptive_damping,
        history=history,
        callback=callback,
        callback_every=callback_every,
        progress=_Progress(verbose, n),
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
    del state  # frees R and A before the assignment (unless the caller keeps them)

    cluster_centers_indices, labels = _assign_clusters(S, is_exemplar)
    warn_if_not_converged(cluster_centers_indices, loop.converged)
    return FitResult(
        cluster_centers_indices, labels, loop.n_iter, loop.converged,
        history.as_arrays() if history is not None else None, final_damping,
    )
