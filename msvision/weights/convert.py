"""Weights files of the reference libraries -> {msvision parameter name: array}.

PyTorch and safetensors files (timm, torchvision, the 1e100 VoVNet trainer) hold torch names: the model family's
filter (its `pretrained_filter_fn`) maps their module paths onto msvision's, then `to_msvision_names` renames the
BatchNorm leaves and applies layout-only reshapes. MindSpore checkpoints (msvision's own, MindCV's) are read as they
are; io.load_weights handles MindCV's one relaxed case.
"""
import logging

import numpy as np

from msvision.errors import MsvisionError
from msvision.weights.torch_io import is_safetensors, read_safetensors, read_torch_state_dict

SOURCES = ("timm", "torchvision", "1e100", "mindcv", "official")  # official: DingXiaoH's RepVGG files
BN_LEAVES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # zip archive (torch >= 1.6) or a bare pickle (older torch.save)
LOG = logging.getLogger("msvision")


def detect_source(keys):
    """The PyTorch layout a set of parameter names comes from (timm, torchvision, 1e100 or the official RepVGG), or
    None."""
    keys = list(keys)
    if any(k.startswith("body.osa") for k in keys):
        return "1e100"
    if any(k.startswith("stage0.") for k in keys):
        return "official"
    if any(k.startswith(("stages.", "pre_logits.", "head.fc.")) for k in keys):
        return "timm"
    if any(k.startswith("features.") for k in keys) and any(k.startswith("classifier.") for k in keys):
        return "torchvision"
    return None


def is_pytorch_layout(path):
    """True for a PyTorch (zip or pickle) or safetensors file, False for anything else (a MindSpore checkpoint)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(TORCH_MAGIC) or is_safetensors(path)


def read_state_dict(path, source=None):
    """A PyTorch or safetensors file as ({torch name: float32 array}, its layout); the layout is detected from the
    names unless `source` says it."""
    if source is not None and source not in SOURCES:
        raise MsvisionError(f"unknown source '{source}' (expected one of {', '.join(SOURCES)})")
    state_dict = read_safetensors(path) if is_safetensors(path) else read_torch_state_dict(path)
    if source is None:
        source = detect_source(state_dict)
        if source is None:
            first = ", ".join(list(state_dict)[:4])
            raise MsvisionError(f"layout of '{path}' not recognised (first keys: {first}); expected timm, torchvision "
                                f"1e100 or official RepVGG names: pass --source")
        LOG.warning("source: %s (detected from the keys)", source)
    return state_dict, source


def to_msvision_names(module_paths, shapes, dtype=np.float32):
    """{msvision module path + torch leaf: array} -> {msvision parameter name: array in msvision's shape}.

    shapes: {name: shape} of the model's parameters. They decide the BatchNorm leaves (weight, bias, running_mean,
    running_var -> gamma, beta, moving_mean, moving_variance) and layout-only reshapes (a 1x1 conv kernel against a
    dense matrix, torch's Conv1d kernel against MindSpore's 2-D one)."""
    converted = {}
    for key, value in module_paths.items():
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        name = f"{module}.{BN_LEAVES[leaf]}" if f"{module}.{BN_LEAVES.get(leaf)}" in shapes else key
        target = shapes.get(name)
        if target and value.shape != target and value.size == int(np.prod(target)) and value.shape[0] == target[0]:
            value = value.reshape(target)
        converted[name] = np.asarray(value, dtype)
    return converted
