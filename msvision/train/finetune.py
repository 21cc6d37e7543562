"""Fine-tuning controls: freeze the stem and first stages (or the whole backbone) of a model.

A frozen parameter is left out of the optimizer (no gradient, no weight decay, no optimizer state), and every
BatchNorm inside a frozen part normalises with its running statistics and never updates them, as in eval mode.
"""
from mindspore import nn

from msvision.errors import MsvisionError


def frozen_stage_count(spec, num_stages, model):
    """How many of the model's stages `freeze` covers (0 for none)."""
    if spec == "none":
        return 0
    if spec == "backbone":
        return num_stages
    if not spec.isdigit() or int(spec) < 1:
        raise MsvisionError(f"freeze must be none, backbone or a number of stages from 1 to {num_stages} "
                            f"(for {model}), got '{spec}'")
    if int(spec) > num_stages:
        raise MsvisionError(f"freeze {spec} is beyond the {num_stages} stages of {model}: use 1 to {num_stages} or "
                            f"backbone")
    return int(spec)


def freeze(net, spec, model):
    """Freeze what `spec` names; returns the frozen cells (empty for none)."""
    stages = net.stage_cells()
    cells = [cell for stage in stages[:frozen_stage_count(spec, len(stages), model)] for cell in stage]
    for cell in cells:
        for param in cell.get_parameters():
            param.requires_grad = False
        for _, sub in cell.cells_and_names():
            if isinstance(sub, nn.BatchNorm2d):
                sub.use_batch_statistics = False  # running statistics, never updated
    return cells


def describe(net, spec):
    """'N of M parameters train (...)' for the run's log (BatchNorm running statistics are not counted)."""
    total = sum(p.size for p in net.get_parameters() if not p.name.endswith(("moving_mean", "moving_variance")))
    training = sum(p.size for p in net.trainable_params())
    what = "" if spec == "none" else f" (freeze {spec}: the rest is frozen, with its BatchNorm statistics)"
    return f"{training:,} of {total:,} parameters train{what}"
