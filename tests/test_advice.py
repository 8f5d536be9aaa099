"""What to do when AP does not converge: the diagnosis and the remedies."""

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from fastap import AffinityPropagation
from fastap._advice import diagnose_non_convergence, not_converged_advice

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
    """Changes that become rare: one every 10 iterations at the end."""
    changes = np.zeros(n_iter, dtype=int)
    changes[:60] = 10
    changes[60::10] = 1
    return changes


# --------------------------------------------------------------------------
# The diagnosis.
# --------------------------------------------------------------------------


def test_oscillation_is_changes_in_at_least_half_of_the_recent_iterations():
    diagnosis = diagnose_non_convergence(oscillating(), n_iter=200, max_iter=200)
    assert diagnosis.kind == "oscillation"
    assert (diagnosis.n_recent, diagnosis.n_recent_changed) == (30, 15)
    assert diagnosis.n_unchanged_at_end == 1
    # One change fewer in the window: no longer an oscillation.
    changes = oscillating()
    changes[-2] = 0
    assert diagnose_non_convergence(changes, n_iter=200, max_iter=200).kind == "slow_drift"


def test_slow_drift_is_rare_changes_late():
    diagnosis = diagnose_non_convergence(drifting(), n_iter=200, max_iter=200)
    assert diagnosis.kind == "slow_drift"
    assert diagnosis.n_recent_changed == 3  # iterations 170, 180, 190
    assert diagnosis.n_unchanged_at_end == 9


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
        'Oscillation: the exemplars changed in 15 of the last 30 iterations; damping="auto" had '
        "raised the damping to 0.7 and can raise it further (up to 0.95) with more iterations: "
        "max_iter=1000."
    )


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
        "Slow drift: the exemplars changed in 3 of the last 30 iterations, and convergence needs "
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
