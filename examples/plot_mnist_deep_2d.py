"""
A deep autoencoder maps MNIST to two dimensions
===============================================

The classic recipe: a 784-128-64-10-2 ReLU encoder, its mirror image as the
decoder with a tanh output, pixels scaled to [-0.5, 0.5], mean squared error and
Adam, 20 epochs of batches of 256. The scaling is a scikit-learn
:class:`~sklearn.preprocessing.FunctionTransformer` in a pipeline, so the
autoencoder takes the data as it comes (``scaling=None``).

The 2-D codes of held-out digits are coloured by digit; a k-nearest-neighbours
classifier on the codes measures how well the digits are kept apart, next to
PCA's two components.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skae import AutoencoderTransformer
from skae.datasets import fetch_mnist, train_test_split_dataset
from skae.metrics import knn_accuracy, reconstruction_mse
from skae.plotting import EmbeddingComparisonDisplay

parser = argparse.ArgumentParser(description="Deep 2-D autoencoder of MNIST.")
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
epochs = 2 if args.quick else round(20 * 60_000 / len(X_train))

# %%
# Pixels 0..255 become [-0.5, 0.5]; the pipeline undoes it in
# ``inverse_transform``.
center_pixels = FunctionTransformer(
    lambda X: X / 255.0 - 0.5, inverse_func=lambda X: (X + 0.5) * 255.0
)
autoencoder = AutoencoderTransformer(
    n_components=2,
    hidden_layer_sizes=(128, 64, 10),
    activation="relu",
    output_activation="tanh",
    scaling=None,
    loss="mse",
    optimizer="adam",
    epochs=epochs,
    batch_size=256,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
)
model = make_pipeline(center_pixels, autoencoder)
start = time.perf_counter()
model.fit(X_train)
fit_time = time.perf_counter() - start

# %%
# The same measures for PCA, the linear baseline.
pca = make_pipeline(center_pixels, PCA(n_components=2)).fit(X_train)
Z_train, Z_test = model.transform(X_train), model.transform(X_test)
P_train, P_test = pca.transform(X_train), pca.transform(X_test)
ae_mse = reconstruction_mse(X_test, model.inverse_transform(Z_test))
pca_mse = reconstruction_mse(X_test, pca.inverse_transform(P_test))
ae_knn = knn_accuracy(Z_train, y_train, Z_test, y_test)
pca_knn = knn_accuracy(P_train, y_train, P_test, y_test)
print(f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(X_train)} images")
print(f"held-out reconstruction MSE (pixel units): {ae_mse:.0f} (PCA: {pca_mse:.0f})")
print(f"held-out 5-NN accuracy of the 2-D code: {ae_knn:.3f} (PCA: {pca_knn:.3f})")

# %%
display = EmbeddingComparisonDisplay.from_estimators(
    {"Autoencoder 784-128-64-10-2": model, "PCA": pca}, X_test, y_test
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_deep_2d.png", dpi=100)
plt.show()
