"""Optimizer factory over a per-step LR array, optionally no decay on norms and biases and a larger LR for the
classifier (head_lr_scale). Adam, RMSprop, Lamb and Lars are msvision's (rules.py: the PyTorch / timm step).

opt -> MindSpore optimizer: `sgd` -> nn.SGD; `momentum` -> nn.Momentum (ApplyMomentum, faster than the SGD op and
bit-identical to torch's SGD with momentum), but with `nesterov: true` -> nn.SGD(nesterov=True): ApplyMomentum's
Nesterov update is not torch's (its first step moves by lr x g instead of lr x 1.9 g), nn.SGD's equals it to
float32 rounding; `adamw` -> nn.AdamWeightDecay.
"""
import numpy as np
import mindspore as ms
from mindspore import nn

from msvision.errors import MsvisionError
from msvision.optim import rules


def param_groups(params, lr, weight_decay=0.0, weight_decay_filter="norm_and_bias", head_prefix=None,
                 head_lr_scale=1.0, decay_exempt=()):
    """Parameter groups, each with its weight decay and, for the classifier under head_lr_scale, its own LR.

    With weight_decay_filter=norm_and_bias, 1-D parameters (BN, bias) get no decay; with disable every parameter is
    decayed (as torch does). Parameters whose names end with one of decay_exempt get none either (RepVGG's branch
    kernels under its custom L2). The decay is always given per group: given as a plain float, MindSpore's optimizers
    silently skip parameters named *gamma* or *beta* (BatchNorm).
    """
    def decayed(param):
        if decay_exempt and param.name.endswith(tuple(decay_exempt)):
            return False
        return weight_decay_filter == "disable" or param.ndim > 1

    def in_head(param):
        return head_prefix is not None and head_lr_scale != 1.0 and param.name.startswith(head_prefix + ".")

    groups = []
    for head in (False, True):
        for decay in (True, False):
            members = [p for p in params if in_head(p) == head and decayed(p) == decay]
            if members:
                group = {"params": members, "weight_decay": weight_decay if decay else 0.0}
                if head:
                    group["lr"] = _lr(np.asarray(lr, np.float32) * head_lr_scale)
                groups.append(group)
    return groups + [{"order_params": params}]


def _lr(lr):
    """MindSpore's learning rate: a float, or a Tensor of one value per optimizer step."""
    return float(lr) if np.ndim(lr) == 0 else ms.Tensor(np.asarray(lr, np.float32))


def create_optimizer(net_or_params, opt="momentum", lr=0.1, weight_decay=1e-4, momentum=0.9, nesterov=False,
                     betas=None, eps=None, rmsprop_alpha=0.99, lars_coefficient=0.001, lars_eps=1e-8,
                     weight_decay_filter="norm_and_bias", head_prefix=None, head_lr_scale=1.0, decay_exempt=()):
    """The optimizer `opt` over a net's trainable parameters (or a list of parameters).

    lr: one value, or one per optimizer step (a schedule, optim/schedule.py). betas: beta1, beta2 of adam, lamb and
    adamw (default 0.9, 0.999; adamw's beta1 is momentum). eps: default 1e-8 (lamb and adamw 1e-6). Parameters under
    head_prefix (the classifier) take head_lr_scale x the LR; names ending with one of decay_exempt get no decay."""
    params = net_or_params.trainable_params() if isinstance(net_or_params, nn.Cell) else list(net_or_params)
    groups = param_groups(params, lr, weight_decay, weight_decay_filter, head_prefix, head_lr_scale, decay_exempt)
    learning_rate = _lr(lr)
    if opt == "adamw":
        beta1, beta2 = betas or [momentum, 0.999]
        return nn.AdamWeightDecay(groups, learning_rate, beta1=beta1, beta2=beta2, eps=eps or 1e-6, weight_decay=0.0)
    if opt == "adam":
        return rules.Adam(groups, learning_rate, betas or [0.9, 0.999], eps or 1e-8)
    if opt == "rmsprop":
        return rules.RMSprop(groups, learning_rate, rmsprop_alpha, momentum, eps or 1e-8)
    if opt == "lamb":
        return rules.Lamb(groups, learning_rate, betas or [0.9, 0.999], eps or 1e-6)
    if opt == "lars":
        return rules.Lars(groups, learning_rate, momentum, nesterov, lars_coefficient, lars_eps)
    if opt == "sgd" or (opt == "momentum" and nesterov):
        return nn.SGD(groups, learning_rate, momentum=momentum, nesterov=nesterov, weight_decay=0.0)
    if opt == "momentum":
        return nn.Momentum(groups, learning_rate, momentum, weight_decay=0.0, use_nesterov=nesterov)
    raise MsvisionError(f"unknown optimizer '{opt}' (expected sgd, momentum, adamw, adam, rmsprop, lamb or lars)")
