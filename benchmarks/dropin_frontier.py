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

It leaves the trained networks out by narrowing ``skae._fit._CANDIDATES``, a
private switch, for this measurement only. Writes ``dropin_frontier.json``.
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import dropin

MARGINS = (0.0, 0.1, 0.2, 0.4, 1.0)


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


def frontier(fits, margins=MARGINS):
    """Each margin's summary over the cases (means over seeds, as dropin's)."""
    rows = []
    for margin in margins:
        cases, kept = defaultdict(list), 0
        for fit in fits:
            run = fit["kept"]
            errors = run["ae"].get("validation_errors")
            if "without" in fit and not (
                errors["autoencoder"] < (1 - margin) * errors["pca_decoder"]
            ):
                run = fit["without"]
            kept += run["ae"]["solution"] == "autoencoder"
            cases[fit["case"]].append((run["ratio"], run["downstream_difference"]))
        ratios = np.array([np.mean([r for r, _ in v]) for v in cases.values()])
        diffs = np.array([np.mean([d for _, d in v]) for v in cases.values()])
        rows.append(
            {
                "margin": margin,
                "codes_kept": kept,
                "cases_over_ratio": int(np.sum(ratios > dropin.MAX_RATIO)),
                "geometric_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
                "mean_downstream_difference": float(diffs.mean()),
                "min_downstream_difference": float(diffs.min()),
            }
        )
    return rows


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
    rows = frontier(_fits(args.datasets, args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dropin_frontier.json").write_text(json.dumps(rows, indent=1))
    for row in rows:
        print(
            f"margin {row['margin']:.1f}: codes kept in {row['codes_kept']} fits, "
            f"{row['cases_over_ratio']} cases over {dropin.MAX_RATIO}, geometric "
            f"mean {row['geometric_mean_ratio']:.3f}, downstream mean "
            f"{row['mean_downstream_difference']:+.4f}, lowest "
            f"{row['min_downstream_difference']:+.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
