"""
A convolutional autoencoder of MNIST
====================================

Three 3x3 convolutions with 16, 8 and 8 filters, each followed by 2x2 max
pooling, take the 28x28 digits down to a (4, 4, 8) feature map, which is the
code (``n_components=None``: 128 values). The decoder mirrors the encoder with
2x2 upsampling. The estimator takes the images as they are, of shape
(n, 28, 28), and gives images back. Rows: held-out digits and their
reconstructions.
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

parser = argparse.ArgumentParser(description="Convolutional autoencoder of MNIST.")
parser.add_argument("--quick", action="store_true", help="few samples and epochs")
parser.add_argument("--output-dir", type=Path, default=Path("examples-output"))
args, _ = parser.parse_known_args()
# The recipe fixes the number of epochs, converged or not.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# MNIST; when only the 10,000 test images are on disk, they are split in halves.
X_train, X_test, _, _ = train_test_split_dataset(fetch_mnist(), random_state=0)
n_train, n_test = (500, 100) if args.quick else (None, None)
images_train = X_train[:n_train].reshape(-1, 28, 28)
images_test = X_test[:n_test].reshape(-1, 28, 28)
# The recipe's epochs are passes over MNIST's 60,000 training images: with
# fewer images on disk, train for as many gradient steps.
epochs = 2 if args.quick else round(5 * 60_000 / len(X_train))

# %%
autoencoder = AutoencoderTransformer(
    n_components=None,
    architecture="conv",
    hidden_layer_sizes=(16, 8, 8),
    loss="binary_crossentropy",
    epochs=epochs,
    batch_size=128,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
)
start = time.perf_counter()
autoencoder.fit(images_train)
fit_time = time.perf_counter() - start
print(
    f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(images_train)} images"
)
codes = autoencoder.transform(images_test)
reconstructed = autoencoder.inverse_transform(codes)
print(f"code: {codes.shape[1]} values per image; reconstructions {reconstructed.shape}")
mse = reconstruction_mse(
    images_test.reshape(len(codes), -1), reconstructed.reshape(len(codes), -1)
)
print(f"held-out reconstruction MSE (pixel units): {mse:.0f}")

# %%
# The first ten test images, encoded and decoded again.
display = ReconstructionDisplay.from_estimator(
    autoencoder, images_test, name="conv 16-8-8"
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_conv.png", dpi=100)
plt.show()
