"""skae: autoencoders as scikit-learn transformers, a drop-in non-linear PCA."""

import os

# TensorFlow's C++ start-up chatter (CPU feature notes) is not the user's concern.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import _backend

# TensorFlow unless KERAS_BACKEND (or an earlier import of Keras) chose JAX or
# PyTorch; a clear ImportError for a backend skae cannot run on.
_backend.select()

from ._estimator import AutoencoderTransformer  # noqa: E402
from ._inference import inference_path  # noqa: E402
from ._version import __version__  # noqa: E402
from .persistence import load, save  # noqa: E402

__all__ = [
    "AutoencoderTransformer",
    "__version__",
    "inference_path",
    "load",
    "save",
]
