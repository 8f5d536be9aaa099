"""Exemplar flags to clusters on a sparse graph, and what the toolkit reads
of them: scikit-learn's two-step assignment on stored pairs (a pair that is
not stored is ``-inf``: never the exemplar), the net similarity and the
evidence margin of each sample's assignment.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel


@parallel_kernel
def nearest_stored_exemplar(indptr, indices, S, is_exemplar, exemplar_label, labels):
    """``labels[i]`` = label of the most similar exemplar among row ``i``'s
    stored pairs (first maximum in column order), or -1 when the row stores
    no exemplar; an exemplar gets its own label. ``exemplar_label[k]`` is
    ``k``'s label (k an exemplar)."""
    for i in prange(indptr.size - 1):
        if is_exemplar[i]:
            labels[i] = exemplar_label[i]
            continue
        best = -1
        best_value = S.dtype.type(-np.inf)
        for p in range(indptr[i], indptr[i + 1]):
            k = indices[p]
            if is_exemplar[k] and (best == -1 or S[p] > best_value):
                best = exemplar_label[k]
                best_value = S[p]
        labels[i] = best


@parallel_kernel
def within_cluster_stored_column_sums(
    col_indptr, col_order, pair_rows, S, labels, cluster_sizes, out
):
    """``out[j] = sum of S(i, j) over i with labels[i] == labels[j]``, added
    in increasing ``i`` in the dtype of ``S`` (the dense kernel's order), or
    ``-inf`` when some member of ``j``'s cluster does not store a pair with
    ``j`` (a missing pair is ``-inf``). ``pair_rows[p]`` is the row of
    position ``p``. Each column is owned by one task."""
    for j in prange(col_indptr.size - 1):
        label = labels[j]
        total = S.dtype.type(0)
        members = 0
        for q in range(col_indptr[j], col_indptr[j + 1]):
            p = col_order[q]
            if labels[pair_rows[p]] == label:
                total += S[p]
                members += 1
        out[j] = total if members == cluster_sizes[label] else S.dtype.type(-np.inf)


@parallel_kernel
def best_stored_exemplar_similarity(indptr, indices, S, is_exemplar, best_value):
    """``best_value[i]`` = the largest stored ``S(i, k)`` over exemplars
    ``k`` (an exemplar: its own ``S(i, i)``, the preference), or ``-inf``
    when row ``i`` stores no exemplar. Rows are independent."""
    for i in prange(indptr.size - 1):
        best = -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            k = indices[p]
            if is_exemplar[i]:
                if k == i:
                    best = S[p]
            elif is_exemplar[k] and S[p] > best:
                best = S[p]
        best_value[i] = best


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
