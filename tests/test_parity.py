"""Weight parity per source: a reference model with random weights, saved as its library saves it, converted (or
loaded directly), gives the same logits in MindSpore."""
import os

import numpy as np
import mindspore as ms
import pytest

import msvision
from msvision.weights.io import save_atomic
from tests.conftest import mindcv_vgg_files, relative_difference
from tests.references import random_reference

# (msvision name, reference library, reference name)
PARITY_CASES = [
    ("vgg11_bn", "timm", "vgg11_bn"),
    ("vgg16", "timm", "vgg16"),
    ("vgg11_bn", "torchvision", "vgg11_bn"),
    ("vovnet39a", "timm", "vovnet39a"),
    ("ese_vovnet19b_dw", "timm", "ese_vovnet19b_dw"),
    ("ese_vovnet19b_slim_dw", "timm", "ese_vovnet19b_slim_dw"),
    ("ese_vovnet39b", "timm", "ese_vovnet39b"),
    ("eca_vovnet39b", "timm", "eca_vovnet39b"),
]
VOVNETS_1E100 = ["vovnet19", "vovnet27_slim", "vovnet39", "vovnet57", "vovnet99"]


def msvision_logits(name, ckpt, images, modes=(ms.GRAPH_MODE, ms.PYNATIVE_MODE)):
    """Logits of the converted checkpoint in each execution mode."""
    results = []
    for mode in modes:
        ms.set_context(mode=mode)
        net = msvision.create_model(name, checkpoint_path=str(ckpt))
        net.set_train(False)
        results.append(net(ms.Tensor(images)).asnumpy())
    return results


def convert_file(name, torch_file, ms_file):
    """What scripts/convert.py does: the file loaded by create_model (layout detected), saved as a checkpoint;
    returns (net, the layout it was read as)."""
    net = msvision.create_model(name, checkpoint_path=torch_file)
    save_atomic(net, ms_file)
    return net, net.weights_source


@pytest.mark.parametrize("name,library,ref_name", PARITY_CASES)
def test_converted_logits_match_reference(torch_reference, tmp_path, name, library, ref_name):
    torch = torch_reference[0]
    reference = random_reference(torch_reference, library, ref_name)
    torch_file, ms_file = tmp_path / "ref.pth", tmp_path / "converted.ckpt"
    torch.save(reference.state_dict(), torch_file)
    _, source = convert_file(name, str(torch_file), str(ms_file))
    assert source == library  # detected from the keys

    images = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    for got in msvision_logits(name, ms_file, images):
        error = relative_difference(got, expected)
        print(f"parity {name} vs {library}:{ref_name}: max|diff|/max|logit| = {error:.2e}")
        assert error <= 1e-5


def _wrapped(torch, state, form):
    if form == "bare":
        return state
    if form == "state_dict":
        return {"state_dict": state, "epoch": 7, "best_acc1": torch.tensor(72.0)}
    return {"model": {"module." + k: v for k, v in state.items()}, "optimizer": {"lr": 0.1}}  # DataParallel run


@pytest.mark.parametrize("name", VOVNETS_1E100)
def test_1e100_weights_convert_with_parity(torch_reference, tmp_path, name):
    torch = torch_reference[0]
    reference = random_reference(torch_reference, "1e100", name)
    images = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    forms = ("bare", "state_dict", "model") if name == "vovnet19" else ("model",)
    for form in forms:
        torch_file, ms_file = tmp_path / f"{form}.pt", tmp_path / f"{form}.ckpt"
        torch.save(_wrapped(torch, reference.state_dict(), form), torch_file)
        _, source = convert_file(name, str(torch_file), str(ms_file))
        assert source == "1e100"
        (got,) = msvision_logits(name, ms_file, images, modes=(ms.PYNATIVE_MODE,))
        error = relative_difference(got, expected)
        print(f"parity {name} vs 1e100 ({form}): {error:.2e}")
        assert error <= 1e-5


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_mindcv_checkpoints_load_directly_with_parity(tmp_path, name):
    mindcv_net, paths = mindcv_vgg_files(tmp_path, name, 1000, ("plain", "train_cell"))
    mindcv_net.set_train(False)
    images = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    expected = mindcv_net(ms.Tensor(images)).asnumpy()
    for path in paths.values():
        net = msvision.create_model(name, checkpoint_path=path)
        net.set_train(False)
        error = relative_difference(net(ms.Tensor(images)).asnumpy(), expected)
        biases = [p.asnumpy() for p in net.get_parameters() if p.name.startswith("features.") and
                  p.name.endswith(".bias")]
        print(f"parity {name} vs MindCV ({os.path.basename(path)}): {error:.2e}")
        assert error == 0.0 and len(biases) == {"vgg11": 8, "vgg16": 13}[name] and not any(b.any() for b in biases)


@pytest.mark.parametrize("name", ["ese_vovnet19b_dw", "vovnet39a"])
@pytest.mark.parametrize("act", ["mish", "silu"])
def test_act_layer_and_drop_path_keep_parity_with_timm(torch_reference, name, act):
    """timm's model built with act_layer and drop_path_rate, converted: eval logits equal (drop path is identity in
    eval, the padded pools take -inf where the activation goes below zero)."""
    from tests.references import msvision_twin, randomise_batchnorm

    torch, timm, _ = torch_reference
    torch.manual_seed(0)
    reference = randomise_batchnorm(torch, timm.create_model(name, num_classes=10, act_layer=act,
                                                             drop_path_rate=0.2)).eval()
    net = msvision_twin(name, "timm", reference, act_layer=act, drop_path_rate=0.2)
    net.set_train(False)
    images = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    error = relative_difference(net(ms.Tensor(images)).asnumpy(), expected)
    print(f"{name} act {act}: {error:.2e}")
    assert error <= 1e-5
