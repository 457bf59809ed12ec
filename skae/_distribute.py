"""Data-parallel training over one machine's devices, by the backend's own means.

skae has no parameter for it: a fit follows the distribution context Keras
users already know, and trains on every device of it.

* **JAX**: ``keras.distribution.DataParallel``, set with
  ``keras.distribution.set_distribution`` or entered with its ``scope()``.
  The variables are laid out by Keras (replicated on the mesh) and each
  step's rows are sharded over the mesh's batch axis inside skae's jitted
  step; XLA's SPMD partitioner splits the step and sums the gradients across
  devices, so the step computes what it computes on one device.
* **TensorFlow**: ``tf.distribute.MirroredStrategy``, entered with its
  ``scope()``. The networks are built as mirrored variables, each step runs
  through ``strategy.run`` on a share of the batch, and Keras' optimizer sums
  the replicas' gradients (each replica's loss weighted by its share of the
  batch, so the sum is the batch's mean).
* **PyTorch**: Keras 3 has no distribution backend for PyTorch
  (``keras.src.backend.distribution_lib`` is None there), so a fit under a
  Keras distribution raises ``ValueError`` rather than train on one device.
"""

from . import _backend


class JaxDataParallel:
    """A ``keras.distribution.DataParallel`` as skae's JAX steps use it."""

    def __init__(self, distribution):
        self.distribution = distribution
        self.n_replicas = int(distribution.device_mesh.devices.size)

    def replicate(self, value):
        """``value`` (an array) replicated on every device of the mesh."""
        import keras

        layout = keras.distribution.TensorLayout(
            [None] * len(value.shape), self.distribution.device_mesh
        )
        return keras.distribution.distribute_tensor(value, layout)

    def shard_rows(self, value):
        """``value`` sharded over the mesh's batch axis along its first axis.

        Inside a jitted function: a sharding constraint, which XLA honours
        for any length (an uneven last shard is padded).
        """
        import keras

        layout = self.distribution.get_data_layout(value.shape)
        return keras.distribution.distribute_tensor(value, layout)


def active():
    """The data parallelism a fit now runs under, or None for one device.

    Returns a :class:`JaxDataParallel` on JAX and the ``tf.distribute``
    strategy on TensorFlow. Raises ``ValueError`` for a distribution skae
    cannot train with: another Keras distribution than ``DataParallel``, one
    spanning several processes, a TensorFlow strategy other than
    ``MirroredStrategy``, or any Keras distribution on PyTorch.
    """
    backend = _backend.name()
    if backend == "tensorflow":
        return _tensorflow_strategy()
    import keras

    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    if backend != "jax":
        raise ValueError(
            "Expected no Keras distribution on the PyTorch backend: Keras 3 "
            "has no distribution backend for PyTorch, so skae cannot train "
            f"data-parallel there. Received: distribution={distribution!r} with "
            f"KERAS_BACKEND={backend!r}. Use KERAS_BACKEND='jax' with "
            "keras.distribution.DataParallel, or KERAS_BACKEND='tensorflow' with "
            "tf.distribute.MirroredStrategy."
        )
    if not isinstance(distribution, keras.distribution.DataParallel):
        raise ValueError(
            "Expected the Keras distribution to be a "
            "keras.distribution.DataParallel (skae replicates its networks). "
            f"Received: distribution={distribution!r}"
        )
    if distribution.num_processes > 1:
        raise ValueError(
            "Expected a DataParallel over one process's devices. Received: "
            f"distribution={distribution!r} over "
            f"{distribution.num_processes} processes."
        )
    return JaxDataParallel(distribution)


def _tensorflow_strategy():
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    strategy = tf.distribute.get_strategy()
    if not isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy)
    ):
        raise ValueError(
            "Expected tf.distribute.MirroredStrategy (or OneDeviceStrategy) "
            "around the fit: skae trains over one machine's devices. Received: "
            f"strategy={type(strategy).__name__}"
        )
    return strategy


def step(strategy, loss, optimizer, variables, size, halves=False):
    """One TensorFlow optimizer step; the batch's loss.

    On one device (``strategy`` None) ``loss(None)`` is the whole batch's;
    under a strategy, see :func:`mirrored_step`.
    """
    if strategy is not None:
        return mirrored_step(strategy, loss, optimizer, variables, size, halves)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss(None)
    optimizer.apply(tape.gradient(value, variables), variables)
    return value


def mirrored_step(strategy, loss, optimizer, variables, size, halves=False):
    """One optimizer step under a ``tf.distribute`` strategy; the batch's loss.

    ``loss(share)`` is the loss of the batch's rows that ``share`` (a function
    of a tensor of the batch's rows) picks: each replica draws the batch's
    noise as one device would, then keeps every n-th of its ``size`` rows
    (of each half with ``halves``: a structured batch is its edges' heads,
    then their tails, kept in pairs), and weighs its loss by its share of the
    batch. Keras' optimizer sums the replicas' gradients (an all-reduce), so
    the update is the batch's mean gradient, and the sum of the replicas'
    weighted losses, returned, the batch's loss.
    """
    import tensorflow as tf

    def replica():
        context = tf.distribute.get_replica_context()
        r, n = context.replica_id_in_sync_group, context.num_replicas_in_sync
        weight = tf.cast((size - r + n - 1) // n, tf.float32) / size

        def share(a):
            if not halves:
                return a[r::n]
            return tf.concat([a[:size][r::n], a[size:][r::n]], 0)

        with tf.GradientTape() as tape:
            value = loss(share) * weight
        optimizer.apply(tape.gradient(value, variables), variables)
        return value

    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica), axis=None)


def replicas(parallel):
    """How many copies of the networks a fit under ``parallel`` trains."""
    if parallel is None:
        return 1
    if isinstance(parallel, JaxDataParallel):
        return parallel.n_replicas
    return int(parallel.num_replicas_in_sync)
