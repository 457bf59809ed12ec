"""Cluster-separation and reconstruction metrics for learned embeddings.

All metrics are meant for held-out data: the samples scored were not used to
fit the transformer that produced the embedding ``Z``. Each function returns a
Python float; :func:`embedding_report` computes all of them at once and
:func:`make_embedding_scorer` turns one into a scorer for
:class:`~sklearn.model_selection.GridSearchCV`.
"""

import inspect
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn import manifold
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import check_array, check_random_state

from ._streaming import dense_frame

__all__ = [
    "calinski_harabasz",
    "davies_bouldin",
    "embedding_report",
    "kmeans_ari",
    "kmeans_nmi",
    "knn_accuracy",
    "make_embedding_scorer",
    "reconstruction_mse",
    "silhouette",
    "trustworthiness",
]

# Set explicitly because scikit-learn's default (n_init="auto") runs k-means++
# once, which makes ARI/NMI jump from one random_state to the next.
_KMEANS_N_INIT = 10


def knn_accuracy(Z_train, y_train, Z_test, y_test, *, n_neighbors=5):
    """Accuracy of a k-nearest-neighbours classifier in the embedding.

    The classifier is fitted on the training embedding and scored on the
    held-out one, so it measures how well classes separate locally in the
    learned space. Higher is better; 1.0 is perfect.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, n_components)
        Embedding of the training samples.

    y_train : array-like of shape (n_train,)
        Labels of the training samples.

    Z_test : array-like of shape (n_test, n_components)
        Embedding of the held-out samples.

    y_test : array-like of shape (n_test,)
        Labels of the held-out samples.

    n_neighbors : int, default=5
        Number of neighbours voting for each held-out sample.

    Returns
    -------
    accuracy : float
        Fraction of held-out samples classified correctly.

    Examples
    --------
    >>> from skae.metrics import knn_accuracy
    >>> Z_train, y_train = [[0.0], [0.1], [5.0], [5.1]], [0, 0, 1, 1]
    >>> knn_accuracy(Z_train, y_train, [[0.2], [4.9]], [0, 1], n_neighbors=1)
    1.0
    """
    Z_train = _check_2d(Z_train, "Z_train")
    Z_test = _check_2d(Z_test, "Z_test", n_features=Z_train.shape[1])
    y_train = _check_labels(y_train, len(Z_train), "y_train", "Z_train")
    y_test = _check_labels(y_test, len(Z_test), "y_test", "Z_test")
    _check_int(n_neighbors, "n_neighbors", 1, len(Z_train))
    knn = KNeighborsClassifier(n_neighbors=n_neighbors).fit(Z_train, y_train)
    return float(knn.score(Z_test, y_test))


def trustworthiness(X, Z, *, n_neighbors=10, max_samples=5000, random_state=0):
    """How well the embedding avoids false neighbours, between 0 and 1.

    Wraps :func:`sklearn.manifold.trustworthiness`: it penalises samples that
    are among the ``n_neighbors`` nearest neighbours of a sample in ``Z`` but
    not in ``X``. Higher is better; 1.0 means every neighbourhood in ``Z`` is
    one in ``X``.

    scikit-learn computes the full pairwise distance matrices of ``X`` and
    ``Z``, which takes O(n_samples ** 2) memory (about 1.6 GB for 10,000
    samples). Larger inputs are therefore scored on a random subsample of
    ``max_samples`` rows, which estimates the full value.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Held-out samples in input space.

    Z : array-like of shape (n_samples, n_components)
        Their embedding, row for row.

    n_neighbors : int, default=10
        Size of the neighbourhoods compared. Must be less than half the number
        of samples scored.

    max_samples : int or None, default=5000
        Score a random subsample of this many rows when there are more. None
        scores all rows, whatever the memory cost.

    random_state : int, RandomState instance or None, default=0
        Selects the subsample. The fixed default makes scores reproducible and
        lets embeddings of the same data be compared on the same rows.

    Returns
    -------
    trustworthiness : float
        Between 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skae.metrics import trustworthiness
    >>> X = np.random.default_rng(0).normal(size=(50, 5))
    >>> round(trustworthiness(X, X[:, :2]), 2)  # 3 of 5 dimensions dropped
    0.76
    >>> trustworthiness(X, X)
    1.0
    """
    X = _check_2d(X, "X")
    Z = _check_2d(Z, "Z", n_samples=len(X))
    if max_samples is not None:
        _check_int(max_samples, "max_samples", 1)
        if len(X) > max_samples:
            # Too few rows kept must not be blamed on n_neighbors below.
            _check_int(n_neighbors, "n_neighbors", 1)
            _check_int(max_samples, "max_samples", 2 * n_neighbors + 1)
            rng = check_random_state(random_state)
            rows = np.sort(rng.choice(len(X), size=max_samples, replace=False))
            X, Z = X[rows], Z[rows]
    # scikit-learn requires n_neighbors < n_samples / 2.
    _check_int(n_neighbors, "n_neighbors", 1, (len(X) - 1) // 2)
    return float(manifold.trustworthiness(X, Z, n_neighbors=n_neighbors))


def silhouette(Z, y):
    """Mean silhouette coefficient of the classes in the embedding.

    Compares, for each sample, the mean distance to its own class with that to
    the nearest other class. Between -1 and 1; higher is better.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of held-out samples.

    y : array-like of shape (n_samples,)
        Their labels; at least two distinct values.

    Returns
    -------
    silhouette : float

    See Also
    --------
    sklearn.metrics.silhouette_score : The function computing it.

    Examples
    --------
    >>> from skae.metrics import silhouette
    >>> round(silhouette([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1]), 3)
    0.9
    """
    Z, y = _check_clusters(Z, y)
    return float(silhouette_score(Z, y))


def davies_bouldin(Z, y):
    """Davies-Bouldin index of the classes in the embedding; lower is better.

    The mean, over classes, of the worst ratio of within-class spread to
    between-class distance. 0 is the minimum.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of held-out samples.

    y : array-like of shape (n_samples,)
        Their labels; at least two distinct values.

    Returns
    -------
    davies_bouldin : float

    See Also
    --------
    sklearn.metrics.davies_bouldin_score : The function computing it.

    Examples
    --------
    >>> from skae.metrics import davies_bouldin
    >>> davies_bouldin([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1])
    0.1
    """
    Z, y = _check_clusters(Z, y)
    return float(davies_bouldin_score(Z, y))


def calinski_harabasz(Z, y):
    """Calinski-Harabasz index of the classes in the embedding.

    The ratio of between-class to within-class dispersion, corrected for the
    numbers of samples and classes. Higher is better; unbounded.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of held-out samples.

    y : array-like of shape (n_samples,)
        Their labels; at least two distinct values.

    Returns
    -------
    calinski_harabasz : float

    See Also
    --------
    sklearn.metrics.calinski_harabasz_score : The function computing it.

    Examples
    --------
    >>> from skae.metrics import calinski_harabasz
    >>> calinski_harabasz([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1])
    200.0
    """
    Z, y = _check_clusters(Z, y)
    return float(calinski_harabasz_score(Z, y))


def kmeans_ari(Z, y, *, random_state=0):
    """Adjusted Rand index between k-means clusters of the embedding and labels.

    k-means is run with as many clusters as there are classes in ``y``. 1.0
    means the clusters are the classes; about 0 means chance agreement.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of held-out samples.

    y : array-like of shape (n_samples,)
        Their labels; at least two distinct values.

    random_state : int, RandomState instance or None, default=0
        Seeds the k-means initialisations.

    Returns
    -------
    ari : float

    See Also
    --------
    kmeans_nmi : The same clustering scored by normalized mutual information.

    Examples
    --------
    >>> from skae.metrics import kmeans_ari
    >>> kmeans_ari([[0.0], [1.0], [10.0], [11.0]], ["a", "a", "b", "b"])
    1.0
    """
    Z, y = _check_clusters(Z, y)
    return float(adjusted_rand_score(y, _kmeans_labels(Z, y, random_state)))


def kmeans_nmi(Z, y, *, random_state=0):
    """Normalized mutual information between k-means clusters and labels.

    k-means is run with as many clusters as there are classes in ``y``.
    Between 0 and 1; higher is better.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of held-out samples.

    y : array-like of shape (n_samples,)
        Their labels; at least two distinct values.

    random_state : int, RandomState instance or None, default=0
        Seeds the k-means initialisations.

    Returns
    -------
    nmi : float

    See Also
    --------
    kmeans_ari : The same clustering scored by the adjusted Rand index.

    Examples
    --------
    >>> from skae.metrics import kmeans_nmi
    >>> kmeans_nmi([[0.0], [1.0], [10.0], [11.0]], ["a", "a", "b", "b"])
    1.0
    """
    Z, y = _check_clusters(Z, y)
    return float(normalized_mutual_info_score(y, _kmeans_labels(Z, y, random_state)))


def reconstruction_mse(X, X_reconstructed):
    """Mean squared reconstruction error, in the units of ``X``.

    Averaged over all samples and features. Lower is better.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Held-out samples.

    X_reconstructed : array-like of shape (n_samples, n_features)
        Their reconstructions, for instance
        ``estimator.inverse_transform(estimator.transform(X))``.

    Returns
    -------
    mse : float

    Examples
    --------
    >>> from skae.metrics import reconstruction_mse
    >>> reconstruction_mse([[0.0, 2.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    1.0
    """
    X = _check_2d(X, "X")
    X_reconstructed = _check_2d(
        X_reconstructed, "X_reconstructed", n_samples=len(X), n_features=X.shape[1]
    )
    return float(np.mean((X - X_reconstructed) ** 2))


def embedding_report(
    Z,
    y,
    *,
    Z_train=None,
    y_train=None,
    X=None,
    X_reconstructed=None,
    knn_neighbors=5,
    trustworthiness_neighbors=10,
    max_samples=5000,
    random_state=0,
):
    """Compute every metric of this module for one held-out embedding.

    k-means is fitted once for both ``kmeans_ari`` and ``kmeans_nmi``. Metrics
    whose inputs are not given are left out of the result.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Embedding of the held-out samples.

    y : array-like of shape (n_samples,)
        Their labels.

    Z_train : array-like of shape (n_train, n_components), default=None
        Embedding of the training samples; needed, with ``y_train``, for
        ``knn_accuracy``.

    y_train : array-like of shape (n_train,), default=None
        Labels of the training samples.

    X : array-like of shape (n_samples, n_features), default=None
        The held-out samples in input space; needed for ``trustworthiness``
        and, with ``X_reconstructed``, for ``reconstruction_mse``.

    X_reconstructed : array-like of shape (n_samples, n_features), default=None
        Reconstructions of ``X``, in the units of ``X``.

    knn_neighbors : int, default=5
        ``n_neighbors`` of :func:`knn_accuracy`.

    trustworthiness_neighbors : int, default=10
        ``n_neighbors`` of :func:`trustworthiness`.

    max_samples : int or None, default=5000
        Trustworthiness is computed on a random subsample of at most this many
        rows, because its memory grows with the square of the number of
        samples; see :func:`trustworthiness`.

    random_state : int, RandomState instance or None, default=0
        Seeds the trustworthiness subsample and the k-means initialisations.

    Returns
    -------
    report : dict of str to float
        In this order, those that could be computed: ``"knn_accuracy"``,
        ``"trustworthiness"``, ``"silhouette"``, ``"davies_bouldin"`` (lower
        is better), ``"calinski_harabasz"``, ``"kmeans_ari"``,
        ``"kmeans_nmi"`` and ``"reconstruction_mse"`` (lower is better).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.decomposition import PCA
    >>> from skae.metrics import embedding_report
    >>> X, y = make_blobs(n_samples=200, n_features=5, centers=3, random_state=0)
    >>> X_train, X_test, y_train, y_test = X[:100], X[100:], y[:100], y[100:]
    >>> pca = PCA(n_components=2).fit(X_train)
    >>> Z_test = pca.transform(X_test)
    >>> report = embedding_report(
    ...     Z_test, y_test, Z_train=pca.transform(X_train), y_train=y_train,
    ...     X=X_test, X_reconstructed=pca.inverse_transform(Z_test))
    >>> list(report)  # doctest: +NORMALIZE_WHITESPACE
    ['knn_accuracy', 'trustworthiness', 'silhouette', 'davies_bouldin',
     'calinski_harabasz', 'kmeans_ari', 'kmeans_nmi', 'reconstruction_mse']
    >>> report["knn_accuracy"], report["kmeans_ari"]
    (1.0, 1.0)
    """
    if (Z_train is None) != (y_train is None):
        raise ValueError(
            "Expected Z_train and y_train to be given together. Received: "
            f"Z_train={_describe(Z_train)}, y_train={_describe(y_train)}"
        )
    if X_reconstructed is not None and X is None:
        raise ValueError(
            "Expected X along with X_reconstructed. Received: X=None, "
            f"X_reconstructed={_describe(X_reconstructed)}"
        )
    Z, y = _check_clusters(Z, y)
    report = {}
    if Z_train is not None:
        report["knn_accuracy"] = knn_accuracy(
            Z_train, y_train, Z, y, n_neighbors=knn_neighbors
        )
    if X is not None:
        report["trustworthiness"] = trustworthiness(
            X,
            Z,
            n_neighbors=trustworthiness_neighbors,
            max_samples=max_samples,
            random_state=random_state,
        )
    report["silhouette"] = float(silhouette_score(Z, y))
    report["davies_bouldin"] = float(davies_bouldin_score(Z, y))
    report["calinski_harabasz"] = float(calinski_harabasz_score(Z, y))
    clusters = _kmeans_labels(Z, y, random_state)
    report["kmeans_ari"] = float(adjusted_rand_score(y, clusters))
    report["kmeans_nmi"] = float(normalized_mutual_info_score(y, clusters))
    if X_reconstructed is not None:
        report["reconstruction_mse"] = reconstruction_mse(X, X_reconstructed)
    return report


def _cross_val_knn_accuracy(Z, y, *, n_neighbors=5, cv=5):
    Z = _check_2d(Z, "Z")
    y = _check_labels(y, len(Z), "y", "Z")
    knn = KNeighborsClassifier(n_neighbors=n_neighbors)
    return float(cross_val_score(knn, Z, y, cv=cv).mean())


# Scorer name -> (metric, sign making higher better, what it is computed from).
_SCORERS = {
    "knn_accuracy": (_cross_val_knn_accuracy, 1, "labels"),
    "trustworthiness": (trustworthiness, 1, "inputs"),
    "silhouette": (silhouette, 1, "labels"),
    "neg_davies_bouldin": (davies_bouldin, -1, "labels"),
    "calinski_harabasz": (calinski_harabasz, 1, "labels"),
    "kmeans_ari": (kmeans_ari, 1, "labels"),
    "kmeans_nmi": (kmeans_nmi, 1, "labels"),
    "neg_reconstruction_mse": (reconstruction_mse, -1, "reconstructions"),
}


def make_embedding_scorer(metric, **kwargs):
    """Make a scorer ``scorer(estimator, X, y) -> float`` from a metric.

    The scorer embeds ``X`` with ``estimator.transform`` and scores the
    embedding, so it can rank transformers in
    :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_validate`. As scikit-learn expects,
    higher is always better: lower-is-better metrics are negated and carry a
    ``neg_`` prefix.

    Parameters
    ----------
    metric : str
        One of:

        - ``"knn_accuracy"``: only one held-out fold is available to the
          scorer, so this is the cross-validated accuracy of a k-nearest-
          neighbours classifier on the embedding of that fold. Options
          ``n_neighbors`` (default 5) and ``cv`` (default 5).
        - ``"trustworthiness"``: of the embedding with respect to ``X``; see
          :func:`trustworthiness` for its options.
        - ``"silhouette"``, ``"neg_davies_bouldin"``, ``"calinski_harabasz"``,
          ``"kmeans_ari"``, ``"kmeans_nmi"``: cluster separation of the
          labels ``y`` in the embedding.
        - ``"neg_reconstruction_mse"``: minus the mean squared error of
          ``estimator.inverse_transform(estimator.transform(X))``; needs no
          labels.

    **kwargs
        Keyword options of the metric.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None)`` returning a float.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skae.metrics import make_embedding_scorer
    >>> X, y = make_blobs(n_samples=150, n_features=4, centers=5, cluster_std=2,
    ...                   random_state=0)
    >>> search = GridSearchCV(
    ...     PCA(), {"n_components": [1, 3]}, cv=3,
    ...     scoring=make_embedding_scorer("knn_accuracy", n_neighbors=5),
    ... ).fit(X, y)
    >>> search.best_params_
    {'n_components': 3}
    >>> search.cv_results_["mean_test_score"].round(2)
    array([0.73, 0.99])
    """
    if metric not in _SCORERS:
        raise ValueError(
            f"Expected metric to be one of {sorted(_SCORERS)}. "
            f"Received: metric={metric!r}"
        )
    options = [
        name
        for name, parameter in inspect.signature(_SCORERS[metric][0]).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"Expected options of metric={metric!r} among {options}. "
            f"Received: {', '.join(unknown)}"
        )
    return _EmbeddingScorer(metric, kwargs)


class _EmbeddingScorer:
    def __init__(self, metric, kwargs):
        self.metric = metric
        self.kwargs = kwargs

    def __call__(self, estimator, X, y=None):
        function, sign, needs = _SCORERS[self.metric]
        Z = estimator.transform(X)
        if needs == "inputs":
            value = function(_as_rows(X), Z, **self.kwargs)
        elif needs == "reconstructions":
            value = function(_as_rows(X), _as_rows(estimator.inverse_transform(Z)))
        elif y is None:
            raise ValueError(
                f"Expected labels y for the {self.metric!r} scorer. Received: y=None"
            )
        else:
            value = function(Z, y, **self.kwargs)
        return sign * value

    def __repr__(self):
        args = [repr(self.metric)]
        args += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"make_embedding_scorer({', '.join(args)})"


def _as_rows(X):
    # Estimators take images and sparse rows; the metrics compare dense rows
    # of values, as the estimators' own scaling and losses do.
    X = _as_array(X.toarray() if sp.issparse(X) else X)
    return X.reshape(len(X), -1) if X.ndim > 2 else X


def _as_array(array):
    array = dense_frame(array)
    if hasattr(array, "dtypes"):
        # np.asarray turns pandas' nullable Float64 / Int64 columns into
        # objects; scikit-learn's conversion gives floats (missing ones NaN),
        # as the estimators' own input check does.
        return check_array(
            array,
            dtype=None,
            ensure_all_finite=False,
            ensure_2d=False,
            ensure_min_samples=0,
            ensure_min_features=0,
        )
    return np.asarray(array)


def _kmeans_labels(Z, y, random_state):
    kmeans = KMeans(
        n_clusters=len(np.unique(y)), n_init=_KMEANS_N_INIT, random_state=random_state
    )
    return kmeans.fit_predict(Z)


def _describe(value):
    return None if value is None else f"array of shape {np.shape(value)}"


def _check_2d(array, name, *, n_samples=None, n_features=None):
    """Return `array` as a finite float64 2-D array, checking its shape."""
    if sp.issparse(array):
        raise TypeError(
            f"Expected {name} to be a dense array. Received: {name} as a sparse "
            f"{type(array).__name__}; pass {name}.toarray()"
        )
    array = _as_array(array)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"Expected {name} to be a non-empty 2-D array. "
            f"Received: {name}.shape={array.shape}"
        )
    if n_samples is not None and len(array) != n_samples:
        raise ValueError(
            f"Expected {name} to have {n_samples} rows, one per sample. "
            f"Received: {name}.shape={array.shape}"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"Expected {name} to have {n_features} columns. "
            f"Received: {name}.shape={array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"Expected {name} to be numeric. Received: {name}.dtype={array.dtype}"
        )
    array = array.astype(np.float64, copy=False)
    n_bad = np.count_nonzero(~np.isfinite(array))
    if n_bad:
        raise ValueError(
            f"Expected {name} to contain only finite values. "
            f"Received: {name} with {n_bad} NaN or infinite values"
        )
    return array


def _check_labels(y, n_samples, name, rows_of):
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(
            f"Expected {name} to be 1-D with one label per row of {rows_of} "
            f"({n_samples}). Received: {name}.shape={y.shape}"
        )
    if y.dtype.kind in "fO":
        # A missing label is no class; classifiers and np.unique fail on it
        # with messages that do not name the argument.
        n_missing = sum(map(_is_missing, y.tolist()))
        if n_missing:
            raise ValueError(
                f"Expected {name} to hold a label for every row. Received: {name} "
                f"with {n_missing} missing (None, NaN or NA) labels"
            )
    if y.dtype.kind == "O":
        try:
            np.unique(y)
        except TypeError:
            kinds = sorted({type(label).__name__ for label in y.tolist()})
            raise ValueError(
                f"Expected {name} to hold labels of one comparable type. "
                f"Received: {name} holding {', '.join(kinds)} labels"
            ) from None
    return y


def _is_missing(label):
    try:
        return label is None or bool(label != label)  # NaN is not itself
    except TypeError:  # pandas.NA: its comparisons are NA, which has no truth
        return True


def _check_clusters(Z, y):
    Z = _check_2d(Z, "Z")
    y = _check_labels(y, len(Z), "y", "Z")
    n_classes = len(np.unique(y))
    if not 2 <= n_classes < len(Z):
        raise ValueError(
            "Expected between 2 and n_samples - 1 distinct labels in y. "
            f"Received: {n_classes} distinct labels for {len(Z)} samples"
        )
    return Z, y


def _check_int(value, name, low, high=None):
    """Check that `value` is an int in [low, high]."""
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(
            f"Expected {name} to be an int {bound}. Received: {name}={value!r}"
        )
