"""Start-up cost at ImageNet shape: `scripts/benchmark.py --data_scale 10000 100000 300000`.

Per size, a folder of 1000 class folders of small JPEGs is generated once (under --data_root), then a fresh process
measures: the first start (check every file + write the index, empty cache), a rerun start (index reused), building
the run's one training pipeline, the first batch, the first batch of the next epoch, and its peak RSS.
"""
import os
import tempfile
import time

import numpy as np

from msvision.bench.common import peak_mb, tagged_result, worker_command

CLASSES = 1000


def make_folder(root, num_files, classes=CLASSES):
    """ImageNet-shaped train split: `classes` folders, num_files JPEGs of 1-2 KB (a few distinct ones, reused)."""
    from PIL import Image

    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return os.path.join(root, "train")
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(8):
        path = os.path.join(tempfile.gettempdir(), f"msvision-jpeg-{os.getpid()}.jpg")
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize((48, 40)).save(path, quality=90)
        with open(path, "rb") as handle:
            encoded.append(handle.read())
        os.remove(path)
    for index in range(num_files):
        folder = os.path.join(root, "train", f"n{index % classes:08d}")
        if index < classes:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"img_{index:08d}.JPEG"), "wb") as handle:
            handle.write(encoded[index % len(encoded)])
    open(done, "w").close()
    return os.path.join(root, "train")


def measure(split, cache):
    """Run in a fresh process: the timings of one split (seconds) and the process's peak RSS (MB)."""
    os.environ["MSVISION_CACHE"] = cache
    import msvision  # noqa: F401
    from msvision.data.index import split_index
    from msvision.data.loaders import train_loader

    classes = sorted(e.name for e in os.scandir(split) if e.is_dir())
    start = time.perf_counter()
    index = split_index(split, classes)
    first = time.perf_counter() - start
    start = time.perf_counter()
    index = split_index(split, classes)
    rerun = time.perf_counter() - start
    start = time.perf_counter()
    loader = train_loader(index, dict(model="vgg11", image_resize=32), batch_size=64, num_parallel_workers=2,
                          hflip=0.0, limit=64 * 4)  # 4 batches per epoch: the start-up is what is timed
    iterator = loader.create_tuple_iterator(num_epochs=2)
    build = time.perf_counter() - start
    start = time.perf_counter()
    epoch = iter(iterator)
    next(epoch)
    first_batch = time.perf_counter() - start
    for _ in epoch:
        pass
    start = time.perf_counter()
    next(iter(iterator))
    next_epoch = time.perf_counter() - start
    return dict(files=index.num_items, first_start_s=first, rerun_start_s=rerun, pipeline_build_s=build,
                first_batch_s=first_batch, next_epoch_first_batch_s=next_epoch, peak_rss_mb=peak_mb())


def run(sizes, data_root):
    """Measure every size in its own process (after generating the folder once); print and return the rows."""
    rows = []
    for size in sizes:
        root = make_folder(os.path.join(data_root, f"imagenet-shaped-{size}"), size)
        with tempfile.TemporaryDirectory(prefix="msvision-cache-") as cache:
            rows.append(dict({"files": size}, **tagged_result(worker_command("startup", "--split", root, "--cache",
                                                                             cache))))
    print(f"{'files':>8}{'first start s':>15}{'rerun start s':>15}{'build s':>9}{'1st batch s':>13}"
          f"{'next epoch s':>14}{'peak RSS MB':>13}{'first s/100k':>14}")
    for row in rows:
        if "error" in row:
            print(f"{row['files']:>8} error: {row['error']}")
            continue
        print(f"{row['files']:>8}{row['first_start_s']:>15.2f}{row['rerun_start_s']:>15.2f}"
              f"{row['pipeline_build_s']:>9.2f}{row['first_batch_s']:>13.2f}{row['next_epoch_first_batch_s']:>14.2f}"
              f"{row['peak_rss_mb']:>13.0f}{row['first_start_s'] / row['files'] * 1e5:>14.2f}")
    print(f"{CLASSES} classes, JPEGs of ~1-2 KB, warm page cache, {os.cpu_count()} cores; a rerun's time to the "
          f"first batch = rerun start + build + 1st batch")
    return rows
