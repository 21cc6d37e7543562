"""Config: YAML keys are the options, CLI overrides YAML, every mistake is a one-line error naming the key."""
import glob
import os
import re
import subprocess
import sys

import pytest

import msvision

from msvision import MsvisionError
from msvision.config.parse import OPTIONS, config_from_text, dump_config, load_yaml, parse_config
from tests.conftest import REPO_ROOT, error_line

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True))


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_issue_option_list_is_complete():
    required = """mode device_target jit_level seed data_dir dataset train_split val_split num_parallel_workers
    batch_size drop_remainder image_resize scale ratio hflip color_jitter auto_augment re_prob mixup cutmix
    interpolation crop_pct mean std model num_classes drop_rate ckpt_path epoch_size opt nesterov momentum
    weight_decay weight_decay_filter lr lr_base_batch_size lr_scale_rule min_lr scheduler warmup_epochs
    warmup_factor decay_epochs milestones label_smoothing amp_level loss_scale_type loss_scale ema ema_decay
    clip_grad clip_value grad_accum_steps ckpt_save_dir ckpt_save_interval keep_checkpoint_max ckpt_save_policy
    val_while_train val_interval log_interval resume ckpt_save_steps""".split()
    assert set(required) <= set(OPTIONS)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_shipped_configs_load(path):
    data = load_yaml(path)
    assert set(data) <= set(OPTIONS) and "model" in data
    args = parse_config(["-c", path])
    assert args.model == data["model"]


def test_cli_overrides_yaml_which_overrides_defaults(tmp_path):
    path = write(tmp_path, "lr: 0.5\nbatch_size: 7\nmean: [0.1, 0.2, 0.3]\nema: true\n")
    args = parse_config(["-c", path, "--batch_size", "9", "--scale", "0.5", "1"])
    assert (args.lr, args.batch_size, args.mean, args.ema, args.scale) == (0.5, 9, [0.1, 0.2, 0.3], True, [0.5, 1.0])
    assert args.epoch_size == OPTIONS["epoch_size"].default


@pytest.mark.parametrize("text,message", [
    ("learning_rate: 0.1\n", "unknown key 'learning_rate'"),
    ("lr: fast\n", "'lr' must be a number, got 'fast'"),
    ("batch_size: 3.5\n", "'batch_size' must be an integer, got 3.5"),
    ("ema: 1\n", "'ema' must be true or false, got 1"),
    ("opt: sophia\n", "'opt' must be one of sgd, momentum, adamw, adam, rmsprop, lamb, lars, got 'sophia'"),
    ("hflip: 1.5\n", "'hflip' must be in [0.0, 1.0], got 1.5"),
    ("scale: 0.5\n", "'scale' must be a list of numbers, got 0.5"),
    ("model: null\n", "'model' must be a string, got null"),
    ("- a\n- b\n", "must be a mapping"),
    ("sampler: random\n", "'sampler' must be one of uniform, class_balanced, sqrt, got 'random'"),
    ("class_weight: balanced\n", "'class_weight' must be one of none, inverse, sqrt_inverse, effective_number"),
    ("class_weight_beta: 1.0\n", "'class_weight_beta' must be in (0.0, 1.0), got 1.0"),
    ("class_weight_beta: 0\n", "'class_weight_beta' must be in (0.0, 1.0), got 0"),
    ("logit_adjust_tau: -0.5\n", "'logit_adjust_tau' must be >= 0.0, got -0.5"),
    ("head_lr_scale: 0\n", "'head_lr_scale' must be > 0.0, got 0"),
    ("pretrained: imagenet\n", "'pretrained' must be one of true, torchvision, timm, mindcv, 1e100, got 'imagenet'"),
    ("act_layer: gelu\n", "'act_layer' must be one of relu, mish, silu, got 'gelu'"),
    ("opt_betas: [0.9, 1.0]\n", "'opt_betas' must be in [0.0, 1.0), got 1.0"),
    ("opt_eps: 0\n", "'opt_eps' must be > 0.0, got 0"),
    ("rmsprop_alpha: 1\n", "'rmsprop_alpha' must be in [0.0, 1.0), got 1"),
    ("lars_coefficient: 0\n", "'lars_coefficient' must be > 0.0, got 0"),
    ("lars_eps: -0.1\n", "'lars_eps' must be >= 0.0, got -0.1"),
    ("num_cycles: 0\n", "'num_cycles' must be >= 1, got 0"),
    ("cycle_decay: 0\n", "'cycle_decay' must be in (0.0, 1.0], got 0"),
    ("cycle_warmup_fraction: 1.0\n", "'cycle_warmup_fraction' must be in [0.0, 1.0), got 1.0"),
    ("htd_lower: low\n", "'htd_lower' must be a number, got 'low'"),
    ("lr_power: 0\n", "'lr_power' must be > 0.0, got 0"),
    ("decay_epochs: 0\n", "'decay_epochs' must be >= 1, got 0"),
    ("decay_rate: 1.5\n", "'decay_rate' must be in [0.0, 1.0], got 1.5"),
    ("opt_betas: [0.9]\n", "'opt_betas' must be 2 values, got 1: [0.9]"),
    ("mean: [0.5, 0.5]\n", "'mean' must be 3 values, got 2: [0.5, 0.5]"),
    ("std: [0.5, 0.5, 0]\n", "'std' must be > 0.0, got 0"),
    ("scheduler: htd\nhtd_lower: 3\n", "htd_lower (3) must be below htd_upper (3): with L >= U the htd rate rises"),
    ("htd_lower: 4\nhtd_upper: -2\n", "htd_lower (4) must be below htd_upper (-2)"),
    ("loss: focal\n", "'loss' must be one of ce, bce, eqlv2, got 'focal'"),
    ("bce_target_thresh: 1.0\n", "'bce_target_thresh' must be in (0.0, 1.0), got 1.0"),
    ("eqlv2_gamma: 0\n", "'eqlv2_gamma' must be > 0.0, got 0"),
    ("eqlv2_mu: -0.1\n", "'eqlv2_mu' must be >= 0.0, got -0.1"),
    ("eqlv2_alpha: -1\n", "'eqlv2_alpha' must be >= 0.0, got -1"),
    ("model_args: [2, 2]\n", "'model_args' must be a mapping (on the command line: a JSON object), got [2, 2]"),
    ("model_args:\n  num_classes: 3\n", "model_args key 'num_classes' is an option of its own: set num_classes "
                                        "directly, not inside model_args"),
])
def test_yaml_mistakes_are_named(tmp_path, text, message):
    with pytest.raises(MsvisionError) as err:
        parse_config(["-c", write(tmp_path, text)])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_mistakes_are_named():
    with pytest.raises(MsvisionError, match="argument --lr: invalid float value: 'x'"):
        parse_config(["--lr", "x"])
    with pytest.raises(MsvisionError, match="unrecognized arguments: --bogus"):
        parse_config(["--bogus", "1"])
    with pytest.raises(MsvisionError, match="'warmup_epochs' must be >= 0.0, got -1.0"):
        parse_config(["--warmup_epochs", "-1"])
    with pytest.raises(MsvisionError, match="config file not found"):
        parse_config(["-c", "/nonexistent.yaml"])
    with pytest.raises(MsvisionError, match="argument --opt_betas: expected at least one argument"):
        parse_config(["--opt", "lamb", "--opt_betas"])
    with pytest.raises(MsvisionError, match=r"^option 'opt_betas' must be 2 values, got 1: \[0.9\]$"):
        parse_config(["--opt", "lamb", "--opt_betas", "0.9"])
    with pytest.raises(MsvisionError, match=r"^htd_lower \(3\) must be below htd_upper \(3\)"):
        parse_config(["--scheduler", "htd", "--htd_lower", "3"])
    demo = os.path.join(REPO_ROOT, "configs", "demo")
    with pytest.raises(MsvisionError, match=f"^config '{demo}' is a folder; expected a YAML file \\(it holds "
                                            f"ese_vovnet19b_slim_dw_digits.yaml"):
        parse_config(["-c", demo])


def test_pretrained_is_true_false_or_a_source(tmp_path):
    assert parse_config(["--pretrained"]).pretrained == "true"
    assert parse_config(["--pretrained", "timm"]).pretrained == "timm"
    assert parse_config(["--pretrained", "false"]).pretrained is None
    assert parse_config(["-c", write(tmp_path, "pretrained: true\n")]).pretrained == "true"
    assert parse_config(["-c", write(tmp_path, "pretrained: false\n")]).pretrained is None
    assert parse_config([]).pretrained is None


def test_dumped_config_round_trips():
    args = parse_config(["--model", "vovnet19", "--lr", "0.3", "--milestones", "2", "4"])
    again = config_from_text(dump_config(args))
    assert vars(again) == {k: v for k, v in vars(args).items() if k in OPTIONS}


def test_jit_level_auto_follows_the_device():
    from msvision.device import resolve_jit_level

    assert resolve_jit_level("auto", "Ascend")[0] == "O2"
    assert resolve_jit_level("auto", "GPU")[0] == "O0" and resolve_jit_level("auto", "CPU")[0] == "O0"
    assert resolve_jit_level("O1", "Ascend") == ("O1", "set by jit_level")  # an explicit value wins
    assert parse_config([]).jit_level == "auto"
    for path in glob.glob(os.path.join(REPO_ROOT, "configs", "*", "*_ascend.yaml")):
        assert parse_config(["--config", path]).jit_level == "auto", path


def _readme_row(start):
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        rows = [line for line in handle if line.startswith(start)]
    assert len(rows) == 1, start
    return rows[0]


def test_readme_recipe_table_matches_the_files():
    """The README's recipe table states each shipped recipe's figures: read them there, compare with the YAML."""
    row = _readme_row("| `configs/vgg/vgg{11,13,16,19}{,_bn}_ascend.yaml` |")
    found = re.search(r"MindCV: (\d+) x (\d+), lr ([\d.e-]+) at (\d+), (\d+) warmup epochs, cosine to ([\d.e-]+), "
                      r"(\d+) epochs, momentum ([\d.]+), wd ([\d.e-]+), smoothing ([\d.]+), amp (O\d), loss scale (\d+)",
                      row)
    devices, batch, lr, base, warmup, min_lr, epochs, momentum, wd, smoothing, amp, scale = found.groups()
    assert int(devices) * int(batch) == int(base)
    for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
        a = parse_config(["-c", os.path.join(REPO_ROOT, "configs", "vgg", f"{name}_ascend.yaml")])
        assert (a.model, a.batch_size, a.lr, a.lr_base_batch_size, a.warmup_epochs, a.min_lr, a.epoch_size,
                a.momentum, a.weight_decay, a.label_smoothing, a.amp_level, a.loss_scale, a.scheduler) == \
            (name, int(batch), float(lr), int(base), float(warmup), float(min_lr), int(epochs), float(momentum),
             float(wd), float(smoothing), amp, float(scale), "warmup_cosine_decay"), name
    row = _readme_row("| `configs/repvgg/repvgg_{a0,a1,a2,b0,b1,b1g2,b1g4,b2,b2g4,b3,b3g4}.yaml` |")
    epochs, devices, batch, lr, base, warmup, momentum, wd = re.search(
        r"official RepVGG: (\d+) epochs, (\d+) x (\d+), lr ([\d.]+) at (\d+), (\d+) warmup epochs, cosine to 0, "
        r"momentum ([\d.]+), wd ([\d.e-]+) \(not on biases and BatchNorm\), no smoothing", row).groups()
    variants = re.search(r"repvgg_\{([\w,]+)\}", row).group(1).split(",")
    assert sorted(f"repvgg_{v}" for v in variants) == [m for m in msvision.list_models("repvgg*") if m != "repvgg_d2se"]
    for variant in variants:
        a = parse_config(["-c", os.path.join(REPO_ROOT, "configs", "repvgg", f"repvgg_{variant}.yaml")])
        assert (a.model, a.epoch_size, a.batch_size * int(devices), a.lr, a.lr_base_batch_size, a.warmup_epochs,
                a.min_lr, a.momentum, a.weight_decay, a.weight_decay_filter, a.label_smoothing, a.scheduler) == \
            (f"repvgg_{variant}", int(epochs), int(base), float(lr), int(base), float(warmup), 0.0, float(momentum),
             float(wd), "norm_and_bias", 0.0, "warmup_cosine_decay"), variant
        assert a.batch_size == int(batch)
    row = _readme_row("| `configs/vovnet/vovnet{19,27_slim,39,57,99}_ascend.yaml` |")
    assert "SGD nesterov, wd 2e-5, smoothing 0.1, one cosine cycle to 1e-7 whose first 10% rises" in row
    assert "EMA, dropout 0.2" in row
    triples = re.search(r"epochs/global batch/peak lr ((?:\d+/\d+/[\d.]+(?:, )?)+)", row).group(1).split(", ")
    for name, triple in zip(("vovnet19", "vovnet27_slim", "vovnet39", "vovnet57", "vovnet99"), triples, strict=True):
        epochs, global_batch, peak = triple.split("/")
        a = parse_config(["-c", os.path.join(REPO_ROOT, "configs", "vovnet", f"{name}_ascend.yaml")])
        assert (a.model, a.epoch_size, a.lr_base_batch_size, a.lr, a.opt, a.nesterov, a.weight_decay,
                a.label_smoothing, a.min_lr, a.num_cycles, a.cycle_warmup_fraction, a.ema, a.drop_rate) == \
            (name, int(epochs), int(global_batch), float(peak), "sgd", True, 2e-5, 0.1, 1e-7, 1, 0.1, True, 0.2), name


@pytest.mark.slow
def test_numpy_2_is_named_at_import(tmp_path):
    """Under NumPy 2 MindSpore 2.10's image decoding fails on every file: msvision says so when it is imported, in
    one line, exit 2 from a command-line entry point (here NumPy 2 is a stand-in package carrying only its version,
    found before the installed NumPy)."""
    from msvision.environment import check_numpy

    check_numpy("1.26.4")
    with pytest.raises(MsvisionError, match=r"^NumPy 2.2.6 is installed, but MindSpore 2.10 needs NumPy < 2"):
        check_numpy("2.2.6")
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text('__version__ = "2.2.6"\n')
    done = subprocess.run([sys.executable, "train.py", "--dataset", "demo"], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert error_line(done) == ("error: NumPy 2.2.6 is installed, but MindSpore 2.10 needs NumPy < 2 (under NumPy 2 "
                                "its image decoding fails): pip install 'numpy>=1.25,<2'")
