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


def global_batch_size(batch_size, world_size=1, grad_accum_steps=1):
    """Images per optimizer step over every device."""
    return batch_size * world_size * grad_accum_steps


def scaled_lr(lr, global_batch, lr_base_batch_size=256, lr_scale_rule="linear"):
    """lr is the rate at lr_base_batch_size; scaled to global_batch by lr_scale_rule (linear, sqrt or none)."""
    ratio = global_batch / lr_base_batch_size
    return lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[lr_scale_rule]


def _cosine_cycles(peak, t, steps, min_lr, num_cycles, cycle_decay, cycle_warmup_fraction):
    length = steps / num_cycles
    cycle = np.minimum(np.floor(t / length), num_cycles - 1)
    top = peak * cycle_decay ** cycle
    position = (t - cycle * length) / length
    warm = cycle_warmup_fraction
    rising = min_lr + (top - min_lr) * position / warm if warm > 0 else top
    falling = min_lr + 0.5 * (top - min_lr) * (1 + np.cos(math.pi * np.clip((position - warm) / (1 - warm), 0.0, 1.0)))
    return np.where(position < warm, rising, falling)


def _one_cycle(peak, total, steps_per_epoch, warmup_epochs, warmup_factor, min_lr):
    """torch.optim.lr_scheduler.OneCycleLR(max_lr=peak, total_steps=total, pct_start, anneal_strategy='cos',
    div_factor=peak / initial, final_div_factor=initial / min_lr), one value per step."""
    initial = peak * (warmup_factor or 1 / 25)
    pct = warmup_epochs * steps_per_epoch / total if warmup_epochs else 0.3
    up_end = float(pct * total) - 1
    step = np.arange(total, dtype=np.float64)

    def anneal(start, end, fraction):
        return end + (start - end) / 2.0 * (np.cos(math.pi * fraction) + 1)

    rising = anneal(initial, peak, step / up_end) if up_end > 0 else np.full(total, peak)
    falling = anneal(peak, min_lr, (step - up_end) / (total - 1 - up_end))
    return np.where(step <= up_end, rising, falling)


def lr_schedule(peak_lr, steps_per_epoch, epoch_size, scheduler="warmup_cosine_decay", warmup_epochs=0.0,
                warmup_factor=0.0, min_lr=1e-6, decay_epochs=30, decay_rate=0.1, milestones=(30, 60, 90),
                num_cycles=1, cycle_decay=1.0, cycle_warmup_fraction=0.0, htd_lower=-6.0, htd_upper=3.0,
                lr_power=1.0):
    """One LR per optimizer step for the whole run (epoch_size x steps_per_epoch): a linear warmup from
    warmup_factor x peak_lr over warmup_epochs, then the scheduler (see the module docstring)."""
    total = epoch_size * steps_per_epoch
    step = np.arange(total, dtype=np.float64)
    epoch = step / steps_per_epoch
    if scheduler == "one_cycle":
        return _one_cycle(peak_lr, total, steps_per_epoch, warmup_epochs, warmup_factor, min_lr).astype(np.float32)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    t, steps = step - warmup, max(1, total - warmup)
    progress = np.clip(t / steps, 0.0, 1.0)
    if scheduler == "warmup_cosine_decay":
        lrs = _cosine_cycles(peak_lr, np.maximum(t, 0.0), steps, min_lr, num_cycles, cycle_decay,
                             cycle_warmup_fraction)
    elif scheduler == "htd":
        lrs = peak_lr * 0.5 * (1 - np.tanh(htd_lower + (htd_upper - htd_lower) * progress))
    elif scheduler == "polynomial":
        lrs = min_lr + (peak_lr - min_lr) * (1 - progress) ** lr_power
    elif scheduler == "exponential":
        lrs = peak_lr * decay_rate ** (np.maximum(t, 0.0) / (decay_epochs * steps_per_epoch))
    elif scheduler == "step":
        lrs = peak_lr * decay_rate ** np.floor(epoch / decay_epochs)
    elif scheduler == "multistep":
        lrs = peak_lr * decay_rate ** np.searchsorted(sorted(milestones), np.floor(epoch), side="right")
    else:
        lrs = np.full(total, peak_lr)
    if warmup:
        start = peak_lr * warmup_factor
        ramp = start + (peak_lr - start) * (step[:warmup] + 1) / warmup
        lrs[:warmup] = np.minimum(ramp, lrs[:warmup]) if scheduler == "constant" else ramp
    return lrs.astype(np.float32)
