"""``python -m benchmarks.backends``: skae's speed on each Keras backend.

Each backend runs in its own process (Keras loads one per process), one after
the other, on the same data, and reports:

* **steady GFLOP/s**: training FLOPs of the default dense network (random
  start, as ``benchmarks.speed``) per second of a steady epoch (the median of
  the epochs after the first), on MNIST-shaped rows; beside the machine's
  float32 matmul peak, NumPy's and the backend's own, measured in that process;
* **fixed cost**: the wall time of a whole ``fit`` of 64 rows for one epoch
  (building, tracing or compiling, the PCA comparison), what every small fit
  pays whatever its data;
* **transform throughput**: rows/s of ``transform`` on its default NumPy path
  (the same on every backend) and forced through the backend's Keras path;
* **structured fit**: wall time of a ``structure_weight=1`` fit of the UCI
  digits for a fixed number of epochs.

``python -m benchmarks.speed --backend jax`` runs this for one backend. Writes
``backends.json`` and ``backends.md`` into ``--out``. ``--merge`` takes the
``backends.json`` of several runs (one backend each, or repeated runs
alternating between backends on a noisy machine) and writes one table, each
figure the best of its backend's runs.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
QUICK = {"n_samples": 1024, "epochs": 2, "structured_epochs": 3, "rounds": 1}
FULL = {"n_samples": 10_000, "epochs": 4, "structured_epochs": 50, "rounds": 2}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backends",
        description="skae's training and transform speed on each Keras backend.",
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="a backend to measure (repeatable; default: every installed one)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        metavar="DIR",
        help="output directory (default: benchmark-results/)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="combine the backends.json of earlier runs instead of measuring",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _installed(backend):
    import importlib.util

    module = {"tensorflow": "tensorflow", "jax": "jaxlib", "torch": "torch"}
    return importlib.util.find_spec(module[backend]) is not None


def _best(fn, rounds):
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(preset):
    """The figures of the backend this process runs on (KERAS_BACKEND)."""
    import warnings

    import keras
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning

    import skae

    from ._timing import dense_flops_per_sample
    from .speed import _epoch_timer, _steady

    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    size = 1024 if preset is QUICK else 2048
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    flops = 2 * size**3
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    peak = {
        "numpy_gflops": flops / _best(lambda: a @ b, 3) / 1e9,
        "backend_gflops": flops
        / _best(lambda: keras.ops.convert_to_numpy(keras.ops.matmul(ta, tb)), 3)
        / 1e9,
    }
    X = rng.random((preset["n_samples"], 784), dtype=np.float32)
    timer = _epoch_timer()
    ae = skae.AutoencoderTransformer(
        init="random", random_state=0, epochs=preset["epochs"], callbacks=[timer]
    )
    start = time.perf_counter()
    ae.fit(X)
    fit_seconds = time.perf_counter() - start
    steady = _steady(timer.seconds)
    # The networks the timed epochs trained (the callback's model), whichever
    # candidate fit kept: PCA's linear networks have a fraction of their FLOPs.
    _, encoder, decoder = timer.model.layers
    per_sample = dense_flops_per_sample([encoder, decoder])
    small = X[:64]
    fixed = _best(
        lambda: skae.AutoencoderTransformer(epochs=1, random_state=0).fit(small),
        preset["rounds"],
    )
    numpy_path = _best(lambda: ae.transform(X), preset["rounds"] + 1)
    with skae.inference_path("keras"):
        ae.transform(X[:100])  # traced or compiled once
        keras_path = _best(lambda: ae.transform(X), preset["rounds"] + 1)
    digits = load_digits().data
    structured = _best(
        lambda: skae.AutoencoderTransformer(
            structure_weight=1.0,
            epochs=preset["structured_epochs"],
            random_state=0,
        ).fit(digits),
        1,
    )
    return {
        "backend": keras.backend.backend(),
        "matmul_peak": peak,
        "fit_seconds": fit_seconds,
        "steady_epoch_seconds": steady,
        "steady_gflops": per_sample * len(X) / steady / 1e9,
        "fixed_cost_seconds": fixed,
        "transform_rows_per_second": {
            "numpy": len(X) / numpy_path,
            "keras": len(X) / keras_path,
        },
        "structured_fit_seconds": structured,
        "structured_epochs": preset["structured_epochs"],
        "rows": len(X),
    }


def render_markdown(results, load):
    lines = [
        "# skae on each Keras backend",
        "",
        f"Load average: {load}. One process per backend, run one after the "
        "other; figures are the best of the rounds (and of the runs merged).",
        "",
        "| | " + " | ".join(r["backend"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row(
        "matmul peak, NumPy (GFLOP/s)",
        lambda r: f"{r['matmul_peak']['numpy_gflops']:.0f}",
    )
    row(
        "matmul peak, backend (GFLOP/s)",
        lambda r: f"{r['matmul_peak']['backend_gflops']:.0f}",
    )
    row("steady training (GFLOP/s)", lambda r: f"{r['steady_gflops']:.1f}")
    row(
        "steady training, % of the faster peak",
        lambda r: f"{100 * r.get('steady_fraction', _fraction(r)):.0f}%",
    )
    row("fixed cost of a fit (s)", lambda r: f"{r['fixed_cost_seconds']:.2f}")
    row(
        "transform, NumPy path (rows/s)",
        lambda r: f"{r['transform_rows_per_second']['numpy']:,.0f}",
    )
    row(
        "transform, Keras path (rows/s)",
        lambda r: f"{r['transform_rows_per_second']['keras']:,.0f}",
    )
    row("runs", lambda r: str(r.get("runs", 1)))
    row(
        "structured fit, digits (s)",
        lambda r: f"{r['structured_fit_seconds']:.1f} ({r['structured_epochs']} ep.)",
    )
    return "\n".join(lines) + "\n"


def merge(runs):
    """One result per backend, each figure the best of that backend's runs."""
    best = {}
    for run in runs:
        run = {**run, "steady_fraction": _fraction(run)}
        if run["backend"] not in best:
            best[run["backend"]] = json.loads(json.dumps(run))
            best[run["backend"]]["runs"] = 1
            continue
        kept = best[run["backend"]]
        kept["runs"] += 1
        for key in ("numpy_gflops", "backend_gflops"):
            kept["matmul_peak"][key] = max(
                kept["matmul_peak"][key], run["matmul_peak"][key]
            )
        for key in ("numpy", "keras"):
            kept["transform_rows_per_second"][key] = max(
                kept["transform_rows_per_second"][key],
                run["transform_rows_per_second"][key],
            )
        if run["steady_gflops"] > kept["steady_gflops"]:
            # Its fraction of the peak measured in the same process.
            for key in ("steady_gflops", "steady_epoch_seconds", "steady_fraction"):
                kept[key] = run[key]
        for key in ("fit_seconds", "fixed_cost_seconds", "structured_fit_seconds"):
            kept[key] = min(kept[key], run[key])
    return [best[b] for b in BACKENDS if b in best]


def _fraction(result):
    """Steady GFLOP/s over the faster matmul peak measured in the same run."""
    return result["steady_gflops"] / max(result["matmul_peak"].values())


def main(argv=None):
    args = parse_args(argv)
    preset = QUICK if args.quick else FULL
    if args.child:
        print(json.dumps(measure(preset)))
        return 0
    if args.merge:
        runs = [r for path in args.merge for r in json.loads(path.read_text())]
        results = merge(runs)
        loads = sorted({r.get("load", "not recorded") for r in runs})
        _write(args.out, results, "; ".join(loads))
        return 0
    backends = args.backend or [b for b in BACKENDS if _installed(b)]
    missing = [b for b in backends if not _installed(b)]
    if missing:
        raise SystemExit(
            f"Expected installed backends. Received: --backend {missing[0]} "
            f'(pip install "skae[{missing[0]}]")'
        )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = []
    for backend in backends:
        print(f"[backends] {backend} ...", file=sys.stderr, flush=True)
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, "-m", "benchmarks.backends", "--child", backend]
        if args.quick:
            command.append("--quick")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-3000:])
            raise SystemExit(f"the {backend} run failed")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        results.append(result)
    _write(args.out, results, load)
    return 0


def _write(out, results, load):
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = render_markdown(results, load)
    (out / "backends.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    sys.exit(main())
