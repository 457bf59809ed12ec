"""skae on each Keras 3 backend: TensorFlow, JAX and PyTorch.

These tests run on whichever backend the process was started with
(``KERAS_BACKEND``, TensorFlow by default); ``.ci/run`` runs them, with the
estimator checks, persistence, the drop-in guarantee and the structure term,
on all three. The other backends' files are written in subprocesses, so every
run loads files from every installed backend.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import skae
from skae import _backend

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()
# Short fits stop before converging, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
INSTALLED = [
    name
    for name in _backend.SUPPORTED
    if importlib.util.find_spec(_backend._PROVIDERS[name]) is not None
]


def _python(code, backend, tmp_path=None, check=True):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-4000:])
    return result


def _digits():
    X = load_digits().data.astype(np.float32)
    return X[:400], X[400:500]


def test_skae_runs_on_the_backend_keras_loaded():
    assert _backend.name() == BACKEND
    assert BACKEND in _backend.SUPPORTED


# -- bad input ------------------------------------------------------------------


def test_a_backend_skae_does_not_run_on_is_refused_by_name():
    result = _python("import skae", "numpy", check=False)
    assert result.returncode != 0
    assert "ImportError: Expected the Keras backend to be one of" in result.stderr
    assert "Received: KERAS_BACKEND='numpy'" in result.stderr


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_backend_not_installed_names_the_extra(backend):
    # As if its package were missing: find_spec answers None for it.
    provider = _backend._PROVIDERS[backend]
    code = f"""
        import importlib.util
        find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: (
            None if name == {provider!r} else find_spec(name, *a)
        )
        import skae
    """
    result = _python(code, backend, check=False)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert f"Expected the Keras backend {backend!r} to be installed" in message
    assert f'pip install "skae[{backend}]"' in message


def test_keras_imported_with_another_backend_is_refused():
    other = "jax" if BACKEND != "jax" else "tensorflow"
    code = f"""
        import os
        import keras
        os.environ["KERAS_BACKEND"] = {other!r}
        import skae
    """
    result = _python(code, BACKEND, check=False)
    assert result.returncode != 0
    assert "Expected one Keras backend per process" in result.stderr
    assert f"KERAS_BACKEND={other!r}" in result.stderr


def test_switching_keras_backend_after_import_fails_clearly():
    others = [name for name in INSTALLED if name != BACKEND]
    if not others:
        pytest.skip("needs a second backend installed")
    code = f"""
        import numpy as np
        import keras
        import skae
        keras.config.set_backend({others[0]!r})
        try:
            skae.AutoencoderTransformer(epochs=1).fit(np.random.rand(20, 3))
        except RuntimeError as exc:
            print(exc)
    """
    out = _python(code, BACKEND).stdout
    assert f"Expected the Keras backend skae was imported with, {BACKEND!r}" in out
    assert f"keras.backend.backend()={others[0]!r}" in out


# -- same results everywhere that matters ---------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"noise": 0.5, "masking": 0.2},
        {"structure_weight": 1.0, "n_neighbors": 5},
        {"init": "random", "hidden_layer_sizes": (16,), "code_l1": 1e-3},
    ],
    ids=["noise-masking", "structure", "random-init"],
)
def test_a_random_state_reproduces_the_fit_bit_for_bit(params):
    X, X_new = _digits()
    codes = [
        skae.AutoencoderTransformer(n_components=3, epochs=3, random_state=0, **params)
        .fit(X)
        .transform(X_new)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(codes[0], codes[1])
    other = skae.AutoencoderTransformer(
        n_components=3, epochs=3, random_state=1, **params
    ).fit(X)
    assert not np.array_equal(other.transform(X_new), codes[0])


def test_training_improves_on_the_start_as_on_tensorflow():
    # The drop-in promise, here for a random start: the loss falls, and the
    # default fit rebuilds held-out rows no worse than PCA (_fit's check).
    X, X_new = _digits()
    ae = skae.AutoencoderTransformer(
        n_components=8, init="random", epochs=30, random_state=0
    ).fit(X)
    assert ae.history_["loss"][-1] < 0.7 * ae.history_["loss"][0]
    pca = skae.AutoencoderTransformer(n_components=8, random_state=0).fit(X)
    from sklearn.decomposition import PCA

    reference = PCA(8).fit(X)
    pca_error = np.mean(
        (reference.inverse_transform(reference.transform(X_new)) - X_new) ** 2
    )
    assert np.mean((pca.inverse_transform(pca.transform(X_new)) - X_new) ** 2) <= (
        pca_error * 1.01
    )


_WRITE = """
    import json
    import numpy as np
    from sklearn.datasets import load_digits
    import skae

    X = load_digits().data.astype(np.float32)
    codes = {}
    for name, params in {
        "dense": dict(n_components=3, epochs=3, noise=0.3),
        "conv": dict(
            n_components=3, epochs=2, architecture="conv", input_shape=(8, 8, 1)
        ),
    }.items():
        ae = skae.AutoencoderTransformer(random_state=0, **params).fit(X[:300])
        ae.save(f"{backend}-{name}.skae")
        codes[name] = ae.transform(X[300:340]).tolist()
    with open(f"{backend}.json", "w") as f:
        json.dump(codes, f)
"""


@pytest.fixture(scope="module")
def files_of_every_backend(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    for backend in INSTALLED:
        _python(f"backend = {backend!r}\n" + textwrap.dedent(_WRITE), backend, folder)
    return folder


@pytest.mark.parametrize("written_by", _backend.SUPPORTED)
@pytest.mark.parametrize("network", ["dense", "conv"])
def test_files_written_under_any_backend_load_here_with_the_same_codes(
    files_of_every_backend, written_by, network
):
    if written_by not in INSTALLED:
        pytest.skip(f"{written_by} is not installed")
    folder = files_of_every_backend
    expected = json.loads((folder / f"{written_by}.json").read_text())[network]
    loaded = skae.load(folder / f"{written_by}-{network}.skae")
    X = load_digits().data.astype(np.float32)[300:340]
    np.testing.assert_allclose(loaded.transform(X), expected, rtol=1e-5, atol=1e-5)
    with skae.inference_path("keras"):
        np.testing.assert_allclose(loaded.transform(X), expected, rtol=1e-4, atol=1e-4)
    # And it trains on: partial_fit continues on this backend.
    loaded.partial_fit(X)
    assert np.isfinite(loaded.transform(X)).all()
