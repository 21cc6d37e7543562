"""Own data: class-weighted draws, class weights and logit adjustment against PyTorch, freezing, head LR."""

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.weights.io import read_checkpoint
from msvision.weights.manager import CheckpointManager
from msvision.config.parse import parse_config
from msvision.data.dataset import EpochOrder, epoch_draw, rank_order
from msvision.config.kwargs import optimizer_kwargs
from msvision.optim.factory import create_optimizer
from msvision.train.loss import ClassificationLoss, class_weights, logit_offsets
from tests.conftest import tiny_run
from tests.conftest import run_cli

# 4 classes of 200, 50, 10 and 2 images, not grouped by label (as an index of several folders never is)
LABELS = np.random.default_rng(5).permutation(np.repeat(np.arange(4), [200, 50, 10, 2]))


@pytest.mark.parametrize("power", [0.0, 0.5])
def test_class_draw_follows_n_to_the_power_q(power):
    """Over 400 epochs (104,800 draws) each class's share is within 5 binomial standard deviations of
    n_c^q / sum n^q, and each image within its class is drawn uniformly (within 5 standard deviations)."""
    epochs, n = 400, len(LABELS)
    draws = np.concatenate([epoch_draw(n, e, seed=3, shuffle=True, labels=LABELS, power=power) for e in range(epochs)])
    assert len(draws) == epochs * n  # each epoch draws as many items as the split holds
    counts = np.array([200, 50, 10, 2], np.float64)
    expected = counts ** power / (counts ** power).sum()
    drawn_classes = np.bincount(LABELS[draws], minlength=4)
    sigma = np.sqrt(len(draws) * expected * (1 - expected))
    deviation = np.abs(drawn_classes - len(draws) * expected) / sigma
    print(f"q={power}: class shares {np.round(drawn_classes / len(draws), 4)} vs {np.round(expected, 4)}; "
          f"worst {deviation.max():.2f} sigma")
    assert deviation.max() < 5
    for label in range(4):  # uniform within the class
        members = np.flatnonzero(LABELS == label)
        per_item = np.bincount(draws[LABELS[draws] == label], minlength=n)[members]
        mean = drawn_classes[label] / len(members)
        assert np.abs(per_item - mean).max() < 5 * np.sqrt(mean * (1 - 1 / len(members))) + 1


def test_draw_is_seeded_by_seed_and_epoch_and_uniform_is_a_permutation():
    first = epoch_draw(len(LABELS), 7, 3, True, LABELS, 0.0)
    assert np.array_equal(first, epoch_draw(len(LABELS), 7, 3, True, LABELS, 0.0))
    assert not np.array_equal(first, epoch_draw(len(LABELS), 8, 3, True, LABELS, 0.0))
    assert not np.array_equal(first, epoch_draw(len(LABELS), 7, 4, True, LABELS, 0.0))
    assert len(set(first.tolist())) < len(LABELS)  # with replacement: tail images repeat
    assert sorted(epoch_draw(len(LABELS), 7, 3, True).tolist()) == list(range(len(LABELS)))


def test_ranks_split_the_draw_by_position_and_resume_continues_it():
    n = len(LABELS)  # 262: odd per-rank padding with 4 ranks
    draw = epoch_draw(n, 2, 3, True, LABELS, 0.5)
    shards = [rank_order(n, 2, 3, True, 4, r, labels=LABELS, power=0.5) for r in range(4)]
    per_rank = -(-n // 4)
    padded = np.resize(draw, per_rank * 4)
    for rank, (positions, items) in enumerate(shards):  # rank r holds positions r, r+4, ... of the one draw
        assert np.array_equal(positions, np.arange(rank, per_rank * 4, 4)) and np.array_equal(items, padded[rank::4])
    assert sorted(np.concatenate([p for p, _ in shards]).tolist()) == list(range(per_rank * 4))  # disjoint, whole
    # a resumed epoch (EpochOrder, the run's sampler) continues the same draw, and the next epoch is whole
    order = EpochOrder(n, 3, True, 4, 1, first_epoch=2, skip=17, labels=LABELS, power=0.5)
    decoded = [order.ids.decode(i) for i in iter(order)]
    assert decoded == [(2, p, i) for p, i in zip(shards[1][0][17:].tolist(), shards[1][1][17:].tolist())]
    positions, items = rank_order(n, 3, 3, True, 4, 1, labels=LABELS, power=0.5)
    assert [order.ids.decode(i) for i in iter(order)] == [(3, p, i) for p, i in zip(positions.tolist(),
                                                                                    items.tolist())]


def test_class_weights_by_hand():
    assert np.allclose(class_weights([100, 10, 1], "inverse"), [3 * 0.01 / 1.11, 3 * 0.1 / 1.11, 3 * 1 / 1.11])
    assert np.allclose(class_weights([100, 25, 4], "sqrt_inverse"), np.array([0.1, 0.2, 0.5]) * 3 / 0.8)
    # (1 - 0.9) / (1 - 0.9^n) for n = 1, 10, 100: 1, 0.153535, 0.100003
    effective = np.array([1.0, 0.1 / (1 - 0.9 ** 10), 0.1 / (1 - 0.9 ** 100)])
    assert np.allclose(class_weights([1, 10, 100], "effective_number", 0.9), effective * 3 / effective.sum())
    assert class_weights([5, 6], "none") is None
    assert np.allclose(logit_offsets([30, 10], 2.0), [2 * np.log(0.75), 2 * np.log(0.25)])
    with pytest.raises(msvision.MsvisionError, match="class 1 has no training images"):
        class_weights([4, 0, 3], "inverse")


@pytest.mark.parametrize("kind", ["none", "inverse", "sqrt_inverse", "effective_number"])
@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_loss_equals_pytorch(torch_reference, kind, tau):
    """Integer labels and mixed (soft) targets, label smoothing 0.1, in GRAPH mode: relative difference <= 1e-6
    (measured <= 2.1e-7)."""
    torch = torch_reference[0]
    rng = np.random.default_rng(0)
    counts = np.array([100, 50, 20, 10, 5, 3, 1])
    logits = (rng.standard_normal((16, 7)) * 3).astype(np.float32)
    labels = rng.integers(0, 7, 16).astype(np.int32)
    soft = (0.7 * np.eye(7)[labels] + 0.3 * np.eye(7)[np.roll(labels, 1)]).astype(np.float32)
    weights, offsets = class_weights(counts, kind, 0.99), logit_offsets(counts, tau)
    loss = ClassificationLoss(0.1, weights, offsets)
    adjusted = torch.tensor(logits, dtype=torch.float64) + (0.0 if offsets is None else torch.tensor(offsets))
    weight = None if weights is None else torch.tensor(weights)
    for target, torch_target in ((labels, torch.tensor(labels, dtype=torch.long)), (soft, torch.tensor(soft).double())):
        ours = float(loss(ms.Tensor(logits), ms.Tensor(target)).asnumpy())
        reference = torch.nn.functional.cross_entropy(adjusted, torch_target, weight=weight, label_smoothing=0.1).item()
        assert abs(ours - reference) <= 1e-6 * abs(reference), (target.dtype, ours, reference)


def test_head_lr_scale_multiplies_the_classifier_step_only():
    """One momentum step with unit gradients moves every parameter by lr, the classifier by lr x head_lr_scale."""
    args = parse_config(["--model", "ese_vovnet19b_slim_dw", "--head_lr_scale", "10", "--weight_decay", "0"])
    net = msvision.create_model(args.model, num_classes=4)
    params = net.trainable_params()
    before = {p.name: p.asnumpy().copy() for p in params}
    optimizer = create_optimizer(params, lr=np.full(3, 0.01, np.float32), head_prefix="head.fc",
                                 **optimizer_kwargs(args))
    optimizer(tuple(ms.Tensor(np.ones(p.shape, np.float32)) for p in params))
    moved = {p.name: float(np.abs(before[p.name] - p.asnumpy()).max()) for p in params}
    assert moved.pop("head.fc.weight") == pytest.approx(0.1, rel=1e-5)
    assert moved.pop("head.fc.bias") == pytest.approx(0.1, rel=1e-5)
    assert all(value == pytest.approx(0.01, rel=1e-5) for value in moved.values())


SMALL = tiny_run(val_while_train=False, lr=0.5, lr_base_batch_size=8)


@pytest.mark.slow
def test_frozen_stages_keep_weights_and_statistics_through_training_and_resume(tmp_path, image_folder):
    ms.set_seed(11)
    init = str(tmp_path / "init.ckpt")
    ms.save_checkpoint(msvision.create_model("ese_vovnet19b_slim_dw", num_classes=4), init)
    run = tmp_path / "run"
    out = run_cli(["train.py", "--data_dir", image_folder, "--epoch_size", "1", "--ckpt_path", init, "--freeze", "2",
                   "--head_lr_scale", "10", "--ckpt_save_dir", run] + SMALL).stdout
    assert "of 1,386,804 parameters train (freeze 2:" in out
    run_cli(["train.py", "--data_dir", image_folder, "--epoch_size", "2", "--resume", "auto", "--ckpt_save_dir",
             run] + SMALL)  # freeze and head_lr_scale come back from the checkpoint's config
    start = {k: v.asnumpy() for k, v in read_checkpoint(init).items()}
    end = read_checkpoint(CheckpointManager(str(run), "", 1, "latest_k").latest())
    frozen = [k for k in start if k.startswith(("stem.", "stages.0.", "stages.1."))]
    trained = [k for k in start if k not in frozen]
    assert any(k.endswith("moving_mean") for k in frozen) and any(k.endswith("moving_mean") for k in trained)
    for key in frozen:  # weights and BatchNorm statistics: bit-identical
        assert np.array_equal(end[key].asnumpy(), start[key]), key
    assert all(not np.array_equal(end[k].asnumpy(), start[k]) for k in ("head.fc.weight", "stages.3.blocks.0."
                                                                        "conv_concat.bn.moving_mean"))
    # no optimizer state for frozen parameters, state for every trained one
    assert not [k for k in end if k.startswith("optim.moments.") and k[len("optim.moments."):] in frozen]
    assert {f"optim.moments.{k}" for k in trained if not k.endswith(("moving_mean", "moving_variance"))} <= set(end)
