"""Loss kernels (see loss.pyx): fused log-softmax + NLL over the rows of a 2-D array."""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Index = npt.NDArray[np.int64]

def cross_entropy_forward(x: _Array, target: _Index, weight: _Array, ignore_index: int, loss: _Array,
                          lse: _Array, row_weight: _Array) -> None:
    """loss[i] := w[t_i] * (logsumexp(x[i]) - x[i, t_i]) (0 for ignored rows); lse, row_weight filled."""

def cross_entropy_backward(x: _Array, target: _Index, lse: _Array, scale: _Array, ignore_index: int,
                           out: _Array) -> None:
    """out[i, j] := scale[i] * (softmax(x)[i, j] - [j == t_i]) (0 for ignored rows)."""
