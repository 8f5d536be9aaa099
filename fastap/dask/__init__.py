"""Affinity Propagation on a Dask cluster (``pip install "fastap[dask]"``).

>>> from distributed import Client, LocalCluster            # doctest: +SKIP
>>> from fastap.dask import AffinityPropagation             # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
>>> AffinityPropagation(random_state=0).fit(X).labels_      # doctest: +SKIP

``import fastap`` never imports this package (nor Dask).
"""

try:
    import distributed  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"fastap.dask needs Dask's distributed scheduler, which is not installed ({error}): "
        'pip install "fastap[dask]" (or pip install "dask[distributed]").'
    ) from error

from fastap.dask._cluster import WorkerLostError
from fastap.dask._estimator import AffinityPropagation

__all__ = ["AffinityPropagation", "WorkerLostError"]
