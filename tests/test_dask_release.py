"""A Dask fit frees its row blocks on the workers when it ends (issue 18).

On a real LocalCluster with a tight memory limit: ten fits in a row (plain,
float32, keep_messages, n_clusters, a dask array of similarities, a sparse
graph), then fits that fail after their blocks exist (an error and Ctrl-C
from the callback, a bad preference, a block refusing its rows). After each
one the workers hold no actor and their memory is back near its baseline,
with Python's cyclic garbage collector disabled in the client and the
workers: the blocks go by reference counting and explicit release, never
by luck of a collection. Before the fix, every fit left its blocks (one
S block, 61 MiB a worker at N=4,000) alive until a collection ran: from
about the sixth fit a worker (280 MiB at rest, 183 MiB more during a fit)
would pass Dask's pause threshold (80% of 1 GiB), by the ninth its
termination threshold (95%).

Every wait is bounded; the cluster is closed by its fixture's finalizer.
"""

import gc
import time
import tracemalloc

import dask.array as da
import numpy as np
import psutil
import pytest
from distributed import Client, LocalCluster
from sklearn.datasets import make_blobs
from sklearn.neighbors import kneighbors_graph

from fastap.dask import AffinityPropagation

pytestmark = [
    # distributed's own sockets and event loops (see test_dask.py).
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # The fits are cut short on purpose (a few iterations each): memory is tested here.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:No preference found that gives:UserWarning"),
]

N_SAMPLES = 4000
# Half of one worker's S block: a single leaked block exceeds it.
SLACK_BYTES = N_SAMPLES // 2 * N_SAMPLES * 8 // 2


def _worker_rss():
    return psutil.Process().memory_info().rss


def _actor_count(dask_worker):
    return len(dask_worker.state.actors)


def _set_cyclic_gc(enabled):
    (gc.enable if enabled else gc.disable)()
    return gc.isenabled()


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        memory_limit="1GiB",
    )
    client = Client(cluster, timeout=60)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


@pytest.fixture
def without_cyclic_gc(client):
    """No cyclic garbage collection in the client or the workers meanwhile."""
    gc.disable()
    client.run(_set_cyclic_gc, False)
    try:
        yield
    finally:
        gc.enable()
        client.run(_set_cyclic_gc, True)


def _blobs(n, dtype=np.float64):
    X, _ = make_blobs(n_samples=n, centers=6, n_features=4, cluster_std=1.5, random_state=0)
    return X.astype(dtype)


def _knn_graph(X):
    graph = kneighbors_graph(X, n_neighbors=10, mode="distance")
    graph.data = -(graph.data**2)
    return graph


def _similarity_rows(rows, X, nan_in_last_row=False):
    S = 2 * rows @ X.T - (rows**2).sum(axis=1)[:, None] - (X**2).sum(axis=1)
    if nan_in_last_row and np.array_equal(rows[-1], X[-1]):  # the last block
        S[-1, 0] = np.nan
    return S


def _dask_similarities(X, nan_in_last_row=False):
    """-||x_i - x_j||^2 as a dask array of two row blocks computed on the
    workers (a NumPy S would be sent through the scheduler: 122 MiB)."""
    rows = da.from_array(X, chunks=(len(X) // 2, X.shape[1]))
    return rows.map_blocks(
        _similarity_rows, X, nan_in_last_row, chunks=(rows.chunks[0], (len(X),)),
        dtype=np.float64,
    )


def _wait_for_no_actors(client, timeout=20.0):
    """Poll the workers until they hold no actor (a release reaches the
    worker through the scheduler, a few milliseconds later); the counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = client.run(_actor_count)
        if sum(counts.values()) == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def _fits(X, client):
    """Ten fits of N_SAMPLES samples, each a few iterations, every path that
    starts blocks on the workers: features (float64, float32), keep_messages,
    n_clusters, a dask array of similarities, a sparse graph."""
    short = dict(client=client, random_state=0, max_iter=4, convergence_iter=2)
    # A Fortran-ordered S: the fit makes the C-ordered copy it sends (and
    # must not keep it).
    S = np.asfortranarray(2 * X @ X.T - (X**2).sum(axis=1)[:, None] - (X**2).sum(axis=1))
    fits = [(S, dict(affinity="precomputed", preference=-100.0))]
    fits += [(X, dict(preference=-100.0 * (k + 1))) for k in range(1, 4)]
    fits += [
        (X.astype(np.float32), dict(preference=-50.0)),
        (X, dict(preference=-300.0, keep_messages=True)),
        (X, dict(n_clusters=6, max_iter=3)),
        (_dask_similarities(X),
         dict(affinity="precomputed", preference=-200.0)),
        (_knn_graph(X), dict(affinity="precomputed")),
        (X, dict(preference=-400.0)),
    ]
    return [(data, {**short, **options}) for data, options in fits]


def _check_released(client, baseline, what):
    counts = _wait_for_no_actors(client)
    assert sum(counts.values()) == 0, f"{what}: actors still on the workers: {counts}"
    # The client: what the fit sent (S rows, a graph's arrays) is not kept.
    client_grown = tracemalloc.get_traced_memory()[0] - baseline["client"]
    assert client_grown < SLACK_BYTES, (
        f"{what}: the client holds {client_grown / 2**20:.0f} MiB more than before the fits"
    )
    rss = client.run(_worker_rss)
    for worker, value in rss.items():
        grown = value - baseline["workers"][worker]
        assert grown < SLACK_BYTES, (
            f"{what}: worker {worker} holds {grown / 2**20:.0f} MiB more than before the fits"
        )


@pytest.fixture(scope="module")
def warmed_up(client):
    """Every kernel the fits use loaded on the workers (the same fits at 200
    samples)."""
    for data, options in _fits(_blobs(200), client):
        AffinityPropagation(**options).fit(data)
    assert sum(_wait_for_no_actors(client).values()) == 0


@pytest.fixture
def baseline(client, warmed_up, without_cyclic_gc):
    """The workers' memory (RSS) and the client's (Python's and NumPy's
    allocations, traced) with no block alive, the test's data made."""
    tracemalloc.start()
    try:
        yield {"workers": client.run(_worker_rss), "client": tracemalloc.get_traced_memory()[0]}
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(300)
def test_ten_fits_in_a_row_free_their_blocks(client, baseline):
    X = _blobs(N_SAMPLES)
    fits = _fits(X, client)
    baseline["client"] = tracemalloc.get_traced_memory()[0]  # with the fits' data
    for k, (data, options) in enumerate(fits):
        fitted = AffinityPropagation(**options).fit(data)
        assert fitted.labels_.shape == (N_SAMPLES,)
        if options.get("affinity") is None:  # predict: on the client, from the centers
            assert np.array_equal(fitted.predict(X[:10]), fitted.labels_[:10])
        del fitted  # with keep_messages, two N x N matrices
        _check_released(client, baseline, f"fit {k} ({sorted(options)})")


class _Interrupt:
    """A callback raising ``error`` at the second iteration (blocks exist)."""

    def __init__(self, error):
        self.error = error

    def __call__(self, info):
        if info.iteration == 2:
            raise self.error


@pytest.mark.timeout(300)
def test_failing_fits_free_their_blocks(client, baseline):
    X = _blobs(N_SAMPLES)
    baseline["client"] = tracemalloc.get_traced_memory()[0]
    short = dict(client=client, random_state=0, max_iter=10)
    with pytest.raises(RuntimeError, match="stop here"):
        AffinityPropagation(callback=_Interrupt(RuntimeError("stop here")), **short).fit(X)
    _check_released(client, baseline, "an error in the callback")
    with pytest.raises(KeyboardInterrupt):
        AffinityPropagation(callback=_Interrupt(KeyboardInterrupt()), **short).fit(X)
    _check_released(client, baseline, "Ctrl-C")
    with pytest.raises(ValueError, match="preference"):
        AffinityPropagation(preference=np.zeros(N_SAMPLES - 1), **short).fit(X)
    _check_released(client, baseline, "a preference of the wrong length")
    # One block refuses its rows (a NaN in the second block): the first one goes too.
    with pytest.raises(ValueError, match="NaN"):
        AffinityPropagation(affinity="precomputed", preference=-100.0, **short).fit(
            _dask_similarities(X, nan_in_last_row=True)
        )
    _check_released(client, baseline, "a block refusing its rows")
    # A block too large for its worker (S of 6,000 samples in one block, 864 MB
    # of S, R and A against 80% of 1 GiB): refused before any actor exists,
    # and the dask array's chunk goes too.
    with pytest.raises(MemoryError, match="memory limit"):
        AffinityPropagation(affinity="precomputed", n_blocks=1, **short).fit(
            _dask_similarities(_blobs(6000))
        )
    _check_released(client, baseline, "a block too large for its worker")
