"""Resampling: interpolate (nearest, bilinear, bicubic, ...), pixel_shuffle/unshuffle over ``_C.resample``.

Every ``interpolate`` mode is a separable linear map. This module turns (mode, sizes, scales,
align_corners) into one table per spatial axis, following torch's CPU index rules exactly
(which float precision each step uses, the clamping at the borders, the shortcuts of the 2-D
nearest kernel), and hands the tables to the kernels in ``_C/resample.pyx``, which apply the
axes one after another (W, then H, then D) forward and the adjoint backward.

The operator is linear in its input, so the backward of ``interpolate`` is another
``Function`` (the adjoint) whose own backward is ``interpolate`` again: gradients of any
order follow.

``pixel_shuffle`` / ``pixel_unshuffle`` are permutations of the elements (a reshape, a
transpose and a reshape); each is one ``Function`` whose backward is the other.
"""
import functools
import math
import numbers
import warnings

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import resample as K

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle",
           "pixel_unshuffle"]

_ALL_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"
_RANK_OF_MODE = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}
_AXIS_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


# ---- per-axis tables ----------------------------------------------------------------------------
# An axis table maps output position j to cnt[j] taps: y[j] = sum_k wt[j, k] * x[idx[j, k]].

class _Axis:
    __slots__ = ("idx", "wt", "cnt", "identity", "used")

    def __init__(self, idx, wt, cnt, n_in, identity=False):
        self.idx = np.ascontiguousarray(idx, dtype=np.intp)
        self.wt = np.ascontiguousarray(wt)
        self.cnt = np.ascontiguousarray(cnt, dtype=np.intp)
        self.identity = identity
        # which input positions some output reads (rows of the W-pass not needed are skipped)
        used = np.zeros(n_in, np.uint8)
        taken = np.arange(self.idx.shape[1]) < self.cnt[:, None]
        used[self.idx[taken]] = 1
        self.used = used


def _identity_axis(n, dtype):
    return _Axis(np.arange(n)[:, None], np.ones((n, 1), dtype), np.ones(n), n, identity=True)


def _one_tap_axis(idx, n_in, dtype):
    n_out = idx.shape[0]
    identity = n_out == n_in and bool(np.all(idx == np.arange(n_in)))
    return _Axis(idx[:, None], np.ones((n_out, 1), dtype), np.ones(n_out), n_in, identity)


def _inverse_scale(scale, n_in, n_out, ft):
    """torch's compute_scales_value: 1 / scale_factor when one was given, else n_in / n_out."""
    if scale is not None and scale > 0:
        return ft(1.0 / scale)
    return ft(n_in) / ft(n_out)


def _area_scale(n_in, n_out, align_corners, scale, ft):
    """torch's area_pixel_compute_scale, in the precision ``ft``."""
    if align_corners:
        return ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)
    return _inverse_scale(scale, n_in, n_out, ft)


def _nearest_axis(n_in, n_out, scale, exact, shortcuts, dtype):
    j = np.arange(n_out)
    s = _inverse_scale(scale, n_in, n_out, np.float32)         # always float32, as in torch
    if shortcuts and n_out == n_in:                             # the 2-D kernel's special cases
        idx = j
    elif shortcuts and n_out == 2 * n_in:
        idx = j >> 1
    elif exact:                                                 # floorf((j + 0.5) * scale)
        idx = np.floor(((j + 0.5) * np.float64(s)).astype(np.float32)).astype(np.intp)
    else:                                                       # floorf(j * scale)
        idx = np.floor(j.astype(np.float32) * s).astype(np.intp)
    return _one_tap_axis(np.minimum(idx, n_in - 1), n_in, dtype)


def _source_index(n_in, n_out, align_corners, scale, ft, cubic):
    s = _area_scale(n_in, n_out, align_corners, scale, ft)
    jf = np.arange(n_out).astype(ft)
    if align_corners:
        return s * jf
    src = s * (jf + ft(0.5)) - ft(0.5)
    return src if cubic else np.maximum(src, ft(0))


def _linear_axis(n_in, n_out, align_corners, scale, dtype):
    if n_out == n_in:                                           # torch copies: scale ignored
        return _identity_axis(n_in, dtype)
    ft = np.dtype(dtype).type
    src = _source_index(n_in, n_out, align_corners, scale, ft, cubic=False)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    lam = np.clip(src - i0.astype(ft), ft(0), ft(1))
    i1 = i0 + (i0 < n_in - 1)
    return _Axis(np.stack([i0, i1], 1), np.stack([ft(1) - lam, lam], 1), np.full(n_out, 2), n_in)


def _cubic_axis(n_in, n_out, align_corners, scale, dtype):
    ft = np.dtype(dtype).type
    src = _source_index(n_in, n_out, align_corners, scale, ft, cubic=True)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    t = np.clip(src - i0.astype(ft), ft(0), ft(1))
    a = ft(-0.75)                                               # Keys' cubic convolution, A = -0.75

    def near(x):                                                # |x| <= 1
        return ((a + ft(2)) * x - (a + ft(3))) * x * x + ft(1)

    def far(x):                                                 # 1 < |x| < 2
        return ((a * x - ft(5) * a) * x + ft(8) * a) * x - ft(4) * a

    u = ft(1) - t
    wt = np.stack([far(t + ft(1)), near(t), near(u), far(u + ft(1))], 1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3), 0, n_in - 1)  # border taps repeat the edge
    return _Axis(idx, wt, np.full(n_out, 4), n_in)


def _area_axis(n_in, n_out, dtype):
    if n_out == n_in:
        return _identity_axis(n_in, dtype)
    ft = np.dtype(dtype).type
    j = np.arange(n_out)
    start = (j * n_in) // n_out                                 # adaptive average pooling bins
    end = -((-(j + 1) * n_in) // n_out)
    cnt = end - start
    k = int(cnt.max())
    idx = np.minimum(start[:, None] + np.arange(k), n_in - 1)
    wt = np.repeat((ft(1) / cnt.astype(ft))[:, None], k, axis=1)
    return _Axis(idx, wt, cnt, n_in)


def _axis(kind, n_in, n_out, align_corners, scale, dtype, nd):
    if kind == "nearest":
        return _nearest_axis(n_in, n_out, scale, False, nd == 2, dtype)
    if kind == "nearest-exact":
        return _nearest_axis(n_in, n_out, scale, True, False, dtype)
    if kind == "linear":
        return _linear_axis(n_in, n_out, align_corners, scale, dtype)
    if kind == "cubic":
        return _cubic_axis(n_in, n_out, align_corners, scale, dtype)
    return _area_axis(n_in, n_out, dtype)


class _Plan:
    """Tables and geometry of one interpolate call (input spatial shape -> output spatial shape)."""

    def __init__(self, kind, in_sizes, out_sizes, align_corners, scales, dtype):
        nd = len(in_sizes)
        self.dtype = np.dtype(dtype)
        self.in_spatial, self.out_spatial = tuple(in_sizes), tuple(out_sizes)
        self.empty = 0 in self.out_spatial                      # area to an empty size
        if self.empty:
            return
        pad = 3 - nd
        self.shape_in = (1,) * pad + tuple(in_sizes)
        self.shape_out = (1,) * pad + tuple(out_sizes)
        scales = [None] * pad + list(scales if scales is not None else [None] * nd)
        axes = [_identity_axis(1, dtype) if i < pad else
                _axis(kind, self.shape_in[i], self.shape_out[i], align_corners, scales[i], dtype, nd)
                for i in range(3)]
        self.axes = axes                                        # (D, H, W)
        d_used = axes[0].used
        row_used = (d_used[:, None] & axes[1].used[None, :]).reshape(-1)
        self.args = (self.shape_in, self.shape_out,
                     axes[2].idx, axes[2].wt, axes[2].cnt,
                     axes[1].idx, axes[1].wt, axes[1].cnt,
                     axes[0].idx, axes[0].wt, axes[0].cnt,
                     np.ascontiguousarray(row_used), np.ascontiguousarray(d_used),
                     (axes[2].identity, axes[1].identity, axes[0].identity))
        self.n_in = math.prod(self.shape_in)
        self.n_out = math.prod(self.shape_out)

    def _planes(self, a, n):
        a = np.ascontiguousarray(a, dtype=self.dtype)
        return a.reshape(-1, n)

    def apply(self, xd, lead):
        """Forward map of an array (*lead, *spatial_in) -> (*lead, *spatial_out) in xd's dtype."""
        if self.empty:
            return np.zeros(lead + self.out_spatial, xd.dtype)
        x = self._planes(xd, self.n_in)
        out = np.empty((x.shape[0], self.n_out), self.dtype)
        K.resample_forward(x, out, *self.args)
        return out.reshape(lead + self.out_spatial).astype(xd.dtype, copy=False)

    def apply_t(self, gd, lead):
        """Adjoint map (*lead, *spatial_out) -> (*lead, *spatial_in)."""
        if self.empty:
            return np.zeros(lead + self.in_spatial, gd.dtype)
        g = self._planes(gd, self.n_out)
        out = np.empty((g.shape[0], self.n_in), self.dtype)
        K.resample_backward(g, out, *self.args)
        return out.reshape(lead + self.in_spatial).astype(gd.dtype, copy=False)

    def gather(self, xd):
        """Nearest modes on integer (uint8) arrays: a plain index gather, no kernel."""
        if self.empty:
            return np.zeros(xd.shape[:2] + self.out_spatial, xd.dtype)
        nd = len(self.in_spatial)
        idx = [ax.idx[:, 0] for ax in self.axes[3 - nd:]]
        return np.ascontiguousarray(xd[(Ellipsis,) + np.ix_(*idx)])


@functools.lru_cache(maxsize=256)
def _plan(kind, in_sizes, out_sizes, align_corners, scales, dtype):
    """Plans are immutable (their tables read-only), so one is shared by every call with the same
    geometry: a training loop builds its tables once."""
    plan = _Plan(kind, in_sizes, out_sizes, align_corners, scales, np.dtype(dtype))
    for ax in getattr(plan, "axes", ()):
        for a in (ax.idx, ax.wt, ax.cnt, ax.used):
            a.flags.writeable = False
    return plan


class _Resample(Function):
    """y = A x for the separable linear map A of a plan; backward: A^T g (the adjoint class)."""

    _builtin = True
    adjoint = None

    @classmethod
    def forward(cls, ctx, x, plan):
        ctx.plan = plan
        xd = x._data
        return plan.apply(xd, xd.shape[:2])

    @classmethod
    def backward(cls, ctx, g):
        plan = ctx.plan
        if state.enabled:                                       # create_graph: record A^T g
            return cls.adjoint.apply(g, plan), None
        gd = g._data
        return Tensor._make(plan.apply_t(gd, gd.shape[:2])), None


class _ResampleAdjoint(Function):
    """g -> A^T g; its backward is A again (the map is linear)."""

    _builtin = True
    primal = None

    @classmethod
    def forward(cls, ctx, g, plan):
        ctx.plan = plan
        gd = g._data
        return plan.apply_t(gd, gd.shape[:2])

    @classmethod
    def backward(cls, ctx, gg):
        return cls.primal.apply(gg, ctx.plan), None


def _make_pair(name):
    """Forward/adjoint Function classes whose graph nodes carry torch's names
    (e.g. ``UpsampleBilinear2DBackward0``)."""
    fwd = type(name, (_Resample,), {"_builtin": True, "__doc__": _Resample.__doc__})
    adj = type(name + "Backward", (_ResampleAdjoint,), {"_builtin": True,
                                                        "__doc__": _ResampleAdjoint.__doc__})
    fwd.adjoint, adj.primal = adj, fwd
    return fwd


_FUNCTIONS = {}
for _nd in (1, 2, 3):
    for _mode, _title in (("nearest", "Nearest"), ("nearest-exact", "NearestExact"),
                          ("area", "AdaptiveAvgPool")):
        _FUNCTIONS[_mode, _nd] = _make_pair(f"Upsample{_title}{_nd}D" if _mode != "area"
                                            else f"AdaptiveAvgPool{max(_nd, 2)}D")
_FUNCTIONS["linear", 1] = _make_pair("UpsampleLinear1D")
_FUNCTIONS["bilinear", 2] = _make_pair("UpsampleBilinear2D")
_FUNCTIONS["bicubic", 2] = _make_pair("UpsampleBicubic2D")
_FUNCTIONS["trilinear", 3] = _make_pair("UpsampleTrilinear3D")
_KIND = {"nearest": "nearest", "nearest-exact": "nearest-exact", "area": "area", "linear": "linear",
         "bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}


# ---- argument processing ------------------------------------------------------------------------

def _is_integer(v):
    if isinstance(v, Tensor):
        return not v.is_floating_point() and v.numel() == 1
    return isinstance(v, (numbers.Integral, np.integer))


def _dtype_error(kernel, x):
    return NotImplementedError(f"\"{kernel}\" not implemented for '{D.scalar_name(x.dtype)}'")


def _kernel_name(mode, nd):
    if mode in ("nearest", "nearest-exact"):
        return "upsample_nearest2d_channels_last" if nd == 2 else "compute_indices_weights_nearest"
    if mode == "bilinear":
        return "upsample_bilinear2d_channels_last"
    if mode == "bicubic":
        return "compute_indices_weights_cubic"
    if mode == "area":
        return "adaptive_avg_pool3d_cpu" if nd == 3 else "adaptive_avg_pool2d"
    return "compute_indices_weights_linear"


def _sizes_str(names, sizes):
    return ", ".join(f"{n}: {s}" for n, s in zip(names, sizes))


def _check_upsample_sizes(input, in_sizes, out_sizes):
    """torch's upsample_Nd_common_check: positive sizes, non-empty (batch may be 0) input."""
    nd = len(in_sizes)
    names = _AXIS_NAMES[nd]
    if min(in_sizes) <= 0 or min(out_sizes) <= 0:
        joint = " and output" if nd == 1 else " output"
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input "
            f"({_sizes_str(names, in_sizes)}){joint} ({_sizes_str(names, out_sizes)})")
    if input.shape[1] == 0:
        raise RuntimeError(f"Non-empty {input.dim()}D data tensor expected but got a tensor with sizes "
                           f"{list(input.shape)}")


def _check_area_sizes(input, in_sizes, out_sizes):
    """torch's adaptive_avg_pool{2,3}d checks (1-D area runs as 2-D on (N, C, 1, L))."""
    nd = len(in_sizes)
    pool = 3 if nd == 3 else 2
    shape = list(input.shape)
    outs = list(out_sizes)
    if nd == 1:
        shape.insert(2, 1)
        outs.insert(0, 1)
    first = 1 if pool == 3 else 2                              # dims that must be non-empty
    for d in range(first, len(shape)):
        if shape[d] == 0:
            raise RuntimeError(
                f"adaptive_avg_pool{pool}d(): Expected input to have non-zero size for non-batch "
                f"dimensions, but input has sizes {shape} with dimension {d} being empty")
    if min(outs) < 0:
        received = (", ".join(str(o) for o in outs) if pool == 2 else
                    f"{outs[0]}, {outs[1]},{outs[2]}")
        raise RuntimeError(f"adaptive_avg_pool{pool}d: elements of output_size must be greater "
                           f"than or equal to 0 but received {{{received}}}")


def _output_from_scale(n, s):
    """torch's C++ output size: (int64) (n * scale), with its overflow error."""
    v = n * float(s)
    if not math.isfinite(v) or abs(v) >= 2.0 ** 63:
        raise RuntimeError("value cannot be converted to type int64_t without overflow")
    return int(v)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize a batch of 1-D, 2-D or 3-D signals (``(N, C, *spatial)``), as torch's ``interpolate``.

    Parameters
    ----------
    input : Tensor
        ``(N, C, W)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``, floating point (``uint8`` for
        the nearest modes).
    size : int or tuple of int, optional
        Output spatial size. Exactly one of ``size`` and ``scale_factor`` is given.
    scale_factor : float or tuple of float, optional
        Multiplier of each spatial size; the output size is ``floor(in * scale_factor)``.
        Unless ``recompute_scale_factor=True``, the given factor (not ``out / in``) also maps
        output to input coordinates, as in torch.
    mode : str
        ``'nearest'`` (torch's legacy rule ``src = floor(dst * in / out)``), ``'nearest-exact'``
        (pixel centres), ``'linear'`` (3-D input), ``'bilinear'`` (4-D), ``'bicubic'`` (4-D, Keys'
        kernel with ``A = -0.75``, edge pixels repeated), ``'trilinear'`` (5-D) or ``'area'``
        (adaptive average pooling to the output size).
    align_corners : bool, optional
        For the linear and cubic modes: map the centres of the corner pixels onto each other
        (``True``) or the outer edges (``False``, the default). Must be None for the other modes.
    recompute_scale_factor : bool, optional
        If True, compute the output size from ``scale_factor`` and then interpolate as if that
        size had been given.
    antialias : bool
        Not implemented (``True`` raises NotImplementedError for the modes torch accepts).

    Returns
    -------
    Tensor
        ``(N, C, *size)``, same dtype as ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.tensor([[[1.0, 2.0, 4.0]]])
    >>> F.interpolate(x, scale_factor=2)
    tensor([[[1., 1., 2., 2., 4., 4.]]])
    >>> F.interpolate(x, size=5, mode='linear', align_corners=True)
    tensor([[[1.0000, 1.5000, 2.0000, 3.0000, 4.0000]]])
    >>> F.interpolate(cygrad.ones(1, 1, 2, 2), scale_factor=(1.5, 2), mode='bilinear').shape
    cygrad.Size([1, 1, 3, 4])
    """
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dim = input.dim() - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        scale_factors = None
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got input "
                    f"with spatial dimensions of {list(input.shape[2:])} and output size of {size}. "
                    "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                    "(o1, o2, ...,oK) format.")
            if not all(_is_integer(s) for s in size):
                raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(s) for s in size]}")
            output_size = [int(s) for s in size]
        else:
            if not _is_integer(size):
                raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size of type {type(size)}")
            output_size = [int(size)] * max(dim, 0)
    elif scale_factor is not None:
        output_size = None
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {list(input.shape[2:])} and scale_factor of "
                    f"shape {scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) "
                    "format and scale_factor in (s1, s2, ...,sK) format.")
            scale_factors = [float(s) for s in scale_factor]
        else:
            scale_factors = [float(scale_factor)] * max(dim, 0)
    else:
        raise ValueError("either size or scale_factor should be defined")

    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" and output_size is None:
        recompute_scale_factor = True
    if recompute_scale_factor:
        output_size = [int(input.shape[i + 2] * scale_factors[i]) for i in range(dim)]
        scale_factors = None

    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and input.dim() == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes "
                         "and requires a 4-D tensor as input")

    nd = input.dim() - 2
    if mode in ("nearest", "nearest-exact", "area") and nd in (1, 2, 3) or \
            _RANK_OF_MODE.get(mode) == input.dim():
        if antialias:
            raise NotImplementedError(f"interpolate: antialias=True is not implemented in cygrad "
                                      f"(mode={mode!r}); use antialias=False")
        return _resample(input, mode, output_size, scale_factors, align_corners)
    if mode == "lanczos" and input.dim() == 4:
        if align_corners:
            raise ValueError("Lanczos mode does not support align_corners=True")
        if not antialias:
            raise ValueError("Lanczos mode requires antialias=True")
        raise NotImplementedError("interpolate: mode='lanczos' (antialias=True) is not implemented "
                                  "in cygrad")
    want = _RANK_OF_MODE.get(mode)
    if mode != "bicubic" and want is not None and input.dim() in (3, 4, 5):
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs {want}D input")
    raise NotImplementedError(
        f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for the modes: "
        f"{_ALL_MODES} (got {mode})")


def _resample(input, mode, output_size, scale_factors, align_corners):
    nd = input.dim() - 2
    in_sizes = [int(s) for s in input.shape[2:]]
    if output_size is None:
        output_size = [_output_from_scale(n, s) for n, s in zip(in_sizes, scale_factors)]
    if mode == "area":
        _check_area_sizes(input, in_sizes, output_size)
    else:
        _check_upsample_sizes(input, in_sizes, output_size)
    xd = input._data
    kind = _KIND[mode]
    integer = xd.dtype.kind != "f"
    if integer and not (xd.dtype == np.uint8 and kind in ("nearest", "nearest-exact")):
        raise _dtype_error(_kernel_name(mode, nd), input)
    work = np.float32 if xd.dtype.itemsize < 4 else xd.dtype    # float16 computes in float32
    plan = _plan(kind, tuple(in_sizes), tuple(output_size), bool(align_corners),
                 None if scale_factors is None else tuple(scale_factors), np.dtype(work).str)
    if integer:
        return Tensor._make(plan.gather(xd))
    return _FUNCTIONS[mode, nd].apply(input, plan)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate` (warns).

    Parameters
    ----------
    input, size, scale_factor, mode, align_corners
        As for :func:`interpolate`.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import warnings, cygrad
    >>> import cygrad.nn.functional as F
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     F.upsample(cygrad.tensor([[[1.0, 2.0]]]), scale_factor=2)
    tensor([[[1., 1., 2., 2.]]])
    """
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='nearest')`` (warns).

    Parameters
    ----------
    input, size, scale_factor
        As for :func:`interpolate`.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import warnings, cygrad
    >>> import cygrad.nn.functional as F
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     F.upsample_nearest(cygrad.ones(1, 1, 2, 2), size=3).shape
    cygrad.Size([1, 1, 3, 3])
    """
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` "
                  "instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='bilinear', align_corners=True)``.

    Parameters
    ----------
    input, size, scale_factor
        As for :func:`interpolate` (``input`` is 4-D).

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import warnings, cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.tensor([[[[0.0, 3.0]]]])
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     F.upsample_bilinear(x, size=(1, 4))
    tensor([[[[0., 1., 2., 3.]]]])
    """
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` "
                  "instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ---- pixel shuffle ------------------------------------------------------------------------------

def _shuffle(a, r):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    *lead, c, h, w = a.shape
    oc = c // (r * r)
    nl = len(lead)
    v = a.reshape(*lead, oc, r, r, h, w)
    v = v.transpose(*range(nl), nl, nl + 3, nl + 1, nl + 4, nl + 2)
    return np.ascontiguousarray(v).reshape(*lead, oc, h * r, w * r)


def _unshuffle(a, r):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    *lead, c, h, w = a.shape
    oh, ow = h // r, w // r
    nl = len(lead)
    v = a.reshape(*lead, c, oh, r, ow, r)
    v = v.transpose(*range(nl), nl, nl + 2, nl + 4, nl + 1, nl + 3)
    return np.ascontiguousarray(v).reshape(*lead, c * r * r, oh, ow)


class PixelShuffle(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, r):
        ctx.r = r
        return _shuffle(x._data, r)

    @staticmethod
    def backward(ctx, g):
        return PixelUnshuffle.apply(g, ctx.r), None


class PixelUnshuffle(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, r):
        ctx.r = r
        return _unshuffle(x._data, r)

    @staticmethod
    def backward(ctx, g):
        return PixelShuffle.apply(g, ctx.r), None


def _check_factor(name, arg, value):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}(): argument '{arg}' (position 2) must be int, not {type(value).__name__}")
    return int(value)


def pixel_shuffle(input, upscale_factor):
    """Rearrange ``(*, C r^2, H, W)`` into ``(*, C, H r, W r)`` (sub-pixel convolution output).

    ``out[..., c, h * r + i, w * r + j] = input[..., c * r^2 + i * r + j, h, w]``.

    Parameters
    ----------
    input : Tensor
        At least 3-D; the channel dimension (``-3``) divisible by ``upscale_factor ** 2``.
    upscale_factor : int
        ``r`` > 0.

    Returns
    -------
    Tensor
        ``(*, C, H r, W r)``, contiguous.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.pixel_shuffle(cygrad.arange(4.0).reshape(1, 4, 1, 1), 2)
    tensor([[[[0., 1.],
              [2., 3.]]]])
    """
    r = _check_factor("pixel_shuffle", "upscale_factor", upscale_factor)
    if input.dim() < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input "
                           f"with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    c = input.shape[-3]
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by "
                           f"the square of upscale_factor, but input.size(-3)={c} is not divisible by "
                           f"{r * r}")
    return PixelShuffle.apply(input, r)


def pixel_unshuffle(input, downscale_factor):
    """Rearrange ``(*, C, H r, W r)`` into ``(*, C r^2, H, W)``: the inverse of :func:`pixel_shuffle`.

    Parameters
    ----------
    input : Tensor
        At least 3-D; height and width divisible by ``downscale_factor``.
    downscale_factor : int
        ``r`` > 0.

    Returns
    -------
    Tensor
        ``(*, C r^2, H, W)``, contiguous.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.pixel_unshuffle(cygrad.arange(4.0).reshape(1, 1, 2, 2), 2).flatten()
    tensor([0., 1., 2., 3.])
    """
    r = _check_factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    if input.dim() < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input "
                           f"with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    h, w = input.shape[-2], input.shape[-1]
    if h % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but "
                           f"input.size(-2)={h} is not divisible by {r}")
    if w % r:
        raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but "
                           f"input.size(-1)={w} is not divisible by {r}")
    return PixelUnshuffle.apply(input, r)
