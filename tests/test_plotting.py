import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from matplotlib.colors import to_rgba
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skae import AutoencoderTransformer
from skae.plotting import (
    EmbeddingComparisonDisplay,
    EmbeddingDisplay,
    ReconstructionDisplay,
    TrainingCurveDisplay,
    plot_embedding,
    plot_embeddings,
    plot_reconstructions,
    plot_training_curve,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(60, 2))
Y = np.arange(60) % 3
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
X200, Y200 = DIGITS_X[:200], DIGITS_Y[:200]


@pytest.fixture(scope="module")
def ae():
    return AutoencoderTransformer(2, epochs=2, random_state=0).fit(X200)


@pytest.fixture(scope="module")
def pca():
    return PCA(n_components=2).fit(X200)


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
        ({"A": Z, "B": Z[:10]}, {}, r"same samples.*embeddings\['B'\].shape=\(10, 2\)"),
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


# -- displays --------------------------------------------------------------------


def test_embedding_display_from_estimator(ae, tmp_path):
    display = EmbeddingDisplay.from_estimator(ae, X200, Y200)
    assert isinstance(display, EmbeddingDisplay)
    assert display.ax_.get_title() == "AutoencoderTransformer"
    assert display.figure_.axes == [display.ax_]
    np.testing.assert_allclose(display.scatter_.get_offsets(), ae.transform(X200))
    tab10 = plt.get_cmap("tab10")
    np.testing.assert_allclose(display.scatter_.get_facecolors(), tab10(Y200))
    texts = [text.get_text() for text in display.legend_.get_texts()]
    assert texts == [str(c) for c in range(10)]
    assert display.colorbar_ is None
    assert saves_png(display.figure_, tmp_path / "embedding.png")


def test_embedding_display_replots_on_other_axes(pca):
    _, (left, right) = plt.subplots(1, 2)
    display = EmbeddingDisplay.from_estimator(
        pca, X200, Y200, name="PCA of digits", ax=left
    )
    assert display.ax_ is left and left.get_title() == "PCA of digits"
    values = np.linspace(0.0, 1.0, 200)
    display.y = values
    assert display.plot(ax=right, cmap="viridis", name="again") is display
    assert display.ax_ is right and right.get_title() == "again"
    assert display.legend_ is None and display.colorbar_ is not None
    np.testing.assert_allclose(display.scatter_.get_array(), values)
    # The first Axes keeps its drawing.
    assert len(left.collections) == 1 and left.get_legend() is not None


def test_embedding_display_from_embedding_options():
    display = EmbeddingDisplay.from_embedding(
        Z, Y, legend=False, scatter_kwargs={"s": 50, "marker": "x"}
    )
    assert display.legend_ is None and display.colorbar_ is None
    np.testing.assert_array_equal(display.scatter_.get_sizes(), [50])
    assert display.ax_.get_title() == ""
    display = EmbeddingDisplay(Z).plot()
    assert len(np.unique(display.scatter_.get_facecolors(), axis=0)) == 1


def test_embedding_display_refuses_bad_input(pca):
    with pytest.raises(NotFittedError):
        EmbeddingDisplay.from_estimator(PCA(2), X200)
    with pytest.raises(
        ValueError, match=r"Received: estimator.transform\(X\).shape=\(200, 3\)"
    ):
        EmbeddingDisplay.from_estimator(PCA(3).fit(X200), X200)
    with pytest.raises(ValueError, match=r"y to be 1-D.*row of X \(200\)"):
        EmbeddingDisplay.from_estimator(pca, X200, Y200[:10])
    with pytest.raises(ValueError, match=r"Received: embedding.shape=\(5, 3\)"):
        EmbeddingDisplay(np.zeros((5, 3))).plot()
    with pytest.raises(TypeError, match=r"ax to be a matplotlib Axes. Received: ax=1"):
        EmbeddingDisplay(Z).plot(ax=1)
    with pytest.raises(TypeError, match=r"Received: scatter_kwargs=\['s'\]"):
        EmbeddingDisplay(Z).plot(scatter_kwargs=["s"])


def test_embedding_comparison_from_estimators(ae, pca):
    display = EmbeddingComparisonDisplay.from_estimators(
        {"Autoencoder": ae, "PCA": pca}, X200, Y200
    )
    assert display.axes_.shape == (1, 2) and display.bounding_ax_ is None
    assert display.figure_.axes == list(display.axes_.ravel())
    assert [ax.get_title() for ax in display.axes_.ravel()] == ["Autoencoder", "PCA"]
    for panel, estimator in zip(display.displays_, [ae, pca], strict=True):
        np.testing.assert_allclose(
            panel.scatter_.get_offsets(), estimator.transform(X200)
        )
    # One legend, beside the last panel.
    assert [panel.legend_ is not None for panel in display.displays_] == [False, True]


def test_embedding_comparison_divides_one_axes():
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
    display = EmbeddingComparisonDisplay.from_embeddings(
        {"a": Z, "b": -Z, "c": 2 * Z}, Y, ax=right, n_cols=2
    )
    assert display.bounding_ax_ is right and not right.axison
    assert display.figure_ is fig and display.axes_.shape == (2, 2)
    assert display.axes_[1, 1] is None
    assert len(fig.axes) == 2 + 3
    fig.canvas.draw()
    box = right.get_position()
    for ax in display.axes_.ravel()[:3]:
        assert ax.get_position().x0 >= box.x0 - 1e-6
    assert left.axison and not left.collections


def test_embedding_comparison_on_an_array_of_axes():
    fig, axes = plt.subplots(2, 1)
    display = EmbeddingComparisonDisplay({"a": Z, "b": -Z}, np.linspace(0, 1, 60)).plot(
        ax=axes
    )
    assert display.axes_.shape == (2,) and display.bounding_ax_ is None
    assert display.displays_[1].ax_ is axes[1] and display.figure_ is fig
    # A continuous y: one colorbar, beside the last panel.
    assert [panel.colorbar_ is not None for panel in display.displays_] == [
        False,
        True,
    ]
    assert len(fig.axes) == 3


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_cols": 2}, ValueError, r"n_cols=None when ax is an array.*n_cols=2"),
        ({"ax": "axes3"}, ValueError, r"ax to hold 2 Axes.*ax with 3 Axes"),
        ({"ax": ["x", "y"]}, TypeError, r"Axes or an array-like of them"),
        ({"n_cols": 1.5, "ax": None}, ValueError, r"Received: n_cols=1.5"),
    ],
)
def test_embedding_comparison_refuses_bad_axes(kwargs, error, match):
    if kwargs.get("ax") == "axes3":
        kwargs["ax"] = plt.subplots(1, 3)[1]
    kwargs.setdefault("ax", plt.subplots(1, 2)[1])
    with pytest.raises(error, match=match):
        EmbeddingComparisonDisplay({"a": Z, "b": Z}, Y).plot(**kwargs)


def test_embedding_comparison_refuses_bad_input(pca):
    with pytest.raises(ValueError, match=r"Received: estimators=\{\}"):
        EmbeddingComparisonDisplay.from_estimators({}, X200)
    with pytest.raises(NotFittedError):
        EmbeddingComparisonDisplay.from_estimators({"a": pca, "b": PCA(2)}, X200)
    with pytest.raises(
        ValueError, match=r"Received: estimators\['3-D'\].transform\(X\).shape"
    ):
        EmbeddingComparisonDisplay.from_estimators({"3-D": PCA(3).fit(X200)}, X200)
    with pytest.raises(ValueError, match=r"one label per row of embeddings\['a'\]"):
        EmbeddingComparisonDisplay.from_embeddings({"a": Z}, Y[:5])


def test_reconstruction_display_from_estimator(ae, tmp_path):
    display = ReconstructionDisplay.from_estimator(ae, X200, n=5)
    assert display.axes_.shape == display.im_.shape == (2, 5)
    assert display.figure_.axes == list(display.axes_.ravel())
    labels = [ax.get_ylabel() for ax in display.axes_[:, 0]]
    assert labels == ["original", "AutoencoderTransformer"]
    rebuilt = ae.inverse_transform(ae.transform(X200[:5]))
    for j in range(5):
        np.testing.assert_array_equal(
            display.im_[0, j].get_array(), X200[j].reshape(8, 8)
        )
        np.testing.assert_allclose(
            display.im_[1, j].get_array(), rebuilt[j].reshape(8, 8)
        )
    assert {im.get_clim() for im in display.im_.flat} == {
        (X200[:5].min(), X200[:5].max())
    }
    assert saves_png(display.figure_, tmp_path / "reconstructions.png")


def test_reconstruction_display_image_shapes(pca):
    # Given, or square rows, or the images X holds.
    display = ReconstructionDisplay.from_estimator(pca, X200, image_shape=(4, 16))
    assert display.im_[0, 0].get_array().shape == (4, 16)
    assert display.axes_.shape == (2, 10)
    images = X200[:3].reshape(3, 8, 8)
    display = ReconstructionDisplay.from_reconstructions(images, images / 2)
    assert display.im_[1, 2].get_array().shape == (8, 8)
    with pytest.raises(ValueError, match=r"Expected image_shape.*X.shape=\(200, 60\)"):
        ReconstructionDisplay.from_estimator(
            PCA(2).fit(X200[:, :60]), X200[:, :60], n=3
        )


def test_reconstruction_display_uses_the_fitted_image_shape():
    images = X200.reshape(-1, 4, 16)
    on_images = AutoencoderTransformer(
        4, input_shape=(4, 16), epochs=1, random_state=0
    ).fit(images)
    # Rows of 64 values, which alone would be taken for 8x8 images.
    display = ReconstructionDisplay.from_estimator(on_images, X200, n=2)
    assert display.im_[0, 0].get_array().shape == (4, 16)
    assert display.im_[1, 1].get_array().shape == (4, 16)


def test_reconstruction_display_from_reconstructions_options():
    X = RNG.random((6, 64))
    rows = {"halved": X / 2, "shifted": X + 1}
    fig, (_, right) = plt.subplots(1, 2)
    display = ReconstructionDisplay.from_reconstructions(
        sp.csr_matrix(X), rows, n=4, ax=right, imshow_kwargs={"cmap": "viridis"}
    )
    assert display.bounding_ax_ is right and not right.axison
    assert display.axes_.shape == (3, 4) and len(fig.axes) == 2 + 12
    labels = [ax.get_ylabel() for ax in display.axes_[:, 0]]
    assert labels == ["original", "halved", "shifted"]
    np.testing.assert_array_equal(
        display.im_[2, 3].get_array(), (X[3] + 1).reshape(8, 8)
    )
    assert display.im_[0, 0].get_cmap().name == "viridis"
    _, axes = plt.subplots(2, 3)
    display = ReconstructionDisplay.from_reconstructions(X, X / 2, n=3, ax=axes)
    assert display.axes_[1, 2] is axes[1, 2] and display.bounding_ax_ is None
    assert axes[1, 0].get_ylabel() == "reconstruction"


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((np.zeros((4, 64)), {}), {}, ValueError, r"X_reconstructed=\{\}"),
        (
            (np.zeros((4, 64)), {"a": np.zeros((4, 64))}),
            {"name": "b"},
            ValueError,
            r"name=None when X_reconstructed is a dict",
        ),
        (
            (np.zeros((4, 64)), np.zeros((3, 64))),
            {},
            ValueError,
            r"same number.*X.shape=\(4, 64\), X_reconstructed.shape=\(3, 64\)",
        ),
        (
            (np.zeros((4, 64)), {"a": np.zeros((4, 60))}),
            {},
            ValueError,
            r"X_reconstructed\['a'\] to hold images of shape \(8, 8\)",
        ),
        ((np.zeros((4, 64)), np.zeros((4, 64))), {"n": 0}, ValueError, r"n=0"),
        (
            (np.zeros((4, 64)), {"original": np.zeros((4, 64))}),
            {},
            ValueError,
            r"own label. Received: X_reconstructed\['original'\] labelled 'orig",
        ),
        (
            (np.zeros((4, 64)), np.zeros((4, 64))),
            {"ax": plt.Axes},
            TypeError,
            r"Expected ax to be a matplotlib Axes or an array-like",
        ),
    ],
)
def test_reconstruction_display_refuses_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ReconstructionDisplay.from_reconstructions(*args, **kwargs)


def test_reconstruction_display_refuses_bad_estimators_and_images(pca):
    with pytest.raises(NotFittedError):
        ReconstructionDisplay.from_estimator(PCA(2), X200)
    kmeans = KMeans(2, n_init=1, random_state=0).fit(X200)
    with pytest.raises(TypeError, match=r"with inverse_transform. Received: estim"):
        ReconstructionDisplay.from_estimator(kmeans, X200)
    with pytest.raises(ValueError, match=r"Received: images\['a'\].shape=\(4, 64\)"):
        ReconstructionDisplay({"a": np.zeros((4, 64))}).plot()
    with pytest.raises(ValueError, match=r"images\['b'\].shape=\(3, 8, 8\)"):
        ReconstructionDisplay(
            {"a": np.zeros((4, 8, 8)), "b": np.zeros((3, 8, 8))}
        ).plot()
    with pytest.raises(TypeError, match=r"Received: imshow_kwargs=1"):
        ReconstructionDisplay.from_estimator(pca, X200, imshow_kwargs=1)


def test_training_curve_display_from_estimator(ae, tmp_path):
    display = TrainingCurveDisplay.from_estimator(ae)
    assert list(display.lines_) == list(ae.history_) == ["loss"]
    np.testing.assert_array_equal(display.lines_["loss"].get_xdata(), [1, 2])
    np.testing.assert_allclose(display.lines_["loss"].get_ydata(), ae.history_["loss"])
    assert display.ax_.get_xlabel() == "epoch" and display.ax_.get_ylabel() == "loss"
    assert display.figure_.axes == [display.ax_]
    assert saves_png(display.figure_, tmp_path / "curve.png")
    # A pipeline's last step holds the history.
    pipeline = make_pipeline(FunctionTransformer(), ae)
    display = TrainingCurveDisplay.from_estimator(pipeline, name="piped")
    assert display.lines_["loss"].get_label() == "piped (loss)"


def test_training_curve_display_runs_on_one_axes():
    _, ax = plt.subplots()
    runs = [
        {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5]},
        {"loss": [0.9, 0.6, 0.3], "val_loss": [1.0, 0.7, 0.4]},
    ]
    displays = [
        TrainingCurveDisplay.from_history(h, name=f"seed {i}", ax=ax)
        for i, h in enumerate(runs)
    ]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [
        "seed 0 (loss)",
        "seed 0 (val_loss)",
        "seed 1 (loss)",
        "seed 1 (val_loss)",
    ]
    colors = [
        [to_rgba(line.get_color()) for line in d.lines_.values()] for d in displays
    ]
    assert colors[0][0] == colors[0][1] and colors[1][0] == colors[1][1]
    assert colors[0][0] != colors[1][0]
    styles = [line.get_linestyle() for line in displays[0].lines_.values()]
    assert styles == ["-", "--"]
    assert ax.get_yscale() == "linear"


def test_training_curve_display_decoder_epochs_and_options():
    history = {
        "loss": list(np.geomspace(1.0, 0.01, 50)),
        "decoder_loss": [0.02, 0.015],
        "decoder_val_loss": [0.03, 0.02],
    }
    display = TrainingCurveDisplay(history).plot(line_kwargs={"linewidth": 3, "c": "k"})
    assert list(display.lines_) == ["loss", "decoder_loss", "decoder_val_loss"]
    np.testing.assert_array_equal(display.lines_["decoder_loss"].get_xdata(), [51, 52])
    assert display.lines_["decoder_loss"].get_linestyle() == ":"
    assert {line.get_linewidth() for line in display.lines_.values()} == {3}
    assert {line.get_color() for line in display.lines_.values()} == {"k"}
    # No marker per epoch on 50 epochs; one on 2.
    assert display.lines_["loss"].get_marker() in ("", "None")
    assert display.lines_["decoder_loss"].get_marker() == "."
    assert display.ax_.get_yscale() == "log"
    display = TrainingCurveDisplay.from_history(history, log_scale=False)
    assert display.ax_.get_yscale() == "linear"


@pytest.mark.parametrize(
    "history, kwargs, error, match",
    [
        (
            {"loss": [1.0, 0.5], "decoder_loss": [1.0], "decoder_val_loss": [1.0, 2.0]},
            {},
            ValueError,
            r"1 decoder_losses and 2 decoder_val_losses",
        ),
        ({"loss": [1.0]}, {"line_kwargs": "r-"}, TypeError, r"line_kwargs='r-'"),
        ({"loss": [1.0]}, {"ax": "ax"}, TypeError, r"Received: ax='ax'"),
        ({"loss": [[1.0]]}, {}, ValueError, r"history\['loss'\] to be a non-empty"),
    ],
)
def test_training_curve_display_refuses_bad_input(history, kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainingCurveDisplay.from_history(history, **kwargs)


def test_training_curve_display_refuses_bad_estimators(pca):
    with pytest.raises(NotFittedError):
        TrainingCurveDisplay.from_estimator(AutoencoderTransformer())
    with pytest.raises(TypeError, match=r"history_ attribute.*Received: estimator=PCA"):
        TrainingCurveDisplay.from_estimator(pca)
