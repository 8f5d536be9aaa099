"""scikit-learn conventions: the estimator and the function.

Parameters, their validation, dispatch to a runner and attribute storage
live here; no loop over matrix elements does (those are in ``_kernels/``,
driven by the engines ``_dense.py`` and ``_sparse.py`` through ``_run.py``).
"""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fastap import _cold_start, _numpy_engine, _preference, _resources, _run
from fastap._compact import CompactMessageState
from fastap._dense import DenseMessageState, MessageMatrices
from fastap._kernels import noise, setup
from fastap._lean import LeanMessageState
from fastap._neighbors import check_dense_features, fit_nearest_neighbors
from fastap._search import run_or_search
from fastap._similarity import (
    check_square,
    similarities,
    similarity_dtype,
    validated_preference,
)
from fastap._sparse import canonical_csr, fit_graph

_FLOAT_DTYPES = [np.float64, np.float32]


class FitOutcome(NamedTuple):
    """A fit's outcome before it becomes attributes."""

    result: _run.RunResult
    affinity_matrix: object
    preference: np.ndarray
    X: object


class AffinityPropagation(ClusterMixin, BaseEstimator):
    """Perform Affinity Propagation Clustering of data, fast.

    A drop-in replacement for :class:`sklearn.cluster.AffinityPropagation`:
    same parameters, attributes, warnings and, for float64 input, the same
    clusters and number of iterations, computed by parallel Numba kernels
    that update the messages in place. float32 input of more than 2,000
    samples runs in float32 from end to end (half the memory of float64, a
    quarter of scikit-learn's); smaller float32 problems run in float64.

    Parameters
    ----------
    damping : float or "auto", default=0.5
        Damping factor in the range `[0.5, 1.0)` is the extent to which the
        current value is maintained relative to incoming values (weighted
        1 - damping), to avoid numerical oscillations of the messages.
        ``"auto"`` (fastap): start at 0.5 and raise the damping by 0.05, up
        to 0.95, whenever the exemplar set keeps flipping (changes in at
        least half of a 30-iteration window; after Wang et al., 2007); the
        damping reached is ``damping_``. Raise ``max_iter`` with it.

    max_iter : int, default=200
        Maximum number of iterations.

    convergence_iter : int, default=15
        Number of iterations with no change in the set of exemplars that
        stops the convergence.

    copy : bool, default=True
        Make a copy of input data. With ``copy=False`` and a C-ordered
        float32 or float64 precomputed matrix, the matrix is modified in
        place (it becomes ``affinity_matrix_``), as in scikit-learn (not a
        float32 matrix of at most 2,000 samples, which is fitted in float64).

    preference : array-like of shape (n_samples,) or float, default=None
        Preferences for each point: points with larger values are more
        likely to be chosen as exemplars. The number of exemplars, i.e. of
        clusters, is influenced by the input preferences value. If None,
        they are set to the median of the similarities (computed exactly,
        without copying the matrix).

    affinity : {'euclidean', 'precomputed', 'cosine', 'nearest_neighbors'} \
            or callable, default='euclidean'
        'euclidean' uses the negative squared euclidean distance between
        points; 'precomputed' takes a similarity matrix (dense, or a SciPy
        sparse graph); 'cosine' (fastap) the cosine similarity (also of
        sparse features such as TF-IDF); 'nearest_neighbors' (fastap) sparse
        AP on the ``n_neighbors``-nearest-neighbour graph of dense features,
        with ``metric`` and ``merge_fragments`` (no N x N memory; see Notes,
        "Sparse graphs"; sparse features are refused with the ways around:
        a precomputed sparse cosine k-NN graph, or TruncatedSVD first); a
        callable ``f(X) -> S`` returns the ``(n_samples, n_samples)``
        similarity matrix of the rows of ``X`` (larger is more similar).

    verbose : bool, default=False
        Whether to report progress (iteration, exemplars, changes; at most
        once a second) and the outcome.

    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator for the small noise that removes
        degeneracies. Use an int for reproducible results.

    n_jobs : int, default=None
        Threads for the fit, with joblib's conventions for numbers: -1 means
        all cores, -2 all but one, ``-k`` all but ``k - 1`` (at least one);
        0 is an error. Unlike scikit-learn, where None means one job, None
        keeps Numba's current thread count: all cores by default. Results do
        not depend on it. The previous thread count is restored after the fit.

    preference_quantile : float in [0, 1], default=None
        (fastap) Use this quantile of the off-diagonal similarities as the
        preference, as R's apcluster ``q``: 0.5 is their median (scikit-learn's
        default median also counts the diagonal), 0 their minimum (few
        clusters). Exclusive with ``preference``. A UserWarning says when the
        quantile lands on a value that at least a quarter of the pairs
        share (cosine similarities of sparse TF-IDF vectors are mostly
        exactly 0): every quantile across that tie gives the same clusters.

    n_clusters : int, default=None
        (fastap) Search for a preference that gives this many clusters:
        bisection over :func:`fastap.preference_range`, each step continuing
        from the previous step's messages; within a step the damping rises
        while the exemplars keep flipping (as with ``damping="auto"``), and
        a step that does not converge is repeated from zero messages at
        damping 0.9, which the search keeps from then on (``damping_``).
        ``warm_start`` does not apply to the search. If no preference gives exactly
        ``n_clusters`` (AP's count is not monotone in the preference and
        can jump past a value), the closest converged count found is kept
        with a warning. The result is the best step's; when that was a warm
        step, a fit from zero messages at ``preference_`` may settle on
        other exemplars (near a jump AP has more than one stable state). ``max_iter`` and
        ``convergence_iter`` apply to each step. A scalar ``preference`` or a
        ``preference_quantile`` is then where the search starts (default: the
        median similarity).

    warm_start : bool, default=False
        (fastap) Keep the messages after ``fit`` (``responsibility_``,
        ``availability_``) and let the next ``fit`` on as many samples
        continue from them instead of from zero: to run more iterations
        (each ``fit`` runs up to ``max_iter`` more), or to try a new
        preference or damping (``damping="auto"`` continues from
        ``damping_``). Holds two more N x N matrices between fits. The next
        fit updates those matrices in place, also if it is interrupted.

    keep_messages : bool, default=False
        (fastap) Keep the final responsibility and availability matrices as
        ``responsibility_`` and ``availability_`` and compute
        ``membership_confidence_``.

    record_history : bool, default=False
        (fastap) Record ``history_``, one entry per iteration. Net similarity
        is recomputed in iterations where the exemplars changed (a read of
        the exemplar columns of S).

    callback : callable, default=None
        (fastap) ``callback(info)`` after every ``callback_every`` iterations,
        with ``info`` a :class:`fastap.IterationInfo` (iteration,
        n_exemplars, n_changed, damping, elapsed); a true return value stops
        the fit (``converged_`` is then False unless it had converged).

    callback_every : int, default=1
        (fastap) Iterations between two calls of ``callback``.

    n_neighbors : int, default=30
        (fastap) With ``affinity='nearest_neighbors'``: neighbours per sample
        of the similarity graph (see Notes, "Sparse graphs").

    metric : {'euclidean', 'cosine'}, default='euclidean'
        (fastap) With ``affinity='nearest_neighbors'``: the similarity of a
        stored pair, ``-||x_i - x_j||^2`` or the cosine similarity.

    merge_fragments : bool or 'auto', default='auto'
        (fastap) With ``affinity='nearest_neighbors'``: after sparse AP on
        the graph, run AP again on its clusters, weighted by their sizes, and
        merge the clusters it joins ('auto': on). On a k-NN graph every
        sample can only choose an exemplar among its neighbours, so plain
        sparse AP splits the clusters dense AP would find into fragments of
        about ``n_neighbors`` samples; merging recovers them (it only joins
        clusters). Turn it off to get AP exactly on the graph (local
        clusters). ``n_iter_`` then counts the iterations of every level and
        ``converged_`` is True only if every level converged. Not available
        for a sparse precomputed matrix (it needs the features).

    noise : {'sklearn', 'counter'}, default='sklearn'
        (fastap) The degeneracy noise. 'sklearn': scikit-learn's, one
        serial ``RandomState`` stream over the N x N similarities. 'counter':
        the noise of entry (i, k) is a pure function of (random_state, i, k)
        (``fastap/_kernels/noise.py``), the noise of the distributed engine
        (:mod:`fastap.dask`), whose results it then equals bitwise. Dense
        similarities and precomputed sparse graphs (the noise of a stored
        pair is that of its entry), not ``affinity='nearest_neighbors'``.
    engine : {'auto', 'stored', 'lean', 'compact'}, default='auto'
        (fastap) The dense engine's messages. 'stored' keeps ``S``, ``R`` and
        ``A`` (float64: bitwise scikit-learn's messages); 'lean' keeps only
        ``S`` and ``A`` and rebuilds ``R`` on the fly from ``S``, one value
        per row and a short per-row list: two N x N matrices instead of
        three, and an iteration moves three matrix transfers instead of five
        (float64 results then differ from scikit-learn's in the last bits,
        as float32's do anyway). 'auto': lean for float32 (compact when
        only the compact engine's footprint fits in the available memory),
        stored for float64 and whenever ``warm_start`` or ``keep_messages``
        asks for the messages (they hold an N x N ``R`` anyway, and a warm
        start continues bitwise only on stored messages). 'compact' is the lean
        engine with ``A`` compressed too (one value per column for the
        pairs whose responsibility was never positive, a list per row for
        the others): only ``S`` is N x N, an iteration reads it once, and
        every result is bitwise the lean engine's, but an iteration is
        slower than lean's (1.2-1.3x at N = 16,000-32,000; see the README), so it is
        the engine for memory (dense float32 up to about N = 64,000 on
        24 GiB; ``keep_messages`` then needs room for
        ``R`` and ``A`` at the end, checked before the fit). A warm start
        from kept messages always runs on the stored engine.

    Attributes
    ----------
    cluster_centers_indices_ : ndarray of shape (n_clusters,)
        Indices of cluster centers.

    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Cluster centers (if affinity != ``precomputed``).

    labels_ : ndarray of shape (n_samples,)
        Labels of each point (-1 when no exemplar was found).

    affinity_matrix_ : ndarray of shape (n_samples, n_samples)
        The affinity matrix used in ``fit``, as scikit-learn leaves it:
        preferences on the diagonal and the degeneracy noise added.

    n_iter_ : int
        Number of iterations run.

    converged_ : bool
        Whether the exemplars stopped changing before ``max_iter``.

    preference_ : float or ndarray of shape (n_samples,)
        The preference used (before the degeneracy noise).

    damping_ : float
        The damping of the last iteration (differs from ``damping`` with
        ``damping="auto"``).

    history_ : dict of ndarray
        With ``record_history=True``: ``"n_exemplars"``, ``"n_changed"``,
        ``"net_similarity"`` (Frey & Dueck's objective: each sample's
        similarity to its exemplar, exemplars counting their preference; NaN
        without exemplars) and ``"damping"``, one entry per iteration
        (``n_iter_`` entries).

    preference_search_ : list of SearchStep
        With ``n_clusters``: every step of the search (preference,
        n_clusters, n_iter, converged), the last being the returned fit.
        ``n_iter_`` then counts the iterations of all steps.

    responsibility_, availability_ : ndarray of shape (n_samples, n_samples)
        With ``keep_messages`` or ``warm_start``: the final messages, in the
        dtype of the similarities.

    membership_confidence_ : ndarray of shape (n_samples,)
        With ``keep_messages``: how clear-cut each sample's assignment is,
        ``E(i, e_i) - max E(i, e)`` over the other exemplars ``e`` the
        messages chose, where ``E = A + R`` is the evidence the messages
        hold for ``e`` being ``i``'s exemplar and ``e_i`` the one its
        cluster grew from (the returned center may be another member:
        scikit-learn's refinement). +inf with one cluster; NaN where the
        messages do not describe the clusters (no exemplar, or an
        ``n_clusters`` search that kept a warm step's exemplars). Small or
        negative values mark ambiguous members.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.cluster.AffinityPropagation : The reference implementation.

    Notes
    -----
    float64 input gives bitwise the same messages as scikit-learn 1.9, hence
    the same ``cluster_centers_indices_``, ``labels_`` and ``n_iter_``, for
    any ``n_jobs``. float32 input keeps the similarities and messages in
    float32 (scikit-learn computes its messages in float64 even then), so
    results can differ from scikit-learn's where the run is sensitive to
    rounding: on well-separated data they agree; on runs that oscillate,
    the iteration counts and sometimes the clusters differ. Exception:
    float32 input of at most 2,000 samples with ``engine="auto"`` and
    ``noise="sklearn"`` is fitted in float64 (``affinity_matrix_`` and the
    messages float64, ``cluster_centers_`` float32), bitwise as its float64
    copy would be; memory does not matter at that size.

    Cold start: while the compiled kernels are not yet in the kernel cache,
    a dense float64 fit of at most 4,000 samples runs scikit-learn's loop in
    plain NumPy instead of waiting for the compiler, with bitwise the same
    results, and moves to the compiled engine mid-fit once the process has
    spent about the compile time in NumPy. ``FASTAP_COLD_START=compiled``
    turns this off, ``=numpy`` never moves; ``fastap warmup`` compiles ahead.

    Integer input is converted to float64. A fit first estimates its memory
    and raises MemoryError if the machine clearly cannot hold it.

    With ``affinity='precomputed'``, ``predict`` takes the similarities of
    new samples to the training samples, shape ``(n, n_train)``, or to the
    exemplars only, shape ``(n, n_clusters)``, and assigns each to its most
    similar exemplar (scikit-learn raises instead).

    Sparse graphs: with a SciPy sparse precomputed matrix, messages flow
    only along stored pairs (memory per stored pair, not N x N). A pair that
    is not stored has similarity -inf; the diagonal holds the preference
    (inserted where not stored); duplicate pairs are an error; the default
    preference is the median of the stored similarities; a sample storing
    only its diagonal is its own exemplar. On a complete graph the result
    equals the dense one. ``affinity='nearest_neighbors'`` builds the
    symmetrised ``n_neighbors``-nearest-neighbour graph of ``X`` (exact up
    to 100,000 samples, pynndescent above) and uses as default preference
    the median similarity of all pairs (estimated from 10^6 random pairs),
    as the dense default would. ``affinity_matrix_`` is then the CSR graph.

    References
    ----------
    Brendan J. Frey and Delbert Dueck, "Clustering by Passing Messages
    Between Data Points", Science Feb. 2007

    Examples
    --------
    >>> from fastap import AffinityPropagation
    >>> import numpy as np
    >>> X = np.array([[1, 2], [1, 4], [1, 0],
    ...               [4, 2], [4, 4], [4, 0]])
    >>> clustering = AffinityPropagation(random_state=5).fit(X)
    >>> clustering.labels_
    array([0, 0, 0, 1, 1, 1])
    >>> clustering.predict([[0, 0], [4, 4]])
    array([0, 1])
    >>> clustering.cluster_centers_
    array([[1, 2],
           [4, 2]])
    """

    _parameter_constraints: dict = {
        "damping": [Interval(Real, 0.5, 1.0, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "convergence_iter": [Interval(Integral, 1, None, closed="left")],
        "copy": ["boolean"],
        "preference": ["array-like", Interval(Real, None, None, closed="neither"), None],
        "affinity": [
            StrOptions({"euclidean", "precomputed", "cosine", "nearest_neighbors"}), callable
        ],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "preference_quantile": [Interval(Real, 0, 1, closed="both"), None],
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
        "keep_messages": ["boolean"],
        "record_history": ["boolean"],
        "callback": [callable, None],
        "callback_every": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"euclidean", "cosine"})],
        "merge_fragments": ["boolean", StrOptions({"auto"})],
        "engine": [StrOptions({"auto", "stored", "lean", "compact"})],
        "noise": [StrOptions({"sklearn", "counter"})],
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
        engine="auto",
        noise="sklearn",
    ):
        self.damping = damping
        self.max_iter = max_iter
        self.convergence_iter = convergence_iter
        self.copy = copy
        self.verbose = verbose
        self.preference = preference
        self.affinity = affinity
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
        self.engine = engine
        self.noise = noise

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.affinity == "precomputed"
        tags.input_tags.sparse = self.affinity != "nearest_neighbors"
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the clustering from features, or affinity matrix.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or \
                array-like of shape (n_samples, n_samples)
            Training instances to cluster, or similarities / affinities
            between instances if ``affinity='precomputed'``, dense or any
            SciPy sparse matrix or array (pairs not stored: never an
            exemplar for that sample; see Notes, "Sparse graphs").

        y : Ignored
            Not used, present here for API consistency by convention.

        Returns
        -------
        self
            Returns the instance itself.
        """
        self._check_option_combinations()
        n_threads = _resources.resolve_n_threads(self.n_jobs)
        with _resources.numba_threads(n_threads):
            if self.affinity == "nearest_neighbors" or (
                self.affinity == "precomputed" and sparse.issparse(X)
            ):
                if self.noise == "counter" and self.affinity == "nearest_neighbors":
                    raise ValueError(
                        "noise='counter' is available for dense similarities and precomputed "
                        "sparse graphs; affinity='nearest_neighbors' uses noise='sklearn'."
                    )
                fitted = self._fit_sparse(X, n_threads)
            else:
                fitted = self._fit_dense(X, n_threads)
        # Attributes are set only once the whole fit succeeded, so an
        # interrupted fit leaves the estimator as it was.
        self._store(fitted)
        return self

    # -- fitting ------------------------------------------------------------

    def _check_option_combinations(self):
        """The checks that involve two parameters (one place)."""
        if self.preference is not None and self.preference_quantile is not None:
            raise ValueError("Set preference or preference_quantile, not both.")
        if self.n_clusters is not None and np.ndim(self.preference) > 0:
            raise ValueError(
                "With n_clusters, preference is the search's starting point and must be a "
                "scalar."
            )
        if self.affinity != "nearest_neighbors" and self.metric != "euclidean":
            raise ValueError("metric applies to affinity='nearest_neighbors' only.")
        if self.affinity == "precomputed" and self.merge_fragments is True:
            raise ValueError(
                "merge_fragments=True needs the features (it compares the clusters' members "
                "with other exemplars): use affinity='nearest_neighbors'."
            )

    def _check_n_clusters(self, n_samples):
        if self.n_clusters is not None and self.n_clusters > n_samples:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the number of samples, "
                f"{n_samples}."
            )

    def _run_options(self, warm):
        """The run's options; ``damping="auto"`` continues a warm start from
        ``damping_`` (not a search, which restarts its damping)."""
        adaptive = self.damping == "auto"
        damping = self.damping
        if adaptive:
            damping = 0.5
            if warm and self.n_clusters is None:
                damping = float(getattr(self, "damping_", 0.5))
        return _run.RunOptions(
            damping=damping, adaptive_damping=adaptive, max_iter=self.max_iter,
            convergence_iter=self.convergence_iter, verbose=bool(self.verbose),
            record_history=self.record_history,
            keep_messages=self.keep_messages or self.warm_start, callback=self.callback,
            callback_every=self.callback_every,
        )

    def _fit_dense(self, X, n_threads):
        S, X, matrices, warm, in_numpy = self._dense_similarities(X, n_threads)
        n_samples = S.shape[0]
        self._check_n_clusters(n_samples)
        preference = None
        if self.n_clusters is None or n_samples == 1 or self.preference is not None or (
            self.preference_quantile is not None
        ):
            preference = validated_preference(
                self._dense_preference(S, n_threads, in_numpy), n_samples, S.dtype
            )
        options = self._run_options(warm is not None)
        preference_or_zero = S.dtype.type(0) if preference is None else preference
        if in_numpy:
            state = self._numpy_state(S, preference_or_zero, options, warm, n_threads)
        else:
            state = self._compiled_state(S, preference_or_zero, options, matrices, warm,
                                         n_threads)
        result = run_or_search(state, options, n_clusters=self.n_clusters,
                               start=None if preference is None else preference[()])
        if isinstance(state, DenseMessageState) and not state.grouped:
            _cold_start.mark_compiled(_cold_start.dense_engine(n_samples, n_threads))
        if result.preference is not None:
            preference = np.asarray(result.preference)
        return FitOutcome(result, S, preference, X)

    def _compiled_state(self, S, preference, options, matrices, warm, n_threads):
        if self._uses_lean_engine(S.dtype, warm):
            compact = getattr(self, "_lean_engine_name", "lean") == "compact"
            engine = CompactMessageState if compact else LeanMessageState
            engine_options = {}
        else:
            # The counter noise's column sums are added by groups of rows,
            # as fastap.dask's blocks add them (see DenseMessageState).
            engine, engine_options = DenseMessageState, {"grouped_sums": self.noise == "counter"}
        return engine(
            S, preference, damping=options.damping, random_state=self._noise_stream(),
            n_threads=n_threads, matrices=matrices, warm_messages=warm, **engine_options,
        )

    def _numpy_state(self, S, preference, options, warm, n_threads):
        """The NumPy engine, handing over to the compiled one when this
        process has spent the compile cost in NumPy (``_cold_start``)."""
        numpy_state = _numpy_engine.NumpyMessageState(
            S, preference, damping=options.damping, random_state=self._noise_stream(),
            n_threads=n_threads, warm_messages=warm,
        )
        engine = _cold_start.dense_engine(S.shape[0], n_threads)
        return _numpy_engine.ColdStartMessageState(
            numpy_state, _cold_start.LEDGER, n_threads,
            on_compiled=lambda compiled: _cold_start.mark_compiled(engine),
        )

    def _takes_numpy_path(self, n_samples, dtype, warm, n_threads):
        """The NumPy engine computes what the compiled stored float64 engine
        with row-ordered sums computes: it may stand in for that one."""
        if np.dtype(dtype) != np.float64 or self.noise != "sklearn":
            return False
        if self._uses_lean_engine(dtype, warm):
            return False
        return _cold_start.choose_numpy_path(n_samples, n_threads)

    def _similarity_dtype(self, dtype, n_samples):
        """float32 input keeps float32 similarities and messages, except
        small problems under ``engine="auto"`` with scikit-learn's noise,
        which run in float64 whichever path they take (``_cold_start``)."""
        dtype = similarity_dtype(dtype)
        if dtype == np.float32 and self.engine == "auto" and self.noise == "sklearn" and (
            n_samples <= _cold_start.FLOAT64_MESSAGES_MAX_SAMPLES
        ):
            return np.dtype(np.float64)
        return dtype

    def _noise_stream(self):
        """What the dense engine draws its noise from: the random state, or
        the counter normals standing in for it (``noise="counter"``)."""
        random_state = check_random_state(self.random_state)
        if self.noise == "counter":
            return noise.CounterNoiseStream(noise.counter_noise_seed(random_state))
        return random_state

    def _uses_lean_engine(self, dtype, warm):
        """The lean engine: asked for, or float32 under 'auto' when the
        messages are not wanted; never for a warm start (kept messages have
        no lean form)."""
        if warm is not None:
            return False
        if self.engine == "auto":
            wants_messages = self.warm_start or self.keep_messages
            return np.dtype(dtype) == np.float32 and not wants_messages
        return self.engine in ("lean", "compact")

    def _dense_preference(self, S, n_threads, in_numpy=False):
        if self.preference is not None:
            return self.preference
        if self.preference_quantile is not None and S.shape[0] > 1:
            if in_numpy:
                value = _numpy_engine.off_diagonal_quantile(S, self.preference_quantile)
                if self.n_clusters is None:
                    _preference.warn_if_quantile_in_tie(
                        self.preference_quantile, value, _preference.off_diagonal_tie(S, value)
                    )
                return value
            return _preference.off_diagonal_quantile_warned(
                S, self.preference_quantile, max(2, n_threads), warn_ties=self.n_clusters is None
            )
        if in_numpy:
            return _numpy_engine.median(S)
        return setup.median_of_matrix(S, n_tasks=max(2, n_threads))

    def _warm_messages(self):
        """The previous fit's messages when this fit may continue from them."""
        if not self.warm_start or not hasattr(self, "responsibility_"):
            return None
        return self.responsibility_, self.availability_

    def _dense_warm_messages(self, n_samples, dtype):
        warm = self._warm_messages()
        if warm is None or sparse.issparse(warm[0]):
            return None
        if warm[0].shape != (n_samples, n_samples) or warm[0].dtype != dtype:
            return None
        return warm

    def _dense_similarities(self, X, n_threads):
        """``(S, X, matrices, warm_messages, in_numpy)``: the similarity
        matrix, the validated features (None for precomputed), message
        matrices allocated ahead (None for a warm start, the lean engine and
        the NumPy engine), the warm messages, and whether the fit runs on
        the NumPy engine (which then computed ``S``)."""
        # The memory check may give a float32 fit under engine="auto" the
        # compact engine (when only its footprint fits).
        self._lean_engine_name = "lean"
        if self.affinity == "precomputed":
            S = self._validate_precomputed(X)
            n_samples = S.shape[0]
            dtype = self._similarity_dtype(S.dtype, n_samples)
            if dtype != S.dtype:
                S = S.astype(dtype)
        else:
            # Keep the caller's dtype for cluster_centers_ (as scikit-learn);
            # similarities are float32 for float32 input, else float64.
            X = validate_data(self, X, accept_sparse="csr")
            n_samples = X.shape[0]
            dtype = self._similarity_dtype(X.dtype, n_samples)
        warm = self._dense_warm_messages(n_samples, dtype)
        in_numpy = self._takes_numpy_path(n_samples, dtype, warm, n_threads)
        lean = self._uses_lean_engine(dtype, warm)
        allocate = not (warm or lean or in_numpy)
        if self.affinity == "precomputed":
            matrices = MessageMatrices(n_samples, dtype, n_threads) if allocate else None
            return S, None, matrices, warm, in_numpy
        source = "callable" if callable(self.affinity) else (
            "sparse_features" if sparse.issparse(X) else "features"
        )
        self._check_dense_memory(n_samples, dtype, warm, source, in_numpy=in_numpy)
        matrices = MessageMatrices(n_samples, dtype, n_threads) if allocate else None
        if in_numpy:
            S = _numpy_engine.similarities(X, self.affinity, copy=self.copy)
        else:
            S = similarities(X, self.affinity, dtype, copy=self.copy)
        return S, X, matrices, warm, in_numpy

    def _check_dense_memory(self, n_samples, dtype, warm, source, in_numpy=False):
        """MemoryError before allocating, from the engine's footprint (a
        precomputed matrix is used in place unless ``copy``)."""
        wants_messages = self.keep_messages or self.warm_start
        if in_numpy:
            engine = "numpy"
        else:
            engine = "lean" if self._uses_lean_engine(dtype, warm) else "stored"
        reused = ("R", "A") if warm is not None else ()
        if source == "precomputed" and not self.copy:
            reused += ("S",)
        if engine == "lean":
            if self.engine == "compact":
                engine = "compact"
            elif self.engine == "auto":
                engine = _resources.lean_or_compact(n_samples, dtype, source=source,
                                                    reused=reused)
            self._lean_engine_name = engine
        _resources.check_dense_memory(
            n_samples, dtype, engine, source=source, reused=reused,
            keep_messages=wants_messages and engine in ("lean", "compact"),
            float32_engine="lean" if self._uses_lean_engine(np.float32, warm) else "stored",
        )

    def _validate_precomputed(self, X):
        shape = np.shape(X)
        check_square(shape)
        if len(shape) == 2 and shape[0] > 0:
            # Before validate_data, which may copy: the copy is one of the
            # matrices counted.
            dtype = self._similarity_dtype(getattr(X, "dtype", np.float64), shape[0])
            self._check_dense_memory(
                shape[0], dtype, self._dense_warm_messages(shape[0], dtype), "precomputed"
            )
        S = validate_data(
            self, X, copy=self.copy, force_writeable=True, dtype=_FLOAT_DTYPES, order="C"
        )
        check_square(S.shape)
        return S

    def _fit_sparse(self, X, n_threads):
        """A sparse precomputed matrix, or ``affinity="nearest_neighbors"``."""
        if self.affinity == "nearest_neighbors":
            check_dense_features(X)
            X = validate_data(self, X)
        else:
            # LIL, DOK, ... become CSR (they cannot hold duplicates); COO is
            # kept, so that its duplicates are seen. The dtype is left as it
            # is until canonical_csr has looked for duplicates (a cast would
            # sum them).
            X = validate_data(self, X, accept_sparse=["csr", "csc", "coo"], dtype="numeric")
        n_samples = X.shape[0]
        self._check_n_clusters(n_samples)
        preference = None
        if self.preference is not None:
            preference = validated_preference(
                self.preference, n_samples, similarity_dtype(X.dtype)
            )
        options = self._run_options(warm=self._warm_messages() is not None)
        common = dict(
            preference=preference, preference_quantile=self.preference_quantile,
            n_clusters=self.n_clusters, random_state=self._noise_stream(),
            n_threads=n_threads, warm_messages=self._warm_messages(),
        )
        if self.affinity == "nearest_neighbors":
            result, S, preference = fit_nearest_neighbors(
                X, options, n_neighbors=self.n_neighbors, metric=self.metric,
                merge=self.merge_fragments in (True, "auto"), **common,
            )
            return FitOutcome(result, S, preference, X)
        result, S, preference = fit_graph(X, options, **common)
        return FitOutcome(result, S, preference, None)

    def _store(self, fitted):
        result = fitted.result
        preference = fitted.preference
        self._set_optional("affinity_matrix_", fitted.affinity_matrix)
        self.cluster_centers_indices_ = result.cluster_centers_indices
        self.labels_ = result.labels
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.preference_ = preference[()] if np.ndim(preference) == 0 else preference
        self.damping_ = result.damping
        self._set_optional("history_", result.history)
        self._set_optional("preference_search_", result.search_steps)
        self._set_optional(
            "membership_confidence_", result.membership_confidence if self.keep_messages else None
        )
        messages = result.messages or (None, None)
        self._set_optional("responsibility_", messages[0])
        self._set_optional("availability_", messages[1])
        if fitted.X is None:
            self._set_optional("cluster_centers_", None)
        else:
            self.cluster_centers_ = fitted.X[self.cluster_centers_indices_].copy()

    def _set_optional(self, name, value):
        if value is not None:
            setattr(self, name, value)
        elif hasattr(self, name):
            delattr(self, name)

    def predict(self, X):
        """Predict the closest cluster each sample in X belongs to.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or \
                array-like of shape (n_samples, n_train) or (n_samples, n_clusters)
            New data to predict. If a sparse matrix is provided, it will be
            converted into a sparse ``csr_matrix``. With
            ``affinity='precomputed'``: similarities of the new samples to
            the training samples, or to the exemplars only (columns in the
            order of ``cluster_centers_indices_``); sparse similarities mean
            what they mean to ``fit`` (a pair not stored: never this
            exemplar), and a sample that stores no pair with any exemplar
            gets the label -1.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster labels.
        """
        check_is_fitted(self)
        if self.affinity == "precomputed":
            similarities = self._exemplar_similarities_precomputed(X)
            n_new = similarities.shape[0]
        else:
            X = validate_data(self, X, reset=False, accept_sparse="csr")
            n_new = X.shape[0]
        if self.cluster_centers_indices_.size == 0:
            warnings.warn(
                "This model does not have any cluster centers because affinity propagation "
                "did not converge. Labeling every sample as '-1'.",
                ConvergenceWarning,
            )
            return np.array([-1] * n_new)
        if self.affinity == "precomputed":
            labels = np.argmax(similarities, axis=1)
            # Sparse input: no stored pair with any exemplar, no cluster.
            labels[np.all(similarities == -np.inf, axis=1)] = -1
            return labels
        if self.affinity == "cosine" or (
            self.affinity == "nearest_neighbors" and self.metric == "cosine"
        ):
            from sklearn.metrics.pairwise import cosine_similarity

            return np.argmax(cosine_similarity(X, self.cluster_centers_), axis=1)
        if callable(self.affinity):
            # The callable sees new samples and centers together; their
            # cross block holds the similarities needed.
            stacked = (
                sparse.vstack([X, self.cluster_centers_]) if sparse.issparse(X)
                else np.concatenate([X, self.cluster_centers_])
            )
            S = np.asarray(self.affinity(stacked))
            return np.argmax(S[:n_new, n_new:], axis=1)
        from sklearn import config_context

        with config_context(assume_finite=True):
            return pairwise_distances_argmin(X, self.cluster_centers_)

    def exemplar_hierarchy(self, self_similarity=None):
        """Merge the fitted clusters into a hierarchy (R's ``aggExCluster``).

        Parameters
        ----------
        self_similarity : float, default=None
            A sample's similarity to itself; None means 0 for
            ``affinity="euclidean"``, 1 for ``"cosine"`` and the largest
            similarity between two different samples otherwise.

        Returns
        -------
        ExemplarHierarchy
            With a SciPy ``linkage`` matrix over the clusters and
            ``cut(n_clusters)`` for coarser clusterings.
        """
        from fastap._hierarchy import exemplar_hierarchy

        check_is_fitted(self)
        S = self.affinity_matrix_
        if sparse.issparse(S):
            raise ValueError(
                "exemplar_hierarchy needs dense similarities; it is not available after a fit "
                "on a sparse graph (affinity='nearest_neighbors' or sparse 'precomputed')."
            )
        if self_similarity is None:
            if self.affinity == "euclidean":
                self_similarity = 0.0
            elif self.affinity == "cosine":
                self_similarity = 1.0
            else:
                off_diagonal = ~np.eye(S.shape[0], dtype=bool)
                self_similarity = float(S[off_diagonal].max()) if S.shape[0] > 1 else 0.0
        return exemplar_hierarchy(
            S, self.labels_, self.cluster_centers_indices_, self_similarity=self_similarity
        )

    def _exemplar_similarities_precomputed(self, X):
        """Similarities of new samples to the exemplars, from either shape.

        Sparse input follows the sparse fit's meaning: a pair that is not
        stored is -inf (never this exemplar), so a row that stores no pair
        with any exemplar is all -inf.
        """
        if sparse.issparse(X):
            X = check_array(X, accept_sparse=["csr", "csc", "coo"], dtype="numeric")
        else:
            X = check_array(X, dtype=_FLOAT_DTYPES)
        n_train = self.labels_.shape[0]
        n_clusters = self.cluster_centers_indices_.size
        if X.shape[1] not in (n_train, n_clusters):
            raise ValueError(
                "With affinity='precomputed', predict takes the similarities of the new samples "
                f"to the {n_train} training samples or to the {n_clusters} exemplars; got "
                f"{X.shape[1]} columns."
            )
        if sparse.issparse(X):
            indptr, indices, data = canonical_csr(X, square=False)
            X = sparse.csr_matrix((data, indices, indptr), shape=X.shape)
        if X.shape[1] == n_train:
            X = X[:, self.cluster_centers_indices_]
        if sparse.issparse(X):
            dense = np.full(X.shape, -np.inf, dtype=X.dtype)
            dense[np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)), X.indices] = X.data
            return dense
        return X

    def fit_predict(self, X, y=None):
        """Fit clustering from features/affinity matrix; return cluster labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or \
                array-like of shape (n_samples, n_samples)
            Training instances to cluster, or similarities / affinities
            between instances if ``affinity='precomputed'``.

        y : Ignored
            Not used, present here for API consistency by convention.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster labels.
        """
        return super().fit_predict(X, y)


@validate_params(
    {"S": ["array-like"], "return_n_iter": ["boolean"]},
    prefer_skip_nested_validation=False,
)
def affinity_propagation(
    S,
    *,
    preference=None,
    convergence_iter=15,
    max_iter=200,
    damping=0.5,
    copy=True,
    verbose=False,
    return_n_iter=False,
    random_state=None,
    n_jobs=None,
):
    """Perform Affinity Propagation Clustering of data.

    Same as :func:`sklearn.cluster.affinity_propagation`, on fastap's engine.

    Parameters
    ----------
    S : array-like of shape (n_samples, n_samples)
        Matrix of similarities between points.

    preference : array-like of shape (n_samples,) or float, default=None
        Preferences for each point; None means the median of ``S``.

    convergence_iter : int, default=15
        Number of iterations with no change in the exemplars that stops the
        convergence.

    max_iter : int, default=200
        Maximum number of iterations.

    damping : float, default=0.5
        Damping factor between 0.5 and 1.

    copy : bool, default=True
        If False, ``S`` is modified in place by the algorithm.

    verbose : bool, default=False
        The verbosity level.

    return_n_iter : bool, default=False
        Whether or not to return the number of iterations.

    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator for the degeneracy noise.

    n_jobs : int, default=None
        Threads (see :class:`AffinityPropagation`).

    Returns
    -------
    cluster_centers_indices : ndarray of shape (n_clusters,)
        Index of clusters centers.

    labels : ndarray of shape (n_samples,)
        Cluster labels for each point.

    n_iter : int
        Number of iterations run. Returned only if `return_n_iter` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from fastap import affinity_propagation
    >>> from sklearn.metrics.pairwise import euclidean_distances
    >>> X = np.array([[1, 2], [1, 4], [1, 0],
    ...               [4, 2], [4, 4], [4, 0]])
    >>> S = -euclidean_distances(X, squared=True)
    >>> cluster_centers_indices, labels = affinity_propagation(S, random_state=0)
    >>> cluster_centers_indices
    array([0, 3])
    >>> labels
    array([0, 0, 0, 1, 1, 1])
    """
    estimator = AffinityPropagation(
        damping=damping,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        copy=copy,
        preference=preference,
        affinity="precomputed",
        verbose=verbose,
        random_state=random_state,
        n_jobs=n_jobs,
    ).fit(S)
    if return_n_iter:
        return estimator.cluster_centers_indices_, estimator.labels_, estimator.n_iter_
    return estimator.cluster_centers_indices_, estimator.labels_
