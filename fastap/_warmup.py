"""Compile (or load from the on-disk cache) the kernels fits use, by group."""

import time
import warnings

import numpy as np

DTYPES = ("float64", "float32")
ENGINES = ("stored", "lean", "compact")
# The dense engines a fit of each dtype uses under engine="auto": float64
# runs stored (lean only when asked for); float32 beyond the small sizes
# that run in float64 runs lean, stored when the messages are kept.
DEFAULT_ENGINES = {"float64": ("stored",), "float32": ("lean", "stored")}


def _quiet_fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


def _dense_group(dtype, engine, rng):
    """Serial and parallel message passes, set-up, assignment and the
    toolkit (search, quantile, history, messages, hierarchy) of one engine."""
    from fastap._dense import PARALLEL_MIN_SAMPLES
    from fastap._estimator import AffinityPropagation
    from fastap._kernels import messages

    for n_samples in (8, PARALLEL_MIN_SAMPLES[np.dtype(dtype)]):  # serial and parallel
        X = rng.standard_normal((n_samples, 2)).astype(dtype)
        _quiet_fit(AffinityPropagation(max_iter=3, random_state=0, n_jobs=2, engine=engine), X)
    X = rng.standard_normal((40, 2)).astype(dtype)
    model = _quiet_fit(AffinityPropagation(
        n_clusters=3, preference_quantile=0.5, random_state=0, record_history=True,
        keep_messages=engine == "stored", engine=engine,
    ), X)
    model.exemplar_hierarchy()
    if engine == "stored":
        # Messages carried to a new preference (the search's warm steps,
        # which a search this small may not take).
        zeros = np.zeros((4, 4), dtype=dtype)
        scalar = zeros[0, 0]
        messages.shift_preference(
            zeros, zeros.copy(), zeros[0].copy(), scalar, True, scalar, scalar
        )


def _setup_group(dtype, rng):
    """The sampled selection of the median and quantiles (N > 512) and the
    exact preference range."""
    from fastap._kernels import setup
    from fastap._preference import preference_range

    S = rng.standard_normal((600, 600)).astype(dtype)
    setup.median_of_matrix(S, n_tasks=2)
    setup.off_diagonal_quantile(S, 0.3, 2)
    preference_range(rng.standard_normal((40, 2)).astype(dtype), method="exact")


def _sparse_group(dtype, rng):
    """Graph, serial and parallel sparse passes, merging (the approximate
    neighbour search of large inputs is pynndescent's own)."""
    from fastap._estimator import AffinityPropagation

    for n_samples in (40, 700):
        X = rng.standard_normal((n_samples, 2)).astype(dtype)
        _quiet_fit(AffinityPropagation(
            affinity="nearest_neighbors", max_iter=3, random_state=0, n_jobs=2
        ), X)


def _dask_group(dtype, rng):
    """The distributed engine's block kernels (dense and sparse), on an
    in-process cluster: its workers compile into this cache."""
    from distributed import Client, LocalCluster

    from fastap.dask import AffinityPropagation

    X = rng.standard_normal((60, 2)).astype(dtype)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        _quiet_fit(AffinityPropagation(client=client, max_iter=3, random_state=0), X)
        _quiet_fit(AffinityPropagation(
            client=client, affinity="nearest_neighbors", max_iter=3, random_state=0
        ), X)


def warmup_groups(dtypes=DTYPES, engines=None, sparse=True, dask=False):
    """The groups :func:`warmup` compiles, as ``(name, function)`` pairs."""
    rng = np.random.RandomState(0)
    groups = []
    for dtype in dtypes:
        dtype = np.dtype(dtype).name
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}.")
        for engine in engines or DEFAULT_ENGINES[dtype]:
            if engine not in ENGINES:
                raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
            groups.append((f"dense {dtype} {engine}",
                           lambda d=dtype, e=engine: _dense_group(d, e, rng)))
        groups.append((f"set-up {dtype}", lambda d=dtype: _setup_group(d, rng)))
        if sparse:
            groups.append((f"sparse {dtype}", lambda d=dtype: _sparse_group(d, rng)))
        if dask:
            groups.append((f"dask {dtype}", lambda d=dtype: _dask_group(d, rng)))
    return groups


def warmup(dtypes=DTYPES, engines=None, sparse=True, dask=False, report=None):
    """Compile fastap's kernels and store them in the kernel cache.

    The first compiled fit in a fresh environment otherwise waits for
    compilation (about 10-20 s per dtype and engine on two cores); later
    processes load the cached machine code, on a machine with the same CPU
    model (see the README, "Compile time").

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}, default=("float64", "float32")
    engines : sequence of {"stored", "lean", "compact"} or None, default=None
        Dense engines; None: those a fit of each dtype uses by default
        (float64: stored; float32: lean and stored).
    sparse : bool, default=True
        Also the sparse-graph kernels (``affinity="nearest_neighbors"``,
        sparse precomputed matrices).
    dask : bool, default=False
        Also :mod:`fastap.dask`'s block kernels (needs ``distributed``).
    report : callable or None, default=None
        ``report(group, seconds)`` after each group.

    Returns
    -------
    dict
        Seconds per group.
    """
    from fastap._cold_start import forced_path

    seconds = {}
    with forced_path("compiled"):
        for name, compile_group in warmup_groups(dtypes, engines, sparse, dask):
            started = time.perf_counter()
            compile_group()
            seconds[name] = time.perf_counter() - started
            if report is not None:
                report(name, seconds[name])
    return seconds
