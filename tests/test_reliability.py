"""Reliability: exact resume after SIGKILL (standalone and msrun), atomic saves, non-finite guard, bad inputs."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import mindspore as ms
import pytest

from msvision.weights.io import read_checkpoint
from msvision.train.records import read_summary
from tests.conftest import linked_copy
from tests.conftest import tiny_run
from tests.conftest import (REPO_ROOT, error_line, checkpoint_arrays, latest_checkpoint, latest_state, make_image_folder, max_relative,
                            msrun_command, run_cli, run_msrun)

# Every source of randomness on (crop, flips, RandAugment with magnitude noise, Cutout, random erasing, mixup and
# cutmix, dropout), with EMA, a dynamic loss scale, EQLv2's gradient statistics, mid-epoch checkpoints and 2 pipeline
# worker processes: a resumed run must still end bit-identical to an uninterrupted one.
RESUMABLE = tiny_run(loss="eqlv2", scale=(0.5, 1), hflip=0.5, vflip=0.2, auto_augment="randaug-m9-n2-mstd0.5", cutout_length=8,
                     re_prob=0.5, re_value="random", mixup=0.2, cutmix=1.0, mixup_prob=0.8, drop_rate=0.3,
                     drop_path_rate=0.2, crop_pct=1, epoch_size=3, lr=0.05, warmup_epochs=1, ema=True, ema_decay=0.9,
                     loss_scale_type="dynamic", loss_scale=1024, ckpt_save_steps=2, keep_checkpoint_max=2,
                     val_while_train=False, num_parallel_workers=2, log_interval=4, sink_size=4)


DRILL_BOUND_S = 120  # measured: ~33 s, MindSpore's scheduler declaring the lost worker's node timed out


def compare_states(resumed, uninterrupted):
    weights = [k for k in uninterrupted if not k.startswith(("state.", "optim."))]
    assert any(k.startswith(("optim.moments.", "optim.accum.")) for k in uninterrupted)  # Momentum or SGD state
    assert set(resumed) == set(uninterrupted)
    weight_diff = max_relative(resumed, uninterrupted, weights)
    moment_diff = max_relative(resumed, uninterrupted, [k for k in uninterrupted if k.startswith("optim.")])
    for key in ("state.epoch", "state.samples_in_epoch", "state.loss_scale", "state.loss_scale_counter"):
        assert resumed.get(key) == uninterrupted.get(key), key
    for key in [k for k in uninterrupted if k.startswith("state.eqlv2.")]:  # the loss's training state
        assert np.array_equal(resumed[key], uninterrupted[key]), key
    return weight_diff, moment_diff


def newest_entry(save_dir):
    """The newest entry of ckpt_save_dir/checkpoints.json, or None."""
    try:
        with open(os.path.join(save_dir, "checkpoints.json"), encoding="utf-8") as handle:
            entries = json.load(handle)["checkpoints"]
    except (OSError, ValueError):
        return None
    return max(entries, key=lambda e: e["seq"]) if entries else None


def kill_after_mid_epoch_save(cmd, save_dir, steps_per_epoch):
    """Start cmd; as soon as its newest checkpoint lies inside an epoch, stop the whole process group (SIGSTOP),
    confirm the newest checkpoint is still that one, and SIGKILL it. Returns that checkpoint's index entry, so the
    resume must start mid-epoch. (A later save between the check and the stop shows in the second read: then the
    run continues to its next mid-epoch checkpoint.)"""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        entry = newest_entry(save_dir)
        if entry and entry["global_step"] % steps_per_epoch:
            os.killpg(proc.pid, signal.SIGSTOP)
            entry = newest_entry(save_dir)
            if entry["global_step"] % steps_per_epoch:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return entry
            os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the run ended before it could be killed after a mid-epoch checkpoint")


def resume_until_done(cmd):
    """Run a resume to its end; it must succeed the first time."""
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


STANDALONE_CASES = {
    # every random op, class-balanced draws with repeats; 64 images, 8 per batch: 8 steps per epoch
    "every random op": (["--data_dir", "IMAGES", "--sampler", "class_balanced", "--aug_repeats", "2"] + RESUMABLE, 8),
    # the demo recipe as shipped (random resized crop, validation each epoch): 44 steps per epoch
    "demo recipe": (["-c", "configs/demo/ese_vovnet19b_slim_dw_digits.yaml", "--epoch_size", "2", "--ckpt_save_steps",
                     "10", "--log_interval", "10", "--keep_checkpoint_max", "2"], 44),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(STANDALONE_CASES))
def test_sigkill_and_resume_is_exact_standalone(tmp_path, image_folder, case):
    """Killed right after a mid-epoch checkpoint (the resume must start mid-epoch), resumed with --resume auto: the
    final weights, EMA and optimizer moments equal an uninterrupted run's bit for bit, and summary.csv has each epoch
    once."""
    args, steps = STANDALONE_CASES[case]
    base = [sys.executable, "train.py"] + [image_folder if a == "IMAGES" else a for a in args]
    run_cli(base[1:] + ["--ckpt_save_dir", tmp_path / "straight"])
    interrupted = str(tmp_path / "interrupted")
    entry = kill_after_mid_epoch_save(base + ["--ckpt_save_dir", interrupted], interrupted, steps_per_epoch=steps)
    out = resume_until_done(base + ["--ckpt_save_dir", interrupted, "--resume", "auto"]).stdout
    resumed = re.search(rf"resumed from \S+: epoch (\d+), batch (\d+) of {steps}", out)
    assert resumed and int(resumed.group(2)) == entry["global_step"] % steps > 0, out[-2000:]
    weights, moments = compare_states(latest_state(interrupted), latest_state(tmp_path / "straight"))
    assert ("state.eqlv2.pos_grad" in latest_state(interrupted)) == (case == "every random op")
    print(f"{case}: killed after the checkpoint at step {entry['global_step']} (epoch {resumed.group(1)}, batch "
          f"{resumed.group(2)} of {steps}); resumed vs uninterrupted: weights {weights:.2e}, moments {moments:.2e}")
    assert weights == 0.0 and moments == 0.0
    rows = [read_summary(os.path.join(d, "summary.csv")) for d in (interrupted, tmp_path / "straight")]
    epochs = len(rows[1])
    assert [[(r["epoch"], r["lr"], r["train_loss"]) for r in run] for run in rows] == \
        [[(str(e), rows[1][e - 1]["lr"], rows[1][e - 1]["train_loss"]) for e in range(1, epochs + 1)]] * 2


def msrun_worker(save_dir, rank):
    """The pid of the msrun worker of `rank` training into save_dir (from /proc: its command line and environment)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{pid}/environ", "rb") as handle:
                env = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if str(save_dir).encode() in cmdline and env.get(b"MS_ROLE") == b"MS_WORKER" and \
                env.get(b"RANK_ID") == str(rank).encode():
            return int(pid)
    return None


@pytest.mark.slow
def test_failure_drill_one_msrun_worker_killed_then_exact_resume(tmp_path, image_folder, free_port):
    """SIGKILL one of two msrun workers mid-epoch: the job ends by itself (no hang) within a bound, and --resume
    auto under msrun ends exactly where an uninterrupted run does."""
    def msrun(save_dir, port, *extra):
        return msrun_command(tmp_path / f"logs{port}", port, "train.py", "--data_dir", image_folder, "--batch_size", "4",
                             "--ckpt_save_dir", save_dir, *RESUMABLE, *extra)

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    resume_until_done(msrun(straight, free_port))
    job = subprocess.Popen(msrun(interrupted, free_port + 1), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not os.path.exists(interrupted / "checkpoints.json") and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    victim = msrun_worker(interrupted, 1)
    assert victim and job.poll() is None, "the job ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    try:
        code = job.wait(timeout=DRILL_BOUND_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        raise AssertionError(f"msrun still running {DRILL_BOUND_S} s after a worker was killed")
    ended_in = time.time() - killed_at
    print(f"one of 2 msrun workers SIGKILLed: the job exited with {code} after {ended_in:.1f} s")
    assert code != 0 and msrun_worker(interrupted, 0) is None  # failed loudly, no worker left behind
    resume_until_done(msrun(interrupted, free_port + 2, "--resume", "auto"))
    weights, moments = compare_states(latest_state(interrupted), latest_state(straight))
    print(f"resumed vs uninterrupted: weights {weights:.2e}, optimizer moments {moments:.2e}")
    assert weights <= 1e-6 and moments <= 1e-6


@pytest.mark.slow
def test_sigkill_during_a_save_leaves_only_loadable_checkpoints(tmp_path, image_folder):
    save_dir = str(tmp_path / "run")
    cmd = [sys.executable, "train.py", "--data_dir", image_folder, "--model", "vgg11", "--num_classes", "4",
           "--image_resize", "32", "--batch_size", "16", "--epoch_size", "2", "--ckpt_save_steps", "1",
           "--val_while_train", "false", "--num_parallel_workers", "1", "--ckpt_save_dir", save_dir]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    saves_seen, deadline = 0, time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        partial = glob.glob(os.path.join(save_dir, ".*.tmp*"))
        if partial and os.path.exists(os.path.join(save_dir, "checkpoints.json")):
            saves_seen += 1
            if saves_seen > 1:
                break
            time.sleep(1.0)
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert glob.glob(os.path.join(save_dir, ".*.tmp*")), "the kill should land inside a save"
    finals = glob.glob(os.path.join(save_dir, "*.ckpt"))
    assert finals
    for path in finals:  # every file under a final name loads
        assert "features.0.weight" in read_checkpoint(path)
    out = resume_until_done(cmd + ["--resume", "auto"]).stdout
    assert "resumed from" in out and "training done" in out
    assert not glob.glob(os.path.join(save_dir, ".*.tmp*"))  # leftovers of the killed save are cleaned up


@pytest.mark.slow
def test_nonfinite_losses_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, image_folder):
    save_dir = tmp_path / "run"
    common = ["train.py", "--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
              "--image_resize", "32", "--batch_size", "8", "--val_while_train", "false", "--ckpt_save_dir", save_dir,
              "--num_parallel_workers", "1", "--max_nonfinite_steps", "3", "--ckpt_save_steps", "1"]
    run_cli(common + ["--epoch_size", "1"])
    good = latest_checkpoint(save_dir)
    good_bytes = open(good, "rb").read()
    done = run_cli(common + ["--epoch_size", "2", "--resume", "auto", "--lr", "1e38"], check=False)
    line = error_line(done)
    # noticed at the next read of the device statistics: after at least max_nonfinite_steps bad steps
    stopped = re.match(r"error: loss or gradients were non-finite for (\d+) consecutive steps \(max_nonfinite_steps 3\)",
                       line)
    assert stopped and int(stopped.group(1)) >= 3, line
    latest = latest_checkpoint(save_dir)
    assert f"last good checkpoint: {latest}" in line
    assert open(good, "rb").read() == good_bytes  # earlier checkpoints untouched
    for path in {good, latest}:  # nothing with non-finite weights was saved
        assert all(np.isfinite(v.asnumpy()).all() for v in read_checkpoint(path).values() if not isinstance(v, str))


@pytest.mark.parametrize("bad", [None, np.inf, -np.inf, np.nan])
def test_gradient_check_flags_any_inf_or_nan(bad):
    from mindspore import nn, ops

    from msvision.train.step import all_finite

    class Check(nn.Cell):
        def __init__(self):
            super().__init__()
            self.hyper_map = ops.HyperMap()

        def construct(self, grads):
            return all_finite(grads, self.hyper_map)

    rng = np.random.default_rng(0)
    shapes = [(7,), (5, 3), (4, 3, 3, 3), (16, 8, 1, 1)]
    check = Check()
    for position, shape in enumerate(shapes):  # the bad value in each tensor in turn, large finite values around it
        grads = [rng.standard_normal(s).astype(np.float32) * 1e30 for s in shapes]
        if bad is not None:
            grads[position].flat[rng.integers(grads[position].size)] = bad
        assert bool(check(tuple(ms.Tensor(g) for g in grads))) is (bad is None)


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.fixture
def guarded_dir(tmp_path):
    """A ckpt_save_dir that already holds a user's files: an error must leave them untouched."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: earlier-run\n")
    (folder / "notes.txt").write_text("keep me")
    return folder


def assert_untouched(folder):
    assert sorted(os.listdir(folder)) == ["config.yaml", "notes.txt"]
    assert (folder / "config.yaml").read_text() == "model: earlier-run\n"


def train_error(args, folder, foreign=()):
    line = error_line(run_cli(["train.py", "--ckpt_save_dir", folder] + [str(a) for a in args], check=False,
                              timeout=300), foreign=foreign)
    print(f"{' '.join(str(a) for a in args)[-60:]} -> {line}")
    return line


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory, image_folder):
    """A trained 4-class checkpoint of ese_vovnet19b_slim_dw, and a truncated copy of it."""
    folder = tmp_path_factory.mktemp("ckpts")
    run_cli(["train.py", "--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
             "--image_resize", "32", "--batch_size", "16", "--epoch_size", "1", "--val_while_train", "false",
             "--ckpt_save_dir", folder / "run", "--num_parallel_workers", "1"])
    good = latest_checkpoint(folder / "run")
    truncated = folder / "truncated.ckpt"
    truncated.write_bytes(open(good, "rb").read()[:20000])
    return good, str(truncated)


SMALL = tiny_run(batch_size=4)


@pytest.mark.slow
def test_bad_config_and_data_inputs(tmp_path, guarded_dir, image_folder):
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("model: vgg11\nlearning_rate: 0.1\n")
    assert "unknown key 'learning_rate'" in train_error(["-c", yaml_file], guarded_dir)
    assert "argument --batch_size: invalid int value: 'eight'" in train_error(["--batch_size", "eight"],
                                                                               guarded_dir)
    assert "data_dir is not set" in train_error(SMALL, guarded_dir)
    assert "data_dir not found: '/nonexistent'" in train_error(SMALL + ["--data_dir", "/nonexistent"], guarded_dir)
    no_val = tmp_path / "no_val"
    linked_copy(os.path.join(image_folder, "train"), no_val / "train")
    assert f"split folder missing: '{no_val}/val'" in train_error(SMALL + ["--data_dir", no_val], guarded_dir)
    no_train = tmp_path / "no_train"
    linked_copy(os.path.join(image_folder, "val"), no_train / "val")
    assert f"split folder missing: '{no_train}/train'" in train_error(SMALL + ["--data_dir", no_train],
                                                                       guarded_dir)
    empty = tmp_path / "empty_class"
    linked_copy(image_folder, empty)
    shutil.rmtree(empty / "train" / "class_2")
    (empty / "train" / "class_2").mkdir()
    assert f"class folder has no images: '{empty}/train/class_2'" in train_error(SMALL + ["--data_dir", empty],
                                                                                  guarded_dir)
    assert "batch_size 65 x grad_accum_steps 1 is larger than the 64 training images per device" in \
        train_error(SMALL + ["--data_dir", image_folder, "--batch_size", "65"], guarded_dir)
    assert train_error(SMALL + ["--data_dir", image_folder, "--num_classes", "5"], guarded_dir) == \
        f"error: num_classes is 5 but '{image_folder}/train' has 4 class folders: set num_classes: 4"
    renamed = tmp_path / "renamed_val_class"
    linked_copy(image_folder, renamed)
    os.rename(renamed / "val" / "class_3", renamed / "val" / "class_x")
    assert train_error(SMALL + ["--data_dir", renamed], guarded_dir) == \
        f"error: class folders of '{renamed}/val' differ from those of '{renamed}/train'"
    assert_untouched(guarded_dir)


@pytest.mark.slow
def test_unwritable_cache_is_one_line(tmp_path, monkeypatch, guarded_dir, image_folder):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("MSVISION_CACHE", str(blocker / "cache"))
    fresh = tmp_path / "data"  # not indexed yet in the tests' cache
    linked_copy(image_folder, fresh)
    assert train_error(SMALL + ["--data_dir", fresh], guarded_dir) == \
        f"error: cache folder '{blocker}/cache' cannot be created (Not a directory): set MSVISION_CACHE to a " \
        f"writable folder"
    assert_untouched(guarded_dir)


@pytest.mark.slow
def test_corrupt_images_are_named_before_training(tmp_path, guarded_dir, image_folder):
    data = tmp_path / "data"
    linked_copy(image_folder, data)
    good = data / "train" / "class_1" / "003.jpg"
    (data / "train" / "class_1" / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (data / "train" / "class_0" / "not_an_image.jpg").write_text("hello")
    line = train_error(SMALL + ["--data_dir", data], guarded_dir)
    assert "2 unreadable image file(s)" in line and "truncated.jpg" in line and "not_an_image.jpg" in line
    assert_untouched(guarded_dir)


@pytest.mark.slow
def test_a_file_corrupt_inside_is_one_line_naming_the_split(tmp_path, image_folder):
    """Header and end marker intact, no image between: passes the index's check, fails in the decoder."""
    data = tmp_path / "data"
    linked_copy(image_folder, data)
    victim = data / "train" / "class_1" / "003.jpg"
    raw = victim.read_bytes()
    victim.unlink()  # a hard link to the shared folder's file: a new file, not a rewrite of that one
    victim.write_bytes(raw[:20] + bytes(300) + raw[-300:])
    line = train_error(SMALL + ["--data_dir", data, "--epoch_size", "1"], tmp_path / "run",
                       foreign=("Corrupt JPEG data",))  # libjpeg's own warning, written by the C library
    assert line == (f"error: cannot decode an image under '{data}/train': a file is corrupt (its header and end marker "
                    f"looked complete); find it with PIL, remove or replace it")


@pytest.mark.slow
def test_bad_imbalance_and_finetune_inputs(tmp_path, guarded_dir, image_folder):
    data = SMALL + ["--data_dir", image_folder]
    assert train_error(data + ["--sampler", "random"], guarded_dir) == \
        "error: option 'sampler' must be one of uniform, class_balanced, sqrt, got 'random'"
    assert train_error(data + ["--freeze", "5"], guarded_dir) == \
        "error: freeze 5 is beyond the 4 stages of ese_vovnet19b_slim_dw: use 1 to 4 or backbone"
    assert train_error(data + ["--freeze", "head"], guarded_dir) == \
        "error: freeze must be none, backbone or a number of stages from 1 to 4 (for ese_vovnet19b_slim_dw), got 'head'"
    vgg = tiny_run(batch_size=4, model="vgg11") + ["--data_dir", image_folder]
    assert "freeze 6 is beyond the 5 stages of vgg11" in train_error(vgg + ["--freeze", "6"], guarded_dir)
    empty = tmp_path / "empty_class"  # every run refuses an empty class folder, before any class weight is computed
    linked_copy(image_folder, empty)
    shutil.rmtree(empty / "train" / "class_1")
    (empty / "train" / "class_1").mkdir()
    assert f"class folder has no images: '{empty}/train/class_1'" in \
        train_error(SMALL + ["--data_dir", empty, "--class_weight", "inverse"], guarded_dir)
    assert_untouched(guarded_dir)


@pytest.mark.slow
def test_non_image_files_are_skipped_with_a_count(tmp_path, image_folder):
    data = tmp_path / "data"
    linked_copy(image_folder, data)
    (data / "train" / "class_0" / "README.txt").write_text("labels from the 2024 survey")
    (data / "train" / "class_3" / "Thumbs.db").write_bytes(b"\0\1")
    out = run_cli(["train.py", "--data_dir", data, "--epoch_size", "1", "--val_while_train", "false",
                   "--ckpt_save_dir", tmp_path / "out"] + SMALL).stdout
    assert "skipped 2 files without an image extension" in out and "training done" in out


@pytest.mark.slow
def test_bad_checkpoints_for_training(tmp_path, guarded_dir, image_folder, small_checkpoints):
    good, truncated = small_checkpoints
    data = ["--data_dir", image_folder]
    assert "checkpoint not found" in train_error(SMALL + data + ["--ckpt_path", tmp_path / "x.ckpt"], guarded_dir)
    assert "is not a readable MindSpore checkpoint" in train_error(SMALL + data + ["--ckpt_path", truncated],
                                                                    guarded_dir)
    other = tiny_run(batch_size=4, model="ese_vovnet19b_dw")
    assert "does not fit the model: missing" in train_error(other + data + ["--ckpt_path", good], guarded_dir)
    ten = tmp_path / "ten"
    make_image_folder(ten, classes=10, train_per_class=2, val_per_class=1)
    line = train_error(tiny_run(batch_size=4, num_classes=10) + ["--data_dir", ten, "--ckpt_path", good], guarded_dir)
    assert "head.fc.weight: checkpoint (4, 512) vs model (10, 512)" in line and "reset_head" in line
    assert_untouched(guarded_dir)
    out = run_cli(["train.py"] + tiny_run(batch_size=4, num_classes=10) +
                  ["--data_dir", ten, "--ckpt_path", good, "--reset_head", "--freeze", "backbone", "--epoch_size", "1",
                   "--val_while_train", "false", "--ckpt_save_dir", tmp_path / "finetune"]).stdout
    assert "re-initialised: head.fc.bias, head.fc.weight" in out
    # the file: the frozen backbone is the checkpoint's exactly, the classifier a new one for 10 classes
    after = latest_state(tmp_path / "finetune")
    before = checkpoint_arrays(good)
    backbone = [k for k in after if k.startswith("stem.") or k.startswith("stages.")]
    assert len(backbone) > 50 and all(np.array_equal(after[k], before[k]) for k in backbone)
    assert after["head.fc.weight"].shape == (10, 512) and before["head.fc.weight"].shape == (4, 512)


@pytest.mark.slow
def test_validation_folder_of_another_class_count(tmp_path, image_folder, small_checkpoints):
    """A folder with a class the checkpoint does not know: the line names it (it used to give only the counts)."""
    five = tmp_path / "five"
    make_image_folder(five, classes=5, train_per_class=1, val_per_class=1)
    done = run_cli(["validate.py", "--ckpt_path", small_checkpoints[0], "--data_dir", five], check=False)
    assert error_line(done) == (f"error: '{five}/val' has class folders the model does not know: class_4 (expected "
                                f"a subset of the checkpoint's 4 classes)")


@pytest.mark.slow
def test_unwritable_dir_and_existing_run(tmp_path, image_folder, small_checkpoints):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    line = train_error(SMALL + ["--data_dir", image_folder], blocker / "sub")
    assert "ckpt_save_dir" in line and "is not writable" in line
    run_dir = os.path.dirname(small_checkpoints[0])
    before = sorted(os.listdir(run_dir))
    line = train_error(SMALL + ["--data_dir", image_folder], run_dir)
    assert "already holds checkpoints" in line and "--resume auto" in line
    assert sorted(os.listdir(run_dir)) == before


@pytest.mark.slow
def test_resume_with_another_world_size_rescales_lr(tmp_path, image_folder, free_port):
    """One process saves mid-epoch (32 of 64 images, step 4 of 8); two msrun workers resume from that file: they
    continue at batch 2 of the 4 an epoch now has, with the LR doubled (linear rule, constant schedule), and train
    the epoch's second half then epoch 2."""
    save_dir = tmp_path / "run"
    common = ["--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
              "--image_resize", "32", "--batch_size", "8", "--val_while_train", "false", "--lr", "0.1",
              "--lr_base_batch_size", "8", "--scheduler", "constant", "--warmup_epochs", "0", "--log_interval", "1",
              "--num_parallel_workers", "1", "--keep_checkpoint_max", "10", "--ckpt_save_dir", str(save_dir)]
    run_cli(["train.py", "--epoch_size", "1", "--ckpt_save_steps", "4"] + common)
    entries = json.loads((save_dir / "checkpoints.json").read_text())["checkpoints"]
    middle = [str(save_dir / e["file"]) for e in entries if e["global_step"] == 4][0]
    run_msrun(tmp_path / "logs", free_port, "train.py", "--epoch_size", "2", "--resume", middle, *common)
    log = open(save_dir / "train.log", encoding="utf-8").read().split(f"resumed from {middle}")[1]
    assert log.startswith(": epoch 1, batch 2 of 4, optimizer step 2"), log[:200]
    assert "resuming with world size 2 (checkpoint had 1): effective lr 0.1 -> 0.2, steps per epoch now 4" in log
    steps = re.findall(r"epoch (\d)/2 step (\d)/4 loss [\d.]+ lr ([\d.]+)", log)
    assert steps == [("1", "3", "0.2"), ("1", "4", "0.2")] + [("2", str(i), "0.2") for i in range(1, 5)], steps
    assert latest_state(save_dir)["state.world_size"] == 2 and "training done" in log
