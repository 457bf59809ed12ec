"""Workarounds for TensorFlow's and Keras' behaviour (``skae._compat``).

Keras' default seeds drawn from a private generator around builds, never
from (or into) Python's global ``random``,
optimizers by name, freezing a model without unfreezing what its user froze,
and TensorFlow's retracing warning silenced for skae's own functions only.
"""

import logging
import random
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from skae import _compat

# -- seeded_python_random ----------------------------------------------------------


def _dense_weights(seed=None, units=4):
    """An unseeded Dense layer's kernel, built inside seeded_python_random(seed)."""

    def build():
        layer = keras.layers.Dense(units)
        layer.build((None, 5))
        return layer.get_weights()[0]

    if seed is None:
        return build()
    with _compat.seeded_python_random(seed):
        return build()


def test_seeded_python_random_makes_unseeded_keras_layers_reproducible():
    np.testing.assert_array_equal(_dense_weights(3), _dense_weights(3))
    assert not np.array_equal(_dense_weights(3), _dense_weights(4))
    # The seeds random.seed(3) would give Keras: networks built before the
    # block drew from a private generator build the same weights now.
    state = random.getstate()
    try:
        random.seed(3)
        expected = _dense_weights()
    finally:
        random.setstate(state)
    np.testing.assert_array_equal(_dense_weights(3), expected)


def test_seeded_python_random_never_seeds_nor_reads_global_random():
    random.seed(123)
    expected = [random.random() for _ in range(3)]
    random.seed(123)
    with _compat.seeded_python_random(7):
        _dense_weights()
        # Code in the block that draws from random itself continues the
        # caller's sequence, as if the block were not there.
        inside = random.random()
    assert [inside, random.random(), random.random()] == expected
    # Outside the block Keras draws from random as it always did.
    random.seed(5)
    outside = _dense_weights()
    random.seed(5)
    np.testing.assert_array_equal(_dense_weights(), outside)


def test_seeded_python_random_ends_after_an_error():
    with pytest.raises(RuntimeError), _compat.seeded_python_random(1):
        raise RuntimeError
    random.seed(1)
    first = _dense_weights()
    random.seed(1)
    np.testing.assert_array_equal(_dense_weights(), first)
    assert _compat._keras_seeds.get() is None


def test_a_thread_drawing_from_random_during_a_seeded_block_keeps_its_sequence():
    # The block used to seed the global generator: another thread drawing
    # from random meanwhile drew the block's seeded sequence instead of its own.
    random.seed(11)
    expected = [random.random() for _ in range(5)]
    random.seed(11)
    drawn = []
    with _compat.seeded_python_random(0):
        thread = threading.Thread(
            target=lambda: drawn.extend(random.random() for _ in range(5))
        )
        thread.start()
        thread.join()
    assert drawn == expected


def test_threads_building_at_once_each_draw_their_own_seeds():
    # Each thread enters its block before either builds: with one global
    # generator, the first thread's layer drew the second one's seeds, and
    # random was left as the second thread's block found it.
    expected = {seed: _dense_weights(seed) for seed in (3, 4)}
    random.seed(99)
    state = random.getstate()
    entered, built, results = threading.Barrier(2), threading.Barrier(2), {}

    def build(seed):
        with _compat.seeded_python_random(seed):
            entered.wait()
            if seed == 4:
                built.wait()  # thread 3 builds first
            results[seed] = _dense_weights()
            if seed == 3:
                built.wait()

    threads = [threading.Thread(target=build, args=(s,)) for s in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in (3, 4):
        np.testing.assert_array_equal(results[seed], expected[seed])
    assert random.getstate() == state


def test_the_seed_source_wraps_whatever_replaced_it():
    # Installed at import, and again by every block if something replaced it
    # since: it then draws from what it found there outside a block.
    from keras.src.random import seed_generator

    installed = seed_generator.python_random
    assert isinstance(installed, _compat._KerasSeedSource)
    replacement = random.Random(8)
    try:
        seed_generator.python_random = replacement
        with _compat.seeded_python_random(3):
            inside = _dense_weights()
        assert seed_generator.python_random._fallback is replacement
        np.testing.assert_array_equal(inside, _dense_weights(3))
        expected = random.Random(8).randint(1, int(1e9))
        assert seed_generator.make_default_seed() == expected
    finally:
        seed_generator.python_random = installed


# -- new_optimizer -------------------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "sgd", "RMSprop"])
def test_new_optimizer_has_a_fixed_name(name):
    # Keras would number them (adam_1, adam_2...): TensorFlow keeps a kernel
    # per distinct variable name for good.
    first = _compat.new_optimizer(name, 1e-3)
    second = _compat.new_optimizer(name, 1e-3)
    assert first.name == second.name == "optimizer"
    assert type(first).__name__.lower() == name.lower()


@pytest.mark.parametrize(
    "learning_rate", [np.float32(0.01), np.float64(0.01), np.int64(1), 1]
)
def test_new_optimizer_takes_numpy_and_int_learning_rates(learning_rate):
    optimizer = _compat.new_optimizer("sgd", learning_rate)
    rate = optimizer.get_config()["learning_rate"]
    assert type(rate) is float
    assert rate == pytest.approx(float(learning_rate))
    assert float(optimizer.learning_rate) == pytest.approx(float(learning_rate))


@pytest.mark.parametrize("name", ["Optimizer", "no-such-optimizer"])
def test_new_optimizer_refuses_what_keras_cannot_train_with(name):
    with pytest.raises(ValueError):
        _compat.new_optimizer(name, 1e-3)


# -- frozen --------------------------------------------------------------------


def _model():
    inputs = keras.Input((3,))
    user_frozen = keras.layers.Dense(4, name="user_frozen")
    user_frozen.trainable = False
    hidden = user_frozen(inputs)
    outputs = keras.layers.Dense(2, name="trained")(hidden)
    return keras.Model(inputs, outputs)


def test_frozen_keeps_each_layers_own_trainable_flag():
    model = _model()
    outer = keras.Sequential([keras.Input((3,)), model])
    with _compat.frozen(outer):
        assert not outer.trainable_weights
        assert not model.get_layer("trained").trainable
    # The layer the user froze stays frozen; the rest is trainable again.
    assert outer.trainable and model.trainable
    assert model.get_layer("trained").trainable
    assert not model.get_layer("user_frozen").trainable
    assert {w.path for w in outer.trainable_weights} == {
        "trained/kernel",
        "trained/bias",
    }


def test_frozen_restores_the_flags_after_an_error():
    model = _model()
    with pytest.raises(RuntimeError), _compat.frozen(model):
        raise RuntimeError
    assert model.get_layer("trained").trainable
    assert not model.get_layer("user_frozen").trainable


# -- quiet retracing warnings --------------------------------------------------------


def _retracing_record(name):
    message = (
        f"5 out of the last 5 calls to <function {name} at 0x7f0123456789> "
        "triggered tf.function retracing. Tracing is expensive and the excessive "
        "number of tracings could be due to (1) creating @tf.function repeatedly "
        "in a loop."
    )
    return logging.LogRecord(
        "tensorflow", logging.WARNING, __file__, 1, message, (), None
    )


def test_function_registers_its_function_so_its_retracing_warning_is_dropped():
    def skae_test_own_step(x):
        return x * 2.0

    def skae_test_foreign_step(x):
        return x * 3.0

    compiled = _compat.function(skae_test_own_step, reduce_retracing=True)
    np.testing.assert_array_equal(compiled(tf.constant([1.0, 2.0])), [2.0, 4.0])
    own = skae_test_own_step.__qualname__
    foreign = tf.function(skae_test_foreign_step).python_function.__qualname__
    quiet = _compat._OwnRetracingFilter()
    assert quiet.filter(_retracing_record(own)) is False
    assert quiet.filter(_retracing_record(foreign)) is True
    # Other messages about skae's own functions pass.
    other = _retracing_record(own)
    other.msg = f"Something else about <function {own} at 0x7f0123456789>"
    assert quiet.filter(other) is True


def test_tensorflows_logger_has_the_filter():
    assert any(
        isinstance(f, _compat._OwnRetracingFilter) for f in tf.get_logger().filters
    )
