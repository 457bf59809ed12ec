"""Running the fitted networks: ``transform``, ``inverse_transform``, scores.

Two paths run a network, and agree to float round-off:

* **NumPy**, for networks made only of layers whose inference maths is
  reproduced here (:func:`numpy_network`): Dense with the activations of
  ``_ACTIVATIONS``, LayerNormalization, Activation, merges, Flatten, Reshape,
  and the layers that are the identity at inference (dropout, noise, activity
  regularization), in any functional graph, nested models included. Each
  batch is a few matrix products on a copy of the weights in the input's
  float dtype: float32 input runs at float32 BLAS speed, float64 input in
  float64. A call costs microseconds, so one row takes about as long as its
  arithmetic.
* **Keras**, for any other network (convolutions, custom layers): a compiled
  function with a fixed signature (Keras' ``predict()`` costs tens of
  milliseconds per call, this a fraction of one) runs a float64 copy of the
  network. float32 TensorFlow CPU kernels round a row differently depending on
  the batch's size and the row's place in it, so a sample's code would depend
  on which other samples came with it; float64 rounding (~1e-16) is far below
  any tolerance that matters.

On the NumPy path float64 input is as batch-independent as the Keras path.
float32 input is computed in float32, as the network was trained: a row's
result can then differ by float32 round-off (a few 1e-7 of its scale)
between batches of different sizes, because BLAS libraries use other kernels
for one or two rows than for more (rows in batches of three or more agree bit
for bit with OpenBLAS). Computing float32 input in float64 would halve the
throughput, which is what this path is for; pass float64 input (or force the
Keras path) where that round-off matters.

:func:`inference_path` forces either path.
"""

import contextlib
import contextvars
import math
from functools import partial

import keras
import numpy as np

from . import _backend, _compat, _forward
from ._input import out_dtype, row_batches

PATHS = ("auto", "numpy", "keras")
_PATH = contextvars.ContextVar("skae_inference_path", default="auto")


@contextlib.contextmanager
def inference_path(path):
    """Choose how ``transform``, ``inverse_transform`` and scores run networks.

    By default (``"auto"``) a network made only of layers whose inference skae
    reproduces with NumPy, as the built-in dense networks are, runs as NumPy
    matrix products on its fitted weights, in the input's float dtype; any
    other network (convolutions, custom layers) runs through Keras. The two
    agree to float round-off. The choice holds inside the ``with`` block, in
    the thread (or asyncio task) that entered it only: other threads keep
    theirs.

    Parameters
    ----------
    path : {"auto", "numpy", "keras"}
        ``"numpy"`` forces the NumPy path and raises ``ValueError`` for a
        network it cannot run; ``"keras"`` forces the Keras path (a compiled
        float64 copy of each network).

    Yields
    ------
    None

    Examples
    --------
    >>> import numpy as np
    >>> import skae
    >>> X = np.random.RandomState(0).rand(100, 6)
    >>> ae = skae.AutoencoderTransformer(epochs=2, random_state=0).fit(X)
    >>> with skae.inference_path("keras"):
    ...     through_keras = ae.transform(X)
    >>> bool(np.allclose(ae.transform(X), through_keras))
    True
    """
    if not isinstance(path, str) or path not in PATHS:
        raise ValueError(f"Expected path to be one of {PATHS}. Received: path={path!r}")
    token = _PATH.set(path)
    try:
        yield
    finally:
        _PATH.reset(token)


class Inference:
    """How an estimator's fitted networks run, worked out on first use.

    One per fitted estimator (never pickled). Safe to use from several
    threads at once: what it caches is built whole before it is stored, and
    never changed afterwards. :meth:`refit` keeps what training leaves valid.
    """

    def __init__(self):
        # Keras path: name -> (function, dtype, runner, source model).
        self._compiled = {}
        # NumPy path: name -> (NumpyNetwork, or the reason there is none,
        # source model).
        self._numpy = {}

    def refit(self, models):
        """Forget every network not in ``models`` (name -> model), in place.

        ``partial_fit`` trains the same models again: their compiled float64
        copies only need the new weights, not a new trace, and their NumPy
        form only a new copy of the weights (read on next use).
        """
        kept = {}
        for name, (fn, dtype, runner, source) in self._compiled.items():
            if source is models.get(name):
                if runner is not source:
                    runner.set_weights(source.get_weights())
                kept[name] = (fn, dtype, runner, source)
        self._compiled = kept
        self._numpy = {
            name: (
                network.reloaded() if isinstance(network, NumpyNetwork) else network,
                source,
            )
            for name, (network, source) in self._numpy.items()
            if source is models.get(name)
        }

    def run(self, name, model, X, offset=None, scale=None, unscale=None):
        """Apply ``model`` batch by batch, never holding a full scaled copy.

        ``offset`` and ``scale`` scale X first; ``unscale`` (an ``(offset,
        scale)`` pair) brings the result back to the input's units. Rows in
        and out: images are reshaped for the network and flattened back.
        """
        network = self.numpy_network(name, model)
        if network is None:
            return self._run_keras(name, model, X, offset, scale, unscale)
        return _forward.run(
            network, X, offset, scale, unscale, row_batches(X), out_dtype(X)
        )

    def numpy_network(self, name, model):
        """``model`` as a :class:`NumpyNetwork`, or None for the Keras path.

        Follows :func:`inference_path`; under ``"numpy"`` a network that
        cannot run with NumPy raises ``ValueError``.
        """
        path = _PATH.get()
        if path == "keras":
            return None
        cached = self._numpy.get(name)
        if cached is None or cached[1] is not model:
            try:
                network = numpy_network(model)
            except Unmappable as exc:
                network = str(exc)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # A graph this mapping did not foresee (dynamic shapes, say):
                # Keras runs it as it is.
                network = f"a graph not mapped ({type(exc).__name__}: {exc})"
            cached = self._numpy[name] = (network, model)
        network = cached[0]
        if isinstance(network, NumpyNetwork):
            return network
        if path == "numpy":
            raise ValueError(
                f"Expected a network skae can run with NumPy for "
                f"inference_path('numpy'). Received: {name} with {network}"
            )
        return None

    def _run_keras(self, name, model, X, offset, scale, unscale):
        fn, _ = self._function(name, model)
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
            result = fn(batch).reshape(rows, -1)
            if unscale is not None:
                result = result * unscale[1] + unscale[0]
            out[start : start + rows] = result
        return out

    def _function(self, name, model):
        cached = self._compiled.get(name)
        if cached is None or cached[3] is not model:
            runner, dtype = float64_copy(model), "float64"
            if runner is None:
                # No float64 twin: a custom layer, or JAX without jax_enable_x64
                # (float64 variables are float32 there).
                runner, dtype = model, "float32"
            fn = _keras_forward(runner, model.input_shape[1:], dtype)
            cached = self._compiled[name] = (fn, dtype, runner, model)
        return cached[0], cached[1]


def _keras_forward(runner, in_shape, dtype):
    """NumPy rows in, NumPy rows out, through ``runner`` on the backend."""
    if _backend.name() == "tensorflow":
        import tensorflow as tf

        signature = [tf.TensorSpec([None, *in_shape], dtype)]

        def forward(x):
            return runner(x, training=False)

        fn = _compat.function(forward, input_signature=signature, autograph=False)
        return lambda batch: fn(tf.constant(batch, dtype=dtype)).numpy()
    ops = keras.ops
    if _backend.name() == "torch":
        import torch

        def run(batch):
            with torch.no_grad():
                out = runner(ops.convert_to_tensor(batch, dtype), training=False)
            return ops.convert_to_numpy(out)

        return run
    return lambda batch: ops.convert_to_numpy(
        runner(ops.convert_to_tensor(batch, dtype), training=False)
    )


def score_samples(inference, encoder, decoder, X, offset, scale):
    """Negative mean squared reconstruction error of each row of X, in float64."""

    def encode(batch):
        return inference.run("encoder_", encoder, batch, offset, scale)

    def decode(codes):
        return inference.run("decoder_", decoder, codes, unscale=(offset, scale))

    return _forward.score(encode, decode, row_batches(X), X.shape[0])


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

    if _backend.name() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            # Float64 variables would be float32 (with a warning per layer).
            return None
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


# -- the NumPy path -----------------------------------------------------------


class Unmappable(Exception):
    """A network the NumPy path cannot run; the message says which layer."""


class NumpyNetwork:
    """A Keras network as a list of NumPy steps on a copy of its weights.

    Values live in numbered slots: slot 0 is the input, each step writes one
    slot from others and from weights, and a slot is dropped after its last
    use. Weights are read from the Keras variables once per dtype, on first
    use; :meth:`reloaded` gives the same steps with the weights read anew.
    """

    def __init__(self, steps, variables, output, in_shape, out_width):
        self.steps = steps  # (op, input slots, weight indices, slots to drop)
        self.variables = variables
        self.output = output
        self.in_shape = in_shape
        self.out_width = out_width
        self._weights = {}

    def reloaded(self):
        """The same network, its weights to be read again on next use."""
        return NumpyNetwork(
            self.steps, self.variables, self.output, self.in_shape, self.out_width
        )

    def weights(self, dtype):
        """The weights as read-only arrays of ``dtype``, copied on first use."""
        weights = self._weights.get(dtype)
        if weights is None:
            weights = []
            for variable in self.variables:
                array = np.array(variable.numpy(), dtype=dtype)
                array.flags.writeable = False
                weights.append(array)
            weights = self._weights[dtype] = tuple(weights)
        return weights

    def forward(self, x, weights):
        """The network's output for the rows ``x`` (network input shape)."""
        return _forward.forward(self.steps, self.output, x, weights)

    def frozen(self):
        """A :class:`skae._forward.Network`: these steps on a copy of the
        weights as they are now, without Keras (for Dask workers)."""
        arrays = [np.asarray(variable.numpy()) for variable in self.variables]
        return _forward.Network(
            self.steps, arrays, self.output, self.in_shape, self.out_width
        )


def numpy_network(model):
    """``model`` as a :class:`NumpyNetwork`; raises :class:`Unmappable`.

    Only layers of exactly the classes handled here qualify (a subclass may
    change ``call``), called with their input alone (no ``training=`` or
    other argument fixed in the graph).
    """
    builder = _Builder()
    output = builder.graph(model, 0)
    return builder.network(output, math.prod(model.output_shape[1:]))


class _Builder:
    def __init__(self):
        self.steps = []  # (op, input slots, weight indices, output is fresh)
        self.variables = []
        self.shapes = [None]  # slot -> shape without the batch axis

    def graph(self, model, slot):
        """Add the steps of ``model`` applied to ``slot``; return its output slot."""
        if isinstance(model, keras.Sequential):
            model = getattr(model, "_functional", None)
        nodes_by_depth = getattr(model, "_nodes_by_depth", None)
        if nodes_by_depth is None:
            raise Unmappable(f"{_describe(model)}: not a functional model")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise Unmappable(f"{_describe(model)}: several inputs or outputs")
        if self.shapes[slot] is None:
            self.shapes[slot] = tuple(model.inputs[0].shape[1:])
        slots = {id(model.inputs[0]): slot}
        # The order of Keras' own Function._run_through_graph.
        for depth in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in slots for t in node.input_tensors):
                    continue
                args, kwargs = node.arguments.args, node.arguments.kwargs
                # Keras records training=None and mask=None (a nested model's)
                # as given; training=True would make dropout and noise act.
                if (
                    any(v is not None and v is not False for v in kwargs.values())
                    or len(args) != 1
                    or len(node.outputs) != 1
                ):
                    raise Unmappable(
                        f"{_describe(node.operation)}: called with arguments "
                        "other than its input"
                    )
                (arg,) = args
                if isinstance(arg, (list, tuple)):
                    inputs = [slots[id(t)] for t in arg]
                else:
                    inputs = slots[id(arg)]
                slots[id(node.outputs[0])] = self.layer(node.operation, inputs)
        return slots[id(model.outputs[0])]

    def layer(self, layer, inputs):
        """Add the steps of one layer called on ``inputs``; return its slot."""
        kind = type(layer)
        if isinstance(inputs, list):
            if kind not in _MERGES:
                raise Unmappable(f"{_describe(layer)}: not supported")
            shapes = {self.shapes[i] for i in inputs}
            if len(shapes) != 1 and kind is not keras.layers.Concatenate:
                raise Unmappable(f"{_describe(layer)}: inputs of several shapes")
            if kind is keras.layers.Concatenate:
                return self._concatenate(layer, inputs)
            (shape,) = shapes
            return self.add(_MERGES[kind], inputs, (), shape, fresh=len(inputs) > 1)
        shape = self.shapes[inputs]
        if isinstance(layer, keras.Model):
            return self.graph(layer, inputs)
        if kind in _IDENTITY:
            return inputs
        if kind is keras.layers.Dense:
            return self._dense(layer, inputs, shape)
        if kind is keras.layers.Activation:
            act = _activation(layer, layer.activation)
            return self.add(
                partial(_forward.activation, act),
                [inputs],
                (),
                shape,
                fresh=True,
                in_place=partial(_forward.activation_in_place, act),
            )
        if kind is keras.layers.LayerNormalization:
            return self._layer_norm(layer, inputs, shape)
        if kind is keras.layers.Flatten:
            return self._flatten(layer, inputs, shape)
        if kind is keras.layers.Reshape:
            target = tuple(layer.target_shape)
            if -1 in target:
                known = math.prod(d for d in target if d != -1)
                target = tuple(
                    math.prod(shape) // known if d == -1 else d for d in target
                )
            return self.add(
                partial(_forward.reshape_rows, target),
                [inputs],
                (),
                target,
                fresh=False,
            )
        raise Unmappable(f"{_describe(layer)}: not supported")

    def add(self, op, inputs, variables, shape, *, fresh, in_place=None):
        """Add a step; return the slot it writes.

        ``fresh``: the step's result is a new array, aliasing none of its
        inputs. ``in_place``: the same step, allowed to overwrite its one
        input; used when that input is fresh and read by this step alone.
        """
        params = []
        for variable in variables:
            params.append(len(self.variables))
            self.variables.append(variable)
        self.steps.append((op, tuple(inputs), tuple(params), fresh, in_place))
        self.shapes.append(tuple(shape))
        return len(self.shapes) - 1

    def network(self, output, out_width):
        """The finished :class:`NumpyNetwork` with output slot ``output``."""
        last_use, readers = {}, {}
        for k, (_, inputs, _, _, _) in enumerate(self.steps):
            for i in inputs:
                last_use[i] = k
                readers[i] = readers.get(i, 0) + 1
        # Slot 0 holds the caller's rows: never fresh.
        fresh = [False] + [step[3] for step in self.steps]
        steps = []
        for k, (op, inputs, params, _, in_place) in enumerate(self.steps):
            if in_place is not None and fresh[inputs[0]] and readers[inputs[0]] == 1:
                op = in_place
            drop = tuple(
                i for i in set(inputs) if last_use[i] == k and i not in (0, output)
            )
            steps.append((op, inputs, params, drop))
        return NumpyNetwork(
            tuple(steps), tuple(self.variables), output, self.shapes[0], out_width
        )

    def _dense(self, layer, slot, shape):
        if getattr(layer, "quantization_mode", None) or getattr(
            layer, "lora_enabled", False
        ):
            raise Unmappable(f"{_describe(layer)}: quantized or with LoRA")
        act = _activation(layer, layer.activation)
        variables = [layer.kernel] + ([] if layer.bias is None else [layer.bias])
        out_shape = (*shape[:-1], int(layer.kernel.shape[-1]))
        op = partial(_forward.dense, act)
        return self.add(op, [slot], variables, out_shape, fresh=True)

    def _layer_norm(self, layer, slot, shape):
        rank = len(shape) + 1
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if [a % rank for a in axes] != [rank - 1] or layer.rms_scaling:
            raise Unmappable(
                f"{_describe(layer)}: normalises other axes than the last one "
                "or uses rms_scaling"
            )
        variables = [v for v in (layer.gamma, layer.beta) if v is not None]
        op = partial(
            _forward.layer_norm,
            float(layer.epsilon),
            layer.gamma is not None,
            layer.beta is not None,
        )
        return self.add(op, [slot], variables, shape, fresh=True)

    def _flatten(self, layer, slot, shape):
        width = math.prod(shape)
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            if len(shape) > 1:
                axes = (0, *range(2, len(shape) + 1), 1)
                return self.add(
                    partial(_forward.flatten_channels_first, axes, width),
                    [slot],
                    (),
                    (width,),
                    fresh=True,
                )
        op = partial(_forward.reshape_rows, (width,))
        return self.add(op, [slot], (), (width,), fresh=False)

    def _concatenate(self, layer, inputs):
        shapes = [self.shapes[i] for i in inputs]
        rank = len(shapes[0]) + 1
        axis = layer.axis % rank
        if axis == 0 or any(len(s) + 1 != rank for s in shapes):
            raise Unmappable(f"{_describe(layer)}: not supported on these shapes")
        shape = list(shapes[0])
        shape[axis - 1] = sum(s[axis - 1] for s in shapes)
        op = partial(_forward.concatenate, axis)
        return self.add(op, inputs, (), shape, fresh=True)


def _describe(layer):
    return f"layer {getattr(layer, 'name', '?')!r} ({type(layer).__name__})"


def _activation(layer, activation):
    """The NumPy twin of a Keras activation function, as ``f(x, out)``."""
    for keras_fn, numpy_fn in _ACTIVATIONS:
        if activation is keras_fn:
            return numpy_fn
    raise Unmappable(
        f"{_describe(layer)}: activation "
        f"{getattr(activation, '__name__', activation)!r} not supported"
    )


# (Keras function, NumPy twin), for those this Keras version has.
_ACTIVATIONS = tuple(
    (getattr(keras.activations, name), fn)
    for name, fn in _forward.ACTIVATIONS.items()
    if hasattr(keras.activations, name)
)
_IDENTITY = {
    getattr(keras.layers, name)
    for name in (
        "InputLayer",
        "Identity",
        "ActivityRegularization",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
    )
    if hasattr(keras.layers, name)
}


_MERGES = {
    keras.layers.Add: _forward.add,
    keras.layers.Subtract: np.subtract,
    keras.layers.Multiply: _forward.multiply,
    keras.layers.Average: _forward.average,
    keras.layers.Maximum: _forward.maximum,
    keras.layers.Minimum: _forward.minimum,
    keras.layers.Concatenate: None,  # _Builder._concatenate
}
