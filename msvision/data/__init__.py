"""Data: ImageNet-style folders (or the built-in demo) -> mindspore.dataset pipelines."""
