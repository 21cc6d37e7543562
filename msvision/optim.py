"""Optimizer factory: SGD, Momentum or AdamW over a per-step LR array, optionally no decay on norms and biases.

opt -> MindSpore optimizer: `sgd` -> nn.SGD; `momentum` -> nn.Momentum (ApplyMomentum, faster than the SGD op and
bit-identical to torch's SGD with momentum), but with `nesterov: true` -> nn.SGD(nesterov=True): ApplyMomentum's
Nesterov update is not torch's (its first step moves by lr x g instead of lr x 1.9 g; 0.16 apart after 3 steps in
tests/test_step_parity.py), nn.SGD's equals it to float32 rounding; `adamw` -> nn.AdamWeightDecay.
"""
import mindspore as ms
from mindspore import nn


def create_optimizer(args, params, lr_per_step):
    """Build the optimizer; with weight_decay_filter=norm_and_bias, 1-D parameters (BN, bias) get no decay, with
    disable every parameter is decayed (as torch does).

    The decay is always given per parameter group: given as a plain float, MindSpore's optimizers silently skip
    parameters named *gamma* or *beta* (BatchNorm), which made the 1e100 recipe's step differ from torch's by 2e-3.
    """
    learning_rate = ms.Tensor(lr_per_step)
    if args.weight_decay_filter == "norm_and_bias":
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": args.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
                  {"order_params": params}]
    else:
        groups = [{"params": params, "weight_decay": args.weight_decay}]
    decay = 0.0  # given per group above
    if args.opt == "adamw":
        return nn.AdamWeightDecay(groups, learning_rate, beta1=args.momentum, beta2=0.999, weight_decay=decay)
    if args.opt == "sgd" or (args.opt == "momentum" and args.nesterov):
        return nn.SGD(groups, learning_rate, momentum=args.momentum, nesterov=args.nesterov, weight_decay=decay)
    return nn.Momentum(groups, learning_rate, args.momentum, weight_decay=decay, use_nesterov=args.nesterov)
