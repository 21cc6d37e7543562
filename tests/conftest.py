"""Shared fixtures: the torch/timm reference (imported once, with the torchvision op schemas timm expects)."""
import os
import socket

import pytest

import msvision  # noqa: F401  (applies the CPU speed setting before MindSpore builds kernels)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
