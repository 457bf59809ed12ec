"""
A denoising autoencoder of MNIST
================================

During training, Gaussian noise is added to the inputs while the targets stay
clean, so the network learns to remove it; ``transform`` never adds noise. The
noise here is as strong as in the Keras recipe, a standard deviation of about
half the pixel range. Rows: held-out digits, the same with noise, and the noisy
ones as cleaned by the denoising autoencoder and by the same network trained
without noise.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer
from skae.datasets import fetch_mnist, train_test_split_dataset
from skae.metrics import reconstruction_mse
from skae.plotting import ReconstructionDisplay

parser = argparse.ArgumentParser(description="Denoising autoencoder of MNIST.")
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
epochs = 2 if args.quick else round(10 * 60_000 / len(X_train))

# %%
# ``noise`` is relative to the data's spread (the root mean square of the
# pixels' standard deviations, 66 of 255 on MNIST): 2.0 is about half the pixel
# range. The held-out digits get the same noise, clipped to pixel values.
noise = 2.0
noise_std = noise * np.sqrt(np.mean(X_train.var(axis=0)))
rng = np.random.default_rng(0)
X_noisy = np.clip(X_test + noise_std * rng.normal(size=X_test.shape), 0, 255)
print(f"noise standard deviation: {noise_std:.0f} (pixel units)")
print(
    f"MSE of the noisy digits (pixel units): {reconstruction_mse(X_test, X_noisy):.0f}"
)
rows = {"noisy": X_noisy}
for name, train_noise in [("denoising AE", noise), ("plain AE", 0.0)]:
    autoencoder = AutoencoderTransformer(
        n_components=32,
        hidden_layer_sizes=(256, 128),
        loss="binary_crossentropy",
        noise=train_noise,
        epochs=epochs,
        batch_size=128,
        random_state=0,
    )
    start = time.perf_counter()
    autoencoder.fit(X_train)
    fit_time = time.perf_counter() - start
    rows[name] = autoencoder.inverse_transform(autoencoder.transform(X_noisy))
    mse = reconstruction_mse(X_test, rows[name])
    print(
        f"{name} (noise={train_noise}): MSE of its reconstructions of the noisy digits "
        f"to the clean ones {mse:.0f}; fit time {fit_time:.1f} s, "
        f"{autoencoder.n_iter_} epochs of {len(X_train)} images"
    )

# %%
# The clean digits first: their range is the scale of every row.
display = ReconstructionDisplay.from_reconstructions(X_test, rows, image_shape=(28, 28))
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_mnist_denoising.png", dpi=100)
plt.show()
