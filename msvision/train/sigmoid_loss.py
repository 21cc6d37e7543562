"""Sigmoid (one-vs-all) losses: timm's binary cross-entropy and Equalization Loss v2 (Tan et al., CVPR 2021) for
classification.

Targets are one-hot (or the mixed targets of mixup / CutMix), smoothed as timm's BinaryCrossEntropy does: off value
e / C, on value 1 - e + e / C; with a target threshold, targets above it become 1 and the others 0.

EQLv2 weighs each class's positive and negative terms by the ratio r_c of the positive to the negative gradient
magnitude it has received so far: negative weight f(r_c) = 1 / (1 + exp(-gamma (r_c - mu))), positive weight
1 + alpha (1 - f(r_c)); loss = sum over images and classes of weight x BCE, divided by the number of images. After
each forward the step's own |d loss / d logit| (times its weights) is added to the accumulated positive and negative
gradients of each class (summed over the ranks of a data-parallel run), so rare classes, whose positives are
outweighed by the negatives they receive from every other image, get their negatives suppressed. Before any gradient
is accumulated r_c is 1, as in the paper's code. The accumulated gradients are training state: they live in
Parameters named state.eqlv2.*, saved in and restored from resume checkpoints.
"""
import mindspore as ms
from mindspore import nn, ops


class SigmoidLoss(nn.Cell):
    """Binary cross-entropy with logits over all classes (timm's BinaryCrossEntropy, mean over images and classes);
    class_weights (C) scale each class's terms."""

    def __init__(self, num_classes, label_smoothing=0.0, target_threshold=None, class_weights=None, offsets=None):
        super().__init__(auto_prefix=False)  # the statistics keep their state.* names
        self.num_classes = num_classes
        self.off_value = label_smoothing / num_classes
        self.on_value = 1.0 - label_smoothing + self.off_value
        self.threshold = target_threshold
        self.class_weights = None if class_weights is None else ms.Tensor(class_weights.reshape(1, -1), ms.float32)
        self.offsets = None if offsets is None else ms.Tensor(offsets.reshape(1, -1), ms.float32)
        self.state = ()  # parameters that are training state (none)

    def targets(self, logits, labels):
        """Dense targets: smoothed one-hot for integer labels, mixed targets as they come; thresholded if asked."""
        if labels.ndim == 1:
            targets = ops.one_hot(labels, self.num_classes, ms.Tensor(self.on_value, ms.float32),
                                  ms.Tensor(self.off_value, ms.float32))
        else:
            targets = labels.astype(ms.float32)
        if self.threshold is not None:
            targets = (targets > self.threshold).astype(ms.float32)
        return targets

    def elementwise(self, logits, targets):
        """BCE with logits per image and class: max(x, 0) - x t + log(1 + exp(-|x|))."""
        return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))

    def construct(self, logits, labels):
        if self.offsets is not None:
            logits = logits + self.offsets
        losses = self.elementwise(logits, self.targets(logits, labels))
        if self.class_weights is not None:
            losses = losses * self.class_weights
        return losses.mean()


class GradientStatistics(nn.Cell):
    """EQLv2's accumulated positive and negative gradient per class. The loss's forward leaves its step's part in
    `pending`; the train step adds it with commit() after the backward, summed over the ranks of a data-parallel run
    (an all-reduce outside the differentiated graph, as the gradient reducer's)."""

    def __init__(self, num_classes, parallel=False):
        super().__init__()
        zeros = ms.Tensor([0.0] * num_classes, ms.float32)
        self.pos_grad = ms.Parameter(zeros, name="state.eqlv2.pos_grad", requires_grad=False)
        self.neg_grad = ms.Parameter(zeros.copy(), name="state.eqlv2.neg_grad", requires_grad=False)
        self.collected = ms.Parameter(ms.Tensor(0.0, ms.float32), name="state.eqlv2.collected", requires_grad=False)
        self.pending_pos = ms.Parameter(zeros.copy(), name="pending.eqlv2.pos", requires_grad=False)
        self.pending_neg = ms.Parameter(zeros.copy(), name="pending.eqlv2.neg", requires_grad=False)
        self.all_reduce = ops.AllReduce() if parallel else None

    def construct(self):
        pos, neg = self.pending_pos * 1, self.pending_neg * 1
        if self.all_reduce is not None:
            pos, neg = self.all_reduce(pos), self.all_reduce(neg)
        return (ops.assign_add(self.pos_grad, pos), ops.assign_add(self.neg_grad, neg),
                ops.assign(self.collected, ops.ones_like(self.collected)))


class EqualizationLossV2(SigmoidLoss):
    """EQLv2 for classification (no background column); gamma, mu, alpha as in the paper (12, 0.8, 4)."""

    def __init__(self, num_classes, gamma=12.0, mu=0.8, alpha=4.0, label_smoothing=0.0, offsets=None,
                 parallel=False):
        super().__init__(num_classes, label_smoothing, None, None, offsets)
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        self.statistics = GradientStatistics(num_classes, parallel)
        self.state = tuple(p for p in self.statistics.get_parameters() if p.name.startswith("state."))

    def class_weights_now(self):
        """(positive, negative) weights per class from the gradients accumulated so far."""
        stats = self.statistics
        ratio = stats.pos_grad / (stats.neg_grad + 1e-10)
        ratio = stats.collected * ratio + (1.0 - stats.collected) * ops.ones_like(ratio)
        negative = ops.sigmoid(self.gamma * (ratio - self.mu))
        return 1.0 + self.alpha * (1.0 - negative), negative

    def construct(self, logits, labels):
        if self.offsets is not None:
            logits = logits + self.offsets
        targets = self.targets(logits, labels)
        positive, negative = self.class_weights_now()
        weights = positive.reshape(1, -1) * targets + negative.reshape(1, -1) * (1.0 - targets)
        loss = (self.elementwise(logits, targets) * weights).sum() / logits.shape[0]
        # this step's gradient magnitudes |sigmoid(x) - t| (times the weights), split by target, per class
        magnitude = ops.abs(ops.sigmoid(ops.stop_gradient(logits)) - targets) * ops.stop_gradient(weights)
        updates = (ops.assign(self.statistics.pending_pos, (magnitude * targets).sum(axis=0)),
                   ops.assign(self.statistics.pending_neg, (magnitude * (1.0 - targets)).sum(axis=0)))
        return ops.depend(loss, updates)
