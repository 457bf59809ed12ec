"""Input: X validated as rows or images, in memory or streamed (``skae._input``).

What ``fit``, ``partial_fit`` and ``transform`` accept and refuse (rows,
images, frames, memmaps, sparse matrices, sliceable array-likes), and the row
sets training reads: ``row_set``, ``ArrayRows`` and ``StreamedRows``.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import skae._input
from skae import AutoencoderTransformer, _streaming
from skae._input import ArrayRows, StreamedRows, row_batches, row_set, validate
from skae.datasets import load_digits

# Tiny but real networks: what is tested here is what they are given.
TINY = dict(hidden_layer_sizes=(4,), epochs=2, random_state=0)
SMALL = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)
STRUCTURED = dict(hidden_layer_sizes=(16,), epochs=3, batch_size=32, random_state=0)


def small(**params):
    return AutoencoderTransformer(**{**SMALL, **params})


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data[:300], data.images[:300]


@pytest.fixture(scope="module")
def X(digits):
    return digits[0]


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return small().fit(X)


# -- rows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "infinity"),
        (np.array([["a", "b"], ["c", "d"]]), "could not convert|dtype"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones((1, 3)), "1 sample"),
        (np.ones((4, 3, 2)), r"Expected a 2-D X.*Received: X with shape \(4, 3, 2\)"),
        (np.ones(5), "2D array"),
    ],
    ids=["nan", "inf", "strings", "empty", "one-sample", "3d", "1d"],
)
def test_fit_rejects_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        small().fit(X)


def test_transform_rejects_other_feature_count(fitted):
    with pytest.raises(ValueError, match="64 features"):
        fitted.transform(np.zeros((3, 10)))


def test_transform_rejects_nan(fitted):
    X = np.zeros((3, 64))
    X[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_rows_skip_the_full_check_with_the_same_result(
    fitted, X, dtype, monkeypatch
):
    # A float ndarray of the fitted width, finite: validate_data would return
    # it as it is, so transform does without its ~60 us a call.
    rows = X[:5].astype(dtype)
    expected = fitted.transform(rows)
    with monkeypatch.context() as patch:

        def not_called(*args, **kwargs):
            raise AssertionError("validate_data was called")

        patch.setattr(skae._input, "validate_data", not_called)
        assert validate(fitted, rows, reset=False)[0] is rows
        np.testing.assert_array_equal(fitted.transform(rows), expected)
    # Anything else goes through validate_data, which explains.
    X_inf = rows.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        validate(fitted, X_inf, reset=False)
    with pytest.raises(ValueError, match="64 features"):
        validate(fitted, rows[:, :10], reset=False)
    with pytest.raises(ValueError, match="0 sample"):
        validate(fitted, rows[:0], reset=False)
    converted = validate(fitted, rows.astype(np.float16), reset=False)[0]
    assert converted.dtype == np.float64


def test_rows_without_the_fitted_feature_names_still_warn(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(64)])
    ae = AutoencoderTransformer(**TINY).fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        ae.transform(X[:3])


def test_integer_input_is_accepted(digits):
    X = digits[0].astype(np.int64)
    assert small().fit(X).transform(X).dtype == np.float64


@pytest.mark.parametrize("fill_value", [0.0, np.nan])
def test_all_sparse_pandas_columns_are_taken_as_their_values(digits, fill_value):
    # scikit-learn turns such a frame into a SciPy matrix (which fails for a
    # fill value other than 0) and validate_data then refuses it as sparse.
    pd = pytest.importorskip("pandas")
    X = digits[0][:100]
    frame = pd.DataFrame(
        {
            f"px{i}": pd.arrays.SparseArray(X[:, i], fill_value=fill_value)
            for i in range(64)
        }
    )
    ae = small(epochs=2).fit(frame)
    np.testing.assert_array_equal(ae.feature_names_in_, frame.columns)
    # As for any frame, its column-major values sum in another order: equal
    # to round-off.
    dense = small(epochs=2).fit(X)
    np.testing.assert_allclose(ae.transform(frame), dense.transform(X), atol=1e-9)
    assert ae.score(frame) == pytest.approx(dense.score(X), rel=1e-9)


# -- images --------------------------------------------------------------------


def test_dense_rejects_images_with_a_clear_error(digits):
    _, images = digits
    with pytest.raises(ValueError, match=r"Expected a 2-D X .* input_shape"):
        AutoencoderTransformer(**TINY).fit(images)
    ae = AutoencoderTransformer(**TINY).fit(images.reshape(len(images), -1))
    with pytest.raises(ValueError, match="Expected a 2-D X"):
        ae.transform(images)


def test_dense_with_input_shape_takes_and_gives_images(digits):
    X, images = digits
    ae = AutoencoderTransformer(input_shape=(8, 8), **TINY).fit(images)
    assert ae.n_features_in_ == 64
    assert ae.input_shape_ == (8, 8)
    Z = ae.transform(images)
    np.testing.assert_array_equal(ae.transform(X), Z)
    assert ae.inverse_transform(Z).shape == (300, 8, 8)
    assert ae.score_samples(images).shape == (300,)


def test_input_shape_must_match_the_features(digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"784 values per sample.*64 features"):
        AutoencoderTransformer(input_shape=(28, 28), **TINY).fit(X)
    with pytest.raises(ValueError, match="tuple of positive integers"):
        AutoencoderTransformer(input_shape=(8, -8), **TINY).fit(X)


def test_images_of_another_shape_are_refused_not_reshaped(digits):
    # As many pixels in another layout would scramble what a conv layer sees.
    _, images = digits
    wrong = images.reshape(len(images), 4, 16)
    ae = AutoencoderTransformer(architecture="conv", **TINY).fit(images)
    with pytest.raises(ValueError, match=r"images of shape \(8, 8\).*\(300, 4, 16\)"):
        ae.transform(wrong)
    with pytest.raises(ValueError, match=r"images of shape \(8, 8\)"):
        ae.partial_fit(wrong)
    # A trailing channel of 1 is the same image.
    np.testing.assert_array_equal(ae.transform(images[..., None]), ae.transform(images))
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8\).*\(4, 16\)"):
        AutoencoderTransformer(input_shape=(8, 8), **TINY).fit(wrong)


@pytest.mark.parametrize(
    ("shape", "input_shape"),
    [((8, 8), None), ((8, 8, 1), None), ((64,), (8, 8)), ((64,), (8, 8, 1))],
)
def test_conv_accepts_images_or_flat_rows(digits, shape, input_shape):
    X, _ = digits
    data = X.reshape(len(X), *shape)
    ae = AutoencoderTransformer(
        architecture="conv", input_shape=input_shape, **TINY
    ).fit(data)
    assert ae.n_features_in_ == 64
    assert ae.input_shape_ == (input_shape or shape)
    Z = ae.transform(data)
    assert Z.shape == (300, 2)
    # Images in, images out; rows in, rows out.
    assert ae.inverse_transform(Z).shape == data.shape
    # Flat rows or images of the same pixels encode the same.
    np.testing.assert_array_equal(ae.transform(X), Z)
    assert ae.score_samples(data).shape == (300,)
    assert ae.__sklearn_tags__().input_tags.three_d_array


# -- streamed input -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memmap", "csr", "csc"])
def test_streamed_fit_matches_in_memory_fit(kind, X, memmap_of):
    # A random start: PCA's axes of streamed rows come from IncrementalPCA,
    # equal to PCA's in memory only to round-off; code_l1 keeps the trained
    # networks rather than PCA's.
    params = {**SMALL, "init": "random", "code_l1": 1e-12}
    expected = AutoencoderTransformer(**params).fit(X)
    data = memmap_of(X) if kind == "memmap" else getattr(sp, f"{kind}_matrix")(X)
    ae = AutoencoderTransformer(**params).fit(data)
    # One chunk holds all 300 rows: the same batches, hence the same weights.
    assert ae.solution_ is expected.solution_ is None
    np.testing.assert_array_equal(ae.transform(X), expected.transform(X))
    # From the PCA start, the same to round-off.
    expected = AutoencoderTransformer(**SMALL).fit(X)
    ae = AutoencoderTransformer(**SMALL).fit(data)
    Z = expected.transform(X)
    np.testing.assert_allclose(ae.transform(X), Z, atol=1e-4 * np.abs(Z).max())
    # Streamed or in memory, the input transforms and scores the same.
    np.testing.assert_array_equal(ae.transform(data), ae.transform(X))
    assert ae.score(data) == pytest.approx(ae.score(X), rel=1e-12)
    assert ae.n_features_in_ == 64 and not hasattr(ae, "feature_names_in_")


def test_memmap_fit_stays_far_below_the_data_size(tmp_path):
    # 160 MB of float64 on disk; a fit reads it ~32 MB at a time.
    rng = np.random.RandomState(0)
    shape = (10000, 2000)
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float64, shape)
    for start in range(0, shape[0], 1000):
        mm[start : start + 1000] = rng.rand(1000, shape[1])
    mm.flush()
    del mm
    X = np.load(tmp_path / "big.npy", mmap_mode="r")
    ae = AutoencoderTransformer(hidden_layer_sizes=(4,), epochs=1, random_state=0)
    tracemalloc.start()
    try:
        ae.fit(X)
        Z = ae.transform(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Z.shape == (10000, 2) and np.isfinite(Z).all()
    assert peak < 0.5 * X.nbytes, f"peak {peak / 2**20:.0f} MB"


def test_sparse_nan_is_reported_when_read(X):
    data = sp.csr_matrix(X)
    data.data[5] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        AutoencoderTransformer(**SMALL).fit(data)


def test_streamed_transform_checks_feature_count(X, tmp_path):
    ae = AutoencoderTransformer(**SMALL).fit(X)
    with pytest.raises(ValueError, match="Expected X with 64 features"):
        ae.transform(sp.csr_matrix(X[:, :10]))


def test_streamed_rows_wider_than_a_batch_are_read_one_at_a_time(monkeypatch):
    # Over 2**20 features a quarter of auto_batch_rows is 0 rows; here 3 rows
    # of 5 features make the batch size, a quarter of which is 0 rows too.
    monkeypatch.setattr(_streaming, "_BATCH_BYTES", 3 * 8 * 5)
    assert _streaming.auto_batch_rows(5) == 3
    X = sp.csr_matrix(np.eye(5))
    batches = list(row_batches(X))
    assert [start for start, _ in batches] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.vstack([b for _, b in batches]), np.eye(5))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_sparse_input_is_refused_with_structure(X, method):
    ae = AutoencoderTransformer(structure_weight=1.0, **STRUCTURED)
    with pytest.raises(ValueError, match=r"sparse.*structure_weight=1\.0"):
        getattr(ae, method)(sp.csr_matrix(X))
    assert not hasattr(ae, "encoder_")


def test_a_memmap_is_read_whole_and_fits_as_the_array(X, tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = AutoencoderTransformer(structure_weight=1.0, **STRUCTURED).fit(
        np.load(path, mmap_mode="r")
    )
    ae = AutoencoderTransformer(structure_weight=1.0, **STRUCTURED).fit(X)
    np.testing.assert_array_equal(mapped.transform(X), ae.transform(X))


# -- row sets --------------------------------------------------------------------


def _streamed(kind, X, memmap_of):
    return memmap_of(X) if kind == "memmap" else sp.csr_matrix(X)


@pytest.mark.parametrize("kind", ["memmap", "csr"])
def test_row_set_holds_arrays_in_memory_and_streams_the_rest(X, memmap_of, kind):
    rows = np.arange(0, 300, 3)
    offset, scale = X.mean(axis=0), np.full(64, 5.0)
    in_memory = row_set(X, rows, offset, scale, (64,))
    assert isinstance(in_memory, ArrayRows) and in_memory.in_memory
    assert in_memory.X.dtype == np.float32 and in_memory.X.shape == (100, 64)
    np.testing.assert_allclose(in_memory.X, (X[rows] - offset) / scale, rtol=1e-6)
    streamed = row_set(_streamed(kind, X, memmap_of), rows, offset, scale, (8, 8))
    assert isinstance(streamed, StreamedRows) and not streamed.in_memory
    assert streamed.n == in_memory.n == 100
    assert streamed.graph is None and in_memory.graph is None


@pytest.mark.parametrize("kind", ["memmap", "csr"])
def test_array_and_streamed_rows_hold_the_same_scaled_rows(X, memmap_of, kind):
    rows = np.random.RandomState(0).permutation(300)[:111]
    offset, scale = X.mean(axis=0), X.std(axis=0) + 1.0
    in_memory = row_set(X, rows, offset, scale, (8, 8))
    streamed = row_set(_streamed(kind, X, memmap_of), rows, offset, scale, (8, 8))
    positions = np.array([5, 0, 110, 5, 37])
    for got in (in_memory.read(positions), streamed.read(positions)):
        assert got.dtype == np.float32 and got.shape == (5, 8, 8)
    # The same float64 arithmetic, rounded once to float32: equal, not close.
    np.testing.assert_array_equal(streamed.read(positions), in_memory.read(positions))
    np.testing.assert_array_equal(
        np.concatenate(list(streamed.batches(7))),
        np.concatenate(list(in_memory.batches(7))),
    )
    assert [len(b) for b in streamed.batches(50)] == [50, 50, 11]
    np.testing.assert_array_equal(
        in_memory.read(np.arange(111)).reshape(111, 64),
        ((X[rows] - offset) / scale).astype(np.float32),
    )


@pytest.mark.parametrize("kind", ["in-memory", "memmap", "csr"])
def test_chunks_yield_every_row_once_in_the_given_order(X, memmap_of, kind):
    rows = np.arange(1, 300, 2)
    offset, scale = np.zeros(64), np.ones(64)
    data = X if kind == "in-memory" else _streamed(kind, X, memmap_of)
    row_set_ = row_set(data, rows, offset, scale, (64,))
    order = np.random.RandomState(1).permutation(row_set_.n)
    trained, sizes = [], []
    for chunk, ranks in row_set_.chunks(order, 64):
        chunk = chunk.numpy()
        sizes.append(len(ranks))
        # A chunk holds its rows; ``ranks`` orders them for training.
        assert len(chunk) == len(ranks)
        trained.append(chunk[ranks])
    trained = np.concatenate(trained)
    # Every row once, in the order given.
    np.testing.assert_array_equal(trained, X[rows][order].astype(np.float32))
    if kind == "in-memory":
        assert sizes == [150]  # one chunk: the whole array
    else:
        assert sizes == [64, 64, 22]
