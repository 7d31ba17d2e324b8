"""Upsample, UpsamplingNearest2d, UpsamplingBilinear2d, PixelShuffle, PixelUnshuffle."""
from ...ops import resample as _R
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle"]


class Upsample(Module):
    """Resize 1-D, 2-D or 3-D inputs: a module form of :func:`cygrad.nn.functional.interpolate`.

    Parameters
    ----------
    size : int or tuple of int, optional
        Output spatial size (exactly one of ``size`` and ``scale_factor``).
    scale_factor : float or tuple of float, optional
        Multiplier of the spatial size (stored as float; a falsy value is stored as None).
    mode : str
        ``'nearest'``, ``'nearest-exact'``, ``'linear'``, ``'bilinear'``, ``'bicubic'``,
        ``'trilinear'`` or ``'area'``.
    align_corners : bool, optional
        See :func:`~cygrad.nn.functional.interpolate`.
    recompute_scale_factor : bool, optional
        See :func:`~cygrad.nn.functional.interpolate`.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Upsample(scale_factor=2, mode='nearest')
    >>> m
    Upsample(scale_factor=2.0, mode='nearest')
    >>> m(cygrad.tensor([[[1.0, 2.0]]]))
    tensor([[[1., 1., 2., 2.]]])
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return _R.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                              recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        if self.scale_factor is not None:
            info = "scale_factor=" + repr(self.scale_factor)
        else:
            info = "size=" + repr(self.size)
        return info + ", mode=" + repr(self.mode)


class UpsamplingNearest2d(Upsample):
    """2-D nearest-neighbour upsampling (``Upsample(size, scale_factor, mode='nearest')``).

    Parameters
    ----------
    size : int or tuple of int, optional
    scale_factor : float or tuple of float, optional

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.UpsamplingNearest2d(scale_factor=2)(cygrad.ones(1, 1, 2, 3)).shape
    cygrad.Size([1, 1, 4, 6])
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """2-D bilinear upsampling with ``align_corners=True``.

    Parameters
    ----------
    size : int or tuple of int, optional
    scale_factor : float or tuple of float, optional

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.UpsamplingBilinear2d(size=(1, 3))(cygrad.tensor([[[[0.0, 2.0]]]]))
    tensor([[[[0., 1., 2.]]]])
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """``(*, C r^2, H, W) -> (*, C, H r, W r)``: see :func:`cygrad.nn.functional.pixel_shuffle`.

    Parameters
    ----------
    upscale_factor : int

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.PixelShuffle(3)
    >>> m(cygrad.randn(1, 9, 4, 4)).shape
    cygrad.Size([1, 1, 12, 12])
    """

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return _R.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """``(*, C, H r, W r) -> (*, C r^2, H, W)``: see :func:`cygrad.nn.functional.pixel_unshuffle`.

    Parameters
    ----------
    downscale_factor : int

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.PixelUnshuffle(2)
    >>> m(cygrad.randn(1, 1, 4, 6)).shape
    cygrad.Size([1, 4, 2, 3])
    """

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        return _R.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
