"""Input scaling: the autoencoder's counterpart of PCA's centring."""

import numpy as np

SCALINGS = ("center", "standard", "minmax")


def fit_scaling(X, method):
    """Return ``(offset, scale)`` so that ``(X - offset) / scale`` is the scaled input.

    Statistics are float64 whatever the input dtype, so that float32 data is not
    scaled with float32 round-off.
    """
    X = np.asarray(X)
    if method is None:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    if method == "minmax":
        # One range for all features: per-feature ranges would blow up nearly
        # constant pixels (an image's border) and distort the picture.
        lo, hi = float(np.min(X)), float(np.max(X))
        scale = hi - lo if hi > lo else 1.0
        return np.full(X.shape[1], lo), np.full(X.shape[1], scale)
    mean = X.mean(axis=0, dtype=np.float64)
    if method == "standard":
        std = X.std(axis=0, dtype=np.float64)
        return mean, np.where(std > 0, std, 1.0)
    # "center": one global scale keeps the features' relative weights, so the
    # training loss is the input-space MSE up to a constant, as PCA minimises.
    rms = float(np.sqrt(np.mean(X.var(axis=0, dtype=np.float64))))
    return mean, np.full(X.shape[1], rms if rms > 0 else 1.0)
