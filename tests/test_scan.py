"""Selective scan (F.selective_scan, F.selective_state_update) and the Mamba block (nn.Mamba).

The kernels are checked against a naive NumPy loop written from the formulas, against the same
formulas run by torch (an oracle for values and gradients), by float64 gradcheck, across chunk
boundaries, thread counts and the three evaluation modes (sequential kernel, parallel
associative scan, checkpointed segments).
"""

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from cygrad.ops import scan as S
from conftest import assert_close, compare, gradcheck, gradgradcheck, rng


# ---- references ----------------------------------------------------------------------------------------------

def _np_bc(X, t, d):
    """B or C at step t as (batch or 1, d, n)."""
    if X.ndim == 2:
        return X[None]
    if X.ndim == 3:
        return X[:, None, :, t]
    g = X.shape[1]
    return np.repeat(X[..., t], d // g, axis=1)


def np_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, softplus=False, h0=None):
    """The selective scan by the formulas, one step at a time, in float64."""
    u, delta, A = (np.asarray(a, np.float64) for a in (u, delta, A))
    B, C = np.asarray(B, np.float64), np.asarray(C, np.float64)
    batch, d, L = u.shape
    n = A.shape[1]
    dt = delta + (np.asarray(delta_bias, np.float64)[:, None] if delta_bias is not None else 0.0)
    if softplus:
        dt = np.where(dt > 20, dt, np.log1p(np.exp(np.minimum(dt, 20))))
    h = np.zeros((batch, d, n)) if h0 is None else np.array(h0, np.float64)
    y = np.zeros((batch, d, L))
    for t in range(L):
        h = np.exp(dt[:, :, t, None] * A[None]) * h + dt[:, :, t, None] * _np_bc(B, t, d) * u[:, :, t, None]
        y[:, :, t] = (_np_bc(C, t, d) * h).sum(-1)
    out = y
    if D is not None:
        out = out + np.asarray(D, np.float64)[:, None] * u
    if z is not None:
        z = np.asarray(z, np.float64)
        out = out * z / (1 + np.exp(-z))
    return out, h


def t_scan(T, u, delta, A, B, C, D=None, z=None, delta_bias=None, softplus=False, h0=None):
    """The same formulas with tensor ops of T (torch or cygrad): differentiable oracle."""
    F = T.nn.functional
    batch, d, L = u.shape
    n = A.shape[1]

    def bc(X):  # -> (batch or 1, d, n, L)
        if X.dim() == 2:
            return X[None, :, :, None]
        if X.dim() == 3:
            return X[:, None]
        g = X.shape[1]
        return X[:, :, None].expand(batch, g, d // g, n, L).reshape(batch, d, n, L)

    dt = delta if delta_bias is None else delta + delta_bias[:, None]
    if softplus:
        dt = F.softplus(dt)
    Bx, Cx = bc(B), bc(C)
    h = T.zeros(batch, d, n, dtype=u.dtype) if h0 is None else h0
    ys = []
    for t in range(L):
        h = T.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bx[..., min(t, Bx.shape[-1] - 1)]
        ys.append((h * Cx[..., min(t, Cx.shape[-1] - 1)]).sum(-1))
    out = T.stack(ys, dim=2) if ys else T.zeros(batch, d, 0, dtype=u.dtype)
    if D is not None:
        out = out + D[:, None] * u
    if z is not None:
        out = out * F.silu(z)
    return out, h


# ---- inputs ------------------------------------------------------------------------------------------------

def _bc_shape(kind, b, d, n, L):
    return {"var": (b, n, L), "grp": (b, 2, n, L), "grp1": (b, 1, n, L), "inv": (d, n)}[kind]


def make_inputs(b=2, d=4, L=10, n=3, b_kind="var", c_kind="var", dtype=np.float64, seed=0):
    r = rng(seed)
    u = r.standard_normal((b, d, L))
    delta = 0.5 * r.standard_normal((b, d, L))
    A = -np.exp(0.5 * r.standard_normal((d, n)))
    B = r.standard_normal(_bc_shape(b_kind, b, d, n, L))
    C = r.standard_normal(_bc_shape(c_kind, b, d, n, L))
    D = r.standard_normal(d)
    z = r.standard_normal((b, d, L))
    bias = 0.3 * r.standard_normal(d)
    return [a.astype(dtype) for a in (u, delta, A, B, C, D, z, bias)]


OPTIONS = {  # name: (use D, use z, use delta_bias, softplus)
    "plain": (False, False, False, False),
    "D": (True, False, False, False),
    "z": (False, True, False, False),
    "bias": (False, False, True, False),
    "softplus": (False, False, False, True),
    "all": (True, True, True, True),
}


def _select(arrs, opt):
    u, delta, A, B, C, D, z, bias = arrs
    useD, usez, useb, sp = OPTIONS[opt]
    return [u, delta, A, B, C, D if useD else None, z if usez else None, bias if useb else None], sp


def _call(T, args, softplus, return_last=True, **kw):
    u, delta, A, B, C, D, z, bias = args
    if T is cygrad:
        return T.nn.functional.selective_scan(u, delta, A, B, C, D, z, bias, softplus, return_last, **kw)
    out, h = t_scan(T, u, delta, A, B, C, D, z, bias, softplus)
    return (out, h) if return_last else out


def _T(a, rg=False):
    return None if a is None else cygrad.tensor(a, requires_grad=rg)


# ---- forward against the NumPy loop ----------------------------------------------------------------------------

@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("layout", ["var-var", "grp-var", "var-grp", "inv-inv", "inv-grp", "grp1-inv"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_vs_numpy(opt, layout, dtype):
    bk, ck = layout.split("-")
    arrs = make_inputs(b_kind=bk, c_kind=ck, dtype=dtype, n=3 if dtype == np.float64 else 16)
    args, sp = _select(arrs, opt)
    ref_out, ref_h = np_scan(*args, softplus=sp)
    out, last = _call(cygrad, [_T(a) for a in args], sp)
    assert out.dtype == (cygrad.float32 if dtype == np.float32 else cygrad.float64)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(out.numpy(), ref_out, **tol)
    np.testing.assert_allclose(last.numpy(), ref_h, **tol)
    only = CF.selective_scan(*[_T(a) for a in args], delta_softplus=sp)
    assert isinstance(only, cygrad.Tensor)
    np.testing.assert_array_equal(only.numpy(), out.numpy())


@pytest.mark.parametrize("n", [1, 8, 9, 16, 20])
def test_state_sizes(n):
    """State sizes around the 8-lane padding of the kernel."""
    args, sp = _select(make_inputs(n=n, L=7), "all")
    ref_out, ref_h = np_scan(*args, softplus=sp)
    out, last = _call(cygrad, [_T(a) for a in args], sp)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last.numpy(), ref_h, rtol=1e-12, atol=1e-12)


def test_softplus_threshold():
    """softplus is linear above 20 (as torch's), and its gradient there is 1."""
    arrs = make_inputs(b=1, d=2, L=4, n=2)
    arrs[1] = np.array([[[25.0, -30.0, 0.5, 19.9], [21.0, 3.0, -1.0, 40.0]]])
    arrs[2] = -0.01 * np.ones((2, 2))
    args, sp = _select(arrs, "softplus")
    ref_out, _ = np_scan(*args, softplus=True)
    out, _ = _call(cygrad, [_T(a) for a in args], True)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)


# ---- forward and gradients against torch ---------------------------------------------------------------------

@pytest.mark.parametrize("opt", ["plain", "all", "z", "D"])
@pytest.mark.parametrize("layout", ["var-var", "grp-inv", "inv-grp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vs_torch(torch, opt, layout, dtype):
    bk, ck = layout.split("-")
    arrs = make_inputs(b=2, d=4, L=9, n=3, b_kind=bk, c_kind=ck, dtype=dtype)
    args, sp = _select(arrs, opt)
    idx = [i for i, a in enumerate(args) if a is not None]
    present = [args[i] for i in idx]

    def fn(T, *xs):
        full = [None] * 8
        for i, x in zip(idx, xs):
            full[i] = x
        return _call(T, full, sp)

    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    compare(torch, fn, present, **tol)


# ---- gradcheck ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("layout", ["var-var", "grp-inv", "inv-grp"])
def test_gradcheck(opt, layout):
    bk, ck = layout.split("-")
    arrs = make_inputs(b=2, d=4, L=5, n=2, b_kind=bk, c_kind=ck)
    args, sp = _select(arrs, opt)
    idx = [i for i, a in enumerate(args) if a is not None]

    def fn(T, *xs):
        full = [None] * 8
        for i, x in zip(idx, xs):
            full[i] = x
        return _call(T, full, sp)

    gradcheck(fn, [args[i] for i in idx])


def test_gradcheck_last_state_only():
    args, sp = _select(make_inputs(b=1, d=2, L=6, n=3), "all")
    gradcheck(lambda T, *xs: _call(T, list(xs), sp)[1], args)


def test_gradgradcheck():
    """create_graph=True differentiates the tensor-op form: second derivatives work."""
    args, sp = _select(make_inputs(b=1, d=2, L=4, n=2), "all")
    gradgradcheck(lambda T, *xs: _call(T, list(xs), sp), args)


# ---- chunk boundaries --------------------------------------------------------------------------------------

def _grads(args, sp, g_out, g_last, **kw):
    ts = [_T(a, True) if a is not None else None for a in args]
    out, last = CF.selective_scan(*ts[:5], *ts[5:], delta_softplus=sp, return_last_state=True, **kw)
    cygrad.autograd.backward([out, last], [cygrad.tensor(g_out), cygrad.tensor(g_last)])
    return out.detach().numpy(), last.detach().numpy(), [t.grad.numpy() if t is not None else None for t in ts]


@pytest.mark.parametrize("chunk,L", [(4, 1), (4, 3), (4, 4), (4, 9), (4, 12), (64, 1), (64, 63), (64, 64),
                                     (64, 65), (64, 130)])
def test_chunk_boundaries(monkeypatch, chunk, L):
    """Values and gradients for L < chunk, L = chunk, L not a multiple of the chunk, L = 1."""
    monkeypatch.setattr(S, "_CHUNK", chunk)
    args, sp = _select(make_inputs(b=2, d=3, L=L, n=4, b_kind="grp1", c_kind="var"), "all")
    r = rng(5)
    g_out, g_last = r.standard_normal((2, 3, L)), r.standard_normal((2, 3, 4))
    out, last, grads = _grads(args, sp, g_out, g_last)
    ref_out, ref_h = np_scan(*args, softplus=sp)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last, ref_h, rtol=1e-12, atol=1e-12)
    # gradients against autograd through the same formulas written with tensor ops
    ts = [_T(a, True) for a in args]
    o2, h2 = t_scan(cygrad, *ts, softplus=sp)
    cygrad.autograd.backward([o2, h2], [cygrad.tensor(g_out), cygrad.tensor(g_last)])
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("d,layout", [(38, "grp-var"), (17, "var-inv"), (6, "grp-grp1")])
def test_uneven_channel_blocks(restore_threads, d, layout):
    """Backward work items of unequal channel blocks (d prime, or groups of a prime size)."""
    bk, ck = layout.split("-")
    L = 40  # enough work for two threads
    args, sp = _select(make_inputs(b=2, d=d, L=L, n=3, b_kind=bk, c_kind=ck), "all")
    assert len(S._blocks(S._validate(*[_T(a) for a in args], None))) > 2
    r = rng(9)
    g_out, g_last = r.standard_normal((2, d, L)), r.standard_normal((2, d, 3))
    ts = [_T(a, True) for a in args]
    o2, h2 = t_scan(cygrad, *ts, softplus=sp)
    cygrad.autograd.backward([o2, h2], [cygrad.tensor(g_out), cygrad.tensor(g_last)])
    results = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        results.append(_grads(args, sp, g_out, g_last))
    for g, t in zip(results[0][2], ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-10)
    for a, b in zip(results[1][2], results[0][2]):
        np.testing.assert_array_equal(a, b)


def test_gradcheck_small_chunks(monkeypatch):
    monkeypatch.setattr(S, "_CHUNK", 2)
    args, sp = _select(make_inputs(b=1, d=2, L=5, n=2, b_kind="grp", c_kind="inv"), "all")
    gradcheck(lambda T, *xs: _call(T, list(xs), sp), args)


# ---- the channel-lane kernels ---------------------------------------------------------------------------------
# Time-varying B and C whose groups hold a multiple of 16 (float32) / 8 (float64) channels take the lane
# kernels (one channel per vector lane); everything else the per-channel kernels. Both are checked here.

def _lane_spec(args, dtype):
    spec = S._validate(*[_T(a) for a in args], None)
    return S._use_lanes(spec, np.dtype(dtype))


@pytest.mark.parametrize("layout", ["var-var", "grp-var", "var-grp", "grp1-grp"])
@pytest.mark.parametrize("n", [3, 16, 20])
@pytest.mark.parametrize("opt", ["plain", "all", "z", "softplus"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanes_vs_numpy_and_channels(monkeypatch, layout, n, opt, dtype):
    """Lane kernels: values against the NumPy loop, gradients against the per-channel kernels, with L
    neither a multiple of the chunk nor of the lane width, and n below, at and above the lane width."""
    monkeypatch.setattr(S, "_CHUNK", 8)
    bk, ck = layout.split("-")
    d, L = 32, 21
    args, sp = _select(make_inputs(b=2, d=d, L=L, n=n, b_kind=bk, c_kind=ck, dtype=dtype), opt)
    assert _lane_spec(args, dtype)
    r = rng(3)
    g_out, g_last = r.standard_normal((2, d, L)).astype(dtype), r.standard_normal((2, d, n)).astype(dtype)
    out, last, grads = _grads(args, sp, g_out, g_last)
    ref_out, ref_h = np_scan(*args, softplus=sp)
    # without softplus some steps grow the state (exp(dt A) > 1 for dt < 0): errors relative to the largest value
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    for a, b in ((out, ref_out), (last, ref_h)):
        scale = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a / scale, b / scale, **tol)
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    monkeypatch.setattr(S, "_LANES", False)
    assert not _lane_spec(args, dtype)
    out2, last2, grads2 = _grads(args, sp, g_out, g_last)
    for a, b in zip([out, last] + grads, [out2, last2] + grads2):
        assert (a is None) == (b is None)
        if a is not None:
            scale = max(1.0, np.abs(b).max())
            np.testing.assert_allclose(a / scale, b / scale, **tol)


def test_lanes_strong_decays(monkeypatch):
    """float32 lane kernels where some |dt A| exceed the fast exp's range (86): those blocks take the
    general exp (decays flushed to 0 below 2^-126); values and gradients as the per-channel kernels
    and the NumPy loop."""
    monkeypatch.setattr(S, "_CHUNK", 8)
    args, sp = _select(make_inputs(b=2, d=32, L=21, n=16, dtype=np.float32), "all")
    args[2][3, 5] = -300.0        # item 0: |dt A| up to about 600 -> general exp for the whole item
    args[2][20, 0] = -60.0        # item 1: some blocks fast, some general (dt around 0.3 .. 2)
    args[1][1, 20, 4] = 3.0
    assert _lane_spec(args, np.float32)
    r = rng(5)
    g_out, g_last = r.standard_normal((2, 32, 21)).astype(np.float32), r.standard_normal((2, 32, 16)).astype(np.float32)
    out, last, grads = _grads(args, sp, g_out, g_last)
    ref_out, ref_h = np_scan(*args, softplus=sp)
    np.testing.assert_allclose(out, ref_out, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(last, ref_h, rtol=2e-5, atol=2e-5)
    monkeypatch.setattr(S, "_LANES", False)
    out2, last2, grads2 = _grads(args, sp, g_out, g_last)
    for a, b in zip([out, last] + grads, [out2, last2] + grads2):
        scale = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a / scale, b / scale, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("layout,blocks32,blocks64", [("var-var", 4, 4), ("grp-var", 2, 4), ("var-grp1", 4, 4)])
@pytest.mark.parametrize("n", [3, 16, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanes_blocks_per_item(monkeypatch, layout, blocks32, blocks64, n, dtype):
    """Backward items of several lane blocks (their dB / dC terms added as vectors before the lane sums):
    dB and dC as with one block per item up to rounding, every other gradient bitwise equal; values
    against the NumPy loop."""
    monkeypatch.setattr(S, "_CHUNK", 8)
    monkeypatch.setattr(S, "_LANE_MIN_ITEMS", 1)
    bk, ck = layout.split("-")
    d, L = 64, 21
    args, sp = _select(make_inputs(b=2, d=d, L=L, n=n, b_kind=bk, c_kind=ck, dtype=dtype), "all")
    spec = S._validate(*[_T(a) for a in args], None)
    assert S._use_lanes(spec, np.dtype(dtype))
    assert S._lane_blocks(spec, np.dtype(dtype)) == (blocks32 if dtype == np.float32 else blocks64)
    r = rng(7)
    g_out, g_last = r.standard_normal((2, d, L)).astype(dtype), r.standard_normal((2, d, n)).astype(dtype)
    out, last, grads = _grads(args, sp, g_out, g_last)
    ref_out, ref_h = np_scan(*args, softplus=sp)
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(out, ref_out, **tol)
    np.testing.assert_allclose(last, ref_h, **tol)
    monkeypatch.setattr(S, "_LANE_MAX_BLOCKS", 1)
    assert S._lane_blocks(spec, np.dtype(dtype)) == 1
    out1, last1, grads1 = _grads(args, sp, g_out, g_last)
    np.testing.assert_array_equal(out, out1)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for k, (a, b) in enumerate(zip(grads, grads1)):
        if k in (3, 4):      # dB, dC: the same terms, added in another order
            scale = max(1.0, np.abs(b).max())
            np.testing.assert_allclose(a / scale, b / scale, **tol)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["sum", "batch", "flipped"])
def test_lanes_expanded_output_gradient(kind):
    """The lane backward reads an expanded output gradient (the one of sum, or one broadcast over the batch)
    in place, and copies others it cannot read (reversed rows); gradients as with the same values given
    contiguous."""
    from cygrad.ops import scan as S2
    args, sp = _select(make_inputs(b=2, d=32, L=21, n=16, dtype=np.float32), "all")
    row = rng(9).standard_normal((32, 21)).astype(np.float32)
    g = {"sum": np.broadcast_to(np.float32(1.0), (2, 32, 21)), "batch": np.broadcast_to(row, (2, 32, 21)),
         "flipped": np.broadcast_to(row, (2, 32, 21))[:, :, ::-1]}[kind]
    rows = S2._gout_rows(g, np.dtype(np.float32))
    if kind == "flipped":
        assert rows.flags.c_contiguous
    else:
        assert not rows.flags.c_contiguous and rows.strides[0] == 0 and np.shares_memory(rows, g) == (kind == "batch")

    def grads(gout):
        ts = [_T(a, True) if a is not None else None for a in args]
        out = CF.selective_scan(*ts[:5], *ts[5:], delta_softplus=sp)
        out.backward(cygrad.tensor(gout) if isinstance(gout, np.ndarray) else gout)
        return [t.grad.numpy() for t in ts]

    ts = [_T(a, True) for a in args]
    if kind == "sum":
        CF.selective_scan(*ts[:5], *ts[5:], delta_softplus=sp).sum().backward()
        got = [t.grad.numpy() for t in ts]
    else:
        got = grads(cygrad.Tensor._make(g))
    want = grads(np.ascontiguousarray(g))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_lanes_backward_rejects_bad_output_gradient():
    from cygrad._C import scan as K
    f = np.float32
    u32, A32, B = np.zeros((1, 32, 4), f), np.zeros((32, 8), f), np.zeros(4 * 8, f)
    geom = (4 * 8, 16, 4 * 8, 8)
    e1, e3, e4 = np.empty(0, f), np.empty((0, 0, 0), f), np.empty((0, 0, 0, 0), f)
    st = np.zeros((1, 32, 1, 8), f)
    grads = [u32.copy(), u32.copy(), e3, e3, np.zeros((1, 32, 8)), np.zeros((1, 32)), np.zeros((1, 32))]
    parts = [np.zeros((1, 2, 3, 4), f), np.zeros((1, 2, 3, 4), f), e4, e4]
    for bad, match in ((np.zeros((1, 32, 5), f), "gout must have shape"),
                       (np.zeros((1, 32, 8), f)[:, :, ::2], "contiguous rows"),
                       (np.zeros((1, 32, 4), f)[:, ::-1], "contiguous rows")):
        with pytest.raises(ValueError, match=match):
            K.selective_scan_backward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, st, bad, e3, 4, 3,
                                            *grads, *parts)


def test_lanes_blocks_gradcheck(monkeypatch):
    monkeypatch.setattr(S, "_CHUNK", 4)
    monkeypatch.setattr(S, "_LANE_MIN_ITEMS", 1)
    args, sp = _select(make_inputs(b=1, d=32, L=7, n=3), "all")
    spec = S._validate(*[_T(a) for a in args], None)
    assert S._lane_blocks(spec, np.dtype(np.float64)) == 4
    gradcheck(lambda T, *xs: _call(T, list(xs), sp), args)


@pytest.mark.parametrize("layout", ["var-var", "grp-var"])
def test_lanes_gradcheck(monkeypatch, layout):
    monkeypatch.setattr(S, "_CHUNK", 4)
    bk, ck = layout.split("-")
    args, sp = _select(make_inputs(b=1, d=16, L=7, n=3, b_kind=bk, c_kind=ck), "all")
    assert _lane_spec(args, np.float64)
    gradcheck(lambda T, *xs: _call(T, list(xs), sp), args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanes_vs_torch(torch, dtype):
    args, sp = _select(make_inputs(b=2, d=32, L=19, n=16, dtype=dtype), "all")
    assert _lane_spec(args, dtype)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    compare(torch, lambda T, *xs: _call(T, list(xs), sp), args, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanes_initial_state(dtype):
    """Checkpointed segments run the lane kernels from an initial state and need its gradient."""
    args, sp = _select(make_inputs(b=2, d=32, L=40, n=5, dtype=dtype), "all")
    assert _lane_spec(args, dtype)
    r = rng(4)
    g_out, g_last = r.standard_normal((2, 32, 40)).astype(dtype), r.standard_normal((2, 32, 5)).astype(dtype)
    ref = _grads(args, sp, g_out, g_last)
    seg = _grads(args, sp, g_out, g_last, checkpoint_chunks=3)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(seg[0], ref[0], **tol)
    np.testing.assert_allclose(seg[1], ref[1], **tol)
    for a, b in zip(seg[2], ref[2]):
        if a is not None:
            np.testing.assert_allclose(a, b, **tol)


def test_lane_exp_accuracy():
    """The float32 lane kernels' exp (32-entry table + cubic): within 2 ulp of exp over the normal range, inf above
    log(FLT_MAX), 0 below log(2^-126), NaN kept."""
    from cygrad._C import scan as K
    x = np.linspace(-87.33, 88.72, 1 << 20).astype(np.float32)
    x = np.concatenate([x, rng(0).standard_normal(1 << 16).astype(np.float32) * 10])
    y = x.copy()
    K.lane_exp(y)
    ref = np.exp(x.astype(np.float64))
    ok = (ref >= 2.0 ** -126) & (ref <= np.finfo(np.float32).max)
    ulp = np.abs(y[ok] - ref[ok]) / np.spacing(ref[ok].astype(np.float32))
    assert ulp.max() <= 2.0
    special = np.array([-np.inf, np.inf, np.nan, 88.73, 1e30, -87.34, -100, -1e30, 0.0, -0.0, 1.0, -1.0,
                        88.72, -87.33, 0.5, 2.0], np.float32)
    y = special.copy()
    K.lane_exp(y)
    assert y[0] == 0 and y[1] == np.inf and np.isnan(y[2]) and y[3] == np.inf and y[4] == np.inf
    assert y[5] == 0 and y[6] == 0 and y[7] == 0 and y[8] == 1 and y[9] == 1
    np.testing.assert_allclose(y[10:], np.exp(special[10:].astype(np.float64)), rtol=2.5e-7)
    with pytest.raises(ValueError, match="multiple of 16"):
        K.lane_exp(np.zeros(5, np.float32))


def test_lane_decay_accuracy():
    """The float32 lane kernels' decays exp(dt A), computed from A pre-scaled by 32 / ln 2: within
    2.5 + 3 |dt A| ulp of exp(dt A) (the two roundings of the scaled product; exp of the float product
    dt A is itself up to 0.5 + |dt A| ulp off), flushed to 0 below 2^-126, and equal to lane_exp where
    |dt A| is small."""
    from cygrad._C import scan as K
    g = rng(2)
    dt = np.concatenate([g.random(1 << 20) * 4, g.random(1 << 16) * 0.01, [0.0] * 16]).astype(np.float32)
    a = np.concatenate([-g.random(1 << 20) * 20, -g.random(1 << 16) * 2, np.linspace(-3, 3, 16)]).astype(np.float32)
    y = dt.copy()
    K.lane_decay(y, a)
    x64 = dt.astype(np.float64) * a
    ref = np.exp(x64)
    ok = ref >= 2.0 ** -126
    ulp = np.abs(y[ok] - ref[ok]) / np.spacing(ref[ok].astype(np.float32))
    assert (ulp <= 2.5 + 3 * np.abs(x64[ok])).all()
    assert ulp[np.abs(x64[ok]) < 0.01].max() <= 2.5
    assert (y[~ok] == 0).all() and (y[-16:] == 1).all()
    # blocks with one |dt A| beyond the fast range take the general path: same values, inf / 0 / NaN kept
    dt = np.full(32, 0.5, np.float32)
    a = np.linspace(-4, 4, 32).astype(np.float32)
    a[[3, 20]] = [-1e3, 1e3]
    dt[7] = np.nan
    y = dt.copy()
    K.lane_decay(y, a)
    assert y[3] == 0 and y[20] == np.inf and np.isnan(y[7])
    fine = np.ones(32, bool)
    fine[[3, 7, 20]] = False
    z = np.full(32, 0.5, np.float32)
    K.lane_decay(z, np.where(fine, a, 0).astype(np.float32))
    np.testing.assert_array_equal(y[fine], z[fine])
    with pytest.raises(ValueError, match="multiple of 16"):
        K.lane_decay(np.zeros(5, np.float32), np.zeros(5, np.float32))


def test_lane_softplus_accuracy():
    """The float32 lane kernels' softplus (log1p by a polynomial) and sigmoid: within 3 ulp of softplus
    and 3.5 ulp of sigmoid wherever those are normal numbers; x itself above 20 (torch's threshold)."""
    from cygrad._C import scan as K
    x = np.linspace(-87.0, 30.0, 1 << 20).astype(np.float32)
    x = np.concatenate([x, rng(1).standard_normal(1 << 16).astype(np.float32) * 5])
    y, sig = x.copy(), np.empty_like(x)
    K.lane_softplus(y, sig)
    x64 = x.astype(np.float64)
    ref = np.where(x64 > 20, x64, np.logaddexp(0.0, x64))
    ref_sig = np.where(x64 > 20, 1.0, 1.0 / (1.0 + np.exp(-x64)))
    ulp = np.abs(y - ref) / np.spacing(ref.astype(np.float32))
    assert ulp.max() <= 3.0
    ok = ref_sig >= 2.0 ** -126
    ulp = np.abs(sig[ok] - ref_sig[ok]) / np.spacing(ref_sig[ok].astype(np.float32))
    assert ulp.max() <= 3.5
    special = np.array([-np.inf, np.inf, np.nan, 20.0, 20.5, 1e30, -1e30, 0.0, -0.0, -100.0, 88.0, -20.0,
                        1.0, -1.0, 5.0, -5.0], np.float32)
    y, sig = special.copy(), np.empty_like(special)
    K.lane_softplus(y, sig)
    assert y[0] == 0 and sig[0] == 0 and y[1] == np.inf and sig[1] == 1
    assert np.isnan(y[2]) and np.isnan(sig[2])
    assert y[4] == np.float32(20.5) and sig[4] == 1 and y[5] == np.float32(1e30) and y[6] == 0
    assert y[9] == 0 and sig[9] == 0 and y[10] == 88 and sig[10] == 1
    s64 = special[[3, 7, 8, 11, 12, 13, 14, 15]].astype(np.float64)
    np.testing.assert_allclose(y[[3, 7, 8, 11, 12, 13, 14, 15]], np.logaddexp(0.0, s64), rtol=3e-7)
    np.testing.assert_allclose(sig[[3, 7, 8, 11, 12, 13, 14, 15]], 1 / (1 + np.exp(-s64)), rtol=3e-7)
    with pytest.raises(ValueError, match="multiple of 16"):
        K.lane_softplus(np.zeros(5, np.float32), np.zeros(5, np.float32))


def test_lane_kernels_reject_bad_layouts():
    """The lane kernels validate the layout they are given (they run with bounds checks off)."""
    from cygrad._C import scan as K
    f = np.float32
    u = np.zeros((1, 24, 4), f)
    A = np.zeros((24, 8), f)
    B = np.zeros(4 * 8, f)
    geom = (4 * 8, 16, 4 * 8, 8)
    e1, e3, e4 = np.empty(0, f), np.empty((0, 0, 0), f), np.empty((0, 0, 0, 0), f)
    with pytest.raises(ValueError, match="dim % 16"):
        K.selective_scan_forward_lanes(u, u, A, B, geom, B, geom, e1, e3, e1, False, e3, u.copy(), e4,
                                       np.zeros((1, 24, 8), f), 4, 3)
    with pytest.raises(ValueError, match="time-varying B"):
        K.selective_scan_forward_lanes(u, u, A, B, (0, 1, 8, 0), B, geom, e1, e3, e1, False, e3, u.copy(), e4,
                                       np.zeros((1, 24, 8), f), 4, 3)
    u32, A32 = np.zeros((1, 32, 4), f), np.zeros((32, 8), f)
    with pytest.raises(ValueError, match="states must hold 1 chunks, got 2"):
        K.selective_scan_forward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, e3, u32.copy(),
                                       np.zeros((1, 32, 2, 8), f), np.zeros((1, 32, 8), f), 4, 3)
    with pytest.raises(ValueError, match="state size n = 9"):
        K.selective_scan_forward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, e3, u32.copy(), e4,
                                       np.zeros((1, 32, 8), f), 4, 9)
    # the backward's dB / dC sums must fit its partials (2 items of 16 channels; 3 groups do not divide them)
    st = np.zeros((1, 32, 1, 8), f)
    grads = [u32.copy(), u32.copy(), e3, e3, np.zeros((1, 32, 8)), np.zeros((1, 32)), np.zeros((1, 32))]
    parts = [np.zeros((1, 2, 3, 4), f), np.zeros((1, 2, 3, 4), f)]
    K.selective_scan_backward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, st, u32, e3, 4, 3,
                                    *grads, *parts, np.zeros((1, 1, 3, 4), f), e4)
    with pytest.raises(ValueError, match="dB_sum: partials .* do not fit"):
        K.selective_scan_backward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, st, u32, e3, 4, 3,
                                        *grads, *parts, np.zeros((1, 3, 3, 4), f), e4)
    for bad in (np.zeros((1, 3, 3, 4), f), np.zeros((1, 1, 3, 5), f), np.zeros((2, 1, 3, 4), f)):
        with pytest.raises(ValueError, match="dC_sum: partials .* do not fit"):
            K.selective_scan_backward_lanes(u32, u32, A32, B, geom, B, geom, e1, e3, e1, False, st, u32, e3, 4, 3,
                                            *grads, *parts, e4, bad)


# ---- threads and determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["var-var", "grp-inv"])
def test_threads_identical(restore_threads, dtype, layout):
    bk, ck = layout.split("-")
    args, sp = _select(make_inputs(b=2, d=32, L=70, n=16, b_kind=bk, c_kind=ck, dtype=dtype), "all")
    r = rng(7)
    g_out = r.standard_normal((2, 32, 70)).astype(dtype)
    g_last = r.standard_normal((2, 32, 16)).astype(dtype)
    res = []
    for n in (1, 2, 2):
        cygrad.set_num_threads(n)
        res.append(_grads(args, sp, g_out, g_last))
    for other in res[1:]:
        np.testing.assert_array_equal(other[0], res[0][0])
        np.testing.assert_array_equal(other[1], res[0][1])
        for a, b in zip(other[2], res[0][2]):
            np.testing.assert_array_equal(a, b)


def test_float32_accuracy():
    """float32 keeps the state in float32 and reduces over channels in float64: close to float64."""
    arrs = make_inputs(b=2, d=64, L=200, n=16, dtype=np.float64)
    args, sp = _select(arrs, "all")
    r = rng(3)
    g_out, g_last = r.standard_normal((2, 64, 200)), r.standard_normal((2, 64, 16))
    o64, h64, g64 = _grads(args, sp, g_out, g_last)
    args32 = [a.astype(np.float32) for a in args]
    o32, h32, g32 = _grads(args32, sp, g_out.astype(np.float32), g_last.astype(np.float32))
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-4)
    for a, b in zip(g32, g64):
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)


# ---- parallel and checkpointed modes ----------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(mode="parallel"), dict(checkpoint_chunks=1), dict(checkpoint_chunks=3),
                                dict(checkpoint_chunks=50), dict(checkpoint_chunks=4, mode="parallel")],
                         ids=str)
@pytest.mark.parametrize("layout", ["var-var", "grp-inv"])
def test_modes_equal_sequential(kw, layout):
    bk, ck = layout.split("-")
    L = 13
    args, sp = _select(make_inputs(b=2, d=4, L=L, n=3, b_kind=bk, c_kind=ck), "all")
    r = rng(11)
    g_out, g_last = r.standard_normal((2, 4, L)), r.standard_normal((2, 4, 3))
    o1, h1, g1 = _grads(args, sp, g_out, g_last)
    o2, h2, g2 = _grads(args, sp, g_out, g_last, **kw)
    np.testing.assert_allclose(o2, o1, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(h2, h1, rtol=1e-11, atol=1e-12)
    for a, b in zip(g2, g1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("L", [1, 2, 7, 16, 33])
def test_parallel_lengths(L):
    """The associative scan for lengths around powers of two."""
    args, sp = _select(make_inputs(b=1, d=3, L=L, n=2), "all")
    ref_out, ref_h = np_scan(*args, softplus=sp)
    out, last = _call(cygrad, [_T(a) for a in args], sp, mode="parallel")
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(last.numpy(), ref_h, rtol=1e-11, atol=1e-12)


def test_gradcheck_checkpointed():
    """Checkpointed segments pass the state on: its gradient (the kernel's initial state) is checked too."""
    args, sp = _select(make_inputs(b=1, d=2, L=6, n=2, b_kind="var", c_kind="inv"), "all")
    gradcheck(lambda T, *xs: _call(T, list(xs), sp, checkpoint_chunks=3), args)


def test_checkpointed_keeps_less(monkeypatch):
    """Checkpointing keeps the segment inputs only (no per-chunk states of the kernel)."""
    from cygrad.utils.checkpoint import saved_activation_bytes
    monkeypatch.setattr(S, "_CHUNK", 1)
    args, sp = _select(make_inputs(b=2, d=8, L=64, n=8), "all")
    ts = [_T(a, True) for a in args]
    full = CF.selective_scan(*ts, delta_softplus=sp)
    ck = CF.selective_scan(*ts, delta_softplus=sp, checkpoint_chunks=4)
    assert saved_activation_bytes(ck) < saved_activation_bytes(full)


# ---- selective_state_update --------------------------------------------------------------------------------

@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("opt", ["plain", "all"])
def test_state_update_equals_scan(grouped, opt):
    b, d, L, n = 2, 4, 6, 3
    arrs = make_inputs(b=b, d=d, L=L, n=n, b_kind="grp" if grouped else "var", c_kind="grp" if grouped else "var")
    args, sp = _select(arrs, opt)
    u, delta, A, B, C, D, z, bias = args
    ref_out, ref_h = np_scan(*args, softplus=sp)
    state = cygrad.zeros(b, d, n, dtype=cygrad.float64)
    for t in range(L):
        y = CF.selective_state_update(state, _T(u[..., t]), _T(delta[..., t]), _T(A), _T(B[..., t]), _T(C[..., t]),
                                      _T(D), _T(None if z is None else z[..., t]), _T(bias), dt_softplus=sp)
        assert tuple(y.shape) == (b, d)
        np.testing.assert_allclose(y.numpy(), ref_out[..., t], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.numpy(), ref_h, rtol=1e-12, atol=1e-12)


def test_state_update_float32_state():
    """A float32 state is updated in place from float64 inputs (cast back to the state's dtype)."""
    args, sp = _select(make_inputs(b=1, d=2, L=1, n=2), "all")
    u, delta, A, B, C, D, z, bias = args
    state = cygrad.zeros(1, 2, 2)
    CF.selective_state_update(state, _T(u[..., 0]), _T(delta[..., 0]), _T(A), _T(B[..., 0]), _T(C[..., 0]),
                              _T(D), _T(z[..., 0]), _T(bias), dt_softplus=True)
    _, h = np_scan(*args, softplus=True)
    assert state.dtype == cygrad.float32
    np.testing.assert_allclose(state.numpy(), h, rtol=1e-6)


def test_state_update_gradcheck():
    b, d, n = 2, 2, 3
    r = rng(2)
    arrs = [r.standard_normal((b, d, n)), r.standard_normal((b, d)), 0.5 * r.standard_normal((b, d)),
            -np.exp(r.standard_normal((d, n))), r.standard_normal((b, n)), r.standard_normal((b, 2, n)),
            r.standard_normal(d), r.standard_normal((b, d)), r.standard_normal(d)]

    def fn(T, state, x, dt, A, B, C, D, z, bias):
        st = state.clone()  # the update writes into its state argument
        return CF.selective_state_update(st, x, dt, A, B, C, D, z, bias, dt_softplus=True)

    gradcheck(fn, arrs)


# ---- edge sizes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 0), (0, 3, 5), (2, 0, 5)])
def test_empty(shape):
    b, d, L = shape
    n = 2
    r = rng(0)
    u = cygrad.tensor(r.standard_normal((b, d, L)), requires_grad=True)
    delta = cygrad.tensor(r.standard_normal((b, d, L)), requires_grad=True)
    A = cygrad.tensor(-np.ones((d, n)), requires_grad=True)
    B = cygrad.tensor(r.standard_normal((b, n, L)), requires_grad=True)
    C = cygrad.tensor(r.standard_normal((b, n, L)), requires_grad=True)
    out, last = CF.selective_scan(u, delta, A, B, C, return_last_state=True)
    assert tuple(out.shape) == (b, d, L) and tuple(last.shape) == (b, d, n)
    assert not np.any(last.detach().numpy())
    (out.sum() + last.sum()).backward()
    for t in (u, delta, A, B, C):
        assert t.grad is not None and tuple(t.grad.shape) == tuple(t.shape) and not np.any(t.grad.numpy())


def test_no_grad_and_partial_grads():
    args, sp = _select(make_inputs(), "all")
    with cygrad.no_grad():
        out = CF.selective_scan(*[_T(a, True) for a in args], delta_softplus=sp)
    assert not out.requires_grad
    ts = [_T(a, i == 4) for i, a in enumerate(args)]  # only C requires grad
    CF.selective_scan(*ts, delta_softplus=sp).sum().backward()
    assert ts[4].grad is not None and all(t.grad is None for i, t in enumerate(ts) if i != 4)


def test_promotes_dtypes():
    args, sp = _select(make_inputs(), "all")
    ts = [_T(a.astype(np.float32) if i != 2 else a) for i, a in enumerate(args)]  # A float64
    out = CF.selective_scan(*ts, delta_softplus=sp)
    assert out.dtype == cygrad.float64


# ---- bad input -----------------------------------------------------------------------------------------------

def _bad(**over):
    arrs = dict(zip(["u", "delta", "A", "B", "C", "D", "z", "delta_bias"], [_T(a) for a in make_inputs()]))
    arrs.update(over)
    return arrs


@pytest.mark.parametrize("over,match", [
    (dict(u=cygrad.zeros(2, 4)), r"u must be 3-D .*\(2, 4\)"),
    (dict(delta=cygrad.zeros(2, 4, 9)), r"delta must have the shape of u \(2, 4, 10\), got \(2, 4, 9\)"),
    (dict(A=cygrad.zeros(5, 3)), r"A must have shape \(d, n\) with d = 4 .*got \(5, 3\)"),
    (dict(A=cygrad.zeros(4)), r"A must have shape .*got \(4,\)"),
    (dict(B=cygrad.zeros(2, 3, 9)), r"B must have shape \(batch, n, L\) = \(2, 3, 10\).*got \(2, 3, 9\)"),
    (dict(B=cygrad.zeros(3, 3, 10)), r"B must have shape .*got \(3, 3, 10\)"),
    (dict(C=cygrad.zeros(2, 3, 3, 10)), r"divisible by the groups of C \(2, 3, 3, 10\)"),
    (dict(C=cygrad.zeros(2, 2, 4, 10)), r"grouped C must have shape .*got \(2, 2, 4, 10\)"),
    (dict(B=cygrad.zeros(4, 2)), r"time-invariant B must have shape \(d, n\) = \(4, 3\).*got \(4, 2\)"),
    (dict(B=cygrad.zeros(4)), r"B must be 2-D .*got shape \(4,\)"),
    (dict(D=cygrad.zeros(5)), r"D must have shape \(d,\) = \(4,\).*got \(5,\)"),
    (dict(delta_bias=cygrad.zeros(4, 1)), r"delta_bias must have shape \(d,\) = \(4,\).*got \(4, 1\)"),
    (dict(z=cygrad.zeros(2, 4, 11)), r"z must have the shape of u \(2, 4, 10\), got \(2, 4, 11\)"),
])
def test_bad_shapes(over, match):
    with pytest.raises(ValueError, match=match):
        CF.selective_scan(**_bad(**over))


def test_bad_dtype_and_args():
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        CF.selective_scan(**_bad(u=cygrad.zeros(2, 4, 10, dtype=cygrad.int64)))
    with pytest.raises(RuntimeError, match="not implemented for 'Bool'"):
        CF.selective_scan(**_bad(B=cygrad.zeros(4, 3, dtype=cygrad.bool)))
    with pytest.raises(TypeError, match="'A' must be Tensor"):
        CF.selective_scan(**_bad(A=np.zeros((4, 3))))
    with pytest.raises(ValueError, match="mode must be"):
        CF.selective_scan(**_bad(), mode="fast")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="checkpoint_chunks must be a positive integer"):
            CF.selective_scan(**_bad(), checkpoint_chunks=bad)


def test_state_update_bad_input():
    st = cygrad.zeros(2, 4, 3)
    x, dt = cygrad.zeros(2, 4), cygrad.zeros(2, 4)
    A, B, C = cygrad.zeros(4, 3), cygrad.zeros(2, 3), cygrad.zeros(2, 3)
    f = CF.selective_state_update
    with pytest.raises(ValueError, match=r"state must be 3-D .*\(2, 4\)"):
        f(cygrad.zeros(2, 4), x, dt, A, B, C)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, d\) = \(2, 4\).*got \(2, 5\)"):
        f(st, cygrad.zeros(2, 5), dt, A, B, C)
    with pytest.raises(ValueError, match=r"dt must have shape .*got \(4,\)"):
        f(st, x, cygrad.zeros(4), A, B, C)
    with pytest.raises(ValueError, match=r"A must have shape \(d, n\) = \(4, 3\).*got \(4, 2\)"):
        f(st, x, dt, cygrad.zeros(4, 2), B, C)
    with pytest.raises(ValueError, match=r"B must have shape \(batch, n\) = \(2, 3\).*got \(2, 4\)"):
        f(st, x, dt, A, cygrad.zeros(2, 4), C)
    with pytest.raises(ValueError, match=r"divisible by the groups of C \(2, 3, 3\)"):
        f(st, x, dt, A, B, cygrad.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"z must have shape .*got \(2, 4, 1\)"):
        f(st, x, dt, A, B, C, z=cygrad.zeros(2, 4, 1))
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        f(st.long(), x, dt, A, B, C)


# ---- the Mamba block -----------------------------------------------------------------------------------------

def test_mamba_parameters():
    cygrad.manual_seed(0)
    m = cygrad.nn.Mamba(32, d_state=8, d_conv=3, expand=2, dt_min=0.01, dt_max=0.05)
    di, R = 64, 2
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {"A_log": (di, 8), "D": (di,), "in_proj.weight": (2 * di, 32), "conv1d.weight": (di, 1, 3),
                      "conv1d.bias": (di,), "x_proj.weight": (R + 16, di), "dt_proj.weight": (di, R),
                      "dt_proj.bias": (di,), "out_proj.weight": (32, di)}
    assert list(shapes) == list(m.state_dict())
    assert m.d_inner == di and m.dt_rank == R
    np.testing.assert_allclose(m.A_log.detach().numpy(), np.log(np.tile(np.arange(1, 9), (di, 1))), rtol=1e-6)
    np.testing.assert_array_equal(m.D.detach().numpy(), np.ones(di))
    dt = CF.softplus(m.dt_proj.bias.detach()).numpy()
    assert np.all(dt >= 0.01 * (1 - 1e-4)) and np.all(dt <= 0.05 * (1 + 1e-4))
    assert np.abs(m.dt_proj.weight.detach().numpy()).max() <= R ** -0.5
    assert m.conv1d.padding == (2,) and m.conv1d.groups == di
    m2 = cygrad.nn.Mamba(20, dt_init="constant", dt_scale=2.0, bias=True, conv_bias=False, dt_rank=3,
                         dt_min=1e-6, dt_max=1e-5, dt_init_floor=1e-4)
    np.testing.assert_allclose(m2.dt_proj.weight.detach().numpy(), 2 * 3 ** -0.5, rtol=1e-6)
    np.testing.assert_allclose(CF.softplus(m2.dt_proj.bias.detach()).numpy(), 1e-4, rtol=1e-3)
    assert m2.conv1d.bias is None and m2.in_proj.bias is not None and m2.out_proj.bias is not None
    assert cygrad.nn.Mamba(33).dt_rank == 3
    assert "d_state=16" in repr(cygrad.nn.Mamba(8))
    with pytest.raises(NotImplementedError):
        cygrad.nn.Mamba(8, dt_init="xavier")
    with pytest.raises(ValueError, match="d_state"):
        cygrad.nn.Mamba(8, d_state=0)


def _torch_mamba(torch, m):
    """The reference Mamba forward written with torch ops, using m's parameters."""
    P = {k: torch.tensor(v.detach().numpy(), requires_grad=True) for k, v in m.state_dict().items()}
    F = torch.nn.functional

    def fwd(h):
        L = h.shape[1]
        xz = F.linear(h, P["in_proj.weight"]).transpose(1, 2)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(F.conv1d(x, P["conv1d.weight"], P["conv1d.bias"], padding=m.d_conv - 1,
                            groups=m.d_inner)[..., :L])
        x_dbl = F.linear(x.transpose(1, 2), P["x_proj.weight"])
        dt, B, C = torch.split(x_dbl, [m.dt_rank, m.d_state, m.d_state], dim=-1)
        dt = F.linear(dt, P["dt_proj.weight"]).transpose(1, 2)
        A = -torch.exp(P["A_log"])
        y, _ = t_scan(torch, x, dt, A, B.transpose(1, 2), C.transpose(1, 2), P["D"], z, P["dt_proj.bias"], True)
        return F.linear(y.transpose(1, 2), P["out_proj.weight"])

    return fwd, P


def test_mamba_vs_torch(torch):
    cygrad.manual_seed(1)
    m = cygrad.nn.Mamba(8, d_state=4, d_conv=3, dtype=cygrad.float64)
    x = rng(0).standard_normal((2, 6, 8))
    fwd, P = _torch_mamba(torch, m)
    tx = torch.tensor(x, requires_grad=True)
    cx = cygrad.tensor(x, requires_grad=True)
    ty, cy = fwd(tx), m(cx)
    assert_close(cy, ty, rtol=1e-10, atol=1e-12)
    g = rng(1).standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    cy.backward(cygrad.tensor(g))
    assert_close(cx.grad, tx.grad, rtol=1e-9, atol=1e-11)
    for name, p in m.named_parameters():
        assert_close(p.grad, P[name].grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [cygrad.float32, cygrad.float64])
def test_mamba_step_matches_forward(dtype):
    cygrad.manual_seed(2)
    m = cygrad.nn.Mamba(12, d_state=5, d_conv=4, dtype=dtype)
    x = cygrad.tensor(rng(3).standard_normal((3, 9, 12)), dtype=dtype)
    with cygrad.no_grad():
        y = m(x)
        conv_state, ssm_state = m.allocate_inference_cache(3)
        assert tuple(conv_state.shape) == (3, 24, 4) and tuple(ssm_state.shape) == (3, 24, 5)
        outs = []
        for t in range(9):
            o, conv_state, ssm_state = m.step(x[:, t:t + 1], conv_state, ssm_state)
            assert tuple(o.shape) == (3, 1, 12)
            outs.append(o)
        tol = dict(rtol=1e-10, atol=1e-12) if dtype == cygrad.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(cygrad.cat(outs, 1).numpy(), y.numpy(), **tol)
        # prefill a prefix with forward, then continue with step
        for split in (2, 6):
            cs, ss = m.allocate_inference_cache(3)
            m(x[:, :split], cs, ss)
            for t in range(split, 9):
                o, cs, ss = m.step(x[:, t:t + 1], cs, ss)
                np.testing.assert_allclose(o.numpy()[:, 0], y.numpy()[:, t], **tol)
            np.testing.assert_allclose(ss.numpy(), ssm_state.numpy(), **tol)
            np.testing.assert_allclose(cs.numpy(), conv_state.numpy(), **tol)


def test_mamba_gradcheck():
    cygrad.manual_seed(3)
    m = cygrad.nn.Mamba(4, d_state=2, d_conv=2, expand=1, dtype=cygrad.float64)
    x = cygrad.tensor(rng(4).standard_normal((1, 3, 4)), requires_grad=True)
    params = list(m.parameters())
    assert cygrad.autograd.gradcheck(lambda x, *ps: m(x), (x, *params))


def test_mamba_bad_input():
    m = cygrad.nn.Mamba(8, d_state=4)
    with pytest.raises(ValueError, match=r"\(batch, L, d_model=8\), got \(2, 5, 7\)"):
        m(cygrad.zeros(2, 5, 7))
    cs, ss = m.allocate_inference_cache(2)
    with pytest.raises(ValueError, match=r"one token at a time\), got \(2, 2, 8\)"):
        m.step(cygrad.zeros(2, 2, 8), cs, ss)
    with pytest.raises(ValueError, match=r"conv_state must have shape \(batch, d_inner, d_conv\) = \(2, 16, 4\)"):
        m.step(cygrad.zeros(2, 1, 8), cygrad.zeros(2, 16, 3), ss)
    with pytest.raises(ValueError, match=r"ssm_state must have shape .* = \(2, 16, 4\), got \(1, 16, 4\)"):
        m.step(cygrad.zeros(2, 1, 8), cs, cygrad.zeros(1, 16, 4))


def test_mamba_training_reduces_loss():
    cygrad.manual_seed(4)
    m = cygrad.nn.Mamba(8, d_state=4)
    opt = cygrad.optim.Adam(m.parameters(), lr=1e-2)
    x, y = cygrad.randn(4, 16, 8), cygrad.randn(4, 16, 8)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = CF.mse_loss(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
