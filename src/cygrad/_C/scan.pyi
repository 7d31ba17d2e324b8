"""Selective state-space scan kernels, float32 / float64 (see scan.pyx).

u, delta, z, out: (batch, dim, L) C-contiguous; A: (dim, NP) with NP a multiple of 8 (the state
size zero-padded); B and C: flat buffers of rows of NP values, the row of (batch b, channel d,
step t) at ``b * sb + (d // q) * sg + t * st`` with the geometry tuple ``(sb, q, sg, st)``.
Optional arrays (D, z, bias, h0, states, glast, dz, dh0, dB, dC) are passed empty to mean "absent".
Shapes are the caller's promise: they are not checked.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_F64 = npt.NDArray[np.float64]

def selective_scan_forward(u: _Array, delta: _Array, A: _Array, B: _Array, b_geom: tuple[int, int, int, int],
                           C: _Array, c_geom: tuple[int, int, int, int], D: _Array, z: _Array, bias: _Array,
                           softplus: bool, h0: _Array, out: _Array, states: _Array, last: _Array,
                           chunk: int) -> None:
    """out := the scan's output; last := the final state (batch, dim, NP); states (batch, dim,
    ceil(L / chunk), NP) := the state entering each chunk (skipped when states is empty)."""

def selective_scan_backward(u: _Array, delta: _Array, A: _Array, B: _Array, b_geom: tuple[int, int, int, int],
                            C: _Array, c_geom: tuple[int, int, int, int], D: _Array, z: _Array, bias: _Array,
                            softplus: bool, h0: _Array, states: _Array, gout: _Array, glast: _Array,
                            chunk: int, block_start: npt.NDArray[np.intp], du: _Array, ddelta: _Array,
                            dz: _Array, dh0: _Array,
                            dA: _F64, dD: _F64, dbias: _F64, dB: _F64, db_geom: tuple[int, int, int, int],
                            dC: _F64, dc_geom: tuple[int, int, int, int]) -> None:
    """Gradients of the scan given gout (and glast). du, ddelta, dz, dh0 are complete; dA (batch,
    dim, NP), dD and dbias (batch, dim) are per-batch partials and dB / dC partial rows in float64,
    the row of (b, d, t) at ``b * per_b + (d if by_channel else block) * per_item + t * st`` for
    the geometry ``(per_b, by_channel, per_item, st)``; the caller sums them over batch / blocks.
    Work items are (batch, channel block), block k = [block_start[k], block_start[k + 1])."""

def lane_width(dtype: np.dtype) -> int:
    """Channels per work item of the lane kernels: 16 for float32, 8 for float64."""

def selective_scan_forward_lanes(u: _Array, delta: _Array, A: _Array, B: _Array,
                                 b_geom: tuple[int, int, int, int], C: _Array, c_geom: tuple[int, int, int, int],
                                 D: _Array, z: _Array, bias: _Array, softplus: bool, h0: _Array, out: _Array,
                                 states: _Array, last: _Array, chunk: int, n: int) -> None:
    """selective_scan_forward on channel lanes (time-varying B and C with groups of a multiple of
    lane_width channels; n is the real state size). Raises ValueError for any other layout."""

def selective_scan_backward_lanes(u: _Array, delta: _Array, A: _Array, B: _Array,
                                  b_geom: tuple[int, int, int, int], C: _Array, c_geom: tuple[int, int, int, int],
                                  D: _Array, z: _Array, bias: _Array, softplus: bool, states: _Array,
                                  gout: _Array, glast: _Array, chunk: int, n: int, du: _Array, ddelta: _Array,
                                  dz: _Array, dh0: _Array, dA: _F64, dD: _F64, dbias: _F64, dB: _Array,
                                  dC: _Array, dB_sum: _Array, dC_sum: _Array) -> None:
    """selective_scan_backward on channel lanes; dB / dC are per-item partials (batch, dim /
    lane_width, n, L) in the input dtype; given dB_sum / dC_sum (batch, groups, n, L), the kernel also
    sums each group's partials into them (in float64, in item order)."""

def lane_exp(x: npt.NDArray[np.float32]) -> None:
    """x := exp(x) in place with the float32 lane kernels' exp (len(x) a multiple of 16; for the tests)."""

def lane_decay(dt: npt.NDArray[np.float32], a: npt.NDArray[np.float32]) -> None:
    """dt := exp(dt * a) in place, as the float32 lane kernels compute their decays (len(dt) == len(a), a
    multiple of 16; for the tests)."""

def lane_softplus(x: npt.NDArray[np.float32], sig: npt.NDArray[np.float32]) -> None:
    """sig := sigmoid(x), then x := softplus(x) in place, as the float32 lane kernels compute them (len(x) a
    multiple of 16; for the tests)."""
