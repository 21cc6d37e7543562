"""VGG 11/13/16/19, with and without BatchNorm, from one layer table (torchvision layout and parameter names).

The `*_cifar` variants keep the same features and replace the ImageNet classifier (adaptive pool to 7x7, then a
25088-4096-4096 MLP) with the common CIFAR head: global average pool, dropout, one linear layer from 512 features.
At 32 px the features end at 1x1, so the ImageNet head would spend 120M parameters on 49 copies of one vector;
registered as models of their own because their checkpoints differ in shape and their pretrained cfg carries
CIFAR's input size and normalisation.
"""
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from msvision.errors import MsvisionError
from msvision.models._registry import PretrainedCfg, register_model
from msvision.models.layers import ACTIVATIONS, KeyedDropout, conv2d, replace_cell
from msvision.weights.hub import mindcv_file, timm_file, torchvision_file

# Output channels per 3x3 conv; "M" is a 2x2 max-pool.
LAYER_TABLE = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# timm's VGG keeps torchvision's features and writes the first two classifier layers as a conv MLP (pre_logits)
TIMM_HEAD = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}


def pretrained_filter_fn(state_dict, source, model_name):
    """torchvision's VGG names are msvision's; timm's renamed back (its conv-MLP head) and MindCV's are read as they
    are (a MindSpore checkpoint)."""
    if source == "1e100":
        raise MsvisionError(f"1e100 weights are VoVNets; '{model_name}' is not a VoVNet (expected one of vovnet19, "
                            f"vovnet27_slim, vovnet39, vovnet57, vovnet99)")
    if source != "timm":
        return dict(state_dict)
    renamed = {}
    for key, value in state_dict.items():
        module, leaf = key.rsplit(".", 1)
        renamed[f"{TIMM_HEAD.get(module, module)}.{leaf}"] = value
    return renamed


VGG_CFG = PretrainedCfg(interpolation="bilinear", first_conv="features.0", classifier="classifier.6",
                        source="torchvision", filter_fn=pretrained_filter_fn)
CIFAR_CFG = PretrainedCfg(input_size=(3, 32, 32), crop_pct=1.0, interpolation="bilinear",
                          mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), num_classes=10,
                          first_conv="features.0", classifier="classifier", source="torchvision features, CIFAR head",
                          filter_fn=pretrained_filter_fn)


def _published(name, digest, top1, top5, *more):
    """torchvision's file (sha256 prefix in its name, ImageNet-1K acc@1 / acc@5) first, then timm's copy of it."""
    return (torchvision_file(name, digest, top1, top5), timm_file(name, "tv_in1k")) + more


class VGG(nn.Cell):
    """VGG: conv features -> adaptive average pool to 7x7 -> 25088-4096-4096-classes MLP with dropout."""

    def __init__(self, depth, batch_norm=False, num_classes=1000, in_channels=3, drop_rate=0.5, cifar_head=False,
                 act_layer="relu", drop_path_rate=0.0):
        super().__init__()
        if drop_path_rate:
            raise MsvisionError(f"drop_path_rate is for the VoVNets (residual blocks); VGG-{depth} has none: set it "
                                f"to 0")
        act = ACTIVATIONS[act_layer]
        layers = []
        channels = in_channels
        for item in LAYER_TABLE[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(conv2d(channels, item, 3, bias=True))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(act())
            channels = item
        self.features = nn.SequentialCell(layers)
        self.cifar_head = cifar_head
        if cifar_head:
            self.num_features = channels
            self.drop = KeyedDropout(drop_rate) if drop_rate > 0 else nn.Identity()
            self.classifier = nn.Dense(channels, num_classes)
            return
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.num_features = 4096
        self.classifier = nn.SequentialCell([
            nn.Dense(channels * 7 * 7, 4096, weight_init=Normal(0.01)), act(), KeyedDropout(drop_rate),
            nn.Dense(4096, 4096, weight_init=Normal(0.01)), act(), KeyedDropout(drop_rate),
            nn.Dense(4096, num_classes, weight_init=Normal(0.01)),
        ])

    def get_classifier(self):
        """The last linear layer (what a fine-tuning run replaces)."""
        return self.classifier if self.cifar_head else self.classifier[6]

    def reset_classifier(self, num_classes):
        """A new, freshly initialised last linear layer for num_classes."""
        if self.cifar_head:
            replace_cell(self, "classifier", nn.Dense(self.num_features, num_classes))
        else:
            replace_cell(self, "classifier.6", nn.Dense(4096, num_classes, weight_init=Normal(0.01)))

    def stage_cells(self):
        """The conv blocks in forward order (each ends with its max-pool): what `freeze: N` counts."""
        blocks, current = [], []
        for cell in self.features.cell_list:
            current.append(cell)
            if isinstance(cell, nn.MaxPool2d):
                blocks.append(current)
                current = []
        return blocks

    def construct(self, x):
        x = self.features(x)
        if self.cifar_head:
            return self.classifier(self.drop(ops.mean(x, axis=(2, 3))))
        if x.shape[2] == 1 and x.shape[3] == 1:  # 32-63 px: the 7x7 average of one value is 49 copies of it
            x = ops.tile(x, (1, 1, 7, 7))  # (and exports to ONNX, which MindSpore's adaptive pool does not)
        elif x.shape[2] != 7 or x.shape[3] != 7:  # at 224 px the features are 7x7 already
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


@register_model(VGG_CFG, weights=_published("vgg11", "8a719046", 69.02, 88.628))
def vgg11(**kwargs):
    """VGG-11."""
    return VGG(11, batch_norm=False, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg11_bn", "6002323d", 70.37, 89.81))
def vgg11_bn(**kwargs):
    """VGG-11 with BatchNorm."""
    return VGG(11, batch_norm=True, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg13", "19584684", 69.928, 89.246,
                                                   mindcv_file("vgg", "vgg13-7756f33c-910v2.ckpt", 72.81)))
def vgg13(**kwargs):
    """VGG-13."""
    return VGG(13, batch_norm=False, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg13_bn", "abd245e5", 71.586, 90.374))
def vgg13_bn(**kwargs):
    """VGG-13 with BatchNorm."""
    return VGG(13, batch_norm=True, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg16", "397923af", 71.592, 90.382))
def vgg16(**kwargs):
    """VGG-16."""
    return VGG(16, batch_norm=False, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg16_bn", "6c64b313", 73.36, 91.516))
def vgg16_bn(**kwargs):
    """VGG-16 with BatchNorm."""
    return VGG(16, batch_norm=True, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg19", "dcbb9e9d", 72.376, 90.876,
                                                   mindcv_file("vgg", "vgg19-5104d1ea-910v2.ckpt", 75.24)))
def vgg19(**kwargs):
    """VGG-19."""
    return VGG(19, batch_norm=False, **kwargs)


@register_model(VGG_CFG, weights=_published("vgg19_bn", "c79401a0", 74.218, 91.842))
def vgg19_bn(**kwargs):
    """VGG-19 with BatchNorm."""
    return VGG(19, batch_norm=True, **kwargs)


@register_model(CIFAR_CFG)
def vgg11_cifar(drop_rate=0.0, **kwargs):
    """VGG-11 features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(11, batch_norm=False, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg11_bn_cifar(drop_rate=0.0, **kwargs):
    """VGG-11 with BatchNorm features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(11, batch_norm=True, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg13_cifar(drop_rate=0.0, **kwargs):
    """VGG-13 features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(13, batch_norm=False, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg13_bn_cifar(drop_rate=0.0, **kwargs):
    """VGG-13 with BatchNorm features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(13, batch_norm=True, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg16_cifar(drop_rate=0.0, **kwargs):
    """VGG-16 features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(16, batch_norm=False, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg16_bn_cifar(drop_rate=0.0, **kwargs):
    """VGG-16 with BatchNorm features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(16, batch_norm=True, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg19_cifar(drop_rate=0.0, **kwargs):
    """VGG-19 features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(19, batch_norm=False, cifar_head=True, drop_rate=drop_rate, **kwargs)


@register_model(CIFAR_CFG)
def vgg19_bn_cifar(drop_rate=0.0, **kwargs):
    """VGG-19 with BatchNorm features, CIFAR head (no dropout unless drop_rate)."""
    return VGG(19, batch_norm=True, cifar_head=True, drop_rate=drop_rate, **kwargs)
