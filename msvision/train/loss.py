"""The training loss: cross-entropy (or a sigmoid loss: BCE, EQLv2, see sigmoid_loss.py) with label smoothing,
optional per-class weights and logit adjustment.

Class weights come from the training split's counts n_c and are normalised to mean 1 over the classes:
  inverse 1/n_c, sqrt_inverse 1/sqrt(n_c), effective_number (1 - beta) / (1 - beta^n_c) (Cui et al., 2019).
With integer labels the loss is torch's cross_entropy(weight=w, label_smoothing=e): the weighted mean
sum_i w_{y_i} l_i / sum_i w_{y_i}, whose smoothing term is weighted the same way. With mixed (soft) targets it is
torch's cross_entropy for probability targets: -sum_c w_c t_c log p_c averaged over the batch (targets smoothed
after mixing, which equals mixing smoothed one-hot targets, timm's convention).
Logit adjustment (Menon et al., 2021) adds tau * log(n_c / N) to the logits inside the loss only; evaluation and
export see the network's own logits.
"""
import numpy as np
import mindspore as ms
from mindspore import nn

from msvision.errors import MsvisionError
from msvision.train.sigmoid_loss import EqualizationLossV2, SigmoidLoss


def class_weights(counts, kind, beta=0.999):
    """Per-class loss weights (mean 1 over classes) for class_weight `kind`, or None for 'none'."""
    if kind == "none":
        return None
    counts = np.asarray(counts, np.float64)
    if (counts <= 0).any():
        empty = int(np.flatnonzero(counts <= 0)[0])
        raise MsvisionError(f"class_weight {kind} needs every class's training count, but class {empty} has no "
                            f"training images: add images or use class_weight none")
    if kind == "inverse":
        weights = 1.0 / counts
    elif kind == "sqrt_inverse":
        weights = 1.0 / np.sqrt(counts)
    else:
        weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights * len(weights) / weights.sum()


def logit_offsets(counts, tau):
    """tau * log(prior) per class, the prior being the training split's class frequencies; None when tau is 0."""
    if tau == 0:
        return None
    counts = np.asarray(counts, np.float64)
    if (counts <= 0).any():
        raise MsvisionError("logit_adjust_tau needs every class's training count (log of a zero prior): a class has "
                            "no training images")
    return tau * np.log(counts / counts.sum())


class ClassificationLoss(nn.Cell):
    """loss(logits, labels) with the configured smoothing, class weights and logit offsets."""

    def __init__(self, label_smoothing=0.0, weights=None, offsets=None):
        super().__init__()
        weight = None if weights is None else ms.Tensor(weights, ms.float32)
        self.cross_entropy = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        self.offsets = None if offsets is None else ms.Tensor(offsets.reshape(1, -1), ms.float32)
        self.state = ()  # parameters that are training state (none)

    def construct(self, logits, labels):
        if self.offsets is not None:
            logits = logits + self.offsets
        return self.cross_entropy(logits, labels)


def build_loss(counts, loss="ce", label_smoothing=0.0, class_weight="none", class_weight_beta=0.999,
               logit_adjust_tau=0.0, bce_target_thresh=None, eqlv2_gamma=12.0, eqlv2_mu=0.8, eqlv2_alpha=4.0,
               parallel=False):
    """The loss of a run (counts: training images per class; parallel: a data-parallel run, whose EQLv2 statistics
    are summed over the ranks) and a one-line description of its imbalance settings (None when there are none)."""
    if loss == "eqlv2" and class_weight != "none":
        raise MsvisionError(f"loss eqlv2 weighs each class from its own gradient statistics: class_weight must be "
                            f"none, got '{class_weight}'")
    weights = class_weights(counts, class_weight, class_weight_beta)
    offsets = logit_offsets(counts, logit_adjust_tau)
    parts = [] if loss == "ce" else [_describe_sigmoid(loss, bce_target_thresh, eqlv2_gamma, eqlv2_mu, eqlv2_alpha)]
    if weights is not None:
        beta = f" (beta {class_weight_beta:g})" if class_weight == "effective_number" else ""
        parts.append(f"class_weight {class_weight}{beta}: weights {weights.min():.3g} to {weights.max():.3g} "
                     f"(mean 1; {_listing(weights)})")
    if offsets is not None:
        parts.append(f"logit_adjust_tau {logit_adjust_tau:g}: training logits + {_listing(offsets)}")
    if loss == "eqlv2":
        loss_fn = EqualizationLossV2(len(counts), eqlv2_gamma, eqlv2_mu, eqlv2_alpha, label_smoothing, offsets,
                                     parallel)
    elif loss == "bce":
        loss_fn = SigmoidLoss(len(counts), label_smoothing, bce_target_thresh, weights, offsets)
    else:
        loss_fn = ClassificationLoss(label_smoothing, weights, offsets)
    return loss_fn, "; ".join(parts) or None


def _describe_sigmoid(loss, threshold, gamma, mu, alpha):
    if loss == "eqlv2":
        return f"loss eqlv2 (gamma {gamma:g}, mu {mu:g}, alpha {alpha:g})"
    return "loss bce" + (f" (targets above {threshold:g} -> 1)" if threshold is not None else "")


def _listing(values, limit=10):
    shown = ", ".join(f"{v:.3g}" for v in values[:limit])
    return shown + (f", ... ({len(values)} classes)" if len(values) > limit else "")
