"""Data-parallel fits over one machine's devices (skae/_distribute.py).

Each test runs in a subprocess on its own backend, whatever this process runs
on: the devices must be configured before the backend starts (two logical CPU
devices: ``XLA_FLAGS`` for JAX, ``set_logical_device_configuration`` for
TensorFlow). On a machine with GPUs the distribution takes them instead (JAX's
``list_devices()``; TensorFlow's strategy names the logical GPUs).
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code, backend, env=None):
    environ = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    environ.pop("XLA_FLAGS", None)
    environ.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr[-4000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _needs(module):
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"{module} not installed"
    )


# A fit on one device and the same fit under the distribution (``SCOPE``),
# compared on held-out rows; a callback sees the variables the epochs train.
COMPARE = """
    import json, pickle, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    {setup}
    import keras
    import skae
    from sklearn.datasets import load_digits

    X = load_digits().data.astype("float32")
    Xtr, Xte = X[:600], X[1500:]
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.trainable_variables[0].value)

    def mse(ae):
        return float(np.mean((ae.inverse_transform(ae.transform(Xte)) - Xte) ** 2))

    out = {{}}
    for name, params in {{
        "plain": dict(noise=0.1, epochs=5, init="random"),
        # The recipe's 512 edges a step: 8 epochs are about 60 steps (3 were
        # 21, whose two fits differed by 3.4%, the seeds' spread).
        "structured": dict(structure_weight=1.0, noise=0.1, epochs=8),
    }}.items():
        if name not in {fits}:
            continue
        params.update(n_components=4, random_state=0)
        one = skae.AutoencoderTransformer(**params).fit(Xtr)
        with {scope}:
            parallel = skae.AutoencoderTransformer(callbacks=[Spy()], **params)
            parallel.fit(Xtr)
        copy = pickle.loads(pickle.dumps(parallel))
        out[name] = dict(
            one=mse(one), parallel=mse(parallel), copy=mse(copy),
            errors=[one.validation_errors_, parallel.validation_errors_],
            same_codes=bool(np.array_equal(copy.transform(Xte),
                                           parallel.transform(Xte))),
        )
    {evidence}
    print(json.dumps(out))
"""


def _assert_same_quality(fits, tolerance):
    # The pickled copy transforms as the fitted estimator does.
    assert fits["same_codes"] and fits["copy"] == fits["parallel"], fits
    # Held-out error of the kept networks, one device against several, and
    # (plain fits) the trained networks' validation error, whichever was kept.
    assert abs(fits["parallel"] - fits["one"]) <= tolerance * fits["one"], fits
    one, parallel = fits["errors"]
    if one is not None:
        gap = abs(parallel["autoencoder"] - one["autoencoder"])
        assert gap <= tolerance * one["autoencoder"], fits


JAX_SETUP = """
    import keras
    # The accelerators when there are several, else the two CPU devices.
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        devices = keras.distribution.list_devices("cpu")
"""


# The structure term's step gathers every device's codes (its negatives):
# slow, and on two cores XLA's CPU collectives can stall under load.
FITS = ["plain", pytest.param("structured", marks=pytest.mark.slow)]


@_needs("jaxlib")
@pytest.mark.parametrize("fit", FITS)
def test_jax_data_parallel_fit_is_the_one_device_fit(fit):
    # Under DataParallel XLA partitions the same jitted step over the devices:
    # the same computation, to float32 summation order (measured: 1e-7).
    out = _run(
        COMPARE.format(
            setup=JAX_SETUP,
            fits=[fit],
            scope="keras.distribution.DataParallel(devices=devices).scope()",
            evidence="""
    out["devices"] = len(devices)
    out["replicated"] = [
        (len(v.sharding.device_set), v.sharding.is_fully_replicated) for v in seen
    ]""",
        ),
        "jax",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    assert out["devices"] >= 2
    # Every epoch's trained variables live on every device, replicated.
    assert out["replicated"]
    assert all(r == [out["devices"], True] for r in out["replicated"])
    _assert_same_quality(out[fit], 1e-4)


@_needs("jaxlib")
def test_jax_step_shards_the_batch_and_sums_gradients_across_devices():
    out = _run(
        """
        import json
        import jax, keras, numpy as np
        from skae import _steps

        seen = []
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            devices = keras.distribution.list_devices("cpu")
        with keras.distribution.DataParallel(devices=devices).scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
            optimizer = keras.optimizers.SGD(0.1)
            optimizer.build(model.trainable_variables)

            def loss(X, order):
                xb = keras.ops.take(X, order, axis=0)
                jax.debug.inspect_array_sharding(xb, callback=seen.append)
                return keras.ops.mean(keras.ops.square(model(xb)))

            step = _steps.Step(model, optimizer, loss, rows=(1,))
        X = keras.ops.convert_to_tensor(np.random.rand(10, 4).astype("float32"))
        order = np.arange(7, dtype=np.int32)  # uneven over two devices
        step.begin()
        state = step._state
        hlo = step._jitted.lower(state, (X, order)).compile().as_text()
        value = float(step(X, order))
        step.end()
        kernel = model.weights[0].value.sharding
        print(json.dumps(dict(
            batch=[s.spec == jax.sharding.PartitionSpec("batch") for s in seen],
            devices=[len(s.device_set) for s in seen],
            replicated=kernel.is_fully_replicated,
            kernel_devices=len(kernel.device_set),
            all_reduce="all-reduce" in hlo,
            finite=bool(np.isfinite(value)),
        )))
        """,
        "jax",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    assert out["batch"] and all(out["batch"])
    assert set(out["devices"]) == {out["kernel_devices"]}
    assert out["replicated"] and out["kernel_devices"] >= 2
    assert out["all_reduce"] and out["finite"]


@_needs("jaxlib")
def test_jax_refuses_a_distribution_it_cannot_train_with():
    out = _run(
        """
        import json
        import keras, numpy as np
        import skae

        mesh = keras.distribution.DeviceMesh((2,), ["model"])
        layout = keras.distribution.LayoutMap(mesh)
        distribution = keras.distribution.ModelParallel(layout_map=layout)
        try:
            with distribution.scope():
                skae.AutoencoderTransformer(epochs=1).fit(np.random.rand(40, 5))
        except ValueError as error:
            print(json.dumps(str(error)))
        """,
        "jax",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    assert "Expected the Keras distribution to be a keras.distribution" in out
    assert "Received: distribution=<ModelParallel" in out


TF_SETUP = """
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    kind = "GPU" if gpus else "CPU"
    physical = (gpus or tf.config.list_physical_devices("CPU"))[0]
    if len(gpus) < 2:
        config = (
            tf.config.LogicalDeviceConfiguration(memory_limit=2048)
            if gpus
            else tf.config.LogicalDeviceConfiguration()
        )
        tf.config.set_logical_device_configuration(physical, [config] * 2)
    devices = [d.name for d in tf.config.list_logical_devices(kind)]
    strategy = tf.distribute.MirroredStrategy(devices)
"""


@_needs("tensorflow")
@pytest.mark.parametrize("fit", FITS)
def test_tensorflow_mirrored_fit_matches_the_one_device_fit(fit):
    # Each replica draws the batch's noise as one device does and keeps its
    # share; Keras' optimizer sums the gradients. A plain fit is the same to
    # summation order (measured: 0.05% after 10 epochs). The structure term
    # contrasts each replica's edges with its own share of the batch only,
    # which moves the fit within what the seed does (held-out error on these
    # rows, one device, random_state 0, 1, 2: 9.46, 9.42, 9.18, a 3% range).
    out = _run(
        COMPARE.format(
            setup=TF_SETUP,
            fits=[fit],
            scope="strategy.scope()",
            evidence="""
    out["replicas"] = strategy.num_replicas_in_sync
    out["mirrored"] = [
        [type(v).__name__, len({c.device for c in v.values})] for v in seen
    ]
    try:
        with strategy.scope():
            skae.AutoencoderTransformer(epochs=1, batch_size=1).fit(Xtr[:20])
    except ValueError as error:
        out["too_small"] = str(error)""",
        ),
        "tensorflow",
    )
    assert out["replicas"] >= 2
    assert out["mirrored"]
    assert all(m == ["MirroredVariable", out["replicas"]] for m in out["mirrored"])
    _assert_same_quality(out[fit], 5e-3 if fit == "plain" else 0.03)
    assert "Expected a batch of at least one row per replica" in out["too_small"]
    assert "Received: batch_size=1 for the 2 replicas" in out["too_small"]


@_needs("torch")
def test_torch_refuses_data_parallel_naming_the_backend():
    # Keras 3 has no distribution backend for PyTorch: skae says so rather
    # than train on one device under a DataParallel the user asked for.
    out = _run(
        """
        import json
        import keras, numpy as np
        import skae
        from keras.src.backend import distribution_lib

        distribution = keras.distribution.DataParallel(devices=["cpu:0"])
        try:
            with distribution.scope():
                skae.AutoencoderTransformer(epochs=1).fit(np.random.rand(40, 5))
        except ValueError as error:
            print(json.dumps([str(error), distribution_lib is None]))
        """,
        "torch",
    )
    message, no_backend = out
    assert no_backend
    assert message.startswith("Expected no Keras distribution on the PyTorch")
    assert "Received: distribution=<DataParallel" in message
    assert "KERAS_BACKEND='torch'" in message
