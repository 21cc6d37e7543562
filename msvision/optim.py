"""Optimizer factory: SGD, Momentum or AdamW over a per-step LR array, optionally no decay on norms and biases."""
import mindspore as ms
from mindspore import nn


def create_optimizer(args, params, lr_per_step):
    """Build the optimizer; with weight_decay_filter=norm_and_bias, 1-D parameters (BN, bias) get no decay."""
    learning_rate = ms.Tensor(lr_per_step)
    if args.weight_decay_filter == "norm_and_bias" and args.weight_decay > 0:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": args.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
                  {"order_params": params}]
        decay = 0.0
    else:
        groups, decay = params, args.weight_decay
    if args.opt == "adamw":
        return nn.AdamWeightDecay(groups, learning_rate, beta1=args.momentum, beta2=0.999, weight_decay=decay)
    if args.opt == "sgd":
        return nn.SGD(groups, learning_rate, momentum=args.momentum, nesterov=args.nesterov, weight_decay=decay)
    return nn.Momentum(groups, learning_rate, args.momentum, weight_decay=decay, use_nesterov=args.nesterov)
