"""Property tests: broadcasting binary ops and reductions vs NumPy, on random shapes and dtypes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays, broadcastable_shapes, mutually_broadcastable_shapes

import cygrad

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = {np.float32: dict(rtol=2e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _reduce_to(g, shape):
    """Sum a broadcast gradient back to ``shape`` (the reference for the engine's _fit)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


# op: (cygrad fn, numpy forward, numpy (dL/da, dL/db) given upstream g)
BINARY = {
    "add": (lambda a, b: a + b, np.add, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, np.divide, lambda a, b, g: (g / b, -g * a / (b * b))),
    "maximum": (cygrad.maximum, np.maximum,
                lambda a, b, g: (g * ((a > b) + 0.5 * (a == b)), g * ((b > a) + 0.5 * (a == b)))),
}


def _data(draw, shape, dtype, positive=False):
    lo = 0.5 if positive else -3.0
    return draw(arrays(dtype, shape, elements=st.floats(lo, 3.0, width=32)))


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@SETTINGS
@given(data=st.data())
def test_binary_broadcast(name, dtype, data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    sa, sb = shapes.input_shapes
    a = _data(data.draw, sa, dtype)
    b = _data(data.draw, sb, dtype, positive=name == "div")
    fn, npf, npg = BINARY[name]
    ta, tb = cygrad.tensor(a, requires_grad=True), cygrad.tensor(b, requires_grad=True)
    out = fn(ta, tb)
    expected = npf(a, b)
    assert tuple(out.shape) == shapes.result_shape == expected.shape
    assert out.dtype == ta.dtype
    np.testing.assert_allclose(out.detach().numpy(), expected, **TOL[dtype])
    g = data.draw(arrays(dtype, expected.shape, elements=st.floats(-2, 2, width=32)))
    out.backward(cygrad.tensor(g))
    ga, gb = (x.astype(np.float64) for x in npg(a.astype(np.float64), b.astype(np.float64), g.astype(np.float64)))
    ga, gb = np.broadcast_to(ga, expected.shape), np.broadcast_to(gb, expected.shape)
    assert tuple(ta.grad.shape) == sa and tuple(tb.grad.shape) == sb
    assert ta.grad.dtype == ta.dtype and tb.grad.dtype == tb.dtype
    np.testing.assert_allclose(ta.grad.numpy(), _reduce_to(ga, sa), **TOL[dtype])
    np.testing.assert_allclose(tb.grad.numpy(), _reduce_to(gb, sb), **TOL[dtype])


@SETTINGS
@given(data=st.data())
def test_where_broadcast(data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    sc, sa, sb = shapes.input_shapes
    c = data.draw(arrays(np.bool_, sc))
    a, b = _data(data.draw, sa, np.float64), _data(data.draw, sb, np.float64)
    ta, tb = cygrad.tensor(a, requires_grad=True), cygrad.tensor(b, requires_grad=True)
    out = cygrad.where(cygrad.tensor(c), ta, tb)
    expected = np.where(c, a, b)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    g = np.ones(expected.shape)
    out.backward(cygrad.tensor(g))
    cb = np.broadcast_to(c, expected.shape)
    np.testing.assert_array_equal(ta.grad.numpy(), _reduce_to(np.where(cb, g, 0.0), sa))
    np.testing.assert_array_equal(tb.grad.numpy(), _reduce_to(np.where(cb, 0.0, g), sb))


@SETTINGS
@given(data=st.data())
def test_incompatible_shapes_raise(data):
    sa = data.draw(array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    i = data.draw(st.integers(0, len(sa) - 1))
    sb = list(sa)
    sb[i] = sa[i] + data.draw(st.integers(1, 3))  # differs and neither is 1
    sb = tuple(sb)
    a, b = cygrad.zeros(sa), cygrad.zeros(sb)
    for f in [lambda: a + b, lambda: a - b, lambda: a * b, lambda: a / b, lambda: cygrad.maximum(a, b),
              lambda: cygrad.where(a > 0, a, b), lambda: a.add_(b) if False else a + b]:
        with pytest.raises(RuntimeError, match=rf"The size of tensor a \(\d+\) must match the size of tensor b "
                                               rf"\(\d+\) at non-singleton dimension \d+"):
            f()


@SETTINGS
@given(data=st.data())
def test_broadcast_shapes_matches_numpy(data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, max_side=4))
    assert tuple(cygrad.broadcast_shapes(*shapes.input_shapes)) == shapes.result_shape
    x = cygrad.zeros(shapes.input_shapes[0])
    assert tuple(x.expand(shapes.result_shape).shape) == shapes.result_shape \
        if len(shapes.input_shapes[0]) <= len(shapes.result_shape) else True


@SETTINGS
@given(data=st.data())
def test_expand_backward_sums(data):
    shape = data.draw(array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    target = data.draw(broadcastable_shapes(shape, min_dims=len(shape), max_dims=len(shape) + 2, max_side=3))
    target = np.broadcast_shapes(shape, target)
    x = cygrad.tensor(np.ones(shape), requires_grad=True)
    g = np.arange(float(np.prod(target))).reshape(target)
    x.expand(*target).backward(cygrad.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), _reduce_to(g, shape))


REDUCTIONS = {
    "sum": (lambda t, d, k: t.sum(d, keepdim=k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    "mean": (lambda t, d, k: t.mean(d, keepdim=k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    "amax": (lambda t, d, k: t.amax(d, keepdim=k), lambda a, d, k: a.max(axis=d, keepdims=k)),
    "amin": (lambda t, d, k: t.amin(d, keepdim=k), lambda a, d, k: a.min(axis=d, keepdims=k)),
    "prod": (lambda t, d, k: t.prod(d[0], keepdim=k), lambda a, d, k: a.prod(axis=d[0], keepdims=k)),
    "var": (lambda t, d, k: t.var(d, keepdim=k, correction=0), lambda a, d, k: a.var(axis=d, keepdims=k)),
    "std": (lambda t, d, k: t.std(d, keepdim=k), lambda a, d, k: a.std(axis=d, keepdims=k, ddof=1)),
    "logsumexp": (lambda t, d, k: cygrad.logsumexp(t, d, keepdim=k),
                  lambda a, d, k: np.log(np.exp(a).sum(axis=d, keepdims=k))),
    "cumsum": (lambda t, d, k: t.cumsum(d[0]), lambda a, d, k: np.cumsum(a, axis=d[0])),
    "argmax": (lambda t, d, k: t.argmax(d[0], keepdim=k), lambda a, d, k: a.argmax(axis=d[0], keepdims=k)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@SETTINGS
@given(data=st.data())
def test_reductions_vs_numpy(name, data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    a = _data(data.draw, shape, dtype)
    nd = len(shape)
    dims = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique_by=lambda d: d % nd))
    keep = data.draw(st.booleans())
    if name == "std" and all(shape[d % nd] == 1 for d in dims):
        return  # n - 1 == 0: nan, checked elsewhere
    cf, nf = REDUCTIONS[name]
    t = cygrad.tensor(a, requires_grad=name != "argmax")
    out = cf(t, tuple(dims), keep)
    axes = tuple(d % nd for d in dims)
    expected = nf(a.astype(np.float64), axes, keep)
    assert tuple(out.shape) == np.shape(expected)
    if name == "argmax":
        np.testing.assert_array_equal(out.numpy(), expected)
        return
    assert out.dtype == t.dtype
    np.testing.assert_allclose(out.detach().numpy(), expected, **{np.float32: dict(rtol=1e-4, atol=1e-5),
                                                                   np.float64: dict(rtol=1e-10, atol=1e-12)}[dtype])
    out.sum().backward()
    assert tuple(t.grad.shape) == shape and t.grad.dtype == t.dtype
    if name in ("sum", "cumsum"):
        assert np.all(t.grad.numpy() >= 1)
    if name == "mean":
        n = np.prod([shape[a_] for a_ in axes])
        np.testing.assert_allclose(t.grad.numpy(), np.full(shape, 1.0 / n), **TOL[dtype])
