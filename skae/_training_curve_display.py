"""``TrainingCurveDisplay``: the loss per epoch."""

import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.utils.validation import check_is_fitted

from ._plot_utils import check_kwargs, figure_and_axes

# The keys of a history drawn, and each one's line style: all curves of one
# run share a colour, so that runs drawn on one Axes stay apart.
_CURVES = {"loss": "-", "val_loss": "--", "decoder_loss": ":", "decoder_val_loss": "-."}


class TrainingCurveDisplay:
    """Training and validation loss per epoch.

    Build one with :meth:`from_estimator` or :meth:`from_history`. The curves
    of one display share a colour, validation ones dashed, so that several
    runs can be drawn on one Axes (pass ``ax=display.ax_``).

    Parameters
    ----------
    history : dict of str to list of float, or keras.callbacks.History
        Losses per epoch under ``"loss"`` and, optionally, ``"val_loss"``, as
        in Keras' ``History.history`` and ``AutoencoderTransformer.history_``,
        whose ``"decoder_loss"`` and ``"decoder_val_loss"`` (the decoder-only
        epochs that follow training with a structure term) are drawn after
        them; other entries are ignored.

    name : str, default=None
        Name of the run, which prefixes the legend's labels.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        The curve of each key of ``history`` drawn.
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure containing the curves.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skae.plotting import TrainingCurveDisplay
    >>> history = {"loss": [1.0, 0.1, 0.05], "val_loss": [1.1, 0.2, 0.1]}
    >>> display = TrainingCurveDisplay.from_history(history, name="seed 0")
    >>> [line.get_label() for line in display.lines_.values()]
    ['seed 0 (loss)', 'seed 0 (val_loss)']
    >>> display.ax_.get_yscale()
    'log'
    >>> plt.close(display.figure_)
    """

    def __init__(self, history, *, name=None):
        self.history = history
        self.name = name

    def plot(self, *, ax=None, name=None, log_scale=None, line_kwargs=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        name : str, default=None
            Name of the run, prefixing the legend's labels; the display's
            ``name`` when None. Without either, the labels are the keys.

        log_scale : bool, default=None
            Whether the loss axis is logarithmic. When None, it is if all
            losses are positive and they span more than a factor of 10, as
            they usually do when training starts from random weights.

        line_kwargs : dict, default=None
            Passed to :meth:`matplotlib.axes.Axes.plot` for every curve,
            overriding the defaults (one colour, a style per curve, a marker
            per epoch up to 40 epochs).

        Returns
        -------
        display : TrainingCurveDisplay
        """
        curves = _check_history(self.history)
        line_kwargs = check_kwargs(line_kwargs, "line_kwargs")
        self.figure_, self.ax_ = figure_and_axes(ax, figsize=(5, 3.5))
        name = self.name if name is None else name
        self.lines_, color = {}, None
        for key, values in curves.items():
            # The decoder-only epochs come after the others.
            start = len(curves["loss"]) if key.startswith("decoder") else 0
            options = {
                "linestyle": _CURVES[key],
                # Hundreds of epoch markers merge into a thick smear.
                "marker": "." if len(values) <= 40 else "",
                "label": key if name is None else f"{name} ({key})",
            }
            if color is not None:
                options["color"] = color
            # Matplotlib refuses a property given under two names.
            for alias, full in (("c", "color"), ("ls", "linestyle")):
                if alias in line_kwargs:
                    options.pop(full, None)
            options.update(line_kwargs)
            epochs = np.arange(start + 1, start + len(values) + 1)
            (self.lines_[key],) = self.ax_.plot(epochs, values, **options)
            color = self.lines_[key].get_color()
        if log_scale is None:
            finite = np.concatenate(list(curves.values()))
            finite = finite[np.isfinite(finite)]
            log_scale = (
                finite.size > 0
                and finite.min() > 0
                and finite.max() > 10 * finite.min()
            )
        if log_scale:
            self.ax_.set_yscale("log")
        self.ax_.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.ax_.set_xlabel("epoch")
        self.ax_.set_ylabel("loss")
        self.ax_.legend()
        return self

    @classmethod
    def from_estimator(
        cls, estimator, *, name=None, ax=None, log_scale=None, line_kwargs=None
    ):
        """Plot the losses a fitted ``AutoencoderTransformer`` recorded.

        Parameters
        ----------
        estimator : AutoencoderTransformer or Pipeline
            Fitted, with a ``history_`` attribute (a pipeline's last step).

        name, ax, log_scale, line_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : TrainingCurveDisplay
        """
        check_is_fitted(estimator)
        final = estimator[-1] if hasattr(estimator, "steps") else estimator
        if not hasattr(final, "history_"):
            raise TypeError(
                "Expected an estimator with a history_ attribute, such as a fitted "
                f"AutoencoderTransformer. Received: estimator={estimator!r}"
            )
        return cls(final.history_, name=name).plot(
            ax=ax, log_scale=log_scale, line_kwargs=line_kwargs
        )

    @classmethod
    def from_history(
        cls, history, *, name=None, ax=None, log_scale=None, line_kwargs=None
    ):
        """Plot losses per epoch.

        Parameters
        ----------
        history : dict of str to list of float, or keras.callbacks.History
            See :class:`TrainingCurveDisplay`.

        name, ax, log_scale, line_kwargs
            See :meth:`plot`.

        Returns
        -------
        display : TrainingCurveDisplay
        """
        return cls(history, name=name).plot(
            ax=ax, log_scale=log_scale, line_kwargs=line_kwargs
        )


def _check_history(history):
    """The curves of ``history`` drawn, as float arrays, in ``_CURVES``' order."""
    history = getattr(history, "history", history)
    if not isinstance(history, dict) or "loss" not in history:
        raise ValueError(
            "Expected a dict with a 'loss' list, like keras' History.history. "
            f"Received: history={history!r}"
        )
    curves = {}
    for key in _CURVES:
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
    for prefix in ("", "decoder_"):
        loss, val_loss = curves.get(f"{prefix}loss"), curves.get(f"{prefix}val_loss")
        if val_loss is not None and (loss is None or len(loss) != len(val_loss)):
            raise ValueError(
                f"Expected one {prefix}loss and one {prefix}val_loss per epoch. "
                f"Received: {0 if loss is None else len(loss)} {prefix}losses and "
                f"{len(val_loss)} {prefix}val_losses"
            )
    return curves
