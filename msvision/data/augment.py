"""Training augmentation keyed by each sample's place in the run, so a resumed run draws what the uninterrupted one
drew.

A sample id names (epoch, position in the epoch's draw, item) (dataset.py). Every random op of the chain gets its
own 32-bit key from (seed, epoch, position, op index): MindSpore's vision ops run eagerly in the pipeline's worker
processes after ds.config.set_seed(key), which seeds their C++ generator and Python's and NumPy's generators, so a
sample's augmentation depends on nothing else (not the worker, not how many samples came before it). Order, as in
timm: crop (random resized, or a padded random crop), flips, auto augment or colour jitter, then (deterministic, in
the pipeline's C++ threads) normalise, then cutout and random erasing.
"""
import inspect
import math
import random

import numpy as np
import mindspore.dataset as ds
import mindspore.dataset.vision as V

from msvision.errors import MsvisionError

INTERPOLATION = {"bilinear": V.Inter.BILINEAR, "bicubic": V.Inter.BICUBIC, "nearest": V.Inter.NEAREST,
                 "area": V.Inter.AREA}
AUTO_AUGMENT_NAMES = "randaug-m<M>[-n<N>][-mstd<S>][-inc1] (M on 0-10), autoaug or trivialaug"


def sample_keys(seed, epoch, position, count):
    """`count` independent 32-bit keys for one sample (one per random op)."""
    return np.random.SeedSequence([seed, epoch, position]).generate_state(count)


class Seeded:
    """A MindSpore random op run eagerly with the sample's key as the seed."""

    def __init__(self, op):
        self.op = op

    def __call__(self, image, key):
        ds.config.set_seed(int(key))
        return self.op(image)

    def unkeyed(self, rng):
        """The op for a pipeline that does not key its randomness (exact_resume false)."""
        return self.op


class Fixed(Seeded):
    """A deterministic op (the key is not used)."""

    def __call__(self, image, key):
        return self.op(image)


class Drawn:
    """For exact_resume false: a keyed Python op fed with keys from one generator per pipeline."""

    def __init__(self, op, rng):
        self.op, self.rng = op, rng

    def __call__(self, image):
        return self.op(image, self.rng.randint(2 ** 32))


class RandAugment:
    """MindSpore's RandAugment with the magnitude on MindCV's and timm's 0-10 scale: m -> magnitude 10 m of 100
    bins, i.e. m/10 of each op's maximum (MindSpore's default 31 bins would make m=9 mean 9/30). With mstd > 0 the
    magnitude of each image is drawn from N(m, mstd) and clipped to [0, 10], as timm does."""

    def __init__(self, magnitude, num_ops, mstd=0.0):
        self.magnitude, self.num_ops, self.mstd = magnitude, num_ops, mstd

    def op(self, magnitude):
        return V.RandAugment(num_ops=self.num_ops, magnitude=int(round(magnitude * 10)), num_magnitude_bins=101)

    def unkeyed(self, rng):
        return self.op(self.magnitude) if self.mstd == 0 else Drawn(self, rng)

    def __call__(self, image, key):
        magnitude = self.magnitude
        if self.mstd > 0:
            magnitude = min(10.0, max(0.0, np.random.RandomState(key).normal(self.magnitude, self.mstd)))
        ds.config.set_seed(int(key))
        return self.op(magnitude)(image)


def parse_auto_augment(spec):
    """The op of an auto_augment string: randaug-m9-n2[-mstd0.5][-inc1] (timm's rand-... too), autoaug (ImageNet
    policy) or trivialaug; anything else is a MsvisionError."""
    if spec in ("autoaug", "autoaugment"):
        return Seeded(V.AutoAugment(V.AutoAugmentPolicy.IMAGENET))
    if spec in ("trivialaug", "trivialaugwide"):
        return Seeded(V.TrivialAugmentWide())
    name, *parts = spec.split("-")
    if name not in ("randaug", "rand"):
        raise MsvisionError(f"auto_augment must be {AUTO_AUGMENT_NAMES}, got '{spec}'")
    values = {"n": 2, "mstd": 0.0}
    for part in parts:
        key = "mstd" if part.startswith("mstd") else "inc" if part.startswith("inc") else part[:1]
        try:
            values[key] = float(part[len(key):])
        except ValueError:
            raise MsvisionError(f"auto_augment '{spec}': cannot read '{part}' (expected {AUTO_AUGMENT_NAMES})") \
                from None
        if key not in ("m", "n", "mstd", "inc"):
            raise MsvisionError(f"auto_augment '{spec}': unknown part '{part}' (expected {AUTO_AUGMENT_NAMES})")
    if "m" not in values or not 0 <= values["m"] <= 10 or values["n"] < 1 or values["n"] != int(values["n"]):
        raise MsvisionError(f"auto_augment '{spec}': needs m from 0 to 10 and a whole n >= 1 ({AUTO_AUGMENT_NAMES})")
    if values.get("inc", 1) != 1:
        raise MsvisionError(f"auto_augment '{spec}': inc0 is not available: MindSpore's RandAugment scales every op "
                            f"with increasing severity (timm's inc1); drop the part or write inc1")
    return RandAugment(values["m"], int(values["n"]), values["mstd"])


class RandomErasing:
    """timm's RandomErasing on a normalised CHW image: with probability `prob`, 1 to `count` regions, each of area
    scale[0]/k to scale[1]/k of the image (k regions), aspect ratio log-uniform in `ratio`, up to 10 attempts each,
    filled with 0 or (value 'random') per-pixel standard normal values. MindSpore's RandomErasing draws the aspect
    ratio uniformly and erases one region, hence this version."""

    def __init__(self, prob, scale, ratio, value, count):
        self.prob, self.scale, self.value, self.count = prob, scale, value, count
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def unkeyed(self, rng):
        return Drawn(self, rng)

    def __call__(self, image, key):
        rng = random.Random(int(key))
        if rng.random() > self.prob:
            return image
        image = image.copy()
        channels, height, width = image.shape
        regions = self.count if self.count == 1 else rng.randint(1, self.count)
        noise = np.random.RandomState(int(key))
        for _ in range(regions):
            for _ in range(10):
                area = rng.uniform(*self.scale) * height * width / regions
                aspect = math.exp(rng.uniform(*self.log_ratio))
                h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if w < width and h < height:
                    top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                    fill = noise.standard_normal((channels, h, w)) if self.value == "random" else 0.0
                    image[:, top:top + h, left:left + w] = fill
                    break
        return image


def train_ops(pre, kind, scale=(0.08, 1.0), ratio=(0.75, 1.333), crop_padding=0, hflip=0.5, vflip=0.0,
              auto_augment=None, color_jitter=None, cutout_length=0, cutout_count=1, re_prob=0.0,
              re_scale=(0.02, 0.3333), re_ratio=(0.3, 3.3333), re_value="0", re_count=1):
    """The keyed training chain as (before, after): `before` maps the item (file bytes for kind 'encoded', HWC uint8
    pixels for 'pixels') to an HWC uint8 image; then the pipeline normalises (C++, deterministic); `after` holds the
    random ops on the normalised CHW image (cutout, random erasing), empty when they are off."""
    size, interpolation = pre["size"], INTERPOLATION[pre["interpolation"]]
    before = []
    if crop_padding:
        if kind == "encoded":
            before.append(Fixed(V.Decode()))
        before += [Fixed(V.Resize((size, size), interpolation)), Seeded(V.RandomCrop(size, padding=crop_padding))]
    elif kind == "encoded":
        before.append(Seeded(V.RandomCropDecodeResize(size, tuple(scale), tuple(ratio), interpolation)))
    else:
        before.append(Seeded(V.RandomResizedCrop(size, tuple(scale), tuple(ratio), interpolation)))
    if hflip > 0:
        before.append(Seeded(V.RandomHorizontalFlip(hflip)))
    if vflip > 0:
        before.append(Seeded(V.RandomVerticalFlip(vflip)))
    if auto_augment:
        before.append(parse_auto_augment(auto_augment))
    elif color_jitter:
        before.append(Seeded(V.RandomColorAdjust(color_jitter, color_jitter, color_jitter)))
    after = []
    if cutout_length:
        after.append(Seeded(V.CutOut(cutout_length, cutout_count, is_hwc=False)))
    if re_prob > 0:
        after.append(RandomErasing(re_prob, re_scale, re_ratio, re_value, re_count))
    return before, after


class KeyedChain:
    """The random ops of one stage, each with its own key from (seed, epoch, position, op number); `offset` numbers
    the ops of a later stage after those of the first."""

    def __init__(self, seed, ids, ops, offset=0):
        self.seed, self.ids, self.ops, self.offset = seed, ids, ops, offset

    def run(self, image, sample_id):
        epoch, position, _ = self.ids.decode(sample_id)
        keys = sample_keys(self.seed, epoch, position, self.offset + len(self.ops))[self.offset:]
        for op, key in zip(self.ops, keys):
            image = op(image, key)
        return image


class ReadAndAugment(KeyedChain):
    """sample id -> (HWC uint8 image, label, sample id): reads the item and runs the first stage. Runs in the
    pipeline's worker processes, so it holds only picklable state."""

    def __init__(self, seed, ids, ops, reader, labels):
        super().__init__(seed, ids, ops)
        self.reader, self.labels = reader, labels

    def __call__(self, sample_id):
        item = self.ids.decode(sample_id)[2]
        return self.run(self.reader(item), sample_id), np.int32(self.labels[item]), sample_id


class AugmentNormalised(KeyedChain):
    """(CHW float32 image, sample id) -> image: the second stage (cutout, random erasing)."""

    def __call__(self, image, sample_id):
        return self.run(image, sample_id), sample_id


AUGMENT_DEFAULTS = {name: p.default for name, p in inspect.signature(train_ops).parameters.items()
                    if p.default is not inspect.Parameter.empty}


def check_augment_options(image_size, epoch_size, mixup_off_epoch=0, **augment):
    """Combinations the option table cannot check, as one-line MsvisionErrors (before anything is written);
    augment: train_ops' options."""
    augment = dict(AUGMENT_DEFAULTS, **augment)
    if augment["auto_augment"]:
        parse_auto_augment(augment["auto_augment"])
        if augment["color_jitter"]:
            raise MsvisionError("color_jitter is not applied together with auto_augment (MindCV and timm leave it out "
                                "too): remove color_jitter, or auto_augment")
    for name in ("scale", "ratio", "re_scale", "re_ratio"):
        value = augment[name]
        if len(value) != 2 or value[0] > value[1]:
            raise MsvisionError(f"option '{name}' must be two numbers, low then high, got {value}")
    if augment["cutout_length"] > image_size:
        raise MsvisionError(f"cutout_length {augment['cutout_length']} is larger than the {image_size} px image: "
                            f"use at most {image_size}")
    if mixup_off_epoch > epoch_size:
        raise MsvisionError(f"mixup_off_epoch {mixup_off_epoch} is beyond epoch_size {epoch_size}: use 0 (never "
                            f"off) or an epoch up to {epoch_size}")
