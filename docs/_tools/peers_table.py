"""Write docs/peers_figures.rst from docs/benchmark-report/results.json.

Run from the repository root after ``python -m benchmarks --parametric-umap
--out docs/benchmark-report``: ``python docs/_tools/peers_table.py``.
"""

import json
import sys
from pathlib import Path

LABELS = {
    "autoencoder": "skae, defaults",
    "structured": "skae, ``structure_weight=1`` (benchmark settings)",
    "parametric_umap": "ParametricUMAP",
    "parametric_umap_ae": "ParametricUMAP + decoder",
    "umap": "UMAP (reference; no decoder)",
    "pca": "PCA",
}
COLUMNS = [
    ("knn_accuracy", "kNN", 3),
    ("trustworthiness", "trust.", 3),
    ("silhouette", "silhouette", 3),
    ("reconstruction_mse", "recon. MSE", 4),
    ("fit_seconds", "fit s", 1),
    ("transform_seconds", "transform s", 3),
]


def table(results, name):
    cell = results["summary"][name]["2"]
    seeds = results["config"]["seeds"]
    lines = [
        f"**{name}**: 2-D codes of held-out rows, mean ± std over seeds {seeds}.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - method",
        *(f"     - {label}" for _, label, _ in COLUMNS),
    ]
    for method, label in LABELS.items():
        if method not in cell:
            continue
        lines.append(f"   * - {label}")
        for key, _, digits in COLUMNS:
            value = cell[method].get(key)
            lines.append(
                "     - n/a"
                if not value
                else f"     - {value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
            )
    return [*lines, ""]


def main(root="."):
    root = Path(root)
    results = json.loads((root / "docs/benchmark-report/results.json").read_text())
    lines = []
    for name in ("digits", "mnist"):
        if name in results["summary"]:
            lines += table(results, name)
    lines.append(
        f"From the benchmark run of {results.get('date', 'unknown date')}; the "
        "machine, its load and the protocol are in :doc:`benchmarks`."
    )
    (root / "docs/peers_figures.rst").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
