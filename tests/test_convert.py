"""scripts/convert.py: detection, one-line errors that write nothing, and MindCV files used without converting."""
import json
import re

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision import MsvisionError
from msvision.weights.io import load_weights, read_checkpoint
from tests.conftest import error_line, eval_inputs, mindcv_vgg_files, run_cli, split_files
from tests.ref_1e100 import Reference1e100


@pytest.fixture(scope="module")
def vovnet19_file(torch_reference, tmp_path_factory):
    torch = torch_reference[0]
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ref") / "vovnet19.pth"
    torch.save(Reference1e100("vovnet19", num_classes=10).state_dict(), path)
    return path


@pytest.mark.slow
def test_cli_detects_source_and_reports_what_it_wrote(vovnet19_file, tmp_path):
    out = tmp_path / "out.ckpt"
    done = run_cli(["scripts/convert.py", "--model", "vovnet19", "--input", vovnet19_file, "--output", out])
    lines = done.stdout.strip().splitlines()
    assert "source: 1e100 (detected from the keys)" in lines
    assert lines[-1] == f"wrote {out}: vovnet19 from 1e100, {len(msvision.create_model('vovnet19').parameters_dict())} tensors"
    net = msvision.create_model("vovnet19", num_classes=10, checkpoint_path=str(out))
    assert net.parameters_dict()["head.fc.weight"].shape == (10, 512)


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors_and_write_nothing(torch_reference, vovnet19_file, tmp_path):
    torch = torch_reference[0]
    torch.save({"a": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a module, not a state dict
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "unknown.pt")
    (tmp_path / "text.ckpt").write_text("hello")
    out = tmp_path / "out.ckpt"
    cases = [
        (["--input", vovnet19_file, "--source", "caffe"], "unknown source 'caffe' (expected one of timm, torchvision"),
        (["--input", tmp_path / "unknown.pt"], "layout of '"),
        (["--input", vovnet19_file, "--model", "vovnet57"], "does not fit the model: missing"),
        (["--input", vovnet19_file, "--model", "vgg11"], "1e100 weights are VoVNets; 'vgg11' is not a VoVNet"),
        (["--input", tmp_path / "pickled.pt"], "loads only with weights_only=False): re-save it"),
        (["--input", tmp_path / "list.pt"], "holds no state dict of tensors"),
        (["--input", tmp_path / "missing.pt"], "input file not found: '"),
        (["--input", tmp_path / "text.ckpt"], "is not a readable MindSpore checkpoint"),
        (["--input", vovnet19_file, "--output", tmp_path / "no" / "out.ckpt"], "cannot write the output"),
    ]
    for extra, message in cases:
        options = {"--model": "vovnet19", "--output": out, **dict(zip(extra[::2], extra[1::2]))}
        done = run_cli(["scripts/convert.py"] + [item for pair in options.items() for item in pair], check=False)
        line = error_line(done)
        assert message in line, (extra, line)
        assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
        print(line)


@pytest.mark.slow
def test_convert_without_torch_names_the_extra(tmp_path, vovnet19_file):
    code = ("import sys; sys.modules['torch'] = None; from msvision.models import create_model; "
            f"create_model('vovnet19', checkpoint_path=r'{vovnet19_file}')")
    done = run_cli(["-c", f"from msvision.cli import run_cli\nrun_cli(lambda a: exec({code!r}))"], check=False)
    assert 'needs torch: pip install -e ".[convert]"' in error_line(done)


def _mindcv_vgg11(tmp_path, num_classes):
    net, paths = mindcv_vgg_files(tmp_path, "vgg11", num_classes, ("scalars",), seed=1)
    return net, paths["scalars"]


def test_only_the_exact_mindcv_pattern_is_relaxed(tmp_path):
    _, path = _mindcv_vgg11(tmp_path, 10)
    weights = read_checkpoint(path)
    net = msvision.create_model("vgg11", num_classes=10)
    load_weights(net, dict(weights))  # the pattern: every conv bias absent, known training entries
    for change, message in (("drop features.3.weight", "missing 9 (features.0.bias"),  # + the 8 biases
                            ("add features.99.weight", "unexpected 4 (features.99.weight, global_step"),
                            ("add features.0.bias", "missing 7 (features.11.bias")):
        broken = dict(weights)
        verb, name = change.split()
        if verb == "drop":
            broken.pop(name)
        else:
            broken[name] = ms.Parameter(ms.Tensor(np.zeros(64, np.float32)), name=name)
        with pytest.raises(MsvisionError, match=re.escape(message)):
            load_weights(net, broken)  # refused before anything is loaded: the same net serves each case


@pytest.mark.slow
def test_mindcv_checkpoint_in_validate_and_train(tmp_path, image_folder):
    mindcv_net, path = _mindcv_vgg11(tmp_path, 4)
    done = run_cli(["validate.py", "--model", "vgg11", "--ckpt_path", path, "--data_dir", image_folder,
                    "--image_resize", "224", "--crop_pct", "1", "--interpolation", "bilinear", "--output",
                    tmp_path / "r.json"])  # 224: MindCV's VGG has no adaptive pooling before its classifier
    assert "MindCV layout recognised: 8 conv biases absent, filled with zeros; 3 training entries dropped" \
        in done.stdout + done.stderr
    # the report's figures from MindCV's own model on the same images (preprocessed with PIL)
    paths, labels = split_files(image_folder, "val")
    mindcv_net.set_train(False)
    logits = mindcv_net(ms.Tensor(eval_inputs(paths, 224))).asnumpy().astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    loss = float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(labels)), labels]))
    report = json.loads((tmp_path / "r.json").read_text())
    print(f"validate.py: top-1 {report['top1']} loss {report['loss']}; MindCV: top-1 "
          f"{100 * np.mean(logits.argmax(1) == labels)} loss {loss}")
    assert report["count"] == len(labels) and report["top1"] == pytest.approx(100 * np.mean(logits.argmax(1) == labels))
    assert abs(report["loss"] - loss) <= 1e-6 * loss  # measured 6e-9 relative
    trained = run_cli(["train.py", "--model", "vgg11", "--ckpt_path", path, "--data_dir", image_folder,
                       "--num_classes", "4", "--image_resize", "32", "--epoch_size", "1", "--batch_size", "16",
                       "--ckpt_save_dir", tmp_path / "run", "--amp_level", "O0", "--lr", "0.001"])
    assert "initial weights from" in trained.stdout + trained.stderr
