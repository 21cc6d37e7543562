"""The sigmoid losses against hand-written PyTorch references of their formulas: timm's binary cross-entropy
(smoothing, target threshold) and Equalization Loss v2 over several steps (its accumulated gradient statistics)."""
import numpy as np
import mindspore as ms
import pytest

from msvision import MsvisionError
from msvision.train.loss import build_loss

COUNTS = np.array([40, 20, 8, 3, 1])


class TorchEQLv2:
    """The paper's EQLv2 for classification, as its authors' code computes it (float64)."""

    def __init__(self, torch, num_classes, gamma=12.0, mu=0.8, alpha=4.0):
        self.torch, self.gamma, self.mu, self.alpha = torch, gamma, mu, alpha
        self.pos = torch.zeros(num_classes, dtype=torch.float64)
        self.neg = torch.zeros(num_classes, dtype=torch.float64)
        self.pos_neg = torch.ones(num_classes, dtype=torch.float64)

    def __call__(self, logits, targets):
        torch = self.torch
        neg_w = 1.0 / (1.0 + torch.exp(-self.gamma * (self.pos_neg - self.mu)))
        pos_w = 1.0 + self.alpha * (1.0 - neg_w)
        weight = pos_w[None] * targets + neg_w[None] * (1.0 - targets)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        loss = (bce * weight).sum() / logits.shape[0]
        prob = torch.sigmoid(logits.detach())
        grad = torch.abs(targets * (prob - 1.0) + (1.0 - targets) * prob)
        self.pos += (grad * targets * weight).sum(0)
        self.neg += (grad * (1.0 - targets) * weight).sum(0)
        self.pos_neg = self.pos / (self.neg + 1e-10)
        return loss


def _steps(rng, steps=4, batch=8):
    classes = len(COUNTS)
    for _ in range(steps):
        labels = rng.choice(classes, size=batch, p=COUNTS / COUNTS.sum())
        yield rng.normal(0.0, 2.0, (batch, classes)).astype(np.float32), labels.astype(np.int32)


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_eqlv2_equals_the_papers_formulas_over_steps(mode, torch_reference):
    """Loss and d loss / d logits of four consecutive steps (the statistics of each step weigh the next) against
    the reference in float64; then the statistics themselves."""
    torch = torch_reference[0]
    ms.set_context(mode=mode)
    loss_fn, note = build_loss(COUNTS, loss="eqlv2")
    assert note == "loss eqlv2 (gamma 12, mu 0.8, alpha 4)"
    value_and_grad = ms.value_and_grad(loss_fn, grad_position=0)
    reference = TorchEQLv2(torch, len(COUNTS))
    worst = 0.0
    for logits, labels in _steps(np.random.default_rng(0)):
        loss, grad = value_and_grad(ms.Tensor(logits), ms.Tensor(labels))
        loss_fn.statistics()  # what the train step does after the backward
        expected_logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        targets = torch.nn.functional.one_hot(torch.tensor(labels, dtype=torch.int64), len(COUNTS)).double()
        expected = reference(expected_logits, targets)
        expected.backward()
        worst = max(worst, abs(float(loss.asnumpy()) - expected.item()) / expected.item(),
                    float(np.abs(grad.asnumpy() - expected_logits.grad.numpy()).max()
                          / expected_logits.grad.abs().max()))
    print(f"EQLv2 vs the float64 reference over 4 steps: {worst:.2e}")
    assert worst <= 2e-6
    pos, neg = loss_fn.statistics.pos_grad.asnumpy(), loss_fn.statistics.neg_grad.asnumpy()
    assert np.abs(pos - reference.pos.numpy()).max() <= 2e-6 * reference.pos.abs().max()
    assert np.abs(neg - reference.neg.numpy()).max() <= 2e-6 * reference.neg.abs().max()
    ratio = pos / neg  # the rarest class saw fewest positives: its negatives are suppressed most
    assert ratio.argmin() == len(COUNTS) - 1 or pos[-1] == 0


def test_bce_equals_timms_binary_cross_entropy(torch_reference):
    """loss bce with smoothing 0.1 and a target threshold against timm's BinaryCrossEntropy."""
    torch, timm, _ = torch_reference
    from timm.loss import BinaryCrossEntropy

    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, (6, len(COUNTS))).astype(np.float32)
    labels = rng.integers(0, len(COUNTS), 6).astype(np.int32)
    for threshold in (None, 0.2):
        loss_fn, _ = build_loss(COUNTS, loss="bce", label_smoothing=0.1, bce_target_thresh=threshold)
        ours = float(loss_fn(ms.Tensor(logits), ms.Tensor(labels)).asnumpy())
        theirs = float(BinaryCrossEntropy(smoothing=0.1, target_threshold=threshold)(
            torch.tensor(logits, dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)))
        assert abs(ours - theirs) <= 1e-6 * abs(theirs), threshold


def test_eqlv2_with_class_weights_is_refused():
    with pytest.raises(MsvisionError, match="loss eqlv2 weighs each class from its own gradient statistics: "
                                            "class_weight must be none, got 'inverse'"):
        build_loss(COUNTS, loss="eqlv2", class_weight="inverse")
