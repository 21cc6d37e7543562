"""Optimizers (factory: parameter groups, decay, head LR; rules: the PyTorch / timm update rules MindSpore lacks)
and learning-rate schedules (schedule)."""
from msvision.optim.factory import create_optimizer

__all__ = ["create_optimizer"]
