"""PCA's basis, PCA-started networks and the search over code sizes (``_pca_init``).

The untrained encoder and decoder must reproduce scikit-learn's PCA on the
scaled data, survive a ``.keras`` round trip in safe mode, and be reproducible
given the seed; the basis is the same from rows in memory and streamed; PCA's
R² curve and ``select_n_components`` find the smallest code size; and an
estimator with ``init="pca"`` starts at PCA and, with early stopping, never
ends worse than it.
"""

import math
import os
import warnings

import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.decomposition import PCA

from skae import AutoencoderTransformer, _streaming
from skae._input import row_set
from skae._pca_init import (
    basis_of_rows,
    build_pca_dense,
    pca_basis,
    pca_r2_curve,
    select_n_components,
)
from skae._scaling import fit_scaling

SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return sklearn_load_digits().data[:300]


@pytest.fixture(scope="module")
def scaled_digits():
    from skae.datasets import load_digits

    X = load_digits().data[:400]
    return {
        method: ((X - offset) / scale).astype(np.float32)
        for method in ("center", "minmax")
        for offset, scale in [fit_scaling(X, method)]
    }


def _build(Xs, n_components, hidden=(16, 8), seed=0, **kwargs):
    basis = pca_basis(Xs, n_components, random_state=0)
    shape = kwargs.pop("shape", Xs.shape[1])
    return build_pca_dense(
        shape,
        n_components,
        hidden,
        components=basis.components,
        mean=basis.mean,
        seed=seed,
        **kwargs,
    )


def _run(model, X):
    return model(tf.constant(X), training=False).numpy()


# -- exactly PCA before training ----------------------------------------------


@pytest.mark.parametrize("scaling", ["center", "minmax"])
@pytest.mark.parametrize("n_components", [2, 8])
@pytest.mark.parametrize("hidden", [(16, 8), ()])
@pytest.mark.parametrize("normalization", [None, "layer"])
def test_untrained_model_is_pca(
    scaled_digits, scaling, n_components, hidden, normalization
):
    # "minmax" data is not centred: the mean must live in the linear biases.
    Xs = scaled_digits[scaling]
    encoder, decoder = _build(Xs, n_components, hidden, normalization=normalization)
    normalized = any(
        isinstance(layer, keras.layers.LayerNormalization) for layer in encoder.layers
    )
    assert normalized == bool(normalization and hidden)
    pca = PCA(n_components, random_state=0).fit(Xs.astype(np.float64))
    codes = _run(encoder, Xs)
    np.testing.assert_allclose(codes, pca.transform(Xs), atol=1e-5)
    np.testing.assert_allclose(
        _run(decoder, codes), pca.inverse_transform(codes), atol=1e-5
    )


def test_minmax_data_is_not_centred(scaled_digits):
    # Guards the test above: it would pass without biases on centred data.
    assert np.abs(scaled_digits["minmax"].mean(axis=0)).max() > 0.1


def test_sample_shape_is_flattened_and_restored(scaled_digits):
    Xs = scaled_digits["center"]
    encoder, decoder = _build(Xs, 4, shape=(8, 8))
    assert encoder.input_shape == (None, 8, 8)
    assert decoder.output_shape == (None, 8, 8)
    pca = PCA(4, random_state=0).fit(Xs.astype(np.float64))
    codes = _run(encoder, Xs.reshape(-1, 8, 8))
    np.testing.assert_allclose(codes, pca.transform(Xs), atol=1e-5)
    np.testing.assert_allclose(
        _run(decoder, codes).reshape(len(Xs), -1),
        pca.inverse_transform(codes),
        atol=1e-5,
    )


def test_shapes_and_layers(scaled_digits):
    Xs = scaled_digits["center"]
    encoder, decoder = _build(Xs, 3, hidden=(16, 8))
    assert encoder.input_shape == (None, 64)
    assert encoder.output_shape == (None, 3)
    assert decoder.input_shape == (None, 3)
    assert decoder.output_shape == (None, 64)
    assert {layer.name for layer in encoder.layers} == {
        "input",
        "pca_projection",
        "encoder_0",
        "encoder_1",
        "code_correction",
        "code",
    }
    units = {
        layer.name: layer.units for layer in decoder.layers if hasattr(layer, "units")
    }
    assert units == {
        "pca_reconstruction": 64,
        "decoder_0": 8,
        "decoder_1": 16,
        "output_correction": 64,
    }


def test_code_l1_adds_a_loss_on_the_code(scaled_digits):
    Xs = scaled_digits["center"]
    encoder, _ = _build(Xs, 2, code_l1=0.1)
    assert encoder.layers[-1].name == "code"
    encoder(tf.constant(Xs[:10]))
    assert len(encoder.losses) == 1
    assert float(encoder.losses[0]) > 0


def test_frozen_linear_paths(scaled_digits):
    encoder, decoder = _build(scaled_digits["center"], 2, trainable_linear=False)
    frozen = {
        w.path for w in encoder.non_trainable_weights + decoder.non_trainable_weights
    }
    assert frozen == {
        "pca_projection/kernel",
        "pca_projection/bias",
        "pca_reconstruction/kernel",
        "pca_reconstruction/bias",
    }


def test_more_components_than_the_rank_pads_with_zeros():
    Xs = np.random.RandomState(0).normal(size=(3, 5)).astype(np.float32)
    basis = pca_basis(Xs, 4, random_state=0)
    assert basis.components.shape == (4, 5)
    assert not basis.components[3:].any()
    encoder, decoder = build_pca_dense(
        5, 4, (4,), components=basis.components, mean=basis.mean
    )
    assert _run(encoder, Xs).shape == (3, 4)
    assert _run(decoder, _run(encoder, Xs)).shape == (3, 5)


def test_constant_data_explains_nothing_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        basis = pca_basis(np.ones((10, 3)), 2, random_state=0)
    np.testing.assert_array_equal(basis.explained_variance_ratio, [0.0, 0.0])
    assert basis.total_variance == 0.0


def test_basis_summary(scaled_digits):
    Xs = scaled_digits["center"]
    basis = pca_basis(Xs, 5, random_state=0)
    pca = PCA(5, random_state=0).fit(Xs.astype(np.float64))
    np.testing.assert_allclose(basis.explained_variance, pca.explained_variance_)
    np.testing.assert_allclose(
        basis.explained_variance_ratio, pca.explained_variance_ratio_
    )
    np.testing.assert_allclose(
        basis.total_variance,
        pca.explained_variance_[0] / pca.explained_variance_ratio_[0],
    )


@pytest.mark.parametrize("kind", ["memmap", "csr"])
def test_basis_of_streamed_rows_is_that_of_rows_in_memory(
    X, memmap_of, monkeypatch, kind
):
    # Chunks of about 64 rows: IncrementalPCA sees the rows five at a time.
    monkeypatch.setattr(_streaming, "_BATCH_BYTES", 64 * 8 * 64)
    offset, scale = fit_scaling(X, "center")
    rows = np.arange(300)
    data = memmap_of(X) if kind == "memmap" else sp.csr_matrix(X)
    in_memory = basis_of_rows(row_set(X, rows, offset, scale, (64,)), 5, 0)
    streamed = basis_of_rows(row_set(data, rows, offset, scale, (8, 8)), 5, 0)
    assert set(streamed) == set(in_memory)
    for name, value in in_memory.items():
        assert np.shape(streamed[name]) == np.shape(value), name
    np.testing.assert_allclose(streamed.mean, in_memory.mean, atol=1e-6)
    np.testing.assert_allclose(
        streamed.total_variance, in_memory.total_variance, rtol=1e-5
    )
    # The leading axes agree up to sign, and the variance along them.
    np.testing.assert_allclose(
        np.abs(np.sum(streamed.components * in_memory.components, axis=1)),
        1.0,
        atol=1e-2,
    )
    # IncrementalPCA keeps 5 axes between chunks: a little variance is lost.
    np.testing.assert_allclose(
        streamed.explained_variance, in_memory.explained_variance, rtol=3e-2
    )
    np.testing.assert_allclose(
        streamed.residual_variance, in_memory.residual_variance, rtol=3e-2
    )


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["output_activation", "code_activation"])
def test_squashing_activations_are_refused(scaled_digits, name):
    with pytest.raises(ValueError, match=rf"Expected {name}=None.*Received: {name}="):
        _build(scaled_digits["center"], 2, **{name: "sigmoid"})


def test_linear_activation_names_are_accepted(scaled_digits):
    _build(scaled_digits["center"], 2, output_activation="linear", code_activation=None)


def test_one_sample_is_refused():
    with pytest.raises(ValueError, match=r"Expected at least 2 .*Received: 1"):
        pca_basis(np.zeros((1, 4)), 2)


def test_mismatched_basis_is_refused():
    with pytest.raises(ValueError, match=r"Expected components of shape.*Received"):
        build_pca_dense(6, 2, (4,), components=np.eye(3, 6), mean=np.zeros(6))
    with pytest.raises(ValueError, match=r"Expected mean of shape.*Received"):
        build_pca_dense(6, 2, (4,), components=np.eye(2, 6), mean=np.zeros(5))


# -- copies, persistence, seeding --------------------------------------------


def _perturbed(models, seed=0):
    # Trained-like weights: a copy that kept the initial values by accident
    # (zeros, the PCA basis) would pass otherwise.
    rng = np.random.RandomState(seed)
    for model in models:
        model.set_weights(
            [w + 0.01 * rng.normal(size=w.shape) for w in model.get_weights()]
        )
    return models


def test_keras_file_round_trip_in_safe_mode(scaled_digits, tmp_path):
    Xs = scaled_digits["center"]
    encoder, decoder = _perturbed(_build(Xs, 2, code_l1=0.01, trainable_linear=False))
    for model in (encoder, decoder):
        path = os.fspath(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        X = Xs if model is encoder else _run(encoder, Xs)
        np.testing.assert_array_equal(_run(loaded, X), _run(model, X))
        assert len(loaded.trainable_weights) == len(model.trainable_weights)


def test_same_seed_same_networks(scaled_digits):
    Xs = scaled_digits["center"]
    first, second = _build(Xs, 2, seed=3), _build(Xs, 2, seed=3)
    other = _build(Xs, 2, seed=4)
    for a, b, c in zip(first, second, other, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(a.get_weights()[2], c.get_weights()[2])


# -- choosing the code size --------------------------------------------------


def test_pca_r2_curve_matches_pca_fits(scaled_digits):
    Xs = scaled_digits["minmax"].astype(np.float64)
    X_train, X_val = Xs[:300], Xs[300:]
    r2 = pca_r2_curve(pca_basis(X_train, None, random_state=0), X_val)
    assert r2.shape == (64,)
    sst = np.sum((X_val - X_val.mean(axis=0)) ** 2)
    for k in (1, 5, 20):
        pca = PCA(k, svd_solver="full").fit(X_train)
        sse = np.sum((pca.inverse_transform(pca.transform(X_val)) - X_val) ** 2)
        assert r2[k - 1] == pytest.approx(1 - sse / sst, abs=1e-6)


def test_upper_defaults_to_where_the_baseline_reaches():
    baseline = np.array([0.5, 0.8, 0.92, 0.97, 0.99])
    calls = []
    result = select_n_components(
        0.9, lambda k: calls.append(k) or 0.0, baseline=baseline
    )
    assert result.n_components == 3
    assert all(k < 3 for k in calls)
    result = select_n_components(0.999, lambda k: 0.0, baseline=baseline)
    assert result.n_components == 5  # PCA never reaches: its largest size


def _monotone_curves(n_curves, size, seed=0):
    # Random non-decreasing R² curves, with an AE/PCA residual ratio that
    # wanders, so that the guided search's predictions are often wrong.
    rng = np.random.RandomState(seed)
    for _ in range(n_curves):
        pca = 1 - np.cumprod(rng.uniform(0.6, 1.0, size))
        ratio = rng.uniform(0.3, 1.0, size)
        model = np.maximum.accumulate(1 - ratio * (1 - pca))
        yield pca, model


@pytest.mark.parametrize("guided", [False, True])
def test_select_n_components_finds_the_smallest_size(guided):
    n_fits = []
    for pca, model in _monotone_curves(200, 60):
        target = 0.9
        upper = int(np.argmax(pca >= target)) + 1 if (pca >= target).any() else 60
        if model[upper - 1] < target:
            continue
        calls = []

        def fit_and_score(k, model=model, calls=calls):
            calls.append(k)
            return model[k - 1]

        result = select_n_components(
            target, fit_and_score, upper, baseline=pca if guided else None
        )
        assert result.n_components == int(np.argmax(model >= target)) + 1
        assert list(result.scores) == calls
        assert len(set(calls)) == len(calls)
        assert all(1 <= k < upper for k in calls)
        if result.n_components < upper:
            assert result.score == model[result.n_components - 1]
        else:
            assert result.score is None
        n_fits.append(len(calls))
    assert max(n_fits) <= 3 * math.ceil(math.log2(60))


@pytest.mark.parametrize("guided", [False, True])
def test_tol_stops_within_tol_sizes_of_the_smallest(guided):
    for pca, model in _monotone_curves(50, 60, seed=1):
        if not (pca >= 0.9).any() or model[-1] < 0.9:
            continue
        upper = int(np.argmax(pca >= 0.9)) + 1
        result = select_n_components(
            0.9,
            lambda k, m=model: m[k - 1],
            upper,
            baseline=pca if guided else None,
            tol=2,
        )
        smallest = int(np.argmax(model >= 0.9)) + 1
        assert smallest <= result.n_components <= smallest + 2


def test_guided_search_needs_few_fits_when_the_ratio_is_steady():
    pca = 1 - 0.9 ** np.arange(1, 101)
    calls = []

    def fit_and_score(k):
        calls.append(k)
        return 1 - 0.5 * 0.9**k

    result = select_n_components(0.95, fit_and_score, 100, baseline=pca)
    assert result.n_components == 22
    assert len(calls) == 3  # the midpoint, the prediction, its neighbour below


def test_select_n_components_returns_upper_when_nothing_smaller_reaches():
    result = select_n_components(0.9, lambda k: 0.0, upper=8)
    assert result.n_components == 8
    assert result.score is None
    assert list(result.scores) == [4, 6, 7]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(target=1.0),
        dict(target=0),
        dict(upper=0),
        dict(lower=5, upper=4),
        dict(baseline=[0.5, 0.6]),
        dict(upper=None),
        dict(tol=-1),
    ],
)
def test_select_n_components_checks_its_arguments(kwargs):
    kwargs = {"target": 0.9, "upper": 4, **kwargs}
    with pytest.raises(ValueError, match=r"Expected .*Received"):
        select_n_components(fit_and_score=lambda k: 1.0, **kwargs)


# -- the estimator with init="pca" -------------------------------------------


def test_pca_init_starts_at_pca(X):
    from sklearn.decomposition import PCA

    ae = AutoencoderTransformer(
        8, init="pca", epochs=1, learning_rate=1e-12, noise=0.0, random_state=0
    ).fit(X)
    pca = PCA(8).fit(X)
    # The code is PCA's, in the input's units; the reconstruction PCA's own.
    np.testing.assert_allclose(ae.transform(X), pca.transform(X), atol=1e-3)
    np.testing.assert_allclose(
        ae.inverse_transform(ae.transform(X)),
        pca.inverse_transform(pca.transform(X)),
        atol=1e-3,
    )


def test_pca_init_with_early_stopping_is_never_worse_than_pca_on_validation(X):
    # A learning rate that only makes things worse: the PCA start is restored,
    # its corrections still exactly zero. (At 1.0 the loss rises 1e10-fold:
    # that is divergence, which raises.)
    params = dict(init="pca", early_stopping=True, learning_rate=0.1, epochs=5)
    # code_l1 keeps the trained networks (PCA is then no candidate) to look at.
    ae = AutoencoderTransformer(8, code_l1=1e-12, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(X)
    for model, layer in [
        (ae.encoder_, "code_correction"),
        (ae.decoder_, "output_correction"),
    ]:
        kernel, bias = model.get_layer(layer).get_weights()
        assert not kernel.any() and not bias.any()
    assert len(ae.history_["val_loss"]) == 5
    # Without code_l1 the restored start ties with PCA, which fit then keeps.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae = AutoencoderTransformer(8, random_state=0, **params).fit(X)
    assert ae.solution_ == "pca"
    errors = ae.validation_errors_
    assert errors["autoencoder"] == pytest.approx(errors["pca"], rel=1e-4)


def test_pca_init_partial_fit_and_memmap(X, memmap_of):
    ae = AutoencoderTransformer(4, init="pca", hidden_layer_sizes=(8,), random_state=0)
    for chunk in np.array_split(X, 3):
        ae.partial_fit(chunk)
    assert ae.n_iter_ == 3 and np.isfinite(ae.transform(X)).all()
    mm = AutoencoderTransformer(4, init="pca", **SMALL).fit(memmap_of(X))
    mem = AutoencoderTransformer(4, init="pca", **SMALL).fit(X)
    # IncrementalPCA on chunks and PCA in memory find the same axes.
    np.testing.assert_allclose(
        np.abs(mm.transform(X)), np.abs(mem.transform(X)), rtol=1e-2, atol=1e-2
    )
