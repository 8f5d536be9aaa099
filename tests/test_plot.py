"""fastap.plot draws the expected artists and never shows a window."""

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

from fastap import AffinityPropagation  # noqa: E402
from fastap import plot as fplot  # noqa: E402


@pytest.fixture(autouse=True)
def no_show_and_close(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("fastap.plot must not call show()")

    monkeypatch.setattr(plt, "show", forbidden)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_blobs(
        n_samples=60, centers=[[20, 20], [4, 4], [4, 20]], cluster_std=2.0, random_state=0
    )
    model = AffinityPropagation(random_state=0).fit(X)
    assert len(model.cluster_centers_indices_) == 3
    return X, model


def collections_by_label(ax):
    return {c.get_label(): c for c in ax.collections}


def test_clusters_draws_one_link_per_member_and_highlights_exemplars(fitted):
    X, model = fitted
    ax = fplot.clusters(X, model)
    found = collections_by_label(ax)
    links, samples, exemplars = found["links"], found["samples"], found["exemplars"]
    assert isinstance(links, LineCollection) and isinstance(exemplars, PathCollection)

    n_exemplars = len(model.cluster_centers_indices_)
    assert len(links.get_segments()) == X.shape[0] - n_exemplars
    assert exemplars.get_offsets().shape == (n_exemplars, 2)
    np.testing.assert_allclose(exemplars.get_offsets(), X[model.cluster_centers_indices_])
    assert samples.get_offsets().shape == (X.shape[0] - n_exemplars, 2)
    # Each segment joins a member to its own exemplar.
    members = np.setdiff1d(np.arange(X.shape[0]), model.cluster_centers_indices_)
    expected = np.stack([X[members], X[model.cluster_centers_indices_[model.labels_[members]]]], 1)
    np.testing.assert_allclose(np.array(links.get_segments()), expected)
    assert ax.get_title() == f"Estimated number of clusters = {n_exemplars}"


def test_clusters_accepts_labels_and_exemplars_and_draws_on_given_axes(fitted):
    X, model = fitted
    figure, ax = plt.subplots()
    returned = fplot.clusters(
        X, model.labels_, model.cluster_centers_indices_, ax=ax, links=False, title="t"
    )
    assert returned is ax and plt.get_fignums() == [figure.number]
    assert len(collections_by_label(ax)["links"].get_segments()) == 0
    assert ax.get_title() == "t"


def test_clusters_projects_on_principal_components():
    X, _ = make_blobs(n_samples=40, n_features=5, centers=2, random_state=1)
    model = AffinityPropagation(random_state=0).fit(X)
    ax = fplot.clusters(X, model)
    from sklearn.decomposition import PCA

    projected = PCA(n_components=2).fit_transform(X)
    shown = collections_by_label(ax)["exemplars"].get_offsets()
    expected = projected[model.cluster_centers_indices_]
    # Principal axes are defined up to sign.
    np.testing.assert_allclose(np.abs(shown), np.abs(expected), rtol=1e-6, atol=1e-8)
    assert ax.get_xlabel() == "principal component 1"


def test_clusters_unassigned_samples_have_no_link():
    X = np.random.RandomState(0).rand(10, 2)
    labels = np.array([0, 0, 0, -1, 1, 1, -1, 0, 1, 1])
    ax = fplot.clusters(X, labels, [0, 4])
    found = collections_by_label(ax)
    assert len(found["links"].get_segments()) == 6  # 8 assigned, 2 of them exemplars
    assert found["exemplars"].get_offsets().shape == (2, 2)


def test_clusters_with_no_exemplar():
    X = np.random.RandomState(0).rand(5, 2)
    ax = fplot.clusters(X, np.full(5, -1), np.array([], dtype=int))
    found = collections_by_label(ax)
    assert len(found["links"].get_segments()) == 0
    assert len(found["exemplars"].get_offsets()) == 0
    assert len(found["samples"].get_offsets()) == 5


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros((4, 2)), np.zeros(3, dtype=int), [0]), ValueError,
         "X has 4 samples but labels has 3"),
        ((np.zeros((4, 2)), np.zeros(4, dtype=int)), TypeError, "exemplars .* are needed"),
        ((np.zeros((4, 2)), np.zeros(4, dtype=int), [7]), ValueError,
         r"exemplar indices must lie in \[0, n_samples\)"),
    ],
)
def test_clusters_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        fplot.clusters(*args)


def test_heatmap_reorders_by_cluster(fitted):
    X, model = fitted
    S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    ax = fplot.similarity_heatmap(S, model.labels_)
    image = ax.images[0].get_array()
    assert image.shape == (X.shape[0], X.shape[0])
    order = np.argsort(model.labels_, kind="stable")
    np.testing.assert_array_equal(image, S[np.ix_(order, order)])
    # One horizontal and one vertical boundary between consecutive clusters.
    assert len(ax.lines) == 2 * (len(model.cluster_centers_indices_) - 1)
    assert len(ax.figure.axes) == 2  # the colorbar


def test_heatmap_from_model_and_thinned(fitted):
    X, model = fitted
    ax = fplot.similarity_heatmap(None, model, max_samples=25, colorbar=False)
    # ceil(60 / 25) = 3: every third sample of the ordered matrix.
    assert ax.images[0].get_array().shape == (20, 20)
    assert len(ax.figure.axes) == 1


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="square"):
        fplot.similarity_heatmap(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        fplot.similarity_heatmap(np.zeros((3, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="S is None and no fitted estimator"):
        fplot.similarity_heatmap(None, np.zeros(3))


def test_cluster_order_puts_unassigned_last():
    np.testing.assert_array_equal(fplot.cluster_order([1, -1, 0, 1, 0]), [2, 4, 0, 3, 1])


def test_convergence_trace_from_history():
    history = {
        "n_exemplars": np.array([9, 7, 5, 5, 5]),
        "n_changed": np.array([9, 4, 2, 0, 0]),
        "damping": np.array([0.5, 0.5, 0.55, 0.55, 0.6]),
    }
    ax = fplot.convergence(history)
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_array_equal(lines["exemplars"].get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(lines["exemplars"].get_ydata(), history["n_exemplars"])
    np.testing.assert_array_equal(lines["changed"].get_ydata(), history["n_changed"])
    # Two damping changes: at iterations 3 and 5.
    assert {"damping 0.55", "damping 0.60"} <= set(lines)


def test_convergence_needs_a_history():
    with pytest.raises(ValueError, match="record_history"):
        fplot.convergence(AffinityPropagation())


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"fastap\[plot\]"):
        fplot.convergence({"n_exemplars": [1, 1]})


def test_convergence_from_fitted_estimator(fitted):
    X, _ = fitted
    model = AffinityPropagation(random_state=0, record_history=True).fit(X)
    ax = fplot.convergence(model)
    line = next(line for line in ax.lines if line.get_label() == "exemplars")
    assert len(line.get_ydata()) == model.n_iter_
    np.testing.assert_array_equal(line.get_ydata(), model.history_["n_exemplars"])
    assert line.get_ydata()[-1] == len(model.cluster_centers_indices_)


def test_clusters_accepts_sparse_features(fitted):
    from scipy import sparse

    X, model = fitted
    dense = fplot.clusters(X, model)
    from_sparse = fplot.clusters(sparse.csr_matrix(X), model)
    np.testing.assert_allclose(
        collections_by_label(from_sparse)["exemplars"].get_offsets(),
        collections_by_label(dense)["exemplars"].get_offsets(),
    )


def test_clusters_of_an_unfitted_estimator_is_a_clear_error():
    with pytest.raises(ValueError, match="not fitted"):
        fplot.clusters(np.ones((3, 2)), AffinityPropagation())
