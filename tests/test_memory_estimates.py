"""The memory a fit needs: one estimate per engine (``_resources``), checked
against the peak resident memory of real fits, and used by every message.

Each measurement runs in a fresh Python process: the kernels are loaded by
a small fit of the same kind first, then the peak resident set is reset
(Linux ``/proc/self/clear_refs``) and read after the fit (``VmHWM``), minus
the resident set just before it. Sizes are those of a shared 2-core machine
(at most ~0.8 GiB per process). The stored engine touches R and A from a
helper thread while S is computed, so how much of them its set-up peak
holds depends on timing (and the machine's load): its float32 case is
measured from N = 6,000 on, where that moves the peak by less than the
tolerance, and the callable (whose output is the largest set-up temporary)
on the lean engine (float32), which allocates A only after the set-up.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastap import AffinityPropagation, _resources
from tests.data import blobs

TOLERANCE = 0.15

_CHILD = r"""
import ctypes, json, sys, warnings
import numpy as np
from scipy import sparse
from sklearn.datasets import make_blobs
from sklearn.metrics import euclidean_distances
from fastap import AffinityPropagation, _resources

case, n = sys.argv[1], int(sys.argv[2])
dtype = np.float32 if case.endswith("32") else np.float64
options = dict(random_state=0, damping=0.9, max_iter=40, n_jobs=1)

def negative_squared_distances(X):
    distances = euclidean_distances(X.astype(np.float64), squared=True)
    distances *= -1  # in place: one float64 N x N output
    return distances

def data(n):
    X = make_blobs(n_samples=n, n_features=8, centers=10, random_state=0)[0].astype(dtype)
    if case.startswith("sparse_features"):
        return sparse.csr_matrix(X)
    if case.startswith("graph"):
        # A random symmetric graph of about 24 stored pairs per row.
        rng = np.random.default_rng(0)
        rows, cols = np.repeat(np.arange(n), 12), rng.integers(0, n, 12 * n)
        keep = rows != cols
        values = -rng.random(keep.sum())
        graph = sparse.coo_matrix((values, (rows[keep], cols[keep])), shape=(n, n)).tocsr()
        graph.sum_duplicates()
        return (graph + graph.T).tocsr().astype(dtype)
    return X

def estimate(X):
    n = X.shape[0]
    if case.startswith("graph"):
        return _resources.sparse_fit_memory(n, X.nnz + n, dtype).bytes
    if case.startswith("nearest_neighbors"):
        return _resources.nearest_neighbors_fit_memory(n, 30, dtype).bytes
    engine = "stored" if case.startswith("stored") else "lean"
    source = {"callable": "callable", "sparse_features": "sparse_features"}.get(
        case.rsplit("_", 1)[0], "features")
    return _resources.dense_fit_memory(n, dtype, engine, source=source).bytes

if case.startswith("stored"):
    options["engine"] = "stored"
if case.startswith("callable"):
    options["affinity"] = negative_squared_distances
if case.startswith("graph"):
    options["affinity"] = "precomputed"
if case.startswith("nearest_neighbors"):
    options["affinity"] = "nearest_neighbors"

def resident(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

warnings.simplefilter("ignore")
AffinityPropagation(**options).fit(data(300))  # loads the kernels
X = data(n)
# Freed memory the C heap keeps would be reused unseen by the fit.
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = resident("VmRSS:")
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak resident set starts again from here
AffinityPropagation(**options).fit(X)
print(json.dumps({"peak": resident("VmHWM:") - before, "estimate": estimate(X)}))
"""

CASES = [
    ("stored_features_64", 3000), ("stored_features_64", 5000),
    ("stored_features_32", 6000), ("stored_features_32", 8000),
    ("lean_features_32", 3000), ("lean_features_32", 5000),
    ("callable_32", 3000), ("callable_32", 5000),
    ("sparse_features_32", 3000), ("sparse_features_32", 5000),
    ("graph_64", 40_000), ("graph_64", 80_000),
    ("nearest_neighbors_64", 3000), ("nearest_neighbors_64", 5000),
]


def _measure(case_and_size):
    case, n = case_and_size
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, case, str(n)], capture_output=True, text=True,
        timeout=600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} at N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def measured():
    """Every case measured once, two processes at a time (a 2-core machine)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(_measure, CASES)))


@pytest.mark.parametrize("case, n_samples", CASES)
def test_estimate_is_within_15_percent_of_the_measured_peak(measured, case, n_samples):
    result = measured[case, n_samples]
    peak, estimate = result["peak"], result["estimate"]
    assert abs(peak - estimate) <= TOLERANCE * estimate, (
        f"{case} N={n_samples}: measured {peak / 2**20:.1f} MiB, "
        f"estimated {estimate / 2**20:.1f} MiB"
    )


# --------------------------------------------------------------------------
# The footprints, engine by engine.
# --------------------------------------------------------------------------


def test_the_lean_engine_holds_two_matrices_and_short_lists():
    n = 50_000
    matrix = n * n * 4
    lean = _resources.dense_fit_memory(n, np.float32, "lean")
    stored = _resources.dense_fit_memory(n, np.float32, "stored")
    assert 2 * matrix < lean.bytes < 2.1 * matrix
    assert 3 * matrix < stored.bytes < 3.1 * matrix
    assert lean.description.startswith("2 matrices of 50000 x 50000 in float32: S and A")
    assert stored.description == "3 matrices of 50000 x 50000 in float32: S, R and A"


def test_float64_doubles_the_matrices():
    n = 20_000
    for engine in ("stored", "lean"):
        single = _resources.dense_fit_memory(n, np.float32, engine).bytes
        double = _resources.dense_fit_memory(n, np.float64, engine).bytes
        assert 1.9 * single < double <= 2 * single


def test_what_the_fit_does_not_allocate_is_not_counted():
    n = 10_000
    matrix = n * n * 8
    whole = _resources.dense_fit_memory(n, np.float64, "stored", source="precomputed").bytes
    in_place = _resources.dense_fit_memory(
        n, np.float64, "stored", source="precomputed", reused=("S",)
    ).bytes
    warm = _resources.dense_fit_memory(n, np.float64, "stored", reused=("R", "A")).bytes
    assert whole - in_place == matrix
    assert whole - warm == 2 * matrix
    # The lean engine's R, made whole for keep_messages, is a third matrix.
    lean = _resources.dense_fit_memory(n, np.float64, "lean")
    kept = _resources.dense_fit_memory(n, np.float64, "lean", keep_messages=True)
    assert kept.bytes - lean.bytes == matrix and "keep_messages" in kept.description


def test_set_up_temporaries():
    n = 10_000
    matrix64 = n * n * 8
    # The callable's output beside S, R and A (whose pages the stored
    # engine touches meanwhile).
    assert _resources.dense_fit_memory(
        n, np.float64, "stored", source="callable"
    ).bytes == 4 * matrix64
    # float32 similarities go through float64 blocks of at most 64 MiB.
    lean = _resources.dense_fit_memory(n, np.float32, "lean").bytes
    assert lean == _resources.dense_fit_memory(n, np.float32, "lean", source="sparse_features").bytes
    with pytest.raises(ValueError, match="source must be one of"):
        _resources.dense_fit_memory(n, np.float64, "stored", source="csv")


def test_an_engine_adds_its_footprint_in_one_place(monkeypatch):
    # A hypothetical engine holding S alone plus 1 KiB a row.
    compact = _resources.EngineFootprint(("S",), False, lambda n, itemsize: 1024 * n, "lists")
    monkeypatch.setitem(_resources.DENSE_ENGINES, "compact", compact)
    estimate = _resources.dense_fit_memory(1000, np.float32, "compact", source="precomputed")
    assert estimate.bytes == 1000 * 1000 * 4 + 1024 * 1000
    assert estimate.description == "1 matrix of 1000 x 1000 in float32: S; lists"


def test_sparse_and_nearest_neighbors_footprints():
    assert _resources.sparse_fit_memory(0, 10**6, np.float64).bytes == 40 * 10**6
    assert _resources.sparse_fit_memory(0, 10**6, np.float32).bytes == 28 * 10**6
    # The default preference's sampled pairs, not N^2, above 2,000 samples.
    small = _resources.nearest_neighbors_fit_memory(3000, 30, np.float64).bytes
    large = _resources.nearest_neighbors_fit_memory(300_000, 30, np.float64).bytes
    assert small < 40 * 2**20
    assert large == _resources.sparse_fit_memory(300_000, 2 * 30 * 300_000 + 300_000,
                                                 np.float64).bytes


# --------------------------------------------------------------------------
# The messages: one estimate everywhere.
# --------------------------------------------------------------------------


def _memory_error_text(run):
    with pytest.raises(MemoryError) as error:
        run()
    return str(error.value)


def test_float64_error_names_the_float32_engines_own_footprint(monkeypatch):
    # The case: 50,000 samples, 23.1 GiB available. Nothing is
    # allocated: the check comes first.
    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: int(23.1 * 2**30))
    X = blobs(50_000, n_features=2)
    text = _memory_error_text(lambda: AffinityPropagation().fit(X))
    float64 = _resources.dense_fit_memory(50_000, np.float64, "stored").bytes
    float32 = _resources.dense_fit_memory(50_000, np.float32, "lean").bytes
    assert f"needs about {float64 / 2**30:.1f} GiB" in text
    assert f"float32 input (about {float32 / 2**30:.1f} GiB: 2 matrices" in text
    assert float32 < 23.1 * 2**30  # and a float32 fit would indeed be let through
    AffinityPropagation()._check_dense_memory(50_000, np.float32, None, "features")


def test_command_line_and_estimator_give_the_same_figure(monkeypatch):
    from fastap._cli_fit import check_memory_early

    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 2**30)
    for dtype in (np.float32, np.float64):
        early = _memory_error_text(lambda: check_memory_early(100_000, np.dtype(dtype)))
        X = blobs(100_000, n_features=2, dtype=dtype)
        fit = _memory_error_text(lambda: AffinityPropagation().fit(X))
        assert early == fit


def test_preference_range_counts_the_similarities_alone(monkeypatch):
    from fastap import preference_range

    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: 2**20)
    text = _memory_error_text(lambda: preference_range(blobs(2000)))
    assert "(1 matrix of 2000 x 2000 in float64: S)" in text


def test_the_public_estimate_is_the_estimators():
    import fastap

    assert fastap.fit_memory_bytes(50_000) == _resources.dense_fit_memory(
        50_000, np.float64, "stored").bytes
    assert fastap.fit_memory_bytes(50_000, np.float32) == _resources.dense_fit_memory(
        50_000, np.float32, "lean").bytes
    assert fastap.fit_memory_bytes(50_000, np.float32, keep_messages=True) == (
        _resources.dense_fit_memory(50_000, np.float32, "stored").bytes
    )
    assert fastap.fit_memory_bytes(9000, affinity="precomputed") == _resources.dense_fit_memory(
        9000, np.float64, "stored", source="precomputed").bytes
    assert fastap.fit_memory_bytes(10**6, affinity="nearest_neighbors", n_neighbors=10) == (
        _resources.nearest_neighbors_fit_memory(10**6, 10, np.float64).bytes
    )
