"""Weight conversion from PyTorch (timm, torchvision) to MindSpore checkpoints."""
