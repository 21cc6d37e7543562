"""Checkpoint files: strict loading with named mismatches, and atomic writes (temporary name, then rename).

A checkpoint holds the model's parameters under their own names and, in resume checkpoints, extra entries under
the prefixes in STATE_PREFIXES (optimizer moments, EMA weights, counters, the resolved config as YAML text).
"""
import os

import mindspore as ms

from msvision.errors import MsvisionError

STATE_PREFIXES = ("optim.", "ema.", "state.")
CONFIG_KEY = "state.config"


def _short(names, limit=5):
    names = sorted(names)
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_checkpoint(path):
    """Read a .ckpt file into {name: Parameter or str}; a missing or unreadable file is a MsvisionError."""
    if not path or not os.path.isfile(path):
        raise MsvisionError(f"checkpoint not found: '{path}' (expected an existing .ckpt file)")
    try:
        return ms.load_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as err:
        raise MsvisionError(f"'{path}' is not a readable MindSpore checkpoint (truncated or another format): "
                            f"{str(err).splitlines()[0]}") from None


def model_params(ckpt):
    """The model-weight entries of a checkpoint dict (resume state left out)."""
    return {k: v for k, v in ckpt.items() if not k.startswith(STATE_PREFIXES)}


def load_weights(net, path_or_dict, reset_head_prefix=None, source=None):
    """Load weights into net strictly: every parameter present with its shape, nothing unexpected.

    With reset_head_prefix (e.g. "head.fc"), parameters under it whose shape differs (another num_classes) keep their
    fresh initialisation instead of failing. Returns the names that were left at initialisation.
    """
    source = source or (path_or_dict if isinstance(path_or_dict, str) else "checkpoint")
    ckpt = read_checkpoint(path_or_dict) if isinstance(path_or_dict, str) else path_or_dict
    weights = model_params(ckpt)
    expected = {p.name: p for p in net.get_parameters()}
    missing = set(expected) - set(weights)
    unexpected = set(weights) - set(expected)
    mismatched = {n for n in set(expected) & set(weights) if tuple(expected[n].shape) != tuple(weights[n].shape)}
    reset = {n for n in mismatched if reset_head_prefix and n.startswith(reset_head_prefix + ".")}
    mismatched -= reset
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({_short(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({_short(unexpected)})")
        if mismatched:
            shapes = [f"{n}: checkpoint {tuple(weights[n].shape)} vs model {tuple(expected[n].shape)}"
                      for n in sorted(mismatched)]
            parts.append(f"shape mismatch {len(mismatched)} ({_short(shapes, 3)})")
        hint = ""
        if mismatched and all(n.startswith(("head.", "classifier.")) for n in mismatched):
            hint = "; the classifier differs (other num_classes?): set reset_head to fine-tune with a new head"
        raise MsvisionError(f"checkpoint {source} does not fit the model: {'; '.join(parts)}{hint}")
    to_load = {n: w for n, w in weights.items() if n not in reset}
    ms.load_param_into_net(net, to_load, strict_load=True)
    return sorted(reset)


def save_atomic(save_obj, path, append_dict=None):
    """ms.save_checkpoint to a temporary name in the same folder, fsync, then os.replace onto path."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.tmp{os.getpid()}.ckpt")
    ms.save_checkpoint(save_obj, tmp, append_dict=append_dict)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path
