"""``python -m benchmarks.reconstruction``: reconstruction against PCA at every size.

For each dataset (the main benchmark's split), held-out reconstruction MSE of
PCA, of the autoencoder started at random (``init="random"``) and started at
PCA (``init="pca"``), at several code sizes; the default (``init="auto"``)
is whichever of the two it picks. Then ``n_components`` as a fraction of
variance: the code size chosen for each target, its validation and held-out
R², the fits it took and the time.

Writes ``reconstruction.json`` and ``reconstruction.md`` into ``--out``.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from benchmarks import _env
from benchmarks._data import load

PROG = "python -m benchmarks.reconstruction"
SIZES = {"digits": (2, 8, 16, 32), "mnist": (2, 8, 32, 64)}
TARGETS = (0.9, 0.95)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="default: digits and mnist, mnist skipped when it is not found",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--mnist-seeds", type=int, nargs="+", default=[0], help="seeds for MNIST"
    )
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", default="benchmark-results")
    _env.add_verbose_flag(parser)
    return parser.parse_args(argv)


def _mse(X, X_hat):
    return float(np.mean((np.asarray(X, np.float64) - X_hat) ** 2))


def _r2(X, X_hat):
    X = np.asarray(X, np.float64)
    return 1 - float(np.sum((X - X_hat) ** 2) / np.sum((X - X.mean(axis=0)) ** 2))


def main(argv=None):
    from skae import AutoencoderTransformer
    from skae._params import make_plan

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
        "datasets": {},
        "skipped": {},
    }
    # Every dataset is loaded before any fit, so that a missing one fails
    # (or is skipped) before minutes of work.
    loaded = {}
    for name in args.datasets or ["digits", "mnist"]:
        try:
            loaded[name] = load(
                name, data_home=args.data_home, subsample=600 if args.quick else None
            )
        except FileNotFoundError as exc:
            if args.datasets:  # asked for by name: the user must know
                print(f"{PROG}: error: {exc}", file=sys.stderr)
                return 1
            results["skipped"][name] = " ".join(str(exc).split())
            print(f"skipping {name}: not found (see report)", file=sys.stderr)
    for name, data in loaded.items():
        X_train, X_test = data.X_train, data.X_test
        seeds = args.mnist_seeds if name == "mnist" else args.seeds
        sizes = SIZES[name][:2] if args.quick else SIZES[name]
        options = {"epochs": 2} if args.quick else {}
        rows = []
        for k in sizes:
            pca = PCA(k, random_state=0).fit(X_train)
            row = {
                "k": k,
                "PCA": _mse(X_test, pca.inverse_transform(pca.transform(X_test))),
            }
            for init in ("random", "pca"):
                values, times = [], []
                for seed in seeds:
                    est = AutoencoderTransformer(
                        k, init=init, random_state=seed, **options
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        start = time.perf_counter()
                        est.fit(X_train)
                        times.append(time.perf_counter() - start)
                    values.append(
                        _mse(X_test, est.inverse_transform(est.transform(X_test)))
                    )
                    print(
                        f"{name} k={k} init={init} seed={seed}: {values[-1]:.4g}",
                        file=sys.stderr,
                        flush=True,
                    )
                row[init] = values
                row[f"{init}_fit_seconds"] = times
            # The start init="auto" picks, read from the plan a fit would make.
            row["default"] = make_plan(
                AutoencoderTransformer(k), incremental=False
            ).init
            rows.append(row)
        searches = []
        for target in TARGETS:
            est = AutoencoderTransformer(target, random_state=seeds[0], **options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                est.fit(X_train)
                seconds = time.perf_counter() - start
            pca = PCA(target, svd_solver="full").fit(X_train)
            searches.append(
                {
                    "target": target,
                    "chosen": est.n_components_,
                    "val_r2": est.reconstruction_r2_,
                    "test_r2": _r2(
                        X_test, est.inverse_transform(est.transform(X_test))
                    ),
                    "fits": len(est.n_components_scores_),
                    "tried": est.n_components_scores_,
                    "seconds": seconds,
                    "pca_n_components": int(pca.n_components_),
                }
            )
            print(
                f"{name} target {target}: {searches[-1]}", file=sys.stderr, flush=True
            )
        results["datasets"][name] = {
            "info": data.info,
            "seeds": seeds,
            "sizes": rows,
            "search": searches,
        }
    (out / "reconstruction.json").write_text(
        json.dumps(results, indent=2, default=str) + "\n"
    )
    text = report(results)
    (out / "reconstruction.md").write_text(text)
    print(text)
    return 0


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{values.mean():.4g} ± {values.std(ddof=1):.2g}"


def report(results):
    lines = [
        "# Reconstruction against PCA",
        "",
        f"- command: `{results['command']}`",
        "",
    ]
    for name, reason in results.get("skipped", {}).items():
        lines += [f"## {name}", "", f"**Skipped**: {reason}", ""]
    for name, r in results["datasets"].items():
        lines += [
            f"## {name}",
            "",
            f"- {r['info']['n_train']} training / {r['info']['n_test']} held-out "
            f"samples; {r['info']['preprocessing']}; seeds {r['seeds']}",
            "- held-out reconstruction MSE (mean ± std over seeds; ratio to PCA); "
            "**bold**: the default (init='auto') picks it",
            "",
            "| code size | PCA | init='random' | init='pca' | fit s random / pca "
            "| default <= PCA |",
            "|--:|--:|--:|--:|--:|:--|",
        ]
        for row in r["sizes"]:
            cells = {}
            for init in ("random", "pca"):
                cell = f"{_mean_std(row[init])} ({np.mean(row[init]) / row['PCA']:.2f})"
                cells[init] = f"**{cell}**" if row["default"] == init else cell
            default_ok = np.mean(row[row["default"]]) <= row["PCA"]
            seconds = (np.mean(row[f"{i}_fit_seconds"]) for i in ("random", "pca"))
            lines.append(
                f"| {row['k']} | {row['PCA']:.4g} | {cells['random']} | "
                f"{cells['pca']} | {' / '.join(f'{t:.1f}' for t in seconds)} | "
                f"{'yes' if default_ok else '**no**'} |"
            )
        lines += [
            "",
            "n_components as a fraction of variance (seed "
            f"{r['seeds'][0]}; validation: 0.1 of the training part):",
            "",
            "| target R² | chosen size | PCA's size (training variance) "
            "| validation R² | held-out R² | fits | sizes tried | seconds |",
            "|--:|--:|--:|--:|--:|--:|:--|--:|",
        ]
        for s in r["search"]:
            tried = ", ".join(str(k) for k in s["tried"])
            lines.append(
                f"| {s['target']} | {s['chosen']} | {s['pca_n_components']} | "
                f"{s['val_r2']:.4f} | {s['test_r2']:.4f} | {s['fits']} | {tried} | "
                f"{s['seconds']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
