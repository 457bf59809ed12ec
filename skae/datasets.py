"""Image datasets for examples and benchmarks, loaded offline when possible."""

import gzip
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import keras
import numpy as np
from sklearn.datasets import load_digits as _sklearn_load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, _safe_indexing

__all__ = ["fetch_mnist", "load_digits", "load_mnist", "train_test_split_dataset"]

_MNIST_SHAPE = (28, 28)
_MNIST_NPZ = "mnist.npz"
_MNIST_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX magic numbers: two zero bytes, 0x08 (unsigned byte), then the number of
# dimensions.
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_MNIST_DESCRIPTION = """\
MNIST handwritten digits (LeCun, Cortes and Burges).

28x28 grayscale images of the digits 0-9, pixel values 0 (background) to 255
(ink), stored as uint8. The official split has 60,000 training and 10,000 test
images. License: CC BY-SA 3.0.
"""


def load_digits(*, return_X_y=False, as_frame=False):
    """Load the UCI ML hand-written digits dataset bundled with scikit-learn.

    1797 grayscale images of 8x8 pixels with values 0 to 16. Nothing is
    downloaded. The result is :func:`sklearn.datasets.load_digits`'s with
    float64 data, int64 targets and the image metadata the benchmarks use.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    as_frame : bool, default=False
        Return ``data`` as a pandas DataFrame and ``target`` as a Series, with
        the whole table in ``frame`` (needs pandas).

    Returns
    -------
    dataset : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (1797, 64), dtype float64
            Flattened images.
        target : ndarray of shape (1797,), dtype int64
            Digit of each image.
        frame : DataFrame of shape (1797, 65) or None
            Data and target together, only when ``as_frame=True``.
        feature_names : list of str
            ``"pixel_0_0"`` to ``"pixel_7_7"``.
        target_names : ndarray of shape (10,)
            The digits 0 to 9.
        images : ndarray of shape (1797, 8, 8), dtype float64
            The images, sharing memory with ``data`` (when it is an array).
        image_shape : tuple of int
            ``(8, 8)``.
        variant : str
            ``"uci-digits"``.
        DESCR : str
            Full description of the dataset (``description``, deprecated, is
            the same text).
        source : str
            ``"sklearn.datasets.load_digits"``.

    (data, target) : tuple
        When ``return_X_y`` is True.

    See Also
    --------
    fetch_mnist : The larger 28x28 MNIST digits.
    train_test_split_dataset : Split a dataset for benchmarking.

    Examples
    --------
    >>> from skae.datasets import load_digits
    >>> digits = load_digits()
    >>> digits.data.shape, digits.images.shape, digits.target[:5]
    ((1797, 64), (1797, 8, 8), array([0, 1, 2, 3, 4]))
    >>> X, y = load_digits(return_X_y=True)
    >>> X.shape
    (1797, 64)
    """
    _check_flags(return_X_y=return_X_y, as_frame=as_frame)
    digits = _sklearn_load_digits()
    images = digits.images.astype(np.float64, copy=False)
    data = images.reshape(len(images), -1)
    target = digits.target.astype(np.int64, copy=False)
    frame = None
    if as_frame:
        data, target, frame = _as_frame(data, target, digits.feature_names)
    if return_X_y:
        return data, target
    return _bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=list(digits.feature_names),
        target_names=np.arange(10),
        DESCR=digits.DESCR,
        images=images,
        image_shape=(8, 8),
        variant="uci-digits",
        source="sklearn.datasets.load_digits",
    )


def fetch_mnist(
    data_home=None, *, download_if_missing=True, return_X_y=False, as_frame=False
):
    """Load MNIST from local files, downloading it if it is missing.

    As scikit-learn's ``fetch_*`` loaders, the data live in a data home: by
    default the environment variable ``SKAE_DATA_HOME`` if set, else
    scikit-learn's (:func:`sklearn.datasets.get_data_home`:
    ``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``). Directories are
    searched in this order, and the first one holding a complete copy wins:

    1. ``data_home``, then its ``mnist`` subfolder;
    2. ``SKAE_DATA_HOME``, then its ``mnist`` subfolder;
    3. scikit-learn's data home's ``mnist`` subfolder;
    4. Keras' download cache, ``$KERAS_HOME/datasets`` (by default
       ``~/.keras/datasets``, or ``/tmp/.keras/datasets`` where Keras cannot
       write there, as ``keras.utils.get_file`` does), where an earlier
       ``keras.datasets.mnist.load_data()`` left ``mnist.npz``.

    In each directory, Keras' ``mnist.npz`` (keys ``x_train``, ``y_train``,
    ``x_test``, ``y_test``) is preferred, then the four original IDX files
    (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, gzipped or
    not), then the two ``t10k-*`` IDX files alone (the official test set).

    Parameters
    ----------
    data_home : str or path-like, default=None
        The data home searched first; a download goes to its ``mnist``
        subfolder. None means ``SKAE_DATA_HOME``, else scikit-learn's.

    download_if_missing : bool, default=True
        If no local copy is found, download Keras' ``mnist.npz`` (11 MB,
        checked against its SHA-256) into the data home's ``mnist`` folder.
        If False, raise ``FileNotFoundError`` instead.

    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    as_frame : bool, default=False
        Return ``data`` as a pandas DataFrame and ``target`` as a Series, with
        the whole table in ``frame`` (needs pandas).

    Returns
    -------
    dataset : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype uint8
            Flattened images, pixel values 0 to 255 as distributed; scale them
            yourself (for instance divide by 255).
        target : ndarray of shape (n_samples,), dtype int64
            Digit of each image.
        frame : DataFrame of shape (n_samples, 785) or None
            Data and target together, only when ``as_frame=True``.
        feature_names : list of str
            ``"pixel_0_0"`` to ``"pixel_27_27"`` (row, column).
        target_names : ndarray of shape (10,)
            The digits 0 to 9.
        images : ndarray of shape (n_samples, 28, 28), dtype uint8
            The images, sharing memory with ``data`` (when it is an array).
        image_shape : tuple of int
            ``(28, 28)``.
        variant : {"full-70k", "test-10k"}
            ``"full-70k"``: the 60,000 training images followed by the 10,000
            test images. ``"test-10k"``: only the official test set was found.
        train_index, test_index : ndarray of int
            Rows of the official training and test sets. Only present when
            ``variant == "full-70k"``.
        DESCR : str
            Description of the dataset (``description``, deprecated, is the
            same text).
        source : str
            The file(s) read, comma-separated.

    (data, target) : tuple
        When ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If no local copy is found and ``download_if_missing=False`` or the
        download fails. The message lists every place searched.
    ValueError
        If a file is corrupt, truncated or inconsistent; the message names it.
    TypeError
        If ``data_home`` is not a path or None, or a flag is not a bool.

    See Also
    --------
    load_digits : Small 8x8 digits, always available offline.
    train_test_split_dataset : Split a dataset for benchmarking.

    Examples
    --------
    A data home holding Keras' ``mnist.npz`` (here a tiny stand-in):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skae.datasets import fetch_mnist
    >>> x = np.zeros((3, 28, 28), dtype=np.uint8)
    >>> y = np.array([0, 1, 2], dtype=np.uint8)
    >>> with tempfile.TemporaryDirectory() as home:
    ...     (Path(home) / "mnist").mkdir()
    ...     np.savez(Path(home) / "mnist" / "mnist.npz", x_train=x, y_train=y,
    ...              x_test=x[:1], y_test=y[:1])
    ...     mnist = fetch_mnist(home, download_if_missing=False)
    >>> mnist.variant, mnist.data.shape, mnist.data.dtype
    ('full-70k', (4, 784), dtype('uint8'))
    >>> mnist.test_index
    array([3])
    >>> mnist.feature_names[:2], mnist.target_names
    (['pixel_0_0', 'pixel_0_1'], array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    """
    _check_data_home(data_home)
    _check_flags(
        download_if_missing=download_if_missing,
        return_X_y=return_X_y,
        as_frame=as_frame,
    )
    directories = _mnist_search_path(data_home)
    train, test, source = _read_mnist(directories, data_home, download_if_missing)
    dataset = _mnist_bunch(train, test, source)
    if as_frame:
        dataset.data, dataset.target, dataset.frame = _as_frame(
            dataset.data, dataset.target, dataset.feature_names
        )
    if return_X_y:
        return dataset.data, dataset.target
    return dataset


def load_mnist(data_home=None, *, download=True):
    """Deprecated: use :func:`fetch_mnist`.

    .. deprecated:: 0.1
        ``load_mnist(data_home, download=...)`` is
        ``fetch_mnist(data_home, download_if_missing=...)``; it will be removed
        in 0.2. scikit-learn names a loader that may download ``fetch_*``.

    Parameters
    ----------
    data_home : str or path-like, default=None
        As in :func:`fetch_mnist`.

    download : bool, default=True
        As ``download_if_missing`` in :func:`fetch_mnist`.

    Returns
    -------
    dataset : :class:`~sklearn.utils.Bunch`
        As :func:`fetch_mnist` returns it.
    """
    warnings.warn(
        "load_mnist(data_home, download=...) is deprecated in 0.1 and will be "
        "removed in 0.2: use fetch_mnist(data_home, download_if_missing=...).",
        FutureWarning,
        stacklevel=2,
    )
    _check_flags(download=download)
    return fetch_mnist(data_home, download_if_missing=download)


def train_test_split_dataset(dataset, *, test_size=None, random_state=None):
    """Split a dataset into training and held-out sets for benchmarking.

    When the dataset carries an official split (MNIST ``"full-70k"``) and
    ``test_size`` is None, that split is used and ``random_state`` is
    irrelevant. Otherwise the samples are split at random, stratified by
    ``target``, with half of them held out unless ``test_size`` says
    otherwise.

    Parameters
    ----------
    dataset : :class:`~sklearn.utils.Bunch` or dict
        As returned by :func:`load_digits` or :func:`fetch_mnist`: ``data``,
        ``target`` and, optionally, ``train_index`` and ``test_index``.

    test_size : float or int, default=None
        Fraction (float) or number (int) of held-out samples, as in
        :func:`sklearn.model_selection.train_test_split`. None means the
        official split if there is one, else 0.5.

    random_state : int, RandomState instance or None, default=None
        Controls the shuffling of the random split. Pass an int for
        reproducible output.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        The same order as :func:`sklearn.model_selection.train_test_split`.

    Examples
    --------
    >>> from skae.datasets import load_digits, train_test_split_dataset
    >>> X_train, X_test, y_train, y_test = train_test_split_dataset(
    ...     load_digits(), random_state=0)
    >>> X_train.shape, X_test.shape
    ((898, 64), (899, 64))
    """
    if not isinstance(dataset, Mapping) or not {"data", "target"} <= dataset.keys():
        raise TypeError(
            "Expected a Bunch (or dict) with 'data' and 'target', as load_digits "
            "and fetch_mnist return. Received: dataset of type "
            + type(dataset).__name__
            + (f" with keys {list(dataset)}" if isinstance(dataset, Mapping) else "")
        )
    X, y = dataset["data"], dataset["target"]
    if test_size is None and "train_index" in dataset:
        train, test = dataset["train_index"], dataset["test_index"]
        # _safe_indexing: rows of a DataFrame (as_frame=True) as of an array.
        return tuple(_safe_indexing(a, rows) for a in (X, y) for rows in (train, test))
    return train_test_split(
        X,
        y,
        test_size=0.5 if test_size is None else test_size,
        random_state=random_state,
        stratify=y,
    )


def _check_data_home(data_home):
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            "Expected data_home to be a str, an os.PathLike or None. "
            f"Received: data_home={data_home!r} of type {type(data_home).__name__}"
        )
    if data_home is not None and Path(data_home).expanduser().is_file():
        # Skipping it would search elsewhere, and maybe download.
        raise ValueError(
            f"Expected data_home to be a directory holding {_MNIST_NPZ} or the "
            f"IDX files. Received: data_home={str(data_home)!r}, a file; pass "
            "the directory it is in."
        )


def _check_flags(**flags):
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            # A string such as "no" is true: it would download.
            raise TypeError(f"Expected {name} to be a bool. Received: {name}={value!r}")


def _bunch(**fields):
    """A Bunch whose deprecated ``description`` warns and gives ``DESCR``."""
    dataset = Bunch(**fields)
    dataset._set_deprecated(
        fields["DESCR"],
        new_key="DESCR",
        deprecated_key="description",
        warning_message=(
            "The key 'description' is deprecated in 0.1 and will be removed in "
            "0.2: use 'DESCR', as scikit-learn's datasets do."
        ),
    )
    return dataset


def _as_frame(data, target, feature_names):
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "as_frame=True needs pandas: pip install pandas, or pass "
            "as_frame=False for NumPy arrays."
        ) from exc
    frame = pd.DataFrame(data, columns=list(feature_names))
    frame["target"] = target
    return frame[list(feature_names)], frame["target"], frame


def _sklearn_data_home():
    """scikit-learn's data home by its own rule, without creating it.

    ``sklearn.datasets.get_data_home`` makes the folder; a search that finds
    nothing must not leave folders behind.
    """
    return Path(
        os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
    ).expanduser()


def _data_homes(data_home):
    """The data homes by precedence: ``data_home``, ``SKAE_DATA_HOME``, sklearn's."""
    homes = [data_home, os.environ.get("SKAE_DATA_HOME")]
    return [Path(home).expanduser() for home in homes if home] + [_sklearn_data_home()]


def _mnist_search_path(data_home):
    """Directories to search for MNIST, in order, without duplicates."""
    *homes, sklearn_home = _data_homes(data_home)
    candidates = [path for home in homes for path in (home, home / "mnist")]
    candidates += [sklearn_home / "mnist", *_keras_caches()]
    directories = []
    for directory in candidates:
        if directory not in directories:
            directories.append(directory)
    return directories


def _download_home(data_home):
    """Where a download goes: the data home's ``mnist`` folder."""
    return _data_homes(data_home)[0] / "mnist"


def _read_mnist(directories, data_home, download):
    """``(train, test, source)`` from the first complete copy, or a download."""
    for directory in directories:
        load = _find_mnist(directory)
        if load is not None:
            return load()
    if download:
        target = _download_home(data_home) / _MNIST_NPZ
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # An absolute path: Keras caches there, checking the file's hash.
            keras.datasets.mnist.load_data(path=str(target))
        except Exception as exc:  # get_file raises a bare Exception offline.
            reason = f"downloading to {target} failed: {exc}"
        else:
            return _load_mnist_npz(target)
    else:
        reason = "download_if_missing=False"

    searched = "\n".join(
        f"  {d}" + ("" if d.is_dir() else " (does not exist)") for d in directories
    )
    idx_names = ", ".join(
        f"{name}[.gz]" for pair in _MNIST_IDX.values() for name in pair
    )
    raise FileNotFoundError(
        f"MNIST was not found locally and was not downloaded ({reason}).\n"
        f"Looked for {_MNIST_NPZ} or the IDX files {idx_names} in:\n{searched}\n"
        "To provide the data, pass data_home= or set the environment variable "
        f"SKAE_DATA_HOME to a directory containing {_MNIST_NPZ} or the IDX "
        ".gz files (the two t10k files alone give the 10k test set)."
    )


def _keras_caches():
    """Where ``keras.utils.get_file`` keeps downloads, by Keras' own rule.

    ``$KERAS_HOME``, else ``~/.keras``; where that is not writable Keras uses
    ``/tmp/.keras`` instead, so a download made there is found too.
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        home = Path.home() if os.access(Path.home(), os.W_OK) else Path("/tmp")
        home = home / ".keras"
    caches = [Path(home) / "datasets"]
    if not os.access(Path(home).expanduser(), os.W_OK):
        caches.append(Path("/tmp/.keras/datasets"))
    return caches


def _find_mnist(directory):
    """Return a callable loading the best copy of MNIST in `directory`, or None."""
    npz = directory / _MNIST_NPZ
    if npz.is_file():
        return partial(_load_mnist_npz, npz)
    found = {}
    for subset, names in _MNIST_IDX.items():
        paths = [_find_file(directory, (f"{name}.gz", name)) for name in names]
        if None not in paths:
            found[subset] = paths
    if "test" not in found:
        return None
    return partial(_load_mnist_idx, found.get("train"), found["test"])


def _find_file(directory, names):
    return next(
        (directory / name for name in names if (directory / name).is_file()), None
    )


def _load_mnist_npz(path):
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            arrays = {key: npz[key] for key in keys if key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(
            f"Expected a readable npz file. Received: {path} ({exc})"
        ) from exc
    if missing:
        raise ValueError(
            f"Expected an npz file with arrays {', '.join(keys)}. Received: "
            f"{path} without {', '.join(missing)}"
        )
    train = (arrays["x_train"], arrays["y_train"])
    test = (arrays["x_test"], arrays["y_test"])
    for images, labels in (train, test):
        _check_mnist_arrays(images, labels, path)
    return train, test, str(path)


def _load_mnist_idx(train_paths, test_paths):
    subsets = [test_paths] if train_paths is None else [train_paths, test_paths]
    loaded = []
    for images_path, labels_path in subsets:
        images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
        labels = _read_idx(labels_path, _IDX_LABELS_MAGIC)
        _check_mnist_arrays(images, labels, images_path, labels_path)
        loaded.append((images, labels))
    source = ", ".join(str(path) for paths in subsets for path in paths)
    if train_paths is None:
        return None, loaded[0], source
    return loaded[0], loaded[1], source


def _read_idx(path, magic):
    """Read an IDX file of unsigned bytes, checking its header and length."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"Expected a readable IDX file. Received: {path} ({exc})"
        ) from exc

    found_magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found_magic != magic:
        raise ValueError(
            f"Expected an IDX file with magic number {magic}. Received: {path} "
            f"with magic number={found_magic}"
        )
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"Expected a complete IDX header of {header_size} bytes. "
            f"Received: {path} with {len(raw)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        raise ValueError(
            f"Expected {expected_size} bytes for an IDX array of shape {shape}. "
            f"Received: {path} with {len(raw)} bytes (truncated or corrupt file)"
        )
    # frombuffer views the immutable bytes; copy so that callers get a
    # writable array like the one np.load returns.
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape).copy()


def _check_mnist_arrays(images, labels, *paths):
    where = " and ".join(str(path) for path in paths)
    if images.dtype != np.uint8 or images.shape[1:] != _MNIST_SHAPE:
        raise ValueError(
            f"Expected uint8 images of shape (n, 28, 28). Received: images of "
            f"shape {images.shape} and dtype {images.dtype} in {where}"
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"Expected one label per image ({images.shape[0]}). Received: "
            f"labels of shape {labels.shape} in {where}"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(
            "Expected integer labels. Received: labels of dtype "
            f"{labels.dtype} in {where}"
        )
    if labels.size and not (0 <= labels.min() and labels.max() <= 9):
        raise ValueError(
            "Expected labels between 0 and 9. Received: labels from "
            f"{labels.min()} to {labels.max()} in {where}"
        )


def _mnist_bunch(train, test, source):
    x_test, y_test = test
    if train is None:
        images, target, split = x_test, y_test, {}
    else:
        x_train, y_train = train
        images = np.concatenate([x_train, x_test])
        target = np.concatenate([y_train, y_test])
        n_train = len(x_train)
        split = {
            "train_index": np.arange(n_train),
            "test_index": np.arange(n_train, len(images)),
        }
    rows, columns = _MNIST_SHAPE
    return _bunch(
        data=images.reshape(len(images), -1),
        target=target.astype(np.int64),
        frame=None,
        feature_names=[f"pixel_{i}_{j}" for i in range(rows) for j in range(columns)],
        target_names=np.arange(10),
        DESCR=_MNIST_DESCRIPTION,
        images=images,
        image_shape=_MNIST_SHAPE,
        variant="test-10k" if train is None else "full-70k",
        source=source,
        **split,
    )
