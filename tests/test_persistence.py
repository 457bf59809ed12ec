"""Public saving and loading (``skae.persistence``, ``AutoencoderTransformer.save``).

Round trips through a skae file, pickle and joblib, in this process and in a
fresh one; files of earlier versions; what is saved of parameters that are not
data; the fitted state a loaded file must hold; where a file is written, what
save replaces, and the errors for bad paths and arguments. The file format
itself (bad files, atomic writes, code in a file, the registry) is tested in
test_serialization.py.
"""

import io
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
from skae import AutoencoderTransformer, persistence

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
    # Bit for bit through Keras, as they were written (on TensorFlow); NumPy's
    # matrix products round differently, to float64 round-off. JAX without
    # x64 and PyTorch (whose Keras matmul returns float32) run the Keras path
    # at float32 round-off.
    exact = keras.backend.backend() == "tensorflow"
    tol = {} if exact else {"rtol": 1e-5, "atol": 1e-5}
    same = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    with skae.inference_path("keras"):
        codes = ae.transform(data)
        same(codes, expected[f"{name}_codes"], **tol)
        same(ae.inverse_transform(codes), expected[f"{name}_rebuilt"], **tol)
        scores = ae.score_samples(data)
        same(scores, expected[f"{name}_scores"], **tol)
    tol = tol or {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(ae.transform(data), codes, **tol)
    atol = 0 if exact else tol["atol"]
    np.testing.assert_allclose(
        ae.score_samples(data), scores, rtol=tol["rtol"], atol=atol
    )
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


@pytest.mark.parametrize(
    "params, fit",
    [
        ({}, "partial_fit"),
        ({"n_components": 0.9}, "fit"),
        ({"architecture": "conv", "hidden_layer_sizes": (4,)}, "images"),
        ({"scaling": "minmax"}, "fit"),
    ],
)
def test_fits_of_every_kind_pass_the_loaded_state_checks(X, tmp_path, params, fit):
    ae = _make_estimator(epochs=2, **params)
    if fit == "partial_fit":
        ae.partial_fit(X[:30]).partial_fit(X[30:])
    elif fit == "images":
        ae.fit(X[:, :4].reshape(-1, 2, 2, 1))
    else:
        ae.fit(X)
    loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    data = X[:, :4].reshape(-1, 2, 2, 1) if fit == "images" else X
    np.testing.assert_array_equal(loaded.transform(data), ae.transform(data))


def test_user_networks_pass_the_loaded_state_checks(X, tmp_path):
    encoder = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5)])
    ae = _make_estimator(encoder=encoder, decoder=decoder).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # encoder= is saved as None
        loaded = skae.load(ae.save(tmp_path / "ae.skae"))
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


# -- a loaded state must be one a fit leaves ---------------------------------------


def _set_array(members, header, name, value):
    """Store ``value`` as fitted attribute ``name``, its member's checksum valid."""
    ((_, member),) = header["state"][name].items()
    buffer = io.BytesIO()
    np.save(buffer, value)
    members[member] = buffer.getvalue()


def _zero_scale(members, header):
    _set_array(members, header, "input_scale_", np.zeros(5))


def _nan_offset(members, header):
    _set_array(members, header, "input_offset_", np.full(5, np.nan))


def _short_offset(members, header):
    _set_array(members, header, "input_offset_", np.zeros(4))


def _float32_offset(members, header):
    _set_array(members, header, "input_offset_", np.zeros(5, np.float32))


def _int_encoder(members, header):
    del members["models/encoder_.keras"]
    header["state"]["encoder_"] = 3


def _no_encoder(members, header):
    del members["models/encoder_.keras"]
    del header["state"]["encoder_"]


def _more_features(members, header):
    # Consistent everywhere but in the networks, which take 5.
    header["state"]["n_features_in_"] = 6
    for name in ("input_shape_", "_sample_shape"):
        header["state"][name] = {"__tuple__": [6]}
    for name in ("input_offset_", "input_scale_"):
        _set_array(members, header, name, np.ones(6))


def _swapped_networks(members, header):
    state = header["state"]
    state["encoder_"], state["decoder_"] = state["decoder_"], state["encoder_"]


def _set(name, value):
    def edit(members, header):
        header["state"][name] = value

    return edit


def _drop(name):
    def edit(members, header):
        del header["state"][name]

    return edit


def _stream_without_seed(members, header):
    del header["state"]["_stream"]["__dict__"]["seed"]


def _negative_step(members, header):
    header["state"]["_stream"]["__dict__"]["step"] = -1


@pytest.mark.parametrize(
    "edit, match",
    [
        # Loaded before, and transform returned all NaN.
        (_zero_scale, "input_scale_ has values that are not positive"),
        (_nan_offset, "input_offset_ has values that are not finite"),
        # Loaded before, and failed later with a confusing error.
        (_short_offset, r"input_offset_ has shape \(4,\), not \(5,\)"),
        (_float32_offset, "input_offset_ is not a float64 array"),
        (_int_encoder, "encoder_ is a int, not a Keras model"),
        (_no_encoder, "encoder_ is missing"),
        (_more_features, r"encoder_ has an input of shape \(5,\), not of n_fe"),
        (_swapped_networks, r"encoder_ has an input of shape \(2,\), not of n_fe"),
        (_set("n_components_", 3), r"encoder_ has an output of shape \(2,\)"),
        (_set("input_shape_", {"__tuple__": [6]}), r"input_shape_=\(6,\) does not"),
        (_set("code_scale_", 0.0), "code_scale_=0.0 is not a positive finite"),
        (_set("history_", 3), "history_ is not a dict of str to lists of numbers"),
        (_set("n_iter_", -1), "n_iter_=-1 is not an int >= 0"),
        (_set("init_", "zeros"), "init_='zeros' is not one of"),
        # An old file lacks all three; dropping one would change the codes.
        (_drop("code_scale_"), "code_scale_ is missing"),
        (_stream_without_seed, r"cannot be restored \(KeyError: 'seed'\)"),
        (_negative_step, "_stream is not the state partial_fit continues from"),
    ],
)
def test_inconsistent_fitted_state_is_refused_naming_the_attribute(
    saved, tmp_path, edit, match
):
    """Files edited so that their checksums still hold."""
    members = _members(saved)
    header = json.loads(members["skae.json"])
    edit(members, header)
    members["skae.json"] = json.dumps(header).encode()
    path = tmp_path / "edited.skae"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as info:
        skae.load(path)
    assert "fitted state is inconsistent" in str(info.value) or "restored" in str(
        info.value
    )
    assert re.search(match, str(info.value)), str(info.value)


def test_networks_with_non_finite_weights_are_refused(fitted, saved, tmp_path):
    encoder = keras.models.clone_model(fitted.encoder_)
    encoder.set_weights(
        [np.full_like(w, np.nan) for w in fitted.encoder_.get_weights()]
    )
    encoder.save(tmp_path / "encoder.keras")
    members = _members(saved)
    members["models/encoder_.keras"] = (tmp_path / "encoder.keras").read_bytes()
    path = tmp_path / "nan.skae"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="encoder_ has weights that are not finite"):
        skae.load(path)


# -- what save replaces ------------------------------------------------------------


def _special_file(kind, folder):
    path = folder / kind
    if kind == "fifo":
        os.mkfifo(path)
        return path
    try:
        # A second /dev/null, in the test's own folder.
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("making a device needs root")
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
@pytest.mark.parametrize(
    "kind, name", [("fifo", "FIFO"), ("device", "character device")]
)
@pytest.mark.parametrize("through_link", [False, True])
def test_save_never_replaces_a_device_or_fifo(
    fitted, tmp_path, kind, name, through_link
):
    """As root, save("/dev/full") replaced the device by a zip file."""
    special = _special_file(kind, tmp_path)
    path = tmp_path / "link.skae" if through_link else special
    if through_link:
        path.symlink_to(special)
    before = sorted(os.listdir(tmp_path)), os.lstat(special)
    with pytest.raises(OSError, match=f"regular file or no file.*, a {name}") as info:
        fitted.save(path)
    assert repr(str(path)) in str(info.value)
    after = sorted(os.listdir(tmp_path)), os.lstat(special)
    assert after[0] == before[0]
    assert (after[1].st_ino, after[1].st_mode) == (before[1].st_ino, before[1].st_mode)


def test_read_only_file_is_replaced_only_with_overwrite_true(fitted, tmp_path):
    """A 0444 file was silently replaced (the tests run as root here)."""
    path = tmp_path / "ae.skae"
    path.write_bytes(b"old")
    os.chmod(path, 0o444)
    match = r"read-only \(mode -r--r--r--\), left as it was; pass overwrite=True"
    with pytest.raises(PermissionError, match=match):
        fitted.save(path)
    with pytest.raises(PermissionError, match=match):
        persistence.save(fitted, path)
    assert path.read_bytes() == b"old"
    persistence.save(fitted, path, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert skae.load(path).n_iter_ == fitted.n_iter_
    assert os.listdir(tmp_path) == ["ae.skae"]


def test_overwrite_false_never_replaces_a_file(fitted, tmp_path):
    path = tmp_path / "ae.skae"
    assert persistence.save(fitted, path, overwrite=False) == str(path)
    data = path.read_bytes()
    with pytest.raises(FileExistsError, match="no file at path with overwrite=False"):
        persistence.save(fitted, path, overwrite=False)
    with pytest.raises(FileExistsError, match="no file at path with overwrite=False"):
        fitted.save(path, overwrite=False)
    assert path.read_bytes() == data
    with pytest.raises(TypeError, match="Received: overwrite='yes'"):
        persistence.save(fitted, path, overwrite="yes")
    fitted.save(path, overwrite=True)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_replaced_file_keeps_its_permissions_even_while_written(
    fitted, tmp_path, monkeypatch, mode
):
    """A 0600 file came back 0644: a private model became world-readable."""
    path = tmp_path / "ae.skae"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    seen = []
    original = zipfile.ZipFile.writestr

    def writestr(self, name, *args, **kwargs):
        if str(name) == "skae.json" or str(name).startswith(("arrays/", "models/")):
            (temporary,) = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
            seen.append(stat.S_IMODE(os.stat(tmp_path / temporary).st_mode))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    fitted.save(path)
    monkeypatch.undo()
    assert seen and set(seen) == {mode}
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root gives files"
)
def test_replaced_file_keeps_its_owner_when_root_saves(fitted, tmp_path):
    path = tmp_path / "ae.skae"
    path.write_bytes(b"old")
    os.chown(path, 4321, 4321)
    fitted.save(path)
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (4321, 4321)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_target_that_becomes_a_fifo_mid_save_is_left_alone(
    fitted, saved, tmp_path, monkeypatch
):
    path = tmp_path / "ae.skae"
    path.write_bytes(saved.read_bytes())
    original = zipfile.ZipFile.writestr

    def writestr(self, name, *args, **kwargs):
        if str(name).startswith("models/") and path.is_file():
            path.unlink()
            os.mkfifo(path)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    with pytest.raises(OSError, match="a FIFO"):
        fitted.save(path)
    monkeypatch.undo()
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert os.listdir(tmp_path) == ["ae.skae"]


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
