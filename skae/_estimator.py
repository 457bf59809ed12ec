"""AutoencoderTransformer: a Keras autoencoder as a scikit-learn transformer."""

import copy
import functools
import math
import warnings
from numbers import Integral, Real

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    check_is_fitted,
    validate_data,
)

from . import _streaming, _training
from ._pca_init import build_pca_dense, pca_basis, pca_r2_curve, select_n_components
from ._scaling import SCALINGS
from ._structure import neighbour_graph
from .architectures import (
    CONV_AUTO_FILTERS,
    NORMALIZATIONS,
    _seeded_python_random,
    _user_network,
    auto_hidden_layer_sizes,
    build_conv,
    build_dense,
)

# Rows per compiled call at inference: large enough to amortise the call, small
# enough that a batch's copy stays a few tens of MB.
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
    n_components : int, float in (0, 1) or None, default=2
        Width of the code (the number of output features of ``transform``).
        A float is a fraction of variance, as in PCA: the smallest code whose
        validation reconstruction R² (``1 - SSE / SST`` on a held-out
        ``validation_fraction`` of X, in the scaled space) reaches it. PCA's R²
        for every size bounds and guides the search, so it takes a few fits,
        not one per size; the chosen width is ``n_components_`` and its R²
        ``reconstruction_r2_`` (with a warning if even the largest size
        searched falls short, as with too few rows or a structure term or
        ``code_l1`` in the loss). None lets the network set it: with
        ``architecture="conv"`` the code is the flattened last feature map,
        with a user-supplied ``encoder`` it is the encoder's output width.
        ``architecture="dense"`` needs an int or a float.

    architecture : {"dense", "conv"}, default="dense"
        The built-in network. "dense": fully connected layers (see
        :func:`skae.architectures.build_dense`). "conv": for images, each hidden
        layer a 3x3 convolution followed by 2x2 max pooling; the decoder mirrors
        it with 2x2 upsampling (see :func:`skae.architectures.build_conv`). With
        an int ``n_components`` a dense layer maps the flattened last feature map
        to the code; with None that map is the code. For example
        ``hidden_layer_sizes=(16, 8, 8)``, ``n_components=None`` and 28x28
        images give the classic Keras recipe: a (4, 4, 8) map, a code of 128
        values. Rows of X that are not images (no ``input_shape``) are treated as
        images one pixel high.

    hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Widths of the encoder's hidden layers, widest first (with "conv": the
        number of filters of each convolution); the decoder mirrors them. "auto"
        sizes dense layers from the number of features, or gives three layers
        of 128 (or of four times the code, if wider) with
        ``structure_weight > 0`` (see
        :func:`skae.architectures.auto_hidden_layer_sizes`), and gives (16, 8, 8)
        filters for "conv"; ``()`` gives a single-layer encoder and decoder.

    input_shape : tuple of int or None, default=None
        Shape of one sample, such as ``(28, 28)`` or ``(28, 28, 1)``. X may then
        be images of that shape or rows of as many values, which are reshaped to
        it. X may be images (3-D or 4-D) only when ``input_shape`` is given or
        ``architecture="conv"`` (which takes the shape from X when None).
        ``inverse_transform`` returns images when fit was given images, rows
        otherwise.

    encoder : keras.Model, callable or None, default=None
        A network of your own in place of the built-in encoder; it must map
        inputs of shape ``(None, *input_shape)`` (``(None, n_features)`` for
        rows) to codes of shape ``(None, n_components)``. Either a Keras model,
        used as a template: ``fit`` trains a copy made by
        :func:`keras.models.clone_model`, with freshly initialised weights, so
        the model passed is never changed and ``random_state`` seeds the copy's
        weights (to start from trained weights, pass a callable returning a
        copy that has them). Or a callable ``encoder(input_shape,
        n_components)`` returning a new Keras model, where ``input_shape`` is
        the shape of one sample (a tuple) and ``n_components`` the parameter
        (possibly None); a callable adapts to any number of features. Define it
        at module level (not as a lambda) for the transformer to pickle.
        Scaling, loss, optimizer and training parameters apply as usual;
        ``hidden_layer_sizes``, the activations, ``normalization`` and
        ``code_l1`` only shape the built-in networks, so they are ignored for
        a user-supplied half.

    decoder : keras.Model, callable or None, default=None
        The same for the decoder, called as ``decoder(input_shape,
        n_components)``; it must map codes of shape ``(None, n_components)`` to
        reconstructions of shape ``(None, *input_shape)``.

    init : {"auto", "random", "pca"}, default="auto"
        How the dense networks start. "pca": each half is a linear path set to
        PCA's projection (encoder) or reconstruction (decoder) of the scaled
        training data, plus a non-linear correction whose last layer starts at
        zero, so the untrained model is exactly PCA and training improves on
        it; with ``early_stopping=True`` the start is a candidate, so the
        result is never worse than PCA on the validation rows. Needs
        ``architecture="dense"``, no user networks, ``loss="mse"`` and linear
        code and output activations (``output_activation="auto"`` then means
        linear). "random": Glorot-uniform weights. "auto": "pca" where it
        applies and the code is wider than 3 units (or a fraction of
        variance), else "random": 2-D and 3-D codes are mostly looked at, and
        there the random start gave better neighbourhoods. The start used is
        ``init_``.

    activation : str or None, default="relu"
        Activation of the hidden layers, any Keras activation name. None or
        "linear" gives a linear autoencoder, which learns PCA's subspace.

    code_activation : str or None, default=None
        Activation of the code layer; None keeps the code linear (unbounded).

    output_activation : "auto", str or None, default="auto"
        Activation of the reconstruction. "auto": "sigmoid" when the input is
        scaled to [0, 1] (``scaling="minmax"``), else linear.

    normalization : {None, "layer"}, default=None
        "layer" puts a :class:`keras.layers.LayerNormalization` between each
        of the encoder's hidden layers and its activation (the decoder is left
        plain). It steadies the training of deep encoders under the structure
        term: with ``activation="gelu"`` and four hidden layers of 128 it
        raised MNIST 10k's held-out 2-D kNN accuracy from 0.921 to 0.933
        (seeds 0-2; see the user guide's page on structure).

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

    noise : float, default=0.7
        Standard deviation of Gaussian noise added to the inputs during training
        only (a denoising autoencoder), as a fraction of the scaled data's root
        mean square feature standard deviation, so it means the same whatever the
        scaling. Never applied in ``transform``. Denoising regularises the map:
        on the digits benchmark 0.7 raised held-out 2-D kNN accuracy from 0.84
        to 0.93 and lowered held-out reconstruction error; 0 trains a plain
        autoencoder. With a PCA start (``init_="pca"``) the fraction is of the
        RMS that PCA's ``n_components`` axes leave unexplained, the detail the
        code must add: noise on the whole data's scale would drown it in wide
        codes.

    masking : float, default=0.0
        Fraction of scaled input values set to zero during training only
        (masking noise). Never applied in ``transform``.

    structure_weight : float, default=0.0
        Weight of the structure term, added to the reconstruction loss: a
        neighbour-embedding loss on the code, over the k-nearest-neighbour
        graph of the scaled training rows (UMAP's fuzzy graph, built once per
        fit with :class:`sklearn.neighbors.NearestNeighbors`, or above 100,000
        rows with pynndescent's NN-descent where installed). Each step draws
        ``batch_size`` edges of the graph and pulls the codes of an edge's two
        ends together against the batch's other codes (InfoNCE on a Cauchy
        kernel, the pairs' attraction doubled), so clusters come apart as in
        UMAP while the decoder still reconstructs. As in UMAP, ``fit`` decays
        the learning rate linearly towards zero over ``epochs`` so the codes
        settle, and runs every epoch: the schedule replaces the ``tol`` /
        ``n_iter_no_change`` stop (with ``early_stopping=True`` the best
        validation epoch's weights are still restored); ``partial_fit`` keeps
        the rate constant. A quarter of ``epochs`` then trains the decoder
        alone on the final codes. 0 trains a plain autoencoder. 1 with
        ``batch_size=512`` and ``learning_rate=1e-2`` is what the benchmark
        measures (see the user guide's page on structure). Needs X in memory:
        a memmap or array-like is read whole, sparse X is refused; with
        ``partial_fit`` each chunk's own graph is used.

    n_neighbors : int, default=15
        Neighbours of each row in the structure term's graph, as UMAP's
        ``n_neighbors``: fewer keep finer, more local structure. Each row's
        edge weights sum to ``log2(n_neighbors)``, as UMAP calibrates them;
        UMAP counts the row itself among its neighbours, here all are other
        rows, so the graph has each row's ``n_neighbors``-th neighbour too, at
        a low weight (near 0 for ``n_neighbors=2``). Clipped to the number of
        rows minus one; unused when ``structure_weight=0``.

    epochs : "auto" or int, default="auto"
        Maximum number of passes over the training data. "auto" gives a budget of
        250,000 samples seen, between 20 and 500 epochs (about 280 epochs for
        900 samples, 50 for 5,000, 20 for 60,000).

    batch_size : "auto" or int, default="auto"
        Samples per gradient step (with ``structure_weight > 0``: graph edges,
        so twice as many rows). "auto": the power of two nearest to
        n_samples / 40, between 32 and 128.

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
        Fraction of the training data held out when ``early_stopping=True``
        or ``n_components`` is a fraction of variance (then at least two
        rows, since R² needs their spread).

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
        ``model.optimizer`` is the training's optimizer, so learning-rate
        callbacks (``LearningRateScheduler``, ``ReduceLROnPlateau``) work,
        except with ``structure_weight > 0``, whose own schedule sets the rate
        at the start of each epoch.

    Attributes
    ----------
    encoder_ : keras.Model
        Maps scaled input rows to codes.
    decoder_ : keras.Model
        Maps codes to scaled reconstructions.
    history_ : dict of str to list of float
        Per-epoch ``loss`` (and ``val_loss`` with early stopping); with
        ``structure_weight > 0`` the loss includes the structure term, and
        ``decoder_loss`` (``decoder_val_loss``) follow the decoder-only epochs.
    n_iter_ : int
        Number of epochs run.
    n_components_ : int
        Width of the code.
    hidden_layer_sizes_ : tuple of int or None
        The built-in network's hidden widths (filters for "conv") actually used;
        None when both ``encoder`` and ``decoder`` are user-supplied.
    input_shape_ : tuple of int
        Shape of one sample as the networks see it: ``input_shape``, the shape
        of the images X held, or ``(n_features_in_,)``.
    input_offset_ : ndarray of shape (n_features_in_,)
        Subtracted from the input before encoding.
    input_scale_ : ndarray of shape (n_features_in_,)
        Divides the input after the offset is removed.
    init_ : {"random", "pca"}
        The start used (what ``init="auto"`` chose).
    n_samples_seen_ : int
        Number of rows the scaling statistics were computed from: all of X for
        ``fit``, every chunk so far for ``partial_fit``.
    reconstruction_r2_ : float
        Only for a float ``n_components``: the validation R² of the chosen code.
    n_components_scores_ : dict of int to float
        Only for a float ``n_components``: each code size fitted during the
        search and its validation R², in the order tried.
    n_features_in_ : int
        Number of features seen during fit (values per sample for images).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.decomposition.PCA : The linear counterpart.
    sklearn.decomposition.IncrementalPCA : Its chunk-by-chunk form, as
        :meth:`partial_fit`.

    Notes
    -----
    X may be a :class:`numpy.memmap`, a SciPy sparse matrix or array, or any 2-D
    array-like with row slicing (h5py, zarr): ``fit``, ``partial_fit``,
    ``transform`` and ``score`` then read it a batch of rows at a time (about
    32 MB for training, at most 8 MB for the scaling statistics and
    inference), densifying and scaling each batch on its own, so X is never
    copied or densified whole.

    Training runs in float32 (Keras' default). ``transform`` and
    ``inverse_transform`` run a float64 copy of the trained network, so a
    sample's result does not depend on the other rows it is batched with, and
    return the input's float dtype.

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

    Images, with a convolutional network:

    >>> images = X.reshape(-1, 8, 8)
    >>> conv = AutoencoderTransformer(architecture="conv", epochs=2, random_state=0)
    >>> conv.fit(images).transform(images).shape
    (1797, 2)
    >>> conv.inverse_transform([[0.0, 0.0]]).shape
    (1, 8, 8)

    A network of your own, built for the shape of the data:

    >>> import keras
    >>> def encoder(input_shape, n_components):
    ...     return keras.Sequential([
    ...         keras.Input(shape=input_shape),
    ...         keras.layers.Dense(32, activation="relu"),
    ...         keras.layers.Dense(n_components),
    ...     ])
    >>> ae = AutoencoderTransformer(encoder=encoder, epochs=2, random_state=0)
    >>> ae.fit_transform(X).shape
    (1797, 2)
    """

    _parameter_constraints: dict = {
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            None,
        ],
        "init": [StrOptions({"auto", "random", "pca"})],
        "architecture": [StrOptions({"dense", "conv"})],
        "hidden_layer_sizes": [StrOptions({"auto"}), tuple, list],
        "input_shape": [tuple, list, None],
        "encoder": [callable, None],
        "decoder": [callable, None],
        "activation": [str, None],
        "code_activation": [str, None],
        "output_activation": [str, None],
        "normalization": [StrOptions(set(NORMALIZATIONS)), None],
        "scaling": [StrOptions({"auto", *SCALINGS}), None],
        "loss": [StrOptions({"auto", *_training.LOSSES})],
        "code_l1": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "masking": [Interval(Real, 0, 1, closed="left")],
        "structure_weight": [Interval(Real, 0, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
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
        architecture="dense",
        init="auto",
        hidden_layer_sizes="auto",
        input_shape=None,
        encoder=None,
        decoder=None,
        activation="relu",
        code_activation=None,
        output_activation="auto",
        normalization=None,
        scaling="auto",
        loss="auto",
        code_l1=0.0,
        noise=0.7,
        masking=0.0,
        structure_weight=0.0,
        n_neighbors=15,
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
        self.architecture = architecture
        self.init = init
        self.hidden_layer_sizes = hidden_layer_sizes
        self.input_shape = input_shape
        self.encoder = encoder
        self.decoder = decoder
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.normalization = normalization
        self.scaling = scaling
        self.loss = loss
        self.code_l1 = code_l1
        self.noise = noise
        self.masking = masking
        self.structure_weight = structure_weight
        self.n_neighbors = n_neighbors
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
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            Training data: rows, or images when ``input_shape`` is given or
            ``architecture="conv"``.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted transformer.

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(100, 6)
        >>> ae = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> ae.n_features_in_, ae.n_iter_
        (6, 2)
        """
        self._reset()
        self._check_callbacks()
        self._check_network_params()
        X, sample_shape = self._validate_X(X, reset=True)
        X = self._structure_input(X)
        input_shape = self._resolve_input_shape(X.shape[1], sample_shape)
        loss = "mse" if self.loss == "auto" else self.loss
        scaling = self._resolve_scaling(X, loss)
        init = self._resolve_init(loss)
        search = _is_fraction(self.n_components)
        stats = _scaling_stats(X)
        offset, scale = stats.result(scaling)
        self._check_scaled_range(stats, offset, scale, loss)

        rng = check_random_state(self.random_state)
        rows = np.arange(X.shape[0])
        train_rows, val_rows = rows, None
        if self.early_stopping or search:
            train_rows, val_rows = self._split_validation(rows, rng, search)
        train_rows = _row_set(X, train_rows, offset, scale, input_shape)
        if val_rows is not None:
            val_rows = _row_set(X, val_rows, offset, scale, input_shape)
        seed = int(rng.randint(2**31 - 1 - 1000))
        self._attach_graphs(seed, train_rows, val_rows)
        basis = None
        if init == "pca":
            n_basis = None if search else self.n_components
            basis = _pca_basis(train_rows, n_basis, seed)

        self.input_shape_ = input_shape
        # What inverse_transform returns: images when fit was given images.
        self._sample_shape = sample_shape

        def fit_networks(n_components):
            # The search always stops early on its validation rows, where its
            # R² is measured.
            return self._fit_networks(
                X,
                input_shape,
                train_rows,
                val_rows,
                n_components=n_components,
                basis=basis,
                loss=loss,
                scaling=scaling,
                noise=self._noise_std(stats, scale, basis, n_components),
                seed=seed,
                rng=rng,
            )

        try:
            if search:
                networks, r2, scores = self._search_n_components(
                    fit_networks, basis, train_rows, val_rows
                )
            else:
                networks = fit_networks(self.n_components)
        except _training.TrainingInterrupted as exc:
            self._set_fitted(offset, scale, *exc.networks)
            self.init_ = init
            self._set_stream_state(
                stats,
                int(rng.randint(2**31 - 1)),
                0,
                noise_ratio=_noise_ratio(stats, scale, basis, self.n_components_),
            )
            warnings.warn(
                f"Training was interrupted after {exc.n_iter} epoch(s); the "
                "transformer keeps the weights reached so far (the best ones with "
                "early_stopping=True).",
                UserWarning,
                stacklevel=_training.user_stacklevel(),
            )
            raise KeyboardInterrupt from exc
        except BaseException:
            # Diverged, or interrupted before an epoch ended: nothing of this fit
            # (n_features_in_, input_shape_) may make the estimator look fitted.
            self._reset()
            raise
        self._set_fitted(offset, scale, *networks)
        self.init_ = init
        if search:
            self.reconstruction_r2_ = r2
            self.n_components_scores_ = scores
        self._set_stream_state(
            stats,
            int(rng.randint(2**31 - 1)),
            0,
            noise_ratio=_noise_ratio(stats, scale, basis, self.n_components_),
        )
        return self

    def _fit_networks(
        self,
        X,
        input_shape,
        train_rows,
        val_rows,
        *,
        n_components,
        basis,
        loss,
        scaling,
        noise,
        seed,
        rng,
    ):
        """Build and train one encoder-decoder pair.

        Returns ``(encoder, decoder, hidden, history, n_iter)``; a
        ``TrainingInterrupted`` carries the same in its ``networks``.
        """
        encoder, decoder, hidden = self._build_networks(
            X.shape[1],
            input_shape,
            self._output_activation(scaling, basis is not None),
            seed=seed,
            n_components=n_components,
            basis=basis,
        )
        epochs = self.epochs
        if epochs == "auto":
            epochs = _auto_epochs(train_rows.n)
        trainer = self._make_trainer(
            encoder,
            decoder,
            loss,
            min(self._batch_size(train_rows.n), train_rows.n),
            seed=int(rng.randint(2**31 - 1)),
        )
        try:
            history, n_iter = _training.train(
                trainer,
                train_rows,
                val_rows,
                epochs=epochs,
                noise=noise,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                rng=rng,
                callbacks=self.callbacks,
                verbose=self.verbose,
                chunk_rows=_chunk_rows(X),
            )
        except _training.TrainingInterrupted as exc:
            exc.networks = (encoder, decoder, hidden, exc.history, exc.n_iter)
            raise
        if trainer.structure_weight > 0:
            try:
                history.update(
                    self._tune_decoder(
                        encoder,
                        decoder,
                        loss,
                        trainer.batch_size,
                        X,
                        train_rows,
                        val_rows,
                        epochs,
                        rng,
                    )
                )
            except _training.TrainingInterrupted as exc:
                exc.networks = (encoder, decoder, hidden, history, n_iter)
                raise
        return encoder, decoder, hidden, history, n_iter

    def _tune_decoder(
        self, encoder, decoder, loss, batch_size, X, train_rows, val_rows, epochs, rng
    ):
        """Train the decoder alone on the structured codes; return its history.

        Training with the structure term spends part of the decoder's capacity
        on codes that are still moving; once the encoder is fixed, a quarter of
        the epochs for the decoder alone lowers the reconstruction error (MNIST
        10k, seed 0: held-out MSE 0.0372 without this phase, 0.0369 with it).
        The codes, and so ``transform``, are unchanged.
        """
        # Setting trainable back to True would unfreeze every nested layer,
        # those a user froze in their encoder too: each layer's flag is kept.
        flags = [(layer, layer.trainable) for layer in encoder._flatten_layers()]
        encoder.trainable = False
        try:
            trainer = self._make_trainer(
                encoder,
                decoder,
                loss,
                batch_size,
                seed=int(rng.randint(2**31 - 1)),
                noisy=False,
                structure=False,
            )
            history, _ = _training.train(
                trainer,
                train_rows,
                val_rows,
                epochs=max(1, epochs // 4),
                noise=0.0,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                rng=rng,
                callbacks=None,
                verbose=self.verbose,
                chunk_rows=_chunk_rows(X),
                warn_convergence=False,
            )
        finally:
            for layer, trainable in flags:
                layer.trainable = trainable
        return {f"decoder_{key}": value for key, value in history.items()}

    def _attach_graphs(self, seed, *row_sets):
        """Give each in-memory row set its neighbour graph, for the structure term.

        ``seed`` seeds the approximate search used for large row sets.
        """
        if self.structure_weight == 0:
            return
        for rows in row_sets:
            if rows is not None:
                rows.graph = neighbour_graph(
                    rows.X.reshape(rows.n, -1), self.n_neighbors, random_state=seed
                )

    def _structure_input(self, X):
        """X as the structure term needs it: every row in memory.

        The neighbour graph and the edge batches index all rows, so a memmap or
        a sliceable array-like is read whole; a sparse X, which that would
        densify, is refused.
        """
        if self.structure_weight == 0 or not _streaming.is_streamable(X):
            return X
        if sp.issparse(X):
            raise ValueError(
                "Expected a dense X for structure_weight > 0: the neighbour "
                "graph and the training batches need every row in memory, and "
                "sparse input would be densified whole. Received: X of type "
                f"{type(X).__name__} (sparse) with "
                f"structure_weight={self.structure_weight}"
            )
        return np.asarray(X[:])

    def _search_n_components(self, fit_networks, basis, train_rows, val_rows):
        """The smallest code whose validation R² reaches ``n_components``.

        PCA's validation R² for every size bounds the search and guides it (see
        :func:`skae._pca_init.select_n_components`): a few fits, not one per
        size. Returns ``(networks, r2, scores)``.
        """
        target = float(self.n_components)
        if basis is None:
            basis = _pca_basis(train_rows, None, 0)
        baseline, sst = pca_r2_curve(
            basis, val_rows.batches(_INFERENCE_BATCH), return_sst=True
        )
        fitted = {}

        def fit_and_score(k):
            fitted[k] = networks = fit_networks(k)
            sse = 0.0
            for xb in val_rows.batches(_INFERENCE_BATCH):
                codes = networks[0](xb, training=False)
                rebuilt = np.asarray(networks[1](codes, training=False), np.float64)
                sse += float(np.sum((xb.astype(np.float64) - rebuilt) ** 2))
            # Constant validation rows have nothing to explain: PCA's curve
            # counts them as fully explained too.
            return 1.0 - sse / sst if sst > 0 else 1.0

        result = select_n_components(target, fit_and_score, baseline=baseline)
        k = int(result.n_components)
        if k not in fitted:
            result.scores[k] = fit_and_score(k)
        if result.scores[k] < target:
            # The search ends at PCA's size for the target, which the PCA
            # start (kept as an early-stopping candidate) reaches when the
            # loss is reconstruction alone. It falls short when PCA itself
            # does at every size (few training rows), or when a structure
            # term or code_l1 keeps weights that rebuild worse.
            if baseline[k - 1] < target:
                why = (
                    "PCA does not reach it either, at any size that "
                    f"{train_rows.n} training rows allow"
                )
            else:
                why = (
                    "loss terms other than the reconstruction "
                    "(structure_weight, code_l1) trade it away"
                )
            warnings.warn(
                "No code size reached a validation reconstruction R² of "
                f"n_components={self.n_components!r}: n_components_={k}, the "
                f"largest size searched, reaches {result.scores[k]:.4g}; {why}. "
                "Pass an int n_components to choose the size.",
                UserWarning,
                stacklevel=_training.user_stacklevel(),
            )
        return fitted[k], result.scores[k], dict(result.scores)

    def _check_callbacks(self):
        # Checked before any work, rather than when training first calls one.
        callbacks = list(self.callbacks or [])
        if not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
            raise TypeError(
                "Expected callbacks to be a list of keras.callbacks.Callback. "
                f"Received: callbacks={self.callbacks!r}"
            )

    def _check_network_params(self):
        # bool is an Integral, so the constraints take True for one component.
        if isinstance(self.n_components, bool):
            raise ValueError(
                "Expected n_components to be a positive int, a float in (0, 1) or "
                f"None. Received: n_components={self.n_components!r}"
            )
        # Keras' own error names neither the parameter nor, for three of
        # them, which one; and it would come only after the neighbour graph.
        for name in ("activation", "code_activation", "output_activation"):
            value = getattr(self, name)
            if value is None or (name == "output_activation" and value == "auto"):
                continue
            try:
                keras.activations.get(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"Expected {name} to be the name of a Keras activation, such "
                    f"as 'relu', or None. Received: {name}={value!r}"
                ) from exc

    def _resolve_init(self, loss):
        """The start used: "pca" or "random"; "auto" picks, "pca" is checked.

        "auto" starts at PCA where the network can (dense, linear output, mse)
        and the code is for reconstruction, wider than 3 or a fraction of
        variance; 2-D and 3-D codes are mostly for looking at, and there a
        random start measured better neighbourhoods (MNIST 10k 2-D kNN 0.80 vs
        0.78) at the same reconstruction error.
        """
        problems = {
            "architecture": self.architecture != "dense",
            "encoder": self.encoder is not None,
            "decoder": self.decoder is not None,
            "loss": loss != "mse",
            "code_activation": self.code_activation not in (None, "linear"),
            "output_activation": self.output_activation not in ("auto", None, "linear"),
        }
        bad = [name for name, wrong in problems.items() if wrong]
        if self.init == "auto":
            wide = _is_fraction(self.n_components) or (
                isinstance(self.n_components, Integral) and self.n_components > 3
            )
            return "pca" if wide and not bad else "random"
        if self.init == "pca" and bad:
            received = ", ".join(
                f"{name}={loss if name == 'loss' else getattr(self, name)!r}"
                for name in bad
            )
            raise ValueError(
                "Expected architecture='dense', no user encoder or decoder, "
                "loss='mse' and linear code and output activations for "
                "init='pca' (a linear path set to PCA plus a correction). "
                f"Received: {received}"
            )
        return self.init

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train on one chunk of data: one epoch over X, as ``IncrementalPCA``.

        The first call builds the networks from X's shape; later calls continue
        from the weights reached (after :meth:`fit` too). The input scaling
        statistics (``input_offset_``, ``input_scale_``) are those of all the
        rows seen so far: when a chunk changes them, the first and last layers'
        weights are re-expressed for the new scaling, so the transformer's maps
        in the input's units are unchanged by the update itself (for networks
        that start and end with Dense layers, as the built-in dense ones; other
        networks see the new scaling as is and adapt to it while training). The
        optimizer's state carries over between calls in one process (not
        through pickling). Later calls train with the current ``loss``,
        ``optimizer``, ``learning_rate``, ``batch_size``, ``noise``, ``masking``
        and ``structure_weight``, with a new optimizer when :meth:`set_params`
        changed one of them. The networks keep the shape the first call gave
        them: a changed ``n_components`` or ``hidden_layer_sizes`` raises
        ``ValueError``, as ``IncrementalPCA`` does for ``n_components``
        (:meth:`fit` starts over).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            One chunk of training data; memmaps, sparse matrices and sliceable
            array-likes are read a batch at a time.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The transformer, trained on one more chunk.

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(300, 6)
        >>> ae = AutoencoderTransformer(random_state=0)
        >>> for chunk in np.array_split(X, 3):
        ...     ae = ae.partial_fit(chunk)
        >>> ae.n_iter_, ae.n_samples_seen_
        (3, 300)
        """
        first = not self.__sklearn_is_fitted__()
        loss = "mse" if self.loss == "auto" else self.loss
        self._check_callbacks()
        if first:
            self._reset()
            self._check_network_params()
            self._resolve_init(loss)
            if _is_fraction(self.n_components):
                raise ValueError(
                    "Expected an int n_components for partial_fit: the search "
                    "for a fraction of variance needs all the data at once. "
                    f"Received: n_components={self.n_components!r}"
                )
        else:
            self._check_same_networks()
        X, sample_shape = self._validate_X(X, reset=first)
        X = self._structure_input(X)
        scaling = self._resolve_scaling(X, loss)
        state = self.__dict__.get("_stream")
        stats = _streaming.ScalingStats()
        if state is not None:
            stats.__dict__.update(copy.deepcopy(state["stats"]))
        stats = _scaling_stats(X, stats)
        offset, scale = stats.result(scaling)
        self._check_scaled_range(stats, offset, scale, loss)
        if state is None:
            init_rng = check_random_state(self.random_state)
            state = {
                "seed": int(init_rng.randint(2**31 - 1 - 1000)),
                "step": 0,
                "noise_ratio": 1.0,
            }
        if first:
            input_shape = self._resolve_input_shape(X.shape[1], sample_shape)
            basis = None
            if self._resolve_init(loss) == "pca":
                chunk = _row_set(X, np.arange(X.shape[0]), offset, scale, input_shape)
                basis = _pca_basis(chunk, self.n_components, state["seed"])
                # The first chunk's residual share sets the noise for all.
                state["noise_ratio"] = _noise_ratio(
                    stats, scale, basis, self.n_components
                )
            encoder, decoder, hidden = self._build_networks(
                X.shape[1],
                input_shape,
                self._output_activation(scaling, basis is not None),
                seed=state["seed"],
                n_components=self.n_components,
                basis=basis,
            )
            self.input_shape_ = input_shape
            self._sample_shape = sample_shape
            history, n_iter = {"loss": []}, 0
        else:
            encoder, decoder, hidden = (
                self.encoder_,
                self.decoder_,
                self.hidden_layer_sizes_,
            )
            history, n_iter = self.history_, self.n_iter_
            # A failed chunk must leave the transformer as it was before it:
            # everything from the scaling fold on is undone on failure.
            saved = encoder.get_weights(), decoder.get_weights()
        chunk_rows = _chunk_rows(X)
        try:
            if not first:
                _fold_scaling(
                    encoder,
                    decoder,
                    self.input_offset_,
                    self.input_scale_,
                    offset,
                    scale,
                )
            rows = _row_set(X, np.arange(X.shape[0]), offset, scale, self.input_shape_)
            # The structure term of a chunk preserves the chunk's neighbours.
            self._attach_graphs(state["seed"], rows)
            # The trainer (and its optimizer's moments) carries over unless
            # set_params changed what it was made from: then a new one, as a
            # pickled copy, which has none, would make.
            settings = self._trainer_settings(loss)
            trainer, made_from = self.__dict__.get("_trainer", (None, None))
            if trainer is None or made_from != settings:
                # Not clipped to this chunk's rows: later chunks may be larger.
                trainer = self._make_trainer(
                    encoder, decoder, loss, self._batch_size(rows.n), seed=state["seed"]
                )
            chunk_history, _ = _training.train(
                trainer,
                rows,
                None,
                epochs=1,
                noise=self._noise_std(stats, scale) * state.get("noise_ratio", 1.0),
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                # One stream of noise across calls; each chunk its own shuffle.
                rng=np.random.RandomState([state["seed"], state["step"]]),
                callbacks=self.callbacks,
                verbose=self.verbose,
                chunk_rows=chunk_rows,
                first_step=state["step"],
                warn_convergence=False,
            )
        except BaseException as exc:
            if first:
                self._reset()
            else:
                encoder.set_weights(saved[0])
                decoder.set_weights(saved[1])
                # The optimizer's moments saw the failed steps.
                self.__dict__.pop("_trainer", None)
            if isinstance(exc, _training.TrainingInterrupted):
                # Interrupted after its one epoch: still the user's Ctrl-C.
                raise KeyboardInterrupt from exc
            raise
        history = {"loss": history.get("loss", []) + chunk_history["loss"]}
        self._set_fitted(offset, scale, encoder, decoder, hidden, history, n_iter + 1)
        if first:
            self.init_ = "pca" if basis is not None else "random"
        steps = trainer.steps_per_epoch(rows, chunk_rows)
        self._set_stream_state(
            stats,
            state["seed"],
            state["step"] + steps,
            noise_ratio=state.get("noise_ratio", 1.0),
        )
        self._trainer = trainer, settings
        return self

    def _trainer_settings(self, loss):
        # The parameters _make_trainer reads ("auto" batch_size as such: each
        # chunk would resolve it afresh).
        return (
            loss,
            self.optimizer,
            self.learning_rate,
            self.batch_size,
            self.noise,
            self.masking,
            self.structure_weight,
        )

    def _check_same_networks(self):
        # Later calls train the networks the first built; like IncrementalPCA,
        # refuse a changed n_components rather than ignore it.
        changed = []
        if (
            isinstance(self.n_components, Integral)
            and self.n_components != self.n_components_
        ):
            changed.append(f"n_components={self.n_components!r}")
        if (
            not isinstance(self.hidden_layer_sizes, str)
            and self.hidden_layer_sizes_ is not None
            and tuple(self.hidden_layer_sizes) != self.hidden_layer_sizes_
        ):
            changed.append(f"hidden_layer_sizes={self.hidden_layer_sizes!r}")
        if changed:
            raise ValueError(
                "Expected the fitted networks' n_components="
                f"{self.n_components_} and hidden_layer_sizes="
                f"{self.hidden_layer_sizes_} for partial_fit, which continues "
                "training them; call fit to build new ones. Received: "
                + ", ".join(changed)
            )

    def _set_stream_state(self, stats, seed, step, noise_ratio):
        # What partial_fit continues from, as plain data that pickles and
        # saves: the running scaling statistics (so that partial_fit after fit
        # updates fit's) and the position in the random stream. The optimizer
        # and compiled graphs are kept only in memory, in _trainer.
        self.n_samples_seen_ = int(stats.n_samples_seen_)
        self._stream = {
            "stats": dict(vars(stats)),
            "seed": seed,
            "step": step,
            "noise_ratio": noise_ratio,
        }

    def _check_scaled_range(self, stats, offset, scale, loss):
        with np.errstate(over="ignore", invalid="ignore"):
            lo = float(np.min((stats.data_min_ - offset) / scale))
            hi = float(np.max((stats.data_max_ - offset) / scale))
        # The networks and their squared-error loss compute in float32, and
        # the statistics (variance, noise) in float64: past either, training
        # could only report a divergence.
        limit = math.sqrt(np.finfo(np.float32).max)
        finite = np.all(np.isfinite(stats.var_)) and np.all(np.isfinite(scale))
        if not finite or max(abs(lo), abs(hi)) > limit:
            raise ValueError(
                f"Expected scaled values within ±{limit:.2g} (squared, within "
                "float32, in which the networks compute) and a finite variance. "
                "Received: X with values in "
                f"[{float(np.min(stats.data_min_)):.3g}, "
                f"{float(np.max(stats.data_max_)):.3g}] and "
                f"scaling={self.scaling!r}; divide X by a constant first."
            )
        if loss == "binary_crossentropy" and (lo < 0 or hi > 1):
            raise ValueError(
                "Expected scaled inputs in [0, 1] for loss='binary_crossentropy'. "
                f"Received: scaling={self.scaling!r} giving values in "
                f"[{lo:.3g}, {hi:.3g}]; use scaling='minmax'."
            )

    def _noise_std(self, stats, scale, basis=None, n_components=None):
        """Input noise std: ``noise`` times an RMS of the scaled data.

        Relative to the data's RMS, so one setting suits any units. With a PCA
        start, relative to the RMS that PCA's ``n_components`` axes leave
        unexplained: the detail the code has to add. Noise of the whole data's
        scale would drown that detail in wide codes (measured on digits with a
        32-unit code: MSE 1.84 against 0.57 with this, and PCA's 0.69).
        """
        return self.noise * _noise_rms(stats, scale, basis, n_components)

    def _output_activation(self, scaling, pca_start=False):
        if self.output_activation == "auto":
            # PCA's reconstruction is unbounded: a PCA start is linear.
            if pca_start:
                return None
            return "sigmoid" if scaling == "minmax" else None
        return self.output_activation

    def _reset(self):
        # A failed or interrupted refit must not leave attributes of two fits.
        for name in [
            k for k in vars(self) if k.endswith("_") and not k.startswith("_")
        ]:
            delattr(self, name)
        self.__dict__.pop("_inference", None)
        self.__dict__.pop("_stream", None)
        self.__dict__.pop("_trainer", None)

    def _set_fitted(self, offset, scale, encoder, decoder, hidden, history, n_iter):
        self.encoder_ = encoder
        self.decoder_ = decoder
        self.input_offset_ = offset
        self.input_scale_ = scale
        self.hidden_layer_sizes_ = None if hidden is None else tuple(hidden)
        self.n_components_ = int(encoder.output_shape[-1])
        self.history_ = history if history is not None else {}
        self.n_iter_ = n_iter
        # Created here, filled on first use: transform must not change __dict__.
        # partial_fit trains the same models again: their compiled float64
        # copies only need the new weights, not a new trace.
        cache = self.__dict__.get("_inference", {})
        self._inference = {}
        for name, (fn, dtype, runner, source) in cache.items():
            if source is getattr(self, name):
                if runner is not source:
                    runner.set_weights(source.get_weights())
                self._inference[name] = (fn, dtype, runner, source)

    def _resolve_scaling(self, X, loss):
        if self.scaling != "auto":
            return self.scaling
        return "minmax" if loss == "binary_crossentropy" else "center"

    def _batch_size(self, n_rows):
        if self.batch_size == "auto":
            return _auto_batch_size(n_rows)
        return self.batch_size

    def _make_trainer(
        self, encoder, decoder, loss, batch_size, *, seed, noisy=None, structure=True
    ):
        return _training.Trainer(
            encoder,
            decoder,
            loss=loss,
            optimizer=self._make_optimizer(),
            batch_size=batch_size,
            noisy=self.noise > 0 if noisy is None else noisy,
            masking=self.masking,
            seed=seed,
            structure_weight=self.structure_weight if structure else 0.0,
        )

    def _make_optimizer(self):
        try:
            optimizer = keras.optimizers.get(
                {
                    "class_name": self.optimizer,
                    # A fixed name: Keras would number it (adam_1, adam_2, ...),
                    # and TensorFlow caches a kernel per distinct variable name
                    # for good, so every fit leaked ~35 KB per optimizer variable.
                    "config": {
                        # Keras takes a Python float only (not 1 or a
                        # NumPy float), and would blame the optimizer.
                        "learning_rate": float(self.learning_rate),
                        "name": "optimizer",
                    },
                }
            )
            # The base class has no update rule (it failed only inside the
            # compiled epoch), and wrappers need an inner optimizer (KeyError).
            if type(optimizer) is keras.optimizers.Optimizer:
                raise ValueError("an abstract optimizer")
        except Exception as exc:
            raise ValueError(
                "Expected the name of a Keras optimizer, such as 'adam' or 'sgd'. "
                f"Received: optimizer={self.optimizer!r}"
            ) from exc
        return optimizer

    def _check_hidden_layer_sizes(self, hidden):
        hidden = tuple(hidden)
        if not all(
            isinstance(h, Integral) and not isinstance(h, bool) and h >= 1
            for h in hidden
        ):
            raise ValueError(
                "Expected hidden_layer_sizes to be 'auto' or a sequence of positive "
                f"integers. Received: hidden_layer_sizes={self.hidden_layer_sizes!r}"
            )
        return tuple(int(h) for h in hidden)

    def _accepts_images(self):
        return self.architecture == "conv" or self.input_shape is not None

    def _validate_X(self, X, *, reset):
        """``validate_data`` for rows or images: return ``(X_flat, sample_shape)``.

        Images are flattened first, so that ``n_features_in_`` counts values
        (784 for 28x28 images) and scaling works per value as for rows.
        """
        X = _streaming.dense_frame(X)
        if _streaming.is_streamable(X):
            return self._validate_streamed(X, reset=reset)
        kwargs = {"dtype": [np.float64, np.float32], "reset": reset}
        if reset:
            kwargs["ensure_min_samples"] = 2
        ndim = getattr(X, "ndim", None)
        if ndim is None and (isinstance(X, (list, tuple)) or hasattr(X, "__array__")):
            try:
                ndim = np.asarray(X).ndim
            except ValueError:
                ndim = None  # Ragged nested lists: validate_data explains.
        if not isinstance(ndim, Integral):
            ndim = 2
        sample_shape = None
        if ndim > 2:
            if not self._accepts_images():
                raise ValueError(
                    "Expected a 2-D X of shape (n_samples, n_features). Received: "
                    f"X with shape {np.shape(X)}. For images, pass "
                    "input_shape=(height, width[, channels]) or architecture='conv'."
                )
            X = check_array(
                X,
                allow_nd=True,
                dtype=kwargs["dtype"],
                ensure_min_samples=kwargs.get("ensure_min_samples", 1),
                input_name="X",
            )
            sample_shape = X.shape[1:]
            if not reset and not _same_image_shape(sample_shape, self.input_shape_):
                raise ValueError(
                    f"Expected images of shape {self.input_shape_}, as in fit, or "
                    f"rows of {self.n_features_in_} values. Received: X with shape "
                    f"{X.shape}"
                )
            X = X.reshape(len(X), -1)
        X = validate_data(self, X, **kwargs)
        return X, sample_shape or (X.shape[1],)

    def _validate_streamed(self, X, *, reset):
        # validate_data would copy X whole (and densify nothing: it rejects
        # sparse input); X is checked from its shape and dtype here, and each
        # batch for finiteness as it is read.
        X = _streaming.check_streamable(
            X,
            n_features=None if reset else self.n_features_in_,
            ensure_min_samples=2 if reset else 1,
        )
        _check_feature_names(self, X, reset=reset)
        if reset:
            self.n_features_in_ = int(X.shape[1])
        return X, (int(X.shape[1]),)

    def _resolve_input_shape(self, n_features, sample_shape):
        """Shape of one sample as the networks see it."""
        if self.input_shape is None:
            return tuple(sample_shape)
        shape = tuple(self.input_shape)
        if not shape or not all(
            isinstance(d, Integral) and not isinstance(d, bool) and d >= 1
            for d in shape
        ):
            raise ValueError(
                "Expected input_shape to be None or a tuple of positive integers, "
                "such as (28, 28) or (28, 28, 1). Received: "
                f"input_shape={self.input_shape!r}"
            )
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != n_features:
            received = f"X with {n_features} features"
            if len(sample_shape) > 1:
                received += f" (samples of shape {tuple(sample_shape)})"
            raise ValueError(
                f"Expected X with {math.prod(shape)} values per sample for "
                f"input_shape={shape}. Received: {received}"
            )
        if not _same_image_shape(sample_shape, shape):
            raise ValueError(
                f"Expected images of shape {shape} for input_shape={shape}, or "
                f"rows of {n_features} values. Received: X with samples of shape "
                f"{tuple(sample_shape)}"
            )
        return shape

    def _build_networks(
        self,
        n_features,
        input_shape,
        output_activation,
        seed,
        *,
        n_components,
        basis=None,
    ):
        """Return ``(encoder, decoder, hidden_layer_sizes)``; user networks first.

        With ``basis`` (init="pca"), the dense networks start at PCA's first
        ``n_components`` axes.
        """
        # Keras takes Python numbers only (here and code_l1 below), while
        # GridSearchCV over np.arange or np.logspace hands out NumPy ones.
        if isinstance(n_components, Integral):
            n_components = int(n_components)
        encoder = decoder = hidden = None
        if self.encoder is not None:
            encoder = _user_network(
                self.encoder, "encoder", input_shape, n_components, seed=seed
            )
            code_shape = encoder.output_shape
            if (
                not isinstance(code_shape, tuple)
                or len(code_shape) != 2
                or code_shape[1] is None
                or code_shape[1] != (n_components or code_shape[1])
            ):
                raise ValueError(
                    "Expected the encoder to output codes of shape "
                    f"(None, {n_components or 'n_components'}). Received: "
                    f"encoder with output_shape={code_shape}"
                )
            n_components = int(code_shape[1])
        if self.encoder is None or self.decoder is None:
            if n_components is None and self.architecture == "dense":
                raise ValueError(
                    "Expected an int n_components for architecture='dense'; None "
                    "(the network's own code width) needs architecture='conv' or "
                    "an encoder. Received: n_components=None"
                )
            hidden = self.hidden_layer_sizes
            if isinstance(hidden, str):
                hidden = (
                    CONV_AUTO_FILTERS
                    if self.architecture == "conv"
                    else auto_hidden_layer_sizes(
                        n_features,
                        n_components,
                        structure=self.structure_weight > 0,
                    )
                )
            hidden = self._check_hidden_layer_sizes(hidden)
            build = build_conv if self.architecture == "conv" else build_dense
            if basis is not None:
                build = functools.partial(
                    build_pca_dense,
                    components=basis.components[:n_components],
                    mean=basis.mean,
                )
            built_encoder, built_decoder = build(
                input_shape,
                n_components,
                hidden,
                activation=self.activation,
                code_activation=self.code_activation,
                output_activation=output_activation,
                code_l1=float(self.code_l1),
                normalization=self.normalization,
                seed=seed,
            )
            if encoder is None:
                encoder = built_encoder
                n_components = int(encoder.output_shape[-1])
            decoder = built_decoder
        if self.decoder is not None:
            decoder = _user_network(
                self.decoder, "decoder", input_shape, n_components, seed=seed + 1
            )
            if decoder.output_shape != (None, *input_shape):
                raise ValueError(
                    "Expected the decoder to output reconstructions of shape "
                    f"{(None, *input_shape)}, the shape of the input. Received: "
                    f"decoder with output_shape={decoder.output_shape}"
                )
        if self.encoder is not None and self.decoder is not None:
            hidden = None
        return encoder, decoder, hidden

    def _split_validation(self, rows, rng, search=False):
        n_val = round(self.validation_fraction * rows.shape[0])
        n_train = 1
        if search:
            # The search's R² divides by the validation rows' spread, which
            # one row does not have: every code size would score a perfect 1.
            # Its PCA basis needs two training rows as well.
            n_val, n_train = max(n_val, 2), 2
        if n_val < 1 or rows.shape[0] - n_val < n_train:
            purpose = (
                f"two for training and two for the R² of "
                f"n_components={self.n_components!r}"
                if search
                else "one for training and one for validation"
            )
            raise ValueError(
                "Expected validation_fraction to leave at least "
                f"{purpose}. Received: "
                f"validation_fraction={self.validation_fraction} with "
                f"n_samples={rows.shape[0]}"
            )
        order = rng.permutation(rows.shape[0])
        return rows[order[n_val:]], rows[order[:n_val]]

    # -- inference ---------------------------------------------------------

    def transform(self, X):
        """Encode X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            Data to encode, rows or images as in ``fit``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The codes, in X's float dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(100, 6)
        >>> ae = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> ae.transform(X[:3]).shape
        (3, 2)
        >>> ae.transform(X.astype(np.float32)).dtype
        dtype('float32')
        """
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        return self._run("encoder_", X, self.input_offset_, self.input_scale_, None)

    def inverse_transform(self, X):
        """Decode codes back to the input space, in the input's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, e.g. from ``transform`` or any grid of points.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_) or \
(n_samples, *image_shape)
            The reconstructions, in X's float dtype: images of the shape ``fit``
            was given when it was given images, else rows.

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(100, 6)
        >>> ae = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> grid = [[x, y] for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)]
        >>> ae.inverse_transform(grid).shape
        (9, 6)
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"Expected codes of shape (n_samples, {self.n_components_}). "
                f"Received: X.shape={X.shape}"
            )
        X_original = self._run(
            "decoder_", X, None, None, (self.input_offset_, self.input_scale_)
        )
        return X_original.reshape(len(X_original), *self._sample_shape)

    def score_samples(self, X):
        """Negative mean squared reconstruction error of each sample.

        Higher is better: anomalies reconstruct badly and score low.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            ``-mean((x - inverse_transform(transform(x))) ** 2)`` per row, in
            the input's units, computed in float64 for any input dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(100, 6)
        >>> ae = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> scores = ae.score_samples(X)
        >>> scores.shape, bool((scores <= 0).all())
        ((100,), True)
        """
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        offset, scale = self.input_offset_, self.input_scale_
        scores = np.empty(X.shape[0])
        for start, batch in _row_batches(X):
            codes = self._run("encoder_", batch, offset, scale, None)
            reconstructed = self._run("decoder_", codes, None, None, (offset, scale))
            # In float64: float32 squares overflow to inf from about 1e19.
            error = np.subtract(batch, reconstructed, dtype=np.float64)
            scores[start : start + len(batch)] = -np.mean(error**2, axis=1)
        return scores

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

        Examples
        --------
        >>> import numpy as np
        >>> from skae import AutoencoderTransformer
        >>> X = np.random.RandomState(0).rand(100, 6)
        >>> ae = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> bool(np.isclose(ae.score(X), ae.score_samples(X).mean()))
        True
        """
        return float(np.mean(self.score_samples(X)))

    # -- persistence -------------------------------------------------------

    def save(self, path):
        """Save the fitted transformer to one file, without pickle.

        The file holds the parameters, the fitted state and the Keras encoder
        and decoder (in Keras' own ``.keras`` format); :func:`skae.load` reads it
        back in any process. The file is replaced atomically: a failed save
        leaves an existing file at ``path`` as it was. See
        :func:`skae.persistence.save` for what is stored.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write the file; by convention it ends in ``.skae``.

        Returns
        -------
        path : str
            The path written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the transformer is not fitted.

        See Also
        --------
        skae.load : Read a saved transformer.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import skae
        >>> X = np.random.RandomState(0).rand(50, 4)
        >>> ae = skae.AutoencoderTransformer(hidden_layer_sizes=(8,), epochs=2,
        ...                                  random_state=0).fit(X)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = ae.save(os.path.join(tmp, "ae.skae"))
        ...     loaded = skae.load(path)
        >>> np.array_equal(loaded.transform(X), ae.transform(X))
        True
        """
        from .persistence import save

        return save(self, path)

    def _run(self, model_name, X, offset, scale, unscale):
        """Apply a fitted model batch by batch, never holding a full scaled copy."""
        fn, dtype, *_ = self._inference_fn(model_name)
        model = getattr(self, model_name)
        # Rows in and out: images are reshaped for the network and flattened back.
        in_shape = model.input_shape[1:]
        out = np.empty(
            (X.shape[0], math.prod(model.output_shape[1:])), dtype=_out_dtype(X)
        )
        for start, batch in _row_batches(X):
            if offset is not None:
                batch = np.subtract(batch, offset)
                batch /= scale
            rows = len(batch)
            batch = batch.reshape(rows, *in_shape)
            result = fn(tf.constant(batch, dtype=dtype)).numpy().reshape(rows, -1)
            if unscale is not None:
                result = result * unscale[1] + unscale[0]
            out[start : start + rows] = result
        return out

    def _inference_fn(self, model_name):
        # A compiled function with a fixed signature: Keras' predict() costs tens
        # of milliseconds per call, this a fraction of one. It runs a float64
        # copy of the network: float32 CPU kernels round a row differently
        # depending on the batch's size and the row's place in it (~1e-7), so a
        # sample's code would depend on which other samples came with it, while
        # float64 rounding (~1e-16) is far below any tolerance that matters.
        cache = self.__dict__.setdefault("_inference", {})
        if model_name not in cache:
            model = getattr(self, model_name)
            runner, dtype = _float64_copy(model), tf.float64
            if runner is None:
                runner, dtype = model, tf.float32
            signature = [tf.TensorSpec([None, *model.input_shape[1:]], dtype)]
            fn = tf.function(
                lambda x: runner(x, training=False),
                input_signature=signature,
                autograph=False,
            )
            cache[model_name] = (fn, dtype, runner, model)
        return cache[model_name]

    def __getstate__(self):
        # Compiled functions do not pickle; they are rebuilt on first use.
        state = super().__getstate__()
        state.pop("_inference", None)
        state.pop("_trainer", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "encoder_" in state:
            self._inference = {}

    def __sklearn_is_fitted__(self):
        # validate_data sets n_features_in_ before training can fail; only a
        # completed (or cleanly interrupted) training sets n_iter_.
        return "n_iter_" in vars(self)

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = False
        # The structure term needs every row in memory, dense.
        tags.input_tags.sparse = self.structure_weight == 0
        tags.input_tags.three_d_array = self._accepts_images()
        return tags


def _is_fraction(n_components):
    return isinstance(n_components, Real) and not isinstance(n_components, Integral)


def _pca_basis(rows, n_components, seed):
    """PCA of the scaled training rows, in memory or a chunk at a time."""
    if isinstance(rows, _training.ArrayRows):
        return pca_basis(rows.X, n_components, random_state=seed)
    from sklearn.decomposition import IncrementalPCA
    from sklearn.utils import Bunch

    n_features = math.prod(rows.input_shape)
    k = min(n_components or n_features, rows.n, n_features)
    ipca = IncrementalPCA(n_components=k)
    chunk_rows = max(k, _streaming.auto_batch_rows(n_features))
    starts = list(range(0, rows.n, chunk_rows))
    # IncrementalPCA takes at least k rows a call: a short tail joins the
    # chunk before it.
    if len(starts) > 1 and rows.n - starts[-1] < k:
        starts.pop()
    for start, stop in zip(starts, [*starts[1:], rows.n], strict=True):
        chunk = rows.read(np.arange(start, stop))
        ipca.partial_fit(chunk.reshape(len(chunk), n_features))
    pad = (n_components or k) - k
    return Bunch(
        components=np.vstack([ipca.components_, np.zeros((pad, n_features))]),
        mean=ipca.mean_,
        explained_variance=np.concatenate([ipca.explained_variance_, np.zeros(pad)]),
        # With ddof=1, as PCA's explained variances.
        total_variance=float(np.sum(ipca.var_) * rows.n / max(rows.n - 1, 1)),
    )


def _scaling_stats(X, stats=None):
    """Update ``stats`` (or new ones) with X's rows, a batch at a time if streamed."""
    stats = _streaming.ScalingStats() if stats is None else stats
    for _, batch in _row_batches(X):
        stats.update(batch)
    return stats


def _row_batches(X):
    """``(start, dense batch)`` of X: slices in memory, reads when streamed."""
    if _streaming.is_streamable(X):
        # Rows of ~8 MB: wide rows must not make a batch of 4096 huge.
        rows = min(
            _INFERENCE_BATCH, max(1, _streaming.auto_batch_rows(X.shape[1]) // 4)
        )
        yield from _streaming.iter_batches(X, rows)
        return
    for start in range(0, X.shape[0], _INFERENCE_BATCH):
        yield start, X[start : start + _INFERENCE_BATCH]


def _out_dtype(X):
    return _streaming.float_dtype(X) if _streaming.is_streamable(X) else X.dtype


def _row_set(X, rows, offset, scale, input_shape):
    """Training or validation rows: scaled in memory, or read a chunk at a time."""
    if _streaming.is_streamable(X):
        return _training.StreamedRows(X, rows, offset, scale, input_shape)
    Xs = ((X[rows] - offset) / scale).astype(np.float32)
    return _training.ArrayRows(Xs.reshape(len(rows), *input_shape))


def _chunk_rows(X):
    # Streamed rows are read about 32 MB at a time; in memory, all at once.
    if _streaming.is_streamable(X):
        return _streaming.auto_batch_rows(X.shape[1])
    return None


def _foldable_layers(encoder, decoder):
    """The Dense layers that read the input and write the output, or None.

    A change of input scaling can be folded into exactly these: every path
    from the input starts with a Dense layer (after flattening), every path to
    the output ends with a linear Dense layer (before summing or reshaping).
    """
    reshaping = (keras.layers.Flatten, keras.layers.Reshape)
    sources, first = {id(encoder.inputs[0])}, []
    for layer in encoder.layers[1:]:
        if not any(id(t) in sources for t in keras.tree.flatten(layer.input)):
            continue
        if isinstance(layer, reshaping):
            sources.add(id(layer.output))
        elif isinstance(layer, keras.layers.Dense):
            first.append(layer)
        else:
            return None
    targets, last = {id(decoder.outputs[0])}, []
    for layer in reversed(decoder.layers[1:]):
        if id(layer.output) not in targets:
            continue
        if isinstance(layer, (*reshaping, keras.layers.Add)):
            targets.update(id(t) for t in keras.tree.flatten(layer.input))
        elif isinstance(layer, keras.layers.Dense) and layer.activation in (
            keras.activations.linear,
        ):
            last.append(layer)
        else:
            return None
    return (first, last) if first and last else None


def _same_image_shape(received, expected):
    """Whether samples of shape ``received`` fit a network for ``expected``.

    Flat rows fit any shape with as many values, and so does anything fed to
    a network for flat rows; images must have the network's height and width
    (a trailing channel of 1 may be there or not), never merely as many pixels.
    """
    if len(received) < 2 or len(expected) < 2:
        return True

    def without_channel(shape):
        shape = tuple(shape)
        return shape[:-1] if len(shape) == 3 and shape[-1] == 1 else shape

    return without_channel(received) == without_channel(expected)


def _noise_rms(stats, scale, basis=None, n_components=None):
    """The RMS that ``noise`` is relative to (see ``_noise_std``)."""
    if basis is None:
        return float(np.sqrt(np.mean(stats.var_ / scale**2)))
    explained = float(np.sum(basis.explained_variance[:n_components]))
    residual = max(basis.total_variance - explained, 0.0)
    return float(np.sqrt(residual / basis.components.shape[1]))


def _noise_ratio(stats, scale, basis, n_components):
    """The PCA start's noise RMS over the whole data's, kept for partial_fit.

    partial_fit draws its noise relative to the running statistics, times
    this ratio fixed when the networks were built (1 without a PCA start).
    It does not depend on ``noise``, which set_params may change between calls.
    """
    if basis is None:
        return 1.0
    return _noise_rms(stats, scale, basis, n_components) / max(
        _noise_rms(stats, scale), 1e-300
    )


def _fold_scaling(encoder, decoder, old_offset, old_scale, offset, scale):
    """Re-express the first and last layers for a new input scaling, in place.

    With ``x_scaled = (x - offset) / scale``, a first layer ``W x_scaled + b``
    and a reconstruction ``scale * y + offset`` keep their values in the input's
    units when ``W``, ``b`` and the last layers' weights change as below. A
    network that does not start and end with Dense layers (convolutions, most
    user networks) is left as it is: the new scaling applies to it as is, and
    training on the chunk adapts it.
    """
    if np.array_equal(old_offset, offset) and np.array_equal(old_scale, scale):
        return
    layers = _foldable_layers(encoder, decoder)
    if layers is None:
        return
    first, last = layers
    for layer in first:
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        layer.set_weights(
            [
                kernel * (scale / old_scale)[:, None],
                bias + ((offset - old_offset) / old_scale) @ kernel,
            ]
        )
    shift = (old_offset - offset) / scale
    for i, layer in enumerate(last):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        bias = bias * (old_scale / scale) + (shift if i == 0 else 0.0)
        layer.set_weights([kernel * (old_scale / scale), bias])


def _auto_batch_size(n_samples):
    # Small enough for a few hundred updates per epoch budget on small data, large
    # enough that a CPU step is not dominated by per-step overhead.
    return int(min(128, max(32, 2 ** round(np.log2(max(n_samples, 1) / 40)))))


def _auto_epochs(n_samples):
    # A budget of samples seen, not of steps, so fit time grows with the data
    # only once the 20-epoch floor is reached (measured on digits and MNIST 10k:
    # more passes than this no longer improved the held-out 2-D kNN accuracy).
    return int(min(500, max(20, round(250_000 / max(n_samples, 1)))))


def _float64_copy(model):
    """A float64 twin of ``model`` with the same weights, or None if it can't be
    built (a custom layer whose config does not accept a dtype)."""

    def as_float64(layer):
        if isinstance(layer, keras.Model):
            nested = _float64_copy(layer)
            if nested is None:
                raise TypeError(f"no float64 copy of {layer.name}")
            return nested
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    try:
        # Unseeded initializers of user layers draw from Python's random:
        # transform must leave the caller's stream as it was (the weights are
        # overwritten anyway).
        with _seeded_python_random(0):
            twin = keras.models.clone_model(
                model,
                input_tensors=keras.Input(model.input_shape[1:], dtype="float64"),
                clone_function=as_float64,
            )
        twin.set_weights(model.get_weights())
    except Exception:
        return None
    if any(w.dtype != "float64" for w in twin.weights):
        return None
    return twin
