"""Normalization kernels (batch / layer / group / instance / RMS norm), float32 / float64.

Every kernel works on C-contiguous arrays whose shapes the Python layer (``ops/norm.py``) has
checked; the checks below only guard the memory accesses.

Layouts
-------
- batch norm: ``x`` is ``(N, C, L)`` (L = product of the spatial sizes, 1 for ``(N, C)``
  input); statistics per channel over ``N * L`` elements.
- layer / RMS norm: ``x`` is ``(R, D)``; statistics per row, affine parameters per column.
- group norm: ``x`` is ``(N, C, L)`` with ``G`` groups of ``C / G`` channels; statistics per
  ``(n, g)`` over one contiguous run of ``(C / G) * L`` elements, affine parameters per channel.
  Instance norm is group norm with ``G = C``.

Numerics
--------
Statistics are accumulated in double for float32 and float64 alike, in ONE pass: the sums of
``x - s`` and ``(x - s)^2`` with ``s`` the first element of the reduced set (a shift that keeps
the variance exact for data far from zero, e.g. ``1000 + randn``). Means and inverse standard
deviations are returned in double. The normalisation ``(x - mean) * a + b`` is evaluated in
double and rounded once to the output type. Backward kernels compute the per-channel (per-row,
per-group) sums ``sum(g)`` and ``sum(g * (x - mean))`` in double, from which both the input
gradient and the weight / bias gradients follow.

Threads
-------
Each kernel is a ``prange`` over independent units; a unit's sums are accumulated by one thread
in a fixed order (16 fixed lanes, then a fixed pairwise combination), so results are bitwise
identical for any thread count and from run to run:

- batch norm, runs of L >= 32: the units are the ``(n, c)`` runs of L contiguous elements, so
  each thread streams through one contiguous range of memory (a prange over channels alone
  reads N short runs per channel at a large stride and measured ~2x slower). Per-run sums go to
  an ``(N, C)`` table that is added over n in order for each channel; then a second parallel
  pass over the runs normalises (forward) or writes the input gradient (backward).
- batch norm, L < 32 (e.g. ``(N, C)`` input): blocks of channels, each summed column by column
  over the N rows (per-column accumulators), then normalised, by one thread.
- layer / RMS norm: rows; group / instance norm: ``(n, group)`` pairs.

The only reduction across units (layer-norm weight / bias gradients) uses tiles of columns or
fixed chunks of rows whose partial sums are added in order, again independent of the thread
count.

The per-unit loops are C functions (below), compiled for AVX-512, AVX2 + FMA and baseline
x86-64 with the best picked at load time (gcc ``target_clones``), like ``_vmath.h``.
"""

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.math cimport sqrt

from ._parallel cimport n_threads_for

cdef extern from *:
    """
    #include <stddef.h>
    #include <math.h>
    #include <string.h>

    #if !defined(NRM_CLONES) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
        && defined(__linux__) && defined(__has_attribute)
    #  if __has_attribute(target_clones)
    #    define NRM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #  endif
    #endif
    #ifndef NRM_CLONES
    #  define NRM_CLONES
    #endif

    #if defined(__GNUC__)
    #  define NRM_INLINE static inline __attribute__((always_inline))
    #else
    #  define NRM_INLINE static inline
    #endif

    #define NRM_LANES 16

    /* Lane sums: out[0] += sum(u_j), out[1] += sum(v_j) over n elements, accumulated in
       double in 16 fixed lanes (two 8-wide vectors), then combined pairwise in a fixed order;
       the tail (< 16 elements) is summed separately and added last. The order is fixed by the
       code, so no reassociation is needed for the compiler to keep the lanes in registers. */
    #if defined(__GNUC__) || defined(__clang__)
    #  if defined(__GNUC__) && !defined(__clang__)
    #    pragma GCC diagnostic ignored "-Wpsabi"  /* the vector helpers are always inlined */
    #  endif
    typedef double nrm_vd __attribute__((vector_size(64)));
    typedef float nrm_vf __attribute__((vector_size(32)));
    NRM_INLINE nrm_vd nrm_load_f(const float *p)
    {
        nrm_vf v;
        memcpy(&v, p, sizeof v);
        return __builtin_convertvector(v, nrm_vd);
    }
    NRM_INLINE nrm_vd nrm_load_d(const double *p)
    {
        nrm_vd v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    NRM_INLINE double nrm_vsum(nrm_vd a)
    {
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    }
    #  define NRM_LANE_SUMS(S, n, out, VBODY, BODY)                                           \\
        do {                                                                               \\
            nrm_vd a0_ = {0}, a1_ = {0}, b0_ = {0}, b1_ = {0};                             \\
            ptrdiff_t i_ = 0;                                                              \\
            for (; i_ + 16 <= (n); i_ += 16) {                                             \\
                nrm_vd u0, v0, u1, v1;                                                     \\
                { const ptrdiff_t j = i_; nrm_vd u, v; VBODY u0 = u; v0 = v; }             \\
                { const ptrdiff_t j = i_ + 8; nrm_vd u, v; VBODY u1 = u; v1 = v; }         \\
                a0_ += u0; a1_ += u1; b0_ += v0; b1_ += v1;                                \\
            }                                                                              \\
            double ta_ = 0.0, tb_ = 0.0;                                                   \\
            for (; i_ < (n); i_++) {                                                       \\
                const ptrdiff_t j = i_;                                                    \\
                double u, v;                                                               \\
                BODY                                                                       \\
                ta_ += u;                                                                  \\
                tb_ += v;                                                                  \\
            }                                                                              \\
            (out)[0] += nrm_vsum(a0_ + a1_) + ta_;                                         \\
            (out)[1] += nrm_vsum(b0_ + b1_) + tb_;                                         \\
        } while (0)
    #else
    #  define NRM_LANE_SUMS(S, n, out, VBODY, BODY)                                           \\
        do {                                                                               \\
            double ta_ = 0.0, tb_ = 0.0;                                                   \\
            for (ptrdiff_t j = 0; j < (n); j++) {                                          \\
                double u, v;                                                               \\
                BODY                                                                       \\
                ta_ += u;                                                                  \\
                tb_ += v;                                                                  \\
            }                                                                              \\
            (out)[0] += ta_;                                                               \\
            (out)[1] += tb_;                                                               \\
        } while (0)
    #endif

    #define NRM_DEFINE(T, S)                                                                  \\
    /* sums of (x - s) and (x - s)^2 */                                                       \\
    NRM_INLINE void nrm_moments_##S(const T *restrict x, ptrdiff_t n, double s,            \\
                                       double *out)                                           \\
    {                                                                                         \\
        NRM_LANE_SUMS(S, n, out,                                                              \\
                      { nrm_vd d = nrm_load_##S(x + j) - s; u = d; v = d * d; },              \\
                      { double d = (double)x[j] - s; u = d; v = d * d; });                    \\
    }                                                                                         \\
    /* sums of g and g * (x - m) */                                                           \\
    NRM_INLINE void nrm_dot_##S(const T *restrict g, const T *restrict x, ptrdiff_t n,     \\
                                   double m, double *out)                                     \\
    {                                                                                         \\
        NRM_LANE_SUMS(S, n, out,                                                              \\
                      { nrm_vd gj = nrm_load_##S(g + j); u = gj;                              \\
                        v = gj * (nrm_load_##S(x + j) - m); },                                \\
                      { double gj = (double)g[j]; u = gj; v = gj * ((double)x[j] - m); });    \\
    }                                                                                         \\
    /* sums of g * w and g * w * (x - m) */                                                   \\
    NRM_INLINE void nrm_dotw_##S(const T *restrict g, const T *restrict x,                 \\
                                    const T *restrict w, ptrdiff_t n, double m, double *out)  \\
    {                                                                                         \\
        NRM_LANE_SUMS(S, n, out,                                                              \\
                      { nrm_vd gj = nrm_load_##S(g + j) * nrm_load_##S(w + j); u = gj;        \\
                        v = gj * (nrm_load_##S(x + j) - m); },                                \\
                      { double gj = (double)g[j] * (double)w[j];                              \\
                        u = gj; v = gj * ((double)x[j] - m); });                              \\
    }                                                                                         \\
    /* y = (x - m) * a + b */                                                                 \\
    NRM_INLINE void nrm_affine_##S(const T *restrict x, T *restrict y, ptrdiff_t n,        \\
                                      double m, double a, double b)                           \\
    {                                                                                         \\
        for (ptrdiff_t j = 0; j < n; j++)                                                     \\
            y[j] = (T)(((double)x[j] - m) * a + b);                                           \\
    }                                                                                         \\
    /* y = ((x - m) * r) * w + b, w and b per element (either may be NULL: 1 and 0) */       \\
    NRM_INLINE void nrm_affinew_##S(const T *restrict x, T *restrict y,                    \\
                                       const T *restrict w, const T *restrict b,              \\
                                       ptrdiff_t n, double m, double r)                       \\
    {                                                                                         \\
        if (w && b) {                                                                         \\
            for (ptrdiff_t j = 0; j < n; j++)                                                 \\
                y[j] = (T)((((double)x[j] - m) * r) * (double)w[j] + (double)b[j]);           \\
        } else if (w) {                                                                       \\
            for (ptrdiff_t j = 0; j < n; j++)                                                 \\
                y[j] = (T)((((double)x[j] - m) * r) * (double)w[j]);                          \\
        } else if (b) {                                                                       \\
            for (ptrdiff_t j = 0; j < n; j++)                                                 \\
                y[j] = (T)(((double)x[j] - m) * r + (double)b[j]);                            \\
        } else {                                                                              \\
            for (ptrdiff_t j = 0; j < n; j++)                                                 \\
                y[j] = (T)(((double)x[j] - m) * r);                                           \\
        }                                                                                     \\
    }                                                                                         \\
    /* dx = al * g + be * (x - m) + ga */                                                     \\
    NRM_INLINE void nrm_bwd_##S(const T *restrict g, const T *restrict x, T *restrict dx,  \\
                                   ptrdiff_t n, double al, double be, double m, double ga)    \\
    {                                                                                         \\
        for (ptrdiff_t j = 0; j < n; j++)                                                     \\
            dx[j] = (T)(al * (double)g[j] + (be * ((double)x[j] - m) + ga));                  \\
    }                                                                                         \\
    /* dx = al * g * w + be * (x - m) + ga */                                                 \\
    NRM_INLINE void nrm_bwdw_##S(const T *restrict g, const T *restrict x,                 \\
                                    const T *restrict w, T *restrict dx, ptrdiff_t n,         \\
                                    double al, double be, double m, double ga)                \\
    {                                                                                         \\
        for (ptrdiff_t j = 0; j < n; j++)                                                     \\
            dx[j] = (T)(al * ((double)g[j] * (double)w[j]) + (be * ((double)x[j] - m) + ga)); \\
    }                                                                                         \\
                                                                                              \\
    /* ---- batch norm, one (n, c) run of L contiguous elements ---- */                     \\
    NRM_CLONES static void nrm_run_moments_##S(const T *x, ptrdiff_t L, double s, double *out) \\
    {                                                                                         \\
        out[0] = 0.0;                                                                         \\
        out[1] = 0.0;                                                                         \\
        nrm_moments_##S(x, L, s, out);                                                        \\
    }                                                                                         \\
    NRM_CLONES static void nrm_run_dot_##S(const T *g, const T *x, ptrdiff_t L, double m,      \\
                                           double *out)                                       \\
    {                                                                                         \\
        out[0] = 0.0;                                                                         \\
        out[1] = 0.0;                                                                         \\
        nrm_dot_##S(g, x, L, m, out);                                                         \\
    }                                                                                         \\
    NRM_CLONES static void nrm_run_affine_##S(const T *x, T *y, ptrdiff_t L, double m,         \\
                                              double a, double b)                             \\
    {                                                                                         \\
        nrm_affine_##S(x, y, L, m, a, b);                                                     \\
    }                                                                                         \\
    NRM_CLONES static void nrm_run_bwd_##S(const T *g, const T *x, T *dx, ptrdiff_t L,         \\
                                           double al, double be, double m, double ga)         \\
    {                                                                                         \\
        nrm_bwd_##S(g, x, dx, L, al, be, m, ga);                                              \\
    }                                                                                         \\
    /* ---- batch norm, a block of nc channels with small L: per-column accumulators ---- */ \\
    /* x points at x[0, c0, 0]; K = nc * L columns; scratch holds 6 * K doubles */            \\
    NRM_CLONES static void nrm_bn_fwd_block_##S(                                              \\
        const T *x, T *y, ptrdiff_t N, ptrdiff_t rs, ptrdiff_t nc, ptrdiff_t L, int training, \\
        double eps, const T *w, const T *b, double *mean, double *var, double *scratch)       \\
    {                                                                                         \\
        ptrdiff_t K = nc * L;                                                                 \\
        double *s1 = scratch, *s2 = scratch + K, *cm = scratch + 2 * K;                       \\
        double *ca = scratch + 3 * K, *cb = scratch + 4 * K;                                  \\
        if (training) {                                                                       \\
            for (ptrdiff_t c = 0; c < nc; c++)                                                \\
                for (ptrdiff_t l = 0; l < L; l++) {                                           \\
                    cm[c * L + l] = (double)x[c * L];                                         \\
                    s1[c * L + l] = 0.0;                                                      \\
                    s2[c * L + l] = 0.0;                                                      \\
                }                                                                             \\
            for (ptrdiff_t n = 0; n < N; n++) {                                               \\
                const T *restrict xr = x + n * rs;                                            \\
                for (ptrdiff_t k = 0; k < K; k++) {                                           \\
                    double d = (double)xr[k] - cm[k];                                         \\
                    s1[k] += d;                                                               \\
                    s2[k] += d * d;                                                           \\
                }                                                                             \\
            }                                                                                 \\
            double cnt = (double)N * (double)L;                                               \\
            for (ptrdiff_t c = 0; c < nc; c++) {                                              \\
                double a1 = 0.0, a2 = 0.0;                                                    \\
                for (ptrdiff_t l = 0; l < L; l++) {                                           \\
                    a1 += s1[c * L + l];                                                      \\
                    a2 += s2[c * L + l];                                                      \\
                }                                                                             \\
                double d = a1 / cnt, v = a2 / cnt - d * d;                                    \\
                mean[c] = cm[c * L] + d;                                                      \\
                var[c] = v < 0.0 ? 0.0 : v;                                                   \\
            }                                                                                 \\
        }                                                                                     \\
        for (ptrdiff_t c = 0; c < nc; c++) {                                                  \\
            double a = (double)w[c] / sqrt(var[c] + eps);                                     \\
            for (ptrdiff_t l = 0; l < L; l++) {                                               \\
                cm[c * L + l] = mean[c];                                                      \\
                ca[c * L + l] = a;                                                            \\
                cb[c * L + l] = (double)b[c];                                                 \\
            }                                                                                 \\
        }                                                                                     \\
        for (ptrdiff_t n = 0; n < N; n++) {                                                   \\
            const T *restrict xr = x + n * rs;                                                \\
            T *restrict yr = y + n * rs;                                                      \\
            for (ptrdiff_t k = 0; k < K; k++)                                                 \\
                yr[k] = (T)(((double)xr[k] - cm[k]) * ca[k] + cb[k]);                         \\
        }                                                                                     \\
    }                                                                                         \\
    NRM_CLONES static void nrm_bn_bwd_block_##S(                                              \\
        const T *g, const T *x, T *dx, ptrdiff_t N, ptrdiff_t rs, ptrdiff_t nc, ptrdiff_t L,  \\
        int training, int need_dx, const T *w, const double *mean, const double *invstd,      \\
        double *sg, double *sgx, double *scratch)                                             \\
    {                                                                                         \\
        ptrdiff_t K = nc * L;                                                                 \\
        double *s1 = scratch, *s2 = scratch + K, *cm = scratch + 2 * K;                       \\
        double *cal = scratch + 3 * K, *cbe = scratch + 4 * K, *cga = scratch + 5 * K;        \\
        for (ptrdiff_t c = 0; c < nc; c++)                                                    \\
            for (ptrdiff_t l = 0; l < L; l++) {                                               \\
                cm[c * L + l] = mean[c];                                                      \\
                s1[c * L + l] = 0.0;                                                          \\
                s2[c * L + l] = 0.0;                                                          \\
            }                                                                                 \\
        for (ptrdiff_t n = 0; n < N; n++) {                                                   \\
            const T *restrict gr = g + n * rs, *restrict xr = x + n * rs;                     \\
            for (ptrdiff_t k = 0; k < K; k++) {                                               \\
                double gk = (double)gr[k];                                                    \\
                s1[k] += gk;                                                                  \\
                s2[k] += gk * ((double)xr[k] - cm[k]);                                        \\
            }                                                                                 \\
        }                                                                                     \\
        double cnt = (double)N * (double)L;                                                   \\
        for (ptrdiff_t c = 0; c < nc; c++) {                                                  \\
            double a1 = 0.0, a2 = 0.0;                                                        \\
            for (ptrdiff_t l = 0; l < L; l++) {                                               \\
                a1 += s1[c * L + l];                                                          \\
                a2 += s2[c * L + l];                                                          \\
            }                                                                                 \\
            sg[c] = a1;                                                                       \\
            sgx[c] = a2;                                                                      \\
            double r = invstd[c], al = (double)w[c] * r, be = 0.0, ga = 0.0;                  \\
            if (training) {                                                                   \\
                be = -al * r * r * a2 / cnt;                                                  \\
                ga = -al * a1 / cnt;                                                          \\
            }                                                                                 \\
            for (ptrdiff_t l = 0; l < L; l++) {                                               \\
                cal[c * L + l] = al;                                                          \\
                cbe[c * L + l] = be;                                                          \\
                cga[c * L + l] = ga;                                                          \\
            }                                                                                 \\
        }                                                                                     \\
        if (!need_dx)                                                                         \\
            return;                                                                           \\
        for (ptrdiff_t n = 0; n < N; n++) {                                                   \\
            const T *restrict gr = g + n * rs, *restrict xr = x + n * rs;                     \\
            T *restrict dr = dx + n * rs;                                                     \\
            for (ptrdiff_t k = 0; k < K; k++)                                                 \\
                dr[k] = (T)(cal[k] * (double)gr[k] + (cbe[k] * ((double)xr[k] - cm[k]) + cga[k])); \\
        }                                                                                     \\
    }                                                                                         \\
                                                                                              \\
    /* ---- layer / RMS norm, one row of D ---- */                                            \\
    NRM_CLONES static void nrm_ln_fwd_row_##S(                                                \\
        const T *x, T *y, ptrdiff_t D, const T *w, const T *b, double eps, int rms,           \\
        double *mean, double *rstd)                                                           \\
    {                                                                                         \\
        double s = rms ? 0.0 : (double)x[0], acc[2] = {0.0, 0.0};                             \\
        nrm_moments_##S(x, D, s, acc);                                                        \\
        double m, v;                                                                          \\
        if (rms) {                                                                            \\
            m = 0.0;                                                                          \\
            v = acc[1] / (double)D;                                                           \\
        } else {                                                                              \\
            double d = acc[0] / (double)D;                                                    \\
            m = s + d;                                                                        \\
            v = acc[1] / (double)D - d * d;                                                   \\
            v = v < 0.0 ? 0.0 : v;                                                            \\
        }                                                                                     \\
        double r = 1.0 / sqrt(v + eps);                                                       \\
        *mean = m;                                                                            \\
        *rstd = r;                                                                            \\
        nrm_affinew_##S(x, y, w, b, D, m, r);                                                 \\
    }                                                                                         \\
    /* Long rows, pass 1, a tile of nr rows (stride rs) by ncol columns (w, aw, ab point at   \\
       the tile's first column; w may be NULL = 1): per row, if part, the partial sums        \\
       part[i * ps] = sum(g w), part[i * ps + 1] = sum(g w (x - m)) over the tile's columns;  \\
       if aw, aw[k] += g (x - m) r and ab[k] += g (rows in order). */                         \\
    NRM_CLONES static void nrm_ln_tile_sums_##S(                                              \\
        const T *g, const T *x, const T *w, ptrdiff_t nr, ptrdiff_t rs, ptrdiff_t ncol,       \\
        const double *mean, const double *rstd, double *part, ptrdiff_t ps,                   \\
        double *restrict aw, double *restrict ab)                                             \\
    {                                                                                         \\
        for (ptrdiff_t i = 0; i < nr; i++) {                                                  \\
            const T *restrict gr = g + i * rs, *restrict xr = x + i * rs;                     \\
            double m = mean[i], r = rstd[i];                                                  \\
            if (part) {                                                                       \\
                double *o = part + i * ps;                                                    \\
                o[0] = 0.0;                                                                   \\
                o[1] = 0.0;                                                                   \\
                if (w)                                                                        \\
                    nrm_dotw_##S(gr, xr, w, ncol, m, o);                                      \\
                else                                                                          \\
                    nrm_dot_##S(gr, xr, ncol, m, o);                                          \\
            }                                                                                 \\
            if (aw) {                                                                         \\
                for (ptrdiff_t k = 0; k < ncol; k++) {                                        \\
                    double gk = (double)gr[k];                                                \\
                    aw[k] += gk * (((double)xr[k] - m) * r);                                  \\
                    ab[k] += gk;                                                              \\
                }                                                                             \\
            }                                                                                 \\
        }                                                                                     \\
    }                                                                                         \\
    /* Long rows, pass 2, one row: dx = r g w + be (x - m) + ga */                            \\
    NRM_CLONES static void nrm_ln_bwd_row_##S(const T *g, const T *x, const T *w, T *dx,       \\
                                              ptrdiff_t D, double r, double be, double m,     \\
                                              double ga)                                      \\
    {                                                                                         \\
        if (w)                                                                                \\
            nrm_bwdw_##S(g, x, w, dx, D, r, be, m, ga);                                       \\
        else                                                                                  \\
            nrm_bwd_##S(g, x, dx, D, r, be, m, ga);                                           \\
    }                                                                                         \\
    /* Short rows, one pass over nr rows of D: row sums, then (if dx) the input gradient,     \\
       then (if aw) aw[k] += g (x - m) r, ab[k] += g. */                                      \\
    NRM_CLONES static void nrm_ln_bwd_rows_##S(                                               \\
        const T *g, const T *x, const T *w, T *dx, ptrdiff_t nr, ptrdiff_t D,                 \\
        const double *mean, const double *rstd, int rms, double *restrict aw,                 \\
        double *restrict ab)                                                                  \\
    {                                                                                         \\
        for (ptrdiff_t i = 0; i < nr; i++) {                                                  \\
            const T *restrict gr = g + i * D, *restrict xr = x + i * D;                       \\
            double m = mean[i], r = rstd[i];                                                  \\
            if (dx) {                                                                         \\
                double acc[2] = {0.0, 0.0};                                                   \\
                if (w)                                                                        \\
                    nrm_dotw_##S(gr, xr, w, D, m, acc);                                       \\
                else                                                                          \\
                    nrm_dot_##S(gr, xr, D, m, acc);                                           \\
                double be = -r * r * r * acc[1] / (double)D;                                  \\
                double ga = rms ? 0.0 : -r * acc[0] / (double)D;                              \\
                if (w)                                                                        \\
                    nrm_bwdw_##S(gr, xr, w, dx + i * D, D, r, be, m, ga);                     \\
                else                                                                          \\
                    nrm_bwd_##S(gr, xr, dx + i * D, D, r, be, m, ga);                         \\
            }                                                                                 \\
            if (aw) {                                                                         \\
                for (ptrdiff_t k = 0; k < D; k++) {                                           \\
                    double gk = (double)gr[k];                                                \\
                    aw[k] += gk * (((double)xr[k] - m) * r);                                  \\
                    ab[k] += gk;                                                              \\
                }                                                                             \\
            }                                                                                 \\
        }                                                                                     \\
    }                                                                                         \\
                                                                                              \\
    /* ---- group norm, one group: Cg channels of L contiguous elements ---- */               \\
    NRM_CLONES static void nrm_gn_fwd_group_##S(                                              \\
        const T *x, T *y, ptrdiff_t Cg, ptrdiff_t L, const T *w, const T *b, double eps,      \\
        double *mean, double *var)                                                            \\
    {                                                                                         \\
        ptrdiff_t D = Cg * L;                                                                 \\
        double s = (double)x[0], acc[2] = {0.0, 0.0};                                         \\
        nrm_moments_##S(x, D, s, acc);                                                        \\
        double d = acc[0] / (double)D, v = acc[1] / (double)D - d * d;                        \\
        v = v < 0.0 ? 0.0 : v;                                                                \\
        double m = s + d, r = 1.0 / sqrt(v + eps);                                            \\
        *mean = m;                                                                            \\
        *var = v;                                                                             \\
        for (ptrdiff_t c = 0; c < Cg; c++)                                                    \\
            nrm_affine_##S(x + c * L, y + c * L, L, m, r * (double)w[c], (double)b[c]);       \\
    }                                                                                         \\
    NRM_CLONES static void nrm_gn_bwd_group_##S(                                              \\
        const T *g, const T *x, T *dx, ptrdiff_t Cg, ptrdiff_t L, const T *w, double m,       \\
        double r, int need_dx, double *sg, double *sgx)                                       \\
    {                                                                                         \\
        double s1 = 0.0, s2 = 0.0;                                                            \\
        for (ptrdiff_t c = 0; c < Cg; c++) {                                                  \\
            double acc[2] = {0.0, 0.0};                                                       \\
            nrm_dot_##S(g + c * L, x + c * L, L, m, acc);                                     \\
            sg[c] = acc[0];                                                                   \\
            sgx[c] = acc[1];                                                                  \\
            s1 += (double)w[c] * acc[0];                                                      \\
            s2 += (double)w[c] * acc[1];                                                      \\
        }                                                                                     \\
        if (!need_dx)                                                                         \\
            return;                                                                           \\
        double D = (double)Cg * (double)L;                                                    \\
        double be = -r * r * r * s2 / D, ga = -r * s1 / D;                                    \\
        for (ptrdiff_t c = 0; c < Cg; c++)                                                    \\
            nrm_bwd_##S(g + c * L, x + c * L, dx + c * L, L, r * (double)w[c], be, m, ga);    \\
    }

    NRM_DEFINE(float, f)
    NRM_DEFINE(double, d)
    """
    void nrm_run_moments_f(const float *x, Py_ssize_t L, double s, double *out) nogil
    void nrm_run_moments_d(const double *x, Py_ssize_t L, double s, double *out) nogil
    void nrm_run_dot_f(const float *g, const float *x, Py_ssize_t L, double m, double *out) nogil
    void nrm_run_dot_d(const double *g, const double *x, Py_ssize_t L, double m, double *out) nogil
    void nrm_run_affine_f(const float *x, float *y, Py_ssize_t L, double m, double a, double b) nogil
    void nrm_run_affine_d(const double *x, double *y, Py_ssize_t L, double m, double a,
                          double b) nogil
    void nrm_run_bwd_f(const float *g, const float *x, float *dx, Py_ssize_t L, double al,
                       double be, double m, double ga) nogil
    void nrm_run_bwd_d(const double *g, const double *x, double *dx, Py_ssize_t L, double al,
                       double be, double m, double ga) nogil
    void nrm_bn_fwd_block_f(const float *x, float *y, Py_ssize_t N, Py_ssize_t rs, Py_ssize_t nc,
                            Py_ssize_t L, int training, double eps, const float *w, const float *b,
                            double *mean, double *var, double *scratch) nogil
    void nrm_bn_fwd_block_d(const double *x, double *y, Py_ssize_t N, Py_ssize_t rs, Py_ssize_t nc,
                            Py_ssize_t L, int training, double eps, const double *w,
                            const double *b, double *mean, double *var, double *scratch) nogil
    void nrm_bn_bwd_block_f(const float *g, const float *x, float *dx, Py_ssize_t N, Py_ssize_t rs,
                            Py_ssize_t nc, Py_ssize_t L, int training, int need_dx, const float *w,
                            const double *mean, const double *invstd, double *sg, double *sgx,
                            double *scratch) nogil
    void nrm_bn_bwd_block_d(const double *g, const double *x, double *dx, Py_ssize_t N,
                            Py_ssize_t rs, Py_ssize_t nc, Py_ssize_t L, int training, int need_dx,
                            const double *w, const double *mean, const double *invstd,
                            double *sg, double *sgx, double *scratch) nogil
    void nrm_ln_fwd_row_f(const float *x, float *y, Py_ssize_t D, const float *w, const float *b,
                          double eps, int rms, double *mean, double *rstd) nogil
    void nrm_ln_fwd_row_d(const double *x, double *y, Py_ssize_t D, const double *w,
                          const double *b, double eps, int rms, double *mean, double *rstd) nogil
    void nrm_ln_tile_sums_f(const float *g, const float *x, const float *w, Py_ssize_t nr,
                            Py_ssize_t rs, Py_ssize_t ncol, const double *mean, const double *rstd,
                            double *part, Py_ssize_t ps, double *aw, double *ab) nogil
    void nrm_ln_tile_sums_d(const double *g, const double *x, const double *w, Py_ssize_t nr,
                            Py_ssize_t rs, Py_ssize_t ncol, const double *mean, const double *rstd,
                            double *part, Py_ssize_t ps, double *aw, double *ab) nogil
    void nrm_ln_bwd_row_f(const float *g, const float *x, const float *w, float *dx, Py_ssize_t D,
                          double r, double be, double m, double ga) nogil
    void nrm_ln_bwd_row_d(const double *g, const double *x, const double *w, double *dx,
                          Py_ssize_t D, double r, double be, double m, double ga) nogil
    void nrm_ln_bwd_rows_f(const float *g, const float *x, const float *w, float *dx, Py_ssize_t nr,
                           Py_ssize_t D, const double *mean, const double *rstd, int rms,
                           double *aw, double *ab) nogil
    void nrm_ln_bwd_rows_d(const double *g, const double *x, const double *w, double *dx,
                           Py_ssize_t nr, Py_ssize_t D, const double *mean, const double *rstd,
                           int rms, double *aw, double *ab) nogil
    void nrm_gn_fwd_group_f(const float *x, float *y, Py_ssize_t Cg, Py_ssize_t L, const float *w,
                            const float *b, double eps, double *mean, double *var) nogil
    void nrm_gn_fwd_group_d(const double *x, double *y, Py_ssize_t Cg, Py_ssize_t L,
                            const double *w, const double *b, double eps, double *mean,
                            double *var) nogil
    void nrm_gn_bwd_group_f(const float *g, const float *x, float *dx, Py_ssize_t Cg, Py_ssize_t L,
                            const float *w, double m, double r, int need_dx, double *sg,
                            double *sgx) nogil
    void nrm_gn_bwd_group_d(const double *g, const double *x, double *dx, Py_ssize_t Cg,
                            Py_ssize_t L, const double *w, double m, double r, int need_dx,
                            double *sg, double *sgx) nogil


# Batch norm uses per-channel register accumulators when a channel's runs are at least this
# long, else blocks of channels with per-column accumulators (e.g. (N, C) input, L = 1).
cdef enum:
    BN_MIN_RUN = 32           # batch norm: runs at least this long are units of the run path
    BN_BLOCK_COLS = 2048      # columns (channels * L) per block in the block path
    LN_COL_BLOCK = 256        # minimum columns per tile of the layer-norm backward (long rows)
    LN_MAX_COL_BLOCK = 8192   # maximum columns per tile
    LN_MAX_CHUNKS = 64        # row chunks (tiles) of the layer-norm backward (short rows)
    LN_PARTIAL_MAX_D = 4096   # rows up to this length use row-chunk partials, longer ones column blocks


cdef inline Py_ssize_t _work(Py_ssize_t elements) noexcept nogil:
    """Work count for n_threads_for: a normalisation pass costs ~1/4 of an exp per element."""
    return elements // 4


cdef int _check(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"norm kernel: {what}")
    return 0


# ---------------------------------------------------------------------------------------------
# Batch norm

def batch_norm_forward(
    const floating[:, :, ::1] x,     # IN: (N, C, L)
    const floating[::1] weight,      # IN: (C,) (ones when the op has no weight)
    const floating[::1] bias,        # IN: (C,) (zeros when the op has no bias)
    double[::1] mean,                # OUT if training, else IN: per-channel mean
    double[::1] var,                 # OUT if training, else IN: per-channel biased variance
    bint training,
    double eps,
    floating[:, :, ::1] y,           # OUT: (N, C, L)
):
    """y := (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c].

    With ``training`` the batch statistics over (N, L) are computed (one pass, double) and
    written to ``mean`` / ``var`` first; N * L must then be positive.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t i, n, c, blk, nblk, nc, c0, rs = C * L
    cdef double *scratch
    cdef double *part
    cdef double *coef
    cdef double cnt, d, v, a1, a2
    cdef int nt = n_threads_for(_work(N * C * L))
    _check(y.shape[0] == N and y.shape[1] == C and y.shape[2] == L, "y shape")
    _check(weight.shape[0] == C and bias.shape[0] == C and mean.shape[0] == C
           and var.shape[0] == C, "per-channel lengths")
    if N * C * L == 0:
        return
    if L < BN_MIN_RUN:
        nc = max(1, min(BN_BLOCK_COLS // L, (C + 7) // 8))
        nblk = (C + nc - 1) // nc
        with nogil, parallel(num_threads=nt):
            scratch = <double *> malloc(6 * nc * L * sizeof(double))
            if scratch != NULL:
                for blk in prange(nblk, schedule="static"):
                    c0 = blk * nc
                    if floating is float:
                        nrm_bn_fwd_block_f(&x[0, c0, 0], &y[0, c0, 0], N, rs, min(nc, C - c0), L,
                                           training, eps, &weight[c0], &bias[c0], &mean[c0],
                                           &var[c0], scratch)
                    else:
                        nrm_bn_fwd_block_d(&x[0, c0, 0], &y[0, c0, 0], N, rs, min(nc, C - c0), L,
                                           training, eps, &weight[c0], &bias[c0], &mean[c0],
                                           &var[c0], scratch)
                free(scratch)
            else:
                with gil:
                    raise MemoryError()
        return
    # Long runs: every (n, c) run of L elements is one unit, so that each thread streams through
    # a contiguous range of memory. Per-run sums (shift: the channel's first element) are added
    # over n in order for each channel.
    part = <double *> malloc((2 * N * C + 3 * C) * sizeof(double))
    if part == NULL:
        raise MemoryError()
    coef = part + 2 * N * C
    try:
        with nogil:
            if training:
                for c in range(C):
                    coef[c] = x[0, c, 0]
                for i in prange(N * C, num_threads=nt, schedule="static"):
                    n = i // C
                    c = i - n * C
                    if floating is float:
                        nrm_run_moments_f(&x[n, c, 0], L, coef[c], &part[2 * i])
                    else:
                        nrm_run_moments_d(&x[n, c, 0], L, coef[c], &part[2 * i])
                cnt = <double> N * <double> L
                for c in range(C):
                    a1 = 0
                    a2 = 0
                    for n in range(N):
                        a1 = a1 + part[2 * (n * C + c)]
                        a2 = a2 + part[2 * (n * C + c) + 1]
                    d = a1 / cnt
                    v = a2 / cnt - d * d
                    mean[c] = coef[c] + d
                    var[c] = 0.0 if v < 0 else v  # (NaN stays NaN)
            for c in range(C):
                coef[C + c] = weight[c] / sqrt(var[c] + eps)
                coef[2 * C + c] = bias[c]
            for i in prange(N * C, num_threads=nt, schedule="static"):
                n = i // C
                c = i - n * C
                if floating is float:
                    nrm_run_affine_f(&x[n, c, 0], &y[n, c, 0], L, mean[c], coef[C + c],
                                     coef[2 * C + c])
                else:
                    nrm_run_affine_d(&x[n, c, 0], &y[n, c, 0], L, mean[c], coef[C + c],
                                     coef[2 * C + c])
    finally:
        free(part)


def batch_norm_backward(
    const floating[:, :, ::1] x,     # IN: forward input (N, C, L)
    const floating[:, :, ::1] grad,  # IN: gradient of the output (N, C, L)
    const floating[::1] weight,      # IN: (C,) (ones when the op has no weight)
    const double[::1] mean,          # IN: mean used in forward
    const double[::1] invstd,        # IN: 1 / sqrt(var + eps) used in forward
    bint training,
    bint need_dx,
    floating[:, :, ::1] dx,          # OUT (if need_dx): gradient of x
    double[::1] sum_g,               # OUT: sum(grad) per channel
    double[::1] sum_gx,              # OUT: sum(grad * (x - mean)) per channel
):
    """Per-channel sums of ``grad`` and ``grad * (x - mean)`` and, if ``need_dx``, the input
    gradient: ``dx = w r (g - sum_g / M - (x - mean) r^2 sum_gx / M)`` in training (M = N L),
    ``dx = w r g`` otherwise (statistics are constants), r = invstd."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t i, n, c, blk, nblk, nc, c0, rs = C * L
    cdef double *scratch
    cdef double *part
    cdef double *coef
    cdef double cnt, a1, a2, al
    cdef int nt = n_threads_for(_work(2 * N * C * L))
    _check(grad.shape[0] == N and grad.shape[1] == C and grad.shape[2] == L, "grad shape")
    _check(not need_dx or (dx.shape[0] == N and dx.shape[1] == C and dx.shape[2] == L), "dx shape")
    _check(weight.shape[0] == C and mean.shape[0] == C and invstd.shape[0] == C
           and sum_g.shape[0] == C and sum_gx.shape[0] == C, "per-channel lengths")
    if N * L == 0:
        sum_g[:] = 0
        sum_gx[:] = 0
        return
    if C == 0:
        return
    if L < BN_MIN_RUN:
        nc = max(1, min(BN_BLOCK_COLS // L, (C + 7) // 8))
        nblk = (C + nc - 1) // nc
        with nogil, parallel(num_threads=nt):
            scratch = <double *> malloc(6 * nc * L * sizeof(double))
            if scratch != NULL:
                for blk in prange(nblk, schedule="static"):
                    c0 = blk * nc
                    if floating is float:
                        nrm_bn_bwd_block_f(&grad[0, c0, 0], &x[0, c0, 0],
                                           &dx[0, c0, 0] if need_dx else NULL, N, rs,
                                           min(nc, C - c0), L, training, need_dx, &weight[c0],
                                           &mean[c0], &invstd[c0], &sum_g[c0], &sum_gx[c0],
                                           scratch)
                    else:
                        nrm_bn_bwd_block_d(&grad[0, c0, 0], &x[0, c0, 0],
                                           &dx[0, c0, 0] if need_dx else NULL, N, rs,
                                           min(nc, C - c0), L, training, need_dx, &weight[c0],
                                           &mean[c0], &invstd[c0], &sum_g[c0], &sum_gx[c0],
                                           scratch)
                free(scratch)
            else:
                with gil:
                    raise MemoryError()
        return
    # Long runs: per-(n, c) sums over contiguous memory, added over n in order per channel, then
    # (if needed) the input gradient, again run by run.
    part = <double *> malloc((2 * N * C + 3 * C) * sizeof(double))
    if part == NULL:
        raise MemoryError()
    coef = part + 2 * N * C
    try:
        with nogil:
            for i in prange(N * C, num_threads=nt, schedule="static"):
                n = i // C
                c = i - n * C
                if floating is float:
                    nrm_run_dot_f(&grad[n, c, 0], &x[n, c, 0], L, mean[c], &part[2 * i])
                else:
                    nrm_run_dot_d(&grad[n, c, 0], &x[n, c, 0], L, mean[c], &part[2 * i])
            cnt = <double> N * <double> L
            for c in range(C):
                a1 = 0
                a2 = 0
                for n in range(N):
                    a1 = a1 + part[2 * (n * C + c)]
                    a2 = a2 + part[2 * (n * C + c) + 1]
                sum_g[c] = a1
                sum_gx[c] = a2
                al = weight[c] * invstd[c]
                coef[c] = al
                if training:
                    coef[C + c] = -al * invstd[c] * invstd[c] * a2 / cnt
                    coef[2 * C + c] = -al * a1 / cnt
                else:
                    coef[C + c] = 0
                    coef[2 * C + c] = 0
            if need_dx:
                for i in prange(N * C, num_threads=nt, schedule="static"):
                    n = i // C
                    c = i - n * C
                    if floating is float:
                        nrm_run_bwd_f(&grad[n, c, 0], &x[n, c, 0], &dx[n, c, 0], L, coef[c],
                                      coef[C + c], mean[c], coef[2 * C + c])
                    else:
                        nrm_run_bwd_d(&grad[n, c, 0], &x[n, c, 0], &dx[n, c, 0], L, coef[c],
                                      coef[C + c], mean[c], coef[2 * C + c])
    finally:
        free(part)


# ---------------------------------------------------------------------------------------------
# Layer norm and RMS norm

def layer_norm_forward(
    const floating[:, ::1] x,        # IN: (R, D)
    const floating[::1] weight,      # IN: (D,) if has_weight
    const floating[::1] bias,        # IN: (D,) if has_bias
    bint has_weight,
    bint has_bias,
    double eps,
    bint rms,
    floating[:, ::1] y,              # OUT: (R, D)
    double[::1] mean,                # OUT: (R,) row mean (0 for rms)
    double[::1] rstd,                # OUT: (R,) 1 / sqrt(var + eps) (rms: 1 / sqrt(mean(x^2) + eps))
):
    """y[r] := (x[r] - mean[r]) * rstd[r] * weight + bias (rms: no mean subtraction)."""
    cdef Py_ssize_t R = x.shape[0], D = x.shape[1], r
    _check(y.shape[0] == R and y.shape[1] == D and mean.shape[0] == R and rstd.shape[0] == R,
           "output shapes")
    _check((not has_weight or weight.shape[0] == D) and (not has_bias or bias.shape[0] == D),
           "weight / bias length")
    if R * D == 0:
        return
    with nogil:
        for r in prange(R, num_threads=n_threads_for(_work(R * D)), schedule="static"):
            if floating is float:
                nrm_ln_fwd_row_f(&x[r, 0], &y[r, 0], D, &weight[0] if has_weight else NULL,
                                 &bias[0] if has_bias else NULL, eps, rms, &mean[r], &rstd[r])
            else:
                nrm_ln_fwd_row_d(&x[r, 0], &y[r, 0], D, &weight[0] if has_weight else NULL,
                                 &bias[0] if has_bias else NULL, eps, rms, &mean[r], &rstd[r])


def layer_norm_backward(
    const floating[:, ::1] x,        # IN: forward input (R, D)
    const floating[:, ::1] grad,     # IN: gradient of the output (R, D)
    const floating[::1] weight,      # IN: (D,) if has_weight
    bint has_weight,
    const double[::1] mean,          # IN: (R,) from forward
    const double[::1] rstd,          # IN: (R,) from forward
    bint rms,
    bint need_dx,
    floating[:, ::1] dx,             # OUT (if need_dx): (R, D)
    bint need_wgrad,
    double[::1] grad_weight,         # OUT (if need_wgrad): sum over rows of grad * xhat
    double[::1] grad_bias,           # OUT (if need_wgrad): sum over rows of grad
):
    """dx[r] := rstd (g w - mean(g w) - xhat mean(g w xhat)) (rms: without the mean(g w) term);
    grad_weight := sum_r g xhat, grad_bias := sum_r g, each column summed over the rows in order.

    Short rows (D <= 4096): one pass over fixed chunks of rows, each row's sums, input gradient
    and the chunk's partial weight sums together; the partials are added in chunk order. Long
    rows: pass 1 over tiles of columns spanning all rows computes the weight sums and per-tile
    partial row sums (added in tile order), pass 2 the input gradient row by row. Neither
    depends on the thread count.
    """
    cdef Py_ssize_t R = x.shape[0], D = x.shape[1], r, t, ntile, per, r0, k0, ncol, nr, k, bw
    cdef double *buf
    cdef double *be
    cdef double *ga
    cdef double *part
    cdef double rr, s1, s2
    cdef int nt = n_threads_for(_work(2 * R * D))
    _check(grad.shape[0] == R and grad.shape[1] == D and mean.shape[0] == R
           and rstd.shape[0] == R, "grad / statistics shapes")
    _check(not need_dx or (dx.shape[0] == R and dx.shape[1] == D), "dx shape")
    _check(not has_weight or weight.shape[0] == D, "weight length")
    _check(not need_wgrad or (grad_weight.shape[0] == D and grad_bias.shape[0] == D),
           "weight gradient lengths")
    if need_wgrad:
        grad_weight[:] = 0
        grad_bias[:] = 0
    if R * D == 0 or not (need_dx or need_wgrad):
        return
    if D <= LN_PARTIAL_MAX_D:
        ntile = min(R, LN_MAX_CHUNKS)
        per = (R + ntile - 1) // ntile
        ntile = (R + per - 1) // per
        part = NULL
        if need_wgrad:
            part = <double *> malloc(2 * ntile * D * sizeof(double))
            if part == NULL:
                raise MemoryError()
        try:
            with nogil:
                for t in prange(ntile, num_threads=nt, schedule="static"):
                    r0 = t * per
                    nr = min(per, R - r0)
                    if need_wgrad:
                        for k in range(2 * D):
                            part[2 * t * D + k] = 0
                    if floating is float:
                        nrm_ln_bwd_rows_f(&grad[r0, 0], &x[r0, 0], &weight[0] if has_weight else NULL,
                                          &dx[r0, 0] if need_dx else NULL, nr, D, &mean[r0],
                                          &rstd[r0], rms, &part[2 * t * D] if need_wgrad else NULL,
                                          &part[2 * t * D + D] if need_wgrad else NULL)
                    else:
                        nrm_ln_bwd_rows_d(&grad[r0, 0], &x[r0, 0], &weight[0] if has_weight else NULL,
                                          &dx[r0, 0] if need_dx else NULL, nr, D, &mean[r0],
                                          &rstd[r0], rms, &part[2 * t * D] if need_wgrad else NULL,
                                          &part[2 * t * D + D] if need_wgrad else NULL)
                if need_wgrad:
                    for t in range(ntile):
                        for k in range(D):
                            grad_weight[k] += part[2 * t * D + k]
                            grad_bias[k] += part[2 * t * D + D + k]
        finally:
            free(part)
        return
    bw = max(LN_COL_BLOCK, min(LN_MAX_COL_BLOCK, D // 16))
    ntile = (D + bw - 1) // bw
    buf = <double *> malloc((2 * R * ntile + 2 * R) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    be = buf + 2 * R * ntile
    ga = be + R
    try:
        with nogil:
            for t in prange(ntile, num_threads=nt, schedule="static"):
                k0 = t * bw
                ncol = min(bw, D - k0)
                if floating is float:
                    nrm_ln_tile_sums_f(&grad[0, k0], &x[0, k0], &weight[k0] if has_weight else NULL,
                                       R, D, ncol, &mean[0], &rstd[0],
                                       &buf[2 * t] if need_dx else NULL, 2 * ntile,
                                       &grad_weight[k0] if need_wgrad else NULL,
                                       &grad_bias[k0] if need_wgrad else NULL)
                else:
                    nrm_ln_tile_sums_d(&grad[0, k0], &x[0, k0], &weight[k0] if has_weight else NULL,
                                       R, D, ncol, &mean[0], &rstd[0],
                                       &buf[2 * t] if need_dx else NULL, 2 * ntile,
                                       &grad_weight[k0] if need_wgrad else NULL,
                                       &grad_bias[k0] if need_wgrad else NULL)
            if need_dx:
                for r in range(R):
                    s1 = 0
                    s2 = 0
                    for t in range(ntile):
                        s1 = s1 + buf[2 * (r * ntile + t)]
                        s2 = s2 + buf[2 * (r * ntile + t) + 1]
                    rr = rstd[r]
                    be[r] = -rr * rr * rr * s2 / D
                    ga[r] = 0.0 if rms else -rr * s1 / D
                for r in prange(R, num_threads=nt, schedule="static"):
                    if floating is float:
                        nrm_ln_bwd_row_f(&grad[r, 0], &x[r, 0], &weight[0] if has_weight else NULL,
                                         &dx[r, 0], D, rstd[r], be[r], mean[r], ga[r])
                    else:
                        nrm_ln_bwd_row_d(&grad[r, 0], &x[r, 0], &weight[0] if has_weight else NULL,
                                         &dx[r, 0], D, rstd[r], be[r], mean[r], ga[r])
    finally:
        free(buf)


# ---------------------------------------------------------------------------------------------
# Group norm (and instance norm: G = C)

def group_norm_forward(
    const floating[:, :, ::1] x,     # IN: (N, C, L)
    Py_ssize_t groups,
    const floating[::1] weight,      # IN: (C,) (ones when the op has no weight)
    const floating[::1] bias,        # IN: (C,) (zeros when the op has no bias)
    double eps,
    floating[:, :, ::1] y,           # OUT: (N, C, L)
    double[::1] mean,                # OUT: (N * G,) group means
    double[::1] var,                 # OUT: (N * G,) group biased variances
):
    """y[n, c] := (x[n, c] - mean[n, g]) / sqrt(var[n, g] + eps) * weight[c] + bias[c],
    g = c // (C / G)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], i, n, gi, Cg, c0
    _check(groups > 0 and C % groups == 0, "groups must divide C")
    _check(y.shape[0] == N and y.shape[1] == C and y.shape[2] == L, "y shape")
    _check(weight.shape[0] == C and bias.shape[0] == C and mean.shape[0] == N * groups
           and var.shape[0] == N * groups, "per-channel / per-group lengths")
    Cg = C // groups
    if N * C * L == 0:
        return
    with nogil:
        for i in prange(N * groups, num_threads=n_threads_for(_work(N * C * L)), schedule="static"):
            n = i // groups
            gi = i - n * groups
            c0 = gi * Cg
            if floating is float:
                nrm_gn_fwd_group_f(&x[n, c0, 0], &y[n, c0, 0], Cg, L, &weight[c0], &bias[c0], eps,
                                   &mean[i], &var[i])
            else:
                nrm_gn_fwd_group_d(&x[n, c0, 0], &y[n, c0, 0], Cg, L, &weight[c0], &bias[c0], eps,
                                   &mean[i], &var[i])


def group_norm_backward(
    const floating[:, :, ::1] x,     # IN: forward input (N, C, L)
    const floating[:, :, ::1] grad,  # IN: gradient of the output (N, C, L)
    Py_ssize_t groups,
    const floating[::1] weight,      # IN: (C,) (ones when the op has no weight)
    const double[::1] mean,          # IN: (N * G,) from forward
    const double[::1] rstd,          # IN: (N * G,) from forward
    bint need_dx,
    floating[:, :, ::1] dx,          # OUT (if need_dx): (N, C, L)
    double[:, ::1] sum_g,            # OUT: (N, C) sum over L of grad
    double[:, ::1] sum_gx,           # OUT: (N, C) sum over L of grad * (x - mean[n, g])
):
    """Per-(n, c) sums of ``grad`` and ``grad * (x - mean)`` and, if ``need_dx``,
    ``dx = r (g w - mean_group(g w) - xhat mean_group(g w xhat))``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], i, n, gi, Cg, c0
    _check(groups > 0 and C % groups == 0, "groups must divide C")
    _check(grad.shape[0] == N and grad.shape[1] == C and grad.shape[2] == L, "grad shape")
    _check(not need_dx or (dx.shape[0] == N and dx.shape[1] == C and dx.shape[2] == L), "dx shape")
    _check(weight.shape[0] == C and mean.shape[0] == N * groups and rstd.shape[0] == N * groups
           and sum_g.shape[0] == N and sum_g.shape[1] == C and sum_gx.shape[0] == N
           and sum_gx.shape[1] == C, "per-channel / per-group lengths")
    Cg = C // groups
    if N * C == 0:
        return
    if L == 0:
        sum_g[:, :] = 0
        sum_gx[:, :] = 0
        return
    with nogil:
        for i in prange(N * groups, num_threads=n_threads_for(_work(2 * N * C * L)),
                        schedule="static"):
            n = i // groups
            gi = i - n * groups
            c0 = gi * Cg
            if floating is float:
                nrm_gn_bwd_group_f(&grad[n, c0, 0], &x[n, c0, 0],
                                   &dx[n, c0, 0] if need_dx else NULL, Cg, L, &weight[c0],
                                   mean[i], rstd[i], need_dx, &sum_g[n, c0], &sum_gx[n, c0])
            else:
                nrm_gn_bwd_group_d(&grad[n, c0, 0], &x[n, c0, 0],
                                   &dx[n, c0, 0] if need_dx else NULL, Cg, L, &weight[c0],
                                   mean[i], rstd[i], need_dx, &sum_g[n, c0], &sum_gx[n, c0])
