"""Normalization (batch/layer/group/instance/rms norm, local_response_norm) over ``_C.norm``.

Each fused op is one ``Function`` whose forward is one kernel call (statistics accumulated in
double in one pass, then the normalisation and the affine map, see ``_C/norm.pyx``) and whose
first-order backward is one kernel call computing the input gradient together with the sums
that give the weight and bias gradients. When the backward is itself recorded
(``create_graph=True``) the gradients are written with differentiable tensor ops instead, so
higher-order gradients work.

``local_response_norm`` and ``normalize`` are composites of differentiable tensor ops.
"""
import math
import numbers

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import norm as K

__all__ = ["batch_norm", "instance_norm", "layer_norm", "group_norm", "rms_norm", "local_response_norm",
           "normalize"]


# ---- shared helpers ----------------------------------------------------------------------------------------------
def _shape_str(shape):
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _compute_dtype(x, name):
    """The ndarray dtype the kernels run in for ``x`` (float32 / float64); raises for non-floats."""
    npd = x._data.dtype
    if npd.kind != "f":
        raise NotImplementedError(f"\"{name}\" not implemented for '{D.scalar_name(x.dtype)}'")
    return np.dtype(np.float32) if npd.itemsize < 4 else npd


def _check_param_dtype(x, params):
    """torch's CPU kernels reject parameters of another floating dtype than the input."""
    xd = x._data.dtype
    for p in params:
        if p is None or p._data.dtype == xd:
            continue
        if xd == np.float32 or xd.itemsize < 4:
            raise RuntimeError(f"mixed dtype (CPU): expect parameter to have scalar type of "
                               f"{D.scalar_name(x.dtype)}")
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _array(x, dt):
    """C-contiguous ndarray of ``x`` (a Tensor) in dtype ``dt`` (no copy when already so)."""
    return np.ascontiguousarray(x._data, dtype=dt)


def _vector(p, n, dt, fill):
    """The 1-D parameter array of ``p`` (a Tensor or None -> ``fill``), length ``n``."""
    if p is None:
        return np.full(n, fill, dt)
    return np.ascontiguousarray(p._data, dtype=dt).reshape(n)


def _nc3(x, dt):
    """``x`` (N, C, *) as a C-contiguous (N, C, prod(*)) array in dtype ``dt``."""
    xd = _array(x, dt)
    return xd.reshape(xd.shape[0], xd.shape[1], math.prod(xd.shape[2:]))


def _backward_arrays(x, g, dt, need_x):
    """(x3, g3, dx) for the backward kernels: (N, C, L) arrays, dx empty unless ``need_x``."""
    x3 = _nc3(x, dt)
    g3 = _array(g, dt).reshape(x3.shape)
    return x3, g3, np.empty_like(x3) if need_x else np.empty((0, 0, 0), dt)


def _input_grad_tensor(dx, x, need_x):
    """The kernel's input gradient ``dx`` as a Tensor of ``x``'s shape and dtype (None unless ``need_x``)."""
    return Tensor._make(dx.reshape(x._data.shape).astype(x._data.dtype, copy=False)) if need_x else None


def _update_running_stats(running_mean, running_var, momentum, mean, var):
    """``running = (1 - momentum) * running + momentum * new`` for both statistics (in-place buffer updates)."""
    for t, new in ((running_mean, mean), (running_var, var)):
        np.copyto(t._data, ((1 - momentum) * t._data.astype(np.float64) + momentum * new).reshape(t._data.shape),
                  casting="unsafe")
        t._version_box[0] += 1


def _const(arr, dt, shape):
    return Tensor._make(np.ascontiguousarray(arr, dtype=dt).reshape(shape))


def _normalized(x, dims, eps, rms):
    """(xhat, rstd) of ``x`` over ``dims`` with tensor ops (the differentiable path)."""
    if rms:
        rstd = ((x * x).mean(dims, keepdim=True) + eps).rsqrt()
        return x * rstd, rstd
    xc = x - x.mean(dims, keepdim=True)
    rstd = ((xc * xc).mean(dims, keepdim=True) + eps).rsqrt()
    return xc * rstd, rstd


def _input_grad(gw, xhat, rstd, dims, rms):
    """d loss / d x of ``xhat * w`` given ``gw = g * w`` (statistics over ``dims``), tensor ops."""
    proj = xhat * (gw * xhat).mean(dims, keepdim=True)
    if rms:
        return rstd * (gw - proj)
    return rstd * (gw - gw.mean(dims, keepdim=True) - proj)


# ---- batch norm --------------------------------------------------------------------------------------------------
class BatchNorm(Function):
    """``(x - mean) / sqrt(var + eps) * w + b`` per channel (dim 1); batch statistics over all other
    dims in training (and an in-place update of the running statistics), else the running ones."""

    _builtin = True
    _node_name_override = "NativeBatchNormBackward0"

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        dt = _compute_dtype(x, "batch_norm")
        x3 = _nc3(x, dt)
        n, c = x3.shape[0], x3.shape[1]
        count = n * x3.shape[2]
        mean = np.zeros(c)
        var = np.ones(c)
        if not training:
            mean[:] = running_mean._data
            var[:] = running_var._data
        y = np.empty_like(x3)
        K.batch_norm_forward(x3, _vector(weight, c, dt, 1), _vector(bias, c, dt, 0), mean, var, bool(training),
                             float(eps), y)
        if training and running_mean is not None and count > 0:
            unbiased = var * (count / (count - 1)) if count > 1 else np.full(c, np.nan)
            _update_running_stats(running_mean, running_var, momentum, mean, unbiased)
        ctx.save_for_backward(x, weight)
        ctx.mean = mean
        ctx.invstd = 1.0 / np.sqrt(var + eps)
        ctx.training = bool(training)
        ctx.eps = eps
        return y.reshape(x._data.shape).astype(x._data.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        shape = x._data.shape
        n, c = shape[0], shape[1]
        if state.enabled:  # differentiable path (create_graph=True)
            x3, g3 = x.reshape(n, c, -1), g.reshape(n, c, -1)
            dt = x._data.dtype
            if ctx.training:
                xhat, rstd = _normalized(x3, (0, 2), ctx.eps, False)
            else:
                rstd = _const(ctx.invstd, dt, (1, c, 1))
                xhat = (x3 - _const(ctx.mean, dt, (1, c, 1))) * rstd
            gw = g3 * weight.reshape(1, c, 1) if weight is not None else g3
            gx = None
            if need_x:
                gx = (_input_grad(gw, xhat, rstd, (0, 2), False) if ctx.training else gw * rstd).reshape(shape)
            return (gx, (g3 * xhat).sum((0, 2)) if need_w else None, g3.sum((0, 2)) if need_b else None,
                    None, None, None, None, None)
        dt = _compute_dtype(x, "batch_norm")
        x3, g3, dx = _backward_arrays(x, g, dt, need_x)
        sum_g, sum_gx = np.empty(c), np.empty(c)
        K.batch_norm_backward(x3, g3, _vector(weight, c, dt, 1), ctx.mean, ctx.invstd, ctx.training, need_x, dx,
                              sum_g, sum_gx)
        gx = _input_grad_tensor(dx, x, need_x)
        gw = Tensor._make((sum_gx * ctx.invstd).astype(weight._data.dtype)) if need_w else None
        gb = Tensor._make(sum_g.astype(x._data.dtype)) if need_b else None
        return gx, gw, gb, None, None, None, None, None


def _check_channel_vector(t, c, name):
    if t is not None and t.numel() != c:
        raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization over the channel dimension (dim 1) of ``input`` ``(N, C, *)``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel. In training the statistics
    are those of the batch (over N and all spatial positions; the biased variance normalises)
    and ``running_mean`` / ``running_var``, when given, are updated in place:
    ``running = (1 - momentum) * running + momentum * batch_stat`` (the unbiased variance for
    ``running_var``). In evaluation the running statistics are used.

    Parameters
    ----------
    input : Tensor
        ``(N, C)`` or ``(N, C, *)`` floating-point input.
    running_mean, running_var : Tensor or None
        Per-channel running statistics ``(C,)``; required when ``training`` is False.
    weight, bias : Tensor, optional
        Per-channel scale and shift ``(C,)``.
    training : bool, default False
        Use (and track) batch statistics.
    momentum : float, default 0.1
        Weight of the new batch statistics in the running-statistics update.
    eps : float, default 1e-5
        Added to the variance for numerical stability.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.tensor([[1.0, 2.0], [3.0, 6.0]])
    >>> rm, rv = cygrad.zeros(2), cygrad.ones(2)
    >>> F.batch_norm(x, rm, rv, training=True)
    tensor([[-1.0000, -1.0000],
            [ 1.0000,  1.0000]])
    >>> rm
    tensor([0.2000, 0.4000])
    """
    _compute_dtype(input, "batch_norm")
    if momentum is None:
        raise TypeError("batch_norm(): argument 'momentum' (position 7) must be float, not NoneType")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-{max(len(shape), 1)}, "
                         f"{max(len(shape), 1) - 1}], but got 1)")
    if training:
        count = shape[0] * math.prod(shape[2:])
        if count == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    elif running_mean is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    c = shape[1]
    _check_channel_vector(running_mean, c, "running_mean")
    _check_channel_vector(running_var, c, "running_var")
    _check_channel_vector(weight, c, "weight")
    _check_channel_vector(bias, c, "bias")
    _check_param_dtype(input, (weight, bias, running_mean, running_var))
    return BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training), float(momentum),
                           float(eps))


# ---- group norm (and instance norm) ------------------------------------------------------------------------------
class GroupNorm(Function):
    """``(x - mean) / sqrt(var + eps) * w + b`` with statistics per sample and group of channels;
    ``w`` and ``b`` per channel. Instance norm is the case ``groups == C`` (which may update
    running statistics, averaged over the batch)."""

    _builtin = True
    _node_name_override = "NativeGroupNormBackward0"

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, running_mean=None, running_var=None, momentum=0.0):
        dt = _compute_dtype(x, "GroupNormKernelImpl")
        x3 = _nc3(x, dt)
        n, c = x3.shape[0], x3.shape[1]
        mean, var = np.zeros(n * groups), np.ones(n * groups)
        y = np.empty_like(x3)
        K.group_norm_forward(x3, groups, _vector(weight, c, dt, 1), _vector(bias, c, dt, 0), float(eps), y, mean,
                             var)
        if running_mean is not None and n * x3.shape[2] > 0:
            ell = x3.shape[2]
            batch_mean = mean.reshape(n, c).mean(0)
            batch_var = (var * (ell / (ell - 1) if ell > 1 else np.nan)).reshape(n, c).mean(0)
            _update_running_stats(running_mean, running_var, momentum, batch_mean, batch_var)
        ctx.save_for_backward(x, weight)
        ctx.mean = mean
        ctx.rstd = 1.0 / np.sqrt(var + eps)
        ctx.groups = groups
        ctx.eps = eps
        return y.reshape(x._data.shape).astype(x._data.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        shape = x._data.shape
        n, c = shape[0], shape[1]
        groups = ctx.groups
        none = (None,) * 5
        if state.enabled:  # differentiable path (create_graph=True)
            xg = x.reshape(n, groups, -1)
            xhat, rstd = _normalized(xg, (2,), ctx.eps, False)
            g3 = g.reshape(n, c, -1)
            xhat3 = xhat.reshape(n, c, -1)
            gx = None
            if need_x:
                gw = (g3 * weight.reshape(1, c, 1) if weight is not None else g3).reshape(n, groups, -1)
                gx = _input_grad(gw, xhat, rstd, (2,), False).reshape(shape)
            return (gx, (g3 * xhat3).sum((0, 2)) if need_w else None, g3.sum((0, 2)) if need_b else None) + none
        dt = _compute_dtype(x, "GroupNormKernelImpl")
        x3, g3, dx = _backward_arrays(x, g, dt, need_x)
        sum_g, sum_gx = np.empty((n, c)), np.empty((n, c))
        K.group_norm_backward(x3, g3, groups, _vector(weight, c, dt, 1), ctx.mean, ctx.rstd, need_x, dx, sum_g,
                              sum_gx)
        gx = _input_grad_tensor(dx, x, need_x)
        gw = gb = None
        if need_w:
            rstd_c = np.repeat(ctx.rstd.reshape(n, groups), c // groups if groups else 0, axis=1)
            gw = Tensor._make((sum_gx * rstd_c).sum(0).astype(weight._data.dtype))
        if need_b:
            gb = Tensor._make(sum_g.sum(0).astype(x._data.dtype))
        return (gx, gw, gb) + none


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization: statistics per sample over groups of ``C / num_groups`` channels.

    Parameters
    ----------
    input : Tensor
        ``(N, C, *)`` floating-point input with ``C`` divisible by ``num_groups``.
    num_groups : int
        Number of channel groups.
    weight, bias : Tensor, optional
        Per-channel scale and shift ``(C,)``.
    eps : float, default 1e-5
        Added to the variance for numerical stability.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.tensor([[[1.0], [3.0], [2.0], [2.0]]])
    >>> F.group_norm(x, 2).flatten()
    tensor([-1.0000,  1.0000,  0.0000,  0.0000])
    """
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {len(shape)}")
    num_groups = int(num_groups)
    c = shape[1]
    if num_groups == 0:
        raise ZeroDivisionError("integer division or modulo by zero")
    if num_groups < 0:
        raise RuntimeError(f"Expected num groups to be greater than 0, got {num_groups}")
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {_shape_str(shape)} and num_groups={num_groups}")
    for p, name in ((weight, "weight"), (bias, "bias")):
        if p is not None and (p.dim() != 1 or p.numel() != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, "
                               f"but got {name} of shape {_shape_str(p.shape)} and input of shape {_shape_str(shape)}")
    _compute_dtype(input, "GroupNormKernelImpl")
    _check_param_dtype(input, (weight, bias))
    return GroupNorm.apply(input, weight, bias, num_groups, float(eps))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Instance normalization: statistics per sample and channel over the spatial dims.

    With ``use_input_stats`` (default) each ``(n, c)`` slice is normalised by its own mean and
    biased variance, and ``running_mean`` / ``running_var``, when given, are updated in place
    with the batch average of those statistics (unbiased variance). Otherwise the running
    statistics are used.

    Parameters
    ----------
    input : Tensor
        ``(N, C, *)`` floating-point input with at least one spatial dim.
    running_mean, running_var : Tensor, optional
        Per-channel running statistics ``(C,)``.
    weight, bias : Tensor, optional
        Per-channel scale and shift ``(C,)``.
    use_input_stats : bool, default True
        Normalise with the instance statistics (else the running ones).
    momentum : float, default 0.1
        Weight of the new statistics in the running-statistics update.
    eps : float, default 1e-5
        Added to the variance for numerical stability.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.instance_norm(cygrad.tensor([[[1.0, 3.0], [0.0, 4.0]]]))
    tensor([[[-1.0000,  1.0000],
             [-1.0000,  1.0000]]])
    """
    _compute_dtype(input, "batch_norm")
    shape = tuple(input.shape)
    if use_input_stats and len(shape) >= 2 and math.prod(shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
    if len(shape) < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-{max(len(shape), 1)}, "
                         f"{max(len(shape), 1) - 1}], but got 1)")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    n, c = shape[0], shape[1]
    # torch repeats the per-channel tensors over the batch: its messages count N * C elements
    for p, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"),
                    (bias, "bias")):
        if p is not None and p.numel() != c:
            raise RuntimeError(f"{name} should contain {n * c} elements not {n * p.numel()}")
    _check_param_dtype(input, (weight, bias, running_mean, running_var))
    if not use_input_stats:
        if running_mean is None:
            raise RuntimeError("Expected running_mean and running_var to be defined when use_input_stats is false")
        return BatchNorm.apply(input, weight, bias, running_mean, running_var, False, float(momentum), float(eps))
    return GroupNorm.apply(input, weight, bias, c, float(eps), running_mean, running_var, float(momentum))


# ---- layer norm and RMS norm -------------------------------------------------------------------------------------
class LayerNorm(Function):
    """``(x - mean) * rstd * w + b`` over the trailing ``D`` elements of each row (``rms``: ``x * rstd * w``
    with ``rstd = 1 / sqrt(mean(x^2) + eps)``); ``w`` and ``b`` elementwise over those ``D``."""

    _builtin = True
    _node_name_override = "NativeLayerNormBackward0"

    @staticmethod
    def forward(ctx, x, weight, bias, ns, eps, rms):
        d = math.prod(ns)
        name = "rms_norm" if rms else "LayerNormKernelImpl"
        dt = _compute_dtype(x, name)
        xd = _array(x, dt)
        shape = xd.shape
        x2 = xd.reshape(-1, d) if d else np.empty((0, 0), dt)
        r = x2.shape[0]
        w = _vector(weight, d, dt, 1) if weight is not None else np.empty(0, dt)
        b = _vector(bias, d, dt, 0) if bias is not None else np.empty(0, dt)
        y = np.empty_like(x2)
        mean, rstd = np.zeros(r), np.ones(r)
        K.layer_norm_forward(x2, w, b, weight is not None, bias is not None, float(eps), bool(rms), y, mean, rstd)
        ctx.save_for_backward(x, weight)
        ctx.mean, ctx.rstd, ctx.ns, ctx.eps, ctx.rms = mean, rstd, ns, eps, rms
        return y.reshape(shape).astype(x._data.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        shape = x._data.shape
        ns, rms = ctx.ns, ctx.rms
        d = math.prod(ns)
        none = (None, None, None)
        if state.enabled:  # differentiable path (create_graph=True)
            x2, g2 = x.reshape(-1, d), g.reshape(-1, d)
            xhat, rstd = _normalized(x2, (1,), ctx.eps, rms)
            gx = None
            if need_x:
                gw = g2 * weight.reshape(d) if weight is not None else g2
                gx = _input_grad(gw, xhat, rstd, (1,), rms).reshape(shape)
            gw_ = (g2 * xhat).sum(0).reshape(ns) if need_w else None
            gb_ = g2.sum(0).reshape(ns) if need_b else None
            return (gx, gw_, gb_) + none
        dt = _compute_dtype(x, "rms_norm" if rms else "LayerNormKernelImpl")
        x2 = _array(x, dt).reshape(-1, d) if d else np.empty((0, 0), dt)
        g2 = _array(g, dt).reshape(x2.shape)
        r = x2.shape[0]
        w = _vector(weight, d, dt, 1) if weight is not None else np.empty(0, dt)
        dx = np.empty_like(x2) if need_x else np.empty((0, 0), dt)
        need_wb = need_w or need_b
        gwd, gbd = (np.empty(d), np.empty(d)) if need_wb else (np.empty(0), np.empty(0))
        K.layer_norm_backward(x2, g2, w, weight is not None, ctx.mean[:r], ctx.rstd[:r], bool(rms), need_x, dx,
                              need_wb, gwd, gbd)
        odt = x._data.dtype
        gx = _input_grad_tensor(dx, x, need_x)
        gw = Tensor._make(gwd.astype(odt).reshape(ns)) if need_w else None
        gb = Tensor._make(gbd.astype(odt).reshape(ns)) if need_b else None
        return (gx, gw, gb) + none


def _normalized_shape(normalized_shape, fn):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        raise TypeError(f"{fn}(): argument 'normalized_shape' (position 2) must be tuple of ints, not int")
    if not isinstance(normalized_shape, (tuple, list)):
        raise TypeError(f"{fn}(): argument 'normalized_shape' (position 2) must be tuple of ints, not "
                        f"{type(normalized_shape).__name__}")
    out = []
    for i, s in enumerate(normalized_shape):
        if not isinstance(s, numbers.Integral) or isinstance(s, bool):
            raise TypeError(f"{fn}(): argument 'normalized_shape' (position 2) must be tuple of ints, but found "
                            f"element of type {type(s).__name__} at pos {i}")
        out.append(int(s))
    if not out:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., containing at least one "
                           "element, but got normalized_shape = []")
    return tuple(out)


def _check_layer_args(input, ns, params, rms):
    shape = tuple(input.shape)
    k = len(ns)
    for p, name in params:
        if p is not None and tuple(p.shape) != ns:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{_shape_str(p.shape)} and normalized_shape = {_shape_str(ns)}")
    if rms and len(shape) < k:
        raise ValueError(f"Input tensor must have at least {k} dimensions, but got {len(shape)}")
    if len(shape) < k or shape[len(shape) - k:] != ns:
        sep = "" if rms else ", "
        raise RuntimeError(f"Given normalized_shape={_shape_str(ns)}, expected input with shape "
                           f"[*{sep}{_shape_str(ns)[1:-1]}], but got input of size{_shape_str(shape)}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the trailing dims ``normalized_shape`` of ``input``.

    Each row of ``prod(normalized_shape)`` trailing elements is normalised by its own mean and
    biased variance: ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    input : Tensor
        ``(*, *normalized_shape)`` floating-point input.
    normalized_shape : tuple of int
        Trailing shape to normalise over.
    weight, bias : Tensor, optional
        Elementwise scale and shift of shape ``normalized_shape``.
    eps : float, default 1e-5
        Added to the variance for numerical stability.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.layer_norm(cygrad.tensor([[1.0, 2.0, 3.0]]), (3,))
    tensor([[-1.2247,  0.0000,  1.2247]])
    """
    ns = _normalized_shape(normalized_shape, "layer_norm")
    _check_layer_args(input, ns, ((weight, "weight"), (bias, "bias")), False)
    _compute_dtype(input, "LayerNormKernelImpl")
    _check_param_dtype(input, (weight, bias))
    return LayerNorm.apply(input, weight, bias, ns, float(eps), False)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Root-mean-square normalization over the trailing dims ``normalized_shape``.

    ``y = x / sqrt(mean(x^2) + eps) * weight``, the mean taken over each row of
    ``prod(normalized_shape)`` trailing elements; ``eps=None`` uses ``finfo(input.dtype).eps``.

    Parameters
    ----------
    input : Tensor
        ``(*, *normalized_shape)`` floating-point input.
    normalized_shape : tuple of int
        Trailing shape to normalise over.
    weight : Tensor, optional
        Elementwise scale of shape ``normalized_shape`` (cast to the input's dtype).
    eps : float, optional
        Added to the mean square; default ``finfo(input.dtype).eps``.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.rms_norm(cygrad.tensor([[3.0, 4.0]]), (2,))
    tensor([[0.8485, 1.1314]])
    """
    ns = _normalized_shape(normalized_shape, "rms_norm")
    _check_layer_args(input, ns, ((weight, "weight"),), True)
    _compute_dtype(input, "rms_norm")
    if eps is None:
        eps = float(np.finfo(_compute_dtype(input, "rms_norm")).eps)
    if weight is not None and weight._data.dtype != input._data.dtype:
        weight = weight.to(input.dtype)
    return LayerNorm.apply(input, weight, None, ns, float(eps), True)


# ---- composites --------------------------------------------------------------------------------------------------
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization across channels (dim 1).

    ``y[n, c] = x[n, c] / (k + alpha / size * sum(x[n, c'] ** 2)) ** beta`` where ``c'`` runs over
    the window ``c - size // 2 .. c + (size - 1) // 2`` (channels outside are zeros).

    Parameters
    ----------
    input : Tensor
        ``(N, C, *)`` input with at least one spatial dim.
    size : int
        Number of neighbouring channels in the window.
    alpha, beta, k : float
        Multiplicative factor, exponent and additive constant.

    Returns
    -------
    Tensor
        Same shape as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.local_response_norm(cygrad.tensor([[[1.0], [2.0]]]), 2, alpha=1.0, beta=1.0)
    tensor([[[0.6667],
             [0.5714]]])
    """
    from ..ops.shape import cat
    from .._creation import zeros
    ndim = input.dim()
    if ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {ndim} dimensions)")
    size = int(size)
    if size <= 0:
        raise RuntimeError(f"local_response_norm: size should be greater than zero, but got size={size} for input "
                           f"of shape {_shape_str(input.shape)}")
    if input.numel() == 0:
        return input
    x = input if input.is_floating_point() else input.to(D.get_default_dtype())
    sq = x * x
    shape = tuple(x.shape)
    c = shape[1]
    before, after = size // 2, (size - 1) // 2
    parts = []
    if before:
        parts.append(zeros((shape[0], before) + shape[2:], dtype=x.dtype))
    parts.append(sq)
    if after:
        parts.append(zeros((shape[0], after) + shape[2:], dtype=x.dtype))
    padded = cat(parts, 1) if len(parts) > 1 else sq
    if size <= 16:
        win = padded[:, 0:c]
        for s in range(1, size):
            win = win + padded[:, s:s + c]
    else:  # long windows: differences of a running sum
        lead = zeros((shape[0], 1) + shape[2:], dtype=x.dtype)
        cs = cat([lead, padded], 1).cumsum(1)
        win = cs[:, size:size + c] - cs[:, 0:c]
    div = (win * (alpha / size) + k) ** beta
    return x / div


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``input / max(||input||_p, eps)`` along ``dim``.

    Parameters
    ----------
    input : Tensor
        Floating-point input.
    p : float, default 2.0
        Exponent of the norm.
    dim : int or tuple of int, default 1
        Dimension(s) to normalise over.
    eps : float, default 1e-12
        Lower bound of the norm (avoids division by zero).
    out : Tensor, optional
        Written with the result (not differentiable).

    Returns
    -------
    Tensor
        Same shape as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.normalize(cygrad.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    if not input.is_floating_point():
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{D.scalar_name(input.dtype)}")
    denom = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    res = input / denom
    if out is not None:
        from ..autograd.grad_mode import no_grad
        with no_grad():
            out.copy_(res)
        return out
    return res
