"""AutoencoderTransformer: a Keras autoencoder as a scikit-learn transformer."""

import warnings
from numbers import Integral, Real

import keras
import numpy as np
import tensorflow as tf
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _training
from ._scaling import SCALINGS, fit_scaling
from .architectures import auto_hidden_layer_sizes, build_dense

# Rows per compiled call at inference: large enough to amortise the call, small
# enough that a batch's float32 copy stays a few MB.
_INFERENCE_BATCH = 4096


class AutoencoderTransformer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Dimensionality reduction with an autoencoder, as a drop-in for PCA.

    An encoder network maps each sample to a code of ``n_components`` values and a
    decoder maps codes back to the input space; both are trained together to
    reconstruct the (scaled) input. ``transform`` runs the encoder,
    ``inverse_transform`` the decoder. Unlike PCA the maps are non-linear, so
    curved structure and clusters are kept apart in few dimensions.

    Parameters
    ----------
    n_components : int, default=2
        Width of the code (the number of output features of ``transform``).

    hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Widths of the encoder's hidden layers, widest first; the decoder mirrors
        them. "auto" sizes them from the number of features (see
        :func:`skae.architectures.auto_hidden_layer_sizes`); ``()`` gives a
        single-layer encoder and decoder.

    activation : str or None, default="relu"
        Activation of the hidden layers, any Keras activation name. None or
        "linear" gives a linear autoencoder, which learns PCA's subspace.

    code_activation : str or None, default=None
        Activation of the code layer; None keeps the code linear (unbounded).

    output_activation : "auto", str or None, default="auto"
        Activation of the reconstruction. "auto": "sigmoid" when the input is
        scaled to [0, 1] (``scaling="minmax"``), else linear.

    scaling : {"auto", "center", "standard", "minmax"} or None, default="auto"
        How the input is scaled before training; ``inverse_transform`` undoes it.
        "center" subtracts each feature's mean and divides by one global scale,
        so the loss is the input-space squared error up to a constant (PCA's
        objective); "standard" gives every feature unit variance; "minmax" maps
        the data's overall range to [0, 1] (as dividing pixels by 255 does);
        None uses the data as is. "auto" is "minmax" for
        ``loss="binary_crossentropy"`` and "center" otherwise.

    loss : {"auto", "mse", "binary_crossentropy"}, default="auto"
        Reconstruction loss on the scaled data. "auto" is "mse".

    code_l1 : float, default=0.0
        Weight of an L1 penalty on the code's activations; > 0 gives a sparse code.

    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the scaled inputs during
        training only (a denoising autoencoder). Never applied in ``transform``.

    masking : float, default=0.0
        Fraction of scaled input values set to zero during training only
        (masking noise). Never applied in ``transform``.

    epochs : "auto" or int, default="auto"
        Maximum number of passes over the training data. "auto" gives a budget of
        about 8,000 gradient steps, between 20 and 500 epochs.

    batch_size : "auto" or int, default="auto"
        Samples per gradient step. "auto": about n_samples / 25, a power of two
        between 16 and 256.

    learning_rate : float, default=1e-3
        Learning rate of the optimizer.

    optimizer : str, default="adam"
        Name of a Keras optimizer, e.g. "adam", "sgd", "rmsprop", "adadelta".

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its
        loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, restoring
        the weights of the best epoch. When False, the training loss is
        monitored the same way (as scikit-learn's MLP does).

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.

    tol : float, default=1e-4
        Minimum improvement of the monitored loss that counts.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the validation split and the noise.
        An int gives the same fit every time on the same machine; Keras' and
        NumPy's global random state are left untouched.

    verbose : int, default=0
        0 prints nothing; 1 a Keras progress bar per epoch; 2 one line per epoch.

    callbacks : list of keras.callbacks.Callback or None, default=None
        Extra Keras callbacks. Epoch-level hooks are called (``on_epoch_end`` gets
        ``loss`` and ``val_loss``, and ``model.stop_training`` is honoured);
        batch-level hooks are not, since a whole epoch runs as one compiled graph.

    Attributes
    ----------
    encoder_ : keras.Model
        Maps scaled input rows to codes.
    decoder_ : keras.Model
        Maps codes to scaled reconstructions.
    history_ : dict of str to list of float
        Per-epoch ``loss`` (and ``val_loss`` with early stopping).
    n_iter_ : int
        Number of epochs run.
    n_components_ : int
        Width of the code.
    hidden_layer_sizes_ : tuple of int
        The encoder's hidden widths actually used.
    input_offset_ : ndarray of shape (n_features_in_,)
        Subtracted from the input before encoding.
    input_scale_ : ndarray of shape (n_features_in_,)
        Divides the input after the offset is removed.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.decomposition.PCA : The linear counterpart.

    Notes
    -----
    Computation runs in float32 (Keras' default); ``transform`` and
    ``inverse_transform`` return the input's float dtype.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> ae = AutoencoderTransformer(n_components=2, epochs=3, random_state=0)
    >>> ae.fit_transform(X).shape
    (1797, 2)
    >>> ae.inverse_transform([[0.0, 0.0]]).shape
    (1, 64)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [StrOptions({"auto"}), tuple, list],
        "activation": [str, None],
        "code_activation": [str, None],
        "output_activation": [str, None],
        "scaling": [StrOptions({"auto", *SCALINGS}), None],
        "loss": [StrOptions({"auto", *_training.LOSSES})],
        "code_l1": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "masking": [Interval(Real, 0, 1, closed="left")],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [str],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes="auto",
        activation="relu",
        code_activation=None,
        output_activation="auto",
        scaling="auto",
        loss="auto",
        code_l1=0.0,
        noise=0.0,
        masking=0.0,
        epochs="auto",
        batch_size="auto",
        learning_rate=1e-3,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.scaling = scaling
        self.loss = loss
        self.code_l1 = code_l1
        self.noise = noise
        self.masking = masking
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    # -- fitting -----------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._reset()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        loss = "mse" if self.loss == "auto" else self.loss
        scaling = self._resolve_scaling(X, loss)
        offset, scale = fit_scaling(X, scaling)
        Xs = ((X - offset) / scale).astype(np.float32)
        if loss == "binary_crossentropy" and (Xs.min() < 0 or Xs.max() > 1):
            raise ValueError(
                "Expected scaled inputs in [0, 1] for loss='binary_crossentropy'. "
                f"Received: scaling={self.scaling!r} giving values in "
                f"[{Xs.min():.3g}, {Xs.max():.3g}]; use scaling='minmax'."
            )
        output_activation = self.output_activation
        if output_activation == "auto":
            output_activation = "sigmoid" if scaling == "minmax" else None
        optimizer = self._make_optimizer()

        rng = check_random_state(self.random_state)
        X_train, X_val = Xs, None
        if self.early_stopping:
            X_train, X_val = self._split_validation(Xs, rng)
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, str):
            hidden = auto_hidden_layer_sizes(X.shape[1], self.n_components)
        hidden = self._check_hidden_layer_sizes(hidden)
        encoder, decoder = build_dense(
            X.shape[1],
            self.n_components,
            hidden,
            activation=self.activation,
            code_activation=self.code_activation,
            output_activation=output_activation,
            code_l1=self.code_l1,
            seed=int(rng.randint(2**31 - 1 - 1000)),
        )
        batch_size = self.batch_size
        if batch_size == "auto":
            batch_size = _auto_batch_size(X_train.shape[0])
        epochs = self.epochs
        if epochs == "auto":
            epochs = _auto_epochs(X_train.shape[0], batch_size)

        try:
            history, n_iter = _training.train(
                encoder,
                decoder,
                X_train,
                X_val,
                loss=loss,
                optimizer=optimizer,
                epochs=epochs,
                batch_size=batch_size,
                noise=self.noise,
                masking=self.masking,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                rng=rng,
                callbacks=self.callbacks,
                verbose=self.verbose,
            )
        except _training.TrainingInterrupted as exc:
            n_iter = exc.args[0]
            self._set_fitted(encoder, decoder, offset, scale, hidden, None, n_iter)
            warnings.warn(
                f"Training was interrupted after {n_iter} epoch(s); the transformer "
                "keeps the weights reached so far (the best ones with "
                "early_stopping=True).",
                UserWarning,
                stacklevel=2,
            )
            raise KeyboardInterrupt from exc
        self._set_fitted(encoder, decoder, offset, scale, hidden, history, n_iter)
        return self

    def _reset(self):
        # A failed or interrupted refit must not leave attributes of two fits.
        for name in [
            k for k in vars(self) if k.endswith("_") and not k.startswith("_")
        ]:
            delattr(self, name)
        self.__dict__.pop("_inference", None)

    def _set_fitted(self, encoder, decoder, offset, scale, hidden, history, n_iter):
        self.encoder_ = encoder
        self.decoder_ = decoder
        self.input_offset_ = offset
        self.input_scale_ = scale
        self.hidden_layer_sizes_ = tuple(hidden)
        self.n_components_ = self.n_components
        self.history_ = history if history is not None else {}
        self.n_iter_ = n_iter
        # Created here, filled on first use: transform must not change __dict__.
        self._inference = {}

    def _resolve_scaling(self, X, loss):
        if self.scaling != "auto":
            return self.scaling
        return "minmax" if loss == "binary_crossentropy" else "center"

    def _make_optimizer(self):
        try:
            return keras.optimizers.get(
                {
                    "class_name": self.optimizer,
                    "config": {"learning_rate": self.learning_rate},
                }
            )
        except ValueError as exc:
            raise ValueError(
                "Expected the name of a Keras optimizer, such as 'adam' or 'sgd'. "
                f"Received: optimizer={self.optimizer!r}"
            ) from exc

    def _check_hidden_layer_sizes(self, hidden):
        hidden = tuple(hidden)
        if not all(isinstance(h, Integral) and h >= 1 for h in hidden):
            raise ValueError(
                "Expected hidden_layer_sizes to be 'auto' or a sequence of positive "
                f"integers. Received: hidden_layer_sizes={self.hidden_layer_sizes!r}"
            )
        return tuple(int(h) for h in hidden)

    def _split_validation(self, Xs, rng):
        n_val = round(self.validation_fraction * Xs.shape[0])
        if n_val < 1 or n_val >= Xs.shape[0]:
            raise ValueError(
                "Expected validation_fraction to leave at least one sample for "
                "training and one for validation. Received: "
                f"validation_fraction={self.validation_fraction} with "
                f"n_samples={Xs.shape[0]}"
            )
        order = rng.permutation(Xs.shape[0])
        return Xs[order[n_val:]], Xs[order[:n_val]]

    # -- inference ---------------------------------------------------------

    def transform(self, X):
        """Encode X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The codes, in X's float dtype.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._run("encoder_", X, self.input_offset_, self.input_scale_, None)

    def inverse_transform(self, X):
        """Decode codes back to the input space, in the input's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, e.g. from ``transform`` or any grid of points.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            The reconstructions, in X's float dtype.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"Expected codes of shape (n_samples, {self.n_components_}). "
                f"Received: X.shape={X.shape}"
            )
        return self._run(
            "decoder_", X, None, None, (self.input_offset_, self.input_scale_)
        )

    def score_samples(self, X):
        """Negative mean squared reconstruction error of each sample.

        Higher is better: anomalies reconstruct badly and score low.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``-mean((x - inverse_transform(transform(x))) ** 2)`` per row, in
            the input's units.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        reconstructed = self.inverse_transform(self.transform(X))
        return -np.mean((X - reconstructed) ** 2, axis=1)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error over X.

        Higher is better, so ``GridSearchCV`` can tune the transformer without a
        ``scoring`` argument.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            The mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def _run(self, model_name, X, offset, scale, unscale):
        """Apply a fitted model batch by batch, never holding a full float32 copy."""
        fn = self._inference_fn(model_name)
        out_width = getattr(self, model_name).output_shape[-1]
        out = np.empty((X.shape[0], out_width), dtype=X.dtype)
        for start in range(0, X.shape[0], _INFERENCE_BATCH):
            batch = X[start : start + _INFERENCE_BATCH]
            if offset is not None:
                batch = (batch - offset) / scale
            result = fn(tf.constant(batch, dtype=tf.float32)).numpy()
            if unscale is not None:
                result = result * unscale[1] + unscale[0]
            out[start : start + _INFERENCE_BATCH] = result
        return out

    def _inference_fn(self, model_name):
        # A compiled function with a fixed signature: Keras' predict() costs tens
        # of milliseconds per call, this a fraction of one.
        cache = self.__dict__.setdefault("_inference", {})
        if model_name not in cache:
            model = getattr(self, model_name)
            signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)]
            cache[model_name] = tf.function(
                lambda x: model(x, training=False), input_signature=signature
            )
        return cache[model_name]

    def __getstate__(self):
        # Compiled functions do not pickle; they are rebuilt on first use.
        state = super().__getstate__()
        state.pop("_inference", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "encoder_" in state:
            self._inference = {}

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = False
        return tags


def _auto_batch_size(n_samples):
    return int(min(256, max(16, 2 ** round(np.log2(max(n_samples, 1) / 25)))))


def _auto_epochs(n_samples, batch_size):
    steps_per_epoch = -(-n_samples // batch_size)
    return int(min(500, max(20, round(8000 / steps_per_epoch))))
