"""Kinks of a PyTorch reference's forward: the ReLU, ReLU6, hard-sigmoid inputs and max-pool windows that float32
rounding can put on the other side of a branch, and the float64 step taken along that other branch.

An element is on a kink when its float64 value lies within `delta` of a breakpoint (ReLU 0; ReLU6 0 and 6; hard
sigmoid -3 and 3) or, in a max-pool window, within `delta` of the window's maximum (a nonzero gap: exact ties of
ReLU zeros route no gradient). `delta` is the float32 rounding of that layer's input, measured: a multiple of the
largest difference between the float32 and float64 forwards of the same state. Flipping an element mirrors it
across its breakpoint, or lifts a pool's runner-up just above the maximum: the forward moves by less than 2 delta,
the branch (and so the gradient) changes.
"""
import math

import numpy as np

BREAKPOINTS = {"ReLU": (0.0,), "ReLU6": (0.0, 6.0), "Hardsigmoid": (-3.0, 3.0)}
ROUNDING_MARGIN = 4  # delta = this x the largest float32 - float64 difference of a layer's input


def _probed(torch, model):
    return [(name, m) for name, m in model.named_modules() if type(m).__name__ in BREAKPOINTS
            or isinstance(m, torch.nn.MaxPool2d)]


def record_inputs(torch, model, images, dtype):
    """{module name: its input (float64 numpy)} of one train-mode forward of model at dtype."""
    seen, handles = {}, []
    for name, module in _probed(torch, model):
        def hook(module, args, name=name):
            assert name not in seen, f"{name} is called twice in one forward"
            seen[name] = args[0].detach().double().numpy().copy()
        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(torch.tensor(images, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _pool_windows(torch, pool, x):
    """(values [windows, k*k], flat input index of each value or -1 for padding) of a max-pool over x."""
    k, s, p = (v if isinstance(v, int) else v[0] for v in (pool.kernel_size, pool.stride, pool.padding))
    n, c, h, w = x.shape
    sizes = []
    for length in (h, w):
        out = (length + 2 * p - k + (s - 1 if pool.ceil_mode else 0)) // s + 1
        if pool.ceil_mode and (out - 1) * s >= length + p:
            out -= 1
        sizes.append(out)
    extra = [(o - 1) * s + k - (length + 2 * p) for o, length in zip(sizes, (h, w))]
    index = torch.arange(n * c * h * w, dtype=torch.float64).reshape(n * c, 1, h, w)
    values = torch.tensor(x, dtype=torch.float64).reshape(n * c, 1, h, w)
    pad = (p, p + max(extra[1], 0), p, p + max(extra[0], 0))
    index = torch.nn.functional.pad(index, pad, value=-1.0)
    values = torch.nn.functional.pad(values, pad, value=-math.inf)
    unfold = lambda t: torch.nn.functional.unfold(t, k, stride=s).transpose(1, 2).reshape(-1, k * k)
    return unfold(values).numpy(), unfold(index).numpy().astype(np.int64)


def find_kinks(torch, model, inputs64, inputs32, limit=16):
    """The elements of the forward within float32 rounding of a kink, nearest first (at most `limit`): a list of
    (module name, flat index, value to set there, margin / delta)."""
    found = []
    modules = dict(_probed(torch, model))
    for name, x64 in inputs64.items():
        delta = ROUNDING_MARGIN * float(np.abs(inputs32[name] - x64).max())
        if delta == 0.0:
            continue
        flat = x64.reshape(-1)
        kind = type(modules[name]).__name__
        if kind in BREAKPOINTS:
            for point in BREAKPOINTS[kind]:
                for i in np.flatnonzero(np.abs(flat - point) < delta):
                    found.append((name, int(i), 2 * point - flat[i], abs(flat[i] - point) / delta))
            continue
        values, index = _pool_windows(torch, modules[name], x64)
        order = np.argsort(-values, axis=1)
        rows = np.arange(len(values))
        top, second = values[rows, order[:, 0]], values[rows, order[:, 1]]
        gap = top - second
        for row in np.flatnonzero((gap > 0) & (gap < delta)):
            runner_up = index[row, order[row, 1]]
            found.append((name, int(runner_up), top[row] + 1e-3 * gap[row], gap[row] / delta))
    return sorted(found, key=lambda f: f[3])[:limit]


def float32_branch(torch, model, inputs64, inputs32):
    """The elements where the float32 forward took the other branch than the float64 forward (the same form as
    find_kinks' entries): flipping all of them puts the float64 forward on the float32 forward's branch."""
    found = []
    modules = dict(_probed(torch, model))
    for name, x64 in inputs64.items():
        kind = type(modules[name]).__name__
        x32 = inputs32[name]
        if kind in BREAKPOINTS:
            flat64, flat32 = x64.reshape(-1), x32.reshape(-1)
            for point in BREAKPOINTS[kind]:
                for i in np.flatnonzero((flat64 > point) != (flat32 > point)):
                    found.append((name, int(i), 2 * point - flat64[i], 0.0))
            continue
        values64, index = _pool_windows(torch, modules[name], x64)
        values32, _ = _pool_windows(torch, modules[name], x32)
        rows = np.arange(len(values64))
        first64, first32 = values64.argmax(axis=1), values32.argmax(axis=1)
        for row in np.flatnonzero((first64 != first32) & (values64[rows, first64] != values64[rows, first32])):
            gap = values64[row, first64[row]] - values64[row, first32[row]]
            found.append((name, int(index[row, first32[row]]), values64[row, first64[row]] + 1e-3 * gap, 0.0))
    return found


class Flip:
    """A context that sets input elements of modules during forwards (entries of find_kinks or float32_branch)."""

    def __init__(self, torch, model, kinks):
        modules = dict(model.named_modules())
        self.edits = {}
        for name, index, value, _ in kinks:
            self.edits.setdefault(name, (modules[name], []))[1].append((index, value))
        self.torch, self.handles = torch, []

    def __enter__(self):
        torch = self.torch
        for module, edits in self.edits.values():
            def hook(module, args, edits=edits):
                x = args[0]
                shift = torch.zeros_like(x).reshape(-1)  # added, not assigned: the gradient still flows through
                for index, value in edits:
                    shift[index] = value - x.reshape(-1)[index].detach()
                return (x + shift.reshape(x.shape),) + tuple(args[1:])
            self.handles.append(module.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
