"""Inference (``skae._inference``): transform, inverse_transform, scores.

The fitted networks run a batch at a time, as NumPy matrix products where
every layer maps exactly, else as compiled float64 copies: both paths agree,
results keep the input's dtype, scores are negative reconstruction errors in
float64, codes decode back to the input's units, and ``Inference.refit`` keeps
what ``partial_fit`` leaves unchanged and never lets stale weights run.
"""

import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skae
import skae._forward
from skae import AutoencoderTransformer, inference_path
from skae._inference import _ACTIVATIONS, Inference, NumpyNetwork
from skae._inference import float64_copy as _float64_copy
from skae._pca_init import build_pca_dense, pca_basis
from skae._scaling import fit_scaling
from skae.architectures import build_conv, build_dense

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
    monkeypatch.setattr(skae._forward, "BATCH_ROWS", 7)
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


# -- the NumPy path ----------------------------------------------------------------


def _both_paths(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the NumPy path, then on the Keras path."""
    with inference_path("numpy"):
        fast = fn(*args, **kwargs)
    with inference_path("keras"):
        slow = fn(*args, **kwargs)
    return fast, slow


def _assert_paths_agree(fast, slow, dtype, computed_in=None, rtol=None):
    assert fast.dtype == slow.dtype == dtype
    assert np.isfinite(slow).all()
    # float64: the same arithmetic in another order. float32: the NumPy path
    # rounds every layer to float32, the Keras path runs in float64.
    if rtol is None:
        rtol = 1e-9 if (computed_in or dtype) == np.float64 else 1e-4
    np.testing.assert_allclose(fast, slow, rtol=rtol, atol=rtol * np.abs(slow).max())


ACTIVATIONS = sorted(fn.__name__ for fn, _ in _ACTIVATIONS)


def test_every_activation_the_parameters_name_often_is_mapped():
    assert {"linear", "relu", "sigmoid", "tanh", "elu", "selu", "softplus"} <= set(
        ACTIVATIONS
    )
    assert {"gelu", "silu", "leaky_relu", "softmax", "mish"} <= set(ACTIVATIONS)


@pytest.mark.parametrize("normalization", [None, "layer"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_path_equals_keras_path_for_every_activation(activation, normalization):
    # Exponentials of exponentials overflow: there only the hidden layers'.
    outer = None if activation == "exponential" else activation
    encoder, decoder = _perturbed(
        build_dense(
            12,
            3,
            (16, 8),
            activation=activation,
            code_activation=outer,
            output_activation=outer,
            normalization=normalization,
            code_l1=0.01,
        ),
        seed=1,
    )
    rng = np.random.RandomState(0)
    # Wide enough to cross every kink (the shrinks' +-0.5, hard_sigmoid's +-3),
    # narrow enough that exponentials of exponentials stay finite.
    X = rng.normal(size=(50, 12)) * (0.3 if activation == "exponential" else 3.0)
    offset, scale = rng.normal(size=12), 1.5
    # TensorFlow's float64 GELU kernel is off by up to ~4e-9 (SciPy's erfc,
    # which the NumPy path uses, is exact to round-off).
    inference = Inference()
    for dtype in (np.float32, np.float64):
        rtol = 1e-7 if activation == "gelu" and dtype == np.float64 else None
        codes = _both_paths(
            inference.run, "encoder_", encoder, X.astype(dtype), offset, scale
        )
        _assert_paths_agree(*codes, dtype, rtol=rtol)
        # Codes of a bounded spread: exponentials of large codes overflow.
        codes = codes[1] / np.abs(codes[1]).max()
        rebuilt = _both_paths(
            inference.run, "decoder_", decoder, codes, unscale=(offset, scale)
        )
        _assert_paths_agree(*rebuilt, dtype, rtol=rtol)
    for name, model in (("encoder_", encoder), ("decoder_", decoder)):
        assert isinstance(inference.numpy_network(name, model), NumpyNetwork)


@pytest.mark.parametrize(
    "params",
    [
        dict(init="random"),
        dict(init="pca", normalization="layer", code_l1=0.01),
        dict(init="random", input_shape=(8, 8), activation="tanh", noise=0.0),
        dict(init="random", scaling="minmax", output_activation="sigmoid"),
    ],
    ids=["random", "pca-layer-l1", "images", "minmax-sigmoid"],
)
def test_numpy_path_equals_keras_path_for_built_in_networks(digits, params):
    X = digits[0][:200]
    if "input_shape" in params:
        X = X.reshape(-1, 8, 8)
    ae = small(n_components=3, hidden_layer_sizes=(16, 8), **params).fit(X)
    for name in ("encoder_", "decoder_"):
        network = ae._inference.numpy_network(name, getattr(ae, name))
        assert isinstance(network, NumpyNetwork)
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        _assert_paths_agree(*_both_paths(ae.transform, Xd), dtype)
        codes = ae.transform(Xd)
        rebuilt = _both_paths(ae.inverse_transform, codes)
        _assert_paths_agree(*rebuilt, dtype)
        assert rebuilt[0].shape == X.shape
        fast, slow = _both_paths(ae.score_samples, Xd)
        _assert_paths_agree(fast, slow, np.float64, computed_in=dtype)


def test_float32_input_runs_in_float32_and_float64_in_float64(fitted, digits):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))
    network = ae._inference.numpy_network("encoder_", ae.encoder_)
    ae.transform(X.astype(np.float32))
    assert set(network._weights) == {np.dtype(np.float32)}
    ae.transform(X)
    assert set(network._weights) == {np.dtype(np.float32), np.dtype(np.float64)}


def test_a_rows_result_does_not_depend_on_its_batch_beyond_round_off(fitted, digits):
    X, _ = digits
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        Xd = X.astype(dtype)
        together = fitted.transform(Xd)
        alone = np.concatenate([fitted.transform(Xd[i : i + 1]) for i in range(20)])
        scale = np.abs(together).max()
        np.testing.assert_allclose(alone, together[:20], rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(
            fitted.transform(Xd[::-1])[::-1], together, rtol=rtol, atol=rtol * scale
        )


def _functional(inputs, outputs):
    return keras.Model(inputs, outputs)


def test_user_networks_of_mapped_layers_take_the_numpy_path():
    # Nested Sequential, merges, reshapes, inference-time identities.
    inputs = keras.Input((6, 4))
    flat = keras.layers.Flatten()(inputs)
    block = keras.Sequential(
        [
            keras.layers.Dense(12, activation="softplus"),
            keras.layers.Dropout(0.5),
            keras.layers.GaussianNoise(1.0),
            keras.layers.Dense(12),
            keras.layers.LayerNormalization(),
            keras.layers.Activation("silu"),
        ]
    )
    a = block(flat)
    b = keras.layers.Dense(12, activation="tanh")(flat)
    merged = [
        keras.layers.Add()([a, b]),
        keras.layers.Subtract()([a, b]),
        keras.layers.Multiply()([a, b]),
        keras.layers.Average()([a, b]),
        keras.layers.Maximum()([a, b]),
        keras.layers.Minimum()([a, b]),
    ]
    h = keras.layers.Concatenate()(merged)
    h = keras.layers.Reshape((-1, 8))(h)
    h = keras.layers.Flatten(data_format="channels_first")(h)
    model = _perturbed([_functional(inputs, keras.layers.Dense(5)(h))])[0]
    X = np.random.RandomState(0).normal(size=(30, 24))
    inference = Inference()
    assert isinstance(inference.numpy_network("m", model), NumpyNetwork)
    for dtype in (np.float32, np.float64):
        fast, slow = _both_paths(inference.run, "m", model, X.astype(dtype))
        _assert_paths_agree(fast, slow, dtype)


def _double(x):
    return 2 * x


class _MyDense(keras.layers.Dense):
    def call(self, inputs, training=None):
        return 2 * super().call(inputs)


def _unmappable_networks():
    def wrap(*layers):
        inputs = keras.Input((6,))
        h = inputs
        for layer in layers:
            h = layer(h)
        return _functional(inputs, h)

    inputs = keras.Input((6,))
    dropout_on = _functional(inputs, keras.layers.Dropout(0.5)(inputs, training=True))
    return {
        "subclass": (wrap(_MyDense(4)), "_MyDense"),
        "activation": (
            wrap(keras.layers.Dense(4, activation="sparsemax")),
            "sparsemax",
        ),
        "callable": (wrap(keras.layers.Dense(4, activation=_double)), "_double"),
        "layer": (wrap(keras.layers.BatchNormalization()), "BatchNormalization"),
        "argument": (dropout_on, "arguments other than its input"),
    }


@pytest.mark.parametrize("kind", list(_unmappable_networks()))
def test_networks_with_other_layers_take_the_keras_path(kind):
    model, reason = _unmappable_networks()[kind]
    X = np.random.RandomState(0).normal(size=(10, 6))
    inference = Inference()
    assert inference.numpy_network("encoder_", model) is None
    with inference_path("keras"):
        expected = inference.run("encoder_", model, X)
    if kind != "argument":  # dropout with training=True is random
        np.testing.assert_array_equal(inference.run("encoder_", model, X), expected)
    with inference_path("numpy"), pytest.raises(ValueError, match=reason) as info:
        inference.run("encoder_", model, X)
    assert "Expected a network skae can run with NumPy" in str(info.value)
    assert "Received: encoder_ with layer" in str(info.value)


def test_conv_networks_take_the_keras_path():
    encoder, _ = build_conv((8, 8), 2, (4,), seed=0)
    inference = Inference()
    assert inference.numpy_network("encoder_", encoder) is None
    with inference_path("numpy"), pytest.raises(ValueError, match=r"Conv2D"):
        inference.run("encoder_", encoder, np.zeros((2, 64)))


def test_numpy_path_never_runs_stale_weights(fitted, digits):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))
    encoder, offset, scale = ae.encoder_, ae.input_offset_, ae.input_scale_
    inference = Inference()
    before = inference.run("encoder_", encoder, X, offset, scale)
    network = inference.numpy_network("encoder_", encoder)
    encoder.set_weights([0.5 * w for w in encoder.get_weights()])
    inference.refit({"encoder_": encoder})
    after = inference.run("encoder_", encoder, X, offset, scale)
    assert not np.allclose(after, before, atol=1e-3)
    with inference_path("keras"):
        expected = inference.run("encoder_", encoder, X, offset, scale)
    _assert_paths_agree(after, expected, np.float64)
    # The same steps, new weights.
    again = inference.numpy_network("encoder_", encoder)
    assert again is not network and again.steps is network.steps


def test_partial_fit_transforms_with_the_weights_it_reached(fitted, digits):
    X, _ = digits
    ae = pickle.loads(pickle.dumps(fitted))
    before = ae.transform(X)
    ae.partial_fit(X)
    after = ae.transform(X)
    assert not np.allclose(after, before, atol=1e-4)
    with inference_path("keras"):
        expected = ae.transform(X)
    _assert_paths_agree(after, expected, np.float64)


def test_inference_path_checks_its_argument_and_restores_the_previous_one(fitted):
    X = np.zeros((2, 64))
    for bad in ("fast", None, 1):
        with pytest.raises(ValueError, match=r"Expected path to be one of .*path="):
            with inference_path(bad):
                pass
    encoder, _ = build_conv((8, 8), 2, (4,), seed=0)
    inference = Inference()
    with inference_path("numpy"):
        with inference_path("auto"):
            inference.run("encoder_", encoder, X)  # Keras, quietly
        with pytest.raises(ValueError):
            inference.run("encoder_", encoder, X)
    inference.run("encoder_", encoder, X)
    assert skae.inference_path is inference_path


def test_inference_path_holds_in_its_own_thread_only():
    encoder, _ = build_conv((8, 8), 2, (4,), seed=0)
    inference = Inference()
    X = np.zeros((2, 64))
    errors = []

    def other_thread():
        try:
            inference.run("encoder_", encoder, X)
        except ValueError as exc:  # pragma: no cover - the failure this tests
            errors.append(exc)

    with inference_path("numpy"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert errors == []


def test_transform_from_many_threads_at_once(fitted, digits):
    X, _ = digits
    expected = fitted.transform(X)
    expected32 = fitted.transform(X.astype(np.float32))
    # A fresh copy: the threads race to build the NumPy form and its weights.
    ae = pickle.loads(pickle.dumps(fitted))

    def work(i):
        if i % 2:
            return ae.transform(X.astype(np.float32)), expected32
        return ae.transform(X), expected

    with ThreadPoolExecutor(8) as pool:
        for got, want in pool.map(work, range(32)):
            np.testing.assert_array_equal(got, want)
