"""What fitting does: one path for ``fit`` and ``partial_fit``.

:func:`fit` takes the call's :class:`~skae._params.Plan` and its validated
:class:`~skae._input.Input`, and returns a :class:`Fitted`, from which the
estimator sets every fitted attribute in one place. The path:

1. the validation split is checked against the number of rows;
2. scaling statistics (continued from the last call for ``partial_fit``), the
   scaling, and a check that the scaled values suit float32 networks;
3. the random streams: ``fit`` draws everything from ``random_state``;
   ``partial_fit`` continues one stream across calls (:class:`StreamState`);
4. row sets, the structure term's neighbour graphs, PCA's basis;
5. training: new networks (one code size, or a search over sizes for a
   fraction of variance), or the fitted ones for one more chunk;
6. the result.
"""

import copy
import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ._compat import frozen
from ._input import BATCH_ROWS, chunk_rows, row_set, scaling_stats
from ._networks import Networks, build, fold_scaling
from ._pca_init import basis_of_rows, pca_r2_curve, select_n_components
from ._scaling import ScalingStats, check_scaled_range, noise_ratio, noise_rms
from ._structure import neighbour_graph
from ._training import Schedule, Trainer, TrainingInterrupted, train
from ._utils import user_stacklevel


@dataclass
class StreamState:
    """Where ``partial_fit`` continues from.

    Attributes
    ----------
    stats : ScalingStats
        The scaling statistics of every row seen so far.
    seed : int
        Seeds the networks' noise and the chunks' shuffles.
    step : int
        Gradient steps taken so far: the position in the noise's stream.
    noise_ratio : float
        The PCA start's noise RMS over the whole data's (1 without a PCA
        start), fixed when the networks were built; see
        :func:`skae._scaling.noise_ratio`.
    """

    stats: ScalingStats
    seed: int
    step: int = 0
    noise_ratio: float = 1.0

    @classmethod
    def start(cls, random_state):
        """The state before the first ``partial_fit`` call."""
        seed = int(check_random_state(random_state).randint(2**31 - 1 - 1000))
        return cls(ScalingStats(), seed)

    def as_dict(self):
        """Plain data, as pickles and saved files hold it."""
        return {
            "stats": dict(vars(self.stats)),
            "seed": self.seed,
            "step": self.step,
            "noise_ratio": self.noise_ratio,
        }

    @classmethod
    def from_dict(cls, state):
        """Inverse of :meth:`as_dict`; ``noise_ratio`` defaults to 1."""
        stats = ScalingStats()
        stats.__dict__.update(state["stats"])
        return cls(
            stats,
            int(state["seed"]),
            int(state["step"]),
            float(state.get("noise_ratio", 1.0)),
        )


@dataclass
class Fitted:
    """Everything a fit leaves: what the estimator's fitted attributes hold.

    ``trainer`` is kept (in memory only) for the next ``partial_fit`` call;
    ``reconstruction_r2`` and ``n_components_scores`` come from the search for
    a fraction of variance.
    """

    networks: Networks
    history: dict
    n_iter: int
    offset: np.ndarray
    scale: np.ndarray
    init: str
    stream: StreamState | None
    input_shape: tuple
    sample_shape: tuple
    trainer: Trainer | None = None
    reconstruction_r2: float | None = None
    n_components_scores: dict | None = None


class FitInterrupted(Exception):
    """A KeyboardInterrupt after at least one epoch of ``fit``.

    ``fitted`` holds the networks reached so far (the best ones with early
    stopping), which the estimator keeps.
    """

    def __init__(self, fitted):
        super().__init__(fitted)
        self.fitted = fitted


@dataclass
class _Run:
    """What training reads: the prepared data, scaling, rows and randomness."""

    X: object
    input_shape: tuple
    sample_shape: tuple
    stats: ScalingStats
    offset: np.ndarray
    scale: np.ndarray
    train_rows: object
    val_rows: object
    basis: object
    seed: int
    rng: np.random.RandomState
    stream: StreamState | None
    previous: Fitted | None


@dataclass
class _Trained:
    networks: Networks
    history: dict
    n_iter: int
    trainer: Trainer | None = None
    steps: int = 0
    r2: float | None = None
    scores: dict | None = None


class _Interrupted(Exception):
    def __init__(self, trained):
        super().__init__(trained)
        self.trained = trained


def fit(plan, data, previous=None):
    """Fit new networks, or (``plan.incremental``) train ``previous`` on a chunk.

    ``previous`` is the estimator's :class:`Fitted` state when ``partial_fit``
    continues, else None. A failed ``partial_fit`` call restores the networks'
    weights and sets ``previous.trainer`` to None (its optimizer saw the
    failed steps); a ``KeyboardInterrupt`` during ``fit`` after an epoch raises
    :class:`FitInterrupted`.
    """
    run = _prepare(plan, data, previous)
    try:
        if plan.search:
            trained = _search(plan, run)
        elif plan.incremental:
            trained = _train_chunk(plan, run)
        else:
            trained = _train_new(plan, run, plan.n_components)
    except _Interrupted as exc:
        raise FitInterrupted(_result(plan, run, exc.trained)) from exc.__cause__
    return _result(plan, run, trained)


def _prepare(plan, data, previous):
    """Steps 1 to 4: everything training reads, in a :class:`_Run`."""
    X, n = data.X, data.X.shape[0]
    n_val = _validation_size(plan, n) if plan.holds_out else 0
    stream = previous.stream if previous is not None else None
    stats = copy.deepcopy(stream.stats) if stream is not None else ScalingStats()
    stats = scaling_stats(X, stats)
    offset, scale = stats.result(plan.scaling)
    check_scaled_range(stats, offset, scale, plan.loss, plan.scaling_param)

    train_idx, val_idx = np.arange(n), None
    if plan.incremental:
        if stream is None:
            stream = StreamState.start(plan.random_state)
        # One stream of noise across calls; each chunk its own shuffle.
        seed, rng = stream.seed, np.random.RandomState([stream.seed, stream.step])
    else:
        rng = check_random_state(plan.random_state)
        if n_val:
            order = rng.permutation(n)
            train_idx, val_idx = order[n_val:], order[:n_val]
        seed = int(rng.randint(2**31 - 1 - 1000))
    train_rows = row_set(X, train_idx, offset, scale, data.input_shape)
    val_rows = None
    if val_idx is not None:
        val_rows = row_set(X, val_idx, offset, scale, data.input_shape)
    if plan.structure_weight > 0:
        # With partial_fit, the structure term of a chunk preserves the
        # chunk's neighbours.
        for rows in (train_rows, val_rows):
            if rows is not None:
                rows.graph = neighbour_graph(
                    rows.X.reshape(rows.n, -1), plan.n_neighbors, random_state=seed
                )
    basis = None
    if previous is None and plan.init == "pca":
        k = None if plan.search else plan.n_components
        basis = basis_of_rows(train_rows, k, seed)
    if plan.incremental and previous is None:
        # The first chunk's residual share sets the noise for all.
        stream.noise_ratio = noise_ratio(stats, scale, basis, plan.n_components)
    return _Run(
        X=X,
        input_shape=data.input_shape,
        sample_shape=data.sample_shape,
        stats=stats,
        offset=offset,
        scale=scale,
        train_rows=train_rows,
        val_rows=val_rows,
        basis=basis,
        seed=seed,
        rng=rng,
        stream=stream,
        previous=previous,
    )


def _validation_size(plan, n):
    """Rows held out for validation, checked to leave enough for both sides."""
    n_val, n_train = round(plan.validation_fraction * n), 1
    if plan.search:
        # The search's R² divides by the validation rows' spread, which one
        # row does not have: every code size would score a perfect 1. Its
        # PCA basis needs two training rows as well.
        n_val, n_train = max(n_val, 2), 2
    if n_val < 1 or n - n_val < n_train:
        purpose = (
            f"two for training and two for the R² of n_components={plan.n_components!r}"
            if plan.search
            else "one for training and one for validation"
        )
        raise ValueError(
            f"Expected validation_fraction to leave at least {purpose}. "
            f"Received: validation_fraction={plan.validation_fraction} with "
            f"n_samples={n}"
        )
    return n_val


def _schedule(plan, run, **kwargs):
    return Schedule(
        tol=plan.tol,
        n_iter_no_change=plan.n_iter_no_change,
        verbose=plan.verbose,
        chunk_rows=chunk_rows(run.X),
        **kwargs,
    )


def _train_new(plan, run, n_components):
    """Build networks with a code of ``n_components`` and train them."""
    networks = build(
        plan, run.input_shape, n_components, seed=run.seed, basis=run.basis
    )
    rows = run.train_rows
    trainer = Trainer(
        networks.encoder,
        networks.decoder,
        plan.trainer,
        batch_size=min(plan.batch_size_for(rows.n), rows.n),
        seed=int(run.rng.randint(2**31 - 1)),
    )
    epochs = plan.epochs_for(rows.n)
    noise = plan.noise * noise_rms(run.stats, run.scale, run.basis, n_components)
    schedule = _schedule(
        plan, run, epochs=epochs, noise=noise, callbacks=plan.callbacks
    )
    try:
        history, n_iter = train(trainer, rows, run.val_rows, schedule, run.rng)
    except TrainingInterrupted as exc:
        raise _Interrupted(_Trained(networks, exc.history, exc.n_iter)) from exc
    if trainer.structure_weight > 0:
        try:
            history.update(_tune_decoder(plan, run, networks, trainer, epochs))
        except TrainingInterrupted as exc:
            raise _Interrupted(_Trained(networks, history, n_iter)) from exc
    return _Trained(networks, history, n_iter)


def _tune_decoder(plan, run, networks, trainer, epochs):
    """Train the decoder alone on the structured codes; return its history.

    Training with the structure term spends part of the decoder's capacity
    on codes that are still moving; once the encoder is fixed, a quarter of
    the epochs for the decoder alone lowers the reconstruction error (MNIST
    10k, seed 0: held-out MSE 0.0372 without this phase, 0.0369 with it).
    The codes, and so ``transform``, are unchanged. The inputs are clean (no
    noise, no masking): the decoder learns the codes ``transform`` returns
    (with ``masking=0.3``, held-out MSE 9% lower on MNIST 2k, the same to
    within the seeds' spread on digits and breast cancer; see the user
    guide's page on structure).
    """
    with frozen(networks.encoder):
        tuner = Trainer(
            networks.encoder,
            networks.decoder,
            dataclasses.replace(
                plan.trainer, noise=0.0, masking=0.0, structure_weight=0.0
            ),
            batch_size=trainer.batch_size,
            seed=int(run.rng.randint(2**31 - 1)),
        )
        schedule = _schedule(
            plan, run, epochs=max(1, epochs // 4), noise=0.0, warn_convergence=False
        )
        history, _ = train(tuner, run.train_rows, run.val_rows, schedule, run.rng)
    return {f"decoder_{key}": value for key, value in history.items()}


def _train_chunk(plan, run):
    """One ``partial_fit`` epoch over the chunk; on failure, undo it."""
    previous, rows = run.previous, run.train_rows
    if previous is None:
        networks = build(
            plan, run.input_shape, plan.n_components, seed=run.seed, basis=run.basis
        )
        trainer, history, n_iter = None, {"loss": []}, 0
    else:
        networks, trainer = previous.networks, previous.trainer
        history, n_iter = previous.history, previous.n_iter
        saved = networks.encoder.get_weights(), networks.decoder.get_weights()
    try:
        if previous is not None:
            fold_scaling(
                networks.encoder,
                networks.decoder,
                previous.offset,
                previous.scale,
                run.offset,
                run.scale,
            )
        # The trainer (and its optimizer's moments) carries over unless
        # set_params changed what it was made from: then a new one, as a
        # pickled copy, which has none, would make.
        if trainer is None or trainer.options != plan.trainer:
            trainer = Trainer(
                networks.encoder,
                networks.decoder,
                plan.trainer,
                # Not clipped to this chunk's rows: later chunks may be larger.
                batch_size=plan.batch_size_for(rows.n),
                seed=run.seed,
            )
        noise = plan.noise * noise_rms(run.stats, run.scale) * run.stream.noise_ratio
        schedule = _schedule(
            plan,
            run,
            epochs=1,
            noise=noise,
            callbacks=plan.callbacks,
            first_step=run.stream.step,
            warn_convergence=False,
        )
        chunk_history, _ = train(trainer, rows, None, schedule, run.rng)
    except BaseException as exc:
        if previous is not None:
            networks.encoder.set_weights(saved[0])
            networks.decoder.set_weights(saved[1])
            # The optimizer's moments saw the failed steps.
            previous.trainer = None
        if isinstance(exc, TrainingInterrupted):
            # Interrupted after its one epoch: still the user's Ctrl-C.
            raise KeyboardInterrupt from exc
        raise
    history = {"loss": history.get("loss", []) + chunk_history["loss"]}
    steps = trainer.steps_per_epoch(rows, chunk_rows(run.X))
    return _Trained(networks, history, n_iter + 1, trainer, steps)


def _search(plan, run):
    """The smallest code whose validation R² reaches ``n_components``.

    PCA's validation R² for every size bounds the search and guides it (see
    :func:`skae._pca_init.select_n_components`): a few fits, not one per
    size.
    """
    target = float(plan.n_components)
    basis = run.basis
    if basis is None:
        basis = basis_of_rows(run.train_rows, None, 0)
    baseline, sst = pca_r2_curve(
        basis, run.val_rows.batches(BATCH_ROWS), return_sst=True
    )
    trained = {}

    def fit_and_score(k):
        trained[k] = _train_new(plan, run, k)
        encoder, decoder = trained[k].networks.encoder, trained[k].networks.decoder
        sse = 0.0
        for xb in run.val_rows.batches(BATCH_ROWS):
            codes = encoder(xb, training=False)
            rebuilt = np.asarray(decoder(codes, training=False), np.float64)
            sse += float(np.sum((xb.astype(np.float64) - rebuilt) ** 2))
        # Constant validation rows have nothing to explain: PCA's curve
        # counts them as fully explained too.
        return 1.0 - sse / sst if sst > 0 else 1.0

    result = select_n_components(target, fit_and_score, baseline=baseline)
    k = int(result.n_components)
    if k not in trained:
        result.scores[k] = fit_and_score(k)
    if result.scores[k] < target:
        # The search ends at PCA's size for the target, which the PCA
        # start (kept as an early-stopping candidate) reaches when the
        # loss is reconstruction alone. It falls short when PCA itself
        # does at every size (few training rows), or when a structure
        # term or code_l1 keeps weights that rebuild worse.
        if baseline[k - 1] < target:
            why = (
                "PCA does not reach it either, at any size that "
                f"{run.train_rows.n} training rows allow"
            )
        else:
            why = (
                "loss terms other than the reconstruction "
                "(structure_weight, code_l1) trade it away"
            )
        warnings.warn(
            "No code size reached a validation reconstruction R² of "
            f"n_components={plan.n_components!r}: n_components_={k}, the "
            f"largest size searched, reaches {result.scores[k]:.4g}; {why}. "
            "Pass an int n_components to choose the size.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    best = trained[k]
    best.r2, best.scores = result.scores[k], dict(result.scores)
    return best


def _result(plan, run, trained):
    """The :class:`Fitted` of a completed (or interrupted) call."""
    n_components = int(trained.networks.encoder.output_shape[-1])
    previous = run.previous
    if plan.incremental:
        stream = run.stream
        stream = StreamState(
            run.stats, stream.seed, stream.step + trained.steps, stream.noise_ratio
        )
        if previous is None:
            init = "pca" if run.basis is not None else "random"
            sample_shape = run.sample_shape
        else:
            init, sample_shape = previous.init, previous.sample_shape
    else:
        stream = StreamState(
            run.stats,
            int(run.rng.randint(2**31 - 1)),
            0,
            noise_ratio(run.stats, run.scale, run.basis, n_components),
        )
        init, sample_shape = plan.init, run.sample_shape
    return Fitted(
        networks=trained.networks,
        history=trained.history,
        n_iter=trained.n_iter,
        offset=run.offset,
        scale=run.scale,
        init=init,
        stream=stream,
        input_shape=run.input_shape,
        sample_shape=sample_shape,
        trainer=trained.trainer,
        reconstruction_r2=trained.r2,
        n_components_scores=trained.scores,
    )
