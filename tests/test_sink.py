"""The sink-structured loop on CPU: sink_size steps per host iteration, device values read only at boundaries,
checkpoints on sink boundaries, same weights whatever sink_size."""
import json
import os
import re

import numpy as np
import pytest

from msvision import MsvisionError, device
from tests.conftest import tiny_run
from tests.conftest import error_line, latest_state, run_cli

# deterministic data (whole-image crops, no flip): runs that differ only in sink_size must end equal
FIXED = tiny_run(scale=(1, 1), ratio=(1, 1), hflip=0, crop_pct=1, lr=0.05, val_while_train=False)


@pytest.mark.slow
def test_sink_size_changes_structure_not_results(tmp_path, image_folder):
    runs = {}
    for sink in ("1", "4"):
        out = run_cli(["train.py", "--data_dir", image_folder, "--epoch_size", "2", "--sink_size", sink,
                       "--log_interval", "4", "--ckpt_save_steps", "3", "--keep_checkpoint_max", "10",
                       "--ckpt_save_dir", tmp_path / sink] + FIXED).stdout
        assert f"dataset sink off, {sink} steps per host iteration (auto: sink mode is not available on CPU" in out
        runs[sink] = latest_state(tmp_path / sink)
    assert set(runs["1"]) == set(runs["4"])
    assert max(float(np.abs(runs["1"][k] - runs["4"][k]).max()) for k in runs["1"]) <= 1e-6
    # 8 batches per epoch; a save is due every 3 steps but lands on the next sink boundary (a multiple of 4)
    index = json.loads((tmp_path / "4" / "checkpoints.json").read_text())
    positions = sorted((e["epoch"], e["global_step"]) for e in index["checkpoints"])
    assert positions == [(0, 4), (1, 8), (1, 12), (2, 16)], positions
    index = json.loads((tmp_path / "1" / "checkpoints.json").read_text())
    assert sorted(e["global_step"] for e in index["checkpoints"]) == [3, 6, 8, 11, 14, 16]


COUNT_READS = """
import sys
import mindspore as ms
from msvision.config.parse import parse_config
from msvision.train.loop import Trainer
calls = []
def counted(name):
    original = getattr(ms.Tensor, name)
    def read(self, *args, **kwargs):
        calls.append(name)
        return original(self, *args, **kwargs)
    setattr(ms.Tensor, name, read)
for name in ("asnumpy", "item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__array__"):
    counted(name)
Trainer(parse_config(sys.argv[1:])).run()
print("host reads", len(calls))
"""


@pytest.mark.slow
def test_no_host_read_per_step(tmp_path, image_folder):
    """8 or 16 steps in the epoch, one host iteration each: the same number of reads of device values (every path
    from a Tensor to the host: asnumpy, item, tolist, float/int/bool/index, numpy's __array__), counted over a whole
    run in a fresh process (MindSpore's device is set once per process)."""
    reads = []
    for batch, name in ((8, "eight"), (4, "sixteen")):
        out = run_cli(["-c", COUNT_READS, "--data_dir", image_folder, "--epoch_size", "1", "--log_interval", "100",
                       "--ckpt_save_dir", tmp_path / name] + FIXED + ["--batch_size", str(batch)]).stdout
        assert f"step {64 // batch}/{64 // batch} loss" in out
        reads.append(int(re.search(r"host reads (\d+)", out).group(1)))
    assert reads[0] == reads[1] and reads[0] > 0, reads


RECORD_LOSSES = """
import sys
from msvision.config.parse import parse_config
from msvision.train.loop import Trainer
from msvision.train.step import TrainStep
losses, original = [], TrainStep.__call__
def record(self, *args):
    loss, finite = original(self, *args)
    losses.append(float(loss.asnumpy()))
    return loss, finite
TrainStep.__call__ = record
Trainer(parse_config(sys.argv[1:])).run()
print("step losses", " ".join(repr(v) for v in losses))
"""


@pytest.mark.slow
def test_logged_loss_is_the_interval_mean_and_sink_options_are_checked(tmp_path, image_folder):
    """Each step's loss as the step returns it (read on the host in the test, not through the device sums): the
    log's 2-step figures are their pair means, summary.csv's epoch loss their mean."""
    out = run_cli(["-c", RECORD_LOSSES, "--data_dir", image_folder, "--epoch_size", "1", "--log_interval", "2",
                   "--sink_size", "2", "--ckpt_save_dir", tmp_path / "run"] + FIXED).stdout
    steps = np.array([float(v) for v in re.search(r"step losses (.*)", out).group(1).split()])
    logged = np.array([float(v) for v in re.findall(r"step \d+/8 loss ([\d.]+)", out)])
    rows = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    epoch_mean = float(rows[1].split(",")[1])
    print("steps", steps, "logged", logged, "epoch", epoch_mean)
    assert len(steps) == 8 and len(logged) == 4 and np.ptp(steps) > 1e-3
    assert np.abs(logged - steps.reshape(4, 2).mean(1)).max() <= 5.1e-5  # the log prints 4 decimals
    assert abs(epoch_mean - steps.mean()) <= 1e-6 * abs(steps.mean()) + 5e-7  # summary.csv: 6 decimals
    assert device.resolve_sink_mode("auto", "Ascend", 1)[0] and not device.resolve_sink_mode("auto", "CPU", 1)[0]
    assert not device.resolve_sink_mode("auto", "Ascend", 2)[0]
    with pytest.raises(MsvisionError, match="dataset_sink_mode true needs Ascend or GPU"):
        device.resolve_sink_mode("true", "CPU", 1)
    bad = run_cli(["train.py", "--data_dir", image_folder, "--sink_size", "3", "--grad_accum_steps", "2",
                   "--ckpt_save_dir", tmp_path / "bad"] + FIXED, check=False)
    assert error_line(bad) == "error: sink_size must be -1 or a positive multiple of grad_accum_steps (2), got 3"
    assert not (tmp_path / "bad").exists() or not os.listdir(tmp_path / "bad")
