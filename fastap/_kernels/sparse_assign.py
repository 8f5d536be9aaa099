"""Exemplar flags to clusters on a sparse graph, and what the toolkit reads
of them: scikit-learn's two-step assignment on stored pairs (a pair that is
not stored is ``-inf``: never the exemplar), the net similarity and the
evidence margin of each sample's assignment.

The kernels that read rows take ``row_offset``: row ``r`` of the arrays is
the graph's sample ``row_offset + r`` (0 for a whole graph; a row block of
the distributed engine passes its first row, with its own ``indptr`` and
global column ``indices``).
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel


@parallel_kernel
def nearest_stored_exemplar(indptr, indices, row_offset, S, is_exemplar, exemplar_label,
                            labels):
    """``labels[r]`` = label of the most similar exemplar among row ``r``'s
    stored pairs (first maximum in column order), or -1 when the row stores
    no exemplar; an exemplar gets its own label. ``exemplar_label[k]`` is
    ``k``'s label (k an exemplar); ``is_exemplar`` and ``exemplar_label``
    cover all samples."""
    for r in prange(indptr.size - 1):
        i = r + row_offset
        if is_exemplar[i]:
            labels[r] = exemplar_label[i]
            continue
        best = -1
        best_value = S.dtype.type(-np.inf)
        for p in range(indptr[r], indptr[r + 1]):
            k = indices[p]
            if is_exemplar[k] and (best == -1 or S[p] > best_value):
                best = exemplar_label[k]
                best_value = S[p]
        labels[r] = best


@parallel_kernel
def add_within_cluster_stored_sums(
    col_indptr, col_order, pair_rows, row_offset, S, labels, sums, members
):
    """For every column ``j``: ``sums[j] +=`` each stored ``S(i, j)`` with
    ``labels[i] == labels[j]``, in increasing ``i`` in the dtype of ``S``
    (the dense kernel's order), and ``members[j] +=`` their number.
    ``pair_rows[p]`` is the row of position ``p`` (``i = row_offset +
    pair_rows[p]``); ``labels`` covers all samples. A whole graph starts
    from zeros; a row block continues the previous block's sums, which adds
    the same terms in the same order. A column whose ``members`` then falls
    short of its cluster's size misses a pair, ``-inf``: see
    :func:`within_cluster_sums_or_missing`. Each column is owned by one task."""
    for j in prange(col_indptr.size - 1):
        label = labels[j]
        total = sums[j]
        count = members[j]
        for q in range(col_indptr[j], col_indptr[j + 1]):
            p = col_order[q]
            if labels[pair_rows[p] + row_offset] == label:
                total += S[p]
                count += 1
        sums[j] = total
        members[j] = count


@parallel_kernel
def within_cluster_sums_or_missing(sums, members, labels, cluster_sizes, out):
    """``out[j] = sums[j]``, or ``-inf`` when some member of ``j``'s cluster
    does not store a pair with ``j`` (a missing pair is ``-inf``)."""
    for j in prange(sums.size):
        total = sums[j]
        out[j] = total if members[j] == cluster_sizes[labels[j]] else sums.dtype.type(-np.inf)


@parallel_kernel
def best_stored_exemplar_similarity(indptr, indices, row_offset, S, is_exemplar, best_value):
    """``best_value[r]`` = the largest stored ``S(i, k)`` over exemplars
    ``k`` (an exemplar: its own ``S(i, i)``, the preference), or ``-inf``
    when row ``i = row_offset + r`` stores no exemplar. Rows are independent."""
    for r in prange(indptr.size - 1):
        i = r + row_offset
        best = -np.inf
        for p in range(indptr[r], indptr[r + 1]):
            k = indices[p]
            if is_exemplar[i]:
                if k == i:
                    best = S[p]
            elif is_exemplar[k] and S[p] > best:
                best = S[p]
        best_value[r] = best


@parallel_kernel
def stored_evidence_margin(indptr, indices, A, R, is_exemplar, assigned, margin):
    """``margin[i] = E(i, assigned[i]) - max E(i, e)`` over the other stored
    exemplars ``e``, with ``E = A + R`` (the dense ``assign.evidence_margin``
    on stored pairs): +inf when ``i`` stores no other exemplar, NaN when it
    does not store its own. Rows are independent."""
    for i in prange(indptr.size - 1):
        own = assigned[i]
        own_value = np.nan
        best_other = -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            k = indices[p]
            if k == own:
                own_value = A[p] + R[p]
            elif is_exemplar[k]:
                best_other = max(best_other, A[p] + R[p])
        margin[i] = own_value - best_other
