"""The toolkit on the sparse engine: on a complete graph every option gives
the dense engine's results (float64: bitwise), because both engines run the
same loop (``_run.py``) and the same search (``_search.py``); on a k-NN
graph ``n_clusters`` searches the last merge level."""

import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from fastap import AffinityPropagation
from tests.data import blobs, similarity


def complete_csr(S):
    """Every pair stored, the diagonal included."""
    n = S.shape[0]
    indptr = np.arange(0, n * n + 1, n)
    indices = np.tile(np.arange(n), n)
    return sparse.csr_matrix((S.ravel().copy(), indices, indptr), shape=(n, n))


def fit_both(S, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = AffinityPropagation(affinity="precomputed", random_state=0, **params).fit(S)
        graph = AffinityPropagation(affinity="precomputed", random_state=0, **params).fit(
            complete_csr(S)
        )
    return dense, graph


def assert_same_fit(dense, graph):
    np.testing.assert_array_equal(dense.cluster_centers_indices_, graph.cluster_centers_indices_)
    np.testing.assert_array_equal(dense.labels_, graph.labels_)
    assert dense.n_iter_ == graph.n_iter_
    assert dense.converged_ == graph.converged_
    assert dense.damping_ == graph.damping_
    np.testing.assert_array_equal(dense.preference_, graph.preference_)


S_BLOBS = similarity(blobs(240, centers=6, cluster_std=1.5, random_state=3))


@pytest.mark.parametrize("damping", [0.5, 0.8, "auto"])
def test_n_clusters_search_is_the_dense_search(damping):
    dense, graph = fit_both(S_BLOBS, n_clusters=4, damping=damping)
    assert_same_fit(dense, graph)
    assert dense.preference_search_ == graph.preference_search_
    assert len(dense.preference_search_) > 1  # a real search, not one lucky step


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5])
def test_preference_quantile_is_the_dense_quantile(q):
    dense, graph = fit_both(S_BLOBS, preference_quantile=q)
    assert_same_fit(dense, graph)


def test_record_history_and_keep_messages_are_the_dense_ones():
    dense, graph = fit_both(S_BLOBS, record_history=True, keep_messages=True, damping=0.7)
    assert_same_fit(dense, graph)
    for key in ("n_exemplars", "n_changed", "damping"):
        np.testing.assert_array_equal(dense.history_[key], graph.history_[key])
    np.testing.assert_allclose(graph.history_["net_similarity"], dense.history_["net_similarity"],
                               rtol=1e-12)
    assert sparse.issparse(graph.responsibility_)
    np.testing.assert_array_equal(graph.responsibility_.toarray(), dense.responsibility_)
    np.testing.assert_array_equal(graph.availability_.toarray(), dense.availability_)
    np.testing.assert_array_equal(graph.membership_confidence_, dense.membership_confidence_)


def test_warm_start_continues_as_the_dense_engine_does():
    fits = {}
    for kind in ("dense", "graph"):
        data = S_BLOBS if kind == "dense" else complete_csr(S_BLOBS)
        model = AffinityPropagation(affinity="precomputed", random_state=0, warm_start=True,
                                    max_iter=12, convergence_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data)
            model.set_params(max_iter=18).fit(data)
        fits[kind] = model
    dense, graph = fits["dense"], fits["graph"]
    np.testing.assert_array_equal(graph.responsibility_.toarray(), dense.responsibility_)
    np.testing.assert_array_equal(graph.availability_.toarray(), dense.availability_)
    np.testing.assert_array_equal(graph.labels_, dense.labels_)
    # 12 + 18 iterations are 30 from zero messages.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        straight = AffinityPropagation(affinity="precomputed", random_state=0, max_iter=30,
                                       convergence_iter=100, keep_messages=True).fit(
            complete_csr(S_BLOBS))
    np.testing.assert_array_equal(graph.responsibility_.toarray(),
                                  straight.responsibility_.toarray())


def test_membership_confidence_on_an_incomplete_graph_against_numpy():
    X = blobs(150, centers=3, random_state=2)
    S = similarity(X)
    rng = np.random.RandomState(0)
    keep = rng.uniform(size=S.shape) < 0.6
    keep |= keep.T
    np.fill_diagonal(keep, True)
    graph = sparse.csr_matrix(np.where(keep, S, 0.0))
    model = AffinityPropagation(affinity="precomputed", random_state=0, keep_messages=True,
                                damping=0.9, max_iter=500).fit(graph)
    R = model.responsibility_.toarray()
    A = model.availability_.toarray()
    stored = keep
    evidence = np.where(stored, A + R, -np.inf)
    flags = np.diagonal(A) + np.diagonal(R) > 0
    exemplars = np.flatnonzero(flags)
    assert exemplars.size == model.cluster_centers_indices_.size
    # Each cluster's message exemplar: the one its center is most similar to.
    S_stored = np.where(stored, model.affinity_matrix_.toarray(), -np.inf)
    own_of_cluster = exemplars[np.argmax(S_stored[model.cluster_centers_indices_][:, exemplars],
                                         axis=1)]
    own_of_cluster[flags[model.cluster_centers_indices_]] = model.cluster_centers_indices_[
        flags[model.cluster_centers_indices_]]
    own = own_of_cluster[model.labels_]
    for i in range(X.shape[0]):
        others = [e for e in exemplars if e != own[i] and stored[i, e]]
        expected = evidence[i, own[i]] - max((evidence[i, e] for e in others), default=-np.inf)
        if not stored[i, own[i]]:
            assert np.isnan(model.membership_confidence_[i])
        else:
            assert model.membership_confidence_[i] == pytest.approx(expected, rel=1e-12)


def test_n_clusters_with_merging_searches_the_last_level():
    X = blobs(1500, centers=8, cluster_std=1.0, random_state=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(affinity="nearest_neighbors", n_neighbors=10, n_clusters=8,
                                    random_state=0).fit(X)
        dense = AffinityPropagation(n_clusters=8, random_state=0).fit(X)
    assert model.cluster_centers_indices_.size == 8
    assert len(model.preference_search_) >= 1
    assert adjusted_rand_score(dense.labels_, model.labels_) > 0.95


def test_n_clusters_without_merging_searches_the_graph():
    X = blobs(400, centers=4, cluster_std=1.0, random_state=6)  # 100 samples a blob
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(affinity="nearest_neighbors", n_neighbors=120, n_clusters=4,
                                    merge_fragments=False, random_state=0).fit(X)
    assert model.cluster_centers_indices_.size == 4
    assert model.preference_search_[-1].n_clusters == 4


@pytest.mark.parametrize("start", [{"preference": -200.0}, {"preference_quantile": 0.2}])
def test_n_clusters_search_starts_where_asked_as_on_dense_input(start):
    # A complete graph is the dense problem: the search, from the same
    # start, takes the same steps (the first at the start asked for).
    dense, graph = fit_both(S_BLOBS, n_clusters=4, damping=0.8, **start)
    assert dense.preference_search_ == graph.preference_search_
    if "preference" in start:
        assert graph.preference_search_[0].preference == start["preference"]
