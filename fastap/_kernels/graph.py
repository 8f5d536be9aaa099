"""Kernels that turn nearest-neighbour lists into a similarity graph.

The neighbour search itself is a library's (see ``fastap/_graph.py``); these
kernels symmetrise its lists and compute the similarities of the stored
pairs from the features, in O(n * k) memory.
"""

from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel


@serial_kernel
def reverse_lists(neighbors, rev_indptr, rev_indices):
    """Transpose of the neighbour lists: ``rev_indices[rev_indptr[j]:rev_indptr[j + 1]]``
    are the samples ``i`` that list ``j`` (in increasing ``i``). Entries < 0
    in ``neighbors`` are padding and skipped. O(n * k), one thread."""
    n, k = neighbors.shape
    rev_indptr[:] = 0
    for i in range(n):
        for t in range(k):
            j = neighbors[i, t]
            if j >= 0:
                rev_indptr[j + 1] += 1
    for j in range(n):
        rev_indptr[j + 1] += rev_indptr[j]
    next_slot = rev_indptr[:-1].copy()
    for i in range(n):
        for t in range(k):
            j = neighbors[i, t]
            if j >= 0:
                rev_indices[next_slot[j]] = i
                next_slot[j] += 1


@parallel_kernel
def union_rows(neighbors, rev_indptr, rev_indices, with_self, scratch, row_length):
    """Row ``i`` of the symmetrised graph: its own neighbours and the samples
    that list it, sorted, without repeats; ``i`` itself only if
    ``with_self``.

    ``scratch`` (n * slots + nnz of the reverse lists,) int32, with
    ``slots = k + with_self``, receives each row at offset
    ``i * slots + rev_indptr[i]``; ``row_length[i]`` its length. Rows are
    independent.
    """
    n, k = neighbors.shape
    slots = k + with_self
    for i in prange(n):
        start = i * slots + rev_indptr[i]
        length = 0
        if with_self:
            scratch[start] = i
            length = 1
        for t in range(k):
            j = neighbors[i, t]
            if j >= 0 and j != i:
                scratch[start + length] = j
                length += 1
        for q in range(rev_indptr[i], rev_indptr[i + 1]):
            j = rev_indices[q]
            if j != i:
                scratch[start + length] = j
                length += 1
        row = scratch[start : start + length]
        row.sort()
        unique = 0
        for t in range(length):
            if t == 0 or row[t] != row[t - 1]:
                row[unique] = row[t]
                unique += 1
        row_length[i] = unique


@parallel_kernel
def compact_rows(slots, rev_indptr, scratch, indptr, indices):
    """Copy each row of ``scratch`` (see :func:`union_rows`) to its CSR place."""
    n = indptr.size - 1
    for i in prange(n):
        start = i * slots + rev_indptr[i]
        for t in range(indptr[i + 1] - indptr[i]):
            indices[indptr[i] + t] = scratch[start + t]


@parallel_kernel
def negative_squared_distances(X, indptr, indices, out):
    """``out[p] = -||x_i - x_j||^2`` for the stored pair ``p = (i, j)``,
    summed in float64 over the features (X float64, C order), then rounded
    to the dtype of ``out``. Rows are independent."""
    n, n_features = X.shape
    for i in prange(n):
        x = X[i]
        for p in range(indptr[i], indptr[i + 1]):
            y = X[indices[p]]
            total = 0.0
            for f in range(n_features):
                difference = x[f] - y[f]
                total += difference * difference
            out[p] = -total


@parallel_kernel
def dot_products(X, indptr, indices, out):
    """``out[p] = x_i . x_j`` for the stored pair ``p = (i, j)`` (cosine
    similarity when the rows of X are unit vectors), in float64."""
    n, n_features = X.shape
    for i in prange(n):
        x = X[i]
        for p in range(indptr[i], indptr[i + 1]):
            y = X[indices[p]]
            total = 0.0
            for f in range(n_features):
                total += x[f] * y[f]
            out[p] = total


@parallel_kernel
def cluster_similarities(sums, sizes, exemplar_rows, exemplar_preference, cosine, indptr,
                         indices, out):
    """Similarities between clusters for a merge level (see
    ``_sparse.weighted_similarities``), for the stored pairs ``p = (a, b)``
    of a CSR structure over clusters, without per-pair temporaries.

    ``sums`` (m, d): feature sums of the clusters' members; ``sizes`` (m,);
    ``exemplar_rows`` (m, d): features of their exemplars;
    ``exemplar_preference`` (m,). Euclidean: ``-n_a ||mean_a - x_{e_b}||^2``;
    cosine: ``sum_a . x_{e_b}``; on the diagonal the preference is added and
    the exemplar's own similarity taken out. Rows are independent.
    """
    m, d = sums.shape
    for a in prange(m):
        size = sizes[a]
        for p in range(indptr[a], indptr[a + 1]):
            b = indices[p]
            x = exemplar_rows[b]
            total = 0.0
            if cosine:
                for f in range(d):
                    total += sums[a, f] * x[f]
            else:
                for f in range(d):
                    difference = sums[a, f] / size - x[f]
                    total += difference * difference
                total = -size * total
            if b == a:
                own = 0.0
                if cosine:
                    for f in range(d):
                        own += x[f] * x[f]
                total = exemplar_preference[a] + total - own
            out[p] = total
