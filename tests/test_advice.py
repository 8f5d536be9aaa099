"""What to do when AP does not converge: the diagnosis and the remedies."""

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from fastap import AffinityPropagation, _run, preference_range
from fastap._advice import (
    diagnose_non_convergence,
    higher_damping,
    more_iterations,
    not_converged_advice,
)

CLUSTER_COUNT = (
    "If the number of clusters is not what you want, set n_clusters=K or "
    "preference_quantile=Q (lower Q: fewer clusters)."
)


def oscillating(n_iter=200, period=2):
    """Exemplar flags flipping every ``period`` iterations to the end."""
    changes = np.zeros(n_iter, dtype=int)
    changes[::period] = 3
    changes[:20] = 40  # the early transient every run has
    return changes


def drifting(n_iter=200):
    """Changes that become rare: every 10 iterations, then every 20 and 30."""
    changes = np.zeros(n_iter, dtype=int)
    changes[:60] = 10
    changes[60:140:10] = 1
    changes[140:170:20] = 1
    changes[170::10] = 0
    changes[[180, 195]] = 1
    return changes


def mass_flipping(n_iter=200, n_samples=400, period=7):
    """All samples turn exemplar and back every ``period`` iterations (two
    changed iterations a period): the low-preference oscillation."""
    changes = np.zeros(n_iter, dtype=int)
    changes[1::period] = n_samples
    changes[3::period] = n_samples
    return changes


def flickering(n_iter=200):
    """A few samples flipping in a third of the iterations, for ever."""
    changes = np.zeros(n_iter, dtype=int)
    changes[:40] = 20
    changes[40::3] = 2
    return changes


# --------------------------------------------------------------------------
# The diagnosis.
# --------------------------------------------------------------------------


def test_oscillation_is_changes_in_at_least_half_of_the_recent_iterations():
    diagnosis = diagnose_non_convergence(oscillating(), n_iter=200, max_iter=200)
    assert diagnosis.kind == "oscillation"
    assert (diagnosis.n_recent, diagnosis.n_recent_changed) == (30, 15)
    assert diagnosis.n_unchanged_at_end == 1
    # One change fewer in the window: no longer an oscillation by this test
    # (the record holds no earlier window to compare with)...
    changes = oscillating()
    changes[-2] = 0
    assert diagnose_non_convergence(changes[-30:], n_iter=200, max_iter=200).kind == (
        "slow_drift"
    )
    # ... but one by the steady flicker's: as many changes as the window before.
    assert diagnose_non_convergence(changes, n_iter=200, max_iter=200).kind == "oscillation"


def test_slow_drift_is_rare_changes_late():
    diagnosis = diagnose_non_convergence(drifting(), n_iter=200, max_iter=200)
    assert diagnosis.kind == "slow_drift"
    assert diagnosis.n_recent_changed == 2  # iterations 180 and 195
    assert diagnosis.n_unchanged_at_end == 4


def test_periodic_mass_flipping_is_an_oscillation():
    # The case: 9 changed iterations of 30, each flipping all 400
    # samples. Counted by iterations alone it looked like a slow drift.
    changes = mass_flipping()
    diagnosis = diagnose_non_convergence(changes, n_iter=200, max_iter=200, n_samples=400)
    assert diagnosis.kind == "oscillation"
    assert diagnosis.n_recent_changed < 15
    assert diagnosis.n_recent_flag_changes == 400 * diagnosis.n_recent_changed
    # Fewer flag changes than samples over the window: not mass flipping.
    assert diagnose_non_convergence(changes // 400, n_iter=200, max_iter=200,
                                    n_samples=400).kind == "oscillation"  # steady flicker
    assert diagnose_non_convergence(drifting() * 30, n_iter=200, max_iter=200,
                                    n_samples=400).kind == "slow_drift"
    # The early transient flips many flags in every run: not judged by mass.
    assert diagnose_non_convergence(changes[:59], n_iter=59, max_iter=59,
                                    n_samples=400).kind == "slow_drift"


def test_a_steady_flicker_is_an_oscillation():
    changes = flickering()
    assert diagnose_non_convergence(changes, n_iter=200, max_iter=200).kind == "oscillation"
    # The same last window after a busier one: dying down, a drift.
    dying = changes.copy()
    dying[140:170] = 1
    assert diagnose_non_convergence(dying, n_iter=200, max_iter=200).kind == "slow_drift"


def test_too_few_iterations_to_converge():
    # The issue: max_iter=5 got "max_iter=10", below the 15 unchanged
    # iterations convergence needs.
    for max_iter in (1, 5, 15):
        changes = np.full(max_iter, 3)
        diagnosis = diagnose_non_convergence(changes, n_iter=max_iter, max_iter=max_iter)
        assert diagnosis.kind == "too_few_iterations"
        text = not_converged_advice(changes, n_iter=max_iter, max_iter=max_iter, damping=0.5,
                                    adaptive=False)
        assert text.startswith(f"A limit of {max_iter} iterations is too few to converge: convergence "
                               "needs more than 15 iterations (15 without a change at the end). "
                               "Allow more: max_iter=200.")


def test_the_recent_window_follows_convergence_iter_and_the_run_length():
    changes = np.ones(100, dtype=int)
    assert diagnose_non_convergence(changes, n_iter=100, max_iter=100).n_recent == 30
    assert (
        diagnose_non_convergence(changes, n_iter=100, max_iter=100, convergence_iter=40).n_recent
        == 80
    )
    assert diagnose_non_convergence(changes[:12], n_iter=12, max_iter=12).n_recent == 12


def test_a_run_ended_before_max_iter_was_stopped():
    diagnosis = diagnose_non_convergence(oscillating(50), n_iter=50, max_iter=200)
    assert diagnosis.kind == "stopped"


def test_no_iterations():
    assert diagnose_non_convergence([], n_iter=0, max_iter=200).kind == "no_iterations"
    assert not_converged_advice([], n_iter=0, max_iter=200, damping=0.5, adaptive=False) == ""


# --------------------------------------------------------------------------
# The remedies.
# --------------------------------------------------------------------------


def test_oscillation_at_fixed_damping_suggests_auto_or_more_damping():
    text = not_converged_advice(
        oscillating(), n_iter=200, max_iter=200, damping=0.5, adaptive=False
    )
    assert text == (
        "Oscillation: the exemplars changed in 15 of the last 30 iterations. Damp the updates: "
        'damping="auto" (raises the damping while the exemplars flip) or damping=0.9, with '
        "max_iter=1000. " + CLUSTER_COUNT
    )


def test_oscillation_at_high_fixed_damping_suggests_the_next_step():
    text = not_converged_advice(
        oscillating(), n_iter=200, max_iter=200, damping=0.9, adaptive=False
    )
    assert "damping=0.95," in text and 'damping="auto"' in text


def test_oscillation_with_auto_damping_below_its_maximum_needs_iterations():
    text = not_converged_advice(
        oscillating(), n_iter=400, max_iter=400, damping=0.7, adaptive=True
    )
    assert text.startswith(
        'Oscillation: the exemplars changed in 15 of the last 30 iterations; damping="auto" ended '
        "at damping 0.7 and can raise it further (up to 0.95) with more iterations: "
        "max_iter=1000; or start higher: damping=0.9, with max_iter=1000."
    )


def test_mass_flipping_says_so():
    text = not_converged_advice(mass_flipping(), n_iter=200, max_iter=200, damping=0.5,
                                adaptive=False, n_samples=400)
    assert text.startswith(
        "Oscillation: the exemplars changed in 9 of the last 30 iterations, in bursts that "
        "changed 3600 exemplar flags of 400 samples (periodic mass flipping). Damp the updates: "
        'damping="auto" (raises the damping while the exemplars flip) or damping=0.9, with '
        "max_iter=1000."
    )


def test_no_suggestion_that_cannot_converge():
    """Every max_iter suggested leaves room for convergence_iter unchanged
    iterations after those done; every damping suggested is higher."""
    for convergence_iter in (1, 15, 50):
        for max_iter in (1, 2, 5, 15, 16, 29, 30, 60, 200, 999, 1000, 5000):
            for damped in (False, True):
                assert more_iterations(max_iter, convergence_iter, damped=damped) >= (
                    max_iter + 2 * convergence_iter
                )
    for damping in np.linspace(0.5, 0.999, 200):
        higher = higher_damping(damping)
        assert higher is None if damping >= 0.95 else damping < higher <= 0.95
    patterns = {"oscillating": oscillating(), "drifting": drifting(),
                "mass": mass_flipping(), "flicker": flickering()}
    for name, changes in patterns.items():
        for max_iter in (5, 20, 60, 200):
            for damping in (0.5, 0.85, 0.9, 0.93):
                for adaptive in (False, True):
                    text = not_converged_advice(
                        changes[:max_iter], n_iter=max_iter, max_iter=max_iter,
                        damping=damping, adaptive=adaptive, n_samples=400,
                    )
                    suggested = suggested_parameters(text)
                    assert all(m >= max_iter + 30 for m in suggested.get("max_iter", [])), text
                    assert all(d == "auto" or d > damping for d in suggested.get("damping", []))


def test_oscillation_at_the_highest_damping_points_at_the_preference():
    for adaptive in (True, False):
        text = not_converged_advice(
            oscillating(), n_iter=1000, max_iter=1000, damping=0.95, adaptive=adaptive
        )
        assert text.startswith("Oscillation: the exemplars changed in 15 of the last 30 "
                               "iterations, even at damping 0.95.")
        assert "preference_quantile=0.1 or n_clusters=K" in text
        assert "max_iter=2000" in text


def test_slow_drift_suggests_more_iterations():
    text = not_converged_advice(drifting(), n_iter=200, max_iter=200, damping=0.5, adaptive=False)
    assert text == (
        "Slow drift: the exemplars changed in 2 of the last 30 iterations, and convergence needs "
        "15 iterations without a change. Give it more iterations: max_iter=400. " + CLUSTER_COUNT
    )


def test_no_exemplar_yet_suggests_more_iterations():
    text = not_converged_advice(
        np.zeros(60, dtype=int), n_iter=60, max_iter=60, damping=0.95, adaptive=False,
        n_exemplars=0,
    )
    assert text.startswith("No exemplar emerged in 60 iterations (at damping 0.95 the messages "
                           "grow slowly): give it more iterations: max_iter=1000.")


def test_stopped_run_says_so():
    text = not_converged_advice(
        oscillating(50), n_iter=50, max_iter=200, damping=0.5, adaptive=False
    )
    assert text.startswith("The fit was stopped after 50 of 200 iterations")


def test_command_line_spelling():
    text = not_converged_advice(
        oscillating(), n_iter=200, max_iter=200, damping=0.5, adaptive=False, style="cli"
    )
    assert "--damping auto" in text and "--damping 0.9" in text and "--max-iter 1000" in text
    assert "--n-clusters K or --preference-quantile Q" in text
    assert "=" not in text
    with pytest.raises(ValueError, match="style must be 'python' or 'cli'"):
        not_converged_advice([1], n_iter=1, max_iter=1, damping=0.5, adaptive=False, style="r")


# --------------------------------------------------------------------------
# On real fits: the diagnosis holds and the remedy works.
# --------------------------------------------------------------------------


def suggested_parameters(text):
    """The keyword=value pairs the advice names, as estimator parameters."""
    found = {}
    for name, value in re.findall(r"(damping|max_iter)=(\"auto\"|[0-9]+(?:\.[0-9]+)?)", text):
        found.setdefault(name, []).append(
            "auto" if value == '"auto"' else (int(value) if name == "max_iter" else float(value))
        )
    return found


def test_the_remedy_for_a_real_oscillation_converges():
    # 50 overlapping blobs on which damping 0.5 never settles.
    X, _ = make_blobs(
        n_samples=1000, n_features=2, centers=50, cluster_std=1.0, center_box=(-20, 20),
        random_state=5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failed = AffinityPropagation(random_state=0, record_history=True).fit(X)
    assert not failed.converged_
    changes = failed.history_["n_changed"]
    assert diagnose_non_convergence(changes, n_iter=failed.n_iter_, max_iter=200).kind == (
        "oscillation"
    )
    text = not_converged_advice(
        changes, n_iter=failed.n_iter_, max_iter=200, damping=failed.damping_, adaptive=False
    )
    suggested = suggested_parameters(text)
    assert suggested["damping"] == ["auto", 0.9] and suggested["max_iter"] == [1000]
    for damping in suggested["damping"]:
        fixed = AffinityPropagation(
            random_state=0, damping=damping, max_iter=suggested["max_iter"][0]
        ).fit(X)
        assert fixed.converged_, damping


def test_the_remedy_for_a_real_slow_start_converges():
    X, _ = make_blobs(n_samples=300, centers=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failed = AffinityPropagation(
            random_state=0, damping=0.95, max_iter=60, record_history=True
        ).fit(X)
    assert not failed.converged_ and failed.cluster_centers_indices_.size == 0
    text = not_converged_advice(
        failed.history_["n_changed"], n_iter=failed.n_iter_, max_iter=60,
        damping=failed.damping_, adaptive=False, n_exemplars=0,
    )
    assert text.startswith("No exemplar emerged")
    max_iter = suggested_parameters(text)["max_iter"][0]
    fixed = AffinityPropagation(random_state=0, damping=0.95, max_iter=max_iter).fit(X)
    assert fixed.converged_


def advice_of(**parameters):
    """Fit the model; the advice its ConvergenceWarning carries (None when
    it converged)."""
    from sklearn.exceptions import ConvergenceWarning

    X = parameters.pop("X")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = AffinityPropagation(random_state=0, **parameters).fit(X)
    texts = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert model.converged_ == (not texts)
    # scikit-learn's sentence first, then fastap's advice.
    return re.sub(r"^Affinity propagation did not converge[^.]*\. ", "", texts[0]) if texts else None


def converges(X, **parameters):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning either
        return AffinityPropagation(random_state=0, **parameters).fit(X).converged_


def follows(X, text, **parameters):
    """Every suggested damping with every suggested max_iter converges."""
    suggested = suggested_parameters(text.split("If the number of clusters")[0])
    for damping in suggested.get("damping", [parameters.pop("damping", 0.5)]):
        for max_iter in suggested.get("max_iter", [parameters.get("max_iter", 200)]):
            options = {**parameters, "damping": damping, "max_iter": max_iter}
            assert converges(X, **options), (options, text)
    return suggested


def flipping_blobs():
    """The issue's problem: 400 samples that all turn exemplar and back
    every few iterations at the low end of the preference range."""
    X, _ = make_blobs(n_samples=400, centers=4, random_state=0)
    return X


@pytest.mark.parametrize("where", ["low", "midpoint"])
def test_the_remedies_for_periodic_mass_flipping_converge(where):
    X = flipping_blobs()
    bounds = preference_range(X)
    preference = bounds.low if where == "low" else (bounds.low + bounds.high) / 2
    text = advice_of(X=X, preference=preference)
    assert text.startswith("Oscillation: ") and "periodic mass flipping" in text
    suggested = follows(X, text, preference=preference)
    assert suggested == {"damping": ["auto", 0.9], "max_iter": [1000]}


def test_auto_damping_raises_on_periodic_mass_flipping():
    changes = mass_flipping(n_iter=90, n_samples=400)
    blind = _run.AdaptiveDamping(0.5)
    seeing = _run.AdaptiveDamping(0.5, n_samples=400)
    # Without the samples' count: only once the second window looks like
    # the first (iteration 90); with it, from the first inspection on.
    assert [r for r in (blind.observe(c) for c in changes) if r] == [0.55]
    raised = [seeing.observe(c) for c in changes]
    assert [r for r in raised if r is not None] == [0.55, 0.6]  # at iterations 60 and 90
    # A steady flicker of a few samples: at every inspection (60: the
    # transient's changes in most iterations; 90 and 120: as many as before).
    flicker = _run.AdaptiveDamping(0.5)
    assert [r for r in (flicker.observe(c) for c in flickering(120)) if r] == [0.55, 0.6, 0.65]
    # On the problem: damping="auto" ran at 0.5 to the end; now it rises.
    X = flipping_blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(random_state=0, damping="auto",
                                    preference=preference_range(X).low).fit(X)
    assert model.damping_ > 0.5


def test_the_remedies_after_auto_damping_converge():
    X = flipping_blobs()
    preference = preference_range(X).low
    text = advice_of(X=X, preference=preference, damping="auto")
    assert 'damping="auto" ended at damping' in text
    assert follows(X, text, preference=preference) == {
        "damping": ["auto", 0.9], "max_iter": [1000, 1000]
    }


def test_the_remedy_for_too_few_iterations_converges():
    X = flipping_blobs()
    text = advice_of(X=X, max_iter=5)
    assert text.startswith("A limit of 5 iterations is too few to converge")
    assert follows(X, text) == {"max_iter": [200]}


def test_the_remedy_for_a_real_slow_drift_converges():
    # Converges at iteration 41; stopped at 38 it was settling.
    X, _ = make_blobs(n_samples=200, centers=5, cluster_std=2.0, random_state=2)
    text = advice_of(X=X, max_iter=38)
    assert text.startswith("Slow drift: ")
    assert follows(X, text, max_iter=38) == {"max_iter": [76]}


def test_nearest_neighbors_warning_carries_the_advice():
    # With the default fragment merging the first level's advice reaches the
    # warning (it was scikit-learn's bare text).
    X = blobs_for_neighbors()
    text = advice_of(X=X, affinity="nearest_neighbors")
    assert text.startswith("Oscillation: ")
    follows(X, text, affinity="nearest_neighbors")


def blobs_for_neighbors():
    X, _ = make_blobs(n_samples=3000, n_features=8, centers=10, random_state=0)
    return X[:600]


# --------------------------------------------------------------------------
# The estimator carries the advice: in its ConvergenceWarning and verbose output.
# --------------------------------------------------------------------------

SKLEARN_TEXT = (
    "Affinity propagation did not converge, this model may return degenerate cluster centers "
    "and labels."
)


def oscillating_blobs():
    X, _ = make_blobs(
        n_samples=1000, n_features=2, centers=50, cluster_std=1.0, center_box=(-20, 20),
        random_state=5,
    )
    return X


@pytest.mark.parametrize("damping", [0.5, "auto"])
def test_convergence_warning_keeps_its_class_and_appends_the_advice(damping):
    from sklearn.exceptions import ConvergenceWarning

    X = oscillating_blobs()
    model = AffinityPropagation(random_state=0, damping=damping, max_iter=120,
                                record_history=True)
    with pytest.warns(ConvergenceWarning) as record:
        model.fit(X)
    assert not model.converged_
    # The expected advice from the fit's own history (the reference).
    expected = not_converged_advice(
        model.history_["n_changed"], n_iter=model.n_iter_, max_iter=120,
        damping=model.damping_, adaptive=damping == "auto",
        n_exemplars=int(model.history_["n_exemplars"][-1]),
    )
    messages = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert messages == [f"{SKLEARN_TEXT} {expected}"]
    assert expected.startswith("Oscillation: ")


def test_verbose_prints_the_advice(capsys):
    X = oscillating_blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(random_state=0, max_iter=60, verbose=True,
                                    record_history=True).fit(X)
    expected = not_converged_advice(
        model.history_["n_changed"], n_iter=60, max_iter=60, damping=0.5, adaptive=False,
        n_exemplars=int(model.history_["n_exemplars"][-1]),
    )
    assert f"[fastap] {expected}\n" in capsys.readouterr().out


def test_converged_fit_warns_nothing():
    X, _ = make_blobs(n_samples=200, centers=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AffinityPropagation(random_state=0).fit(X).converged_
