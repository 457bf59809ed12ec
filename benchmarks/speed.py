"""``python -m benchmarks.speed``: how fast skae trains and transforms.

In one process, on MNIST-shaped data (784 float32 features):

(a) training throughput of the default :class:`skae.AutoencoderTransformer`
    network, in samples/s and in GFLOP/s counted from its Dense layers;
(b) the float32 matmul peak NumPy (and TensorFlow) reach on this machine, the
    yardstick for (a);
(c) the same network (layers, initial weights, optimizer, loss, batch size,
    epochs) trained by plain Keras ``compile`` + ``fit``: the wrapper's time
    ratio against it (target: at most 1.05);
(d) ``transform`` throughput and one-row latency, on its default (NumPy)
    path and forced through Keras, next to a plain NumPy forward pass through
    the same weights, PCA's ``transform``, and Keras' ``predict`` and eager
    call for context; targets: throughput at least 70% of the NumPy forward
    pass's, one-row latency at most 1.5 times PCA's.

Writes ``speed.json`` and ``speed.md`` into ``--out``.
"""

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import _env
from benchmarks._timing import (
    _best_latencies,
    _best_times,
    dense_flops_per_sample,
    fixed_cost,
    matmul_peak,
    numpy_forward,
)

# Quick mode is a smoke test of this script, not a measurement.
QUICK = {
    "n_samples": 1024,
    "epochs": 2,
    "repeats": 1,
    "latency_calls": 10,
    "timing_repeats": 2,
    "matmul_size": 1024,
}
FULL = {
    "n_samples": 10_000,
    "epochs": 3,
    "repeats": 2,
    "latency_calls": 200,
    "timing_repeats": 5,
    "matmul_size": 2048,
}
OVERHEAD_TARGET = 1.05
# Training's steady epochs, against the faster of NumPy's and TensorFlow's
# matmul peak (at least); a repeated fit's fixed cost, in seconds (at most).
PEAK_TARGET = 0.50
FIXED_COST_TARGET = 0.3
# transform against a plain NumPy forward pass (throughput, at least) and
# against PCA.transform (one-row latency, at most).
THROUGHPUT_TARGET = 0.70
LATENCY_TARGET = 1.5
# Alternated rounds of the transform timings; the best of each counts.
TRANSFORM_ROUNDS = {"quick": 1, "full": 3}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed",
        description=(
            "Training and transform speed of skae.AutoencoderTransformer on "
            "MNIST-shaped data, against the machine's matmul peak, plain Keras "
            "and PCA. Writes speed.json and speed.md."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--n-samples",
        type=int,
        metavar="N",
        help=f"training rows (default {FULL['n_samples']}; {QUICK['n_samples']} "
        "with --quick), trimmed to whole batches",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help=f"epochs of each training run (default {FULL['epochs']}; "
        f"{QUICK['epochs']} with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="timed training runs of each kind, alternated; the fastest counts "
        f"(default {FULL['repeats']})",
    )
    parser.add_argument(
        "--n-components", type=int, default=2, metavar="K", help="code width"
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        metavar="DIR",
        help="where MNIST is (default: as python -m benchmarks); random data "
        "when it is not found",
    )
    parser.add_argument(
        "--random-data",
        action="store_true",
        help="use uniform random data even when MNIST is available",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        metavar="DIR",
        help="output directory (default: benchmark-results/)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also run benchmarks.scaling (about 30 min) into the report",
    )
    parser.add_argument(
        "--structured",
        action="store_true",
        help="with --quick: also the structured fit's section (always in full runs)",
    )
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="measure this Keras backend with benchmarks.backends instead",
    )
    _env.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name in ("n_samples", "epochs", "repeats"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    args.latency_calls = preset["latency_calls"]
    args.timing_repeats = preset["timing_repeats"]
    args.matmul_size = preset["matmul_size"]
    return args


def _log(message, start):
    print(
        f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True
    )


def _resolved_learning_rate(estimator):
    """The learning rate ``fit`` uses: "auto" resolved by skae's own rule."""
    from skae._params import make_plan

    return make_plan(estimator, incremental=False).trainer.learning_rate


def _resolved_batch_size(estimator, n_train):
    """The batch size ``fit`` uses on `n_train` rows."""
    if estimator.batch_size != "auto":
        return int(estimator.batch_size)
    # skae does not expose the batch size it chose ("auto"); use its own rule
    # rather than copying it here.
    from skae._params import auto_batch_size as _auto_batch_size

    return int(_auto_batch_size(n_train))


def _n_train(estimator, n):
    if not estimator.early_stopping:
        return n
    return n - round(estimator.validation_fraction * n)


def _whole_batches(estimator, n):
    """Trim `n` to whole batches, so both loops run the same steps on the same rows.

    skae pads its last batch to a full one; Keras runs a short last batch.
    """
    for _ in range(5):
        batch = _resolved_batch_size(estimator, _n_train(estimator, n))
        trimmed = max(batch, (n // batch) * batch)
        if trimmed == n:
            break
        n = trimmed
    return n


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of each epoch (training only, validation included)."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _make_estimator(n_components, epochs, callbacks=None):
    from skae import AutoencoderTransformer

    # A random start: the same stack of Dense layers as the plain Keras model
    # it is timed against (the PCA start adds linear paths beside them).
    return AutoencoderTransformer(
        n_components=n_components,
        init="random",
        random_state=0,
        epochs=epochs,
        callbacks=callbacks,
    )


def fit_wrapper(X, n_components, epochs):
    """Time ``AutoencoderTransformer.fit``; return ``(seconds, epoch_seconds, ae)``."""
    from sklearn.exceptions import ConvergenceWarning

    timer = _epoch_timer()
    ae = _make_estimator(n_components, epochs, callbacks=[timer])
    with warnings.catch_warnings():
        # A few epochs never converge; that is the point here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        ae.fit(X)
        seconds = time.perf_counter() - start
    # The networks trained (the callback's model): fit keeps them, or a
    # simpler candidate that rebuilds its validation rows as well (PCA, or
    # PCA's codes with a decoder: in short smoke runs). Training speed is
    # theirs.
    _, encoder, decoder = timer.model.layers
    return seconds, timer.seconds, ae, (encoder, decoder)


def fit_plain_keras(X, reference, epochs, networks):
    """Train `reference`'s network with plain Keras ``compile`` + ``fit``.

    The encoder and decoder are cloned from the fitted `reference` (same
    layers and seeded initialisers, hence the same initial weights), trained
    with the same optimizer, learning rate, loss, batch size and epochs on the
    input scaled as `reference` scales it. Model building, compiling and
    scaling are timed too, as ``fit`` includes them.

    Returns
    -------
    seconds, epoch_seconds
    """
    import keras

    timer = _epoch_timer()
    n_train = _n_train(reference, len(X))
    batch_size = _resolved_batch_size(reference, n_train)
    start = time.perf_counter()
    sample_shape = tuple(reference.encoder_.input_shape[1:])
    Xs = ((X - reference.input_offset_) / reference.input_scale_).astype(np.float32)
    Xs = Xs.reshape(len(Xs), *sample_shape)
    encoder, decoder = (keras.models.clone_model(model) for model in networks)
    inputs = keras.Input(shape=sample_shape)
    x = inputs
    # Training-only corruption, when skae's defaults use it.
    if reference.noise:
        x = keras.layers.GaussianNoise(reference.noise)(x)
    if reference.masking:
        x = keras.layers.Dropout(reference.masking)(x)  # rescales, unlike skae
    model = keras.Model(inputs, decoder(encoder(x)))
    optimizer = keras.optimizers.get(
        {
            "class_name": reference.optimizer,
            "config": {"learning_rate": _resolved_learning_rate(reference)},
        }
    )
    loss = "mse" if reference.loss == "auto" else reference.loss
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(
        Xs,
        Xs,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer],
        validation_split=reference.validation_fraction
        if reference.early_stopping
        else 0.0,
    )
    seconds = time.perf_counter() - start
    return seconds, timer.seconds


def _steady(epoch_seconds):
    """Median epoch time once graphs are traced (the first epoch excluded)."""
    later = epoch_seconds[1:] or epoch_seconds
    return statistics.median(later)


def load_data(args):
    """MNIST pixels / 255 when found (unless --random-data), else uniform noise."""
    n_wanted = args.n_samples
    if not args.random_data:
        from . import _data

        try:
            bunch = _data.find_mnist(args.data_home)
        except FileNotFoundError:
            bunch = None
        if bunch is not None and len(bunch.data) >= n_wanted:
            X = bunch.data[:n_wanted].astype(np.float32) / np.float32(255)
            source = _data.portable_source(bunch.source)
            return X, f"MNIST {bunch.variant} (first {n_wanted} rows of {source})"
    rng = np.random.default_rng(0)
    X = rng.random((n_wanted, 784), dtype=np.float32)
    return X, f"uniform random float32 in [0, 1), {n_wanted} x 784"


def run(args, start):
    import logging

    import tensorflow as tf

    # Expected here: every fit compiles its own graphs (see benchmarks._suite).
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    threading = tf.config.threading
    X, data_description = load_data(args)
    _log(f"data: {data_description}", start)

    peak = matmul_peak(args.matmul_size, repeats=args.timing_repeats)
    _log(
        f"matmul {args.matmul_size}^2 float32: numpy "
        f"{peak['numpy_gflops']:.1f} GFLOP/s, "
        f"tensorflow {peak['tensorflow_gflops']:.1f} GFLOP/s",
        start,
    )

    probe = _make_estimator(args.n_components, 1)
    n = _whole_batches(probe, len(X))
    if n > len(X):
        # Rounded up to one batch: rows that do not exist would count in
        # every rate.
        raise SystemExit(
            "python -m benchmarks.speed: error: --n-samples must be at least "
            f"one batch ({n} rows here), got {len(X)}"
        )
    X = X[:n]
    if not args.quick:
        # Warm up TensorFlow's runtime (thread pools, kernels) for both
        # contenders, so that neither timed run pays the process's one-off
        # start-up costs.
        _, _, warm, networks = fit_wrapper(X[:512], args.n_components, 1)
        fit_plain_keras(X[:512], warm, 1, networks)

    wrapper_runs, keras_runs = [], []
    peaks = [peak]
    ae = None
    for i in range(args.repeats):
        seconds, epochs_s, ae, networks = fit_wrapper(X, args.n_components, args.epochs)
        wrapper_runs.append({"seconds": seconds, "epoch_seconds": epochs_s})
        _log(f"skae fit {i + 1}/{args.repeats}: {seconds:.2f}s", start)
        seconds, epochs_s = fit_plain_keras(X, ae, args.epochs, networks)
        keras_runs.append({"seconds": seconds, "epoch_seconds": epochs_s})
        _log(f"plain Keras fit {i + 1}/{args.repeats}: {seconds:.2f}s", start)
        # On a shared machine the attainable peak drifts with other processes'
        # load: measure it between training runs too, and keep the best.
        peaks.append(matmul_peak(args.matmul_size, repeats=args.timing_repeats))
    peak = {
        "size": args.matmul_size,
        "numpy_gflops": max(p["numpy_gflops"] for p in peaks),
        "tensorflow_gflops": max(p["tensorflow_gflops"] for p in peaks),
        "measurements": peaks,
    }

    n_train = _n_train(ae, n)
    batch_size = _resolved_batch_size(ae, n_train)
    flops = dense_flops_per_sample(networks)
    training = {}
    for name, runs in (("skae", wrapper_runs), ("keras", keras_runs)):
        seconds = min(r["seconds"] for r in runs)
        steady = min(_steady(r["epoch_seconds"]) for r in runs)
        samples_per_s = n_train * args.epochs / seconds
        steady_samples_per_s = n_train / steady
        training[name] = {
            "runs": runs,
            "seconds": seconds,
            "steady_epoch_seconds": steady,
            "samples_per_second": samples_per_s,
            "steady_samples_per_second": steady_samples_per_s,
            "gflops": flops * samples_per_s / 1e9,
            "steady_gflops": flops * steady_samples_per_s / 1e9,
            "fraction_of_numpy_peak": flops
            * steady_samples_per_s
            / 1e9
            / peak["numpy_gflops"],
            "fraction_of_peak": flops
            * steady_samples_per_s
            / 1e9
            / max(peak["numpy_gflops"], peak["tensorflow_gflops"]),
            # Everything but the epochs, at their steady rate: the first
            # epoch's tracing counts as fixed cost.
            "fixed_seconds": [
                r["seconds"] - len(r["epoch_seconds"]) * _steady(r["epoch_seconds"])
                for r in runs
            ],
        }
    ratio = training["skae"]["seconds"] / training["keras"]["seconds"]
    steady_ratio = (
        training["skae"]["steady_epoch_seconds"]
        / training["keras"]["steady_epoch_seconds"]
    )

    fixed = fixed_cost(X, args.n_components, max(2, args.repeats))
    fixed["target"] = FIXED_COST_TARGET
    fixed["status"] = (
        "PASS" if fixed["repeated_seconds"] <= FIXED_COST_TARGET else "MISS"
    )
    _log(
        f"fixed cost: first fit {fixed['first_seconds']:.2f}s, repeated "
        f"{fixed['repeated_seconds']:.2f}s",
        start,
    )

    # -- transform ------------------------------------------------------------
    transform = time_transform(ae, X, args)
    _log("transform timings done", start)
    sk, pc = transform["skae_transform"], transform["pca_transform"]
    ref = transform["numpy_reference"]
    throughput_ratio = sk["rows_per_second"] / ref["rows_per_second"]
    latency_ratio = sk["latency_seconds"] / pc["latency_seconds"]

    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: info.get(k) for k in ("internal_api", "num_threads", "version")}
            for info in threadpool_info()
        ]
    except ImportError:
        blas = None
    layers = [
        int(layer.kernel.shape[1])
        for model in networks
        for layer in model.layers
        if hasattr(layer, "kernel")
    ]
    return {
        "schema_version": 1,
        "date": _env.now(),
        "command": _env.command_line(),
        "config": {
            "quick": args.quick,
            "n_samples": n,
            "n_train": n_train,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "n_components": args.n_components,
            "batch_size": batch_size,
            "latency_calls": args.latency_calls,
            "data": data_description,
        },
        "environment": dict(
            _env.environment(),
            threads={
                "blas": blas,
                # 0 means TensorFlow's default: one thread per core.
                "tensorflow_intra_op": threading.get_intra_op_parallelism_threads(),
                "tensorflow_inter_op": threading.get_inter_op_parallelism_threads(),
            },
        ),
        "network": {
            "widths": [X.shape[1], *layers],
            # What fit kept of the last timed fit; transform times that one.
            "kept_solution": ae.solution_,
            "hidden_layer_sizes_": getattr(ae, "hidden_layer_sizes_", None),
            "optimizer": ae.optimizer,
            "learning_rate": _resolved_learning_rate(ae),
            "loss": ae.loss,
            "flops_per_sample_epoch": flops,
        },
        "matmul_peak": peak,
        "training": training,
        "peak_target": {
            "fraction": training["skae"]["fraction_of_peak"],
            "target": PEAK_TARGET,
            "status": "PASS"
            if training["skae"]["fraction_of_peak"] >= PEAK_TARGET
            else "MISS",
        },
        "fixed_cost": fixed,
        "wrapper_vs_keras": {
            "time_ratio": ratio,
            "steady_epoch_ratio": steady_ratio,
            "target": OVERHEAD_TARGET,
            "status": "PASS" if ratio <= OVERHEAD_TARGET else "MISS",
            "steady_status": "PASS" if steady_ratio <= OVERHEAD_TARGET else "MISS",
        },
        "transform": transform,
        "transform_ratios": {
            "skae_over_pca_throughput": sk["rows_per_second"] / pc["rows_per_second"],
            "skae_over_pca_latency": latency_ratio,
            "skae_over_numpy_throughput": throughput_ratio,
            "skae_over_numpy_latency": sk["latency_seconds"] / ref["latency_seconds"],
            "numpy_path_over_keras_path_throughput": sk["rows_per_second"]
            / transform["skae_transform_keras_path"]["rows_per_second"],
            "predict_over_skae_latency": transform["keras_predict"]["latency_seconds"]
            / sk["latency_seconds"],
        },
        "transform_targets": {
            "throughput_vs_numpy": {
                "ratio": throughput_ratio,
                "target": THROUGHPUT_TARGET,
                "status": "PASS" if throughput_ratio >= THROUGHPUT_TARGET else "MISS",
            },
            "latency_vs_pca": {
                "ratio": latency_ratio,
                "target": LATENCY_TARGET,
                "status": "PASS" if latency_ratio <= LATENCY_TARGET else "MISS",
            },
        },
    }


def time_transform(ae, X, args):
    """Rows/s and one-row latency of ``ae.transform`` and its yardsticks.

    skae runs on its default path (NumPy for this network) and forced through
    Keras; the NumPy reference and Keras run on pre-scaled input (the network
    alone, skae's scaling excluded), PCA on X as skae does.
    """
    import tensorflow as tf
    from sklearn.decomposition import PCA

    import skae

    n = len(X)
    pca = PCA(n_components=args.n_components, random_state=0).fit(X)
    Xs = ((X - ae.input_offset_) / ae.input_scale_).astype(np.float32)
    Xs = Xs.reshape(len(Xs), *ae.encoder_.input_shape[1:])
    rows = [X[i : i + 1] for i in range(args.latency_calls)]
    rows_scaled = [Xs[i : i + 1] for i in range(args.latency_calls)]
    encoder = ae.encoder_
    reference = numpy_forward(encoder)

    def keras_path(x):
        with skae.inference_path("keras"):
            return ae.transform(x)

    rounds = TRANSFORM_ROUNDS["quick" if args.quick else "full"]
    on_x = {
        "skae_transform": ae.transform,
        "skae_transform_keras_path": keras_path,
        "pca_transform": pca.transform,
    }
    on_scaled = {
        "numpy_reference": reference,
        # The whole array: predict batches it itself.
        "keras_predict": lambda x: encoder.predict(x, batch_size=4096, verbose=0),
        "keras_eager_call": lambda x: encoder(tf.constant(x), training=False).numpy(),
    }
    seconds = _best_times(
        {
            **{k: (lambda f=f: f(X)) for k, f in on_x.items()},
            **{k: (lambda f=f: f(Xs)) for k, f in on_scaled.items()},
        },
        args.timing_repeats,
    )
    latency = _best_latencies(on_x, rows, rounds)
    latency.update(
        _best_latencies(
            {
                "numpy_reference": reference,
                "keras_predict": lambda x: encoder.predict(x, verbose=0),
                "keras_eager_call": on_scaled["keras_eager_call"],
            },
            rows_scaled,
            1,  # Context only; predict's ~0.1 s per call adds up.
        )
    )
    return {
        name: {
            "rows_per_second": n / seconds[name],
            "latency_seconds": latency[name],
        }
        for name in (*on_x, *on_scaled)
    }


def _fmt(value, digits=3):
    from ._report import format_value

    return format_value(value, digits)


def render_markdown(result):
    """Render ``speed.json`` content as ``speed.md``."""
    config, env = result["config"], result["environment"]
    machine = env["machine"]
    net, peak, training = result["network"], result["matmul_peak"], result["training"]
    verdict = result["wrapper_vs_keras"]
    ptarget, fixed = result["peak_target"], result["fixed_cost"]
    out = [
        "# skae speed",
        "",
        f"- date: {result['date']}",
        f"- command: `{result['command']}`",
        f"- machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable), {machine['platform']}",
        f"- load average at the end: {machine.get('load_average')} (1 / 5 / 15 min)",
        f"- thread settings: {machine['thread_environment'] or 'none set'}",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v is not None),
        f"- data: {config['data']}",
        "",
    ]
    if config["quick"]:
        out += ["> **Quick run**: a smoke test of the script; timings are noise.", ""]
    load = machine.get("load_average")
    if load and load[0] > 0.5 * machine["cpu_count"]:
        out += [
            f"> Other processes were busy (load average {load[0]:.1f} on "
            f"{machine['cpu_count']} CPUs): absolute timings are noisy. Ratios "
            "compare alternated runs, which share the conditions best.",
            "",
        ]
    out += [
        "## Training",
        "",
        f"`AutoencoderTransformer(n_components={config['n_components']}, "
        'init="random")` '
        f"network {'-'.join(map(str, net['widths']))}, {net['optimizer']} "
        f"(learning rate {net['learning_rate']:g}), batch size "
        f"{config['batch_size']}, {config['epochs']} epochs on {config['n_train']} "
        f"rows; fastest of {config['repeats']} alternated run(s) each. "
        f"{net['flops_per_sample_epoch'] / 1e6:.2f} MFLOP per sample per epoch "
        "(6 x sum of Dense fan_in x fan_out).",
        "",
        "| trainer | total s ↓ | steady s/epoch ↓ | samples/s ↑ | steady samples/s ↑ "
        "| steady GFLOP/s ↑ | of peak ↑ | fixed s ↓ |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("skae", "skae `AutoencoderTransformer.fit`"),
        ("keras", "plain Keras `compile` + `fit`"),
    ):
        t = training[name]
        out.append(
            f"| {label} | {_fmt(t['seconds'])} | {_fmt(t['steady_epoch_seconds'])} "
            f"| {t['samples_per_second']:.0f} | {t['steady_samples_per_second']:.0f} "
            f"| {_fmt(t['steady_gflops'])} | {t['fraction_of_peak']:.1%} "
            f"| {' / '.join(_fmt(s) for s in t['fixed_seconds'])} |"
        )
    out += [
        "",
        f"- machine peak: {peak['size']}x{peak['size']} float32 matmul, numpy "
        f"{_fmt(peak['numpy_gflops'])} GFLOP/s, TensorFlow "
        f"{_fmt(peak['tensorflow_gflops'])} GFLOP/s (best of "
        f"{len(peak.get('measurements', [peak]))} measurements, before and between "
        "the training runs). Above 100% of it means numpy's BLAS falls short "
        "of the machine's peak, or other processes' load varied.",
        f"- **skae / plain Keras time: {verdict['time_ratio']:.3f}** (target <= "
        f"{verdict['target']:g}: **{verdict['status']}**); steady-state epoch "
        f"ratio **{verdict['steady_epoch_ratio']:.3f}** (**"
        f"{verdict['steady_status']}**). Total times include scaling, building "
        "the model and tracing its graphs, a one-off cost per fit that weighs "
        "heavily in a run of a few epochs; steady epochs exclude the first one.",
        f"- **steady skae training at {ptarget['fraction']:.1%} of peak** (the "
        f"faster of numpy's and TensorFlow's; target >= {ptarget['target']:.0%}: "
        f"**{ptarget['status']}**). Fixed s: each run's total less its epochs at "
        "the steady rate, in run order: the first epoch's tracing, scaling, "
        "PCA's basis of all rows, and the comparison with PCA that ends `fit` "
        "(its decoder on PCA's codes trains a quarter of the epochs, at least "
        "one, untimed by the epoch callback).",
        "",
        "## Fixed cost",
        "",
        f"Wall time of a whole `fit` of {fixed['n_rows']} rows for one epoch "
        f"(`AutoencoderTransformer(n_components={config['n_components']}, "
        "epochs=1)`, defaults otherwise: PCA start, the decoder on PCA's codes, "
        "the comparison that ends `fit`): everything but the epochs, which cost "
        "next to nothing here. The first fit of this configuration in the "
        "process, and the fastest of the repeated ones (another seed each).",
        "",
        f"- first fit: {_fmt(fixed['first_seconds'])} s; **repeated fit: "
        f"{_fmt(fixed['repeated_seconds'])} s** (target <= {fixed['target']:g} s: "
        f"**{fixed['status']}**); repeated runs: "
        f"{', '.join(_fmt(s) for s in fixed['repeated_runs'])} s",
        "",
        "## Transform",
        "",
        f"Throughput on {config['n_samples']} float32 rows (fastest of several "
        "alternated calls) and latency of one-row calls (median of "
        f"{config['latency_calls']}, best of alternated rounds). The NumPy "
        "reference (one matrix product, bias and ReLU per layer through the "
        "fitted float32 weights, no checks) and Keras run on pre-scaled input: "
        "the encoder alone.",
        "",
        "| call | rows/s ↑ | 1-row latency ms ↓ |",
        "|:---|---:|---:|",
    ]
    labels = {
        "skae_transform": "skae `transform` (default: NumPy path)",
        "skae_transform_keras_path": 'skae `transform`, `inference_path("keras")`',
        "numpy_reference": "NumPy reference forward pass",
        "pca_transform": "PCA `transform`",
        "keras_predict": "Keras `encoder.predict`",
        "keras_eager_call": "Keras eager `encoder(x)`",
    }
    for key, label in labels.items():
        t = result["transform"][key]
        out.append(
            f"| {label} | {t['rows_per_second']:.0f} | "
            f"{_fmt(t['latency_seconds'] * 1e3)} |"
        )
    r, targets = result["transform_ratios"], result["transform_targets"]
    through, latency = targets["throughput_vs_numpy"], targets["latency_vs_pca"]
    out += [
        "",
        f"- **skae / NumPy reference throughput: {through['ratio']:.3g}** "
        f"(target >= {through['target']:g}: **{through['status']}**)",
        f"- **skae / PCA 1-row latency: {latency['ratio']:.3g}x** (target <= "
        f"{latency['target']:g}: **{latency['status']}**)",
        f"- skae / PCA throughput: {r['skae_over_pca_throughput']:.3g}x; skae / "
        f"NumPy reference 1-row latency: {r['skae_over_numpy_latency']:.3g}x",
        "- skae NumPy path / Keras path throughput: "
        f"{r['numpy_path_over_keras_path_throughput']:.3g}x; Keras predict / "
        f"skae 1-row latency: {r['predict_over_skae_latency']:.3g}x",
        "",
    ]
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        from . import backends

        more = ["--quick"] if args.quick else []
        return backends.main(["--backend", args.backend, "--out", f"{args.out}", *more])
    start = time.perf_counter()
    _log("importing TensorFlow ...", start)
    result = run(args, start)
    args.out.mkdir(parents=True, exist_ok=True)
    text = render_markdown(result)
    if not args.quick or args.structured:
        from . import structured_speed

        peaks = result["matmul_peak"]
        result["structured"] = structured_speed.run(
            max(peaks["numpy_gflops"], peaks["tensorflow_gflops"]),
            quick=args.quick,
            data_home=args.data_home,
            log=lambda m: _log(m, start),
        )
        text += "\n" + structured_speed.render(result["structured"])
    if args.scaling:
        from . import scaling

        text += "\n" + scaling.section(args.out, args.quick, lambda m: _log(m, start))
    with open(args.out / "speed.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, allow_nan=False)
        f.write("\n")
    (args.out / "speed.md").write_text(text, encoding="utf-8")
    verdict = result["wrapper_vs_keras"]
    _log(
        f"skae / plain Keras training time {verdict['time_ratio']:.3f} "
        f"({verdict['status']}); wrote {args.out / 'speed.md'}",
        start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
