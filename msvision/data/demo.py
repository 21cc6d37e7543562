"""The built-in demo set: UCI handwritten digits (1797 images, 10 classes) shipped in digits.npz.

On first use it is written as JPEG class folders (train/ and val/, every fifth image to val) in a cache directory,
so the demo exercises exactly the same ImageFolder pipeline as real data.
"""
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from msvision.files import cache_folder

DIGITS_FILE = os.path.join(os.path.dirname(__file__), "digits.npz")
IMAGE_SIZE = 32  # the 8x8 originals are upsampled so that 32 px models see a real image


def longtail_counts(num_classes=10, head=150, tail=3):
    """Training images per class falling exponentially from `head` (class 0) to `tail` (the last class)."""
    return [int(round(head * (tail / head) ** (c / (num_classes - 1)))) for c in range(num_classes)]


def prepare_longtail_demo(root, head=150, tail=3, val_per_class=25):
    """A long-tailed version of the demo digits as JPEG folders under root: train/ with longtail_counts(head, tail)
    images per class, val/ with val_per_class images of every class (disjoint from train). Returns root."""
    if os.path.isdir(os.path.join(root, "val")):
        return root
    data = np.load(DIGITS_FILE)
    counts = longtail_counts(10, head, tail)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".longtail-", dir=os.path.dirname(os.path.abspath(root)))
    for label in range(10):
        members = np.flatnonzero(data["labels"] == label)
        if len(members) < counts[label] + val_per_class:
            raise ValueError(f"digit {label} has {len(members)} images, fewer than {counts[label]} + {val_per_class}")
        for split, chosen in (("train", members[:counts[label]]), ("val", members[-val_per_class:])):
            _write_digits(data["images"], chosen, os.path.join(staging, split, f"digit_{label}"))
    _publish(staging, root)
    return root


def _write_digits(images, chosen, folder):
    os.makedirs(folder, exist_ok=True)
    for index in chosen:
        image = Image.fromarray(images[index], mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        image.convert("RGB").save(os.path.join(folder, f"{index:04d}.jpg"), quality=95)


def prepare_demo(cache_dir=None):
    """Write the demo JPEG folders once (atomically: temp dir, then rename) and return their root."""
    root = cache_dir or os.path.join(cache_folder(), "demo_digits")
    if os.path.isdir(os.path.join(root, "val")):
        return root
    data = np.load(DIGITS_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".demo-", dir=os.path.dirname(os.path.abspath(root)))
    for label in range(10):
        for split, keep in (("train", 1), ("val", 0)):  # every fifth image to val
            chosen = [i for i in np.flatnonzero(data["labels"] == label) if (i % 5 != 0) == keep]
            _write_digits(data["images"], chosen, os.path.join(staging, split, f"digit_{label}"))
    _publish(staging, root)
    return root


def _publish(staging, root):
    try:
        os.rename(staging, root)
    except OSError:  # another process (msrun rank) finished first
        shutil.rmtree(staging, ignore_errors=True)
