"""Property-based tests: generated problems, fastap == scikit-learn.

The examples are derandomized (the "ci" profile in conftest.py): every run
checks the same problems. Generation avoids constant matrices (scikit-learn's
all-equal shortcut, tested on its own below), so most examples run the
message passing; the large-size property reaches the parallel kernels and
float32.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import affinity_propagation as sklearn_affinity_propagation
from sklearn.metrics import adjusted_rand_score

from fastap import affinity_propagation
from tests.data import blobs, similarity

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=64)

# fastap's thresholds for the parallel kernels (fastap._dense.PARALLEL_MIN_SAMPLES),
# spelled here so that a change of the threshold does not silently shrink the test.
PARALLEL_SIZES = {np.float64: 500, np.float32: 150}


def off_diagonal_varies(S):
    off_diagonal = S[~np.eye(len(S), dtype=bool)]
    return off_diagonal.size > 0 and off_diagonal.min() != off_diagonal.max()


@st.composite
def point_cloud_similarities(draw, n):
    # Integer coordinates on a small grid: realistic (symmetric, zero diagonal)
    # and full of exact ties (equal distances, duplicate points).
    n_features = draw(st.integers(1, 3))
    X = draw(arrays(np.int64, (n, n_features), elements=st.integers(-6, 6)))
    S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1).astype(np.float64)
    return S


@st.composite
def similarity_problems(draw):
    n = draw(st.integers(min_value=2, max_value=25))
    values = draw(
        st.one_of(
            point_cloud_similarities(n),
            arrays(np.float64, (n, n), elements=finite),
            # Few distinct values make ties (equal similarities, equal rows) likely.
            arrays(np.float64, (n, n), elements=st.sampled_from([0.0, -1.0, -2.0, -5.0])),
        ).filter(off_diagonal_varies)
    )
    preference = draw(
        st.one_of(
            st.none(),
            finite,
            arrays(np.float64, (n,), elements=finite),
        )
    )
    # 0.5 is scikit-learn's default; at 0.7 and 0.95 swapping damping and
    # 1 - damping changes the result.
    damping = draw(st.sampled_from([0.5, 0.7, 0.95]))
    # Short runs stop anywhere in the loop; long ones mostly converge.
    max_iter = draw(st.one_of(st.integers(min_value=1, max_value=60), st.integers(150, 300)))
    convergence_iter = draw(st.integers(min_value=1, max_value=20))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    return values, dict(
        preference=preference,
        damping=damping,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        random_state=seed,
    )


def assert_same_as_sklearn(S, params):
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = affinity_propagation(S.copy(), return_n_iter=True, **params)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        theirs = sklearn_affinity_propagation(S.copy(), return_n_iter=True, **params)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[2] == theirs[2]
    # scikit-learn's text first; fastap appends its remedies.
    assert len(ours_w) == len(theirs_w)
    for ours_warning, theirs_warning in zip(ours_w, theirs_w):
        assert str(ours_warning.message).startswith(str(theirs_warning.message))


@settings(max_examples=150)
@given(similarity_problems())
def test_random_problems_match_sklearn(problem):
    S, params = problem
    assert_same_as_sklearn(S, params)


@pytest.mark.parametrize(
    "S",
    [np.zeros((1, 1)), np.full((1, 1), -3.0), np.zeros((4, 4)), np.full((6, 6), -2.5)],
    ids=["one-sample", "one-sample-negative", "all-zero", "all-equal"],
)
@pytest.mark.parametrize("preference", [None, -1.0, 0.0, 5.0])
def test_degenerate_problems_match_sklearn(S, preference):
    # The shortcuts the generated problems steer away from.
    assert_same_as_sklearn(S, dict(preference=preference, random_state=0))


@settings(max_examples=4)
@given(
    seed=st.integers(0, 2**16),
    centers=st.integers(2, 12),
    damping=st.sampled_from([0.7, 0.9]),
    extra=st.integers(0, 40),
)
def test_parallel_float64_matches_sklearn(seed, centers, damping, extra):
    # Above the parallel threshold: the parallel kernels, bitwise as scikit-learn.
    S = similarity(blobs(PARALLEL_SIZES[np.float64] + extra, centers=centers, random_state=seed))
    params = dict(damping=damping, max_iter=80, convergence_iter=10, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = affinity_propagation(S.copy(), return_n_iter=True, n_jobs=2, **params)
        theirs = sklearn_affinity_propagation(S.copy(), return_n_iter=True, **params)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[2] == theirs[2]


@settings(max_examples=4)
@given(
    seed=st.integers(0, 2**16),
    centers=st.integers(2, 8),
    damping=st.sampled_from([0.7, 0.9]),
    extra=st.integers(0, 60),
)
def test_parallel_float32_matches_serial_and_sklearn(seed, centers, damping, extra):
    # float32 above its parallel threshold: serial and parallel bitwise equal;
    # on separated blobs the same partition as scikit-learn (which computes
    # float32 input's messages in float64, so label numbers may differ).
    X = blobs(PARALLEL_SIZES[np.float32] + extra, centers=centers, cluster_std=0.5,
              random_state=seed)
    S = similarity(X).astype(np.float32)
    params = dict(damping=damping, max_iter=300, convergence_iter=15, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = affinity_propagation(S.copy(), return_n_iter=True, n_jobs=1, **params)
        parallel = affinity_propagation(S.copy(), return_n_iter=True, n_jobs=2, **params)
        theirs = sklearn_affinity_propagation(S.copy(), return_n_iter=True, **params)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    assert adjusted_rand_score(theirs[1], parallel[1]) == 1.0


@settings(max_examples=40)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 30)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=64),
    )
)
def test_median_equals_numpy(S):
    from fastap._kernels.setup import _radix_median

    S = np.ascontiguousarray(S)
    assert _radix_median(S, 2) == np.median(S)
    S32 = S.astype(np.float32)
    assert _radix_median(S32, 3) == np.median(S32)
