"""Train and eval pipelines from the config and the model's pretrained cfg (mean, std, crop_pct, interpolation)."""
import math
import os

import mindspore as ms
import mindspore.dataset as ds
import mindspore.dataset.transforms as T
import mindspore.dataset.vision as V

from msvision.data.dataset import SAMPLER_POWER, EpochOrder, file_reader, split_rows
from msvision.errors import MsvisionError
from msvision.models import get_pretrained_cfg

INTERPOLATION = {"bilinear": V.Inter.BILINEAR, "bicubic": V.Inter.BICUBIC, "nearest": V.Inter.NEAREST,
                 "area": V.Inter.AREA}


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


def _rand_augment(spec):
    try:
        parts = dict((p[0], int(p[1:])) for p in spec.split("-")[1:])
        assert spec.startswith("randaug")
        return V.RandAugment(num_ops=parts.get("n", 2), magnitude=parts.get("m", 9))
    except (AssertionError, ValueError, IndexError):
        raise MsvisionError(f"auto_augment must look like 'randaug-m9-n2', got '{spec}'") from None


def train_transforms(args):
    pre = preprocessing(args)
    ops = [V.RandomCropDecodeResize(pre["size"], scale=tuple(args.scale), ratio=tuple(args.ratio),
                                    interpolation=INTERPOLATION[pre["interpolation"]])]
    if args.hflip > 0:
        ops.append(V.RandomHorizontalFlip(args.hflip))
    if args.auto_augment:
        ops.append(_rand_augment(args.auto_augment))
    elif args.color_jitter:
        ops.append(V.RandomColorAdjust(brightness=args.color_jitter, contrast=args.color_jitter,
                                       saturation=args.color_jitter))
    ops += [V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()]
    if args.re_prob > 0:
        ops.append(V.RandomErasing(prob=args.re_prob))
    return ops


def eval_transforms(args):
    """Decode, resize the short side to size / crop_pct, centre crop, normalise. Decoding and resizing run on PIL
    images, as timm and torchvision do, so converted weights are validated with their reference preprocessing."""
    pre = preprocessing(args)
    resize = int(math.floor(pre["size"] / pre["crop_pct"]))
    return [V.Decode(to_pil=True), V.Resize(resize, INTERPOLATION[pre["interpolation"]]), V.CenterCrop(pre["size"]),
            V.ToNumpy(), V.Normalize(pre["mean"], pre["std"]), V.HWC2CHW()]


def create_loader(args, index, training, first_epoch=0, shard_id=0, num_shards=1, skip=0, limit=None):
    """Batched (image, label) pipeline for this rank. Training: one pipeline for every epoch from first_epoch on
    (iterate it once per epoch; `limit` and `skip` as in EpochOrder; batches may carry mixup/cutmix). Evaluation:
    one pass, rank r taking every N-th image."""
    if training:
        power = SAMPLER_POWER[args.sampler]
        sampler = EpochOrder(index.num_items, args.seed, True, num_shards, shard_id, first_epoch, skip, limit,
                             labels=None if power is None else index.labels(), power=power)
    else:
        sampler = ds.SubsetSampler(list(range(shard_id, index.num_items, num_shards)))
    ds.config.set_seed(args.seed * 1000 + first_epoch)
    workers = min(args.num_parallel_workers, os.cpu_count() or 1)  # recipes ask for 8; a laptop may have fewer
    data = split_rows(index, sampler)
    image_ops = [file_reader(index)] + (train_transforms(args) if training else eval_transforms(args))
    data = data.map(image_ops, input_columns="image", num_parallel_workers=workers)
    data = data.map(T.TypeCast(ms.int32), input_columns="label")
    mixing = training and (args.mixup > 0 or args.cutmix > 0)
    if mixing:
        data = data.map(T.OneHot(args.num_classes), input_columns="label")
    data = data.batch(args.batch_size, drop_remainder=training and args.drop_remainder)
    if mixing:
        batch_ops = []
        if args.mixup > 0:
            batch_ops.append(V.MixUpBatch(args.mixup))
        if args.cutmix > 0:
            batch_ops.append(V.CutMixBatch(V.ImageBatchFormat.NCHW, args.cutmix))
        data = data.map(T.RandomChoice(batch_ops) if len(batch_ops) > 1 else batch_ops[0],
                        input_columns=["image", "label"])
        data = data.map(T.TypeCast(ms.float32), input_columns="label")
    return data
