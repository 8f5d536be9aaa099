"""fastap.dask on a real LocalCluster (2 worker processes, 1 thread each).

Every wait is bounded (``timeout`` marker, client timeouts); clusters are
closed by their fixtures' finalizers. The limits are generous (300 s): with
an empty kernel cache the first fit compiles every kernel, in the client and
in each worker, on a busy machine.
"""

import os
import signal
import subprocess
import sys
import threading

import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster
from scipy import sparse
from sklearn.cluster import AffinityPropagation as SklearnAffinityPropagation
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances_argmin

import fastap
from fastap import _dense, _run
from fastap._kernels import noise, setup
from fastap._similarity import negative_squared_euclidean
from fastap.dask import AffinityPropagation, WorkerLostError

# distributed's own sockets and event loops, closed by its finalizers after
# the test that used them (not fastap's to fix).
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _cluster():
    return LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        memory_limit="1GiB",
    )


@pytest.fixture(scope="module")
def client():
    cluster = _cluster()
    client = Client(cluster, timeout=60)
    yield client
    client.close(timeout=30)
    cluster.close(timeout=30)


def _single_machine(S, random_state, preference=None, **options):
    """The dense engine with the counter noise, through the same run loop."""
    if preference is None:
        preference = np.asarray(setup.median_of_matrix(S, n_tasks=2))
    state = _dense.DenseMessageState(
        S, preference, damping=options.get("damping", 0.5),
        random_state=noise.CounterNoiseStream(noise.counter_noise_seed(random_state)), n_threads=1,
        grouped_sums=True,
    )
    return _run.run(state, _run.RunOptions(**options))


def _blobs(n, dtype=np.float64, random_state=0):
    X, _ = make_blobs(n_samples=n, centers=6, n_features=4, cluster_std=1.5,
                      random_state=random_state)
    return X.astype(dtype)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_equals_single_machine_with_counter_noise(client, dtype):
    X = _blobs(300, dtype)
    fitted = AffinityPropagation(random_state=3, client=client).fit(X)
    expected = _single_machine(negative_squared_euclidean(X, np.dtype(dtype)), 3)
    assert fitted.converged_ and expected.converged
    assert fitted.n_blocks_ == 2
    assert np.array_equal(fitted.cluster_centers_indices_, expected.cluster_centers_indices)
    assert np.array_equal(fitted.labels_, expected.labels)
    assert fitted.n_iter_ == expected.n_iter
    assert np.array_equal(fitted.cluster_centers_, X[expected.cluster_centers_indices])
    assert fitted.labels_.dtype == np.intp and isinstance(fitted.labels_, np.ndarray)
    # The estimator on one machine with noise="counter": the same bits.
    alone = fastap.AffinityPropagation(noise="counter", random_state=3, engine="stored").fit(X)
    assert np.array_equal(alone.labels_, fitted.labels_)
    assert np.array_equal(alone.cluster_centers_indices_, fitted.cluster_centers_indices_)
    assert alone.n_iter_ == fitted.n_iter_
    # The reference implementation (its own noise stream) finds the same clusters.
    sklearn_labels = SklearnAffinityPropagation(random_state=3).fit(X.astype(np.float64)).labels_
    assert np.array_equal(fitted.labels_, sklearn_labels)


@pytest.mark.timeout(300)
def test_blocks_do_not_change_the_result(client):
    X = _blobs(200)
    results = [
        AffinityPropagation(random_state=0, client=client, n_blocks=n_blocks).fit(X)
        for n_blocks in (1, 3, 7)
    ]
    for other in results[1:]:
        assert np.array_equal(other.labels_, results[0].labels_)
        assert other.n_iter_ == results[0].n_iter_
    assert results[2].n_blocks_ == 7


@pytest.mark.timeout(300)
def test_precomputed_dask_array_stays_on_the_workers(client):
    X = _blobs(240, random_state=1)
    S = negative_squared_euclidean(X, np.dtype(np.float64))
    S_before = S.copy()
    S_dask = da.from_array(S, chunks=((50, 110, 80), (120, 120)))  # uneven rows, split columns
    fitted = AffinityPropagation(affinity="precomputed", random_state=5, client=client).fit(S_dask)
    expected = _single_machine(S.copy(), 5)
    assert fitted.n_blocks_ == 3
    assert np.array_equal(fitted.labels_, expected.labels)
    assert np.array_equal(fitted.cluster_centers_indices_, expected.cluster_centers_indices)
    assert fitted.n_iter_ == expected.n_iter
    assert np.array_equal(S, S_before)  # the caller's array is untouched
    # predict with precomputed similarities to the training samples
    assert np.array_equal(fitted.predict(S[:20]), fitted.labels_[:20])


@pytest.mark.timeout(300)
def test_dask_array_features_and_predict(client):
    X = _blobs(260, random_state=2)
    fitted = AffinityPropagation(random_state=0, client=client, damping=0.7).fit(
        da.from_array(X, chunks=(100, 4))
    )
    expected = AffinityPropagation(random_state=0, client=client, damping=0.7).fit(X)
    assert np.array_equal(fitted.labels_, expected.labels_)
    X_new = _blobs(50, random_state=9)
    assert np.array_equal(
        fitted.predict(X_new), pairwise_distances_argmin(X_new, X[fitted.cluster_centers_indices_])
    )
    assert np.array_equal(fitted.fit_predict(X), fitted.labels_)


@pytest.mark.timeout(300)
def test_history_and_adaptive_damping(client):
    X = _blobs(150, random_state=4)
    fitted = AffinityPropagation(
        random_state=0, client=client, damping="auto", record_history=True
    ).fit(X)
    expected = _single_machine(
        negative_squared_euclidean(X, np.dtype(np.float64)), 0, adaptive_damping=True,
        record_history=True,
    )
    assert np.array_equal(fitted.labels_, expected.labels)
    for name, values in expected.history.items():
        np.testing.assert_array_equal(fitted.history_[name], values, err_msg=name)


@pytest.mark.timeout(300)
def test_preference_quantile(client):
    X = _blobs(150, random_state=6)
    fitted = AffinityPropagation(preference_quantile=0.05, random_state=0, client=client).fit(X)
    S = negative_squared_euclidean(X, np.dtype(np.float64))
    preference = np.asarray(setup.off_diagonal_quantile(S, 0.05, 2))
    expected = _single_machine(S, 0, preference=preference)
    assert fitted.preference_ == preference
    assert np.array_equal(fitted.labels_, expected.labels)
    assert fitted.n_iter_ == expected.n_iter


@pytest.mark.timeout(300)
def test_concurrent_fits_do_not_disturb_each_other(client):
    data = [_blobs(180, random_state=s) for s in (11, 12)]
    alone = [AffinityPropagation(random_state=0, client=client).fit(X).labels_ for X in data]
    together = [None, None]

    def fit(k):
        together[k] = AffinityPropagation(random_state=0, client=client).fit(data[k]).labels_

    threads = [threading.Thread(target=fit, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)
    for k in (0, 1):
        assert np.array_equal(together[k], alone[k])


def _knn_similarity_graph(n, random_state=0, dtype=np.float64):
    """A k-NN graph of blobs (-squared distances, not symmetric) in which
    sample 4 stores only its diagonal."""
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(_blobs(n, random_state=random_state), n_neighbors=10,
                             mode="distance").tolil()
    graph[4, :] = 0  # LIL drops the pairs
    graph[4, 4] = -1.0
    graph = graph.tocsr()
    graph.data = -(graph.data**2)
    return graph.astype(dtype)


@pytest.mark.timeout(300)
def test_sparse_graph_equals_the_single_machine_and_predicts_alike(client):
    S = _knn_similarity_graph(300, random_state=3)
    before = (S.data.copy(), S.indices.copy(), S.indptr.copy())
    fitted = AffinityPropagation(affinity="precomputed", random_state=3, client=client).fit(S)
    alone = fastap.AffinityPropagation(
        affinity="precomputed", noise="counter", random_state=3
    ).fit(S)
    assert fitted.n_blocks_ == 2
    assert fitted.converged_ and alone.converged_
    assert np.array_equal(fitted.cluster_centers_indices_, alone.cluster_centers_indices_)
    assert np.array_equal(fitted.labels_, alone.labels_)
    assert fitted.n_iter_ == alone.n_iter_
    assert fitted.preference_ == alone.preference_
    assert 4 in fitted.cluster_centers_indices_  # storing only its diagonal: an exemplar
    assert all(np.array_equal(a, b) for a, b in zip(before, (S.data, S.indices, S.indptr)))
    # predict from sparse similarities to the training samples, as on one machine
    # (a row storing no exemplar: -1).
    new = S[:30].tolil()
    new[0, :] = 0
    new = new.tocsr()
    assert np.array_equal(fitted.predict(new), alone.predict(new))
    assert fitted.predict(new)[0] == -1


@pytest.mark.timeout(300)
def test_n_clusters_and_keep_messages_equal_the_single_machine(client):
    """The n_clusters search over actors (5 steps, 2 of them warm: the
    messages shifted on the workers), the messages gathered from them."""
    S = negative_squared_euclidean(_blobs(150, random_state=7), np.dtype(np.float64))
    options = dict(affinity="precomputed", random_state=2, n_clusters=8, keep_messages=True)
    fitted = AffinityPropagation(client=client, **options).fit(S)
    alone = fastap.AffinityPropagation(noise="counter", **options).fit(S)
    assert fitted.n_blocks_ == 2
    assert fitted.cluster_centers_indices_.size == 8
    assert fitted.preference_search_ == alone.preference_search_
    assert fitted.preference_ == alone.preference_
    assert np.array_equal(fitted.labels_, alone.labels_)
    assert fitted.n_iter_ == alone.n_iter_
    assert np.array_equal(fitted.responsibility_, alone.responsibility_)
    assert np.array_equal(fitted.availability_, alone.availability_)
    np.testing.assert_array_equal(fitted.membership_confidence_, alone.membership_confidence_)


@pytest.mark.timeout(300)
def test_clear_errors(client):
    X = _blobs(40)
    with pytest.raises(ValueError, match="cannot be drawn block by block"):
        AffinityPropagation(noise="sklearn", client=client).fit(X)
    with pytest.raises(ValueError, match="n_clusters=41 is larger than the number of samples"):
        AffinityPropagation(client=client, n_clusters=41).fit(X)
    # Sparse input: a precomputed graph only, from the client, the same options.
    S = sparse.random(40, 40, density=0.2, random_state=0, format="csr")
    with pytest.raises(ValueError, match="sparse features are not supported on Dask"):
        AffinityPropagation(client=client).fit(S)
    with pytest.raises(ValueError, match="must be a scalar"):
        AffinityPropagation(affinity="precomputed", n_clusters=3, preference=np.ones(40),
                            client=client).fit(S)
    chunks = da.from_array(S.toarray(), chunks=(20, 40)).map_blocks(sparse.csr_matrix)
    with pytest.raises(ValueError, match="dask array of sparse chunks is not supported"):
        AffinityPropagation(affinity="precomputed", client=client).fit(chunks)
    duplicated = sparse.coo_matrix(([1.0, 2.0], ([0, 0], [1, 1])), shape=(3, 3))
    with pytest.raises(ValueError, match="more than once"):
        AffinityPropagation(affinity="precomputed", client=client).fit(duplicated)
    # A block too large for its worker is refused before it is allocated.
    with pytest.raises(MemoryError, match="memory limit"):
        AffinityPropagation(client=client).fit(_blobs(10_000))


def test_import_fastap_does_not_import_dask():
    code = (
        "import sys, fastap; "
        "assert 'dask' not in sys.modules and 'distributed' not in sys.modules, "
        "[m for m in sys.modules if m.startswith(('dask', 'distributed'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.timeout(300)
def test_a_killed_worker_gives_a_clear_error_not_a_hang():
    cluster = _cluster()
    client = Client(cluster, timeout=60)
    try:
        pids = client.run(os.getpid)
        victim = pids[sorted(pids)[1]]

        def kill_at_third_iteration(info):
            if info.iteration == 3:
                os.kill(victim, signal.SIGKILL)

        with pytest.raises(WorkerLostError, match="deterministic.*same result"):
            AffinityPropagation(
                client=client, random_state=0, callback=kill_at_third_iteration, max_iter=500
            ).fit(_blobs(400))
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


def test_without_the_dask_extra_the_error_says_what_to_install():
    """``distributed`` made unimportable in a fresh interpreter (a None entry
    in sys.modules makes its import raise ImportError, as when the
    ``fastap[dask]`` extra is not installed)."""
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "try:\n"
        "    import fastap.dask\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    raise SystemExit('fastap.dask imported without distributed')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'pip install "fastap[dask]"' in done.stdout
    assert "distributed" in done.stdout
