"""
A sigmoid autoencoder of the UCI digits, with a training log
============================================================

The 8x8 digits bundled with scikit-learn, through a 64-32-2-32-64 network with a
sigmoid at every layer, trained with mean squared error and Adam on batches of
8 for 500 epochs from a fixed seed. A Keras callback prints the loss every 100
epochs: epoch-level callbacks see the same ``logs`` as under ``Model.fit``.
"""

# %%
import argparse
import time
import warnings
from pathlib import Path

import keras
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from skae import AutoencoderTransformer
from skae.datasets import load_digits
from skae.plotting import EmbeddingDisplay

parser = argparse.ArgumentParser(description="Sigmoid 2-D autoencoder of digits.")
parser.add_argument("--quick", action="store_true", help="few epochs")
parser.add_argument("--output-dir", type=Path, default=Path("examples-output"))
args, _ = parser.parse_known_args()
# The recipe fixes the number of epochs, converged or not.
warnings.filterwarnings("ignore", category=ConvergenceWarning)


class PrintLoss(keras.callbacks.Callback):
    """Print the training loss every ``every`` epochs."""

    def __init__(self, every):
        super().__init__()
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            print(f"epoch {epoch + 1}: loss {logs['loss']:.5f}")


# %%
digits = load_digits()
epochs = 20 if args.quick else 500
autoencoder = AutoencoderTransformer(
    n_components=2,
    hidden_layer_sizes=(32,),
    activation="sigmoid",
    code_activation="sigmoid",
    output_activation="sigmoid",
    scaling="minmax",
    loss="mse",
    optimizer="adam",
    batch_size=8,
    epochs=epochs,
    # All 500 epochs, as in the recipe: no early stop on a loss plateau.
    n_iter_no_change=epochs,
    noise=0.0,  # The recipe has no input noise; skae adds some by default.
    random_state=0,
    callbacks=[PrintLoss(every=epochs // 5)],
)
start = time.perf_counter()
Z = autoencoder.fit_transform(digits.data)
fit_time = time.perf_counter() - start
print(f"fit: {fit_time:.1f} s, {autoencoder.n_iter_} epochs of {len(Z)} images")
knn = cross_val_score(KNeighborsClassifier(), Z, digits.target, cv=5).mean()
print(f"5-fold 5-NN accuracy of the 2-D code: {knn:.3f}")

# %%
display = EmbeddingDisplay.from_estimator(
    autoencoder, digits.data, digits.target, name="64-32-2-32-64", cmap="nipy_spectral"
)
args.output_dir.mkdir(parents=True, exist_ok=True)
display.figure_.savefig(args.output_dir / "plot_digits_sigmoid.png", dpi=100)
plt.show()
