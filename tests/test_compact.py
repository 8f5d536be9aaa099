"""The compact engine (fastap/_compact.py, fastap/_kernels/compact_messages.py).

Its oracle is the lean engine: the same messages by another storage, so
every result must be the lean engine's bitwise (labels, centers, n_iter_,
converged_, and R, A and the membership confidence where kept), in float32
and float64, for any number of threads.
"""

import warnings

import numba
import numpy as np
import pytest
from hypothesis import given, settings

from fastap import AffinityPropagation, _compact, _lean, _resources
from tests.data import blobs, similarity
from tests.test_lean import SCHEDULE, prepared
from tests.test_properties import similarity_problems

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def parallel_from_two_samples(monkeypatch):
    """Small problems run the parallel pass whenever there are threads."""
    monkeypatch.setattr(_lean, "PARALLEL_MIN_SAMPLES", 2)


def make_states(S, damping, n_threads=1):
    states = []
    for cls in (_lean.LeanMessageState, _compact.CompactMessageState):
        state = cls(S.copy(), damping=damping, n_threads=n_threads, prepared=True)
        state.prepare()
        states.append(state)
    return states


def assert_same_messages(lean, compact):
    R_lean, A_lean = (m.copy() for m in lean.messages())
    R_compact, A_compact = compact.messages()
    np.testing.assert_array_equal(R_compact, R_lean)
    np.testing.assert_array_equal(A_compact, A_lean)
    np.testing.assert_array_equal(compact.is_exemplar, lean.is_exemplar)


def run_side_by_side(S, schedule, n_threads=1, every=None):
    """Both engines through ``schedule``; their iterations' outcomes must
    agree, and their messages every ``every`` iterations (mid-run
    materialisation must not change the run)."""
    with_threads = min(n_threads, MAX_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(with_threads)
    try:
        lean, compact = make_states(S, schedule[0], with_threads)
        for t, damping in enumerate(schedule):
            for state in (lean, compact):
                state.set_damping(damping)
            assert compact.iterate() == lean.iterate(), f"iteration {t}"
            if every and t % every == every - 1:
                assert_same_messages(lean, compact)
        assert_same_messages(lean, compact)
    finally:
        numba.set_num_threads(previous)
    return lean, compact


@pytest.mark.parametrize("n_threads", [1, 2, 7])
def test_messages_bitwise_the_lean_engines(float_dtype, n_threads):
    S = prepared(300, float_dtype, centers=5, random_state=7)
    lean, compact = run_side_by_side(S, SCHEDULE + [0.5] * 30 + [0.9] * 20, n_threads)
    assert compact.exception_count.sum() > 0 and not compact.is_lean


def test_messages_mid_run_do_not_change_the_run(float_dtype):
    S = prepared(200, float_dtype, centers=4, random_state=2)
    run_side_by_side(S, [0.5] * 25 + [0.8] * 15, 2, every=7)


def test_lists_hold_the_positive_pairs_and_acol_the_rest(float_dtype):
    S = prepared(250, float_dtype, centers=5, random_state=3)
    n = S.shape[0]
    lean, compact = make_states(S, 0.7, 2)
    ever_positive = np.zeros((n, n), dtype=bool)
    off_diagonal = ~np.eye(n, dtype=bool)
    dropped = False
    for _ in range(40):
        lean.iterate()
        compact.iterate()
        positive = (lean.responsibility() > 0) & off_diagonal
        ever_positive |= positive
        listed = np.zeros((n, n), dtype=bool)
        for i in range(n):
            start = compact.exception_start[i]
            listed[i, compact.exception_columns[start : start + compact.exception_count[i]]] = True
        assert not np.any(positive & ~listed)  # what is positive now is listed
        assert not np.any(listed & ~ever_positive)  # only what was once positive
        dropped |= np.any(ever_positive & ~listed)
    listed = np.zeros((n, n), dtype=bool)
    for i in range(n):
        start = compact.exception_start[i]
        columns = compact.exception_columns[start : start + compact.exception_count[i]]
        assert np.unique(columns).size == columns.size  # no pair twice
        listed[i, columns] = True
    assert dropped  # entries equal to acol again left the lists
    _, A = compact.messages()
    off = ~listed & ~np.eye(n, dtype=bool)
    np.testing.assert_array_equal(A[off], np.broadcast_to(compact.acol, (n, n))[off])


def test_lists_grow_from_one_slot_without_loss(monkeypatch, float_dtype):
    S = prepared(180, float_dtype, centers=6, random_state=5)
    monkeypatch.setattr(_compact, "INITIAL_EXCEPTION_SLOTS", 1)
    lean, compact = run_side_by_side(S, [0.9] * 40)
    assert np.diff(compact.exception_start).max() > 1 and not compact.is_lean


def test_lists_beyond_their_budget_turn_the_state_lean(monkeypatch, float_dtype):
    S = prepared(200, float_dtype, centers=4, random_state=1)
    monkeypatch.setattr(_compact, "EXCEPTION_BUDGET_FRACTION", 0.02)
    lean, compact = run_side_by_side(S, [0.5] * 10 + [0.9] * 30, 2, every=9)
    assert compact.is_lean and 1 <= compact.fell_back_at < 40
    compact.reset()  # a reset starts compact again
    assert not compact.is_lean and compact.exception_count.sum() == 0


def test_lists_beyond_their_budget_without_memory_for_A_raise(monkeypatch):
    S = prepared(200, np.float32, centers=4, random_state=1)
    monkeypatch.setattr(_compact, "EXCEPTION_BUDGET_FRACTION", 0.02)
    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 1000)
    _, compact = make_states(S, 0.5)
    with pytest.raises(MemoryError, match="exception lists outgrew their budget"):
        for _ in range(40):
            compact.iterate()


def test_reset_runs_as_fresh(float_dtype):
    S = prepared(150, float_dtype)
    lean, compact = make_states(S, 0.7)
    for state in (lean, compact):
        for _ in range(13):
            state.iterate()
        state.set_damping(0.5)
        state.reset()
        for _ in range(9):
            state.iterate()
    assert_same_messages(lean, compact)


@pytest.mark.parametrize("shift_messages", [True, False])
def test_set_preference_as_the_lean_engine(float_dtype, shift_messages):
    X = blobs(160, centers=4, random_state=4).astype(float_dtype)
    S = similarity(X).astype(float_dtype)
    states = [
        cls(S.copy(), np.asarray(-40.0, dtype=float_dtype), damping=0.5,
            random_state=np.random.RandomState(1), n_threads=2)
        for cls in (_lean.LeanMessageState, _compact.CompactMessageState)
    ]
    for state in states:
        state.prepare()
        for _ in range(12):
            state.iterate()
        state.set_preference(-60.0, shift_messages=shift_messages)
        for _ in range(8):
            state.iterate()
    np.testing.assert_array_equal(states[1].S, states[0].S)
    assert_same_messages(*states)


def test_warm_messages_are_refused():
    S = prepared(50, np.float32)
    with pytest.raises(ValueError, match="stored engine"):
        _compact.CompactMessageState(
            S, damping=0.5, prepared=True, warm_messages=(np.zeros_like(S), np.zeros_like(S))
        )


# --------------------------------------------------------------------------
# Through the estimator.
# --------------------------------------------------------------------------


def fit_both(X, **params):
    fits = []
    for engine in ("lean", "compact"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(AffinityPropagation(engine=engine, **params).fit(X))
    return fits


def assert_same_fit(lean, compact):
    np.testing.assert_array_equal(compact.cluster_centers_indices_, lean.cluster_centers_indices_)
    np.testing.assert_array_equal(compact.labels_, lean.labels_)
    assert compact.n_iter_ == lean.n_iter_
    assert compact.converged_ == lean.converged_
    for name in ("responsibility_", "availability_", "membership_confidence_",
                 "preference_search_"):
        if hasattr(lean, name):
            np.testing.assert_array_equal(getattr(compact, name), getattr(lean, name))


@settings(max_examples=40)
@given(similarity_problems())
def test_random_problems_as_the_lean_engine(problem):
    S, params = problem
    for dtype in (np.float64, np.float32):
        preference = params["preference"]
        if preference is not None:
            preference = np.asarray(preference, dtype=dtype)
        assert_same_fit(*fit_both(S.astype(dtype), affinity="precomputed",
                                  **{**params, "preference": preference}))


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
@pytest.mark.parametrize("quantile", [None, 0.05, 0.25])
def test_real_data_as_the_lean_engine(name, quantile, float_dtype):
    from sklearn import datasets

    X = getattr(datasets, f"load_{name}")().data.astype(float_dtype)
    assert_same_fit(*fit_both(X, random_state=0, preference_quantile=quantile, max_iter=400))


@pytest.mark.parametrize("damping", [0.5, 0.9, "auto"])
@pytest.mark.parametrize("n_jobs", [1, 2, 7])
def test_blobs_as_the_lean_engine_for_any_threads(damping, n_jobs, float_dtype):
    X = blobs(700, centers=10, random_state=0, dtype=float_dtype)
    lean, compact = fit_both(X, random_state=0, damping=damping, n_jobs=n_jobs, max_iter=300)
    assert_same_fit(lean, compact)


def test_n_clusters_search_keep_messages_and_history_as_the_lean_engine(float_dtype):
    X = blobs(400, centers=6, random_state=3, dtype=float_dtype)
    assert_same_fit(*fit_both(X, random_state=0, n_clusters=6, keep_messages=True))
    lean, compact = fit_both(X, random_state=0, keep_messages=True, record_history=True)
    assert_same_fit(lean, compact)
    for key in lean.history_:
        np.testing.assert_array_equal(compact.history_[key], lean.history_[key])


def test_minus_inf_pairs_as_the_lean_engine(float_dtype):
    # The estimator refuses infinite dense input; the engines take -inf
    # pairs (a graph's missing pairs, forbidden links) all the same.
    S = prepared(260, float_dtype, centers=4, random_state=6)
    forbidden = np.random.RandomState(0).rand(*S.shape) < 0.2
    np.fill_diagonal(forbidden, False)
    S[forbidden] = -np.inf
    lean, _ = run_side_by_side(S, [0.5] * 20 + [0.9] * 30, 2, every=10)
    assert np.isfinite(lean.messages()[1]).all() and lean.is_exemplar.any()


def test_duplicate_samples_as_the_lean_engine(float_dtype):
    X = blobs(240, centers=4, random_state=6)
    X = np.vstack([X, X[:60], X[:10]]).astype(float_dtype)  # samples twice and three times
    lean, compact = fit_both(X, random_state=0, damping=0.7, keep_messages=True)
    assert_same_fit(lean, compact)


def test_keep_messages_refused_before_any_iteration_when_R_and_A_cannot_fit(monkeypatch):
    X = blobs(300, centers=4, random_state=1, dtype=np.float32)
    n = X.shape[0]
    # Room for S, its set-up and the compact engine's buffers, not for R and
    # A besides.
    room = _resources.dense_fit_memory(n, np.float32, "compact").bytes
    assert room < _resources.dense_fit_memory(n, np.float32, "lean").bytes
    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: room)
    iterations = []
    model = AffinityPropagation(engine="compact", random_state=0, keep_messages=True,
                                callback=lambda info: iterations.append(info))
    with pytest.raises(MemoryError, match="3 matrices"):
        model.fit(X)
    assert iterations == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AffinityPropagation(engine="compact", random_state=0).fit(X)  # fits without them
    with pytest.raises(MemoryError, match="2 matrices"):
        AffinityPropagation(engine="lean", random_state=0).fit(X)


def test_auto_takes_the_compact_engine_only_where_lean_does_not_fit(monkeypatch):
    # A precomputed float32 matrix used in place: the messages are all a fit adds.
    S = similarity(blobs(2500, centers=6, random_state=3, dtype=np.float32))
    n = S.shape[0]
    lean_bytes, compact_bytes = (
        _resources.dense_fit_memory(n, np.float32, engine, source="precomputed",
                                    reused=("S",)).bytes
        for engine in ("lean", "compact")
    )
    assert compact_bytes < lean_bytes
    chosen = []
    original = _compact.CompactMessageState.__init__

    def record(self, *args, **kwargs):
        chosen.append("compact")
        original(self, *args, **kwargs)

    monkeypatch.setattr(_compact.CompactMessageState, "__init__", record)
    fits = []
    for room in (lean_bytes + 1, (lean_bytes + compact_bytes) // 2):
        monkeypatch.setattr(_resources, "available_memory_bytes", lambda room=room: room)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(AffinityPropagation(
                affinity="precomputed", copy=False, damping=0.9, random_state=0
            ).fit(S.copy()))
        chosen.append(f"fit with {room}")
    assert chosen == [f"fit with {lean_bytes + 1}", "compact",
                      f"fit with {(lean_bytes + compact_bytes) // 2}"]
    lean, compact = fits
    np.testing.assert_array_equal(lean.labels_, compact.labels_)
    np.testing.assert_array_equal(lean.cluster_centers_indices_, compact.cluster_centers_indices_)
    assert lean.n_iter_ == compact.n_iter_
