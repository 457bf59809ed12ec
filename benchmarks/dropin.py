"""``python -m benchmarks.dropin``: PCA swapped out for the defaults, on real tables.

A user's pipeline ``[StandardScaler] -> PCA(k) -> model`` becomes
``[StandardScaler] -> AutoencoderTransformer(k) -> model``, everything else
unchanged. For each data set (scikit-learn's bundled tables, tables shipped by
statsmodels, palmerpenguins and vega_datasets when installed, and two curved
manifolds), raw and standardised, at k=2 and a mid size, over seeds: the
held-out reconstruction error against PCA's, the downstream model's held-out
score (LogisticRegression accuracy or Ridge R²) and a 5-NN score on the codes,
with PCA's and the autoencoder's, and the fit time.

Writes ``dropin.json`` and ``dropin.md`` into ``--out``.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import _env

PROG = "python -m benchmarks.dropin"
# The promise the run checks (issue 27).
MAX_RATIO = 1.02
MAX_GEOMETRIC_MEAN = 0.85
MIN_DOWNSTREAM_DIFFERENCE = -0.03
TEST_SIZE = 0.3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 sets, 1 seed"
    )
    parser.add_argument("--out", default="benchmark-results")
    _env.add_verbose_flag(parser)
    return parser.parse_args(argv)


def code_sizes(n_features):
    """k=2, and a mid size, a third of the features (at least 3), below d."""
    mid = max(3, round(n_features / 3))
    return (2, mid) if mid < n_features else (2,)


def _pipeline(reducer, task, standardise):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = LogisticRegression(max_iter=5000) if task == "class" else Ridge()
    steps = [StandardScaler()] if standardise else []
    return make_pipeline(*steps, reducer, head)


def _knn_score(Z_train, y_train, Z_test, y_test, task):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    knn = KNeighborsClassifier(5) if task == "class" else KNeighborsRegressor(5)
    return float(knn.fit(Z_train, y_train).score(Z_test, y_test))


def linear_loss(codes, scores):
    """The fraction of PCA's score variance an affine map of ``codes`` misses.

    Least squares on the same rows. 0 for codes that are PCA's scores up to an
    invertible affine map, which a linear model downstream reads as it reads
    PCA's; it grows as the codes bend what PCA's scores hold linearly.
    """
    design = np.c_[codes, np.ones(len(codes))]
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    centred = scores - scores.mean(axis=0)
    return float(np.sum((design @ coef - scores) ** 2) / np.sum(centred**2))


def run_case(X, y, task, k, standardise, seed, params=None):
    """One split, one seed: PCA's and the autoencoder's figures.

    ``params``: the autoencoder's parameters other than the defaults, for lab
    runs (``benchmarks.recipes``); the drop-in report uses none.
    """
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split

    from skae import AutoencoderTransformer

    stratify = y if task == "class" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=seed, stratify=stratify
    )
    result = {}
    for name, reducer in (
        ("pca", PCA(k, random_state=seed)),
        ("ae", AutoencoderTransformer(k, random_state=seed, **(params or {}))),
    ):
        pipe = _pipeline(reducer, task, standardise)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X_train, y_train)
        fit = time.perf_counter() - start
        # The reducer alone is fitted inside the pipeline; its input is the
        # pipeline's after the optional scaler.
        front = pipe[:-1]
        prep = pipe[:-2] if standardise else None
        A_test = prep.transform(X_test) if prep is not None else X_test
        Z_train, Z_test = front.transform(X_train), front.transform(X_test)
        rebuilt = reducer.inverse_transform(Z_test)
        result[name] = {
            "mse": float(np.mean((A_test - rebuilt) ** 2)),
            "downstream": float(pipe.score(X_test, y_test)),
            "knn": _knn_score(Z_train, y_train, Z_test, y_test, task),
            "fit_s": fit,
        }
        if name == "pca":
            pca_scores = Z_train
        if name == "ae":
            result[name]["linear_loss"] = linear_loss(Z_train, pca_scores)
            result[name]["solution"] = getattr(reducer, "solution_", "autoencoder")
            result[name]["validation_errors"] = reducer.validation_errors_
            result[name]["init"] = reducer.init_
            result[name]["n_iter"] = int(reducer.n_iter_)
    result["ratio"] = result["ae"]["mse"] / max(result["pca"]["mse"], 1e-300)
    result["downstream_difference"] = (
        result["ae"]["downstream"] - result["pca"]["downstream"]
    )
    return result


def _mean(runs, *keys):
    values = []
    for run in runs:
        for key in keys:
            run = run[key]
        values.append(run)
    return float(np.mean(values))


def time_small_fit(repeats=3, params=None):
    """Best of ``repeats`` fits of 200 rows x 13 features, the issue's size."""
    from skae import AutoencoderTransformer

    X = np.random.RandomState(0).normal(size=(200, 13)) * np.logspace(-1, 2, 13)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            AutoencoderTransformer(random_state=seed, **(params or {})).fit(X)
        times.append(time.perf_counter() - start)
    return min(times), times


def summarise(cases):
    ratios = np.array([c["ratio_mean"] for c in cases])
    diffs = np.array([c["downstream_difference_mean"] for c in cases])
    return {
        "cases": len(cases),
        "cases_over_ratio": int(np.sum(ratios > MAX_RATIO)),
        "runs": sum(len(c["runs"]) for c in cases),
        "runs_over_ratio": sum(
            r["ratio"] > MAX_RATIO for c in cases for r in c["runs"]
        ),
        "mean_knn_difference": float(
            np.mean([c["ae_knn"] - c["pca_knn"] for c in cases])
        ),
        "max_ratio": float(ratios.max()),
        "geometric_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
        "mean_downstream_difference": float(diffs.mean()),
        "min_downstream_difference": float(diffs.min()),
        "cases_below_downstream": int(np.sum(diffs < MIN_DOWNSTREAM_DIFFERENCE)),
    }


def _machine_line(environment):
    m, v = environment["machine"], environment["versions"]
    load = m.get("load_average")
    return (
        f"{m['cpu_model']}, {m['cpus_usable']} CPUs; load average at the end "
        f"{load}; skae {v.get('skae')}, tensorflow {v.get('tensorflow')}, "
        f"scikit-learn {v.get('scikit-learn')}"
    )


def render(results):
    s = results["summary"]
    lines = [
        "# Drop-in: PCA swapped for AutoencoderTransformer's defaults",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {_machine_line(results['environment'])}",
        f"- seeds {results['seeds']}; {int(TEST_SIZE * 100)}% of rows held out "
        "(stratified for classes), a new split per seed",
        "- ratio: the autoencoder's held-out reconstruction MSE over PCA's, "
        "in the reducer's input (after the scaler for 'std'); downstream: "
        "the pipeline's held-out score (LogisticRegression accuracy or Ridge "
        "R²), the autoencoder's minus PCA's; 5-NN: the same score of "
        "5 nearest neighbours on the codes",
        "",
        f"**{s['cases_over_ratio']} of {s['cases']} cases reconstruct worse than "
        f"{MAX_RATIO} x PCA's** (target 0; single seeds: {s['runs_over_ratio']} "
        f"of {s['runs']}); geometric mean of the ratio "
        f"{s['geometric_mean_ratio']:.3f} (target <= {MAX_GEOMETRIC_MEAN}); "
        f"downstream difference mean {s['mean_downstream_difference']:+.3f} "
        f"(target >= 0), lowest {s['min_downstream_difference']:+.3f} (target >= "
        f"{MIN_DOWNSTREAM_DIFFERENCE}); 5-NN difference mean "
        f"{s['mean_knn_difference']:+.3f}; a fit of 200 x 13: "
        f"{results['small_fit_s']:.2f} s (target <= 2 s).",
        "",
        "| data | n x d | prep | k | ratio | downstream PCA | AE | 5-NN PCA | AE "
        "| AE solution | AE fit s |",
        "|:--|--:|:--|--:|--:|--:|--:|--:|--:|:--|--:|",
    ]
    for c in results["cases"]:
        lines.append(
            f"| {c['dataset']} | {c['shape'][0]} x {c['shape'][1]} | {c['prep']} "
            f"| {c['k']} | {c['ratio_mean']:.3f} ± {c['ratio_std']:.3f} "
            f"| {c['pca_downstream']:.3f} | {c['ae_downstream']:.3f} "
            f"| {c['pca_knn']:.3f} | {c['ae_knn']:.3f} | {c['solutions']} "
            f"| {c['ae_fit_s']:.2f} |"
        )
    if results["skipped"]:
        lines += [
            "",
            "Skipped (package not installed): "
            + ", ".join(f"{name} ({why})" for name, why in results["skipped"].items()),
        ]
    sources = ", ".join(f"{n}: `{s}`" for n, s in results["sources"].items())
    lines += ["", f"Sources: {sources}.", ""]
    return "\n".join(lines)


def run_cases(names, seeds, params=None, *, start=None):
    """Every case of the data sets ``names``, seeds ``seeds``.

    Returns the case records, the data sets skipped (their package is not
    installed, with why) and the sources of the others.
    """
    from benchmarks._tabular import LOADERS

    start = time.perf_counter() if start is None else start
    cases, skipped, sources = [], {}, {}
    for name in names:
        try:
            X, y, task, source = LOADERS[name]()
        except ImportError as exc:
            skipped[name] = str(exc).splitlines()[0]
            continue
        sources[name] = source
        for standardise in (False, True):
            for k in code_sizes(X.shape[1]):
                runs = [run_case(X, y, task, k, standardise, s, params) for s in seeds]
                ratios = [r["ratio"] for r in runs]
                case = {
                    "dataset": name,
                    "shape": list(X.shape),
                    "task": task,
                    "prep": "std" if standardise else "raw",
                    "k": k,
                    "runs": runs,
                    "ratio_mean": _mean(runs, "ratio"),
                    "ratio_std": float(np.std(ratios, ddof=1)) if seeds[1:] else 0.0,
                    "downstream_difference_mean": _mean(runs, "downstream_difference"),
                    "pca_downstream": _mean(runs, "pca", "downstream"),
                    "ae_downstream": _mean(runs, "ae", "downstream"),
                    "pca_knn": _mean(runs, "pca", "knn"),
                    "ae_knn": _mean(runs, "ae", "knn"),
                    "ae_fit_s": float(np.median([r["ae"]["fit_s"] for r in runs])),
                    "solutions": "/".join(r["ae"]["solution"][:3] for r in runs),
                }
                cases.append(case)
                print(
                    f"[{time.perf_counter() - start:7.1f}s] {name} {case['prep']} "
                    f"k={k}: ratio {case['ratio_mean']:.3f}, downstream "
                    f"{case['pca_downstream']:.3f} -> {case['ae_downstream']:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
    return cases, skipped, sources


def main(argv=None):
    from benchmarks import _env
    from benchmarks._tabular import LOADERS

    args = parse_args(argv)
    names = args.datasets or list(LOADERS)
    seeds = args.seeds
    if args.quick:
        names, seeds = args.datasets or ["wine", "swiss_roll"], seeds[:1]
    unknown = sorted(set(names) - set(LOADERS))
    if unknown:
        print(f"{PROG}: error: unknown data sets {unknown}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
        "environment": _env.environment(),
        "seeds": seeds,
    }
    start = time.perf_counter()
    results["cases"], results["skipped"], results["sources"] = run_cases(
        names, seeds, start=start
    )
    if not results["cases"]:
        print(f"{PROG}: error: no data set could be loaded", file=sys.stderr)
        return 1
    results["small_fit_s"], results["small_fit_times"] = time_small_fit()
    results["summary"] = summarise(results["cases"])
    results["total_seconds"] = time.perf_counter() - start
    results["environment"] = _env.environment()
    (out / "dropin.json").write_text(json.dumps(results, indent=1))
    (out / "dropin.md").write_text(render(results))
    print(f"wrote {out / 'dropin.md'} and {out / 'dropin.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
