"""fastap against scikit-learn itself, the reference implementation."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.cluster import affinity_propagation as sklearn_affinity_propagation
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from fastap import AffinityPropagation, affinity_propagation
from tests.data import blobs, similarity


def fit_both(X, **params):
    with warnings.catch_warnings(record=True) as sklearn_warnings:
        warnings.simplefilter("always")
        theirs = SklearnAP(**params).fit(X)
    with warnings.catch_warnings(record=True) as fastap_warnings:
        warnings.simplefilter("always")
        ours = AffinityPropagation(**params).fit(X)
    return ours, theirs, fastap_warnings, sklearn_warnings


def assert_same_clustering(ours, theirs):
    np.testing.assert_array_equal(ours.cluster_centers_indices_, theirs.cluster_centers_indices_)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_


CASES = [
    # (n_samples, centers, cluster_std, random_state, extra parameters)
    (60, 3, 1.0, 0, {}),
    (300, 10, 1.0, 0, {}),
    (500, 10, 1.0, 0, {}),  # converges at 134 iterations in scikit-learn
    (1000, 10, 1.0, 0, {}),  # does not converge: 109 clusters after 200 iterations
    (400, 5, 3.0, 1, {"damping": 0.9, "max_iter": 300}),
    # Damping away from 0.5, where swapping d and 1 - d changes the result;
    # 600 samples run the parallel kernels.
    (300, 6, 1.5, 6, {"damping": 0.7}),
    (600, 8, 1.0, 7, {"damping": 0.75, "max_iter": 120}),
    (250, 4, 0.5, 2, {"convergence_iter": 3}),
    (350, 8, 2.0, 3, {"max_iter": 20}),  # stopped early
    (200, 3, 1.0, 4, {"preference": -50.0}),
    (200, 3, 1.0, 5, {"preference": -1e6}),  # very few exemplars
]


@pytest.mark.parametrize("n_samples, centers, cluster_std, seed, params", CASES)
def test_same_clusters_as_sklearn_float64(n_samples, centers, cluster_std, seed, params):
    X = blobs(n_samples, centers=centers, cluster_std=cluster_std, random_state=seed)
    ours, theirs, ours_w, theirs_w = fit_both(X, random_state=seed, **params)
    assert_same_clustering(ours, theirs)
    np.testing.assert_array_equal(ours.affinity_matrix_, theirs.affinity_matrix_)
    np.testing.assert_array_equal(ours.cluster_centers_, theirs.cluster_centers_)
    assert [type(w.message) for w in ours_w] == [type(w.message) for w in theirs_w]
    # scikit-learn's text first; fastap appends its remedies.
    assert len(ours_w) == len(theirs_w)
    for ours_warning, theirs_warning in zip(ours_w, theirs_w):
        assert str(ours_warning.message).startswith(str(theirs_warning.message))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in theirs_w)
    assert ours.converged_ is converged


@pytest.mark.parametrize("n_jobs", [1, 2, 7, -1])
def test_same_clusters_for_every_n_jobs(n_jobs):
    X = blobs(1000, random_state=0)
    ours, theirs, _, _ = fit_both(X, random_state=0)
    threaded = AffinityPropagation(random_state=0, n_jobs=n_jobs).fit(X)
    assert_same_clustering(threaded, theirs)
    assert not threaded.converged_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precomputed_with_preference_array(seed):
    rng = np.random.RandomState(seed)
    X = blobs(150, centers=4, random_state=seed)
    S = similarity(X)
    preference = np.median(S) + rng.uniform(-20, 20, size=S.shape[0])
    ours = affinity_propagation(S, preference=preference, random_state=seed, return_n_iter=True)
    theirs = sklearn_affinity_propagation(
        S, preference=preference, random_state=seed, return_n_iter=True
    )
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_asymmetric_precomputed_similarity():
    rng = np.random.RandomState(3)
    S = -rng.uniform(0, 10, size=(120, 120))
    ours = affinity_propagation(S, random_state=0, return_n_iter=True)
    theirs = sklearn_affinity_propagation(S, random_state=0, return_n_iter=True)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "n_samples, centers, cluster_std, seed",
    [
        (300, 3, 1.0, 0),
        (400, 5, 1.0, 0),
        (600, 6, 0.8, 2),
    ],
)
def test_float32_agrees_on_well_separated_data(n_samples, centers, cluster_std, seed):
    X = blobs(n_samples, centers=centers, cluster_std=cluster_std, random_state=seed)
    # engine="lean": the float32 engine (under "auto" these sizes run in
    # float64, see fastap/_cold_start.py).
    ours = AffinityPropagation(random_state=0, engine="lean").fit(X.astype(np.float32))
    theirs64 = SklearnAP(random_state=0).fit(X)
    theirs32 = SklearnAP(random_state=0).fit(X.astype(np.float32))
    assert ours.affinity_matrix_.dtype == np.float32
    assert ours.converged_
    assert adjusted_rand_score(ours.labels_, theirs64.labels_) == 1.0
    assert adjusted_rand_score(ours.labels_, theirs32.labels_) == 1.0


def test_example_from_sklearn_docstring():
    X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 4], [4, 0]])
    ours = AffinityPropagation(random_state=5).fit(X)
    theirs = SklearnAP(random_state=5).fit(X)
    assert_same_clustering(ours, theirs)
    np.testing.assert_array_equal(ours.predict([[0, 0], [4, 4]]), theirs.predict([[0, 0], [4, 4]]))
    assert ours.cluster_centers_.dtype == theirs.cluster_centers_.dtype


def test_random_state_instance_is_consumed_like_sklearn():
    X = blobs(80, centers=3, random_state=0)
    ours_rng, theirs_rng = np.random.RandomState(42), np.random.RandomState(42)
    for _ in range(2):  # the second fit continues the stream
        ours = AffinityPropagation(random_state=ours_rng).fit(X)
        theirs = SklearnAP(random_state=theirs_rng).fit(X)
        assert_same_clustering(ours, theirs)
    assert ours_rng.standard_normal() == theirs_rng.standard_normal()
