"""``EmbeddingDisplay`` and ``EmbeddingComparisonDisplay``: 2-D scatter plots."""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from sklearn.utils.validation import check_is_fitted

from ._plot_utils import check_kwargs, check_positive_int, figure_and_axes, grid
from .metrics import _check_labels


class EmbeddingDisplay:
    """Scatter plot of a 2-D embedding, coloured by label.

    Build one with :meth:`from_estimator` or :meth:`from_embedding`. Integer,
    boolean or string labels are classes and get a legend; float labels are
    a continuous quantity and get a colorbar.

    Parameters
    ----------
    embedding : array-like of shape (n_samples, 2)
        The embedding.

    y : array-like of shape (n_samples,), default=None
        Label of each sample. None draws every point in one colour.

    name : str, default=None
        Title of the axes.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The points, in the embedding's order.
    legend_ : matplotlib Legend or None
        One entry per class, when ``y`` holds classes and ``legend=True``.
    colorbar_ : matplotlib Colorbar or None
        The scale of a continuous ``y``, when ``legend=True``.
    ax_ : matplotlib Axes
        Axes with the scatter plot.
    figure_ : matplotlib Figure
        Figure containing the scatter plot.

    See Also
    --------
    EmbeddingComparisonDisplay : Several embeddings side by side.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from skae.plotting import EmbeddingDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> pca = PCA(n_components=2).fit(X)
    >>> display = EmbeddingDisplay.from_estimator(pca, X, y)
    >>> display.ax_.get_title(), len(display.scatter_.get_offsets())
    ('PCA', 1797)
    >>> [text.get_text() for text in display.legend_.get_texts()][:3]
    ['0', '1', '2']
    >>> plt.close(display.figure_)
    """

    def __init__(self, embedding, y=None, *, name=None):
        self.embedding = embedding
        self.y = y
        self.name = name

    def plot(
        self, *, ax=None, name=None, cmap="tab10", legend=True, scatter_kwargs=None
    ):
        """Draw the embedding.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        name : str, default=None
            Title of the axes; the display's ``name`` when None.

        cmap : str or Colormap, default="tab10"
            Colours of the classes, or colormap of a continuous ``y``. Classes
            take the successive colours of a qualitative colormap (fewer than
            256 colours, such as "tab10") and evenly spaced colours of any
            other.

        legend : bool, default=True
            Whether to draw the legend or colorbar.

        scatter_kwargs : dict, default=None
            Passed to :meth:`matplotlib.axes.Axes.scatter`, overriding the
            defaults (point size chosen from the number of samples, no edges).

        Returns
        -------
        display : EmbeddingDisplay
        """
        Z = _check_embedding(self.embedding, "embedding")
        y = None if self.y is None else _check_labels(self.y, len(Z), "y", "embedding")
        scatter_kwargs = check_kwargs(scatter_kwargs, "scatter_kwargs")
        self.figure_, self.ax_ = figure_and_axes(ax, figsize=(5, 4.5))
        ax = self.ax_
        # Big markers merge into blobs once there are thousands of points.
        options = {"s": float(np.clip(20000 / len(Z), 2, 30)), "linewidths": 0}
        options.update(scatter_kwargs)
        self.legend_ = self.colorbar_ = None
        if y is None:
            self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], **options)
        elif np.issubdtype(y.dtype, np.floating):
            self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap=cmap, **options)
            if legend:
                self.colorbar_ = self.figure_.colorbar(self.scatter_, ax=ax)
        else:
            classes, codes = np.unique(y, return_inverse=True)
            colors = _class_colors(cmap, len(classes))
            # One scatter in the data's order, rather than one per class, so
            # that no class is systematically drawn on top of the others.
            self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], c=colors[codes], **options)
            if legend:
                handles = [
                    Line2D([], [], ls="", marker="o", color=color, label=str(label))
                    for label, color in zip(classes, colors, strict=True)
                ]
                self.legend_ = ax.legend(
                    handles=handles,
                    loc="center left",
                    bbox_to_anchor=(1.0, 0.5),
                    frameon=False,
                    handletextpad=0.1,
                )
        name = self.name if name is None else name
        if name is not None:
            ax.set_title(name)
        # The axes of an embedding have no units worth reading.
        ax.set_xticks([])
        ax.set_yticks([])
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        name=None,
        ax=None,
        cmap="tab10",
        legend=True,
        scatter_kwargs=None,
    ):
        """Plot the embedding of X by a fitted transformer.

        Parameters
        ----------
        estimator : estimator instance
            Fitted transformer, or pipeline ending in one, whose ``transform``
            gives two columns.

        X : array-like of shape (n_samples, n_features)
            Samples to embed, in any form ``estimator.transform`` takes.

        y : array-like of shape (n_samples,), default=None
            Label of each sample; see :class:`EmbeddingDisplay`.

        name : str, default=None
            Title of the axes; the estimator's class name when None.

        ax, cmap, legend, scatter_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : EmbeddingDisplay
        """
        check_is_fitted(estimator)
        Z = _check_embedding(estimator.transform(X), "estimator.transform(X)")
        if y is not None:
            y = _check_labels(y, len(Z), "y", "X")
        name = type(estimator).__name__ if name is None else name
        return cls(Z, y, name=name).plot(
            ax=ax, cmap=cmap, legend=legend, scatter_kwargs=scatter_kwargs
        )

    @classmethod
    def from_embedding(
        cls,
        Z,
        y=None,
        *,
        name=None,
        ax=None,
        cmap="tab10",
        legend=True,
        scatter_kwargs=None,
    ):
        """Plot an embedding already computed.

        Parameters
        ----------
        Z : array-like of shape (n_samples, 2)
            The embedding.

        y : array-like of shape (n_samples,), default=None
            Label of each sample; see :class:`EmbeddingDisplay`.

        name : str, default=None
            Title of the axes.

        ax, cmap, legend, scatter_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : EmbeddingDisplay

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from skae.plotting import EmbeddingDisplay
        >>> display = EmbeddingDisplay.from_embedding([[0, 0], [1, 1]], [0.5, 2.0])
        >>> display.colorbar_ is not None, display.legend_ is None
        (True, True)
        >>> plt.close(display.figure_)
        """
        Z = _check_embedding(Z, "Z")
        if y is not None:
            y = _check_labels(y, len(Z), "y", "Z")
        return cls(Z, y, name=name).plot(
            ax=ax, cmap=cmap, legend=legend, scatter_kwargs=scatter_kwargs
        )


class EmbeddingComparisonDisplay:
    """Several 2-D embeddings of the same samples, side by side.

    Build one with :meth:`from_estimators` or :meth:`from_embeddings`. Each
    panel is an :class:`EmbeddingDisplay`; the legend or colorbar is drawn
    once, beside the last panel.

    Parameters
    ----------
    embeddings : dict of str to array-like of shape (n_samples, 2)
        Embeddings by name, for instance ``{"PCA": Z_pca, "Autoencoder":
        Z_ae}``, all of the same samples in the same order; the names become
        the panels' titles.

    y : array-like of shape (n_samples,), default=None
        Labels of the samples, shared by all panels.

    Attributes
    ----------
    displays_ : list of EmbeddingDisplay
        One per embedding, in order, each with its panel's ``ax_`` and
        ``scatter_``.
    axes_ : ndarray of matplotlib Axes
        The panels: of shape ``(n_rows, n_cols)`` with None in the empty cells
        of the last row, or of the shape of the ``ax`` given.
    bounding_ax_ : matplotlib Axes or None
        The single Axes given as ``ax``, divided into the panels; else None.
    figure_ : matplotlib Figure
        Figure containing the panels.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA, TruncatedSVD
    >>> from skae.plotting import EmbeddingComparisonDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> estimators = {"PCA": PCA(2).fit(X), "SVD": TruncatedSVD(2).fit(X)}
    >>> display = EmbeddingComparisonDisplay.from_estimators(estimators, X, y)
    >>> [ax.get_title() for ax in display.axes_.ravel()]
    ['PCA', 'SVD']
    >>> plt.close(display.figure_)
    """

    def __init__(self, embeddings, y=None):
        self.embeddings = embeddings
        self.y = y

    def plot(
        self, *, ax=None, n_cols=None, cmap="tab10", legend=True, scatter_kwargs=None
    ):
        """Draw the embeddings.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of matplotlib Axes, default=None
            Where to draw, as in scikit-learn's ``PartialDependenceDisplay``:

            - None: a new figure with a grid of panels, ``n_cols`` per row;
            - one Axes (a subplot): its area is divided into that grid, and
              it is hidden;
            - an array-like of as many Axes as embeddings: one panel in each,
              in order.

        n_cols : int, default=None
            Panels per row of the grid; all in one row (at most 3) when None.
            Only when ``ax`` is not an array of Axes.

        cmap, legend, scatter_kwargs
            See :meth:`EmbeddingDisplay.plot`.

        Returns
        -------
        display : EmbeddingComparisonDisplay
        """
        embeddings = _check_embeddings(self.embeddings, "embeddings")
        first = next(iter(embeddings))
        y = self.y
        if y is not None:
            y = _check_labels(y, len(embeddings[first]), "y", f"embeddings[{first!r}]")
        n_panels = len(embeddings)
        if n_cols is None:
            n_cols = min(n_panels, 3)
        elif not (ax is None or isinstance(ax, Axes)):
            raise ValueError(
                "Expected n_cols=None when ax is an array of Axes: their layout is "
                f"given. Received: n_cols={n_cols!r}"
            )
        else:
            check_positive_int(n_cols, "n_cols")
        n_rows = math.ceil(n_panels / n_cols)
        self.figure_, self.bounding_ax_, self.axes_ = grid(
            ax, (n_rows, n_cols), n_panels, (4 * n_cols + 1, 4 * n_rows)
        )
        self.displays_ = [
            EmbeddingDisplay(Z, y, name=name).plot(
                ax=panel,
                cmap=cmap,
                legend=legend and i == n_panels - 1,
                scatter_kwargs=scatter_kwargs,
            )
            for i, ((name, Z), panel) in enumerate(
                zip(embeddings.items(), self.axes_.ravel(), strict=False)
            )
        ]
        return self

    @classmethod
    def from_estimators(
        cls,
        estimators,
        X,
        y=None,
        *,
        ax=None,
        n_cols=None,
        cmap="tab10",
        legend=True,
        scatter_kwargs=None,
    ):
        """Plot the embeddings of X by several fitted transformers.

        Parameters
        ----------
        estimators : dict of str to estimator instance
            Fitted transformers (or pipelines) by name, each giving two
            columns; the names become the panels' titles.

        X : array-like of shape (n_samples, n_features)
            Samples to embed, in a form every estimator's ``transform`` takes.

        y : array-like of shape (n_samples,), default=None
            Labels of the samples.

        ax, n_cols, cmap, legend, scatter_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : EmbeddingComparisonDisplay
        """
        if not isinstance(estimators, dict) or not estimators:
            raise ValueError(
                "Expected a non-empty dict of fitted estimators by name. "
                f"Received: estimators={estimators!r}"
            )
        for estimator in estimators.values():
            check_is_fitted(estimator)
        embeddings = {
            name: _check_embedding(
                estimator.transform(X), f"estimators[{name!r}].transform(X)"
            )
            for name, estimator in estimators.items()
        }
        return cls.from_embeddings(
            embeddings,
            y,
            ax=ax,
            n_cols=n_cols,
            cmap=cmap,
            legend=legend,
            scatter_kwargs=scatter_kwargs,
        )

    @classmethod
    def from_embeddings(
        cls,
        embeddings,
        y=None,
        *,
        ax=None,
        n_cols=None,
        cmap="tab10",
        legend=True,
        scatter_kwargs=None,
    ):
        """Plot embeddings already computed.

        Parameters
        ----------
        embeddings : dict of str to array-like of shape (n_samples, 2)
            Embeddings by name; see :class:`EmbeddingComparisonDisplay`.

        y : array-like of shape (n_samples,), default=None
            Labels of the samples.

        ax, n_cols, cmap, legend, scatter_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : EmbeddingComparisonDisplay
        """
        return cls(embeddings, y).plot(
            ax=ax,
            n_cols=n_cols,
            cmap=cmap,
            legend=legend,
            scatter_kwargs=scatter_kwargs,
        )


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


def _check_embeddings(embeddings, name):
    if not isinstance(embeddings, dict) or not embeddings:
        raise ValueError(
            "Expected a non-empty dict of embeddings by name. "
            f"Received: {name}={embeddings!r}"
        )
    checked = {k: _check_embedding(Z, f"{name}[{k!r}]") for k, Z in embeddings.items()}
    # Panels of different lengths cannot show the same samples.
    if len({len(Z) for Z in checked.values()}) > 1:
        raise ValueError(
            f"Expected every entry of {name} to hold the same samples, one row "
            "each. Received: "
            + ", ".join(f"{name}[{k!r}].shape={Z.shape}" for k, Z in checked.items())
        )
    return checked


def _class_colors(cmap, n_classes):
    cmap = plt.get_cmap(cmap)
    # Qualitative colormaps (tab10, Set1...) list a few distinct colours: use
    # them in order, cycling if needed. Continuous ones have 256 entries: sample
    # them evenly, or neighbouring classes would get near-identical colours.
    if cmap.N < 256:
        return cmap(np.arange(n_classes) % cmap.N)
    return cmap(np.linspace(0, 1, n_classes))
