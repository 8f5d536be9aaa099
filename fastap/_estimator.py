"""scikit-learn conventions: the estimator and the function.

Validation, parameter constraints, attributes, warnings and dispatch live
here; no loop over matrix elements does (those are in ``_kernels/``, driven
by ``_engine.py``).
"""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fastap import _engine, _preference, _sparse
from fastap._kernels import assign, setup

_FLOAT_DTYPES = [np.float64, np.float32]


def _validated_preference(preference, n_samples, dtype):
    """The preference as a finite 0-d or (n_samples,) array."""
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


def _validated_callable_similarities(S, n_samples, dtype, copy):
    """What an ``affinity`` callable returned, as a finite square C-ordered
    matrix of ``dtype`` (copied unless ``copy=False`` allows using it)."""
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
    if not np.all(np.isfinite(S)):
        raise ValueError("The affinity callable returned NaN or infinity.")
    return S


def _membership_confidence(messages, result, S):
    """Evidence margin of each sample's assignment (see the attribute).

    The evidence ``A + R`` is about the exemplars the messages chose (the
    flags ``A(k, k) + R(k, k) > 0``), which scikit-learn's refinement may
    then move to another member of the same cluster: each returned cluster
    is traced back to its message exemplar (the one its center was nearest
    to) before the margin is taken. NaN throughout when the kept messages
    do not describe the returned clusters.
    """
    R, A = messages["responsibility"], messages["availability"]
    n = R.shape[0]
    margin = np.full(n, np.nan)
    centers = np.asarray(result.cluster_centers_indices, dtype=np.intp)
    message_exemplars = np.flatnonzero(np.diagonal(A) + np.diagonal(R) > 0)
    if centers.size == 0 or message_exemplars.size != centers.size or messages.get("stale"):
        return margin
    nearest = np.empty(n, dtype=np.intp)
    assign.nearest_exemplar(S, message_exemplars, nearest)
    message_exemplar_of_cluster = message_exemplars[nearest[centers]]
    assign.evidence_margin(
        A, R, message_exemplars, message_exemplar_of_cluster[result.labels], margin
    )
    return margin


class AffinityPropagation(ClusterMixin, BaseEstimator):
    """Perform Affinity Propagation Clustering of data, fast.

    A drop-in replacement for :class:`sklearn.cluster.AffinityPropagation`:
    same parameters, attributes, warnings and, for float64 input, the same
    clusters and number of iterations, computed by parallel Numba kernels
    that update the messages in place. float32 input runs in float32 from
    end to end (half the memory of float64, a quarter of scikit-learn's).

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
        place (it becomes ``affinity_matrix_``), as in scikit-learn.

    preference : array-like of shape (n_samples,) or float, default=None
        Preferences for each point: points with larger values are more
        likely to be chosen as exemplars. The number of exemplars, i.e. of
        clusters, is influenced by the input preferences value. If None,
        they are set to the median of the similarities (computed exactly,
        without copying the matrix).

    affinity : {'euclidean', 'precomputed', 'cosine'} or callable, \
            default='euclidean'
        'euclidean' uses the negative squared euclidean distance between
        points; 'precomputed' takes a similarity matrix; 'cosine' (fastap)
        the cosine similarity; a callable ``f(X) -> S`` returns the
        ``(n_samples, n_samples)`` similarity matrix of the rows of ``X``
        (larger is more similar).

    verbose : bool, default=False
        Whether to report progress (iteration, exemplars, changes; at most
        once a second) and the outcome.

    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator for the small noise that removes
        degeneracies. Use an int for reproducible results.

    n_jobs : int, default=None
        Threads for the fit. None keeps Numba's current thread count (all
        cores by default), -1 means all cores, -2 all but one. Results do
        not depend on it. The previous thread count is restored after the fit.

    preference_quantile : float in [0, 1], default=None
        (fastap) Use this quantile of the off-diagonal similarities as the
        preference, as R's apcluster ``q``: 0.5 is their median (scikit-learn's
        default median also counts the diagonal), 0 their minimum (few
        clusters). Exclusive with ``preference``.

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
    the iteration counts and sometimes the clusters differ.

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
        if self.affinity == "nearest_neighbors" or (
            self.affinity == "precomputed" and sparse.issparse(X)
        ):
            return self._fit_sparse(X)
        self._check_preference_options()
        n_threads = _engine.resolve_n_threads(self.n_jobs)
        with _engine.numba_threads(n_threads):
            S, X, matrices, warm_messages = self._similarities(X)
            n_samples = S.shape[0]
            if self.n_clusters is not None and self.n_clusters > n_samples:
                raise ValueError(
                    f"n_clusters={self.n_clusters} is larger than the number of samples, "
                    f"{n_samples}."
                )
            # damping="auto" continuing warm starts where the last fit ended.
            initial_auto = 0.5
            if warm_messages is not None and self.n_clusters is None:
                initial_auto = float(getattr(self, "damping_", 0.5))
            adaptive_damping = (
                _engine.AdaptiveDamping(initial_auto) if self.damping == "auto" else None
            )
            damping = initial_auto if self.damping == "auto" else self.damping
            want_messages = self.keep_messages or self.warm_start
            messages_out = {} if want_messages else None
            random_state = check_random_state(self.random_state)
            search_steps = None
            if self.n_clusters is not None and n_samples > 1:
                del matrices  # the search allocates its own
                start = None
                if self.preference is not None or self.preference_quantile is not None:
                    start = _validated_preference(
                        self._preference_for(S, n_threads), n_samples, S.dtype
                    )
                result, preference, search_steps = _preference.search_n_clusters(
                    S,
                    self.n_clusters,
                    start=start,
                    damping=damping,
                    max_iter=self.max_iter,
                    convergence_iter=self.convergence_iter,
                    random_state=random_state,
                    n_threads=n_threads,
                    adaptive_damping=adaptive_damping,
                    history=_engine._History(n_samples) if self.record_history else None,
                    callback=self.callback,
                    callback_every=self.callback_every,
                    messages_out=messages_out,
                    verbose=self.verbose,
                )
                history = result.history
            else:
                preference = _validated_preference(
                    self._preference_for(S, n_threads), n_samples, S.dtype
                )
                result = _engine.run_affinity_propagation(
                    S,
                    preference,
                    damping=damping,
                    max_iter=self.max_iter,
                    convergence_iter=self.convergence_iter,
                    random_state=random_state,
                    n_threads=n_threads,
                    verbose=self.verbose,
                    messages_out=messages_out,
                    matrices=matrices,
                    warm_messages=warm_messages,
                    adaptive_damping=adaptive_damping,
                    record_history=self.record_history,
                    callback=self.callback,
                    callback_every=self.callback_every,
                )
                del matrices
                history = result.history
            confidence = None
            if self.keep_messages and messages_out:
                confidence = _membership_confidence(messages_out, result, S)
            elif self.keep_messages:
                # The equal-similarities shortcut passes no messages.
                confidence = np.full(
                    n_samples, np.inf if result.cluster_centers_indices.size == 1 else np.nan
                )

        # Attributes are set only once the whole fit succeeded, so an
        # interrupted fit leaves the estimator as it was.
        self.affinity_matrix_ = S
        self.cluster_centers_indices_ = result.cluster_centers_indices
        self.labels_ = result.labels
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.preference_ = preference[()] if np.ndim(preference) == 0 else preference
        self.damping_ = result.final_damping
        self._set_optional("history_", history)
        self._set_optional("preference_search_", search_steps)
        self._set_optional("membership_confidence_", confidence)
        for name, key in (("responsibility_", "responsibility"), ("availability_", "availability")):
            self._set_optional(name, messages_out.get(key) if messages_out else None)
        if X is None:
            self._set_optional("cluster_centers_", None)
        else:
            self.cluster_centers_ = X[self.cluster_centers_indices_].copy()
        return self

    def _fit_sparse(self, X):
        """Sparse AP (``fastap/_sparse.py``); attributes set once it succeeded."""
        attributes = _sparse.fit(self, X)
        for name in ("cluster_centers_", "history_", "preference_search_",
                     "membership_confidence_", "responsibility_", "availability_"):
            self._set_optional(name, attributes.pop(name, None))
        for name, value in attributes.items():
            setattr(self, name, value)
        return self

    def _set_optional(self, name, value):
        if value is not None:
            setattr(self, name, value)
        elif hasattr(self, name):
            delattr(self, name)

    def _check_preference_options(self):
        if self.preference is not None and self.preference_quantile is not None:
            raise ValueError("Set preference or preference_quantile, not both.")
        if self.n_clusters is not None and np.ndim(self.preference) > 0:
            raise ValueError(
                "With n_clusters, preference is the search's starting point and must be a "
                "scalar."
            )

    def _preference_for(self, S, n_threads):
        if self.preference is not None:
            return self.preference
        if self.preference_quantile is not None and S.shape[0] > 1:
            return setup.off_diagonal_quantile(S, self.preference_quantile, max(2, n_threads))
        return setup.median_of_matrix(S, n_tasks=max(2, n_threads))

    def _warm_messages(self, n_samples, dtype):
        """The previous fit's messages when this fit may continue from them."""
        if not self.warm_start or not hasattr(self, "responsibility_"):
            return None
        R, A = self.responsibility_, self.availability_
        if R.shape != (n_samples, n_samples) or R.dtype != dtype:
            return None
        return R, A

    def _similarities(self, X):
        """``(S, X, matrices, warm_messages)``: the similarity matrix, the
        validated features (None for precomputed), message matrices
        allocated ahead (None for a warm start) and the warm messages."""
        if self.affinity == "precomputed":
            S = self._validate_precomputed(X)
            n_samples, dtype, X = S.shape[0], S.dtype, None
        else:
            # Keep the caller's dtype for cluster_centers_ (as scikit-learn);
            # similarities are float32 for float32 input, else float64.
            X = validate_data(self, X, accept_sparse="csr")
            n_samples = X.shape[0]
            dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
            warm = self._warm_messages(n_samples, dtype)
            _engine.check_memory(n_samples, dtype, n_new_matrices=1 if warm else 3)
        warm = self._warm_messages(n_samples, dtype)
        matrices = None if warm else _engine.MessageMatrices(n_samples, dtype)
        if self.affinity == "euclidean":
            S = _engine.negative_squared_euclidean(X, dtype)
        elif self.affinity == "cosine":
            S = _engine.cosine_similarities(X, dtype)
        elif callable(self.affinity):
            S = _validated_callable_similarities(self.affinity(X), n_samples, dtype, self.copy)
        return S, X, matrices, warm

    def _validate_precomputed(self, X):
        shape = np.shape(X)
        if len(shape) == 2 and shape[0] != shape[1]:
            raise ValueError(
                f"The matrix of similarities must be a square array. Got {shape} instead."
            )
        if len(shape) == 2 and shape[0] > 0:
            # Before validate_data, which may copy: the copy is one of the
            # matrices counted.
            dtype = getattr(X, "dtype", np.float64)
            dtype = dtype if dtype in (np.float32, np.float64) else np.float64
            _engine.check_memory(shape[0], dtype, n_new_matrices=3 if self.copy else 2)
        S = validate_data(
            self, X, copy=self.copy, force_writeable=True, dtype=_FLOAT_DTYPES, order="C"
        )
        if S.shape[0] != S.shape[1]:
            raise ValueError(
                f"The matrix of similarities must be a square array. Got {S.shape} instead."
            )
        return S

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
            indptr, indices, data = _sparse.canonical_csr(X, square=False)
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
