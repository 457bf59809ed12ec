"""Every workaround for TensorFlow's and Keras' behaviour, in one place.

Each one says what it works around; when the framework fixes it, the fix is to
delete it here.
"""

import contextlib
import contextvars
import logging
import random

import keras
from keras.src.random import seed_generator

from . import _backend

if _backend.name() == "tensorflow":
    import tensorflow as tf

# Names of skae's own traced functions (their ``__qualname__``), whose
# retracing TensorFlow should not warn about: see ``_OwnRetracingFilter``.
_OWN_FUNCTIONS = set()


class _OwnRetracingFilter(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" warning for skae's own.

    Every fit traces new functions for its new variables, by design; TensorFlow
    counts the traces of all fits together (per code object) and, from the
    fifth estimator on, warns about retracing with advice that does not apply.
    Warnings about any other function pass.
    """

    def filter(self, record):
        message = record.getMessage()
        return not (
            "tf.function retracing" in message
            and any(f"<function {name} at" in message for name in _OWN_FUNCTIONS)
        )


if _backend.name() == "tensorflow":
    tf.get_logger().addFilter(_OwnRetracingFilter())


def function(fn, **kwargs):
    """``tf.function(fn, **kwargs)``, without TensorFlow's retracing warnings.

    TensorFlow only: the other backends' steps are compiled in ``_steps``.
    """
    _OWN_FUNCTIONS.add(fn.__qualname__)
    return tf.function(fn, **kwargs)


class _KerasSeedSource:
    """What Keras' ``make_default_seed`` draws from, in place of ``random``.

    Keras gives every unseeded initializer, dropout layer and ``SeedGenerator``
    a seed drawn with ``random.randint`` when it is created (module
    ``keras.src.random.seed_generator``, which imports ``random`` as
    ``python_random``). Inside :func:`seeded_python_random` those draws come
    from that block's own ``random.Random``; everywhere else they go where
    they went before (Python's ``random``). Seeding the global generator
    instead, and restoring it, raced: two threads building at once left it as
    after one's ``random.seed``, and a thread drawing from ``random`` meanwhile
    saw its sequence change.
    """

    def __init__(self, fallback):
        self._fallback = fallback

    def randint(self, a, b):
        generator = _keras_seeds.get()
        if generator is None:
            return self._fallback.randint(a, b)
        return generator.randint(a, b)

    def __getattr__(self, name):
        return getattr(self._fallback, name)


# Per thread and per asyncio task: a context variable's value is never shared.
_keras_seeds = contextvars.ContextVar("skae_keras_seeds", default=None)


def _install_seed_source():
    source = seed_generator.python_random
    if not isinstance(source, _KerasSeedSource):
        seed_generator.python_random = _KerasSeedSource(source)


_install_seed_source()


@contextlib.contextmanager
def seeded_python_random(seed):
    """Draw Keras' default seeds from ``random.Random(seed)`` inside the block.

    Keras draws the seed of every unseeded initializer (and dropout layer)
    from Python's ``random`` when the layer is created: drawing them from a
    generator seeded with ``seed`` makes user networks reproducible, with the
    seeds ``random.seed(seed)`` would give. Only the current thread (or
    asyncio task) draws from it: Python's ``random`` is never seeded nor
    read, so the caller's sequence and other threads' are untouched, and
    builds in several threads at once each draw their own seeds. Code in the
    block that calls ``random`` itself draws from the global generator.
    """
    # Again in case something replaced it since import (it wraps what it finds).
    _install_seed_source()
    token = _keras_seeds.set(random.Random(seed))
    try:
        yield
    finally:
        _keras_seeds.reset(token)


def new_optimizer(name, learning_rate):
    """A Keras optimizer by name; ValueError for a name Keras cannot train with."""
    optimizer = keras.optimizers.get(
        {
            "class_name": name,
            # A fixed name: Keras would number it (adam_1, adam_2, ...), and
            # TensorFlow caches a kernel per distinct variable name for good,
            # so every fit leaked ~35 KB per optimizer variable.
            "config": {
                # Keras takes a Python float only (not 1 or a NumPy float).
                "learning_rate": float(learning_rate),
                "name": "optimizer",
            },
        }
    )
    # The base class has no update rule (it failed only inside the compiled
    # epoch), and wrappers need an inner optimizer (KeyError).
    if type(optimizer) is keras.optimizers.Optimizer:
        raise ValueError("an abstract optimizer")
    return optimizer


def sum_gradients_locally(optimizer):
    """Skip Keras' cross-replica gradient sum when there is one replica.

    Keras' TF optimizer sums gradients across replicas through a
    ``tf.custom_gradient``, which in a traced function registers a gradient in
    TensorFlow's global registry that is never removed and pins the whole epoch
    graph: every fit leaked ~4 MB (tensorflow #27492, #97697). With one replica
    the sum is the identity, so skipping it changes no result.
    """
    if _backend.name() == "tensorflow" and not tf.distribute.has_strategy():
        optimizer._all_reduce_sum_gradients = list


@contextlib.contextmanager
def frozen(model):
    """Make ``model`` untrainable inside the block, each layer's flag kept.

    Setting ``trainable`` back to True would unfreeze every nested layer,
    those a user froze in their encoder too, so each layer's own flag is
    restored (through Keras' private ``_flatten_layers``).
    """
    flags = [(layer, layer.trainable) for layer in model._flatten_layers()]
    model.trainable = False
    try:
        yield
    finally:
        for layer, trainable in flags:
            layer.trainable = trainable


def run_model(model, x):
    """``model(x)`` at inference, as a NumPy array (no autograd graph on torch)."""
    if _backend.name() == "torch":
        import torch

        with torch.no_grad():
            return keras.ops.convert_to_numpy(model(x, training=False))
    return keras.ops.convert_to_numpy(model(x, training=False))
