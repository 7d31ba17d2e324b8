"""Pooling (max/avg/adaptive/lp pooling, max_unpool): vs torch, vs a naive NumPy reference,
gradcheck / gradgradcheck, thread independence, integer inputs, bad input and module reprs."""
import itertools
import math

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from conftest import FLOAT_DTYPES, assert_close, compare, gradcheck, gradgradcheck, rng


def distinct(*shape, dtype=np.float64, seed=0):
    """Values with gaps >= 0.1 (no ties within a window: finite differences stay on one argmax)."""
    n = int(np.prod(shape))
    r = rng(seed)
    return ((r.permutation(n) - n / 2) * 0.1 + r.uniform(0, 0.01, n)).reshape(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# Naive NumPy references (loops over planes, output positions and taps)

def _out_size(n, k, s, p, d, ceil_mode):
    o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _tup(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def _params(nd, kw):
    k = _tup(kw["kernel_size"], nd)
    s = _tup(kw.get("stride") or k, nd)
    p = _tup(kw.get("padding", 0), nd)
    d = _tup(kw.get("dilation", 1), nd)
    return k, s, p, d, kw.get("ceil_mode", False)


def ref_max_pool(x, nd, **kw):
    k, s, p, d, ceil_mode = _params(nd, kw)
    sp = x.shape[-nd:]
    outs = [_out_size(n, *a, ceil_mode) for n, a in zip(sp, zip(k, s, p, d))]
    planes = x.reshape((-1,) + sp)
    y = np.empty((len(planes),) + tuple(outs), x.dtype)
    ind = np.empty(y.shape, np.int64)
    for pl, plane in enumerate(planes):
        for o in itertools.product(*[range(v) for v in outs]):
            start = [o[i] * s[i] - p[i] for i in range(nd)]
            # torch's index for a window without valid taps: its first non-negative tap
            first = [st + (-(-max(-st, 0) // d[i])) * d[i] for i, st in enumerate(start)]
            best, bi = -np.inf, first
            for t in itertools.product(*[range(v) for v in k]):
                c = [start[i] + t[i] * d[i] for i in range(nd)]
                if any(ci < 0 or ci >= sp[i] for i, ci in enumerate(c)):
                    continue
                v = plane[tuple(c)]
                if v > best or np.isnan(v):
                    best, bi = v, c
            flat = 0
            for i in range(nd):
                flat = flat * sp[i] + bi[i]
            y[(pl,) + o] = best
            ind[(pl,) + o] = flat
    lead = x.shape[:-nd]
    return y.reshape(lead + tuple(outs)), ind.reshape(lead + tuple(outs))


def ref_avg_pool(x, nd, count_include_pad=True, divisor_override=None, **kw):
    k, s, p, _, ceil_mode = _params(nd, kw)
    sp = x.shape[-nd:]
    outs = [_out_size(n, kk, ss, pp, 1, ceil_mode) for n, kk, ss, pp in zip(sp, k, s, p)]
    planes = x.reshape((-1,) + sp)
    y = np.empty((len(planes),) + tuple(outs), x.dtype)
    for pl, plane in enumerate(planes):
        for o in itertools.product(*[range(v) for v in outs]):
            lo = [o[i] * s[i] - p[i] for i in range(nd)]
            hi = [min(lo[i] + k[i], sp[i] + p[i]) for i in range(nd)]
            pool = int(np.prod([h - l for l, h in zip(lo, hi)]))
            lo = [max(v, 0) for v in lo]
            hi = [min(h, n) for h, n in zip(hi, sp)]
            win = plane[tuple(slice(l, h) for l, h in zip(lo, hi))]
            div = divisor_override or (pool if count_include_pad else win.size)
            y[(pl,) + o] = win.sum() / div
    return y.reshape(x.shape[:-nd] + tuple(outs))


def _adaptive_ranges(n, o):
    return [((i * n) // o, -(-((i + 1) * n) // o)) for i in range(o)]


def ref_adaptive(x, nd, out, is_max):
    sp = x.shape[-nd:]
    out = [sp[i] if v is None else v for i, v in enumerate(out)]
    rngs = [_adaptive_ranges(n, o) for n, o in zip(sp, out)]
    planes = x.reshape((-1,) + sp)
    y = np.empty((len(planes),) + tuple(out), x.dtype)
    ind = np.empty(y.shape, np.int64)
    for pl, plane in enumerate(planes):
        for o in itertools.product(*[range(v) for v in out]):
            sl = tuple(slice(*rngs[i][o[i]]) for i in range(nd))
            win = plane[sl]
            if is_max:
                flat = win.reshape(-1)
                nan = np.flatnonzero(np.isnan(flat))
                j = nan[-1] if len(nan) else int(np.argmax(flat))
                y[(pl,) + o] = flat[j]
                loc = np.unravel_index(j, win.shape)
                ind[(pl,) + o] = np.ravel_multi_index([loc[i] + sl[i].start for i in range(nd)], sp)
            else:
                y[(pl,) + o] = win.mean()
    shape = x.shape[:-nd] + tuple(out)
    return y.reshape(shape), ind.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Cases

MAX_CASES = [
    (1, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    (1, (2, 3, 8), dict(kernel_size=2)),
    (1, (3, 10), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    (2, (2, 3, 7, 9), dict(kernel_size=3, stride=2, padding=1)),
    (2, (2, 3, 7, 9), dict(kernel_size=2)),
    (2, (2, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True)),
    (2, (3, 6, 5), dict(kernel_size=3, stride=2, ceil_mode=True)),
    (2, (1, 2, 5, 5), dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)),
    (3, (1, 2, 5, 6, 7), dict(kernel_size=2)),
    (3, (1, 2, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1)),
    (3, (2, 4, 5, 6), dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), dilation=(1, 1, 2),
                           ceil_mode=True)),
]

AVG_CASES = [
    (1, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    (1, (3, 8), dict(kernel_size=2)),
    (1, (2, 3, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    (2, (2, 3, 8, 8), dict(kernel_size=2)),
    (2, (2, 3, 7, 9), dict(kernel_size=2)),
    (2, (2, 3, 7, 9), dict(kernel_size=3, stride=2, padding=1)),
    (2, (2, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True,
                           count_include_pad=False)),
    (2, (3, 6, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, (1, 2, 6, 5), dict(kernel_size=3, stride=1, padding=1, divisor_override=4)),
    (3, (1, 2, 5, 6, 7), dict(kernel_size=2)),
    (3, (1, 2, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    (3, (2, 4, 5, 6), dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), divisor_override=3)),
]

ADAPTIVE_CASES = [
    (1, (2, 3, 7), (3,)), (1, (2, 3, 7), (7,)), (1, (3, 5), (8,)), (1, (2, 3, 6), (1,)),
    (2, (2, 3, 7, 9), (3, 4)), (2, (2, 3, 7, 9), (None, 5)), (2, (3, 5, 6), (1, 1)), (2, (1, 2, 5, 4), (7, 6)),
    (3, (1, 2, 5, 6, 7), (2, 3, 4)), (3, (2, 5, 4, 3), (None, 3, 2)), (3, (1, 2, 3, 3, 3), (1, 1, 1)),
]


def _id(case):
    nd, shape, kw = case
    return f"{nd}d-{'x'.join(map(str, shape))}-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _fn(kind, nd):
    return {"max": f"max_pool{nd}d", "avg": f"avg_pool{nd}d"}[kind]


# ---------------------------------------------------------------------------------------------
# max_pool

@pytest.mark.parametrize("case", MAX_CASES, ids=_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_pool_vs_torch(torch, case, dtype):
    nd, shape, kw = case
    x = distinct(*shape, dtype=dtype)
    name = _fn("max", nd)
    compare(torch, lambda T, x: getattr(T.nn.functional, name)(x, return_indices=True, **kw), [x])
    compare(torch, lambda T, x: getattr(T.nn.functional, name)(x, **kw), [x])


@pytest.mark.parametrize("case", MAX_CASES, ids=_id)
def test_max_pool_vs_reference(case):
    nd, shape, kw = case
    x = rng(3).standard_normal(shape)
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[3::11] = -np.inf
    y, i = getattr(CF, _fn("max", nd))(cygrad.tensor(x), return_indices=True, **kw)
    ry, ri = ref_max_pool(x, nd, **kw)
    np.testing.assert_array_equal(y.numpy(), ry)
    np.testing.assert_array_equal(i.numpy(), ri)


@pytest.mark.parametrize("case", MAX_CASES, ids=_id)
def test_max_pool_gradcheck(case):
    nd, shape, kw = case
    gradcheck(lambda T, x: getattr(T.nn.functional, _fn("max", nd))(x, **kw), [distinct(*shape)])


def test_max_pool_nan_and_inf_like_torch(torch):
    x = np.array([[[-np.inf, -np.inf, 1.0, np.nan, 2.0, np.nan, 3.0, 3.0, -1.0]]])
    for fn, kw in [("max_pool1d", dict(kernel_size=3, stride=1, padding=1)),
                   ("max_pool1d", dict(kernel_size=2, stride=1, dilation=3)),
                   ("adaptive_max_pool1d", dict(output_size=4))]:
        c = getattr(CF, fn)(cygrad.tensor(x), return_indices=True, **kw)
        t = getattr(torch.nn.functional, fn)(torch.tensor(x), return_indices=True, **kw)
        assert_close(c[0], t[0])
        assert_close(c[1], t[1])
    # windows without a valid tap (dilation jumps over the input): -inf and torch's index
    x = np.array([[[0.5, -1.0, 2.0]]])
    c = CF.max_pool1d(cygrad.tensor(x), 2, stride=1, padding=1, dilation=4, return_indices=True)
    t = torch.nn.functional.max_pool1d(torch.tensor(x), 2, stride=1, padding=1, dilation=4, return_indices=True)
    assert_close(c[0], t[0])
    assert_close(c[1], t[1])
    xc = cygrad.tensor(x, requires_grad=True)  # its backward must not write outside the input
    CF.max_pool1d(xc, 2, stride=1, padding=1, dilation=4).sum().backward()
    assert xc.grad.numpy().tolist() == [[[0.0, 0.0, 0.0]]]


def test_max_pool_ties_pick_first(torch):
    x = np.array([[[[1.0, 5.0, 5.0], [5.0, 2.0, 5.0], [0.0, 5.0, 1.0]]]])
    for kw in [dict(kernel_size=2, stride=1), dict(kernel_size=3, padding=1, stride=2)]:
        c = CF.max_pool2d(cygrad.tensor(x), return_indices=True, **kw)
        t = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        assert_close(c[1], t[1])
    compare(torch, lambda T, x: T.nn.functional.max_pool2d(x, 2, stride=1), [x])


# ---------------------------------------------------------------------------------------------
# avg_pool

@pytest.mark.parametrize("case", AVG_CASES, ids=_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_avg_pool_vs_torch(torch, case, dtype):
    nd, shape, kw = case
    x = rng(1).standard_normal(shape).astype(dtype)
    compare(torch, lambda T, x: getattr(T.nn.functional, _fn("avg", nd))(x, **kw), [x])


@pytest.mark.parametrize("case", AVG_CASES, ids=_id)
def test_avg_pool_vs_reference(case):
    nd, shape, kw = case
    x = rng(2).standard_normal(shape)
    y = getattr(CF, _fn("avg", nd))(cygrad.tensor(x), **kw)
    np.testing.assert_allclose(y.numpy(), ref_avg_pool(x, nd, **kw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", AVG_CASES, ids=_id)
def test_avg_pool_gradcheck(case):
    nd, shape, kw = case
    gradcheck(lambda T, x: getattr(T.nn.functional, _fn("avg", nd))(x, **kw), [rng(4).standard_normal(shape)])


def test_avg_pool1d_has_no_divisor_override(torch):
    x = cygrad.randn(1, 2, 6)
    with pytest.raises(TypeError):
        CF.avg_pool1d(x, 2, divisor_override=2)


# ---------------------------------------------------------------------------------------------
# adaptive pooling

def _aid(case):
    nd, shape, out = case
    return f"{nd}d-{'x'.join(map(str, shape))}-to-{out}"


def _adaptive_arg(nd, out):
    return out[0] if nd == 1 else out


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=_aid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_adaptive_vs_torch(torch, case, dtype):
    nd, shape, out = case
    x = distinct(*shape, dtype=dtype)
    o = _adaptive_arg(nd, out)
    compare(torch, lambda T, x: getattr(T.nn.functional, f"adaptive_avg_pool{nd}d")(x, o), [x])
    compare(torch, lambda T, x: getattr(T.nn.functional, f"adaptive_max_pool{nd}d")(x, o, return_indices=True),
            [x])


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=_aid)
def test_adaptive_vs_reference(case):
    nd, shape, out = case
    x = rng(5).standard_normal(shape)
    x.reshape(-1)[::5] = np.nan
    o = _adaptive_arg(nd, out)
    ya = getattr(CF, f"adaptive_avg_pool{nd}d")(cygrad.tensor(x), o)
    ym, im = getattr(CF, f"adaptive_max_pool{nd}d")(cygrad.tensor(x), o, return_indices=True)
    ra, _ = ref_adaptive(x, nd, out, False)
    rm, ri = ref_adaptive(x, nd, out, True)
    np.testing.assert_allclose(ya.numpy(), ra, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(ym.numpy(), rm)
    np.testing.assert_array_equal(im.numpy(), ri)


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=_aid)
def test_adaptive_gradcheck(case):
    nd, shape, out = case
    o = _adaptive_arg(nd, out)
    x = distinct(*shape)
    gradcheck(lambda T, x: getattr(T.nn.functional, f"adaptive_avg_pool{nd}d")(x, o), [x])
    gradcheck(lambda T, x: getattr(T.nn.functional, f"adaptive_max_pool{nd}d")(x, o), [x])


def test_adaptive_zero_output_and_empty_batch(torch):
    for shape, fn, o in [((2, 3, 5, 5), "adaptive_avg_pool2d", 0), ((2, 3, 5, 5), "adaptive_max_pool2d", 0),
                         ((0, 3, 4, 5), "adaptive_avg_pool2d", 2), ((0, 3, 4, 5), "adaptive_max_pool2d", 2),
                         ((2, 0, 5), "adaptive_avg_pool1d", 2), ((2, 0, 5, 5), "adaptive_avg_pool2d", 2)]:
        x = np.ones(shape)
        c = getattr(CF, fn)(cygrad.tensor(x), o)
        t = getattr(torch.nn.functional, fn)(torch.tensor(x), o)
        assert tuple(c.shape) == tuple(t.shape)
    for fn in ("max_pool2d", "avg_pool2d"):
        compare(torch, lambda T, x: getattr(T.nn.functional, fn)(x, 2), [np.ones((0, 3, 5, 5))])


# ---------------------------------------------------------------------------------------------
# max_unpool

UNPOOL_CASES = [
    (1, (2, 3, 9), dict(kernel_size=2), None),
    (1, (3, 9), dict(kernel_size=3, stride=2, padding=1), [9]),
    (2, (2, 3, 6, 8), dict(kernel_size=2), None),
    (2, (2, 3, 6, 7), dict(kernel_size=2), (6, 7)),
    (2, (3, 7, 7), dict(kernel_size=3, stride=2, padding=1), None),
    (3, (1, 2, 4, 5, 6), dict(kernel_size=2), (1, 2, 5, 5, 6)),
    (3, (2, 4, 4, 4), dict(kernel_size=3, stride=2, padding=1), (4, 4, 4)),
]


@pytest.mark.parametrize("case", UNPOOL_CASES, ids=lambda c: _id(c[:3]) + f"-out={c[3]}")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_unpool_vs_torch(torch, case, dtype):
    nd, shape, kw, out = case
    x = distinct(*shape, dtype=dtype)
    _, idx = CF.__dict__[f"max_pool{nd}d"](cygrad.tensor(x), return_indices=True, **kw)
    y, _ = CF.__dict__[f"max_pool{nd}d"](cygrad.tensor(x), return_indices=True, **kw)
    idx = idx.numpy()
    compare(torch, lambda T, y, i: getattr(T.nn.functional, f"max_unpool{nd}d")(y, i, output_size=out, **kw),
            [y.numpy(), idx])
    # the max_pool -> max_unpool round trip keeps the maxima in place
    u = getattr(CF, f"max_unpool{nd}d")(y, cygrad.tensor(idx), output_size=out, **kw)
    flat_u = u.numpy().reshape(int(np.prod(u.shape[:-nd])), -1)
    np.testing.assert_array_equal(np.take_along_axis(flat_u, idx.reshape(flat_u.shape[0], -1), 1),
                                  y.numpy().reshape(flat_u.shape[0], -1))


@pytest.mark.parametrize("case", [c for c in UNPOOL_CASES if "stride" not in c[2]], ids=lambda c: _id(c[:3]))
def test_max_unpool_gradcheck(case):
    # non-overlapping windows: no duplicate indices (with duplicates the forward writes one value
    # but the backward gathers into every input, in torch too)
    nd, shape, kw, out = case
    x = distinct(*shape)
    y, idx = getattr(CF, f"max_pool{nd}d")(cygrad.tensor(x), return_indices=True, **kw)
    gradcheck(lambda T, y, i: getattr(T.nn.functional, f"max_unpool{nd}d")(y, i, output_size=out, **kw),
              [y.numpy(), idx.numpy()])
    gradgradcheck(lambda T, y, i: getattr(T.nn.functional, f"max_unpool{nd}d")(y, i, output_size=out, **kw),
                  [y.numpy(), idx.numpy()])


def test_max_unpool_duplicate_indices_like_torch(torch):
    y = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    i = np.array([[[[0, 0], [5, 5]]]])
    compare(torch, lambda T, y, i: T.nn.functional.max_unpool2d(y, i, 2), [y, i])


# ---------------------------------------------------------------------------------------------
# lp_pool

@pytest.mark.parametrize("norm_type", [1, 2, 3, 2.5, math.inf, -math.inf])
@pytest.mark.parametrize("nd,shape,kw", [(1, (2, 3, 9), dict(kernel_size=3, stride=2)),
                                         (1, (3, 8), dict(kernel_size=2, ceil_mode=True, stride=3)),
                                         (2, (2, 3, 7, 6), dict(kernel_size=2)),
                                         (2, (2, 2, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), ceil_mode=True)),
                                         (3, (1, 2, 4, 5, 4), dict(kernel_size=2))])
def test_lp_pool_vs_torch(torch, norm_type, nd, shape, kw):
    x = rng(6).standard_normal(shape)  # mixed signs: NaN where torch gives NaN
    with np.errstate(invalid="ignore"):
        compare(torch, lambda T, x: getattr(T.nn.functional, f"lp_pool{nd}d")(x, norm_type, **kw), [x])
        xp = np.abs(x) + 0.5
        compare(torch, lambda T, x: getattr(T.nn.functional, f"lp_pool{nd}d")(x, norm_type, **kw),
                [xp.astype(np.float32)])
    if norm_type in (2, 2.5) and nd == 2:
        gradcheck(lambda T, x: T.nn.functional.lp_pool2d(x, norm_type, **kw), [xp])


# ---------------------------------------------------------------------------------------------
# Higher-order gradients

@pytest.mark.parametrize("fn,shape,kw", [
    ("max_pool2d", (1, 2, 5, 6), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", (2, 7), dict(kernel_size=2, ceil_mode=True)),
    ("max_pool3d", (1, 1, 4, 3, 4), dict(kernel_size=2, stride=1)),
    ("avg_pool2d", (1, 2, 5, 6), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("avg_pool3d", (1, 1, 4, 3, 4), dict(kernel_size=2, divisor_override=3)),
    ("adaptive_avg_pool2d", (1, 2, 5, 7), dict(output_size=(3, 4))),
    ("adaptive_max_pool2d", (1, 2, 5, 7), dict(output_size=(3, 4))),
])
def test_gradgradcheck(fn, shape, kw):
    gradgradcheck(lambda T, x: getattr(T.nn.functional, fn)(x, **kw), [distinct(*shape)])


def test_double_backward_vs_torch(torch):
    x = distinct(2, 3, 6, 6)
    w = rng(7).standard_normal((2, 3, 6, 6))
    res = []
    for T in (cygrad, torch):
        F = T.nn.functional
        xt = T.tensor(x, requires_grad=True)
        y = (F.max_pool2d(xt, 3, 2, 1) ** 2).sum() + (F.avg_pool2d(xt, 2) ** 2).sum() + \
            (F.adaptive_avg_pool2d(xt, 4) ** 2).sum()
        g, = T.autograd.grad(y, xt, create_graph=True)
        (g * T.tensor(w)).sum().backward()
        res.append((g.detach().numpy(), xt.grad.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Threads

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_thread_count_does_not_change_results(restore_threads, dtype):
    x = rng(8).standard_normal((4, 16, 33, 31)).astype(dtype)
    g = rng(9).standard_normal((4, 16, 17, 16)).astype(dtype)

    def run():
        out = []
        for f in (lambda x: CF.max_pool2d(x, 3, 2, 1), lambda x: CF.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                  lambda x: CF.adaptive_avg_pool2d(x, (17, 16)), lambda x: CF.adaptive_max_pool2d(x, (17, 16)),
                  lambda x: CF.avg_pool2d(x[..., :32, :32], 2, padding=0, ceil_mode=False)):
            xt = cygrad.tensor(x, requires_grad=True)
            y = f(xt)
            y.backward(cygrad.tensor(g[..., :y.shape[-2], :y.shape[-1]]))
            out += [y.detach().numpy(), xt.grad.numpy()]
        return out

    cygrad.set_num_threads(1)
    one = run()
    cygrad.set_num_threads(2)
    two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_fast_paths_match_generic(torch):
    """avg 2x2/s2 fast path (even and odd sizes) and the 2-d max path vs torch, bigger planes."""
    for shape in [(2, 3, 16, 16), (2, 3, 15, 17)]:
        x = rng(10).standard_normal(shape).astype(np.float32)
        compare(torch, lambda T, x: T.nn.functional.avg_pool2d(x, 2), [x])
        compare(torch, lambda T, x: T.nn.functional.avg_pool2d(x, 2, ceil_mode=True), [x])
        compare(torch, lambda T, x: T.nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True), [x])


# ---------------------------------------------------------------------------------------------
# Integer and other dtypes

@pytest.mark.parametrize("np_dtype", [np.int64, np.int32, np.int16, np.uint8])
def test_integer_inputs_like_torch(torch, np_dtype):
    x = rng(11).integers(0 if np_dtype == np.uint8 else -50, 100, (2, 3, 7, 6)).astype(np_dtype)
    x3 = rng(11).integers(0, 100, (1, 2, 4, 5, 6)).astype(np_dtype)
    x1 = x[:, :, 0]
    calls = [
        (lambda F, x: F.max_pool2d(x, 3, 2, 1, return_indices=True), x),
        (lambda F, x: F.max_pool2d(x, 2, ceil_mode=True, dilation=2), x),
        (lambda F, x: F.max_pool3d(x, 2, return_indices=True), x3),
        (lambda F, x: F.max_pool1d(x, 2, return_indices=True), x1),
        (lambda F, x: F.avg_pool2d(x, 3, 2, 1), x),
        (lambda F, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False, ceil_mode=True), x),
        (lambda F, x: F.avg_pool2d(x, 2, divisor_override=3), x),
        (lambda F, x: F.avg_pool3d(x, 2), x3),
        (lambda F, x: F.avg_pool1d(x, 3, padding=1), x1),
    ]
    for fn, a in calls:
        try:
            t = fn(torch.nn.functional, torch.tensor(a))
        except NotImplementedError as e:  # torch's avg_pool: int64 only
            with pytest.raises(NotImplementedError) as ce:
                fn(CF, cygrad.tensor(a))
            assert str(ce.value) == str(e)
            continue
        c = fn(CF, cygrad.tensor(a))
        for cc, tt in zip(c if isinstance(c, tuple) else (c,), t if isinstance(t, tuple) else (t,)):
            assert_close(cc, tt)


def test_unsupported_dtypes_raise_like_torch(torch):
    xl = np.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    calls = [
        lambda F, x: F.max_pool1d(x[0], 2),
        lambda F, x: F.adaptive_avg_pool2d(x, 2),
        lambda F, x: F.adaptive_max_pool2d(x, 2),
        lambda F, x: F.adaptive_avg_pool1d(x[0], 2),
        lambda F, x: F.adaptive_avg_pool3d(x, 2),
        lambda F, x: F.adaptive_max_pool3d(x, 2),
        lambda F, x: F.max_unpool2d(x, x, 2),
        lambda F, x: F.max_pool2d(x > 3, 2),
        lambda F, x: F.avg_pool2d(x > 3, 2),
        lambda F, x: F.max_pool3d(x > 3, 2),
    ]
    for fn in calls:
        with pytest.raises(NotImplementedError) as te:
            fn(torch.nn.functional, torch.tensor(xl))
        with pytest.raises(NotImplementedError) as ce:
            fn(CF, cygrad.tensor(xl))
        assert str(ce.value) == str(te.value)


def test_float16_does_not_crash():
    x = cygrad.randn(1, 2, 5, 5).half()
    assert CF.max_pool2d(x, 2).dtype == cygrad.float16
    assert CF.avg_pool2d(x, 2).dtype == cygrad.float16
    assert CF.adaptive_avg_pool2d(x, 3).dtype == cygrad.float16


# ---------------------------------------------------------------------------------------------
# Bad input: same exception type and message as torch

BAD = [
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 6),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 0),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, stride=0),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, stride=-1),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, dilation=0),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, padding=-1),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, (2, -1), stride=1),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4[0, 0], 2),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x5, 2),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, (2, 2, 2)),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, stride=(1, 1, 1)),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, padding=(1, 1, 1)),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2, dilation=(1, 1, 1)),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 3, dilation=3),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.max_pool2d(x4, 2.5),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, 6),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, 2, dilation=0),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, -1, stride=1),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, 2, stride=-1),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x4[0], 2),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5, (2, 2)),
    lambda F, x4, x3, x5, x1: F.max_pool3d(x5[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 8),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 0),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 2, stride=0),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 2, dilation=0),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 2, padding=-1),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, (2, 2)),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3, 2, stride=(1, 1)),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x1, 2),
    lambda F, x4, x3, x5, x1: F.max_pool1d(x3[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, 6),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, 0),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, -1),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, 2, divisor_override=0),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, (2, 2, 2)),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4, 2, stride=(1, 1, 1)),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x5, 2),
    lambda F, x4, x3, x5, x1: F.avg_pool2d(x4[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, 5),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, 2, padding=-1),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, 2, divisor_override=0),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, (2, 2)),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5, 2, padding=(1, 1)),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x4[0, 0], 2),
    lambda F, x4, x3, x5, x1: F.avg_pool3d(x5[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x3, 8),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x3, 3, padding=2),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x3, 0),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x3, (2, 2)),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x1, 2),
    lambda F, x4, x3, x5, x1: F.avg_pool1d(x4, 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool2d(x4, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool2d(x4, (2, 2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool2d(x4[0, 0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool2d(x4[:, :, :0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool2d(x4, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool2d(x4, (2, 2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool2d(x4[0, 0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool2d(x4[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool1d(x1, 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool1d(x3, (2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool1d(x3, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool1d(x3, None),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool1d(x3, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool1d(x3, (2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool1d(x3[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool3d(x5, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool3d(x5, (2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool3d(x1, 2),
    lambda F, x4, x3, x5, x1: F.adaptive_avg_pool3d(x5[:, :0], 2),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool3d(x5, -1),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool3d(x5, (2, 2)),
    lambda F, x4, x3, x5, x1: F.adaptive_max_pool3d(x1, 2),
]

_X4, _X3, _X5, _X1 = (rng(12).standard_normal(s) for s in [(2, 3, 5, 5), (2, 3, 7), (1, 2, 4, 5, 6), (7,)])


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input_like_torch(torch, i):
    fn = BAD[i]
    with pytest.raises(Exception) as te:
        fn(torch.nn.functional, *(torch.tensor(a) for a in (_X4, _X3, _X5, _X1)))
    with pytest.raises(type(te.value)) as ce:
        fn(CF, *(cygrad.tensor(a) for a in (_X4, _X3, _X5, _X1)))
    assert str(ce.value) == str(te.value)


def _one_bad(i, v):
    """indices with one invalid entry (torch reports the last invalid index found, and with several
    the one it reports depends on its threads)."""
    i = i.clone()
    i[(1,) * (i.dim() - 1) + (0,)] = v
    return i


def _unpool_bad(F, T):
    x = T.tensor(distinct(2, 3, 4, 4))
    y, i = F.max_pool2d(x, 2, return_indices=True)
    y3, i3 = F.max_pool3d(x[None], 2, return_indices=True)
    y1, i1 = F.max_pool1d(x[:, :, 0], 2, return_indices=True)
    return [
        lambda: F.max_unpool2d(y, i, 2, output_size=(6, 6)),
        lambda: F.max_unpool2d(y[:1, :1], i[:1, :1], 2, output_size=(3, 3)),
        lambda: F.max_unpool2d(y, i[:, :, :1], 2),
        lambda: F.max_unpool2d(y, _one_bad(i, 100), 2),
        lambda: F.max_unpool2d(y, _one_bad(i, -100), 2),
        lambda: F.max_unpool2d(y, i.int(), 2),
        lambda: F.max_unpool2d(y, i.float(), 2),
        lambda: F.max_unpool2d(y[0, 0], i[0, 0], 2),
        lambda: F.max_unpool2d(y, i, 2, output_size=[4]),
        lambda: F.max_unpool2d(y, i, 2, stride=0),
        lambda: F.max_unpool2d(y, i, 2, padding=3),
        lambda: F.max_unpool2d(y[:, :0], i[:, :0], 2),
        lambda: F.max_unpool1d(y[0, 0, 0], i[0, 0, 0], 2),
        lambda: F.max_unpool1d(y1, _one_bad(i1, 9), 2),
        lambda: F.max_unpool3d(y3, _one_bad(i3, 100), 2),
        lambda: F.max_unpool3d(y3[0, 0], i3[0, 0], 2),
        lambda: F.max_unpool3d(y3, i3[..., :1], 2),
    ]


def test_bad_unpool_like_torch(torch):
    for cfn, tfn in zip(_unpool_bad(CF, cygrad), _unpool_bad(torch.nn.functional, torch)):
        with pytest.raises(Exception) as te:
            tfn()
        with pytest.raises(type(te.value)) as ce:
            cfn()
        assert str(ce.value) == str(te.value)


def test_pool_messages_name_the_sizes():
    with pytest.raises(RuntimeError, match=r"Given input size: \(3x5x5\). Calculated output size: \(3x0x0\)"):
        CF.max_pool2d(cygrad.randn(2, 3, 5, 5), 6)
    with pytest.raises(RuntimeError, match=r"\[2, 0, 5, 5\]"):
        CF.max_pool2d(cygrad.randn(2, 0, 5, 5), 2)


# ---------------------------------------------------------------------------------------------
# Modules

MODULES = [
    ("MaxPool1d", (2,), (2, 3, 9)), ("MaxPool2d", (3, 2, 1), (2, 3, 7, 9)),
    ("MaxPool2d", ((2, 3),), dict(dilation=2, ceil_mode=True), (2, 3, 7, 9)),
    ("MaxPool3d", (2,), (1, 2, 4, 5, 6)), ("AvgPool1d", (2,), (2, 3, 9)),
    ("AvgPool1d", (3, 2, 1, True, False), (2, 3, 9)), ("AvgPool2d", (2,), (2, 3, 7, 9)),
    ("AvgPool2d", ((2, 3),), dict(divisor_override=3), (2, 3, 7, 9)),
    ("AvgPool3d", (2,), dict(stride=1), (1, 2, 4, 5, 6)),
    ("AdaptiveAvgPool1d", (3,), (2, 3, 9)), ("AdaptiveAvgPool2d", ((None, 7),), (2, 3, 7, 9)),
    ("AdaptiveAvgPool3d", (2,), (1, 2, 4, 5, 6)), ("AdaptiveMaxPool1d", (3,), (2, 3, 9)),
    ("AdaptiveMaxPool2d", (4, True), (2, 3, 7, 9)), ("AdaptiveMaxPool3d", ((1, 2, 3),), (1, 2, 4, 5, 6)),
    ("LPPool1d", (2, 3), (2, 3, 9)), ("LPPool2d", (2.5, (2, 3), 1, True), (2, 3, 7, 9)),
    ("LPPool3d", (2, 2), (1, 2, 4, 5, 6)),
]


@pytest.mark.parametrize("spec", MODULES, ids=lambda s: s[0] + repr(s[1]))
def test_modules_vs_torch(torch, spec):
    name, args, *rest = spec
    kwargs = rest[0] if len(rest) == 2 else {}
    shape = rest[-1]
    cm, tm = getattr(cygrad.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(cm) == repr(tm)
    x = np.abs(distinct(*shape)) + 0.5
    compare(torch, lambda T, x: (cm if T is cygrad else tm)(x), [x])


@pytest.mark.parametrize("nd,shape", [(1, (2, 3, 8)), (2, (2, 3, 6, 6)), (3, (1, 2, 4, 4, 4))])
def test_unpool_modules_vs_torch(torch, nd, shape):
    cm, tm = getattr(cygrad.nn, f"MaxUnpool{nd}d")(2), getattr(torch.nn, f"MaxUnpool{nd}d")(2)
    assert repr(cm) == repr(tm)
    assert repr(getattr(cygrad.nn, f"MaxUnpool{nd}d")(2, 1, 1)) == repr(getattr(torch.nn, f"MaxUnpool{nd}d")(2, 1, 1))
    pool = getattr(torch.nn, f"MaxPool{nd}d")(2, return_indices=True)
    y, i = pool(torch.tensor(distinct(*shape)))
    compare(torch, lambda T, y, i: (cm if T is cygrad else tm)(y, i), [y.numpy(), i.numpy()])


def test_module_attributes_like_torch(torch):
    for name, args in [("MaxPool2d", (3,)), ("AvgPool1d", (3,)), ("AvgPool2d", (3,)), ("MaxUnpool2d", (2,)),
                       ("LPPool2d", (2, 3)), ("AdaptiveMaxPool2d", (3,))]:
        cm, tm = getattr(cygrad.nn, name)(*args), getattr(torch.nn, name)(*args)
        for attr in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices",
                     "count_include_pad", "divisor_override", "norm_type", "output_size"):
            if hasattr(tm, attr):
                assert getattr(cm, attr) == getattr(tm, attr), (name, attr)
