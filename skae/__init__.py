"""skae: autoencoders as scikit-learn transformers, a drop-in non-linear PCA."""

import os

# skae's training loop is written for TensorFlow; respect a user's explicit choice
# only to fail clearly below.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (CPU feature notes) is not the user's concern.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "Expected the Keras backend 'tensorflow'. "
        f"Received: KERAS_BACKEND={keras.backend.backend()!r}"
    )

from ._estimator import AutoencoderTransformer
from ._inference import inference_path
from ._version import __version__
from .persistence import load, save

__all__ = [
    "AutoencoderTransformer",
    "__version__",
    "inference_path",
    "load",
    "save",
]
