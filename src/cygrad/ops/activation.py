"""Activation Functions. Costly ones run a fused Cython kernel (``_C.activation``) forward and
backward; when the backward itself must be differentiable (``create_graph=True``) the derivative
is evaluated with tensor ops instead, so higher-order gradients work.
"""
import math

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import activation as K
from .elementwise import where, sigmoid, erf, exp, tanh
from .._tensor import _wrap_dim

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _kernel_input(x, name):
    xd = x._data
    if xd.dtype.kind != "f":
        raise NotImplementedError(f"\"{name}\" not implemented for '{D.scalar_name(x.dtype)}'")
    if xd.dtype.itemsize < 4:
        xd = xd.astype(np.float32)
    return np.ascontiguousarray(xd)


class _Fused(Function):
    """y = f(x; params) with kernels ``<kernel>_forward`` / ``<kernel>_backward``."""

    _builtin = True
    kernel = None

    @classmethod
    def forward(cls, ctx, x, *params):
        xd = _kernel_input(x, cls.kernel)
        out = np.empty_like(xd)
        getattr(K, cls.kernel + "_forward")(xd.reshape(-1), out.reshape(-1), *params)
        ctx.save_for_backward(x)
        ctx.params = params
        return out.astype(x._data.dtype, copy=False)

    @classmethod
    def backward(cls, ctx, g):
        x, = ctx.saved_tensors
        none = (None,) * len(ctx.params)
        if state.enabled:  # differentiable path for higher-order gradients
            return (g * cls.derivative(x, *ctx.params),) + none
        xd = _kernel_input(x, cls.kernel)
        gd = np.ascontiguousarray(g._data, dtype=xd.dtype)
        out = np.empty_like(xd)
        getattr(K, cls.kernel + "_backward")(xd.reshape(-1), gd.reshape(-1), out.reshape(-1), *ctx.params)
        return (Tensor._make(out.astype(x._data.dtype, copy=False)),) + none


class Gelu(_Fused):
    _builtin = True
    kernel = "gelu"

    @staticmethod
    def derivative(x, tanh_approx):
        if tanh_approx:
            k = math.sqrt(2.0 / math.pi)
            t = tanh((x + 0.044715 * x ** 3) * k)
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
        return 0.5 * (1 + erf(x * (1 / math.sqrt(2.0)))) + x * exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


class Silu(_Fused):
    _builtin = True
    kernel = "silu"

    @staticmethod
    def derivative(x):
        s = sigmoid(x)
        return s * (1 + x * (1 - s))


class Mish(_Fused):
    _builtin = True
    kernel = "mish"

    @staticmethod
    def derivative(x):
        t = tanh(softplus(x))
        return t + x * (1 - t * t) * sigmoid(x)


class Softplus(_Fused):
    _builtin = True
    kernel = "softplus"

    @staticmethod
    def derivative(x, beta, threshold):
        return where(x * beta > threshold, 1.0, sigmoid(x * beta))


class Elu(_Fused):
    _builtin = True
    kernel = "elu"

    @staticmethod
    def derivative(x, alpha, scale, input_scale):
        return where(x > 0, scale, exp(x * input_scale) * (scale * alpha * input_scale))


class LogSigmoid(_Fused):
    _builtin = True
    kernel = "logsigmoid"

    @staticmethod
    def derivative(x):
        return sigmoid(-x)


def _inplace_result(input, fn, inplace):
    """``fn(input)``; with ``inplace`` its result is written into ``input``.

    A recorded in-place op computes on a snapshot of ``input`` (as ``inplace.inplace_apply``
    does), so the input it saves for backward is not the tensor being overwritten.
    """
    if not inplace:
        return fn(input)
    from .inplace import _rebase, _write, _snapshot, _check_leaf
    if state.enabled and input._requires_grad:
        _check_leaf(input)
        return _rebase(input, fn(_snapshot(input)))
    out = fn(input)
    if out._requires_grad:
        return _rebase(input, out)
    _write(input, out._data)
    return input


def gelu(input, approximate="none"):
    """Gaussian error linear unit: ``x * Phi(x)`` (``approximate='tanh'`` for the tanh form).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.gelu(cygrad.tensor([0.0, 1.0]))
    tensor([0.0000, 0.8413])
    """
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh.")
    return Gelu.apply(input, approximate == "tanh")


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (swish).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.silu(cygrad.tensor([0.0, 1.0]))
    tensor([0.0000, 0.7311])
    """
    return _inplace_result(input, lambda input: Silu.apply(input), inplace)


def mish(input, inplace=False):
    """``x * tanh(softplus(x))``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.mish(cygrad.tensor([0.0, 1.0]))
    tensor([0.0000, 0.8651])
    """
    return _inplace_result(input, lambda input: Mish.apply(input), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.softplus(cygrad.tensor([0.0]))
    tensor([0.6931])
    """
    if beta == 0:
        raise RuntimeError("softplus: beta must be nonzero")
    return Softplus.apply(input, float(beta), float(threshold))


def elu(input, alpha=1.0, inplace=False):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.elu(cygrad.tensor([-1.0, 1.0]))
    tensor([-0.6321,  1.0000])
    """
    return _inplace_result(input, lambda input: Elu.apply(input, float(alpha), 1.0, 1.0), inplace)


def selu(input, inplace=False):
    """Scaled ELU with the self-normalising constants.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.selu(cygrad.tensor([1.0]))
    tensor([1.0507])
    """
    return _inplace_result(input, lambda input: Elu.apply(input, _SELU_ALPHA, _SELU_SCALE, 1.0), inplace)


def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.celu(cygrad.tensor([-1.0]), alpha=2.0)
    tensor([-0.7869])
    """
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: celu alpha must be nonzero")
    return _inplace_result(input, lambda input: Elu.apply(input, float(alpha), 1.0, 1.0 / alpha), inplace)


def logsigmoid(input):
    """``log(sigmoid(x))`` computed stably.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.logsigmoid(cygrad.tensor([0.0]))
    tensor([-0.6931])
    """
    return LogSigmoid.apply(input)


class Relu(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x):
        xd = x._data
        if xd.dtype.char in "fd":
            xd = np.ascontiguousarray(xd)
            y = np.empty_like(xd)
            K.relu_forward(xd.reshape(-1), y.reshape(-1))
        else:
            y = np.maximum(xd, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        yd = y._data
        if state.enabled or yd.dtype.char not in "fd":  # differentiable path (create_graph=True)
            return where(y > 0, g, 0.0)
        yd = np.ascontiguousarray(yd)
        gd = np.ascontiguousarray(g._data, dtype=yd.dtype)
        out = np.empty_like(yd)
        K.relu_backward(yd.reshape(-1), gd.reshape(-1), out.reshape(-1))
        return Tensor._make(out)


def relu(input, inplace=False):
    """``max(x, 0)``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.relu(cygrad.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    if input._data.dtype == np.bool_:
        raise RuntimeError("Boolean inputs not supported for relu")
    return _inplace_result(input, lambda input: Relu.apply(input), inplace)


class LeakyRelu(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, slope):
        xd = x._data
        ctx.save_for_backward(x)
        ctx.slope = slope
        return np.where(xd > 0, xd, xd * np.asarray(slope, xd.dtype))

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return where(x > 0, g, g * ctx.slope), None


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` if ``x > 0`` else ``negative_slope * x``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.leaky_relu(cygrad.tensor([-1.0, 1.0]), 0.1)
    tensor([-0.1000,  1.0000])
    """
    return _inplace_result(input, lambda input: LeakyRelu.apply(input, negative_slope), inplace)


class Hardtanh(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, lo, hi):
        xd = x._data
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(xd, lo, hi).astype(xd.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return where((x > ctx.lo) & (x < ctx.hi), g, 0.0), None, None


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Clamp to ``[min_val, max_val]`` (zero gradient outside and on the edges).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.hardtanh(cygrad.tensor([-2.0, 0.5]))
    tensor([-1.0000,  0.5000])
    """
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _inplace_result(input, lambda input: Hardtanh.apply(input, min_val, max_val), inplace)


def relu6(input, inplace=False):
    """``min(max(x, 0), 6)``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.relu6(cygrad.tensor([-1.0, 8.0]))
    tensor([0., 6.])
    """
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.hardsigmoid(cygrad.tensor([0.0]))
    tensor([0.5000])
    """
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"hardsigmoid_cpu\" not implemented for '{D.scalar_name(input.dtype)}'")
    return _inplace_result(input, lambda input: Hardtanh.apply(input + 3, 0.0, 6.0) / 6, inplace)


def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.hardswish(cygrad.tensor([1.0]))
    tensor([0.6667])
    """
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"hardswish_cpu\" not implemented for '{D.scalar_name(input.dtype)}'")
    return _inplace_result(input, lambda input: input * Hardtanh.apply(input + 3, 0.0, 6.0) / 6, inplace)


def softsign(input):
    """``x / (1 + |x|)``."""
    return input / (input.abs() + 1)


def tanhshrink(input):
    """``x - tanh(x)``."""
    return input - tanh(input)


def threshold(input, threshold, value, inplace=False):
    """``x`` where ``x > threshold`` else ``value``."""
    return _inplace_result(input, lambda input: where(input > threshold, input, value), inplace)


def glu(input, dim=-1):
    """Gated linear unit: ``a * sigmoid(b)`` for the halves ``a, b`` of ``dim``."""
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {_wrap_dim(dim, input.ndim)} is size {n}")
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


class Softmax(Function):
    """softmax / log_softmax along ``dim`` with the fused row kernel."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, dim, log):
        xd = _kernel_input(x, "softmax")
        moved = np.ascontiguousarray(np.moveaxis(xd, dim, -1)) if dim != xd.ndim - 1 else xd
        cols = moved.shape[-1] if moved.ndim else 1
        x2 = moved.reshape(-1, cols)
        out = np.empty_like(x2)
        K.softmax_forward(x2, out, log)
        y = out.reshape(moved.shape)
        if dim != xd.ndim - 1:
            y = np.ascontiguousarray(np.moveaxis(y, -1, dim))
        y = y.astype(x._data.dtype, copy=False)
        ctx.save_for_backward(y)
        ctx.dim, ctx.log = dim, log
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        dim = ctx.dim
        if state.enabled:
            if ctx.log:
                return g - exp(y) * g.sum(dim, keepdim=True), None, None
            return y * (g - (g * y).sum(dim, keepdim=True)), None, None
        yd = np.ascontiguousarray(y._data)
        gd = np.ascontiguousarray(g._data, dtype=yd.dtype)
        last = dim == yd.ndim - 1
        if not last:
            yd = np.ascontiguousarray(np.moveaxis(yd, dim, -1))
            gd = np.ascontiguousarray(np.moveaxis(gd, dim, -1))
        cols = yd.shape[-1] if yd.ndim else 1
        out = np.empty_like(yd)
        K.softmax_backward(yd.reshape(-1, cols), gd.reshape(-1, cols), out.reshape(-1, cols), ctx.log)
        if not last:
            out = np.moveaxis(out, -1, dim)
        return Tensor._make(out), None, None


def _softmax_dim(input, dim, name):
    if dim is None:
        import warnings
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                      "as an argument.", stacklevel=3)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return _wrap_dim(dim, input._data.ndim)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.softmax(cygrad.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    d = _softmax_dim(input, dim, "softmax")
    if dtype is not None:
        input = input.to(dtype)
    if input._data.ndim == 0:
        return Softmax.apply(input.reshape(1), 0, False).reshape(())
    return Softmax.apply(input, d, False)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.log_softmax(cygrad.tensor([0.0, 0.0]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    d = _softmax_dim(input, dim, "log_softmax")
    if dtype is not None:
        input = input.to(dtype)
    if input._data.ndim == 0:
        return Softmax.apply(input.reshape(1), 0, True).reshape(())
    return Softmax.apply(input, d, True)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """``softmax(-x)`` along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.softmin(cygrad.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    return softmax(-input, _softmax_dim(input, dim, "softmin"), dtype=dtype)
