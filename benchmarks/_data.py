"""Benchmark datasets: where MNIST is looked for and how each set is split."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from skae.datasets import fetch_mnist, load_digits, train_test_split_dataset

DATASETS = ("digits", "mnist")
# The larger code is roughly what PCA needs to keep most of the variance, so
# the reconstruction comparison is not decided by a starved code.
CODE_SIZES = {"digits": (2, 8), "mnist": (2, 32)}
# The split never changes between seeds: seeds vary the models only, so the
# spread over seeds is the models' own variability.
SPLIT_SEED = 0
REPO_ROOT = Path(__file__).resolve().parent.parent
# Where this project's machines keep a copy of MNIST, beside the checkout.
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


@dataclass
class BenchmarkData:
    """One dataset, split into training and held-out parts."""

    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    info: dict = field(default_factory=dict)


def find_mnist(data_home=None, *, download=False):
    """Load MNIST from `data_home`, or from the default places.

    Without `data_home`, :func:`skae.datasets.fetch_mnist`'s own search
    (``SKAE_DATA_HOME``, scikit-learn's data home, Keras' cache) comes first,
    then
    :data:`SHARED_MNIST` when that directory exists.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Directory holding ``mnist.npz`` or the IDX files.
    download : bool, default=False
        Let Keras download MNIST when no local copy is found.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        As returned by :func:`skae.datasets.fetch_mnist`.

    Raises
    ------
    FileNotFoundError
        With fetch_mnist's message listing every place searched.
    """
    if data_home is not None:
        return fetch_mnist(data_home, download_if_missing=download)
    if not SHARED_MNIST.is_dir():
        return fetch_mnist(None, download_if_missing=download)
    try:
        return fetch_mnist(None, download_if_missing=False)
    except FileNotFoundError:
        # Searching the shared copy last lists all places in the error.
        return fetch_mnist(SHARED_MNIST, download_if_missing=download)


def portable_source(source):
    """The files a dataset was read from, without the machine's folders.

    Reports are committed and read elsewhere: the data home's absolute path
    says nothing there and leaks this machine's layout.
    """
    return ", ".join(Path(part.strip()).name for part in source.split(","))


def _subsample(bunch, n_samples):
    """A stratified random subset of `n_samples` rows, without official split."""
    rows, _ = train_test_split(
        np.arange(len(bunch.target)),
        train_size=n_samples,
        stratify=bunch.target,
        random_state=SPLIT_SEED,
    )
    rows = np.sort(rows)
    return Bunch(
        data=bunch.data[rows],
        target=bunch.target[rows],
        image_shape=bunch.image_shape,
        variant=bunch.variant,
        source=bunch.source,
    )


def load(name, *, data_home=None, download=False, subsample=None):
    """Load and split a benchmark dataset.

    Parameters
    ----------
    name : {"digits", "mnist"}
    data_home, download
        See :func:`find_mnist`; ignored for digits.
    subsample : int or None, default=None
        Keep a stratified random subset of this many samples (before the
        split) when the dataset is larger.

    Returns
    -------
    data : BenchmarkData
    """
    if name == "digits":
        bunch = load_digits()
        preprocessing = "raw pixel values 0-16 (float64)"
    elif name == "mnist":
        bunch = find_mnist(data_home, download=download)
        preprocessing = (
            "pixels divided by 255 (float32), so reconstruction MSE is in units "
            "of (intensity / 255)^2"
        )
    else:
        raise ValueError(f"Expected one of {DATASETS}. Received: {name!r}")

    notes = []
    n_total = len(bunch.target)
    prefix = ""
    if subsample is not None and n_total > subsample:
        bunch = _subsample(bunch, subsample)
        prefix = (
            f"stratified random subsample of {subsample} of the {n_total} "
            f"samples (random_state={SPLIT_SEED}), then "
        )
    if "train_index" in bunch:
        X_train, X_test, y_train, y_test = train_test_split_dataset(bunch)
        split = (
            f"official MNIST split: {len(y_train)} training and {len(y_test)} "
            "test images"
        )
    else:
        X_train, X_test, y_train, y_test = train_test_split_dataset(
            bunch, test_size=0.5, random_state=SPLIT_SEED
        )
        split = (
            f"{prefix}a stratified random 50/50 split "
            f"(random_state={SPLIT_SEED}), the same for every seed"
        )
        if name == "mnist" and bunch.variant == "test-10k":
            notes.append(
                "Only the official 10,000-image MNIST test set was found (not the "
                "60,000 training images): it is split 50/50 into training and "
                "held-out halves, so these results are not comparable with "
                "results on the official 60k/10k split."
            )
    if name == "mnist":
        X_train = X_train.astype(np.float32) / np.float32(255)
        X_test = X_test.astype(np.float32) / np.float32(255)
    return BenchmarkData(
        name=name,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
        image_shape=tuple(bunch.image_shape),
        info={
            "status": "ok",
            "variant": bunch.variant,
            "source": portable_source(bunch.source),
            "split": split[0].upper() + split[1:],
            "split_random_state": SPLIT_SEED,
            "subsample": subsample if prefix else None,
            "n_train": len(y_train),
            "n_test": len(y_test),
            "n_features": X_train.shape[1],
            "n_classes": len(np.unique(y_train)),
            "preprocessing": preprocessing,
            "code_sizes": list(CODE_SIZES[name]),
            "notes": notes,
        },
    )
