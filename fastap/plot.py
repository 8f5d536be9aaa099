"""Pictures of an Affinity Propagation result (matplotlib, optional).

Three plots, each drawn on an ``ax`` you pass (or a new figure's) and
returned; none calls ``show()``:

- :func:`clusters`: the samples (2-D data, or their first two principal
  components), a line from each member to its exemplar, exemplars
  highlighted.
- :func:`similarity_heatmap`: the similarity matrix with samples reordered
  by cluster, so that clusters show as blocks on the diagonal.
- :func:`convergence`: exemplars (and exemplars changed) per iteration,
  from ``history_`` of an estimator fitted with ``record_history=True``.

matplotlib is not a dependency of fastap: ``pip install "fastap[plot]"``.
"""

import numpy as np

__all__ = ["clusters", "similarity_heatmap", "convergence"]

_INSTALL_HINT = (
    "fastap.plot needs matplotlib, which is not installed: "
    'pip install "fastap[plot]" (or pip install matplotlib).'
)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return plt


def _new_axes(ax, figsize):
    if ax is not None:
        return ax
    figure, ax = _pyplot().subplots(figsize=figsize)
    return ax


def _labels_and_exemplars(labels, exemplars):
    """Labels and exemplar indices from arrays or from a fitted estimator."""
    if hasattr(labels, "fit") and not hasattr(labels, "labels_"):
        raise ValueError("The estimator is not fitted yet: call fit before plotting it.")
    if hasattr(labels, "labels_"):
        model = labels
        if exemplars is not None:
            raise TypeError("Pass either a fitted estimator or labels and exemplars, not both.")
        labels, exemplars = model.labels_, model.cluster_centers_indices_
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {labels.shape}.")
    if exemplars is None:
        raise TypeError("exemplars (cluster_centers_indices_) are needed with plain labels.")
    exemplars = np.asarray(exemplars, dtype=np.intp).reshape(-1)
    if exemplars.size and (exemplars.min() < 0 or exemplars.max() >= labels.size):
        raise ValueError("exemplar indices must lie in [0, n_samples).")
    return labels, exemplars


def _two_dimensions(X):
    """``X`` itself when it has two columns, else its first two principal components."""
    if hasattr(X, "toarray"):  # a SciPy sparse matrix (e.g. TF-IDF vectors)
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 1:
        raise ValueError(f"X must be a 2-D array of features; got shape {X.shape}.")
    if X.shape[1] == 2:
        return X, ("feature 0", "feature 1")
    if X.shape[1] == 1:
        return np.column_stack([X[:, 0], np.zeros(X.shape[0])]), ("feature 0", "")
    centered = X - X.mean(axis=0)
    # Right singular vectors are the principal axes; no scikit-learn object
    # needed for two components.
    _, _, axes = np.linalg.svd(centered, full_matrices=False)
    points = centered @ axes[:2].T
    if points.shape[1] < 2:  # one sample: a single principal axis
        points = np.column_stack([points, np.zeros((points.shape[0], 2 - points.shape[1]))])
    return points, ("principal component 1", "principal component 2")


def clusters(
    X,
    labels,
    exemplars=None,
    *,
    ax=None,
    links=True,
    cmap="tab10",
    point_size=12,
    exemplar_size=160,
    title=None,
):
    """Scatter the samples, link each member to its exemplar, highlight exemplars.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The samples. With two features they are drawn as they are; otherwise
        they are projected on their first two principal components.
    labels : array-like of shape (n_samples,) or fitted estimator
        Cluster label of each sample (-1: no cluster, drawn grey, no link),
        or a fitted estimator, whose ``labels_`` and
        ``cluster_centers_indices_`` are used.
    exemplars : array-like of shape (n_clusters,), default=None
        Index of each cluster's exemplar (``cluster_centers_indices_``):
        cluster ``k``'s exemplar is ``X[exemplars[k]]``. Required with plain
        labels.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new figure.
    links : bool, default=True
        Draw a line from each member to its exemplar.
    cmap : str, default="tab10"
        Colormap for the clusters (cycled when there are more clusters than
        colours).
    point_size, exemplar_size : float
        Marker areas of members and exemplars.
    title : str, default=None
        Axes title; None writes "Estimated number of clusters = K".

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on. Its collections are, in order: the links (a
        ``LineCollection`` with one segment per member that is not an
        exemplar, labelled ``"links"``), the members (labelled
        ``"samples"``) and the exemplars (labelled ``"exemplars"``).
    """
    labels, exemplars = _labels_and_exemplars(labels, exemplars)
    points, axis_names = _two_dimensions(X)
    if points.shape[0] != labels.size:
        raise ValueError(f"X has {points.shape[0]} samples but labels has {labels.size}.")
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    ax = _new_axes(ax, (6, 5))
    colormap = plt.get_cmap(cmap)
    n_colors = getattr(colormap, "N", 256)
    in_cluster = (labels >= 0) & (labels < exemplars.size)
    colors = np.empty((labels.size, 4))
    colors[:] = (0.6, 0.6, 0.6, 1.0)  # unassigned samples
    colors[in_cluster] = colormap(labels[in_cluster] % n_colors)

    is_exemplar = np.zeros(labels.size, dtype=bool)
    is_exemplar[exemplars] = True
    linked = in_cluster & ~is_exemplar
    if not links:
        linked[:] = False
    # One segment per linked member: (its point, its exemplar's point).
    segments = np.stack([points[linked], points[exemplars[labels[linked]]]], axis=1)
    ax.add_collection(
        LineCollection(
            segments, colors=colors[linked], linewidths=0.6, alpha=0.5, zorder=1, label="links"
        )
    )
    members = ~is_exemplar
    ax.scatter(
        points[members, 0],
        points[members, 1],
        s=point_size,
        c=colors[members],
        zorder=2,
        label="samples",
    )
    exemplar_colors = colormap(np.arange(exemplars.size) % n_colors)
    ax.scatter(
        points[exemplars, 0],
        points[exemplars, 1],
        s=exemplar_size,
        marker="*",
        c=exemplar_colors.reshape(-1, 4),
        edgecolors="black",
        linewidths=0.8,
        zorder=3,
        label="exemplars",
    )
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title if title is not None else f"Estimated number of clusters = {exemplars.size}")
    ax.autoscale_view()
    return ax


def cluster_order(labels):
    """Sample order that groups clusters: by label, unassigned (-1) last.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Cluster labels.

    Returns
    -------
    order : ndarray of shape (n_samples,)
        Indices sorting the samples by cluster (stable within a cluster).
    """
    labels = np.asarray(labels)
    key = np.where(labels < 0, labels.max(initial=0) + 1, labels)
    return np.argsort(key, kind="stable")


def similarity_heatmap(
    S,
    labels,
    *,
    ax=None,
    max_samples=1000,
    cmap="viridis",
    boundaries=True,
    colorbar=True,
    title="Similarities, samples ordered by cluster",
):
    """The similarity matrix with samples reordered by cluster.

    Parameters
    ----------
    S : array-like of shape (n_samples, n_samples) or None
        Similarities. None takes ``affinity_matrix_`` of the fitted estimator
        passed as ``labels`` (its diagonal holds the preferences).
    labels : array-like of shape (n_samples,) or fitted estimator
        Cluster labels, or a fitted estimator (its ``labels_``).
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new figure.
    max_samples : int, default=1000
        Above this many samples, every k-th sample of the reordered matrix is
        shown (k chosen so that at most ``max_samples`` remain), so the image
        stays small; block structure survives the thinning.
    cmap : str, default="viridis"
        Colormap.
    boundaries : bool, default=True
        Draw lines between clusters.
    colorbar : bool, default=True
        Add a colorbar (an extra axes in the figure).
    title : str
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; ``ax.images[0]`` is the heatmap, of shape
        (m, m) with m = n_samples, or fewer when thinned.
    """
    if hasattr(labels, "labels_"):
        model = labels
        labels = model.labels_
        if S is None:
            S = getattr(model, "affinity_matrix_", None)
    if S is None:
        raise TypeError("S is None and no fitted estimator with affinity_matrix_ was given.")
    if hasattr(S, "toarray"):
        raise TypeError("similarity_heatmap needs a dense matrix; call .toarray() first.")
    S = np.asarray(S)
    labels = np.asarray(labels)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square matrix; got shape {S.shape}.")
    if labels.shape != (S.shape[0],):
        raise ValueError(f"labels must have shape ({S.shape[0]},); got {labels.shape}.")
    if max_samples < 1:
        raise ValueError("max_samples must be at least 1.")

    order = cluster_order(labels)
    step = -(-order.size // max_samples)  # ceil division
    shown = order[::step]
    ax = _new_axes(ax, (6, 5))
    image = ax.imshow(S[np.ix_(shown, shown)], cmap=cmap, interpolation="nearest")
    if boundaries and shown.size:
        shown_labels = labels[shown]
        edges = np.flatnonzero(shown_labels[1:] != shown_labels[:-1]) + 0.5
        for edge in edges:
            ax.axhline(edge, color="white", linewidth=0.5)
            ax.axvline(edge, color="white", linewidth=0.5)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="similarity")
    ax.set_xlabel("sample (ordered by cluster)")
    ax.set_ylabel("sample (ordered by cluster)")
    ax.set_title(title)
    return ax


def convergence(history, *, ax=None, changed=True, title="Convergence"):
    """Exemplars per iteration (and how many changed), from a fit's history.

    Parameters
    ----------
    history : dict or fitted estimator
        ``history_`` of an estimator fitted with ``record_history=True`` (a
        dict of per-iteration arrays: ``"n_exemplars"``, ``"n_changed"``,
        optionally ``"damping"``), or the estimator itself.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new figure.
    changed : bool, default=True
        Also draw the number of samples whose exemplar flag changed.
    title : str
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on: a line labelled ``"exemplars"`` (one point per
        iteration), a line labelled ``"changed"`` when asked, and a dotted
        vertical line wherever the damping changed (adaptive damping).
    """
    if not isinstance(history, dict):
        model = history
        history = getattr(model, "history_", None)
        if history is None:
            raise ValueError("This estimator has no history_: fit it with record_history=True.")
    if "n_exemplars" not in history:
        raise ValueError("history must hold an 'n_exemplars' array.")
    n_exemplars = np.asarray(history["n_exemplars"])
    iterations = np.arange(1, n_exemplars.size + 1)
    ax = _new_axes(ax, (6, 3.5))
    ax.plot(iterations, n_exemplars, drawstyle="steps-mid", label="exemplars")
    if changed and "n_changed" in history:
        ax.plot(
            iterations,
            np.asarray(history["n_changed"]),
            drawstyle="steps-mid",
            alpha=0.6,
            label="changed",
        )
    damping = history.get("damping")
    if damping is not None and len(damping) > 1:
        damping = np.asarray(damping)
        for step in np.flatnonzero(damping[1:] != damping[:-1]) + 1:
            ax.axvline(
                iterations[step],
                color="grey",
                linestyle=":",
                linewidth=1,
                label=f"damping {damping[step]:.2f}",
            )
    ax.set_xlabel("iteration")
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax
