"""The Split protocol: what the pipelines, the trainer and the evaluators use of a dataset split. The folder index
(index.SplitIndex) and the CIFAR reader (cifar.CifarSplit) implement it."""
from typing import Callable, List, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Split(Protocol):
    """A split's items 0..num_items-1, their labels, and a reader from item number to image."""
    root: str
    classes: List[str]  # class names; label i is classes[i]
    kind: str  # "encoded": the reader gives a file's bytes; "pixels": an HWC uint8 array
    meta: dict  # what reading the split skipped: "skipped" (a count) and "skipped_example"

    @property
    def num_items(self) -> int:
        ...

    def labels(self) -> np.ndarray:
        """The label of every item, in item order."""

    def reader(self) -> Callable:
        """item number -> image (picklable, for pipeline worker processes)."""

    def describe(self) -> str:
        """One line for the run's log: where the split is and how it was read."""


def class_counts(split):
    """Images per class of a split (index = label)."""
    return np.bincount(split.labels(), minlength=len(split.classes))
