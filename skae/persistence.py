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
``safe_mode=False``. ``FORMAT_VERSION`` is raised whenever a file written by a
newer skae could be misread by an older one; an older skae then refuses such a
file with a clear error instead of guessing.

Parameters that are not plain data (a list of Keras callbacks, a Keras model or
a callable given as ``encoder=``/``decoder=``, a ``numpy.random.Generator``) are
stored as None, with a warning at save time naming them: the loaded transformer
transforms exactly like the saved one, and only a refit needs them set again.
"""

from . import _estimator, _serialization

__all__ = ["FORMAT_VERSION", "load", "save"]

#: Version of the file layout this skae writes, and the newest it reads.
FORMAT_VERSION = _serialization.FORMAT_VERSION

# Importing the estimators registers them with the file format.
_ESTIMATORS = (_estimator.AutoencoderTransformer,)


def save(estimator, path):
    """Save a fitted skae estimator to one file, without pickle.

    The file, a zip archive, holds the estimator's parameters, its fitted state
    (``input_offset_``, ``history_``, ``feature_names_in_``, ...) and its Keras
    models in Keras' ``.keras`` format, plus the versions of skae, Keras,
    TensorFlow, scikit-learn and NumPy that wrote it. :func:`load` reads it in
    any process, without pickle and, by default, without running code from the
    file.

    The file is written to a temporary file in the same folder, flushed to
    disk, then renamed over ``path``: a failure or crash mid-save leaves any
    previous file at ``path`` intact and no partial file behind. When ``path``
    is a symbolic link, the file it points to is replaced.

    Parameters
    ----------
    estimator : AutoencoderTransformer
        A fitted estimator.
    path : str or os.PathLike
        Where to write the file; by convention it ends in ``.skae``.

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``estimator`` is not a skae estimator, ``path`` is not a str or an
        ``os.PathLike``, or a fitted attribute is not plain data or a Keras
        model.
    OSError
        If the file cannot be written; ``path`` is then left as it was.

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
    return _serialization.save(estimator, path)


def load(path, *, safe_mode=True):
    """Load an estimator saved by :func:`save` or ``AutoencoderTransformer.save``.

    Reads the file without pickle. The returned estimator is fitted and
    transforms exactly (bit for bit) like the one saved, in this or any other
    process. Parameters saved as None (see :func:`save`) are None.

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
    estimator : AutoencoderTransformer
        The fitted estimator.

    Raises
    ------
    OSError
        If the file cannot be read (``FileNotFoundError``,
        ``IsADirectoryError``, ...).
    ValueError
        If the file is not a skae file (empty, truncated, corrupt, another kind
        of zip archive), was written in a newer format than this skae reads, or
        holds Python code while ``safe_mode=True``. The message names the file.
        No estimator is returned in part.
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
