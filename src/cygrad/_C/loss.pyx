"""Loss kernels: fused log-softmax + negative log-likelihood over rows, float32 / float64.

``x`` is a 2-D C-contiguous array of logits (rows = samples, columns = classes), ``target``
the int64 class of each row (already checked to be in range, or equal to ``ignore_index``)
and ``weight`` the per-class weights. Every kernel is one ``prange`` pass over independent
rows, so results do not depend on the thread count; row sums accumulate in float64.
"""
# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log

from ._parallel cimport n_threads_for


def cross_entropy_forward(
    const floating[:, ::1] x,            # IN: logits (M, C)
    const long long[::1] target,          # IN: class per row (M,)
    const floating[::1] weight,           # IN: class weights (C,)
    long long ignore_index,
    floating[::1] loss,                   # OUT: w[t] * (logsumexp(x) - x[t]) per row, 0 if ignored
    floating[::1] lse,                    # OUT: logsumexp of each row
    floating[::1] row_weight,             # OUT: w[t] per row, 0 if ignored
):
    """loss[i] := w[t_i] * (lse_i - x[i, t_i]); lse[i] := log(sum_j exp(x[i, j]))."""
    cdef Py_ssize_t i, j, m = x.shape[0], c = x.shape[1]
    cdef double mx, s, v
    cdef long long t
    if target.shape[0] != m or loss.shape[0] != m or lse.shape[0] != m or row_weight.shape[0] != m:
        raise ValueError("cross_entropy_forward: row counts differ")
    if weight.shape[0] != c:
        raise ValueError("cross_entropy_forward: weight must have one entry per class")
    with nogil:
        for i in prange(m, num_threads=n_threads_for(m * c), schedule="static"):
            mx = x[i, 0]
            for j in range(1, c):
                if x[i, j] > mx:
                    mx = x[i, j]
            s = 0.0
            for j in range(c):
                s = s + exp(x[i, j] - mx)
            v = mx + log(s)
            lse[i] = <floating> v
            t = target[i]
            if t == ignore_index:
                loss[i] = 0
                row_weight[i] = 0
            else:
                row_weight[i] = weight[t]
                loss[i] = <floating> (weight[t] * (v - x[i, t]))


def cross_entropy_backward(
    const floating[:, ::1] x,            # IN: logits (M, C)
    const long long[::1] target,          # IN: class per row (M,)
    const floating[::1] lse,              # IN: logsumexp per row (from forward)
    const floating[::1] scale,            # IN: d loss_total / d loss_row-unweighted, i.e. grad * w[t] (/ denom)
    long long ignore_index,
    floating[:, ::1] out,                 # OUT: gradient wrt x (M, C)
):
    """out[i, j] := scale[i] * (softmax(x)[i, j] - [j == t_i]); ignored rows are zero."""
    cdef Py_ssize_t i, j, m = x.shape[0], c = x.shape[1]
    cdef long long t
    cdef double sc, l
    if out.shape[0] != m or out.shape[1] != c or target.shape[0] != m or lse.shape[0] != m \
            or scale.shape[0] != m:
        raise ValueError("cross_entropy_backward: shapes differ")
    with nogil:
        for i in prange(m, num_threads=n_threads_for(m * c), schedule="static"):
            t = target[i]
            if t == ignore_index:
                for j in range(c):
                    out[i, j] = 0
            else:
                sc = scale[i]
                l = lse[i]
                for j in range(c):
                    out[i, j] = <floating> (sc * exp(x[i, j] - l))
                out[i, t] = <floating> (out[i, t] - sc)
