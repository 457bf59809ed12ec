"""The structure term (``skae._structure``) and structured fits.

UMAP's fuzzy neighbour graph (exact, or NN-descent for large data), the
contrastive loss, and what a fit with ``structure_weight > 0`` does: the
networks' sizes, the decoder-only phase, the annealed learning rate, chunks
of ``partial_fit``. How such input is read is in test_input.py, the epochs'
XLA compilation in test_training.py.
"""

import importlib.machinery
import pickle
import sys
import types
import warnings

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skae import AutoencoderTransformer, _structure
from skae._structure import contrastive_loss, neighbour_graph
from skae.architectures import auto_hidden_layer_sizes

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def brute_neighbours(X, k):
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


# -- the graph -----------------------------------------------------------------


def test_neighbours_are_the_k_nearest_other_rows():
    X = np.random.RandomState(0).normal(size=(60, 5))
    graph = neighbour_graph(X, n_neighbors=6)
    np.testing.assert_array_equal(graph.neighbours, brute_neighbours(X, 6))
    assert graph.n == 60


def test_graph_is_symmetric_without_self_loops_and_weights_in_0_1():
    X = np.random.RandomState(1).normal(size=(80, 3))
    graph = neighbour_graph(X, n_neighbors=5)
    pairs = zip(graph.heads.tolist(), graph.tails.tolist(), strict=True)
    edges = dict(zip(pairs, graph.weights, strict=True))
    assert all(edges[(t, h)] == w for (h, t), w in edges.items())
    assert not np.any(graph.heads == graph.tails)
    assert np.all((graph.weights > 0) & (graph.weights <= 1))
    # Every row's k neighbours are among its edges.
    for i, row in enumerate(graph.neighbours):
        assert all((i, int(j)) in edges for j in row)


def test_fuzzy_weights_sum_to_log2_k_per_row():
    dist = np.sort(np.random.RandomState(2).uniform(0.5, 3.0, size=(40, 10)), axis=1)
    weights = _structure._fuzzy_weights(dist, 10)
    np.testing.assert_allclose(weights.sum(axis=1), np.log2(10), rtol=1e-6)
    # The nearest neighbour has full membership.
    np.testing.assert_allclose(weights[:, 0], 1.0)


def test_fuzzy_weights_measure_from_the_nearest_distinct_neighbour():
    # UMAP's rho is the nearest non-zero distance: a duplicate (distance 0)
    # and the nearest distinct row both get full membership.
    dist = np.array([[0.0, 1.0, 1.5, 2.0, 2.5], [1.0, 1.2, 1.5, 2.0, 2.5]])
    weights = _structure._fuzzy_weights(dist, 5)
    np.testing.assert_allclose(weights[0, :2], 1.0)
    np.testing.assert_allclose(weights.sum(axis=1), np.log2(5), rtol=1e-6)
    # With two neighbours at full weight, the others share less of log2(k).
    assert np.all(weights[0, 2:] < weights[1, 2:])
    all_duplicates = _structure._fuzzy_weights(np.zeros((1, 4)), 4)
    np.testing.assert_allclose(all_duplicates, 1.0)


def test_batched_queries_give_the_same_graph(monkeypatch):
    X = np.random.RandomState(3).normal(size=(50, 4))
    whole = neighbour_graph(X, n_neighbors=4)
    monkeypatch.setattr(_structure, "_QUERY_ROWS", 7)
    batched = neighbour_graph(X, n_neighbors=4)
    for name in ("heads", "tails", "weights", "neighbours"):
        np.testing.assert_array_equal(getattr(batched, name), getattr(whole, name))


def test_duplicate_rows_never_list_themselves():
    X = np.repeat(np.random.RandomState(4).normal(size=(10, 3)), 3, axis=0)
    graph = neighbour_graph(X, n_neighbors=4)
    assert not np.any(graph.neighbours == np.arange(30)[:, None])
    assert not np.any(graph.heads == graph.tails)
    assert np.all(np.isfinite(graph.weights))


def test_small_data_clips_n_neighbors_and_one_row_has_no_graph():
    assert neighbour_graph(np.zeros((1, 3)), 15) is None
    graph = neighbour_graph(np.arange(8.0).reshape(4, 2), 15)
    assert graph.neighbours.shape == (4, 3)


class _FakeNNDescent:
    """pynndescent's NNDescent with the exact neighbours, some marked missing."""

    calls = []

    def __init__(self, X, n_neighbors, random_state=None):
        type(self).calls.append({"n": len(X), "random_state": random_state})
        d = np.linalg.norm(X[:, None] - X[None], axis=-1)
        ind = np.argsort(d, axis=1, kind="stable")[:, :n_neighbors]
        dist = np.take_along_axis(d, ind, axis=1)
        # NN-descent's way of saying it found too few neighbours for a row.
        ind[::5, -2:], dist[::5, -2:] = -1, np.inf
        self.neighbor_graph = ind, dist


@pytest.fixture
def fake_pynndescent(monkeypatch):
    module = types.ModuleType("pynndescent")
    module.__spec__ = importlib.machinery.ModuleSpec("pynndescent", None)
    module.NNDescent = _FakeNNDescent
    monkeypatch.setitem(sys.modules, "pynndescent", module)
    monkeypatch.setattr(_FakeNNDescent, "calls", [])
    return _FakeNNDescent


def test_large_data_uses_nndescent_and_searches_its_gaps_exactly(
    monkeypatch, fake_pynndescent
):
    X = np.random.RandomState(5).normal(size=(40, 4))
    monkeypatch.setattr(_structure, "_EXACT_MAX_ROWS", 39)
    graph = neighbour_graph(X, n_neighbors=5, random_state=7)
    assert fake_pynndescent.calls == [{"n": 40, "random_state": 7}]
    # The rows NN-descent left short are complete: their exact neighbours.
    np.testing.assert_array_equal(graph.neighbours, brute_neighbours(X, 5))
    assert graph.neighbours.min() >= 0


def test_small_data_and_missing_pynndescent_search_exactly(
    monkeypatch, fake_pynndescent
):
    X = np.random.RandomState(6).normal(size=(40, 4))
    neighbour_graph(X, n_neighbors=5)  # 40 rows: under the threshold
    monkeypatch.setattr(_structure, "_EXACT_MAX_ROWS", 39)
    # As if pynndescent were not installed: importing it fails.
    monkeypatch.setitem(sys.modules, "pynndescent", None)
    assert not _structure.approximate_search_available()
    graph = neighbour_graph(X, n_neighbors=5)
    assert fake_pynndescent.calls == []
    np.testing.assert_array_equal(graph.neighbours, brute_neighbours(X, 5))


def test_structured_fit_seeds_the_approximate_search(
    monkeypatch, fake_pynndescent, blobs
):
    X, _ = blobs
    monkeypatch.setattr(_structure, "_EXACT_MAX_ROWS", 100)
    ae = AutoencoderTransformer(structure_weight=1.0, **FAST)
    ae.fit(X)
    ae.fit(X)
    seeds = [call["random_state"] for call in fake_pynndescent.calls]
    assert len(seeds) == 2 and seeds[0] == seeds[1]
    assert isinstance(seeds[0], int)
    AutoencoderTransformer(structure_weight=1.0, **FAST).partial_fit(X)
    assert len(fake_pynndescent.calls) == 3


def test_nndescent_finds_nearly_the_exact_graph(monkeypatch):
    # The real library. It is approximate: on this set it misses 1 of 1,200
    # neighbours (seed 7); the rest of the graph follows from what it finds.
    pytest.importorskip("pynndescent")
    X = np.random.RandomState(7).normal(size=(200, 5))
    exact = neighbour_graph(X, n_neighbors=6)
    monkeypatch.setattr(_structure, "_EXACT_MAX_ROWS", 100)
    approximate = neighbour_graph(X, n_neighbors=6, random_state=0)
    found = [
        len(set(a) & set(b))
        for a, b in zip(approximate.neighbours, exact.neighbours, strict=True)
    ]
    assert np.sum(found) >= 0.99 * exact.neighbours.size
    assert not np.any(approximate.neighbours == np.arange(200)[:, None])
    again = neighbour_graph(X, n_neighbors=6, random_state=0)
    np.testing.assert_array_equal(again.neighbours, approximate.neighbours)
    # Its distances are Euclidean, as the fuzzy weights expect (in float32).
    dist, ind = _structure._approximate_neighbours(X, 6, random_state=0)
    np.testing.assert_array_equal(ind, approximate.neighbours)
    np.testing.assert_allclose(
        dist, np.linalg.norm(X[:, None] - X[ind], axis=-1), rtol=1e-5
    )


# -- the loss ------------------------------------------------------------------


@pytest.mark.parametrize("exaggeration", [1.0, 2.5])
def test_contrastive_loss_matches_a_numpy_reference(exaggeration):
    rng = np.random.RandomState(5)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    log_q = -np.log1p(((a[:, None] - b[None]) ** 2).sum(-1))

    def nce(lq):
        return np.log(np.exp(lq).sum(1)) - exaggeration * np.diag(lq)

    expected = (nce(log_q).mean() + nce(log_q.T).mean()) / 2
    got = float(contrastive_loss(a, b, exaggeration))
    # Keras' PyTorch ops round float64 input through float32 in places.
    rtol = 1e-10 if keras.backend.backend() == "tensorflow" else 1e-6
    np.testing.assert_allclose(got, expected, rtol=rtol)


def test_exaggeration_pulls_pairs_harder():
    # The gradient on a pair's distance grows with the exaggeration (central
    # differences: the same on every backend).
    a = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    b = np.array([[1.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    step = np.zeros_like(a)
    step[0, 0] = 1e-4
    pulls = []
    for exaggeration in (1.0, 2.0):
        ahead = float(contrastive_loss(a + step, b, exaggeration))
        behind = float(contrastive_loss(a - step, b, exaggeration))
        # Positive: the loss falls as head 0 moves towards its tail at x = 1.
        pulls.append(-(ahead - behind) / 2e-4)
    assert 0 < pulls[0] < pulls[1]


def test_contrastive_loss_prefers_pairs_close_and_others_apart():
    rng = np.random.RandomState(6)
    centres = rng.normal(scale=10, size=(8, 2))
    near = contrastive_loss(centres, centres + rng.normal(scale=0.1, size=(8, 2)))
    shuffled = contrastive_loss(centres, centres[::-1])
    assert float(near) < float(shuffled)


# -- the estimator -------------------------------------------------------------

FAST = dict(hidden_layer_sizes=(16,), epochs=3, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def blobs():
    # Three clusters on a curved 1-D manifold each, in 10-D.
    rng = np.random.RandomState(0)
    t = rng.uniform(0, 3, size=(300, 1))
    centres = rng.normal(scale=4, size=(3, 10))
    labels = np.repeat(np.arange(3), 100)
    X = (
        centres[labels]
        + np.sin(t * np.arange(1, 11))
        + rng.normal(scale=0.3, size=(300, 10))
    )
    return X, labels


def test_weight_zero_is_the_plain_autoencoder(blobs):
    X, _ = blobs
    plain = AutoencoderTransformer(**FAST).fit(X)
    zero = AutoencoderTransformer(structure_weight=0.0, n_neighbors=3, **FAST).fit(X)
    np.testing.assert_array_equal(zero.transform(X), plain.transform(X))
    assert "decoder_loss" not in zero.history_


def test_auto_hidden_layer_sizes_follow_structure_weight(blobs):
    X, _ = blobs
    params = {**FAST, "hidden_layer_sizes": "auto", "epochs": 1}
    # code_l1 keeps the trained networks, which PCA's would replace.
    plain = AutoencoderTransformer(code_l1=1e-12, **params).fit(X)
    structured = AutoencoderTransformer(structure_weight=1.0, **params).fit(X)
    assert plain.hidden_layer_sizes_ == auto_hidden_layer_sizes(10, 2) != (128,) * 4
    assert structured.hidden_layer_sizes_ == (128, 128, 128, 128)
    wide = AutoencoderTransformer(40, structure_weight=1.0, **params).fit(X)
    assert wide.hidden_layer_sizes_ == (160, 160, 160, 160)
    # Sizes given by the user are kept.
    fixed = AutoencoderTransformer(structure_weight=1.0, **FAST).fit(X)
    assert fixed.hidden_layer_sizes_ == (16,)


def test_structured_fit_is_denoising(blobs):
    X, _ = blobs
    noisy = AutoencoderTransformer(structure_weight=1.0, noise=0.7, **FAST).fit(X)
    clean = AutoencoderTransformer(structure_weight=1.0, noise=0.0, **FAST).fit(X)
    assert not np.allclose(noisy.transform(X), clean.transform(X))


def test_structure_is_in_get_params_and_searchable(blobs):
    X, _ = blobs
    ae = AutoencoderTransformer(structure_weight=0.5, n_neighbors=7)
    params = clone(ae).get_params()
    assert params["structure_weight"] == 0.5 and params["n_neighbors"] == 7
    search = GridSearchCV(
        AutoencoderTransformer(**{**FAST, "epochs": 1}),
        {"structure_weight": [0.0, 1.0]},
        cv=2,
    ).fit(X)
    assert search.best_params_["structure_weight"] in (0.0, 1.0)


def test_structured_fit_separates_clusters_more_than_plain(blobs):
    from skae.metrics import silhouette

    X, labels = blobs
    params = {**FAST, "epochs": 20}
    plain = AutoencoderTransformer(**params).fit(X)
    structured = AutoencoderTransformer(structure_weight=1.0, **params).fit(X)
    assert silhouette(structured.transform(X), labels) > silhouette(
        plain.transform(X), labels
    )


class _WeightsAtTrainEnd(keras.callbacks.Callback):
    """The networks' weights when the structured training ends.

    Callbacks follow the structured training only: what changes after it is
    the decoder-only phase's doing.
    """

    def on_train_end(self, logs=None):
        _, encoder, decoder = self.model.layers
        self.seen = {
            "encoder": [w.copy() for w in encoder.get_weights()],
            "decoder": [w.copy() for w in decoder.get_weights()],
        }


def test_decoder_tuning_leaves_the_encoder_alone(blobs):
    X, _ = blobs
    record = _WeightsAtTrainEnd()
    ae = AutoencoderTransformer(
        structure_weight=1.0, callbacks=[record], **{**FAST, "epochs": 8}
    ).fit(X)
    seen = record.seen
    for before, after in zip(seen["encoder"], ae.encoder_.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.array_equal(b, a)
        for b, a in zip(seen["decoder"], ae.decoder_.get_weights(), strict=True)
    )
    assert len(ae.history_["decoder_loss"]) == 2  # a quarter of the epochs
    assert ae.encoder_.trainable and ae.decoder_.trainable


def test_decoder_tuning_learns_the_codes_transform_returns(blobs):
    # Masking (like the noise) is off in the decoder-only phase: the decoder
    # is tuned on the codes of clean inputs, which transform returns. Tuned on
    # codes of masked inputs instead, it rebuilt the clean rows worse than
    # before the phase (1.37 against 1.24 here, at the learning rate of
    # 1e-3 the figures were measured with).
    X, _ = blobs
    record = _WeightsAtTrainEnd()
    ae = AutoencoderTransformer(
        structure_weight=1.0,
        masking=0.5,
        learning_rate=1e-3,
        callbacks=[record],
        **{**FAST, "epochs": 12},
    ).fit(X)
    before = pickle.loads(pickle.dumps(ae))
    before.decoder_.set_weights(record.seen["decoder"])
    assert -ae.score(X) < 0.9 * -before.score(X)


def test_decoder_tuning_keeps_layers_the_user_froze_frozen(blobs):
    X, _ = blobs
    inputs = keras.Input((X.shape[1],))
    frozen = keras.layers.Dense(8, name="frozen")
    frozen.trainable = False
    encoder = keras.Model(inputs, keras.layers.Dense(2, name="code")(frozen(inputs)))
    ae = AutoencoderTransformer(
        encoder=encoder, structure_weight=1.0, **{**FAST, "epochs": 4}
    ).fit(X)
    # The user's model sits nested in encoder_.
    layers = {layer.name: layer for layer in ae.encoder_._flatten_layers()}
    layer = layers["frozen"]
    assert not layer.trainable and layers["code"].trainable
    before = layer.get_weights()[0].copy()
    ae.partial_fit(X)
    np.testing.assert_array_equal(layer.get_weights()[0], before)


def test_structured_fit_reproduces_and_pickles(blobs):
    X, _ = blobs
    ae = AutoencoderTransformer(structure_weight=1.0, **FAST).fit(X)
    again = AutoencoderTransformer(structure_weight=1.0, **FAST).fit(X)
    np.testing.assert_array_equal(ae.transform(X), again.transform(X))
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))


def test_early_stopping_records_the_structured_loss_on_validation_rows(blobs):
    X, _ = blobs
    ae = AutoencoderTransformer(structure_weight=1.0, early_stopping=True, **FAST).fit(
        X
    )
    assert len(ae.history_["val_loss"]) == ae.n_iter_
    assert np.all(np.isfinite(ae.history_["val_loss"]))
    # Larger than the reconstruction alone: the contrastive term is counted.
    assert ae.history_["val_loss"][-1] > ae.history_["decoder_val_loss"][-1]


@pytest.mark.parametrize("early_stopping", [False, True])
def test_structured_fit_runs_every_epoch_of_its_schedule(blobs, early_stopping):
    X, _ = blobs
    # A tol no epoch can meet: training stops as soon as the patience runs out.
    params = {**FAST, "epochs": 12, "tol": 1e9, "n_iter_no_change": 1}
    params["early_stopping"] = early_stopping
    assert AutoencoderTransformer(**params).fit(X).n_iter_ < 12
    with warnings.catch_warnings():
        # Running out of epochs is the schedule's end, not a failure to converge.
        warnings.simplefilter("error", ConvergenceWarning)
        ae = AutoencoderTransformer(structure_weight=1.0, **params).fit(X)
    assert ae.n_iter_ == 12 and len(ae.history_["loss"]) == 12
    # The decoder-only phase that follows (12 // 4 epochs) has no schedule: the
    # same tol stops it early.
    assert len(ae.history_["decoder_loss"]) < 3


def test_partial_fit_uses_each_chunks_own_graph(blobs):
    X, _ = blobs
    ae = AutoencoderTransformer(structure_weight=1.0, **FAST)
    rng = np.random.RandomState(0)
    for chunk in np.array_split(X[rng.permutation(len(X))], 3):
        ae.partial_fit(chunk)
    assert ae.n_iter_ == 3 and ae.n_samples_seen_ == 300
    assert np.all(np.isfinite(ae.transform(X)))


class _RecordRate(keras.callbacks.Callback):
    """The optimizer's learning rate of each epoch, as callbacks see it."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_fit_anneals_the_learning_rate_and_partial_fit_keeps_it(blobs):
    X, _ = blobs
    record = _RecordRate()
    params = {**FAST, "epochs": 4, "learning_rate": 0.01, "structure_weight": 1.0}
    AutoencoderTransformer(callbacks=[record], **params).fit(X)
    rates = record.rates
    np.testing.assert_allclose(rates, [0.01, 0.0075, 0.005, 0.0025], rtol=1e-6)
    # partial_fit has no last epoch to anneal towards.
    record = _RecordRate()
    ae = AutoencoderTransformer(callbacks=[record], **params)
    for chunk in np.array_split(X, 3):
        ae.partial_fit(chunk)
    rates = record.rates
    np.testing.assert_allclose(rates, [0.01] * 3, rtol=1e-6)
