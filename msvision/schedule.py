"""Learning rate: scaling by the global batch, and the per-optimizer-step schedule array.

Every schedule except one_cycle starts with the linear warmup (warmup_epochs, from warmup_factor x peak) and decays
over the remaining steps; t is the step after warmup and T their number.
- warmup_cosine_decay: cosine from the peak to min_lr; with num_cycles > 1 the remaining steps are split into equal
  cycles (cosine with restarts), the peak of cycle k is peak x cycle_decay^k, and each cycle opens with a linear
  warmup over cycle_warmup_fraction of it, from min_lr (the 1e100 trainer's num_cycles / total_lr_decay /
  cycle_warmup_step_fraction: cycle_decay = total_lr_decay^(1 / (num_cycles - 1))).
- htd: peak x 0.5 x (1 - tanh(L + (U - L) t / T)), L = htd_lower, U = htd_upper (hyperbolic-tangent decay).
- polynomial: min_lr + (peak - min_lr) (1 - t / T)^lr_power (torch's PolynomialLR when min_lr is 0).
- exponential: peak x decay_rate^(t / (decay_epochs x steps per epoch)), per step (torch's ExponentialLR stepped per
  step with gamma = decay_rate^(1 / (decay_epochs x steps per epoch))).
- one_cycle: torch's OneCycleLR (cos annealing, two phases): from peak x warmup_factor (peak / 25 when 0) up to the
  peak over warmup_epochs (0.3 of the run when 0), then down to min_lr.
- step, multistep, constant: as before.
"""
import math

import numpy as np


def global_batch_size(args, world_size):
    return args.batch_size * world_size * args.grad_accum_steps


def scaled_lr(args, world_size):
    """The YAML's lr is the rate at lr_base_batch_size; scale it to this run's global batch by lr_scale_rule."""
    ratio = global_batch_size(args, world_size) / args.lr_base_batch_size
    factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[args.lr_scale_rule]
    return args.lr * factor


def _cosine_cycles(args, peak, t, steps):
    length = steps / args.num_cycles
    cycle = np.minimum(np.floor(t / length), args.num_cycles - 1)
    top = peak * args.cycle_decay ** cycle
    position = (t - cycle * length) / length
    warm = args.cycle_warmup_fraction
    rising = args.min_lr + (top - args.min_lr) * position / warm if warm > 0 else top
    falling = args.min_lr + 0.5 * (top - args.min_lr) * (1 + np.cos(math.pi * np.clip(
        (position - warm) / (1 - warm), 0.0, 1.0)))
    return np.where(position < warm, rising, falling)


def _one_cycle(args, peak, total, steps_per_epoch):
    """torch.optim.lr_scheduler.OneCycleLR(max_lr=peak, total_steps=total, pct_start, anneal_strategy='cos',
    div_factor=peak / initial, final_div_factor=initial / min_lr), one value per step."""
    initial = peak * (args.warmup_factor or 1 / 25)
    pct = args.warmup_epochs * steps_per_epoch / total if args.warmup_epochs else 0.3
    up_end = float(pct * total) - 1
    step = np.arange(total, dtype=np.float64)

    def anneal(start, end, fraction):
        return end + (start - end) / 2.0 * (np.cos(math.pi * fraction) + 1)

    rising = anneal(initial, peak, step / up_end) if up_end > 0 else np.full(total, peak)
    falling = anneal(peak, args.min_lr, (step - up_end) / (total - 1 - up_end))
    return np.where(step <= up_end, rising, falling)


def lr_schedule(args, peak_lr, steps_per_epoch):
    """One LR per optimizer step for the whole run; warmup and decay are in epochs of this world size."""
    total = args.epoch_size * steps_per_epoch
    step = np.arange(total, dtype=np.float64)
    epoch = step / steps_per_epoch
    if args.scheduler == "one_cycle":
        return _one_cycle(args, peak_lr, total, steps_per_epoch).astype(np.float32)
    warmup = int(round(args.warmup_epochs * steps_per_epoch))
    t, steps = step - warmup, max(1, total - warmup)
    progress = np.clip(t / steps, 0.0, 1.0)
    if args.scheduler == "warmup_cosine_decay":
        lrs = _cosine_cycles(args, peak_lr, np.maximum(t, 0.0), steps)
    elif args.scheduler == "htd":
        lrs = peak_lr * 0.5 * (1 - np.tanh(args.htd_lower + (args.htd_upper - args.htd_lower) * progress))
    elif args.scheduler == "polynomial":
        lrs = args.min_lr + (peak_lr - args.min_lr) * (1 - progress) ** args.lr_power
    elif args.scheduler == "exponential":
        lrs = peak_lr * args.decay_rate ** (np.maximum(t, 0.0) / (args.decay_epochs * steps_per_epoch))
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
