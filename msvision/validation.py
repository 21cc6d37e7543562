"""validate.py: evaluate a checkpoint on a split; the report (per-class table beside each class's training images),
the JSON metrics and the confusion matrix (CSV, and a PNG with the plot extra)."""
import csv
import io
import json
import logging
import os

import numpy as np

from msvision import device
from msvision.checkpoint import CLASS_COUNTS_KEY
from msvision.data.dataset import open_split
from msvision.data.index import log_index
from msvision.errors import MsvisionError
from msvision.evaluate import evaluate
from msvision.files import write_text
from msvision.inference import class_names, model_from_checkpoint, parse_with_checkpoint

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


def _check_output(path, what):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise MsvisionError(f"cannot write {what} '{path}': folder '{os.path.dirname(path) or '.'}' does not exist or "
                            f"is not writable")


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
    unknown = sorted(set(split.classes) - set(stored))
    if unknown:
        missing = sorted(set(stored) - set(split.classes))
        absent = f"; the model's classes missing there: {_names(missing)}" if missing else ""
        raise MsvisionError(f"'{split.root}' has class folders the model does not know: {_names(unknown)}{absent} "
                            f"(expected a subset of the checkpoint's {num_classes} classes)")
    if len(split.classes) < num_classes:
        LOG.info("'%s' holds %d of the model's %d classes (absent: %s): the per-class table covers those present",
                 split.root, len(split.classes), num_classes, _names(sorted(set(stored) - set(split.classes))))
    return stored


def _names(names, limit=5):
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def run_validation(argv=None):
    """validate.py: evaluate --ckpt_path on a split; print the report, optionally write --output JSON and
    --confusion CSV (+ PNG)."""
    def extra(parser):
        parser.add_argument("--output", default=None, help="write all metrics to this JSON file")
        parser.add_argument("--split", default=None, help="sub-folder of data_dir to evaluate, e.g. train "
                                                          "(default: val_split)")
        parser.add_argument("--confusion", default=None, help="write the confusion matrix to this CSV file (and a PNG "
                                                              "beside it when matplotlib is installed)")

    args, ckpt = parse_with_checkpoint(argv, run_validation.__doc__, extra, keep_default=("ema",))
    for path, what in ((args.output, "the metrics"), (args.confusion, "the confusion matrix")):
        if path:
            _check_output(path, what)
    device.setup_device(args)
    net = model_from_checkpoint(args, ckpt, ema=args.ema)
    split = open_split(args, args.split or args.val_split)
    log_index(split)
    names = model_classes(ckpt, args.num_classes, split)
    counts = ckpt.get(CLASS_COUNTS_KEY)
    counts = counts.asnumpy() if counts is not None and counts.shape == (args.num_classes,) else None
    metrics = evaluate(net, args, split, device.rank(), device.world_size(), train_counts=counts, class_names=names)
    confusion = metrics.pop("confusion")
    metrics.update(model=args.model, checkpoint=args.ckpt_path, split=split.root, ema=args.ema,
                   world_size=device.world_size())
    if device.is_main_process():
        print(format_report(metrics, args.model, args.ckpt_path))
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
