"""Batched matrix products over BLAS gemm, float32 / float64 (see linalg.pyx)."""

import numpy as np
import numpy.typing as npt

def gemm_batched(
    a: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
    out: npt.NDArray[np.floating],
    trans_a: bool,
    trans_b: bool,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> None:
    """out[i] := alpha * op(a[i]).op(b[i]) + beta * out[i], serial over the batch (threaded BLAS)."""

def gemm_batched_parallel(
    a: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
    out: npt.NDArray[np.floating],
    trans_a: bool,
    trans_b: bool,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> None:
    """Same as gemm_batched with the batch over OpenMP threads; call under threadpool_limits(1, "blas")."""

def blas_compatible(x: npt.NDArray[np.floating]) -> bool:
    """Return True if the 3-D float32/float64 array x can be passed as a or b without a copy."""
