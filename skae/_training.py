"""The training loop.

Keras' ``Model.fit`` costs milliseconds of Python and dispatch per step, which
dominates for the small networks and small batches an autoencoder of tabular data
uses. Here one compiled graph runs a whole epoch, which makes training several
times faster, and every random draw (weights, shuffling, input noise) comes from
seeds we own, so training is reproducible without touching global random state.
"""

import math
import warnings

import keras
import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning

LOSSES = ("mse", "binary_crossentropy")


class TrainingInterrupted(Exception):
    """Raised internally to carry a KeyboardInterrupt out with the epoch reached."""


def _loss_fn(loss):
    if loss == "mse":
        return lambda y, p: tf.reduce_mean(tf.square(y - p))
    return lambda y, p: tf.reduce_mean(keras.losses.binary_crossentropy(y, p))


def _corrupt(x, noise, masking, seed):
    # Denoising: the network sees corrupted inputs and must rebuild clean ones.
    if noise:
        x = x + noise * tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype)
    if masking:
        keep = tf.random.stateless_uniform(tf.shape(x), seed + 1) >= masking
        x = x * tf.cast(keep, x.dtype)
    return x


def train(
    encoder,
    decoder,
    X_train,
    X_val,
    *,
    loss,
    optimizer,
    epochs,
    batch_size,
    noise,
    masking,
    tol,
    n_iter_no_change,
    rng,
    callbacks,
    verbose,
):
    """Train ``decoder(encoder(x)) ~ x`` in place; return ``(history, n_iter)``.

    Stops early when the monitored loss (validation loss when ``X_val`` is given,
    else training loss) has not improved by ``tol`` for ``n_iter_no_change``
    epochs, as scikit-learn's MLP does; with a validation set the best weights are
    restored. Raises ``ValueError`` on a non-finite loss.
    """
    inputs = keras.Input(shape=encoder.input_shape[1:])
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    variables = autoencoder.trainable_variables
    optimizer.build(variables)
    loss_fn = _loss_fn(loss)

    n = X_train.shape[0]
    batch_size = min(batch_size, n)
    n_batches = math.ceil(n / batch_size)
    X_train_t = tf.constant(X_train)
    noise_seed = int(rng.randint(2**31 - 1))

    def step_loss(xb, seed, training):
        x_in = _corrupt(xb, noise, masking, seed) if training else xb
        out = autoencoder(x_in, training=training)
        value = loss_fn(xb, out)
        if autoencoder.losses:
            value += tf.add_n(autoencoder.losses)
        return value

    @tf.function(reduce_retracing=True)
    def run_epoch(order, epoch):
        total = tf.constant(0.0)
        for i in tf.range(n_batches):
            xb = tf.gather(X_train_t, order[i * batch_size : (i + 1) * batch_size])
            seed = tf.stack([noise_seed, epoch * n_batches + i])
            with tf.GradientTape() as tape:
                value = step_loss(xb, seed, True)
            grads = tape.gradient(value, variables)
            optimizer.apply(grads, variables)
            total += value
        return total / n_batches

    @tf.function(reduce_retracing=True)
    def eval_loss(xb):
        return step_loss(xb, tf.constant([0, 0]), False)

    def val_loss():
        total = 0.0
        for start in range(0, X_val.shape[0], 4096):
            xb = X_val[start : start + 4096]
            total += float(eval_loss(tf.constant(xb))) * xb.shape[0]
        return total / X_val.shape[0]

    callback_list = keras.callbacks.CallbackList(
        list(callbacks or []),
        model=autoencoder,
        epochs=epochs,
        steps=n_batches,
        verbose=verbose,
    )
    history = {"loss": []}
    if X_val is not None:
        history["val_loss"] = []
    monitor = "val_loss" if X_val is not None else "loss"
    best, best_weights, no_improvement = np.inf, None, 0
    converged = False

    autoencoder.stop_training = False
    callback_list.on_train_begin()
    epoch = 0
    try:
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            # Whole batches only, so the graph has one static batch shape: the
            # order wraps around to fill the last batch.
            order = rng.permutation(n)
            order = np.concatenate([order, order[: n_batches * batch_size - n]])
            logs = {
                "loss": float(
                    run_epoch(tf.constant(order, tf.int32), tf.constant(epoch))
                )
            }
            if X_val is not None:
                logs["val_loss"] = val_loss()
            if not all(math.isfinite(v) for v in logs.values()):
                raise ValueError(
                    f"Expected a finite training loss. Received: loss={logs} at "
                    f"epoch {epoch + 1}. Training diverged: lower learning_rate, "
                    "check the input for extreme values, or use "
                    "scaling='standard'."
                )
            for key, value in logs.items():
                history[key].append(value)
            if verbose:
                _print_epoch(epoch, epochs, logs, verbose)
            callback_list.on_epoch_end(epoch, logs)

            current = logs[monitor]
            if current < best - tol:
                no_improvement = 0
            else:
                no_improvement += 1
            if current < best:
                best = current
                if X_val is not None:
                    best_weights = autoencoder.get_weights()
            if no_improvement >= n_iter_no_change:
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
        raise TrainingInterrupted(len(history["loss"])) from exc
    callback_list.on_train_end()

    if best_weights is not None:
        autoencoder.set_weights(best_weights)
    n_iter = len(history["loss"])
    if not converged:
        warnings.warn(
            f"Training stopped at epochs={epochs} before the {monitor} stopped "
            f"improving (by tol={tol} for n_iter_no_change={n_iter_no_change} "
            "epochs). Consider more epochs.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return history, n_iter


def _print_epoch(epoch, epochs, logs, verbose):
    print(f"Epoch {epoch + 1}/{epochs}")
    bar = keras.utils.Progbar(1, verbose=verbose)
    bar.update(1, values=list(logs.items()), finalize=True)
