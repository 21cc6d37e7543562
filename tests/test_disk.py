"""Disk: a checkpoint that does not fit is one line and costs nothing already written, on a real small filesystem;
-best.ckpt is a hard link that retention cannot break."""
import contextlib
import logging
import json
import os
import re
import subprocess

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from msvision.weights import io as checkpoint
from msvision.weights.io import read_checkpoint
from msvision.weights.manager import CheckpointManager
from msvision.files import WriteFailed, write_text
from msvision.train.records import read_summary
from tests.conftest import tiny_run
from tests.conftest import run_cli
from tests.conftest import latest_state
from tests.test_reliability import compare_states


@contextlib.contextmanager
def tmpfs(folder, megabytes):
    """A real tmpfs of the given size mounted at folder (the test needs root, as CI has)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}M", "tmpfs", str(folder)], check=True)
    try:
        yield str(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder, megabytes):
    subprocess.run(["mount", "-o", f"remount,size={megabytes}M", str(folder)], check=True)


class RecordingHandler(logging.Handler):
    """Keeps what a logger emits, whatever other handlers the logger has."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.slow
def test_a_write_that_fails_on_the_disk_leaves_nothing(tmp_path, monkeypatch):
    """The space check said yes (here: told a checkpoint needs 1 byte), then the disk filled during MindSpore's own
    write: one error naming the file and the free space, no temporary of ours or MindSpore's, nothing from MindSpore
    on stderr."""
    records = RecordingHandler()
    mindspore_logger = ms.log._get_logger()  # pylint: disable=protected-access  (MindSpore's logger has no handle)
    # ours beside whatever handlers it holds (pytest's logging plugin may have added its own); restored afterwards
    monkeypatch.setattr(mindspore_logger, "handlers", mindspore_logger.handlers + [records])
    with tmpfs(tmp_path / "small", 2) as folder:
        monkeypatch.setattr(checkpoint, "checkpoint_bytes", lambda *args: 1)
        net = nn.Dense(1024, 1024)  # 4 MB of weights
        with pytest.raises(WriteFailed) as err:
            checkpoint.save_atomic(net, os.path.join(folder, "x.ckpt"))
        assert str(err.value).startswith(f"no space left for '{folder}/x.ckpt' (") and f"free on {folder})" in \
            str(err.value)
        assert os.listdir(folder) == []
        assert records.lines == []  # MindSpore logs a CRITICAL line on a failed save unless msvision quiets it
        with pytest.raises(WriteFailed, match=f"no space left for '{folder}/notes.txt' \\(3.0 MB needed, "):
            write_text(os.path.join(folder, "notes.txt"), "x" * 3 * 2 ** 20)  # refused before writing
        assert os.listdir(folder) == []


def test_best_is_a_hard_link_that_retention_keeps_valid(tmp_path):
    manager = CheckpointManager(str(tmp_path), "m", 1, "latest_k")
    net = nn.Dense(8, 4)
    first = manager.save(net, {"state.epoch": 1}, 1, 10, metric=60.0)
    weights = net.weight.asnumpy().copy()
    best = tmp_path / "m-best.ckpt"
    assert os.stat(best).st_ino == os.stat(first).st_ino and os.stat(first).st_nlink == 2  # one file's data
    net.weight.set_data(ms.Tensor(np.zeros((4, 8), np.float32)))
    second = manager.save(net, {"state.epoch": 2}, 2, 20, metric=40.0)  # worse: best unchanged; keep 1: first goes
    assert not os.path.exists(first) and os.path.exists(second)
    assert np.array_equal(read_checkpoint(str(best))["weight"].asnumpy(), weights)  # the link kept the data
    index = json.loads((tmp_path / "checkpoints.json").read_text())
    assert index["best"]["file"] == "m-best.ckpt"
    assert [e["file"] for e in index["checkpoints"]] == ["m-epoch2-step20.ckpt"]
    third = manager.save(net, {"state.epoch": 3}, 3, 30, metric=70.0)
    assert os.stat(best).st_ino == os.stat(third).st_ino


RUN_OPTIONS = dict(epoch_size=2, lr=0.05, ckpt_save_steps=2, keep_checkpoint_max=5, log_interval=2,
                   val_while_train=False, hflip=0.5, drop_rate=0.2)
RUN = tiny_run(**RUN_OPTIONS)


@pytest.mark.slow
def test_full_disk_mid_run_then_resume_after_freeing_space(tmp_path, image_folder):
    """ckpt_save_dir on a 40 MB tmpfs, checkpoints of 10.8 MB every 2 steps: the fourth save does not fit. One line
    naming the checkpoint, the bytes needed and free and the last intact checkpoint; exit 2; no temporary; every
    earlier checkpoint, checkpoints.json and summary.csv valid. After the filesystem grows, --resume auto ends
    bit-identical to an uninterrupted run."""
    straight = tmp_path / "straight"
    run_cli(["train.py", "--data_dir", image_folder, "--ckpt_save_dir", straight] + RUN)
    with tmpfs(tmp_path / "small", 40) as folder:
        run = os.path.join(folder, "run")
        done = run_cli(["train.py", "--data_dir", image_folder, "--ckpt_save_dir", run] + RUN, check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
        intact = CheckpointManager(run, "", 1, "latest_k").latest()
        assert re.fullmatch(f"error: no space left for '{run}/ese_vovnet19b_slim_dw-epoch1-step8.ckpt' "
                            r"\(10.8 MB needed, \d+\.\d MB free on " + re.escape(folder) + r"\); last intact "
                            f"checkpoint: {re.escape(intact)}; free space or lower keep_checkpoint_max",
                            lines[0]), lines[0]
        print(lines[0])
        names = sorted(os.listdir(run))
        assert not [n for n in names if ".tmp" in n], names
        index = json.loads(open(os.path.join(run, "checkpoints.json")).read())
        assert [e["global_step"] for e in index["checkpoints"]] == [2, 4, 6] and intact.endswith("step6.ckpt")
        for entry in index["checkpoints"]:
            assert "head.fc.weight" in read_checkpoint(os.path.join(run, entry["file"]))
        read_summary(os.path.join(run, "summary.csv"))  # absent or valid CSV (no epoch ended yet)

        resize(folder, 200)
        out = run_cli(["train.py", "--data_dir", image_folder, "--ckpt_save_dir", run, "--resume", "auto"] + RUN).stdout
        assert f"resumed from {intact}" in out
        weights, moments = compare_states(latest_state(run), latest_state(straight))
        assert weights == 0.0 and moments == 0.0

        # a small write (config.yaml at the start of a run) on a full filesystem: one line too, nothing lost
        before = sorted(os.listdir(run))
        with open(os.path.join(folder, "filler"), "wb") as handle:
            handle.write(b"\0" * (os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize))
        done = run_cli(["train.py", "--data_dir", image_folder, "--ckpt_save_dir", run, "--resume", "auto",
                        "--epoch_size", "3"] + tiny_run(**dict(RUN_OPTIONS, epoch_size=None)), check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(
            f"error: no space left for '{run}/config.yaml' ("), done.stderr[-2000:]
        assert sorted(os.listdir(run)) == before
