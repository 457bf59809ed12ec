import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from matplotlib.colors import to_rgba

from skae.plotting import (
    plot_embedding,
    plot_embeddings,
    plot_reconstructions,
    plot_training_curve,
)

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(60, 2))
Y = np.arange(60) % 3


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def saves_png(fig, path):
    fig.savefig(path)
    return path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_plot_embedding_classes(tmp_path):
    ax = plot_embedding(Z, Y, title="toy")
    assert ax.get_title() == "toy"
    (points,) = ax.collections
    np.testing.assert_array_equal(points.get_offsets(), Z)
    tab10 = plt.get_cmap("tab10")
    np.testing.assert_allclose(points.get_facecolors(), tab10(Y))
    legend = ax.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["0", "1", "2"]
    np.testing.assert_allclose(
        [to_rgba(h.get_color()) for h in legend.legend_handles], tab10([0, 1, 2])
    )
    assert len(ax.figure.axes) == 1
    assert saves_png(ax.figure, tmp_path / "embedding.png")


def test_plot_embedding_string_labels_on_given_axes():
    _, ax = plt.subplots()
    returned = plot_embedding(Z, np.where(Y == 0, "zero", "other"), ax=ax)
    assert returned is ax
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert texts == ["other", "zero"]


def test_plot_embedding_continuous_labels_get_a_colorbar():
    values = np.linspace(0.0, 1.0, len(Z))
    ax = plot_embedding(Z, values, cmap="viridis")
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 2  # the embedding and its colorbar
    np.testing.assert_allclose(ax.collections[0].get_array(), values)


def test_plot_embedding_without_labels_or_legend():
    ax = plot_embedding(Z)
    assert ax.get_legend() is None
    assert len(np.unique(ax.collections[0].get_facecolors(), axis=0)) == 1
    ax = plot_embedding(Z, Y, legend=False, s=50)
    assert ax.get_legend() is None
    np.testing.assert_array_equal(ax.collections[0].get_sizes(), [50])


def test_plot_embedding_class_colors():
    many = np.arange(60) % 12
    # A qualitative colormap is cycled; a continuous one is sampled evenly.
    colors = plot_embedding(Z, many).collections[0].get_facecolors()
    np.testing.assert_allclose(colors[10], to_rgba(plt.get_cmap("tab10")(0)))
    colors = plot_embedding(Z, Y, cmap="viridis").collections[0].get_facecolors()
    viridis = plt.get_cmap("viridis")
    np.testing.assert_allclose(colors[:3], viridis([0.0, 0.5, 1.0]))


@pytest.mark.parametrize(
    "Z_bad, y_bad, match",
    [
        (np.zeros((60, 3)), Y, r"Z to be a 2-D embedding.*Z.shape=\(60, 3\)"),
        (np.zeros(60), Y, r"Received: Z.shape=\(60,\)"),
        (Z, Y[:-1], r"y to be 1-D with one label per row of Z \(60\)"),
        (Z, Y[:, None], r"Received: y.shape=\(60, 1\)"),
        (Z.astype(str), Y, r"Z to be numeric"),
        (np.where(Z > 0.9, np.nan, Z), Y, r"Z to contain only finite values"),
        # A point without a label would vanish from the picture, or break the
        # legend's sort.
        (Z, np.where(Y == 1, np.nan, Y), r"Received: y with 20 missing"),
        (Z, np.array(["a", None, "b"] * 20), r"Received: y with 20 missing"),
    ],
)
def test_plot_embedding_validation(Z_bad, y_bad, match):
    with pytest.raises(ValueError, match=match):
        plot_embedding(Z_bad, y_bad)


def test_plot_embeddings(tmp_path):
    embeddings = {"PCA": Z, "Autoencoder": -Z, "UMAP": 2 * Z}
    fig = plot_embeddings(embeddings, Y)
    assert [ax.get_title() for ax in fig.axes] == list(embeddings)
    assert len({ax.get_position().y0 for ax in fig.axes}) == 1  # one row
    # One shared legend, beside the last panel.
    assert [ax.get_legend() is not None for ax in fig.axes] == [False, False, True]
    assert saves_png(fig, tmp_path / "embeddings.png")


def test_plot_embeddings_grid():
    fig = plot_embeddings({str(i): Z for i in range(5)}, Y, ncols=2)
    assert len(fig.axes) == 5  # the sixth, empty cell is removed
    fig.canvas.draw()
    assert len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 3
    # numpy integers, as n accepts them.
    assert len(plot_embeddings({"a": Z, "b": Z}, Y, ncols=np.int64(1)).axes) == 2


@pytest.mark.parametrize(
    "embeddings, kwargs, match",
    [
        ({}, {}, r"non-empty dict of embeddings"),
        ([Z], {}, r"Received: embeddings=\[array"),
        ({"A": Z}, {"ncols": 0}, r"Received: ncols=0"),
        ({"A": Z, "B": Z[:10]}, {}, r"one label per row of Z \(10\)"),
    ],
)
def test_plot_embeddings_validation(embeddings, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_embeddings(embeddings, Y, **kwargs)


def test_plot_reconstructions(tmp_path):
    X = RNG.random((12, 64))
    rows = {"original": X, "autoencoder": X * 0.5, "PCA": X.reshape(12, 8, 8)}
    fig = plot_reconstructions(rows, (8, 8))
    assert len(fig.axes) == 30
    grid = np.array(fig.axes).reshape(3, 10)
    assert [ax.get_ylabel() for ax in grid[:, 0]] == list(rows)
    for ax, expected in zip(grid[1], X[:10] * 0.5, strict=True):
        (image,) = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), expected.reshape(8, 8))
    # The originals' scale for all, so the halved images look darker.
    clims = {image.get_clim() for ax in fig.axes for image in ax.get_images()}
    assert clims == {(X[:10].min(), X[:10].max())}
    assert saves_png(fig, tmp_path / "reconstructions.png")


def test_plot_reconstructions_takes_sparse_rows():
    X = RNG.random((12, 64)) * (RNG.random((12, 64)) > 0.5)
    dense = plot_reconstructions({"original": X, "copy": X}, (8, 8), n=3)
    for matrix in (sp.csr_matrix(X), sp.coo_array(X)):
        fig = plot_reconstructions({"original": matrix, "copy": X}, (8, 8), n=3)
        for ax, expected in zip(fig.axes, dense.axes, strict=True):
            np.testing.assert_array_equal(
                ax.get_images()[0].get_array(), expected.get_images()[0].get_array()
            )
    with pytest.raises(ValueError, match=r"same number.*rows\['copy'\].shape=\(4, 64"):
        plot_reconstructions({"original": sp.csr_matrix(X), "copy": X[:4]}, (8, 8))


def test_plot_reconstructions_fewer_samples_than_n():
    X = RNG.random((4, 6))
    fig = plot_reconstructions({"original": X, "copy": X}, (2, 3), n=10)
    assert len(fig.axes) == 8


@pytest.mark.parametrize(
    "rows, image_shape, kwargs, match",
    [
        ({}, (8, 8), {}, r"non-empty dict of image arrays"),
        ({"a": np.zeros((4, 60))}, (8, 8), {}, r"rows\['a'\].shape=\(4, 60\)"),
        # The shape given, not that of the first n rows made dense.
        (
            {"a": sp.csr_matrix((100, 60))},
            (8, 8),
            {},
            r"rows\['a'\].shape=\(100, 60\)",
        ),
        ({"a": np.zeros(64)}, (8, 8), {}, r"rows\['a'\].shape=\(64,\)"),
        (
            {"a": np.zeros((4, 64)), "b": np.zeros((2, 64))},
            (8, 8),
            {},
            r"same number.*rows\['b'\].shape=\(2, 64\)",
        ),
        (
            # Both longer than n: still not the same samples.
            {"a": np.zeros((100, 64)), "b": np.zeros((50, 64))},
            (8, 8),
            {"n": 10},
            r"same number.*rows\['b'\].shape=\(50, 64\)",
        ),
        ({"a": np.zeros((4, 64))}, (4, 4, 4), {}, r"image_shape=\(4, 4, 4\)"),
        ({"a": np.zeros((4, 64))}, 64, {}, r"image_shape=64"),
        ({"a": np.zeros((4, 64))}, (8, 8), {"n": 0}, r"Received: n=0"),
        # bool is an int to Python.
        ({"a": np.zeros((4, 64))}, (8, 8), {"n": True}, r"Received: n=True"),
        ({"a": np.full((4, 64), "x")}, (8, 8), {}, r"rows\['a'\].dtype=<U1"),
        ({"a": np.zeros((4, 1))}, (True, True), {}, r"image_shape=\(True, True\)"),
    ],
)
def test_plot_reconstructions_validation(rows, image_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_reconstructions(rows, image_shape, **kwargs)


def test_plot_training_curve(tmp_path):
    history = {"loss": [1.0, 0.1, 0.05, 0.04], "val_loss": [1.2, 0.3, 0.2, 0.25]}
    ax = plot_training_curve(history | {"learning_rate": [1e-3] * 4})
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["loss", "val_loss"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(lines[1].get_ydata(), history["val_loss"])
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch"
    assert saves_png(ax.figure, tmp_path / "training_curve.png")


def test_plot_training_curve_scale_and_history_object():
    class History:  # what keras' model.fit returns
        history = {"loss": [0.5, 0.4, 0.3]}

    _, ax = plt.subplots()
    assert plot_training_curve(History(), ax=ax) is ax
    assert ax.get_yscale() == "linear"  # within a factor of 10
    assert len(ax.get_lines()) == 1
    ax = plot_training_curve({"loss": [0.5, 0.4]}, log_scale=True)
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize(
    "history, match",
    [
        ({"val_loss": [1.0]}, r"a 'loss' list"),
        ([1.0, 0.5], r"Received: history=\[1.0, 0.5\]"),
        ({"loss": []}, r"history\['loss'\] to be a non-empty list"),
        ({"loss": ["a"]}, r"list of floats. Received: history\['loss'\]=\['a'\]"),
        ({"loss": [1.0, 0.5], "val_loss": [1.0]}, r"2 losses and 1 val_losses"),
    ],
)
def test_plot_training_curve_validation(history, match):
    with pytest.raises(ValueError, match=match):
        plot_training_curve(history)
