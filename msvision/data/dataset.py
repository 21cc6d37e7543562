"""ImageNet-style split folders -> a per-epoch mindspore.dataset pipeline with exact, resumable data order.

Each epoch's order is a permutation seeded by (seed, epoch); rank r of N takes every N-th item of it (the
num_shards/shard_id split), and a resumed epoch skips the items already consumed. A new pipeline per epoch keeps
that order, and the augmentation seed (seed, epoch), reproducible.
"""
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import mindspore.dataset as ds

from msvision.data.demo import prepare_demo
from msvision.errors import MsvisionError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")
LOG = logging.getLogger("msvision")


def image_problem(path):
    """Why an image file cannot be decoded (by its header and end marker), or None when it looks complete.

    MindSpore's decoder stops the whole process on a truncated JPEG, so files are checked before any pipeline runs.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(max(0, os.path.getsize(path) - 1024))
            tail = handle.read()
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if head[:2] == b"\xff\xd8":
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end marker)"
    if head == b"\x89PNG\r\n\x1a\n":
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head[:2] == b"BM":
        return None
    return "not a JPEG, PNG or BMP image"


def scan_split(root, classes):
    """Check every image of a split; stop naming unreadable ones, count (and skip) non-image files."""
    images, others = [], []
    for name in classes:
        for entry in os.scandir(os.path.join(root, name)):
            if entry.is_file():
                (images if entry.name.endswith(IMAGE_EXTENSIONS) else others).append(entry.path)
    with ThreadPoolExecutor(max_workers=16) as pool:
        problems = [(p, why) for p, why in zip(images, pool.map(image_problem, images)) if why]
    if problems:
        listed = "; ".join(f"{p}: {why}" for p, why in problems[:5])
        more = f"; ... (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise MsvisionError(f"{len(problems)} unreadable image file(s) in '{root}' ({listed}{more}): remove or replace "
                            f"them")
    if others:
        LOG.warning("%s: skipped %d files without an image extension (e.g. %s)", root, len(others), others[0])
    return len(images)


def batches(loader, root):
    """Iterate a pipeline's (image, label) batches; a decode failure becomes a one-line error naming the file."""
    try:
        yield from loader.create_tuple_iterator(num_epochs=1)
    except RuntimeError as err:
        match = re.search(r"corresponding data file is: (\S+?)\.?(\s|$)", str(err))
        where = f"'{match.group(1)}'" if match else f"an image under '{root}'"
        raise MsvisionError(f"cannot decode {where}: the file is corrupt; remove or replace it") from None


def split_root(args, split):
    """The folder of a split; checks it exists and holds non-empty class folders."""
    if args.dataset == "demo":
        data_dir = prepare_demo(args.data_dir)
    else:
        data_dir = args.data_dir
        if not data_dir:
            raise MsvisionError("data_dir is not set: pass --data_dir DIR holding train/ and val/ class folders "
                                "(or --dataset demo)")
        if not os.path.isdir(data_dir):
            raise MsvisionError(f"data_dir not found: '{data_dir}' (expected a folder with "
                                f"{args.train_split}/ and {args.val_split}/ class folders)")
    root = os.path.join(data_dir, split)
    if not os.path.isdir(root):
        raise MsvisionError(f"split folder missing: '{root}' (data_dir must hold {split}/ with one folder per class)")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise MsvisionError(f"no class folders in '{root}' (expected {split}/<class_name>/<image files>)")
    for name in classes:
        folder = os.path.join(root, name)
        if not any(e.name.endswith(IMAGE_EXTENSIONS) for e in os.scandir(folder) if e.is_file()):
            raise MsvisionError(f"class folder has no images: '{folder}' (expected {', '.join(IMAGE_EXTENSIONS[:5])})")
    scan_split(root, classes)
    return root, classes


def epoch_indices(num_items, epoch, seed, shuffle, num_shards, shard_id, skip=0):
    """This rank's item indices for one epoch (padded by wrapping so every rank gets the same count)."""
    order = np.random.RandomState(seed * 100003 + epoch).permutation(num_items) if shuffle else np.arange(num_items)
    per_rank = -(-num_items // num_shards)
    order = np.resize(order, per_rank * num_shards)  # np.resize repeats from the start
    return order[shard_id::num_shards][skip:]


def image_folder(root, indices, num_workers):
    """ImageFolderDataset reading exactly `indices` in that order."""
    return ds.ImageFolderDataset(root, sampler=ds.SubsetSampler(list(map(int, indices))),
                                 num_parallel_workers=num_workers, extensions=list(IMAGE_EXTENSIONS))


def count_items(root):
    return ds.ImageFolderDataset(root, extensions=list(IMAGE_EXTENSIONS)).get_dataset_size()
