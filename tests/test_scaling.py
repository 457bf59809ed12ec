"""Input scaling (``skae._scaling``).

``ScalingStats`` a batch at a time against ``fit_scaling`` in memory, the
scaled-range check that refuses what float32 networks cannot train on, the
noise's reference RMS, and the scaling the estimator ends up with.
"""

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits

from skae import AutoencoderTransformer
from skae._pca_init import pca_basis
from skae._scaling import (
    ScalingStats,
    check_scaled_range,
    fit_scaling,
    fit_scaling_streaming,
    noise_ratio,
    noise_scale,
)
from skae._streaming import check_streamable

METHODS = [None, "center", "standard", "minmax"]
SMALL = dict(hidden_layer_sizes=(8,), epochs=5, random_state=0)


def small(**params):
    return AutoencoderTransformer(**{**SMALL, **params})


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def X(digits):
    return digits[0][:300]


class SliceOnly:
    """A store like h5py's or zarr's: shape, dtype and row slices, nothing else."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"SliceOnly takes row slices only, not {key!r}")
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
def make(tmp_path):
    """``make(kind, dense)``: dense data as an input of that kind."""
    counter = itertools.count()

    def make(kind, dense):
        if kind == "ndarray":
            return dense.copy()
        if kind == "memmap":
            name = tmp_path / f"X{next(counter)}.npy"
            mm = np.lib.format.open_memmap(
                name, mode="w+", dtype=dense.dtype, shape=dense.shape
            )
            mm[:] = dense
            mm.flush()
            del mm
            return np.load(name, mmap_mode="r")
        if kind == "slice_only":
            return SliceOnly(dense)
        fmt, _, cls = kind.partition("_")
        return getattr(sp, f"{fmt}_{cls}")(dense)

    return make


# -- ScalingStats and fit_scaling --------------------------------------------


def _assert_same_scaling(got, expected):
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.float64 and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, bool])
@pytest.mark.parametrize("kind", ["ndarray", "memmap", "slice_only", "csc_matrix"])
def test_fit_scaling_streaming_matches_fit_scaling(make, method, dtype, kind):
    dense = _data(dtype=dtype)
    X = check_streamable(make(kind, dense))
    got = fit_scaling_streaming(X, method, batch_rows=37)  # uneven: 203 = 5*37 + 18
    _assert_same_scaling(got, fit_scaling(dense, method))


def _chunks(X, sizes):
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(X)
    return [X[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("method", METHODS)
def test_updates_by_chunks_equal_the_concatenation(method):
    X = _data(500, 5)
    chunks = _chunks(X, [1, 0, 17, 250, 2, 0, 99, 131])
    expected = fit_scaling(X, method)
    rng = np.random.RandomState(0)
    for order in [range(len(chunks)), reversed(range(len(chunks))), rng.permutation(8)]:
        stats = ScalingStats()
        for i in order:
            stats.update(chunks[i])
        assert stats.n_samples_seen_ == 500
        _assert_same_scaling(stats.result(method), expected)
        np.testing.assert_allclose(stats.mean_, X.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(stats.var_, X.var(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(stats.data_min_, X.min(axis=0))
        np.testing.assert_array_equal(stats.data_max_, X.max(axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_update_equals_fit_scaling_to_round_off(dtype):
    X = _data(300, 4, dtype=dtype)
    stats = ScalingStats().update(X)
    for method in METHODS:
        for got, expected in zip(
            stats.result(method), fit_scaling(X, method), strict=True
        ):
            np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def test_data_far_from_zero_keeps_precision():
    # Merging chunk means computed from values near 1e8 would carry their
    # summation round-off into the variance (relative 1e-10 here); the spread
    # must come out as accurately as from the data moved to 0 (exactly, as
    # 1e8 + x - 1e8 is exact for these x).
    X = 1e8 + _data(400, 3)
    stats = ScalingStats()
    for chunk in _chunks(X, [100, 3, 297]):
        stats.update(chunk)
    np.testing.assert_allclose(stats.var_, (X - 1e8).var(axis=0), rtol=1e-12)
    _assert_same_scaling(stats.result("standard"), fit_scaling(X, "standard"))


@pytest.mark.parametrize("method", METHODS)
def test_constant_columns(method):
    # Values whose sums are exact, so that fit_scaling too finds no spread.
    X = _data(120, 4)
    X[:, 0] = 3.0
    X[:, 2] = 0.0
    X = np.column_stack([X, np.full(120, 0.1, dtype=np.float32)])
    expected = fit_scaling(X, method)
    assert fit_scaling(X, "standard")[1][[0, 2, 4]].tolist() == [1.0, 1.0, 1.0]
    stats = ScalingStats()
    for chunk in _chunks(X, [7, 50, 63]):
        stats.update(chunk)
    _assert_same_scaling(stats.result(method), expected)
    _assert_same_scaling(fit_scaling_streaming(X, method, batch_rows=11), expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("value", [0.0, -2.5, 7.0])
def test_constant_data_falls_back_to_unit_scale(method, value):
    X = np.full((50, 3), value)
    offset, scale = fit_scaling_streaming(X, method, batch_rows=8)
    _assert_same_scaling((offset, scale), fit_scaling(X, method))
    np.testing.assert_array_equal(scale, np.ones(3))


def test_constant_column_has_exactly_zero_variance():
    # fit_scaling's float64 mean of 1000 copies of 0.1 misses 0.1 by round-off,
    # which its std then reports as a spread of 1e-15 (and a scale of 1e-15).
    # The streaming statistics know the column is constant from its range.
    X = np.column_stack([np.full(1000, 0.1), _data(1000, 1)])
    stats = ScalingStats()
    for chunk in _chunks(X, [333, 667]):
        stats.update(chunk)
    assert stats.var_[0] == 0.0 and stats.mean_[0] == 0.1
    offset, scale = stats.result("standard")
    assert offset[0] == 0.1 and scale[0] == 1.0
    np.testing.assert_allclose(scale[1], X[:, 1].std(), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_single_sample(method):
    X = _data(1, 4)
    _assert_same_scaling(fit_scaling_streaming(X, method), fit_scaling(X, method))


def test_scaling_stats_errors():
    stats = ScalingStats()
    with pytest.raises(ValueError, match="Expected at least one update"):
        stats.result("center")
    stats.update(np.zeros((0, 3)))
    assert stats.n_samples_seen_ == 0 and stats.n_features == 3
    _assert_same_scaling(stats.result(None), (np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="at least one sample to compute"):
        stats.result("standard")
    with pytest.raises(ValueError, match=r"batch with 3 features, .* shape \(2, 4\)"):
        stats.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Expected a 2-D batch .* shape \(3,\)"):
        stats.update(np.zeros(3))
    stats.update(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"method to be None or one of .*'robust'"):
        stats.result("robust")


def test_fit_scaling_streaming_reads_nothing_it_does_not_need():
    X = Unreadable(_data(10, 3))
    _assert_same_scaling(fit_scaling_streaming(X, None), (np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="method to be None or one of"):
        fit_scaling_streaming(X, "pca")


def test_sparse_scaling_matches_dense():
    X = sp.random_array((300, 8), density=0.1, format="coo", rng=0)
    dense = X.toarray()
    X = check_streamable(X)
    for method in METHODS:
        _assert_same_scaling(
            fit_scaling_streaming(X, method, batch_rows=64), fit_scaling(dense, method)
        )


def test_partial_fit_scaling_is_that_of_all_rows_seen(X):
    ae = AutoencoderTransformer(hidden_layer_sizes=(8,), random_state=0)
    for chunk in np.array_split(X, [50, 170]):
        ae.partial_fit(chunk)
    expected = ScalingStats().update(X).result("center")
    np.testing.assert_allclose(ae.input_offset_, expected[0], rtol=1e-12)
    np.testing.assert_allclose(ae.input_scale_, expected[1], rtol=1e-12)
    assert ae.n_iter_ == 3 and ae.n_samples_seen_ == 300
    assert len(ae.history_["loss"]) == 3


# -- the scaled range ------------------------------------------------------------


@pytest.mark.parametrize("scaling", ["center", "standard", "minmax", None])
def test_values_too_large_for_the_networks_are_refused_before_training(scaling):
    # A variance of values near 1e200 overflows float64, and unscaled values
    # of 1e30 overflow float32 once squared: training would only diverge.
    X = np.random.RandomState(0).rand(40, 3)
    big = X * (1e30 if scaling is None else 1e200)
    with (
        warnings.catch_warnings(),
        pytest.raises(ValueError, match=rf"scaling={scaling!r}; divide X by"),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        small(scaling=scaling).fit(big)
    # Scaled, 1e30 is an ordinary range.
    if scaling is not None:
        ae = small(scaling=scaling, epochs=2).fit(X * 1e30)
        assert np.all(np.isfinite(ae.inverse_transform(ae.transform(X * 1e30))))


def test_binary_crossentropy_needs_unit_range_data(digits):
    with pytest.raises(ValueError, match=r"\[0, 1\].*scaling='minmax'"):
        small(loss="binary_crossentropy", scaling="center").fit(digits[0])


def test_binary_crossentropy_auto_scales_to_unit_range(digits):
    X, _ = digits
    ae = small(loss="binary_crossentropy").fit(X)
    X_hat = ae.inverse_transform(ae.transform(X))
    # Sigmoid output in [0, 1] mapped back to the data's own range [0, 16].
    assert X_hat.min() >= 0 and X_hat.max() <= 16


def test_check_scaled_range_refuses_only_what_float32_cannot_hold():
    X = np.random.RandomState(0).rand(40, 3)
    for data, scaling in [(X, "center"), (X * 1e30, "standard")]:
        stats = ScalingStats().update(data)
        offset, scale = stats.result(scaling)
        check_scaled_range(stats, offset, scale, "mse", scaling)  # no error
    stats = ScalingStats().update(X * 1e30)
    offset, scale = stats.result(None)
    with pytest.raises(ValueError, match=r"within ±1\.8e\+19 .*scaling='raw'"):
        check_scaled_range(stats, offset, scale, "mse", "raw")
    # binary_crossentropy needs [0, 1]: "minmax" gives it, "center" does not.
    stats = ScalingStats().update(X)
    check_scaled_range(stats, *stats.result("minmax"), "binary_crossentropy", "auto")
    with pytest.raises(ValueError, match=r"\[0, 1\].*scaling='center'"):
        check_scaled_range(
            stats, *stats.result("center"), "binary_crossentropy", "center"
        )


# -- the noise's scale, per feature -------------------------------------------


@pytest.mark.parametrize("scaling", ["center", "standard", "minmax"])
def test_noise_scale_is_each_scaled_features_spread(digits, scaling):
    X, _ = digits
    stats = ScalingStats().update(X)
    offset, scale = stats.result(scaling)
    expected = ((X - offset) / scale).std(axis=0)
    assert noise_scale(stats, scale) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert noise_ratio(stats, scale, None, 8) == 1.0


@pytest.mark.parametrize("with_basis", [False, True])
def test_noise_scale_of_the_structures_recipe_is_the_rms_of_all(digits, with_basis):
    X, _ = digits
    stats = ScalingStats().update(X)
    offset, scale = stats.result("center")
    basis = pca_basis((X - offset) / scale, 8, random_state=0) if with_basis else None
    spread = noise_scale(stats, scale, basis, 8)
    rms = noise_scale(stats, scale, basis, 8, per_feature=False)
    np.testing.assert_allclose(rms, np.sqrt(np.mean(spread**2)), rtol=1e-12)
    assert rms.shape == spread.shape == (64,)


def test_noise_scale_spares_the_small_columns_of_a_raw_table():
    # Columns in units six orders of magnitude apart: noise of one global
    # size would be a thousand times the small columns' whole spread.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4)) * [1e3, 1.0, 1e-2, 1e-3]
    stats = ScalingStats().update(X)
    _, scale = stats.result("center")
    noise = noise_scale(stats, scale) * scale
    assert noise == pytest.approx(X.std(axis=0), rel=1e-9)


@pytest.mark.parametrize("n_components", [2, 8, 32])
def test_a_pca_starts_noise_is_what_pca_leaves_unexplained(digits, n_components):
    X, _ = digits
    stats = ScalingStats().update(X)
    offset, scale = stats.result("center")
    Xs = (X - offset) / scale
    basis = pca_basis(Xs, n_components, random_state=0)
    pca_noise = noise_scale(stats, scale, basis, n_components)
    residual = Xs - (Xs - basis.mean) @ basis.components.T @ basis.components
    residual -= basis.mean
    # Each feature's spread that PCA's axes leave (with PCA's ddof=1).
    expected = residual.std(axis=0, ddof=1)
    assert pca_noise == pytest.approx(expected, rel=1e-6, abs=1e-7)
    whole = noise_scale(stats, scale)
    ratio = noise_ratio(stats, scale, basis, n_components)
    spread = whole > 0
    assert ratio[spread] == pytest.approx(pca_noise[spread] / whole[spread], rel=1e-12)
    # Constant pixels get no noise at all.
    assert np.all(ratio[~spread] == 0)
    # The wider the code, the less is left: a 32-unit code leaves under half.
    if n_components == 32:
        assert np.sum(pca_noise**2) < 0.25 * np.sum(whole**2)
