"""Parameter and multiply-accumulate counts of a model at a given input size, and the per-layer table an NPU budget is
read from (the on-chip memory of a chip that runs one conv or linear layer at a time)."""
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


def _forward_with_hooks(net, image_size, hook):
    """One PyNative forward of a zero image with hook(name, cell, output) after every conv and dense layer."""
    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    handles = [cell.register_forward_hook(lambda c, _inputs, out, name=name: hook(name, c, out))
               for name, cell in net.cells_and_names() if isinstance(cell, (nn.Conv2d, nn.Conv1d, nn.Dense))]
    try:
        net.set_train(False)
        net(ms.Tensor(np.zeros((1, 3, image_size, image_size), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        ms.set_context(mode=previous_mode)


def count_macs(net, image_size):
    """Multiply-accumulates of convolutions and dense layers for one image of image_size x image_size (PyNative)."""
    total = []
    _forward_with_hooks(net, image_size, lambda _name, cell, out: total.append(_cell_macs(cell, out)))
    return sum(total)


DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def layer_report(net, image_size, dtype="fp32"):
    """Per conv/linear layer (forward order) for one image: name, output shape, parameters, MACs and the on-chip
    bytes of a chip that runs one layer at a time: weights and bias at `dtype`, the accumulator output (int32 for
    int8, float32 otherwise) and that output converted to the next layer's input type (`dtype`). Returns
    {layers, params (all trainable, as count_params), layer_params, macs, max_onchip {name, bytes}, dtype}."""
    width = DTYPE_BYTES[dtype]
    layers = []

    def record(name, cell, out):
        params = sum(int(p.size) for p in cell.get_parameters())
        elements = int(out.size)
        row = dict(name=name, output_shape=list(out.shape[1:]), params=params, macs=int(_cell_macs(cell, out)),
                   weight_bytes=params * width, accumulator_bytes=elements * 4, output_bytes=elements * width)
        row["onchip_bytes"] = row["weight_bytes"] + row["accumulator_bytes"] + row["output_bytes"]
        layers.append(row)

    _forward_with_hooks(net, image_size, record)
    largest = max(layers, key=lambda row: row["onchip_bytes"])
    return dict(dtype=dtype, image_size=image_size, layers=layers, params=count_params(net),
                layer_params=sum(row["params"] for row in layers), macs=sum(row["macs"] for row in layers),
                max_onchip=dict(name=largest["name"], bytes=largest["onchip_bytes"]))
