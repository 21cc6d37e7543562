"""Options reach their effect: each test sets non-default values through the config and checks the object the
trainer builds from them (the loss, the optimizer groups, the training draw, the augmentation ops, the checkpoint
writer), so a value dropped on the way from the config fails here even where its formula is tested elsewhere."""
import math
import os
import re

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from msvision import MsvisionError, device
from msvision.config.kwargs import augment_kwargs, split_kwargs, train_loader_kwargs
from msvision.config.options import OPTIONS
from msvision.config.parse import parse_config
from msvision.data.augment import RandomErasing, train_ops
from msvision.data.dataset import open_split
from msvision.data.loaders import preprocessing, train_loader
from msvision.files import WriteFailed
from msvision.train.loop import Trainer
from msvision.weights import io
from tests.conftest import REPO_ROOT, linked_copy, tiny_run

TRAIN_COUNTS = [16, 8, 4, 2]


@pytest.fixture(scope="module")
def long_tail(image_folder, tmp_path_factory):
    """The 4-class folder with 16, 8, 4 and 2 training images per class (hard links to the shared one's files)."""
    root = linked_copy(image_folder, tmp_path_factory.mktemp("long_tail") / "data")
    for label, keep in enumerate(TRAIN_COUNTS):
        for index in range(keep, 16):
            os.remove(os.path.join(root, "train", f"class_{label}", f"{index:03d}.jpg"))
    return str(root)


@pytest.fixture
def trainer(tmp_path, monkeypatch):
    """trainer(data_dir, **options): the Trainer of a tiny run (everything built, nothing trained). MindSpore refuses
    to set the device once a kernel has run in the process (earlier tests run many), so the device setup is the
    process's as it stands; what these tests check (the optimizer, the loss) does not depend on it."""
    monkeypatch.setattr(device, "setup_device", lambda **kwargs: ("CPU", "O0", "the test process's device"))

    def build(data_dir, **options):
        return Trainer(parse_config(tiny_run(data_dir=data_dir, ckpt_save_dir=tmp_path / "run", **options)))

    return build


@pytest.mark.parametrize("sampler,weights", [("uniform", TRAIN_COUNTS), ("class_balanced", [1, 1, 1, 1]),
                                             ("sqrt", np.sqrt(TRAIN_COUNTS))])
def test_sampler_sets_the_class_shares_of_the_training_draw(long_tail, sampler, weights):
    """The labels the training pipeline yields over 20 epochs (600 draws) have the shares the sampler names: class
    c in proportion to n_c (uniform: each image once), 1 (class_balanced) or sqrt(n_c) (sqrt). The three differ by
    0.12 or more in some class; a share's standard deviation over 600 draws is at most 0.02."""
    args = parse_config(tiny_run(data_dir=long_tail, sampler=sampler, batch_size=10, hflip=0))
    loader = train_loader(open_split("train", **split_kwargs(args)), **train_loader_kwargs(args))
    iterator = loader.create_tuple_iterator(num_epochs=20, output_numpy=True)  # iterated once per epoch
    labels = np.concatenate([batch[1] for _ in range(20) for batch in iterator])
    shares = np.bincount(labels, minlength=4) / len(labels)
    expected = np.asarray(weights, np.float64) / np.sum(weights)
    print(f"{sampler}: shares {np.round(shares, 3)}, expected {np.round(expected, 3)}")
    assert len(labels) == 600 and np.abs(shares - expected).max() <= 0.06


def test_head_lr_scale_reaches_the_classifier_group(trainer, image_folder):
    built = trainer(image_folder, head_lr_scale=10, scheduler="constant", lr=0.1, lr_base_batch_size=8)
    params = {p.name: p for p in built.net.trainable_params()}
    head, body = built.optimizer.get_lr_parameter(params["head.fc.weight"]), \
        built.optimizer.get_lr_parameter(params["stem.0.conv.weight"])
    assert np.allclose(body.asnumpy(), 0.1) and np.allclose(head.asnumpy(), 1.0)


def expected_loss(logits, labels, weights, offsets, smoothing):
    """torch's cross_entropy(weight=w, label_smoothing=e) of logits + offsets, written out in float64."""
    z = logits.astype(np.float64) + offsets
    log_p = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    classes = logits.shape[1]
    target = np.full(logits.shape, smoothing / classes)
    target[np.arange(len(labels)), labels] += 1 - smoothing
    per_sample = -(target * weights * log_p).sum(1)
    return per_sample.sum() / weights[labels].sum()


@pytest.mark.parametrize("options", [
    dict(class_weight="effective_number", class_weight_beta=0.9),
    dict(class_weight="inverse", logit_adjust_tau=1.5, label_smoothing=0.1),
])
def test_loss_options_reach_the_trainers_loss(trainer, long_tail, options):
    """The run's loss on given logits equals the formula with the class weights of the training counts (mean 1):
    effective number (1 - beta) / (1 - beta^n_c), or 1 / n_c; logit adjustment tau log(n_c / N) on the logits."""
    built = trainer(long_tail, **options)
    counts = np.array(TRAIN_COUNTS, np.float64)
    if options["class_weight"] == "inverse":
        weights = 1 / counts
    else:
        beta = options["class_weight_beta"]
        weights = (1 - beta) / (1 - beta ** counts)
    weights = weights / weights.mean()
    offsets = options.get("logit_adjust_tau", 0.0) * np.log(counts / counts.sum())
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((12, 4)).astype(np.float32), rng.integers(0, 4, 12)
    loss_fn = built.step.net_with_loss.loss_fn
    ours = float(loss_fn(ms.Tensor(logits), ms.Tensor(labels.astype(np.int32))).asnumpy())
    reference = expected_loss(logits, labels, weights, offsets, options.get("label_smoothing", 0.0))
    assert abs(ours - reference) <= 1e-6 * abs(reference), (ours, reference)


def test_random_erasing_takes_its_options_from_the_config():
    args = parse_config(["--re_prob", "0.7", "--re_ratio", "0.5", "2", "--re_scale", "0.1", "0.2", "--re_count", "3",
                         "--re_value", "random"])
    _, after = train_ops(preprocessing(model="vgg11"), "encoded", **augment_kwargs(args))
    (erasing,) = [op for op in after if isinstance(op, RandomErasing)]
    assert (erasing.prob, tuple(erasing.scale), erasing.value, erasing.count) == (0.7, (0.1, 0.2), "random", 3)
    assert erasing.log_ratio == pytest.approx((math.log(0.5), math.log(2.0)))


@pytest.mark.slow
def test_a_checkpoint_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    """On a 2 MB filesystem a 4 MB checkpoint is refused by the space check: MindSpore's writer is never called
    (a write that fails on the full disk gives the same message, so only this tells the check works)."""
    from tests.test_disk import tmpfs

    calls = []
    real = ms.save_checkpoint
    monkeypatch.setattr(ms, "save_checkpoint", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    with tmpfs(tmp_path / "small", 2) as folder:
        with pytest.raises(WriteFailed, match=r"no space left for .* \(4\.0 MB needed"):
            io.save_atomic(nn.Dense(1024, 1024), os.path.join(folder, "x.ckpt"))
        assert calls == [] and os.listdir(folder) == []


# Defaults that the anchors (MindCV, timm, the papers) set and msvision's recipes assume; a changed default here is a
# changed meaning for every config that leaves the key out.
ANCHOR_DEFAULTS = {
    "htd_lower": -6.0, "htd_upper": 3.0,  # hyperbolic-tangent decay (Hsueh et al. 2019): L = -6, U = 3
    "class_weight_beta": 0.999,  # effective number of samples (Cui et al. 2019), msvision's documented default
    "mixup_prob": 1.0, "mixup_switch_prob": 0.5,  # timm's Mixup
    "re_scale": [0.02, 0.3333], "re_ratio": [0.3, 3.3333], "re_count": 1,  # timm's RandomErasing
    "scale": [0.08, 1.0], "ratio": [0.75, 1.333], "hflip": 0.5,  # random resized crop (MindCV, timm)
    "momentum": 0.9, "ema_decay": 0.9999, "clip_value": 15.0, "lr_base_batch_size": 256,  # MindCV
}


def test_defaults_equal_the_anchors_and_the_readme():
    """The Option table's defaults: the anchors' for the keys above, and every default the README states as
    "`key` (value)" or "`key`, default value"."""
    for name, value in ANCHOR_DEFAULTS.items():
        assert OPTIONS[name].default == pytest.approx(value), name
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    number = r"(-?[\d.]+(?:e-?\d+)?)"
    stated = re.findall(r"`([a-z_]+)` \(" + number + r"\)", readme) + \
        re.findall(r"`([a-z_]+)`,? default " + number, readme)
    checked = {name: float(value) for name, value in stated if name in OPTIONS and
               isinstance(OPTIONS[name].default, (int, float)) and not isinstance(OPTIONS[name].default, bool)}
    assert {"htd_lower", "htd_upper", "class_weight_beta"} <= set(checked), checked
    for name, value in checked.items():
        assert OPTIONS[name].default == pytest.approx(value), (name, value)


def test_sigmoid_loss_options_reach_the_trainers_loss(trainer, long_tail):
    """loss eqlv2 with its gamma, mu and alpha: the run's first-step loss is the formula's (ratio 1 before any
    statistics: negative weight 1 / (1 + exp(-gamma (1 - mu))), positive 1 + alpha (1 - that)), and its statistics
    are checkpoint entries; loss bce with a target threshold: timm's formula on thresholded smoothed targets."""
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((12, 4)).astype(np.float32), rng.integers(0, 4, 12)
    targets = np.eye(4)[labels]
    bce = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    built = trainer(long_tail, loss="eqlv2", eqlv2_gamma=6.0, eqlv2_mu=0.5, eqlv2_alpha=2.0)
    negative = 1 / (1 + np.exp(-6.0 * (1 - 0.5)))
    weights = (1 + 2.0 * (1 - negative)) * targets + negative * (1 - targets)
    ours = float(built.step.net_with_loss.loss_fn(ms.Tensor(logits), ms.Tensor(labels.astype(np.int32))).asnumpy())
    reference = (bce * weights).sum() / len(labels)
    assert abs(ours - reference) <= 1e-6 * reference, (ours, reference)
    assert {"state.eqlv2.pos_grad", "state.eqlv2.neg_grad", "state.eqlv2.collected"} <= \
        {entry["name"] for entry in built.state._entries()}
    built = trainer(long_tail, loss="bce", label_smoothing=0.2, bce_target_thresh=0.1)
    smoothed = np.full((12, 4), 0.2 / 4) + targets * 0.8
    hard = (smoothed > 0.1).astype(np.float64)
    reference = (np.maximum(logits, 0) - logits * hard + np.log1p(np.exp(-np.abs(logits)))).mean()
    ours = float(built.step.net_with_loss.loss_fn(ms.Tensor(logits), ms.Tensor(labels.astype(np.int32))).asnumpy())
    assert abs(ours - reference) <= 1e-6 * reference, (ours, reference)


def test_repvgg_custom_l2_reaches_the_optimizer_and_the_loss(trainer, long_tail):
    """repvgg_custom_l2: the branch kernels leave the decayed groups (the classifier and identity-free parameters
    keep their decay), and the step's loss is the loss plus weight_decay / 2 x the net's custom L2."""
    tiny = '{"num_blocks": [1, 1, 1, 1], "width_multiplier": [0.25, 0.25, 0.25, 0.25]}'
    built = trainer(long_tail, model="repvgg_a0", model_args=tiny, repvgg_custom_l2=True, weight_decay=0.01)
    decay = {p.name: float(d.asnumpy()) for p, d in zip(built.optimizer.parameters, built.optimizer.weight_decay)}
    assert decay["stage1.0.rbr_dense.conv.weight"] == decay["stage1.0.rbr_1x1.conv.weight"] == 0.0
    assert decay["linear.weight"] == np.float32(0.01)
    rng = np.random.default_rng(2)
    images = ms.Tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
    labels = ms.Tensor(np.array([0, 1, 2, 3], np.int32))
    net_with_loss = built.step.net_with_loss
    plain = float(net_with_loss.loss_fn(built.net(images), labels).asnumpy())
    l2 = float(built.net.custom_l2().asnumpy())
    assert abs(float(net_with_loss(images, labels).asnumpy()) - (plain + 0.005 * l2)) <= 1e-6 * (plain + 0.005 * l2)
    with pytest.raises(MsvisionError, match="^repvgg_custom_l2 acts on the branches of a train-form RepVGG; vgg11 "
                                            "has none: set it false$"):
        trainer(long_tail, model="vgg11", repvgg_custom_l2=True)
