"""Plain NumPy reference of Affinity Propagation on a sparse graph.

Imports nothing from fastap. A graph is ``(indptr, indices, S)`` in CSR
order with sorted rows and every diagonal pair stored (``S`` holds the
preferences there). The semantics are those documented in
``fastap/_sparse.py`` and ``fastap/_kernels/sparse_messages.py``: messages
only along stored pairs, column sums added in increasing row order in
float64, a sample storing only its diagonal is an exemplar with ``R(k, k)``
held at 0 and an infinite column sum. Written for clarity, with Python
loops over rows and columns; for graphs of a few thousand pairs.
"""

import numpy as np
from scipy import sparse


def prepare_graph(S, preference, random_state):
    """``(indptr, indices, values)`` of the graph AP iterates on, built from a
    SciPy sparse matrix with SciPy and NumPy only.

    The stored pairs (explicit zeros included) sorted by row, then column;
    every diagonal pair present and holding the preference (a stored diagonal
    value is replaced); then scikit-learn's degeneracy noise
    ``S += (eps * S + tiny * 100) * N(0, 1)`` on the stored values, the
    normals drawn in that order in one call.
    """
    coo = sparse.coo_matrix(S)
    n = coo.shape[0]
    dtype = coo.dtype if coo.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    off_diagonal = coo.row != coo.col
    rows = np.concatenate([coo.row[off_diagonal], np.arange(n)])
    cols = np.concatenate([coo.col[off_diagonal], np.arange(n)])
    values = np.concatenate(
        [coo.data[off_diagonal].astype(dtype), np.broadcast_to(np.asarray(preference, dtype), (n,))]
    )
    order = np.lexsort((cols, rows))
    rows, cols, values = rows[order], cols[order], values[order].copy()
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    info = np.finfo(dtype)
    values += (info.eps * values + info.tiny * 100) * random_state.standard_normal(values.size)
    return indptr, cols, values


def diagonal_positions(indptr, indices):
    n = indptr.size - 1
    return np.array(
        [indptr[i] + np.flatnonzero(indices[indptr[i] : indptr[i + 1]] == i)[0] for i in range(n)]
    )


def sequential_sum(values):
    """Sum in index order, float64 (``np.sum`` adds pairwise)."""
    total = 0.0
    for value in values.astype(np.float64):
        total += value
    return total


def run(indptr, indices, S, damping):
    """Generator of the iterations from zero messages: yields ``(R, A,
    flags)`` after each, ``A`` complete on the diagonal only (the off-diagonal
    availabilities are finished at the start of the next iteration, or by
    :func:`complete_availability`)."""
    dtype = S.dtype.type
    d, one_minus_d = dtype(damping), dtype(1 - damping)
    n = indptr.size - 1
    diagonal = diagonal_positions(indptr, indices)
    isolated = np.diff(indptr) == 1
    R = np.zeros_like(S)
    A = np.zeros_like(S)
    col_sum = np.zeros(n, dtype=S.dtype)
    flags = np.zeros(n, dtype=bool)
    first = True
    while True:
        if not first:
            complete_availability(indptr, indices, R, A, col_sum, damping)
        first = False
        # Responsibilities.
        for i in range(n):
            if isolated[i]:
                continue
            segment = slice(indptr[i], indptr[i + 1])
            values = A[segment] + S[segment] + dtype(0)
            best = int(np.argmax(values))
            best_value = values[best]
            values[best] = -np.inf
            second_value = values.max()
            R_new = S[segment] - best_value
            R_new[best] = S[segment][best] - second_value
            R[segment] = R[segment] * d + R_new * one_minus_d
        # Column sums, diagonal availabilities, flags.
        for k in range(n):
            positions = np.flatnonzero(indices == k)  # CSR order: increasing row
            parts = np.where(positions == diagonal[k], R[positions], np.maximum(R[positions], 0))
            col_sum[k] = dtype(sequential_sum(parts))
            p = diagonal[k]
            A[p] = A[p] * d - (R[p] - col_sum[k]) * one_minus_d
            flags[k] = A[p] + R[p] > 0
            if isolated[k]:
                col_sum[k] = np.inf
                flags[k] = True
        yield R, A, col_sum, flags.copy()


def complete_availability(indptr, indices, R, A, col_sum, damping):
    """Off-diagonal availabilities from the column sums, in place."""
    dtype = A.dtype.type
    d, one_minus_d = dtype(damping), dtype(1 - damping)
    for i in range(indptr.size - 1):
        for p in range(indptr[i], indptr[i + 1]):
            if indices[p] != i:
                clipped = max(max(R[p], dtype(0)) - col_sum[indices[p]], dtype(0))
                A[p] = A[p] * d - clipped * one_minus_d


def iterate(indptr, indices, S, n_iter, damping):
    """``n_iter`` iterations; returns (R, A, flags), ``A`` complete."""
    for _, (R, A, col_sum, flags) in zip(range(n_iter), run(indptr, indices, S, damping)):
        pass
    complete_availability(indptr, indices, R, A, col_sum, damping)
    return R, A, flags


def assign(indptr, indices, S, flags):
    """scikit-learn's assignment on stored pairs (missing pairs are -inf);
    returns (cluster_centers_indices, labels)."""
    n = indptr.size - 1
    dense = np.full((n, n), -np.inf)
    for i in range(n):
        dense[i, indices[indptr[i] : indptr[i + 1]]] = S[indptr[i] : indptr[i + 1]]
    flags = flags.copy()
    exemplars = np.flatnonzero(flags)
    if exemplars.size == 0:
        return np.array([], dtype=int), np.full(n, -1)
    # A sample that stores no pair with an exemplar becomes one.
    stranded = np.all(np.isinf(dense[:, exemplars]), axis=1)
    flags |= stranded
    exemplars = np.flatnonzero(flags)
    labels = np.argmax(dense[:, exemplars], axis=1)
    labels[exemplars] = np.arange(exemplars.size)
    for c in range(exemplars.size):
        members = np.flatnonzero(labels == c)
        block = dense[np.ix_(members, members)].astype(S.dtype)
        sums = np.array([sequential_sum(block[:, j]) if np.all(np.isfinite(block[:, j]))
                         else -np.inf for j in range(members.size)])
        exemplars[c] = members[np.argmax(sums)]
    labels = np.argmax(dense[:, exemplars], axis=1)
    labels[exemplars] = np.arange(exemplars.size)
    labels = exemplars[labels]
    centers = np.unique(labels)
    return centers, np.searchsorted(centers, labels)


def affinity_propagation(indptr, indices, S, damping, max_iter, convergence_iter):
    """The whole run with scikit-learn's convergence test; returns
    (cluster_centers_indices, labels, n_iter)."""
    history = []
    n_iter = 0
    for iteration, (_, _, _, flags) in zip(range(max_iter), run(indptr, indices, S, damping)):
        history.append(flags)
        n_iter = iteration + 1
        if iteration >= convergence_iter:
            window = np.array(history[-convergence_iter:])
            if np.all(window == window[-1]) and window[-1].any():
                break
    centers, labels = assign(indptr, indices, S, history[-1])
    return centers, labels, n_iter
