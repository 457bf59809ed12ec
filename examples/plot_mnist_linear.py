"""
A linear autoencoder of MNIST
=============================

The simplest autoencoder: one linear ``Dense(2)`` layer as the encoder and one
``Dense(784)`` layer with a sigmoid as the decoder, trained with binary
cross-entropy on pixels scaled to [0, 1] for 5 epochs. Without a non-linearity
in the encoder, the code is a linear projection, like PCA's, so the two
scatter plots of held-out digits look alike.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer
from skae.datasets import fetch_mnist, train_test_split_dataset
from skae.metrics import knn_accuracy, reconstruction_mse
from skae.plotting import EmbeddingComparisonDisplay

parser = argparse.ArgumentParser(description="Linear 2-D autoencoder of MNIST.")
parser.add_argument("--quick", action="store_true", help="few samples and epochs")
parser.add_argument("--output-dir", type=Path, default=Path("examples-output"))
args, _ = parser.parse_known_args()
# The recipe fixes the number of epochs, converged or not.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# MNIST; when only the 10,000 test images are on disk, they are split in halves.
X_train, X_test, y_train, y_test = train_test_split_dataset(
    fetch_mnist(), random_state=0
)
n_train, n_test = (1000, 300) if args.quick else (None, None)
X_train, y_train = X_train[:n_train], y_train[:n_train]
X_test, y_test = X_test[:n_test], y_test[:n_test]
# The recipe's epochs are passes over MNIST's 60,000 training images: with
# fewer images on disk, train for as many gradient steps.
epochs = 2 if args.quick else round(5 * 60_000 / len(X_train))

# %%
# No hidden layer, a linear code; binary cross-entropy implies pixels scaled to
# [0, 1] (``scaling="minmax"``) and a sigmoid output.
autoencoder = AutoencoderTransformer(
    n_components=2,
    hidden_layer_sizes=(),
    code_activation=None,
    loss="binary_crossentropy",
    epochs=epochs,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
)
start = time.perf_counter()
Z_train = autoencoder.fit_transform(X_train)
fit_time = time.perf_counter() - start
Z_test = autoencoder.transform(X_test)

pca = PCA(n_components=2).fit(X_train)
P_train, P_test = pca.transform(X_train), pca.transform(X_test)
ae_mse = reconstruction_mse(X_test, autoencoder.inverse_transform(Z_test))
pca_mse = reconstruction_mse(X_test, pca.inverse_transform(P_test))
ae_knn = knn_accuracy(Z_train, y_train, Z_test, y_test)
pca_knn = knn_accuracy(P_train, y_train, P_test, y_test)
print(f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(X_train)} images")
print(f"held-out reconstruction MSE (pixel units): {ae_mse:.0f} (PCA: {pca_mse:.0f})")
print(f"held-out 5-NN accuracy of the 2-D code: {ae_knn:.3f} (PCA: {pca_knn:.3f})")

# %%
display = EmbeddingComparisonDisplay.from_estimators(
    {"Linear autoencoder": autoencoder, "PCA": pca}, X_test, y_test
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_linear.png", dpi=100)
plt.show()
