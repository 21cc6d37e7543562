"""Checkpoint files: strict loading with named mismatches, and atomic writes (temporary name, then rename).

A checkpoint holds the model's parameters under their own names and, in resume checkpoints, extra entries under
the prefixes in STATE_PREFIXES (optimizer moments, EMA weights, counters, the resolved config as YAML text).
"""
import contextlib
import glob
import json
import os

import mindspore as ms
from mindspore.train import serialization as _serialization

from msvision.mindcv_weights import fill_mindcv_gaps
from msvision.errors import MsvisionError
from msvision.files import WriteFailed, atomic_path, link_or_copy, write_text

STATE_PREFIXES = ("optim.", "ema.", "state.")
CONFIG_KEY = "state.config"
CLASS_NAMES_KEY = "state.class_names"
CLASS_COUNTS_KEY = "state.class_counts"  # training images per class, for per-class reports


def _short(names, limit=5):
    names = sorted(names)
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


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
    page cache: after a pass over a big dataset a 528 MB VGG16 checkpoint fails with GBs reclaimable. For one load,
    let its guard measure MemAvailable instead."""
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
    """Read a .ckpt file into {name: Parameter or str} (with only, just that entry); a missing, unreadable or
    too-large file is a MsvisionError."""
    if not path or not os.path.isfile(path):
        raise MsvisionError(f"checkpoint not found: '{path}' (expected an existing .ckpt file)")
    size, available = os.path.getsize(path), _memory_available()
    if available is not None and size > available:
        raise MsvisionError(f"checkpoint '{path}' ({size / 2**20:.1f} MB) does not fit in the memory available now "
                            f"({available / 2**20:.1f} MB); free memory or load it on a larger machine")
    try:
        with _guard_counts_page_cache():
            return ms.load_checkpoint(path, choice_func=(lambda name: name == only) if only else None)
    except (ValueError, RuntimeError, OSError):
        raise MsvisionError(f"'{path}' is not a readable MindSpore checkpoint (truncated, corrupt or another "
                            f"format)") from None


def ema_weights(ckpt, source):
    """The EMA weights of a resume checkpoint, under the model's names."""
    weights = {k[len("ema."):]: v for k, v in ckpt.items() if k.startswith("ema.")}
    if not weights:
        raise MsvisionError(f"checkpoint {source} holds no EMA weights (train with ema: true)")
    return weights


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
    if not set(expected) <= set(weights):
        weights = fill_mindcv_gaps(expected, weights, source) or weights
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


class CheckpointManager:
    """Saves resume checkpoints with latest_k or top_k retention and a best copy, tracked in checkpoints.json.

    The index, not file names, says which checkpoint is newest; it is rewritten atomically after each save and the
    newest checkpoint is never deleted by retention.
    """

    INDEX = "checkpoints.json"

    def __init__(self, save_dir, model_name, keep, policy, clean_partial=False):
        self.save_dir, self.model_name, self.keep, self.policy = save_dir, model_name, keep, policy
        self.index_path = os.path.join(save_dir, self.INDEX)
        self.entries, self.best = self._read_index()
        if clean_partial:  # temporary files of a save that was killed
            for path in glob.glob(os.path.join(save_dir, ".*.tmp[0-9]*")) + \
                    glob.glob(os.path.join(save_dir, "*.tmp[0-9]*")):
                os.remove(path)

    def _read_index(self):
        if not os.path.isfile(self.index_path):
            return [], None
        with open(self.index_path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data.get("checkpoints", []), data.get("best")

    def _write_index(self):
        write_text(self.index_path, json.dumps({"checkpoints": self.entries, "best": self.best}, indent=1),
                   durable=True)

    def latest(self):
        """Path of the newest checkpoint that exists on disk, or None."""
        for entry in sorted(self.entries, key=lambda e: e["seq"], reverse=True):
            path = os.path.join(self.save_dir, entry["file"])
            if os.path.isfile(path):
                return path
        return None

    def save(self, save_obj, append_dict, epoch, global_step, metric=None):
        """Write a checkpoint atomically, update the index and apply retention; returns its path. The best
        checkpoint is a hard link to the epoch checkpoint it equals (a copy where the filesystem cannot link). A
        checkpoint that does not fit is a one-line error naming the last intact checkpoint; nothing is left
        half-written."""
        name = f"{self.model_name}-epoch{epoch}-step{global_step}.ckpt"
        indexed = (list(self.entries), self.best)
        try:
            path = save_atomic(save_obj, os.path.join(self.save_dir, name), append_dict)
            seq = max((e["seq"] for e in self.entries), default=0) + 1  # save order (steps restart on a world change)
            self.entries = [e for e in self.entries if e["file"] != name]
            self.entries.append(dict(file=name, seq=seq, epoch=epoch, global_step=global_step, metric=metric))
            if metric is not None and (self.best is None or metric > self.best["metric"]):
                best = f"{self.model_name}-best.ckpt"
                link_or_copy(path, os.path.join(self.save_dir, best))
                self.best = dict(file=best, epoch=epoch, global_step=global_step, metric=metric)
            removed = self._retained()
            self._write_index()
        except WriteFailed as err:
            self.entries, self.best = indexed  # what checkpoints.json still says
            if all(e["file"] != name for e in self.entries):  # a new file the index never listed: give its space back
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.save_dir, name))
            raise MsvisionError(f"{err}; last intact checkpoint: {self.latest() or 'none'}; free space or lower "
                                f"keep_checkpoint_max") from None
        for entry in removed:
            try:
                os.remove(os.path.join(self.save_dir, entry["file"]))
            except FileNotFoundError:
                pass
        return path

    def _retained(self):
        newest = max(self.entries, key=lambda e: e["seq"])
        if self.policy == "top_k":
            ranked = sorted(self.entries, key=lambda e: (e["metric"] is not None, e["metric"] or 0.0, e["seq"]),
                            reverse=True)
        else:
            ranked = sorted(self.entries, key=lambda e: e["seq"], reverse=True)
        keep = ranked[:self.keep]
        if newest not in keep:
            keep = keep[:-1] + [newest]
        removed = [e for e in self.entries if e not in keep]
        self.entries = sorted(keep, key=lambda e: e["seq"])
        return removed
