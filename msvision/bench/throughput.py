"""Model throughput: msvision vs timm (torch) vs MindCV, each measured in its own subprocess.

A worker builds one model, times full training steps (forward, backward, SGD with momentum 0.9) and inference on a
fixed random batch, and prints one tagged JSON line; run() runs the workers side by side and prints the table. A
RepVGG trains in its train form and infers in its fused form (as deployed), in msvision and in timm.
"""
import os

import numpy as np

from msvision.bench.common import peak_mb, tagged_result, timed, worker_command


def worker_msvision(opts, library="msvision"):
    import mindspore as ms
    from mindspore import nn

    import msvision  # noqa: F401  (CPU speed setting unless the environment already chose)
    from msvision.models.complexity import count_macs, count_params
    from msvision.models.reparam import deployed
    from msvision.optim.factory import create_optimizer
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
        optimizer = create_optimizer(net, "momentum", lr=0.001, momentum=0.9, weight_decay=0.0)
        train_step = TrainStep(net, nn.CrossEntropyLoss(), optimizer)
        step_fn = lambda: train_step(images, labels)[0].asnumpy()  # noqa: E731
    net.set_train(True)
    first, per_step = timed(step_fn, opts.warmup, opts.steps)
    net = deployed(net.set_train(False))
    infer_first, per_infer = timed(lambda: net(images).asnumpy(), opts.warmup, opts.steps)
    return dict(params_m=params / 1e6, gmacs=macs / 1e9, compile_s=max(first - per_step, 0.0),
                train_ips=opts.batch_size / per_step, infer_ips=opts.batch_size / per_infer, peak_mb=peak_mb(),
                isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "default"))


def import_timm():
    """(torch, timm), with the torchvision op schemas timm expects registered when torchvision's C extension does
    not load (CPU torch)."""
    import torch
    if not hasattr(torch.ops.torchvision, "nms"):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdata, Tensor scores, float iou_threshold) -> Tensor")
    import timm
    return torch, timm


def worker_timm(opts):
    torch, timm = import_timm()
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

    params = sum(p.numel() for p in model.parameters())  # the train form's
    model.train()
    first, per_step = timed(train_step, opts.warmup, opts.steps)
    model.eval()
    if opts.model.startswith("repvgg"):
        from timm.utils.model import reparameterize_model
        model = reparameterize_model(model)
    _, per_infer = timed(infer, opts.warmup, opts.steps)
    return dict(params_m=params / 1e6, gmacs=None, compile_s=0.0,
                train_ips=opts.batch_size / per_step, infer_ips=opts.batch_size / per_infer, peak_mb=peak_mb(),
                isa=f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def worker_args(opts, model):
    """The options a model worker needs."""
    return ["--models", model, "--batch_size", opts.batch_size, "--image_size", opts.image_size, "--mode", opts.mode,
            "--jit_level", opts.jit_level, "--steps", opts.steps, "--warmup", opts.warmup]


def _fmt(value, pattern="{:.1f}"):
    return "-" if value is None else pattern.format(value)


def run(opts):
    """The throughput table of opts.models (and the libraries of opts.compare); returns its rows."""
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
            result = tagged_result(worker_command(kind, *worker_args(opts, model)),
                                   dict(os.environ, **(env or {})))
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
    return rows
