"""Network builders: each returns an ``(encoder, decoder)`` pair of Keras models.

The encoder maps an input row to a code of ``n_components`` values; the decoder
is a model of its own, so that any code (a grid of 2-D points, say) can be decoded
without the encoder.
"""

import keras
import numpy as np

__all__ = ["auto_hidden_layer_sizes", "build_conv", "build_dense"]

# What may stand between an encoder's hidden layer and its activation (None:
# nothing).
NORMALIZATIONS = ("layer",)


def auto_hidden_layer_sizes(n_features, n_components, *, structure=False):
    """Hidden layer widths for ``hidden_layer_sizes="auto"``.

    The first layer is wider than the input for small inputs (room to bend the
    manifold) and capped for large ones (cost grows with its width); each next
    layer halves, stopping before it gets narrower than about four times the code.

    With the structure term (``structure_weight > 0``) four layers of 128 (or
    of four times the code, if wider): the neighbour-embedding loss trains
    better through a deeper, narrower network, as Parametric UMAP's three
    layers of 100. Measured on held-out halves, 2-D, seeds 0-2, against the
    plain rule's sizes: MNIST 10k kNN accuracy 0.909 against 0.904,
    silhouette 0.33 against 0.30, reconstruction MSE 0.0369 against 0.0372, in
    60% of the fit time; UCI digits kNN 0.964 against 0.960 (three layers, ReLU).
    A fourth layer, with the structure term's GELU and layer normalisation
    (``activation`` and ``normalization`` "auto"), raised MNIST's to 0.933
    from 0.920 (through PCA(100)).

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_components : int
        Width of the code.
    structure : bool, default=False
        Whether the network trains with the structure term.

    Returns
    -------
    sizes : tuple of int
        Encoder hidden widths, widest first; the decoder mirrors them.

    Examples
    --------
    >>> from skae.architectures import auto_hidden_layer_sizes
    >>> auto_hidden_layer_sizes(64, 2)
    (256, 128)
    >>> auto_hidden_layer_sizes(784, 2)
    (512, 256, 128)
    >>> auto_hidden_layer_sizes(784, 2, structure=True)
    (128, 128, 128, 128)
    """
    if structure:
        return (max(128, 4 * n_components),) * 4
    width = min(512, max(64, 4 * n_features))
    sizes = [width]
    while len(sizes) < 3 and sizes[-1] // 2 >= max(128, 4 * n_components):
        sizes.append(sizes[-1] // 2)
    return tuple(sizes)


def _dense(units, activation, seed, name, **kwargs):
    # A seeded initializer per layer: reproducible without touching Keras'
    # global seed, and different layers get different draws.
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
        **kwargs,
    )


def _encoder_hidden(make, units, activation, normalization, seed, name):
    """``make(units, activation, seed, name)``, layer-normalised if asked.

    LayerNormalization sits between the layer and its activation, as in Ba et
    al. (2016): the activation sees standardised inputs, whatever scale the
    layer's weights drift to while the code is pulled about.
    """
    if normalization is None:
        return make(units, activation, seed, name)
    layer = make(units, None, seed, name)
    norm = keras.layers.LayerNormalization(name=f"{name}_norm")
    act = keras.layers.Activation(activation, name=f"{name}_activation")
    return lambda h: act(norm(layer(h)))


def _check_normalization(normalization):
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ValueError(
            f"Expected normalization to be None or one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )


def build_dense(
    n_features,
    n_components,
    hidden_layer_sizes,
    *,
    activation="relu",
    code_activation=None,
    output_activation=None,
    code_l1=0.0,
    normalization=None,
    seed=0,
):
    """Build a symmetric dense encoder and decoder.

    Parameters
    ----------
    n_features : int or tuple of int
        Width of the input (and of the reconstruction), or the shape of one
        sample, such as ``(28, 28)``: the encoder flattens it and the decoder
        restores it.
    n_components : int
        Width of the code.
    hidden_layer_sizes : sequence of int
        Encoder hidden widths; the decoder uses them in reverse.
    activation : str or None, default="relu"
        Hidden-layer activation; None or "linear" gives a linear network.
    code_activation : str or None, default=None
        Activation of the code layer (None: linear).
    output_activation : str or None, default=None
        Activation of the reconstruction (None: linear).
    code_l1 : float, default=0.0
        L1 activity penalty on the code (a sparse code when > 0).
    normalization : {None, "layer"}, default=None
        "layer" puts a :class:`keras.layers.LayerNormalization` between each
        of the encoder's hidden layers and its activation; the decoder is
        left plain.
    seed : int, default=0
        Seed of the weight initialisers.

    Returns
    -------
    encoder, decoder : keras.Model
        ``encoder`` maps ``(n, n_features)`` to ``(n, n_components)``,
        ``decoder`` the other way.

    Examples
    --------
    >>> from skae.architectures import build_dense
    >>> encoder, decoder = build_dense(64, 2, (32,), seed=0)
    >>> encoder.output_shape, decoder.output_shape
    ((None, 2), (None, 64))
    >>> encoder, decoder = build_dense((28, 28), 2, (32,), seed=0)
    >>> encoder.input_shape, decoder.output_shape
    ((None, 28, 28), (None, 28, 28))
    """
    _check_normalization(normalization)
    hidden_layer_sizes = tuple(hidden_layer_sizes)
    shape = tuple(n_features) if isinstance(n_features, (tuple, list)) else None
    if shape is not None:
        n_features = int(np.prod(shape))
    inputs = keras.Input(shape=shape or (n_features,), name="input")
    h = inputs
    if shape is not None and len(shape) > 1:
        h = keras.layers.Flatten(name="flatten")(h)
    for i, units in enumerate(hidden_layer_sizes):
        h = _encoder_hidden(
            _dense, units, activation, normalization, seed + i, f"encoder_{i}"
        )(h)
    code = _dense(
        n_components,
        code_activation,
        seed + len(hidden_layer_sizes),
        "code",
        activity_regularizer=keras.regularizers.L1(code_l1) if code_l1 else None,
    )(h)
    encoder = keras.Model(inputs, code, name="encoder")

    code_in = keras.Input(shape=(n_components,), name="code_input")
    h = code_in
    offset = seed + len(hidden_layer_sizes) + 1
    for i, units in enumerate(reversed(hidden_layer_sizes)):
        h = _dense(units, activation, offset + i, f"decoder_{i}")(h)
    outputs = _dense(
        n_features, output_activation, offset + len(hidden_layer_sizes), "output"
    )(h)
    if shape is not None and len(shape) > 1:
        outputs = keras.layers.Reshape(shape, name="to_input_shape")(outputs)
    decoder = keras.Model(code_in, outputs, name="decoder")
    return encoder, decoder


# The classic Keras convolutional autoencoder: three 3x3 convolutions, each
# followed by 2x2 max pooling, take 28x28 digits down to a (4, 4, 8) map.
CONV_AUTO_FILTERS = (16, 8, 8)


def _conv(filters, activation, seed, name):
    return keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


def _image_shape(input_shape):
    """``(height, width, channels)`` of samples of shape ``input_shape``."""
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) == 1:
        # A flat row is a one-pixel-high image: 3x3 convolutions then act as 1-D
        # ones along the row.
        return (1, input_shape[0], 1)
    if len(input_shape) == 2:
        return (*input_shape, 1)
    if len(input_shape) == 3:
        return input_shape
    raise ValueError(
        "Expected input_shape of the form (width,), (height, width) or "
        f"(height, width, channels). Received: input_shape={input_shape}"
    )


def build_conv(
    input_shape,
    n_components,
    filters=CONV_AUTO_FILTERS,
    *,
    activation="relu",
    code_activation=None,
    output_activation=None,
    code_l1=0.0,
    normalization=None,
    seed=0,
):
    """Build a convolutional encoder and an upsampling decoder for images.

    The encoder applies, for each entry of ``filters``, a 3x3 convolution
    (``padding="same"``) and 2x2 max pooling, which halves the height and width
    (rounding up). The decoder mirrors it: for each entry in reverse, a 3x3
    convolution and 2x2 upsampling (cropped where the encoder rounded up), then
    a 3x3 convolution back to the input's channels.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample: ``(height, width)``, ``(height, width, channels)``
        or ``(width,)`` (a one-pixel-high image). The decoder's output has the
        same shape.
    n_components : int or None
        Width of the code. An int adds a dense layer from the flattened last
        feature map to ``n_components`` units (and one back in the decoder).
        None makes the flattened last feature map itself the code, of width
        ``height * width * filters[-1]`` after the poolings.
    filters : sequence of int, default=(16, 8, 8)
        Number of filters of each encoder convolution; the decoder uses them
        in reverse.
    activation : str or None, default="relu"
        Activation of the convolutions (and of the decoder's dense layer).
    code_activation : str or None, default=None
        Activation applied to the code (None: linear).
    output_activation : str or None, default=None
        Activation of the reconstruction (None: linear).
    code_l1 : float, default=0.0
        L1 activity penalty on the code (a sparse code when > 0).
    normalization : {None, "layer"}, default=None
        "layer" puts a :class:`keras.layers.LayerNormalization` (over the
        channels of each pixel) between each of the encoder's convolutions
        and its activation; the decoder is left plain.
    seed : int, default=0
        Seed of the weight initialisers.

    Returns
    -------
    encoder, decoder : keras.Model
        ``encoder`` maps ``(n, *input_shape)`` to ``(n, code_width)``,
        ``decoder`` the other way.

    Examples
    --------
    The classic Keras recipe: 28x28 digits down to a (4, 4, 8) map, used as is
    as a code of 128 values:

    >>> from skae.architectures import build_conv
    >>> encoder, decoder = build_conv((28, 28), None, (16, 8, 8), seed=0)
    >>> encoder.output_shape, decoder.output_shape
    ((None, 128), (None, 28, 28))

    The same with a dense bottleneck to a 2-D code:

    >>> encoder, decoder = build_conv((28, 28, 1), 2, (16, 8, 8), seed=0)
    >>> encoder.output_shape, decoder.input_shape, decoder.output_shape
    ((None, 2), (None, 2), (None, 28, 28, 1))
    """
    _check_normalization(normalization)
    input_shape = tuple(int(d) for d in input_shape)
    height, width, channels = _image_shape(input_shape)
    filters = tuple(filters)
    seeds = iter(range(seed, seed + 2 * len(filters) + 4))

    inputs = keras.Input(shape=input_shape, name="input")
    h = keras.layers.Reshape((height, width, channels), name="to_image")(inputs)
    sizes = [(height, width)]
    for i, n_filters in enumerate(filters):
        h = _encoder_hidden(
            _conv,
            n_filters,
            activation,
            normalization,
            next(seeds),
            f"encoder_conv_{i}",
        )(h)
        h = keras.layers.MaxPooling2D(2, padding="same", name=f"encoder_pool_{i}")(h)
        sizes.append(tuple(-(-s // 2) for s in sizes[-1]))
    map_shape = (*sizes[-1], filters[-1] if filters else channels)
    h = keras.layers.Flatten(name="flatten")(h)
    regularizer = keras.regularizers.L1(code_l1) if code_l1 else None
    if n_components is None:
        if code_activation is not None:
            h = keras.layers.Activation(code_activation, name="code_activation")(h)
        code = keras.layers.ActivityRegularization(l1=code_l1, name="code")(h)
    else:
        code = _dense(
            n_components,
            code_activation,
            next(seeds),
            "code",
            activity_regularizer=regularizer,
        )(h)
    encoder = keras.Model(inputs, code, name="encoder")

    code_in = keras.Input(shape=(encoder.output_shape[-1],), name="code_input")
    h = code_in
    if n_components is not None:
        h = _dense(int(np.prod(map_shape)), activation, next(seeds), "decoder_dense")(h)
    h = keras.layers.Reshape(map_shape, name="to_map")(h)
    for i in reversed(range(len(filters))):
        h = _conv(filters[i], activation, next(seeds), f"decoder_conv_{i}")(h)
        h = keras.layers.UpSampling2D(2, name=f"decoder_upsample_{i}")(h)
        extra = [2 * s - t for s, t in zip(sizes[i + 1], sizes[i], strict=True)]
        if any(extra):
            # The encoder rounded an odd size up; drop the extra row or column.
            h = keras.layers.Cropping2D(
                ((0, extra[0]), (0, extra[1])), name=f"decoder_crop_{i}"
            )(h)
    h = _conv(channels, output_activation, next(seeds), "output")(h)
    outputs = keras.layers.Reshape(input_shape, name="to_input_shape")(h)
    decoder = keras.Model(code_in, outputs, name="decoder")
    return encoder, decoder
