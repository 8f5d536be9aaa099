"""Row-block kernels and the block message state, with the in-process stand-in.

The distributed engine (``fastap.dask``) runs ``BlockMessageState`` over
row blocks on Dask workers; here the same state runs over ``RowBlock``
objects in this process (``LocalBlocks``), with P in {1, 2, 3, 7} and
uneven blocks, and is compared bitwise with the single-machine dense engine
on the same similarities with the same counter noise.
"""

import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

import fastap
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


def _record_histogram_rounds(blocks):
    """The "window" flag of each histogram round the blocks will be asked
    for (a list, filled as the selection runs)."""
    searched = []
    call = blocks.call

    def recording_call(p, method, *args):
        if method == "digit_histogram":
            searched.append(args[-1])
        return call(p, method, *args)

    blocks.call = recording_call
    return searched


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
        n_threads=n_threads, grouped_sums=True,
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
    """float64 against the single machine (bitwise) and the NumPy reference of
    scikit-learn's loop, where each iteration uses its own damping throughout
    (up to the order of the column sums: groups of rows here, row by row
    there)."""
    n = 120
    S_raw = _similarities(n, np.float64, random_state=5)
    preference = np.median(S_raw)
    S, single = _single_machine(S_raw, preference, 0.5, n_threads=1)
    state = _stand_in(S_raw, _uneven_bounds(n, 3), preference, 0.5)
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    for iteration, damping in enumerate([0.5] * 5 + [0.7] * 3 + [0.9, 0.6] * 3):
        state.set_damping(damping)
        single.set_damping(damping)
        state.iterate()
        single.iterate()
        reference_ap.responsibility_step(S, R, A, damping)
        reference_ap.availability_step(R, A, damping)
        assert np.array_equal(state.is_exemplar, np.diag(A) + np.diag(R) > 0), iteration
    R_state, A_state = state.messages()
    R_single, A_single = single.messages()
    assert np.array_equal(R_state, R_single)
    assert np.array_equal(A_state, A_single)
    np.testing.assert_allclose(R_state, R, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(A_state, A, rtol=1e-12, atol=1e-9)


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
    searched = _record_histogram_rounds(blocks)
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
        n_threads=2, grouped_sums=True,
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


# --------------------------------------------------------------------------
# Sparse graphs on the blocks (SparseRowBlock, SparseBlockMessageState).
# --------------------------------------------------------------------------

RANDOM_STATE = 7


def _random_graph(n, dtype, random_state=0):
    """Rows of very different lengths: sample 3 stores only its diagonal,
    sample 5 nothing (its diagonal is inserted), sample 7 two pairs, some
    rows store their diagonal; values with ties."""
    from scipy import sparse

    rng = np.random.default_rng(random_state)
    mask = rng.uniform(size=(n, n)) < rng.uniform(0.02, 0.3, size=(n, 1))
    mask[3, :] = False
    mask[3, 3] = True
    mask[5, :] = False
    mask[7, :] = False
    mask[7, [0, n - 1]] = True
    values = -np.round(rng.uniform(1, 60, size=(n, n)), 1)
    rows, columns = np.nonzero(mask)
    return sparse.csr_matrix((values[mask], (rows, columns)), shape=(n, n)).astype(dtype)


def _knn_graph(n, dtype, random_state=0):
    from sklearn.neighbors import kneighbors_graph

    X, _ = make_blobs(n_samples=n, centers=5, n_features=3, random_state=random_state)
    graph = kneighbors_graph(X, n_neighbors=8, mode="distance")
    graph.data = -graph.data**2
    return graph.astype(dtype)


def _sparse_blocks(S, bounds, n_threads=1):
    """The canonical graph's rows on SparseRowBlocks in this process."""
    from fastap._sparse import canonical_csr
    from fastap.dask._sparse_block import SparseRowBlock

    indptr, indices, data = canonical_csr(S)
    blocks = LocalBlocks(
        SparseRowBlock(S.shape[0], a, b, data.dtype, n_threads=n_threads)
        for a, b in zip(bounds[:-1], bounds[1:])
    )
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_graph", indptr[a:b + 1] - indptr[a],
                    indices[indptr[a]:indptr[b]], data[indptr[a]:indptr[b]])
    return blocks, data.dtype


def _sparse_stand_in(S, bounds, preference_quantile=None, n_threads=1, preference=None):
    """Blocks of the canonical graph, the preference selected over them (or
    given) and placed, and the state over them (not prepared)."""
    from fastap.dask._sparse_state import (
        SparseBlockMessageState,
        stored_median_of_blocks,
        stored_quantile_of_blocks,
    )

    blocks, dtype = _sparse_blocks(S, bounds, n_threads)
    if preference is not None:
        preference = np.asarray(preference, dtype=dtype)
    elif preference_quantile is None:
        preference = np.asarray(stored_median_of_blocks(blocks, bounds, dtype))
    else:
        preference = np.asarray(stored_quantile_of_blocks(blocks, dtype, preference_quantile))
    place_preference(blocks, bounds, preference, dtype)
    seed = noise.counter_noise_seed(RANDOM_STATE)
    state = SparseBlockMessageState(blocks, bounds, dtype, preference, 0.5, seed,
                                    segment_columns=37)
    return state, preference


def _sparse_single_machine(S, **options):
    import fastap

    return fastap.AffinityPropagation(
        affinity="precomputed", noise="counter", random_state=RANDOM_STATE, keep_messages=True,
        **options,
    ).fit(S)


@pytest.mark.parametrize("graph", ["random", "knn"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_blocks", [1, 2, 3, 7])
def test_sparse_stand_in_equals_the_single_machine_bitwise(graph, dtype, n_blocks, monkeypatch):
    """A whole run through ``_run.run``: preference, clusters, n_iter,
    history (the net similarity on stored pairs); then the messages after as
    many iterations, bitwise."""
    from fastap import _run
    from fastap.dask import _sparse_block

    if n_blocks == 3:  # the parallel row pass and a block thread count above one
        monkeypatch.setattr(_sparse_block, "PARALLEL_MIN_PAIRS", 0)
    n = 131
    S = (_random_graph if graph == "random" else _knn_graph)(n, dtype, random_state=n_blocks)
    single = _sparse_single_machine(S, max_iter=300, record_history=True)
    state, preference = _sparse_stand_in(S, _uneven_bounds(n, n_blocks),
                                         n_threads=1 + n_blocks % 2)
    assert preference == single.preference_
    result = _run.run(state, _run.RunOptions(max_iter=300, record_history=True))
    assert result.converged == single.converged_
    assert np.array_equal(result.cluster_centers_indices, single.cluster_centers_indices_)
    assert np.array_equal(result.labels, single.labels_)
    assert result.n_iter == single.n_iter_
    assert result.cluster_centers_indices.size > 1
    for name, values in single.history_.items():
        np.testing.assert_array_equal(result.history[name], values, err_msg=name)
    state.reset()  # the messages were released at the end of the run
    for _ in range(single.n_iter_):
        state.iterate()
    R, A = state.messages()
    assert np.array_equal(R, single.responsibility_.data)
    assert np.array_equal(A, single.availability_.data)
    if graph == "random":
        assert -1 not in result.labels and result.labels[3] == np.searchsorted(
            result.cluster_centers_indices, 3
        )  # the sample storing only its diagonal is its own exemplar


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("q", [None, 0.0, 0.1, 0.5, 0.73, 1.0])
def test_sparse_preference_over_blocks_is_the_single_machines(dtype, q):
    from fastap import _sparse
    from fastap.dask._sparse_state import stored_median_of_blocks, stored_quantile_of_blocks

    n = 60
    from scipy import sparse

    coo = _random_graph(n, dtype, random_state=11).tocoo()
    # An empty block of rows in the middle; stored diagonals (counted by the
    # median, not the quantile), one of them -0.0.
    keep = ((coo.row < 12) | (coo.row >= 20)) & ~np.isin(coo.row, [10, 11])
    rows = np.r_[coo.row[keep], 10, 11, 10]
    columns = np.r_[coo.col[keep], 10, 11, 30]
    values = np.r_[coo.data[keep], -0.0, 1e6, -4.0].astype(dtype)
    S = sparse.csr_matrix((values, (rows, columns)), shape=(n, n))
    indptr, indices, data = _sparse.canonical_csr(S)
    bounds = np.array([0, 12, 20, 21, n])
    state, preference = _sparse_stand_in(S, bounds, preference_quantile=q)
    if q is None:
        expected = _sparse.default_preference(data)
    else:
        graph = _sparse.with_diagonal(indptr, indices, data, dtype(0))
        expected = _sparse.stored_quantile(graph, q, 1)
    assert preference.dtype == dtype
    assert preference == expected
    if q is None:
        # The windowed selection (more than 4 * 2**16 values), ties included.
        rng = np.random.default_rng(2)
        big = sparse.random(2000, 2000, density=0.08, random_state=rng, dtype=np.float64)
        big.data = np.round(big.data * 5000).astype(dtype)
        indptr, indices, data = _sparse.canonical_csr(big.tocsr())
        bounds = _uneven_bounds(2000, 3)
        blocks, _ = _sparse_blocks(big, bounds)
        searched = _record_histogram_rounds(blocks)
        assert stored_median_of_blocks(blocks, bounds, dtype) == _sparse.default_preference(data)
        assert set(searched) == {True}
        assert stored_quantile_of_blocks(blocks, dtype, 0.3) == _sparse.stored_quantile(
            _sparse.with_diagonal(indptr, indices, data.copy(), dtype(0)), 0.3, 1
        )


def test_sparse_complete_equal_graph_takes_the_shortcut_and_set_preference_is_fresh():
    from scipy import sparse

    from fastap import _run

    n = 12
    S = sparse.csr_matrix(np.full((n, n), -3.0))
    bounds = _uneven_bounds(n, 3)
    state, _ = _sparse_stand_in(S, bounds)
    assert state.equal_similarities() is False  # the median -3 does not beat -3
    with pytest.warns(UserWarning, match="mutually equal similarities"):
        result = _run.run(state, _run.RunOptions())
    assert result.n_iter == 0 and result.cluster_centers_indices.size == 1
    # A new preference and reset: bitwise a fresh set-up with it.
    S = _random_graph(50, np.float32, random_state=4)
    bounds = _uneven_bounds(50, 3)
    state, _ = _sparse_stand_in(S, bounds)
    state.prepare()
    for _ in range(8):
        state.iterate()
    new_preference = np.linspace(-80, -20, 50).astype(np.float32)
    state.set_preference(new_preference, shift_messages=False)
    state.reset()
    fresh, _ = _sparse_stand_in(S, bounds, preference=new_preference)
    fresh.prepare()
    for _ in range(12):
        assert state.iterate() == fresh.iterate()
    for pair in zip(state.messages(), fresh.messages()):
        assert np.array_equal(*pair)


# --------------------------------------------------------------------------
# The Dask estimator on the stand-in: n_clusters, keep_messages, warm_start.
# --------------------------------------------------------------------------


@pytest.fixture
def stand_in_estimator(monkeypatch):
    """``fastap.dask.AffinityPropagation`` on in-process blocks: its blocks
    are LocalBlocks cut at ``_uneven_bounds(n, n_blocks)`` (the returned
    function sets ``n_blocks``), block p running 1 + p % 2 threads; the
    blocks' methods called are recorded."""
    from fastap.dask import _estimator
    from fastap.dask._estimator import AffinityPropagation

    called = []

    def start_blocks(client, bounds, dtype, workers=None, row_chunks=None, timeout=None,
                     block_class=RowBlock, block_options=None):
        blocks = LocalBlocks(
            block_class(int(bounds[-1]), a, b, dtype, n_threads=1 + p % 2,
                        **(block_options[p] if block_options else {}))
            for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        )
        call = blocks.call

        def recording_call(p, method, *args):
            called.append(method)
            return call(p, method, *args)

        blocks.call = recording_call
        blocks.close = lambda: None
        return blocks

    monkeypatch.setattr(_estimator, "start_blocks", start_blocks)

    def estimator(n_blocks, **params):
        monkeypatch.setattr(
            AffinityPropagation, "_bounds",
            lambda self, n_samples, client: _uneven_bounds(n_samples, n_blocks),
        )
        return AffinityPropagation(client=object(), **params)

    estimator.called = called
    return estimator


def _fitted_alike(fitted, single, messages=True):
    assert fitted.preference_ == single.preference_
    assert np.array_equal(fitted.cluster_centers_indices_, single.cluster_centers_indices_)
    assert np.array_equal(fitted.labels_, single.labels_)
    assert fitted.n_iter_ == single.n_iter_
    assert fitted.converged_ == single.converged_
    assert fitted.damping_ == single.damping_
    if not messages:
        return
    for name in ("responsibility_", "availability_"):
        got, expected = getattr(fitted, name), getattr(single, name)
        assert type(got) is type(expected) and got.dtype == expected.dtype, name
        if hasattr(expected, "indptr"):
            assert np.array_equal(got.indptr, expected.indptr)
            assert np.array_equal(got.indices, expected.indices)
            got, expected = got.data, expected.data
        assert np.array_equal(got, expected), name


@pytest.mark.parametrize("n_blocks", [1, 2, 3])
def test_n_clusters_and_keep_messages_on_the_stand_in_equal_the_single_machine(
    stand_in_estimator, n_blocks
):
    """Dense float64: the search's every step (warm steps shift the
    messages on the blocks), the chosen preference, the clusters, the
    gathered messages and the membership confidence, bitwise."""
    S = _similarities(130, np.float64, random_state=2)
    options = dict(affinity="precomputed", random_state=RANDOM_STATE, n_clusters=3,
                   keep_messages=True)
    single = fastap.AffinityPropagation(noise="counter", **options).fit(S)
    fitted = stand_in_estimator(n_blocks, **options).fit(S)
    assert single.cluster_centers_indices_.size == 3
    assert len(single.preference_search_) > 2
    assert fitted.preference_search_ == single.preference_search_
    assert "shift_preference" in stand_in_estimator.called  # warm steps ran
    _fitted_alike(fitted, single)
    np.testing.assert_array_equal(fitted.membership_confidence_, single.membership_confidence_)
    assert np.isfinite(fitted.membership_confidence_).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_keep_messages_and_warm_start_on_the_stand_in_equal_the_single_machine(
    stand_in_estimator, dtype
):
    """keep_messages (float32: the stored engine, which keeping the
    messages selects on one machine), then warm starts continuing from the
    kept messages, damping="auto" continuing from damping_."""
    S = _similarities(110, dtype, random_state=4)
    options = dict(affinity="precomputed", random_state=RANDOM_STATE, damping="auto",
                   max_iter=12, warm_start=True, keep_messages=True)
    single = fastap.AffinityPropagation(noise="counter", **options)
    fitted = stand_in_estimator(3, **options)
    for fit in range(3):
        if fit == 0:
            with pytest.warns(ConvergenceWarning):
                single.fit(S)
                fitted.fit(S)
        else:
            single.set_params(max_iter=300)
            fitted.set_params(max_iter=300)
            single.fit(S)
            fitted.fit(S)
        _fitted_alike(fitted, single)
        np.testing.assert_array_equal(
            fitted.membership_confidence_, single.membership_confidence_
        )
    assert single.converged_
    assert stand_in_estimator.called.count("set_messages") == 2 * 3


@pytest.mark.parametrize("graph", ["knn", "complete"])
@pytest.mark.parametrize("n_blocks", [1, 2, 3])
def test_sparse_n_clusters_and_keep_messages_on_the_stand_in(stand_in_estimator, graph,
                                                             n_blocks):
    """A sparse graph (a k-NN graph: the stored values' bracket; a complete
    graph: the dense range, by blocks): the search, the CSR messages and
    the confidence, bitwise the single machine's."""
    if graph == "knn":
        S = _knn_graph(120, np.float64, random_state=6)
        n_clusters = 13
    else:
        S = sparse.csr_matrix(_similarities(90, np.float64, random_state=5))
        n_clusters = 6
    options = dict(affinity="precomputed", random_state=RANDOM_STATE, n_clusters=n_clusters,
                   keep_messages=True)
    single = fastap.AffinityPropagation(noise="counter", **options).fit(S)
    fitted = stand_in_estimator(n_blocks, **options).fit(S)
    assert len(single.preference_search_) > 2
    assert fitted.preference_search_ == single.preference_search_
    assert "shift_preference" in stand_in_estimator.called
    _fitted_alike(fitted, single)
    np.testing.assert_array_equal(fitted.membership_confidence_, single.membership_confidence_)


def test_sparse_warm_start_on_the_stand_in(stand_in_estimator):
    """Kept CSR messages go back to the blocks (each checks its pairs); a
    graph with other pairs starts cold, as on one machine."""
    S = _random_graph(100, np.float64, random_state=8)
    options = dict(affinity="precomputed", random_state=RANDOM_STATE, max_iter=10,
                   warm_start=True)
    single = fastap.AffinityPropagation(noise="counter", **options)
    fitted = stand_in_estimator(3, **options)
    with pytest.warns(ConvergenceWarning):
        single.fit(S)
        fitted.fit(S)
    _fitted_alike(fitted, single)
    single.set_params(max_iter=300)
    fitted.set_params(max_iter=300)
    for graph in (S, _random_graph(100, np.float64, random_state=9)):
        single.fit(graph)
        fitted.fit(graph)
        _fitted_alike(fitted, single)
    assert not hasattr(fitted, "membership_confidence_")


def test_keep_messages_is_refused_before_the_fit_when_the_client_cannot_hold_them(
    stand_in_estimator, monkeypatch
):
    from fastap import _resources

    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 100_000)
    S = _similarities(120, np.float64)
    with pytest.raises(MemoryError, match=r"two 120 x 120 matrices in float64.*on the client"):
        stand_in_estimator(2, affinity="precomputed", keep_messages=True).fit(S)
    assert "update" not in stand_in_estimator.called
    fitted = stand_in_estimator(2, affinity="precomputed", random_state=0).fit(S)
    assert not hasattr(fitted, "responsibility_")


def test_n_clusters_errors_on_the_stand_in(stand_in_estimator):
    S = _similarities(20, np.float64)
    with pytest.raises(ValueError, match="n_clusters=21 is larger than the number of samples"):
        stand_in_estimator(2, affinity="precomputed", n_clusters=21).fit(S)
    with pytest.raises(ValueError, match="must be a scalar"):
        stand_in_estimator(2, affinity="precomputed", n_clusters=2,
                           preference=np.full(20, -1.0)).fit(S)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_blocks", [1, 3, 7])
def test_shifted_preference_equals_the_single_machine(dtype, n_blocks):
    """``set_preference(p, shift_messages=True)`` (a warm search step) with
    the availabilities pending, then iterations: bitwise the dense engine's."""
    n = 97
    S_raw = _similarities(n, dtype, random_state=9)
    preference = np.asarray(np.median(S_raw), dtype=dtype)
    S, single = _single_machine(S_raw, preference, 0.5, n_threads=2)
    state = _stand_in(S_raw, _uneven_bounds(n, n_blocks), preference, 0.5,
                      n_threads=1 + n_blocks % 2)
    for factor in (0.8, 1.7):
        for _ in range(9):
            assert state.iterate() == single.iterate()
        for engine in (single, state):
            engine.set_preference(dtype(preference * factor), shift_messages=True)
    for _ in range(6):
        assert state.iterate() == single.iterate()
    single.complete_availability()
    R, A = state.messages()
    assert np.array_equal(R, single.R)
    assert np.array_equal(A, single.A)
    assert np.array_equal(np.concatenate([block.S for block in state.blocks.blocks]), S)
    assert np.array_equal(
        np.concatenate([block.col_sum[None] for block in state.blocks.blocks]),
        np.broadcast_to(single.col_sum, (len(state.blocks), n)),
    )


@pytest.mark.parametrize("n_blocks", [1, 3, 7])
def test_sparse_shifted_preference_equals_the_single_machine(n_blocks):
    """The sparse blocks' shift, an isolated sample (3) included: its column
    sum stays +inf on every block, as on one machine."""
    from fastap import _sparse

    n = 80
    S = _random_graph(n, np.float64, random_state=12)
    state, preference = _sparse_stand_in(S, _uneven_bounds(n, n_blocks))
    indptr, indices, data = _sparse.canonical_csr(S)
    single = _sparse.SparseMessageState(
        _sparse.with_diagonal(indptr, indices, data, preference), damping=0.5,
        random_state=noise.CounterNoiseStream(noise.counter_noise_seed(RANDOM_STATE)),
    )
    single.prepare()
    state.prepare()
    for factor in (0.7, 1.4):
        for _ in range(9):
            assert state.iterate() == single.iterate()
        for engine in (single, state):
            engine.set_preference(np.float64(preference * factor), shift_messages=True)
    for _ in range(6):
        assert state.iterate() == single.iterate()
    assert np.isinf(single.col_sum[3])
    for block in state.blocks.blocks:
        assert np.array_equal(block.col_sum, single.col_sum)
    for got, expected in zip(state.messages(), single.messages()):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tie_over_blocks_is_the_single_machines(dtype):
    from fastap._preference import off_diagonal_tie
    from fastap.dask._state import off_diagonal_tie_of_blocks

    n = 40
    S = np.random.default_rng(5).normal(size=(n, n)).astype(dtype)
    S[:25, :30] = 0.0
    S[30:, :5] = -0.0  # equal to 0 too
    S[np.diag_indices(n)] = 0.0  # must not count
    bounds = _uneven_bounds(n, 3)
    blocks = LocalBlocks(RowBlock(n, a, b, dtype) for a, b in zip(bounds[:-1], bounds[1:]))
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        blocks.call(p, "set_similarities", S[a:b])
    off = S[~np.eye(n, dtype=bool)]
    for value in (dtype(0), S[0, 35], off.min()):
        tie = off_diagonal_tie_of_blocks(blocks, bounds, dtype, value)
        assert tie == off_diagonal_tie(S, value)
        assert tie == (np.count_nonzero(off < value), np.count_nonzero(off == value), off.size)


def test_a_quantile_on_a_wide_tie_is_warned_about_on_the_stand_in(stand_in_estimator):
    from sklearn.preprocessing import normalize

    from tests.test_preference_tools import _documents

    X = _documents()
    with pytest.warns(UserWarning, match="gives the preference 0, a value that 9"):
        fitted = stand_in_estimator(3, affinity="cosine", preference_quantile=0.4,
                                    random_state=0).fit(X.toarray())
    assert fitted.preference_ == 0
    S = (normalize(X) @ normalize(X).T).toarray()
    n = S.shape[0]
    rows, cols = np.divmod(np.arange(n * n), n)
    some = (rows + cols) % 3 != 0  # not complete: the blocks' stored values
    graph = sparse.coo_matrix((S.ravel()[some], (rows[some], cols[some])), shape=(n, n))
    with pytest.warns(UserWarning, match="a value that [89].% of the stored off-diagonal"):
        fitted = stand_in_estimator(2, affinity="precomputed", preference_quantile=0.1,
                                    random_state=0).fit(graph)
    assert fitted.preference_ == 0
    positive = sparse.coo_matrix(S)  # the zeros not stored
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        stand_in_estimator(2, affinity="precomputed", preference_quantile=0.1,
                           random_state=0).fit(positive)
