"""A change of damping between iterations (damping="auto", the n_clusters
search) against the NumPy reference run with the same schedule.

The fused pass finishes iteration t-1's off-diagonal availabilities inside
pass t: with the damping of iteration t instead of t-1 the messages drift
(up to 0.04 in R and 0.35 in A at N=100 before the fix). The schedule
0.5 -> 0.9 -> 0.7 makes d and 1-d differ, so swapping them is caught too.
"""

import numpy as np
import pytest

from fastap import _dense, _resources, _sparse
from tests.data import blobs, similarity
from tests.reference_ap import availability_step, place_preference_and_noise, responsibility_step

# Damping of each iteration: two changes, one of them back down.
SCHEDULE = [0.5, 0.5, 0.9, 0.9, 0.9, 0.7, 0.7]


def reference_run(S, schedule):
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    for damping in schedule:
        responsibility_step(S, R, A, damping)
        availability_step(R, A, damping)
    return R, A


def prepared(n_samples, dtype):
    S = similarity(blobs(n_samples, centers=4, random_state=3)).astype(dtype)
    return place_preference_and_noise(S, np.median(S), np.random.RandomState(0))


def dense_state(S, damping, n_threads):
    """The dense engine on a matrix that already holds preferences and noise."""
    state = _dense.DenseMessageState(S, damping=damping, n_threads=n_threads, prepared=True)
    state.prepare()
    return state


def run_schedule(state, schedule):
    for t, damping in enumerate(schedule):
        if t > 0 and damping != schedule[t - 1]:
            state.set_damping(damping)
        state.iterate()
    state.complete_availability()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n_samples", [100, 600])
def test_dense_damping_schedule_matches_reference(n_samples, n_threads):
    S = prepared(n_samples, np.float64)
    R_ref, A_ref = reference_run(S.copy(), SCHEDULE)
    with _resources.numba_threads(n_threads):
        state = dense_state(S.copy(), SCHEDULE[0], n_threads)
        run_schedule(state, SCHEDULE)
    np.testing.assert_array_equal(state.R, R_ref)
    np.testing.assert_array_equal(state.A, A_ref)


def test_float32_damping_schedule_close_to_reference():
    S = prepared(300, np.float32)
    R_ref, A_ref = reference_run(S.astype(np.float64), SCHEDULE)
    state = dense_state(S.copy(), SCHEDULE[0], 1)
    run_schedule(state, SCHEDULE)
    scale = np.abs(S).max()
    np.testing.assert_allclose(state.R, R_ref, atol=1e-5 * scale)
    np.testing.assert_allclose(state.A, A_ref, atol=1e-5 * scale)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_damping_schedule_matches_dense_reference(n_threads, monkeypatch):
    """On a complete graph the sparse messages are the dense ones, bitwise."""
    S = prepared(120, np.float64)
    R_ref, A_ref = reference_run(S.copy(), SCHEDULE)
    n = S.shape[0]
    graph = _sparse.SparseGraph(
        np.arange(0, n * n + 1, n, dtype=np.int64),
        np.tile(np.arange(n, dtype=np.int32), n),
        S.ravel().copy(),
        np.arange(n, dtype=np.int64) * (n + 1),
    )
    monkeypatch.setattr(_sparse, "PARALLEL_MIN_PAIRS", 0 if n_threads > 1 else 10**12)
    with _resources.numba_threads(n_threads):
        state = _sparse.SparseMessageState(
            graph, damping=SCHEDULE[0], n_threads=n_threads, prepared=True
        )
        state.prepare()
        run_schedule(state, SCHEDULE)
    np.testing.assert_array_equal(state.R.reshape(n, n), R_ref)
    np.testing.assert_array_equal(state.A.reshape(n, n), A_ref)
