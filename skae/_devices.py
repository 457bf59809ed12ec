"""Where TensorFlow runs: GPU memory on demand, thread pools on Dask workers.

Both settings take effect only before TensorFlow initialises its runtime in
the process (its first operation), and are left alone when the user made
them:

* GPU memory grows on demand (``TF_FORCE_GPU_ALLOW_GROWTH=true``, set by
  ``import skae`` and here unless the variable is already set) rather than being
  taken whole by the first process: searches running several fits per GPU
  can share it.
* On a ``dask.distributed`` worker, TensorFlow's intra-op pool is sized to
  the worker's threads (its share of the machine's cores) and the inter-op
  pool to one thread, unless ``TF_NUM_INTRAOP_THREADS`` /
  ``TF_NUM_INTEROP_THREADS`` are set. Left alone, each worker process would
  start one TensorFlow thread per core of the machine: n workers, n times
  the cores.
"""

import os
import sys

from . import _backend

os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

_configured = False


def configure():
    """Size TensorFlow's thread pools on a Dask worker; once per process.

    Called when this module is first imported (with the estimator's: on a
    worker, to unpickle the first task's estimator, before its networks
    start TensorFlow) and where skae's work starts (reading X for a fit, a
    Dask block in ``transform``, before the estimator shipped with it is
    unpickled). Workers that run the NumPy forward pass
    (:mod:`skae._forward`) never import this module nor TensorFlow. Returns the
    worker's thread count when the pools were set, else None (not on a
    worker, set by the user's environment, or TensorFlow already running,
    which fixes its pools).
    """
    global _configured
    if _configured:
        return None
    _configured = True
    if _backend.name() != "tensorflow":
        # JAX's and PyTorch's pools are theirs to size (XLA_FLAGS,
        # torch.set_num_threads).
        return None
    threads = worker_threads()
    if threads is None:
        return None
    import tensorflow as tf

    done = None
    for variable, setter, count in (
        (
            "TF_NUM_INTRAOP_THREADS",
            tf.config.threading.set_intra_op_parallelism_threads,
            threads,
        ),
        (
            "TF_NUM_INTEROP_THREADS",
            tf.config.threading.set_inter_op_parallelism_threads,
            1,
        ),
    ):
        if variable in os.environ:
            continue
        try:
            setter(count)
        except RuntimeError:
            # TensorFlow already ran in this process: its pools are fixed.
            continue
        done = threads
    return done


def worker_threads():
    """The current ``dask.distributed`` worker's thread count, or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Worker, get_worker

    try:
        worker = get_worker()
    except ValueError:
        # Outside a task (importing skae to unpickle a task's estimator):
        # the process's one worker, as in a worker process a nanny started.
        workers = list(Worker._instances)
        if len(workers) != 1:
            return None
        worker = workers[0]
    return int(worker.state.nthreads)


# On a Dask worker the estimator's module (and so this one) is imported to
# unpickle the first task's estimator, before that estimator's Keras models
# initialise TensorFlow: the last moment its pools can be sized.
configure()


def gpus():
    """The GPUs the Keras backend sees (a list, empty on a machine without one)."""
    if _backend.name() != "tensorflow":
        import keras

        return keras.distribution.list_devices("gpu")
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")
