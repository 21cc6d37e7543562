"""PyTorch state dict (timm or torchvision) -> MindSpore checkpoint for the same msvision model.

The mapping is mechanical because msvision keeps the torch module paths: BatchNorm leaves are renamed
(weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance), timm's VGG conv-MLP head is
mapped onto torchvision's linear classifier, and layout-only differences (1x1 conv or 7x7 conv kernel vs dense
matrix, Conv1d vs MindSpore's 2-D Conv1d kernel) are reshaped. Everything else must match exactly.
"""
import numpy as np
import mindspore as ms

from msvision.checkpoint import load_weights, save_atomic
from msvision.errors import MsvisionError
from msvision.models import create_model, get_pretrained_cfg

BN_LEAVES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
TIMM_VGG_HEAD = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}
STATE_DICT_KEYS = ("state_dict_ema", "state_dict", "model")


def read_torch_state_dict(path):
    """torch.load(weights_only=True) a checkpoint and return {name: float32 numpy array}."""
    import torch  # optional dependency: pip install msvision[convert]

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MsvisionError(f"torch checkpoint not found: '{path}'") from None
    except Exception as err:  # torch raises many types for a corrupt file
        raise MsvisionError(f"'{path}' is not a loadable torch state dict: {str(err).splitlines()[0]}") from None
    for key in STATE_DICT_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(hasattr(v, "numpy") for v in obj.values()):
        raise MsvisionError(f"'{path}' holds no state dict of tensors (expected {{name: tensor}})")
    return {k.removeprefix("module."): v.detach().cpu().numpy() for k, v in obj.items()}


def _classifier_key(state_dict, model_name):
    cfg = get_pretrained_cfg(model_name)
    for key in (cfg.classifier + ".weight", "head.fc.weight"):
        if key in state_dict:
            return key
    raise MsvisionError(f"no classifier weight ('{cfg.classifier}.weight' or 'head.fc.weight') in the state dict: "
                        f"is it a {model_name}?")


def convert_state_dict(model_name, state_dict, source="state dict"):
    """Build model_name with the state dict's num_classes and load the converted weights into it strictly."""
    num_classes = state_dict[_classifier_key(state_dict, model_name)].shape[0]
    net = create_model(model_name, num_classes=num_classes)
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    vgg = model_name.startswith("vgg")
    converted = {}
    for key, value in state_dict.items():
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        if vgg and module in TIMM_VGG_HEAD:
            module = TIMM_VGG_HEAD[module]
        name = f"{module}.{BN_LEAVES[leaf]}" if leaf in BN_LEAVES and f"{module}.{BN_LEAVES[leaf]}" in shapes \
            else f"{module}.{leaf}"
        target = shapes.get(name)
        if target and value.shape != target and value.size == int(np.prod(target)) and value.shape[0] == target[0]:
            value = value.reshape(target)
        converted[name] = ms.Parameter(ms.Tensor(value.astype(np.float32)), name=name)
    load_weights(net, converted, source=source)
    return net


def convert_torch_checkpoint(model_name, torch_path, output_path):
    """Convert a torch checkpoint file into a MindSpore .ckpt that create_model(checkpoint_path=...) loads."""
    state_dict = read_torch_state_dict(torch_path)
    net = convert_state_dict(model_name, state_dict, source=f"'{torch_path}' (as {model_name})")
    save_atomic(net, output_path)
    return net
