"""From parameters to an encoder-decoder pair: built-in builders or the user's own.

:func:`build` is the one place the estimator's networks are made: a user's
encoder or decoder (a Keras model used as a template, or a builder function),
the built-in dense or convolutional pair of :mod:`skae.architectures`, or the
PCA-started dense pair of :mod:`skae._pca_init`. :func:`fold_scaling` edits a
trained pair in place when ``partial_fit`` changes the input scaling.
"""

import functools
from dataclasses import dataclass
from numbers import Integral

import keras
import numpy as np

from ._compat import seeded_python_random
from ._pca_init import build_pca_dense
from .architectures import (
    CONV_AUTO_FILTERS,
    auto_hidden_layer_sizes,
    build_conv,
    build_dense,
)


@dataclass
class Networks:
    """An encoder, its decoder, and the built-in hidden widths they have.

    ``hidden`` is None when both halves are the user's.
    """

    encoder: keras.Model
    decoder: keras.Model
    hidden: tuple | None


def build(plan, input_shape, n_components, *, seed, basis=None):
    """Build the networks ``plan`` (:class:`skae._params.Plan`) describes.

    ``n_components`` is the code width (None: the network's own); with
    ``basis`` (``init="pca"``) the dense networks start at PCA's first
    ``n_components`` axes. User networks come first: a user encoder sets the
    code width the built-in decoder is made for.
    """
    # Keras takes Python numbers only (here and code_l1 below), while
    # GridSearchCV over np.arange or np.logspace hands out NumPy ones.
    if isinstance(n_components, Integral):
        n_components = int(n_components)
    encoder = decoder = hidden = None
    if plan.encoder is not None:
        encoder = user_network(
            plan.encoder, "encoder", input_shape, n_components, seed=seed
        )
        code_shape = encoder.output_shape
        if (
            not isinstance(code_shape, tuple)
            or len(code_shape) != 2
            or code_shape[1] is None
            or code_shape[1] != (n_components or code_shape[1])
        ):
            raise ValueError(
                "Expected the encoder to output codes of shape "
                f"(None, {n_components or 'n_components'}). Received: "
                f"encoder with output_shape={code_shape}"
            )
        n_components = int(code_shape[1])
    if plan.encoder is None or plan.decoder is None:
        hidden = plan.hidden_layer_sizes
        if hidden is None:
            hidden = (
                CONV_AUTO_FILTERS
                if plan.architecture == "conv"
                else auto_hidden_layer_sizes(
                    int(np.prod(input_shape)),
                    n_components,
                    structure=plan.structure_weight > 0,
                )
            )
        make = build_conv if plan.architecture == "conv" else build_dense
        if basis is not None:
            make = functools.partial(
                build_pca_dense,
                components=basis.components[:n_components],
                mean=basis.mean,
            )
        built_encoder, built_decoder = make(
            input_shape,
            n_components,
            hidden,
            activation=plan.activation,
            code_activation=plan.code_activation,
            output_activation=plan.output_activation_for(basis is not None),
            code_l1=float(plan.code_l1),
            normalization=plan.normalization,
            seed=seed,
        )
        if encoder is None:
            encoder = built_encoder
            n_components = int(encoder.output_shape[-1])
        decoder = built_decoder
    if plan.decoder is not None:
        decoder = user_network(
            plan.decoder, "decoder", input_shape, n_components, seed=seed + 1
        )
        if decoder.output_shape != (None, *input_shape):
            raise ValueError(
                "Expected the decoder to output reconstructions of shape "
                f"{(None, *input_shape)}, the shape of the input. Received: "
                f"decoder with output_shape={decoder.output_shape}"
            )
    if plan.encoder is not None and plan.decoder is not None:
        hidden = None
    return Networks(encoder, decoder, None if hidden is None else tuple(hidden))


def user_network(spec, role, input_shape, n_components, *, seed):
    """The encoder or decoder given by the user, as a functional ``keras.Model``.

    ``spec`` is a Keras model (or layer), used as a template: a copy with fresh
    weights is returned, so that training never changes the caller's object. Or
    it is a callable ``spec(input_shape, n_components)`` returning a new model.
    The result takes inputs of shape ``(None, *input_shape)`` (encoder) or
    ``(None, n_components)`` (decoder). Output shapes are checked by the caller.
    """
    in_shape = tuple(input_shape) if role == "encoder" else (n_components,)
    with seeded_python_random(seed):
        if isinstance(spec, keras.layers.Layer):
            model = _fresh_copy(spec, role)
        else:
            model = spec(tuple(input_shape), n_components)
            if not isinstance(model, keras.layers.Layer):
                raise TypeError(
                    f"Expected {role}(input_shape, n_components) to return a "
                    f"keras.Model. Received: {type(model).__name__} from "
                    f"{role}={spec!r}"
                )
        declared = _declared_input_shape(model)
        if declared is not None and not _shape_matches(declared, (None, *in_shape)):
            raise ValueError(
                f"Expected the {role} to take inputs of shape {(None, *in_shape)}. "
                f"Received: {role} with input_shape={declared}"
            )
        inputs = keras.Input(shape=in_shape, name=f"{role}_input")
        return keras.Model(inputs, model(inputs), name=role)


def _fresh_copy(model, role):
    """A copy of a Keras model or layer with newly initialised weights."""
    try:
        if isinstance(model, keras.Model):
            return keras.models.clone_model(model)
        return model.__class__.from_config(model.get_config())
    except Exception as exc:
        raise ValueError(
            f"Expected a {role} that keras.models.clone_model can copy, such as a "
            "Sequential or functional model; pass a function building it "
            f"instead. Received: {role}={model!r} ({type(exc).__name__}: {exc})"
        ) from exc


def _declared_input_shape(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None  # Not built yet: it takes whatever it is called on.
    return tuple(shape) if isinstance(shape, (tuple, list)) else None


def _shape_matches(shape, expected):
    """Whether a Keras shape (None for any size) fits ``expected``."""
    shape = tuple(shape)
    return len(shape) == len(expected) and all(
        s is None or e is None or s == e for s, e in zip(shape, expected, strict=True)
    )


def foldable_layers(encoder, decoder):
    """The Dense layers that read the input and write the output, or None.

    A change of input scaling can be folded into exactly these: every path
    from the input starts with a Dense layer (after flattening), every path to
    the output ends with a linear Dense layer (before summing or reshaping).
    """
    reshaping = (keras.layers.Flatten, keras.layers.Reshape)
    sources, first = {id(encoder.inputs[0])}, []
    for layer in encoder.layers[1:]:
        if not any(id(t) in sources for t in keras.tree.flatten(layer.input)):
            continue
        if isinstance(layer, reshaping):
            sources.add(id(layer.output))
        elif isinstance(layer, keras.layers.Dense):
            first.append(layer)
        else:
            return None
    targets, last = {id(decoder.outputs[0])}, []
    for layer in reversed(decoder.layers[1:]):
        if id(layer.output) not in targets:
            continue
        if isinstance(layer, (*reshaping, keras.layers.Add)):
            targets.update(id(t) for t in keras.tree.flatten(layer.input))
        elif isinstance(layer, keras.layers.Dense) and layer.activation in (
            keras.activations.linear,
        ):
            last.append(layer)
        else:
            return None
    return (first, last) if first and last else None


def fold_scaling(encoder, decoder, old_offset, old_scale, offset, scale):
    """Re-express the first and last layers for a new input scaling, in place.

    With ``x_scaled = (x - offset) / scale``, a first layer ``W x_scaled + b``
    and a reconstruction ``scale * y + offset`` keep their values in the input's
    units when ``W``, ``b`` and the last layers' weights change as below. A
    network that does not start and end with Dense layers (convolutions, most
    user networks) is left as it is: the new scaling applies to it as is, and
    training on the chunk adapts it.
    """
    if np.array_equal(old_offset, offset) and np.array_equal(old_scale, scale):
        return
    layers = foldable_layers(encoder, decoder)
    if layers is None:
        return
    first, last = layers
    for layer in first:
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        layer.set_weights(
            [
                kernel * (scale / old_scale)[:, None],
                bias + ((offset - old_offset) / old_scale) @ kernel,
            ]
        )
    shift = (old_offset - offset) / scale
    for i, layer in enumerate(last):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        bias = bias * (old_scale / scale) + (shift if i == 0 else 0.0)
        layer.set_weights([kernel * (old_scale / scale), bias])
