"""Workarounds for TensorFlow's and Keras' behaviour (``skae._compat``).

Python's ``random`` seeded around Keras builds and restored after them,
optimizers by name, freezing a model without unfreezing what its user froze,
and TensorFlow's retracing warning silenced for skae's own functions only.
"""

import logging
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from skae import _compat

# -- seeded_python_random ----------------------------------------------------------


def test_seeded_python_random_seeds_inside_and_restores_outside():
    random.seed(123)
    state = random.getstate()
    with _compat.seeded_python_random(7):
        inside = [random.random() for _ in range(3)]
    assert random.getstate() == state
    random.seed(7)
    assert [random.random() for _ in range(3)] == inside
    # The same seed, the same draws; the caller's stream goes on untouched.
    random.setstate(state)
    expected = random.random()
    random.setstate(state)
    with _compat.seeded_python_random(7):
        again = [random.random() for _ in range(3)]
    assert again == inside
    assert random.random() == expected


def test_seeded_python_random_restores_after_an_error():
    state = random.getstate()
    with pytest.raises(RuntimeError), _compat.seeded_python_random(1):
        random.random()
        raise RuntimeError
    assert random.getstate() == state


def test_seeded_python_random_makes_unseeded_keras_layers_reproducible():
    def weights():
        with _compat.seeded_python_random(3):
            layer = keras.layers.Dense(4)
            layer.build((None, 5))
        return layer.get_weights()[0]

    np.testing.assert_array_equal(weights(), weights())


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
