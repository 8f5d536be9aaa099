"""What to do when Affinity Propagation does not converge.

scikit-learn's ``ConvergenceWarning`` says that a fit did not converge, not
why nor what to change. The exemplar changes per iteration tell the usual
cases apart:

* an **oscillation**: the exemplar set keeps flipping until the last
  iteration (AP hesitates between near-equal candidate exemplars), either
  in most iterations or in periodic bursts that flip the flags of many
  samples at once (at a low preference all samples can turn exemplar and
  back every few iterations); more damping removes it (Frey & Dueck, 2007;
  Wang et al., 2007);
* a **slow drift**: changes have become rare and few and keep becoming
  fewer, the run was settling and ran out of iterations; more iterations
  finish it (a few samples that flip steadily are an oscillation);
* **too few iterations**: ``max_iter`` is not above ``convergence_iter``,
  so no run can converge.

These functions are pure (no fit, no warning): the run loop, its adaptive
damping (``_run.AdaptiveDamping`` asks :func:`is_oscillation` too),
``verbose`` output and the command line share them, each with its own
spelling of the options (Python keywords or command-line flags).
"""

from typing import NamedTuple

import numpy as np

#: Highest damping ``damping="auto"`` reaches (its ``AdaptiveDamping.maximum``).
MAX_AUTO_DAMPING = 0.95

#: At least this share of the recent iterations changed the exemplars:
#: an oscillation (the same threshold as ``damping="auto"``'s).
OSCILLATION_FRACTION = 0.5

#: Flag changes per sample over a window that make an oscillation however
#: few iterations carry them: on average every sample turned exemplar or
#: back once. A settling run changes a few flags now and then; the periodic
#: mass flipping seen at low preferences changes 4 to 10 per sample in 30
#: iterations (400 blobs at ``preference_range(X).low``: 8).
MASS_FLIPS_PER_SAMPLE = 1.0

#: Changed iterations in a window that, when at least half as many as in
#: the window before, make a steady flicker (a few samples turning exemplar and back
#: for ever: seen on k-NN graphs) rather than a drift that dies down.
MIN_FLICKER = 3

#: Iterations suggested once the damping is high: each iteration then
#: moves the messages less, so a damped run needs several hundred.
DAMPED_MAX_ITER = 1000

#: scikit-learn's default ``max_iter``: what a run that had too few
#: iterations to converge is pointed to.
DEFAULT_MAX_ITER = 200


def recent_window(convergence_iter):
    """Iterations the diagnosis and ``damping="auto"`` look at together."""
    return max(2 * int(convergence_iter), 30)


def is_oscillation(n_iterations, n_changed_iterations, n_flag_changes, *, n_samples=None,
                   n_previous_changed=None, fraction=OSCILLATION_FRACTION):
    """Whether a window of iterations is an oscillation.

    Parameters
    ----------
    n_iterations : int
        Iterations in the window.
    n_changed_iterations : int
        Of those, the iterations in which the exemplar set changed.
    n_flag_changes : int
        Exemplar flags changed over the window, all iterations together.
    n_samples : int, default=None
        Samples of the problem; None: the mass-flipping test is skipped.
    n_previous_changed : int, default=None
        Changed iterations in the window before (as long); None: the
        test for a flicker that does not die down is skipped.
    fraction : float, default=OSCILLATION_FRACTION

    Returns
    -------
    bool
        True when the exemplars changed in at least ``fraction`` of the
        iterations; or (periodic mass flipping) the flags changed at least
        ``MASS_FLIPS_PER_SAMPLE * n_samples`` times; or (a steady flicker)
        they changed in at least ``MIN_FLICKER`` iterations and in at least
        half as many as in the window before: a run that settles changes
        less and less (the rule leans to oscillation, whose remedy, more
        damping with more iterations, also finishes a drift).
    """
    if n_iterations <= 0:
        return False
    if n_changed_iterations >= fraction * n_iterations:
        return True
    if n_samples is not None and n_flag_changes >= MASS_FLIPS_PER_SAMPLE * n_samples:
        return True
    return n_previous_changed is not None and (
        n_changed_iterations >= max(MIN_FLICKER, n_previous_changed / 2)
    )


class Diagnosis(NamedTuple):
    """How a run that did not converge ended.

    Attributes
    ----------
    kind : {'oscillation', 'slow_drift', 'too_few_iterations', 'stopped', \
'no_iterations'}
        'stopped': the run ended before ``max_iter`` (a callback, or an
        interruption) so nothing can be said of its course;
        'too_few_iterations': ``max_iter <= convergence_iter``, which no run
        converges in.
    n_recent : int
        Iterations inspected at the end of the run.
    n_recent_changed : int
        Of those, the iterations in which the exemplar set changed.
    n_unchanged_at_end : int
        Iterations without a change at the very end of the run.
    n_recent_flag_changes : int
        Exemplar flags changed over the inspected iterations.
    """

    kind: str
    n_recent: int
    n_recent_changed: int
    n_unchanged_at_end: int
    n_recent_flag_changes: int = 0


def diagnose_non_convergence(n_changed_per_iteration, *, n_iter, max_iter, convergence_iter=15,
                             n_samples=None):
    """Classify a run that did not converge by its exemplar changes.

    Parameters
    ----------
    n_changed_per_iteration : sequence of int
        Samples whose exemplar flag changed, one entry per iteration, in
        order, ending with the last iteration (``history_["n_changed"]``,
        or ``IterationInfo.n_changed``; the last ``2 * recent_window``
        entries suffice).
    n_iter : int
        Iterations the run made.
    max_iter : int
        The iteration limit the run had.
    convergence_iter : int, default=15
        Iterations without a change that the run needed to converge.
    n_samples : int, default=None
        Samples of the problem: with it, periodic bursts that flip many
        flags count as an oscillation (see :func:`is_oscillation`).

    Returns
    -------
    Diagnosis
        The recent window is the last ``max(2 * convergence_iter, 30)``
        iterations (fewer if the run was shorter). It is an oscillation by
        :func:`is_oscillation` (against the window before it when the
        record holds it); the mass-flipping test applies once the window
        lies past the first ``window`` iterations (the early transient of
        every run flips many flags), as ``damping="auto"``'s does.
    """
    changes = np.asarray(n_changed_per_iteration, dtype=np.int64).ravel()
    if changes.size == 0:
        return Diagnosis("no_iterations", 0, 0, 0)
    changed = changes > 0
    unchanged_at_end = int(np.argmax(changed[::-1])) if changed.any() else int(changes.size)
    full_window = recent_window(convergence_iter)
    window = min(changes.size, full_window)
    recent_changed = int(changed[-window:].sum())
    flag_changes = int(changes[-window:].sum())
    past_transient = n_iter >= 2 * full_window
    previous_changed = None
    if changes.size >= 2 * full_window:
        previous_changed = int(changed[-2 * full_window : -full_window].sum())
    if n_iter < max_iter:
        kind = "stopped"
    elif max_iter <= convergence_iter:
        kind = "too_few_iterations"
    elif is_oscillation(window, recent_changed, flag_changes,
                        n_samples=n_samples if past_transient else None,
                        n_previous_changed=previous_changed):
        kind = "oscillation"
    else:
        kind = "slow_drift"
    return Diagnosis(kind, int(window), recent_changed, unchanged_at_end, flag_changes)


_PYTHON = {
    "damping": 'damping={}',
    "max_iter": "max_iter={}",
    "n_clusters": "n_clusters=K",
    "preference_quantile": "preference_quantile={}",
}
_CLI = {
    "damping": "--damping {}",
    "max_iter": "--max-iter {}",
    "n_clusters": "--n-clusters K",
    "preference_quantile": "--preference-quantile {}",
}


def higher_damping(damping):
    """The fixed damping to suggest above ``damping`` (always higher than
    it): 0.9, or 0.95 from 0.9 on; None at 0.95 and above."""
    if damping >= MAX_AUTO_DAMPING:
        return None
    return 0.9 if damping < 0.9 else MAX_AUTO_DAMPING


def more_iterations(max_iter, convergence_iter, *, damped=False):
    """A ``max_iter`` that can finish what ``max_iter`` did not: at least
    twice as many, and room for ``convergence_iter`` unchanged iterations
    twice over; ``damped``: at least ``DAMPED_MAX_ITER``."""
    suggested = max(2 * max_iter, max_iter + 2 * convergence_iter)
    return max(suggested, DAMPED_MAX_ITER) if damped else suggested


def not_converged_advice(
    n_changed_per_iteration,
    *,
    n_iter,
    max_iter,
    damping,
    adaptive,
    convergence_iter=15,
    n_exemplars=None,
    n_samples=None,
    style="python",
):
    """The remedies for a fit that did not converge, as sentences.

    Every setting suggested can converge: a ``max_iter`` above the
    iterations done plus ``convergence_iter``, a damping above the one the
    run ended with.

    Parameters
    ----------
    n_changed_per_iteration : sequence of int
        Samples whose exemplar flag changed, one entry per iteration.
    n_iter : int
        Iterations the run made.
    max_iter : int
        The iteration limit the run had.
    damping : float
        The damping of the last iteration (``damping_``).
    adaptive : bool
        Whether the run used ``damping="auto"``.
    convergence_iter : int, default=15
        Iterations without a change that the run needed to converge.
    n_exemplars : int, default=None
        Exemplars at the end of the run, if known: with none, a run that
        stopped changing has not started yet (a high damping slows the
        start), which more iterations fix.
    n_samples : int, default=None
        Samples of the problem, if known: then periodic mass flipping is
        recognised as an oscillation (see :func:`diagnose_non_convergence`).
    style : {'python', 'cli'}, default='python'
        Spell the options as Python keywords (``damping="auto"``) or as
        ``fastap fit`` flags (``--damping auto``).

    Returns
    -------
    str
        What happened and what to change, ending with the options that
        choose the number of clusters; empty when there were no iterations.
    """
    if style not in ("python", "cli"):
        raise ValueError(f"style must be 'python' or 'cli', got {style!r}")
    spell = _PYTHON if style == "python" else _CLI
    diagnosis = diagnose_non_convergence(
        n_changed_per_iteration, n_iter=n_iter, max_iter=max_iter,
        convergence_iter=convergence_iter, n_samples=n_samples,
    )
    if diagnosis.kind == "no_iterations":
        return ""
    advice = _remedy(diagnosis, spell, style, n_iter=n_iter, max_iter=max_iter, damping=damping,
                     adaptive=adaptive, convergence_iter=convergence_iter,
                     n_exemplars=n_exemplars, n_samples=n_samples)
    quantile = spell["preference_quantile"].format("Q")
    return (
        f"{advice} If the number of clusters is not what you want, set "
        f"{spell['n_clusters']} or {quantile} (lower Q: fewer clusters)."
    )


def _remedy(diagnosis, spell, style, *, n_iter, max_iter, damping, adaptive, convergence_iter,
            n_exemplars, n_samples):
    """The first sentences of :func:`not_converged_advice`: what happened
    and what to change."""
    auto = spell["damping"].format('"auto"' if style == "python" else "auto")
    recent = (
        f"the exemplars changed in {diagnosis.n_recent_changed} of the last "
        f"{diagnosis.n_recent} iterations"
    )
    if diagnosis.kind == "oscillation" and (
        diagnosis.n_recent_changed < OSCILLATION_FRACTION * diagnosis.n_recent
    ):
        recent += (
            f", in bursts that changed {diagnosis.n_recent_flag_changes} exemplar flags of "
            f"{n_samples} samples (periodic mass flipping)"
        )
    damped = spell["max_iter"].format(more_iterations(max_iter, convergence_iter, damped=True))
    higher = higher_damping(damping)
    if diagnosis.kind == "stopped":
        return (
            f"The fit was stopped after {n_iter} of {max_iter} iterations (by its callback "
            f"or an interruption) before it converged; {recent}."
        )
    if diagnosis.kind == "too_few_iterations":
        enough = max(DEFAULT_MAX_ITER, more_iterations(max_iter, convergence_iter))
        return (
            f"A limit of {max_iter} iterations is too few to converge: convergence needs "
            f"more than {convergence_iter} iterations ({convergence_iter} without a change at "
            f"the end). Allow more: {spell['max_iter'].format(enough)}."
        )
    if n_exemplars == 0 and diagnosis.n_recent_changed == 0:
        return (
            f"No exemplar emerged in {n_iter} iterations (at damping {damping:g} the "
            f"messages grow slowly): give it more iterations: {damped}."
        )
    if diagnosis.kind == "slow_drift":
        return (
            f"Slow drift: {recent}, and convergence needs {convergence_iter} iterations "
            f"without a change. Give it more iterations: "
            f"{spell['max_iter'].format(more_iterations(max_iter, convergence_iter))}."
        )
    if higher is None:
        return (
            f"Oscillation: {recent}, even at damping {damping:g}. AP keeps hesitating "
            f"between near-equal exemplars: a preference that gives fewer clusters "
            f"usually settles it ({spell['preference_quantile'].format(0.1)} or "
            f"{spell['n_clusters']}), or allow {damped}."
        )
    fixed = spell["damping"].format(f"{higher:g}")
    if adaptive:
        return (
            f"Oscillation: {recent}; {auto} ended at damping {damping:g} and can raise it "
            f"further (up to {MAX_AUTO_DAMPING:g}) with more iterations: {damped}; or start "
            f"higher: {fixed}, with {damped}."
        )
    return (
        f"Oscillation: {recent}. Damp the updates: {auto} (raises the damping "
        f"while the exemplars flip) or {fixed}, with {damped}."
    )
