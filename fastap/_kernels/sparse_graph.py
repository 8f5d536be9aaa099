"""Set-up of a sparse similarity graph: CSR with every diagonal pair stored.

The layout is the one ``sparse_messages.py`` describes: ``indptr`` (n + 1,)
int64, ``indices`` (nnz,) int32 sorted within each row, values in CSR order,
``diagonal`` (n,) int64 positions of the pairs ``(i, i)``.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel


@serial_kernel
def column_order(indptr, indices, col_indptr, col_order):
    """CSC view of a CSR graph by a stable counting sort on the column.

    Fills ``col_indptr`` (n + 1,) and ``col_order`` (nnz,): the positions of
    column ``k``'s pairs in increasing row order. O(nnz), one thread (it runs
    once per fit). The rows may be a block of a wider graph (the distributed
    engine's): ``col_indptr`` then has one entry per column of the graph,
    plus one.
    """
    n_columns = col_indptr.size - 1
    col_indptr[:] = 0
    for p in range(indices.size):
        col_indptr[indices[p] + 1] += 1
    for k in range(n_columns):
        col_indptr[k + 1] += col_indptr[k]
    next_slot = col_indptr[:-1].copy()
    for i in range(indptr.size - 1):
        for p in range(indptr[i], indptr[i + 1]):
            k = indices[p]
            col_order[next_slot[k]] = p
            next_slot[k] += 1


@parallel_kernel
def find_diagonal(indptr, indices, row_offset, diagonal):
    """``diagonal[r]`` = position of the diagonal pair of row ``r``, the
    graph's row ``row_offset + r`` (0 for a whole graph, a block's first row
    otherwise), or -1 when the row does not store it. Rows are independent."""
    for r in prange(indptr.size - 1):
        i = r + row_offset
        found = -1
        for p in range(indptr[r], indptr[r + 1]):
            if indices[p] == i:
                found = p
        diagonal[r] = found


@parallel_kernel
def set_diagonal(diagonal, data, preference):
    """``data[diagonal[i]] = preference[i]``."""
    for i in prange(diagonal.size):
        data[diagonal[i]] = preference[i]


@parallel_kernel
def insert_diagonal(
    indptr, indices, data, row_offset, new_indptr, new_indices, new_data, diagonal, preference
):
    """Copy a sorted CSR graph into arrays with every diagonal pair present.

    Row ``r`` is the graph's row ``row_offset + r`` (see
    :func:`find_diagonal`). ``new_indptr`` is given (the row lengths with
    the missing diagonals counted). The diagonal gets ``preference[r]``
    whether it was stored or not (as dense AP overwrites the diagonal);
    ``diagonal[r]`` receives its position. Rows are independent.
    """
    for r in prange(indptr.size - 1):
        i = r + row_offset
        out = new_indptr[r]
        placed = False
        for p in range(indptr[r], indptr[r + 1]):
            k = indices[p]
            if not placed and k >= i:
                diagonal[r] = out
                new_indices[out] = i
                new_data[out] = preference[r]
                out += 1
                placed = True
                if k == i:
                    continue
            new_indices[out] = k
            new_data[out] = data[p]
            out += 1
        if not placed:
            diagonal[r] = out
            new_indices[out] = i
            new_data[out] = preference[r]


@parallel_kernel
def has_duplicates(indptr, indices):
    """True when a row of a CSR graph with sorted rows stores a column twice."""
    n = indptr.size - 1
    n_tasks = min(n, 64)
    found = np.zeros(n_tasks, dtype=np.bool_)
    for task in prange(n_tasks):
        for i in range(task * n // n_tasks, (task + 1) * n // n_tasks):
            for p in range(indptr[i] + 1, indptr[i + 1]):
                if indices[p] == indices[p - 1]:
                    found[task] = True
    return found.any()
