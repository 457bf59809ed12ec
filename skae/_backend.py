"""Which Keras backend skae runs on, and the little that differs between them.

skae runs on Keras 3's TensorFlow (the default), JAX and PyTorch backends.
Losses, noise and the structure term are shared ``keras.ops`` code; what Keras
has no common API for lives here: stateless random draws from a seed tensor,
and the check that the backend asked for is installed and is the one Keras
loaded. This module imports no backend until :func:`select` has checked it.
"""

import importlib.util
import os
import sys

import numpy as np

SUPPORTED = ("tensorflow", "jax", "torch")
# What provides each backend, and the extra that installs it.
_PROVIDERS = {"tensorflow": "tensorflow", "jax": "jaxlib", "torch": "torch"}
_EXTRAS = {
    "tensorflow": 'pip install tensorflow (a core dependency: pip install "skae")',
    "jax": 'pip install "skae[jax]"',
    "torch": 'pip install "skae[torch]"',
}
# The backend skae's modules were imported with (set by select()).
_selected = None


def select():
    """Check the backend Keras will load or has loaded, before importing Keras.

    Without a choice (no ``KERAS_BACKEND`` and Keras not yet imported) skae
    runs on TensorFlow, whatever ``~/.keras/keras.json`` says, as it always
    has. Raises ``ImportError`` naming the backend and the extra to install
    when the backend asked for is not one skae runs on or is not installed,
    and when Keras was already imported with another backend than
    ``KERAS_BACKEND`` names (one process runs one backend).
    """
    global _selected
    loaded = sys.modules.get("keras")
    if loaded is None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        name = os.environ["KERAS_BACKEND"]
    else:
        name = loaded.backend.backend()
        asked = os.environ.get("KERAS_BACKEND")
        if asked is not None and asked != name:
            raise ImportError(
                f"Expected one Keras backend per process. Received: "
                f"KERAS_BACKEND={asked!r} but Keras was already imported with "
                f"the backend {name!r}: set KERAS_BACKEND before the first "
                "import of keras or skae."
            )
    if name not in SUPPORTED:
        raise ImportError(
            f"Expected the Keras backend to be one of {SUPPORTED}. "
            f"Received: KERAS_BACKEND={name!r}"
        )
    if importlib.util.find_spec(_PROVIDERS[name]) is None:
        raise ImportError(
            f"Expected the Keras backend {name!r} to be installed. Received: "
            f"KERAS_BACKEND={name!r} without the {_PROVIDERS[name]} package: "
            f"{_EXTRAS[name]}"
        )
    _selected = name
    return name


def name():
    """The backend skae runs on."""
    return _selected


def check_unchanged():
    """Raise ``RuntimeError`` when Keras switched backends after skae's import.

    ``keras.config.set_backend`` reloads Keras under another backend, but
    skae's modules, and the networks they built, stay on the first one.
    """
    import keras

    current = keras.backend.backend()
    if current != _selected:
        raise RuntimeError(
            f"Expected the Keras backend skae was imported with, {_selected!r}. "
            f"Received: keras.backend.backend()={current!r} (after "
            "keras.config.set_backend?): one process runs one backend; "
            f"start a new process with KERAS_BACKEND={current!r}"
            + ("" if current not in _EXTRAS else f" ({_EXTRAS[current]})")
            + "."
        )


def seed_pair(seed, step):
    """A stateless seed for JAX or PyTorch (TensorFlow's epochs make their own)."""
    if _selected == "torch":
        # Eager: torch draws from a generator seeded with a Python int.
        return (int(seed), int(step))
    # JAX: two int32 words, made a raw key inside the jitted step.
    return np.array([seed, step], dtype=np.int32)


def _offset(seed, k):
    if isinstance(seed, tuple):
        return (seed[0] + k, seed[1] + k)
    return seed + k


def normal(shape, seed, dtype, k=0):
    """Standard normal draws, a pure function of ``seed`` (see seed_pair)."""
    seed = _offset(seed, k)
    if _selected == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_normal(shape, seed, dtype=dtype)
    import keras

    return keras.random.normal(shape, dtype=dtype, seed=_native(seed))


def uniform(shape, seed, dtype="float32", k=0, maxval=1.0):
    """Uniform draws in [0, maxval), a pure function of ``seed``; ints too."""
    seed = _offset(seed, k)
    if _selected == "tensorflow":
        import tensorflow as tf

        if dtype == "int32":
            return tf.random.stateless_uniform(shape, seed, 0, maxval, dtype=tf.int32)
        return tf.random.stateless_uniform(shape, seed)
    import keras

    if dtype == "int32":
        return keras.random.randint(shape, 0, maxval, dtype="int32", seed=_native(seed))
    return keras.random.uniform(shape, dtype=dtype, seed=_native(seed))


def _native(seed):
    if _selected == "jax":
        import jax.numpy as jnp

        # A raw two-word key, as Keras' own JAX draws use.
        return jnp.asarray(seed, dtype=jnp.uint32)
    # Torch seeds one generator with an int: mix the two words.
    return (seed[0] * 1_000_003 + seed[1]) & 0x7FFFFFFF


def add_n(values):
    """The sum of a list of scalar tensors (TensorFlow's own op there)."""
    if _selected == "tensorflow":
        import tensorflow as tf

        return tf.add_n(values)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
