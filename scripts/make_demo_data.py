"""One-off: pack scikit-learn's bundled UCI handwritten digits (1797 images, 8x8, 10 classes) into the demo file.

The result, msvision/data/digits.npz, ships with the package; nothing here runs at training time.
"""
import numpy as np
from sklearn.datasets import load_digits

OUTPUT = "msvision/data/digits.npz"

if __name__ == "__main__":
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 gray levels -> 0..255
    np.savez_compressed(OUTPUT, images=images, labels=digits.target.astype(np.uint8))
    print(f"wrote {OUTPUT}: {images.shape[0]} images {images.shape[1:]}, classes {sorted(set(digits.target))}")
