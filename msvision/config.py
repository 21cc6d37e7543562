"""Configuration: one argparse spec; a flat YAML whose keys are the option names sets defaults; --key value overrides.

Every problem (unknown key, wrong type, out-of-range value) is a MsvisionError naming the key and what is expected.
"""
import argparse
import dataclasses
import os
from typing import Any, Optional, Sequence

import yaml

from msvision.errors import MsvisionError


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    kind: type  # int, float, str, bool; list options give the element type and set is_list
    default: Any
    help: str
    choices: Optional[Sequence] = None
    low: Optional[float] = None  # inclusive bounds for numbers (and list elements)
    high: Optional[float] = None
    is_list: bool = False
    nullable: bool = False


def _opts(*rows):
    return {row.name: row for row in rows}


O = Option
OPTIONS = _opts(
    # system
    O("mode", int, 0, "0 = GRAPH_MODE, 1 = PYNATIVE_MODE", choices=(0, 1)),
    O("device_target", str, "auto", "device to run on", choices=("auto", "CPU", "GPU", "Ascend")),
    O("jit_level", str, "auto", "graph compile level (O0 kernel by kernel, O1 fusion, O2 whole graph sink); auto: "
      "O2 on Ascend, O0 on GPU and CPU", choices=("auto", "O0", "O1", "O2")),
    O("seed", int, 42, "seed of weights init, data order and augmentation", low=0),
    # data
    O("data_dir", str, None, "ImageNet-style root holding <train_split>/ and <val_split>/ class folders",
      nullable=True),
    O("dataset", str, "imagefolder", "imagefolder, or demo for the built-in digits set",
      choices=("imagefolder", "demo")),
    O("train_split", str, "train", "sub-folder of data_dir with training images"),
    O("val_split", str, "val", "sub-folder of data_dir with validation images"),
    O("num_parallel_workers", int, 2, "data loading workers per process", low=1),
    O("batch_size", int, 32, "images per device per step", low=1),
    O("drop_remainder", bool, True, "drop the last incomplete training batch"),
    O("image_resize", int, None, "training/eval crop size; default: the model's pretrained input size",
      low=8, nullable=True),
    O("scale", float, [0.08, 1.0], "random-resized-crop area range", low=0.0, high=1.0, is_list=True),
    O("ratio", float, [0.75, 1.333], "random-resized-crop aspect range", low=0.0, is_list=True),
    O("hflip", float, 0.5, "horizontal flip probability", low=0.0, high=1.0),
    O("color_jitter", float, None, "brightness/contrast/saturation jitter strength", low=0.0, nullable=True),
    O("auto_augment", str, None, "RandAugment as 'randaug-m9-n2' (magnitude, ops)", nullable=True),
    O("re_prob", float, 0.0, "random erasing probability", low=0.0, high=1.0),
    O("mixup", float, 0.0, "mixup alpha (0 = off)", low=0.0),
    O("cutmix", float, 0.0, "cutmix alpha (0 = off)", low=0.0),
    O("interpolation", str, None, "resize interpolation; default: the model's", nullable=True,
      choices=("bilinear", "bicubic", "nearest", "area")),
    O("crop_pct", float, None, "eval centre-crop fraction; default: the model's", low=0.05, high=1.0,
      nullable=True),
    O("mean", float, None, "normalisation mean (0..1 scale); default: the model's", is_list=True, nullable=True),
    O("std", float, None, "normalisation std (0..1 scale); default: the model's", is_list=True, nullable=True),
    # model
    O("model", str, "vgg16", "registered model name"),
    O("num_classes", int, 1000, "number of classes", low=1),
    O("drop_rate", float, None, "classifier dropout; default: the model's", low=0.0, high=1.0, nullable=True),
    O("ckpt_path", str, None, "initial weights (.ckpt)", nullable=True),
    O("reset_head", bool, False, "with ckpt_path: re-initialise a classifier whose num_classes differs"),
    # schedule and optimizer
    O("epoch_size", int, 90, "number of epochs", low=1),
    O("opt", str, "momentum", "optimizer", choices=("sgd", "momentum", "adamw")),
    O("nesterov", bool, False, "Nesterov momentum"),
    O("momentum", float, 0.9, "momentum (beta1 for adamw)", low=0.0, high=1.0),
    O("weight_decay", float, 1e-4, "weight decay", low=0.0),
    O("weight_decay_filter", str, "norm_and_bias", "parameters exempt from weight decay",
      choices=("disable", "norm_and_bias")),
    O("lr", float, 0.1, "peak learning rate at lr_base_batch_size (global)", low=0.0),
    O("lr_base_batch_size", int, 256, "global batch size that lr refers to", low=1),
    O("lr_scale_rule", str, "linear", "how lr follows the global batch", choices=("linear", "sqrt", "none")),
    O("min_lr", float, 1e-6, "final learning rate of the decay (after scaling)", low=0.0),
    O("scheduler", str, "warmup_cosine_decay", "LR schedule",
      choices=("warmup_cosine_decay", "step", "multistep", "constant")),
    O("warmup_epochs", float, 0.0, "linear warmup length in epochs", low=0.0),
    O("warmup_factor", float, 0.0, "warmup starts at lr * warmup_factor", low=0.0, high=1.0),
    O("decay_epochs", int, 30, "step scheduler: epochs between decays", low=1),
    O("decay_rate", float, 0.1, "step/multistep scheduler: multiplier per decay", low=0.0, high=1.0),
    O("milestones", int, [30, 60, 90], "multistep scheduler: epochs at which to decay", low=0, is_list=True),
    O("label_smoothing", float, 0.0, "label smoothing", low=0.0, high=1.0),
    # precision and step
    O("amp_level", str, "O0", "mindspore.amp level", choices=("O0", "O1", "O2", "O3")),
    O("loss_scale_type", str, "fixed", "loss scaling", choices=("fixed", "dynamic")),
    O("loss_scale", float, 1.0, "fixed loss scale, or initial dynamic scale", low=1.0),
    O("ema", bool, False, "keep an exponential moving average of the weights"),
    O("ema_decay", float, 0.9999, "EMA decay per optimizer step", low=0.0, high=1.0),
    O("clip_grad", bool, False, "clip gradients by global norm"),
    O("clip_value", float, 15.0, "global-norm clip threshold", low=0.0),
    O("grad_accum_steps", int, 1, "micro-batches per optimizer step", low=1),
    O("dataset_sink_mode", str, "auto", "run sink_size steps per host call on the device: auto = on Ascend/GPU "
      "(not available on CPU, where the loop keeps the same structure)", choices=("auto", "true", "false")),
    O("sink_size", int, -1, "batches per host iteration, a multiple of grad_accum_steps; logs and checkpoints "
      "land on its boundaries (-1 = log_interval)", low=-1),
    # checkpoints and logging
    O("ckpt_save_dir", str, "./outputs", "where checkpoints, config.yaml and logs go"),
    O("ckpt_save_interval", int, 1, "save every N epochs", low=1),
    O("ckpt_save_steps", int, 0, "also save every N optimizer steps mid-epoch (0 = off)", low=0),
    O("keep_checkpoint_max", int, 5, "checkpoints kept by the retention policy", low=1),
    O("ckpt_save_policy", str, "latest_k", "retention", choices=("latest_k", "top_k")),
    O("resume", str, None, "'auto' (newest checkpoint in ckpt_save_dir) or a checkpoint path", nullable=True),
    O("val_while_train", bool, True, "evaluate on the val split during training"),
    O("val_interval", int, 1, "evaluate every N epochs", low=1),
    O("log_interval", int, 20, "log every N steps", low=1),
    O("max_nonfinite_steps", int, 10, "consecutive non-finite losses that stop the run", low=1),
)


def _type_name(opt):
    base = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[opt.kind]
    text = f"a list of {base.split(' ', 1)[1]}s" if opt.is_list else base
    return text + (" or null" if opt.nullable else "")


def _check_scalar(opt, value, where):
    if opt.kind is bool:
        ok = isinstance(value, bool)
    elif opt.kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif opt.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got {value!r}")
    if opt.choices is not None and value not in opt.choices:
        raise MsvisionError(f"{where}'{opt.name}' must be one of {', '.join(map(str, opt.choices))}, got {value!r}")
    if (opt.low is not None and value < opt.low) or (opt.high is not None and value > opt.high):
        bounds = f"in [{opt.low}, {opt.high}]" if opt.high is not None else f">= {opt.low}"
        raise MsvisionError(f"{where}'{opt.name}' must be {bounds}, got {value!r}")
    return float(value) if opt.kind is float else value


def check_value(opt, value, where=""):
    """Validate one value against its option; returns it normalised (ints given for floats become floats)."""
    if value is None:
        if opt.nullable:
            return None
        raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got null")
    if opt.is_list:
        if not isinstance(value, (list, tuple)) or not value:
            raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got {value!r}")
        return [_check_scalar(opt, item, where) for item in value]
    return _check_scalar(opt, value, where)


def _parse_bool(text):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _parse_nullable(kind):
    def parse(text):
        return None if text.lower() in ("none", "null") else kind(text)
    parse.__name__ = kind.__name__
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise MsvisionError(message)


def build_parser(description=None):
    """The argparse parser of every option (defaults are the built-in ones; YAML overrides them)."""
    parser = _Parser(description=description)
    parser.add_argument("-c", "--config", default=None, help="YAML file whose keys are these option names")
    for opt in OPTIONS.values():
        kind = _parse_bool if opt.kind is bool else opt.kind
        if opt.nullable:
            kind = _parse_nullable(kind)
        if opt.kind is bool:  # "--ema" alone means true; "--ema false" also works
            parser.add_argument(f"--{opt.name}", type=kind, default=opt.default, help=opt.help, nargs="?", const=True)
        else:
            parser.add_argument(f"--{opt.name}", type=kind, default=opt.default, help=opt.help,
                                nargs="+" if opt.is_list else None)
    return parser


def load_yaml(path):
    """Read a flat YAML config and validate every key and value."""
    if not os.path.isfile(path):
        raise MsvisionError(f"config file not found: '{path}'")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise MsvisionError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MsvisionError(f"config {path} must be a mapping of option: value")
    where = f"config {path}: "
    for key, value in data.items():
        if key not in OPTIONS:
            raise MsvisionError(f"{where}unknown key '{key}' (not an option; see --help for the list)")
        data[key] = check_value(OPTIONS[key], value, where)
    return data


def parse_config(argv=None, description=None, extra_args=None, base=None):
    """Resolve built-in defaults <- base dict <- YAML (--config) <- command line into an argparse.Namespace.

    extra_args: callable(parser) adding entry-point-only arguments (not stored in the config).
    base: values that replace the built-in defaults (e.g. the config stored in a checkpoint).
    """
    parser = build_parser(description)
    if extra_args:
        extra_args(parser)
    if base:
        parser.set_defaults(**base)
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        parser.set_defaults(**load_yaml(pre.config))
    args = parser.parse_args(argv)
    for opt in OPTIONS.values():
        setattr(args, opt.name, check_value(opt, getattr(args, opt.name), "option "))
    return args


def config_dict(args):
    """The resolved options (only the config keys) as a plain dict."""
    return {name: getattr(args, name) for name in OPTIONS}


def dump_config(args):
    return yaml.safe_dump(config_dict(args), sort_keys=False)


def config_from_text(text, source="checkpoint"):
    """Options stored as YAML text (in a checkpoint), validated, over the built-in defaults."""
    data = yaml.safe_load(text) or {}
    values = {name: opt.default for name, opt in OPTIONS.items()}
    for key, value in data.items():
        if key in OPTIONS:  # keys from a newer/older version are ignored
            values[key] = check_value(OPTIONS[key], value, f"config in {source}: ")
    return argparse.Namespace(**values)
