"""Resume checkpoints of a run: latest_k or top_k retention, a best checkpoint, and the index that says which is
newest."""
import contextlib
import glob
import json
import os

from msvision.errors import MsvisionError
from msvision.files import WriteFailed, link_or_copy, write_text
from msvision.weights.io import save_atomic


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
