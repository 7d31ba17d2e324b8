"""Pooling layers: MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool, MaxUnpool, LPPool (1d/2d/3d).

Thin modules over ``cygrad.nn.functional``; constructor arguments, stored attributes and reprs
are torch's.
"""
from collections.abc import Iterable

from ...ops import pool as P
from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "LPPool1d", "LPPool2d", "LPPool3d"]


def _ntuple(x, n):
    if isinstance(x, Iterable):
        return tuple(x)
    return (x,) * n


class _MaxPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                              ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-d max pooling over (N, C, L) or (C, L); see :func:`cygrad.nn.functional.max_pool1d`.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding, dilation : int
    return_indices : bool
        Return ``(output, indices)`` (for :class:`MaxUnpool1d`).
    ceil_mode : bool

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.MaxPool1d(3, stride=2)
    >>> m
    MaxPool1d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> m(cygrad.randn(20, 16, 50)).shape
    cygrad.Size([20, 16, 24])
    """

    _fn = staticmethod(P.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """2-d max pooling over (N, C, H, W) or (C, H, W); see :func:`cygrad.nn.functional.max_pool2d`.

    Parameters
    ----------
    kernel_size : int or tuple of two ints
    stride : int or tuple, optional
        Defaults to ``kernel_size``.
    padding, dilation : int or tuple of two ints
    return_indices : bool
    ceil_mode : bool

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.MaxPool2d(3, stride=2, padding=1)
    >>> m
    MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
    >>> m(cygrad.randn(2, 8, 56, 56)).shape
    cygrad.Size([2, 8, 28, 28])
    """

    _fn = staticmethod(P.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """3-d max pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`cygrad.nn.functional.max_pool3d`.

    Parameters
    ----------
    kernel_size : int or tuple of three ints
    stride : int or tuple, optional
    padding, dilation : int or tuple of three ints
    return_indices : bool
    ceil_mode : bool

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.MaxPool3d(2)(cygrad.randn(1, 2, 4, 6, 8)).shape
    cygrad.Size([1, 2, 2, 3, 4])
    """

    _fn = staticmethod(P.max_pool3d)


class _AvgPoolNd(Module):
    """Shared constructor, forward and repr of AvgPool2d / AvgPool3d (AvgPool1d has no divisor_override)."""

    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-d average pooling over (N, C, L) or (C, L); see :func:`cygrad.nn.functional.avg_pool1d`.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
    ceil_mode : bool
    count_include_pad : bool

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.AvgPool1d(3, stride=2)
    >>> m
    AvgPool1d(kernel_size=(3,), stride=(2,), padding=(0,))
    >>> m(cygrad.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]]))
    tensor([[[2., 4., 6.]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        Module.__init__(self)  # not _AvgPoolNd's: torch's AvgPool1d has tuples and no divisor_override
        self.kernel_size = _ntuple(kernel_size, 1)
        self.stride = _ntuple(stride if stride is not None else kernel_size, 1)
        self.padding = _ntuple(padding, 1)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return P.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-d average pooling over (N, C, H, W) or (C, H, W); see :func:`cygrad.nn.functional.avg_pool2d`.

    Parameters
    ----------
    kernel_size : int or tuple of two ints
    stride : int or tuple, optional
        Defaults to ``kernel_size``.
    padding : int or tuple of two ints
    ceil_mode : bool
    count_include_pad : bool
    divisor_override : int, optional

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.AvgPool2d(2)
    >>> m
    AvgPool2d(kernel_size=2, stride=2, padding=0)
    >>> m(cygrad.ones(1, 1, 4, 4))
    tensor([[[[1., 1.],
              [1., 1.]]]])
    """

    _fn = staticmethod(P.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """3-d average pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`cygrad.nn.functional.avg_pool3d`.

    Parameters
    ----------
    kernel_size : int or tuple of three ints
    stride : int or tuple, optional
    padding : int or tuple of three ints
    ceil_mode : bool
    count_include_pad : bool
    divisor_override : int, optional

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.AvgPool3d(2, stride=1)
    AvgPool3d(kernel_size=2, stride=1, padding=0)
    """

    _fn = staticmethod(P.avg_pool3d)


class _AdaptiveAvgPoolNd(Module):
    _fn = None

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return type(self)._fn(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-d adaptive average pooling to ``output_size``; see :func:`cygrad.nn.functional.adaptive_avg_pool1d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.AdaptiveAvgPool1d(5)(cygrad.randn(1, 64, 8)).shape
    cygrad.Size([1, 64, 5])
    """

    _fn = staticmethod(P.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-d adaptive average pooling to ``output_size`` (entries may be None = keep the input size).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.AdaptiveAvgPool2d((None, 7))
    >>> m
    AdaptiveAvgPool2d(output_size=(None, 7))
    >>> m(cygrad.randn(1, 64, 10, 9)).shape
    cygrad.Size([1, 64, 10, 7])
    """

    _fn = staticmethod(P.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-d adaptive average pooling to ``output_size``; see :func:`cygrad.nn.functional.adaptive_avg_pool3d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.AdaptiveAvgPool3d((5, 7, 9))(cygrad.randn(1, 4, 8, 9, 10)).shape
    cygrad.Size([1, 4, 5, 7, 9])
    """

    _fn = staticmethod(P.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(Module):
    _fn = None

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input):
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """1-d adaptive max pooling to ``output_size``; see :func:`cygrad.nn.functional.adaptive_max_pool1d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.AdaptiveMaxPool1d(5)(cygrad.randn(1, 64, 8)).shape
    cygrad.Size([1, 64, 5])
    """

    _fn = staticmethod(P.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """2-d adaptive max pooling to ``output_size`` (entries may be None = keep the input size).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.AdaptiveMaxPool2d(7)
    >>> m
    AdaptiveMaxPool2d(output_size=7)
    >>> m(cygrad.randn(1, 64, 10, 9)).shape
    cygrad.Size([1, 64, 7, 7])
    """

    _fn = staticmethod(P.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-d adaptive max pooling to ``output_size``; see :func:`cygrad.nn.functional.adaptive_max_pool3d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.AdaptiveMaxPool3d((5, 7, 9))(cygrad.randn(1, 4, 8, 9, 10)).shape
    cygrad.Size([1, 4, 5, 7, 9])
    """

    _fn = staticmethod(P.adaptive_max_pool3d)


class _MaxUnpoolNd(Module):
    _n = 1
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _ntuple(kernel_size, self._n)
        self.stride = _ntuple(stride if (stride is not None) else kernel_size, self._n)
        self.padding = _ntuple(padding, self._n)

    def forward(self, input, indices, output_size=None):
        return type(self)._fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool1d`; see :func:`cygrad.nn.functional.max_unpool1d`.

    Examples
    --------
    >>> import cygrad
    >>> pool, unpool = cygrad.nn.MaxPool1d(2, return_indices=True), cygrad.nn.MaxUnpool1d(2)
    >>> y, i = pool(cygrad.tensor([[[1.0, 2.0, 3.0, 4.0]]]))
    >>> unpool(y, i)
    tensor([[[0., 2., 0., 4.]]])
    """

    _n = 1
    _fn = staticmethod(P.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool2d`; see :func:`cygrad.nn.functional.max_unpool2d`.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.MaxUnpool2d(2)
    >>> m
    MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    >>> y, i = cygrad.nn.MaxPool2d(2, return_indices=True)(cygrad.randn(1, 1, 5, 5))
    >>> m(y, i, output_size=(5, 5)).shape
    cygrad.Size([1, 1, 5, 5])
    """

    _n = 2
    _fn = staticmethod(P.max_unpool2d)


class MaxUnpool3d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool3d`; see :func:`cygrad.nn.functional.max_unpool3d`.

    Examples
    --------
    >>> import cygrad
    >>> y, i = cygrad.nn.MaxPool3d(2, return_indices=True)(cygrad.randn(1, 1, 4, 4, 4))
    >>> cygrad.nn.MaxUnpool3d(2)(y, i).shape
    cygrad.Size([1, 1, 4, 4, 4])
    """

    _n = 3
    _fn = staticmethod(P.max_unpool3d)


class _LPPoolNd(Module):
    _fn = None

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return type(self)._fn(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """1-d power-average pooling; see :func:`cygrad.nn.functional.lp_pool1d`.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.LPPool1d(2, 3, stride=2)
    >>> m
    LPPool1d(norm_type=2, kernel_size=3, stride=2, ceil_mode=False)
    >>> m(cygrad.randn(20, 16, 50)).shape
    cygrad.Size([20, 16, 24])
    """

    _fn = staticmethod(P.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """2-d power-average pooling; see :func:`cygrad.nn.functional.lp_pool2d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.LPPool2d(1.5, (3, 2), stride=(2, 1))(cygrad.randn(20, 16, 50, 32)).shape
    cygrad.Size([20, 16, 24, 31])
    """

    _fn = staticmethod(P.lp_pool2d)


class LPPool3d(_LPPoolNd):
    """3-d power-average pooling; see :func:`cygrad.nn.functional.lp_pool3d`.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.LPPool3d(2, 2)(cygrad.randn(1, 2, 4, 4, 4)).shape
    cygrad.Size([1, 2, 2, 2, 2])
    """

    _fn = staticmethod(P.lp_pool3d)
