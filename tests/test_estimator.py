"""The estimator's contract: validation, copies, edge cases, threads, interruption."""

import numba
import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fastap import AffinityPropagation, _resources, _run, affinity_propagation, preference_range
from tests.data import CtrlC, blobs, similarity

# --------------------------------------------------------------------------
# Bad input: a clear error, and nothing lost.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("affinity", ["euclidean", "precomputed"])
def test_non_finite_input_is_rejected(bad, affinity):
    X = similarity(blobs(20, random_state=0)) if affinity == "precomputed" else blobs(20)
    X[3, 1] = bad
    original = X.copy()
    with pytest.raises(ValueError, match="NaN|infinity"):
        AffinityPropagation(affinity=affinity).fit(X)
    np.testing.assert_array_equal(X, original)


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="0 sample"):
        AffinityPropagation().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="0 sample"):
        AffinityPropagation(affinity="precomputed").fit(np.empty((0, 0)))


def test_non_square_precomputed_is_rejected():
    with pytest.raises(ValueError, match="square array. Got \\(3, 4\\)"):
        AffinityPropagation(affinity="precomputed").fit(np.zeros((3, 4)))


@pytest.mark.parametrize("preference", [np.zeros(5), np.zeros((10, 1)), [[1.0]]])
def test_preference_of_wrong_shape_is_rejected(preference):
    with pytest.raises(ValueError, match="preference must be a scalar or an array of shape"):
        AffinityPropagation(preference=preference).fit(blobs(10))


def test_non_finite_preference_is_rejected():
    with pytest.raises(ValueError, match="preference contains NaN or infinity"):
        AffinityPropagation(preference=np.full(10, np.nan)).fit(blobs(10))


@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csr_array, sparse.coo_matrix])
def test_sparse_precomputed_gives_the_dense_result(container):
    # Sparse similarities are tested in test_sparse.py; here: a sparse matrix
    # holding every off-diagonal pair clusters as the dense one does.
    S = similarity(blobs(40, centers=3))
    preference = np.median(S)
    dense = AffinityPropagation(affinity="precomputed", preference=preference, random_state=0)
    ours = AffinityPropagation(affinity="precomputed", preference=preference, random_state=0)
    np.testing.assert_array_equal(ours.fit(container(S)).labels_, dense.fit(S).labels_)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_iter": 0}, "max_iter"),
        ({"convergence_iter": 0}, "convergence_iter"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_parameter_validation_matches_sklearn(params, match):
    X = blobs(10)
    sklearn_params = {k: v for k, v in params.items() if k != "n_jobs"}
    with pytest.raises(ValueError, match=match) as ours:
        AffinityPropagation(**params).fit(X)
    if sklearn_params:
        with pytest.raises(ValueError) as theirs:
            SklearnAP(**sklearn_params).fit(X)
        assert str(ours.value) == str(theirs.value).replace("sklearn", "fastap")


@pytest.mark.parametrize(
    "params, extra",
    [
        ({"damping": 1.0}, "'auto'"),
        ({"damping": 0.2}, "'auto'"),
        ({"affinity": "manhattan"}, "'cosine'"),
    ],
)
def test_extended_parameters_keep_sklearns_message_and_name_the_extension(params, extra):
    X = blobs(10)
    with pytest.raises(ValueError) as ours:
        AffinityPropagation(**params).fit(X)
    with pytest.raises(ValueError) as theirs:
        SklearnAP(**params).fit(X)
    name = next(iter(params))
    assert f"The '{name}' parameter of AffinityPropagation must be" in str(ours.value)
    assert f"The '{name}' parameter of AffinityPropagation must be" in str(theirs.value)
    assert extra in str(ours.value)


def test_sparse_features_work_for_euclidean():
    X = blobs(60, centers=3)
    dense = AffinityPropagation(random_state=0).fit(X)
    from_sparse = AffinityPropagation(random_state=0).fit(sparse.csr_matrix(X))
    np.testing.assert_array_equal(dense.labels_, from_sparse.labels_)


# --------------------------------------------------------------------------
# Copies: the caller's arrays change only with copy=False.
# --------------------------------------------------------------------------


def test_inputs_are_not_modified_by_default(float_dtype):
    X = blobs(50, dtype=float_dtype)
    S = similarity(X).astype(float_dtype)
    X0, S0 = X.copy(), S.copy()
    AffinityPropagation(random_state=0).fit(X)
    AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    affinity_propagation(S, random_state=0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(S, S0)


def test_copy_false_works_in_place_as_sklearn():
    S = similarity(blobs(50))
    ours, theirs = S.copy(), S.copy()
    fitted = AffinityPropagation(affinity="precomputed", copy=False, random_state=0).fit(ours)
    SklearnAP(affinity="precomputed", copy=False, random_state=0).fit(theirs)
    assert fitted.affinity_matrix_ is ours
    np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(ours, S)


def test_read_only_memmap_input(tmp_path):
    S = similarity(blobs(40))
    path = tmp_path / "S.npy"
    np.save(path, S)
    mapped = np.load(path, mmap_mode="r")
    for copy in (True, False):
        labels = (
            AffinityPropagation(affinity="precomputed", copy=copy, random_state=0)
            .fit(mapped)
            .labels_
        )
        np.testing.assert_array_equal(labels, affinity_propagation(S, random_state=0)[1])
    np.testing.assert_array_equal(np.load(path), S)


def test_fortran_ordered_and_integer_input():
    X = np.asfortranarray(blobs(60, centers=3))
    S = np.asfortranarray(similarity(X))
    reference = affinity_propagation(np.ascontiguousarray(S), random_state=0)[1]
    np.testing.assert_array_equal(affinity_propagation(S, random_state=0)[1], reference)
    S_int = np.round(S).astype(np.int64)
    ours = AffinityPropagation(affinity="precomputed", random_state=0).fit(S_int)
    assert ours.affinity_matrix_.dtype == np.float64
    X_int = np.round(blobs(60, centers=3) * 10).astype(np.int32)
    ours = AffinityPropagation(random_state=0).fit(X_int)
    theirs = SklearnAP(random_state=0).fit(X_int)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.cluster_centers_.dtype == X_int.dtype


# --------------------------------------------------------------------------
# Degenerate cases, as scikit-learn.
# --------------------------------------------------------------------------


def test_single_sample():
    for affinity, X in (("euclidean", [[1.0, 2.0]]), ("precomputed", [[0.0]])):
        with pytest.warns(UserWarning, match="mutually equal similarities"):
            ap = AffinityPropagation(affinity=affinity).fit(X)
        np.testing.assert_array_equal(ap.cluster_centers_indices_, [0])
        np.testing.assert_array_equal(ap.labels_, [0])
        assert ap.n_iter_ == 0


@pytest.mark.parametrize("preference, expected_centers", [(-10.0, [0]), (10.0, [0, 1, 2])])
def test_equal_similarities(preference, expected_centers):
    X = np.zeros((3, 2))
    S = similarity(X)
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        centers, labels = affinity_propagation(S, preference=preference)
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        reference = SklearnAP(affinity="precomputed", preference=preference).fit(S)
    sk_centers = reference.cluster_centers_indices_
    np.testing.assert_array_equal(centers, expected_centers)
    np.testing.assert_array_equal(centers, sk_centers)


def test_equal_similarities_with_unequal_preferences_runs():
    S = np.zeros((4, 4))
    ours = affinity_propagation(
        S, preference=[0.0, -1.0, -2.0, -3.0], random_state=0, return_n_iter=True
    )
    from sklearn.cluster import affinity_propagation as sk_ap

    theirs = sk_ap(S, preference=[0.0, -1.0, -2.0, -3.0], random_state=0, return_n_iter=True)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_no_exemplar_gives_minus_one_and_warns():
    # scikit-learn's own test: max_iter=1 yields no exemplar.
    X = np.array([[0, 0], [1, 1], [-2, -2]])
    with pytest.warns(ConvergenceWarning, match="will not have any cluster centers"):
        ap = AffinityPropagation(preference=-10, max_iter=1, random_state=82).fit(X)
    np.testing.assert_array_equal(ap.labels_, [-1, -1, -1])
    assert ap.cluster_centers_indices_.size == 0
    assert ap.cluster_centers_.shape == (0, 2)
    assert ap.converged_ is False
    with pytest.warns(ConvergenceWarning, match="Labeling every sample as '-1'"):
        np.testing.assert_array_equal(ap.predict(X), [-1, -1, -1])


def test_non_convergence_warns_and_reports():
    X = blobs(1000)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        ap = AffinityPropagation(random_state=0).fit(X)
    assert ap.converged_ is False and ap.n_iter_ == 200


def test_predict_precomputed_needs_a_known_shape():
    ap = AffinityPropagation(affinity="precomputed", random_state=0).fit(similarity(blobs(20)))
    width = ap.cluster_centers_indices_.size + 1
    assert width != 20
    with pytest.raises(ValueError, match="training samples or to the"):
        ap.predict(np.zeros((3, width)))
    with pytest.raises(NotFittedError):
        AffinityPropagation().predict(blobs(3))


def test_refit_precomputed_drops_stale_centers():
    ap = AffinityPropagation(random_state=0).fit(blobs(30))
    ap.set_params(affinity="precomputed").fit(similarity(blobs(30)))
    assert not hasattr(ap, "cluster_centers_")


# --------------------------------------------------------------------------
# Threads, memory, progress, interruption.
# --------------------------------------------------------------------------


def test_thread_count_is_restored_even_after_errors():
    before = numba.get_num_threads()
    AffinityPropagation(n_jobs=1, random_state=0).fit(blobs(500))
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        AffinityPropagation(n_jobs=1, affinity="precomputed").fit(np.zeros((2, 3)))
    assert numba.get_num_threads() == before


@pytest.mark.parametrize(
    "n_jobs, expected",
    [(None, None), (1, 1), (-1, "all"), (-2, "all but one"), (-100, 1), (10**6, "all")],
)
def test_resolve_n_threads(n_jobs, expected):
    """joblib's effective_n_jobs: negative counts from the cores, at least one."""
    got = _resources.resolve_n_threads(n_jobs)
    cores = numba.config.NUMBA_NUM_THREADS
    if expected is None:
        assert got == numba.get_num_threads()
    elif expected == "all":
        assert got == cores
    elif expected == "all but one":
        assert got == max(1, cores - 1)
    else:
        assert got == expected


def test_n_jobs_zero_is_an_error_everywhere():
    X = blobs(30)
    for run in (
        lambda: AffinityPropagation(n_jobs=0).fit(X),
        lambda: affinity_propagation(similarity(X), n_jobs=0),
        lambda: preference_range(X, n_jobs=0),
    ):
        with pytest.raises(ValueError, match="n_jobs=0 has no meaning.*-1 for all cores"):
            run()


def test_memory_error_before_allocating(monkeypatch):
    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"200 samples in float64 needs about .* float32 input"):
        AffinityPropagation().fit(blobs(200))
    with pytest.raises(MemoryError, match="float32"):
        AffinityPropagation(affinity="precomputed").fit(similarity(blobs(200)).astype(np.float32))


def test_verbose_reports_progress(capsys, monkeypatch):
    monkeypatch.setattr(
        _run.Progress, "__init__", _fast_progress_init(_run.Progress.__init__)
    )
    AffinityPropagation(verbose=True, random_state=0).fit(blobs(300))
    out = capsys.readouterr().out
    assert "affinity propagation on 300 samples" in out
    assert "exemplars" in out and "changed" in out
    assert "Converged after" in out


def _fast_progress_init(original):
    def init(self, enabled, n_samples, interval=1.0):
        original(self, enabled, n_samples, interval=0.0)

    return init


@pytest.mark.timeout(120)  # a lost interrupt would otherwise run 100,000 iterations
def test_keyboard_interrupt_stops_within_an_iteration_and_leaves_estimator_unfitted():
    X = blobs(1500)
    threads_before = numba.get_num_threads()
    ctrl_c = CtrlC(after=3)
    ap = AffinityPropagation(
        max_iter=100_000, convergence_iter=100_000, random_state=0, n_jobs=1, callback=ctrl_c
    )
    with ctrl_c, pytest.raises(KeyboardInterrupt):
        ap.fit(X)
    # The fit stopped at the iteration the interrupt arrived in.
    assert ctrl_c.sent_at is not None and ctrl_c.iterations <= ctrl_c.sent_at + 1
    assert not hasattr(ap, "labels_")
    assert numba.get_num_threads() == threads_before


def test_fit_predict_equals_labels():
    X = blobs(100, centers=3)
    ap = AffinityPropagation(random_state=0)
    np.testing.assert_array_equal(ap.fit_predict(X), ap.labels_)
    assert ap.n_features_in_ == X.shape[1]


def test_nearest_neighbors_refuses_sparse_features_and_shows_the_way():
    X = sparse.random(40, 300, density=0.03, format="csr", random_state=0)
    with pytest.raises(TypeError, match=r"(?s)sparse matrix.*kneighbors_graph.*metric='cosine'"
                                        r".*affinity='precomputed'.*TruncatedSVD"):
        AffinityPropagation(affinity="nearest_neighbors", metric="cosine").fit(X)
