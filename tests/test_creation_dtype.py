"""Creation functions, dtype inference/promotion vs torch, conversions, devices, RNG, numpy interop, repr."""
import itertools

import numpy as np
import pytest

import cygrad


def _dt(x):
    """'float32' for cygrad.float32 / torch.float32."""
    return str(x).split(".")[-1]


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    d = cygrad.get_default_dtype()
    yield
    cygrad.set_default_dtype(d)


# ------------------------------------------------------------------ inference

@pytest.mark.parametrize("data", [
    [1.0, 2.0], [1, 2], [True, False], 3.5, 7, True, [[1, 2], [3, 4]], [1, 2.5], [True, 2], [],
    np.array([1.0, 2.0]), np.array([1.0], dtype=np.float32), np.array([1, 2], dtype=np.int32),
    np.array([1, 2]), np.array([True]), np.float64(2.0), np.int64(3), np.array(2.0),
])
def test_tensor_inference(torch, data):
    c, t = cygrad.tensor(data), torch.tensor(data)
    assert _dt(c.dtype) == _dt(t.dtype)
    assert tuple(c.shape) == tuple(t.shape)
    np.testing.assert_array_equal(c.numpy(), t.numpy())


def test_tensor_explicit_dtype_and_copy():
    a = np.array([1.0, 2.0])
    t = cygrad.tensor(a, dtype=cygrad.float32)
    assert t.dtype == cygrad.float32
    t2 = cygrad.tensor(a)
    t2[0] = 5.0
    assert a[0] == 1.0  # tensor() copies
    assert cygrad.tensor([1, 2], dtype=cygrad.float64).dtype == cygrad.float64


def test_set_default_dtype(torch):
    cygrad.set_default_dtype(cygrad.float64)
    assert cygrad.get_default_dtype() == cygrad.float64
    assert cygrad.tensor([1.0]).dtype == cygrad.float64
    assert cygrad.zeros(2).dtype == cygrad.float64
    assert cygrad.arange(0.0, 1.0, 0.5).dtype == cygrad.float64
    assert (cygrad.tensor([1, 2]) / 2).dtype == cygrad.float64
    assert cygrad.tensor([1, 2]).exp().dtype == cygrad.float64
    assert cygrad.tensor([1]).dtype == cygrad.int64
    cygrad.set_default_dtype(cygrad.float32)
    assert cygrad.tensor([1.0]).dtype == cygrad.float32
    with pytest.raises(TypeError):
        cygrad.set_default_dtype(cygrad.int64)


# ------------------------------------------------------------------ promotion

DTYPES = ["float32", "float64", "int64", "int32", "bool"]


def _mk(T, dt, zero_dim):
    d = getattr(T, dt)
    return T.ones((), dtype=d) if zero_dim else T.ones(2, dtype=d)


@pytest.mark.parametrize("a,b", list(itertools.product(DTYPES, DTYPES)))
@pytest.mark.parametrize("dims", ["tt", "t0", "0t", "00"])
def test_promotion_tensor_tensor(torch, a, b, dims):
    ca, cb = _mk(cygrad, a, dims[0] == "0"), _mk(cygrad, b, dims[1] == "0")
    ta, tb = _mk(torch, a, dims[0] == "0"), _mk(torch, b, dims[1] == "0")
    if a == b == "bool":
        assert _dt((ca + cb).dtype) == _dt((ta + tb).dtype)
        return
    for op in ["add", "mul", "sub", "maximum", "div", "where"]:
        if op == "sub" and "bool" in (a, b):
            continue
        if op == "where":
            c_out = cygrad.where(cygrad.tensor(True), ca, cb)
            t_out = torch.where(torch.tensor(True), ta, tb)
        else:
            c_out = getattr(cygrad, op)(ca, cb)
            t_out = getattr(torch, op)(ta, tb)
        assert _dt(c_out.dtype) == _dt(t_out.dtype), (op, a, b, dims)
        np.testing.assert_allclose(c_out.numpy().astype(np.float64), t_out.numpy().astype(np.float64))
    assert _dt(cygrad.promote_types(getattr(cygrad, a), getattr(cygrad, b))) == \
        _dt(torch.promote_types(getattr(torch, a), getattr(torch, b)))
    assert _dt(cygrad.result_type(ca, cb)) == _dt(torch.result_type(ta, tb))


@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("s", [2, 2.5, True, -1])
@pytest.mark.parametrize("zero_dim", [False, True])
def test_promotion_tensor_scalar(torch, a, s, zero_dim):
    ca, ta = _mk(cygrad, a, zero_dim), _mk(torch, a, zero_dim)
    cases = [lambda x: x + s, lambda x: s + x, lambda x: x * s, lambda x: x / s if s else x,
             lambda x: s * x, lambda x: x ** 2, lambda x: cygrad.where(x > 0, x, s) if isinstance(x, cygrad.Tensor)
             else torch.where(x > 0, x, s)]
    if a != "bool" and s is not True:
        cases.append(lambda x: x - s)
    for f in cases:
        c, t = f(ca), f(ta)
        assert _dt(c.dtype) == _dt(t.dtype), (a, s, zero_dim)
        np.testing.assert_allclose(c.numpy().astype(np.float64), t.numpy().astype(np.float64))


def test_promotion_with_default_float64(torch):
    cygrad.set_default_dtype(cygrad.float64)
    try:
        torch.set_default_dtype(torch.float64)
        for x in [lambda T: T.tensor([1, 2]) * 2.5, lambda T: T.tensor([1, 2]) / T.tensor([2]),
                  lambda T: T.tensor([True]) + 1.5, lambda T: T.tensor([1], dtype=T.float32) * 2.5]:
            assert _dt(x(cygrad).dtype) == _dt(x(torch).dtype)
    finally:
        torch.set_default_dtype(torch.float32)


# ------------------------------------------------------------------ conversions

@pytest.mark.parametrize("method,expected", [("float", "float32"), ("double", "float64"), ("long", "int64"),
                                             ("int", "int32"), ("bool", "bool"), ("half", "float16")])
def test_conversion_methods(torch, method, expected):
    for src in [[1.5, -2.0, 0.0], [1, 0, 3]]:
        c = getattr(cygrad.tensor(src), method)()
        t = getattr(torch.tensor(src), method)()
        assert _dt(c.dtype) == expected == _dt(t.dtype)
        np.testing.assert_array_equal(c.numpy(), t.numpy())


def test_to(torch):
    x = cygrad.tensor([1.7, -2.2])
    assert x.to(cygrad.int64).tolist() == [1, -2]  # truncation like torch
    assert x.to("cpu") is x
    assert x.to(cygrad.float32) is x
    assert x.to(cygrad.float64).dtype == cygrad.float64
    assert x.to("cpu", cygrad.float64).dtype == cygrad.float64
    assert x.to(device="cpu", dtype=cygrad.float64).dtype == cygrad.float64
    assert x.to(cygrad.zeros(1, dtype=cygrad.float64)).dtype == cygrad.float64
    assert x.to(cygrad.float32, copy=True) is not x
    assert x.type(cygrad.float64).dtype == cygrad.float64
    # .to() is differentiable
    y = cygrad.tensor([1.0, 2.0], requires_grad=True)
    z = y.to(cygrad.float64) * 3
    z.sum().backward()
    assert y.grad.dtype == cygrad.float32 and y.grad.tolist() == [3.0, 3.0]


def test_device(torch):
    x = cygrad.zeros(2, device="cpu")
    assert str(x.device) == "cpu" and x.device.type == "cpu"
    assert cygrad.zeros(2, device=cygrad.device("cpu")).is_cpu
    assert x.cpu() is x
    for f in [lambda: cygrad.zeros(2, device="cuda"), lambda: x.to("cuda"), lambda: x.cuda(),
              lambda: cygrad.tensor([1.0], device="cuda:0")]:
        with pytest.raises((RuntimeError, AssertionError)):
            f()


# ------------------------------------------------------------------ creation

CREATE = {
    "zeros": lambda T: T.zeros(2, 3), "zeros_tuple": lambda T: T.zeros((2, 3), dtype=T.int64),
    "ones": lambda T: T.ones(3, dtype=T.float64), "ones_empty": lambda T: T.ones(0, 2),
    "full": lambda T: T.full((2, 2), 3.5), "full_int": lambda T: T.full((2,), 7), "full_bool": lambda T: T.full((2,), True),
    "eye": lambda T: T.eye(3), "eye_rect": lambda T: T.eye(2, 4, dtype=T.int64),
    "arange": lambda T: T.arange(5), "arange_float": lambda T: T.arange(0, 1, 0.25),
    "arange_neg": lambda T: T.arange(5, 0, -2), "arange_f64": lambda T: T.arange(3, dtype=T.float64),
    "arange_float_end": lambda T: T.arange(2.5),
    "linspace": lambda T: T.linspace(0, 1, 5), "linspace_1": lambda T: T.linspace(-1, 1, 1),
    "linspace_f64": lambda T: T.linspace(0, 10, steps=7, dtype=T.float64),
    "logspace": lambda T: T.logspace(0, 2, 3),
    "zeros_like": lambda T: T.zeros_like(T.ones(2, 3, dtype=T.int32)),
    "ones_like": lambda T: T.ones_like(T.ones(2, dtype=T.float64)),
    "full_like": lambda T: T.full_like(T.ones(2), 4.0),
    "full_like_int": lambda T: T.full_like(T.ones(2, dtype=T.int64), 4.7),
    "zeros_like_dtype": lambda T: T.zeros_like(T.ones(2), dtype=T.float64),
    "empty_shape": lambda T: T.empty(2, 3).shape,
    "empty_like_shape": lambda T: T.empty_like(T.ones(4, dtype=T.int64)).dtype,
    "new_zeros": lambda T: T.ones(2, dtype=T.float64).new_zeros(3),
    "new_ones": lambda T: T.ones(2, dtype=T.int32).new_ones((2, 2)),
    "new_full": lambda T: T.ones(2).new_full((2,), 3.0),
    "new_tensor": lambda T: T.ones(2, dtype=T.float64).new_tensor([1, 2]),
}


@pytest.mark.parametrize("name", list(CREATE))
def test_creation_vs_torch(torch, name):
    c, t = CREATE[name](cygrad), CREATE[name](torch)
    if isinstance(t, torch.Tensor):
        assert _dt(c.dtype) == _dt(t.dtype)
        assert tuple(c.shape) == tuple(t.shape)
        np.testing.assert_allclose(c.numpy(), t.numpy(), rtol=1e-6)
        assert not c.requires_grad
    else:
        assert (tuple(c) if not hasattr(c, "name") else _dt(c)) == (tuple(t) if not hasattr(t, "is_floating_point")
                                                                    else _dt(t))


def test_creation_requires_grad():
    for f in [lambda: cygrad.zeros(2, requires_grad=True), lambda: cygrad.ones(2, 2, requires_grad=True),
              lambda: cygrad.randn(3, requires_grad=True), lambda: cygrad.tensor([1.0], requires_grad=True),
              lambda: cygrad.full((2,), 1.0, requires_grad=True), lambda: cygrad.rand(2, requires_grad=True)]:
        t = f()
        assert t.requires_grad and t.is_leaf and t.grad_fn is None


def test_requires_grad_int_raises(torch):
    with pytest.raises(RuntimeError) as te:
        torch.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="Only Tensors of floating point and complex dtype can require gradients") \
            as ce:
        cygrad.tensor([1, 2], requires_grad=True)
    assert str(ce.value) == str(te.value)
    with pytest.raises(RuntimeError, match="only Tensors of floating point (and complex )?dtype can require gradients"):
        cygrad.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError):
        cygrad.zeros(2, dtype=cygrad.int64, requires_grad=True)


def test_creation_errors(torch):
    with pytest.raises(RuntimeError):
        cygrad.arange(0, 5, 0)
    with pytest.raises(RuntimeError):
        cygrad.zeros(-1)
    with pytest.raises(RuntimeError) as te:
        torch.arange(0, 5, -1)
    with pytest.raises(RuntimeError) as ce:
        cygrad.arange(0, 5, -1)
    assert str(ce.value) == str(te.value)
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        cygrad.tensor([[1, 2], [3]])


# ------------------------------------------------------------------ random

@pytest.mark.parametrize("f", [
    lambda: cygrad.rand(3, 2), lambda: cygrad.randn(4), lambda: cygrad.randint(0, 10, (5,)),
    lambda: cygrad.randperm(6), lambda: cygrad.rand_like(cygrad.zeros(2, 2, dtype=cygrad.float64)),
    lambda: cygrad.randn_like(cygrad.zeros(3)), lambda: cygrad.randint(5, (2, 2)),
    lambda: cygrad.randint_like(cygrad.zeros(3), 4), lambda: cygrad.normal(0.0, 1.0, (3,)),
])
def test_manual_seed_reproducible(f):
    cygrad.manual_seed(123)
    a = f().numpy().copy()
    b = f().numpy().copy()
    cygrad.manual_seed(123)
    c = f().numpy().copy()
    np.testing.assert_array_equal(a, c)
    assert a.size <= 1 or not np.array_equal(a, b) or a.dtype.kind != "f"


def test_random_distributions():
    cygrad.manual_seed(0)
    r = cygrad.rand(10000)
    assert r.dtype == cygrad.float32 and 0 <= r.min().item() and r.max().item() < 1
    assert abs(r.mean().item() - 0.5) < 0.02
    n = cygrad.randn(10000, dtype=cygrad.float64)
    assert n.dtype == cygrad.float64 and abs(n.mean().item()) < 0.05 and abs(n.std().item() - 1) < 0.05
    i = cygrad.randint(3, 7, (1000,))
    assert i.dtype == cygrad.int64 and i.min().item() == 3 and i.max().item() == 6
    p = cygrad.randperm(10)
    assert p.dtype == cygrad.int64 and sorted(p.tolist()) == list(range(10))


def test_generator_object():
    g = cygrad.Generator().manual_seed(7)
    a = cygrad.rand(3, generator=g)
    g.manual_seed(7)
    assert cygrad.equal(a, cygrad.rand(3, generator=g))
    state = cygrad.get_rng_state()
    x = cygrad.randn(3)
    cygrad.set_rng_state(state)
    assert cygrad.equal(x, cygrad.randn(3))


# ------------------------------------------------------------------ numpy interop

def test_from_numpy_shares_memory():
    a = np.arange(4.0)
    t = cygrad.from_numpy(a)
    assert t.dtype == cygrad.float64
    a[0] = 10.0
    assert t[0].item() == 10.0
    t[1] = 20.0
    assert a[1] == 20.0
    assert cygrad.as_tensor(a)._data is a or np.shares_memory(cygrad.as_tensor(a).numpy(), a)


def test_numpy_shares_memory():
    t = cygrad.zeros(3)
    n = t.numpy()
    n[0] = 5.0
    assert t[0].item() == 5.0
    t.add_(1)
    assert n[1] == 1.0


def test_numpy_requires_grad_raises(torch):
    with pytest.raises(RuntimeError) as te:
        torch.zeros(2, requires_grad=True).numpy()
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad") as ce:
        cygrad.zeros(2, requires_grad=True).numpy()
    assert str(ce.value) == str(te.value)
    assert cygrad.zeros(2, requires_grad=True).detach().numpy().tolist() == [0.0, 0.0]


def test_item_tolist(torch):
    assert cygrad.tensor(2.5).item() == 2.5 and isinstance(cygrad.tensor(3).item(), int)
    assert cygrad.tensor([[1, 2]]).tolist() == [[1, 2]]
    with pytest.raises(RuntimeError) as te:
        torch.zeros(2).item()
    with pytest.raises(RuntimeError) as ce:
        cygrad.zeros(2).item()
    assert str(ce.value) == str(te.value)


# ------------------------------------------------------------------ repr

REPRS = [
    lambda T: T.tensor([1.0, 2.0]),
    lambda T: T.tensor([1, 2]),
    lambda T: T.tensor([True, False]),
    lambda T: T.tensor(3.5),
    lambda T: T.tensor(3),
    lambda T: T.tensor([1.5, -2.25, 3.0]),
    lambda T: T.tensor([[1.0, 2.0], [3.0, 4.0]]),
    lambda T: T.tensor([1.0, 2.0], dtype=T.float64),
    lambda T: T.tensor([1, 2], dtype=T.int32),
    lambda T: T.tensor([1.0, 2.0], requires_grad=True),
    lambda T: T.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda T: T.tensor([1.0, 2.0], requires_grad=True) + 1,
    lambda T: T.tensor([1.0, 2.0], requires_grad=True).sum(),
    lambda T: T.tensor([1.0, 2.0], dtype=T.float64, requires_grad=True).exp(),
    lambda T: T.zeros(0),
    lambda T: T.zeros(2, 0),
    lambda T: T.tensor([0.1, 100.0]),
    lambda T: T.tensor([1e-5, 1.0]),
    lambda T: T.tensor([1e10, 1.0]),
    lambda T: T.tensor([float("nan"), float("inf"), -float("inf")]),
    lambda T: T.arange(12.0).reshape(3, 4),
]


@pytest.mark.parametrize("i", range(len(REPRS)))
def test_repr_like_torch(torch, i):
    c, t = REPRS[i](cygrad), REPRS[i](torch)
    assert repr(c) == repr(t).replace("torch.", "cygrad.")


def test_repr_large_summarised(torch):
    c, t = cygrad.arange(2000.0), torch.arange(2000.0)
    assert repr(c) == repr(t)
    assert "..." in repr(c)


def test_cuda_stub_reports_no_device():
    assert cygrad.cuda.is_available() is False and cygrad.cuda.device_count() == 0
    device = "cuda" if cygrad.cuda.is_available() else "cpu"
    assert cygrad.zeros(2, device=device).device.type == "cpu"
    with pytest.raises(RuntimeError, match="CPU only"):
        cygrad.zeros(2, device="cuda")
