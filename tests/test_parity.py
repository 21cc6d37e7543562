"""Numerical parity: a random timm/torchvision model, converted, gives the same logits in MindSpore."""
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision import MsvisionError
from msvision.convert.timm import convert_torch_checkpoint
from tests.conftest import REPO_ROOT

# (msvision name, reference library, reference name)
PARITY_CASES = [
    ("vgg11_bn", "timm", "vgg11_bn"),
    ("vgg16", "timm", "vgg16"),
    ("vgg11_bn", "torchvision", "vgg11_bn"),
    ("vovnet39a", "timm", "vovnet39a"),
    ("ese_vovnet19b_dw", "timm", "ese_vovnet19b_dw"),
    ("ese_vovnet19b_slim_dw", "timm", "ese_vovnet19b_slim_dw"),
    ("ese_vovnet39b", "timm", "ese_vovnet39b"),
    ("eca_vovnet39b", "timm", "eca_vovnet39b"),
]


def random_reference(torch_reference, library, name, num_classes=1000):
    """A reference model in eval mode with randomised BatchNorm affine parameters and running statistics."""
    torch, timm, tv_models = torch_reference
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=num_classes) if library == "timm" \
        else getattr(tv_models, name)(num_classes=num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def relative_logit_error(ours, theirs):
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.mark.parametrize("name,library,ref_name", PARITY_CASES)
def test_converted_logits_match_reference(torch_reference, tmp_path, name, library, ref_name):
    torch = torch_reference[0]
    reference = random_reference(torch_reference, library, ref_name)
    torch_file, ms_file = tmp_path / "ref.pth", tmp_path / "converted.ckpt"
    torch.save(reference.state_dict(), torch_file)
    convert_torch_checkpoint(name, str(torch_file), str(ms_file))

    images = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    del reference
    for mode in (ms.GRAPH_MODE, ms.PYNATIVE_MODE):
        ms.set_context(mode=mode)
        net = msvision.create_model(name, checkpoint_path=str(ms_file))
        net.set_train(False)
        got = net(ms.Tensor(images)).asnumpy()
        error = relative_logit_error(got, expected)
        print(f"parity {name} vs {library}:{ref_name} mode={mode}: max|diff|/max|logit| = {error:.2e}")
        assert error <= 1e-4
    ms.set_context(mode=ms.GRAPH_MODE)


def test_conversion_errors_name_the_keys(torch_reference, tmp_path):
    torch = torch_reference[0]
    state = random_reference(torch_reference, "timm", "ese_vovnet19b_slim_dw").state_dict()
    state.pop("stem.1.conv_pw.weight")
    state["stages.9.extra.weight"] = torch.zeros(3)
    state["stem.0.conv.weight"] = torch.zeros(64, 3, 5, 5)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(MsvisionError) as err:
        convert_torch_checkpoint("ese_vovnet19b_slim_dw", str(broken), str(tmp_path / "out.ckpt"))
    message = str(err.value)
    assert "missing 1 (stem.1.conv_pw.weight)" in message
    assert "unexpected 1 (stages.9.extra.weight)" in message
    assert "stem.0.conv.weight: checkpoint (64, 3, 5, 5) vs model (64, 3, 3, 3)" in message
    assert not (tmp_path / "out.ckpt").exists()


def test_convert_cli_and_other_num_classes(torch_reference, tmp_path):
    torch = torch_reference[0]
    reference = random_reference(torch_reference, "timm", "ese_vovnet19b_slim_dw", num_classes=10)
    torch.save(reference.state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "out.ckpt"
    cmd = [sys.executable, "scripts/convert_timm.py", "--model", "ese_vovnet19b_slim_dw",
           "--torch-checkpoint", str(tmp_path / "ref.pth"), "--output", str(out)]
    subprocess.run(cmd, cwd=REPO_ROOT, check=True, capture_output=True)
    net = msvision.create_model("ese_vovnet19b_slim_dw", num_classes=10, checkpoint_path=str(out))
    moving_var = net.parameters_dict()["stem.0.bn.moving_variance"].asnumpy()
    assert np.allclose(moving_var, reference.stem[0].bn.running_var.numpy())  # BN statistics carried
    with pytest.raises(MsvisionError, match="head.fc.weight: checkpoint \\(10, 512\\) vs model \\(1000, 512\\)"):
        msvision.create_model("ese_vovnet19b_slim_dw", checkpoint_path=str(out))
    failed = subprocess.run(cmd[:-4] + ["--torch-checkpoint", str(tmp_path / "nope.pth"), "--output", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1].startswith("error: torch checkpoint")
