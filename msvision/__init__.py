"""msvision: VGG, RepVGG and VoVNet image classification on MindSpore."""
from msvision.cpu_env import apply_cpu_speed_setting
from msvision.environment import check_numpy

check_numpy()  # before MindSpore: under NumPy 2 its image decoding fails on every file
apply_cpu_speed_setting()  # must precede the first MindSpore kernel

from msvision.errors import MsvisionError  # noqa: E402
from msvision.models import create_model, get_pretrained_cfg, list_models, reparameterize  # noqa: E402

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "get_pretrained_cfg", "reparameterize", "MsvisionError", "__version__"]
