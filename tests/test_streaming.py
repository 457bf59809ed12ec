"""Batch-at-a-time reading (``skae._streaming``): memmaps, array-likes, sparse.

The low-level readers: which inputs are streamed (``is_streamable``), their
checks without reading them (``check_streamable``), rows and batches read
(``take_rows``, ``iter_batches``) and non-finite values reported as scikit-learn
does, when read. The scaling computed from such input is in test_scaling.py.
"""

import itertools
import re
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from skae._scaling import fit_scaling_streaming
from skae._streaming import (
    auto_batch_rows,
    check_streamable,
    float_dtype,
    is_streamable,
    iter_batches,
    take_rows,
)

SPARSE_KINDS = [
    f"{fmt}_{cls}" for fmt in ("csr", "csc", "coo") for cls in ("array", "matrix")
]
KINDS = ["ndarray", "memmap", "slice_only", "h5py", *SPARSE_KINDS]


class SliceOnly:
    """A store like h5py's or zarr's: shape, dtype and row slices, nothing else.

    Records the slices read, and returns views of its data, as a careless
    wrapper might, so that tests catch batches that alias the store.
    """

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.reads = []

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"SliceOnly takes row slices only, not {key!r}")
        self.reads.append((key.start, key.stop))
        return self._data[key]


class Unreadable(SliceOnly):
    def __getitem__(self, key):
        raise AssertionError("the data was read")


def _data(n_samples=203, n_features=6, dtype=np.float64, seed=0):
    """Data with sparse-like zeros and means far from 0 (relative checks hold)."""
    rng = np.random.RandomState(seed)
    if np.dtype(dtype).kind == "b":
        return rng.rand(n_samples, n_features) < 0.3
    if np.dtype(dtype).kind in "iu":
        return rng.randint(0, 100, size=(n_samples, n_features)).astype(dtype)
    X = rng.normal(
        loc=3 + np.arange(n_features), scale=2.0, size=(n_samples, n_features)
    )
    X[rng.rand(n_samples, n_features) < 0.3] = 0.0
    return X.astype(dtype)


@pytest.fixture
def make(tmp_path, request):
    """``make(kind, dense)``: dense data as an input of that kind."""
    counter = itertools.count()

    def make(kind, dense):
        name = tmp_path / f"X{next(counter)}"
        if kind == "ndarray":
            return dense.copy()
        if kind == "memmap":
            mm = np.lib.format.open_memmap(
                f"{name}.npy", mode="w+", dtype=dense.dtype, shape=dense.shape
            )
            mm[:] = dense
            mm.flush()
            del mm
            return np.load(f"{name}.npy", mmap_mode="r")
        if kind == "slice_only":
            return SliceOnly(dense)
        if kind == "h5py":
            h5py = pytest.importorskip("h5py")
            f = h5py.File(f"{name}.h5", "w")
            request.addfinalizer(f.close)
            return f.create_dataset("X", data=dense)
        fmt, _, cls = kind.partition("_")
        return getattr(sp, f"{fmt}_{cls}")(dense)

    return make


# ---------------------------------------------------------------- is_streamable


def test_is_streamable_by_kind(make):
    dense = _data(5, 3)
    for kind in KINDS:
        assert is_streamable(make(kind, dense)) == (kind != "ndarray"), kind
    assert is_streamable(sp.coo_array(np.ones(3)))  # 1-D: check_streamable says why


def test_is_streamable_leaves_the_rest_to_validate_data(tmp_path):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    dense = _data(5, 3)
    mm3 = np.lib.format.open_memmap(
        tmp_path / "images.npy", mode="w+", dtype=np.float32, shape=(2, 3, 3)
    )

    class TorchLike(SliceOnly):  # shape and __getitem__, but no NumPy dtype
        def __init__(self, data):
            super().__init__(data)
            self.dtype = "torch.float32"

    class SeqShape(SliceOnly):  # shape must be a tuple of integers
        def __init__(self, data):
            super().__init__(data)
            self.shape = list(data.shape)

    for X in [
        dense,
        dense.tolist(),
        tuple(map(tuple, dense)),
        mm3,
        pd.DataFrame(dense),
        pl.DataFrame(dense),
        SliceOnly(np.zeros((2, 3, 3))),
        SliceOnly(np.zeros(3)),
        TorchLike(dense),
        SeqShape(dense),
        "abc",
        3.0,
    ]:
        assert not is_streamable(X), type(X)


# ------------------------------------------------------------- check_streamable


def test_check_streamable_returns_dense_inputs_as_they_are(make):
    dense = _data(7, 3, dtype=np.float32)
    for kind in ["ndarray", "memmap", "slice_only", "h5py", "csr_array", "csr_matrix"]:
        X = make(kind, dense)
        assert check_streamable(X) is X, kind
    # A float32 memmap stays one, and is read as float32 batches.
    mm = make("memmap", dense)
    checked = check_streamable(mm)
    assert isinstance(checked, np.memmap) and checked.dtype == np.float32
    assert float_dtype(checked) == np.float32
    assert take_rows(checked, [1, 0]).dtype == np.float32


@pytest.mark.parametrize("kind", SPARSE_KINDS)
def test_check_streamable_converts_sparse_to_csr_of_the_same_kind(make, kind):
    dense = _data(9, 4)
    X = make(kind, dense)
    checked = check_streamable(X)
    assert checked.format == "csr"
    assert isinstance(checked, sp.sparray) == isinstance(X, sp.sparray)
    np.testing.assert_array_equal(checked.toarray(), dense)


def test_check_streamable_reads_no_data():
    X = Unreadable(_data(5, 3))
    assert check_streamable(X, n_features=3, ensure_min_samples=2) is X


@pytest.mark.parametrize(
    "X",
    [
        np.zeros(4),
        np.zeros((2, 3, 3)),
        SliceOnly(np.zeros((2, 3, 3))),
        sp.coo_array(np.ones(3)),
    ],
    ids=["1-D", "3-D", "3-D array-like", "1-D sparse"],
)
def test_check_streamable_rejects_other_dimensions(X):
    message = (
        "Expected a 2-D X of shape (n_samples, n_features). "
        f"Received: X with shape {tuple(X.shape)}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_streamable(X)


def test_check_streamable_rejects_1d_and_3d_memmaps(tmp_path):
    for shape in [(4,), (2, 3, 3)]:
        mm = np.lib.format.open_memmap(
            tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=shape
        )
        with pytest.raises(ValueError, match="Expected a 2-D X"):
            check_streamable(mm)
        del mm


@pytest.mark.parametrize("dtype", ["U3", "S2", object, np.complex128, "M8[s]"])
def test_check_streamable_rejects_non_real_dtypes(dtype):
    X = SliceOnly(np.zeros((3, 2), dtype=dtype))
    match = r"Expected X with a real numeric dtype .* Received: X with dtype "
    with pytest.raises(ValueError, match=match):
        check_streamable(X)


def test_check_streamable_rejects_complex_memmap(tmp_path):
    mm = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=np.complex64, shape=(3, 2)
    )
    with pytest.raises(ValueError, match="dtype complex64"):
        check_streamable(mm)


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint16, np.float16, np.float32])
def test_check_streamable_accepts_real_dtypes(dtype):
    X = SliceOnly(np.zeros((3, 2), dtype=dtype))
    assert check_streamable(X) is X


def test_check_streamable_messages():
    X = SliceOnly(np.zeros((10, 3)))
    with pytest.raises(
        ValueError,
        match=r"^Expected X with 5 features, as seen in fit\. "
        r"Received: X with shape \(10, 3\)$",
    ):
        check_streamable(X, n_features=5)
    with pytest.raises(
        ValueError,
        match=r"^Expected X with at least 11 sample\(s\)\. "
        r"Received: X with shape \(10, 3\)$",
    ):
        check_streamable(X, ensure_min_samples=11)
    assert check_streamable(X, n_features=3, ensure_min_samples=10) is X
    with pytest.raises(ValueError, match=r"at least 1 feature\. .*shape \(4, 0\)"):
        check_streamable(SliceOnly(np.zeros((4, 0))))
    with pytest.raises(ValueError, match=r"Expected a 2-D X_new .*X_new with shape"):
        check_streamable(SliceOnly(np.zeros((2, 2, 2))), input_name="X_new")


@pytest.mark.parametrize("X", [42, object(), [[1.0, 2.0]]])
def test_check_streamable_rejects_objects_without_shape_and_dtype(X):
    with pytest.raises(TypeError, match=r"Expected X to be an array-like .* Received"):
        check_streamable(X)


# -------------------------------------------------------------------- take_rows

ROWS = {
    "sorted": [0, 3, 4, 5, 50, 202],
    "unsorted": [50, 3, 202, 0, 5, 4],
    "repeated": [7, 7, 3, 7, 3, 100],
    "negative": [-1, 0, -203, 5],
    "single": [11],
    "empty": [],
    "all": list(range(203)),
}


@pytest.mark.parametrize("rows", ROWS.values(), ids=ROWS.keys())
@pytest.mark.parametrize("kind", KINDS)
def test_take_rows_equals_dense_indexing(make, kind, rows):
    dense = _data()
    X = check_streamable(make(kind, dense))
    out = take_rows(X, np.array(rows, dtype=np.intp))
    expected = dense[np.array(rows, dtype=np.intp)]
    assert out.dtype == np.float64 and out.shape == expected.shape
    assert out.flags.c_contiguous and out.flags.writeable
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kind", SPARSE_KINDS)
def test_take_rows_takes_unconverted_sparse(make, kind):
    dense = _data(20, 4)
    np.testing.assert_array_equal(
        take_rows(make(kind, dense), [5, 1, 5]), dense[[5, 1, 5]]
    )


@pytest.mark.parametrize("kind", ["ndarray", "memmap", "slice_only", "csr_array"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, bool])
def test_take_rows_dtypes(make, kind, dtype):
    dense = _data(30, 4, dtype=dtype)
    X = make(kind, dense)
    rows = [9, 2, 2, 29]
    out = take_rows(X, rows)
    assert out.dtype == float_dtype(dense)
    np.testing.assert_array_equal(out, dense[rows].astype(out.dtype))
    assert take_rows(X, rows, dtype=np.float64).dtype == np.float64
    assert take_rows(X, rows, dtype=np.float32).dtype == np.float32


def test_take_rows_reads_runs_of_rows_as_slices():
    X = SliceOnly(_data(30, 3))
    take_rows(X, [20, 5, 6, 7, 2, 6])
    assert X.reads == [(2, 3), (5, 8), (20, 21)]


@pytest.mark.parametrize("kind", ["ndarray", "memmap", "slice_only"])
def test_batches_never_alias_the_input(make, tmp_path, kind):
    dense = _data(10, 3)
    X = make(kind, dense)
    if kind == "memmap":  # writable, so that an alias would change the file
        X = np.load(tmp_path / "X0.npy", mmap_mode="r+")
    for rows in ([0, 1, 2], [2, 0], [4]):
        out = take_rows(X, rows)
        out[:] = -1.0
    for _, batch in iter_batches(X, batch_rows=4):
        batch[:] = -1.0
    np.testing.assert_array_equal(np.asarray(X[0:10]), dense)


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        ([0.0, 1.0], TypeError, "1-D array of integer indices"),
        ([True, False], TypeError, "1-D array of integer indices"),
        ([[0, 1]], TypeError, r"rows with shape \(1, 2\)"),
        ([0, 10], IndexError, r"in \[-10, 10\) .* Received: rows from 0 to 10"),
        ([-11], IndexError, "Received: rows from -11 to -11"),
    ],
)
def test_take_rows_rejects_bad_rows(rows, error, match):
    with pytest.raises(error, match=match):
        take_rows(SliceOnly(_data(10, 2)), rows)


# ----------------------------------------------------------------- iter_batches


@pytest.mark.parametrize("kind", KINDS)
def test_iter_batches_covers_x_in_order(make, kind):
    dense = _data()
    X = check_streamable(make(kind, dense))
    batches = list(iter_batches(X, batch_rows=50))
    assert [start for start, _ in batches] == [0, 50, 100, 150, 200]
    assert [len(batch) for _, batch in batches] == [50, 50, 50, 50, 3]
    assert all(type(b) is np.ndarray and b.flags.c_contiguous for _, b in batches)
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), dense)


def test_iter_batches_default_batch_rows_and_dtype(make):
    dense = _data(10, 3, dtype=np.float32)
    [(start, batch)] = iter_batches(make("memmap", dense))
    assert start == 0 and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, dense)
    [(_, batch)] = iter_batches(dense, dtype=np.float64)
    assert batch.dtype == np.float64
    assert auto_batch_rows(1) * 8 <= 32 * 2**20 and auto_batch_rows(10**9) == 1


@pytest.mark.parametrize("batch_rows", [0, -3, 2.5, "10", True])
def test_iter_batches_rejects_bad_batch_rows_at_the_call(batch_rows):
    with pytest.raises(ValueError, match="Expected batch_rows to be a positive"):
        iter_batches(np.zeros((3, 2)), batch_rows=batch_rows)  # not even next()


def test_iter_batches_reads_one_slice_per_batch():
    X = SliceOnly(_data(25, 2))
    list(iter_batches(X, batch_rows=10))
    assert X.reads == [(0, 10), (10, 20), (20, 25)]


def test_misbehaving_array_like_is_reported():
    class Short(SliceOnly):
        def __getitem__(self, key):
            return super().__getitem__(key)[:1]

    X = Short(_data(10, 2))
    with pytest.raises(ValueError, match=r"Expected X\[0:5\] to be an array of shape"):
        list(iter_batches(X, batch_rows=5))
    with pytest.raises(ValueError, match=r"Expected X\[2:4\] to be an array of shape"):
        take_rows(X, [2, 3])


# ------------------------------------------------------------------ finiteness


@pytest.mark.parametrize(
    "kind", ["ndarray", "memmap", "slice_only", "h5py", "csr_array"]
)
@pytest.mark.parametrize(
    ("bad", "match"),
    [(np.nan, "Input X contains NaN."), (np.inf, "Input X contains infinity")],
)
def test_non_finite_values_raise_only_when_read(make, kind, bad, match):
    dense = _data(40, 3)
    dense[27, 1] = bad
    X = check_streamable(make(kind, dense))
    # Rows around the bad one read fine: nothing checks X whole.
    np.testing.assert_array_equal(take_rows(X, [26, 3, 28]), dense[[26, 3, 28]])
    with pytest.raises(ValueError, match=match):
        take_rows(X, [3, 27])
    starts = []
    with pytest.raises(ValueError, match=match):
        for start, _ in iter_batches(X, batch_rows=10):
            starts.append(start)
    assert starts == [0, 10]
    with pytest.raises(ValueError, match=match):
        fit_scaling_streaming(X, "center", batch_rows=10)


def test_non_finite_messages_match_sklearn():
    X = np.array([[0.0, np.nan], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        take_rows(X, [0])
    with pytest.raises(
        ValueError,
        match=r"^Input X contains NaN\.\nAutoencoderTransformer does not accept",
    ):
        take_rows(X, [0], estimator_name="AutoencoderTransformer")
    with pytest.raises(ValueError, match=r"^Input X_new contains NaN\.$"):
        take_rows(X, [0], input_name="X_new")
    with pytest.raises(
        ValueError,
        match=r"Input X contains infinity or a value too large for dtype\('float32'\)",
    ):
        next(iter_batches(np.array([[1e300, 0.0]]), dtype=np.float32))


# ---------------------------------------------------------------------- memory


def test_memmap_is_never_read_whole(tmp_path):
    # 200 MB on disk but sparse (never written), so creating it costs nothing.
    n_samples, n_features = 25_000, 1_000
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float64, shape=(n_samples, n_features)
    )
    mm[123] = 1.0
    mm[24_000] = 2.0
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    assert is_streamable(X)
    rows = np.random.RandomState(0).randint(n_samples, size=256)
    rows[:2] = [24_000, 123]

    tracemalloc.start()
    try:
        X = check_streamable(X, n_features=n_features)
        out = take_rows(X, rows)
        _, peak_take = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for start, batch in iter_batches(X, batch_rows=1_000):  # noqa: B007
            if start >= 2_000:
                break
        _, peak_iter = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert out.shape == (256, n_features) and out.nbytes == 256 * n_features * 8
    assert (
        out[0].tolist() == [2.0] * n_features and out[1].tolist() == [1.0] * n_features
    )
    assert batch.shape == (1_000, n_features)
    # A copy of X would be 200 MB; the rows are 2 MB, a batch 8 MB.
    assert peak_take < 4 * out.nbytes < X.nbytes // 20, peak_take
    # The loop variable holds one batch while the next is read: two at a time.
    assert peak_iter < out.nbytes + 3 * batch.nbytes < X.nbytes // 5, peak_iter
