"""RepVGG's structural re-parameterisation: the fused copy of a trained net (each block one padded 3x3 conv with
bias)."""
import numpy as np
import mindspore as ms
from mindspore.nn.utils import no_init_parameters

from msvision.errors import MsvisionError
from msvision.models.layers import name_random_layers, unwrap_amp
from msvision.models.repvgg import FUSED_MARKER, RepVGG


def deployed(net):
    """The form a model in eval mode is deployed in: a train-form RepVGG's fused copy, any other model itself."""
    return reparameterize(net) if isinstance(net, RepVGG) else net


def reparameterize(net):
    """The fused copy of a RepVGG in eval mode: each block one padded 3x3 conv with bias (BatchNorm folded with its
    running statistics, the 1x1 kernel padded to 3x3, the identity as a 3x3 kernel), SE and classifier copied."""
    if not isinstance(net, RepVGG):
        raise MsvisionError(f"only RepVGG models have a fused form; {type(net).__name__} has none")
    if net.deploy:
        return net
    if net.training:
        raise MsvisionError("fuse a RepVGG in eval mode (net.set_train(False)): the fused conv holds the running "
                            "statistics, which train mode does not use")
    with no_init_parameters():  # every parameter is set below
        fused = name_random_layers(RepVGG(**net.arch, deploy=True))
    for block, target in zip(net.blocks(), fused.blocks()):
        kernel, bias = fused_kernel_bias(block)
        target.rbr_reparam.weight.set_data(ms.Tensor(kernel.astype(np.float32)))
        target.rbr_reparam.bias.set_data(ms.Tensor(bias.astype(np.float32)))
    trained = {p.name: p for p in net.get_parameters()}
    for param in fused.get_parameters():
        if FUSED_MARKER not in f".{param.name}":
            param.set_data(trained[param.name].value().copy())
    fused.set_train(False)
    fused.weights_source = getattr(net, "weights_source", None)
    return fused


def fused_kernel_bias(block):
    """The one 3x3 kernel and bias (float64) equal to a train-form block's branches with their running statistics."""
    kernel, bias = _fold(block.rbr_dense.conv.weight.asnumpy(), unwrap_amp(block.rbr_dense.bn))
    kernel_1x1, bias_1x1 = _fold(block.rbr_1x1.conv.weight.asnumpy(), unwrap_amp(block.rbr_1x1.bn))
    kernel[:, :, 1:2, 1:2] += kernel_1x1
    bias += bias_1x1
    if block.has_identity:
        channels = kernel.shape[0]
        per_group = kernel.shape[1]
        identity = np.zeros(kernel.shape)
        identity[np.arange(channels), np.arange(channels) % per_group, 1, 1] = 1.0
        kernel_id, bias_id = _fold(identity, unwrap_amp(block.rbr_identity))
        kernel += kernel_id
        bias += bias_id
    return kernel, bias


def _fold(kernel, bn):
    """(kernel * gamma / sigma, beta - mean * gamma / sigma) in float64, sigma = sqrt(running var + eps)."""
    scale = bn.gamma.asnumpy().astype(np.float64) / np.sqrt(bn.moving_variance.asnumpy().astype(np.float64) + bn.eps)
    shift = bn.beta.asnumpy().astype(np.float64) - bn.moving_mean.asnumpy().astype(np.float64) * scale
    return kernel.astype(np.float64) * scale[:, None, None, None], shift
