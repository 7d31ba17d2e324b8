"""matmul & friends: forward/backward vs torch, float64 gradcheck, gradgradcheck, errors, threads."""
import numpy as np
import pytest

import cygrad
from conftest import FLOAT_DTYPES, assert_close, compare, gradcheck, gradgradcheck, randn

MATMUL_SHAPES = [
    ((3,), (3,)),            # dot
    ((2, 3), (3,)),          # mv
    ((3,), (3, 4)),          # vm
    ((2, 3), (3, 4)),        # mm
    ((2, 2, 3), (2, 3, 4)),  # bmm
    ((2, 2, 3), (3, 4)),     # batched @ matrix
    ((3,), (2, 3, 4)),       # 1-D @ 3-D
    ((2, 2, 3), (3,)),       # 3-D @ 1-D
    ((2, 1, 2, 3), (3, 3, 2)),  # broadcast batch
    ((1, 2, 3), (2, 1, 3, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matmul_vs_torch(torch, sa, sb, dtype):
    a, b = randn(*sa, dtype=dtype, seed=1), randn(*sb, dtype=dtype, seed=2)
    compare(torch, lambda T, x, y: T.matmul(x, y), [a, b])
    compare(torch, lambda T, x, y: x @ y, [a, b])


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(sa, sb):
    gradcheck(lambda T, x, y: x @ y, [randn(*sa, seed=1), randn(*sb, seed=2)])


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 2)), ((2, 2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 2))], ids=str)
def test_matmul_gradgradcheck(sa, sb):
    gradgradcheck(lambda T, x, y: x @ y, [randn(*sa, seed=1), randn(*sb, seed=2)])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matmul_noncontiguous(torch, dtype):
    a, b = randn(4, 3, dtype=dtype, seed=1), randn(5, 4, dtype=dtype, seed=2)
    compare(torch, lambda T, x, y: x.t() @ y.t(), [a, b])
    compare(torch, lambda T, x, y: T.mm(x.T, y.mT), [a, b])
    c = randn(2, 4, 3, dtype=dtype, seed=3)
    compare(torch, lambda T, x, y: x.transpose(1, 2) @ y[:, ::2].unsqueeze(0).expand(2, 4, 2)
            if T is cygrad else x.transpose(1, 2) @ y[:, ::2].unsqueeze(0).expand(2, 4, 2), [c, randn(4, 4, dtype=dtype)])
    compare(torch, lambda T, x, y: x[:, 1:] @ y[::2, :], [randn(3, 5, dtype=dtype), randn(8, 2, dtype=dtype)])
    gradcheck(lambda T, x, y: x.t() @ y.t(), [randn(4, 3, seed=1), randn(5, 4, seed=2)])


LIN = {
    "mm": (lambda T, a, b, c: T.mm(a, b), [(2, 3), (3, 4), (4,)]),
    "bmm": (lambda T, a, b, c: T.bmm(a, b), [(2, 2, 3), (2, 3, 2), (2,)]),
    "addmm": (lambda T, a, b, c: T.addmm(c, a, b), [(2, 3), (3, 4), (4,)]),
    "addmm_alpha_beta": (lambda T, a, b, c: T.addmm(c, a, b, beta=0.5, alpha=2.0), [(2, 3), (3, 4), (2, 4)]),
    "outer": (lambda T, a, b, c: T.outer(a, b), [(3,), (4,), (1,)]),
    "dot": (lambda T, a, b, c: T.dot(a, b), [(3,), (3,), (1,)]),
    "mv": (lambda T, a, b, c: T.mv(a, b), [(2, 3), (3,), (1,)]),
    "inner": (lambda T, a, b, c: T.inner(a, b), [(2, 3), (4, 3), (1,)]),
    "baddbmm": (lambda T, a, b, c: T.baddbmm(c, a, b, alpha=0.5), [(2, 2, 3), (2, 3, 2), (2, 2, 2)]),
    "addmv": (lambda T, a, b, c: T.addmv(c, a, b), [(2, 3), (3,), (2,)]),
    "linear": (lambda T, a, b, c: T.nn.functional.linear(a, b, c), [(2, 3), (4, 3), (4,)]),
    "linear_nobias": (lambda T, a, b, c: T.nn.functional.linear(a, b), [(2, 3), (4, 3), (4,)]),
    "linear_3d": (lambda T, a, b, c: T.nn.functional.linear(a, b, c), [(2, 2, 3), (4, 3), (4,)]),
    "linear_1d": (lambda T, a, b, c: T.nn.functional.linear(a, b, c), [(3,), (4, 3), (4,)]),
    "linear_noncontig": (lambda T, a, b, c: T.nn.functional.linear(a.mT, b.mT, c[::2]),
                         [(3, 5), (3, 4), (8,)]),
    "linear_4d_rows": (lambda T, a, b, c: T.nn.functional.linear(a[:, ::2], b, c), [(2, 6, 3, 5), (4, 5), (4,)]),
    "method_mm": (lambda T, a, b, c: a.mm(b) + a.matmul(b), [(2, 3), (3, 4), (4,)]),
}


@pytest.mark.parametrize("name", list(LIN))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_linalg_vs_torch(torch, name, dtype):
    fn, shapes = LIN[name]
    ins = [randn(*s, dtype=dtype, seed=i) for i, s in enumerate(shapes)]
    compare(torch, fn, ins)


@pytest.mark.parametrize("name", list(LIN))
def test_linalg_gradcheck(name):
    fn, shapes = LIN[name]
    gradcheck(fn, [randn(*s, seed=i) for i, s in enumerate(shapes)])


@pytest.mark.parametrize("name", ["addmm", "linear", "outer", "bmm"])
def test_linalg_gradgradcheck(name):
    fn, shapes = LIN[name]
    gradgradcheck(fn, [randn(*s, seed=i) for i, s in enumerate(shapes)])


def test_matmul_int(torch):
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    compare(torch, lambda T, x, y: x @ y, [a, b])


def test_matmul_empty(torch):
    compare(torch, lambda T, x, y: x @ y, [np.zeros((2, 0)), np.zeros((0, 3))])
    compare(torch, lambda T, x, y: x @ y, [np.zeros((0, 2)), randn(2, 3)])


# ------------------------------------------------------------------ errors

def _same_error(torch, f, exc, match):
    with pytest.raises(exc) as te:
        f(torch)
    with pytest.raises(exc, match=match) as ce:
        f(cygrad)
    assert str(ce.value) == str(te.value), f"cygrad: {ce.value!r}\ntorch:  {te.value!r}"


def test_mm_shape_error(torch):
    _same_error(torch, lambda T: T.mm(T.zeros(3, 4), T.zeros(5, 4)), RuntimeError,
                r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 5x4\)")
    _same_error(torch, lambda T: T.zeros(3, 4) @ T.zeros(5, 4), RuntimeError,
                r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 5x4\)")
    _same_error(torch, lambda T: T.nn.functional.linear(T.zeros(2, 3), T.zeros(4, 5)), RuntimeError,
                r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 5x4\)")


def test_matmul_other_shape_errors(torch):
    for f in [lambda T: T.zeros(3) @ T.zeros(4), lambda T: T.zeros(2, 3) @ T.zeros(4),
              lambda T: T.bmm(T.zeros(2, 2, 3), T.zeros(3, 3, 2)), lambda T: T.zeros(2, 2, 3) @ T.zeros(3, 4, 2),
              lambda T: T.mm(T.zeros(3), T.zeros(3, 2)), lambda T: T.dot(T.zeros(3), T.zeros(4)),
              lambda T: T.zeros(()) @ T.zeros(3)]:
        with pytest.raises(RuntimeError) as te:
            f(torch)
        with pytest.raises(RuntimeError) as ce:
            f(cygrad)
        assert str(ce.value).split(",")[0].split("(")[0] == str(te.value).split(",")[0].split("(")[0], \
            (str(ce.value), str(te.value))


def test_matmul_dtype_mismatch(torch):
    _same_error(torch, lambda T: T.zeros(2, 3) @ T.zeros(3, 2, dtype=T.float64), RuntimeError,
                "expected m1 and m2 to have the same dtype, but got: float != double")
    _same_error(torch, lambda T: T.mm(T.zeros(2, 3, dtype=T.float64), T.zeros(3, 2)), RuntimeError,
                "expected m1 and m2 to have the same dtype")
    _same_error(torch, lambda T: T.dot(T.zeros(3), T.zeros(3, dtype=T.float64)), RuntimeError,
                "dot : expected both vectors to have same dtype")


# ------------------------------------------------------------------ threads

def test_matmul_threads_consistent(restore_threads):
    a = cygrad.tensor(randn(256, 256, dtype=np.float32, seed=1))
    b = cygrad.tensor(randn(256, 256, dtype=np.float32, seed=2))
    cygrad.set_num_threads(1)
    r1 = (a @ b).numpy().copy()
    cygrad.set_num_threads(2)
    assert cygrad.get_num_threads() == 2
    r2 = (a @ b).numpy().copy()
    assert_close(r1, r2, rtol=1e-5, atol=1e-4)
    ref = a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)
    assert_close(r2.astype(np.float64), ref, rtol=1e-4, atol=1e-3)
