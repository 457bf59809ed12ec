"""The NumPy forward pass without Keras: what a Dask worker runs."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skae import AutoencoderTransformer, _dask, _forward

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    return load_digits().data


@pytest.fixture(scope="module")
def fitted(digits):
    # Layer normalisation and a sigmoid code: more kinds of step than the default.
    return AutoencoderTransformer(
        n_components=3,
        hidden_layer_sizes=(16,),
        normalization="layer",
        code_activation="sigmoid",
        epochs=2,
        random_state=0,
    ).fit(digits)


@pytest.mark.parametrize("method", _dask.METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_forward_equals_the_estimator_bit_for_bit(fitted, digits, method, dtype):
    X = digits.astype(dtype)
    if method == "inverse_transform":
        X = fitted.transform(X)
    forward = pickle.loads(pickle.dumps(_dask._numpy_forward(fitted, method)))
    got = _forward.apply_block(X, forward, method)
    expected = getattr(fitted, method)(X)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_a_worker_unpickling_it_imports_no_keras(fitted, digits, tmp_path):
    # A fresh process, as a Dask worker is: plain pickle, no cloudpickle.
    path = tmp_path / "forward.pkl"
    path.write_bytes(pickle.dumps(_dask._numpy_forward(fitted, "transform")))
    np.save(tmp_path / "X.npy", digits[:50])
    code = f"""
        import pickle, sys
        import numpy as np
        from skae import _forward
        forward = pickle.loads(open({str(path)!r}, "rb").read())
        codes = _forward.apply_block(np.load({str(tmp_path / "X.npy")!r}), forward,
                                     "transform")
        np.save({str(tmp_path / "codes.npy")!r}, codes)
        print(sorted(m for m in ("keras", "tensorflow", "sklearn") if m in sys.modules))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
    codes = np.load(tmp_path / "codes.npy")
    np.testing.assert_array_equal(codes, fitted.transform(digits[:50]))


def test_import_skae_loads_keras_on_first_use_only():
    code = """
        import sys
        import skae
        print("keras" in sys.modules, "tensorflow" in sys.modules)
        skae.AutoencoderTransformer
        print("keras" in sys.modules)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["False", "False", "True"]


@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]
)
def test_a_block_with_nan_or_infinity_is_refused(fitted, digits, value, what):
    X = digits[:20].copy()
    X[7, 3] = value
    forward = _dask._numpy_forward(fitted, "transform")
    with pytest.raises(ValueError, match=f"Input X contains {what}.*block of 20 rows"):
        _forward.apply_block(X, forward, "transform")
