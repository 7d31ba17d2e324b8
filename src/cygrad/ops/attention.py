"""Attention: scaled_dot_product_attention (fused, blocked, online softmax) over ``_C.attention``,
and multi_head_attention_forward (``torch.nn.functional``).

``scaled_dot_product_attention`` runs one fused kernel forward (flash-attention style: key blocks
with a running maximum and sum per query row, only the output and the row logsumexp are kept) and
one fused kernel backward (the probabilities recomputed block by block). Broadcast batch dimensions
and grouped-query attention (``enable_gqa``) are index maps into the inputs, never copies. When the
backward itself is recorded (``create_graph=True``), or a float mask needs a gradient, the backward
is written with tensor ops (``softmax(Q K^T * scale + mask) @ V``) so that it can be
differentiated again.
"""
import math
import warnings

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from .._random import rng
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._C import attention as K
from .activation import softmax
from .elementwise import broadcast_shapes, where
from .linalg import matmul, linear

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

# (query rows, keys) per block of the fused kernel. 64 x 64 score blocks (16 KiB in float32) stay
# in L1/L2 and make the gemms large enough for BLAS; the tests use small odd blocks.
_BLOCK = (64, 64)


# ---------------------------------------------------------------------------------------------------------------
# Argument checking and the plan of one call


def _check_tensor(x, name, pos):
    if not isinstance(x, Tensor):
        raise TypeError(f"scaled_dot_product_attention(): argument '{name}' (position {pos}) must be Tensor, "
                        f"not {type(x).__name__}")


class _Plan:
    """Shapes and index maps of one call (everything the kernels and the composite path need)."""

    __slots__ = ("out_batch", "B", "L", "S", "E", "Ev", "scale", "causal", "p", "seed", "gk", "gv",
                 "q_idx", "k_idx", "v_idx", "m_idx", "mask_add", "dt", "fused")


def _batch_index(batch_shape, out_batch, group=1):
    """For each element of ``out_batch`` (row-major), the flat index of the broadcast source element in an input
    whose batch shape is ``batch_shape``; with ``group > 1`` its last (head) axis is repeated ``group`` times."""
    n = int(np.prod(batch_shape)) if batch_shape else 1
    idx = np.arange(n, dtype=np.intp).reshape(batch_shape)
    if group > 1:
        idx = np.repeat(idx, group, axis=-1)
    return np.ascontiguousarray(np.broadcast_to(idx, out_batch), dtype=np.intp).reshape(-1)


def _as_kernel_3d(a, rows, cols):
    """``a`` (..., rows, cols) as a (n, rows, cols) array the kernel accepts (a view when possible)."""
    a3 = a.reshape((-1, rows, cols))
    it = a3.itemsize
    s1, s2 = a3.strides[1], a3.strides[2]
    if (cols > 1 and s2 != it) or (rows > 1 and (s1 % it or s1 < max(cols, 1) * it)):
        a3 = np.ascontiguousarray(a3)
    return a3


def _plan(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    for x, name, pos in ((query, "query", 1), (key, "key", 2), (value, "value", 3)):
        _check_tensor(x, name, pos)
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        raise TypeError(f"scaled_dot_product_attention(): argument 'attn_mask' must be Tensor, "
                        f"not {type(attn_mask).__name__}")
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    qd, kd, vd = query._data, key._data, value._data
    if qd.ndim < 2 or kd.ndim < 2 or vd.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{qd.ndim} key.dim: {kd.ndim} and value.dim: {vd.ndim} instead.")
    if not (qd.dtype == kd.dtype == vd.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{D.c_name(query.dtype)} key.dtype: {D.c_name(key.dtype)} and value.dtype: "
                           f"{D.c_name(value.dtype)} instead.")
    if qd.dtype.kind != "f":
        raise RuntimeError(f"\"scaled_dot_product_attention\" not implemented for '{D.scalar_name(query.dtype)}'")
    if attn_mask is not None:
        md = attn_mask._data.dtype
        if not (md == np.bool_ or md == np.float32 or md == qd.dtype):
            raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                               f"attn_mask.dtype: {D.c_name(attn_mask.dtype)} and  query.dtype: "
                               f"{D.c_name(query.dtype)} instead.")
    dropout_p = float(dropout_p)
    if dropout_p > 1.0 or math.isnan(dropout_p):
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p:g}")
    L, E = qd.shape[-2:]
    S, Ek = kd.shape[-2:]
    Sv, Ev = vd.shape[-2:]
    if Ek != E:
        raise RuntimeError(f"scaled_dot_product_attention: query {list(qd.shape)} and key {list(kd.shape)} must have "
                           f"the same last dimension (embedding size)")
    if Sv != S:
        raise RuntimeError(f"scaled_dot_product_attention: key {list(kd.shape)} and value {list(vd.shape)} must have "
                           f"the same sequence length (dimension -2)")
    qb, kb, vb = qd.shape[:-2], kd.shape[:-2], vd.shape[:-2]
    gk = gv = 1
    if enable_gqa:
        for a, name in ((qd, "query"), (kd, "key"), (vd, "value")):
            if a.ndim < 3:
                raise IndexError(f"Dimension out of range (expected to be in range of [-2, 1], but got -3) "
                                 f"({name} has shape {list(a.shape)}: enable_gqa needs a head dimension -3)")
        hq, hk, hv = qb[-1], kb[-1], vb[-1]
        if hk == 0 or hv == 0 or hq % hk or hq % hv:
            raise RuntimeError(f"Number of heads in key and value must divide the number of heads in query, got "
                               f"query {list(qd.shape)}, key {list(kd.shape)}, value {list(vd.shape)}")
        gk, gv = (hq // hk if hk else 1), (hq // hv if hv else 1)
        out_batch = tuple(broadcast_shapes(qb[:-1], kb[:-1], vb[:-1])) + (hq,)
    else:
        out_batch = tuple(broadcast_shapes(qb, kb, vb))
    plan = _Plan()
    plan.out_batch, plan.L, plan.S, plan.E, plan.Ev = out_batch, L, S, E, Ev
    plan.B = int(np.prod(out_batch)) if out_batch else 1
    plan.scale = (1.0 / math.sqrt(E) if E else math.inf) if scale is None else float(scale)
    plan.causal = bool(is_causal)
    plan.p = max(dropout_p, 0.0)
    plan.gk, plan.gv = gk, gv
    plan.dt = np.dtype(np.float32) if qd.dtype.itemsize < 4 else qd.dtype   # float16: computed in float32
    plan.seed = int(rng().integers(0, 2 ** 63)) if plan.p > 0.0 else 0
    plan.mask_add = None
    if attn_mask is not None:
        md = attn_mask._data
        full = out_batch + (L, S)
        try:
            ok = tuple(np.broadcast_shapes(md.shape, full)) == full
        except ValueError:
            broadcast_shapes(md.shape, full)       # raises torch's message
            ok = False
        if not ok:
            raise RuntimeError(f"output with shape {list(full)} doesn't match the broadcast shape "
                               f"{list(np.broadcast_shapes(md.shape, full))} (attn_mask {list(md.shape)}, query "
                               f"{list(qd.shape)}, key {list(kd.shape)}, value {list(vd.shape)})")
        if md.dtype == np.bool_:
            add = np.where(md, plan.dt.type(0), plan.dt.type(-np.inf))
        else:
            add = md.astype(plan.dt, copy=False)
        plan.mask_add = add.reshape((1,) * max(0, 2 - add.ndim) + add.shape)
    plan.fused = plan.B > 0 and L > 0 and S > 0 and E > 0 and Ev > 0 and plan.p < 1.0
    return plan


def _kernel_args(plan, q, k, v):
    """The (n, rows, cols) arrays and index maps of the kernels."""
    dt, ob = plan.dt, plan.out_batch
    qd, kd, vd = (x._data.astype(dt, copy=False) for x in (q, k, v))
    q3 = _as_kernel_3d(qd, plan.L, plan.E)
    k3 = _as_kernel_3d(kd, plan.S, plan.E)
    v3 = _as_kernel_3d(vd, plan.S, plan.Ev)
    qi = _batch_index(qd.shape[:-2], ob)
    ki = _batch_index(kd.shape[:-2], ob, plan.gk)
    vi = _batch_index(vd.shape[:-2], ob, plan.gv)
    if plan.mask_add is not None:
        ma = plan.mask_add
        m3 = ma.reshape((-1,) + ma.shape[-2:])
        m3 = np.broadcast_to(m3, (m3.shape[0], plan.L, plan.S))
        mi = _batch_index(ma.shape[:-2], ob)
        has = True
    else:
        m3 = np.zeros((1, 1, 1), dt)
        mi = np.zeros(plan.B, np.intp)
        has = False
    return q3, k3, v3, m3, has, qi, ki, vi, mi


# ---------------------------------------------------------------------------------------------------------------
# The composite (differentiable, tensor-op) form


def _repeat_heads(x, g):
    """Repeat the head axis (-3) of ``x`` ``g`` times, each head in place (``repeat_interleave``)."""
    if g == 1:
        return x
    s = tuple(x.shape)
    return x.unsqueeze(-3).expand(*s[:-2], g, *s[-2:]).reshape(*s[:-3], s[-3] * g, *s[-2:])


def _sum_heads(x, g):
    """Adjoint of ``_repeat_heads``: sum each group of ``g`` consecutive heads."""
    if g == 1:
        return x
    s = tuple(x.shape)
    return x.reshape(*s[:-3], s[-3] // g, g, *s[-2:]).sum(-3)


def _causal_keep(L, S):
    return np.tril(np.ones((L, S), dtype=np.bool_))


def _probs(plan, q, k, mask):
    """P = softmax(q k^T * scale + mask) as tensor ops; rows without any key give P = 0 (torch's CPU result)."""
    dt = plan.dt
    if q._data.dtype != dt:
        q, k = q.to(D.to_dtype(dt)), k.to(D.to_dtype(dt))
    kr = _repeat_heads(k, plan.gk)
    s = matmul(q * plan.scale, kr.mT)
    if mask is not None:
        s = s + mask
    if plan.causal:
        s = where(Tensor._make(_causal_keep(plan.L, plan.S)), s, -math.inf)
    if plan.S == 0:
        return s
    empty = np.all(s._data == -np.inf, axis=-1, keepdims=True)
    if empty.any():
        e = Tensor._make(empty)
        return where(e, 0.0, softmax(where(e, 0.0, s), -1))
    return softmax(s, -1)


def _dropout_scale(plan):
    """The dropout factors the fused kernel applied (keep / (1 - p), or 0), shaped like the scores."""
    full = plan.out_batch + (plan.L, plan.S)
    if plan.p >= 1.0:
        m = np.zeros(full, plan.dt)
    else:
        m = np.empty((plan.B, plan.L, plan.S), plan.dt)
        K.sdpa_dropout_mask(m, plan.p, plan.seed)
    return Tensor._make(m.reshape(full))


def _mask_tensor(plan, attn_mask):
    """The additive mask as a tensor: the user's float mask (differentiable) or the converted bool mask."""
    if attn_mask is not None and attn_mask._data.dtype != np.bool_:
        return attn_mask if attn_mask._data.dtype == plan.dt else attn_mask.to(D.to_dtype(plan.dt))
    if plan.mask_add is not None:
        return Tensor._make(plan.mask_add)
    return None


def _composite_forward(plan, q, k, v, attn_mask):
    p = _probs(plan, q, k, _mask_tensor(plan, attn_mask))
    if plan.p > 0.0:
        p = p * _dropout_scale(plan)
    vr = _repeat_heads(v if v._data.dtype == plan.dt else v.to(D.to_dtype(plan.dt)), plan.gv)
    out = matmul(p, vr)
    if out._data.dtype != q._data.dtype:
        out = out.to(q.dtype)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The fused Function


class ScaledDotProductAttention(Function):
    """``softmax(Q K^T * scale + mask) @ V`` over the fused kernels (inputs: q, k, v, mask or None)."""

    _builtin = True
    _node_name_override = "ScaledDotProductFlashAttentionForCpuBackward0"

    @staticmethod
    def forward(ctx, q, k, v, mask, plan):
        q3, k3, v3, m3, has, qi, ki, vi, mi = _kernel_args(plan, q, k, v)
        out = np.empty((plan.B, plan.L, plan.Ev), plan.dt)
        lse = np.empty((plan.B, plan.L), np.float64)
        bq, bk = _BLOCK
        K.sdpa_forward(q3, k3, v3, m3, has, qi, ki, vi, mi, out, lse, plan.scale, plan.causal, plan.p, plan.seed,
                       bq, bk)
        res = out.reshape(plan.out_batch + (plan.L, plan.Ev))
        if res.dtype != q._data.dtype:
            res = res.astype(q._data.dtype)
        ctx.plan = plan
        ctx.lse = lse
        ctx.save_for_backward(q, k, v, mask, res)
        return res

    @staticmethod
    def backward(ctx, g):
        q, k, v, mask, out = ctx.saved_tensors
        plan = ctx.plan
        need = ctx.needs_input_grad
        if state.enabled or need[3]:
            return _composite_backward(plan, q, k, v, mask, g, need)
        dt = plan.dt
        B, L, S, E, Ev = plan.B, plan.L, plan.S, plan.E, plan.Ev
        q3, k3, v3, m3, has, qi, ki, vi, mi = _kernel_args(plan, q, k, v)
        o3 = np.ascontiguousarray(out._data.reshape(B, L, Ev), dtype=dt)
        g3 = np.ascontiguousarray(np.broadcast_to(g._data, out._data.shape).reshape(B, L, Ev), dtype=dt)
        dq = np.empty((B, L, E), dt)
        dk = np.empty((B, S, E), dt)
        dv = np.empty((B, S, Ev), dt)
        bq, bk = _BLOCK
        K.sdpa_backward(q3, k3, v3, m3, has, qi, ki, vi, mi, o3, g3, ctx.lse, dq, dk, dv, plan.scale, plan.causal,
                        plan.p, plan.seed, bq, bk)
        ob = plan.out_batch
        gq = Tensor._make(dq.reshape(ob + (L, E))) if need[0] else None
        gk = Tensor._make(_sum_heads_np(dk.reshape(ob + (S, E)), plan.gk)) if need[1] else None
        gv = Tensor._make(_sum_heads_np(dv.reshape(ob + (S, Ev)), plan.gv)) if need[2] else None
        return gq, gk, gv, None, None


def _sum_heads_np(a, g):
    if g == 1:
        return a
    s = a.shape
    return a.reshape(s[:-3] + (s[-3] // g, g) + s[-2:]).sum(-3)


def _composite_backward(plan, q, k, v, mask, g, need):
    """The backward with tensor ops (recorded when create_graph=True): P recomputed from q, k and the mask."""
    dt = D.to_dtype(plan.dt)
    if g._data.dtype != plan.dt:
        g = g.to(dt)
    p = _probs(plan, q, k, _mask_tensor(plan, mask))
    drop = _dropout_scale(plan) if plan.p > 0.0 else None
    pd = p * drop if drop is not None else p
    vc = v if v._data.dtype == plan.dt else v.to(dt)
    qc = q if q._data.dtype == plan.dt else q.to(dt)
    kc = k if k._data.dtype == plan.dt else k.to(dt)
    dp = matmul(g, _repeat_heads(vc, plan.gv).mT)
    if drop is not None:
        dp = dp * drop
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    gq = matmul(ds, _repeat_heads(kc, plan.gk)) * plan.scale if need[0] else None
    gk = _sum_heads(matmul(ds.mT, qc), plan.gk) * plan.scale if need[1] else None
    gv = _sum_heads(matmul(pd.mT, g), plan.gv) if need[2] else None
    gm = ds if need[3] else None
    return gq, gk, gv, gm, None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """Scaled dot-product attention: ``softmax(query @ key^T * scale + mask) @ value``.

    One fused kernel: query rows in blocks, keys in blocks with an online softmax (running row
    maximum and sum, flash-attention style), so the (L, S) score matrix is never stored; the
    backward recomputes it block by block from the saved output and row logsumexp.

    Parameters
    ----------
    query : Tensor
        ``(..., L, E)``.
    key : Tensor
        ``(..., S, E)``.
    value : Tensor
        ``(..., S, Ev)``. The batch dimensions ``...`` of the three broadcast.
    attn_mask : Tensor, optional
        Broadcastable to ``(..., L, S)`` (without enlarging the output): bool (True = the key
        takes part) or float (added to the scores, ``-inf`` hides a key). A float mask that
        requires grad gets a gradient.
    dropout_p : float
        Probability of zeroing an attention weight (the rest are scaled by ``1 / (1 - p)``),
        drawn from cygrad's default generator. Applied whenever ``dropout_p > 0``.
    is_causal : bool
        Query ``i`` attends to keys ``j <= i`` (top-left aligned, like ``torch.ones(L, S).tril()``).
        An error if ``attn_mask`` is also given.
    scale : float, optional
        Multiplies ``query @ key^T``; ``1 / sqrt(E)`` by default.
    enable_gqa : bool
        Grouped-query attention: key and value may have fewer heads (dimension -3) than query,
        each shared by ``Hq // Hkv`` consecutive query heads.

    Returns
    -------
    Tensor
        ``(..., L, Ev)``. A query row that sees no key (all masked) gives zeros, as torch on CPU.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> q = cygrad.ones(2, 4, 3, 8)
    >>> k = cygrad.ones(2, 4, 5, 8)
    >>> v = cygrad.arange(5.0).reshape(5, 1).expand(2, 4, 5, 2)
    >>> F.scaled_dot_product_attention(q, k, v).shape
    cygrad.Size([2, 4, 3, 2])
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0]
    tensor([[0.0000, 0.0000],
            [0.5000, 0.5000],
            [1.0000, 1.0000]])
    """
    plan = _plan(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    if not plan.fused:
        return _composite_forward(plan, query, key, value, attn_mask)
    return ScaledDotProductAttention.apply(query, key, value, attn_mask if attn_mask is not None and
                                           attn_mask._data.dtype != np.bool_ else None, plan)


# ---------------------------------------------------------------------------------------------------------------
# multi_head_attention_forward


def _none_or_dtype(x):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x.dtype
    raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")


def _canonical_mask(mask, mask_name, other_type, other_name, target_type, check_other=True):
    """A bool mask (True = masked out) as an additive float mask of ``target_type`` (0 / -inf); float masks as is."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{mask_name} must be a Tensor, not {type(mask).__name__}")
    kind = mask._data.dtype
    if kind != np.bool_ and kind.kind != "f":
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if check_other and other_type is not None and mask.dtype != other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                      "instead.", stacklevel=3)
    if kind == np.bool_:
        tdt = D.to_dtype(target_type).np
        return Tensor._make(np.where(mask._data, tdt.type(-np.inf), tdt.type(0)))
    return mask


def _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads):
    qn = query.dim()
    if qn == 3:
        if key.dim() != 3 or value.dim() != 3:
            raise AssertionError(f"For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                                 f"{key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.dim() != 2:
            raise AssertionError(f"For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                                 f"found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None and attn_mask.dim() not in (2, 3):
            raise AssertionError(f"For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                                 f"found {attn_mask.dim()}-D tensor instead")
        return True
    if qn == 2:
        if key.dim() != 2 or value.dim() != 2:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                                 f"{key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.dim() != 1:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                                 f"found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None:
            if attn_mask.dim() not in (2, 3):
                raise AssertionError(f"For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                                     f"but found {attn_mask.dim()}-D tensor instead")
            if attn_mask.dim() == 3:
                expected = (num_heads, query.shape[0], key.shape[0])
                if tuple(attn_mask.shape) != expected:
                    raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got "
                                         f"{tuple(attn_mask.shape)}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {qn}-D query tensor")


def _in_projection_packed(q, k, v, w, b):
    E = q.shape[-1]
    if k is v and q is k:
        proj = linear(q, w, b)
        return tuple(proj.unflatten(-1, (3, E)).unbind(-2))
    wq, wk, wv = w.chunk(3)
    bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
    if k is v:
        kv = linear(k, w[E:], None if b is None else b[E:])
        return (linear(q, wq, bq),) + tuple(kv.unflatten(-1, (2, E)).unbind(-2))
    return linear(q, wq, bq), linear(k, wk, bk), linear(v, wv, bv)


def _in_projection(q, k, v, w_q, w_k, w_v, b_q, b_k, b_v):
    Eq, Ek, Ev = q.shape[-1], k.shape[-1], v.shape[-1]
    for w, shape, name in ((w_q, (Eq, Eq), "query"), (w_k, (Eq, Ek), "key"), (w_v, (Eq, Ev), "value")):
        if tuple(w.shape) != shape:
            raise AssertionError(f"expecting {name} weights shape of {shape}, but got {tuple(w.shape)}")
    for bb, name in ((b_q, "query"), (b_k, "key"), (b_v, "value")):
        if bb is not None and tuple(bb.shape) != (Eq,):
            raise AssertionError(f"expecting {name} bias shape of {(Eq,)}, but got {tuple(bb.shape)}")
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """The functional form of ``nn.MultiheadAttention`` (sequence-first layout).

    Parameters
    ----------
    query, key, value : Tensor
        ``(L, N, E)``, ``(S, N, kdim)``, ``(S, N, vdim)``, or unbatched ``(L, E)``, ``(S, kdim)``,
        ``(S, vdim)``.
    embed_dim_to_check, num_heads : int
        The embedding size ``E`` (checked against ``query``) and the number of heads.
    in_proj_weight, in_proj_bias : Tensor or None
        The packed ``(3E, E)`` projection (unless ``use_separate_proj_weight``) and its ``(3E,)`` bias.
    bias_k, bias_v : Tensor or None
        ``(1, 1, E)`` rows appended to the projected keys and values.
    add_zero_attn : bool
        Append a zero key and value after the projection.
    dropout_p : float
        Dropout on the attention weights (only when ``training``).
    out_proj_weight, out_proj_bias : Tensor
        The output projection.
    training : bool
        Apply dropout.
    key_padding_mask : Tensor, optional
        ``(N, S)`` (``(S,)`` unbatched); bool True = ignore that key, or a float mask added to the scores.
    need_weights : bool
        Also return the attention weights (computed explicitly, without the fused kernel).
    attn_mask : Tensor, optional
        ``(L, S)`` or ``(N * num_heads, L, S)``; bool True = not allowed to attend, or float added.
    use_separate_proj_weight : bool
        Use ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` instead of ``in_proj_weight``.
    q_proj_weight, k_proj_weight, v_proj_weight : Tensor, optional
        ``(E, E)``, ``(E, kdim)``, ``(E, vdim)``.
    static_k, static_v : Tensor, optional
        ``(N * num_heads, S, E / num_heads)`` projected keys / values used as they are.
    average_attn_weights : bool
        Average the returned weights over the heads.
    is_causal : bool
        A hint that ``attn_mask`` is the causal mask (it must be given).

    Returns
    -------
    tuple of (Tensor, Tensor or None)
        The output ``(L, N, E)`` (``(L, E)`` unbatched) and the weights ``(N, L, S)`` (or
        ``(N, num_heads, L, S)`` without averaging), or None when not ``need_weights``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> x = cygrad.randn(5, 2, 8)
    >>> w, b = cygrad.randn(24, 8), cygrad.zeros(24)
    >>> out, weights = F.multi_head_attention_forward(x, x, x, 8, 2, w, b, None, None, False, 0.0,
    ...                                               cygrad.randn(8, 8), cygrad.zeros(8))
    >>> out.shape, weights.shape
    (cygrad.Size([5, 2, 8]), cygrad.Size([2, 5, 5]))
    """
    is_batched = _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", _none_or_dtype(attn_mask), "attn_mask",
                                       query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None          # the fused kernel's causal path replaces the mask
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                                 f"{tuple(value.shape[:2])}")
    elif tuple(key.shape) != tuple(value.shape):
        raise AssertionError(f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")

    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)
    else:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is True but q_proj_weight, k_proj_weight or v_proj_weight "
                                 "is None")
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = in_proj_bias.chunk(3)
        q, k, v = _in_projection(query, key, value, q_proj_weight, k_proj_weight, v_proj_weight, bq, bk, bv)

    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")

    from .shape import cat, pad
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key." if static_k is not None else
                                 "bias cannot be added to static value.")
        k = cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = cat([v, bias_v.expand(1, bsz, embed_dim)])
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    elif bias_k is not None:
        raise AssertionError("bias_k is set but bias_v is None")
    elif bias_v is not None:
        raise AssertionError("bias_v is set but bias_k is None")

    def heads(t, static, name):
        """(L, B, E) -> (B * heads, L, head_dim), or the given static_k / static_v (checked)."""
        if static is None:
            return t.reshape(t.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
        if static.size(0) != bsz * num_heads:
            raise AssertionError(f"expecting {name}.size(0) of {bsz * num_heads}, but got {static.size(0)}")
        if static.size(2) != head_dim:
            raise AssertionError(f"expecting {name}.size(2) of {head_dim}, but got {static.size(2)}")
        return static

    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = heads(k, static_k, "static_k")
    v = heads(v, static_v, "static_v")

    if add_zero_attn:
        zshape = (bsz * num_heads, 1, head_dim)
        k = cat([k, Tensor._make(np.zeros(zshape, k._data.dtype))], 1)
        v = cat([v, Tensor._make(np.zeros(zshape, v._data.dtype))], 1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))

    src_len = k.shape[1]
    if key_padding_mask is not None:
        if key_padding_mask.shape[0] != bsz:
            raise AssertionError(f"Expected key_padded_mask.shape[0] to be {bsz}, but got {key_padding_mask.shape[0]}")
        if key_padding_mask.shape[1] != src_len:
            raise AssertionError(f"Expected key_padded_mask.shape[1] to be {src_len}, but got "
                                 f"{key_padding_mask.shape[1]}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(-1, num_heads, -1, -1)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm

    if not training:
        dropout_p = 0.0

    if need_weights:
        from .linalg import bmm
        from .nn_misc import dropout as _dropout
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        if is_causal and attn_mask is None:
            raise AssertionError("FIXME: is_causal not implemented for need_weights")
        w = bmm(q_scaled, k.transpose(-2, -1))
        if attn_mask is not None:
            w = attn_mask + w
        w = softmax(w, -1)
        if dropout_p > 0.0:
            w = _dropout(w, p=dropout_p)
        out = bmm(w, v)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
        w = w.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            w = w.mean(1)
        if not is_batched:
            out, w = out.squeeze(1), w.squeeze(0)
        return out, w

    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    if not is_batched:
        out = out.squeeze(1)
    return out, None
