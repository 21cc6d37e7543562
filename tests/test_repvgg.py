"""RepVGG: the official structure's parameter counts, the fused form equal to the train form (against a float64
reference written here with torch.nn.functional), and the official, timm and MindCV files loading with logit parity."""
import glob
import json
import os
import re

import numpy as np
import mindspore as ms
import pytest
from mindspore.nn.utils import no_init_parameters

import msvision
from msvision import MsvisionError, create_model, reparameterize
from msvision.weights.io import CONFIG_KEY, read_checkpoint
from tests.conftest import REPO_ROOT, error_line, latest_checkpoint, relative_difference, run_cli, tiny_run

PAPER_VARIANTS = ["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b1g2", "repvgg_b1g4",
                  "repvgg_b2", "repvgg_b2g4", "repvgg_b3", "repvgg_b3g4"]
# The official definitions (DingXiaoH/RepVGG repvgg.py): blocks per stage, width multipliers, groups on the layers
# 2, 4, ..., 26, SE in every block (D2se, internal width C // 16).
OFFICIAL = {
    "repvgg_a0": ([2, 4, 14, 1], [0.75, 0.75, 0.75, 2.5], 1, False),
    "repvgg_a1": ([2, 4, 14, 1], [1, 1, 1, 2.5], 1, False),
    "repvgg_a2": ([2, 4, 14, 1], [1.5, 1.5, 1.5, 2.75], 1, False),
    "repvgg_b0": ([4, 6, 16, 1], [1, 1, 1, 2.5], 1, False),
    "repvgg_b1": ([4, 6, 16, 1], [2, 2, 2, 4], 1, False),
    "repvgg_b1g2": ([4, 6, 16, 1], [2, 2, 2, 4], 2, False),
    "repvgg_b1g4": ([4, 6, 16, 1], [2, 2, 2, 4], 4, False),
    "repvgg_b2": ([4, 6, 16, 1], [2.5, 2.5, 2.5, 5], 1, False),
    "repvgg_b2g4": ([4, 6, 16, 1], [2.5, 2.5, 2.5, 5], 4, False),
    "repvgg_b3": ([4, 6, 16, 1], [3, 3, 3, 5], 1, False),
    "repvgg_b3g4": ([4, 6, 16, 1], [3, 3, 3, 5], 4, False),
    "repvgg_d2se": ([8, 14, 24, 1], [2.5, 2.5, 2.5, 5], 1, True),
}
# The paper's Table (parameters of the fused form, millions, 2 decimals as printed: truncated)
PAPER_FUSED_M = {"repvgg_a0": 8.30, "repvgg_a1": 12.78, "repvgg_a2": 25.49, "repvgg_b0": 14.33, "repvgg_b1": 51.82,
                 "repvgg_b1g2": 41.36, "repvgg_b1g4": 36.12, "repvgg_b2": 80.31, "repvgg_b2g4": 55.77,
                 "repvgg_b3": 110.96, "repvgg_b3g4": 75.62}
# timm 1.0.31's train-form models (sum of parameters of timm.create_model(name), read once on this machine)
TIMM_TRAIN = {"repvgg_a0": 9108968, "repvgg_b1g4": 39966056, "repvgg_d2se": 133334836}


def official_counts(num_blocks, width_multiplier, groups, use_se, num_classes=1000):
    """(train, fused) parameter counts by the official definition's arithmetic: per block of c_in -> c_out with g
    groups, 3x3 and 1x1 kernels of c_out x c_in / g, a BatchNorm (gamma, beta) after each and one on the identity
    where c_in == c_out and stride 1; fused: one 3x3 kernel and a bias; SE: two 1x1 convs with biases."""
    widths = [int(64 * width_multiplier[0]), int(128 * width_multiplier[1]), int(256 * width_multiplier[2]),
              int(512 * width_multiplier[3])]
    layers = [(3, min(64, widths[0]), 2, 1)]
    c_in, index = layers[0][1], 1
    for width, count in zip(widths, num_blocks):
        for block in range(count):
            g = groups if groups > 1 and index % 2 == 0 and index <= 26 else 1
            layers.append((c_in, width, 2 if block == 0 else 1, g))
            c_in, index = width, index + 1
    train = fused = 0
    for c_in, c_out, stride, g in layers:
        kernels = c_out * (c_in // g)
        se = 2 * c_out * (c_out // 16) + c_out // 16 + c_out if use_se else 0
        identity = 2 * c_in if c_in == c_out and stride == 1 else 0
        train += 9 * kernels + kernels + 2 * 2 * c_out + identity + se
        fused += 9 * kernels + c_out + se
    head = widths[3] * num_classes + num_classes
    return train + head, fused + head


def param_count(net):
    return sum(p.size for p in net.trainable_params())


def test_parameter_counts_of_every_variant_in_both_forms():
    assert sorted(OFFICIAL) == msvision.list_models("repvgg*")
    for name, (blocks, widths, groups, use_se) in OFFICIAL.items():
        train, fused = official_counts(blocks, widths, groups, use_se)
        with no_init_parameters():  # counts only: the weights are never drawn
            assert param_count(create_model(name)) == train, name
            assert param_count(create_model(name, deploy=True)) == fused, name
        if name in PAPER_FUSED_M:
            assert int(fused / 1e4) / 100 == PAPER_FUSED_M[name], name
        if name in TIMM_TRAIN:
            assert train == TIMM_TRAIN[name], name


def test_custom_depths_and_widths_count_layers_across_stages():
    """A custom RepVGG from model_args; groups on the official layer indices (counted across stages), which for odd
    stage lengths differ from a per-stage count."""
    args = dict(num_blocks=[3, 3, 2, 1], width_multiplier=[0.5, 0.5, 0.5, 1], override_groups=2)
    with no_init_parameters():
        net = create_model("repvgg_a0", num_classes=89, **args)
    assert param_count(net) == official_counts([3, 3, 2, 1], [0.5, 0.5, 0.5, 1], 2, False, 89)[0]
    assert [b.groups for b in net.blocks()] == [1, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert net.get_classifier().out_channels == 89


def randomize_statistics(net, seed, weights=False):
    """BatchNorm statistics and affine parameters away from their initial values (what a trained net has); with
    weights, the kernels too (normal, variance 1 / fan-in; biases 0), so a net built without drawn weights runs."""
    rng = np.random.default_rng(seed)
    for param in net.get_parameters():
        low_high = {"moving_mean": (-0.5, 0.5), "moving_variance": (0.5, 2.0), "gamma": (0.5, 1.5),
                    "beta": (-0.3, 0.3)}.get(param.name.rsplit(".", 1)[-1])
        if low_high:
            param.set_data(ms.Tensor(rng.uniform(*low_high, param.shape).astype(np.float32)))
        elif weights and param.name.endswith("weight"):
            fan_in = int(np.prod(param.shape[1:]))
            param.set_data(ms.Tensor(rng.standard_normal(param.shape, np.float32) / np.sqrt(fan_in)))
        elif weights and param.name.endswith("bias"):
            param.set_data(ms.Tensor(np.zeros(param.shape, np.float32)))


def float64_logits(net, images, torch):
    """The train form's eval forward in float64, written from the paper's formulas with torch.nn.functional."""
    functional = torch.nn.functional
    weights = {p.name: torch.from_numpy(p.asnumpy().astype(np.float64)) for p in net.get_parameters()}

    def bn(prefix, x):
        return functional.batch_norm(x, weights[f"{prefix}.moving_mean"], weights[f"{prefix}.moving_variance"],
                                     weights[f"{prefix}.gamma"], weights[f"{prefix}.beta"], False, 0.0, 1e-5)

    prefixes = ["stage0"] + [f"stage{s}.{i}" for s in range(1, 5) for i in range(len(getattr(net, f"stage{s}")))]
    x = torch.from_numpy(images.astype(np.float64))
    for prefix in prefixes:
        kernel = weights[f"{prefix}.rbr_dense.conv.weight"]
        groups = x.shape[1] // kernel.shape[1]
        stride = 2 if prefix == "stage0" or prefix.endswith(".0") else 1
        y = bn(f"{prefix}.rbr_dense.bn", functional.conv2d(x, kernel, stride=stride, padding=1, groups=groups))
        y = y + bn(f"{prefix}.rbr_1x1.bn", functional.conv2d(x, weights[f"{prefix}.rbr_1x1.conv.weight"],
                                                             stride=stride, groups=groups))
        if f"{prefix}.rbr_identity.gamma" in weights:
            y = y + bn(f"{prefix}.rbr_identity", x)
        if f"{prefix}.se.down.weight" in weights:
            squeezed = functional.conv2d(y.mean((2, 3), keepdim=True), weights[f"{prefix}.se.down.weight"],
                                         weights[f"{prefix}.se.down.bias"])
            y = y * torch.sigmoid(functional.conv2d(torch.relu(squeezed), weights[f"{prefix}.se.up.weight"],
                                                    weights[f"{prefix}.se.up.bias"]))
        x = torch.relu(y)
    return functional.linear(x.mean((2, 3)), weights["linear.weight"], weights["linear.bias"]).numpy()


@pytest.mark.parametrize("name", ["repvgg_a0", "repvgg_b1g4", "repvgg_d2se"])
def test_fused_form_equals_the_train_form(name, torch_reference):
    """Eval logits of the train form and of reparameterize(net), both float32, against the float64 train form, on
    random BatchNorm statistics. Measured (3 seeds, 64 px): both forms within 2.2e-7..8.8e-7 of float64 relative to
    the largest logit, and within 9.1e-7 of each other. D2se's SE weights are scaled by 0.1: with random weights over
    48 blocks its gates saturate and the net amplifies float32 rounding to O(1) (each block alone stays at 1e-6)."""
    torch = torch_reference[0]
    with no_init_parameters():
        net = create_model(name, num_classes=10)
    randomize_statistics(net, seed=1, weights=True)
    for param in net.get_parameters():
        if ".se." in param.name:
            param.set_data(param.value() * 0.1)
    net.set_train(False)
    images = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    train = net(ms.Tensor(images)).asnumpy()
    fused_net = reparameterize(net)
    fused = fused_net(ms.Tensor(images)).asnumpy()
    reference = float64_logits(net, images, torch)
    errors = [relative_difference(train, reference), relative_difference(fused, reference),
              relative_difference(fused, train)]
    print(f"{name}: train form {errors[0]:.2e}, fused {errors[1]:.2e} from float64; fused vs train {errors[2]:.2e}")
    assert max(errors) <= 2e-6
    names = [p.name for p in fused_net.get_parameters()]
    assert not any("rbr_dense" in n or "rbr_1x1" in n or "rbr_identity" in n or "moving_" in n for n in names)
    assert sum(".rbr_reparam.weight" in n for n in names) == len(net.blocks())


def test_fusing_needs_eval_mode_and_a_repvgg():
    with no_init_parameters():
        net = create_model("repvgg_a0", num_blocks=[1, 1, 1, 1])
        with pytest.raises(MsvisionError, match=r"^fuse a RepVGG in eval mode \(net.set_train\(False\)\)"):
            reparameterize(net.set_train(True))
        with pytest.raises(MsvisionError, match="only RepVGG models have a fused form; VGG has none"):
            reparameterize(create_model("vgg11").set_train(False))


@pytest.mark.parametrize("model_args, message", [
    (dict(num_block=[1, 1, 1, 1]), "unknown model argument 'num_block' for repvgg_a0"),
    (dict(width_multiplier=[1, 1, 1]), r"width_multiplier must be a list of 4 numbers \(one per stage\), got \[1, 1, "
                                       r"1\]"),
    (dict(override_groups={"40": 2}), "override_groups entry 40: 2 is not a layer index in 1..21"),
    (dict(override_groups=3, width_multiplier=[1, 1, 1, 1]), "override_groups: layer 2 has 64 -> 64 channels, not "
                                                             "divisible into 3 groups"),
])
def test_bad_model_args_are_one_line(model_args, message):
    with no_init_parameters(), pytest.raises(MsvisionError, match=message):
        create_model("repvgg_a0", **model_args)


def official_names(timm_state_dict):
    """timm's tensors under the official names (stage0, stageN.i, rbr_dense / rbr_1x1 / rbr_identity /
    rbr_reparam, linear): the official layout, built here from timm's tensors as no official file can be fetched."""
    renamed = {}
    for key, value in timm_state_dict.items():
        parts = key.split(".")
        if parts[0] == "stem":
            parts = ["stage0"] + parts[1:]
        elif parts[0] == "stages":
            parts = [f"stage{int(parts[1]) + 1}"] + parts[2:]
        elif parts[:2] == ["head", "fc"]:
            parts = ["linear"] + parts[2:]
        swap = {"conv_kxk": "rbr_dense", "conv_1x1": "rbr_1x1", "identity": "rbr_identity",
                "reparam_conv": "rbr_reparam"}
        renamed[".".join(swap.get(p, p) for p in parts)] = value
    return renamed


def test_timm_and_official_files_in_both_forms_load_with_logit_parity(tmp_path, torch_reference):
    """timm's repvgg_a0 (random weights, random BatchNorm statistics) saved as timm's layout, as the official
    train-form layout and, after timm's own reparameterize, as the official deploy form; each file loads into
    msvision (the deploy file builds the fused form) with timm's logits."""
    torch, timm, _ = torch_reference
    torch.manual_seed(0)
    reference = timm.create_model("repvgg_a0", num_classes=7).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    files = {"timm": reference.state_dict(), "official": official_names(reference.state_dict())}
    for module in reference.modules():
        if hasattr(module, "reparameterize"):
            module.reparameterize()
    files["official deploy"] = official_names(reference.state_dict())
    assert any(".rbr_reparam." in k for k in files["official deploy"])
    for label, state_dict in files.items():
        path = str(tmp_path / f"{label.replace(' ', '_')}.pth")
        torch.save(state_dict, path)
        if label == "official deploy":
            with pytest.raises(MsvisionError, match=r"holds the fused \(deploy\) form of repvgg_a0, which has no "
                                                    r"branches to train"):
                create_model("repvgg_a0", checkpoint_path=path)
        net = create_model("repvgg_a0", checkpoint_path=path, any_form=True).set_train(False)
        assert net.deploy == (label == "official deploy")
        assert net.weights_source == label.split()[0]
        error = relative_difference(net(ms.Tensor(images)).asnumpy(), expected)
        print(f"{label}: logits {error:.2e} from timm's")
        assert error <= 2e-6


def test_mindcv_checkpoint_loads_with_logit_parity(tmp_path):
    """MindCV 0.3.0's repvgg_a0 (its branches are SequentialCells: rbr_dense.0 / .1), random weights and BatchNorm
    statistics, saved with MindSpore: msvision gives MindCV's logits."""
    mindcv = pytest.importorskip("mindcv")
    ms.set_seed(0)
    reference = mindcv.create_model("repvgg_a0", num_classes=5)
    randomize_statistics(reference, seed=3)
    reference.set_train(False)
    path = str(tmp_path / "mindcv_repvgg_a0.ckpt")
    ms.save_checkpoint(reference, path)
    images = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    net = create_model("repvgg_a0", checkpoint_path=path).set_train(False)
    assert net.weights_source == "mindcv"
    error = relative_difference(net(images).asnumpy(), reference(images).asnumpy())
    print(f"MindCV repvgg_a0: logits {error:.2e} from MindCV's")
    assert error <= 1e-6
    os.remove(path)


CUSTOM = '{"num_blocks": [1, 1, 2, 1], "width_multiplier": [0.25, 0.25, 0.25, 0.5]}'


@pytest.mark.slow
def test_custom_repvgg_trains_validates_and_exports_fused(tmp_path, image_folder):
    """A custom RepVGG (model_args as JSON) trains, validate.py and infer.py take its train-form checkpoint, and
    export.py writes the fused graph: convolutions and ReLUs only, with the train form's logits."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    run_cli(["train.py"] + tiny_run(model="repvgg_a0", model_args=CUSTOM, data_dir=image_folder, epoch_size=1,
                                    lr=0.05, ckpt_save_dir=tmp_path / "run"))
    checkpoint = latest_checkpoint(tmp_path / "run")
    top1 = re.search(r"top-1 (\d+\.\d+)%", run_cli(["validate.py", "--ckpt_path", checkpoint, "--data_dir",
                                                    image_folder]).stdout)
    assert top1, "validate.py printed no top-1"
    run_cli(["scripts/export.py", "--ckpt_path", checkpoint, "--format", "ONNX", "--output", tmp_path / "fused"])
    graph = onnx.load(str(tmp_path / "fused.onnx")).graph
    ops = sorted({node.op_type for node in graph.node})
    assert ops == ["Conv", "Gemm", "ReduceMean", "Relu"], ops
    assert sum(node.op_type == "Conv" for node in graph.node) == 1 + 1 + 1 + 2 + 1  # one conv per block
    net = create_model("repvgg_a0", checkpoint_path=checkpoint, num_classes=4, **json.loads(CUSTOM))
    images = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = net.set_train(False)(ms.Tensor(images)).asnumpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "fused.onnx"))
    error = relative_difference(session.run(None, {session.get_inputs()[0].name: images})[0], expected)
    print(f"fused ONNX vs the train-form cell: {error:.2e}")
    assert error <= 2e-6
    # a fused checkpoint evaluates, and is refused as the start of a training run, in one line
    fused = str(tmp_path / "fused.ckpt")
    ms.save_checkpoint(reparameterize(net), fused, append_dict={CONFIG_KEY: read_checkpoint(
        checkpoint, only=CONFIG_KEY)[CONFIG_KEY]})
    assert f"top-1 {top1[1]}%" in run_cli(["validate.py", "--ckpt_path", fused, "--data_dir", image_folder]).stdout
    images = sorted(glob.glob(os.path.join(image_folder, "val", "*", "*.jpg")))[:3]
    predictions = [re.findall(r" (\d\.\d{3})", run_cli(["scripts/infer.py", "--ckpt_path", path] + images).stdout)
                   for path in (checkpoint, fused)]
    assert len(predictions[0]) == 3 * 4 and predictions[0] == predictions[1]  # either form, the same top-4
    refused = run_cli(["train.py"] + tiny_run(model="repvgg_a0", model_args=CUSTOM, data_dir=image_folder,
                                              ckpt_path=fused, ckpt_save_dir=tmp_path / "again"), check=False)
    assert error_line(refused).endswith("holds the fused (deploy) form of repvgg_a0, which has no branches to train: "
                                        "train from a train-form checkpoint (validate.py, infer.py and export.py "
                                        "take either)")
    assert not os.path.exists(tmp_path / "again")


@pytest.mark.slow
@pytest.mark.parametrize("model_args, message", [
    ('{"num_block": [1, 1, 1, 1]}', "unknown model argument 'num_block' for repvgg_a0"),
    ('{"width_multiplier": [1, 1]}', "width_multiplier must be a list of 4 numbers (one per stage), got [1, 1]"),
    ('{"num_classes": 3}', "model_args key 'num_classes' is an option of its own: set num_classes directly, not "
                           "inside model_args"),
    ("[1, 2]", "argument --model_args: expected a JSON object ({\"key\": value}), got '[1, 2]'"),
])
def test_train_refuses_bad_model_args_in_one_line(tmp_path, image_folder, model_args, message):
    done = run_cli(["train.py"] + tiny_run(model="repvgg_a0", model_args=model_args, data_dir=image_folder,
                                           ckpt_save_dir=tmp_path / "run"), check=False)
    assert error_line(done).endswith(message)
    assert not os.path.exists(tmp_path / "run")


def test_readme_repvgg_example_runs_as_written():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("### RepVGG: two forms"):]
    start = section.index("```python\n") + len("```python\n")
    block = section[start:section.index("\n```", start)]
    scope = {"msvision": msvision}
    exec(compile(block, "README.md", "exec"), scope)  # pylint: disable=exec-used
    assert scope["fused"].deploy and not scope["net"].deploy
    assert scope["custom"].get_classifier().out_channels == 89 and len(scope["custom"].stage3) == 14


def test_custom_l2_equals_the_official_formula(torch_reference):
    """RepVGG.custom_l2 against the official get_custom_L2 written here in torch (ring of each 3x3 kernel plus the
    equivalent centre point K3[c] t3 + K1 t1 normalised by t3^2 + t1^2, t = gamma / sqrt(var + eps))."""
    torch = torch_reference[0]
    with no_init_parameters():
        net = create_model("repvgg_a0", num_blocks=[1, 2, 1, 1], width_multiplier=[0.25, 0.25, 0.25, 0.25])
    randomize_statistics(net, seed=5, weights=True)
    weights = {p.name: torch.from_numpy(p.asnumpy().astype(np.float64)) for p in net.get_parameters()}
    expected = 0.0
    for prefix in ["stage0", "stage1.0", "stage2.0", "stage2.1", "stage3.0", "stage4.0"]:
        k3, k1 = weights[f"{prefix}.rbr_dense.conv.weight"], weights[f"{prefix}.rbr_1x1.conv.weight"]
        t3, t1 = (weights[f"{prefix}.{b}.bn.gamma"] / (weights[f"{prefix}.{b}.bn.moving_variance"] + 1e-5).sqrt()
                  for b in ("rbr_dense", "rbr_1x1"))
        t3, t1 = t3.reshape(-1, 1, 1, 1), t1.reshape(-1, 1, 1, 1)
        circle = (k3 ** 2).sum() - (k3[:, :, 1:2, 1:2] ** 2).sum()
        eq_kernel = k3[:, :, 1:2, 1:2] * t3 + k1 * t1
        expected += float((eq_kernel ** 2 / (t3 ** 2 + t1 ** 2)).sum() + circle)
    value = float(net.custom_l2().asnumpy())
    print(f"custom L2 {value:.6g}, official formula (float64) {expected:.6g}")
    assert abs(value - expected) <= 1e-5 * expected


def test_freeze_counts_repvgg_stages():
    """freeze: N freezes stage0 with stage1, then one stage each (as the VoVNets' stem with their first stage)."""
    from msvision.train.model import freeze

    with no_init_parameters():
        net = create_model("repvgg_a0", num_blocks=[1, 1, 1, 1], width_multiplier=[0.25, 0.25, 0.25, 0.25])
    frozen = freeze(net, "2", "repvgg_a0")
    assert frozen == [net.stage0, net.stage1, net.stage2]
    training = {p.name.split(".")[0] for p in net.trainable_params()}
    assert training == {"stage3", "stage4", "linear"}


@pytest.mark.slow
def test_model_table_prints_both_forms():
    """python -m msvision.models: a RepVGG's row (train form) and its fused row under it, with the paper's A0 figures
    for the fused form (8.30M parameters, 1.4 GFLOPs as MACs)."""
    out = run_cli(["-m", "msvision.models", "--pattern", "repvgg_a0"]).stdout.splitlines()[2:]
    train, fused = out[0].split(), out[1].split()
    assert train[:4] == ["repvgg_a0", "9.11", "1.51", "224"] and fused[:4] == ["fused", "8.31", "1.36", "224"]
