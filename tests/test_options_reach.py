"""Every option of the Option table reaches what it controls (generated from the table: a new option without a
path here fails the suite).

An option either reaches a library call through config/kwargs.py (a non-default value set on the command line
changes that call's keyword arguments, checked here for every such option; the calls' own tests check the effect),
or the Trainer holds it on the object it builds (checked here on a built Trainer), or it acts only during a run:
then RUN_EFFECT names the test that checks its effect in a run, and that test sets the option.
"""
import ast
import json
import os

import pytest

from msvision.config import kwargs as adapters
from msvision.config.options import OPTIONS
from msvision.config.parse import parse_config
from tests.conftest import REPO_ROOT

# non-default values where "the other choice / flipped bool / default changed" does not give a valid one
VALUES = {
    "model_args": {"num_blocks": [1, 1, 1, 1]}, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2],
    "opt_betas": [0.8, 0.99], "bce_target_thresh": 0.5, "image_resize": 64, "crop_pct": 0.9,
    "interpolation": "bicubic", "color_jitter": 0.4, "auto_augment": "autoaug", "pretrained": "true",
    "ckpt_path": "x.ckpt", "data_dir": "/data", "drop_rate": 0.3, "opt_eps": 1e-7, "milestones": [10, 20],
    "scale": [0.2, 1.0], "ratio": [0.5, 2.0], "re_scale": [0.1, 0.3], "re_ratio": [0.5, 2.0], "htd_lower": -5.0,
    "htd_upper": 2.0, "model": "vgg11", "train_split": "tr", "val_split": "va", "freeze": "2",
    "warmup_factor": 0.5, "min_lr": 1e-5, "loss_scale": 8.0, "resume": "auto", "ckpt_save_dir": "elsewhere",
    "sink_size": 2,
}
# options that only act with another one on
CONTEXT = {"mixup_prob": ["--mixup", "0.2", "--cutmix", "1.0"], "mixup_switch_prob": ["--mixup", "0.2", "--cutmix",
                                                                                          "1.0"]}
ADAPTERS = {
    "model_kwargs": adapters.model_kwargs, "model_check_kwargs": adapters.model_check_kwargs,
    "optimizer_kwargs": adapters.optimizer_kwargs, "lr_scaling_kwargs": lambda c: adapters.lr_scaling_kwargs(c, 1),
    "schedule_kwargs": adapters.schedule_kwargs, "step_kwargs": adapters.step_kwargs,
    "device_kwargs": adapters.device_kwargs, "split_kwargs": adapters.split_kwargs,
    "preprocessing_kwargs": adapters.preprocessing_kwargs, "augment_kwargs": adapters.augment_kwargs,
    "mixing_kwargs": adapters.mixing_kwargs, "train_loader_kwargs": adapters.train_loader_kwargs,
    "eval_loader_kwargs": adapters.eval_loader_kwargs, "augment_check_kwargs": adapters.augment_check_kwargs,
    "loss_kwargs": adapters.loss_kwargs,
}
# held by the Trainer's objects: test_the_trainer_holds_its_run_options checks each
ON_THE_TRAINER = ("ckpt_save_dir", "keep_checkpoint_max", "ckpt_save_policy", "max_nonfinite_steps", "sink_size",
                  "dataset_sink_mode", "resume", "val_while_train")
# acting during a run only: the test that checks the effect
RUN_EFFECT = {
    "ckpt_save_interval": "test_train.py::test_save_and_val_intervals_resume_path_and_validate_ema",
    "val_interval": "test_train.py::test_save_and_val_intervals_resume_path_and_validate_ema",
    "ckpt_save_steps": "test_sink.py::test_sink_size_changes_structure_not_results",
    "log_interval": "test_sink.py::test_logged_loss_is_the_interval_mean_and_sink_options_are_checked",
}


def other_value(opt):
    """A valid value other than the option's default."""
    if opt.name in VALUES:
        return VALUES[opt.name]
    if opt.kind is bool:
        return not opt.default
    if opt.choices:
        return next(choice for choice in opt.choices if choice != opt.default)
    if opt.kind is int:
        return opt.default + 1
    return opt.default / 2 if opt.default else 0.5


def command_line(name, value):
    if isinstance(value, dict):
        return [f"--{name}", json.dumps(value)]
    values = value if isinstance(value, list) else [value]
    return [f"--{name}"] + [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_reaches_what_it_controls(name):
    context = CONTEXT.get(name, [])
    base = parse_config(context)
    changed = parse_config(context + command_line(name, other_value(OPTIONS[name])))
    assert getattr(changed, name) != getattr(base, name), f"{name}: the command line did not change it"
    reached = [call for call, adapter in ADAPTERS.items() if adapter(changed) != adapter(base)]
    if name in ON_THE_TRAINER:
        assert not reached, f"{name} reaches {reached}: move it out of ON_THE_TRAINER"
        return
    if name in RUN_EFFECT:
        assert not reached, f"{name} reaches {reached}: move it out of RUN_EFFECT"
        file, test = RUN_EFFECT[name].split("::")
        with open(os.path.join(REPO_ROOT, "tests", file), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        (function,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == test]
        assert f"--{name}" in ast.unparse(function), f"{RUN_EFFECT[name]} does not set --{name}"
        return
    assert reached, (f"option {name} reaches no library call (config/kwargs.py) and is in neither ON_THE_TRAINER nor "
                     f"RUN_EFFECT: wire it, and say here where its effect is checked")


def test_the_trainer_holds_its_run_options(tmp_path, monkeypatch, image_folder):
    """The options the Trainer uses itself land on what it builds: the checkpoint manager's folder, retention and
    policy, the non-finite guard, the host iteration size and sink decision, the resume source, the validation
    split (or none)."""
    from msvision import device
    from msvision.train.loop import Trainer
    from tests.conftest import tiny_run

    monkeypatch.setattr(device, "setup_device", lambda **kwargs: ("CPU", "O0", "the test process's device"))
    run = tmp_path / "run"
    built = Trainer(parse_config(tiny_run(data_dir=image_folder, ckpt_save_dir=run, keep_checkpoint_max=3,
                                          ckpt_save_policy="top_k", max_nonfinite_steps=4, sink_size=2,
                                          dataset_sink_mode="false", val_while_train=False)))
    assert (built.ckpts.save_dir, built.ckpts.keep, built.ckpts.policy) == (str(run), 3, "top_k")
    assert built.progress.max_nonfinite_steps == 4 and built.sink_size == 2 and not built.sink
    assert not hasattr(built, "val_split") and built.resume_from is None
    defaults = Trainer(parse_config(tiny_run(data_dir=image_folder, ckpt_save_dir=tmp_path / "other",
                                             log_interval=3, resume="auto")))
    assert defaults.sink_size == 3 and defaults.ckpts.keep == 5 and defaults.ckpts.policy == "latest_k"
    assert defaults.val_split.num_items == 20 and defaults.resume_from is None  # auto in an empty folder: a new run
    resumed = Trainer(parse_config(tiny_run(data_dir=image_folder, ckpt_save_dir=tmp_path / "third",
                                            resume=str(tmp_path / "x.ckpt"))))
    assert resumed.resume_from == str(tmp_path / "x.ckpt")
