"""Data pipeline throughput: `scripts/benchmark.py --data` (img/s of training pipelines, and of evaluation).

Generated ImageNet-sized JPEGs (500x375, decoded to --image_size) and a CIFAR-10 archive of the same number of
records. Every pipeline is measured with exact_resume on (keyed augmentation in worker processes) and off
(MindSpore's C++ threads), for 1 and 2 workers, each in a fresh process, in `rounds` interleaved rounds; the table
gives the median. The first batch (pipeline start) is not timed; two epochs are.
"""
import json
import os
import statistics
import tempfile
import time

import numpy as np

from msvision.bench.common import tagged_result, worker_command

# name -> train_loader's options (dataset: open_split's; image_resize: the preprocessing's)
PIPELINES = {
    "default (crop, flip)": {},
    "randaug-m9-n2": {"auto_augment": "randaug-m9-n2"},
    "autoaug": {"auto_augment": "autoaug"},
    "mixup+cutmix": {"mixing": {"mixup": 0.8, "cutmix": 1.0}},
    "cifar (4 px shift, flip, cutmix)": {"dataset": "cifar10", "crop_padding": 4, "mixing": {"cutmix": 1.0},
                                         "image_resize": 32},
}


def make_data(root, images):
    """train/ with 4 class folders of 500x375 JPEGs, and a CIFAR-10 archive of as many records; returns root."""
    from PIL import Image

    from msvision.data.cifar import write_cifar

    if os.path.exists(os.path.join(root, "complete")):
        return root
    rng = np.random.default_rng(0)
    for label in range(4):
        folder = os.path.join(root, "train", f"c{label}")
        os.makedirs(folder, exist_ok=True)
        for index in range(images // 4):  # ImageNet's typical 500x375 JPEG, smooth content
            coarse = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((500, 375), Image.BICUBIC).save(os.path.join(folder, f"{index}.jpg"),
                                                                           quality=90)
    pixels = rng.integers(0, 255, (images, 32, 32, 3), dtype=np.uint8)
    write_cifar(os.path.join(root, "cifar-10-batches-bin"), "cifar10",
                {"data_batch_1.bin": (pixels, np.arange(images) % 10)})
    open(os.path.join(root, "complete"), "w").close()
    return root


def measure(spec):
    """In a worker process: img/s of one pipeline over two epochs after its first batch."""
    import msvision  # noqa: F401
    from msvision.data.dataset import open_split
    from msvision.data.loaders import eval_loader, train_loader

    options = dict(spec["options"])
    split = open_split("train", dataset=options.pop("dataset", "imagefolder"), data_dir=spec["root"])
    preprocess = dict(model=spec["model"], image_resize=options.pop("image_resize", spec["image_size"]))
    common = dict(batch_size=32, num_parallel_workers=spec["workers"])
    if spec["training"]:
        mixing = options.pop("mixing", None)
        if mixing:
            mixing = dict(mixing, num_classes=10 if split.kind == "pixels" else 4)
        loader = train_loader(split, preprocess, drop_remainder=False, exact_resume=spec["exact"], mixing=mixing,
                              **common, **options)
    else:
        loader = eval_loader(split, preprocess, **common)
    iterator = loader.create_tuple_iterator(num_epochs=3)
    next(iter(iterator))
    for _ in iterator:  # the rest of the first epoch: workers are warm afterwards
        pass
    start, count = time.perf_counter(), 0
    for _ in range(2):
        for images, _ in iterator:
            count += images.shape[0]
    return {"img_per_s": count / (time.perf_counter() - start)}


def run(opts):
    """The pipeline table; returns its rows."""
    root = make_data(os.path.join(tempfile.gettempdir(), f"msvision-bench-data-{opts.data_images}"), opts.data_images)
    cases = [(name, options, exact, True) for name, options in PIPELINES.items() for exact in (True, False)]
    cases.append(("eval (resize, centre crop)", {}, True, False))
    samples = {}
    for _ in range(opts.rounds):
        for name, options, exact, training in cases:
            for workers in (1, 2):
                spec = dict(model=opts.models[0], workers=workers, image_size=opts.image_size, root=root,
                            exact=exact, options=options, training=training)
                result = tagged_result(worker_command("data", "--data_spec", json.dumps(spec)))
                samples.setdefault((name, exact, workers), []).append(result.get("img_per_s", float("nan")))
    rows = [dict(pipeline=name, exact_resume=exact if training else None,
                 **{f"w{w}": statistics.median(samples[(name, exact, w)]) for w in (1, 2)})
            for name, options, exact, training in cases]
    print(f"{'pipeline':<34}{'exact_resume':>13}{'1 worker':>10}{'2 workers':>11}   img/s, median of {opts.rounds}")
    for row in rows:
        exact = "-" if row["exact_resume"] is None else str(row["exact_resume"]).lower()
        print(f"{row['pipeline']:<34}{exact:>13}{row['w1']:>10.1f}{row['w2']:>11.1f}")
    print(f"{opts.data_images} generated 500x375 JPEGs (CIFAR: as many 32 px records) to {opts.image_size} px "
          f"(CIFAR 32 px), batch 32, {os.cpu_count()} cores")
    return rows
