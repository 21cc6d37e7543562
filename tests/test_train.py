"""Training end to end: the demo learns, msrun data parallel equals one process, accumulation, EMA, loss scale."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.weights.io import CONFIG_KEY, read_checkpoint
from msvision.config.parse import config_from_text
from msvision.train.records import read_summary
from tests.conftest import tiny_run
from tests.conftest import (REPO_ROOT, checkpoint_arrays, error_line, eval_inputs, latest_checkpoint, latest_state,
                            max_relative, run_cli, run_msrun, split_files)

# VGG-11 has no BatchNorm, so one process at batch 16 and two at batch 8 compute the same gradient (the CIFAR head:
# 9M parameters where the ImageNet head at 32 px holds 129M copies of the same features).
EXACT = tiny_run(model="vgg11_cifar", batch_size=None, scale=(1, 1), ratio=(1, 1), hflip=0, crop_pct=1, drop_rate=0,
                 epoch_size=1, lr=0.01, lr_base_batch_size=16, val_while_train=False, log_interval=1, weight_decay=0,
                 scheduler="constant", keep_checkpoint_max=1)


def final_weights(save_dir):
    return {k: v for k, v in latest_state(save_dir).items() if not k.startswith(("state.", "optim."))}


def initial_weights():
    ms.set_seed(42)
    return {p.name: p.asnumpy() for p in msvision.create_model("vgg11_cifar", num_classes=4).get_parameters()}


def lr_line(save_dir):
    with open(os.path.join(save_dir, "train.log"), encoding="utf-8") as handle:
        return re.search(r"effective lr (\S+) at global batch (\d+)", handle.read()).groups()


@pytest.mark.slow
def test_demo_config_learns(tmp_path):
    out = run_cli(["train.py", "-c", "configs/demo/ese_vovnet19b_slim_dw_digits.yaml", "--epoch_size", "3",
                   "--ckpt_save_dir", tmp_path, "--log_interval", "10"]).stdout
    assert "device CPU, graph mode, jit_level O0 (auto on CPU: kernel by kernel" in out
    step_times = [float(v) for v in re.findall(r"img/s ([\d.]+) ms/step", out)]
    assert step_times and all(t > 0 for t in step_times)  # MindCV's unit beside img/s
    top1 = [float(v) for v in re.findall(r"validation epoch \d+: top-1 ([\d.]+)%", out)]
    losses = [float(v) for v in re.findall(r"step \d+/\d+ loss ([\d.]+)", out)]
    assert len(top1) == 3 and top1[-1] >= 80.0 and top1[-1] > top1[0]
    assert losses[-1] < 0.6 * losses[0]
    ckpt_path = re.search(r"checkpoint: (\S+\.ckpt)", out).group(1)
    stored = config_from_text(read_checkpoint(ckpt_path)[CONFIG_KEY])
    assert stored.model == "ese_vovnet19b_slim_dw" and stored.epoch_size == 3
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "ese_vovnet19b_slim_dw-best.ckpt").is_file()

    # run records: one summary row per epoch, as logged, and its curves as a PNG of the requested size
    rows = read_summary(str(tmp_path / "summary.csv"))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_top1"]) for r in rows] == top1
    assert all(0.0 <= float(r["data_wait_share"]) < 1.0 and float(r["train_img_per_s"]) > 0 for r in rows)
    assert float(rows[0]["train_loss"]) > float(rows[-1]["train_loss"]) and float(rows[-1]["lr"]) < 1e-3
    assert re.search(r"ms/step data wait \d+% ETA", out)
    png = tmp_path / "curves.png"
    run_cli(["scripts/plot_run.py", tmp_path, tmp_path, "--output", png])
    from PIL import Image
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1500, 450)
        assert len(set(image.convert("L").getdata())) > 10  # drawn, not blank


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory, image_folder):
    """The reference of the data-parallel and accumulation tests: one process, batch 16 (its ckpt_save_dir)."""
    single = tmp_path_factory.mktemp("single")
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "16", "--ckpt_save_dir", single] + EXACT)
    return single


@pytest.mark.slow
def test_msrun_two_workers_equal_one_process(tmp_path, image_folder, free_port):
    """With loss eqlv2, whose gradient statistics each rank adds from its own half of the batch and the ranks sum:
    two workers at batch 8 end with one process's weights and statistics at batch 16."""
    single, double = tmp_path / "single", tmp_path / "double"
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "16", "--ckpt_save_dir", single, "--loss",
             "eqlv2"] + EXACT)
    run_msrun(tmp_path / "logs", free_port, "train.py", "--data_dir", image_folder, "--batch_size", "8",
              "--ckpt_save_dir", double, "--loss", "eqlv2", *EXACT)
    one, two, init = final_weights(single), final_weights(double), initial_weights()
    difference, moved = max_relative(two, one), max_relative(one, init)
    statistics = max_relative(latest_state(double), latest_state(single), ["state.eqlv2.pos_grad",
                                                                           "state.eqlv2.neg_grad"])
    print(f"2 workers vs 1 process: max relative weight difference {difference:.2e} (weights moved {moved:.2e}), "
          f"EQLv2 statistics {statistics:.2e}")
    assert difference <= 1e-5 and moved > 100 * difference and statistics <= 1e-6
    assert lr_line(single) == lr_line(double) == ("0.01", "16")

    # two "nodes" of one worker each on loopback: node 0 through the launcher (msrun starts the scheduler), node 1's
    # worker joins it directly (on one host, node 1's own msrun would try to start a second scheduler on the port)
    nodes = tmp_path / "nodes"
    train = ["train.py", "--data_dir", image_folder, "--batch_size", "8", "--ckpt_save_dir", str(nodes), "--loss",
             "eqlv2"] + EXACT
    env = dict(os.environ, NODES="2", NODE_RANK="0", MASTER_PORT=str(free_port + 1), BIND_CORE="False",
               LOG_DIR=str(tmp_path / "node_logs"))
    node0 = subprocess.Popen(["bash", "scripts/launch_distributed.sh", "1"] + train[1:], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker_env = dict(os.environ, MS_ROLE="MS_WORKER", MS_WORKER_NUM="2", MS_SCHED_HOST="127.0.0.1",
                      MS_SCHED_PORT=str(free_port + 1), MS_NODE_ID="1", RANK_ID="1", DEVICE_ID="0",
                      MS_TOPO_TIMEOUT="120")
    node1 = subprocess.run([sys.executable] + train, cwd=REPO_ROOT, env=worker_env, capture_output=True, text=True,
                           timeout=900)
    launcher_out = node0.communicate(timeout=900)[0]
    assert node0.returncode == 0 and node1.returncode == 0, launcher_out[-2000:] + node1.stderr[-2000:]
    assert "--worker_num 2 --local_worker_num 1 --node_rank 0 --master_addr 127.0.0.1" in launcher_out
    across = max_relative(final_weights(nodes), two)
    print(f"2 nodes x 1 worker vs 1 node x 2 workers: max relative weight difference {across:.2e}")
    assert across == 0.0


@pytest.mark.slow
def test_gradient_accumulation_equals_large_batch(tmp_path, image_folder, single_process_run):
    big, accumulated = single_process_run, tmp_path / "accum"
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "8", "--grad_accum_steps", "2",
             "--ckpt_save_dir", accumulated] + EXACT)
    one, two = final_weights(big), final_weights(accumulated)
    assert max_relative(two, one) <= 1e-5 and max_relative(one, initial_weights()) > 1e-3
    assert lr_line(big) == lr_line(accumulated)


@pytest.mark.slow
def test_ema_dynamic_loss_scale_and_augmentations(tmp_path, image_folder):
    """EMA and the dynamic loss scale in a run with every augmentation on. What each augmentation does is checked
    where it lives (tests/test_augment.py: RandAugment's magnitude, mixup/cutmix equal to timm with the mixed loss by
    hand, random erasing equal to timm, flips and cutout); clipping in test_step_parity.py. Here:
    the scaler starts at 1e38, overflows, halves until finite (skipped updates logged), and the EMA weights of the
    last checkpoint are decay 0.5 of the weights of the two last steps, checked from the step before."""
    out = run_cli(["train.py", "--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
                   "--image_resize", "32", "--batch_size", "8", "--epoch_size", "2", "--lr", "0.05",
                   "--ema", "true", "--ema_decay", "0.5", "--loss_scale_type", "dynamic", "--loss_scale", "1e38",
                   "--clip_grad", "true", "--clip_value", "1", "--mixup", "0.2", "--cutmix", "1.0",
                   "--auto_augment", "randaug-m9-n2", "--re_prob", "0.25", "--ckpt_save_steps", "1",
                   "--keep_checkpoint_max", "20", "--label_smoothing", "0.1", "--ckpt_save_dir", tmp_path,
                   "--log_interval", "1"]).stdout
    skipped = [int(v) for v in re.findall(r"(\d+) of the last \d+ steps had non-finite gradients", out)]
    entries = sorted(json.loads((tmp_path / "checkpoints.json").read_text())["checkpoints"],
                     key=lambda e: e["global_step"])
    last, before = (checkpoint_arrays(tmp_path / e["file"]) for e in (entries[-1], entries[-2]))
    scale = float(last["state.loss_scale"])
    print(f"skipped {skipped}, final loss scale {scale:g}")
    assert sum(skipped) >= 1 and scale < 1e38 and np.isfinite(scale)
    assert "(EMA weights)" in out
    for name in ("head.fc.weight", "stages.3.blocks.0.conv_concat.bn.moving_mean"):  # ema = 0.5 ema + 0.5 weights
        expected = 0.5 * before["ema." + name] + 0.5 * last[name]
        assert np.abs(last["ema." + name] - expected).max() <= 1e-6 * np.abs(expected).max(), name
        assert not np.allclose(last["ema." + name], last[name])


@pytest.mark.slow
def test_plot_without_matplotlib_names_the_extra(tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; sys.argv = ['plot_run.py', '.']; " \
           "exec(open('scripts/plot_run.py').read())"
    done = run_cli(["-c", code], check=False)
    assert done.returncode == 2 and done.stderr.strip() == 'error: plotting needs matplotlib: pip install -e ".[plot]"'


@pytest.mark.slow
def test_launcher_prints_the_full_msrun_command_for_two_nodes(tmp_path):
    """README's 2 nodes x 8 cards lines: the printed command, node 1's (msrun itself replaced by a stand-in that only
    records its arguments: a real second node needs a second host)."""
    stub = tmp_path / "bin" / "msrun"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n')
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stub.parent}:{os.environ['PATH']}", NODES="2", NODE_RANK="1",
               MASTER_ADDR="10.0.0.1")
    done = subprocess.run(["bash", "scripts/launch_distributed.sh", "8", "--config", "configs/vgg/vgg16_ascend.yaml",
                           "--data_dir", "/data/imagenet"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    expected = (f"--worker_num 16 --local_worker_num 8 --node_rank 1 --master_addr 10.0.0.1 --master_port 8118 "
                f"--bind_core True --log_dir ./outputs/msrun_logs --join True python {REPO_ROOT}/train.py "
                f"--config configs/vgg/vgg16_ascend.yaml --data_dir /data/imagenet")
    assert done.returncode == 0 and done.stdout.splitlines()[0] == "msrun " + expected, done.stdout + done.stderr
    assert (tmp_path / "args").read_text().strip() == expected  # what was printed is what ran
    bad = subprocess.run(["bash", "scripts/launch_distributed.sh", "8"], cwd=REPO_ROOT, capture_output=True,
                         text=True, env=dict(env, NODE_RANK="2"))
    assert error_line(bad) == "error: NODES must be >= 1 and NODE_RANK in [0, NODES), got NODES=2 NODE_RANK=2"


FIXED_DATA = tiny_run(scale=(1, 1), ratio=(1, 1), hflip=0, batch_size=32, lr=0.05)
STEADY = FIXED_DATA + ["--ema", "--ema_decay", "0.5", "--keep_checkpoint_max", "10"]


def eval_loss(weights, paths, labels):
    """Mean cross-entropy of ese_vovnet19b_slim_dw with `weights` on the images, preprocessed by hand."""
    net = msvision.create_model("ese_vovnet19b_slim_dw", num_classes=4)
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()}, strict_load=True)
    net.set_train(False)
    logits = net(ms.Tensor(eval_inputs(paths, 32))).asnumpy().astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(labels)), labels]))


@pytest.mark.slow
def test_save_and_val_intervals_resume_path_and_validate_ema(tmp_path, image_folder):
    """ckpt_save_interval 2 and val_interval 2 over 4 epochs: checkpoints and validation rows at epochs 2 and 4 only;
    --resume PATH from the epoch-2 file (not the newest) ends equal to the run's own epoch 4; validate.py
    --ema_weights reports the loss of the checkpoint's ema.* weights, computed here by hand, and without it the
    model's; the old spelling --ema still does, with a one-line deprecation note."""
    run = tmp_path / "run"
    run_cli(["train.py", "--data_dir", image_folder, "--epoch_size", "4", "--ckpt_save_interval", "2",
             "--val_interval", "2", "--ckpt_save_dir", run] + STEADY)
    entries = json.loads((run / "checkpoints.json").read_text())["checkpoints"]
    assert sorted(e["epoch"] for e in entries) == [2, 4], entries
    rows = read_summary(str(run / "summary.csv"))
    assert [r["val_top1"] != "" for r in rows] == [False, True, False, True], rows
    second = [str(run / e["file"]) for e in entries if e["epoch"] == 2][0]
    resumed = tmp_path / "resumed"
    out = run_cli(["train.py", "--data_dir", image_folder, "--epoch_size", "4", "--resume", second,
                   "--val_interval", "2", "--ckpt_save_dir", resumed] + STEADY).stdout
    assert f"resumed from {second}" in out
    final, again = latest_state(run), latest_state(resumed)
    assert max_relative(again, final, [k for k in final if not k.startswith("state.")]) == 0.0

    paths, labels = split_files(image_folder, "val")
    ema = {k[len("ema."):]: v for k, v in final.items() if k.startswith("ema.")}
    model = {k: final[k] for k in ema}
    reports = {}
    for flag in ([], ["--ema_weights"], ["--ema"]):
        name = tmp_path / f"report{flag}.json"
        done = run_cli(["validate.py", "--ckpt_path", latest_checkpoint(run), "--crop_pct", "1", "--interpolation",
                        "bilinear", "--output", name] + flag)
        reports[tuple(flag)] = json.loads(name.read_text())["loss"]
        assert ("validate.py --ema is deprecated: it is --ema_weights" in done.stdout + done.stderr) == \
            (flag == ["--ema"])
    assert reports[("--ema",)] == reports[("--ema_weights",)]
    reports = {False: reports[()], True: reports[("--ema_weights",)]}
    by_hand = {False: eval_loss(model, paths, labels), True: eval_loss(ema, paths, labels)}
    print(f"validate.py loss {reports}, by hand {by_hand}")
    assert abs(by_hand[True] - by_hand[False]) > 1e-4  # the EMA weights are another model (5e-4 measured)
    assert all(abs(reports[k] - by_hand[k]) <= 1e-6 * by_hand[k] for k in (False, True))


@pytest.mark.slow
def test_amp_levels_train_on_cpu(tmp_path, image_folder):
    """amp_level O1, O2 and O3 run on CPU (float16 kernels, slow there): from the same start, the first step's loss
    is the float32 run's to float16 precision (O2 measured 6.6e-4 relative), the weights end finite and not equal to
    the float32 run's (the level is in force; after two steps they differ by percents: BatchNorm at batch 32 and
    the ReLU kinks amplify float16's rounding, as float32's in the parity tests)."""
    common = ["train.py", "--data_dir", image_folder, "--epoch_size", "1", "--val_while_train", "false",
              "--loss_scale", "1024", "--log_interval", "1"] + FIXED_DATA

    def first_loss(out):
        return float(re.search(r"step 1/2 loss ([\d.]+)", out).group(1))

    exact_loss = first_loss(run_cli(common + ["--ckpt_save_dir", tmp_path / "O0"]).stdout)
    exact = {k: v for k, v in latest_state(tmp_path / "O0").items() if not k.startswith(("state.", "optim."))}
    for level in ("O1", "O2", "O3"):
        out = run_cli(common + ["--amp_level", level, "--ckpt_save_dir", tmp_path / level]).stdout
        assert f"amp_level {level} runs float16 kernels" in out
        state = latest_state(tmp_path / level)
        loss_error = abs(first_loss(out) - exact_loss) / exact_loss
        print(f"{level}: first loss {loss_error:.1e} from float32's; weights differ: "
              f"{max_relative(state, exact, list(exact)):.1e}")
        assert loss_error <= 5e-3 and all(np.isfinite(state[k]).all() for k in exact)
        assert max_relative(state, exact, list(exact)) > 1e-6
