"""validate.py, infer.py, export.py against PyTorch: a model trained in PyTorch (timm), converted and saved as
train.py saves it; every figure validate.py reports equals the same figure computed from PyTorch's predictions."""
import copy
import json
import os
import re
import shutil

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.weights.io import CLASS_COUNTS_KEY, CLASS_NAMES_KEY, CONFIG_KEY
from msvision.config.parse import dump_config, parse_config
from tests.references import msvision_twin
from tests.conftest import linked_copy, tiny_run
from tests.conftest import (error_line, eval_inputs, make_image_folder, relative_difference, run_cli, run_in_process,
                            run_msrun, script_main, split_files)

MODEL = "ese_vovnet19b_slim_dw"
CLASSES = [f"class_{i}" for i in range(4)]
SMALL = tiny_run(batch_size=None, num_parallel_workers=None, crop_pct=1, interpolation="bilinear")


def labelled_folder(root):
    """4 colour classes, 16 training images each; val imbalanced with two images in the wrong class folder, so that
    even a perfect classifier has known errors: class_0 7 (one is a class_1 image), class_1 3, class_2 4 (one is a
    class_3 image), class_3 1; 15 images in all."""
    make_image_folder(root, classes=4, train_per_class=16, val_per_class=6, size=40, seed=1)
    val = root / "val"
    for label, keep in ((1, 4), (2, 3), (3, 2)):
        for index in range(keep, 6):
            os.remove(val / f"class_{label}" / f"{index:03d}.jpg")
    os.rename(val / "class_1" / "000.jpg", val / "class_0" / "x_from_class_1.jpg")
    os.rename(val / "class_3" / "000.jpg", val / "class_2" / "x_from_class_3.jpg")
    return root


def reference_inputs(torch, paths):
    return torch.tensor(eval_inputs(paths))


def nearest_mean_head(torch, model, inputs, labels, logit_size=5.0):
    """Set the classifier of `model` to the nearest-class-mean rule over its own features of `inputs` (computed in
    float64): logit_c = w_c . (f - m_c / 2 - mean) with w_c = m_c - mean of the class means, scaled so that the
    largest logit is about logit_size. Returns the smallest top-1 margin over `inputs` as a fraction of the largest
    logit: the float order of a CPU moves logits by ~1e-6 of their size, so a margin far above that makes the
    classifier's predictions the same on every machine."""
    twin = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        features = twin.forward_head(twin.forward_features(inputs.double()), pre_logits=True)
        means = torch.stack([features[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
        weight = means - means.mean(0)
        bias = -(weight * (means.mean(0) + weight / 2)).sum(1)
        twin.head.fc.weight.copy_(weight)
        twin.head.fc.bias.copy_(bias)
        scale = logit_size / twin(inputs.double()).abs().max()
        model.head.fc.weight.copy_(weight * scale)
        model.head.fc.bias.copy_(bias * scale)
        logits = model(inputs).double()
    top = logits.topk(2, dim=1).values
    assert bool((logits.argmax(1) == labels).all()), "the nearest-mean head does not separate the training images"
    return float((top[:, 0] - top[:, 1]).min() / logits.abs().max())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, torch_reference):
    """(msvision checkpoint with a stored config, the PyTorch model it came from (eval), data_dir). The model is
    timm's with seeded random weights and a nearest-class-mean head on the training images: 100% train top-1 by
    construction (a trained one's accuracy depended on the CPU's float order)."""
    torch, timm, _ = torch_reference
    folder = tmp_path_factory.mktemp("classifier")
    data_dir = labelled_folder(folder / "data")
    paths, labels = split_files(data_dir, "train")
    torch.manual_seed(0)
    model = timm.create_model(MODEL, num_classes=4).eval()
    margin = nearest_mean_head(torch, model, reference_inputs(torch, paths), torch.tensor(labels))
    assert margin >= 0.01  # measured 0.24
    net = msvision_twin(MODEL, "timm", model)
    args = parse_config(SMALL + ["--data_dir", str(data_dir)])
    path = str(folder / "model.ckpt")
    ms.save_checkpoint(net, path, append_dict={CONFIG_KEY: dump_config(args),
                                               CLASS_NAMES_KEY: "\n".join(f"class_{i}" for i in range(4)),
                                               CLASS_COUNTS_KEY: ms.Tensor(np.full(4, 16, np.int32))})
    return path, model, data_dir


def reference_figures(torch, model, data_dir, split):
    """What validate.py must report, from PyTorch's logits: confusion matrix, top-1/5, per-class recall, balanced
    and worst-class accuracy, mean loss."""
    paths, labels = split_files(data_dir, split)
    folders = sorted(os.listdir(os.path.join(data_dir, split)))
    labels = np.array([CLASSES.index(folders[label]) for label in labels])  # by name: a split may lack classes
    with torch.no_grad():
        logits = model(reference_inputs(torch, paths)).double()
    predicted = logits.argmax(1).numpy()
    confusion = np.zeros((4, 4), np.int64)
    for true, guess in zip(labels, predicted):
        confusion[true, guess] += 1
    recall = [100.0 * confusion[c, c] / confusion[c].sum() for c in range(4) if confusion[c].sum()]
    top5 = (torch.topk(logits, 4, dim=1).indices.numpy()[:, :5] == labels[:, None]).any(1)
    loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(labels)))
    return dict(confusion=confusion, top1=100.0 * (predicted == labels).mean(), top5=100.0 * top5.mean(),
                balanced=float(np.mean(recall)), worst=float(np.min(recall)), loss=loss, count=len(labels),
                predicted=predicted, labels=labels)


def read_confusion(path):
    lines = path.read_text().strip().splitlines()
    assert lines[0] == "true \\ predicted,class_0,class_1,class_2,class_3"
    return np.array([[int(v) for v in line.split(",")[1:]] for line in lines[1:]])


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(tmp_path, classifier):
    path, _, data_dir = classifier
    text_file = tmp_path / "notes.ckpt"
    text_file.write_text("not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(open(path, "rb").read()[:5000])
    cases = {
        "missing": ([str(tmp_path / "nope.ckpt")], "checkpoint not found: '"),
        "not a checkpoint": ([str(text_file)], "is not a readable MindSpore checkpoint"),
        "truncated": ([str(truncated)], "is not a readable MindSpore checkpoint"),
        "other model": ([path, "--model", "ese_vovnet19b_dw"], "does not fit the model: missing"),
        "other classes": ([path, "--num_classes", "5"], "head.fc.weight: checkpoint (4, 512) vs model (5, 512)"),
        "missing split": ([path, "--split", "test"], f"split folder missing: '{data_dir}/test'"),
        "confusion folder": ([path, "--confusion", str(tmp_path / "no" / "c.csv")],
                             f"cannot write the confusion matrix '{tmp_path}/no/c.csv': folder"),
    }
    for name, (extra, message) in cases.items():
        done = run_cli(["validate.py", "--data_dir", data_dir, "--ckpt_path"] + extra, check=False)
        line = error_line(done)
        assert message in line, (name, line)
        print(f"{name}: {line}")
    assert sorted(os.listdir(tmp_path)) == ["notes.ckpt", "truncated.ckpt"]  # nothing written


@pytest.mark.slow
def test_validate_figures_equal_pytorch(tmp_path, classifier, torch_reference):
    """validate.py --ckpt_path alone (model, classes and preprocessing from the stored config) on val and on train:
    top-1, top-5, balanced and worst-class accuracy, per-class rows, the confusion matrix and the loss equal the
    same figures computed from the PyTorch model's logits."""
    torch = torch_reference[0]
    path, model, data_dir = classifier
    for split in ("val", "train"):
        ref = reference_figures(torch, model, data_dir, split)
        output, confusion = tmp_path / f"{split}.json", tmp_path / f"{split}.csv"
        out = run_cli(["validate.py", "--ckpt_path", path, "--split", split, "--output", output, "--confusion",
                       confusion]).stdout
        metrics = json.loads(output.read_text())
        print(f"{split}: PyTorch top-1 {ref['top1']:.2f} balanced {ref['balanced']:.2f} worst {ref['worst']:.2f}; "
              f"validate.py {metrics['top1']:.2f} {metrics['balanced_accuracy']:.2f} "
              f"{metrics['worst_class_accuracy']:.2f}")
        assert np.array_equal(read_confusion(confusion), ref["confusion"])
        assert metrics["count"] == ref["count"] and metrics["top1"] == pytest.approx(ref["top1"])
        assert metrics["top5"] == pytest.approx(ref["top5"])
        assert metrics["balanced_accuracy"] == pytest.approx(ref["balanced"])
        assert metrics["worst_class_accuracy"] == pytest.approx(ref["worst"])
        assert metrics["loss"] == pytest.approx(ref["loss"], rel=1e-5)
        rows = {row["name"]: row for row in metrics["per_class"]}
        for label in range(4):
            row = rows[f"class_{label}"]
            assert (row["correct"], row["total"]) == (ref["confusion"][label, label], ref["confusion"][label].sum())
            assert row["train_images"] == 16  # stored in the checkpoint at training time
        assert [row["accuracy"] for row in metrics["per_class"]] == sorted(r["accuracy"] for r in rows.values())
        assert f"balanced {metrics['balanced_accuracy']:.2f}%" in out and "train images" in out
        assert (tmp_path / f"{split}.png").is_file()
    # the PyTorch model classifies (train), and val's known errors make the figures differ from each other
    assert ref["top1"] >= 90.0
    val = reference_figures(torch, model, data_dir, "val")
    assert len(set(val["predicted"].tolist())) >= 3 and val["top1"] != val["balanced"] and val["worst"] < 100


@pytest.mark.slow
def test_a_split_with_some_of_the_classes_is_evaluated_by_name(tmp_path, classifier, torch_reference):
    """A validation split without class_1 (a long tail's rarest class is often absent): its images are labelled by
    folder name, not position, every figure equals PyTorch's over the classes present, and the per-class table
    lists those. A folder the model does not know is one line naming it and the classes missing."""
    torch = torch_reference[0]
    path, model, data_dir = classifier
    subset = tmp_path / "subset"
    linked_copy(os.path.join(data_dir, "val"), subset / "val")
    shutil.rmtree(subset / "val" / "class_1")
    ref = reference_figures(torch, model, subset, "val")
    output = tmp_path / "subset.json"
    run_cli(["validate.py", "--ckpt_path", path, "--data_dir", subset, "--output", output])
    metrics = json.loads(output.read_text())
    print(f"without class_1: PyTorch top-1 {ref['top1']:.2f} balanced {ref['balanced']:.2f}; validate.py "
          f"{metrics['top1']:.2f} {metrics['balanced_accuracy']:.2f}")
    assert sorted(row["name"] for row in metrics["per_class"]) == ["class_0", "class_2", "class_3"]
    assert metrics["count"] == ref["count"] == 12 and metrics["top1"] == pytest.approx(ref["top1"])
    assert metrics["balanced_accuracy"] == pytest.approx(ref["balanced"])
    assert metrics["worst_class_accuracy"] == pytest.approx(ref["worst"])
    assert metrics["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    os.rename(subset / "val" / "class_3", subset / "val" / "class_9")
    done = run_cli(["validate.py", "--ckpt_path", path, "--data_dir", subset, "--output", tmp_path / "x.json"],
                   check=False)
    assert error_line(done) == (f"error: '{subset}/val' has class folders the model does not know: class_9; the "
                                f"model's classes missing there: class_1, class_3 (expected a subset of the "
                                f"checkpoint's 4 classes)")
    assert not (tmp_path / "x.json").exists()


def test_class_metrics_by_hand():
    from msvision.eval.metrics import class_metrics

    # true 0: predicted 0, 0, 1; true 1: 1, 1; true 2: 0; true 3: no images
    confusion = np.array([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    figures = class_metrics(confusion)
    assert figures["top1"] == pytest.approx(100 * 4 / 6)
    assert figures["balanced_accuracy"] == pytest.approx((100 * 2 / 3 + 100 + 0) / 3)  # classes with images only
    assert figures["worst_class_accuracy"] == 0.0


@pytest.mark.slow
def test_infer_prints_the_reference_probabilities(classifier, torch_reference):
    torch = torch_reference[0]
    path, model, data_dir = classifier
    images, _ = split_files(data_dir, "val")
    images = images[::4]
    out = run_cli(["scripts/infer.py", "--ckpt_path", path] + images).stdout.strip().splitlines()
    with torch.no_grad():
        probs = torch.softmax(model(reference_inputs(torch, images)).double(), 1).numpy()
    for line, image, expected in zip(out, images, probs):
        pairs = re.findall(r"(class_\d) ([\d.]+)", line)
        assert line.startswith(image) and len(pairs) == 4
        order = np.argsort(-expected)
        assert [name for name, _ in pairs] == [f"class_{i}" for i in order]
        assert [float(p) for _, p in pairs] == pytest.approx(expected[order], abs=1e-3)


@pytest.mark.slow
def test_export_mindir_and_onnx_keep_batchnorm(tmp_path, classifier):
    """Randomised BatchNorm statistics and affine parameters (an export that dropped or mis-folded BN would move the
    logits by their own scale); logits compared relative to their largest magnitude."""
    path, _, _ = classifier
    args = parse_config(SMALL)
    net = msvision.create_model(MODEL, num_classes=4, checkpoint_path=path)
    rng = np.random.default_rng(4)
    params = {p.name: p for p in net.get_parameters()}
    for name, param in params.items():  # around the trained values, so that the logits keep a sane scale
        value = param.asnumpy()
        if name.endswith(("moving_variance", "gamma")):
            param.set_data(ms.Tensor((value * rng.uniform(0.5, 2.0, value.shape)).astype(np.float32)))
        elif name.endswith("moving_mean"):
            spread = np.sqrt(params[name.replace("moving_mean", "moving_variance")].asnumpy())
            param.set_data(ms.Tensor((value + rng.uniform(-0.3, 0.3, value.shape) * spread).astype(np.float32)))
    randomised = str(tmp_path / "bn.ckpt")
    ms.save_checkpoint(net, randomised, append_dict={CONFIG_KEY: dump_config(args)})
    net.set_train(False)
    images = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = net(ms.Tensor(images)).asnumpy()
    scale = np.abs(expected).max()
    run_cli(["scripts/export.py", "--ckpt_path", randomised, "--format", "MINDIR", "--output", tmp_path / "model"])
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "model.mindir")))
    mindir = float(np.abs(graph(ms.Tensor(images)).asnumpy() - expected).max() / scale)
    # --image_size: the graph is traced at 48 px
    run_cli(["scripts/export.py", "--ckpt_path", randomised, "--format", "MINDIR", "--image_size", "48", "--output",
             tmp_path / "model48"])
    larger = np.random.default_rng(1).standard_normal((1, 3, 48, 48)).astype(np.float32)
    graph48 = ms.nn.GraphCell(ms.load(str(tmp_path / "model48.mindir")))
    assert relative_difference(graph48(ms.Tensor(larger)).asnumpy(), net(ms.Tensor(larger)).asnumpy()) <= 1e-6
    onnxruntime = pytest.importorskip("onnxruntime")
    run_cli(["scripts/export.py", "--ckpt_path", randomised, "--format", "ONNX", "--output", tmp_path / "model"])
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    onnx = float(np.abs(session.run(None, {session.get_inputs()[0].name: images})[0] - expected).max() / scale)
    print(f"export vs cell, relative to the largest logit {scale:.3g}: MINDIR {mindir:.2e}, ONNX {onnx:.2e}")
    assert mindir <= 1e-6 and onnx <= 1e-5


def test_vgg_exports_to_onnx_at_32_and_names_the_limit_above(tmp_path, capsys):
    """README: ONNX export works for VGG where its feature map is 1x1 (32-63 px: the 7x7 pool is 49 copies) or
    already 7x7 (224-255 px: the pool is skipped; exported by `benchmark.py --infer_runtimes` for vgg16, not here:
    each export of the ImageNet head writes and converts 0.5 GB); between, one line says so. export.py runs in this
    process (its main function), as its script runs it."""
    onnxruntime = pytest.importorskip("onnxruntime")
    ms.set_seed(3)
    net = msvision.create_model("vgg11_bn", num_classes=4)
    rng = np.random.default_rng(2)
    for param in net.get_parameters():  # BatchNorm statistics away from the identity
        if param.name.endswith(("moving_mean", "moving_variance")):
            low = 0.5 if param.name.endswith("variance") else -0.2
            param.set_data(ms.Tensor(rng.uniform(low, low + 1.0, param.shape).astype(np.float32)))
    path = str(tmp_path / "vgg.ckpt")
    ms.save_checkpoint(net, path)
    net.set_train(False)
    export = script_main("scripts/export.py")
    run_in_process(export, ["--ckpt_path", path, "--model", "vgg11_bn", "--format", "ONNX", "--image_size", "32",
                            "--output", tmp_path / "vgg"])
    images = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "vgg.onnx"))
    error = relative_difference(session.run(None, {session.get_inputs()[0].name: images})[0],
                                net(ms.Tensor(images)).asnumpy())
    print(f"vgg11_bn ONNX at 32 vs cell: {error:.2e}")
    assert error <= 1e-5
    os.remove(tmp_path / "vgg.onnx")  # 515 MB
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run_in_process(export, ["--ckpt_path", path, "--model", "vgg11_bn", "--format", "ONNX", "--image_size", "64",
                                "--output", tmp_path / "small"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].endswith("MindSpore cannot export VGG's adaptive pool to ONNX: export at an "
                                      "--image_size of 32 to 63 or 224 to 255, where the pool is a copy or the "
                                      "identity")
    assert not os.path.exists(tmp_path / "small.onnx")


@pytest.mark.slow
def test_two_rank_validation_equals_single_process(tmp_path, classifier, free_port):
    path, _, data_dir = classifier  # 15 val images: does not divide by 2
    single, double = tmp_path / "single", tmp_path / "double"
    run_cli(["validate.py", "--ckpt_path", path, "--output", f"{single}.json", "--confusion", f"{single}.csv"])
    run_msrun(tmp_path / "logs", free_port, "validate.py", "--ckpt_path", path, "--output", f"{double}.json",
              "--confusion", f"{double}.csv")
    one, two = (json.loads(open(f"{p}.json").read()) for p in (single, double))
    print(f"1 rank: top-1 {one['top1']:.4f} balanced {one['balanced_accuracy']:.4f} on {one['count']}; 2 ranks: "
          f"top-1 {two['top1']:.4f} balanced {two['balanced_accuracy']:.4f} on {two['count']}")
    assert two["world_size"] == 2 and one["count"] == two["count"] == 15
    for key in ("top1", "top5", "balanced_accuracy", "worst_class_accuracy", "per_class"):
        assert two[key] == one[key], key
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert open(f"{single}.csv").read() == open(f"{double}.csv").read()


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
