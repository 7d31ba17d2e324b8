"""Batched matrix products over BLAS gemm (float32 / float64).

    out[i] := alpha * op(a[i]).op(b[i]) + beta * out[i]    for i in range(batch)

where op(X) is X^T when the matching ``trans_*`` flag is set. ``a``, ``b`` and ``out`` must
share one dtype, float32 or float64 (Cython raises ValueError "Buffer dtype mismatch" if
``b`` or ``out`` differs from ``a``, TypeError "No matching signature found" for other dtypes).

Layout accepted without copies
------------------------------
- ``out`` is C-contiguous (writable) and must not overlap ``a`` or ``b``.
- Each matrix ``a[i]`` / ``b[i]`` needs one unit-stride axis: row-major (last axis contiguous,
  rows at any stride >= the row length, e.g. ``big[:, :, :5]``) or column-major (e.g.
  ``x.swapaxes(1, 2)``), which is used as the transpose of a row-major matrix.
- The batch stride is free, including 0 (``np.broadcast_to``), hence the ``const`` memoryviews,
  which also accept read-only arrays.
Anything else raises ValueError: the caller makes such an operand contiguous first
(``blas_compatible(x)`` says whether that is needed).

BLAS itself always runs single-threaded (``cygrad._config`` limits scipy's BLAS to one thread
when the package loads): all threads are cygrad's OpenMP threads. With a pthreads BLAS next to
an OpenMP runtime, the two pools would otherwise compete for the cores (OpenMP workers spin
after each parallel region) and a gemm following any OpenMP kernel could run several times
slower. ``gemm_batched`` loops over the batch and splits each large product into panels over
the OpenMP threads (``_gemm_split``): use it for large matrices. ``gemm_batched_parallel``
spreads the batch over the threads instead: use it for many small matrices.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX

from ._blas cimport gemm
from ._parallel cimport n_threads_for


def gemm_batched(
    const floating[:, :, :] a,    # IN: (batch, M, K), or (batch, K, M) if trans_a
    const floating[:, :, :] b,    # IN: (batch, K, N), or (batch, N, K) if trans_b
    floating[:, :, ::1] out,      # IN/OUT: (batch, M, N); only read if beta != 0
    bint trans_a,                 # IN: use a[i]^T
    bint trans_b,                 # IN: use b[i]^T
    double alpha=1.0,             # IN
    double beta=0.0,              # IN
):
    """out[i] := alpha * op(a[i]).op(b[i]) + beta * out[i], serial over the batch (threaded BLAS)."""
    _gemm_batched(a, b, out, trans_a, trans_b, alpha, beta, False)


def gemm_batched_parallel(
    const floating[:, :, :] a,    # IN: (batch, M, K), or (batch, K, M) if trans_a
    const floating[:, :, :] b,    # IN: (batch, K, N), or (batch, N, K) if trans_b
    floating[:, :, ::1] out,      # IN/OUT: (batch, M, N); only read if beta != 0
    bint trans_a,                 # IN: use a[i]^T
    bint trans_b,                 # IN: use b[i]^T
    double alpha=1.0,             # IN
    double beta=0.0,              # IN
):
    """out[i] := alpha * op(a[i]).op(b[i]) + beta * out[i], batch over OpenMP threads.

    Call it inside ``threadpoolctl.threadpool_limits(1, "blas")``: BLAS must not start
    its own threads inside the OpenMP ones.
    """
    _gemm_batched(a, b, out, trans_a, trans_b, alpha, beta, True)


def blas_compatible(x):
    """Return True if the 3-D float32/float64 array x can be passed as a or b without a copy."""
    cdef bint transposed
    if getattr(x, "ndim", None) != 3 or x.dtype.char not in "fd" or not x.dtype.isnative:
        return False
    if x.shape[0] == 0:
        return True                          # nothing is read (numpy may report zero strides)
    return _blas_ld(x.shape[1], x.shape[2], x.strides[1], x.strides[2], x.itemsize, &transposed) >= 0


cdef Py_ssize_t _blas_ld(
    Py_ssize_t rows,              # IN: shape of the matrix
    Py_ssize_t cols,              # IN
    Py_ssize_t row_stride,        # IN: strides in bytes
    Py_ssize_t col_stride,        # IN
    Py_ssize_t itemsize,          # IN
    bint *transposed,             # OUT: the matrix is column-major: pass its row-major transpose
) noexcept:
    """Return the BLAS leading dimension (items) of the matrix read as row-major, or -1 if none.

    numpy may report any stride for an axis of length 1, so such strides are never used.
    """
    transposed[0] = False
    if rows == 0 or cols == 0:
        return max(1, cols)                  # never read
    if cols > 1 and col_stride != itemsize:
        if rows > 1 and row_stride != itemsize:
            return -1                        # no unit-stride axis
        transposed[0] = True                 # column-major: the transpose is row-major
        rows, cols, row_stride = cols, rows, col_stride
    if rows == 1:
        return max(1, cols)                  # the row stride is never used
    if row_stride % itemsize != 0 or not cols <= row_stride // itemsize <= INT_MAX:
        return -1                            # overlapping, reversed or misaligned rows
    return row_stride // itemsize


cdef int _leading_dim(
    const floating[:, :, :] x,    # IN: the operand
    bint *trans,                  # IN/OUT: its transpose flag, flipped if x[i] is column-major
    str name,                     # IN: its name, for error messages
) except -1:
    """Return the BLAS leading dimension of the matrices x[i], or raise ValueError."""
    cdef bint transposed
    cdef Py_ssize_t ld = _blas_ld(x.shape[1], x.shape[2], x.strides[1], x.strides[2],
                                  sizeof(floating), &transposed)
    if ld < 0:
        raise ValueError(
            f"gemm_batched: {name} cannot go to BLAS without a copy: each matrix {name}[i] needs "
            f"one unit-stride axis and a positive stride >= the row length on the other, got shape "
            f"({x.shape[0]}, {x.shape[1]}, {x.shape[2]}) and strides "
            f"({x.strides[0]}, {x.strides[1]}, {x.strides[2]}) bytes"
        )
    if transposed:
        trans[0] = not trans[0]
    return <int> ld


cdef int _gemm_batched(
    const floating[:, :, :] a,
    const floating[:, :, :] b,
    floating[:, :, ::1] out,
    bint trans_a,
    bint trans_b,
    double alpha,
    double beta,
    bint parallel,
) except -1:
    """Validate the operands, then run one gemm per batch element."""
    cdef Py_ssize_t batch = a.shape[0], i, j, l
    cdef Py_ssize_t m = a.shape[2] if trans_a else a.shape[1]
    cdef Py_ssize_t k = a.shape[1] if trans_a else a.shape[2]
    cdef Py_ssize_t k_b = b.shape[2] if trans_b else b.shape[1]
    cdef Py_ssize_t n = b.shape[1] if trans_b else b.shape[2]
    cdef int lda, ldb, ldc
    cdef floating alpha_ = <floating> alpha, beta_ = <floating> beta
    cdef double work

    if b.shape[0] != batch or out.shape[0] != batch:
        raise ValueError(
            f"gemm_batched: batch sizes differ: a has {batch}, b has {b.shape[0]}, "
            f"out has {out.shape[0]}"
        )
    if k_b != k:
        raise ValueError(
            f"gemm_batched: inner dimensions differ: op(a[i]) is ({m}, {k}) and op(b[i]) is "
            f"({k_b}, {n}) (a: ({a.shape[0]}, {a.shape[1]}, {a.shape[2]}), trans_a={trans_a}; "
            f"b: ({b.shape[0]}, {b.shape[1]}, {b.shape[2]}), trans_b={trans_b})"
        )
    if out.shape[1] != m or out.shape[2] != n:
        raise ValueError(
            f"gemm_batched: out must have shape ({batch}, {m}, {n}), "
            f"got ({out.shape[0]}, {out.shape[1]}, {out.shape[2]})"
        )
    if m > INT_MAX or n > INT_MAX or k > INT_MAX:
        raise ValueError(
            f"gemm_batched: matrix sizes ({m}, {k}) x ({k}, {n}) are too large for BLAS"
        )
    if batch == 0 or m == 0 or n == 0:
        return 0

    if k == 0:                       # empty sum: out := beta * out (BLAS semantics)
        with nogil:
            for i in range(batch):
                for j in range(m):
                    for l in range(n):
                        out[i, j, l] = 0 if beta == 0 else beta_ * out[i, j, l]
        return 0

    lda = _leading_dim(a, &trans_a, "a")
    ldb = _leading_dim(b, &trans_b, "b")
    ldc = <int> n
    if parallel:
        work = <double> batch * m * n * k / 16      # multiply-adds are cheap (see _parallel.pxd)
        with nogil:
            for i in prange(batch, schedule="static",
                            num_threads=n_threads_for(<Py_ssize_t> min(work, 1e18))):
                gemm(trans_a, trans_b, <int> m, <int> n, <int> k, alpha_, &a[i, 0, 0], lda,
                     &b[i, 0, 0], ldb, beta_, &out[i, 0, 0], ldc)
    else:
        for i in range(batch):
            _gemm_split(trans_a, trans_b, m, n, k, alpha_, &a[i, 0, 0], lda, &b[i, 0, 0], ldb,
                        beta_, &out[i, 0, 0], ldc)
    return 0


cdef enum:
    MIN_PANEL = 16       # rows or columns per panel, at least
    PANEL_ALIGN = 16


cdef void _gemm_split(
    bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
    const floating *a, int lda, const floating *b, int ldb, floating beta, floating *c, int ldc,
) noexcept:
    """One product C := alpha * op(A).op(B) + beta * C over OpenMP threads.

    BLAS runs single-threaded (the package keeps scipy's BLAS at one thread): C is cut into
    one panel per thread along its longer side, each panel one BLAS call (aligned to 16 rows
    or columns). Every element of C is still a dot product over k in BLAS's k-blocking order,
    but the micro-kernel that computes it can change with the panel edges, so results for
    different thread counts agree to rounding, not bitwise (tests/test_threads.py).
    """
    cdef Py_ssize_t dim = m if m >= n else n
    cdef double work = <double> m * n * k / 16      # multiply-adds are cheap (see _parallel.pxd)
    cdef Py_ssize_t panels = min(<Py_ssize_t> n_threads_for(<Py_ssize_t> min(work, 1e18)),
                                 max(<Py_ssize_t> 1, dim // MIN_PANEL))
    cdef Py_ssize_t step = (dim + panels - 1) // panels
    step = (step + PANEL_ALIGN - 1) // PANEL_ALIGN * PANEL_ALIGN
    panels = (dim + step - 1) // step
    cdef int threads = <int> panels
    cdef Py_ssize_t p, lo, size
    if threads == 1:
        with nogil:
            gemm(trans_a, trans_b, <int> m, <int> n, <int> k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    with nogil:
        for p in prange(panels, schedule="static", num_threads=threads):
            lo = p * step
            size = min(step, dim - lo)
            if m >= n:   # rows lo:lo+size of C use rows (or, transposed, columns) of A
                gemm(trans_a, trans_b, <int> size, <int> n, <int> k, alpha,
                     a + (lo if trans_a else lo * lda), lda, b, ldb, beta, c + lo * ldc, ldc)
            else:        # columns lo:lo+size of C use columns (or, transposed, rows) of B
                gemm(trans_a, trans_b, <int> m, <int> size, <int> k, alpha,
                     a, lda, b + (lo * ldb if trans_b else lo), ldb, beta, c + lo, ldc)
