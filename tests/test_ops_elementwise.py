"""Elementwise ops: forward/backward vs torch, float64 gradcheck, gradgradcheck, errors."""
import numpy as np
import pytest

import cygrad
from conftest import FLOAT_DTYPES, compare, gradcheck, gradgradcheck, randn, rng


def pos(*shape, dtype=np.float64, seed=0, lo=0.5, hi=2.0):
    return rng(seed).uniform(lo, hi, shape).astype(dtype)


# ------------------------------------------------------------------ binary arithmetic

BINARY = {
    "add": lambda T, a, b: T.add(a, b),
    "add_alpha": lambda T, a, b: T.add(a, b, alpha=2.5),
    "add_method_alpha": lambda T, a, b: a.add(b, alpha=-0.5),
    "sub": lambda T, a, b: a - b,
    "sub_alpha": lambda T, a, b: T.sub(a, b, alpha=3),
    "mul": lambda T, a, b: a * b,
    "div": lambda T, a, b: a / b,
    "div_fn": lambda T, a, b: T.div(a, b),
    "pow": lambda T, a, b: T.pow(a, b),
    "maximum": lambda T, a, b: T.maximum(a, b),
    "minimum": lambda T, a, b: T.minimum(a, b),
    "remainder": lambda T, a, b: T.remainder(a, b),
    "atan2": lambda T, a, b: T.atan2(a, b),
}
# second operand positive (div, pow, remainder), first positive for pow
BSHAPES = [((3,), (3,)), ((2, 3), (3,)), ((2, 1, 3), (4, 1)), ((), (2, 2)), ((3, 1), (1, 2))]


def _binary_inputs(name, sa, sb, dtype):
    a = randn(*sa, dtype=dtype, seed=1)
    b = randn(*sb, dtype=dtype, seed=2)
    if name in ("pow",):
        a = pos(*sa, dtype=dtype, seed=1)
    if name in ("div", "div_fn", "pow", "remainder"):
        b = pos(*sb, dtype=dtype, seed=2)
        if name == "remainder":
            a = rng(3).uniform(0.05, 0.45, sa).astype(dtype) + rng(4).integers(-3, 3, sa).astype(dtype)
            b = np.full(sb, 1.0, dtype=dtype) if sb else np.array(1.0, dtype=dtype)
    return a, b


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", BSHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_binary_vs_torch(torch, name, shapes, dtype):
    a, b = _binary_inputs(name, *shapes, dtype)
    # torch has no derivative of remainder w.r.t. a 0-dim divisor; gradcheck covers it below
    compare(torch, BINARY[name], [a, b], grad_inputs=[0] if name == "remainder" else None)


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", [((2, 3), (3,)), ((2, 1), (1, 3))], ids=str)
def test_binary_gradcheck(name, shapes):
    a, b = _binary_inputs(name, *shapes, np.float64)
    gradcheck(BINARY[name], [a, b])


@pytest.mark.parametrize("name", ["mul", "div", "pow", "add_alpha", "sub"])
def test_binary_gradgradcheck(name):
    a, b = _binary_inputs(name, (2, 3), (3,), np.float64)
    gradgradcheck(BINARY[name], [a, b])


SCALAR_FORMS = {
    "x+2": lambda T, x: x + 2, "2+x": lambda T, x: 2 + x,
    "x-2": lambda T, x: x - 2, "2-x": lambda T, x: 2 - x,
    "x*3": lambda T, x: x * 3, "3*x": lambda T, x: 3 * x,
    "x/2": lambda T, x: x / 2, "2/x": lambda T, x: 2 / x,
    "x**2": lambda T, x: x ** 2, "x**0.5": lambda T, x: x ** 0.5, "x**-1.5": lambda T, x: x ** -1.5,
    "x**3": lambda T, x: x ** 3, "x**0": lambda T, x: x ** 0, "x**1": lambda T, x: x ** 1,
    "2**x": lambda T, x: 2 ** x, "2.5**x": lambda T, x: 2.5 ** x,
    "pow(x,t0d)": lambda T, x: T.pow(x, T.tensor(2.0, dtype=x.dtype)),
    "pow(2,x)": lambda T, x: T.pow(2, x),
    "-x": lambda T, x: -x,
    "x%1.5": lambda T, x: x % 1.5,
    "sub_alpha_scalar": lambda T, x: T.sub(x, 1.5, alpha=2),
    "add_alpha_scalar": lambda T, x: T.add(x, 1.5, alpha=2),
}


@pytest.mark.parametrize("name", list(SCALAR_FORMS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_scalar_forms_vs_torch(torch, name, dtype):
    x = pos(2, 3, dtype=dtype, lo=0.3, hi=1.4)
    compare(torch, SCALAR_FORMS[name], [x])


@pytest.mark.parametrize("name", list(SCALAR_FORMS))
def test_scalar_forms_gradcheck(name):
    gradcheck(SCALAR_FORMS[name], [pos(2, 3, lo=0.3, hi=1.4)])


@pytest.mark.parametrize("name", ["2-x", "2/x", "2**x", "x**0.5", "x**3"])
def test_scalar_forms_gradgradcheck(name):
    gradgradcheck(SCALAR_FORMS[name], [pos(2, 3, lo=0.3, hi=1.4)])


def test_pow_zero_base_grad(torch):
    # d/dx x**2 at 0 is 0; d/dy 0**y is 0 for y>0 in torch (no nan)
    x = np.array([0.0, 1.0, -2.0])
    y = np.array([2.0, 3.0, 2.0])
    compare(torch, lambda T, a, b: T.pow(a, b), [x, y])
    compare(torch, lambda T, a: a ** 2, [x])
    compare(torch, lambda T, a: a ** 0.0, [x])


@pytest.mark.parametrize("mode", [None, "trunc", "floor"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_div_rounding_mode(torch, mode, dtype):
    a = np.array([[-7, 7, 5, -5], [3, -3, 9, 0]]).astype(dtype)
    b = np.array([2, 2, -3, -4]).astype(dtype)
    out = compare(torch, lambda T, x, y: T.div(x, y, rounding_mode=mode), [a, b], grad=False)
    if mode is not None and dtype != np.int64:
        # rounded division has zero gradient, like torch
        compare(torch, lambda T, x, y: T.div(x, y, rounding_mode=mode), [a + 0.25, b])
    assert out


def test_floor_divide_and_int_remainder(torch):
    a = np.array([-7, 7, 5, -5])
    b = np.array([2, -2, 3, 3])
    compare(torch, lambda T, x, y: T.floor_divide(x, y), [a, b])
    compare(torch, lambda T, x, y: T.remainder(x, y), [a, b])
    compare(torch, lambda T, x, y: x // y, [a, b])
    compare(torch, lambda T, x, y: x % y, [a, b])


@pytest.mark.parametrize("fn", ["maximum", "minimum"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_min_ties_split_gradient(torch, fn, dtype):
    a = np.array([1.0, 2.0, 3.0, -1.0], dtype=dtype)
    b = np.array([1.0, 0.0, 3.0, 5.0], dtype=dtype)
    f = lambda T, x, y: getattr(T, fn)(x, y)
    compare(torch, f, [a, b])
    x = cygrad.tensor(a, requires_grad=True)
    y = cygrad.tensor(b, requires_grad=True)
    f(cygrad, x, y).sum().backward()
    assert x.grad[0].item() == 0.5 and y.grad[0].item() == 0.5
    assert x.grad[2].item() == 0.5 and y.grad[2].item() == 0.5


def test_maximum_broadcast_ties(torch):
    a = np.array([[1.0, 2.0], [2.0, 2.0]])
    b = np.array([2.0, 2.0])
    compare(torch, lambda T, x, y: T.maximum(x, y), [a, b])
    compare(torch, lambda T, x, y: T.minimum(x, y), [a, b])


# ------------------------------------------------------------------ unary

UNARY = {
    "exp": ("exp", "any"), "log": ("log", "pos"), "log1p": ("log1p", "pos"), "expm1": ("expm1", "any"),
    "sqrt": ("sqrt", "pos"), "rsqrt": ("rsqrt", "pos"), "abs": ("abs", "nz"), "sign": ("sign", "nz"),
    "neg": ("neg", "any"), "reciprocal": ("reciprocal", "pos"), "sin": ("sin", "any"), "cos": ("cos", "any"),
    "tan": ("tan", "small"), "tanh": ("tanh", "any"), "sigmoid": ("sigmoid", "any"), "erf": ("erf", "any"),
    "floor": ("floor", "nonint"), "ceil": ("ceil", "nonint"), "round": ("round", "nonint"),
    "trunc": ("trunc", "nonint"), "square": ("square", "any"), "exp2": ("exp2", "any"), "log2": ("log2", "pos"),
    "log10": ("log10", "pos"), "sinh": ("sinh", "any"), "cosh": ("cosh", "any"), "asin": ("asin", "small"),
    "acos": ("acos", "small"), "atan": ("atan", "any"), "erfc": ("erfc", "any"), "frac": ("frac", "nonint"),
}


def _unary_input(kind, shape, dtype):
    r = rng(7)
    if kind == "pos":
        return r.uniform(0.2, 3.0, shape).astype(dtype)
    if kind == "small":
        return r.uniform(-0.8, 0.8, shape).astype(dtype)
    if kind == "nz":
        x = r.uniform(0.2, 2.0, shape) * r.choice([-1, 1], shape)
        return x.astype(dtype)
    if kind == "nonint":
        return (r.integers(-3, 3, shape) + r.uniform(0.1, 0.4, shape) * r.choice([-1, 1], shape)).astype(dtype)
    return r.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("form", ["method", "function"])
def test_unary_vs_torch(torch, name, dtype, form):
    fname, kind = UNARY[name]
    x = _unary_input(kind, (3, 4), dtype)
    if form == "method":
        compare(torch, lambda T, t: getattr(t, fname)(), [x])
    else:
        compare(torch, lambda T, t: getattr(T, fname)(t), [x])


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradcheck(name):
    fname, kind = UNARY[name]
    gradcheck(lambda T, t: getattr(T, fname)(t), [_unary_input(kind, (2, 3), np.float64)])


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "log", "sqrt", "sin", "erf", "abs", "reciprocal", "rsqrt"])
def test_unary_gradgradcheck(name):
    fname, kind = UNARY[name]
    gradgradcheck(lambda T, t: getattr(T, fname)(t), [_unary_input(kind, (2, 3), np.float64)])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
def test_piecewise_constant_zero_grad(name):
    x = cygrad.tensor([-1.5, 0.3, 2.7], requires_grad=True)
    getattr(x, name)().sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3, np.float32))


def test_round_decimals(torch):
    x = np.array([1.2345, -2.5551, 0.005], dtype=np.float64)
    compare(torch, lambda T, t: T.round(t, decimals=2), [x])


def test_abs_sign_at_zero(torch):
    x = np.array([0.0, -1.0, 2.0])
    compare(torch, lambda T, t: t.abs(), [x])
    compare(torch, lambda T, t: t.sign(), [x])
    compare(torch, lambda T, t: t.sqrt(), [np.array([0.0, 4.0])])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "sigmoid", "abs", "neg", "floor", "sign"])
def test_unary_int_inputs(torch, dtype, name):
    if dtype == np.bool_ and name in ("neg", "abs", "sign", "floor"):
        pytest.skip("torch rejects/handles bool specially")
    x = np.array([0, 1, 2, 3]).astype(dtype)
    compare(torch, lambda T, t: getattr(T, name)(t), [x], rtol=1e-6)


# ------------------------------------------------------------------ clamp, where, lerp

CLAMP = {
    "both": lambda T, x, lo, hi: T.clamp(x, -0.5, 0.5),
    "min": lambda T, x, lo, hi: T.clamp(x, min=-0.3),
    "max": lambda T, x, lo, hi: x.clamp(max=0.2),
    "clip": lambda T, x, lo, hi: T.clip(x, -0.5, 0.5),
    "clamp_min": lambda T, x, lo, hi: T.clamp_min(x, 0.1),
    "tensor_bounds": lambda T, x, lo, hi: T.clamp(x, lo, hi),
    "tensor_min": lambda T, x, lo, hi: T.clamp(x, min=lo),
    "tensor_max": lambda T, x, lo, hi: x.clamp(max=hi),
    "method_clip": lambda T, x, lo, hi: x.clip(lo, hi),
}


def _clamp_inputs(dtype=np.float64):
    x = np.array([[-1.3, -0.45, 0.05, 0.37, 1.2], [0.9, -0.8, 0.41, -0.12, 0.66]], dtype=dtype)
    lo = np.array([-0.6, -0.2, 0.0, -1.0, 0.5], dtype=dtype)
    hi = np.array([0.6, 0.2, 0.3, 1.0, 0.9], dtype=dtype)
    return [x, lo, hi]


@pytest.mark.parametrize("name", list(CLAMP))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_clamp_vs_torch(torch, name, dtype):
    compare(torch, CLAMP[name], _clamp_inputs(dtype))


@pytest.mark.parametrize("name", list(CLAMP))
def test_clamp_gradcheck(name):
    gradcheck(CLAMP[name], _clamp_inputs())


def test_clamp_gradgradcheck():
    gradgradcheck(CLAMP["tensor_bounds"], _clamp_inputs())
    gradgradcheck(CLAMP["both"], _clamp_inputs())


def test_clamp_at_boundary_grad(torch):
    # torch passes the gradient through when x equals the bound
    x = np.array([-0.5, 0.5, 0.0])
    compare(torch, lambda T, t: T.clamp(t, -0.5, 0.5), [x])
    compare(torch, lambda T, t, lo: T.clamp(t, min=lo), [x, np.array([-0.5, 0.5, 0.0])])


def test_clamp_int_and_errors(torch):
    x = np.array([-3, 0, 5])
    compare(torch, lambda T, t: T.clamp(t, -1, 2), [x])
    compare(torch, lambda T, t: T.clamp(t, -1.5, 2.5), [x])
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        cygrad.clamp(cygrad.tensor([1.0]))


WHERE = {
    "same": lambda T, c, a, b: T.where(c, a, b),
    "method": lambda T, c, a, b: a.where(c, b),
    "scalar_other": lambda T, c, a, b: T.where(c, a, 0.0),
    "scalar_input": lambda T, c, a, b: T.where(c, 1.5, b),
}


@pytest.mark.parametrize("name", list(WHERE))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_where_vs_torch(torch, name, dtype):
    c = rng(0).random((2, 3)) > 0.5
    a = randn(2, 3, dtype=dtype, seed=1)
    b = randn(3, dtype=dtype, seed=2)
    compare(torch, WHERE[name], [c, a, b])
    gradcheck(WHERE[name], [c, a, b])


def test_where_broadcast_cond_and_gradgrad(torch):
    c = np.array([True, False, True])
    a = randn(2, 1, dtype=np.float64, seed=1)
    b = randn(2, 3, seed=2)
    compare(torch, WHERE["same"], [c, a, b])
    gradgradcheck(WHERE["same"], [c, a, b])


def test_where_single_arg(torch):
    c = np.array([[0.0, 1.0], [2.0, 0.0]])
    compare(torch, lambda T, t: T.where(t), [c], grad=False)


LERP = {
    "scalar_w": lambda T, a, b, w: T.lerp(a, b, 0.3),
    "tensor_w": lambda T, a, b, w: T.lerp(a, b, w),
    "method": lambda T, a, b, w: a.lerp(b, w),
}


@pytest.mark.parametrize("name", list(LERP))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_lerp(torch, name, dtype):
    a, b, w = randn(2, 3, dtype=dtype, seed=1), randn(3, dtype=dtype, seed=2), rng(3).random((2, 3)).astype(dtype)
    compare(torch, LERP[name], [a, b, w])
    gradcheck(LERP[name], [a, b, w])


def test_addcmul_addcdiv(torch):
    a, b, c = randn(2, 3, seed=1), randn(2, 3, seed=2), pos(2, 3, seed=3)
    compare(torch, lambda T, x, y, z: T.addcmul(x, y, z, value=0.5), [a, b, c])
    compare(torch, lambda T, x, y, z: T.addcdiv(x, y, z, value=2), [a, b, c])
    gradcheck(lambda T, x, y, z: T.addcdiv(x, y, z, value=2), [a, b, c])


# ------------------------------------------------------------------ comparison / logical

@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons(torch, op):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    out = compare(torch, lambda T, x, y: getattr(T, op)(x, y), [a, b])
    assert out[0].dtype == cygrad.bool and not out[0].requires_grad
    compare(torch, lambda T, x: getattr(x, op)(2), [a])


def test_logical_and_isx(torch):
    a = np.array([0.0, 1.0, np.nan, np.inf, -np.inf])
    b = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    for name in ["isnan", "isinf", "isfinite", "logical_not"]:
        compare(torch, lambda T, x: getattr(T, name)(x), [a], grad=False)
    for name in ["logical_and", "logical_or", "logical_xor"]:
        compare(torch, lambda T, x, y: getattr(T, name)(x, y), [a, b], grad=False)
    compare(torch, lambda T, x: T.nan_to_num(x), [a], grad=False)


# ------------------------------------------------------------------ errors

def test_broadcast_error_message():
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(5\) "
                                           r"at non-singleton dimension 0"):
        cygrad.ones(3) + cygrad.ones(5)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(2\) must match the size of tensor b \(4\) "
                                           r"at non-singleton dimension 1"):
        cygrad.ones(3, 2) * cygrad.ones(3, 4)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "pow"])
def test_broadcast_error_type_matches_torch(torch, op):
    with pytest.raises(RuntimeError) as ct:
        getattr(torch, op)(torch.ones(2, 3), torch.ones(4))
    with pytest.raises(RuntimeError) as cc:
        getattr(cygrad, op)(cygrad.ones(2, 3), cygrad.ones(4))
    assert str(cc.value).splitlines()[0] == str(ct.value).splitlines()[0]


def test_integer_pow_negative_raises(torch):
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        cygrad.tensor([1, 2]) ** -1


def test_int_requires_grad_in_unary_output():
    x = cygrad.tensor([1, 2, 3])
    assert not x.exp().requires_grad
    assert x.exp().dtype == cygrad.float32


def test_sub_bool_raises(torch):
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors is not supported"):
        cygrad.tensor([True]) - cygrad.tensor([False])


def test_mul_by_parameter_both_requiring_grad():
    # Regression: a Tensor subclass (Parameter) as the right operand lost the left operand.
    x = cygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = cygrad.nn.Parameter(cygrad.tensor([4.0, 5.0, 6.0]))
    (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0, 3.0])
