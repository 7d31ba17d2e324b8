"""DeformConv2d: deformable convolution layer (offsets, and optionally a mask, supplied by the caller)."""
import math

import numpy as np

from ..._tensor import Tensor
from ... import _dtype as D
from ..parameter import Parameter
from .. import init
from ...ops.deform import deform_conv2d as _deform_conv2d
from .module import Module

__all__ = ["DeformConv2d"]


def _pair(v):
    if isinstance(v, (tuple, list)):
        return tuple(v)
    return (v, v)


class DeformConv2d(Module):
    """Deformable 2-D convolution layer, as ``torchvision.ops.DeformConv2d``.

    Holds ``weight`` ``(out_channels, in_channels // groups, kh, kw)`` and ``bias``
    ``(out_channels,)``; the sampling offsets (and the optional DCNv2 mask) are inputs of
    :meth:`forward`, usually predicted from the input by an ordinary convolution. See
    :func:`cygrad.ops.deform_conv2d` for the semantics. Initialised like torchvision:
    ``kaiming_uniform_(weight, a=sqrt(5))``, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    kernel_size : int or tuple of two ints
    stride, padding, dilation : int or tuple of two ints, optional
        As in :class:`cygrad.nn.Conv2d` (defaults 1, 0, 1).
    groups : int, optional
        Weight groups: ``in_channels`` and ``out_channels`` must be divisible by it (default 1).
    bias : bool, optional
        Add a learnable bias (default True).

    Raises
    ------
    ValueError
        If ``in_channels`` or ``out_channels`` is not divisible by ``groups``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad import nn
    >>> offset_net = nn.Conv2d(3, 2 * 3 * 3, 3, padding=1)   # predicts (dy, dx) per tap
    >>> layer = nn.DeformConv2d(3, 8, 3, padding=1)
    >>> layer
    DeformConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> x = cygrad.randn(2, 3, 10, 10)
    >>> layer(x, offset_net(x)).shape
    cygrad.Size([2, 8, 10, 10])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        dt = D.get_default_dtype().np
        self.weight = Parameter(Tensor._make(np.zeros(
            (out_channels, in_channels // groups) + self.kernel_size, dt)))
        if bias:
            self.bias = Parameter(Tensor._make(np.zeros(out_channels, dt)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-draw the weights with torchvision's initialisation."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input, offset, mask=None):
        """Deformable convolution of ``input`` (N, C_in, H, W) with ``offset``
        (N, 2 * offset_groups * kh * kw, H_out, W_out) and the optional ``mask``
        (N, offset_groups * kh * kw, H_out, W_out)."""
        return _deform_conv2d(input, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                              dilation=self.dilation, mask=mask)

    def __repr__(self):
        s = (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
             f"kernel_size={self.kernel_size}, stride={self.stride}")
        s += f", padding={self.padding}" if self.padding != (0, 0) else ""
        s += f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        s += f", groups={self.groups}" if self.groups != 1 else ""
        s += ", bias=False" if self.bias is None else ""
        return s + ")"
