"""Attention: scaled_dot_product_attention (fused kernel vs NumPy reference, torch, gradcheck, threads, errors),
MultiheadAttention, TransformerEncoderLayer and TransformerEncoder (vs torch with copied weights)."""
import math
import warnings

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from cygrad._C import attention as K
from cygrad.ops import attention as A
from conftest import assert_close, compare, gradcheck, gradgradcheck, randn, rng

F32_TOL = dict(rtol=1e-4, atol=1e-5)


def _tol(dtype):
    return F32_TOL if np.dtype(dtype) == np.float32 else {}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 query rows x 2 keys, so that small shapes cross many block edges."""
    monkeypatch.setattr(A, "_BLOCK", (3, 2))


@pytest.fixture(params=[(3, 2), (2, 5), (64, 64)], ids=["blk3x2", "blk2x5", "blk64"])
def blocks(request, monkeypatch):
    monkeypatch.setattr(A, "_BLOCK", request.param)
    return request.param


# ------------------------------------------------------------------------------------------------------------
# NumPy reference


def ref_probs(q, k, mask_add=None, causal=False, scale=None):
    """softmax(q k^T * scale + mask) in float64, rows without any key give 0 (q, k broadcast)."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask_add is not None:
        s = s + mask_add
    L, S = s.shape[-2:]
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    den = e.sum(-1, keepdims=True)
    return np.where(den > 0, e / np.where(den > 0, den, 1.0), 0.0)


def ref_sdpa(q, k, v, mask_add=None, causal=False, scale=None, gqa=False, drop=None, grad=None):
    """Output (and with ``grad`` the gradients of q, k, v) of attention, naively in float64."""
    gk = q.shape[-3] // k.shape[-3] if gqa else 1
    gv = q.shape[-3] // v.shape[-3] if gqa else 1
    kr = np.repeat(k, gk, axis=-3) if gk > 1 else k
    vr = np.repeat(v, gv, axis=-3) if gv > 1 else v
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    p = ref_probs(q, kr, mask_add, causal, scale)
    pd = p * drop if drop is not None else p
    out = pd @ vr.astype(np.float64)
    if grad is None:
        return out
    g = grad.astype(np.float64)
    dv = np.swapaxes(pd, -1, -2) @ g
    dp = g @ np.swapaxes(vr, -1, -2)
    if drop is not None:
        dp = dp * drop
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    dq = ds @ kr * scale
    dk = np.swapaxes(ds, -1, -2) @ q.astype(np.float64) * scale

    def fold(d, x, grp):
        if grp > 1:
            d = d.reshape(d.shape[:-3] + (d.shape[-3] // grp, grp) + d.shape[-2:]).sum(-3)
        extra = d.ndim - x.ndim
        d = d.sum(tuple(range(extra))) if extra else d
        return d.sum(tuple(i for i, n in enumerate(x.shape) if n == 1 and d.shape[i] != 1), keepdims=True) \
            .reshape(x.shape)

    return out, fold(dq, q, 1), fold(dk, k, gk), fold(dv, v, gv)


# ------------------------------------------------------------------------------------------------------------
# The kernels directly (odd blocks, strided inputs, index maps) vs the reference


def _kernel_run(q3, k3, v3, m3, qi, ki, vi, mi, scale, causal, bq, bk, g=None, p=0.0, seed=0):
    dt = q3.dtype
    B = len(qi)
    L, E = q3.shape[1:]
    S, Ev = v3.shape[1:]
    out = np.empty((B, L, Ev), dt)
    lse = np.empty((B, L))
    has = m3 is not None
    mm = m3 if has else np.zeros((1, 1, 1), dt)
    mi = mi if has else np.zeros(B, np.intp)
    K.sdpa_forward(q3, k3, v3, mm, has, qi, ki, vi, mi, out, lse, scale, causal, p, seed, bq, bk)
    if g is None:
        return out, lse
    dq, dk, dv = np.empty((B, L, E), dt), np.empty((B, S, E), dt), np.empty((B, S, Ev), dt)
    K.sdpa_backward(q3, k3, v3, mm, has, qi, ki, vi, mi, out, g, lse, dq, dk, dv, scale, causal, p, seed, bq, bk)
    return out, lse, dq, dk, dv


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,S,E,Ev,bq,bk", [(7, 5, 4, 6, 3, 2), (9, 13, 5, 3, 4, 5), (1, 1, 1, 1, 1, 1),
                                            (16, 16, 8, 8, 16, 16), (5, 11, 3, 2, 64, 64)])
@pytest.mark.parametrize("causal,masked", [(False, False), (True, False), (False, True)])
def test_kernel_vs_numpy_reference(dtype, L, S, E, Ev, bq, bk, causal, masked):
    r = rng(L * 100 + S)
    B = 4
    # q: 2 batch elements, strided rows (a column slice of a wider array); k: one, shared (zero batch stride)
    qbig = r.standard_normal((2, L, E + 3)).astype(dtype)
    q3 = qbig[:, :, 1:E + 1]
    k3 = np.broadcast_to(r.standard_normal((1, S, E)).astype(dtype), (3, S, E))
    v3 = r.standard_normal((B, S, Ev)).astype(dtype)
    qi, ki, vi = np.array([0, 1, 0, 1]), np.array([0, 1, 2, 0]), np.arange(B)
    m3 = mi = None
    if masked:   # additive mask broadcast along the query rows; one row fully masked in batch element 1
        mrow = np.where(r.standard_normal((2, 1, S)) > 0.3, 0.0, -np.inf).astype(dtype)
        mrow[0] += r.standard_normal((1, S)).astype(dtype)
        mrow[0, 0, 0] = 0.0
        mrow[1] = -np.inf
        m3 = np.broadcast_to(mrow, (2, L, S))
        mi = np.array([0, 0, 1, 1])
    g = r.standard_normal((B, L, Ev)).astype(dtype)
    out, lse, dq, dk, dv = _kernel_run(q3, k3, v3, m3, qi, ki, vi, mi, 0.7, causal, bq, bk, g=g)
    for b in range(B):
        madd = None if m3 is None else m3[mi[b]].astype(np.float64)
        ro, rq, rk, rv = ref_sdpa(q3[qi[b]], k3[ki[b]], v3[vi[b]], madd, causal, 0.7, grad=g[b])
        tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[b], ro, **tol)
        np.testing.assert_allclose(dq[b], rq, **tol)
        np.testing.assert_allclose(dk[b], rk, **tol)
        np.testing.assert_allclose(dv[b], rv, **tol)
        s = q3[qi[b]].astype(np.float64) @ k3[ki[b]].T.astype(np.float64) * 0.7
        if madd is not None:
            s = s + madd
        if causal:
            s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
        with np.errstate(divide="ignore"):
            mx = s.max(-1)
            rl = np.where(np.isfinite(mx), mx + np.log(np.exp(s - np.where(np.isfinite(mx), mx, 0)[:, None])
                                                              .sum(-1)), -np.inf)
        np.testing.assert_allclose(lse[b], rl, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_kernel_rejects_bad_arguments():
    q = np.zeros((2, 4, 3))
    k = np.zeros((2, 5, 3))
    v = np.zeros((2, 5, 2))
    m = np.zeros((1, 1, 1))
    idx = np.arange(2)
    out, lse = np.empty((2, 4, 2)), np.empty((2, 4))

    def fwd(**kw):
        a = dict(q=q, k=k, v=v, mask=m, has=False, qi=idx, ki=idx, vi=idx, mi=idx, out=out, lse=lse, p=0.0,
                 bq=2, bk=2)
        a.update(kw)
        K.sdpa_forward(a["q"], a["k"], a["v"], a["mask"], a["has"], a["qi"], a["ki"], a["vi"], a["mi"], a["out"],
                       a["lse"], 1.0, False, a["p"], 0, a["bq"], a["bk"])

    fwd()
    for kw in [dict(qi=np.array([0, 2])), dict(ki=np.array([-1, 0])), dict(vi=np.arange(3)),
               dict(k=np.zeros((2, 5, 4))), dict(v=np.zeros((2, 6, 2))), dict(out=np.empty((2, 4, 3))),
               dict(lse=np.empty((2, 3))), dict(has=True, mask=np.zeros((1, 4, 4))), dict(bq=0), dict(bk=10 ** 6),
               dict(p=1.0), dict(q=np.zeros((2, 4, 3))[:, :, ::-1]), dict(q=np.zeros((2, 0, 3))),
               dict(has=True, mask=np.zeros((1, 4, 5)), mi=np.array([0, 1]))]:
        with pytest.raises(ValueError):
            fwd(**kw)


# ------------------------------------------------------------------------------------------------------------
# F.scaled_dot_product_attention: gradcheck (float64, through the fused kernels with small blocks)


def _sdpa(**kw):
    def fn(T, q, k, v, mask=None):
        return T.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
    return fn


def _bool_mask(shape, seed=3, full_row=True):
    m = rng(seed).standard_normal(shape) > -0.3
    if full_row:
        m[..., 1, :] = False                  # a query row that sees no key
    m[..., 0, 0] = True
    return m


GRADCHECK_CASES = {
    "plain": ((2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 6), {}, None),
    "causal_L<S": ((2, 5, 4), (2, 7, 4), (2, 7, 3), dict(is_causal=True), None),
    "causal_L>S": ((2, 7, 4), (2, 5, 4), (2, 5, 3), dict(is_causal=True), None),
    "causal_square": ((1, 6, 3), (1, 6, 3), (1, 6, 5), dict(is_causal=True), None),
    "scale": ((2, 5, 4), (2, 7, 4), (2, 7, 3), dict(scale=0.37), None),
    "bool_mask": ((2, 5, 4), (2, 7, 4), (2, 7, 3), {}, "bool"),
    "float_mask": ((2, 5, 4), (2, 7, 4), (2, 7, 3), {}, "float"),
    "gqa": ((2, 6, 5, 4), (2, 2, 7, 4), (2, 3, 7, 2), dict(enable_gqa=True), None),
    "gqa_causal": ((1, 4, 5, 3), (1, 1, 7, 3), (1, 2, 7, 2), dict(enable_gqa=True, is_causal=True), None),
    "broadcast": ((2, 1, 5, 4), (3, 7, 4), (1, 3, 7, 2), {}, None),
    "broadcast_mask": ((2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 2), {}, "kpm"),
    "unbatched": ((5, 4), (7, 4), (7, 6), {}, None),
}


def _case_inputs(case, dtype=np.float64):
    qs, ks, vs, kw, mk = GRADCHECK_CASES[case]
    r = rng(sum(qs) + len(case))
    q, k, v = (r.standard_normal(s).astype(dtype) for s in (qs, ks, vs))
    L, S = qs[-2], ks[-2]
    if mk == "bool":
        mask = _bool_mask((L, S))
    elif mk == "float":
        mask = r.standard_normal((2, L, S)).astype(dtype)
        mask[1, 2] = -np.inf
    elif mk == "kpm":                          # (B, 1, 1, S) key padding, a batch element without keys
        mask = r.standard_normal((2, 1, 1, S)) > 0
        mask[0, ..., 0] = True
        mask[1] = False
    else:
        mask = None
    return [q, k, v] + ([mask] if mask is not None else []), kw


@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_sdpa_gradcheck(case, blocks):
    inputs, kw = _case_inputs(case)
    gradcheck(_sdpa(**kw), inputs)


@pytest.mark.parametrize("case", ["plain", "causal_L>S", "float_mask", "gqa", "broadcast_mask"])
def test_sdpa_gradgradcheck(case, small_blocks):
    inputs, kw = _case_inputs(case)
    gradgradcheck(_sdpa(**kw), inputs)


def test_sdpa_gradcheck_dropout(small_blocks):
    def fn(T, q, k, v):
        T.manual_seed(7)                        # the same dropout mask at every evaluation
        return T.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.4, is_causal=True)
    inputs = [randn(2, 5, 3), randn(2, 7, 3, seed=1), randn(2, 7, 4, seed=2)]
    gradcheck(fn, inputs)
    gradgradcheck(fn, inputs)


def test_sdpa_empty_sizes(torch):
    for qs, ks, vs in [((2, 0, 4), (2, 3, 4), (2, 3, 5)), ((2, 4, 4), (2, 0, 4), (2, 0, 5)),
                       ((2, 4, 0), (2, 3, 0), (2, 3, 5)), ((0, 4, 4), (0, 3, 4), (0, 3, 5)),
                       ((2, 4, 4), (2, 3, 4), (2, 3, 0))]:
        compare(torch, _sdpa(), [randn(*qs), randn(*ks, seed=1), randn(*vs, seed=2)])
    compare(torch, _sdpa(is_causal=True), [randn(2, 4, 4), randn(2, 0, 4, seed=1), randn(2, 0, 5, seed=2)])


# ------------------------------------------------------------------------------------------------------------
# vs torch (float32 and float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_sdpa_vs_torch(torch, dtype, case, small_blocks):
    inputs, kw = _case_inputs(case, dtype)
    if len(inputs) == 4 and inputs[3].dtype.kind == "f" and dtype == np.float64 and case == "float_mask":
        inputs[3] = inputs[3].astype(np.float32)      # a float32 mask with float64 inputs is allowed
    compare(torch, _sdpa(**kw), inputs, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_vs_torch_default_blocks(torch, dtype):
    """Several 64-row blocks with a causal diagonal, ragged last blocks."""
    r = rng(11)
    q, k, v = (r.standard_normal(s).astype(dtype) for s in ((2, 2, 150, 16), (2, 2, 130, 16), (2, 2, 130, 8)))
    compare(torch, _sdpa(is_causal=True), [q, k, v], **_tol(dtype))
    mask = _bool_mask((150, 130))
    compare(torch, _sdpa(), [q, k, v, mask], **_tol(dtype))


def test_sdpa_fully_masked_rows_are_zero(torch):
    q, k, v = randn(2, 4, 3), randn(2, 5, 3, seed=1), randn(2, 5, 2, seed=2)
    m = np.ones((4, 5), bool)
    m[2] = False
    mf = np.where(m, 0.0, -np.inf)
    for mask in (m, mf):
        out = compare(torch, _sdpa(), [q, k, v, mask], grad_inputs=[0, 1, 2])[0]
        assert np.all(out.detach().numpy()[:, 2] == 0)


def test_sdpa_nan_and_inf_propagate(torch):
    q, k, v = randn(1, 3, 2), randn(1, 3, 2, seed=1), randn(1, 3, 2, seed=2)
    for bad in (np.nan, np.inf):
        mask = np.zeros((3, 3))
        mask[0, 1] = bad
        compare(torch, _sdpa(), [q, k, v, mask], grad=False)


def test_sdpa_float16_runs_in_float32(torch):
    q, k, v = (randn(2, 4, 8, dtype=np.float16, seed=s) for s in range(3))
    c = CF.scaled_dot_product_attention(*(cygrad.tensor(a) for a in (q, k, v)), is_causal=True)
    t = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)), is_causal=True)
    assert c.dtype == cygrad.float16
    np.testing.assert_allclose(c.numpy().astype(np.float32), t.numpy().astype(np.float32), atol=2e-3)


def test_sdpa_noncontiguous_inputs(torch, small_blocks):
    """Transposed (sequence-first) and expanded inputs go to the kernel as strided views."""
    def fn(T, q, k, v):
        return T.nn.functional.scaled_dot_product_attention(q.transpose(0, 2), k.transpose(0, 2),
                                                            v.transpose(0, 2).expand(3, 2, 6, 4), is_causal=True)
    compare(torch, fn, [randn(5, 2, 3, 4), randn(6, 2, 3, 4, seed=1), randn(6, 2, 1, 4, seed=2)])


# ------------------------------------------------------------------------------------------------------------
# Dropout


def test_sdpa_dropout_statistics():
    """With q = k = 0 (uniform weights 1/S) and v = I, the output shows the scaled keep mask itself."""
    S, L, p = 64, 256, 0.3
    q = cygrad.zeros(4, L, 8)
    k = cygrad.zeros(4, S, 8)
    v = cygrad.eye(S).expand(4, S, S)
    cygrad.manual_seed(0)
    out = CF.scaled_dot_product_attention(q, k, v, dropout_p=p).numpy()
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(out[kept], 1 / (S * (1 - p)), rtol=1e-6)
    # the row mean of the output is 1/S in expectation
    assert abs(out.sum(-1).mean() - 1.0) < 0.01
    cygrad.manual_seed(0)
    again = CF.scaled_dot_product_attention(q, k, v, dropout_p=p).numpy()
    np.testing.assert_array_equal(out, again)
    other = CF.scaled_dot_product_attention(q, k, v, dropout_p=p).numpy()
    assert (other != out).any()


def test_sdpa_dropout_backward_uses_the_forward_mask():
    q, k, v = (cygrad.tensor(randn(2, 9, 4, seed=s), requires_grad=True) for s in range(3))
    g = randn(2, 9, 4, seed=5)
    cygrad.manual_seed(3)
    out = CF.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    out.backward(cygrad.tensor(g))
    cygrad.manual_seed(3)
    seed = int(cygrad._random.rng().integers(0, 2 ** 63))
    drop = np.empty((2, 9, 9))
    K.sdpa_dropout_mask(drop, 0.5, seed)
    ro, rq, rk, rv = ref_sdpa(*(x.detach().numpy() for x in (q, k, v)), drop=drop, grad=g)
    np.testing.assert_allclose(out.detach().numpy(), ro, rtol=1e-12, atol=1e-12)
    for x, r in zip((q, k, v), (rq, rk, rv)):
        np.testing.assert_allclose(x.grad.numpy(), r, rtol=1e-11, atol=1e-12)


def test_sdpa_dropout_edge_values(torch):
    q, k, v = randn(2, 4, 3), randn(2, 5, 3, seed=1), randn(2, 5, 2, seed=2)
    tq = [cygrad.tensor(a) for a in (q, k, v)]
    ref = CF.scaled_dot_product_attention(*tq).numpy()
    np.testing.assert_array_equal(CF.scaled_dot_product_attention(*tq, dropout_p=0.0).numpy(), ref)
    np.testing.assert_array_equal(CF.scaled_dot_product_attention(*tq, dropout_p=-0.5).numpy(), ref)  # as torch
    qs = [cygrad.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = CF.scaled_dot_product_attention(*qs, dropout_p=1.0)
    assert not out.detach().numpy().any()
    out.sum().backward()
    assert all(not x.grad.numpy().any() for x in qs)


# ------------------------------------------------------------------------------------------------------------
# Threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H,L,S", [(3, 4, 70, 50), (1, 1, 90, 300)])   # the second: the keys split in chunks
def test_sdpa_thread_count_does_not_change_results(restore_threads, dtype, B, H, L, S):
    r = rng(4)
    q, k, v = (r.standard_normal(s).astype(dtype) for s in ((B, H, L, 16), (B, H, S, 16), (B, H, S, 8)))
    mask = r.standard_normal((L, S)).astype(dtype)
    g = r.standard_normal((B, H, L, 8)).astype(dtype)
    res = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        ts = [cygrad.tensor(a, requires_grad=True) for a in (q, k, v)]
        cygrad.manual_seed(0)
        out = CF.scaled_dot_product_attention(*ts, attn_mask=cygrad.tensor(mask), dropout_p=0.2)
        out.backward(cygrad.tensor(g))
        res.append([out.detach().numpy()] + [t.grad.numpy() for t in ts])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------------------
# Bad input (torch's exception types; messages name the shapes)


def _t(*shape, dtype=np.float32):
    return cygrad.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("args,kw,exc,match", [
    (([1.0], _t(2, 3), _t(2, 3)), {}, TypeError, "argument 'query'"),
    ((_t(2, 3), _t(2, 3), _t(2, 3)), dict(attn_mask=[[True]]), TypeError, "attn_mask"),
    ((_t(2, 3), _t(2, 3), _t(2, 3)), dict(attn_mask=_t(2, 2, dtype=bool), is_causal=True), RuntimeError,
     "Explicit attn_mask"),
    ((_t(3), _t(3), _t(3)), {}, RuntimeError, "at least 2 dimensional"),
    ((_t(2, 3), _t(2, 3, dtype=np.float64), _t(2, 3)), {}, RuntimeError, "same dtype"),
    ((_t(2, 3, dtype=np.int64), _t(2, 3, dtype=np.int64), _t(2, 3, dtype=np.int64)), {}, RuntimeError, "Long"),
    ((_t(2, 3), _t(2, 3), _t(2, 3)), dict(attn_mask=_t(2, 2, dtype=np.int64)), RuntimeError, "attn_mask dtype"),
    ((_t(2, 3), _t(2, 3), _t(2, 3)), dict(attn_mask=_t(2, 2, dtype=np.float64)), RuntimeError, "attn_mask dtype"),
    ((_t(2, 4, 3), _t(2, 5, 2), _t(2, 5, 3)), {}, RuntimeError, r"\[2, 4, 3\].*\[2, 5, 2\]"),
    ((_t(2, 4, 3), _t(2, 5, 3), _t(2, 6, 3)), {}, RuntimeError, r"\[2, 5, 3\].*\[2, 6, 3\]"),
    ((_t(2, 4, 3), _t(3, 5, 3), _t(3, 5, 3)), {}, RuntimeError, "must match the size"),
    ((_t(2, 4, 3), _t(2, 5, 3), _t(2, 5, 3)), dict(attn_mask=_t(3, 5, dtype=bool)), RuntimeError,
     "must match the size"),
    ((_t(4, 3), _t(5, 3), _t(5, 3)), dict(attn_mask=_t(2, 4, 5, dtype=bool)), RuntimeError, r"\[2, 4, 5\]"),
    ((_t(1, 6, 4, 3), _t(1, 4, 5, 3), _t(1, 4, 5, 3)), dict(enable_gqa=True), RuntimeError, "divide"),
    ((_t(1, 1, 4, 3), _t(1, 2, 5, 3), _t(1, 2, 5, 3)), dict(enable_gqa=True), RuntimeError, r"\[1, 2, 5, 3\]"),
    ((_t(4, 3), _t(5, 3), _t(5, 3)), dict(enable_gqa=True), IndexError, "Dimension out of range"),
    ((_t(2, 3), _t(2, 3), _t(2, 3)), dict(dropout_p=1.5), RuntimeError, "dropout probability"),
])
def test_sdpa_bad_input(torch, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        CF.scaled_dot_product_attention(*args, **kw)
    # torch raises the same exception type
    targs = [torch.tensor(a.numpy()) if isinstance(a, cygrad.Tensor) else a for a in args]
    tkw = {n: torch.tensor(a.numpy()) if isinstance(a, cygrad.Tensor) else a for n, a in kw.items()}
    with pytest.raises(exc):
        torch.nn.functional.scaled_dot_product_attention(*targs, **tkw)


# ------------------------------------------------------------------------------------------------------------
# MultiheadAttention


def _copy_weights(cm, tm):
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})


def _mha_pair(torch, dtype, **kw):
    tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    cdt = {np.float32: cygrad.float32, np.float64: cygrad.float64}[dtype]
    tm = torch.nn.MultiheadAttention(8, 2, dtype=tdt, **kw)
    cm = cygrad.nn.MultiheadAttention(8, 2, dtype=cdt, **kw)
    assert list(cm.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in cm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert repr(cm) == repr(tm)
    _copy_weights(cm, tm)
    return cm, tm


def _run_modules(torch, cm, tm, inputs, call, dtype, same=None, rtol=None, atol=None):
    """Call both modules (``call(module, *tensors)`` returns a tensor or a tuple), compare outputs,
    input gradients and parameter gradients. ``same``: indices of inputs passed as the same tensor."""
    tin = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    cin = [cygrad.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    tout, cout = call(tm, *tin), call(cm, *cin)
    tout = tout if isinstance(tout, tuple) else (tout,)
    cout = cout if isinstance(cout, tuple) else (cout,)
    tol = dict(F32_TOL) if dtype == np.float32 else {}
    if rtol is not None:
        tol.update(rtol=rtol, atol=atol)
    r = rng(9)
    tsum, csum = 0, 0
    for c, t in zip(cout, tout):
        if t is None:
            assert c is None
            continue
        assert_close(c, t, **tol)
        go = r.standard_normal(tuple(t.shape)).astype(dtype)
        tsum = tsum + (t * torch.tensor(go)).sum()
        csum = csum + (c * cygrad.tensor(go)).sum()
    tsum.backward()
    csum.backward()
    for c, t in zip(cin, tin):
        if t.grad is not None:
            assert_close(c.grad, t.grad, **tol)
    cp = dict(cm.named_parameters())
    for name, tp in tm.named_parameters():
        if tp.grad is None:
            assert cp[name].grad is None or not cp[name].grad.numpy().any(), name
        else:
            assert_close(cp[name].grad, tp.grad, **tol)


def _mha_inputs(dtype, batch_first=False, unbatched=False, kdim=8, vdim=8, L=4, S=6, N=3):
    r = rng(L + S)

    def shape(n, d):
        if unbatched:
            return (n, d)
        return (N, n, d) if batch_first else (n, N, d)
    return [r.standard_normal(shape(L, 8)).astype(dtype), r.standard_normal(shape(S, kdim)).astype(dtype),
            r.standard_normal(shape(S, vdim)).astype(dtype)]


def _masks(kind, L=4, S=6, N=3, heads=2, dtype=np.float64, unbatched=False):
    r = rng(21)
    kpm = attn = None
    if "kpm" in kind:
        kpm = r.standard_normal((S,) if unbatched else (N, S)) > 0.4
        kpm[..., 0] = False
        if "kpmfloat" in kind:
            kpm = np.where(kpm, -np.inf, r.standard_normal(kpm.shape)).astype(dtype)
    if "attn2d" in kind:
        attn = r.standard_normal((L, S)) > 0.8
        attn[:, 1] = False
    if "attn3d" in kind:
        attn = r.standard_normal(((1 if unbatched else N) * heads, L, S)) > 0.8
        attn[..., 1] = False
    if attn is not None and "float" in kind.split("attn")[-1]:
        attn = np.where(attn, -np.inf, r.standard_normal(attn.shape)).astype(dtype)
    return kpm, attn


MHA_CONFIGS = {
    "default": {},
    "batch_first": dict(batch_first=True),
    "kdim_vdim": dict(kdim=5, vdim=3),
    "bias_kv_zero_attn": dict(add_bias_kv=True, add_zero_attn=True),
    "no_bias": dict(bias=False),
}


# (config, masks, need_weights, average_attn_weights): every mask kind with and without the weights on the
# default module, and each configuration with a few mask kinds
MHA_CASES = [("default", m, nw, av) for m in ["none", "kpm", "kpmfloat", "attn2d", "attn3dfloat", "kpm_attn2dfloat"]
             for nw, av in [(True, True), (True, False), (False, True)]] + \
    [(c, m, nw, True) for c in ["batch_first", "kdim_vdim", "bias_kv_zero_attn", "no_bias"]
     for m, nw in [("none", True), ("kpm_attn2dfloat", False), ("attn3dfloat", True), ("kpm", False)]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config,masks,need_weights,average", MHA_CASES)
def test_multihead_attention_vs_torch(torch, dtype, config, masks, need_weights, average):
    kw = MHA_CONFIGS[config]
    cm, tm = _mha_pair(torch, dtype, **kw)
    inputs = _mha_inputs(dtype, kw.get("batch_first", False), kdim=kw.get("kdim", 8), vdim=kw.get("vdim", 8))
    kpm, attn = _masks(masks, dtype=dtype)
    extra = [m for m in (kpm, attn) if m is not None]

    def call(m, q, k, v, *ms):
        it = iter(ms)
        a = dict(key_padding_mask=next(it) if kpm is not None else None,
                 attn_mask=next(it) if attn is not None else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # mismatched mask types: torch's deprecation warning
            return m(q, k, v, need_weights=need_weights, average_attn_weights=average, **a)
    _run_modules(torch, cm, tm, inputs + extra, call, dtype)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("masks", ["none", "kpm", "attn3dfloat"])
def test_multihead_attention_unbatched(torch, need_weights, masks):
    cm, tm = _mha_pair(torch, np.float64)
    inputs = _mha_inputs(np.float64, unbatched=True)
    kpm, attn = _masks(masks, unbatched=True)
    extra = [m for m in (kpm, attn) if m is not None]

    def call(m, q, k, v, *ms):
        it = iter(ms)
        return m(q, k, v, need_weights=need_weights, key_padding_mask=next(it) if kpm is not None else None,
                 attn_mask=next(it) if attn is not None else None)
    _run_modules(torch, cm, tm, inputs + extra, call, np.float64)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_self_attention_causal(torch, batch_first, need_weights):
    """query is key is value (packed projection); is_causal with the causal mask, in train mode with p=0."""
    cm, tm = _mha_pair(torch, np.float64, batch_first=batch_first)
    x = _mha_inputs(np.float64, batch_first, L=5)[0]
    causal = np.triu(np.full((5, 5), -np.inf), 1)

    def call(m, x, mask):
        return m(x, x, x, attn_mask=mask, is_causal=True, need_weights=need_weights)
    _run_modules(torch, cm, tm, [x, causal], call, np.float64)

    def call_kv(m, x, y):
        return m(x, y, y, need_weights=need_weights)    # key is value (encoder-decoder packing)
    _run_modules(torch, cm, tm, [x, _mha_inputs(np.float64, batch_first, S=7)[1]], call_kv, np.float64)


def test_multihead_attention_eval_and_dropout(torch):
    cm, tm = _mha_pair(torch, np.float64, dropout=0.5)
    cm.eval()
    tm.eval()
    _run_modules(torch, cm, tm, _mha_inputs(np.float64), lambda m, q, k, v: m(q, k, v), np.float64)
    cm.train()
    x = cygrad.tensor(_mha_inputs(np.float64)[0])
    a = cm(x, x, x, need_weights=False)[0]
    b = cm(x, x, x, need_weights=False)[0]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    out, w = cm(x, x, x)
    assert w.shape == (3, 4, 4)


def test_multihead_attention_init():
    cygrad.manual_seed(0)
    m = cygrad.nn.MultiheadAttention(64, 8, add_bias_kv=True)
    bound = math.sqrt(6 / (64 + 3 * 64))
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    assert m.bias_k.shape == (1, 1, 64) and m.bias_k.detach().numpy().std() > 0
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(m.out_proj, cygrad.nn.Linear)
    s = cygrad.nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    assert s.in_proj_weight is None and s.q_proj_weight.shape == (8, 8) and s.k_proj_weight.shape == (8, 4)
    assert s.v_proj_weight.shape == (8, 6)


def test_multihead_attention_loads_torch_state_dict(torch, tmp_path):
    tm = torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=3, add_bias_kv=True)
    path = tmp_path / "mha.pt"
    torch.save(tm.state_dict(), path)
    cm = cygrad.nn.MultiheadAttention(8, 2, kdim=5, vdim=3, add_bias_kv=True)
    cm.load_state_dict(cygrad.load(str(path)))
    q, k, v = _mha_inputs(np.float32, kdim=5, vdim=3)
    t = tm(*(torch.tensor(a) for a in (q, k, v)))
    c = cm(*(cygrad.tensor(a) for a in (q, k, v)))
    assert_close(c[0], t[0], **F32_TOL)
    assert_close(c[1], t[1], **F32_TOL)


@pytest.mark.parametrize("make,call,exc,match", [
    (lambda T: T.nn.MultiheadAttention(8, 3), None, AssertionError, "divisible"),
    (lambda T: T.nn.MultiheadAttention(0, 2), None, ValueError, "greater than 0"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 3, 8), _x(T, 6, 3, 8),
                                                             attn_mask=_x(T, 4, 5)), RuntimeError, "2D attn_mask"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 3, 8), _x(T, 6, 3, 8),
                                                             attn_mask=_x(T, 5, 4, 6)), RuntimeError, "3D attn_mask"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 3, 8), _x(T, 6, 3, 8),
                                                             is_causal=True), RuntimeError, "Need attn_mask"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 3, 8), _x(T, 6, 3, 8),
                                                             key_padding_mask=_x(T, 3, 5)), AssertionError,
     "key_padded_mask"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 1, 4, 3, 8), _x(T, 1, 6, 3, 8),
                                                             _x(T, 1, 6, 3, 8)), AssertionError, "4-D query"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 8), _x(T, 6, 8)),
     AssertionError, "2-D and 2-D"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 8), _x(T, 6, 3, 8), _x(T, 6, 3, 8),
                                                             attn_mask=T.zeros(4, 6, dtype=T.int64)),
     AssertionError, "only bool and floating"),
    (lambda T: T.nn.MultiheadAttention(8, 2), lambda T, m: m(_x(T, 4, 3, 6), _x(T, 6, 3, 6), _x(T, 6, 3, 6)),
     AssertionError, "embedding dimension of 8"),
])
def test_multihead_attention_bad_input(torch, make, call, exc, match):
    for T in (cygrad, torch):
        with pytest.raises(exc, match=match):
            m = make(T)
            call(T, m)


def _x(T, *shape):
    return T.zeros(*shape)


def test_multi_head_attention_forward_static_kv(torch):
    r = rng(2)
    q = r.standard_normal((4, 2, 8))
    w, b = r.standard_normal((24, 8)), r.standard_normal(24)
    ow, ob = r.standard_normal((8, 8)), r.standard_normal(8)
    sk, sv = r.standard_normal((4, 6, 4)), r.standard_normal((4, 6, 4))

    def fn(T, q, w, b, ow, ob, sk, sv):
        return T.nn.functional.multi_head_attention_forward(q, q, q, 8, 2, w, b, None, None, False, 0.0, ow, ob,
                                                            static_k=sk, static_v=sv)
    compare(torch, fn, [q, w, b, ow, ob, sk, sv])


def test_multihead_attention_gradcheck():
    m = cygrad.nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True).double()
    r = rng(6)
    q, k, v = r.standard_normal((3, 2, 4)), r.standard_normal((5, 2, 3)), r.standard_normal((5, 2, 5))
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True

    def fn(T, q, k, v):
        return m(q, k, v, key_padding_mask=cygrad.tensor(kpm), need_weights=False)[0]
    gradcheck(fn, [q, k, v])


# ------------------------------------------------------------------------------------------------------------
# TransformerEncoderLayer / TransformerEncoder


def _layer_pair(torch, dtype, train=False, **kw):
    tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    cdt = {np.float32: cygrad.float32, np.float64: cygrad.float64}[dtype]
    kw.setdefault("dim_feedforward", 16)
    act = kw.pop("activation", None)
    targs = dict(kw, **({} if act is None else {"activation": act(torch)}))
    cargs = dict(kw, **({} if act is None else {"activation": act(cygrad)}))
    tm = torch.nn.TransformerEncoderLayer(8, 2, dtype=tdt, **targs)
    cm = cygrad.nn.TransformerEncoderLayer(8, 2, dtype=cdt, **cargs)
    assert list(cm.state_dict()) == list(tm.state_dict())
    if act is None or isinstance(act(torch), str):
        assert repr(cm) == repr(tm)
    _copy_weights(cm, tm)
    if not train:
        tm.eval()
        cm.eval()
    return cm, tm


LAYER_CONFIGS = {
    "post_norm": {},
    "pre_norm": dict(norm_first=True),
    "gelu_batch_first": dict(activation=lambda T: "gelu", batch_first=True),
    "callable_act": dict(activation=lambda T: T.nn.functional.silu),
    "module_act": dict(activation=lambda T: T.nn.GELU()),
    "no_bias_eps": dict(bias=False, layer_norm_eps=1e-3),
}


# (config, masks, train): every mask kind in both modes for the default layer, each other configuration twice
LAYER_CASES = [("post_norm", m, t) for m in ["none", "kpm", "attn2dfloat", "kpm_attn2d", "causal"]
               for t in (False, True)] + \
    [(c, m, t) for c in ["pre_norm", "gelu_batch_first", "callable_act", "module_act", "no_bias_eps"]
     for m, t in [("kpm_attn2d", False), ("causal", True)]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config,masks,train", LAYER_CASES)
def test_transformer_encoder_layer_vs_torch(torch, dtype, config, masks, train):
    kw = dict(LAYER_CONFIGS[config])
    if train:
        kw["dropout"] = 0.0
    cm, tm = _layer_pair(torch, dtype, train=train, **kw)
    bf = kw.get("batch_first", False)
    x = _mha_inputs(dtype, bf, L=6)[0]
    if masks == "causal":
        kpm, attn = None, np.triu(np.full((6, 6), -np.inf, dtype), 1)
    else:
        kpm, attn = _masks(masks, L=6, S=6, dtype=dtype)
    extra = [m for m in (kpm, attn) if m is not None]

    def call(m, x, *ms):
        it = iter(ms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return m(x, src_key_padding_mask=next(it) if kpm is not None else None,
                     src_mask=next(it) if attn is not None else None, is_causal=masks == "causal")
    _run_modules(torch, cm, tm, [x] + extra, call, dtype)


@pytest.mark.parametrize("dtype,norm,batch_first", [(np.float32, True, False), (np.float64, False, True),
                                                     (np.float64, True, False)])
def test_transformer_encoder_vs_torch(torch, dtype, norm, batch_first):
    cl, tl = _layer_pair(torch, dtype, dropout=0.0, batch_first=batch_first)
    tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    cdt = {np.float32: cygrad.float32, np.float64: cygrad.float64}[dtype]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # torch's nested-tensor notice
        tm = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(8, dtype=tdt) if norm else None)
    cm = cygrad.nn.TransformerEncoder(cl, 2, norm=cygrad.nn.LayerNorm(8, dtype=cdt)
                                      if norm else None)
    assert list(cm.state_dict()) == list(tm.state_dict())
    assert repr(cm) == repr(tm)
    _copy_weights(cm, tm)
    x = _mha_inputs(dtype, batch_first, L=5)[0]
    causal = np.triu(np.full((5, 5), -np.inf, dtype), 1)
    kpm = np.zeros((3, 5), bool)
    kpm[0, 3:] = True
    _run_modules(torch, cm, tm, [x, causal], lambda m, x, c: m(x, mask=c), dtype)         # causal detected
    _run_modules(torch, cm, tm, [x, causal, kpm], lambda m, x, c, p: m(x, mask=c, src_key_padding_mask=p), dtype)
    _run_modules(torch, cm, tm, [x[:, 0] if batch_first else x[:, 0]], lambda m, x: m(x), dtype)   # unbatched


def test_transformer_encoder_layers_are_copies():
    layer = cygrad.nn.TransformerEncoderLayer(8, 2, 16)
    enc = cygrad.nn.TransformerEncoder(layer, 3)
    assert len(enc.layers) == 3 and enc.num_layers == 3
    ids = {id(l.linear1.weight) for l in enc.layers} | {id(layer.linear1.weight)}
    assert len(ids) == 4
    np.testing.assert_array_equal(enc.layers[2].linear1.weight.detach().numpy(), layer.linear1.weight.detach().numpy())


def test_transformer_encoder_layer_repr_and_errors(torch):
    c = cygrad.nn.TransformerEncoderLayer(8, 2, 16, activation="gelu")
    t = torch.nn.TransformerEncoderLayer(8, 2, 16, activation="gelu")
    assert repr(c) == repr(t)
    assert c.activation_relu_or_gelu == t.activation_relu_or_gelu == 2
    for T in (cygrad, torch):
        with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
            T.nn.TransformerEncoderLayer(8, 2, 16, activation="tanh")
        with pytest.raises(RuntimeError, match="Need attn_mask"):
            T.nn.TransformerEncoderLayer(8, 2, 16)(T.zeros(3, 2, 8), is_causal=True)


def test_transformer_encoder_layer_train_dropout_is_random():
    cygrad.manual_seed(0)
    m = cygrad.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    x = cygrad.randn(5, 2, 8)
    a, b = m(x), m(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    m.eval()
    np.testing.assert_array_equal(m(x).detach().numpy(), m(x).detach().numpy())
