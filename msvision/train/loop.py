"""The training run: build everything from the config, loop over epochs, log, validate, checkpoint, resume."""
import contextlib
import logging
import math
import os
import sys
import time

import mindspore as ms
from mindspore import nn, ops

from msvision import device
from msvision.checkpoint import CLASS_NAMES_KEY, CONFIG_KEY, CheckpointManager, load_weights, read_checkpoint
from msvision.config import config_dict, config_from_text, dump_config, parse_config
from msvision.data.dataset import batches, count_items, split_root
from msvision.data.transforms import create_loader
from msvision.errors import MsvisionError
from msvision.evaluate import evaluate
from msvision.models import create_model, get_pretrained_cfg
from msvision.optim import create_optimizer
from msvision.schedule import global_batch_size, lr_schedule, scaled_lr
from msvision.train.records import EpochSummary
from msvision.train.step import TrainStep, all_finite

LOG = logging.getLogger("msvision")


def setup_logging(save_dir, main_process):
    LOG.handlers.clear()
    LOG.setLevel(logging.INFO if main_process else logging.WARNING)
    LOG.propagate = False
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if main_process:
        handlers.append(logging.FileHandler(os.path.join(save_dir, "train.log"), delay=True))
    for handler in handlers:
        handler.setFormatter(formatter)
        LOG.addHandler(handler)


def _check_writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as err:
        raise MsvisionError(f"ckpt_save_dir '{folder}' is not writable: {err.strerror}") from None


class Trainer:
    """Holds the model, optimizer, step Cell and counters of one run."""

    def __init__(self, args):
        self.args = args
        self.execution = device.setup_device(args)  # (device, jit level, why): logged when the run starts
        self.rank, self.world = device.rank(), device.world_size()
        self.main = device.is_main_process()
        _check_writable(args.ckpt_save_dir)
        setup_logging(args.ckpt_save_dir, self.main)

        self.train_root, self.classes = split_root(args, args.train_split)
        if len(self.classes) != args.num_classes:
            raise MsvisionError(f"num_classes is {args.num_classes} but '{self.train_root}' has {len(self.classes)} "
                                f"class folders: set num_classes: {len(self.classes)}")
        self.num_train = count_items(self.train_root)
        per_rank = -(-self.num_train // self.world)
        self.batches_per_epoch = per_rank // args.batch_size if args.drop_remainder \
            else -(-per_rank // args.batch_size)
        self.steps_per_epoch = self.batches_per_epoch // args.grad_accum_steps
        if self.steps_per_epoch == 0:
            raise MsvisionError(
                f"batch_size {args.batch_size} x grad_accum_steps {args.grad_accum_steps} is larger than the "
                f"{per_rank} training images per device ({self.num_train} over {self.world} devices): lower batch_size")
        self.batches_per_epoch = self.steps_per_epoch * args.grad_accum_steps
        if args.val_while_train:
            self.val_root, val_classes = split_root(args, args.val_split)
            if val_classes != self.classes:
                raise MsvisionError(f"class folders of '{self.val_root}' differ from those of '{self.train_root}'")
            self.num_val = count_items(self.val_root)

        self.peak_lr = scaled_lr(args, self.world)
        self.lrs = lr_schedule(args, self.peak_lr, self.steps_per_epoch)
        self.net = create_model(args.model, num_classes=args.num_classes, drop_rate=args.drop_rate)
        if args.ckpt_path:
            reset = load_weights(self.net, args.ckpt_path,
                                 reset_head_prefix=get_pretrained_cfg(args.model).classifier if args.reset_head else None)
            LOG.info("initial weights from %s%s", args.ckpt_path, f" (re-initialised: {', '.join(reset)})" if reset else "")
        if args.amp_level != "O0":
            ms.amp.auto_mixed_precision(self.net, args.amp_level)
            if ms.get_context("device_target") == "CPU":
                LOG.warning("amp_level %s runs float16 kernels, which are slow on CPU: --amp_level O0 is faster here",
                            args.amp_level)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.optimizer = create_optimizer(args, self.net.trainable_params(), self.lrs)
        self.step = TrainStep(self.net, loss_fn, self.optimizer, args, parallel=self.world > 1, world_size=self.world)
        self.ckpts = CheckpointManager(args.ckpt_save_dir, args.model, args.keep_checkpoint_max, args.ckpt_save_policy,
                                       clean_partial=self.main)
        self.summary = EpochSummary(args.ckpt_save_dir, self.main)
        if not args.resume and self.ckpts.entries:
            raise MsvisionError(f"ckpt_save_dir '{args.ckpt_save_dir}' already holds checkpoints of another run: "
                                f"continue it with --resume auto, or choose another ckpt_save_dir")
        self.epoch, self.batch_in_epoch, self.best_top1 = 0, 0, None

    # ----------------------------------------------------------------- state
    def _state_params(self):
        """Everything a resume needs, as checkpoint entries: model, optimizer moments and counters, scaler, EMA."""
        model_names = {p.name for p in self.net.get_parameters()}
        entries = [{"name": p.name, "data": p} for p in self.net.get_parameters()]
        for param in self.optimizer.get_parameters():
            if param.name not in model_names and param.name != "learning_rate":
                entries.append({"name": "optim." + param.name, "data": param})
        scaler = self.step.scaler
        if self.step.dynamic:
            entries += [{"name": "state.loss_scale", "data": scaler.scale_value},
                        {"name": "state.loss_scale_counter", "data": scaler.counter}]
        if self.step.ema is not None:
            entries += [{"name": e.name, "data": e} for e in self.step.ema]
        return entries

    def _append_dict(self):
        samples = self.batch_in_epoch * self.args.batch_size * self.world
        return {CONFIG_KEY: dump_config(self.args), CLASS_NAMES_KEY: "\n".join(self.classes),
                "state.epoch": self.epoch, "state.samples_in_epoch": samples,
                "state.world_size": self.world, "state.effective_lr": float(self.peak_lr),
                "state.best_top1": -1.0 if self.best_top1 is None else float(self.best_top1)}

    def save(self, metric=None):
        if not self.main:
            return None
        if not bool(all_finite(tuple(self.net.get_parameters()), ops.HyperMap())):
            LOG.warning("weights are not finite: checkpoint not saved (the last good one stays the newest)")
            return None
        global_step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
        path = self.ckpts.save(self._state_params(), self._append_dict(), self.epoch, global_step, metric)
        LOG.info("saved %s", path)
        return path

    def resume(self, path):
        """Restore every piece of state from a resume checkpoint; a different world size rescales the LR."""
        ckpt = read_checkpoint(path)
        if "state.epoch" not in ckpt:
            raise MsvisionError(f"'{path}' is not a resume checkpoint (no training state): use it as --ckpt_path")
        load_weights(self.net, ckpt, source=path)
        targets = {"optim." + p.name: p for p in self.optimizer.get_parameters()}
        if self.step.ema is not None:
            targets.update({e.name: e for e in self.step.ema})
        if self.step.dynamic:
            targets.update({"state.loss_scale": self.step.scaler.scale_value,
                            "state.loss_scale_counter": self.step.scaler.counter})
        for name, param in targets.items():
            if name in ckpt and tuple(ckpt[name].shape) == tuple(param.shape):
                param.set_data(ms.Tensor(ckpt[name].asnumpy(), param.dtype))
        self.epoch = int(ckpt["state.epoch"].asnumpy())
        samples = int(ckpt["state.samples_in_epoch"].asnumpy())
        old_world = int(ckpt["state.world_size"].asnumpy())
        best = float(ckpt["state.best_top1"].asnumpy())
        self.best_top1 = None if best < 0 else best
        self.batch_in_epoch = samples // (self.args.batch_size * self.world)
        self.batch_in_epoch -= self.batch_in_epoch % self.args.grad_accum_steps
        global_step = self.epoch * self.steps_per_epoch + self.batch_in_epoch // self.args.grad_accum_steps
        self.optimizer.global_step.set_data(ms.Tensor([global_step], ms.int32))
        if self.batch_in_epoch >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        LOG.info("resumed from %s: epoch %d, batch %d of %d, optimizer step %d", path, self.epoch + 1,
                 self.batch_in_epoch, self.batches_per_epoch, global_step)
        if old_world != self.world:
            old_lr = float(ckpt["state.effective_lr"].asnumpy())
            LOG.info("resuming with world size %d (checkpoint had %d): effective lr %.6g -> %.6g, steps per epoch "
                     "now %d", self.world, old_world, old_lr, self.peak_lr, self.steps_per_epoch)

    # ----------------------------------------------------------------- loop
    @contextlib.contextmanager
    def ema_weights(self):
        """Swap the EMA weights into the model for evaluation (no-op without EMA)."""
        if self.step.ema is None:
            yield
            return
        params = list(self.net.get_parameters())
        saved = [p.asnumpy().copy() for p in params]
        for param, ema in zip(params, self.step.ema):
            param.set_data(ms.Tensor(ema.asnumpy(), param.dtype))
        try:
            yield
        finally:
            for param, value in zip(params, saved):
                param.set_data(ms.Tensor(value, param.dtype))

    def validate(self):
        with self.ema_weights():
            metrics = evaluate(self.net, self.args, self.val_root, self.num_val, self.classes, self.rank, self.world)
        LOG.info("validation epoch %d%s: top-1 %.2f%%, top-5 %.2f%%, loss %.4f on %d images", self.epoch + 1,
                 " (EMA weights)" if self.step.ema is not None else "", metrics["top1"], metrics["top5"],
                 metrics["loss"], metrics["count"])
        return metrics

    def run(self):
        args = self.args
        if args.resume:
            path = self.ckpts.latest() if args.resume == "auto" else args.resume
            if path:
                self.resume(path)
            else:
                LOG.info("resume auto: no checkpoint in %s, starting fresh", args.ckpt_save_dir)
        if self.main:
            with open(os.path.join(args.ckpt_save_dir, "config.yaml"), "w", encoding="utf-8") as handle:
                handle.write(dump_config(args))
        target, jit_level, why = self.execution
        LOG.info("device %s, %s mode, jit_level %s (%s)", target, "graph" if args.mode == 0 else "pynative",
                 jit_level, why)
        LOG.info("model %s, %d classes, %d train images, world size %d, device %s", args.model, args.num_classes,
                 self.num_train, self.world, ms.get_context("device_target"))
        LOG.info("lr scaling (%s): lr %.6g at global batch %d -> effective lr %.6g at global batch %d "
                 "(%d per device x %d devices x %d accumulation)", args.lr_scale_rule, args.lr,
                 args.lr_base_batch_size, self.peak_lr, global_batch_size(args, self.world), args.batch_size,
                 self.world, args.grad_accum_steps)
        total_steps = args.epoch_size * self.batches_per_epoch
        nonfinite, started, done_at_start = 0, time.time(), self.epoch * self.batches_per_epoch + self.batch_in_epoch
        last_metrics = None
        while self.epoch < args.epoch_size:
            self.net.set_train(True)
            loader = create_loader(args, self.train_root, self.num_train, True, self.epoch, self.rank, self.world,
                                   skip=self.batch_in_epoch * args.batch_size)
            window_start, window_images, window_batches = time.time(), 0, 0
            self.summary.start_epoch()
            timer = self.summary.timer
            for images, labels in batches(loader, self.train_root):
                timer.waited()
                if self.batch_in_epoch >= self.batches_per_epoch:
                    break
                apply = (self.batch_in_epoch + 1) % args.grad_accum_steps == 0
                loss, finite = self.step(images, labels, apply)
                loss = float(loss.asnumpy())
                self.batch_in_epoch += 1
                window_images += images.shape[0] * self.world
                window_batches += 1
                self.summary.add_step(loss, images.shape[0] * self.world)
                stuck = False
                if not bool(finite):
                    scale = float(self.step.scaler.scale_value.asnumpy())
                    LOG.warning("step %d: non-finite gradients, update skipped (loss scale now %g)",
                                self.batch_in_epoch, scale)
                    # an overflow the dynamic scaler can still absorb by lowering the scale is not a failure
                    stuck = not self.step.dynamic or scale <= 1.0
                nonfinite = nonfinite + 1 if (not math.isfinite(loss) or stuck) else 0
                if nonfinite >= args.max_nonfinite_steps:
                    raise MsvisionError(f"loss or gradients were non-finite for {nonfinite} consecutive steps; "
                                        f"stopping (last good checkpoint: {self.ckpts.latest() or 'none'}); lower lr "
                                        f"or use loss_scale_type: dynamic")
                done = self.epoch * self.batches_per_epoch + self.batch_in_epoch
                if self.batch_in_epoch % args.log_interval == 0 or self.batch_in_epoch == self.batches_per_epoch:
                    elapsed = time.time() - window_start
                    rate = window_images / max(elapsed, 1e-9)
                    eta = (time.time() - started) / max(done - done_at_start, 1) * (total_steps - done)
                    step_index = min(int(self.optimizer.global_step.asnumpy().reshape(-1)[0]), len(self.lrs) - 1)
                    LOG.info("epoch %d/%d step %d/%d loss %.4f lr %.6g %.1f img/s %.1f ms/step data wait %.0f%% "
                             "ETA %s", self.epoch + 1, args.epoch_size, self.batch_in_epoch, self.batches_per_epoch,
                             loss, self.lrs[step_index], rate, 1000.0 * elapsed / max(window_batches, 1),
                             100.0 * timer.share(), time.strftime("%H:%M:%S", time.gmtime(eta)))
                    window_start, window_images, window_batches = time.time(), 0, 0
                if apply and args.ckpt_save_steps and self.batch_in_epoch < self.batches_per_epoch and \
                        (self.batch_in_epoch // args.grad_accum_steps) % args.ckpt_save_steps == 0:
                    self.save()
                timer.done()
            metric = epoch_metrics = None
            if args.val_while_train and ((self.epoch + 1) % args.val_interval == 0 or
                                         self.epoch + 1 == args.epoch_size):
                last_metrics = epoch_metrics = self.validate()
                metric = last_metrics["top1"]
                self.best_top1 = metric if self.best_top1 is None else max(self.best_top1, metric)
                self.net.set_train(True)
            steps_done = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
            self.summary.finish(self.epoch + 1, float(self.lrs[min(max(steps_done - 1, 0), len(self.lrs) - 1)]),
                                epoch_metrics)
            finished_epoch = self.epoch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            if (finished_epoch + 1) % args.ckpt_save_interval == 0 or self.epoch == args.epoch_size:
                self.save(metric)
        latest = self.ckpts.latest()
        if self.main:
            LOG.info("training done in %.1f s; checkpoint: %s%s", time.time() - started, latest,
                     f"; best top-1 {self.best_top1:.2f}%" if self.best_top1 is not None else "")
        return dict(checkpoint=latest, metrics=last_metrics, config=config_dict(args))


TRAIN_DESCRIPTION = "Train a model (single process or under msrun)."


def parse_train_args(argv=None):
    """train.py options; with --resume, the config stored in that checkpoint is the base under YAML and CLI."""
    args = parse_config(argv, description=TRAIN_DESCRIPTION)
    if not args.resume:
        return args
    path = CheckpointManager(args.ckpt_save_dir, args.model, 1, "latest_k").latest() if args.resume == "auto" \
        else args.resume
    if not path:
        return args
    stored = read_checkpoint(path, only=CONFIG_KEY).get(CONFIG_KEY)
    if not isinstance(stored, str):
        return args
    return parse_config(argv, description=TRAIN_DESCRIPTION, base=config_dict(config_from_text(stored, path)))


def train(args):
    """Train as configured; returns the final checkpoint path and last validation metrics."""
    return Trainer(args).run()
