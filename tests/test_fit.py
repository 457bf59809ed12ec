"""What fitting does (``skae._fit``), for ``fit`` and ``partial_fit``.

``partial_fit`` continuing from ``fit``, from a pickle and after
``set_params``, and undoing a failed or interrupted call; training on
streamed rows a chunk at a time; the search for a fraction of variance; and
``StreamState``, where ``partial_fit`` continues from.
"""

import itertools
import pickle

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import skae
from skae import AutoencoderTransformer, _fit, _input, _streaming
from skae._fit import StreamState
from skae._params import make_plan
from skae._pca_init import pca_basis
from skae._scaling import ScalingStats, noise_scale

SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:300]


class RecordingRows:
    """A sliceable array-like, as an h5py dataset, that records the slices read."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.reads = []

    def __getitem__(self, key):
        self.reads.append((key.start, key.stop))
        return self._data[key]


def _passes(reads):
    """Runs of reads in file order: a chunk's rows are read in file order."""
    return 1 + sum(b[0] <= a[0] for a, b in itertools.pairwise(reads))


# -- partial_fit -----------------------------------------------------------------


def test_partial_fit_improves_the_reconstruction(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(32,), random_state=0)
    scores = []
    for _ in range(15):
        for chunk in np.array_split(X, 3):
            ae.partial_fit(chunk)
        scores.append(ae.score(X))
    assert scores[-1] > scores[0]


def test_partial_fit_is_reproducible(X):
    def run():
        ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
        for chunk in np.array_split(X, 3):
            ae.partial_fit(chunk)
        return ae.transform(X)

    np.testing.assert_array_equal(run(), run())


def test_partial_fit_after_fit_continues_with_fits_statistics(X):
    ae = AutoencoderTransformer(**SMALL).fit(X[:200])
    ae.partial_fit(X[200:])
    assert ae.n_iter_ == 4 and ae.n_samples_seen_ == 300
    np.testing.assert_allclose(ae.input_offset_, X.mean(axis=0), rtol=1e-12)


def test_partial_fit_continues_after_pickling(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    ae.partial_fit(X[:150])
    restored = pickle.loads(pickle.dumps(ae))
    restored.partial_fit(X[150:])
    assert restored.n_samples_seen_ == 300 and restored.n_iter_ == 2
    np.testing.assert_allclose(restored.input_offset_, X.mean(axis=0), rtol=1e-12)


def test_partial_fit_after_set_params_trains_as_a_pickled_copy_would(X):
    # The trainer kept in memory must not outlive the parameters it was made
    # from: a copy without one (pickled) trains with the new values.
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    ae.partial_fit(X[:150])
    copy = pickle.loads(pickle.dumps(ae))
    for est in (ae, copy):
        est.set_params(optimizer="sgd", learning_rate=0.05)
        est.partial_fit(X[150:])
    np.testing.assert_array_equal(ae.transform(X), copy.transform(X))
    assert type(ae._trainer.optimizer).__name__ == "SGD"


class _Saboteur(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_weights([w * 0 + 7 for w in self.model.get_weights()])
        raise KeyboardInterrupt


def test_failed_partial_fit_leaves_the_transformer_as_it_was(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    ae.partial_fit(X[:150])
    before = ae.transform(X)
    stream = pickle.dumps(ae._stream)
    ae.set_params(callbacks=[_Saboteur()])
    with pytest.raises(KeyboardInterrupt):
        ae.partial_fit(X[150:] * 10)
    np.testing.assert_array_equal(ae.transform(X), before)
    assert pickle.dumps(ae._stream) == stream and ae.n_samples_seen_ == 150


def test_partial_fit_failing_before_training_leaves_the_weights(X):
    # The new scaling is folded into the weights before the trainer is
    # built; a failure there must not keep the folded weights, which
    # transform's cached copy would hide until a pickle or save.
    ae = AutoencoderTransformer(**SMALL).fit(X[:150])
    before = [w.copy() for w in ae.encoder_.get_weights()]
    codes = ae.transform(X)
    ae.set_params(optimizer="no-such-optimizer")
    with pytest.raises(ValueError, match="optimizer"):
        ae.partial_fit(X[150:] * 10)
    for weight, saved in zip(ae.encoder_.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, saved)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ae)).transform(X), codes)
    assert ae.n_samples_seen_ == 150


def test_partial_fit_after_a_pca_start_keeps_fits_noise(X, monkeypatch):
    # With a PCA start the noise is relative to what PCA leaves unexplained,
    # far below the data's RMS; partial_fit after fit must keep that ratio.
    # The noise drawn is seen nowhere else than in the schedule train() gets:
    # a spy records it, and the expected value is computed independently.
    noises = []
    train = _fit.train

    def spy(trainer, train_rows, val_rows, schedule, rng):
        noises.append(schedule.noise)
        return train(trainer, train_rows, val_rows, schedule, rng)

    monkeypatch.setattr(_fit, "train", spy)
    ae = AutoencoderTransformer(32, **SMALL).fit(X)
    assert ae.init_ == "pca"
    ae.partial_fit(X)
    # fit's first call trains the networks, partial_fit's is the last (fit
    # may train a decoder on PCA's codes between them, without noise).
    # The same rows again: the running statistics, hence the noise, stay.
    np.testing.assert_allclose(noises[-1], noises[0], rtol=1e-9)
    whole_data = ae.noise * noise_scale(ScalingStats().update(X), ae.input_scale_)
    assert np.sum(noises[0] ** 2) < 0.25 * np.sum(whole_data**2)
    # What PCA's 32 axes leave unexplained in each feature of the scaled data,
    # as fit saw it.
    stats = ScalingStats().update(X)
    offset, scale = stats.result("center")
    basis = pca_basis((X - offset) / scale, 32, random_state=0)
    expected = ae.noise * noise_scale(stats, scale, basis, 32)
    np.testing.assert_allclose(noises[0], expected, rtol=1e-3, atol=1e-6)


class _LateSaboteur(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_partial_fit_interrupted_after_its_epoch_is_undone(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    ae.partial_fit(X[:150])
    before = ae.transform(X)
    ae.set_params(callbacks=[_LateSaboteur()])
    with pytest.raises(KeyboardInterrupt):
        ae.partial_fit(X[150:])
    np.testing.assert_array_equal(ae.transform(X), before)
    assert ae.n_iter_ == 1


def test_partial_fit_checks_feature_count(X):
    ae = AutoencoderTransformer(**SMALL).partial_fit(X)
    with pytest.raises(ValueError, match="64 features"):
        ae.partial_fit(X[:, :10])


# -- streamed rows, a chunk at a time ---------------------------------------------


def test_chunked_training_reads_chunks_and_reproduces(X, memmap_of, monkeypatch):
    # Chunks of 64 rows: batches are drawn within each chunk of random rows.
    monkeypatch.setattr(_streaming, "_BATCH_BYTES", 64 * 8 * 64)
    mm = memmap_of(X)
    assert _input.chunk_rows(mm) == 64
    # From a random start, so that the loss has a long way down.
    params = {**SMALL, "epochs": 30, "init": "random"}
    first = AutoencoderTransformer(**params).fit(mm)
    second = AutoencoderTransformer(**params).fit(mm)
    np.testing.assert_array_equal(first.transform(mm), second.transform(mm))
    losses = first.history_["loss"]
    assert losses[-1] < 0.8 * losses[0]
    # Any streamed input trains the same, and is read a chunk at a time: one
    # pass over X for the scaling, then five chunks (64 * 4 + 14 rows, 30
    # rows held out) an epoch, each read in file order; then one pass for
    # PCA's axes, a quarter of the epochs to train a decoder on PCA's codes,
    # and one pass over the validation rows, to compare the three.
    rows = RecordingRows(X)
    third = AutoencoderTransformer(**params).fit(rows)
    np.testing.assert_array_equal(third.transform(X), first.transform(X))
    assert _passes(rows.reads) == 1 + 30 * 5 + 1 + (30 // 4) * 5 + 1


# -- a fraction of variance as n_components ------------------------------------


@pytest.mark.parametrize("target", [0.6, 0.85])
def test_fraction_of_variance_picks_the_smallest_code_reaching_it(target, X):
    ae = AutoencoderTransformer(
        target, init="pca", hidden_layer_sizes=(16,), epochs=20, random_state=0
    ).fit(X)
    k = ae.n_components_
    assert ae.transform(X).shape == (300, k)
    assert ae.reconstruction_r2_ >= target
    assert ae.n_components_scores_[k] == ae.reconstruction_r2_
    # Every smaller size tried fell short; at most a handful of fits.
    assert all(r2 < target for size, r2 in ae.n_components_scores_.items() if size < k)
    assert len(ae.n_components_scores_) <= 6


def test_fraction_of_variance_holds_out_two_validation_rows(X):
    # One validation row (10% of 12) has no spread: R² would be 1 for any
    # code size, and the search would stop at the first.
    # Ten training rows (two held out): PCA reaches 0.99 at no size, and says
    # so; with one held out, 11 would train and R² would be a perfect 1.
    with pytest.warns(
        UserWarning,
        match=r"PCA does not reach it either, at any size that 10 training rows",
    ):
        ae = AutoencoderTransformer(0.99, **SMALL).fit(X[:12])
    assert ae.reconstruction_r2_ < 0.99
    with pytest.raises(ValueError, match=r"two for the R² of n_components=0.99"):
        AutoencoderTransformer(0.99, **SMALL).fit(X[:2])
    # Three rows leave one for training, and PCA's basis needs two.
    with pytest.raises(ValueError, match=r"two for training and two for the R²"):
        AutoencoderTransformer(0.5, **SMALL).fit(X[:3])


def test_fraction_of_variance_missed_by_a_penalised_loss_warns():
    # The L1 penalty keeps weights that rebuild worse than the PCA start, so
    # even the largest size searched falls short; that must not pass silently.
    digits = load_digits().data[:600]
    ae = AutoencoderTransformer(
        0.7, code_l1=0.05, epochs=6, batch_size=64, random_state=0
    )
    with pytest.warns(UserWarning, match=r"n_components=0.7.*trade it away"):
        ae.fit(digits)
    assert ae.reconstruction_r2_ < 0.7
    assert ae.n_components_ == max(ae.n_components_scores_)


def test_fraction_of_variance_search_round_trips(X, tmp_path):
    ae = AutoencoderTransformer(n_components=0.8, **SMALL).fit(X)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert loaded.n_components_scores_ == ae.n_components_scores_
    assert all(type(k) is int for k in loaded.n_components_scores_)
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


def test_partial_fit_after_a_fraction_of_variance_continues_the_chosen_networks(X):
    ae = AutoencoderTransformer(
        0.6, init="pca", hidden_layer_sizes=(16,), epochs=5, random_state=0
    ).fit(X)
    k, encoder, n_iter = ae.n_components_, ae.encoder_, ae.n_iter_
    before = ae.transform(X)
    ae.partial_fit(X)
    # The networks of the size the search chose, trained one more epoch.
    assert ae.n_components_ == k and ae.encoder_ is encoder
    assert ae.n_iter_ == n_iter + 1
    codes = ae.transform(X)
    assert codes.shape == (300, k) and not np.array_equal(codes, before)


# -- StreamState -------------------------------------------------------------------


def test_stream_state_round_trips_as_plain_data(X):
    state = StreamState.start(0)
    state.stats.update(X[:100]).update(X[100:])
    state.step, state.noise_ratio = 7, 0.25
    data = state.as_dict()
    assert set(data) == {"stats", "seed", "step", "noise_ratio"}
    assert all(
        isinstance(value, (int, float, np.ndarray, type(None)))
        for value in data["stats"].values()
    )
    restored = StreamState.from_dict(pickle.loads(pickle.dumps(data)))
    assert (restored.seed, restored.step, restored.noise_ratio) == (state.seed, 7, 0.25)
    assert type(restored.seed) is int and type(restored.step) is int
    for method in ("center", "standard", "minmax"):
        for got, expected in zip(
            restored.stats.result(method), state.stats.result(method), strict=True
        ):
            np.testing.assert_array_equal(got, expected)
    # Statistics continue as if never stored.
    restored.stats.update(X[:50])
    state.stats.update(X[:50])
    np.testing.assert_array_equal(restored.stats.var_, state.stats.var_)
    # States stored before noise_ratio existed continue with 1.
    del data["noise_ratio"]
    assert StreamState.from_dict(data).noise_ratio == 1.0


def test_stream_state_starts_from_random_state():
    first, again, other = (StreamState.start(seed) for seed in (0, 0, 1))
    assert first.seed == again.seed != other.seed
    assert (first.step, first.noise_ratio) == (0, 1.0)
    assert first.stats.n_samples_seen_ == 0


# -- never worse than PCA ----------------------------------------------------------


def _tables():
    """Small real and synthetic tables, raw and standardised."""
    from sklearn.datasets import load_diabetes, load_wine, make_swiss_roll
    from sklearn.preprocessing import StandardScaler

    wine = load_wine().data
    rng = np.random.RandomState(0)
    # Columns six orders of magnitude apart, two of them correlated.
    mixed = rng.normal(size=(150, 5)) * [1e3, 10.0, 1.0, 1e-2, 1e-3]
    mixed[:, 2] += mixed[:, 0] / 1e3
    roll = make_swiss_roll(200, noise=0.1, random_state=0)[0]
    return {
        "wine": wine,
        "wine standardised": StandardScaler().fit_transform(wine),
        "diabetes raw": load_diabetes(scaled=False).data,
        "mixed units": mixed,
        "swiss roll": roll,
    }


def _validation_rows(n, random_state, validation_fraction=0.1):
    # fit's split: the first n_val rows of a permutation drawn from the
    # random_state, before anything else is drawn from it.
    order = np.random.RandomState(random_state).permutation(n)
    return order[: round(validation_fraction * n)]


@pytest.mark.parametrize("name", list(_tables()))
@pytest.mark.parametrize("k", [2, 3])
def test_defaults_never_rebuild_the_validation_rows_worse_than_pca(name, k):
    from sklearn.decomposition import PCA

    X = _tables()[name]
    ae = AutoencoderTransformer(k, random_state=0).fit(X)
    assert ae.solution_ in ("autoencoder", "pca_decoder", "pca")
    errors = ae.validation_errors_
    # Measured here, in the input's units, on the rows fit held out; PCA
    # fitted to all rows, as PCA(k).fit(X) in the pipeline the user had.
    val = X[_validation_rows(len(X), 0)]
    pca = PCA(k).fit(X)
    pca_mse = np.mean((val - pca.inverse_transform(pca.transform(val))) ** 2)
    ae_mse = -ae.score(val)
    # Up to float32 round-off (k=3 rebuilds the 3-D roll exactly).
    assert ae_mse <= pca_mse * (1 + 1e-4) + 1e-12 * X.var()
    # The errors fit reports are those, in its scaled space.
    scale = ae.input_scale_[0] ** 2
    if pca_mse < 1e-9 * X.var():
        return  # k=3 of 3 features: both errors are round-off.
    assert errors["pca"] * scale == pytest.approx(pca_mse, rel=1e-4)
    if ae.solution_ != "pca":
        assert errors[ae.solution_] < errors["pca"]
        assert errors[ae.solution_] * scale == pytest.approx(ae_mse, rel=1e-3)
    if ae.solution_ == "autoencoder" and "pca_decoder" in errors:
        assert errors["autoencoder"] < errors["pca_decoder"]


def test_pca_codes_with_a_trained_decoder_win_where_only_the_way_back_curves():
    from sklearn.decomposition import PCA

    # A parabola: PCA's one axis is the t direction, and x2 = (x1 / 3) ** 2
    # is what a linear decoder cannot rebuild from it and a curved one can.
    # Non-linear codes have nothing more to give, so the simpler candidate,
    # PCA's codes, must be kept.
    rng = np.random.RandomState(0)
    t = rng.uniform(-1, 1, size=800)
    X = np.column_stack([3 * t, t**2, 0.01 * rng.normal(size=800)])
    X_new = X[600:]
    ae = AutoencoderTransformer(1, random_state=0).fit(X[:600])
    assert ae.solution_ == "pca_decoder"
    errors = ae.validation_errors_
    assert set(errors) == {"pca", "pca_decoder", "autoencoder"}
    assert errors["pca_decoder"] < 0.5 * errors["pca"]
    # The codes are PCA's scores: order, sign and units.
    pca = PCA(1).fit(X[:600])
    scores = pca.transform(X_new)
    np.testing.assert_allclose(
        ae.transform(X_new), scores, rtol=1e-4, atol=1e-4 * scores.std()
    )
    # Held-out rows rebuild better than PCA rebuilds them.
    pca_mse = np.mean((X_new - pca.inverse_transform(scores)) ** 2)
    assert -ae.score(X_new) < 0.5 * pca_mse
    # It saves and loads, and partial_fit goes on from it.
    again = pickle.loads(pickle.dumps(ae))
    assert again.solution_ == "pca_decoder"
    np.testing.assert_array_equal(again.transform(X_new), ae.transform(X_new))
    again.partial_fit(X[600:])
    assert np.isfinite(again.transform(X_new)).all()


def test_pca_kept_when_training_does_not_beat_it_is_sklearns_pca():
    from sklearn.decomposition import PCA

    X = _tables()["mixed units"]
    # One epoch from a random start cannot come near PCA on this table.
    ae = AutoencoderTransformer(3, init="random", epochs=1, random_state=0).fit(X)
    assert ae.solution_ == "pca"
    assert ae.validation_errors_["autoencoder"] > ae.validation_errors_["pca"]
    assert ae.hidden_layer_sizes_ == ()
    pca = PCA(3).fit(X)
    # Same order, signs and units as PCA's scores; the same reconstructions.
    scores = pca.transform(X)
    np.testing.assert_allclose(
        ae.transform(X), scores, rtol=1e-4, atol=1e-4 * scores.std()
    )
    np.testing.assert_allclose(
        ae.inverse_transform(scores),
        pca.inverse_transform(scores),
        rtol=1e-4,
        atol=1e-6,
    )
    assert ae.score(X) == pytest.approx(
        -np.mean((X - pca.inverse_transform(scores)) ** 2), rel=1e-4
    )


@pytest.mark.parametrize("X_name", ["wine", "mixed units", "digits"])
@pytest.mark.parametrize("k", [2, 5])
def test_a_pca_start_transforms_as_sklearns_pca(X_name, k):
    from sklearn.decomposition import PCA

    X = load_digits().data[:400] if X_name == "digits" else _tables()[X_name]
    # code_l1 takes PCA out of the candidates; a learning rate of 1e-30 leaves
    # the start as it was: what transform returns is the start itself.
    ae = AutoencoderTransformer(
        k, init="pca", code_l1=1e-12, learning_rate=1e-30, epochs=1, random_state=0
    ).fit(X)
    assert ae.solution_ is None
    scores = PCA(k).fit(X).transform(X)
    np.testing.assert_allclose(ae.transform(X), scores, atol=1e-4 * scores.std())
    assert ae.code_scale_ == pytest.approx(ae.input_scale_[0])


def test_codes_are_in_the_inputs_units():
    from sklearn.decomposition import PCA

    X = _tables()["wine"]
    ae = AutoencoderTransformer(4, random_state=0).fit(X)
    pca_std = PCA(4).fit(X).transform(X).std(axis=0)
    # Codes on PCA's scale (std 300 for the first on raw wine), not the
    # scaled space's (about 1/100 of that).
    np.testing.assert_allclose(ae.transform(X).std(axis=0), pca_std, rtol=0.25)
    # inverse_transform takes them back in the same units.
    Z = ae.transform(X)
    assert -ae.score(X) == pytest.approx(
        np.mean((X - ae.inverse_transform(Z)) ** 2), rel=1e-6
    )


def test_pca_is_no_candidate_for_a_structure_term():
    X = load_digits().data[:200]
    structured = AutoencoderTransformer(
        structure_weight=1.0, hidden_layer_sizes=(8,), epochs=2, random_state=0
    ).fit(X)
    assert structured.solution_ is None and structured.validation_errors_ is None
    assert structured.hidden_layer_sizes_ == (8,)


# -- the mean's loss, the floor of divergence ------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        # One global scale: the mean variance over its square is 1.
        ({}, lambda X: 1.0),
        # Each feature's variance is 1, a constant one's 0 (digits has some).
        ({"scaling": "standard"}, lambda X: np.mean(X.var(axis=0) > 0)),
        ({"scaling": None}, lambda X: np.mean(X.var(axis=0))),
        ({"scaling": "minmax"}, lambda X: np.mean(X.var(axis=0)) / X.max() ** 2),
        # Bounded: no floor needed.
        ({"loss": "binary_crossentropy"}, lambda X: 0.0),
    ],
)
def test_the_mean_loss_is_that_of_predicting_each_features_mean(X, params, expected):
    ae = AutoencoderTransformer(**SMALL, **params)
    plan = make_plan(ae, incremental=False)
    run = _fit._prepare(plan, _input.read(ae, X, plan, reset=True), None)
    assert _fit._mean_loss(plan, run) == pytest.approx(expected(X), rel=1e-9)
    assert _fit._schedule(plan, run, epochs=1, noise=0.0).baseline == (
        _fit._mean_loss(plan, run)
    )
