"""Set-up that scales (issue 11.3): finiteness without an N x N temporary,
a clear error where float32 distances overflow, the median window sized
for any thread count."""

import numpy as np
import pytest

from fastap import AffinityPropagation
from fastap._kernels import setup
from tests.data import blobs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_non_finite_equals_numpy(dtype):
    rng = np.random.RandomState(0)
    S = rng.standard_normal((203, 197)).astype(dtype)
    assert setup.count_non_finite(S) == 0
    for value, count in ((np.inf, 5), (-np.inf, 3), (np.nan, 4)):
        S.flat[rng.choice(S.size, count, replace=False)] = value
    S[7, 7] = np.finfo(dtype).max  # large but finite
    S[8, 8] = -np.finfo(dtype).tiny / 2  # subnormal, finite
    assert setup.count_non_finite(S) == np.count_nonzero(~np.isfinite(S))


def test_float32_distances_beyond_range_are_an_error():
    X = blobs(60, centers=3, random_state=0) * 1e19  # squared distances ~1e40
    with pytest.raises(ValueError, match="overflow float32.*float64 input"):
        # (engine="auto" would fit these 60 samples in float64: _cold_start)
        AffinityPropagation(random_state=0, engine="stored").fit(X.astype(np.float32))
    fitted = AffinityPropagation(random_state=0).fit(X)  # float64 holds them
    assert np.isfinite(fitted.affinity_matrix_).all()


def test_callable_with_infinity_is_an_error():
    def affinity(X):
        S = -np.ones((X.shape[0], X.shape[0]))
        S[1, 2] = -np.inf
        return S

    with pytest.raises(ValueError, match="NaN or infinity"):
        AffinityPropagation(affinity=affinity).fit(np.zeros((5, 2)))


@pytest.mark.parametrize("n_tasks", [1, 2, 7, 20])
def test_median_window_is_shared_by_the_tasks(n_tasks, monkeypatch, float_dtype):
    size = 600 * 600
    assert setup._window_capacity(size, n_tasks) * n_tasks <= setup._MEDIAN_CAPACITY * size
    gathered = []
    kernel = setup.count_below_and_gather_window

    def recording(S, low, high, window_values):
        gathered.append(window_values.shape)
        return kernel(S, low, high, window_values)

    monkeypatch.setattr(setup, "count_below_and_gather_window", recording)
    S = -np.random.RandomState(n_tasks).uniform(0, 50, size=(600, 600)).astype(float_dtype)
    assert setup.median_of_matrix(S, n_tasks) == np.median(S)
    off_diagonal = S[~np.eye(600, dtype=bool)]
    assert setup.off_diagonal_quantile(S, 0.3, n_tasks) == np.quantile(off_diagonal, 0.3)
    assert len(gathered) == 2
    assert all(rows == n_tasks and rows * columns <= 0.05 * size for rows, columns in gathered)
