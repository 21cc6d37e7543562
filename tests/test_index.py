"""The split index: checked once, reused while the folder is unchanged, built by one process while others wait;
one training pipeline serving every epoch in its seeded order."""
import fcntl
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from msvision import MsvisionError
from msvision.config.parse import parse_config
from msvision.data.dataset import rank_order
from msvision.data.index import index_base, split_index
from msvision.config.kwargs import train_loader_kwargs
from msvision.data.loaders import train_loader
from tests.conftest import REPO_ROOT, make_image_folder


def index_of(root):
    return split_index(root, sorted(os.listdir(root)))


def test_index_is_built_once_and_reused_until_the_folder_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("MSVISION_CACHE", str(tmp_path / "cache"))
    train = os.path.join(make_image_folder(tmp_path / "data"), "train")
    first = index_of(train)
    assert first.how.startswith("built") and first.num_items == 64
    assert index_of(train).how == "reused"
    rows = [line.split("\t") for line in open(first.files[:-len(".npz")] + ".tsv").read().splitlines()]
    assert len(rows) == 64 and rows[0][:2] == ["class_0/000.jpg", "0"] and rows[-1][:2] == ["class_3/015.jpg", "3"]
    assert all(int(size) == os.path.getsize(os.path.join(train, rel)) for rel, _, size, _ in rows)
    shutil.copy(os.path.join(train, "class_1", "000.jpg"), os.path.join(train, "class_1", "new.jpg"))
    added = index_of(train)
    assert added.how.startswith("built") and added.num_items == 65
    (tmp_path / "data" / "train" / "class_2" / "notes.txt").write_text("not an image")
    noted = index_of(train)
    assert noted.how.startswith("built") and noted.num_items == 65 and noted.meta["skipped"] == 1
    os.remove(os.path.join(train, "class_1", "new.jpg"))
    assert index_of(train).num_items == 64
    os.rename(os.path.join(train, "class_3", "015.jpg"), os.path.join(train, "class_3", "renamed.jpg"))
    renamed = index_of(train)
    assert renamed.how.startswith("built") and renamed.num_items == 64
    names = [line.split("\t")[0] for line in open(renamed.files[:-len(".npz")] + ".tsv").read().splitlines()]
    assert "class_3/renamed.jpg" in names and "class_3/015.jpg" not in names


def test_no_index_is_written_after_unreadable_images(tmp_path, monkeypatch):
    """The refusal is not cached: the next start checks the files again (and, once they are fixed, indexes them)."""
    monkeypatch.setenv("MSVISION_CACHE", str(tmp_path / "cache"))
    train = os.path.join(make_image_folder(tmp_path / "data"), "train")
    broken = os.path.join(train, "class_1", "broken.jpg")
    with open(os.path.join(train, "class_1", "000.jpg"), "rb") as good:
        open(broken, "wb").write(good.read()[:300])
    for _ in range(2):
        with pytest.raises(MsvisionError, match="1 unreadable image file"):
            index_of(train)
        assert not [n for n in os.listdir(tmp_path / "cache") if not n.endswith(".lock")]
    os.remove(broken)
    assert index_of(train).how.startswith("built")


INDEX_ONE = ("import sys; from msvision.data.index import index_base, split_index; import os; print('ready', flush=True); "
             "i = split_index(sys.argv[1], sorted(os.listdir(sys.argv[1]))); print(i.how.split()[0], i.num_items)")


@pytest.mark.slow
def test_one_process_builds_while_the_others_wait_and_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MSVISION_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    train = os.path.join(make_image_folder(tmp_path / "data"), "train")
    env = dict(os.environ)
    with open(index_base(train) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as if another rank were indexing
        ranks = [subprocess.Popen([sys.executable, "-c", INDEX_ONE, train], cwd=REPO_ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
        impatient = subprocess.run([sys.executable, "-c", INDEX_ONE, train], cwd=REPO_ROOT, text=True,
                                   env=dict(env, MSVISION_INDEX_TIMEOUT="1"), capture_output=True, timeout=300)
        assert impatient.returncode != 0
        assert "timed out after 1 s waiting for another process to index the split" in impatient.stderr
        for rank in ranks:
            assert rank.stdout.readline().strip() == "ready"
        assert all(rank.poll() is None for rank in ranks)  # all waiting on the lock
        fcntl.flock(lock, fcntl.LOCK_UN)
        results = sorted(rank.communicate(timeout=300)[0].split() for rank in ranks)
    assert results == [["built", "64"], ["reused", "64"], ["reused", "64"]]


@pytest.mark.parametrize("skip", [0, 16])  # a resumed first epoch skips whole batches
def test_one_pipeline_gives_each_epoch_in_its_seeded_order(image_folder, skip):
    index = index_of(os.path.join(image_folder, "train"))
    with np.load(index.files) as arrays:
        labels = arrays["labels"]
    args = parse_config(["--model", "vgg11", "--num_classes", "4", "--image_resize", "32", "--batch_size", "8",
                         "--num_parallel_workers", "1", "--seed", "5"])
    limit = 24  # of the 32 items rank 1 of 2 holds per epoch
    loader = train_loader(index, first_epoch=2, shard_id=1, num_shards=2, skip=skip, limit=limit,
                          **train_loader_kwargs(args))
    iterator = loader.create_tuple_iterator(num_epochs=3, output_numpy=True)
    for epoch in (2, 3, 4):
        seen = np.concatenate([batch[1] for batch in iterator])
        expected = labels[rank_order(64, epoch, 5, True, 2, 1)[1][:limit][skip if epoch == 2 else 0:]]
        assert np.array_equal(seen, expected), epoch
