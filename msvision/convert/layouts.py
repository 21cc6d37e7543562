"""Parameter-name layouts of the reference libraries and their mapping onto msvision's names.

msvision keeps timm's and torchvision's module paths, so those two need only the BatchNorm leaf names (and timm's
conv-MLP VGG head). The 1e100 trainer numbers its OSA blocks across stages (`body.osa<K>`) and indexes the parts of
a conv-BN-ReLU (`{0: conv, 1: bn}`); its mapping walks the model's block counts to place block K in its stage.
"""
import re

from msvision.errors import MsvisionError

SOURCES = ("timm", "torchvision", "1e100", "mindcv")
BN_LEAVES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
TIMM_VGG_HEAD = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}
_CONV_BN = {"0": "conv", "1": "bn"}


def detect_source(keys):
    """The PyTorch layout a set of parameter names comes from, or None when none fits."""
    keys = list(keys)
    if any(k.startswith("body.osa") for k in keys):
        return "1e100"
    if any(k.startswith(("stages.", "pre_logits.", "head.fc.")) for k in keys):
        return "timm"
    if any(k.startswith("features.") for k in keys) and any(k.startswith("classifier.") for k in keys):
        return "torchvision"
    return None


def _block_positions(model_name):
    """(stage, block) of each OSA block of a VoVNet in order, as 1e100 numbers them."""
    from msvision.models.vovnet import MODEL_CFGS

    if model_name not in MODEL_CFGS:
        raise MsvisionError(f"1e100 weights are VoVNets; '{model_name}' is not a VoVNet (expected one of "
                            f"vovnet19, vovnet27_slim, vovnet39, vovnet57, vovnet99)")
    return [(stage, block) for stage, count in enumerate(MODEL_CFGS[model_name]["block_per_stage"])
            for block in range(count)]


def _rename_1e100(key, positions):
    match = re.fullmatch(r"stem\.(\d+)\.([01])\.(\w+)", key)
    if match:
        return f"stem.{match[1]}.{_CONV_BN[match[2]]}.{match[3]}"
    match = re.fullmatch(r"body\.osa(\d+)\.(.+)", key)
    if match and int(match[1]) < len(positions):
        stage, block = positions[int(match[1])]
        rest = re.sub(r"^layers\.(\d+)\.([01])\.", lambda m: f"conv_mid.{m[1]}.{_CONV_BN[m[2]]}.", match[2])
        rest = re.sub(r"^exit_conv\.([01])\.", lambda m: f"conv_concat.{_CONV_BN[m[1]]}.", rest)
        rest = re.sub(r"^ese\.conv\.", "attn.fc.", rest)
        return f"stages.{stage}.blocks.{block}.{rest}"
    if key.startswith("classifier.3."):
        return "head.fc." + key[len("classifier.3."):]
    return key  # left as it is: the strict load names it as unexpected


def to_module_paths(state_dict, source, model_name):
    """Rename a PyTorch state dict's keys to msvision module paths (leaves still torch's)."""
    if source == "1e100":
        positions = _block_positions(model_name)
        return {_rename_1e100(k, positions): v for k, v in state_dict.items()}
    if source == "timm" and model_name.startswith("vgg"):
        renamed = {}
        for key, value in state_dict.items():
            module, leaf = key.rsplit(".", 1)
            renamed[f"{TIMM_VGG_HEAD.get(module, module)}.{leaf}"] = value
        return renamed
    return dict(state_dict)
