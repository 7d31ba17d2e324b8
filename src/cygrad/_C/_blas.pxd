# Row-major BLAS level-3 wrapper over scipy.linalg.cython_blas (scikit-learn's _cython_blas style).
#
# scipy's BLAS is column-major. A row-major matrix read as column-major is its transpose, so the
# row-major product C = op(A).op(B) is computed as the column-major product C^T = op(B)^T.op(A)^T:
# swap the operands (and m with n) and keep each operand's transpose flag.
#
# cygrad keeps this BLAS at one thread (cygrad._config._limit_kernel_blas) and parallelises
# around it with OpenMP (linalg.pyx), so gemm may be called inside a prange.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(
    bint trans_a,             # IN: use A^T
    bint trans_b,             # IN: use B^T
    int m,                    # IN: rows of op(A) and C
    int n,                    # IN: columns of op(B) and C
    int k,                    # IN: columns of op(A) = rows of op(B)
    floating alpha,           # IN
    const floating* a,        # IN: row-major, (m, k) or (k, m) if trans_a
    int lda,                  # IN: row stride of A in elements, >= max(1, its columns)
    const floating* b,        # IN: row-major, (k, n) or (n, k) if trans_b
    int ldb,                  # IN: row stride of B in elements, >= max(1, its columns)
    floating beta,            # IN
    floating* c,              # IN/OUT: row-major (m, n); must not overlap A or B
    int ldc,                  # IN: row stride of C in elements, >= max(1, n)
) noexcept nogil:
    """C := alpha * op(A).op(B) + beta * C  (row-major)"""
    cdef char ta = b"t" if trans_b else b"n"
    cdef char tb = b"t" if trans_a else b"n"
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda, &beta, c, &ldc)
