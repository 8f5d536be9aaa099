"""The distributed engine on a sparse similarity graph.

:class:`SparseBlockMessageState` is :class:`fastap.dask._state.BlockMessageState`
over :class:`fastap.dask._sparse_block.SparseRowBlock` blocks: the exchange
is the dense engine's, unchanged (every block's row pass; the column sums of
``max(R, 0)`` over the stored pairs passed block 0 -> P-1 in column
segments, so they are added in the single machine's order whatever P; the
totals back to every block, exemplar flags out). What differs is what a
sparse graph means (``fastap/_sparse.py``): the equal-similarities shortcut
only on a complete graph, isolated samples, the assignment on stored pairs
(``_sparse.assign_stored_clusters``, with the blocks doing its two row
operations) and the net similarity's sum.

With ``noise="counter"`` (the only noise here) a fit equals
``fastap.AffinityPropagation(affinity="precomputed", noise="counter")`` on
the same graph bitwise, for any P: the same noise on every stored pair, the
same kernels on the rows, every sum in the same order.
"""

import numpy as np
from scipy import sparse

from fastap._kernels.setup import key_to_value
from fastap._preference import warn_if_quantile_in_tie
from fastap._sparse import assign_stored_clusters
from fastap.dask._state import (
    SEGMENT_COLUMNS,
    BlockMessageState,
    median_of_blocks,
    select_key_of_blocks,
    tie_of_blocks,
)


class SparseBlockMessageState(BlockMessageState):
    """Affinity Propagation's messages over the stored pairs of row blocks.

    Parameters are :class:`BlockMessageState`'s; the blocks hold their rows
    with the preferences placed (``_state.place_preference``).
    """

    def __init__(self, blocks, bounds, dtype, preference, damping, seed,
                 segment_columns=SEGMENT_COLUMNS, warm_messages=None):
        super().__init__(blocks, bounds, dtype, preference, damping, seed,
                         segment_columns=segment_columns, warm_messages=warm_messages)
        summaries = self._call_all("graph_summary")
        self.block_pairs = [n_pairs for n_pairs, _ in summaries]
        self.n_pairs = sum(self.block_pairs)
        self.isolated_samples = np.concatenate([isolated for _, isolated in summaries])
        self._call_all("set_isolated", self.isolated_samples)

    def _carries_partial_sums(self):
        return False  # every stored pair goes straight into the float64 running sums

    def equal_similarities(self):
        """The single machine's shortcut on a complete graph only (on
        another one "one cluster" could pair samples that store no pair)."""
        n = self.n_samples
        if n == 1:
            return False
        if self.n_pairs != n * n or not np.all(self.preference == self.preference.flat[0]):
            return None
        common = self.blocks.call(0, "first_off_diagonal").result()
        if not all(self._call_all("off_diagonal_all_equal", common)):
            return None
        return bool(self.preference.flat[0] > common)

    def preference_range(self):
        """The single machine's (``_sparse.SparseMessageState.
        preference_range``): the dense range on a complete graph, else the
        bracket ``((n - 1) min - (n - 2) high, high)`` of the stored
        off-diagonal values, from each block's extremes."""
        if self.n_pairs == self.n_samples * self.n_samples:
            return super().preference_range()
        extremes = [found for found in self._call_all("off_diagonal_extremes") if found[0]]
        if not extremes:
            return 0.0, 0.0
        n = self.n_samples
        high = float(max(largest for _, _, largest in extremes))
        smallest = min(smallest for _, smallest, _ in extremes)
        return float((n - 1) * float(smallest) - (n - 2) * high), high

    def similarity_quantile(self, q):
        """The q-quantile of the stored off-diagonal values (``_sparse.
        stored_quantile``), exactly; the blocks then drop the values they
        presented for it."""
        try:
            return stored_quantile_of_blocks(self.blocks, self.dtype, q)
        finally:
            self._call_all("drop_selection")

    def _gathered_shape(self):
        return (self.n_pairs,)

    def _send_messages(self, R, A):
        """Each block's rows of the CSR matrices ``R`` and ``A`` (sorted, in
        the caller's format); None unless every block stores those pairs."""
        futures = []
        for p in range(len(self.blocks)):
            rows = slice(self.bounds[p], self.bounds[p + 1])
            R_rows, A_rows = R[rows], A[rows]
            futures.append(self.blocks.call(
                p, "set_messages", R_rows.indptr, R_rows.indices, R_rows.data, A_rows.data
            ))
        flags = self.blocks.results(futures)
        return None if any(block_flags is None for block_flags in flags) else flags

    def message_matrices(self, messages, like=None):
        """The gathered ``(R, A)`` values as CSR matrices over the graph's
        pairs (diagonals inserted), as the single machine returns them (a
        CSR array when ``like`` is a sparse array)."""
        structures = self._call_all("structure")
        indices = np.concatenate([block_indices for _, block_indices in structures])
        starts = np.cumsum([0] + self.block_pairs)
        indptr = np.concatenate(
            [[0]] + [indptr[1:] + start for (indptr, _), start in zip(structures, starts)]
        ).astype(np.int64)
        container = sparse.csr_array if isinstance(like, sparse.sparray) else sparse.csr_matrix
        shape = (self.n_samples, self.n_samples)
        return tuple(container((values, indices, indptr), shape=shape) for values in messages)

    def membership_confidence(self, cluster_centers_indices, labels):
        """The single machine's margin on stored pairs (``_sparse.
        SparseMessageState.membership_confidence``), by blocks."""
        self.complete_availability()
        n = self.n_samples
        margin = np.full(n, np.nan)
        flags = self._message_flags()
        centers = np.asarray(cluster_centers_indices, dtype=np.intp)
        if centers.size == 0 or int(flags.sum()) != centers.size:
            return margin
        nearest = np.concatenate(
            self._call_all("nearest_stored_exemplar", flags, np.arange(n))
        )
        message_exemplar_of_cluster = nearest[centers]
        if np.any(message_exemplar_of_cluster < 0):
            return margin
        assigned = message_exemplar_of_cluster[labels]
        futures = [
            self.blocks.call(p, "stored_evidence_margin", flags, self._rows_of(assigned, p))
            for p in range(len(self.blocks))
        ]
        return np.concatenate(self.blocks.results(futures))

    def assign(self, is_exemplar=None):
        """``(cluster_centers_indices, labels)`` as the single machine assigns
        on stored pairs: a sample storing no pair with any exemplar becomes
        one; the within-cluster column sums travel block to block in row
        order."""
        flags = self.is_exemplar if is_exemplar is None else is_exemplar

        def nearest(flags, exemplar_label):
            return np.concatenate(
                self._call_all("nearest_stored_exemplar", flags, exemplar_label)
            )

        def add_within_cluster_sums(labels, sums, members):
            running = (sums, members)
            for p in range(len(self.blocks)):
                running = self.blocks.call(p, "add_within_cluster_sums", labels, *running).result()
            sums[:], members[:] = running

        return assign_stored_clusters(
            self.n_samples, self.dtype, np.asarray(flags, dtype=bool), nearest,
            add_within_cluster_sums,
        )

    def net_similarity(self):
        """The single machine's objective on stored pairs (``-inf`` while a
        sample stores no pair with any exemplar; NaN without exemplars),
        summed as it sums it."""
        if not self.is_exemplar.any():
            return np.nan
        values = np.concatenate(self._call_all("best_exemplar_similarity", self.is_exemplar))
        return float(np.sum(values))


# --------------------------------------------------------------------------
# The preference, selected over the blocks (the graph is never gathered).
# --------------------------------------------------------------------------


def _present(blocks, which):
    """Every block presents its ``which`` values; their numbers."""
    return blocks.results([blocks.call(p, "select_from", which) for p in range(len(blocks))])


def stored_median_of_blocks(blocks, bounds, dtype):
    """Exactly ``_sparse.default_preference``: ``np.median`` of the stored
    values (a stored diagonal included), 0 when nothing is stored; the
    dense engine's selection (``_state.median_of_blocks``) over them."""
    dtype = np.dtype(dtype)
    sizes = _present(blocks, "stored")
    if sum(sizes) == 0:
        return dtype.type(0)
    return median_of_blocks(blocks, bounds, dtype, sizes)


def stored_quantile_of_blocks(blocks, dtype, q, warn_ties=False):
    """Exactly ``_sparse.stored_quantile``: ``np.quantile`` (linear) of the
    stored off-diagonal values, 0 when there is none; the two neighbouring
    order statistics by radix selection over the blocks, then NumPy's own
    interpolation between them (as ``_state.off_diagonal_quantile_of_blocks``);
    ``warn_ties``: as on one machine, warn when it lands on a wide tie."""
    dtype = np.dtype(dtype)
    n_values = sum(_present(blocks, "off_diagonal"))
    if n_values == 0:
        return dtype.type(0)
    virtual_index = (n_values - 1) * q
    lower = min(int(np.floor(virtual_index)), n_values - 1)
    upper = min(lower + 1, n_values - 1)
    width = dtype.itemsize * 8
    low, high = (
        key_to_value(select_key_of_blocks(blocks, width, rank, False), dtype)
        for rank in (lower, upper)
    )
    value = dtype.type(np.quantile(np.array([low, high], dtype=dtype), virtual_index - lower))
    if warn_ties:
        warn_if_quantile_in_tie(q, value, tie_of_blocks(blocks, dtype, value, n_values),
                                what="stored off-diagonal similarities")
    return value
