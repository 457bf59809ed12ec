"""Test-session settings shared by tests/ and the doctests in skae/."""

import os

# On a 2-core machine, BLAS threads in scikit-learn's metrics and TensorFlow's
# own pool oversubscribe the cores and make small fits several times slower.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Matplotlib must never try to open a window during tests.
os.environ.setdefault("MPLBACKEND", "Agg")
