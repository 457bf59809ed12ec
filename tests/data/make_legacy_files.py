"""Write the saved transformers that tests/test_persistence.py loads.

The files in this folder were written by this script at commit 0c5ae01 (skae
0.1.0.dev0, before the package's inside was reorganised): a ``.skae`` file and a
pickle of each transformer, and ``legacy_outputs.npz`` with what they returned
then. Later versions must load them and return the same arrays, bit for bit.
Run from the repository root: ``python tests/data/make_legacy_files.py``.
"""

import os
import pickle
import warnings

import numpy as np
from sklearn.datasets import load_digits

from skae import AutoencoderTransformer

HERE = os.path.dirname(os.path.abspath(__file__))


def legacy_data():
    """The rows the transformers were fitted on and the rows they were run on."""
    digits = load_digits()
    rows = digits.data[:120, 20:28]  # 8 features with some spread
    return rows[:90], rows[90:], digits.images[:60], digits.images[60:80]


def main():
    warnings.simplefilter("ignore")
    X, X_test, images, images_test = legacy_data()
    # A PCA start, trained by fit then by partial_fit: stream state included.
    dense = AutoencoderTransformer(
        n_components=4, hidden_layer_sizes=(8,), epochs=3, random_state=0
    ).fit(X)
    dense.partial_fit(X[:30])
    # Images through a convolutional network: inverse_transform gives images.
    conv = AutoencoderTransformer(
        architecture="conv", hidden_layer_sizes=(2,), epochs=2, random_state=0
    ).fit(images)
    outputs = {}
    for name, ae, data in (("dense", dense, X_test), ("conv", conv, images_test)):
        codes = ae.transform(data)
        outputs[f"{name}_codes"] = codes
        outputs[f"{name}_rebuilt"] = ae.inverse_transform(codes)
        outputs[f"{name}_scores"] = ae.score_samples(data)
        ae.save(os.path.join(HERE, f"legacy_{name}.skae"))
        with open(os.path.join(HERE, f"legacy_{name}.pkl"), "wb") as f:
            pickle.dump(ae, f)
    np.savez(os.path.join(HERE, "legacy_outputs.npz"), **outputs)


if __name__ == "__main__":
    main()
