"""Parameter gradients of every family equal PyTorch's float64 gradients, under msvision's default CPU setting.

Each case is one member of a family at 32 px, where every VoVNet stage pool pads, with BatchNorm in train and in
eval mode (VGG: see CASES), in GRAPH and PYNATIVE mode. ReLU and max-pool networks have kinks: where an activation lies within float32
rounding of zero, or two values of a pooling window within rounding of each other, float32 and float64 legitimately
take different branches and the gradients then differ by up to ~10% (see the README, "CPU gradient numerics").
So each case uses a seed whose float32 PyTorch gradients (same oneDNN setting) agree with float64 within 1e-3,
asserted as a precondition: in such a case a gradient error in msvision cannot hide behind rounding.
"""
import copy
import os

import numpy as np
import mindspore as ms
import pytest

from tests.conftest import relative_difference
from tests.references import (FAMILIES, finite_difference, in_msvision_names, msvision_loss_and_grads,
                              msvision_twin, random_reference, torch_loss_and_grads, torch_names_of,
                              worst_relative)

SEEDS = {"vgg11_bn": 0, "vgg11_bn_cifar": 0, "vovnet39a": 0, "ese_vovnet19b_dw": 1, "eca_vovnet39b": 2, "vovnet19": 1}
SIZE, BATCH, CLASSES = 32, 8, 10
TOLERANCE = 1e-3


# VGG's ImageNet head (49 copies of the 1x1 feature map into a 25088-4096-4096 MLP, 120M parameters in float64) in
# eval mode; BatchNorm in train mode on the same features with the CIFAR head
CASES = [("vgg11_bn", False), ("vgg11_bn_cifar", True)] + [(n, t) for n in FAMILIES if not n.startswith("vgg")
                                                           for t in (True, False)]


@pytest.fixture(scope="module", params=CASES,
                ids=lambda p: f"{p[0]}-{'train' if p[1] else 'eval'}")
def case(request, torch_reference):
    """Reference model, batch and float64/float32 PyTorch gradients (under msvision's parameter names)."""
    name, train = request.param
    torch = torch_reference[0]
    library, ref_name = FAMILIES[name]
    seed = SEEDS[name]
    reference = random_reference(torch_reference, library, ref_name, num_classes=CLASSES, seed=seed, dropout=0.0)
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, BATCH)
    net = msvision_twin(name, library, reference)
    loss64, grads64 = torch_loss_and_grads(torch, reference, images, labels, train, torch.float64)
    _, grads32 = torch_loss_and_grads(torch, reference, images, labels, train, torch.float32)
    grads64 = in_msvision_names(grads64, name, library, net)
    torch32_error = max(worst_relative(in_msvision_names(grads32, name, library, net), grads64).values())
    return dict(name=name, library=library, train=train, reference=reference, images=images, labels=labels,
                loss64=loss64, grads64=grads64, torch32_error=torch32_error)


def test_case_is_free_of_kink_ties(case):
    """Precondition of the comparison below (see the module docstring)."""
    assert case["torch32_error"] <= TOLERANCE, f"seed of {case['name']} is ill-conditioned: choose another"


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_parameter_gradients_match_float64_reference(case, mode):
    ms.set_context(mode=mode)  # restored by conftest's restore_execution_mode
    net = msvision_twin(case["name"], case["library"], case["reference"])
    loss, grads = msvision_loss_and_grads(net, case["images"], case["labels"], case["train"])
    assert set(grads) == set(case["grads64"])
    errors = worst_relative(grads, case["grads64"])
    worst = max(errors, key=errors.get)
    print(f"{case['name']} train={case['train']} mode={mode} ISA={os.environ.get('ONEDNN_MAX_CPU_ISA')}: "
          f"worst {errors[worst]:.1e} ({worst}), median {np.median(list(errors.values())):.1e}; "
          f"torch float32 {case['torch32_error']:.1e}")
    assert abs(loss - case["loss64"]) <= 1e-5 * abs(case["loss64"])
    assert errors[worst] <= TOLERANCE, worst


def test_gradients_match_finite_differences(case, torch_reference):
    """Sampled elements of msvision's gradient against float64 central differences of the PyTorch reference."""
    torch = torch_reference[0]
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = msvision_twin(case["name"], case["library"], case["reference"])
    _, grads = msvision_loss_and_grads(net, case["images"], case["labels"], case["train"])
    model64 = copy.deepcopy(case["reference"]).double()
    torch_name = torch_names_of(net, case["name"], case["library"], model64)
    ms_names = list(grads)
    rng = np.random.default_rng(0)
    largest = max(np.abs(g).max() for g in grads.values())
    for ms_name in (ms_names[0], ms_names[len(ms_names) // 2], ms_names[-2]):  # first conv, middle, classifier
        ours = grads[ms_name].reshape(-1)
        for index in (int(np.abs(ours).argmax()), int(rng.integers(ours.size))):
            fd = finite_difference(torch, model64, case["images"], case["labels"], case["train"],
                                   torch_name[ms_name], index)
            scale = np.abs(ours).max()  # a gradient zero up to rounding (a conv bias before a train-mode BN): the
            scale = scale if scale > 1e-6 * largest else largest  # model's largest, as worst_relative does
            print(f"{ms_name}[{index}]: msvision {ours[index]:.6e} finite difference {fd:.6e}")
            assert abs(ours[index] - fd) <= TOLERANCE * scale


def test_bn_chain_repro_is_a_relu_kink_not_a_kernel_error(torch_reference):
    """The issue's minimal reproduction (two conv3x3 -> BN(train) -> ReLU layers on a real vovnet19 activation).

    Against the float64 gradient msvision's input gradient was 2.9e-2 off under AVX2. The cause is one element of the
    second BN output: 5.6e-7 in float64, -2.7e-7 in float32, so float32 ReLU blocks a gradient float64 passes. Given
    the ReLU masks msvision's own forward chose, float64 gives msvision's gradient to float32 precision: the kernels
    are exact, the difference is which side of a kink rounding put one value on.
    """
    torch = torch_reference[0]
    from mindspore import nn, ops

    case = np.load(os.path.join(os.path.dirname(__file__), "data", "bn_chain_case.npz"))
    ms.set_context(mode=ms.PYNATIVE_MODE)
    convs = [nn.Conv2d(128, 64, 3, pad_mode="pad", padding=1, weight_init=ms.Tensor(case["w0"])),
             nn.Conv2d(64, 64, 3, pad_mode="pad", padding=1, weight_init=ms.Tensor(case["w1"]))]
    norms = [nn.BatchNorm2d(64), nn.BatchNorm2d(64)]
    pre_relu = []

    def chain(x):
        pre_relu.clear()
        for conv, norm in zip(convs, norms):
            norm.set_train(True)
            pre_relu.append(norm(conv(x)))
            x = ops.relu(pre_relu[-1])
        return x

    _, vjp = ms.vjp(chain, ms.Tensor(case["x"]))
    masks = [(z.asnumpy() > 0) for z in pre_relu]
    (ours,) = vjp(ms.Tensor(case["v"]))
    ours = ours.asnumpy().astype(np.float64)

    x = torch.tensor(case["x"], dtype=torch.float64, requires_grad=True)
    y, pre64 = x, []
    for weight, mask in zip((case["w0"], case["w1"]), masks):
        z = torch.nn.functional.conv2d(y, torch.tensor(weight, dtype=torch.float64), padding=1)
        pre64.append(torch.nn.functional.batch_norm(z, None, None, training=True, eps=1e-5))
        y = pre64[-1] * torch.tensor(mask, dtype=torch.float64)  # ReLU along msvision's branch
    y.backward(torch.tensor(case["v"], dtype=torch.float64))
    same_branch = x.grad.numpy()
    truth = case["dx_float64"]

    flips = [np.flatnonzero(m.ravel() != (z.detach().numpy().ravel() > 0)) for m, z in zip(masks, pre64)]
    flipped_values = np.concatenate([z.detach().numpy().ravel()[f] for z, f in zip(pre64, flips)])
    print(f"vs float64 truth {relative_difference(ours, truth):.1e}; vs float64 on msvision's branch "
          f"{relative_difference(ours, same_branch):.1e}; ReLU inputs on the other side of zero: {flipped_values}")
    assert relative_difference(ours, same_branch) <= 1e-5
    assert np.all(np.abs(flipped_values) < 1e-5)  # any disagreement with the truth is a rounding-level kink
    assert relative_difference(ours, truth) <= relative_difference(same_branch, truth) + 1e-5  # the branch explains all of the difference
