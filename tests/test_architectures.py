"""Every architecture behaves as the default one: compliance, pickling, seeding.

Deep, linear, sparse, denoising, convolutional and user-supplied networks all go
through the same scikit-learn checks (modelled on keras' own
keras/src/wrappers/sklearn_test.py), then the features of each are tested.
"""

import math
import pickle
import random
import warnings

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import skae
from skae import AutoencoderTransformer
from skae.architectures import build_conv, build_dense

# Tiny but real: every check runs the whole training loop, in a few seconds.
TINY = dict(hidden_layer_sizes=(4,), epochs=2, random_state=0)


def small_encoder(input_shape, n_components):
    """A user-supplied encoder builder; module-level so that it pickles."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(n_components or 3),
        ]
    )


def small_decoder(input_shape, n_components):
    """The matching decoder; it works for any number of features."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_components,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(math.prod(input_shape)),
            keras.layers.Reshape(input_shape),
        ]
    )


class _Named:
    """A builder whose repr is its name, not its memory address.

    parametrize_with_checks makes the test ids from the estimator's repr: with
    plain functions as parameters the ids would change from run to run.
    """

    def __init__(self, builder):
        self.builder = builder

    def __call__(self, input_shape, n_components):
        return self.builder(input_shape, n_components)

    def __repr__(self):
        return self.builder.__name__

    # Equal by builder, so that a config is recognised in its clones' params.
    def __eq__(self, other):
        return isinstance(other, _Named) and other.builder is self.builder

    def __hash__(self):
        return hash(self.builder)


ARCHITECTURES = {
    "linear": dict(activation=None),
    "linear-str": dict(activation="linear"),
    "deep": dict(hidden_layer_sizes=(8, 6, 4)),
    "sparse": dict(code_l1=1e-3),
    # Both corruptions at once: Gaussian noise, then masking.
    "denoising": dict(noise=0.2, masking=0.3),
    "sigmoid-code": dict(code_activation="sigmoid"),
    "layer-norm": dict(normalization="layer"),
    "conv": dict(architecture="conv"),
    "user-networks": dict(encoder=small_encoder, decoder=small_decoder),
    "pca-init": dict(init="pca"),
    # The code size is searched: several fits per fit.
    "variance-fraction": dict(init="pca", n_components=0.9),
    # A neighbour graph per fit and a decoder-only phase after training.
    "structured": dict(structure_weight=1.0, n_neighbors=5),
}


def make(name, **params):
    return AutoencoderTransformer(**{**TINY, **ARCHITECTURES[name], **params})


# Every entry needs a written reason; the aim is none.
EXPECTED_FAILED_CHECKS = {
    "variance-fraction": {
        "check_n_features_in_after_fitting": (
            "partial_fit raises for a fractional n_components: the code size "
            "is chosen by comparing fits on all the data, which one chunk at a "
            "time cannot do; fit works."
        ),
    },
}

# The checks cost about 30 s of CPU per architecture; these are the ones whose
# code paths differ from the default's ("linear-str", "deep" and "layer-norm"
# only change layer settings and are covered by the tests below).
COMPLIANCE = [
    "linear",
    "sparse",
    "denoising",
    "sigmoid-code",
    "conv",
    "user-networks",
    "pca-init",
    "variance-fraction",
    "structured",
]


# Checks that run only with ``-m slow`` (tests/conftest.py applies the mark)
# for some configurations: sklearn's two sparse checks refit on ten sparse
# formats (about 7 s a configuration), and three more feed the same data in
# other containers and dtypes. The configurations named here read their input
# exactly as another does whose checks run in the default run: most as the
# default estimator (tests/test_estimator.py), the fractional code size as
# "pca-init" (each of its fits is several).
_INPUT_CHECKS = (
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_dtypes",
    "check_transformer_data_not_an_array",
    "check_dtype_object",
)
SLOW_CHECKS = dict.fromkeys(
    (
        "linear",
        "sparse",
        "denoising",
        "sigmoid-code",
        "user-networks",
        "variance-fraction",
    ),
    _INPUT_CHECKS,
)


def is_slow_check(estimator, check):
    """Whether the compliance ``check`` of ``estimator`` belongs to ``-m slow``."""
    name = getattr(check, "func", check).__name__
    return name in SLOW_CHECKS.get(_config_name(estimator), ())


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # Two epochs never converge; the warning is tested in test_training.py.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _config_name(estimator):
    for name in COMPLIANCE:
        if estimator.get_params() == _compliance_estimator(name).get_params():
            return name
    return None


def _compliance_estimator(name):
    if name == "user-networks":
        return make(name, encoder=_Named(small_encoder), decoder=_Named(small_decoder))
    return make(name)


@parametrize_with_checks(
    [_compliance_estimator(name) for name in COMPLIANCE],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS.get(
        _config_name(estimator), {}
    ),
)
def test_sklearn_compliance(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    from skae.datasets import load_digits

    data = load_digits()
    return data.data[:300], data.images[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {name: make(name).fit(X) for name in ARCHITECTURES}


# -- the same guarantees for every architecture -------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_pickle_round_trip_transforms_identically(fitted, digits, name):
    X, _ = digits
    ae = fitted[name]
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))
    np.testing.assert_array_equal(
        restored.inverse_transform(ae.transform(X[:5])),
        ae.inverse_transform(ae.transform(X[:5])),
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_random_state_reproduces_the_fit(fitted, digits, name):
    X, _ = digits
    np.testing.assert_array_equal(
        make(name).fit(X).transform(X), fitted[name].transform(X)
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_clone_gives_an_unfitted_equal_estimator(fitted, name):
    ae = fitted[name]
    copy = clone(ae)
    assert copy.get_params().keys() == ae.get_params().keys()
    assert not hasattr(copy, "encoder_")


# -- dense variants ------------------------------------------------------------


def test_linear_activation_none_and_linear_are_the_same_network(fitted, digits):
    X, _ = digits
    np.testing.assert_array_equal(
        fitted["linear"].transform(X), fitted["linear-str"].transform(X)
    )
    for layer in fitted["linear-str"].encoder_.layers[1:]:
        assert layer.activation.__name__ == "linear"


def test_linear_autoencoder_reconstructs_like_pca(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        n_components=5,
        hidden_layer_sizes=(),
        activation=None,
        noise=0.0,
        epochs=300,
        learning_rate=1e-2,
        random_state=0,
    ).fit(X)
    ae_error = np.mean((X - ae.inverse_transform(ae.transform(X))) ** 2)
    pca = PCA(n_components=5).fit(X)
    pca_error = np.mean((X - pca.inverse_transform(pca.transform(X))) ** 2)
    # PCA is the optimum for a linear code: the autoencoder gets close to it.
    assert pca_error <= ae_error * 1.001
    assert ae_error < 1.1 * pca_error


def test_deep_encoder_has_the_requested_layers(fitted):
    ae = fitted["deep"]
    widths = [layer.units for layer in ae.encoder_.layers[1:]]
    assert widths == [8, 6, 4, 2]
    assert [layer.units for layer in ae.decoder_.layers[1:]] == [4, 6, 8, 64]
    assert ae.hidden_layer_sizes_ == (8, 6, 4)


@pytest.mark.parametrize(
    ("activation", "low", "high"),
    [("sigmoid", 0, 1), ("tanh", -1, 1), ("relu", 0, np.inf)],
)
def test_code_activation_bounds_the_code(digits, activation, low, high):
    X, _ = digits
    Z = AutoencoderTransformer(code_activation=activation, **TINY).fit_transform(X)
    assert low <= Z.min() and Z.max() <= high


def test_code_l1_gives_a_sparser_code(digits):
    X, _ = digits
    params = dict(
        n_components=8,
        hidden_layer_sizes=(16,),
        code_activation="relu",
        epochs=30,
        random_state=0,
    )
    dense = AutoencoderTransformer(**params).fit(X)
    sparse = AutoencoderTransformer(code_l1=1e-2, **params).fit(X)
    assert sparse.encoder_.get_layer("code").activity_regularizer is not None
    Z_dense, Z_sparse = dense.transform(X), sparse.transform(X)
    # More units silent (at exactly zero) and smaller activity where they fire.
    assert np.mean(Z_sparse == 0) > np.mean(Z_dense == 0) + 0.1
    assert np.abs(Z_sparse).mean() < 0.7 * np.abs(Z_dense).mean()


def test_corruption_is_never_applied_at_transform(fitted, digits):
    X, _ = digits
    ae = fitted["denoising"]
    Z = ae.transform(X)
    np.testing.assert_array_equal(ae.transform(X), Z)
    Xs = ((X - ae.input_offset_) / ae.input_scale_).astype(np.float32)
    clean = ae.encoder_(Xs, training=False).numpy()
    np.testing.assert_allclose(Z, clean, rtol=1e-5, atol=1e-6)


def test_dense_rejects_images_with_a_clear_error(digits):
    _, images = digits
    with pytest.raises(ValueError, match=r"Expected a 2-D X .* input_shape"):
        AutoencoderTransformer(**TINY).fit(images)
    ae = AutoencoderTransformer(**TINY).fit(images.reshape(len(images), -1))
    with pytest.raises(ValueError, match="Expected a 2-D X"):
        ae.transform(images)


def test_dense_with_input_shape_takes_and_gives_images(digits):
    X, images = digits
    ae = AutoencoderTransformer(input_shape=(8, 8), **TINY).fit(images)
    assert ae.n_features_in_ == 64
    assert ae.input_shape_ == (8, 8)
    Z = ae.transform(images)
    np.testing.assert_array_equal(ae.transform(X), Z)
    assert ae.inverse_transform(Z).shape == (300, 8, 8)
    assert ae.score_samples(images).shape == (300,)


def test_input_shape_must_match_the_features(digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"784 values per sample.*64 features"):
        AutoencoderTransformer(input_shape=(28, 28), **TINY).fit(X)
    with pytest.raises(ValueError, match="tuple of positive integers"):
        AutoencoderTransformer(input_shape=(8, -8), **TINY).fit(X)


def test_images_of_another_shape_are_refused_not_reshaped(digits):
    # As many pixels in another layout would scramble what a conv layer sees.
    _, images = digits
    wrong = images.reshape(len(images), 4, 16)
    ae = AutoencoderTransformer(architecture="conv", **TINY).fit(images)
    with pytest.raises(ValueError, match=r"images of shape \(8, 8\).*\(300, 4, 16\)"):
        ae.transform(wrong)
    with pytest.raises(ValueError, match=r"images of shape \(8, 8\)"):
        ae.partial_fit(wrong)
    # A trailing channel of 1 is the same image.
    np.testing.assert_array_equal(ae.transform(images[..., None]), ae.transform(images))
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8\).*\(4, 16\)"):
        AutoencoderTransformer(input_shape=(8, 8), **TINY).fit(wrong)


# -- convolutional -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "input_shape"),
    [((8, 8), None), ((8, 8, 1), None), ((64,), (8, 8)), ((64,), (8, 8, 1))],
)
def test_conv_accepts_images_or_flat_rows(digits, shape, input_shape):
    X, _ = digits
    data = X.reshape(len(X), *shape)
    ae = AutoencoderTransformer(
        architecture="conv", input_shape=input_shape, **TINY
    ).fit(data)
    assert ae.n_features_in_ == 64
    assert ae.input_shape_ == (input_shape or shape)
    Z = ae.transform(data)
    assert Z.shape == (300, 2)
    # Images in, images out; rows in, rows out.
    assert ae.inverse_transform(Z).shape == data.shape
    # Flat rows or images of the same pixels encode the same.
    np.testing.assert_array_equal(ae.transform(X), Z)
    assert ae.score_samples(data).shape == (300,)
    assert ae.__sklearn_tags__().input_tags.three_d_array


def test_conv_layers_follow_hidden_layer_sizes(digits):
    _, images = digits
    ae = AutoencoderTransformer(
        architecture="conv", hidden_layer_sizes=(16, 8, 8), epochs=1, random_state=0
    ).fit(images)
    convs = [layer for layer in ae.encoder_.layers if "conv" in layer.name]
    assert [layer.filters for layer in convs] == [16, 8, 8]
    assert ae.hidden_layer_sizes_ == (16, 8, 8)
    # 8x8 -> 4x4 -> 2x2 -> 1x1 with "same" pooling, then a dense code.
    assert ae.encoder_.get_layer("flatten").output.shape == (None, 8)


def test_conv_code_can_be_the_last_feature_map(digits):
    _, images = digits
    ae = AutoencoderTransformer(
        n_components=None,
        architecture="conv",
        hidden_layer_sizes=(8, 4),
        epochs=1,
        random_state=0,
    ).fit(images)
    # 8x8 -> 4x4 -> 2x2 maps of 4 filters: 16 values.
    assert ae.n_components_ == 16
    assert ae.transform(images).shape == (300, 16)
    assert ae.inverse_transform(ae.transform(images)).shape == (300, 8, 8)
    assert len(ae.get_feature_names_out()) == 16


def test_conv_recipe_shapes_for_mnist():
    # Conv2D 16-8-8 with 2x2 pooling down to a (4, 4, 8) code, mirrored.
    encoder, decoder = build_conv((28, 28, 1), None, (16, 8, 8))
    assert encoder.get_layer("encoder_pool_2").output.shape == (None, 4, 4, 8)
    assert encoder.output_shape == (None, 128)
    ups = [layer for layer in decoder.layers if "upsample" in layer.name]
    assert len(ups) == 3
    assert decoder.output_shape == (None, 28, 28, 1)


def test_n_components_none_needs_a_network_that_sets_it(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="Expected an int n_components"):
        AutoencoderTransformer(n_components=None, **TINY).fit(X)


# -- user-supplied networks ------------------------------------------------------


def test_user_networks_are_used(fitted):
    ae = fitted["user-networks"]
    assert [type(layer).__name__ for layer in ae.encoder_.layers[1].layers] == [
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert ae.hidden_layer_sizes_ is None
    assert ae.encoder_.output_shape == (None, 2)
    assert ae.decoder_.output_shape == (None, 64)


def test_user_builders_can_be_lambdas(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        encoder=lambda input_shape, n_components: keras.Sequential(
            [keras.Input(input_shape), keras.layers.Dense(n_components)]
        ),
        **TINY,
    ).fit(X)
    assert ae.transform(X).shape == (300, 2)
    # The decoder is the built-in one.
    assert ae.hidden_layer_sizes_ == (4,)


def test_user_builders_get_image_shapes(digits):
    _, images = digits
    seen = []

    def encoder(input_shape, n_components):
        seen.append((input_shape, n_components))
        return small_encoder(input_shape, n_components)

    ae = AutoencoderTransformer(
        encoder=encoder, decoder=small_decoder, input_shape=(8, 8, 1), **TINY
    ).fit(images)
    assert seen == [((8, 8, 1), 2)]
    assert ae.inverse_transform(ae.transform(images)).shape == (300, 8, 8)


def test_user_encoder_sets_the_code_width_when_n_components_is_none(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        n_components=None, encoder=small_encoder, decoder=small_decoder, **TINY
    ).fit(X)
    # small_encoder picks 3 units when it is given None.
    assert ae.n_components_ == 3
    assert ae.transform(X).shape == (300, 3)
    assert ae.get_feature_names_out().shape == (3,)


def test_user_model_is_copied_not_trained_in_place(digits):
    X, _ = digits
    template = small_encoder((64,), 2)
    before = [w.copy() for w in template.get_weights()]
    ae = AutoencoderTransformer(
        encoder=template, decoder=small_decoder((64,), 2), **TINY
    ).fit(X)
    for w0, w1 in zip(before, template.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)
    assert ae.get_params()["encoder"] is template
    trained = {id(v) for v in ae.encoder_.weights}
    assert not trained & {id(v) for v in template.weights}
    # Fresh weights from random_state, as for the built-in networks.
    again = AutoencoderTransformer(
        encoder=template, decoder=small_decoder((64,), 2), **TINY
    ).fit(X)
    np.testing.assert_array_equal(again.transform(X), ae.transform(X))


def test_user_model_params_survive_clone_set_params_and_pickle(digits):
    X, _ = digits
    template = small_encoder((64,), 2)
    ae = AutoencoderTransformer(encoder=template, **TINY)
    copy = clone(ae)
    assert copy.encoder is not template
    assert _layer_configs(copy.encoder) == _layer_configs(template)
    other = small_encoder((64,), 2)
    assert copy.set_params(encoder=other).encoder is other
    restored = pickle.loads(pickle.dumps(ae.fit(X)))
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))
    assert _layer_configs(restored.encoder) == _layer_configs(template)


def _layer_configs(model):
    # Without build configs: a deep copy may turn their shape tuples into lists.
    return [
        {k: v for k, v in layer.get_config().items() if k != "build_config"}
        for layer in model.layers
    ]


def test_user_builders_leave_python_random_alone(digits, tmp_path):
    X, _ = digits
    state = random.getstate()
    ae = make("user-networks").fit(X)
    assert random.getstate() == state
    # transform's float64 twin and load rebuild the user layers too.
    ae.transform(X)
    assert random.getstate() == state
    with warnings.catch_warnings():
        # That the builders are saved as None, tested in test_persistence.
        warnings.simplefilter("ignore", UserWarning)
        path = ae.save(tmp_path / "ae.skae")
    skae.load(path).transform(X)
    assert random.getstate() == state


def _dense_out(units):
    return lambda input_shape, n_components: keras.Sequential(
        [keras.Input((n_components,)), keras.layers.Dense(units)]
    )


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (
            dict(encoder=small_encoder((10,), 2)),
            ValueError,
            r"Expected the encoder to take inputs of shape \(None, 64\)\. "
            r"Received: encoder with input_shape=\(None, 10\)",
        ),
        (
            dict(encoder=small_encoder((64,), 3)),
            ValueError,
            r"Expected the encoder to output codes of shape \(None, 2\)\. "
            r"Received: encoder with output_shape=\(None, 3\)",
        ),
        (
            dict(decoder=_dense_out(5)),
            ValueError,
            r"Expected the decoder to output reconstructions of shape "
            r"\(None, 64\), the shape of the input\. Received: decoder with "
            r"output_shape=\(None, 5\)",
        ),
        (
            dict(decoder=small_decoder((64,), 3)),
            ValueError,
            r"Expected the decoder to take inputs of shape \(None, 2\)",
        ),
        (
            dict(encoder=lambda input_shape, n_components: "not a model"),
            TypeError,
            r"Expected encoder\(input_shape, n_components\) to return a keras.Model",
        ),
    ],
)
def test_user_network_shapes_are_checked(digits, params, error, message):
    X, _ = digits
    with pytest.raises(error, match=message):
        AutoencoderTransformer(**TINY, **params).fit(X)


def _layer_kinds(model):
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize(
    "build, hidden_kind",
    [(build_dense, "Dense"), (build_conv, "Conv2D")],
)
def test_layer_normalization_sits_between_encoder_layers_and_activations(
    build, hidden_kind
):
    encoder, decoder = build(
        (8, 8), 2, (6, 4), activation="gelu", normalization="layer"
    )
    kinds = _layer_kinds(encoder)
    norms = [i for i, kind in enumerate(kinds) if kind == "LayerNormalization"]
    assert len(norms) == 2
    for at in norms:
        assert kinds[at - 1] == hidden_kind and kinds[at + 1] == "Activation"
        assert encoder.layers[at - 1].activation.__name__ == "linear"
        assert encoder.layers[at + 1].activation.__name__ == "gelu"
    # The decoder is left plain.
    assert "LayerNormalization" not in _layer_kinds(decoder)
    plain, _ = build((8, 8), 2, (6, 4), activation="gelu")
    assert "LayerNormalization" not in _layer_kinds(plain)


def test_layer_normalization_gives_the_same_codes_for_rescaled_hidden_weights(digits):
    # What normalising buys: scaling a hidden layer's weights and bias (as
    # training can drift them) leaves the code unchanged.
    X, _ = digits
    ae = make("layer-norm").fit(X)
    before = ae.transform(X)
    layer = ae.encoder_.get_layer("encoder_0")
    layer.set_weights([3.0 * w for w in layer.get_weights()])
    np.testing.assert_allclose(ae.transform(X), before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("build", [build_dense, build_conv])
@pytest.mark.parametrize("value", ["batch", True, "Layer"])
def test_unknown_normalization_is_refused_by_the_builders(build, value):
    with pytest.raises(ValueError, match=f"normalization={value!r}"):
        build((8, 8), 2, (4,), normalization=value)


@pytest.mark.parametrize("value", ["batch", True, "Layer"])
def test_unknown_normalization_is_refused_by_the_estimator(value):
    with pytest.raises(ValueError, match="'normalization' parameter"):
        AutoencoderTransformer(normalization=value, **TINY).fit(np.ones((10, 3)))


def test_builders_agree_with_the_estimator():
    encoder, decoder = build_dense((8, 8), 2, (4,))
    assert encoder.input_shape == (None, 8, 8)
    assert decoder.output_shape == (None, 8, 8)
    encoder, decoder = build_conv((64,), 2, (4,))
    assert encoder.output_shape == (None, 2)
    assert decoder.output_shape == (None, 64)
