import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import manifold
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.model_selection import GridSearchCV

from skae.metrics import (
    calinski_harabasz,
    davies_bouldin,
    embedding_report,
    kmeans_ari,
    kmeans_nmi,
    knn_accuracy,
    make_embedding_scorer,
    reconstruction_mse,
    silhouette,
    trustworthiness,
)

# Two tight classes on a line: every cluster metric has a closed form here.
LINE = np.array([[0.0], [1.0], [10.0], [11.0]])
LINE_LABELS = np.array([0, 0, 1, 1])


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(
        n_samples=240, n_features=6, centers=4, cluster_std=0.5, random_state=0
    )
    return X[:120], X[120:], y[:120], y[120:]


def test_knn_accuracy_separated_clusters(blobs):
    X_train, X_test, y_train, y_test = blobs
    assert knn_accuracy(X_train, y_train, X_test, y_test) == 1.0
    # Swapping two test labels makes exactly those samples wrong.
    y_wrong = np.where(y_test == 0, 1, np.where(y_test == 1, 0, y_test))
    expected = 1 - np.isin(y_test, [0, 1]).mean()
    assert knn_accuracy(X_train, y_train, X_test, y_wrong) == pytest.approx(expected)


def test_knn_accuracy_string_labels_and_n_neighbors():
    Z_train = [[0.0], [0.1], [0.2], [5.0]]
    y_train = ["a", "a", "a", "b"]
    assert knn_accuracy(Z_train, y_train, [[4.9]], ["b"], n_neighbors=1) == 1.0
    # With 3 voters, the lone "b" is outvoted.
    assert knn_accuracy(Z_train, y_train, [[4.9]], ["b"], n_neighbors=3) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"Z_test": np.zeros((3, 2))}, r"Z_test to have 1 columns"),
        ({"y_test": [0, 1]}, r"y_test to be 1-D with one label per row of Z_test"),
        ({"y_train": [[0], [1]]}, r"y_train.*Received: y_train.shape=\(2, 1\)"),
        ({"n_neighbors": 3}, r"n_neighbors to be an int between 1 and 2"),
        ({"n_neighbors": 1.0}, r"Received: n_neighbors=1.0"),
        ({"Z_train": [[0.0], [np.nan]]}, r"Z_train to contain only finite"),
    ],
)
def test_knn_accuracy_validation(kwargs, match):
    arguments = {
        "Z_train": [[0.0], [1.0]],
        "y_train": [0, 1],
        "Z_test": [[0.0], [1.0], [2.0]],
        "y_test": [0, 1, 1],
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        knn_accuracy(**arguments)


def test_trustworthiness_known_values(blobs):
    X = blobs[0]
    assert trustworthiness(X, X) == 1.0
    # Distances are all that matter: scaling and rotating changes nothing.
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    assert trustworthiness(X, 3 * X @ rotation) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(size=(len(X), 2))
    assert trustworthiness(X, noise) < 0.6
    assert trustworthiness(X, X[:, :2], n_neighbors=5) == pytest.approx(
        manifold.trustworthiness(X, X[:, :2], n_neighbors=5)
    )


def test_trustworthiness_subsamples_deterministically(blobs):
    X = blobs[0]
    Z = X[:, :2]
    rows = np.sort(np.random.RandomState(3).choice(len(X), 50, replace=False))
    expected = manifold.trustworthiness(X[rows], Z[rows], n_neighbors=10)
    value = trustworthiness(X, Z, max_samples=50, random_state=3)
    assert value == pytest.approx(expected)
    assert trustworthiness(X, Z, max_samples=50, random_state=3) == value
    assert trustworthiness(X, Z, max_samples=None) == pytest.approx(
        manifold.trustworthiness(X, Z, n_neighbors=10)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"Z": np.zeros((5, 2))}, r"Z to have 6 rows.*Received: Z.shape=\(5, 2\)"),
        ({"Z": np.zeros(6)}, r"Z to be a non-empty 2-D array"),
        ({"n_neighbors": 3}, r"n_neighbors to be an int between 1 and 2"),
        ({"max_samples": 0}, r"max_samples to be an int at least 1"),
        # Three rows kept cannot score 2 neighbours: max_samples is the cause.
        ({"max_samples": 3, "n_neighbors": 2}, r"max_samples to be an int at least 5"),
        ({"X": np.full((6, 2), np.inf)}, r"X to contain only finite values"),
        ({"X": np.full((6, 2), "a")}, r"X to be numeric"),
    ],
)
def test_trustworthiness_validation(kwargs, match):
    arguments = {"X": np.eye(6)[:, :2], "Z": np.eye(6)[:, :2]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        trustworthiness(**arguments)


def test_cluster_metrics_closed_form():
    # Centroids 0.5 and 10.5, every sample 0.5 from its centroid.
    assert silhouette(LINE, LINE_LABELS) == pytest.approx((9.5 / 10.5 + 8.5 / 9.5) / 2)
    assert davies_bouldin(LINE, LINE_LABELS) == pytest.approx(0.1)
    assert calinski_harabasz(LINE, LINE_LABELS) == pytest.approx(200.0)


@pytest.mark.parametrize("metric", [kmeans_ari, kmeans_nmi])
def test_kmeans_metrics(blobs, metric):
    X, y = blobs[0], blobs[2]
    assert metric(X, y) == pytest.approx(1.0)
    # Cluster ids are arbitrary: renaming the classes changes nothing.
    assert metric(X, (y + 1) % 4) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(y)
    assert abs(metric(X, shuffled)) < 0.15


@pytest.mark.parametrize(
    "metric", [silhouette, davies_bouldin, calinski_harabasz, kmeans_ari, kmeans_nmi]
)
def test_cluster_metrics_validation(metric):
    with pytest.raises(ValueError, match=r"Received: 1 distinct labels for 4"):
        metric(LINE, [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"Received: y.shape=\(3,\)"):
        metric(LINE, [0, 0, 1])
    with pytest.raises(ValueError, match=r"Z to contain only finite.*1 NaN"):
        metric(np.where(LINE == 1.0, np.nan, LINE), LINE_LABELS)


def test_reconstruction_mse():
    X = np.arange(12.0).reshape(4, 3)
    assert reconstruction_mse(X, X) == 0.0
    assert reconstruction_mse([[0.0, 2.0], [1.0, 1.0]], np.zeros((2, 2))) == 1.5
    with pytest.raises(ValueError, match=r"X_reconstructed to have 3 columns"):
        reconstruction_mse(X, X[:, :2])
    with pytest.raises(ValueError, match=r"X_reconstructed to have 4 rows"):
        reconstruction_mse(X, X[:2])


def test_embedding_report_matches_individual_metrics(blobs):
    X_train, X_test, y_train, y_test = blobs
    pca = PCA(n_components=2).fit(X_train)
    Z_train, Z_test = pca.transform(X_train), pca.transform(X_test)
    X_rec = pca.inverse_transform(Z_test)
    report = embedding_report(
        Z_test,
        y_test,
        Z_train=Z_train,
        y_train=y_train,
        X=X_test,
        X_reconstructed=X_rec,
        max_samples=100,
        random_state=1,
    )
    expected = {
        "knn_accuracy": knn_accuracy(Z_train, y_train, Z_test, y_test),
        "trustworthiness": trustworthiness(
            X_test, Z_test, max_samples=100, random_state=1
        ),
        "silhouette": silhouette(Z_test, y_test),
        "davies_bouldin": davies_bouldin(Z_test, y_test),
        "calinski_harabasz": calinski_harabasz(Z_test, y_test),
        "kmeans_ari": kmeans_ari(Z_test, y_test, random_state=1),
        "kmeans_nmi": kmeans_nmi(Z_test, y_test, random_state=1),
        "reconstruction_mse": reconstruction_mse(X_test, X_rec),
    }
    assert list(report) == list(expected)
    for name, value in expected.items():
        assert isinstance(report[name], float)
        assert report[name] == pytest.approx(value), name
    assert report["knn_accuracy"] == 1.0 and report["kmeans_ari"] == 1.0


def test_embedding_report_fits_kmeans_once(blobs, monkeypatch):
    from sklearn.cluster import KMeans

    calls = []
    original = KMeans.fit
    monkeypatch.setattr(
        KMeans, "fit", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    embedding_report(blobs[0], blobs[2])
    assert len(calls) == 1


def test_embedding_report_leaves_out_what_it_cannot_compute(blobs):
    X, y = blobs[0], blobs[2]
    assert list(embedding_report(X, y)) == [
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "kmeans_ari",
        "kmeans_nmi",
    ]
    assert "trustworthiness" in embedding_report(X, y, X=X)
    with pytest.raises(ValueError, match=r"Z_train and y_train to be given together"):
        embedding_report(X, y, Z_train=X)
    with pytest.raises(ValueError, match=r"Expected X along with X_reconstructed"):
        embedding_report(X, y, X_reconstructed=X)


@pytest.mark.parametrize(
    "metric, kwargs",
    [
        ("knn_accuracy", {"n_neighbors": 3}),
        ("trustworthiness", {"n_neighbors": 5}),
        ("silhouette", {}),
        ("neg_davies_bouldin", {}),
        ("calinski_harabasz", {}),
        ("kmeans_ari", {}),
        ("kmeans_nmi", {}),
        ("neg_reconstruction_mse", {}),
    ],
)
def test_scorers_in_grid_search(blobs, metric, kwargs):
    X, y = blobs[0], blobs[2]
    scorer = make_embedding_scorer(metric, **kwargs)
    search = GridSearchCV(
        PCA(), {"n_components": [2, 3]}, scoring=scorer, cv=3, error_score="raise"
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    if metric == "neg_davies_bouldin" or metric == "neg_reconstruction_mse":
        assert (scores < 0).all()
    # Called by hand, the scorer scores the embedding of the given fold.
    pca = PCA(n_components=2).fit(X)
    Z = pca.transform(X)
    expected = {
        "trustworthiness": lambda: trustworthiness(X, Z, n_neighbors=5),
        "silhouette": lambda: silhouette(Z, y),
        "neg_davies_bouldin": lambda: -davies_bouldin(Z, y),
        "calinski_harabasz": lambda: calinski_harabasz(Z, y),
        "kmeans_ari": lambda: kmeans_ari(Z, y),
        "kmeans_nmi": lambda: kmeans_nmi(Z, y),
        "neg_reconstruction_mse": lambda: (
            -reconstruction_mse(X, pca.inverse_transform(Z))
        ),
    }
    if metric in expected:
        assert scorer(pca, X, y) == pytest.approx(expected[metric]())


def test_reconstruction_scorer_prefers_more_components(blobs):
    X = blobs[0]
    search = GridSearchCV(
        PCA(),
        {"n_components": [2, 3]},
        scoring=make_embedding_scorer("neg_reconstruction_mse"),
        cv=3,
    ).fit(X)  # no labels needed
    assert search.best_params_ == {"n_components": 3}


def test_knn_scorer_is_cross_validated_on_the_fold():
    # Within the scored fold alone, 1-NN is perfect on two distant groups and
    # no better than chance when the labels alternate along each group.
    Z = np.concatenate([np.arange(10.0), np.arange(100.0, 110.0)]).reshape(-1, 1)
    separated = np.repeat([0, 1], 10)
    alternating = np.tile([0, 1], 10)
    scorer = make_embedding_scorer("knn_accuracy", n_neighbors=1)
    identity = PCA(n_components=1).fit(Z)
    assert scorer(identity, Z, separated) == 1.0
    assert scorer(identity, Z, alternating) <= 0.5


def test_multi_metric_grid_search(blobs):
    X, y = blobs[0], blobs[2]
    scoring = {
        name: make_embedding_scorer(name)
        for name in ("kmeans_ari", "neg_reconstruction_mse")
    }
    search = GridSearchCV(
        PCA(), {"n_components": [2, 3]}, scoring=scoring, refit=False, cv=3
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_kmeans_ari"]).all()


def test_make_embedding_scorer_validation(blobs):
    with pytest.raises(ValueError, match=r"Received: metric='davies_bouldin'"):
        make_embedding_scorer("davies_bouldin")
    with pytest.raises(ValueError, match=r"among \['n_neighbors', 'cv'\].*n_neighbour"):
        make_embedding_scorer("knn_accuracy", n_neighbour=3)
    with pytest.raises(ValueError, match=r"among \[\]"):
        make_embedding_scorer("silhouette", random_state=0)
    scorer = make_embedding_scorer("kmeans_ari", random_state=2)
    assert repr(scorer) == "make_embedding_scorer('kmeans_ari', random_state=2)"
    pca = PCA(n_components=2).fit(blobs[0])
    with pytest.raises(ValueError, match=r"labels y for the 'kmeans_ari' scorer"):
        scorer(pca, blobs[0])


class _ImagePCA:
    """PCA taking and giving images, as a conv autoencoder does."""

    def __init__(self, images):
        self.shape = images.shape[1:]
        self.pca = PCA(2).fit(images.reshape(len(images), -1))

    def transform(self, images):
        return self.pca.transform(images.reshape(len(images), -1))

    def inverse_transform(self, Z):
        return self.pca.inverse_transform(Z).reshape(len(Z), *self.shape)


@pytest.mark.parametrize("metric", ["neg_reconstruction_mse", "trustworthiness"])
def test_scorers_take_images_and_sparse_rows_as_the_estimators_do(blobs, metric):
    X = blobs[0]
    scorer = make_embedding_scorer(metric)
    images = X.reshape(len(X), 2, 3)
    expected = scorer(PCA(2).fit(X), X)
    assert scorer(_ImagePCA(images), images) == pytest.approx(expected, rel=1e-12)
    svd = TruncatedSVD(2, random_state=0).fit(X)
    assert scorer(svd, sp.csr_matrix(X)) == pytest.approx(scorer(svd, X), rel=1e-12)


def test_metrics_take_nullable_pandas_columns():
    # np.asarray turns Float64 / Int64 columns into objects; the estimators
    # take such frames, so their scorers and the metrics must too.
    pd = pytest.importorskip("pandas")
    X = np.arange(12.0).reshape(4, 3)
    assert reconstruction_mse(pd.DataFrame(X).astype("Float64"), X + 1) == 1.0
    assert reconstruction_mse(pd.DataFrame(X).astype("Int64"), X) == 0.0
    missing = pd.DataFrame(X).astype("Float64").mask(pd.DataFrame(X) > 9)
    with pytest.raises(ValueError, match=r"X .*2 NaN or infinite values"):
        reconstruction_mse(missing, X)
    scorer = make_embedding_scorer("neg_reconstruction_mse")
    pca = PCA(2).fit(X)
    frame = pd.DataFrame(X).astype("Float64")
    assert scorer(pca, frame) == pytest.approx(scorer(pca, X), rel=1e-12)


def test_metrics_take_all_sparse_pandas_columns():
    pd = pytest.importorskip("pandas")
    X = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    frame = pd.DataFrame(
        {c: pd.arrays.SparseArray(X[:, c], fill_value=np.nan) for c in range(2)}
    )
    assert reconstruction_mse(frame, X + 1) == 1.0


def test_metrics_refuse_sparse_and_complex_inputs():
    # np.asarray of a sparse matrix is a 0-d object array; complex values
    # would lose their imaginary part in the float64 cast.
    with pytest.raises(TypeError, match=r"X to be a dense array.*csr_matrix"):
        reconstruction_mse(sp.csr_matrix(np.eye(3)), np.eye(3))
    with pytest.raises(ValueError, match=r"X to be numeric.*complex128"):
        reconstruction_mse([[1 + 5j, 0]], [[1.0, 0.0]])


@pytest.mark.parametrize(
    "labels, match",
    [
        ([0, None, 1, 1], r"y with 1 missing"),
        ([0.0, np.nan, 1.0, np.nan], r"y with 2 missing"),
        (np.array(["a", 1, "b", 2], dtype=object), r"one comparable type.*int, str"),
    ],
)
@pytest.mark.parametrize("metric", [silhouette, kmeans_ari])
def test_cluster_metrics_refuse_missing_and_mixed_labels(metric, labels, match):
    # np.unique and scikit-learn fail on these without naming the argument.
    with pytest.raises(ValueError, match=r"Expected y to hold .*" + match):
        metric(LINE, labels)


def test_knn_accuracy_refuses_missing_labels():
    pd = pytest.importorskip("pandas")
    y_test = pd.Series(["a", pd.NA], dtype="string")
    with pytest.raises(ValueError, match=r"Received: y_test with 1 missing"):
        knn_accuracy(LINE, ["a", "a", "b", "b"], LINE[:2], y_test, n_neighbors=1)
    # Labels of one kind in an object array are classes as usual.
    y = np.array(["a", "a", "b", "b"], dtype=object)
    assert knn_accuracy(LINE, y, LINE, y, n_neighbors=1) == 1.0
