"""Shape / indexing ops: forward/backward vs torch, float64 gradcheck, gradgradcheck, errors."""
import re

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from conftest import FLOAT_DTYPES, compare, gradcheck, gradgradcheck, randn, rng


def _i(T, v):
    return T.tensor(v)


# every entry: (fn(T, x), input shape)
SHAPE_OPS = {
    "reshape": (lambda T, x: x.reshape(4, 6), (2, 3, 4)),
    "reshape_infer": (lambda T, x: T.reshape(x, (-1, 3)), (2, 3, 4)),
    "reshape_tuple_method": (lambda T, x: x.reshape((3, -1)), (2, 3, 4)),
    "view": (lambda T, x: x.view(6, 4), (2, 3, 4)),
    "view_infer": (lambda T, x: x.view(-1), (2, 3, 4)),
    "view_as": (lambda T, x: x.view_as(T.zeros(4, 6)), (2, 3, 4)),
    "flatten": (lambda T, x: x.flatten(), (2, 3, 4)),
    "flatten_range": (lambda T, x: T.flatten(x, 1, 2), (2, 3, 4)),
    "flatten_start": (lambda T, x: x.flatten(start_dim=1), (2, 3, 4)),
    "unflatten": (lambda T, x: x.unflatten(2, (2, 2)), (2, 3, 4)),
    "unflatten_infer": (lambda T, x: T.unflatten(x, -1, (-1, 2)), (2, 3, 4)),
    "squeeze": (lambda T, x: x.squeeze(), (2, 1, 3, 1)),
    "squeeze_dim": (lambda T, x: T.squeeze(x, 1), (2, 1, 3, 1)),
    "squeeze_dim_noop": (lambda T, x: x.squeeze(0), (2, 1, 3, 1)),
    "squeeze_tuple": (lambda T, x: x.squeeze((1, 3)), (2, 1, 3, 1)),
    "unsqueeze": (lambda T, x: x.unsqueeze(0), (2, 3)),
    "unsqueeze_neg": (lambda T, x: T.unsqueeze(x, -1), (2, 3)),
    "unsqueeze_mid": (lambda T, x: x.unsqueeze(1), (2, 3)),
    "transpose": (lambda T, x: x.transpose(0, 2), (2, 3, 4)),
    "transpose_neg": (lambda T, x: T.transpose(x, -1, -2), (2, 3, 4)),
    "swapaxes": (lambda T, x: T.swapaxes(x, 0, 1), (2, 3, 4)),
    "permute": (lambda T, x: x.permute(2, 0, 1), (2, 3, 4)),
    "permute_tuple": (lambda T, x: T.permute(x, (1, -1, 0)), (2, 3, 4)),
    "movedim": (lambda T, x: T.movedim(x, 0, -1), (2, 3, 4)),
    "t": (lambda T, x: x.t(), (2, 3)),
    "t_fn_1d": (lambda T, x: T.t(x), (3,)),
    "T": (lambda T, x: x.T, (2, 3)),
    "mT": (lambda T, x: x.mT, (2, 3, 4)),
    "expand": (lambda T, x: x.expand(2, 3, 4), (3, 1)),
    "expand_neg": (lambda T, x: x.expand(4, -1, 2), (3, 1)),
    "expand_as": (lambda T, x: x.expand_as(T.zeros(2, 3, 5)), (3, 1)),
    "broadcast_to": (lambda T, x: T.broadcast_to(x, (2, 3, 3)), (3, 1)),
    "repeat": (lambda T, x: x.repeat(2, 3), (2, 3)),
    "repeat_more_dims": (lambda T, x: x.repeat(2, 1, 2), (2, 3)),
    "repeat_interleave": (lambda T, x: x.repeat_interleave(2), (2, 3)),
    "repeat_interleave_dim": (lambda T, x: T.repeat_interleave(x, 3, dim=1), (2, 3)),
    "repeat_interleave_tensor": (lambda T, x: x.repeat_interleave(_i(T, [1, 0, 2]), dim=1), (2, 3)),
    "narrow": (lambda T, x: x.narrow(1, 1, 2), (2, 3, 4)),
    "narrow_neg": (lambda T, x: T.narrow(x, -1, 0, 3), (2, 3, 4)),
    "select": (lambda T, x: x.select(1, 2), (2, 3, 4)),
    "select_neg": (lambda T, x: T.select(x, -1, -1), (2, 3, 4)),
    "index_select": (lambda T, x: x.index_select(1, _i(T, [2, 0, 2])), (2, 3, 4)),
    "index_select_fn": (lambda T, x: T.index_select(x, 0, _i(T, [1])), (2, 3, 4)),
    "gather": (lambda T, x: x.gather(1, _i(T, [[0, 0, 2], [1, 2, 0]])), (2, 3)),
    "gather_dim0": (lambda T, x: T.gather(x, 0, _i(T, [[1, 0, 1]])), (2, 3)),
    "scatter_src": (lambda T, x: x.scatter(1, _i(T, [[0, 2], [1, 0]]), x[:, :2] * 2), (2, 3)),
    "scatter_value": (lambda T, x: T.scatter(x, 0, _i(T, [[1, 0, 1]]), 5.0), (2, 3)),
    "scatter_add": (lambda T, x: x.scatter_add(1, _i(T, [[0, 0], [2, 2]]), x[:, 1:] * 3), (2, 3)),
    "scatter_add_fn": (lambda T, x: T.scatter_add(x, 0, _i(T, [[0, 1, 0], [0, 0, 1]]), x.exp()), (2, 3)),
    "masked_fill": (lambda T, x: x.masked_fill(_i(T, [[True, False, True], [False, False, True]]), -1.5), (2, 3)),
    "masked_fill_bcast": (lambda T, x: T.masked_fill(x, _i(T, [True, False, False]), 0.0), (2, 3)),
    "masked_fill_tensor_value": (lambda T, x: x.masked_fill(_i(T, [False, True, False]), x[0, 0]), (2, 3)),
    "masked_select": (lambda T, x: x.masked_select(_i(T, [[True, False, True], [False, True, True]])), (2, 3)),
    "masked_select_bcast": (lambda T, x: T.masked_select(x, _i(T, [False, True, True])), (2, 3)),
    "tril": (lambda T, x: x.tril(), (3, 4)),
    "tril_diag": (lambda T, x: T.tril(x, -1), (2, 3, 4)),
    "triu": (lambda T, x: T.triu(x), (3, 4)),
    "triu_diag": (lambda T, x: x.triu(diagonal=2), (3, 4)),
    "flip": (lambda T, x: x.flip(0), (2, 3, 4)),
    "flip_multi": (lambda T, x: T.flip(x, (0, -1)), (2, 3, 4)),
    "fliplr": (lambda T, x: T.fliplr(x), (2, 3)),
    "roll": (lambda T, x: x.roll(1), (2, 3)),
    "roll_dim": (lambda T, x: T.roll(x, -2, 1), (2, 3, 4)),
    "roll_multi": (lambda T, x: x.roll((1, 2), (0, 2)), (2, 3, 4)),
    "unbind": (lambda T, x: x.unbind(1), (2, 3)),
    "unbind_fn": (lambda T, x: T.unbind(x), (2, 3)),
    "split": (lambda T, x: x.split(2, dim=1), (2, 5)),
    "split_sections": (lambda T, x: T.split(x, [1, 3, 1], 1), (2, 5)),
    "split_dim0": (lambda T, x: x.split(1), (2, 5)),
    "chunk": (lambda T, x: x.chunk(3, 1), (2, 5)),
    "chunk_fn": (lambda T, x: T.chunk(x, 2), (2, 5)),
    "tensor_split": (lambda T, x: T.tensor_split(x, 3, dim=1), (2, 5)),
    "split_partial_use": (lambda T, x: x.split(2, dim=1)[1], (2, 5)),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_shape_op_vs_torch(torch, name, dtype):
    fn, shape = SHAPE_OPS[name]
    compare(torch, fn, [randn(*shape, dtype=dtype)])


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_op_gradcheck(name):
    fn, shape = SHAPE_OPS[name]
    gradcheck(fn, [randn(*shape, seed=2)])


@pytest.mark.parametrize("name", ["reshape", "permute", "expand", "gather", "scatter_add", "masked_fill", "roll",
                                  "split", "repeat", "index_select"])
def test_shape_op_gradgradcheck(name):
    fn, shape = SHAPE_OPS[name]
    # compose with a nonlinearity so the second derivative is non-trivial
    gradgradcheck(lambda T, x: fn(T, x * x) if not isinstance(fn(T, x), tuple) else fn(T, x * x)[0] ** 2,
                  [randn(*shape, seed=3)])


def test_shape_op_int_dtype(torch):
    x = np.arange(24).reshape(2, 3, 4)
    for name in ["reshape", "permute", "flip", "roll_multi", "gather", "expand", "repeat", "tril", "index_select"]:
        fn, shape = SHAPE_OPS[name]
        compare(torch, fn, [np.arange(int(np.prod(shape))).reshape(shape)])
    assert x.shape == (2, 3, 4)


# ------------------------------------------------------------------ multi-input: cat / stack / where-like

MULTI = {
    "cat0": lambda T, a, b, c: T.cat([a, b, c]),
    "cat1": lambda T, a, b, c: T.cat((a.reshape(3, 2), b.reshape(3, 2), c.reshape(3, 2)), dim=1),
    "cat_neg": lambda T, a, b, c: T.cat([a, b], -1),
    "concat": lambda T, a, b, c: T.concat([a, c], dim=0),
    "stack": lambda T, a, b, c: T.stack([a, b, c]),
    "stack_dim": lambda T, a, b, c: T.stack([a, b, c], dim=2),
    "stack_neg": lambda T, a, b, c: T.stack((a, b), -1),
    "hstack": lambda T, a, b, c: T.hstack([a, b]),
    "vstack": lambda T, a, b, c: T.vstack([a, b, c]),
    "cat_same_tensor": lambda T, a, b, c: T.cat([a, a * 2, a]),
}


@pytest.mark.parametrize("name", list(MULTI))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_multi_vs_torch(torch, name, dtype):
    ins = [randn(2, 3, dtype=dtype, seed=s) for s in range(3)]
    compare(torch, MULTI[name], ins)
    if dtype == np.float64:
        gradcheck(MULTI[name], ins)


def test_cat_gradgradcheck():
    gradgradcheck(lambda T, a, b: T.cat([a * b, b.exp()], 1), [randn(2, 2, seed=1), randn(2, 2, seed=2)])
    gradgradcheck(lambda T, a, b: T.stack([a * b, b]).sin(), [randn(2, 2, seed=1), randn(2, 2, seed=2)])


def test_cat_type_promotion_and_empty(torch):
    a, b = randn(2, 3, dtype=np.float32), randn(1, 3, dtype=np.float64)
    compare(torch, lambda T, x, y: T.cat([x, y]), [a, b])
    compare(torch, lambda T, x, y: T.cat([x, y]), [a, np.zeros(0)], grad_inputs=[0])
    compare(torch, lambda T, x, y: T.cat([x, y]), [np.arange(3), randn(3)])


# ------------------------------------------------------------------ pad

PADS = [
    ("constant", (1, 2)), ("constant", (1, 1, 2, 0)), ("constant", (-1, 1)), ("constant", (0, -2, 1, -1)),
    ("constant", (1, 1, 1, 1, 1, 1)),
    ("reflect", (1, 2)), ("reflect", (2, 1, 1, 1)),
    ("replicate", (1, 3)), ("replicate", (2, 1, 0, 2)),
    ("circular", (1, 2)), ("circular", (1, 1, 2, 0)),
]


@pytest.mark.parametrize("mode,pad", PADS, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pad_vs_torch(torch, mode, pad, dtype):
    x = randn(2, 3, 4, dtype=dtype)
    f = lambda T, t: T.nn.functional.pad(t, pad, mode=mode)
    compare(torch, f, [x])
    if dtype == np.float64:
        gradcheck(f, [x])


def test_pad_value_and_gradgrad(torch):
    x = randn(2, 3)
    compare(torch, lambda T, t: T.nn.functional.pad(t, (1, 1), value=2.5), [x])
    gradgradcheck(lambda T, t: T.nn.functional.pad(t * t, (1, 2, 1, 0), mode="reflect"), [x])


def test_pad_errors(torch):
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        CF.pad(cygrad.zeros(2, 3), (1,))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two times"):
        CF.pad(cygrad.zeros(3), (1, 1, 1, 1))


# ------------------------------------------------------------------ einsum

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("ij->ji", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("i,i->", [(3,), (3,)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 2)]),
    ("b...,b...->b", [(2, 3, 2), (2, 3, 2)]),
    ("ijk,ikl->jl", [(2, 3, 2), (2, 2, 3)]),
    ("ij,ij,ij->i", [(2, 3), (2, 3), (2, 3)]),
    ("ij, jk", [(2, 3), (3, 2)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 2), (1, 2, 2, 2)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_einsum_vs_torch(torch, eq, shapes, dtype):
    ins = [randn(*s, dtype=dtype, seed=i) for i, s in enumerate(shapes)]
    f = lambda T, *xs: T.einsum(eq, *xs)
    compare(torch, f, ins)
    if dtype == np.float64:
        gradcheck(f, ins)


def test_einsum_list_operands_and_gradgrad(torch):
    a, b = randn(2, 3, seed=1), randn(3, 2, seed=2)
    compare(torch, lambda T, x, y: T.einsum("ij,jk->ik", [x, y]), [a, b])
    gradgradcheck(lambda T, x, y: T.einsum("ij,jk->ik", x, y) ** 2, [a, b])
    gradgradcheck(lambda T, x: T.einsum("ii->", x * x), [randn(2, 2, seed=3)])


def test_einsum_errors(torch):
    with pytest.raises(RuntimeError) as te:
        torch.einsum("ij,jk->ik", torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(RuntimeError, match="subscript j") as ce:
        cygrad.einsum("ij,jk->ik", cygrad.zeros(2, 3), cygrad.zeros(4, 2))
    assert str(ce.value) == str(te.value)


# ------------------------------------------------------------------ getitem / setitem

GETITEM = {
    "int": lambda T, x: x[1],
    "neg_int": lambda T, x: x[-1],
    "int_int": lambda T, x: x[0, -2],
    "slice": lambda T, x: x[:, 1:3],
    "slice_step": lambda T, x: x[::2, 1::2],
    "slice_neg": lambda T, x: x[-2:, :-1],
    "none": lambda T, x: x[None, :, None],
    "ellipsis": lambda T, x: x[..., 1],
    "ellipsis_none": lambda T, x: x[..., None, 0:2],
    "int_tensor": lambda T, x: x[_i(T, [2, 0, 2])],
    "int_tensor_2d": lambda T, x: x[_i(T, [[0, 1], [2, 2]])],
    "int_tensor_dim1": lambda T, x: x[:, _i(T, [1, 1, 3])],
    "two_int_tensors": lambda T, x: x[_i(T, [0, 2, 2]), _i(T, [1, 1, 0])],
    "neg_int_tensor": lambda T, x: x[_i(T, [-1, 0])],
    "bool_mask": lambda T, x: x[x > 0],
    "bool_mask_rows": lambda T, x: x[_i(T, [True, False, True])],
    "bool_mask_cols": lambda T, x: x[:, _i(T, [True, False, True, True])],
    "list": lambda T, x: x[[0, 2]],
    "list_list": lambda T, x: x[[0, 1], [3, 0]],
    "combo_slice_list": lambda T, x: x[1:, [0, 0, 2]],
    "combo_int_slice_none": lambda T, x: x[1, None, 1:],
    "combo_ellipsis_tensor": lambda T, x: x[..., _i(T, [0, 3])],
    "scalar_tensor_index": lambda T, x: x[_i(T, 1)],
    "full_slice": lambda T, x: x[:],
    "empty_slice": lambda T, x: x[2:1],
}


@pytest.mark.parametrize("name", list(GETITEM))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_getitem_vs_torch(torch, name, dtype):
    x = randn(3, 4, dtype=dtype)
    compare(torch, GETITEM[name], [x])


@pytest.mark.parametrize("name", list(GETITEM))
def test_getitem_gradcheck(name):
    gradcheck(GETITEM[name], [randn(3, 4, seed=1)])


def test_getitem_3d_and_gradgrad(torch):
    x = randn(2, 3, 4)
    for f in [lambda T, t: t[1, :, _i(T, [0, 2])], lambda T, t: t[:, _i(T, [0, 2]), 1:3],
              lambda T, t: t[_i(T, [1, 0]), :, _i(T, [3, 3])], lambda T, t: t[..., ::2] if T is cygrad else t[..., 0::2],
              lambda T, t: t[0][1][2], lambda T, t: t[:, None, ..., None]]:
        compare(torch, f, [x])
    gradgradcheck(lambda T, t: (t * t)[1, _i(T, [0, 2, 0])], [x])
    gradgradcheck(lambda T, t: (t * t)[t > 0], [x])


def test_getitem_negative_step_rejected_like_torch(torch):
    with pytest.raises(ValueError) as te:
        torch.zeros(3)[::-1]
    # cygrad may support negative steps (NumPy semantics); it must at least flip correctly
    try:
        r = cygrad.arange(3)[::-1]
    except ValueError as e:
        assert "step" in str(e)
    else:
        assert r.tolist() == [2, 1, 0]
    assert "step" in str(te.value)


SETITEM = {
    "int": lambda T, y, v: y.__setitem__(0, v[0]),
    "slice": lambda T, y, v: y.__setitem__((slice(None), slice(1, 3)), v[:, :2]),
    "broadcast_row": lambda T, y, v: y.__setitem__(1, v[0]),
    "scalar": lambda T, y, v: y.__setitem__((0, 1), 3.0),
    "scalar_tensor": lambda T, y, v: y.__setitem__((2, 3), v[1, 1]),
    "int_tensor": lambda T, y, v: y.__setitem__(_i(T, [0, 2]), v[:2]),
    "bool_mask": lambda T, y, v: y.__setitem__(y > 0.5, 0.0),
    "bool_mask_values": lambda T, y, v: y.__setitem__(_i(T, [True, False, True]), v[1:3]),
    "ellipsis": lambda T, y, v: y.__setitem__((Ellipsis, 0), v[:3, 0]),
    "None_bcast": lambda T, y, v: y.__setitem__((slice(None), slice(0, 1)), v[:3, :1]),
}


def _setitem_fn(name):
    def f(T, x, v):
        y = x * 1.5
        SETITEM[name](T, y, v * 2)
        return y * y
    return f


@pytest.mark.parametrize("name", list(SETITEM))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_setitem_vs_torch(torch, name, dtype):
    x, v = randn(3, 4, dtype=dtype, seed=1), randn(3, 4, dtype=dtype, seed=2)
    out = compare(torch, _setitem_fn(name), [x, v])
    assert out[0].requires_grad


@pytest.mark.parametrize("name", list(SETITEM))
def test_setitem_gradcheck(name):
    gradcheck(_setitem_fn(name), [randn(3, 4, seed=1), randn(3, 4, seed=2)])


def test_setitem_grad_reaches_both():
    x = cygrad.ones(3, requires_grad=True)
    v = cygrad.tensor(2.0, requires_grad=True)
    y = x * 3
    y[1] = v * 5
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 3.0]
    assert v.grad.item() == 5.0


def test_setitem_leaf_requires_grad_raises(torch):
    with pytest.raises(RuntimeError) as te:
        torch.ones(3, requires_grad=True)[0] = 1.0
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place") as ce:
        cygrad.ones(3, requires_grad=True)[0] = 1.0
    assert "leaf Variable that requires grad" in str(te.value)


def test_getitem_is_view_and_setitem_no_grad(torch):
    x = cygrad.zeros(2, 3)
    x[0, 1:] = cygrad.tensor([1.0, 2.0])
    x[1] = 7
    assert x.tolist() == [[0.0, 1.0, 2.0], [7.0, 7.0, 7.0]]
    v = x[0]
    v[0] = 5.0
    assert x[0, 0].item() == 5.0


# ------------------------------------------------------------------ views / contiguity

def test_view_after_transpose_raises(torch):
    with pytest.raises(RuntimeError) as te:
        torch.zeros(2, 3).t().view(6)
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size and stride") as ce:
        cygrad.zeros(2, 3).t().view(6)
    assert str(ce.value) == str(te.value)
    assert cygrad.zeros(2, 3).t().reshape(6).shape == (6,)
    assert cygrad.zeros(2, 3).t().contiguous().view(6).shape == (6,)


def test_views_share_memory():
    x = cygrad.arange(6.0)
    v = x.view(2, 3)
    v[0, 0] = 10.0
    assert x[0].item() == 10.0
    t = v.t()
    t[2, 1] = -1.0
    assert x[5].item() == -1.0
    assert not t.is_contiguous() and v.is_contiguous()


# ------------------------------------------------------------------ errors

def _same_error(torch, f, exc, match=None):
    with pytest.raises(exc) as te:
        f(torch)
    with pytest.raises(exc, match=match) as ce:
        f(cygrad)
    assert str(ce.value) == str(te.value), f"cygrad: {ce.value!r}\ntorch:  {te.value!r}"


def test_reshape_invalid_size(torch):
    _same_error(torch, lambda T: T.zeros(2, 3).reshape(4, 2), RuntimeError, r"shape '\[4, 2\]' is invalid for input of size 6")
    _same_error(torch, lambda T: T.zeros(2, 3).view(-1, 4), RuntimeError, r"shape '\[-1, 4\]' is invalid")
    _same_error(torch, lambda T: T.zeros(2, 3).reshape(-1, -1), RuntimeError, "only one dimension can be inferred")


def test_expand_errors(torch):
    _same_error(torch, lambda T: T.zeros(2, 3).expand(2, 4), RuntimeError,
                r"The expanded size of the tensor \(4\) must match the existing size \(3\) at non-singleton dimension 1")
    _same_error(torch, lambda T: T.zeros(2, 3).expand(3), RuntimeError, "the number of sizes provided")


def test_cat_errors(torch):
    _same_error(torch, lambda T: T.cat([T.zeros(2, 3), T.zeros(2, 4)]), RuntimeError,
                r"Sizes of tensors must match except in dimension 0. Expected size 3 but got size 4 for tensor number 1")
    _same_error(torch, lambda T: T.cat([T.zeros(2, 3), T.zeros(3)]), RuntimeError, "Tensors must have same number")
    _same_error(torch, lambda T: T.stack([T.zeros(2, 3), T.zeros(3, 2)]), RuntimeError,
                r"stack expects each tensor to be equal size")
    with pytest.raises((RuntimeError, ValueError)):
        cygrad.cat([])


def test_index_errors(torch):
    _same_error(torch, lambda T: T.zeros(2, 3)[2], IndexError, "index 2 is out of bounds for dimension 0 with size 2")
    _same_error(torch, lambda T: T.zeros(2, 3)[:, -4], IndexError, "index -4 is out of bounds for dimension 1")
    _same_error(torch, lambda T: T.zeros(2, 3)[0, 0, 0], IndexError, "too many indices for tensor of dimension 2")
    with pytest.raises(IndexError):
        cygrad.zeros(2, 3)[cygrad.tensor([0, 5])]
    _same_error(torch, lambda T: T.zeros(2, 3).select(1, 3), IndexError, "out of range")


def test_gather_errors(torch):
    _same_error(torch, lambda T: T.zeros(2, 3).gather(1, T.tensor([[0.0]])), RuntimeError,
                re.escape("gather(): Expected dtype int32/int64 for index"))
    compare(torch, lambda T, x: x.gather(1, T.tensor([[1], [0]], dtype=T.int32)), [randn(2, 3)])
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).gather(1, torch.tensor([[5]]))
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with size 3"):
        cygrad.zeros(2, 3).gather(1, cygrad.tensor([[5]]))
    _same_error(torch, lambda T: T.zeros(2, 3).index_select(0, T.tensor([0.0])), RuntimeError,
                "index_select")


def test_masked_fill_errors(torch):
    _same_error(torch, lambda T: T.zeros(2, 3).masked_fill(T.tensor([1, 0, 1]), 1.0), RuntimeError,
                "masked_fill_ only supports boolean masks, but got mask with dtype long int")
    _same_error(torch, lambda T: T.zeros(2, 3).masked_fill(T.tensor([True, False]), 1.0), RuntimeError,
                r"The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 1")


@pytest.mark.parametrize("f", [
    lambda T: T.zeros(2, 3).transpose(0, 2), lambda T: T.zeros(2, 3).unsqueeze(3), lambda T: T.zeros(2, 3).squeeze(2),
    lambda T: T.zeros(2, 3).permute(0, 2), lambda T: T.cat([T.zeros(2)], dim=1), lambda T: T.zeros(2, 3).flip(2),
    lambda T: T.zeros(2, 3).narrow(2, 0, 1), lambda T: T.zeros(2, 3).index_select(-3, T.tensor([0])),
    lambda T: T.stack([T.zeros(2)], dim=3), lambda T: T.zeros(2, 3).flatten(0, 2),
    lambda T: T.nn.functional.softmax(T.zeros(2, 3), dim=2),
])
def test_dim_out_of_range(torch, f):
    _same_error(torch, f, IndexError, "Dimension out of range")


def test_permute_errors(torch):
    _same_error(torch, lambda T: T.zeros(2, 3).permute(0, 0), RuntimeError, "duplicate dims are not allowed")
    _same_error(torch, lambda T: T.zeros(2, 3).permute(0), RuntimeError, "number of dimensions")


def test_split_chunk_sizes():
    x = cygrad.arange(10)
    assert [t.shape[0] for t in x.split(3)] == [3, 3, 3, 1]
    assert [t.shape[0] for t in x.chunk(4)] == [3, 3, 3, 1]
    assert [t.shape[0] for t in x.chunk(6)] == [2, 2, 2, 2, 2]
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum exactly to 10"):
        x.split([3, 3])


def test_nonzero_argwhere(torch):
    x = np.array([[0.0, 1.0], [2.0, 0.0]])
    compare(torch, lambda T, t: T.nonzero(t), [x], grad=False)
    compare(torch, lambda T, t: T.nonzero(t, as_tuple=True), [x], grad=False)
    compare(torch, lambda T, t: T.argwhere(t), [x], grad=False)


def test_repeat_interleave_errors_and_int(torch):
    compare(torch, lambda T: T.repeat_interleave(T.tensor([1, 3, 0])), [], grad=False)
    rng(0)
