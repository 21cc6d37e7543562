"""Training end to end: the demo learns, msrun data parallel equals one process, accumulation, EMA, loss scale."""
import os
import re
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.checkpoint import CONFIG_KEY, CheckpointManager, read_checkpoint
from msvision.config import config_from_text
from msvision.train.records import read_summary
from tests.conftest import REPO_ROOT, run_cli

pytestmark = pytest.mark.slow

# vgg11 has no BatchNorm, so one process at batch 16 and two at batch 8 compute the same gradient.
EXACT = ["--model", "vgg11", "--num_classes", "4", "--image_resize", "32", "--scale", "1", "1", "--ratio", "1",
         "1", "--hflip", "0", "--crop_pct", "1", "--drop_rate", "0", "--epoch_size", "1", "--lr", "0.01",
         "--lr_base_batch_size", "16", "--val_while_train", "false", "--num_parallel_workers", "1",
         "--log_interval", "1", "--weight_decay", "0", "--scheduler", "constant", "--keep_checkpoint_max", "1"]


def final_weights(save_dir):
    ckpt = read_checkpoint(CheckpointManager(str(save_dir), "vgg11", 1, "latest_k").latest())
    return {k: v.asnumpy() for k, v in ckpt.items() if not k.startswith(("state.", "optim."))}


def initial_vgg11():
    ms.set_seed(42)
    return {p.name: p.asnumpy() for p in msvision.create_model("vgg11", num_classes=4, drop_rate=0.0).get_parameters()}


def max_relative(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)


def lr_line(save_dir):
    with open(os.path.join(save_dir, "train.log"), encoding="utf-8") as handle:
        return re.search(r"effective lr (\S+) at global batch (\d+)", handle.read()).groups()


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


def test_msrun_two_workers_equal_one_process(tmp_path, image_folder, free_port):
    single, double = tmp_path / "single", tmp_path / "double"
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "16", "--ckpt_save_dir", single] + EXACT)
    cmd = ["msrun", "--worker_num", "2", "--local_worker_num", "2", "--master_port", str(free_port), "--log_dir",
           str(tmp_path / "logs"), "--join", "True", "python", "train.py", "--data_dir", image_folder,
           "--batch_size", "8", "--ckpt_save_dir", str(double)] + EXACT
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one, two, init = final_weights(single), final_weights(double), initial_vgg11()
    difference, moved = max_relative(two, one), max_relative(one, init)
    print(f"2 workers vs 1 process: max relative weight difference {difference:.2e} (weights moved {moved:.2e})")
    assert difference <= 1e-5 and moved > 100 * difference
    assert lr_line(single) == lr_line(double) == ("0.01", "16")

    # two "nodes" of one worker each on loopback: node 0 through the launcher (msrun starts the scheduler), node 1's
    # worker joins it directly (on one host, node 1's own msrun would try to start a second scheduler on the port)
    nodes = tmp_path / "nodes"
    train = ["train.py", "--data_dir", image_folder, "--batch_size", "8", "--ckpt_save_dir", str(nodes)] + EXACT
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


def test_gradient_accumulation_equals_large_batch(tmp_path, image_folder):
    big, accumulated = tmp_path / "big", tmp_path / "accum"
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "16", "--ckpt_save_dir", big] + EXACT)
    run_cli(["train.py", "--data_dir", image_folder, "--batch_size", "8", "--grad_accum_steps", "2",
             "--ckpt_save_dir", accumulated] + EXACT)
    one, two = final_weights(big), final_weights(accumulated)
    assert max_relative(two, one) <= 1e-5 and max_relative(one, initial_vgg11()) > 1e-3
    assert lr_line(big) == lr_line(accumulated)


def test_ema_dynamic_loss_scale_and_augmentations(tmp_path, image_folder):
    out = run_cli(["train.py", "--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
                   "--image_resize", "32", "--batch_size", "8", "--epoch_size", "2", "--lr", "0.05",
                   "--ema", "true", "--ema_decay", "0.5", "--loss_scale_type", "dynamic", "--loss_scale", "1e38",
                   "--clip_grad", "true", "--clip_value", "1", "--mixup", "0.2", "--cutmix", "1.0",
                   "--auto_augment", "randaug-m9-n2", "--re_prob", "0.25",
                   "--label_smoothing", "0.1", "--ckpt_save_dir", tmp_path, "--log_interval", "1"]).stdout
    assert re.search(r"\d+ of the last \d+ steps had non-finite gradients, updates skipped", out)
    assert "(EMA weights)" in out
    ckpt = read_checkpoint(CheckpointManager(str(tmp_path), "x", 1, "latest_k").latest())
    assert float(ckpt["state.loss_scale"].asnumpy()) < 1e38  # the dynamic scaler backed off
    ema, weights = ckpt["ema.head.fc.weight"].asnumpy(), ckpt["head.fc.weight"].asnumpy()
    assert ema.shape == weights.shape and not np.allclose(ema, weights)
    assert "optim.moments.head.fc.weight" in ckpt


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; sys.argv = ['plot_run.py', '.']; " \
           "exec(open('scripts/plot_run.py').read())"
    done = run_cli(["-c", code], check=False)
    assert done.returncode == 2 and done.stderr.strip() == 'error: plotting needs matplotlib: pip install -e ".[plot]"'
