"""Model zoo: registry behaviour, parameter counts against timm/torchvision and the issue's figures."""
import os
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest
from mindspore.nn.utils import no_init_parameters

import msvision
from msvision import MsvisionError
from tests.conftest import REPO_ROOT

TIMM_VARIANTS = ["vovnet39a", "vovnet57a", "ese_vovnet19b_slim_dw", "ese_vovnet19b_dw", "ese_vovnet19b_slim",
                 "ese_vovnet39b", "ese_vovnet57b", "ese_vovnet99b", "eca_vovnet39b"]
VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def trainable_count(name):
    """The trainable parameters of a model built without drawing its weights."""
    with no_init_parameters():
        return sum(p.size for p in msvision.create_model(name).trainable_params())


def reference_count(torch, build):
    """The parameters of a PyTorch model built on the meta device (shapes only)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def test_every_family_member_is_registered():
    names = msvision.list_models()
    for name in TIMM_VARIANTS + VGG_NAMES + ["vovnet19", "vovnet27_slim", "vovnet39", "vovnet57", "vovnet99"]:
        assert name in names
    assert msvision.list_models("vgg*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def test_unknown_model_names_close_matches():
    with pytest.raises(MsvisionError, match="unknown model 'vgg161'.*vgg16"):
        msvision.create_model("vgg161")
    with pytest.raises(MsvisionError, match="ese_vovnet39b"):
        msvision.get_pretrained_cfg("ese_vovnet39")


@pytest.mark.parametrize("name,millions", [("vgg11", 132.86), ("vgg13", 133.05), ("vgg16", 138.36),
                                           ("vgg19", 143.67)])
def test_vgg_parameter_counts(name, millions):
    assert round(trainable_count(name) / 1e6, 2) == millions


@pytest.mark.parametrize("name", TIMM_VARIANTS)
def test_vovnet_parameter_count_equals_timm(torch_reference, name):
    torch, timm, _ = torch_reference
    assert trainable_count(name) == reference_count(torch, lambda: timm.create_model(name))


@pytest.mark.parametrize("name", VGG_NAMES)
def test_vgg_parameter_count_equals_torchvision(torch_reference, name):
    torch, _, tv_models = torch_reference
    assert trainable_count(name) == reference_count(torch, getattr(tv_models, name))


def test_1e100_structure():
    """Stem 64-64-128 with strides 2,1,1; a padded max-pool opens every stage; ESE in every block."""
    net = msvision.create_model("vovnet39")
    strides = [cell.conv.stride[-1] for cell in net.stem]
    assert strides == [2, 1, 1]
    stages = list(net.stages)
    assert all(stage.pool is not None for stage in stages)
    blocks = [block for stage in stages for block in stage.blocks]
    assert len(blocks) == 6 and all(block.attn is not None for block in blocks)
    assert [block.residual for block in blocks] == [False, False, False, True, False, True]
    assert [stage.blocks[0].conv_concat.conv.out_channels for stage in stages] == [256, 512, 768, 1024]
    slim = msvision.create_model("vovnet27_slim")
    assert [len(stage.blocks[0].conv_mid) for stage in slim.stages] == [5, 5, 5, 5]
    assert [stage.blocks[0].conv_concat.conv.out_channels for stage in slim.stages] == [128, 256, 348, 512]
    assert [len(s.blocks) for s in msvision.create_model("vovnet99").stages] == [1, 3, 9, 3]
    # 72 px: stem /2 -> 36, then four padded 3x3/2 pools 18, 9, 5, 3 (timm's unpadded ceil pools give 4 at the end)
    net.set_train(False)
    feats = net.stages(net.stem(ms.Tensor(np.zeros((1, 3, 72, 72), np.float32))))
    assert feats.shape == (1, 1024, 3, 3)


def test_pretrained_cfgs_follow_timm(torch_reference):
    _, timm, _ = torch_reference
    for name in TIMM_VARIANTS:
        ours, theirs = msvision.get_pretrained_cfg(name), timm.models.get_pretrained_cfg(name)
        assert ours.input_size == tuple(theirs.input_size)
        assert ours.crop_pct == theirs.crop_pct and ours.interpolation == theirs.interpolation
        assert ours.mean == tuple(theirs.mean) and ours.std == tuple(theirs.std)
        assert ours.first_conv == theirs.first_conv and ours.classifier == theirs.classifier
    cfg = msvision.get_pretrained_cfg("ese_vovnet57b")
    assert cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.input_size[-1] == 256 and cfg.crop_pct == 0.95


@pytest.mark.parametrize("name", ["vgg16", "ese_vovnet19b_dw", "vovnet19"])
def test_small_and_large_inputs_work(name):
    net = msvision.create_model(name, num_classes=7)
    net.set_train(False)
    for size in (32, 96):
        assert net(ms.Tensor(np.zeros((1, 3, size, size), np.float32))).shape == (1, 7)


@pytest.mark.slow
def test_user_onednn_value_is_kept():
    code = "import os, msvision; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="SSE41")
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "SSE41"
    env.pop("ONEDNN_MAX_CPU_ISA")
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "AVX2"


@pytest.mark.slow
def test_model_table_cli():
    out = subprocess.run([sys.executable, "-m", "msvision.models", "--pattern", "vgg1[16]"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"vgg11", "vgg16"}
    assert rows["vgg16"][1] == "138.36" and 15.0 < float(rows["vgg16"][2]) < 15.8 and rows["vgg16"][3] == "224"


@pytest.mark.parametrize("size", [8, 9, 16, 17])
def test_stage_pool_matches_padded_and_ceil_max_pool(size):
    from mindspore import nn

    from msvision.models.layers import MaxPool3x3s2
    x = ms.Tensor(np.abs(np.random.default_rng(size).standard_normal((2, 3, size, size))).astype(np.float32))
    padded = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)(x).asnumpy()
    ceil = nn.MaxPool2d(3, 2, pad_mode="pad", padding=0, ceil_mode=True)(x).asnumpy()
    assert np.array_equal(MaxPool3x3s2(padded=True)(x).asnumpy(), padded)
    assert np.array_equal(MaxPool3x3s2(padded=False)(x).asnumpy(), ceil)


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "ceil"])
def test_stage_pool_input_gradient_in_both_modes(padded):
    """The gradient reaching the pool's input equals MindSpore's own padded / ceil pool, in GRAPH and PYNATIVE mode
    (a list filled with insert() once compiled to a zero gradient in GRAPH mode only)."""
    from mindspore import nn, ops

    from msvision.models.layers import MaxPool3x3s2

    class InputGrad(nn.Cell):
        def __init__(self, net):
            super().__init__()
            self.net, self.grad = net, ops.GradOperation(sens_param=True)

        def construct(self, x, sens):
            return self.grad(self.net)(x, sens)

    rng = np.random.default_rng(0)
    x = ms.Tensor(np.abs(rng.standard_normal((2, 3, 16, 16))).astype(np.float32))
    sens = ms.Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    builtin = nn.MaxPool2d(3, 2, pad_mode="pad", padding=int(padded), ceil_mode=not padded)
    for mode in (ms.GRAPH_MODE, ms.PYNATIVE_MODE):
        ms.set_context(mode=mode)
        ours, expected = InputGrad(MaxPool3x3s2(padded))(x, sens).asnumpy(), InputGrad(builtin)(x, sens).asnumpy()
        assert np.abs(expected).sum() > 0 and np.array_equal(ours, expected), mode
