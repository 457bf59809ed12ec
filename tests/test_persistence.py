"""Saving and loading: round trips, atomic writes, and refusing bad files."""

import errno
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
import sklearn
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError

import skae
from skae import AutoencoderTransformer, _serialization, persistence

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


def _write_members(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _rewrite_header(source, target, edit):
    members = _members(source)
    header = json.loads(members["skae.json"])
    edit(header)
    members["skae.json"] = json.dumps(header).encode()
    _write_members(target, members)


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
    codes = ae.transform(data)
    np.testing.assert_array_equal(codes, expected[f"{name}_codes"])
    np.testing.assert_array_equal(
        ae.inverse_transform(codes), expected[f"{name}_rebuilt"]
    )
    np.testing.assert_array_equal(ae.score_samples(data), expected[f"{name}_scores"])
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


def test_any_plain_data_state_round_trips(fitted, X, tmp_path):
    ae = pickle.loads(pickle.dumps(fitted))
    extra = {
        "extra_scalar_": np.float64(0.1),
        "extra_int_": np.int64(-3),
        "extra_flag_": np.bool_(True),
        "extra_array_": np.arange(6, dtype=np.float32).reshape(2, 3),
        "extra_text_": np.array(["a", "bc"]),
        "extra_names_": np.array([["x"], ["y"]], dtype=object),
        "extra_nested_": {"loss": [1.0, float("nan"), -np.inf], "shape": (2, (3,))},
        # Like n_components_scores_, keyed by code size.
        "extra_scores_": {3: 0.5, "best": 0.9},
        "_private_note": "kept too",
    }
    ae.__dict__.update(extra)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    for name, expected in extra.items():
        actual = getattr(loaded, name)
        assert type(actual) is type(expected), name
        if isinstance(expected, np.ndarray):
            assert actual.dtype == expected.dtype
            np.testing.assert_array_equal(actual, expected)
        elif name == "extra_scores_":
            assert list(actual.items()) == list(expected.items())
        elif name == "extra_nested_":
            np.testing.assert_equal(actual, expected)
            assert isinstance(actual["shape"][1], tuple)
        else:
            assert actual == expected
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))


def test_layer_normalized_encoder_round_trips_in_safe_mode(X, tmp_path):
    ae = _make_estimator(normalization="layer", activation="gelu").fit(X)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert loaded.get_params()["normalization"] == "layer"
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))
    np.testing.assert_array_equal(
        loaded.inverse_transform(ae.transform(X)),
        ae.inverse_transform(ae.transform(X)),
    )


def test_fraction_of_variance_search_round_trips(X, tmp_path):
    ae = _make_estimator(n_components=0.8).fit(X)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    assert loaded.n_components_scores_ == ae.n_components_scores_
    assert all(type(k) is int for k in loaded.n_components_scores_)
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


def test_state_that_is_not_data_cannot_be_saved(fitted, tmp_path):
    ae = pickle.loads(pickle.dumps(fitted))
    ae.callback_ = print
    with pytest.raises(TypeError, match="callback_ is a builtins"):
        ae.save(tmp_path / "ae.skae")
    assert os.listdir(tmp_path) == []


def test_file_records_versions(saved):
    header = json.loads(_members(saved)["skae.json"])
    assert header["format"] == "skae"
    assert header["format_version"] == persistence.FORMAT_VERSION
    assert header["versions"]["skae"] == skae.__version__
    assert header["versions"]["keras"] == keras.__version__
    assert header["versions"]["scikit-learn"] == sklearn.__version__


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


# -- atomic writes -------------------------------------------------------------


def _fail_at_member(monkeypatch, exception):
    # Once the header and arrays are in the file, writing a model fails.
    original = zipfile.ZipFile.writestr

    def writestr(self, name, *args, **kwargs):
        if str(name).startswith("models/"):
            raise exception
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)


def _fail_mid_write(monkeypatch):
    _fail_at_member(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))


def _interrupt_mid_write(monkeypatch):
    _fail_at_member(monkeypatch, KeyboardInterrupt())


def _fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


def _fail_replace(monkeypatch):
    def replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(
    "fail, error",
    [
        (_fail_mid_write, OSError),
        (_fail_fsync, OSError),
        (_fail_replace, OSError),
        (_interrupt_mid_write, KeyboardInterrupt),
    ],
)
@pytest.mark.parametrize("previous", [True, False])
def test_failed_save_leaves_previous_file_and_no_litter(
    fitted, saved, tmp_path, monkeypatch, fail, error, previous
):
    path = tmp_path / "ae.skae"
    if previous:
        path.write_bytes(saved.read_bytes())
    before = sorted(os.listdir(tmp_path))
    other = _make_estimator(n_components=1)
    other.__dict__.update(  # a different fitted estimator, no second fit needed
        {k: v for k, v in vars(fitted).items() if k.endswith("_")}
    )
    fail(monkeypatch)
    with pytest.raises(error) as info:
        other.save(path)
    monkeypatch.undo()
    if error is OSError:
        assert str(path) in str(info.value)
        assert "left as it was" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before
    if previous:
        assert path.read_bytes() == saved.read_bytes()
        assert skae.load(path).n_components == fitted.n_components
    else:
        assert not path.exists()


# -- bad files -----------------------------------------------------------------


def _assert_refused(path, match=""):
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as info:
        skae.load(path)
    assert re.search(match, str(info.value)), str(info.value)
    return info.value


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved, tmp_path, fraction):
    data = saved.read_bytes()
    path = tmp_path / "truncated.skae"
    path.write_bytes(data[: int(len(data) * fraction)])
    expected = "empty file" if fraction == 0 else "not a complete zip archive"
    _assert_refused(path, expected)


def test_file_truncated_by_one_byte_is_refused(saved, tmp_path):
    path = tmp_path / "truncated.skae"
    path.write_bytes(saved.read_bytes()[:-1])
    _assert_refused(path, "not a complete zip archive")


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "random.skae"
    path.write_bytes(np.random.RandomState(0).bytes(5000))
    _assert_refused(path, "not a complete zip archive")


def test_corrupted_member_is_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    info = zipfile.ZipFile(saved).getinfo("models/encoder_.keras")
    data[info.header_offset + 100] ^= 0xFF  # inside the member's data
    path = tmp_path / "corrupt.skae"
    path.write_bytes(bytes(data))
    _assert_refused(path, "truncated or corrupt")


def test_zip_that_is_not_a_skae_file_is_refused(fitted, tmp_path):
    path = tmp_path / "other.zip"
    _write_members(path, {"readme.txt": b"hello"})
    _assert_refused(path, "without 'skae.json'")
    keras_file = tmp_path / "encoder.keras"
    fitted.encoder_.save(keras_file)
    _assert_refused(keras_file, "without 'skae.json'")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.update(format="other"), "does not describe a skae file"),
        (lambda h: h.update(format_version="1"), "invalid format_version"),
        (lambda h: h.update({"class": "os.system"}), "unknown estimator class"),
        (lambda h: h["state"].pop("n_iter_"), "not that of a fitted estimator"),
        (lambda h: h["state"].update(transform=1), "invalid fitted attribute"),
        (
            lambda h: h["state"].update(extra_={"__items__": [[1.5, 0.0]]}),
            "__items__ tag without",
        ),
        (
            lambda h: h["state"].update(input_offset_={"__array__": "arrays/9.npy"}),
            "missing member",
        ),
    ],
)
def test_malformed_header_is_refused(saved, tmp_path, edit, match):
    path = tmp_path / "edited.skae"
    _rewrite_header(saved, path, edit)
    _assert_refused(path, match)


def test_header_that_is_not_json_is_refused(saved, tmp_path):
    members = _members(saved)
    members["skae.json"] = b"\xff{not json"
    path = tmp_path / "edited.skae"
    _write_members(path, members)
    _assert_refused(path, "not valid JSON")


def test_newer_format_version_is_refused(saved, tmp_path):
    path = tmp_path / "newer.skae"
    _rewrite_header(saved, path, lambda h: h.update(format_version=2))
    _assert_refused(path, r"format_version=2.*upgrade skae")


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


# -- code in the file ----------------------------------------------------------


@pytest.fixture
def lambda_file(saved, tmp_path, monkeypatch):
    """A valid skae file whose encoder has a Lambda layer that sets an env var."""
    monkeypatch.delenv("SKAE_TEST_LAMBDA_RAN", raising=False)
    inputs = keras.Input((5,))
    ran = lambda t: (  # noqa: E731
        __import__("os").environ.__setitem__("SKAE_TEST_LAMBDA_RAN", "1"),
        t * 2.0,
    )[1]
    hidden = keras.layers.Lambda(ran, output_shape=(5,), name="doubler")(inputs)
    outputs = keras.layers.Dense(2, name="code")(hidden)
    encoder = keras.Model(inputs, outputs, name="encoder")
    encoder.save(tmp_path / "lambda.keras")
    members = _members(saved)
    members["models/encoder_.keras"] = (tmp_path / "lambda.keras").read_bytes()
    path = tmp_path / "lambda.skae"
    _write_members(path, members)
    return path


def test_lambda_layer_refused_in_safe_mode(lambda_file, X):
    _assert_refused(lambda_file, r"Lambda layer 'doubler'.*safe_mode=False")
    assert "SKAE_TEST_LAMBDA_RAN" not in os.environ
    loaded = skae.load(lambda_file, safe_mode=False)
    assert loaded.transform(X).shape == (X.shape[0], 2)
    assert os.environ["SKAE_TEST_LAMBDA_RAN"] == "1"


def test_keras_safe_mode_is_a_second_line_of_defence(lambda_file, monkeypatch):
    # Even if skae's own scan missed it, Keras' safe_mode refuses the lambda.
    monkeypatch.setattr(_serialization, "_check_no_code", lambda data, member: None)
    _assert_refused(lambda_file, "safe_mode")
    assert "SKAE_TEST_LAMBDA_RAN" not in os.environ
