"""Convolution kernels: im2col / col2im + GEMM, direct depthwise kernels and, for float32 conv3d
with few input channels, a direct kernel (_conv_direct.h); float32 / float64.

One generic N-d implementation: 1-d and 2-d convolutions are 3-d ones with singleton leading
spatial dimensions. Arrays are C-contiguous with the spatial dimensions flattened:

    x     (N, C, S)        input,  S = D * H * W
    out   (N, O, P)        output, P = OD * OH * OW
    w     (O, Cg * K)      weight, Cg = C / groups, K = kd * kh * kw

The geometry is a tuple ``(D, H, W, OD, OH, OW, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw)``
(input size, output size, kernel size, stride, front padding, dilation). The output position
``o`` along one dimension reads input position ``o * s - p + k * d`` for tap ``k``; positions
outside ``[0, size)`` read zero. The back padding is implicit in the output size, so asymmetric
padding ('same' with an even kernel) and ``output_padding`` of a transposed convolution need
nothing special. Every kernel checks that the array shapes agree with the geometry, and every
input read / output write is bounds-checked against the sizes, so any geometry is memory-safe.

GEMM path (``conv_forward``, ``conv_backward_input``, ``conv_backward_weight``)
-------------------------------------------------------------------------------
The output positions of a sample are cut into chunks of ``nc`` positions, sized so that one
chunk's column buffer (``C * K`` rows by ``nc`` columns) is about the size of the L2 cache. Each
thread owns its column buffer and calls a single-threaded BLAS gemm per group:

- forward:          out[n, :, chunk]^T = col^T @ W^T (+ bias). The columns are position-major
                    (one row per output position), copied from a channels-last transpose of
                    the input; BLAS runs this long-side-first product faster than W @ col, and
                    the (chunk, O) result is transposed into ``out``. Work items are (sample,
                    chunk) pairs, so a batch smaller than the thread count still uses every
                    thread. Groups with fewer than 8 input channels use channel-major columns
                    and out[n, :, chunk] = W @ col instead.
- input gradient:   col^T = gout[n, :, chunk]^T @ W, added into a channels-last buffer of the
                    sample (col2im), transposed into gx[n] at the end; one sample per work item.
                    With fewer samples than threads, the items are (sample, channel block)
                    pairs with channel-major columns (col = W_block^T @ gout[n, :, chunk]), as
                    col2im of neighbouring chunks writes overlapping input rows.
- weight gradient:  gW_t^T += col @ gout[n, :, chunk]^T per thread t over (sample, chunk)
                    items; the per-thread partials are summed in thread order at the end.

With unit stride along the last two axes and OW == W, consecutive output rows read consecutive
input rows, so im2col / col2im copy or add several rows in one run (and zero the columns that
read past a row end). A 1x1 convolution with stride 1 and no padding skips im2col: the input
is the column matrix.

Depthwise path (``depthwise_*``: groups == C, one input channel per group)
-------------------------------------------------------------------------
Direct loops, no column buffer: forward and input gradient are row correlations (one
vectorised loop per output row and kernel row, over all kernel columns), parallel over
(sample, channel) planes; the weight gradient is a set of dot products, parallel over output
channels: vector partial sums per sample in the input precision, added over the samples in
double.

Determinism: the chunks do not depend on the thread count, so forward results are bitwise
independent of it; so is the input gradient when there are at least as many samples as threads
(otherwise the channel-block split changes the gemm shapes, and results agree to rounding). The
depthwise kernels and ``bias_backward`` (double sums per (sample, channel), then over samples
in order) are bitwise independent of the thread count. Weight gradients of the GEMM path are
summed from per-thread partials in a fixed order (static schedule): repeated runs give identical
results, other thread counts agree to rounding.
"""

import numpy as np

from .. import _alloc

from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memcpy, memset
from libc.limits cimport INT_MAX

from ._blas cimport gemm
from ._parallel cimport n_threads_for

# Vectorised loops over rows and planes (compiled for AVX-512, AVX2 + FMA and baseline x86-64,
# picked at load time like _vmath.h; every thread runs the same clone, so results do not depend on
# the thread count).
cdef extern from *:
    """
    #include <stddef.h>
    #include <string.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \\
        && defined(__has_attribute)
    #  if __has_attribute(target_clones)
    #    define CGC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #  endif
    #endif
    #ifndef CGC_CLONES
    #  define CGC_CLONES
    #endif
    #if defined(_OPENMP)
    #  define CGC_SIMD_SUM_S _Pragma("omp simd reduction(+:s)")
    #else
    #  define CGC_SIMD_SUM_S
    #endif

    /* partial sums per tap in the depthwise weight gradient: one vector of CGC_L lanes */
    #define CGC_L 8
    typedef float cgc_vec_f __attribute__((vector_size(CGC_L * sizeof(float))));
    typedef double cgc_vec_d __attribute__((vector_size(CGC_L * sizeof(double))));

    #include <stdint.h>
    /* 8 x 8 transpose of the rows r0..r7 (vectors of 8 T) into the columns o0..o7 */
    #define CGC_T8(T, V)                                                                        \\
        V t0 = __builtin_shuffle(r0, r1, (M){0, 8, 1, 9, 4, 12, 5, 13});                        \\
        V t1 = __builtin_shuffle(r0, r1, (M){2, 10, 3, 11, 6, 14, 7, 15});                      \\
        V t2 = __builtin_shuffle(r2, r3, (M){0, 8, 1, 9, 4, 12, 5, 13});                        \\
        V t3 = __builtin_shuffle(r2, r3, (M){2, 10, 3, 11, 6, 14, 7, 15});                      \\
        V t4 = __builtin_shuffle(r4, r5, (M){0, 8, 1, 9, 4, 12, 5, 13});                        \\
        V t5 = __builtin_shuffle(r4, r5, (M){2, 10, 3, 11, 6, 14, 7, 15});                      \\
        V t6 = __builtin_shuffle(r6, r7, (M){0, 8, 1, 9, 4, 12, 5, 13});                        \\
        V t7 = __builtin_shuffle(r6, r7, (M){2, 10, 3, 11, 6, 14, 7, 15});                      \\
        V s0 = __builtin_shuffle(t0, t2, (M){0, 1, 8, 9, 4, 5, 12, 13});                        \\
        V s1 = __builtin_shuffle(t0, t2, (M){2, 3, 10, 11, 6, 7, 14, 15});                      \\
        V s2 = __builtin_shuffle(t1, t3, (M){0, 1, 8, 9, 4, 5, 12, 13});                        \\
        V s3 = __builtin_shuffle(t1, t3, (M){2, 3, 10, 11, 6, 7, 14, 15});                      \\
        V s4 = __builtin_shuffle(t4, t6, (M){0, 1, 8, 9, 4, 5, 12, 13});                        \\
        V s5 = __builtin_shuffle(t4, t6, (M){2, 3, 10, 11, 6, 7, 14, 15});                      \\
        V s6 = __builtin_shuffle(t5, t7, (M){0, 1, 8, 9, 4, 5, 12, 13});                        \\
        V s7 = __builtin_shuffle(t5, t7, (M){2, 3, 10, 11, 6, 7, 14, 15});                      \\
        V o0 = __builtin_shuffle(s0, s4, (M){0, 1, 2, 3, 8, 9, 10, 11});                        \\
        V o1 = __builtin_shuffle(s1, s5, (M){0, 1, 2, 3, 8, 9, 10, 11});                        \\
        V o2 = __builtin_shuffle(s2, s6, (M){0, 1, 2, 3, 8, 9, 10, 11});                        \\
        V o3 = __builtin_shuffle(s3, s7, (M){0, 1, 2, 3, 8, 9, 10, 11});                        \\
        V o4 = __builtin_shuffle(s0, s4, (M){4, 5, 6, 7, 12, 13, 14, 15});                      \\
        V o5 = __builtin_shuffle(s1, s5, (M){4, 5, 6, 7, 12, 13, 14, 15});                      \\
        V o6 = __builtin_shuffle(s2, s6, (M){4, 5, 6, 7, 12, 13, 14, 15});                      \\
        V o7 = __builtin_shuffle(s3, s7, (M){4, 5, 6, 7, 12, 13, 14, 15});

    #define CGC_KERNELS(T, S, MI)                                                               \\
                                                                                                \\
    /* y[i] += sum_k w[k] * x[i - p + k * d] for i in [0, n); reads of x outside [0, xn) are   \\
       zero; p may be negative. */                                                              \\
    static inline void cgc_row_##S(T *restrict y, ptrdiff_t n, const T *restrict x,             \\
                                   ptrdiff_t xn, const T *restrict w, ptrdiff_t K, ptrdiff_t d, \\
                                   ptrdiff_t p)                                                 \\
    {                                                                                           \\
        ptrdiff_t lo = p < 0 ? 0 : p, hi = xn - (K - 1) * d + p, i, k;                          \\
        if (lo > n) lo = n;                                                                     \\
        if (hi > n) hi = n;                                                                     \\
        if (hi < lo) hi = lo;                                                                   \\
        for (i = 0; i < n; i++) {           /* edges: some taps fall outside x */               \\
            if (i == lo) i = hi;                                                                \\
            if (i >= n) break;                                                                  \\
            T s = 0;                                                                            \\
            for (k = 0; k < K; k++) {                                                           \\
                ptrdiff_t j = i - p + k * d;                                                    \\
                if (j >= 0 && j < xn) s += w[k] * x[j];                                         \\
            }                                                                                   \\
            y[i] += s;                                                                          \\
        }                                                                                       \\
        if (hi <= lo) return;                                                                   \\
        const T *xb = x + (lo - p);         /* interior: every tap inside x */                  \\
        T *yb = y + lo;                                                                         \\
        ptrdiff_t m = hi - lo;                                                                  \\
        if (K == 3) {                                                                           \\
            T w0 = w[0], w1 = w[1], w2 = w[2];                                                  \\
            const T *x1 = xb + d, *x2 = xb + 2 * d;                                             \\
            for (i = 0; i < m; i++) yb[i] += w0 * xb[i] + w1 * x1[i] + w2 * x2[i];              \\
            return;                                                                             \\
        }                                                                                       \\
        for (k = 0; k + 1 < K; k += 2) {                                                        \\
            T w0 = w[k], w1 = w[k + 1];                                                         \\
            const T *x0 = xb + k * d, *x1 = xb + (k + 1) * d;                                   \\
            for (i = 0; i < m; i++) yb[i] += w0 * x0[i] + w1 * x1[i];                           \\
        }                                                                                       \\
        if (k < K) {                                                                            \\
            T w0 = w[k];                                                                        \\
            const T *x0 = xb + k * d;                                                           \\
            for (i = 0; i < m; i++) yb[i] += w0 * x0[i];                                        \\
        }                                                                                       \\
    }                                                                                           \\
                                                                                                \\
    /* One plane of a depthwise convolution, unit stride along the last axis:                   \\
       y[oh, :] += sum_kh row(x[oh * sh - ph + kh * dh, :], w[kh, :]) over the valid kh. */     \\
    CGC_CLONES static void cgc_dw_plane_##S(T *y, ptrdiff_t OH, ptrdiff_t OW, const T *x,       \\
                                            ptrdiff_t H, ptrdiff_t W, const T *w, ptrdiff_t KH, \\
                                            ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t ph,           \\
                                            ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pw)           \\
    {                                                                                           \\
        for (ptrdiff_t oh = 0; oh < OH; oh++)                                                   \\
            for (ptrdiff_t kh = 0; kh < KH; kh++) {                                             \\
                ptrdiff_t ih = oh * sh - ph + kh * dh;                                          \\
                if (ih < 0 || ih >= H) continue;                                                \\
                cgc_row_##S(y + oh * OW, OW, x + ih * W, W, w + kh * KW, KW, dw, pw);           \\
            }                                                                                   \\
    }                                                                                           \\
                                                                                                \\
    /* Its adjoint: gx[ih, :] += row(g[oh, :], wrev[kh, :]) with wrev the kernel reversed        \\
       along the last axis (the transposed row correlation is again a correlation). */          \\
    CGC_CLONES static void cgc_dw_plane_adj_##S(T *gx, ptrdiff_t H, ptrdiff_t W, const T *g,    \\
                                                ptrdiff_t OH, ptrdiff_t OW, const T *wrev,      \\
                                                ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,       \\
                                                ptrdiff_t ph, ptrdiff_t dh, ptrdiff_t dw,       \\
                                                ptrdiff_t pw)                                   \\
    {                                                                                           \\
        for (ptrdiff_t oh = 0; oh < OH; oh++)                                                   \\
            for (ptrdiff_t kh = 0; kh < KH; kh++) {                                             \\
                ptrdiff_t ih = oh * sh - ph + kh * dh;                                          \\
                if (ih < 0 || ih >= H) continue;                                                \\
                cgc_row_##S(gx + ih * W, W, g + oh * OW, OW, wrev + kh * KW, KW, dw,            \\
                            (KW - 1) * dw - pw);                                                \\
            }                                                                                   \\
    }                                                                                           \\
                                                                                                \\
    /* Weight gradient of one plane: lanes[(kh * KW + kw) * CGC_L + j] += the products          \\
       g[oh, ow] * x[ih, ow - pw + kw * dw] with ow = j (mod CGC_L) counted from the first valid  \\
       ow; the caller reduces the CGC_L partial sums of each tap. */                            \\
    CGC_CLONES static void cgc_dw_plane_dots_##S(const T *g, ptrdiff_t OH, ptrdiff_t OW,        \\
                                                 const T *x, ptrdiff_t H, ptrdiff_t W,          \\
                                                 ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,      \\
                                                 ptrdiff_t ph, ptrdiff_t dh, ptrdiff_t dw,      \\
                                                 ptrdiff_t pw, T *restrict lanes)               \\
    {                                                                                           \\
        const ptrdiff_t L = CGC_L;                                                              \\
        cgc_vec_##S a0, a1, a2, a3, gv, xv;  /* four chains of vector sums per tap */           \\
        for (ptrdiff_t kh = 0; kh < KH; kh++)                                                   \\
            for (ptrdiff_t kw = 0; kw < KW; kw++) {                                             \\
                ptrdiff_t off = kw * dw - pw;   /* x column = ow + off */                       \\
                ptrdiff_t lo = -off > 0 ? -off : 0, hi = W - off;                               \\
                if (hi > OW) hi = OW;                                                           \\
                if (hi <= lo) continue;                                                         \\
                ptrdiff_t m = hi - lo, i, j;                                                    \\
                T *ln = lanes + (kh * KW + kw) * L;                                             \\
                memset(&a0, 0, sizeof a0);                                                      \\
                a1 = a0; a2 = a0; a3 = a0;                                                      \\
                for (ptrdiff_t oh = 0; oh < OH; oh++) {                                         \\
                    ptrdiff_t ih = oh * sh - ph + kh * dh;                                      \\
                    if (ih < 0 || ih >= H) continue;                                            \\
                    const T *gb = g + oh * OW + lo, *xb = x + ih * W + lo + off;                \\
                    for (i = 0; i + 4 * L <= m; i += 4 * L) {                                   \\
                        memcpy(&gv, gb + i, sizeof gv); memcpy(&xv, xb + i, sizeof xv);         \\
                        a0 += gv * xv;                                                          \\
                        memcpy(&gv, gb + i + L, sizeof gv); memcpy(&xv, xb + i + L, sizeof xv); \\
                        a1 += gv * xv;                                                          \\
                        memcpy(&gv, gb + i + 2 * L, sizeof gv);                                 \\
                        memcpy(&xv, xb + i + 2 * L, sizeof xv);                                 \\
                        a2 += gv * xv;                                                          \\
                        memcpy(&gv, gb + i + 3 * L, sizeof gv);                                 \\
                        memcpy(&xv, xb + i + 3 * L, sizeof xv);                                 \\
                        a3 += gv * xv;                                                          \\
                    }                                                                           \\
                    if (i + L <= m) {                                                           \\
                        memcpy(&gv, gb + i, sizeof gv); memcpy(&xv, xb + i, sizeof xv);         \\
                        a1 += gv * xv; i += L;                                                  \\
                    }                                                                           \\
                    if (i + L <= m) {                                                           \\
                        memcpy(&gv, gb + i, sizeof gv); memcpy(&xv, xb + i, sizeof xv);         \\
                        a2 += gv * xv; i += L;                                                  \\
                    }                                                                           \\
                    if (i + L <= m) {                                                           \\
                        memcpy(&gv, gb + i, sizeof gv); memcpy(&xv, xb + i, sizeof xv);         \\
                        a3 += gv * xv; i += L;                                                  \\
                    }                                                                           \\
                    for (j = 0; i + j < m; j++) ln[j] += gb[i + j] * xb[i + j];                 \\
                }                                                                               \\
                a0 = (a0 + a1) + (a2 + a3);                                                     \\
                memcpy(&gv, ln, sizeof gv);                                                     \\
                gv += a0;                                                                       \\
                memcpy(ln, &gv, sizeof gv);                                                     \\
            }                                                                                   \\
    }                                                                                           \\
                                                                                                \\
    /* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: 8 x 8 blocks transposed in    \\
       registers, scalar loops at the edges */                                                  \\
    CGC_CLONES static void cgc_transpose_##S(const T *restrict src, ptrdiff_t rows,             \\
                                             ptrdiff_t cols, ptrdiff_t lds, T *restrict dst,    \\
                                             ptrdiff_t ldd)                                     \\
    {                                                                                           \\
        typedef T v8 __attribute__((vector_size(8 * sizeof(T))));                               \\
        typedef MI M __attribute__((vector_size(8 * sizeof(MI))));                              \\
        ptrdiff_t i0, j0, i, j, rb = rows - rows % 8, cb = cols - cols % 8;                     \\
        for (i0 = 0; i0 < rb; i0 += 8) {                                                        \\
            for (j0 = 0; j0 < cb; j0 += 8) {                                                    \\
                v8 r0, r1, r2, r3, r4, r5, r6, r7;                                              \\
                const T *s = src + i0 * lds + j0;                                               \\
                memcpy(&r0, s, sizeof r0); memcpy(&r1, s + lds, sizeof r1);                     \\
                memcpy(&r2, s + 2 * lds, sizeof r2); memcpy(&r3, s + 3 * lds, sizeof r3);       \\
                memcpy(&r4, s + 4 * lds, sizeof r4); memcpy(&r5, s + 5 * lds, sizeof r5);       \\
                memcpy(&r6, s + 6 * lds, sizeof r6); memcpy(&r7, s + 7 * lds, sizeof r7);       \\
                CGC_T8(T, v8)                                                                   \\
                T *d = dst + j0 * ldd + i0;                                                     \\
                memcpy(d, &o0, sizeof o0); memcpy(d + ldd, &o1, sizeof o1);                     \\
                memcpy(d + 2 * ldd, &o2, sizeof o2); memcpy(d + 3 * ldd, &o3, sizeof o3);       \\
                memcpy(d + 4 * ldd, &o4, sizeof o4); memcpy(d + 5 * ldd, &o5, sizeof o5);       \\
                memcpy(d + 6 * ldd, &o6, sizeof o6); memcpy(d + 7 * ldd, &o7, sizeof o7);       \\
            }                                                                                   \\
            for (j = cb; j < cols; j++)                                                         \\
                for (i = i0; i < i0 + 8; i++) dst[j * ldd + i] = src[i * lds + j];              \\
        }                                                                                       \\
        for (j = 0; j < cols; j++)                                                              \\
            for (i = rb; i < rows; i++) dst[j * ldd + i] = src[i * lds + j];                    \\
    }                                                                                           \\
                                                                                                \\
    /* y[i] += x[i] */                                                                          \\
    CGC_CLONES static void cgc_add_row_##S(T *restrict y, const T *restrict x, ptrdiff_t n)     \\
    {                                                                                           \\
        for (ptrdiff_t i = 0; i < n; i++) y[i] += x[i];                                         \\
    }                                                                                           \\
                                                                                                \\
    /* inline copy / zero / add of n values in vectors of 8 (no library calls for short runs) */ \\
    static inline void cgc_copy_##S(T *restrict d, const T *restrict s, ptrdiff_t n)            \\
    {                                                                                           \\
        typedef T v8 __attribute__((vector_size(8 * sizeof(T))));                               \\
        v8 v;                                                                                   \\
        for (; n >= 8; n -= 8, d += 8, s += 8) { memcpy(&v, s, sizeof v); memcpy(d, &v, sizeof v); } \\
        for (ptrdiff_t i = 0; i < n; i++) d[i] = s[i];                                          \\
    }                                                                                           \\
    static inline void cgc_zero_##S(T *restrict d, ptrdiff_t n)                                 \\
    {                                                                                           \\
        typedef T v8 __attribute__((vector_size(8 * sizeof(T))));                               \\
        v8 v = {0};                                                                             \\
        for (; n >= 8; n -= 8, d += 8) memcpy(d, &v, sizeof v);                                 \\
        for (ptrdiff_t i = 0; i < n; i++) d[i] = 0;                                             \\
    }                                                                                           \\
    static inline void cgc_addv_##S(T *restrict d, const T *restrict s, ptrdiff_t n)            \\
    {                                                                                           \\
        typedef T v8 __attribute__((vector_size(8 * sizeof(T))));                               \\
        v8 u, v;                                                                                \\
        for (; n >= 8; n -= 8, d += 8, s += 8) {                                                \\
            memcpy(&u, d, sizeof u); memcpy(&v, s, sizeof v); u += v; memcpy(d, &u, sizeof u);  \\
        }                                                                                       \\
        for (ptrdiff_t i = 0; i < n; i++) d[i] += s[i];                                         \\
    }                                                                                           \\
                                                                                                \\
    /* Position-major im2col from a channels-last sample xcl (S, C), or (adjoint, add = 1) its   \\
       col2im: col[j, grp * Kg + k * Cg + cl] <-> xcl[input position of tap k for output        \\
       p0 + j, grp * Cg + cl]. q holds D H W OD OH OW kd kh kw sd sh sw pd ph pw dd dh dw C G. */ \\
    CGC_CLONES static void cgc_cols_cl_##S(T *xcl, const ptrdiff_t *q, ptrdiff_t p0,            \\
                                           ptrdiff_t p1, T *col, int add)                       \\
    {                                                                                           \\
        const ptrdiff_t D = q[0], H = q[1], W = q[2], OH = q[4], OW = q[5];                     \\
        const ptrdiff_t kd = q[6], kh = q[7], kw = q[8], sd = q[9], sh = q[10], sw = q[11];     \\
        const ptrdiff_t pd = q[12], ph = q[13], pw = q[14], dd = q[15], dh = q[16], dw = q[17]; \\
        const ptrdiff_t C = q[18], G = q[19], Cg = C / G, K = kd * kh * kw;                     \\
        const ptrdiff_t Kc = C * K, Kg = Cg * K, HWo = OH * OW;                                 \\
        const int merge = G == 1 && dw == 1;                                                    \\
        ptrdiff_t od = p0 / HWo, oh = (p0 - od * HWo) / OW, ow = p0 - od * HWo - oh * OW;       \\
        for (ptrdiff_t j = 0; j < p1 - p0; j++) {                                               \\
            T *cj = col + j * Kc;                                                               \\
            ptrdiff_t base = ow * sw - pw;                                                      \\
            for (ptrdiff_t a = 0; a < kd; a++) {                                                \\
                ptrdiff_t id = od * sd - pd + a * dd;                                           \\
                for (ptrdiff_t b = 0; b < kh; b++) {                                            \\
                    ptrdiff_t ih = oh * sh - ph + b * dh, k = (a * kh + b) * kw;                \\
                    if (id < 0 || id >= D || ih < 0 || ih >= H) {                               \\
                        if (add) continue;                                                      \\
                        if (merge) cgc_zero_##S(cj + k * C, kw * C);                            \\
                        else for (ptrdiff_t e = 0; e < kw; e++)                                 \\
                            for (ptrdiff_t g = 0; g < G; g++)                                   \\
                                cgc_zero_##S(cj + g * Kg + (k + e) * Cg, Cg);                   \\
                        continue;                                                               \\
                    }                                                                           \\
                    T *xr = xcl + (id * H + ih) * W * C;                                        \\
                    if (merge) {                                                                \\
                        ptrdiff_t e0 = -base > 0 ? -base : 0, e1 = W - base;                    \\
                        if (e0 > kw) e0 = kw;                                                   \\
                        if (e1 < e0) e1 = e0;                                                   \\
                        if (e1 > kw) e1 = kw;                                                   \\
                        if (add) {                                                              \\
                            cgc_addv_##S(xr + (base + e0) * C, cj + (k + e0) * C, (e1 - e0) * C); \\
                        } else {                                                                \\
                            cgc_zero_##S(cj + k * C, e0 * C);                                   \\
                            cgc_copy_##S(cj + (k + e0) * C, xr + (base + e0) * C, (e1 - e0) * C); \\
                            cgc_zero_##S(cj + (k + e1) * C, (kw - e1) * C);                     \\
                        }                                                                       \\
                        continue;                                                               \\
                    }                                                                           \\
                    for (ptrdiff_t e = 0; e < kw; e++) {                                        \\
                        ptrdiff_t iw = base + e * dw;                                           \\
                        int ok = iw >= 0 && iw < W;                                             \\
                        for (ptrdiff_t g = 0; g < G; g++) {                                     \\
                            T *c = cj + g * Kg + (k + e) * Cg;                                  \\
                            if (add) { if (ok) cgc_addv_##S(xr + iw * C + g * Cg, c, Cg); }     \\
                            else if (ok) cgc_copy_##S(c, xr + iw * C + g * Cg, Cg);             \\
                            else cgc_zero_##S(c, Cg);                                           \\
                        }                                                                       \\
                    }                                                                           \\
                }                                                                               \\
            }                                                                                   \\
            if (++ow == OW) { ow = 0; if (++oh == OH) { oh = 0; od++; } }                       \\
        }                                                                                       \\
    }                                                                                           \\
                                                                                                \\
    /* sum of n values, accumulated in double */                                                \\
    CGC_CLONES static double cgc_sum_##S(const T *restrict x, ptrdiff_t n)                      \\
    {                                                                                           \\
        double s = 0;                                                                           \\
        CGC_SIMD_SUM_S                                                                          \\
        for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i];                                    \\
        return s;                                                                               \\
    }

    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC push_options
    /* keep the short copy / zero loops of the im2col inline: gcc otherwise turns them into memmove /
       memset calls, one per kernel row of every column (a third of the columns' time in conv3d) */
    #pragma GCC optimize("no-tree-loop-distribute-patterns")
    #endif
    CGC_KERNELS(float, f, int32_t)
    CGC_KERNELS(double, d, int64_t)
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC pop_options
    #endif
    #include "_conv_direct.h"
    """
    enum: CGC_L
    void cgc_dw_plane_f(float *y, Py_ssize_t OH, Py_ssize_t OW, const float *x, Py_ssize_t H,
                        Py_ssize_t W, const float *w, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                        Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pw) nogil
    void cgc_dw_plane_d(double *y, Py_ssize_t OH, Py_ssize_t OW, const double *x, Py_ssize_t H,
                        Py_ssize_t W, const double *w, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                        Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pw) nogil
    void cgc_dw_plane_adj_f(float *gx, Py_ssize_t H, Py_ssize_t W, const float *g, Py_ssize_t OH,
                            Py_ssize_t OW, const float *wrev, Py_ssize_t KH, Py_ssize_t KW,
                            Py_ssize_t sh, Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw,
                            Py_ssize_t pw) nogil
    void cgc_dw_plane_adj_d(double *gx, Py_ssize_t H, Py_ssize_t W, const double *g, Py_ssize_t OH,
                            Py_ssize_t OW, const double *wrev, Py_ssize_t KH, Py_ssize_t KW,
                            Py_ssize_t sh, Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw,
                            Py_ssize_t pw) nogil
    void cgc_dw_plane_dots_f(const float *g, Py_ssize_t OH, Py_ssize_t OW, const float *x,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW,
                             Py_ssize_t sh, Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw,
                             Py_ssize_t pw, float *lanes) nogil
    void cgc_dw_plane_dots_d(const double *g, Py_ssize_t OH, Py_ssize_t OW, const double *x,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW,
                             Py_ssize_t sh, Py_ssize_t ph, Py_ssize_t dh, Py_ssize_t dw,
                             Py_ssize_t pw, double *lanes) nogil
    double cgc_sum_f(const float *x, Py_ssize_t n) nogil
    void cgc_cols_cl_f(float *xcl, const Py_ssize_t *q, Py_ssize_t p0, Py_ssize_t p1, float *col,
                       int add) nogil
    void cgc_cols_cl_d(double *xcl, const Py_ssize_t *q, Py_ssize_t p0, Py_ssize_t p1, double *col,
                       int add) nogil
    void cgc_add_row_f(float *y, const float *x, Py_ssize_t n) nogil
    void cgc_add_row_d(double *y, const double *x, Py_ssize_t n) nogil
    void cgc_transpose_f(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                         float *dst, Py_ssize_t ldd) nogil
    void cgc_transpose_d(const double *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                         double *dst, Py_ssize_t ldd) nogil
    double cgc_sum_d(const double *x, Py_ssize_t n) nogil
    int cgd_supported() nogil
    void cgd_row(const float *xp, Py_ssize_t plane, Py_ssize_t Cin, Py_ssize_t Hp, Py_ssize_t Wpa,
                 Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw, const float *w, Py_ssize_t Cout,
                 const float *bias, Py_ssize_t od, Py_ssize_t oh, Py_ssize_t OH, Py_ssize_t OW, float *y,
                 Py_ssize_t ystride) nogil


cdef struct Geom:
    Py_ssize_t N, C, O, G, Cg, Og     # batch, input / output channels, groups, per group
    Py_ssize_t D, H, W, S             # input size, S = D * H * W
    Py_ssize_t OD, OH, OW, P          # output size, P = OD * OH * OW
    Py_ssize_t kd, kh, kw, K          # kernel size, K = kd * kh * kw
    Py_ssize_t sd, sh, sw             # stride
    Py_ssize_t pd, ph, pw             # front padding
    Py_ssize_t dd, dh, dw             # dilation
    Py_ssize_t Kg                     # Cg * K: columns of the weight matrix
    bint pointwise                    # 1x1x1 kernel, stride 1, no padding, P == S


# Bytes of one column buffer (one chunk of output positions for every input channel), about the
# size of the L2 cache. Settable for experiments through set_column_bytes().
cdef Py_ssize_t _column_bytes = 1024 * 1024
# The forward and the input gradient run position-major (channels-last) columns when a group has
# at least this many input channels (settable through set_channels_last_min() for experiments).
cdef Py_ssize_t _cl_min_channels = 8


def set_channels_last_min(Py_ssize_t channels):
    """Set the smallest number of input channels per group for position-major columns (default 8)."""
    global _cl_min_channels
    if channels < 1:
        raise ValueError(f"the channel threshold must be positive, got {channels}")
    _cl_min_channels = channels


def set_column_bytes(Py_ssize_t nbytes):
    """Set the target size in bytes of one thread's column buffer (default 1048576)."""
    global _column_bytes
    if nbytes < 1024:
        raise ValueError(f"column buffer size must be at least 1024 bytes, got {nbytes}")
    _column_bytes = nbytes


cdef int _make_geom(Geom *g, tuple geom, Py_ssize_t N, Py_ssize_t C, Py_ssize_t O,
                    Py_ssize_t groups) except -1:
    """Fill ``g`` from the geometry tuple and check every value (ValueError otherwise)."""
    if len(geom) != 18:
        raise ValueError(f"conv kernel: geometry must have 18 integers, got {len(geom)}")
    cdef Py_ssize_t v[18]
    cdef int i
    for i in range(18):
        v[i] = geom[i]
    g.D, g.H, g.W, g.OD, g.OH, g.OW = v[0], v[1], v[2], v[3], v[4], v[5]
    g.kd, g.kh, g.kw, g.sd, g.sh, g.sw = v[6], v[7], v[8], v[9], v[10], v[11]
    g.pd, g.ph, g.pw, g.dd, g.dh, g.dw = v[12], v[13], v[14], v[15], v[16], v[17]
    for i in range(6):
        if v[i] < 0:
            raise ValueError(f"conv kernel: negative size in geometry {geom}")
    for i in range(6, 12):
        if v[i] < 1:
            raise ValueError(f"conv kernel: kernel sizes and strides must be positive, got {geom}")
    for i in range(12, 15):
        if v[i] < 0:
            raise ValueError(f"conv kernel: negative padding in geometry {geom}")
    for i in range(15, 18):
        if v[i] < 1:
            raise ValueError(f"conv kernel: dilations must be positive, got {geom}")
    if groups < 1 or C % groups or O % groups:
        raise ValueError(f"conv kernel: {C} input and {O} output channels are not divisible "
                         f"into {groups} groups")
    g.N, g.C, g.O, g.G = N, C, O, groups
    g.Cg, g.Og = C // groups, O // groups
    g.S = g.D * g.H * g.W
    g.P = g.OD * g.OH * g.OW
    g.K = g.kd * g.kh * g.kw
    g.Kg = g.Cg * g.K
    if g.P > INT_MAX or g.S > INT_MAX or g.Kg > INT_MAX or g.C * g.K > INT_MAX or O > INT_MAX:
        raise ValueError(f"conv kernel: sizes too large for BLAS (geometry {geom}, {C} channels)")
    g.pointwise = (g.K == 1 and g.sd == 1 and g.sh == 1 and g.sw == 1 and g.pd == 0 and g.ph == 0
                   and g.pw == 0 and g.D == g.OD and g.H == g.OH and g.W == g.OW)
    return 0


cdef int _check(str name, tuple shape, tuple expected) except -1:
    if shape != expected:
        raise ValueError(f"conv kernel: {name} has shape {shape}, expected {expected}")
    return 0


cdef inline Py_ssize_t _cdiv_pos(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any a, clamped below at 0."""
    if a <= 0:
        return 0
    return (a + b - 1) // b


cdef inline void _valid_range(Py_ssize_t base, Py_ssize_t s, Py_ssize_t size, Py_ssize_t out,
                              Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """[lo, hi): output positions o in [0, out) with 0 <= o * s + base < size."""
    cdef Py_ssize_t a = _cdiv_pos(-base, s), b
    if size - 1 - base < 0:
        b = 0
    else:
        b = (size - 1 - base) // s + 1
    if b > out:
        b = out
    if a > b:
        a = b
    lo[0] = a
    hi[0] = b


cdef Py_ssize_t _chunk(const Geom *g, Py_ssize_t rows, Py_ssize_t itemsize) noexcept nogil:
    """Output positions per column-buffer chunk for a buffer of ``rows`` rows."""
    cdef Py_ssize_t nc = _column_bytes // (max(rows, 1) * itemsize)
    if nc < 64:
        nc = 64
    if nc >= g.P:
        return max(g.P, 1)
    nc = nc // 16 * 16
    # balance the chunks: same number of chunks, sizes as equal as possible (multiple of 16)
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    nc = (g.P + nchunks - 1) // nchunks
    nc = (nc + 15) // 16 * 16
    return min(nc, g.P)


# ---------------------------------------------------------------------------------------------
# im2col / col2im on one chunk of output positions

cdef inline void _add_row(floating *y, const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        cgc_add_row_f(y, x, n)
    else:
        cgc_add_row_d(y, x, n)


cdef inline Py_ssize_t _span(const Geom *g, Py_ssize_t j, Py_ssize_t npos, Py_ssize_t oh,
                             Py_ssize_t ow, Py_ssize_t ih) noexcept nogil:
    """Positions from chunk offset j on whose output rows map to consecutive valid input rows.

    With unit stride along the last two axes and OW == W, consecutive output rows of one output
    plane read consecutive input rows, so their columns are one contiguous run of the input.
    """
    cdef Py_ssize_t more = min(g.OH - 1 - oh, g.H - 1 - ih)
    return min(npos - j, g.OW - ow + more * g.OW)


cdef void _im2col(const floating *x, const Geom *g, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t p0,
                  Py_ssize_t p1, floating *col) noexcept nogil:
    """col[(c - c0) * K + k, j] = x[c, input position of tap k for output position p0 + j].

    ``x`` points at one sample (C, S); ``col`` has (c1 - c0) * K rows of p1 - p0 entries.
    """
    cdef Py_ssize_t npos = p1 - p0, HWo = g.OH * g.OW, sz = sizeof(floating)
    cdef Py_ssize_t c, a, b, e, od, oh, ow, j, seg, idd, ih, base, lo, hi, l, h, q, r, nrow, w0, w1
    cdef bint spans = g.sw == 1 and g.sh == 1 and g.OW == g.W
    cdef const floating *xc
    cdef const floating *src
    cdef floating *row
    cdef floating *dst
    for c in range(c0, c1):
        xc = x + c * g.S
        row = col + (c - c0) * g.K * npos
        for a in range(g.kd):
            for b in range(g.kh):
                for e in range(g.kw):
                    base = e * g.dw - g.pw
                    _valid_range(base, g.sw, g.W, g.OW, &lo, &hi)
                    od = p0 // HWo
                    oh = (p0 - od * HWo) // g.OW
                    ow = p0 - od * HWo - oh * g.OW
                    j = 0
                    while j < npos:
                        seg = min(g.OW - ow, npos - j)
                        dst = row + j
                        idd = od * g.sd - g.pd + a * g.dd
                        ih = oh * g.sh - g.ph + b * g.dh
                        if idd < 0 or idd >= g.D or ih < 0 or ih >= g.H:
                            memset(dst, 0, seg * sz)
                        elif spans and hi > lo:
                            # several output rows at once: one copy, then zero the columns that
                            # wrapped around a row end
                            seg = _span(g, j, npos, oh, ow, ih)
                            src = xc + (idd * g.H + ih) * g.W
                            nrow = (ow + seg - 1) // g.OW      # output rows after the first
                            l = min(max(lo, ow) - ow, seg)      # first copied offset
                            h = max(min(seg, nrow * g.OW - ow + hi), l)  # end of the copy
                            if l > 0:
                                memset(dst, 0, l * sz)
                            if h > l:
                                memcpy(dst + l, src + ow + l + base, (h - l) * sz)
                            if seg > h:
                                memset(dst + h, 0, (seg - h) * sz)
                            for r in range(nrow):
                                w0 = max((r + 1) * g.OW - ow - (g.OW - hi), 0)
                                w1 = min((r + 1) * g.OW - ow + lo, seg)
                                if w1 > w0:
                                    memset(dst + w0, 0, (w1 - w0) * sz)
                            oh += nrow
                            j += seg
                            ow = (ow + seg) % g.OW
                            if ow != 0:
                                continue
                            oh += 1
                            if oh == g.OH:
                                oh = 0
                                od += 1
                            continue
                        else:
                            src = xc + (idd * g.H + ih) * g.W
                            l = min(max(lo, ow), ow + seg)
                            h = min(max(hi, l), ow + seg)
                            if l > ow:
                                memset(dst, 0, (l - ow) * sz)
                            if g.sw == 1:
                                if h > l:
                                    memcpy(dst + (l - ow), src + l + base, (h - l) * sz)
                            else:
                                for q in range(l, h):
                                    dst[q - ow] = src[q * g.sw + base]
                            if ow + seg > h:
                                memset(dst + (h - ow), 0, (ow + seg - h) * sz)
                        j += seg
                        ow = 0
                        oh += 1
                        if oh == g.OH:
                            oh = 0
                            od += 1
                    row += npos


cdef void _col2im(floating *col, const Geom *g, Py_ssize_t c0, Py_ssize_t c1,
                  Py_ssize_t p0, Py_ssize_t p1, floating *x, bint scratch) noexcept nogil:
    """x[c, input position of tap k for output p0 + j] += col[(c - c0) * K + k, j] (adjoint).

    With ``scratch`` the column buffer may be overwritten (entries that read padding are zeroed
    so that several output rows can be added in one run).
    """
    cdef Py_ssize_t npos = p1 - p0, HWo = g.OH * g.OW, sz = sizeof(floating)
    cdef Py_ssize_t c, a, b, e, od, oh, ow, j, seg, idd, ih, base, lo, hi, l, h, q, r, nrow, w0, w1
    cdef bint spans = scratch and g.sw == 1 and g.sh == 1 and g.OW == g.W
    cdef floating *xc
    cdef floating *dst
    cdef floating *row
    cdef floating *src
    for c in range(c0, c1):
        xc = x + c * g.S
        row = col + (c - c0) * g.K * npos
        for a in range(g.kd):
            for b in range(g.kh):
                for e in range(g.kw):
                    base = e * g.dw - g.pw
                    _valid_range(base, g.sw, g.W, g.OW, &lo, &hi)
                    od = p0 // HWo
                    oh = (p0 - od * HWo) // g.OW
                    ow = p0 - od * HWo - oh * g.OW
                    j = 0
                    while j < npos:
                        seg = min(g.OW - ow, npos - j)
                        idd = od * g.sd - g.pd + a * g.dd
                        ih = oh * g.sh - g.ph + b * g.dh
                        if idd >= 0 and idd < g.D and ih >= 0 and ih < g.H:
                            dst = xc + (idd * g.H + ih) * g.W
                            src = row + j
                            if spans and hi > lo:
                                seg = _span(g, j, npos, oh, ow, ih)
                                nrow = (ow + seg - 1) // g.OW
                                l = min(max(lo, ow) - ow, seg)
                                h = max(min(seg, nrow * g.OW - ow + hi), l)
                                for r in range(nrow):
                                    w0 = max((r + 1) * g.OW - ow - (g.OW - hi), 0)
                                    w1 = min((r + 1) * g.OW - ow + lo, seg)
                                    if w1 > w0:
                                        memset(src + w0, 0, (w1 - w0) * sz)
                                if h > l:
                                    _add_row(dst + ow + l + base, src + l, h - l)
                                oh += nrow
                                j += seg
                                ow = (ow + seg) % g.OW
                                if ow != 0:
                                    continue
                                oh += 1
                                if oh == g.OH:
                                    oh = 0
                                    od += 1
                                continue
                            l = min(max(lo, ow), ow + seg)
                            h = min(max(hi, l), ow + seg)
                            if g.sw == 1:
                                if h > l:
                                    _add_row(dst + l + base, src + l - ow, h - l)
                            else:
                                for q in range(l, h):
                                    dst[q * g.sw + base] += src[q - ow]
                        j += seg
                        ow = 0
                        oh += 1
                        if oh == g.OH:
                            oh = 0
                            od += 1
                    row += npos


cdef inline void _transpose(const floating *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                            floating *dst, Py_ssize_t ldd) noexcept nogil:
    """dst[j, i] := src[i, j] for i < rows, j < cols (row strides lds, ldd)."""
    if floating is float:
        cgc_transpose_f(src, rows, cols, lds, dst, ldd)
    else:
        cgc_transpose_d(src, rows, cols, lds, dst, ldd)


cdef void _cl_params(const Geom *g, Py_ssize_t *q) noexcept nogil:
    """The geometry array of cgc_cols_cl: D H W OD OH OW kd kh kw sd sh sw pd ph pw dd dh dw C G."""
    q[0], q[1], q[2], q[3], q[4], q[5] = g.D, g.H, g.W, g.OD, g.OH, g.OW
    q[6], q[7], q[8], q[9], q[10], q[11] = g.kd, g.kh, g.kw, g.sd, g.sh, g.sw
    q[12], q[13], q[14], q[15], q[16], q[17] = g.pd, g.ph, g.pw, g.dd, g.dh, g.dw
    q[18], q[19] = g.C, g.G


cdef inline void _im2col_cl(const floating *xcl, const Py_ssize_t *q, Py_ssize_t p0, Py_ssize_t p1,
                            floating *col) noexcept nogil:
    """Position-major im2col from a channels-last sample ``xcl`` (S, C):

    col[j, grp * Kg + k * Cg + cl] = x[grp * Cg + cl, input position of tap k for output p0 + j].
    With one group and unit dilation along the last axis, the taps of one kernel row are one
    contiguous copy of kw * C values.
    """
    if floating is float:
        cgc_cols_cl_f(<float *> xcl, q, p0, p1, col, 0)
    else:
        cgc_cols_cl_d(<double *> xcl, q, p0, p1, col, 0)


cdef inline void _col2im_cl(const floating *col, const Py_ssize_t *q, Py_ssize_t p0, Py_ssize_t p1,
                            floating *xcl) noexcept nogil:
    """The adjoint of ``_im2col_cl``: adds the position-major columns into the channels-last
    sample ``xcl`` (S, C)."""
    if floating is float:
        cgc_cols_cl_f(xcl, q, p0, p1, <float *> col, 1)
    else:
        cgc_cols_cl_d(xcl, q, p0, p1, <double *> col, 1)

# ---------------------------------------------------------------------------------------------
# Direct path (float32, 3-D kernels, unit stride and dilation, one group; C in _conv_direct.h)

cdef bint _direct_on = True
cdef int _direct_cpu = -1                 # cgd_supported(), asked once
cdef Py_ssize_t _direct_count = 0         # calls of the direct kernel (for the tests)


def set_direct(bint enabled):
    """Allow (default) or forbid the direct float32 conv3d kernel (for the tests and experiments)."""
    global _direct_on
    _direct_on = enabled


def direct_calls():
    """How many times the direct kernel has run in this process (for the tests)."""
    return _direct_count


cdef bint _direct_fits(const Geom *g, Py_ssize_t cin, Py_ssize_t cout, Py_ssize_t ow) noexcept:
    """Whether the direct kernel takes this conv: cin / cout the channels it reads / writes (forward: C / O;
    input gradient: O / C), ow its output row length. It wins where im2col + GEMM is weakest, few input
    channels (short GEMM inner dimension): measured faster up to 32 input channels, slower from 64 on,
    and it needs rows that fill most of their 16-wide vectors."""
    global _direct_cpu
    if not _direct_on or g.G != 1 or g.kd < 2 or cout % 4 != 0 or cin > 32:
        return False
    if 4 * ow < 3 * 16 * ((ow + 15) // 16):             # under 3/4 of the vector lanes in use
        return False
    if g.sd != 1 or g.sh != 1 or g.sw != 1 or g.dd != 1 or g.dh != 1 or g.dw != 1:
        return False
    if _direct_cpu < 0:
        _direct_cpu = cgd_supported()
    return _direct_cpu == 1


cdef void _pad_plane(const float *src, Py_ssize_t D0, Py_ssize_t H0, Py_ssize_t W0, Py_ssize_t fd,
                     Py_ssize_t fh, Py_ssize_t fw, float *dst, Py_ssize_t Dp, Py_ssize_t Hp,
                     Py_ssize_t Wpa) noexcept nogil:
    """dst (Dp, Hp, Wpa) := src (D0, H0, W0) placed at offset (fd, fh, fw), zeros elsewhere; the parts
    of src that fall outside dst are dropped."""
    memset(dst, 0, Dp * Hp * Wpa * sizeof(float))
    cdef Py_ssize_t d, h, dd, hh, w0 = max(0, -fw), w1 = min(W0, Wpa - fw)
    if w1 <= w0:
        return
    for d in range(D0):
        dd = fd + d
        if dd < 0 or dd >= Dp:
            continue
        for h in range(H0):
            hh = fh + h
            if 0 <= hh < Hp:
                memcpy(&dst[(dd * Hp + hh) * Wpa + fw + w0], &src[(d * H0 + h) * W0 + w0],
                       (w1 - w0) * sizeof(float))


cdef int _direct(const float *src, Py_ssize_t N, Py_ssize_t Cin, Py_ssize_t D0, Py_ssize_t H0,
                 Py_ssize_t W0, Py_ssize_t fd, Py_ssize_t fh, Py_ssize_t fw, const float[:, :, ::1] wpk,
                 const float *bias, float *y, Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW,
                 Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw) except -1:
    """y (N, Cout, OD, OH, OW) := the valid correlation of src (N, Cin, D0, H0, W0), zero-padded in front
    by (fd, fh, fw), with wpk (kd * kh * kw, Cin, Cout) (+ bias); output rows are the work items."""
    global _direct_count
    cdef Py_ssize_t Cout = wpk.shape[2]
    if wpk.shape[0] != kd * kh * kw or wpk.shape[1] != Cin or Cout % 4 != 0:
        raise ValueError(f"conv direct kernel: packed weight of shape {(wpk.shape[0], wpk.shape[1], Cout)} "
                         f"does not fit {Cin} input channels and a {kd}x{kh}x{kw} kernel")
    if min(fd, fh, fw) < 0 or N <= 0 or OD <= 0 or OH <= 0 or OW <= 0:
        raise ValueError(f"conv direct kernel: bad geometry (front padding {(fd, fh, fw)}, output "
                         f"{(OD, OH, OW)})")
    cdef Py_ssize_t Dp = OD + kd - 1, Hp = OH + kh - 1
    cdef Py_ssize_t Wpa = 16 * ((OW + 15) // 16) + kw - 1       # every output vector reads inside its row
    cdef Py_ssize_t plane = Dp * Hp * Wpa
    cdef float[::1] xp = _alloc.empty((N * Cin * plane,), dtype=np.float32)
    cdef Py_ssize_t r, n, od, oh, P = OD * OH * OW
    cdef int nt = n_threads_for(N * Cin * plane // 4)
    with nogil:
        for r in prange(N * Cin, schedule="static", num_threads=nt):
            _pad_plane(src + r * D0 * H0 * W0, D0, H0, W0, fd, fh, fw, &xp[r * plane], Dp, Hp, Wpa)
    nt = n_threads_for(N * OD * OH * OW * Cout * Cin * kd * kh * kw // 16)
    with nogil:
        for r in prange(N * OD * OH, schedule="dynamic", num_threads=nt):
            n = r // (OD * OH)
            od = (r // OH) % OD
            oh = r % OH
            cgd_row(&xp[n * Cin * plane], plane, Cin, Hp, Wpa, kd, kh, kw, &wpk[0, 0, 0], Cout, bias, od, oh,
                    OH, OW, y + n * Cout * P, P)
    _direct_count += 1
    return 0


# ---------------------------------------------------------------------------------------------
# GEMM path

def conv_forward(
    const floating[:, :, ::1] x,     # IN: (N, C, S)
    const floating[:, ::1] w,        # IN: (O, Cg * K)
    const floating[::1] bias,        # IN: (O,), or (0,) for no bias
    floating[:, :, ::1] out,         # OUT: (N, O, P)
    tuple geom,                      # IN: the 18 geometry integers (module docstring)
    Py_ssize_t groups,               # IN
):
    """out[n] := conv(x[n], w) + bias, by im2col + gemm over (sample, chunk) work items."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], w.shape[0], groups)
    _check("x", (x.shape[0], x.shape[1], x.shape[2]), (g.N, g.C, g.S))
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    _check("out", (out.shape[0], out.shape[1], out.shape[2]), (g.N, g.O, g.P))
    cdef bint has_bias = bias.shape[0] > 0
    if has_bias:
        _check("bias", (bias.shape[0],), (g.O,))
    if g.N == 0 or g.O == 0 or g.P == 0:
        return
    cdef Py_ssize_t n, o, i, p0, p1, npos, grp, it, tid = 0
    if g.Kg == 0:                            # no input channels: out = bias
        for n in range(g.N):
            for o in range(g.O):
                for i in range(g.P):
                    out[n, o, i] = bias[o] if has_bias else 0
        return
    cdef Py_ssize_t rows = g.C * g.K
    cdef Py_ssize_t nc = _chunk(&g, rows, sizeof(floating))
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    cdef Py_ssize_t items = g.N * nchunks
    cdef double work = <double> g.N * g.O * g.P * g.Kg / 16
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    if nt > items:
        nt = <int> items
    if floating is float and _direct_fits(&g, g.C, g.O, g.OW):
        # the packed weight (tap, C, O)
        wpk = np.ascontiguousarray(np.asarray(w).reshape(g.O, g.C, g.K).transpose(2, 1, 0))
        _direct(&x[0, 0, 0], g.N, g.C, g.D, g.H, g.W, g.pd, g.ph, g.pw, wpk,
                &bias[0] if has_bias else NULL, &out[0, 0, 0], g.OD, g.OH, g.OW, g.kd, g.kh, g.kw)
        return
    if not g.pointwise and g.Cg >= _cl_min_channels:
        _conv_forward_cl(x, w, bias, out, &g, nc, nt)
        return
    cdef floating[:, ::1] cols = _alloc.empty((nt, 1 if g.pointwise else rows * nc),
                                          dtype=np.float32 if floating is float else np.float64)
    cdef floating *col
    cdef const floating *b_ptr
    cdef Py_ssize_t ldb
    cdef floating beta
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        for it in prange(items, schedule="static"):
            n = it // nchunks
            p0 = (it % nchunks) * nc
            p1 = min(p0 + nc, g.P)
            npos = p1 - p0
            col = &cols[tid, 0]
            if not g.pointwise:
                _im2col(&x[n, 0, 0], &g, 0, g.C, p0, p1, col)
            for grp in range(g.G):
                if g.pointwise:
                    b_ptr = &x[n, grp * g.Cg, p0]
                    ldb = g.S
                else:
                    b_ptr = col + grp * g.Kg * npos
                    ldb = npos
                beta = 0
                if has_bias:
                    beta = 1
                    for o in range(grp * g.Og, (grp + 1) * g.Og):
                        for i in range(p0, p1):
                            out[n, o, i] = bias[o]
                gemm(False, False, <int> g.Og, <int> npos, <int> g.Kg, <floating> 1,
                     &w[grp * g.Og, 0], <int> g.Kg, b_ptr, <int> ldb, beta, &out[n, grp * g.Og, p0],
                     <int> g.P)


cdef int _conv_forward_cl(const floating[:, :, ::1] x, const floating[:, ::1] w,
                          const floating[::1] bias, floating[:, :, ::1] out, const Geom *g,
                          Py_ssize_t nc, int nt) except -1:
    """The forward with position-major columns: out[n, :, chunk]^T = col^T @ W^T.

    BLAS runs this orientation (long side first) faster than W @ col. Each thread transposes
    the sample it works on to channels-last (again when its items move to the next sample), so
    that the columns are contiguous copies; the weight is permuted to (O, K, Cg) to match; each
    chunk's (positions, O) result is transposed into ``out``.
    """
    dt = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Kc = g.C * g.K
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    cdef Py_ssize_t items = g.N * nchunks
    cdef bint has_bias = bias.shape[0] > 0
    cdef const floating[:, ::1] wp = np.ascontiguousarray(
        np.asarray(w).reshape(g.O, g.Cg, g.K).transpose(0, 2, 1)).reshape(g.O, g.Kg)
    cdef floating[:, ::1] xcls = _alloc.empty((nt, g.S * g.C), dtype=dt)
    cdef Py_ssize_t[::1] current = np.full(nt, -1, dtype=np.intp)   # sample in xcls[t]
    cdef Py_ssize_t q[20]
    _cl_params(g, q)
    cdef floating[:, ::1] cols = _alloc.empty((nt, nc * Kc), dtype=dt)
    cdef floating[:, ::1] outs = _alloc.empty((nt, nc * g.O), dtype=dt)
    cdef Py_ssize_t it, n, p0, p1, npos, grp, o, j, tid = 0
    cdef floating *col
    cdef floating *ot
    cdef floating *orow
    cdef floating bv
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        for it in prange(items, schedule="static"):
            n = it // nchunks
            p0 = (it % nchunks) * nc
            p1 = min(p0 + nc, g.P)
            npos = p1 - p0
            col = &cols[tid, 0]
            ot = &outs[tid, 0]
            if current[tid] != n:
                _transpose(&x[n, 0, 0], g.C, g.S, g.S, &xcls[tid, 0], g.C)
                current[tid] = n
            _im2col_cl(&xcls[tid, 0], &q[0], p0, p1, col)
            for grp in range(g.G):
                gemm(False, True, <int> npos, <int> g.Og, <int> g.Kg, <floating> 1,
                     col + grp * g.Kg, <int> Kc, &wp[grp * g.Og, 0], <int> g.Kg, <floating> 0,
                     ot + grp * g.Og, <int> g.O)
            _transpose(ot, npos, g.O, g.O, &out[n, 0, p0], g.P)
            if has_bias:
                for o in range(g.O):
                    orow = &out[n, o, p0]
                    bv = bias[o]
                    for j in range(npos):
                        orow[j] += bv
    return 0


def conv_backward_input(
    const floating[:, :, ::1] gout,  # IN: (N, O, P) gradient of the output
    const floating[:, ::1] w,        # IN: (O, Cg * K)
    floating[:, :, ::1] gx,          # OUT: (N, C, S) gradient of the input (overwritten)
    tuple geom,                      # IN
    Py_ssize_t groups,               # IN
):
    """gx[n] := col2im(W^T gout[n]) (the adjoint of conv_forward without bias)."""
    cdef Geom g
    _make_geom(&g, geom, gx.shape[0], gx.shape[1], w.shape[0], groups)
    _check("gout", (gout.shape[0], gout.shape[1], gout.shape[2]), (g.N, g.O, g.P))
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    _check("gx", (gx.shape[0], gx.shape[1], gx.shape[2]), (g.N, g.C, g.S))
    if g.N == 0 or g.C == 0 or g.S == 0:
        return
    cdef Py_ssize_t n, it, tid = 0, cb, c0, c1, p0, p1, npos, grp, ga, gb, cl0, cl1
    if g.O == 0 or g.P == 0:
        gx[:, :, :] = 0
        return
    cdef double work = <double> g.N * g.O * g.P * g.Kg / 16
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    # work items: (sample, channel block); split the channels only when samples are too few
    cdef Py_ssize_t nblocks = 1
    if g.N < nt:
        nblocks = min(g.C, (nt + g.N - 1) // g.N)
    cdef Py_ssize_t items = g.N * nblocks
    if nt > items:
        nt = <int> items
    if floating is float and _direct_fits(&g, g.O, g.C, g.W) and g.pd < g.kd and g.ph < g.kh and g.pw < g.kw:
        # the input gradient is the correlation of gout, padded by k - 1 - p, with the flipped kernel
        # and in / out channels swapped: packed (flipped tap, O, C)
        wpk = np.ascontiguousarray(np.asarray(w).reshape(g.O, g.C, g.kd, g.kh, g.kw)[:, :, ::-1, ::-1, ::-1]
                                   .reshape(g.O, g.C, g.K).transpose(2, 0, 1))
        _direct(&gout[0, 0, 0], g.N, g.O, g.OD, g.OH, g.OW, g.kd - 1 - g.pd, g.kh - 1 - g.ph, g.kw - 1 - g.pw,
                wpk, NULL, &gx[0, 0, 0], g.D, g.H, g.W, g.kd, g.kh, g.kw)
        return
    if nblocks == 1 and not g.pointwise and g.Cg >= _cl_min_channels:
        _conv_backward_input_cl(gout, w, gx, &g, _chunk(&g, g.C * g.K, sizeof(floating)), nt)
        return
    cdef Py_ssize_t cper = (g.C + nblocks - 1) // nblocks
    cdef Py_ssize_t rows = cper * g.K
    cdef Py_ssize_t nc = _chunk(&g, rows, sizeof(floating))
    cdef floating[:, ::1] cols = _alloc.empty((nt, 1 if g.pointwise else rows * nc),
                                          dtype=np.float32 if floating is float else np.float64)
    cdef floating *col
    cdef floating *dst
    cdef Py_ssize_t ldc
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        for it in prange(items, schedule="static"):
            n = it // nblocks
            cb = it % nblocks
            c0 = cb * cper
            c1 = min(c0 + cper, g.C)
            if c1 > c0:
                col = &cols[tid, 0]
                if not g.pointwise:
                    memset(&gx[n, c0, 0], 0, (c1 - c0) * g.S * sizeof(floating))
                p0 = 0
                while p0 < g.P:
                    p1 = min(p0 + nc, g.P)
                    npos = p1 - p0
                    # groups overlapping the channel block [c0, c1)
                    for grp in range(c0 // g.Cg, (c1 - 1) // g.Cg + 1):
                        ga = max(c0, grp * g.Cg)
                        gb = min(c1, (grp + 1) * g.Cg)
                        cl0 = ga - grp * g.Cg
                        cl1 = gb - grp * g.Cg
                        if g.pointwise:
                            dst = &gx[n, ga, p0]
                            ldc = g.S
                        else:
                            dst = col + (ga - c0) * g.K * npos
                            ldc = npos
                        gemm(True, False, <int> ((cl1 - cl0) * g.K), <int> npos, <int> g.Og,
                             <floating> 1, &w[grp * g.Og, cl0 * g.K], <int> g.Kg,
                             &gout[n, grp * g.Og, p0], <int> g.P, <floating> 0, dst, <int> ldc)
                    if not g.pointwise:
                        _col2im(col, &g, c0, c1, p0, p1, &gx[n, 0, 0], True)
                    p0 = p1


cdef int _conv_backward_input_cl(const floating[:, :, ::1] gout, const floating[:, ::1] w,
                                 floating[:, :, ::1] gx, const Geom *g, Py_ssize_t nc,
                                 int nt) except -1:
    """The input gradient with position-major columns, one sample per work item:
    col^T = gout[n, :, chunk]^T @ W (BLAS runs this orientation faster than W^T @ gout), added
    into a channels-last buffer, which is transposed into gx[n] at the end of the sample."""
    dt = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Kc = g.C * g.K
    cdef const floating[:, ::1] wp = np.ascontiguousarray(
        np.asarray(w).reshape(g.O, g.Cg, g.K).transpose(0, 2, 1)).reshape(g.O, g.Kg)
    cdef floating[:, ::1] cols = _alloc.empty((nt, nc * Kc), dtype=dt)
    cdef floating[:, ::1] xcls = _alloc.empty((nt, g.S * g.C), dtype=dt)
    cdef Py_ssize_t q[20]
    _cl_params(g, q)
    cdef Py_ssize_t n, p0, p1, npos, grp, tid = 0
    cdef floating *col
    cdef floating *xcl
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        for n in prange(g.N, schedule="static"):
            col = &cols[tid, 0]
            xcl = &xcls[tid, 0]
            memset(xcl, 0, g.S * g.C * sizeof(floating))
            p0 = 0
            while p0 < g.P:
                p1 = min(p0 + nc, g.P)
                npos = p1 - p0
                for grp in range(g.G):
                    gemm(True, False, <int> npos, <int> g.Kg, <int> g.Og, <floating> 1,
                         &gout[n, grp * g.Og, p0], <int> g.P, &wp[grp * g.Og, 0], <int> g.Kg,
                         <floating> 0, col + grp * g.Kg, <int> Kc)
                _col2im_cl(col, &q[0], p0, p1, xcl)
                p0 = p1
            _transpose(xcl, g.S, g.C, g.C, &gx[n, 0, 0], g.S)
    return 0


def conv_backward_weight(
    const floating[:, :, ::1] x,     # IN: (N, C, S) forward input
    const floating[:, :, ::1] gout,  # IN: (N, O, P) gradient of the output
    floating[:, ::1] gw,             # OUT: (O, Cg * K) gradient of the weight (overwritten)
    tuple geom,                      # IN
    Py_ssize_t groups,               # IN
):
    """gw := sum_n gout[n] @ im2col(x[n])^T (per group), from per-thread partials."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], gw.shape[0], groups)
    _check("x", (x.shape[0], x.shape[1], x.shape[2]), (g.N, g.C, g.S))
    _check("gout", (gout.shape[0], gout.shape[1], gout.shape[2]), (g.N, g.O, g.P))
    _check("gw", (gw.shape[0], gw.shape[1]), (g.O, g.Kg))
    if g.O == 0 or g.Kg == 0:
        return
    gw[:, :] = 0
    if g.N == 0 or g.P == 0:
        return
    cdef Py_ssize_t rows = g.C * g.K
    cdef Py_ssize_t nc = _chunk(&g, rows, sizeof(floating))
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    cdef Py_ssize_t items = g.N * nchunks
    cdef double work = <double> g.N * g.O * g.P * g.Kg / 16
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    if nt > items:
        nt = <int> items
    dt = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] cols = _alloc.empty((nt, 1 if g.pointwise else rows * nc), dtype=dt)
    # per-thread partial sums of the transposed gradient, (group, Cg * K, Og) per thread: the
    # product col @ gout^T has the long side first, which BLAS runs faster than gout @ col^T
    cdef floating[:, :, ::1] part = np.zeros((nt, g.G * g.Kg, g.Og), dtype=dt)
    cdef Py_ssize_t n, it, tid = 0, p0, p1, npos, grp, o, i, t
    cdef floating *col
    cdef const floating *b_ptr
    cdef Py_ssize_t ldb
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        for it in prange(items, schedule="static"):
            n = it // nchunks
            p0 = (it % nchunks) * nc
            p1 = min(p0 + nc, g.P)
            npos = p1 - p0
            col = &cols[tid, 0]
            if not g.pointwise:
                _im2col(&x[n, 0, 0], &g, 0, g.C, p0, p1, col)
            for grp in range(g.G):
                if g.pointwise:
                    b_ptr = &x[n, grp * g.Cg, p0]
                    ldb = g.S
                else:
                    b_ptr = col + grp * g.Kg * npos
                    ldb = npos
                gemm(False, True, <int> g.Kg, <int> g.Og, <int> npos, <floating> 1,
                     b_ptr, <int> ldb, &gout[n, grp * g.Og, p0], <int> g.P, <floating> 1,
                     &part[tid, grp * g.Kg, 0], <int> g.Og)
    # fixed-order sum of the per-thread partials, transposed back to (O, Cg * K)
    cdef int nsum = n_threads_for(g.O * g.Kg * nt // 8)
    with nogil:
        for o in prange(g.O, schedule="static", num_threads=nsum):
            grp = o // g.Og
            for i in range(g.Kg):
                gw[o, i] = part[0, grp * g.Kg + i, o - grp * g.Og]
            for t in range(1, nt):
                for i in range(g.Kg):
                    gw[o, i] += part[t, grp * g.Kg + i, o - grp * g.Og]


def bias_backward(
    const floating[:, :, ::1] gout,  # IN: (N, O, P)
    floating[::1] gb,                # OUT: (O,) sum over samples and positions
):
    """gb[o] := sum_n sum_p gout[n, o, p], in double; bitwise independent of the thread count."""
    cdef Py_ssize_t N = gout.shape[0], O = gout.shape[1], P = gout.shape[2]
    _check("gb", (gb.shape[0],), (O,))
    cdef double[:, ::1] part = np.zeros((max(N, 1), max(O, 1)))
    cdef Py_ssize_t r, n, o
    cdef double s
    if P == 0:
        gb[:] = 0
        return
    with nogil:
        for r in prange(N * O, schedule="static", num_threads=n_threads_for(N * O * P // 16)):
            if floating is float:
                part[r // O, r % O] = cgc_sum_f(&gout[r // O, r % O, 0], P)
            else:
                part[r // O, r % O] = cgc_sum_d(&gout[r // O, r % O, 0], P)
        for o in range(O):
            s = 0
            for n in range(N):
                s = s + part[n, o]
            gb[o] = <floating> s


# ---------------------------------------------------------------------------------------------
# Depthwise path: groups == C (one input channel per group), O = C * m

cdef int _check_depthwise(const Geom *g) except -1:
    if g.Cg != 1:
        raise ValueError(f"depthwise kernel: needs one input channel per group, got {g.Cg}")
    return 0


cdef void _dw_plane_corr(floating *y, const floating *x, const floating *wk, const Geom *g,
                         bint adjoint) noexcept nogil:
    """Forward (adjoint=False): y (output volume) += correlation of x (input volume) with wk.

    Adjoint: y (input volume) += transposed correlation of x (output volume) with wk, where
    wk holds the kernel with its last axis reversed (so the row loop is again a correlation).
    """
    cdef Py_ssize_t od, a, idd, oh, b, ih, q, e, base, ow_lo, ow_hi
    cdef const floating *wplane
    cdef floating *yrow
    cdef const floating *xrow
    for od in range(g.OD):
        for a in range(g.kd):
            idd = od * g.sd - g.pd + a * g.dd
            if idd < 0 or idd >= g.D:
                continue
            wplane = wk + a * g.kh * g.kw
            if g.sw == 1:
                if not adjoint:
                    if floating is float:
                        cgc_dw_plane_f(y + od * g.OH * g.OW, g.OH, g.OW, x + idd * g.H * g.W, g.H, g.W,
                                       wplane, g.kh, g.kw, g.sh, g.ph, g.dh, g.dw, g.pw)
                    else:
                        cgc_dw_plane_d(y + od * g.OH * g.OW, g.OH, g.OW, x + idd * g.H * g.W, g.H, g.W,
                                       wplane, g.kh, g.kw, g.sh, g.ph, g.dh, g.dw, g.pw)
                else:
                    if floating is float:
                        cgc_dw_plane_adj_f(y + idd * g.H * g.W, g.H, g.W, x + od * g.OH * g.OW, g.OH,
                                           g.OW, wplane, g.kh, g.kw, g.sh, g.ph, g.dh, g.dw, g.pw)
                    else:
                        cgc_dw_plane_adj_d(y + idd * g.H * g.W, g.H, g.W, x + od * g.OH * g.OW, g.OH,
                                           g.OW, wplane, g.kh, g.kw, g.sh, g.ph, g.dh, g.dw, g.pw)
                continue
            # strided along the last axis: plain loops
            for oh in range(g.OH):
                for b in range(g.kh):
                    ih = oh * g.sh - g.ph + b * g.dh
                    if ih < 0 or ih >= g.H:
                        continue
                    for e in range(g.kw):
                        base = e * g.dw - g.pw
                        _valid_range(base, g.sw, g.W, g.OW, &ow_lo, &ow_hi)
                        if not adjoint:
                            yrow = y + (od * g.OH + oh) * g.OW
                            xrow = x + (idd * g.H + ih) * g.W
                            for q in range(ow_lo, ow_hi):
                                yrow[q] += wplane[b * g.kw + e] * xrow[q * g.sw + base]
                        else:
                            yrow = y + (idd * g.H + ih) * g.W
                            xrow = x + (od * g.OH + oh) * g.OW
                            for q in range(ow_lo, ow_hi):
                                yrow[q * g.sw + base] += wplane[b * g.kw + g.kw - 1 - e] * xrow[q]


def depthwise_forward(
    const floating[:, :, ::1] x,     # IN: (N, C, S)
    const floating[:, ::1] w,        # IN: (C * m, K)
    const floating[::1] bias,        # IN: (C * m,), or (0,) for no bias
    floating[:, :, ::1] out,         # OUT: (N, C * m, P)
    tuple geom,                      # IN
):
    """Depthwise convolution (groups == C), direct loops, parallel over (sample, channel)."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], w.shape[0], x.shape[1])
    _check_depthwise(&g)
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    _check("out", (out.shape[0], out.shape[1], out.shape[2]), (g.N, g.O, g.P))
    cdef bint has_bias = bias.shape[0] > 0
    if has_bias:
        _check("bias", (bias.shape[0],), (g.O,))
    if g.N == 0 or g.O == 0 or g.P == 0:
        return
    cdef Py_ssize_t m = g.Og, r, n, o, i
    cdef floating bv
    with nogil:
        for r in prange(g.N * g.O, schedule="static",
                        num_threads=n_threads_for(g.N * g.O * g.P * g.K // 16)):
            n = r // g.O
            o = r % g.O
            bv = bias[o] if has_bias else 0
            for i in range(g.P):
                out[n, o, i] = bv
            _dw_plane_corr(&out[n, o, 0], &x[n, o // m, 0], &w[o, 0], &g, False)


def depthwise_backward_input(
    const floating[:, :, ::1] gout,  # IN: (N, C * m, P)
    const floating[:, ::1] w,        # IN: (C * m, K)
    floating[:, :, ::1] gx,          # OUT: (N, C, S) (overwritten)
    tuple geom,                      # IN
):
    """Input gradient of the depthwise convolution, parallel over (sample, channel)."""
    cdef Geom g
    _make_geom(&g, geom, gx.shape[0], gx.shape[1], w.shape[0], gx.shape[1])
    _check_depthwise(&g)
    _check("gout", (gout.shape[0], gout.shape[1], gout.shape[2]), (g.N, g.O, g.P))
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    if g.N == 0 or g.C == 0 or g.S == 0:
        return
    # kernel with the last axis reversed (the row loop of the adjoint is a correlation)
    wrev_arr = np.ascontiguousarray(np.asarray(w).reshape(g.O, g.kd * g.kh, g.kw)[:, :, ::-1]
                                    ).reshape(g.O, g.K)
    cdef const floating[:, ::1] wrev = wrev_arr
    cdef Py_ssize_t m = g.Og, r, n, c, j, i
    with nogil:
        for r in prange(g.N * g.C, schedule="static",
                        num_threads=n_threads_for(g.N * g.O * g.P * g.K // 16)):
            n = r // g.C
            c = r % g.C
            for i in range(g.S):
                gx[n, c, i] = 0
            for j in range(m):
                if g.P > 0:
                    _dw_plane_corr(&gx[n, c, 0], &gout[n, c * m + j, 0], &wrev[c * m + j, 0], &g,
                                   True)


def depthwise_backward_weight(
    const floating[:, :, ::1] x,     # IN: (N, C, S)
    const floating[:, :, ::1] gout,  # IN: (N, C * m, P)
    floating[:, ::1] gw,             # OUT: (C * m, K) (overwritten)
    tuple geom,                      # IN
):
    """Weight gradient of the depthwise convolution: per output channel, accumulated in double."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], gw.shape[0], x.shape[1])
    _check_depthwise(&g)
    _check("gout", (gout.shape[0], gout.shape[1], gout.shape[2]), (g.N, g.O, g.P))
    _check("gw", (gw.shape[0], gw.shape[1]), (g.O, g.Kg))
    if g.O == 0 or g.K == 0:
        return
    cdef double[:, ::1] acc = np.zeros((g.O, g.K))
    # per output channel: CGC_L partial sums per tap over one sample, in the input precision
    cdef floating[:, ::1] lanes = np.empty((g.O, g.K * CGC_L),
                                           dtype=np.float32 if floating is float else np.float64)
    cdef Py_ssize_t m = g.Og, o, n, c, od, oh, a, b, idd, ih, e, q, base, lo, hi, k, j
    cdef const floating *gplane
    cdef const floating *xplane
    cdef floating *ln
    cdef double s
    with nogil:
        for o in prange(g.O, schedule="static",
                        num_threads=n_threads_for(g.N * g.O * g.P * g.K // 16)):
            c = o // m
            ln = &lanes[o, 0]
            for n in range(g.N):
                for k in range(g.K * CGC_L):
                    ln[k] = 0
                for od in range(g.OD):
                    gplane = &gout[n, o, od * g.OH * g.OW]
                    for a in range(g.kd):
                        idd = od * g.sd - g.pd + a * g.dd
                        if idd < 0 or idd >= g.D:
                            continue
                        xplane = &x[n, c, idd * g.H * g.W]
                        k = a * g.kh * g.kw
                        if g.sw == 1:
                            if floating is float:
                                cgc_dw_plane_dots_f(gplane, g.OH, g.OW, xplane, g.H, g.W, g.kh, g.kw,
                                                    g.sh, g.ph, g.dh, g.dw, g.pw, ln + k * CGC_L)
                            else:
                                cgc_dw_plane_dots_d(gplane, g.OH, g.OW, xplane, g.H, g.W, g.kh, g.kw,
                                                    g.sh, g.ph, g.dh, g.dw, g.pw, ln + k * CGC_L)
                            continue
                        for oh in range(g.OH):
                            for b in range(g.kh):
                                ih = oh * g.sh - g.ph + b * g.dh
                                if ih < 0 or ih >= g.H:
                                    continue
                                for e in range(g.kw):
                                    base = e * g.dw - g.pw
                                    _valid_range(base, g.sw, g.W, g.OW, &lo, &hi)
                                    s = 0
                                    for q in range(lo, hi):
                                        s = s + gplane[oh * g.OW + q] * xplane[ih * g.W + q * g.sw + base]
                                    ln[(k + b * g.kw + e) * CGC_L] += <floating> s
                # this sample's partial sums, added in double in a fixed order
                for k in range(g.K):
                    s = 0
                    for j in range(CGC_L):
                        s = s + ln[k * CGC_L + j]
                    acc[o, k] += s
            for k in range(g.K):
                gw[o, k] = <floating> acc[o, k]


# ---------------------------------------------------------------------------------------------
# unfold / fold

def im2col(
    const floating[:, :, ::1] x,     # IN: (N, C, S)
    floating[:, :, ::1] col,         # OUT: (N, C * K, P)
    tuple geom,                      # IN
):
    """col[n] := im2col(x[n]) over all output positions, parallel over (sample, channel)."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], 1, 1)
    _check("x", (x.shape[0], x.shape[1], x.shape[2]), (g.N, g.C, g.S))
    _check("col", (col.shape[0], col.shape[1], col.shape[2]), (g.N, g.C * g.K, g.P))
    if g.N == 0 or g.C == 0 or g.P == 0:
        return
    cdef Py_ssize_t r
    with nogil:
        for r in prange(g.N * g.C, schedule="static",
                        num_threads=n_threads_for(g.N * g.C * g.K * g.P // 8)):
            _im2col(&x[r // g.C, 0, 0], &g, r % g.C, r % g.C + 1, 0, g.P,
                    &col[r // g.C, (r % g.C) * g.K, 0])


def col2im(
    const floating[:, :, ::1] col,   # IN: (N, C * K, P)
    floating[:, :, ::1] x,           # OUT: (N, C, S) (overwritten)
    tuple geom,                      # IN
):
    """x[n] := col2im(col[n]) (sums overlapping blocks), parallel over (sample, channel)."""
    cdef Geom g
    _make_geom(&g, geom, x.shape[0], x.shape[1], 1, 1)
    _check("col", (col.shape[0], col.shape[1], col.shape[2]), (g.N, g.C * g.K, g.P))
    if g.N == 0 or g.C == 0 or g.S == 0:
        return
    cdef Py_ssize_t r
    with nogil:
        for r in prange(g.N * g.C, schedule="static",
                        num_threads=n_threads_for(g.N * g.C * g.K * g.P // 8)):
            memset(&x[r // g.C, r % g.C, 0], 0, g.S * sizeof(floating))
            if g.P > 0:
                _col2im(<floating *> &col[r // g.C, (r % g.C) * g.K, 0], &g, r % g.C, r % g.C + 1, 0,
                        g.P, &x[r // g.C, 0, 0], False)
