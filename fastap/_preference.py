"""Choosing the preference: quantiles, the preference range, a target K.

``preference_range`` follows R's apcluster ``preferenceRange``; the search
for a number of clusters follows Frey & Dueck's ``apclusterK`` (bisection
over the preference), except that each step continues from the previous
step's messages instead of starting from zero.
"""

import time
import warnings
from typing import NamedTuple

import numpy as np

from fastap import _engine
from fastap._kernels import preference as preference_kernels
from fastap._kernels import setup


class PreferenceRange(NamedTuple):
    """Preferences between which the number of clusters goes from 1 to N.

    Attributes
    ----------
    low : float
        The smallest preference at which more than one cluster can be
        better than one (below it, one cluster has the larger net
        similarity). ``method="bound"`` gives a lower bound of it.
    high : float
        The largest off-diagonal similarity: with a larger preference every
        sample is its own exemplar (N clusters).
    """

    low: float
    high: float


def preference_range_of_similarities(S, method="bound"):
    """:class:`PreferenceRange` of a finite square similarity matrix.

    A sample's similarity to itself counts as 0 (see
    ``fastap/_kernels/preference.py``); the diagonal of ``S`` is not read.
    ``method="bound"`` takes one pass over ``S``; ``"exact"`` takes O(n^3)
    time and a transposed copy of ``S``.
    """
    n = S.shape[0]
    if n < 2:
        raise ValueError("The preference range needs at least 2 samples.")
    column_sums = np.empty(n, dtype=np.float64)
    row_maxima = np.empty(n, dtype=np.float64)
    preference_kernels.off_diagonal_column_sums_and_row_maxima(S, column_sums, row_maxima)
    one_exemplar = column_sums.max()
    high = row_maxima.max()
    if method == "exact":
        two_exemplars = preference_kernels.best_pair_similarity(np.ascontiguousarray(S.T))
    else:
        # Every other sample at its most similar sample, the two least well
        # placed ones as exemplars (contributing 0): no pair does better.
        two_smallest = np.partition(row_maxima, 1)[:2]
        two_exemplars = row_maxima.sum() - two_smallest.sum()
    return PreferenceRange(float(one_exemplar - two_exemplars), float(high))


def preference_range(X, *, affinity="euclidean", method="bound", n_jobs=None):
    """Range of preferences worth trying: from one cluster to N clusters.

    As R's apcluster ``preferenceRange``: ``low`` is the preference above
    which two clusters can beat one in net similarity (``method="exact"``)
    or a lower bound of it (``"bound"``, the default: one pass over the
    similarities, fast for N in the tens of thousands); ``high`` is the
    largest similarity between two different samples, above which every
    sample is its own exemplar. A sample's similarity to itself counts as
    0 (an exemplar contributes its preference only); the diagonal of a
    precomputed matrix is not read.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, n_samples)
        Samples, or similarities with ``affinity="precomputed"`` (not
        copied; read only).
    affinity : {"euclidean", "precomputed", "cosine"} or callable, default="euclidean"
        As in :class:`fastap.AffinityPropagation`.
    method : {"bound", "exact"}, default="bound"
        ``"exact"`` takes O(n^3) time and an n x n copy: for n up to a few
        thousand.
    n_jobs : int, default=None
        Threads, as in :class:`fastap.AffinityPropagation`.

    Returns
    -------
    PreferenceRange
        ``(low, high)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastap import preference_range
    >>> X = np.array([[0.0], [1.0], [5.0]])
    >>> preference_range(X, method="exact")
    PreferenceRange(low=-16.0, high=-1.0)
    """
    from sklearn.utils import check_array

    if method not in ("bound", "exact"):
        raise ValueError(f"method must be 'bound' or 'exact'; got {method!r}.")
    n_threads = _engine.resolve_n_threads(n_jobs)
    with _engine.numba_threads(n_threads):
        if affinity == "precomputed":
            S = check_array(X, dtype=[np.float64, np.float32], order="C")
            if S.shape[0] != S.shape[1]:
                raise ValueError(
                    f"The matrix of similarities must be a square array. Got {S.shape} instead."
                )
        else:
            X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32])
            dtype = np.float32 if X.dtype == np.float32 else np.float64
            _engine.check_memory(X.shape[0], dtype, n_new_matrices=1)
            if affinity == "euclidean":
                S = _engine.negative_squared_euclidean(X, dtype)
            elif affinity == "cosine":
                S = _engine.cosine_similarities(X, dtype)
            elif callable(affinity):
                S = np.ascontiguousarray(affinity(X), dtype=dtype)
            else:
                raise ValueError(f"Unknown affinity {affinity!r}.")
        return preference_range_of_similarities(S, method)


class SearchStep(NamedTuple):
    """One step of the search for a number of clusters."""

    preference: float
    n_clusters: int
    n_iter: int
    converged: bool


class _SignedLogScale:
    """Bisection coordinates: ``t = asinh(p / scale)``, logarithmic for
    ``|p| >> scale`` and linear near 0, so a range spanning decades of
    negative similarities is halved in ratio rather than in width."""

    def __init__(self, scale):
        self.scale = scale

    def to_t(self, preference):
        return np.arcsinh(preference / self.scale)

    def to_preference(self, t):
        return self.scale * np.sinh(t)


def search_n_clusters(
    S,
    n_clusters,
    *,
    damping,
    max_iter,
    convergence_iter,
    random_state,
    n_threads,
    start=None,
    warm=True,
    max_steps=40,
    adaptive_damping=None,
    history=None,
    callback=None,
    callback_every=1,
    messages_out=None,
    verbose=False,
):
    """Affinity Propagation with the preference that gives ``n_clusters``.

    Bisection over the preference range (in signed-log coordinates) on one
    prepared similarity matrix: the off-diagonal noise is drawn once and
    each step changes only the diagonal, bitwise as a fit with that
    preference and the same random state would have it. With ``warm`` each
    step continues from the previous step's messages; otherwise they are
    reset to zero (classic cold restarts, kept for comparison). A step that
    does not converge is repeated cold at damping ``_RETRY_DAMPING``, kept
    for the rest of the search. The search ends at the target, when the
    bracket is narrower than ``_NARROWEST`` (relative), or after
    ``max_steps``; the result is then the best step (converged first, then
    closest to the target). ``start`` is the first preference tried
    (default: the median off-diagonal similarity).

    Returns
    -------
    result : FitResult
        The fit at the chosen preference; ``n_iter`` counts the iterations
        of all steps (as does ``history``).
    preference : float
        The chosen preference (in ``S``'s dtype, before noise).
    steps : list of SearchStep
        Every evaluation, in order (the last one is the returned fit).
    """
    n = S.shape[0]
    dtype = S.dtype.type
    low, high = preference_range_of_similarities(S)
    # The bracket: at the lower end one cluster is best, at the upper end
    # every sample is alone (a small margin beyond each, so that 1 and N
    # clusters are reachable).
    scale = _SignedLogScale(max(abs(high), (high - low) * 1e-9, np.finfo(np.float64).tiny))
    # (Not only relative to low: low is 0 when samples coincide.)
    below_low = max(abs(low) * 1e-3, (high - low) * 1e-3, 1e-12)
    bracket = _Bracket(
        scale.to_t(low - below_low), 1, scale.to_t(high + abs(high) * 1e-3 + 1e-12), n
    )
    # By default the search starts at the median similarity (scikit-learn's
    # default preference, usually a moderate number of clusters).
    if start is None:
        start = setup.off_diagonal_quantile(S, 0.5, max(2, n_threads))
    start = float(start)
    diagonal_normals = _engine.prepare_similarities(S, dtype(low), random_state)
    if adaptive_damping is None:
        # Steps far from the answer often oscillate, and an unconverged
        # count misleads the search: raise the damping when they do.
        adaptive_damping = _engine.AdaptiveDamping(damping)
    state = _engine.MessageState(S, damping, n_threads)
    steps = []
    started = time.perf_counter()

    def evaluate(preference, cold):
        _engine.set_preference(S, preference, diagonal_normals)
        if history is not None:
            history.similarities_changed()
        if not cold and steps:
            state.shift_preference(dtype(preference) - dtype(steps[-1].preference))
        if cold:
            state.R.fill(0)
            state.A.fill(0)
            state.availability_pending = False
            state.is_exemplar[:] = False
            adaptive_damping.reset()
            state.set_damping(adaptive_damping.damping)
        loop = _engine.iterate_until_converged(
            state,
            max_iter=max_iter,
            convergence_iter=convergence_iter,
            adaptive_damping=adaptive_damping,
            history=history,
            callback=callback,
            callback_every=callback_every,
            iterations_before=sum(step.n_iter for step in steps),
            started=started,
        )
        step = SearchStep(float(preference), int(state.is_exemplar.sum()), loop.n_iter,
                          loop.converged)
        steps.append(step)
        if verbose:
            print(f"[fastap] preference {float(preference):.6g}: {step.n_clusters} clusters, "
                  f"{step.n_iter} iterations{'' if step.converged else ', not converged'}")
        if loop.stopped_by_callback:
            raise _StopSearch
        return step

    best = None
    stopped = False
    t = scale.to_t(start)
    # Warm steps inherit the previous step's clusters, and near a jump in
    # the number of clusters that memory can stall the search (the same
    # preference gives different counts from different starts); a step
    # then starts cold once.
    cold_next = not warm
    best_flags = np.zeros(n, dtype=bool)
    for _ in range(max_steps):
        preference = dtype(scale.to_preference(t))
        try:
            step = evaluate(preference, cold=cold_next)
            if not step.converged and adaptive_damping.initial < _RETRY_DAMPING:
                # A step that does not settle gives no reliable count (an
                # oscillating run can show N clusters where 7 are stable, and
                # the bracket would then exclude the answer): repeat it cold
                # with more damping, and keep that damping for the search.
                adaptive_damping.initial = _RETRY_DAMPING
                step = evaluate(preference, cold=True)
        except _StopSearch:
            stopped = True
            break
        if best is None or _closer(step, best, n_clusters):
            best = step
            best_flags[:] = state.is_exemplar
        if step.n_clusters == n_clusters and step.converged:
            break
        counted = step.n_clusters
        if not step.converged and counted in (0, n):
            # All flags flipping together is what AP does far below the
            # useful preferences (not above them, where N clusters settle
            # at once): read it as too few clusters.
            counted = 0
        bracket.update(t, counted, n_clusters)
        t = bracket.next_t(n_clusters)
        # Near steps, most of a bisection, continue warm: the messages are
        # shifted to the new preference (MessageState.shift_preference), so
        # the damping does not have to carry the change in geometrically.
        # Far jumps start cold: there the old exemplars' messages mislead
        # (measured: warm far jumps end in 1 or N clusters at damping 0.9).
        jump = abs(scale.to_preference(t) - step.preference)
        cold_next = not warm or bracket.stalled or jump > _WARM_JUMP * abs(step.preference)
        low, high = scale.to_preference(bracket.t_low), scale.to_preference(bracket.t_high)
        if dtype(low) >= dtype(high) or high - low <= _NARROWEST * max(abs(low), abs(high)):
            # The count jumps past the target here (AP's count is not
            # monotone in the preference, nor continuous): more bisection
            # only narrows the jump.
            break

    final = steps[-1]
    kept_best_flags = False
    if not stopped and best is not None and final is not best:
        # Leave the state of a run at the best preference from zero
        # messages, which AffinityPropagation(preference=preference_)
        # reproduces; if that run does worse than the (warm) best step did,
        # keep the best step's exemplars (the messages are then the cold
        # run's, at the same preference).
        try:
            final = evaluate(dtype(best.preference), cold=True)
        except _StopSearch:
            final = steps[-1]
        if not _closer(final, best, n_clusters):
            state.is_exemplar[:] = best_flags
            # The returned fit is the last step, as documented: the best
            # step again, with no iterations of its own.
            final = best._replace(n_iter=0)
            steps.append(final)
            kept_best_flags = True
    if messages_out is not None:
        state.complete_availability()
        messages_out["responsibility"] = state.R
        messages_out["availability"] = state.A
        # The best step's exemplars kept over the final run's messages.
        messages_out["stale"] = kept_best_flags
    is_exemplar = state.is_exemplar
    final_damping = state.damping_value
    state = None  # frees R and A before the assignment (unless messages_out keeps them)
    cluster_centers_indices, labels = _engine._assign_clusters(S, is_exemplar)
    if not stopped and cluster_centers_indices.size != n_clusters:
        warnings.warn(
            f"No preference found that gives {n_clusters} clusters; using the closest: "
            f"{cluster_centers_indices.size} clusters at preference {final.preference:.6g}.",
            UserWarning,
        )
    _engine.warn_if_not_converged(cluster_centers_indices, final.converged)
    result = _engine.FitResult(
        cluster_centers_indices, labels, sum(step.n_iter for step in steps), final.converged,
        history.as_arrays() if history is not None else None, final_damping,
    )
    return result, dtype(final.preference), steps


# Relative width of the bracket at which the search stops.
_NARROWEST = 1e-5

# Damping from which a step that does not converge is repeated (cold steps at
# 0.9 converged in 40-60 iterations on every problem of toolkit_report.py).
_RETRY_DAMPING = 0.9

# Largest change of preference, relative to the current one, from which a
# step continues warm (measured on blobs, damping 0.5 and 0.9).
_WARM_JUMP = 0.5


class _Bracket:
    """Coordinates ``t_low < t_high`` with fewer / more clusters than the
    target, and the next point: interpolated in (t, log clusters), which
    is close to linear for AP, kept at least a tenth of the bracket away
    from its ends, and plain bisection when a side has moved twice in a
    row (the Illinois safeguard against one-sided convergence).

    ``stalled`` tells when warm steps stopped bringing news: a count that
    contradicts the bracket, or the same count on one side three times in
    a row (the messages' memory of an earlier preference keeps a cluster
    that a fresh start would not find).
    """

    def __init__(self, t_low, k_low, t_high, k_high):
        self.t_low, self.k_low = t_low, k_low
        self.t_high, self.k_high = t_high, k_high
        self._initial_width = t_high - t_low
        self._last_side = 0
        self._same_side = 0
        self._same_count = 0
        self.stalled = False

    def update(self, t, n_clusters, target):
        low_side = n_clusters <= target
        side = -1 if low_side else 1
        previous = self.k_low if low_side else self.k_high
        contradicts = n_clusters > self.k_high if low_side else n_clusters < self.k_low
        self._same_count = self._same_count + 1 if n_clusters == previous else 0
        if low_side:
            self.t_low, self.k_low = t, min(n_clusters, target)
        else:
            self.t_high, self.k_high = t, max(n_clusters, target)
        self._same_side = self._same_side + 1 if side == self._last_side else 1
        self._last_side = side
        self.stalled = (
            contradicts
            or self._same_count >= 3
            or (self.t_high - self.t_low) < 1e-9 * self._initial_width
        )
        if self.stalled:
            self._same_count = 0

    def next_t(self, target):
        width = self.t_high - self.t_low
        if self._same_side >= 2:
            self._same_side = 0
            return self.t_low + 0.5 * width
        log_low = np.log(max(self.k_low, 0.5))
        log_high = np.log(max(self.k_high, 0.5))
        fraction = 0.5
        if log_high > log_low:
            fraction = (np.log(target) - log_low) / (log_high - log_low)
        return self.t_low + min(max(fraction, 0.1), 0.9) * width


class _StopSearch(Exception):
    """A callback asked to stop."""


def _closer(step, best, target):
    """Converged steps first, then the smaller distance to the target."""
    key = (not step.converged, abs(step.n_clusters - target))
    best_key = (not best.converged, abs(best.n_clusters - target))
    return key <= best_key
