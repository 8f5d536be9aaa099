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
from fastap._kernels import setup


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
            _resources.check_dense_memory(X.shape[0], dtype, engine=None)
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


# --------------------------------------------------------------------------
# preference_quantile on tied similarities.
# --------------------------------------------------------------------------

# A quantile is warned about when the value it lands on is shared by at
# least this share of the off-diagonal similarities: every quantile across
# that tie gives the same preference, so preference_quantile stops
# controlling the clusters there (cosine similarities of sparse TF-IDF
# vectors: documents without a common word are exactly 0, often most pairs).
# Similarities of continuous features are never tied so widely.
QUANTILE_TIE_SHARE = 0.25


class QuantileTie(NamedTuple):
    """Similarities below and equal to a value, out of how many."""

    n_below: int
    n_equal: int
    n_values: int


# Entries compared at once when counting a tie (1 MiB of booleans).
_COUNT_CHUNK = 1 << 20


def count_below_and_equal(values, value):
    """Entries of ``values`` (1-d or 2-d, any layout) below ``value`` and
    equal to it (-0.0 equals 0.0, as in NumPy), by chunks: no full-size
    temporary. NumPy's vectorised comparisons (N=8,000 float64 under a load
    of 6: 0.11 s, where two passes of the radix kernels' key counting took
    0.73 s and the quantile's selection itself 0.25-0.31 s)."""
    value = values.dtype.type(value)
    if values.flags.c_contiguous:
        flat = values.reshape(-1)  # a view
        blocks = (flat[start:start + _COUNT_CHUNK] for start in range(0, flat.size, _COUNT_CHUNK))
    else:
        step = max(1, _COUNT_CHUNK // max(1, values.shape[-1]))
        blocks = (values[start:start + step] for start in range(0, values.shape[0], step))
    below = equal = 0
    for block in blocks:
        below += int(np.count_nonzero(block < value))
        equal += int(np.count_nonzero(block == value))
    return below, equal


def off_diagonal_tie(S, value):
    """:class:`QuantileTie` of ``value`` among the off-diagonal entries of
    the square ``S`` (one pass, no copy)."""
    n = S.shape[0]
    below, equal = count_below_and_equal(S, value)
    diagonal = np.diagonal(S)
    below -= int(np.count_nonzero(diagonal < value))
    equal -= int(np.count_nonzero(diagonal == value))
    return QuantileTie(below, equal, n * n - n)


def values_tie(values, value):
    """:class:`QuantileTie` of ``value`` among ``values`` (a 1-d array)."""
    return QuantileTie(int(np.count_nonzero(values < value)),
                       int(np.count_nonzero(values == value)), int(values.size))


def warn_if_quantile_in_tie(q, value, tie, what="off-diagonal similarities"):
    """UserWarning when ``preference_quantile=q`` landed on ``value`` held
    by at least ``QUANTILE_TIE_SHARE`` of the values (:class:`QuantileTie`):
    the range of quantiles giving the same preference, and what to do."""
    if tie.n_values < 2 or tie.n_equal < QUANTILE_TIE_SHARE * tie.n_values:
        return
    last = tie.n_values - 1
    lowest = tie.n_below / last
    highest = min(1.0, (tie.n_below + tie.n_equal - 1) / last)
    fewer = f"a preference_quantile below {lowest:.2f} or " if lowest > 0.005 else ""
    warnings.warn(
        f"preference_quantile={q:g} gives the preference {float(value):.6g}, a value that "
        f"{tie.n_equal / tie.n_values:.0%} of the {what} share exactly (as the cosine "
        "similarities of sparse TF-IDF vectors do: 0 for documents without a common word), "
        f"so every preference_quantile from {lowest:.2f} to {highest:.2f} gives this same "
        f"preference and the same clusters. For more clusters take a preference_quantile "
        f"above {highest:.2f}; for fewer, {fewer}a preference below {float(value):.6g} "
        "(preference=...); or ask for a number of clusters with n_clusters=K.",
        UserWarning, stacklevel=3,
    )


def off_diagonal_quantile_warned(S, q, n_tasks, warn_ties=True):
    """``setup.off_diagonal_quantile``, warning when it lands on a wide tie
    (:func:`warn_if_quantile_in_tie`) if ``warn_ties`` (not for the start
    of an ``n_clusters`` search, which moves the preference itself)."""
    value = setup.off_diagonal_quantile(S, q, n_tasks)
    if warn_ties and S.shape[0] > 1:
        warn_if_quantile_in_tie(q, value, off_diagonal_tie(S, value))
    return value

