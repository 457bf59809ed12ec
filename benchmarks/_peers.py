"""umap-learn's ParametricUMAP, the closest peer, behind the suite's protocol.

ParametricUMAP trains a Keras encoder on UMAP's graph; with
``parametric_reconstruction=True`` and ``autoencoder_loss=True`` it also
trains a decoder, jointly with the encoder. Its defaults are kept (three
hidden layers of 100, its epochs and batch size). Its reconstruction loss is
binary cross-entropy on logits, made for inputs in [0, 1]: the adapter scales
the input into [0, 1] by the training rows' global range (MNIST's pixels / 255
are already there) and maps the decoder's logits back through a sigmoid, so
reconstructions are in the input's units as the other methods'.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

PEERS = ("parametric_umap", "parametric_umap_ae")


def parametric_umap_available():
    """Return ``(True, version)`` if ParametricUMAP imports, else ``(False, why)``."""
    try:
        import umap
        from umap.parametric_umap import ParametricUMAP  # noqa: F401
    except Exception as exc:  # TensorFlow or numba problems surface variously
        return False, f"umap.parametric_umap could not be imported ({exc})"
    return True, getattr(umap, "__version__", "unknown")


class ParametricUMAPPeer(TransformerMixin, BaseEstimator):
    """ParametricUMAP with its defaults, on input scaled into [0, 1].

    Parameters
    ----------
    n_components : int, default=2
    decoder : bool, default=False
        Train its decoder too (``parametric_reconstruction=True``,
        ``autoencoder_loss=True``); ``inverse_transform`` needs it.
    random_state : int or None, default=None
    n_epochs : int or None, default=None
        UMAP's ``n_epochs`` (None: its default); the quick run makes it small.
    """

    def __init__(self, n_components=2, decoder=False, random_state=None, n_epochs=None):
        self.n_components = n_components
        self.decoder = decoder
        self.random_state = random_state
        self.n_epochs = n_epochs

    def fit(self, X, y=None):
        from umap.parametric_umap import ParametricUMAP

        X = np.asarray(X, dtype=np.float32)
        self.low_ = float(X.min())
        self.range_ = float(X.max() - X.min()) or 1.0
        options = {"n_epochs": self.n_epochs} if self.n_epochs else {}
        if self.decoder:
            options.update(parametric_reconstruction=True, autoencoder_loss=True)
        self.model_ = ParametricUMAP(
            n_components=self.n_components,
            random_state=self.random_state,
            verbose=False,
            keras_fit_kwargs={"verbose": 0},
            **options,
        )
        self.model_.fit(self._scale(X))
        return self

    def _scale(self, X):
        return (np.asarray(X, dtype=np.float32) - self.low_) / self.range_

    def transform(self, X):
        return self.model_.transform(self._scale(X))

    def inverse_transform(self, Z):
        if not self.decoder:
            raise ValueError("Expected decoder=True for inverse_transform.")
        logits = np.asarray(self.model_.inverse_transform(Z), dtype=np.float64)
        rebuilt = 1.0 / (1.0 + np.exp(-logits))
        return (rebuilt * self.range_ + self.low_).reshape(len(Z), -1)
