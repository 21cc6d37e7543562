"""CPU inference across runtimes: msvision (MindSpore GRAPH), its float32 and int8 ONNX files in onnxruntime, and timm
(PyTorch eager), each timed in its own process on the same random batch; a RepVGG runs in its fused form everywhere.

The ONNX files are exported (and the int8 one quantized, calibrated on 8 random images: speed does not depend on the
ranges) by a preparing process per model and batch size, since an exported graph keeps the batch size it was traced
at. Weights are random (seeded): speed does not depend on them either.
"""
import os
import tempfile

import numpy as np

from msvision.bench.common import peak_mb, tagged_result, timed, worker_command

RUNTIMES = ("msvision", "onnx float32", "onnx int8", "timm")


def _images(opts):
    return np.random.default_rng(0).standard_normal(
        (opts.batch_size, 3, opts.image_size, opts.image_size)).astype(np.float32)


def worker_prepare(opts):
    """Export opts.model at opts.batch_size to opts.onnx_file and quantize it to the .int8.onnx beside it."""
    import mindspore as ms

    import msvision
    from msvision.data.loaders import preprocessing
    from msvision.eval.export import export_model
    from msvision.eval.onnx_file import onnx_metadata
    from msvision.eval.quantize import quantize_onnx

    ms.set_device("CPU")
    ms.set_seed(0)
    net = msvision.create_model(opts.model, num_classes=1000).set_train(False)
    metadata = onnx_metadata(opts.model, preprocessing(opts.model, opts.image_size))
    path = export_model(net, opts.image_size, "ONNX", opts.onnx_file, metadata, batch_size=opts.batch_size)
    calibration = np.random.default_rng(1).standard_normal(
        (max(8, opts.batch_size), 3, opts.image_size, opts.image_size)).astype(np.float32)
    quantize_onnx(path, path[: -len(".onnx")] + ".int8.onnx", calibration)
    return dict(peak_mb=peak_mb())


def worker_msvision_infer(opts):
    import mindspore as ms

    import msvision
    from msvision.models.reparam import deployed

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE, jit_config={"jit_level": "O0"})
    ms.set_seed(0)
    net = deployed(msvision.create_model(opts.model, num_classes=1000).set_train(False))
    images = ms.Tensor(_images(opts))
    _, per_call = timed(lambda: net(images).asnumpy(), opts.warmup, opts.steps)
    return dict(infer_ips=opts.batch_size / per_call, peak_mb=peak_mb())


def worker_onnx_infer(opts):
    import onnxruntime

    session = onnxruntime.InferenceSession(opts.onnx_file, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: _images(opts)}
    _, per_call = timed(lambda: session.run(None, feed), opts.warmup, opts.steps)
    return dict(infer_ips=opts.batch_size / per_call, peak_mb=peak_mb(),
                threads=session.get_session_options().intra_op_num_threads)


def worker_timm_infer(opts):
    from msvision.bench.throughput import import_timm

    torch, timm = import_timm()
    model = timm.create_model(opts.model, num_classes=1000).eval()
    if opts.model.startswith("repvgg"):
        from timm.utils.model import reparameterize_model
        model = reparameterize_model(model)
    images = torch.from_numpy(_images(opts))

    def infer():
        with torch.inference_mode():
            return model(images).sum().item()

    _, per_call = timed(infer, opts.warmup, opts.steps)
    return dict(infer_ips=opts.batch_size / per_call, peak_mb=peak_mb())


def _measure_runtimes(opts, model, batch, onnx_file):
    """One row per runtime for `model` at `batch` (the ONNX files exported to onnx_file first, removed after)."""
    rows = []
    common = ["--models", model, "--batch_size", batch, "--image_size", opts.image_size, "--steps", opts.steps,
              "--warmup", opts.warmup]
    prepared = tagged_result(worker_command("infer_prepare", *common, "--onnx_file", onnx_file))
    int8_file = onnx_file[: -len(".onnx")] + ".int8.onnx"
    for runtime in RUNTIMES:
        if runtime.startswith("onnx") and "error" in prepared:
            result = prepared
        elif runtime.startswith("onnx"):
            path = onnx_file if runtime.endswith("float32") else int8_file
            result = tagged_result(worker_command("infer_onnx", *common, "--onnx_file", path))
        else:
            result = tagged_result(worker_command(f"infer_{runtime}", *common))
        rows.append(dict(model=model, batch_size=batch, image_size=opts.image_size, runtime=runtime, **result))
    for path in (onnx_file, int8_file):  # VGG16's files are 0.5 GB each
        if os.path.exists(path):
            os.remove(path)
    return rows


def run(opts):
    """The inference table of opts.models at each of opts.infer_batch_sizes; returns its rows."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="msvision-infer-") as folder:
        for model in opts.models:
            for batch in opts.infer_batch_sizes:
                rows += _measure_runtimes(opts, model, batch, os.path.join(folder, f"{model}-b{batch}.onnx"))
    print(f"{'model':<18}{'batch':>6}  {'runtime':<16}{'img/s':>9}{'peak MB':>9}{'vs msvision':>13}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:<18}{row['batch_size']:>6}  {row['runtime']:<16} error: {row['error']}")
            continue
        base = next(r for r in rows if (r["model"], r["batch_size"], r["runtime"]) ==
                    (row["model"], row["batch_size"], "msvision"))
        ratio = row["infer_ips"] / base["infer_ips"] if base.get("infer_ips") else float("nan")
        print(f"{row['model']:<18}{row['batch_size']:>6}  {row['runtime']:<16}{row['infer_ips']:>9.2f}"
              f"{row['peak_mb']:>9.0f}{ratio:>12.2f}x")
    print(f"{opts.image_size} px, CPU ({os.cpu_count()} cores); each runtime in its own process; 'vs msvision' = "
          f"this row's img/s / msvision's")
    return rows
