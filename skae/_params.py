"""Every parameter check and every "auto" rule, before any data is read.

:func:`make_plan` turns an estimator's parameters into a frozen :class:`Plan`:
``_parameter_constraints`` (run by scikit-learn's ``_fit_context``) check each
parameter alone; this module checks what they cannot (Keras names,
combinations of parameters) and resolves every "auto" that needs no data. The
"auto" rules that need the data's size are the plan's methods. Nothing here
reads X, so a bad parameter is refused before any costly work.
"""

import hashlib
import json
from dataclasses import dataclass
from numbers import Integral, Real

import keras
import numpy as np
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions

from . import _backend, _compat
from ._scaling import SCALINGS
from ._training import LOSSES, TrainerOptions
from ._utils import is_fraction, is_positive_int
from .architectures import NORMALIZATIONS

# Each parameter alone, as scikit-learn's ``_fit_context`` checks them before
# fit (the estimator's ``_parameter_constraints``).
PARAMETER_CONSTRAINTS = {
    "n_components": [
        Interval(Integral, 1, None, closed="left"),
        Interval(RealNotInt, 0, 1, closed="neither"),
        None,
    ],
    "init": [StrOptions({"auto", "random", "pca"})],
    "architecture": [StrOptions({"dense", "conv"})],
    "hidden_layer_sizes": [StrOptions({"auto"}), tuple, list],
    "input_shape": [tuple, list, None],
    "encoder": [callable, None],
    "decoder": [callable, None],
    "activation": [str, None],
    "code_activation": [str, None],
    "output_activation": [str, None],
    "normalization": [StrOptions({"auto", *NORMALIZATIONS}), None],
    "scaling": [StrOptions({"auto", *SCALINGS}), None],
    "loss": [StrOptions({"auto", *LOSSES})],
    "code_l1": [Interval(Real, 0, None, closed="left")],
    "noise": [Interval(Real, 0, None, closed="left")],
    "masking": [Interval(Real, 0, 1, closed="left")],
    "structure_weight": [Interval(Real, 0, None, closed="left")],
    "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "batch_size": [
        StrOptions({"auto"}),
        Interval(Integral, 1, None, closed="left"),
    ],
    "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
    "optimizer": [str],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "callbacks": [list, None],
}


@dataclass(frozen=True)
class Plan:
    """The parameters of one ``fit`` or ``partial_fit`` call, checked and resolved.

    Fields hold the parameters as given, except: ``scaling``, ``loss``,
    ``init``, ``activation``, ``normalization`` and the trainer's
    ``learning_rate`` are resolved ("auto" replaced); ``hidden_layer_sizes`` and
    ``input_shape`` are tuples of ints, or None for "auto" and None;
    ``callbacks`` is a tuple. ``scaling_param`` is the parameter as given, for
    messages. ``search`` says ``fit`` searches the code size for a fraction of
    variance; ``incremental`` that the call is ``partial_fit``;
    ``pca_candidate`` that ``fit`` ends by comparing its networks with PCA's;
    ``network_params`` the parameters that shape the networks, as plain data
    (see :func:`network_params`), which later ``partial_fit`` calls must keep.
    """

    n_components: object
    search: bool
    incremental: bool
    pca_candidate: bool
    architecture: str
    hidden_layer_sizes: tuple | None
    input_shape: tuple | None
    encoder: object
    decoder: object
    activation: object
    code_activation: object
    output_activation: object
    normalization: object
    scaling: object
    scaling_param: object
    loss: str
    init: str
    code_l1: float
    noise: float
    masking: float
    structure_weight: float
    n_neighbors: int
    epochs: object
    batch_size: object
    trainer: TrainerOptions
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
    tol: float
    random_state: object
    verbose: int
    callbacks: tuple
    network_params: dict

    @property
    def holds_out(self):
        """Whether training monitors validation rows (never partial_fit's).

        ``fit`` also keeps them out of training to compare its networks with
        PCA's (``pca_candidate``), without training on or monitoring them.
        """
        return not self.incremental and (self.early_stopping or self.search)

    def epochs_for(self, n_rows):
        """``epochs``, with "auto" resolved for ``n_rows`` training rows."""
        return auto_epochs(n_rows) if self.epochs == "auto" else self.epochs

    def batch_size_for(self, n_rows):
        """``batch_size``, with "auto" resolved for ``n_rows`` training rows."""
        if self.batch_size == "auto":
            if self.structure_weight > 0:
                return STRUCTURE_RECIPE["batch_size"]
            return auto_batch_size(n_rows)
        return self.batch_size

    def output_activation_for(self, pca_start):
        """The reconstruction's activation; "auto" is linear for a PCA start."""
        if self.output_activation == "auto":
            # PCA's reconstruction is unbounded: a PCA start is linear.
            if pca_start:
                return None
            return "sigmoid" if self.scaling == "minmax" else None
        return self.output_activation


def make_plan(estimator, *, incremental, fitted=None):
    """Check ``estimator``'s parameters together; return its :class:`Plan`.

    ``fitted`` is the estimator itself when ``partial_fit`` continues training
    its networks: the parameters they were built with must not have changed.
    Raises ``TypeError`` or ``ValueError`` naming the parameter and the value
    received.
    """
    est = estimator
    callbacks = tuple(est.callbacks or [])
    if not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise TypeError(
            "Expected callbacks to be a list of keras.callbacks.Callback. "
            f"Received: callbacks={est.callbacks!r}"
        )
    # bool is an Integral, so the constraints take True for one component.
    if isinstance(est.n_components, bool):
        raise ValueError(
            "Expected n_components to be a positive int, a float in (0, 1) or "
            f"None. Received: n_components={est.n_components!r}"
        )
    # Keras' own error names neither the parameter nor, for three of them,
    # which one; and it would come only after the neighbour graph.
    for name in ("activation", "code_activation", "output_activation"):
        value = getattr(est, name)
        if value is None or (name != "code_activation" and value == "auto"):
            continue
        try:
            keras.activations.get(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"Expected {name} to be the name of a Keras activation, such "
                f"as 'relu', or None. Received: {name}={value!r}"
            ) from exc
    # Before the first Keras object: a backend switched since import (one
    # process runs one) fails here, clearly, not deep inside Keras.
    _backend.check_unchanged()
    structured = est.structure_weight > 0
    learning_rate = _auto(est, "learning_rate", structured)
    try:
        _compat.new_optimizer(est.optimizer, learning_rate)
    except Exception as exc:
        raise ValueError(
            "Expected the name of a Keras optimizer, such as 'adam' or 'sgd'. "
            f"Received: optimizer={est.optimizer!r}"
        ) from exc
    # partial_fit after a search continues the networks of the size found.
    search = is_fraction(est.n_components) and not incremental
    if incremental and fitted is None and is_fraction(est.n_components):
        raise ValueError(
            "Expected an int n_components for partial_fit: the search "
            "for a fraction of variance needs all the data at once. "
            f"Received: n_components={est.n_components!r}"
        )
    builds = est.encoder is None or est.decoder is None
    hidden = None
    if builds and not isinstance(est.hidden_layer_sizes, str):
        hidden = tuple(est.hidden_layer_sizes)
        if not all(is_positive_int(h) for h in hidden):
            raise ValueError(
                "Expected hidden_layer_sizes to be 'auto' or a sequence of "
                "positive integers. Received: "
                f"hidden_layer_sizes={est.hidden_layer_sizes!r}"
            )
        hidden = tuple(int(h) for h in hidden)
    input_shape = None
    if est.input_shape is not None:
        input_shape = tuple(est.input_shape)
        if not input_shape or not all(is_positive_int(d) for d in input_shape):
            raise ValueError(
                "Expected input_shape to be None or a tuple of positive integers, "
                "such as (28, 28) or (28, 28, 1). Received: "
                f"input_shape={est.input_shape!r}"
            )
        input_shape = tuple(int(d) for d in input_shape)
    if est.n_components is None and est.architecture == "dense" and est.encoder is None:
        raise ValueError(
            "Expected an int n_components for architecture='dense'; None "
            "(the network's own code width) needs architecture='conv' or "
            "an encoder. Received: n_components=None"
        )
    loss = "mse" if est.loss == "auto" else est.loss
    scaling = est.scaling
    if scaling == "auto":
        scaling = "minmax" if loss == "binary_crossentropy" else "center"
    init = _resolve_init(est, loss)
    # PCA's solution competes where the networks could start at it and the
    # loss is reconstruction alone: a structure term or a sparse code asks
    # for something PCA's solution does not give.
    pca_candidate = (
        not pca_start_problems(est, loss)
        and est.structure_weight == 0
        and est.code_l1 == 0
    )
    activation = _auto(est, "activation", structured)
    normalization = _auto(est, "normalization", structured)
    built_with = network_params(est, activation, normalization)
    if fitted is not None:
        _check_same_networks(est, fitted, built_with, input_shape)
    return Plan(
        n_components=est.n_components,
        search=search,
        incremental=incremental,
        pca_candidate=pca_candidate,
        architecture=est.architecture,
        hidden_layer_sizes=hidden,
        input_shape=input_shape,
        encoder=est.encoder,
        decoder=est.decoder,
        activation=activation,
        code_activation=est.code_activation,
        output_activation=est.output_activation,
        normalization=normalization,
        scaling=scaling,
        scaling_param=est.scaling,
        loss=loss,
        init=init,
        code_l1=est.code_l1,
        noise=est.noise,
        masking=est.masking,
        structure_weight=est.structure_weight,
        n_neighbors=est.n_neighbors,
        epochs=est.epochs,
        batch_size=est.batch_size,
        trainer=TrainerOptions(
            loss=loss,
            optimizer=est.optimizer,
            learning_rate=learning_rate,
            batch_size=est.batch_size,
            noise=est.noise,
            masking=est.masking,
            structure_weight=est.structure_weight,
        ),
        early_stopping=est.early_stopping,
        validation_fraction=est.validation_fraction,
        n_iter_no_change=est.n_iter_no_change,
        tol=est.tol,
        random_state=est.random_state,
        verbose=est.verbose,
        callbacks=callbacks,
        network_params=built_with,
    )


# What "auto" gives activation, normalization, learning_rate and batch_size,
# without and with the structure term (``hidden_layer_sizes="auto"``: see
# :func:`skae.architectures.auto_hidden_layer_sizes`). The structure term's
# recipe was measured on MNIST 10k through PCA(100), seeds 0-2: held-out kNN
# accuracy 0.933 against 0.920 with three ReLU layers of 128 without
# normalisation, in 1.6 times the fit; 512 edges a step needs the larger
# rate (at 1e-3: kNN 0.891); docs/user_guide/structure.rst.
PLAIN_RECIPE = {"activation": "relu", "normalization": None, "learning_rate": 1e-3}
STRUCTURE_RECIPE = {
    "activation": "gelu",
    "normalization": "layer",
    "learning_rate": 1e-2,
    "batch_size": 512,
}


def _auto(est, name, structured):
    """The parameter ``name``, its "auto" replaced by the recipe's value."""
    value = getattr(est, name)
    if isinstance(value, str) and value == "auto":
        return (STRUCTURE_RECIPE if structured else PLAIN_RECIPE)[name]
    return value


def pca_start_problems(est, loss):
    """The parameters that rule out a PCA start (and PCA as a candidate)."""
    problems = {
        "architecture": est.architecture != "dense",
        "encoder": est.encoder is not None,
        "decoder": est.decoder is not None,
        "loss": loss != "mse",
        "code_activation": est.code_activation not in (None, "linear"),
        "output_activation": est.output_activation not in ("auto", None, "linear"),
    }
    return [name for name, wrong in problems.items() if wrong]


def _resolve_init(est, loss):
    """The start used: "pca" or "random"; "auto" picks, "pca" is checked.

    "auto" starts at PCA wherever the network can (dense, linear output,
    mse), for every code size. On the drop-in benchmark's 12 tables (44
    cases), a random start rebuilt held-out rows of raw tables at k <= 3 up to
    30,000 times worse than PCA, where training from PCA's solution improved
    on it: with fit's comparison with PCA, the geometric mean of the ratio to
    PCA was 0.76 against 0.89 with a random start for k <= 3 (seeds 0 and 1).
    On the 2-D benchmark the two starts are within the seeds' spread (digits
    kNN 0.908 against 0.914, MNIST 10k 0.775 against 0.780, seeds 0-2).
    """
    bad = pca_start_problems(est, loss)
    if est.init == "auto":
        # The structure term's recipe was measured from a random start.
        return "random" if bad or est.structure_weight > 0 else "pca"
    if est.init == "pca" and bad:
        received = ", ".join(
            f"{name}={loss if name == 'loss' else getattr(est, name)!r}" for name in bad
        )
        raise ValueError(
            "Expected architecture='dense', no user encoder or decoder, "
            "loss='mse' and linear code and output activations for "
            "init='pca' (a linear path set to PCA plus a correction). "
            f"Received: {received}"
        )
    return est.init


def network_params(est, activation, normalization):
    """The parameters that shape ``est``'s networks, as plain data.

    What the networks of a fit were built from, kept with them so that a
    later ``partial_fit`` call can tell that :meth:`set_params` changed one.
    A user's encoder or decoder is described by what builds the same
    network: a template model's config (its weights are drawn anew anyway),
    a builder's name. ``activation`` and ``normalization``: the values used,
    "auto" resolved.
    """
    n = est.n_components
    return {
        "n_components": (
            int(n) if isinstance(n, Integral) else None if n is None else float(n)
        ),
        "architecture": est.architecture,
        "encoder": _describe_network(est.encoder),
        "decoder": _describe_network(est.decoder),
        "activation": activation,
        "code_activation": est.code_activation,
        "output_activation": est.output_activation,
        "normalization": normalization,
        "code_l1": float(est.code_l1),
    }


def _describe_network(spec):
    if spec is None:
        return None
    if isinstance(spec, keras.layers.Layer):
        try:
            config = keras.saving.serialize_keras_object(spec)
            text = json.dumps(config, sort_keys=True, default=repr)
        except Exception:  # A layer whose config Keras cannot give.
            return f"{type(spec).__qualname__} {spec.name!r}"
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{type(spec).__qualname__} {spec.name!r} (config {digest})"
    name = getattr(spec, "__qualname__", type(spec).__qualname__)
    return f"{getattr(spec, '__module__', None) or '?'}.{name}"


def _check_same_networks(est, fitted, current, input_shape):
    """Refuse a later ``partial_fit`` whose parameters describe other networks.

    Later calls train the networks the first call (or ``fit``) built: a
    changed parameter would be ignored while ``get_params`` describes
    networks that were never built. Like ``IncrementalPCA`` for
    ``n_components``, refuse it; parameters of the training itself (rate,
    optimizer, noise...) may change.
    """
    # What they were built with; None for estimators saved before it was kept.
    built = fitted.__dict__.get("_network_params") or {}
    # PCA's linear networks, kept by fit in place of those asked for, have
    # no hidden layers, activations, normalization or code penalty.
    pca = fitted.__dict__.get("solution_") == "pca"
    # Parameter -> the fitted networks' value.
    changed = {}
    n = est.n_components
    if isinstance(n, Integral):
        # An int is the code size itself: the fitted one, whichever
        # parameter found it (a fraction's search), but not where the code
        # had no layer of its own (None: the conv map, the user's encoder).
        if n != fitted.n_components_:
            changed["n_components"] = fitted.n_components_
        elif built.get("n_components", n) is None:
            changed["n_components"] = None
    elif built and n != built["n_components"]:
        changed["n_components"] = built["n_components"]
    if (
        not isinstance(est.hidden_layer_sizes, str)
        and fitted.hidden_layer_sizes_ is not None
        and not pca
        and tuple(est.hidden_layer_sizes) != fitted.hidden_layer_sizes_
    ):
        changed["hidden_layer_sizes"] = fitted.hidden_layer_sizes_
    # None takes the shape from X, which partial_fit checks against the
    # fitted one; a trailing channel of 1 is the same shape.
    if input_shape is not None and _without_channel(input_shape) != (
        _without_channel(fitted.input_shape_)
    ):
        changed["input_shape"] = fitted.input_shape_
    # "auto" picks a start for new networks only.
    if est.init != "auto" and est.init != fitted.__dict__.get("init_", est.init):
        changed["init"] = fitted.init_
    # The activations, normalization and code_l1 shape the built-in halves
    # only.
    builds = built.get("encoder") is None or built.get("decoder") is None
    for name, value in built.items():
        if name in _BUILT_IN_ONLY and (pca or not builds):
            continue
        # "auto" takes the fitted networks' activation or normalization, as
        # it takes their start (the structure term may have been set since).
        if name in _AUTO and getattr(est, name) == "auto":
            continue
        if name != "n_components" and current[name] != value:
            changed[name] = value
    if changed:
        expected = ", ".join(f"{name}={value!r}" for name, value in changed.items())
        received = ", ".join(f"{name}={getattr(est, name)!r}" for name in changed)
        raise ValueError(
            f"Expected the fitted networks' {expected} for partial_fit, which "
            "continues training them; call fit to build new ones (or set them "
            f"back). Received: {received}"
        )


_AUTO = ("activation", "normalization")
_BUILT_IN_ONLY = (
    "activation",
    "code_activation",
    "output_activation",
    "normalization",
    "code_l1",
)


def _without_channel(shape):
    shape = tuple(shape)
    return shape[:-1] if len(shape) == 3 and shape[-1] == 1 else shape


def auto_batch_size(n_samples):
    """``batch_size="auto"``: the power of two nearest n / 40, in [32, 128]."""
    # Small enough for a few hundred updates per epoch budget on small data,
    # large enough that a CPU step is not dominated by per-step overhead.
    return int(min(128, max(32, 2 ** round(np.log2(max(n_samples, 1) / 40)))))


def auto_epochs(n_samples):
    """``epochs="auto"``: 250,000 samples seen, in [20, 500] epochs."""
    # A budget of samples seen, not of steps, so fit time grows with the data
    # only once the 20-epoch floor is reached. Fits that need more warn
    # (ConvergenceWarning); the training guide says what more epochs buy.
    return int(min(500, max(20, round(250_000 / max(n_samples, 1)))))
