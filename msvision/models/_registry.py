"""Model registry: @register_model, list_models and each model's pretrained cfg (preprocessing, published weights,
the family's filter for other parameter layouts)."""
import dataclasses
import difflib
import fnmatch
from typing import Callable, Dict, Optional, Tuple

from msvision.errors import MsvisionError
from msvision.weights.hub import PublishedWeights

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
    classifier: str = ""  # the classifier's module path (its weight is <classifier>.weight)
    source: str = ""  # where the architecture comes from: timm, torchvision or 1e100
    weights: Tuple[PublishedWeights, ...] = ()  # published ImageNet weights, the default first
    # (torch state dict, source, model name) -> the same weights under msvision's module paths (torch leaves)
    filter_fn: Optional[Callable] = None
    # (weight names) -> True when they hold the family's fused inference form (RepVGG); None: one form only
    fused_form: Optional[Callable] = None


_MODELS: Dict[str, Callable] = {}
_CFGS: Dict[str, PretrainedCfg] = {}


def register_model(cfg: PretrainedCfg, weights=()):
    """Register a model builder under its function name with its pretrained cfg and published weights."""
    def wrap(fn):
        _MODELS[fn.__name__] = fn
        _CFGS[fn.__name__] = dataclasses.replace(cfg, weights=tuple(weights))
        return fn
    return wrap


def model_builder(name: str) -> Callable:
    """The registered builder of `name` (a MsvisionError with close names when unknown)."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_MODELS))}"
        raise MsvisionError(f"unknown model '{name}'{hint}")
    return _MODELS[name]


def list_models(pattern: str = "*"):
    """Sorted names of registered models matching a shell-style pattern."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The pretrained cfg (mean, std, input size, crop_pct, interpolation, weights, ...) of a model."""
    model_builder(name)
    return _CFGS[name]
