"""AutoencoderTransformer as a scikit-learn estimator: compliance, use, errors."""

import io
import pickle
import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import AutoencoderTransformer

# Small but real: one hidden layer, a few epochs. Big enough that every check
# exercises the full training loop, small enough for ~50 checks to run quickly.
SMALL = dict(hidden_layer_sizes=(8,), epochs=5, random_state=0)

# Every entry needs a reason; the aim is an empty dict.
EXPECTED_FAILED_CHECKS = {}


def small(**params):
    return AutoencoderTransformer(**{**SMALL, **params})


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


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # The tiny epoch budgets used here never converge; that warning has its own
    # test in test_training.py.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@parametrize_with_checks(
    [small()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compliance(estimator, check):
    check(estimator)


# -- the fitted interface ----------------------------------------------------


def test_shapes_and_attributes(fitted, digits):
    X, _ = digits
    Z = fitted.transform(X)
    assert Z.shape == (400, 2)
    assert fitted.inverse_transform(Z).shape == (400, 64)
    assert fitted.n_features_in_ == 64
    assert fitted.n_components_ == 2
    assert fitted.n_iter_ == len(fitted.history_["loss"]) == 5
    assert fitted.hidden_layer_sizes_ == (8,)
    assert fitted.encoder_.output_shape == (None, 2)
    assert fitted.decoder_.input_shape == (None, 2)
    np.testing.assert_array_equal(
        fitted.get_feature_names_out(),
        ["autoencodertransformer0", "autoencodertransformer1"],
    )


def test_fit_transform_matches_fit_then_transform(digits):
    X, _ = digits
    Z = small().fit_transform(X)
    np.testing.assert_array_equal(Z, small().fit(X).transform(X))


def test_same_random_state_gives_identical_codes(digits):
    X, _ = digits
    Z1 = small(random_state=3).fit(X).transform(X)
    Z2 = small(random_state=3).fit(X).transform(X)
    np.testing.assert_array_equal(Z1, Z2)
    Z3 = small(random_state=4).fit(X).transform(X)
    assert np.abs(Z1 - Z3).max() > 1e-3


def test_same_random_state_across_processes(fitted, digits, tmp_path):
    X, _ = digits
    np.save(tmp_path / "X.npy", X)
    code = textwrap.dedent(
        f"""
        import warnings, numpy as np
        from skae import AutoencoderTransformer
        warnings.simplefilter("ignore")
        X = np.load({str(tmp_path / "X.npy")!r})
        ae = AutoencoderTransformer(**{SMALL!r}).fit(X)
        np.save({str(tmp_path / "Z.npy")!r}, ae.transform(X))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "Z.npy"), fitted.transform(X))


def test_fit_leaves_global_random_state_alone(digits):
    import random

    import tensorflow as tf
    from keras.src.random.seed_generator import global_seed_generator

    X, _ = digits
    # Creating Keras' global generator draws from `random`: do it first.
    keras_before = global_seed_generator().state.numpy().copy()
    np_before = np.random.get_state()[1].copy()  # noqa: NPY002
    py_before = random.getstate()
    tf_before = tf.random.get_global_generator().state.numpy().copy()
    small(noise=0.1, masking=0.1, early_stopping=True).fit(X)
    np.testing.assert_array_equal(np.random.get_state()[1], np_before)  # noqa: NPY002
    assert random.getstate() == py_before
    np.testing.assert_array_equal(
        tf.random.get_global_generator().state.numpy(), tf_before
    )
    np.testing.assert_array_equal(global_seed_generator().state.numpy(), keras_before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(digits, dtype):
    X = digits[0].astype(dtype)
    ae = small().fit(X)
    assert ae.transform(X).dtype == dtype
    assert ae.inverse_transform(ae.transform(X)).dtype == dtype


def test_integer_input_is_accepted(digits):
    X = digits[0].astype(np.int64)
    assert small().fit(X).transform(X).dtype == np.float64


def test_inverse_transform_returns_input_units():
    # Data far from [0, 1] and far from zero mean: scaling must be undone.
    rng = np.random.RandomState(0)
    X = 1000.0 + 50.0 * rng.randn(300, 5) @ rng.randn(5, 10)
    ae = small(n_components=5, epochs=200, hidden_layer_sizes=(32,)).fit(X)
    X_hat = ae.inverse_transform(ae.transform(X))
    assert abs(X_hat.mean() - X.mean()) < 0.05 * X.std()
    # A rank-5 signal in 10-D: a 5-D code must reconstruct most of it.
    assert np.mean((X - X_hat) ** 2) < 0.1 * X.var(axis=0).sum() / 10


def test_decoder_alone_decodes_any_grid(fitted):
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 5), np.linspace(-3, 3, 5)), -1)
    images = fitted.inverse_transform(grid.reshape(-1, 2))
    assert images.shape == (25, 64)
    assert np.isfinite(images).all()


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
    X_hat = ae.inverse_transform(ae.transform(X)).astype(np.float64)
    expected = -np.mean((X.astype(np.float64) - X_hat) ** 2, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_score_samples_flags_outliers(fitted, digits):
    X, _ = digits
    outliers = np.random.RandomState(0).uniform(0, 16, size=(20, 64))
    assert np.median(fitted.score_samples(outliers)) < np.median(
        fitted.score_samples(X)
    )


def test_transform_streams_in_batches(fitted, digits, monkeypatch):
    import skae._input

    X, _ = digits
    expected = fitted.transform(X)
    monkeypatch.setattr(skae._input, "BATCH_ROWS", 7)
    np.testing.assert_allclose(fitted.transform(X), expected, rtol=1e-6, atol=1e-6)


def test_verbose_0_prints_nothing(digits, capfd):
    X, _ = digits
    small(verbose=0).fit(X).transform(X)
    out, _ = capfd.readouterr()
    assert out == ""


def test_verbose_1_prints_a_progress_bar_per_epoch(digits, capsys):
    X, _ = digits
    small(verbose=1, epochs=3).fit(X)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 3
    assert "loss" in out


def test_callbacks_see_epochs_and_can_stop_training(digits):
    import keras

    class StopAtTwo(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(logs["loss"])
            if epoch == 1:
                self.model.stop_training = True

    callback = StopAtTwo()
    ae = small(callbacks=[callback], epochs=10).fit(digits[0])
    assert ae.n_iter_ == 2
    assert callback.seen == ae.history_["loss"]


def test_learning_rate_callbacks_set_the_optimizers_rate(digits):
    import keras

    class RecordRate(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_epoch_end(self, epoch, logs=None):
            self.rates.append(float(self.model.optimizer.learning_rate))

    record = RecordRate()
    schedule = keras.callbacks.LearningRateScheduler(lambda e, lr: 1e-3 * 0.1**e)
    small(callbacks=[schedule, record], epochs=3, tol=0).fit(digits[0])
    np.testing.assert_allclose(record.rates, [1e-3, 1e-4, 1e-5], rtol=1e-6)
    # No epoch improves by 1e9: each after the first halves the rate.
    record = RecordRate()
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", patience=0, factor=0.5, min_delta=1e9
    )
    small(callbacks=[plateau, record], epochs=3, tol=0).fit(digits[0])
    np.testing.assert_allclose(record.rates, [1e-3, 5e-4, 2.5e-4], rtol=1e-6)
    with pytest.raises(TypeError, match=r"keras.callbacks.Callback.*'x'"):
        small(callbacks=["x"]).fit(digits[0])
    ae = small(epochs=1).fit(digits[0]).set_params(callbacks=["x"])
    with pytest.raises(TypeError, match=r"keras.callbacks.Callback.*'x'"):
        ae.partial_fit(digits[0])
    assert ae.n_iter_ == 1


def test_early_stopping_restores_best_weights(digits):
    import keras

    class RecordWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    X, _ = digits
    record = RecordWeights()
    # A learning rate this high makes the validation loss jump around, so the
    # best epoch is not the last one.
    ae = small(
        early_stopping=True,
        epochs=60,
        n_iter_no_change=3,
        learning_rate=0.1,
        callbacks=[record],
    ).fit(X)
    val = ae.history_["val_loss"]
    assert ae.n_iter_ == len(val) < 60
    best = int(np.argmin(val))
    assert best < ae.n_iter_ - 1
    kept = ae.encoder_.get_weights() + ae.decoder_.get_weights()
    for got, expected in zip(kept, record.weights[best], strict=True):
        np.testing.assert_array_equal(got, expected)


def test_refit_resets_state(digits):
    X, _ = digits
    ae = small(n_components=3).fit(X)
    ae.set_params(n_components=2, epochs=2).fit(X[:, :10])
    assert ae.n_features_in_ == 10
    assert ae.transform(X[:, :10]).shape == (400, 2)
    assert ae.n_iter_ == 2


# -- composition --------------------------------------------------------------


def test_clone_keeps_params_and_drops_fit(fitted):
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        twin.transform(np.zeros((1, 64)))


@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip_gives_identical_transform(fitted, digits, dumper):
    X, _ = digits
    if dumper == "pickle":
        restored = pickle.loads(pickle.dumps(fitted))
    else:
        buffer = io.BytesIO()
        joblib.dump(fitted, buffer)
        buffer.seek(0)
        restored = joblib.load(buffer)
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(
        restored.inverse_transform(fitted.transform(X)),
        fitted.inverse_transform(fitted.transform(X)),
    )


def test_pipeline_with_logistic_regression(digits):
    X, y = digits
    pipe = make_pipeline(
        small(n_components=8, epochs=30, hidden_layer_sizes=(32,)),
        LogisticRegression(max_iter=500),
    )
    pipe.fit(X[:300], y[:300])
    # Ten classes: chance is 0.1; an 8-D code of digits separates most of them.
    assert pipe.score(X[300:], y[300:]) > 0.6


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_with_default_score(digits, n_jobs):
    X, _ = digits
    search = GridSearchCV(
        small(epochs=20, noise=0.0),
        {"n_components": [2, 8], "hidden_layer_sizes": [(8,), (32,)]},
        cv=2,
        n_jobs=n_jobs,
    )
    search.fit(X)
    # More code and more units reconstruct better: the default score (negative
    # reconstruction error) must rank the biggest network first.
    assert search.best_params_ == {"n_components": 8, "hidden_layer_sizes": (32,)}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_numpy_numbers_as_parameters(digits):
    # GridSearchCV over np.arange / np.logspace hands out NumPy scalars, and
    # Keras takes Python numbers only: each used to fail inside Keras, the
    # learning rate as an error about the optimizer.
    X = digits[0][:200]
    search = GridSearchCV(
        small(epochs=2, optimizer="sgd"),
        {
            "n_components": np.arange(2, 4),
            "learning_rate": [np.float32(1e-2), 1],
            "code_l1": np.float32([1e-4]),
        },
        cv=2,
        error_score="raise",
    ).fit(X)
    assert set(search.cv_results_["param_n_components"]) == {2, 3}
    assert search.best_estimator_.n_components_ == search.best_params_["n_components"]


def test_column_transformer(digits):
    X, _ = digits
    ct = ColumnTransformer(
        [("ae", small(), list(range(32))), ("scale", StandardScaler(), [32, 33])]
    )
    out = ct.fit_transform(X)
    assert out.shape == (400, 4)
    assert list(ct.get_feature_names_out()[:2]) == [
        "ae__autoencodertransformer0",
        "ae__autoencodertransformer1",
    ]


def test_set_output_pandas(digits):
    pd = pytest.importorskip("pandas")
    X, _ = digits
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    ae = small().set_output(transform="pandas").fit(frame)
    out = ae.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["autoencodertransformer0", "autoencodertransformer1"]
    assert list(out.index) == list(frame.index)
    np.testing.assert_array_equal(ae.feature_names_in_, frame.columns)


@pytest.mark.parametrize("fill_value", [0.0, np.nan])
def test_all_sparse_pandas_columns_are_taken_as_their_values(digits, fill_value):
    # scikit-learn turns such a frame into a SciPy matrix (which fails for a
    # fill value other than 0) and validate_data then refuses it as sparse.
    pd = pytest.importorskip("pandas")
    X = digits[0][:100]
    frame = pd.DataFrame(
        {
            f"px{i}": pd.arrays.SparseArray(X[:, i], fill_value=fill_value)
            for i in range(64)
        }
    )
    ae = small(epochs=2).fit(frame)
    np.testing.assert_array_equal(ae.feature_names_in_, frame.columns)
    # As for any frame, its column-major values sum in another order: equal
    # to round-off.
    dense = small(epochs=2).fit(X)
    np.testing.assert_allclose(ae.transform(frame), dense.transform(X), atol=1e-9)
    assert ae.score(frame) == pytest.approx(dense.score(X), rel=1e-9)


def test_set_output_polars(digits):
    pl = pytest.importorskip("polars")
    X, _ = digits
    frame = pl.DataFrame({f"px{i}": X[:, i] for i in range(64)})
    out = small().set_output(transform="polars").fit_transform(frame)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["autoencodertransformer0", "autoencodertransformer1"]


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "infinity"),
        (np.array([["a", "b"], ["c", "d"]]), "could not convert|dtype"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones((1, 3)), "1 sample"),
        (np.ones((4, 3, 2)), r"Expected a 2-D X.*Received: X with shape \(4, 3, 2\)"),
        (np.ones(5), "2D array"),
    ],
    ids=["nan", "inf", "strings", "empty", "one-sample", "3d", "1d"],
)
def test_fit_rejects_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        small().fit(X)


def test_transform_rejects_other_feature_count(fitted):
    with pytest.raises(ValueError, match="64 features"):
        fitted.transform(np.zeros((3, 10)))


def test_transform_rejects_nan(fitted):
    X = np.zeros((3, 64))
    X[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(X)


def test_inverse_transform_rejects_wrong_code_width(fitted):
    with pytest.raises(
        ValueError, match=r"Expected codes of shape \(n_samples, 2\).*\(4, 3\)"
    ):
        fitted.inverse_transform(np.zeros((4, 3)))


def test_inverse_transform_rejects_nan(fitted):
    with pytest.raises(ValueError, match="NaN"):
        fitted.inverse_transform(np.array([[0.0, np.nan]]))


@pytest.mark.parametrize(
    "method", ["transform", "inverse_transform", "score", "score_samples"]
)
def test_calls_before_fit_raise_not_fitted(method):
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(small(), method)(np.zeros((2, 2)))


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
def test_bad_parameters_name_themselves(params, match, digits):
    with pytest.raises(ValueError, match=match):
        small(**params).fit(digits[0])


@pytest.mark.parametrize("scaling", ["center", "standard", "minmax", None])
def test_values_too_large_for_the_networks_are_refused_before_training(scaling):
    # A variance of values near 1e200 overflows float64, and unscaled values
    # of 1e30 overflow float32 once squared: training would only diverge.
    X = np.random.RandomState(0).rand(40, 3)
    big = X * (1e30 if scaling is None else 1e200)
    with (
        warnings.catch_warnings(),
        pytest.raises(ValueError, match=rf"scaling={scaling!r}; divide X by"),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        small(scaling=scaling).fit(big)
    # Scaled, 1e30 is an ordinary range.
    if scaling is not None:
        ae = small(scaling=scaling, epochs=2).fit(X * 1e30)
        assert np.all(np.isfinite(ae.inverse_transform(ae.transform(X * 1e30))))


def test_binary_crossentropy_needs_unit_range_data(digits):
    with pytest.raises(ValueError, match=r"\[0, 1\].*scaling='minmax'"):
        small(loss="binary_crossentropy", scaling="center").fit(digits[0])


def test_binary_crossentropy_auto_scales_to_unit_range(digits):
    X, _ = digits
    ae = small(loss="binary_crossentropy").fit(X)
    X_hat = ae.inverse_transform(ae.transform(X))
    # Sigmoid output in [0, 1] mapped back to the data's own range [0, 16].
    assert X_hat.min() >= 0 and X_hat.max() <= 16
