"""Training steps on JAX and PyTorch.

TensorFlow runs a whole epoch as one compiled graph (``skae._training``). On
the other backends an epoch is a Python loop over steps, each step built the
way Keras' own trainers build theirs (``keras/src/backend/{jax,torch}/
trainer.py``): on JAX a jitted pure function of the variables' values
(``StatelessScope`` for the forward pass, ``optimizer.stateless_apply`` for the
update), on PyTorch an eager forward pass and autograd. The loss itself is the
shared ``keras.ops`` code of ``skae._training``.

Under a ``keras.distribution.DataParallel`` (JAX, see ``skae._distribute``)
the step's values are replicated on the mesh and its per-row arguments
sharded over the batch axis: XLA partitions the same jitted step.
"""

import keras
import numpy as np

from . import _backend, _distribute


class Step:
    """One optimizer step on ``loss(*args)``, the model's trainable variables.

    Call :meth:`begin` before a run of steps and :meth:`end` after it: on JAX
    the variables' values live outside the variables in between (callbacks,
    validation and ``get_weights`` see them after :meth:`end`). ``rows``: the
    positions of the arguments that hold one entry per row of the batch
    (indices, mixing fractions), which a data-parallel step shards; the
    others (the data, scalars) are replicated.
    """

    def __init__(self, model, optimizer, loss, rows=()):
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.trainable = list(model.trainable_variables)
        self._state = None
        # The distribution the step was built under (None on one device).
        self.parallel = _distribute.active()
        self._rows = frozenset(rows)
        self._replicated = {}
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

        parallel, rows = self.parallel, self._rows

        def step(state, args):
            if parallel is not None:
                args = tuple(
                    parallel.shard_rows(a) if i in rows else a
                    for i, a in enumerate(args)
                )
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
            self._state = tuple(
                [self._place(v.value) for v in group]
                for group in (
                    self.trainable,
                    self._non_trainable,
                    self.optimizer.variables,
                )
            )

    def _place(self, value):
        # Variables built outside the distribution (a partial_fit continuing
        # an earlier fit's networks) are replicated here: one jitted step
        # cannot mix one device's arrays with the mesh's.
        return value if self.parallel is None else self.parallel.replicate(value)

    def end(self):
        self._replicated.clear()
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
            if self.parallel is not None:
                args = tuple(
                    a if i in self._rows else self._replicate(a)
                    for i, a in enumerate(args)
                )
            value, self._state = self._jitted(self._state, args)
            return value
        return self._torch_step(args)

    def _replicate(self, value):
        # The data (a chunk, the noise bank: backend arrays) is copied to
        # every device once per run of steps, not at every step; NumPy
        # arguments (seeds) are left to jit.
        import jax

        if not isinstance(value, jax.Array):
            return value
        key = id(value)
        if key not in self._replicated:
            self._replicated[key] = (value, self.parallel.replicate(value))
        return self._replicated[key][1]

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
