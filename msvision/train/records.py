"""Run records: per-epoch rows in ckpt_save_dir/summary.csv and the data-wait share of step time.

One row per finished epoch: mean train loss, validation top-1 / top-5 / balanced / worst-class accuracy / loss (empty
when not validated), the LR at the epoch's end, global train img/s, epoch seconds, and the share of step time spent
waiting for the next batch.
A row for epoch E replaces any row of epoch E or later (a run resumed from an earlier checkpoint redoes those
epochs), and the file is rewritten atomically, so a resume never leaves duplicated or missing epochs.
"""
import csv
import io
import os
import time

from msvision.files import write_text

FIELDS = ("epoch", "train_loss", "val_top1", "val_top5", "val_balanced_accuracy", "val_worst_class_accuracy",
          "val_loss", "lr", "train_img_per_s", "epoch_seconds", "data_wait_share")
SUMMARY = "summary.csv"


class StepTimer:
    """Splits wall time between waiting for batches and running steps; call waited() when a batch arrives and
    done() when its step has finished."""

    def __init__(self):
        self.wait = self.busy = 0.0
        self.mark = time.perf_counter()

    def waited(self):
        now = time.perf_counter()
        self.wait += now - self.mark
        self.mark = now

    def done(self):
        now = time.perf_counter()
        self.busy += now - self.mark
        self.mark = now

    def share(self):
        return self.wait / max(self.wait + self.busy, 1e-12)

    def total(self):
        return self.wait + self.busy


class EpochSummary:
    """Accumulates one epoch (losses, images, timing) and appends its row to summary.csv on rank 0."""

    def __init__(self, save_dir, main):
        self.path = os.path.join(save_dir, SUMMARY)
        self.main = main
        self.start_epoch()

    def start_epoch(self):
        self.loss_sum, self.steps, self.images = 0.0, 0, 0
        self.timer = StepTimer()

    def add(self, loss_sum, steps, global_images):
        """Add steps read from the device: their loss sum, count and images over all ranks."""
        self.loss_sum += loss_sum
        self.steps += steps
        self.images += global_images

    def finish(self, epoch, lr, metrics=None):
        """Write the row of 1-based `epoch` (dropping rows of it and later epochs) and return it."""
        seconds = self.timer.total()
        metrics = metrics or {}
        row = {"epoch": epoch, "train_loss": f"{self.loss_sum / max(self.steps, 1):.6f}",
               "val_top1": _fmt(metrics.get("top1")), "val_top5": _fmt(metrics.get("top5")),
               "val_balanced_accuracy": _fmt(metrics.get("balanced_accuracy")),
               "val_worst_class_accuracy": _fmt(metrics.get("worst_class_accuracy")),
               "val_loss": _fmt(metrics.get("loss"), 6), "lr": f"{lr:.6g}",
               "train_img_per_s": f"{self.images / max(seconds, 1e-12):.2f}", "epoch_seconds": f"{seconds:.2f}",
               "data_wait_share": f"{self.timer.share():.4f}"}
        if self.main:
            rows = [r for r in read_summary(self.path) if int(r["epoch"]) < epoch] + [row]
            table = io.StringIO()
            writer = csv.DictWriter(table, FIELDS, restval="")  # rows of an older version lack new columns
            writer.writeheader()
            writer.writerows(rows)
            write_text(self.path, table.getvalue(), newline="")
        self.start_epoch()
        return row


def _fmt(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def read_summary(path):
    """The rows of a summary.csv as dicts ([] when there is none)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
