"""Recurrent-layer kernels (RNN tanh / ReLU, LSTM with optional projection, GRU), float32 / float64.

One call runs a whole layer in one direction: the recurrence over all time steps forward
(``recurrent_forward``) or backpropagation through time (``recurrent_backward``). The input
projection ``x @ W_ih^T + b`` for all steps is computed beforehand as one product
(``matmul_panels``), and so are the weight gradients afterwards: the kernels only do what has to
be sequential.

Sequence layout ("packed", time-major)
--------------------------------------
Step ``t`` owns rows ``off[t] .. off[t] + batch_sizes[t]`` of every per-row array, where ``off``
is the running sum of ``batch_sizes``; ``batch_sizes`` is non-increasing, so the sequences
active at step ``t`` are always the first ``batch_sizes[t]`` ones (a padded batch of equal
lengths is ``batch_sizes = [B] * T``). Forward layers process steps 0 .. T-1, reverse layers
T-1 .. 0; a sequence's state is frozen once it has ended (forward) or until it starts (reverse).

The hidden states live in ``hbuf`` (N + B rows): the B initial states and the N output rows,
output row ``r`` at ``hbuf[out_off + r]``. ``prev[r]`` is the row of ``hbuf`` holding the state
that row ``r`` starts from (an output row of the previous step, or an initial state). The cell
states of an LSTM use the same layout in ``cbuf``. The caller builds ``prev`` (it must only
point at rows computed earlier); the kernel checks that every index is in range.

Per step, the hidden units are cut into fixed chunks of ``CHUNK`` units, spread over the OpenMP
threads: each chunk runs its own slice of the recurrent product (one call per gate block and
per contiguous run of ``prev`` rows) and then the fused gate loop for its units, so a step is
one parallel region with no other synchronisation. A BLAS gemm would repack the chunk's weights
at every step (a quarter of the layer's time in profiles), so on CPUs with AVX-512 the full
64-unit chunks use ``cg_rnn_mm64``, a register-blocked product reading weights packed once per
call into contiguous (rows, 64) blocks (``_pack_blocks``: W_hh^T per chunk and gate for the
forward, W_hh's column blocks for the backward carry); partial chunks and other CPUs use BLAS. The chunks do not depend on the thread
count, so results are bitwise identical for any number of threads. The gate loops are C
functions below (vectorised with the branch-free ``_vmath.h`` maths, cloned per ISA).

Gate order is PyTorch's: LSTM (i, f, g, o); GRU (r, z, n) with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, calloc, free

from ._blas cimport gemm
from ._parallel cimport n_threads_for

cdef extern from *:
    """
    #include "_vmath.h"

    /* Gate loops over n hidden units. Gate blocks of one row are H apart (g, g + H, ...). */
    #define CG_RNN_ROWS(T, S)                                                                     \\
    CG_CLONES static void cg_rnn_lstm_fwd_##S(T *g, ptrdiff_t H, const T *cp, T *c, T *tc,       \\
                                              T *m, ptrdiff_t n)                                 \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T s2;                                                                                \\
            T i = cg_sigmoid_##S(g[j]);                                                          \\
            T f = cg_sigmoid_##S(g[H + j]);                                                      \\
            T gg; cg_tanh_sech2_##S(g[2 * H + j], &gg, &s2);                                     \\
            T o = cg_sigmoid_##S(g[3 * H + j]);                                                  \\
            T cc = f * cp[j] + i * gg;                                                           \\
            T t; cg_tanh_sech2_##S(cc, &t, &s2);                                                 \\
            g[j] = i; g[H + j] = f; g[2 * H + j] = gg; g[3 * H + j] = o;                         \\
            c[j] = cc; tc[j] = t; m[j] = o * t;                                                  \\
        }                                                                                        \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_lstm_bwd_##S(const T *g, ptrdiff_t H, const T *tc, const T *cp, \\
                                              const T *dha, const T *dhb, T *dc, T *dg,          \\
                                              ptrdiff_t n)                                       \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], t = tc[j];            \\
            T dh = dha[j] + dhb[j];                                                              \\
            T dcv = dc[j] + dh * o * ((T)1 - t * t);                                             \\
            dg[j] = dcv * gg * (i * ((T)1 - i));                                                 \\
            dg[H + j] = dcv * cp[j] * (f * ((T)1 - f));                                          \\
            dg[2 * H + j] = dcv * i * ((T)1 - gg * gg);                                          \\
            dg[3 * H + j] = dh * t * (o * ((T)1 - o));                                           \\
            dc[j] = dcv * f;                                                                     \\
        }                                                                                        \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_gru_fwd_##S(T *g, ptrdiff_t H, T *hn, const T *bhn,             \\
                                             const T *hp, T *h, ptrdiff_t n)                     \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T s2;                                                                                \\
            T r = cg_sigmoid_##S(g[j]);                                                          \\
            T z = cg_sigmoid_##S(g[H + j]);                                                      \\
            T a = hn[j] + bhn[j];                                                                \\
            T nn; cg_tanh_sech2_##S(g[2 * H + j] + r * a, &nn, &s2);                             \\
            g[j] = r; g[H + j] = z; g[2 * H + j] = nn; hn[j] = a;                                \\
            h[j] = nn + z * (hp[j] - nn);                                                        \\
        }                                                                                        \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_gru_bwd_##S(const T *g, ptrdiff_t H, const T *hn, const T *hp,  \\
                                             const T *dout, T *dhc, T *dgi, T *dgh, ptrdiff_t n) \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T r = g[j], z = g[H + j], nn = g[2 * H + j];                                         \\
            T dh = dout[j] + dhc[j];                                                             \\
            T dnp = dh * ((T)1 - z) * ((T)1 - nn * nn);                                          \\
            T dzp = dh * (hp[j] - nn) * (z * ((T)1 - z));                                        \\
            T drp = dnp * hn[j] * (r * ((T)1 - r));                                              \\
            dgi[j] = drp; dgi[H + j] = dzp; dgi[2 * H + j] = dnp;                                \\
            dgh[j] = drp; dgh[H + j] = dzp; dgh[2 * H + j] = dnp * r;                            \\
            dhc[j] = dh * z;                                                                     \\
        }                                                                                        \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_tanh_fwd_##S(const T *g, T *h, ptrdiff_t n)                     \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T s2, t; cg_tanh_sech2_##S(g[j], &t, &s2);                                           \\
            h[j] = t;                                                                            \\
        }                                                                                        \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_relu_fwd_##S(const T *g, T *h, ptrdiff_t n)                     \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++)                                               \\
            h[j] = g[j] < (T)0 ? (T)0 : g[j];                                                    \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_tanh_bwd_##S(const T *h, const T *dout, const T *dhc, T *dg,    \\
                                              ptrdiff_t n)                                       \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++)                                               \\
            dg[j] = (dout[j] + dhc[j]) * ((T)1 - h[j] * h[j]);                                   \\
    }                                                                                            \\
    CG_CLONES static void cg_rnn_relu_bwd_##S(const T *h, const T *dout, const T *dhc, T *dg,    \\
                                              ptrdiff_t n)                                       \\
    {                                                                                            \\
        CG_IVDEP for (ptrdiff_t j = 0; j < n; j++) {                                             \\
            T d = dout[j] + dhc[j];                                                              \\
            dg[j] = h[j] > (T)0 ? d : (T)0;                                                      \\
        }                                                                                        \\
    }

    CG_RNN_ROWS(float, f)
    CG_RNN_ROWS(double, d)

    /* c[m, 0:64] = beta * c + a[m, k] @ b[k, 0:64] (row-major, b's rows ldb apart): the
       recurrent products of one 64-unit chunk against weights packed once per call, where BLAS
       would repack them at every time step. 16 accumulators of 64 bytes stay in registers
       (4 rows x 64 floats, or 2 rows x 64 doubles): meant for AVX-512, see cg_rnn_mm64_ok. */
    typedef float cg_v16f __attribute__((vector_size(64), aligned(4)));
    typedef double cg_v8d __attribute__((vector_size(64), aligned(8)));
    static int cg_rnn_mm64_ok(void) { return __builtin_cpu_supports("avx512f"); }
    #define CG_MM_ROW4(x, A, B0, B1, B2, B3) A##0 += (x) * B0; A##1 += (x) * B1; A##2 += (x) * B2; A##3 += (x) * B3;
    #define CG_MM_ST4(V, cr, beta, A) \
        if ((beta) == 0) { cr[0] = A##0; cr[1] = A##1; cr[2] = A##2; cr[3] = A##3; } \
        else { cr[0] = (beta) * cr[0] + A##0; cr[1] = (beta) * cr[1] + A##1; \
               cr[2] = (beta) * cr[2] + A##2; cr[3] = (beta) * cr[3] + A##3; }
    CG_CLONES static void cg_rnn_mm64_f(ptrdiff_t m, ptrdiff_t k, const float *a, ptrdiff_t lda,
                                        const float *b, ptrdiff_t ldb, float beta, float *c,
                                        ptrdiff_t ldc)
    {
        for (ptrdiff_t i = 0; i < m; i += 4) {
            ptrdiff_t rows = m - i < 4 ? m - i : 4;
            const float *a0 = a + i * lda;
            const float *a1 = a0 + (rows > 1 ? lda : 0);
            const float *a2 = a0 + (rows > 2 ? 2 * lda : 0);
            const float *a3 = a0 + (rows > 3 ? 3 * lda : 0);
            cg_v16f p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
            cg_v16f r0 = {0}, r1 = {0}, r2 = {0}, r3 = {0}, s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (ptrdiff_t t = 0; t < k; t++) {
                const cg_v16f *bp = (const cg_v16f *) (b + t * ldb);
                cg_v16f b0 = bp[0], b1 = bp[1], b2 = bp[2], b3 = bp[3];
                CG_MM_ROW4(a0[t], p, b0, b1, b2, b3)
                CG_MM_ROW4(a1[t], q, b0, b1, b2, b3)
                CG_MM_ROW4(a2[t], r, b0, b1, b2, b3)
                CG_MM_ROW4(a3[t], s, b0, b1, b2, b3)
            }
            cg_v16f *cr = (cg_v16f *) (c + i * ldc);
            CG_MM_ST4(cg_v16f, cr, beta, p)
            if (rows > 1) { cr = (cg_v16f *) (c + (i + 1) * ldc); CG_MM_ST4(cg_v16f, cr, beta, q) }
            if (rows > 2) { cr = (cg_v16f *) (c + (i + 2) * ldc); CG_MM_ST4(cg_v16f, cr, beta, r) }
            if (rows > 3) { cr = (cg_v16f *) (c + (i + 3) * ldc); CG_MM_ST4(cg_v16f, cr, beta, s) }
        }
    }
    CG_CLONES static void cg_rnn_mm64_d(ptrdiff_t m, ptrdiff_t k, const double *a, ptrdiff_t lda,
                                        const double *b, ptrdiff_t ldb, double beta, double *c,
                                        ptrdiff_t ldc)
    {
        for (ptrdiff_t i = 0; i < m; i += 2) {
            ptrdiff_t rows = m - i < 2 ? m - i : 2;
            const double *a0 = a + i * lda;
            const double *a1 = a0 + (rows > 1 ? lda : 0);
            cg_v8d p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
            cg_v8d r0 = {0}, r1 = {0}, r2 = {0}, r3 = {0}, s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (ptrdiff_t t = 0; t < k; t++) {
                const cg_v8d *bp = (const cg_v8d *) (b + t * ldb);
                cg_v8d b0 = bp[0], b1 = bp[1], b2 = bp[2], b3 = bp[3];
                cg_v8d b4 = bp[4], b5 = bp[5], b6 = bp[6], b7 = bp[7];
                CG_MM_ROW4(a0[t], p, b0, b1, b2, b3)
                CG_MM_ROW4(a0[t], q, b4, b5, b6, b7)
                CG_MM_ROW4(a1[t], r, b0, b1, b2, b3)
                CG_MM_ROW4(a1[t], s, b4, b5, b6, b7)
            }
            cg_v8d *cr = (cg_v8d *) (c + i * ldc);
            CG_MM_ST4(cg_v8d, cr, beta, p)
            cr += 4;
            CG_MM_ST4(cg_v8d, cr, beta, q)
            if (rows > 1) {
                cr = (cg_v8d *) (c + (i + 1) * ldc);
                CG_MM_ST4(cg_v8d, cr, beta, r)
                cr += 4;
                CG_MM_ST4(cg_v8d, cr, beta, s)
            }
        }
    }
    """
    void cg_rnn_lstm_fwd_f(float *g, Py_ssize_t H, const float *cp, float *c, float *tc, float *m,
                           Py_ssize_t n) nogil
    void cg_rnn_lstm_fwd_d(double *g, Py_ssize_t H, const double *cp, double *c, double *tc,
                           double *m, Py_ssize_t n) nogil
    void cg_rnn_lstm_bwd_f(const float *g, Py_ssize_t H, const float *tc, const float *cp,
                           const float *dha, const float *dhb, float *dc, float *dg,
                           Py_ssize_t n) nogil
    void cg_rnn_lstm_bwd_d(const double *g, Py_ssize_t H, const double *tc, const double *cp,
                           const double *dha, const double *dhb, double *dc, double *dg,
                           Py_ssize_t n) nogil
    void cg_rnn_gru_fwd_f(float *g, Py_ssize_t H, float *hn, const float *bhn, const float *hp,
                          float *h, Py_ssize_t n) nogil
    void cg_rnn_gru_fwd_d(double *g, Py_ssize_t H, double *hn, const double *bhn,
                          const double *hp, double *h, Py_ssize_t n) nogil
    void cg_rnn_gru_bwd_f(const float *g, Py_ssize_t H, const float *hn, const float *hp,
                          const float *dout, float *dhc, float *dgi, float *dgh, Py_ssize_t n) nogil
    void cg_rnn_gru_bwd_d(const double *g, Py_ssize_t H, const double *hn, const double *hp,
                          const double *dout, double *dhc, double *dgi, double *dgh,
                          Py_ssize_t n) nogil
    void cg_rnn_tanh_fwd_f(const float *g, float *h, Py_ssize_t n) nogil
    void cg_rnn_tanh_fwd_d(const double *g, double *h, Py_ssize_t n) nogil
    void cg_rnn_relu_fwd_f(const float *g, float *h, Py_ssize_t n) nogil
    void cg_rnn_relu_fwd_d(const double *g, double *h, Py_ssize_t n) nogil
    void cg_rnn_tanh_bwd_f(const float *h, const float *dout, const float *dhc, float *dg,
                           Py_ssize_t n) nogil
    void cg_rnn_tanh_bwd_d(const double *h, const double *dout, const double *dhc, double *dg,
                           Py_ssize_t n) nogil
    void cg_rnn_relu_bwd_f(const float *h, const float *dout, const float *dhc, float *dg,
                           Py_ssize_t n) nogil
    void cg_rnn_relu_bwd_d(const double *h, const double *dout, const double *dhc, double *dg,
                           Py_ssize_t n) nogil


cdef extern from *:
    int cg_rnn_mm64_ok() nogil
    void cg_rnn_mm64_f(Py_ssize_t m, Py_ssize_t k, const float *a, Py_ssize_t lda, const float *b,
                       Py_ssize_t ldb, float beta, float *c, Py_ssize_t ldc) nogil
    void cg_rnn_mm64_d(Py_ssize_t m, Py_ssize_t k, const double *a, Py_ssize_t lda, const double *b,
                       Py_ssize_t ldb, double beta, double *c, Py_ssize_t ldc) nogil


cdef inline void _mm(int m, int n, int k, const floating *a, int lda, const floating *b, int ldb,
                     floating beta, floating *c, int ldc) noexcept nogil:
    """c[m, n] = beta * c + a @ b (row-major): the register kernel for 64 columns, else BLAS."""
    if n == 64 and _mm64_ok:
        if floating is float:
            cg_rnn_mm64_f(m, k, a, lda, b, ldb, beta, c, ldc)
        else:
            cg_rnn_mm64_d(m, k, a, lda, b, ldb, beta, c, ldc)
    else:
        gemm(False, False, m, n, k, <floating> 1, a, lda, b, ldb, beta, c, ldc)


cdef bint _mm64_ok = cg_rnn_mm64_ok()


cdef void _mm_chunk(int m, Py_ssize_t nu, Py_ssize_t k, const floating *a, const floating *w_hh,
                    const floating *wpk, Py_ssize_t u0, Py_ssize_t q, Py_ssize_t ngates, Py_ssize_t H,
                    floating beta, floating *c, int ldc) noexcept nogil:
    """c[m, nu] = beta * c + a[m, k] @ W_hh[q * H + u0 : + nu, :]^T for the chunk at unit u0."""
    if nu == CHUNK:
        _mm(m, CHUNK, <int> k, a, <int> k, wpk + ((u0 // CHUNK) * ngates + q) * k * CHUNK, CHUNK,
            beta, c, ldc)
    else:
        gemm(False, True, m, <int> nu, <int> k, <floating> 1, a, <int> k, w_hh + (q * H + u0) * k,
             <int> k, beta, c, ldc)


def _pack_blocks(wt, Py_ssize_t nfull, Py_ssize_t ngates, Py_ssize_t H):
    """(rows, ngates * H) -> flat (nfull, ngates, rows, CHUNK): the full CHUNK-column blocks."""
    rows = wt.shape[0]
    if nfull == 0:
        return np.zeros(1, wt.dtype)
    blk = wt.reshape(rows, ngates, H)[:, :, :nfull * CHUNK].reshape(rows, ngates, nfull, CHUNK)
    return np.ascontiguousarray(blk.transpose(2, 1, 0, 3)).reshape(-1)


cdef enum:
    MODE_RNN_TANH = 0
    MODE_RNN_RELU = 1
    MODE_LSTM = 2
    MODE_GRU = 3
    CHUNK = 64          # hidden units per parallel chunk of a step (fixed: thread-count independent)
    PANEL = 128         # rows or columns per panel of matmul_panels (fixed, likewise)


# ---------------------------------------------------------------------------------------------
# Per-dtype dispatch of the gate loops

cdef inline void _lstm_fwd(floating *g, Py_ssize_t H, const floating *cp, floating *c, floating *tc,
                           floating *m, Py_ssize_t n) noexcept nogil:
    if floating is float:
        cg_rnn_lstm_fwd_f(g, H, cp, c, tc, m, n)
    else:
        cg_rnn_lstm_fwd_d(g, H, cp, c, tc, m, n)


cdef inline void _lstm_bwd(const floating *g, Py_ssize_t H, const floating *tc, const floating *cp,
                           const floating *dha, const floating *dhb, floating *dc, floating *dg,
                           Py_ssize_t n) noexcept nogil:
    if floating is float:
        cg_rnn_lstm_bwd_f(g, H, tc, cp, dha, dhb, dc, dg, n)
    else:
        cg_rnn_lstm_bwd_d(g, H, tc, cp, dha, dhb, dc, dg, n)


cdef inline void _gru_fwd(floating *g, Py_ssize_t H, floating *hn, const floating *bhn,
                          const floating *hp, floating *h, Py_ssize_t n) noexcept nogil:
    if floating is float:
        cg_rnn_gru_fwd_f(g, H, hn, bhn, hp, h, n)
    else:
        cg_rnn_gru_fwd_d(g, H, hn, bhn, hp, h, n)


cdef inline void _gru_bwd(const floating *g, Py_ssize_t H, const floating *hn, const floating *hp,
                          const floating *dout, floating *dhc, floating *dgi, floating *dgh,
                          Py_ssize_t n) noexcept nogil:
    if floating is float:
        cg_rnn_gru_bwd_f(g, H, hn, hp, dout, dhc, dgi, dgh, n)
    else:
        cg_rnn_gru_bwd_d(g, H, hn, hp, dout, dhc, dgi, dgh, n)


cdef inline void _simple_fwd(bint relu, const floating *g, floating *h, Py_ssize_t n) noexcept nogil:
    if floating is float:
        if relu:
            cg_rnn_relu_fwd_f(g, h, n)
        else:
            cg_rnn_tanh_fwd_f(g, h, n)
    else:
        if relu:
            cg_rnn_relu_fwd_d(g, h, n)
        else:
            cg_rnn_tanh_fwd_d(g, h, n)


cdef inline void _simple_bwd(bint relu, const floating *h, const floating *dout, const floating *dhc,
                             floating *dg, Py_ssize_t n) noexcept nogil:
    if floating is float:
        if relu:
            cg_rnn_relu_bwd_f(h, dout, dhc, dg, n)
        else:
            cg_rnn_tanh_bwd_f(h, dout, dhc, dg, n)
    else:
        if relu:
            cg_rnn_relu_bwd_d(h, dout, dhc, dg, n)
        else:
            cg_rnn_tanh_bwd_d(h, dout, dhc, dg, n)


# ---------------------------------------------------------------------------------------------
# Shared argument checks

cdef int _check_shape(object name, Py_ssize_t rows, Py_ssize_t cols,
                      Py_ssize_t want_rows, Py_ssize_t want_cols) except -1:
    if rows != want_rows or cols != want_cols:
        raise ValueError(f"{name} must have shape ({want_rows}, {want_cols}), got ({rows}, {cols})")
    return 0


cdef int _check_steps(const int64_t[::1] batch_sizes, const int64_t[::1] prev, Py_ssize_t B,
                      Py_ssize_t N, Py_ssize_t out_off) except -1:
    """Validate the packed layout: batch_sizes, the row count N and every prev index."""
    cdef Py_ssize_t T = batch_sizes.shape[0], t, r, total = 0
    if T < 1:
        raise ValueError("batch_sizes must hold at least one step")
    if batch_sizes[0] != B:
        raise ValueError(f"batch_sizes[0] must be the batch size {B}, got {batch_sizes[0]}")
    for t in range(T):
        if batch_sizes[t] < 1 or batch_sizes[t] > B or (t > 0 and batch_sizes[t] > batch_sizes[t - 1]):
            raise ValueError(f"batch_sizes must be non-increasing and in [1, {B}], "
                             f"got {batch_sizes[t]} at step {t}")
        total += batch_sizes[t]
    if total != N:
        raise ValueError(f"batch_sizes sum to {total}, but there are {N} rows")
    if prev.shape[0] != N:
        raise ValueError(f"prev must have {N} entries, got {prev.shape[0]}")
    if out_off != 0 and out_off != B:
        raise ValueError(f"out_off must be 0 or {B}, got {out_off}")
    for r in range(N):
        if prev[r] < 0 or prev[r] >= N + B:
            raise ValueError(f"prev[{r}] = {prev[r]} is out of range [0, {N + B})")
    return 0


cdef Py_ssize_t *_offsets(const int64_t[::1] batch_sizes) except NULL:
    cdef Py_ssize_t T = batch_sizes.shape[0], t, acc = 0
    cdef Py_ssize_t *off = <Py_ssize_t *> malloc(max(T, 1) * sizeof(Py_ssize_t))
    if off == NULL:
        raise MemoryError()
    for t in range(T):
        off[t] = acc
        acc += batch_sizes[t]
    return off


# ---------------------------------------------------------------------------------------------
# Forward

cdef void _fwd_chunk(
    int mode, Py_ssize_t u0, Py_ssize_t u1,         # chunk of hidden units [u0, u1)
    Py_ssize_t off, Py_ssize_t bs,                   # rows off .. off + bs of this step
    floating *G, Py_ssize_t ng, Py_ssize_t H,        # gates (N, ng), ng = gates * H
    floating *hbuf, Py_ssize_t Hh,                   # (N + B, Hh)
    floating *cbuf, floating *tc, floating *mbuf,    # LSTM: (N + B, H), (N, H), (N, H) if proj
    floating *hn, const floating *b_hn,              # GRU: (N, H), (H,)
    const floating *w_hh,                            # (ng, Hh)
    const floating *wpk,                             # packed W_hh^T blocks (see recurrent_forward)
    const int64_t *prev, Py_ssize_t out_off, bint proj,
) noexcept nogil:
    cdef Py_ssize_t nu = u1 - u0, ngates = ng // H, r, e, p, q, b, row, pr
    # the recurrent product for this chunk's gate columns, one BLAS call per run of prev rows
    r = 0
    while r < bs:
        p = prev[off + r]
        e = r + 1
        while e < bs and prev[off + e] == p + (e - r):
            e += 1
        for q in range(ngates):
            if mode == MODE_GRU and q == 2:      # W_hn h goes to hn (added after r gates it)
                _mm_chunk(<int> (e - r), nu, Hh, hbuf + p * Hh, w_hh, wpk, u0, q, ngates, H,
                          <floating> 0, hn + (off + r) * H + u0, <int> H)
            else:
                _mm_chunk(<int> (e - r), nu, Hh, hbuf + p * Hh, w_hh, wpk, u0, q, ngates, H,
                          <floating> 1, G + (off + r) * ng + q * H + u0, <int> ng)
        r = e
    # the fused gate loop
    for b in range(bs):
        row = off + b
        pr = prev[row]
        if mode == MODE_LSTM:
            _lstm_fwd(G + row * ng + u0, H, cbuf + pr * H + u0, cbuf + (out_off + row) * H + u0,
                      tc + row * H + u0,
                      (mbuf + row * H + u0) if proj else (hbuf + (out_off + row) * Hh + u0), nu)
        elif mode == MODE_GRU:
            _gru_fwd(G + row * ng + u0, H, hn + row * H + u0, b_hn + u0, hbuf + pr * Hh + u0,
                     hbuf + (out_off + row) * Hh + u0, nu)
        else:
            _simple_fwd(mode == MODE_RNN_RELU, G + row * ng + u0, hbuf + (out_off + row) * Hh + u0, nu)


def recurrent_forward(
    int mode,                          # IN: 0 RNN tanh, 1 RNN ReLU, 2 LSTM, 3 GRU
    floating[:, ::1] gates,            # IN/OUT (N, ng): x W_ih^T + biases; OUT: gate activations
    floating[:, ::1] hbuf,             # IN/OUT (N + B, Hh): initial states preset; OUT: output rows
    floating[:, ::1] cbuf,             # IN/OUT (N + B, H) LSTM cell states (c0 preset), else (0, 0)
    floating[:, ::1] tc,               # OUT (N, H) LSTM tanh(c), else (0, 0)
    floating[:, ::1] mbuf,             # OUT (N, H) LSTM with projection: o * tanh(c), else (0, 0)
    floating[:, ::1] hn,               # OUT (N, H) GRU W_hn h + b_hn, else (0, 0)
    const floating[:, ::1] w_hh,       # IN (ng, Hh)
    const floating[::1] b_hn,          # IN (H,) GRU b_hn (zeros without bias), else (0,)
    const floating[:, ::1] w_hr,       # IN (Hh, H) LSTM projection, else (0, 0)
    const int64_t[::1] batch_sizes,    # IN (T,) non-increasing, batch_sizes[0] = B
    const int64_t[::1] prev,           # IN (N,) row of hbuf / cbuf each row starts from
    Py_ssize_t out_off,                # IN: output row r is hbuf row out_off + r (0 or B)
    bint reverse,                      # IN: process steps T-1 .. 0
):
    """Run one recurrent layer in one direction over all steps (see the module docstring)."""
    cdef Py_ssize_t N = gates.shape[0], ng = gates.shape[1], Hh = w_hh.shape[1]
    cdef Py_ssize_t B = hbuf.shape[0] - N, T = batch_sizes.shape[0]
    cdef Py_ssize_t ngates = 4 if mode == MODE_LSTM else 3 if mode == MODE_GRU else 1
    cdef Py_ssize_t H, s, t, k, nchunk, npchunk, off, bs, p0
    cdef bint proj = False
    cdef int nt
    cdef Py_ssize_t *offs
    if mode < 0 or mode > 3:
        raise ValueError(f"unknown mode {mode}")
    if ng % ngates != 0 or ng == 0:
        raise ValueError(f"gates has {ng} columns, not a multiple of {ngates} gates")
    H = ng // ngates
    _check_shape("w_hh", w_hh.shape[0], w_hh.shape[1], ng, Hh)
    if B < 1:
        raise ValueError("hbuf must hold the initial states of at least one sequence")
    _check_shape("hbuf", hbuf.shape[0], hbuf.shape[1], N + B, Hh)
    _check_steps(batch_sizes, prev, B, N, out_off)
    if mode == MODE_LSTM:
        proj = w_hr.shape[0] != 0
        _check_shape("cbuf", cbuf.shape[0], cbuf.shape[1], N + B, H)
        _check_shape("tc", tc.shape[0], tc.shape[1], N, H)
        if proj:
            _check_shape("w_hr", w_hr.shape[0], w_hr.shape[1], Hh, H)
            _check_shape("mbuf", mbuf.shape[0], mbuf.shape[1], N, H)
    if not proj and Hh != H:
        raise ValueError(f"w_hh has {Hh} columns but the hidden size is {H}")
    if mode == MODE_GRU:
        _check_shape("hn", hn.shape[0], hn.shape[1], N, H)
        if b_hn.shape[0] != H:
            raise ValueError(f"b_hn must have {H} elements, got {b_hn.shape[0]}")

    nchunk = (H + CHUNK - 1) // CHUNK
    npchunk = (Hh + CHUNK - 1) // CHUNK
    nt = n_threads_for(B * ng * Hh // 16 + B * H * 8)
    # W_hh^T packed per (chunk, gate) into contiguous (Hh, CHUNK) blocks, read in place by the
    # register kernel at every step (full chunks only; a partial last chunk goes to BLAS)
    cdef const floating[::1] wpk = _pack_blocks(np.asarray(w_hh).T, H // CHUNK, ngates, H)
    offs = _offsets(batch_sizes)
    try:
        with nogil:
            for s in range(T):
                t = T - 1 - s if reverse else s
                off = offs[t]
                bs = batch_sizes[t]
                for k in prange(nchunk, num_threads=nt, schedule="static"):
                    _fwd_chunk(mode, k * CHUNK, min((k + 1) * CHUNK, H), off, bs,
                               &gates[0, 0], ng, H, &hbuf[0, 0], Hh,
                               &cbuf[0, 0] if mode == MODE_LSTM else <floating *> NULL,
                               &tc[0, 0] if mode == MODE_LSTM else <floating *> NULL,
                               &mbuf[0, 0] if proj else <floating *> NULL,
                               &hn[0, 0] if mode == MODE_GRU else <floating *> NULL,
                               &b_hn[0] if mode == MODE_GRU else <floating *> NULL,
                               &w_hh[0, 0], &wpk[0], &prev[0], out_off, proj)
                if proj:       # h = m W_hr^T, split over output columns
                    for k in prange(npchunk, num_threads=nt, schedule="static"):
                        p0 = k * CHUNK
                        gemm(False, True, <int> bs, <int> (min(p0 + CHUNK, Hh) - p0), <int> H,
                             <floating> 1, &mbuf[off, 0], <int> H, &w_hr[p0, 0], <int> H,
                             <floating> 0, &hbuf[out_off + off, p0], <int> Hh)
    finally:
        free(offs)


# ---------------------------------------------------------------------------------------------
# Backward

cdef void _bwd_chunk(
    int mode, Py_ssize_t u0, Py_ssize_t u1,          # chunk of hidden units [u0, u1)
    Py_ssize_t off, Py_ssize_t bs,                    # rows of this step (bs == 0: none)
    Py_ssize_t offp, Py_ssize_t bsp,                  # rows of the step processed before (bsp == 0: none)
    const floating *G, Py_ssize_t ng, Py_ssize_t H,
    const floating *hbuf, Py_ssize_t Hh, const floating *cbuf, const floating *tc,
    const floating *hn, const floating *w_hh,
    const floating *wpb,                              # W_hh column blocks (recurrent_backward)
    const floating *dout,                             # (N, Hh)
    floating *dh, floating *dc,                       # (B, Hh), (B, H) carries
    floating *dG, floating *dGh,                      # (N, ng) each (dGh is dG except for GRU)
    const int64_t *prev, Py_ssize_t out_off,
    floating *dm, const floating *zeros, bint proj,   # LSTM with projection: dm (B, H), zeros (H,)
) noexcept nogil:
    cdef Py_ssize_t nu = u1 - u0, b, row, pr
    # carry: dh[:bsp] (+)= dGh_prev @ W_hh[:, chunk] (GRU adds to its direct term dh * z)
    if bsp > 0 and not proj:
        if nu == CHUNK:
            _mm(<int> bsp, CHUNK, <int> ng, dGh + offp * ng, <int> ng, wpb + (u0 // CHUNK) * ng * CHUNK,
                CHUNK, <floating> (1 if mode == MODE_GRU else 0), dh + u0, <int> Hh)
        else:
            gemm(False, False, <int> bsp, <int> nu, <int> ng, <floating> 1, dGh + offp * ng, <int> ng,
                 w_hh + u0, <int> Hh, <floating> (1 if mode == MODE_GRU else 0), dh + u0, <int> Hh)
    for b in range(bs):
        row = off + b
        pr = prev[row]
        if mode == MODE_LSTM:
            if proj:
                _lstm_bwd(G + row * ng + u0, H, tc + row * H + u0, cbuf + pr * H + u0,
                          dm + b * H + u0, zeros + u0, dc + b * H + u0, dG + row * ng + u0, nu)
            else:
                _lstm_bwd(G + row * ng + u0, H, tc + row * H + u0, cbuf + pr * H + u0,
                          dout + row * Hh + u0, dh + b * Hh + u0, dc + b * H + u0,
                          dG + row * ng + u0, nu)
        elif mode == MODE_GRU:
            _gru_bwd(G + row * ng + u0, H, hn + row * H + u0, hbuf + pr * Hh + u0,
                     dout + row * Hh + u0, dh + b * Hh + u0, dG + row * ng + u0,
                     dGh + row * ng + u0, nu)
        else:
            _simple_bwd(mode == MODE_RNN_RELU, hbuf + (out_off + row) * Hh + u0,
                        dout + row * Hh + u0, dh + b * Hh + u0, dG + row * ng + u0, nu)


cdef void _bwd_proj_carry(
    Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t off, Py_ssize_t bs, Py_ssize_t offp, Py_ssize_t bsp,
    const floating *dG, Py_ssize_t ng, const floating *w_hh, Py_ssize_t Hh,
    const floating *dout, floating *dh, floating *dht,
) noexcept nogil:
    """Projection, columns [p0, p1): dh[:bsp] = dG_prev @ W_hh; dht[rows] = dout[rows] + dh[:bs]."""
    cdef Py_ssize_t b, j
    if bsp > 0:
        gemm(False, False, <int> bsp, <int> (p1 - p0), <int> ng, <floating> 1, dG + offp * ng,
             <int> ng, w_hh + p0, <int> Hh, <floating> 0, dh + p0, <int> Hh)
    for b in range(bs):
        for j in range(p0, p1):
            dht[(off + b) * Hh + j] = dout[(off + b) * Hh + j] + dh[b * Hh + j]


def recurrent_backward(
    int mode,                          # IN: as for recurrent_forward
    const floating[:, ::1] gates,      # IN (N, ng): activations saved by recurrent_forward
    const floating[:, ::1] hbuf,       # IN (N + B, Hh)
    const floating[:, ::1] cbuf,       # IN (N + B, H) LSTM, else (0, 0)
    const floating[:, ::1] tc,         # IN (N, H) LSTM, else (0, 0)
    const floating[:, ::1] hn,         # IN (N, H) GRU, else (0, 0)
    const floating[:, ::1] w_hh,       # IN (ng, Hh)
    const floating[:, ::1] w_hr,       # IN (Hh, H) LSTM projection, else (0, 0)
    const floating[:, ::1] dout,       # IN (N, Hh): gradient of the output rows
    floating[:, ::1] dh,               # IN/OUT (B, Hh): gradient of the final states; OUT: of h0
    floating[:, ::1] dc,               # IN/OUT (B, H) LSTM: of the final cells; OUT: of c0
    floating[:, ::1] dgates,           # OUT (N, ng): gradient of the pre-activations (input side)
    floating[:, ::1] dgates_h,         # OUT (N, ng) GRU: of the recurrent side, else (0, 0)
    floating[:, ::1] dht,              # OUT (N, Hh) LSTM projection: total gradient of h, else (0, 0)
    const int64_t[::1] batch_sizes,    # IN: as for recurrent_forward
    const int64_t[::1] prev,           # IN: as for recurrent_forward
    Py_ssize_t out_off,                # IN: as for recurrent_forward
    bint reverse,                      # IN: as for recurrent_forward
):
    """Backpropagation through time for one layer and direction (steps in the reverse order)."""
    cdef Py_ssize_t N = gates.shape[0], ng = gates.shape[1], Hh = w_hh.shape[1]
    cdef Py_ssize_t B = hbuf.shape[0] - N, T = batch_sizes.shape[0]
    cdef Py_ssize_t ngates = 4 if mode == MODE_LSTM else 3 if mode == MODE_GRU else 1
    cdef Py_ssize_t H, s, t, k, nchunk, npchunk, off, bs, offp = 0, bsp = 0, p0, u0
    cdef bint proj = False
    cdef int nt
    cdef Py_ssize_t *offs = NULL
    cdef floating *dm = NULL
    cdef floating *zeros = NULL
    cdef floating *dGh
    cdef floating *dmp
    if mode < 0 or mode > 3:
        raise ValueError(f"unknown mode {mode}")
    if ng % ngates != 0 or ng == 0:
        raise ValueError(f"gates has {ng} columns, not a multiple of {ngates} gates")
    H = ng // ngates
    _check_shape("w_hh", w_hh.shape[0], w_hh.shape[1], ng, Hh)
    if B < 1:
        raise ValueError("hbuf must hold the initial states of at least one sequence")
    _check_shape("hbuf", hbuf.shape[0], hbuf.shape[1], N + B, Hh)
    _check_shape("dout", dout.shape[0], dout.shape[1], N, Hh)
    _check_shape("dh", dh.shape[0], dh.shape[1], B, Hh)
    _check_shape("dgates", dgates.shape[0], dgates.shape[1], N, ng)
    _check_steps(batch_sizes, prev, B, N, out_off)
    if mode == MODE_LSTM:
        proj = w_hr.shape[0] != 0
        _check_shape("cbuf", cbuf.shape[0], cbuf.shape[1], N + B, H)
        _check_shape("tc", tc.shape[0], tc.shape[1], N, H)
        _check_shape("dc", dc.shape[0], dc.shape[1], B, H)
        if proj:
            _check_shape("w_hr", w_hr.shape[0], w_hr.shape[1], Hh, H)
            _check_shape("dht", dht.shape[0], dht.shape[1], N, Hh)
    if not proj and Hh != H:
        raise ValueError(f"w_hh has {Hh} columns but the hidden size is {H}")
    if mode == MODE_GRU:
        _check_shape("hn", hn.shape[0], hn.shape[1], N, H)
        _check_shape("dgates_h", dgates_h.shape[0], dgates_h.shape[1], N, ng)
        dGh = &dgates_h[0, 0]
    else:
        dGh = &dgates[0, 0]

    nchunk = (H + CHUNK - 1) // CHUNK
    npchunk = (Hh + CHUNK - 1) // CHUNK
    nt = n_threads_for(B * ng * Hh // 16 + B * H * 8)
    # the carry's W_hh columns of each full chunk as a contiguous (ng, CHUNK) block
    cdef const floating[::1] wpb = _pack_blocks(np.asarray(w_hh), Hh // CHUNK, 1, Hh)
    offs = _offsets(batch_sizes)
    try:
        if proj:
            dm = <floating *> malloc(B * H * sizeof(floating))
            zeros = <floating *> calloc(H, sizeof(floating))
            if dm == NULL or zeros == NULL:
                raise MemoryError()
        with nogil:
            # steps in the reverse of the forward order, then one more carry update (s == T)
            for s in range(T + 1):
                if s < T:
                    t = s if reverse else T - 1 - s
                    off = offs[t]
                    bs = batch_sizes[t]
                else:
                    off = 0
                    bs = 0
                if proj:
                    for k in prange(npchunk, num_threads=nt, schedule="static"):
                        p0 = k * CHUNK
                        _bwd_proj_carry(p0, min(p0 + CHUNK, Hh), off, bs, offp, bsp,
                                        &dgates[0, 0], ng, &w_hh[0, 0], Hh, &dout[0, 0],
                                        &dh[0, 0], &dht[0, 0])
                    if bs > 0:
                        for k in prange(nchunk, num_threads=nt, schedule="static"):
                            u0 = k * CHUNK
                            dmp = dm + u0
                            # dm[:bs, chunk] = dht[rows] @ W_hr[:, chunk]
                            gemm(False, False, <int> bs, <int> (min(u0 + CHUNK, H) - u0), <int> Hh,
                                 <floating> 1, &dht[off, 0], <int> Hh, &w_hr[0, u0], <int> H,
                                 <floating> 0, dmp, <int> H)
                            _bwd_chunk(mode, u0, min(u0 + CHUNK, H), off, bs, 0, 0,
                                       &gates[0, 0], ng, H, &hbuf[0, 0], Hh, &cbuf[0, 0], &tc[0, 0],
                                       <floating *> NULL, &w_hh[0, 0], &wpb[0], &dout[0, 0], &dh[0, 0],
                                       &dc[0, 0], &dgates[0, 0], dGh, &prev[0], out_off,
                                       dm, zeros, True)
                else:
                    for k in prange(nchunk, num_threads=nt, schedule="static"):
                        _bwd_chunk(mode, k * CHUNK, min((k + 1) * CHUNK, H), off, bs, offp, bsp,
                                   &gates[0, 0], ng, H, &hbuf[0, 0], Hh,
                                   &cbuf[0, 0] if mode == MODE_LSTM else <floating *> NULL,
                                   &tc[0, 0] if mode == MODE_LSTM else <floating *> NULL,
                                   &hn[0, 0] if mode == MODE_GRU else <floating *> NULL,
                                   &w_hh[0, 0], &wpb[0], &dout[0, 0], &dh[0, 0],
                                   &dc[0, 0] if mode == MODE_LSTM else <floating *> NULL,
                                   &dgates[0, 0], dGh, &prev[0], out_off,
                                   <floating *> NULL, <floating *> NULL, False)
                offp = off
                bsp = bs
    finally:
        free(offs)
        free(dm)
        free(zeros)


# ---------------------------------------------------------------------------------------------
# Products for the input projection and the weight gradients

def matmul_panels(
    const floating[:, ::1] a,          # IN (M, K), or (K, M) if trans_a
    const floating[:, ::1] b,          # IN (K, N), or (N, K) if trans_b
    floating[:, ::1] out,              # IN/OUT (M, N); only read if beta != 0
    bint trans_a,                      # IN: use a^T
    bint trans_b,                      # IN: use b^T
    double beta=0.0,                   # IN
):
    """out := op(a).op(b) + beta * out, cut into fixed panels of PANEL rows (or columns, whichever
    side of out is longer) spread over the OpenMP threads: results do not depend on the thread count."""
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t dim, panels, p, lo, size, i, j
    cdef int lda = <int> max(1, a.shape[1]), ldb = <int> max(1, b.shape[1]), ldc = <int> max(1, n)
    cdef floating beta_ = <floating> beta
    cdef bint by_rows
    cdef int nt
    if kb != k:
        raise ValueError(f"matmul_panels: inner dimensions differ ({m}, {k}) x ({kb}, {n})")
    _check_shape("out", out.shape[0], out.shape[1], m, n)
    if max(m, n, k) > 2147483647 or a.shape[1] > 2147483647 or b.shape[1] > 2147483647:
        raise ValueError("matmul_panels: matrices too large for BLAS")
    if m == 0 or n == 0:
        return
    if k == 0:
        with nogil:
            for i in range(m):
                for j in range(n):
                    out[i, j] = 0 if beta == 0 else beta_ * out[i, j]
        return
    by_rows = m >= n
    dim = m if by_rows else n
    panels = (dim + PANEL - 1) // PANEL
    nt = n_threads_for(<Py_ssize_t> min(<double> m * n * k / 16, 1e18))
    with nogil:
        for p in prange(panels, num_threads=nt, schedule="static"):
            lo = p * PANEL
            size = min(PANEL, dim - lo)
            if by_rows:
                gemm(trans_a, trans_b, <int> size, <int> n, <int> k, <floating> 1,
                     &a[0, 0] + (lo if trans_a else lo * lda), lda, &b[0, 0], ldb, beta_,
                     &out[lo, 0], ldc)
            else:
                gemm(trans_a, trans_b, <int> m, <int> size, <int> k, <floating> 1, &a[0, 0], lda,
                     &b[0, 0] + (lo * ldb if trans_b else lo), ldb, beta_, &out[0, lo], ldc)
