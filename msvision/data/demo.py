"""The built-in demo set: UCI handwritten digits (1797 images, 10 classes) shipped in digits.npz.

On first use it is written as JPEG class folders (train/ and val/, every fifth image to val) in a cache directory,
so the demo exercises exactly the same ImageFolder pipeline as real data.
"""
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

DIGITS_FILE = os.path.join(os.path.dirname(__file__), "digits.npz")
IMAGE_SIZE = 32  # the 8x8 originals are upsampled so that 32 px models see a real image


def default_cache_dir():
    base = os.environ.get("MSVISION_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "msvision")
    return os.path.join(base, "demo_digits")


def prepare_demo(cache_dir=None):
    """Write the demo JPEG folders once (atomically: temp dir, then rename) and return their root."""
    root = cache_dir or default_cache_dir()
    if os.path.isdir(os.path.join(root, "val")):
        return root
    data = np.load(DIGITS_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".demo-", dir=os.path.dirname(os.path.abspath(root)))
    for index, (pixels, label) in enumerate(zip(data["images"], data["labels"])):
        split = "val" if index % 5 == 0 else "train"
        folder = os.path.join(staging, split, f"digit_{label}")
        os.makedirs(folder, exist_ok=True)
        image = Image.fromarray(pixels, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR).convert("RGB")
        image.save(os.path.join(folder, f"{index:04d}.jpg"), quality=95)
    try:
        os.rename(staging, root)
    except OSError:  # another process (msrun rank) finished first
        shutil.rmtree(staging, ignore_errors=True)
    return root
