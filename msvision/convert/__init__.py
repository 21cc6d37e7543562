"""Weights from the reference libraries -> msvision checkpoints.

Sources: timm and torchvision (PyTorch; msvision keeps their module paths), the 1e100 VoVNet trainer (PyTorch, its
own layout) and MindCV (MindSpore, VGG without conv biases). `convert.convert_file` reads, renames, loads strictly
into the msvision model and writes a .ckpt; `layouts.detect_source` tells a PyTorch layout from its keys. MindCV
files load directly: `msvision.mindcv_weights` holds that relaxed case of strict loading, below both the loader
(`msvision.checkpoint`) and this package.
"""
