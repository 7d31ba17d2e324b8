"""Deformable convolution (``cygrad.ops.deform_conv2d``, torchvision semantics) over ``_C.deform``.

One differentiable Function, :class:`DeformConv2dFunction`: the forward is a deformable im2col
(bilinear sampling at the offset positions, times the mask) followed by one GEMM per weight
group; the backward computes the input, offset, mask and weight gradients in one pass over the
same sampling table (see ``_C/deform.pyx``). The bias gradient is a sum over the output.

The backward is not itself differentiable (``create_graph=True`` gradients cannot be
differentiated again through it), as in torchvision.
"""
import numbers

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function, once_differentiable
from .._C import deform as _K

__all__ = ["deform_conv2d"]


def _pair(v, name):
    """torchvision's ``_pair``: an int, or a sequence of two ints."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, tuple, list)):
        raise TypeError(f"deform_conv2d(): {name} must be an int or a tuple of two ints, got {v!r}")
    if isinstance(v, numbers.Integral):
        return int(v), int(v)
    if len(v) != 2 or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in v):
        raise ValueError(f"deform_conv2d(): {name} must be an int or a tuple of two ints, got {v!r}")
    return int(v[0]), int(v[1])


def _shape(t):
    return tuple(t.shape)


def _kernel_dtype(*tensors):
    """The NumPy dtype the kernel computes in: float32 or float64 (float16 runs in float32)."""
    dt = tensors[0]._data.dtype
    if dt.kind != "f":
        raise RuntimeError(f"\"deformable_im2col\" not implemented for '{D.scalar_name(tensors[0].dtype)}'")
    return np.dtype(np.float32) if dt.itemsize < 4 else dt


def _padded(x, dt):
    """(N, C, H + 3, W + 2) zero-padded copy of x flattened to (N, C, Sp) (layout of _C.deform)."""
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 3, W + 2), dt)
    xp[:, :, 1:H + 1, 1:W + 1] = x
    return xp.reshape(N, C, (H + 3) * (W + 2))


class DeformConv2dFunction(Function):
    """``y = deform_conv2d(x, offset, w, b, mask)``; ``geom`` is the kernel's geometry tuple
    ``(H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, offset_groups, weight_groups)``."""

    _builtin = True

    @staticmethod
    def forward(ctx, input, offset, weight, bias, mask, geom):
        dt = _kernel_dtype(input)
        N, C = input._data.shape[:2]
        O = weight._data.shape[0]
        Ho, Wo = geom[2], geom[3]
        P = Ho * Wo
        out = np.empty((N, O, P), dt)
        if N > 0 and O > 0:
            xp = _padded(input._data, dt)
            off = np.ascontiguousarray(offset._data, dtype=dt).reshape(N, -1, P)
            msk = (np.empty((N, 0, P), dt) if mask is None else
                   np.ascontiguousarray(mask._data, dtype=dt).reshape(N, -1, P))
            w2 = np.ascontiguousarray(weight._data, dtype=dt).reshape(O, -1)
            b = np.empty(0, dt) if bias is None else np.ascontiguousarray(bias._data, dtype=dt).reshape(O)
            _K.deform_forward(xp, off, msk, w2, b, out, geom)
        ctx.save_for_backward(input, offset, weight, mask)
        ctx.geom = geom
        ctx.bias_shape = None if bias is None else bias._data.shape
        return out.reshape(N, O, Ho, Wo).astype(input._data.dtype, copy=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        input, offset, weight, mask = ctx.saved_tensors
        need_x, need_off, need_w, need_b, need_m = ctx.needs_input_grad[:5]
        geom = ctx.geom
        dt = _kernel_dtype(input)
        x = input._data
        N, C, H, W = x.shape
        O = weight._data.shape[0]
        P = geom[2] * geom[3]
        gout = np.ascontiguousarray(grad._data, dtype=dt).reshape(N, O, P)
        gx = np.empty((N, C, H, W) if need_x else (0, 0, 0, 0), dt)
        goff = np.empty((N, offset._data.shape[1], P) if need_off else (0, 0, 0), dt)
        gm = np.empty((N, mask._data.shape[1], P) if need_m else (0, 0, 0), dt)
        gw = np.empty((O, weight._data[0].size if O else 0) if need_w else (0, 0), dt)
        if N > 0 and O > 0:
            off = np.ascontiguousarray(offset._data, dtype=dt).reshape(N, -1, P)
            msk = (np.empty((N, 0, P), dt) if mask is None else
                   np.ascontiguousarray(mask._data, dtype=dt).reshape(N, -1, P))
            w2 = np.ascontiguousarray(weight._data, dtype=dt).reshape(O, -1)
            _K.deform_backward(_padded(x, dt), off, msk, w2, gout, gx, goff, gm, gw, geom)
        else:                                   # empty batch or no output channels: zeros
            for a in (gx, goff, gm, gw):
                a[...] = 0

        def wrap(a, like):
            return Tensor._make(a.reshape(like._data.shape).astype(like._data.dtype, copy=False))
        return (wrap(gx, input) if need_x else None,
                wrap(goff, offset) if need_off else None,
                wrap(gw, weight) if need_w else None,
                Tensor._make(gout.sum((0, 2)).reshape(ctx.bias_shape).astype(input._data.dtype, copy=False))
                if need_b else None,
                wrap(gm, mask) if need_m else None,
                None)


def _check_tensor(t, name):
    if not isinstance(t, Tensor):
        raise TypeError(f"deform_conv2d(): argument '{name}' must be Tensor, not {type(t).__name__}")


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Deformable 2-D convolution (DCNv1; DCNv2 when ``mask`` is given), as ``torchvision.ops.deform_conv2d``.

    Each kernel tap ``k = i * kw + j`` of each output position ``(y, x)`` samples the input at
    ``(y * stride_h - pad_h + i * dil_h + dy, x * stride_w - pad_w + j * dil_w + dx)`` by bilinear
    interpolation (zeros outside the image), with ``(dy, dx)`` read from ``offset`` and the
    sampled value multiplied by ``mask``; the samples are then combined with ``weight`` as in a
    convolution. The input channels are split into ``offset_groups = offset.shape[1] // (2 * kh
    * kw)`` groups, each with its own offsets and mask, and into ``C_in // weight.shape[1]``
    weight groups as in :func:`cygrad.nn.functional.conv2d`. With zero offsets and no mask it is
    an ordinary convolution.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, H, W)``.
    offset : Tensor
        ``(N, 2 * offset_groups * kh * kw, H_out, W_out)``: for offset group ``g`` and tap ``k``,
        channel ``2 * (g * kh * kw + k)`` holds ``dy`` and the next one ``dx``.
    weight : Tensor
        ``(C_out, C_in // groups, kh, kw)``.
    bias : Tensor, optional
        ``(C_out,)``.
    stride, padding, dilation : int or tuple of two ints
        As in a convolution (padding with zeros).
    mask : Tensor, optional
        ``(N, offset_groups * kh * kw, H_out, W_out)``: modulation of each sampled value.

    Returns
    -------
    Tensor
        ``(N, C_out, H_out, W_out)`` with ``H_out = (H + 2 * pad_h - dil_h * (kh - 1) - 1) //
        stride_h + 1`` (likewise ``W_out``).

    Raises
    ------
    RuntimeError
        If a tensor is not 4-D, the dtypes differ or are not floating point, or the shapes do not
        fit together (offset / mask channels and spatial size, groups, batch size, bias size).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.ops import deform_conv2d
    >>> x = cygrad.rand(4, 3, 10, 10)
    >>> weight = cygrad.rand(5, 3, 3, 3)
    >>> offset = cygrad.rand(4, 2 * 3 * 3, 8, 8)
    >>> mask = cygrad.rand(4, 3 * 3, 8, 8)
    >>> deform_conv2d(x, offset, weight, mask=mask).shape
    cygrad.Size([4, 5, 8, 8])

    Zero offsets give an ordinary convolution:

    >>> y = deform_conv2d(x, cygrad.zeros(4, 18, 8, 8), weight)
    >>> bool((y - cygrad.nn.functional.conv2d(x, weight)).abs().max() < 1e-5)
    True
    """
    geom = _validate(input, offset, weight, bias, stride, padding, dilation, mask)
    return DeformConv2dFunction.apply(input, offset, weight, bias, mask, geom)


def _validate(input, offset, weight, bias, stride, padding, dilation, mask):
    """Check every argument like torchvision; return the kernel geometry tuple."""
    _check_tensor(input, "input")
    _check_tensor(offset, "offset")
    _check_tensor(weight, "weight")
    if bias is not None:
        _check_tensor(bias, "bias")
    if mask is not None:
        _check_tensor(mask, "mask")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    named = [("input", input), ("offset", offset), ("weight", weight)] + \
        ([("mask", mask)] if mask is not None else [])
    for name, t in named:
        if t.dim() != 4:
            raise RuntimeError(f"deform_conv2d: expected a 4-D {name}, got {name} of shape {_shape(t)}")
    _kernel_dtype(input)
    for name, t in named[1:] + ([("bias", bias)] if bias is not None else []):
        if t.dtype != input.dtype:
            raise RuntimeError(f"deform_conv2d: expected scalar type {D.scalar_name(input.dtype)} but found "
                               f"{D.scalar_name(t.dtype)} for {name} (input is {input.dtype}, {name} is {t.dtype})")
    N, C, H, W = _shape(input)
    O, Cw, kh, kw = _shape(weight)
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"deform_conv2d: weight_h: {kh} weight_w: {kw} (weight of shape {_shape(weight)})")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"deform_conv2d: stride_h: {sh} stride_w: {sw} (stride must be positive)")
    if ph < 0 or pw < 0:
        raise RuntimeError(f"deform_conv2d: pad_h: {ph} pad_w: {pw} (padding must be non-negative)")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(f"deform_conv2d: dilation_h: {dh} dilation_w: {dw} (dilation must be positive)")
    K = kh * kw
    oc = offset.shape[1]
    G = oc // (2 * K)
    if G == 0 or oc != 2 * K * G:
        raise RuntimeError(
            f"deform_conv2d: offset.shape[1] is not valid: got: {oc} expected: a positive multiple of "
            f"2 * weight.size[2] * weight.size[3] = {2 * K} (offset of shape {_shape(offset)}, weight of shape "
            f"{_shape(weight)})")
    if Cw <= 0 or C <= 0 or C % Cw or O % (C // Cw):
        raise RuntimeError(
            f"deform_conv2d: the weight groups do not divide: input of shape {_shape(input)} has {C} channels and "
            f"weight of shape {_shape(weight)} has {Cw} input channels per group, so in_channels must be a positive "
            f"multiple of weight.shape[1] and out_channels ({O}) a multiple of the groups")
    WG = C // Cw
    if C % G:
        raise RuntimeError(
            f"deform_conv2d: in_channels ({C}) of input of shape {_shape(input)} must be divisible by the "
            f"offset groups ({G} = offset.shape[1] // (2 * {kh} * {kw}), offset of shape {_shape(offset)})")
    if mask is not None and mask.shape[1] != G * K:
        raise RuntimeError(
            f"deform_conv2d: mask.shape[1] is not valid: got: {mask.shape[1]} expected: {G * K} "
            f"(offset_groups * kh * kw; mask of shape {_shape(mask)}, offset of shape {_shape(offset)})")
    if offset.shape[0] != N:
        raise RuntimeError(f"deform_conv2d: invalid batch size of offset: offset of shape {_shape(offset)} "
                           f"for input of shape {_shape(input)}")
    if mask is not None and mask.shape[0] != N:
        raise RuntimeError(f"deform_conv2d: invalid batch size of mask: mask of shape {_shape(mask)} "
                           f"for input of shape {_shape(input)}")
    Ho = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if Ho <= 0 or Wo <= 0:
        raise RuntimeError(
            f"deform_conv2d: Calculated output size too small - out_h: {Ho} out_w: {Wo} (input of shape "
            f"{_shape(input)}, weight of shape {_shape(weight)}, stride {(sh, sw)}, padding {(ph, pw)}, "
            f"dilation {(dh, dw)})")
    for name, t in [("offset", offset)] + ([("mask", mask)] if mask is not None else []):
        if _shape(t)[2:] != (Ho, Wo):
            raise RuntimeError(
                f"deform_conv2d: {name} output dims: ({t.shape[2]}, {t.shape[3]}) - computed output dims: "
                f"({Ho}, {Wo}) ({name} of shape {_shape(t)}, input of shape {_shape(input)}, weight of shape "
                f"{_shape(weight)})")
    if bias is not None and bias.numel() != O:
        raise RuntimeError(f"deform_conv2d: bias of shape {_shape(bias)} does not match out_channels = {O} "
                           f"(weight of shape {_shape(weight)})")
    if ((H + 3) * (W + 2) >= 2 ** 31 or Ho * Wo >= 2 ** 31 or C * K >= 2 ** 31 or O >= 2 ** 31
            or Ho * sh + kh * dh + ph + H >= 2 ** 31 or Wo * sw + kw * dw + pw + W >= 2 ** 31):
        raise RuntimeError(f"deform_conv2d: sizes too large for the kernel (input of shape {_shape(input)}, weight of "
                           f"shape {_shape(weight)}, stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)})")
    return (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G, WG)
