"""Inference (``skae._inference``): transform, inverse_transform, scores.

Compiled float64 copies of the fitted networks run a batch at a time: results
keep the input's dtype, scores are negative reconstruction errors in float64,
codes decode back to the input's units, and ``Inference.refit`` keeps what
``partial_fit`` leaves unchanged.
"""

import pickle
import warnings

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skae._input
from skae import AutoencoderTransformer
from skae._inference import Inference
from skae._inference import float64_copy as _float64_copy
from skae._pca_init import build_pca_dense, pca_basis
from skae._scaling import fit_scaling

SMALL = dict(hidden_layer_sizes=(8,), epochs=5, random_state=0)


def small(**params):
    return AutoencoderTransformer(**{**SMALL, **params})


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return small().fit(X)


# -- transform ---------------------------------------------------------------------


def test_transform_streams_in_batches(fitted, digits, monkeypatch):

    X, _ = digits
    expected = fitted.transform(X)
    monkeypatch.setattr(skae._input, "BATCH_ROWS", 7)
    np.testing.assert_allclose(fitted.transform(X), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(digits, dtype):
    X = digits[0].astype(dtype)
    ae = small().fit(X)
    assert ae.transform(X).dtype == dtype
    assert ae.inverse_transform(ae.transform(X)).dtype == dtype


# -- scores -----------------------------------------------------------------------


def test_score_is_negative_reconstruction_error(fitted, digits):
    X, _ = digits
    X_hat = fitted.inverse_transform(fitted.transform(X))
    per_row = -np.mean((X - X_hat) ** 2, axis=1)
    np.testing.assert_allclose(fitted.score_samples(X), per_row, rtol=1e-6)
    assert fitted.score(X) == pytest.approx(per_row.mean())
    assert fitted.score(X) < 0


def test_score_samples_of_float32_does_not_overflow():
    # Squared errors of ~1e20 exceed float32's range (3.4e38).
    X = np.random.RandomState(0).rand(40, 3).astype(np.float32) * np.float32(1e20)
    ae = small().fit(X)
    scores = ae.score_samples(X)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all() and np.isfinite(ae.score(X))
    # Through float64 codes: float32 ones would add their own round-off.
    X64 = X.astype(np.float64)
    X_hat = ae.inverse_transform(ae.transform(X64))
    expected = -np.mean((X.astype(np.float64) - X_hat) ** 2, axis=1)
    # score_samples rounds the scaled codes to float32 as transform does the
    # unscaled ones: the two differ by float32 round-off.
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_score_samples_flags_outliers(fitted, digits):
    X, _ = digits
    outliers = np.random.RandomState(0).uniform(0, 16, size=(20, 64))
    assert np.median(fitted.score_samples(outliers)) < np.median(
        fitted.score_samples(X)
    )


# -- inverse_transform ------------------------------------------------------------


def test_decoder_alone_decodes_any_grid(fitted):
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 5), np.linspace(-3, 3, 5)), -1)
    images = fitted.inverse_transform(grid.reshape(-1, 2))
    assert images.shape == (25, 64)
    assert np.isfinite(images).all()


def test_inverse_transform_returns_input_units():
    # Data far from [0, 1] and far from zero mean: scaling must be undone.
    rng = np.random.RandomState(0)
    X = 1000.0 + 50.0 * rng.randn(300, 5) @ rng.randn(5, 10)
    ae = small(n_components=5, epochs=200, hidden_layer_sizes=(32,)).fit(X)
    X_hat = ae.inverse_transform(ae.transform(X))
    assert abs(X_hat.mean() - X.mean()) < 0.05 * X.std()
    # A rank-5 signal in 10-D: a 5-D code must reconstruct most of it.
    assert np.mean((X - X_hat) ** 2) < 0.1 * X.var(axis=0).sum() / 10


def test_inverse_transform_rejects_wrong_code_width(fitted):
    with pytest.raises(
        ValueError, match=r"Expected codes of shape \(n_samples, 2\).*\(4, 3\)"
    ):
        fitted.inverse_transform(np.zeros((4, 3)))


def test_inverse_transform_rejects_nan(fitted):
    with pytest.raises(ValueError, match="NaN"):
        fitted.inverse_transform(np.array([[0.0, np.nan]]))


# -- the compiled float64 copies ------------------------------------------------


@pytest.fixture(scope="module")
def scaled_digits(digits):
    X, _ = digits
    offset, scale = fit_scaling(X, "center")
    return {"center": ((X - offset) / scale).astype(np.float32)}


def _build(Xs, n_components, hidden=(16, 8), seed=0, **kwargs):
    basis = pca_basis(Xs, n_components, random_state=0)
    return build_pca_dense(
        Xs.shape[1],
        n_components,
        hidden,
        components=basis.components,
        mean=basis.mean,
        seed=seed,
        **kwargs,
    )


def _run(model, X):
    return model(tf.constant(X), training=False).numpy()


def _perturbed(models, seed=0):
    # Trained-like weights: a copy that kept the initial values by accident
    # (zeros, the PCA basis) would pass otherwise.
    rng = np.random.RandomState(seed)
    for model in models:
        model.set_weights(
            [w + 0.01 * rng.normal(size=w.shape) for w in model.get_weights()]
        )
    return models


@pytest.mark.parametrize("trainable_linear", [True, False])
def test_float64_copy_keeps_the_weights(scaled_digits, trainable_linear):
    Xs = scaled_digits["center"]
    encoder, decoder = _perturbed(
        _build(Xs, 2, code_l1=0.01, trainable_linear=trainable_linear)
    )
    for model, X in [(encoder, Xs), (decoder, _run(encoder, Xs))]:
        twin = _float64_copy(model)
        assert twin is not None
        assert all(w.dtype == "float64" for w in twin.weights)
        np.testing.assert_allclose(
            _run(twin, X.astype(np.float64)), _run(model, X), atol=1e-4
        )


def test_refit_keeps_the_compiled_function_of_an_unchanged_model(fitted, digits):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))  # networks of its own
    encoder, offset, scale = ae.encoder_, ae.input_offset_, ae.input_scale_
    inference = Inference()
    codes = inference.run(
        "encoder_", encoder, X, offset, scale, unscale=(0.0, ae.code_scale_)
    )
    np.testing.assert_array_equal(codes, fitted.transform(X))
    compiled = inference._function("encoder_", encoder)[0]
    # Training changes the weights in place, as partial_fit does.
    encoder.set_weights([0.5 * w for w in encoder.get_weights()])
    inference.refit({"encoder_": encoder})
    assert inference._function("encoder_", encoder)[0] is compiled
    # The float64 copy runs the new weights.
    new_codes = inference.run("encoder_", encoder, X, offset, scale)
    Xs = ((X - offset) / scale).astype(np.float32)
    np.testing.assert_allclose(new_codes, _run(encoder, Xs), rtol=1e-4, atol=1e-4)
    assert not np.allclose(new_codes, codes, atol=1e-3)


def test_refit_drops_the_compiled_function_of_a_replaced_model(fitted, digits):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))
    offset, scale = ae.input_offset_, ae.input_scale_
    inference = Inference()
    inference.run("encoder_", ae.encoder_, X, offset, scale)
    inference.run("decoder_", ae.decoder_, fitted.transform(X))
    compiled = inference._function("encoder_", ae.encoder_)[0]
    other = small(random_state=1).fit(X)
    # A new encoder (fit built new networks); the decoder is not named: both go.
    inference.refit({"encoder_": other.encoder_})
    assert inference._compiled == {}
    np.testing.assert_array_equal(
        inference.run("encoder_", other.encoder_, X, offset, scale),
        Inference().run("encoder_", other.encoder_, X, offset, scale),
    )
    assert inference._function("encoder_", other.encoder_)[0] is not compiled


def test_partial_fit_keeps_transforms_compiled_function_and_fit_replaces_it(
    fitted, digits
):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))
    ae.transform(X)
    compiled = ae._inference._function("encoder_", ae.encoder_)[0]
    ae.partial_fit(X)
    assert ae._inference._function("encoder_", ae.encoder_)[0] is compiled
    # And it runs the weights partial_fit reached, as a fresh copy would.
    np.testing.assert_array_equal(
        ae.transform(X), pickle.loads(pickle.dumps(ae)).transform(X)
    )
    ae.fit(X)
    assert ae._inference._function("encoder_", ae.encoder_)[0] is not compiled
