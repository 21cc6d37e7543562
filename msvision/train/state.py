"""Run state: where a run is (epoch, batch in epoch, best top-1) and the checkpoint entries that restore it exactly."""
import dataclasses
import logging
import os

import numpy as np
import mindspore as ms
from mindspore import ops

from msvision.errors import MsvisionError
from msvision.train.step import all_finite
from msvision.weights.io import load_weights, read_checkpoint

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


@dataclasses.dataclass(frozen=True)
class EpochShape:
    """How the run's epochs divide into batches and optimizer steps at this world size."""
    batch_size: int  # per device
    world: int
    grad_accum_steps: int
    batches_per_epoch: int  # per device, whole optimizer steps
    epoch_size: int

    @property
    def steps_per_epoch(self):
        return self.batches_per_epoch // self.grad_accum_steps

    @property
    def images_per_batch(self):
        return self.batch_size * self.world


class RunState:
    """Position and resume state of one run; save() writes it (rank 0 only), resume() restores it.

    run_entries: the checkpoint entries that do not change during the run (config, class names and counts); the
    effective LR and world size are stored with them."""

    def __init__(self, net, optimizer, step, manager, shape, peak_lr, run_entries, is_main):
        self.net, self.optimizer, self.step, self.manager = net, optimizer, step, manager
        self.shape, self.peak_lr, self.run_entries, self.is_main = shape, peak_lr, run_entries, is_main
        self.epoch, self.batch_in_epoch, self.best_top1 = 0, 0, None
        self.carried = None  # (loss sum, batches) of a resumed epoch's part before the checkpoint

    def take_carried(self):
        carried, self.carried = self.carried, None
        return carried

    def optimizer_steps(self):
        return int(self.optimizer.global_step.asnumpy().reshape(-1)[0])

    def _entries(self):
        """Everything a resume needs, as checkpoint entries: model, optimizer moments and counters, scaler, EMA, the
        loss's state."""
        net, step = self.net, self.step
        model_names = {p.name for p in net.get_parameters()}
        entries = [{"name": p.name, "data": p} for p in net.get_parameters()]
        for param in self.optimizer.get_parameters():
            if param.name not in model_names and not param.name.startswith("learning_rate"):  # LRs come from config
                entries.append({"name": "optim." + param.name, "data": param})
        if step.dynamic:
            entries += [{"name": "state.loss_scale", "data": step.scaler.scale_value},
                        {"name": "state.loss_scale_counter", "data": step.scaler.counter}]
        if step.ema is not None:
            entries += [{"name": e.name, "data": e} for e in step.ema]
        entries += [{"name": p.name, "data": p} for p in step.loss_state]
        return entries

    def _append_dict(self, epoch_loss):
        samples = self.batch_in_epoch * self.shape.images_per_batch
        return dict(self.run_entries, **{
            "state.epoch": self.epoch, "state.samples_in_epoch": samples,
            "state.world_size": self.shape.world, "state.effective_lr": float(self.peak_lr),
            "state.best_top1": -1.0 if self.best_top1 is None else float(self.best_top1),
            "state.epoch_loss_sum": float(epoch_loss[0]), "state.epoch_batches": int(epoch_loss[1])})

    def save(self, epoch_loss, metric=None):
        """Write a resume checkpoint at the current position (rank 0; never with non-finite weights); epoch_loss:
        (loss sum, batches) of the epoch so far."""
        if not self.is_main:
            return None
        if not bool(all_finite(tuple(self.net.get_parameters()), ops.HyperMap())):
            LOG.warning("weights are not finite: checkpoint not saved (the last good one stays the newest)")
            return None
        path = self.manager.save(self._entries(), self._append_dict(epoch_loss), self.epoch, self.optimizer_steps(),
                                 metric)
        LOG.info("saved %s", path)
        return path

    def resume(self, path):
        """Restore every piece of state from a resume checkpoint; a different world size rescales the LR."""
        shape, step = self.shape, self.step
        ckpt = read_checkpoint(path)
        if "state.epoch" not in ckpt:
            raise MsvisionError(f"'{path}' is not a resume checkpoint (no training state): use it as --ckpt_path")
        load_weights(self.net, ckpt, source=path)
        targets = {"optim." + p.name: p for p in self.optimizer.get_parameters()}
        if step.ema is not None:
            targets.update({e.name: e for e in step.ema})
        if step.dynamic:
            targets.update({"state.loss_scale": step.scaler.scale_value,
                            "state.loss_scale_counter": step.scaler.counter})
        targets.update({p.name: p for p in step.loss_state})
        for name, param in targets.items():
            if name in ckpt and tuple(ckpt[name].shape) == tuple(param.shape):
                param.set_data(ms.Tensor(ckpt[name].asnumpy(), param.dtype))
        self.epoch = int(ckpt["state.epoch"].asnumpy())
        samples = int(ckpt["state.samples_in_epoch"].asnumpy())
        old_world = int(ckpt["state.world_size"].asnumpy())
        best = float(ckpt["state.best_top1"].asnumpy())
        self.best_top1 = None if best < 0 else best
        self.batch_in_epoch = samples // shape.images_per_batch
        self.batch_in_epoch -= self.batch_in_epoch % shape.grad_accum_steps
        global_step = self.epoch * shape.steps_per_epoch + self.batch_in_epoch // shape.grad_accum_steps
        if old_world == shape.world and "optim.global_step" in ckpt:  # as saved: skipped (overflow) steps not counted
            global_step = self.optimizer_steps()
        else:  # the position at the new world size
            self.optimizer.global_step.set_data(ms.Tensor([global_step], ms.int32))
        if self.batch_in_epoch >= shape.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        elif self.batch_in_epoch and "state.epoch_batches" in ckpt:
            self.carried = (float(ckpt["state.epoch_loss_sum"].asnumpy()), int(ckpt["state.epoch_batches"].asnumpy()))
        LOG.info("resumed from %s: epoch %d, batch %d of %d, optimizer step %d", path, self.epoch + 1,
                 self.batch_in_epoch, shape.batches_per_epoch, global_step)
        if old_world != shape.world:
            old_lr = float(ckpt["state.effective_lr"].asnumpy())
            LOG.info("resuming with world size %d (checkpoint had %d): effective lr %.6g -> %.6g, steps per epoch "
                     "now %d", shape.world, old_world, old_lr, self.peak_lr, shape.steps_per_epoch)
