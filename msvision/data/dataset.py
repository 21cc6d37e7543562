"""Splits (class folders or CIFAR archives) and one run's exact, resumable sample order.

Each epoch's order is a draw seeded by (seed, epoch): a permutation (sampler uniform) or a class-weighted draw with
replacement (class_balanced, sqrt); with aug_repeats R each drawn item is repeated R times in a row, as in timm's
RepeatAugSampler (so the repeats land on different ranks). Rank r of N takes positions r, r + N, ... of the draw
(wrapping at its end), ceil(n / N) of them: every epoch has the length of the split. A resumed epoch skips what was
consumed. The sampler yields sample ids that encode (epoch, position, item), so each sample's augmentation is keyed
by its place in the run (augment.py) and a resumed run draws exactly what the uninterrupted one drew.
"""
import os

import numpy as np
import mindspore.dataset as ds

from msvision.data.cifar import open_cifar
from msvision.data.demo import prepare_demo
from msvision.data.index import split_index
from msvision.errors import MsvisionError

SAMPLER_POWER = {"uniform": None, "class_balanced": 0.0, "sqrt": 0.5}


def batches(iterator, root):
    """One epoch of a pipeline iterator's (image, label) batches; a decode failure (a file that passed the index's
    check, or was corrupted after it) becomes a one-line error naming the split: the pipeline's error does not say
    which file."""
    try:
        yield from iterator
    except RuntimeError:
        raise MsvisionError(f"cannot decode an image under '{root}': a file is corrupt (its header and end marker "
                            f"looked complete); find it with PIL, remove or replace it") from None


def open_split(split, dataset="imagefolder", data_dir=None, train_split="train", val_split="val"):
    """The split `split` (a sub-folder name) of a dataset: a checked folder index (SplitIndex) or CIFAR records
    (CifarSplit, the training records for split == train_split)."""
    if dataset in ("cifar10", "cifar100"):
        return open_cifar(data_dir, dataset, split == train_split)
    if dataset == "demo":
        data_dir = prepare_demo(data_dir)
    else:
        if not data_dir:
            raise MsvisionError("data_dir is not set: pass --data_dir DIR holding train/ and val/ class folders "
                                "(or --dataset demo)")
        if not os.path.isdir(data_dir):
            raise MsvisionError(f"data_dir not found: '{data_dir}' (expected a folder with "
                                f"{train_split}/ and {val_split}/ class folders)")
    root = os.path.join(data_dir, split)
    if not os.path.isdir(root):
        raise MsvisionError(f"split folder missing: '{root}' (data_dir must hold {split}/ with one folder per class)")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise MsvisionError(f"no class folders in '{root}' (expected {split}/<class_name>/<image files>)")
    return split_index(root, classes)


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


def rank_order(num_items, epoch, seed, shuffle, num_shards, shard_id, labels=None, power=None, repeats=1):
    """(positions in the epoch's draw, items) of this rank for one epoch: positions r, r + N, ..., ceil(n / N) of
    them, the draw (each item repeated `repeats` times in a row) wrapping at its end."""
    draw = np.repeat(epoch_draw(num_items, epoch, seed, shuffle, labels, power), repeats)
    positions = np.arange(shard_id, -(-num_items // num_shards) * num_shards, num_shards)
    return positions, draw[positions % len(draw)]


class SampleIds:
    """Sample id <-> (epoch, position, item): one integer through the pipeline's sampler and columns."""

    def __init__(self, num_items):
        self.num_items, self.stride = num_items, 2 * num_items  # positions < ceil(n / N) * N < 2n

    def encode(self, epoch, positions, items):
        return (epoch * self.stride + positions) * self.num_items + items

    def decode(self, sample_id):
        rest, item = divmod(int(sample_id), self.num_items)
        epoch, position = divmod(rest, self.stride)
        return epoch, position, item


class EpochOrder(ds.Sampler):
    """This rank's sample ids for epoch after epoch, from first_epoch on: the first `limit` of each epoch (all when
    None; the samples its whole batches use), the first epoch skipping `skip` (a resumed partial epoch). One sampler
    serves the whole run, so the pipeline is built once."""

    def __init__(self, num_items, seed, shuffle, num_shards, shard_id, first_epoch=0, skip=0, limit=None,
                 labels=None, power=None, repeats=1):
        super().__init__()
        self.ids = SampleIds(num_items)
        self.order = dict(num_items=num_items, seed=seed, shuffle=shuffle, num_shards=num_shards, shard_id=shard_id,
                          labels=labels, power=power, repeats=repeats)
        self.epoch, self.skip, self.limit = first_epoch, skip, limit

    def epoch_ids(self, epoch):
        """This rank's sample ids of one whole epoch."""
        positions, items = rank_order(epoch=epoch, **self.order)
        return self.ids.encode(epoch, positions, items)[:self.limit]

    def __iter__(self):
        ids = self.epoch_ids(self.epoch)[self.skip:]
        self.epoch, self.skip = self.epoch + 1, 0
        return iter(ids.tolist())


class SampleSource:
    """Random-access source of the training pipeline: the sampler's id is the only column (augment.py reads the
    item it names)."""

    def __init__(self, num_items):
        self.num_items = num_items

    def __getitem__(self, sample_id):
        return (np.array(sample_id, np.int64),)

    def __len__(self):
        return self.num_items
