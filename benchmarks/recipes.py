"""``python -m benchmarks.recipes``: plain recipes against both sets of targets.

Issue 27 asks the defaults for two things: 2-D codes of images that keep
neighbourhoods (held-out kNN accuracy and trustworthiness on the main
benchmark's digits and MNIST splits) and codes that behave like PCA's scores
in a pipeline (the drop-in benchmark's reconstruction ratio and downstream
differences). This lab run scores each recipe below on both, in one process:

- ``defaults``: ReLU, no normalisation, learning rate 1e-3;
- ``gelu-layer``: GELU, layer normalisation, learning rate 3e-3 (the structure
  term's activation and normalisation, at a rate between the two recipes');
- ``gelu-layer-patient``: that, with ``n_iter_no_change=30``, so that fits on
  small data run nearer their epoch budget;
- ``noise-0.3``, ``noise-0``, ``gelu-layer-noise-0.3``, ``gelu-layer-noise-0``:
  the defaults and ``gelu-layer`` with less input noise than the default 0.7
  (``--recipes`` picks; all by default).

Writes ``recipes.json`` into ``--out`` and prints one line per recipe.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from benchmarks import _env, dropin
from benchmarks._report import aggregate, format_mean_std

PROG = "python -m benchmarks.recipes"
GELU_LAYER = {"activation": "gelu", "normalization": "layer", "learning_rate": 3e-3}
RECIPES = {
    "defaults": {},
    "gelu-layer": GELU_LAYER,
    "gelu-layer-patient": {**GELU_LAYER, "n_iter_no_change": 30},
    "noise-0.3": {"noise": 0.3},
    "noise-0": {"noise": 0.0},
    "gelu-layer-noise-0.3": {**GELU_LAYER, "noise": 0.3},
    "gelu-layer-noise-0": {**GELU_LAYER, "noise": 0.0},
}


def image_codes(name, seeds, params):
    """Held-out 2-D figures of the main benchmark's split of ``name``."""
    from benchmarks._data import load
    from benchmarks._suite import _metrics
    from skae import AutoencoderTransformer

    data = load(name)
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ae = AutoencoderTransformer(2, random_state=seed, **params)
            ae.fit(data.X_train)
        fit = time.perf_counter() - start
        Z_train, Z_test = ae.transform(data.X_train), ae.transform(data.X_test)
        metrics = _metrics(data, Z_train, Z_test, ae.inverse_transform(Z_test))
        runs.append(
            {
                "seed": seed,
                "knn": metrics["knn_accuracy"],
                "trustworthiness": metrics["trustworthiness"],
                "mse": metrics["reconstruction_mse"],
                "fit_s": fit,
                "n_iter": int(ae.n_iter_),
                "solution": ae.solution_,
            }
        )
    return runs


CASE_KEYS = (
    "dataset", "prep", "k", "ratio_mean", "downstream_difference_mean",
    "pca_knn", "ae_knn", "ae_fit_s", "solutions",
)  # fmt: skip


def _compact(case):
    """A drop-in case's means, without its runs."""
    return {key: case[key] for key in CASE_KEYS}


def _line(name, result):
    parts = [f"{name}:"]
    for image, runs in result["images"].items():
        knn, trust, fit = (
            aggregate([run[key] for run in runs])
            for key in ("knn", "trustworthiness", "fit_s")
        )
        parts.append(
            f"{image} 2-D kNN {format_mean_std(knn)}, trust "
            f"{format_mean_std(trust)}, fit {fit['mean']:.1f} s;"
        )
    s = result["tables"]
    if s is not None:
        parts.append(
            f"tables: geometric mean {s['geometric_mean_ratio']:.3f}, downstream "
            f"mean {s['mean_downstream_difference']:+.4f}, lowest "
            f"{s['min_downstream_difference']:+.3f}, 5-NN mean "
            f"{s['mean_knn_difference']:+.4f}, {s['cases_over_ratio']} cases over "
            f"{dropin.MAX_RATIO}; 200 x 13 fit {result['small_fit_s']:.2f} s"
        )
    return " ".join(parts)


def main(argv=None):
    from benchmarks._data import DATASETS
    from benchmarks._tabular import LOADERS

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--images", nargs="*", default=["digits", "mnist"])
    parser.add_argument("--tables", nargs="*", default=list(LOADERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"))
    args = parser.parse_args(argv)
    for kind, names, known in (
        ("recipes", args.recipes, RECIPES),
        ("images", args.images, DATASETS),
        ("tables", args.tables, LOADERS),
    ):
        unknown = sorted(set(names) - set(known))
        if unknown:
            print(f"{PROG}: error: unknown {kind} {unknown}", file=sys.stderr)
            return 2
    results = {
        "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
        "seeds": args.seeds,
        "recipes": {},
    }
    for name in args.recipes:
        params = RECIPES[name]
        result = {"params": params, "images": {}, "tables": None}
        for image in args.images:
            result["images"][image] = image_codes(image, args.seeds, params)
        if args.tables:
            cases, skipped, _ = dropin.run_cases(args.tables, args.seeds, params)
            result["skipped"] = skipped
            result["tables"] = dropin.summarise(cases)
            result["cases"] = [_compact(case) for case in cases]
            result["small_fit_s"], _ = dropin.time_small_fit(params=params)
        results["recipes"][name] = result
        print(_line(name, result), flush=True)
    results["environment"] = _env.environment()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipes.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
