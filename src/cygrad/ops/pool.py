"""Pooling (max/avg/adaptive/lp pooling, max_unpool) over ``_C.pool``.

Every pooling op is ``public function -> Function -> kernel``: the public function parses and
checks its arguments as torch does (same exception types, messages that name the sizes), builds
a :class:`_Geom` (input and output shapes, the input seen as (planes, D, H, W) with 1-d pooling
as D = H = 1 and 2-d pooling as D = 1, and the window parameters as (d, h, w) triples) and calls
one of the Functions below, whose kernels run one ``prange`` over the N * C planes.

* ``_MaxPool`` (max and adaptive max) saves the int64 argmax of each window (flat per-plane
  index, like torch). Its backward scatters the output gradient into the input planes; with
  ``create_graph`` the scatter is the Function ``_IndexScatterAdd``, whose backward is the
  gather ``_IndexGather`` (and vice versa), so any order of derivative is available.
* ``_AvgPool`` (avg and adaptive avg) is linear: its backward is ``_AvgPoolBackward``, the
  adjoint kernel, whose own backward is ``_AvgPool`` again.
* ``_IndexScatter`` is max_unpool (writes, in order), with the gather as backward.
* lp_pool is composed from avg_pool as torch does.

Integer inputs take a NumPy path where torch accepts them (max pooling except 1-d without
indices, average pooling with integer division rounding toward zero); torch's
NotImplementedError elsewhere. float16 is computed in float32.
"""
import math
import operator

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import pool as K

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d_with_indices",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
]

_NUM_WORDS = {1: "one", 2: "two", 3: "three"}
_ARG_POS = {"kernel_size": 2, "stride": 3, "padding": 4, "dilation": 5, "output_size": 2}


# ---------------------------------------------------------------------------------------------
# Argument parsing

def _int(v, fname, arg):
    if isinstance(v, (bool, np.bool_, float, np.floating)) or v is None:
        raise TypeError(f"{fname}(): argument '{arg}' (position {_ARG_POS.get(arg, 2)}) must be tuple of "
                        f"ints, not {type(v).__name__}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{fname}(): argument '{arg}' (position {_ARG_POS.get(arg, 2)}) must be tuple of "
                        f"ints, not {type(v).__name__}") from None


def _ints(v, fname, arg):
    """An int or a sequence of ints as a tuple of ints."""
    if isinstance(v, (list, tuple)):
        return tuple(_int(e, fname, arg) for e in v)
    if isinstance(v, Tensor) and v.dim() == 1:
        return tuple(int(e) for e in v._data)
    return (_int(v, fname, arg),)


def _expand(t, n):
    return t * n if len(t) == 1 else t


def _cdiv(a, b):
    """C++ integer division (rounds toward zero), as in torch's checks."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _out_size(n, k, s, p, d, ceil_mode):
    """torch's pooling output size (the last window must start inside the input or left padding)."""
    o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _sizes(t):
    return "[" + ", ".join(str(int(v)) for v in t) + "]"


def _check_tensor(input, fname):
    if not isinstance(input, Tensor):
        raise TypeError(f"{fname}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")


def _kernel_dtype_check(input, kernel_name):
    """Raise torch's NotImplementedError for dtypes without a kernel (bool, complex)."""
    kind = input._data.dtype.kind
    if kind not in "fiu":
        raise NotImplementedError(f"\"{kernel_name}\" not implemented for '{D.scalar_name(input.dtype)}'")


def _kernel_array(xd):
    """C-contiguous float32/float64 data for a kernel (float16 is computed in float32)."""
    if xd.dtype.itemsize < 4:
        xd = xd.astype(np.float32)
    return np.ascontiguousarray(xd)


class _Geom:
    """Shapes and window parameters of one pooling call (see the module docstring)."""

    __slots__ = ("in_shape", "out_shape", "in4", "out4", "k", "s", "p", "d", "include_pad", "divisor",
                 "adaptive")

    def __init__(self, in_shape, out_spatial, nd, k=(1,), s=(1,), p=(0,), d=(1,), include_pad=True,
                 divisor=0, adaptive=False):
        lead = tuple(in_shape[:len(in_shape) - nd])
        planes = int(np.prod(lead, dtype=np.int64))
        fill = 3 - nd
        self.in_shape = tuple(in_shape)
        self.out_shape = lead + tuple(out_spatial)
        self.in4 = (planes,) + (1,) * fill + tuple(in_shape[len(in_shape) - nd:])
        self.out4 = (planes,) + (1,) * fill + tuple(out_spatial)
        self.k = (1,) * fill + tuple(k) if not adaptive else None
        self.s = (1,) * fill + tuple(s) if not adaptive else None
        self.p = (0,) * fill + tuple(p) if not adaptive else None
        self.d = (1,) * fill + tuple(d) if not adaptive else None
        self.include_pad = bool(include_pad)
        self.divisor = int(divisor)
        self.adaptive = adaptive


# ---------------------------------------------------------------------------------------------
# Functions

def _as_planes(a, P):
    """``a`` viewed as (P, rest) (also when P or rest is 0)."""
    return a.reshape(P, a.size // P if P else 0)


def _scatter_add_array(src, idx2, out_shape):
    """zeros(out_shape) with src (planes x M values) added at the per-plane indices idx2 (P, M)."""
    sd = _kernel_array(src)
    out = np.empty(out_shape, sd.dtype)
    P = idx2.shape[0]
    if out.size:
        K.index_scatter_add(_as_planes(sd, P), idx2, _as_planes(out, P))
    return out.astype(src.dtype, copy=False)


def _gather_array(src, idx2, out_shape):
    sd = _kernel_array(src)
    out = np.zeros(out_shape, sd.dtype)
    P = idx2.shape[0]
    if sd.size and out.size:
        K.index_gather(_as_planes(sd, P), idx2, _as_planes(out, P))
    return out.astype(src.dtype, copy=False)


class _IndexScatterAdd(Function):
    """``zeros(out_shape)`` with ``src`` added at per-plane flat indices (max pooling's backward)."""

    _builtin = True

    @staticmethod
    def forward(ctx, src, idx2, out_shape):
        ctx.idx2 = idx2
        ctx.src_shape = src._data.shape
        return _scatter_add_array(src._data, idx2, out_shape)

    @staticmethod
    def backward(ctx, g):
        return _gather(g, ctx.idx2, ctx.src_shape), None, None


class _IndexGather(Function):
    """``out[p, j] = src[p, idx2[p, j]]`` over the planes of ``src``."""

    _builtin = True

    @staticmethod
    def forward(ctx, src, idx2, out_shape):
        ctx.idx2 = idx2
        ctx.src_shape = src._data.shape
        return _gather_array(src._data, idx2, out_shape)

    @staticmethod
    def backward(ctx, g):
        return _scatter_add(g, ctx.idx2, ctx.src_shape), None, None


def _scatter_add(g, idx2, out_shape):
    if state.enabled:
        return _IndexScatterAdd.apply(g, idx2, out_shape)
    return Tensor._make(_scatter_add_array(g._data, idx2, out_shape))


def _gather(g, idx2, out_shape):
    if state.enabled:
        return _IndexGather.apply(g, idx2, out_shape)
    return Tensor._make(_gather_array(g._data, idx2, out_shape))


class _IndexScatter(Function):
    """max_unpool: ``zeros(out_shape)`` with ``x`` written at per-plane flat indices."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, idx2, out_shape):
        xd = _kernel_array(x._data)
        out = np.zeros(out_shape, xd.dtype)
        P = idx2.shape[0]
        if out.size and xd.size:
            K.index_scatter(_as_planes(xd, P), idx2, _as_planes(out, P))
        ctx.idx2 = idx2
        ctx.x_shape = x._data.shape
        return out.astype(x._data.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return _gather(g, ctx.idx2, ctx.x_shape), None, None


class _MaxPool(Function):
    """Max pooling (windowed or adaptive); the argmax indices are saved for backward."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, geo, with_indices):
        xd = _kernel_array(x._data)
        out = np.empty(geo.out_shape, xd.dtype)  # arrays that own their memory (no views), so
        idx = np.empty(geo.out_shape, np.int64)  # the engine can adopt gradients without a copy
        if geo.adaptive:
            K.adaptive_max_pool_forward(xd.reshape(geo.in4), out.reshape(geo.out4), idx.reshape(geo.out4))
        else:
            K.max_pool_forward(xd.reshape(geo.in4), out.reshape(geo.out4), idx.reshape(geo.out4), geo.k, geo.s,
                               geo.p, geo.d)
        ctx.geo = geo
        out = out.astype(x._data.dtype, copy=False)
        ctx.save_for_backward(idx)
        if with_indices:
            ctx.set_materialize_grads(False)
            return out, idx
        return out

    @staticmethod
    def backward(ctx, g, *_):
        idx, = ctx.saved_tensors
        if g is None:
            return None, None, None
        geo = ctx.geo
        return _scatter_add(g, _as_planes(idx._data, geo.in4[0]), geo.in_shape), None, None


def _avg_forward_array(xd_in, geo):
    xd = _kernel_array(xd_in)
    out = np.empty(geo.out_shape, xd.dtype)
    if geo.adaptive:
        K.adaptive_avg_pool_forward(xd.reshape(geo.in4), out.reshape(geo.out4))
    else:
        K.avg_pool_forward(xd.reshape(geo.in4), out.reshape(geo.out4), geo.k, geo.s, geo.p, geo.include_pad,
                           geo.divisor)
    return out.astype(xd_in.dtype, copy=False)


def _avg_backward_array(gd_in, geo, dtype):
    gd = _kernel_array(gd_in.astype(dtype, copy=False))
    out = np.empty(geo.in_shape, gd.dtype)
    g4 = gd.reshape(geo.out4)
    if geo.adaptive:
        K.adaptive_avg_pool_backward(g4, out.reshape(geo.in4))
    else:
        K.avg_pool_backward(g4, out.reshape(geo.in4), geo.k, geo.s, geo.p, geo.include_pad, geo.divisor)
    return out.astype(dtype, copy=False)


class _AvgPool(Function):
    """Average pooling (windowed or adaptive); linear, its backward is ``_AvgPoolBackward``."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, geo):
        ctx.geo = geo
        ctx.dtype = x._data.dtype
        return _avg_forward_array(x._data, geo)

    @staticmethod
    def backward(ctx, g):
        if state.enabled:
            return _AvgPoolBackward.apply(g, ctx.geo, ctx.dtype), None
        return Tensor._make(_avg_backward_array(g._data, ctx.geo, ctx.dtype)), None


class _AvgPoolBackward(Function):
    """The adjoint of average pooling (spreads each output gradient over its window)."""

    _builtin = True

    @staticmethod
    def forward(ctx, g, geo, dtype):
        ctx.geo = geo
        return _avg_backward_array(g._data, geo, dtype)

    @staticmethod
    def backward(ctx, gg):
        return _AvgPool.apply(gg, ctx.geo), None, None


# ---------------------------------------------------------------------------------------------
# Integer inputs (NumPy; no gradients)

def _window_coords(n, o, k, s, p, d):
    """(o, k) input coordinates of every tap and whether each lies inside [0, n)."""
    c = (np.arange(o)[:, None] * s - p) + np.arange(k)[None, :] * d
    return c, (c >= 0) & (c < n)


def _gather_windows(x4, geo, dil):
    """(P, oD, oH, oW, K) tap values (clipped coordinates), validity mask and flat tap indices."""
    _, D_, H_, W_ = x4.shape
    cs = [_window_coords(n, o, k, s, p, d) for n, o, k, s, p, d in
          zip((D_, H_, W_), geo.out4[1:], geo.k, geo.s, geo.p, dil)]
    (cd, vd), (ch, vh), (cw, vw) = cs
    cdc, chc, cwc = np.clip(cd, 0, D_ - 1), np.clip(ch, 0, H_ - 1), np.clip(cw, 0, W_ - 1)
    i_d = cdc[:, None, None, :, None, None]
    i_h = chc[None, :, None, None, :, None]
    i_w = cwc[None, None, :, None, None, :]
    vals = x4[:, i_d, i_h, i_w]
    mask = vd[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
    flat = cd[:, None, None, :, None, None] * (H_ * W_) + ch[None, :, None, None, :, None] * W_ + \
        cw[None, None, :, None, None, :]
    sh = vals.shape[:4] + (-1,)
    return vals.reshape(sh), np.broadcast_to(mask, vals.shape[1:]).reshape(sh[1:]), \
        np.broadcast_to(flat, vals.shape[1:]).reshape(sh[1:])


def _int_max_pool(xd, geo):
    x4 = np.ascontiguousarray(xd).reshape(geo.in4)
    vals, mask, flat = _gather_windows(x4, geo, geo.d)
    low = np.iinfo(xd.dtype).min
    masked = np.where(mask, vals, low)
    m = masked.max(axis=-1)
    first = np.argmax((masked == m[..., None]) & mask, axis=-1)
    idx = np.take_along_axis(np.broadcast_to(flat, vals.shape), first[..., None], axis=-1)[..., 0]
    # windows without a valid tap: torch's index is the first non-negative tap
    empty = ~mask.any(axis=-1)
    if empty.any():
        tabs = [K._tap_table(n, o, k, s, p, d) for n, o, k, s, p, d in
                zip(geo.in4[1:], geo.out4[1:], geo.k, geo.s, geo.p, geo.d)]
        firsts = [t[2] + t[0] * d for t, d in zip(tabs, geo.d)]
        H_, W_ = geo.in4[2], geo.in4[3]
        f = firsts[0][:, None, None] * (H_ * W_) + firsts[1][None, :, None] * W_ + firsts[2][None, None, :]
        idx = np.where(empty, f, idx)
    return m.reshape(geo.out_shape).astype(xd.dtype), idx.reshape(geo.out_shape).astype(np.int64)


def _int_avg_pool(xd, geo):
    x4 = np.ascontiguousarray(xd).reshape(geo.in4)
    vals, mask, _ = _gather_windows(x4, geo, (1, 1, 1))
    s = np.where(mask, vals.astype(np.int64), 0).sum(axis=-1)
    if geo.divisor:
        div = np.full(s.shape[1:], geo.divisor, np.int64)
    else:
        tabs = [K._avg_table(n, o, k, st, p) for n, o, k, st, p in
                zip(geo.in4[1:], geo.out4[1:], geo.k, geo.s, geo.p)]
        if geo.include_pad:
            sizes = [t[2] for t in tabs]
        else:
            sizes = [t[1] - t[0] for t in tabs]
        div = sizes[0][:, None, None] * sizes[1][None, :, None] * sizes[2][None, None, :]
    div = np.where(div == 0, 1, div)
    q = np.abs(s) // np.abs(div)
    q = np.where((s < 0) != (div < 0), -q, q)
    return q.reshape(geo.out_shape).astype(xd.dtype)


# ---------------------------------------------------------------------------------------------
# max_pool

def _parse_window(fname, nd, kernel_size, stride, padding, dilation, msgs):
    """Parse kernel_size / stride / padding / dilation into nd-tuples (torch's length checks)."""
    k = _ints(kernel_size, fname, "kernel_size")
    if len(k) not in (1, nd):
        raise RuntimeError(msgs["kernel_size"])
    s = () if stride is None else _ints(stride, fname, "stride")
    if len(s) not in (0, 1, nd):
        raise RuntimeError(msgs["stride"])
    p = _ints(padding, fname, "padding")
    if len(p) not in (1, nd):
        raise RuntimeError(msgs["padding"])
    k = _expand(k, nd)
    s = k if len(s) == 0 else _expand(s, nd)
    p = _expand(p, nd)
    if dilation is None:
        return k, s, p, None
    d = _ints(dilation, fname, "dilation")
    if len(d) not in (1, nd):
        raise RuntimeError(msgs["dilation"])
    return k, s, p, _expand(d, nd)


def _window_msgs(fname, nd):
    w = _NUM_WORDS[nd]
    if fname.startswith("avg_pool3d"):
        return {"kernel_size": f"{fname}: kernel_size must be a single int, or a tuple of {w} ints",
                "stride": f"{fname}: stride must be omitted, a single int, or a tuple of {w} ints",
                "padding": f"{fname}: padding must be a single int, or a tuple of {w} ints"}
    return {"kernel_size": f"{fname}: kernel_size must either be a single int, or a tuple of {w} ints",
            "stride": f"{fname}: stride must either be omitted, a single int, or a tuple of {w} ints",
            "padding": f"{fname}: padding must either be a single int, or a tuple of {w} ints",
            "dilation": f"{fname}: dilation must be either a single int, or a tuple of {w} ints"}


_DIM_NAMES = {2: ("H", "W"), 3: ("T", "H", "W")}


def _check_window(fname, shape, nd, k, s, p, d, ceil_mode, avg=False):
    """torch's checks of a 2-d / 3-d max or avg pooling call; returns the output spatial sizes."""
    shape = tuple(shape)
    ndim = len(shape)
    names = _DIM_NAMES[nd]
    spatial = shape[ndim - nd:]
    # pooling_output_shape, per dimension
    out = []
    for n, kk, ss, pp, dd in zip(spatial, k, s, p, d):
        if ss == 0:
            raise RuntimeError("stride should not be zero")
        if pp < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {pp}")
        if pp > _cdiv((kk - 1) * dd + 1, 2):
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
        out.append(_out_size(n, kk, ss, pp, dd, ceil_mode))
    # pool{2,3}d_shape_check
    if any(kk <= 0 for kk in k):
        raise RuntimeError("kernel size should be greater than zero, but got " +
                           " ".join(f"k{c}: {kk}" for c, kk in zip(names, k)))
    if any(ss <= 0 for ss in s):
        raise RuntimeError("stride should be greater than zero, but got " +
                           " ".join(f"d{c}: {ss}" for c, ss in zip(names, s)))
    if any(dd <= 0 for dd in d):
        raise RuntimeError("dilation should be greater than zero, but got " +
                           " ".join(f"dilation{c}: {dd}" for c, dd in zip(names, d)))
    if nd == 2:
        if any(v == 0 for v in shape[ndim - 3:]):
            raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for "
                               f"input, but got:{_sizes(shape)}")
        if not (k[1] // 2 >= p[1] and k[0] // 2 >= p[0]):
            raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                               f"padW = {p[1]}, padH = {p[0]}, kW = {k[1]}, kH = {k[0]}")
    else:
        if any(v == 0 for v in shape[ndim - 4:]):
            raise RuntimeError(f"{fname}(): Expected input's non-batch dimensions to have positive length, "
                               f"but input has a shape of {_sizes(shape)} and non-batch dimension "
                               f"{[v == 0 for v in shape[ndim - 4:]].index(True)} has length zero!")
        if avg and not all(n >= kk for n, kk in zip(spatial, k)):
            raise RuntimeError(f"input image (T: {spatial[0]} H: {spatial[1]} W: {spatial[2]}) smaller than "
                               f"kernel size (kT: {k[0]} kH: {k[1]} kW: {k[2]})")
        if not (k[2] // 2 >= p[2] and k[0] // 2 >= p[0] and k[1] // 2 >= p[1]):
            raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                               f"kT: {k[0]} kW: {k[2]} kH: {k[1]} padT: {p[0]} padW: {p[2]} padH: {p[1]}")
    if any(o < 1 for o in out):
        planes = shape[ndim - nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(str(v) for v in (planes,) + spatial)}). Calculated "
                           f"output size: ({'x'.join(str(v) for v in [planes] + out)}). Output size is too small")
    return out


def _max_pool_nd(nd, fname, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    _check_tensor(input, fname)
    k, s, p, d = _parse_window(fname, nd, kernel_size, stride, padding, dilation, _window_msgs(fname, nd))
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input")
    out = _check_window(fname if nd == 2 else "max_pool3d_with_indices_out_cpu_template", input.shape, nd, k, s, p, d,
                        ceil_mode)
    return _run_max(input, nd, fname, out, k, s, p, d, return_indices)


def _run_max(input, nd, kname, out, k, s, p, d, return_indices):
    _kernel_dtype_check(input, kname)
    geo = _Geom(input.shape, out, nd, k, s, p, d)
    if input._data.dtype.kind in "iu":
        vals, idx = _int_max_pool(input._data, geo)
        v = Tensor._make(vals)
        return (v, Tensor._make(idx)) if return_indices else v
    return _MaxPool.apply(input, geo, bool(return_indices))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-d max pooling over an input of shape (N, C, L) or (C, L).

    ``out[n, c, i] = max_t input[n, c, i * stride - padding + t * dilation]`` over the ``kernel_size``
    taps that fall inside the input (implicit padding is -inf). The output length is
    ``floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1`` (``ceil`` with
    ``ceil_mode``, where the last window must still start inside the input or the left padding).

    Parameters
    ----------
    input : Tensor
        (N, C, L) or (C, L).
    kernel_size : int or tuple of one int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        At most ``kernel_size // 2``.
    dilation : int
    ceil_mode : bool
    return_indices : bool
        Also return the int64 position of each maximum along L.

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.max_pool1d(cygrad.tensor([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2)
    tensor([[[3., 5.]]])
    >>> F.max_pool1d(cygrad.tensor([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2, return_indices=True)[1]
    tensor([[[1, 3]]])
    """
    _check_tensor(input, "max_pool1d")
    shape = tuple(input.shape)
    if input.dim() not in (2, 3) or 0 in shape[-2:]:
        raise RuntimeError("max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size "
                           f"for input, but got:{_sizes(shape)}")
    k = _ints(kernel_size, "max_pool1d", "kernel_size")
    if len(k) != 1:
        raise RuntimeError("max_pool1d() kernel_size must be an int, list of ints or tuple of ints of size 1 but "
                           f"got size {len(k)}")
    s = () if stride is None else _ints(stride, "max_pool1d", "stride")
    if len(s) not in (0, 1):
        raise RuntimeError("max_pool1d() stride must be None, an int, list of ints, or tuple of ints of size 1 "
                           f"but got size {len(s)}")
    p = _ints(padding, "max_pool1d", "padding")
    if len(p) != 1:
        raise RuntimeError("max_pool1d() padding must be an int, list of ints, or tuple of ints of size 1 but "
                           f"got size {len(p)}")
    d = _ints(dilation, "max_pool1d", "dilation")
    if len(d) != 1:
        raise RuntimeError("max_pool1d() dilation must be an int, list of ints or tuple of ints of size 1 but "
                           f"got size {len(d)}")
    k, p, d = k[0], p[0], d[0]
    s = k if len(s) == 0 else s[0]
    if k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise RuntimeError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"max_pool1d() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise RuntimeError(f"max_pool1d() padding should be at most half of kernel size, but got padding={p} "
                           f"and kernel_size={k}")
    if d <= 0:
        raise RuntimeError(f"max_pool1d() dilation must be greater than zero, but got {d}")
    o = _out_size(shape[-1], k, s, p, d, ceil_mode)
    if o < 1:
        raise RuntimeError(f"max_pool1d() Invalid computed output size: {o}")
    if input._data.dtype.kind not in "f" and not return_indices:
        raise NotImplementedError(f"\"max_pool1d_impl\" not implemented for '{D.scalar_name(input.dtype)}'")
    return _run_max(input, 1, "max_pool2d", [o], (k,), (s,), (p,), (d,), return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-d max pooling over an input of shape (N, C, H, W) or (C, H, W).

    Each output element is the maximum of a ``kernel_size`` window (taps ``dilation`` apart)
    moved by ``stride``; implicit padding is -inf and at most half the kernel. Output size per
    dimension: ``floor((n + 2 padding - dilation (kernel - 1) - 1) / stride) + 1`` (``ceil`` with
    ``ceil_mode``; the last window must start inside the input or the left padding). A NaN in a
    window is the window's maximum. ``return_indices`` also returns the int64 flat position
    ``h * W + w`` of each maximum within its (H, W) plane, as ``max_unpool2d`` expects.

    Parameters
    ----------
    input : Tensor
    kernel_size, stride, padding, dilation : int or tuple of two ints
        ``stride`` defaults to ``kernel_size``.
    ceil_mode : bool
    return_indices : bool

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.max_pool2d(x, 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    >>> F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)[1]
    tensor([[[[ 5,  7],
              [13, 15]]]])
    """
    return _max_pool_nd(2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """3-d max pooling over an input of shape (N, C, D, H, W) or (C, D, H, W).

    As :func:`max_pool2d` with (d, h, w) windows; indices are flat positions ``d * H * W + h * W + w``.

    Parameters
    ----------
    input : Tensor
    kernel_size, stride, padding, dilation : int or tuple of three ints
    ceil_mode : bool
    return_indices : bool

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.max_pool3d(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 2)
    tensor([[[[[7.]]]]])
    """
    if isinstance(input, Tensor) and input._data.dtype == np.bool_:
        raise NotImplementedError("\"max_pool3d\" not implemented for 'Bool'")
    return _max_pool_nd(3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool1d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.max_pool1d_with_indices(cygrad.tensor([[[1.0, 3.0, 2.0, 5.0]]]), 2)[1]
    tensor([[[1, 3]]])
    """
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool2d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.max_pool2d_with_indices(cygrad.arange(4.0).reshape(1, 1, 2, 2), 2)[1]
    tensor([[[[3]]]])
    """
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool3d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.max_pool3d_with_indices(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 2)[1]
    tensor([[[[[7]]]]])
    """
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


# ---------------------------------------------------------------------------------------------
# avg_pool

def _divisor(divisor_override):
    if divisor_override is None:
        return 0
    dv = _int(divisor_override, "avg_pool2d", "divisor_override")
    if dv == 0:
        raise RuntimeError("divisor must be not zero")
    return dv


def _run_avg(input, nd, kname, out, k, s, p, count_include_pad, divisor):
    _kernel_dtype_check(input, kname)
    if input._data.dtype.kind in "iu" and input._data.dtype != np.int64:  # torch: float and int64 only
        raise NotImplementedError(f"\"{kname}\" not implemented for '{D.scalar_name(input.dtype)}'")
    geo = _Geom(input.shape, out, nd, k, s, p, (1,) * nd, count_include_pad, divisor)
    if input._data.dtype.kind in "iu":
        return Tensor._make(_int_avg_pool(input._data, geo))
    return _AvgPool.apply(input, geo)


def _avg_pool_nd(nd, fname, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                 kname):
    _check_tensor(input, fname)
    k, s, p, _ = _parse_window(fname, nd, kernel_size, stride, padding, None, _window_msgs(fname, nd))
    divisor = _divisor(divisor_override)
    if input.dim() not in (nd + 1, nd + 2):
        if nd == 2:
            if input.dim() < 3:
                raise IndexError(f"Dimension out of range (expected to be in range of [-{input.dim()}, "
                                 f"{input.dim() - 1}], but got -3)")
            raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                               f"but got:{_sizes(input.shape)}")
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input")
    out = _check_window(fname, input.shape, nd, k, s, p, (1,) * nd, ceil_mode, avg=True)
    return _run_avg(input, nd, kname, out, k, s, p, count_include_pad, divisor)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-d average pooling over an input of shape (N, C, L) or (C, L).

    Each output is the mean of a window of ``kernel_size`` elements moved by ``stride``; zero
    padding counts in the divisor when ``count_include_pad``. Output length as
    :func:`max_pool1d` with dilation 1. (torch's avg_pool1d has no ``divisor_override``.)

    Parameters
    ----------
    input : Tensor
    kernel_size : int or tuple of one int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        At most ``kernel_size // 2``.
    ceil_mode : bool
    count_include_pad : bool

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.avg_pool1d(cygrad.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]]), 3, stride=2)
    tensor([[[2., 4., 6.]]])
    """
    _check_tensor(input, "avg_pool1d")
    if input.dim() not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.dim()}-dimensional tensor for argument #1 "
                           "'self' (while checking arguments for avg_pool1d)")
    vals = {}
    for name, v in (("kernel_size", kernel_size), ("stride", stride), ("padding", padding)):
        if name == "stride" and v is None:
            vals[name] = ()
            continue
        t = _ints(v, "avg_pool1d", name)
        if len(t) != 1 and not (name == "stride" and len(t) == 0):
            raise RuntimeError(f"avg_pool1d() argument '{name}' should contain one int (got {len(t)})")
        vals[name] = t
    k = vals["kernel_size"][0]
    s = vals["stride"][0] if vals["stride"] else k
    p = vals["padding"][0]
    shape = tuple(input.shape)
    out = _check_window("avg_pool2d", shape[:-1] + (1,) + shape[-1:], 2, (1, k), (1, s), (0, p), (1, 1),
                        ceil_mode, avg=True)
    return _run_avg(input, 1, "avg_pool2d", out[1:], (k,), (s,), (p,), count_include_pad, 0)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-d average pooling over an input of shape (N, C, H, W) or (C, H, W).

    Each output is the sum of a ``kernel_size`` window divided by ``divisor_override`` if given,
    else by the window size (clipped to the padded input) with ``count_include_pad``, else by the
    number of input elements in the window. Output size as :func:`max_pool2d` with dilation 1.

    Parameters
    ----------
    input : Tensor
    kernel_size, stride, padding : int or tuple of two ints
        ``stride`` defaults to ``kernel_size``; ``padding`` at most half the kernel.
    ceil_mode : bool
    count_include_pad : bool
    divisor_override : int, optional

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.avg_pool2d(x, 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    >>> F.avg_pool2d(x, 2, divisor_override=1)
    tensor([[[[10., 18.],
              [42., 50.]]]])
    """
    return _avg_pool_nd(2, "avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, "avg_pool2d")


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """3-d average pooling over an input of shape (N, C, D, H, W) or (C, D, H, W).

    As :func:`avg_pool2d` with (d, h, w) windows.

    Parameters
    ----------
    input : Tensor
    kernel_size, stride, padding : int or tuple of three ints
    ceil_mode : bool
    count_include_pad : bool
    divisor_override : int, optional

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.avg_pool3d(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 2)
    tensor([[[[[3.5000]]]]])
    """
    return _avg_pool_nd(3, "avg_pool3d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, "avg_pool3d_out_frame")


# ---------------------------------------------------------------------------------------------
# adaptive pooling

def _adaptive_sizes(fname, nd, input, output_size, is_max):
    """Output spatial sizes of an adaptive pool (None entries keep the input size), torch's checks."""
    if nd == 1:
        if output_size is None:
            raise TypeError(f"{fname}(): argument 'output_size' (position 2) must be tuple of ints, not NoneType")
        if isinstance(output_size, (list, tuple)) and any(v is None for v in output_size):
            pos = [v is None for v in output_size].index(True)
            raise TypeError(f"{fname}(): argument 'output_size' (position 2) must be tuple of ints, but found "
                            f"element of type NoneType at pos {pos}")
        if input.dim() not in (2, 3):
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.dim()}-dimensional tensor for argument "
                               f"#1 'self' (while checking arguments for {fname})")
        o = _ints(output_size, fname, "output_size")
        if len(o) != 1:
            raise RuntimeError(f"{fname}() argument 'output_size' should contain one int (got {len(o)})")
        return [o[0]]
    if isinstance(output_size, (list, tuple)):
        o = list(output_size)
    elif output_size is None:
        o = [None] * nd
    else:
        o = [output_size] * nd
    if len(o) != nd:
        if is_max:
            raise RuntimeError(f"{fname}(): internal error: output_size.size() must be {nd}")
        raise RuntimeError(f"{fname}: output_size must be {nd}")
    spatial = tuple(input.shape)[max(input.dim() - nd, 0):]
    res = []
    for i, v in enumerate(o):
        if v is None:
            if len(spatial) == nd:
                res.append(spatial[i])
                continue
            res.append(v)
        else:
            res.append(_int(v, fname, "output_size"))
    return res


def _adaptive_checks(fname, nd, input, out, is_max):
    shape = tuple(input.shape)
    if nd > 1 and input.dim() not in (nd + 1, nd + 2):
        sep = ": " if is_max else " "
        raise RuntimeError(f"{fname}(): Expected {nd + 1}D or {nd + 2}D tensor, but got{sep}{_sizes(shape)}")
    # empty non-batch dimensions: adaptive max checks every one, adaptive avg only the spatial ones
    first = 1 if input.dim() == nd + 2 else 0
    check_from = first if (is_max or nd == 3) else input.dim() - nd
    for i in range(check_from, input.dim()):
        if shape[i] == 0:
            raise RuntimeError(f"{fname}(): Expected input to have non-zero size for non-batch dimensions, but "
                               f"input has sizes {_sizes(shape)} with dimension {i} being empty")
    if any(v is None for v in out):
        raise TypeError(f"{fname}(): output_size entries may only be None for an input with spatial dims")
    if any(v < 0 for v in out):
        if is_max:
            full = list(shape[:input.dim() - nd]) + ([1] if nd == 1 else []) + list(out)
            raise RuntimeError(f"Trying to create tensor with negative dimension {min(out)}: {_sizes(full)}")
        name = "adaptive_avg_pool2d" if nd < 3 else "adaptive_avg_pool3d"
        vals = ([1] if nd == 1 else []) + list(out)
        text = ", ".join(str(v) for v in vals) if nd < 3 else f"{vals[0]}, {vals[1]},{vals[2]}"
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{text}}}")


def _adaptive(nd, fname, kname, input, output_size, is_max, return_indices=False):
    _check_tensor(input, fname)
    out = _adaptive_sizes(fname, nd, input, output_size, is_max)
    _adaptive_checks(fname, nd, input, out, is_max)
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"{kname}\" not implemented for '{D.scalar_name(input.dtype)}'")
    geo = _Geom(input.shape, out, nd, adaptive=True)
    if is_max:
        return _MaxPool.apply(input, geo, bool(return_indices))
    return _AvgPool.apply(input, geo)


def adaptive_avg_pool1d(input, output_size):
    """1-d adaptive average pooling to ``output_size`` over (N, C, L) or (C, L).

    Output ``i`` averages input ``[floor(i L / out), ceil((i + 1) L / out))``.

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of one int

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_avg_pool1d(cygrad.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2)
    tensor([[[2., 4.]]])
    """
    return _adaptive(1, "adaptive_avg_pool1d", "adaptive_avg_pool2d", input, output_size, False)


def adaptive_avg_pool2d(input, output_size):
    """2-d adaptive average pooling to ``output_size`` over (N, C, H, W) or (C, H, W).

    Output ``(i, j)`` averages rows ``[floor(i H / oH), ceil((i + 1) H / oH))`` and the same
    columns rule; windows may overlap when the sizes do not divide.

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of two (int or None)
        ``None`` keeps that input size.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_avg_pool2d(cygrad.arange(16.0).reshape(1, 1, 4, 4), 1)
    tensor([[[[7.5000]]]])
    >>> F.adaptive_avg_pool2d(cygrad.ones(1, 3, 5, 4), (None, 2)).shape
    cygrad.Size([1, 3, 5, 2])
    """
    return _adaptive(2, "adaptive_avg_pool2d", "adaptive_avg_pool2d", input, output_size, False)


def adaptive_avg_pool3d(input, output_size):
    """3-d adaptive average pooling to ``output_size`` over (N, C, D, H, W) or (C, D, H, W).

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of three (int or None)

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_avg_pool3d(cygrad.ones(2, 3, 4, 5, 6), (1, None, 2)).shape
    cygrad.Size([2, 3, 1, 5, 2])
    """
    return _adaptive(3, "adaptive_avg_pool3d", "adaptive_avg_pool3d_cpu", input, output_size, False)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """1-d adaptive max pooling to ``output_size`` over (N, C, L) or (C, L).

    Windows as :func:`adaptive_avg_pool1d`; ``return_indices`` also returns the int64 position of
    each maximum.

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of one int
    return_indices : bool

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool1d(cygrad.tensor([[[1.0, 5.0, 2.0, 4.0, 3.0]]]), 2, return_indices=True)
    (tensor([[[5., 4.]]]), tensor([[[1, 3]]]))
    """
    return _adaptive(1, "adaptive_max_pool1d", "adaptive_max_pool2d", input, output_size, True, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """2-d adaptive max pooling to ``output_size`` over (N, C, H, W) or (C, H, W).

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of two (int or None)
    return_indices : bool
        Also return the int64 flat position ``h * W + w`` of each maximum.

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool2d(cygrad.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _adaptive(2, "adaptive_max_pool2d", "adaptive_max_pool2d", input, output_size, True, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """3-d adaptive max pooling to ``output_size`` over (N, C, D, H, W) or (C, D, H, W).

    Parameters
    ----------
    input : Tensor
    output_size : int or tuple of three (int or None)
    return_indices : bool

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``return_indices``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool3d(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 1)
    tensor([[[[[7.]]]]])
    """
    return _adaptive(3, "adaptive_max_pool3d", "adaptive_max_pool3d_cpu", input, output_size, True, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool1d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool1d_with_indices(cygrad.tensor([[[1.0, 5.0, 2.0]]]), 1)[1]
    tensor([[[1]]])
    """
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool2d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool2d_with_indices(cygrad.arange(4.0).reshape(1, 1, 2, 2), 1)[1]
    tensor([[[[3]]]])
    """
    return adaptive_max_pool2d(input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool3d` returning ``(output, indices)`` (torch's alias).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.adaptive_max_pool3d_with_indices(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 1)[1]
    tensor([[[[[7]]]]])
    """
    return adaptive_max_pool3d(input, output_size, True)


# ---------------------------------------------------------------------------------------------
# max_unpool

def _unpool_output_size(input, kernel_size, stride, padding, output_size):
    """torch's default / checked output size of max_unpool (a list of the spatial sizes)."""
    nd = len(kernel_size)
    in_sizes = tuple(input.shape)[-nd:]
    default = [(in_sizes[d] - 1) * stride[d] + kernel_size[d] - 2 * padding[d] for d in range(nd)]
    if output_size is None:
        return default
    if isinstance(output_size, Tensor):
        output_size = [int(v) for v in output_size._data.reshape(-1)]
    output_size = list(output_size)
    if len(output_size) == nd + 2:
        output_size = output_size[2:]
    if len(output_size) != nd:
        raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} elements, but it has a "
                         f"length of '{len(output_size)}'")
    for d in range(nd):
        lo, hi = default[d] - stride[d], default[d] + stride[d]
        if not (lo < output_size[d] < hi):
            raise ValueError(f'invalid output_size "{tuple(output_size)}" (dim {d} must be between {lo} and {hi})')
    return [int(v) for v in output_size]


def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    fname = f"max_unpool{nd}d"
    _check_tensor(input, fname)
    _check_tensor(indices, fname)
    k = _expand(_ints(kernel_size, fname, "kernel_size"), nd)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else \
        _expand(_ints(stride, fname, "stride"), nd)
    p = _expand(_ints(padding, fname, "padding"), nd)
    if len(k) != nd or len(s) != nd or len(p) != nd:
        raise ValueError(f"{fname}: kernel_size, stride and padding must have {nd} elements, got {k}, {s}, {p}")
    kdim = 2 if nd == 1 else nd  # 1-d unpooling is torch's 2-d with W = 1
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Input to max_unpooling{kdim}d should be a {kdim + 1}d or {kdim + 2}d Tensor, but got "
                           f"a tensor with {input.dim() + (1 if nd == 1 else 0)} dimensions.")
    out = _unpool_output_size(input, k, s, p, output_size)
    for d, v in enumerate(out):
        if v < 0:
            raise ValueError("max_unpooling: output_size must contain non-negative spatial dimensions, but got "
                             f"output_size[{d}]={v}")
    if indices._data.dtype != np.int64:
        raise RuntimeError(f"elements in indices should be type int64 but got: {D.scalar_name(indices.dtype)}")
    ishape, xshape = tuple(indices.shape), tuple(input.shape)
    if ishape != xshape:
        sx, si = (xshape + (1,), ishape + (1,)) if nd == 1 else (xshape, ishape)
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor ({_sizes(sx)}) but "
                           f"got indices tensor with shape: {_sizes(si)}")
    first = 1 if input.dim() == nd + 2 else 0
    for i in range(first, input.dim()):
        if xshape[i] == 0:
            full = xshape + ((1,) if nd == 1 else ())
            raise RuntimeError(f"max_unpooling{kdim}d_forward_out_cpu(): Expected input to have non-zero size for "
                               f"non-batch dimensions, but got {_sizes(full)} with dimension {i} being empty.")
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"max_unpool{kdim}d\" not implemented for '{D.scalar_name(input.dtype)}'")
    lead = xshape[:input.dim() - nd]
    out_shape = lead + tuple(out)
    plane = int(np.prod(out, dtype=np.int64))
    planes = int(np.prod(lead, dtype=np.int64))
    idx2 = _as_planes(np.ascontiguousarray(indices._data), planes)
    if plane and idx2.size:
        bad = (idx2 < 0) | (idx2 >= plane)
        if bad.any():
            flat_bad = bad.reshape(-1)  # torch reports the last invalid index
            v = int(idx2.reshape(-1)[flat_bad.size - 1 - np.argmax(flat_bad[::-1])])
            sizes = "x".join(str(o) for o in (list(out) + ([1] if nd == 1 else [])))
            raise RuntimeError(f"Found an invalid max index: {v} (output volumes are of size {sizes})")
    return _IndexScatter.apply(input, idx2, out_shape)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool1d`: zeros with ``input`` written at ``indices``.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or (C, L).
    indices : Tensor
        int64, same shape as ``input`` (as returned by ``max_pool1d(..., return_indices=True)``).
    kernel_size, stride, padding : int or tuple of one int
        Those of the max pooling; they give the default output length
        ``(L - 1) * stride + kernel_size - 2 * padding``.
    output_size : sequence of ints, optional
        Explicit output length (within one stride of the default).

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> y, i = F.max_pool1d(cygrad.tensor([[[1.0, 3.0, 2.0, 5.0]]]), 2, return_indices=True)
    >>> F.max_unpool1d(y, i, 2)
    tensor([[[0., 3., 0., 5.]]])
    """
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool2d`: zeros with ``input`` written at the flat ``indices``.

    Parameters
    ----------
    input : Tensor
        (N, C, H, W) or (C, H, W).
    indices : Tensor
        int64 flat positions ``h * W_out + w`` within each output plane, same shape as ``input``.
    kernel_size, stride, padding : int or tuple of two ints
    output_size : sequence of ints, optional
        (H, W) or (N, C, H, W), each within one stride of the default size.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> y, i = F.max_pool2d(cygrad.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    >>> F.max_unpool2d(y, i, 2)
    tensor([[[[ 0.,  0.,  0.,  0.],
              [ 0.,  5.,  0.,  7.],
              [ 0.,  0.,  0.,  0.],
              [ 0., 13.,  0., 15.]]]])
    """
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool3d`: zeros with ``input`` written at the flat ``indices``.

    Parameters
    ----------
    input : Tensor
        (N, C, D, H, W) or (C, D, H, W).
    indices : Tensor
        int64, same shape as ``input``.
    kernel_size, stride, padding : int or tuple of three ints
    output_size : sequence of ints, optional

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> y, i = F.max_pool3d(cygrad.arange(8.0).reshape(1, 1, 2, 2, 2), 2, return_indices=True)
    >>> F.max_unpool3d(y, i, 2).reshape(-1)
    tensor([0., 0., 0., 0., 0., 0., 0., 7.])
    """
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


# ---------------------------------------------------------------------------------------------
# lp_pool (composed from avg_pool as torch does)

def _lp_pool(nd, max_pool, avg_pool, input, norm_type, kernel_size, stride, ceil_mode):
    """lp_pool{nd}d composed from ``max_pool`` / ``avg_pool`` of that rank, as torch does."""
    fname = f"lp_pool{nd}d"
    k = _expand(_ints(kernel_size, fname, "kernel_size"), nd) if nd > 1 else None  # 1-d parses after pooling
    if norm_type == float("inf"):
        return max_pool(input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -float("inf"):
        return -max_pool(-input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    if stride is not None:
        out = avg_pool(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    else:
        out = avg_pool(input.pow(norm_type), kernel_size, padding=0, ceil_mode=ceil_mode)
    if k is None:
        k = _ints(kernel_size, fname, "kernel_size")
    from .activation import relu
    return (out.sign() * relu(out.abs())).mul(math.prod(k)).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """1-d power-average pooling: ``(sum over the window of x^p) ^ (1 / p)``.

    Computed as torch does: ``avg_pool1d(x ** p)``, its sign times its absolute value, times the
    window size, to the power ``1 / p`` (so a negative window sum gives NaN for even roots).

    Parameters
    ----------
    input : Tensor
    norm_type : float
        The power p; ``inf`` gives max pooling of ``|x|`` (and ``-inf`` minus the max of ``-|x|``).
    kernel_size : int
    stride : int, optional
    ceil_mode : bool

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.lp_pool1d(cygrad.tensor([[[3.0, 4.0, 1.0, 1.0]]]), 2, 2)
    tensor([[[5.0000, 1.4142]]])
    """
    return _lp_pool(1, max_pool1d, avg_pool1d, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """2-d power-average pooling: ``(sum over the window of x^p) ^ (1 / p)``.

    Composed from :func:`avg_pool2d` exactly as torch does (see :func:`lp_pool1d`).

    Parameters
    ----------
    input : Tensor
    norm_type : float
    kernel_size : int or tuple of two ints
    stride : int or tuple of two ints, optional
    ceil_mode : bool

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.lp_pool2d(cygrad.tensor([[[[3.0, 4.0], [0.0, 0.0]]]]), 2, 2)
    tensor([[[[5.]]]])
    """
    return _lp_pool(2, max_pool2d, avg_pool2d, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """3-d power-average pooling, composed from :func:`avg_pool3d` as torch does.

    Parameters
    ----------
    input : Tensor
    norm_type : float
    kernel_size : int or tuple of three ints
    stride : int or tuple of three ints, optional
    ceil_mode : bool

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.lp_pool3d(cygrad.ones(1, 1, 2, 2, 2), 1, 2)
    tensor([[[[[8.]]]]])
    """
    return _lp_pool(3, max_pool3d, avg_pool3d, input, norm_type, kernel_size, stride, ceil_mode)
