"""Matplotlib figures for embeddings, reconstructions and training curves."""

import math

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .metrics import _check_labels

__all__ = [
    "plot_embedding",
    "plot_embeddings",
    "plot_reconstructions",
    "plot_training_curve",
]


def plot_embedding(
    Z, y=None, *, ax=None, title=None, cmap="tab10", legend=True, **scatter_kwargs
):
    """Scatter a 2-D embedding, coloured by label.

    Integer, boolean or string labels are treated as classes and get a legend;
    float labels are treated as a continuous quantity and get a colorbar.

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
        The embedding.

    y : array-like of shape (n_samples,), default=None
        Label of each sample. None draws every point in one colour.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created when None.

    title : str, default=None
        Title of the axes.

    cmap : str or Colormap, default="tab10"
        Colours of the classes, or colormap of a continuous ``y``. Classes
        take the successive colours of a qualitative colormap (fewer than 256
        colours, such as "tab10") and evenly spaced colours of any other.

    legend : bool, default=True
        Whether to draw the legend or colorbar.

    **scatter_kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter`, overriding the
        defaults (point size chosen from the number of samples, no edges).

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skae.plotting import plot_embedding
    >>> ax = plot_embedding([[0, 0], [1, 1], [2, 0]], ["a", "b", "a"], title="toy")
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['a', 'b']
    >>> plt.close(ax.figure)
    """
    Z = _check_embedding(Z, "Z")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    # Big markers merge into blobs once there are thousands of points.
    options = {"s": float(np.clip(20000 / len(Z), 2, 30)), "linewidths": 0}
    options.update(scatter_kwargs)

    if y is None:
        ax.scatter(Z[:, 0], Z[:, 1], **options)
    else:
        y = _check_labels(y, len(Z), "y", "Z")
        if np.issubdtype(y.dtype, np.floating):
            points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap=cmap, **options)
            if legend:
                ax.figure.colorbar(points, ax=ax)
        else:
            classes, codes = np.unique(y, return_inverse=True)
            colors = _class_colors(cmap, len(classes))
            # One scatter in the data's order, rather than one per class, so
            # that no class is systematically drawn on top of the others.
            ax.scatter(Z[:, 0], Z[:, 1], c=colors[codes], **options)
            if legend:
                handles = [
                    Line2D([], [], ls="", marker="o", color=color, label=str(label))
                    for label, color in zip(classes, colors, strict=True)
                ]
                ax.legend(
                    handles=handles,
                    loc="center left",
                    bbox_to_anchor=(1.0, 0.5),
                    frameon=False,
                    handletextpad=0.1,
                )
    if title is not None:
        ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_embeddings(embeddings, y=None, *, ncols=None, cmap="tab10"):
    """Draw several 2-D embeddings of the same samples side by side.

    Parameters
    ----------
    embeddings : dict of str to array-like of shape (n_samples, 2)
        Embeddings by method name, for instance
        ``{"PCA": Z_pca, "Autoencoder": Z_ae}``; the names become titles.

    y : array-like of shape (n_samples,), default=None
        Labels of the samples, shared by all panels; see :func:`plot_embedding`.

    ncols : int, default=None
        Number of panels per row; all in one row (at most 3) when None.

    cmap : str or Colormap, default="tab10"
        See :func:`plot_embedding`.

    Returns
    -------
    fig : matplotlib Figure
        With one axes per embedding, the legend or colorbar beside the last.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from skae.plotting import plot_embeddings
    >>> Z = np.random.default_rng(0).normal(size=(20, 2))
    >>> fig = plot_embeddings({"A": Z, "B": -Z}, np.arange(20) % 2)
    >>> [ax.get_title() for ax in fig.axes]
    ['A', 'B']
    >>> plt.close(fig)
    """
    if not isinstance(embeddings, dict) or not embeddings:
        raise ValueError(
            "Expected a non-empty dict of embeddings by name. "
            f"Received: embeddings={embeddings!r}"
        )
    n_panels = len(embeddings)
    if ncols is None:
        ncols = min(n_panels, 3)
    elif (
        not isinstance(ncols, (int, np.integer)) or isinstance(ncols, bool) or ncols < 1
    ):
        raise ValueError(
            f"Expected ncols to be a positive int. Received: ncols={ncols!r}"
        )
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(4 * ncols + 1, 4 * nrows),
        squeeze=False,
        layout="constrained",
    )
    axes = axes.ravel()
    for i, (name, Z) in enumerate(embeddings.items()):
        plot_embedding(
            Z, y, ax=axes[i], title=name, cmap=cmap, legend=i == n_panels - 1
        )
    for ax in axes[n_panels:]:
        ax.remove()
    return fig


def plot_reconstructions(rows, image_shape, *, n=10, cmap="gray"):
    """Show images and their reconstructions in a grid, one row per source.

    All images are drawn on the intensity scale of the first row, so that a
    faint reconstruction looks faint next to its original.

    Parameters
    ----------
    rows : dict of str to array-like of shape (n_samples, n_features)
        Images by row label, for instance ``{"original": X, "autoencoder":
        ae.inverse_transform(ae.transform(X)), "PCA": ...}``, all holding the
        same samples in the same order. Each row of an array is one image,
        flattened or not. Put the originals first: their range of values is
        the colour scale of every row.

    image_shape : tuple of int
        ``(height, width)`` of the images.

    n : int, default=10
        Number of images per row; the first ``n`` samples are shown.

    cmap : str or Colormap, default="gray"
        Colormap of the images.

    Returns
    -------
    fig : matplotlib Figure
        With ``len(rows) * min(n, n_samples)`` axes.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from skae.plotting import plot_reconstructions
    >>> X = np.random.default_rng(0).random((5, 64))
    >>> fig = plot_reconstructions({"original": X, "blurred": X * 0.5}, (8, 8), n=3)
    >>> len(fig.axes)
    6
    >>> plt.close(fig)
    """
    if not isinstance(rows, dict) or not rows:
        raise ValueError(
            "Expected a non-empty dict of image arrays by name. "
            f"Received: rows={rows!r}"
        )
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 2
        or not all(_positive_int(d) for d in image_shape)
    ):
        raise ValueError(
            "Expected image_shape to be (height, width). "
            f"Received: image_shape={image_shape!r}"
        )
    image_shape = tuple(image_shape)
    if not _positive_int(n):
        raise ValueError(f"Expected n to be a positive int. Received: n={n!r}")

    images, shapes = {}, {}
    for name, array in rows.items():
        if sp.issparse(array):
            # As the estimators take it: only the images shown are made dense
            # (np.asarray would give a 0-d array of objects).
            shape, array = array.shape, array.tocsr()[:n].toarray()
        else:
            array = np.asarray(array)
            shape = array.shape
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"Expected rows[{name!r}] to hold numeric images. "
                f"Received: rows[{name!r}].dtype={array.dtype}"
            )
        if array.ndim < 2 or math.prod(array.shape[1:]) != math.prod(image_shape):
            raise ValueError(
                f"Expected rows[{name!r}] to hold images of shape {image_shape}, "
                f"one per row. Received: rows[{name!r}].shape={shape}"
            )
        images[name], shapes[name] = array, shape
    # Compared before keeping the first n: arrays of different lengths cannot
    # hold the same samples in the same order.
    n_samples = {shape[0] for shape in shapes.values()}
    if len(n_samples) != 1 or 0 in n_samples:
        raise ValueError(
            "Expected every entry of rows to hold the same number (at least 1) of "
            "images. Received: "
            + ", ".join(
                f"rows[{name!r}].shape={shape}" for name, shape in shapes.items()
            )
        )
    n_images = min(n_samples.pop(), n)
    images = {
        name: array[:n_images].reshape(-1, *image_shape)
        for name, array in images.items()
    }
    # The first row (the originals) sets the intensity scale of all rows, so
    # that reconstructions are judged on the originals' scale; values outside
    # it, such as PCA's negative overshoots, are clipped.
    first = next(iter(images.values()))
    vmin, vmax = float(first.min()), float(first.max())

    fig, axes = plt.subplots(
        len(images),
        n_images,
        figsize=(1.1 * n_images + 1, 1.2 * len(images)),
        squeeze=False,
        layout="constrained",
    )
    for axes_row, (name, array) in zip(axes, images.items(), strict=True):
        for ax, image in zip(axes_row, array, strict=True):
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
        # A y-label rather than a title: axis("off") would hide it too.
        axes_row[0].set_ylabel(name, rotation=0, ha="right", va="center")
    return fig


def plot_training_curve(history, *, ax=None, log_scale=None):
    """Plot the training and validation loss per epoch.

    Parameters
    ----------
    history : dict of str to list of float, or keras.callbacks.History
        Losses per epoch under ``"loss"`` and, optionally, ``"val_loss"``, as
        in Keras' ``History.history``; other entries are ignored.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created when None.

    log_scale : bool, default=None
        Whether the loss axis is logarithmic. When None, it is if all losses
        are positive and they span more than a factor of 10, as they usually
        do when training starts from random weights.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skae.plotting import plot_training_curve
    >>> history = {"loss": [1.0, 0.1, 0.05], "val_loss": [1.1, 0.2, 0.1]}
    >>> ax = plot_training_curve(history)
    >>> [line.get_label() for line in ax.get_lines()], ax.get_yscale()
    (['loss', 'val_loss'], 'log')
    >>> plt.close(ax.figure)
    """
    history = getattr(history, "history", history)
    if not isinstance(history, dict) or "loss" not in history:
        raise ValueError(
            "Expected a dict with a 'loss' list, like keras' History.history. "
            f"Received: history={history!r}"
        )
    curves = {}
    for key in ("loss", "val_loss"):
        if key in history:
            try:
                values = np.asarray(history[key], dtype=np.float64)
            except (TypeError, ValueError):
                values = np.empty(0)
            if values.ndim != 1 or values.size == 0:
                raise ValueError(
                    f"Expected history[{key!r}] to be a non-empty list of floats. "
                    f"Received: history[{key!r}]={history[key]!r}"
                )
            curves[key] = values
    if len({len(values) for values in curves.values()}) > 1:
        raise ValueError(
            "Expected one loss and one val_loss per epoch. Received: "
            f"{len(curves['loss'])} losses and {len(curves['val_loss'])} val_losses"
        )

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    for key, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=key)
    if log_scale is None:
        finite = np.concatenate(list(curves.values()))
        finite = finite[np.isfinite(finite)]
        log_scale = (
            finite.size > 0 and finite.min() > 0 and finite.max() > 10 * finite.min()
        )
    if log_scale:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    return ax


def _check_embedding(Z, name):
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] != 2 or len(Z) == 0:
        raise ValueError(
            f"Expected {name} to be a 2-D embedding of shape (n_samples, 2); "
            f"keep two columns, e.g. {name}[:, :2]. Received: {name}.shape={Z.shape}"
        )
    # Matplotlib would draw strings as categories and leave NaN points out.
    if Z.dtype.kind not in "biuf":
        raise ValueError(
            f"Expected {name} to be numeric. Received: {name}.dtype={Z.dtype}"
        )
    n_bad = np.count_nonzero(~np.isfinite(Z))
    if n_bad:
        raise ValueError(
            f"Expected {name} to contain only finite values. "
            f"Received: {name} with {n_bad} NaN or infinite values"
        )
    return Z


def _class_colors(cmap, n_classes):
    cmap = plt.get_cmap(cmap)
    # Qualitative colormaps (tab10, Set1...) list a few distinct colours: use
    # them in order, cycling if needed. Continuous ones have 256 entries: sample
    # them evenly, or neighbouring classes would get near-identical colours.
    if cmap.N < 256:
        return cmap(np.arange(n_classes) % cmap.N)
    return cmap(np.linspace(0, 1, n_classes))


def _positive_int(value):
    # bool is an int to Python, but True images are no size.
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value > 0
    )
