"""Pooling kernels, float32 / float64 (see pool.pyx).

Inputs are C-contiguous planes (P, D, H, W) (1-d pooling: D = H = 1, 2-d: D = 1); outputs are
preallocated (P, oD, oH, oW); kernel / stride / padding / dilation are (d, h, w) triples. One
prange over the planes; results do not depend on the thread count. Indices are int64 flat
positions within a plane; the index kernels take (P, M) / (P, N) 2-D views and skip indices
outside [0, N).
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Index = npt.NDArray[np.int64]
_Triple = tuple[int, int, int]

def _tap_table(n: int, o: int, k: int, s: int, p: int, d: int) -> npt.NDArray[np.intp]:
    """(3, o): first valid tap, end of the valid taps and start coordinate of each max-pool window."""

def _avg_table(n: int, o: int, k: int, s: int, p: int) -> npt.NDArray[np.intp]:
    """(3, o): clipped start, clipped end and padded window size of each avg-pool window."""

def _adaptive_table(n: int, o: int) -> npt.NDArray[np.intp]:
    """(3, o): floor(i n / o), ceil((i + 1) n / o) and their difference."""

def max_pool_forward(
    x: _Array, out: _Array, indices: _Index, kernel: _Triple, stride: _Triple, padding: _Triple,
    dilation: _Triple
) -> None:
    """out, indices := max (NaN wins, first maximum) and its flat index over each window."""

def avg_pool_forward(
    x: _Array, out: _Array, kernel: _Triple, stride: _Triple, padding: _Triple, count_include_pad: bool,
    divisor: int
) -> None:
    """out := window sum / (divisor, or the padded window size, or the valid count); divisor 0 = none."""

def avg_pool_backward(
    grad: _Array, out: _Array, kernel: _Triple, stride: _Triple, padding: _Triple, count_include_pad: bool,
    divisor: int
) -> None:
    """out (input-shaped) := the adjoint of avg_pool_forward applied to grad (output-shaped)."""

def adaptive_avg_pool_forward(x: _Array, out: _Array) -> None:
    """out := mean over [floor(i n / o), ceil((i + 1) n / o)) in each dimension."""

def adaptive_avg_pool_backward(grad: _Array, out: _Array) -> None:
    """out (input-shaped) := the adjoint of adaptive_avg_pool_forward applied to grad."""

def adaptive_max_pool_forward(x: _Array, out: _Array, indices: _Index) -> None:
    """out, indices := max and its flat index over each adaptive window."""

def index_scatter_add(src: _Array, indices: _Index, out: _Array) -> None:
    """out (P, N) := 0; out[p, indices[p, j]] += src[p, j]."""

def index_scatter(src: _Array, indices: _Index, out: _Array) -> None:
    """out (P, N) := 0; out[p, indices[p, j]] = src[p, j] in order of j."""

def index_gather(src: _Array, indices: _Index, out: _Array) -> None:
    """out (P, M) := src[p, indices[p, j]] (0 for an index outside [0, N))."""
