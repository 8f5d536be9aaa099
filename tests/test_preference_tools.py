"""Choosing the preference: quantiles, the preference range, a target number of clusters."""

import itertools
import warnings

import numpy as np
import pytest
from scipy.cluster import hierarchy as scipy_hierarchy
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from fastap import AffinityPropagation, _dense, _run, _search, exemplar_hierarchy, preference_range
from fastap._kernels import setup
from tests.data import blobs, similarity

# --------------------------------------------------------------------------
# Quantile of the off-diagonal similarities.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 40, 600])
@pytest.mark.parametrize("q", [0.0, 0.013, 0.25, 0.5, 0.9, 1.0])
def test_off_diagonal_quantile_is_numpys(n, q, float_dtype):
    rng = np.random.default_rng(n)
    S = rng.normal(size=(n, n)).astype(float_dtype)
    S.flat[:: n + 1] = 100.0  # must not count
    expected = np.quantile(S[~np.eye(n, dtype=bool)], q)
    got = setup.off_diagonal_quantile(S, q, 2)
    assert got == expected
    assert got.dtype == expected.dtype


def test_off_diagonal_order_statistics_with_ties_and_radix_fallback():
    rng = np.random.default_rng(0)
    S = np.round(rng.normal(size=(700, 700)), 1)
    S.flat[::701] = 0.0  # many diagonal values equal to off-diagonal ones
    off_diagonal = np.sort(S[~np.eye(700, dtype=bool)])
    ranks = [0, 12345, 244649, 489299]
    got = setup.off_diagonal_order_statistics(S, ranks, 2)
    np.testing.assert_array_equal(got, off_diagonal[ranks])
    np.testing.assert_array_equal(setup._radix_off_diagonal(S, ranks, 2), off_diagonal[ranks])


def test_preference_quantile_sets_the_preference(float_dtype):
    X = blobs(60, dtype=float_dtype)
    model = AffinityPropagation(preference_quantile=0.1, random_state=0).fit(X)
    S = similarity(X.astype(np.float64)).astype(float_dtype)
    expected = np.quantile(S[~np.eye(60, dtype=bool)], 0.1)
    tolerance = 1e-6 if float_dtype == np.float32 else 0
    np.testing.assert_allclose(model.preference_, expected, rtol=tolerance)
    reference = AffinityPropagation(preference=model.preference_, random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    fewer = AffinityPropagation(preference_quantile=0.0, random_state=0).fit(X)
    assert len(fewer.cluster_centers_indices_) <= len(model.cluster_centers_indices_)


def test_preference_and_quantile_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        AffinityPropagation(preference=-1, preference_quantile=0.5).fit(blobs(10))


# --------------------------------------------------------------------------
# Preference range against brute force.
# --------------------------------------------------------------------------


def _best_net_similarity_by_count(S, preference):
    """Brute force: best net similarity for each number of exemplars."""
    n = S.shape[0]
    data = S.copy()
    np.fill_diagonal(data, 0.0)
    best = {}
    for k in range(1, n + 1):
        values = [
            data[:, list(exemplars)].max(axis=1).sum() + k * preference
            for exemplars in itertools.combinations(range(n), k)
        ]
        best[k] = max(values)
    return best


def _dpsim(S, k):
    data = S.copy()
    np.fill_diagonal(data, 0.0)
    return max(
        data[:, list(exemplars)].max(axis=1).sum()
        for exemplars in itertools.combinations(range(S.shape[0]), k)
    )


@pytest.mark.parametrize("seed", range(4))
def test_preference_range_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(7, 2))
    S = similarity(X)
    S.flat[::8] = rng.normal(size=7) * 50  # the diagonal must not matter
    exact = preference_range(S, affinity="precomputed", method="exact")
    bound = preference_range(S, affinity="precomputed")
    assert exact.low == pytest.approx(_dpsim(S, 1) - _dpsim(S, 2), rel=1e-12)
    assert bound.low <= exact.low + 1e-9
    assert exact.high == bound.high == S[~np.eye(7, dtype=bool)].max()
    # Below low, one cluster beats any two; above it, two beat one.
    margin = 1e-6 * abs(exact.low)
    below = _best_net_similarity_by_count(S, exact.low - margin)
    above = _best_net_similarity_by_count(S, exact.low + margin)
    assert below[1] > below[2]
    assert above[2] > above[1]
    # Above high, N singletons are best; below it, they are not.
    below_high = _best_net_similarity_by_count(S, exact.high - 1e-6)
    above_high = _best_net_similarity_by_count(S, exact.high + 1e-6)
    assert max(above_high, key=above_high.get) == 7
    assert max(below_high, key=below_high.get) < 7


def test_preference_range_from_features_matches_precomputed(float_dtype):
    X = blobs(200, dtype=float_dtype)
    from_features = preference_range(X)
    from_matrix = preference_range(similarity(X.astype(np.float64)), affinity="precomputed")
    np.testing.assert_allclose(from_features, from_matrix, rtol=1e-5)


def test_preference_range_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        preference_range(np.zeros((3, 4)), affinity="precomputed")
    with pytest.raises(ValueError, match="method"):
        preference_range(blobs(5), method="fast")
    with pytest.raises(ValueError, match="NaN|infinity"):
        preference_range(np.array([[0.0, np.nan], [1.0, 0.0]]), affinity="precomputed")


# --------------------------------------------------------------------------
# A target number of clusters.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_clusters", [2, 4, 10, 17])
def test_n_clusters_is_reached(n_clusters):
    X = blobs(300, centers=10, cluster_std=1.5, random_state=3)
    model = AffinityPropagation(n_clusters=n_clusters, random_state=0).fit(X)
    assert len(model.cluster_centers_indices_) == n_clusters
    assert model.converged_
    steps = model.preference_search_
    assert steps[-1].preference == pytest.approx(float(model.preference_))
    assert model.n_iter_ == sum(step.n_iter for step in steps)


def test_warm_search_gives_the_clusters_of_a_cold_fit_at_its_preference():
    X = blobs(400, centers=6, cluster_std=0.8, random_state=1)
    model = AffinityPropagation(n_clusters=6, random_state=0).fit(X)
    # At the damping the search ended with: a step that oscillates is
    # repeated cold with more damping (on a Zen 3 VM the start's step did).
    cold = AffinityPropagation(
        preference=model.preference_, damping=model.damping_, random_state=0
    ).fit(X)
    assert len(model.cluster_centers_indices_) == 6
    np.testing.assert_array_equal(model.cluster_centers_indices_, cold.cluster_centers_indices_)
    np.testing.assert_array_equal(model.labels_, cold.labels_)
    # The diagonal the search left is bitwise the cold fit's.
    np.testing.assert_array_equal(model.affinity_matrix_, cold.affinity_matrix_)


def search(S, n_clusters, *, max_iter, warm=True, max_steps=_search.MAX_STEPS):
    """The search on the dense engine, as the estimator runs it (damping 0.5)."""
    state = _dense.DenseMessageState(
        S, np.asarray(0.0, dtype=S.dtype), damping=0.5, random_state=np.random.RandomState(0),
        n_threads=1,
    )
    options = _run.RunOptions(damping=0.5, max_iter=max_iter, convergence_iter=15)
    return _search.NClustersSearch(
        state, n_clusters, options, warm=warm, max_steps=max_steps
    ).run()


def test_warm_and_cold_search_both_reach_the_target():
    X = blobs(300, centers=8, cluster_std=1.0, random_state=2)
    steps_by_mode = {}
    for warm in (True, False):
        S = similarity(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = search(S, 5, max_iter=200, warm=warm)
        steps = result.search_steps
        assert len(result.cluster_centers_indices) == 5
        assert result.n_iter == sum(step.n_iter for step in steps)
        steps_by_mode[warm] = steps
    assert all(step.n_iter >= 16 for step in steps_by_mode[True] + steps_by_mode[False])


def test_an_oscillating_step_does_not_exclude_the_answer():
    # From the 0.2-quantile, a step at damping 0.5 oscillates with all 800
    # flags on; read as "no clusters" it closed the bracket above the
    # answer (the search then returned 98 unconverged clusters). The step
    # is repeated at damping 0.9, which settles.
    X, _ = make_blobs(n_samples=2000, n_features=8, centers=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = AffinityPropagation(n_clusters=5, preference_quantile=0.2, random_state=0).fit(
            X[:800]
        )
    assert len(model.cluster_centers_indices_) == 5 and model.converged_
    # At least 0.9: the damping an unconverged step is repeated at, kept
    # from then on (the search's adaptive damping may raise it within a step).
    assert model.damping_ >= 0.9
    unsettled = [i for i, step in enumerate(model.preference_search_) if not step.converged]
    assert unsettled  # the case this test is about happened
    for i in unsettled:  # each repeated, same preference
        assert model.preference_search_[i + 1].preference == model.preference_search_[i].preference


def test_the_search_stops_where_the_count_jumps_past_the_target():
    # From the median, these 800 blobs give 7 clusters just above a
    # preference and 4 just below it: no preference gives 5 on that path.
    # The bracket used to be bisected down to the last representable float
    # (40 steps); it now stops at a relative width of 1e-5.
    X, _ = make_blobs(n_samples=2000, n_features=8, centers=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match="No preference found that gives 5 clusters"):
            model = AffinityPropagation(n_clusters=5, random_state=0).fit(X[:800])
    steps = model.preference_search_
    assert abs(len(model.cluster_centers_indices_) - 5) == 1 and model.converged_
    assert steps[-1].n_clusters == len(model.cluster_centers_indices_)
    settled = [step for step in steps if step.converged]
    assert 5 not in {step.n_clusters for step in settled}
    # The stopping rule: the settled steps closest to 5 from below and from
    # above are within 1e-5 of the preference of each other (bisected to the
    # last float, the search took 40 steps). They may even share a preference:
    # a warm and a cold fit there settled on different counts.
    below = max(step.preference for step in settled if step.n_clusters < 5)
    above = min(step.preference for step in settled if step.n_clusters > 5)
    assert abs(above - below) <= 1e-5 * abs(above)


@pytest.mark.parametrize("n_clusters", [3, 5, 12])
def test_the_result_is_the_best_step_of_the_search(n_clusters):
    X = blobs(500, centers=10, cluster_std=2.0, random_state=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(n_clusters=n_clusters, random_state=0).fit(X)
    settled = [step for step in model.preference_search_ if step.converged]
    best_distance = min(abs(step.n_clusters - n_clusters) for step in settled)
    assert abs(len(model.cluster_centers_indices_) - n_clusters) == best_distance
    assert model.converged_
    # The last step is the returned fit (also when the best step's exemplars
    # were kept over a final cold run that did worse).
    assert model.preference_search_[-1].n_clusters == len(model.cluster_centers_indices_)


@pytest.mark.parametrize("delta", [0.0, 3.5, -40.0])
def test_shift_preference_moves_messages_by_the_change_of_their_targets(delta, float_dtype):
    S = similarity(blobs(150, centers=5, random_state=7)).astype(float_dtype)
    n = S.shape[0]
    median = float_dtype(np.median(S))
    # Two identical runs: one completed for the reference, one shifted with
    # its last availabilities still pending (finished in the same pass).
    completed, state = (
        _dense.DenseMessageState(S.copy(), np.asarray(median), damping=0.5,
                                 random_state=np.random.RandomState(0), n_threads=2)
        for _ in range(2)
    )
    for engine in (completed, state):
        engine.prepare()
        for _ in range(12):
            engine.iterate()
    completed.complete_availability()
    assert state.availability_pending
    # What the shift sees of the new preference, in the dtype of S.
    delta = float(float_dtype(median + float_dtype(delta)) - median)
    R, A = completed.R.astype(np.float64), completed.A.astype(np.float64)
    # NumPy reference: column sums of Rp, then A moves by the change of
    # min(0, col_sum - Rp) off the diagonal; R's diagonal moves by delta.
    positive = np.maximum(R, 0)
    np.fill_diagonal(positive, np.diagonal(R))
    col_sum = positive.sum(axis=0)
    expected_A = A + np.minimum(col_sum + delta - positive, 0) - np.minimum(col_sum - positive, 0)
    np.fill_diagonal(expected_A, np.diagonal(A))
    expected_R = R.copy()
    expected_R.flat[:: n + 1] += delta

    state.set_preference(float_dtype(median + float_dtype(delta)), shift_messages=True)
    tolerance = 1e-4 if float_dtype == np.float32 else 1e-9
    scale = np.abs(S).max()
    np.testing.assert_allclose(state.R, expected_R, rtol=0, atol=tolerance * scale)
    np.testing.assert_allclose(state.A, expected_A, rtol=0, atol=tolerance * scale)
    if delta == 0.0:
        np.testing.assert_array_equal(state.A, A.astype(float_dtype))


def test_closest_count_with_a_warning_when_the_search_runs_out_of_steps():
    S = similarity(blobs(120, centers=4, random_state=0))
    with pytest.warns(UserWarning, match="No preference found that gives 40 clusters"):
        result = search(S, 40, max_iter=100, max_steps=1)
    steps = result.search_steps
    assert len(steps) == 1
    # The one step is a fit from zero messages at the starting preference,
    # with the noise of random_state 0: bitwise scikit-learn's fit there.
    expected = SklearnAP(
        affinity="precomputed", preference=steps[0].preference, max_iter=100, random_state=0
    ).fit(similarity(blobs(120, centers=4, random_state=0)))
    np.testing.assert_array_equal(result.cluster_centers_indices, expected.cluster_centers_indices_)
    assert steps[0].n_clusters == len(expected.cluster_centers_indices_) != 40


def test_n_clusters_validation():
    X = blobs(20)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        AffinityPropagation(n_clusters=21).fit(X)
    with pytest.raises(ValueError, match="starting point"):
        AffinityPropagation(n_clusters=2, preference=np.zeros(20)).fit(X)
    model = AffinityPropagation(n_clusters=3, preference=-50.0, random_state=0).fit(X)
    assert model.preference_search_[0].preference == -50.0


def test_n_clusters_float32_and_precomputed(float_dtype):
    X = blobs(200, centers=5, cluster_std=0.7, random_state=4, dtype=float_dtype)
    # float32 on its engine (under "auto" this size runs in float64).
    model = AffinityPropagation(
        affinity="precomputed", n_clusters=5, random_state=0,
        engine="lean" if float_dtype == np.float32 else "auto",
    ).fit(similarity(X.astype(np.float64)).astype(float_dtype))
    assert len(model.cluster_centers_indices_) == 5
    assert model.affinity_matrix_.dtype == float_dtype


# --------------------------------------------------------------------------
# Exemplar hierarchy.
# --------------------------------------------------------------------------


def test_hierarchy_first_merge_is_the_brute_force_best_and_linkage_works():
    X = blobs(200, centers=5, cluster_std=1.0, random_state=0)
    model = AffinityPropagation(preference=-3.0, random_state=0).fit(X)
    K = len(model.cluster_centers_indices_)
    # A precondition, not a result: enough clusters for several merges (the
    # same count as scikit-learn's fit).
    assert K == len(SklearnAP(preference=-3.0, random_state=0).fit(X).cluster_centers_indices_)
    assert K > 6
    tree = model.exemplar_hierarchy()
    assert scipy_hierarchy.is_valid_linkage(tree.linkage)
    assert scipy_hierarchy.is_monotonic(tree.linkage)
    assert tree.linkage.shape == (K - 1, 4)
    assert tree.linkage[-1, 3] == K
    scipy_hierarchy.dendrogram(tree.linkage, no_plot=True)

    data = similarity(X)
    np.fill_diagonal(data, 0.0)
    labels = model.labels_
    best = (-np.inf, None, None)
    for a, b in itertools.combinations(range(K), 2):
        members = np.flatnonzero((labels == a) | (labels == b))
        score = data[labels == a][:, members].mean(0) + data[labels == b][:, members].mean(0)
        if score.max() / 2 > best[0]:
            best = (score.max() / 2, (a, b), members[score.argmax()])
    assert tree.objectives[0] == pytest.approx(best[0], rel=1e-12)
    assert tuple(tree.linkage[0, :2].astype(int)) == best[1]
    assert tree.exemplars[K] == best[2]


def test_hierarchy_cuts():
    X = blobs(200, centers=5, cluster_std=1.0, random_state=0)
    model = AffinityPropagation(preference=-3.0, random_state=0).fit(X)
    tree = model.exemplar_hierarchy()
    K = tree.n_leaves
    labels, exemplars = tree.cut(K)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_array_equal(exemplars, model.cluster_centers_indices_)
    labels, exemplars = tree.cut(1)
    assert set(labels) == {0} and exemplars.size == 1
    # The same partitions as SciPy's fcluster on the (monotone) linkage.
    for n_clusters in range(1, K + 1):
        labels, exemplars = tree.cut(n_clusters)
        assert exemplars.size == n_clusters == len(set(labels))
        assert set(labels[exemplars]) == set(range(n_clusters))
        scipy_labels = scipy_hierarchy.fcluster(tree.linkage, n_clusters, criterion="maxclust")
        if len(set(scipy_labels)) == n_clusters:  # ties in height can merge several at once
            from sklearn.metrics import adjusted_rand_score

            assert adjusted_rand_score(labels, scipy_labels[model.labels_]) == 1.0
    # Cutting to the true number of blobs recovers them.
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    _, truth = make_blobs(n_samples=200, n_features=8, centers=5, cluster_std=1.0, random_state=0)
    assert adjusted_rand_score(truth, tree.cut(5)[0]) == 1.0


def test_hierarchy_bad_input():
    with pytest.raises(ValueError, match="no -1"):
        exemplar_hierarchy(np.zeros((3, 3)), np.array([0, -1, 0]), np.array([0]))
    with pytest.raises(ValueError, match="between 1 and"):
        exemplar_hierarchy(-np.ones((3, 3)), np.array([0, 1, 1]), np.array([0, 1])).cut(3)


def test_prepared_similarities_match_a_fresh_preparation(float_dtype):
    """set_preference gives bitwise what preparing with that preference gives."""
    S0 = similarity(blobs(50)).astype(float_dtype)
    first, second = (
        _dense.DenseMessageState(S0.copy(), np.asarray(preference, dtype=float_dtype),
                                 damping=0.5, random_state=np.random.RandomState(3))
        for preference in (-10.0, -4.5)
    )
    first.prepare()
    first.set_preference(float_dtype(-4.5), shift_messages=False)
    second.prepare()
    np.testing.assert_array_equal(first.S, second.S)


def test_preference_range_of_a_similarity_matrix_needs_affinity_precomputed():
    # Issue 12.3: a cosine similarity matrix was silently read as features.
    X = blobs(60, centers=3, random_state=8)
    from sklearn.metrics.pairwise import cosine_similarity

    S = cosine_similarity(X)
    from_features = preference_range(X, affinity="cosine", method="exact")
    from_matrix = preference_range(S, affinity="precomputed", method="exact")
    assert from_matrix.low == pytest.approx(from_features.low, rel=1e-12)
    assert from_matrix.high == pytest.approx(from_features.high, rel=1e-12)
    with pytest.warns(UserWarning, match="square symmetric matrix and no affinity"):
        as_features = preference_range(S)
    assert as_features.high != pytest.approx(from_matrix.high)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preference_range(S, affinity="euclidean")  # said explicitly: no warning
    with pytest.raises(ValueError, match="square"):
        preference_range(S[:, :10], affinity="precomputed")
    with pytest.raises(ValueError, match="affinity must be one of"):
        preference_range(X, affinity="manhattan")


# --------------------------------------------------------------------------
# A quantile landing on a wide tie (cosine similarities of sparse TF-IDF).
# --------------------------------------------------------------------------


def _documents(n=60, n_topics=6, words_per_topic=30, seed=0):
    """TF-IDF-like rows: each document holds 5 words of its topic's own
    vocabulary, so documents of different topics have cosine exactly 0."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for i in range(n):
        topic = i % n_topics
        words = rng.choice(words_per_topic, size=5, replace=False) + topic * words_per_topic
        rows += [i] * 5
        cols += list(words)
    values = rng.uniform(0.5, 1.5, size=len(rows))
    return sparse.csr_matrix((values, (rows, cols)), shape=(n, n_topics * words_per_topic))


def _zero_share(X):
    from sklearn.preprocessing import normalize

    Xn = normalize(X)
    S = (Xn @ Xn.T).toarray()
    return float(np.mean(S[~np.eye(S.shape[0], dtype=bool)] == 0))


def _tie_message(share):
    return rf"gives the preference 0, a value that {share:.0%} of the .* share exactly"


@pytest.mark.parametrize("q", [0.05, 0.5])
def test_a_quantile_on_a_wide_tie_is_warned_about(q):
    X = _documents()
    share = _zero_share(X)
    assert share > 0.8  # the premise: most pairs share no word
    n_off = X.shape[0] * (X.shape[0] - 1)
    highest = (round(share * n_off) - 1) / (n_off - 1)  # the last quantile on the tie
    with pytest.warns(UserWarning, match=_tie_message(share) + rf".* from 0.00 to {highest:.2f}"):
        fitted = AffinityPropagation(affinity="cosine", preference_quantile=q,
                                     random_state=0).fit(X)
    assert fitted.preference_ == 0
    # Dense features, the nearest-neighbour engine: the same tie, in its pairs.
    with pytest.warns(UserWarning, match=_tie_message(share)):
        AffinityPropagation(affinity="nearest_neighbors", metric="cosine", n_neighbors=10,
                            preference_quantile=q, random_state=0).fit(X.toarray())


def test_a_quantile_on_a_wide_tie_of_a_sparse_graph_is_warned_about():
    from scipy import sparse
    from sklearn.preprocessing import normalize

    Xn = normalize(_documents())
    S = (Xn @ Xn.T).toarray()
    n = S.shape[0]
    rows, cols = np.divmod(np.arange(n * n), n)
    complete = sparse.coo_matrix((S.ravel(), (rows, cols)), shape=(n, n))  # zeros stored
    some = (rows + cols) % 3 != 0
    partial = sparse.coo_matrix((S.ravel()[some], (rows[some], cols[some])), shape=(n, n))
    for graph in (complete, partial):
        off = graph.row != graph.col
        share = float(np.mean(graph.data[off] == 0))
        with pytest.warns(UserWarning, match=_tie_message(share)):
            fitted = AffinityPropagation(affinity="precomputed", preference_quantile=0.3,
                                         random_state=0).fit(graph)
        assert fitted.preference_ == 0


def test_no_tie_warning_above_the_tie_on_continuous_similarities_or_for_a_search():
    X = _documents()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        above = AffinityPropagation(affinity="cosine", preference_quantile=0.95,
                                    random_state=0).fit(X)
        AffinityPropagation(preference_quantile=0.5, random_state=0).fit(blobs(60))
        # A search only starts at the quantile: no warning about it.
        AffinityPropagation(affinity="cosine", preference_quantile=0.5, n_clusters=6,
                            random_state=0).fit(X)
    assert above.preference_ > 0
