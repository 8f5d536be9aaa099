"""The preference range: from one cluster to N clusters.

``preference_range`` follows R's apcluster ``preferenceRange``; the search
for a number of clusters (``_search.py``) brackets the preference with it.
"""

import warnings
from typing import NamedTuple

import numpy as np
from scipy import sparse

from fastap import _resources, _similarity
from fastap._kernels import preference as preference_kernels


class PreferenceRange(NamedTuple):
    """Preferences between which the number of clusters goes from 1 to N.

    Attributes
    ----------
    low : float
        The smallest preference at which more than one cluster can be
        better than one (below it, one cluster has the larger net
        similarity). ``method="bound"`` gives a lower bound of it.
    high : float
        The largest off-diagonal similarity: with a larger preference every
        sample is its own exemplar (N clusters).
    """

    low: float
    high: float


def preference_range_of_similarities(S, method="bound"):
    """:class:`PreferenceRange` of a finite square similarity matrix.

    A sample's similarity to itself counts as 0 (see
    ``fastap/_kernels/preference.py``); the diagonal of ``S`` is not read.
    ``method="bound"`` takes one pass over ``S``; ``"exact"`` takes O(n^3)
    time and a transposed copy of ``S``.
    """
    n = S.shape[0]
    if n < 2:
        raise ValueError("The preference range needs at least 2 samples.")
    column_sums = np.zeros(n, dtype=np.float64)
    row_maxima = np.empty(n, dtype=np.float64)
    preference_kernels.add_off_diagonal_column_sums_and_row_maxima(S, 0, column_sums, row_maxima)
    if method == "exact":
        low = column_sums.max() - preference_kernels.best_pair_similarity(
            np.ascontiguousarray(S.T)
        )
        return PreferenceRange(float(low), float(row_maxima.max()))
    return preference_range_bound(column_sums, row_maxima)


def preference_range_bound(column_sums, row_maxima):
    """``method="bound"``'s :class:`PreferenceRange` from the off-diagonal
    column sums and row maxima of the similarities (float64, ``n >= 2``;
    from one matrix, or summed over the row blocks of the distributed
    engine)."""
    one_exemplar = column_sums.max()
    # Every other sample at its most similar sample, the two least well
    # placed ones as exemplars (contributing 0): no pair does better.
    two_smallest = np.partition(row_maxima, 1)[:2]
    two_exemplars = row_maxima.sum() - two_smallest.sum()
    return PreferenceRange(float(one_exemplar - two_exemplars), float(row_maxima.max()))


def preference_range(X, *, affinity=None, method="bound", n_jobs=None):
    """Range of preferences worth trying: from one cluster to N clusters.

    As R's apcluster ``preferenceRange``: ``low`` is the preference above
    which two clusters can beat one in net similarity (``method="exact"``)
    or a lower bound of it (``"bound"``, the default: one pass over the
    similarities, fast for N in the tens of thousands); ``high`` is the
    largest similarity between two different samples, above which every
    sample is its own exemplar. A sample's similarity to itself counts as
    0 (an exemplar contributes its preference only); the diagonal of a
    precomputed matrix is not read.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, n_samples)
        Samples, or similarities with ``affinity="precomputed"`` (not
        copied; read only).
    affinity : {"euclidean", "precomputed", "cosine"}, callable or None, default=None
        As in :class:`fastap.AffinityPropagation`. None means "euclidean",
        with a warning when ``X`` is square and symmetric, which a
        similarity matrix usually is (pass ``affinity="precomputed"`` for
        one, ``affinity="euclidean"`` for square features).
    method : {"bound", "exact"}, default="bound"
        ``"exact"`` takes O(n^3) time and an n x n copy: for n up to a few
        thousand.
    n_jobs : int, default=None
        Threads, as in :class:`fastap.AffinityPropagation`.

    Returns
    -------
    PreferenceRange
        ``(low, high)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastap import preference_range
    >>> X = np.array([[0.0], [1.0], [5.0]])
    >>> preference_range(X, method="exact")
    PreferenceRange(low=-16.0, high=-1.0)
    >>> S = -np.array([[0.0, 1.0, 25.0], [1.0, 0.0, 16.0], [25.0, 16.0, 0.0]])
    >>> preference_range(S, affinity="precomputed", method="exact")
    PreferenceRange(low=-16.0, high=-1.0)
    """
    from sklearn.utils import check_array

    if method not in ("bound", "exact"):
        raise ValueError(f"method must be 'bound' or 'exact'; got {method!r}.")
    if not (affinity is None or callable(affinity) or affinity in _similarity.AFFINITIES):
        raise ValueError(
            f"affinity must be one of {_similarity.AFFINITIES} or a callable; got {affinity!r}."
        )
    if sparse.issparse(X) and affinity == "precomputed":
        raise ValueError(
            "preference_range needs dense similarities; for a sparse graph the stored "
            "values' range, e.g. (S.data.min() * n_samples, S.data.max()), is a start."
        )
    n_threads = _resources.resolve_n_threads(n_jobs)
    with _resources.numba_threads(n_threads):
        if affinity == "precomputed":
            _similarity.check_square(np.shape(X))
            S = check_array(X, dtype=[np.float64, np.float32], order="C")
            _similarity.check_square(S.shape)
        else:
            X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32])
            if affinity is None:
                _warn_if_looks_like_similarities(X)
                affinity = "euclidean"
            dtype = _similarity.similarity_dtype(X.dtype)
            _resources.check_dense_memory(X.shape[0], dtype, n_new_matrices=1)
            S = _similarity.similarities(X, affinity, dtype)
        return preference_range_of_similarities(S, method)


def _warn_if_looks_like_similarities(X):
    n_samples, n_features = X.shape
    if sparse.issparse(X) or n_samples != n_features or n_samples < 3:
        return
    if np.allclose(X, X.T):
        warnings.warn(
            "preference_range got a square symmetric matrix and no affinity: it is treated "
            "as features (affinity='euclidean'). If it holds similarities, pass "
            "affinity='precomputed'; pass affinity='euclidean' to silence this warning.",
            UserWarning,
            stacklevel=3,
        )
