"""AutoencoderTransformer's scikit-learn surface.

scikit-learn's own checks of the default estimator, then the fitted interface
(shapes, attributes, reproducibility), composition (clone, pickle, pipelines,
searches, column transformers, ``set_output``), methods called before ``fit``,
tags, refitting and NumPy numbers as parameters. What each step of a fit does
is tested with its module: parameters in test_params.py, input in
test_input.py, inference in test_inference.py, and so on.
"""

import io
import pickle
import random
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import joblib
import keras
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

import skae
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


# The tiny epoch budgets used here never converge; that warning has its own
# test in test_training.py.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


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
    # Five epochs may not beat PCA: fit then keeps PCA's linear networks.
    expected = {"autoencoder": (8,), "pca": ()}[fitted.solution_]
    assert fitted.hidden_layer_sizes_ == expected
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


def _global_random_states():
    import random

    import tensorflow as tf
    from keras.src.random.seed_generator import global_seed_generator

    # Creating Keras' global generator draws from `random`: do it first.
    keras_state = global_seed_generator().state.numpy().copy()
    return {
        "numpy": np.random.get_state()[1].copy(),  # noqa: NPY002
        "python": random.getstate(),
        "tensorflow": tf.random.get_global_generator().state.numpy().copy(),
        "keras": keras_state,
    }


def _changed_states(before):
    after = _global_random_states()
    return [
        name
        for name in before
        if not (
            before[name] == after[name]
            if name == "python"
            else np.array_equal(before[name], after[name])
        )
    ]


@pytest.mark.parametrize(
    "random_state, changed",
    [(0, []), (np.random.RandomState(0), []), (None, ["numpy"])],
    ids=["int", "RandomState", "None"],
)
def test_fit_leaves_global_random_state_alone(digits, random_state, changed):
    # As documented: with None NumPy's global stream draws the seeds, as in
    # scikit-learn; nothing else global is ever read or changed.
    X, _ = digits
    before = _global_random_states()
    small(noise=0.1, masking=0.1, early_stopping=True, random_state=random_state).fit(X)
    assert _changed_states(before) == changed


@keras.saving.register_keras_serializable(package="skae_tests")
class _Probe(keras.layers.Dense):
    """A Dense layer that, whenever one is made, has another thread draw from
    Python's ``random`` (into ``_Probe.draws``, when a list)."""

    draws = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        draws = _Probe.draws
        if draws is not None:
            thread = threading.Thread(target=lambda: draws.append(random.random()))
            thread.start()
            thread.join()


def probe_encoder(input_shape, n_components):
    return keras.Sequential([keras.Input(input_shape), _Probe(n_components)])


def test_other_threads_keep_their_random_sequence_while_networks_are_built(
    digits, tmp_path
):
    # fit builds the user's encoder, load rebuilds it, transform clones it in
    # float64, each with seeded Keras seeds. They used to seed Python's global
    # random: a thread drawing from it meanwhile drew the seeded sequence.
    X, _ = digits
    random.seed(12345)
    expected = [random.random() for _ in range(4)]
    random.seed(12345)
    _Probe.draws = []
    try:
        ae = small(encoder=probe_encoder).fit(X)
        with warnings.catch_warnings():
            # That the encoder is saved as None, tested in test_persistence.
            warnings.simplefilter("ignore", UserWarning)
            path = ae.save(tmp_path / "ae.skae")
        skae.load(path).transform(X)
        draws = list(_Probe.draws)
    finally:
        _Probe.draws = None
    # One layer made by fit, load and transform each; transform makes no
    # float64 copy on JAX without x64 (its float64 would be float32).
    n = 3
    if keras.backend.backend() == "jax":
        import jax

        n = 2 + bool(jax.config.jax_enable_x64)
    assert len(draws) == n
    assert draws == expected[:n]
    assert random.random() == expected[n]


def test_threads_racing_on_a_loaded_models_first_transform(fitted, digits, tmp_path):
    # Each round: two threads transform a freshly loaded model at once (both
    # build its compiled float64 copy), while a third draws from random. The
    # race used to leave random seeded (4 rounds in 10) and change the third
    # thread's draws.
    X, _ = digits
    path = fitted.save(tmp_path / "ae.skae")
    expected_codes = fitted.transform(X)
    for round_ in range(6):
        loaded = skae.load(path)
        random.seed(round_)
        expected = [random.random() for _ in range(2000)]
        state_after = random.getstate()
        random.seed(round_)
        start, codes, draws = threading.Barrier(3), {}, []

        def transform(i, loaded=loaded, start=start, codes=codes):
            start.wait()
            codes[i] = loaded.transform(X)

        def draw(start=start, draws=draws):
            start.wait()
            for _ in range(2000):
                draws.append(random.random())
                time.sleep(0)

        threads = [threading.Thread(target=transform, args=(i,)) for i in (0, 1)]
        threads.append(threading.Thread(target=draw))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert draws == expected
        assert random.getstate() == state_after
        for i in (0, 1):
            np.testing.assert_array_equal(codes[i], expected_codes)


def test_refit_resets_state(digits):
    X, _ = digits
    ae = small(n_components=3).fit(X)
    ae.set_params(n_components=2, epochs=2).fit(X[:, :10])
    assert ae.n_features_in_ == 10
    assert ae.transform(X[:, :10]).shape == (400, 2)
    assert ae.n_iter_ == 2


@pytest.mark.parametrize(
    "method", ["transform", "inverse_transform", "score", "score_samples"]
)
def test_calls_before_fit_raise_not_fitted(method):
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(small(), method)(np.zeros((2, 2)))


# -- tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, images",
    [
        (dict(), False),
        (dict(input_shape=(8, 8)), True),
        (dict(architecture="conv"), True),
    ],
)
def test_tags_say_what_the_estimator_takes_and_gives(params, images):
    tags = AutoencoderTransformer(**params).__sklearn_tags__()
    assert tags.transformer_tags.preserves_dtype == ["float64", "float32"]
    assert not tags.input_tags.allow_nan
    assert tags.input_tags.three_d_array is images


def test_sparse_tag_follows_structure_weight():
    assert AutoencoderTransformer().__sklearn_tags__().input_tags.sparse
    tags = AutoencoderTransformer(structure_weight=1.0).__sklearn_tags__()
    assert not tags.input_tags.sparse


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
    # A wider code reconstructs better: the default score (negative
    # reconstruction error) must rank it first.
    assert search.best_params_["n_components"] == 8
    scores = search.cv_results_["mean_test_score"]
    wide = search.cv_results_["param_n_components"] == 8
    assert scores[wide].min() > scores[~wide].max()
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


def test_set_output_polars(digits):
    pl = pytest.importorskip("polars")
    X, _ = digits
    frame = pl.DataFrame({f"px{i}": X[:, i] for i in range(64)})
    out = small().set_output(transform="polars").fit_transform(frame)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["autoencodertransformer0", "autoencodertransformer1"]
