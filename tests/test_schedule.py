"""LR scaling by the global batch and the per-step schedule in epochs."""
import math

import numpy as np
import pytest

from msvision.config.kwargs import lr_scaling_kwargs, schedule_kwargs
from msvision.config.parse import parse_config
from msvision.optim.schedule import global_batch_size, lr_schedule, scaled_lr


def args_for(*argv):
    return parse_config(list(argv))


def schedule(args, peak_lr, steps_per_epoch):
    """The schedule a run with these options gets (the trainer's call)."""
    return lr_schedule(peak_lr, steps_per_epoch, **schedule_kwargs(args))


def scaled(args, world_size):
    return scaled_lr(**lr_scaling_kwargs(args, world_size))


@pytest.mark.parametrize("rule,expected", [("linear", 0.1 * 512 / 256), ("sqrt", 0.1 * math.sqrt(2)),
                                           ("none", 0.1)])
def test_lr_scales_with_global_batch(rule, expected):
    args = args_for("--lr", "0.1", "--lr_base_batch_size", "256", "--batch_size", "32", "--grad_accum_steps", "2",
                    "--lr_scale_rule", rule)
    assert global_batch_size(args.batch_size, 8, args.grad_accum_steps) == 512
    assert scaled(args, world_size=8) == pytest.approx(expected)


def test_same_global_batch_gives_same_lr():
    eight = args_for("--batch_size", "32", "--lr", "0.01", "--lr_base_batch_size", "256")
    one = args_for("--batch_size", "256", "--lr", "0.01", "--lr_base_batch_size", "256")
    assert scaled(eight, 8) == scaled(one, 1) == pytest.approx(0.01)


def test_warmup_cosine_in_epochs():
    args = args_for("--epoch_size", "10", "--warmup_epochs", "2", "--warmup_factor", "0.1", "--min_lr", "0.001")
    lrs = schedule(args, peak_lr=1.0, steps_per_epoch=50)
    assert len(lrs) == 500
    assert lrs[0] == pytest.approx(0.1 + 0.9 / 100)
    assert lrs[99] == pytest.approx(1.0) and lrs.argmax() in (99, 100)
    assert lrs[-1] == pytest.approx(0.001, abs=1e-4) and np.all(np.diff(lrs[100:]) <= 0)
    # same schedule in epochs at another world size: warmup still ends after 2 epochs
    assert schedule(args, 1.0, steps_per_epoch=25)[49] == pytest.approx(1.0)


def test_step_and_multistep():
    step = schedule(args_for("--scheduler", "step", "--decay_epochs", "2", "--decay_rate", "0.5",
                                "--epoch_size", "6"), 1.0, 10)
    assert [step[i * 10] for i in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    multi = schedule(args_for("--scheduler", "multistep", "--milestones", "1", "4", "--decay_rate", "0.1",
                                 "--epoch_size", "5"), 1.0, 4)
    assert [multi[i * 4] for i in range(5)] == pytest.approx([1, 0.1, 0.1, 0.1, 0.01])


def torch_lrs(torch, scheduler_class, total, base=1.0, **kwargs):
    """The LR a torch scheduler gives at each of `total` optimizer steps (stepped once per step)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = scheduler_class(optimizer, **kwargs)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(values)


def test_schedules_equal_torch(torch_reference):
    """polynomial, exponential, one_cycle and cosine restarts against torch's own schedulers, step by step."""
    torch = torch_reference[0]
    sched = torch.optim.lr_scheduler
    spe, epochs = 7, 6
    total = spe * epochs
    ours = schedule(args_for("--scheduler", "polynomial", "--lr_power", "2.5", "--min_lr", "0", "--epoch_size",
                                str(epochs)), 0.8, spe)
    np.testing.assert_allclose(ours, torch_lrs(torch, sched.PolynomialLR, total, 0.8, total_iters=total, power=2.5),
                               rtol=1e-6, atol=1e-9)
    ours = schedule(args_for("--scheduler", "exponential", "--decay_rate", "0.5", "--decay_epochs", "2",
                                "--epoch_size", str(epochs)), 0.8, spe)
    np.testing.assert_allclose(ours, torch_lrs(torch, sched.ExponentialLR, total, 0.8, gamma=0.5 ** (1 / (2 * spe))),
                               rtol=1e-6)
    for warmup, factor in (("0", "0"), ("1.5", "0.1")):  # torch's defaults (pct 0.3, div 25), and set ones
        ours = schedule(args_for("--scheduler", "one_cycle", "--warmup_epochs", warmup, "--warmup_factor", factor,
                                    "--min_lr", "1e-4", "--epoch_size", str(epochs)), 0.8, spe)
        initial = 0.8 * (float(factor) or 1 / 25)
        reference = torch_lrs(torch, sched.OneCycleLR, total, 0.8, max_lr=0.8, total_steps=total,
                              pct_start=float(warmup) * spe / total if float(warmup) else 0.3, anneal_strategy="cos",
                              div_factor=0.8 / initial, final_div_factor=initial / 1e-4)
        np.testing.assert_allclose(ours, reference, rtol=1e-6)
    ours = schedule(args_for("--num_cycles", "3", "--min_lr", "0.01", "--epoch_size", str(epochs)), 0.8, spe)
    np.testing.assert_allclose(ours, torch_lrs(torch, sched.CosineAnnealingWarmRestarts, total, 0.8,
                                               T_0=total // 3, eta_min=0.01), rtol=1e-6)


def test_htd_and_decayed_cycles_with_warmup_by_formula():
    spe, epochs, warmup = 5, 8, 1
    total, steps = spe * epochs, spe * (epochs - warmup)
    ours = schedule(args_for("--scheduler", "htd", "--warmup_epochs", str(warmup), "--htd_lower", "-4",
                                "--htd_upper", "2", "--epoch_size", str(epochs)), 2.0, spe)
    expected = [2.0 * (s + 1) / spe if s < spe else 2.0 * 0.5 * (1 - math.tanh(-4 + 6 * (s - spe) / steps))
                for s in range(total)]
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    # two cycles of 20 steps after the warmup, the second at 0.5 of the peak, each rising from min_lr over 25%
    ours = schedule(args_for("--num_cycles", "2", "--cycle_decay", "0.5", "--cycle_warmup_fraction", "0.25",
                                "--min_lr", "0.1", "--warmup_epochs", "0", "--epoch_size", str(epochs)), 2.0, spe)
    expected = []
    for s in range(total):
        cycle, u = divmod(s, 20)
        top = 2.0 * 0.5 ** cycle
        fraction = u / 20
        expected.append(0.1 + (top - 0.1) * fraction / 0.25 if fraction < 0.25 else
                        0.1 + (top - 0.1) * (1 + math.cos(math.pi * (fraction - 0.25) / 0.75)) / 2)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


@pytest.mark.parametrize("argv,message", [
    (["--scheduler", "sawtooth"], "'scheduler' must be one of"),
    (["--opt", "sophia"], "'opt' must be one of"),
    (["--lr_power", "0"], "'lr_power' must be > 0.0, got 0.0"),
    (["--num_cycles", "0"], "'num_cycles' must be >= 1, got 0"),
    (["--cycle_decay", "0"], "'cycle_decay' must be in (0.0, 1.0], got 0.0"),
    (["--cycle_decay", "1.5"], "'cycle_decay' must be in (0.0, 1.0], got 1.5"),
    (["--drop_path_rate", "1"], "'drop_path_rate' must be in [0.0, 1.0), got 1.0"),
    (["--act_layer", "gelu"], "'act_layer' must be one of relu, mish, silu, got 'gelu'"),
    (["--amp_dtype", "float8"], "'amp_dtype' must be one of float16, bfloat16"),
])
def test_bad_optimisation_options(argv, message):
    from msvision import MsvisionError

    with pytest.raises(MsvisionError) as err:
        parse_config(argv)
    assert message in str(err.value)
