"""ImageNet-style split folders -> one mindspore.dataset source per run with exact, resumable data order.

Each epoch's order is a permutation seeded by (seed, epoch); rank r of N takes every N-th item of it (the
num_shards/shard_id split), and a resumed epoch skips the items already consumed. The sampler yields those orders
epoch after epoch, so one pipeline serves the whole run; files come from the split's checked index (index.py).
"""
import os

import numpy as np
import mindspore.dataset as ds

from msvision.data.demo import prepare_demo
from msvision.data.index import split_index
from msvision.errors import MsvisionError


def batches(iterator, root):
    """One epoch of a pipeline iterator's (image, label) batches; a decode failure (a file that passed the index's
    check, or was corrupted after it) becomes a one-line error naming the split: the pipeline's error does not say
    which file."""
    try:
        yield from iterator
    except RuntimeError:
        raise MsvisionError(f"cannot decode an image under '{root}': a file is corrupt (its header and end marker "
                            f"looked complete); find it with PIL, remove or replace it") from None


def open_split(args, split):
    """The checked index of a split folder (SplitIndex); the folder must exist and hold non-empty class folders."""
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
    return split_index(root, classes)


SAMPLER_POWER = {"uniform": None, "class_balanced": 0.0, "sqrt": 0.5}


def epoch_draw(num_items, epoch, seed, shuffle, labels=None, power=None):
    """The whole epoch's item order, before sharding, seeded by (seed, epoch). power None: a permutation (each item
    once; identity without shuffle). power q: num_items draws with replacement, class c with probability
    proportional to n_c ** q (q = 0 class-balanced, 0.5 square root), then an item uniformly within the class."""
    rng = np.random.RandomState(seed * 100003 + epoch)
    if power is None:
        return rng.permutation(num_items) if shuffle else np.arange(num_items)
    counts = np.bincount(labels)
    weights = np.where(counts > 0, counts.astype(np.float64) ** power, 0.0)
    drawn = rng.choice(len(counts), size=num_items, p=weights / weights.sum())
    members = np.argsort(labels, kind="stable")  # items grouped by class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    within = np.floor(rng.random_sample(num_items) * counts[drawn]).astype(np.int64)
    return members[starts[drawn] + within]


def epoch_indices(num_items, epoch, seed, shuffle, num_shards, shard_id, skip=0, labels=None, power=None):
    """This rank's item indices for one epoch (padded by wrapping so every rank gets the same count): rank r takes
    positions r, r + N, r + 2N, ... of the epoch's draw."""
    order = epoch_draw(num_items, epoch, seed, shuffle, labels, power)
    per_rank = -(-num_items // num_shards)
    order = np.resize(order, per_rank * num_shards)  # np.resize repeats from the start
    return order[shard_id::num_shards][skip:]


class EpochOrder(ds.Sampler):
    """This rank's item order for epoch after epoch, from first_epoch on: the first `limit` items of each epoch
    (all when None; the items its whole batches use), the first epoch skipping `skip` items (a resumed partial
    epoch). One sampler serves the whole run, so the pipeline is built once. With labels and power, each epoch is
    a class-weighted draw (epoch_draw)."""

    def __init__(self, num_items, seed, shuffle, num_shards, shard_id, first_epoch=0, skip=0, limit=None,
                 labels=None, power=None):
        super().__init__()
        self.limit = limit
        self.num_items, self.seed, self.shuffle = num_items, seed, shuffle
        self.num_shards, self.shard_id = num_shards, shard_id
        self.epoch, self.skip = first_epoch, skip
        self.labels, self.power = labels, power

    def __iter__(self):
        indices = epoch_indices(self.num_items, self.epoch, self.seed, self.shuffle, self.num_shards,
                                self.shard_id, labels=self.labels, power=self.power)[:self.limit][self.skip:]
        self.epoch, self.skip = self.epoch + 1, 0
        return iter(indices.tolist())


def split_rows(index, sampler):
    """The (relative path, label) rows of a split index in the sampler's order; file_reader(index) turns a path
    into the file's bytes (the first op of the image map)."""
    with np.load(index.files) as arrays:
        return ds.NumpySlicesDataset({"image": arrays["paths"], "label": arrays["labels"]}, sampler=sampler)


def file_reader(index):
    """Path -> encoded bytes. MindSpore's ManifestDataset would read from a list in C++, but it opens every file
    at start-up on every rank, which is what the index avoids."""
    root = index.root.encode() + b"/"

    def read(relative):
        return np.fromfile(root + relative.item(), np.uint8)
    return read
