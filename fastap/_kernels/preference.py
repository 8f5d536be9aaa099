"""Kernels for the preference range (apcluster's ``preferenceRange``).

A sample's similarity to itself counts as 0 here: an exemplar contributes
only its preference to the net similarity, whatever the diagonal of ``S``
holds. With one exemplar ``j`` the data similarity is
``sum_{i != j} S(i, j)``; with two, ``j1`` and ``j2``, it is
``sum_{i not in {j1, j2}} max(S(i, j1), S(i, j2))``.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel


@parallel_kernel
def add_off_diagonal_column_sums_and_row_maxima(S, row_offset, column_sums, row_maxima):
    """For the rows of ``S`` (global rows ``row_offset, row_offset + 1,
    ...`` of a square matrix: all of it with ``row_offset`` 0, or a row
    block of the distributed engine): ``column_sums[j] += S(i, j)`` over
    ``i != j`` (float64, rows added in order, each column range by one
    task; blocks taken in row order thus add every sum as the whole matrix
    does) and ``row_maxima[r] = max_{j != i} S(i, j)`` for ``i = row_offset
    + r`` (each row by one task)."""
    n_rows, n = S.shape
    n_chunks = min(n, 64)
    for chunk in prange(n_chunks):
        start = chunk * n // n_chunks
        stop = (chunk + 1) * n // n_chunks
        sums = column_sums[start:stop]
        for r in range(n_rows):
            i = r + row_offset
            row = S[r, start:stop]
            for j in range(stop - start):
                sums[j] += row[j] if start + j != i else 0.0
    for r in prange(n_rows):
        i = r + row_offset
        row = S[r]
        best = -np.inf
        for j in range(n):
            best = max(best, row[j] if j != i else -np.inf)
        row_maxima[r] = best


@parallel_kernel
def best_pair_similarity(S_columns):
    """``max_{j1 < j2} sum_{i not in {j1, j2}} max(S(i, j1), S(i, j2))``.

    ``S_columns`` is ``S.T`` in C order (row ``j`` holds column ``j``). O(n^3)
    time; each task owns a range of ``j1`` and keeps its own maximum, so the
    result does not depend on the thread count.
    """
    n = S_columns.shape[0]
    n_tasks = min(n, 256)
    best = np.full(n_tasks, -np.inf)
    for task in prange(n_tasks):
        for j1 in range(task, n - 1, n_tasks):
            first = S_columns[j1]
            for j2 in range(j1 + 1, n):
                second = S_columns[j2]
                total = 0.0
                for i in range(j1):
                    total += max(first[i], second[i])
                for i in range(j1 + 1, j2):
                    total += max(first[i], second[i])
                for i in range(j2 + 1, n):
                    total += max(first[i], second[i])
                best[task] = max(best[task], total)
    return best.max()
