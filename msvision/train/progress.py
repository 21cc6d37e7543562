"""Progress of a run: reads the step's device-side statistics at log, checkpoint and epoch boundaries only, writes
the step log line (loss = mean over the interval, img/s, ms/step, data wait, ETA), feeds the epoch summary, and
stops the run once max_nonfinite_steps consecutive steps were non-finite (noticed at the next read)."""
import logging
import os
import sys
import time

from msvision.errors import MsvisionError
from msvision.files import DISK_ERRORS
from msvision.train.records import EpochSummary

LOG = logging.getLogger("msvision")


class RunLogFile(logging.FileHandler):
    """ckpt_save_dir/train.log. When the disk is full a log line cannot be kept: the file stops taking lines (the
    console keeps them all) instead of printing a traceback per line; the run's next file write (summary.csv,
    checkpoint) reports the full disk in one line."""

    def handleError(self, record):
        if isinstance(sys.exc_info()[1], OSError) and sys.exc_info()[1].errno in DISK_ERRORS:
            LOG.removeHandler(self)
            return
        super().handleError(record)


def setup_logging(save_dir, main_process):
    """Rank 0 logs INFO to stdout and ckpt_save_dir/train.log (created on the first line); other ranks warnings."""
    LOG.handlers.clear()
    LOG.setLevel(logging.INFO if main_process else logging.WARNING)
    LOG.propagate = False
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if main_process:
        handlers.append(RunLogFile(os.path.join(save_dir, "train.log"), delay=True))
    for handler in handlers:
        handler.setFormatter(formatter)
        LOG.addHandler(handler)


class Progress:
    """The interval and epoch accounting of one run (see the module docstring)."""

    def __init__(self, step, shape, save_dir, is_main, max_nonfinite_steps):
        """step: the TrainStep whose statistics are read; shape: the run's EpochShape (train/state.py)."""
        self.step, self.shape, self.max_nonfinite_steps = step, shape, max_nonfinite_steps
        self.summary = EpochSummary(save_dir, is_main)
        self.started = time.time()
        self.done_at_start = None
        self._new_window()

    def _new_window(self):
        self.window_start, self.loss_sum, self.batches, self.skipped = time.time(), 0.0, 0, 0

    def start_epoch(self, done, carried=None):
        """Call at the start of each epoch with the batches done so far in the run; `carried` (loss sum, batches) is
        the part of a resumed epoch trained before the checkpoint, so the epoch's mean loss is the whole epoch's."""
        if self.done_at_start is None:
            self.done_at_start = done
        self.summary.start_epoch()
        if carried:
            self.summary.add(carried[0], carried[1], 0)
        self._new_window()

    def epoch_loss(self):
        """(loss sum, batches) of the epoch so far, for a resume checkpoint."""
        return self.summary.loss_sum, self.summary.steps

    @property
    def timer(self):
        return self.summary.timer

    def read(self, last_checkpoint):
        """Pull the device statistics into the interval and the epoch; stop on too many non-finite steps."""
        stats = self.step.read_stats()
        self.loss_sum += stats["loss_sum"]
        self.batches += stats["batches"]
        self.skipped += stats["skipped"]
        self.scale = stats["loss_scale"]
        self.summary.add(stats["loss_sum"], stats["batches"], stats["batches"] * self.shape.images_per_batch)
        if stats["bad_run"] >= self.max_nonfinite_steps:
            raise MsvisionError(f"loss or gradients were non-finite for {stats['bad_run']} consecutive steps "
                                f"(max_nonfinite_steps {self.max_nonfinite_steps}); stopping (last good checkpoint: "
                                f"{last_checkpoint or 'none'}); lower lr or use loss_scale_type: dynamic")

    def log(self, epoch, batch_in_epoch, done, total, lr):
        """The step log line for the interval since the last one (read() first)."""
        elapsed = time.time() - self.window_start
        images = self.batches * self.shape.images_per_batch
        eta = (time.time() - self.started) / max(done - self.done_at_start, 1) * (total - done)
        if self.skipped:
            LOG.warning("%d of the last %d steps had non-finite gradients, updates skipped (loss scale now %g)",
                        self.skipped, self.batches, self.scale)
        LOG.info("epoch %d/%d step %d/%d loss %.4f lr %.6g %.1f img/s %.1f ms/step data wait %.0f%% ETA %s",
                 epoch + 1, self.shape.epoch_size, batch_in_epoch, self.shape.batches_per_epoch,
                 self.loss_sum / max(self.batches, 1), lr, images / max(elapsed, 1e-9),
                 1000.0 * elapsed / max(self.batches, 1), 100.0 * self.timer.share(),
                 time.strftime("%H:%M:%S", time.gmtime(eta)))
        self._new_window()
