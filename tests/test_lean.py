"""The lean engine (fastap/_lean.py, fastap/_kernels/lean_messages.py).

Against the plain NumPy reference of AP (tests/reference_ap.py, R stored),
against a NumPy reference of the lean recurrence itself (below, with
unbounded corrections) and against the stored-R engine run in the same
dtype through the same NumPy steps.
"""

import warnings

import numba
import numpy as np
import pytest

from fastap import _lean
from fastap._kernels import lean_messages
from tests.data import blobs, similarity
from tests.reference_ap import availability_step, place_preference_and_noise, responsibility_step

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def parallel_from_two_samples(monkeypatch):
    """Small problems run the parallel pass whenever there are threads."""
    monkeypatch.setattr(_lean, "PARALLEL_MIN_SAMPLES", 2)


def lean_state(S, damping, n_threads=1):
    """A lean state on a prepared ``S`` (preferences and noise in place)."""
    state = _lean.LeanMessageState(S, damping=damping, n_threads=n_threads, prepared=True)
    state.prepare()
    return state


def prepared(n_samples, dtype, centers=4, random_state=3, preference=None):
    S = similarity(blobs(n_samples, centers=centers, random_state=random_state)).astype(dtype)
    preference = np.median(S) if preference is None else preference
    return place_preference_and_noise(S, preference, np.random.RandomState(0))


def reference_run(S, schedule):
    """Stored-R AP, NumPy, one damping per iteration; returns (R, A, flags)."""
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    for damping in schedule:
        responsibility_step(S, R, A, damping)
        availability_step(R, A, damping)
    return R, A, np.diag(A) + np.diag(R) > 0


def lean_reference_R(S, schedule):
    """The lean recurrence in float64 with a dense, never-dropped E:
    ``R = c S - z + E`` off the diagonal, availabilities as the reference."""
    S = S.astype(np.float64)
    n = S.shape[0]
    rows = np.arange(n)
    A = np.zeros_like(S)
    E = np.zeros_like(S)
    z = np.zeros(n)
    R_diagonal = np.zeros(n)
    c = 0.0
    for damping in schedule:
        values = A + S
        best = np.argmax(values, axis=1)
        best_value = values[rows, best]
        values[rows, best] = -np.inf
        second_value = values.max(axis=1)
        subtracted = np.where(best == rows, second_value, best_value)
        R_diagonal = damping * R_diagonal + (1 - damping) * (np.diag(S) - subtracted)
        c = damping * c + (1 - damping)
        z = damping * z + (1 - damping) * best_value
        E *= damping
        off = best != rows
        E[rows[off], best[off]] += (1 - damping) * (best_value - second_value)[off]
        R = c * S - z[:, None] + E
        R[rows, rows] = R_diagonal
        availability_step(R, A, damping)
    return R, A, E


def run_lean(S, schedule, n_threads=1):
    with_threads = min(n_threads, MAX_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(with_threads)
    try:
        state = lean_state(S.copy(), schedule[0], with_threads)
        assert state.parallel == (with_threads > 1)
        for t, damping in enumerate(schedule):
            if t > 0 and damping != schedule[t - 1]:
                state.set_damping(damping)
            state.iterate()
        R, A = state.messages()
    finally:
        numba.set_num_threads(previous)
    return R, A, state


SCHEDULE = [0.5, 0.5, 0.9, 0.9, 0.9, 0.7, 0.7]


@pytest.mark.parametrize("n_iter", [1, 2, 7, 40])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_float64_matches_stored_reference(n_iter, n_threads):
    S = prepared(97, np.float64)
    R_ref, A_ref, flags_ref = reference_run(S.copy(), [0.6] * n_iter)
    R, A, state = run_lean(S, [0.6] * n_iter, n_threads)
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_ref, atol=1e-13 * scale * n_iter, rtol=0)
    np.testing.assert_allclose(A, A_ref, atol=1e-13 * scale * n_iter, rtol=0)
    np.testing.assert_array_equal(state.is_exemplar, flags_ref)


@pytest.mark.parametrize("n_samples", [100, 400])
def test_damping_schedule_matches_reference(n_samples):
    # The finishing step must use the damping of the iteration it finishes.
    S = prepared(n_samples, np.float64)
    R_ref, A_ref, flags_ref = reference_run(S.copy(), SCHEDULE)
    R, A, state = run_lean(S, SCHEDULE, 2)
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_ref, atol=1e-12 * scale, rtol=0)
    np.testing.assert_allclose(A, A_ref, atol=1e-12 * scale, rtol=0)
    np.testing.assert_array_equal(state.is_exemplar, flags_ref)


def test_float64_matches_lean_reference_with_unbounded_corrections():
    S = prepared(150, np.float64, centers=6, random_state=1)
    schedule = [0.5] * 30 + [0.8] * 30
    R_ref, A_ref, E_ref = lean_reference_R(S, schedule)
    R, A, state = run_lean(S, schedule, 2)
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_ref, atol=1e-12 * scale, rtol=0)
    np.testing.assert_allclose(A, A_ref, atol=1e-12 * scale, rtol=0)
    # The lists keep exactly the entries above their threshold.
    threshold = 0.5 * np.finfo(np.float64).eps * (
        state.scale * np.abs(S) + np.abs(state.row_offset)[:, None]
    )
    np.fill_diagonal(E_ref, 0)
    kept = np.zeros_like(E_ref, dtype=bool)
    for i in range(S.shape[0]):
        kept[i, state.correction_columns[i, : state.correction_count[i]]] = True
    assert not np.any(kept & (np.abs(E_ref) <= threshold / 2))
    assert not np.any(~kept & (np.abs(E_ref) > 2 * threshold / (1 - 0.8)))
    assert np.all(state.evicted == 0)


@pytest.mark.parametrize("n_threads", [2, 3, 7])
def test_bitwise_independent_of_threads(n_threads, float_dtype):
    S = prepared(300, float_dtype, centers=5, random_state=7)
    serial = run_lean(S, SCHEDULE + [0.5] * 10, 1)
    threaded = run_lean(S, SCHEDULE + [0.5] * 10, n_threads)
    np.testing.assert_array_equal(serial[0], threaded[0])
    np.testing.assert_array_equal(serial[1], threaded[1])
    np.testing.assert_array_equal(serial[2].is_exemplar, threaded[2].is_exemplar)


def test_float32_close_to_float64_reference_and_to_stored_float32():
    S64 = prepared(200, np.float64, centers=5, random_state=2)
    S32 = S64.astype(np.float32)
    schedule = [0.5] * 10  # later, both drift alike as the run amplifies rounding
    R_ref, A_ref, flags_ref = reference_run(S64.copy(), schedule)
    R_stored, A_stored, _ = reference_run(S32.copy(), schedule)  # stored R in float32
    R, A, state = run_lean(S32, schedule, 2)
    assert R.dtype == A.dtype == np.float32
    scale = np.abs(S64).max()
    lean_error = np.abs(A.astype(np.float64) - A_ref).max()
    stored_error = np.abs(A_stored.astype(np.float64) - A_ref).max()
    assert lean_error < 1e-5 * scale
    # No worse than keeping R in float32 (allowing for luck in rounding).
    assert lean_error <= 2 * stored_error + 1e-6 * scale
    np.testing.assert_allclose(R, R_ref, atol=1e-5 * scale, rtol=0)
    np.testing.assert_array_equal(state.is_exemplar, flags_ref)


def test_capacity_grows_without_loss_and_bounded_lists_evict_the_smallest(monkeypatch):
    S = prepared(120, np.float64, centers=6, random_state=5)
    schedule = [0.9] * 60  # slow decay: entries live ~350 iterations in float64
    R_full, A_full, state_full = run_lean(S, schedule, 1)
    assert state_full.correction_count.max() >= 3
    monkeypatch.setattr(lean_messages, "INITIAL_CAPACITY", 1)
    R_grown, A_grown, state_grown = run_lean(S, schedule, 1)
    assert state_grown.capacity > 1  # it had to grow, and lost nothing
    assert np.all(state_grown.evicted == 0)
    np.testing.assert_array_equal(R_grown, R_full)
    np.testing.assert_array_equal(A_grown, A_full)
    monkeypatch.setattr(lean_messages, "MAX_CAPACITY", 2)
    R_small, A_small, state_small = run_lean(S, schedule, 1)
    assert state_small.capacity == 2
    assert state_small.evicted.max() > 0  # the bound was reached
    difference = np.abs(R_small - R_full)
    assert 0 < difference.max() and np.isfinite(difference).all()


def test_full_list_evicts_its_smallest_entry():
    columns = np.array([4, 9, 2], dtype=np.int32)
    values = np.array([0.5, -0.01, 0.3])
    count = np.array([0, 3], dtype=np.int64)
    evicted = np.zeros(2)
    lean_messages._add_correction(1, 9, 0.25, columns, values, count, evicted)  # present: added
    np.testing.assert_array_equal(values, [0.5, 0.24, 0.3])
    lean_messages._add_correction(1, 7, -0.125, columns, values, count, evicted)  # full: evict
    np.testing.assert_array_equal(columns, [4, 7, 2])
    np.testing.assert_array_equal(values, [0.5, -0.125, 0.3])
    assert evicted[1] == 0.24 and evicted[0] == 0 and count[1] == 3
    columns = np.zeros(3, dtype=np.int32)
    values = np.zeros(3)
    lean_messages._add_correction(0, 5, 1.5, columns, values, count, evicted)  # room: appended
    assert count[0] == 1 and columns[0] == 5 and values[0] == 1.5


def unprepared_state(n_samples, dtype, preference, random_state=4):
    """A lean state as the run gets it: raw similarities and a preference;
    :meth:`prepare` adds the noise (its diagonal normals kept)."""
    S = similarity(blobs(n_samples, centers=4, random_state=random_state)).astype(dtype)
    state = _lean.LeanMessageState(
        S, np.asarray(preference, dtype=dtype), damping=0.5,
        random_state=np.random.RandomState(1), n_threads=1,
    )
    state.prepare()
    return state


def test_set_preference_shift_matches_stored_shift():
    # The warm step of the n_clusters search: shift R and A to the new
    # preference, as the stored engine's shift does (NumPy, from its docstring).
    preference = -40.0
    state = unprepared_state(150, np.float64, preference)
    S = state.S
    n = S.shape[0]
    for _ in range(12):
        state.iterate()
    R_before, A_before = state.messages()
    R_before = R_before.copy()
    A_before = A_before.copy()
    # The same run again, then the shift.
    state = unprepared_state(150, np.float64, preference)
    for _ in range(12):
        state.iterate()
    new_preference = preference * 1.5
    state.set_preference(new_preference, shift_messages=True)
    R, A = state.messages()
    delta = new_preference - preference
    col_sum = np.maximum(R_before, 0)
    np.fill_diagonal(col_sum, np.diag(R_before))
    col_sum = col_sum.sum(axis=0)
    target = col_sum[None, :] - np.maximum(R_before, 0)
    A_expected = A_before + np.minimum(target + delta, 0) - np.minimum(target, 0)
    np.fill_diagonal(A_expected, np.diag(A_before))
    R_expected = R_before.copy()
    R_expected.flat[:: n + 1] += delta
    scale = np.abs(S).max()
    np.testing.assert_allclose(R, R_expected, atol=1e-12 * scale, rtol=0)
    np.testing.assert_allclose(A, A_expected, atol=1e-12 * scale, rtol=0)
    # The diagonal of S is what a fresh set-up with the new preference gives.
    fresh = unprepared_state(150, np.float64, new_preference)
    np.testing.assert_array_equal(state.S, fresh.S)


def test_set_preference_without_shift_leaves_messages():
    state = unprepared_state(100, np.float32, -20.0)
    n = state.n_samples
    for _ in range(5):
        state.iterate()
    R_before, A_before = (m.copy() for m in state.messages())
    state.set_preference(-3.0, shift_messages=False)
    R, A = state.messages()
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_array_equal(R[off], R_before[off])
    np.testing.assert_array_equal(np.diag(R), np.diag(R_before))
    np.testing.assert_array_equal(A, A_before)
    assert np.all(np.abs(np.diag(state.S) + 3.0) < 1e-5)


def test_warm_messages_are_refused():
    S = prepared(50, np.float32)
    with pytest.raises(ValueError, match="stored engine"):
        _lean.LeanMessageState(
            S, damping=0.5, prepared=True, warm_messages=(np.zeros_like(S), np.zeros_like(S))
        )


def test_runs_through_the_run_loop_like_the_dense_engine():
    # fastap._run.run drives the lean state as any other: on well-separated
    # float32 blobs the clusters are the stored engine's.
    from fastap import _run
    from fastap._dense import DenseMessageState

    X = blobs(400, centers=5, random_state=2, dtype=np.float32)
    S = similarity(X).astype(np.float32)
    preference = np.asarray(np.median(S), dtype=np.float32)
    options = _run.RunOptions(damping=0.5, keep_messages=True, record_history=True)
    results = {}
    for name, cls in (("stored", DenseMessageState), ("lean", _lean.LeanMessageState)):
        state = cls(S.copy(), preference, damping=0.5, random_state=np.random.RandomState(0),
                    n_threads=2)
        results[name] = _run.run(state, options)
    stored, lean = results["stored"], results["lean"]
    np.testing.assert_array_equal(lean.labels, stored.labels)
    np.testing.assert_array_equal(lean.cluster_centers_indices, stored.cluster_centers_indices)
    assert lean.converged and lean.n_iter == stored.n_iter
    assert lean.messages[0].shape == (400, 400)
    np.testing.assert_allclose(
        lean.history["net_similarity"], stored.history["net_similarity"], rtol=1e-5
    )
    np.testing.assert_array_equal(np.isnan(lean.membership_confidence),
                                  np.isnan(stored.membership_confidence))


def test_reset_runs_as_fresh(float_dtype):
    S = prepared(120, float_dtype)
    fresh = run_lean(S, [0.5] * 9, 1)
    state = lean_state(S.copy(), 0.7, 1)
    for _ in range(13):
        state.iterate()
    state.set_damping(0.5)
    state.reset()
    assert not state.is_exemplar.any()
    for _ in range(9):
        state.iterate()
    R, A = state.messages()
    np.testing.assert_array_equal(R, fresh[0])
    np.testing.assert_array_equal(A, fresh[1])


def test_messages_do_not_change_the_state():
    # Materialising R and completing A mid-run: the run goes on as if not.
    S = prepared(110, np.float64)
    straight = run_lean(S, [0.5] * 10, 1)
    state = lean_state(S.copy(), 0.5, 1)
    for t in range(10):
        state.iterate()
        if t in (3, 6):
            state.messages()
    R, A = state.messages()
    scale = np.abs(S).max()
    # Completing A early finishes it in its own pass instead of the next
    # one's: the same operations on the same values.
    np.testing.assert_array_equal(R, straight[0])
    np.testing.assert_allclose(A, straight[1], atol=1e-14 * scale, rtol=0)


def test_assign_and_net_similarity_match_numpy():
    S = prepared(200, np.float64, centers=5, random_state=6)
    state = lean_state(S.copy(), 0.5, 1)
    for _ in range(60):
        state.iterate()
    exemplars = np.flatnonzero(state.is_exemplar)
    assert exemplars.size > 0
    # scikit-learn's refinement, written out in NumPy.
    labels = np.argmax(S[:, exemplars], axis=1)
    labels[exemplars] = np.arange(exemplars.size)
    refined = exemplars.copy()
    for k in range(exemplars.size):
        members = np.flatnonzero(labels == k)
        refined[k] = members[np.argmax(np.sum(S[np.ix_(members, members)], axis=0))]
    labels = np.argmax(S[:, refined], axis=1)
    labels[refined] = np.arange(refined.size)
    centers, got_labels = state.assign(state.is_exemplar)
    np.testing.assert_array_equal(centers, np.unique(refined[labels]))
    np.testing.assert_array_equal(centers[got_labels], refined[labels])
    # Net similarity: best similarity to an exemplar, exemplars their preference.
    best = S[:, exemplars].max(axis=1)
    best[exemplars] = np.diag(S)[exemplars]
    np.testing.assert_allclose(state.net_similarity(), best.sum(), rtol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_skipping_chunks_without_positive_responsibility_is_exact(float_dtype, n_threads):
    # Chunks whose c max(S) - z is not positive skip step 4 and take the
    # short form of step 1: bitwise what the full formulas give (+inf chunk
    # maxima make every chunk take them).
    S = prepared(700, float_dtype, centers=6, random_state=8)
    skipped = lean_state(S.copy(), 0.5, n_threads)
    full = lean_state(S.copy(), 0.5, n_threads)
    full.chunk_max[:] = np.inf
    for t, damping in enumerate(SCHEDULE * 3):
        for state in (skipped, full):
            state.set_damping(damping)
            state.iterate()
    np.testing.assert_array_equal(skipped.A, full.A)
    np.testing.assert_array_equal(skipped.messages()[0], full.messages()[0])
    assert skipped.is_exemplar.any()


# --------------------------------------------------------------------------
# The estimator's engine parameter.
# --------------------------------------------------------------------------


def fit(X, **params):
    from fastap import AffinityPropagation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AffinityPropagation(random_state=0, **params).fit(X)


def test_auto_is_lean_for_float32_and_stored_for_float64(monkeypatch):
    from fastap import _cold_start

    # float32 problems this small run in float64 under "auto" (_cold_start).
    monkeypatch.setattr(_cold_start, "FLOAT64_MESSAGES_MAX_SAMPLES", 100)
    X = blobs(300, centers=4, random_state=1)
    for dtype, engine in ((np.float32, "lean"), (np.float64, "stored")):
        auto, chosen = fit(X.astype(dtype)), fit(X.astype(dtype), engine=engine)
        np.testing.assert_array_equal(auto.affinity_matrix_, chosen.affinity_matrix_)
        np.testing.assert_array_equal(auto.labels_, chosen.labels_)
        assert auto.n_iter_ == chosen.n_iter_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_and_stored_fits_agree_on_separated_data(dtype):
    X = blobs(400, centers=6, cluster_std=0.6, random_state=5).astype(dtype)
    lean, stored = fit(X, engine="lean", damping=0.7), fit(X, engine="stored", damping=0.7)
    np.testing.assert_array_equal(lean.labels_, stored.labels_)
    np.testing.assert_array_equal(lean.cluster_centers_indices_, stored.cluster_centers_indices_)
    assert lean.converged_ and stored.converged_


def test_lean_keeps_messages_searches_and_records():
    X = blobs(300, centers=4, cluster_std=0.5, random_state=1).astype(np.float32)
    params = dict(damping=0.7, keep_messages=True, record_history=True)
    lean, stored = fit(X, engine="lean", **params), fit(X, engine="stored", **params)
    assert lean.converged_ and lean.n_iter_ == stored.n_iter_
    scale = np.abs(stored.affinity_matrix_).max()
    np.testing.assert_allclose(lean.responsibility_, stored.responsibility_, atol=1e-4 * scale)
    np.testing.assert_allclose(lean.availability_, stored.availability_, atol=1e-4 * scale)
    np.testing.assert_allclose(lean.membership_confidence_, stored.membership_confidence_,
                               rtol=1e-3, atol=1e-4 * scale)
    assert len(lean.history_["n_exemplars"]) == lean.n_iter_
    searched = fit(X, engine="lean", n_clusters=4)
    assert searched.cluster_centers_indices_.size == 4


def test_lean_warm_start_continues_on_the_stored_engine():
    X = blobs(200, centers=4, random_state=3).astype(np.float32)
    model = fit(X, engine="lean", warm_start=True, max_iter=10)
    first = model.responsibility_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.set_params(max_iter=5).fit(X)
    assert model.responsibility_.shape == first.shape
    assert not np.array_equal(model.responsibility_, first)


def test_unknown_engine_is_refused():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="engine"):
        fit(blobs(20, centers=2).astype(np.float32), engine="fast")
