"""Benchmarks behind scripts/benchmark.py: model throughput against timm and MindCV (throughput.py), data pipelines
(data.py), start-up on ImageNet-shaped folders (startup.py), host reads in the train loop (loop.py). Each measurement
runs in a fresh subprocess that prints one tagged JSON line (common.py); cli.py parses the options and prints tables."""
