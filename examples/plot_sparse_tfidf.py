"""
A sparse TF-IDF matrix, never densified whole
=============================================

Text is sparse: a TF-IDF matrix of 20,000 documents over a 20,000-word
vocabulary holds 400 million values, almost all zero. ``fit``, ``transform``
and ``partial_fit`` take a ``scipy.sparse`` matrix as it is and densify one
batch of rows at a time, so the dense matrix (3 GB in float64) never exists.

The corpus is generated here, offline: each document mixes words of one of
eight topics with common words; the 2-D codes of held-out documents are
compared with :class:`~sklearn.decomposition.TruncatedSVD`'s, the usual linear
reduction of sparse text.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer
from skae.metrics import knn_accuracy
from skae.plotting import EmbeddingComparisonDisplay

parser = argparse.ArgumentParser(description="Autoencoder of sparse TF-IDF text.")
parser.add_argument("--quick", action="store_true", help="few documents and epochs")
parser.add_argument("--output-dir", type=Path, default=Path("examples-output"))
args, _ = parser.parse_known_args()
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# Eight topics, each with its own words; every document draws most of its 80
# words from its topic and the rest from 2,000 common words.
n_docs, vocabulary = (2000, 5000) if args.quick else (20_000, 20_000)
rng = np.random.RandomState(0)
n_topics, common = 8, 2000
topic_words = (vocabulary - common) // n_topics
topics = rng.randint(n_topics, size=n_docs)
words = rng.permutation(vocabulary)
common_words = words[:common]
documents = []
for topic in topics:
    own = words[common + topic * topic_words : common + (topic + 1) * topic_words]
    chosen = np.where(
        rng.rand(80) < 0.6,
        rng.choice(own, 80),
        rng.choice(common_words, 80),
    )
    documents.append(" ".join(f"w{w}" for w in chosen))
X = TfidfVectorizer().fit_transform(documents)  # CSR
X_train, X_test, y_train, y_test = train_test_split(
    X, topics, test_size=0.25, stratify=topics, random_state=0
)
dense_gb = X.shape[0] * X.shape[1] * 8 / 1e9
print(
    f"TF-IDF: {X.shape[0]} documents x {X.shape[1]} words, {X.nnz} non-zeros "
    f"(density {X.nnz / (X.shape[0] * X.shape[1]):.4f}); dense float64 would be "
    f"{dense_gb:.2f} GB"
)

# %%
# The network is small next to the input (a first layer of 64 units). The
# default scaling centres each batch as it is densified, and scales the data
# to unit RMS, so the loss does not vanish with TF-IDF's tiny values.
autoencoder = AutoencoderTransformer(
    n_components=2,
    hidden_layer_sizes=(64,),
    epochs=2 if args.quick else 20,
    random_state=0,
)
start = time.perf_counter()
autoencoder.fit(X_train)
fit_time = time.perf_counter() - start
start = time.perf_counter()
Z_test = autoencoder.transform(X_test)
transform_time = time.perf_counter() - start
Z_train = autoencoder.transform(X_train)

start = time.perf_counter()
svd = TruncatedSVD(n_components=2, random_state=0).fit(X_train)
svd_time = time.perf_counter() - start
S_train, S_test = svd.transform(X_train), svd.transform(X_test)
print(
    f"autoencoder fit {fit_time:.1f} s ({autoencoder.n_iter_} epochs), "
    f"transform of {X_test.shape[0]} documents {transform_time:.2f} s; "
    f"TruncatedSVD fit {svd_time:.2f} s"
)
print(
    f"held-out 5-NN topic accuracy of the 2-D code: autoencoder "
    f"{knn_accuracy(Z_train, y_train, Z_test, y_test):.3f}, TruncatedSVD "
    f"{knn_accuracy(S_train, y_train, S_test, y_test):.3f}"
)

# %%
display = EmbeddingComparisonDisplay.from_estimators(
    {"Autoencoder": autoencoder, "TruncatedSVD": svd}, X_test, y_test
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_sparse_tfidf.png", dpi=100)
plt.show()
