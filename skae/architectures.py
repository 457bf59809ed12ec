"""Network builders: each returns an ``(encoder, decoder)`` pair of Keras models.

The encoder maps an input row to a code of ``n_components`` values; the decoder
is a model of its own, so that any code (a grid of 2-D points, say) can be decoded
without the encoder.
"""

import keras

__all__ = ["auto_hidden_layer_sizes", "build_dense"]


def auto_hidden_layer_sizes(n_features, n_components):
    """Hidden layer widths for ``hidden_layer_sizes="auto"``.

    The first layer is wider than the input for small inputs (room to bend the
    manifold) and capped for large ones (cost grows with its width); each next
    layer halves, stopping before it gets narrower than about four times the code.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_components : int
        Width of the code.

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
    """
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


def build_dense(
    n_features,
    n_components,
    hidden_layer_sizes,
    *,
    activation="relu",
    code_activation=None,
    output_activation=None,
    code_l1=0.0,
    seed=0,
):
    """Build a symmetric dense encoder and decoder.

    Parameters
    ----------
    n_features : int
        Width of the input (and of the reconstruction).
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
    """
    hidden_layer_sizes = tuple(hidden_layer_sizes)
    inputs = keras.Input(shape=(n_features,), name="input")
    h = inputs
    for i, units in enumerate(hidden_layer_sizes):
        h = _dense(units, activation, seed + i, f"encoder_{i}")(h)
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
    decoder = keras.Model(code_in, outputs, name="decoder")
    return encoder, decoder
