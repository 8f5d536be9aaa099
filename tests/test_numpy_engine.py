"""The NumPy engine and the cold-start path (issue 17).

float64 results must be bitwise the same whichever path ran: the NumPy
engine, the compiled stored engine, or the NumPy engine handing over to the
compiled one mid-fit. The NumPy twins of the set-up steps must equal the
kernels they stand in for, and a fit on the NumPy path must compile nothing.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import make_blobs

from fastap import AffinityPropagation, _cold_start, _numpy_engine, _similarity
from fastap._dense import assign_clusters
from fastap._kernels import setup
from fastap._preference import preference_range_of_similarities


def blobs(n=60, seed=0, dtype=np.float64):
    X, _ = make_blobs(n_samples=n, n_features=3, centers=4, cluster_std=1.5, random_state=seed)
    return X.astype(dtype)


def fit(mode, X, monkeypatch, **params):
    monkeypatch.setenv("FASTAP_COLD_START", mode)
    params.setdefault("random_state", 0)
    return AffinityPropagation(**params).fit(X)


FITTED = ("labels_", "cluster_centers_indices_", "n_iter_", "converged_", "damping_",
          "affinity_matrix_", "preference_")
OPTIONAL = ("responsibility_", "availability_", "membership_confidence_", "cluster_centers_")


def assert_same_fit(a, b):
    for name in FITTED + OPTIONAL:
        assert hasattr(a, name) == hasattr(b, name), name
        if hasattr(a, name):
            left, right = (
                value.toarray() if sparse.issparse(value) else np.asarray(value)
                for value in (getattr(a, name), getattr(b, name))
            )
            assert left.dtype == right.dtype, name
            np.testing.assert_array_equal(left, right, err_msg=name)
    if hasattr(a, "history_"):
        for key, values in a.history_.items():
            np.testing.assert_array_equal(values, b.history_[key], err_msg=key)
    if hasattr(a, "preference_search_"):
        assert a.preference_search_ == b.preference_search_


CASES = {
    "default": dict(),
    "keep_messages": dict(keep_messages=True, record_history=True),
    "damping_auto": dict(damping="auto", max_iter=400, record_history=True),
    "damping_0.9": dict(damping=0.9, convergence_iter=30),
    "preference_quantile": dict(preference_quantile=0.1, keep_messages=True),
    "vector_preference": dict(preference=np.linspace(-60, -10, 60)),
    "n_clusters": dict(n_clusters=3, keep_messages=True),
    "max_iter_short": dict(max_iter=7),
    "cosine": dict(affinity="cosine"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_numpy_path_equals_compiled_bitwise(case, monkeypatch):
    X = blobs()
    numpy_fit = fit("numpy", X, monkeypatch, **CASES[case])
    compiled_fit = fit("compiled", X, monkeypatch, **CASES[case])
    assert_same_fit(numpy_fit, compiled_fit)


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_threaded_numpy_passes_are_bitwise(n_jobs, monkeypatch):
    X = blobs(_numpy_engine.THREADED_MIN_SAMPLES + 7, seed=8)
    params = dict(keep_messages=True, n_jobs=n_jobs, max_iter=40)
    assert_same_fit(fit("numpy", X, monkeypatch, **params),
                    fit("compiled", X, monkeypatch, **params))


def test_precomputed_sparse_features_and_callable_on_both_paths(monkeypatch):
    X = blobs(40, seed=3)
    S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    for data, params in [
        (S, dict(affinity="precomputed")),
        (sparse.csr_matrix(X), dict()),
        (X, dict(affinity=lambda Z: -np.abs(Z[:, None, 0] - Z[None, :, 0]))),
    ]:
        assert_same_fit(fit("numpy", data, monkeypatch, **params),
                        fit("compiled", data, monkeypatch, **params))


def test_warm_start_on_the_numpy_path_continues_bitwise(monkeypatch):
    X = blobs(50, seed=2)
    fits = {}
    for mode in ("numpy", "compiled"):
        model = AffinityPropagation(random_state=0, warm_start=True, max_iter=10)
        monkeypatch.setenv("FASTAP_COLD_START", mode)
        model.fit(X)
        model.set_params(max_iter=30)
        fits[mode] = model.fit(X)
    assert_same_fit(fits["numpy"], fits["compiled"])


def test_callback_stops_a_numpy_fit(monkeypatch):
    seen = []
    model = fit("numpy", blobs(), monkeypatch, callback=lambda info: seen.append(info) or
                info.iteration == 4)
    assert model.n_iter_ == 4 and [info.iteration for info in seen] == [1, 2, 3, 4]


def test_interrupt_leaves_the_estimator_unfitted(monkeypatch):
    def interrupt(info):
        raise KeyboardInterrupt

    model = AffinityPropagation(random_state=0, callback=interrupt)
    monkeypatch.setenv("FASTAP_COLD_START", "numpy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(blobs())
    assert not hasattr(model, "labels_")


@pytest.fixture
def cold(monkeypatch):
    """An 'auto' process whose kernels count as not compiled, with a fresh
    ledger; returns a function setting the ledger's budget."""
    monkeypatch.setenv("FASTAP_COLD_START", "auto")
    monkeypatch.setattr(_cold_start, "is_compiled", lambda engine: False)
    monkeypatch.setattr(_cold_start, "mark_compiled", lambda engine: None)

    def with_budget(budget):
        ledger = _cold_start.NumpyWorkLedger(budget)
        monkeypatch.setattr(_cold_start, "LEDGER", ledger)
        return ledger

    return with_budget


@pytest.mark.parametrize("params", [dict(keep_messages=True, record_history=True),
                                    dict(damping="auto", max_iter=300),
                                    dict(n_clusters=3)], ids=["messages", "auto", "search"])
def test_hand_over_mid_fit_is_bitwise(cold, monkeypatch, params):
    X = blobs()
    expected = fit("compiled", X, monkeypatch, **params)
    ledger = cold(10.5 * X.shape[0] ** 2)  # the set-up and 9 iterations in NumPy
    handed_over = fit("auto", X, monkeypatch, **params)
    assert ledger.spent >= ledger.budget
    assert_same_fit(handed_over, expected)


def test_fits_switch_engines_between_fits_with_the_same_results(cold, monkeypatch):
    X = blobs(80, seed=5)
    expected = fit("compiled", X, monkeypatch, keep_messages=True)
    ledger = cold(1.5 * X.shape[0] ** 2 * expected.n_iter_)
    results = [fit("auto", X, monkeypatch, keep_messages=True) for _ in range(3)]
    # The first fit in NumPy; the second hands over mid-fit; the third
    # starts exhausted and runs compiled.
    assert ledger.exhausted()
    for result in results:
        assert_same_fit(result, expected)


def test_choice_of_path(cold, monkeypatch):
    cold(1e9)
    assert _cold_start.choose_numpy_path(100, 2)
    assert not _cold_start.choose_numpy_path(_cold_start.NUMPY_MAX_SAMPLES + 1, 2)
    monkeypatch.setenv("FASTAP_COLD_START", "compiled")
    assert not _cold_start.choose_numpy_path(100, 2)
    monkeypatch.setenv("FASTAP_COLD_START", "numpy")
    assert _cold_start.choose_numpy_path(100, 2)
    monkeypatch.setenv("FASTAP_COLD_START", "sometimes")
    with pytest.raises(ValueError, match="FASTAP_COLD_START must be one of"):
        _cold_start.choose_numpy_path(100, 2)
    with _cold_start.forced_path("compiled"):
        assert _cold_start.mode() == "compiled"


def test_markers_are_per_engine_and_cpu(tmp_path, monkeypatch):
    from fastap._kernels import _jit

    monkeypatch.setattr(_jit, "cache_directory", lambda: tmp_path)
    monkeypatch.setattr(_cold_start, "_compiled_here", set())
    engine = _cold_start.dense_engine(10, 1)
    assert engine == "dense-float64-serial"
    assert _cold_start.dense_engine(10_000, 2) == "dense-float64-parallel"
    assert not _cold_start.is_compiled(engine)
    _cold_start.mark_compiled(engine)
    assert [p.name for p in tmp_path.iterdir()] == [f"compiled-{engine}-{_cold_start.cpu_key()}"]
    monkeypatch.setattr(_cold_start, "_compiled_here", set())
    assert _cold_start.is_compiled(engine)
    assert not _cold_start.is_compiled("dense-float64-parallel")


# -- float32 ---------------------------------------------------------------


def test_small_float32_runs_in_float64_on_both_paths(monkeypatch):
    X = blobs(60, dtype=np.float32)
    reference = fit("compiled", X.astype(np.float64), monkeypatch, keep_messages=True)
    for mode in ("numpy", "compiled"):
        model = fit(mode, X, monkeypatch, keep_messages=True)
        assert model.affinity_matrix_.dtype == np.float64
        assert model.cluster_centers_.dtype == np.float32
        np.testing.assert_array_equal(model.labels_, reference.labels_)
        np.testing.assert_array_equal(model.responsibility_, reference.responsibility_)
        assert model.n_iter_ == reference.n_iter_


def test_float32_above_the_threshold_or_with_an_engine_stays_float32(monkeypatch):
    X = blobs(60, dtype=np.float32)
    assert fit("auto", X, monkeypatch, engine="lean").affinity_matrix_.dtype == np.float32
    assert fit("auto", X, monkeypatch, noise="counter").affinity_matrix_.dtype == np.float32
    monkeypatch.setattr(_cold_start, "FLOAT64_MESSAGES_MAX_SAMPLES", 59)
    assert fit("auto", X, monkeypatch).affinity_matrix_.dtype == np.float32


# -- the NumPy twins of the set-up and result kernels ----------------------


def test_similarity_twins_are_bitwise():
    X = blobs(300, seed=1)
    X[5] = X[7]  # a zero distance off the diagonal
    expected = _similarity.negative_squared_euclidean(X, np.float64)
    got = _numpy_engine.similarities(X, "euclidean")
    assert got.tobytes() == expected.tobytes()
    csr = sparse.csr_matrix(X)
    assert (_numpy_engine.similarities(csr, "euclidean").tobytes()
            == _similarity.negative_squared_euclidean(csr, np.float64).tobytes())
    with pytest.raises(ValueError, match="overflow float64"):
        _numpy_engine.similarities(np.array([[1e154], [-1e154]]), "euclidean")
    with pytest.raises(ValueError, match="NaN or infinity"):
        _numpy_engine.similarities(X, lambda Z: np.full((300, 300), np.nan))


@pytest.mark.parametrize("n", [30, 600])  # np.median, and the sampled selection
def test_median_and_quantile_twins_are_bitwise(n):
    S = _similarity.negative_squared_euclidean(blobs(n, seed=4), np.float64)
    assert _numpy_engine.median(S) == setup.median_of_matrix(S, n_tasks=2)
    for q in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert _numpy_engine.off_diagonal_quantile(S, q) == setup.off_diagonal_quantile(S, q, 2)


def test_noise_preference_range_and_assignment_twins_are_bitwise():
    from fastap._dense import add_degeneracy_noise

    S = _similarity.negative_squared_euclidean(blobs(200, seed=6), np.float64)
    S_numpy = S.copy()
    normals = add_degeneracy_noise(S, np.random.RandomState(3))
    normals_numpy = _numpy_engine.add_degeneracy_noise(S_numpy, np.random.RandomState(3))
    assert S.tobytes() == S_numpy.tobytes() and normals.tobytes() == normals_numpy.tobytes()
    assert _numpy_engine.preference_range(S) == preference_range_of_similarities(S)
    flags = np.zeros(200, dtype=bool)
    flags[[3, 50, 120, 199]] = True
    for got, expected in zip(_numpy_engine.assign_clusters(S, flags), assign_clusters(S, flags)):
        np.testing.assert_array_equal(got, expected)


# -- nothing compiles on the NumPy path ------------------------------------

NO_COMPILE = r"""
import json, warnings
import numpy as np
from fastap import AffinityPropagation
from sklearn.datasets import make_blobs
X, _ = make_blobs(n_samples=120, n_features=4, centers=5, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for params in [dict(), dict(record_history=True, keep_messages=True, damping="auto"),
                   dict(n_clusters=4), dict(preference_quantile=0.2, affinity="cosine")]:
        AffinityPropagation(random_state=0, **params).fit(X)
        AffinityPropagation(random_state=0, **params).fit(X.astype(np.float32))
import fastap._kernels as kernels, importlib, pkgutil
compiled = []
for module in pkgutil.iter_modules(kernels.__path__):
    mod = importlib.import_module("fastap._kernels." + module.name)
    for name, value in vars(mod).items():
        if getattr(value, "signatures", None):
            compiled.append(f"{module.name}.{name}")
print(json.dumps(compiled))
"""


def test_a_cold_small_fit_compiles_nothing(tmp_path):
    env = dict(os.environ, FASTAP_CACHE_DIR=str(tmp_path), FASTAP_COLD_START="auto")
    output = subprocess.run([sys.executable, "-c", NO_COMPILE], env=env, check=True,
                            capture_output=True, text=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
    assert not list(tmp_path.rglob("*.nbi"))
