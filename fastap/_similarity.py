"""Similarities from features: the one place ``affinity`` becomes ``S``.

``euclidean`` (negative squared distances, bitwise scikit-learn's for
float64), ``cosine`` and a callable's output (validated) become a C-ordered
N x N matrix of the input's float dtype, with one N x N allocation; a
precomputed matrix is the estimator's to validate (scikit-learn's
conventions), but its squareness is checked here, with one message.
"""

import numpy as np
from scipy import sparse

from fastap._kernels import setup

# Rows of a float64 Gram block for float32 similarities (64 MiB): smaller
# blocks make many short parallel calls right after each BLAS product, whose
# threads still spin, and the two pools fight over the cores (measured at
# N = 20,000, 8 features: 4.3 s with 8 MiB blocks, 0.8 s with 64 MiB).
_SIMILARITY_BLOCK_ELEMENTS = 1 << 23

AFFINITIES = ("euclidean", "cosine", "precomputed")


def similarity_dtype(dtype):
    """Similarities (and messages) keep float32; everything else is float64."""
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def check_square(shape):
    """The error for a precomputed similarity matrix that is not square."""
    if len(shape) == 2 and shape[0] != shape[1]:
        raise ValueError(
            f"The matrix of similarities must be a square array. Got {tuple(shape)} instead."
        )


def similarities(X, affinity, dtype, *, copy=True):
    """``S`` of validated features ``X`` (dense or CSR) for ``affinity``.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
    affinity : {"euclidean", "cosine"} or callable
    dtype : float32 or float64
        The dtype of ``S``.
    copy : bool
        A callable's output may be used in place when False.
    """
    if affinity == "euclidean":
        return negative_squared_euclidean(X, dtype)
    if affinity == "cosine":
        return cosine_similarities(X, dtype)
    if callable(affinity):
        return validated_callable_similarities(affinity(X), X.shape[0], dtype, copy)
    raise ValueError(f"Unknown affinity {affinity!r}.")


def negative_squared_euclidean(X, out_dtype):
    """``-euclidean_distances(X, squared=True)`` with one N x N allocation.

    Dense input: the Gram matrix ``X @ X.T`` is computed in float64 (as
    scikit-learn does, upcasting float32 input) and finished in place: for
    float64 in the result buffer itself (bitwise equal to scikit-learn), for
    float32 by blocks of rows into the float32 result. Sparse input goes
    through scikit-learn's own function, negated in place.
    """
    from sklearn.metrics import euclidean_distances
    from sklearn.utils.extmath import row_norms

    if sparse.issparse(X):
        S = np.ascontiguousarray(euclidean_distances(X, squared=True), dtype=out_dtype)
        setup.negate_in_place(S)
        check_distances_finite(setup.count_non_finite(S), out_dtype)
        return S
    X = np.asarray(X, dtype=np.float64)
    n_samples = X.shape[0]
    squared_norms = row_norms(X, squared=True)
    S = np.empty((n_samples, n_samples), dtype=out_dtype)
    if out_dtype == np.float64:
        # The very product scikit-learn computes (BLAS picks its kernels by
        # shape, so a blocked product can differ in the last bit).
        np.matmul(X, X.T, out=S)
        non_finite = setup.negative_squared_distances_from_gram(S, squared_norms, 0, S)
        check_distances_finite(non_finite, out_dtype)
        return S
    rows = max(1, _SIMILARITY_BLOCK_ELEMENTS // n_samples)
    gram_rows = np.empty((min(rows, n_samples), n_samples), dtype=np.float64)
    non_finite = 0
    for start in range(0, n_samples, rows):
        stop = min(start + rows, n_samples)
        block = gram_rows[: stop - start]
        np.matmul(X[start:stop], X.T, out=block)
        non_finite += setup.negative_squared_distances_from_gram(
            block, squared_norms, start, S[start:stop]
        )
    check_distances_finite(non_finite, out_dtype)
    return S


def check_distances_finite(n_non_finite, dtype):
    """Squared distances beyond the dtype's range would give NaN messages
    (scikit-learn's too): a clear error instead."""
    if n_non_finite:
        dtype = np.dtype(dtype)
        remedy = "use float64 input or scale the features" if dtype == np.float32 else (
            "scale the features"
        )
        raise ValueError(
            f"{n_non_finite} squared distances between samples overflow {dtype.name} "
            f"(beyond {np.finfo(dtype).max:.3g}): {remedy}."
        )


def cosine_similarities(X, out_dtype):
    """Cosine similarities of the rows of ``X`` with one N x N allocation.

    Rows are scaled to unit length in float64 (zero rows stay zero, as in
    scikit-learn's ``cosine_similarity``) and multiplied by blocks of rows
    into the result.
    """
    from sklearn.metrics.pairwise import cosine_similarity
    from sklearn.preprocessing import normalize

    if sparse.issparse(X):
        return np.ascontiguousarray(cosine_similarity(X), dtype=out_dtype)
    unit = normalize(np.asarray(X, dtype=np.float64), copy=True)
    n_samples = unit.shape[0]
    S = np.empty((n_samples, n_samples), dtype=out_dtype)
    if out_dtype == np.float64:
        np.matmul(unit, unit.T, out=S)
        return S
    rows = max(1, _SIMILARITY_BLOCK_ELEMENTS // n_samples)
    for start in range(0, n_samples, rows):
        stop = min(start + rows, n_samples)
        S[start:stop] = unit[start:stop] @ unit.T
    return S


def validated_callable_similarities(S, n_samples, dtype, copy):
    """What an ``affinity`` callable returned, as a finite square C-ordered
    matrix of ``dtype`` (copied unless ``copy=False`` allows using it)."""
    S = callable_output_as_matrix(S, n_samples, dtype, copy)
    if setup.count_non_finite(S):  # one pass, no N x N temporary
        raise ValueError("The affinity callable returned NaN or infinity.")
    return S


def callable_output_as_matrix(S, n_samples, dtype, copy):
    """An ``affinity`` callable's output as a square writeable C-ordered
    matrix of ``dtype``, its finiteness left to the caller (a kernel here,
    NumPy on the NumPy engine's path, which compiles nothing)."""
    if sparse.issparse(S):
        raise TypeError("The affinity callable returned a sparse matrix; return a dense array.")
    S = np.asarray(S)
    if S.shape != (n_samples, n_samples):
        raise ValueError(
            f"The affinity callable must return an array of shape ({n_samples}, {n_samples}); "
            f"got {S.shape}."
        )
    if S.dtype.kind not in "biuf":
        raise ValueError(f"The affinity callable returned dtype {S.dtype}; expected numbers.")
    S = np.array(S, dtype=dtype, order="C", copy=True if copy else None)
    if not S.flags.writeable:
        S = S.copy()
    return S


def validated_preference(preference, n_samples, dtype):
    """The preference as a finite 0-d or (n_samples,) array of ``dtype``."""
    preference = np.asarray(preference)
    if preference.dtype.kind not in "biuf":
        raise ValueError(f"preference must be numeric, got dtype {preference.dtype}.")
    if preference.ndim > 1 or (preference.ndim == 1 and preference.shape[0] != n_samples):
        raise ValueError(
            "preference must be a scalar or an array of shape (n_samples,) = "
            f"({n_samples},); got shape {preference.shape}."
        )
    if not np.all(np.isfinite(preference)):
        raise ValueError("preference contains NaN or infinity.")
    with np.errstate(over="ignore"):
        converted = preference.astype(dtype, copy=False)
    if not np.all(np.isfinite(converted)):
        raise ValueError(
            f"preference is too large in magnitude for {np.dtype(dtype).name} similarities."
        )
    return converted
