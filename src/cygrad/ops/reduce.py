"""Reductions: sum, mean, prod, amax/amin, max/min, var/std, logsumexp, norm, cumsum, all/any."""
import builtins
import collections
import math

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor, _wrap_dim
from ..autograd.function import Function
from .elementwise import where, _out
from .shape import cat

max_return = collections.namedtuple("max", ["values", "indices"])
min_return = collections.namedtuple("min", ["values", "indices"])


def _dims(dim, ndim):
    """Normalise ``dim`` (None, int, or sequence) to a sorted tuple of axes, or None for all."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None
        axes = tuple(sorted(_wrap_dim(int(d), ndim) for d in dim))
        if len(set(axes)) != len(axes):
            raise RuntimeError(f"dim {axes[0]} appears multiple times in the list of dims")
        return axes
    if isinstance(dim, Tensor):
        dim = int(dim.item())
    return (_wrap_dim(int(dim), ndim),)


def _keep_shape(shape, axes):
    """Shape of a keepdim=True reduction of ``shape`` over ``axes`` (None = all)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _unreduce(g, shape, axes, keepdim):
    """View a reduced gradient with the reduced axes kept (size 1), ready to broadcast."""
    if not keepdim:
        g = g.reshape(_keep_shape(shape, axes))
    return g


def _npaxis(axes, ndim):
    if axes is None or ndim == 0:
        return None
    return axes


class Sum(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axes, keepdim, dtype):
        xd = x._data
        if dtype is not None:
            xd = xd.astype(dtype.np)
        elif xd.dtype.kind in "biu":
            xd = xd.astype(np.int64)
        ctx.shape, ctx.axes, ctx.keepdim = xd.shape, axes, keepdim
        return np.sum(xd, axis=_npaxis(axes, xd.ndim), keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        return _unreduce(g, ctx.shape, ctx.axes, ctx.keepdim).expand(ctx.shape), None, None, None


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (an int, a tuple, or None for all elements).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.sum(cygrad.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=0)
    tensor([4., 6.])
    """
    if isinstance(dim, bool):
        raise TypeError("sum(): argument 'dim' must be int or tuple of ints, not bool")
    return Sum.apply(input, _dims(dim, input._data.ndim), keepdim, D.to_dtype(dtype) if dtype else None)


class Mean(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xd = x._data
        ctx.shape, ctx.axes, ctx.keepdim = xd.shape, axes, keepdim
        n = xd.size if axes is None or xd.ndim == 0 else math.prod(xd.shape[a] for a in axes)
        ctx.n = n
        return np.mean(xd, axis=_npaxis(axes, xd.ndim), keepdims=keepdim) if n else \
            np.full(np.sum(xd, axis=_npaxis(axes, xd.ndim), keepdims=keepdim).shape, np.nan, xd.dtype)

    @staticmethod
    def backward(ctx, g):
        return _unreduce(g, ctx.shape, ctx.axes, ctx.keepdim).expand(ctx.shape) / ctx.n, None, None


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean over ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.mean(cygrad.tensor([1.0, 2.0, 6.0]))
    tensor(3.)
    """
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {D.scalar_name(input.dtype)}")
    return Mean.apply(input, _dims(dim, input._data.ndim), keepdim)


class Prod(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        xd = x._data
        if xd.dtype.kind in "biu":
            xd = xd.astype(np.int64)
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdim = axis, keepdim
        return np.prod(xd, axis=axis, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        axis = ctx.axis
        if axis is None:
            flat = x.reshape(-1)
            return (g * _prod_others(flat, 0)).reshape(x.shape), None, None
        if not ctx.keepdim:
            g = g.unsqueeze(axis)
        return g * _prod_others(x, axis), None, None


def _prod_others(x, axis):
    """For each element, the product of the other elements along ``axis`` (zeros handled)."""
    n = x.shape[axis]
    if n == 0:
        return x
    ones = x.narrow(axis, 0, 1) * 0 + 1
    left = cat([ones, x.narrow(axis, 0, n - 1)], axis).cumprod(axis) if n > 1 else ones
    xr = x.flip(axis)
    right = (cat([ones, xr.narrow(axis, 0, n - 1)], axis).cumprod(axis) if n > 1 else ones).flip(axis)
    return left * right


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of the elements (over one ``dim`` if given).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.prod(cygrad.tensor([2.0, 3.0, 4.0]))
    tensor(24.)
    """
    if dtype is not None:
        input = input.to(dtype)
    axis = None if dim is None else _wrap_dim(dim, input._data.ndim)
    if input._data.ndim == 0:
        axis = None  # a 0-dim tensor has no axis to reduce (dim 0 / -1 are accepted)
    return Prod.apply(input, axis, keepdim)


class Cumprod(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.save_for_backward(x)
        ctx.axis = axis
        if x._data.ndim == 0:
            return x._data.copy()  # np.cumprod would flatten a 0-dim array to shape (1,)
        return np.cumprod(x._data, axis=axis)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        axis = ctx.axis
        if x.ndim == 0:
            return g, None
        # d out_j / d x_i = prod_{k<=j, k!=i} x_k for j >= i; computed without dividing by x
        n = x.shape[axis]
        grads = []
        for i in range(n):
            others = x.narrow(axis, 0, i).prod(axis, keepdim=True) if i > 0 else x.narrow(axis, 0, 1) * 0 + 1
            tail = x.narrow(axis, i + 1, n - i - 1)
            seq = cat([others, others * tail.cumprod(axis)], axis) if n - i - 1 > 0 else others
            grads.append((g.narrow(axis, i, n - i) * seq).sum(axis, keepdim=True))
        return cat(grads, axis), None


def cumprod(input, dim, *, dtype=None):
    """Cumulative product along ``dim``."""
    if dtype is not None:
        input = input.to(dtype)
    return Cumprod.apply(input, _wrap_dim(dim, input._data.ndim))


class Cumsum(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axis, dtype):
        xd = x._data
        if dtype is not None:
            xd = xd.astype(dtype.np)
        elif xd.dtype.kind in "biu":
            xd = xd.astype(np.int64)
        ctx.axis = axis
        return np.cumsum(xd, axis=axis) if xd.ndim else xd.copy()

    @staticmethod
    def backward(ctx, g):
        if g.ndim == 0:
            return g, None, None
        return g.flip(ctx.axis).cumsum(ctx.axis).flip(ctx.axis), None, None


def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.cumsum(cygrad.tensor([1, 2, 3]), dim=0)
    tensor([1, 3, 6])
    """
    return Cumsum.apply(input, _wrap_dim(dim, input._data.ndim), D.to_dtype(dtype) if dtype else None)


class AMax(Function):
    """amax/amin; the gradient is shared evenly between tied extrema (as torch)."""

    _builtin = True
    _node_name_override = "AmaxBackward0"

    @staticmethod
    def forward(ctx, x, axes, keepdim, is_max):
        xd = x._data
        if xd.size == 0:
            name = "amax" if is_max else "amin"
            if axes is None:
                raise RuntimeError(f"{name}(): Expected reduction dim to be specified for "
                                   "input.numel() == 0. Specify the reduction dim with the 'dim' argument.")
            for a in axes:
                if xd.shape[a] == 0:
                    raise IndexError(f"{name}(): Expected reduction dim {a} to have non-zero size.")
        f = np.amax if is_max else np.amin
        out = f(xd, axis=_npaxis(axes, xd.ndim), keepdims=keepdim)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        shape = x.shape
        out = _unreduce(out, shape, ctx.axes, ctx.keepdim)
        g = _unreduce(g, shape, ctx.axes, ctx.keepdim)
        mask = (x == out)
        count = Tensor._make(np.sum(mask._data, axis=_npaxis(ctx.axes, x.ndim), keepdims=True).astype(x._data.dtype))
        return where(mask, g / count, 0.0), None, None, None


def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim`` (all dims by default); ties share the gradient.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.amax(cygrad.tensor([[1.0, 5.0], [3.0, 2.0]]), dim=1)
    tensor([5., 3.])
    """
    return AMax.apply(input, _dims(dim, input._data.ndim), keepdim, True)


def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim`` (all dims by default); ties share the gradient.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.amin(cygrad.tensor([[1.0, 5.0], [3.0, 2.0]]), dim=1)
    tensor([1., 2.])
    """
    return AMax.apply(input, _dims(dim, input._data.ndim), keepdim, False)


class MaxDim(Function):
    """max/min along one dim: (values, indices); the gradient goes to the selected index."""

    _builtin = True
    _node_name_override = "MaxBackward0"

    @staticmethod
    def forward(ctx, x, axis, keepdim, is_max):
        xd = x._data
        if xd.ndim == 0:
            idx = np.zeros((), np.int64)
            ctx.shape, ctx.axis, ctx.keepdim = xd.shape, None, keepdim
            ctx.save_for_backward(Tensor._make(idx))
            return xd.copy(), idx
        if xd.shape[axis] == 0:
            raise IndexError(f"{'max' if is_max else 'min'}(): Expected reduction dim {axis} to have non-zero size.")
        idx = (np.argmax if is_max else np.argmin)(xd, axis=axis)
        idx = np.expand_dims(idx, axis)
        vals = np.take_along_axis(xd, idx, axis)
        if not keepdim:
            vals, idx = vals.squeeze(axis), idx.squeeze(axis)
        idx = idx.astype(np.int64)
        ctx.shape, ctx.axis, ctx.keepdim = xd.shape, axis, keepdim
        ctx.save_for_backward(Tensor._make(idx))
        ctx.mark_non_differentiable(idx)
        return vals, idx

    @staticmethod
    def backward(ctx, g, _gi):
        idx, = ctx.saved_tensors
        if ctx.axis is None:
            return g, None, None, None
        if not ctx.keepdim:
            g, idx = g.unsqueeze(ctx.axis), idx.unsqueeze(ctx.axis)
        from .shape import zeros_scatter
        return zeros_scatter(g, ctx.axis, idx, ctx.shape), None, None, None


def _max_min(input, dim, keepdim, other, is_max):
    from .elementwise import maximum, minimum
    if isinstance(dim, Tensor) and other is None:
        return (maximum if is_max else minimum)(input, dim)
    if other is not None:
        return (maximum if is_max else minimum)(input, other)
    if dim is None:
        if input._data.size == 0:
            raise RuntimeError(f"{'max' if is_max else 'min'}(): Expected reduction dim to be specified for "
                               "input.numel() == 0. Specify the reduction dim with the 'dim' argument.")
        return AMax.apply(input, None, False, is_max)
    vals, idx = MaxDim.apply(input, _wrap_dim(dim, input._data.ndim), keepdim, is_max)
    return (max_return if is_max else min_return)(vals, idx)


def max(input, dim=None, keepdim=False, *, other=None):
    """``max(input)``: the maximum; ``max(input, dim)``: (values, indices); ``max(a, b)``: maximum.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.max(cygrad.tensor([[1.0, 5.0], [3.0, 2.0]]), dim=1).indices
    tensor([1, 0])
    """
    return _max_min(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim=False, *, other=None):
    """``min(input)``, ``min(input, dim)`` -> (values, indices), or ``min(a, b)``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.min(cygrad.tensor([[1.0, 5.0], [3.0, 2.0]]), dim=1).values
    tensor([1., 2.])
    """
    return _max_min(input, dim, keepdim, other, False)


def _arg(input, dim, keepdim, f, name):
    xd = input._data
    if dim is None:
        if xd.size == 0:
            raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        r = np.asarray(f(xd.reshape(-1)), dtype=np.int64)
        return Tensor._make(r.reshape((1,) * xd.ndim) if keepdim else r)
    ax = _wrap_dim(dim, xd.ndim)
    if xd.ndim == 0:
        return Tensor._make(np.zeros((), np.int64))
    if xd.shape[ax] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {ax} to have non-zero size.")
    r = f(xd, axis=ax)
    if keepdim:
        r = np.expand_dims(r, ax)
    return Tensor._make(np.asarray(r, dtype=np.int64))


def argmax(input, dim=None, keepdim=False):
    """Index of the maximum (of the flattened tensor when ``dim`` is None).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.argmax(cygrad.tensor([1.0, 7.0, 3.0]))
    tensor(1)
    """
    return _arg(input, dim, keepdim, np.argmax, "argmax")


def argmin(input, dim=None, keepdim=False):
    """Index of the minimum (of the flattened tensor when ``dim`` is None).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.argmin(cygrad.tensor([1.0, 7.0, 3.0]))
    tensor(0)
    """
    return _arg(input, dim, keepdim, np.argmin, "argmin")


class Var(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        xd = x._data
        n = xd.size if axes is None or xd.ndim == 0 else math.prod(xd.shape[a] for a in axes)
        ctx.save_for_backward(x)
        ctx.axes, ctx.correction, ctx.keepdim, ctx.n = axes, correction, keepdim, n
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.mean(xd, axis=_npaxis(axes, xd.ndim), keepdims=True)
            ss = np.sum((xd - m) ** 2, axis=_npaxis(axes, xd.ndim), keepdims=keepdim)
            return np.asarray(ss / builtins.max(n - correction, 0), dtype=xd.dtype)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        g = _unreduce(g, x.shape, ctx.axes, ctx.keepdim)
        m = x.mean(ctx.axes if ctx.axes is not None else None, keepdim=True) if x.ndim else x
        return g * (x - m) * (2.0 / builtins.max(ctx.n - ctx.correction, 0) if ctx.n - ctx.correction > 0
                              else float("inf")), None, None, None


def _var_args(input, dim, unbiased, keepdim, correction):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    elif unbiased is not None:
        raise RuntimeError("var(): can't specify both correction and unbiased")
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"std and var only support floating point and complex dtypes")
    return _dims(dim, input._data.ndim), correction, keepdim


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (default 1; ``unbiased=False`` is 0).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.var(cygrad.tensor([1.0, 2.0, 3.0, 4.0]))
    tensor(1.6667)
    """
    axes, c, keepdim = _var_args(input, dim, unbiased, keepdim, correction)
    return Var.apply(input, axes, c, keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim`` (see :func:`var`).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.std(cygrad.tensor([1.0, 3.0]))
    tensor(1.4142)
    """
    return StdSqrt.apply(var(input, dim, unbiased, keepdim, correction=correction))


class StdSqrt(Function):
    """``sqrt(var)`` whose gradient is 0 (not nan) where the std is 0, like torch's std_backward."""

    _builtin = True
    _node_name_override = "StdBackward0"

    @staticmethod
    def forward(ctx, v):
        out = np.sqrt(v._data)
        out = out if isinstance(out, np.ndarray) else np.asarray(out)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            return where(out == 0, 0.0, g / (2 * out))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over ``dim``."""
    return var(input, dim, unbiased, keepdim, correction=correction), \
        mean(input, _dims(dim, input.ndim) if not isinstance(dim, bool) else None, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over ``dim``."""
    v, m = var_mean(input, dim, unbiased, keepdim, correction=correction)
    return v.sqrt(), m


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input), dim))`` computed stably.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.logsumexp(cygrad.tensor([0.0, 0.0]), dim=0)
    tensor(0.6931)
    """
    axes = _dims(dim, input._data.ndim)
    if input._data.dtype.kind != "f":
        input = input.to(D._default)
    xd = input._data
    m = np.amax(xd, axis=_npaxis(axes, xd.ndim), keepdims=True) if xd.size else np.zeros(_keep_shape(xd.shape, axes), xd.dtype)
    m = np.where(np.isfinite(m), m, 0).astype(xd.dtype)
    mt = Tensor._make(m)
    out = (input - mt).exp().sum(axes, keepdim=True).log() + mt
    if not keepdim:
        out = out.squeeze(axes if axes is not None else tuple(range(xd.ndim))) if xd.ndim else out
    return out


class Norm2(Function):
    _builtin = True
    _node_name_override = "NormBackward1"

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xd = x._data
        # the saved output must be the very object returned, so that backward sees it as this
        # node's output (with grad_fn) and double backward differentiates through it
        out = np.asarray(np.sqrt(np.sum(xd * xd, axis=_npaxis(axes, xd.ndim), keepdims=keepdim)), dtype=xd.dtype)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        g = _unreduce(g, x.shape, ctx.axes, ctx.keepdim)
        out = _unreduce(out, x.shape, ctx.axes, ctx.keepdim)
        return where(out == 0, 0.0, g * x / out), None, None


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over ``dim`` (2-norm / Frobenius by default; ``inf``, ``-inf``, 0, 1, any p).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.norm(cygrad.tensor([3.0, 4.0]))
    tensor(5.)
    """
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. "
                           f"Got {D.scalar_name(input.dtype)}")
    axes = _dims(dim, input._data.ndim)
    if p in ("fro", None, 2, 2.0):
        return Norm2.apply(input, axes, keepdim)
    if p == "nuc":
        raise NotImplementedError("nuclear norm is not supported")
    a = input.abs()
    if p == math.inf:
        return amax(a, axes if axes is not None else (), keepdim)
    if p == -math.inf:
        return amin(a, axes if axes is not None else (), keepdim)
    if p == 0:
        return (a != 0).to(input.dtype).sum(axes, keepdim=keepdim)
    if p == 1:
        return a.sum(axes, keepdim=keepdim)
    return (a ** p).sum(axes, keepdim=keepdim) ** (1.0 / p)


def all(input, dim=None, keepdim=False):
    """Whether all elements (along ``dim``) are true.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.all(cygrad.tensor([True, False]))
    tensor(False)
    """
    axes = _dims(dim, input._data.ndim)
    return Tensor._make(np.asarray(np.all(input._data, axis=_npaxis(axes, input.ndim), keepdims=keepdim)))


def any(input, dim=None, keepdim=False):
    """Whether any element (along ``dim``) is true.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.any(cygrad.tensor([True, False]))
    tensor(True)
    """
    axes = _dims(dim, input._data.ndim)
    return Tensor._make(np.asarray(np.any(input._data, axis=_npaxis(axes, input.ndim), keepdims=keepdim)))


def count_nonzero(input, dim=None):
    """Number of non-zero elements (along ``dim``)."""
    axes = _dims(dim, input._data.ndim)
    return Tensor._make(np.asarray(np.count_nonzero(input._data, axis=axes), dtype=np.int64))


class SumToSize(Function):
    """Sum a broadcast gradient back to ``shape`` (the engine's broadcast reduction)."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, shape):
        xd = x._data
        ctx.shape = xd.shape
        lead = xd.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and xd.shape[lead + i] != 1)
        out = np.sum(xd, axis=axes, keepdims=True) if axes else xd
        return np.asarray(out).reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.expand(ctx.shape), None


def sum_to_size(input, *size):
    """Sum ``input`` down to ``size`` (the reverse of broadcasting)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    size = tuple(size)
    xs = input._data.shape
    if len(size) > len(xs) or builtins.any(s != 1 and s != d for s, d in zip(size, xs[len(xs) - len(size):])):
        raise RuntimeError(f"size {{{', '.join(map(str, size))}}} is not expandable to size "
                           f"{{{', '.join(map(str, xs))}}}.")
    if xs == size:
        return input
    return SumToSize.apply(input, size)
