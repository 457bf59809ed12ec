"""Every architecture behaves as the default one; the public builders.

Deep, linear, sparse, denoising, convolutional and user-supplied networks all go
through the same scikit-learn checks (modelled on keras' own
keras/src/wrappers/sklearn_test.py), pickling, seeding and cloning; then the
features of each are tested, and ``skae.architectures``' public builders
(``build_dense``, ``build_conv``, ``auto_hidden_layer_sizes``). What the
estimator takes as input is tested in test_input.py, user networks in
test_networks.py.
"""

import itertools
import math
import pickle
import warnings

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import AutoencoderTransformer
from skae.architectures import auto_hidden_layer_sizes, build_conv, build_dense

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


# Two epochs never converge; the warning is tested in test_training.py.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


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


def test_deep_encoder_has_the_requested_layers(digits):
    X, _ = digits
    # From a random start: the classic deep recipe's layers (code_l1 keeps
    # the trained networks, which PCA's would replace after two epochs).
    ae = make("deep", init="random", code_l1=1e-12).fit(X)
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
    clean = ae.encoder_(Xs, training=False).numpy() * ae.code_scale_
    np.testing.assert_allclose(Z, clean, rtol=1e-5, atol=1e-6)


# -- convolutional -------------------------------------------------------------


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


# -- the builders: layer normalisation, shapes, auto widths ---------------------


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
    # code_l1 keeps the trained networks (PCA is then no candidate) to look at.
    ae = make("layer-norm", code_l1=1e-12).fit(X)
    before = ae.transform(X)
    layer = ae.encoder_.get_layer("encoder_0")
    layer.set_weights([3.0 * w for w in layer.get_weights()])
    np.testing.assert_allclose(ae.transform(X), before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("build", [build_dense, build_conv])
@pytest.mark.parametrize("value", ["batch", True, "Layer"])
def test_unknown_normalization_is_refused_by_the_builders(build, value):
    with pytest.raises(ValueError, match=f"normalization={value!r}"):
        build((8, 8), 2, (4,), normalization=value)


def test_builders_agree_with_the_estimator():
    encoder, decoder = build_dense((8, 8), 2, (4,))
    assert encoder.input_shape == (None, 8, 8)
    assert decoder.output_shape == (None, 8, 8)
    encoder, decoder = build_conv((64,), 2, (4,))
    assert encoder.output_shape == (None, 2)
    assert decoder.output_shape == (None, 64)


@pytest.mark.parametrize(
    "n_features, n_components, expected",
    [
        (5, 2, (64,)),
        (64, 2, (256, 128)),
        (784, 2, (512, 256, 128)),
        (784, 40, (512, 256)),
        (784, 200, (512,)),
    ],
)
def test_auto_hidden_layer_sizes_halve_down_to_four_times_the_code(
    n_features, n_components, expected
):
    sizes = auto_hidden_layer_sizes(n_features, n_components)
    assert sizes == expected
    # Widest first, each next one half, none under four times the code (past
    # the first, which is at least 64 and at most 512).
    assert 64 <= sizes[0] <= 512 and len(sizes) <= 3
    assert all(b == a // 2 for a, b in itertools.pairwise(sizes))
    assert all(size >= max(128, 4 * n_components) for size in sizes[1:])


@pytest.mark.parametrize("n_components, width", [(2, 128), (32, 128), (40, 160)])
def test_auto_hidden_layer_sizes_with_structure_are_four_equal_layers(
    n_components, width
):
    assert auto_hidden_layer_sizes(784, n_components, structure=True) == (width,) * 4
