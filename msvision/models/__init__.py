"""Model zoo: importing the family modules registers their models."""
from msvision.models import repvgg, vgg, vovnet  # noqa: F401  (registration side effect)
from msvision.models._factory import create_model, form_args, published_checkpoint, published_weights
from msvision.models.reparam import reparameterize
from msvision.models._registry import PretrainedCfg, get_pretrained_cfg, list_models, register_model

__all__ = ["create_model", "list_models", "get_pretrained_cfg", "register_model", "PretrainedCfg",
           "published_checkpoint", "published_weights", "reparameterize", "form_args"]
