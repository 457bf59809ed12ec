"""``python -m benchmarks``: skae's autoencoder against PCA (and UMAP).

Run ``python -m benchmarks --help`` for the options, and see
``benchmarks/README.md`` for what is measured.
"""

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

from benchmarks import _env

# Quick mode is a smoke test: small data, few epochs, one seed. These are the
# only autoencoder settings the benchmark ever overrides.
QUICK_EPOCHS = 10
QUICK_SUBSAMPLE = 2000
# Smallest --subsample the metrics can score: trustworthiness needs more
# than 2 x 10 held-out rows, and the split halves the subsample.
MIN_SUBSAMPLE = 44
DEFAULT_SEEDS = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Compare skae.AutoencoderTransformer (default settings) with PCA, and "
            "UMAP when installed, on UCI digits and MNIST: held-out embedding "
            "quality, reconstruction error and timings. Writes results.json, "
            "report.md and PNG figures."
        ),
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help=(
            "datasets to run, among digits and mnist (space- or comma-separated). "
            "Default: digits, plus mnist when its files are found. An explicitly "
            "requested dataset that cannot be loaded is an error."
        ),
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help=f"number of model random states, 0 to N-1 (default {DEFAULT_SEEDS}; "
        "1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"smoke run: 1 seed, at most {QUICK_SUBSAMPLE} samples per dataset, "
            f"{QUICK_EPOCHS} autoencoder epochs, no UMAP unless --umap"
        ),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="override the autoencoder's epochs (default: its own default; "
        f"{QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument(
        "--subsample",
        type=int,
        metavar="N",
        help="use a stratified random subset of N samples per dataset, at least "
        f"{MIN_SUBSAMPLE} (default: all; {QUICK_SUBSAMPLE} with --quick)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        metavar="DIR",
        help="output directory (default: benchmark-results/)",
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        metavar="DIR",
        help=(
            "directory holding MNIST (mnist.npz or the IDX .gz files). Default: "
            "$SKAE_DATA_HOME, Keras' cache, then ../shared/data/mnist beside "
            "the repository"
        ),
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="let Keras download MNIST when no local copy is found",
    )
    parser.add_argument("--no-umap", action="store_true", help="leave UMAP out")
    parser.add_argument(
        "--umap",
        action="store_true",
        help="include UMAP in a --quick run too (left out by default there: "
        "compiling its numba code alone takes about half a minute)",
    )
    parser.add_argument(
        "--parametric-umap",
        action="store_true",
        help="add umap-learn's ParametricUMAP, with and without its decoder, at "
        "2-D (off by default: on 2 cores it adds about half an hour)",
    )
    _env.add_verbose_flag(parser)
    args = parser.parse_args(argv)

    requested = None
    if args.datasets:
        requested = [n for item in args.datasets for n in item.split(",") if n]
        unknown = sorted(set(requested) - {"digits", "mnist"})
        if unknown:
            parser.error(
                f"unknown dataset(s) {', '.join(unknown)}; choose among digits, mnist"
            )
        requested = list(dict.fromkeys(requested))
    args.datasets = requested
    if args.seeds is None:
        args.seeds = 1 if args.quick else DEFAULT_SEEDS
    if args.epochs is None and args.quick:
        args.epochs = QUICK_EPOCHS
    if args.subsample is None and args.quick:
        args.subsample = QUICK_SUBSAMPLE
    for name in ("seeds", "epochs", "subsample"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    if args.subsample is not None and args.subsample < MIN_SUBSAMPLE:
        parser.error(
            f"--subsample must be at least {MIN_SUBSAMPLE}: the held-out half "
            "must hold more than twice the 10 neighbours trustworthiness "
            f"counts, got {args.subsample}"
        )
    return args


def _json_safe(value):
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return _json_safe(value.item())
    return value


def _protocol(config):
    seeds = config["seeds"]
    lines = [
        "Each dataset is split once into a training and a held-out part, "
        "stratified by label (random_state=0); the split is the same for every "
        f"seed. Seeds ({', '.join(map(str, seeds))}) vary only the models' "
        "random_state (weights and shuffling; PCA's randomized solver; UMAP's "
        "initialisation).",
        "Every method is fitted on the training part only; every metric is "
        "computed on the held-out part through the fitted transform. kNN "
        "accuracy (k=5) classifies held-out codes by their neighbours among the "
        "training codes (UMAP's: its fitted embedding_).",
        "trustworthiness: k=10, on at most 5000 held-out samples (fixed random "
        "subset); k-means ARI/NMI: as many clusters as classes, n_init=10, "
        "random_state=0; silhouette, Davies-Bouldin, Calinski-Harabasz: of the "
        "true classes in the held-out codes (skae.metrics).",
        "recon. MSE: held-out mean squared error of "
        "inverse_transform(transform(X)) in input units; n/a for UMAP, whose "
        "inverse_transform is an approximate interpolation.",
        "fit s: wall time of fit on the training part; transform s: wall time "
        "of transform on the held-out part, after one warm-up call. Each method "
        "is first fitted once, untimed, on a few rows, so that one-off costs of "
        "the process (TensorFlow start-up, UMAP's numba compilation) stay out "
        "of the timings.",
        "Values are mean ± sample standard deviation over seeds.",
    ]
    if config["epochs"] is not None:
        lines.append(
            f"The autoencoder's epochs were overridden: epochs={config['epochs']}."
        )
    else:
        lines.append(
            "The autoencoder runs with its defaults; only n_components and "
            "random_state are set."
        )
    if config.get("structured"):
        lines.append(
            "Structured AE: the same autoencoder with the structure term "
            "(a neighbour-embedding loss on the code), at the 2-D code only: "
            + ", ".join(f"{k}={v!r}" for k, v in config["structured"].items())
            + "; everything else its defaults (with the term on, the "
            "parameters left at 'auto' take its recipe: four hidden layers of "
            "128, GELU, layer normalisation, 512 edges a step, learning rate "
            "1e-2)."
        )
        if config.get("structured_pca"):
            lines.append(
                f"Inputs of more than {config['structured_pca']} features reach "
                f"it through PCA(n_components={config['structured_pca']}), "
                "in a Pipeline: its neighbour graph and network see the PCA "
                "scores, its reconstructions are mapped back by the PCA, and "
                "its fit time includes the PCA's."
            )
    if config["umap"] is not True:
        lines.append(f"UMAP left out: {config['umap']}.")
    parametric = config.get("parametric_umap", "not requested")
    if parametric is True:
        lines.append(
            "ParametricUMAP (umap-learn) at 2-D with its defaults, without and "
            "with its decoder (parametric_reconstruction=True, "
            "autoencoder_loss=True), on the input scaled into [0, 1] by the "
            "training rows' range; its decoder's logits go through a sigmoid "
            "back to the input's units (benchmarks/_peers.py)."
        )
    else:
        lines.append(f"ParametricUMAP left out: {parametric}.")
    return lines


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    print("python -m benchmarks: importing TensorFlow ...", file=sys.stderr, flush=True)
    # Heavy imports after argument parsing, so that --help is instant.
    from . import _data, _env, _peers, _plots, _report, _suite

    # Load everything first, so that a missing dataset fails before any fit.
    datasets, infos = [], {}
    names = args.datasets or ["digits", "mnist"]
    for name in names:
        try:
            data = _data.load(
                name,
                data_home=args.data_home,
                download=args.download,
                subsample=args.subsample,
            )
        except FileNotFoundError as exc:
            if args.datasets:  # asked for by name: the user must know
                print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
                return 1
            infos[name] = {
                "status": "skipped",
                "reason": (
                    "MNIST was not found, so only the default datasets that are "
                    "available were run. Pass --data-home DIR (or set "
                    "SKAE_DATA_HOME) to include it. Details: "
                    + " ".join(str(exc).split())
                ),
            }
            print(f"skipping {name}: not found (see report)", file=sys.stderr)
            continue
        datasets.append(data)
        infos[name] = data.info
        print(
            f"{name}: {data.info['variant']}, {data.info['n_train']} train / "
            f"{data.info['n_test']} held-out, from {data.info['source']}",
            file=sys.stderr,
        )

    methods = ["autoencoder", "structured", "pca"]
    if args.no_umap:
        umap_status = "--no-umap"
    elif args.quick and not args.umap:
        umap_status = "--quick run (pass --umap to include it)"
    else:
        ok, detail = _suite.umap_available()
        umap_status = True if ok else f"{detail}; install skae[benchmarks]"
        if ok:
            methods.append("umap")
    parametric_status = "not requested (--parametric-umap adds it)"
    if args.parametric_umap:
        ok, detail = _peers.parametric_umap_available()
        parametric_status = True if ok else f"{detail}; install skae[benchmarks]"
        if ok:
            methods.extend(_peers.PEERS)

    seeds = list(range(args.seeds))
    total = len(seeds) * sum(
        _suite.runs_method(method, k, d.info["code_sizes"])
        for d in datasets
        for k in d.info["code_sizes"]
        for method in methods
    )
    progress = _suite.Progress(total)
    runs, artifacts = _suite.run_suite(
        datasets, seeds=seeds, methods=methods, epochs=args.epochs, progress=progress
    )
    summary = _report.summarize(runs)

    args.out.mkdir(parents=True, exist_ok=True)
    for data in datasets:
        info = dict(data.info, image_shape=data.image_shape)
        infos[data.name]["figures"] = _plots.write_figures(
            data.name, artifacts[data.name], info, args.out
        )

    config = {
        "datasets": names,
        "datasets_requested": args.datasets,
        "seeds": seeds,
        "quick": args.quick,
        "epochs": args.epochs,
        "subsample": args.subsample,
        "methods": methods,
        "structured": _suite.STRUCTURED,
        "structured_pca": _suite.STRUCTURED_PCA,
        "umap": umap_status,
        "parametric_umap": parametric_status,
        "data_home": None if args.data_home is None else str(args.data_home),
    }
    results = {
        "schema_version": 1,
        "date": _env.now(),
        "command": (
            _env.command_line()
            if argv is None
            else shlex.join(["python", "-m", "benchmarks", *argv])
        ),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "config": config,
        "environment": _env.environment(),
        "protocol": _protocol(config),
        "datasets": infos,
        "runs": runs,
        "summary": summary,
        "targets": _report.check_targets(summary, infos, epochs=args.epochs),
        "total_seconds": time.perf_counter() - start,
    }
    results = _json_safe(results)
    with open(args.out / "results.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, allow_nan=False)
        f.write("\n")
    (args.out / "report.md").write_text(
        _report.render_markdown(results), encoding="utf-8"
    )
    progress.log(f"wrote {args.out / 'report.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
