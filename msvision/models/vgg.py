"""VGG 11/13/16/19, with and without BatchNorm, from one layer table (torchvision layout and parameter names)."""
from mindspore import nn
from mindspore.common.initializer import Normal

from msvision.models.layers import conv2d
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


class VGG(nn.Cell):
    """VGG: conv features -> adaptive average pool to 7x7 -> 25088-4096-4096-classes MLP with dropout."""

    def __init__(self, depth, batch_norm=False, num_classes=1000, in_channels=3, drop_rate=0.5):
        super().__init__()
        layers = []
        channels = in_channels
        for item in LAYER_TABLE[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(conv2d(channels, item, 3, bias=True))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            channels = item
        self.features = nn.SequentialCell(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.num_features = 4096
        self.classifier = nn.SequentialCell([
            nn.Dense(channels * 7 * 7, 4096, weight_init=Normal(0.01)), nn.ReLU(), nn.Dropout(p=drop_rate),
            nn.Dense(4096, 4096, weight_init=Normal(0.01)), nn.ReLU(), nn.Dropout(p=drop_rate),
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
        if x.shape[2] != 7 or x.shape[3] != 7:  # at 224 px the features are 7x7 already
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


def _register(depth, batch_norm):
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"

    def build(**kwargs):
        return VGG(depth, batch_norm, **kwargs)

    build.__name__ = name
    build.__doc__ = f"VGG-{depth}{' with BatchNorm' if batch_norm else ''}."
    register_model(VGG_CFG)(build)


for _depth in LAYER_TABLE:
    for _bn in (False, True):
        _register(_depth, _bn)
