"""Reading PyTorch checkpoints safely (weights_only), and safetensors files without torch, into {name: float32 numpy
array}."""
from msvision.errors import MsvisionError

WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema")


def _torch():
    try:
        import torch
    except ImportError:
        raise MsvisionError('reading a PyTorch checkpoint needs torch: pip install -e ".[convert]"') from None
    return torch


def unwrap_state_dict(obj, path):
    """The {name: tensor} inside a loaded object: a bare state dict or one under 'state_dict' / 'model' (other
    entries beside it are ignored; 'state_dict_ema' only when neither is there)."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(hasattr(v, "numpy") for v in obj.values()):
        raise MsvisionError(f"'{path}' holds no state dict of tensors (expected {{name: tensor}}, or one under "
                            f"'state_dict' or 'model'): save the model's state_dict()")
    return obj


def read_torch_state_dict(path):
    """torch.load(weights_only=True) a file and return {name: float32 numpy array}, 'module.' prefixes (from
    DataParallel) removed."""
    torch = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MsvisionError(f"input file not found: '{path}'") from None
    except Exception as err:  # torch raises many types for a corrupt file or a pickle it refuses
        if "Weights only load failed" in str(err):
            raise MsvisionError(f"'{path}' holds Python objects beyond tensors (it loads only with "
                                f"weights_only=False): re-save it with torch.save(model.state_dict(), ...)") from None
        raise MsvisionError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__})") from None
    state = unwrap_state_dict(obj, path)
    return {k.removeprefix("module."): v.detach().cpu().float().numpy() for k, v in state.items()}


SAFETENSORS_MAGIC_OFFSET = 8  # a little-endian header length, then a JSON header starting with '{'


def is_safetensors(path):
    with open(path, "rb") as handle:
        return handle.read(SAFETENSORS_MAGIC_OFFSET + 1)[-1:] == b"{"


def read_safetensors(path):
    """A .safetensors file as {name: float32 numpy array}, through safetensors' numpy API (no torch)."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MsvisionError('reading a .safetensors file needs safetensors: pip install -e ".[weights]"') from None
    try:
        return {k.removeprefix("module."): v.astype("float32") for k, v in load_file(path).items()}
    except Exception as err:  # safetensors raises its own error types for a corrupt file
        raise MsvisionError(f"'{path}' is not a readable safetensors file ({type(err).__name__})") from None
