"""The memory-bandwidth floor of one AP iteration.

A kernel with the access pattern of a fused AP pass and nothing else: read
three N x N arrays, write two of them back in place, rows split over
threads. No AP kernel can stream its matrices faster than this.
"""

import numba
import numpy as np
from numba import prange


@numba.njit(parallel=True, cache=True)
def stream_three_write_two(S, R, A, factor):
    """Read S, R, A; write R and A in place."""
    for i in prange(S.shape[0]):
        s_row, r_row, a_row = S[i], R[i], A[i]
        for k in range(s_row.size):
            s = s_row[k]
            a_row[k] = a_row[k] * factor + s
            r_row[k] = r_row[k] * factor - s


def floor_seconds(n_samples, dtype, repeats=5):
    """Median seconds of one floor pass over (n, n) matrices of ``dtype``."""
    import time

    rng = np.random.RandomState(0)
    S = rng.standard_normal((n_samples, n_samples)).astype(dtype)
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    factor = S.dtype.type(0.5)
    stream_three_write_two(S, R, A, factor)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        stream_three_write_two(S, R, A, factor)
        times.append(time.perf_counter() - started)
    return float(np.median(times))
