"""Learning rate: scaling by the global batch, and the per-optimizer-step schedule array."""
import math

import numpy as np


def global_batch_size(args, world_size):
    return args.batch_size * world_size * args.grad_accum_steps


def scaled_lr(args, world_size):
    """The YAML's lr is the rate at lr_base_batch_size; scale it to this run's global batch by lr_scale_rule."""
    ratio = global_batch_size(args, world_size) / args.lr_base_batch_size
    factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[args.lr_scale_rule]
    return args.lr * factor


def lr_schedule(args, peak_lr, steps_per_epoch):
    """One LR per optimizer step for the whole run; warmup and decay are in epochs of this world size."""
    total = args.epoch_size * steps_per_epoch
    step = np.arange(total, dtype=np.float64)
    epoch = step / steps_per_epoch
    warmup = int(round(args.warmup_epochs * steps_per_epoch))
    if args.scheduler == "warmup_cosine_decay":
        progress = np.clip((step - warmup) / max(1, total - warmup), 0.0, 1.0)
        lrs = args.min_lr + 0.5 * (peak_lr - args.min_lr) * (1 + np.cos(math.pi * progress))
    elif args.scheduler == "step":
        lrs = peak_lr * args.decay_rate ** np.floor(epoch / args.decay_epochs)
    elif args.scheduler == "multistep":
        lrs = peak_lr * args.decay_rate ** np.searchsorted(sorted(args.milestones), np.floor(epoch), side="right")
    else:
        lrs = np.full(total, peak_lr)
    if warmup:
        start = peak_lr * args.warmup_factor
        ramp = start + (peak_lr - start) * (step[:warmup] + 1) / warmup
        lrs[:warmup] = np.minimum(ramp, lrs[:warmup]) if args.scheduler == "constant" else ramp
    return lrs.astype(np.float32)
