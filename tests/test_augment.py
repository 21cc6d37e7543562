"""Augmentation and data recipes: each knob means what its reference (MindSpore's op, timm, MindCV) means, every
random op is keyed (the same seed gives the same batches; a resumed pipeline gives the uninterrupted one's), CIFAR
archives of any whole number of records."""
import os
import random

import numpy as np
import mindspore.dataset as ds
import mindspore.dataset.vision as V
import pytest

from msvision import MsvisionError
from msvision.config.parse import parse_config
from msvision.config.kwargs import augment_check_kwargs, mixing_kwargs, split_kwargs, train_loader_kwargs
from msvision.data.augment import RandomErasing, check_augment_options, parse_auto_augment
from msvision.data.cifar import open_cifar, write_cifar
from msvision.data.dataset import SampleIds, open_split, rank_order
from msvision.data.mixing import BatchMixing
from msvision.data.loaders import train_loader
from tests.conftest import tiny_run

IMAGE = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("m", [0, 5, 9, 10])
def test_randaugment_magnitude_is_m_of_10(m):
    """randaug-m<M>: MindSpore's op at magnitude 10 M of 100 bins, i.e. M/10 of each op's maximum (MindSpore's
    default bins would make M mean M/30); its output equals MindSpore's op at M of 11 bins for the same seed."""
    ours = parse_auto_augment(f"randaug-m{m}-n2")
    op = ours.op(ours.magnitude)
    assert (op.num_ops, op.magnitude, op.num_magnitude_bins) == (2, 10 * m, 101)
    assert op.magnitude / (op.num_magnitude_bins - 1) == m / 10
    for key in range(5):
        ds.config.set_seed(key)
        reference = V.RandAugment(num_ops=2, magnitude=m, num_magnitude_bins=11)(IMAGE)
        assert np.array_equal(ours(IMAGE, key), reference)
    if 0 < m < 10:  # the old meaning (31 bins) is another augmentation
        assert any(not np.array_equal(ours(IMAGE, key), (ds.config.set_seed(key), V.RandAugment(
            num_ops=2, magnitude=m)(IMAGE))[1]) for key in range(5))


def test_randaugment_parts_and_policies():
    noisy = parse_auto_augment("rand-m9-mstd0.5-inc1")  # timm's spelling
    assert (noisy.magnitude, noisy.num_ops, noisy.mstd) == (9.0, 2, 0.5)
    drawn = [min(10.0, max(0.0, np.random.RandomState(k).normal(9, 0.5))) for k in range(2000)]
    assert abs(np.mean(drawn) - 9.0) < 0.05 and 0.4 < np.std(drawn) < 0.5  # clipped at 10
    assert np.array_equal(noisy(IMAGE, 3), noisy(IMAGE, 3))
    assert not all(np.array_equal(noisy(IMAGE, k), noisy(IMAGE, k + 1)) for k in range(5))
    for spec, op in (("autoaug", V.AutoAugment(V.AutoAugmentPolicy.IMAGENET)), ("trivialaug", V.TrivialAugmentWide())):
        ours = parse_auto_augment(spec)
        ds.config.set_seed(11)
        assert np.array_equal(ours(IMAGE, 11), op(IMAGE))
    for bad, message in (("randaug-m9-inc0", "inc0 is not available"), ("randaug-m11", "needs m from 0 to 10"),
                         ("randaug-n2", "needs m from 0 to 10"), ("randaug-m9-x3", "unknown part 'x3'"),
                         ("augmix", "auto_augment must be"), ("randaug-m9-n2.5", "whole n")):
        with pytest.raises(MsvisionError, match=message):
            parse_auto_augment(bad)


def test_option_combinations_are_checked():
    def check(*argv):
        args = parse_config(list(argv))
        check_augment_options(32, **augment_check_kwargs(args))

    with pytest.raises(MsvisionError, match="color_jitter is not applied together with auto_augment"):
        check("--auto_augment", "autoaug", "--color_jitter", "0.4")
    with pytest.raises(MsvisionError, match="cutout_length 40 is larger than the 32 px image"):
        check("--cutout_length", "40")
    with pytest.raises(MsvisionError, match="mixup_off_epoch 91 is beyond epoch_size 90"):
        check("--mixup_off_epoch", "91")
    with pytest.raises(MsvisionError, match="auto_augment must be"):
        check("--auto_augment", "policy_v0")
    with pytest.raises(MsvisionError, match="'re_scale' must be two numbers, low then high"):
        check("--re_scale", "0.3", "0.1")
    for argv, message in ((["--mixup_prob", "1.5"], "'mixup_prob' must be in [0.0, 1.0], got 1.5"),
                          (["--mixup_switch_prob", "-0.1"], "'mixup_switch_prob' must be in [0.0, 1.0]"),
                          (["--vflip", "2"], "'vflip' must be in [0.0, 1.0]"),
                          (["--aug_repeats", "0"], "'aug_repeats' must be >= 1"),
                          (["--re_value", "7"], "'re_value' must be one of 0, random")):
        with pytest.raises(MsvisionError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_config(argv)


class TimmReference:
    """timm's Mixup and RandomErasing, driven by the global NumPy / Python generators, seeded as ours are."""

    def __init__(self, torch_reference):
        self.torch = torch_reference[0]
        from timm.data.mixup import Mixup
        from timm.data.random_erasing import RandomErasing as TimmErasing
        self.mixup, self.erasing = Mixup, TimmErasing


@pytest.mark.parametrize("mixup,cutmix,prob,switch", [(0.2, 0.0, 1.0, 0.5), (0.0, 1.0, 1.0, 0.5),
                                                      (0.8, 1.0, 0.6, 0.3)])
def test_mixing_equals_timm_and_the_mixed_loss_by_hand(torch_reference, mixup, cutmix, prob, switch):
    """For the same generator state, images and targets equal timm's Mixup (mode batch, label smoothing 0), over 20
    batches; our loss on the mixed targets with label smoothing 0.1 equals, by hand, the soft-target cross-entropy of
    timm's mixed smoothed targets."""
    ref = TimmReference(torch_reference)
    torch = ref.torch
    args = parse_config(["--num_classes", "5", "--mixup", str(mixup), "--cutmix", str(cutmix), "--mixup_prob",
                         str(prob), "--mixup_switch_prob", str(switch)])
    ours = BatchMixing(SampleIds(100), seed=args.seed, **mixing_kwargs(args))
    timm_mix = ref.mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=switch, mode="batch",
                         label_smoothing=0.0, num_classes=5)
    smoothed = ref.mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=switch, mode="batch",
                         label_smoothing=0.1, num_classes=5)
    rng = np.random.default_rng(1)
    mixed_batches = 0
    for key in range(20):
        images = rng.standard_normal((6, 3, 12, 10)).astype(np.float32)
        labels = rng.integers(0, 5, 6)
        got_images, got_targets = ours.mix(images, np.eye(5, dtype=np.float32)[labels], np.random.RandomState(key))
        np.random.seed(key)
        expected_images, expected_targets = timm_mix(torch.tensor(images), torch.tensor(labels))
        assert np.allclose(got_images, expected_images.numpy(), rtol=0, atol=1e-6)
        assert np.allclose(got_targets, expected_targets.numpy(), atol=1e-6)
        mixed_batches += not np.array_equal(got_targets, np.eye(5)[labels])
        # the mixed loss with smoothing, by hand, against timm's smoothed-then-mixed targets
        logits = rng.standard_normal((6, 5))
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        ours_loss = -(((1 - 0.1) * got_targets + 0.1 / 5) * log_p).sum(1).mean()
        np.random.seed(key)
        timm_targets = smoothed(torch.tensor(images), torch.tensor(labels))[1].numpy()
        assert abs(ours_loss - (-(timm_targets * log_p).sum(1).mean())) < 1e-6
    assert mixed_batches >= 8  # the comparison covered mixed batches


def test_mixup_off_epoch_and_the_loss_of_soft_targets(tmp_path):
    from msvision.train.loss import ClassificationLoss
    import mindspore as ms

    args = parse_config(["--num_classes", "4", "--mixup", "0.4", "--mixup_off_epoch", "3", "--seed", "2"])
    ids = SampleIds(50)
    mixing = BatchMixing(ids, seed=args.seed, **mixing_kwargs(args))
    images = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    for epoch in range(5):
        out, targets = mixing(images, labels, np.array([ids.encode(epoch, 8, 3)]))
        assert np.array_equal(targets, np.eye(4)[labels]) == (epoch >= 3), epoch  # mixed before epoch 3 only
    # the training loss on soft targets is torch's probability-target cross-entropy of the smoothed targets
    logits = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    soft = mixing(images, labels, np.array([ids.encode(0, 8, 3)]))[1]
    got = float(ClassificationLoss(0.1)(ms.Tensor(logits), ms.Tensor(soft)).asnumpy())
    log_p = logits - np.log(np.exp(logits.astype(np.float64)).sum(1, keepdims=True))
    assert abs(got - (-((0.9 * soft + 0.025) * log_p).sum(1).mean())) < 1e-6


@pytest.mark.parametrize("count", [1, 3])
def test_random_erasing_equals_timm(torch_reference, count):
    """Constant fill: the same regions as timm's RandomErasing for the same Python generator state (timm draws
    count, area, log-uniform aspect and position from `random`); 'random' fill: standard normal values."""
    ref = TimmReference(torch_reference)
    torch = ref.torch
    ours = RandomErasing(0.7, (0.02, 1 / 3), (0.3, 1 / 0.3), "0", count)
    timm_erase = ref.erasing(probability=0.7, mode="const", max_count=count, device="cpu")
    image = np.random.default_rng(2).standard_normal((3, 30, 40)).astype(np.float32) + 5
    erased = 0
    for key in range(40):
        got = ours(image, key)
        random.seed(key)
        expected = timm_erase(torch.tensor(image.copy())).numpy()
        assert np.array_equal(got, expected), key
        erased += not np.array_equal(got, image)
    assert 20 <= erased <= 36  # about 70% of the images
    noisy = RandomErasing(1.0, (0.3, 0.3), (1.0, 1.0), "random", 1)(image, 5)
    changed = noisy[noisy != image]
    assert changed.size > 0.25 * image.size and abs(changed.mean()) < 0.1 and abs(changed.std() - 1) < 0.1


def loader_batches(args, split, epochs, **kwargs):
    """[(images, labels)] of `epochs` epochs of a training pipeline."""
    loader = train_loader(split, **train_loader_kwargs(args), **kwargs)
    iterator = loader.create_tuple_iterator(num_epochs=epochs, output_numpy=True)
    return [[(images, labels) for images, labels in iterator] for _ in range(epochs)]


EVERY_OP = tiny_run(image_resize=24, num_parallel_workers=2, scale=(0.3, 1), hflip=0.5, vflip=0.5,
                    auto_augment="randaug-m9-n2-mstd1", cutout_length=6, cutout_count=2, re_prob=0.5,
                    re_value="random", re_count=2, mixup=0.4, cutmix=1.0, aug_repeats=2, sampler="sqrt")


def test_pipeline_is_a_function_of_seed_and_position(image_folder):
    """Every op on, 2 worker processes: two pipelines with one seed give identical batches, another seed other
    ones, one worker the same as two, and a pipeline resumed at epoch 1, batch 2 gives exactly the batches the
    uninterrupted one gave there."""
    split = open_split("train", **split_kwargs(parse_config(EVERY_OP + ["--data_dir", image_folder])))
    args = parse_config(EVERY_OP)
    first = loader_batches(args, split, 2)
    again = loader_batches(args, split, 2)
    other = loader_batches(parse_config(EVERY_OP + ["--seed", "7"]), split, 1)
    resumed = loader_batches(args, split, 1, first_epoch=1, skip=2 * 8)
    assert len(first[0]) == len(first[1]) == 8 and first[0][0][1].shape == (8, 4)  # mixed (soft) targets
    for epoch in range(2):
        for (a, la), (b, lb) in zip(first[epoch], again[epoch]):
            assert np.array_equal(a, b) and np.array_equal(la, lb)
    one_worker = loader_batches(parse_config(EVERY_OP + ["--num_parallel_workers", "1"]), split, 1)
    for (a, la), (b, lb) in zip(first[0], one_worker[0]):  # not a function of the worker processes
        assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # another epoch, other augmentation
    for (a, la), (b, lb) in zip(first[1][2:], resumed[0]):
        assert np.array_equal(a, b) and np.array_equal(la, lb)
    # the two repeats of an image (positions 0 and 1) are augmented differently: keys follow the position
    unmixed = loader_batches(parse_config(EVERY_OP + ["--mixup", "0", "--cutmix", "0"]), split, 1)[0][0]
    assert unmixed[1][0] == unmixed[1][1] and not np.array_equal(unmixed[0][0], unmixed[0][1])


@pytest.mark.parametrize("extra", [["--auto_augment", "autoaug"], ["--auto_augment", "trivialaug"],
                                   ["--auto_augment", "none", "--color_jitter", "0.4", "--crop_padding", "4"]])
def test_other_policies_resume_exactly(image_folder, extra):
    """AutoAugment, TrivialAugment, colour jitter with the padded crop: a pipeline resumed at batch 3 gives the
    batches of the uninterrupted one."""
    argv = EVERY_OP + extra + ["--num_parallel_workers", "1", "--mixup", "0", "--cutmix", "0"]
    split = open_split("train", **split_kwargs(parse_config(argv + ["--data_dir", image_folder])))
    args = parse_config(argv)
    whole = loader_batches(args, split, 1)[0]
    resumed = loader_batches(args, split, 1, skip=3 * 8)[0]
    assert len(resumed) == len(whole) - 3
    for (a, la), (b, lb) in zip(whole[3:], resumed):
        assert np.array_equal(a, b) and np.array_equal(la, lb)


def test_flips_and_cutout_do_what_they_say(image_folder):
    split = open_split("train", **split_kwargs(parse_config(["--data_dir", image_folder])))
    base = ["--model", "vgg11", "--num_classes", "4", "--image_resize", "32", "--batch_size", "16",
            "--num_parallel_workers", "1", "--scale", "1", "1", "--ratio", "1", "1", "--hflip", "0"]
    plain = loader_batches(parse_config(base), split, 1)[0][0][0]
    flipped = loader_batches(parse_config(base + ["--vflip", "1"]), split, 1)[0][0][0]
    assert np.array_equal(flipped, plain[:, :, ::-1, :])
    mirrored = loader_batches(parse_config(base + ["--hflip", "1"]), split, 1)[0][0][0]
    assert np.array_equal(mirrored, plain[:, :, :, ::-1])
    cut = loader_batches(parse_config(base + ["--cutout_length", "10", "--cutout_count", "2"]), split, 1)[0][0][0]
    zeroed = (cut == 0).all(axis=1) & (plain != 0).all(axis=1)  # pixels set to 0 in every channel
    per_image = zeroed.reshape(len(cut), -1).sum(1)
    assert np.array_equal(cut[~np.broadcast_to(zeroed[:, None], cut.shape)],
                          plain[~np.broadcast_to(zeroed[:, None], cut.shape)])
    assert per_image.min() > 0 and per_image.max() <= 2 * 10 * 10


def test_repeated_augmentation_order():
    """aug_repeats 3: each drawn image fills 3 consecutive positions, which go to different ranks; every epoch keeps
    the split's length (timm's RepeatAugSampler with selected_round 0)."""
    positions, items = zip(*[rank_order(30, 4, 1, True, 3, r, repeats=3) for r in range(3)])
    assert all(len(i) == 10 for i in items)
    by_position = np.empty(30, np.int64)
    for p, i in zip(positions, items):
        by_position[p] = i
    assert np.array_equal(by_position, by_position.reshape(10, 3)[:, :1].repeat(3, 1).ravel())
    assert len(set(by_position.tolist())) == 10
    for group in by_position.reshape(10, 3):  # one image, three ranks
        assert {int(np.flatnonzero(items[r] == group[0]).size) for r in range(3)} == {1}


def cifar_files(folder, dataset, sizes):
    rng = np.random.default_rng(3)
    files, expected = {}, []
    for name, count in sizes.items():
        images = rng.integers(0, 255, (count, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10 if dataset == "cifar10" else 100, count).astype(np.uint8)
        files[name] = (images, labels)
        expected.append((images, labels))
    write_cifar(folder, dataset, files, names=[f"n{i}" for i in range(10)] if dataset == "cifar10" else None)
    return expected


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_archives_of_any_whole_number_of_records(tmp_path, dataset):
    """Files of 7 and 5 records (CIFAR-10) or 12 (CIFAR-100) read back exactly what was written, from the archive
    folder or its parent; a partial record and a folder without the files are one-line errors."""
    inner = {"cifar10": "cifar-10-batches-bin", "cifar100": "cifar-100-binary"}[dataset]
    folder = str(tmp_path / inner)
    train_names = {"cifar10": {"data_batch_1.bin": 7, "data_batch_2.bin": 5}, "cifar100": {"train.bin": 12}}
    written = cifar_files(folder, dataset, train_names[dataset])
    cifar_files(folder, dataset, {"test_batch.bin" if dataset == "cifar10" else "test.bin": 6})
    train = open_cifar(str(tmp_path), dataset, True)
    assert train.num_items == 12 and np.array_equal(train.images, np.concatenate([w[0] for w in written]))
    assert np.array_equal(train.labels(), np.concatenate([w[1] for w in written]))
    assert train.classes[:2] == (["n0", "n1"] if dataset == "cifar10" else ["class_0", "class_1"])
    assert open_cifar(folder, dataset, False).num_items == 6
    name = next(iter(train_names[dataset]))
    with open(os.path.join(folder, name), "ab") as handle:
        handle.write(b"\0" * 100)
    with pytest.raises(MsvisionError, match=f"'{folder}/{name}' holds \\d+ whole records of 30\\d+ bytes and 100 "
                                            f"bytes more"):
        open_cifar(folder, dataset, True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MsvisionError, match=f"dataset {dataset} needs .* in '{tmp_path}/empty'"):
        open_cifar(str(tmp_path / "empty"), dataset, True)


def test_cifar_pipeline_order_sharding_and_resume(tmp_path):
    """The same sampler as folders: rank 1 of 2 sees the labels of its positions of the seeded order, and a resumed
    epoch continues it; the padded random crop keeps 32 px."""
    folder = str(tmp_path / "cifar-10-batches-bin")
    cifar_files(folder, "cifar10", {"data_batch_1.bin": 21, "data_batch_2.bin": 19, "test_batch.bin": 4})
    argv = ["--dataset", "cifar10", "--data_dir", str(tmp_path), "--model", "vgg11_cifar", "--num_classes", "10",
            "--batch_size", "4", "--crop_padding", "4", "--num_parallel_workers", "1"]
    args = parse_config(argv)
    split = open_split("train", **split_kwargs(args))
    batches = loader_batches(args, split, 2, shard_id=1, num_shards=2)
    for epoch in range(2):
        seen = np.concatenate([labels for _, labels in batches[epoch]])
        assert np.array_equal(seen, split.labels()[rank_order(40, epoch, args.seed, True, 2, 1)[1]])
    assert batches[0][0][0].shape == (4, 3, 32, 32)
    resumed = loader_batches(args, split, 1, first_epoch=1, skip=8, shard_id=1, num_shards=2)
    for (a, la), (b, lb) in zip(batches[1][2:], resumed[0]):
        assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert open_split("val", **split_kwargs(args)).num_items == 4
