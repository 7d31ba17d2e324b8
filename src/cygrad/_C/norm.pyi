"""Normalization kernels, float32 / float64 (see norm.pyx).

Arrays are C-contiguous and of one floating dtype (x, y, grad, dx, weight, bias); statistics and
gradient sums are float64. Batch / group norm take ``x`` as ``(N, C, L)``, layer / RMS norm as
``(R, D)``. Arrays that a flag marks as unused may be empty.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_F64 = npt.NDArray[np.float64]

def batch_norm_forward(
    x: _Array, weight: _Array, bias: _Array, mean: _F64, var: _F64, training: bool, eps: float, y: _Array
) -> None:
    """y := (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]; in training mean / var (biased)
    are first computed over (N, L) and written (OUT), else they are read (IN)."""

def batch_norm_backward(
    x: _Array,
    grad: _Array,
    weight: _Array,
    mean: _F64,
    invstd: _F64,
    training: bool,
    need_dx: bool,
    dx: _Array,
    sum_g: _F64,
    sum_gx: _F64,
) -> None:
    """sum_g[c] := sum(grad), sum_gx[c] := sum(grad * (x - mean)) over (N, L); if need_dx,
    dx := w r (g - sum_g / M - (x - mean) r^2 sum_gx / M) in training (M = N L), w r g otherwise."""

def layer_norm_forward(
    x: _Array,
    weight: _Array,
    bias: _Array,
    has_weight: bool,
    has_bias: bool,
    eps: float,
    rms: bool,
    y: _Array,
    mean: _F64,
    rstd: _F64,
) -> None:
    """y[r] := (x[r] - mean[r]) * rstd[r] * weight + bias per row (rms: mean = 0 and
    rstd = 1 / sqrt(mean(x^2) + eps))."""

def layer_norm_backward(
    x: _Array,
    grad: _Array,
    weight: _Array,
    has_weight: bool,
    mean: _F64,
    rstd: _F64,
    rms: bool,
    need_dx: bool,
    dx: _Array,
    need_wgrad: bool,
    grad_weight: _F64,
    grad_bias: _F64,
) -> None:
    """dx[r] := rstd (g w - mean(g w) - xhat mean(g w xhat)) (rms: no mean(g w) term);
    grad_weight := sum_r g xhat, grad_bias := sum_r g."""

def group_norm_forward(
    x: _Array, groups: int, weight: _Array, bias: _Array, eps: float, y: _Array, mean: _F64, var: _F64
) -> None:
    """y[n, c] := (x[n, c] - mean[n, g]) / sqrt(var[n, g] + eps) * weight[c] + bias[c]; mean / var
    (biased) of each (n, group) are written, shape (N * G,)."""

def group_norm_backward(
    x: _Array,
    grad: _Array,
    groups: int,
    weight: _Array,
    mean: _F64,
    rstd: _F64,
    need_dx: bool,
    dx: _Array,
    sum_g: _F64,
    sum_gx: _F64,
) -> None:
    """sum_g[n, c] := sum_L(grad), sum_gx[n, c] := sum_L(grad * (x - mean[n, g])); if need_dx,
    dx := r (g w - mean_group(g w) - xhat mean_group(g w xhat))."""
