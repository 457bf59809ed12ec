"""The input contract: rows or images, in memory or read a batch at a time.

``read`` validates X as scikit-learn's ``validate_data`` does (and sets
``n_features_in_`` and ``feature_names_in_`` on the estimator), flattening
images so that every later step sees rows. Training then sees X through a
*row set*, one small protocol with two implementations:

* :class:`ArrayRows`: the scaled rows, in memory, as one float32 array;
* :class:`StreamedRows`: rows of a memmap, sparse matrix or sliceable
  array-like, read, densified and scaled a chunk at a time.

Both have ``n`` (the number of rows), ``chunks(order, chunk_rows)`` (tensors
to train on, with the order within each), ``batches(size)`` (scaled rows in
order, for evaluation) and ``read(positions)``; ``graph`` holds the rows'
neighbour graph when the structure term needs one.
"""

import math
from dataclasses import dataclass
from numbers import Integral

import keras
import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array
from sklearn.utils.validation import _check_feature_names, validate_data

from . import _dask, _devices, _forward, _streaming
from ._forward import BATCH_ROWS


@dataclass(frozen=True)
class Input:
    """X as training reads it.

    Attributes
    ----------
    X : ndarray, memmap, sparse matrix or sliceable array-like
        Rows (images flattened); streamed kinds are never copied whole.
    sample_shape : tuple of int
        The shape of one sample as given: what ``inverse_transform`` returns.
    input_shape : tuple of int
        The shape of one sample as the networks see it.
    """

    X: object
    sample_shape: tuple
    input_shape: tuple


def read(estimator, X, plan, *, reset):
    """Validate X for fitting with ``plan`` (:class:`skae._params.Plan`).

    Returns an :class:`Input`. Later ``partial_fit`` calls (``reset=False``)
    check X against the fitted ``n_features_in_`` and ``input_shape_``. With a
    structure term a streamed X is read whole: the neighbour graph and the
    edge batches index every row; sparse X, which that would densify, is
    refused.
    """
    structure_weight = plan.structure_weight
    _devices.configure()
    names = None
    if _dask.is_collection(X):
        # Never through validate_data, which would compute X whole.
        X, names = _dask.as_fit_array(X)
    X, sample_shape = validate(estimator, X, reset=reset, names=names)
    if structure_weight > 0 and _streaming.is_streamable(X):
        if sp.issparse(X):
            raise ValueError(
                "Expected a dense X for structure_weight > 0: the neighbour "
                "graph and the training batches need every row in memory, and "
                "sparse input would be densified whole. Received: X of type "
                f"{type(X).__name__} (sparse) with "
                f"structure_weight={structure_weight}"
            )
        X = np.asarray(X[:])
    if reset:
        input_shape = resolve_input_shape(plan.input_shape, X.shape[1], sample_shape)
    else:
        input_shape = estimator.input_shape_
    return Input(X, tuple(sample_shape), tuple(input_shape))


def accepts_images(params):
    """Whether X may hold images (3-D or 4-D) for these parameters.

    ``params`` is the estimator or its plan.
    """
    return params.architecture == "conv" or params.input_shape is not None


def validate(estimator, X, *, reset, names=None):
    """``validate_data`` for rows or images: return ``(X_flat, sample_shape)``.

    Images are flattened first, so that ``n_features_in_`` counts values
    (784 for 28x28 images) and scaling works per value as for rows.
    ``names``: an object whose ``columns`` are X's feature names, for input
    that lost them on the way (a Dask DataFrame read as an array).
    """
    if not reset and _valid_fitted_rows(estimator, X):
        return X, (X.shape[1],)
    X = _streaming.dense_frame(X)
    if _streaming.is_streamable(X):
        return _validate_streamed(estimator, X, reset=reset, names=names)
    kwargs = {"dtype": [np.float64, np.float32], "reset": reset}
    if reset:
        kwargs["ensure_min_samples"] = 2
    ndim = getattr(X, "ndim", None)
    if ndim is None and (isinstance(X, (list, tuple)) or hasattr(X, "__array__")):
        try:
            ndim = np.asarray(X).ndim
        except ValueError:
            ndim = None  # Ragged nested lists: validate_data explains.
    if not isinstance(ndim, Integral):
        ndim = 2
    sample_shape = None
    if ndim > 2:
        if not accepts_images(estimator):
            raise ValueError(
                "Expected a 2-D X of shape (n_samples, n_features). Received: "
                f"X with shape {np.shape(X)}. For images, pass "
                "input_shape=(height, width[, channels]) or architecture='conv'."
            )
        X = check_array(
            X,
            allow_nd=True,
            dtype=kwargs["dtype"],
            ensure_min_samples=kwargs.get("ensure_min_samples", 1),
            input_name="X",
        )
        sample_shape = X.shape[1:]
        if not reset and not same_image_shape(sample_shape, estimator.input_shape_):
            raise ValueError(
                f"Expected images of shape {estimator.input_shape_}, as in fit, or "
                f"rows of {estimator.n_features_in_} values. Received: X with shape "
                f"{X.shape}"
            )
        X = X.reshape(len(X), -1)
    X = validate_data(estimator, X, **kwargs)
    return X, sample_shape or (X.shape[1],)


def _valid_fitted_rows(estimator, X):
    """Whether ``validate_data(estimator, X, reset=False)`` would return X as
    it is, without a warning: a float ndarray of the fitted width, finite.

    It costs ~60 us a call, as much as a one-row ``transform``'s arithmetic;
    anything else (and any doubt) takes the full check, which explains.
    """
    if (
        type(X) is not np.ndarray
        or X.ndim != 2
        or X.dtype not in (np.float32, np.float64)
        or X.shape[0] == 0
        or X.shape[1] != getattr(estimator, "n_features_in_", None)
        or hasattr(estimator, "feature_names_in_")
    ):
        return False
    # scikit-learn's own first pass: the sum of finite values is finite.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(X.sum()))


def _validate_streamed(estimator, X, *, reset, names=None):
    # validate_data would copy X whole (and densify nothing: it rejects
    # sparse input); X is checked from its shape and dtype here, and each
    # batch for finiteness as it is read.
    X = _streaming.check_streamable(
        X,
        n_features=None if reset else estimator.n_features_in_,
        ensure_min_samples=2 if reset else 1,
    )
    _check_feature_names(estimator, X if names is None else names, reset=reset)
    if reset:
        estimator.n_features_in_ = int(X.shape[1])
    return X, (int(X.shape[1]),)


def resolve_input_shape(input_shape, n_features, sample_shape):
    """Shape of one sample as the networks see it.

    ``input_shape`` is the parameter, None or a tuple of positive ints.
    """
    if input_shape is None:
        return tuple(sample_shape)
    shape = tuple(int(d) for d in input_shape)
    if math.prod(shape) != n_features:
        received = f"X with {n_features} features"
        if len(sample_shape) > 1:
            received += f" (samples of shape {tuple(sample_shape)})"
        raise ValueError(
            f"Expected X with {math.prod(shape)} values per sample for "
            f"input_shape={shape}. Received: {received}"
        )
    if not same_image_shape(sample_shape, shape):
        raise ValueError(
            f"Expected images of shape {shape} for input_shape={shape}, or "
            f"rows of {n_features} values. Received: X with samples of shape "
            f"{tuple(sample_shape)}"
        )
    return shape


def same_image_shape(received, expected):
    """Whether samples of shape ``received`` fit a network for ``expected``.

    Flat rows fit any shape with as many values, and so does anything fed to
    a network for flat rows; images must have the network's height and width
    (a trailing channel of 1 may be there or not), never merely as many pixels.
    """
    if len(received) < 2 or len(expected) < 2:
        return True

    def without_channel(shape):
        shape = tuple(shape)
        return shape[:-1] if len(shape) == 3 and shape[-1] == 1 else shape

    return without_channel(received) == without_channel(expected)


def row_batches(X):
    """``(start, dense batch)`` of X: slices in memory, reads when streamed."""
    if _dask.is_array(X):
        yield from _dask.row_batches(X)
        return
    if _streaming.is_streamable(X):
        # Rows of ~8 MB: wide rows must not make a batch of 4096 huge.
        rows = min(BATCH_ROWS, max(1, _streaming.auto_batch_rows(X.shape[1]) // 4))
        yield from _streaming.iter_batches(X, rows)
        return
    yield from _forward.row_batches(X)


def scaling_stats(X, stats):
    """Update ``stats`` (a :class:`~skae._scaling.ScalingStats`) with X's rows."""
    for _, batch in row_batches(X):
        stats.update(batch)
    return stats


def out_dtype(X):
    """The float dtype results for X come in: X's own, float64 for integers."""
    return _streaming.float_dtype(X) if _streaming.is_streamable(X) else X.dtype


def chunk_rows(X):
    """Rows read at a time for training: about 32 MB when streamed, else all."""
    if _streaming.is_streamable(X):
        return _streaming.auto_batch_rows(X.shape[1])
    return None


def row_set(X, rows, offset, scale, input_shape):
    """Training or validation rows: scaled in memory, or read a chunk at a time."""
    if _dask.is_array(X):
        rows = _dask.row_set(X, rows, offset, scale, input_shape)
        return ArrayRows(rows) if isinstance(rows, np.ndarray) else rows
    if _streaming.is_streamable(X):
        return StreamedRows(X, rows, offset, scale, input_shape)
    Xs = ((X[rows] - offset) / scale).astype(np.float32)
    return ArrayRows(Xs.reshape(len(rows), *input_shape))


class ArrayRows:
    """Training rows held in memory: the scaled float32 array, network-shaped."""

    in_memory = True

    def __init__(self, X):
        self.X = X
        self.n = X.shape[0]
        self._tensor = None
        # The rows' neighbour graph (skae._structure.Graph), for the structure
        # term; None trains on reconstruction alone.
        self.graph = None
        # The fixed edges the structure term is evaluated on (Trainer.loss),
        # drawn on first use so that every epoch's validation loss compares.
        self.eval_edges = None

    def tensor(self):
        if self._tensor is None:
            self._tensor = keras.ops.convert_to_tensor(self.X)
        return self._tensor

    def chunks(self, order, chunk_rows):
        # One chunk: the whole array, converted to a tensor once per fit.
        yield self.tensor(), order

    def batches(self, size):
        for start in range(0, self.n, size):
            yield self.X[start : start + size]

    def read(self, positions):
        return self.X[positions]


class StreamedRows:
    """Rows of an X read a chunk at a time (memmap, sparse, sliceable array-like).

    ``rows`` selects the rows of X that belong to this set (training or
    validation); each chunk is read, densified and scaled on its own, so memory
    holds one chunk, never X.
    """

    in_memory = False

    def __init__(self, X, rows, offset, scale, input_shape):
        self.X, self.rows = X, np.asarray(rows)
        self.offset, self.scale = offset, scale
        self.input_shape = tuple(input_shape)
        self.n = len(self.rows)
        self.graph = None

    def read(self, positions):
        batch = _streaming.take_rows(self.X, self.rows[positions], np.float64)
        # In place: a fresh array, and a chunk is the largest thing held.
        batch -= self.offset
        batch /= self.scale
        return batch.astype(np.float32).reshape(len(batch), *self.input_shape)

    def chunks(self, order, chunk_rows):
        for start in range(0, len(order), chunk_rows):
            positions = order[start : start + chunk_rows]
            # Read in file order (each page once; rows held out at random
            # leave self.rows out of it), train in the shuffled order: ranks
            # say where each position's row is in the chunk read.
            by_file = np.argsort(self.rows[positions], kind="stable")
            ranks = np.empty_like(by_file)
            ranks[by_file] = np.arange(len(by_file))
            yield keras.ops.convert_to_tensor(self.read(positions[by_file])), ranks

    def batches(self, size):
        for start in range(0, self.n, size):
            yield self.read(np.arange(start, min(start + size, self.n)))
