"""Training steps on JAX and PyTorch.

TensorFlow runs a whole epoch as one compiled graph (``skae._training``). On
the other backends an epoch is a Python loop over steps, each step built the
way Keras' own trainers build theirs (``keras/src/backend/{jax,torch}/
trainer.py``): on JAX a jitted pure function of the variables' values
(``StatelessScope`` for the forward pass, ``optimizer.stateless_apply`` for the
update), on PyTorch an eager forward pass and autograd. The loss itself is the
shared ``keras.ops`` code of ``skae._training``.
"""

import keras
import numpy as np

from . import _backend


class Step:
    """One optimizer step on ``loss(*args)``, the model's trainable variables.

    Call :meth:`begin` before a run of steps and :meth:`end` after it: on JAX
    the variables' values live outside the variables in between (callbacks,
    validation and ``get_weights`` see them after :meth:`end`).
    """

    def __init__(self, model, optimizer, loss):
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.trainable = list(model.trainable_variables)
        self._state = None
        if _backend.name() == "jax":
            self._jitted = self._jax_step()

    def _jax_step(self):
        import jax

        trainable, optimizer = self.trainable, self.optimizer
        non_trainable = list(self.model.non_trainable_variables)
        self._non_trainable = non_trainable
        loss = self.loss

        def compute(trainable_values, non_trainable_values, args):
            mapping = list(zip(trainable, trainable_values, strict=True)) + list(
                zip(non_trainable, non_trainable_values, strict=True)
            )
            with keras.StatelessScope(
                state_mapping=mapping, collect_losses=True
            ) as scope:
                value = loss(*args)
            return value, [scope.get_current_value(v) for v in non_trainable]

        grad = jax.value_and_grad(compute, has_aux=True)

        def step(state, args):
            trainable_values, non_trainable_values, optimizer_values = state
            (value, non_trainable_values), grads = grad(
                trainable_values, non_trainable_values, args
            )
            trainable_values, optimizer_values = optimizer.stateless_apply(
                optimizer_values, grads, trainable_values
            )
            return value, (trainable_values, non_trainable_values, optimizer_values)

        return jax.jit(step, donate_argnums=0)

    def begin(self):
        if _backend.name() == "jax":
            self._state = (
                [v.value for v in self.trainable],
                [v.value for v in self._non_trainable],
                [v.value for v in self.optimizer.variables],
            )

    def end(self):
        if self._state is not None:
            variables = (
                self.trainable,
                self._non_trainable,
                self.optimizer.variables,
            )
            for group, values in zip(variables, self._state, strict=True):
                for variable, value in zip(group, values, strict=True):
                    variable.assign(value)
            self._state = None

    def __call__(self, *args):
        """The step's loss (a scalar tensor), taken before the update."""
        if _backend.name() == "jax":
            value, self._state = self._jitted(self._state, args)
            return value
        return self._torch_step(args)

    def _torch_step(self, args):
        import torch

        args = [
            keras.ops.convert_to_tensor(a) if isinstance(a, np.ndarray) else a
            for a in args
        ]
        value = self.loss(*args)
        values = [v.value for v in self.trainable]
        grads = torch.autograd.grad(value, values, allow_unused=True)
        # A variable the loss does not reach gets a zero gradient, as in
        # TensorFlow's tape (which gives None and Keras skips it).
        grads = [
            torch.zeros_like(v) if g is None else g
            for g, v in zip(grads, values, strict=True)
        ]
        with torch.no_grad():
            self.optimizer.apply(grads, self.trainable)
        return value.detach()


def evaluate(fn):
    """``fn`` (a loss without training) as a function returning a float."""
    if _backend.name() == "torch":
        import torch

        def run(*args):
            with torch.no_grad():
                return float(fn(*args))

        return run
    return lambda *args: float(fn(*args))
