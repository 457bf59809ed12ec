"""The training loop.

Keras' ``Model.fit`` costs milliseconds of Python and dispatch per step, which
dominates for the small networks and small batches an autoencoder of tabular data
uses. Here one compiled graph runs a whole epoch, which makes training several
times faster, and every random draw (weights, shuffling, input noise) comes from
seeds we own, so training is reproducible without touching global random state.
"""

import logging
import math
import os
import sys
import warnings

import joblib
import keras
import numpy as np
import sklearn
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning

LOSSES = ("mse", "binary_crossentropy")

# Frames in these folders are skae's own or the wrappers between a user's call and
# skae (sklearn's ``_fit_context``, ``fit_transform``, pipelines, searches).
_INTERNAL_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__, joblib.__file__)
)


class _OwnRetracingFilter(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" warning for skae's own.

    Every fit traces new functions for its new variables, by design; TensorFlow
    counts the traces of all fits together (per code object) and, from the
    fifth estimator on, warns about retracing with advice that does not apply.
    Warnings about any other function pass.
    """

    _OWN = (
        "train.<locals>.run_epoch",
        "train.<locals>.eval_loss",
        "AutoencoderTransformer._inference_fn.<locals>",
    )

    def filter(self, record):
        message = record.getMessage()
        return not (
            "tf.function retracing" in message
            and any(f"<function {name}" in message for name in self._OWN)
        )


tf.get_logger().addFilter(_OwnRetracingFilter())


class TrainingInterrupted(Exception):
    """Raised internally to carry a KeyboardInterrupt out with the epochs run.

    ``n_iter`` is the number of completed epochs and ``history`` their losses, so
    the interrupted estimator's ``history_`` and ``n_iter_`` agree.
    """

    def __init__(self, n_iter, history):
        super().__init__(n_iter, history)
        self.n_iter = n_iter
        self.history = history


def user_stacklevel():
    """``stacklevel`` for ``warnings.warn`` that points at the user's own code.

    Counts the frames, starting at the function that calls this one, up to the
    first frame outside skae, scikit-learn and joblib: a fixed ``stacklevel``
    would point at scikit-learn's ``_fit_context`` wrapper for ``fit`` and at yet
    another line for ``fit_transform`` or a ``Pipeline``.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame = frame.f_back
        level += 1
    return level


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
    restored. Raises ``ValueError`` on a non-finite loss or non-finite weights, and
    ``TrainingInterrupted`` on a KeyboardInterrupt after at least one epoch.
    """
    inputs = keras.Input(shape=encoder.input_shape[1:])
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    variables = autoencoder.trainable_variables
    optimizer.build(variables)
    if not tf.distribute.has_strategy():
        # Keras' TF optimizer sums gradients across replicas through a
        # tf.custom_gradient, which in a traced function registers a gradient in
        # TensorFlow's global registry that is never removed and pins the whole
        # epoch graph: every fit leaked ~4 MB (tensorflow#27492, #97697). With one
        # replica the sum is the identity, so skipping it changes no result.
        optimizer._all_reduce_sum_gradients = list
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
        if not _finite_weights(autoencoder):
            raise  # Nothing worth keeping: the estimator stays unfitted.
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
    if not converged:
        warnings.warn(
            f"Training stopped at epochs={epochs} before the {monitor} stopped "
            f"improving (by tol={tol} for n_iter_no_change={n_iter_no_change} "
            "epochs). Consider more epochs.",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return history, n_iter


def _diverged_message(expected, received):
    return (
        f"Expected {expected}. Received: {received}. Training diverged: lower "
        "learning_rate, check the input for extreme values, or use "
        "scaling='standard'."
    )


def _finite_weights(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


def _print_epoch(epoch, epochs, logs, verbose):
    print(f"Epoch {epoch + 1}/{epochs}")
    bar = keras.utils.Progbar(1, verbose=verbose)
    bar.update(1, values=list(logs.items()), finalize=True)
