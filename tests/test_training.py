"""Training faults fail loudly and leave no half-fitted estimator behind."""

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

from skae import AutoencoderTransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _make_estimator(**params):
    params = {"hidden_layer_sizes": (8,), "epochs": 3, "random_state": 0, **params}
    return AutoencoderTransformer(**params)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).rand(60, 5)


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


def test_diverging_refit_leaves_nothing_of_the_previous_fit(X):
    ae = _make_estimator().fit(X)
    check_is_fitted(ae)
    ae.set_params(**_diverging().get_params())
    with pytest.raises(ValueError, match="Training diverged"):
        ae.fit(X * 1e10)
    _assert_unfitted(ae)


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
    ae = _make_estimator(epochs=5).fit(X)
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
    reference = _make_estimator(epochs=2).fit(X)
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


def test_interrupt_before_the_first_epoch_ends_leaves_estimator_unfitted(X):
    ae = _make_estimator(epochs=5).fit(X)
    ae.set_params(callbacks=[_Interrupt(epoch=0, hook="on_epoch_begin")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing kept, nothing to say
        with pytest.raises(KeyboardInterrupt):
            ae.fit(X)
    _assert_unfitted(ae)


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
