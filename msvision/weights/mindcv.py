"""MindCV VGG checkpoints: the one relaxed case of strict loading.

MindCV's VGG convolutions have no bias (MindSpore's `nn.Conv2d` default) and checkpoints saved while training also
hold optimizer and loss-scale entries. A zero bias is the same function exactly, so a file whose only differences
from the model are every conv bias absent and known MindCV training entries present loads with zero biases and
those entries dropped. Any other difference stays a strict, named mismatch.
"""
import logging

import numpy as np
import mindspore as ms

LOG = logging.getLogger("msvision")
TRAINING_ENTRIES = {"global_step", "learning_rate", "momentum", "scale_sense", "updates", "epoch_num", "step_num",
                    "loss_scale", "current_iterator_step", "last_overflow_iterator_step"}
TRAINING_PREFIXES = ("moments.", "accumulation.", "ema.")


def is_training_entry(name):
    return name in TRAINING_ENTRIES or name.startswith(TRAINING_PREFIXES)


def fill_mindcv_gaps(expected, weights, source):
    """expected: {name: Parameter} of the model; weights: {name: Parameter} read from a file.

    Returns the weights with zero conv biases and without MindCV training entries when the file matches the MindCV
    pattern exactly, else None (the caller reports the mismatch as usual).
    """
    conv_biases = {n for n, p in expected.items()
                   if n.endswith(".bias") and len(expected[n[:-len("bias")] + "weight"].shape) == 4}
    missing = set(expected) - set(weights)
    dropped = [n for n in weights if n not in expected]
    if not conv_biases or missing != conv_biases or not all(is_training_entry(n) for n in dropped):
        return None
    filled = {n: w for n, w in weights.items() if n in expected}
    for name in conv_biases:
        filled[name] = ms.Parameter(ms.Tensor(np.zeros(expected[name].shape, np.float32)), name=name)
    LOG.warning("%s: MindCV layout recognised: %d conv biases absent, filled with zeros; %d training entries "
                "dropped", source, len(conv_biases), len(dropped))
    return filled
