"""Resampling (interpolate, upsample*, pixel_shuffle/unshuffle, Upsample modules): vs torch, vs naive
NumPy references, gradcheck / gradgradcheck, thread-count independence, bad input."""
import warnings

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from cygrad import nn
from cygrad._C import resample as K
from conftest import FLOAT_DTYPES, assert_close, compare, gradcheck, gradgradcheck, randn, rng

MODES = {1: ["nearest", "nearest-exact", "linear", "area"],
         2: ["nearest", "nearest-exact", "bilinear", "bicubic", "area"],
         3: ["nearest", "nearest-exact", "trilinear", "area"]}
ALIGNED = ("linear", "bilinear", "bicubic", "trilinear")
IN_SHAPE = {1: (2, 3, 5), 2: (2, 3, 5, 4), 3: (1, 2, 3, 4, 3)}

# (size, scale_factor, recompute_scale_factor) per rank: up, down, mixed, non-integer scales,
# identity axes, size 1 outputs
CASES = {
    1: [(9, None, None), (3, None, None), (1, None, None), (5, None, None), (None, 2.0, None),
        (None, 1.7, None), (None, 0.6, None), (None, 2.5, True), (None, 0.45, False), (None, 3, None)],
    2: [((7, 9), None, None), ((3, 2), None, None), ((1, 6), None, None), ((5, 4), None, None),
        (None, 2.0, None), (None, (1.5, 0.75), None), (None, (0.5, 2.6), True), (None, 1.3, False),
        (None, (3, 1), None), ((9, 1), None, None)],
    3: [((5, 6, 4), None, None), ((2, 3, 2), None, None), (None, 2, None), (None, (1.0, 1.5, 0.7), None),
        (None, (0.7, 2.0, 1.3), True), ((3, 7, 1), None, None)],
}


def _case_id(c):
    size, scale, rsf = c
    return f"size={size}" if size is not None else f"scale={scale}" + ("-rsf" if rsf else "")


def _kw(mode, ac, case):
    size, scale, rsf = case
    return dict(size=size, scale_factor=scale, mode=mode, align_corners=ac, recompute_scale_factor=rsf)


def _all(nd):
    for mode in MODES[nd]:
        for ac in ((False, True) if mode in ALIGNED else (None,)):
            for case in CASES[nd]:
                yield pytest.param(nd, mode, ac, case, id=f"{nd}d-{mode}-ac{ac}-{_case_id(case)}")


ALL = [p for nd in (1, 2, 3) for p in _all(nd)]


def _torch_nearest_bwd_inconsistent(nd, mode, shape, case):
    """torch's 1-D / 3-D 'nearest' backward uses the shortcuts out == in (copy) and out == 2 in
    (j >> 1) of the 2-D kernel while its forward does not, so when a scale_factor other than 1 / 2
    gives such a size, torch's gradient is not the gradient of its own forward. cygrad's backward
    is the exact adjoint of its forward (checked by gradcheck and test_nearest_torch_inconsistency)."""
    size, scale, rsf = case
    if mode != "nearest" or nd == 2 or scale is None or rsf:
        return False
    scales = scale if isinstance(scale, tuple) else (scale,) * nd
    for n, s in zip(shape[2:], scales):
        out = int(n * s)
        if (out == n and s != 1) or (out == 2 * n and s != 2):
            return True
    return False


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("nd,mode,ac,case", ALL)
def test_interpolate_vs_torch(torch, nd, mode, ac, case, dtype):
    x = randn(*IN_SHAPE[nd], dtype=dtype)
    kw = _kw(mode, ac, case)
    grad = not _torch_nearest_bwd_inconsistent(nd, mode, x.shape, case)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}   # float32 sums in another order
    compare(torch, lambda T, x: T.nn.functional.interpolate(x, **kw), [x], grad=grad, **tol)


@pytest.mark.parametrize("nd,mode,ac,case", ALL)
def test_interpolate_gradcheck(nd, mode, ac, case):
    x = randn(*IN_SHAPE[nd])
    gradcheck(lambda T, x: T.nn.functional.interpolate(x, **_kw(mode, ac, case)), [x])


@pytest.mark.parametrize("nd,mode,ac,case", [
    (1, "linear", False, (None, 1.7, None)), (2, "bilinear", True, ((7, 3), None, None)),
    (2, "bicubic", False, (None, (1.5, 0.75), None)), (2, "nearest", None, (None, 2, None)),
    (3, "trilinear", False, ((2, 5, 4), None, None)), (2, "area", None, ((3, 2), None, None)),
    (3, "nearest-exact", None, (None, 1.5, None))])
def test_interpolate_gradgradcheck(nd, mode, ac, case):
    x = randn(*IN_SHAPE[nd])
    gradgradcheck(lambda T, x: T.nn.functional.interpolate(x, **_kw(mode, ac, case)), [x])


def test_double_backward_vs_torch(torch):
    x = randn(2, 3, 4, 5)
    res = {}
    for T in (cygrad, torch):
        xt = T.tensor(x, requires_grad=True)
        y = T.nn.functional.interpolate(xt, size=(7, 3), mode="bicubic", align_corners=True)
        g, = T.autograd.grad((y * y).sum(), xt, create_graph=True)
        (g * g).sum().backward()
        res[T] = (g, xt.grad)
    assert_close(res[cygrad][0], res[torch][0])
    assert_close(res[cygrad][1], res[torch][1])


def test_nearest_torch_inconsistency(torch):
    """Forward matches torch; the backward is the adjoint of the forward (<A x, g> = <x, A^T g>)."""
    x = randn(2, 3, 3)
    kw = dict(scale_factor=2.3, mode="nearest")
    xc = cygrad.tensor(x, requires_grad=True)
    y = CF.interpolate(xc, **kw)
    assert_close(y, torch.nn.functional.interpolate(torch.tensor(x), **kw))
    g = randn(*y.shape, seed=3)
    y.backward(cygrad.tensor(g))
    np.testing.assert_allclose((y.detach().numpy() * g).sum(), (x * xc.grad.numpy()).sum(), rtol=1e-12)


@pytest.mark.parametrize("size", [(6, 6), (12, 10), (3, 8)])
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "nearest-exact", "area"])
def test_batch_and_empty_batch(torch, mode, size):
    for shape in [(4, 1, 6, 5), (0, 3, 6, 5)]:
        x = randn(*shape)
        compare(torch, lambda T, x: T.nn.functional.interpolate(x, size=size, mode=mode), [x])


# ---- naive references -----------------------------------------------------------------------------

def _src_linear(j, n_in, n_out, ac):
    if ac:
        return j * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max((j + 0.5) * n_in / n_out - 0.5, 0.0)


def naive_bilinear(x, size, ac):
    """Per output pixel: four neighbours and their weights, then the backward by scattering."""
    n, c, hi, wi = x.shape
    ho, wo = size
    y = np.zeros((n, c, ho, wo))
    taps = {}
    for i in range(ho):
        for j in range(wo):
            sy, sx = _src_linear(i, hi, ho, ac), _src_linear(j, wi, wo, ac)
            if ho == hi:
                sy = float(i)
            if wo == wi:
                sx = float(j)
            y0, x0 = min(int(np.floor(sy)), hi - 1), min(int(np.floor(sx)), wi - 1)
            ly, lx = sy - y0, sx - x0
            y1, x1 = min(y0 + 1, hi - 1), min(x0 + 1, wi - 1)
            taps[i, j] = [(y0, x0, (1 - ly) * (1 - lx)), (y0, x1, (1 - ly) * lx),
                          (y1, x0, ly * (1 - lx)), (y1, x1, ly * lx)]
            y[:, :, i, j] = sum(w * x[:, :, a, b] for a, b, w in taps[i, j])
    return y, taps


def naive_nearest(x, size, exact):
    n, c, hi, wi = x.shape
    ho, wo = size

    def src(j, ni, no):
        s = np.float32(ni) / np.float32(no)
        if not exact and no == ni:
            return j
        if not exact and no == 2 * ni:
            return j // 2
        v = np.float32((j + 0.5) * np.float64(s)) if exact else np.float32(j) * s
        return min(int(np.floor(v)), ni - 1)
    rows = [src(i, hi, ho) for i in range(ho)]
    cols = [src(j, wi, wo) for j in range(wo)]
    return x[:, :, rows][:, :, :, cols]


def naive_area(x, size):
    n, c, hi, wi = x.shape
    ho, wo = size
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            a, b = (i * hi) // ho, -((-(i + 1) * hi) // ho)
            p, q = (j * wi) // wo, -((-(j + 1) * wi) // wo)
            y[:, :, i, j] = x[:, :, a:b, p:q].mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("ac", [False, True])
@pytest.mark.parametrize("size", [(7, 9), (3, 2), (1, 5), (5, 4), (10, 3)])
def test_bilinear_vs_naive(ac, size):
    x = randn(2, 3, 5, 4)
    ref, taps = naive_bilinear(x, size, ac)
    xc = cygrad.tensor(x, requires_grad=True)
    y = CF.interpolate(xc, size=size, mode="bilinear", align_corners=ac)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    g = randn(*ref.shape, seed=4)
    y.backward(cygrad.tensor(g))
    gref = np.zeros_like(x)
    for (i, j), tp in taps.items():
        for a, b, w in tp:
            gref[:, :, a, b] += w * g[:, :, i, j]
    np.testing.assert_allclose(xc.grad.numpy(), gref, rtol=1e-12, atol=1e-12)
    y32 = CF.interpolate(cygrad.tensor(x.astype(np.float32)), size=size, mode="bilinear", align_corners=ac)
    np.testing.assert_allclose(y32.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("size", [(7, 9), (3, 2), (10, 8), (5, 4), (13, 3)])
def test_nearest_vs_naive(mode, size):
    x = randn(2, 3, 5, 4)
    ref = naive_nearest(x, size, mode == "nearest-exact")
    xc = cygrad.tensor(x, requires_grad=True)
    y = CF.interpolate(xc, size=size, mode=mode)
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    y.sum().backward()
    counts = naive_nearest(np.arange(20.0).reshape(1, 1, 5, 4), size, mode == "nearest-exact")
    expect = np.bincount(counts.astype(int).ravel(), minlength=20).reshape(5, 4)
    np.testing.assert_array_equal(xc.grad.numpy(), np.broadcast_to(expect, x.shape))


@pytest.mark.parametrize("size", [(2, 3), (5, 4), (3, 1), (4, 7)])
def test_area_vs_naive(size):
    x = randn(2, 3, 5, 4)
    y = CF.interpolate(cygrad.tensor(x), size=size, mode="area")
    np.testing.assert_allclose(y.numpy(), naive_area(x, size), rtol=1e-12, atol=1e-13)


def _kernel_tables(n_in, n_out, idx, wt):
    return (np.ascontiguousarray(idx, np.intp), np.ascontiguousarray(wt), np.full(n_out, idx.shape[1], np.intp))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kernel_vs_dense_matrices(dtype):
    """The kernel with random tables (variable tap counts, repeated taps) equals the dense
    Kronecker-product operator, forward and adjoint."""
    r = rng(7)
    shape_in, shape_out = (3, 4, 5), (2, 6, 3)
    tabs, mats = [], []
    for n_in, n_out in zip(shape_in[::-1], shape_out[::-1]):        # W, H, D
        k = 3
        idx = r.integers(0, n_in, (n_out, k)).astype(np.intp)
        wt = r.standard_normal((n_out, k)).astype(dtype)
        cnt = r.integers(1, k + 1, n_out).astype(np.intp)
        m = np.zeros((n_out, n_in))
        for j in range(n_out):
            for t in range(cnt[j]):
                m[j, idx[j, t]] += wt[j, t]
        tabs += [idx, wt, cnt]
        mats.append(m)
    dense = np.kron(np.kron(mats[2], mats[1]), mats[0])
    x = r.standard_normal((4, np.prod(shape_in))).astype(dtype)
    out = np.empty((4, np.prod(shape_out)), dtype)
    used = np.ones(shape_in[0] * shape_in[1], np.uint8), np.ones(shape_in[0], np.uint8)
    K.resample_forward(x, out, shape_in, shape_out, *tabs, *used, (False, False, False))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, x.astype(np.float64) @ dense.T, **tol)
    g = r.standard_normal((4, np.prod(shape_out))).astype(dtype)
    gin = np.full((4, np.prod(shape_in)), np.nan, dtype)
    K.resample_backward(g, gin, shape_in, shape_out, *tabs, *used, (False, False, False))
    np.testing.assert_allclose(gin, g.astype(np.float64) @ dense, **tol)


def test_kernel_rejects_bad_tables():
    d = np.float64
    one = np.zeros((1, 1), np.intp), np.ones((1, 1), d), np.ones(1, np.intp)
    x, out = np.zeros((2, 3)), np.zeros((2, 4))
    used = np.ones(1, np.uint8), np.ones(1, np.uint8)
    good_w = np.array([[0], [1], [2], [2]], np.intp), np.ones((4, 1), d), np.ones(4, np.intp)
    K.resample_forward(x, out, (1, 1, 3), (1, 1, 4), *good_w, *one, *one, *used, (False, True, True))
    bad_idx = np.array([[0], [1], [3], [2]], np.intp), np.ones((4, 1), d), np.ones(4, np.intp)
    with pytest.raises(ValueError, match="out of range"):
        K.resample_forward(x, out, (1, 1, 3), (1, 1, 4), *bad_idx, *one, *one, *used, (False, True, True))
    bad_cnt = good_w[0], good_w[1], np.array([1, 2, 1, 1], np.intp)
    with pytest.raises(ValueError, match="cnt"):
        K.resample_backward(out, x, (1, 1, 3), (1, 1, 4), *bad_cnt, *one, *one, *used, (False, True, True))
    with pytest.raises(ValueError, match="tables"):
        K.resample_forward(x, out, (1, 1, 3), (1, 1, 5), *good_w, *one, *one, *used, (False, True, True))
    with pytest.raises(ValueError, match="do not match"):
        K.resample_forward(x, np.zeros((2, 5)), (1, 1, 3), (1, 1, 4), *good_w, *one, *one, *used,
                           (False, True, True))
    with pytest.raises(ValueError, match="identity"):
        K.resample_forward(x, out, (1, 1, 3), (1, 1, 4), *good_w, *one, *one, *used, (True, True, True))
    with pytest.raises(ValueError, match="dtype mismatch"):
        K.resample_forward(x, out.astype(np.float32), (1, 1, 3), (1, 1, 4), *good_w, *one, *one, *used,
                           (False, True, True))


# ---- threads ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,kw", [
    ((1, 1, 96, 90), dict(scale_factor=2, mode="bilinear")),               # one plane: passes split
    ((1, 3, 70, 64), dict(size=(150, 41), mode="bicubic", align_corners=True)),  # 3 planes on 2 threads
    ((4, 4, 40, 40), dict(scale_factor=(1.7, 0.6), mode="bilinear")),      # planes in parallel
    ((1, 1, 20, 24, 30), dict(scale_factor=(1.0, 2.0, 1.5), mode="trilinear")),
    ((1, 2, 12, 50, 50), dict(size=(5, 17, 30), mode="area")),
    ((2, 3, 60, 70), dict(scale_factor=2.5, mode="nearest")),
])
def test_threads_identical(restore_threads, shape, kw):
    x = randn(*shape, dtype=np.float32)
    g = None
    res = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        xc = cygrad.tensor(x, requires_grad=True)
        y = CF.interpolate(xc, **kw)
        if g is None:
            g = randn(*y.shape, dtype=np.float32, seed=2)
        y.backward(cygrad.tensor(g))
        res.append((y.detach().numpy(), xc.grad.numpy()))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])


# ---- dtypes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_uint8_nearest(torch, mode):
    x = rng(0).integers(0, 256, (2, 3, 5, 4)).astype(np.uint8)
    for kw in (dict(size=(7, 3)), dict(scale_factor=2.3)):
        compare(torch, lambda T, x: T.nn.functional.interpolate(x, mode=mode, **kw), [x])
    compare(torch, lambda T, x: T.nn.functional.interpolate(x, size=(4, 2, 9), mode=mode),
            [rng(1).integers(0, 256, (1, 2, 3, 4, 5)).astype(np.uint8)])


def test_float16(torch):
    x = randn(1, 2, 4, 5).astype(np.float16)
    c = CF.interpolate(cygrad.tensor(x), scale_factor=1.5, mode="bilinear")
    t = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=1.5, mode="bilinear")
    assert c.dtype == cygrad.float16
    np.testing.assert_allclose(c.numpy().astype(np.float32), t.numpy().astype(np.float32), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "uint8"])
@pytest.mark.parametrize("shape,mode", [((1, 2, 4), "nearest"), ((1, 2, 4), "linear"), ((1, 2, 4, 4), "nearest"),
                                        ((1, 2, 4, 4), "bicubic"), ((1, 2, 4, 4), "area"),
                                        ((1, 2, 4, 4, 4), "trilinear"), ((1, 2, 4, 4, 4), "area"),
                                        ((1, 2, 4, 4, 4), "nearest-exact"), ((1, 2, 4, 4), "bilinear")])
def test_integer_input_errors(torch, dtype, shape, mode):
    x = np.ones(shape, dtype)
    try:
        torch.nn.functional.interpolate(torch.tensor(x), size=2, mode=mode)
    except NotImplementedError as e:
        with pytest.raises(NotImplementedError) as c:
            CF.interpolate(cygrad.tensor(x), size=2, mode=mode)
        assert str(c.value) == str(e)
    else:
        if dtype == "uint8" and mode in ("bilinear", "bicubic"):    # torch only; see the report
            with pytest.raises(NotImplementedError):
                CF.interpolate(cygrad.tensor(x), size=2, mode=mode)
        else:
            CF.interpolate(cygrad.tensor(x), size=2, mode=mode)


# ---- errors ----------------------------------------------------------------------------------------

def _same_error(torch, fn, shape=(1, 2, 3, 4)):
    x = randn(*shape) if 0 not in shape else np.zeros(shape)
    with pytest.raises(Exception) as t:
        fn(torch, torch.tensor(x))
    with pytest.raises(Exception) as c:
        fn(cygrad, cygrad.tensor(x))
    assert type(c.value) is type(t.value), (c.value, t.value)
    assert str(c.value) == str(t.value)


I = lambda T, x, **kw: T.nn.functional.interpolate(x, **kw)  # noqa: E731

BAD = [
    ((1, 2, 3, 4), dict(size=(0, 2))),
    ((1, 2, 3, 4), dict(size=(-1, 2), mode="bilinear")),
    ((1, 2, 3, 4), dict(scale_factor=0.2, mode="bicubic")),
    ((1, 2, 3), dict(size=0, mode="linear")),
    ((1, 2, 2, 3, 4), dict(size=(1, 0, 2), mode="trilinear")),
    ((1, 2, 2, 3, 4), dict(size=(1, 0, 2), mode="nearest-exact")),
    ((1, 2, 3, 4), dict(scale_factor=(-1.0, 2.0))),
    ((1, 2, 3, 4), dict(scale_factor=float("inf"))),
    ((1, 2, 3, 4), dict(size=(2.0, 2))),
    ((1, 2, 3, 4), dict(size=2, scale_factor=2)),
    ((1, 2, 3, 4), dict()),
    ((1, 2, 3, 4), dict(size=2, align_corners=True)),
    ((1, 2, 3, 4), dict(size=2, mode="area", align_corners=False)),
    ((1, 2, 3, 4), dict(size=2, mode="nearest-exact", align_corners=True)),
    ((1, 2, 3, 4), dict(size=2, mode="foo")),
    ((1, 2, 3, 4), dict(size=2, mode="linear")),
    ((1, 2, 3, 4), dict(size=2, mode="trilinear")),
    ((1, 2, 3), dict(size=2, mode="bilinear")),
    ((1, 2, 3), dict(size=2, mode="trilinear")),
    ((1, 2, 3, 4, 5), dict(size=2, mode="linear")),
    ((1, 2, 3, 4, 5), dict(size=2, mode="bilinear")),
    ((1, 2, 3), dict(size=2, mode="bicubic")),
    ((1, 2, 3, 4, 5), dict(size=2, mode="bicubic")),
    ((2, 3), dict(size=2)),
    ((2, 3, 4, 5, 6, 7), dict(size=2)),
    ((1, 2, 3, 4), dict(size=(2, 2, 2))),
    ((1, 2, 3, 4), dict(scale_factor=(2, 2, 2))),
    ((1, 2, 3, 4), dict(size=2, recompute_scale_factor=True)),
    ((1, 2, 3, 4), dict(size=2, mode="nearest", antialias=True)),
    ((1, 2, 3), dict(size=2, mode="bilinear", antialias=True)),
    ((1, 2, 3, 4), dict(size=2, mode="lanczos")),
    ((1, 2, 3, 4), dict(size=2, mode="lanczos", align_corners=True, antialias=True)),
    ((1, 0, 3, 4), dict(size=2, mode="bilinear")),
    ((0, 0, 3, 4), dict(size=2, mode="nearest")),
    ((1, 0, 3), dict(size=2, mode="linear")),
    ((1, 0, 3, 3, 3), dict(size=2, mode="nearest")),
    ((1, 2, 0, 4), dict(size=2, mode="bilinear")),
    ((1, 2, 0), dict(size=2, mode="nearest")),
    ((1, 2, 0, 4), dict(size=2, mode="area")),
    ((1, 2, 0), dict(size=2, mode="area")),
    ((1, 0, 3, 3, 3), dict(size=2, mode="area")),
    ((2, 2, 0, 3, 3), dict(size=2, mode="area")),
    ((1, 2, 3, 4), dict(size=(-1, 2), mode="area")),
    ((1, 2, 3, 4), dict(scale_factor=-1.0, mode="area")),
    ((1, 2, 3), dict(size=-1, mode="area")),
    ((1, 2, 3, 3, 3), dict(size=(-1, 2, 2), mode="area")),
    ((1, 2, 3), dict(scale_factor=float("inf"), mode="area")),
]


@pytest.mark.parametrize("shape,kw", BAD, ids=[f"{s}-{k}" for s, k in BAD])
def test_interpolate_errors_like_torch(torch, shape, kw):
    _same_error(torch, lambda T, x: I(T, x, **kw), shape)


@pytest.mark.parametrize("mode,antialias", [("bilinear", True), ("bicubic", True), ("lanczos", True)])
def test_antialias_not_implemented(mode, antialias):
    with pytest.raises(NotImplementedError, match="antialias|lanczos"):
        CF.interpolate(cygrad.randn(1, 2, 4, 4), size=2, mode=mode, antialias=antialias)


@pytest.mark.parametrize("shape,kw", [((1, 2, 3, 4), dict(size=(0, 2), mode="area")),
                                      ((2, 0, 3, 3), dict(size=2, mode="area")),
                                      ((1, 0, 3), dict(size=2, mode="area")),
                                      ((2, 2, 3, 3, 3), dict(size=(0, 1, 1), mode="area")),
                                      ((1, 2, 3, 4), dict(scale_factor=0.2, mode="area"))])
def test_area_empty_outputs(torch, shape, kw):
    # forward only: torch's backward raises on these empty gradients; cygrad's is zero
    compare(torch, lambda T, x: I(T, x, **kw), [np.ones(shape)], grad=False)
    x = cygrad.ones(shape, dtype=cygrad.float64, requires_grad=True)
    I(cygrad, x, **kw).sum().backward()
    assert x.grad.shape == x.shape and not x.grad.numpy().any()


# ---- grad_fn names, deprecated aliases, modules -----------------------------------------------------

@pytest.mark.parametrize("shape,mode", [(s, m) for nd, s in ((1, (1, 2, 3)), (2, (1, 2, 3, 3)), (3, (1, 2, 3, 3, 3)))
                                        for m in MODES[nd] if not (m == "area" and nd == 1)])
def test_grad_fn_names(torch, shape, mode):
    names = []
    for T in (cygrad, torch):
        names.append(T.nn.functional.interpolate(T.ones(shape, requires_grad=True), size=5, mode=mode).grad_fn.name())
    assert names[0] == names[1]


def test_deprecated_aliases(torch):
    x = randn(1, 2, 3, 4)
    for name, kw in (("upsample", dict(scale_factor=2, mode="bilinear")), ("upsample_nearest", dict(size=5)),
                     ("upsample_bilinear", dict(size=(4, 7))), ("upsample", dict(size=(4, 7)))):
        outs = []
        for T in (cygrad, torch):
            with pytest.warns(UserWarning, match="deprecated"):
                outs.append(getattr(T.nn.functional, name)(T.tensor(x), **kw))
        assert_close(outs[0], outs[1])


@pytest.mark.parametrize("make,shape", [
    (lambda T: T.nn.Upsample(scale_factor=2), (1, 2, 3, 4)),
    (lambda T: T.nn.Upsample(size=3, mode="bilinear"), (1, 2, 3, 4)),
    (lambda T: T.nn.Upsample(size=(3, 4), mode="bicubic", align_corners=True), (1, 2, 3, 4)),
    (lambda T: T.nn.Upsample(scale_factor=(2, 1.5, 1), mode="trilinear"), (1, 2, 3, 4, 2)),
    (lambda T: T.nn.Upsample(scale_factor=1.7, mode="linear", recompute_scale_factor=True), (1, 2, 5)),
    (lambda T: T.nn.Upsample(size=2, mode="area"), (1, 2, 5)),
    (lambda T: T.nn.UpsamplingNearest2d(scale_factor=2), (1, 2, 3, 4)),
    (lambda T: T.nn.UpsamplingNearest2d(size=(5, 2)), (1, 2, 3, 4)),
    (lambda T: T.nn.UpsamplingBilinear2d(size=5), (1, 2, 3, 4)),
    (lambda T: T.nn.UpsamplingBilinear2d(scale_factor=(2, 3)), (1, 2, 3, 4)),
    (lambda T: T.nn.PixelShuffle(2), (2, 8, 3, 4)),
    (lambda T: T.nn.PixelUnshuffle(2), (2, 3, 4, 6)),
])
def test_modules(torch, make, shape):
    cm, tm = make(cygrad), make(torch)
    assert repr(cm) == repr(tm)
    compare(torch, lambda T, x: (cm if T is cygrad else tm)(x), [randn(*shape)])


def test_module_attributes(torch):
    for args in [dict(), dict(scale_factor=0), dict(scale_factor=(2, 3)), dict(size=(3, 4))]:
        cm, tm = nn.Upsample(**args), torch.nn.Upsample(**args)
        for a in ("name", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"):
            assert getattr(cm, a) == getattr(tm, a)
        assert repr(cm) == repr(tm)
    assert nn.UpsamplingBilinear2d(size=2).align_corners is True
    assert list(nn.Upsample(size=2).parameters()) == []


# ---- pixel shuffle ---------------------------------------------------------------------------------

SHUFFLE = [((1, 8, 3, 3), 2), ((2, 9, 2, 4), 3), ((8, 3, 3), 2), ((2, 3, 8, 3, 3), 2), ((1, 5, 2, 3), 1),
           ((0, 8, 2, 2), 2), ((1, 8, 0, 2), 2)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,r", SHUFFLE)
def test_pixel_shuffle_vs_torch(torch, shape, r, dtype):
    x = randn(*shape, dtype=dtype) if 0 not in shape else np.zeros(shape, dtype)
    # torch's backward of an empty pixel_shuffle returns a wrongly shaped gradient and fails
    out = compare(torch, lambda T, x: T.nn.functional.pixel_shuffle(x, r), [x], grad=0 not in shape)[0]
    assert out.is_contiguous()
    if 0 in shape:      # torch's pixel_unshuffle returns empty inputs unchanged (wrong shape)
        up = CF.pixel_unshuffle(out, r)
    else:
        up = compare(torch, lambda T, x: T.nn.functional.pixel_unshuffle(x, r), [out.detach().numpy()])[0]
    np.testing.assert_array_equal(up.detach().numpy(), x)


@pytest.mark.parametrize("shape,r", SHUFFLE[:5])
def test_pixel_shuffle_gradcheck(shape, r):
    x = randn(*shape)
    gradcheck(lambda T, x: T.nn.functional.pixel_shuffle(x, r), [x])
    gradgradcheck(lambda T, x: T.nn.functional.pixel_shuffle(x, r), [x])
    y = np.ascontiguousarray(CF.pixel_shuffle(cygrad.tensor(x), r).numpy())
    gradcheck(lambda T, y: T.nn.functional.pixel_unshuffle(y, r), [y])


def test_pixel_shuffle_values_and_ints(torch):
    x = np.arange(2 * 8 * 2 * 3).reshape(2, 8, 2, 3)
    compare(torch, lambda T, x: T.nn.functional.pixel_shuffle(x, 2), [x])
    compare(torch, lambda T, x: T.nn.functional.pixel_unshuffle(x, 2), [x.reshape(2, 2, 4, 6)])
    assert CF.pixel_shuffle(cygrad.ones(1, 4, 1, 1, requires_grad=True), 2).grad_fn.name() == "PixelShuffleBackward0"


@pytest.mark.parametrize("fn,shape,r", [
    ("pixel_shuffle", (1, 6, 3, 3), 2), ("pixel_shuffle", (3, 3), 2), ("pixel_shuffle", (1, 8, 3, 3), 0),
    ("pixel_shuffle", (1, 8, 3, 3), -2), ("pixel_shuffle", (1, 8, 3, 3), 2.0),
    ("pixel_unshuffle", (1, 2, 3, 6), 2), ("pixel_unshuffle", (1, 2, 4, 5), 2), ("pixel_unshuffle", (4, 5), 2),
    ("pixel_unshuffle", (1, 2, 4, 4), 0), ("pixel_unshuffle", (1, 2, 4, 4), -1),
    ("pixel_unshuffle", (1, 2, 4, 4), 2.0)])
def test_pixel_shuffle_errors_like_torch(torch, fn, shape, r):
    _same_error(torch, lambda T, x: getattr(T.nn.functional, fn)(x, r), shape)
