"""What the displays of :mod:`skae.plotting` share: axes, grids of axes, checks."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpecFromSubplotSpec


def figure_and_axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    if not isinstance(ax, Axes):
        raise TypeError(f"Expected ax to be a matplotlib Axes. Received: ax={ax!r}")
    return ax.figure, ax


def grid(ax, shape, n_panels, figsize):
    """``(figure, bounding_ax, axes)`` for ``n_panels`` panels in a grid.

    ``ax`` is None (a new figure), one Axes (divided into the grid) or an
    array-like of ``n_panels`` Axes, returned as given.
    """
    if ax is None or isinstance(ax, Axes):
        if ax is None:
            fig, axes = plt.subplots(
                *shape, figsize=figsize, squeeze=False, layout="constrained"
            )
        else:
            fig, spec = ax.figure, ax.get_subplotspec()
            if spec is None:
                raise ValueError(
                    "Expected ax to be a subplot (from plt.subplots or "
                    f"fig.add_subplot), to divide into panels. Received: ax={ax!r}"
                )
            ax.set_axis_off()
            cells = GridSpecFromSubplotSpec(*shape, subplot_spec=spec)
            axes = np.empty(shape, dtype=object)
            for i in range(n_panels):
                axes.flat[i] = fig.add_subplot(cells[i // shape[1], i % shape[1]])
        for i in range(n_panels, axes.size):
            if axes.flat[i] is not None:
                axes.flat[i].remove()
            axes.flat[i] = None
        return fig, ax, axes
    axes = np.asarray(ax, dtype=object)
    if axes.size == 0 or not all(isinstance(a, Axes) for a in axes.flat):
        raise TypeError(
            "Expected ax to be a matplotlib Axes or an array-like of them. "
            f"Received: ax={ax!r}"
        )
    if axes.size != n_panels:
        raise ValueError(
            f"Expected ax to hold {n_panels} Axes, one per panel. "
            f"Received: ax with {axes.size} Axes"
        )
    return axes.flat[0].figure, None, axes


def check_kwargs(kwargs, name):
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"Expected {name} to be a dict. Received: {name}={kwargs!r}")
    return kwargs


def check_positive_int(value, name):
    if not is_positive_int(value):
        raise ValueError(
            f"Expected {name} to be a positive int. Received: {name}={value!r}"
        )


def is_positive_int(value):
    # bool is an int to Python, but True images are no size.
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value > 0
    )
