"""Optimizers whose step is a named PyTorch reference's, where MindSpore's differs or does not run on every device.

- Adam = torch.optim.Adam (L2 decay added to the gradient; bias-corrected, eps outside the square root of the
  corrected second moment). MindSpore's Adam folds the bias correction into the step size, which moves eps.
- RMSprop = torch.optim.RMSprop (v = alpha v + (1 - alpha) g^2; buf = momentum buf + g / (sqrt(v) + eps);
  p -= lr buf). MindSpore's RMSProp is TensorFlow's (eps inside the square root, lr inside the momentum buffer).
- Lamb = timm's Lamb without its internal gradient clipping (set clip_grad: true, clip_value: 1.0 for timm's
  default max_grad_norm 1.0): Adam moments with bias correction, the decay added to the update, and the update
  scaled by ||p|| / ||update|| for parameters that are decayed. MindSpore's Lamb kernel does not run on CPU and
  scales every parameter.
- Lars = timm's Lars: momentum SGD (Nesterov if set) on g' = ratio (g + wd p), ratio = coefficient ||p|| /
  (||g|| + wd ||p|| + eps) for decayed parameters. MindSpore's LARSUpdate kernel does not run on CPU.
Decay groups come from optim.py (weight_decay_filter); a parameter whose decay is 0 is neither decayed nor adapted,
as in timm. The step counter is the optimizer's global_step (one per applied update).
"""
import math

import mindspore as ms
from mindspore import nn, ops

_adam = ops.MultitypeFuncGraph("adam")
_rmsprop = ops.MultitypeFuncGraph("rmsprop")
_lamb = ops.MultitypeFuncGraph("lamb")
_lars = ops.MultitypeFuncGraph("lars")


def _norm(x):
    return ops.sqrt((x * x).sum())


def _trust(ratio, param_norm, other_norm):
    """The trust ratio where both norms are positive, else 1 (timm)."""
    ok = ops.logical_and(param_norm > 0, other_norm > 0)
    return ops.select(ok, ratio, ops.ones_like(ratio))


# Constants such as 1 - beta2 are computed on the host in float64 and passed in: MindSpore compiled `1 - beta2` inside
# the graph in float32 once the process had run in PYNATIVE mode.


@_adam.register("Tuple", "Number", "Tensor", "Tensor", "Tensor", "Number", "Tensor", "Tensor", "Tensor", "Tensor")
def _adam_step(betas, eps, bias1, bias2, lr, decay, param, m, v, grad):
    beta1, rest1, beta2, rest2 = betas
    grad = grad + decay * param
    m_new = m * beta1 + grad * rest1
    v_new = v * beta2 + grad * grad * rest2
    denom = ops.sqrt(v_new) / ops.sqrt(bias2) + eps
    update = m_new / denom * (lr / bias1)
    return ops.depend(ops.assign_sub(param, update), (ops.assign(m, m_new), ops.assign(v, v_new)))


@_rmsprop.register("Tuple", "Number", "Number", "Tensor", "Number", "Tensor", "Tensor", "Tensor", "Tensor")
def _rmsprop_step(alphas, momentum, eps, lr, decay, param, v, buf, grad):
    alpha, rest = alphas
    grad = grad + decay * param
    v_new = v * alpha + grad * grad * rest
    step = grad / (ops.sqrt(v_new) + eps)
    if momentum > 0:
        step = buf * momentum + step
        return ops.depend(ops.assign_sub(param, lr * step), (ops.assign(v, v_new), ops.assign(buf, step)))
    return ops.depend(ops.assign_sub(param, lr * step), ops.assign(v, v_new))


@_lamb.register("Tuple", "Number", "Tensor", "Tensor", "Tensor", "Number", "Tensor", "Tensor", "Tensor", "Tensor")
def _lamb_step(betas, eps, bias1, bias2, lr, decay, param, m, v, grad):
    beta1, rest1, beta2, rest2 = betas
    m_new = m * beta1 + grad * rest1
    v_new = v * beta2 + grad * grad * rest2
    update = (m_new / bias1) / (ops.sqrt(v_new) / ops.sqrt(bias2) + eps)
    if decay > 0:
        update = update + decay * param
        param_norm, update_norm = _norm(param), _norm(update)
        update = update * _trust(param_norm / update_norm, param_norm, update_norm)
    return ops.depend(ops.assign_sub(param, lr * update), (ops.assign(m, m_new), ops.assign(v, v_new)))


@_lars.register("Number", "Number", "Number", "Bool", "Tensor", "Number", "Tensor", "Tensor", "Tensor")
def _lars_step(coefficient, eps, momentum, nesterov, lr, decay, param, buf, grad):
    if decay > 0:
        param_norm, grad_norm = _norm(param), _norm(grad)
        ratio = coefficient * param_norm / (grad_norm + param_norm * decay + eps)
        grad = (grad + decay * param) * _trust(ratio, param_norm, grad_norm)
    buf_new = buf * momentum + grad
    step = grad + momentum * buf_new if nesterov else buf_new
    return ops.depend(ops.assign_sub(param, lr * step), ops.assign(buf, buf_new))


class _Optimizer(nn.Optimizer):
    """Shared plumbing: per-parameter learning rates and decays, the step count as a float."""

    def _setup(self, params):
        count = len(self._parameters)
        decays = self.weight_decay if self.is_group else (self.weight_decay,) * count
        self.decays = tuple(float(d) for d in decays)
        self.count = count

    def lrs(self):
        lr = self.get_lr()
        return lr if self.is_group_lr else (lr,) * self.count

    def next_step(self):
        """Advance global_step; returns the new step number as float32 (1 on the first update)."""
        step = ops.depend(self.global_step, self.assignadd(self.global_step, self.global_step_increase_tensor))
        return step.reshape(()).astype(ms.float32)

    def bias_corrections(self, step):
        """1 - beta1^t and 1 - beta2^t in float32 as -expm1(t log(beta)), log(beta) taken on the host in float64: no
        float64 op in the graph (the AI Core has none) and no cancellation in 1 - beta^t for beta near 1."""
        return tuple(-ops.expm1(step * math.log(beta)) for beta in (self.beta1, self.beta2))


class Adam(_Optimizer):
    rule = _adam  # Lamb: the same moments, another update

    def __init__(self, params, learning_rate, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(learning_rate, params)
        self._setup(params)
        self.beta1, self.beta2, self.eps = float(betas[0]), float(betas[1]), float(eps)
        self.betas = (self.beta1, 1.0 - self.beta1, self.beta2, 1.0 - self.beta2)
        self.m = self._parameters.clone(prefix="exp_avg", init="zeros")
        self.v = self._parameters.clone(prefix="exp_avg_sq", init="zeros")

    def construct(self, gradients):
        lrs = self.lrs()
        bias1, bias2 = self.bias_corrections(self.next_step())
        return self.hyper_map(ops.partial(self.rule, self.betas, self.eps, bias1, bias2), lrs,
                              self.decays, self._parameters, self.m, self.v, gradients)


class RMSprop(_Optimizer):
    def __init__(self, params, learning_rate, alpha=0.99, momentum=0.0, eps=1e-8):
        super().__init__(learning_rate, params)
        self._setup(params)
        self.alphas, self.momentum, self.eps = (float(alpha), 1.0 - float(alpha)), float(momentum), float(eps)
        self.v = self._parameters.clone(prefix="square_avg", init="zeros")
        self.buf = self._parameters.clone(prefix="momentum_buffer", init="zeros")

    def construct(self, gradients):
        lrs = self.lrs()
        self.next_step()
        return self.hyper_map(ops.partial(_rmsprop, self.alphas, self.momentum, self.eps), lrs, self.decays,
                              self._parameters, self.v, self.buf, gradients)


class Lamb(Adam):
    rule = _lamb

    def __init__(self, params, learning_rate, betas=(0.9, 0.999), eps=1e-6):
        super().__init__(params, learning_rate, betas, eps)


class Lars(_Optimizer):
    def __init__(self, params, learning_rate, momentum=0.9, nesterov=False, coefficient=0.001, eps=1e-8):
        super().__init__(learning_rate, params)
        self._setup(params)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.coefficient, self.eps = float(coefficient), float(eps)
        self.buf = self._parameters.clone(prefix="momentum_buffer", init="zeros")

    def construct(self, gradients):
        lrs = self.lrs()
        self.next_step()
        return self.hyper_map(ops.partial(_lars, self.coefficient, self.eps, self.momentum, self.nesterov),
                              lrs, self.decays, self._parameters, self.buf, gradients)
