"""``python -m benchmarks.dropin_frontier``: stricter choices of the non-linear codes.

``fit`` keeps its trained networks only where they rebuild the validation
rows better than PCA's codes with a trained decoder by two standard errors.
This lab run asks what a stricter rule would trade: for every fit of
``python -m benchmarks.dropin`` that kept the non-linear codes, the same fit
(same seed, same split) is repeated with them left out of the choice, and
each rule "keep them only if their validation error is below (1 - margin)
times the decoder's" is scored on the held-out figures of the fit it would
have kept: cases over 1.02 x PCA's error, geometric mean of the error ratio,
mean and lowest downstream difference.

A second family of rules asks the codes to keep what PCA's scores hold
linearly: "keep them only if an affine map of them misses at most a fraction
of PCA's score variance" (``dropin.linear_loss``, on the training rows). The
main benchmark's digits 2-D fits (seeds as given) show what each such rule
would do to the 2-D codes the benchmark measures: their linear loss, and the
held-out kNN accuracy of their codes against PCA's, which a rejected fit
would return.

It leaves the trained networks out by narrowing ``skae._fit._CANDIDATES``, a
private switch, for this measurement only. Writes ``dropin_frontier.json``.
"""

import argparse
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import dropin

MARGINS = (0.0, 0.1, 0.2, 0.4, 1.0)
LINEAR_LOSSES = (1.0, 0.15, 0.1, 0.05, 0.02, 0.0)


def _fits(names, seeds):
    """Every drop-in fit, and where the codes were kept, its refit without."""
    from benchmarks._tabular import LOADERS
    from skae import _fit

    fits = []
    for name in names:
        X, y, task, _ = LOADERS[name]()
        for standardise in (False, True):
            for k in dropin.code_sizes(X.shape[1]):
                for seed in seeds:
                    kept = dropin.run_case(X, y, task, k, standardise, seed)
                    fit = {"case": (name, standardise, k), "kept": kept}
                    if kept["ae"]["solution"] == "autoencoder":
                        everything = _fit._CANDIDATES
                        _fit._CANDIDATES = everything[:-1]
                        try:
                            fit["without"] = dropin.run_case(
                                X, y, task, k, standardise, seed
                            )
                        finally:
                            _fit._CANDIDATES = everything
                    fits.append(fit)
    return fits


def _scored(fits, keeps):
    """The cases' summary when ``keeps(run)`` says where the codes stay."""
    cases, kept = defaultdict(list), 0
    for fit in fits:
        run = fit["kept"]
        if "without" in fit and not keeps(run):
            run = fit["without"]
        kept += run["ae"]["solution"] == "autoencoder"
        cases[fit["case"]].append((run["ratio"], run["downstream_difference"]))
    ratios = np.array([np.mean([r for r, _ in v]) for v in cases.values()])
    diffs = np.array([np.mean([d for _, d in v]) for v in cases.values()])
    return {
        "codes_kept": kept,
        "cases_over_ratio": int(np.sum(ratios > dropin.MAX_RATIO)),
        "geometric_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
        "mean_downstream_difference": float(diffs.mean()),
        "min_downstream_difference": float(diffs.min()),
    }


def frontier(fits, margins=MARGINS):
    """Each margin's summary over the cases (means over seeds, as dropin's)."""

    def below(margin):
        def keeps(run):
            errors = run["ae"]["validation_errors"]
            return errors["autoencoder"] < (1 - margin) * errors["pca_decoder"]

        return keeps

    return [{"margin": m, **_scored(fits, below(m))} for m in margins]


def linear_frontier(fits, losses=LINEAR_LOSSES):
    """Each bound on the codes' linear loss, summarised as ``frontier``'s."""

    def within(bound):
        return lambda run: run["ae"]["linear_loss"] <= bound

    return [{"max_linear_loss": b, **_scored(fits, within(b))} for b in losses]


def digits_codes(seeds):
    """The main benchmark's digits 2-D default fits: what a rule would reject."""
    from sklearn.decomposition import PCA

    from benchmarks._data import load
    from skae import AutoencoderTransformer
    from skae.metrics import knn_accuracy

    data = load("digits")
    pca = PCA(2).fit(data.X_train)
    scores = pca.transform(data.X_train), pca.transform(data.X_test)
    pca_knn = knn_accuracy(scores[0], data.y_train, scores[1], data.y_test)
    rows = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ae = AutoencoderTransformer(2, random_state=seed).fit(data.X_train)
        codes = ae.transform(data.X_train), ae.transform(data.X_test)
        errors = ae.validation_errors_
        rows.append(
            {
                "seed": seed,
                "solution": ae.solution_,
                "linear_loss": dropin.linear_loss(codes[0], scores[0]),
                "error_ratio": errors["autoencoder"] / errors["pca_decoder"],
                "knn": knn_accuracy(codes[0], data.y_train, codes[1], data.y_test),
                "pca_knn": pca_knn,
            }
        )
    return rows


def _summary_line(row):
    return (
        f"codes kept in {row['codes_kept']} fits, {row['cases_over_ratio']} cases "
        f"over {dropin.MAX_RATIO}, geometric mean {row['geometric_mean_ratio']:.3f}, "
        f"downstream mean {row['mean_downstream_difference']:+.4f}, lowest "
        f"{row['min_downstream_difference']:+.3f}"
    )


def main(argv=None):
    from benchmarks._tabular import LOADERS

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dropin_frontier",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"))
    args = parser.parse_args(argv)
    fits = _fits(args.datasets, args.seeds)
    results = {
        "margins": frontier(fits),
        "linear_losses": linear_frontier(fits),
        "digits_2d": digits_codes(args.seeds),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dropin_frontier.json").write_text(json.dumps(results, indent=1))
    for row in results["margins"]:
        print(f"margin {row['margin']:.1f}: {_summary_line(row)}")
    for row in results["linear_losses"]:
        print(f"linear loss <= {row['max_linear_loss']:.2f}: {_summary_line(row)}")
    for row in results["digits_2d"]:
        print(
            f"digits 2-D seed {row['seed']}: {row['solution']}, linear loss "
            f"{row['linear_loss']:.3f}, error ratio to the decoder's "
            f"{row['error_ratio']:.3f}, held-out kNN {row['knn']:.3f} (PCA's codes "
            f"{row['pca_knn']:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
