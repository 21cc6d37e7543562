"""One converter for every source: read a file, map its names onto the msvision model, load strictly, save."""
import logging
import os

import numpy as np
import mindspore as ms

from msvision.checkpoint import load_weights, read_checkpoint, save_atomic
from msvision.convert.layouts import BN_LEAVES, SOURCES, detect_source, to_module_paths
from msvision.convert.torch_io import is_safetensors, read_safetensors, read_torch_state_dict
from msvision.errors import MsvisionError
from msvision.models import create_model, get_pretrained_cfg

LOG = logging.getLogger("msvision")
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # zip archive (torch >= 1.6) or a bare pickle (older torch.save)


def _num_classes(weights, model_name, source):
    key = get_pretrained_cfg(model_name).classifier + ".weight"
    if key not in weights:
        raise MsvisionError(f"no classifier weight '{key}' in the {source} weights: are they a {model_name}?")
    return weights[key].shape[0]


def to_msvision_names(state_dict, source, model_name, shapes, dtype=np.float32):
    """{torch name: array} in the layout of source -> {msvision parameter name: array in msvision's shape}.

    shapes: {name: shape} of the model's parameters (they decide BatchNorm leaf names and layout-only reshapes).
    """
    converted = {}
    for key, value in to_module_paths(state_dict, source, model_name).items():
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        name = f"{module}.{BN_LEAVES[leaf]}" if f"{module}.{BN_LEAVES.get(leaf)}" in shapes else key
        target = shapes.get(name)
        # layout-only differences: 1x1 conv kernel vs dense matrix, torch Conv1d vs MindSpore's 2-D Conv1d kernel
        if target and value.shape != target and value.size == int(np.prod(target)) and value.shape[0] == target[0]:
            value = value.reshape(target)
        converted[name] = np.asarray(value, dtype)
    return converted


def convert_state_dict(model_name, state_dict, source, label="state dict", **model_kwargs):
    """Build model_name (with the state dict's num_classes and model_kwargs) and load the PyTorch weights into it
    strictly. state_dict: {torch name: numpy array} in the layout of source (timm, torchvision or 1e100)."""
    renamed = to_module_paths(state_dict, source, model_name)
    net = create_model(model_name, num_classes=_num_classes(renamed, model_name, source), **model_kwargs)
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    weights = to_msvision_names(state_dict, source, model_name, shapes)
    load_weights(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()}, source=label)
    return net


def _is_torch_file(path):
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(TORCH_MAGIC)


def _check_paths(input_path, output_path):
    if not os.path.isfile(input_path):
        raise MsvisionError(f"input file not found: '{input_path}'")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise MsvisionError(f"cannot write the output '{output_path}': folder '{folder}' does not exist or is not "
                            f"writable")
    if os.path.isdir(output_path):
        raise MsvisionError(f"output '{output_path}' is a folder (expected a .ckpt file path)")


def convert_file(model_name, input_path, output_path, source=None):
    """Convert input_path (PyTorch or safetensors file of timm / torchvision / 1e100, or a MindCV .ckpt) into an
    msvision .ckpt.

    Without source, the format and layout are detected. Returns (net, source). Nothing is written on an error.
    """
    if source is not None and source not in SOURCES:
        raise MsvisionError(f"unknown source '{source}' (expected one of {', '.join(SOURCES)})")
    get_pretrained_cfg(model_name)  # an unknown model name fails before any reading
    _check_paths(input_path, output_path)
    label = f"'{input_path}' (as {model_name})"
    if source == "mindcv" or (source is None and not _is_torch_file(input_path) and not is_safetensors(input_path)):
        weights = read_checkpoint(input_path)
        source = "mindcv"
        LOG.warning("source: mindcv (a MindSpore checkpoint)")
        net = create_model(model_name, num_classes=_num_classes(weights, model_name, source))
        load_weights(net, weights, source=label)
    else:
        state_dict = read_safetensors(input_path) if is_safetensors(input_path) else read_torch_state_dict(input_path)
        if source is None:
            source = detect_source(state_dict)
            if source is None:
                first = ", ".join(list(state_dict)[:4])
                raise MsvisionError(f"layout of '{input_path}' not recognised (first keys: {first}); expected timm, "
                                    f"torchvision or 1e100 names: pass --source")
            LOG.warning("source: %s (detected from the keys)", source)
        net = convert_state_dict(model_name, state_dict, source, label)
    save_atomic(net, output_path)
    return net, source
