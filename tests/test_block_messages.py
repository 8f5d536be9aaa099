"""Row-block kernels and the block message state, with the in-process stand-in.

The distributed engine (``fastap.dask``) runs ``BlockMessageState`` over
row blocks on Dask workers; here the same state runs over ``RowBlock``
objects in this process (``LocalBlocks``), with P in {1, 2, 3, 7} and
uneven blocks, and is compared bitwise with the single-machine dense engine
on the same similarities with the same counter noise.
"""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from fastap import _dense
from fastap._kernels import noise, setup
from fastap.dask._block import RowBlock
from fastap.dask._state import (
    BlockMessageState,
    LocalBlocks,
    even_bounds,
    median_of_blocks,
    off_diagonal_quantile_of_blocks,
    place_preference,
)
from tests import reference_ap

SEED = 1234


def _similarities(n, dtype, random_state=0):
    X, _ = make_blobs(n_samples=n, centers=5, n_features=3, random_state=random_state)
    return reference_ap.negative_squared_euclidean(X).astype(dtype)


def _uneven_bounds(n, n_blocks, random_state=0):
    """Cuts of very different sizes (one row, a few, many)."""
    if n_blocks == 1:
        return np.array([0, n])
    rng = np.random.default_rng(random_state + n_blocks)
    cuts = np.sort(rng.choice(np.arange(2, n - 1), size=n_blocks - 1, replace=False))
    cuts[0] = 1  # a block of one row
    return np.r_[0, np.unique(cuts), n]


def _stand_in(S_raw, bounds, preference, damping, n_threads=1, segment_columns=37):
    n = S_raw.shape[0]
    blocks = LocalBlocks(
        RowBlock(n, a, b, S_raw.dtype, n_threads=n_threads) for a, b in zip(bounds[:-1], bounds[1:])
    )
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_similarities", S_raw[a:b])
    place_preference(blocks, bounds, preference, S_raw.dtype)
    state = BlockMessageState(
        blocks, bounds, S_raw.dtype, preference, damping, SEED, segment_columns=segment_columns
    )
    assert state.equal_similarities() is None
    state.prepare()
    return state


def _single_machine(S_raw, preference, damping, n_threads):
    S = S_raw.copy()
    state = _dense.DenseMessageState(
        S, preference, damping=damping, random_state=noise.CounterNoiseStream(SEED),
        n_threads=n_threads,
    )
    state.prepare()
    return S, state


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_blocks", [1, 2, 3, 7])
def test_stand_in_equals_single_machine_bitwise(dtype, n_blocks):
    n = 203  # float32: groups of 25 rows, split by most block boundaries
    S_raw = _similarities(n, dtype)
    preference = np.asarray(np.median(S_raw), dtype=dtype)
    bounds = _uneven_bounds(n, n_blocks)
    S, single = _single_machine(S_raw, preference, 0.5, n_threads=2)
    state = _stand_in(S_raw, bounds, preference, 0.5, n_threads=1 + n_blocks % 2)
    n_changed_total = 0
    for _ in range(25):
        expected = single.iterate()
        assert state.iterate() == expected
        assert np.array_equal(state.is_exemplar, single.is_exemplar)
        n_changed_total += expected[1]
    assert n_changed_total > 0  # the run went somewhere
    single.complete_availability()
    R, A = state.messages()
    assert np.array_equal(R, single.R)
    assert np.array_equal(A, single.A)
    # The blocks hold S exactly as the single machine prepared it.
    gathered = np.concatenate([block.S for block in state.blocks.blocks])
    assert np.array_equal(gathered, S)
    assert state.net_similarity() == pytest.approx(
        _net_similarity_reference(S, single.is_exemplar), rel=1e-12
    )


def _net_similarity_reference(S, is_exemplar):
    exemplars = np.flatnonzero(is_exemplar)
    best = S[:, exemplars].max(axis=1)
    best[exemplars] = np.diag(S)[exemplars]
    return float(np.sum(best, dtype=np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_blocks", [1, 3, 7])
def test_assign_equals_single_machine(dtype, n_blocks):
    n = 150
    S_raw = _similarities(n, dtype, random_state=3)
    preference = np.asarray(np.median(S_raw), dtype=dtype)
    S, single = _single_machine(S_raw, preference, 0.5, n_threads=1)
    state = _stand_in(S_raw, _uneven_bounds(n, n_blocks), preference, 0.5)
    for _ in range(40):
        single.iterate()
        state.iterate()
    centers, labels = state.assign(state.is_exemplar)
    expected_centers, expected_labels = _dense.assign_clusters(S, single.is_exemplar)
    assert centers.size > 1
    assert np.array_equal(centers, expected_centers)
    assert np.array_equal(labels, expected_labels)


def test_damping_change_finishes_with_the_previous_damping():
    """float64 against the NumPy reference of scikit-learn's loop, where each
    iteration uses its own damping throughout."""
    n = 120
    S_raw = _similarities(n, np.float64, random_state=5)
    preference = np.median(S_raw)
    S, _ = _single_machine(S_raw, preference, 0.5, n_threads=1)
    state = _stand_in(S_raw, _uneven_bounds(n, 3), preference, 0.5)
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    for iteration, damping in enumerate([0.5] * 5 + [0.7] * 3 + [0.9, 0.6] * 3):
        state.set_damping(damping)
        state.iterate()
        reference_ap.responsibility_step(S, R, A, damping)
        reference_ap.availability_step(R, A, damping)
        assert np.array_equal(state.is_exemplar, np.diag(A) + np.diag(R) > 0), iteration
    R_state, A_state = state.messages()
    assert np.array_equal(R_state, R)
    assert np.array_equal(A_state, A)


def test_set_preference_and_reset_equal_a_fresh_set_up():
    n = 90
    dtype = np.float32
    S_raw = _similarities(n, dtype, random_state=7)
    bounds = _uneven_bounds(n, 3)
    state = _stand_in(S_raw, bounds, np.asarray(np.median(S_raw), dtype), 0.5)
    for _ in range(10):
        state.iterate()
    new_preference = np.linspace(-50, -10, n).astype(dtype)
    state.set_preference(new_preference, shift_messages=False)
    state.reset()
    assert not state.is_exemplar.any()
    fresh = _stand_in(S_raw, bounds, new_preference, 0.5)
    for _ in range(15):
        assert state.iterate() == fresh.iterate()
    for R_pair in zip(state.messages(), fresh.messages()):
        assert np.array_equal(*R_pair)
    assert not np.any(state.is_exemplar & ~fresh.is_exemplar)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 2, 9, 40, 257, 601])
def test_median_of_blocks_is_numpys(dtype, n):
    """Small n: radix selection over the whole blocks; n = 601: over the
    windows a sample brackets (then also with the bracket forced to miss)."""
    rng = np.random.default_rng(n)
    S = rng.normal(size=(n, n)).astype(dtype)
    S[: n // 2, : n // 3] = S[0, 0]  # heavy ties
    S[np.diag_indices(n)] = -0.0
    bounds = _uneven_bounds(n, 3) if n >= 9 else even_bounds(n, 3)
    blocks = LocalBlocks(RowBlock(n, a, b, dtype) for a, b in zip(bounds[:-1], bounds[1:]))
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_similarities", S[a:b])
    searched = []  # the "window" flag of each histogram round
    call = blocks.call

    def recording_call(p, method, *args):
        if method == "digit_histogram":
            searched.append(args[-1])
        return call(p, method, *args)

    blocks.call = recording_call
    median = median_of_blocks(blocks, bounds, dtype)
    assert median.dtype == dtype
    assert median == dtype(np.median(S))
    assert median == setup.median_of_matrix(S, n_tasks=2)
    assert set(searched) == {n > 600}
    if n > 600:
        # A bracket far from the median: the whole blocks are searched instead.
        for block in blocks.blocks:
            block.median_sample = lambda size, seed, S=block.S: np.sort(S.ravel())[:size]
        searched.clear()
        assert median_of_blocks(blocks, bounds, dtype) == median
        assert set(searched) == {False}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.73, 1.0])
def test_off_diagonal_quantile_of_blocks_is_the_single_machines(dtype, q):
    n = 50
    rng = np.random.default_rng(3)
    S = rng.normal(size=(n, n)).astype(dtype)
    S[:20, :10] = S[0, 0]  # ties
    S[np.diag_indices(n)] = 5.0  # above everything: must not count
    bounds = _uneven_bounds(n, 3)
    blocks = LocalBlocks(RowBlock(n, a, b, dtype) for a, b in zip(bounds[:-1], bounds[1:]))
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_similarities", S[a:b])
    value = off_diagonal_quantile_of_blocks(blocks, bounds, dtype, q)
    assert value.dtype == dtype
    assert value == setup.off_diagonal_quantile(S, q, 2)
    assert value == dtype(np.quantile(S[~np.eye(n, dtype=bool)], q))


def test_block_is_refused_before_allocating_beyond_the_memory_limit():
    with pytest.raises(MemoryError, match="80% of this worker's memory limit"):
        RowBlock(100_000, 0, 50_000, np.float64, memory_limit=2**30)


def test_the_callers_similarities_are_not_modified():
    S_raw = _similarities(30, np.float64)
    before = S_raw.copy()
    state = _stand_in(S_raw, _uneven_bounds(30, 2), np.median(S_raw), 0.5)
    state.iterate()
    assert np.array_equal(S_raw, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_runs_through_the_run_loop_equal_the_dense_engine(dtype):
    """``_run.run`` drives both states: adaptive damping (raised three times on
    points around a circle, which oscillate), history, clusters."""
    from fastap import _run

    n = 180
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.c_[np.cos(angles), np.sin(angles)]
    S_raw = reference_ap.negative_squared_euclidean(circle).astype(dtype)
    preference = np.asarray(np.quantile(S_raw, 0.1), dtype=dtype)
    options = _run.RunOptions(
        damping=0.5, adaptive_damping=True, max_iter=400, record_history=True
    )
    bounds = _uneven_bounds(n, 3)
    blocks = LocalBlocks(RowBlock(n, a, b, dtype) for a, b in zip(bounds[:-1], bounds[1:]))
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_similarities", S_raw[a:b])
    place_preference(blocks, bounds, preference, dtype)
    state = BlockMessageState(blocks, bounds, dtype, preference, 0.5, SEED)
    result = _run.run(state, options)
    dense = _dense.DenseMessageState(
        S_raw.copy(), preference, damping=0.5, random_state=noise.CounterNoiseStream(SEED),
        n_threads=2,
    )
    expected = _run.run(dense, options)
    assert expected.converged and result.converged
    assert len(np.unique(expected.history["damping"])) > 2  # the damping did change
    assert result.n_iter == expected.n_iter
    assert np.array_equal(result.labels, expected.labels)
    assert np.array_equal(result.cluster_centers_indices, expected.cluster_centers_indices)
    assert result.damping == expected.damping
    for name, values in expected.history.items():
        np.testing.assert_array_equal(result.history[name], values, err_msg=name)


def test_equal_similarities_take_the_run_loops_shortcut():
    from fastap import _run

    n = 12
    S_raw = np.full((n, n), -3.0)
    bounds = _uneven_bounds(n, 3)
    for preference, expected_clusters in ((-1.0, n), (-5.0, 1)):
        blocks = LocalBlocks(RowBlock(n, a, b, np.float64) for a, b in zip(bounds[:-1], bounds[1:]))
        for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            blocks.call(p, "set_similarities", S_raw[a:b])
        place_preference(blocks, bounds, preference, np.float64)
        state = BlockMessageState(blocks, bounds, np.float64, np.asarray(preference), 0.5, SEED)
        with pytest.warns(UserWarning, match="mutually equal similarities"):
            result = _run.run(state, _run.RunOptions())
        assert result.n_iter == 0
        assert result.cluster_centers_indices.size == expected_clusters
