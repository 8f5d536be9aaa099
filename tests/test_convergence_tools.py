"""Convergence you can see and fix; more affinities; predict for precomputed models."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.datasets import make_blobs
from sklearn.metrics.pairwise import cosine_similarity

from fastap import AffinityPropagation, IterationInfo, _dense, _run
from tests import reference_ap
from tests.data import blobs, similarity


def _oscillating_blobs():
    """50 overlapping blobs on which damping 0.5 never settles (checked below)."""
    X, _ = make_blobs(
        n_samples=1000, n_features=2, centers=50, cluster_std=1.0, center_box=(-20, 20),
        random_state=5,
    )
    return X


# --------------------------------------------------------------------------
# History and callback.
# --------------------------------------------------------------------------


def test_history_records_every_iteration(float_dtype):
    X = blobs(200, dtype=float_dtype)
    model = AffinityPropagation(random_state=0, record_history=True, keep_messages=True).fit(X)
    assert model.converged_
    history = model.history_
    assert set(history) == {"n_exemplars", "n_changed", "net_similarity", "damping"}
    assert all(values.shape == (model.n_iter_,) for values in history.values())
    assert history["n_changed"][-14:].sum() == 0  # converged: 15 unchanged iterations
    assert np.all(history["damping"] == 0.5)
    # The last record against a direct computation from the final flags.
    flags = np.diagonal(model.availability_) + np.diagonal(model.responsibility_) > 0
    assert history["n_exemplars"][-1] == flags.sum()
    S = model.affinity_matrix_.astype(np.float64)
    exemplars = np.flatnonzero(flags)
    best = S[:, exemplars].max(axis=1)
    best[exemplars] = np.diagonal(S)[exemplars]
    assert history["net_similarity"][-1] == pytest.approx(best.sum(), rel=1e-12)


def _net_similarity_reference(S, is_exemplar):
    exemplars = np.flatnonzero(is_exemplar)
    if exemplars.size == 0:
        return np.nan
    best = S[:, exemplars].astype(np.float64).max(axis=1)
    best[exemplars] = np.diagonal(S)[exemplars]
    return best.sum()


def test_history_net_similarity_kept_up_to_date_equals_a_fresh_computation(float_dtype):
    # Many exemplars come and go in the first iterations (and, from a cold
    # restart at another preference, all at once): every record must equal
    # the objective computed from scratch.
    S = similarity(blobs(300, cluster_std=2.0, random_state=5)).astype(float_dtype)
    state = _dense.DenseMessageState(
        S, np.asarray(np.median(S), dtype=float_dtype), damping=0.5,
        random_state=np.random.RandomState(0), n_threads=2,
    )
    state.prepare()
    history = _run.History()
    expected = []
    for step in range(90):
        if step == 60:  # a new preference and a cold restart, as the search does
            state.set_preference(float_dtype(np.quantile(S, 0.9)), shift_messages=False)
            history.invalidate()
            state.reset()
        n_exemplars, n_changed = state.iterate()
        history.record(state, n_exemplars, n_changed, 0.5)
        expected.append(_net_similarity_reference(S, state.is_exemplar))
    recorded = history.as_arrays()
    assert len(set(recorded["n_exemplars"])) > 5  # the set did change a lot
    np.testing.assert_allclose(recorded["net_similarity"], expected, rtol=1e-12)


def test_history_does_not_change_the_result():
    X = blobs(200, cluster_std=2.0)
    plain = AffinityPropagation(random_state=0).fit(X)
    recorded = AffinityPropagation(random_state=0, record_history=True).fit(X)
    theirs = SklearnAP(random_state=0).fit(X)
    for model in (plain, recorded):
        np.testing.assert_array_equal(model.labels_, theirs.labels_)
        assert model.n_iter_ == theirs.n_iter_
    assert not hasattr(plain, "history_")


def test_callback_is_called_every_k_iterations_and_can_stop_the_fit():
    X = blobs(120, cluster_std=2.0)
    calls = []
    model = AffinityPropagation(random_state=0, callback=calls.append, callback_every=3).fit(X)
    assert [info.iteration for info in calls] == list(range(3, model.n_iter_ + 1, 3))
    assert all(isinstance(info, IterationInfo) for info in calls)
    assert all(info.damping == 0.5 and info.elapsed >= 0 for info in calls)

    def stop_at_five(info):
        return info.iteration == 5

    stopped = AffinityPropagation(random_state=0, callback=stop_at_five).fit(X)
    assert stopped.n_iter_ == 5
    assert not stopped.converged_


def test_callback_errors_propagate_and_leave_the_estimator_unfitted():
    def broken(info):
        raise RuntimeError("from the callback")

    model = AffinityPropagation(callback=broken)
    with pytest.raises(RuntimeError, match="from the callback"):
        model.fit(blobs(30))
    assert not hasattr(model, "labels_")


# --------------------------------------------------------------------------
# Adaptive damping.
# --------------------------------------------------------------------------


def test_auto_damping_converges_where_fixed_damping_does_not():
    X = _oscillating_blobs()
    fixed = AffinityPropagation(random_state=0, max_iter=600).fit(X)
    auto = AffinityPropagation(damping="auto", random_state=0, max_iter=600,
                               record_history=True).fit(X)
    assert not fixed.converged_
    assert auto.converged_
    assert auto.damping_ > 0.5
    damping = auto.history_["damping"]
    assert damping[0] == 0.5 and damping[-1] == auto.damping_
    assert np.all(np.diff(damping) >= 0)
    assert set(np.round(np.diff(damping), 10)) <= {0.0, 0.05}
    assert len(auto.cluster_centers_indices_) < len(fixed.cluster_centers_indices_)


def test_auto_damping_equals_fixed_damping_on_runs_that_settle_early():
    X = blobs(200, cluster_std=1.0)
    fixed = AffinityPropagation(random_state=0).fit(X)
    auto = AffinityPropagation(damping="auto", random_state=0).fit(X)
    assert fixed.n_iter_ < 60
    np.testing.assert_array_equal(auto.labels_, fixed.labels_)
    assert auto.n_iter_ == fixed.n_iter_ and auto.damping_ == 0.5


def test_adaptive_damping_rule():
    rule = _run.AdaptiveDamping(0.5, window=4)
    # Warm-up window: changes are not counted.
    assert [rule.observe(1) for _ in range(4)] == [None] * 4
    assert [rule.observe(1) for _ in range(4)] == [None, None, None, 0.55]
    assert [rule.observe(0) for _ in range(4)] == [None] * 4  # settled
    rule.damping = 0.94
    assert [rule.observe(1) for _ in range(4)][-1] == 0.95
    assert [rule.observe(1) for _ in range(4)][-1] is None  # at the maximum
    rule.reset()
    assert rule.damping == 0.5


# --------------------------------------------------------------------------
# Warm start and the final messages.
# --------------------------------------------------------------------------


def test_warm_start_continues_bitwise(float_dtype):
    X = blobs(150, cluster_std=1.0, dtype=float_dtype)  # oscillates: never converges
    whole = AffinityPropagation(random_state=0, max_iter=30, keep_messages=True).fit(X)
    assert not whole.converged_
    parts = AffinityPropagation(random_state=0, max_iter=12, warm_start=True).fit(X)
    parts.set_params(max_iter=18)
    parts.fit(X)
    np.testing.assert_array_equal(parts.responsibility_, whole.responsibility_)
    np.testing.assert_array_equal(parts.availability_, whole.availability_)
    np.testing.assert_array_equal(parts.labels_, whole.labels_)


def test_warm_start_with_a_new_preference_and_shape_change():
    X = blobs(200, centers=5, cluster_std=0.8)
    model = AffinityPropagation(random_state=0, warm_start=True, preference=-2000.0).fit(X)
    assert not model.converged_  # far too low: 81 flickering clusters
    model.set_params(preference=-300.0)
    model.fit(X)
    cold = AffinityPropagation(random_state=0, preference=-300.0).fit(X)
    assert model.converged_
    np.testing.assert_array_equal(model.labels_, cold.labels_)
    assert model.n_iter_ < cold.n_iter_
    # Another number of samples cannot continue: a fresh start.
    model.fit(X[:150])
    np.testing.assert_array_equal(
        model.labels_, AffinityPropagation(random_state=0, preference=-300.0).fit(X[:150]).labels_
    )


def test_kept_messages_match_the_numpy_reference():
    X = blobs(60, cluster_std=2.0)
    model = AffinityPropagation(random_state=0, max_iter=25, keep_messages=True).fit(X)
    S = similarity(X)
    reference_ap.place_preference_and_noise(S, np.median(S), np.random.RandomState(0))
    R, A, _ = reference_ap.iterate(S, model.n_iter_, 0.5)
    np.testing.assert_array_equal(model.responsibility_, R)
    np.testing.assert_array_equal(model.availability_, A)


def _confidence_reference(model):
    evidence = model.availability_ + model.responsibility_
    S = model.affinity_matrix_
    message_exemplars = np.flatnonzero(np.diagonal(evidence) > 0)
    # Each returned cluster grew from the message exemplar its center is
    # nearest to (scikit-learn's refinement moves centers within clusters).
    nearest = np.argmax(S[:, message_exemplars], axis=1)
    nearest[message_exemplars] = np.arange(message_exemplars.size)
    grew_from = message_exemplars[nearest[model.cluster_centers_indices_]]
    assigned = grew_from[model.labels_]
    expected = np.empty(S.shape[0])
    for i in range(S.shape[0]):
        others = message_exemplars[message_exemplars != assigned[i]]
        expected[i] = evidence[i, assigned[i]] - evidence[i, others].max()
    return expected


@pytest.mark.parametrize("case", [(300, 4, 1.5, 0, 8), (200, 6, 1.0, 1, 2)])
def test_membership_confidence(case):
    n, centers, std, seed, n_features = case
    X, _ = make_blobs(n, n_features=n_features, centers=centers, cluster_std=std,
                      random_state=seed)
    model = AffinityPropagation(random_state=0, keep_messages=True).fit(X)
    assert model.converged_
    np.testing.assert_allclose(model.membership_confidence_, _confidence_reference(model),
                               rtol=1e-12)
    # Converged fits: nearly every assignment agrees with the evidence (the
    # few that do not sit between clusters). Taken against the refined
    # centers, which the messages know nothing about, 103 of the 200
    # margins of the second case were negative. 5%: these blobs are
    # separated (std <= 1.5, centers drawn in a box of side 20), so only a
    # few samples lie between two clusters.
    assert np.mean(model.membership_confidence_ < 0) < 0.05
    assert not hasattr(AffinityPropagation(random_state=0).fit(X), "membership_confidence_")


# --------------------------------------------------------------------------
# Affinities and predict.
# --------------------------------------------------------------------------


def test_cosine_affinity_is_precomputed_cosine(float_dtype):
    X = np.abs(blobs(150, cluster_std=2.0, dtype=float_dtype))
    # float32 on its engine (under "auto" this size runs in float64).
    engine = "lean" if float_dtype == np.float32 else "auto"
    model = AffinityPropagation(affinity="cosine", random_state=0, engine=engine).fit(X)
    S = cosine_similarity(X.astype(np.float64)).astype(float_dtype)
    precomputed = AffinityPropagation(affinity="precomputed", random_state=0,
                                      engine=engine).fit(S)
    np.testing.assert_array_equal(model.labels_, precomputed.labels_)
    np.testing.assert_array_equal(model.predict(X), np.argmax(
        cosine_similarity(X, model.cluster_centers_), axis=1
    ))
    assert model.affinity_matrix_.dtype == float_dtype


def test_callable_affinity():
    X = blobs(150, cluster_std=2.0)
    model = AffinityPropagation(affinity=similarity, random_state=0).fit(X)
    euclidean = AffinityPropagation(random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, euclidean.labels_)
    new = blobs(40, random_state=7)
    np.testing.assert_array_equal(model.predict(new), euclidean.predict(new))


@pytest.mark.parametrize(
    "returned, error, match",
    [
        (lambda X: np.zeros((3, 3)), ValueError, "must return an array of shape"),
        (lambda X: np.full((len(X), len(X)), np.nan), ValueError, "NaN or infinity"),
        (lambda X: np.array([["a"] * len(X)] * len(X)), ValueError, "expected numbers"),
    ],
)
def test_callable_affinity_bad_returns(returned, error, match):
    with pytest.raises(error, match=match):
        AffinityPropagation(affinity=returned).fit(blobs(10))


def test_callable_affinity_does_not_modify_a_returned_array_by_default():
    X = blobs(50)
    S = similarity(X)
    original = S.copy()
    AffinityPropagation(affinity=lambda _: S, random_state=0).fit(X)
    np.testing.assert_array_equal(S, original)


def test_predict_for_precomputed_models():
    X = blobs(200, cluster_std=1.5)
    new = blobs(30, random_state=5)
    features = AffinityPropagation(random_state=0).fit(X)
    precomputed = AffinityPropagation(affinity="precomputed", random_state=0).fit(similarity(X))
    np.testing.assert_array_equal(precomputed.labels_, features.labels_)
    to_training = -((new[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1)
    expected = features.predict(new)
    np.testing.assert_array_equal(precomputed.predict(to_training), expected)
    to_exemplars = to_training[:, precomputed.cluster_centers_indices_]
    np.testing.assert_array_equal(precomputed.predict(to_exemplars), expected)


# --------------------------------------------------------------------------
# The toolkit's options together (found in review).
# --------------------------------------------------------------------------


def _six_blobs():
    X, _ = make_blobs(200, n_features=2, centers=6, cluster_std=1.0, random_state=1)
    return X


def test_callback_counts_iterations_over_the_whole_search():
    X = _six_blobs()
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 6 is not reached exactly
        model = AffinityPropagation(
            random_state=0, n_clusters=6, callback=seen.append, callback_every=7
        ).fit(X)
    assert len(model.preference_search_) > 1
    assert [info.iteration for info in seen] == list(range(7, model.n_iter_ + 1, 7))
    # A stop at the iteration where the first step converges ends the search.
    first = model.preference_search_[0].n_iter
    stopped = AffinityPropagation(
        random_state=0, n_clusters=6, callback=lambda info: info.iteration == first
    ).fit(X)
    assert stopped.n_iter_ == first and len(stopped.preference_search_) == 1


def test_history_net_similarity_is_exact_during_a_search(monkeypatch):
    # The search changes S's diagonal between steps: the objective must be
    # recomputed even when the exemplars stay. Every record is checked
    # against a brute-force objective of the flags and the S of that moment.
    X = _six_blobs()
    expected = []
    record = _run.History.record

    def checked(self, state, n_exemplars, n_changed, damping):
        expected.append(_net_similarity_reference(state.S, state.is_exemplar))
        record(self, state, n_exemplars, n_changed, damping)

    monkeypatch.setattr(_run.History, "record", checked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 6 is not reached exactly
        model = AffinityPropagation(random_state=0, n_clusters=6, record_history=True).fit(X)
    assert len(model.preference_search_) > 1
    np.testing.assert_allclose(model.history_["net_similarity"], expected, rtol=1e-12)


def test_n_clusters_one_when_samples_coincide():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(random_state=0, n_clusters=1).fit(np.ones((5, 2)))
    assert len(model.cluster_centers_indices_) == 1


def test_warm_start_with_auto_damping_continues_from_the_reached_damping():
    X, _ = make_blobs(500, n_features=2, centers=30, cluster_std=1.0, center_box=(-20, 20),
                      random_state=0)
    model = AffinityPropagation(
        random_state=0, damping="auto", max_iter=80, warm_start=True, record_history=True
    ).fit(X)
    reached = model.damping_
    assert reached > 0.5
    model.fit(X)
    assert model.history_["damping"][0] == reached


def test_equal_similarities_shortcut_keeps_the_requested_attributes():
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        model = AffinityPropagation(record_history=True, keep_messages=True).fit(np.ones((4, 2)))
    assert model.n_iter_ == 0
    assert all(values.shape == (0,) for values in model.history_.values())
    assert np.all(model.membership_confidence_ == np.inf)
