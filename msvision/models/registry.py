"""Model registry: @register_model, create_model, list_models and each model's pretrained cfg."""
import dataclasses
import difflib
import fnmatch
import logging
from typing import Callable, Dict, Optional, Tuple

from msvision.errors import MsvisionError
from msvision.models.layers import name_random_layers
from msvision.models.published import PUBLISHED, PublishedWeights

LOG = logging.getLogger("msvision")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class PretrainedCfg:
    """Preprocessing and layout facts of a model's reference weights; the eval transforms read them."""
    input_size: Tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    first_conv: str = ""
    classifier: str = ""
    source: str = ""  # where the architecture comes from: timm, torchvision or 1e100
    weights: Tuple[PublishedWeights, ...] = ()  # published ImageNet weights, the default first (published.py)


_MODELS: Dict[str, Callable] = {}
_CFGS: Dict[str, PretrainedCfg] = {}


def register_model(cfg: PretrainedCfg):
    """Register a model builder under its function name together with its pretrained cfg (and published weights)."""
    def wrap(fn):
        _MODELS[fn.__name__] = fn
        _CFGS[fn.__name__] = dataclasses.replace(cfg, weights=PUBLISHED.get(fn.__name__, ()))
        return fn
    return wrap


def _check_name(name: str):
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_MODELS))}"
        raise MsvisionError(f"unknown model '{name}'{hint}")


def list_models(pattern: str = "*"):
    """Sorted names of registered models matching a shell-style pattern."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The pretrained cfg (mean, std, input size, crop_pct, interpolation, ...) of a model."""
    _check_name(name)
    return _CFGS[name]


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, drop_rate: Optional[float] = None,
                 checkpoint_path: Optional[str] = None, drop_path_rate: float = 0.0, act_layer: str = "relu",
                 pretrained=False):
    """Build a registered model; with checkpoint_path, load its weights strictly (names and shapes must fit); with
    pretrained (True or a source name), its published ImageNet weights (fetched and converted once, pretrained.py),
    the classifier re-initialised when num_classes differs. drop_path_rate (stochastic depth) exists for the VoVNets;
    act_layer (relu, mish, silu) for every model."""
    _check_name(name)
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, act_layer=act_layer)
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    if drop_path_rate:
        if name.startswith("vgg"):
            raise MsvisionError(f"drop_path_rate is for the VoVNets (residual blocks); {name} has none: set it to 0")
        kwargs["drop_path_rate"] = drop_path_rate
    net = name_random_layers(_MODELS[name](**kwargs))
    if checkpoint_path or pretrained:
        from msvision.checkpoint import load_weights
        if pretrained:
            from msvision.pretrained import pretrained_checkpoint
            checkpoint_path = pretrained_checkpoint(name, None if pretrained is True else pretrained)
        cfg = _CFGS[name]
        reset = load_weights(net, checkpoint_path, cfg.classifier if pretrained and num_classes != cfg.num_classes
                             else None)
        if reset:
            LOG.info("published weights of %s: classifier re-initialised for %d classes (%s)", name, num_classes,
                     ", ".join(reset))
    return net
