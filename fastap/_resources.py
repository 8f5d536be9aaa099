"""Threads and memory: what a fit may use of the machine.

``n_jobs`` follows joblib's conventions and becomes Numba's thread count
for the duration of a fit (restored afterwards). Before a fit allocates its
matrices it compares what they need with what the OS can give, and refuses
with the ways out rather than failing halfway.
"""

import contextlib
import os

import numba
import numpy as np


def resolve_n_threads(n_jobs):
    """Number of Numba threads for ``n_jobs`` (joblib's conventions).

    ``None`` keeps Numba's current setting (all cores unless changed with
    ``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``); ``-1`` means all
    cores, ``-2`` all but one, and so on; positive values are capped at the
    number of cores Numba was started with.
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return numba.get_num_threads()
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return max(1, min(n_jobs, available))


@contextlib.contextmanager
def numba_threads(n_threads):
    """Run the body with ``n_threads`` Numba threads, then restore the old count."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def available_memory_bytes():
    """Memory the OS can give this process now, or None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def dense_fit_bytes(n_samples, dtype, n_new_matrices):
    """Bytes a dense fit allocates: ``n_new_matrices`` N x N matrices plus O(N)."""
    itemsize = np.dtype(dtype).itemsize
    return n_new_matrices * n_samples * n_samples * itemsize + 64 * n_samples * itemsize


def compact_extra_bytes(n_samples, dtype):
    """Bytes the compact engine allocates beside ``S`` before its exception
    lists grow: two chunk maxima per row and 256 columns, the float64 sums
    of groups of 64 rows, the initial lists (16 entries a row) and O(N).
    Its lists then grow with the data (at most half of one N x N matrix
    before it turns lean: ``_compact.EXCEPTION_BUDGET_FRACTION``)."""
    itemsize = np.dtype(dtype).itemsize
    chunk_maxima = 2 * n_samples * (-(-n_samples // 256)) * itemsize
    group_sums = (-(-n_samples // 64)) * n_samples * 8
    lists = 16 * n_samples * (4 + itemsize)
    return chunk_maxima + group_sums + lists + 64 * n_samples * itemsize


def check_dense_memory(n_samples, dtype, n_new_matrices, extra_bytes=0):
    """Raise MemoryError, before allocating, when a dense fit clearly cannot fit.

    ``extra_bytes``: temporaries of the path on top of the matrices (a
    callable's output, sparse input's distance matrix).
    """
    dtype = np.dtype(dtype)
    needed = dense_fit_bytes(n_samples, dtype, n_new_matrices) + extra_bytes
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    ways_out = []
    if dtype == np.float64:
        half = dense_fit_bytes(n_samples, np.float32, n_new_matrices) + extra_bytes / 2
        ways_out.append(f"float32 input (about {half / 2**30:.1f} GiB)")
    ways_out += [
        "affinity='nearest_neighbors' (a sparse k-NN graph: memory grows with N, not N^2)",
        "a machine with more memory",
        "fastap.dask.AffinityPropagation on a Dask cluster",
    ]
    raise MemoryError(
        f"Affinity propagation on {n_samples} samples in {dtype.name} needs about "
        f"{needed / 2**30:.1f} GiB ({n_new_matrices} matrices of {n_samples} x {n_samples}), "
        f"but only {available / 2**30:.1f} GiB of memory is available. Ways out: "
        + "; ".join(ways_out) + "."
    )


def check_sparse_memory(n_samples, n_pairs, dtype, needed):
    """Raise MemoryError, before allocating, when a sparse fit needing
    ``needed`` bytes clearly cannot fit."""
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    raise MemoryError(
        f"Sparse affinity propagation on {n_samples} samples with {n_pairs} stored pairs in "
        f"{np.dtype(dtype).name} needs about {needed / 2**30:.1f} GiB, but only "
        f"{available / 2**30:.1f} GiB of memory is available. Ways out: fewer neighbours "
        "(n_neighbors), float32 input, a machine with more memory, or "
        "fastap.dask.AffinityPropagation on a Dask cluster."
    )
