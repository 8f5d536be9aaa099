"""What to do when Affinity Propagation does not converge.

scikit-learn's ``ConvergenceWarning`` says that a fit did not converge, not
why nor what to change. The exemplar changes per iteration tell the two
usual cases apart:

* an **oscillation**: the exemplar set keeps flipping until the last
  iteration (AP hesitates between near-equal candidate exemplars); more
  damping removes it (Frey & Dueck, 2007; Wang et al., 2007);
* a **slow drift**: changes have become rare, the run was settling and
  ran out of iterations; more iterations finish it.

These functions are pure (no fit, no warning): the run loop, ``verbose``
output and the command line share them, each with its own spelling of the
options (Python keywords or command-line flags).
"""

from typing import NamedTuple

import numpy as np

#: Highest damping ``damping="auto"`` reaches (its ``AdaptiveDamping.maximum``).
MAX_AUTO_DAMPING = 0.95

#: At least this share of the recent iterations changed the exemplars:
#: an oscillation (the same threshold as ``damping="auto"``'s).
OSCILLATION_FRACTION = 0.5

#: Iterations suggested once the damping is high: each iteration then
#: moves the messages less, so a damped run needs several hundred.
DAMPED_MAX_ITER = 1000


class Diagnosis(NamedTuple):
    """How a run that did not converge ended.

    Attributes
    ----------
    kind : {'oscillation', 'slow_drift', 'stopped', 'no_iterations'}
        'stopped': the run ended before ``max_iter`` (a callback, or an
        interruption) so nothing can be said of its course.
    n_recent : int
        Iterations inspected at the end of the run.
    n_recent_changed : int
        Of those, the iterations in which the exemplar set changed.
    n_unchanged_at_end : int
        Iterations without a change at the very end of the run.
    """

    kind: str
    n_recent: int
    n_recent_changed: int
    n_unchanged_at_end: int


def diagnose_non_convergence(n_changed_per_iteration, *, n_iter, max_iter, convergence_iter=15):
    """Classify a run that did not converge by its exemplar changes.

    Parameters
    ----------
    n_changed_per_iteration : sequence of int
        Samples whose exemplar flag changed, one entry per iteration, in
        order (``history_["n_changed"]``, or ``IterationInfo.n_changed``).
    n_iter : int
        Iterations the run made.
    max_iter : int
        The iteration limit the run had.
    convergence_iter : int, default=15
        Iterations without a change that the run needed to converge.

    Returns
    -------
    Diagnosis
        The recent window is the last ``max(2 * convergence_iter, 30)``
        iterations (fewer if the run was shorter); it is an oscillation when
        at least half of them changed the exemplars.
    """
    changes = np.asarray(n_changed_per_iteration, dtype=np.int64).ravel()
    if changes.size == 0:
        return Diagnosis("no_iterations", 0, 0, 0)
    changed = changes > 0
    unchanged_at_end = int(np.argmax(changed[::-1])) if changed.any() else int(changes.size)
    window = min(changes.size, max(2 * int(convergence_iter), 30))
    recent_changed = int(changed[-window:].sum())
    if n_iter < max_iter:
        kind = "stopped"
    elif recent_changed >= OSCILLATION_FRACTION * window:
        kind = "oscillation"
    else:
        kind = "slow_drift"
    return Diagnosis(kind, int(window), recent_changed, unchanged_at_end)


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


def not_converged_advice(
    n_changed_per_iteration,
    *,
    n_iter,
    max_iter,
    damping,
    adaptive,
    convergence_iter=15,
    n_exemplars=None,
    style="python",
):
    """The remedies for a fit that did not converge, as sentences.

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
    auto = spell["damping"].format('"auto"' if style == "python" else "auto")

    diagnosis = diagnose_non_convergence(
        n_changed_per_iteration, n_iter=n_iter, max_iter=max_iter,
        convergence_iter=convergence_iter,
    )
    if diagnosis.kind == "no_iterations":
        return ""
    recent = (
        f"the exemplars changed in {diagnosis.n_recent_changed} of the last "
        f"{diagnosis.n_recent} iterations"
    )
    more_iterations = spell["max_iter"].format(max(DAMPED_MAX_ITER, 2 * max_iter))
    if diagnosis.kind == "stopped":
        advice = (
            f"The fit was stopped after {n_iter} of {max_iter} iterations (by its callback "
            f"or an interruption) before it converged; {recent}."
        )
    elif n_exemplars == 0 and diagnosis.n_recent_changed == 0:
        advice = (
            f"No exemplar emerged in {n_iter} iterations (at damping {damping:g} the "
            f"messages grow slowly): give it more iterations: {more_iterations}."
        )
    elif diagnosis.kind == "slow_drift":
        advice = (
            f"Slow drift: {recent}, and convergence needs {convergence_iter} iterations "
            f"without a change. Give it more iterations: "
            f"{spell['max_iter'].format(2 * max_iter)}."
        )
    elif damping >= MAX_AUTO_DAMPING:
        advice = (
            f"Oscillation: {recent}, even at damping {damping:g}. AP keeps hesitating "
            f"between near-equal exemplars: a preference that gives fewer clusters "
            f"usually settles it ({spell['preference_quantile'].format(0.1)} or "
            f"{spell['n_clusters']}), or allow {more_iterations}."
        )
    elif adaptive:
        advice = (
            f"Oscillation: {recent}; {auto} had raised the damping to {damping:g} "
            f"and can raise it further (up to {MAX_AUTO_DAMPING:g}) with more "
            f"iterations: {more_iterations}."
        )
    else:
        higher = max(0.9, round(damping + 0.05, 2)) if damping < 0.9 else MAX_AUTO_DAMPING
        advice = (
            f"Oscillation: {recent}. Damp the updates: {auto} (raises the damping "
            f"while the exemplars flip) or {spell['damping'].format(f'{higher:g}')}, "
            f"with {more_iterations}."
        )
    quantile = spell["preference_quantile"].format("Q")
    return (
        f"{advice} If the number of clusters is not what you want, set "
        f"{spell['n_clusters']} or {quantile} (lower Q: fewer clusters)."
    )
