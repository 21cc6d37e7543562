"""Parameter and multiply-accumulate counts of a model at a given input size."""
import numpy as np
import mindspore as ms
from mindspore import nn


def count_params(net):
    """Number of trainable values."""
    return sum(p.size for p in net.trainable_params())


def _cell_macs(cell, output):
    if isinstance(cell, (nn.Conv2d, nn.Conv1d)):
        kernel = int(np.prod(cell.kernel_size))
        return output.size // output.shape[0] * (cell.in_channels // cell.group) * kernel
    if isinstance(cell, nn.Dense):
        return cell.in_channels * cell.out_channels
    return 0


def count_macs(net, image_size):
    """Multiply-accumulates of convolutions and dense layers for one image of image_size x image_size (PyNative)."""
    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    total = []
    handles = [cell.register_forward_hook(lambda c, _inputs, out: total.append(_cell_macs(c, out)))
               for _, cell in net.cells_and_names() if isinstance(cell, (nn.Conv2d, nn.Conv1d, nn.Dense))]
    try:
        net.set_train(False)
        net(ms.Tensor(np.zeros((1, 3, image_size, image_size), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        ms.set_context(mode=previous_mode)
    return sum(total)
