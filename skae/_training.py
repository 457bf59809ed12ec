"""The training loop.

Keras' ``Model.fit`` costs milliseconds of Python and dispatch per step, which
dominates for the small networks and small batches an autoencoder of tabular data
uses. Here one compiled graph runs a whole epoch, which makes training several
times faster, and every random draw (weights, shuffling, input noise) comes from
seeds we own, so training is reproducible without touching global random state.
"""

import math
import warnings
from dataclasses import dataclass

import keras
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import _backend, _compat, _distribute, _steps
from ._structure import EXAGGERATION, contrastive_loss
from ._utils import user_stacklevel

LOSSES = ("mse", "binary_crossentropy")
# How far towards a neighbour a row's training input may move (structure term).
_MIX = 0.5
# Graph edges drawn in one call of train() (steps x batch_size) from which its
# structured epochs are compiled by XLA: below, the compilation costs more than
# it saves (see _xla_or_graph).
_XLA_MIN_EDGES = 50_000
# A loss that rose past this many times its start (and the mean's loss) and
# never came back below its start diverged, finite or not: an optimizer step
# far too large (rmsprop at learning_rate=1e3) throws the weights to where the
# loss is 1e30 and flat, so the loss stalls there and early stopping ends the
# fit as if it had converged. Healthy fits stay within a few times their start.
_GROWTH = 1e3


class TrainingInterrupted(Exception):
    """Raised internally to carry a KeyboardInterrupt out with the epochs run.

    ``n_iter`` is the number of completed epochs and ``history`` their losses, so
    the interrupted estimator's ``history_`` and ``n_iter_`` agree.
    """

    def __init__(self, n_iter, history):
        super().__init__(n_iter, history)
        self.n_iter = n_iter
        self.history = history


if _backend.name() == "tensorflow":
    import tensorflow as tf


def _loss_fn(loss):
    ops = keras.ops
    if loss == "mse":
        return lambda y, p: ops.mean(ops.square(y - p))
    return lambda y, p: ops.mean(keras.losses.binary_crossentropy(y, p))


def _corrupt(x, noise, masking, seed, noisy, bank=None):
    # Denoising: the network sees corrupted inputs and must rebuild clean ones.
    # ``noise`` is a tensor (partial_fit's changes between calls); ``noisy`` is
    # known when tracing, so a noiseless network draws no noise. With ``bank``
    # (standard normal rows) each row takes a random row of it instead of a
    # fresh draw.
    ops = keras.ops
    if noisy and bank is not None:
        picks = _backend.uniform(
            ops.shape(x)[:1], seed, "int32", k=2, maxval=ops.shape(bank)[0]
        )
        x = x + noise * ops.take(bank, picks, axis=0)
    elif noisy:
        x = x + noise * _backend.normal(ops.shape(x), seed, x.dtype)
    if masking:
        keep = _backend.uniform(ops.shape(x), seed, k=1) >= masking
        x = x * ops.cast(keep, x.dtype)
    return x


@dataclass(frozen=True)
class TrainerOptions:
    """The parameters a :class:`Trainer` is made from.

    ``partial_fit`` keeps its trainer (and the optimizer's moments) across calls
    while these stay equal, and makes a new one, as a pickled copy would, when
    ``set_params`` changed one. ``batch_size`` is the parameter as given:
    "auto" is resolved for each new trainer's rows.
    """

    loss: str
    optimizer: str
    learning_rate: float
    batch_size: object
    noise: float
    masking: float
    structure_weight: float


@dataclass(frozen=True)
class Schedule:
    """How :func:`train` runs: epochs, stopping rule, noise, callbacks.

    ``noise`` is the input noise's standard deviation in the scaled space;
    ``chunk_rows`` how many streamed rows are read at a time (None: all);
    ``first_step`` where the noise's random stream starts (``partial_fit``
    continues one stream across calls); ``baseline`` the loss of
    reconstructing every row as the features' mean, a floor for what
    :func:`train` calls diverged (0: none).
    """

    epochs: int
    noise: float
    tol: float
    n_iter_no_change: int
    callbacks: tuple = ()
    verbose: int = 0
    chunk_rows: int | None = None
    first_step: int = 0
    warn_convergence: bool = True
    baseline: float = 0.0


class Trainer:
    """An autoencoder, its optimizer and the compiled functions that train it.

    Built once per ``fit``, and once for all the ``partial_fit`` calls of an
    estimator, so that every call after the first reuses the traced graphs;
    :mod:`skae._pool` lends built ones to later fits of the same graph.
    """

    def __init__(self, encoder, decoder, options, *, batch_size, seed):
        self.options = options
        noisy, masking = options.noise > 0, options.masking
        structure_weight = options.structure_weight
        optimizer = _compat.new_optimizer(options.optimizer, options.learning_rate)
        inputs = keras.Input(shape=encoder.input_shape[1:])
        self.autoencoder = keras.Model(
            inputs, decoder(encoder(inputs)), name="autoencoder"
        )
        self.encoder, self.decoder = encoder, decoder
        self.batch_size = batch_size
        self.structure_weight = structure_weight
        self.optimizer = optimizer
        self._noisy = noisy
        # A tf.distribute.MirroredStrategy around the fit (on JAX, the steps
        # follow a Keras DataParallel themselves: skae._steps).
        self._mirrored = None
        if _backend.name() == "tensorflow":
            self._mirrored = _distribute.active()
            _check_replicas(self._mirrored, batch_size)
        # What callbacks reach as model.optimizer, as after model.compile:
        # LearningRateScheduler and ReduceLROnPlateau set its rate.
        self.autoencoder.optimizer = optimizer
        self.restart(seed)
        autoencoder = self.autoencoder
        variables = autoencoder.trainable_variables
        optimizer.build(variables)
        _compat.sum_gradients_locally(optimizer)
        loss_fn = _loss_fn(options.loss)

        def step_loss(xb, seed, noise, training, share=None):
            x_in = _corrupt(xb, noise, masking, seed, noisy) if training else xb
            if share is not None:
                # A replica's rows, corrupted as on one device (mirrored_step).
                xb, x_in = share(xb), share(x_in)
            out = autoencoder(x_in, training=training)
            value = loss_fn(xb, out)
            if autoencoder.losses:
                value += _backend.add_n(autoencoder.losses)
            return value

        if _backend.name() != "tensorflow":
            self._step = _steps.Step(
                autoencoder,
                optimizer,
                lambda X, order, seed, noise: step_loss(
                    keras.ops.take(X, order, axis=0), seed, noise, True
                ),
                rows=(1,),
            )
            self._eval_loss = _steps.evaluate(
                lambda xb: step_loss(xb, None, 0.0, False)
            )
            if structure_weight > 0:
                self._define_structured(
                    encoder, decoder, loss_fn, optimizer, masking, noisy
                )
            return

        strategy = self._mirrored

        # The seed is an argument, not a constant: a pooled trainer (see
        # trainer_for) runs the same graph for every fit's seed.
        def run_epoch(X_chunk, order, fit_seed, step, noise):
            total, first = tf.constant(0.0), tf.constant(0.0)
            steps = tf.shape(order)[0] // batch_size
            for i in tf.range(steps):
                xb = tf.gather(X_chunk, order[i * batch_size : (i + 1) * batch_size])
                seed = tf.stack([fit_seed, step + i])
                value = _distribute.step(
                    strategy,
                    lambda share, xb=xb, seed=seed: step_loss(
                        xb, seed, noise, True, share
                    ),
                    optimizer,
                    variables,
                    batch_size,
                )
                total += value
                # The first step's value, read from total: a second use of
                # value changed how TensorFlow fused the structured loss, and
                # so its float32 sum in history_.
                first = tf.where(i == 0, total, first)
            return total, first

        def eval_loss(xb):
            return step_loss(xb, tf.constant([0, 0]), 0.0, False)

        self._run_epoch = _compat.function(run_epoch, reduce_retracing=True)
        self._eval_loss = _compat.function(eval_loss, reduce_retracing=True)
        if structure_weight > 0:
            self._define_structured(
                encoder, decoder, loss_fn, optimizer, masking, noisy
            )

    def restart(self, seed):
        """Start a new fit's random streams from ``seed``, at the current rate.

        The rate is where the structure term's schedule decays from (it sets
        the optimizer's rate each epoch).
        """
        self.seed = seed
        rate = self.optimizer.learning_rate
        if self._mirrored is not None:
            # A MirroredVariable, which float() refuses.
            rate = rate.value.numpy()
        self._base_learning_rate = float(rate)

    def _define_structured(self, encoder, decoder, loss_fn, optimizer, masking, noisy):
        # Each step takes ``batch_size`` edges of the neighbour graph: their
        # 2 * batch_size end rows are reconstructed, and the two ends' codes
        # are pulled together against the batch's other codes. The encoder
        # sees each row moved part of the way to one of its neighbours
        # (x + t (x_nb - x), t < _MIX) and noised: the code must not change
        # along the data's own neighbourhoods, which is what carries the
        # structure over to rows the graph never saw (MNIST 10k prototype:
        # held-out trustworthiness 0.875 without it, 0.91 with it).
        autoencoder = self.autoencoder
        variables = autoencoder.trainable_variables
        batch_size, weight = self.batch_size, float(self.structure_weight)
        strategy = self._mirrored

        ops = keras.ops

        def structured_loss(
            X, rows, partners, t, seed, noise, training, bank=None, share=None
        ):
            xb = ops.take(X, rows, axis=0)
            x_in = xb
            if training:
                t = ops.reshape(t, (-1,) + (1,) * (len(xb.shape) - 1))
                x_in = xb + t * (ops.take(X, partners, axis=0) - xb)
                x_in = _corrupt(x_in, noise, masking, seed, noisy, bank)
            if share is not None:
                xb, x_in = share(xb), share(x_in)
            codes = encoder(x_in, training=training)
            value = loss_fn(xb, decoder(codes, training=training))
            if autoencoder.losses:
                value += _backend.add_n(autoencoder.losses)
            # A replica of a mirrored fit holds its share of the edges.
            half = batch_size if strategy is None else ops.shape(codes)[0] // 2
            return value + weight * contrastive_loss(
                codes[:half], codes[half:], EXAGGERATION
            )

        if _backend.name() != "tensorflow":
            self._structured_step = _steps.Step(
                autoencoder,
                optimizer,
                lambda X, rows, partners, t, seed, noise, bank: structured_loss(
                    X, rows, partners, t, seed, noise, True, bank
                ),
                rows=(1, 2, 3),
            )
            self._eval_structured = _steps.evaluate(
                lambda X, rows: structured_loss(X, rows, rows, rows, None, 0.0, False)
            )
            return

        def run_structured(X, rows, partners, t, fit_seed, step, noise):
            total, first = tf.constant(0.0), tf.constant(0.0)
            width = 2 * batch_size
            steps = tf.shape(rows)[0] // width
            # An epoch reconstructs each row about 13 times (MNIST, 15
            # neighbours); a fresh normal draw for every value of every copy
            # took a third of the fit (MNIST 10k, seed 0: 16 of 51 s). The
            # epoch draws as many noise rows as a plain epoch does (at least
            # one step's), and each copy takes a random one of them.
            bank = None
            if noisy:
                bank_rows = tf.maximum(tf.shape(X)[0], width)
                bank = tf.random.stateless_normal(
                    tf.concat([[bank_rows], tf.shape(X)[1:]], 0),
                    tf.stack([fit_seed, -1 - step]),
                    dtype=X.dtype,
                )
            for i in tf.range(steps):
                # Slices of a static size: XLA compiles fixed shapes only.
                start, size = [i * width], [width]
                edges = [tf.slice(a, start, size) for a in (rows, partners, t)]
                seed = tf.stack([fit_seed, step + i])
                value = _distribute.step(
                    strategy,
                    lambda share, edges=edges, seed=seed: structured_loss(
                        X, *edges, seed, noise, True, bank, share
                    ),
                    optimizer,
                    variables,
                    batch_size,
                    halves=True,
                )
                total += value
                first = tf.where(i == 0, total, first)
            return total, first

        def eval_structured(X, rows):
            return structured_loss(X, rows, rows, rows, [0, 0], 0.0, False)

        self._run_structured = _xla_or_graph(run_structured)
        self._eval_structured = _compat.function(eval_structured, reduce_retracing=True)

    def _edge_rows(self, graph, rng, n_edges):
        # Edges drawn in proportion to their weights, as UMAP's epochs sample
        # them; per batch, the heads then the tails.
        edges = rng.choice(
            len(graph.weights), n_edges, p=graph.weights / graph.weights.sum()
        )
        heads = graph.heads[edges].reshape(-1, self.batch_size)
        tails = graph.tails[edges].reshape(-1, self.batch_size)
        return np.concatenate([heads, tails], axis=1).ravel()

    def structured(self, rows):
        """Whether epochs over ``rows`` train with the structure term.

        They follow its schedule: the learning rate decays to zero over the
        fit's epochs, as UMAP's does, and the schedule is the stopping rule.
        Stopping when the loss stalls would leave the codes where a large rate
        still shakes them (digits, 3 seeds: held-out kNN accuracy 0.948 when
        stopped after 99-117 of 278 epochs, 0.960 with all 278).
        """
        return self.structure_weight > 0 and rows.graph is not None

    def epoch(
        self, rows, rng, *, chunk_rows, first_step, noise, progress=0.0, xla=True
    ):
        """One pass over ``rows`` in a random order.

        Returns the mean batch loss and the first batch's, taken before the
        first step: the loss the epoch started from. ``progress`` is the
        fraction of the fit's epochs already run: with the structure term the
        learning rate decays linearly with it. ``xla``: compile a structured
        epoch with XLA (see :func:`_xla_or_graph`).
        """
        if self.structured(rows):
            return self._structured_epoch(rows, rng, first_step, noise, progress, xla)
        if _backend.name() != "tensorflow":
            return self._stepwise_epoch(rows, rng, chunk_rows, first_step, noise)
        batch_size = self.batch_size
        total, first, step = 0.0, None, first_step
        for X_chunk, order in rows.chunks(rng.permutation(rows.n), chunk_rows):
            # The order wraps around to fill the chunk's last batch (repeatedly
            # for a chunk smaller than a batch).
            steps = math.ceil(len(order) / batch_size)
            order = np.resize(order, steps * batch_size)
            chunk_total, chunk_first = self._run_epoch(
                X_chunk,
                tf.constant(order, tf.int32),
                tf.constant(self.seed, tf.int32),
                tf.constant(step),
                tf.constant(noise, tf.float32),
            )
            total += float(chunk_total)
            first = float(chunk_first) if first is None else first
            step += steps
        return total / (step - first_step), first

    def _stepwise_epoch(self, rows, rng, chunk_rows, first_step, noise):
        # JAX and PyTorch: the TensorFlow epoch's steps, one call each.
        batch_size, values, step = self.batch_size, [], first_step
        self._step.begin()
        try:
            for X_chunk, order in rows.chunks(rng.permutation(rows.n), chunk_rows):
                steps = math.ceil(len(order) / batch_size)
                order = np.resize(order, steps * batch_size).astype(np.int32)
                for i in range(steps):
                    values.append(
                        self._step(
                            X_chunk,
                            order[i * batch_size : (i + 1) * batch_size],
                            _backend.seed_pair(self.seed, step + i),
                            noise,
                        )
                    )
                step += steps
        finally:
            self._step.end()
        values = [float(v) for v in values]
        return sum(values) / len(values), values[0]

    def steps_per_epoch(self, rows, chunk_rows):
        """Gradient steps in one epoch over ``rows``."""
        if self.structured(rows):
            return self.structured_steps(rows)
        return count_batches(rows.n, self.batch_size, chunk_rows)

    def structured_steps(self, rows):
        """Steps of one epoch with the structure term (:func:`structured_steps`)."""
        return structured_steps(rows.graph, self.batch_size)

    def _structured_epoch(self, rows, rng, first_step, noise, progress, xla):
        # UMAP anneals its learning rate linearly to zero over the epochs: the
        # codes settle instead of jittering around their neighbourhoods.
        self.optimizer.learning_rate = self._base_learning_rate * (1.0 - progress)
        graph, batch_size = rows.graph, self.batch_size
        steps = self.structured_steps(rows)
        order = self._edge_rows(graph, rng, steps * batch_size)
        partners = graph.neighbours[
            order, rng.randint(graph.neighbours.shape[1], size=len(order))
        ]
        t = rng.uniform(0.0, _MIX, size=len(order)).astype(np.float32)
        if _backend.name() != "tensorflow":
            return self._stepwise_structured(
                rows.tensor(), order, partners, t, first_step, noise
            )
        total, first = self._run_structured(
            rows.tensor(),
            tf.constant(order, tf.int32),
            tf.constant(partners, tf.int32),
            tf.constant(t),
            tf.constant(self.seed, tf.int32),
            tf.constant(first_step),
            tf.constant(noise, tf.float32),
            xla=xla,
        )
        return float(total) / steps, float(first)

    def _stepwise_structured(self, X, order, partners, t, first_step, noise):
        width = 2 * self.batch_size
        bank = None
        if self._noisy:
            # As the TensorFlow epoch: one bank of noise rows per epoch.
            shape = (max(X.shape[0], width), *X.shape[1:])
            seed = _backend.seed_pair(self.seed, -1 - first_step)
            bank = _backend.normal(shape, seed, X.dtype)
        order, partners = order.astype(np.int32), partners.astype(np.int32)
        step, values = self._structured_step, []
        step.begin()
        try:
            for i in range(len(order) // width):
                part = slice(i * width, (i + 1) * width)
                seed = _backend.seed_pair(self.seed, first_step + i)
                values.append(
                    step(X, order[part], partners[part], t[part], seed, noise, bank)
                )
        finally:
            step.end()
        values = [float(v) for v in values]
        return sum(values) / len(values), values[0]

    def loss(self, rows):
        """Mean loss over ``rows``, without corruption."""
        if self.structured(rows):
            if rows.eval_edges is None:
                steps = math.ceil(rows.n / self.batch_size)
                rows.eval_edges = self._edge_rows(
                    rows.graph, np.random.RandomState(0), steps * self.batch_size
                ).reshape(steps, -1)
            X = rows.tensor()
            return float(
                np.mean(
                    [
                        self._eval_structured(X, keras.ops.convert_to_tensor(r))
                        for r in rows.eval_edges
                    ]
                )
            )
        total = 0.0
        for xb in rows.batches(4096):
            total += float(self._eval_loss(keras.ops.convert_to_tensor(xb))) * len(xb)
        return total / rows.n


def train(trainer, train_rows, val_rows, schedule, rng):
    """Train ``trainer``'s autoencoder in place; return ``(history, n_iter)``.

    ``train_rows`` and ``val_rows`` (or None) are row sets of
    :mod:`skae._input`; streamed rows are read ``schedule.chunk_rows`` at a
    time, and batches are drawn within a chunk of randomly chosen rows; ``rng``
    (a ``RandomState``) draws the order. Stops early when the monitored loss
    (validation loss when ``val_rows`` is given, else training loss) has not
    improved by ``tol`` for ``n_iter_no_change`` epochs, as scikit-learn's MLP
    does; with a validation set the best weights are restored. Raises
    ``ValueError`` on a non-finite loss or non-finite weights, or when the
    loss diverged while staying finite (see :func:`_diverged`), and
    ``TrainingInterrupted`` on a KeyboardInterrupt after at least one epoch.
    With the structure term's decaying learning rate
    (:meth:`Trainer.structured`) every epoch runs: the loss is still monitored
    for restoring the best validation weights, but it does not stop training.
    """
    epochs, tol = schedule.epochs, schedule.tol
    n_iter_no_change, verbose = schedule.n_iter_no_change, schedule.verbose
    autoencoder = trainer.autoencoder
    n = train_rows.n
    chunk_rows = _whole_batches(schedule.chunk_rows, n, trainer.batch_size)
    n_batches = trainer.steps_per_epoch(train_rows, chunk_rows)
    scheduled = trainer.structured(train_rows)
    xla = epochs * n_batches * trainer.batch_size >= _XLA_MIN_EDGES

    def train_epoch(epoch):
        return trainer.epoch(
            train_rows,
            rng,
            chunk_rows=chunk_rows,
            first_step=schedule.first_step + epoch * n_batches,
            noise=schedule.noise,
            progress=epoch / epochs,
            xla=xla,
        )

    def val_loss():
        return trainer.loss(val_rows)

    callback_list = keras.callbacks.CallbackList(
        list(schedule.callbacks),
        model=autoencoder,
        epochs=epochs,
        steps=n_batches,
        verbose=verbose,
    )
    history = {"loss": []}
    if val_rows is not None:
        history["val_loss"] = []
    monitor = "val_loss" if val_rows is not None else "loss"
    # The monitored loss before any step: the validation rows', or the first
    # batch's (which the first epoch reports).
    best, best_weights, no_improvement, start = np.inf, None, 0, None
    if val_rows is not None:
        # The starting point is a candidate too: a network that starts at PCA
        # (init="pca") then never ends worse than PCA on the validation rows.
        best, best_weights = trainer.loss(val_rows), autoencoder.get_weights()
        start = best
    converged = False

    def diverged():
        losses = history[monitor]
        # The network kept: the best one with validation rows, else the last.
        kept = best if val_rows is not None else losses[-1]
        return _diverged(losses, start, schedule.baseline, kept)

    autoencoder.stop_training = False
    callback_list.on_train_begin()
    epoch = 0
    try:
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            loss, first = train_epoch(epoch)
            start = first if start is None else start
            logs = {"loss": loss}
            if val_rows is not None:
                logs["val_loss"] = val_loss()
            if not all(math.isfinite(v) for v in logs.values()):
                raise ValueError(
                    _diverged_message(
                        "a finite training loss", f"loss={logs} at epoch {epoch + 1}"
                    )
                )
            for key, value in logs.items():
                history[key].append(value)
            if verbose:
                _print_epoch(epoch, epochs, logs, verbose)
            callback_list.on_epoch_end(epoch, logs)

            current = logs[monitor]
            # Relative: the loss's scale is the data's (a PCA start on a raw
            # table begins at the tiny residual of its small columns), and an
            # absolute tol would stop it before any step could count.
            if current < best - tol * abs(best) or not math.isfinite(best):
                no_improvement = 0
            else:
                no_improvement += 1
            if current < best:
                best = current
                if val_rows is not None:
                    best_weights = autoencoder.get_weights()
            if no_improvement >= n_iter_no_change and not scheduled:
                converged = True
                break
            if autoencoder.stop_training:
                converged = True
                break
    except KeyboardInterrupt as exc:
        if not history["loss"]:
            raise
        if best_weights is not None:
            autoencoder.set_weights(best_weights)
        if not _finite_weights(autoencoder) or diverged():
            raise  # Nothing worth keeping: the estimator stays as it was.
        raise TrainingInterrupted(len(history["loss"]), history) from exc
    callback_list.on_train_end()

    if best_weights is not None:
        autoencoder.set_weights(best_weights)
    n_iter = len(history["loss"])
    # An epoch's loss is its batches' mean, taken before each step: a last step
    # that overflows leaves non-finite weights behind a finite loss.
    if not _finite_weights(autoencoder):
        raise ValueError(
            _diverged_message(
                "finite weights after training",
                f"non-finite weights after epoch {n_iter}",
            )
        )
    if diverged():
        losses = history[monitor]
        peak = int(np.argmax(losses))
        raise ValueError(
            _diverged_message(
                f"a {monitor} that stays below {_GROWTH:g} times its start (and "
                "the mean's), or ends below its start",
                f"{monitor}={losses[peak]:.4g} at epoch {peak + 1} and "
                f"{losses[-1]:.4g} at epoch {n_iter}, the last, from "
                f"{start:.4g} before the first step (predicting each "
                f"feature's mean: {schedule.baseline:.4g})",
            )
        )
    if not converged and schedule.warn_convergence and not scheduled:
        warnings.warn(
            f"Training stopped at epochs={epochs} before the {monitor} stopped "
            f"improving (by tol={tol} for n_iter_no_change={n_iter_no_change} "
            "epochs). Consider more epochs.",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return history, n_iter


def structured_steps(graph, batch_size):
    """Steps of one epoch with the structure term, at least one.

    As in UMAP, an epoch draws as many edges as the graph's total weight
    (about 1.5 log2(n_neighbors) per row), so the structure term sees a
    whole graph's worth of pairs per epoch.
    """
    return max(1, round(graph.weights.sum() / batch_size))


def _xla_or_graph(fn):
    """``fn`` compiled by XLA, or as a TensorFlow graph; ``xla=False`` asks for it.

    A structured fit is thousands of small steps whose hundreds of ops each
    cost TensorFlow's executor microseconds; fused into one XLA program an
    epoch runs 1.3-1.6 times faster (digits: 278 epochs in 14-18 s, not 20 s;
    MNIST 10k through a 100-component PCA: 22 s, not 32 s, in one batch of
    runs; both draw about 1.6 million edges). But XLA compiles for about a
    second per shape of the arguments, which short fits do not earn back: 30
    rows for 2 epochs fit in 1.9-2.0 s with it, 0.6 s as a graph; 300 digits
    for 40 epochs (74,000 edges) in 3.4-4.4 s, 2.8-3.5 s as a graph, with
    three ReLU layers. The structure term's recipe (layer-normalised GELU
    layers) has more ops to fuse, and XLA runs its epochs about twice as fast:
    MNIST 10k through PCA(100) for 10 epochs (320,000 edges) in 5.3 s, 10.9 s
    as a graph; 300 digits for 40 epochs (61,000 edges) in 1.5 s, 2.3 s as a
    graph (repeated fits; first fits 4.2 and 4.3 s); 60 rows for 3 epochs
    (1,500 edges) first fit 2.8 s, 1.9 s as a graph. :func:`train` asks for
    XLA from ``_XLA_MIN_EDGES`` edges. User networks may
    hold ops XLA has no kernel for (a ``tf.py_function``): compiling fails
    before any step runs, so the graph takes over, for good, with nothing to
    undo.
    """
    graph = _compat.function(fn, reduce_retracing=True)
    if tf.distribute.has_strategy():
        return lambda *args, xla=True: graph(*args)
    compiled = _compat.function(fn, reduce_retracing=True, jit_compile=True)
    # None until XLA was tried: later errors are the epoch's own, raised as such.
    xla_works = None

    def run(*args, xla=True):
        nonlocal xla_works
        if not xla or xla_works is False:
            return graph(*args)
        if xla_works is None:
            try:
                result = compiled(*args)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                xla_works = False
                return graph(*args)
            xla_works = True
            return result
        return compiled(*args)

    return run


def _check_replicas(strategy, batch_size):
    replicas = _distribute.replicas(strategy)
    if batch_size < replicas:
        raise ValueError(
            f"Expected a batch of at least one row per replica. Received: "
            f"batch_size={batch_size} for the {replicas} replicas of "
            f"{type(strategy).__name__}."
        )


def _whole_batches(chunk_rows, n, batch_size):
    # Whole batches per chunk, so the graph has one static batch shape.
    batch_size = min(batch_size, n)
    chunk_rows = n if chunk_rows is None else chunk_rows
    return max(batch_size, chunk_rows // batch_size * batch_size)


def count_batches(n, batch_size, chunk_rows=None):
    """Training steps in one epoch over ``n`` rows read ``chunk_rows`` at a time."""
    batch_size = min(batch_size, n)
    chunk_rows = _whole_batches(chunk_rows, n, batch_size)
    return sum(
        math.ceil(min(chunk_rows, n - start) / batch_size)
        for start in range(0, n, chunk_rows)
    )


def _diverged_message(expected, received):
    return (
        f"Expected {expected}. Received: {received}. Training diverged: lower "
        "learning_rate, check the input for extreme values, or use "
        "scaling='standard'."
    )


def _diverged(losses, start, baseline, kept):
    """Whether a finite loss diverged.

    It did when the epochs' ``losses`` rose past ``_GROWTH`` times the larger
    of their ``start`` and ``baseline``, and the network kept (of loss
    ``kept``) is no better than the start. The baseline (the mean's loss)
    keeps a start that is already near perfect (PCA's on data of low rank)
    from calling every small rise divergence; a rise that training recovers
    from, below where it started, is no failure.
    """
    reference = max(start, baseline)
    return reference > 0 and max(losses) > _GROWTH * reference and kept >= start


def _finite_weights(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


def _print_epoch(epoch, epochs, logs, verbose):
    print(f"Epoch {epoch + 1}/{epochs}")
    bar = keras.utils.Progbar(1, verbose=verbose)
    bar.update(1, values=list(logs.items()), finalize=True)
