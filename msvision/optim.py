"""Optimizer factory over a per-step LR array, optionally no decay on norms and biases and a larger LR for the
classifier (head_lr_scale). Adam, RMSprop, Lamb and Lars are msvision's (optimizers.py: the PyTorch / timm step).

opt -> MindSpore optimizer: `sgd` -> nn.SGD; `momentum` -> nn.Momentum (ApplyMomentum, faster than the SGD op and
bit-identical to torch's SGD with momentum), but with `nesterov: true` -> nn.SGD(nesterov=True): ApplyMomentum's
Nesterov update is not torch's (its first step moves by lr x g instead of lr x 1.9 g; 0.16 apart after 3 steps in
tests/test_step_parity.py), nn.SGD's equals it to float32 rounding; `adamw` -> nn.AdamWeightDecay.
"""
import numpy as np
import mindspore as ms
from mindspore import nn

from msvision import optimizers


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
    betas = args.opt_betas or [0.9, 0.999]
    if args.opt == "adamw":
        beta1, beta2 = (args.opt_betas or [args.momentum, 0.999])
        return nn.AdamWeightDecay(groups, learning_rate, beta1=beta1, beta2=beta2, eps=args.opt_eps or 1e-6,
                                  weight_decay=0.0)
    if args.opt == "adam":
        return optimizers.Adam(groups, learning_rate, betas, args.opt_eps or 1e-8)
    if args.opt == "rmsprop":
        return optimizers.RMSprop(groups, learning_rate, args.rmsprop_alpha, args.momentum, args.opt_eps or 1e-8)
    if args.opt == "lamb":
        return optimizers.Lamb(groups, learning_rate, betas, args.opt_eps or 1e-6)
    if args.opt == "lars":
        return optimizers.Lars(groups, learning_rate, args.momentum, args.nesterov, args.lars_coefficient,
                               args.lars_eps)
    if args.opt == "sgd" or (args.opt == "momentum" and args.nesterov):
        return nn.SGD(groups, learning_rate, momentum=args.momentum, nesterov=args.nesterov, weight_decay=0.0)
    return nn.Momentum(groups, learning_rate, args.momentum, weight_decay=0.0, use_nesterov=args.nesterov)
