"""``ReconstructionDisplay``: images and their reconstructions in a grid."""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._plot_utils import (
    check_kwargs,
    check_positive_int,
    grid,
    is_positive_int,
)


class ReconstructionDisplay:
    """Images and their reconstructions in a grid, one row per source.

    Build one with :meth:`from_estimator` or :meth:`from_reconstructions`.
    All images are drawn on the intensity scale of the first row, so that a
    faint reconstruction looks faint next to its original; values outside it,
    such as PCA's negative overshoots, are clipped. Images are grey-scale.

    Parameters
    ----------
    images : dict of str to array-like of shape (n_images, height, width)
        Images by row label, the originals first, all of the same samples in
        the same order.

    Attributes
    ----------
    im_ : ndarray of matplotlib AxesImage of shape (n_rows, n_images)
        The images drawn.
    axes_ : ndarray of matplotlib Axes of shape (n_rows, n_images)
        One Axes per image; the first of each row carries the row's label.
    bounding_ax_ : matplotlib Axes or None
        The single Axes given as ``ax``, divided into the grid; else None.
    figure_ : matplotlib Figure
        Figure containing the grid.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from skae.plotting import ReconstructionDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> pca = PCA(n_components=8).fit(X)
    >>> display = ReconstructionDisplay.from_estimator(pca, X, n=5)
    >>> display.axes_.shape, [ax.get_ylabel() for ax in display.axes_[:, 0]]
    ((2, 5), ['original', 'PCA'])
    >>> display.im_[0, 0].get_array().shape  # 64 pixels: 8x8 images
    (8, 8)
    >>> plt.close(display.figure_)
    """

    def __init__(self, images):
        self.images = images

    def plot(self, *, ax=None, cmap="gray", imshow_kwargs=None):
        """Draw the grid of images.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of matplotlib Axes, default=None
            Where to draw, as in scikit-learn's ``PartialDependenceDisplay``:

            - None: a new figure with one Axes per image;
            - one Axes (a subplot): its area is divided into the grid, and it
              is hidden;
            - an array-like of ``n_rows * n_images`` Axes: one image in each,
              row after row.

        cmap : str or Colormap, default="gray"
            Colormap of the images.

        imshow_kwargs : dict, default=None
            Passed to :meth:`matplotlib.axes.Axes.imshow`, overriding the
            defaults (``cmap`` and the first row's ``vmin`` and ``vmax``).

        Returns
        -------
        display : ReconstructionDisplay
        """
        if not isinstance(self.images, dict) or not self.images:
            raise ValueError(
                "Expected a non-empty dict of image arrays by name. "
                f"Received: images={self.images!r}"
            )
        label, first = next(iter(self.images.items()))
        first = np.asarray(first)
        if first.ndim != 3:
            raise ValueError(
                f"Expected images[{label!r}] to be of shape (n_images, height, "
                f"width). Received: images[{label!r}].shape={first.shape}"
            )
        images = image_rows(
            [(f"images[{k!r}]", k, v) for k, v in self.images.items()],
            first.shape[1:],
        )
        imshow_kwargs = check_kwargs(imshow_kwargs, "imshow_kwargs")
        n_rows, n_images = len(images), len(first)
        self.figure_, self.bounding_ax_, axes = grid(
            ax,
            (n_rows, n_images),
            n_rows * n_images,
            (1.1 * n_images + 1, 1.2 * n_rows),
        )
        self.axes_ = axes.reshape(n_rows, n_images)
        # The first row (the originals) sets the intensity scale of all.
        first = next(iter(images.values()))
        options = {"cmap": cmap, "vmin": float(first.min()), "vmax": float(first.max())}
        options.update(imshow_kwargs)
        self.im_ = np.empty((n_rows, n_images), dtype=object)
        for i, (name, array) in enumerate(images.items()):
            for j, image in enumerate(array):
                ax = self.axes_[i, j]
                self.im_[i, j] = ax.imshow(image, **options)
                ax.set_xticks([])
                ax.set_yticks([])
            # A y-label rather than a title: axis("off") would hide it too.
            self.axes_[i, 0].set_ylabel(name, rotation=0, ha="right", va="center")
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        image_shape=None,
        n=10,
        name=None,
        ax=None,
        cmap="gray",
        imshow_kwargs=None,
    ):
        """Plot the first ``n`` images of X and a fitted transformer's rebuilds.

        Only those ``n`` samples are encoded and decoded, with
        ``estimator.inverse_transform(estimator.transform(...))``.

        Parameters
        ----------
        estimator : estimator instance
            Fitted transformer (or pipeline) with ``inverse_transform``.

        X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
            Images, flattened or not, in any form the estimator takes.

        image_shape : tuple of int, default=None
            ``(height, width)`` of the images. When None: the shape of the
            images the estimator was fitted on (its ``input_shape_``) or X
            holds, else square images, as digits' and MNIST's rows are.

        n : int, default=10
            Number of images per row.

        name : str, default=None
            Label of the reconstructions' row; the estimator's class name when
            None.

        ax, cmap, imshow_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : ReconstructionDisplay
        """
        check_is_fitted(estimator)
        if not hasattr(estimator, "inverse_transform"):
            raise TypeError(
                "Expected an estimator with inverse_transform. "
                f"Received: estimator={estimator!r}"
            )
        check_positive_int(n, "n")
        if image_shape is None:
            shape = getattr(estimator, "input_shape_", ())
            if len(shape) in (2, 3) and shape[2:] in ((), (1,)):
                image_shape = tuple(shape[:2])
            else:
                image_shape = _default_image_shape(X)
        # Only the images shown are encoded and decoded.
        if sp.issparse(X):
            X = X.tocsr()[:n]
        else:
            X = X.iloc[:n] if hasattr(X, "iloc") else X[:n]
        return cls.from_reconstructions(
            X,
            estimator.inverse_transform(estimator.transform(X)),
            image_shape=image_shape,
            n=n,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            cmap=cmap,
            imshow_kwargs=imshow_kwargs,
        )

    @classmethod
    def from_reconstructions(
        cls,
        X,
        X_reconstructed,
        *,
        image_shape=None,
        n=10,
        name=None,
        ax=None,
        cmap="gray",
        imshow_kwargs=None,
    ):
        """Plot the first ``n`` images and their reconstructions.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The original images, one per row, flattened or not. Their range of
            values is the colour scale of every row.

        X_reconstructed : array-like of shape (n_samples, n_features), or dict
            The reconstructions of the same samples, in the same order; a
            dict holds several (by method, say), its keys the rows' labels.

        image_shape : tuple of int, default=None
            ``(height, width)`` of the images. When None: the shape of the
            images X holds, else square images.

        n : int, default=10
            Number of images per row; the first ``n`` samples are shown.

        name : str, default=None
            Label of the row of an array ``X_reconstructed``;
            "reconstruction" when None.

        ax, cmap, imshow_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : ReconstructionDisplay

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> import numpy as np
        >>> from skae.plotting import ReconstructionDisplay
        >>> X = np.random.default_rng(0).random((5, 64))
        >>> display = ReconstructionDisplay.from_reconstructions(
        ...     X, {"halved": X / 2, "noisy": X + 0.1}, n=3)
        >>> display.im_.shape
        (3, 3)
        >>> plt.close(display.figure_)
        """
        if isinstance(X_reconstructed, dict):
            if not X_reconstructed:
                raise ValueError(
                    "Expected X_reconstructed to be an array or a non-empty dict "
                    f"of arrays. Received: X_reconstructed={X_reconstructed!r}"
                )
            if name is not None:
                raise ValueError(
                    "Expected name=None when X_reconstructed is a dict: its keys "
                    f"label the rows. Received: name={name!r}"
                )
            entries = [
                (f"X_reconstructed[{k!r}]", k, v) for k, v in X_reconstructed.items()
            ]
        else:
            entries = [
                (
                    "X_reconstructed",
                    "reconstruction" if name is None else name,
                    X_reconstructed,
                )
            ]
        if image_shape is None:
            image_shape = _default_image_shape(X)
        images = image_rows([("X", "original", X), *entries], image_shape, n)
        return cls(images).plot(ax=ax, cmap=cmap, imshow_kwargs=imshow_kwargs)


def image_rows(entries, image_shape, n=None):
    """``{title: images}`` from ``(argument name, title, array)`` entries.

    Only the first ``n`` images of each array are kept (made dense when the
    array is sparse), reshaped to ``image_shape``.
    """
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 2
        or not all(is_positive_int(d) for d in image_shape)
    ):
        raise ValueError(
            "Expected image_shape to be (height, width). "
            f"Received: image_shape={image_shape!r}"
        )
    if n is not None:
        check_positive_int(n, "n")
    images, shapes = {}, {}
    for label, title, array in entries:
        if sp.issparse(array):
            # As the estimators take it: only the images shown are made dense
            # (np.asarray would give a 0-d array of objects).
            shape, array = array.shape, array.tocsr()[:n].toarray()
        else:
            array = np.asarray(array)
            shape = array.shape
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"Expected {label} to hold numeric images. "
                f"Received: {label}.dtype={array.dtype}"
            )
        if array.ndim < 2 or math.prod(array.shape[1:]) != math.prod(image_shape):
            raise ValueError(
                f"Expected {label} to hold images of shape {tuple(image_shape)}, "
                f"one per row. Received: {label}.shape={shape}"
            )
        if title in images:
            # A second row of the same label would replace the first.
            raise ValueError(
                f"Expected each row to have its own label. Received: {label} "
                f"labelled {title!r}, as an earlier row"
            )
        images[title], shapes[label] = array, shape
    # Compared before keeping the first n: arrays of different lengths cannot
    # hold the same samples in the same order.
    n_samples = {shape[0] for shape in shapes.values()}
    if len(n_samples) != 1 or 0 in n_samples:
        raise ValueError(
            "Expected the same number (at least 1) of images in each of "
            + ", ".join(shapes)
            + ". Received: "
            + ", ".join(f"{label}.shape={shape}" for label, shape in shapes.items())
        )
    return {
        title: array[:n].reshape(len(array[:n]), *image_shape)
        for title, array in images.items()
    }


def _default_image_shape(X):
    shape = X.shape if hasattr(X, "shape") else np.shape(X)
    if len(shape) in (3, 4) and shape[3:] in ((), (1,)):
        return tuple(shape[1:3])
    side = math.isqrt(math.prod(shape[1:]))
    if len(shape) != 2 or side * side != shape[1]:
        raise ValueError(
            "Expected image_shape, as X holds no images and its rows are not "
            f"square images. Received: image_shape=None, X.shape={shape}"
        )
    return (side, side)
