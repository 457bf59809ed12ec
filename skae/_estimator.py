"""AutoencoderTransformer: a Keras autoencoder as a scikit-learn transformer.

The scikit-learn surface (parameters, methods, fitted attributes, tags); the
rest lives in the modules of the contributor guide's layout.
"""

import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from . import _dask, _fit, _input, _params, _serialization
from ._inference import Inference, score_samples
from ._utils import user_stacklevel


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
        sizes dense layers from the number of features, or gives four layers
        of 128 (of four times the code, if wider) with ``structure_weight > 0``
        (:func:`skae.architectures.auto_hidden_layer_sizes`), and (16, 8, 8)
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
        data (all of X), plus a non-linear correction whose last layer starts at
        zero, so the untrained model is exactly PCA (``transform`` returns
        ``PCA(n_components).fit(X).transform(X)``) and training starts from
        PCA's solution. Needs ``architecture="dense"``, no user networks,
        ``loss="mse"`` and linear code and output activations
        (``output_activation="auto"`` then means linear). "random":
        Glorot-uniform weights. "auto": "pca" where it applies, else
        "random". The start used is ``init_``. Whatever the start, ``fit``
        ends by comparing the trained networks with PCA's solution and with
        PCA's codes decoded by a trained decoder (see ``solution_``).

    activation : "auto", str or None, default="auto"
        Activation of the hidden layers, any Keras activation name. None or
        "linear" gives a linear autoencoder, which learns PCA's subspace.
        "auto": "relu", or "gelu" with ``structure_weight > 0``.

    code_activation : str or None, default=None
        Activation of the code layer; None keeps the code linear (unbounded).

    output_activation : "auto", str or None, default="auto"
        Activation of the reconstruction. "auto": "sigmoid" when the input is
        scaled to [0, 1] (``scaling="minmax"``), else linear.

    normalization : {"auto", None, "layer"}, default="auto"
        "auto": None, or "layer" with ``structure_weight > 0``. "layer" puts
        a :class:`keras.layers.LayerNormalization` between each of the
        encoder's hidden layers and its activation (the decoder is left
        plain). It steadies deep encoders under the structure term (MNIST
        10k's held-out 2-D kNN accuracy 0.933 against 0.921 without it; the
        user guide's page on structure).

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
        only (a denoising autoencoder), as a fraction of each feature's own
        standard deviation, so that it means the same whatever the scaling and
        a feature of small spread (a raw table's column in small units) is not
        drowned by noise of another's size. Never applied in ``transform``.
        Denoising regularises the map: on the digits benchmark 0.7 raised
        held-out 2-D kNN accuracy from 0.84 to 0.93 and lowered held-out
        reconstruction error; 0 trains a plain autoencoder. With a PCA start
        (``init_="pca"``) the fraction is of each feature's spread that PCA's
        ``n_components`` axes leave unexplained, the detail the code must add:
        noise on the whole data's scale would drown it in wide codes. With
        ``structure_weight > 0`` every feature gets the root mean square of
        those spreads, as the structure term's recipe was measured.

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
        alone on the final codes. 0 trains a plain autoencoder. With it on,
        parameters left at "auto" take the term's recipe (the user guide's
        page on structure): four hidden layers of 128, GELU, layer
        normalisation, 512 edges a step at a learning rate of 1e-2. Needs X
        in memory: a memmap or array-like is read whole, sparse X is refused;
        with ``partial_fit`` each chunk's own graph is used.

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
        n_samples / 40, between 32 and 128; with ``structure_weight > 0``,
        512 edges.

    learning_rate : "auto" or float, default="auto"
        Learning rate of the optimizer. "auto": 1e-3, or 1e-2 with
        ``structure_weight > 0`` (its batches of 512 edges need it).

    optimizer : str, default="adam"
        Name of a Keras optimizer, e.g. "adam", "sgd", "rmsprop", "adadelta".

    early_stopping : bool, default=False
        Stop when the loss of the validation rows has not improved by ``tol``
        for ``n_iter_no_change`` epochs, restoring the weights of the best
        epoch. When False, the training loss is monitored the same way (as
        scikit-learn's MLP does).

    validation_fraction : float, default=0.1
        Fraction of the training data that ``fit`` holds out of training:
        the rows on which it compares the trained networks with PCA (see
        ``solution_``; data too small to spare one compares on the training
        rows), which early stopping monitors and the search for a fraction of
        variance scores (then at least two rows, since R² needs their
        spread). None are held out when none of the three applies.

    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.

    tol : float, default=1e-4
        Minimum improvement of the monitored loss that counts, relative to
        the best loss so far: the loss's scale is the data's.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the validation split and the noise.
        An int gives the same fit every time on the same machine. None draws
        the seeds from NumPy's global random state (advancing it), as
        scikit-learn does; no other global random state is read or changed.

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
        Maps scaled input rows to codes, before ``code_scale_``.
    decoder_ : keras.Model
        Maps codes (divided by ``code_scale_``) to scaled reconstructions.
    code_scale_ : float
        Multiplies the encoder's output in ``transform`` (and divides codes in
        ``inverse_transform``): the input's one scale when every feature has
        the same (``scaling="center"`` or "minmax") and the code is linear
        and the built-in encoder's, else 1. It puts the codes in the input's
        units, as PCA's scores are.
    solution_ : {"autoencoder", "pca_decoder", "pca"} or None
        Which candidate ``fit`` kept; each, from the simplest, replaces the one
        kept so far only if it rebuilds the validation rows better by over two
        standard errors of the rows' differences. "pca", PCA's linear networks
        of the same size (as ``PCA(n_components).fit(X)``, no hidden layers);
        "pca_decoder", PCA's codes (the encoder stays PCA's projection, so
        ``transform`` returns PCA's scores) with a decoder trained on them;
        "autoencoder", the trained networks. So the fit never reconstructs its
        validation rows worse than PCA. None where the networks could not
        start at PCA (see ``init``), with a structure term or ``code_l1``,
        and after ``partial_fit``.
    validation_errors_ : dict of str to float or None
        The candidates' mean squared errors, in the scaled space, on the
        validation rows (the training rows when X has too few to hold any out),
        by name; None when ``solution_`` is.
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

    _parameter_constraints: dict = _params.PARAMETER_CONSTRAINTS

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
        activation="auto",
        code_activation=None,
        output_activation="auto",
        normalization="auto",
        scaling="auto",
        loss="auto",
        code_l1=0.0,
        noise=0.7,
        masking=0.0,
        structure_weight=0.0,
        n_neighbors=15,
        epochs="auto",
        batch_size="auto",
        learning_rate="auto",
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
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train on one chunk of data: one epoch over X, as ``IncrementalPCA``.

        The first call builds the networks from X's shape; later calls continue
        from the weights reached (after :meth:`fit` too). The input scaling
        statistics (``input_offset_``, ``input_scale_``) are those of all rows
        seen so far: when a chunk changes them, networks that start and end
        with Dense layers (the built-in dense ones) are re-expressed for the
        new scaling, so their maps in the input's units are unchanged by the
        update itself; others adapt to it while training. The optimizer's
        state carries over between calls in one process (not through
        pickling). Later calls train with the current ``loss``, ``optimizer``,
        ``learning_rate``, ``batch_size``, ``noise``, ``masking`` and
        ``structure_weight``, with a new optimizer when :meth:`set_params`
        changed one of them. A change to a parameter that shapes the networks
        (``n_components``, ``architecture``, ``hidden_layer_sizes``,
        ``input_shape``, ``encoder``, ``decoder``, ``init``, the activations,
        ``normalization``, ``code_l1``; "auto" keeps the fitted ones) raises
        ``ValueError``, as ``IncrementalPCA`` does: :meth:`fit` starts over.

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
        return self._fit(X, incremental=True)

    def _fit(self, X, *, incremental):
        """The one path of fit and partial_fit: check, read, fit, set."""
        continuing = incremental and self.__sklearn_is_fitted__()
        if continuing:
            # _fit_context validates partial_fit's parameters on the first call
            # only; set_params may have changed them since.
            self._validate_params()
        plan = _params.make_plan(
            self, incremental=incremental, fitted=self if continuing else None
        )
        previous = _fit.Fitted.of(self) if continuing else None
        before = None if previous else self._fitted_state()
        if previous is None:
            self._reset()
        try:
            data = _input.read(self, X, plan, reset=previous is None)
            fitted = _fit.fit(plan, data, previous)
        except _fit.FitInterrupted as exc:
            self._set_fitted(exc.fitted)
            message = (
                f"Training was interrupted after {exc.fitted.n_iter} epoch(s); the "
                "transformer keeps the weights reached so far (the best ones with "
                "early_stopping=True)."
            )
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
            raise KeyboardInterrupt from exc
        except BaseException:
            if previous is None:
                # Diverged, or interrupted before an epoch ended: nothing of this
                # fit may stay; a refit leaves the previous one as it was.
                self._reset()
                vars(self).update(before)
            elif previous.trainer is None:
                self.__dict__.pop("_trainer", None)
            raise
        self._set_fitted(fitted)
        return self

    def _set_fitted(self, fitted):
        """Every fitted attribute, from a fit's result."""
        vars(self).update(fitted.attributes())
        # Created here, filled on first use: transform must not change __dict__.
        self._inference = self.__dict__.get("_inference") or Inference()
        self._inference.refit({"encoder_": self.encoder_, "decoder_": self.decoder_})

    def _fitted_state(self):
        """The attributes :meth:`_reset` removes, by name."""
        private = ("_inference", *_fit.PRIVATE_ATTRIBUTES)
        public = [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]
        return {k: v for k, v in vars(self).items() if k in private or k in public}

    def _reset(self):  # A failed refit must not leave attributes of two fits.
        for name in self._fitted_state():
            delattr(self, name)

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
        X = self._validate(X)
        return self._inference.run(
            "encoder_",
            self.encoder_,
            X,
            self.input_offset_,
            self.input_scale_,
            unscale=(0.0, self.code_scale_),
        )

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
        X_original = self._inference.run(
            "decoder_",
            self.decoder_,
            X / np.asarray(self.code_scale_, X.dtype),
            unscale=(self.input_offset_, self.input_scale_),
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
        return score_samples(
            self._inference,
            self.encoder_,
            self.decoder_,
            self._validate(X),
            self.input_offset_,
            self.input_scale_,
        )

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

    def _validate(self, X):
        return _input.validate(self, X, reset=False)[0]

    # -- persistence -------------------------------------------------------

    def save(self, path, *, overwrite=None):
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

        overwrite : bool or None, default=None
            A file at ``path`` is replaced unless it is read-only (None), even
            if read-only (True, as Keras' ``overwrite=True``), or never
            (False: ``FileExistsError``). See :func:`skae.persistence.save`.

        Returns
        -------
        path : str
            The path written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the transformer is not fitted.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import skae
        >>> X = np.random.RandomState(0).rand(50, 4)
        >>> ae = skae.AutoencoderTransformer(epochs=2, random_state=0).fit(X)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     loaded = skae.load(ae.save(os.path.join(tmp, "ae.skae")))
        >>> np.array_equal(loaded.transform(X), ae.transform(X))
        True
        """
        return _serialization.save(self, path, overwrite=overwrite)

    def __getstate__(self):
        # A copy: object.__getstate__ returns the instance's own __dict__.
        # Compiled functions do not pickle; they are rebuilt on first use.
        state = dict(super().__getstate__())
        state.pop("_inference", None)
        state.pop("_trainer", None)
        if isinstance(state.get("_stream"), _fit.StreamState):
            state["_stream"] = state["_stream"].as_dict()
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("_stream"), dict):
            state["_stream"] = _fit.StreamState.from_dict(state["_stream"])
        super().__setstate__(state)
        if "encoder_" in state:
            # Codes were in the scaled space before code_scale_.
            self.__dict__.setdefault("code_scale_", 1.0)
            self.__dict__.setdefault("solution_", None)
            self.__dict__.setdefault("validation_errors_", None)
            self._inference = Inference()

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
        tags.input_tags.three_d_array = _input.accepts_images(self)
        return tags


_serialization.register(_dask.install(AutoencoderTransformer))
