"""The run: one loop for every engine.

Every engine (dense matrices in ``_dense.py``, sparse graphs in
``_sparse.py``, row blocks on Dask workers in ``fastap/dask``) holds its
similarities and messages behind the small :class:`MessageState` protocol;
this module drives any of them through the same run: the equal-similarities
shortcut, the iterations (from Python, so Ctrl-C stops a fit within one
iteration), scikit-learn's convergence test, adaptive damping, history,
progress, callback, the end of a run (messages kept or freed, assignment
with scikit-learn's refinement, the not-converged warning with fastap's
remedies). The ``n_clusters`` search (``_search.py``) reuses the loop and
the end of a run on one state.

A run's options are one value (:class:`RunOptions`) and its outcome one
value (:class:`RunResult`), the messages included when asked for.
"""

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from fastap._advice import is_oscillation, not_converged_advice

EQUAL_SIMILARITIES_MESSAGE = (
    "All samples have mutually equal similarities. Returning arbitrary cluster center(s)."
)


class MessageState(Protocol):
    """What the run needs of an engine: similarities and messages, one iteration.

    An engine is constructed with its similarities and the preference on
    the diagonal (no noise yet). Then the run calls
    :meth:`equal_similarities` once, :meth:`prepare` once (unless the
    shortcut applied), :meth:`iterate` until the exemplars settle, and
    :meth:`assign` at the end. ``_dense.DenseMessageState`` is the
    reference implementation; see ``docs/architecture.md``.

    Attributes
    ----------
    n_samples : int
    dtype : numpy.dtype
        Of the similarities and messages.
    is_exemplar : ndarray of shape (n_samples,), bool
        ``A(k, k) + R(k, k) > 0`` after the last iteration (on the client).
    damping : float
        Damping of the next iteration.
    last_damping : float
        Damping the last iteration ran with (the one to report).
    """

    n_samples: int
    dtype: np.dtype
    is_exemplar: np.ndarray
    damping: float
    last_damping: float

    def equal_similarities(self) -> bool | None:
        """None, or the degenerate case scikit-learn shortcuts: all samples
        have equal similarities and preferences; then True when the
        preference beats the common similarity (every sample its own
        exemplar), False for one cluster. One sample counts as False."""

    def prepare(self) -> None:
        """Add the degeneracy noise to the similarities and make the
        messages ready (zero, or the warm messages given)."""

    def set_damping(self, damping: float) -> None:
        """Use ``damping`` from the next iteration on (the previous
        iteration's messages are finished with the damping it ran with)."""

    def iterate(self) -> tuple[int, int]:
        """One iteration; returns ``(n_exemplars, n_changed)``."""

    def complete_availability(self) -> None:
        """Finish the last iteration's pending availability update."""

    def set_preference(self, preference, *, shift_messages: bool) -> None:
        """A new preference with its noise on the diagonal, bitwise as a
        fresh set-up with it; ``shift_messages`` moves the messages to what
        the new preference changes in their targets (a warm search step)."""

    def reset(self) -> None:
        """Zero messages, no exemplar, as after :meth:`prepare`."""

    def preference_range(self) -> tuple[float, float]:
        """``(low, high)`` of ``preference_range`` on these similarities
        (before :meth:`prepare`): the search's bracket."""

    def similarity_quantile(self, q) -> float:
        """The q-quantile of the off-diagonal similarities (before
        :meth:`prepare`)."""

    def net_similarity(self) -> float:
        """Frey & Dueck's objective for the current exemplar flags (NaN
        without exemplars)."""

    def assign(self, is_exemplar) -> tuple[np.ndarray, np.ndarray]:
        """``(cluster_centers_indices, labels)`` from exemplar flags, with
        scikit-learn's refinement of each cluster's exemplar."""

    def messages(self) -> tuple:
        """``(R, A)`` completed to the last iteration."""

    def membership_confidence(self, cluster_centers_indices, labels) -> np.ndarray:
        """Evidence margin of each sample's cluster (see the estimator)."""

    def release(self) -> None:
        """Free the messages (the run no longer needs them)."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run: scikit-learn's parameters and fastap's additions.

    Attributes
    ----------
    damping : float
        Damping of the first iteration (of every iteration unless
        ``adaptive_damping``).
    adaptive_damping : bool
        Raise the damping while the exemplars keep flipping
        (:class:`AdaptiveDamping`).
    max_iter, convergence_iter : int
        As in scikit-learn.
    verbose : bool
        Progress lines at most once a second, and the end of the run.
    record_history : bool
        Keep the per-iteration record (:class:`History`).
    keep_messages : bool
        Return the final messages and the membership confidence.
    callback : callable or None
        ``callback(IterationInfo)`` every ``callback_every`` iterations; a
        true return value stops the run.
    callback_every : int
    """

    damping: float = 0.5
    adaptive_damping: bool = False
    max_iter: int = 200
    convergence_iter: int = 15
    verbose: bool = False
    record_history: bool = False
    keep_messages: bool = False
    callback: Callable | None = None
    callback_every: int = 1


@dataclasses.dataclass
class RunResult:
    """What a run returns.

    Attributes
    ----------
    cluster_centers_indices : ndarray (n_clusters,), intp
    labels : ndarray (n_samples,), intp
    n_iter : int
    converged : bool
    damping : float
        Damping of the last iteration (raised by adaptive damping or the
        search).
    history : dict of ndarray or None
    messages : tuple (R, A) or None
        With ``keep_messages``: the messages completed to the last iteration.
    membership_confidence : ndarray (n_samples,) or None
        With ``keep_messages``.
    stopped : bool
        The callback stopped the run.
    preference : float or None
        The preference an ``n_clusters`` search chose.
    search_steps : list of SearchStep or None
        Every step of an ``n_clusters`` search.
    advice : str or None
        What to change, when the run did not converge (the text its
        ConvergenceWarning carries after scikit-learn's).
    """

    cluster_centers_indices: np.ndarray
    labels: np.ndarray
    n_iter: int
    converged: bool
    damping: float
    history: dict | None = None
    messages: tuple | None = None
    membership_confidence: np.ndarray | None = None
    stopped: bool = False
    preference: float | None = None
    search_steps: list | None = None
    advice: str | None = None


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
# What the loop consults every iteration.
# --------------------------------------------------------------------------


class AdaptiveDamping:
    """Raise the damping while the exemplar set keeps flipping.

    After Wang et al. (2007): oscillations are what keeps AP from
    converging, and more damping removes them at the cost of slower
    progress. Every ``window`` iterations the run is inspected; if the
    window is an oscillation by the non-convergence advice's own test
    (``_advice.is_oscillation``: the exemplar set changed in at least
    ``oscillation_fraction`` of the iterations; or, given ``n_samples``,
    periodic bursts changed at least as many flags as there are samples;
    or the changes did not fall below half of the window before's) and the
    exemplars still change (within the last quarter of the window),
    the damping goes up by ``step``, at most to ``maximum``. The first
    inspection comes after two windows: the early transient of a run that
    then settles is not an oscillation.

    Parameters
    ----------
    initial : float
        Damping of the first iteration.
    window : int
        Iterations between two inspections.
    step, maximum, oscillation_fraction : float
    n_samples : int or None
        Samples of the problem (None: no test for mass flipping).
    compare_windows : bool
        Also raise on a flicker that does not die down (against the window
        before). The ``n_clusters`` search turns this and the mass test off:
        it repeats unsettled steps at damping 0.9 itself, and its steps
        keep the clusters a cold fit at the found preference gives.
    """

    def __init__(self, initial=0.5, window=30, step=0.05, maximum=0.95, oscillation_fraction=0.5,
                 n_samples=None, compare_windows=True):
        self.initial = float(initial)
        self.window = int(window)
        self.step = step
        self.maximum = maximum
        self.oscillation_fraction = oscillation_fraction
        self.n_samples = n_samples
        self.compare_windows = compare_windows
        self.reset()

    def reset(self):
        """Back to the initial damping, as for a fresh run."""
        self.damping = self.initial
        self._seen = -self.window  # a first window of warm-up, not counted
        self._changed = 0
        self._flag_changes = 0
        self._previous_changed = None
        self._since_change = 0

    def observe(self, n_changed):
        """Record one iteration; return the new damping if it was raised, else None."""
        self._seen += 1
        if self._seen > 0:
            self._changed += n_changed > 0
            self._flag_changes += int(n_changed)
        self._since_change = 0 if n_changed > 0 else self._since_change + 1
        if self._seen < self.window:
            return None
        oscillating = is_oscillation(
            self._seen, self._changed, self._flag_changes, n_samples=self.n_samples,
            n_previous_changed=self._previous_changed, fraction=self.oscillation_fraction,
        ) and self._since_change < max(1, self.window // 4)
        if self.compare_windows:
            self._previous_changed = self._changed
        self._seen = self._changed = self._flag_changes = 0
        if oscillating and self.damping < self.maximum:
            # Rounded so that the steps land on 0.55, 0.6, ... exactly.
            self.damping = round(min(self.damping + self.step, self.maximum), 10)
            return self.damping
        return None


class History:
    """Per-iteration record: exemplars, changes, net similarity, damping.

    The net similarity is asked of the state only in iterations where the
    exemplar set changed (or the similarities did: :meth:`invalidate`).
    """

    def __init__(self):
        self.columns = {"n_exemplars": [], "n_changed": [], "net_similarity": [], "damping": []}
        self._net_similarity = np.nan
        self._stale = True

    def invalidate(self):
        """The similarities changed (a new preference in a search)."""
        self._stale = True

    def record(self, state, n_exemplars, n_changed, damping):
        if n_changed > 0 or self._stale:
            self._net_similarity = state.net_similarity()
            self._stale = False
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


class Progress:
    """Prints iteration, exemplars and changes at most every ``interval`` s."""

    def __init__(self, enabled, n_samples, interval=1.0, clock=time.perf_counter):
        self.enabled = enabled
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last = self.started
        if enabled:
            print(f"[fastap] affinity propagation on {n_samples} samples", file=sys.stdout)

    def update(self, iteration, n_exemplars, n_changed):
        if not self.enabled:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            print(
                f"[fastap] iteration {iteration + 1}: {n_exemplars} exemplars, "
                f"{n_changed} changed, {now - self.started:.1f} s",
                file=sys.stdout,
            )


class Monitors:
    """What watches a run across its loops (one fit, or all steps of a
    search): adaptive damping, history, progress, the callback's count, the
    recent exemplar changes (for the non-convergence advice)."""

    # Iterations of exemplar changes kept for the advice (it reads the last
    # max(2 * convergence_iter, 30)).
    RECENT_CHANGES = 60

    def __init__(self, state, options, adaptive_damping=None, progress=True):
        if adaptive_damping is None and options.adaptive_damping:
            adaptive_damping = AdaptiveDamping(options.damping, n_samples=state.n_samples)
        self.adaptive_damping = adaptive_damping
        self.history = History() if options.record_history else None
        self.progress = Progress(options.verbose and progress, state.n_samples)
        self.iterations_before = 0
        self.started = time.perf_counter()
        self.recent_changes = []
        self.recent_length = max(self.RECENT_CHANGES, 2 * options.convergence_iter)


class LoopOutcome(NamedTuple):
    """How :func:`iterate_until_converged` ended."""

    n_iter: int
    converged: bool
    stopped: bool


def iterate_until_converged(state, options, monitors):
    """Iterate ``state`` until its exemplars settle, ``max_iter`` or a stop.

    scikit-learn's convergence test: the exemplar flags have been identical
    for the last ``convergence_iter`` iterations (checked from iteration
    ``convergence_iter`` on) and there is at least one exemplar. One call
    into the kernels per iteration, so Ctrl-C stops it within one.
    ``stopped`` whenever the callback returned true (also on the iteration
    that converged).
    """
    unchanged_run = 0
    converged = stopped = False
    iteration = -1
    callback, every = options.callback, options.callback_every
    for iteration in range(options.max_iter):
        damping = state.damping
        n_exemplars, n_changed = state.iterate()
        unchanged_run = unchanged_run + 1 if (iteration > 0 and n_changed == 0) else 1
        monitors.recent_changes.append(int(n_changed))
        del monitors.recent_changes[: -monitors.recent_length]
        if monitors.history is not None:
            monitors.history.record(state, n_exemplars, n_changed, damping)
        monitors.progress.update(iteration, n_exemplars, n_changed)
        if (iteration >= options.convergence_iter and unchanged_run >= options.convergence_iter
                and n_exemplars > 0):
            converged = True
        fit_iteration = monitors.iterations_before + iteration + 1
        if callback is not None and fit_iteration % every == 0:
            info = IterationInfo(fit_iteration, int(n_exemplars), int(n_changed), damping,
                                 time.perf_counter() - monitors.started)
            if callback(info):
                stopped = True
                break
        if converged:
            break
        if monitors.adaptive_damping is not None:
            raised = monitors.adaptive_damping.observe(n_changed)
            if raised is not None:
                state.set_damping(raised)
    monitors.iterations_before += iteration + 1
    return LoopOutcome(iteration + 1, converged, stopped)


# --------------------------------------------------------------------------
# A whole run.
# --------------------------------------------------------------------------


def run(state, options, adaptive_damping=None):
    """Affinity Propagation on ``state`` from its set-up to its clusters.

    Parameters
    ----------
    state : MessageState
        Constructed, not prepared.
    options : RunOptions
    adaptive_damping : AdaptiveDamping or None
        Continue an earlier controller (a warm start with damping="auto");
        None: a new one when ``options.adaptive_damping``.

    Returns
    -------
    RunResult
    """
    shortcut = equal_similarities_result(state, options)
    if shortcut is not None:
        return shortcut
    state.prepare()
    monitors = Monitors(state, options, adaptive_damping)
    loop = iterate_until_converged(state, options, monitors)
    return finish(state, options, monitors, loop.n_iter, loop.converged, loop.stopped)


def equal_similarities_result(state, options):
    """scikit-learn's shortcut when all similarities and preferences are
    equal (or there is one sample): arbitrary exemplars, no iteration."""
    preference_wins = state.equal_similarities()
    if preference_wins is None:
        return None
    warnings.warn(EQUAL_SIMILARITIES_MESSAGE)
    n = state.n_samples
    if preference_wins:
        centers, labels = np.arange(n), np.arange(n)
    else:
        centers, labels = np.array([0]), np.zeros(n, dtype=np.intp)
    confidence = None
    if options.keep_messages:
        # No messages: a single cluster is certain, N singletons unexplained.
        confidence = np.full(n, np.inf if centers.size == 1 else np.nan)
    history = History().as_arrays() if options.record_history else None
    return RunResult(centers, labels, 0, True, options.damping, history, None, confidence)


def finish(state, options, monitors, n_iter, converged, stopped, *, messages_match=True,
           announce=True):
    """The end of a run: messages kept (or freed), clusters assigned,
    scikit-learn's ConvergenceWarnings with fastap's advice.

    ``messages_match=False``: the state's exemplar flags are not the ones
    its messages imply (a search keeping an earlier step's exemplars), so
    the membership confidence is NaN. ``announce``: scikit-learn's verbose
    line (a search prints its steps instead).
    """
    if options.verbose and announce:
        print(f"Converged after {n_iter - 1} iterations." if converged else "Did not converge")
    flags = state.is_exemplar
    messages = confidence = None
    centers, labels = state.assign(flags)
    if options.keep_messages:
        messages = state.messages()
        confidence = (
            state.membership_confidence(centers, labels) if messages_match
            else np.full(state.n_samples, np.nan)
        )
    damping = state.last_damping
    state.release()
    advice = None
    if not converged:
        advice = not_converged_advice(
            monitors.recent_changes, n_iter=n_iter, max_iter=options.max_iter,
            damping=damping, adaptive=monitors.adaptive_damping is not None,
            convergence_iter=options.convergence_iter, n_exemplars=int(flags.sum()),
            n_samples=state.n_samples,
        )
    warn_if_not_converged(centers, converged, advice)
    if options.verbose and advice:
        print(f"[fastap] {advice}")
    history = monitors.history.as_arrays() if monitors.history is not None else None
    return RunResult(centers, labels, n_iter, converged, damping, history, messages,
                     confidence, stopped, advice=advice or None)


def warn_if_not_converged(cluster_centers_indices, converged, advice=None):
    """scikit-learn's two ConvergenceWarnings (its text first), with fastap's
    remedies appended when given."""
    suffix = f" {advice}" if advice else ""
    if cluster_centers_indices.size == 0:
        warnings.warn(
            "Affinity propagation did not converge and this model will not have any "
            "cluster centers." + suffix,
            ConvergenceWarning,
        )
    elif not converged:
        warnings.warn(
            "Affinity propagation did not converge, this model may return degenerate "
            "cluster centers and labels." + suffix,
            ConvergenceWarning,
        )
