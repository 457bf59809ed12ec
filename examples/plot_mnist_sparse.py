"""
A sparse autoencoder of MNIST, saved and loaded back
====================================================

784 pixels into 16 ReLU units with an L1 penalty of 1e-4 on their activity
(``code_l1``), which keeps most of the code at zero, and back through a sigmoid
output; binary cross-entropy and the Adadelta optimizer (with the learning rate
of 1.0 that the original recipe used). The fitted transformer is saved to one
file and loaded back, and the loaded copy draws the reconstructions. Rows:
held-out digits and their reconstructions.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

import skae
from skae import AutoencoderTransformer
from skae.datasets import fetch_mnist, train_test_split_dataset
from skae.metrics import reconstruction_mse
from skae.plotting import ReconstructionDisplay

parser = argparse.ArgumentParser(description="Sparse autoencoder of MNIST.")
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
epochs = 2 if args.quick else round(50 * 60_000 / len(X_train))

# %%
autoencoder = AutoencoderTransformer(
    n_components=16,
    hidden_layer_sizes=(),
    code_activation="relu",
    code_l1=1e-4,
    loss="binary_crossentropy",
    optimizer="adadelta",
    learning_rate=1.0,
    epochs=epochs,
    batch_size=256,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
)
start = time.perf_counter()
autoencoder.fit(X_train)
fit_time = time.perf_counter() - start
print(f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(X_train)} images")

# %%
# Save to one file and load it back, as another process would.
args.output_dir.mkdir(parents=True, exist_ok=True)
path = autoencoder.save(args.output_dir / "sparse_autoencoder.skae")
loaded = skae.load(path)
codes = loaded.transform(X_test)
assert np.array_equal(codes, autoencoder.transform(X_test))
reconstructed = loaded.inverse_transform(codes)
print(f"saved to and loaded from {path}")
print(f"fraction of zero code values: {np.mean(codes == 0):.2f}")
mse = reconstruction_mse(X_test, reconstructed)
print(f"held-out reconstruction MSE (pixel units): {mse:.0f}")

# %%
# The first ten test images, encoded and decoded again by the loaded model.
display = ReconstructionDisplay.from_estimator(loaded, X_test, name="sparse, 16 units")
display.figure_.savefig(args.output_dir / "plot_mnist_sparse.png", dpi=100)
plt.show()
