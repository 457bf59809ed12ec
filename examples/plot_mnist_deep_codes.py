"""
A deep autoencoder, and the same network with a wider code
==========================================================

A 784-128-64-32 ReLU encoder with the mirrored decoder (64-128-784, sigmoid
output) and binary cross-entropy; then the same network with the code taken one
layer earlier, at the 64-unit layer (784-128-64). Rows: held-out digits, their
reconstructions from 32 numbers, then from 64.
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

parser = argparse.ArgumentParser(description="Deep autoencoders of MNIST.")
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
# ``hidden_layer_sizes`` lists the layers before the code; the decoder mirrors
# them.
networks = {
    "784-128-64-32": dict(hidden_layer_sizes=(128, 64), n_components=32),
    "784-128-64": dict(hidden_layer_sizes=(128,), n_components=64),
}
rebuilt = {}
for name, layers in networks.items():
    autoencoder = AutoencoderTransformer(
        **layers,
        activation="relu",
        code_activation="relu",
        loss="binary_crossentropy",
        epochs=epochs,
        batch_size=256,
        noise=0.0,  # The recipe has no input noise; skae adds some by default.
        random_state=0,
    )
    start = time.perf_counter()
    autoencoder.fit(X_train)
    fit_time = time.perf_counter() - start
    rebuilt[name] = autoencoder.inverse_transform(autoencoder.transform(X_test))
    mse = reconstruction_mse(X_test, rebuilt[name])
    print(
        f"{name}: held-out reconstruction MSE {mse:.0f} (pixel units), "
        f"fit time {fit_time:.1f} s, {autoencoder.n_iter_} epochs of "
        f"{len(X_train)} images"
    )

# %%
display = ReconstructionDisplay.from_reconstructions(
    X_test, rebuilt, image_shape=(28, 28)
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_deep_codes.png", dpi=100)
plt.show()
