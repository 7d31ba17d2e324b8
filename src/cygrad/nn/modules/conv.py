"""Convolution layers: Conv1d/2d/3d, ConvTranspose1d/2d/3d, Unfold, Fold."""
import math

import numpy as np

from ..._tensor import Tensor, check_device
from ... import _dtype as D
from ..parameter import Parameter
from .. import init
from ...ops import conv as _F
from ...ops.shape import pad as _pad
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Unfold", "Fold"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v, n):
    if isinstance(v, (tuple, list)):
        return tuple(v)
    return (v,) * n


def _empty(shape, dtype):
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    return Tensor._make(np.zeros(shape, dt.np))


class _ConvNd(Module):
    """Shared constructor, initialisation and repr of the convolution layers."""

    _nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed,
                 output_padding, groups, bias, padding_mode, device=None, dtype=None):
        super().__init__()
        check_device(device)
        n = self._nd
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in _ntuple(stride, n)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {{'zeros', 'reflect', 'replicate', 'circular'}}, but got "
                             f"padding_mode={padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n)
        self.dilation = _ntuple(dilation, n)
        self.transposed = transposed
        self.output_padding = _ntuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's argument for the non-zero padding modes: (last dim left, right, previous dim ...)
        if isinstance(self.padding, str):
            pads = []
            if padding == "same":
                for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
            else:
                pads = [0, 0] * n
            self._reversed_padding_repeated_twice = pads
        else:
            self._reversed_padding_repeated_twice = tuple(p for p in reversed(self.padding) for _ in range(2))
        if transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(_empty(shape, dtype))
        if bias:
            self.bias = Parameter(_empty((out_channels,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-draw the parameters with torch's default initialisation.

        ``kaiming_uniform_(weight, a=sqrt(5))`` and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        """
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    _fn = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        n = self._nd
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, (0,) * n,
                         groups, bias, padding_mode, device, dtype)

    def _conv_forward(self, input, weight, bias):
        fn = type(self)._fn
        if self.padding_mode != "zeros":
            padded = _pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return fn(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return fn(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_Conv):
    """1-D convolution layer over (N, C_in, L) or (C_in, L) input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple
    stride, dilation : int or tuple, default 1
    padding : int, tuple, 'valid' or 'same', default 0
    groups : int, default 1
        ``weight`` is (out_channels, in_channels / groups, kL).
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        The non-zero modes pad the input with ``F.pad`` before a convolution without padding.
    device, dtype
        ``device`` must be None or 'cpu'; ``dtype`` defaults to the default dtype.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Conv1d(16, 33, 3, stride=2)
    >>> m
    Conv1d(16, 33, kernel_size=(3,), stride=(2,))
    >>> m(cygrad.randn(20, 16, 50)).shape
    cygrad.Size([20, 33, 24])
    """

    _nd = 1
    _fn = staticmethod(_F.conv1d)


class Conv2d(_Conv):
    """2-D convolution layer over (N, C_in, H, W) or (C_in, H, W) input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of two ints
    stride, dilation : int or tuple, default 1
    padding : int, tuple, 'valid' or 'same', default 0
    groups : int, default 1
        ``weight`` is (out_channels, in_channels / groups, kH, kW).
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    device, dtype

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1))
    >>> m
    Conv2d(16, 33, kernel_size=(3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1))
    >>> m(cygrad.randn(2, 16, 50, 100)).shape
    cygrad.Size([2, 33, 26, 100])
    """

    _nd = 2
    _fn = staticmethod(_F.conv2d)


class Conv3d(_Conv):
    """3-D convolution layer over (N, C_in, D, H, W) or (C_in, D, H, W) input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of three ints
    stride, dilation : int or tuple, default 1
    padding : int, tuple, 'valid' or 'same', default 0
    groups : int, default 1
        ``weight`` is (out_channels, in_channels / groups, kD, kH, kW).
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    device, dtype

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Conv3d(4, 8, 3, stride=2, padding=1)
    >>> m(cygrad.randn(2, 4, 8, 8, 8)).shape
    cygrad.Size([2, 8, 4, 4, 4])
    """

    _nd = 3
    _fn = staticmethod(_F.conv3d)


class _ConvTransposeNd(_ConvNd):
    _fn = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"padding={padding!r} is not supported for {type(self).__name__}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding,
                         groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size, stride, padding, kernel_size, num_spatial_dims, dilation=None):
        """The output_padding that gives ``output_size`` (or ``self.output_padding`` if None)."""
        if output_size is None:
            return self.output_padding
        has_batch_dim = input.dim() == num_spatial_dims + 2
        num_non_spatial = 2 if has_batch_dim else 1
        output_size = list(output_size)
        if len(output_size) == num_non_spatial + num_spatial_dims:
            output_size = output_size[num_non_spatial:]
        if len(output_size) != num_spatial_dims:
            raise ValueError(f"ConvTranspose{num_spatial_dims}D: for {input.dim()}D input, output_size must have "
                             f"{num_spatial_dims} or {num_non_spatial + num_spatial_dims} elements (got "
                             f"{len(output_size)})")
        spatial = input.shape[input.dim() - num_spatial_dims:]
        dilation = self.dilation if dilation is None else dilation
        min_sizes, max_sizes = [], []
        for d in range(num_spatial_dims):
            lo = ((spatial[d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (kernel_size[d] - 1) + 1)
            min_sizes.append(lo)
            max_sizes.append(lo + stride[d] - 1)
        for size, lo, hi in zip(output_size, min_sizes, max_sizes):
            if size < lo or size > hi:
                raise ValueError(f"requested an output size of {output_size}, but valid sizes range from {min_sizes} "
                                 f"to {max_sizes} (for an input of {spatial})")
        return tuple(int(size) - lo for size, lo in zip(output_size, min_sizes))

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              self._nd, self.dilation)
        return type(self)._fn(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                              self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer (the gradient of Conv1d with respect to its input).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple
    stride, padding, dilation : int or tuple
    output_padding : int or tuple, default 0
        Extra size at the end of the output (smaller than stride or dilation).
    groups : int, default 1
        ``weight`` is (in_channels, out_channels / groups, kL).
    bias : bool, default True
    padding_mode : 'zeros' (the only mode)
    device, dtype

    ``forward(input, output_size=None)``: ``output_size`` picks the output_padding that gives
    that size.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.ConvTranspose1d(16, 33, 3, stride=2)
    >>> m(cygrad.randn(20, 16, 50)).shape
    cygrad.Size([20, 33, 101])
    """

    _nd = 1
    _fn = staticmethod(_F.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer (the gradient of Conv2d with respect to its input).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of two ints
    stride, padding, dilation : int or tuple
    output_padding : int or tuple, default 0
    groups : int, default 1
        ``weight`` is (in_channels, out_channels / groups, kH, kW).
    bias : bool, default True
    padding_mode : 'zeros' (the only mode)
    device, dtype

    Examples
    --------
    >>> import cygrad
    >>> down = cygrad.nn.Conv2d(16, 16, 3, stride=2, padding=1)
    >>> up = cygrad.nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1)
    >>> x = cygrad.randn(1, 16, 12, 12)
    >>> h = down(x)
    >>> h.shape
    cygrad.Size([1, 16, 6, 6])
    >>> up(h, output_size=x.size()).shape
    cygrad.Size([1, 16, 12, 12])
    """

    _nd = 2
    _fn = staticmethod(_F.conv_transpose2d)


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution layer (the gradient of Conv3d with respect to its input).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of three ints
    stride, padding, dilation : int or tuple
    output_padding : int or tuple, default 0
    groups : int, default 1
        ``weight`` is (in_channels, out_channels / groups, kD, kH, kW).
    bias : bool, default True
    padding_mode : 'zeros' (the only mode)
    device, dtype

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.ConvTranspose3d(4, 2, 3, stride=2)
    >>> m(cygrad.randn(1, 4, 3, 4, 5)).shape
    cygrad.Size([1, 2, 7, 9, 11])
    """

    _nd = 3
    _fn = staticmethod(_F.conv_transpose3d)


class Unfold(Module):
    """Extract sliding local blocks: (N, C, H, W) -> (N, C * prod(kernel_size), L); see ``F.unfold``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Unfold(kernel_size=(2, 3))
    >>> m(cygrad.randn(2, 5, 3, 4)).shape
    cygrad.Size([2, 30, 4])
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input):
        return _F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """Combine sliding local blocks into a tensor, summing overlaps; see ``F.fold``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Fold(output_size=(4, 5), kernel_size=(2, 2))
    >>> m(cygrad.randn(1, 3 * 2 * 2, 12)).shape
    cygrad.Size([1, 3, 4, 5])
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size = output_size
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input):
        return _F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
