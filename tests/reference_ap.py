"""Plain NumPy reference of Affinity Propagation's steps.

Imports nothing from fastap. Each function mirrors one step of
scikit-learn 1.9's ``_affinity_propagation`` line for line, so that fastap's
kernels can be checked step by step against an implementation whose
arithmetic is obvious.
"""

import numpy as np


def place_preference_and_noise(S, preference, random_state):
    """Preferences on the diagonal, then the N x N degeneracy noise, in place."""
    n = S.shape[0]
    S.flat[:: n + 1] = preference
    S += (np.finfo(S.dtype).eps * S + np.finfo(S.dtype).tiny * 100) * random_state.standard_normal(
        size=(n, n)
    )
    return S


def responsibility_step(S, R, A, damping):
    """R <- damping * R + (1 - damping) * R_new, in the dtype of R."""
    n = S.shape[0]
    rows = np.arange(n)
    tmp = A + S
    best = np.argmax(tmp, axis=1)
    best_value = tmp[rows, best]
    tmp[rows, best] = -np.inf
    second_value = np.max(tmp, axis=1)
    R_new = S - best_value[:, None]
    R_new[rows, best] = S[rows, best] - second_value
    R_new *= R.dtype.type(1 - damping)
    R *= R.dtype.type(damping)
    R += R_new
    return R


def column_sums_of_positive_part(R):
    """sum_i max(R(i, k), 0) with R(k, k) unclipped, added in row order."""
    positive = np.maximum(R, 0)
    positive.flat[:: R.shape[0] + 1] = R.flat[:: R.shape[0] + 1]
    return np.sum(positive, axis=0), positive


def availability_step(R, A, damping):
    """A <- damping * A + (1 - damping) * A_new, in the dtype of A."""
    n = R.shape[0]
    col_sum, tmp = column_sums_of_positive_part(R)
    tmp -= col_sum
    diagonal = np.diag(tmp).copy()
    tmp.clip(0, np.inf, tmp)
    tmp.flat[:: n + 1] = diagonal
    tmp *= A.dtype.type(1 - damping)
    A *= A.dtype.type(damping)
    A -= tmp
    return A


def iterate(S, n_iter, damping, dtype=None):
    """``n_iter`` full iterations from zero messages; returns (R, A, exemplar flags)."""
    dtype = S.dtype if dtype is None else dtype
    R = np.zeros(S.shape, dtype=dtype)
    A = np.zeros(S.shape, dtype=dtype)
    S = S.astype(dtype, copy=False)
    for _ in range(n_iter):
        responsibility_step(S, R, A, damping)
        availability_step(R, A, damping)
    return R, A, (np.diag(A) + np.diag(R)) > 0


def negative_squared_euclidean(X):
    """-||x_i - x_j||^2 in the most obvious way (float64)."""
    X = np.asarray(X, dtype=np.float64)
    diff = X[:, None, :] - X[None, :, :]
    return -np.einsum("ijk,ijk->ij", diff, diff)
