"""Throughput benchmark: msvision vs timm (torch) vs MindCV, each measured in its own subprocess.

A worker builds one model, times full training steps (forward, backward, SGD with momentum 0.9) and inference on a
fixed random batch, and prints one JSON line. The parent runs workers side by side in one run and prints the table.
Data pipelines (decode + augment) are measured separately on generated ImageNet-sized JPEGs.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

RESULT_TAG = "BENCHMARK_RESULT "


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(step, warmup, steps):
    """(first call seconds, median seconds per later call)."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def worker_msvision(opts, library="msvision"):
    import mindspore as ms
    from mindspore import nn

    import msvision  # noqa: F401  (CPU speed setting unless the environment already chose)
    from msvision.config import parse_config
    from msvision.models.complexity import count_macs, count_params
    from msvision.optim import create_optimizer
    from msvision.train.step import TrainStep

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE if opts.mode == "graph" else ms.PYNATIVE_MODE,
                   jit_config={"jit_level": opts.jit_level})
    if library == "mindcv":
        import mindcv
        net = mindcv.create_model(opts.model, num_classes=1000)
    else:
        net = msvision.create_model(opts.model, num_classes=1000)
    params, macs = count_params(net), count_macs(net, opts.image_size)
    images = ms.Tensor(np.random.default_rng(0).standard_normal(
        (opts.batch_size, 3, opts.image_size, opts.image_size)).astype(np.float32))
    labels = ms.Tensor(np.arange(opts.batch_size, dtype=np.int32) % 1000)
    # SGD with momentum 0.9, no weight decay, in every library; MindSpore's Momentum optimizer is that update
    # (it is MindCV's VGG recipe optimizer and msvision's default) and runs 2x faster on CPU than its SGD op
    if library == "mindcv":  # MindSpore's stock one-step cell: the lightest path MindCV's trainer builds on
        optimizer = nn.Momentum(net.trainable_params(), learning_rate=0.001, momentum=0.9)
        train_step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.CrossEntropyLoss()), optimizer)
        step_fn = lambda: train_step(images, labels).asnumpy()  # noqa: E731
    else:
        args = parse_config(["--model", opts.model, "--opt", "momentum", "--momentum", "0.9", "--weight_decay", "0"])
        optimizer = create_optimizer(args, net.trainable_params(), np.full(10_000, 0.001, np.float32))
        train_step = TrainStep(net, nn.CrossEntropyLoss(), optimizer, args)
        step_fn = lambda: train_step(images, labels)[0].asnumpy()  # noqa: E731
    net.set_train(True)
    first, per_step = _timed(step_fn, opts.warmup, opts.steps)
    net.set_train(False)
    infer_first, per_infer = _timed(lambda: net(images).asnumpy(), opts.warmup, opts.steps)
    return dict(params_m=params / 1e6, gmacs=macs / 1e9, compile_s=max(first - per_step, 0.0),
                train_ips=opts.batch_size / per_step, infer_ips=opts.batch_size / per_infer, peak_mb=_peak_mb(),
                isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "default"))


def worker_timm(opts):
    import torch
    if not hasattr(torch.ops.torchvision, "nms"):  # torchvision's C extension does not load with CPU torch
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdata, Tensor scores, float iou_threshold) -> Tensor")
    import timm

    model = timm.create_model(opts.model, num_classes=1000)
    images = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (opts.batch_size, 3, opts.image_size, opts.image_size)).astype(np.float32))
    labels = torch.arange(opts.batch_size) % 1000
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    def infer():
        with torch.inference_mode():
            return model(images).sum().item()

    model.train()
    first, per_step = _timed(train_step, opts.warmup, opts.steps)
    model.eval()
    _, per_infer = _timed(infer, opts.warmup, opts.steps)
    return dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6, gmacs=None, compile_s=0.0,
                train_ips=opts.batch_size / per_step, infer_ips=opts.batch_size / per_infer, peak_mb=_peak_mb(),
                isa=f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def worker_data(opts):
    """Train and eval pipeline throughput (img/s) on generated JPEGs for 1 and 2 parallel workers."""
    from PIL import Image

    import msvision  # noqa: F401
    from msvision.config import parse_config
    from msvision.data.index import split_index
    from msvision.data.transforms import create_loader

    root = tempfile.mkdtemp(prefix="msvision-bench-")
    rng = np.random.default_rng(0)
    for label in range(4):
        folder = os.path.join(root, "train", f"c{label}")
        os.makedirs(folder)
        for index in range(opts.data_images // 4):  # ImageNet's typical 500x375 JPEG, smooth content
            coarse = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((500, 375), Image.BICUBIC).save(os.path.join(folder, f"{index}.jpg"),
                                                                           quality=90)
    split = os.path.join(root, "train")
    index = split_index(split, sorted(os.listdir(split)))
    results = {}
    for workers in (1, 2):
        for training in (True, False):
            args = parse_config(["--model", opts.model, "--num_parallel_workers", str(workers), "--batch_size",
                                 "32", "--num_classes", "4", "--drop_remainder", "false", "--image_resize",
                                 str(opts.image_size)] +
                                (["--auto_augment", "randaug-m9-n2"] if opts.randaug and training else []))
            loader = create_loader(args, index, training)
            start, count = time.perf_counter(), 0
            for images, _ in loader.create_tuple_iterator(num_epochs=1):
                count += images.shape[0]
            results[f"{'train' if training else 'eval'}_w{workers}"] = count / (time.perf_counter() - start)
    return results


def run_worker(kind, opts, extra_env=None):
    """Run one measurement in a subprocess; returns its result dict or {'error': ...}."""
    cmd = [sys.executable, "-m", "msvision.benchmark", "--worker", kind, "--models", opts.model, "--batch_size",
           str(opts.batch_size), "--image_size", str(opts.image_size), "--mode", opts.mode, "--jit_level",
           opts.jit_level, "--steps", str(opts.steps), "--warmup", str(opts.warmup), "--data_images",
           str(opts.data_images)] + (["--randaug"] if opts.randaug else [])
    return tagged_result(cmd, dict(os.environ, **(extra_env or {})))


def tagged_result(cmd, env=None):
    """Run cmd; the JSON on its stdout line that starts with RESULT_TAG, or {'error': its last stderr line}."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def _fmt(value, pattern="{:.1f}"):
    return "-" if value is None else pattern.format(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["vgg16", "ese_vovnet39b"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    parser.add_argument("--jit_level", choices=("O0", "O1", "O2"), default="O0")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first (compile) step")
    parser.add_argument("--compare", nargs="*", default=[], choices=("timm", "mindcv"))
    parser.add_argument("--onednn-isa", dest="onednn_isa", default=None,
                        help="'default' measures msvision also without the CPU speed setting (ONEDNN_MAX_CPU_ISA=ALL)")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra environment for the msvision run (e.g. ONEDNN_MAX_CPU_ISA=AVX512_CORE)")
    parser.add_argument("--data", action="store_true", help="also benchmark the data pipelines")
    parser.add_argument("--data_images", type=int, default=128)
    parser.add_argument("--randaug", action="store_true", help="data benchmark with RandAugment in training")
    parser.add_argument("--data_scale", type=int, nargs="+", default=None, metavar="FILES",
                        help="only measure start-up on generated ImageNet-shaped folders of these sizes")
    parser.add_argument("--data_root", default=os.path.join(tempfile.gettempdir(), "msvision-data-scale"),
                        help="where --data_scale folders are generated (and reused)")
    parser.add_argument("--loop", action="store_true",
                        help="only measure the train loop with and without a host read per step")
    parser.add_argument("--json", default=None, help="write all results to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.worker:
        opts.model = opts.models[0]
        worker = {"msvision": worker_msvision, "mindcv": lambda o: worker_msvision(o, "mindcv"),
                  "timm": worker_timm, "data": worker_data}[opts.worker]
        print(RESULT_TAG + json.dumps(worker(opts)), flush=True)
        return None
    if opts.data_scale:
        from msvision.bench_startup import run
        return run(opts.data_scale, opts.data_root)
    if opts.loop:
        from msvision.bench_loop import run
        return run(opts.models, opts.batch_size, opts.image_size, opts.steps)

    rows = []
    for model in opts.models:
        opts.model = model
        settings = dict(item.split("=", 1) for item in opts.env)
        runs = [("msvision" + (f" ({' '.join(opts.env)})" if opts.env else ""), "msvision", settings)]
        if opts.onednn_isa == "default":
            runs.append(("msvision (oneDNN default ISA)", "msvision", {"ONEDNN_MAX_CPU_ISA": "ALL"}))
        if "mindcv" in opts.compare and model.startswith("vgg") and not model.endswith("_bn"):
            runs.append(("MindCV 0.3.0", "mindcv", None))
        if "timm" in opts.compare:
            runs.append(("timm (torch)", "timm", None))
        for label, kind, env in runs:
            result = run_worker(kind, opts, env)
            rows.append(dict(model=model, library=label, batch_size=opts.batch_size, image_size=opts.image_size,
                             mode=opts.mode if kind != "timm" else "eager", **result))
    print(f"{'model':<24}{'library':<31}{'params(M)':>10}{'GMACs':>7}{'compile s':>10}{'train img/s':>12}"
          f"{'infer img/s':>12}{'peak MB':>9}{'vs ms':>7}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:<24}{row['library']:<31} error: {row['error']}")
            continue
        base = next(r for r in rows if r["model"] == row["model"] and r["library"].startswith("msvision"))
        ratio = base.get("train_ips", 0) / row["train_ips"] if row["train_ips"] else None
        print(f"{row['model']:<24}{row['library']:<31}{row['params_m']:>10.2f}{_fmt(row['gmacs'], '{:.2f}'):>7}"
              f"{row['compile_s']:>10.1f}{row['train_ips']:>12.2f}{row['infer_ips']:>12.2f}{row['peak_mb']:>9.0f}"
              f"{_fmt(ratio, '{:.2f}x'):>7}")
    print(f"batch {opts.batch_size}, {opts.image_size} px, fp32, CPU ({os.cpu_count()} cores); 'vs ms' = msvision "
          f"train img/s / this row's")
    data = None
    if opts.data:
        opts.model = opts.models[0]
        data = run_worker("data", opts)
        consumed = max(r["train_ips"] for r in rows if r["library"].startswith("msvision") and "train_ips" in r)
        print(f"data pipeline img/s at {opts.image_size} px (w = num_parallel_workers): "
              + ", ".join(f"{k} {v:.1f}" for k, v in data.items() if k != "error")
              + f"; the fastest msvision model above trains at {consumed:.1f} img/s")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows, "data": data}, handle, indent=1)
    return rows


if __name__ == "__main__":
    main()
