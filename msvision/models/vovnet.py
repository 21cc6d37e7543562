"""VoVNet V1/V2 (timm's variants) and the 1e100 trainer's VoVNet-19/27-slim/39/57/99, from one config table.

Parameter paths follow timm (stem.N, stages.N.blocks.N.conv_mid.N, conv_concat, attn, head.fc) for every variant.
The 1e100 family differs from timm in three places, all expressed in its config: the stem's last conv has stride 1,
every stage (the first too) opens with a padded 3x3/2 max-pool, and every block (not only a stage's last) has ESE.
"""
import dataclasses
import re
from typing import Tuple

from mindspore import nn, ops

from msvision.models._registry import PretrainedCfg, register_model
from msvision.models.layers import (ClassifierHead, ConvBnAct, EcaAttention, EffectiveSE, KeyedDropPath,
                                    MaxPool3x3s2, SeparableConvBnAct, replace_cell)
from msvision.weights.hub import e100_file, timm_file


@dataclasses.dataclass(frozen=True)
class VoVNetCfg:
    """A VoVNet's shape. The defaults are timm's V2 ("b") form: stem strides 2-1-2, residual OSA blocks, effective
    SE on a stage's last block, no pool before the first stage, unpadded ceil-mode pools, no classifier dropout."""
    stem_chs: Tuple[int, int, int]
    stage_conv_chs: Tuple[int, int, int, int]
    stage_out_chs: Tuple[int, int, int, int]
    layer_per_block: int
    block_per_stage: Tuple[int, int, int, int]
    stem_strides: Tuple[int, int, int] = (2, 1, 2)
    depthwise: bool = False
    residual: bool = True
    attn: str = "ese"  # ese, eca or "" (none)
    attn_every_block: bool = False
    pool_first_stage: bool = False
    padded_pool: bool = False
    drop_rate: float = 0.0


WIDE_CONV, WIDE_OUT = (128, 160, 192, 224), (256, 512, 768, 1024)
SLIM_CONV, SLIM_OUT = (64, 80, 96, 112), (112, 256, 384, 512)
# the 1e100 trainer: stride-1 last stem conv, a padded pool before every stage, ESE in every block, dropout 0.2
E100 = dict(stem_strides=(2, 1, 1), pool_first_stage=True, padded_pool=True, attn_every_block=True, drop_rate=0.2)

VOVNET_CFGS = {
    # timm V1: no residual, no attention
    "vovnet39a": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 2, 2), residual=False, attn=""),
    "vovnet57a": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 4, 3), residual=False, attn=""),
    # timm V2
    "ese_vovnet19b_slim_dw": VoVNetCfg((64, 64, 64), SLIM_CONV, SLIM_OUT, 3, (1, 1, 1, 1), depthwise=True),
    "ese_vovnet19b_dw": VoVNetCfg((64, 64, 64), WIDE_CONV, WIDE_OUT, 3, (1, 1, 1, 1), depthwise=True),
    "ese_vovnet19b_slim": VoVNetCfg((64, 64, 128), SLIM_CONV, SLIM_OUT, 3, (1, 1, 1, 1)),
    "ese_vovnet19b": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 3, (1, 1, 1, 1)),
    "ese_vovnet39b": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 2, 2)),
    "ese_vovnet57b": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 4, 3)),
    "ese_vovnet99b": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 3, 9, 3)),
    "eca_vovnet39b": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 2, 2), attn="eca"),
    # 1e100 (published ImageNet top-1: 19 72.01, 27_slim 73.07, 39 78.82, 57 79.63)
    "vovnet19": VoVNetCfg((64, 64, 128), SLIM_CONV, (128, 256, 348, 512), 3, (1, 1, 1, 1), **E100),
    "vovnet27_slim": VoVNetCfg((64, 64, 128), SLIM_CONV, (128, 256, 348, 512), 5, (1, 1, 1, 1), **E100),
    "vovnet39": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 2, 2), **E100),
    "vovnet57": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 1, 4, 3), **E100),
    "vovnet99": VoVNetCfg((64, 64, 128), WIDE_CONV, WIDE_OUT, 5, (1, 3, 9, 3), **E100),
}

_CONV_BN = {"0": "conv", "1": "bn"}


def _rename_1e100(key, positions):
    match = re.fullmatch(r"stem\.(\d+)\.([01])\.(\w+)", key)
    if match:
        return f"stem.{match[1]}.{_CONV_BN[match[2]]}.{match[3]}"
    match = re.fullmatch(r"body\.osa(\d+)\.(.+)", key)
    if match and int(match[1]) < len(positions):
        stage, block = positions[int(match[1])]
        rest = re.sub(r"^layers\.(\d+)\.([01])\.", lambda m: f"conv_mid.{m[1]}.{_CONV_BN[m[2]]}.", match[2])
        rest = re.sub(r"^exit_conv\.([01])\.", lambda m: f"conv_concat.{_CONV_BN[m[1]]}.", rest)
        rest = re.sub(r"^ese\.conv\.", "attn.fc.", rest)
        return f"stages.{stage}.blocks.{block}.{rest}"
    if key.startswith("classifier.3."):
        return "head.fc." + key[len("classifier.3."):]
    return key  # left as it is: the strict load names it as unexpected


def pretrained_filter_fn(state_dict, source, model_name):
    """timm's names are msvision's. The 1e100 trainer numbers its OSA blocks across stages (`body.osa<K>`) and
    indexes the parts of a conv-BN-ReLU (`{0: conv, 1: bn}`): block K is placed in its stage by the model's block
    counts."""
    if source != "1e100":
        return dict(state_dict)
    positions = [(stage, block) for stage, count in enumerate(VOVNET_CFGS[model_name].block_per_stage)
                 for block in range(count)]
    return {_rename_1e100(k, positions): v for k, v in state_dict.items()}


TIMM_CFG = PretrainedCfg(first_conv="stem.0.conv", classifier="head.fc", source="timm",
                         filter_fn=pretrained_filter_fn)
TIMM_256_CFG = dataclasses.replace(TIMM_CFG, input_size=(3, 256, 256), crop_pct=0.95, mean=(0.5, 0.5, 0.5),
                                   std=(0.5, 0.5, 0.5))
E100_CFG = dataclasses.replace(TIMM_CFG, interpolation="bilinear", source="1e100")


class OsaBlock(nn.Cell):
    """One-shot aggregation: chained 3x3 convs, concat(input, every output), 1x1 conv, attention, drop path (timm's
    place: on the block's output, before the residual), residual."""

    def __init__(self, in_chs, mid_chs, out_chs, layer_per_block, residual, depthwise, attn, act_layer="relu",
                 drop_path=0.0):
        super().__init__()
        self.residual = residual
        self.conv_reduction = None
        if depthwise and in_chs != mid_chs:
            self.conv_reduction = ConvBnAct(in_chs, mid_chs, 1, act_layer=act_layer)
        layers = []
        next_in = mid_chs if self.conv_reduction is not None else in_chs
        for _ in range(layer_per_block):
            layers.append(SeparableConvBnAct(mid_chs, mid_chs, act_layer=act_layer) if depthwise
                          else ConvBnAct(next_in, mid_chs, 3, act_layer=act_layer))
            next_in = mid_chs
        self.conv_mid = nn.CellList(layers)
        self.conv_concat = ConvBnAct(in_chs + layer_per_block * mid_chs, out_chs, 1, act_layer=act_layer)
        self.attn = {"ese": EffectiveSE, "eca": EcaAttention}[attn](out_chs) if attn else None
        self.drop_path = KeyedDropPath(drop_path) if drop_path > 0 else None

    def construct(self, x):
        outputs = [x]
        y = x if self.conv_reduction is None else self.conv_reduction(x)
        for layer in self.conv_mid:
            y = layer(y)
            outputs.append(y)
        y = self.conv_concat(ops.cat(outputs, axis=1))
        if self.attn is not None:
            y = self.attn(y)
        if self.drop_path is not None:
            y = self.drop_path(y)
        if self.residual:
            y = y + x
        return y


class OsaStage(nn.Cell):
    """An optional 3x3/2 max-pool followed by OSA blocks; only blocks after the first carry a residual."""

    def __init__(self, in_chs, mid_chs, out_chs, block_per_stage, layer_per_block, downsample, padded_pool,
                 residual, depthwise, attn, attn_every_block, act_layer="relu", drop_paths=None):
        super().__init__()
        pad_value = 0.0 if act_layer == "relu" else float("-inf")
        self.pool = MaxPool3x3s2(padded_pool, pad_value) if downsample else None
        blocks = []
        for i in range(block_per_stage):
            block_attn = attn if (attn_every_block or i == block_per_stage - 1) else ""
            blocks.append(OsaBlock(in_chs, mid_chs, out_chs, layer_per_block, residual and i > 0, depthwise,
                                   block_attn, act_layer, drop_paths[i] if drop_paths else 0.0))
            in_chs = out_chs
        self.blocks = nn.SequentialCell(blocks)

    def construct(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return self.blocks(x)


class VoVNet(nn.Cell):
    """Stem of three convs, four OSA stages, global-pool classifier head."""

    def __init__(self, cfg, num_classes=1000, in_channels=3, drop_rate=None, drop_path_rate=0.0, act_layer="relu"):
        super().__init__()
        stem_chs, strides = cfg.stem_chs, cfg.stem_strides
        later_stem = SeparableConvBnAct if cfg.depthwise else ConvBnAct
        self.stem = nn.SequentialCell([
            ConvBnAct(in_channels, stem_chs[0], 3, strides[0], act_layer=act_layer),
            later_stem(stem_chs[0], stem_chs[1], 3, strides[1], act_layer=act_layer),
            later_stem(stem_chs[1], stem_chs[2], 3, strides[2], act_layer=act_layer),
        ])
        in_chs = stem_chs[2]
        stages = []
        blocks = sum(cfg.block_per_stage)  # block i of N drops with rate drop_path_rate * i / (N - 1), as timm
        rates = [drop_path_rate * i / max(blocks - 1, 1) for i in range(blocks)]
        for i in range(4):
            first = sum(cfg.block_per_stage[:i])
            stages.append(OsaStage(in_chs, cfg.stage_conv_chs[i], cfg.stage_out_chs[i],
                                   cfg.block_per_stage[i], cfg.layer_per_block,
                                   downsample=i > 0 or cfg.pool_first_stage, padded_pool=cfg.padded_pool,
                                   residual=cfg.residual, depthwise=cfg.depthwise, attn=cfg.attn,
                                   attn_every_block=cfg.attn_every_block, act_layer=act_layer,
                                   drop_paths=rates[first:first + cfg.block_per_stage[i]]))
            in_chs = cfg.stage_out_chs[i]
        self.stages = nn.SequentialCell(stages)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, cfg.drop_rate if drop_rate is None else drop_rate)

    def get_classifier(self):
        """The last linear layer (what a fine-tuning run replaces)."""
        return self.head.fc

    def reset_classifier(self, num_classes):
        """A new, freshly initialised last linear layer for num_classes."""
        replace_cell(self, "head.fc", nn.Dense(self.num_features, num_classes))

    def stage_cells(self):
        """The stages in forward order, the stem with the first: what `freeze: N` counts."""
        stages = list(self.stages.cell_list)
        return [[self.stem, stages[0]]] + [[stage] for stage in stages[1:]]

    def construct(self, x):
        return self.head(self.stages(self.stem(x)))


@register_model(TIMM_CFG)
def vovnet39a(**kwargs):
    """VoVNet-39 V1 (timm: no residual, no attention)."""
    return VoVNet(VOVNET_CFGS["vovnet39a"], **kwargs)


@register_model(TIMM_CFG)
def vovnet57a(**kwargs):
    """VoVNet-57 V1 (timm)."""
    return VoVNet(VOVNET_CFGS["vovnet57a"], **kwargs)


@register_model(TIMM_CFG)
def ese_vovnet19b_slim_dw(**kwargs):
    """VoVNet-19 V2 slim, depthwise (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet19b_slim_dw"], **kwargs)


@register_model(TIMM_CFG, weights=(timm_file("ese_vovnet19b_dw", "ra_in1k"),))
def ese_vovnet19b_dw(**kwargs):
    """VoVNet-19 V2, depthwise (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet19b_dw"], **kwargs)


@register_model(TIMM_CFG)
def ese_vovnet19b_slim(**kwargs):
    """VoVNet-19 V2 slim (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet19b_slim"], **kwargs)


@register_model(TIMM_CFG)
def ese_vovnet19b(**kwargs):
    """VoVNet-19 V2 (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet19b"], **kwargs)


@register_model(TIMM_CFG, weights=(timm_file("ese_vovnet39b", "ra_in1k"),))
def ese_vovnet39b(**kwargs):
    """VoVNet-39 V2, effective SE (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet39b"], **kwargs)


@register_model(TIMM_256_CFG, weights=(timm_file("ese_vovnet57b", "ra4_e3600_r256_in1k"),))
def ese_vovnet57b(**kwargs):
    """VoVNet-57 V2, effective SE (timm; weights at 256 px)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet57b"], **kwargs)


@register_model(TIMM_CFG)
def ese_vovnet99b(**kwargs):
    """VoVNet-99 V2, effective SE (timm)."""
    return VoVNet(VOVNET_CFGS["ese_vovnet99b"], **kwargs)


@register_model(TIMM_CFG)
def eca_vovnet39b(**kwargs):
    """VoVNet-39 V2, ECA attention (timm)."""
    return VoVNet(VOVNET_CFGS["eca_vovnet39b"], **kwargs)


@register_model(E100_CFG, weights=(e100_file("vovnet19-72.03-top1.pt", 12403432,
                                              "93b80e9cc54565feba698d01629e153e69a54e10397496425288f7db1d210700",
                                              72.011, 90.716),))
def vovnet19(**kwargs):
    """VoVNet-19 (1e100)."""
    return VoVNet(VOVNET_CFGS["vovnet19"], **kwargs)


@register_model(E100_CFG, weights=(e100_file("vovnet27-73.07-top1.pt", 15701456,
                                              "62d1982221d967039f3dae82ea8109ba6ce0196a2a43020ca37ec15a0e12ee1e",
                                              73.070, 91.580),))
def vovnet27_slim(**kwargs):
    """VoVNet-27 slim (1e100)."""
    return VoVNet(VOVNET_CFGS["vovnet27_slim"], **kwargs)


@register_model(E100_CFG, weights=(e100_file("vovnet39-78.82-top1.pt", 104964569,
                                              "cb7a1b90853a537f5fba9d30c8087f620cd29131a9638daabcb40181a2facca4",
                                              78.817, 94.265),))
def vovnet39(**kwargs):
    """VoVNet-39 (1e100)."""
    return VoVNet(VOVNET_CFGS["vovnet39"], **kwargs)


@register_model(E100_CFG, weights=(e100_file("vovnet57-79.63-top1.pt", 170114465,
                                              "a2fd0c66c62c60948270a59895229e3832ebaf6658a55a54a5909407873be19c",
                                              79.63, 94.68),))
def vovnet57(**kwargs):
    """VoVNet-57 (1e100)."""
    return VoVNet(VOVNET_CFGS["vovnet57"], **kwargs)


@register_model(E100_CFG)
def vovnet99(**kwargs):
    """VoVNet-99 (1e100)."""
    return VoVNet(VOVNET_CFGS["vovnet99"], **kwargs)
