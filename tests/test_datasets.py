import gzip
from pathlib import Path

import keras
import numpy as np
import pytest
import sklearn.datasets

from skae import datasets
from skae.datasets import (
    fetch_mnist,
    load_digits,
    load_mnist,
    train_test_split_dataset,
)

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def isolated_search_path(monkeypatch, tmp_path):
    """Keep the user's data homes and Keras cache out of every test."""
    monkeypatch.delenv("SKAE_DATA_HOME", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "scikit_learn_data"))
    # Existing, hence writable: Keras would not fall back to /tmp/.keras.
    (tmp_path / "keras_home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def write_idx(path, array):
    magic = 2051 if array.ndim == 3 else 2049
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    # Two of each class, so that a stratified split is possible.
    y_train = (np.arange(n_train) % 2).astype(np.uint8)
    y_test = (np.arange(n_test) % 2).astype(np.uint8)
    return (x_train, y_train), (x_test, y_test)


def write_fake_idx(directory, gzipped=True, subsets=("train", "t10k")):
    (x_train, y_train), (x_test, y_test) = fake_mnist()
    arrays = {"train": (x_train, y_train), "t10k": (x_test, y_test)}
    suffix = ".gz" if gzipped else ""
    for subset in subsets:
        images, labels = arrays[subset]
        write_idx(directory / f"{subset}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{subset}-labels-idx1-ubyte{suffix}", labels)
    return (x_train, y_train), (x_test, y_test)


def write_fake_npz(path, seed=0):
    (x_train, y_train), (x_test, y_test) = fake_mnist(seed=seed)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return (x_train, y_train), (x_test, y_test)


def test_load_digits():
    digits = load_digits()
    reference = sklearn.datasets.load_digits()
    assert digits.data.shape == (1797, 64) and digits.data.dtype == np.float64
    assert digits.target.dtype == np.int64
    assert digits.images.shape == (1797, 8, 8)
    assert np.shares_memory(digits.images, digits.data)
    np.testing.assert_array_equal(digits.images, reference.images)
    np.testing.assert_array_equal(digits.target, reference.target)
    assert digits.image_shape == (8, 8)
    assert digits.variant == "uci-digits"
    assert digits.source == "sklearn.datasets.load_digits"
    assert "digits" in digits.DESCR.lower()
    # scikit-learn's keys, as its own load_digits gives them.
    assert digits.feature_names == reference.feature_names
    np.testing.assert_array_equal(digits.target_names, reference.target_names)
    assert digits.frame is None


def test_load_digits_as_frame_and_return_X_y():
    X, y = load_digits(return_X_y=True)
    np.testing.assert_array_equal(X, load_digits().data)
    pd = pytest.importorskip("pandas")
    digits = load_digits(as_frame=True)
    assert isinstance(digits.data, pd.DataFrame) and digits.data.shape == (1797, 64)
    assert list(digits.data.columns) == digits.feature_names
    assert isinstance(digits.target, pd.Series) and digits.target.name == "target"
    assert list(digits.frame.columns) == [*digits.feature_names, "target"]
    np.testing.assert_array_equal(digits.data.to_numpy(), X)
    np.testing.assert_array_equal(digits.frame["target"], y)
    X_frame, y_series = load_digits(return_X_y=True, as_frame=True)
    assert isinstance(X_frame, pd.DataFrame) and isinstance(y_series, pd.Series)


def test_description_is_a_deprecated_alias_of_DESCR(tmp_path):
    write_fake_idx(tmp_path)
    for dataset in (load_digits(), fetch_mnist(tmp_path, download_if_missing=False)):
        with pytest.warns(FutureWarning, match="'description' is deprecated"):
            assert dataset.description == dataset.DESCR
        with pytest.warns(FutureWarning, match="use 'DESCR'"):
            assert dataset["description"] == dataset.DESCR


def test_load_mnist_is_a_deprecated_fetch_mnist(tmp_path):
    write_fake_idx(tmp_path)
    with pytest.warns(FutureWarning, match=r"use fetch_mnist\(data_home, "):
        old = load_mnist(tmp_path, download=False)
    new = fetch_mnist(tmp_path, download_if_missing=False)
    assert old.keys() == new.keys() and old.source == new.source
    np.testing.assert_array_equal(old.data, new.data)
    with pytest.warns(FutureWarning), pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(tmp_path / "empty", download=False)
    assert "download_if_missing=False" in str(excinfo.value)
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="download='no'"):
        load_mnist(tmp_path, download="no")


@pytest.mark.skipif(
    not MNIST_DIR.is_dir(),
    reason=f"official MNIST test set not found at {MNIST_DIR}",
)
def test_fetch_mnist_official_test_set():
    mnist = fetch_mnist(MNIST_DIR, download_if_missing=False)
    assert mnist.variant == "test-10k"
    assert mnist.data.shape == (10000, 784) and mnist.data.dtype == np.uint8
    assert mnist.images.shape == (10000, 28, 28)
    assert np.shares_memory(mnist.images, mnist.data)
    assert (mnist.data.min(), mnist.data.max()) == (0, 255)
    np.testing.assert_array_equal(mnist.target[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    np.testing.assert_array_equal(
        np.bincount(mnist.target),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    )
    assert "train_index" not in mnist
    assert "t10k-images-idx3-ubyte.gz" in mnist.source
    assert "t10k-labels-idx1-ubyte.gz" in mnist.source


@pytest.mark.parametrize("gzipped", [True, False])
def test_fetch_mnist_idx_train_and_test(tmp_path, gzipped):
    (x_train, y_train), (x_test, y_test) = write_fake_idx(tmp_path, gzipped)
    mnist = fetch_mnist(tmp_path, download_if_missing=False)
    assert mnist.variant == "full-70k"
    np.testing.assert_array_equal(mnist.images, np.concatenate([x_train, x_test]))
    np.testing.assert_array_equal(mnist.target, np.concatenate([y_train, y_test]))
    assert mnist.target.dtype == np.int64
    np.testing.assert_array_equal(mnist.train_index, np.arange(6))
    np.testing.assert_array_equal(mnist.test_index, np.arange(6, 10))
    assert mnist.source.count(str(tmp_path)) == 4


def test_fetch_mnist_npz_is_preferred_over_idx(tmp_path):
    write_fake_idx(tmp_path)
    _, (x_test, y_test) = write_fake_npz(tmp_path / "mnist.npz", seed=1)
    mnist = fetch_mnist(str(tmp_path), download_if_missing=False)
    assert mnist.variant == "full-70k"
    assert mnist.source == str(tmp_path / "mnist.npz")
    assert mnist.data.shape == (10, 784) and mnist.data.dtype == np.uint8
    np.testing.assert_array_equal(mnist.images[mnist.test_index], x_test)
    np.testing.assert_array_equal(mnist.target[mnist.test_index], y_test)


def test_fetch_mnist_full_idx_is_preferred_over_test_only(tmp_path):
    write_fake_idx(tmp_path, subsets=("t10k",))
    assert fetch_mnist(tmp_path, download_if_missing=False).variant == "test-10k"
    write_fake_idx(tmp_path, subsets=("train",))
    assert fetch_mnist(tmp_path, download_if_missing=False).variant == "full-70k"


def test_fetch_mnist_search_order(tmp_path, monkeypatch):
    argument, env, sklearn_home, keras_home = (
        tmp_path / d for d in ("arg", "env", "sklearn", "keras")
    )
    # The data homes' mnist subfolders (scikit-learn's layout), the argument
    # itself and Keras' cache.
    places = [argument, env / "mnist", sklearn_home / "mnist", keras_home / "datasets"]
    for directory in places:
        directory.mkdir(parents=True)
        write_fake_npz(directory / "mnist.npz")
    monkeypatch.setenv("SKAE_DATA_HOME", str(env))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(sklearn_home))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))

    def found(*args):
        return fetch_mnist(*args, download_if_missing=False).source

    assert found(argument) == str(argument / "mnist.npz")
    assert found() == str(env / "mnist" / "mnist.npz")
    monkeypatch.delenv("SKAE_DATA_HOME")
    assert found() == str(sklearn_home / "mnist" / "mnist.npz")
    (sklearn_home / "mnist" / "mnist.npz").unlink()
    assert found() == str(keras_home / "datasets" / "mnist.npz")
    # A directory without a complete copy is skipped.
    write_fake_idx(argument, subsets=("train",))
    (argument / "mnist.npz").unlink()
    assert found(argument) == str(keras_home / "datasets" / "mnist.npz")


def test_fetch_mnist_not_found_lists_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("SKAE_DATA_HOME", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_mnist(tmp_path / "arg", download_if_missing=False)
    message = str(excinfo.value)
    places = ["arg", "env", Path("env", "mnist"), Path("keras_home", "datasets")]
    for place in [*places, Path("scikit_learn_data", "mnist")]:
        assert str(tmp_path / place) in message
    for name in ["mnist.npz", *IDX_NAMES]:
        assert name in message
    assert "download_if_missing=False" in message
    assert "SKAE_DATA_HOME" in message and "data_home=" in message


def test_fetch_mnist_refuses_a_file_as_data_home(tmp_path, monkeypatch):
    # Skipping it would search elsewhere, and download with download_if_missing=True.
    def no_download(path=None):
        raise AssertionError("fetch_mnist tried to download")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_download)
    write_fake_npz(tmp_path / "mnist.npz")
    with pytest.raises(ValueError, match=r"data_home to be a directory.*a file"):
        fetch_mnist(tmp_path / "mnist.npz")


def test_fetch_mnist_checks_its_arguments_types(monkeypatch):
    def no_download(path=None):
        raise AssertionError("fetch_mnist tried to download")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_download)
    with pytest.raises(TypeError, match=r"Received: data_home=3 of type int"):
        fetch_mnist(3)
    # "no" is true: it would download.
    with pytest.raises(TypeError, match=r"Received: download_if_missing='no'"):
        fetch_mnist(download_if_missing="no")
    for flag in ("return_X_y", "as_frame"):
        with pytest.raises(TypeError, match=rf"Expected {flag} to be a bool"):
            fetch_mnist(**{flag: 1})
        with pytest.raises(TypeError, match=rf"Received: {flag}=None"):
            load_digits(**{flag: None})


def test_fetch_mnist_searches_where_keras_downloads(tmp_path, monkeypatch):
    # keras.utils.get_file caches in /tmp/.keras where its home is not
    # writable; os.access is faked, as root may write anywhere.
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    keras_home = tmp_path / "keras_home"
    writable = {keras_home}
    monkeypatch.setattr(datasets.os, "access", lambda path, mode: path in writable)
    sklearn_mnist = tmp_path / "scikit_learn_data" / "mnist"
    assert datasets._mnist_search_path(None) == [sklearn_mnist, keras_home / "datasets"]
    writable.clear()
    tmp_keras = Path("/tmp/.keras/datasets")
    assert datasets._mnist_search_path(None) == [
        sklearn_mnist,
        keras_home / "datasets",
        tmp_keras,
    ]
    monkeypatch.delenv("KERAS_HOME")
    assert datasets._mnist_search_path(None) == [sklearn_mnist, tmp_keras]
    writable.add(tmp_path / "home")
    assert datasets._mnist_search_path(None) == [
        sklearn_mnist,
        tmp_path / "home" / ".keras" / "datasets",
        tmp_keras,
    ]


def test_fetch_mnist_download_failure(tmp_path, monkeypatch):
    def offline(path):
        raise Exception("URL fetch failure: no internet")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError, match="no internet") as excinfo:
        fetch_mnist(tmp_path, download_if_missing=True)
    assert str(tmp_path / "mnist" / "mnist.npz") in str(excinfo.value)


def _fake_download(calls):
    """Stands in for Keras' download (no network in tests): writes the npz."""

    def load_data(path):
        calls.append(Path(path))
        write_fake_npz(Path(path))
        return fake_mnist()

    return load_data


@pytest.mark.parametrize("home", ["argument", "SKAE_DATA_HOME", "SCIKIT_LEARN_DATA"])
def test_fetch_mnist_downloads_into_the_data_home(tmp_path, monkeypatch, home):
    calls = []
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _fake_download(calls))
    root = tmp_path / "home"
    if home != "argument":
        monkeypatch.setenv(home, str(root))
    mnist = fetch_mnist(root if home == "argument" else None)
    assert calls == [root / "mnist" / "mnist.npz"]
    assert mnist.variant == "full-70k"
    assert mnist.source == str(root / "mnist" / "mnist.npz")
    (x_train, _), (x_test, _) = fake_mnist()
    np.testing.assert_array_equal(mnist.images[mnist.train_index], x_train)
    np.testing.assert_array_equal(mnist.images[mnist.test_index], x_test)
    # The next call finds the download and does not fetch again.
    assert fetch_mnist(root if home == "argument" else None).source == mnist.source
    assert len(calls) == 1


def test_fetch_mnist_search_creates_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _fake_download([]))
    with pytest.raises(FileNotFoundError):
        fetch_mnist(download_if_missing=False)
    assert not (tmp_path / "scikit_learn_data").exists()


def test_fetch_mnist_return_X_y_and_as_frame(tmp_path):
    (x_train, y_train), (x_test, y_test) = write_fake_idx(tmp_path)
    X, y = fetch_mnist(tmp_path, return_X_y=True)
    np.testing.assert_array_equal(X, np.concatenate([x_train, x_test]).reshape(10, -1))
    np.testing.assert_array_equal(y, np.concatenate([y_train, y_test]))
    pd = pytest.importorskip("pandas")
    mnist = fetch_mnist(tmp_path, as_frame=True)
    assert isinstance(mnist.data, pd.DataFrame) and mnist.data.shape == (10, 784)
    assert mnist.data.columns[0] == "pixel_0_0" and mnist.data.columns[-1] == (
        "pixel_27_27"
    )
    assert (mnist.data.dtypes == np.uint8).all()
    assert mnist.frame.shape == (10, 785)
    np.testing.assert_array_equal(mnist.target, y)
    # The official split indexes rows of a frame as of an array.
    X_train, X_test, y_train_, _ = train_test_split_dataset(mnist)
    np.testing.assert_array_equal(X_train.to_numpy(), X[:6])
    np.testing.assert_array_equal(X_test.to_numpy(), X[6:])
    np.testing.assert_array_equal(y_train_, y[:6])


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-5])


def _corrupt_gzip(path):
    data = bytearray(path.read_bytes())
    data[20:30] = b"\x00" * 10
    path.write_bytes(bytes(data))


def _swap_magic(path):
    labels = path.with_name("t10k-labels-idx1-ubyte")
    path.write_bytes(labels.read_bytes())


def _too_many_labels(path):
    write_idx(path.with_name("t10k-labels-idx1-ubyte"), np.zeros(5))


def _bad_label(path):
    write_idx(path.with_name("t10k-labels-idx1-ubyte"), np.full(4, 12))


@pytest.mark.parametrize(
    "corrupt, gzipped, match",
    [
        (_truncate, False, "truncated"),
        (_truncate, True, "readable IDX"),
        (_corrupt_gzip, True, "readable IDX"),
        (_swap_magic, False, "magic number 2051"),
        (_too_many_labels, False, "one label per image"),
        (_bad_label, False, "labels between 0 and 9"),
    ],
)
def test_fetch_mnist_corrupt_idx(tmp_path, corrupt, gzipped, match):
    write_fake_idx(tmp_path, gzipped, subsets=("t10k",))
    images = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gzipped else ""))
    corrupt(images)
    with pytest.raises(ValueError, match=match) as excinfo:
        fetch_mnist(tmp_path, download_if_missing=False)
    assert "t10k-" in str(excinfo.value) and str(tmp_path) in str(excinfo.value)


def test_fetch_mnist_bad_npz(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"mnist\.npz without y_train, x_test, y_test"):
        fetch_mnist(tmp_path, download_if_missing=False)
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match=r"readable npz.*mnist\.npz"):
        fetch_mnist(tmp_path, download_if_missing=False)
    x = np.zeros((2, 28, 28), np.float32)
    y = np.zeros(2, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(ValueError, match="uint8 images"):
        fetch_mnist(tmp_path, download_if_missing=False)
    # Float labels would be truncated to wrong digits.
    x = np.zeros((2, 28, 28), np.uint8)
    labels = np.array([0.0, 3.7])
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=labels, x_test=x, y_test=y)
    with pytest.raises(ValueError, match=r"integer labels.*float64"):
        fetch_mnist(tmp_path, download_if_missing=False)


def test_split_uses_official_split(tmp_path):
    write_fake_idx(tmp_path)
    mnist = fetch_mnist(tmp_path, download_if_missing=False)
    X_train, X_test, _, y_test = train_test_split_dataset(mnist)
    np.testing.assert_array_equal(X_train, mnist.data[:6])
    np.testing.assert_array_equal(X_test, mnist.data[6:])
    np.testing.assert_array_equal(y_test, mnist.target[6:])
    # An explicit test_size asks for a random split of all the samples instead.
    X_train, X_test, _, _ = train_test_split_dataset(mnist, test_size=5, random_state=0)
    assert len(X_train) == len(X_test) == 5


def test_split_is_stratified_half_and_reproducible():
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split_dataset(digits, random_state=0)
    assert (len(X_train), len(X_test)) == (898, 899)
    assert np.abs(np.bincount(y_train) - np.bincount(y_test)).max() <= 1
    again = train_test_split_dataset(digits, random_state=0)
    np.testing.assert_array_equal(again[1], X_test)


def test_split_takes_a_dict_and_refuses_other_containers():
    digits = load_digits()
    expected = train_test_split_dataset(digits, random_state=0)
    as_dict = {"data": digits.data, "target": digits.target}
    for got, want in zip(
        train_test_split_dataset(as_dict, random_state=0), expected, strict=True
    ):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match=r"Received: dataset of type tuple$"):
        train_test_split_dataset((digits.data, digits.target))
    with pytest.raises(TypeError, match=r"dict with keys \['X', 'y'\]"):
        train_test_split_dataset({"X": digits.data, "y": digits.target})
