"""The training run: build everything from the config, loop over epochs in host iterations of sink_size steps,
validate, checkpoint (state.py), log and record (progress.py, records.py), resume."""
import logging
import os
import time
from types import SimpleNamespace

import numpy as np
import mindspore as ms

from msvision import device
from msvision.config.kwargs import (augment_check_kwargs, device_kwargs, eval_loader_kwargs, loss_kwargs,
                                    lr_scaling_kwargs, model_check_kwargs, model_kwargs, optimizer_kwargs,
                                    preprocessing_kwargs, schedule_kwargs, split_kwargs, step_kwargs,
                                    train_loader_kwargs)
from msvision.config.parse import config_dict, config_from_text, dump_config, parse_config
from msvision.data.augment import check_augment_options
from msvision.data.dataset import batches, open_split
from msvision.data.index import log_index
from msvision.data.loaders import preprocessing, train_loader
from msvision.data.split import class_counts
from msvision.errors import MsvisionError
from msvision.eval.metrics import evaluate
from msvision.files import write_text
from msvision.models import get_pretrained_cfg
from msvision.optim.factory import create_optimizer
from msvision.optim.schedule import global_batch_size, lr_schedule, scaled_lr
from msvision.train.loss import build_loss
from msvision.train.model import build_model, check_model_options, describe
from msvision.weights.io import CLASS_COUNTS_KEY, CLASS_NAMES_KEY, CONFIG_KEY, read_checkpoint
from msvision.weights.manager import CheckpointManager
from msvision.train.progress import Progress, setup_logging
from msvision.train.state import EpochShape, RunState, check_writable
from msvision.train.step import TrainStep, sink_on_device

LOG = logging.getLogger("msvision")


def _sink_size(args):
    """Batches per host iteration: sink_size, or log_interval rounded up to whole optimizer steps for -1."""
    accum = args.grad_accum_steps
    size = -(-args.log_interval // accum) * accum if args.sink_size == -1 else args.sink_size
    if size == 0 or size % accum:
        raise MsvisionError(f"sink_size must be -1 or a positive multiple of grad_accum_steps "
                            f"({args.grad_accum_steps}), got {args.sink_size}")
    return size


def build_training(args, class_counts, steps_per_epoch, world_size, initial_weights=True):
    """peak_lr, lrs (per step), net, loss_note, optimizer and step (TrainStep) of a parsed config, for a training
    split with these class counts, on world_size devices; initial_weights False leaves pretrained weights out."""
    peak_lr = scaled_lr(**lr_scaling_kwargs(args, world_size))
    lrs = lr_schedule(peak_lr, steps_per_epoch, **schedule_kwargs(args))
    net = build_model(**model_kwargs(args, initial_weights=initial_weights))
    loss_fn, loss_note = build_loss(class_counts, **loss_kwargs(args, world_size))
    optimizer = create_optimizer(net, lr=lrs, head_prefix=get_pretrained_cfg(args.model).classifier,
                                 **optimizer_kwargs(args))
    step = TrainStep(net, loss_fn, optimizer, parallel=world_size > 1, world_size=world_size, **step_kwargs(args))
    return SimpleNamespace(peak_lr=peak_lr, lrs=lrs, net=net, loss_note=loss_note, optimizer=optimizer, step=step)


class Trainer:
    """Holds the model, optimizer, step Cell and run state of one run."""

    def __init__(self, args):
        self.args = args
        check_augment_options(preprocessing(**preprocessing_kwargs(args))["size"], **augment_check_kwargs(args))
        check_model_options(**model_check_kwargs(args))
        self.execution = device.setup_device(**device_kwargs(args))  # (device, jit level, why): logged at the start
        self.sink_size = _sink_size(args)
        self.sink, self.sink_why = device.resolve_sink_mode(args.dataset_sink_mode, self.execution[0],
                                                            args.grad_accum_steps)
        self.rank, self.world = device.rank(), device.world_size()
        self.main = device.is_main_process()
        check_writable(args.ckpt_save_dir)
        setup_logging(args.ckpt_save_dir, self.main)

        self.train_split = open_split(args.train_split, **split_kwargs(args))
        self.classes = self.train_split.classes
        if len(self.classes) != args.num_classes:
            raise MsvisionError(f"num_classes is {args.num_classes} but '{self.train_split.root}' has "
                                f"{len(self.classes)} class folders: set num_classes: {len(self.classes)}")
        self.num_train = self.train_split.num_items
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
            self.val_split = open_split(args.val_split, **split_kwargs(args))
            if self.val_split.classes != self.classes:
                raise MsvisionError(f"class folders of '{self.val_split.root}' differ from those of "
                                    f"'{self.train_split.root}'")

        self.resume_from = args.resume and (
            CheckpointManager(args.ckpt_save_dir, args.model, 1, "latest_k").latest() if args.resume == "auto"
            else args.resume)
        self.class_counts = class_counts(self.train_split)
        built = build_training(args, self.class_counts, self.steps_per_epoch, self.world,
                               initial_weights=not self.resume_from)  # a resume brings its own weights
        self.peak_lr, self.lrs, self.net, self.loss_note = built.peak_lr, built.lrs, built.net, built.loss_note
        self.optimizer, self.step = built.optimizer, built.step
        self.ckpts = CheckpointManager(args.ckpt_save_dir, args.model, args.keep_checkpoint_max, args.ckpt_save_policy,
                                       clean_partial=self.main)
        if not args.resume and self.ckpts.entries:
            raise MsvisionError(f"ckpt_save_dir '{args.ckpt_save_dir}' already holds checkpoints of another run: "
                                f"continue it with --resume auto, or choose another ckpt_save_dir")
        shape = EpochShape(args.batch_size, self.world, args.grad_accum_steps, self.batches_per_epoch,
                           args.epoch_size)
        run_entries = {CONFIG_KEY: dump_config(args), CLASS_NAMES_KEY: "\n".join(self.classes),
                       CLASS_COUNTS_KEY: ms.Tensor(self.class_counts.astype(np.int32))}
        self.state = RunState(self.net, self.optimizer, self.step, self.ckpts, shape, self.peak_lr, run_entries,
                              self.main)
        self.progress = Progress(self.step, shape, args.ckpt_save_dir, self.main, args.max_nonfinite_steps)

    def validate(self):
        with self.step.ema_weights():
            metrics = evaluate(self.net, self.val_split, self.rank, self.world, **eval_loader_kwargs(self.args))
        LOG.info("validation epoch %d%s: top-1 %.2f%%, top-5 %.2f%%, balanced %.2f%%, worst class %.2f%%, loss %.4f "
                 "on %d images", self.state.epoch + 1, " (EMA weights)" if self.step.ema is not None else "",
                 metrics["top1"], metrics["top5"], metrics["balanced_accuracy"], metrics["worst_class_accuracy"],
                 metrics["loss"], metrics["count"])
        return metrics

    def _log_start(self):
        args = self.args
        for split in (self.train_split, self.val_split if args.val_while_train else None):
            if split is not None:
                log_index(split)
        target, jit_level, why = self.execution
        LOG.info("device %s, %s mode, jit_level %s (%s)", target, "graph" if args.mode == 0 else "pynative",
                 jit_level, why)
        LOG.info("dataset sink %s, %d steps per host iteration (%s)", "on" if self.sink else "off", self.sink_size,
                 self.sink_why)
        LOG.info("model %s, %d classes, %d train images, world size %d, device %s", args.model, args.num_classes,
                 self.num_train, self.world, ms.get_context("device_target"))
        LOG.info("%s; head_lr_scale %g", describe(self.net, args.freeze), args.head_lr_scale)
        counts = self.class_counts
        LOG.info("sampler %s; training images per class %d to %d (imbalance %.1f)%s", args.sampler, counts.min(),
                 counts.max(), counts.max() / counts.min(), f"; {self.loss_note}" if self.loss_note else "")
        LOG.info("lr scaling (%s): lr %.6g at global batch %d -> effective lr %.6g at global batch %d "
                 "(%d per device x %d devices x %d accumulation)", args.lr_scale_rule, args.lr,
                 args.lr_base_batch_size, self.peak_lr, global_batch_size(args.batch_size, self.world,
                                                                          args.grad_accum_steps), args.batch_size,
                 self.world, args.grad_accum_steps)

    def _host_steps(self, epoch_batches, count):
        """CPU (and sink off): `count` steps, one call each; the host reads nothing from the device."""
        timer, accum = self.progress.timer, self.args.grad_accum_steps
        for _ in range(count):
            images, labels = next(epoch_batches)
            timer.waited()
            self.state.batch_in_epoch += 1
            self.step(images, labels, self.state.batch_in_epoch % accum == 0)
            timer.done()

    def _boundary(self, since_log, saves_before):
        """End of a host iteration: read, log and save as due. Returns the new since_log."""
        args, s = self.args, self.state
        end = s.batch_in_epoch == self.batches_per_epoch
        save = args.ckpt_save_steps and not end and \
            (s.batch_in_epoch // args.grad_accum_steps) // args.ckpt_save_steps > saves_before
        if since_log >= args.log_interval or end or save:
            self.progress.read(self.ckpts.latest())
        if since_log >= args.log_interval or end:
            done = s.epoch * self.batches_per_epoch + s.batch_in_epoch
            lr = self.lrs[min(s.optimizer_steps(), len(self.lrs) - 1)]
            self.progress.log(s.epoch, s.batch_in_epoch, done, args.epoch_size * self.batches_per_epoch, lr)
            since_log = 0
        if save:
            s.save(self.progress.epoch_loss())
        return since_log

    def _train_epoch(self, epoch_batches, sink_calls):
        args, s = self.args, self.state
        since_log = 0
        while s.batch_in_epoch < self.batches_per_epoch:
            count = min(self.sink_size - s.batch_in_epoch % self.sink_size, self.batches_per_epoch - s.batch_in_epoch)
            saves_before = (s.batch_in_epoch // args.grad_accum_steps) // max(args.ckpt_save_steps, 1)
            if self.sink:
                if count not in sink_calls:  # one device function per distinct length (an epoch's remainder)
                    sink_calls[count] = sink_on_device(self.step, self.loader, count)
                sink_calls[count]()
                s.batch_in_epoch += count
            else:
                self._host_steps(epoch_batches, count)
            since_log = self._boundary(since_log + count, saves_before)
        if not self.sink:
            for _ in epoch_batches:  # reach the end of this epoch in the iterator
                raise MsvisionError("the training pipeline gave more batches than an epoch holds")

    def run(self):
        args, s = self.args, self.state
        if self.resume_from:
            s.resume(self.resume_from)
        elif args.resume:
            LOG.info("resume auto: no checkpoint in %s, starting fresh", args.ckpt_save_dir)
        if self.main:
            write_text(os.path.join(args.ckpt_save_dir, "config.yaml"), dump_config(args))
        self._log_start()
        last_metrics, sink_calls = None, {}
        self.step.seek_random(args.seed, s.epoch * self.batches_per_epoch + s.batch_in_epoch, self.rank)
        if s.epoch < args.epoch_size:  # one pipeline (and one compiled step) for every remaining epoch
            self.loader = train_loader(self.train_split, first_epoch=s.epoch, shard_id=self.rank,
                                       num_shards=self.world, skip=s.batch_in_epoch * args.batch_size,
                                       limit=self.batches_per_epoch * args.batch_size, **train_loader_kwargs(args))
            iterator = None if self.sink else self.loader.create_tuple_iterator(num_epochs=args.epoch_size - s.epoch)
        while s.epoch < args.epoch_size:
            self.net.set_train(True)
            self.progress.start_epoch(s.epoch * self.batches_per_epoch + s.batch_in_epoch, s.take_carried())
            epoch_batches = None if self.sink else batches(iterator, self.train_split.root)
            self._train_epoch(epoch_batches, sink_calls)
            metric = epoch_metrics = None
            if args.val_while_train and ((s.epoch + 1) % args.val_interval == 0 or s.epoch + 1 == args.epoch_size):
                last_metrics = epoch_metrics = self.validate()
                metric = last_metrics["top1"]
                s.best_top1 = metric if s.best_top1 is None else max(s.best_top1, metric)
                self.net.set_train(True)
            steps_done = s.optimizer_steps()
            self.progress.summary.finish(s.epoch + 1, float(self.lrs[min(max(steps_done - 1, 0), len(self.lrs) - 1)]),
                                         epoch_metrics)
            finished_epoch = s.epoch
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0
            if (finished_epoch + 1) % args.ckpt_save_interval == 0 or s.epoch == args.epoch_size:
                s.save(self.progress.epoch_loss(), metric)
        latest = self.ckpts.latest()
        if self.main:
            LOG.info("training done in %.1f s; checkpoint: %s%s", time.time() - self.progress.started, latest,
                     f"; best top-1 {s.best_top1:.2f}%" if s.best_top1 is not None else "")
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
