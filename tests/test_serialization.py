"""The skae file format (``skae._serialization``).

Files are written atomically and hold plain data only; damaged, foreign,
malformed or newer files are refused with a clear error, code in a file is
refused in safe mode, and only classes registered with the format can be
saved and loaded.
"""

import errno
import json
import os
import pickle
import re
import zipfile

import keras
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator

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


# -- what a file holds --------------------------------------------------------------


def test_file_records_versions(saved):
    header = json.loads(_members(saved)["skae.json"])
    assert header["format"] == "skae"
    assert header["format_version"] == persistence.FORMAT_VERSION
    assert header["versions"]["skae"] == skae.__version__
    assert header["versions"]["keras"] == keras.__version__
    assert header["versions"]["scikit-learn"] == sklearn.__version__


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


def test_state_that_is_not_data_cannot_be_saved(fitted, tmp_path):
    ae = pickle.loads(pickle.dumps(fitted))
    ae.callback_ = print
    with pytest.raises(TypeError, match="callback_ is a builtins"):
        ae.save(tmp_path / "ae.skae")
    assert os.listdir(tmp_path) == []


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


# -- the registry ---------------------------------------------------------------


class Subclass(AutoencoderTransformer):
    """An estimator class the format was not told about."""


class Tiny(BaseEstimator):
    """Not a skae estimator at all: a parameter and a fitted array."""

    def __init__(self, size=3):
        self.size = size

    def fit(self):
        self.coef_ = np.arange(float(self.size))
        return self


@pytest.fixture
def registry(monkeypatch):
    """The format's registry, restored after the test."""
    monkeypatch.setattr(_serialization, "_CLASSES", dict(_serialization._CLASSES))
    return _serialization._CLASSES


def test_the_estimator_class_is_registered(registry):
    assert registry["AutoencoderTransformer"] is AutoencoderTransformer


def test_an_unregistered_class_cannot_be_saved(fitted, tmp_path, registry):
    ae = Subclass(**fitted.get_params())
    ae.__dict__.update(vars(pickle.loads(pickle.dumps(fitted))))
    path = tmp_path / "ae.skae"
    match = r"one of \['AutoencoderTransformer'\]\. Received: .* type Subclass"
    with pytest.raises(TypeError, match=match):
        ae.save(path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="Received: estimator of type Tiny"):
        _serialization.save(Tiny().fit(), path)
    # Registered, it saves and loads as itself.
    assert _serialization.register(Subclass) is Subclass
    loaded = skae.load(ae.save(path))
    assert type(loaded) is Subclass
    np.testing.assert_array_equal(
        loaded.transform(np.ones((2, 5))), fitted.transform(np.ones((2, 5)))
    )


def test_a_class_of_the_same_name_is_not_the_registered_one(fitted, tmp_path):
    impostor = type("AutoencoderTransformer", (AutoencoderTransformer,), {})
    ae = impostor(**fitted.get_params())
    ae.__dict__.update(vars(pickle.loads(pickle.dumps(fitted))))
    with pytest.raises(TypeError, match="Expected a skae estimator"):
        _serialization.save(ae, tmp_path / "ae.skae")


def test_the_format_knows_no_estimator_class_but_those_registered(tmp_path, registry):
    path = tmp_path / "tiny.skae"
    _serialization.register(Tiny)
    _serialization.save(Tiny(size=4).fit(), path)
    loaded = _serialization.load(path)
    assert type(loaded) is Tiny and loaded.size == 4
    np.testing.assert_array_equal(loaded.coef_, np.arange(4.0))
    assert json.loads(_members(path)["skae.json"])["class"] == "Tiny"
    # A file naming a class that is not registered is refused, not imported.
    del registry["Tiny"]
    with pytest.raises(ValueError, match="unknown estimator class 'Tiny'"):
        _serialization.load(path)
