"""Timing helpers of ``benchmarks.speed``: best and median times, alternated
contenders, the plain NumPy forward pass that ``transform`` is held to, the
fixed cost of a fit, the machine's float32 matmul peak and the dense layers'
FLOPs.
"""

import statistics
import time
import warnings

import numpy as np


def _best_time(fn, repeats):
    """Fastest of `repeats` timed calls of `fn`, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _median_latency(fn, inputs):
    """Median wall time of ``fn(x)`` over `inputs`, after a few warm-up calls."""
    for x in inputs[:3]:
        fn(x)
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _best_times(fns, repeats):
    """Fastest call of each of `fns` (name -> callable), calls alternated.

    Alternating shares a shared machine's load fluctuations between the
    contenders instead of handing them all to whichever runs during a burst.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _best_latencies(fns, inputs, rounds):
    """Per function, the lowest over `rounds` alternated rounds of the median
    one-call time over `inputs`."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], _median_latency(fn, inputs))
    return best


def numpy_forward(model):
    """A plain NumPy forward pass through `model`'s Dense layers: the reference.

    One matrix product, bias and activation per layer, float32 weights, no
    checks: what a hand-written NumPy encoder costs. Chains of Dense layers
    with ReLU or linear activations (the benchmark's network), or a PCA
    start's two branches (PCA's projection plus the correction), which
    ``fit`` keeps when a decoder on PCA's codes wins.
    """
    names = [layer.name for layer in model.layers]
    if "pca_projection" not in names:
        return _dense_chain(model.layers[1:])
    linear = _dense_chain([model.get_layer("pca_projection")])
    if "code_correction" not in names:
        return linear
    correction = _dense_chain(
        [layer for layer in model.layers if layer.name.startswith("encoder_")]
        + [model.get_layer("code_correction")]
    )
    return lambda x: linear(x) + correction(x)


def _dense_chain(chain):
    import keras

    layers = []
    for layer in chain:
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(f"Expected Dense layers only. Received: {layer!r}")
        relu = layer.activation is keras.activations.relu
        if not relu and layer.activation is not keras.activations.linear:
            raise ValueError(f"Expected ReLU or linear. Received: {layer!r}")
        kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        layers.append((kernel, bias, relu))

    def forward(x):
        for kernel, bias, relu in layers:
            x = x @ kernel
            x += bias
            if relu:
                np.maximum(x, 0, out=x)
        return x

    return forward


# The fixed cost is timed on a fit whose epochs cost next to nothing: 64
# rows, one epoch (as benchmarks.backends does).
FIXED_COST_ROWS = 64


def fixed_cost(X, n_components, repeats):
    """Wall time of a whole ``fit`` of 64 rows for one epoch: its fixed cost.

    With the defaults but ``n_components`` and ``epochs=1``: building the
    networks, tracing (or reusing) the compiled epochs, scaling, PCA's basis,
    the decoder on PCA's codes and the comparison that ends ``fit``. The
    first fit of this configuration in the process, then the fastest of
    ``repeats`` repeated ones (another seed each, as a grid's or a
    cross-validation's fits differ), which reuse what the first compiled.
    The epochs of 64 rows (two steps, and the decoder's) are in the figure.
    """
    from sklearn.exceptions import ConvergenceWarning

    from skae import AutoencoderTransformer

    rows = X[:FIXED_COST_ROWS]

    def fit(seed):
        est = AutoencoderTransformer(
            n_components=n_components, epochs=1, random_state=seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(rows)
            return time.perf_counter() - start

    first = fit(0)
    repeated = [fit(seed) for seed in range(1, repeats + 1)]
    return {
        "n_rows": len(rows),
        "first_seconds": first,
        "repeated_seconds": min(repeated),
        "repeated_runs": repeated,
    }


def matmul_peak(size=2048, repeats=5):
    """float32 GFLOP/s of a ``size`` x ``size`` matmul in NumPy and TensorFlow."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    flops = 2 * size**3
    numpy_seconds = _best_time(lambda: a @ b, repeats)
    ta, tb = tf.constant(a), tf.constant(b)
    tf_seconds = _best_time(lambda: tf.linalg.matmul(ta, tb).numpy(), repeats)
    return {
        "size": size,
        "numpy_gflops": flops / numpy_seconds / 1e9,
        "tensorflow_gflops": flops / tf_seconds / 1e9,
    }


def dense_flops_per_sample(models):
    """Training FLOPs per sample per epoch: 6 x sum(fan_in x fan_out).

    Each Dense layer costs ``2 * fan_in * fan_out`` FLOPs forward and about
    twice that backward (gradients of weights and of inputs). Biases,
    activations, the loss and the optimizer update are left out.
    """
    import keras

    macs = 0
    for model in models:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                fan_in, fan_out = layer.kernel.shape
                macs += int(fan_in) * int(fan_out)
    return 6 * macs
