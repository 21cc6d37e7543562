"""PyTorch references for the parity, gradient and step tests: a model of each family with random weights, its
gradients in float64 (the truth) and float32, finite differences, and the same weights in msvision."""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

from msvision.models import create_model
from msvision.models._factory import msvision_state_dict
from msvision.train.step import NetWithLoss
from tests.ref_1e100 import Reference1e100

# msvision name -> (reference library, reference name): one member of each family
FAMILIES = {
    "vgg11_bn": ("torchvision", "vgg11_bn"),
    "vgg11_bn_cifar": ("torchvision", "vgg11_bn_cifar"),  # the same features, the 512-to-classes head
    "vovnet39a": ("timm", "vovnet39a"),  # V1: no residual, no attention
    "ese_vovnet19b_dw": ("timm", "ese_vovnet19b_dw"),  # V2, depthwise
    "eca_vovnet39b": ("timm", "eca_vovnet39b"),  # V2, ECA
    "vovnet19": ("1e100", "vovnet19"),  # padded pools in every stage, ESE in every block
}


def randomise_batchnorm(torch, model, seed=0):
    """Random BN affine parameters and running statistics, so that a BN mapping mistake changes the results."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) * 0.4 - 0.2)
    return model


def random_reference(torch_reference, library, name, num_classes=1000, seed=0, dropout=None):
    """A reference model with random weights and randomised BatchNorm, in eval mode (dropout=0 removes it)."""
    torch, timm, tv_models = torch_reference
    torch.manual_seed(seed)
    if library == "timm":
        model = timm.create_model(name, num_classes=num_classes)
    elif library == "torchvision" and name.endswith("_cifar"):  # msvision's *_cifar head on torchvision features
        model = getattr(tv_models, name[:-len("_cifar")])(num_classes=num_classes)
        model.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        model.classifier = torch.nn.Linear(512, num_classes)  # msvision's dropout before it: the tests use rate 0
    elif library == "torchvision":
        model = getattr(tv_models, name)(num_classes=num_classes)
    else:
        model = Reference1e100(name, num_classes=num_classes)
    if dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
    return randomise_batchnorm(torch, model, seed).eval()


def torch_state(model):
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def msvision_twin(name, library, reference, **model_args):
    """The msvision model holding the reference's weights (float32), without dropout: the reference's state dict
    saved with torch.save and loaded by create_model, as a user's PyTorch file is."""
    return create_model(name, checkpoint_path=reference_file(reference), source=library, drop_rate=0.0, **model_args)


def reference_file(model):
    """A reference model's state dict in a temporary .pth file (removed at exit)."""
    import atexit
    import os
    import tempfile

    import torch

    handle, path = tempfile.mkstemp(suffix=".pth")
    os.close(handle)
    atexit.register(os.remove, path)
    torch.save(model.state_dict(), path)
    return path


def torch_loss_and_grads(torch, model, images, labels, train, dtype):
    """Cross-entropy loss and {name: gradient} of a copy of model in dtype (BN in train or eval mode)."""
    import copy

    model = copy.deepcopy(model).to(dtype)
    model.train(train)
    loss = torch.nn.functional.cross_entropy(model(torch.tensor(images, dtype=dtype)), torch.tensor(labels))
    loss.backward()
    return float(loss.detach()), {k: p.grad.double().numpy() for k, p in model.named_parameters()}


def finite_difference(torch, model64, images, labels, train, param_name, index, step=1e-7):
    """Central finite difference of the float64 loss with respect to one element of one parameter.

    The step is small because a larger one moves some activation across a ReLU or pooling kink (at 1e-6 the first
    conv of vovnet39a was 3e-3 off; at 1e-7 it equals the analytic float64 gradient to 1e-9).
    """
    model64.train(train)
    param = dict(model64.named_parameters())[param_name]
    x, y = torch.tensor(images, dtype=torch.float64), torch.tensor(labels)
    values = []
    with torch.no_grad():
        original = param.view(-1)[index].item()
        for delta in (step, -step):
            param.view(-1)[index] = original + delta
            values.append(float(torch.nn.functional.cross_entropy(model64(x), y)))
        param.view(-1)[index] = original
    return (values[0] - values[1]) / (2 * step)


class LossAndGrads(nn.Cell):
    """(loss, gradients of every trainable parameter) in one graph."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net_with_loss = NetWithLoss(net, nn.CrossEntropyLoss())
        self.weights = ms.ParameterTuple(net.trainable_params())
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, images, labels):
        return self.net_with_loss(images, labels), self.grad(self.net_with_loss, self.weights)(images, labels)


def msvision_loss_and_grads(net, images, labels, train):
    net.set_train(train)
    loss, grads = LossAndGrads(net)(ms.Tensor(images), ms.Tensor(labels.astype(np.int32)))
    return float(loss.asnumpy()), {p.name: g.asnumpy().astype(np.float64)
                                   for p, g in zip(net.trainable_params(), grads)}


def in_msvision_names(torch_named, name, library, net):
    """Torch-named arrays (e.g. gradients) under msvision's parameter names and shapes."""
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    return msvision_state_dict(name, torch_named, library, shapes, np.float64)


def torch_names_of(net, name, library, model):
    """{msvision parameter name: the reference's parameter name}."""
    tagged = {k: np.full(tuple(p.shape), i, np.float32) for i, (k, p) in enumerate(model.named_parameters())}
    keys = list(tagged)
    return {k: keys[int(v.flat[0])] for k, v in in_msvision_names(tagged, name, library, net).items()}


def worst_relative(ours, reference):
    """{name: max |ours - reference| / max |reference|} over the names of ours.

    A tensor whose reference gradient is zero up to float64 rounding (a conv bias before a train-mode BatchNorm:
    the batch mean removes it) has no relative error: it is measured against the largest gradient of the model.
    """
    largest = max(np.abs(v).max() for v in reference.values())
    errors = {}
    for key in ours:
        scale = np.abs(reference[key]).max()
        errors[key] = float(np.abs(ours[key] - reference[key]).max() / (scale if scale > 1e-12 * largest else largest))
    return errors
