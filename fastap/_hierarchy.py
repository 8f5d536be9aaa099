"""A hierarchy over Affinity Propagation's clusters (R's ``aggExCluster``).

After an AP fit, :func:`exemplar_hierarchy` merges its clusters step by step
by the exemplar-based objective (see ``_kernels/hierarchy.py``) into a
SciPy linkage matrix, so ``scipy.cluster.hierarchy.dendrogram`` draws it and
:meth:`ExemplarHierarchy.cut` gives any coarser clustering with exemplars.
"""

from dataclasses import dataclass

import numpy as np

from fastap._kernels import hierarchy


@dataclass(frozen=True)
class ExemplarHierarchy:
    """Merges of exemplar-based agglomeration over a clustering.

    Attributes
    ----------
    linkage : ndarray of shape (n_clusters - 1, 4)
        SciPy linkage matrix over the initial clusters (leaves ``0 ..
        n_clusters - 1`` in label order): merged nodes, height, leaf count.
        Heights are the negated merge objectives made non-decreasing
        (running maximum) and shifted to start at 0, as SciPy's tools
        expect; the raw values are in ``objectives``.
    objectives : ndarray of shape (n_clusters - 1,)
        Objective of each merge (a similarity: larger merged first, usually
        decreasing).
    exemplars : ndarray of shape (2 * n_clusters - 1,)
        Exemplar (sample index) of every node: the initial exemplars, then
        that of each merge.
    labels : ndarray of shape (n_samples,)
        The initial clustering.
    """

    linkage: np.ndarray
    objectives: np.ndarray
    exemplars: np.ndarray
    labels: np.ndarray

    @property
    def n_leaves(self):
        """Number of initial clusters."""
        return self.linkage.shape[0] + 1

    def cut(self, n_clusters):
        """Labels and exemplars after merging down to ``n_clusters`` clusters.

        Parameters
        ----------
        n_clusters : int
            Between 1 and the number of initial clusters.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster of every sample, numbered in the order of ``exemplars``.
        exemplars : ndarray of shape (n_clusters,)
            Sample index of each cluster's exemplar, ascending.
        """
        n_leaves = self.n_leaves
        if not 1 <= n_clusters <= n_leaves:
            raise ValueError(f"n_clusters must be between 1 and {n_leaves}; got {n_clusters}.")
        # Replay the first n_leaves - n_clusters merges: each leaf follows
        # its chain of parents up to the last node made.
        top = np.arange(2 * n_leaves - 1)
        n_merges = n_leaves - n_clusters
        for m in range(n_merges):
            a, b = self.linkage[m, :2].astype(np.intp)
            top[a] = top[b] = n_leaves + m
        root_of_leaf = np.arange(n_leaves)
        for leaf in range(n_leaves):
            node = leaf
            while top[node] != node:
                node = top[node]
            root_of_leaf[leaf] = node
        roots = np.unique(root_of_leaf)
        exemplars = self.exemplars[roots]
        order = np.argsort(exemplars, kind="stable")
        rank_of_root = np.empty(roots.size, dtype=np.intp)
        rank_of_root[order] = np.arange(roots.size)
        cluster_of_leaf = rank_of_root[np.searchsorted(roots, root_of_leaf)]
        return cluster_of_leaf[self.labels], exemplars[order]


def exemplar_hierarchy(S, labels, cluster_centers_indices, *, self_similarity=0.0):
    """Exemplar-based agglomerative clustering on top of a clustering.

    As R's ``aggExCluster(s, x)`` for an AP result ``x``: starting from the
    given clusters, merge the two whose union has the best exemplar by the
    balanced average similarity (``0.5 * (mean_{i in I} S(i, x) + mean_{j in
    J} S(j, x))``, maximized over ``x`` in the union), until one is left.

    Parameters
    ----------
    S : ndarray of shape (n_samples, n_samples)
        Similarities (larger is more similar). The diagonal is not read.
    labels : ndarray of shape (n_samples,)
        Cluster of each sample, ``0 .. K-1`` (no ``-1``).
    cluster_centers_indices : ndarray of shape (K,)
        Exemplar of each cluster.
    self_similarity : float, default=0.0
        A sample's similarity to itself: 0 for negative squared distances,
        1 for cosine similarities.

    Returns
    -------
    ExemplarHierarchy

    Notes
    -----
    Time O(K n + K^2) per merge in the worst case, memory O(K n + K^2).

    References
    ----------
    U. Bodenhofer, A. Kothmeier and S. Hochreiter, "APCluster: an R package
    for affinity propagation clustering", Bioinformatics 27 (2011).
    """
    S = np.ascontiguousarray(S)
    if S.dtype not in (np.float32, np.float64):
        S = S.astype(np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    centers = np.asarray(cluster_centers_indices, dtype=np.int64)
    n = S.shape[0]
    K = centers.size
    if S.ndim != 2 or S.shape != (n, n) or labels.shape != (n,):
        raise ValueError("S must be square and labels must have one entry per row of S.")
    if K == 0 or labels.min() < 0 or labels.max() >= K:
        raise ValueError("labels must number the clusters 0 .. K-1 (no -1: fit did not converge?).")
    sums = np.empty((K, n), dtype=np.float64)
    hierarchy.cluster_column_sums(S, labels, float(self_similarity), sums)
    merged_nodes = np.empty((max(K - 1, 0), 2), dtype=np.int64)
    objectives = np.empty(max(K - 1, 0), dtype=np.float64)
    merged_exemplars = np.empty(max(K - 1, 0), dtype=np.int64)
    if K > 1:
        hierarchy.agglomerate(sums, labels, merged_nodes, objectives, merged_exemplars)
    heights = np.maximum.accumulate(-objectives) if K > 1 else objectives
    if heights.size:
        heights = heights - heights[0]
    counts = np.ones(2 * K - 1)
    for m in range(K - 1):
        counts[K + m] = counts[merged_nodes[m, 0]] + counts[merged_nodes[m, 1]]
    linkage = np.column_stack(
        [merged_nodes.astype(np.float64), heights, counts[K:]]
    ) if K > 1 else np.empty((0, 4))
    exemplars = np.concatenate([centers, merged_exemplars])
    return ExemplarHierarchy(linkage, objectives, exemplars, labels)
