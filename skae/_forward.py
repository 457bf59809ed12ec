"""The NumPy forward pass of a fitted network, importable without Keras.

:mod:`skae._inference` maps a Keras network to a list of NumPy steps; the
steps, the loop that runs them batch by batch and :class:`Forward` (what a
Dask worker needs to run ``transform``, ``inverse_transform`` and
``score_samples`` of the built-in dense networks) live here, in a module that
imports neither Keras nor TensorFlow (nor scikit-learn: 130 MB of a worker's
memory). A Dask worker that unpickles a :class:`Forward` holds NumPy, SciPy's
special functions and the weights, not TensorFlow's runtime (about 900 MB).

Every step is a module-level function, or a :func:`functools.partial` of one:
the plain ``pickle`` module ships them.
"""

import math

import numpy as np
from scipy import special

# Rows per call at inference and per pass of the scaling statistics (all
# in-memory X is read in slices of as many): large enough to amortise the
# call, small enough that a batch's copy stays a few tens of MB.
BATCH_ROWS = 4096


def forward(steps, output, x, weights):
    """The output of ``steps`` (see ``_inference.NumpyNetwork``) for rows ``x``."""
    values = [x]
    # TensorFlow turns overflow into inf silently; so does this path.
    with np.errstate(all="ignore"):
        for op, inputs, params, drop in steps:
            values.append(
                op(*[values[i] for i in inputs], *[weights[j] for j in params])
            )
            for i in drop:
                values[i] = None
    return values[output]


def run(network, X, offset=None, scale=None, unscale=None, batches=None, dtype=None):
    """Apply ``network`` to the rows of X batch by batch, never holding a
    full scaled copy.

    ``network`` has ``in_shape``, ``out_width``, ``weights(dtype)`` and
    ``forward(x, weights)``. ``offset`` and ``scale`` scale X first;
    ``unscale`` (an ``(offset, scale)`` pair) brings the result back to the
    input's units. ``batches`` yields ``(start, rows)`` of X (slices of
    :data:`BATCH_ROWS` rows by default); ``dtype`` (X's by default) is the
    float dtype computed in and returned.
    """
    dtype = np.dtype(X.dtype if dtype is None else dtype)
    weights = network.weights(dtype)
    out = np.empty((X.shape[0], network.out_width), dtype=dtype)
    for start, batch in batches if batches is not None else row_batches(X):
        rows = len(batch)
        if offset is not None:
            batch = np.subtract(batch, offset, dtype=dtype)
            np.divide(batch, scale, out=batch, dtype=dtype)
        elif batch.dtype != dtype:
            batch = batch.astype(dtype)
        result = network.forward(batch.reshape(rows, *network.in_shape), weights)
        target = out[start : start + rows]
        if unscale is None:
            target[...] = result.reshape(rows, -1)
        else:
            np.multiply(result.reshape(rows, -1), unscale[1], out=target, dtype=dtype)
            np.add(target, unscale[0], out=target, dtype=dtype)
    return out


def row_batches(X):
    """``(start, rows)`` slices of an in-memory X, :data:`BATCH_ROWS` at a time."""
    for start in range(0, X.shape[0], BATCH_ROWS):
        yield start, X[start : start + BATCH_ROWS]


def score(encode, decode, batches, n_rows):
    """Negative mean squared reconstruction error of each row, in float64.

    ``encode(batch)`` gives codes, ``decode(codes)`` reconstructions in the
    input's units, for the ``(start, batch)`` pairs of ``batches``.
    """
    scores = np.empty(n_rows)
    for start, batch in batches:
        rebuilt = decode(encode(batch))
        # In float64: float32 squares overflow to inf from about 1e19.
        error = np.subtract(batch, rebuilt, dtype=np.float64)
        scores[start : start + len(batch)] = -np.mean(error**2, axis=1)
    return scores


class Network:
    """A network's NumPy steps with a copy of its weights, without Keras.

    ``arrays`` are the weights as trained; :meth:`weights` gives them in the
    dtype a call computes in (cast once per dtype, as
    ``_inference.NumpyNetwork`` reads them from the Keras variables).
    """

    def __init__(self, steps, arrays, output, in_shape, out_width):
        self.steps = steps
        self.arrays = tuple(arrays)
        self.output = output
        self.in_shape = tuple(in_shape)
        self.out_width = out_width
        self._weights = {}

    def weights(self, dtype):
        """The weights as read-only arrays of ``dtype``, copied on first use."""
        dtype = np.dtype(dtype)
        weights = self._weights.get(dtype)
        if weights is None:
            weights = []
            for array in self.arrays:
                array = np.array(array, dtype=dtype)
                array.flags.writeable = False
                weights.append(array)
            # Built whole, then stored: safe from a worker's threads.
            weights = self._weights[dtype] = tuple(weights)
        return weights

    def forward(self, x, weights):
        return forward(self.steps, self.output, x, weights)

    def __getstate__(self):
        # The casts are rebuilt where they are used.
        state = dict(vars(self))
        state["_weights"] = {}
        return state


class Forward:
    """``transform``, ``inverse_transform`` and ``score_samples`` in NumPy.

    What a Dask worker is shipped for a fitted estimator whose networks the
    NumPy path runs: the scaling, the code scale and the networks (either may
    be None when the method at hand does not need it). Rows in, as the
    estimator's own methods take after validation; results equal theirs on
    the same rows (the same steps, batches and dtype rules).
    """

    def __init__(self, encoder, decoder, *, offset, scale, code_scale, sample_shape):
        self.encoder = encoder
        self.decoder = decoder
        self.offset = offset
        self.scale = scale
        self.code_scale = code_scale
        self.sample_shape = tuple(sample_shape)

    def transform(self, X):
        return run(
            self.encoder, X, self.offset, self.scale, unscale=(0.0, self.code_scale)
        )

    def inverse_transform(self, X):
        out = run(
            self.decoder,
            X / np.asarray(self.code_scale, X.dtype),
            unscale=(self.offset, self.scale),
        )
        return out.reshape(len(out), *self.sample_shape)

    def score_samples(self, X):
        def encode(batch):
            return run(self.encoder, batch, self.offset, self.scale)

        def decode(codes):
            return run(self.decoder, codes, unscale=(self.offset, self.scale))

        return score(encode, decode, row_batches(X), len(X))


def apply_block(block, forward_, method):
    """``forward_.<method>`` of one Dask block, checked as ``validate_data`` would.

    Not through scikit-learn's ``check_array``: importing it costs a worker
    130 MB. The caller checked the width and feature names on the whole X.
    """
    block = np.asarray(block)
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
    if block.ndim != 2:
        block = block.reshape(len(block), -1)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = bool(np.isfinite(block.sum())) or bool(np.isfinite(block).all())
    if not finite:
        what = "NaN" if np.isnan(block).any() else "infinity"
        raise ValueError(
            f"Input X contains {what}. Expected finite values. Received: a block "
            f"of {len(block)} rows of the Dask X with {what}"
        )
    return getattr(forward_, method)(block)


# -- the steps ----------------------------------------------------------------


def reshape_rows(shape, x):
    return x.reshape(len(x), *shape)


def flatten_channels_first(axes, width, x):
    return x.transpose(axes).reshape(len(x), width)


def dense(act, x, kernel, bias=None):
    h = x @ kernel
    if bias is not None:
        h += bias
    # h is this step's own array: the activation may work in place.
    return act(h, h)


def activation(act, x):
    return act(x, None)


def activation_in_place(act, x):
    return act(x, x)


def layer_norm(epsilon, has_gamma, has_beta, x, *params):
    # As keras.ops.layer_normalization: tf.nn.moments, then one multiply-add.
    mean = x.mean(axis=-1, keepdims=True)
    variance = np.square(x - mean).mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(variance + epsilon)
    params = iter(params)
    if has_gamma:
        inv = inv * next(params)
    res = -mean * inv
    if has_beta:
        res = res + next(params)
    return x * inv + res


def concatenate(axis, *xs):
    return np.concatenate(xs, axis=axis)


def add(*xs):
    return sum(xs[1:], xs[0])


def multiply(*xs):
    return math.prod(xs[1:], start=xs[0])


def average(*xs):
    return sum(xs[1:], xs[0]) / len(xs)


def maximum(*xs):
    return np.maximum.reduce(xs)


def minimum(*xs):
    return np.minimum.reduce(xs)


# -- activations ----------------------------------------------------------------
# Each takes the pre-activation x and ``out``: x itself when x may be
# overwritten, else None. Python scalars keep x's float dtype.
# TensorFlow's leaky_relu takes its slope as a float32 attribute.
_LEAKY_SLOPE = float(np.float32(0.2))
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def linear(x, out):
    return x


def relu(x, out):
    return np.maximum(x, 0, out=out)


def relu6(x, out):
    return np.clip(x, 0, 6, out=out)


def leaky_relu(x, out):
    return np.maximum(x, _LEAKY_SLOPE * x, out=out)


def elu(x, out):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def selu(x, out):
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def celu(x, out):
    return np.maximum(x, 0) + np.expm1(np.minimum(x, 0))


def sigmoid(x, out):
    return special.expit(x, out=out)


def hard_sigmoid(x, out):
    return np.clip(x + 3, 0, 6) / 6


def log_sigmoid(x, out):
    return -np.logaddexp(0, -x)


def sparse_sigmoid(x, out):
    return np.clip(0.5 * (x + 1), 0, 1)


def tanh(x, out):
    return np.tanh(x, out=out)


def hard_tanh(x, out):
    return np.clip(x, -1, 1, out=out)


def tanh_shrink(x, out):
    return x - np.tanh(x)


def softplus(x, out):
    return np.logaddexp(0, x, out=out)


def softsign(x, out):
    return x / (1 + np.abs(x))


def silu(x, out):
    return x * special.expit(x)


def hard_silu(x, out):
    return x * hard_sigmoid(x, None)


def gelu(x, out):
    # keras.activations.gelu is the exact one (approximate=False), as TF's:
    # 0.5 x erfc(-x / sqrt(2)).
    return 0.5 * x * special.erfc(-x * 0.7071067811865476)


def mish(x, out):
    return x * np.tanh(np.logaddexp(0, x))


def exponential(x, out):
    return np.exp(x, out=out)


def softmax(x, out):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.divide(e, e.sum(axis=-1, keepdims=True), out=e)


def log_softmax(x, out):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def squareplus(x, out):
    return (x + np.sqrt(np.square(x) + 4)) / 2


def sparse_plus(x, out):
    return np.where(x <= -1, 0, np.where(x < 1, 0.25 * np.square(x + 1), x))


def soft_shrink(x, out):
    return np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0))


def hard_shrink(x, out):
    return np.where(np.abs(x) > 0.5, x, 0)


# Keras' activation name -> its NumPy twin.
ACTIVATIONS = {
    fn.__name__: fn
    for fn in (
        linear,
        relu,
        relu6,
        leaky_relu,
        elu,
        selu,
        celu,
        sigmoid,
        hard_sigmoid,
        log_sigmoid,
        sparse_sigmoid,
        tanh,
        hard_tanh,
        tanh_shrink,
        softplus,
        softsign,
        silu,
        hard_silu,
        gelu,
        mish,
        exponential,
        softmax,
        log_softmax,
        squareplus,
        sparse_plus,
        soft_shrink,
        hard_shrink,
    )
}


def apply_frame(part, forward_, method, columns):
    """:func:`apply_block` of one pandas partition, as a frame with its index."""
    import pandas as pd

    out = apply_block(part.to_numpy(), forward_, method)
    return pd.DataFrame(out, index=part.index, columns=columns)
