"""Deformable convolution kernels (torchvision's deform_conv2d), float32 / float64 (see deform.pyx).

Arrays are C-contiguous, one dtype. ``xp`` is the input zero-padded to (H + 3) x (W + 2) per
channel (one row above, two below, one column each side) and flattened: (N, C, (H + 3)(W + 2)).
``offset`` is (N, 2 G K, P), ``mask`` (N, G K, P) or (N, 0, P) for none, ``w`` (O, C / WG * K)
and ``out`` / ``gout`` (N, O, P), with K = kh * kw and P = Ho * Wo. ``geom`` is
``(H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G, WG)``: input and output size, kernel,
stride, padding, dilation, offset groups and weight groups. Shapes that disagree with the
geometry raise ValueError.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]

def set_column_bytes(nbytes: int) -> None:
    """Set the target size in bytes of one thread's column buffer (default 262144)."""

def deform_forward(
    xp: _Array, offset: _Array, mask: _Array, w: _Array, bias: _Array, out: _Array,
    geom: tuple[int, ...],
) -> None:
    """out := deformable_conv(x, offset, mask, w) + bias (bias of shape (0,) for none)."""

def deform_backward(
    xp: _Array, offset: _Array, mask: _Array, w: _Array, gout: _Array, gx: _Array, goff: _Array,
    gmask: _Array, gw: _Array, geom: tuple[int, ...],
) -> None:
    """Write the gradients of deform_forward: gx (N, C, H, W), goff (N, 2 G K, P),
    gmask (N, G K, P), gw (O, C / WG * K); an output passed with a zero first dimension is
    not computed (gmask needs a mask)."""
