"""Train and eval pipelines from the config and the model's pretrained cfg (mean, std, crop_pct, interpolation).

Training: sampler (sample ids, dataset.py) -> keyed per-sample augmentation in worker processes (augment.py) ->
batch -> keyed batch mixing (mixing.py). Evaluation: rank r takes every N-th item; decode, resize, centre crop,
normalise with MindSpore's C++ ops.
"""
import math
import os

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
import mindspore.dataset.transforms as T
import mindspore.dataset.vision as V

from msvision.data.augment import INTERPOLATION, AugmentNormalised, ReadAndAugment, train_ops
from msvision.data.dataset import SAMPLER_POWER, EpochOrder, SampleSource
from msvision.data.mixing import BatchMixing
from msvision.models import get_pretrained_cfg


def preprocessing(args):
    """Image size, interpolation, crop_pct, mean, std: the config's value where set, else the model's."""
    cfg = get_pretrained_cfg(args.model)
    return dict(
        size=args.image_resize or cfg.input_size[-1],
        interpolation=args.interpolation or cfg.interpolation,
        crop_pct=args.crop_pct or cfg.crop_pct,
        mean=[255 * m for m in (args.mean or cfg.mean)],
        std=[255 * s for s in (args.std or cfg.std)],
    )


def eval_transforms(args, kind="encoded"):
    """Decode, resize the short side to size / crop_pct, centre crop, normalise. Decoding and resizing run on PIL
    images, as timm and torchvision do, so converted weights are validated with their reference preprocessing.
    CIFAR pixels (kind 'pixels') start as HWC arrays."""
    pre = preprocessing(args)
    resize = int(math.floor(pre["size"] / pre["crop_pct"]))
    decode = [V.Decode(to_pil=True)] if kind == "encoded" else [V.ToPIL()]
    return decode + [V.Resize(resize, INTERPOLATION[pre["interpolation"]]), V.CenterCrop(pre["size"]), V.ToNumpy(),
                     V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()]


def _workers(args):
    return min(args.num_parallel_workers, os.cpu_count() or 1)  # recipes ask for 8; a laptop may have fewer


def train_loader(args, split, first_epoch=0, shard_id=0, num_shards=1, skip=0, limit=None):
    """One batched (image, label) pipeline for every epoch from first_epoch on (iterate it once per epoch);
    `limit` and `skip` as in EpochOrder. Labels are one-hot float targets when mixup or cutmix is on.

    exact_resume: the random ops run keyed (augment.py) in worker processes, since each sample sets the
    process-global seed of its ops, which threads would race on. Otherwise MindSpore runs them in its C++ threads,
    seeded once per pipeline. Normalisation always runs in the C++ threads."""
    power = SAMPLER_POWER[args.sampler]
    labels = split.labels()
    order = EpochOrder(split.num_items, args.seed, True, num_shards, shard_id, first_epoch, skip, limit,
                       labels=None if power is None else labels, power=power, repeats=args.aug_repeats)
    pre = preprocessing(args)
    before, after = train_ops(args, pre, split.kind)
    workers = _workers(args)
    threads = dict(num_parallel_workers=workers)
    keyed = dict(num_parallel_workers=workers, python_multiprocessing=workers > 1)
    rng = np.random.RandomState(args.seed * 1000 + first_epoch)
    ds.config.set_seed(args.seed * 1000 + first_epoch)
    data = ds.GeneratorDataset(SampleSource(split.num_items), ["id"], sampler=order)
    columns = dict(input_columns=["id"], output_columns=["image", "label", "id"])
    if args.exact_resume:
        data = data.map(ReadAndAugment(args.seed, order.ids, before, split.reader(), labels), **columns, **keyed)
    else:
        data = data.map(ReadAndAugment(args.seed, order.ids, [], split.reader(), labels), **columns, **threads)
        data = data.map([op.unkeyed(rng) for op in before], input_columns="image", **threads)
    data = data.map([V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()], input_columns="image", **threads)
    if after and args.exact_resume:
        data = data.map(AugmentNormalised(args.seed, order.ids, after, offset=len(before)),
                        input_columns=["image", "id"], output_columns=["image", "id"], **keyed)
    elif after:
        data = data.map([op.unkeyed(rng) for op in after], input_columns="image", **threads)
    data = data.batch(args.batch_size, drop_remainder=args.drop_remainder)
    if args.mixup > 0 or args.cutmix > 0:
        return data.map(BatchMixing(args, order.ids), input_columns=["image", "label", "id"],
                        output_columns=["image", "label"])
    return data.project(["image", "label"])


def eval_loader(args, split, shard_id=0, num_shards=1):
    """One pass over a split, rank r taking items r, r + N, ... (no padding)."""
    sampler = ds.SubsetSampler(list(range(shard_id, split.num_items, num_shards)))
    if split.kind == "encoded":  # item numbers, read into file bytes by the first op
        data = ds.NumpySlicesDataset({"image": np.arange(split.num_items), "label": split.labels()}, sampler=sampler)
        data = data.map([split.reader()], input_columns="image", num_parallel_workers=_workers(args))
    else:
        data = ds.NumpySlicesDataset({"image": split.images, "label": split.labels()}, sampler=sampler)
    data = data.map(eval_transforms(args, split.kind), input_columns="image", num_parallel_workers=_workers(args))
    data = data.map(T.TypeCast(ms.int32), input_columns="label")
    return data.batch(args.batch_size, drop_remainder=False)
