"""The benchmark data, cached per process: the brief's make_blobs problem."""

from functools import lru_cache

from sklearn.datasets import make_blobs


@lru_cache(maxsize=None)
def blobs(n_samples, dtype="float64"):
    """make_blobs(n_samples, n_features=8, centers=10, cluster_std=1.0, random_state=0)."""
    X, _ = make_blobs(
        n_samples=n_samples, n_features=8, centers=10, cluster_std=1.0, random_state=0
    )
    X = X.astype(dtype)
    X.setflags(write=False)  # shared between benchmarks: nobody may change it
    return X
