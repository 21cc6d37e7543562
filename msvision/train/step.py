"""The train step Cell: forward + backward with loss scaling, all-reduce, overflow skip, clipping, accumulation, EMA.

Compiled as one graph in GRAPH_MODE. A step whose gradients are not finite is skipped (no update) and, with the
dynamic scaler, halves the loss scale. All state lives in Parameters so a checkpoint can restore it exactly.
The step also keeps its statistics on the device (loss sum, batches, skipped updates, consecutive non-finite
steps), so the host reads them only when it logs or saves (read_stats), never once per step.
"""
import contextlib

import mindspore as ms
from mindspore import nn, ops
from mindspore.amp import DynamicLossScaler, StaticLossScaler

from msvision.models.layers import RNG_COUNTER, seek_keyed_random


_accumulate = ops.MultitypeFuncGraph("accumulate")
_ema_update = ops.MultitypeFuncGraph("ema_update")
_copy = ops.MultitypeFuncGraph("copy")
_zero = ops.MultitypeFuncGraph("zero")
_total = ops.MultitypeFuncGraph("total")


@_accumulate.register("Tensor", "Tensor", "Tensor")
def _accumulate_one(scale, accum, grad):
    return ops.assign_add(accum, grad * scale)


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _ema_update_one(decay, ema, param):
    return ops.assign(ema, ema * decay + param.astype(ema.dtype) * (1.0 - decay))


@_copy.register("Tensor")
def _copy_one(value):
    return value * 1


@_zero.register("Tensor")
def _zero_one(value):
    return ops.assign(value, ops.zeros_like(value))


@_total.register("Tensor")
def _total_one(value):
    # a reduction over one axis at a time: MindSpore's CPU kernel is slower reducing all axes at once
    return value.astype(ms.float32).reshape(value.shape[0], -1).sum(axis=1).sum()


def all_finite(tensors, hyper_map):
    """True when no tensor (gradients in the step, weights before a save) holds inf or NaN.

    Both propagate through a sum, so a sum per tensor and one isfinite on their total replace
    mindspore.amp.all_finite (isfinite and a boolean reduction per tensor), which is costly on CPU.
    A total beyond the float32 range also reads as an overflow; such an update would be useless anyway.
    """
    return ops.isfinite(ops.addn(hyper_map(_total, tensors)))


class SelectLossScaler(DynamicLossScaler):
    """mindspore.amp.DynamicLossScaler (x factor after `window` finite steps, / factor down to 1 on a non-finite
    one) with its window counter advanced by selects: MindSpore's own update, ((counter + 1) % window) x finite,
    compiles to an int32 remainder and a bool x int32 multiply."""

    def adjust(self, grads_finite):
        grown = self.scale_value * self.scale_factor
        window_full = self.counter >= self.scale_window - 1
        raised = ops.select(ops.logical_and(window_full, ops.isfinite(grown)), grown, self.scale_value)
        lowered = ops.maximum(ops.ones((), self.scale_value.dtype), self.scale_value / self.scale_factor)
        ops.assign(self.scale_value, ops.select(grads_finite, raised, lowered))
        counting = ops.logical_and(grads_finite, ops.logical_not(window_full))
        ops.assign(self.counter, ops.select(counting, self.counter + 1, ops.zeros_like(self.counter)))
        return True


class NetWithLoss(nn.Cell):
    """loss(net(images), labels), plus custom_l2 x net.custom_l2() when custom_l2 > 0 (RepVGG's custom L2)."""

    def __init__(self, net, loss_fn, custom_l2=0.0):
        super().__init__(auto_prefix=False)
        self.net = net
        self.loss_fn = loss_fn
        self.custom_l2 = custom_l2

    def construct(self, images, labels):
        loss = self.loss_fn(self.net(images).astype(ms.float32), labels)
        if self.custom_l2 > 0.0:
            loss = loss + self.custom_l2 * self.net.custom_l2()
        return loss


class ScaledLoss(nn.Cell):
    """The loss times a scale factor: differentiating it gives scaled gradients (loss scaling)."""

    def __init__(self, net_with_loss):
        super().__init__(auto_prefix=False)
        self.net_with_loss = net_with_loss

    def construct(self, images, labels, scale):
        return self.net_with_loss(images, labels) * scale


class TrainStep(nn.Cell):
    """construct(images, labels, apply) -> (loss, finite); apply=False only accumulates gradients. custom_l2: the
    coefficient of RepVGG's custom L2 in the loss (weight_decay / 2; 0 = off)."""

    def __init__(self, net, loss_fn, optimizer, loss_scale_type="fixed", loss_scale=1.0, clip_grad=False,
                 clip_value=15.0, grad_accum_steps=1, ema=False, ema_decay=0.9999, custom_l2=0.0, parallel=False,
                 world_size=1):
        super().__init__(auto_prefix=False)
        self.net_with_loss = NetWithLoss(net, loss_fn, custom_l2)
        self.loss_state = tuple(getattr(loss_fn, "state", ()))  # the loss's training state (EQLv2's statistics)
        self.loss_statistics = getattr(loss_fn, "statistics", None)  # adds a step's part after the backward
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.dynamic = loss_scale_type == "dynamic"
        # with a fixed scale of 1 there is nothing to scale: skip two passes over all gradients
        self.scaled = self.dynamic or loss_scale != 1.0
        # one forward for the loss and the gradients: a separate loss call runs the network (and updates the
        # BatchNorm statistics) twice in PYNATIVE mode
        self.loss_and_grads = ms.value_and_grad(ScaledLoss(self.net_with_loss) if self.scaled else self.net_with_loss,
                                                None, self.weights)
        self.scaler = SelectLossScaler(loss_scale, 2, 1000) if self.dynamic else StaticLossScaler(loss_scale)
        self.reducer = nn.DistributedGradReducer(self.weights, True, world_size) if parallel else nn.Identity()
        self.world_size = world_size
        self.rng_counter = RNG_COUNTER  # keyed dropout's counter: advanced by world_size per micro-batch
        self.rng_stride = ms.Tensor(world_size, ms.int32)
        self.clip = clip_grad
        self.clip_value = clip_value
        self.accum_scale = ms.Tensor(1.0 / grad_accum_steps, ms.float32)
        self.accum = self.weights.clone(prefix="optim.accum", init="zeros") if grad_accum_steps > 1 else None
        self.use_ema = ema
        self.ema_decay = ema_decay
        self.model_params = ms.ParameterTuple(net.get_parameters())
        self.ema = self.model_params.clone(prefix="ema", init="same") if ema else None
        self.hyper_map = ops.HyperMap()
        self.loss_sum = ms.Parameter(ms.Tensor(0.0, ms.float32), name="stats.loss_sum", requires_grad=False)
        self.batches = ms.Parameter(ms.Tensor(0, ms.int32), name="stats.batches", requires_grad=False)
        self.skipped = ms.Parameter(ms.Tensor(0, ms.int32), name="stats.skipped", requires_grad=False)
        self.bad_run = ms.Parameter(ms.Tensor(0, ms.int32), name="stats.bad_run", requires_grad=False)

    def _record(self, loss, finite):
        """Add one batch to the device-side statistics. A step is 'bad' when its loss is not finite, or its gradients
        are not and the scaler cannot absorb it (fixed scale, or a dynamic scale already at 1)."""
        skipped = ops.logical_not(finite)
        stuck = ops.logical_and(skipped, self.scaler.scale_value <= 1.0) if self.dynamic else skipped
        bad = ops.logical_or(ops.logical_not(ops.isfinite(loss)), stuck)
        run = ops.select(bad, self.bad_run + 1, ops.zeros_like(self.bad_run))
        updates = (ops.assign(self.bad_run, run), ops.assign_add(self.loss_sum, loss),
                   ops.assign_add(self.batches, ops.ones_like(self.batches)),
                   ops.assign_add(self.skipped, skipped.astype(ms.int32)))
        return ops.depend(loss, updates)

    def read_stats(self):
        """Host read of the statistics since the last read (then reset); bad_run is not reset."""
        stats = dict(loss_sum=float(self.loss_sum.asnumpy()), batches=int(self.batches.asnumpy()),
                     skipped=int(self.skipped.asnumpy()), bad_run=int(self.bad_run.asnumpy()),
                     loss_scale=float(self.scaler.scale_value.asnumpy()))
        for param in (self.loss_sum, self.batches, self.skipped):
            ops.assign(param, ops.zeros_like(param))
        return stats

    @contextlib.contextmanager
    def ema_weights(self):
        """Swap the EMA weights into the model (for evaluation), and back afterwards; a no-op without EMA."""
        if self.ema is None:
            yield
            return
        saved = [p.asnumpy().copy() for p in self.model_params]
        for param, ema in zip(self.model_params, self.ema):
            param.set_data(ms.Tensor(ema.asnumpy(), param.dtype))
        try:
            yield
        finally:
            for param, value in zip(self.model_params, saved):
                param.set_data(ms.Tensor(value, param.dtype))

    def _update_ema(self):
        step = self.optimizer.global_step.astype(ms.float32)
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        return self.hyper_map(ops.partial(_ema_update, decay), self.ema, self.model_params)

    def seek_random(self, seed, micro_batches_done, rank):
        """Set keyed dropout's state to a run position (models.layers.seek_keyed_random)."""
        seek_keyed_random(seed, micro_batches_done, self.world_size, rank)

    def construct(self, images, labels, apply=True):
        if self.scaled:
            scale = self.scaler.scale_value.astype(ms.float32)
            loss, grads = self.loss_and_grads(images, labels, scale)
            loss = loss / scale
            grads = self.scaler.unscale(self.reducer(grads))
        else:
            loss, grads = self.loss_and_grads(images, labels)
            grads = self.reducer(grads)
        loss = ops.depend(loss, ops.assign_add(self.rng_counter, self.rng_stride))
        if self.loss_statistics is not None:
            loss = ops.depend(loss, self.loss_statistics())
        if self.accum is not None:
            grads = ops.depend(grads, self.hyper_map(ops.partial(_accumulate, self.accum_scale), self.accum, grads))
            if not apply:
                return self._record(loss, ops.ones((), ms.bool_)), True
            grads = self.hyper_map(_copy, self.accum)
        finite = all_finite(grads, self.hyper_map)
        if self.dynamic:
            self.scaler.adjust(finite)
        if finite:
            if self.clip:
                grads = ops.clip_by_global_norm(grads, self.clip_value)
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self._update_ema())
        if self.accum is not None:
            loss = ops.depend(loss, self.hyper_map(_zero, self.accum))
        return self._record(loss, finite), finite


def sink_on_device(step, dataset, sink_size):
    """Ascend/GPU only, never run on this project's CPU machines: a function that runs `sink_size` train steps on
    the device per call, fed from the dataset's device queue (mindspore.data_sink)."""
    return ms.data_sink(lambda images, labels: step(images, labels), dataset, sink_size=sink_size)
