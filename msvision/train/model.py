"""The run's model: built with its options (dropout, drop path, activation), initial weights (ckpt_path, its EMA
weights with ckpt_ema, a new classifier with reset_head), frozen stages, mixed precision.

A frozen parameter is left out of the optimizer (no gradient, no weight decay, no optimizer state), and every
BatchNorm inside a frozen part normalises with its running statistics and never updates them, as in eval mode; its
dropout and drop path are off.
"""
import logging
import os

import mindspore as ms
from mindspore import nn
from mindspore.nn.utils import no_init_parameters

from msvision.errors import MsvisionError
from msvision.models import create_model, form_args, get_pretrained_cfg, published_weights
from msvision.weights.convert import is_pytorch_layout
from msvision.weights.io import checkpoint_names

LOG = logging.getLogger("msvision")
AMP_DTYPES = {"float16": ms.float16, "bfloat16": ms.bfloat16}


def check_model_options(model, pretrained=None, checkpoint_path=None, amp_level="O0", amp_dtype="float16",
                        model_args=None, custom_l2=False):
    """The model options' mistakes, found before any data is read or anything written (no network access)."""
    if custom_l2 and (get_pretrained_cfg(model).fused_form is None or (model_args or {}).get("deploy")):
        raise MsvisionError(f"repvgg_custom_l2 acts on the branches of a train-form RepVGG; {model} has none: set it "
                            f"false")
    if amp_dtype == "bfloat16" and amp_level == "O0":
        raise MsvisionError("amp_dtype bfloat16 needs amp_level O1, O2 or O3 (O0 runs float32)")
    if pretrained and checkpoint_path:
        raise MsvisionError("pretrained and ckpt_path both name initial weights: set one of them")
    if pretrained:
        published_weights(model, pretrained)  # a source without this model's weights
    if model_args:  # the family's own arguments, tried on a model whose weights are never drawn
        with no_init_parameters():
            create_model(model, **model_args)
    if checkpoint_path and os.path.isfile(checkpoint_path) and not is_pytorch_layout(checkpoint_path):
        form_args(model, checkpoint_names(checkpoint_path), checkpoint_path, model_args=model_args)  # fused weights


def build_model(model, num_classes, freeze_spec="none", amp_level="O0", amp_dtype="float16", pretrained=None,
                checkpoint_path=None, use_ema=False, new_classifier=False, **model_args):
    """The model of a training run, ready for its optimizer (see the module docstring): create_model with its
    initial weights (pretrained or checkpoint_path, use_ema: the checkpoint's EMA weights, new_classifier: a fresh
    classifier where the weights' num_classes differs), then freeze_spec and amp_level applied."""
    check_model_options(model, pretrained, checkpoint_path, amp_level, amp_dtype, model_args)
    net = create_model(model, pretrained=pretrained or False, checkpoint_path=checkpoint_path,
                       num_classes=num_classes, new_classifier=True if new_classifier else None, use_ema=use_ema,
                       **model_args)
    if pretrained or checkpoint_path:
        LOG.info("initial weights from %s%s", checkpoint_path or f"the {model} weights published by {pretrained}",
                 " (its EMA weights)" if use_ema else "")
    freeze(net, freeze_spec, model)
    if amp_level != "O0":
        ms.amp.auto_mixed_precision(net, amp_level, dtype=AMP_DTYPES[amp_dtype])
        if ms.get_context("device_target") == "CPU":
            LOG.warning("amp_level %s runs %s kernels, which are slow (float16) or missing (bfloat16) on CPU: "
                        "--amp_level O0 is the CPU setting", amp_level, amp_dtype)
    return net


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
            if hasattr(sub, "salt"):  # keyed dropout or drop path: off, as in eval mode
                sub.p = 0.0
    return cells


def describe(net, spec):
    """'N of M parameters train (...)' for the run's log (BatchNorm running statistics are not counted)."""
    total = sum(p.size for p in net.get_parameters() if not p.name.endswith(("moving_mean", "moving_variance")))
    training = sum(p.size for p in net.trainable_params())
    what = "" if spec == "none" else f" (freeze {spec}: the rest is frozen, with its BatchNorm statistics)"
    return f"{training:,} of {total:,} parameters train{what}"
