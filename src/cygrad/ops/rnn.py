"""Recurrent layers' kernels: RNN/LSTM/GRU forward and backpropagation through time over ``_C.rnn``.

Every layer and direction is one autograd ``Function`` (:class:`RecurrentLayer`):

- forward: the input projection ``x @ W_ih^T + b`` of all time steps is one matrix product, then
  one kernel call (``_C.rnn.recurrent_forward``) runs the recurrence, one recurrent product and
  one fused gate loop per step, and keeps the gate activations for backward;
- backward: one kernel call (``recurrent_backward``) runs backpropagation through time and
  leaves the gradients of the gate pre-activations of all steps, from which ``dW_ih``,
  ``dW_hh`` (and ``dW_hr``) are each one matrix product and the biases one column sum.

Sequences are handled in the packed, time-major layout of ``PackedSequence.data``: step ``t``
owns the next ``batch_sizes[t]`` rows, and ``batch_sizes`` is non-increasing (a padded batch of
equal lengths is ``batch_sizes = [B] * T``). The states of sequences that have ended (or, in a
reverse layer, not yet started) stay frozen, so the final states are taken at each sequence's
own length.

With ``create_graph=True`` the backward recomputes the layer with differentiable tensor ops
(one Python step per time step) and differentiates that, so higher-order gradients work.
"""
from functools import lru_cache

import numpy as np

from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import rnn as K
from .linalg import matmul
from .shape import cat, stack
from .nn_misc import dropout as _dropout

__all__ = []

MODES = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}
_GATES = {0: 1, 1: 1, 2: 4, 3: 3}
_EMPTY2 = {np.dtype(np.float32): np.zeros((0, 0), np.float32), np.dtype(np.float64): np.zeros((0, 0))}
_EMPTY1 = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0)}


class _Plan:
    """Row bookkeeping of one direction over a packed batch (see the module docstring).

    ``prev[r]``: row of the state buffer (B initial states + N outputs) that row ``r`` starts
    from; ``final[b]``: output row holding sequence ``b``'s final state; ``out_off`` / ``h0_off``:
    where outputs / initial states sit in the state buffer.
    """

    __slots__ = ("bs", "off", "T", "B", "N", "reverse", "prev", "final", "out_off", "h0_off",
                 "prev_start")

    def __init__(self, bs, reverse):
        bs = np.asarray(bs, dtype=np.int64)
        T, B, N = len(bs), int(bs[0]), int(bs.sum())
        off = np.zeros(T, np.int64)
        np.cumsum(bs[:-1], out=off[1:])
        t_idx = np.repeat(np.arange(T), bs)
        b_idx = np.arange(N, dtype=np.int64) - off[t_idx]
        if not reverse:     # state buffer [h0; out]
            out_off, h0_off = B, 0
            prev = np.where(t_idx == 0, b_idx, B + off[np.maximum(t_idx - 1, 0)] + b_idx)
            lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1)
            final = off[lengths - 1] + np.arange(B)
        else:               # state buffer [out; h0]
            out_off, h0_off = 0, N
            next_bs = np.append(bs[1:], 0)
            cont = b_idx < next_bs[t_idx]
            prev = np.where(cont, off[np.minimum(t_idx + 1, T - 1)] + b_idx, N + b_idx)
            final = np.arange(B, dtype=np.int64)
        self.bs, self.off, self.T, self.B, self.N, self.reverse = bs, off, T, B, N, reverse
        self.prev = np.ascontiguousarray(prev, dtype=np.int64)
        self.final = np.ascontiguousarray(final, dtype=np.int64)
        self.out_off, self.h0_off = out_off, h0_off
        contiguous = N == 1 or bool(np.all(np.diff(self.prev) == 1))
        self.prev_start = int(self.prev[0]) if contiguous else None


@lru_cache(maxsize=128)
def _plan_cached(bs, reverse):
    return _Plan(np.array(bs, dtype=np.int64), reverse)


def make_plan(batch_sizes, reverse):
    """The :class:`_Plan` of one direction for ``batch_sizes`` (cached)."""
    return _plan_cached(tuple(int(b) for b in batch_sizes), bool(reverse))


def _arr(t, dt):
    return None if t is None else np.ascontiguousarray(t._data, dtype=dt)


class _Alias(Function):
    """Identity with its own graph node (used to cut a recomputed graph at a layer's inputs)."""

    _builtin = True

    @staticmethod
    def forward(ctx, x):
        return x._data

    @staticmethod
    def backward(ctx, g):
        return g


class RecurrentLayer(Function):
    """One recurrent layer in one direction over a packed sequence.

    ``apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, plan)`` with ``x`` (N, I), ``h0``
    (B, Hh), ``c0`` (B, H) for LSTM (else None), biases and ``w_hr`` optional. Returns
    ``(out (N, Hh), h_n (B, Hh))`` and, for LSTM, ``c_n (B, H)``.
    """

    _builtin = True

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, plan):
        xd = np.ascontiguousarray(x._data)
        dt = xd.dtype
        N, B = plan.N, plan.B
        ng, Hh = w_hh._data.shape
        H = ng // _GATES[mode]
        e2, e1 = _EMPTY2[dt], _EMPTY1[dt]
        wih, whh, whr = _arr(w_ih, dt), _arr(w_hh, dt), _arr(w_hr, dt)

        gates = np.empty((N, ng), dt)
        b_hn = e1
        if b_ih is not None:
            if mode == 3:   # GRU: b_hn stays inside r * (W_hn h + b_hn)
                gates[:] = b_ih._data
                gates[:, :2 * H] += b_hh._data[:2 * H]
                b_hn = np.ascontiguousarray(b_hh._data[2 * H:], dtype=dt)
            else:
                gates[:] = b_ih._data + b_hh._data
        elif mode == 3:
            b_hn = np.zeros(H, dt)
        K.matmul_panels(xd, wih, gates, False, True, 0.0 if b_ih is None else 1.0)

        hbuf = np.empty((N + B, Hh), dt)
        hbuf[plan.h0_off:plan.h0_off + B] = h0._data
        lstm, proj = mode == 2, w_hr is not None
        if lstm:
            cbuf = np.empty((N + B, H), dt)
            cbuf[plan.h0_off:plan.h0_off + B] = c0._data
            tc = np.empty((N, H), dt)
        else:
            cbuf = tc = e2
        mbuf = np.empty((N, H), dt) if proj else e2
        hn = np.empty((N, H), dt) if mode == 3 else e2
        K.recurrent_forward(mode, gates, hbuf, cbuf, tc, mbuf, hn, whh, b_hn, whr if proj else e2,
                            plan.bs, plan.prev, plan.out_off, plan.reverse)

        out = hbuf[plan.out_off:plan.out_off + N]
        h_n = hbuf[plan.out_off + plan.final]
        ctx.mode, ctx.plan = mode, plan
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, out, gates, hbuf, cbuf, tc,
                              mbuf, hn)
        if lstm:
            return out, h_n, cbuf[plan.out_off + plan.final]
        return out, h_n

    @staticmethod
    def backward(ctx, g_out, g_hn, g_cn=None):
        saved = ctx.saved_tensors
        mode, plan = ctx.mode, ctx.plan
        if state.enabled:   # differentiable path (create_graph=True)
            return _composite_backward(ctx, saved[:8], (g_out, g_hn) + ((g_cn,) if mode == 2 else ()))
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = saved[:8]
        _, gates, hbuf, cbuf, tc, mbuf, hn = (s._data for s in saved[8:])
        dt = gates.dtype
        N, B = plan.N, plan.B
        ng, Hh = w_hh._data.shape
        e2 = _EMPTY2[dt]
        proj = w_hr is not None
        whh = _arr(w_hh, dt)
        dout = np.ascontiguousarray(g_out._data, dtype=dt)
        dh = np.array(g_hn._data, dtype=dt, order="C")
        dc = np.array(g_cn._data, dtype=dt, order="C") if mode == 2 else e2
        dgates = np.empty((N, ng), dt)
        dgates_h = np.empty((N, ng), dt) if mode == 3 else e2
        dht = np.empty((N, Hh), dt) if proj else e2
        K.recurrent_backward(mode, gates, hbuf, cbuf, tc, hn, whh, _arr(w_hr, dt) if proj else e2,
                             dout, dh, dc, dgates, dgates_h, dht, plan.bs, plan.prev, plan.out_off,
                             plan.reverse)
        dg_h = dgates_h if mode == 3 else dgates
        need = ctx.needs_input_grad
        gx = gw_ih = gw_hh = gb_ih = gb_hh = gw_hr = None
        if need[0]:
            wih = _arr(w_ih, dt)
            gxd = np.empty((N, wih.shape[1]), dt)
            K.matmul_panels(dgates, wih, gxd, False, False)
            gx = Tensor._make(gxd)
        if need[3]:
            xd = np.ascontiguousarray(x._data, dtype=dt)
            gw = np.empty((ng, xd.shape[1]), dt)
            K.matmul_panels(dgates, xd, gw, True, False)
            gw_ih = Tensor._make(gw)
        if need[4]:
            hprev = hbuf[plan.prev_start:plan.prev_start + N] if plan.prev_start is not None \
                else hbuf[plan.prev]
            gw = np.empty((ng, Hh), dt)
            K.matmul_panels(dg_h, hprev, gw, True, False)
            gw_hh = Tensor._make(gw)
        if need[5]:
            gb_ih = Tensor._make(dgates.sum(0))
        if need[6]:
            gb_hh = Tensor._make(dg_h.sum(0))
        if need[7]:
            gw = np.empty(w_hr._data.shape, dt)
            K.matmul_panels(dht, mbuf, gw, True, False)
            gw_hr = Tensor._make(gw)
        gh0 = Tensor._make(dh) if need[1] else None
        gc0 = Tensor._make(dc) if mode == 2 and need[2] else None
        return gx, gh0, gc0, gw_ih, gw_hh, gb_ih, gb_hh, gw_hr, None, None


def _composite_backward(ctx, inputs, grad_outputs):
    """Gradients of a layer recomputed with differentiable ops (for create_graph=True)."""
    from ..autograd.engine import grad as _grad
    need = ctx.needs_input_grad[:8]
    args = [(_Alias.apply(t) if n else t) if t is not None else None for t, n in zip(inputs, need)]
    outs = composite_layer(ctx.mode, *args, ctx.plan)
    targets = [a for a, n in zip(args, need) if n and a is not None]
    got = iter(_grad(outs, targets, grad_outputs, create_graph=True, allow_unused=True))
    res = [next(got) if n and a is not None else None for a, n in zip(args, need)]
    return tuple(res) + (None, None)


def composite_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, plan):
    """:class:`RecurrentLayer`'s forward written with differentiable tensor ops, step by step."""
    B, bs, off = plan.B, plan.bs, plan.off
    H = w_hh.shape[0] // _GATES[mode]
    gi = matmul(x, w_ih.t())
    if b_ih is not None:
        gi = gi + b_ih
    h, c = h0, c0
    outs = [None] * plan.T
    for t in (range(plan.T - 1, -1, -1) if plan.reverse else range(plan.T)):
        s, o = int(bs[t]), int(off[t])
        g = gi[o:o + s]
        hp = h if s == B else h[:s]
        gh = matmul(hp, w_hh.t())
        if b_hh is not None:
            gh = gh + b_hh
        if mode == 2:
            a = g + gh
            cp = c if s == B else c[:s]
            cn = a[:, H:2 * H].sigmoid() * cp + a[:, :H].sigmoid() * a[:, 2 * H:3 * H].tanh()
            hn = a[:, 3 * H:].sigmoid() * cn.tanh()
            if w_hr is not None:
                hn = matmul(hn, w_hr.t())
            c = cn if s == B else cat([cn, c[s:]], 0)
        elif mode == 3:
            r = (g[:, :H] + gh[:, :H]).sigmoid()
            z = (g[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
            n = (g[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()
            hn = n + z * (hp - n)
        else:
            a = g + gh
            hn = a.relu() if mode == 1 else a.tanh()
        h = hn if s == B else cat([hn, h[s:]], 0)
        outs[t] = hn
    out = cat(outs, 0)
    return (out, h, c) if mode == 2 else (out, h)


def _check_float(x, name):
    dt = x._data.dtype
    if dt not in _EMPTY2:
        from .. import _dtype as D
        raise RuntimeError(f"\"{name}\" not implemented for '{D.scalar_name(x.dtype)}'")


def _zeros_state(n, B, size, dt):
    return Tensor._make(np.zeros((n, B, size), dt))


def rnn_layers(mode, data, batch_sizes, hx, weights, num_layers, bidirectional, dropout, training):
    """Run a stack of recurrent layers over a packed sequence.

    Parameters
    ----------
    mode : {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"}
    data : Tensor
        (N, input_size): the rows of all time steps, step ``t`` owning the next
        ``batch_sizes[t]`` rows (``PackedSequence.data``; a padded batch flattened time-major).
    batch_sizes : array of int
        (T,), non-increasing, each >= 1.
    hx : Tensor or tuple of Tensor or None
        Initial hidden state (num_layers * num_directions, B, Hh) (for LSTM a pair (h0, c0)).
    weights : list of tuple
        Per layer and direction (forward first), ``(w_ih, w_hh, b_ih, b_hh, w_hr)``; absent
        biases / projection are None.
    num_layers, bidirectional, dropout, training
        As for ``nn.RNN``; dropout applies to the outputs of every layer but the last.

    Returns
    -------
    tuple
        ``(output, h_n)``: output (N, num_directions * Hh) and ``h_n`` (num_layers *
        num_directions, B, Hh), for LSTM a pair ``(h_n, c_n)``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.ops.rnn import rnn_layers
    >>> w = (cygrad.randn(8, 3), cygrad.randn(8, 8), None, None, None)
    >>> out, h = rnn_layers("RNN_TANH", cygrad.randn(10, 3), [5, 5], None, [w], 1, False, 0.0, False)
    >>> out.shape, h.shape
    (cygrad.Size([10, 8]), cygrad.Size([1, 5, 8]))
    """
    m = MODES[mode]
    _check_float(data, mode.lower())
    D = 2 if bidirectional else 1
    dt = data._data.dtype
    bs = np.asarray(batch_sizes, dtype=np.int64)
    B = int(bs[0]) if len(bs) else 0
    w0 = weights[0]
    Hh = w0[1].shape[1]
    H = w0[1].shape[0] // _GATES[m]
    if m == 2:
        h0, c0 = hx if hx is not None else (None, None)
    else:
        h0, c0 = hx, None
    if h0 is None:
        h0 = _zeros_state(num_layers * D, B, Hh, dt)
    if m == 2 and c0 is None:
        c0 = _zeros_state(num_layers * D, B, H, dt)
    plans = [make_plan(bs, False), make_plan(bs, True) if bidirectional else None]
    x = data
    hs, cs = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh, b_ih, b_hh, w_hr = weights[k]
            res = RecurrentLayer.apply(x, h0[k], c0[k] if m == 2 else None, w_ih, w_hh, b_ih, b_hh,
                                       w_hr, m, plans[d])
            outs.append(res[0])
            hs.append(res[1])
            if m == 2:
                cs.append(res[2])
        x = outs[0] if D == 1 else cat(outs, 1)
        if dropout > 0 and training and layer < num_layers - 1:
            x = _dropout(x, dropout, True)
    h_n = stack(hs, 0)
    return (x, (h_n, stack(cs, 0))) if m == 2 else (x, h_n)


def rnn_cell(mode, input, hx, cx, w_ih, w_hh, b_ih, b_hh):
    """One step of a recurrent cell on a batch: ``h'`` (or ``(h', c')`` for LSTM).

    Parameters
    ----------
    mode : {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"}
    input : Tensor
        (B, input_size), B >= 1.
    hx, cx : Tensor
        (B, hidden_size); ``cx`` only for LSTM (else None).
    w_ih, w_hh, b_ih, b_hh : Tensor
        The cell's parameters (biases may be None).

    Returns
    -------
    Tensor or tuple of Tensor

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.ops.rnn import rnn_cell
    >>> h = rnn_cell("GRU", cygrad.randn(4, 3), cygrad.zeros(4, 2), None, cygrad.randn(6, 3),
    ...              cygrad.randn(6, 2), None, None)
    >>> h.shape
    cygrad.Size([4, 2])
    """
    m = MODES[mode]
    _check_float(input, mode.lower() + "_cell")
    plan = make_plan([input.shape[0]], False)
    res = RecurrentLayer.apply(input, hx, cx, w_ih, w_hh, b_ih, b_hh, None, m, plan)
    return (res[0], res[2]) if m == 2 else res[0]
