"""Sparse Affinity Propagation: kernels against the NumPy reference, parity
with the dense engine on complete graphs, graph semantics, the k-NN graph,
merging fragments, and the estimator's behaviour on sparse input."""

import numba
import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import AffinityPropagation as SklearnAP
from sklearn.metrics import adjusted_rand_score

from fastap import AffinityPropagation, _graph, _neighbors, _resources, _run, _sparse
from fastap._kernels import sparse_graph
from tests import reference_sparse_ap as reference
from tests.data import CtrlC, blobs, similarity

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def random_graph(n, density, random_state, *, symmetric=False, isolated=(), dtype=np.float64):
    """A random sparse similarity graph (no diagonal stored), as CSR."""
    rng = np.random.RandomState(random_state)
    mask = rng.uniform(size=(n, n)) < density
    if symmetric:
        mask |= mask.T
    np.fill_diagonal(mask, False)
    for i in isolated:
        mask[i, :] = False
    values = -rng.uniform(1, 100, size=(n, n))
    if symmetric:
        values = np.minimum(values, values.T)
    return sparse.csr_matrix(np.where(mask, values, 0.0)).astype(dtype)


def prepared_graph(S, preference, random_state=0):
    """The graph the engine iterates on: diagonal, preference and noise."""
    indptr, indices, data = _sparse.canonical_csr(S)
    graph = _sparse.with_diagonal(indptr, indices, data, np.asarray(preference, dtype=data.dtype))
    _sparse.add_degeneracy_noise(graph, np.random.RandomState(random_state))
    return graph


def engine_messages(graph, n_iter, damping, n_threads, parallel, monkeypatch):
    monkeypatch.setattr(_sparse, "PARALLEL_MIN_PAIRS", 0 if parallel else 10**12)
    with _resources.numba_threads(min(n_threads, MAX_THREADS)):
        state = _sparse.SparseMessageState(
            graph, damping=damping, n_threads=n_threads, prepared=True
        )
        state.prepare()
        for _ in range(n_iter):
            state.iterate()
        state.complete_availability()
    return state.R, state.A, state.is_exemplar


def complete_csr(S):
    """Every pair stored, the diagonal included (csr_matrix(S) drops zeros)."""
    n = S.shape[0]
    indptr = np.arange(0, n * n + 1, n)
    indices = np.tile(np.arange(n), n)
    return sparse.csr_matrix((S.ravel().copy(), indices, indptr), shape=(n, n))


# --------------------------------------------------------------------------
# Kernels against the reference.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parallel, n_threads", [(False, 1), (True, 2), (True, 3), (True, 7)],
    ids=["serial", "parallel-2", "parallel-3", "parallel-7"],
)
@pytest.mark.parametrize("n_iter", [1, 2, 9])
def test_messages_match_reference_bitwise(float_dtype, parallel, n_threads, n_iter, monkeypatch):
    S = random_graph(60, 0.15, 1, isolated=(5, 17), dtype=float_dtype)
    graph = prepared_graph(S, np.median(S.data))
    R, A, flags = engine_messages(graph, n_iter, 0.6, n_threads, parallel, monkeypatch)
    # The reference prepares its own graph (SciPy, NumPy): a bug in fastap's
    # graph preparation cannot reach both sides.
    indptr, indices, S_ref = reference.prepare_graph(S, np.median(S.data), np.random.RandomState(0))
    R_ref, A_ref, flags_ref = reference.iterate(indptr, indices, S_ref, n_iter, 0.6)
    assert R.dtype == A.dtype == float_dtype
    np.testing.assert_array_equal(R, R_ref)
    np.testing.assert_array_equal(A, A_ref)
    np.testing.assert_array_equal(flags, flags_ref)
    assert np.all(np.isfinite(R)) and np.all(np.isfinite(A))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("layout", ["csr", "unsorted-coo", "csc", "stored-diagonal"])
def test_prepared_graph_equals_independent_construction(layout, dtype):
    S = random_graph(45, 0.2, 6, isolated=(2,))
    if dtype == np.int64:
        S = sparse.csr_matrix((np.round(S.data).astype(np.int64), S.indices, S.indptr), S.shape)
    else:
        S = S.astype(dtype)
    if layout == "unsorted-coo":
        coo = S.tocoo()
        order = np.random.RandomState(0).permutation(coo.nnz)
        S = sparse.coo_matrix((coo.data[order], (coo.row[order], coo.col[order])), coo.shape)
    elif layout == "csc":
        S = S.tocsc()
    elif layout == "stored-diagonal":
        S = (S + sparse.diags(np.full(45, -7.0), format="csr")).astype(S.dtype)
    preference = np.median(S.tocoo().data) if dtype != np.int64 else -50.0
    graph = prepared_graph(S, preference, random_state=5)
    indptr, indices, values = reference.prepare_graph(S, preference, np.random.RandomState(5))
    np.testing.assert_array_equal(graph.indptr, indptr)
    np.testing.assert_array_equal(graph.indices, indices)
    assert graph.S.dtype == values.dtype
    np.testing.assert_array_equal(graph.S, values)


def test_serial_and_parallel_bitwise_equal_for_any_thread_count(monkeypatch):
    S = random_graph(300, 0.05, 2)
    graph = prepared_graph(S, np.median(S.data))
    runs = [engine_messages(graph, 25, 0.7, 1, False, monkeypatch)]
    # Up to 7 threads: conftest.py raises Numba's pool above the core count.
    assert MAX_THREADS >= 7
    for n_threads in (2, 3, 7):
        runs.append(engine_messages(graph, 25, 0.7, n_threads, True, monkeypatch))
    for R, A, flags in runs[1:]:
        np.testing.assert_array_equal(R, runs[0][0])
        np.testing.assert_array_equal(A, runs[0][1])
        np.testing.assert_array_equal(flags, runs[0][2])


def test_column_order_int64_positions_give_the_same_column_view():
    S = random_graph(40, 0.2, 3)
    graph = prepared_graph(S, -50.0)
    col_indptr = np.empty(41, dtype=np.int64)
    order32 = np.empty(graph.nnz, dtype=np.int32)
    order64 = np.empty(graph.nnz, dtype=np.int64)
    sparse_graph.column_order(graph.indptr, graph.indices, col_indptr, order32)
    sparse_graph.column_order(graph.indptr, graph.indices, col_indptr, order64)
    np.testing.assert_array_equal(order32, order64)
    csc = graph.to_scipy().tocsc()
    np.testing.assert_array_equal(col_indptr, csc.indptr)
    np.testing.assert_array_equal(graph.S[order64], csc.data)


@pytest.mark.parametrize("damping", [0.5, 0.8])
@pytest.mark.parametrize("symmetric", [False, True], ids=["asymmetric", "symmetric"])
def test_whole_fit_matches_reference(symmetric, damping):
    S = random_graph(50, 0.12, 4, symmetric=symmetric, isolated=(3,))
    preference = np.median(S.data)
    ap = AffinityPropagation(
        affinity="precomputed", preference=preference, max_iter=60, convergence_iter=8,
        damping=damping, random_state=0,
    ).fit(S)
    indptr, indices, S_ref = reference.prepare_graph(S, preference, np.random.RandomState(0))
    centers, labels, n_iter = reference.affinity_propagation(
        indptr, indices, S_ref, damping, 60, 8
    )
    np.testing.assert_array_equal(ap.cluster_centers_indices_, centers)
    np.testing.assert_array_equal(ap.labels_, labels)
    assert ap.n_iter_ == n_iter
    assert 3 in ap.cluster_centers_indices_  # isolated: its own exemplar


# --------------------------------------------------------------------------
# Complete graphs: identical to the dense engine.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"damping": 0.9, "max_iter": 400},
        {"max_iter": 12},  # stops before converging
        {"preference": -5.0},
    ],
    ids=["default", "damped", "not-converged", "preference"],
)
def test_complete_graph_identical_to_dense(params):
    S = similarity(blobs(220, centers=4, random_state=2))
    dense = AffinityPropagation(affinity="precomputed", random_state=0, **params).fit(S)
    ours = AffinityPropagation(affinity="precomputed", random_state=0, **params).fit(
        complete_csr(S)
    )
    np.testing.assert_array_equal(ours.cluster_centers_indices_, dense.cluster_centers_indices_)
    np.testing.assert_array_equal(ours.labels_, dense.labels_)
    assert ours.n_iter_ == dense.n_iter_
    assert ours.converged_ == dense.converged_
    np.testing.assert_array_equal(ours.affinity_matrix_.toarray(), dense.affinity_matrix_)
    if params.get("max_iter") == 12:
        assert not ours.converged_


def test_complete_graph_identical_to_dense_in_parallel(monkeypatch):
    monkeypatch.setattr(_sparse, "PARALLEL_MIN_PAIRS", 0)
    S = similarity(blobs(300, centers=5, random_state=1))
    dense = AffinityPropagation(affinity="precomputed", random_state=0, n_jobs=2).fit(S)
    ours = AffinityPropagation(affinity="precomputed", random_state=0, n_jobs=2).fit(
        complete_csr(S)
    )
    np.testing.assert_array_equal(ours.labels_, dense.labels_)
    assert ours.n_iter_ == dense.n_iter_


def test_complete_graph_with_equal_similarities_is_the_dense_shortcut():
    S = np.full((6, 6), -3.0)
    for preference in (-1.0, -10.0):
        dense = AffinityPropagation(affinity="precomputed", preference=preference)
        ours = AffinityPropagation(affinity="precomputed", preference=preference)
        with pytest.warns(UserWarning, match="mutually equal"):
            dense.fit(S)
        with pytest.warns(UserWarning, match="mutually equal"):
            ours.fit(complete_csr(S))
        np.testing.assert_array_equal(ours.labels_, dense.labels_)
        np.testing.assert_array_equal(ours.cluster_centers_indices_, dense.cluster_centers_indices_)


# --------------------------------------------------------------------------
# Semantics of a sparse matrix.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "container",
    [sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix, sparse.lil_matrix,
     sparse.dok_matrix, sparse.csr_array, sparse.coo_array, sparse.csc_array],
)
def test_every_sparse_container_gives_the_same_result(container):
    S = random_graph(80, 0.1, 5)
    expected = AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    got = AffinityPropagation(affinity="precomputed", random_state=0).fit(container(S))
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    assert got.n_iter_ == expected.n_iter_
    assert sparse.issparse(got.affinity_matrix_)
    assert isinstance(got.affinity_matrix_, sparse.sparray) == isinstance(
        container(S), sparse.sparray
    )


def test_unsorted_indices_and_integer_values_are_accepted():
    S = sparse.csr_matrix(
        (np.array([-2, -1, -4, -3, -1]), np.array([2, 1, 2, 0, 1]), np.array([0, 2, 3, 5])),
        shape=(3, 3),
    )
    assert not S.has_sorted_indices
    ap = AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    assert ap.affinity_matrix_.dtype == np.float64
    # The reference sorts the pairs itself; the default preference of sparse
    # input is the median of the stored similarities.
    indptr, indices, S_ref = reference.prepare_graph(S, np.median(S.data), np.random.RandomState(0))
    centers, labels, n_iter = reference.affinity_propagation(indptr, indices, S_ref, 0.5, 200, 15)
    np.testing.assert_array_equal(ap.cluster_centers_indices_, centers)
    np.testing.assert_array_equal(ap.labels_, labels)
    assert ap.n_iter_ == n_iter


@pytest.mark.parametrize("value_dtype", [np.float64, np.float32, np.int64, np.int32])
@pytest.mark.parametrize("kind", ["coo", "csr", "csc"])
def test_duplicate_pairs_are_rejected(kind, value_dtype):
    # Integer values too: casting them to float (as validation did first)
    # made SciPy sum the duplicates before they could be seen.
    rows, cols = np.array([0, 1, 1, 2]), np.array([1, 0, 0, 1])
    values = -np.arange(1, 5).astype(value_dtype)
    if kind == "csc":
        S = sparse.csc_matrix(
            (values, np.array([1, 0, 0, 1]), np.array([0, 1, 3, 4])), shape=(3, 3)
        )
    elif kind == "coo":
        S = sparse.coo_matrix((values, (rows, cols)), shape=(3, 3))
    else:
        S = sparse.csr_matrix(
            (values, np.array([1, 0, 0, 1]), np.array([0, 1, 3, 4])), shape=(3, 3)
        )
    with pytest.raises(ValueError, match=r"stores some pair \(i, j\) more than once"):
        AffinityPropagation(affinity="precomputed").fit(S)


def test_missing_pairs_are_never_exemplars_not_zero():
    # Two groups with only within-group pairs; similarity 0 would join them.
    S = sparse.block_diag([-np.ones((4, 4)), -np.ones((3, 3))], format="csr")
    ap = AffinityPropagation(affinity="precomputed", preference=-2.0, random_state=0).fit(S)
    assert len(set(ap.labels_[:4]) & set(ap.labels_[4:])) == 0


def test_isolated_samples_are_their_own_exemplars_without_nan():
    S = random_graph(40, 0.2, 6, isolated=(0, 7, 39))
    # A sample that stores nothing at all, and one whose column is empty too.
    S = S.tolil()
    S[:, 39] = 0
    S = S.tocsr()
    S.eliminate_zeros()
    graph = prepared_graph(S, np.median(S.data))
    state = _sparse.SparseMessageState(
        _sparse.with_diagonal(*_sparse.canonical_csr(S), np.median(S.data)), damping=0.5,
        random_state=np.random.RandomState(0), n_threads=1,
    )
    options = _run.RunOptions(max_iter=50, convergence_iter=10, keep_messages=True)
    result = _run.run(state, options)
    R, A = result.messages
    assert graph.nnz == R.size
    assert np.all(np.isfinite(R)) and np.all(np.isfinite(A))
    indptr, indices, S_ref = reference.prepare_graph(S, np.median(S.data), np.random.RandomState(0))
    centers, labels, _ = reference.affinity_propagation(indptr, indices, S_ref, 0.5, 50, 10)
    np.testing.assert_array_equal(result.cluster_centers_indices, centers)
    np.testing.assert_array_equal(result.labels, labels)
    for i in (0, 7, 39):
        assert i in result.cluster_centers_indices
    # No sample stores a pair with 39: nobody can join its cluster.
    assert np.sum(result.labels == result.labels[39]) == 1


@pytest.mark.parametrize(
    "S, preference",
    [
        ([[-5, -5, -5], [-2, -5, -5], [-2, -5, -2]], -2.0),
        ([[-5, 0, -1], [-1, -2, -2], [-5, -1, -1]], -1.0),
        ([[-1, 0, -5, -5], [0, -1, -2, -1], [-2, -2, 0, -5], [-2, -1, -5, -5]], -1.0),
    ],
)
def test_complete_graph_with_ties_matches_sklearn(S, preference):
    # Few distinct values: A(k, k) + R(k, k) lands exactly on 0, where an
    # exemplar test ">= 0" instead of "> 0" changes the result (these were
    # found by running scikit-learn's loop with its test flipped).
    S = np.array(S, dtype=np.float64)
    ours = AffinityPropagation(
        affinity="precomputed", preference=preference, random_state=0
    ).fit(complete_csr(S))
    theirs = SklearnAP(affinity="precomputed", preference=preference, random_state=0).fit(S)
    np.testing.assert_array_equal(ours.cluster_centers_indices_, theirs.cluster_centers_indices_)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_


def test_only_diagonal_stored_gives_one_cluster_per_sample():
    ap = AffinityPropagation(affinity="precomputed", random_state=0)
    ap.fit(sparse.eye(5, format="csr"))
    np.testing.assert_array_equal(ap.labels_, np.arange(5))
    assert ap.converged_


def test_stored_diagonal_is_replaced_by_the_preference():
    S = random_graph(30, 0.3, 7).tolil()
    S.setdiag(123.0)
    ap = AffinityPropagation(affinity="precomputed", preference=-7.0, random_state=0).fit(S.tocsr())
    assert np.allclose(ap.affinity_matrix_.diagonal(), -7.0)


def test_default_preference_is_median_of_stored_values():
    S = random_graph(50, 0.2, 8)
    ap = AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    assert ap.preference_ == np.median(S.data)
    explicit = AffinityPropagation(
        affinity="precomputed", preference=np.median(S.data), random_state=0
    ).fit(S)
    np.testing.assert_array_equal(ap.labels_, explicit.labels_)


def test_asymmetric_graph_and_per_sample_preferences():
    S = random_graph(60, 0.1, 9)
    assert (S != S.T).nnz > 0
    preference = np.linspace(-80, -20, 60)
    ap = AffinityPropagation(affinity="precomputed", preference=preference, random_state=0).fit(S)
    np.testing.assert_allclose(ap.affinity_matrix_.diagonal(), preference, rtol=1e-12)
    # Every sample's exemplar is one it stores a pair with (or itself).
    exemplar = ap.cluster_centers_indices_[ap.labels_]
    stored = S.tolil()
    for i in range(60):
        assert exemplar[i] == i or stored[i, exemplar[i]] != 0


def test_float32_stays_float32_and_agrees_with_float64():
    S = random_graph(70, 0.15, 10, symmetric=True)
    ap64 = AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    ap32 = AffinityPropagation(affinity="precomputed", random_state=0).fit(S.astype(np.float32))
    assert ap32.affinity_matrix_.dtype == np.float32
    assert adjusted_rand_score(ap64.labels_, ap32.labels_) > 0.9


@pytest.mark.parametrize(
    "S, match",
    [
        (sparse.csr_matrix(np.ones((3, 4))), "square"),
        (sparse.csr_matrix(np.array([[0, np.nan], [1, 0]])), "NaN"),
        (sparse.csr_matrix(np.array([[0, -np.inf], [1, 0]])), "infinity"),
    ],
)
def test_bad_sparse_input(S, match):
    with pytest.raises(ValueError, match=match):
        AffinityPropagation(affinity="precomputed").fit(S)


def test_options_the_sparse_fit_does_not_offer_are_errors():
    S = random_graph(20, 0.3, 11)
    with pytest.raises(ValueError, match="merge_fragments=True needs the features"):
        AffinityPropagation(affinity="precomputed", merge_fragments=True).fit(S)
    with pytest.raises(ValueError, match="metric applies to"):
        AffinityPropagation(affinity="precomputed", metric="cosine").fit(S)


def test_memory_error_before_allocating(monkeypatch):
    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"Sparse affinity propagation on 200 samples with"):
        AffinityPropagation(affinity="precomputed").fit(random_graph(200, 0.1, 12))
    with pytest.raises(MemoryError, match="stored pairs"):
        AffinityPropagation(affinity="nearest_neighbors").fit(blobs(200))


def test_memory_estimate_per_stored_pair():
    # S, R, A, a column index, a CSC position and the noise's float64 normal.
    assert _sparse.fit_memory_bytes(0, 10**6, np.float64) == 40 * 10**6
    assert _sparse.fit_memory_bytes(0, 10**6, np.float32) == 28 * 10**6


def test_verbose_and_callback_and_adaptive_damping(capsys):
    S = random_graph(100, 0.1, 13)
    seen = []
    ap = AffinityPropagation(
        affinity="precomputed", verbose=True, damping="auto", random_state=0,
        callback=lambda info: seen.append(info.iteration),
    ).fit(S)
    out = capsys.readouterr().out
    assert "affinity propagation on 100 samples" in out
    assert "Converged after" in out or "Did not converge" in out
    assert seen == list(range(1, ap.n_iter_ + 1))


def test_fit_predict_and_predict_with_precomputed_sparse():
    S = random_graph(60, 0.2, 14)
    ap = AffinityPropagation(affinity="precomputed", random_state=0)
    labels = ap.fit_predict(S)
    np.testing.assert_array_equal(labels, ap.labels_)
    assert not hasattr(ap, "cluster_centers_")
    # predict takes dense similarities to the exemplars.
    to_exemplars = -np.abs(np.random.RandomState(0).randn(5, ap.cluster_centers_indices_.size))
    np.testing.assert_array_equal(ap.predict(to_exemplars), np.argmax(to_exemplars, axis=1))


@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.coo_array, sparse.csc_matrix])
def test_predict_with_sparse_similarities_treats_missing_pairs_as_never(container):
    S = random_graph(80, 0.15, 21)
    ap = AffinityPropagation(affinity="precomputed", random_state=0).fit(S)
    centers = ap.cluster_centers_indices_
    assert centers.size >= 2
    # The training graph: every sample that stores a pair with an exemplar
    # goes to its most similar stored exemplar (0 would beat every stored
    # negative similarity if missing pairs were zeros).
    expected = np.full(80, -1)
    dense = S.toarray()
    stored = S.toarray() != 0
    for i in range(80):
        candidates = [k for k, e in enumerate(centers) if stored[i, e]]
        if candidates:
            expected[i] = max(candidates, key=lambda k: (dense[i, centers[k]], -k))
    got = ap.predict(container(S))
    np.testing.assert_array_equal(got, expected)
    assert (got == -1).any() and (got >= 0).any()
    # Similarities to the exemplars only, sparse: the same answer.
    np.testing.assert_array_equal(ap.predict(container(S.tocsc()[:, centers])), expected)
    with pytest.raises(ValueError, match="training samples or to the"):
        ap.predict(container(S[:, :7]))


def test_exemplar_hierarchy_needs_dense_similarities():
    ap = AffinityPropagation(affinity="precomputed", random_state=0).fit(random_graph(40, 0.3, 2))
    with pytest.raises(ValueError, match="not available after a fit on a sparse graph"):
        ap.exemplar_hierarchy()


def test_preference_quantile_zero_is_used_not_ignored():
    # 0.0 is falsy: it once fell back to the median silently.
    S = random_graph(30, 0.3, 3)
    ap = AffinityPropagation(affinity="precomputed", preference_quantile=0.0, random_state=0)
    ap.fit(S)
    off_diagonal = S.tocoo()
    off_diagonal = off_diagonal.data[off_diagonal.row != off_diagonal.col]
    assert ap.preference_ == off_diagonal.min()


def test_damping_is_reported_when_the_equal_similarities_shortcut_runs():
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        ap = AffinityPropagation(affinity="precomputed", damping=0.7).fit(
            sparse.csr_matrix(np.ones((3, 3)))
        )
    assert ap.damping_ == 0.7


@pytest.mark.parametrize("n_neighbors", [0, -3, 2.5, True])
def test_nearest_neighbors_graph_validates_n_neighbors(n_neighbors):
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        _graph.nearest_neighbors_graph(blobs(20), n_neighbors)


@pytest.mark.timeout(120)  # a lost interrupt would otherwise run 10**8 iterations
def test_keyboard_interrupt_leaves_estimator_unfitted():
    S = random_graph(400, 0.05, 15)
    ctrl_c = CtrlC(after=3)
    ap = AffinityPropagation(
        affinity="precomputed", max_iter=10**8, convergence_iter=10**8, random_state=0,
        n_jobs=1, callback=ctrl_c,
    )
    threads_before = numba.get_num_threads()
    with ctrl_c, pytest.raises(KeyboardInterrupt):
        ap.fit(S)
    assert ctrl_c.sent_at is not None and ctrl_c.iterations <= ctrl_c.sent_at + 1
    assert not hasattr(ap, "labels_")
    assert numba.get_num_threads() == threads_before


# --------------------------------------------------------------------------
# The k-NN graph.
# --------------------------------------------------------------------------


def brute_force_union(X, k, metric):
    n = X.shape[0]
    if metric == "cosine":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        S = Xn @ Xn.T
        distance = -S
    else:
        S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
        distance = -S
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n, n), dtype=bool)
    mask[np.repeat(np.arange(n), k), nearest.ravel()] = True
    mask |= mask.T
    return mask, S


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_neighbors_graph_is_the_symmetric_union(metric):
    X = blobs(150, centers=3, random_state=3) + 20.0
    G = _graph.nearest_neighbors_graph(X, 7, metric=metric)
    mask, S = brute_force_union(X, 7, metric)
    np.testing.assert_array_equal(G.toarray() != 0, mask)
    np.testing.assert_allclose(G.toarray()[mask], S[mask], rtol=1e-12)
    assert G.has_sorted_indices and (G != G.T).nnz == 0
    assert np.all(np.diff(G.indptr) >= 7)


def test_approximate_search_is_called_for_large_inputs(monkeypatch):
    # pynndescent itself compiles for ~30 s: here a stand-in that returns the
    # exact lists (itself first, as pynndescent does) checks the plumbing;
    # asv_benchmarks/sparse_report.py runs the real search at scale.
    import pynndescent

    X = blobs(300, centers=4, random_state=4)
    exact = _graph.kneighbors(X, 10, exact=True)
    calls = []

    class StandIn:
        def __init__(self, data, n_neighbors, **options):
            calls.append((n_neighbors, options))
            self.neighbor_graph = (
                np.hstack([np.arange(300)[:, None], exact[:, : n_neighbors - 1]]),
                None,
            )

    monkeypatch.setattr(pynndescent, "NNDescent", StandIn)
    monkeypatch.setattr(_graph, "EXACT_MAX_SAMPLES", 100)
    found = _graph.kneighbors(X, 10, random_state=7)
    np.testing.assert_array_equal(found, exact)
    assert calls == [(11, calls[0][1])] and calls[0][1]["random_state"] == 7
    # pynndescent's lists depend on its thread count; fastap's must not
    # depend on n_jobs, so the descent always runs on one thread.
    assert calls[0][1]["n_jobs"] == 1
    G = _graph.nearest_neighbors_graph(X, 10)
    np.testing.assert_array_equal(G.toarray() != 0, brute_force_union(X, 10, "euclidean")[0])


def test_drop_self_keeps_k_entries_even_without_self():
    found = np.array([[0, 5, 6], [7, 8, 9], [3, 2, 1]], dtype=np.int32)
    np.testing.assert_array_equal(
        _graph._drop_self(found, 2), [[5, 6], [7, 8], [3, 1]]
    )


# --------------------------------------------------------------------------
# affinity="nearest_neighbors" and merging fragments.
# --------------------------------------------------------------------------


def test_nearest_neighbors_end_to_end():
    X = blobs(600, centers=4, random_state=0)
    truth = AffinityPropagation(preference=-3000.0, damping=0.9, random_state=0).fit(X)
    ap = AffinityPropagation(
        affinity="nearest_neighbors", n_neighbors=15, preference=-3000.0, damping=0.9,
        random_state=0,
    )
    labels = ap.fit_predict(X)
    np.testing.assert_array_equal(labels, ap.labels_)
    assert adjusted_rand_score(truth.labels_, labels) == 1.0
    np.testing.assert_array_equal(ap.cluster_centers_, X[ap.cluster_centers_indices_])
    np.testing.assert_array_equal(ap.predict(ap.cluster_centers_), np.arange(4))
    assert sparse.issparse(ap.affinity_matrix_) and ap.affinity_matrix_.shape == (600, 600)
    assert ap.n_features_in_ == 8


def test_merging_fragments_recovers_the_dense_clusters():
    X = blobs(800, centers=5, random_state=1)
    dense = AffinityPropagation(preference=-3000.0, damping=0.9, random_state=0).fit(X)
    params = {"affinity": "nearest_neighbors", "n_neighbors": 10, "preference": -3000.0,
              "damping": 0.9, "random_state": 0}
    fragments = AffinityPropagation(merge_fragments=False, **params).fit(X)
    merged = AffinityPropagation(merge_fragments=True, **params).fit(X)
    assert fragments.cluster_centers_indices_.size > 4 * dense.cluster_centers_indices_.size
    assert adjusted_rand_score(dense.labels_, fragments.labels_) < 0.5
    assert adjusted_rand_score(dense.labels_, merged.labels_) == 1.0
    assert merged.cluster_centers_indices_.size == dense.cluster_centers_indices_.size


def test_merge_levels_through_a_sparse_level(monkeypatch):
    monkeypatch.setattr(_neighbors, "MERGE_DENSE_MAX_CLUSTERS", 20)
    monkeypatch.setattr(_neighbors, "MERGE_NEIGHBORS", 40)
    X = blobs(800, centers=5, random_state=1)
    dense = AffinityPropagation(preference=-3000.0, damping=0.9, random_state=0).fit(X)
    merged = AffinityPropagation(
        affinity="nearest_neighbors", n_neighbors=10, preference=-3000.0, damping=0.9,
        random_state=0,
    ).fit(X)
    assert adjusted_rand_score(dense.labels_, merged.labels_) > 0.95


def test_weighted_similarities_are_the_objective_of_moving_whole_clusters():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3)
    labels = np.repeat(np.arange(3), 10)
    exemplars = np.array([0, 10, 20])
    indptr = np.array([0, 3, 6, 9])
    indices = np.tile(np.arange(3, dtype=np.int32), 3)
    for metric in ("euclidean", "cosine"):
        Xm = X / np.linalg.norm(X, axis=1, keepdims=True) if metric == "cosine" else X
        groups = _neighbors.Groups.of_samples(Xm, labels, exemplars)
        S = Xm @ Xm.T if metric == "cosine" else -((Xm[:, None] - Xm[None]) ** 2).sum(axis=2)
        got = _neighbors.weighted_similarities(
            Xm, metric, groups, indptr, indices, np.asarray(-5.0)
        )
        got = got.reshape(3, 3)
        for a in range(3):
            members = np.flatnonzero(labels == a)
            expected = [S[members, exemplars[b]].sum() for b in range(3)]
            expected[a] = -5.0 + S[members, exemplars[a]].sum() - S[exemplars[a], exemplars[a]]
            # Equal up to a constant of the row (which AP ignores).
            shift = expected - got[a]
            np.testing.assert_allclose(shift, shift[0], atol=1e-9)


def test_nearest_neighbors_cosine_and_float32():
    X = np.abs(blobs(300, centers=3, random_state=5)) + 0.1
    ap = AffinityPropagation(
        affinity="nearest_neighbors", metric="cosine", n_neighbors=10, random_state=0
    ).fit(X.astype(np.float32))
    assert ap.affinity_matrix_.dtype == np.float32
    assert ap.cluster_centers_.dtype == np.float32
    assert ap.affinity_matrix_.data.max() <= 1.0 + 1e-6
    predicted = ap.predict(X[ap.cluster_centers_indices_].astype(np.float32))
    np.testing.assert_array_equal(predicted, np.arange(ap.cluster_centers_indices_.size))


def test_nearest_neighbors_default_preference_is_median_of_all_pairs():
    X = blobs(200, centers=3, random_state=6)
    ap = AffinityPropagation(affinity="nearest_neighbors", random_state=0).fit(X)
    assert ap.preference_ == pytest.approx(np.median(similarity(X)), rel=1e-12)
    dense = AffinityPropagation(random_state=0).fit(X)
    assert adjusted_rand_score(dense.labels_, ap.labels_) > 0.9


def test_nearest_neighbors_rejects_sparse_features():
    with pytest.raises(TypeError, match="[Ss]parse"):
        AffinityPropagation(affinity="nearest_neighbors").fit(sparse.csr_matrix(blobs(50)))


def test_tiny_inputs():
    ap = AffinityPropagation(affinity="nearest_neighbors", random_state=0)
    with pytest.warns(UserWarning, match="mutually equal"):
        ap.fit(np.zeros((1, 2)))
    np.testing.assert_array_equal(ap.labels_, [0])
    ap.fit(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    assert ap.labels_.shape == (3,)
    # A partition in which every exemplar labels its own cluster.
    centers = ap.cluster_centers_indices_
    assert centers.size >= 1
    np.testing.assert_array_equal(ap.labels_[centers], np.arange(centers.size))
    assert set(ap.labels_) == set(range(centers.size))
