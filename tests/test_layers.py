"""Keyed dropout and drop path (masks recomputed here from their definition), timm's drop path placement,
activations against torch's functions, and frozen stages without stochastic layers."""
import zlib

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.models.layers import RNG_COUNTER, RNG_SEED, KeyedDropout, KeyedDropPath, to_int32

def hash32(x):
    """The keyed layers' integer mix, in NumPy uint32 arithmetic (products wrap modulo 2^32, shifts logical)."""
    x = np.atleast_1d(np.asarray(x, np.uint32))
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x5BD1E995)
    return x ^ (x >> np.uint32(16))


def uniform(shape, counter, salt, seed_key=0):
    """Uniform [0, 1) on the 2^-24 grid: the top 24 bits of hash(hash(index) ^ key)."""
    key = hash32(hash32(np.uint32(counter) ^ np.uint32(seed_key)) ^ np.int64(salt).astype(np.uint32))
    bits = hash32(hash32(np.arange(np.prod(shape), dtype=np.uint32)) ^ key)
    return ((bits >> np.uint32(8)) / 2.0 ** 24).reshape(shape)


@pytest.mark.parametrize("layer,shape", [(KeyedDropPath, (8, 1, 1, 1)), (KeyedDropout, (8, 3, 5, 5))])
def test_masks_and_scaling_equal_a_direct_computation(layer, shape):
    """Per-sample (drop path) or per-element (dropout) masks: kept values scaled by 1 / (1 - p), the rest 0, the
    mask a function of the step counter and the layer's salt only; identity in eval mode."""
    cell = layer(0.4)
    cell.salt = to_int32(zlib.crc32(b"stages.1.blocks.0.drop_path"))
    cell.set_train(True)
    x = np.random.default_rng(0).standard_normal((8, 3, 5, 5)).astype(np.float32) + 3
    outputs = []
    RNG_SEED.set_data(ms.Tensor(0, ms.int32))
    for counter in (17, 17, 18):
        RNG_COUNTER.set_data(ms.Tensor(counter, ms.int32))
        outputs.append(cell(ms.Tensor(x)).asnumpy())
        keep = np.broadcast_to(uniform(shape, counter, cell.salt) >= 0.4, x.shape)
        np.testing.assert_allclose(outputs[-1], np.where(keep, x / 0.6, 0.0), rtol=1e-6)
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    dropped = (outputs[0] == 0).reshape(8, -1).mean(1)
    assert 0 < (outputs[0] == 0).mean() < 1
    if layer is KeyedDropPath:
        assert set(dropped.tolist()) <= {0.0, 1.0}  # whole samples
    cell.set_train(False)
    assert np.array_equal(cell(ms.Tensor(x)).asnumpy(), x)


def test_masks_are_independent_across_layers_ranks_steps_and_seeds():
    """Dropout masks (p = 0.5, 64 x 512 units) of two layers, two ranks, consecutive micro-batches and two seeds, at
    the counters the trainer sets (seek_keyed_random): each keeps half the units and any two agree on half of them,
    within 4.5 standard deviations (0.5 / sqrt(32768) = 0.0028 each): a mask shared or correlated between layers,
    ranks, steps or seeds fails. Eight consecutive steps also keep each unit 4 times out of 8 on average with the
    binomial spread (variance 2 within 20%)."""
    from msvision.models.layers import seek_keyed_random

    def mask(salt, seed, micro_batch, rank, world=2):
        seek_keyed_random(seed, micro_batch, world, rank)
        cell = KeyedDropout(0.5)
        cell.salt = salt
        cell.set_train(True)
        return cell(ms.Tensor(np.ones((64, 512), np.float32))).asnumpy() > 0

    salts = to_int32(zlib.crc32(b"pre_logits.drop")), to_int32(zlib.crc32(b"head.drop"))
    base = mask(salts[0], 42, 10, 0)
    others = {"layer": mask(salts[1], 42, 10, 0), "rank": mask(salts[0], 42, 10, 1),
              "step": mask(salts[0], 42, 11, 0), "seed": mask(salts[0], 43, 10, 0)}
    bound = 4.5 * 0.5 / np.sqrt(base.size)
    assert abs(base.mean() - 0.5) < bound
    for what, other in others.items():
        assert abs(other.mean() - 0.5) < bound, what
        assert abs((other == base).mean() - 0.5) < bound, what
    kept = sum(mask(salts[0], 42, step, 0).astype(int) for step in range(8))
    assert abs(kept.mean() - 4.0) < 4.5 * np.sqrt(2.0 / kept.size) and 1.6 < kept.var() < 2.4


def test_drop_path_rates_and_places_follow_timm(torch_reference):
    torch, timm, _ = torch_reference
    for name in ("ese_vovnet39b", "ese_vovnet19b_dw"):
        reference = timm.create_model(name, drop_path_rate=0.2)
        expected = [m.drop_prob for m in reference.modules() if type(m).__name__ == "DropPath"]
        ours = [cell.p for _, cell in msvision.create_model(name, drop_path_rate=0.2).cells_and_names()
                if isinstance(cell, KeyedDropPath)]
        assert ours == pytest.approx(expected) and len(ours) == len(expected) > 0
    with pytest.raises(msvision.MsvisionError, match="drop_path_rate is for the VoVNets"):
        msvision.create_model("vgg11", drop_path_rate=0.1)


@pytest.mark.parametrize("act", ["mish", "silu"])
def test_activations_equal_torch(torch_reference, act):
    torch = torch_reference[0]
    from msvision.models.layers import ACTIVATIONS

    x = np.concatenate([np.linspace(-8, 8, 1001), [-1000, -60, 55, 89, 1000]]).astype(np.float32)  # large too
    ours = ACTIVATIONS[act]()(ms.Tensor(x)).asnumpy()
    reference = getattr(torch.nn.functional, act)(torch.tensor(x, dtype=torch.float64)).numpy()
    assert np.abs(ours - reference).max() <= 2e-6 * np.abs(reference).max()


def test_frozen_stages_have_no_stochastic_layers():
    from msvision.config.kwargs import model_kwargs
    from msvision.config.parse import parse_config
    from msvision.train.model import build_model

    net = build_model(**model_kwargs(parse_config(["--model", "ese_vovnet39b", "--num_classes", "4",
                                                   "--drop_path_rate", "0.3", "--freeze", "3", "--drop_rate", "0.2"])))
    rates = {name: cell.p for name, cell in net.cells_and_names() if hasattr(cell, "salt")}
    assert all(rates[n] == 0.0 for n in rates if n.startswith(("stages.0.", "stages.1.", "stages.2.")))
    assert rates["stages.3.blocks.1.drop_path"] == pytest.approx(0.3) and rates["head.drop"] == pytest.approx(0.2)
    with pytest.raises(msvision.MsvisionError, match="amp_dtype bfloat16 needs amp_level O1, O2 or O3"):
        build_model(**model_kwargs(parse_config(["--model", "vgg11", "--amp_dtype", "bfloat16"])))


def test_second_run_starts_from_the_ema_weights(tmp_path):
    """ckpt_ema: the model starts from the checkpoint's ema.* entries (1e100's second run), not its weights; a
    checkpoint without them is a one-line error."""
    from msvision.config.kwargs import model_kwargs
    from msvision.config.parse import parse_config
    from msvision.train.model import build_model

    net = msvision.create_model("ese_vovnet19b_slim_dw", num_classes=4)
    entries = [{"name": p.name, "data": p} for p in net.get_parameters()]
    rng = np.random.default_rng(0)
    ema = {p.name: (p.asnumpy() + rng.standard_normal(p.shape)).astype(np.float32) for p in net.get_parameters()}
    entries += [{"name": "ema." + k, "data": ms.Tensor(v)} for k, v in ema.items()]
    first = str(tmp_path / "first.ckpt")
    ms.save_checkpoint(entries, first)
    argv = ["--model", "ese_vovnet19b_slim_dw", "--num_classes", "4", "--ckpt_path", first]
    second = build_model(**model_kwargs(parse_config(argv + ["--ckpt_ema"])))
    assert all(np.array_equal(p.asnumpy(), ema[p.name]) for p in second.get_parameters())
    plain = str(tmp_path / "plain.ckpt")
    ms.save_checkpoint(net, plain)
    with pytest.raises(msvision.MsvisionError, match=f"checkpoint {plain} holds no EMA weights"):
        build_model(**model_kwargs(parse_config(argv[:-1] + [plain, "--ckpt_ema"])))
