"""Checkpoint files: reading, strict loading with named mismatches, and atomic writes (temporary name, then rename).

A checkpoint holds the model's parameters under their own names and, in resume checkpoints, extra entries under
the prefixes in STATE_PREFIXES (optimizer moments, EMA weights, counters, the resolved config as YAML text).
"""
import contextlib
import os

import mindspore as ms
from mindspore.train import serialization as _serialization

from msvision.errors import MsvisionError, name_list
from msvision.files import atomic_path
from msvision.weights.mindcv import fill_mindcv_gaps

STATE_PREFIXES = ("optim.", "ema.", "state.")
CONFIG_KEY = "state.config"
CLASS_NAMES_KEY = "state.class_names"
CLASS_COUNTS_KEY = "state.class_counts"  # training images per class, for per-class reports


def _memory_available():
    """Bytes the kernel can hand out now, page cache included (MemAvailable); None where /proc/meminfo is absent."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


@contextlib.contextmanager
def _guard_counts_page_cache():
    """MindSpore 2.10 refuses a .ckpt larger than *free* memory (os.sysconf SC_AVPHYS_PAGES), which leaves out the
    page cache, so after a pass over a big dataset a checkpoint fails with gigabytes reclaimable. For one load, let
    its guard measure MemAvailable instead."""
    original = getattr(_serialization, "_get_available_memory", None)
    if original is None or _memory_available() is None:
        yield
        return
    _serialization._get_available_memory = _memory_available
    try:
        yield
    finally:
        _serialization._get_available_memory = original


def read_checkpoint(path, only=None):
    """Read a .ckpt file into {name: Parameter or str} (with only, a name or a tuple of names, just those entries);
    a missing, unreadable or too-large file is a MsvisionError."""
    if not path or not os.path.isfile(path):
        raise MsvisionError(f"checkpoint not found: '{path}' (expected an existing .ckpt file)")
    size, available = os.path.getsize(path), _memory_available()
    if available is not None and size > available:
        raise MsvisionError(f"checkpoint '{path}' ({size / 2**20:.1f} MB) does not fit in the memory available now "
                            f"({available / 2**20:.1f} MB); free memory or load it on a larger machine")
    wanted = (only,) if isinstance(only, str) else only
    kept = []

    def choose(name):  # the entries asked for, and the first one (MindSpore refuses to return an empty selection)
        if name in wanted or not kept:
            kept.append(name)
            return True
        return False

    try:
        with _guard_counts_page_cache():
            loaded = ms.load_checkpoint(path, choice_func=choose if only else None)
    except (ValueError, RuntimeError, OSError):
        raise MsvisionError(f"'{path}' is not a readable MindSpore checkpoint (truncated, corrupt or another "
                            f"format)") from None
    return {k: v for k, v in loaded.items() if k in wanted} if only else loaded


def checkpoint_names(path):
    """The entry names of a .ckpt, its tensors left unread (MindSpore loads only the first)."""
    names = []

    def choose(name):
        names.append(name)
        return len(names) == 1

    try:
        ms.load_checkpoint(path, choice_func=choose)
    except (ValueError, RuntimeError, OSError):
        raise MsvisionError(f"'{path}' is not a readable MindSpore checkpoint (truncated, corrupt or another "
                            f"format)") from None
    return names


def ema_weights(ckpt, source):
    """The EMA weights of a resume checkpoint, under the model's names."""
    weights = {k[len("ema."):]: v for k, v in ckpt.items() if k.startswith("ema.")}
    if not weights:
        raise MsvisionError(f"checkpoint {source} holds no EMA weights (train with ema: true)")
    return weights


def model_params(ckpt):
    """The model-weight entries of a checkpoint dict (resume state left out)."""
    return {k: v for k, v in ckpt.items() if not k.startswith(STATE_PREFIXES)}


def load_weights(net, path_or_dict, source=None):
    """Load weights into net strictly: every parameter present with its shape, nothing unexpected (MindSpore's own
    strict load accepts extra entries; this one names them). A MindCV VGG file is the one relaxed case (mindcv.py).
    Returns "mindcv" when that case applied, else "msvision"."""
    source = source or (path_or_dict if isinstance(path_or_dict, str) else "checkpoint")
    ckpt = read_checkpoint(path_or_dict) if isinstance(path_or_dict, str) else path_or_dict
    weights = model_params(ckpt)
    expected = {p.name: p for p in net.get_parameters()}
    layout = "msvision"
    if not set(expected) <= set(weights):
        filled = fill_mindcv_gaps(expected, weights, source)
        weights, layout = (filled, "mindcv") if filled else (weights, layout)
    missing = set(expected) - set(weights)
    unexpected = set(weights) - set(expected)
    mismatched = {n for n in set(expected) & set(weights) if tuple(expected[n].shape) != tuple(weights[n].shape)}
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({name_list(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({name_list(unexpected)})")
        if mismatched:
            shapes = [f"{n}: checkpoint {tuple(weights[n].shape)} vs model {tuple(expected[n].shape)}"
                      for n in sorted(mismatched)]
            parts.append(f"shape mismatch {len(mismatched)} ({name_list(shapes, 3)})")
        hint = ""
        if mismatched and all(n.startswith(("head.", "classifier.")) for n in mismatched):
            hint = "; the classifier differs (other num_classes?): set reset_head to fine-tune with a new head"
        raise MsvisionError(f"checkpoint {source} does not fit the model: {'; '.join(parts)}{hint}")
    ms.load_param_into_net(net, weights, strict_load=True)
    return layout


def checkpoint_bytes(save_obj, append_dict=None):
    """The size a checkpoint of these entries will have, from above: tensor bytes plus 1 KB per entry (name, shape,
    record framing) and the text entries."""
    tensors = [e["data"] for e in save_obj] if isinstance(save_obj, list) else list(save_obj.get_parameters())
    extra = sum(len(v) if isinstance(v, str) else 64 for v in (append_dict or {}).values())
    return sum(t.nbytes for t in tensors) + 1024 * (len(tensors) + len(append_dict or {})) + extra


@contextlib.contextmanager
def _quiet_mindspore_log():
    """MindSpore logs a CRITICAL line of its own when a save fails; msvision reports the failure in one line."""
    from mindspore import log

    logger = log._get_logger()  # pylint: disable=protected-access  (MindSpore's logger has no public handle)
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def save_atomic(save_obj, path, append_dict=None):
    """ms.save_checkpoint to a hidden temporary name in the same folder, then renamed onto path (files.py), after
    checking that the filesystem has room for it."""
    with _quiet_mindspore_log(), atomic_path(path, hidden=True, suffix=".ckpt", durable=True,
                                             needed=checkpoint_bytes(save_obj, append_dict)) as tmp:
        ms.save_checkpoint(save_obj, tmp, append_dict=append_dict)
    return path
