"""Tests of the compiled kernels in cygrad._C against plain NumPy references.

Each kernel is compared with an obviously-correct float64 NumPy implementation (the
``ref_*`` functions below), on float32 and float64 with per-dtype tolerances, for empty,
single-element, large (multi-threaded) and extreme inputs; elementwise and softmax results
must be bitwise identical for 1 and 2 threads.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import erf, expit
from threadpoolctl import threadpool_limits

from cygrad._C import _parallel, activation, linalg

DTYPES = [np.float32, np.float64]
# Kernels compute float32 with float32 maths; references are float64.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
SIZES = [0, 1, 7, 1000, 150_000]  # 150_000 > the serial cut-off: runs on several threads
EXTREMES = [0.0, -0.0, 1e-8, -1e-8, 1.0, -1.0, 20.0, -20.0, 50.0, -50.0, 88.0, -88.0,
            100.0, -100.0, 800.0, -800.0, 1e4, -1e4]


@pytest.fixture(autouse=True)
def _restore_num_threads():
    n = _parallel.get_num_threads()
    yield
    _parallel.set_num_threads(n)


def assert_close(actual, expected, dtype, scale=1.0):
    """|actual - expected| <= atol * scale + rtol * |expected|, elementwise (scale: an array)."""
    tol = TOL[dtype]
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape
    error = np.abs(actual - expected)
    bad = ~(error <= tol["atol"] * scale + tol["rtol"] * np.abs(expected))
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements differ, e.g. actual {actual[bad][:5]}, "
        f"expected {expected[bad][:5]}"
    )


# ---------------------------------------------------------------------------------------------
# _parallel

def test_num_threads_roundtrip():
    assert isinstance(_parallel.openmp_enabled(), bool)
    assert _parallel.get_num_threads() >= 1
    _parallel.set_num_threads(3)
    assert _parallel.get_num_threads() == 3
    _parallel.set_num_threads(np.int64(1))
    assert _parallel.get_num_threads() == 1


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="set_num_threads expects a positive integer, got 0"):
        _parallel.set_num_threads(0)
    with pytest.raises(ValueError, match="got -2"):
        _parallel.set_num_threads(-2)
    for bad in (2.5, "2", None, True):
        with pytest.raises(TypeError, match="positive integer"):
            _parallel.set_num_threads(bad)


@pytest.mark.parametrize("env, expected", [("3", 3), ("2,1", 2), ("abc", None), ("0", None)])
def test_default_num_threads_honours_omp_num_threads(env, expected):
    if expected is None:  # invalid: falls back to the CPUs this process may use
        expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    code = "from cygrad._C import _parallel; print(_parallel.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": env}, check=True)
    assert int(result.stdout) == expected


# ---------------------------------------------------------------------------------------------
# Elementwise activations: references (float64, written from the definitions)

def ref_softplus(x, beta=1.0, threshold=20.0):
    bx = beta * x
    return np.where(bx > threshold, x, np.logaddexp(0.0, bx) / beta)


def ref_softplus_grad(x, beta=1.0, threshold=20.0):
    bx = beta * x
    return np.where(bx > threshold, 1.0, expit(bx))


def ref_gelu(x, tanh_approx):
    if tanh_approx:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def ref_gelu_grad(x, tanh_approx):
    if tanh_approx:
        t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
    return 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)


def ref_elu(x, alpha, scale, input_scale):
    return scale * np.where(x > 0, x, alpha * np.expm1(input_scale * np.minimum(x, 0)))


def ref_elu_grad(x, alpha, scale, input_scale):
    return scale * np.where(x > 0, 1.0, alpha * input_scale * np.exp(input_scale * np.minimum(x, 0)))


def ref_mish_grad(x):
    t = np.tanh(ref_softplus(x))
    return t + x * expit(x) * (1 - t**2)


SELU = dict(alpha=1.6732632423543772848170429916717, scale=1.0507009873554804934193349852946,
            input_scale=1.0)

# name: (forward kernel, backward kernel, kernel kwargs, reference f, reference f')
ELEMENTWISE = {
    "gelu": (activation.gelu_forward, activation.gelu_backward, dict(tanh_approx=False),
             lambda x: ref_gelu(x, False), lambda x: ref_gelu_grad(x, False)),
    "gelu_tanh": (activation.gelu_forward, activation.gelu_backward, dict(tanh_approx=True),
                  lambda x: ref_gelu(x, True), lambda x: ref_gelu_grad(x, True)),
    "silu": (activation.silu_forward, activation.silu_backward, {},
             lambda x: x * expit(x), lambda x: expit(x) * (1 + x * (1 - expit(x)))),
    "mish": (activation.mish_forward, activation.mish_backward, {},
             lambda x: x * np.tanh(ref_softplus(x)), ref_mish_grad),
    "softplus": (activation.softplus_forward, activation.softplus_backward,
                 dict(beta=1.0, threshold=20.0), ref_softplus, ref_softplus_grad),
    "softplus_beta2": (activation.softplus_forward, activation.softplus_backward,
                       dict(beta=2.0, threshold=5.0),
                       lambda x: ref_softplus(x, 2.0, 5.0), lambda x: ref_softplus_grad(x, 2.0, 5.0)),
    "softplus_beta_neg": (activation.softplus_forward, activation.softplus_backward,
                          dict(beta=-0.5, threshold=20.0),
                          lambda x: ref_softplus(x, -0.5, 20.0),
                          lambda x: ref_softplus_grad(x, -0.5, 20.0)),
    "elu": (activation.elu_forward, activation.elu_backward,
            dict(alpha=1.0, scale=1.0, input_scale=1.0),
            lambda x: ref_elu(x, 1.0, 1.0, 1.0), lambda x: ref_elu_grad(x, 1.0, 1.0, 1.0)),
    "selu": (activation.elu_forward, activation.elu_backward, SELU,
             lambda x: ref_elu(x, **SELU), lambda x: ref_elu_grad(x, **SELU)),
    "celu": (activation.elu_forward, activation.elu_backward,
             dict(alpha=0.5, scale=1.0, input_scale=2.0),
             lambda x: ref_elu(x, 0.5, 1.0, 2.0), lambda x: ref_elu_grad(x, 0.5, 1.0, 2.0)),
    "logsigmoid": (activation.logsigmoid_forward, activation.logsigmoid_backward, {},
                   lambda x: -np.logaddexp(0.0, -x), lambda x: expit(-x)),
}


def make_input(n, dtype, seed=0):
    """n values: a normal sample spread over [-10, 10] with the extreme values mixed in."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=n)
    k = min(n, len(EXTREMES))
    x[rng.permutation(n)[:k]] = EXTREMES[:k]
    return x.astype(dtype)


def run_forward(name, x):
    forward, _, kwargs, _, _ = ELEMENTWISE[name]
    out = np.empty_like(x)
    forward(x, out, **kwargs)
    return out


def run_backward(name, x, grad):
    _, backward, kwargs, _, _ = ELEMENTWISE[name]
    out = np.empty_like(x)
    backward(x, grad, out, **kwargs)
    return out


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_elementwise_matches_reference(name, dtype, n):
    _, _, _, ref_f, ref_df = ELEMENTWISE[name]
    x = make_input(n, dtype)
    grad = np.random.default_rng(1).normal(size=n).astype(dtype)
    x64, grad64 = x.astype(np.float64), grad.astype(np.float64)
    assert_close(run_forward(name, x), ref_f(x64), dtype, scale=1 + np.abs(x64))
    assert_close(run_backward(name, x, grad), grad64 * ref_df(x64), dtype, scale=1 + np.abs(grad64))


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_extremes_are_finite(name, dtype):
    huge = np.finfo(dtype).max / 4  # beyond the required range (|x| <= 1e4), but no output overflows
    x = np.array(EXTREMES + [huge, -huge], dtype=dtype)
    with np.errstate(all="raise"):
        y = run_forward(name, x)
        g = run_backward(name, x, np.ones_like(x))
    assert np.all(np.isfinite(y)), y
    assert np.all(np.isfinite(g)), g


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_backward_matches_finite_differences(name):
    """Cross-check the analytic derivatives (kernel and reference) in float64."""
    x = np.random.default_rng(2).uniform(-6, 6, size=200)
    x = x[np.abs(x) > 1e-3]  # away from the kinks of elu / softplus thresholds at 0
    h = 1e-6
    numeric = (run_forward(name, x + h) - run_forward(name, x - h)) / (2 * h)
    analytic = run_backward(name, x, np.ones_like(x))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_same_bits_for_any_thread_count(name, dtype):
    x = make_input(200_003, dtype, seed=3)
    grad = np.random.default_rng(4).normal(size=x.size).astype(dtype)
    results = []
    for threads in (1, 2):
        _parallel.set_num_threads(threads)
        results.append((run_forward(name, x), run_backward(name, x, grad)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_in_place_and_read_only(dtype):
    x = make_input(50, dtype)
    expected = run_forward("silu", x)
    x_ro = x.copy()
    x_ro.flags.writeable = False  # inputs are const memoryviews
    np.testing.assert_array_equal(run_forward("silu", x_ro), expected)
    activation.silu_forward(x, x)  # out may be x
    np.testing.assert_array_equal(x, expected)


def test_elementwise_bad_arguments():
    x = np.zeros(5)
    with pytest.raises(ValueError, match="out has 4 elements but x has 5"):
        activation.silu_forward(x, np.zeros(4))
    with pytest.raises(ValueError, match="grad has 3 elements but x has 5"):
        activation.silu_backward(x, np.zeros(3), np.zeros(5))
    with pytest.raises(ValueError, match="dtype mismatch"):  # the specialisation follows x
        activation.silu_forward(x, np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="No matching signature"):
        activation.silu_forward(x.astype(np.int64), np.zeros(5, np.int64))
    with pytest.raises(ValueError):  # not contiguous
        activation.silu_forward(np.zeros(10)[::2], np.zeros(5))
    out = np.zeros(5)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        activation.silu_forward(x, out)


# ---------------------------------------------------------------------------------------------
# Softmax / log-softmax

def ref_softmax(x, log):
    if x.shape[1] == 0:
        return x.copy()
    shifted = x - x.max(axis=1, keepdims=True)
    if log:
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def ref_softmax_backward(y, grad, log):
    if log:
        return grad - np.exp(y) * grad.sum(axis=1, keepdims=True)
    return y * (grad - (grad * y).sum(axis=1, keepdims=True))


SOFTMAX_SHAPES = [(0, 5), (3, 0), (1, 1), (4, 7), (1, 1000), (300, 500)]


def softmax_input(shape, dtype, seed=0):
    x = np.random.default_rng(seed).normal(scale=4.0, size=shape)
    if x.size >= 3:
        x.flat[:3] = [1e4, -1e4, 0.0]  # one row with extreme logits
    return x.astype(dtype)


def run_softmax(x, log):
    out = np.empty_like(x)
    activation.softmax_forward(x, out, log)
    return out


def run_softmax_backward(y, grad, log):
    out = np.empty_like(y)
    activation.softmax_backward(y, grad, out, log)
    return out


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
def test_softmax_matches_reference(shape, dtype, log):
    x = softmax_input(shape, dtype)
    grad = np.random.default_rng(1).normal(size=shape).astype(dtype)
    y = run_softmax(x, log)
    assert np.all(np.isfinite(y))
    assert_close(y, ref_softmax(x.astype(np.float64), log), dtype, scale=1 + np.abs(x))
    # backward from the kernel's own output, against the reference formula on the same y
    y64, grad64 = y.astype(np.float64), grad.astype(np.float64)
    expected = ref_softmax_backward(y64, grad64, log)
    scale = 1 + np.abs(grad64).sum(axis=1, keepdims=True) if shape[1] else 1.0
    assert_close(run_softmax_backward(y, grad, log), expected, dtype, scale=scale)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_matches_finite_differences(log):
    x = np.random.default_rng(5).normal(size=(3, 6))
    grad = np.random.default_rng(6).normal(size=(3, 6))
    h = 1e-6
    numeric = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = ((run_softmax(x + e, log) - run_softmax(x - e, log)) * grad).sum() / (2 * h)
    analytic = run_softmax_backward(run_softmax(x, log), grad, log)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_same_bits_for_any_thread_count(dtype, log):
    x = softmax_input((400, 300), dtype, seed=7)
    grad = np.random.default_rng(8).normal(size=x.shape).astype(dtype)
    results = []
    for threads in (1, 2):
        _parallel.set_num_threads(threads)
        y = run_softmax(x, log)
        results.append((y, run_softmax_backward(y, grad, log)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_softmax_in_place_and_bad_arguments():
    x = softmax_input((4, 5), np.float64)
    for log in (False, True):
        expected = run_softmax(x, log)
        inplace = x.copy()
        activation.softmax_forward(inplace, inplace, log)
        np.testing.assert_array_equal(inplace, expected)
    with pytest.raises(ValueError, match=r"out has shape \(4, 4\) but x has shape \(4, 5\)"):
        activation.softmax_forward(x, np.empty((4, 4)), False)
    with pytest.raises(ValueError, match=r"grad has shape \(3, 5\)"):
        activation.softmax_backward(x, np.empty((3, 5)), np.empty((4, 5)), False)
    with pytest.raises(ValueError):  # not C-contiguous
        activation.softmax_forward(np.asfortranarray(x), np.empty((4, 5)), False)


# ---------------------------------------------------------------------------------------------
# Optional: agreement with PyTorch's semantics (the API cygrad copies)

def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x64 = make_input(1000, np.float64)
    xt = torch.tensor(x64, requires_grad=True)
    cases = {
        "gelu": lambda t: F.gelu(t),
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "mish": F.mish,
        "softplus": lambda t: F.softplus(t, beta=1.0, threshold=20.0),
        "softplus_beta2": lambda t: F.softplus(t, beta=2.0, threshold=5.0),
        "elu": F.elu,
        "selu": F.selu,
        "celu": lambda t: F.celu(t, alpha=0.5),
        "logsigmoid": F.logsigmoid,
    }
    for name, f in cases.items():
        y = f(xt)
        (g,) = torch.autograd.grad(y.sum(), xt)
        np.testing.assert_allclose(run_forward(name, x64), y.detach().numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(run_backward(name, x64, np.ones_like(x64)), g.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    x2 = softmax_input((5, 9), np.float64)
    for log, f in ((False, F.softmax), (True, F.log_softmax)):
        t = torch.tensor(x2, requires_grad=True)
        y = f(t, dim=1)
        grad = torch.randn(5, 9, dtype=torch.float64)
        (g,) = torch.autograd.grad(y, t, grad)
        ours = run_softmax(x2, log)
        np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(run_softmax_backward(ours, grad.numpy(), log), g.numpy(),
                                   rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# gemm_batched

GEMMS = {"serial": linalg.gemm_batched, "parallel": linalg.gemm_batched_parallel}
GEMM_TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
GEMM_SHAPES = [  # (batch, M, N, K)
    (3, 4, 5, 6), (1, 1, 1, 1), (0, 2, 3, 4), (2, 0, 3, 4), (2, 3, 0, 4), (2, 3, 4, 0),
    (5, 1, 7, 1), (4, 6, 1, 3), (2, 7, 3, 1), (40, 8, 9, 10), (2, 70, 65, 33),
]


def ref_gemm(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, out=None):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    opa = a.swapaxes(1, 2) if trans_a else a
    opb = b.swapaxes(1, 2) if trans_b else b
    result = alpha * np.matmul(opa, opb)
    if beta != 0:
        result += beta * out
    return result


def operands(batch, m, n, k, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (batch, k, m) if trans_a else (batch, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (batch, n, k) if trans_b else (batch, k, n)).astype(dtype)
    return a, b


def run_gemm(kind, a, b, trans_a, trans_b, alpha=1.0, beta=0.0, out=None):
    m = a.shape[2] if trans_a else a.shape[1]
    n = b.shape[1] if trans_b else b.shape[2]
    if out is None:
        out = np.full((a.shape[0], m, n), np.nan, a.dtype)  # beta == 0: never read
    with threadpool_limits(1, "blas"):  # required around the parallel variant; harmless here
        GEMMS[kind](a, b, out, trans_a, trans_b, alpha, beta)
    return out


@pytest.mark.parametrize("kind", GEMMS)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_gemm_batched_matches_matmul(shape, dtype, trans_a, trans_b, kind):
    a, b = operands(*shape, trans_a, trans_b, dtype)
    out = run_gemm(kind, a, b, trans_a, trans_b)
    np.testing.assert_allclose(out, ref_gemm(a, b, trans_a, trans_b), **GEMM_TOL[dtype])


@pytest.mark.parametrize("kind", GEMMS)
@pytest.mark.parametrize("alpha, beta", [(2.5, 0.0), (-1.0, 0.5), (0.5, 1.0), (0.0, 2.0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [0, 4])
def test_gemm_batched_alpha_beta(k, dtype, alpha, beta, kind):
    a, b = operands(3, 4, 5, k, True, False, dtype)
    out0 = np.random.default_rng(9).uniform(-1, 1, (3, 4, 5)).astype(dtype)
    out = run_gemm(kind, a, b, True, False, alpha, beta, out0.copy())
    np.testing.assert_allclose(out, ref_gemm(a, b, True, False, alpha, beta, out0), **GEMM_TOL[dtype])


@pytest.mark.parametrize("kind", GEMMS)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_strided_operands(dtype, trans_a, trans_b, kind):
    batch, m, n, k = 4, 5, 6, 3
    a, b = operands(batch, m, n, k, trans_a, trans_b, dtype)
    rng = np.random.default_rng(10)
    cases = {
        # the same matrix for every batch element: batch stride 0, read-only
        "broadcast": (np.broadcast_to(a[:1], a.shape), np.broadcast_to(b[:1], b.shape)),
        # rows longer than the matrix: a slice of a bigger array
        "slice": (np.concatenate([a, rng.normal(size=a.shape[:2] + (3,)).astype(dtype)], 2)[:, :, :a.shape[2]],
                  np.concatenate([b, rng.normal(size=b.shape[:2] + (2,)).astype(dtype)], 2)[:, :, :b.shape[2]]),
        # column-major matrices (the transpose of a contiguous array)
        "column_major": (np.ascontiguousarray(a.swapaxes(1, 2)).swapaxes(1, 2),
                         np.ascontiguousarray(b.swapaxes(1, 2)).swapaxes(1, 2)),
        # non-contiguous batch axis
        "batch_step": (np.repeat(a, 2, axis=0)[::2], np.repeat(b, 2, axis=0)[::2]),
    }
    for name, (a2, b2) in cases.items():
        np.testing.assert_array_equal(a2, np.broadcast_to(a[:1], a.shape) if name == "broadcast" else a)
        out = run_gemm(kind, a2, b2, trans_a, trans_b)
        np.testing.assert_allclose(out, ref_gemm(a2, b2, trans_a, trans_b), **GEMM_TOL[dtype],
                                   err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_single_row_with_step(dtype):
    """A (1, K) matrix whose last axis has a step is a column-major (K, 1) matrix."""
    big = np.random.default_rng(11).normal(size=(3, 1, 12)).astype(dtype)
    a = big[:, :, ::2]  # (3, 1, 6), strides along the last axis: 2 items
    b = np.random.default_rng(12).normal(size=(3, 6, 4)).astype(dtype)
    out = run_gemm("serial", a, b, False, False)
    np.testing.assert_allclose(out, ref_gemm(a, b, False, False), **GEMM_TOL[dtype])


def test_gemm_batched_parallel_same_bits_for_any_thread_count():
    a, b = operands(256, 16, 16, 16, False, True, np.float64)  # enough work for 2 threads
    results = []
    for threads in (1, 2):
        _parallel.set_num_threads(threads)
        results.append(run_gemm("parallel", a, b, False, True))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], run_gemm("serial", a, b, False, True))


def bad_layouts(shape):
    """float64 arrays of this 3-D shape that BLAS cannot read without a copy."""
    batch, rows, cols = shape
    return [
        np.empty((batch, 2 * rows, 2 * cols))[:, ::2, ::2],  # no unit-stride axis
        np.empty(shape)[:, :, ::-1],                          # reversed rows
        np.empty(shape)[:, ::-1, :],                          # negative row stride
        np.lib.stride_tricks.as_strided(                      # overlapping rows
            np.zeros(batch * (rows + cols)), shape=shape, strides=(8 * (rows + cols), 8, 8)),
    ]


def test_blas_compatible():
    good = [np.empty((2, 3, 5)), np.empty((2, 5, 3)).swapaxes(1, 2), np.empty((2, 3, 9))[:, :, :5],
            np.broadcast_to(np.empty((3, 5), np.float32), (2, 3, 5)), np.empty((2, 1, 10))[:, :, ::2],
            np.empty((2, 3, 10))[:, :, :1], np.empty((0, 3, 5)), np.empty((2, 0, 5))[:, :, ::-1]]
    for x in good:
        assert linalg.blas_compatible(x), x.strides
    bad = bad_layouts((2, 3, 5)) + [np.empty((2, 3, 5), np.int64), np.empty((3, 5)), [[[1.0]]],
                         np.empty((2, 3, 5), ">f8")]
    for x in bad:
        assert not linalg.blas_compatible(x)


@pytest.mark.parametrize("kind", GEMMS)
def test_gemm_batched_bad_arguments(kind):
    gemm = GEMMS[kind]
    a, b = operands(2, 3, 4, 5, False, False, np.float64)
    out = np.empty((2, 3, 4))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        gemm(a, b, out, True, False)
    with pytest.raises(ValueError, match="batch sizes differ: a has 2, b has 1"):
        gemm(a, b[:1], out, False, False)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 4\), got \(2, 4, 3\)"):
        gemm(a, b, np.empty((2, 4, 3)), False, False)
    with pytest.raises(ValueError, match="dtype mismatch"):
        gemm(a, b, out.astype(np.float32), False, False)
    with pytest.raises(TypeError, match="No matching signature"):
        gemm(a.astype(np.int32), b.astype(np.int32), out.astype(np.int32), False, False)
    with pytest.raises(ValueError):  # out not C-contiguous
        gemm(a, b, np.empty((2, 4, 3)).swapaxes(1, 2), False, False)
    for bad_a, bad_b in zip(bad_layouts(a.shape), bad_layouts(b.shape)):
        with pytest.raises(ValueError, match=r"a cannot go to BLAS without a copy.*strides"):
            gemm(bad_a, b, out, False, False)
        with pytest.raises(ValueError, match=r"b cannot go to BLAS without a copy"):
            gemm(a, bad_b, out, False, False)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gemm(a, b, out, False, False)
