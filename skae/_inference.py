"""Running the fitted networks: ``transform``, ``inverse_transform``, scores.

A compiled function with a fixed signature runs each network: Keras'
``predict()`` costs tens of milliseconds per call, this a fraction of one. It
runs a float64 copy of the network: float32 CPU kernels round a row differently
depending on the batch's size and the row's place in it (~1e-7), so a sample's
code would depend on which other samples came with it, while float64 rounding
(~1e-16) is far below any tolerance that matters.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from . import _compat
from ._input import out_dtype, row_batches


class Inference:
    """The compiled functions of an estimator's fitted networks, made on first use.

    One per fitted estimator (never pickled); :meth:`refit` keeps the compiled
    functions of networks that training changed only the weights of.
    """

    def __init__(self):
        # name -> (function, dtype, runner, source model)
        self._compiled = {}

    def refit(self, models):
        """Forget every network not in ``models`` (name -> model), in place.

        ``partial_fit`` trains the same models again: their compiled float64
        copies only need the new weights, not a new trace.
        """
        kept = {}
        for name, (fn, dtype, runner, source) in self._compiled.items():
            if source is models.get(name):
                if runner is not source:
                    runner.set_weights(source.get_weights())
                kept[name] = (fn, dtype, runner, source)
        self._compiled = kept

    def run(self, name, model, X, offset=None, scale=None, unscale=None):
        """Apply ``model`` batch by batch, never holding a full scaled copy.

        ``offset`` and ``scale`` scale X first; ``unscale`` (an ``(offset,
        scale)`` pair) brings the result back to the input's units. Rows in
        and out: images are reshaped for the network and flattened back.
        """
        fn, dtype = self._function(name, model)
        in_shape = model.input_shape[1:]
        out = np.empty(
            (X.shape[0], math.prod(model.output_shape[1:])), dtype=out_dtype(X)
        )
        for start, batch in row_batches(X):
            if offset is not None:
                batch = np.subtract(batch, offset)
                batch /= scale
            rows = len(batch)
            batch = batch.reshape(rows, *in_shape)
            result = fn(tf.constant(batch, dtype=dtype)).numpy().reshape(rows, -1)
            if unscale is not None:
                result = result * unscale[1] + unscale[0]
            out[start : start + rows] = result
        return out

    def _function(self, name, model):
        cached = self._compiled.get(name)
        if cached is None or cached[3] is not model:
            runner, dtype = float64_copy(model), tf.float64
            if runner is None:
                runner, dtype = model, tf.float32
            signature = [tf.TensorSpec([None, *model.input_shape[1:]], dtype)]

            def forward(x):
                return runner(x, training=False)

            fn = _compat.function(forward, input_signature=signature, autograph=False)
            cached = self._compiled[name] = (fn, dtype, runner, model)
        return cached[0], cached[1]


def score_samples(inference, encoder, decoder, X, offset, scale):
    """Negative mean squared reconstruction error of each row of X, in float64."""
    scores = np.empty(X.shape[0])
    for start, batch in row_batches(X):
        codes = inference.run("encoder_", encoder, batch, offset, scale)
        rebuilt = inference.run("decoder_", decoder, codes, unscale=(offset, scale))
        # In float64: float32 squares overflow to inf from about 1e19.
        error = np.subtract(batch, rebuilt, dtype=np.float64)
        scores[start : start + len(batch)] = -np.mean(error**2, axis=1)
    return scores


def float64_copy(model):
    """A float64 twin of ``model`` with the same weights, or None if it can't be
    built (a custom layer whose config does not accept a dtype)."""

    def as_float64(layer):
        if isinstance(layer, keras.Model):
            nested = float64_copy(layer)
            if nested is None:
                raise TypeError(f"no float64 copy of {layer.name}")
            return nested
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    try:
        # Unseeded initializers of user layers draw from Python's random:
        # transform must leave the caller's stream as it was (the weights are
        # overwritten anyway).
        with _compat.seeded_python_random(0):
            twin = keras.models.clone_model(
                model,
                input_tensors=keras.Input(model.input_shape[1:], dtype="float64"),
                clone_function=as_float64,
            )
        twin.set_weights(model.get_weights())
    except Exception:
        return None
    if any(w.dtype != "float64" for w in twin.weights):
        return None
    return twin
