"""skae: autoencoders as scikit-learn transformers, a drop-in non-linear PCA."""

import os

# TensorFlow's C++ start-up chatter (CPU feature notes) is not the user's concern.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before anything can start TensorFlow's runtime: see skae._devices.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

from . import _backend

# TensorFlow unless KERAS_BACKEND (or an earlier import of Keras) chose JAX or
# PyTorch; a clear ImportError for a backend skae cannot run on. It imports
# no backend: that happens when a name below is first used.
_backend.select()

from ._version import __version__  # noqa: E402

__all__ = [
    "AutoencoderTransformer",
    "__version__",
    "inference_path",
    "load",
    "save",
]


def __getattr__(name):
    # The public names load Keras (and its backend) on first use, not on
    # ``import skae``: a Dask worker unpickling skae's NumPy forward pass
    # (skae._forward) imports this package without them, and without
    # TensorFlow's runtime (~900 MB).
    if name == "AutoencoderTransformer":
        from ._estimator import AutoencoderTransformer as value
    elif name == "inference_path":
        from ._inference import inference_path as value
    elif name == "load":
        from .persistence import load as value
    elif name == "save":
        from .persistence import save as value
    elif name in ("architectures", "persistence"):
        # Not ``from . import``: that asks this function for the name again.
        import skae.architectures
        import skae.persistence

        value = getattr(skae, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__, "architectures", "persistence"})
