"""Activation kernels: forward / backward pairs, fused float32 / float64.

Elementwise kernels take 1-D contiguous arrays (the caller passes ``x.reshape(-1)`` of a
C-contiguous array) and a preallocated ``out`` of the same length and dtype; ``out`` may be
``x`` itself (or ``grad``). Backward kernels take the forward INPUT ``x`` and the gradient of
the output ``grad``, and write ``out = grad * f'(x)``. float32 is computed with the float32
maths functions (``expf``, ...), float64 with the double ones.

The softmax kernels work on the rows of a 2-D C-contiguous array; their backward takes the
forward OUTPUT ``y``. Row sums accumulate in float64.

Every kernel is one ``prange`` pass over elements (or rows): results do not depend on the
thread count. All are finite for finite inputs of any magnitude: exponentials are only taken
of non-positive arguments, or where the result cannot overflow.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, expm1, expm1f, erf, erff, log1p, log1pf, tanh, tanhf
from libc.math cimport log as math_log  # (the softmax kernels have an argument named log)

from ._parallel cimport n_threads_for

cdef double SQRT1_2 = 0.70710678118654752440          # 1 / sqrt(2)
cdef double INV_SQRT_2PI = 0.39894228040143267794     # 1 / sqrt(2 pi)
cdef double SQRT_2_OVER_PI = 0.79788456080286535588   # sqrt(2 / pi)
cdef double GELU_KAPPA = 0.044715


# ---------------------------------------------------------------------------------------------
# Scalar helpers: one maths function per precision.

cdef inline floating _exp(floating x) noexcept nogil:
    """exp(x)"""
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _expm1(floating x) noexcept nogil:
    """exp(x) - 1"""
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    """log(1 + x)"""
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    """tanh(x)"""
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _erf(floating x) noexcept nogil:
    """erf(x)"""
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    """1 / (1 + exp(-x)), exponentiating only non-positive numbers."""
    cdef floating z
    if x >= 0:
        return 1 / (1 + _exp(-x))
    z = _exp(x)
    return z / (1 + z)


cdef inline floating _log1pexp(floating x) noexcept nogil:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))"""
    if x > 0:
        return x + _log1p(_exp(-x))
    return _log1p(_exp(x))


cdef int _check_same_length(Py_ssize_t n_x, Py_ssize_t n_other, str name) except -1:
    """Raise ValueError unless the two lengths are equal."""
    if n_x != n_other:
        raise ValueError(f"{name} has {n_other} elements but x has {n_x}")
    return 0


# ---------------------------------------------------------------------------------------------
# GELU

def gelu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
    bint tanh_approx,          # IN: use the tanh approximation
):
    """out := x * Phi(x), or 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) if tanh_approx."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        if tanh_approx:
            for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
                v = x[i]
                out[i] = <floating> 0.5 * v * (
                    1 + _tanh(<floating> SQRT_2_OVER_PI * (v + <floating> GELU_KAPPA * v * v * v))
                )
        else:
            for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
                v = x[i]
                out[i] = <floating> 0.5 * v * (1 + _erf(v * <floating> SQRT1_2))


def gelu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    bint tanh_approx,          # IN: use the tanh approximation
):
    """out := grad * (Phi(x) + x * phi(x)), or the derivative of the tanh approximation."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v, t, sech2, inner_grad
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        if tanh_approx:
            for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
                v = x[i]
                t = _tanh(<floating> SQRT_2_OVER_PI * (v + <floating> GELU_KAPPA * v * v * v))
                sech2 = 1 - t * t
                if sech2 != 0:   # (else v * v may be inf, and 0 * inf is nan)
                    inner_grad = <floating> SQRT_2_OVER_PI * (1 + <floating> (3 * GELU_KAPPA) * v * v)
                    out[i] = grad[i] * <floating> 0.5 * ((1 + t) + v * sech2 * inner_grad)
                else:
                    out[i] = grad[i] * <floating> 0.5 * (1 + t)
        else:
            for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
                v = x[i]
                out[i] = grad[i] * (
                    <floating> 0.5 * (1 + _erf(v * <floating> SQRT1_2))
                    + v * <floating> INV_SQRT_2PI * _exp(<floating> -0.5 * v * v)
                )


# ---------------------------------------------------------------------------------------------
# SiLU (swish)

def silu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := x * sigmoid(x)"""
    cdef Py_ssize_t i, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            out[i] = x[i] * _sigmoid(x[i])


def silu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * s * (1 + x * (1 - s)), s = sigmoid(x)"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating s
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            s = _sigmoid(x[i])
            out[i] = grad[i] * s * (1 + x[i] * (1 - s))


# ---------------------------------------------------------------------------------------------
# Mish

def mish_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := x * tanh(softplus(x))"""
    cdef Py_ssize_t i, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            out[i] = x[i] * _tanh(_log1pexp(x[i]))


def mish_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * (t + x * sigmoid(x) * (1 - t^2)), t = tanh(softplus(x))"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating t
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            t = _tanh(_log1pexp(x[i]))
            out[i] = grad[i] * (t + x[i] * _sigmoid(x[i]) * (1 - t * t))


# ---------------------------------------------------------------------------------------------
# Softplus (torch semantics: linear where beta * x > threshold)

def softplus_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
    double beta,               # IN: nonzero
    double threshold,          # IN
):
    """out := log(1 + exp(beta * x)) / beta, or x where beta * x > threshold"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating bx, beta_ = <floating> beta, threshold_ = <floating> threshold
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            bx = beta_ * x[i]
            out[i] = x[i] if bx > threshold_ else _log1pexp(bx) / beta_


def softplus_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    double beta,               # IN: nonzero
    double threshold,          # IN
):
    """out := grad * sigmoid(beta * x), or grad where beta * x > threshold"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating bx, beta_ = <floating> beta, threshold_ = <floating> threshold
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            bx = beta_ * x[i]
            out[i] = grad[i] if bx > threshold_ else grad[i] * _sigmoid(bx)


# ---------------------------------------------------------------------------------------------
# ELU family: elu (scale=1, input_scale=1), selu, celu (input_scale = 1 / alpha)

def elu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
    double alpha,              # IN
    double scale,              # IN
    double input_scale,        # IN
):
    """out := scale * x if x > 0 else scale * alpha * (exp(input_scale * x) - 1)"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating neg_coef = <floating> (alpha * scale), scale_ = <floating> scale
    cdef floating input_scale_ = <floating> input_scale
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            if x[i] > 0:
                out[i] = scale_ * x[i]
            else:
                out[i] = neg_coef * _expm1(input_scale_ * x[i])


def elu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    double alpha,              # IN
    double scale,              # IN
    double input_scale,        # IN
):
    """out := grad * scale if x > 0 else grad * scale * alpha * input_scale * exp(input_scale * x)"""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating neg_coef = <floating> (alpha * scale * input_scale), scale_ = <floating> scale
    cdef floating input_scale_ = <floating> input_scale
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            if x[i] > 0:
                out[i] = grad[i] * scale_
            else:
                out[i] = grad[i] * neg_coef * _exp(input_scale_ * x[i])


# ---------------------------------------------------------------------------------------------
# LogSigmoid

def logsigmoid_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := log(sigmoid(x)) = -softplus(-x)"""
    cdef Py_ssize_t i, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            out[i] = -_log1pexp(-x[i])


def logsigmoid_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * sigmoid(-x)"""
    cdef Py_ssize_t i, n = x.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n), schedule="static"):
            out[i] = grad[i] * _sigmoid(-x[i])


# ---------------------------------------------------------------------------------------------
# Softmax / log-softmax over the last axis of a 2-D array

cdef int _check_same_shape(
    const floating[:, ::1] x, const floating[:, ::1] other, str name
) except -1:
    """Raise ValueError unless the two 2-D arrays have the same shape."""
    if x.shape[0] != other.shape[0] or x.shape[1] != other.shape[1]:
        raise ValueError(
            f"{name} has shape ({other.shape[0]}, {other.shape[1]}) "
            f"but x has shape ({x.shape[0]}, {x.shape[1]})"
        )
    return 0


def softmax_forward(
    const floating[:, ::1] x,  # IN: (rows, cols)
    floating[:, ::1] out,      # OUT: (rows, cols)
    bint log,                  # IN: compute log_softmax
):
    """out[r] := exp(x[r] - m) / sum(exp(x[r] - m)), m = max(x[r]); or its log if log."""
    cdef Py_ssize_t r, j, rows = x.shape[0], cols = x.shape[1]
    cdef floating row_max, scale
    cdef double total
    _check_same_shape(x, out, "out")
    with nogil:
        for r in prange(rows, num_threads=n_threads_for(rows * cols), schedule="static"):
            if cols == 0:
                continue
            row_max = x[r, 0]
            for j in range(1, cols):
                if x[r, j] > row_max:
                    row_max = x[r, j]
            total = 0
            if log:
                for j in range(cols):
                    total = total + _exp(x[r, j] - row_max)
                scale = <floating> math_log(total)     # log-sum-exp minus row_max
                for j in range(cols):
                    out[r, j] = (x[r, j] - row_max) - scale
            else:
                for j in range(cols):
                    out[r, j] = _exp(x[r, j] - row_max)
                    total = total + out[r, j]
                scale = <floating> (1 / total)
                for j in range(cols):
                    out[r, j] = out[r, j] * scale


def softmax_backward(
    const floating[:, ::1] y,     # IN: forward OUTPUT, (rows, cols)
    const floating[:, ::1] grad,  # IN: gradient of the output, (rows, cols)
    floating[:, ::1] out,         # OUT: gradient of the input, (rows, cols)
    bint log,                     # IN: y is log_softmax
):
    """out[r] := y[r] * (g[r] - sum(g[r] * y[r])); if log: g[r] - exp(y[r]) * sum(g[r])."""
    cdef Py_ssize_t r, j, rows = y.shape[0], cols = y.shape[1]
    cdef floating s
    cdef double total
    _check_same_shape(y, grad, "grad")
    _check_same_shape(y, out, "out")
    with nogil:
        for r in prange(rows, num_threads=n_threads_for(rows * cols), schedule="static"):
            total = 0
            if log:
                for j in range(cols):
                    total = total + grad[r, j]
                s = <floating> total
                for j in range(cols):
                    out[r, j] = grad[r, j] - _exp(y[r, j]) * s
            else:
                for j in range(cols):
                    total = total + <double> grad[r, j] * y[r, j]
                s = <floating> total
                for j in range(cols):
                    out[r, j] = y[r, j] * (grad[r, j] - s)
