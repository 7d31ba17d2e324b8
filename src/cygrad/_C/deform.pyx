"""Deformable convolution kernels (torchvision's ``deform_conv2d``): float32 / float64.

Arrays are C-contiguous with the spatial dimensions flattened:

    xp      (N, C, Sp)       input, zero-padded: (H + 3) x (W + 2) per channel (see below)
    offset  (N, 2 G K, P)    (dy, dx) per offset group g and tap k = i * kw + j
    mask    (N, G K, P)      modulation per offset group and tap, or (N, 0, P) for none
    w       (O, Cg K)        weight, Cg = C / WG input channels per weight group
    out     (N, O, P)        output, P = Ho * Wo

The geometry is a tuple ``(H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G, WG)``: input and
output size, kernel size, stride, padding, dilation, offset groups and weight groups. Offset
group g covers the input channels ``[g C/G, (g + 1) C/G)``.

Sampling
--------
Output position (oy, ox), tap (i, j) of offset group g samples every channel of the group at

    h = (oy sh - ph + i dh) + dy,    w = (ox sw - pw + j dw) + dx

by bilinear interpolation of the four neighbours ``(floor(h) + {0, 1}, floor(w) + {0, 1})``,
neighbours outside the image reading zero; a point with ``h <= -1``, ``h >= H``, ``w <= -1`` or
``w >= W`` reads zero as a whole. The sampled value is multiplied by the mask.

The input is padded with one row of zeros above, two below and one column on each side, so
that every point inside ``(-1, H) x (-1, W)`` has its four neighbours inside the padded plane
(no branches in the inner loops), and points outside read a 2x2 block of zeros in the bottom
padding rows. Gradients written into the padding are discarded.

For one chunk of output positions a *table* holds, per (g, k, position): the padded index of
the top-left neighbour, the four bilinear weights, the fractional parts ``ly``, ``lx`` and the
mask value. Every channel of the group then reuses it:

- forward:  col[c K + k, p] = m * sum_q b_q x[c, idx + d_q]  (deformable im2col), then one gemm
  per weight group: out[n, group rows, chunk] = W_g @ col_g (+ bias).
- backward: gcol = W_g^T @ gout[n, group rows, chunk]; for each (c, k, p)
  A_q[k, p] += gcol[c K + k, p] x[c, idx + d_q] over the channels c of the group (offset and
  mask gradients), and gx[c, idx + d_q] += m b_q gcol[c K + k, p] (input gradient, scatter);
  then grad_mask = sum_q b_q A_q, grad_dy = m ((1 - lx)(A10 - A00) + lx (A11 - A01)),
  grad_dx = m ((1 - ly)(A01 - A00) + ly (A11 - A10)). The weight gradient is
  gout[n, group rows, chunk] @ col_g^T accumulated into per-thread partials.

Parallelism
-----------
The forward spreads (sample, chunk) work items over the OpenMP threads (static schedule), so
a batch smaller than the thread count still uses every thread. The backward spreads samples
when there are at least as many samples as threads: each sample is then handled by one thread,
whose scatter into its own padded input-gradient plane has no races. With fewer samples than
threads it spreads (sample, chunk) items and each thread scatters into its own copy of the
input gradient, summed in thread order at the end. Weight-gradient partials (one per thread)
are summed in thread order too, so repeated runs give identical results; different thread
counts agree to rounding (they may also change the chunk size, hence the gemm shapes).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset, memcpy
from libc.limits cimport INT_MAX

from ._blas cimport gemm
from ._parallel cimport n_threads_for

# Row loops over one chunk of output positions, compiled for AVX-512, AVX2 + FMA and baseline
# x86-64 and picked at load time (gathers vectorise on the first two). Every thread runs the
# same clone, so results do not depend on the thread count.
cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
        && defined(__has_attribute)
    #  if __has_attribute(target_clones)
    #    define CGD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #  endif
    #endif
    #ifndef CGD_CLONES
    #  define CGD_CLONES
    #endif
    /* As activation's loops (setup.py): without -ftrapping-math gcc if-converts the selects of
       the table loop, so it vectorises. No result changes (no -ffast-math). */
    #if defined(__GNUC__) && !defined(__clang__)
    #  pragma GCC push_options
    #  pragma GCC optimize("no-trapping-math")
    #endif

    /* Indices are int and the four neighbours are read through four base pointers, so that
       gcc vectorises the gathers with 32-bit indices. */
    #define CGD_ROWS(T, S)                                                                      \\
    /* out[p] = m[p] * (b00 x[i] + b01 x[i + 1] + b10 x[i + w2] + b11 x[i + w2 + 1]),          \\
       i = idx[p]; m may be NULL (all ones). */                                                 \\
    CGD_CLONES static void cgd_gather_##S(T *restrict out, ptrdiff_t n, const T *restrict x,    \\
            const int *restrict idx, const T *restrict b00, const T *restrict b01,              \\
            const T *restrict b10, const T *restrict b11, const T *restrict m, ptrdiff_t w2)    \\
    {                                                                                           \\
        const T *restrict x1 = x + 1, *restrict x2 = x + w2, *restrict x3 = x + w2 + 1;         \\
        int p, nn = (int)n;                                                                     \\
        if (m) {                                                                                \\
            for (p = 0; p < nn; p++) {                                                          \\
                int i = idx[p];                                                                 \\
                out[p] = m[p] * (b00[p] * x[i] + b01[p] * x1[i] + b10[p] * x2[i]                \\
                                 + b11[p] * x3[i]);                                             \\
            }                                                                                   \\
        } else {                                                                                \\
            for (p = 0; p < nn; p++) {                                                          \\
                int i = idx[p];                                                                 \\
                out[p] = b00[p] * x[i] + b01[p] * x1[i] + b10[p] * x2[i] + b11[p] * x3[i];      \\
            }                                                                                   \\
        }                                                                                       \\
    }                                                                                           \\
                                                                                                \\
    /* a_q[p] += g[p] * x[idx[p] + d_q] for the four neighbours q. */                           \\
    CGD_CLONES static void cgd_accum_##S(T *restrict a00, T *restrict a01, T *restrict a10,     \\
            T *restrict a11, ptrdiff_t n, const T *restrict g, const T *restrict x,             \\
            const int *restrict idx, ptrdiff_t w2)                                              \\
    {                                                                                           \\
        const T *restrict x1 = x + 1, *restrict x2 = x + w2, *restrict x3 = x + w2 + 1;         \\
        int p, nn = (int)n;                                                                     \\
        for (p = 0; p < nn; p++) {                                                              \\
            int i = idx[p];                                                                     \\
            T gv = g[p];                                                                        \\
            a00[p] += gv * x[i];                                                                \\
            a01[p] += gv * x1[i];                                                               \\
            a10[p] += gv * x2[i];                                                               \\
            a11[p] += gv * x3[i];                                                               \\
        }                                                                                       \\
    }                                                                                           \\
                                                                                                \\
    /* gx[idx_k[p] + d_q] += m_k[p] * b_q,k[p] * g_k[p] for the K taps k of one channel (adjoint \\
       of the gather): row k of g, idx, b_q and m starts at k * ld; m may be NULL. The taps     \\
       are the inner loop: they hit different pixels, so their updates overlap in the CPU,     \\
       while consecutive positions often hit the same pixel. Not vectorisable. */              \\
    static void cgd_scatter_##S(T *gx, ptrdiff_t K, ptrdiff_t n, ptrdiff_t ld,                 \\
            const T *restrict g, const int *restrict idx, const T *restrict b00,                \\
            const T *restrict b01, const T *restrict b10, const T *restrict b11,                \\
            const T *restrict m, ptrdiff_t w2)                                                  \\
    {                                                                                           \\
        for (ptrdiff_t p = 0; p < n; p++) {                                                     \\
            for (ptrdiff_t k = 0, r = p; k < K; k++, r += ld) {                                 \\
                T *q = gx + idx[r];                                                             \\
                T gv = m ? m[r] * g[r] : g[r];                                                  \\
                q[0] += b00[r] * gv;                                                            \\
                q[1] += b01[r] * gv;                                                            \\
                q[w2] += b10[r] * gv;                                                           \\
                q[w2 + 1] += b11[r] * gv;                                                       \\
            }                                                                                   \\
        }                                                                                       \\
    }                                                                                           \\
                                                                                                \\
    /* Sampling table of n positions for one tap: h = (T)(by[p] + bh) + dy[p] (likewise w);   \\
       inside (-1, H) x (-1, W): ix = padded index of the top-left neighbour, b_q the bilinear  \\
       weights, ly / lx the fractional parts; outside (or NaN): ix = zero_block, all zero.     \\
       Branch-free (clamped before the int conversion), so it vectorises. */                    \\
    CGD_CLONES static void cgd_table_##S(int *restrict ix, T *restrict b00, T *restrict b01,    \\
            T *restrict b10, T *restrict b11, T *restrict lyo, T *restrict lxo,                 \\
            T *restrict mo, const int *restrict by, const int *restrict bx, int bh, int bw,     \\
            const T *restrict dy, const T *restrict dx, const T *restrict msk, ptrdiff_t n,     \\
            int H, int W, int w2, int zero_block)                                               \\
    {                                                                                           \\
        const T hmax = (T)H, wmax = (T)W;                                                       \\
        int p, nn = (int)n;                                                                     \\
        for (p = 0; p < nn; p++) {                                                              \\
            T h = (T)(by[p] + bh) + dy[p];                                                      \\
            T w = (T)(bx[p] + bw) + dx[p];                                                      \\
            int ok = (h > -1) & (h < hmax) & (w > -1) & (w < wmax);                             \\
            T hc = h > -1 ? h : -1;                     /* NaN -> -1 */                        \\
            T wc = w > -1 ? w : -1;                                                             \\
            hc = hc < hmax ? hc : hmax;                                                         \\
            wc = wc < wmax ? wc : wmax;                                                         \\
            int ih = (int)hc, iw = (int)wc;                                                     \\
            ih -= hc < (T)ih;                           /* floor */                             \\
            iw -= wc < (T)iw;                                                                   \\
            T v = ok ? (T)1 : (T)0;                                                             \\
            T ly = (hc - (T)ih) * v, lx = (wc - (T)iw) * v;                                     \\
            T hy = v - ly, hx = v - lx;                                                         \\
            ix[p] = ok ? (ih + 1) * w2 + iw + 1 : zero_block;                                   \\
            b00[p] = hy * hx;                                                                   \\
            b01[p] = hy * lx;                                                                   \\
            b10[p] = ly * hx;                                                                   \\
            b11[p] = ly * lx;                                                                   \\
            lyo[p] = ly;                                                                        \\
            lxo[p] = lx;                                                                        \\
        }                                                                                       \\
        if (msk)                                                                                \\
            for (p = 0; p < nn; p++) mo[p] = msk[p];                                            \\
        else                                                                                    \\
            for (p = 0; p < nn; p++) mo[p] = 1;                                                 \\
    }                                                                                           \\
                                                                                                \\
    /* Offset and mask gradients of one tap from the sums a_q = sum_c g_c x_c[idx + d_q]:      \\
       gm = sum_q b_q a_q, gdy = m ((1 - lx)(a10 - a00) + lx (a11 - a01)),                      \\
       gdx = m ((1 - ly)(a01 - a00) + ly (a11 - a10)). Outputs may be NULL (not needed). */     \\
    CGD_CLONES static void cgd_finish_##S(T *restrict gdy, T *restrict gdx, T *restrict gm,     \\
            const T *restrict a00, const T *restrict a01, const T *restrict a10,                \\
            const T *restrict a11, const T *restrict b00, const T *restrict b01,                \\
            const T *restrict b10, const T *restrict b11, const T *restrict ly,                 \\
            const T *restrict lx, const T *restrict m, ptrdiff_t n)                             \\
    {                                                                                           \\
        int p, nn = (int)n;                                                                     \\
        if (gm)                                                                                 \\
            for (p = 0; p < nn; p++)                                                            \\
                gm[p] = b00[p] * a00[p] + b01[p] * a01[p] + b10[p] * a10[p] + b11[p] * a11[p];  \\
        if (gdy)                                                                                \\
            for (p = 0; p < nn; p++) {                                                          \\
                gdy[p] = m[p] * ((1 - lx[p]) * (a10[p] - a00[p]) + lx[p] * (a11[p] - a01[p]));  \\
                gdx[p] = m[p] * ((1 - ly[p]) * (a01[p] - a00[p]) + ly[p] * (a11[p] - a10[p]));  \\
            }                                                                                   \\
    }

    CGD_ROWS(float, f)
    CGD_ROWS(double, d)
    #if defined(__GNUC__) && !defined(__clang__)
    #  pragma GCC pop_options
    #endif
    """
    void cgd_gather_f(float *out, Py_ssize_t n, const float *x, const int *idx, const float *b00,
                      const float *b01, const float *b10, const float *b11, const float *m,
                      Py_ssize_t w2) nogil
    void cgd_gather_d(double *out, Py_ssize_t n, const double *x, const int *idx,
                      const double *b00, const double *b01, const double *b10, const double *b11,
                      const double *m, Py_ssize_t w2) nogil
    void cgd_accum_f(float *a00, float *a01, float *a10, float *a11, Py_ssize_t n,
                     const float *g, const float *x, const int *idx, Py_ssize_t w2) nogil
    void cgd_accum_d(double *a00, double *a01, double *a10, double *a11, Py_ssize_t n,
                     const double *g, const double *x, const int *idx, Py_ssize_t w2) nogil
    void cgd_scatter_f(float *gx, Py_ssize_t K, Py_ssize_t n, Py_ssize_t ld, const float *g,
                       const int *idx, const float *b00, const float *b01, const float *b10,
                       const float *b11, const float *m, Py_ssize_t w2) nogil
    void cgd_scatter_d(double *gx, Py_ssize_t K, Py_ssize_t n, Py_ssize_t ld, const double *g,
                       const int *idx, const double *b00, const double *b01, const double *b10,
                       const double *b11, const double *m, Py_ssize_t w2) nogil
    void cgd_finish_f(float *gdy, float *gdx, float *gm, const float *a00, const float *a01,
                      const float *a10, const float *a11, const float *b00, const float *b01,
                      const float *b10, const float *b11, const float *ly, const float *lx,
                      const float *m, Py_ssize_t n) nogil
    void cgd_finish_d(double *gdy, double *gdx, double *gm, const double *a00, const double *a01,
                      const double *a10, const double *a11, const double *b00, const double *b01,
                      const double *b10, const double *b11, const double *ly, const double *lx,
                      const double *m, Py_ssize_t n) nogil
    void cgd_table_f(int *ix, float *b00, float *b01, float *b10, float *b11, float *lyo,
                     float *lxo, float *mo, const int *by, const int *bx, int bh, int bw,
                     const float *dy, const float *dx, const float *msk, Py_ssize_t n, int H,
                     int W, int w2, int zero_block) nogil
    void cgd_table_d(int *ix, double *b00, double *b01, double *b10, double *b11, double *lyo,
                     double *lxo, double *mo, const int *by, const int *bx, int bh, int bw,
                     const double *dy, const double *dx, const double *msk, Py_ssize_t n, int H,
                     int W, int w2, int zero_block) nogil


cdef struct Geom:
    Py_ssize_t N, C, O                # batch, input / output channels
    Py_ssize_t H, W, Ho, Wo, P        # input and output size, P = Ho * Wo
    Py_ssize_t H2, W2, Sp             # padded plane: H + 3 rows of W + 2, Sp = H2 * W2
    Py_ssize_t kh, kw, K              # kernel, K = kh * kw
    Py_ssize_t sh, sw, ph, pw, dh, dw  # stride, padding, dilation
    Py_ssize_t G, Cgo                 # offset groups, channels per offset group
    Py_ssize_t WG, Cg, Og, Kg         # weight groups, channels per weight group, Kg = Cg * K
    bint use_mask


# Table fields (arrays of floating, one row of nc entries per (g, k)); plus an int index table.
cdef enum:
    T_B00 = 0
    T_B01 = 1
    T_B10 = 2
    T_B11 = 3
    T_LY = 4
    T_LX = 5
    T_M = 6
    T_FIELDS = 7

# Bytes of one column buffer (one chunk of output positions for every input channel).
cdef Py_ssize_t _column_bytes = 256 * 1024


def set_column_bytes(Py_ssize_t nbytes):
    """Set the target size in bytes of one thread's column buffer (default 262144)."""
    global _column_bytes
    if nbytes < 1024:
        raise ValueError(f"column buffer size must be at least 1024 bytes, got {nbytes}")
    _column_bytes = nbytes


cdef int _make_geom(Geom *g, tuple geom, Py_ssize_t N, Py_ssize_t C, Py_ssize_t O,
                    bint use_mask) except -1:
    """Fill ``g`` from the geometry tuple and check every value (ValueError otherwise)."""
    if len(geom) != 14:
        raise ValueError(f"deform kernel: geometry must have 14 integers, got {len(geom)}")
    cdef Py_ssize_t v[14]
    cdef int i
    for i in range(14):
        v[i] = geom[i]
    g.H, g.W, g.Ho, g.Wo, g.kh, g.kw = v[0], v[1], v[2], v[3], v[4], v[5]
    g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = v[6], v[7], v[8], v[9], v[10], v[11]
    g.G, g.WG = v[12], v[13]
    if g.H < 0 or g.W < 0 or g.Ho < 0 or g.Wo < 0 or N < 0 or C < 1 or O < 0:
        raise ValueError(f"deform kernel: bad sizes {geom} (N={N}, C={C}, O={O})")
    if g.kh < 1 or g.kw < 1 or g.sh < 1 or g.sw < 1 or g.dh < 1 or g.dw < 1:
        raise ValueError(f"deform kernel: kernel, stride and dilation must be positive: {geom}")
    if g.ph < 0 or g.pw < 0:
        raise ValueError(f"deform kernel: negative padding in geometry {geom}")
    if g.G < 1 or C % g.G or g.WG < 1 or C % g.WG or O % g.WG:
        raise ValueError(f"deform kernel: {C} input / {O} output channels do not split into "
                         f"{g.G} offset groups and {g.WG} weight groups")
    g.N, g.C, g.O = N, C, O
    g.P = g.Ho * g.Wo
    g.H2, g.W2 = g.H + 3, g.W + 2
    g.Sp = g.H2 * g.W2
    g.K = g.kh * g.kw
    g.Cgo = C // g.G
    g.Cg, g.Og = C // g.WG, O // g.WG
    g.Kg = g.Cg * g.K
    g.use_mask = use_mask
    if (g.Sp > INT_MAX or g.P > INT_MAX or C * g.K > INT_MAX or O > INT_MAX
            or g.Ho > INT_MAX // g.sh or g.Wo > INT_MAX // g.sw
            or g.kh > INT_MAX // g.dh or g.kw > INT_MAX // g.dw or g.ph > INT_MAX or g.pw > INT_MAX
            or g.Ho * g.sh + g.kh * g.dh + g.ph + g.H > INT_MAX     # sampling coordinates in int
            or g.Wo * g.sw + g.kw * g.dw + g.pw + g.W > INT_MAX):
        raise ValueError(f"deform kernel: sizes too large (geometry {geom}, {C} channels)")
    return 0


cdef int _check(str name, tuple shape, tuple expected) except -1:
    if shape != expected:
        raise ValueError(f"deform kernel: {name} has shape {shape}, expected {expected}")
    return 0


cdef Py_ssize_t _chunk(const Geom *g, Py_ssize_t itemsize, Py_ssize_t min_items,
                       int nt) noexcept nogil:
    """Output positions per chunk: a column buffer of about ``_column_bytes``, and at least
    ``nt`` work items when there are ``min_items`` samples per chunk index."""
    cdef Py_ssize_t nc = _column_bytes // (max(g.C * g.K, 1) * itemsize)
    cdef Py_ssize_t want
    if nc < 32:
        nc = 32
    if min_items < nt:                         # too few samples: cut each into more chunks
        want = (nt + min_items - 1) // max(min_items, 1)
        nc = min(nc, (g.P + want - 1) // want)
    if nc >= g.P:
        return max(g.P, 1)
    nc = max(nc // 8 * 8, 8)
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc   # balance: equal chunks, multiple of 8
    nc = (g.P + nchunks - 1) // nchunks
    nc = (nc + 7) // 8 * 8
    return min(nc, g.P)


cdef void _table(const Geom *g, const floating *off, const floating *msk, Py_ssize_t p0,
                 Py_ssize_t np_, Py_ssize_t nc, int *idx, floating *tab, int *pos) noexcept nogil:
    """Fill the sampling table of output positions [p0, p0 + np_) of one sample.

    ``off`` (2 G K, P) and ``msk`` (G K, P) point at the sample's offsets and mask (msk is
    NULL without a mask). Row (g K + k) of ``idx`` and of each table field holds nc entries.
    ``pos`` (2 nc ints) is scratch for the output positions' base coordinates.
    """
    cdef Py_ssize_t gk, k, i, j, p, oy, ox
    cdef int zero_block = <int> ((g.H + 1) * g.W2)     # 2x2 zeros in the bottom padding rows
    cdef Py_ssize_t field = g.G * g.K * nc
    cdef const floating *dy
    cdef floating *t
    cdef int *by = pos
    cdef int *bx = pos + nc
    oy = p0 // g.Wo
    ox = p0 - oy * g.Wo
    for p in range(np_):
        by[p] = <int> (oy * g.sh)
        bx[p] = <int> (ox * g.sw)
        ox += 1
        if ox == g.Wo:
            ox = 0
            oy += 1
    for gk in range(g.G * g.K):
        k = gk % g.K
        i = k // g.kw
        j = k - i * g.kw
        dy = off + (2 * gk) * g.P + p0
        t = tab + gk * nc
        if floating is float:
            cgd_table_f(idx + gk * nc, t + T_B00 * field, t + T_B01 * field, t + T_B10 * field,
                        t + T_B11 * field, t + T_LY * field, t + T_LX * field, t + T_M * field,
                        by, bx, <int> (i * g.dh - g.ph), <int> (j * g.dw - g.pw), dy, dy + g.P,
                        (msk + gk * g.P + p0) if msk != NULL else NULL, np_, <int> g.H,
                        <int> g.W, <int> g.W2, zero_block)
        else:
            cgd_table_d(idx + gk * nc, t + T_B00 * field, t + T_B01 * field, t + T_B10 * field,
                        t + T_B11 * field, t + T_LY * field, t + T_LX * field, t + T_M * field,
                        by, bx, <int> (i * g.dh - g.ph), <int> (j * g.dw - g.pw), dy, dy + g.P,
                        (msk + gk * g.P + p0) if msk != NULL else NULL, np_, <int> g.H,
                        <int> g.W, <int> g.W2, zero_block)


cdef inline void _gather(floating *out, Py_ssize_t n, const floating *x, const int *idx,
                         const floating *t, Py_ssize_t field, const floating *m,
                         Py_ssize_t w2) noexcept nogil:
    if floating is float:
        cgd_gather_f(out, n, x, idx, t, t + field, t + 2 * field, t + 3 * field, m, w2)
    else:
        cgd_gather_d(out, n, x, idx, t, t + field, t + 2 * field, t + 3 * field, m, w2)


cdef inline void _scatter(floating *gx, Py_ssize_t K, Py_ssize_t n, Py_ssize_t nc,
                          const floating *gv, const int *idx, const floating *t,
                          Py_ssize_t field, const floating *m, Py_ssize_t w2) noexcept nogil:
    if floating is float:
        cgd_scatter_f(gx, K, n, nc, gv, idx, t, t + field, t + 2 * field, t + 3 * field, m, w2)
    else:
        cgd_scatter_d(gx, K, n, nc, gv, idx, t, t + field, t + 2 * field, t + 3 * field, m, w2)


cdef void _im2col(const Geom *g, const floating *x, const int *idx, const floating *tab,
                  Py_ssize_t np_, Py_ssize_t nc, floating *col) noexcept nogil:
    """col[c K + k, :np_] = sampled (and masked) x[c] for tap k; ``x`` is one padded sample."""
    cdef Py_ssize_t c, k, gk, field = g.G * g.K * nc
    cdef const floating *m
    for c in range(g.C):
        for k in range(g.K):
            gk = (c // g.Cgo) * g.K + k
            m = tab + T_M * field + gk * nc if g.use_mask else NULL
            _gather(col + (c * g.K + k) * nc, np_, x + c * g.Sp, idx + gk * nc, tab + gk * nc,
                    field, m, g.W2)


cdef void _chunk_backward(const Geom *g, const floating *x, const floating *wt,
                          const floating *gout, Py_ssize_t p0, Py_ssize_t np_, Py_ssize_t nc,
                          const int *idx, const floating *tab, floating *gcol, floating *acc,
                          floating *gx, floating *goff, floating *gmsk, bint need_x,
                          bint need_off, bint need_mask) noexcept nogil:
    """Input / offset / mask gradients of one chunk of one sample.

    ``x`` (C, Sp) padded sample, ``gout`` (O, P) its output gradient, ``gx`` (C, Sp) the padded
    plane receiving the input gradient, ``goff`` (2 G K, P) / ``gmsk`` (G K, P) the sample's
    offset / mask gradients. ``gcol`` (C K, nc) and ``acc`` (4 K, nc) are scratch.
    """
    cdef Py_ssize_t wg, gg, c, k, gk, p
    cdef Py_ssize_t field = g.G * g.K * nc
    cdef const floating *m
    cdef const floating *grow
    cdef const floating *xc
    cdef const floating *t
    cdef floating *a
    cdef floating *gdy
    cdef floating *gdx
    cdef floating *gm
    cdef bint need_acc = need_off or need_mask
    for wg in range(g.WG):          # gcol_g = W_g^T @ gout[group rows, chunk]
        gemm(True, False, <int> g.Kg, <int> np_, <int> g.Og, 1, wt + wg * g.Og * g.Kg,
             <int> g.Kg, gout + wg * g.Og * g.P + p0, <int> g.P, 0, gcol + wg * g.Kg * nc,
             <int> nc)
    for gg in range(g.G):
        if need_acc:
            memset(acc, 0, 4 * g.K * nc * sizeof(floating))
        for c in range(gg * g.Cgo, (gg + 1) * g.Cgo):
            xc = x + c * g.Sp
            for k in range(g.K):
                gk = gg * g.K + k
                grow = gcol + (c * g.K + k) * nc
                if need_acc:
                    a = acc + 4 * k * nc
                    if floating is float:
                        cgd_accum_f(a, a + nc, a + 2 * nc, a + 3 * nc, np_, grow, xc,
                                    idx + gk * nc, g.W2)
                    else:
                        cgd_accum_d(a, a + nc, a + 2 * nc, a + 3 * nc, np_, grow, xc,
                                    idx + gk * nc, g.W2)
            if need_x:                  # every tap of channel c (table rows gg K .. gg K + K)
                gk = gg * g.K
                m = tab + T_M * field + gk * nc if g.use_mask else NULL
                _scatter(gx + c * g.Sp, g.K, np_, nc, gcol + c * g.K * nc, idx + gk * nc,
                         tab + gk * nc, field, m, g.W2)
        if not need_acc:
            continue
        for k in range(g.K):
            gk = gg * g.K + k
            a = acc + 4 * k * nc
            t = tab + gk * nc
            gdy = (goff + (2 * gk) * g.P + p0) if need_off else NULL
            gdx = (goff + (2 * gk + 1) * g.P + p0) if need_off else NULL
            gm = (gmsk + gk * g.P + p0) if need_mask else NULL
            if floating is float:
                cgd_finish_f(gdy, gdx, gm, a, a + nc, a + 2 * nc, a + 3 * nc, t + T_B00 * field,
                             t + T_B01 * field, t + T_B10 * field, t + T_B11 * field,
                             t + T_LY * field, t + T_LX * field, t + T_M * field, np_)
            else:
                cgd_finish_d(gdy, gdx, gm, a, a + nc, a + 2 * nc, a + 3 * nc, t + T_B00 * field,
                             t + T_B01 * field, t + T_B10 * field, t + T_B11 * field,
                             t + T_LY * field, t + T_LX * field, t + T_M * field, np_)


cdef void _chunk_weight(const Geom *g, const floating *x, const floating *gout, Py_ssize_t p0,
                        Py_ssize_t np_, Py_ssize_t nc, const int *idx, const floating *tab,
                        floating *col, floating *gw) noexcept nogil:
    """gw (O, Kg) += gout[:, chunk] @ im2col(x)[chunk]^T per weight group."""
    cdef Py_ssize_t wg
    _im2col(g, x, idx, tab, np_, nc, col)
    for wg in range(g.WG):
        gemm(False, True, <int> g.Og, <int> g.Kg, <int> np_, 1, gout + wg * g.Og * g.P + p0,
             <int> g.P, col + wg * g.Kg * nc, <int> nc, 1, gw + wg * g.Og * g.Kg, <int> g.Kg)


def deform_forward(
    const floating[:, :, ::1] xp,      # IN: (N, C, Sp) padded input
    const floating[:, :, ::1] offset,  # IN: (N, 2 G K, P)
    const floating[:, :, ::1] mask,    # IN: (N, G K, P), or (N, 0, P) for no mask
    const floating[:, ::1] w,          # IN: (O, Cg K)
    const floating[::1] bias,          # IN: (O,), or (0,) for no bias
    floating[:, :, ::1] out,           # OUT: (N, O, P)
    tuple geom,                        # IN: the 14 geometry integers (module docstring)
):
    """out[n] := deformable_conv(x[n]) (+ bias): deformable im2col + gemm per (sample, chunk)."""
    cdef Geom g
    _make_geom(&g, geom, xp.shape[0], xp.shape[1], w.shape[0], mask.shape[1] > 0)
    _check("xp", (xp.shape[0], xp.shape[1], xp.shape[2]), (g.N, g.C, g.Sp))
    _check("offset", (offset.shape[0], offset.shape[1], offset.shape[2]), (g.N, 2 * g.G * g.K, g.P))
    if g.use_mask:
        _check("mask", (mask.shape[0], mask.shape[1], mask.shape[2]), (g.N, g.G * g.K, g.P))
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    _check("out", (out.shape[0], out.shape[1], out.shape[2]), (g.N, g.O, g.P))
    cdef bint has_bias = bias.shape[0] > 0
    if has_bias:
        _check("bias", (bias.shape[0],), (g.O,))
    if g.N == 0 or g.O == 0 or g.P == 0:
        return
    cdef double work = <double> g.N * g.O * g.P * g.Kg / 16
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    cdef Py_ssize_t nc = _chunk(&g, sizeof(floating), g.N, nt)
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    cdef Py_ssize_t items = g.N * nchunks
    if nt > items:
        nt = <int> items
    dt = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] cols = np.empty((nt, g.C * g.K * nc), dtype=dt)
    cdef floating[:, ::1] tabs = np.empty((nt, T_FIELDS * g.G * g.K * nc), dtype=dt)
    cdef int[:, ::1] idxs = np.empty((nt, g.G * g.K * nc + 2 * nc), dtype=np.intc)
    cdef const floating *mptr = &mask[0, 0, 0] if g.use_mask else NULL
    cdef Py_ssize_t it, n, p0, np_, wg, o, p, tid
    cdef floating *col
    cdef floating *tab
    cdef int *idx
    cdef floating *dst
    cdef floating beta
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        col = &cols[tid, 0]
        tab = &tabs[tid, 0]
        idx = &idxs[tid, 0]
        for it in prange(items, schedule="static"):
            n = it // nchunks
            p0 = (it - n * nchunks) * nc
            np_ = min(nc, g.P - p0)
            _table(&g, &offset[n, 0, 0], (mptr + n * g.G * g.K * g.P) if g.use_mask else NULL,
                   p0, np_, nc, idx, tab, idx + g.G * g.K * nc)
            _im2col(&g, &xp[n, 0, 0], idx, tab, np_, nc, col)
            beta = 0
            if has_bias:
                beta = 1
                for o in range(g.O):
                    dst = &out[n, o, p0]
                    for p in range(np_):
                        dst[p] = bias[o]
            for wg in range(g.WG):
                gemm(False, False, <int> g.Og, <int> np_, <int> g.Kg, 1, &w[wg * g.Og, 0],
                     <int> g.Kg, col + wg * g.Kg * nc, <int> nc, beta, &out[n, wg * g.Og, p0],
                     <int> g.P)


def deform_backward(
    const floating[:, :, ::1] xp,      # IN: (N, C, Sp) padded input
    const floating[:, :, ::1] offset,  # IN: (N, 2 G K, P)
    const floating[:, :, ::1] mask,    # IN: (N, G K, P), or (N, 0, P) for no mask
    const floating[:, ::1] w,          # IN: (O, Cg K)
    const floating[:, :, ::1] gout,    # IN: (N, O, P) gradient of the output
    floating[:, :, :, ::1] gx,         # OUT: (N, C, H, W) input gradient, or (0, 0, 0, 0)
    floating[:, :, ::1] goff,          # OUT: (N, 2 G K, P) offset gradient, or (0, 0, 0)
    floating[:, :, ::1] gmask,         # OUT: (N, G K, P) mask gradient, or (0, 0, 0)
    floating[:, ::1] gw,               # OUT: (O, Cg K) weight gradient, or (0, 0)
    tuple geom,                        # IN: the 14 geometry integers (module docstring)
):
    """Gradients of deform_forward; an output given with a zero first dimension is skipped."""
    cdef Geom g
    _make_geom(&g, geom, xp.shape[0], xp.shape[1], w.shape[0], mask.shape[1] > 0)
    _check("xp", (xp.shape[0], xp.shape[1], xp.shape[2]), (g.N, g.C, g.Sp))
    _check("offset", (offset.shape[0], offset.shape[1], offset.shape[2]), (g.N, 2 * g.G * g.K, g.P))
    if g.use_mask:
        _check("mask", (mask.shape[0], mask.shape[1], mask.shape[2]), (g.N, g.G * g.K, g.P))
    _check("w", (w.shape[0], w.shape[1]), (g.O, g.Kg))
    _check("gout", (gout.shape[0], gout.shape[1], gout.shape[2]), (g.N, g.O, g.P))
    cdef bint need_x = gx.shape[0] > 0
    cdef bint need_off = goff.shape[0] > 0
    cdef bint need_mask = gmask.shape[0] > 0
    cdef bint need_w = gw.shape[0] > 0
    if need_x:
        _check("gx", (gx.shape[0], gx.shape[1], gx.shape[2], gx.shape[3]), (g.N, g.C, g.H, g.W))
    if need_off:
        _check("goff", (goff.shape[0], goff.shape[1], goff.shape[2]), (g.N, 2 * g.G * g.K, g.P))
    if need_mask:
        if not g.use_mask:
            raise ValueError("deform kernel: a mask gradient needs a mask")
        _check("gmask", (gmask.shape[0], gmask.shape[1], gmask.shape[2]), (g.N, g.G * g.K, g.P))
    if need_w:
        _check("gw", (gw.shape[0], gw.shape[1]), (g.O, g.Kg))
    cdef Py_ssize_t i, j, n, c, r, q, t
    with nogil:                                 # outputs start at zero
        if need_x and g.N * g.H * g.W > 0:
            memset(&gx[0, 0, 0, 0], 0, g.N * g.C * g.H * g.W * sizeof(floating))
        if need_off and g.N * g.P > 0:
            memset(&goff[0, 0, 0], 0, g.N * 2 * g.G * g.K * g.P * sizeof(floating))
        if need_mask and g.N * g.P > 0:
            memset(&gmask[0, 0, 0], 0, g.N * g.G * g.K * g.P * sizeof(floating))
        if need_w and g.O > 0:
            memset(&gw[0, 0], 0, g.O * g.Kg * sizeof(floating))
    if g.N == 0 or g.P == 0 or g.O == 0 or not (need_x or need_off or need_mask or need_w):
        return
    cdef double work = <double> g.N * g.O * g.P * g.Kg / 16
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    cdef bint per_sample = g.N >= nt         # one sample per work item: scatter without races
    cdef Py_ssize_t nc = _chunk(&g, sizeof(floating), g.N, nt)
    cdef Py_ssize_t nchunks = (g.P + nc - 1) // nc
    cdef Py_ssize_t items = g.N if per_sample else g.N * nchunks
    if nt > items:
        nt = <int> items
    dt = np.float32 if floating is float else np.float64
    cdef bint need_in = need_x or need_off or need_mask
    cdef floating[:, ::1] cols = np.empty((nt, g.C * g.K * nc if need_w else 1), dtype=dt)
    cdef floating[:, ::1] gcols = np.empty((nt, g.C * g.K * nc if need_in else 1), dtype=dt)
    cdef floating[:, ::1] accs = np.empty((nt, 4 * g.K * nc if need_in else 1), dtype=dt)
    cdef floating[:, ::1] tabs = np.empty((nt, T_FIELDS * g.G * g.K * nc), dtype=dt)
    cdef int[:, ::1] idxs = np.empty((nt, g.G * g.K * nc + 2 * nc), dtype=np.intc)
    # padded input-gradient planes: per thread one sample (per_sample), else every sample
    cdef floating[:, ::1] gxps = np.zeros(
        (nt, (g.C * g.Sp if per_sample else g.N * g.C * g.Sp) if need_x else 1), dtype=dt)
    cdef floating[:, ::1] gws = np.zeros((nt, g.O * g.Kg if need_w else 1), dtype=dt)
    cdef const floating *mptr = &mask[0, 0, 0] if g.use_mask else NULL
    cdef floating *goff_ptr = &goff[0, 0, 0] if need_off else NULL
    cdef floating *gmask_ptr = &gmask[0, 0, 0] if need_mask else NULL
    cdef Py_ssize_t it, p0, np_, tid, ch, c0, c1, gkp = g.G * g.K * g.P
    cdef floating *col
    cdef floating *gcol
    cdef floating *acc
    cdef floating *tab
    cdef int *idx
    cdef floating *gxp
    cdef floating *gxn
    cdef floating s
    with nogil, parallel(num_threads=nt):
        tid = threadid()
        col = &cols[tid, 0]
        gcol = &gcols[tid, 0]
        acc = &accs[tid, 0]
        tab = &tabs[tid, 0]
        idx = &idxs[tid, 0]
        gxp = &gxps[tid, 0]
        for it in prange(items, schedule="static"):
            if per_sample:
                n = it
                c0 = 0
                c1 = nchunks
            else:
                n = it // nchunks
                c0 = it - n * nchunks
                c1 = c0 + 1
            if per_sample and need_x:
                memset(gxp, 0, g.C * g.Sp * sizeof(floating))
            for ch in range(c0, c1):
                p0 = ch * nc
                np_ = min(nc, g.P - p0)
                _table(&g, &offset[n, 0, 0], (mptr + n * gkp) if g.use_mask else NULL,
                       p0, np_, nc, idx, tab, idx + g.G * g.K * nc)
                if need_w:
                    _chunk_weight(&g, &xp[n, 0, 0], &gout[n, 0, 0], p0, np_, nc, idx, tab, col,
                                  &gws[tid, 0])
                if need_in:
                    _chunk_backward(&g, &xp[n, 0, 0], &w[0, 0], &gout[n, 0, 0], p0, np_, nc,
                                    idx, tab, gcol, acc,
                                    gxp if per_sample else gxp + n * g.C * g.Sp,
                                    (goff_ptr + n * 2 * gkp) if need_off else NULL,
                                    (gmask_ptr + n * gkp) if need_mask else NULL,
                                    need_x, need_off, need_mask)
            if per_sample and need_x:          # crop the padded plane into gx[n]
                for c in range(g.C):
                    for r in range(g.H):
                        if g.W > 0:
                            memcpy(&gx[n, c, r, 0], gxp + c * g.Sp + (r + 1) * g.W2 + 1,
                                   g.W * sizeof(floating))
    if need_x and not per_sample:            # sum the threads' planes in thread order
        with nogil:
            for i in prange(g.N * g.C, schedule="static", num_threads=nt):
                n = i // g.C
                c = i - n * g.C
                for r in range(g.H):
                    for q in range(g.W):
                        s = 0
                        for t in range(nt):
                            s = s + gxps[t, i * g.Sp + (r + 1) * g.W2 + q + 1]
                        gx[n, c, r, q] = s
    if need_w:                                 # sum the per-thread partials in thread order
        with nogil:
            for i in prange(g.O, schedule="static", num_threads=nt):
                for j in range(g.Kg):
                    s = 0
                    for t in range(nt):
                        s = s + gws[t, i * g.Kg + j]
                    gw[i, j] = s
