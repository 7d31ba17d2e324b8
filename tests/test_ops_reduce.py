"""Reductions: forward/backward vs torch, float64 gradcheck, gradgradcheck, errors."""
import math

import numpy as np
import pytest

import cygrad
from conftest import FLOAT_DTYPES, compare, gradcheck, gradgradcheck, randn, rng

X_SHAPE = (2, 3, 4)

REDUCE = {
    "sum": lambda T, x: x.sum(),
    "sum_dim": lambda T, x: T.sum(x, 1),
    "sum_neg_dim_keep": lambda T, x: x.sum(-1, keepdim=True),
    "sum_tuple": lambda T, x: x.sum((0, 2)),
    "sum_tuple_keep": lambda T, x: x.sum(dim=(0, -1), keepdim=True),
    "sum_dtype": lambda T, x: x.sum(1, dtype=T.float64),
    "mean": lambda T, x: x.mean(),
    "mean_dim": lambda T, x: T.mean(x, dim=2),
    "mean_tuple_keep": lambda T, x: x.mean((1, 2), keepdim=True),
    "prod": lambda T, x: x.prod(),
    "prod_dim": lambda T, x: T.prod(x, 1),
    "prod_dim_keep": lambda T, x: x.prod(-1, keepdim=True),
    "amax": lambda T, x: x.amax(),
    "amax_dim": lambda T, x: T.amax(x, 1),
    "amax_tuple": lambda T, x: T.amax(x, (0, 2), keepdim=True),
    "amin": lambda T, x: T.amin(x),
    "amin_dim": lambda T, x: x.amin(-1),
    "max": lambda T, x: x.max(),
    "max_dim": lambda T, x: T.max(x, 1),
    "max_dim_keep": lambda T, x: x.max(dim=-1, keepdim=True),
    "min": lambda T, x: T.min(x),
    "min_dim": lambda T, x: x.min(0),
    "max_values": lambda T, x: x.max(1).values,
    "min_indices_keep": lambda T, x: T.min(x, 2, keepdim=True).indices,
    "var": lambda T, x: x.var(),
    "var_dim": lambda T, x: T.var(x, 1),
    "var_unbiased_false": lambda T, x: x.var(1, unbiased=False),
    "var_correction0": lambda T, x: T.var(x, dim=(0, 2), correction=0),
    "var_correction2_keep": lambda T, x: x.var(dim=-1, correction=2, keepdim=True),
    "std": lambda T, x: x.std(),
    "std_dim": lambda T, x: T.std(x, 0),
    "std_tuple_keep": lambda T, x: x.std((1, 2), keepdim=True),
    "std_unbiased_false": lambda T, x: T.std(x, 2, unbiased=False),
    "var_mean": lambda T, x: T.var_mean(x, 1),
    "std_mean": lambda T, x: T.std_mean(x, dim=(0, 1), correction=0),
    "logsumexp": lambda T, x: T.logsumexp(x, 1),
    "logsumexp_keep": lambda T, x: x.logsumexp(-1, keepdim=True),
    "logsumexp_tuple": lambda T, x: T.logsumexp(x, (0, 2)),
    "norm": lambda T, x: x.norm(),
    "norm_p1": lambda T, x: T.norm(x, p=1),
    "norm_inf": lambda T, x: T.norm(x, p=math.inf),
    "norm_p3": lambda T, x: x.norm(p=3),
    "norm_dim": lambda T, x: T.norm(x, dim=1),
    "norm_p1_dim_keep": lambda T, x: x.norm(p=1, dim=-1, keepdim=True),
    "norm_inf_dim": lambda T, x: x.norm(p=float("inf"), dim=0),
    "norm_p3_tuple": lambda T, x: T.norm(x, p=3, dim=(1, 2)),
    "cumsum": lambda T, x: x.cumsum(1),
    "cumsum_neg": lambda T, x: T.cumsum(x, dim=-1),
    "cumprod": lambda T, x: T.cumprod(x, 2),
}

NONDIFF = {
    "argmax": lambda T, x: x.argmax(),
    "argmax_dim": lambda T, x: T.argmax(x, 1),
    "argmin_dim_keep": lambda T, x: x.argmin(-1, keepdim=True),
    "argmin": lambda T, x: T.argmin(x),
    "all": lambda T, x: (x > -1).all(),
    "all_dim": lambda T, x: T.all(x > -1, 1),
    "any": lambda T, x: T.any(x > 1),
    "any_dim_keep": lambda T, x: (x > 1).any(dim=-1, keepdim=True),
    "all_float": lambda T, x: T.all(x),
    "count_nonzero": lambda T, x: T.count_nonzero(x > 0, dim=1),
}


@pytest.mark.parametrize("name", list(REDUCE))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_reduce_vs_torch(torch, name, dtype):
    x = randn(*X_SHAPE, dtype=dtype)
    compare(torch, REDUCE[name], [x], rtol=2e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_gradcheck(name):
    x = randn(2, 3, 3, seed=3)
    gradcheck(REDUCE[name], [x])


GG = ["sum_tuple", "mean_dim", "var", "var_correction2_keep", "std_dim", "amax_dim", "logsumexp", "norm", "norm_dim",
      "norm_p3", "prod_dim", "cumsum", "max_dim", "logsumexp_tuple"]


@pytest.mark.parametrize("name", GG)
def test_reduce_gradgradcheck(name):
    gradgradcheck(REDUCE[name], [randn(2, 3, 3, seed=4)])


@pytest.mark.parametrize("name", list(NONDIFF))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nondiff_reduce_vs_torch(torch, name, dtype):
    x = randn(*X_SHAPE, dtype=dtype, seed=5)
    out = compare(torch, NONDIFF[name], [x], grad=False)
    assert not out[0].requires_grad


@pytest.mark.parametrize("name", ["sum", "sum_dim", "mean_dim", "prod_dim", "amax_dim", "max_dim", "cumsum",
                                  "argmax_dim"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_reduce_int_inputs(torch, name, dtype):
    if name == "mean_dim" or (dtype == np.bool_ and name in ("amax_dim", "max_dim", "argmax_dim")):
        pytest.skip("not defined for this dtype in torch")
    x = rng(1).integers(0, 3, X_SHAPE).astype(dtype)
    fn = REDUCE.get(name) or NONDIFF[name]
    compare(torch, fn, [x], grad=False)


# ------------------------------------------------------------------ special values

@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_with_zeros(torch, dim):
    x = np.array([[0.0, 2.0, 3.0], [1.5, 0.0, 0.0], [2.0, -1.0, 0.5]])
    f = (lambda T, t: t.prod()) if dim is None else (lambda T, t: t.prod(dim))
    compare(torch, f, [x])
    gradcheck(f, [x])
    gradgradcheck(f, [x])


@pytest.mark.parametrize("name", ["amax", "amax_dim", "amin_dim", "max", "min", "max_dim", "min_dim", "max_dim_keep",
                                  "norm_inf", "norm_inf_dim", "amax_tuple"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_min_ties(torch, name, dtype):
    # amax/amin and full max/min split the gradient evenly among ties; max(dim)/min(dim) pick one index
    x = np.array([[[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [-2.0, 1.0, -2.0, 3.0]],
                  [[3.0, 3.0, 0.0, 0.0], [-1.0, -1.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]], dtype=dtype)
    compare(torch, REDUCE[name], [x])


def test_amax_ties_gradient_value():
    x = cygrad.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.amax().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5, 0])


def test_max_dim_returns_named_tuple():
    x = cygrad.tensor([[1.0, 5.0], [3.0, 2.0]])
    r = cygrad.max(x, 1)
    assert r.values.tolist() == [5.0, 3.0]
    assert r.indices.tolist() == [1, 0]
    v, i = x.min(dim=0)
    assert v.tolist() == [1.0, 2.0] and i.tolist() == [0, 1] and i.dtype == cygrad.int64


def test_max_binary_form(torch):
    a, b = randn(3, seed=1), randn(3, seed=2)
    compare(torch, lambda T, x, y: T.max(x, y), [a, b])
    compare(torch, lambda T, x, y: x.min(y), [a, b])


def test_logsumexp_large_values(torch):
    x = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, -np.inf, 0.0]])
    compare(torch, lambda T, t: T.logsumexp(t, 1), [x])


def test_norm_zero_vector_grad(torch):
    compare(torch, lambda T, t: t.norm(), [np.zeros(3)])
    compare(torch, lambda T, t: t.norm(dim=1), [np.array([[0.0, 0.0], [3.0, 4.0]])])


def test_std_single_element(torch):
    compare(torch, lambda T, t: t.std(), [np.array([2.0])], grad=False)
    compare(torch, lambda T, t: t.var(correction=0), [np.array([2.0])])


def test_empty_reductions(torch):
    compare(torch, lambda T, t: t.sum(), [np.zeros((0, 3))])
    compare(torch, lambda T, t: t.sum(0), [np.zeros((0, 3))])
    compare(torch, lambda T, t: t.prod(0), [np.zeros((0, 3))])
    compare(torch, lambda T, t: t.mean(0), [np.zeros((0, 3))], grad=False)


def test_scalar_tensor_reductions(torch):
    x = np.array(2.5)
    for f in [lambda T, t: t.sum(), lambda T, t: t.sum(0), lambda T, t: t.mean(-1), lambda T, t: t.amax(0),
              lambda T, t: t.max(), lambda T, t: T.logsumexp(t, 0), lambda T, t: t.cumsum(0),
              lambda T, t: t.prod(0), lambda T, t: t.var(0, correction=0), lambda T, t: t.max(0),
              lambda T, t: t.norm(dim=0), lambda T, t: t.amin(-1, keepdim=True), lambda T, t: t.cumprod(0)]:
        compare(torch, f, [x])


# ------------------------------------------------------------------ errors

def test_mean_int_raises(torch):
    with pytest.raises(RuntimeError) as te:
        torch.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="mean.*Got: Long") as ce:
        cygrad.tensor([1, 2]).mean()
    assert "could not infer output dtype" in str(ce.value) and "could not infer output dtype" in str(te.value)


@pytest.mark.parametrize("f", [lambda T, x: x.sum(3), lambda T, x: x.mean(-4), lambda T, x: x.amax(5),
                               lambda T, x: x.max(3), lambda T, x: x.argmax(3), lambda T, x: x.cumsum(3),
                               lambda T, x: x.var(3), lambda T, x: T.logsumexp(x, 4)])
def test_dim_out_of_range(torch, f):
    with pytest.raises(IndexError) as te:
        f(torch, torch.zeros(2, 3, 4))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-3, 2\]") as ce:
        f(cygrad, cygrad.zeros(2, 3, 4))
    assert str(ce.value) == str(te.value)


def test_duplicate_dims_raise():
    with pytest.raises(RuntimeError, match="dim 1 appears multiple times"):
        cygrad.zeros(2, 3).sum((1, -1))


def test_norm_int_raises():
    with pytest.raises(RuntimeError, match="Expected a floating point"):
        cygrad.tensor([1, 2]).norm()


@pytest.mark.parametrize("f", [lambda x: x.max(), lambda x: x.amax(), lambda x: x.amin(), lambda x: x.min(),
                               lambda x: x.argmax(), lambda x: x.max(0), lambda x: x.amax(0)])
def test_max_empty_raises(torch, f):
    with pytest.raises((RuntimeError, IndexError)) as te:
        f(torch.zeros(0, 3))
    with pytest.raises(te.type) as ce:
        f(cygrad.zeros(0, 3))
    assert str(ce.value).split(".")[0] == str(te.value).split(".")[0]


def test_amax_empty_nonreduced_dim(torch):
    compare(torch, lambda T, t: t.amax(1), [np.zeros((0, 3))], grad=False)


def test_std_constant_input_grad(torch):
    # torch masks the std gradient to 0 where std == 0 (no nan)
    compare(torch, lambda T, t: t.std(), [np.zeros(3)])
    compare(torch, lambda T, t: t.std(1), [np.array([[1.0, 1.0], [1.0, 2.0]])])
    gradgradcheck(lambda T, t: t.std(1), [np.array([[1.0, 1.5, 3.0], [1.0, 2.0, -1.0]])])
