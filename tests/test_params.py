"""Parameters: every check and every "auto" rule of ``skae._params``.

A bad parameter is refused naming itself, before X is read; the "auto" rules
(batch size, epochs, output activation, the PCA start) resolve as documented,
into a frozen ``Plan``.
"""

import dataclasses
import pickle
import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import skae
from skae import AutoencoderTransformer
from skae._params import Plan, auto_batch_size, auto_epochs, make_plan

SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)


def small(**params):
    return AutoencoderTransformer(**{**SMALL, **params})


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:300]


class CountingRows:
    """A sliceable array-like, as an h5py dataset, that counts its reads.

    skae streams such an object (a 2-D ``shape``, a NumPy ``dtype`` and
    ``__getitem__``): every row it reads goes through ``__getitem__``.
    """

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return self._data[key]


# -- bad parameters --------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": True}, r"Received: n_components=True"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "big"}, "hidden_layer_sizes"),
        ({"loss": "mae"}, "loss"),
        ({"scaling": "log"}, "scaling"),
        ({"hidden_layer_sizes": (True,)}, r"Received: hidden_layer_sizes=\(True,\)"),
        ({"optimizer": "no-such-optimizer"}, "optimizer"),
        # The abstract base class, and a wrapper needing an inner optimizer.
        ({"optimizer": "Optimizer"}, "Received: optimizer='Optimizer'"),
        ({"optimizer": "LossScaleOptimizer"}, "Received: optimizer='LossScale"),
        ({"activation": "no-such"}, "Received: activation='no-such'"),
        ({"code_activation": "no-such"}, "Received: code_activation='no-such'"),
        ({"output_activation": "no-such"}, "Received: output_activation='no-such'"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"masking": 1.0}, "masking"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_parameters_name_themselves(params, match, X):
    with pytest.raises(ValueError, match=match):
        small(**params).fit(X)


BEFORE_READING = [
    (dict(optimizer="no-such"), "optimizer='no-such'"),
    (dict(activation="nope"), "activation='nope'"),
    (dict(hidden_layer_sizes=(0,)), r"hidden_layer_sizes=\(0,\)"),
    (dict(init="pca", architecture="conv"), "architecture='conv'"),
    (dict(structure_weight=1.0, optimizer="no-such"), "optimizer='no-such'"),
    (dict(input_shape=(8, -8)), r"input_shape=\(8, -8\)"),
    (dict(n_components=None), "n_components=None"),
    # scikit-learn's own parameter constraints.
    (dict(n_components=0), "'n_components' parameter"),
    (dict(learning_rate=-1.0), "'learning_rate' parameter"),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(
    "params, match", BEFORE_READING, ids=[str(p) for p, _ in BEFORE_READING]
)
def test_parameters_are_checked_before_any_data_is_read(X, method, params, match):
    rows = CountingRows(X)
    ae = small(**params)
    with pytest.raises(ValueError, match=match):
        getattr(ae, method)(rows)
    assert rows.reads == 0
    assert not hasattr(ae, "n_features_in_")


def test_a_fraction_is_refused_by_partial_fit_before_any_data_is_read(X):
    rows = CountingRows(X)
    with pytest.raises(ValueError, match=r"n_components=0\.5"):
        small(n_components=0.5).partial_fit(rows)
    assert rows.reads == 0


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_the_counting_input_is_read_by_a_valid_fit(X, method):
    # The control of the tests above: a fit with good parameters reads it.
    rows = CountingRows(X)
    ae = getattr(small(epochs=1), method)(rows)
    assert rows.reads > 0
    np.testing.assert_array_equal(ae.transform(rows), ae.transform(X))


@pytest.mark.parametrize("value", ["batch", True, "Layer"])
def test_unknown_normalization_is_refused_by_the_estimator(value):
    with pytest.raises(ValueError, match="'normalization' parameter"):
        small(normalization=value).fit(np.ones((10, 3)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"architecture": "conv", "input_shape": (8, 8)}, "architecture='conv'"),
        ({"loss": "binary_crossentropy"}, "loss='binary_crossentropy'"),
        ({"output_activation": "sigmoid"}, "output_activation='sigmoid'"),
    ],
)
def test_pca_init_refuses_what_cannot_start_at_pca(params, match, X):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(init="pca", **SMALL, **params).fit(X)


def test_fraction_of_variance_refused_by_partial_fit(X):
    with pytest.raises(ValueError, match="int n_components for partial_fit"):
        AutoencoderTransformer(0.9).partial_fit(X)


def _small_encoder(input_shape, n_components):
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Dense(n_components)]
    )


def _small_decoder(input_shape, n_components):
    return keras.Sequential(
        [keras.Input((n_components,)), keras.layers.Dense(int(np.prod(input_shape)))]
    )


CHANGED_NETWORKS = [
    ({"n_components": 3}, r"n_components=2 .*Received: n_components=3"),
    ({"hidden_layer_sizes": [4]}, r"\(8,\) .*Received: hidden_layer_sizes=\[4\]"),
    # Silently ignored before: get_params described networks never built.
    ({"n_components": 0.5}, r"n_components=2 .*Received: n_components=0\.5"),
    (
        {"architecture": "conv", "input_shape": (8, 8)},
        r"architecture='dense'.*Received: .*architecture='conv'",
    ),
    ({"input_shape": (8, 8)}, r"input_shape=\(64,\) .*Received: input_shape=\(8, 8\)"),
    ({"init": "random"}, r"init='pca' .*Received: init='random'"),
    ({"encoder": _small_encoder}, r"encoder=None .*Received: encoder=<function"),
    ({"decoder": _small_decoder}, r"decoder=None .*Received: decoder=<function"),
    ({"activation": "tanh"}, r"activation='relu' .*Received: activation='tanh'"),
    ({"code_activation": "tanh"}, r"code_activation=None .*Received: code_activation"),
    ({"output_activation": "sigmoid"}, r"output_activation='auto' .*Received"),
    ({"normalization": "layer"}, r"normalization=None .*Received: normalization"),
    ({"code_l1": 0.1}, r"code_l1=0\.0 .*Received: code_l1=0\.1"),
]


@pytest.mark.parametrize(
    "params, match", CHANGED_NETWORKS, ids=[str(p) for p, _ in CHANGED_NETWORKS]
)
def test_partial_fit_refuses_a_parameter_that_shapes_the_networks(params, match, X):
    ae = AutoencoderTransformer(**SMALL).partial_fit(X)
    before, original = ae.transform(X[:5]), ae.get_params()
    ae.set_params(**params)
    with pytest.raises(ValueError, match=match) as info:
        ae.partial_fit(X)
    assert "call fit" in str(info.value)
    assert ae.n_iter_ == 1
    np.testing.assert_array_equal(ae.transform(X[:5]), before)
    # fit builds new networks from the changed parameters.
    fitted = AutoencoderTransformer(**{**SMALL, **params}).fit(X)
    assert fitted.partial_fit(X).n_iter_ == fitted.n_iter_
    # Set back, or to the same values in other types, they are no change.
    ae.set_params(**{name: original[name] for name in params})
    ae.set_params(n_components=np.int64(2), hidden_layer_sizes=[8]).partial_fit(X)
    assert ae.n_iter_ == 2


def test_partial_fit_takes_changed_training_parameters(X):
    ae = AutoencoderTransformer(**SMALL).partial_fit(X)
    ae.set_params(
        learning_rate=1e-2,
        optimizer="sgd",
        epochs=7,
        batch_size=16,
        verbose=0,
        noise=0.1,
        masking=0.1,
        structure_weight=0.5,
        loss="binary_crossentropy",
        scaling="minmax",
        tol=1e-3,
        random_state=3,
        early_stopping=True,
        init="auto",  # what the networks started from does not change
    )
    assert ae.partial_fit(X).n_iter_ == 2


def test_partial_fit_after_a_search_keeps_its_fraction(X):
    ae = small(n_components=0.5).fit(X)
    k = ae.n_components_
    assert ae.partial_fit(X).n_iter_ == ae.n_iter_
    # The size the search found, as an int, is the same networks too.
    ae.set_params(n_components=k).partial_fit(X)
    with pytest.raises(ValueError, match=r"n_components=0\.5 .*n_components=0\.7"):
        ae.set_params(n_components=0.7).partial_fit(X)


def test_partial_fit_refuses_an_int_code_where_the_network_set_its_own(X):
    # With None the conv map is the code; an int adds a code layer.
    images = X.reshape(-1, 8, 8)
    ae = small(architecture="conv", n_components=None, hidden_layer_sizes=(4,))
    ae.partial_fit(images)
    k = ae.n_components_
    ae.set_params(n_components=k)
    with pytest.raises(ValueError, match=rf"n_components=None .*n_components={k}"):
        ae.partial_fit(images)
    ae.set_params(n_components=None, input_shape=(8, 8, 1)).partial_fit(images)
    assert ae.n_iter_ == 2


def test_the_built_parameters_survive_pickling_and_saving(X, tmp_path):
    ae = small(encoder=_small_encoder).partial_fit(X)
    with warnings.catch_warnings():
        # That the encoder is saved as None, tested in test_persistence.
        warnings.simplefilter("ignore", UserWarning)
        path = ae.save(tmp_path / "ae.skae")
    for copy in (pickle.loads(pickle.dumps(ae)), skae.load(path)):
        copy.set_params(encoder=_small_encoder)  # a file saves no function
        assert copy.partial_fit(X).n_iter_ == 2
        with pytest.raises(ValueError, match="Received: activation='tanh'"):
            copy.set_params(activation="tanh").partial_fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(structure_weight=-1.0), "structure_weight"),
        (dict(structure_weight="big"), "structure_weight"),
        (dict(n_neighbors=0), "n_neighbors"),
        (dict(n_neighbors=2.5), "n_neighbors"),
    ],
)
def test_bad_structure_parameters_are_refused(X, params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**params).fit(X)


def test_n_components_none_needs_a_network_that_sets_it(X):
    with pytest.raises(ValueError, match="Expected an int n_components"):
        small(n_components=None).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_layer_sizes=(8, 0)), r"hidden_layer_sizes=\(8, 0\)"),
        (dict(hidden_layer_sizes=(8, 2.5)), r"hidden_layer_sizes=\(8, 2.5\)"),
        (dict(hidden_layer_sizes=[True]), r"hidden_layer_sizes=\[True\]"),
        (dict(input_shape=()), r"input_shape=\(\)"),
        (dict(input_shape=(8, 0)), r"input_shape=\(8, 0\)"),
        (dict(input_shape=[8, 8.0]), r"input_shape=\[8, 8.0\]"),
        (dict(input_shape=(8, True)), r"input_shape=\(8, True\)"),
    ],
)
def test_hidden_layer_sizes_and_input_shape_need_positive_ints(params, match):
    with pytest.raises(ValueError, match=match):
        make_plan(AutoencoderTransformer(**params), incremental=False)


def test_hidden_layer_sizes_and_input_shape_become_tuples_of_ints():
    ae = AutoencoderTransformer(
        hidden_layer_sizes=[np.int64(16), 8], input_shape=[np.int32(8), 8]
    )
    plan = make_plan(ae, incremental=False)
    assert plan.hidden_layer_sizes == (16, 8) and plan.input_shape == (8, 8)
    assert all(type(d) is int for d in plan.hidden_layer_sizes + plan.input_shape)
    assert (
        make_plan(AutoencoderTransformer(), incremental=False).hidden_layer_sizes
        is None
    )
    # Sizes are for the built-in networks: with both of the user's, none.
    both = AutoencoderTransformer(
        encoder=keras.Sequential(), decoder=keras.Sequential(), hidden_layer_sizes=(0,)
    )
    assert make_plan(both, incremental=False).hidden_layer_sizes is None


def test_callbacks_must_be_keras_callbacks():
    with pytest.raises(TypeError, match=r"keras.callbacks.Callback.*\['x'\]"):
        make_plan(AutoencoderTransformer(callbacks=["x"]), incremental=False)
    callback = keras.callbacks.Callback()
    plan = make_plan(AutoencoderTransformer(callbacks=[callback]), incremental=False)
    assert plan.callbacks == (callback,)


# -- the plan ------------------------------------------------------------------


def test_make_plan_returns_a_frozen_plan():
    plan = make_plan(AutoencoderTransformer(epochs=7), incremental=False)
    assert isinstance(plan, Plan) and plan.epochs == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.trainer.learning_rate = 1.0
    assert plan.epochs == 7


@pytest.mark.parametrize(
    "params, incremental, fitted, holds_out",
    [
        (dict(), False, False, False),
        (dict(early_stopping=True), False, False, True),
        (dict(n_components=0.9), False, False, True),
        # partial_fit never holds rows out, and never searches.
        (dict(early_stopping=True), True, False, False),
        (dict(n_components=0.9), True, True, False),
    ],
)
def test_validation_rows_are_held_out_by_fit_only(
    X, params, incremental, fitted, holds_out
):
    ae = small(**params)
    previous = None
    if fitted:
        previous = small(**params).fit(X)
    plan = make_plan(ae, incremental=incremental, fitted=previous)
    assert plan.holds_out is holds_out
    assert plan.search is (params.get("n_components") == 0.9 and not incremental)
    assert plan.incremental is incremental


# -- "auto" rules ------------------------------------------------------------


@pytest.mark.parametrize(
    "n_samples, expected",
    [(0, 32), (1, 32), (1280, 32), (2560, 64), (3000, 64), (5120, 128), (10**7, 128)],
)
def test_auto_batch_size_is_a_power_of_two_near_n_over_40(n_samples, expected):
    assert auto_batch_size(n_samples) == expected
    assert type(auto_batch_size(n_samples)) is int


@pytest.mark.parametrize(
    "n_samples, expected",
    [(0, 500), (1, 500), (500, 500), (1000, 250), (12_500, 20), (10**6, 20)],
)
def test_auto_epochs_see_250000_samples_within_20_to_500(n_samples, expected):
    assert auto_epochs(n_samples) == expected
    assert type(auto_epochs(n_samples)) is int


def test_plan_resolves_auto_epochs_and_batch_size_for_the_rows():
    auto = make_plan(AutoencoderTransformer(), incremental=False)
    assert (auto.epochs_for(1000), auto.batch_size_for(2560)) == (250, 64)
    fixed = make_plan(
        AutoencoderTransformer(epochs=7, batch_size=16), incremental=False
    )
    assert (fixed.epochs_for(1000), fixed.batch_size_for(2560)) == (7, 16)


@pytest.mark.parametrize(
    "params, expected",
    [
        (dict(), ("relu", None, 1e-3, 64)),
        (dict(structure_weight=1.0), ("gelu", "layer", 1e-2, 512)),
        (dict(structure_weight=0.5, activation="tanh"), ("tanh", "layer", 1e-2, 512)),
        (
            dict(structure_weight=1.0, normalization=None, learning_rate=3e-3),
            ("gelu", None, 3e-3, 512),
        ),
        (dict(structure_weight=1.0, batch_size=100), ("gelu", "layer", 1e-2, 100)),
    ],
)
def test_auto_training_parameters_follow_the_structure_term(params, expected):
    plan = make_plan(AutoencoderTransformer(**params), incremental=False)
    resolved = (
        plan.activation,
        plan.normalization,
        plan.trainer.learning_rate,
        plan.batch_size_for(2560),
    )
    assert resolved == expected


def test_auto_activation_continues_the_fitted_networks(X):
    # The structure term set after fit: "auto" keeps the networks' ReLU and
    # no normalisation; an explicit value that differs is refused.
    ae = AutoencoderTransformer(code_l1=1e-12, **SMALL).fit(X)
    ae.set_params(structure_weight=1.0, batch_size=16).partial_fit(X)
    assert ae.n_iter_ == SMALL["epochs"] + 1
    with pytest.raises(ValueError, match=r"activation='relu'.*Received: activation"):
        ae.set_params(activation="gelu").partial_fit(X)
    ae.set_params(activation="relu").partial_fit(X)


@pytest.mark.parametrize(
    "params, scaling, loss",
    [
        (dict(), "center", "mse"),
        (dict(loss="binary_crossentropy"), "minmax", "binary_crossentropy"),
        (dict(loss="binary_crossentropy", scaling="center"), "center", None),
        (dict(scaling=None), None, "mse"),
    ],
)
def test_auto_scaling_follows_the_loss(params, scaling, loss):
    plan = make_plan(AutoencoderTransformer(**params), incremental=False)
    assert plan.scaling == scaling
    assert plan.loss == (loss or params["loss"])
    assert plan.scaling_param == params.get("scaling", "auto")


@pytest.mark.parametrize(
    "params, random_start, pca_start",
    [
        (dict(), None, None),
        (dict(scaling="minmax"), "sigmoid", None),
        (dict(loss="binary_crossentropy"), "sigmoid", None),
        (dict(output_activation="tanh"), "tanh", "tanh"),
        (dict(output_activation=None, scaling="minmax"), None, None),
    ],
)
def test_output_activation_for_a_random_or_a_pca_start(params, random_start, pca_start):
    plan = make_plan(AutoencoderTransformer(**params), incremental=False)
    assert plan.output_activation_for(False) == random_start
    # PCA's reconstruction is unbounded: "auto" is linear for a PCA start.
    assert plan.output_activation_for(True) == pca_start


@pytest.mark.parametrize("n_components", [1, 2, 3, 4, 40, 0.5])
def test_auto_init_starts_at_pca_for_every_code_size(n_components):
    plan = make_plan(AutoencoderTransformer(n_components), incremental=False)
    assert plan.init == "pca"


@pytest.mark.parametrize(
    "params",
    [
        dict(architecture="conv"),
        dict(loss="binary_crossentropy"),
        dict(code_activation="tanh"),
        dict(output_activation="sigmoid"),
        dict(encoder=lambda input_shape, n_components: None),
        dict(decoder=lambda input_shape, n_components: None),
    ],
    ids=["conv", "bce", "code-activation", "output-activation", "encoder", "decoder"],
)
def test_auto_init_starts_at_random_where_pca_cannot_start(params):
    for n_components in (4, 0.5):
        ae = AutoencoderTransformer(n_components, **params)
        assert make_plan(ae, incremental=False).init == "random"
    # Linear activations by name are no obstacle.
    ae = AutoencoderTransformer(8, code_activation="linear", output_activation="linear")
    assert make_plan(ae, incremental=False).init == "pca"


def test_explicit_init_is_kept():
    pca = make_plan(AutoencoderTransformer(2, init="pca"), incremental=False)
    assert pca.init == "pca"
    random_start = AutoencoderTransformer(8, init="random")
    assert make_plan(random_start, incremental=False).init == "random"
