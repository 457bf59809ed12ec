"""Where TensorFlow runs: GPU memory on demand, float64 on the GPU.

The ``gpu`` tests run only where TensorFlow sees a GPU (``-m gpu``;
``benchmarks/gpu_check.sh`` runs them with the speed benchmark).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from skae import AutoencoderTransformer, _devices


def test_gpu_memory_growth_is_on_unless_the_user_set_it():
    code = "import os, skae; print(os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_FORCE_GPU_ALLOW_GROWTH"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert run.stdout.strip() == "true"
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "false"
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert run.stdout.strip() == "false"


def test_no_thread_settings_outside_a_worker():
    assert _devices.worker_threads() is None


needs_gpu = pytest.mark.skipif(not _devices.gpus(), reason="no GPU visible")


@pytest.mark.gpu
@needs_gpu
def test_training_and_inference_run_on_the_gpu():
    import tensorflow as tf

    X = np.random.RandomState(0).rand(2000, 32).astype(np.float32)
    est = AutoencoderTransformer(n_components=4, epochs=3, random_state=0).fit(X)
    assert "GPU" in est.encoder_.weights[0].value.device
    est.transform(X)
    info = tf.config.experimental.get_memory_info("GPU:0")
    # Grown on demand: far from the whole device.
    assert info["peak"] < 2**30


@pytest.mark.gpu
@needs_gpu
def test_float64_inference_stays_float64_on_the_gpu():
    X = np.random.RandomState(0).rand(500, 16)
    est = AutoencoderTransformer(n_components=3, epochs=2, random_state=0).fit(X)
    Z = est.transform(X)
    assert Z.dtype == np.float64
    # Computed in float64 (the encoder's float64 copy): float32 rounding would
    # show as differences around 1e-7 between batch sizes.
    np.testing.assert_allclose(est.transform(X[:7]), Z[:7], rtol=1e-12, atol=1e-12)
