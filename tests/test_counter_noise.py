"""The counter-based degeneracy noise (fastap/_kernels/noise.py)."""

import numba
import numpy as np
import pytest
from scipy import stats

from fastap._kernels import noise

# --------------------------------------------------------------------------
# A NumPy reference of the generator, written from its description.
# --------------------------------------------------------------------------

def _mix64_reference(x):
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _normals_reference(seed, rows, columns):
    key = _mix64_reference(np.uint64(seed) ^ np.uint64(0xD1B54A32D192ED03))
    i, k = np.meshgrid(np.asarray(rows, np.uint64), np.asarray(columns, np.uint64), indexing="ij")
    first = _mix64_reference(((i << np.uint64(32)) | k) ^ key)
    with np.errstate(over="ignore"):
        second = _mix64_reference(first + np.uint64(0x9E3779B97F4A7C15))
    u1 = ((first >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    u2 = (second >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _normals(seed, first_row, n_rows, n_columns):
    out = np.empty((n_rows, n_columns))
    noise.counter_normals(seed, first_row, n_rows, n_columns, out)
    return out


def test_matches_the_numpy_reference():
    # log and cos of NumPy and of the C library may differ in the last bits.
    np.testing.assert_allclose(
        _normals(7, 3, 40, 60), _normals_reference(7, range(3, 43), range(60)), rtol=1e-13,
        atol=1e-13,
    )


def test_a_pure_function_of_seed_row_and_column():
    whole = _normals(11, 0, 50, 70)
    for cuts in ([0, 50], [0, 1, 50], [0, 17, 18, 49, 50], [0, 7, 14, 21, 28, 35, 42, 50]):
        blocks = [_normals(11, a, b - a, 70) for a, b in zip(cuts[:-1], cuts[1:])]
        assert np.array_equal(np.concatenate(blocks), whole)
    # Wider matrices extend rows without changing the existing columns.
    assert np.array_equal(_normals(11, 0, 50, 90)[:, :70], whole)
    # Different seeds, and (i, k) against (k, i), give different values.
    assert not np.any(_normals(12, 0, 50, 70) == whole)
    assert np.count_nonzero(whole[:50, :50] == whole[:50, :50].T) == 50  # the diagonal only


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_independent_of_blocks_and_threads(dtype):
    rng = np.random.default_rng(0)
    S = -rng.random((90, 90)).astype(dtype)
    info = np.finfo(dtype)
    results = []
    for n_threads, cuts in ((1, [0, 90]), (2, [0, 90]), (2, [0, 5, 6, 61, 90]), (1, [0, 45, 90])):
        noised = S.copy()
        previous = numba.get_num_threads()
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            for a, b in zip(cuts[:-1], cuts[1:]):
                noise.add_counter_noise(noised[a:b], a, 3, info.eps, info.tiny * 100)
        finally:
            numba.set_num_threads(previous)
        results.append(noised)
    for other in results[1:]:
        assert np.array_equal(results[0], other)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_arithmetic_is_scikit_learns(dtype):
    """scikit-learn's ``S += (eps * S + tiny * 100) * normals`` in NumPy, with
    the counter normals in place of the stream's."""
    rng = np.random.default_rng(1)
    S = (-10 * rng.random((40, 40))).astype(dtype)
    info = np.finfo(dtype)
    original = S.copy()
    expected = S.copy()
    expected += (info.eps * expected + info.tiny * 100) * _normals(5, 0, 40, 40)
    noise.add_counter_noise(S, 0, 5, info.eps, info.tiny * 100)
    assert np.array_equal(S, expected)
    assert np.count_nonzero(S != original) > S.size // 2  # the noise is not lost in rounding


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_block_diagonal_is_a_fresh_set_up(dtype):
    rng = np.random.default_rng(2)
    n = 30
    base = (-rng.random((n, n))).astype(dtype)
    info = np.finfo(dtype)
    preference = rng.normal(size=n) - 3

    fresh = base.copy()
    fresh[np.diag_indices(n)] = preference
    noise.add_counter_noise(fresh, 0, 9, info.eps, info.tiny * 100)

    changed = base.copy()
    noise.add_counter_noise(changed, 0, 9, info.eps, info.tiny * 100)  # old diagonal
    for a, b in ((0, 11), (11, 12), (12, n)):
        noise.set_block_diagonal(changed[a:b], a, preference[a:b], 9, info.eps, info.tiny * 100)
    assert np.array_equal(changed, fresh)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_matrix_noise_returns_its_diagonal_normals(dtype):
    """The single machine's entry point: the whole matrix at once, and the
    diagonal's normals, with which setup.add_diagonal_noise redoes the
    diagonal for a new preference as a fresh set-up would."""
    from fastap._kernels import setup

    rng = np.random.default_rng(4)
    n = 25
    base = (-rng.random((n, n))).astype(dtype)
    S = base.copy()
    normals = noise.add_counter_noise_to_matrix(S, 8)
    assert np.array_equal(normals, np.diag(_normals(8, 0, n, n)))
    expected = base.copy()
    noise.add_counter_noise(expected, 0, 8, np.finfo(dtype).eps, np.finfo(dtype).tiny * 100)
    assert np.array_equal(S, expected)
    new_preference = np.full(n, -2.5, dtype=dtype)
    S[np.diag_indices(n)] = new_preference
    info = np.finfo(dtype)
    setup.add_diagonal_noise(S, normals, info.eps, info.tiny * 100)
    fresh = base.copy()
    fresh[np.diag_indices(n)] = new_preference
    noise.add_counter_noise(fresh, 0, 8, info.eps, info.tiny * 100)
    assert np.array_equal(S, fresh)


def test_distribution_is_standard_normal():
    """Loose, deterministic checks on 10**6 values: moments, tails, K-S."""
    z = _normals(2024, 0, 1000, 1000).ravel()
    standard_error = 1 / np.sqrt(z.size)
    assert abs(z.mean()) < 5 * standard_error
    assert abs(z.var() - 1) < 5 * np.sqrt(2) * standard_error
    assert abs(stats.skew(z)) < 5 * np.sqrt(6) * standard_error
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24) * standard_error
    for threshold in (1.0, 2.0, 3.0, 4.0):
        expected = 2 * stats.norm.sf(threshold)
        observed = np.mean(np.abs(z) > threshold)
        assert abs(observed - expected) < 6 * np.sqrt(expected / z.size) + 1e-6
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # Neighbouring counters are not correlated.
    grid = z.reshape(1000, 1000)
    assert abs(np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]) < 5 * standard_error
    assert abs(np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]) < 5 * standard_error
    assert np.abs(z).max() < np.sqrt(2 * 53 * np.log(2)) + 1e-12


def test_seed_from_random_state():
    assert noise.counter_noise_seed(3) == noise.counter_noise_seed(3)
    assert noise.counter_noise_seed(3) != noise.counter_noise_seed(4)
    state = np.random.RandomState(3)
    assert noise.counter_noise_seed(state) == noise.counter_noise_seed(3)
    assert 0 <= noise.counter_noise_seed(None) < 2**63


def test_counter_noise_stream_draws_rows_in_order_and_dense_only():
    stream = noise.CounterNoiseStream(6)
    first, second = stream.standard_normal((3, 20)), stream.standard_normal((4, 20))
    assert np.array_equal(np.concatenate([first, second]), _normals(6, 0, 7, 20))
    with pytest.raises(ValueError, match="draws whole rows"):
        stream.standard_normal(5)


def test_stored_pairs_get_the_noise_of_their_entries():
    from scipy import sparse

    rng = np.random.default_rng(2)
    dense = rng.normal(size=(30, 30))
    dense[rng.uniform(size=dense.shape) < 0.6] = 0.0
    graph = sparse.csr_matrix(dense)
    values = graph.data.copy()
    info = np.finfo(values.dtype)
    noise.add_counter_noise_to_pairs(
        graph.indptr.astype(np.int64), graph.indices, values, 0, 4, info.eps, info.tiny * 100
    )
    noised = dense.copy()
    noise.add_counter_noise(noised, 0, 4, info.eps, info.tiny * 100)
    assert np.array_equal(values, noised[dense != 0])
    # A block of rows 10-19 on its own: the same bits.
    block = graph[10:20]
    block_values = block.data.copy()
    noise.add_counter_noise_to_pairs(
        block.indptr.astype(np.int64), block.indices, block_values, 10, 4, info.eps,
        info.tiny * 100,
    )
    assert np.array_equal(block_values, noised[10:20][dense[10:20] != 0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_estimator_noise_counter_on_a_complete_sparse_graph_is_the_dense_result(dtype):
    from scipy import sparse

    from fastap import AffinityPropagation

    X = np.random.default_rng(1).normal(size=(40, 2))
    S = (-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)).astype(dtype)
    n = S.shape[0]
    complete = sparse.csr_matrix(
        (S.ravel(), np.tile(np.arange(n), n), np.arange(0, n * n + 1, n)), shape=(n, n)
    )
    options = dict(affinity="precomputed", noise="counter", random_state=3,
                   preference=float(np.median(S)), keep_messages=True)
    dense = AffinityPropagation(engine="stored", **options).fit(S)
    graph = AffinityPropagation(**options).fit(complete)
    assert np.array_equal(graph.labels_, dense.labels_)
    assert graph.n_iter_ == dense.n_iter_
    # The messages agree up to the order of the column sums: the dense engine
    # adds the counter noise's by fixed groups of rows (as fastap.dask's
    # blocks do), the sparse engine row by row. (With noise="sklearn", where
    # dense float64 adds row by row too, a complete graph is the dense
    # result bitwise: tests/test_sparse.py.)
    tolerance = (
        {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else {"rtol": 1e-3, "atol": 1e-3}
    )
    np.testing.assert_allclose(graph.responsibility_.toarray(), dense.responsibility_, **tolerance)
    np.testing.assert_allclose(graph.availability_.toarray(), dense.availability_, **tolerance)


def test_estimator_noise_counter_is_refused_for_nearest_neighbors():
    from fastap import AffinityPropagation

    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="nearest_neighbors' uses noise='sklearn'"):
        AffinityPropagation(affinity="nearest_neighbors", noise="counter").fit(X)
