"""The NumPy engine: scikit-learn's loop in plain NumPy, for the cold start.

A fresh environment has no compiled kernels: the first fit would wait
12-20 s for Numba, while scikit-learn's NumPy loop fits N = 500 in 0.2 s.
:class:`NumpyMessageState` implements the run's message-state protocol
(``_run.MessageState``) with whole-matrix NumPy operations and nothing
compiled, in float64, with scikit-learn's arithmetic in scikit-learn's
order: its results (messages, exemplars, iterations, clusters) are bitwise
those of the compiled stored engine (``_dense.DenseMessageState``,
row-ordered column sums). The set-up twins below (similarities, median,
quantile, noise, assignment, preference range) are likewise bitwise the
compiled steps' results, so a fit that runs here never compiles.

:class:`ColdStartMessageState` runs the NumPy engine and hands its messages
over to the compiled engine, mid-fit, once the NumPy work this process has
done reaches the compile cost (ski rental: any sequence of fits costs at
most about twice the better of "NumPy only" and "compile first"); the
messages are carried bitwise, so the hand-over does not change the result.
Which path a fit takes (``_cold_start.choose_numpy_path``) depends on the
cache; what it computes does not.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse

from fastap._damping import DampingPairs
from fastap._dense import DenseMessageState
from fastap._similarity import (
    callable_output_as_matrix,
    check_distances_finite,
    cosine_similarities,
)

# --------------------------------------------------------------------------
# Set-up: similarities, preference, checks (NumPy twins of the kernels).
# --------------------------------------------------------------------------


def similarities(X, affinity, copy=True):
    """float64 ``S`` of validated features ``X``, as ``_similarity.similarities``
    computes it (bitwise), with NumPy only."""
    from sklearn.metrics import euclidean_distances
    from sklearn.utils.extmath import row_norms

    if affinity == "euclidean":
        if sparse.issparse(X):
            S = np.ascontiguousarray(euclidean_distances(X, squared=True), dtype=np.float64)
            np.negative(S, out=S)
        else:
            X = np.asarray(X, dtype=np.float64)
            squared_norms = row_norms(X, squared=True)
            S = np.matmul(X, X.T)
            # -2 G + |x_i|^2 + |x_j|^2, clipped at 0, zero diagonal, negated:
            # the kernel's operations in its order (scikit-learn's), as
            # silent as the kernel (an overflow is counted below).
            with np.errstate(over="ignore", invalid="ignore"):
                S *= -2.0
                S += squared_norms[:, None]
                S += squared_norms[None, :]
                np.maximum(S, 0.0, out=S)
            np.negative(S, out=S)
            np.fill_diagonal(S, -0.0)
        check_distances_finite(int(S.size - np.count_nonzero(np.isfinite(S))), np.float64)
        return S
    if affinity == "cosine":
        return cosine_similarities(X, np.float64)
    if callable(affinity):
        return validated_callable_similarities(affinity(X), X.shape[0], copy)
    raise ValueError(f"Unknown affinity {affinity!r}.")


def validated_callable_similarities(S, n_samples, copy):
    """``_similarity.validated_callable_similarities`` in float64, NumPy only."""
    S = callable_output_as_matrix(S, n_samples, np.float64, copy)
    if not np.all(np.isfinite(S)):
        raise ValueError("The affinity callable returned NaN or infinity.")
    return S


def median(S):
    """``setup.median_of_matrix``: exactly ``np.median(S)``."""
    return S.dtype.type(np.median(S))


def off_diagonal_quantile(S, q):
    """``setup.off_diagonal_quantile``: ``np.quantile`` (linear) of the
    off-diagonal entries, with the same two order statistics and the same
    interpolation call, hence the same bits."""
    n = S.shape[0]
    n_off = n * n - n
    virtual_index = (n_off - 1) * q
    lower = min(int(np.floor(virtual_index)), n_off - 1)
    upper = min(lower + 1, n_off - 1)
    off_diagonal = S[~np.eye(n, dtype=bool)]
    low, high = np.partition(off_diagonal, [lower, upper])[[lower, upper]]
    return S.dtype.type(np.quantile(np.array([low, high]), virtual_index - lower))


def add_degeneracy_noise(S, random_state):
    """scikit-learn's ``S += (eps * S + tiny * 100) * N(0, 1)``, one draw;
    returns the normals of the diagonal (for a later preference)."""
    n = S.shape[0]
    info = np.finfo(S.dtype)
    noise = random_state.standard_normal(size=(n, n))
    diagonal_normals = np.diagonal(noise).copy()
    coefficient = info.eps * S
    coefficient += info.tiny * 100
    coefficient *= noise
    S += coefficient
    return diagonal_normals


def add_diagonal_noise(S, diagonal_normals):
    """``setup.add_diagonal_noise``: the same arithmetic on the diagonal."""
    info = np.finfo(S.dtype)
    diagonal = np.diagonal(S).copy()
    np.fill_diagonal(S, diagonal + (info.eps * diagonal + info.tiny * 100) * diagonal_normals)


def preference_range(S):
    """``_preference.preference_range_of_similarities(S)`` ("bound"): the
    off-diagonal column sums (float64, rows in order) and row maxima."""
    from fastap._preference import preference_range_bound

    n = S.shape[0]
    if n < 2:
        raise ValueError("The preference range needs at least 2 samples.")
    off_diagonal = S.astype(np.float64, copy=True)
    np.fill_diagonal(off_diagonal, 0.0)
    column_sums = sequential_column_sums(off_diagonal)
    np.fill_diagonal(off_diagonal, -np.inf)
    return preference_range_bound(column_sums, off_diagonal.max(axis=1))


def sequential_column_sums(M):
    """``sum_i M[i, :]`` added row 0, 1, 2, ... (the kernels' order)."""
    total = np.zeros(M.shape[1], dtype=np.float64)
    for row in M:
        total += row
    return total


# --------------------------------------------------------------------------
# Results: assignment, objective, confidence.
# --------------------------------------------------------------------------


def nearest_exemplar(S, exemplars):
    """``assign.nearest_exemplar``: first most similar exemplar, exemplars
    labelled as themselves."""
    labels = np.argmax(S[:, exemplars], axis=1)
    labels[exemplars] = np.arange(exemplars.size)
    return labels


def assign_clusters(S, is_exemplar):
    """``_dense.assign_clusters`` (scikit-learn's refinement) in NumPy."""
    n = S.shape[0]
    exemplars = np.flatnonzero(is_exemplar)
    if exemplars.size == 0:
        return np.array([], dtype=np.intp), np.full(n, -1, dtype=np.intp)
    labels = nearest_exemplar(S, exemplars)
    same_cluster = labels[:, None] == labels[None, :]
    column_sums = sequential_column_sums(np.where(same_cluster, S, 0.0))
    order = np.lexsort((np.arange(n), -column_sums, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = order[first_of_cluster]
    labels = exemplars[nearest_exemplar(S, exemplars)]
    cluster_centers_indices = np.unique(labels)
    return cluster_centers_indices, np.searchsorted(cluster_centers_indices, labels)


def net_similarity(S, is_exemplar):
    """``assign.net_similarity``: best exemplar similarity of every
    non-exemplar, the preference of every exemplar, added in row order."""
    exemplars = np.flatnonzero(is_exemplar)
    if exemplars.size == 0:
        return np.nan
    terms = np.where(is_exemplar, np.diagonal(S), S[:, exemplars].max(axis=1))
    # From 0.0, as the kernel adds (cumsum is sequential; sum is pairwise).
    return float(np.cumsum(np.r_[0.0, terms])[-1])


def evidence_margin(A, R, exemplars, assigned):
    """``assign.evidence_margin``: ``E(i, own) - max_{other} E(i, e)``."""
    evidence = A[:, exemplars] + R[:, exemplars]
    rows = np.arange(A.shape[0])
    own = A[rows, assigned] + R[rows, assigned]
    evidence[exemplars[None, :] == assigned[:, None]] = -np.inf
    best_other = evidence.max(axis=1) if exemplars.size else np.full(A.shape[0], -np.inf)
    return own - best_other


# --------------------------------------------------------------------------
# The engine.
# --------------------------------------------------------------------------

# From this size the passes run on threads, by blocks of rows (below it the
# thread hand-offs, ~14 a pass, cost more than they save).
THREADED_MIN_SAMPLES = 400

# Elements of a block of rows that every operation of a phase sees in turn
# before the next block (1 MiB of float64: the block's S, A, R and scratch
# rows stay in cache through the phase's ~10 operations instead of
# streaming each matrix from memory ~10 times).
BLOCK_ELEMENTS = 1 << 17

_pools = {}
_pools_lock = threading.Lock()


def thread_pool(n_threads):
    """A process-wide pool of ``n_threads`` threads (kept: a fit interrupted
    by Ctrl-C leaves it idle, to be reused, not leaked)."""
    with _pools_lock:
        if n_threads not in _pools:
            _pools[n_threads] = ThreadPoolExecutor(n_threads, thread_name_prefix="fastap-numpy")
        return _pools[n_threads]


class NumpyMessageState(DampingPairs):
    """Dense Affinity Propagation in NumPy: ``S``, ``R``, ``A`` in float64.

    Implements ``_run.MessageState`` with ``DenseMessageState``'s semantics
    (its ``grouped_sums=False`` form): same constructor arguments where they
    apply, bitwise the same messages after every iteration. Each iteration is
    scikit-learn's, in place: one N x N scratch matrix instead of its
    temporaries; the availabilities are complete after every iteration, so
    nothing is ever pending.

    Parameters
    ----------
    S : ndarray (n, n), C order, float64
        Finite similarities, overwritten (preferences and noise).
    preference : ndarray, 0-d or (n,), float64
    damping : float
    random_state : numpy.random.RandomState
    n_threads : int
        Threads for the passes (from :data:`THREADED_MIN_SAMPLES` on);
        results do not depend on it.
    warm_messages : tuple (R, A) or None
        Complete messages to continue from, updated in place.
    """

    def __init__(self, S, preference, *, damping, random_state, n_threads=1,
                 warm_messages=None):
        self.S = S
        self.n_threads = max(1, int(n_threads))
        self._pool = None
        self.n_samples = S.shape[0]
        self.dtype = S.dtype
        self.preference = preference
        self.scalar_preference = preference if np.ndim(preference) == 0 else None
        self.random_state = random_state
        self._warm_messages = warm_messages
        self.R = self.A = None
        self.is_exemplar = np.zeros(self.n_samples, dtype=bool)
        self.availability_pending = False
        self.set_damping(damping)

    # -- set-up -------------------------------------------------------------

    def equal_similarities(self):
        n = self.n_samples
        if n == 1:
            return False
        preference = np.asarray(self.preference)
        if not np.all(preference == preference.flat[0]):
            return None
        S = self.S
        if np.all((S == S[0, 1]) | np.eye(n, dtype=bool)):
            return bool(preference.flat[0] > S.flat[n - 1])
        return None

    def preference_range(self):
        return preference_range(self.S)

    def similarity_quantile(self, q):
        return off_diagonal_quantile(self.S, q)

    def prepare(self):
        n = self.n_samples
        S = self.S
        S.flat[:: n + 1] = self.preference
        self.diagonal_normals = add_degeneracy_noise(S, self.random_state)
        if self._warm_messages is not None:
            self.R, self.A = self._warm_messages
        else:
            self.R = np.zeros((n, n))
            self.A = np.zeros((n, n))
        self._warm_messages = None
        self.is_exemplar = np.diagonal(self.A) + np.diagonal(self.R) > 0
        self.scratch = np.empty((n, n))
        self.col_sum = np.zeros(n)
        self._rows = np.arange(n)
        self._block_rows = max(1, BLOCK_ELEMENTS // n)
        n_tasks = self.n_threads if n >= THREADED_MIN_SAMPLES else 1
        self._pool = thread_pool(n_tasks) if n_tasks > 1 else None
        bounds = np.linspace(0, n, n_tasks + 1).astype(int)
        self._blocks = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))

    # -- iterations ---------------------------------------------------------

    def iterate(self):
        """scikit-learn's iteration, operation for operation, in place: the
        responsibilities and ``max(R, 0)`` by blocks of rows, the column
        sums by blocks of columns (each still added row 0, 1, 2, ...), the
        availabilities by blocks of rows; on threads when there are several
        (NumPy's loops release the GIL), with the same bits."""
        damping, one_minus_damping = self.damping_pair
        self._run_blocks(self._responsibility_rows, damping, one_minus_damping)
        self._run_blocks(self._column_sums)
        self._run_blocks(self._availability_rows, damping, one_minus_damping)
        self.keep_damping_as_last()
        exemplar = np.diagonal(self.A) + np.diagonal(self.R) > 0
        n_changed = int(np.count_nonzero(exemplar != self.is_exemplar))
        self.is_exemplar = exemplar
        return int(np.count_nonzero(exemplar)), n_changed

    def _run_blocks(self, function, *args):
        if self._pool is None:
            function(0, self.n_samples, *args)
            return
        futures = [self._pool.submit(function, start, stop, *args)
                   for start, stop in self._blocks]
        for future in futures:
            future.result()

    def _responsibility_rows(self, start, stop, damping, one_minus_damping):
        for first in range(start, stop, self._block_rows):
            self._responsibility_block(first, min(first + self._block_rows, stop), damping,
                                       one_minus_damping)

    def _availability_rows(self, start, stop, damping, one_minus_damping):
        for first in range(start, stop, self._block_rows):
            self._availability_block(first, min(first + self._block_rows, stop), damping,
                                     one_minus_damping)

    def _responsibility_block(self, start, stop, damping, one_minus_damping):
        """Rows ``[start, stop)``: ``R`` updated, ``max(R, 0)`` (diagonal
        unclipped) left in the scratch rows."""
        S, R, tmp = self.S[start:stop], self.R[start:stop], self.scratch[start:stop]
        rows = self._rows[: stop - start]
        np.add(self.A[start:stop], S, out=tmp)
        best = np.argmax(tmp, axis=1)
        best_value = tmp[rows, best]
        tmp[rows, best] = -np.inf
        second_value = np.max(tmp, axis=1)
        np.subtract(S, best_value[:, None], out=tmp)
        tmp[rows, best] = S[rows, best] - second_value
        tmp *= one_minus_damping
        R *= damping
        R += tmp
        np.maximum(R, 0, out=tmp)
        diagonal = (rows, self._rows[start:stop])
        tmp[diagonal] = R[diagonal]

    def _column_sums(self, start, stop):
        np.sum(self.scratch[:, start:stop], axis=0, out=self.col_sum[start:stop])

    def _availability_block(self, start, stop, damping, one_minus_damping):
        tmp, A = self.scratch[start:stop], self.A[start:stop]
        diagonal = (self._rows[: stop - start], self._rows[start:stop])
        tmp -= self.col_sum
        diagonal_values = tmp[diagonal]
        tmp.clip(0, np.inf, tmp)
        tmp[diagonal] = diagonal_values
        tmp *= one_minus_damping
        A *= damping
        A -= tmp

    def complete_availability(self):
        """Nothing pending: every iteration completes ``A``."""

    def set_preference(self, preference, *, shift_messages):
        """``DenseMessageState.set_preference`` (and ``messages.shift_preference``)
        in NumPy."""
        S = self.S
        np.fill_diagonal(S, preference)
        add_diagonal_noise(S, self.diagonal_normals)
        if shift_messages:
            delta = np.float64(preference) - np.float64(self.scalar_preference)
            A, R = self.A, self.R
            diagonal = np.diagonal(A).copy()
            target = self.col_sum - np.maximum(R, 0.0)
            change = np.minimum(target + delta, 0.0)
            change -= np.minimum(target, 0.0)
            A += change
            np.fill_diagonal(A, diagonal)
            R.flat[:: self.n_samples + 1] += delta
            self.col_sum = self.col_sum + delta
        self.scalar_preference = preference
        self.preference = np.asarray(preference, dtype=S.dtype)

    def reset(self):
        self.R.fill(0)
        self.A.fill(0)
        self.is_exemplar[:] = False
        self.keep_damping_as_last()

    # -- results ------------------------------------------------------------

    def net_similarity(self):
        return net_similarity(self.S, self.is_exemplar)

    def assign(self, is_exemplar):
        return assign_clusters(self.S, is_exemplar)

    def messages(self):
        return self.R, self.A

    def membership_confidence(self, cluster_centers_indices, labels):
        """``DenseMessageState.membership_confidence`` in NumPy."""
        R, A = self.R, self.A
        margin = np.full(self.n_samples, np.nan)
        centers = np.asarray(cluster_centers_indices, dtype=np.intp)
        message_exemplars = np.flatnonzero(np.diagonal(A) + np.diagonal(R) > 0)
        if centers.size == 0 or message_exemplars.size != centers.size:
            return margin
        nearest = nearest_exemplar(self.S, message_exemplars)
        message_exemplar_of_cluster = message_exemplars[nearest[centers]]
        return evidence_margin(A, R, message_exemplars, message_exemplar_of_cluster[labels])

    def release(self):
        self.R = self.A = self.scratch = None
        self._pool = None


class ColdStartMessageState:
    """The NumPy engine until this process has spent the compile cost in it,
    then the compiled engine, continuing from the same messages (bitwise).

    Implements ``_run.MessageState`` by forwarding to the engine in use.

    Parameters
    ----------
    numpy_state : NumpyMessageState
        Constructed, not prepared.
    ledger : object
        ``spend(element_iterations)`` and ``exhausted()``: the process's
        NumPy work against the compile cost (``_cold_start.NumpyWorkLedger``).
    n_threads : int
        Threads for the compiled engine.
    on_compiled : callable or None
        Called with the compiled state after the hand-over's first iteration
        (its kernels are then compiled).
    """

    def __init__(self, numpy_state, ledger, n_threads, on_compiled=None):
        self.engine = numpy_state
        self.ledger = ledger
        self.n_threads = n_threads
        self.on_compiled = on_compiled
        self.handed_over = False
        self.n_samples = numpy_state.n_samples
        self.dtype = numpy_state.dtype

    is_exemplar = property(lambda self: self.engine.is_exemplar)
    damping = property(lambda self: self.engine.damping)
    last_damping = property(lambda self: self.engine.last_damping)

    def equal_similarities(self):
        return self.engine.equal_similarities()

    def preference_range(self):
        return self.engine.preference_range()

    def similarity_quantile(self, q):
        return self.engine.similarity_quantile(q)

    def prepare(self):
        self.engine.prepare()
        self.ledger.spend(self.n_samples**2)

    def iterate(self):
        if self.handed_over:
            return self.engine.iterate()
        if self.ledger.exhausted():
            self.engine = compiled_continuation(self.engine, self.n_threads)
            self.handed_over = True
            outcome = self.engine.iterate()
            if self.on_compiled is not None:
                self.on_compiled(self.engine)
            return outcome
        self.ledger.spend(self.n_samples**2)
        return self.engine.iterate()

    def set_damping(self, damping):
        self.engine.set_damping(damping)

    def complete_availability(self):
        self.engine.complete_availability()

    def set_preference(self, preference, *, shift_messages):
        self.engine.set_preference(preference, shift_messages=shift_messages)

    def reset(self):
        self.engine.reset()

    def net_similarity(self):
        return self.engine.net_similarity()

    def assign(self, is_exemplar):
        return self.engine.assign(is_exemplar)

    def messages(self):
        return self.engine.messages()

    def membership_confidence(self, cluster_centers_indices, labels):
        return self.engine.membership_confidence(cluster_centers_indices, labels)

    def release(self):
        self.engine.release()


def compiled_continuation(state, n_threads):
    """The compiled stored engine over a prepared NumPy state's similarities
    and complete messages: its next iteration is the NumPy engine's next
    iteration, bitwise (row-ordered sums, the same damping)."""
    preference = state.scalar_preference
    if preference is None:
        preference = state.preference
    compiled = DenseMessageState(
        state.S, preference, damping=state.damping, n_threads=n_threads,
        warm_messages=(state.R, state.A), prepared=True,
    )
    compiled.prepare()
    # For a later set_preference (an n_clusters search's next step).
    compiled.diagonal_normals = state.diagonal_normals
    return compiled
