"""Saving fitted transformers to one file, and loading them without pickle.

A skae file is a zip archive:

``skae.json``
    The header: the format name and version, the versions of skae, Keras,
    TensorFlow, scikit-learn, NumPy and Python that wrote it, the estimator's class, its
    parameters (``get_params(deep=False)``) and its fitted state (everything
    else the estimator would pickle), as tagged JSON.
``arrays/<i>.npy``
    NumPy arrays of the state, read with ``allow_pickle=False``.
``models/<name>.keras``
    Keras models of the state (``encoder_``, ``decoder_``), in Keras' own
    format, loaded with Keras' ``safe_mode``.

Nothing in the file is executed on load unless the caller passes
``safe_mode=False``. :func:`load` checks a file from its zip directory
inwards, reading no member before what it has read bounds that member's size,
then checks the restored estimator's fitted state as a whole (see "Security"
in the user guide). ``FORMAT_VERSION`` is raised whenever a file written by a
newer skae could be misread by an older one; an older skae then refuses such a
file with a clear error instead of guessing.

Parameters that are not plain data (a list of Keras callbacks, a Keras model or
a callable given as ``encoder=``/``decoder=``, a ``numpy.random.Generator``) are
stored as None, with a warning at save time naming them: the loaded transformer
transforms exactly like the saved one, and only a refit needs them set again.
"""

import math
import numbers

import keras
import numpy as np

from . import _estimator, _serialization

__all__ = ["FORMAT_VERSION", "load", "save"]

#: Newest file layout this skae reads (1: one estimator, 2: a pipeline or
#: other scikit-learn object holding some); each file is written in the oldest
#: layout that holds it.
FORMAT_VERSION = _serialization.FORMAT_VERSION


def save(estimator, path, *, overwrite=None):
    """Save a fitted skae estimator, or a pipeline holding some, without pickle.

    The file, a zip archive, holds the estimator's parameters, its fitted state
    (``input_offset_``, ``history_``, ``feature_names_in_``, ...) and its Keras
    models in Keras' ``.keras`` format, plus the versions of skae, Keras,
    TensorFlow, scikit-learn and NumPy that wrote it. :func:`load` reads it in
    any process, without pickle and, by default, without running code from the
    file.

    A scikit-learn object (a ``Pipeline``, ``ColumnTransformer``,
    ``FeatureUnion``, or any estimator) whose parts are scikit-learn estimators,
    skae estimators and plain data is saved too, with the same guarantees: its
    skae estimators each as above, the rest in skops' format (needs ``skops``:
    ``pip install "skae[pipelines]"``), which loads only types it trusts.
    Anything else in it (your own transformer class, a lambda in a
    ``FunctionTransformer``) is refused with a ``TypeError`` naming it and
    where it sits, never pickled.

    The file is written to a temporary file in the same folder, flushed to
    disk, then renamed over ``path``: a failure mid-save leaves any previous
    file at ``path`` intact and no partial file behind. A process killed
    mid-save (``SIGKILL``, power loss) can leave that temporary file,
    ``.<name>.<8 hex digits>.tmp`` next to ``path``, but never a partial file
    at ``path``; the next save to ``path`` deletes it (on Windows it stays).
    When ``path`` is a symbolic link, the file it points to is replaced. Only a
    regular file is ever replaced, keeping its permission bits (and, run as
    root, its owner); a new file gets the usual ones (``0o666`` less the
    umask).

    Parameters
    ----------
    estimator : AutoencoderTransformer or scikit-learn estimator
        A fitted skae estimator, or a scikit-learn estimator holding skae
        estimators (fitted or not).
    path : str or os.PathLike
        Where to write the file; by convention it ends in ``.skae``.
    overwrite : bool or None, default=None
        What to do with a file already at ``path``. None: replace it unless
        it is read-only (no write permission bit, or not writable by you),
        as ``open(path, "w")`` would refuse it, even when run as root.
        True: replace it even if read-only, as Keras' ``model.save(...,
        overwrite=True)`` does. False: never replace it (Keras would ask on
        the terminal; skae raises ``FileExistsError``).

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``estimator`` is neither a skae estimator nor a scikit-learn
        estimator, holds something that would load only by running code,
        ``path`` is not a str or an ``os.PathLike``, ``overwrite`` is not a
        bool or None, or a fitted attribute is not plain data or a Keras
        model.
    ImportError
        If ``estimator`` is not a skae estimator and skops is not installed.
    OSError
        If the file cannot be written; ``path`` is then left as it was. Among
        them: ``IsADirectoryError``, an ``OSError`` for a device, FIFO or
        socket at ``path``, ``PermissionError`` for a read-only file with
        ``overwrite=None``, ``FileExistsError`` for any file with
        ``overwrite=False``.

    Warns
    -----
    UserWarning
        When parameters that are not plain data (callbacks, a Keras model or a
        callable given as ``encoder=``) are stored as None. The loaded
        estimator transforms exactly like the saved one; set them again
        before refitting it.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skae import AutoencoderTransformer
    >>> from skae.persistence import load, save
    >>> X = np.random.RandomState(0).rand(50, 4)
    >>> ae = AutoencoderTransformer(hidden_layer_sizes=(8,), epochs=2,
    ...                             random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save(ae, os.path.join(tmp, "ae.skae"))
    ...     loaded = load(path)
    >>> np.array_equal(loaded.transform(X), ae.transform(X))
    True
    """
    return _serialization.save(estimator, path, overwrite=overwrite)


def load(path, *, safe_mode=True):
    """Load an estimator saved by :func:`save` or ``AutoencoderTransformer.save``.

    Reads the file without pickle. The returned estimator is fitted and
    transforms exactly (bit for bit) like the one saved, in this or any other
    process. Parameters saved as None (see :func:`save`) are None.

    A damaged or crafted file is refused with a ValueError before it costs
    more than about 100 times its size (4 MiB at least) in memory: members the
    header does not refer to, arrays larger than their ``.npy`` header says,
    and a fitted state no fit leaves (non-finite or zero scales, networks
    whose inputs or outputs do not match ``n_features_in_`` and
    ``n_components_``, missing attributes) are refused, naming the file and
    the attribute.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    safe_mode : bool, default=True
        Refuse Keras models that hold Python code (``Lambda`` layers, Python
        lambdas), since loading them runs that code. Pass False only for files
        from a source you trust.

    Returns
    -------
    estimator : AutoencoderTransformer or scikit-learn estimator
        The fitted estimator, or the pipeline (or other scikit-learn object)
        that was saved, with its skae estimators in place.

    Raises
    ------
    OSError
        If the file cannot be read (``FileNotFoundError``,
        ``IsADirectoryError``, ...).
    ValueError
        If the file is not a skae file (empty, truncated, corrupt, another kind
        of zip archive, or one whose fitted state is inconsistent), was written
        in a newer format than this skae reads, or holds Python code while
        ``safe_mode=True``. The message names the file. No estimator is
        returned in part.
    TypeError
        If ``path`` is not a str or an ``os.PathLike``, or ``safe_mode`` is not
        a bool.

    See Also
    --------
    save : Write a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skae
    >>> X = np.random.RandomState(0).rand(50, 4)
    >>> ae = skae.AutoencoderTransformer(hidden_layer_sizes=(8,), epochs=2,
    ...                                  random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = skae.load(ae.save(os.path.join(tmp, "ae.skae")))
    >>> loaded.n_iter_, loaded.get_params()["hidden_layer_sizes"]
    (2, (8,))
    """
    return _serialization.load(path, safe_mode=safe_mode)


# -- what a loaded AutoencoderTransformer must hold ------------------------------

# What transform, inverse_transform and partial_fit read; code_scale_,
# solution_ and validation_errors_ are defaulted by __setstate__ for old files.
_REQUIRED = (
    "encoder_",
    "decoder_",
    "input_offset_",
    "input_scale_",
    "code_scale_",
    "n_features_in_",
    "n_components_",
    "input_shape_",
    "_sample_shape",
    "n_iter_",
    "history_",
    "hidden_layer_sizes_",
    "_stream",
)


def _check_fitted_state(est, saved):
    """Refuse the fitted state of a loaded AutoencoderTransformer that no fit leaves.

    A file edited so that its checksums still hold (a zero scale, a NaN offset,
    networks swapped) would otherwise load, then transform to NaN or fail later
    with a confusing error. Raises ValueError naming the first bad attribute.
    ``saved`` names the attributes the file held.
    """
    state = vars(est)
    missing = [name for name in _REQUIRED if name not in state]
    # Files written before these three came in lack all three (and load as
    # ever); one lacking some was edited, maybe to drop code_scale_'s factor.
    newer = {"code_scale_", "solution_", "validation_errors_"}
    if newer & saved:
        missing += sorted(newer - saved)
    if missing:
        raise ValueError(f"{missing[0]} is missing")
    n = _count(state, "n_features_in_", 1)
    k = _count(state, "n_components_", 1)
    _count(state, "n_iter_", 0)
    for name in ("input_shape_", "_sample_shape"):
        shape = state[name]
        if not (isinstance(shape, tuple) and all(_is_int(d, 1) for d in shape)):
            raise ValueError(f"{name}={shape!r} is not a tuple of positive ints")
        if math.prod(shape) != n:
            raise ValueError(f"{name}={shape!r} does not hold n_features_in_={n}")
    _vector(state["input_offset_"], "input_offset_", n)
    scale = _vector(state["input_scale_"], "input_scale_", n)
    if not np.all(scale > 0):
        raise ValueError("input_scale_ has values that are not positive")
    code_scale = state["code_scale_"]
    if not (_is_real(code_scale) and math.isfinite(code_scale) and code_scale > 0):
        raise ValueError(f"code_scale_={code_scale!r} is not a positive finite float")
    _network(state["encoder_"], "encoder_", (n, "n_features_in_"), (k, "n_components_"))
    _network(state["decoder_"], "decoder_", (k, "n_components_"), (n, "n_features_in_"))
    hidden = state["hidden_layer_sizes_"]
    if hidden is not None and not (
        isinstance(hidden, tuple) and all(_is_int(h, 1) for h in hidden)
    ):
        raise ValueError(f"hidden_layer_sizes_={hidden!r} is not a tuple of ints")
    _numbers(state["history_"], "history_", list)
    _check_stream(state["_stream"], n)
    names = state.get("feature_names_in_")
    if names is not None and not (
        isinstance(names, np.ndarray)
        and names.shape == (n,)
        and all(isinstance(name, str) for name in names)
    ):
        raise ValueError(f"feature_names_in_ is not an array of {n} str")
    if "n_samples_seen_" in state:
        _count(state, "n_samples_seen_", 0)
    for name, allowed in (
        ("init_", (None, "random", "pca")),
        ("solution_", (None, "autoencoder", "pca", "pca_decoder")),
    ):
        if state.get(name) not in allowed:
            raise ValueError(f"{name}={state[name]!r} is not one of {allowed}")
    if state.get("validation_errors_") is not None:
        _numbers(state["validation_errors_"], "validation_errors_", None)
    if "reconstruction_r2_" in state and not _is_real(state["reconstruction_r2_"]):
        raise ValueError("reconstruction_r2_ is not a float")


def _is_int(value, minimum):
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, np.bool_))
        and value >= minimum
    )


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _count(state, name, minimum):
    value = state[name]
    if not _is_int(value, minimum):
        raise ValueError(f"{name}={value!r} is not an int >= {minimum}")
    return int(value)


def _vector(value, name, n, dtype=np.float64):
    if not (isinstance(value, np.ndarray) and value.dtype == dtype):
        raise ValueError(f"{name} is not a {np.dtype(dtype)} array")
    if value.shape != (n,):
        raise ValueError(f"{name} has shape {value.shape}, not ({n},)")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} has values that are not finite")
    return value


def _numbers(value, name, of):
    """``value`` must be a dict of str to numbers, or to lists of them if ``of``."""
    if not (
        isinstance(value, dict)
        and all(isinstance(key, str) for key in value)
        and all(
            isinstance(item, list) and all(_is_real(x) for x in item)
            if of is list
            else _is_real(item)
            for item in value.values()
        )
    ):
        kind = "lists of numbers" if of is list else "numbers"
        raise ValueError(f"{name} is not a dict of str to {kind}")


def _network(model, name, inputs, outputs):
    """A Keras model from rows (or images) of one size to rows of another."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"{name} is a {type(model).__name__}, not a Keras model")
    try:
        ends = {"input": model.inputs, "output": model.outputs}
    except (AttributeError, ValueError):
        ends = {}
    for end, (size, what) in zip(("input", "output"), (inputs, outputs), strict=True):
        tensors = ends.get(end) or ()
        if len(tensors) != 1:
            raise ValueError(f"{name} has {len(tensors)} {end}s, not one")
        shape = tuple(tensors[0].shape[1:])
        if not (all(_is_int(d, 1) for d in shape) and math.prod(shape) == size):
            raise ValueError(
                f"{name} has an {end} of shape {shape}, not of {what}={size} values"
            )
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            raise ValueError(f"{name} has weights that are not finite ({weight.path})")


def _check_stream(stream, n):
    """The state partial_fit continues from (a ``_fit.StreamState``)."""
    stats = getattr(stream, "stats", None)
    if stats is None or not all(
        _is_int(getattr(stream, field, None), 0) for field in ("seed", "step")
    ):
        raise ValueError("_stream is not the state partial_fit continues from")
    ratio = stream.noise_ratio
    if isinstance(ratio, np.ndarray):
        _vector(ratio, "_stream's noise_ratio", n)
    elif not (_is_real(ratio) and math.isfinite(ratio)):
        raise ValueError("_stream's noise_ratio is not a finite float")
    if getattr(stats, "n_features", None) not in (None, n):
        raise ValueError(f"_stream's statistics are not of n_features_in_={n}")
    if not _is_int(getattr(stats, "n_samples_seen_", None), 0):
        raise ValueError("_stream's statistics count no samples")
    for field in ("shift_", "shifted_mean_", "m2_", "data_min_", "data_max_"):
        value = getattr(stats, field, None)
        if value is not None:
            _vector(value, f"_stream's {field}", n)


# Importing the estimators registers them with the file format; the check of
# what a file restores is the estimator's, registered here with the format.
_serialization.register(_estimator.AutoencoderTransformer, check=_check_fitted_state)
