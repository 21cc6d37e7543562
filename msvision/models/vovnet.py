"""VoVNet V1/V2 (timm's variants) and the 1e100 trainer's VoVNet-19/27-slim/39/57/99, from one config dict.

Parameter paths follow timm (stem.N, stages.N.blocks.N.conv_mid.N, conv_concat, attn, head.fc) for every variant.
The 1e100 family differs from timm in three places, all expressed in its config: the stem's last conv has stride 1,
every stage (the first too) opens with a padded 3x3/2 max-pool, and every block (not only a stage's last) has ESE.
"""
from mindspore import nn, ops

from msvision.models.layers import (ClassifierHead, ConvBnAct, EcaAttention, EffectiveSE, KeyedDropPath,
                                    MaxPool3x3s2, SeparableConvBnAct)
from msvision.models.registry import PretrainedCfg, register_model

_WIDE = dict(stage_conv_chs=(128, 160, 192, 224), stage_out_chs=(256, 512, 768, 1024))
_SLIM = dict(stage_conv_chs=(64, 80, 96, 112), stage_out_chs=(112, 256, 384, 512))
_TIMM = dict(stem_chs=(64, 64, 128), stem_strides=(2, 1, 2), depthwise=False, residual=True, attn="ese",
             attn_every_block=False, pool_first_stage=False, padded_pool=False, drop_rate=0.0, source="timm")
_1E100 = dict(_TIMM, stem_strides=(2, 1, 1), pool_first_stage=True, padded_pool=True, attn_every_block=True,
              drop_rate=0.2, source="1e100")

MODEL_CFGS = {
    # timm: V1 (no residual, no attention) and V2 ("b": residual + effective SE, or ECA)
    "vovnet39a": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 2, 2), residual=False, attn=""),
    "vovnet57a": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 4, 3), residual=False, attn=""),
    "ese_vovnet19b_slim_dw": dict(_TIMM, **_SLIM, stem_chs=(64, 64, 64), layer_per_block=3,
                                  block_per_stage=(1, 1, 1, 1), depthwise=True),
    "ese_vovnet19b_dw": dict(_TIMM, **_WIDE, stem_chs=(64, 64, 64), layer_per_block=3, block_per_stage=(1, 1, 1, 1),
                             depthwise=True),
    "ese_vovnet19b_slim": dict(_TIMM, **_SLIM, layer_per_block=3, block_per_stage=(1, 1, 1, 1)),
    "ese_vovnet19b": dict(_TIMM, **_WIDE, layer_per_block=3, block_per_stage=(1, 1, 1, 1)),
    "ese_vovnet39b": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 2, 2)),
    "ese_vovnet57b": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 4, 3)),
    "ese_vovnet99b": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 3, 9, 3)),
    "eca_vovnet39b": dict(_TIMM, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 2, 2), attn="eca"),
    # 1e100 trainer (published ImageNet top-1: 19 72.01, 27_slim 73.07, 39 78.82, 57 79.63)
    "vovnet19": dict(_1E100, stage_conv_chs=(64, 80, 96, 112), stage_out_chs=(128, 256, 348, 512),
                     layer_per_block=3, block_per_stage=(1, 1, 1, 1)),
    "vovnet27_slim": dict(_1E100, stage_conv_chs=(64, 80, 96, 112), stage_out_chs=(128, 256, 348, 512),
                          layer_per_block=5, block_per_stage=(1, 1, 1, 1)),
    "vovnet39": dict(_1E100, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 2, 2)),
    "vovnet57": dict(_1E100, **_WIDE, layer_per_block=5, block_per_stage=(1, 1, 4, 3)),
    "vovnet99": dict(_1E100, **_WIDE, layer_per_block=5, block_per_stage=(1, 3, 9, 3)),
}

_HEAD = dict(first_conv="stem.0.conv", classifier="head.fc")
PRETRAINED_CFGS = {
    name: PretrainedCfg(**_HEAD, source="timm") if cfg["source"] == "timm"
    else PretrainedCfg(**_HEAD, interpolation="bilinear", source="1e100")
    for name, cfg in MODEL_CFGS.items()
}
PRETRAINED_CFGS["ese_vovnet57b"] = PretrainedCfg(**_HEAD, input_size=(3, 256, 256), crop_pct=0.95,
                                                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), source="timm")


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
        stem_chs, strides = cfg["stem_chs"], cfg["stem_strides"]
        later_stem = SeparableConvBnAct if cfg["depthwise"] else ConvBnAct
        self.stem = nn.SequentialCell([
            ConvBnAct(in_channels, stem_chs[0], 3, strides[0], act_layer=act_layer),
            later_stem(stem_chs[0], stem_chs[1], 3, strides[1], act_layer=act_layer),
            later_stem(stem_chs[1], stem_chs[2], 3, strides[2], act_layer=act_layer),
        ])
        in_chs = stem_chs[2]
        stages = []
        blocks = sum(cfg["block_per_stage"])  # block i of N drops with rate drop_path_rate * i / (N - 1), as timm
        rates = [drop_path_rate * i / max(blocks - 1, 1) for i in range(blocks)]
        for i in range(4):
            first = sum(cfg["block_per_stage"][:i])
            stages.append(OsaStage(in_chs, cfg["stage_conv_chs"][i], cfg["stage_out_chs"][i],
                                   cfg["block_per_stage"][i], cfg["layer_per_block"],
                                   downsample=i > 0 or cfg["pool_first_stage"], padded_pool=cfg["padded_pool"],
                                   residual=cfg["residual"], depthwise=cfg["depthwise"], attn=cfg["attn"],
                                   attn_every_block=cfg["attn_every_block"], act_layer=act_layer,
                                   drop_paths=rates[first:first + cfg["block_per_stage"][i]]))
            in_chs = cfg["stage_out_chs"][i]
        self.stages = nn.SequentialCell(stages)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, cfg["drop_rate"] if drop_rate is None else drop_rate)

    def stage_cells(self):
        """The stages in forward order, the stem with the first: what `freeze: N` counts."""
        stages = list(self.stages.cell_list)
        return [[self.stem, stages[0]]] + [[stage] for stage in stages[1:]]

    def construct(self, x):
        return self.head(self.stages(self.stem(x)))


def _register(name):
    def build(**kwargs):
        return VoVNet(MODEL_CFGS[name], **kwargs)

    build.__name__ = name
    build.__doc__ = f"VoVNet variant '{name}' ({PRETRAINED_CFGS[name].source})."
    register_model(PRETRAINED_CFGS[name])(build)


for _name in MODEL_CFGS:
    _register(_name)
