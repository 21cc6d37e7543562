"""Small building blocks shared by the model families. Parameter paths follow timm's module names."""
import math
import zlib

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal

# The keyed random layers' state, set by the trainer: RNG_COUNTER = micro-batch number x world size + rank (the train
# step adds the world size per micro-batch), RNG_SEED = a 32-bit mix of the run's seed. Their masks are a function of
# the run's position (exact on resume; MindSpore's Dropout keeps its generator state inside the kernel, where no
# checkpoint can reach it). Everything is int32 or float32 arithmetic: Ascend 910's AI Core has no int64 bitwise ops.
RNG_COUNTER = ms.Parameter(ms.Tensor(0, ms.int32), name="state.rng_counter", requires_grad=False)
RNG_SEED = ms.Parameter(ms.Tensor(0, ms.int32), name="state.rng_seed", requires_grad=False)
# odd multipliers below 2^31, int32 tensors (Mul, not Muls); int32 products wrap modulo 2^32 as uint32 products do
_MULTIPLIERS = (ms.Tensor(0x7FEB352D, ms.int32), ms.Tensor(0x5BD1E995, ms.int32))


def to_int32(value):
    """The int32 with the low 32 bits of a Python int (two's complement)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _shift_right(x, bits):
    """Logical right shift of int32 bit patterns (MindSpore's is arithmetic on signed values)."""
    return ops.bitwise_and(ops.bitwise_right_shift(x, bits), (1 << (32 - bits)) - 1)


def _hash32(x):
    """A 32-bit integer mix (xor-shift-multiply) of int32 bit patterns, as uint32 arithmetic computes it."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = x * _MULTIPLIERS[0]
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = x * _MULTIPLIERS[1]
    return ops.bitwise_xor(x, _shift_right(x, 16))


def keyed_uniform(shape, salt):
    """Uniform values in [0, 1) on a 2^-24 grid (exact in float32) of `shape`: a function of RNG_SEED, RNG_COUNTER,
    the layer's salt (an int32) and the element's index."""
    position = _hash32(ops.bitwise_xor(RNG_COUNTER, RNG_SEED))
    key = _hash32(ops.bitwise_xor(position, salt))
    count = 1
    for size in shape:
        count *= size
    index = ops.arange(0, count, dtype=ms.int32).reshape(shape)
    bits = _hash32(ops.bitwise_xor(_hash32(index), key))
    return _shift_right(bits, 8).astype(ms.float32) * (1.0 / (1 << 24))


def seek_keyed_random(seed, micro_batches_done, world_size, rank):
    """Set the keyed layers' state to a run position (the start, or a resume): each rank and micro-batch draws its
    own masks, a resumed run those of the uninterrupted one. The counter counts batches over all ranks: 1.2e7 for
    300 ImageNet epochs at 32 images per card, on any number of cards (room for 2^31)."""
    RNG_SEED.set_data(ms.Tensor(to_int32(seed * 0x9E3779B1), ms.int32))
    RNG_COUNTER.set_data(ms.Tensor(to_int32(micro_batches_done * world_size + rank), ms.int32))


class KeyedDropout(nn.Cell):
    """Dropout whose mask is keyed by the train step's counter (RNG_COUNTER) and the layer's name: the same step of
    a resumed run drops the same units. Identity in eval mode or with p = 0."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = float(p)
        self.salt = 0  # set from the layer's name by name_random_layers

    def construct(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = keyed_uniform(x.shape, self.salt) >= self.p
        return ops.select(keep, x / (1.0 - self.p), ops.zeros_like(x))


class KeyedDropPath(nn.Cell):
    """Stochastic depth (timm's DropPath): each sample's branch is dropped with probability p and kept ones scaled
    by 1 / (1 - p); the per-sample mask is keyed as KeyedDropout's. Identity in eval mode or with p = 0."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = float(p)
        self.salt = 0

    def construct(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = keyed_uniform((x.shape[0],) + (1,) * (x.ndim - 1), self.salt) >= self.p
        return ops.select(keep, x / (1.0 - self.p), ops.zeros_like(x))


class Mish(nn.Cell):
    """x tanh(softplus(x)) written as x n / (n + 2) with n = e^x (e^x + 2), and x itself above 20 (where the two
    agree in float32). MindSpore 2.10's CPU Mish returns NaN for large inputs and its CPU tanh is inexact near 0
    (the README's act_layer notes give the measured parity)."""

    def construct(self, x):
        e = ops.exp(ops.minimum(x, 20.0))
        n = e * (e + 2.0)
        return ops.select(x > 20.0, x, x * n / (n + 2.0))


ACTIVATIONS = {"relu": nn.ReLU, "mish": Mish, "silu": nn.SiLU}


def unwrap_amp(cell):
    """The cell inside mindspore.amp's output-cast wrapper (amp_level O2 wraps each BatchNorm), or the cell itself."""
    return cell._backbone if hasattr(cell, "_backbone") else cell


def name_random_layers(net):
    """Give every keyed random layer a salt from its parameter path, so layers draw independent masks."""
    for name, cell in net.cells_and_names():
        if hasattr(cell, "salt"):
            cell.salt = to_int32(zlib.crc32(name.encode()))
    return net


def replace_cell(net, path, cell):
    """Put `cell` at the dotted `path` inside net (e.g. "head.fc" or "classifier.6"), its parameters named by their
    full path (MindSpore names a cell set on a child by the child's attribute name alone)."""
    parent_path, _, attr = path.rpartition(".")
    parent = net
    for part in parent_path.split(".") if parent_path else ():
        parent = parent[int(part)] if part.isdigit() else getattr(parent, part)
    if attr.isdigit():
        parent[int(attr)] = cell
    else:
        setattr(parent, attr, cell)
    cell.update_parameters_name(path + ".")
    return cell


def conv2d(in_channels, out_channels, kernel_size, stride=1, groups=1, bias=False):
    """Conv2d with symmetric k//2 padding and He-normal (fan_out, ReLU) init, as torchvision and timm use."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad", padding=kernel_size // 2,
                     group=groups, has_bias=bias, weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


class ConvBnAct(nn.Cell):
    """Conv (no bias) -> BatchNorm -> activation (ReLU unless act_layer says), 'same' padding for odd kernels."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, act_layer="relu"):
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = ACTIVATIONS[act_layer]()

    def construct(self, x):
        return self.act(self.bn(self.conv(x)))


class SeparableConvBnAct(nn.Cell):
    """Depthwise conv -> pointwise conv -> BatchNorm -> activation."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, act_layer="relu"):
        super().__init__()
        self.conv_dw = conv2d(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.conv_pw = conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = ACTIVATIONS[act_layer]()

    def construct(self, x):
        return self.act(self.bn(self.conv_pw(self.conv_dw(x))))


class EffectiveSE(nn.Cell):
    """Effective squeeze-excitation (CenterMask): x * hard_sigmoid(conv1x1(mean(x)))."""

    def __init__(self, channels):
        super().__init__()
        self.fc = conv2d(channels, channels, 1, bias=True)

    def construct(self, x):
        # spatial axes flattened: MindSpore's CPU reductions (and the gradient of the broadcast product) are faster
        # over one axis; hard sigmoid written as clamp(x + 3, 0, 6) / 6, which ONNX export supports and which takes
        # bfloat16 (ReLU6 does not: amp_dtype bfloat16 would not compile)
        batch, channels, height, width = x.shape
        flat = x.reshape(batch, channels, height * width)
        squeezed = self.fc(flat.mean(axis=2).reshape(batch, channels, 1, 1))
        gate = ops.clamp(squeezed + 3.0, 0.0, 6.0) / 6.0
        return (flat * gate.reshape(batch, channels, 1)).reshape(batch, channels, height, width)


class EcaAttention(nn.Cell):
    """Efficient channel attention: a 1-D conv across the pooled channels, sigmoid gate."""

    def __init__(self, channels, gamma=2, beta=1):
        super().__init__()
        t = int(abs(math.log(channels, 2) + beta) / gamma)
        kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size, pad_mode="pad", padding=(kernel_size - 1) // 2, has_bias=False)
        self.gate = nn.Sigmoid()

    def construct(self, x):
        batch, channels = x.shape[0], x.shape[1]
        y = self.conv(x.mean(axis=(2, 3)).reshape(batch, 1, channels))
        return x * self.gate(y).reshape(batch, channels, 1, 1)


class MaxPool3x3s2(nn.Cell):
    """3x3 stride-2 max-pool: padded by 1 (1e100, torch padding=1) or unpadded with ceil mode (timm).

    Written as padding by concatenation and a valid pool: it exports to ONNX (MindSpore's padded MaxPool2d becomes
    MaxPool3DWithArgmax, which the ONNX exporter lacks) and its gradient is faster than the Pad op's. After ReLU
    (non-negative outputs) zero padding equals the usual -inf padding; after Mish or SiLU, which go below zero, the
    padding is -inf.
    """

    def __init__(self, padded, pad_value=0.0):
        super().__init__()
        self.padded = padded
        self.pad_value = pad_value
        self.pool = nn.MaxPool2d(3, 2, pad_mode="valid")

    def _pad(self, x, axis, before, after):
        # the parts are built as a new tuple: a list filled with insert() compiled in GRAPH mode to a pool whose
        # input gradient was zero (and failed to compile inside the 1e100 stage)
        shape = list(x.shape)
        shape[axis] = before
        head = (ops.full(tuple(shape), self.pad_value, dtype=x.dtype),) if before else ()
        shape[axis] = after
        tail = (ops.full(tuple(shape), self.pad_value, dtype=x.dtype),) if after else ()
        return ops.concat(head + (x,) + tail, axis) if before + after else x

    def construct(self, x):
        if self.padded:
            x = self._pad(self._pad(x, 3, 1, 1), 2, 1, 1)
        else:  # ceil mode: extend bottom/right so that the last partial window is kept
            x = self._pad(self._pad(x, 3, 0, (x.shape[3] - 3) % 2), 2, 0, (x.shape[2] - 3) % 2)
        return self.pool(x)


class ClassifierHead(nn.Cell):
    """Global average pool -> dropout -> linear."""

    def __init__(self, in_features, num_classes, drop_rate=0.0):
        super().__init__()
        self.drop = KeyedDropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Dense(in_features, num_classes)

    def construct(self, x):
        return self.fc(self.drop(ops.mean(x, axis=(2, 3))))
