"""Separable resampling kernels, float32 / float64 (see resample.pyx).

Each plane (D, H, W) of ``x`` is mapped axis by axis (W, then H, then D) through per-axis
tables: output position j of an axis reads taps idx[j, k] with weights wt[j, k], k < cnt[j].
``resample_backward`` applies the adjoint (the gradient with respect to ``x``).
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Index = npt.NDArray[np.intp]
_Mask = npt.NDArray[np.uint8]

def resample_forward(x: _Array, out: _Array, shape_in: tuple[int, int, int],
                     shape_out: tuple[int, int, int],
                     idx_w: _Index, wt_w: _Array, cnt_w: _Index,
                     idx_h: _Index, wt_h: _Array, cnt_h: _Index,
                     idx_d: _Index, wt_d: _Array, cnt_d: _Index,
                     row_used: _Mask, d_used: _Mask,
                     identity: tuple[bool, bool, bool]) -> None:
    """out[p] := (D o H o W)(x[p]); x (planes, prod(shape_in)), out (planes, prod(shape_out))."""

def resample_backward(grad: _Array, out: _Array, shape_in: tuple[int, int, int],
                      shape_out: tuple[int, int, int],
                      idx_w: _Index, wt_w: _Array, cnt_w: _Index,
                      idx_h: _Index, wt_h: _Array, cnt_h: _Index,
                      idx_d: _Index, wt_d: _Array, cnt_d: _Index,
                      row_used: _Mask, d_used: _Mask,
                      identity: tuple[bool, bool, bool]) -> None:
    """out[p] := (D o H o W)^T (grad[p]); grad (planes, prod(shape_out)), out (planes, prod(shape_in))."""
