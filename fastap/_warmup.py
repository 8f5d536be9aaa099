"""Compile (or load from the on-disk cache) every kernel a fit uses."""

import warnings

import numpy as np


def warmup(dtypes=("float64", "float32")):
    """Compile fastap's kernels for ``dtypes`` and store them in Numba's cache.

    The first fit in a fresh environment otherwise waits for compilation
    (about 10-20 s per dtype); later processes load the cached machine code.

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}, default=("float64", "float32")

    Returns
    -------
    None
    """
    from fastap._dense import PARALLEL_MIN_SAMPLES
    from fastap._estimator import AffinityPropagation
    from fastap._kernels import messages, setup
    from fastap._preference import preference_range

    rng = np.random.RandomState(0)
    for dtype in dtypes:
        for n_samples in (8, PARALLEL_MIN_SAMPLES[np.dtype(dtype)]):  # serial and parallel
            X = rng.standard_normal((n_samples, 2)).astype(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                AffinityPropagation(max_iter=3, random_state=0, n_jobs=2).fit(X)
        # The sampled selection of the median and quantiles, used above
        # 4 * 65,536 entries (N > 512): the fits above are smaller.
        S = rng.standard_normal((600, 600)).astype(dtype)
        setup.median_of_matrix(S, n_tasks=2)
        setup.off_diagonal_quantile(S, 0.3, 2)
        # The toolkit's kernels: quantile, range, search, history, messages,
        # hierarchy.
        X = rng.standard_normal((40, 2)).astype(dtype)
        preference_range(X, method="exact")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AffinityPropagation(
                n_clusters=3, preference_quantile=0.5, random_state=0, record_history=True,
                keep_messages=True,
            ).fit(X)
        model.exemplar_hierarchy()
        if np.dtype(dtype) == np.float32:
            # float32 runs on the lean engine: its search (shift of the
            # messages) and its materialised messages.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                AffinityPropagation(
                    n_clusters=3, random_state=0, engine="lean", keep_messages=True
                ).fit(X)
        # Messages carried to a new preference (the search's warm steps,
        # which a search this small may not take).
        zeros = np.zeros((4, 4), dtype=dtype)
        scalar = zeros[0, 0]
        messages.shift_preference(
            zeros, zeros.copy(), zeros[0].copy(), scalar, True, scalar, scalar
        )
        # Sparse kernels (graph, serial and parallel passes, merging); the
        # approximate neighbour search of large inputs is pynndescent's own.
        for n_samples in (40, 700):
            X = rng.standard_normal((n_samples, 2)).astype(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                AffinityPropagation(
                    affinity="nearest_neighbors", max_iter=3, random_state=0, n_jobs=2
                ).fit(X)
