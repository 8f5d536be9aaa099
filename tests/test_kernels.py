"""Each kernel against the plain NumPy reference (tests/reference_ap.py)."""

import numba
import numpy as np
import pytest

from fastap import AffinityPropagation, _dense, _resources, _run, _similarity
from fastap._kernels import messages, setup
from tests.data import blobs, similarity
from tests.reference_ap import (
    iterate,
    negative_squared_euclidean,
    place_preference_and_noise,
)

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def engine_messages(S, preference, n_iter, damping, n_threads, parallel, block_bytes, monkeypatch):
    """Run fastap's loop for exactly ``n_iter`` iterations; return (R, A, flags)."""
    threshold = 0 if parallel else 10**9
    thresholds = {np.dtype(np.float32): threshold, np.dtype(np.float64): threshold}
    monkeypatch.setattr(_dense, "PARALLEL_MIN_SAMPLES", thresholds)
    monkeypatch.setattr(_dense, "BLOCK_BYTES", block_bytes)
    S = S.copy()
    options = _run.RunOptions(
        damping=damping, max_iter=n_iter, convergence_iter=n_iter + 1, keep_messages=True
    )
    with _resources.numba_threads(min(n_threads, MAX_THREADS)):
        state = _dense.DenseMessageState(
            S, np.asarray(preference, dtype=S.dtype), damping=damping,
            random_state=np.random.RandomState(0), n_threads=n_threads,
        )
        result = _run.run(state, options)
    R, A = result.messages
    return R, A, (np.diag(A) + np.diag(R)) > 0, S


def reference_messages(S, preference, n_iter, damping, dtype):
    S = place_preference_and_noise(S.astype(dtype), preference, np.random.RandomState(0))
    return (*iterate(S, n_iter, damping), S)


@pytest.mark.parametrize(
    "parallel, n_threads, block_bytes",
    [
        (False, 1, 1 << 18),
        (True, 2, 1 << 18),
        (True, 2, 1),
        (True, 3, 1 << 12),
        (True, 7, 1 << 12),
    ],
    ids=["serial", "parallel", "parallel-tiny-blocks", "parallel-3-tasks", "parallel-7-tasks"],
)
@pytest.mark.parametrize("n_iter", [1, 2, 7])
def test_messages_match_reference_float64_bitwise(
    parallel, n_threads, block_bytes, n_iter, monkeypatch
):
    X = blobs(97, centers=4, random_state=3)
    S = similarity(X)
    preference = np.median(S)
    R, A, flags, S_noisy = engine_messages(
        S, preference, n_iter, 0.6, n_threads, parallel, block_bytes, monkeypatch
    )
    R_ref, A_ref, flags_ref, S_ref = reference_messages(S, preference, n_iter, 0.6, np.float64)
    np.testing.assert_array_equal(S_noisy, S_ref)
    np.testing.assert_array_equal(R, R_ref)
    np.testing.assert_array_equal(A, A_ref)
    np.testing.assert_array_equal(flags, flags_ref)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_messages_match_reference_on_rows_of_several_search_chunks(parallel, monkeypatch):
    # The row search keeps one maximum per chunk of 256 columns: rows of 600
    # have three chunks, and the first and second maxima may lie in any.
    X = blobs(600, centers=6, random_state=11)
    S = similarity(X)
    preference = np.median(S)
    R, A, flags, _ = engine_messages(S, preference, 3, 0.7, 2, parallel, 1 << 18, monkeypatch)
    R_ref, A_ref, flags_ref, _ = reference_messages(S, preference, 3, 0.7, np.float64)
    np.testing.assert_array_equal(R, R_ref)
    np.testing.assert_array_equal(A, A_ref)
    np.testing.assert_array_equal(flags, flags_ref)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_messages_float32_close_to_float64_reference(parallel, monkeypatch):
    X = blobs(120, centers=3, random_state=1)
    S = similarity(X)
    preference = np.median(S)
    R, A, flags, _ = engine_messages(
        S.astype(np.float32), preference, 6, 0.8, 2, parallel, 1 << 12, monkeypatch
    )
    assert R.dtype == A.dtype == np.float32
    R_ref, A_ref, flags_ref, _ = reference_messages(S, preference, 6, 0.8, np.float64)
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_ref, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(A, A_ref, atol=1e-5 * scale, rtol=0)
    np.testing.assert_array_equal(flags, flags_ref)


def hub_similarities(n, n_hubs, random_state):
    """float32 similarities where every row's maximum lies in one of a few
    "hub" columns: each row sends a positive responsibility to its hub, so a
    hub's column sum adds about ``n / n_hubs`` positive terms."""
    rng = np.random.RandomState(random_state)
    S = -rng.uniform(1.0, 2.0, size=(n, n))
    hubs = rng.choice(n, n_hubs, replace=False)
    rows = np.arange(n)
    S[rows, hubs[rows % n_hubs]] = -rng.uniform(0.0, 0.5, size=n)
    return S.astype(np.float32), hubs


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("n_hubs", [3, 5, 8])
def test_float32_column_sums_are_accumulated_in_float64(parallel, n_hubs, monkeypatch):
    # After one iteration (A was zero) A(k, k) = -(R(k, k) - col_sum(k)) * (1 - d)
    # in float32, where col_sum(k) is the sum of R(k, k) and the positive
    # R(i, k), i != k. Summed in float64, the float32 terms (exponents within
    # a few binades, sums below 2**10) add up exactly: col_sum is the exact sum
    # rounded once to float32, so A(k, k) is bitwise the formula below. A
    # float32 accumulator rounds at every addition: on the hub columns, with
    # hundreds of terms, it is off by an ulp or more (tests/mutation.py,
    # float32-column-sums-in-float32: caught on 3, 5 and 8 hubs).
    S, hubs = hub_similarities(600, n_hubs, random_state=n_hubs)
    damping = np.float32(0.5)
    R, A, _, _ = engine_messages(
        S, -1.5, 1, float(damping), 2, parallel, 1 << 14, monkeypatch
    )
    positive = np.maximum(R.astype(np.float64), 0.0)
    np.fill_diagonal(positive, np.diag(R))
    col_sum = positive.sum(axis=0).astype(np.float32)
    assert (R[:, hubs] > 0).sum() >= 600 - n_hubs  # many terms, as intended
    one_minus_damping = np.float32(1) - damping
    expected = -(np.diag(R) - col_sum) * one_minus_damping
    np.testing.assert_array_equal(np.diag(A)[hubs], expected[hubs])
    np.testing.assert_array_equal(np.diag(A), expected)


def test_float32_messages_on_hub_columns_close_to_float64_reference(monkeypatch):
    # Against the float64 reference on the same (float32-rounded) input: the
    # column sums of the hub columns add ~200 terms, and A(k, k) must stay
    # within what rounding the float32 terms allows: half an ulp for the
    # final rounding, plus the terms' own errors, added up.
    S, hubs = hub_similarities(600, 3, random_state=0)
    R, A, _, _ = engine_messages(S, -1.5, 3, 0.7, 2, True, 1 << 14, monkeypatch)
    R_ref, A_ref, _, _ = reference_messages(S.astype(np.float64), -1.5, 3, 0.7, np.float64)
    term_errors = np.abs(R.astype(np.float64) - R_ref)[:, hubs].sum(axis=0)
    column_ulp = np.spacing(np.abs(A_ref[hubs, hubs]).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(A[hubs, hubs] - A_ref[hubs, hubs]) <= 2 * column_ulp + term_errors)
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_ref, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("n_threads", [1, 2, 3, 7])
def test_results_bitwise_independent_of_threads(n_threads, float_dtype, monkeypatch):
    # 3 and 7 threads really run: conftest.py raises Numba's pool above the
    # core count (a request above the pool size would be capped silently).
    assert n_threads <= MAX_THREADS
    S = similarity(blobs(150, centers=5, random_state=7)).astype(float_dtype)
    preference = np.median(S)
    serial = engine_messages(S, preference, 9, 0.7, 1, False, 1 << 18, monkeypatch)
    threaded = engine_messages(S, preference, 9, 0.7, n_threads, True, 1 << 13, monkeypatch)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def test_row_search_ties_pick_first_index_and_second_equal(monkeypatch):
    # Identical samples make A + S tie exactly; the arg-max must be the first
    # index (np.argmax) and the second maximum the tied value.
    X = np.repeat(np.arange(6.0)[:, None], 5, axis=0)
    S = similarity(X)
    R, A, flags, _ = engine_messages(S, -10.0, 4, 0.7, 2, True, 1 << 10, monkeypatch)
    R_ref, A_ref, flags_ref, _ = reference_messages(S, -10.0, 4, 0.7, np.float64)
    np.testing.assert_array_equal(R, R_ref)
    np.testing.assert_array_equal(A, A_ref)
    np.testing.assert_array_equal(flags, flags_ref)


@pytest.mark.parametrize("shape_seed", range(6))
def test_median_of_matrix_equals_numpy(shape_seed, float_dtype):
    rng = np.random.RandomState(shape_seed)
    n = [1, 2, 3, 10, 31, 64][shape_seed]
    S = (rng.standard_normal((n, n)) * 10 ** rng.randint(-3, 4)).astype(float_dtype)
    if shape_seed % 2:
        S[rng.rand(n, n) < 0.4] = 0.0  # many ties, zeros of both signs
        S[rng.rand(n, n) < 0.2] = -0.0
    expected = np.median(S)
    for n_tasks in (1, 2, 5):
        for median in (setup.median_of_matrix, setup._radix_median):
            got = median(S, n_tasks)
            assert got.dtype == S.dtype
            assert got == expected, (median.__name__, got, expected)


@pytest.mark.parametrize("case", ["uniform", "few_values", "mostly_tied", "sorted_rows", "odd"])
def test_median_of_large_matrix_equals_numpy(case, float_dtype):
    # Large enough for the sampled selection (and its radix fallback).
    rng = np.random.RandomState(7)
    n = 601 if case == "odd" else 600
    S = -rng.uniform(0, 100, size=(n, n))
    if case == "few_values":
        S = -rng.randint(0, 4, size=(n, n)).astype(float)
    elif case == "mostly_tied":
        S = np.full((n, n), -3.0)
        S[rng.rand(n, n) < 0.3] = -rng.uniform(0, 100, size=(n, n))[rng.rand(n, n) < 0.3][0]
        S[:5] = rng.uniform(-1e6, 1e6, size=(5, n))
    elif case == "sorted_rows":
        S = np.sort(S, axis=None).reshape(n, n)
    S = np.ascontiguousarray(S.astype(float_dtype))
    expected = np.median(S)
    for n_tasks in (1, 2, 3):
        got = setup.median_of_matrix(S, n_tasks)
        assert got.dtype == S.dtype
        assert got == expected, (case, n_tasks, got, expected)


def test_median_falls_back_to_radix_selection(monkeypatch, float_dtype):
    monkeypatch.setattr(setup, "_MEDIAN_CAPACITY", 1e-6)  # the window cannot hold the middle
    S = -np.random.RandomState(3).uniform(0, 50, size=(600, 600)).astype(float_dtype)
    assert setup.median_of_matrix(S, 2) == np.median(S)
    assert setup._radix_median(S, 2) == np.median(S)


def test_median_handles_extreme_values(float_dtype):
    info = np.finfo(float_dtype)
    S = np.array([[info.max, -info.max], [info.tiny, -info.tiny]], dtype=float_dtype)
    assert setup._radix_median(S, 2) == np.median(S)
    S = np.full((4, 4), 3.5, dtype=float_dtype)
    assert setup._radix_median(S, 2) == 3.5


@pytest.mark.parametrize("n_features", [1, 5, 50])
def test_negative_squared_euclidean_matches_sklearn(n_features, float_dtype, monkeypatch):
    monkeypatch.setattr(_similarity, "_SIMILARITY_BLOCK_ELEMENTS", 1000)  # several row blocks
    X = blobs(211, centers=3, n_features=n_features, random_state=2, dtype=float_dtype)
    S = _similarity.negative_squared_euclidean(X, float_dtype)
    assert S.dtype == float_dtype
    if float_dtype == np.float64:
        np.testing.assert_array_equal(S, similarity(X))
    else:  # same float64 arithmetic, blocked differently: equal up to float32 rounding
        np.testing.assert_allclose(S, similarity(X), rtol=2e-7, atol=1e-6)
    np.testing.assert_allclose(S, negative_squared_euclidean(X), rtol=1e-5, atol=1e-3)


# 37: blocks of an odd number of values, whose last normal NumPy keeps
# cached for the next block (has_gauss).
@pytest.mark.parametrize("n_samples", [40, 37])
def test_noise_by_blocks_equals_one_full_draw(float_dtype, monkeypatch, n_samples):
    monkeypatch.setattr(_dense, "_NOISE_BLOCK_ELEMENTS", 50)  # many blocks
    S = similarity(blobs(n_samples, random_state=4)).astype(float_dtype)
    ours = S.copy()
    random_state = np.random.RandomState(9)
    _dense.add_degeneracy_noise(ours, random_state)
    reference_state = np.random.RandomState(9)
    theirs = place_preference_and_noise(S.copy(), np.diag(S), reference_state)
    np.testing.assert_array_equal(ours, theirs)
    # The stream is left exactly past the draws, as after one N x N draw.
    assert random_state.standard_normal() == reference_state.standard_normal()


def test_degenerate_problem_leaves_random_state_untouched():
    # scikit-learn draws no noise when all similarities are equal.
    random_state = np.random.RandomState(3)
    expected = np.random.RandomState(3).standard_normal()
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        AffinityPropagation(random_state=random_state).fit(np.zeros((5, 2)))
    assert random_state.standard_normal() == expected


def test_off_diagonal_all_equal():
    S = np.full((5, 5), 2.0)
    S.flat[::6] = [1, 2, 3, 4, 5]
    assert setup.off_diagonal_all_equal(S)
    S[4, 3] = 2.0000001
    assert not setup.off_diagonal_all_equal(S)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("n_tasks, rows_per_unit", [(1, 4), (2, 4), (3, 5)])
def test_zero_rows_as_pass_zeroes_every_row(grouped, n_tasks, rows_per_unit):
    M = np.full((23, 23), np.nan)
    messages.zero_rows_as_pass(M, n_tasks, rows_per_unit, grouped)
    assert not M.any()


def test_first_touch_by_rows_gives_the_same_fit(float_dtype, monkeypatch):
    # On a machine with several memory nodes the message matrices are
    # zeroed by the threads of the pass instead of a helper thread.
    X = blobs(700, centers=5, random_state=3, dtype=float_dtype)
    expected = AffinityPropagation(random_state=0, n_jobs=2, engine="stored").fit(X)
    monkeypatch.setattr(_dense, "memory_nodes", lambda: 2)
    assert _dense.MessageMatrices(3, float_dtype, n_threads=2).first_touch_by_rows
    fitted = AffinityPropagation(random_state=0, n_jobs=2, engine="stored").fit(X)
    np.testing.assert_array_equal(fitted.labels_, expected.labels_)
    assert fitted.n_iter_ == expected.n_iter_
