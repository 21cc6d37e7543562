"""Exact evaluation: top-1, top-5, mean loss and per-class accuracy; sums of counts are all-reduced over ranks.

Each rank evaluates items rank, rank+N, rank+2N, ... (no padding), so nothing is counted twice and the totals are
exactly those of a single process.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from msvision.data.dataset import batches
from msvision.data.transforms import create_loader


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _all_reduce_sum(array):
    return ops.AllReduce()(ms.Tensor(array)).asnumpy()


def evaluate(net, args, split, shard_id=0, num_shards=1):
    """Evaluate net on a split (a SplitIndex); returns a dict of top1, top5 (percent), loss, count, per_class rows."""
    net.set_train(False)
    classes = split.classes
    num_classes = len(classes)
    # per class: [correct top-1, total]; plus [loss sum, top-5 correct]
    per_class = np.zeros((num_classes, 2), np.float64)
    extra = np.zeros(2, np.float64)
    loader = create_loader(args, split, training=False, shard_id=shard_id, num_shards=num_shards)
    for images, labels in batches(loader.create_tuple_iterator(num_epochs=1), split.root):
        logits = net(images).asnumpy().astype(np.float64)
        labels = labels.asnumpy()
        top5 = np.argsort(-logits, axis=1)[:, :min(5, logits.shape[1])]
        extra[0] -= _log_softmax(logits)[np.arange(len(labels)), labels].sum()
        extra[1] += (top5 == labels[:, None]).any(axis=1).sum()
        np.add.at(per_class[:, 0], labels, top5[:, 0] == labels)
        np.add.at(per_class[:, 1], labels, 1)
    if num_shards > 1:
        flat = _all_reduce_sum(np.concatenate([per_class.ravel(), extra]).astype(np.float32))
        per_class, extra = flat[:-2].reshape(num_classes, 2).astype(np.float64), flat[-2:].astype(np.float64)
    count = int(per_class[:, 1].sum())
    rows = [dict(name=name, correct=int(c), total=int(t), accuracy=100.0 * c / t if t else 0.0)
            for name, (c, t) in zip(classes, per_class)]
    return dict(top1=100.0 * per_class[:, 0].sum() / max(count, 1), top5=100.0 * extra[1] / max(count, 1),
                loss=extra[0] / max(count, 1), count=count,
                per_class=sorted(rows, key=lambda row: (row["accuracy"], row["name"])))


def format_report(metrics, model, ckpt_path):
    """Human-readable summary and per-class table (worst classes first)."""
    lines = [f"{model} from {ckpt_path}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
             f"loss {metrics['loss']:.4f}  images {metrics['count']}",
             f"{'class':<24}{'correct/total':>15}{'accuracy':>10}"]
    lines += [f"{row['name']:<24}{row['correct']:>8}/{row['total']:<6}{row['accuracy']:>9.2f}%"
              for row in metrics["per_class"]]
    return "\n".join(lines)


def run_validation(argv=None):
    """validate.py: evaluate --ckpt_path on the val split; print the report, optionally write --output JSON."""
    import json

    from msvision import device
    from msvision.data.dataset import open_split
    from msvision.data.index import log_index
    from msvision.errors import MsvisionError
    from msvision.inference import class_names, model_from_checkpoint, parse_with_checkpoint

    def extra(parser):
        parser.add_argument("--output", default=None, help="write all metrics to this JSON file")
        parser.add_argument("--split", default=None, help="sub-folder to evaluate (default: val_split)")

    args, ckpt = parse_with_checkpoint(argv, run_validation.__doc__, extra, keep_default=("ema",))
    device.setup_device(args)
    net = model_from_checkpoint(args, ckpt, ema=args.ema)
    split = open_split(args, args.split or args.val_split)
    log_index(split)
    folders = split.classes
    if len(folders) != args.num_classes:
        raise MsvisionError(f"the model has {args.num_classes} classes but '{split.root}' has {len(folders)} class "
                            f"folders")
    names = class_names(ckpt, args.num_classes)
    metrics = evaluate(net, args, split, device.rank(), device.world_size())
    by_folder = dict(zip(folders, names))
    for row in metrics["per_class"]:
        row["name"] = by_folder[row["name"]] if names[0] != "class_0" else row["name"]
    metrics.update(model=args.model, checkpoint=args.ckpt_path, ema=args.ema, world_size=device.world_size())
    if device.is_main_process():
        print(format_report(metrics, args.model, args.ckpt_path))
        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                json.dump(metrics, handle, indent=1)
            print(f"metrics written to {args.output}")
    return metrics
