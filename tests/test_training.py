"""Training (``skae._training``): the ``Trainer`` and the epoch loop ``train``.

``Trainer`` and ``train`` on their own, then through the estimator: verbose
output, callbacks (they see every epoch, stop training, set the learning
rate), early stopping, faults that fail loudly and leave no half-fitted
estimator behind (divergence, interrupts), warnings that point at the caller,
memory, parallel searches, the structured epochs' input noise and their
compilation by XLA.
"""

import gc
import inspect
import logging
import os
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

from skae import AutoencoderTransformer, _pool, _training
from skae._input import ArrayRows
from skae._training import Schedule, Trainer, TrainerOptions, train
from skae.architectures import build_dense

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _make_estimator(**params):
    params = {"hidden_layer_sizes": (8,), "epochs": 3, "random_state": 0, **params}
    return AutoencoderTransformer(**params)


def small(**params):
    """Five epochs: the estimator of test_estimator.py."""
    return _make_estimator(**{"epochs": 5, **params})


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).rand(60, 5)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


def _assert_unfitted(estimator):
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    fitted = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    assert fitted == [], f"attributes left by a failed fit: {fitted}"


class _Interrupt(keras.callbacks.Callback):
    """Raise KeyboardInterrupt, as Ctrl+C would, at a given epoch."""

    def __init__(self, epoch, hook="on_epoch_end"):
        super().__init__()
        self.epoch = epoch
        setattr(self, hook, self._maybe_interrupt)

    def _maybe_interrupt(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


# -- Trainer and train on their own ------------------------------------------------


OPTIONS = TrainerOptions(
    loss="mse",
    optimizer="adam",
    learning_rate=1e-2,
    batch_size=16,
    noise=0.1,
    masking=0.0,
    structure_weight=0.0,
)


def _rows(X):
    Xs = (X - X.mean(axis=0)) / X.std()
    return ArrayRows(Xs.astype(np.float32))


def _train(rows, seed=0, val_rows=None, **schedule):
    encoder, decoder = build_dense((5,), 2, (8,), seed=0)
    trainer = Trainer(encoder, decoder, OPTIONS, batch_size=16, seed=seed)
    schedule = Schedule(
        **{
            "epochs": 20,
            "noise": 0.1,
            "tol": 0.0,
            "n_iter_no_change": 100,
            "warn_convergence": False,
            **schedule,
        }
    )
    trainer.start_loss = trainer.loss(rows)
    history, n_iter = train(trainer, rows, val_rows, schedule, np.random.RandomState(0))
    return trainer, history, n_iter


def test_train_lowers_the_loss_and_the_seed_sets_the_weights(X):
    rows = _rows(X)
    trainer, history, n_iter = _train(rows)
    assert n_iter == len(history["loss"]) == 20
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    # Trainer.loss, without the noise, fell too.
    assert trainer.loss(rows) < 0.8 * trainer.start_loss
    weights = trainer.autoencoder.get_weights()
    again, _, _ = _train(rows)
    for a, b in zip(weights, again.autoencoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The trainer's seed draws the noise: another seed, other weights.
    other, _, _ = _train(rows, seed=1)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(weights, other.autoencoder.get_weights(), strict=True)
    )


def test_train_stops_when_the_loss_stalls_and_records_validation(X):
    rows, val_rows = _rows(X[:48]), _rows(X[48:])
    # A tol no epoch can meet: the first epoch improves on nothing (inf), the
    # next two do not, and the patience of two epochs runs out.
    _, history, n_iter = _train(rows, tol=1e9, n_iter_no_change=2)
    assert n_iter == len(history["loss"]) == 3
    assert "val_loss" not in history
    # With validation rows the starting point is a candidate too: the first
    # epoch already fails to improve on it.
    _, history, n_iter = _train(rows, val_rows=val_rows, tol=1e9, n_iter_no_change=2)
    assert n_iter == 2
    assert len(history["loss"]) == len(history["val_loss"]) == 2
    assert np.all(np.isfinite(history["val_loss"]))


def test_tol_is_relative_to_the_loss(X):
    # Data a thousand times smaller has a loss a million times smaller: an
    # absolute tol of 1e-4 would count no epoch as an improvement and stop
    # after the patience of 3; relative to the loss, training goes on.
    Xs = (X - X.mean(axis=0)) / X.std()
    tiny = ArrayRows((Xs * 1e-3).astype(np.float32))
    _, history, n_iter = _train(tiny, tol=1e-4, n_iter_no_change=3, noise=0.0)
    # No epoch improved by 1e-4 in absolute terms.
    assert np.all(np.abs(np.diff(history["loss"])) < 1e-4)
    assert n_iter > 8
    assert history["loss"][-1] < 0.8 * history["loss"][0]


# -- divergence ----------------------------------------------------------------


def _diverging():
    # Unscaled inputs of 1e10 with a huge step: the first updates overflow
    # float32 in the first epoch. (Inputs whose square overflows it, 1e30, are
    # refused before training.)
    return _make_estimator(scaling=None, learning_rate=1e10, noise=0.0)


def test_diverging_loss_raises_and_leaves_estimator_unfitted(X):
    ae = _diverging()
    with pytest.raises(ValueError, match="finite training loss") as info:
        ae.fit(X * 1e10)
    message = str(info.value)
    assert "at epoch 1" in message
    assert "lower learning_rate" in message
    _assert_unfitted(ae)
    with pytest.raises(NotFittedError):
        ae.transform(X)


def test_a_diverging_refit_leaves_the_previous_fit_as_it_was(X):
    ae = _make_estimator().fit(X)
    before = {k: v for k, v in vars(ae).items() if k.endswith("_")}
    codes = ae.transform(X)
    ae.set_params(**_diverging().get_params())
    with pytest.raises(ValueError, match="Training diverged"):
        ae.fit(X * 1e10)
    # Every fitted attribute is the previous fit's own object: nothing of two fits.
    after = {k: v for k, v in vars(ae).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    np.testing.assert_array_equal(ae.transform(X), codes)


# A step far too large throws the weights to where the loss is huge but finite
# and flat: it stalled there, early stopping ended the fit as if it had
# converged, and PCA's solution (or nothing) stood in for the networks.
FINITE_DIVERGENCE = {
    "pca start": {},
    "no PCA candidate": {"code_activation": "tanh"},
    "random start": {"init": "random"},
    "early stopping": {"early_stopping": True},
}


@pytest.mark.parametrize("optimizer", ["rmsprop", "adagrad"])
@pytest.mark.parametrize("params", FINITE_DIVERGENCE.values(), ids=FINITE_DIVERGENCE)
def test_a_loss_diverging_while_finite_raises_and_leaves_estimator_unfitted(
    X, optimizer, params
):
    ae = _make_estimator(epochs=15, optimizer=optimizer, learning_rate=1e3, **params)
    with pytest.raises(ValueError, match="times its start") as info:
        ae.fit(X)
    message = str(info.value)
    assert "finite" not in message  # no NaN: the loss stayed finite
    assert "Training diverged: lower learning_rate" in message
    _assert_unfitted(ae)
    # The control: the default rate trains.
    check_is_fitted(ae.set_params(learning_rate=1e-3).fit(X))


def test_a_partial_fit_diverging_while_finite_is_undone(X):
    # One epoch: its loss must be compared with the loss before its first step.
    ae = _make_estimator(optimizer="rmsprop").partial_fit(X)
    before, n_seen = ae.transform(X), ae.n_samples_seen_
    ae.set_params(learning_rate=1e3)
    with pytest.raises(ValueError, match="Training diverged"):
        ae.partial_fit(X)
    np.testing.assert_array_equal(ae.transform(X), before)
    assert (ae.n_iter_, ae.n_samples_seen_) == (1, n_seen)
    assert ae.set_params(learning_rate=1e-3).partial_fit(X).n_iter_ == 2


def test_an_interrupted_fit_that_diverged_keeps_nothing(X):
    ae = _make_estimator(
        epochs=15, optimizer="rmsprop", learning_rate=1e3, callbacks=[_Interrupt(5)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing kept, nothing to say
        with pytest.raises(KeyboardInterrupt):
            ae.fit(X)
    _assert_unfitted(ae)


@pytest.mark.parametrize(
    "losses, start, baseline, kept, diverged",
    [
        ([5e3, 2.0], 1.0, 1.0, 2.0, True),  # rose 5000 times, ended above its start
        ([5e3, 0.5], 1.0, 1.0, 0.5, False),  # and came back below it
        ([5e3], 1.0, 1.0, 1.0, True),  # early stopping kept the start itself
        ([900.0, 2.0], 1.0, 1.0, 2.0, False),  # rose less than 1000 times
        # A near-perfect start (PCA's, on data of low rank): the mean's loss
        # is the floor.
        ([1e-6, 1e-6], 1e-12, 1.0, 1e-6, False),
        ([2e3, 2e3], 1e-12, 1.0, 2e3, True),
        ([1.0], 0.0, 0.0, 1.0, False),  # nothing to compare with
    ],
)
def test_diverged_compares_with_the_start_and_the_mean(
    losses, start, baseline, kept, diverged
):
    assert _training._diverged(losses, start, baseline, kept) is diverged


def test_non_finite_weights_after_last_epoch_raise(X):
    class Poison(keras.callbacks.Callback):
        # The last step leaves NaN weights behind a finite epoch loss.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.set_weights(
                    [np.full_like(w, np.nan) for w in self.model.get_weights()]
                )

    ae = _make_estimator(epochs=2, callbacks=[Poison()])
    with pytest.raises(ValueError, match="finite weights"):
        ae.fit(X)
    _assert_unfitted(ae)


# -- warnings point at the caller --------------------------------------------


def test_convergence_warning_points_at_the_fit_call(X):
    ae = _make_estimator(epochs=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        ae.fit(X)
    caught = [w for w in record if w.category is ConvergenceWarning]
    assert len(caught) == 1
    assert "epochs=2" in str(caught[0].message)
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)


@pytest.mark.parametrize(
    "call",
    [
        lambda ae, X: ae.fit_transform(X),
        lambda ae, X: make_pipeline(ae).fit(X),
    ],
    ids=["fit_transform", "pipeline"],
)
def test_convergence_warning_points_at_user_code_through_wrappers(X, call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call(_make_estimator(epochs=2), X)
    caught = [w for w in record if w.category is ConvergenceWarning]
    assert len(caught) == 1
    assert caught[0].filename == __file__


# -- interrupts ----------------------------------------------------------------


def test_interrupt_mid_refit_keeps_only_the_interrupted_fit(X):
    # Trained networks, not PCA's, so that two fits differ.
    ae = _make_estimator(epochs=5, init="random", code_l1=1e-12).fit(X)
    first_codes, first_encoder = ae.transform(X), ae.encoder_
    assert ae.n_iter_ == 5

    ae.set_params(callbacks=[_Interrupt(epoch=1)])
    with pytest.warns(UserWarning, match="interrupted after 2 epoch") as record:
        with pytest.raises(KeyboardInterrupt):
            ae.fit(X)
    assert record[0].filename == __file__

    check_is_fitted(ae)
    assert ae.n_iter_ == 2
    assert len(ae.history_["loss"]) == ae.n_iter_
    assert ae.encoder_ is not first_encoder
    codes = ae.transform(X)
    assert np.isfinite(codes).all()
    assert not np.array_equal(codes, first_codes)
    # The weights kept are those of epoch 2 of an uninterrupted fit.
    reference = _make_estimator(epochs=2, init="random", code_l1=1e-12).fit(X)
    np.testing.assert_array_equal(codes, reference.transform(X))


def test_interrupt_with_early_stopping_keeps_consistent_history(X):
    ae = _make_estimator(epochs=10, early_stopping=True)
    ae.set_params(callbacks=[_Interrupt(epoch=2)])
    with pytest.warns(UserWarning, match="interrupted after 3 epoch"):
        with pytest.raises(KeyboardInterrupt):
            ae.fit(X)
    assert ae.n_iter_ == 3
    assert len(ae.history_["loss"]) == len(ae.history_["val_loss"]) == 3
    assert np.isfinite(ae.transform(X)).all()


def test_interrupt_before_the_first_epoch_ends_keeps_the_previous_fit(X):
    ae = _make_estimator(epochs=5)
    ae.set_params(callbacks=[_Interrupt(epoch=0, hook="on_epoch_begin")])
    with pytest.raises(KeyboardInterrupt):
        ae.fit(X)
    _assert_unfitted(ae)  # a first fit: nothing to keep
    ae.set_params(callbacks=None).fit(X)
    codes, n_iter = ae.transform(X), ae.n_iter_
    ae.set_params(callbacks=[_Interrupt(epoch=0, hook="on_epoch_begin")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing new kept, nothing to say
        with pytest.raises(KeyboardInterrupt):
            ae.fit(X)
    assert ae.n_iter_ == n_iter
    np.testing.assert_array_equal(ae.transform(X), codes)


# -- memory --------------------------------------------------------------------


def _func_graphs(name):
    return [
        o
        for o in gc.get_objects()
        if type(o).__name__ == "FuncGraph" and getattr(o, "name", None) == name
    ]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_repeated_fits_free_their_graphs_quietly(X):
    # The mechanism behind the memory test, fast: TensorFlow's gradient
    # registry used to keep every fit's epoch graph alive.
    records = _Records()
    tf.get_logger().addHandler(records)
    try:
        for seed in range(6):
            _make_estimator(epochs=2, random_state=seed).fit(X).transform(X)
    finally:
        tf.get_logger().removeHandler(records)
    gc.collect()
    # Idle pooled trainers keep theirs (a bounded number), and only they.
    pooled = sum(map(len, _pool._idle.values()))
    assert 1 <= pooled <= _pool._PER_KEY * _pool._KEYS
    assert len(_func_graphs("run_epoch")) <= pooled
    _pool.clear()
    gc.collect()
    assert _func_graphs("run_epoch") == []
    # TensorFlow warns about "retracing" from the fifth fit on; by design.
    assert not [m for m in records.messages if "retracing" in m]


def _rss_mb():
    try:
        import ctypes

        # Hand freed heap pages back first: the test is about what is kept, not
        # about what malloc caches.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux")
def test_memory_stays_flat_over_repeated_fits(X):
    rss = {}
    for i in range(1, 51):
        ae = _make_estimator(epochs=2, random_state=i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ae.fit(X).transform(X)
        if i in (1, 10, 50):
            del ae
            gc.collect()
            rss[i] = _rss_mb()
    print("RSS MB after fit 1/10/50:", {k: round(v, 1) for k, v in rss.items()})
    # Before the fixes this grew by ~4 MB per fit (160 MB over these 40); now
    # ~0.25 MB per fit remains (TensorFlow's per-function runtime state).
    assert rss[50] - rss[10] < 20, rss


# -- parallel search -----------------------------------------------------------


@pytest.mark.slow
def test_grid_search_in_parallel_matches_sequential(X):
    grid = {"n_components": [1, 3], "learning_rate": [1e-3, 1e-2]}
    results = {}
    for n_jobs in (1, 2):
        search = GridSearchCV(_make_estimator(epochs=3), grid, cv=3, n_jobs=n_jobs)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X)
        print(f"n_jobs={n_jobs}: {time.perf_counter() - start:.1f} s")
        results[n_jobs] = search
    assert results[1].best_params_ == results[2].best_params_
    np.testing.assert_array_equal(
        results[1].cv_results_["mean_test_score"],
        results[2].cv_results_["mean_test_score"],
    )


# -- verbose output, callbacks and early stopping ----------------------------------


def test_verbose_0_prints_nothing(digits, capfd):
    X, _ = digits
    small(verbose=0).fit(X).transform(X)
    out, _ = capfd.readouterr()
    assert out == ""


def test_verbose_1_prints_a_progress_bar_per_epoch(digits, capsys):
    X, _ = digits
    small(verbose=1, epochs=3).fit(X)
    out = capsys.readouterr().out
    training, candidate = out.split("A decoder on PCA's codes")
    # Then one epoch (a quarter of 3, at least one) for the decoder trained
    # on PCA's codes, which fit compares with the trained networks.
    assert training.count("Epoch ") == 3 and candidate.count("Epoch ") == 1
    assert "loss" in training


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
    # From a random start (a PCA start would be the best); code_l1 keeps the
    # trained networks, which PCA's would otherwise replace.
    ae = small(
        init="random",
        code_l1=1e-12,
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


# -- structured epochs: input noise and XLA ----------------------------------------

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


def test_bank_noise_takes_whole_rows_of_the_bank():
    x = tf.zeros((64, 3))
    bank = tf.constant(np.arange(30.0, dtype=np.float32).reshape(10, 3))
    noisy = _training._corrupt(x, 0.5, 0.0, tf.constant([1, 2]), True, bank).numpy()
    rows = [tuple(r) for r in 0.5 * bank.numpy()]
    assert all(tuple(r) in rows for r in noisy)
    assert len({tuple(r) for r in noisy}) > 5  # random rows, not one
    again = _training._corrupt(x, 0.5, 0.0, tf.constant([1, 2]), True, bank).numpy()
    np.testing.assert_array_equal(noisy, again)


def _py_identity(x):
    # An op XLA has no kernel for: compiling a graph that holds it fails.
    y = tf.py_function(lambda a: a, [x], Tout=x.dtype)
    y.set_shape(x.shape)
    return y


def test_xla_falls_back_to_the_graph_where_it_cannot_compile():
    calls = []

    def fn(x):
        calls.append(x.shape)  # once per trace
        return _py_identity(x) * 2.0

    run = _training._xla_or_graph(fn)
    np.testing.assert_array_equal(run(tf.constant([1.0, 2.0])), [2.0, 4.0])
    np.testing.assert_array_equal(run(tf.constant([3.0, 4.0])), [6.0, 8.0])
    assert len(calls) == 2  # the failed XLA trace, then the graph's, reused


def test_xla_is_skipped_when_not_asked_for():
    traces = []

    def fn(x):
        traces.append(tf.inside_function())
        return _py_identity(x) * 2.0

    run = _training._xla_or_graph(fn)
    np.testing.assert_array_equal(run(tf.constant([1.0]), xla=False), [2.0])
    np.testing.assert_array_equal(run(tf.constant([2.0]), xla=False), [4.0])
    assert len(traces) == 1  # the graph's trace only: XLA was never tried


@pytest.mark.parametrize("min_edges, expected", [(0, True), (10**9, False)])
def test_fit_compiles_with_xla_from_enough_edges(
    monkeypatch, blobs, min_edges, expected
):
    # Compiling costs about a second: more than a short fit takes in all.
    asked = []
    xla_or_graph = _training._xla_or_graph

    def spy(fn):
        run = xla_or_graph(fn)

        def recording(*args, xla=True):
            asked.append(xla)
            return run(*args, xla=xla)

        return recording

    monkeypatch.setattr(_training, "_xla_or_graph", spy)
    monkeypatch.setattr(_training, "_XLA_MIN_EDGES", min_edges)
    _pool.clear()  # New trainers, which the spy sees.
    X, _ = blobs
    AutoencoderTransformer(structure_weight=1.0, **FAST).fit(X)
    assert asked and set(asked) == {expected}


def test_xla_errors_after_a_compiled_call_are_raised():
    # A later trace that XLA refuses is an error in the epoch, not a reason to
    # switch to the graph half-way through a fit.
    def fn(x):
        return _py_identity(x) if x.dtype == tf.float64 else x * 2.0

    run = _training._xla_or_graph(fn)
    np.testing.assert_array_equal(run(tf.constant([1.0, 2.0])), [2.0, 4.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="EagerPyFunc"):
        run(tf.constant([1.0, 2.0], tf.float64))


def py_encoder(input_shape, n_components):
    """An encoder with a ``tf.py_function`` in it: XLA cannot compile it."""
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    hidden = keras.layers.Lambda(_py_identity, output_shape=(8,))(hidden)
    return keras.Model(inputs, keras.layers.Dense(n_components)(hidden))


def test_structured_fit_trains_networks_xla_cannot_compile(monkeypatch, blobs):
    monkeypatch.setattr(_training, "_XLA_MIN_EDGES", 0)  # XLA is tried first
    X, _ = blobs
    ae = AutoencoderTransformer(structure_weight=1.0, encoder=py_encoder, **FAST)
    ae.fit(X)
    assert ae.n_iter_ == len(ae.history_["loss"]) and ae.n_iter_ > 0
    assert np.all(np.isfinite(ae.history_["loss"]))
    assert ae.history_["loss"][-1] < ae.history_["loss"][0]
    assert np.all(np.isfinite(ae.transform(X)))
