"""The report's figures, drawn with :mod:`skae.plotting`'s displays."""

import matplotlib

# Only files are written: never try to open a window.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from skae.plotting import (
    EmbeddingComparisonDisplay,
    ReconstructionDisplay,
    TrainingCurveDisplay,
)

from ._report import METHOD_LABELS


def _one_per_class(y, n=10):
    """Indices of the first sample of each class (at most `n`), in class order."""
    classes = np.unique(y)[:n]
    return np.array([np.flatnonzero(y == c)[0] for c in classes])


def _save(fig, path):
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_figures(name, store, info, out_dir):
    """Write one dataset's PNGs into `out_dir`; return their file names by kind.

    Parameters
    ----------
    name : str
        Dataset name, the prefix of the files.
    store : dict
        The dataset's entry of :func:`benchmarks._suite.run_suite`'s artifacts.
    info : dict
        The dataset's description (``code_sizes``, ``image_shape``).
    out_dir : pathlib.Path
    """
    figures = {}
    small, large = info["code_sizes"][0], info["code_sizes"][-1]

    embeddings = store["embeddings"].get(small, {})
    if embeddings:
        panels = {}
        for method, Z in embeddings.items():
            knn = store["knn_accuracy"].get(small, {}).get(method)
            title = METHOD_LABELS.get(method, method)
            if knn is not None:
                title += f"\nheld-out kNN accuracy {knn:.3f}"
            panels[title] = Z
        fig = EmbeddingComparisonDisplay.from_embeddings(
            panels, store["y_test"]
        ).figure_
        fig.suptitle(
            f"{name}: {small}-D codes of the held-out samples (seed {store['seed']})"
        )
        figures["embeddings"] = _save(fig, out_dir / f"{name}_embeddings_{small}d.png")

    reconstructions = store["reconstructions"].get(large, {})
    if reconstructions:
        rows = _one_per_class(store["y_test"])
        rebuilt = {
            f"{METHOD_LABELS.get(method, method)}\n{large}-D": X_rec[rows]
            for method, X_rec in reconstructions.items()
        }
        fig = ReconstructionDisplay.from_reconstructions(
            store["X_test"][rows], rebuilt, image_shape=info["image_shape"], n=len(rows)
        ).figure_
        fig.suptitle(f"{name}: held-out reconstructions from {large}-D codes")
        figures["reconstructions"] = _save(
            fig, out_dir / f"{name}_reconstructions_{large}d.png"
        )

    histories = store["histories"]
    if histories:
        codes = sorted(histories)
        fig, axes = plt.subplots(
            1, len(codes), figsize=(5 * len(codes), 3.6), layout="constrained"
        )
        for ax, k in zip(np.atleast_1d(axes), codes, strict=True):
            # One colour per seed; validation curves dashed.
            for seed, history in sorted(histories[k].items()):
                TrainingCurveDisplay.from_history(history, name=f"seed {seed}", ax=ax)
            ax.set_title(f"{k}-D code")
        fig.suptitle(f"{name}: autoencoder training loss (scaled inputs)")
        figures["training_curve"] = _save(fig, out_dir / f"{name}_training_curve.png")
    return figures
