"""Rebuild a model, its preprocessing and class names from a checkpoint (the config stored in it, or flags)."""
import sys

import numpy as np
import mindspore as ms

from msvision.checkpoint import CLASS_NAMES_KEY, CONFIG_KEY, ema_weights, load_weights, read_checkpoint
from msvision.config import build_parser, config_dict, config_from_text, parse_config
from msvision.errors import MsvisionError
from msvision.models import create_model, get_pretrained_cfg
from msvision.pretrained import pretrained_checkpoint


def parse_with_checkpoint(argv, description, extra_args=None, keep_default=()):
    """Options for a checkpoint user (validate, infer, export): defaults <- config stored in --ckpt_path <- --config
    <- command line. A checkpoint without a stored config (converted from timm) takes num_classes from its
    classifier. Options in keep_default ignore the stored value. Returns (args, checkpoint dict)."""
    parser = build_parser(description)
    if extra_args:
        extra_args(parser)
    known, _ = parser.parse_known_args(argv)
    if known.pretrained and not known.ckpt_path:  # the model's published weights, converted once
        known.ckpt_path = pretrained_checkpoint(known.model, known.pretrained)
        argv = list(argv or sys.argv[1:]) + ["--ckpt_path", known.ckpt_path]
    if not known.ckpt_path:
        raise MsvisionError("--ckpt_path is required (the .ckpt file to load), or --pretrained with --model")
    ckpt = read_checkpoint(known.ckpt_path)
    stored = ckpt.get(CONFIG_KEY)
    base = config_dict(config_from_text(stored, known.ckpt_path)) if isinstance(stored, str) else {}
    for name in ("ckpt_path", "resume") + tuple(keep_default):
        base.pop(name, None)
    args = parse_config(argv, description, extra_args, base=base)
    if not base and "--num_classes" not in (argv or []):
        classifier = ckpt.get(get_pretrained_cfg(args.model).classifier + ".weight")
        if classifier is not None:
            args.num_classes = int(classifier.shape[0])
    return args, ckpt


def class_names(ckpt, num_classes):
    """Class names stored at training time (None when the checkpoint holds none for num_classes classes)."""
    names = ckpt.get(CLASS_NAMES_KEY)
    if isinstance(names, str) and len(names.split("\n")) == num_classes:
        return names.split("\n")
    return None


def model_from_checkpoint(args, ckpt, ema=False):
    """The model of args.model with the checkpoint's weights (its EMA weights with ema=True), in eval mode."""
    net = create_model(args.model, num_classes=args.num_classes, act_layer=args.act_layer)
    load_weights(net, ema_weights(ckpt, args.ckpt_path) if ema else ckpt, source=args.ckpt_path)
    net.set_train(False)
    return net


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predict_files(net, args, paths, top_k=5):
    """Top-k (class index, probability) for each image file, with the eval preprocessing."""
    from msvision.data.transforms import eval_transforms

    operations = eval_transforms(args)
    results = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                image = np.frombuffer(handle.read(), np.uint8)
            for operation in operations:
                image = operation(image)
        except (OSError, RuntimeError, ValueError) as err:
            raise MsvisionError(f"cannot read image '{path}': {str(err).splitlines()[0]}") from None
        probs = softmax(net(ms.Tensor(image[None])).asnumpy().astype(np.float64))[0]
        order = np.argsort(-probs)[:top_k]
        results.append([(int(i), float(probs[i])) for i in order])
    return results
