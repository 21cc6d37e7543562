"""Shared fixtures: the torch/timm reference (imported once, with the torchvision op schemas timm expects)."""
import os
import socket
import tempfile

import pytest

import msvision  # noqa: F401  (applies the CPU speed setting before MindSpore builds kernels)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# split indexes of the tests' folders go to a cache of their own (inherited by the CLI subprocesses)
os.environ["MSVISION_CACHE"] = tempfile.mkdtemp(prefix="msvision-test-cache-")


def _import_torch_reference():
    torch = pytest.importorskip("torch", reason="torch is in the [convert] extra")
    if not hasattr(torch.ops.torchvision, "nms"):
        # torchvision 0.28's C extension does not load with CPU torch; timm only needs the op schemas to exist.
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdata, Tensor scores, float iou_threshold) -> Tensor")
        _import_torch_reference.keep = lib
    import timm
    import torchvision.models
    return torch, timm, torchvision.models


@pytest.fixture(scope="session")
def torch_reference():
    """(torch, timm, torchvision.models), or skip when the [convert] extra is not installed."""
    return _import_torch_reference()


@pytest.fixture
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_image_folder(root, classes=4, train_per_class=16, val_per_class=5, size=40, seed=0):
    """Real JPEG class folders (train/ and val/) whose classes differ in colour, so a model can learn them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = os.path.join(root, split, f"class_{label}")
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                pixels = np.zeros((size, size, 3), np.int64)
                pixels[..., label % 3] = 50 * (label + 1)
                pixels += rng.integers(0, 80, pixels.shape)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                    os.path.join(folder, f"{index:03d}.jpg"), quality=90)
    return str(root)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """4 classes x (16 train + 5 val) real 40x40 JPEGs."""
    return make_image_folder(tmp_path_factory.mktemp("images"))


def run_cli(args, cwd=REPO_ROOT, timeout=900, check=True):
    """Run a CLI (train.py, validate.py, scripts/...) in a subprocess; returns the CompletedProcess."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done
