"""``fastap.dask.AffinityPropagation``: the estimator on a Dask cluster.

As the Dask interfaces of LightGBM and XGBoost: the single-machine
estimator's parameters plus ``client`` and a partitioning option; ``fit``
takes a NumPy array or a row-chunked dask array; the fitted attributes are
NumPy arrays on the client; ``predict`` is the single machine's.
"""

from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from fastap._estimator import AffinityPropagation as _SingleMachineAffinityPropagation
from fastap._estimator import FitOutcome
from fastap._kernels.noise import counter_noise_seed
from fastap._preference import warn_if_quantile_in_tie
from fastap._search import run_or_search
from fastap._similarity import check_square, similarity_dtype, validated_preference
from fastap._sparse import canonical_csr
from fastap.dask._cluster import start_blocks
from fastap.dask._sparse_block import SparseRowBlock
from fastap.dask._sparse_state import (
    SparseBlockMessageState,
    stored_median_of_blocks,
    stored_quantile_of_blocks,
)
from fastap.dask._state import (
    SEGMENT_COLUMNS,
    BlockMessageState,
    even_bounds,
    median_of_blocks,
    off_diagonal_quantile_of_blocks,
    off_diagonal_tie_of_blocks,
    place_preference,
)

_SKLEARN_NOISE_MESSAGE = (
    "noise='sklearn' draws scikit-learn's degeneracy noise as one serial RandomState stream "
    "over the N x N similarities, which cannot be drawn block by block on the workers "
    "without replaying the whole stream on each. The distributed engine uses noise='counter' "
    "(a pure function of (random_state, i, k)); fastap.AffinityPropagation(noise='counter') "
    "gives bitwise the same result on one machine."
)


def _fill(blocks, method, arguments_of_block):
    """Call ``method(*arguments_of_block(p))`` on every block; on any
    failure (Ctrl-C included) the blocks are released before it propagates."""
    try:
        blocks.results([
            blocks.call(p, method, *arguments_of_block(p)) for p in range(len(blocks))
        ])
    except BaseException:
        blocks.close()
        raise


def _is_dask_array(X):
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - fastap.dask needs dask
        return False
    return isinstance(X, da.Array)


class AffinityPropagation(_SingleMachineAffinityPropagation):
    """Affinity Propagation on a Dask cluster: exact, not an approximation.

    The samples are cut into contiguous row blocks, one per worker (or
    ``n_blocks``); each worker holds its block's rows of the similarities
    ``S`` and the messages ``R`` and ``A`` (three ``n_rows x N`` arrays) in
    a Dask actor and updates them in place with fastap's kernels. One
    iteration exchanges O(N) values: the column sums of ``max(R, 0)`` pass
    from block to block in a fixed order, so the result does not depend on
    the number of blocks, and with ``random_state`` fixed it is bitwise the
    result of ``fastap.AffinityPropagation(noise="counter")`` on one machine
    (on the same ``S``; from features, BLAS may round a block's product in
    the last bit differently).

    A sparse similarity graph (a SciPy sparse matrix with
    ``affinity="precomputed"``, with the single machine's meaning: a pair
    not stored is never an exemplar of that sample) runs the same way on
    its stored pairs: each block holds its rows' pairs with their ``R`` and
    ``A``, the default preference is the exact median of the stored values
    (``preference_quantile``: of the stored off-diagonal ones), selected
    over the blocks; the result equals the single machine's sparse fit with
    ``noise="counter"`` bitwise. The graph is validated and cut into row
    blocks on the client, so it must fit there; its blocks are sent to the
    workers (a dask array of sparse chunks is not supported).

    Parameters
    ----------
    damping, max_iter, convergence_iter, copy, preference, affinity, verbose, \
random_state, record_history, callback, callback_every
        As in :class:`fastap.AffinityPropagation`. ``affinity`` is
        ``"euclidean"``, ``"cosine"`` or ``"precomputed"``.
    preference_quantile : float, default=None
        As in :class:`fastap.AffinityPropagation`: exactly the single
        machine's quantile of the off-diagonal similarities, found by radix
        selection over the blocks.
    n_clusters : int, default=None
        As in :class:`fastap.AffinityPropagation`: the same search, step for
        step. Its bracket (``preference_range``) and start (the median
        off-diagonal similarity) are computed exactly over the blocks, and
        a warm step shifts every block's messages (and its copy of the
        column sums) to the new preference as the single machine's kernels
        shift its matrices.
    keep_messages : bool, default=False
        As in :class:`fastap.AffinityPropagation`: ``responsibility_`` and
        ``availability_`` (on a sparse graph: CSR matrices over its pairs)
        and ``membership_confidence_`` (computed on the blocks). The
        messages are gathered to the client when the fit ends: two N x N
        matrices, which the fit refuses up front (MemoryError naming their
        size) when the client's machine does not have that much memory
        available.
    warm_start : bool, default=False
        As in :class:`fastap.AffinityPropagation`: the messages are kept (and
        gathered, as with ``keep_messages``), and the next fit on as many
        samples sends each block its rows of them and continues from there.
        Supported because it takes little code beyond ``keep_messages``
        (the blocks take their rows; a graph's blocks check its pairs).
        Unlike on one machine the kept matrices are not updated in place:
        the next fit replaces them when it ends.
    n_jobs, n_neighbors, metric, merge_fragments
        Accepted for compatibility, without effect (a block's kernels use
        as many threads as its worker has).
    noise : {"counter"}, default="counter"
        The degeneracy noise (see :mod:`fastap._kernels.noise`); the
        single machine's serial ``"sklearn"`` stream is not available here.
    client : distributed.Client, default=None
        None: the current client (``distributed.get_client()``).
    n_blocks : int, default=None
        Row blocks (None: one per worker; for a precomputed dask array, its
        row chunks). Blocks are placed on the workers in turn.
    segment_columns : int, default=65536
        Longest column segment of the column-sum pipeline.
    timeout : float, default=None
        Seconds any one call to a block may take before the fit is
        abandoned with an error (None: no limit; a lost worker is reported
        at once without it).

    Attributes
    ----------
    cluster_centers_indices_, labels_, n_iter_, converged_, preference_, \
damping_, cluster_centers_, n_features_in_, history_, preference_search_, \
responsibility_, availability_, membership_confidence_
        As in :class:`fastap.AffinityPropagation`, NumPy arrays on the
        client (``labels_`` is 8 bytes per sample: 0.8 GB at 10**8).
        ``affinity_matrix_`` is not kept: ``S`` lives on the workers only
        during the fit.
    n_blocks_ : int
        Row blocks the fit used.

    Notes
    -----
    Memory: each worker holds ``3 * n_rows * N * itemsize`` bytes for its
    blocks (checked against its memory limit before allocating), the
    client O(N) (plus ``X`` for features, sent to every worker; plus the
    two gathered N x N message matrices with ``keep_messages`` or
    ``warm_start``). On a sparse graph: about ``3 * itemsize + 8`` bytes per
    stored pair of the worker's blocks, and the whole graph on the client
    during ``fit``. The blocks are released when ``fit`` returns or raises
    (Ctrl-C included), not when Python's garbage collector next runs, so
    fits in a row (a new preference in a notebook) need no more memory on
    the workers than one fit.

    Not available on Dask: ``noise="sklearn"`` (one serial stream over N x N
    values), sparse features and dask arrays of sparse chunks, and
    :meth:`exemplar_hierarchy` (it needs ``S`` on the client), each refused
    with its reason; ``affinity="nearest_neighbors"`` and callables are not
    among the accepted values.
    """

    _parameter_constraints: dict = {
        **_SingleMachineAffinityPropagation._parameter_constraints,
        "affinity": [StrOptions({"euclidean", "precomputed", "cosine"})],
        "noise": [StrOptions({"counter", "sklearn"})],
        "client": "no_validation",
        "n_blocks": [Interval(Integral, 1, None, closed="left"), None],
        "segment_columns": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        *,
        damping=0.5,
        max_iter=200,
        convergence_iter=15,
        copy=True,
        preference=None,
        affinity="euclidean",
        verbose=False,
        random_state=None,
        n_jobs=None,
        preference_quantile=None,
        n_clusters=None,
        warm_start=False,
        keep_messages=False,
        record_history=False,
        callback=None,
        callback_every=1,
        n_neighbors=30,
        metric="euclidean",
        merge_fragments="auto",
        noise="counter",
        client=None,
        n_blocks=None,
        segment_columns=SEGMENT_COLUMNS,
        timeout=None,
    ):
        self.damping = damping
        self.max_iter = max_iter
        self.convergence_iter = convergence_iter
        self.copy = copy
        self.preference = preference
        self.affinity = affinity
        self.verbose = verbose
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.preference_quantile = preference_quantile
        self.n_clusters = n_clusters
        self.warm_start = warm_start
        self.keep_messages = keep_messages
        self.record_history = record_history
        self.callback = callback
        self.callback_every = callback_every
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.merge_fragments = merge_fragments
        self.noise = noise
        self.client = client
        self.n_blocks = n_blocks
        self.segment_columns = segment_columns
        self.timeout = timeout

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self.affinity == "precomputed"
        return tags

    def _check_distributed_options(self):
        if self.noise == "sklearn":
            raise ValueError(_SKLEARN_NOISE_MESSAGE)
        self._check_option_combinations()

    def _get_client(self):
        if self.client is not None:
            return self.client
        from distributed import get_client

        try:
            return get_client()
        except ValueError as error:
            raise ValueError(
                "No Dask client: pass client=... or create one first, e.g. "
                "distributed.Client(distributed.LocalCluster())."
            ) from error

    def fit(self, X, y=None):
        """Fit the clustering on the cluster.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features), or \
(n_samples, n_samples) with ``affinity="precomputed"``
            Samples, or similarities. A dask array of samples is computed
            to the client (N x n_features) and sent to every worker; a
            dask array of similarities stays on the workers: its row chunks
            become the blocks (rechunked to whole rows, or to ``n_blocks``).
            With ``affinity="precomputed"`` also a SciPy sparse matrix or
            array (a similarity graph, on the client; see the class notes).
        y : Ignored

        Returns
        -------
        self
        """
        self._validate_params()
        self._check_distributed_options()
        graph = self._check_sparse_input(X)
        client = self._get_client()
        blocks, bounds, dtype, X_features = self._start(client, X)
        try:
            result, preference = self._run_on_blocks(blocks, bounds, np.dtype(dtype), graph, X)
        finally:
            blocks.close()
        # No N x N affinity_matrix_ is gathered; the messages are, when asked for.
        self._store(FitOutcome(result, None, preference, X_features))
        self.n_blocks_ = len(bounds) - 1
        return self

    def _run_on_blocks(self, blocks, bounds, dtype, graph, X):
        """The preference placed, the run (or the ``n_clusters`` search) on
        the blocks; ``(result, preference)``, the messages gathered when
        asked for (CSR matrices on a graph, as on one machine)."""
        n_samples = int(bounds[-1])
        self._check_n_clusters(n_samples)
        preference = None
        if self.n_clusters is None or n_samples == 1 or self.preference is not None or (
            self.preference_quantile is not None
        ):
            preference = self._preference_on(blocks, bounds, dtype, graph)
        # The search puts every step's preference on the diagonal itself.
        placed = np.asarray(dtype.type(0)) if preference is None else preference
        place_preference(blocks, bounds, placed, dtype)
        warm = self._kept_messages(n_samples, dtype, graph)
        # As on one machine, damping="auto" continues from damping_ when kept
        # messages are there (on a graph: even if their pairs differ).
        options = self._run_options(
            warm=(self._warm_messages() if graph else warm) is not None
        )
        state_class = SparseBlockMessageState if graph else BlockMessageState
        state = state_class(
            blocks, bounds, dtype, placed, options.damping,
            counter_noise_seed(self.random_state), segment_columns=self.segment_columns,
            warm_messages=warm,
        )
        if options.keep_messages:
            state.check_messages_fit()  # before the fit, not only before gathering
        # As on one machine: a search starts at the preference given (or its
        # quantile), else where the search chooses.
        start = None if preference is None else preference[()]
        result = run_or_search(state, options, n_clusters=self.n_clusters, start=start)
        if result.preference is not None:
            preference = np.asarray(result.preference)
        if graph and result.messages is not None:
            result.messages = state.message_matrices(result.messages, like=X)
        return result, preference

    def _kept_messages(self, n_samples, dtype, graph):
        """The previous fit's messages when ``warm_start`` continues from
        them (as on one machine: of this size and dtype; on a graph, CSR
        matrices whose pairs the blocks check), else None."""
        warm = self._warm_messages()
        if warm is None or not graph:
            return None if warm is None else self._dense_warm_messages(n_samples, dtype)
        if not all(sparse.issparse(matrix) and matrix.shape == (n_samples, n_samples)
                   and matrix.dtype == dtype for matrix in warm):
            return None
        R, A = (sparse.csr_matrix(matrix) for matrix in warm)
        R, A = (m if m.has_sorted_indices else m.sorted_indices() for m in (R, A))
        if not (np.array_equal(R.indptr, A.indptr) and np.array_equal(R.indices, A.indices)):
            return None
        return R, A

    def _check_sparse_input(self, X):
        """Whether ``X`` is a sparse graph (refusing what Dask cannot take)."""
        if _is_dask_array(X) and sparse.issparse(getattr(X, "_meta", None)):
            raise ValueError(
                "A dask array of sparse chunks is not supported by fastap.dask; pass the "
                "similarity graph as a SciPy sparse matrix (it must fit on the client)."
            )
        if not sparse.issparse(X):
            return False
        if self.affinity != "precomputed":
            raise ValueError(
                f"Sparse input with affinity={self.affinity!r}: fastap.dask takes sparse "
                "input only as a precomputed similarity graph (affinity='precomputed'); "
                "sparse features are not supported on Dask."
            )
        return True

    def _start(self, client, X):
        """Blocks on the workers holding their rows of ``S``:
        ``(blocks, bounds, dtype, X)`` (``X`` validated features, or None)."""
        if sparse.issparse(X):
            return self._start_from_sparse_graph(client, X)
        if self.affinity == "precomputed" and _is_dask_array(X):
            return self._start_from_dask_similarities(client, X)
        if _is_dask_array(X):
            X = X.compute()
        if self.affinity == "precomputed":
            check_square(np.shape(X))
            S = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
            check_square(S.shape)
            dtype = similarity_dtype(S.dtype)
            bounds = self._bounds(S.shape[0], client)
            blocks = start_blocks(client, bounds, dtype, timeout=self.timeout)
            _fill(blocks, "set_similarities", lambda p: (S[bounds[p]:bounds[p + 1]],))
            return blocks, bounds, dtype, None
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        dtype = similarity_dtype(X.dtype)
        bounds = self._bounds(X.shape[0], client)
        blocks = start_blocks(client, bounds, dtype, timeout=self.timeout)
        features = np.asarray(X, dtype=np.float64)
        _fill(blocks, "compute_similarities", lambda p: (features, self.affinity))
        return blocks, bounds, dtype, X

    def _bounds(self, n_samples, client):
        n_blocks = self.n_blocks or len(client.scheduler_info(n_workers=-1)["workers"])
        return even_bounds(n_samples, max(1, n_blocks))

    def _start_from_dask_similarities(self, client, S):
        from dask.core import flatten
        from distributed import Future, futures_of, wait

        check_square(S.shape)
        if S.ndim != 2 or S.shape[0] == 0:
            raise ValueError(f"Expected a 2-d array of similarities, got shape {S.shape}.")
        dtype = similarity_dtype(S.dtype)
        n_samples = S.shape[0]
        if self.n_blocks is not None:
            bounds = even_bounds(n_samples, self.n_blocks)
            S = S.rechunk((tuple(np.diff(bounds)), (n_samples,)))
        else:
            S = S.rechunk({1: -1})
            bounds = np.r_[0, np.cumsum(S.chunks[0])].astype(np.int64)
        S = client.persist(S)
        futures = [Future(key, client) for key in flatten(S.__dask_keys__())]
        try:
            wait(futures, timeout=self.timeout)
            who_has = client.who_has(futures)
            workers = [sorted(who_has[future.key])[0] for future in futures]
            self.n_features_in_ = n_samples
            blocks = start_blocks(
                client, bounds, dtype, workers=workers, row_chunks=futures, timeout=self.timeout
            )
            _fill(blocks, "check_similarities", lambda p: ())
        finally:
            # The blocks hold copies of their rows: the persisted chunks go
            # now, even while a traceback still refers to S (an error).
            for future in [*futures_of(S), *futures]:
                future.release()
        return blocks, bounds, dtype, None

    def _start_from_sparse_graph(self, client, X):
        """A sparse graph validated and made canonical on the client (the
        single machine's ``canonical_csr``: sorted rows, duplicates refused,
        float32 or float64), its row blocks sent to SparseRowBlock actors."""
        # COO is kept so that its duplicates are seen (as on one machine).
        X = validate_data(self, X, accept_sparse=["csr", "csc", "coo"], dtype="numeric")
        indptr, indices, data = canonical_csr(X)
        bounds = self._bounds(X.shape[0], client)
        starts = indptr[bounds]
        pairs = np.diff(starts) + np.diff(bounds)  # the diagonals, if inserted
        blocks = start_blocks(
            client, bounds, data.dtype, timeout=self.timeout, block_class=SparseRowBlock,
            block_options=[{"n_pairs": int(n_pairs)} for n_pairs in pairs],
        )
        _fill(blocks, "set_graph", lambda p: (
            indptr[bounds[p]:bounds[p + 1] + 1] - starts[p],
            indices[starts[p]:starts[p + 1]], data[starts[p]:starts[p + 1]],
        ))
        return blocks, bounds, data.dtype, None

    def _preference_on(self, blocks, bounds, dtype, graph=False):
        if self.preference is not None:
            return validated_preference(self.preference, int(bounds[-1]), dtype)
        # As on one machine, a quantile on a wide tie is warned about
        # (unless it only starts an n_clusters search).
        warn_ties = self.n_clusters is None
        if graph and self.preference_quantile is not None:
            return np.asarray(stored_quantile_of_blocks(
                blocks, dtype, self.preference_quantile, warn_ties=warn_ties
            ))
        if graph:
            return np.asarray(stored_median_of_blocks(blocks, bounds, dtype))
        if self.preference_quantile is not None and bounds[-1] > 1:
            q = self.preference_quantile
            value = off_diagonal_quantile_of_blocks(blocks, bounds, dtype, q)
            if warn_ties:
                warn_if_quantile_in_tie(q, value, off_diagonal_tie_of_blocks(
                    blocks, bounds, dtype, value))
            return np.asarray(value)
        return np.asarray(median_of_blocks(blocks, bounds, dtype))

    def exemplar_hierarchy(self, self_similarity=None):
        raise NotImplementedError(
            "exemplar_hierarchy needs the similarity matrix, which the distributed engine does "
            "not keep on the client; fit fastap.AffinityPropagation on one machine for it."
        )
