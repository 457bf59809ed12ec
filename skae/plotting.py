"""Matplotlib displays of embeddings, reconstructions and training curves.

Each display works as scikit-learn's (``ConfusionMatrixDisplay``): the
constructor stores the data, ``plot`` draws it and keeps the figure, the axes
and the artists in attributes ending in ``_``, and class methods build and
plot one from a fitted estimator or from arrays. Displays that fill a grid of
axes take ``ax`` as ``PartialDependenceDisplay`` does: None, one Axes to
divide, or an array of Axes. The ``plot_*`` functions are thin wrappers over
the displays, kept for existing code.
"""

from ._embedding_display import EmbeddingComparisonDisplay, EmbeddingDisplay
from ._plot_utils import check_positive_int
from ._reconstruction_display import ReconstructionDisplay, image_rows
from ._training_curve_display import TrainingCurveDisplay

__all__ = [
    "EmbeddingComparisonDisplay",
    "EmbeddingDisplay",
    "ReconstructionDisplay",
    "TrainingCurveDisplay",
    "plot_embedding",
    "plot_embeddings",
    "plot_reconstructions",
    "plot_training_curve",
]


def plot_embedding(
    Z, y=None, *, ax=None, title=None, cmap="tab10", legend=True, **scatter_kwargs
):
    """Scatter a 2-D embedding, coloured by label.

    Equivalent to ``EmbeddingDisplay.from_embedding(Z, y, name=title, ax=ax,
    cmap=cmap, legend=legend, scatter_kwargs=scatter_kwargs).ax_``; see
    :class:`EmbeddingDisplay`.

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
        See :meth:`EmbeddingDisplay.plot`.

    legend : bool, default=True
        Whether to draw the legend or colorbar.

    **scatter_kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter`.

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
    return EmbeddingDisplay.from_embedding(
        Z, y, name=title, ax=ax, cmap=cmap, legend=legend, scatter_kwargs=scatter_kwargs
    ).ax_


def plot_embeddings(embeddings, y=None, *, ncols=None, cmap="tab10"):
    """Draw several 2-D embeddings of the same samples side by side.

    Equivalent to ``EmbeddingComparisonDisplay.from_embeddings(embeddings, y,
    n_cols=ncols, cmap=cmap).figure_``; see :class:`EmbeddingComparisonDisplay`.

    Parameters
    ----------
    embeddings : dict of str to array-like of shape (n_samples, 2)
        Embeddings by method name; the names become titles.

    y : array-like of shape (n_samples,), default=None
        Labels of the samples, shared by all panels.

    ncols : int, default=None
        Number of panels per row; all in one row (at most 3) when None.

    cmap : str or Colormap, default="tab10"
        See :meth:`EmbeddingDisplay.plot`.

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
    if ncols is not None:
        check_positive_int(ncols, "ncols")
    return EmbeddingComparisonDisplay.from_embeddings(
        embeddings, y, n_cols=ncols, cmap=cmap
    ).figure_


def plot_reconstructions(rows, image_shape, *, n=10, cmap="gray"):
    """Show images and their reconstructions in a grid, one row per source.

    Like :meth:`ReconstructionDisplay.from_reconstructions` with the
    originals as the first entry of ``rows``; see
    :class:`ReconstructionDisplay`.

    Parameters
    ----------
    rows : dict of str to array-like of shape (n_samples, n_features)
        Images by row label, the originals first, all of the same samples in
        the same order. Each row of an array is one image, flattened or not.

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
    images = image_rows(
        [(f"rows[{name!r}]", name, array) for name, array in rows.items()],
        image_shape,
        n,
    )
    return ReconstructionDisplay(images).plot(cmap=cmap).figure_


def plot_training_curve(history, *, ax=None, log_scale=None):
    """Plot the training and validation loss per epoch.

    Equivalent to ``TrainingCurveDisplay.from_history(history, ax=ax,
    log_scale=log_scale).ax_``; see :class:`TrainingCurveDisplay`.

    Parameters
    ----------
    history : dict of str to list of float, or keras.callbacks.History
        Losses per epoch under ``"loss"`` and, optionally, ``"val_loss"``.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created when None.

    log_scale : bool, default=None
        Whether the loss axis is logarithmic; see
        :meth:`TrainingCurveDisplay.plot`.

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
    return TrainingCurveDisplay.from_history(history, ax=ax, log_scale=log_scale).ax_
