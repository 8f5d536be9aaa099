"""Turn exemplar flags into clusters, as scikit-learn does after its loop.

scikit-learn assigns every sample to its most similar exemplar, then, within
each cluster, makes the member with the largest column sum of similarities
(summed over the cluster's rows in increasing row order) the exemplar, and
assigns again. These kernels do the same arithmetic without the
``S[:, I]`` and ``S[ii][:, ii]`` copies.
"""

from numba import prange

from fastap._kernels._jit import parallel_kernel


@parallel_kernel
def nearest_exemplar(S, exemplars, labels):
    """``labels[i] = argmax_k S[i, exemplars[k]]`` (first maximum), then
    ``labels[exemplars[k]] = k``. Rows are independent."""
    n_exemplars = exemplars.size
    for i in prange(S.shape[0]):
        row = S[i]
        best = 0
        best_value = row[exemplars[0]]
        for k in range(1, n_exemplars):
            value = row[exemplars[k]]
            if value > best_value:
                best_value = value
                best = k
        labels[i] = best
    for k in range(n_exemplars):
        labels[exemplars[k]] = k


@parallel_kernel
def within_cluster_column_sums(S, labels, column_sums):
    """``column_sums[j] = sum of S[i, j] over i with labels[i] == labels[j]``,
    added in increasing ``i`` (scikit-learn's order). Each task owns a range
    of columns, so no sum is shared between threads."""
    n = S.shape[0]
    zero = S.dtype.type(0)
    n_chunks = min(n, 64)
    for chunk in prange(n_chunks):
        start = chunk * n // n_chunks
        stop = (chunk + 1) * n // n_chunks
        for j in range(start, stop):
            column_sums[j] = zero
        for i in range(n):
            row = S[i]
            label = labels[i]
            for j in range(start, stop):
                column_sums[j] += row[j] if labels[j] == label else zero
