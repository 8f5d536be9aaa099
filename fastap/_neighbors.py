"""``affinity="nearest_neighbors"``: sparse AP on a k-NN graph, then merging.

On a k-NN graph every sample can choose an exemplar only among its
neighbours, so plain sparse AP splits the clusters dense AP would find into
fragments of about ``n_neighbors`` samples. Merging runs AP again on the
clusters, weighted by their sizes (:func:`weighted_similarities`: exact,
from each cluster's size and feature sum), level after level until a level
is dense (at most ``MERGE_DENSE_MAX_CLUSTERS`` clusters) or merges nothing;
then scikit-learn's refinement without the N x N matrix
(:func:`refine_and_assign`).

With ``n_clusters`` and merging, the search runs on the last (dense) merge
level, over the scalar preference that level's diagonal adds to each
cluster's within-cluster similarities: a problem of at most a few thousand
clusters, whatever N is. Without merging it runs on the graph itself.
"""

import time
import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning

from fastap import _graph, _preference, _resources, _run, _search, _sparse
from fastap._dense import DenseMessageState
from fastap._kernels import graph as graph_kernels
from fastap._kernels import sparse_graph

# Above this many clusters a merge level runs sparse AP on a k-NN graph of
# the clusters instead of dense AP (three m x m float64 matrices: 0.6 GiB
# at 5,000).
MERGE_DENSE_MAX_CLUSTERS = 5000

# Neighbours per cluster in a sparse merge level (at least n_neighbors). A
# level on too few neighbours fragments again, and worse: a fragment that
# cannot reach its own cluster's exemplar joins a foreign one when that
# costs less than a preference, and merges are never undone. With 200, a
# cluster sees the exemplars of about 200 fragments of the first stage.
MERGE_NEIGHBORS = 200

# Pairs sampled to estimate the median similarity of all pairs.
_MEDIAN_SAMPLE_PAIRS = 1_000_000
_MEDIAN_EXACT_MAX_SAMPLES = 2000
# Pairs whose similarities are computed together (memory: 2 x block x
# n_features x 8 bytes of gathered rows).
_PAIR_BLOCK = 8192




def similarities_of_pairs(Xf, metric, rows, cols):
    """Similarities of the pairs ``(rows[t], cols[t])`` (float64), by blocks
    of ``_PAIR_BLOCK`` pairs: the gathered feature rows of all pairs at once
    took 2 x pairs x n_features x 8 bytes (2.2 GiB for the default
    preference of 1,500 samples with 64 features)."""
    out = np.empty(rows.size, dtype=np.float64)
    for start in range(0, rows.size, _PAIR_BLOCK):
        block = slice(start, start + _PAIR_BLOCK)
        if metric == "cosine":
            out[block] = np.einsum("ij,ij->i", Xf[rows[block]], Xf[cols[block]])
        else:
            difference = Xf[rows[block]] - Xf[cols[block]]
            out[block] = -np.einsum("ij,ij->i", difference, difference)
    return out


def quantile_of_all_pairs(Xf, metric, q=0.5, *, with_diagonal=True, warn_ties=False):
    """The q-quantile of the similarities of all ``n x n`` pairs (the
    median with the diagonal is the dense default preference), exact up to
    2,000 samples, else estimated from 10^6 pairs drawn uniformly by a
    generator of fixed seed, so the estimate does not depend on
    ``random_state`` and does not consume its stream. ``warn_ties``: warn
    when it lands on a value most pairs share (``preference_quantile``)."""
    n = Xf.shape[0]
    if n <= _MEDIAN_EXACT_MAX_SAMPLES:
        rows, cols = np.divmod(np.arange(n * n), n)
    else:
        generator = np.random.default_rng(0)
        rows = generator.integers(0, n, _MEDIAN_SAMPLE_PAIRS)
        cols = generator.integers(0, n, _MEDIAN_SAMPLE_PAIRS)
    if not with_diagonal:
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
    values = similarities_of_pairs(Xf, metric, rows, cols)
    # np.median averages the middle pair, np.quantile interpolates: they can
    # differ in the last bit, and the default has always been the median.
    quantile = float(np.median(values) if q == 0.5 else np.quantile(values, q))
    if warn_ties:
        what = "pairs' similarities" if n <= _MEDIAN_EXACT_MAX_SAMPLES else (
            f"similarities of {values.size} pairs drawn at random")
        _preference.warn_if_quantile_in_tie(q, quantile, _preference.values_tie(values, quantile),
                                            what=what)
    return quantile


SPARSE_FEATURES_MESSAGE = (
    "affinity='nearest_neighbors' takes dense features; X is a sparse matrix (TF-IDF "
    "vectors, for example). Its neighbour search, the merging of fragments and the default "
    "preference work on dense rows, and a dense copy of sparse text features would be "
    "n_samples x n_features. Either cluster a sparse cosine k-NN graph of X directly, "
    "G = sklearn.neighbors.kneighbors_graph(X, n_neighbors=30, metric='cosine', "
    "mode='distance'); G.data = 1 - G.data; AffinityPropagation(affinity='precomputed')"
    ".fit(G) (sparse AP on the graph: clusters of about n_neighbors documents, not merged), "
    "or reduce X to dense features first, TruncatedSVD(n_components=100).fit_transform(X), "
    "then affinity='nearest_neighbors', metric='cosine'. For up to some 20,000 documents, "
    "affinity='cosine' takes sparse X as it is (dense AP: N x N matrices)."
)


def check_dense_features(X):
    """TypeError (scikit-learn's type for unsupported sparse input) for a
    sparse ``X``, saying what to do instead."""
    if sparse.issparse(X):
        raise TypeError(SPARSE_FEATURES_MESSAGE)


class Groups:
    """Clusters of samples while merging: for cluster ``a``, its exemplar (a
    sample), its size and the sum of its members' feature rows."""

    def __init__(self, exemplars, sizes, sums):
        self.exemplars = exemplars
        self.sizes = sizes
        self.sums = sums

    @classmethod
    def of_samples(cls, Xf, labels, exemplars):
        m = exemplars.size
        sizes = np.bincount(labels, minlength=m).astype(np.float64)
        member_of = sparse.csr_matrix(
            (np.ones(labels.size), (labels, np.arange(labels.size))), shape=(m, labels.size)
        )
        return cls(exemplars, sizes, np.asarray(member_of @ Xf))

    def merged(self, group_labels, group_exemplars):
        """The clusters of clusters: ``group_labels[a]`` is the new cluster of ``a``."""
        m = group_exemplars.size
        sums = np.zeros((m, self.sums.shape[1]))
        np.add.at(sums, group_labels, self.sums)
        sizes = np.bincount(group_labels, weights=self.sizes, minlength=m)
        return Groups(self.exemplars[group_exemplars], sizes, sums)


def weighted_similarities(Xf, metric, groups, indptr, indices, preference):
    """Similarities between clusters for a merge level, for the stored pairs
    ``(a, b)`` of a CSR structure over the clusters.

    Moving every member of ``a`` to the exemplar ``e_b`` of ``b`` adds
    ``sum_{i in a} s(x_i, x_{e_b})`` to AP's objective: for ``-||.||^2``
    that is ``-n_a ||mean_a - x_{e_b}||^2`` plus a constant of row ``a``
    (which AP ignores), for the cosine ``(sum_{i in a} x_i) . x_{e_b}``;
    both need only the cluster's size and feature sum, and they are exact,
    not an approximation by the exemplar. On the diagonal, keeping ``a``
    costs its exemplar's preference plus the other members' similarities
    to it.
    """
    exemplar_preference = np.ascontiguousarray(
        np.broadcast_to(preference, (Xf.shape[0],))[groups.exemplars], dtype=np.float64
    )
    out = np.empty(indices.size, dtype=np.float64)
    graph_kernels.cluster_similarities(
        groups.sums, groups.sizes, np.ascontiguousarray(Xf[groups.exemplars]),
        exemplar_preference, metric == "cosine", indptr, indices, out,
    )
    return out


# Damping and iterations of a merge level at least: clusters of fragments
# are near-ties, and at damping 0.5 a level kept cycling with a few changes
# per iteration (2 of 20 easy blob problems, make_blobs(1500, 8 centers),
# where damping 0.7 or 0.9 converged in every case).
MERGE_MIN_DAMPING = 0.9
MERGE_MIN_ITER = 1000


def _level_options(options):
    """A merge level runs quietly (the fit reports its outcome once), with
    at least ``MERGE_MIN_DAMPING`` and ``MERGE_MIN_ITER``."""
    return _run.RunOptions(
        damping=max(options.damping, MERGE_MIN_DAMPING),
        max_iter=max(options.max_iter, MERGE_MIN_ITER),
        convergence_iter=options.convergence_iter,
    )


def merge_level(Xf, metric, groups, preference, options, context, n_clusters=None, start=None):
    """AP on the clusters of ``groups``: dense up to
    ``MERGE_DENSE_MAX_CLUSTERS`` clusters (searching ``n_clusters`` if
    given, see the module notes), else on their k-NN graph."""
    m = groups.exemplars.size
    options = _level_options(options)
    if m <= MERGE_DENSE_MAX_CLUSTERS:
        indptr = np.arange(0, m * m + 1, m, dtype=np.int64)
        indices = np.tile(np.arange(m, dtype=np.int32), m)
        S = weighted_similarities(Xf, metric, groups, indptr, indices, preference).reshape(m, m)
        del indices
        diagonal = np.diagonal(S).copy()
        offset = None
        if n_clusters is not None:
            offset = diagonal - np.broadcast_to(preference, (Xf.shape[0],))[groups.exemplars]
        state = DenseMessageState(S, diagonal, preference_offset=offset,
                                  **_state_context(context))
        return _search.run_or_search(state, options, n_clusters=n_clusters, start=start)
    neighbors = _graph.kneighbors(
        Xf[groups.exemplars], max(context["n_neighbors"], MERGE_NEIGHBORS)
    )
    indptr, indices = _graph.symmetric_union(neighbors, with_self=True)
    del neighbors
    values = weighted_similarities(Xf, metric, groups, indptr, indices, preference)
    diagonal = np.empty(m, dtype=np.int64)
    sparse_graph.find_diagonal(indptr, indices, 0, diagonal)
    graph = _sparse.with_diagonal(indptr, indices, values, values[diagonal])
    del indptr, indices, values
    state = _sparse.SparseMessageState(graph, **_state_context(context))
    return _run.run(state, options)


def _state_context(context):
    return {name: context[name] for name in ("damping", "random_state", "n_threads")}


def refine_and_assign(Xf, metric, labels, groups, preference):
    """scikit-learn's final assignment, without the N x N matrix.

    In each cluster the member ``j`` with the largest ``sum_{i != j} s(i, j)
    + preference_j`` becomes the exemplar (the first such member); for
    ``-||.||^2`` that is the member nearest the cluster mean, for the cosine
    the one most aligned with the members' sum. Then every sample goes to
    its most similar exemplar.
    """
    n = labels.size
    sums = groups.sums[labels]
    if metric == "cosine":
        self_similarity = np.einsum("ij,ij->i", Xf, Xf)
        score = np.einsum("ij,ij->i", sums, Xf) - self_similarity
    else:
        difference = sums / groups.sizes[labels][:, None] - Xf
        score = -groups.sizes[labels] * np.einsum("ij,ij->i", difference, difference)
    score += np.broadcast_to(preference, (n,))
    order = np.lexsort((np.arange(n), -score, labels))
    first_of_cluster = np.r_[True, labels[order[1:]] != labels[order[:-1]]]
    exemplars = np.sort(order[first_of_cluster])
    if metric == "cosine":
        new_labels = np.empty(n, dtype=np.intp)
        for start in range(0, n, 65536):
            block = Xf[start : start + 65536] @ Xf[exemplars].T
            new_labels[start : start + 65536] = np.argmax(block, axis=1)
    else:
        from sklearn import config_context
        from sklearn.metrics import pairwise_distances_argmin

        with config_context(assume_finite=True):
            new_labels = pairwise_distances_argmin(Xf, Xf[exemplars])
    new_labels[exemplars] = np.arange(exemplars.size)
    return exemplars, new_labels


def merge_fragments(Xf, metric, labels, centers, preference, options, context,
                    n_clusters=None):
    """Merge the clusters of a sparse fit (see the module notes).

    ``context``: ``damping``, ``random_state``, ``n_threads`` and
    ``n_neighbors`` (of the sparse levels). Returns
    ``(cluster_centers_indices, labels, n_iter, converged, search_steps,
    preference, advice)``, with the iterations and convergence of all
    levels together; search_steps and preference are the search's (None
    without ``n_clusters``), advice that of the first level that did not
    converge (None if all did).
    """
    groups = Groups.of_samples(Xf, labels, centers)
    n_iter, converged, advice = 0, True, None
    steps = searched = None
    while groups.exemplars.size > 1:
        m = groups.exemplars.size
        last = m <= MERGE_DENSE_MAX_CLUSTERS
        with warnings.catch_warnings():
            # The caller warns once for the whole fit.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.filterwarnings("ignore", message="All samples have mutually equal")
            warnings.filterwarnings("ignore", message="No preference found")
            result = merge_level(
                Xf, metric, groups, preference, options, context,
                n_clusters=n_clusters if last else None, start=float(np.mean(preference)),
            )
        n_iter += result.n_iter
        converged &= bool(result.converged)
        advice = advice or result.advice
        if last and n_clusters is not None:
            steps, searched = result.search_steps, result.preference
        if result.cluster_centers_indices.size == 0:
            break  # AP on the clusters found no exemplar: keep them
        labels = result.labels[labels]
        groups = groups.merged(result.labels, result.cluster_centers_indices)
        if options.verbose:
            print(f"[fastap] merge level: {m} -> {groups.exemplars.size} clusters")
        if last or groups.exemplars.size == m:
            break
    centers, labels = refine_and_assign(Xf, metric, labels, groups, preference)
    return centers, labels, n_iter, converged, steps, searched, advice


# --------------------------------------------------------------------------
# The whole fit.
# --------------------------------------------------------------------------


def fit_nearest_neighbors(X, options, *, n_neighbors, metric, preference, preference_quantile,
                          merge, n_clusters, random_state, n_threads, warm_messages=None,
                          adaptive_damping=None):
    """Affinity Propagation on the k-NN graph of ``X``, merged (see the module notes).

    Parameters
    ----------
    X : ndarray (n_samples, n_features)
        Validated dense features.
    options : _run.RunOptions
    preference : ndarray (0-d or (n_samples,)) or None
        Validated; None: the median similarity of all pairs, or with
        ``preference_quantile`` that quantile of the off-diagonal pairs.
    merge : bool
    n_clusters : int or None
    random_state : numpy.random.RandomState
    warm_messages : tuple of two CSR matrices or None
        The previous fit's ``responsibility_`` and ``availability_``.

    Returns
    -------
    result : _run.RunResult
        In the input's numbering; messages as CSR matrices.
    affinity_matrix : scipy.sparse.csr_matrix
        The graph the messages ran on.
    preference : ndarray
        The preference used (the searched one for ``n_clusters``).
    """
    dtype = _sparse.similarity_dtype(X.dtype)
    n = X.shape[0]
    k = min(n_neighbors, max(n - 1, 0))
    _resources.check_sparse_memory(
        n, 2 * k * n + n, dtype, _resources.nearest_neighbors_fit_memory(n, k, dtype).bytes
    )
    started = time.perf_counter()
    Xf = _graph.features_for_metric(X, metric)
    seed = None
    if n > _graph.EXACT_MAX_SAMPLES:
        seed = random_state.randint(np.iinfo(np.int32).max)
    # The messages run on the samples renumbered for locality; results are
    # mapped back at the end.
    order, Xf, indptr, indices, values = _graph.locality_ordered_graph(Xf, k, metric, seed)
    values = values.astype(dtype, copy=False)
    if options.verbose:
        print(f"[fastap] {k}-nearest-neighbour graph: {indices.size} pairs, "
              f"{time.perf_counter() - started:.1f} s")
    if preference is None:
        q = 0.5 if preference_quantile is None else preference_quantile
        preference = np.asarray(quantile_of_all_pairs(
            Xf, metric, q, with_diagonal=preference_quantile is None,
            warn_ties=preference_quantile is not None and n_clusters is None), dtype=dtype)
    ordered_preference = preference[order] if preference.ndim == 1 else preference
    graph = _sparse.with_diagonal(indptr, indices, values, ordered_preference)  # in place
    del indptr, indices, values
    state = _sparse.SparseMessageState(
        graph, damping=options.damping, random_state=random_state, n_threads=n_threads,
        warm_messages=_sparse.warm_message_arrays(graph, warm_messages, order),
    )
    with warnings.catch_warnings():
        if merge:  # warned once for the whole fit, below
            warnings.simplefilter("ignore", category=ConvergenceWarning)
        result = _search.run_or_search(
            state, options, n_clusters=None if merge else n_clusters,
            adaptive_damping=adaptive_damping,
        )
    if merge:
        result = _merged(result, Xf, metric, graph, ordered_preference, options, n_clusters,
                         {"damping": options.damping, "random_state": random_state,
                          "n_threads": n_threads, "n_neighbors": k})
    if result.preference is not None:
        preference = np.asarray(result.preference)
    return _sparse.in_original_order(result, graph, order), _sparse.graph_matrix(
        graph, order), preference


def _merged(result, Xf, metric, graph, preference, options, n_clusters, context):
    """The first level's result with its clusters merged; ConvergenceWarning
    for the whole fit, with the advice of the first level that did not
    converge."""
    if result.cluster_centers_indices.size > 0:
        centers, labels, n_iter, converged, steps, searched, advice = merge_fragments(
            Xf, metric, result.labels, result.cluster_centers_indices,
            preference.astype(np.float64), options, context, n_clusters=n_clusters,
        )
        result.cluster_centers_indices, result.labels = centers, labels
        result.n_iter += n_iter
        if result.converged and not converged:
            result.advice = f"Merging the fragments did not converge: {advice}"
        result.converged = result.converged and converged
        result.search_steps, result.preference = steps, searched
        if result.membership_confidence is not None:
            # The messages are about the fragments, not the merged clusters.
            result.membership_confidence = np.full(graph.n, np.nan)
        if n_clusters is not None and centers.size != n_clusters:
            warnings.warn(
                f"No preference found that gives {n_clusters} clusters; using the closest: "
                f"{centers.size} clusters.", UserWarning,
            )
    _run.warn_if_not_converged(result.cluster_centers_indices, result.converged, result.advice)
    return result
