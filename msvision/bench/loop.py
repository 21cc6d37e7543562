"""The training loop's host reads: `scripts/benchmark.py --loop --models M`.

Times `steps` train steps on a fixed batch two ways, interleaved: the loop as it is (statistics stay on the device,
read once at the end of the interval) and the loop as it was (loss and finite flag read on the host after every
step). On CPU MindSpore runs each step synchronously, so little difference is expected; on Ascend the per-step
read stops the host from queueing the next step while the device computes (not measurable here).
"""
import statistics
import time

import numpy as np


def measure(model, batch_size, image_size, steps, rounds=4):
    """Median ms/step of each way over `rounds` interleaved runs of `steps` steps (order alternating)."""
    import mindspore as ms
    from mindspore import nn

    import msvision
    from msvision.optim import create_optimizer
    from msvision.optim.schedule import lr_schedule
    from msvision.train.step import TrainStep

    ms.set_context(mode=ms.GRAPH_MODE, jit_config={"jit_level": "O0"})
    net = msvision.create_model(model, num_classes=10)
    optimizer = create_optimizer(net, lr=lr_schedule(0.01, 10 ** 6, epoch_size=1))
    step = TrainStep(net, nn.CrossEntropyLoss(), optimizer)
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32))
    labels = ms.Tensor(rng.integers(0, 10, batch_size).astype(np.int32))
    step(images, labels)  # compile

    def device_side():
        for _ in range(steps):
            step(images, labels)
        step.read_stats()

    def per_step_read():
        for _ in range(steps):
            loss, finite = step(images, labels)
            float(loss.asnumpy()), bool(finite)
        step.read_stats()

    times = {"device-side statistics (now)": [], "per-step host read (before)": []}
    ways = list(zip(times, (device_side, per_step_read)))
    for round_index in range(rounds):
        for name, run in ways[::-1] if round_index % 2 else ways:
            start = time.perf_counter()
            run()
            times[name].append(1000.0 * (time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def run(models, batch_size, image_size, steps):
    """Print and return one result per model."""
    rows = []
    for model in models:
        result = measure(model, batch_size, image_size, steps)
        print(f"{model}, batch {batch_size}, {image_size} px, {steps} steps x 4 interleaved rounds: " +
              ", ".join(f"{name} {ms_per_step:.1f} ms/step" for name, ms_per_step in result.items()))
        rows.append(dict(model=model, **result))
    return rows
