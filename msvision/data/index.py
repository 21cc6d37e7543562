"""A split's file index, checked and written once per job and reused while the folder is unchanged.

Reading an ImageNet split means 1.28M header/end-marker checks; doing them on every rank at every start costs about
a minute per rank. Instead the first process to take the split's lock (an flock, released if that process dies)
checks the files and writes, under MSVISION_CACHE (default ~/.cache/msvision), keyed by the split's absolute path:
  <key>.tsv       relative path, label, size, mtime of every file that passed
  <key>.npz       the same paths and labels as arrays: what every rank's pipeline reads (no directory walk)
  <key>.json      the folder's fingerprint, counts and skipped files; written last, so its presence means complete
Every other process waits for the lock and reads the index. The fingerprint is each class folder's name, mtime and
number of entries: adding, removing or renaming a file changes it (a file overwritten in place does not; remove
the cache files, or touch its folder, to recheck).
"""
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from msvision.errors import MsvisionError
from msvision.files import atomic_path, cache_folder, wait_for_lock, write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")
INDEX_VERSION = 1
LOG = logging.getLogger("msvision")


class UnreadableImages(MsvisionError):
    """Files of a split that cannot be decoded; carries the check's results (no index is written, so the next start
    checks again), which scripts/inspect_data.py reports."""

    def __init__(self, root, classes, problems, records, others):
        listed = "; ".join(f"{p}: {why}" for p, why in problems[:5])
        more = f"; ... (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} unreadable image file(s) in '{root}' ({listed}{more}): remove or replace "
                         f"them")
        self.root, self.classes = root, classes
        self.problems, self.records, self.others = problems, records, others


class SplitIndex(NamedTuple):
    """A class-folder split read through its index (implements data.split.Split)."""
    root: str
    classes: list
    files: str  # the .npz of relative paths and labels
    how: str  # "built in 1.2 s" or "reused", for log_index
    meta: dict  # the index's .json: fingerprint, num_items, skipped files

    @property
    def num_items(self):
        return self.meta["num_items"]

    def labels(self):
        """The label of every indexed file, in index order."""
        with np.load(self.files) as arrays:
            return arrays["labels"]

    kind = "encoded"  # items are encoded image files (CIFAR splits hold pixels)

    def describe(self):
        return (f"{self.root}: {self.num_items} images in {len(self.classes)} classes (index {self.how}: "
                f"{self.files[:-len('.npz')]}.json)")

    def reader(self):
        """item -> the file's bytes (picklable, for pipeline worker processes)."""
        with np.load(self.files) as arrays:
            return FileReader(self.root, arrays["paths"])


class FileReader:
    """Item -> encoded bytes of its file. MindSpore's ManifestDataset would read from a list in C++, but it opens
    every file at start-up on every rank, which is what the index avoids."""

    def __init__(self, root, paths):
        self.root, self.paths = root.encode() + b"/", paths

    def __call__(self, item):
        return np.fromfile(self.root + self.paths[item], np.uint8)


def log_index(split):
    """Log how a split was read and the files it skipped (called once the run's log is set up)."""
    LOG.info("%s", split.describe())
    if split.meta["skipped"]:
        LOG.warning("%s: skipped %d files without an image extension (e.g. %s)", split.root, split.meta["skipped"],
                    split.meta["skipped_example"])


def inspect_image(path):
    """(why it cannot be decoded or None, size, mtime in ns), judged by the file's header and end marker.

    MindSpore's decoder stops the whole process on a truncated JPEG, so files are checked before any pipeline runs.
    One open, one fstat and at most two reads per file: this runs over every file of a split.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            stat = os.fstat(fd)
            head = os.pread(fd, 8, 0)
            tail = os.pread(fd, 1024, max(0, stat.st_size - 1024)) if stat.st_size > 8 else head
        finally:
            os.close(fd)
    except OSError as err:
        return f"unreadable ({err.strerror})", 0, 0
    if head[:2] == b"\xff\xd8":
        why = None if b"\xff\xd9" in tail else "truncated JPEG (no end marker)"
    elif head == b"\x89PNG\r\n\x1a\n":
        why = None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    else:
        why = None if head[:2] == b"BM" else "not a JPEG, PNG or BMP image"
    return why, stat.st_size, stat.st_mtime_ns


def fingerprint(root, classes):
    """Per class folder: name, mtime (ns) and number of entries; cheap next to reading every file."""
    parts = []
    for name in classes:
        folder = os.path.join(root, name)
        with os.scandir(folder) as entries:
            count = sum(1 for _ in entries)
        parts.append([name, os.stat(folder).st_mtime_ns, count])
    return parts


def _inspect_all(paths, probe=1000, slow=100e-6, threads=16):
    """inspect_image over many files: serially while files answer fast (warm local disk, where the GIL makes
    threads slower), on threads once the first `probe` files show I/O latency (cold cache, network filesystem)."""
    start = time.perf_counter()
    results = [inspect_image(path) for path in paths[:probe]]
    rest = paths[probe:]
    if (time.perf_counter() - start) / max(len(results), 1) < slow:
        return results + [inspect_image(path) for path in rest]
    size = max(1, -(-len(rest) // threads))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = pool.map(lambda chunk: [inspect_image(path) for path in chunk],
                         [rest[i:i + size] for i in range(0, len(rest), size)])
    return results + [result for part in parts for result in part]


def _check_files(root, classes):
    """Every image of the split as (relative path, label, size, mtime), and the non-image files skipped."""
    images, others = [], []
    for label, name in enumerate(classes):
        found = []
        with os.scandir(os.path.join(root, name)) as entries:
            for entry in entries:
                if entry.is_file():
                    (found if entry.name.endswith(IMAGE_EXTENSIONS) else others).append(entry.path)
        if not found:
            raise MsvisionError(f"class folder has no images: '{os.path.join(root, name)}' (expected "
                                f"{', '.join(IMAGE_EXTENSIONS[:5])})")
        images += [(path, label) for path in sorted(found)]
    checked = _inspect_all([path for path, _ in images])
    problems = [(path, why) for (path, _), (why, _, _) in zip(images, checked) if why]
    start = len(root) + 1
    records = [(path[start:], label, size, mtime) for (path, label), (why, size, mtime) in zip(images, checked)
               if not why]
    if problems:
        raise UnreadableImages(root, classes, problems, records, others)
    return records, others


def _build(root, classes, base, prints):
    records, others = _check_files(root, classes)
    write_text(base + ".tsv", "".join(f"{rel}\t{label}\t{size}\t{mtime}\n" for rel, label, size, mtime in records))
    with atomic_path(base + ".npz", suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
        np.savez(tmp, paths=np.array([rel.encode() for rel, _, _, _ in records]),
                 labels=np.array([label for _, label, _, _ in records], np.int32))
    meta = {"version": INDEX_VERSION, "root": root, "fingerprint": prints, "num_items": len(records),
            "skipped": len(others), "skipped_example": others[0] if others else None}
    write_text(base + ".json", json.dumps(meta))
    return meta


def _read_meta(base, root, prints):
    try:
        with open(base + ".json", encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    fresh = meta.get("version") == INDEX_VERSION and meta.get("root") == root and meta.get("fingerprint") == prints
    return meta if fresh and os.path.isfile(base + ".npz") else None


def index_base(root):
    """The cache path of a split's index files, without extension."""
    root = os.path.abspath(root)
    key = hashlib.sha1(root.encode()).hexdigest()[:16]
    return os.path.join(cache_folder(), f"{os.path.basename(root)}-{key}")


def split_index(root, classes):
    """The checked file index of a split folder, from the cache when the folder is unchanged."""
    root = os.path.abspath(root)
    folder = cache_folder()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise MsvisionError(f"cache folder '{folder}' cannot be created ({err.strerror}): set MSVISION_CACHE to a "
                            f"writable folder") from None
    base = index_base(root)
    prints = fingerprint(root, classes)
    started = time.time()
    handle = wait_for_lock(base + ".lock", float(os.environ.get("MSVISION_INDEX_TIMEOUT", 1800)), "index the split",
                           "raise MSVISION_INDEX_TIMEOUT for very large or slow folders")
    try:
        meta = _read_meta(base, root, prints)
        built = meta is None
        if built:
            meta = _build(root, classes, base, prints)
    except OSError as err:
        raise MsvisionError(f"cannot write the split index to '{folder}' ({err.strerror}): set MSVISION_CACHE to a "
                            f"writable folder") from None
    finally:
        handle.close()
    how = f"built in {time.time() - started:.1f} s" if built else "reused"
    return SplitIndex(root, classes, base + ".npz", how, meta)
