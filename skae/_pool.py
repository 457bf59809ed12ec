"""Trainers kept between fits, so that a repeated fit traces no graph.

Tracing a :class:`~skae._training.Trainer`'s epoch costs most of a small
fit's fixed cost (about 0.7 s per traced function for the default dense
network on this project's 2-core machine, two per fit), and a
``GridSearchCV``, a cross-validation or a second ``fit`` of the same
configuration paid it every time. A trainer's
graphs capture its own variables, so they can serve another fit only
through those variables: :func:`trainer_for` lends an idle trainer built
for an identical graph, copies the fit's initial weights into its networks,
restores its optimizer to the state it had when built, and copies the
trained weights back into the fit's own networks when training ends. Those
networks are never trained in place and never shared: a fitted estimator's
``encoder_`` and ``decoder_`` stay its own, and the next fit writes only
into the pooled copies. ``partial_fit`` takes an idle trainer out of the
pool for good (:func:`adopt`): the estimator keeps it, and its optimizer's
moments, across calls. The arithmetic is the same graph on the same values,
so a fit's results do not depend on whether its trainer was pooled.

Only networks made of Keras' own layers are pooled (their config describes
the graph they build), on TensorFlow and outside any distribution strategy;
every other fit builds its trainer as before.
"""

import contextlib
import json
import threading
from collections import OrderedDict

import keras

from . import _backend
from ._compat import seeded_python_random
from ._training import Trainer

if _backend.name() == "tensorflow":
    import tensorflow as tf

# Idle trainers kept per graph, and graphs kept (least recently used out):
# a grid over a few parameters, fitted by a couple of threads at once.
_PER_KEY = 2
_KEYS = 16

_lock = threading.Lock()
_idle = OrderedDict()


def graph_key(encoder, decoder, options, batch_size):
    """What the compiled graphs of a trainer depend on, or None: not pooled.

    The networks' configs (each layer's class, sizes, activations, dtype
    policy, trainable flags and connections; initializer seeds dropped, as
    the weights are copied in), the trainer's options but the learning rate
    (a variable, assigned per fit), and the batch size.
    """
    if _backend.name() != "tensorflow" or tf.distribute.has_strategy():
        return None
    configs = []
    for model in (encoder, decoder):
        layers = list(model._flatten_layers())
        if not all(map(_described_by_config, layers)):
            return None
        configs.append(_without_seeds(model.get_config()))
        configs.append([layer.trainable for layer in layers])
    fields = dict(vars(options), learning_rate=None)
    return json.dumps(
        [configs, fields, int(batch_size), keras.config.floatx()],
        sort_keys=True,
        default=repr,
    )


# Keras layers whose config says all they compute: not a Lambda (its config
# names a function) nor any subclass, whose code may hold anything.
_LAYERS = (
    "InputLayer",
    "Dense",
    "Add",
    "Flatten",
    "Reshape",
    "ActivityRegularization",
    "LayerNormalization",
    "BatchNormalization",
    "Activation",
    "Dropout",
    "GaussianNoise",
    "Conv2D",
    "MaxPooling2D",
    "UpSampling2D",
    "Cropping2D",
)


def _described_by_config(layer):
    from keras.src.models.functional import Functional

    allowed = [getattr(keras.layers, name) for name in _LAYERS]
    if type(layer) not in (Functional, keras.Sequential, *allowed):
        return False
    # Keras' own activations only: a user's is known by its name alone.
    activation = getattr(layer, "activation", None)
    return activation is None or activation.__module__.startswith("keras.")


def _without_seeds(config):
    if isinstance(config, dict):
        return {k: _without_seeds(v) for k, v in config.items() if k != "seed"}
    if isinstance(config, (list, tuple)):
        return [_without_seeds(v) for v in config]
    return config


@contextlib.contextmanager
def trainer_for(encoder, decoder, options, *, batch_size, seed):
    """A :class:`~skae._training.Trainer` that trains ``encoder`` and ``decoder``.

    A pooled one when :func:`graph_key` allows: it starts from the networks'
    weights and a new optimizer's state, and on leaving the block (on errors
    and interrupts too) its networks' weights are copied into ``encoder``
    and ``decoder`` and it returns to the pool. Else a new trainer of the
    networks themselves.
    """
    key = graph_key(encoder, decoder, options, batch_size)
    if key is None:
        yield Trainer(encoder, decoder, options, batch_size=batch_size, seed=seed)
        return
    with _lock:
        trainers = _idle.get(key)
        trainer = trainers.pop() if trainers else None
    if trainer is None:
        trainer = _new_pooled(encoder, decoder, options, batch_size, seed)
    _load(trainer, encoder, decoder, options, seed)
    try:
        yield trainer
    finally:
        encoder.set_weights(trainer.encoder.get_weights())
        decoder.set_weights(trainer.decoder.get_weights())
        with _lock:
            trainers = _idle.setdefault(key, [])
            _idle.move_to_end(key)
            if len(trainers) < _PER_KEY:
                trainers.append(trainer)
            while len(_idle) > _KEYS:
                _idle.popitem(last=False)


def adopt(encoder, decoder, options, *, batch_size, seed):
    """A trainer for ``partial_fit`` to keep: pooled graphs, traced already.

    An idle pooled trainer taken out of the pool for good, its networks
    holding ``encoder``'s and ``decoder``'s weights and its optimizer new
    (its networks are then not ``encoder`` and ``decoder``: see
    :func:`mirror`); else a new trainer of ``encoder`` and ``decoder``.
    """
    key = graph_key(encoder, decoder, options, batch_size)
    trainer = None
    if key is not None:
        with _lock:
            trainers = _idle.get(key)
            trainer = trainers.pop() if trainers else None
    if trainer is None:
        return Trainer(encoder, decoder, options, batch_size=batch_size, seed=seed)
    _load(trainer, encoder, decoder, options, seed)
    return trainer


@contextlib.contextmanager
def mirror(trainer, encoder, decoder):
    """Train ``encoder`` and ``decoder`` through ``trainer``'s own networks.

    Their weights are copied in on entering and back when the block ends
    without an error; nothing happens when they are the trainer's.
    """
    copies = trainer.encoder is not encoder
    if copies:
        trainer.encoder.set_weights(encoder.get_weights())
        trainer.decoder.set_weights(decoder.get_weights())
    yield
    if copies:
        encoder.set_weights(trainer.encoder.get_weights())
        decoder.set_weights(trainer.decoder.get_weights())


def _new_pooled(encoder, decoder, options, batch_size, seed):
    # Copies of the networks, which only the pool ever holds: their weights
    # (drawn anew, then overwritten by _load) draw the seeds of unseeded
    # initializers from a generator of their own, never from Python's random.
    with seeded_python_random(0):
        copies = keras.models.clone_model(encoder), keras.models.clone_model(decoder)
    trainer = Trainer(*copies, options, batch_size=batch_size, seed=seed)
    # A new optimizer's state (slots, iterations), restored for every fit.
    trainer.initial_optimizer_state = [v.numpy() for v in trainer.optimizer.variables]
    return trainer


def _load(trainer, encoder, decoder, options, seed):
    # Options equal but for the learning rate: partial_fit compares them.
    trainer.options = options
    trainer.encoder.set_weights(encoder.get_weights())
    trainer.decoder.set_weights(decoder.get_weights())
    optimizer = trainer.optimizer
    for variable, value in zip(
        optimizer.variables, trainer.initial_optimizer_state, strict=True
    ):
        variable.assign(value)
    optimizer.learning_rate = float(options.learning_rate)
    trainer.restart(seed)


def clear():
    """Drop every idle trainer (tests; memory)."""
    with _lock:
        _idle.clear()
