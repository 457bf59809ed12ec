"""PCA-initialised dense autoencoders (``init="pca"``).

A PCA user switching to an autoencoder must never lose reconstruction quality.
The networks built here start *at* PCA: each half is a linear path set to PCA's
projection (encoder) or reconstruction (decoder), plus a non-linear correction
(an MLP) whose last layer starts at zero. Untrained, the autoencoder computes
exactly PCA's ``transform`` and ``inverse_transform`` of the scaled data;
training moves it where the training loss is lower, and keeping the initial
state as an early-stopping candidate makes it never worse than PCA on the
validation data.

Choices, measured on held-out halves of UCI digits (3 seeds) and MNIST 10k (1
seed), reconstruction MSE as a fraction of PCA's (codes of 2, 8, 16/32, 32/64):

- Denoising noise is the main risk: with the usual ``0.7 *`` data RMS, a 32-D
  code on digits trains to a denoiser 2.7 times worse than PCA (3.1 for the
  random-init default). Noise scaled to what PCA leaves unexplained,
  ``0.7 * sqrt(basis.residual_variance)``, keeps the benefit of denoising for
  small codes and fades for large ones: 0.51, 0.50, 0.61, 0.82 of PCA on
  digits, 0.68, 0.57, 0.68, 0.81 on MNIST, within 0.06 of the best variant at
  every size. No noise with early stopping is best for large codes (0.58 and
  0.76 on digits) but poor for small ones (0.66 at 2-D).
- The linear paths stay trainable: freezing them moved the MSE by at most 0.03
  of PCA's either way (except where the 0.7 RMS noise ruined both).
- The corrections' hidden layers are initialised as ``build_dense``'s, so the
  two inits differ only in the starting point.
"""

import math
from collections.abc import Iterator
from numbers import Integral, Real

import keras
import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.utils import Bunch

from ._scaling import ScalingStats
from ._streaming import auto_batch_rows
from .architectures import _check_normalization, _dense, _encoder_hidden

__all__ = [
    "basis_of_rows",
    "build_pca_dense",
    "pca_basis",
    "pca_r2_curve",
    "select_n_components",
]

_LINEAR = (None, "linear")


def pca_basis(Xs, n_components, random_state=None):
    """PCA of the scaled training data: what :func:`build_pca_dense` starts from.

    Parameters
    ----------
    Xs : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
        Scaled training data; images are flattened.
    n_components : int or None
        Number of components. More than PCA can give (``min(n_samples,
        n_features)``) pads the basis with zero rows: those code units start
        unused and are left to the non-linear correction. None keeps all.
    random_state : int, RandomState instance or None, default=None
        Passed to :class:`sklearn.decomposition.PCA`, whose randomized solver
        is used only for more than 1000 features (an exact one otherwise).

    Returns
    -------
    basis : :class:`~sklearn.utils.Bunch`
        components : ndarray of shape (n_components, n_features)
            Orthonormal principal axes (zero rows for padding), float64.
        mean : ndarray of shape (n_features,)
            Mean of ``Xs``: not zero for ``scaling="minmax"`` or None.
        explained_variance : ndarray of shape (n_components,)
            Variance of ``Xs`` along each axis.
        explained_variance_ratio : ndarray of shape (n_components,)
            The same as a fraction of ``total_variance``.
        feature_variance : ndarray of shape (n_features,)
            Variance of each feature of ``Xs`` (with ``ddof=1``, as PCA's).
        total_variance : float
            Sum of the variances of the features of ``Xs``.
        residual_variance : float
            Variance per feature that the components leave unexplained,
            ``(total_variance - sum(explained_variance)) / n_features``: the
            scale for denoising noise that suits every code size (see the
            module's notes).

    Examples
    --------
    >>> import numpy as np
    >>> from skae._pca_init import pca_basis
    >>> Xs = np.random.RandomState(0).normal(size=(50, 6))
    >>> basis = pca_basis(Xs, 2, random_state=0)
    >>> basis.components.shape, basis.mean.shape
    ((2, 6), (6,))
    >>> bool(np.allclose(basis.components @ basis.components.T, np.eye(2)))
    True
    >>> pca_basis(Xs[:3], 4).components.shape  # padded past the rank
    (4, 6)
    """
    Xs = np.asarray(Xs, dtype=np.float64)
    Xs = Xs.reshape(len(Xs), -1)
    n_samples, n_features = Xs.shape
    if n_samples < 2:
        raise ValueError(
            "Expected at least 2 training samples to compute PCA's basis. "
            f"Received: {n_samples} sample(s)"
        )
    if n_components is None:
        n_components = min(n_samples, n_features)
    n_fit = min(n_components, n_samples, n_features)
    # float64 data: the basis must reproduce PCA to float32 round-off, and
    # sklearn's PCA keeps float32 input in float32. An exact solver where it is
    # cheap: the randomized one (sklearn's choice for many components of wide
    # data) is measurably worse, and the init must be at least as good as PCA
    # for the early-stopping guarantee and for pca_r2_curve's bound (on MNIST,
    # 153 randomized components gave a validation R² of 0.94999, exact 0.95007).
    # With fewer rows than features, the SVD of the rows is the cheaper exact
    # solver: an n x d matrix against the d x d covariance's eigenproblem.
    solver = "auto"
    if n_features <= 1000:
        solver = "full" if n_samples < n_features else "covariance_eigh"
    pca = PCA(n_components=n_fit, svd_solver=solver, random_state=random_state)
    # Constant data has no variance to explain: PCA's ratios are 0 / 0, with a
    # RuntimeWarning about a division the user did not write.
    with np.errstate(divide="ignore", invalid="ignore"):
        pca.fit(Xs)
    variance = Xs.var(axis=0, ddof=1)
    total = float(np.sum(variance))
    ratio = pca.explained_variance_ratio_ if total > 0 else np.zeros(n_fit)
    return _basis(
        pca.components_,
        pca.mean_,
        pca.explained_variance_,
        ratio,
        variance,
        n_components,
    )


def basis_of_rows(rows, n_components, random_state=None):
    """:func:`pca_basis` of a row set (see :mod:`skae._input`).

    Rows in memory get the exact PCA of :func:`pca_basis`; streamed rows an
    :class:`~sklearn.decomposition.IncrementalPCA` over chunks of about 8 MB,
    with the same fields.
    """
    if rows.in_memory:
        return pca_basis(rows.X, n_components, random_state=random_state)
    n_features = math.prod(rows.input_shape)
    k = min(n_components or n_features, rows.n, n_features)
    ipca = IncrementalPCA(n_components=k)
    # Chunks of about 8 MB: each partial_fit takes an SVD of a chunk's rows
    # (plus k), whose factors are as large again; fewer rows per call cost
    # less time as well (n * rows * d in all).
    chunk_rows = max(k, auto_batch_rows(n_features) // 4)
    starts = list(range(0, rows.n, chunk_rows))
    # IncrementalPCA takes at least k rows a call: a short tail joins the
    # chunk before it.
    if len(starts) > 1 and rows.n - starts[-1] < k:
        starts.pop()
    for start, stop in zip(starts, [*starts[1:], rows.n], strict=True):
        chunk = rows.read(np.arange(start, stop))
        ipca.partial_fit(chunk.reshape(len(chunk), n_features))
    # With ddof=1, as PCA's explained variances.
    variance = ipca.var_ * rows.n / max(rows.n - 1, 1)
    total = float(np.sum(variance))
    ratio = ipca.explained_variance_ / total if total > 0 else np.zeros(k)
    return _basis(
        ipca.components_,
        ipca.mean_,
        ipca.explained_variance_,
        ratio,
        variance,
        n_components or k,
    )


def _basis(components, mean, explained_variance, ratio, variance, n_components):
    """The fields of :func:`pca_basis`, padded to ``n_components`` axes."""
    n_fit, n_features = components.shape
    pad = n_components - n_fit
    total = float(np.sum(variance))
    residual = max(total - float(np.sum(explained_variance)), 0.0)
    return Bunch(
        components=np.vstack([components, np.zeros((pad, n_features))]),
        mean=mean,
        explained_variance=np.concatenate([explained_variance, np.zeros(pad)]),
        explained_variance_ratio=np.concatenate([ratio, np.zeros(pad)]),
        feature_variance=np.asarray(variance, dtype=np.float64),
        total_variance=total,
        residual_variance=residual / n_features,
    )


def _check_linear(name, value):
    if value not in _LINEAR:
        raise ValueError(
            f"Expected {name}=None or 'linear' for a PCA-initialised network: "
            f"PCA's code and reconstruction are linear, which a {value!r} "
            f"{name.split('_')[0]} layer cannot reproduce. Received: "
            f"{name}={value!r}"
        )


def build_pca_dense(
    n_features,
    n_components,
    hidden_layer_sizes,
    *,
    components,
    mean,
    activation="relu",
    code_activation=None,
    output_activation=None,
    code_l1=0.0,
    normalization=None,
    seed=0,
    trainable_linear=True,
):
    """Build a dense encoder and decoder that start as PCA.

    Each half is a linear path plus a non-linear correction::

        code = x @ components.T - mean @ components.T  +  g(x)
        x_hat = code @ components + mean               +  h(code)

    ``g`` and ``h`` are MLPs with ``hidden_layer_sizes`` (reversed for ``h``)
    whose last layer starts at zero, so the untrained networks compute PCA's
    ``transform`` and ``inverse_transform`` exactly (on the data ``components``
    and ``mean`` came from, see :func:`pca_basis`). The corrections' hidden
    layers are initialised as :func:`~skae.architectures.build_dense`'s; their
    gradients are zero only until the first step moves the last layers.

    Parameters
    ----------
    n_features : int or tuple of int
        Width of the input (and of the reconstruction), or the shape of one
        sample, such as ``(28, 28)``: the encoder flattens it and the decoder
        restores it.
    n_components : int
        Width of the code.
    hidden_layer_sizes : sequence of int
        Hidden widths of the encoder's correction; the decoder's uses them in
        reverse. ``()`` gives the linear paths alone: a linear autoencoder
        initialised at PCA.
    components : array-like of shape (n_components, n_features)
        Principal axes, as ``PCA.components_``.
    mean : array-like of shape (n_features,)
        Mean of the training data, as ``PCA.mean_``; it goes into the linear
        paths' biases, so data that is not centred (``scaling="minmax"``) is
        reproduced too.
    activation : str or None, default="relu"
        Activation of the corrections' hidden layers.
    code_activation, output_activation : None or "linear", default=None
        Only linear: PCA's code and reconstruction are unbounded, so a
        squashing activation (a sigmoid output for ``scaling="minmax"``)
        cannot start at PCA, and raises a ValueError.
    code_l1 : float, default=0.0
        L1 activity penalty on the code (a sparse code when > 0).
    normalization : {None, "layer"}, default=None
        Normalisation of the encoder correction's hidden layers, as
        :func:`~skae.architectures.build_dense`'s.
    seed : int, default=0
        Seed of the corrections' hidden-layer initialisers.
    trainable_linear : bool, default=True
        Whether training may change the linear paths. False keeps PCA's
        projection and reconstruction and trains only the corrections.

    Returns
    -------
    encoder, decoder : keras.Model
        ``encoder`` maps ``(n, *sample_shape)`` to ``(n, n_components)``,
        ``decoder`` the other way, as :func:`~skae.architectures.build_dense`'s.

    Raises
    ------
    ValueError
        If ``components`` or ``mean`` do not match the shapes, or an activation
        of the code or output is not linear.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA, IncrementalPCA
    >>> from skae._pca_init import build_pca_dense, pca_basis
    >>> X = np.random.RandomState(0).normal(size=(100, 6)).astype("float32")
    >>> basis = pca_basis(X, 2, random_state=0)
    >>> encoder, decoder = build_pca_dense(
    ...     6, 2, (16,), components=basis.components, mean=basis.mean, seed=0
    ... )
    >>> encoder.output_shape, decoder.output_shape
    ((None, 2), (None, 6))
    >>> pca = PCA(2, random_state=0).fit(X.astype("float64"))
    >>> codes = encoder(X).numpy()
    >>> bool(np.allclose(codes, pca.transform(X), atol=1e-5))
    True
    >>> bool(np.allclose(decoder(codes).numpy(), pca.inverse_transform(codes),
    ...                  atol=1e-5))
    True
    """
    _check_linear("code_activation", code_activation)
    _check_linear("output_activation", output_activation)
    _check_normalization(normalization)
    hidden_layer_sizes = tuple(hidden_layer_sizes)
    shape = tuple(n_features) if isinstance(n_features, (tuple, list)) else None
    if shape is not None:
        n_features = math.prod(shape)
    components = np.asarray(components, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    if components.shape != (n_components, n_features):
        raise ValueError(
            f"Expected components of shape (n_components, n_features) = "
            f"{(n_components, n_features)}. Received: "
            f"components.shape={components.shape}"
        )
    if mean.shape != (n_features,):
        raise ValueError(
            f"Expected mean of shape {(n_features,)}. Received: mean.shape={mean.shape}"
        )

    inputs = keras.Input(shape=shape or (n_features,), name="input")
    x = inputs
    if shape is not None and len(shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    projection = _linear(n_components, "pca_projection", trainable_linear)
    code = projection(x)
    if hidden_layer_sizes:
        h = x
        for i, units in enumerate(hidden_layer_sizes):
            h = _encoder_hidden(
                _dense, units, activation, normalization, seed + i, f"encoder_{i}"
            )(h)
        correction = _zero_dense(n_components, "code_correction")(h)
        code = keras.layers.Add(name="code" if not code_l1 else "code_sum")(
            [code, correction]
        )
    if code_l1:
        code = keras.layers.ActivityRegularization(l1=code_l1, name="code")(code)
    encoder = keras.Model(inputs, code, name="encoder")

    code_in = keras.Input(shape=(n_components,), name="code_input")
    reconstruction = _linear(n_features, "pca_reconstruction", trainable_linear)
    outputs = reconstruction(code_in)
    if hidden_layer_sizes:
        h = code_in
        offset = seed + len(hidden_layer_sizes) + 1
        for i, units in enumerate(reversed(hidden_layer_sizes)):
            h = _dense(units, activation, offset + i, f"decoder_{i}")(h)
        correction = _zero_dense(n_features, "output_correction")(h)
        outputs = keras.layers.Add(name="output")([outputs, correction])
    if shape is not None and len(shape) > 1:
        outputs = keras.layers.Reshape(shape, name="to_input_shape")(outputs)
    decoder = keras.Model(code_in, outputs, name="decoder")

    # Set after building: a constant initializer would store the whole basis in
    # every config (and in every clone's).
    projection.set_weights([components.T, -mean @ components.T])
    reconstruction.set_weights([components, mean])
    return encoder, decoder


def _linear(units, name, trainable):
    # Zeros until set_weights overwrites them: no random draw to seed.
    return keras.layers.Dense(
        units, kernel_initializer="zeros", name=name, trainable=trainable
    )


def _zero_dense(units, name):
    # A zero last layer makes the correction exactly zero at the start; its
    # gradient (the hidden activations times the error) is not, so it learns.
    return keras.layers.Dense(units, kernel_initializer="zeros", name=name)


def pca_r2_curve(basis, X_val, *, return_sst=False):
    """PCA's validation R² for every number of components of ``basis``.

    Parameters
    ----------
    basis : :class:`~sklearn.utils.Bunch`
        From :func:`pca_basis` on the training part, typically with
        ``n_components=None`` (all components).
    X_val : array-like of shape (n_samples, n_features) or (n_samples, \
*sample_shape), or an iterator of such batches
        Scaled validation data, whole or a batch at a time (data read from
        disk is never held whole).
    return_sst : bool, default=False
        Also return SST, so that a caller scoring other models on the same
        rows needs no second pass over them.

    Returns
    -------
    r2 : ndarray of shape (n_components,)
        ``r2[k - 1]`` is ``1 - SSE / SST`` of PCA with ``k`` components, SSE the
        squared reconstruction error summed over ``X_val`` and SST the sum of
        squares of ``X_val`` around its own mean. Non-decreasing.
    sst : float
        Only with ``return_sst=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from skae._pca_init import pca_basis, pca_r2_curve
    >>> X = np.random.RandomState(0).normal(size=(200, 5)) * [5, 3, 2, 1, 0.5]
    >>> basis = pca_basis(X[:150], None)
    >>> r2 = pca_r2_curve(basis, X[150:])
    >>> r2.shape, bool(np.all(np.diff(r2) >= 0)), bool(np.isclose(r2[-1], 1))
    ((5,), True, True)
    >>> bool(np.allclose(pca_r2_curve(basis, iter([X[150:170], X[170:]])), r2))
    True
    >>> _, sst = pca_r2_curve(basis, X[150:], return_sst=True)
    >>> bool(np.isclose(sst, np.sum((X[150:] - X[150:].mean(axis=0)) ** 2)))
    True
    """
    batches = X_val if isinstance(X_val, Iterator) else [X_val]
    stats, sse = ScalingStats(), 0.0
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float64)
        batch = batch.reshape(len(batch), -1)
        stats.update(batch)
        centred = batch - basis.mean
        # The components are orthonormal (or zero): each removes its own share
        # of the squared error, so one projection gives every k at once.
        explained = np.cumsum(np.sum((centred @ basis.components.T) ** 2, axis=0))
        sse = sse + (float(np.sum(centred**2)) - explained)
    sst = float(np.sum(stats.var_) * stats.n_samples_seen_)
    sse = np.maximum(sse, 0.0)
    r2 = 1 - sse / sst if sst > 0 else np.ones_like(sse)
    return (r2, sst) if return_sst else r2


def select_n_components(
    target, fit_and_score, upper=None, *, lower=1, baseline=None, tol=0
):
    """Smallest code size whose validation R² reaches ``target``, in few fits.

    The score is assumed to grow with the code size, and ``upper`` to be known
    to reach the target: with ``init="pca"`` and the initial state kept as an
    early-stopping candidate, the autoencoder is never worse than PCA on the
    validation data, so the number of PCA components reaching the target there
    is such a size, found without any fit. The sizes in ``[lower, upper)`` are
    then searched, keeping a bracket: sizes below ``lo`` fail, ``hi`` reaches.

    Without ``baseline`` the bracket is bisected: about ``log2(upper - lower)``
    fits. With PCA's validation R² as ``baseline``, each fit gives the ratio of
    its residual to PCA's at the same size, ``rho = (1 - score) / (1 -
    baseline)``; interpolating the ratios measured so far (piecewise linear in
    the size, flat beyond the sizes tried) predicts the next size to try: the
    smallest where ``1 - rho * (1 - baseline)`` reaches the target. The first
    fit, with no ratio known yet, bisects. After two predictions in a row that
    did not halve the bracket comes a bisection step, which bounds the number
    of fits to about three times the bisection's. On digits the guided search
    took 3 and 4 fits where bisection took 4 and 5 (targets 0.9 and 0.95), and
    on synthetic curves shaped like the measured ones 3.7 fits on average
    against 5.8, both finding the smallest size.

    Parameters
    ----------
    target : float in (0, 1)
        The validation R² to reach (1 - SSE / SST in the scaled space).
    fit_and_score : callable
        ``fit_and_score(k)`` fits a model with a code of size ``k`` and returns
        its validation R².
    upper : int or None, default=None
        A code size known to reach the target; it is not fitted. None: the
        smallest size where ``baseline`` reaches the target (or its last
        size, if none does).
    lower : int, default=1
        The smallest size tried.
    baseline : array-like of shape (upper,) or longer, default=None
        ``baseline[k - 1]``: PCA's validation R² with ``k`` components, as
        :func:`pca_r2_curve` gives. Needed when ``upper`` is None.
    tol : int, default=0
        Stop once the bracket holds at most ``tol`` untried sizes: the size
        returned reaches the target and is at most ``tol`` above the smallest
        that does. 0 finds the smallest.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        n_components : int
            The size chosen.
        score : float or None
            Its score; None when no size below ``upper`` reached the target
            (``upper`` itself is not fitted).
        scores : dict of int to float
            Every size tried and its score, in the order tried.

    Raises
    ------
    ValueError
        If ``target`` is not in (0, 1), ``lower`` and ``upper`` are not
        integers with ``1 <= lower <= upper``, ``baseline`` is too short or
        ``tol`` is not a non-negative integer.

    Examples
    --------
    A fake model whose residual is 0.8 times PCA's:

    >>> import numpy as np
    >>> from skae._pca_init import select_n_components
    >>> pca_r2 = 1 - 0.7 ** np.arange(1, 21)
    >>> def fit_and_score(k):
    ...     return 1 - 0.8 * (1 - pca_r2[k - 1])
    >>> guided = select_n_components(0.95, fit_and_score, baseline=pca_r2)
    >>> guided.n_components, list(guided.scores)  # PCA needs 9
    (8, [5, 8, 7])
    >>> bisected = select_n_components(0.95, fit_and_score, upper=9)
    >>> bisected.n_components, list(bisected.scores)
    (8, [5, 7, 8])
    """
    if not (isinstance(target, Real) and 0 < target < 1):
        raise ValueError(f"Expected a target R² in (0, 1). Received: target={target!r}")
    if baseline is not None:
        baseline = np.asarray(baseline, dtype=np.float64)
        if upper is None and baseline.ndim == 1 and len(baseline):
            reaching = np.flatnonzero(baseline >= target)
            upper = int(reaching[0]) + 1 if len(reaching) else len(baseline)
    if upper is None:
        raise ValueError(
            "Expected upper, or a baseline to derive it from. Received: "
            f"upper=None, baseline={baseline!r}"
        )
    if not (
        isinstance(lower, Integral)
        and isinstance(upper, Integral)
        and 1 <= lower <= upper
    ):
        raise ValueError(
            "Expected integers with 1 <= lower <= upper. Received: "
            f"lower={lower!r}, upper={upper!r}"
        )
    if baseline is not None:
        if baseline.ndim != 1 or len(baseline) < upper:
            raise ValueError(
                f"Expected a baseline R² for each size 1 to upper={upper}. "
                f"Received: baseline of shape {baseline.shape}"
            )
    if not (isinstance(tol, Integral) and tol >= 0):
        raise ValueError(f"Expected an integer tol >= 0. Received: tol={tol!r}")
    scores, ratios = {}, {}
    lo, hi, hi_score = int(lower), int(upper), None
    stalls = 0
    while hi - lo > tol:
        guided = bool(ratios) and stalls < 2
        probe = (lo + hi) // 2
        if guided:
            # Piecewise linear between the sizes tried, flat beyond them.
            known = sorted(ratios)
            rho = np.interp(np.arange(lo, hi), known, [ratios[k] for k in known])
            reached = 1 - rho * (1 - baseline[lo - 1 : hi - 1]) >= target
            probe = lo + int(np.argmax(reached)) if reached.any() else hi - 1
        width = hi - lo
        scores[probe] = score = float(fit_and_score(probe))
        if score >= target:
            hi, hi_score = probe, score
        else:
            lo = probe + 1
        if baseline is not None and baseline[probe - 1] < 1:
            ratios[probe] = (1 - score) / (1 - baseline[probe - 1])
        # Two guesses in a row that did not halve the bracket: bisect once.
        stalls = stalls + 1 if guided and hi - lo > width // 2 else 0
    return Bunch(n_components=hi, score=hi_score, scores=scores)
