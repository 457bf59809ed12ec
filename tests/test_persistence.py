"""Public saving and loading (``skae.persistence``, ``AutoencoderTransformer.save``).

Round trips through a skae file, pickle and joblib, in this process and in a
fresh one; files of earlier versions; what is saved of parameters that are not
data; where a file is written and the errors for bad paths and arguments. The
file format itself (bad files, atomic writes, code in a file, the registry) is
tested in test_serialization.py.
"""

import json
import os
import pickle
import re
import stat
import subprocess
import sys
import textwrap
import warnings
import zipfile

import joblib
import keras
import numpy as np
import pytest
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError

import skae
from skae import AutoencoderTransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _make_estimator(**params):
    params = {"hidden_layer_sizes": (8,), "epochs": 3, "random_state": 0, **params}
    return AutoencoderTransformer(**params)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).rand(60, 5)


@pytest.fixture(scope="module")
def fitted(X):
    return _make_estimator().fit(X)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "ae.skae"
    fitted.save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _assert_same_fitted_state(loaded, original):
    assert loaded.get_params() == original.get_params()
    names = {k for k in vars(original) if k.endswith("_") and not k.startswith("_")}
    assert names == {
        k for k in vars(loaded) if k.endswith("_") and not k.startswith("_")
    }
    for name in names - {"encoder_", "decoder_"}:
        expected, actual = getattr(original, name), getattr(loaded, name)
        if isinstance(expected, np.ndarray):
            assert actual.dtype == expected.dtype
            np.testing.assert_array_equal(actual, expected)
        else:
            assert actual == expected and type(actual) is type(expected), name
    for name in ("encoder_", "decoder_"):
        for a, b in zip(
            getattr(loaded, name).get_weights(),
            getattr(original, name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


# -- round trips ---------------------------------------------------------------


def test_round_trip_same_process(fitted, saved, X):
    loaded = skae.load(saved)
    _assert_same_fitted_state(loaded, fitted)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    codes = fitted.transform(X)
    np.testing.assert_array_equal(
        loaded.inverse_transform(codes), fitted.inverse_transform(codes)
    )
    X32 = X.astype(np.float32)
    assert loaded.transform(X32).dtype == np.float32
    np.testing.assert_array_equal(loaded.transform(X32), fitted.transform(X32))


def test_round_trip_in_fresh_subprocess(fitted, saved, X, tmp_path):
    """skae file, pickle and joblib all load in a new process, transform exactly."""
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", fitted.transform(X))
    with open(tmp_path / "ae.pkl", "wb") as f:
        pickle.dump(fitted, f)
    joblib.dump(fitted, tmp_path / "ae.joblib")
    code = textwrap.dedent(
        f"""
        import pickle, joblib, numpy as np, skae
        X = np.load({str(tmp_path / "X.npy")!r})
        expected = np.load({str(tmp_path / "expected.npy")!r})
        loaded = {{
            "skae": skae.load({str(saved)!r}),
            "pickle": pickle.load(open({str(tmp_path / "ae.pkl")!r}, "rb")),
            "joblib": joblib.load({str(tmp_path / "ae.joblib")!r}),
        }}
        for how, estimator in loaded.items():
            assert np.array_equal(estimator.transform(X), expected), how
        print("identical")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "identical"


LEGACY = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name", ["dense", "conv"])
@pytest.mark.parametrize("kind", ["skae", "pkl"])
def test_files_of_earlier_versions_load_and_give_the_same_arrays(name, kind):
    """Files written before the package's inside was reorganised still load."""
    sys.path.insert(0, LEGACY)
    try:
        from make_legacy_files import legacy_data
    finally:
        sys.path.remove(LEGACY)
    _, X_test, _, images_test = legacy_data()
    data = X_test if name == "dense" else images_test
    path = os.path.join(LEGACY, f"legacy_{name}.{kind}")
    if kind == "skae":
        ae = skae.load(path)
    else:
        with open(path, "rb") as f, warnings.catch_warnings():
            # Written by the scikit-learn of its day; CI may install a newer one.
            warnings.simplefilter("ignore", InconsistentVersionWarning)
            ae = pickle.load(f)
    expected = np.load(os.path.join(LEGACY, "legacy_outputs.npz"))
    # Bit for bit through Keras, as they were written; NumPy's matrix products
    # round differently, to float64 round-off.
    with skae.inference_path("keras"):
        codes = ae.transform(data)
        np.testing.assert_array_equal(codes, expected[f"{name}_codes"])
        np.testing.assert_array_equal(
            ae.inverse_transform(codes), expected[f"{name}_rebuilt"]
        )
        scores = ae.score_samples(data)
        np.testing.assert_array_equal(scores, expected[f"{name}_scores"])
    np.testing.assert_allclose(ae.transform(data), codes, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ae.score_samples(data), scores, rtol=1e-12)
    # And they train on: partial_fit continues from the saved stream state.
    n_iter = ae.n_iter_
    ae.partial_fit(data)
    assert ae.n_iter_ == n_iter + 1


def test_pickle_and_joblib_round_trip(fitted, X, tmp_path):
    expected = fitted.transform(X)
    unpickled = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(unpickled.transform(X), expected)
    joblib.dump(fitted, tmp_path / "ae.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "ae.joblib").transform(X), expected
    )
    _assert_same_fitted_state(unpickled, fitted)


def test_load_never_unpickles(saved, X, fitted, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load used pickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    np.testing.assert_array_equal(skae.load(saved).transform(X), fitted.transform(X))


def test_feature_names_and_output_config_round_trip(X, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    ae = _make_estimator().set_output(transform="pandas").fit(df)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.feature_names_in_, ae.feature_names_in_)
    out = loaded.transform(df)
    pd.testing.assert_frame_equal(out, ae.transform(df))
    assert list(out.columns) == list(ae.get_feature_names_out())


def test_random_state_instance_round_trips(X, tmp_path):
    ae = _make_estimator(random_state=np.random.RandomState(3)).fit(X)
    ae.transform(X)  # fills the compiled-function cache, which is not saved
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(1000) == ae.random_state.randint(1000)


def test_layer_normalized_encoder_round_trips_in_safe_mode(X, tmp_path):
    ae = _make_estimator(normalization="layer", activation="gelu").fit(X)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert loaded.get_params()["normalization"] == "layer"
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))
    np.testing.assert_array_equal(
        loaded.inverse_transform(ae.transform(X)),
        ae.inverse_transform(ae.transform(X)),
    )


def test_params_that_are_not_data_are_saved_as_none(X, tmp_path):
    class Noop(keras.callbacks.Callback):
        pass

    ae = _make_estimator(callbacks=[Noop()]).fit(X)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ae.save(tmp_path / "ae.skae")
    ours = [w for w in record if "saved as None" in str(w.message)]
    assert len(ours) == 1 and ours[0].category is UserWarning
    assert "['callbacks']" in str(ours[0].message)
    # It points at the caller's save() line, not inside skae.
    assert ours[0].filename == __file__
    loaded = skae.load(tmp_path / "ae.skae")
    assert loaded.callbacks is None
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))
    header = json.loads(_members(tmp_path / "ae.skae")["skae.json"])
    assert header["unsaved_params"] == ["callbacks"]


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        _make_estimator().save(tmp_path / "ae.skae")
    assert os.listdir(tmp_path) == []


def test_save_writes_one_file_with_usual_permissions(fitted, tmp_path):
    path = tmp_path / "ae.skae"
    assert fitted.save(path) == str(path)
    assert os.listdir(tmp_path) == ["ae.skae"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_save_through_symlink_replaces_target(fitted, saved, tmp_path):
    target = tmp_path / "target.skae"
    target.write_bytes(b"old")
    link = tmp_path / "link.skae"
    link.symlink_to(target)
    fitted.save(link)
    assert link.is_symlink()
    assert target.read_bytes()[:2] == b"PK"


def test_save_to_directory_is_refused(fitted, tmp_path):
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        fitted.save(tmp_path)


def test_save_into_missing_directory_names_target(fitted, tmp_path):
    target = tmp_path / "missing" / "ae.skae"
    with pytest.raises(FileNotFoundError, match=re.escape(str(target))):
        fitted.save(target)


# -- paths and argument types -------------------------------------------------


def test_missing_path_and_directory_raise_oserror(tmp_path):
    missing = tmp_path / "missing.skae"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        skae.load(missing)
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        skae.load(tmp_path)


def test_path_and_safe_mode_of_the_wrong_type_name_themselves(fitted, saved):
    with pytest.raises(TypeError, match=r"Received: path=3 of type int"):
        skae.load(3)
    with pytest.raises(TypeError, match=r"Received: path=None of type NoneType"):
        fitted.save(None)
    # "no" is true: it would keep safe mode on against what was asked.
    with pytest.raises(TypeError, match=r"Received: safe_mode='no'"):
        skae.load(saved, safe_mode="no")
