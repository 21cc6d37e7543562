"""A PyTorch VoVNet with the 1e100 trainer's module layout, written for the tests from the facts of its vovnet.py.

Layout facts (1e100 `vovnet_v2/vovnet.py`): `stem.{0,1,2}` are conv3x3 -> BN -> ReLU with strides 2, 1, 1 and
64, 64, 128 channels; `body.osa<K>` numbers the blocks of all stages in order, a block that downsamples (the first
of each stage) opens with a 3x3/2 max-pool padded by 1 and has no residual, the others add their input; every block
has `layers.<j>` (conv3x3 -> BN -> ReLU, each `{0: conv, 1: bn}`), `exit_conv` (1x1, same form) and `ese.conv`
(1x1 with bias, hard-sigmoid gate); the classifier is pool, flatten, dropout, `classifier.3` linear.
"""
import torch
from torch import nn

# (inner channels, layers per block, output channels, blocks per stage)
STAGES = {
    "vovnet19": [(64, 3, 128, 1), (80, 3, 256, 1), (96, 3, 348, 1), (112, 3, 512, 1)],
    "vovnet27_slim": [(64, 5, 128, 1), (80, 5, 256, 1), (96, 5, 348, 1), (112, 5, 512, 1)],
    "vovnet39": [(128, 5, 256, 1), (160, 5, 512, 1), (192, 5, 768, 2), (224, 5, 1024, 2)],
    "vovnet57": [(128, 5, 256, 1), (160, 5, 512, 1), (192, 5, 768, 4), (224, 5, 1024, 3)],
    "vovnet99": [(128, 5, 256, 1), (160, 5, 512, 3), (192, 5, 768, 9), (224, 5, 1024, 3)],
}


def conv_bn_relu(in_ch, out_ch, kernel_size=3, stride=1):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


class Ese(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.gate = nn.ReLU6()

    def forward(self, x):
        return x * self.gate(self.conv(x.mean((2, 3), keepdim=True)) + 3.0) / 6.0


class Osa(nn.Module):
    def __init__(self, in_ch, inner_ch, repeats, out_ch, downsample):
        super().__init__()
        self.downsample = downsample
        self.pool = nn.MaxPool2d(3, 2, 1) if downsample else None
        self.layers = nn.ModuleList(conv_bn_relu(in_ch if j == 0 else inner_ch, inner_ch) for j in range(repeats))
        self.exit_conv = conv_bn_relu(in_ch + repeats * inner_ch, out_ch, 1)
        self.ese = Ese(out_ch)

    def forward(self, x):
        y = self.pool(x) if self.downsample else x
        features = [y]
        for layer in self.layers:
            features.append(layer(features[-1]))
        y = self.ese(self.exit_conv(torch.cat(features, 1)))
        return y if self.downsample else y + x


class Reference1e100(nn.Module):
    def __init__(self, name, num_classes=1000, dropout=0.0):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 64, 3, 2), conv_bn_relu(64, 64), conv_bn_relu(64, 128))
        blocks, in_ch = {}, 128
        for inner_ch, repeats, out_ch, count in STAGES[name]:
            for i in range(count):
                blocks[f"osa{len(blocks)}"] = Osa(in_ch, inner_ch, repeats, out_ch, downsample=i == 0)
                in_ch = out_ch
        self.body = nn.Sequential()
        for key, block in blocks.items():
            self.body.add_module(key, block)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(in_ch, num_classes))

    def forward(self, x):
        return self.classifier(self.body(self.stem(x)))
