"""Benchmarks of skae against PCA (and UMAP), kept out of the installed package.

Run from the repository root:

- ``python -m benchmarks``: embedding quality, reconstruction error and timings
  of :class:`skae.AutoencoderTransformer` with its default settings next to
  :class:`sklearn.decomposition.PCA` (and UMAP when installed) on UCI digits and
  MNIST. Writes ``results.json``, ``report.md`` and figures.
- ``python -m benchmarks.speed``: training throughput against the machine's
  matmul peak and against the same network trained by plain Keras, and
  ``transform`` throughput and latency against PCA.

See ``benchmarks/README.md``. This module imports nothing heavy, so that
``python -m benchmarks.speed`` does not pay for the suite's imports; run as a
command (``python -m benchmarks...``), it starts TensorFlow without its C++
start-up log lines unless ``--verbose`` is given.
"""

import sys

# While ``python -m`` imports a package, sys.argv[0] is "-m".
if sys.argv[0] == "-m" and "--verbose" not in sys.argv[1:]:
    from ._env import quiet_tensorflow_start

    quiet_tensorflow_start()
