"""CIFAR-10 / CIFAR-100 from their binary archives (the "binary version" of the dataset).

CIFAR-10 (cifar-10-batches-bin): data_batch_1..5.bin for training, test_batch.bin for testing; records of 1 label
byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32x32). CIFAR-100 (cifar-100-binary): train.bin
and test.bin; records of a coarse and a fine label byte + 3072 pixel bytes (the fine label is the class). Files of any
whole number of records are read (MindSpore's Cifar10Dataset assumes 10,000 per file); class names come from
batches.meta.txt / fine_label_names.txt when present.
"""
import glob
import os

import numpy as np

from msvision.errors import MsvisionError

LAYOUTS = {  # dataset -> (archive folder, training files, test files, label bytes, names file, classes)
    "cifar10": ("cifar-10-batches-bin", "data_batch_*.bin", "test_batch.bin", 1, "batches.meta.txt", 10),
    "cifar100": ("cifar-100-binary", "train.bin", "test.bin", 2, "fine_label_names.txt", 100),
}
PIXELS = 32 * 32 * 3


class CifarSplit:
    """One CIFAR split held in memory: images (N, 32, 32, 3) uint8 and labels (implements data.split.Split)."""

    kind = "pixels"
    meta = {"skipped": 0}  # nothing is skipped in an archive

    def __init__(self, root, classes, images, labels, files):
        self.root, self.classes, self.images, self._labels, self.files = root, classes, images, labels, files

    @property
    def num_items(self):
        return len(self._labels)

    def labels(self):
        return self._labels

    def describe(self):
        return (f"{self.root}: {self.num_items} images in {len(self.classes)} classes (CIFAR records of "
                f"{', '.join(os.path.basename(f) for f in self.files)})")

    def reader(self):
        return self.images.__getitem__


def _folder(data_dir, dataset):
    if not data_dir or not os.path.isdir(data_dir):
        raise MsvisionError(f"data_dir not found: '{data_dir}' (expected the {dataset} binary archive's folder)")
    inner = os.path.join(data_dir, LAYOUTS[dataset][0])
    return inner if os.path.isdir(inner) else data_dir


def _read_records(path, label_bytes):
    size = os.path.getsize(path)
    record = label_bytes + PIXELS
    if size % record:
        raise MsvisionError(f"'{path}' holds {size // record} whole records of {record} bytes and {size % record} "
                            f"bytes more (a partial record): the archive is truncated or not {record}-byte CIFAR "
                            f"records")
    raw = np.fromfile(path, np.uint8).reshape(-1, record)
    images = raw[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), raw[:, label_bytes - 1].astype(np.int32)


def open_cifar(data_dir, dataset, training):
    """The training (data_batch_*/train) or test split of a CIFAR binary archive folder."""
    folder, train_files, test_file, label_bytes, names_file, num_classes = LAYOUTS[dataset]
    root = _folder(data_dir, dataset)
    files = sorted(glob.glob(os.path.join(root, train_files if training else test_file)))
    if not files:
        raise MsvisionError(f"dataset {dataset} needs {train_files if training else test_file} in '{root}' (the "
                            f"binary version, {folder}/), found none")
    parts = [_read_records(path, label_bytes) for path in files]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if labels.size and labels.max() >= num_classes:
        raise MsvisionError(f"'{files[0]}' holds label {labels.max()}, but {dataset} has {num_classes} classes")
    names_path = os.path.join(root, names_file)
    names = []
    if os.path.isfile(names_path):
        with open(names_path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
    classes = names if len(names) == num_classes else [f"class_{i}" for i in range(num_classes)]
    return CifarSplit(root, classes, images, labels, files)


def write_cifar(folder, dataset, files, names=None):
    """Write CIFAR binary archives: files maps a file name to (images (N, 32, 32, 3) uint8, labels); names, when
    given, goes to the class-names file. For tests and the CPU demo."""
    label_bytes, names_file = LAYOUTS[dataset][3], LAYOUTS[dataset][4]
    os.makedirs(folder, exist_ok=True)
    for name, (images, labels) in files.items():
        records = np.zeros((len(labels), label_bytes + PIXELS), np.uint8)
        records[:, label_bytes - 1] = labels
        if label_bytes == 2:
            records[:, 0] = np.asarray(labels) // 5  # a coarse label (CIFAR-100 groups five classes)
        records[:, label_bytes:] = np.asarray(images).transpose(0, 3, 1, 2).reshape(len(labels), PIXELS)
        records.tofile(os.path.join(folder, name))
    if names:
        with open(os.path.join(folder, names_file), "w", encoding="utf-8") as handle:
            handle.write("\n".join(names) + "\n")
    return folder
