"""Convolutions (conv1d/2d/3d, transposed, depthwise) and unfold/fold over ``_C.conv``.

Three differentiable Functions carry every convolution, all on one explicit geometry
(:class:`_Geometry`: input and output sizes, kernel, stride, front padding, dilation, groups):

- ``_Conv``       y  = conv(x, w) + b                (the forward kernel)
- ``_ConvT``      x' = conv^T(y, w) + b              (the input-gradient kernel: conv_transpose)
- ``_ConvWeight`` gw = dconv/dw^T (x, gy)           (the weight-gradient kernel)

Their backwards are written with each other (conv is bilinear in input and weight), so with
``create_graph=True`` the gradients are themselves differentiable to any order; the first-order
backward calls the kernels directly. The back padding is implicit in the output size, so the
asymmetric padding of ``padding='same'`` with an even kernel and the ``output_padding`` of a
transposed convolution need no copy of the input. ``groups == in_channels`` (depthwise) runs
direct kernels; everything else runs im2col + GEMM.
"""
import numbers

import numpy as np

from .. import _alloc, _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import conv as _K

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "unfold", "fold"]

_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


# ---------------------------------------------------------------------------------------------
# geometry

class _Geometry:
    """The shape of one convolution: sizes per spatial dimension (``nd`` of them) and groups.

    ``in_size`` is the size of the convolution's input (for a transposed convolution: of its
    output), ``out_size`` that of the convolution's output. ``padding`` is the front padding;
    the back padding follows from the sizes.
    """

    __slots__ = ("nd", "in_size", "out_size", "kernel", "stride", "padding", "dilation", "groups", "kernel_args",
                 "depthwise")

    def __init__(self, in_size, out_size, kernel, stride, padding, dilation, groups, in_channels):
        self.nd = len(kernel)
        self.in_size, self.out_size, self.kernel = tuple(in_size), tuple(out_size), tuple(kernel)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.groups = groups
        fill = 3 - self.nd

        def three(v, f):
            return (f,) * fill + tuple(int(a) for a in v)
        self.kernel_args = (three(in_size, 1) + three(out_size, 1) + three(kernel, 1) + three(stride, 1)
                            + three(padding, 0) + three(dilation, 1))
        self.depthwise = groups == in_channels and groups > 1


def _kernel_dtype(npd):
    """(dtype the kernels compute in, dtype of the result) for arrays of dtype ``npd``."""
    if npd == np.float32 or npd == np.float64:
        return npd, npd
    if npd.kind == "f":              # float16: float32 inside
        return np.dtype(np.float32), npd
    return np.dtype(np.float64), npd  # integers: exact in float64 while sums stay below 2**53


def _prep(a, kd):
    return np.ascontiguousarray(a, dtype=kd)


def _flat(a, *lead):
    """View of contiguous ``a`` as (*lead, rest) (explicit sizes: works for empty arrays too)."""
    return a.reshape(lead + (int(np.prod(a.shape[len(lead):], dtype=np.int64)),))


def _finish(a, npd):
    if a.dtype == npd:
        return a
    if npd.kind in "iu":
        return np.rint(a).astype(npd)
    return a.astype(npd)


def _conv_fwd(x, w, b, geo):
    """conv(x, w) + b on arrays: x (N, C, *in), w (O, Cg, *k), b (O,) or None -> (N, O, *out)."""
    kd, rd = _kernel_dtype(x.dtype)
    N, C = x.shape[:2]
    O = w.shape[0]
    out = _alloc.empty((N, O) + geo.out_size, kd)
    x3 = _flat(_prep(x, kd), N, C)
    w2 = _flat(_prep(w, kd), O)
    b1 = _NO_BIAS[kd] if b is None else _prep(b, kd)
    o3 = _flat(out, N, O)
    if geo.depthwise:
        _K.depthwise_forward(x3, w2, b1, o3, geo.kernel_args)
    else:
        _K.conv_forward(x3, w2, b1, o3, geo.kernel_args, geo.groups)
    return _finish(out, rd)


def _conv_bwd_input(gy, w, b, geo):
    """conv^T(gy, w) + b (bias over the C channels): gy (N, O, *out) -> (N, C, *in)."""
    kd, rd = _kernel_dtype(gy.dtype)
    N, O = gy.shape[:2]
    C = w.shape[1] * geo.groups
    gx = _alloc.empty((N, C) + geo.in_size, kd)
    g3 = _flat(_prep(gy, kd), N, O)
    w2 = _flat(_prep(w, kd), O)
    x3 = _flat(gx, N, C)
    if geo.depthwise:
        _K.depthwise_backward_input(g3, w2, x3, geo.kernel_args)
    else:
        _K.conv_backward_input(g3, w2, x3, geo.kernel_args, geo.groups)
    if b is not None:
        gx += _prep(b, kd).reshape((1, C) + (1,) * geo.nd)
    return _finish(gx, rd)


def _conv_bwd_weight(x, gy, geo):
    """The weight gradient sum_n gy[n] (x) x[n]: x (N, C, *in), gy (N, O, *out) -> (O, Cg, *k)."""
    kd, rd = _kernel_dtype(x.dtype)
    N, C = x.shape[:2]
    O = gy.shape[1]
    gw = np.empty((O, C // geo.groups) + geo.kernel, kd)
    x3 = _flat(_prep(x, kd), N, C)
    g3 = _flat(_prep(gy, kd), N, O)
    w2 = _flat(gw, O)
    if geo.depthwise:
        _K.depthwise_backward_weight(x3, g3, w2, geo.kernel_args)
    else:
        _K.conv_backward_weight(x3, g3, w2, geo.kernel_args, geo.groups)
    return _finish(gw, rd)


def _bias_grad(gy):
    """Sum of gy (N, O, *spatial) over every dimension but 1, accumulated in double."""
    kd, rd = _kernel_dtype(gy.dtype)
    N, O = gy.shape[:2]
    gb = np.empty(O, kd)
    _K.bias_backward(_flat(_prep(gy, kd), N, O), gb)
    return _finish(gb, rd)


def _sum_bias(g):
    """Differentiable bias gradient: sum over the batch and spatial dimensions."""
    return g.sum(dim=(0,) + tuple(range(2, g.dim())))


# ---------------------------------------------------------------------------------------------
# Functions

class _Conv(Function):
    """y = conv(x, w) + b."""

    _builtin = True
    _node_name_override = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, x, w, b, geo):
        ctx.save_for_backward(x, w)
        ctx.geo = geo
        return _conv_fwd(x._data, w._data, None if b is None else b._data, geo)

    @staticmethod
    def backward(ctx, g):
        return _conv_pair_backward(ctx, g, False)


class _ConvT(Function):
    """x = conv^T(y, w) + b: the transposed convolution (the input gradient of ``_Conv``)."""

    _builtin = True
    _node_name_override = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, y, w, b, geo):
        ctx.save_for_backward(y, w)
        ctx.geo = geo
        return _conv_bwd_input(y._data, w._data, None if b is None else b._data, geo)

    @staticmethod
    def backward(ctx, g):
        return _conv_pair_backward(ctx, g, True)


def _conv_pair_backward(ctx, g, transposed):
    """Backward of ``_Conv`` (saved x, w) or, ``transposed``, of ``_ConvT`` (saved y, w).

    The input gradient is the other one of the pair applied to ``g``; the weight gradient is
    ``_ConvWeight`` of the convolution's input and output gradient: (x, g) for ``_Conv``,
    (g, y) for ``_ConvT``.
    """
    a, w = ctx.saved_tensors
    geo = ctx.geo
    need = ctx.needs_input_grad
    conv_in, conv_gout = (g, a) if transposed else (a, g)
    ga = gw = gb = None
    if state.enabled:
        if need[0]:
            ga = (_Conv if transposed else _ConvT).apply(g, w, None, geo)
        if need[1]:
            gw = _ConvWeight.apply(conv_in, conv_gout, geo)
        if need[2]:
            gb = _sum_bias(g)
        return ga, gw, gb, None
    gd = g._data
    if need[0]:
        ga = Tensor._make((_conv_fwd if transposed else _conv_bwd_input)(gd, w._data, None, geo))
    if need[1]:
        gw = Tensor._make(_conv_bwd_weight(conv_in._data, conv_gout._data, geo))
    if need[2]:
        gb = Tensor._make(_bias_grad(gd))
    return ga, gw, gb, None


class _ConvWeight(Function):
    """gw = the weight gradient of ``_Conv`` for input x and output gradient gy."""

    _builtin = True
    _node_name_override = "ConvolutionBackwardBackward0"

    @staticmethod
    def forward(ctx, x, gy, geo):
        ctx.save_for_backward(x, gy)
        ctx.geo = geo
        return _conv_bwd_weight(x._data, gy._data, geo)

    @staticmethod
    def backward(ctx, g):
        x, gy = ctx.saved_tensors
        geo = ctx.geo
        need = ctx.needs_input_grad
        gx = ggy = None
        if state.enabled:
            if need[0]:
                gx = _ConvT.apply(gy, g, None, geo)
            if need[1]:
                ggy = _Conv.apply(x, g, None, geo)
            return gx, ggy, None
        gd = g._data
        if need[0]:
            gx = Tensor._make(_conv_bwd_input(gy._data, gd, None, geo))
        if need[1]:
            ggy = Tensor._make(_conv_fwd(x._data, gd, None, geo))
        return gx, ggy, None


# ---------------------------------------------------------------------------------------------
# argument checking

def _check_tensor(t, name, fn, pos):
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not {type(t).__name__}")


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _int_tuple(v, n, name, fn, exact=False):
    """Expand an int or a sequence of ints to ``n`` ints (torch's rules for conv arguments)."""
    if _is_int(v):
        return (int(v),) * n
    if isinstance(v, Tensor) or not isinstance(v, (tuple, list)) or not all(_is_int(a) for a in v):
        raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, not {type(v).__name__}")
    v = tuple(int(a) for a in v)
    if len(v) == 1 and not exact:
        return v * n
    if len(v) != n:
        if exact:
            raise RuntimeError(f"It is expected {name} equals to {n}, but got size {len(v)}")
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                           f"convolution dimensions, but got {name}={list(v)}")
    return v


def _groups(groups, fn):
    if not _is_int(groups):
        raise TypeError(f"{fn}(): argument 'groups' must be int, not {type(groups).__name__}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    return int(groups)


def _check_dtypes(input, weight, bias, fn):
    xd, wd = input._data.dtype, weight._data.dtype
    if xd.kind == "b" or wd.kind == "b":
        raise NotImplementedError(f"\"slow_conv{fn[-2]}d_cpu\" not implemented for 'Bool'")
    if xd != wd:
        raise RuntimeError(f"Input type ({input._type_name()}) and weight type ({weight._type_name()}) should be "
                           f"the same")
    if bias is not None and bias._data.dtype != xd:
        raise RuntimeError(f"Input type ({D.c_name(input.dtype)}) and bias type ({D.c_name(bias.dtype)}) should be "
                           f"the same")


def _check_rank(input, nd, fn):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fn}, but got input of "
                           f"size: {list(input.shape)}")


def _check_weight(weight, nd, groups, fn):
    ws = list(weight.shape)
    if weight.dim() != nd + 2:
        raise RuntimeError(f"{fn}: expected weight to be {nd + 2}-dimensional (out_channels, in_channels / groups, "
                           f"*kernel_size), but got weight of size {ws}")
    if ws[0] < 1:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least 1 at dimension 0, but got weight "
                           f"of size {ws} instead")
    if ws[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{ws}] instead")


def _check_positive(stride, dilation, padding):
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("non-positive dilation is not supported")
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")


def _check_bias(bias, n, weight, transposed):
    if bias is None:
        return
    if bias.dim() != 1 or bias.shape[0] != n:
        pre = "Given transposed=1, weight" if transposed else "Given weight"
        raise RuntimeError(f"{pre} of size {list(weight.shape)}, expected bias to be 1-dimensional with {n} elements, "
                           f"but got bias of size {list(bias.shape)} instead")


def _same_padding(kernel, dilation):
    """(front, back) padding per dimension for padding='same' (the extra element goes at the back)."""
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)


def _conv_geometry(in_size, kernel, stride, padding, dilation, groups, in_channels):
    """Geometry of a convolution with the given (front, back) paddings; checks the kernel fits."""
    front, back = padding
    padded = [n + a + b for n, a, b in zip(in_size, front, back)]
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(p < e for p, e in zip(padded, extent)):
        raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel size: "
                           f"({' x '.join(map(str, extent))}). Kernel size can't be greater than actual input size")
    out = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))
    return _Geometry(in_size, out, kernel, stride, front, dilation, groups, in_channels)


# ---------------------------------------------------------------------------------------------
# public functions

def _convnd(nd, fn, input, weight, bias, stride, padding, dilation, groups):
    _check_tensor(input, "input", fn, 1)
    _check_tensor(weight, "weight", fn, 2)
    if bias is not None:
        _check_tensor(bias, "bias", fn, 3)
    groups = _groups(groups, fn)
    _check_rank(input, nd, fn)
    _check_weight(weight, nd, groups, fn)
    _check_dtypes(input, weight, bias, fn)
    stride = _int_tuple(stride, nd, "stride", fn)
    dilation = _int_tuple(dilation, nd, "dilation", fn)
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0,) * nd, (0,) * nd)
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = _same_padding(kernel, dilation)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        _check_positive(stride, dilation, ())
    else:
        padding = _int_tuple(padding, nd, "padding", fn)
        _check_positive(stride, dilation, padding)
        pads = (padding, padding)
    unbatched = input.dim() == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    C = x.shape[1]
    if C != weight.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                           f"{list(x.shape)} to have {weight.shape[1] * groups} channels, but got {C} channels "
                           f"instead")
    _check_bias(bias, weight.shape[0], weight, False)
    geo = _conv_geometry(tuple(x.shape[2:]), kernel, stride, pads, dilation, groups, C)
    y = _Conv.apply(x, weight, bias, geo)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) over an input of shape (N, C_in, L) or (C_in, L).

    Parameters
    ----------
    input : Tensor
        (N, C_in, L) or unbatched (C_in, L).
    weight : Tensor
        (C_out, C_in / groups, kL).
    bias : Tensor, optional
        (C_out,).
    stride, dilation : int or tuple of one int
        Step between output positions; spacing between kernel taps.
    padding : int, tuple of one int, 'valid' or 'same'
        Zeros added on both sides; ``'same'`` keeps the length (stride 1 only; an odd total
        padding puts the extra zero at the end), ``'valid'`` is no padding.
    groups : int
        Split the channels into ``groups`` independent convolutions. ``groups == C_in`` is a
        depthwise convolution (a direct kernel, e.g. a causal conv1d with ``padding=k-1``).

    Returns
    -------
    Tensor
        (N, C_out, L_out) with ``L_out = (L + 2 padding - dilation (kL - 1) - 1) // stride + 1``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.arange(5.0).reshape(1, 1, 5)
    >>> F.conv1d(x, cygrad.ones(1, 1, 3))
    tensor([[[3., 6., 9.]]])
    >>> F.conv1d(x, cygrad.ones(1, 1, 2), padding="same")
    tensor([[[1., 3., 5., 7., 4.]]])
    """
    return _convnd(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) over an input of shape (N, C_in, H, W) or (C_in, H, W).

    Parameters
    ----------
    input : Tensor
        (N, C_in, H, W) or unbatched (C_in, H, W).
    weight : Tensor
        (C_out, C_in / groups, kH, kW).
    bias : Tensor, optional
        (C_out,).
    stride, dilation : int or tuple of two ints
        Step between output positions; spacing between kernel taps.
    padding : int, tuple of two ints, 'valid' or 'same'
        Zeros added on both sides of each spatial dimension; ``'same'`` keeps the size (stride 1
        only), ``'valid'`` is no padding.
    groups : int
        Split the channels into ``groups`` independent convolutions (``groups == C_in``:
        depthwise).

    Returns
    -------
    Tensor
        (N, C_out, H_out, W_out), ``H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.ones(1, 2, 4, 4)
    >>> F.conv2d(x, cygrad.ones(3, 2, 3, 3), padding=1).shape
    cygrad.Size([1, 3, 4, 4])
    >>> F.conv2d(x, cygrad.ones(1, 2, 3, 3))
    tensor([[[[18., 18.],
              [18., 18.]]]])
    """
    return _convnd(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution (cross-correlation) over an input of shape (N, C_in, D, H, W) or (C_in, D, H, W).

    Parameters
    ----------
    input : Tensor
        (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
    weight : Tensor
        (C_out, C_in / groups, kD, kH, kW).
    bias : Tensor, optional
        (C_out,).
    stride, dilation : int or tuple of three ints
    padding : int, tuple of three ints, 'valid' or 'same'
    groups : int

    Returns
    -------
    Tensor
        (N, C_out, D_out, H_out, W_out).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.conv3d(cygrad.ones(2, 4, 5, 6, 7), cygrad.ones(8, 4, 3, 3, 3), stride=2).shape
    cygrad.Size([2, 8, 2, 2, 3])
    """
    return _convnd(3, "conv3d", input, weight, bias, stride, padding, dilation, groups)


_DIM_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def _conv_transposend(nd, fn, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensor(input, "input", fn, 1)
    _check_tensor(weight, "weight", fn, 2)
    if bias is not None:
        _check_tensor(bias, "bias", fn, 3)
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    groups = _groups(groups, fn)
    _check_rank(input, nd, fn)
    _check_weight(weight, nd, groups, fn)
    _check_dtypes(input, weight, bias, fn)
    stride = _int_tuple(stride, nd, "stride", fn)
    padding = _int_tuple(padding, nd, "padding", fn)
    output_padding = _int_tuple(output_padding, nd, "output_padding", fn)
    dilation = _int_tuple(dilation, nd, "dilation", fn)
    _check_positive(stride, dilation, padding)
    if any(p < 0 for p in output_padding):
        raise RuntimeError("negative output_padding is not supported")
    if any(op >= s and op >= d for op, s, d in zip(output_padding, stride, dilation)):
        names = ("depth", "height", "width")[3 - max(nd, 2):]
        pad = lambda v: (0,) * (len(names) - nd) + tuple(v)  # noqa: E731  (1-d is reported as 2-d)
        parts = [f"{what}_{n}: {v}" for what, vals in (("output_padding", pad(output_padding)),
                                                          ("stride", (1,) * (len(names) - nd) + stride),
                                                          ("dilation", (1,) * (len(names) - nd) + dilation))
                 for n, v in zip(names, vals)]
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got " + " ".join(parts))
    unbatched = input.dim() == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    C = x.shape[1]
    if C != weight.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} "
                           f"to have {weight.shape[0]} channels, but got {C} channels instead")
    c_out = weight.shape[1] * groups
    _check_bias(bias, c_out, weight, True)
    kernel = tuple(weight.shape[2:])
    in_size = tuple(x.shape[2:])
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                for n, s, p, d, k, op in zip(in_size, stride, padding, dilation, kernel, output_padding))
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, in_size))}). Calculated output size "
                           f"per channel: ({' x '.join(map(str, out))}). Output size is too small")
    geo = _Geometry(out, in_size, kernel, stride, padding, dilation, groups, c_out)
    y = _ConvT.apply(x, weight, bias, geo)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution (the gradient of conv1d with respect to its input).

    Parameters
    ----------
    input : Tensor
        (N, C_in, L) or unbatched (C_in, L).
    weight : Tensor
        (C_in, C_out / groups, kL).
    bias : Tensor, optional
        (C_out,).
    stride, padding, dilation : int or tuple of one int
        As in the convolution this transposes (``padding`` removes ``dilation (kL - 1) - padding``
        zero-padding from both sides of the output).
    output_padding : int or tuple of one int
        Extra size added at the end of the output; must be smaller than stride or dilation.
    groups : int

    Returns
    -------
    Tensor
        (N, C_out, L_out), ``L_out = (L - 1) stride - 2 padding + dilation (kL - 1) + output_padding + 1``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.conv_transpose1d(cygrad.ones(1, 1, 3), cygrad.ones(1, 1, 2), stride=2)
    tensor([[[1., 1., 1., 1., 1., 1.]]])
    """
    return _conv_transposend(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution (the gradient of conv2d with respect to its input).

    Parameters
    ----------
    input : Tensor
        (N, C_in, H, W) or unbatched (C_in, H, W).
    weight : Tensor
        (C_in, C_out / groups, kH, kW).
    bias : Tensor, optional
        (C_out,).
    stride, padding, dilation, output_padding : int or tuple of two ints
    groups : int

    Returns
    -------
    Tensor
        (N, C_out, H_out, W_out), ``H_out = (H - 1) stride - 2 padding + dilation (kH - 1) + output_padding + 1``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.conv_transpose2d(cygrad.ones(1, 4, 5, 5), cygrad.ones(4, 2, 3, 3), stride=2, padding=1,
    ...                    output_padding=1).shape
    cygrad.Size([1, 2, 10, 10])
    """
    return _conv_transposend(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution (the gradient of conv3d with respect to its input).

    Parameters
    ----------
    input : Tensor
        (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
    weight : Tensor
        (C_in, C_out / groups, kD, kH, kW).
    bias : Tensor, optional
        (C_out,).
    stride, padding, dilation, output_padding : int or tuple of three ints
    groups : int

    Returns
    -------
    Tensor
        (N, C_out, D_out, H_out, W_out).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.conv_transpose3d(cygrad.ones(1, 4, 2, 3, 3), cygrad.ones(4, 6, 3, 3, 3), stride=2).shape
    cygrad.Size([1, 6, 5, 7, 7])
    """
    return _conv_transposend(3, "conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


# ---------------------------------------------------------------------------------------------
# unfold / fold

class _Unfold(Function):
    """im2col: (N, C, H, W) -> (N, C * kH * kW, L)."""

    _builtin = True
    _node_name_override = "Im2ColBackward0"

    @staticmethod
    def forward(ctx, x, geo):
        ctx.geo = geo
        return _im2col(x._data, geo)

    @staticmethod
    def backward(ctx, g):
        if state.enabled:
            return _Fold.apply(g, ctx.geo), None
        return Tensor._make(_col2im(g._data, ctx.geo)), None


class _Fold(Function):
    """col2im: (N, C * kH * kW, L) -> (N, C, H, W), summing overlapping values."""

    _builtin = True
    _node_name_override = "Col2ImBackward0"

    @staticmethod
    def forward(ctx, col, geo):
        ctx.geo = geo
        return _col2im(col._data, geo)

    @staticmethod
    def backward(ctx, g):
        if state.enabled:
            return _Unfold.apply(g, ctx.geo), None
        return Tensor._make(_im2col(g._data, ctx.geo)), None


def _im2col(x, geo):
    kd, rd = _kernel_dtype(x.dtype)
    N, C = x.shape[:2]
    kvol = geo.kernel[0] * geo.kernel[1]
    out = np.empty((N, C * kvol, geo.out_size[0] * geo.out_size[1]), kd)
    _K.im2col(_flat(_prep(x, kd), N, C), out, geo.kernel_args)
    return _finish(out, rd)


def _col2im(col, geo):
    kd, rd = _kernel_dtype(col.dtype)
    N, CK = col.shape[:2]
    C = CK // (geo.kernel[0] * geo.kernel[1])
    out = np.empty((N, C) + geo.in_size, kd)
    _K.col2im(_prep(col, kd), _flat(out, N, C), geo.kernel_args)
    return _finish(out, rd)


def _pair_args(fn, kernel_size, dilation, padding, stride):
    k = _int_tuple(kernel_size, 2, "kernel_size", fn, exact=True)
    d = _int_tuple(dilation, 2, "dilation", fn, exact=True)
    p = _int_tuple(padding, 2, "padding", fn, exact=True)
    s = _int_tuple(stride, 2, "stride", fn, exact=True)
    if k[0] <= 0 or k[1] <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {k[0]} "
                           f"kernel_width: {k[1]}")
    if s[0] <= 0 or s[1] <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got stride_height: {s[0]} stride_width: {s[1]}")
    if d[0] <= 0 or d[1] <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation_height: {d[0]} "
                           f"dilation_width: {d[1]}")
    if p[0] < 0 or p[1] < 0:
        raise RuntimeError(f"padding should be non-negative, but got pad_height: {p[0]} pad_width: {p[1]}")
    return k, d, p, s


def _blocks(size, k, d, p, s):
    """Sliding-block count per dimension (C integer division, as torch reports it)."""
    res = []
    for n, kk, dd, pp, ss in zip(size, k, d, p, s):
        a = n + 2 * pp - (dd * (kk - 1) + 1)
        res.append(int(a / ss) + 1 if a < 0 else a // ss + 1)
    return tuple(res)


def _float_only(t, kernel):
    if t._data.dtype.kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{D.scalar_name(t.dtype)}'")


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding local blocks (im2col): (N, C, H, W) -> (N, C * kH * kW, L).

    Parameters
    ----------
    input : Tensor
        (N, C, H, W) or unbatched (C, H, W).
    kernel_size, dilation, padding, stride : int or tuple of two ints
        The blocks' size, tap spacing, zero padding of the input and step.

    Returns
    -------
    Tensor
        (N, C * kH * kW, L), L the number of blocks; column ``l`` holds block ``l`` (row-major
        over the block grid), channel-major then kernel row then kernel column.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.arange(9.0).reshape(1, 1, 3, 3)
    >>> F.unfold(x, 2)
    tensor([[[0., 1., 3., 4.],
             [1., 2., 4., 5.],
             [3., 4., 6., 7.],
             [4., 5., 7., 8.]]])
    """
    _check_tensor(input, "input", "unfold", 1)
    if input.dim() < 3:
        nd = max(input.dim(), 1)
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], but got "
                         f"{max(input.dim(), 1)})")
    shape = list(input.shape)
    if input.dim() > 4 or any(n == 0 for n in shape[-3:]):
        raise RuntimeError(f"Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
                           f"dimensions for input, but got: {shape}")
    k, d, p, s = _pair_args("unfold", kernel_size, dilation, padding, stride)
    _float_only(input, "im2col_out_cpu")
    size = tuple(shape[-2:])
    blocks = _blocks(size, k, d, p, s)
    if blocks[0] < 1 or blocks[1] < 1:
        raise RuntimeError(f"Given input with spatial size {size}, kernel_size={k}, dilation={d}, padding={p}, "
                           f"calculated shape of the array of sliding blocks as {blocks}, but its components must "
                           f"be at least one.")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    geo = _Geometry(size, blocks, k, s, p, d, 1, 1)
    y = _Unfold.apply(x, geo)
    return y.squeeze(0) if unbatched else y


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding local blocks into a tensor (col2im), summing overlapping values.

    The adjoint of :func:`unfold`: (N, C * kH * kW, L) -> (N, C, H, W) with ``(H, W) = output_size``.

    Parameters
    ----------
    input : Tensor
        (N, C * kH * kW, L) or unbatched (C * kH * kW, L).
    output_size : int or tuple of two ints
        The spatial size (H, W) of the result.
    kernel_size, dilation, padding, stride : int or tuple of two ints
        As in :func:`unfold`; L must equal the number of blocks they give for ``output_size``.

    Returns
    -------
    Tensor
        (N, C, H, W).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.fold(cygrad.ones(1, 4, 4), output_size=3, kernel_size=2)
    tensor([[[[1., 2., 1.],
              [2., 4., 2.],
              [1., 2., 1.]]]])
    """
    _check_tensor(input, "input", "fold", 1)
    shape = list(input.shape)
    if input.dim() not in (2, 3) or any(n == 0 for n in shape[-2:]):
        raise RuntimeError(f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {shape}")
    size = _int_tuple(output_size, 2, "output_size", "fold", exact=True)
    k, d, p, s = _pair_args("fold", kernel_size, dilation, padding, stride)
    _float_only(input, "col2im_out_cpu")
    kvol = k[0] * k[1]
    if shape[-2] % kvol:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={shape[-2]} and kernel_size={k}.")
    blocks = _blocks(size, k, d, p, s)
    if blocks[0] * blocks[1] != shape[-1]:
        raise RuntimeError(f"Given output_size={size}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
                           f"expected size of input's dimension 2 to match the calculated number of sliding blocks "
                           f"{blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, but got input.size(2)="
                           f"{shape[-1]}.")
    if blocks[0] < 1 or blocks[1] < 1:
        raise RuntimeError(f"Given output_size={size}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
                           f"calculated shape of the array of sliding blocks as {blocks}, which is too small "
                           f"(non-positive)")
    unbatched = input.dim() == 2
    x = input.unsqueeze(0) if unbatched else input
    geo = _Geometry(size, blocks, k, s, p, d, 1, 1)
    y = _Fold.apply(x, geo)
    return y.squeeze(0) if unbatched else y
