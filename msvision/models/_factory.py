"""create_model: the one place that builds a registered model and loads weights into it."""
import logging
import os
import re

import numpy as np
import mindspore as ms

from msvision.errors import MsvisionError
from msvision.models._registry import get_pretrained_cfg, model_builder
from msvision.models.layers import name_random_layers
from msvision.weights import hub
from msvision.weights.convert import is_pytorch_layout, read_state_dict, to_msvision_names
from msvision.weights.io import ema_weights, load_weights, read_checkpoint, save_atomic

LOG = logging.getLogger("msvision")


def create_model(name, pretrained=False, checkpoint_path=None, num_classes=None, new_classifier=None, use_ema=False,
                 source=None, any_form=False, **model_args):
    """Build a registered model, with weights when asked.

    pretrained: True (the model's first published source) or a source name (torchvision, timm, mindcv, 1e100): its
        published ImageNet weights, fetched, verified and converted once (weights/hub.py).
    checkpoint_path: an msvision or MindCV .ckpt, or a timm / torchvision / 1e100 PyTorch or safetensors file (its
        layout detected from the names unless `source` says it); use_ema: a resume checkpoint's EMA weights.
    num_classes: the classifier's size (default: the weights', else the cfg's). Weights with another number of
        classes load into the rest of the model and a new classifier is initialised when new_classifier is true (the
        default with pretrained); otherwise the mismatch is a one-line error.
    any_form: weights in a family's fused inference form (RepVGG's `rbr_reparam`) build that form (evaluation,
        export); otherwise they are refused unless model_args say deploy=True.
    model_args: the family's arguments (drop_rate, drop_path_rate, act_layer, in_channels; RepVGG's num_blocks,
        width_multiplier, override_groups, deploy).
    A model built with weights says where they came from in `weights_source` (timm, torchvision, 1e100, mindcv or
    msvision).
    """
    cfg = get_pretrained_cfg(name)
    if pretrained and checkpoint_path:
        raise MsvisionError("pretrained and ckpt_path both name initial weights: set one of them")
    if pretrained:
        checkpoint_path = published_checkpoint(name, pretrained)
        new_classifier = True if new_classifier is None else new_classifier
    if not checkpoint_path:
        return _build(name, num_classes or cfg.num_classes, model_args)
    weights, label, source = read_weights(name, checkpoint_path, source, use_ema)
    model_args = form_args(name, weights, label, any_form, model_args)
    classifier = weights.get(cfg.classifier + ".weight")  # the same name in torch's layouts after the filter
    found = int(classifier.shape[0]) if classifier is not None else None
    wanted = num_classes or found or cfg.num_classes
    renew = bool(new_classifier) and found is not None and found != wanted
    net = _build(name, found if renew else wanted, model_args)
    if source not in (None, "mindcv"):  # torch names and shapes -> msvision's
        shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
        weights = {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in to_msvision_names(weights, shapes).items()}
    layout = load_weights(net, weights, source=label)
    net.weights_source = source or layout
    if renew:
        net.reset_classifier(wanted)
        names = ", ".join(sorted(p.name for p in net.get_classifier().get_parameters()))
        LOG.info("%s: %d classes, the model %d: classifier re-initialised (re-initialised: %s)", label, found, wanted,
                 names)
    return net


def published_weights(name, source=True):
    """The PublishedWeights entry `pretrained: source` selects for model `name` (a MsvisionError if there is none)."""
    return hub.select(name, get_pretrained_cfg(name).weights, source)


def published_checkpoint(name, source=True):
    """The path of the msvision checkpoint converted from `name`'s published file (fetched and converted once)."""
    entry = published_weights(name, source)

    def convert(raw_path, checkpoint_path):
        save_atomic(create_model(name, checkpoint_path=raw_path, source=entry.source), checkpoint_path)

    return hub.converted_checkpoint(name, entry, convert)


def msvision_state_dict(name, state_dict, source, shapes, dtype=np.float32):
    """A torch state dict (or any torch-named arrays, e.g. gradients) of model `name` in the layout of `source` as
    {msvision parameter name: array}; shapes: {name: shape} of the model's parameters."""
    return to_msvision_names(_module_paths(name, state_dict, source), shapes, dtype)


def _module_paths(name, state_dict, source):
    """The family's filter: torch names -> msvision module paths (torch leaves)."""
    filter_fn = get_pretrained_cfg(name).filter_fn
    return filter_fn(state_dict, source, name) if filter_fn else dict(state_dict)


def read_weights(name, path, source=None, use_ema=False):
    """(weights, a label for messages, the PyTorch layout or None) of a weights file for model `name`: a MindSpore
    checkpoint's entries, or a PyTorch file's arrays under msvision's module paths (torch leaves)."""
    if not path or not os.path.isfile(path):
        raise MsvisionError(f"checkpoint not found: '{path}' (expected an existing .ckpt file)")
    if not is_pytorch_layout(path):
        ckpt = read_checkpoint(path)
        weights = ema_weights(ckpt, path) if use_ema else ckpt
        renamed = _module_paths(name, weights, "mindcv")  # a family's MindCV names (RepVGG's), else unchanged
        return (renamed, path, "mindcv") if set(renamed) != set(weights) else (weights, path, None)
    if use_ema:
        raise MsvisionError(f"'{path}' is a PyTorch file: EMA weights are read from msvision resume checkpoints")
    state_dict, source = read_state_dict(path, source)
    return _module_paths(name, state_dict, source), f"'{path}' (as {name})", source


def form_args(name, weight_names, label, any_form=False, model_args=None):
    """model_args with deploy=True when the weights hold the family's fused form and any form is accepted (a
    MsvisionError when it is not)."""
    model_args = model_args or {}
    fused_form = get_pretrained_cfg(name).fused_form
    if not fused_form or not fused_form(weight_names) or model_args.get("deploy"):
        return model_args
    if not any_form:
        raise MsvisionError(f"{label} holds the fused (deploy) form of {name}, which has no branches to train: "
                            f"train from a train-form checkpoint (validate.py, infer.py and export.py take either)")
    return dict(model_args, deploy=True)


def _build(name, num_classes, model_args):
    try:
        net = model_builder(name)(num_classes=num_classes, **model_args)
    except TypeError as err:  # an argument the family does not take
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if not unknown:
            raise
        raise MsvisionError(f"unknown model argument '{unknown[1]}' for {name}") from None
    return name_random_layers(net)
