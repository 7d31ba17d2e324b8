"""Loss functions (``torch.nn.functional`` losses).

``cross_entropy`` with class indices runs a fused log-softmax + NLL Cython kernel
(``_C.loss``) forward and backward; when the backward is itself recorded
(``create_graph=True``) its gradient is evaluated with tensor ops so it can be differentiated
again. The other losses are compositions of differentiable tensor ops.
"""
import math
import warnings

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import loss as K
from .activation import log_softmax, softmax
from .elementwise import where, log, exp, abs as _abs, clamp, clamp_min, log1p, sqrt
from .shape import gather, movedim
from .reduce import sum as _sum, mean as _mean

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss",
           "margin_ranking_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return _sum(loss)
    return _mean(loss)


def _as_float_tensor(x, like):
    if isinstance(x, Tensor):
        return x
    return Tensor._make(np.asarray(x, dtype=like._data.dtype))


# ---- class-index targets: checks shared by cross_entropy and nll_loss ----------------------------
def _check_class_target(input, target, weight, ignore_index):
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy(): argument 'target' must be Tensor, not {type(target).__name__}")
    if input.dim() < 1:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    nd = input.dim()
    C = input.shape[1] if nd >= 2 else input.shape[0]
    if nd == 1:
        if target.dim() != 0:
            raise RuntimeError(f"1D target tensor expects 0D input tensors, but got {target.dim()}D")
    else:
        if input.shape[0] != target.shape[0] if target.dim() > 0 else True:
            n_t = target.shape[0] if target.dim() > 0 else 0
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({n_t}).")
        if tuple(target.shape) != (input.shape[0],) + tuple(input.shape[2:]):
            raise RuntimeError(f"Expected target size {list((input.shape[0],) + tuple(input.shape[2:]))}, got "
                               f"{list(target.shape)}")
    td = target._data
    if td.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {D.scalar_name(target.dtype)}")
    valid = td != ignore_index
    bad = valid & ((td < 0) | (td >= C))
    if bad.any():
        raise IndexError(f"Target {int(td[bad].reshape(-1)[0])} is out of bounds.")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != C):
        raise RuntimeError(f"weight tensor should be defined either for all {C} classes or no classes but got "
                           f"weight tensor of shape: {list(weight.shape)}")
    if weight is not None and weight._data.dtype != input._data.dtype:
        raise RuntimeError(f"expected scalar type {D.scalar_name(input.dtype)} but found "
                           f"{D.scalar_name(weight.dtype)}")
    return C


def _rows(xd):
    """(N, C, d1, ...) or (C,) logits as a C-contiguous (M, C) array."""
    if xd.ndim == 1:
        return np.ascontiguousarray(xd[None])
    return np.ascontiguousarray(np.moveaxis(xd, 1, -1).reshape(-1, xd.shape[1]))


def _from_rows(rows, shape):
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


class CrossEntropyIdx(Function):
    """Fused log-softmax + NLL for class-index targets."""

    _builtin = True
    _node_name_override = "NllLossBackward0"

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        xd = x._data
        if xd.dtype.kind != "f":
            raise NotImplementedError(f"\"log_softmax\" not implemented for '{D.scalar_name(x.dtype)}'")
        kd = np.float32 if xd.dtype.itemsize < 4 else xd.dtype
        rows = _rows(xd.astype(kd, copy=False))
        M, C = rows.shape
        t = np.ascontiguousarray(target._data.reshape(-1), dtype=np.int64)
        w = np.ones(C, kd) if weight is None else np.ascontiguousarray(weight._data, dtype=kd)
        loss = np.empty(M, kd)
        lse = np.empty(M, kd)
        rw = np.empty(M, kd)
        K.cross_entropy_forward(rows, t, w, int(ignore_index), loss, lse, rw)
        ctx.rows, ctx.t, ctx.lse, ctx.rw = rows, t, lse, rw
        ctx.shape, ctx.ignore_index, ctx.reduction, ctx.npd = xd.shape, int(ignore_index), reduction, xd.dtype
        ctx.save_for_backward(x)
        if reduction == "none":
            out = loss.reshape(target._data.shape)
        elif reduction == "sum":
            out = np.asarray(loss.sum(dtype=np.float64))
        else:
            ctx.denom = rw.sum(dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: nan, as torch
                out = np.asarray(loss.sum(dtype=np.float64) / ctx.denom)
        return out.astype(xd.dtype)

    @staticmethod
    def backward(ctx, g):
        red = ctx.reduction
        if state.enabled:  # differentiable path (create_graph=True)
            x, = ctx.saved_tensors
            rw = Tensor._make(ctx.rw.astype(ctx.npd).reshape(ctx.t.shape))
            if red == "none":
                scale = g.reshape(-1) * rw
            elif red == "sum":
                scale = g * rw
            else:
                scale = g * (rw * (1.0 / ctx.denom))
            onehot = np.zeros(ctx.rows.shape, ctx.npd)
            keep = ctx.t != ctx.ignore_index
            onehot[np.nonzero(keep)[0], ctx.t[keep]] = 1
            if x.dim() == 1:
                p = softmax(x, 0).reshape(1, -1)
            else:
                p = movedim(softmax(x, 1), 1, -1).reshape(-1, ctx.shape[1])
            gr = (p - Tensor._make(onehot)) * scale.reshape(-1, 1)
            if x.dim() == 1:
                return gr.reshape(ctx.shape), None, None, None, None
            s = ctx.shape
            gr = movedim(gr.reshape((s[0],) + tuple(s[2:]) + (s[1],)), -1, 1)
            return gr, None, None, None, None
        gd = g._data.astype(ctx.rows.dtype, copy=False)
        if red == "none":
            scale = np.ascontiguousarray(gd.reshape(-1)) * ctx.rw
        elif red == "sum":
            scale = ctx.rw * gd
        else:
            with np.errstate(invalid="ignore", divide="ignore"):  # denom 0: every row ignored, grads 0
                scale = ctx.rw * (gd / ctx.denom)
        scale = np.ascontiguousarray(scale, dtype=ctx.rows.dtype)
        out = np.empty_like(ctx.rows)
        K.cross_entropy_backward(ctx.rows, ctx.t, ctx.lse, scale, ctx.ignore_index, out)
        return Tensor._make(_from_rows(out, ctx.shape).astype(ctx.npd, copy=False)), None, None, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood loss for log-probabilities ``input`` (N, C, ...) and class indices.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> logp = F.log_softmax(cygrad.randn(3, 5), dim=1)
    >>> F.nll_loss(logp, cygrad.tensor([1, 0, 4])).shape
    cygrad.Size([])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_class_target(input, target, weight, ignore_index)
    squeeze = input.dim() == 1
    if squeeze:
        input, target = input.reshape(1, -1), target.reshape(1)
    td = target._data.astype(np.int64)
    keep = td != ignore_index
    safe = np.where(keep, td, 0)
    picked = gather(input, 1, Tensor._make(safe[:, None] if td.ndim == 1 else np.expand_dims(safe, 1)))
    picked = picked.squeeze(1)
    wt = np.ones(td.shape, input._data.dtype) if weight is None else \
        weight._data.astype(input._data.dtype)[safe]
    wt = np.where(keep, wt, 0).astype(input._data.dtype)
    loss = -picked * Tensor._make(wt)
    if squeeze:
        loss = loss.reshape(())
    if reduction == "none":
        return loss
    if reduction == "sum":
        return _sum(loss)
    den = wt.sum(dtype=np.float64)
    if den == 0:  # every target ignored: nan, with zero gradients (as torch)
        return _sum(loss) * 0.0 + float("nan")
    return _sum(loss) / Tensor._make(np.asarray(den, input._data.dtype))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy between logits ``input`` (C,), (N, C) or (N, C, d1, ...) and ``target``.

    ``target`` holds class indices (shape of ``input`` without the class dim) or class
    probabilities (same shape as ``input``). Class indices run a fused log-softmax + NLL kernel.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> logits = cygrad.randn(3, 5, requires_grad=True)
    >>> loss = F.cross_entropy(logits, cygrad.tensor([1, 0, 4]))
    >>> loss.backward()
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy(): argument 'target' must be Tensor, not {type(target).__name__}")
    class_dim = 0 if input.dim() == 1 else 1
    if target.is_floating_point():  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError(f"Expected target size {list(input.shape)}, got {list(target.shape)}")
        C = input.shape[class_dim]
        logp = log_softmax(input, class_dim)
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / C
        if weight is not None:
            wshape = [1] * input.dim()
            wshape[class_dim] = C
            logp = logp * weight.reshape(wshape)
        prod = logp * target
        if reduction == "none":
            return -_sum(prod, class_dim)
        if reduction == "sum":
            return -_sum(prod)
        return -_sum(prod) / (input.numel() / C)
    C = _check_class_target(input, target, weight, ignore_index)
    if label_smoothing <= 0.0:
        return CrossEntropyIdx.apply(input, target, weight, ignore_index, reduction)
    logp = log_softmax(input, class_dim)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if weight is not None:
        wshape = [1] * input.dim()
        wshape[class_dim] = C
        smooth = -_sum(logp * weight.reshape(wshape), class_dim)
    else:
        smooth = -_sum(logp, class_dim)
    td = target._data
    ignore = td == ignore_index
    smooth = smooth * Tensor._make((~ignore).astype(input._data.dtype))
    if reduction == "mean":
        if weight is not None:
            den = weight._data[td[~ignore].reshape(-1).astype(np.int64)].sum()
        else:
            den = (~ignore).sum()
        if den == 0:  # every target ignored: nan, with zero gradients (as torch)
            ret = _sum(smooth) * 0.0 + float("nan")
        else:
            ret = _sum(smooth) / Tensor._make(np.asarray(den, input._data.dtype))
    elif reduction == "sum":
        ret = _sum(smooth)
    else:
        ret = smooth
    return (1 - label_smoothing) * nll + ret * (label_smoothing / C)


def _check_same_size(input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input size "
                      f"({input.size()}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target)^2``, reduced.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.mse_loss(cygrad.tensor([1.0, 2.0]), cygrad.tensor([1.0, 4.0]))
    tensor(2.)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_same_size(input, target)
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``, reduced.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.l1_loss(cygrad.tensor([1.0, 2.0]), cygrad.tensor([1.0, 4.0]))
    tensor(1.)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_same_size(input, target)
    loss = _abs(input - target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``, with ``d = input - target``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.smooth_l1_loss(cygrad.tensor([0.0, 3.0]), cygrad.zeros(2))
    tensor(1.3750)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _check_same_size(input, target)
    if beta == 0.0:
        return l1_loss(input, target, reduction=reduction)
    d = input - target
    ad = _abs(d)
    loss = where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.huber_loss(cygrad.tensor([0.0, 3.0]), cygrad.zeros(2))
    tensor(1.3750)
    """
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_same_size(input, target)
    d = input - target
    ad = _abs(d)
    loss = where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """``-w (t log(x) + (1 - t) log(1 - x))`` with each log clamped to >= -100 (as torch).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.binary_cross_entropy(cygrad.tensor([0.5, 0.9]), cygrad.tensor([1.0, 1.0])).shape
    cygrad.Size([])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size "
                         f"({input.size()}) is deprecated. Please ensure they have the same size.")
    xd = input._data
    if np.any((xd < 0) | (xd > 1)):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = -(target * clamp_min(log(input), -100.0) + (1 - target) * clamp_min(log(1 - input), -100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross entropy in one numerically stable formula.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.binary_cross_entropy_with_logits(cygrad.tensor([0.0, 2.0]), cygrad.tensor([1.0, 0.0])).shape
    cygrad.Size([])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    softplus_neg = log1p(exp(-_abs(input))) + clamp_min(-input, 0.0)  # log(1 + exp(-x))
    if pos_weight is not None:
        lw = (pos_weight - 1) * target + 1
        loss = (1 - target) * input + lw * softplus_neg
    else:
        loss = (1 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence with ``input`` as log-probabilities.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> logp = F.log_softmax(cygrad.randn(3, 5), dim=1)
    >>> F.kl_div(logp, F.softmax(cygrad.randn(3, 5), dim=1), reduction="batchmean").shape
    cygrad.Size([])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, _REDUCTIONS + ("batchmean",))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        zero = target == 0  # xlogy(t, t): 0 at t == 0 (nan for t < 0, as torch)
        safe = where(zero, 1.0, target)
        loss = where(zero, 0.0, target * log(safe)) - target * input
    if reduction == "batchmean":
        if input.dim() == 0:
            return _sum(loss)
        return _sum(loss) / input.shape[0]
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``1 - cos(x1, x2)`` for ``y = 1``, ``max(0, cos(x1, x2) - margin)`` for ``y = -1``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.cosine_embedding_loss(cygrad.randn(3, 4), cygrad.randn(3, 4), cygrad.tensor([1, -1, 1])).shape
    cygrad.Size([])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    targ_dim = target.dim()
    if targ_dim not in (0, 1):
        raise RuntimeError(f"0D or 1D target tensor expected, multi-target not supported")
    if targ_dim == 1:
        if input1.dim() != 2 or input2.dim() != 2:
            raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with sizes "
                               f"{list(input1.shape)} and {list(input2.shape)}.")
    else:
        if input1.dim() != 1 or input2.dim() != 1:
            raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with sizes "
                               f"{list(input1.shape)} and {list(input2.shape)}.")
    eps = 1e-12
    prod_sum = _sum(input1 * input2, targ_dim)
    mag1 = _sum(input1 * input1, targ_dim) + eps
    mag2 = _sum(input2 * input2, targ_dim) + eps
    cos = prod_sum / sqrt(mag1 * mag2)
    pos = where(target == 1, 1 - cos, 0.0)
    neg = where(target == -1, clamp_min(cos - margin, 0.0), 0.0)
    return _reduce(pos + neg, reduction)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``max(0, -y (x1 - x2) + margin)``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.margin_ranking_loss(cygrad.tensor([1.0, 2.0]), cygrad.tensor([2.0, 1.0]), cygrad.tensor([1.0, 1.0]))
    tensor(0.5000)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.size()}, input2: {input2.size()}, target: {target.size()} ")
    return _reduce(clamp_min(-target * (input1 - input2) + margin, 0.0), reduction)
