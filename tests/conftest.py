import os

# scikit-learn's estimator checks run their array-API check (with NumPy
# arrays) only when SciPy was imported with this set; otherwise they skip it.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def float_dtype(request):
    return request.param


def blobs(n_samples, centers=10, n_features=8, cluster_std=1.0, random_state=0, dtype=np.float64):
    X, _ = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        random_state=random_state,
    )
    return X.astype(dtype)


def similarity(X):
    from sklearn.metrics import euclidean_distances

    return -euclidean_distances(X, squared=True)
