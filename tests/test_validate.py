"""validate.py, infer.py, export.py: stored-config rebuild, strict checkpoint errors, exact multi-rank metrics."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.checkpoint import CLASS_NAMES_KEY, CONFIG_KEY
from msvision.config import dump_config, parse_config
from tests.conftest import REPO_ROOT, run_cli

SMALL = ["--model", "ese_vovnet19b_slim_dw", "--num_classes", "4", "--image_resize", "32", "--crop_pct", "1"]


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory, image_folder):
    """A real (untrained) checkpoint with a stored config and class names, written in-process."""
    folder = tmp_path_factory.mktemp("saved")
    args = parse_config(SMALL + ["--data_dir", image_folder])
    ms.set_seed(3)
    net = msvision.create_model(args.model, num_classes=4)
    path = str(folder / "model.ckpt")
    ms.save_checkpoint(net, path, append_dict={CONFIG_KEY: dump_config(args),
                                               CLASS_NAMES_KEY: "\n".join(f"class_{i}" for i in range(4))})
    return path


def error_line(done):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines and lines[-1].startswith("error: "), done.stderr[-2000:]
    return lines[-1]


def test_bad_checkpoints_are_one_line_errors(tmp_path, saved_checkpoint, image_folder):
    text_file = tmp_path / "notes.ckpt"
    text_file.write_text("not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(open(saved_checkpoint, "rb").read()[:5000])
    cases = {
        "missing": ([str(tmp_path / "nope.ckpt")], "checkpoint not found: '"),
        "not a checkpoint": ([str(text_file)], "is not a readable MindSpore checkpoint"),
        "truncated": ([str(truncated)], "is not a readable MindSpore checkpoint"),
        "other model": ([saved_checkpoint, "--model", "ese_vovnet19b_dw"], "does not fit the model: missing"),
        "other classes": ([saved_checkpoint, "--num_classes", "5"],
                          "head.fc.weight: checkpoint (4, 512) vs model (5, 512)"),
    }
    for name, (extra, message) in cases.items():
        done = run_cli(["validate.py", "--data_dir", image_folder, "--ckpt_path"] + extra, check=False)
        line = error_line(done)
        assert message in line, (name, line)
        print(f"{name}: {line}")


def test_validate_rebuilds_model_and_preprocessing_from_checkpoint(tmp_path, saved_checkpoint, image_folder):
    output = tmp_path / "results.json"
    out = run_cli(["validate.py", "--ckpt_path", saved_checkpoint, "--output", output]).stdout
    metrics = json.loads(output.read_text())
    assert metrics["model"] == "ese_vovnet19b_slim_dw" and metrics["count"] == 20
    assert [row["total"] for row in metrics["per_class"]] == [5, 5, 5, 5]
    accuracies = [row["accuracy"] for row in metrics["per_class"]]
    assert accuracies == sorted(accuracies)  # worst class first
    assert metrics["top1"] == pytest.approx(100 * sum(r["correct"] for r in metrics["per_class"]) / 20)
    assert f"top-1 {metrics['top1']:.2f}%" in out and "class_" in out
    # the same numbers in-process with the stored config's 32 px preprocessing
    from msvision.data.dataset import open_split
    from msvision.evaluate import evaluate
    args = parse_config(SMALL + ["--data_dir", image_folder])
    net = msvision.create_model(args.model, num_classes=4, checkpoint_path=saved_checkpoint)
    direct = evaluate(net, args, open_split(args, "val"))
    assert direct["top1"] == metrics["top1"] and direct["loss"] == pytest.approx(metrics["loss"], rel=1e-5)


def test_infer_prints_top5_names(saved_checkpoint, image_folder):
    images = [os.path.join(image_folder, "val", f"class_{c}", "000.jpg") for c in range(4)]
    out = run_cli(["scripts/infer.py", "--ckpt_path", saved_checkpoint] + images).stdout.strip().splitlines()
    args = parse_config(SMALL)
    net = msvision.create_model(args.model, num_classes=4, checkpoint_path=saved_checkpoint)
    from msvision.inference import predict_files
    expected = predict_files(net, args, images, top_k=4)
    for line, path, top in zip(out, images, expected):
        pairs = re.findall(r"(class_\d) ([\d.]+)", line)
        assert line.startswith(path) and len(pairs) == 4
        assert pairs[0][0] == f"class_{top[0][0]}" and float(pairs[0][1]) == pytest.approx(top[0][1], abs=1e-3)
        assert sum(float(p) for _, p in pairs) == pytest.approx(1.0, abs=2e-3)


def test_export_mindir_and_onnx_give_the_cell_logits(tmp_path, saved_checkpoint):
    args = parse_config(SMALL)
    net = msvision.create_model(args.model, num_classes=4, checkpoint_path=saved_checkpoint)
    net.set_train(False)
    images = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = net(ms.Tensor(images)).asnumpy()
    run_cli(["scripts/export.py", "--ckpt_path", saved_checkpoint, "--format", "MINDIR", "--output",
             tmp_path / "model"])
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "model.mindir")))
    assert np.allclose(graph(ms.Tensor(images)).asnumpy(), expected, atol=1e-5)
    onnxruntime = pytest.importorskip("onnxruntime")
    run_cli(["scripts/export.py", "--ckpt_path", saved_checkpoint, "--format", "ONNX", "--output",
             tmp_path / "model"])
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert np.allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_two_rank_validation_equals_single_process(tmp_path, saved_checkpoint, image_folder, free_port):
    odd = tmp_path / "odd"
    shutil.copytree(image_folder, odd)
    os.remove(odd / "val" / "class_2" / "004.jpg")  # 19 images: does not divide by 2
    single = tmp_path / "single.json"
    run_cli(["validate.py", "--ckpt_path", saved_checkpoint, "--data_dir", odd, "--output", single])
    double = tmp_path / "double.json"
    cmd = ["msrun", "--worker_num", "2", "--local_worker_num", "2", "--master_port", str(free_port), "--log_dir",
           str(tmp_path / "logs"), "--join", "True", "python", "validate.py", "--ckpt_path", saved_checkpoint,
           "--data_dir", str(odd), "--output", str(double)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    one, two = json.loads(single.read_text()), json.loads(double.read_text())
    print(f"1 rank: top-1 {one['top1']:.4f} on {one['count']}; 2 ranks: top-1 {two['top1']:.4f} on {two['count']}")
    assert two["world_size"] == 2 and one["count"] == two["count"] == 19
    assert two["top1"] == one["top1"] and two["top5"] == one["top5"] and two["per_class"] == one["per_class"]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)


@pytest.mark.slow
def test_converted_timm_model_validates_like_timm(tmp_path, torch_reference, image_folder):
    torch, timm, _ = torch_reference
    from PIL import Image

    from tests.test_parity import random_reference
    reference = random_reference(torch_reference, "timm", "ese_vovnet19b_slim_dw", num_classes=4)
    images = sorted(os.path.join(root, name) for root, _, names in os.walk(os.path.join(image_folder, "val"))
                    for name in names)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():  # BN statistics from these images, so that the random model's logits follow its input
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        reference.train()(batch)
        theirs = reference.eval()(batch).argmax(1).numpy()
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    converted = tmp_path / "converted.ckpt"
    run_cli(["scripts/convert.py", "--model", "ese_vovnet19b_slim_dw", "--input", tmp_path / "timm.pth",
             "--output", converted])
    labels = np.array([int(os.path.basename(os.path.dirname(p)).split("_")[1]) for p in images])

    # msvision: the model's own pretrained cfg preprocessing (224 px, crop 0.875, bicubic, ImageNet mean/std)
    out = run_cli(["scripts/infer.py", "--ckpt_path", converted, "--model", "ese_vovnet19b_slim_dw", "--top_k", "1"]
                  + images).stdout.strip().splitlines()
    ours = np.array([int(re.search(r": class_(\d)", line).group(1)) for line in out])
    agreement = float((ours == theirs).mean())
    results = tmp_path / "results.json"
    run_cli(["validate.py", "--ckpt_path", converted, "--model", "ese_vovnet19b_slim_dw", "--data_dir", image_folder,
             "--output", results])
    metrics = json.loads(results.read_text())
    timm_top1 = 100.0 * float((theirs == labels).mean())
    print(f"timm predicts classes {sorted(set(theirs.tolist()))}; agreement {agreement:.3f}; top-1 validate.py {metrics['top1']:.2f} "
          f"timm {timm_top1:.2f}")
    assert len(ours) == len(theirs) == metrics["count"] == 20
    assert len(set(theirs.tolist())) > 1  # a constant prediction would agree trivially
    assert agreement >= 0.99 and metrics["top1"] == pytest.approx(timm_top1)
