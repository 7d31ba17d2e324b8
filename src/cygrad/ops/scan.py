"""Selective state-space scan (Mamba's ``selective_scan_fn``) and its step function over ``_C.scan``.

For each batch element and channel ``d`` a state ``h`` of size ``n`` runs through the
sequence::

    delta_t = softplus(delta_t + delta_bias[d])        (bias and softplus optional)
    h_t     = exp(delta_t * A[d]) * h_{t-1} + delta_t * B_t * u_t      (h_{-1} = 0)
    y_t     = sum_n C_t * h_t
    out_t   = (y_t + D[d] * u_t) * silu(z_t)           (D and z optional)

Three ways to evaluate it (all give the same values and gradients up to rounding):

``mode="sequential"`` (default)
    One fused kernel forward and one backward (``_C.scan``), parallel over (batch, channel).
    The forward keeps only the state entering every chunk of 64 steps; the backward
    recomputes each chunk from it and runs the reverse recurrence, so the memory kept for
    backward is ``batch * d * n * L / 64`` values beyond the inputs.
``mode="parallel"``
    The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (``a_t = exp(delta_t A)``,
    ``b_t = delta_t u_t B_t``) evaluated by an associative scan over the sequence
    (Hillis-Steele: ``ceil(log2 L)`` rounds, each combining every element with the one
    ``2^k`` steps earlier, ``(a, b) o (a', b') = (a a', a' b + b')``), written with tensor
    operations: log-depth in L, differentiable to any order, but it materialises
    ``O(batch * d * L * n)`` tensors per round. Useful as an independent reference and for
    higher-order gradients; the sequential kernel is faster on CPU.
``checkpoint_chunks=k``
    Splits the sequence into ``k`` segments and runs each through
    :func:`cygrad.utils.checkpoint.checkpoint`, passing the last state of one segment as the
    initial state of the next. Only the segment inputs and the boundary states are kept for
    backward; each segment is recomputed when backward reaches it. Combine it with
    ``mode="parallel"`` to bound that mode's memory to one segment.
"""

import math

import numpy as np

from .. import _alloc, _dtype as _D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state as _gm, no_grad, enable_grad
from .._C import scan as _K

__all__ = ["selective_scan", "selective_state_update"]

# Steps per chunk of the sequential kernel: the forward stores the state entering each chunk,
# the backward recomputes one chunk at a time (module attribute so that tests can shrink it).
_CHUNK = 64
# Work items of the backward: at least this many channel blocks per batch element (fewer only
# when d is small); the block size depends on the shapes only, never on the thread count.
_MIN_BLOCKS = 16
# Use the channel-lane kernels where the shapes allow (tests switch it off to check both paths).
_LANES = True
# The lane backward's work items: up to this many blocks of lane-width channels (sharing their B / C
# rows) per item, as long as the items number at least _LANE_MIN_ITEMS. Shapes alone decide.
_LANE_MAX_BLOCKS = 4
_LANE_MIN_ITEMS = 8


def _use_lanes(spec, kd):
    """Whether the lane kernels take this call: time-varying B and C whose groups hold a
    multiple of the lane width (16 float32 / 8 float64 channels)."""
    w = _K.lane_width(kd)
    return (_LANES and spec.b_groups > 0 and spec.c_groups > 0 and spec.dim % w == 0
            and (spec.dim // spec.b_groups) % w == 0 and (spec.dim // spec.c_groups) % w == 0)


def _lane_blocks(spec, kd):
    """Blocks of lane-width channels per work item of the lane backward: the largest power of two up to
    _LANE_MAX_BLOCKS that divides every group of B and C and leaves at least _LANE_MIN_ITEMS items."""
    w = _K.lane_width(kd)
    per_group = math.gcd(spec.dim // spec.b_groups, spec.dim // spec.c_groups) // w
    k = 1
    while (2 * k <= _LANE_MAX_BLOCKS and per_group % (2 * k) == 0
           and spec.batch * spec.dim // (w * 2 * k) >= _LANE_MIN_ITEMS):
        k *= 2
    return k


def _shape(t):
    return tuple(t.shape)


def _padded(n):
    """State size padded to a multiple of 8 (the kernel's vector width), at least 8."""
    return max(8, -(-n // 8) * 8)


def _check_tensor(t, name, fn):
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(t).__name__}")
    if t._data.dtype.kind not in "f":
        raise RuntimeError(f"\"{fn}\" not implemented for '{_D.scalar_name(t.dtype)}'")


def _compute_dtype(tensors):
    """Promoted float dtype of the inputs (float16 / bfloat16 computed in float32)."""
    dt = np.result_type(*[t._data.dtype for t in tensors])
    return np.dtype(np.float32) if dt.itemsize < 4 else np.dtype(dt)


class _Spec:
    """Validated shapes of one selective_scan call."""

    __slots__ = ("batch", "dim", "L", "n", "np", "b_groups", "c_groups", "b_shape", "c_shape")


def _bc_layout(t, name, spec, fn):
    """Groups of a B / C tensor: 0 for time-invariant (d, n), G for (batch, [G,] n, L)."""
    s = _shape(t)
    if t.dim() == 2:
        if s != (spec.dim, spec.n):
            raise ValueError(f"{fn}(): time-invariant {name} must have shape (d, n) = {(spec.dim, spec.n)} "
                             f"(u: {spec.batch, spec.dim, spec.L}, A: {(spec.dim, spec.n)}), got {s}")
        return 0
    if t.dim() == 3:
        if s != (spec.batch, spec.n, spec.L):
            raise ValueError(f"{fn}(): {name} must have shape (batch, n, L) = {(spec.batch, spec.n, spec.L)} "
                             f"(u: {(spec.batch, spec.dim, spec.L)}, A: {(spec.dim, spec.n)}), got {s}")
        return 1
    if t.dim() == 4:
        g = s[1]
        if s[0] != spec.batch or s[2] != spec.n or s[3] != spec.L:
            raise ValueError(f"{fn}(): grouped {name} must have shape (batch, groups, n, L) = "
                             f"{(spec.batch, 'groups', spec.n, spec.L)} (u: {(spec.batch, spec.dim, spec.L)}, "
                             f"A: {(spec.dim, spec.n)}), got {s}")
        if g < 1 or spec.dim % g != 0:
            raise ValueError(f"{fn}(): the channels d = {spec.dim} of u {(spec.batch, spec.dim, spec.L)} "
                             f"must be divisible by the groups of {name} {s} (groups = {g})")
        return g
    raise ValueError(f"{fn}(): {name} must be 2-D (d, n), 3-D (batch, n, L) or 4-D (batch, groups, n, L), "
                     f"got shape {s}")


def _validate(u, delta, A, B, C, D, z, delta_bias, h0, fn="selective_scan"):
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        _check_tensor(t, name, fn)
    for name, t in (("D", D), ("z", z), ("delta_bias", delta_bias), ("initial_state", h0)):
        if t is not None:
            _check_tensor(t, name, fn)
    if u.dim() != 3:
        raise ValueError(f"{fn}(): u must be 3-D (batch, d, L), got shape {_shape(u)}")
    spec = _Spec()
    spec.batch, spec.dim, spec.L = _shape(u)
    if _shape(delta) != _shape(u):
        raise ValueError(f"{fn}(): delta must have the shape of u {_shape(u)}, got {_shape(delta)}")
    if A.dim() != 2 or A.shape[0] != spec.dim:
        raise ValueError(f"{fn}(): A must have shape (d, n) with d = {spec.dim} (u: {_shape(u)}), "
                         f"got {_shape(A)}")
    spec.n = A.shape[1]
    spec.np = _padded(spec.n)
    spec.b_groups = _bc_layout(B, "B", spec, fn)
    spec.c_groups = _bc_layout(C, "C", spec, fn)
    spec.b_shape, spec.c_shape = _shape(B), _shape(C)
    if D is not None and _shape(D) != (spec.dim,):
        raise ValueError(f"{fn}(): D must have shape (d,) = ({spec.dim},) (u: {_shape(u)}), got {_shape(D)}")
    if delta_bias is not None and _shape(delta_bias) != (spec.dim,):
        raise ValueError(f"{fn}(): delta_bias must have shape (d,) = ({spec.dim},) (u: {_shape(u)}), "
                         f"got {_shape(delta_bias)}")
    if z is not None and _shape(z) != _shape(u):
        raise ValueError(f"{fn}(): z must have the shape of u {_shape(u)}, got {_shape(z)}")
    if h0 is not None and _shape(h0) != (spec.batch, spec.dim, spec.n):
        raise ValueError(f"{fn}(): the initial state must have shape (batch, d, n) = "
                         f"{(spec.batch, spec.dim, spec.n)}, got {_shape(h0)}")
    return spec


# ---- kernel argument preparation ------------------------------------------------------------------------------

def _arr(t, kd):
    return np.ascontiguousarray(t._data, dtype=kd)


def _opt(t, kd, ndim):
    return _arr(t, kd) if t is not None else np.empty((0,) * ndim, kd)


def _bc_rows(t, groups, spec, kd):
    """B or C as the kernel's flat rows of NP values and their geometry (sb, q, sg, st)."""
    n, NP, L, dim = spec.n, spec.np, spec.L, spec.dim
    if groups == 0:
        rows = np.zeros((dim, NP), kd)
        rows[:, :n] = t._data
        return rows.reshape(-1), (0, 1, NP, 0)
    g = groups
    src = t._data.reshape(spec.batch, g, n, L)
    rows = np.zeros((spec.batch, g, L, NP), kd)
    rows[..., :n] = src.transpose(0, 1, 3, 2)
    return rows.reshape(-1), (g * L * NP, dim // g, L * NP, NP)


def _state_arr(h, spec, kd):
    if h is None:
        return np.empty((0, 0, 0), kd)
    a = np.zeros((spec.batch, spec.dim, spec.np), kd)
    a[..., :spec.n] = h._data
    return a


def _blocks(spec):
    """Channel blocks of the backward's work items, as the start of each block plus ``dim``.

    Every block lies inside one group of each time-varying B / C (their partial gradients are
    per block), and there are about ``_MIN_BLOCKS`` of them per batch element (more when the
    groups are more numerous). The blocks depend on the shapes only, never on the thread count.
    """
    g = spec.dim
    for groups in (spec.b_groups, spec.c_groups):
        if groups:
            g = math.gcd(g, spec.dim // groups)
    units = spec.dim // g                      # consecutive runs of g channels sharing their groups
    per_unit = max(1, min(g, -(-_MIN_BLOCKS // units)))
    starts = [u * g + (k * g) // per_unit for u in range(units) for k in range(per_unit)]
    return np.array(starts + [spec.dim], dtype=np.intp)


class _Prepared:
    """The kernel arrays of one call. The backward takes the small ones (A, the B / C rows, D, the bias,
    h0) over from the forward's (``like``) and prepares u, delta and z again from the saved tensors
    (no copy when they are contiguous in the compute dtype), so that no copy of those is kept alive
    between the two."""

    def __init__(self, spec, kd, u, delta, A, B, C, D, z, delta_bias, h0, like=None):
        self.u, self.delta, self.z = _arr(u, kd), _arr(delta, kd), _opt(z, kd, 3)
        if like is not None:
            self.A, self.B, self.b_geom, self.C, self.c_geom = like.A, like.B, like.b_geom, like.C, like.c_geom
            self.D, self.bias, self.h0 = like.D, like.bias, like.h0
            return
        self.A = np.zeros((spec.dim, spec.np), kd)
        self.A[:, :spec.n] = A._data
        self.B, self.b_geom = _bc_rows(B, spec.b_groups, spec, kd)
        self.C, self.c_geom = _bc_rows(C, spec.c_groups, spec, kd)
        self.D = _opt(D, kd, 1)
        self.bias = _opt(delta_bias, kd, 1)
        self.h0 = _state_arr(h0, spec, kd)


def _empty_out(spec, kd, h0):
    out = np.zeros((spec.batch, spec.dim, spec.L), kd)
    last = np.zeros((spec.batch, spec.dim, spec.n), kd)
    if h0 is not None:
        last[...] = h0._data
    return out, last


class SelectiveScan(Function):
    """The fused selective scan (forward kernel + reverse-scan backward kernel)."""

    _builtin = True

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, spec, softplus, return_last, chunk):
        kd = _compute_dtype([t for t in (u, delta, A, B, C, D, z, delta_bias, h0) if t is not None])
        ctx.spec, ctx.softplus, ctx.return_last, ctx.chunk, ctx.kd = spec, softplus, return_last, chunk, kd
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h0)
        if spec.L == 0 or spec.batch * spec.dim == 0:
            out, last = _empty_out(spec, kd, h0)
            ctx.states = ctx.prepared = None
            return (out, last) if return_last else out
        p = _Prepared(spec, kd, u, delta, A, B, C, D, z, delta_bias, h0)
        record = _gm.enabled and any(t is not None and t._requires_grad
                                       for t in (u, delta, A, B, C, D, z, delta_bias, h0))
        n_chunks = -(-spec.L // chunk)
        states = (_alloc.empty((spec.batch, spec.dim, n_chunks, spec.np), kd) if record
                  else np.empty((0, 0, 0, 0), kd))
        out = _alloc.empty((spec.batch, spec.dim, spec.L), kd)
        last = np.empty((spec.batch, spec.dim, spec.np), kd)
        if _use_lanes(spec, kd):
            _K.selective_scan_forward_lanes(p.u, p.delta, p.A, p.B, p.b_geom, p.C, p.c_geom, p.D, p.z, p.bias,
                                            softplus, p.h0, out, states, last, chunk, spec.n)
        else:
            _K.selective_scan_forward(p.u, p.delta, p.A, p.B, p.b_geom, p.C, p.c_geom, p.D, p.z, p.bias,
                                      softplus, p.h0, out, states, last, chunk)
        ctx.states = states
        p.u = p.delta = p.z = None                # the backward prepares these again
        ctx.prepared = p if record else None
        last = np.ascontiguousarray(last[..., :spec.n])
        return (out, last) if return_last else out

    @staticmethod
    def backward(ctx, gout, glast=None):
        saved = ctx.saved_tensors
        u, delta, A, B, C, D, z, delta_bias, h0 = saved
        spec, kd = ctx.spec, ctx.kd
        needs = ctx.needs_input_grad
        if _gm.enabled:  # create_graph: differentiate the tensor-op (parallel) form instead
            return _differentiable_backward(ctx, saved, gout, glast)
        grads = [None] * 13
        if spec.L == 0 or spec.batch * spec.dim == 0:
            return _zero_grads(saved, needs, glast)
        p = _Prepared(spec, kd, u, delta, A, B, C, D, z, delta_bias, h0, like=ctx.prepared)
        batch, dim, L, n, NP = spec.batch, spec.dim, spec.L, spec.n, spec.np
        g = gout._data
        if glast is not None:
            gl = np.zeros((batch, dim, NP), kd)
            gl[..., :n] = glast._data
        else:
            gl = np.empty((0, 0, 0), kd)
        du = _alloc.empty((batch, dim, L), kd)
        ddelta = _alloc.empty((batch, dim, L), kd)
        dz = _alloc.empty((batch, dim, L), kd) if z is not None else np.empty((0, 0, 0), kd)
        dh0 = np.empty((batch, dim, NP), kd) if (h0 is not None and needs[8]) else np.empty((0, 0, 0), kd)
        dA = np.empty((batch, dim, NP), np.float64)
        dD = np.empty((batch, dim), np.float64)
        dbias = np.empty((batch, dim), np.float64)
        if _use_lanes(spec, kd):
            grads[3], grads[4] = _backward_lanes(ctx, p, g, gl, du, ddelta, dz, dh0, dA, dD, dbias, B, C, needs)
        else:
            grads[3], grads[4] = _backward_channels(ctx, p, g, gl, du, ddelta, dz, dh0, dA, dD, dbias, B, C, needs)
        grads[0] = _grad(du, u) if needs[0] else None
        grads[1] = _grad(ddelta, delta) if needs[1] else None
        grads[2] = _grad(dA.sum(0)[:, :n], A) if needs[2] else None
        grads[5] = _grad(dD.sum(0), D) if D is not None and needs[5] else None
        grads[6] = _grad(dz, z) if z is not None and needs[6] else None
        grads[7] = _grad(dbias.sum(0), delta_bias) if delta_bias is not None and needs[7] else None
        grads[8] = _grad(dh0[..., :n], h0) if h0 is not None and needs[8] else None
        return tuple(grads)


def _gout_rows(g, kd):
    """The output gradient as the lane backward reads it: rows of L contiguous values of dtype ``kd`` at any
    non-negative batch / channel strides. An expanded gradient (such as the one of ``sum``) is passed
    without materialising it."""
    if g.dtype == kd and g.strides[0] >= 0 and g.strides[1] >= 0:
        if g.strides[2] == g.itemsize:
            return g
        if g.strides[2] == 0 and g.strides[1] == 0 and g.strides[0] == 0:     # one value everywhere
            return np.broadcast_to(np.full(g.shape[2], g.flat[0], kd), g.shape)
    return _alloc.contiguous(g, kd)


def _backward_lanes(ctx, p, g, gl, du, ddelta, dz, dh0, dA, dD, dbias, B, C, needs):
    """Run the lane backward kernel; return the gradients of B and C (or None)."""
    spec, kd = ctx.spec, ctx.kd
    blocks = _lane_blocks(spec, kd)
    items = spec.dim // (_K.lane_width(kd) * blocks)

    def partial(need):
        if not need:
            return np.empty((0, 0, 0, 0), kd)
        return _alloc.empty((spec.batch, items, spec.n, spec.L), kd)

    def summed(groups, need):
        return np.empty((spec.batch, groups, spec.n, spec.L) if need else (0, 0, 0, 0), kd)

    dBp, dCp = partial(needs[3]), partial(needs[4])
    dB, dC = summed(spec.b_groups, needs[3]), summed(spec.c_groups, needs[4])
    _K.selective_scan_backward_lanes(p.u, p.delta, p.A, p.B, p.b_geom, p.C, p.c_geom, p.D, p.z, p.bias,
                                     ctx.softplus, ctx.states, _gout_rows(g, kd), gl, ctx.chunk, spec.n,
                                     du, ddelta, dz, dh0, dA, dD, dbias, dBp, dCp, dB, dC, blocks)
    return (_grad(dB.reshape(B._data.shape), B) if needs[3] else None,
            _grad(dC.reshape(C._data.shape), C) if needs[4] else None)


def _backward_channels(ctx, p, g, gl, du, ddelta, dz, dh0, dA, dD, dbias, B, C, needs):
    """Run the per-channel backward kernel; return the gradients of B and C (or None)."""
    spec, kd = ctx.spec, ctx.kd
    batch, dim, L, n, NP = spec.batch, spec.dim, spec.L, spec.n, spec.np
    blocks = _blocks(spec)
    nb = len(blocks) - 1

    def partial(groups, need):
        if not need:
            return np.empty(0, np.float64), (0, 0, 0, 0)
        if groups == 0:                    # one (NP,) row per (batch, channel), summed over time
            return np.empty(batch * dim * NP, np.float64), (dim * NP, 1, NP, 0)
        return np.empty(batch * nb * L * NP, np.float64), (nb * L * NP, 0, L * NP, NP)

    dBp, db_geom = partial(spec.b_groups, needs[3])
    dCp, dc_geom = partial(spec.c_groups, needs[4])
    _K.selective_scan_backward(p.u, p.delta, p.A, p.B, p.b_geom, p.C, p.c_geom, p.D, p.z, p.bias,
                               ctx.softplus, p.h0, ctx.states, _alloc.contiguous(g, kd), gl, ctx.chunk, blocks,
                               du, ddelta, dz, dh0, dA, dD, dbias, dBp, db_geom, dCp, dc_geom)

    def reduce_bc(part, groups, t):
        if groups == 0:
            r = part.reshape(batch, dim, NP).sum(0)[:, :n]
        else:
            # blocks of group j start at the first block whose first channel is >= j * dim / groups
            first = np.searchsorted(blocks[:-1], np.arange(groups) * (dim // groups))
            r = np.add.reduceat(part.reshape(batch, nb, L, NP), first, axis=1)[..., :n]
            r = r.transpose(0, 1, 3, 2).reshape(t._data.shape)
        return _grad(r, t)

    return (reduce_bc(dBp, spec.b_groups, B) if needs[3] else None,
            reduce_bc(dCp, spec.c_groups, C) if needs[4] else None)


def _grad(a, like):
    return Tensor._make(np.ascontiguousarray(a, dtype=like._data.dtype))


def _zero_grads(saved, needs, glast):
    grads = [None] * 13
    for i, t in enumerate(saved):
        if t is not None and needs[i]:
            grads[i] = Tensor._make(np.zeros(t._data.shape, t._data.dtype))
    h0 = saved[8]
    if h0 is not None and needs[8] and glast is not None:
        grads[8] = Tensor._make(np.ascontiguousarray(glast._data, dtype=h0._data.dtype))
    return tuple(grads)


def _differentiable_backward(ctx, saved, gout, glast):
    """Backward with create_graph=True: the gradients of the tensor-op form of the scan."""
    from ..autograd import grad as _autograd_grad
    needs = ctx.needs_input_grad
    idx = [i for i, t in enumerate(saved) if t is not None and needs[i]]
    u, delta, A, B, C, D, z, delta_bias, h0 = saved
    with enable_grad():
        out, last = _scan_parallel(u, delta, A, B, C, D, z, delta_bias, ctx.softplus, h0, ctx.spec)
        outs, gs = [out], [gout]
        if glast is not None:
            outs.append(last)
            gs.append(glast)
        res = _autograd_grad(outs, [saved[i] for i in idx], gs, create_graph=True, allow_unused=True)
    grads = [None] * 13
    for i, r in zip(idx, res):
        grads[i] = r if r is not None else Tensor._make(np.zeros(saved[i]._data.shape, saved[i]._data.dtype))
    return tuple(grads)


# ---- the tensor-op (associative scan) form ------------------------------------------------------------------

def _expand_bc(t, groups, spec):
    """B or C as a (batch or 1, d, L or 1, n) tensor."""
    if groups == 0:
        return t[None, :, None, :]
    x = t.reshape(spec.batch, groups, 1, spec.n, spec.L)
    x = x.expand(spec.batch, groups, spec.dim // groups, spec.n, spec.L).reshape(spec.batch, spec.dim, spec.n, spec.L)
    return x.transpose(2, 3)


def _shift(x, k, fill):
    """x shifted by k steps along dim 2, the first k entries set to ``fill``."""
    from . import shape as S
    pad = S.pad(x[:, :, :x.shape[2] - k], (0, 0, k, 0), value=fill)
    return pad


def _scan_parallel(u, delta, A, B, C, D, z, delta_bias, softplus, h0, spec):
    """(out, last_state) by a Hillis-Steele associative scan written with tensor operations."""
    from . import activation as Act
    L = spec.L
    dt = delta
    if delta_bias is not None:
        dt = dt + delta_bias[:, None]
    if softplus:
        dt = Act.softplus(dt)
    a = (dt[..., None] * A[:, None, :]).exp()                       # (batch, d, L, n)
    b = (dt * u)[..., None] * _expand_bc(B, spec.b_groups, spec)     # (batch, d, L, n)
    if h0 is not None and L > 0:
        from . import shape as S
        first = b[:, :, :1] + a[:, :, :1] * h0[:, :, None, :]
        b = S.cat([first, b[:, :, 1:]], dim=2)
    k = 1
    while k < L:
        b = b + a * _shift(b, k, 0.0)
        if 2 * k < L:
            a = a * _shift(a, k, 1.0)
        k *= 2
    h = b
    y = (h * _expand_bc(C, spec.c_groups, spec)).sum(-1)            # (batch, d, L)
    out = y
    if D is not None:
        out = out + D[:, None] * u
    if z is not None:
        out = out * Act.silu(z)
    if L > 0:
        last = h[:, :, L - 1]
    else:
        from .._creation import zeros
        last = h0 if h0 is not None else zeros((spec.batch, spec.dim, spec.n), dtype=u.dtype)
    return out, last


def _promoted(tensors):
    return _compute_dtype([t for t in tensors if t is not None])


def _as_kd(t, kd):
    if t is None or t._data.dtype == kd:
        return t
    return t.to(_D.to_dtype(kd))


# ---- public functions -----------------------------------------------------------------------------------------

def _segments(L, k):
    k = max(1, min(k, L)) if L > 0 else 1
    base, extra = divmod(L, k)
    bounds, s = [], 0
    for i in range(k):
        e = s + base + (1 if i < extra else 0)
        bounds.append((s, e))
        s = e
    return bounds


def _scan_once(u, delta, A, B, C, D, z, delta_bias, softplus, h0, spec, mode):
    """(out, last_state) of one call without checkpointing."""
    if mode == "parallel":
        kd = _promoted((u, delta, A, B, C, D, z, delta_bias, h0))
        args = [_as_kd(t, kd) for t in (u, delta, A, B, C, D, z, delta_bias, h0)]
        return _scan_parallel(*args[:8], softplus, args[8], spec)
    return SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, h0, spec, softplus, True, _CHUNK)


def _segment_spec(spec, L):
    s = _Spec()
    for k in _Spec.__slots__:
        setattr(s, k, getattr(spec, k))
    s.L = L
    return s


def _scan_checkpointed(u, delta, A, B, C, D, z, delta_bias, softplus, spec, mode, chunks):
    from ..utils.checkpoint import checkpoint
    from . import shape as S
    h = None
    outs = []
    for s, e in _segments(spec.L, chunks):
        sp = _segment_spec(spec, e - s)

        def seg(u_s, d_s, B_s, C_s, z_s, h_s, A, D, bias, _sp=sp):
            return _scan_once(u_s, d_s, A, B_s, C_s, D, z_s, bias, softplus, h_s, _sp, mode)

        B_s = B if spec.b_groups == 0 else B[..., s:e]
        C_s = C if spec.c_groups == 0 else C[..., s:e]
        z_s = z[..., s:e] if z is not None else None
        out_s, h = checkpoint(seg, u[..., s:e], delta[..., s:e], B_s, C_s, z_s, h, A, D, delta_bias,
                              use_reentrant=False)
        outs.append(out_s)
    out = outs[0] if len(outs) == 1 else S.cat(outs, dim=2)
    return out, h


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, *, mode="sequential", checkpoint_chunks=None):
    """Selective state-space scan (Mamba's ``selective_scan_fn``).

    For every batch element and channel ``d`` a state of size ``n`` evolves as
    ``h_t = exp(delta_t * A[d]) * h_{t-1} + delta_t * B_t * u_t`` from ``h_{-1} = 0``, and
    ``out_t = (sum_n C_t * h_t + D[d] * u_t) * silu(z_t)``, where ``delta`` is first shifted
    by ``delta_bias`` and passed through softplus if asked.

    Parameters
    ----------
    u : Tensor
        Input, ``(batch, d, L)``.
    delta : Tensor
        Step sizes, ``(batch, d, L)``.
    A : Tensor
        State matrix (diagonal per channel), ``(d, n)``.
    B, C : Tensor
        Input and output projections: ``(batch, n, L)``; grouped ``(batch, g, n, L)`` where
        channel ``c`` uses group ``c // (d / g)`` (``d`` divisible by ``g``); or
        time-invariant ``(d, n)``.
    D : Tensor, optional
        Skip connection, ``(d,)``.
    z : Tensor, optional
        Gate, ``(batch, d, L)``: the output is multiplied by ``silu(z)``.
    delta_bias : Tensor, optional
        ``(d,)``, added to ``delta`` (before the softplus).
    delta_softplus : bool, default False
        Apply softplus (threshold 20) to ``delta + delta_bias``.
    return_last_state : bool, default False
        Also return the final state ``h_{L-1}``, ``(batch, d, n)``.
    mode : {"sequential", "parallel"}, keyword-only
        ``"sequential"``: the fused Cython kernels (forward stores the state every 64
        steps, backward recomputes each chunk). ``"parallel"``: an associative
        (Hillis-Steele, ``ceil(log2 L)`` rounds) scan written with tensor operations;
        differentiable to any order but memory-hungry (see the module docstring).
    checkpoint_chunks : int, optional, keyword-only
        Split the sequence into this many segments, each run under
        :func:`cygrad.utils.checkpoint.checkpoint` with the previous segment's last state as
        its initial state; backward recomputes one segment at a time.

    Returns
    -------
    Tensor or (Tensor, Tensor)
        ``out`` ``(batch, d, L)``, or ``(out, last_state)`` with ``return_last_state``. The
        dtype is the promoted float dtype of the inputs.

    Raises
    ------
    ValueError
        Shapes that do not fit together (the message names them), ``d`` not divisible by the
        groups of ``B`` / ``C``, an unknown ``mode``, ``checkpoint_chunks < 1``.
    RuntimeError
        Non-floating inputs.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> u = cygrad.ones(1, 1, 3)
    >>> A = cygrad.tensor([[-1.0]])
    >>> B = cygrad.ones(1, 1, 3)
    >>> C = cygrad.ones(1, 1, 3)
    >>> delta = cygrad.full((1, 1, 3), 0.5)
    >>> F.selective_scan(u, delta, A, B, C)
    tensor([[[0.5000, 0.8033, 0.9872]]])
    >>> out, last = F.selective_scan(u, delta, A, B, C, return_last_state=True)
    >>> last
    tensor([[[0.9872]]])
    """
    if mode not in ("sequential", "parallel"):
        raise ValueError(f"selective_scan(): mode must be 'sequential' or 'parallel', got {mode!r}")
    spec = _validate(u, delta, A, B, C, D, z, delta_bias, None)
    softplus = bool(delta_softplus)
    if checkpoint_chunks is not None:
        if isinstance(checkpoint_chunks, bool) or not isinstance(checkpoint_chunks, int) or checkpoint_chunks < 1:
            raise ValueError(f"selective_scan(): checkpoint_chunks must be a positive integer, "
                             f"got {checkpoint_chunks!r}")
        out, last = _scan_checkpointed(u, delta, A, B, C, D, z, delta_bias, softplus, spec, mode,
                                       checkpoint_chunks)
        if last is None:  # L == 0
            from .._creation import zeros
            last = zeros((spec.batch, spec.dim, spec.n), dtype=out.dtype)
    elif mode == "parallel":
        out, last = _scan_once(u, delta, A, B, C, D, z, delta_bias, softplus, None, spec, mode)
    else:
        res = SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, None, spec, softplus,
                                  bool(return_last_state), _CHUNK)
        return res
    return (out, last) if return_last_state else out


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One step of the selective scan for recurrent inference; updates ``state`` in place.

    With ``dt = softplus(dt + dt_bias)`` (bias and softplus optional)::

        state = exp(dt * A) * state + dt * B * x
        out   = (sum_n C * state + D * x) * silu(z)

    the same as one step of :func:`selective_scan` started from ``state``.

    Parameters
    ----------
    state : Tensor
        ``(batch, d, n)``; overwritten with the new state (not recorded by autograd).
    x, dt : Tensor
        ``(batch, d)``.
    A : Tensor
        ``(d, n)``.
    B, C : Tensor
        ``(batch, n)``, or grouped ``(batch, g, n)`` (channel ``c`` uses group ``c // (d / g)``).
    D : Tensor, optional
        ``(d,)``.
    z : Tensor, optional
        ``(batch, d)``.
    dt_bias : Tensor, optional
        ``(d,)``.
    dt_softplus : bool, default False

    Returns
    -------
    Tensor
        ``out``, ``(batch, d)``; differentiable with respect to every input (``state``
        through its value before the update).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> state = cygrad.zeros(1, 1, 1)
    >>> A = cygrad.tensor([[-1.0]])
    >>> x, dt, B, C = cygrad.ones(1, 1), cygrad.full((1, 1), 0.5), cygrad.ones(1, 1), cygrad.ones(1, 1)
    >>> F.selective_state_update(state, x, dt, A, B, C)
    tensor([[0.5000]])
    >>> F.selective_state_update(state, x, dt, A, B, C)
    tensor([[0.8033]])
    >>> state
    tensor([[[0.8033]]])
    """
    fn = "selective_state_update"
    for name, t in (("state", state), ("x", x), ("dt", dt), ("A", A), ("B", B), ("C", C)):
        _check_tensor(t, name, fn)
    for name, t in (("D", D), ("z", z), ("dt_bias", dt_bias)):
        if t is not None:
            _check_tensor(t, name, fn)
    if state.dim() != 3:
        raise ValueError(f"{fn}(): state must be 3-D (batch, d, n), got shape {_shape(state)}")
    batch, dim, n = _shape(state)
    if _shape(x) != (batch, dim):
        raise ValueError(f"{fn}(): x must have shape (batch, d) = {(batch, dim)} (state: {_shape(state)}), "
                         f"got {_shape(x)}")
    if _shape(dt) != (batch, dim):
        raise ValueError(f"{fn}(): dt must have shape (batch, d) = {(batch, dim)} (state: {_shape(state)}), "
                         f"got {_shape(dt)}")
    if z is not None and _shape(z) != (batch, dim):
        raise ValueError(f"{fn}(): z must have shape (batch, d) = {(batch, dim)} (state: {_shape(state)}), "
                         f"got {_shape(z)}")
    if _shape(A) != (dim, n):
        raise ValueError(f"{fn}(): A must have shape (d, n) = {(dim, n)} (state: {_shape(state)}), "
                         f"got {_shape(A)}")

    def step_bc(t, name):
        s = _shape(t)
        if t.dim() == 2 and s == (batch, n):
            return t[..., None]
        if t.dim() == 3 and s[0] == batch and s[2] == n:
            if s[1] < 1 or dim % s[1] != 0:
                raise ValueError(f"{fn}(): the channels d = {dim} of state {_shape(state)} must be divisible "
                                 f"by the groups of {name} {s} (groups = {s[1]})")
            return t[..., None]
        raise ValueError(f"{fn}(): {name} must have shape (batch, n) = {(batch, n)} or (batch, groups, n), "
                         f"got {s} (state: {_shape(state)})")

    Bs, Cs = step_bc(B, "B"), step_bc(C, "C")
    u3, d3 = x[..., None], dt[..., None]
    z3 = z[..., None] if z is not None else None
    spec = _validate(u3, d3, A, Bs, Cs, D, z3, dt_bias, None, fn)
    # the kernel reads a snapshot: ``state`` itself is overwritten below
    h0 = state.clone() if (state._requires_grad and _gm.enabled) else Tensor._make(state._data.copy())
    out, last = SelectiveScan.apply(u3, d3, A, Bs, Cs, D, z3, dt_bias, h0, spec, bool(dt_softplus), True, _CHUNK)
    with no_grad():
        state.copy_(last.detach())
    return out[..., 0]
