"""CheckpointManager retention and atomic writes on real .ckpt files."""
import json
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from msvision import MsvisionError
from msvision.weights.io import load_weights, save_atomic
from msvision.weights.manager import CheckpointManager


def save_series(manager, metrics):
    net = nn.Dense(2, 2)
    return [manager.save(net, {"state.epoch": i}, epoch=i, global_step=10 * i, metric=m)
            for i, m in enumerate(metrics, start=1)]


def test_latest_k_keeps_the_newest(tmp_path):
    manager = CheckpointManager(str(tmp_path), "m", 2, "latest_k")
    paths = save_series(manager, [None] * 4)
    assert [os.path.exists(p) for p in paths] == [False, False, True, True]
    assert CheckpointManager(str(tmp_path), "m", 2, "latest_k").latest() == paths[-1]  # read back from the index


def test_top_k_keeps_the_best_and_never_the_newest_away(tmp_path):
    manager = CheckpointManager(str(tmp_path), "m", 2, "top_k")
    paths = save_series(manager, [50.0, 90.0, 70.0, 10.0])
    assert [os.path.exists(p) for p in paths] == [False, True, False, True]  # best (90) + newest (10)
    index = json.loads((tmp_path / "checkpoints.json").read_text())
    assert index["best"]["metric"] == 90.0 and os.path.exists(tmp_path / "m-best.ckpt")
    assert manager.latest() == paths[-1]


def test_atomic_save_replaces_and_cleans_partials(tmp_path):
    net = nn.Dense(2, 3)
    target = str(tmp_path / "w.ckpt")
    (tmp_path / ".w.ckpt.tmp999.ckpt").write_bytes(b"half a checkpoint")  # left by a killed save
    save_atomic(net, target)
    assert sorted(os.listdir(tmp_path)) == [".w.ckpt.tmp999.ckpt", "w.ckpt"]
    CheckpointManager(str(tmp_path), "w", 1, "latest_k", clean_partial=True)
    assert os.listdir(tmp_path) == ["w.ckpt"]
    other = nn.Dense(2, 3)
    load_weights(other, target)
    assert np.array_equal(other.weight.asnumpy(), net.weight.asnumpy())


def test_strict_loading_names_problems(tmp_path):
    path = str(tmp_path / "w.ckpt")
    ms.save_checkpoint(nn.Dense(2, 3), path)
    with pytest.raises(MsvisionError, match=r"weight: checkpoint \(3, 2\) vs model \(4, 2\)"):
        load_weights(nn.Dense(2, 4), path)


def test_checkpoint_loads_when_page_cache_leaves_little_free_memory(tmp_path, monkeypatch):
    """MindSpore's own guard compares a .ckpt with *free* memory; after a pass over a dataset most RAM is page cache
    (CI saw 223 MB free). Free memory smaller than the file, page cache reclaimable: the load must still work."""
    path = str(tmp_path / "w.ckpt")
    net = nn.Dense(64, 64)
    ms.save_checkpoint(net, path)
    real_sysconf = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: 1 if name == "SC_AVPHYS_PAGES" else real_sysconf(name))
    other = nn.Dense(64, 64)
    load_weights(other, path)
    assert np.array_equal(other.weight.asnumpy(), net.weight.asnumpy())


def test_checkpoint_larger_than_available_memory_is_named(tmp_path, monkeypatch):
    import msvision.weights.io as checkpoint
    path = str(tmp_path / "w.ckpt")
    ms.save_checkpoint(nn.Dense(1024, 1024), path)  # 4 MB of weights
    monkeypatch.setattr(checkpoint, "_memory_available", lambda: 3 * 2**20)
    with pytest.raises(MsvisionError, match=r"w\.ckpt' \(4\.0 MB\) does not fit in the memory available now "
                                            r"\(3\.0 MB\); free memory"):
        load_weights(nn.Dense(1024, 1024), path)
    monkeypatch.setattr(checkpoint, "_memory_available", lambda: 5 * 2**20)  # it fits: loaded
    load_weights(nn.Dense(1024, 1024), path)
