"""Mixup and CutMix on whole batches, as timm's Mixup (mode 'batch'), keyed by the batch's place in the run.

Per batch, with its own generator seeded from (seed, epoch, position of its first sample): with probability
mixup_prob the batch is mixed; when both mixup and cutmix are on, cutmix with probability mixup_switch_prob; lam is
drawn from Beta(alpha, alpha); each image is mixed with the image at the mirrored place in the batch (the batch
reversed), cutmix pasting a box of area 1 - lam and correcting lam to the box as clipped. The draws come in timm's
order, so for the same generator state the result equals timm's. From epoch mixup_off_epoch on (0-based, as timm's
train loop; 0 = never off) batches are not mixed. Targets are mixed one-hot vectors; label smoothing is applied by
the loss to the mixed target, which equals timm's mixing of smoothed targets (smoothing is linear).
"""
import numpy as np


class BatchMixing:
    """(images NCHW, labels, sample ids) -> (mixed images, mixed one-hot targets float32)."""

    def __init__(self, ids, num_classes, seed, mixup=0.0, cutmix=0.0, prob=1.0, switch_prob=0.5, off_epoch=0):
        """ids: the epoch order's sample ids (the keys); mixup, cutmix: Beta alphas (0 = off); prob, switch_prob,
        off_epoch: timm's mixup_prob, switch_prob and the epoch from which no batch is mixed (0 = never off)."""
        self.mixup, self.cutmix = mixup, cutmix
        self.prob, self.switch_prob, self.off_epoch = prob, switch_prob, off_epoch
        self.num_classes, self.seed, self.ids = num_classes, seed, ids

    def params(self, rng):
        """(lam, use_cutmix) for one batch, drawn in timm's order."""
        if rng.rand() >= self.prob:
            return 1.0, False
        if self.mixup > 0 and self.cutmix > 0:
            use_cutmix = rng.rand() < self.switch_prob
            alpha = self.cutmix if use_cutmix else self.mixup
        else:
            use_cutmix = self.cutmix > 0
            alpha = self.cutmix if use_cutmix else self.mixup
        return float(rng.beta(alpha, alpha)), use_cutmix

    @staticmethod
    def box(rng, height, width, lam):
        """CutMix box (top, bottom, left, right) of area about 1 - lam, centred at a uniform point, clipped."""
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = rng.randint(0, height), rng.randint(0, width)
        return (np.clip(cy - cut_h // 2, 0, height), np.clip(cy + (cut_h + 1) // 2, 0, height),
                np.clip(cx - cut_w // 2, 0, width), np.clip(cx + (cut_w + 1) // 2, 0, width))

    def mix(self, images, targets, rng):
        lam, use_cutmix = self.params(rng)
        if lam == 1.0:
            return images, targets
        images = images.copy()
        if use_cutmix:
            top, bottom, left, right = self.box(rng, images.shape[2], images.shape[3], lam)
            images[:, :, top:bottom, left:right] = images[::-1, :, top:bottom, left:right].copy()
            lam = 1.0 - (bottom - top) * (right - left) / float(images.shape[2] * images.shape[3])
        else:
            images = images * lam + images[::-1] * (1.0 - lam)
        return images.astype(np.float32), (targets * lam + targets[::-1] * (1.0 - lam)).astype(np.float32)

    def __call__(self, images, labels, sample_ids):
        targets = np.eye(self.num_classes, dtype=np.float32)[labels]
        epoch, position, _ = self.ids.decode(sample_ids[0])
        if self.off_epoch and epoch >= self.off_epoch:
            return images, targets
        rng = np.random.RandomState(np.random.SeedSequence([self.seed, epoch, position, 1]).generate_state(1)[0])
        return self.mix(images, targets, rng)
