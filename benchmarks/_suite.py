"""Fit each method on the training part, score it on the held-out part."""

import logging
import sys
import time
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline, make_pipeline
from threadpoolctl import threadpool_limits

from benchmarks._peers import PEERS, ParametricUMAPPeer
from skae import AutoencoderTransformer
from skae.metrics import embedding_report

# skae compiles one tf.function per fitted model; in a loop of fits TensorFlow
# warns about "retracing", which is expected here and would bury the progress.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

METHODS = ("autoencoder", "structured", "pca", "umap", *PEERS)
# The structured autoencoder: the structure term at weight 1, everything else
# the defaults, whose "auto" values then take the term's recipe (512 edges a
# step at a learning rate of 1e-2, four layer-normalised GELU layers of 128;
# skae/_params.py and docs/user_guide/structure.rst say why).
STRUCTURED = dict(structure_weight=1.0)
# Wider inputs reach it through PCA to this many components, in a Pipeline, as
# t-SNE and UMAP users do: the graph is built on denoised distances and the
# network's widest layers shrink (MNIST 10k, seeds 0-2, with XLA: kNN
# 0.919-0.921 and fits of 13-15 s, against 0.912-0.917 and 35 s on the 784
# pixels).
STRUCTURED_PCA = 100


def runs_method(method, n_components, code_sizes):
    """Whether ``method`` runs at this code size: the structure term and
    ParametricUMAP only at 2-D.

    They are for looking at data, and their targets are 2-D; at the larger
    codes the plain autoencoder is the one compared with PCA.
    """
    at_2d_only = method == "structured" or method in PEERS
    return not at_2d_only or n_components == min(code_sizes)


# Fixed so that every method is scored on the same trustworthiness subsample
# and k-means initialisations: differences come from the embeddings alone.
METRIC_RANDOM_STATE = 0


def umap_available():
    """Return ``(True, version)`` if umap-learn imports, else ``(False, reason)``."""
    try:
        import umap
    except Exception as exc:  # numba problems surface as various errors
        return False, f"umap-learn could not be imported ({exc})"
    return True, getattr(umap, "__version__", "unknown")


def make_estimator(method, n_components, seed, *, epochs=None, n_features=None):
    """A fresh estimator; the autoencoder keeps all its defaults but `epochs`.

    The structured autoencoder of more than ``STRUCTURED_PCA`` features is a
    Pipeline whose first step is that PCA.
    """
    if method in ("autoencoder", "structured"):
        options = {} if epochs is None else {"epochs": epochs}
        if method == "structured":
            options.update(STRUCTURED)
        model = AutoencoderTransformer(
            n_components=n_components, random_state=seed, **options
        )
        if method == "structured" and (n_features or 0) > STRUCTURED_PCA:
            return make_pipeline(PCA(STRUCTURED_PCA, random_state=seed), model)
        return model
    if method == "pca":
        # random_state matters when PCA picks its randomized solver (MNIST).
        return PCA(n_components=n_components, random_state=seed)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=n_components, random_state=seed)
    if method in PEERS:
        # A quick run (epochs given) makes UMAP's edge epochs few too.
        return ParametricUMAPPeer(
            n_components,
            decoder=method == "parametric_umap_ae",
            random_state=seed,
            n_epochs=None if epochs is None else 5 * epochs,
        )
    raise ValueError(f"Expected one of {METHODS}. Received: {method!r}")


class Progress:
    """One line per fit on stderr, with the time elapsed since the start."""

    def __init__(self, total, stream=None):
        self.total = total
        self.done = 0
        self.start = time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr

    def log(self, message, *, step=False):
        if step:
            self.done += 1
        elapsed = time.perf_counter() - self.start
        counter = f"{self.done:>{len(str(self.total))}}/{self.total}"
        print(f"[{elapsed:7.1f}s {counter}] {message}", file=self.stream, flush=True)


def _metrics(data, Z_train, Z_test, X_reconstructed):
    return embedding_report(
        Z_test,
        data.y_test,
        Z_train=Z_train,
        y_train=data.y_train,
        X=data.X_test,
        X_reconstructed=X_reconstructed,
        knn_neighbors=5,
        trustworthiness_neighbors=10,
        random_state=METRIC_RANDOM_STATE,
    )


def run_one(method, data, n_components, seed, *, epochs=None):
    """Fit one method on ``data``'s training part and score it on held-out data.

    Returns
    -------
    run : dict
        ``metrics`` (every metric of :mod:`skae.metrics`, plus
        ``fit_seconds`` and ``transform_seconds``; None where not applicable),
        ``details`` (what was fitted), ``warnings`` (messages caught during the
        fit).
    arrays : dict
        ``Z_test``, ``X_reconstructed`` (or None) and ``history`` (or None),
        for the figures.
    """
    estimator = make_estimator(
        method, n_components, seed, epochs=epochs, n_features=_n_features(data)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        estimator.fit(data.X_train)
        fit_seconds = time.perf_counter() - start
        if method == "umap":
            # UMAP's fit_transform output; transform() of the training rows
            # would re-embed them against themselves. A few rows warm up its
            # transform's JIT-compiled code.
            Z_train = estimator.embedding_
            estimator.transform(data.X_train[:20])
        else:
            # Also warms up: the autoencoder traces its inference graph on
            # the first call, a one-off cost kept out of the timing below.
            Z_train = estimator.transform(data.X_train)
        start = time.perf_counter()
        Z_test = estimator.transform(data.X_test)
        transform_seconds = time.perf_counter() - start
        # UMAP's inverse_transform is a slow, approximate interpolation, not a
        # decoder; its reconstruction error is not reported.
        X_reconstructed = (
            None
            if method in ("umap", "parametric_umap")
            else estimator.inverse_transform(Z_test)
        )

    # Metrics are not timed: one thread each avoids the BLAS/OpenMP
    # oversubscription that makes k-means crawl on small, busy machines.
    with threadpool_limits(limits=1):
        metrics = _metrics(data, Z_train, Z_test, X_reconstructed)
    metrics.setdefault("reconstruction_mse", None)
    metrics["fit_seconds"] = fit_seconds
    metrics["transform_seconds"] = transform_seconds

    details = {"estimator": type(estimator).__name__}
    history = None
    if isinstance(estimator, Pipeline):
        details["steps"] = [type(step).__name__ for _, step in estimator.steps]
        details["pca_components"] = int(estimator[0].n_components_)
        estimator = estimator[-1]
    if method in ("autoencoder", "structured"):
        params = {
            # Callables (user networks, callbacks) are recorded by name only.
            key: value
            if value is None or isinstance(value, (str, int, float, bool, tuple, list))
            else repr(value)
            for key, value in estimator.get_params().items()
        }
        hidden = getattr(estimator, "hidden_layer_sizes_", None)
        details.update(
            params=params,
            hidden_layer_sizes_=None if hidden is None else list(hidden),
            n_iter_=int(estimator.n_iter_),
            final_loss=(
                float(estimator.history_["loss"][-1])
                if estimator.history_.get("loss")
                else None
            ),
        )
        if method == "autoencoder":  # the training-curve figure's
            history = {k: list(map(float, v)) for k, v in estimator.history_.items()}
    elif method == "pca":
        details["explained_variance_ratio_sum"] = float(
            np.sum(estimator.explained_variance_ratio_)
        )
        details["svd_solver"] = getattr(estimator, "_fit_svd_solver", None)
    run = {
        "dataset": data.name,
        "n_components": n_components,
        "method": method,
        "seed": seed,
        "metrics": metrics,
        "details": details,
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }
    arrays = {
        "Z_test": Z_test,
        "X_reconstructed": X_reconstructed,
        "history": history,
    }
    return run, arrays


def warm_up(methods, data, progress=None):
    """Fit and apply each method once on a few rows, untimed.

    The first fit in a process pays one-off costs that later fits do not:
    TensorFlow's runtime start-up, UMAP's numba compilation (tens of seconds).
    Paying them here keeps them out of every timed fit, in particular out of
    the first seed's.
    """
    for method in methods:
        if progress is not None:
            progress.log(f"warming up {method} (untimed)")
        X = data.X_train[:300]
        sizes = [X]
        if method == "umap":
            # UMAP compiles other numba code (its approximate neighbour search)
            # for more than 4096 rows: MNIST's first fit paid 43 s, not 5.5 s.
            big = np.resize(data.X_train, (4200, data.X_train.shape[1]))
            sizes.append(
                big + np.random.RandomState(0).normal(scale=1e-3, size=big.shape)
            )
        for X in sizes:
            estimator = make_estimator(
                method, 2, 0, epochs=1, n_features=_n_features(data)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.fit(X)
                Z = estimator.transform(X[:50])
                if method not in ("umap", "parametric_umap"):
                    estimator.inverse_transform(Z)


def _n_features(data):
    return int(np.prod(data.X_train.shape[1:]))


def _keep_for_figures(store, run, arrays, *, first):
    """Keep the first seed's codes and reconstructions, every seed's history."""
    k, method = run["n_components"], run["method"]
    if first:
        store["embeddings"].setdefault(k, {})[method] = arrays["Z_test"]
        store["knn_accuracy"].setdefault(k, {})[method] = run["metrics"]["knn_accuracy"]
        if arrays["X_reconstructed"] is not None:
            store["reconstructions"].setdefault(k, {})[method] = arrays[
                "X_reconstructed"
            ]
    if arrays["history"] is not None:
        store["histories"].setdefault(k, {})[run["seed"]] = arrays["history"]


def run_suite(datasets, *, seeds, methods, epochs=None, progress=None):
    """Run every method, code size and seed on every dataset.

    Parameters
    ----------
    datasets : list of BenchmarkData
    seeds : list of int
        Random states of the models; the split does not change with them.
    methods : list of str
    epochs : int or None
        Overrides the autoencoder's epochs (``--quick``); None keeps its
        default.
    progress : Progress or None

    Returns
    -------
    runs : list of dict
        One per fit, see :func:`run_one`.
    artifacts : dict
        Per dataset: ``y_test``, and the first seed's embeddings,
        reconstructions and every seed's training history, for the figures.
    """
    runs, artifacts = [], {}
    if datasets:
        warm_up(methods, datasets[0], progress)
    for data in datasets:
        store = artifacts.setdefault(
            data.name,
            {
                "y_test": data.y_test,
                "X_test": data.X_test,
                "seed": seeds[0],
                "embeddings": {},
                "knn_accuracy": {},
                "reconstructions": {},
                "histories": {},
            },
        )
        for k in data.info["code_sizes"]:
            for seed in seeds:
                for method in methods:
                    if not runs_method(method, k, data.info["code_sizes"]):
                        continue
                    run, arrays = run_one(method, data, k, seed, epochs=epochs)
                    runs.append(run)
                    if progress is not None:
                        m = run["metrics"]
                        progress.log(
                            f"{data.name} {k:>2}-D seed {seed} {method:<11} "
                            f"fit {m['fit_seconds']:6.2f}s  "
                            f"kNN {m['knn_accuracy']:.3f}  "
                            f"trust {m['trustworthiness']:.3f}",
                            step=True,
                        )
                    _keep_for_figures(store, run, arrays, first=seed == seeds[0])
    return runs, artifacts
