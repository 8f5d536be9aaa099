"""The search for a preference that gives ``n_clusters`` clusters.

Frey & Dueck's ``apclusterK`` bisects the preference and restarts AP from
zero messages at every step. Here each step continues from the previous
step's messages, shifted to the new preference (``MessageState.
set_preference(..., shift_messages=True)``), except where that misleads:
far jumps, and steps after the warm ones stalled, start cold. It runs on any
engine of the message-state protocol.
"""

import warnings
from typing import NamedTuple

import numpy as np

from fastap import _run

# Relative width of the bracket at which the search stops.
NARROWEST = 1e-5

# Damping from which a step that does not converge is repeated (cold steps at
# 0.9 converged in 40-60 iterations on every problem of toolkit_report.py).
RETRY_DAMPING = 0.9

# Largest change of preference, relative to the current one, from which a
# step continues warm (measured on blobs, damping 0.5 and 0.9).
WARM_JUMP = 0.5

# Steps at most.
MAX_STEPS = 40


def run_or_search(state, options, *, n_clusters=None, start=None, adaptive_damping=None):
    """:func:`_run.run`, or the search for ``n_clusters`` clusters (from
    ``start``) when given (one sample takes the run's shortcut)."""
    if n_clusters is None or state.n_samples == 1:
        return _run.run(state, options, adaptive_damping)
    return NClustersSearch(state, n_clusters, options, start=start).run()


class SearchStep(NamedTuple):
    """One step of the search for a number of clusters."""

    preference: float
    n_clusters: int
    n_iter: int
    converged: bool


class SignedLogScale:
    """Bisection coordinates: ``t = asinh(p / scale)``, logarithmic for
    ``|p| >> scale`` and linear near 0, so a range spanning decades of
    negative similarities is halved in ratio rather than in width."""

    def __init__(self, scale):
        self.scale = scale

    def to_t(self, preference):
        return np.arcsinh(preference / self.scale)

    def to_preference(self, t):
        return self.scale * np.sinh(t)


class Bracket:
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


def closer(step, best, target):
    """Converged steps first, then the smaller distance to the target."""
    key = (not step.converged, abs(step.n_clusters - target))
    best_key = (not best.converged, abs(best.n_clusters - target))
    return key <= best_key


class NClustersSearch:
    """Bisection over the preference range for ``n_clusters`` clusters.

    On one prepared state: the off-diagonal noise is drawn once and each
    step changes only the diagonal, bitwise as a fit with that preference
    and the same random state would have it. With ``warm`` each step
    continues from the previous step's messages; otherwise they are reset
    to zero (classic cold restarts, kept for comparison). A step that does
    not converge is repeated cold at damping ``RETRY_DAMPING``, kept for the
    rest of the search. The search ends at the target, when the bracket is
    narrower than ``NARROWEST`` (relative), after ``max_steps``, or when the
    callback says stop; the result is then the best step (converged first,
    then closest to the target).

    Parameters
    ----------
    state : _run.MessageState
        Constructed, not prepared; its ``preference_range()`` and
        ``similarity_quantile(q)`` give the bracket and the default start.
    n_clusters : int
    options : _run.RunOptions
        ``adaptive_damping`` is implied: steps far from the answer often
        oscillate, and an unconverged count misleads the search.
    start : float or None
        The first preference tried (default: the median off-diagonal
        similarity).
    """

    def __init__(self, state, n_clusters, options, *, start=None, warm=True,
                 max_steps=MAX_STEPS):
        self.state = state
        self.n_clusters = n_clusters
        self.options = options
        self.warm = warm
        self.max_steps = max_steps
        low, high = state.preference_range()
        # The bracket: at the lower end one cluster is best, at the upper end
        # every sample is alone (a small margin beyond each, so that 1 and N
        # clusters are reachable; not only relative to low: low is 0 when
        # samples coincide).
        self.scale = SignedLogScale(
            max(abs(high), (high - low) * 1e-9, np.finfo(np.float64).tiny)
        )
        below_low = max(abs(low) * 1e-3, (high - low) * 1e-3, 1e-12)
        self.bracket = Bracket(self.scale.to_t(low - below_low), 1,
                               self.scale.to_t(high + abs(high) * 1e-3 + 1e-12),
                               state.n_samples)
        # By default the search starts at the median similarity (scikit-learn's
        # default preference, usually a moderate number of clusters).
        self.start = float(state.similarity_quantile(0.5) if start is None else start)
        self.dtype = state.dtype.type
        self.steps = []
        self.stopped = False
        self.monitors = None

    def run(self):
        """Search; returns the :class:`_run.RunResult` of the chosen step,
        with ``preference`` and ``search_steps`` set."""
        state = self.state
        state.prepare()
        self.monitors = _run.Monitors(
            state, self.options,
            _run.AdaptiveDamping(self.options.damping, compare_windows=False), progress=False,
        )
        best, best_flags = self._bisect()
        final = self.steps[-1]
        kept_best_flags = False
        if not self.stopped and best is not None and final is not best:
            # Leave the state of a run at the best preference from zero
            # messages, which AffinityPropagation(preference=preference_)
            # reproduces; if that run does worse than the (warm) best step
            # did, keep the best step's exemplars (the messages are then the
            # cold run's, at the same preference).
            final = self._evaluate(self.dtype(best.preference), cold=True)
            if not closer(final, best, self.n_clusters):
                state.is_exemplar[:] = best_flags
                # The returned fit is the last step, as documented: the best
                # step again, with no iterations of its own.
                final = best._replace(n_iter=0)
                self.steps.append(final)
                kept_best_flags = True
        result = _run.finish(
            state, self.options, self.monitors, sum(step.n_iter for step in self.steps),
            final.converged, self.stopped, messages_match=not kept_best_flags, announce=False,
        )
        if not self.stopped and result.cluster_centers_indices.size != self.n_clusters:
            warnings.warn(
                f"No preference found that gives {self.n_clusters} clusters; using the closest: "
                f"{result.cluster_centers_indices.size} clusters at preference "
                f"{final.preference:.6g}.",
                UserWarning,
            )
        result.preference = self.dtype(final.preference)
        result.search_steps = self.steps
        return result

    def _bisect(self):
        """The steps until the target, a narrow bracket, ``max_steps`` or a
        stop; returns the best step and its exemplar flags."""
        state, target, bracket = self.state, self.n_clusters, self.bracket
        adaptive = self.monitors.adaptive_damping
        best = None
        best_flags = np.zeros(state.n_samples, dtype=bool)
        t = self.scale.to_t(self.start)
        cold_next = not self.warm
        for _ in range(self.max_steps):
            step = self._evaluate(self.dtype(self.scale.to_preference(t)), cold=cold_next)
            if not self.stopped and not step.converged and adaptive.initial < RETRY_DAMPING:
                # A step that does not settle gives no reliable count (an
                # oscillating run can show N clusters where 7 are stable, and
                # the bracket would then exclude the answer): repeat it cold
                # with more damping, and keep that damping for the search.
                adaptive.initial = RETRY_DAMPING
                step = self._evaluate(self.dtype(step.preference), cold=True)
            if self.stopped:
                break
            if best is None or closer(step, best, target):
                best = step
                best_flags[:] = state.is_exemplar
            if step.n_clusters == target and step.converged:
                break
            t, cold_next = self._next_point(step, t)
            low = self.scale.to_preference(bracket.t_low)
            high = self.scale.to_preference(bracket.t_high)
            if (self.dtype(low) >= self.dtype(high)
                    or high - low <= NARROWEST * max(abs(low), abs(high))):
                # The count jumps past the target here (AP's count is not
                # monotone in the preference, nor continuous): more
                # bisection only narrows the jump.
                break
        return best, best_flags

    def _next_point(self, step, t):
        """The bracket updated with ``step`` (at ``t``); the next ``t`` and
        whether that step starts cold."""
        counted = step.n_clusters
        if not step.converged and counted in (0, self.state.n_samples):
            # All flags flipping together is what AP does far below the
            # useful preferences (not above them, where N clusters settle
            # at once): read it as too few clusters.
            counted = 0
        self.bracket.update(t, counted, self.n_clusters)
        t = self.bracket.next_t(self.n_clusters)
        # Near steps, most of a bisection, continue warm: the messages are
        # shifted to the new preference, so the damping does not have to
        # carry the change in geometrically. Far jumps start cold: there the
        # old exemplars' messages mislead (measured: warm far jumps end in 1
        # or N clusters at damping 0.9).
        jump = abs(self.scale.to_preference(t) - step.preference)
        cold = not self.warm or self.bracket.stalled or jump > WARM_JUMP * abs(step.preference)
        return t, cold

    def _evaluate(self, preference, cold):
        """One step: the preference (and its noise) on the diagonal, the
        messages shifted to it (warm) or reset (cold), iterations."""
        state, monitors = self.state, self.monitors
        state.set_preference(preference, shift_messages=not cold and bool(self.steps))
        if monitors.history is not None:
            monitors.history.invalidate()
        if cold:
            state.reset()
            monitors.adaptive_damping.reset()
            state.set_damping(monitors.adaptive_damping.damping)
        loop = _run.iterate_until_converged(state, self.options, monitors)
        step = SearchStep(float(preference), int(state.is_exemplar.sum()), loop.n_iter,
                          loop.converged)
        self.steps.append(step)
        self.stopped = self.stopped or loop.stopped
        if self.options.verbose:
            print(f"[fastap] preference {float(preference):.6g}: {step.n_clusters} clusters, "
                  f"{step.n_iter} iterations{'' if step.converged else ', not converged'}")
        return step
