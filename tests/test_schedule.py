"""LR scaling by the global batch and the per-step schedule in epochs."""
import math

import numpy as np
import pytest

from msvision.config import parse_config
from msvision.schedule import global_batch_size, lr_schedule, scaled_lr


def args_for(*argv):
    return parse_config(list(argv))


@pytest.mark.parametrize("rule,expected", [("linear", 0.1 * 512 / 256), ("sqrt", 0.1 * math.sqrt(2)),
                                           ("none", 0.1)])
def test_lr_scales_with_global_batch(rule, expected):
    args = args_for("--lr", "0.1", "--lr_base_batch_size", "256", "--batch_size", "32", "--grad_accum_steps", "2",
                    "--lr_scale_rule", rule)
    assert global_batch_size(args, world_size=8) == 512
    assert scaled_lr(args, world_size=8) == pytest.approx(expected)


def test_same_global_batch_gives_same_lr():
    eight = args_for("--batch_size", "32", "--lr", "0.01", "--lr_base_batch_size", "256")
    one = args_for("--batch_size", "256", "--lr", "0.01", "--lr_base_batch_size", "256")
    assert scaled_lr(eight, 8) == scaled_lr(one, 1) == pytest.approx(0.01)


def test_warmup_cosine_in_epochs():
    args = args_for("--epoch_size", "10", "--warmup_epochs", "2", "--warmup_factor", "0.1", "--min_lr", "0.001")
    lrs = lr_schedule(args, peak_lr=1.0, steps_per_epoch=50)
    assert len(lrs) == 500
    assert lrs[0] == pytest.approx(0.1 + 0.9 / 100)
    assert lrs[99] == pytest.approx(1.0) and lrs.argmax() in (99, 100)
    assert lrs[-1] == pytest.approx(0.001, abs=1e-4) and np.all(np.diff(lrs[100:]) <= 0)
    # same schedule in epochs at another world size: warmup still ends after 2 epochs
    assert lr_schedule(args, 1.0, steps_per_epoch=25)[49] == pytest.approx(1.0)


def test_step_and_multistep():
    step = lr_schedule(args_for("--scheduler", "step", "--decay_epochs", "2", "--decay_rate", "0.5",
                                "--epoch_size", "6"), 1.0, 10)
    assert [step[i * 10] for i in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    multi = lr_schedule(args_for("--scheduler", "multistep", "--milestones", "1", "4", "--decay_rate", "0.1",
                                 "--epoch_size", "5"), 1.0, 4)
    assert [multi[i * 4] for i in range(5)] == pytest.approx([1, 0.1, 0.1, 0.1, 0.01])
