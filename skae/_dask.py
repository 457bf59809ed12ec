"""Dask collections: read a block at a time to fit, mapped blockwise to transform.

Dask stays optional: nothing here imports it unless the input is already a
Dask collection (whose module is then loaded), so ``import skae`` costs nothing
without it.

Fitting reads a Dask array one block of rows at a time, each block computed
once per pass over the data, in a seeded block order, a few blocks ahead of
training (on the cluster when a ``dask.distributed`` client is active): the
scaling statistics, the PCA start and each epoch are one pass each; the
validation rows, when they are small, are read once and kept in memory.

``transform``, ``inverse_transform``, ``score_samples`` (and ``fit_transform``)
of a Dask collection return a lazy Dask collection of the same length, each
block computed on the workers by what enters the graph once as one key
(shipped once to each worker, not once per block): for networks the NumPy
path runs (the built-in dense ones), a :class:`skae._forward.Forward` (the
scaling and a copy of the weights), so that a worker imports neither Keras
nor TensorFlow; for any other network, or under ``inference_path("keras")``,
the fitted estimator itself.
"""

import functools
import inspect
import math
import pickle
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from . import _devices, _forward, _pca_init, _streaming

# Row sets of at most this many bytes (as float32) are read once into memory;
# larger ones stay on the cluster and are read a block at a time. The
# validation rows of 200k x 784 (63 MB) fit, 2M x 784 do not.
IN_MEMORY_BYTES = 128 * 2**20

# Groups of blocks computed ahead of the one being trained on: one group
# trains while the next is computed.
AHEAD = 2


def is_collection(X):
    """Whether X is a Dask collection (checked without importing Dask)."""
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(X)


def is_array(X):
    """Whether X is a :class:`dask.array.Array`."""
    return is_collection(X) and type(X).__module__.startswith("dask.array")


def is_frame(X):
    """Whether X is a Dask DataFrame (or Series)."""
    # The type's attribute: a Delayed answers any attribute with a Delayed.
    return is_collection(X) and hasattr(type(X), "columns")


# -- fitting: validation -------------------------------------------------------


def as_fit_array(X):
    """``(array, names)``: X as a 2-D Dask array of known chunk sizes to fit on.

    A Dask DataFrame becomes an array (computing its partitions' lengths, one
    pass); ``names`` then carries its column names (as an object with
    ``columns``, which scikit-learn's feature-name check reads), else None.
    Other Dask collections are refused, and so are arrays of unknown chunk
    sizes and of more than two dimensions (which the in-memory path would
    compute whole).
    """
    names = None
    if is_frame(X):
        if X.ndim != 2:
            raise ValueError(
                "Expected a 2-D X (a Dask DataFrame, not a Series). Received: X "
                f"of type {type(X).__name__}"
            )
        names = _empty_frame(X)
        X = X.to_dask_array(lengths=True)
    if not is_array(X):
        raise TypeError(
            "Expected X to be a Dask array or DataFrame among Dask collections. "
            f"Received: X of type {type(X).__name__}"
        )
    if X.ndim != 2:
        raise ValueError(
            "Expected a 2-D Dask X of shape (n_samples, n_features) to fit on. "
            f"Received: X with shape {X.shape}; for images, reshape them to rows "
            "first (X.reshape(len(X), -1)) and pass input_shape."
        )
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "Expected a Dask X with known chunk sizes along the samples, to split "
            "and stream its rows. Received: X with shape "
            f"{X.shape} and chunks {_short(X.chunks)}. Call "
            "X.compute_chunk_sizes() (one pass over X) or pass lengths=True to "
            "to_dask_array()."
        )
    return X, names


def _empty_frame(X):
    """A pandas frame of no rows with the Dask DataFrame's columns, for
    scikit-learn's feature-name check."""
    import pandas as pd

    return pd.DataFrame(columns=list(X.columns))


def _short(chunks):
    return tuple(c if len(c) <= 4 else (*c[:3], "...") for c in chunks)


# -- fitting: reading blocks -------------------------------------------------


def boundaries(X):
    """Row offsets of X's blocks: block b holds rows bounds[b] to bounds[b + 1]."""
    return np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.intp)


def compute_block(X, b, bounds, dtype, estimator_name=None):
    """Rows of block ``b`` of X, computed, as a C-ordered array of ``dtype``.

    Raises ``ValueError`` naming the block when it holds NaN or infinity.
    """
    start, stop = int(bounds[b]), int(bounds[b + 1])
    # A slice of rows, not X.blocks[b]: it holds every feature chunk too.
    block = np.asarray(X[start:stop].compute())
    try:
        block = _streaming._checked(block, dtype, False, "X", estimator_name)
    except ValueError as exc:
        raise ValueError(
            f"{exc} Found in block {b} of the Dask array X (rows {start} to "
            f"{stop}); no data of this call was kept."
        ) from None
    if block.ndim != 2:
        block = block.reshape(len(block), -1)
    return block


def computed(X, blocks, dtype, ahead=AHEAD):
    """Yield ``(b, rows of block b)`` for the blocks in ``blocks``, in order.

    Up to ``ahead`` blocks are computed ahead of the one yielded (by Dask's
    scheduler: the cluster's when a distributed client is active), so the
    caller's work on one block overlaps the computation of the next.
    """
    bounds = boundaries(X)
    blocks = [int(b) for b in blocks]
    if not blocks:
        return
    with ThreadPoolExecutor(max(1, ahead)) as pool:
        pending = [
            pool.submit(compute_block, X, b, bounds, dtype) for b in blocks[:ahead]
        ]
        for i, b in enumerate(blocks):
            block = pending.pop(0).result()
            if i + ahead < len(blocks):
                nxt = blocks[i + ahead]
                pending.append(pool.submit(compute_block, X, nxt, bounds, dtype))
            yield b, block


def row_batches(X):
    """``(start, block)`` for every block of X in order: one pass over X."""
    bounds = boundaries(X)
    dtype = _streaming.float_dtype(X)
    for b, block in computed(X, range(len(bounds) - 1), dtype):
        yield int(bounds[b]), block


def fits_in_memory(n_rows, n_features):
    """Whether ``n_rows`` rows are small enough to read once and keep."""
    return n_rows * n_features * 4 <= IN_MEMORY_BYTES


def gather(X, rows, offset, scale):
    """Rows ``rows`` of X (in that order), scaled, as float32.

    One pass over the blocks that hold them.
    """
    rows = np.asarray(rows)
    bounds = boundaries(X)
    which = np.searchsorted(bounds, rows, side="right") - 1
    out = np.empty((len(rows), int(np.prod(X.shape[1:]))), np.float32)
    needed = np.unique(which)
    for b, block in computed(X, needed, _streaming.float_dtype(X)):
        mask = which == b
        part = block[rows[mask] - bounds[b]]
        out[mask] = (part - offset) / scale
    return out


class DaskRows:
    """Rows of a Dask array read a block at a time (the row set protocol).

    The rows are held sorted: position ``p`` is the ``p``-th smallest row
    index, so that reading positions in order reads each block once. An
    epoch (``chunks``) takes the blocks in an order drawn from the epoch's
    shuffled positions (the block of each position, by first appearance),
    groups consecutive blocks into chunks of at least ``chunk_rows`` rows and
    trains on each chunk's rows in the shuffled order: each block is computed
    once per epoch, and rows are shuffled within a chunk, not across chunks.
    """

    in_memory = False

    def __init__(self, X, rows, offset, scale, input_shape):
        self.X = X
        self.rows = np.sort(np.asarray(rows, dtype=np.intp))
        self.offset, self.scale = offset, scale
        self.input_shape = tuple(input_shape)
        self.n = len(self.rows)
        self.graph = None
        self._bounds = boundaries(X)
        self._block = np.searchsorted(self._bounds, self.rows, side="right") - 1
        self._cache = {}
        # Blocks are held in X's float dtype (float32 for float32 X: half
        # the memory) and scaled in float64 a block at a time, as in memory.
        self._dtype = _streaming.float_dtype(X)

    def _fill(self, n, blocks, owners, rows):
        """Scaled float32 rows: row ``rows[i]`` of block ``owners[i]``."""
        out = np.empty((n, self.X.shape[1]), np.float32)
        for b, block in blocks.items():
            where = np.flatnonzero(owners == b)
            # In slices: the float64 temporaries stay a few MB.
            for start in range(0, len(where), 4096):
                at = where[start : start + 4096]
                part = block[rows[at] - self._bounds[b]].astype(np.float64)
                part -= self.offset
                part /= self.scale
                out[at] = part
        return out.reshape(n, *self.input_shape)

    def _compute(self, b):
        # Keeps the last two blocks: reads in order (the PCA start, the
        # evaluation batches) straddle at most one boundary at a time.
        if b not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[b] = compute_block(self.X, b, self._bounds, self._dtype)
        return self._cache[b]

    def read(self, positions):
        positions = np.asarray(positions, dtype=np.intp)
        rows, owners = self.rows[positions], self._block[positions]
        blocks = {int(b): self._compute(int(b)) for b in np.unique(owners)}
        return self._fill(len(positions), blocks, owners, rows)

    def chunks(self, order, chunk_rows):
        order = np.asarray(order)
        self._cache.clear()
        blocks_in_order = self._block[order]
        _, first = np.unique(blocks_in_order, return_index=True)
        sequence = blocks_in_order[np.sort(first)]
        counts = np.bincount(self._block, minlength=len(self._bounds) - 1)
        groups, group, size = [], [], 0
        for b in sequence:
            group.append(int(b))
            size += int(counts[b])
            if chunk_rows is None or size >= chunk_rows:
                groups.append(group)
                group, size = [], 0
        if group:
            groups.append(group)
        flat = [b for g in groups for b in g]
        ahead = AHEAD * max(map(len, groups))
        blocks = computed(self.X, flat, self._dtype, ahead=ahead)
        for group in groups:
            data = {b: next(blocks)[1] for b in group}
            positions = order[np.isin(blocks_in_order, group)]
            rows, owners = self.rows[positions], self._block[positions]
            # No reference kept to the array: the tensor is the chunk's copy.
            tensor = keras.ops.convert_to_tensor(
                self._fill(len(positions), data, owners, rows)
            )
            del data
            yield tensor, np.arange(len(positions))

    def batches(self, size):
        # Block by block, then in slices of ``size`` rows.
        self._cache.clear()
        present = np.unique(self._block)
        for b, block in computed(self.X, present, self._dtype):
            rows = self.rows[self._block == b]
            for start in range(0, len(rows), size):
                part = rows[start : start + size]
                owners = np.full(len(part), b)
                yield self._fill(len(part), {b: block}, owners, part)


def basis_of_rows(rows, n_components, random_state=None):
    """PCA's basis of a row set (:func:`skae._pca_init.basis_of_rows`).

    For Dask rows of up to 1,000 features, exact and in one pass: the
    eigenvectors of the covariance summed block by block in float64, the
    solver (``covariance_eigh``) and sign convention of the in-memory path,
    where the incremental PCA streamed rows otherwise get takes an SVD per
    1,337 rows (77 s of a 92 s fit of 50,000 x 784 rows).
    """
    n_features = math.prod(getattr(rows, "input_shape", ()))
    if not isinstance(rows, DaskRows) or n_features > 1000:
        return _pca_init.basis_of_rows(rows, n_components, random_state)
    n = rows.n
    if n < 2:
        raise ValueError(
            "Expected at least 2 training samples to compute PCA's basis. "
            f"Received: {n} sample(s)"
        )
    total, gram = np.zeros(n_features), np.zeros((n_features, n_features))
    for xb in rows.batches(4096):
        xb = xb.reshape(len(xb), -1).astype(np.float64)
        total += xb.sum(axis=0)
        gram += xb.T @ xb
    mean = total / n
    cov = (gram - n * np.outer(mean, mean)) / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    values, axes = np.maximum(values[::-1], 0.0), vectors[:, ::-1].T
    # scikit-learn's svd_flip(u_based_decision=False): each axis's largest
    # entry positive.
    largest = axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)]
    axes *= np.where(largest < 0, -1.0, 1.0)[:, None]
    n_components = min(n, n_features) if n_components is None else n_components
    k = min(n_components, n, n_features)
    variance = np.diag(cov).copy()
    whole = float(np.sum(variance))
    ratio = values[:k] / whole if whole > 0 else np.zeros(k)
    return _pca_init._basis(axes[:k], mean, values[:k], ratio, variance, n_components)


def row_set(X, rows, offset, scale, input_shape):
    """Small row sets as a scaled float32 array (read once), else :class:`DaskRows`."""
    if fits_in_memory(len(rows), int(np.prod(X.shape[1:]))):
        # In the order given, as the in-memory path holds them: the fit is
        # then the in-memory fit of the same rows.
        rows = np.asarray(rows, dtype=np.intp)
        return gather(X, rows, offset, scale).reshape(len(rows), *input_shape)
    return DaskRows(X, rows, offset, scale, input_shape)


# -- inference: blockwise ----------------------------------------------------


METHODS = ("transform", "inverse_transform", "score_samples")


def install(cls):
    """Let ``cls``'s inference methods map Dask collections blockwise.

    Wraps the methods as set by scikit-learn's ``set_output`` machinery, so
    that a Dask collection bypasses the in-memory containers: the result is a
    Dask array, or a Dask DataFrame for a Dask DataFrame and pandas output.
    """
    for name in (*METHODS, "fit_transform"):
        setattr(cls, name, _dispatching(getattr(cls, name), name))
    return cls


def _dispatching(method, name):
    @functools.wraps(method)
    def dispatch(self, X, *args, **kwargs):
        if not is_collection(X):
            return method(self, X, *args, **kwargs)
        if name == "fit_transform":
            return self.fit(X, *args, **kwargs).transform(X)
        return blockwise(self, name, X)

    return dispatch


def blockwise(estimator, method, X, *, names_checked=False):
    """``estimator.<method>(X)`` for a Dask collection X, lazily, block by block."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    if is_frame(X):
        return _frame_blockwise(estimator, method, X)
    if not is_array(X):
        raise TypeError(
            f"Expected X to be a Dask array or DataFrame for {method}. Received: X "
            f"of type {type(X).__name__}"
        )
    import dask.array as da

    if X.ndim < 2 or X.dtype.kind not in "biuf":
        raise ValueError(
            f"Expected a Dask array X of 2 or more dimensions with a real numeric "
            f"dtype. Received: X with shape {X.shape} and dtype {X.dtype}"
        )
    if method == "inverse_transform":
        width = estimator.n_components_
        sample_shape = tuple(estimator._sample_shape)
    else:
        width = estimator.n_features_in_
        sample_shape = (estimator.n_components_,) if method == "transform" else ()
    if X.ndim == 2 and X.shape[1] != width:
        raise ValueError(
            f"Expected X with {width} features. Received: X with shape {X.shape}"
        )
    if method != "inverse_transform" and not names_checked:
        from sklearn.utils.validation import _check_feature_names

        # Here, once, rather than a warning from every block.
        _check_feature_names(estimator, X, reset=False)
    dtype = np.dtype(np.float64) if method == "score_samples" else _out_dtype(X)
    # Rows only: images are checked against the fitted shape by the estimator.
    forward = _numpy_forward(estimator, method) if X.ndim == 2 else None
    function = _apply if forward is None else _forward.apply_block
    model = _shipped(estimator if forward is None else forward)
    letters = "abcdefgh"
    index_in = "i" + letters[: X.ndim - 1]
    index_out = "i" + "stuvwxyz"[: len(sample_shape)]
    # Feature chunks are concatenated into each block (concatenate=True):
    # features chunked apart are handled, at the cost of one larger block.
    return da.blockwise(
        function,
        index_out,
        X,
        index_in,
        model,
        None,
        method,
        None,
        new_axes=dict(zip(index_out[1:], sample_shape, strict=True)),
        concatenate=True,
        dtype=dtype,
        meta=np.empty((0,) * len(index_out), dtype),
    )


_NETWORKS = {
    "transform": ("encoder_",),
    "inverse_transform": ("decoder_",),
    "score_samples": ("encoder_", "decoder_"),
}


def _numpy_forward(estimator, method):
    """A :class:`skae._forward.Forward` for ``method``, or None.

    None when a network ``method`` needs runs through Keras (not mapped to
    NumPy, or ``inference_path("keras")``): the estimator is shipped then.
    """
    networks = {}
    for name in _NETWORKS[method]:
        network = estimator._inference.numpy_network(name, getattr(estimator, name))
        if network is None:
            return None
        networks[name] = network.frozen()
    return _forward.Forward(
        networks.get("encoder_"),
        networks.get("decoder_"),
        offset=estimator.input_offset_,
        scale=estimator.input_scale_,
        code_scale=estimator.code_scale_,
        sample_shape=estimator._sample_shape,
    )


def _shipped(estimator):
    """The estimator (or its Forward) as one key of the graph: sent once to
    each worker.

    With a ``dask.distributed`` client as the scheduler, it is scattered to
    every worker now (a future the result holds: later computations reuse
    it, and the graph stays small); otherwise it enters the graph as one
    delayed value.
    """
    import dask

    client = None
    if "distributed" in sys.modules and dask.config.get("scheduler", None) in (
        "dask.distributed",
        "distributed",
    ):
        from distributed import default_client

        try:
            client = default_client()
        except ValueError:
            client = None
    if client is None:
        return dask.delayed(estimator, pure=True, traverse=False)
    if isinstance(estimator, _forward.Forward):
        return client.scatter(estimator, broadcast=True, hash=True)
    pickled = Pickled(estimator)
    key = f"{type(estimator).__name__}-{dask.base.tokenize(pickled.data)}"
    return client.scatter({key: pickled}, broadcast=True)[key]


class Pickled:
    """An estimator as the bytes of its pickle, unpickled on first use.

    Scattering to every worker sends it to one, which passes it on to the
    others: pickling its Keras models again there would import TensorFlow
    (Keras' serialisation checks for TensorFlow's types through a lazy
    module, ``tf.available`` in ``keras/src/saving/serialization_lib.py``),
    even on workers whose Keras runs on JAX or PyTorch. A worker passes
    these bytes on instead.
    """

    def __init__(self, estimator):
        try:
            self.data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            # User networks defined in a notebook or a lambda.
            import cloudpickle

            self.data = cloudpickle.dumps(estimator)
        self._lock = threading.Lock()
        self._estimator = None

    def __reduce__(self):
        return _unpickled, (self.data,)

    def get(self):
        """The estimator, unpickled once per process."""
        with self._lock:
            if self._estimator is None:
                self._estimator = pickle.loads(self.data)
            return self._estimator


def _unpickled(data):
    pickled = Pickled.__new__(Pickled)
    pickled.data = data
    pickled._lock = threading.Lock()
    pickled._estimator = None
    return pickled


def _out_dtype(X):
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def _apply(block, estimator, method):
    """The estimator's method on one computed block, as an array."""
    _devices.configure()
    if isinstance(estimator, Pickled):
        estimator = estimator.get()
    block = np.asarray(block)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and method != "inverse_transform" and block.ndim == 2:
        import pandas as pd

        # Checked once by the caller, on the whole X.
        block = pd.DataFrame(block, columns=names, copy=False)
    unwrapped = inspect.unwrap(getattr(type(estimator), method))
    try:
        return np.asarray(unwrapped(estimator, block))
    except ValueError as exc:
        raise ValueError(
            f"{exc} (in a block of {len(block)} rows of the Dask X)"
        ) from None


def _frame_blockwise(estimator, method, X):
    import pandas as pd
    from sklearn.utils._set_output import _get_output_config
    from sklearn.utils.validation import _check_feature_names

    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D X (a Dask DataFrame, not a Series) for {method}. "
            f"Received: X of type {type(X).__name__}"
        )
    if method != "inverse_transform":
        _check_feature_names(estimator, _empty_frame(X), reset=False)
    output = _get_output_config("transform", estimator)["dense"]
    if method == "transform" and output == "pandas":
        columns = list(estimator.get_feature_names_out())
        dtype = _common_dtype(X)
        meta = pd.DataFrame({c: np.empty(0, dtype) for c in columns}, columns=columns)
        forward = _numpy_forward(estimator, method)
        if forward is None:
            model = _shipped(estimator)
            return X.map_partitions(_apply_frame, model, method, meta=meta)
        model = _shipped(forward)
        return X.map_partitions(_forward.apply_frame, model, method, columns, meta=meta)
    if method == "transform" and output not in ("default", None):
        raise ValueError(
            "Expected set_output(transform='pandas' or 'default') for a Dask "
            f"DataFrame X. Received: transform={output!r}"
        )
    return blockwise(estimator, method, X.to_dask_array(), names_checked=True)


def _common_dtype(X):
    dtypes = {np.dtype(t) for t in X.dtypes}
    return np.dtype(np.float32) if dtypes == {np.dtype(np.float32)} else np.float64


def _apply_frame(part, estimator, method):
    import pandas as pd

    _devices.configure()
    if isinstance(estimator, Pickled):
        estimator = estimator.get()
    unwrapped = inspect.unwrap(getattr(type(estimator), method))
    out = np.asarray(unwrapped(estimator, part))
    return pd.DataFrame(
        out, index=part.index, columns=list(estimator.get_feature_names_out())
    )
