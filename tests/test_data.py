"""Data order and preprocessing: per-epoch sharding, resume skip, demo set, eval transforms from the model cfg."""
import numpy as np

from msvision.config.parse import parse_config
from msvision.data.dataset import rank_order
from msvision.config.kwargs import preprocessing_kwargs
from msvision.data.loaders import preprocessing


def epoch_indices(num_items, epoch, seed, shuffle, num_shards, shard_id, skip=0):
    return rank_order(num_items, epoch, seed, shuffle, num_shards, shard_id)[1][skip:]


def test_shards_partition_each_epoch_and_order_is_seeded():
    shards = [epoch_indices(10, epoch=3, seed=7, shuffle=True, num_shards=2, shard_id=r) for r in (0, 1)]
    assert [len(s) for s in shards] == [5, 5]
    assert sorted(np.concatenate(shards).tolist()) == list(range(10))  # disjoint, complete
    again = epoch_indices(10, epoch=3, seed=7, shuffle=True, num_shards=2, shard_id=0)
    assert np.array_equal(again, shards[0])
    assert not np.array_equal(epoch_indices(10, 4, 7, True, 2, 0), shards[0])  # another epoch, another order
    # one process at batch 2k sees, batch by batch, the union of what 2 ranks see at batch k
    whole = epoch_indices(10, 3, 7, True, 1, 0)
    assert sorted(whole[:4].tolist()) == sorted(shards[0][:2].tolist() + shards[1][:2].tolist())


def test_uneven_split_pads_by_wrapping_and_skip_resumes():
    shards = [epoch_indices(7, 0, 1, True, 2, r) for r in (0, 1)]
    assert [len(s) for s in shards] == [4, 4] and set(np.concatenate(shards)) == set(range(7))
    assert np.array_equal(epoch_indices(7, 0, 1, True, 2, 1, skip=3), shards[1][3:])
    assert np.array_equal(epoch_indices(5, 0, 1, False, 1, 0), np.arange(5))


def test_preprocessing_comes_from_the_model_unless_set():
    pre = preprocessing(**preprocessing_kwargs(parse_config(["--model", "ese_vovnet57b"])))
    assert (pre["size"], pre["crop_pct"], pre["interpolation"]) == (256, 0.95, "bicubic")
    assert pre["mean"] == [127.5] * 3 and pre["std"] == [127.5] * 3
    pre = preprocessing(**preprocessing_kwargs(parse_config(["--model", "vgg16", "--image_resize", "32",
                                                             "--crop_pct", "1", "--interpolation", "bicubic"])))
    assert (pre["size"], pre["crop_pct"], pre["interpolation"]) == (32, 1.0, "bicubic")
