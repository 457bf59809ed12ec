"""Networks from parameters (``skae._networks``).

``build`` with a ``Plan`` from ``skae._params.make_plan``; the user's own
encoders and decoders (models as templates, builder functions), their shapes
checked; and ``fold_scaling``, which re-expresses trained networks for a new
input scaling when ``partial_fit`` changes it.
"""

import math
import pickle
import random
import warnings

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import skae
from skae import AutoencoderTransformer
from skae._inference import Inference
from skae._networks import Networks, build, foldable_layers
from skae._networks import fold_scaling as _fold_scaling
from skae._params import make_plan
from skae._pca_init import pca_basis
from skae.architectures import (
    CONV_AUTO_FILTERS,
    auto_hidden_layer_sizes,
    build_conv,
    build_dense,
)
from skae.datasets import load_digits

# Tiny but real: every fit runs the whole training loop, in a second or two.
TINY = dict(hidden_layer_sizes=(4,), epochs=2, random_state=0)
SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)


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


def make_user(**params):
    """The estimator with both of the user's networks."""
    return AutoencoderTransformer(
        **{**TINY, "encoder": small_encoder, "decoder": small_decoder, **params}
    )


# Two epochs never converge; the warning is tested in test_training.py.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data[:300], data.images[:300]


@pytest.fixture(scope="module")
def X(digits):
    return digits[0]


@pytest.fixture(scope="module")
def user_networks(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_user().fit(X)


def _plan(**params):
    return make_plan(AutoencoderTransformer(**params), incremental=False)


def _weights(networks):
    return networks.encoder.get_weights() + networks.decoder.get_weights()


# -- build ---------------------------------------------------------------------


def test_build_makes_the_networks_the_plan_describes():
    plan = _plan(n_components=3, hidden_layer_sizes=(16, 8))
    networks = build(plan, (64,), 3, seed=0)
    assert isinstance(networks, Networks)
    assert networks.encoder.input_shape == (None, 64)
    assert networks.encoder.output_shape == (None, 3)
    assert networks.decoder.input_shape == (None, 3)
    assert networks.decoder.output_shape == (None, 64)
    assert networks.hidden == (16, 8)
    assert [layer.units for layer in networks.encoder.layers[1:]] == [16, 8, 3]
    # The seed alone sets the weights.
    again, other = build(plan, (64,), 3, seed=0), build(plan, (64,), 3, seed=1)
    for a, b in zip(_weights(networks), _weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(_weights(networks), _weights(other), strict=True)
    )


@pytest.mark.parametrize(
    "params, input_shape, hidden",
    [
        (dict(), (64,), auto_hidden_layer_sizes(64, 2)),
        (dict(structure_weight=1.0), (64,), (128, 128, 128, 128)),
        (dict(architecture="conv"), (8, 8), CONV_AUTO_FILTERS),
    ],
    ids=["dense", "structured", "conv"],
)
def test_build_resolves_auto_hidden_layer_sizes(params, input_shape, hidden):
    networks = build(_plan(**params), input_shape, np.int64(2), seed=0)
    assert networks.hidden == tuple(hidden)
    assert networks.encoder.output_shape == (None, 2)
    assert networks.decoder.output_shape == (None, *input_shape)


def test_build_starts_at_the_pca_basis_given():
    Xs = np.random.RandomState(0).normal(size=(50, 10)) @ np.diag(np.arange(1, 11))
    basis = pca_basis(Xs, 4, random_state=0)
    networks = build(_plan(n_components=4, init="pca"), (10,), 4, seed=0, basis=basis)
    assert "pca_projection" in [layer.name for layer in networks.encoder.layers]
    codes = networks.encoder(Xs.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(
        codes, (Xs - basis.mean) @ basis.components.T, rtol=1e-4, atol=1e-4
    )
    # Without a basis, the same plan builds the plain dense networks.
    plain = build(_plan(n_components=4, init="pca"), (10,), 4, seed=0)
    assert "pca_projection" not in [layer.name for layer in plain.encoder.layers]


def test_build_takes_the_code_width_of_a_user_encoder():
    plan = _plan(n_components=None, encoder=small_encoder, hidden_layer_sizes=(4,))
    networks = build(plan, (64,), None, seed=0)
    # small_encoder picks 3 units when it is given None; the built-in decoder
    # is made for them.
    assert networks.encoder.output_shape == (None, 3)
    assert networks.decoder.input_shape == (None, 3)
    assert networks.hidden == (4,)
    both = build(_plan(encoder=small_encoder, decoder=small_decoder), (64,), 2, seed=0)
    assert both.hidden is None
    assert both.decoder.output_shape == (None, 64)


def test_only_dense_ends_fold_a_new_scaling():
    first, last = foldable_layers(*build_dense((64,), 2, (8,), seed=0))
    assert [layer.name for layer in first] == ["encoder_0"]
    assert len(last) == 1 and isinstance(last[0], keras.layers.Dense)
    assert foldable_layers(*build_conv((8, 8), 2, (4,), seed=0)) is None


# -- user-supplied networks ------------------------------------------------------


def test_user_networks_are_used(user_networks):
    ae = user_networks
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
    ae = make_user().fit(X)
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


# -- folding a new scaling ------------------------------------------------------


@pytest.mark.parametrize("init_params", [{}, {"hidden_layer_sizes": ()}])
def test_folding_a_new_scaling_keeps_the_maps(init_params, X):
    ae = AutoencoderTransformer(**{**SMALL, **init_params}).fit(X)
    codes, rebuilt = ae.transform(X), ae.inverse_transform(ae.transform(X))
    offset, scale = ae.input_offset_ + 3.0, ae.input_scale_ * 2.5
    _fold_scaling(
        ae.encoder_, ae.decoder_, ae.input_offset_, ae.input_scale_, offset, scale
    )
    ae.input_offset_, ae.input_scale_, ae._inference = offset, scale, Inference()
    np.testing.assert_allclose(ae.transform(X), codes, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        ae.inverse_transform(codes), rebuilt, rtol=1e-4, atol=1e-3
    )


def test_partial_fit_of_a_conv_network_updates_its_scaling():
    # No Dense layer to fold into: the new scaling applies as is.
    images = np.random.RandomState(0).rand(40, 8, 8)
    ae = AutoencoderTransformer(architecture="conv", hidden_layer_sizes=(4,))
    ae.partial_fit(images[:20]).partial_fit(images[20:] * 3)
    flat = np.concatenate([images[:20], images[20:] * 3]).reshape(40, -1)
    np.testing.assert_allclose(ae.input_offset_, flat.mean(axis=0), rtol=1e-12)
    assert ae.n_iter_ == 2 and np.isfinite(ae.transform(images)).all()
