"""RepVGG (Ding et al., CVPR 2021): VGG-style stages of 3x3 blocks, trained with 3x3 + 1x1 + identity branches
(each with its BatchNorm) and folded for inference into one padded 3x3 conv with bias per block.

Structure and parameter paths follow the official code (DingXiaoH/RepVGG `repvgg.py`): stage0 (one block, width
min(64, int(64 a))), stage1..stage4 (widths int(64 a), int(128 a), int(256 a), int(512 b); the first block of each
stride 2), blocks `rbr_dense` / `rbr_1x1` (conv + bn) and `rbr_identity` (a BatchNorm where shapes allow) or, fused,
`rbr_reparam`; SE (D2se) as `se.down` / `se.up`, applied to the branch sum before the ReLU; `linear` classifier.
Grouped convolutions sit on the official layer indices (counted across stages from 1 at stage1's first block).
"""
import dataclasses
import re

from mindspore import nn, ops

from msvision.errors import MsvisionError
from msvision.models._registry import PretrainedCfg, register_model
from msvision.models.layers import KeyedDropout, conv2d, replace_cell, unwrap_amp
from msvision.weights.hub import mindcv_file, timm_file
from msvision.weights.mindcv import is_training_entry

# the layers the official g2 / g4 variants group: every second layer of stages 1-3 (B-series depths)
OPTIONAL_GROUP_LAYERS = tuple(range(2, 27, 2))
FUSED_MARKER = ".rbr_reparam."


class ConvBn(nn.Cell):
    """A branch: conv without bias, then BatchNorm."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, groups):
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels)

    def construct(self, x):
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Cell):
    """The official SE block: global mean -> 1x1 conv (down) -> ReLU -> 1x1 conv (up) -> sigmoid gate."""

    def __init__(self, channels, internal):
        super().__init__()
        self.down = conv2d(channels, internal, 1, bias=True)
        self.up = conv2d(internal, channels, 1, bias=True)
        self.relu = nn.ReLU()
        self.gate = nn.Sigmoid()

    def construct(self, x):
        return x * self.gate(self.up(self.relu(self.down(ops.mean(x, axis=(2, 3), keep_dims=True)))))


class RepVGGBlock(nn.Cell):
    """relu(se(bn(conv3x3(x)) + bn(conv1x1(x)) + bn(x))); fused (deploy): relu(se(conv3x3_with_bias(x)))."""

    def __init__(self, in_channels, out_channels, stride=1, groups=1, deploy=False, use_se=False):
        super().__init__()
        self.deploy = deploy
        self.groups = groups
        self.has_identity = in_channels == out_channels and stride == 1
        if deploy:
            self.rbr_reparam = conv2d(in_channels, out_channels, 3, stride, groups, bias=True)
        else:
            if self.has_identity:
                self.rbr_identity = nn.BatchNorm2d(in_channels)
            self.rbr_dense = ConvBn(in_channels, out_channels, 3, stride, groups)
            self.rbr_1x1 = ConvBn(in_channels, out_channels, 1, stride, groups)
        self.use_se = use_se
        if use_se:
            self.se = SqueezeExcite(out_channels, out_channels // 16)
        self.nonlinearity = nn.ReLU()

    def custom_l2(self):
        """The official "custom L2" of a train-form block: the 3x3 kernel's ring plus the equivalent centre point
        K3[c] t3 + K1 t1 normalised by (t3^2 + t1^2), t = gamma / sigma of the running statistics (held constant)."""
        dense, one = self.rbr_dense, self.rbr_1x1
        bn3, bn1 = unwrap_amp(dense.bn), unwrap_amp(one.bn)
        t3 = ops.stop_gradient(bn3.gamma / ops.sqrt(bn3.moving_variance + bn3.eps)).reshape(-1, 1, 1, 1)
        t1 = ops.stop_gradient(bn1.gamma / ops.sqrt(bn1.moving_variance + bn1.eps)).reshape(-1, 1, 1, 1)
        k3 = dense.conv.weight
        centre = k3[:, :, 1:2, 1:2]
        equivalent = centre * t3 + one.conv.weight * t1
        return (k3 ** 2).sum() - (centre ** 2).sum() + (equivalent ** 2 / (t3 ** 2 + t1 ** 2)).sum()

    def construct(self, x):
        if self.deploy:
            y = self.rbr_reparam(x)
        elif self.has_identity:
            y = self.rbr_dense(x) + self.rbr_1x1(x) + self.rbr_identity(x)
        else:
            y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.use_se:
            y = self.se(y)
        return self.nonlinearity(y)

def _group_map(override_groups, num_layers):
    """{layer index: groups} from an int (the official optional layers) or a mapping (its keys may be strings, as
    YAML and JSON give them)."""
    if not override_groups:
        return {}
    if isinstance(override_groups, int):
        return {layer: override_groups for layer in OPTIONAL_GROUP_LAYERS if layer <= num_layers}
    if not isinstance(override_groups, dict):
        raise MsvisionError(f"override_groups must be a number of groups or a mapping {{layer index: groups}}, got "
                            f"{override_groups!r}")
    groups = {}
    for layer, count in override_groups.items():
        if not str(layer).isdigit() or not 1 <= int(layer) <= num_layers or not isinstance(count, int) or count < 1:
            raise MsvisionError(f"override_groups entry {layer}: {count!r} is not a layer index in 1..{num_layers} "
                                f"with a positive number of groups")
        groups[int(layer)] = count
    return groups


class RepVGG(nn.Cell):
    """RepVGG: stage0 block, four stages of RepVGG blocks, global average pool, linear classifier.

    num_blocks: blocks per stage (4 numbers); width_multiplier: a, a, a, b of the paper (4 numbers);
    override_groups: groups of grouped layers, an int for the official layers (2, 4, ..., 26) or {layer: groups};
    deploy: build the fused form (one padded 3x3 conv with bias per block).
    """

    def __init__(self, num_blocks, width_multiplier, override_groups=None, use_se=False, deploy=False,
                 num_classes=1000, in_channels=3, drop_rate=0.0, act_layer="relu", drop_path_rate=0.0):
        super().__init__()
        for key, value in (("num_blocks", num_blocks), ("width_multiplier", width_multiplier)):
            if not isinstance(value, (list, tuple)) or len(value) != 4:
                raise MsvisionError(f"{key} must be a list of 4 numbers (one per stage), got {value!r}")
        if any(not isinstance(n, int) or n < 1 for n in num_blocks):
            raise MsvisionError(f"num_blocks must be 4 positive integers, got {list(num_blocks)}")
        if any(not isinstance(a, (int, float)) or a <= 0 for a in width_multiplier):
            raise MsvisionError(f"width_multiplier must be 4 positive numbers, got {list(width_multiplier)}")
        if act_layer != "relu" or drop_path_rate:
            raise MsvisionError("RepVGG folds into plain 3x3 convs with ReLU: act_layer must be relu and "
                                "drop_path_rate 0")
        groups = _group_map(override_groups, sum(num_blocks))
        self.arch = dict(num_blocks=list(num_blocks), width_multiplier=list(width_multiplier),
                         override_groups=groups, use_se=use_se, num_classes=num_classes, in_channels=in_channels,
                         drop_rate=drop_rate)
        self.deploy = deploy
        widths = [int(64 * width_multiplier[0]), int(128 * width_multiplier[1]), int(256 * width_multiplier[2]),
                  int(512 * width_multiplier[3])]
        planes = min(64, widths[0])
        self.stage0 = RepVGGBlock(in_channels, planes, 2, 1, deploy, use_se)
        layer = 1
        for index, (width, count) in enumerate(zip(widths, num_blocks), start=1):
            blocks = []
            for block in range(count):
                layer_groups = groups.get(layer, 1)
                if planes % layer_groups or width % layer_groups:
                    raise MsvisionError(f"override_groups: layer {layer} has {planes} -> {width} channels, not "
                                        f"divisible into {layer_groups} groups")
                blocks.append(RepVGGBlock(planes, width, 2 if block == 0 else 1, layer_groups, deploy, use_se))
                planes = width
                layer += 1
            setattr(self, f"stage{index}", nn.SequentialCell(blocks))
        self.num_features = planes
        self.drop = KeyedDropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.linear = nn.Dense(planes, num_classes)

    def blocks(self):
        """Every RepVGG block, stage0 first."""
        return [self.stage0] + [b for i in range(1, 5) for b in getattr(self, f"stage{i}").cell_list]

    def stage_cells(self):
        """The stages in forward order, stage0 with the first: what `freeze: N` counts."""
        return [[self.stage0, self.stage1], [self.stage2], [self.stage3], [self.stage4]]

    def custom_l2(self):
        """The official "custom L2" summed over the blocks: a train step adds weight_decay / 2 x this to the loss
        in place of plain decay on the branch kernels (option repvgg_custom_l2)."""
        total = self.stage0.custom_l2()
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            for block in stage:
                total = total + block.custom_l2()
        return total

    def get_classifier(self):
        return self.linear

    def reset_classifier(self, num_classes):
        replace_cell(self, "linear", nn.Dense(self.num_features, num_classes))
        self.arch["num_classes"] = num_classes

    def construct(self, x):
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))
        return self.linear(self.drop(ops.mean(x, axis=(2, 3))))


# timm's byobnet names -> the official ones
_TIMM_NAMES = ((r"^stem\.", "stage0."), (r"^stages\.(\d+)\.", lambda m: f"stage{int(m[1]) + 1}."),
               (r"\.conv_kxk\.", ".rbr_dense."), (r"\.conv_1x1\.", ".rbr_1x1."), (r"\.identity\.", ".rbr_identity."),
               (r"\.reparam_conv\.", ".rbr_reparam."), (r"\.attn\.fc1\.", ".se.down."), (r"\.attn\.fc2\.", ".se.up."),
               (r"^head\.fc\.", "linear."))
# MindCV's branches are SequentialCells (0: conv, 1: bn) and its SE has timm's names
_MINDCV_NAMES = ((r"\.(rbr_dense|rbr_1x1)\.0\.", r".\1.conv."), (r"\.(rbr_dense|rbr_1x1)\.1\.", r".\1.bn."),
                 (r"\.se\.conv_reduce\.", ".se.down."), (r"\.se\.conv_expand\.", ".se.up."))


def _renamed(key, rules):
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def pretrained_filter_fn(state_dict, source, model_name):
    """The official names are msvision's (a plain rename of the leaves); timm's and MindCV's renamed to them, MindCV
    training entries dropped."""
    if source == "timm":
        return {_renamed(k, _TIMM_NAMES): v for k, v in state_dict.items()}
    if source == "mindcv":
        return {_renamed(k, _MINDCV_NAMES): v for k, v in state_dict.items() if not is_training_entry(k)}
    if source == "1e100":
        raise MsvisionError(f"1e100 weights are VoVNets; '{model_name}' is a RepVGG")
    return dict(state_dict)


def fused_form(names):
    """True when weight names hold the fused (deploy) form."""
    return any(FUSED_MARKER in f".{name}" for name in names)


REPVGG_CFG = PretrainedCfg(interpolation="bilinear", first_conv="stage0.rbr_dense.conv", classifier="linear",
                           source="official (DingXiaoH)", filter_fn=pretrained_filter_fn,
                           fused_form=fused_form)
D2SE_CFG = dataclasses.replace(REPVGG_CFG, input_size=(3, 320, 320), crop_pct=1.0)
OFFICIAL_TOP1 = "official README / paper (ImageNet top-1, 120 epochs); timm's file holds the official weights"


def _published(name, top1, mindcv=None):
    """timm's copy of the official weights first, then MindCV's own training (its README's top-1)."""
    rows = [dataclasses.replace(timm_file(name, "rvgg_in1k"), top1=top1, published_at=OFFICIAL_TOP1)]
    if mindcv:
        rows.append(mindcv_file("repvgg", *mindcv))
    return rows


def _repvgg(model_args, **published):
    """A RepVGG of the published shape, which the caller's model_args may replace (a custom RepVGG)."""
    return RepVGG(**dict(published, **model_args))


A_DEPTHS, B_DEPTHS = [2, 4, 14, 1], [4, 6, 16, 1]


@register_model(REPVGG_CFG, weights=_published("repvgg_a0", 72.41, ("repvgg_a0-6e71139d.ckpt", 72.19)))
def repvgg_a0(**kwargs):
    """RepVGG-A0: blocks 2-4-14-1, widths 0.75 / 2.5."""
    return _repvgg(kwargs, num_blocks=A_DEPTHS, width_multiplier=[0.75, 0.75, 0.75, 2.5])


@register_model(REPVGG_CFG, weights=_published("repvgg_a1", 74.46, ("repvgg_a1-539513ac.ckpt", 74.19)))
def repvgg_a1(**kwargs):
    """RepVGG-A1: blocks 2-4-14-1, widths 1 / 2.5."""
    return _repvgg(kwargs, num_blocks=A_DEPTHS, width_multiplier=[1, 1, 1, 2.5])


@register_model(REPVGG_CFG, weights=_published("repvgg_a2", 76.48, ("repvgg_a2-cdc90b11.ckpt", 76.63)))
def repvgg_a2(**kwargs):
    """RepVGG-A2: blocks 2-4-14-1, widths 1.5 / 2.75."""
    return _repvgg(kwargs, num_blocks=A_DEPTHS, width_multiplier=[1.5, 1.5, 1.5, 2.75])


@register_model(REPVGG_CFG, weights=_published("repvgg_b0", 75.14, ("repvgg_b0-54d5862c.ckpt", 74.99)))
def repvgg_b0(**kwargs):
    """RepVGG-B0: blocks 4-6-16-1, widths 1 / 2.5."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[1, 1, 1, 2.5])


@register_model(REPVGG_CFG, weights=_published("repvgg_b1", 78.37, ("repvgg_b1-4673797.ckpt", 78.81)))
def repvgg_b1(**kwargs):
    """RepVGG-B1: blocks 4-6-16-1, widths 2 / 4."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[2, 2, 2, 4])


@register_model(REPVGG_CFG, weights=[mindcv_file("repvgg", "repvgg_b1g2-f0dc714f.ckpt", 78.03)])
def repvgg_b1g2(**kwargs):
    """RepVGG-B1g2: B1 with 2 groups on the official layers."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[2, 2, 2, 4], override_groups=2)


@register_model(REPVGG_CFG, weights=_published("repvgg_b1g4", None, ("repvgg_b1g4-bd93230e.ckpt", 77.64)))
def repvgg_b1g4(**kwargs):
    """RepVGG-B1g4: B1 with 4 groups on the official layers."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[2, 2, 2, 4], override_groups=4)


@register_model(REPVGG_CFG, weights=_published("repvgg_b2", None, ("repvgg_b2-7c91ccd4.ckpt", 79.29)))
def repvgg_b2(**kwargs):
    """RepVGG-B2: blocks 4-6-16-1, widths 2.5 / 5."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[2.5, 2.5, 2.5, 5])


@register_model(REPVGG_CFG, weights=_published("repvgg_b2g4", None, ("repvgg_b2g4-e79eeadd.ckpt", 78.8)))
def repvgg_b2g4(**kwargs):
    """RepVGG-B2g4: B2 with 4 groups on the official layers."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[2.5, 2.5, 2.5, 5], override_groups=4)


@register_model(REPVGG_CFG, weights=_published("repvgg_b3", None, ("repvgg_b3-30b35f52.ckpt", 80.46)))
def repvgg_b3(**kwargs):
    """RepVGG-B3: blocks 4-6-16-1, widths 3 / 5."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[3, 3, 3, 5])


@register_model(REPVGG_CFG, weights=_published("repvgg_b3g4", None))
def repvgg_b3g4(**kwargs):
    """RepVGG-B3g4: B3 with 4 groups on the official layers."""
    return _repvgg(kwargs, num_blocks=B_DEPTHS, width_multiplier=[3, 3, 3, 5], override_groups=4)


@register_model(D2SE_CFG, weights=_published("repvgg_d2se", None))
def repvgg_d2se(**kwargs):
    """RepVGG-D2se: blocks 8-14-24-1, widths 2.5 / 5, SE in every block (before the ReLU); evaluated at 320 px."""
    return _repvgg(kwargs, num_blocks=[8, 14, 24, 1], width_multiplier=[2.5, 2.5, 2.5, 5], use_se=True)
