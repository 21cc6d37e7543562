"""Optimizer factory: SGD, Momentum or AdamW over a per-step LR array, optionally no decay on norms and biases and a
larger LR for the classifier (head_lr_scale).

opt -> MindSpore optimizer: `sgd` -> nn.SGD; `momentum` -> nn.Momentum (ApplyMomentum, faster than the SGD op and
bit-identical to torch's SGD with momentum), but with `nesterov: true` -> nn.SGD(nesterov=True): ApplyMomentum's
Nesterov update is not torch's (its first step moves by lr x g instead of lr x 1.9 g; 0.16 apart after 3 steps in
tests/test_step_parity.py), nn.SGD's equals it to float32 rounding; `adamw` -> nn.AdamWeightDecay.
"""
import numpy as np
import mindspore as ms
from mindspore import nn


def param_groups(args, params, lr_per_step, head_prefix=None):
    """Parameter groups, each with its weight decay and, for the classifier under head_lr_scale, its own LR array.

    With weight_decay_filter=norm_and_bias, 1-D parameters (BN, bias) get no decay; with disable every parameter is
    decayed (as torch does). The decay is always given per group: given as a plain float, MindSpore's optimizers
    silently skip parameters named *gamma* or *beta* (BatchNorm), which made the 1e100 recipe's step differ from
    torch's by 2e-3.
    """
    def decayed(param):
        return args.weight_decay_filter == "disable" or param.ndim > 1

    def in_head(param):
        return head_prefix is not None and args.head_lr_scale != 1.0 and param.name.startswith(head_prefix + ".")

    groups = []
    for head in (False, True):
        for decay in (True, False):
            members = [p for p in params if in_head(p) == head and decayed(p) == decay]
            if members:
                group = {"params": members, "weight_decay": args.weight_decay if decay else 0.0}
                if head:
                    group["lr"] = ms.Tensor(np.asarray(lr_per_step, np.float32) * args.head_lr_scale)
                groups.append(group)
    return groups + [{"order_params": params}]


def create_optimizer(args, params, lr_per_step, head_prefix=None):
    """Build the optimizer over params (the trainable ones) with a per-step LR array; parameters under head_prefix
    (the classifier) take head_lr_scale x that LR."""
    groups = param_groups(args, params, lr_per_step, head_prefix)
    learning_rate = ms.Tensor(lr_per_step)
    decay = 0.0  # given per group
    if args.opt == "adamw":
        return nn.AdamWeightDecay(groups, learning_rate, beta1=args.momentum, beta2=0.999, weight_decay=decay)
    if args.opt == "sgd" or (args.opt == "momentum" and args.nesterov):
        return nn.SGD(groups, learning_rate, momentum=args.momentum, nesterov=args.nesterov, weight_decay=decay)
    return nn.Momentum(groups, learning_rate, args.momentum, weight_decay=decay, use_nesterov=args.nesterov)
