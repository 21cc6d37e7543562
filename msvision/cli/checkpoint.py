"""Command lines that start from a checkpoint (validate.py, scripts/infer.py, scripts/export.py): each offers only
the options it uses; the config stored in the checkpoint supplies the rest (model, classes, preprocessing)."""
import logging
import sys

from msvision.config.parse import config_dict, config_from_text, parse_config
from msvision.errors import MsvisionError
from msvision.models import published_checkpoint
from msvision.weights.io import CLASS_COUNTS_KEY, CLASS_NAMES_KEY, CONFIG_KEY, read_checkpoint

LOG = logging.getLogger("msvision")
DEVICE = ("device_target", "mode", "jit_level")
MODEL = ("model", "model_args", "num_classes", "act_layer", "ckpt_path", "pretrained")
PREPROCESSING = ("image_resize", "interpolation", "crop_pct", "mean", "std")
VALIDATE_OPTIONS = DEVICE + MODEL + PREPROCESSING + ("data_dir", "dataset", "val_split", "batch_size",
                                                    "num_parallel_workers")
INFER_OPTIONS = DEVICE + MODEL + PREPROCESSING
EXPORT_OPTIONS = DEVICE + MODEL + PREPROCESSING  # the ONNX metadata and the int8 calibration images
STATE_KEYS = (CONFIG_KEY, CLASS_NAMES_KEY, CLASS_COUNTS_KEY)


def parse_checkpoint_cli(argv, description, names, extra_args=None):
    """Options of a checkpoint user: built-in defaults <- config stored in --ckpt_path <- --config <- command line,
    the command line offering `names`. Returns (args, {state entry: value} of the checkpoint). A checkpoint without
    a stored config (converted from timm) leaves num_classes to its classifier (args.num_classes None) unless
    --num_classes is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = parse_config(argv, description, extra_args, names=names)
    if known.pretrained and not known.ckpt_path:  # the model's published weights, converted once
        argv += ["--ckpt_path", published_checkpoint(known.model, known.pretrained)]
        known.ckpt_path = argv[-1]
    if not known.ckpt_path:
        raise MsvisionError("--ckpt_path is required (the .ckpt file to load), or --pretrained with --model")
    state = read_checkpoint(known.ckpt_path, only=STATE_KEYS)
    stored = state.get(CONFIG_KEY)
    base = config_dict(config_from_text(stored, known.ckpt_path)) if isinstance(stored, str) else {}
    for name in ("ckpt_path", "resume"):
        base.pop(name, None)
    args = parse_config(argv, description, extra_args, base=base, names=names)
    if not base and "--num_classes" not in argv:
        args.num_classes = None
    return args, state
