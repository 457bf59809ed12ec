"""Dask collections in and out, fits read a block at a time, a real cluster."""

import collections
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer, _dask, inference_path

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float32)


@pytest.fixture(scope="module")
def fitted(digits):
    return AutoencoderTransformer(epochs=3, random_state=0).fit(digits)


@pytest.fixture
def streamed(monkeypatch):
    """Every row set of a Dask X read a block at a time, none kept in memory."""
    monkeypatch.setattr(_dask, "IN_MEMORY_BYTES", 0)


def assert_close(actual, expected):
    """Equal to float32 rounding: BLAS sums a block's rows as it sums X's."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def counting(X, chunks):
    """X as a lazy Dask array, and a Counter of each row block's computations."""
    counts = collections.Counter()

    def count(block, block_info=None):
        counts[block_info[0]["chunk-location"][0]] += 1
        return block

    return da.from_array(X, chunks=chunks).map_blocks(count, dtype=X.dtype), counts


# -- inference -----------------------------------------------------------------


@pytest.mark.parametrize("chunks", [(300, 64), (500, 20)])
def test_inference_is_lazy_and_equal_to_in_memory(fitted, digits, chunks):
    Xd = da.from_array(digits, chunks=chunks)
    Z = fitted.transform(Xd)
    assert isinstance(Z, da.Array)
    assert Z.chunks[0] == Xd.chunks[0] and Z.dtype == np.float32
    assert_close(Z.compute(), fitted.transform(digits))
    R = fitted.inverse_transform(Z)
    assert isinstance(R, da.Array) and R.shape == digits.shape
    assert_close(R.compute(), fitted.inverse_transform(fitted.transform(digits)))
    S = fitted.score_samples(Xd)
    assert isinstance(S, da.Array) and S.dtype == np.float64
    assert_close(S.compute(), fitted.score_samples(digits))
    assert fitted.score(Xd) == pytest.approx(fitted.score(digits), rel=1e-12)


def _shipped_keys(Z, prefix):
    return [k for k in dict(Z.__dask_graph__()) if str(k).startswith(prefix)]


def test_numpy_forward_enters_the_graph_once(fitted, digits):
    Xd = da.from_array(digits, chunks=(100, 64))
    Z = fitted.transform(Xd)
    assert Z.numblocks[0] == 18
    # The dense networks' NumPy pass, not the estimator (and its Keras models).
    assert len(_shipped_keys(Z, "Forward")) == 1
    assert not _shipped_keys(Z, "AutoencoderTransformer")


def test_keras_path_ships_the_estimator_once(fitted, digits):
    Xd = da.from_array(digits, chunks=(100, 64))
    with inference_path("keras"):
        Z = fitted.transform(Xd)
        S = fitted.score_samples(Xd)
    assert len(_shipped_keys(Z, "AutoencoderTransformer")) == 1
    assert not _shipped_keys(Z, "Forward")
    # Computed on the workers' default path: equal all the same.
    assert_close(Z.compute(), fitted.transform(digits))
    assert_close(S.compute(), fitted.score_samples(digits))


def test_a_worker_passes_the_estimator_on_without_pickling_keras(fitted, tmp_path):
    # Scatter's broadcast: one worker receives it, unpickles it and passes it
    # on. On JAX, pickling Keras models would import TensorFlow there.
    pytest.importorskip("jax")
    path = tmp_path / "shipped.pkl"
    path.write_bytes(pickle.dumps(_dask.Pickled(fitted)))
    code = f"""
        import os, pickle, sys
        os.environ["KERAS_BACKEND"] = "jax"
        shipped = pickle.loads(open({str(path)!r}, "rb").read())
        estimator = shipped.get()
        again = pickle.loads(pickle.dumps(shipped))
        print(again.data == shipped.data, estimator.n_components_,
              "tensorflow" in sys.modules)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["True", str(fitted.n_components_), "False"]


def test_unknown_chunk_sizes_transform(fitted, digits):
    Xd = da.from_array(digits, chunks=(300, 64))
    subset = Xd[Xd[:, 20] > 5]
    assert np.isnan(subset.shape[0])
    expected = fitted.transform(digits[digits[:, 20] > 5])
    assert_close(fitted.transform(subset).compute(), expected)


def test_fit_transform_returns_dask(digits):
    Xd = da.from_array(digits, chunks=(600, 64))
    est = AutoencoderTransformer(epochs=1, random_state=0)
    Z = est.fit_transform(Xd)
    assert isinstance(Z, da.Array)
    assert_close(Z.compute(), est.transform(digits))


def test_inference_errors(fitted, digits):
    with pytest.raises(ValueError, match=r"Expected X with 64 features"):
        fitted.transform(da.from_array(digits[:, :10], chunks=(300, 10)))
    with pytest.raises(ValueError, match="dtype"):
        fitted.transform(da.from_array(np.array([["a"] * 64]), chunks=1))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AutoencoderTransformer().transform(da.from_array(digits, chunks=(300, 64)))


# -- Dask DataFrames -----------------------------------------------------------


def test_dataframe_in_dask_out(digits):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame(digits, columns=[f"p{i}" for i in range(64)])
    ddf = dd.from_pandas(frame, npartitions=4)
    est = AutoencoderTransformer(epochs=2, random_state=0).fit(ddf)
    assert list(est.feature_names_in_) == list(frame.columns)
    reference = AutoencoderTransformer(epochs=2, random_state=0).fit(frame)
    # Small enough to be read once into memory: the in-memory fit.
    np.testing.assert_array_equal(est.transform(frame), reference.transform(frame))

    Z = est.transform(ddf)
    assert isinstance(Z, da.Array)
    assert_close(Z.compute(), est.transform(frame))

    est.set_output(transform="pandas")
    Zf = est.transform(ddf)
    assert isinstance(Zf, dd.DataFrame)
    expected = est.transform(frame)
    assert list(Zf.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(Zf.compute(), expected)

    with pytest.raises(ValueError, match="feature names"):
        est.transform(ddf.rename(columns={"p0": "other"}))


# -- fitting -------------------------------------------------------------------


@pytest.mark.parametrize("early_stopping", [False, True])
def test_fit_reads_each_block_once_per_pass(streamed, digits, early_stopping):
    Xd, counts = counting(digits, (200, 64))
    kwargs = {"epochs": 4, "random_state": 0, "early_stopping": early_stopping}
    est = AutoencoderTransformer(**kwargs).fit(Xd)
    # Passes: the scaling statistics, the PCA start, each epoch (plus, with
    # early stopping, the validation rows after each epoch and before the
    # first), a quarter of the epochs for the decoder on PCA's codes (the
    # same), and the final comparison of the candidates on the validation
    # rows.
    passes = 1 + 1 + 4 + (5 if early_stopping else 0) + 1
    passes += 1 + (2 if early_stopping else 0)
    assert set(counts) == set(range(9))
    assert set(counts.values()) == {passes}

    reference = AutoencoderTransformer(**kwargs).fit(digits)
    np.testing.assert_allclose(est.input_offset_, reference.input_offset_, rtol=1e-6)
    np.testing.assert_allclose(est.input_scale_, reference.input_scale_, rtol=1e-6)
    assert est.n_samples_seen_ == len(digits)
    # The same validation rows and PCA start (the covariance's eigenvectors,
    # summed block by block).
    assert est.validation_errors_["pca"] == pytest.approx(
        reference.validation_errors_["pca"], rel=1e-5
    )
    # Shuffled within chunks of blocks, not across X: a different but as good
    # a fit.
    assert est.score(digits) == pytest.approx(reference.score(digits), rel=0.05)


def test_reads_smaller_than_a_block_compute_it_once(streamed):
    # The PCA start reads 1,337 rows of 784 features at a time: blocks of
    # 1,500 rows are each read by two calls.
    X = np.random.RandomState(0).rand(3000, 784).astype(np.float32)
    Xd, counts = counting(X, (1500, 784))
    AutoencoderTransformer(epochs=1, random_state=0).fit(Xd)
    # Statistics, PCA start, one epoch, one for the decoder on PCA's codes,
    # the comparison of the candidates.
    assert dict(counts) == {0: 5, 1: 5}


@pytest.mark.parametrize("n_components", [3, None])
def test_basis_of_dask_rows_is_the_in_memory_pca(digits, n_components):
    from skae._pca_init import pca_basis

    offset, scale = digits.mean(axis=0), np.float64(4.0)
    rows = np.random.RandomState(0).permutation(len(digits))[:1500]
    dask_rows = _dask.DaskRows(
        da.from_array(digits, chunks=(400, 64)), rows, offset, scale, (64,)
    )
    Xs = (digits[np.sort(rows)] - offset) / scale
    expected = pca_basis(Xs.astype(np.float32), n_components, random_state=0)
    basis = _dask.basis_of_rows(dask_rows, n_components, 0)
    k = 3 if n_components else 20  # Well-separated leading axes.
    np.testing.assert_allclose(basis.components[:k], expected.components[:k], atol=1e-8)
    for field in ("mean", "explained_variance", "feature_variance"):
        np.testing.assert_allclose(basis[field], expected[field], rtol=1e-9, atol=1e-12)
    assert basis.total_variance == pytest.approx(expected.total_variance, rel=1e-12)


def test_validation_rows_read_once_into_memory(digits):
    Xd, counts = counting(digits, (200, 64))
    AutoencoderTransformer(epochs=3, early_stopping=True, random_state=0).fit(Xd)
    # Small enough: every row set is gathered once (statistics, the PCA start,
    # the training rows, the validation rows).
    assert set(counts.values()) == {4}


def test_fit_is_seeded(streamed, digits):
    Xd = da.from_array(digits, chunks=(250, 64))
    a = AutoencoderTransformer(epochs=2, random_state=3).fit(Xd)
    b = AutoencoderTransformer(epochs=2, random_state=3).fit(Xd)
    assert_close(a.transform(digits), b.transform(digits))


def test_fit_handles_feature_chunks(streamed, digits):
    a = AutoencoderTransformer(epochs=2, random_state=0)
    b = clone(a)
    a.fit(da.from_array(digits, chunks=(300, 64)))
    b.fit(da.from_array(digits, chunks=(300, 16)))
    assert_close(a.transform(digits), b.transform(digits))


def test_partial_fit_streams_blocks(streamed, digits):
    Xd, counts = counting(digits, (300, 64))
    est = AutoencoderTransformer(random_state=0)
    est.partial_fit(Xd)
    est.partial_fit(Xd[:600])
    assert est.n_samples_seen_ == len(digits) + 600
    assert est.n_iter_ == 2
    # Each call: the statistics, (the first) the PCA start, one epoch.
    assert counts[0] == 3 + 2 and counts[5] == 3


def test_nan_in_a_late_block_names_it_and_keeps_the_fit(digits):
    before = AutoencoderTransformer(epochs=2, random_state=0).fit(digits)
    codes = before.transform(digits)
    bad = digits.copy()
    bad[1700, 3] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN.*block 8 .*rows 1600 to 1797"):
        before.fit(da.from_array(bad, chunks=(200, 64)))
    assert_close(before.transform(digits), codes)
    assert before.n_iter_ == 2


def test_fit_refuses_unknown_chunks_and_images(digits):
    Xd = da.from_array(digits, chunks=(300, 64))
    with pytest.raises(ValueError, match=r"compute_chunk_sizes"):
        AutoencoderTransformer(epochs=1).fit(Xd[Xd[:, 20] > 5])
    images = da.from_array(digits.reshape(-1, 8, 8), chunks=(300, 8, 8))
    with pytest.raises(ValueError, match=r"Expected a 2-D Dask X"):
        AutoencoderTransformer(epochs=1, input_shape=(8, 8)).fit(images)
    with pytest.raises(TypeError, match="Dask array or DataFrame"):
        AutoencoderTransformer(epochs=1).fit(dask.delayed(digits))


def test_dask_ml_wrappers(digits):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    Xd = da.from_array(digits, chunks=(600, 64))
    inc = wrappers.Incremental(AutoencoderTransformer(random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        inc.fit(Xd)
    assert inc.estimator_.n_samples_seen_ == len(digits)
    assert inc.estimator_.n_iter_ == 3
    post = wrappers.ParallelPostFit(AutoencoderTransformer(epochs=1, random_state=0))
    post.fit(digits)
    Z = post.transform(Xd)
    assert isinstance(Z, da.Array)
    reference = AutoencoderTransformer(epochs=1, random_state=0).fit(digits)
    assert_close(Z.compute(), reference.transform(digits))


# -- a real cluster ------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit="2GiB",
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _worker_threads():
    import tensorflow as tf

    from skae import _devices

    return (
        _devices.worker_threads(),
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
        os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
    )


def test_cluster_transform_fit_and_threads(client, fitted, digits):
    Xd = da.from_array(digits, chunks=(300, 64))
    # Blockwise on the workers, equal to the in-memory result; the estimator
    # scattered to the workers once, not sent in the graph.
    Z = fitted.transform(Xd)
    held = [
        key
        for keys in client.has_what().values()
        for key in keys
        if str(key).startswith("Forward")
    ]
    assert len(held) == 2 and len(set(held)) == 1  # One copy on each worker.
    assert_close(Z.compute(), fitted.transform(digits))
    assert_close(fitted.score_samples(Xd).compute(), fitted.score_samples(digits))
    # The dense networks ran as NumPy: no worker imported Keras for them.
    # (A builtin asks: a function of this module would import it, and Keras.)
    asked = "{'keras', 'tensorflow'} & set(__import__('sys').modules)"
    assert not any(client.run(eval, asked).values())
    est = AutoencoderTransformer(epochs=2, random_state=0)
    fitted_remote = client.submit(lambda X: clone(est).fit(X), digits).result()
    assert fitted_remote.n_iter_ == 2
    # The fit and the blocks above ran on workers of one thread: their
    # TensorFlow pools were sized to it.
    for threads, intra, inter, growth in client.run(_worker_threads).values():
        assert (threads, intra, inter, growth) == (1, 1, 1, "true")


def test_cluster_search_matches_local(client, digits):
    import joblib
    from sklearn.model_selection import GridSearchCV

    grid = {"n_components": [2, 4]}
    search = GridSearchCV(
        AutoencoderTransformer(epochs=2, random_state=0), grid, cv=2, n_jobs=-1
    )
    local = clone(search).set_params(n_jobs=1).fit(digits[:600])
    with joblib.parallel_backend("dask"):
        remote = search.fit(digits[:600])
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])


def test_fit_on_the_cluster_streams_blocks(client, streamed, digits):
    Xd = da.from_array(digits, chunks=(300, 64))
    local = AutoencoderTransformer(epochs=2, random_state=0)
    with dask.config.set(scheduler="sync"):
        reference = clone(local).fit(Xd)
    on_cluster = local.fit(Xd)  # The client is the default scheduler.
    assert_close(on_cluster.transform(digits), reference.transform(digits))
    assert pickle.loads(pickle.dumps(on_cluster)).n_iter_ == 2
