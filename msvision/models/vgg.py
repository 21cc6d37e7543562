"""VGG 11/13/16/19, with and without BatchNorm, from one layer table (torchvision layout and parameter names).

The `*_cifar` variants keep the same features and replace the ImageNet classifier (adaptive pool to 7x7, then a
25088-4096-4096 MLP) with the common CIFAR head: global average pool, dropout, one linear layer from 512 features.
At 32 px the features end at 1x1, so the ImageNet head would spend 120M parameters on 49 copies of one vector;
registered as models of their own because their checkpoints differ in shape and their pretrained cfg carries
CIFAR's input size and normalisation.
"""
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from msvision.models.layers import ACTIVATIONS, KeyedDropout, conv2d
from msvision.models.registry import PretrainedCfg, register_model

# Output channels per 3x3 conv; "M" is a 2x2 max-pool.
LAYER_TABLE = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

VGG_CFG = PretrainedCfg(interpolation="bilinear", first_conv="features.0", classifier="classifier.6",
                        source="torchvision")
CIFAR_CFG = PretrainedCfg(input_size=(3, 32, 32), crop_pct=1.0, interpolation="bilinear",
                          mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), num_classes=10,
                          first_conv="features.0", classifier="classifier", source="torchvision features, CIFAR head")


class VGG(nn.Cell):
    """VGG: conv features -> adaptive average pool to 7x7 -> 25088-4096-4096-classes MLP with dropout."""

    def __init__(self, depth, batch_norm=False, num_classes=1000, in_channels=3, drop_rate=0.5, cifar_head=False,
                 act_layer="relu"):
        super().__init__()
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
        if x.shape[2] != 7 or x.shape[3] != 7:  # at 224 px the features are 7x7 already
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


def _register(depth, batch_norm, cifar):
    name = f"vgg{depth}{'_bn' if batch_norm else ''}{'_cifar' if cifar else ''}"

    def build(**kwargs):
        kwargs.setdefault("drop_rate", 0.0 if cifar else 0.5)
        return VGG(depth, batch_norm, cifar_head=cifar, **kwargs)

    build.__name__ = name
    build.__doc__ = f"VGG-{depth}{' with BatchNorm' if batch_norm else ''}{', CIFAR head' if cifar else ''}."
    register_model(CIFAR_CFG if cifar else VGG_CFG)(build)


for _depth in LAYER_TABLE:
    for _bn in (False, True):
        for _cifar in (False, True):
            _register(_depth, _bn, _cifar)
