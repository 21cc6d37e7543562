"""Run state: where a run is (epoch, batch in epoch, best top-1) and the checkpoint entries that restore it exactly."""
import logging
import os

import numpy as np
import mindspore as ms
from mindspore import ops

from msvision.checkpoint import CLASS_COUNTS_KEY, CLASS_NAMES_KEY, CONFIG_KEY, load_weights, read_checkpoint
from msvision.config import dump_config
from msvision.errors import MsvisionError
from msvision.train.step import all_finite

LOG = logging.getLogger("msvision")


def check_writable(folder):
    """ckpt_save_dir exists (created if needed) and takes files, or a MsvisionError naming why not."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as err:
        raise MsvisionError(f"ckpt_save_dir '{folder}' is not writable: {err.strerror}") from None


class RunState:
    """Position and resume state of one run; save() writes it (rank 0 only), resume() restores it."""

    def __init__(self, trainer):
        self.t = trainer
        self.epoch, self.batch_in_epoch, self.best_top1 = 0, 0, None
        self.carried = None  # (loss sum, batches) of a resumed epoch's part before the checkpoint

    def take_carried(self):
        carried, self.carried = self.carried, None
        return carried

    def optimizer_steps(self):
        return int(self.t.optimizer.global_step.asnumpy().reshape(-1)[0])

    def _entries(self):
        """Everything a resume needs, as checkpoint entries: model, optimizer moments and counters, scaler, EMA."""
        net, step = self.t.net, self.t.step
        model_names = {p.name for p in net.get_parameters()}
        entries = [{"name": p.name, "data": p} for p in net.get_parameters()]
        for param in self.t.optimizer.get_parameters():
            if param.name not in model_names and not param.name.startswith("learning_rate"):  # LRs come from config
                entries.append({"name": "optim." + param.name, "data": param})
        if step.dynamic:
            entries += [{"name": "state.loss_scale", "data": step.scaler.scale_value},
                        {"name": "state.loss_scale_counter", "data": step.scaler.counter}]
        if step.ema is not None:
            entries += [{"name": e.name, "data": e} for e in step.ema]
        return entries

    def _append_dict(self):
        t = self.t
        samples = self.batch_in_epoch * t.args.batch_size * t.world
        return {CONFIG_KEY: dump_config(t.args), CLASS_NAMES_KEY: "\n".join(t.classes),
                CLASS_COUNTS_KEY: ms.Tensor(t.class_counts.astype(np.int32)),
                "state.epoch": self.epoch, "state.samples_in_epoch": samples,
                "state.world_size": t.world, "state.effective_lr": float(t.peak_lr),
                "state.best_top1": -1.0 if self.best_top1 is None else float(self.best_top1),
                "state.epoch_loss_sum": float(t.progress.summary.loss_sum),
                "state.epoch_batches": int(t.progress.summary.steps)}

    def save(self, metric=None):
        """Write a resume checkpoint at the current position (rank 0; never with non-finite weights)."""
        if not self.t.main:
            return None
        if not bool(all_finite(tuple(self.t.net.get_parameters()), ops.HyperMap())):
            LOG.warning("weights are not finite: checkpoint not saved (the last good one stays the newest)")
            return None
        path = self.t.ckpts.save(self._entries(), self._append_dict(), self.epoch, self.optimizer_steps(), metric)
        LOG.info("saved %s", path)
        return path

    def resume(self, path):
        """Restore every piece of state from a resume checkpoint; a different world size rescales the LR."""
        t = self.t
        ckpt = read_checkpoint(path)
        if "state.epoch" not in ckpt:
            raise MsvisionError(f"'{path}' is not a resume checkpoint (no training state): use it as --ckpt_path")
        load_weights(t.net, ckpt, source=path)
        targets = {"optim." + p.name: p for p in t.optimizer.get_parameters()}
        if t.step.ema is not None:
            targets.update({e.name: e for e in t.step.ema})
        if t.step.dynamic:
            targets.update({"state.loss_scale": t.step.scaler.scale_value,
                            "state.loss_scale_counter": t.step.scaler.counter})
        for name, param in targets.items():
            if name in ckpt and tuple(ckpt[name].shape) == tuple(param.shape):
                param.set_data(ms.Tensor(ckpt[name].asnumpy(), param.dtype))
        self.epoch = int(ckpt["state.epoch"].asnumpy())
        samples = int(ckpt["state.samples_in_epoch"].asnumpy())
        old_world = int(ckpt["state.world_size"].asnumpy())
        best = float(ckpt["state.best_top1"].asnumpy())
        self.best_top1 = None if best < 0 else best
        self.batch_in_epoch = samples // (t.args.batch_size * t.world)
        self.batch_in_epoch -= self.batch_in_epoch % t.args.grad_accum_steps
        global_step = self.epoch * t.steps_per_epoch + self.batch_in_epoch // t.args.grad_accum_steps
        if old_world == t.world and "optim.global_step" in ckpt:  # as saved: skipped (overflow) steps not counted
            global_step = self.optimizer_steps()
        else:  # the position at the new world size
            t.optimizer.global_step.set_data(ms.Tensor([global_step], ms.int32))
        if self.batch_in_epoch >= t.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        elif self.batch_in_epoch and "state.epoch_batches" in ckpt:
            self.carried = (float(ckpt["state.epoch_loss_sum"].asnumpy()), int(ckpt["state.epoch_batches"].asnumpy()))
        LOG.info("resumed from %s: epoch %d, batch %d of %d, optimizer step %d", path, self.epoch + 1,
                 self.batch_in_epoch, t.batches_per_epoch, global_step)
        if old_world != t.world:
            old_lr = float(ckpt["state.effective_lr"].asnumpy())
            LOG.info("resuming with world size %d (checkpoint had %d): effective lr %.6g -> %.6g, steps per epoch "
                     "now %d", t.world, old_world, old_lr, t.peak_lr, t.steps_per_epoch)
