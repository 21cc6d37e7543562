"""To the edge: the float32 ONNX file equals its checkpoint (logits and validate.py's figures), int8 files are
quantized and stay near float32 only when calibrated on real images, bad input is one line, and the per-layer report
adds up and equals a hand computation."""
import json
import os
import sys

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.models.__main__ import main as models_main
from msvision.models.complexity import count_macs, count_params
from msvision.data.dataset import open_split
from msvision.eval.metrics import evaluate
from msvision.eval.onnx_eval import OnnxClassifier, onnx_config
from msvision.eval.validate import run_validation
from tests.conftest import eval_inputs, make_image_folder, relative_difference, run_in_process, script_main, split_files
from tests.test_validate import classifier, labelled_folder  # noqa: F401 (the module's fixture and its data)

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
EXPORT_MAIN = script_main("scripts/export.py")


def validate_json(tmp_path, name, *args):
    """validate.py's JSON metrics and confusion CSV (run in this process) for the given arguments."""
    output = tmp_path / f"{name}.json"
    run_in_process(run_validation, ["--output", output, "--confusion", tmp_path / f"{name}.csv"] + list(args))
    metrics = json.loads(output.read_text())
    return metrics, (tmp_path / f"{name}.csv").read_text()


def held_out_top1(path, data_dir):
    """Top-1 of an ONNX file on data_dir's val split, with the preprocessing its metadata names."""
    config, _ = onnx_config(str(path))
    preprocess = {key: config[key] for key in ("model", "image_resize", "interpolation", "crop_pct", "mean", "std")}
    return evaluate(OnnxClassifier(str(path)), open_split("val", data_dir=str(data_dir)), preprocess=preprocess,
                    batch_size=16)["top1"]


def one_line_error(capsys, main, argv):
    """The error line of a command line run in this process on bad input (exit code 2, nothing else on stderr)."""
    with pytest.raises(SystemExit) as stop:
        run_in_process(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def onnx_logits(path, images):
    session = onnxruntime.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: image[None]})[0] for image in images])


def test_float32_onnx_equals_its_checkpoint_in_logits_and_in_validate(tmp_path, classifier):
    """export.py --format ONNX: opset 13, the model name, preprocessing and class names in the metadata, logits of
    the checkpoint's cell within 1e-5; validate.py --onnx reports exactly what validate.py --ckpt_path reports (same
    confusion matrix, per-class rows, accuracies; the loss within float32 noise), and a file without metadata is
    evaluated the same with --model and the preprocessing options."""
    path, _, data_dir = classifier
    run_in_process(EXPORT_MAIN, ["--ckpt_path", path, "--format", "ONNX", "--output", tmp_path / "model"])
    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")) >= 13
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert metadata["model"] == "ese_vovnet19b_slim_dw" and json.loads(metadata["input_size"]) == [3, 32, 32]
    assert metadata["interpolation"] == "bilinear" and json.loads(metadata["crop_pct"]) == 1
    assert json.loads(metadata["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(metadata["std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert json.loads(metadata["class_names"]) == [f"class_{i}" for i in range(4)]
    paths, _ = split_files(data_dir, "val")
    images = eval_inputs(paths)
    net = msvision.create_model("ese_vovnet19b_slim_dw", checkpoint_path=path).set_train(False)
    error = relative_difference(onnx_logits(tmp_path / "model.onnx", images), net(ms.Tensor(images)).asnumpy())
    print(f"float32 ONNX vs checkpoint on {len(images)} val images: {error:.2e}")
    assert error <= 1e-5

    from_checkpoint, csv_checkpoint = validate_json(tmp_path, "ckpt", "--ckpt_path", path)
    from_onnx, csv_onnx = validate_json(tmp_path, "onnx", "--onnx", tmp_path / "model.onnx", "--data_dir", data_dir)
    print(f"validate.py: checkpoint top-1 {from_checkpoint['top1']:.2f} loss {from_checkpoint['loss']:.6f}, ONNX "
          f"{from_onnx['top1']:.2f} {from_onnx['loss']:.6f}")
    assert csv_onnx == csv_checkpoint and sorted(from_onnx) == sorted(from_checkpoint)
    for key in ("top1", "top5", "balanced_accuracy", "worst_class_accuracy", "count", "per_class", "split", "model"):
        assert from_onnx[key] == from_checkpoint[key], key
    assert from_onnx["loss"] == pytest.approx(from_checkpoint["loss"], rel=1e-5)
    assert from_onnx["checkpoint"] == str(tmp_path / "model.onnx")

    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    bare, csv_bare = validate_json(tmp_path, "bare", "--onnx", tmp_path / "bare.onnx", "--data_dir", data_dir,
                                   "--model", "ese_vovnet19b_slim_dw", "--image_resize", "32", "--crop_pct", "1",
                                   "--interpolation", "bilinear")
    assert csv_bare == csv_checkpoint and bare["top1"] == from_checkpoint["top1"]


def qdq_summary(path):
    """(QuantizeLinear count, DequantizeLinear count, {conv: (weight dtype, number of weight scales, output
    channels)}) of an int8 file, read from its graph."""
    graph = onnx.load(str(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    convs = {}
    for node in graph.node:
        if node.op_type == "Conv":
            dequantize = producers[node.input[1]]
            assert dequantize.op_type == "DequantizeLinear", node.name
            weight, scale = initializers[dequantize.input[0]], initializers[dequantize.input[1]]
            convs[node.name] = (weight.data_type, int(np.prod(scale.dims)), weight.dims[0])
    ops = [node.op_type for node in graph.node]
    return ops.count("QuantizeLinear"), ops.count("DequantizeLinear"), convs


def activation_scales(path):
    """The scales of an int8 file's activation QuantizeLinear nodes, in graph order."""
    graph = onnx.load(str(path)).graph
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    return np.array([float(initializers[node.input[1]]) for node in graph.node
                     if node.op_type == "QuantizeLinear" and node.input[0] not in initializers])


def activation_zero_points(path):
    """For each activation QuantizeLinear node of an int8 file: whether its zero point is not 0."""
    graph = onnx.load(str(path)).graph
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    return [bool(np.any(initializers[node.input[2]] != 0)) for node in graph.node
            if node.op_type == "QuantizeLinear" and node.input[0] not in initializers]


def test_int8_stays_near_float32_only_when_calibrated_on_real_images(tmp_path, classifier, capsys):
    """export.py --int8: QDQ nodes, int8 conv weights with one scale per output channel (per tensor with
    --per_tensor), activation zero points of 0 with --symmetric (some not without). On a held-out split (40 new
    images of the same classes) int8 top-1 is at most one image (2.5 points) below float32 (measured: equal, 100%);
    the same export calibrated on blank (uniform grey) images falls far below (measured 25%): the test can fail."""
    path, _, data_dir = classifier
    held_out = make_image_folder(tmp_path / "held_out", classes=4, train_per_class=0, val_per_class=10, seed=7)
    blank = tmp_path / "blank"
    blank.mkdir()
    from PIL import Image
    for index in range(8):
        Image.new("RGB", (40, 40), (128, 128, 128)).save(blank / f"{index}.jpg")
    run_in_process(EXPORT_MAIN, ["--ckpt_path", path, "--format", "ONNX", "--int8", "--calib_dir",
                                 os.path.join(data_dir, "train"), "--calib_count", "32", "--output", tmp_path / "real"])
    out = capsys.readouterr().out
    assert "calibration on 32 images" in out and "int8 agrees with float32 on" in out
    quantize, dequantize, convs = qdq_summary(tmp_path / "real.int8.onnx")
    assert quantize > 10 and dequantize > 10 and len(convs) > 10
    assert all(dtype == onnx.TensorProto.INT8 and scales == channels > 1 for dtype, scales, channels in convs.values())
    run_in_process(EXPORT_MAIN, ["--ckpt_path", path, "--format", "ONNX", "--int8", "--calib_dir",
                                 os.path.join(data_dir, "train"), "--calib_count", "32", "--per_tensor", "--symmetric",
                                 "--output", tmp_path / "tensor"])
    assert all(scales == 1 for _, scales, _ in qdq_summary(tmp_path / "tensor.int8.onnx")[2].values())
    nonzero = activation_zero_points(tmp_path / "real.int8.onnx")
    assert len(nonzero) > 10 and any(nonzero) and not any(activation_zero_points(tmp_path / "tensor.int8.onnx"))
    run_in_process(EXPORT_MAIN, ["--ckpt_path", path, "--format", "ONNX", "--int8", "--calib_dir", blank, "--output",
                                 tmp_path / "blank"])
    # --calib_method reaches the calibration: percentile ranges clip the tails that minmax keeps
    run_in_process(EXPORT_MAIN, ["--ckpt_path", path, "--format", "ONNX", "--int8", "--calib_dir",
                                 os.path.join(data_dir, "train"), "--calib_count", "32", "--calib_method", "percentile",
                                 "--output", tmp_path / "pct"])
    minmax, percentile = activation_scales(tmp_path / "real.int8.onnx"), activation_scales(tmp_path / "pct.int8.onnx")
    assert len(minmax) == len(percentile) and np.all(percentile <= minmax * (1 + 1e-6))
    assert not np.allclose(percentile, minmax)
    figures = {name: held_out_top1(tmp_path / name, held_out)
               for name in ("real.onnx", "real.int8.onnx", "tensor.int8.onnx", "blank.int8.onnx")}
    print("held-out top-1: " + ", ".join(f"{name} {top1:.1f}" for name, top1 in figures.items()))
    assert figures["real.onnx"] >= 90
    assert figures["real.int8.onnx"] >= figures["real.onnx"] - 2.5
    assert figures["tensor.int8.onnx"] >= figures["real.onnx"] - 2.5
    assert figures["blank.int8.onnx"] < figures["real.onnx"] - 2.5


def test_export_and_onnx_validate_bad_input_is_one_line_and_writes_nothing(tmp_path, classifier, capsys):
    """Run in this process (the entry points' own main functions): each case one line, exit 2, nothing written."""
    path, _, data_dir = classifier
    out = tmp_path / "out"
    out.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    bare = tmp_path / "bare.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])), str(bare))
    export = [EXPORT_MAIN, "--ckpt_path", path, "--output", out / "m"]
    calib = ["--calib_dir", os.path.join(data_dir, "train")]
    cases = {
        "int8 MINDIR": (export + ["--format", "MINDIR", "--int8"] + calib, "--int8 writes an ONNX file: use it with "
                                                                           "--format ONNX, not MINDIR"),
        "no calib_dir": (export + ["--format", "ONNX", "--int8"], "--int8 needs --calib_dir"),
        "missing calib_dir": (export + ["--format", "ONNX", "--int8", "--calib_dir", tmp_path / "nope"],
                              f"--calib_dir not found: '{tmp_path}/nope'"),
        "empty calib_dir": (export + ["--format", "ONNX", "--int8", "--calib_dir", empty],
                            f"no images in --calib_dir '{empty}'"),
        "calib_count 0": (export + ["--format", "ONNX", "--int8", "--calib_count", "0"] + calib,
                          "argument --calib_count: must be at least 1"),
        "calib_method": (export + ["--format", "ONNX", "--int8", "--calib_method", "kl"] + calib,
                         "argument --calib_method: invalid choice: 'kl'"),
        "AIR on CPU": (export + ["--format", "AIR"], "--format AIR is written by MindSpore on an Ascend machine only"),
        "no metadata": ([run_validation, "--onnx", bare, "--data_dir", data_dir, "--output", out / "r.json"],
                        f"'{bare}' has no msvision metadata (model, preprocessing, classes): pass --model"),
        "onnx and ckpt": ([run_validation, "--onnx", bare, "--ckpt_path", path, "--data_dir", data_dir],
                          "--onnx and --ckpt_path both name the model to evaluate"),
        "not onnx": ([run_validation, "--onnx", path, "--data_dir", data_dir], f"'{path}' is not an ONNX file"),
    }
    for name, (args, message) in cases.items():
        line = one_line_error(capsys, args[0], args[1:])
        print(f"{name}: {line}")
        assert message in line, (name, line)
    assert os.listdir(out) == []


def test_layer_report_adds_up_and_equals_a_hand_computation(tmp_path, capsys):
    """python -m msvision.models report: MACs and parameters equal count_macs / count_params; the on-chip bytes of
    vgg11_cifar's first conv and its classifier, computed by hand for int8 and fp16; RepVGG's --deploy reports the
    fused convs; bad values are one line with exit 2 and write nothing."""
    report = run_in_process(models_main, ["report", "vgg11_cifar", "--image_size", "32", "--num_classes", "10",
                                          "--dtype", "int8", "--json", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text())["max_onchip"] == report["max_onchip"]
    net = msvision.create_model("vgg11_cifar", num_classes=10)
    assert report["macs"] == count_macs(net, 32) and report["params"] == report["layer_params"] == count_params(net)
    layers = {row["name"]: row for row in report["layers"]}
    first, last = layers["features.0"], layers["classifier"]
    # 3x3 conv 3 -> 64 with bias at 32x32: 1792 weights (1 byte), 64x32x32 int32 accumulators and int8 outputs
    assert (first["params"], first["output_shape"], first["macs"]) == (1792, [64, 32, 32], 1769472)
    assert first["onchip_bytes"] == 1792 + 65536 * 4 + 65536
    # linear 512 -> 10: 5130 weights, 10 int32 + 10 int8
    assert (last["params"], last["macs"], last["onchip_bytes"]) == (5130, 5120, 5130 + 40 + 10)
    largest = max(report["layers"], key=lambda row: row["onchip_bytes"])
    assert report["max_onchip"] == {"name": largest["name"], "bytes": largest["onchip_bytes"]}
    half = run_in_process(models_main, ["report", "vgg11_cifar", "--image_size", "32", "--num_classes", "10",
                                        "--dtype", "fp16"])
    assert half["layers"][0]["onchip_bytes"] == 1792 * 2 + 65536 * 4 + 65536 * 2
    assert "largest layer on chip: " in capsys.readouterr().out

    fused = run_in_process(models_main, ["report", "repvgg_a0", "--image_size", "32", "--num_classes", "10",
                                         "--deploy"])
    train_form = msvision.create_model("repvgg_a0", num_classes=10).set_train(False)
    deployed = msvision.reparameterize(train_form)
    assert fused["params"] == count_params(deployed) < count_params(train_form)
    assert fused["macs"] == count_macs(deployed, 32) and len(fused["layers"]) == 22 + 1
    assert all(row["name"].endswith("rbr_reparam") for row in fused["layers"][:-1])

    for args, message in ((["--dtype", "int4"], "argument --dtype: invalid choice: 'int4'"),
                          (["--image_size", "8"], "argument --image_size: must be at least 32, got 8"),
                          (["--model_args", "[1]"], "argument --model_args: expected a JSON object"),
                          (["--json", tmp_path / "no" / "r.json"], "cannot write the report")):
        assert message in one_line_error(capsys, models_main, ["report", "vgg11_cifar"] + args)
    assert os.listdir(tmp_path) == ["r.json"]


def test_calibration_images_are_drawn_seeded_and_spread_across_classes(tmp_path):
    """4 class folders of 16, 3, 1 and 0 images: 6 drawn take the classes with images in turn (a, b, c, then a and b,
    then the first of a and b in the seeded class order), the same 6 for the same seed and others for another; a
    plain folder of images works; asking for more than there are takes them all."""
    from msvision.eval.quantize import calibration_files

    for name, count in (("a", 16), ("b", 3), ("c", 1), ("d", 0)):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for index in range(count):
            (tmp_path / "classes" / name / f"{index}.jpg").write_bytes(b"")
    drawn = calibration_files(str(tmp_path / "classes"), 6, seed=0)
    folders = [os.path.basename(os.path.dirname(path)) for path in drawn]
    assert len(set(drawn)) == 6 and sorted(folders) in (list("aaabbc"), list("aabbbc"))
    assert sorted(folders[:3]) == list("abc") and sorted(folders[3:5]) == list("ab")
    assert calibration_files(str(tmp_path / "classes"), 6, seed=0) == drawn
    assert calibration_files(str(tmp_path / "classes"), 6, seed=1) != drawn
    assert len(calibration_files(str(tmp_path / "classes"), 100)) == 20
    plain = calibration_files(str(tmp_path / "classes" / "a"), 5, seed=0)
    assert len(set(plain)) == 5 and all(os.path.dirname(path) == str(tmp_path / "classes" / "a") for path in plain)


def test_calibration_methods_set_different_activation_ranges(tmp_path):
    """The same float file and images quantized with minmax, entropy and percentile: the activation scales differ
    (entropy's and percentile's are at most minmax's: they clip the tails; onnxruntime's own entropy settings, 128
    bins for 128 levels, gave exactly minmax's scales)."""
    from msvision.eval.quantize import quantize_onnx

    helper, rng = onnx.helper, np.random.default_rng(0)
    weights = [onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 3, 3)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
         helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1])], "two_convs",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 16, 16])], weights)
    path = str(tmp_path / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    images = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    scales = {}
    for method in ("minmax", "entropy", "percentile"):
        quantize_onnx(path, str(tmp_path / f"{method}.onnx"), images, method)
        graph = onnx.load(str(tmp_path / f"{method}.onnx")).graph
        values = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
        scales[method] = np.array([float(values[node.input[1]]) for node in graph.node
                                   if node.op_type == "QuantizeLinear" and node.input[0] not in values])
    print({method: float(s.sum()) for method, s in scales.items()})
    assert len({len(s) for s in scales.values()}) == 1
    assert not np.allclose(scales["minmax"], scales["entropy"]) and not np.allclose(scales["minmax"],
                                                                                     scales["percentile"])
    assert np.all(scales["percentile"] <= scales["minmax"] * (1 + 1e-6))
    assert np.all(scales["entropy"] <= scales["minmax"] * (1 + 1e-6))


def test_without_the_deploy_extra_onnx_export_names_the_extra(monkeypatch, tmp_path, capsys):
    """onnx not importable (sys.modules entry None: the import raises ImportError): export.py --format ONNX stops in
    one line naming the extra, before anything is written."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    checkpoint = tmp_path / "m.ckpt"
    ms.save_checkpoint(msvision.create_model("ese_vovnet19b_slim_dw", num_classes=4), str(checkpoint))
    line = one_line_error(capsys, EXPORT_MAIN, ["--ckpt_path", checkpoint, "--model", "ese_vovnet19b_slim_dw",
                                                "--format", "ONNX", "--output", tmp_path / "m"])
    assert line == ("error: ONNX export and evaluation need the deploy extra (onnx is not installed): "
                    "pip install -e '.[deploy]'")
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt"]
