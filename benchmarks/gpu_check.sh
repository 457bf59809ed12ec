#!/usr/bin/env bash
# The one GPU run (issue 30): the suite's gpu-marked tests, then the speed
# benchmark, on a machine where TensorFlow sees a GPU. Run from the repo root:
#   bash benchmarks/gpu_check.sh [out-dir]
# Everything it prints and writes goes to out-dir (default gpu-results/).
set -u
out=${1:-gpu-results}
mkdir -p "$out"
python - <<'PY' | tee "$out/devices.txt"
import tensorflow as tf
print("tensorflow", tf.__version__, "gpus", tf.config.list_physical_devices("GPU"))
PY
python -m pytest -q -p no:cacheprovider -m gpu tests/test_devices.py -rs \
    2>&1 | tee "$out/gpu_tests.txt"
timeout 420 python -m benchmarks.speed --quick --out "$out" \
    2>&1 | tail -60 | tee "$out/speed_log.txt"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv \
    2>&1 | tee "$out/nvidia_smi.txt"
