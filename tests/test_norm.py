"""Normalization: batch / layer / group / instance / RMS norm, local_response_norm, normalize and their
modules. vs torch (forward, backward, running statistics), float64 gradcheck / gradgradcheck, NumPy
references of the kernels (both batch-norm paths, short and long layer-norm rows), thread-count
independence, float32 accuracy far from zero, bad input."""
import warnings

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from cygrad._C import norm as K
from conftest import FLOAT_DTYPES, assert_close, compare, gradcheck, gradgradcheck, randn, rng

F32_TOL = dict(rtol=1e-5, atol=1e-5)


def _tol(dtype):
    return F32_TOL if dtype == np.float32 else {}


def _dt(T, dtype):
    return getattr(T, np.dtype(dtype).name)


# ---- NumPy references -------------------------------------------------------------------------------------------
def ref_norm(x, axes, eps, w=None, b=None, rms=False):
    """(y, mean, rstd) of x normalised over ``axes`` in float64; w / b broadcast against x."""
    xd = x.astype(np.float64)
    if rms:
        mean = np.zeros_like(xd.mean(axis=axes, keepdims=True))
        var = (xd * xd).mean(axis=axes, keepdims=True)
    else:
        mean = xd.mean(axis=axes, keepdims=True)
        var = ((xd - mean) ** 2).mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    y = (xd - mean) * rstd
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y, mean, rstd


def ref_norm_backward(x, g, axes, eps, w=None, rms=False):
    """Input gradient of ref_norm (w broadcast against x) by the closed formula."""
    xhat = ref_norm(x, axes, eps, rms=rms)[0]
    rstd = ref_norm(x, axes, eps, rms=rms)[2]
    gw = g.astype(np.float64) * (1 if w is None else w)
    proj = xhat * (gw * xhat).mean(axis=axes, keepdims=True)
    if rms:
        return rstd * (gw - proj)
    return rstd * (gw - gw.mean(axis=axes, keepdims=True) - proj)


# ---- functional vs torch ----------------------------------------------------------------------------------------
BN_SHAPES = [(6, 3), (4, 3, 5), (3, 4, 6, 6), (2, 3, 2, 3, 4)]   # L = 1, 5 (block path), 36 (run path), 24


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_vs_torch(torch, dtype, shape, training, affine):
    c = shape[1]
    x = randn(*shape, dtype=dtype) * 2 + 0.5
    w, b = randn(c, dtype=dtype, seed=1), randn(c, dtype=dtype, seed=2)
    stats = {}

    def f(T, x, w=None, b=None):
        rm = T.tensor(np.linspace(-1, 1, c).astype(dtype))
        rv = T.tensor(np.linspace(0.5, 2, c).astype(dtype))
        y = T.nn.functional.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
        stats[T.__name__] = (rm, rv)
        return y
    compare(torch, f, [x, w, b] if affine else [x], **_tol(dtype))
    for a, e in zip(stats["cygrad"], stats["torch"]):
        assert_close(a, e, **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_batch_norm_no_running_stats_and_partial_affine(torch, dtype):
    x = randn(5, 4, 7, dtype=dtype)
    w = randn(4, dtype=dtype, seed=3)
    compare(torch, lambda T, x, w: T.nn.functional.batch_norm(x, None, None, w, None, True), [x, w], **_tol(dtype))
    compare(torch, lambda T, x, b: T.nn.functional.batch_norm(x, None, None, None, b, True), [x, w], **_tol(dtype))
    # gradients for the weight only (input not requiring grad)
    compare(torch, lambda T, x, w: T.nn.functional.batch_norm(x, None, None, w, w, True), [x, w], grad_inputs=[1],
            **_tol(dtype))


LN_CASES = [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((3, 2, 5), (2, 5)), ((3, 4200), (4200,))]   # last: long rows


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,ns", LN_CASES, ids=str)
@pytest.mark.parametrize("affine", ["wb", "b", "none"])
def test_layer_norm_vs_torch(torch, dtype, shape, ns, affine):
    x = randn(*shape, dtype=dtype) * 3 - 1
    w, b = randn(*ns, dtype=dtype, seed=1), randn(*ns, dtype=dtype, seed=2)
    inputs = [x] + ([w] if "w" in affine else []) + ([b] if "b" in affine else [])

    def f(T, x, *p):
        kw = {}
        if "w" in affine:
            kw["weight"] = p[0]
        if "b" in affine:
            kw["bias"] = p[-1]
        return T.nn.functional.layer_norm(x, list(ns), eps=1e-4, **kw)
    compare(torch, f, inputs, **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,ns", LN_CASES, ids=str)
@pytest.mark.parametrize("eps,affine", [(None, True), (1e-3, False)])
def test_rms_norm_vs_torch(torch, dtype, shape, ns, eps, affine):
    x = randn(*shape, dtype=dtype) * 3 - 1
    w = randn(*ns, dtype=dtype, seed=1)
    if affine:
        compare(torch, lambda T, x, w: T.nn.functional.rms_norm(x, ns, w, eps), [x, w], **_tol(dtype))
    else:
        compare(torch, lambda T, x: T.nn.functional.rms_norm(x, ns, eps=eps), [x], **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,groups", [((4, 6), 3), ((3, 6, 5), 1), ((3, 6, 5), 2), ((2, 6, 3, 4), 6),
                                          ((2, 4, 2, 3, 3), 2)], ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_vs_torch(torch, dtype, shape, groups, affine):
    c = shape[1]
    x = randn(*shape, dtype=dtype) * 2 + 3
    w, b = randn(c, dtype=dtype, seed=1), randn(c, dtype=dtype, seed=2)
    if affine:
        compare(torch, lambda T, x, w, b: T.nn.functional.group_norm(x, groups, w, b, 1e-4), [x, w, b],
                **_tol(dtype))
    else:
        compare(torch, lambda T, x: T.nn.functional.group_norm(x, groups), [x], **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 4), (2, 2, 2, 3, 3)], ids=str)
@pytest.mark.parametrize("running,use_input_stats", [(False, True), (True, True), (True, False)])
def test_instance_norm_vs_torch(torch, dtype, shape, running, use_input_stats):
    c = shape[1]
    x = randn(*shape, dtype=dtype) - 2
    w, b = randn(c, dtype=dtype, seed=1), randn(c, dtype=dtype, seed=2)
    stats = {}

    def f(T, x, w, b):
        rm = T.tensor(np.linspace(-1, 1, c).astype(dtype)) if running else None
        rv = T.tensor(np.linspace(0.5, 2, c).astype(dtype)) if running else None
        stats[T.__name__] = (rm, rv)
        return T.nn.functional.instance_norm(x, rm, rv, w, b, use_input_stats, momentum=0.2, eps=1e-4)
    compare(torch, f, [x, w, b], **_tol(dtype))
    if running:
        for a, e in zip(stats["cygrad"], stats["torch"]):
            assert_close(a, e, **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(2, 7, 5), (2, 6, 3, 4), (1, 5, 2, 2, 3)], ids=str)
@pytest.mark.parametrize("size", [1, 2, 5, 20])
def test_local_response_norm_vs_torch(torch, dtype, shape, size):
    x = randn(*shape, dtype=dtype) * 2
    compare(torch, lambda T, x: T.nn.functional.local_response_norm(x, size, alpha=0.3, beta=0.6, k=1.5), [x],
            **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1), (2.0, (1, 2))], ids=str)
def test_normalize_vs_torch(torch, dtype, p, dim):
    x = randn(3, 4, 5, dtype=dtype)
    if p == 2.0 and dim == 1:
        x[0, :, 0] = 0   # a zero vector: the norm is clamped to eps
    compare(torch, lambda T, x: T.nn.functional.normalize(x, p, dim), [x], **_tol(dtype))


# ---- gradcheck / gradgradcheck (float64) -------------------------------------------------------------------------
def _bn(training, affine=True):
    def f(T, x, w, b):
        c = x.shape[1]
        rm, rv = T.zeros(c, dtype=T.float64) + 0.1, T.ones(c, dtype=T.float64) * 1.5
        return T.nn.functional.batch_norm(x, rm, rv, w if affine else None, b if affine else None, training, 0.1,
                                          1e-3)
    return f


GRAD_CASES = {
    "bn_train": (_bn(True), [(4, 3, 2), (3,), (3,)]),
    "bn_train_2d": (_bn(True), [(5, 3), (3,), (3,)]),
    "bn_train_run": (_bn(True), [(2, 2, 33), (2,), (2,)]),
    "bn_eval": (_bn(False), [(4, 3, 2), (3,), (3,)]),
    "bn_no_affine": (_bn(True, affine=False), [(4, 3, 2), (3,), (3,)]),
    "bn_no_stats": (lambda T, x, w, b: T.nn.functional.batch_norm(x, None, None, w, b, True), [(3, 2, 3), (2,), (2,)]),
    "layer_norm": (lambda T, x, w, b: T.nn.functional.layer_norm(x, (2, 3), w, b, 1e-3), [(3, 2, 3), (2, 3), (2, 3)]),
    "layer_norm_nw": (lambda T, x, w, b: T.nn.functional.layer_norm(x, (3,), None, b), [(4, 3), (3,), (3,)]),
    "rms_norm": (lambda T, x, w: T.nn.functional.rms_norm(x, (4,), w, 1e-3), [(3, 4), (4,)]),
    "group_norm": (lambda T, x, w, b: T.nn.functional.group_norm(x, 2, w, b, 1e-3), [(2, 4, 3), (4,), (4,)]),
    "instance_norm": (lambda T, x, w, b: T.nn.functional.instance_norm(x, weight=w, bias=b, eps=1e-3),
                      [(2, 3, 4), (3,), (3,)]),
    "instance_norm_eval": (lambda T, x, w, b: T.nn.functional.instance_norm(
        x, T.zeros(3, dtype=T.float64), T.ones(3, dtype=T.float64), w, b, use_input_stats=False),
        [(2, 3, 4), (3,), (3,)]),
    "lrn": (lambda T, x: T.nn.functional.local_response_norm(x, 3, alpha=0.5, beta=0.7, k=1.2), [(2, 4, 3)]),
    "lrn_long": (lambda T, x: T.nn.functional.local_response_norm(x, 18, alpha=0.5), [(1, 4, 2)]),
    "normalize": (lambda T, x: T.nn.functional.normalize(x, 3.0, 1), [(3, 4)]),
}


def _grad_inputs(shapes, seed):
    return [randn(*s, seed=seed + i) + (0.5 if i else 0.0) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck(name):
    fn, shapes = GRAD_CASES[name]
    gradcheck(fn, _grad_inputs(shapes, 10))


@pytest.mark.parametrize("name", ["bn_train", "bn_eval", "layer_norm", "rms_norm", "group_norm", "instance_norm",
                                  "lrn"])
def test_gradgradcheck(name):
    fn, shapes = GRAD_CASES[name]
    gradgradcheck(fn, _grad_inputs(shapes, 20))


@pytest.mark.parametrize("kw", [dict(), dict(momentum=None), dict(track_running_stats=False), dict(affine=False)],
                         ids=str)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_module_gradcheck(kw, train):
    m = cygrad.nn.BatchNorm1d(3, **kw).double()
    for p in m.parameters():
        p.data.copy_(cygrad.tensor(rng(4).standard_normal(3)))
    m.train(train)
    x = cygrad.tensor(randn(4, 3, 2, seed=5), requires_grad=True)
    assert cygrad.autograd.gradcheck(lambda x: m(x), (x,))


# ---- kernels vs NumPy references --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(7, 5, 1), (6, 4, 3), (5, 3, 31), (4, 3, 32), (3, 2, 100), (2, 70, 2)], ids=str)
def test_batch_norm_kernel_vs_numpy(dtype, shape):
    n, c, ell = shape
    x = randn(*shape, dtype=dtype) * 3 + 7
    g = randn(*shape, dtype=dtype, seed=1)
    w, b = randn(c, dtype=dtype, seed=2), randn(c, dtype=dtype, seed=3)
    mean, var, y = np.empty(c), np.empty(c), np.empty_like(x)
    K.batch_norm_forward(x, w, b, mean, var, True, 1e-5, y)
    xd = x.astype(np.float64)
    yr, mr, rr = ref_norm(x, (0, 2), 1e-5, w[:, None], b[:, None])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, mr.ravel(), rtol=1e-13)
    np.testing.assert_allclose(var, xd.var(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(y, yr, **tol)
    invstd = 1 / np.sqrt(var + 1e-5)
    dx, sg, sgx = np.empty_like(x), np.empty(c), np.empty(c)
    K.batch_norm_backward(x, g, w, mean, invstd, True, True, dx, sg, sgx)
    np.testing.assert_allclose(dx, ref_norm_backward(x, g, (0, 2), 1e-5, w[:, None]), **tol)
    gd = g.astype(np.float64)
    np.testing.assert_allclose(sg, gd.sum((0, 2)), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(sgx, (gd * (xd - mr)).sum((0, 2)), rtol=1e-10, atol=1e-9)
    # eval: running statistics are constants, dx = g * w * invstd
    rm, rv = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), False, 1e-5, y)
    np.testing.assert_allclose(y, (xd - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5) * w[:, None] + b[:, None],
                               **tol)
    inv = 1 / np.sqrt(rv + 1e-5)
    K.batch_norm_backward(x, g, w, rm, inv, False, True, dx, sg, sgx)
    np.testing.assert_allclose(dx, gd * (w * inv)[:, None], **tol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(5, 7), (70, 3), (3, 4100), (2, 5000)], ids=str)
@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_kernel_vs_numpy(dtype, shape, rms, affine):
    r, d = shape
    x = randn(*shape, dtype=dtype) * 2 + 5
    g = randn(*shape, dtype=dtype, seed=1)
    w, b = randn(d, dtype=dtype, seed=2), randn(d, dtype=dtype, seed=3)
    empty = np.empty(0, dtype)
    y, mean, rstd = np.empty_like(x), np.empty(r), np.empty(r)
    K.layer_norm_forward(x, w if affine else empty, b if affine else empty, affine, affine and not rms, 1e-5, rms,
                         y, mean, rstd)
    yr, mr, rr = ref_norm(x, (1,), 1e-5, w if affine else None, b if affine and not rms else None, rms=rms)
    tol = dict(rtol=1e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, yr, **tol)
    np.testing.assert_allclose(mean, mr.ravel(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(rstd, rr.ravel(), rtol=1e-12)
    dx, dw, db = np.empty_like(x), np.empty(d), np.empty(d)
    K.layer_norm_backward(x, g, w if affine else empty, affine, mean, rstd, rms, True, dx, True, dw, db)
    np.testing.assert_allclose(dx, ref_norm_backward(x, g, (1,), 1e-5, w if affine else None, rms=rms), **tol)
    xhat = ref_norm(x, (1,), 1e-5, rms=rms)[0]
    gd = g.astype(np.float64)
    np.testing.assert_allclose(dw, (gd * xhat).sum(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, gd.sum(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,groups", [((3, 6, 4), 3), ((2, 4, 1), 4), ((2, 8, 50), 2), ((1, 3, 7), 1)], ids=str)
def test_group_norm_kernel_vs_numpy(dtype, shape, groups):
    n, c, ell = shape
    x = randn(*shape, dtype=dtype) * 2 - 4
    g = randn(*shape, dtype=dtype, seed=1)
    w, b = randn(c, dtype=dtype, seed=2), randn(c, dtype=dtype, seed=3)
    y, mean, var = np.empty_like(x), np.empty(n * groups), np.empty(n * groups)
    K.group_norm_forward(x, groups, w, b, 1e-5, y, mean, var)
    xg = x.reshape(n, groups, -1)
    tol = dict(rtol=1e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    yr = ref_norm(xg, (2,), 1e-5)[0].reshape(shape) * w[:, None] + b[:, None]
    np.testing.assert_allclose(y, yr, **tol)
    np.testing.assert_allclose(mean, xg.astype(np.float64).mean(2).ravel(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(var, xg.astype(np.float64).var(2).ravel(), rtol=1e-11)
    rstd = 1 / np.sqrt(var + 1e-5)
    dx, sg, sgx = np.empty_like(x), np.empty((n, c)), np.empty((n, c))
    K.group_norm_backward(x, g, groups, w, mean, rstd, True, dx, sg, sgx)
    gw = (g.astype(np.float64) * w[:, None]).reshape(n, groups, -1)
    np.testing.assert_allclose(dx, ref_norm_backward(xg, gw, (2,), 1e-5).reshape(shape), **tol)
    np.testing.assert_allclose(sg, g.astype(np.float64).sum(2), rtol=1e-12, atol=1e-12)
    xc = (xg.astype(np.float64) - mean.reshape(n, groups, 1)).reshape(shape)
    np.testing.assert_allclose(sgx, (g * xc).sum(2), rtol=1e-10, atol=1e-10)


def test_kernel_argument_checks():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="norm kernel"):
        K.batch_norm_forward(x, np.ones(2), np.zeros(3), np.zeros(3), np.ones(3), True, 1e-5, np.empty_like(x))
    with pytest.raises(ValueError, match="norm kernel"):
        K.group_norm_forward(x, 2, np.ones(3), np.zeros(3), 1e-5, np.empty_like(x), np.empty(4), np.empty(4))
    with pytest.raises(ValueError, match="norm kernel"):
        K.layer_norm_forward(x[0], np.ones(3), np.zeros(4), True, True, 1e-5, False, np.empty((3, 4)), np.empty(3),
                             np.empty(3))


# ---- float32 far from zero ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_float32_large_offset_accuracy(torch, op):
    x = (1000 + randn(8, 4, 6, 6)).astype(np.float32)
    fns = {
        "batch_norm": lambda T, x: T.nn.functional.batch_norm(x, None, None, training=True),
        "layer_norm": lambda T, x: T.nn.functional.layer_norm(x, (4, 6, 6)),
        "group_norm": lambda T, x: T.nn.functional.group_norm(x, 2),
        "instance_norm": lambda T, x: T.nn.functional.instance_norm(x),
        "rms_norm": lambda T, x: T.nn.functional.rms_norm(x, (6, 6)),
    }
    exact = fns[op](torch, torch.tensor(x.astype(np.float64))).numpy()
    ours = fns[op](cygrad, cygrad.tensor(x)).numpy()
    assert ours.dtype == np.float32
    # statistics in double: only the final rounding to float32 remains (the unit of y is ~1)
    assert np.abs(ours - exact).max() < 1e-5
    xt = cygrad.tensor(x, requires_grad=True)
    go = randn(*x.shape, seed=3).astype(np.float32)
    fns[op](cygrad, xt).backward(cygrad.tensor(go))
    xe = torch.tensor(x.astype(np.float64), requires_grad=True)
    fns[op](torch, xe).backward(torch.tensor(go.astype(np.float64)))
    scale = np.abs(xe.grad.numpy()).max()
    assert np.abs(xt.grad.numpy() - xe.grad.numpy()).max() < 1e-5 * max(scale, 1)


# ---- threads and determinism -------------------------------------------------------------------------------------
def _run_all(dtype):
    """Outputs and gradients of every kernel path on inputs large enough to run in parallel."""
    res = []
    cases = [
        (lambda x, w, b: CF.batch_norm(x, None, None, w, b, True), (8, 16, 24, 24), 16),    # run path
        (lambda x, w, b: CF.batch_norm(x, None, None, w, b, True), (3000, 24, 1), 24),      # block path
        (lambda x, w, b: CF.group_norm(x, 4, w, b), (8, 16, 24, 24), 16),
        (lambda x, w, b: CF.instance_norm(x, weight=w, bias=b), (8, 16, 24, 24), 16),
        (lambda x, w, b: CF.layer_norm(x, (512,), w, b), (300, 512), 512),                # short rows
        (lambda x, w, b: CF.layer_norm(x, (9000,), w, b), (12, 9000), 9000),              # long rows
        (lambda x, w, b: CF.rms_norm(x, (9000,), w) + b.sum(), (12, 9000), 9000),
    ]
    for fn, shape, c in cases:
        x = cygrad.tensor(randn(*shape, dtype=dtype) + 3, requires_grad=True)
        w = cygrad.tensor(randn(c, dtype=dtype, seed=1), requires_grad=True)
        b = cygrad.tensor(randn(c, dtype=dtype, seed=2), requires_grad=True)
        y = fn(x, w, b)
        y.backward(cygrad.tensor(randn(*shape, dtype=dtype, seed=4)))
        res += [y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy(), b.grad.numpy().copy()]
    return res


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_threads_bitwise_identical(restore_threads, dtype):
    cygrad.set_num_threads(1)
    one = _run_all(dtype)
    cygrad.set_num_threads(2)
    two = _run_all(dtype)
    again = _run_all(dtype)
    for a, b, c in zip(one, two, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)


# ---- modules ----------------------------------------------------------------------------------------------------
MODULES = [
    ("BatchNorm1d", (3,), {}, (5, 3)),
    ("BatchNorm1d", (3,), dict(momentum=None), (5, 3, 4)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(bias=False, eps=1e-3, momentum=0.3), (4, 3, 5, 5)),
    ("BatchNorm3d", (3,), dict(affine=False), (2, 3, 2, 3, 3)),
    ("InstanceNorm1d", (3,), {}, (4, 3, 5)),
    ("InstanceNorm1d", (3,), dict(affine=True), (3, 5)),
    ("InstanceNorm2d", (3,), dict(affine=True, track_running_stats=True), (4, 3, 5, 5)),
    ("InstanceNorm3d", (3,), dict(track_running_stats=True), (2, 3, 2, 3, 3)),
    ("LayerNorm", ([5, 5],), {}, (4, 3, 5, 5)),
    ("LayerNorm", (5,), dict(bias=False), (4, 5)),
    ("LayerNorm", (5,), dict(elementwise_affine=False, eps=1e-3), (4, 5)),
    ("GroupNorm", (3, 6), {}, (4, 6, 5)),
    ("GroupNorm", (2, 4), dict(affine=False), (4, 4, 2, 2)),
    ("RMSNorm", ([5],), {}, (4, 3, 5)),
    ("RMSNorm", (5,), dict(eps=1e-3, elementwise_affine=False), (4, 5)),
    ("LocalResponseNorm", (3,), dict(alpha=0.1), (2, 6, 4, 4)),
]


@pytest.mark.parametrize("name,args,kw,shape", MODULES, ids=lambda v: str(v) if not isinstance(v, str) else v)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_modules_vs_torch(torch, name, args, kw, shape, dtype):
    cm = getattr(cygrad.nn, name)(*args, **kw, **({} if name == "LocalResponseNorm" else
                                                 dict(dtype=_dt(cygrad, dtype))))
    tm = getattr(torch.nn, name)(*args, **kw, **({} if name == "LocalResponseNorm" else dict(dtype=_dt(torch, dtype))))
    assert repr(cm) == repr(tm)
    assert list(cm.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in cm.named_buffers()] == [n for n, _ in tm.named_buffers()]
    for p in tm.parameters():
        with torch.no_grad():
            p.copy_(torch.tensor(rng(7).standard_normal(tuple(p.shape)).astype(dtype)))
    cm.load_state_dict({k: cygrad.tensor(v.numpy().copy()) for k, v in tm.state_dict().items()})
    tol = _tol(dtype)
    r = rng(8)
    for mode in ["train", "eval", "train"]:
        cm.train(mode == "train")
        tm.train(mode == "train")
        x = (r.standard_normal(shape) * 2 + 1).astype(dtype)
        go = r.standard_normal(shape).astype(dtype)
        xc, xt = cygrad.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yc, yt = cm(xc), tm(xt)
        assert_close(yc, yt, **tol)
        yc.backward(cygrad.tensor(go))
        yt.backward(torch.tensor(go))
        assert_close(xc.grad, xt.grad, **tol)
        for (n, pc), (_, pt) in zip(cm.named_parameters(), tm.named_parameters()):
            assert_close(pc.grad, pt.grad, **tol)
        for (n, bc), (_, bt) in zip(cm.named_buffers(), tm.named_buffers()):
            assert_close(bc, bt, **tol)   # running statistics and num_batches_tracked (int64)


def test_torch_batchnorm2d_state_dict_loads(torch):
    tm = torch.nn.BatchNorm2d(4)
    tm.train()
    for _ in range(3):
        tm(torch.randn(6, 4, 3, 3) * 2 + 1)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    sd = tm.state_dict()
    assert int(sd["num_batches_tracked"]) == 3
    cm = cygrad.nn.BatchNorm2d(4)
    cm.load_state_dict({k: cygrad.tensor(v.numpy()) for k, v in sd.items()})
    assert cm.num_batches_tracked.dtype == cygrad.int64 and int(cm.num_batches_tracked) == 3
    cm.eval()
    tm.eval()
    x = randn(2, 4, 5, 5, dtype=np.float32)
    # identical up to float32 rounding (cygrad normalises in double)
    assert_close(cm(cygrad.tensor(x)), tm(torch.tensor(x)), rtol=1e-6, atol=1e-6)
    # a state_dict without num_batches_tracked (older checkpoints) still loads
    cm2 = cygrad.nn.BatchNorm2d(4)
    cm2.load_state_dict({k: cygrad.tensor(v.numpy()) for k, v in sd.items() if k != "num_batches_tracked"})


def test_batchnorm_running_stats_and_counter():
    m = cygrad.nn.BatchNorm1d(2, momentum=None)
    xs = [randn(6, 2, seed=s) * (s + 1) + s for s in range(3)]
    for x in xs:
        m(cygrad.tensor(x.astype(np.float32)))
    assert int(m.num_batches_tracked) == 3
    np.testing.assert_allclose(m.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0), rtol=1e-5, atol=1e-6)
    # momentum=None: cumulative moving average of the batch statistics (unbiased variance)
    np.testing.assert_allclose(m.running_var.numpy(), np.mean([x.var(0, ddof=1) for x in xs], 0), rtol=1e-5)
    m.eval()
    m(cygrad.tensor(xs[0].astype(np.float32)))
    assert int(m.num_batches_tracked) == 3
    m.reset_running_stats()
    assert int(m.num_batches_tracked) == 0 and m.running_var.numpy().tolist() == [1.0, 1.0]


def test_batchnorm_without_tracking_uses_batch_stats_in_eval(torch):
    x = randn(5, 3, 4, dtype=np.float32)
    cm = cygrad.nn.BatchNorm1d(3, track_running_stats=False).eval()
    assert cm.running_mean is None and cm.num_batches_tracked is None
    tm = torch.nn.BatchNorm1d(3, track_running_stats=False).eval()
    assert_close(cm(cygrad.tensor(x)), tm(torch.tensor(x)), **F32_TOL)


def test_batch_norm_empty_batch_and_version(torch):
    rm, rv = cygrad.zeros(3), cygrad.ones(3)
    v0 = rm._version
    y = CF.batch_norm(cygrad.zeros(0, 3, 4, requires_grad=True), rm, rv, training=True)
    assert tuple(y.shape) == (0, 3, 4)
    assert rm.numpy().tolist() == [0, 0, 0]
    CF.batch_norm(cygrad.randn(4, 3), rm, rv, training=True)
    assert rm._version > v0
    x = cygrad.zeros(2, 0, requires_grad=True)
    CF.layer_norm(x, (0,)).sum().backward()
    assert tuple(x.grad.shape) == (2, 0)
    y = CF.group_norm(cygrad.zeros(0, 4, 3), 2)
    assert tuple(y.shape) == (0, 4, 3)


def test_grad_fn_names():
    x = cygrad.randn(4, 3, 2, requires_grad=True)
    assert CF.batch_norm(x, None, None, training=True).grad_fn.name() == "NativeBatchNormBackward0"
    assert CF.layer_norm(x, (2,)).grad_fn.name() == "NativeLayerNormBackward0"
    assert CF.group_norm(x, 3).grad_fn.name() == "NativeGroupNormBackward0"


def test_inplace_modified_input_is_detected():
    x = cygrad.randn(4, 3, requires_grad=True)
    h = x * 1
    y = CF.layer_norm(h, (3,))
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- bad input --------------------------------------------------------------------------------------------------
def _raises(torch, fn, exc, match=None):
    """``fn(T)`` raises ``exc`` for both libraries (message checked with ``match`` for cygrad)."""
    with pytest.raises(exc):
        fn(torch)
    with pytest.raises(exc, match=match):
        fn(cygrad)


def test_bad_batch_norm(torch):
    F = lambda T: T.nn.functional  # noqa: E731
    _raises(torch, lambda T: T.nn.BatchNorm1d(3)(T.randn(2, 3, 4, 5)), ValueError,
            r"expected 2D or 3D input \(got 4D input\)")
    _raises(torch, lambda T: T.nn.BatchNorm2d(3)(T.randn(2, 3, 4)), ValueError, r"expected 4D input \(got 3D")
    _raises(torch, lambda T: T.nn.BatchNorm3d(3)(T.randn(2, 3, 4, 4)), ValueError, r"expected 5D input \(got 4D")
    _raises(torch, lambda T: T.nn.BatchNorm2d(3)(T.randn(2, 4, 3, 3)), RuntimeError,
            "running_mean should contain 4 elements not 3")
    _raises(torch, lambda T: T.nn.BatchNorm2d(3, track_running_stats=False)(T.randn(2, 4, 3, 3)), RuntimeError,
            "weight should contain 4 elements not 3")
    _raises(torch, lambda T: T.nn.BatchNorm1d(3)(T.randn(1, 3)), ValueError,
            r"Expected more than 1 value per channel when training, got input size .*\[1, 3\]")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(2, 3), None, None), RuntimeError,
            "running_mean must be defined in evaluation mode")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(2, 3), T.zeros(3), None, training=True), ValueError,
            "both be None")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(2, 3, 3), T.zeros(3), T.ones(3), bias=T.ones(6)),
            RuntimeError, "bias should contain 3 elements not 6")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(2, 3), T.zeros(3), T.ones(3), momentum=None, training=True),
            TypeError, "momentum")
    _raises(torch, lambda T: F(T).batch_norm(T.ones(2, 3, dtype=T.int64), T.zeros(3), T.ones(3)),
            NotImplementedError, "\"batch_norm\" not implemented for 'Long'")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(2, 3), T.zeros(3, dtype=T.float64), T.ones(3, dtype=T.float64),
                                             training=True), RuntimeError, "mixed dtype")
    _raises(torch, lambda T: F(T).batch_norm(T.randn(3), None, None, training=True), IndexError, "range")


def test_bad_group_norm(torch):
    F = lambda T: T.nn.functional  # noqa: E731
    _raises(torch, lambda T: T.nn.GroupNorm(3, 4), ValueError, r"num_channels \(4\) must be divisible by num_groups "
                                                               r"\(3\)")
    _raises(torch, lambda T: F(T).group_norm(T.randn(2, 4, 3), 3), RuntimeError,
            r"divisible by num_groups, but got input of shape \[2, 4, 3\] and num_groups=3")
    _raises(torch, lambda T: F(T).group_norm(T.randn(2, 4, 3), 2, T.ones(3)), RuntimeError,
            r"weight of shape \[3\] and input of shape \[2, 4, 3\]")
    _raises(torch, lambda T: F(T).group_norm(T.randn(4), 2), RuntimeError, "at least 2 dimensions")
    _raises(torch, lambda T: F(T).group_norm(T.randn(2, 4, 3), -2), RuntimeError, "greater than 0, got -2")
    _raises(torch, lambda T: F(T).group_norm(T.randn(2, 4, 3), 0), ZeroDivisionError)
    _raises(torch, lambda T: F(T).group_norm(T.ones(2, 4, dtype=T.int64), 2), NotImplementedError,
            "\"GroupNormKernelImpl\" not implemented for 'Long'")


def test_bad_layer_and_rms_norm(torch):
    F = lambda T: T.nn.functional  # noqa: E731
    _raises(torch, lambda T: F(T).layer_norm(T.randn(2, 4, 3), (4,)), RuntimeError,
            r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of size\[2, 4, 3\]")
    _raises(torch, lambda T: T.nn.LayerNorm([3, 3])(T.randn(2, 4, 3)), RuntimeError,
            r"normalized_shape=\[3, 3\]")
    _raises(torch, lambda T: F(T).layer_norm(T.randn(2, 4, 3), (3,), T.ones(4)), RuntimeError,
            r"weight of shape \[4\] and normalized_shape = \[3\]")
    _raises(torch, lambda T: F(T).layer_norm(T.randn(2, 4, 3), 3), TypeError, "tuple of ints")
    _raises(torch, lambda T: F(T).layer_norm(T.randn(2, 4, 3), []), RuntimeError, "at least 1-dimensional")
    _raises(torch, lambda T: F(T).layer_norm(T.ones(2, 3, dtype=T.int64), (3,)), NotImplementedError,
            "\"LayerNormKernelImpl\" not implemented for 'Long'")
    _raises(torch, lambda T: F(T).rms_norm(T.randn(2, 4, 3), (4,)), RuntimeError,
            r"Given normalized_shape=\[4\], expected input with shape \[\*4\], but got input of size\[2, 4, 3\]")
    _raises(torch, lambda T: F(T).rms_norm(T.randn(2, 4, 3), (3,), T.ones(4)), RuntimeError,
            r"weight of shape \[4\]")
    _raises(torch, lambda T: F(T).rms_norm(T.ones(2, 3, dtype=T.int64), (3,)), NotImplementedError,
            "\"rms_norm\" not implemented for 'Long'")


def test_bad_instance_norm_lrn_normalize(torch):
    F = lambda T: T.nn.functional  # noqa: E731
    _raises(torch, lambda T: F(T).instance_norm(T.randn(2, 4)), ValueError,
            r"Expected more than 1 spatial element when training, got input size .*\[2, 4\]")
    _raises(torch, lambda T: F(T).instance_norm(T.randn(2, 4, 3), T.zeros(3), T.ones(3)), RuntimeError,
            "running_mean should contain 8 elements not 6")
    _raises(torch, lambda T: F(T).instance_norm(T.randn(2, 4, 3), use_input_stats=False), RuntimeError,
            "use_input_stats is false")
    _raises(torch, lambda T: T.nn.InstanceNorm1d(4)(T.randn(2, 4, 3, 3)), ValueError,
            r"expected 2D or 3D input \(got 4D input\)")
    _raises(torch, lambda T: T.nn.InstanceNorm2d(5, affine=True)(T.randn(2, 4, 3, 3)), ValueError,
            r"size at dim=1 to match num_features \(5\), but got: 4")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cygrad.nn.InstanceNorm1d(5)(cygrad.randn(2, 4, 3))
    assert any("does not match num_features" in str(r.message) for r in rec)
    _raises(torch, lambda T: F(T).local_response_norm(T.randn(2, 4), 2), ValueError, r"got 2 dimensions")
    _raises(torch, lambda T: F(T).local_response_norm(T.randn(2, 4, 3), 0), RuntimeError,
            r"size=0 for input of shape \[2, 4, 3\]")
    _raises(torch, lambda T: F(T).normalize(T.ones(2, 3, dtype=T.int64)), RuntimeError, "Got Long")
    _raises(torch, lambda T: F(T).normalize(T.randn(2, 3), dim=2), IndexError)


def test_instance_norm_rejects_untracked_running_stats_in_state_dict():
    m = cygrad.nn.InstanceNorm2d(3)
    with pytest.raises(RuntimeError, match="Unexpected running stats buffer"):
        m.load_state_dict({"running_mean": cygrad.zeros(3), "running_var": cygrad.ones(3)})
