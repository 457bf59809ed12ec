"""
The simplest autoencoder: one hidden layer of 32 units
======================================================

784 pixels squeezed into 32 ReLU units and back through a sigmoid output,
trained with binary cross-entropy for 20 epochs of batches of 200. The first
row shows held-out digits, the second their reconstructions from 32 numbers.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer
from skae.datasets import fetch_mnist, train_test_split_dataset
from skae.metrics import reconstruction_mse
from skae.plotting import ReconstructionDisplay

parser = argparse.ArgumentParser(description="784-32-784 autoencoder of MNIST.")
parser.add_argument("--quick", action="store_true", help="few samples and epochs")
parser.add_argument("--output-dir", type=Path, default=Path("examples-output"))
args, _ = parser.parse_known_args()
# The recipe fixes the number of epochs, converged or not.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# MNIST; when only the 10,000 test images are on disk, they are split in halves.
X_train, X_test, _, _ = train_test_split_dataset(fetch_mnist(), random_state=0)
n_train, n_test = (1000, 300) if args.quick else (None, None)
X_train, X_test = X_train[:n_train], X_test[:n_test]
# The recipe's epochs are passes over MNIST's 60,000 training images: with
# fewer images on disk, train for as many gradient steps.
epochs = 2 if args.quick else round(20 * 60_000 / len(X_train))

# %%
# The code layer is the single hidden layer: ``hidden_layer_sizes=()``.
autoencoder = AutoencoderTransformer(
    n_components=32,
    hidden_layer_sizes=(),
    code_activation="relu",
    loss="binary_crossentropy",
    epochs=epochs,
    batch_size=200,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
)
start = time.perf_counter()
autoencoder.fit(X_train)
fit_time = time.perf_counter() - start
print(f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(X_train)} images")
reconstructed = autoencoder.inverse_transform(autoencoder.transform(X_test))
mse = reconstruction_mse(X_test, reconstructed)
print(f"held-out reconstruction MSE (pixel units): {mse:.0f}")

# %%
# The first ten test images, encoded and decoded again.
display = ReconstructionDisplay.from_estimator(autoencoder, X_test, name="32 units")
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_single_layer.png", dpi=100)
plt.show()
