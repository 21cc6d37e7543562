"""validate.py: evaluate a checkpoint on a split; the report (per-class table beside each class's training images),
the JSON metrics and the confusion matrix (CSV, and a PNG with the plot extra)."""
import argparse
import csv
import io
import json
import logging
import os
import sys

import numpy as np

from msvision import device
from msvision.cli import check_output
from msvision.cli.checkpoint import VALIDATE_OPTIONS, parse_checkpoint_cli
from msvision.config.kwargs import device_kwargs, eval_loader_kwargs, split_kwargs
from msvision.config.parse import load_yaml, parse_config
from msvision.data.dataset import open_split
from msvision.data.index import log_index
from msvision.errors import MsvisionError, name_list
from msvision.eval.metrics import evaluate
from msvision.eval.onnx_eval import OnnxClassifier, onnx_config
from msvision.eval.predict import class_names, model_for_evaluation
from msvision.files import write_text
from msvision.weights.io import CLASS_COUNTS_KEY

LOG = logging.getLogger("msvision")


def format_report(metrics, model, ckpt_path):
    """Human-readable summary and per-class table (worst classes first)."""
    lines = [f"{model} from {ckpt_path}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
             f"balanced {metrics['balanced_accuracy']:.2f}%  worst class {metrics['worst_class_accuracy']:.2f}%  "
             f"loss {metrics['loss']:.4f}  images {metrics['count']}"]
    with_counts = all("train_images" in row for row in metrics["per_class"])
    counts_header = f"{'train images':>14}" if with_counts else ""
    lines.append(f"{'class':<24}{'correct/total':>15}{'accuracy':>10}{counts_header}")
    lines += [f"{row['name']:<24}{row['correct']:>8}/{row['total']:<6}{row['accuracy']:>9.2f}%"
              + (f"{row['train_images']:>14}" if with_counts else "") for row in metrics["per_class"]]
    return "\n".join(lines)


def confusion_csv(confusion, names):
    """The confusion matrix as CSV text: one row per true class, one column per predicted class."""
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["true \\ predicted"] + list(names))
    for name, row in zip(names, confusion):
        writer.writerow([name] + [int(v) for v in row])
    return table.getvalue()


def plot_confusion(confusion, names, path):
    """Row-normalised confusion matrix (recall per true class) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    size = min(4 + 0.3 * len(names), 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if len(names) <= 60:
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (each row sums to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_classes(ckpt, num_classes, split):
    """The model's class names in output order, checked against the split's class folders by name: the split may
    hold a subset of them (a long-tailed validation split often lacks its rarest classes), not a class the model does
    not know. A checkpoint without stored names takes the folders' names, which must then be as many as its classes."""
    stored = class_names(ckpt, num_classes)
    if stored is None:
        if len(split.classes) != num_classes:
            raise MsvisionError(f"the model has {num_classes} classes but '{split.root}' has {len(split.classes)} "
                                f"class folders (the checkpoint stores no class names to match them by)")
        return list(split.classes)
    unknown, missing = set(split.classes) - set(stored), set(stored) - set(split.classes)
    if unknown:
        absent = f"; the model's classes missing there: {name_list(missing)}" if missing else ""
        raise MsvisionError(f"'{split.root}' has class folders the model does not know: {name_list(unknown)}{absent}"
                            f" (expected a subset of the checkpoint's {num_classes} classes)")
    if missing:
        LOG.info("'%s' holds %d of the model's %d classes (absent: %s): the per-class table covers those present",
                 split.root, len(split.classes), num_classes, name_list(missing))
    return stored


def parse_onnx_cli(argv, description, names, extra_args=None):
    """validate.py --onnx FILE: built-in defaults <- the file's metadata (model, preprocessing) <- --config <- command
    line. Returns (args, {state entry: value}: the class names and counts stored in the file)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = parse_config(argv, description, extra_args, names=names)
    if known.ckpt_path:
        raise MsvisionError("--onnx and --ckpt_path both name the model to evaluate: give one of them")
    given = any(arg == "--model" or arg.startswith("--model=") for arg in argv) or \
        bool(known.config and "model" in load_yaml(known.config))
    base, state = onnx_config(known.onnx, known.model if given else None)
    return parse_config(argv, description, extra_args, base=base, names=names), state


def run_validation(argv=None):
    """validate.py: evaluate --ckpt_path (or an exported --onnx file) on a split; print the report, optionally write
    --output JSON and --confusion CSV (+ PNG)."""
    def extra(parser):
        parser.add_argument("--output", default=None, help="write all metrics to this JSON file")
        parser.add_argument("--split", default=None, help="sub-folder of data_dir to evaluate, e.g. train "
                                                          "(default: val_split)")
        parser.add_argument("--confusion", default=None, help="write the confusion matrix to this CSV file (and a PNG "
                                                              "beside it when matplotlib is installed)")
        parser.add_argument("--ema_weights", action="store_true",
                            help="evaluate the checkpoint's EMA weights (a run trained with ema: true)")
        parser.add_argument("--ema", action="store_true", dest="ema_alias", help=argparse.SUPPRESS)
        parser.add_argument("--onnx", default=None, help="evaluate this exported ONNX file (float32 or int8) with "
                                                         "onnxruntime instead of a checkpoint")

    argv = list(sys.argv[1:] if argv is None else argv)
    onnx_file = parse_config(argv, run_validation.__doc__, extra, names=VALIDATE_OPTIONS).onnx
    parse = parse_onnx_cli if onnx_file else parse_checkpoint_cli
    args, state = parse(argv, run_validation.__doc__, VALIDATE_OPTIONS, extra)
    if args.ema_alias:
        LOG.warning("validate.py --ema is deprecated: it is --ema_weights (evaluate the EMA weights)")
    use_ema = args.ema_weights or args.ema_alias
    if use_ema and onnx_file:
        raise MsvisionError("--ema_weights selects a checkpoint's EMA weights; an ONNX file holds only the weights "
                            "it was exported with")
    for path, what in ((args.output, "the metrics"), (args.confusion, "the confusion matrix")):
        if path:
            check_output(path, what)
    device.setup_device(**device_kwargs(args))
    if onnx_file:
        net = OnnxClassifier(onnx_file)
        num_classes = net.num_classes
    else:
        net = model_for_evaluation(args.model, args.ckpt_path, args.num_classes, use_ema, act_layer=args.act_layer,
                                   **args.model_args)
        num_classes = net.get_classifier().out_channels
    source = onnx_file or args.ckpt_path
    split = open_split(args.split or args.val_split, **split_kwargs(args))
    log_index(split)
    names = model_classes(state, num_classes, split)
    counts = state.get(CLASS_COUNTS_KEY)
    counts = counts.asnumpy() if counts is not None and counts.shape == (num_classes,) else None
    metrics = evaluate(net, split, device.rank(), device.world_size(), train_counts=counts, class_names=names,
                       **eval_loader_kwargs(args))
    confusion = metrics.pop("confusion")
    metrics.update(model=args.model, checkpoint=source, split=split.root, ema_weights=use_ema,
                   world_size=device.world_size())
    if device.is_main_process():
        print(format_report(metrics, args.model, source))
        if args.output:
            write_text(args.output, json.dumps(metrics, indent=1))
            print(f"metrics written to {args.output}")
        if args.confusion:
            write_text(args.confusion, confusion_csv(confusion, names), newline="")
            print(f"confusion matrix written to {args.confusion}")
            try:
                png = os.path.splitext(args.confusion)[0] + ".png"
                plot_confusion(confusion, names, png)
                print(f"confusion plot written to {png}")
            except ImportError:
                print('no confusion plot: matplotlib is not installed (pip install -e ".[plot]")')
    return metrics
