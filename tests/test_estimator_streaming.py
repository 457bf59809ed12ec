"""fit on memmaps and sparse matrices, and partial_fit."""

import pickle
import tracemalloc
import warnings

import keras
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer, _fit, _input
from skae._inference import Inference
from skae._networks import fold_scaling as _fold_scaling
from skae._scaling import ScalingStats, noise_rms

SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:300]


def _memmap(tmp_path, X, dtype=np.float64):
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", "w+", dtype, X.shape)
    mm[:] = X
    mm.flush()
    return np.load(tmp_path / "X.npy", mmap_mode="r")


@pytest.mark.parametrize("kind", ["memmap", "csr", "csc"])
def test_streamed_fit_matches_in_memory_fit(kind, X, tmp_path):
    expected = AutoencoderTransformer(**SMALL).fit(X)
    data = (
        _memmap(tmp_path, X) if kind == "memmap" else getattr(sp, f"{kind}_matrix")(X)
    )
    ae = AutoencoderTransformer(**SMALL).fit(data)
    # One chunk holds all 300 rows: the same batches, hence the same weights.
    np.testing.assert_array_equal(ae.transform(X), expected.transform(X))
    np.testing.assert_array_equal(ae.transform(data), expected.transform(X))
    assert ae.score(data) == pytest.approx(expected.score(X), rel=1e-12)
    assert ae.n_features_in_ == 64 and not hasattr(ae, "feature_names_in_")


def test_chunked_training_reads_chunks_and_reproduces(X, tmp_path, monkeypatch):
    # Chunks of 64 rows: batches are drawn within each chunk of random rows.
    monkeypatch.setattr(_fit, "chunk_rows", lambda X: 64)
    mm = _memmap(tmp_path, X)
    first = AutoencoderTransformer(**{**SMALL, "epochs": 30}).fit(mm)
    second = AutoencoderTransformer(**{**SMALL, "epochs": 30}).fit(mm)
    np.testing.assert_array_equal(first.transform(mm), second.transform(mm))
    losses = first.history_["loss"]
    assert losses[-1] < 0.8 * losses[0]


def test_memmap_fit_stays_far_below_the_data_size(tmp_path):
    # 160 MB of float64 on disk; a fit reads it ~32 MB at a time.
    rng = np.random.RandomState(0)
    shape = (10000, 2000)
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float64, shape)
    for start in range(0, shape[0], 1000):
        mm[start : start + 1000] = rng.rand(1000, shape[1])
    mm.flush()
    del mm
    X = np.load(tmp_path / "big.npy", mmap_mode="r")
    ae = AutoencoderTransformer(hidden_layer_sizes=(4,), epochs=1, random_state=0)
    tracemalloc.start()
    try:
        ae.fit(X)
        Z = ae.transform(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Z.shape == (10000, 2) and np.isfinite(Z).all()
    assert peak < 0.5 * X.nbytes, f"peak {peak / 2**20:.0f} MB"


def test_sparse_nan_is_reported_when_read(X):
    data = sp.csr_matrix(X)
    data.data[5] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        AutoencoderTransformer(**SMALL).fit(data)


def test_streamed_transform_checks_feature_count(X, tmp_path):
    ae = AutoencoderTransformer(**SMALL).fit(X)
    with pytest.raises(ValueError, match="Expected X with 64 features"):
        ae.transform(sp.csr_matrix(X[:, :10]))


def test_partial_fit_scaling_is_that_of_all_rows_seen(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    for chunk in np.array_split(X, [50, 170]):
        ae.partial_fit(chunk)
    expected = ScalingStats().update(X).result("center")
    np.testing.assert_allclose(ae.input_offset_, expected[0], rtol=1e-12)
    np.testing.assert_allclose(ae.input_scale_, expected[1], rtol=1e-12)
    assert ae.n_iter_ == 3 and ae.n_samples_seen_ == 300
    assert len(ae.history_["loss"]) == 3


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


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 3}, r"n_components=2 .*Received: n_components=3"),
        ({"hidden_layer_sizes": [4]}, r"\(8,\) .*Received: hidden_layer_sizes=\[4\]"),
    ],
)
def test_partial_fit_refuses_a_changed_network_shape(params, match, X):
    ae = AutoencoderTransformer(**SMALL).partial_fit(X)
    before = ae.transform(X[:5])
    ae.set_params(**params)
    with pytest.raises(ValueError, match=match):
        ae.partial_fit(X)
    assert ae.n_iter_ == 1
    np.testing.assert_array_equal(ae.transform(X[:5]), before)
    # The same values as the networks' are no change.
    ae.set_params(n_components=np.int64(2), hidden_layer_sizes=[8]).partial_fit(X)
    assert ae.n_iter_ == 2


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
    noises = []
    train = _fit.train

    def spy(trainer, train_rows, val_rows, schedule, rng):
        noises.append(schedule.noise)
        return train(trainer, train_rows, val_rows, schedule, rng)

    monkeypatch.setattr(_fit, "train", spy)
    ae = AutoencoderTransformer(32, **SMALL).fit(X)
    assert ae.init_ == "pca"
    ae.partial_fit(X)
    # The same rows again: the running statistics, hence the noise, stay.
    assert noises[1] == pytest.approx(noises[0], rel=1e-9)
    whole_data = ae.noise * noise_rms(ScalingStats().update(X), ae.input_scale_)
    assert noises[0] < 0.5 * whole_data


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


# -- init="pca" and a fraction of variance as n_components -------------------


def test_pca_init_starts_at_pca(X):
    from sklearn.decomposition import PCA

    ae = AutoencoderTransformer(
        8, init="pca", epochs=1, learning_rate=1e-12, noise=0.0, random_state=0
    ).fit(X)
    pca = PCA(8).fit(X)
    # The code is PCA's in scaled units; the reconstruction PCA's own.
    np.testing.assert_allclose(
        ae.transform(X) * ae.input_scale_[0], pca.transform(X), atol=1e-3
    )
    np.testing.assert_allclose(
        ae.inverse_transform(ae.transform(X)),
        pca.inverse_transform(pca.transform(X)),
        atol=1e-3,
    )


def test_pca_init_with_early_stopping_is_never_worse_than_pca_on_validation(X):
    # A learning rate that only makes things worse: the PCA start is restored,
    # its corrections still exactly zero.
    ae = AutoencoderTransformer(
        8, init="pca", early_stopping=True, learning_rate=1.0, epochs=5, random_state=0
    )
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


def test_pca_init_partial_fit_and_memmap(X, tmp_path):
    ae = AutoencoderTransformer(4, init="pca", hidden_layer_sizes=(8,), random_state=0)
    for chunk in np.array_split(X, 3):
        ae.partial_fit(chunk)
    assert ae.n_iter_ == 3 and np.isfinite(ae.transform(X)).all()
    mm = AutoencoderTransformer(4, init="pca", **SMALL).fit(_memmap(tmp_path, X))
    mem = AutoencoderTransformer(4, init="pca", **SMALL).fit(X)
    # IncrementalPCA on chunks and PCA in memory find the same axes.
    np.testing.assert_allclose(
        np.abs(mm.transform(X)), np.abs(mem.transform(X)), rtol=1e-2, atol=1e-2
    )


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


def test_fraction_of_variance_holds_out_two_validation_rows(X, monkeypatch):
    # One validation row (10% of 12) has no spread: R² would be 1 for any
    # code size, and the search would stop at the first.
    sizes = []
    validation_size = _fit._validation_size

    def spy(plan, n):
        sizes.append(validation_size(plan, n))
        return sizes[-1]

    monkeypatch.setattr(_fit, "_validation_size", spy)
    # Ten training rows: PCA reaches 0.99 at no size, and says so.
    with pytest.warns(UserWarning, match=r"PCA does not reach it either.* 10 train"):
        ae = AutoencoderTransformer(0.99, **SMALL).fit(X[:12])
    assert sizes == [2] and ae.reconstruction_r2_ < 0.99
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


def test_fraction_of_variance_refused_by_partial_fit(X):
    with pytest.raises(ValueError, match="int n_components for partial_fit"):
        AutoencoderTransformer(0.9).partial_fit(X)


def test_streamed_rows_wider_than_a_batch_are_read_one_at_a_time(monkeypatch):
    # Over 2**20 features a quarter of auto_batch_rows is 0 rows.
    monkeypatch.setattr(_input._streaming, "auto_batch_rows", lambda n: 3)
    X = sp.csr_matrix(np.eye(5))
    batches = list(_input.row_batches(X))
    assert [start for start, _ in batches] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.vstack([b for _, b in batches]), np.eye(5))
