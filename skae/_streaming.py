"""Input read a batch of rows at a time: memmaps, sliceable array-likes, sparse.

``fit`` and ``transform`` normally take X whole through scikit-learn's
``validate_data``, which copies it into memory (and densifies nothing: it rejects
sparse input). The helpers here let them take data that must not be copied or
densified whole instead:

* a :class:`numpy.memmap`, possibly larger than memory;
* any 2-D array-like that can be sliced, such as an h5py dataset or a zarr
  array: an object with a 2-D ``shape``, a NumPy ``dtype`` and ``__getitem__``
  taking row slices;
* a SciPy sparse matrix or array, densified one batch of rows at a time.

Nothing here reads X whole: validation looks at ``shape`` and ``dtype`` only,
and the finiteness check sklearn's ``validate_data`` runs on all of X is run on
each batch as it is read, with the same messages ("Input X contains NaN.").
Batches are always fresh, writable, C-ordered arrays that callers may modify in
place without touching X (a memmap opened with ``mode="r+"`` included).
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils import assert_all_finite

from ._utils import is_positive_int

# Rows per batch aim at this many bytes of float64: large enough to amortise a
# read from disk, small enough that a batch and its temporaries stay small.
_BATCH_BYTES = 32 * 2**20

# Frames have a 2-D shape and a dtype-like attribute too, but validate_data
# knows their column names and dtypes, so they never take the streaming path.
_FRAME_MODULES = ("pandas", "polars", "pyarrow", "modin", "cudf")


def is_streamable(X):
    """Whether X should be read a batch at a time rather than copied whole.

    The rule is conservative, so that anything unusual keeps going through
    scikit-learn's ``validate_data`` as before:

    * SciPy sparse matrices and arrays: always (``validate_data`` would reject
      them; :func:`check_streamable` explains what is wrong with odd ones);
    * :class:`numpy.memmap`: when 2-D; 1-D and image-shaped memmaps keep the
      in-memory path, which reports or reshapes them;
    * other ndarrays, lists, tuples and data frames (pandas, polars, pyarrow):
      never;
    * any other object: when it has a ``shape`` that is a tuple of two integers,
      a ``dtype`` that is a :class:`numpy.dtype` (which rules out torch and
      TensorFlow tensors) and ``__getitem__``, as h5py datasets, zarr arrays and
      dask arrays of known shape have. Its dtype is checked later, by
      :func:`check_streamable`, so that a non-numeric dataset is reported
      without being read.

    Parameters
    ----------
    X : object
        The input to classify.

    Returns
    -------
    bool
        True when X should go through :func:`check_streamable`.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skae._streaming import is_streamable
    >>> is_streamable(sp.csr_array(np.eye(3)))
    True
    >>> is_streamable(np.eye(3)), is_streamable([[0.0, 1.0]])
    (False, False)
    """
    if sp.issparse(X):
        return True
    if isinstance(X, np.ndarray):
        return isinstance(X, np.memmap) and X.ndim == 2
    if isinstance(X, (list, tuple)) or _is_frame(X):
        return False
    shape = getattr(X, "shape", None)
    return (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(isinstance(d, Integral) for d in shape)
        and isinstance(getattr(X, "dtype", None), np.dtype)
        and hasattr(type(X), "__getitem__")
    )


def dense_frame(X):
    """X, or a dense copy of a pandas DataFrame whose columns are all sparse.

    scikit-learn turns such a frame into a SciPy matrix, which fails for a
    fill value other than 0 and which ``validate_data`` then refuses as
    sparse; as a dense frame it keeps its column names, as the frames with
    only some sparse columns, which scikit-learn densifies, do.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"a": pd.arrays.SparseArray([0.0, 1.0])})
    >>> dense_frame(frame).dtypes.tolist()
    [dtype('float64')]
    """
    if hasattr(X, "columns") and type(X).__module__.startswith("pandas"):
        # The accessor exists only when every column is sparse.
        accessor = getattr(X, "sparse", None)
        if accessor is not None:
            return accessor.to_dense()
    return X


def _is_frame(X):
    module = type(X).__module__.partition(".")[0]
    return (
        module in _FRAME_MODULES or hasattr(X, "__dataframe__") or hasattr(X, "columns")
    )


def float_dtype(X):
    """The float dtype batches of X are read as: float32 for float32 X, else float64.

    The same choice as ``validate_data(dtype=[np.float64, np.float32])``, so a
    float32 memmap trains in float32 as a float32 array would.

    Parameters
    ----------
    X : array-like or sparse matrix
        Anything with a ``dtype``.

    Returns
    -------
    numpy.dtype

    Examples
    --------
    >>> import numpy as np
    >>> from skae._streaming import float_dtype
    >>> float_dtype(np.zeros((2, 2), dtype=np.float32))
    dtype('float32')
    >>> float_dtype(np.zeros((2, 2), dtype=np.int16))
    dtype('float64')
    """
    if np.dtype(X.dtype) == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_streamable(X, *, n_features=None, ensure_min_samples=1, input_name="X"):
    """Validate X from its shape and dtype alone, without reading or copying it.

    Checks that X is 2-D, of a real numeric dtype (bool, integer or floating
    point), with at least ``ensure_min_samples`` samples and one feature, and
    with ``n_features`` features when given. Finiteness is checked later, on
    each batch as :func:`take_rows` or :func:`iter_batches` reads it.

    Parameters
    ----------
    X : numpy.memmap, ndarray, sparse matrix or array, or sliceable array-like
        See :func:`is_streamable`.
    n_features : int or None, default=None
        The number of features X must have (the one seen in fit), or None.
    ensure_min_samples : int, default=1
        The fewest samples X may have.
    input_name : str, default="X"
        The name of X in error messages.

    Returns
    -------
    X : object
        X itself, except for sparse input that is not CSR: it is converted to
        CSR (of the same kind, matrix or array), so that rows are read fast.
        That copies the sparse structure (about the size of the stored
        values), never densifies it. Memmaps and array-likes are returned as
        they are, dtype included: batches are converted one at a time.

    Raises
    ------
    TypeError
        X has no integer ``shape`` or no NumPy ``dtype``.
    ValueError
        X has the wrong number of dimensions, samples or features, or a
        non-numeric or complex dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skae._streaming import check_streamable
    >>> X = sp.coo_array(np.eye(3))
    >>> check_streamable(X).format
    'csr'
    >>> check_streamable(X, n_features=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: Expected X with 4 features, as seen in fit. Received: X with shape...
    """
    try:
        shape = tuple(int(d) for d in X.shape)
        dtype = np.dtype(X.dtype)
    except (AttributeError, TypeError, ValueError) as exc:
        raise TypeError(
            f"Expected {input_name} to be an array-like with an integer shape and "
            f"a NumPy dtype, such as a numpy.memmap, an h5py dataset or a SciPy "
            f"sparse matrix. Received: {input_name} of type {type(X).__name__}"
        ) from exc
    if len(shape) != 2:
        raise ValueError(
            f"Expected a 2-D {input_name} of shape (n_samples, n_features). "
            f"Received: {input_name} with shape {shape}"
        )
    if dtype.kind not in "biuf":
        raise ValueError(
            f"Expected {input_name} with a real numeric dtype (bool, integer or "
            f"floating point). Received: {input_name} with dtype {dtype}"
        )
    if shape[0] < ensure_min_samples:
        raise ValueError(
            f"Expected {input_name} with at least {ensure_min_samples} sample(s). "
            f"Received: {input_name} with shape {shape}"
        )
    if shape[1] < 1:
        raise ValueError(
            f"Expected {input_name} with at least 1 feature. "
            f"Received: {input_name} with shape {shape}"
        )
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"Expected {input_name} with {n_features} features, as seen in fit. "
            f"Received: {input_name} with shape {shape}"
        )
    if sp.issparse(X) and X.format != "csr":
        X = X.tocsr()
    return X


def auto_batch_rows(n_features):
    """Rows per batch for reading X: about 32 MiB of float64, at least one row.

    Parameters
    ----------
    n_features : int
        The number of features of X.

    Returns
    -------
    int

    Examples
    --------
    >>> from skae._streaming import auto_batch_rows
    >>> auto_batch_rows(784), auto_batch_rows(10**8)
    (5349, 1)
    """
    return max(1, _BATCH_BYTES // (8 * max(1, int(n_features))))


def take_rows(X, rows, dtype=None, *, input_name="X", estimator_name=None):
    """Dense rows of X, in the order of ``rows``, reading only those rows.

    Parameters
    ----------
    X : numpy.memmap, ndarray, sparse matrix or array, or sliceable array-like
        As returned by :func:`check_streamable`.
    rows : array-like of int of shape (n_rows,)
        Row indices, in any order, repeats allowed; negative ones count from the
        end as in NumPy.
    dtype : float dtype or None, default=None
        The dtype of the result; None gives :func:`float_dtype` of X.
    input_name : str, default="X"
        The name of X in error messages.
    estimator_name : str or None, default=None
        Passed to :func:`sklearn.utils.assert_all_finite`, whose NaN message
        then names the estimator as ``validate_data``'s does.

    Returns
    -------
    ndarray of shape (n_rows, n_features)
        A fresh C-ordered array, never a view of X.

    Raises
    ------
    ValueError
        The rows read contain NaN or infinity (after conversion to ``dtype``:
        float64 values too large for float32 count as infinite).
    IndexError
        A row index is out of range.

    Notes
    -----
    A memmap is indexed with the sorted unique rows, then the result reordered,
    so that the file is read forwards and each page once. Sparse rows come from
    CSR row indexing, densified afterwards (non-CSR input is converted to CSR
    first, at every call: pass X through :func:`check_streamable` once).
    Other array-likes are read as one slice per run of consecutive rows, the
    one kind of selection every sliceable object supports (h5py's point
    selections are slow, zarr 2 takes no integer arrays).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skae._streaming import take_rows
    >>> X = sp.csr_array(np.arange(6.0).reshape(3, 2))
    >>> take_rows(X, [2, 0, 2])
    array([[4., 5.],
           [0., 1.],
           [4., 5.]])
    >>> take_rows(np.array([[np.nan, 1.0]]), [0])
    Traceback (most recent call last):
        ...
    ValueError: Input X contains NaN.
    """
    dtype = float_dtype(X) if dtype is None else np.dtype(dtype)
    n_samples, n_features = (int(d) for d in X.shape)
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise TypeError(
            "Expected rows to be a 1-D array of integer indices. Received: rows "
            f"with shape {rows.shape} and dtype {rows.dtype}"
        )
    rows = rows.astype(np.intp, copy=False)
    if rows.size and (rows.min() < -n_samples or rows.max() >= n_samples):
        raise IndexError(
            f"Expected row indices in [-{n_samples}, {n_samples}) for "
            f"{input_name} with shape {tuple(X.shape)}. Received: rows from "
            f"{rows.min()} to {rows.max()}"
        )
    if rows.size and rows.min() < 0:
        rows = np.where(rows < 0, rows + n_samples, rows)

    if sp.issparse(X):
        batch = _as_csr(X)[rows].toarray()
    elif isinstance(X, np.ndarray) and not isinstance(X, np.memmap):
        batch = X[rows]
    else:
        increasing = bool(np.all(rows[1:] > rows[:-1]))
        unique, inverse = (rows, None) if increasing else _unique_inverse(rows)
        batch = _read_sorted(X, unique, n_features, input_name)
        if inverse is not None:
            batch = batch[inverse]
    # Fancy indexing, toarray() and concatenate all return fresh arrays: no copy
    # is needed for the batch not to be a view of X.
    return _checked(batch, dtype, False, input_name, estimator_name)


def iter_batches(
    X, batch_rows=None, dtype=None, *, input_name="X", estimator_name=None
):
    """Yield ``(start, batch)`` for consecutive row ranges of X, densified.

    Parameters
    ----------
    X : numpy.memmap, ndarray, sparse matrix or array, or sliceable array-like
        As returned by :func:`check_streamable`.
    batch_rows : int or None, default=None
        Rows per batch (the last one may have fewer); None gives
        :func:`auto_batch_rows`.
    dtype : float dtype or None, default=None
        The dtype of the batches; None gives :func:`float_dtype` of X.
    input_name : str, default="X"
        The name of X in error messages.
    estimator_name : str or None, default=None
        See :func:`take_rows`.

    Yields
    ------
    start : int
        The index of the batch's first row in X.
    batch : ndarray of shape (n_rows, n_features)
        Rows ``start`` to ``start + n_rows`` of X, a fresh C-ordered array.

    Raises
    ------
    ValueError
        On reaching a batch that contains NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from skae._streaming import iter_batches
    >>> X = np.arange(10).reshape(5, 2)
    >>> [(start, batch.shape) for start, batch in iter_batches(X, batch_rows=2)]
    [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    dtype = float_dtype(X) if dtype is None else np.dtype(dtype)
    n_samples, n_features = (int(d) for d in X.shape)
    if batch_rows is None:
        batch_rows = auto_batch_rows(n_features)
    if not is_positive_int(batch_rows):
        raise ValueError(
            f"Expected batch_rows to be a positive integer or None. Received: "
            f"batch_rows={batch_rows!r}"
        )
    if sp.issparse(X):
        X = _as_csr(X)
    # A generator inside, so that bad arguments raise at the call, not at the
    # first next().
    return _batches(
        X, n_samples, n_features, int(batch_rows), dtype, input_name, estimator_name
    )


def _batches(X, n_samples, n_features, batch_rows, dtype, input_name, estimator_name):
    for start in range(0, n_samples, batch_rows):
        stop = min(start + batch_rows, n_samples)
        if sp.issparse(X):
            batch = _checked(
                X[start:stop].toarray(), dtype, False, input_name, estimator_name
            )
        else:
            # Always copied: a slice of an ndarray is a view (of a file, for a
            # memmap), and an array-like's may be one too.
            if isinstance(X, np.ndarray):
                part = X[start:stop]
            else:
                part = _read_slice(X, start, stop, n_features, input_name)
            batch = _checked(part, dtype, True, input_name, estimator_name)
        yield start, batch


def _checked(batch, dtype, copy, input_name, estimator_name):
    """``batch`` as a C-ordered array of ``dtype``, checked finite."""
    # Values beyond float32's range become inf: the check below reports them as
    # an error, so numpy's overflow warning would only repeat it.
    with np.errstate(over="ignore"):
        if copy:
            batch = np.array(batch, dtype=dtype, order="C")
        else:
            batch = np.asarray(batch, dtype=dtype, order="C")
    assert_all_finite(batch, input_name=input_name, estimator_name=estimator_name)
    return batch


def _as_csr(X):
    return X if X.format == "csr" else X.tocsr()


def _unique_inverse(rows):
    unique, inverse = np.unique(rows, return_inverse=True)
    return unique, inverse.reshape(-1)


def _read_sorted(X, rows, n_features, input_name):
    """Rows of X for strictly increasing indices ``rows``."""
    if isinstance(X, np.ndarray):
        return X[rows]
    if rows.size == 0:
        return np.empty((0, n_features), dtype=X.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.r_[0, breaks]]
    stops = rows[np.r_[breaks - 1, rows.size - 1]] + 1
    parts = [
        _read_slice(X, int(a), int(b), n_features, input_name)
        for a, b in zip(starts, stops, strict=True)
    ]
    return np.concatenate(parts, axis=0)


def _read_slice(X, start, stop, n_features, input_name):
    part = np.asarray(X[start:stop])
    if part.shape != (stop - start, n_features):
        raise ValueError(
            f"Expected {input_name}[{start}:{stop}] to be an array of shape "
            f"{(stop - start, n_features)}. Received: shape {part.shape} from "
            f"{type(X).__name__}"
        )
    return part
