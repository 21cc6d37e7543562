"""Exact evaluation: top-1, top-5, mean loss, the confusion matrix and what follows from it (per-class accuracy,
balanced accuracy, worst-class accuracy); sums of counts are all-reduced over ranks.

Each rank evaluates items rank, rank+N, rank+2N, ... (no padding), so nothing is counted twice and the totals are
exactly those of a single process.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from msvision.data.dataset import batches
from msvision.data.loaders import eval_loader


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _all_reduce_sum(array):
    return ops.AllReduce()(ms.Tensor(array)).asnumpy()


def class_metrics(confusion):
    """From a confusion matrix (rows: true class, columns: predicted), in percent: top-1, balanced accuracy (the mean
    recall over the classes that have images) and worst-class accuracy (the lowest such recall)."""
    totals = confusion.sum(axis=1)
    present = totals > 0
    recall = 100.0 * np.diag(confusion)[present] / totals[present]
    return dict(top1=100.0 * np.trace(confusion) / max(totals.sum(), 1),
                balanced_accuracy=float(recall.mean()) if present.any() else 0.0,
                worst_class_accuracy=float(recall.min()) if present.any() else 0.0)


def evaluate(net, split, shard_id=0, num_shards=1, train_counts=None, class_names=None, **loader):
    """Evaluate net on a split (loader: data.loaders.eval_loader's arguments but the split and shard). Returns
    top1, top5, balanced_accuracy, worst_class_accuracy (percent), loss, count, per_class rows (worst first; with
    train_images when train_counts is given) and confusion.

    class_names: the model's classes in output order, when the split's class folders are a subset of them (matched
    by name); the confusion matrix then spans every model class and the per-class rows the classes present."""
    net.set_train(False)
    names = list(class_names or split.classes)
    position = {name: index for index, name in enumerate(names)}
    label_map = np.array([position[name] for name in split.classes], np.int64)
    num_classes = len(names)
    confusion = np.zeros((num_classes, num_classes), np.float64)
    extra = np.zeros(2, np.float64)  # loss sum, top-5 correct
    data = eval_loader(split, shard_id=shard_id, num_shards=num_shards, **loader)
    for images, labels in batches(data.create_tuple_iterator(num_epochs=1), split.root):
        logits = net(images).asnumpy().astype(np.float64)
        labels = label_map[labels.asnumpy()]
        top5 = np.argsort(-logits, axis=1)[:, :min(5, logits.shape[1])]
        extra[0] -= _log_softmax(logits)[np.arange(len(labels)), labels].sum()
        extra[1] += (top5 == labels[:, None]).any(axis=1).sum()
        np.add.at(confusion, (labels, top5[:, 0]), 1)
    if num_shards > 1:  # float32 sums: counts are exact up to 2^24 per cell
        flat = _all_reduce_sum(np.concatenate([confusion.ravel(), extra]).astype(np.float32)).astype(np.float64)
        confusion, extra = flat[:-2].reshape(num_classes, num_classes), flat[-2:]
    confusion = confusion.astype(np.int64)
    count = int(confusion.sum())
    rows = []
    for label in label_map:
        total, correct = int(confusion[label].sum()), int(confusion[label, label])
        row = dict(name=names[label], correct=correct, total=total, accuracy=100.0 * correct / total if total else 0.0)
        if train_counts is not None:
            row["train_images"] = int(train_counts[label])
        rows.append(row)
    return dict(class_metrics(confusion), top5=100.0 * extra[1] / max(count, 1), loss=extra[0] / max(count, 1),
                count=count, per_class=sorted(rows, key=lambda row: (row["accuracy"], row["name"])),
                confusion=confusion)
