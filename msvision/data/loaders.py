"""Train and eval pipelines, with the model's pretrained cfg (mean, std, crop_pct, interpolation) as defaults.

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


def preprocessing(model, image_resize=None, interpolation=None, crop_pct=None, mean=None, std=None):
    """Image size, interpolation, crop_pct, mean, std (0-255 scale): the value given, else the model's."""
    cfg = get_pretrained_cfg(model)
    return dict(
        size=image_resize or cfg.input_size[-1],
        interpolation=interpolation or cfg.interpolation,
        crop_pct=crop_pct or cfg.crop_pct,
        mean=[255 * m for m in (mean or cfg.mean)],
        std=[255 * s for s in (std or cfg.std)],
    )


def eval_transforms(pre, kind="encoded"):
    """Decode, resize the short side to size / crop_pct, centre crop, normalise (pre: preprocessing()'s dict).
    Decoding and resizing run on PIL images, as timm and torchvision do, so converted weights are validated with
    their reference preprocessing. CIFAR pixels (kind 'pixels') start as HWC arrays."""
    resize = int(math.floor(pre["size"] / pre["crop_pct"]))
    decode = [V.Decode(to_pil=True)] if kind == "encoded" else [V.ToPIL()]
    return decode + [V.Resize(resize, INTERPOLATION[pre["interpolation"]]), V.CenterCrop(pre["size"]), V.ToNumpy(),
                     V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()]


def _workers(requested):
    return min(requested, os.cpu_count() or 1)  # recipes ask for 8; a laptop may have fewer


def train_loader(split, preprocess, batch_size, seed=42, first_epoch=0, shard_id=0, num_shards=1, skip=0, limit=None,
                 sampler="uniform", aug_repeats=1, exact_resume=True, drop_remainder=True, num_parallel_workers=2,
                 mixing=None, **augment):
    """One batched (image, label) pipeline for every epoch from first_epoch on (iterate it once per epoch);
    `limit` and `skip` as in EpochOrder. preprocess: preprocessing()'s arguments; mixing: BatchMixing's arguments
    but the ids and seed (None: no mixing; labels are then class indices, else one-hot float targets); augment:
    augment.train_ops' options.

    exact_resume: the random ops run keyed (augment.py) in worker processes, since each sample sets the
    process-global seed of its ops, which threads would race on. Otherwise MindSpore runs them in its C++ threads,
    seeded once per pipeline. Normalisation always runs in the C++ threads."""
    power = SAMPLER_POWER[sampler]
    labels = split.labels()
    order = EpochOrder(split.num_items, seed, True, num_shards, shard_id, first_epoch, skip, limit,
                       labels=None if power is None else labels, power=power, repeats=aug_repeats)
    pre = preprocessing(**preprocess)
    before, after = train_ops(pre, split.kind, **augment)
    workers = _workers(num_parallel_workers)
    threads = dict(num_parallel_workers=workers)
    keyed = dict(num_parallel_workers=workers, python_multiprocessing=workers > 1)
    rng = np.random.RandomState(seed * 1000 + first_epoch)
    ds.config.set_seed(seed * 1000 + first_epoch)
    data = ds.GeneratorDataset(SampleSource(split.num_items), ["id"], sampler=order)
    columns = dict(input_columns=["id"], output_columns=["image", "label", "id"])
    if exact_resume:
        data = data.map(ReadAndAugment(seed, order.ids, before, split.reader(), labels), **columns, **keyed)
    else:
        data = data.map(ReadAndAugment(seed, order.ids, [], split.reader(), labels), **columns, **threads)
        data = data.map([op.unkeyed(rng) for op in before], input_columns="image", **threads)
    data = data.map([V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()], input_columns="image", **threads)
    if after and exact_resume:
        data = data.map(AugmentNormalised(seed, order.ids, after, offset=len(before)),
                        input_columns=["image", "id"], output_columns=["image", "id"], **keyed)
    elif after:
        data = data.map([op.unkeyed(rng) for op in after], input_columns="image", **threads)
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    if mixing:
        return data.map(BatchMixing(order.ids, seed=seed, **mixing), input_columns=["image", "label", "id"],
                        output_columns=["image", "label"])
    return data.project(["image", "label"])


def eval_loader(split, preprocess, batch_size, num_parallel_workers=2, shard_id=0, num_shards=1):
    """One pass over a split, rank r taking items r, r + N, ... (no padding); preprocess: preprocessing()'s
    arguments."""
    sampler = ds.SubsetSampler(list(range(shard_id, split.num_items, num_shards)))
    workers = _workers(num_parallel_workers)
    data = ds.NumpySlicesDataset({"image": np.arange(split.num_items), "label": split.labels()}, sampler=sampler)
    data = data.map([split.reader()], input_columns="image", num_parallel_workers=workers)  # item -> image
    data = data.map(eval_transforms(preprocessing(**preprocess), split.kind), input_columns="image",
                    num_parallel_workers=workers)
    data = data.map(T.TypeCast(ms.int32), input_columns="label")
    return data.batch(batch_size, drop_remainder=False)
