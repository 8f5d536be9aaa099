"""Exemplar-based agglomeration (Bodenhofer et al.'s ``aggExCluster``).

Two clusters ``I`` and ``J`` merge into one whose exemplar ``x`` maximizes
the balanced average similarity ``mean_{i in I} S(i, x) + mean_{j in J}
S(j, x)`` over ``x`` in ``I + J``; the pair with the largest objective (half
that maximum) merges first. ``T[c, k] = sum_{i in c} S(i, k)`` holds each
cluster's column sums, so a pair is scored in O(|I| + |J|) and a merge adds
two rows of ``T``.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel


@parallel_kernel
def cluster_column_sums(S, labels, self_similarity, sums):
    """``sums[c, k] = sum_{i : labels[i] == c} S'(i, k)`` with ``S'`` equal to
    ``S`` off the diagonal and ``self_similarity`` on it. Tasks own ranges of
    columns; rows are added in order."""
    n = S.shape[0]
    n_chunks = min(n, 64)
    for chunk in prange(n_chunks):
        start = chunk * n // n_chunks
        stop = (chunk + 1) * n // n_chunks
        for c in range(sums.shape[0]):
            for k in range(start, stop):
                sums[c, k] = 0.0
        for i in range(n):
            row_sums = sums[labels[i]]
            row = S[i]
            for k in range(start, stop):
                row_sums[k] += row[k] if k != i else self_similarity


@serial_kernel
def _score_pair(T, a, b, size, head, next_member):
    """(objective, exemplar) of merging the clusters in slots ``a`` and ``b``."""
    best = -np.inf
    best_exemplar = -1
    for slot in (a, b):
        k = head[slot]
        while k >= 0:
            value = T[a, k] / size[a] + T[b, k] / size[b]
            if value > best:
                best = value
                best_exemplar = k
            k = next_member[k]
    return 0.5 * best, best_exemplar


@serial_kernel
def agglomerate(T, labels, merged_nodes, objectives, merged_exemplars):
    """Merge the ``K`` clusters of ``labels`` down to one.

    ``T`` (K, n) float64, overwritten. Merge ``m`` joins the nodes
    ``merged_nodes[m]`` (leaves are ``0 .. K-1``, the node made by merge
    ``m`` is ``K + m``, as in SciPy's linkage) with ``objectives[m]`` and
    exemplar ``merged_exemplars[m]``. Ties go to the lowest pair of slots.
    """
    K, n = T.shape
    size = np.zeros(K, dtype=np.float64)
    head = np.full(K, -1, dtype=np.int64)
    tail = np.full(K, -1, dtype=np.int64)
    next_member = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        c = labels[i]
        size[c] += 1.0
        if head[c] < 0:
            head[c] = i
        else:
            next_member[tail[c]] = i
        tail[c] = i
    node = np.arange(K)
    active = np.ones(K, dtype=np.bool_)
    score = np.full((K, K), -np.inf)
    exemplar = np.full((K, K), -1, dtype=np.int64)
    for a in range(K):
        for b in range(a + 1, K):
            value, x = _score_pair(T, a, b, size, head, next_member)
            score[a, b] = value
            score[b, a] = value
            exemplar[a, b] = x
            exemplar[b, a] = x
    row_best = np.full(K, -1, dtype=np.int64)
    for a in range(K):
        for b in range(K):
            if b != a and (row_best[a] < 0 or score[a, b] > score[a, row_best[a]]):
                row_best[a] = b

    for m in range(K - 1):
        first = -1
        for a in range(K):
            if active[a] and (first < 0 or score[a, row_best[a]] > score[first, row_best[first]]):
                first = a
        second = row_best[first]
        keep, gone = min(first, second), max(first, second)
        merged_nodes[m, 0] = min(node[keep], node[gone])
        merged_nodes[m, 1] = max(node[keep], node[gone])
        objectives[m] = score[keep, gone]
        merged_exemplars[m] = exemplar[keep, gone]

        # Slot ``keep`` becomes the merged cluster.
        for k in range(n):
            T[keep, k] += T[gone, k]
        size[keep] += size[gone]
        next_member[tail[keep]] = head[gone]
        tail[keep] = tail[gone]
        node[keep] = K + m
        active[gone] = False
        for b in range(K):
            score[gone, b] = -np.inf
            score[b, gone] = -np.inf
        for b in range(K):
            if active[b] and b != keep:
                value, x = _score_pair(T, keep, b, size, head, next_member)
                score[keep, b] = value
                score[b, keep] = value
                exemplar[keep, b] = x
                exemplar[b, keep] = x
        for a in range(K):
            if not active[a]:
                continue
            if a == keep or row_best[a] == keep or row_best[a] == gone:
                best = -1
                for b in range(K):
                    if b != a and active[b] and (best < 0 or score[a, b] > score[a, best]):
                        best = b
                row_best[a] = best if best >= 0 else a
            elif score[a, keep] > score[a, row_best[a]] or (
                score[a, keep] == score[a, row_best[a]] and keep < row_best[a]
            ):
                row_best[a] = keep
