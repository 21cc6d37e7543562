"""The hardware side of scripts/ascend_check.py: msrun jobs of train.py on a subset of the user's data, read back
from their logs and checkpoints. Ascend only (reached through check.AscendCluster); never run on this project's CPU
machines."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

from msvision.errors import MsvisionError

STEP_LINE = re.compile(r"step \d+/\d+ .* ([\d.]+) img/s ([\d.]+) ms/step")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _first_line(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unavailable"


def environment():
    """The device, its count, the CANN toolkit, the driver and MindSpore versions."""
    import mindspore as ms

    home = os.environ.get("ASCEND_HOME_PATH", "/usr/local/Ascend/ascend-toolkit/latest")
    cann = "unknown"
    for name in ("version.cfg", "ascend_toolkit_install.info", os.path.join("compiler", "version.info")):
        path = os.path.join(home, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                cann = " ".join(line.strip() for line in handle if "version" in line.lower())[:200]
            break
    return {"device": ms.hal.get_device_name(0), "devices on this host": ms.hal.device_count(),
            "CANN": cann, "npu-smi": _first_line(["npu-smi", "info"]), "MindSpore": ms.__version__,
            "python": sys.version.split()[0]}


def subset(data_dir, images, folder):
    """A train/ folder of symbolic links to `images` of data_dir's training images, taken round-robin over the
    classes (every class folder kept, so num_classes stays the recipe's)."""
    root = os.path.join(data_dir, "train")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files = {c: sorted(os.listdir(os.path.join(root, c))) for c in classes}
    if sum(len(f) for f in files.values()) < images:
        raise MsvisionError(f"'{root}' holds fewer than the {images} training images the check needs")
    taken, depth = 0, 0
    while taken < images:
        for name in classes:
            if depth < len(files[name]) and taken < images:
                os.makedirs(os.path.join(folder, "train", name), exist_ok=True)
                os.symlink(os.path.join(root, name, files[name][depth]),
                           os.path.join(folder, "train", name, files[name][depth]))
                taken += 1
        depth += 1
    return folder, len(classes)


def _command(recipe, cards, data, classes, save_dir, port, *extra):
    msrun = os.path.join(os.path.dirname(sys.executable), "msrun")
    return [msrun, "--worker_num", str(cards), "--local_worker_num", str(cards), "--master_port", str(port),
            "--log_dir", os.path.join(save_dir, "msrun_logs"), "--join", "True", sys.executable,
            os.path.join(REPO, "train.py"), "--config", recipe, "--data_dir", data, "--num_classes", str(classes),
            "--val_while_train", "false", "--ckpt_save_dir", save_dir, *map(str, extra)]


def throughput(recipe, cards, steps, data_dir, work_dir):
    """The recipe's first `steps` steps: mean ms/step and global img/s over the log intervals after the first."""
    with open(recipe, encoding="utf-8") as handle:
        batch = yaml.safe_load(handle)["batch_size"]
    data, classes = subset(data_dir, steps * batch * cards, os.path.join(work_dir, "data"))
    save_dir = os.path.join(work_dir, "run")
    subprocess.run(_command(recipe, cards, data, classes, save_dir, 8118, "--epoch_size", 1, "--log_interval", 20),
                   check=True, cwd=REPO)
    with open(os.path.join(save_dir, "train.log"), encoding="utf-8") as handle:
        figures = [tuple(map(float, m.groups())) for m in map(STEP_LINE.search, handle) if m]
    if len(figures) < 2:
        raise MsvisionError(f"{save_dir}/train.log has {len(figures)} step lines; expected at least 2")
    later = figures[1:]
    return {"cards": cards, "steps": steps, "img_per_s": float(np.mean([f[0] for f in later])),
            "ms_per_step": float(np.mean([f[1] for f in later])), "log": os.path.join(save_dir, "train.log")}


def _newest_step(save_dir):
    try:
        with open(os.path.join(save_dir, "checkpoints.json"), encoding="utf-8") as handle:
            entries = json.load(handle)["checkpoints"]
        return max(entries, key=lambda e: e["seq"])
    except (OSError, ValueError, KeyError):
        return None


def exact_resume(recipe, cards, data_dir, work_dir, steps_per_epoch=20):
    """Two epochs of `steps_per_epoch` steps straight, and again killed (-9, the whole job) after a mid-epoch
    checkpoint and resumed: the final weights and optimizer state must be bit-identical."""
    from msvision.weights.io import read_checkpoint

    with open(recipe, encoding="utf-8") as handle:
        batch = yaml.safe_load(handle)["batch_size"]
    data, classes = subset(data_dir, steps_per_epoch * batch * cards, os.path.join(work_dir, "data"))
    common = ("--epoch_size", 2, "--ckpt_save_steps", 5, "--log_interval", 5, "--sink_size", 5)
    straight, killed = os.path.join(work_dir, "straight"), os.path.join(work_dir, "killed")
    subprocess.run(_command(recipe, cards, data, classes, straight, 8119, *common), check=True, cwd=REPO)
    job = subprocess.Popen(_command(recipe, cards, data, classes, killed, 8120, *common), cwd=REPO,
                           start_new_session=True)
    entry = None
    while job.poll() is None:
        entry = _newest_step(killed)
        if entry and entry["global_step"] > steps_per_epoch and entry["global_step"] % steps_per_epoch:
            os.killpg(job.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    if job.wait() == 0:
        return {"equal": False, "detail": "the run ended before it could be killed after a mid-epoch checkpoint"}
    subprocess.run(_command(recipe, cards, data, classes, killed, 8121, *common, "--resume", "auto"), check=True,
                   cwd=REPO)
    finals = [read_checkpoint(os.path.join(d, _newest_step(d)["file"])) for d in (straight, killed)]
    names = [k for k, v in finals[0].items() if not isinstance(v, str) and not k.startswith("state.")]
    differing = [k for k in names if not np.array_equal(finals[0][k].asnumpy(), finals[1][k].asnumpy())]
    return {"equal": not differing, "detail": f"killed after the checkpoint at step {entry['global_step']},"
            f" {len(names)} tensors compared, {len(differing)} differ"}


def keyed_masks(reference_keep):
    """KeyedDropout(0.5) on a 64 x 4096 batch at three counters, on the NPU, against the uint32 definition."""
    import mindspore as ms

    from msvision.models.layers import KeyedDropout, seek_keyed_random, to_int32, RNG_SEED

    ms.set_device("Ascend")
    ms.set_context(mode=ms.GRAPH_MODE)
    cell = KeyedDropout(0.5)
    cell.salt = to_int32(0x9E3779B9)
    cell.set_train(True)
    mismatches = 0
    for micro_batch in (0, 12345, 2 ** 28):
        seek_keyed_random(42, micro_batch, 8, 3)
        kept = cell(ms.Tensor(np.ones((64, 4096), np.float32))).asnumpy() > 0
        expected = reference_keep((64, 4096), 0.5, to_int32(micro_batch * 8 + 3) & 0xFFFFFFFF,
                                  int(RNG_SEED.asnumpy()) & 0xFFFFFFFF, cell.salt)
        mismatches += int((kept != expected).sum())
    return {"equal": mismatches == 0, "detail": f"3 x 262144 units, {mismatches} differ"}
