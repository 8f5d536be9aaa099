"""Property-based tests: random small problems, fastap == scikit-learn."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import affinity_propagation as sklearn_affinity_propagation

from fastap import affinity_propagation

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def similarity_problems(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    # Few distinct values make ties (equal similarities, equal rows) likely.
    values = draw(
        st.one_of(
            arrays(np.float64, (n, n), elements=finite),
            arrays(np.float64, (n, n), elements=st.sampled_from([0.0, -1.0, -2.0, -5.0])),
        )
    )
    preference = draw(
        st.one_of(
            st.none(),
            finite,
            arrays(np.float64, (n,), elements=finite),
        )
    )
    damping = draw(st.sampled_from([0.5, 0.7, 0.95]))
    max_iter = draw(st.integers(min_value=1, max_value=60))
    convergence_iter = draw(st.integers(min_value=1, max_value=20))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    return values, dict(
        preference=preference,
        damping=damping,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        random_state=seed,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(similarity_problems())
def test_random_problems_match_sklearn(problem):
    S, params = problem
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = affinity_propagation(S.copy(), return_n_iter=True, **params)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        theirs = sklearn_affinity_propagation(S.copy(), return_n_iter=True, **params)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[2] == theirs[2]
    assert [str(w.message) for w in ours_w] == [str(w.message) for w in theirs_w]


@settings(max_examples=40, deadline=None)
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
