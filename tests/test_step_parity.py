"""Training-step parity: msvision's train step (TrainStep + create_optimizer + the LR schedule, built from a shipped
YAML) equals the same steps in a PyTorch loop written here, from identical weights and batches.

Only fp32 (amp_level O0), drop_rate 0 and the small input (8 images of 32 px) differ from the recipe. Weights and
EMA weights are compared as their change over a step (the recipes' scaled learning rates at batch 8 are small, so
the weights themselves would agree even without any update), BatchNorm running statistics as values.
"""
import copy
import glob
import math
import os

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

from msvision.config.kwargs import lr_scaling_kwargs, optimizer_kwargs, schedule_kwargs, step_kwargs
from msvision.config.parse import parse_config
from msvision.optim.factory import create_optimizer
from msvision.optim.schedule import lr_schedule, scaled_lr
from msvision.train.step import TrainStep
from tests.conftest import REPO_ROOT
from tests.references import in_msvision_names, msvision_twin, random_reference, worst_relative

BATCH, SIZE, CLASSES = 8, 32, 10
# recipe -> (model, reference library, steps per epoch, seed)
RECIPES = {
    "configs/vgg/vgg16_ascend.yaml": ("vgg11_bn", "torchvision", 1, 0),
    "configs/vovnet/vovnet19_ascend.yaml": ("vovnet19", "1e100", 1, 1),
    "configs/demo/ese_vovnet19b_slim_dw_digits.yaml": ("ese_vovnet19b_slim_dw", "timm", 2, 1),
}


def recipe_args(path, model):
    return parse_config(["--config", os.path.join(REPO_ROOT, path), "--model", model, "--num_classes", str(CLASSES),
                         "--amp_level", "O0", "--drop_rate", "0", "--batch_size", str(BATCH)])


SHIPPED = sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"),
                                                                  recursive=True))


def independent_lr(args, world_size, steps_per_epoch, step):
    """The recipe's LR at an optimizer step, computed from its definition: the lr scaled to the global batch by the
    recipe's rule, a linear warmup from warmup_factor x peak, then polynomial decay, or cosine cycles (num_cycles
    equal parts of the remaining steps, the k-th peaking at peak x cycle_decay^k, each rising linearly from min_lr over
    cycle_warmup_fraction of it, then falling by a half cosine to min_lr)."""
    ratio = args.batch_size * world_size * args.grad_accum_steps / args.lr_base_batch_size
    peak = args.lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[args.lr_scale_rule]
    warmup = round(args.warmup_epochs * steps_per_epoch)
    total = args.epoch_size * steps_per_epoch
    if step < warmup:
        start = peak * args.warmup_factor
        return start + (peak - start) * (step + 1) / warmup
    if args.scheduler == "polynomial":
        return args.min_lr + (peak - args.min_lr) * (1 - (step - warmup) / (total - warmup)) ** args.lr_power
    length = (total - warmup) / args.num_cycles
    cycle = min(math.floor((step - warmup) / length), args.num_cycles - 1)
    top = peak * args.cycle_decay ** cycle
    into = (step - warmup - cycle * length) / length
    rise = args.cycle_warmup_fraction
    if into < rise:
        return args.min_lr + (top - args.min_lr) * into / rise
    return args.min_lr + (top - args.min_lr) * (1 + math.cos(math.pi * (into - rise) / (1 - rise))) / 2


@pytest.mark.parametrize("recipe", SHIPPED)
@pytest.mark.parametrize("world_size", [1, 8])
def test_every_step_lr_of_each_recipe(recipe, world_size):
    """Every shipped recipe (warmup, then cosine cycles or polynomial decay), at 1 and 8 devices, 7 steps per
    epoch."""
    args = parse_config(["--config", os.path.join(REPO_ROOT, recipe)])
    assert args.scheduler in ("warmup_cosine_decay", "polynomial"), "add an independent computation for it"
    steps_per_epoch = 7
    ours = lr_schedule(scaled_lr(**lr_scaling_kwargs(args, world_size)), steps_per_epoch, **schedule_kwargs(args))
    expected = [independent_lr(args, world_size, steps_per_epoch, s) for s in range(args.epoch_size * steps_per_epoch)]
    assert len(ours) == len(expected)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-12)


class TorchTrainer:
    """The recipe's steps in plain PyTorch float64: SGD (Nesterov as the recipe says), the decay groups, smoothed
    cross-entropy, EMA of parameters and BN statistics (with TF's warmup of the decay, as msvision documents)."""

    def __init__(self, torch, model, args, lrs, dtype=None):
        self.torch, self.args, self.lrs = torch, args, lrs
        self.dtype = dtype or torch.float64
        self.model = copy.deepcopy(model).to(self.dtype).train()
        self.named = dict(self.model.named_parameters())
        if args.weight_decay_filter == "norm_and_bias":
            groups = [{"params": [p for p in self.named.values() if p.ndim > 1], "weight_decay": args.weight_decay},
                      {"params": [p for p in self.named.values() if p.ndim <= 1], "weight_decay": 0.0}]
        else:
            groups = [{"params": list(self.named.values()), "weight_decay": args.weight_decay}]
        self.optimizer = torch.optim.SGD(groups, lr=float(lrs[0]), momentum=args.momentum, nesterov=args.nesterov)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.dtype.is_floating_point}

    def run(self, step, images, labels):
        torch = self.torch
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lrs[step])
        loss = torch.nn.functional.cross_entropy(self.model(torch.tensor(images, dtype=self.dtype)),
                                                 torch.tensor(labels), label_smoothing=self.args.label_smoothing)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        decay = min(self.args.ema_decay, (1 + step + 1) / (10 + step + 1))
        with torch.no_grad():
            for key, value in self.model.state_dict().items():
                if key in self.ema:
                    self.ema[key].mul_(decay).add_(value, alpha=1 - decay)
        return float(loss.detach())

    def load(self, state):
        """Take another trainer's state (the float64 reference's, for a float32 twin)."""
        torch = self.torch
        self.model.load_state_dict({k: torch.tensor(v) for k, v in state["model"].items()})
        for key, value in state["momentum"].items():
            self.optimizer.state[self.named[key]]["momentum_buffer"] = torch.tensor(value, dtype=self.dtype)
        self.ema = {k: torch.tensor(v, dtype=self.dtype) for k, v in state["ema"].items()}

    def state(self):
        """{"model": state dict, "momentum": {name: buffer}, "ema": {name: value}} as numpy, torch names."""
        return {"model": {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()},
                "momentum": {k: self.optimizer.state[p]["momentum_buffer"].numpy().copy()
                             for k, p in self.named.items() if p in self.optimizer.state},
                "ema": {k: v.numpy().copy() for k, v in self.ema.items()}}


class MsvisionTrainer:
    """msvision's own train step for a recipe, whose whole state can be set to a reference state between steps."""

    def __init__(self, net, args, lrs, name, library):
        self.net, self.name, self.library = net, name, library
        self.optimizer = create_optimizer(net.trainable_params(), lr=lrs, **optimizer_kwargs(args))
        self.step = TrainStep(net, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), self.optimizer,
                              **step_kwargs(args))
        self.slots = {p.name: p for p in self.optimizer.get_parameters()}
        self.slots.update({p.name: p for p in self.step.ema or ()})
        net.set_train(True)

    def names(self, torch_named):
        return in_msvision_names(torch_named, self.name, self.library, self.net)

    def load(self, state, step):
        """Weights, BN statistics, momentum buffers, EMA and step counter of the reference state."""
        def put(name, value):
            target = self.slots[name] if name in self.slots else self.net.parameters_dict()[name]
            value = np.broadcast_to(np.asarray(value, np.float32).reshape(-1 if np.size(value) > 1 else 1), (target.size,))
            ops.assign(target, ms.Tensor(value.reshape(target.shape)))  # in place: the compiled step keeps its buffers

        for name, value in self.names(state["model"]).items():
            put(name, value)
        for name, value in self.names(state["momentum"]).items():
            put(("accum." if "accum." + name in self.slots else "moments.") + name, value)
            if "stat." + name in self.slots:  # SGD's first-step flag: the buffer exists, so not the first step
                put("stat." + name, np.zeros(1))
        for name, value in self.names(state["ema"]).items() if self.step.ema else ():
            put("ema." + name, value)
        ops.assign(self.optimizer.global_step, ms.Tensor(np.array([step], np.int32)))

    def run(self, images, labels):
        loss, finite = self.step(ms.Tensor(images), ms.Tensor(labels.astype(np.int32)))
        assert bool(finite)
        return float(loss.asnumpy())

    def snapshot(self):
        return ({p.name: p.asnumpy().copy() for p in self.net.get_parameters()},
                {p.name[len("ema."):]: p.asnumpy().copy() for p in self.step.ema or ()})


def change_errors(after, before, expected_after):
    """{name: max |our change - expected change| / max |expected change|} for the tensors of after.

    Our weights are float32, so a change is known only to the float32 spacing of the weight it is added to (a BN
    gamma near 1 moved by 1e-5 carries a rounding error of 6e-8, 0.6% of the change): that spacing is subtracted
    from the difference. A tensor the reference leaves unchanged (a conv bias before a train-mode BatchNorm, without
    decay) is measured against the largest change of the model.
    """
    expected = {k: expected_after[k] - before[k] for k in after}
    largest = max(np.abs(v).max() for v in expected.values())
    errors = {}
    for key in after:
        ours = after[key].astype(np.float64) - before[key]
        resolution = 2 * np.spacing(np.abs(after[key]).max().astype(np.float32))
        scale = np.abs(expected[key]).max()
        scale = scale if scale > 1e-6 * largest else largest
        errors[key] = max(float(np.abs(ours - expected[key]).max()) - resolution, 0.0) / scale
    return errors


KINK_BOUND = 1.2e-4  # a weight or EMA change beyond it is a kink step (see test_ten_steps_equal_pytorch)


def compare_steps(torch, torch_reference, recipe, count, mode, with_float32=False):
    """Run `count` steps of the recipe in msvision (in `mode`) and in the PyTorch float64 reference, each from the
    reference's state; returns one {"loss", "weights", "statistics", "ema": worst relative error} per step (and
    "torch32": the weight error of PyTorch's float32 step from the same state, with_float32, at a step beyond
    KINK_BOUND)."""
    name, library, steps_per_epoch, seed = RECIPES[recipe]
    args = recipe_args(recipe, name)
    lrs = lr_schedule(scaled_lr(**lr_scaling_kwargs(args, 1)), steps_per_epoch, **schedule_kwargs(args))[:count]
    reference = random_reference(torch_reference, library, name, num_classes=CLASSES, seed=seed, dropout=0.0)
    rng = np.random.default_rng(seed)
    batches = [(rng.standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32), rng.integers(0, CLASSES, BATCH))
               for _ in range(count)]
    ms.set_context(mode=mode)
    reference_trainer = TorchTrainer(torch, reference, args, lrs)
    float32_twin = TorchTrainer(torch, reference, args, lrs, dtype=torch.float32) if with_float32 else None
    trainer = MsvisionTrainer(msvision_twin(name, library, reference), args, lrs, name, library)
    results, state = [], reference_trainer.state()
    for step, (images, labels) in enumerate(batches):
        trainer.load(state, step)
        loss = trainer.run(images, labels)
        params, ema = trainer.snapshot()
        reference_loss = reference_trainer.run(step, images, labels)
        following = reference_trainer.state()
        before, expected = trainer.names(state["model"]), trainer.names(following["model"])
        statistics = [k for k in params if "moving_" in k]
        weights = {k: v for k, v in params.items() if k not in statistics}
        results.append({
            "loss": abs(loss - reference_loss) / abs(reference_loss),
            "weights": max(change_errors(weights, before, expected).values()),
            "statistics": max(worst_relative({k: params[k] for k in statistics}, expected).values()),
            "ema": max(change_errors(ema, trainer.names(state["ema"]),
                                     trainer.names(following["ema"])).values()) if ema else 0.0,
        })
        if float32_twin and max(results[-1]["weights"], results[-1]["ema"]) > KINK_BOUND:
            float32_twin.load(state)  # PyTorch's own float32 step from the same state: the floor a kink sets
            float32_twin.run(step, images, labels)
            twin = {k: v for k, v in trainer.names(float32_twin.state()["model"]).items() if k in weights}
            results[-1]["torch32"] = max(change_errors(twin, before, expected).values())
        print(f"{name} step {step} lr {lrs[step]:.3g}: " + ", ".join(f"{k} {v:.1e}" for k, v in results[-1].items()))
        state = following
    return results


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_ten_steps_equal_pytorch(torch_reference, recipe):
    """Each of ten steps (GRAPH mode, as the recipes run) from the reference trajectory's state equals its step.

    The state (weights, BN statistics, momentum buffers, EMA, step counter) is set to the float64 reference's before
    every step: run freely, float32 training departs from float64 after 3-5 steps at these learning rates, in PyTorch
    as much as in msvision (ReLU and pooling kinks cascade), so only step-by-step comparisons measure the step.
    Bounds, about 3x the largest measured over the three recipes: loss 3e-6 (measured 8.3e-7), BN statistics 6e-6
    (1.9e-6), each weight and EMA change 1.2e-4 (3.8e-5). A step whose state has an activation within float32
    rounding of a ReLU or pooling kink takes another branch in float32 and misses by up to 5e-2 (vovnet19 step 7,
    ese_vovnet19b_slim_dw steps 8 and 9); such a step must be explained: PyTorch's own float32 step from the same
    state misses by at least half as much (measured: the same figure to two digits at each of them), and at most two
    of the ten steps may be such. Any difference in the step itself (update formula, decay set, momentum or EMA
    convention) shows at every step and in msvision only.
    """
    results = compare_steps(torch_reference[0], torch_reference, recipe, 10, ms.GRAPH_MODE, with_float32=True)
    kink_steps = [i for i, r in enumerate(results) if max(r["weights"], r["ema"]) > KINK_BOUND]
    print(f"{recipe}: weights or EMA beyond 1.2e-4 at steps {kink_steps}")
    assert max(r["loss"] for r in results) <= 3e-6 and max(r["statistics"] for r in results) <= 6e-6
    assert len(kink_steps) <= 2
    for step in kink_steps:
        r = results[step]
        assert max(r["weights"], r["ema"]) <= 2 * r["torch32"], (step, r)


@pytest.mark.parametrize("recipe", [r for r in RECIPES if "vovnet" in r])
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_first_step_from_converted_weights_equals_pytorch(torch_reference, recipe, mode):
    """One step from converted weights: loss, every weight, every BN statistic (and EMA) within 1e-3."""
    (result,) = compare_steps(torch_reference[0], torch_reference, recipe, 1, mode)
    assert result["loss"] <= 1e-4 and max(result["weights"], result["statistics"], result["ema"]) <= 1e-3


@pytest.mark.parametrize("opt", ["sgd", "momentum"])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay_filter", ["disable", "norm_and_bias"])
def test_optimizer_update_equals_torch_sgd(torch_reference, opt, nesterov, decay_filter):
    """Three updates of every opt/nesterov/decay combination equal torch.optim.SGD, BatchNorm-named parameters
    included (MindSpore skips decay on *gamma*/*beta* names unless the decay is given per group)."""
    torch = torch_reference[0]
    args = parse_config(["--opt", opt, "--momentum", "0.9", "--weight_decay", "0.1",
                         "--weight_decay_filter", decay_filter] + (["--nesterov"] if nesterov else []))
    rng = np.random.default_rng(0)
    values = {"conv.weight": rng.standard_normal((2, 3)), "bn.gamma": rng.standard_normal(3)}
    params = [ms.Parameter(ms.Tensor(v.astype(np.float32)), name=k) for k, v in values.items()]
    optimizer = create_optimizer(params, lr=np.array([0.5, 0.3, 0.2], np.float32), **optimizer_kwargs(args))
    twins = [torch.nn.Parameter(torch.tensor(v)) for v in values.values()]
    groups = [{"params": [t], "weight_decay": 0.1 if decay_filter == "disable" or t.ndim > 1 else 0.0}
              for t in twins]
    reference = torch.optim.SGD(groups, lr=0.5, momentum=0.9, nesterov=nesterov)
    for step, lr in enumerate((0.5, 0.3, 0.2)):
        grads = [rng.standard_normal(v.shape) for v in values.values()]
        optimizer(tuple(ms.Tensor(g.astype(np.float32)) for g in grads))
        for group in reference.param_groups:
            group["lr"] = lr
        for twin, grad in zip(twins, grads):
            twin.grad = torch.tensor(grad)
        reference.step()
        for param, twin in zip(params, twins):
            np.testing.assert_allclose(param.asnumpy(), twin.detach().numpy(), rtol=1e-5, atol=1e-6)


def _timm_optim(torch_reference):
    import timm.optim
    return timm.optim

# option -> (msvision options, reference builder(torch, timm.optim, groups, lr), state names shared by both)
NEW_OPTIMIZERS = {
    "adam": (["--opt", "adam"], lambda torch, timm_optim, g, lr: torch.optim.Adam(g, lr), ("exp_avg", "exp_avg_sq")),
    "rmsprop": (["--opt", "rmsprop", "--momentum", "0.9"],
                lambda torch, timm_optim, g, lr: torch.optim.RMSprop(g, lr, alpha=0.99, momentum=0.9),
                ("square_avg", "momentum_buffer")),
    "lamb": (["--opt", "lamb"], lambda torch, timm_optim, g, lr: timm_optim.Lamb(g, lr, max_grad_norm=None),
             ("exp_avg", "exp_avg_sq")),
    "lars": (["--opt", "lars", "--momentum", "0.9"],
             lambda torch, timm_optim, g, lr: timm_optim.Lars(g, lr, momentum=0.9), ("momentum_buffer",)),
    "lars nesterov": (["--opt", "lars", "--momentum", "0.9", "--nesterov"],
                      lambda torch, timm_optim, g, lr: timm_optim.Lars(g, lr, momentum=0.9, nesterov=True),
                      ("momentum_buffer",)),
}


@pytest.mark.parametrize("name", list(NEW_OPTIMIZERS))
@pytest.mark.parametrize("decay_filter", ["disable", "norm_and_bias"])
def test_new_optimizers_step_equals_their_reference(torch_reference, name, decay_filter):
    """Six updates of adam (torch.optim.Adam), rmsprop (torch.optim.RMSprop), lamb (timm's Lamb) and lars (timm's
    Lars), with decay groups and a changing LR, each from the float64 reference's state (weights, moments, step
    count): every parameter's change equals the reference's within 1e-7 of its size beyond the float32 spacing of
    the weight (measured: at most 1.6e-8, rmsprop; 0 for the others)."""
    torch = torch_reference[0]
    options, build, slots = NEW_OPTIMIZERS[name]
    args = parse_config(options + ["--weight_decay", "0.05", "--weight_decay_filter", decay_filter])
    rng = np.random.default_rng(3)
    values = {"conv.weight": rng.standard_normal((4, 3, 3, 3)), "fc.weight": rng.standard_normal((5, 6)) * 0.1,
              "bn.gamma": 1 + 0.1 * rng.standard_normal(4), "fc.bias": 0.1 * rng.standard_normal(5)}
    lrs = np.array([0.02, 0.05, 0.1, 0.08, 0.05, 0.01], np.float32) * (20 if name.startswith("lars") else 1)
    params = [ms.Parameter(ms.Tensor(v.astype(np.float32)), name=k) for k, v in values.items()]
    optimizer = create_optimizer(params, lr=lrs, **optimizer_kwargs(args))
    state = {p.name: p for p in optimizer.get_parameters()}
    twins = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in values.items()}
    groups = [{"params": [t], "weight_decay": 0.05 if decay_filter == "disable" or t.ndim > 1 else 0.0}
              for t in twins.values()]
    reference = build(torch, _timm_optim(torch_reference), groups, float(lrs[0]))
    worst = 0.0
    for step, lr in enumerate(lrs):
        before = {k: t.detach().numpy().copy() for k, t in twins.items()}
        for param in params:  # our state := the reference's
            ops.assign(param, ms.Tensor(before[param.name].astype(np.float32)))
            for slot in slots:
                kept = reference.state[twins[param.name]].get(slot)
                value = np.zeros_like(before[param.name]) if kept is None else kept.numpy()
                ops.assign(state[f"{slot}.{param.name}"], ms.Tensor(value.astype(np.float32)))
        ops.assign(optimizer.global_step, ms.Tensor(np.array([step], np.int32)))
        grads = {k: rng.standard_normal(v.shape) * 10 ** rng.uniform(-3, -1) for k, v in values.items()}
        optimizer(tuple(ms.Tensor(grads[p.name].astype(np.float32)) for p in params))
        for group in reference.param_groups:
            group["lr"] = float(lr)
        for key, twin in twins.items():
            twin.grad = torch.tensor(grads[key])
        reference.step()
        after = {p.name: p.asnumpy() for p in params}
        errors = change_errors(after, before, {k: t.detach().numpy() for k, t in twins.items()})
        worst = max(worst, max(errors.values()))
    print(f"{name}, decay filter {decay_filter}: worst relative change error over 6 steps {worst:.1e}")
    assert worst <= 1e-7


def test_adamw_is_adamweightdecay_written_out():
    """opt adamw is MindSpore's AdamWeightDecay as the README says: its rule written out in float64 (no bias
    correction, eps 1e-6 added to sqrt(v), decoupled decay lr x wd x w, beta1 = momentum), six steps with a changing
    LR and the norm_and_bias decay filter."""
    args = parse_config(["--opt", "adamw", "--momentum", "0.8", "--weight_decay", "0.05", "--weight_decay_filter",
                         "norm_and_bias"])
    rng = np.random.default_rng(5)
    values = {"conv.weight": rng.standard_normal((4, 3, 3, 3)), "bn.gamma": 1 + 0.1 * rng.standard_normal(4),
              "fc.bias": 0.1 * rng.standard_normal(5)}
    lrs = np.array([0.02, 0.05, 0.1, 0.08, 0.05, 0.01], np.float32)
    params = [ms.Parameter(ms.Tensor(v.astype(np.float32)), name=k) for k, v in values.items()]
    optimizer = create_optimizer(params, lr=lrs, **optimizer_kwargs(args))
    expected = {k: v.astype(np.float32).astype(np.float64) for k, v in values.items()}
    m = {k: np.zeros_like(v) for k, v in expected.items()}
    s = {k: np.zeros_like(v) for k, v in expected.items()}
    for step, lr in enumerate(lrs):
        grads = {k: rng.standard_normal(v.shape) * 10 ** rng.uniform(-3, -1) for k, v in values.items()}
        optimizer(tuple(ms.Tensor(grads[p.name].astype(np.float32)) for p in params))
        for key, g in grads.items():
            g = g.astype(np.float32).astype(np.float64)
            decay = 0.05 if key == "conv.weight" else 0.0
            m[key] = 0.8 * m[key] + 0.2 * g
            s[key] = 0.999 * s[key] + float(1 - np.float32(0.999)) * g * g  # MindSpore forms 1 - beta2 in float32
            expected[key] -= float(lr) * (m[key] / (np.sqrt(s[key]) + 1e-6) + decay * expected[key])
    moved = {k: np.abs(expected[k] - values[k]).max() for k in values}
    errors = {p.name: float(np.abs(p.asnumpy() - expected[p.name]).max() / moved[p.name]) for p in params}
    print(f"adamw vs AdamWeightDecay written out: {errors}")
    assert max(errors.values()) <= 1e-6  # measured 1.7e-7 (6.4e-6 with 1 - beta2 taken in float64)


def test_clipping_bounds_the_global_norm():
    """clip_grad with clip_value 0.5: an SGD step at lr 1 moves the weights by the gradient scaled to global norm
    0.5 (the gradient computed here with mindspore.grad, norm far above 0.5); without clipping by the gradient."""
    rng = np.random.default_rng(0)
    images = ms.Tensor((50 * rng.standard_normal((4, 6))).astype(np.float32))
    labels = ms.Tensor(np.array([0, 1, 2, 0], np.int32))
    for clip in (True, False):
        ms.set_seed(0)
        net = nn.Dense(6, 3)
        loss_fn = nn.CrossEntropyLoss()
        start = [p.asnumpy().copy() for p in net.trainable_params()]
        grads = ms.grad(lambda x, y: loss_fn(net(x), y), None, net.trainable_params())(images, labels)
        grads = [g.asnumpy().astype(np.float64) for g in grads]
        norm = np.sqrt(sum((g ** 2).sum() for g in grads))
        args = parse_config(["--clip_grad", str(clip).lower(), "--clip_value", "0.5", "--opt", "sgd", "--momentum",
                             "0", "--weight_decay", "0"])
        optimizer = create_optimizer(net.trainable_params(), lr=np.ones(2, np.float32), **optimizer_kwargs(args))
        TrainStep(net, loss_fn, optimizer, **step_kwargs(args))(images, labels, ms.Tensor(True))
        moved = [s - p.asnumpy() for s, p in zip(start, net.trainable_params())]
        factor = 0.5 / norm if clip else 1.0
        error = max(np.abs(m - factor * g).max() / np.abs(factor * g).max() for m, g in zip(moved, grads))
        print(f"clip {clip}: gradient norm {norm:.3g}, step error {error:.1e}")
        assert norm > 5 and error <= 1e-5
