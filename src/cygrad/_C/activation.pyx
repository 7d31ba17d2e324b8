"""Activation kernels: forward / backward pairs, fused float32 / float64.

Elementwise kernels take 1-D contiguous arrays (the caller passes ``x.reshape(-1)`` of a
C-contiguous array) and a preallocated ``out`` of the same length and dtype; ``out`` may be
``x`` itself (or ``grad``). Backward kernels take the forward INPUT ``x`` and the gradient of
the output ``grad``, and write ``out = grad * f'(x)``. float32 is computed in float32, float64
in double.

The per-element loops are C functions in ``_vmath.h``: branch-free inline exp / expm1 / log1p /
normal CDF (instead of libm calls, which would keep gcc from vectorising), compiled for AVX-512,
AVX2 + FMA and baseline x86-64 with the best picked at load time. This module checks the
arguments and runs the loops in parallel (``prange`` over fixed blocks of elements).

The softmax kernels work on the rows of a 2-D C-contiguous array; their backward takes the
forward OUTPUT ``y``. Row sums accumulate in float64.

Results do not depend on the thread count (bitwise). All are finite for finite inputs of any
magnitude (exponentials are only taken of non-positive arguments, or where the result cannot
overflow); NaN gives NaN.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log as math_log  # (the softmax kernels have an argument named log)

from ._parallel cimport n_threads_for

# Block kernels and branch-free maths (exp, expm1, log1p, Phi): see _vmath.h. Each kernel is
# one loop over n contiguous elements; float (_f) and double (_d) versions.
cdef extern from "_vmath.h" nogil:
    void cg_gelu_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_gelu_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_gelu_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n)
    void cg_gelu_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n)
    void cg_gelu_tanh_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_gelu_tanh_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_gelu_tanh_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n)
    void cg_gelu_tanh_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n)
    void cg_relu_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_relu_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_relu_bwd_f(const float *y, const float *grad, float *out, Py_ssize_t n)
    void cg_relu_bwd_d(const double *y, const double *grad, double *out, Py_ssize_t n)
    void cg_silu_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_silu_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_silu_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n)
    void cg_silu_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n)
    void cg_mish_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_mish_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_mish_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n)
    void cg_mish_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n)
    void cg_softplus_fwd_f(const float *x, float *out, Py_ssize_t n, float beta, float threshold)
    void cg_softplus_fwd_d(const double *x, double *out, Py_ssize_t n, double beta, double threshold)
    void cg_softplus_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n,
                           float beta, float threshold)
    void cg_softplus_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n,
                           double beta, double threshold)
    void cg_elu_fwd_f(const float *x, float *out, Py_ssize_t n, float neg_coef, float scale,
                      float input_scale)
    void cg_elu_fwd_d(const double *x, double *out, Py_ssize_t n, double neg_coef, double scale,
                      double input_scale)
    void cg_elu_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n,
                      float neg_coef, float scale, float input_scale)
    void cg_elu_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n,
                      double neg_coef, double scale, double input_scale)
    void cg_logsigmoid_fwd_f(const float *x, float *out, Py_ssize_t n)
    void cg_logsigmoid_fwd_d(const double *x, double *out, Py_ssize_t n)
    void cg_logsigmoid_bwd_f(const float *x, const float *grad, float *out, Py_ssize_t n)
    void cg_logsigmoid_bwd_d(const double *x, const double *grad, double *out, Py_ssize_t n)
    void cg_exp_shifted_f(const float *x, float *out, Py_ssize_t n, float shift)
    void cg_exp_shifted_d(const double *x, double *out, Py_ssize_t n, double shift)
    void cg_log_softmax_bwd_row_f(const float *y, const float *grad, float *out, Py_ssize_t n,
                                  float s)
    void cg_log_softmax_bwd_row_d(const double *y, const double *grad, double *out, Py_ssize_t n,
                                  double s)

# Elementwise kernels run a prange over fixed blocks of BLOCK elements, each block one call of
# a vectorised C kernel. Block boundaries do not depend on the thread count, so neither does
# which element goes through a kernel's vector body or its scalar remainder: results are
# bitwise identical for any thread count.
cdef enum:
    BLOCK = 4096


cdef inline Py_ssize_t _n_blocks(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef inline Py_ssize_t _block_len(Py_ssize_t n, Py_ssize_t b) noexcept nogil:
    """Length of block b (the last one may be short)."""
    cdef Py_ssize_t rest = n - b * BLOCK
    return rest if rest < BLOCK else BLOCK


cdef int _check_same_length(Py_ssize_t n_x, Py_ssize_t n_other, str name) except -1:
    """Raise ValueError unless the two lengths are equal."""
    if n_x != n_other:
        raise ValueError(f"{name} has {n_other} elements but x has {n_x}")
    return 0


# ---------------------------------------------------------------------------------------------
# Per-dtype dispatch to the C kernels (one block each)

cdef inline void _gelu_fwd(const floating *x, floating *out, Py_ssize_t m, bint tanh_approx) noexcept nogil:
    if floating is float:
        if tanh_approx:
            cg_gelu_tanh_fwd_f(x, out, m)
        else:
            cg_gelu_fwd_f(x, out, m)
    else:
        if tanh_approx:
            cg_gelu_tanh_fwd_d(x, out, m)
        else:
            cg_gelu_fwd_d(x, out, m)


cdef inline void _gelu_bwd(const floating *x, const floating *grad, floating *out, Py_ssize_t m,
                           bint tanh_approx) noexcept nogil:
    if floating is float:
        if tanh_approx:
            cg_gelu_tanh_bwd_f(x, grad, out, m)
        else:
            cg_gelu_bwd_f(x, grad, out, m)
    else:
        if tanh_approx:
            cg_gelu_tanh_bwd_d(x, grad, out, m)
        else:
            cg_gelu_bwd_d(x, grad, out, m)


cdef inline void _relu_fwd(const floating *x, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_relu_fwd_f(x, out, m)
    else:
        cg_relu_fwd_d(x, out, m)


cdef inline void _relu_bwd(const floating *y, const floating *grad, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_relu_bwd_f(y, grad, out, m)
    else:
        cg_relu_bwd_d(y, grad, out, m)


cdef inline void _silu_fwd(const floating *x, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_silu_fwd_f(x, out, m)
    else:
        cg_silu_fwd_d(x, out, m)


cdef inline void _silu_bwd(const floating *x, const floating *grad, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_silu_bwd_f(x, grad, out, m)
    else:
        cg_silu_bwd_d(x, grad, out, m)


cdef inline void _mish_fwd(const floating *x, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_mish_fwd_f(x, out, m)
    else:
        cg_mish_fwd_d(x, out, m)


cdef inline void _mish_bwd(const floating *x, const floating *grad, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_mish_bwd_f(x, grad, out, m)
    else:
        cg_mish_bwd_d(x, grad, out, m)


cdef inline void _softplus_fwd(const floating *x, floating *out, Py_ssize_t m,
                               floating beta, floating threshold) noexcept nogil:
    if floating is float:
        cg_softplus_fwd_f(x, out, m, beta, threshold)
    else:
        cg_softplus_fwd_d(x, out, m, beta, threshold)


cdef inline void _softplus_bwd(const floating *x, const floating *grad, floating *out, Py_ssize_t m,
                               floating beta, floating threshold) noexcept nogil:
    if floating is float:
        cg_softplus_bwd_f(x, grad, out, m, beta, threshold)
    else:
        cg_softplus_bwd_d(x, grad, out, m, beta, threshold)


cdef inline void _elu_fwd(const floating *x, floating *out, Py_ssize_t m, floating neg_coef,
                          floating scale, floating input_scale) noexcept nogil:
    if floating is float:
        cg_elu_fwd_f(x, out, m, neg_coef, scale, input_scale)
    else:
        cg_elu_fwd_d(x, out, m, neg_coef, scale, input_scale)


cdef inline void _elu_bwd(const floating *x, const floating *grad, floating *out, Py_ssize_t m,
                          floating neg_coef, floating scale, floating input_scale) noexcept nogil:
    if floating is float:
        cg_elu_bwd_f(x, grad, out, m, neg_coef, scale, input_scale)
    else:
        cg_elu_bwd_d(x, grad, out, m, neg_coef, scale, input_scale)


cdef inline void _logsigmoid_fwd(const floating *x, floating *out, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_logsigmoid_fwd_f(x, out, m)
    else:
        cg_logsigmoid_fwd_d(x, out, m)


cdef inline void _logsigmoid_bwd(const floating *x, const floating *grad, floating *out,
                                 Py_ssize_t m) noexcept nogil:
    if floating is float:
        cg_logsigmoid_bwd_f(x, grad, out, m)
    else:
        cg_logsigmoid_bwd_d(x, grad, out, m)


cdef inline void _exp_shifted(const floating *x, floating *out, Py_ssize_t m, floating shift) noexcept nogil:
    """out := exp(x - shift)"""
    if floating is float:
        cg_exp_shifted_f(x, out, m, shift)
    else:
        cg_exp_shifted_d(x, out, m, shift)


cdef inline void _log_softmax_bwd_row(const floating *y, const floating *grad, floating *out,
                                      Py_ssize_t m, floating s) noexcept nogil:
    """out := grad - exp(y) * s"""
    if floating is float:
        cg_log_softmax_bwd_row_f(y, grad, out, m, s)
    else:
        cg_log_softmax_bwd_row_d(y, grad, out, m, s)


# ---------------------------------------------------------------------------------------------
# GELU

def gelu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
    bint tanh_approx,          # IN: use the tanh approximation
):
    """out := x * Phi(x), or 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) if tanh_approx."""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _gelu_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b), tanh_approx)


def gelu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    bint tanh_approx,          # IN: use the tanh approximation
):
    """out := grad * (Phi(x) + x * phi(x)), or the derivative of the tanh approximation."""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _gelu_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b), tanh_approx)


# ---------------------------------------------------------------------------------------------
# SiLU (swish)

def silu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := x * sigmoid(x)"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _silu_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


def silu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * s * (1 + x * (1 - s)), s = sigmoid(x)"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _silu_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


# ---------------------------------------------------------------------------------------------
# ReLU

def relu_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := 0 where x < 0, else x (nan stays nan)"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _relu_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


def relu_backward(
    const floating[::1] y,     # IN: forward output
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := 0 where y <= 0, else grad (a nan output passes its gradient, as in torch)"""
    cdef Py_ssize_t b, n = y.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *yp = &y[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _relu_bwd(yp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


# ---------------------------------------------------------------------------------------------
# Mish

def mish_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := x * tanh(softplus(x))"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _mish_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


def mish_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * (t + x * sigmoid(x) * (1 - t^2)), t = tanh(softplus(x))"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _mish_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


# ---------------------------------------------------------------------------------------------
# Softplus (torch semantics: linear where beta * x > threshold)

def softplus_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
    double beta,               # IN: nonzero
    double threshold,          # IN
):
    """out := log(1 + exp(beta * x)) / beta, or x where beta * x > threshold"""
    cdef Py_ssize_t b, n = x.shape[0]
    cdef floating beta_ = <floating> beta, threshold_ = <floating> threshold
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _softplus_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b), beta_, threshold_)


def softplus_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    double beta,               # IN: nonzero
    double threshold,          # IN
):
    """out := grad * sigmoid(beta * x), or grad where beta * x > threshold"""
    cdef Py_ssize_t b, n = x.shape[0]
    cdef floating beta_ = <floating> beta, threshold_ = <floating> threshold
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _softplus_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b),
                          beta_, threshold_)


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
    cdef Py_ssize_t b, n = x.shape[0]
    cdef floating neg_coef = <floating> (alpha * scale), scale_ = <floating> scale
    cdef floating input_scale_ = <floating> input_scale
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _elu_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b), neg_coef, scale_, input_scale_)


def elu_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
    double alpha,              # IN
    double scale,              # IN
    double input_scale,        # IN
):
    """out := grad * scale if x > 0 else grad * scale * alpha * input_scale * exp(input_scale * x)"""
    cdef Py_ssize_t b, n = x.shape[0]
    cdef floating neg_coef = <floating> (alpha * scale * input_scale), scale_ = <floating> scale
    cdef floating input_scale_ = <floating> input_scale
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _elu_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b),
                     neg_coef, scale_, input_scale_)


# ---------------------------------------------------------------------------------------------
# LogSigmoid

def logsigmoid_forward(
    const floating[::1] x,     # IN
    floating[::1] out,         # OUT
):
    """out := log(sigmoid(x)) = -softplus(-x)"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _logsigmoid_fwd(xp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


def logsigmoid_backward(
    const floating[::1] x,     # IN: forward input
    const floating[::1] grad,  # IN: gradient of the output
    floating[::1] out,         # OUT: gradient of the input
):
    """out := grad * sigmoid(-x)"""
    cdef Py_ssize_t b, n = x.shape[0]
    _check_same_length(n, grad.shape[0], "grad")
    _check_same_length(n, out.shape[0], "out")
    if n == 0:
        return
    cdef const floating *xp = &x[0]
    cdef const floating *gp = &grad[0]
    cdef floating *op = &out[0]
    with nogil:
        for b in prange(_n_blocks(n), num_threads=n_threads_for(n), schedule="static"):
            _logsigmoid_bwd(xp + b * BLOCK, gp + b * BLOCK, op + b * BLOCK, _block_len(n, b))


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


cdef enum:
    ROW_CHUNK = 256   # softmax: exponentials computed (vectorised) per chunk, then summed in order


cdef inline void _softmax_row(const floating *x, floating *out, Py_ssize_t cols, bint log) noexcept nogil:
    """out := softmax(x) (or log_softmax) of one row of length cols >= 1."""
    cdef Py_ssize_t j, j0, m
    cdef floating row_max = x[0], scale
    cdef double total = 0
    cdef floating buf[ROW_CHUNK]
    for j in range(1, cols):
        if x[j] > row_max:
            row_max = x[j]
    if log:
        # exps go to buf (out may be x, whose values are still needed)
        j0 = 0
        while j0 < cols:
            m = cols - j0 if cols - j0 < ROW_CHUNK else ROW_CHUNK
            _exp_shifted(x + j0, buf, m, row_max)
            for j in range(m):
                total = total + buf[j]
            j0 = j0 + m
        scale = <floating> math_log(total)     # log-sum-exp minus row_max
        for j in range(cols):
            out[j] = (x[j] - row_max) - scale
    else:
        _exp_shifted(x, out, cols, row_max)
        for j in range(cols):
            total = total + out[j]
        scale = <floating> (1 / total)
        for j in range(cols):
            out[j] = out[j] * scale


def softmax_forward(
    const floating[:, ::1] x,  # IN: (rows, cols)
    floating[:, ::1] out,      # OUT: (rows, cols)
    bint log,                  # IN: compute log_softmax
):
    """out[r] := exp(x[r] - m) / sum(exp(x[r] - m)), m = max(x[r]); or its log if log."""
    cdef Py_ssize_t r, rows = x.shape[0], cols = x.shape[1]
    _check_same_shape(x, out, "out")
    if rows == 0 or cols == 0:
        return
    cdef const floating *xp = &x[0, 0]
    cdef floating *op = &out[0, 0]
    with nogil:
        for r in prange(rows, num_threads=n_threads_for(rows * cols), schedule="static"):
            _softmax_row(xp + r * cols, op + r * cols, cols, log)


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
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=n_threads_for(rows * cols), schedule="static"):
            total = 0
            if log:
                for j in range(cols):
                    total = total + grad[r, j]
                s = <floating> total
                _log_softmax_bwd_row(&y[r, 0], &grad[r, 0], &out[r, 0], cols, s)
            else:
                for j in range(cols):
                    total = total + <double> grad[r, j] * y[r, j]
                s = <floating> total
                for j in range(cols):
                    out[r, j] = y[r, j] * (grad[r, j] - s)
