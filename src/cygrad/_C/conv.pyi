"""Convolution kernels, float32 / float64 (see conv.pyx).

Arrays are C-contiguous with flattened spatial dimensions: x (N, C, S), out / gout (N, O, P),
w (O, C / groups * K). ``geom`` is the 18-tuple (D, H, W, OD, OH, OW, kd, kh, kw, sd, sh, sw,
pd, ph, pw, dd, dh, dw): input size, output size, kernel, stride, front padding, dilation (1-d
and 2-d convolutions pass 1 / 0 for the leading dimensions). A bias of length 0 means no bias.
Inconsistent shapes or geometry raise ValueError.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Geom = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int]

def set_column_bytes(nbytes: int) -> None:
    """Set the target size of one thread's column buffer (default 1 MiB, at least 1024)."""

def set_channels_last_min(channels: int) -> None:
    """Smallest number of input channels per group for the position-major (channels-last) path."""

def conv_forward(x: _Array, w: _Array, bias: _Array, out: _Array, geom: _Geom, groups: int) -> None:
    """out[n] := conv(x[n], w) + bias (im2col + gemm)."""

def conv_backward_input(gout: _Array, w: _Array, gx: _Array, geom: _Geom, groups: int) -> None:
    """gx := the input gradient of conv_forward for the output gradient gout (col2im of W^T gout)."""

def conv_backward_weight(x: _Array, gout: _Array, gw: _Array, geom: _Geom, groups: int) -> None:
    """gw := sum_n gout[n] im2col(x[n])^T per group (per-thread partials summed in order)."""

def bias_backward(gout: _Array, gb: _Array) -> None:
    """gb[o] := sum over n and p of gout[n, o, p], accumulated in double."""

def depthwise_forward(x: _Array, w: _Array, bias: _Array, out: _Array, geom: _Geom) -> None:
    """Depthwise (groups == C, O = C * m) convolution by direct loops; w is (O, K)."""

def depthwise_backward_input(gout: _Array, w: _Array, gx: _Array, geom: _Geom) -> None:
    """Input gradient of depthwise_forward."""

def depthwise_backward_weight(x: _Array, gout: _Array, gw: _Array, geom: _Geom) -> None:
    """Weight gradient of depthwise_forward (accumulated in double over the samples)."""

def im2col(x: _Array, col: _Array, geom: _Geom) -> None:
    """col (N, C * K, P) := the sliding blocks of x (N, C, S) (F.unfold)."""

def col2im(col: _Array, x: _Array, geom: _Geom) -> None:
    """x (N, C, S) := the sum of the blocks col (N, C * K, P) at their positions (F.fold)."""
