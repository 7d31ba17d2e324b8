"""Fused scaled dot-product attention kernels, float32 / float64 (see attention.pyx).

q (nQ, L, E), k (nK, S, E), v (nV, S, Ev): unit stride along the last axis, any batch stride.
q_idx / k_idx / v_idx / mask_idx (B,) map each output batch element to an input batch element
(broadcasting, grouped-query attention). mask (nM, L, S) is additive, any strides. Blocked over
query rows and keys with an online softmax; the forward keeps the output and the row logsumexp,
the backward recomputes the probabilities. Dropout element (b, i, j) is decided by a hash of
seed and its index, identical in forward, backward and sdpa_dropout_mask.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Index = npt.NDArray[np.intp]

def sdpa_forward(q: _Array, k: _Array, v: _Array, mask: _Array, has_mask: bool, q_idx: _Index, k_idx: _Index,
                 v_idx: _Index, mask_idx: _Index, out: _Array, lse: npt.NDArray[np.float64], scale: float,
                 causal: bool, dropout_p: float, seed: int, block_q: int = 64, block_k: int = 64) -> None:
    """out[b] := dropout(softmax(scale q[q_idx[b]] k[k_idx[b]]^T + mask[mask_idx[b]])) v[v_idx[b]];
    lse[b] := row logsumexp of the scores (-inf for a row without any key, whose output is 0)."""

def sdpa_backward(q: _Array, k: _Array, v: _Array, mask: _Array, has_mask: bool, q_idx: _Index, k_idx: _Index,
                  v_idx: _Index, mask_idx: _Index, out: _Array, dout: _Array, lse: npt.NDArray[np.float64],
                  dq: _Array, dk: _Array, dv: _Array, scale: float, causal: bool, dropout_p: float, seed: int,
                  block_q: int = 64, block_k: int = 64) -> None:
    """dq (B, L, E), dk (B, S, E), dv (B, S, Ev) := gradients of sdpa_forward per output batch element
    (the caller sums them over broadcast and grouped-query dimensions)."""

def sdpa_dropout_mask(out: _Array, dropout_p: float, seed: int) -> None:
    """out (B, L, S) := 1 / (1 - p) where sdpa_forward with this seed keeps an attention weight, else 0."""
