"""Trainers kept between fits (``skae._pool``).

A repeated fit of the same graph reuses an idle trainer: it traces nothing,
its results are those of a fit with a trainer of its own, bit for bit, and
the networks a fitted estimator holds are never trained by another fit.
"""

import threading

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from skae import AutoencoderTransformer, _backend, _pool

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.skipif(
        _backend.name() != "tensorflow",
        reason="trainers are pooled on TensorFlow only",
    ),
]

PARAMS = dict(n_components=3, hidden_layer_sizes=(16,), epochs=4, random_state=0)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:240]


@pytest.fixture
def new_trainers(monkeypatch):
    """The number of trainers the pool has built since the test began."""
    _pool.clear()
    built = []
    make = _pool._new_pooled

    def counted(*args, **kwargs):
        built.append(1)
        return make(*args, **kwargs)

    monkeypatch.setattr(_pool, "_new_pooled", counted)
    return built


def _unpooled(monkeypatch):
    monkeypatch.setattr(_pool, "graph_key", lambda *args: None)


def _result(est, X):
    return est.transform(X), est.inverse_transform(est.transform(X)), est.history_


def _assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"init": "random", "noise": 0.1, "masking": 0.1},
        {"learning_rate": 3e-3},
        # The structure term's 512 edges would be clipped to each fit's rows.
        {"structure_weight": 1.0, "n_components": 2, "batch_size": 64},
    ],
    ids=["pca-start", "random-noise-masking", "learning-rate", "structure"],
)
def test_a_repeated_fit_traces_nothing_and_matches_a_fit_of_its_own(
    X, params, new_trainers, monkeypatch
):
    params = {**PARAMS, **params}
    # A first fit of another seed and other rows fills the pool.
    AutoencoderTransformer(**{**params, "random_state": 1}).fit(X[40:])
    built = len(new_trainers)
    assert built >= 1
    pooled = _result(AutoencoderTransformer(**params).fit(X), X)
    assert len(new_trainers) == built
    _unpooled(monkeypatch)
    _assert_same(pooled, _result(AutoencoderTransformer(**params).fit(X), X))


def test_fitted_networks_are_never_trained_by_a_later_fit(X, new_trainers):
    first = AutoencoderTransformer(**PARAMS).fit(X)
    codes = first.transform(X)
    second = AutoencoderTransformer(**{**PARAMS, "random_state": 1}).fit(X[::-1])
    assert len(new_trainers) >= 1
    np.testing.assert_array_equal(first.transform(X), codes)
    pooled = {
        id(v)
        for trainers in _pool._idle.values()
        for trainer in trainers
        for v in trainer.autoencoder.weights
    }
    for est in (first, second):
        for model in (est.encoder_, est.decoder_):
            assert not pooled & {id(v) for v in model.weights}


def test_a_grid_of_learning_rates_shares_one_graph(X, new_trainers):
    for rate in (1e-3, 3e-3, 1e-2):
        AutoencoderTransformer(**{**PARAMS, "learning_rate": rate}).fit(X)
    # The trained networks and PCA's codes with a trained decoder: two graphs.
    assert len(new_trainers) == 2


def test_fits_in_threads_match_fits_in_turn(X, new_trainers):
    seeds = range(3)
    expected = [
        _result(AutoencoderTransformer(**{**PARAMS, "random_state": s}).fit(X), X)
        for s in seeds
    ]
    results = {}

    def fit(seed):
        est = AutoencoderTransformer(**{**PARAMS, "random_state": seed}).fit(X)
        results[seed] = _result(est, X)

    threads = [threading.Thread(target=fit, args=(s,)) for s in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in seeds:
        _assert_same(results[seed], expected[seed])


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_fit_keeps_its_weights_and_the_pool_its_trainer(X, new_trainers):
    est = AutoencoderTransformer(**{**PARAMS, "callbacks": [_Interrupt()]})
    with pytest.warns(UserWarning, match="interrupted"):
        with pytest.raises(KeyboardInterrupt):
            est.fit(X)
    assert est.n_iter_ == 2 and np.isfinite(est.transform(X)).all()
    # The interrupted fit's trainer went back to the pool; it did not train
    # a decoder on PCA's codes, whose trainer the next fit builds.
    assert len(new_trainers) == 1 and sum(map(len, _pool._idle.values())) == 1
    again = _result(AutoencoderTransformer(**PARAMS).fit(X), X)
    assert len(new_trainers) == 2
    _pool.clear()
    _assert_same(again, _result(AutoencoderTransformer(**PARAMS).fit(X), X))


class _Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


@pytest.mark.parametrize(
    "layer",
    [_Scale, lambda: keras.layers.Lambda(lambda x: 2.0 * x)],
    ids=["subclass", "lambda"],
)
def test_networks_of_a_users_layers_are_not_pooled(X, new_trainers, layer):
    def encoder(input_shape, n_components):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, layer()(keras.layers.Dense(n_components)(inputs)))

    est = AutoencoderTransformer(**{**PARAMS, "encoder": encoder}).fit(X)
    assert est.n_iter_ >= 1 and not new_trainers


def test_the_key_tells_graphs_apart():
    from skae._training import TrainerOptions
    from skae.architectures import build_dense

    options = TrainerOptions("mse", "adam", 1e-3, 32, 0.0, 0.0, 0.0)
    small = build_dense(8, 2, (4,), seed=0)
    key = _pool.graph_key(*small, options, 32)
    assert key == _pool.graph_key(*build_dense(8, 2, (4,), seed=5), options, 32)
    assert key != _pool.graph_key(*build_dense(8, 2, (5,), seed=0), options, 32)
    assert key != _pool.graph_key(*small, options, 16)
    other = TrainerOptions("mse", "sgd", 1e-3, 32, 0.0, 0.0, 0.0)
    assert key != _pool.graph_key(*small, other, 32)
    rate = TrainerOptions("mse", "adam", 1e-2, 32, 0.0, 0.0, 0.0)
    assert key == _pool.graph_key(*small, rate, 32)


def _partial_fits(X, est):
    for chunk in (X[:120], X[120:]):
        est.partial_fit(chunk)
    return est.transform(X), est.history_


def test_partial_fit_after_fit_traces_nothing_and_matches(X, new_trainers, monkeypatch):
    # A sparse code: fit keeps the trained networks, never PCA's.
    params = {**PARAMS, "batch_size": 32, "code_l1": 1e-12}
    est = AutoencoderTransformer(**params).fit(X)
    encoder, built = est.encoder_, len(new_trainers)
    pooled = _partial_fits(X, est)
    # The estimator's own networks, trained through the pooled trainer it took.
    assert est.encoder_ is encoder and len(new_trainers) == built
    assert not any(_pool._idle.values()) or all(
        t is not est._trainer for ts in _pool._idle.values() for t in ts
    )
    _unpooled(monkeypatch)
    again = _partial_fits(X, AutoencoderTransformer(**params).fit(X))
    np.testing.assert_array_equal(pooled[0], again[0])
    assert pooled[1] == again[1]


def test_a_first_partial_fit_takes_a_pooled_trainer(X, new_trainers, monkeypatch):
    params = {**PARAMS, "init": "random", "batch_size": 32}
    AutoencoderTransformer(**params).fit(X)
    built = len(new_trainers)
    est = AutoencoderTransformer(**params)
    pooled = _partial_fits(X, est)
    assert len(new_trainers) == built
    assert est.encoder_ is est._trainer.encoder
    _unpooled(monkeypatch)
    again = _partial_fits(X, AutoencoderTransformer(**params))
    np.testing.assert_array_equal(pooled[0], again[0])
    assert pooled[1] == again[1]


def test_partial_fit_follows_set_params_on_a_pooled_trainer(X, monkeypatch):
    # Pooled trainers were built for other rates: each call must train at
    # the estimator's own, and a changed rate must give a new optimizer.
    params = {**PARAMS, "init": "random", "batch_size": 32, "optimizer": "rmsprop"}

    def run():
        for rate in (1e-1, 1e-4):
            AutoencoderTransformer(**{**params, "learning_rate": rate}).fit(X)
        est = AutoencoderTransformer(**{**params, "learning_rate": 1e-2})
        est.partial_fit(X[:120]).partial_fit(X[120:])
        est.set_params(learning_rate=1e-3).partial_fit(X[:120])
        return est.transform(X), est.history_

    _pool.clear()
    pooled = run()
    _unpooled(monkeypatch)
    again = run()
    np.testing.assert_array_equal(pooled[0], again[0])
    assert pooled[1] == again[1]
