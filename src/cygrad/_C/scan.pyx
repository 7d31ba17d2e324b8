"""Selective state-space scan kernels (Mamba's selective_scan): forward / backward, float32 / float64.

For one channel (batch b, channel d) with a state of size n::

    dt_t = softplus(delta_t + bias_d)          (or delta_t + bias_d)
    h_t  = exp(dt_t * A_d) * h_{t-1} + dt_t * u_t * B_t     (h_{-1} = h0, or 0)
    y_t  = C_t . h_t
    out_t = (y_t + D_d * u_t) * silu(z_t)      (each factor optional)

Layout (prepared by ``cygrad.ops.scan``; nothing is checked here beyond the documented
promises): ``u``, ``delta``, ``z``, ``out`` are (batch, dim, L) C-contiguous; ``A`` is
(dim, NP) with the state size n padded with zeros to NP, a multiple of 8; ``B`` and ``C`` are
flat buffers read as rows of NP values: the row for channel d of batch b at step t starts at
``b * sb + (d // q) * sg + t * st`` (time-varying (batch, groups, L, NP): ``sb = G*L*NP,
q = dim/G, sg = L*NP, st = NP``; time-invariant (dim, NP): ``sb = 0, q = 1, sg = NP, st = 0``).
Padded state entries have A = B = C = 0 and so stay 0.

The forward runs the recurrence in chunks of ``chunk`` steps and stores the state entering each
chunk in ``states`` (batch, dim, n_chunks, NP); nothing else is kept. The backward walks the
chunks in reverse: it recomputes a chunk's states and decays from its entry state into
per-thread buffers, then runs the reverse recurrence through it. Memory beyond the inputs and
outputs is O(batch * dim * NP * L / chunk) plus per-thread O(chunk * NP); the backward also
holds the float64 partial gradients of time-varying B / C, one per (batch, block of channels)
(the caller uses at most 16 blocks per batch element, so at most 16 times B's / C's size).

Parallelism: the forward is a ``prange`` over the (batch, channel) pairs. The backward is a
``prange`` over work items (batch, block of consecutive channels); an item handles its
channels one after the other and accumulates the gradients of the shared tensors into buffers
that only it writes (float64): dB / dC of time-varying B / C per (batch, block), time-invariant
ones, dA, dD and d(bias) per (batch, channel). The caller sums those partials in a fixed order.
The block size depends only on the shapes, so results are bitwise independent of the thread
count. Items are handed out dynamically (they are independent): when another process holds one
of the cores, the threads that do run take over its share instead of waiting for it.

The per-step loops over the state are C functions below (vectorised over NP; compiled for
AVX-512 / AVX2 / baseline x86-64 and picked at load time, as in ``_vmath.h``, whose branch-free
exp / log1p they use). Dot products over the state use 8 partial sums added in a fixed order.
float32 inputs keep the state in float32 (like Mamba's CUDA kernel); the reductions across
channels, time or batch (dA, dD, d(bias), time-invariant dB / dC, and the cross-channel sums of
dB / dC) accumulate in float64.

Fast path (``*_lanes`` below, C in ``_scan_lanes.h``): when B and C vary with time and each of
their groups holds a multiple of 16 (float32) / 8 (float64) channels, a work item is that many
consecutive channels of one batch element, one channel per vector lane, so B_t / C_t are
broadcast scalars and the state update needs no reduction. The item's dB / dC rows are sums over
its lanes (a fixed transpose-and-add tree) in the input dtype; the same kernel call then adds
the items of a group in float64. dA, dD and d(bias) are summed per chunk in the input dtype, then
across chunks in float64. The float32 lanes have their own vector exp (a 32-entry table and a
quadratic: at most 2 ulp off, results below 2^-126 flushed to 0; ``lane_exp`` exposes it to the
tests). The decays exp(dt A) take A pre-scaled by 32 / ln 2, which saves the exp's own
reduction (``lane_decay``).
"""

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy

from ._parallel cimport n_threads_for

cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC push_options
    /* lets gcc if-convert (vectorise) the selects of the branch-free maths; changes no result */
    #pragma GCC optimize("no-trapping-math")
    #endif
    #if defined(__GNUC__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wunused-function"
    #endif
    #include "_vmath.h"
    #include <string.h>

    /* sigmoid(x) from e = exp(-|x|) */
    #define CG_SIG(x, e, one) ((x) >= 0 ? (one) / ((one) + (e)) : (e) / ((one) + (e)))
    /* fixed-order sum of 8 lanes */
    #define CG_SUM8(a) ((((a)[0] + (a)[4]) + ((a)[2] + (a)[6])) + (((a)[1] + (a)[5]) + ((a)[3] + (a)[7])))

    /* The state loops work on 8 lanes at a time (the state is padded to a multiple of 8). With
     * gcc / clang they use vector extensions (one AVX2 register of floats, one AVX-512 or two AVX2
     * registers of doubles; the baseline clone splits them into SSE2 operations); other compilers
     * get plain loops over 8-element arrays. */
    #if defined(__GNUC__) || defined(__clang__)
    typedef float cg_v8f __attribute__((vector_size(32)));
    typedef double cg_v8d __attribute__((vector_size(64)));
    #define CG_VLOAD(V, v, p) memcpy(&(v), (p), sizeof(V))
    #define CG_VSTORE(V, p, v) memcpy((p), &(v), sizeof(V))
    #define CG_TO_D_f(v) __builtin_convertvector((v), cg_v8d)
    #define CG_TO_D_d(v) (v)
    #define CG_VZERO(V, v) memset(&(v), 0, sizeof(V))
    #endif

    #define CG_SCAN_KERNELS(T, S, V, EXP, LOG1PU)                                                     \\
    /* dt[t] = softplus(raw[t] + bias) (threshold 20, as torch) or raw[t] + bias; sig[t] = d dt / d raw (if sig) */ \\
    CG_CLONES static void cg_scan_dt_##S(ptrdiff_t nt, const T *raw, T bias, int softplus, T *dt,       \\
                                         T *sig)                                                         \\
    {                                                                                                   \\
        if (softplus && sig) {                                                                          \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) {                                               \\
                T x = raw[t] + bias;                                                                    \\
                T a = x < 0 ? -x : x;                                                                   \\
                T e = EXP(-a);                                                                          \\
                T sp = (x > 0 ? x : (T)0) + LOG1PU(e);                                                  \\
                dt[t] = x > (T)20 ? x : sp;                                                             \\
                T s = CG_SIG(x, e, (T)1);                                                               \\
                sig[t] = x > (T)20 ? (T)1 : s;                                                          \\
            }                                                                                           \\
        } else if (softplus) {                          /* sig NULL: the forward needs dt only */       \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) {                                               \\
                T x = raw[t] + bias;                                                                    \\
                T a = x < 0 ? -x : x;                                                                   \\
                T sp = (x > 0 ? x : (T)0) + LOG1PU(EXP(-a));                                            \\
                dt[t] = x > (T)20 ? x : sp;                                                             \\
            }                                                                                           \\
        } else {                                                                                        \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) dt[t] = raw[t] + bias;                          \\
            if (sig)                                                                                    \\
                for (ptrdiff_t t = 0; t < nt; t++) sig[t] = (T)1;                                       \\
        }                                                                                               \\
    }                                                                                                   \\
                                                                                                        \\
    /* One chunk of the recurrence. h: the state entering the chunk. E (nt * np): receives the decays  \\
     * E[t*np + i] = exp(dt_t A_i). Writes y[t] = C_t . h_t. Without keep, h is updated to the state    \\
     * leaving the chunk; with keep, h is left unchanged and H[t*np + i] = h_t[i] (the caller reads the \\
     * last row). */                                                                                   \\
    CG_CLONES static void cg_scan_fwd_chunk_##S(ptrdiff_t nt, ptrdiff_t np, T *h, const T *A,        \\
        const T *dt, const T *u, const T *Bp, ptrdiff_t bst, const T *Cp, ptrdiff_t cst, T *y,          \\
        T *E, T *H, int keep)                                                                           \\
    {                                                                                                   \\
        for (ptrdiff_t t = 0; t < nt; t++) {                                                            \\
            const T d = dt[t];                                                                          \\
            T *e = E + t * np;                                                                          \\
            CG_IVDEP for (ptrdiff_t i = 0; i < np; i++) e[i] = d * A[i];                                \\
        }                                                                                               \\
        const ptrdiff_t ne = nt * np;                                                                   \\
        CG_IVDEP for (ptrdiff_t k = 0; k < ne; k++) E[k] = EXP(E[k]);                                   \\
        for (ptrdiff_t t = 0; t < nt; t++) {                                                            \\
            const T x = dt[t] * u[t];                                                                   \\
            const T *b = Bp + t * bst;                                                                  \\
            const T *c = Cp + t * cst;                                                                  \\
            const T *e = E + t * np;                                                                    \\
            const T *hp = keep ? (t ? H + (t - 1) * np : h) : h;                                        \\
            T *hc = keep ? H + t * np : h;                                                              \\
            V acc, ev, hv, bv, cv, v;                                                                   \\
            CG_VZERO(V, acc);                                                                           \\
            for (ptrdiff_t j = 0; j < np; j += 8) {                                                     \\
                CG_VLOAD(V, ev, e + j);                                                                 \\
                CG_VLOAD(V, hv, hp + j);                                                                \\
                CG_VLOAD(V, bv, b + j);                                                                 \\
                CG_VLOAD(V, cv, c + j);                                                                 \\
                v = ev * hv + x * bv;                                                                   \\
                CG_VSTORE(V, hc + j, v);                                                                \\
                acc += cv * v;                                                                          \\
            }                                                                                           \\
            y[t] = CG_SUM8(acc);                                                                        \\
        }                                                                                               \\
    }                                                                                                   \\
                                                                                                        \\
    /* out[t] = (y[t] + Dd u[t]) * silu(z[t]) (z may be NULL) */                                        \\
    CG_CLONES static void cg_scan_out_##S(ptrdiff_t nt, const T *y, const T *u, T Dd, const T *z,     \\
                                          T *out)                                                        \\
    {                                                                                                   \\
        if (z) {                                                                                        \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) {                                               \\
                T zz = z[t];                                                                            \\
                T e = EXP(-(zz < 0 ? -zz : zz));                                                        \\
                T s = CG_SIG(zz, e, (T)1);                                                              \\
                out[t] = (y[t] + Dd * u[t]) * (zz * s);                                                 \\
            }                                                                                           \\
        } else {                                                                                        \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) out[t] = y[t] + Dd * u[t];                      \\
        }                                                                                               \\
    }                                                                                                   \\
                                                                                                        \\
    /* From the output gradient g: gy[t] = d/dy, dz[t] (if z), dud[t] = gy D (the direct u term);     \\
     * returns sum_t gy[t] u[t] (the D gradient of the chunk, in double). */                           \\
    CG_CLONES static double cg_scan_gout_##S(ptrdiff_t nt, const T *g, const T *y, const T *u, T Dd,  \\
                                             const T *z, T *gy, T *dz, T *dud)                          \\
    {                                                                                                   \\
        if (z) {                                                                                        \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) {                                               \\
                T zz = z[t];                                                                            \\
                T e = EXP(-(zz < 0 ? -zz : zz));                                                        \\
                T s = CG_SIG(zz, e, (T)1);                                                              \\
                T o = y[t] + Dd * u[t];                                                                 \\
                dz[t] = g[t] * o * (s * ((T)1 + zz * ((T)1 - s)));                                      \\
                gy[t] = g[t] * (zz * s);                                                                \\
            }                                                                                           \\
        } else {                                                                                        \\
            CG_IVDEP for (ptrdiff_t t = 0; t < nt; t++) gy[t] = g[t];                                   \\
        }                                                                                               \\
        double sd = 0.0;                                                                                \\
        for (ptrdiff_t t = 0; t < nt; t++) {                                                            \\
            dud[t] = gy[t] * Dd;                                                                        \\
            sd += (double)(gy[t] * u[t]);                                                               \\
        }                                                                                               \\
        return sd;                                                                                      \\
    }                                                                                                   \\
                                                                                                        \\
    /* Reverse recurrence through one chunk (E, H from cg_scan_fwd_chunk with keep; h0: the state     \\
     * entering the chunk). dh: gradient of the state leaving the chunk, updated to the one of the      \\
     * state entering it. Writes ddt[t] (gradient of dt_t) and adds the u gradient through the state    \\
     * to du[t]; accumulates dA (per channel, double) and, if non-NULL, dB / dC rows (double; row t at  \\
     * dB + t * dbst). */                                                                               \\
    CG_CLONES static void cg_scan_bwd_chunk_##S(ptrdiff_t nt, ptrdiff_t np, T *dh, const T *h0,      \\
        const T *A, const T *dt, const T *u, const T *Bp, ptrdiff_t bst, const T *Cp, ptrdiff_t cst,    \\
        const T *E, const T *H, const T *gy, T *ddt, T *du, double *dA, double *dB, ptrdiff_t dbst,     \\
        double *dC, ptrdiff_t dcst)                                                                     \\
    {                                                                                                   \\
        for (ptrdiff_t t = nt - 1; t >= 0; t--) {                                                       \\
            const T d = dt[t];                                                                          \\
            const T x = d * u[t];                                                                       \\
            const T g = gy[t];                                                                          \\
            const T *b = Bp + t * bst;                                                                  \\
            const T *c = Cp + t * cst;                                                                  \\
            const T *e = E + t * np;                                                                    \\
            const T *hc = H + t * np;                                                                   \\
            const T *hp = t ? H + (t - 1) * np : h0;                                                    \\
            double *dc = dC ? dC + t * dcst : NULL;                                                     \\
            double *db = dB ? dB + t * dbst : NULL;                                                     \\
            V s1, s2, dv, cv, hcv, hpv, ev, av, bv, q;                                                  \\
            cg_v8d acc;                                                                                 \\
            CG_VZERO(V, s1);                                                                            \\
            CG_VZERO(V, s2);                                                                            \\
            for (ptrdiff_t j = 0; j < np; j += 8) {                                                     \\
                CG_VLOAD(V, dv, dh + j);                                                                \\
                CG_VLOAD(V, cv, c + j);                                                                 \\
                CG_VLOAD(V, ev, e + j);                                                                 \\
                CG_VLOAD(V, hpv, hp + j);                                                               \\
                CG_VLOAD(V, av, A + j);                                                                 \\
                CG_VLOAD(V, bv, b + j);                                                                 \\
                dv = dv + g * cv;                        /* gradient of h_t */                          \\
                if (dc) {                                                                               \\
                    CG_VLOAD(V, hcv, hc + j);                                                           \\
                    CG_VLOAD(cg_v8d, acc, dc + j);                                                      \\
                    acc += CG_TO_D_##S(g * hcv);                                                        \\
                    CG_VSTORE(cg_v8d, dc + j, acc);                                                     \\
                }                                                                                       \\
                if (db) {                                                                               \\
                    CG_VLOAD(cg_v8d, acc, db + j);                                                      \\
                    acc += CG_TO_D_##S(dv * x);                                                         \\
                    CG_VSTORE(cg_v8d, db + j, acc);                                                     \\
                }                                                                                       \\
                q = dv * hpv * ev;                       /* gradient of dt_t A_i */                     \\
                CG_VLOAD(cg_v8d, acc, dA + j);                                                          \\
                acc += CG_TO_D_##S(q * d);                                                              \\
                CG_VSTORE(cg_v8d, dA + j, acc);                                                         \\
                s1 += q * av;                                                                           \\
                s2 += dv * bv;                                                                          \\
                dv = dv * ev;                            /* gradient of h_{t-1} */                      \\
                CG_VSTORE(V, dh + j, dv);                                                               \\
            }                                                                                           \\
            T r1 = CG_SUM8(s1);                                                                         \\
            T r2 = CG_SUM8(s2);                                                                         \\
            ddt[t] = r1 + r2 * u[t];                                                                    \\
            du[t] += r2 * d;                                                                            \\
        }                                                                                               \\
    }

    #if defined(__GNUC__) || defined(__clang__)
    CG_SCAN_KERNELS(float, f, cg_v8f, cg_expf, cg_log1pf_unit)
    CG_SCAN_KERNELS(double, d, cg_v8d, cg_exp, cg_log1p_unit)
    #else
    #error "cygrad._C.scan needs GCC or clang vector extensions"
    #endif

    /* the channel-lane kernels (fast path): float with 16 lanes, double with 8 */
    #include <stdlib.h>
    static void *cg_lscan_alloc(size_t nbytes)
    {
        void *p = NULL;
        return posix_memalign(&p, 64, nbytes ? nbytes : 64) == 0 ? p : NULL;
    }
    typedef float cg_v16f __attribute__((vector_size(64)));
    #define LT float
    #define LS f
    #define LW 16
    #define LV cg_v16f
    #define LEXP cg_expf
    #include "_scan_lanes.h"
    #undef LT
    #undef LS
    #undef LW
    #undef LV
    #undef LEXP
    #define LT double
    #define LS d
    #define LW 8
    #define LV cg_v8d
    #define LEXP cg_exp
    #include "_scan_lanes.h"
    #undef LT
    #undef LS
    #undef LW
    #undef LV
    #undef LEXP

    #if defined(__GNUC__)
    #pragma GCC diagnostic pop
    #endif
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC pop_options
    #endif
    """
    void cg_scan_dt_f(Py_ssize_t nt, const float *raw, float bias, int softplus, float *dt, float *sig) nogil
    void cg_scan_dt_d(Py_ssize_t nt, const double *raw, double bias, int softplus, double *dt, double *sig) nogil
    void cg_scan_fwd_chunk_f(Py_ssize_t nt, Py_ssize_t np, float *h, const float *A, const float *dt,
                             const float *u, const float *Bp, Py_ssize_t bst, const float *Cp, Py_ssize_t cst,
                             float *y, float *E, float *H, int keep) nogil
    void cg_scan_fwd_chunk_d(Py_ssize_t nt, Py_ssize_t np, double *h, const double *A, const double *dt,
                             const double *u, const double *Bp, Py_ssize_t bst, const double *Cp, Py_ssize_t cst,
                             double *y, double *E, double *H, int keep) nogil
    void cg_scan_out_f(Py_ssize_t nt, const float *y, const float *u, float Dd, const float *z, float *out) nogil
    void cg_scan_out_d(Py_ssize_t nt, const double *y, const double *u, double Dd, const double *z,
                       double *out) nogil
    double cg_scan_gout_f(Py_ssize_t nt, const float *g, const float *y, const float *u, float Dd,
                          const float *z, float *gy, float *dz, float *dud) nogil
    double cg_scan_gout_d(Py_ssize_t nt, const double *g, const double *y, const double *u, double Dd,
                          const double *z, double *gy, double *dz, double *dud) nogil
    void cg_scan_bwd_chunk_f(Py_ssize_t nt, Py_ssize_t np, float *dh, const float *h0, const float *A,
                             const float *dt, const float *u, const float *Bp, Py_ssize_t bst, const float *Cp,
                             Py_ssize_t cst, const float *E, const float *H, const float *gy, float *ddt,
                             float *du, double *dA, double *dB, Py_ssize_t dbst, double *dC,
                             Py_ssize_t dcst) nogil
    void cg_scan_bwd_chunk_d(Py_ssize_t nt, Py_ssize_t np, double *dh, const double *h0, const double *A,
                             const double *dt, const double *u, const double *Bp, Py_ssize_t bst,
                             const double *Cp, Py_ssize_t cst, const double *E, const double *H,
                             const double *gy, double *ddt, double *du, double *dA, double *dB,
                             Py_ssize_t dbst, double *dC, Py_ssize_t dcst) nogil
    void cg_lexp_array_f(float *x, Py_ssize_t m) nogil
    void cg_ldecay_array_f(float *x, const float *a, Py_ssize_t m) nogil
    void cg_lsoftplus_array_f(float *x, float *sig, Py_ssize_t m) nogil
    void *cg_lscan_alloc(size_t nbytes) nogil
    size_t cg_lscan_ws_bytes_f(Py_ssize_t chunk, Py_ssize_t NP, Py_ssize_t K) nogil
    size_t cg_lscan_ws_bytes_d(Py_ssize_t chunk, Py_ssize_t NP, Py_ssize_t K) nogil
    void cg_lscan_fwd_f(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, const float *u,
                        const float *delta, const float *z, const float *A, const float *Bp, const float *Cp,
                        const float *D, const float *bias, int softplus, const float *h0, float *out,
                        float *states, Py_ssize_t s_ch, float *last, void *ws) nogil
    void cg_lscan_fwd_d(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, const double *u,
                        const double *delta, const double *z, const double *A, const double *Bp,
                        const double *Cp, const double *D, const double *bias, int softplus, const double *h0,
                        double *out, double *states, Py_ssize_t s_ch, double *last, void *ws) nogil
    void cg_lscan_bwd_f(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, Py_ssize_t K,
                        const float *u,
                        const float *delta, const float *z, const float *A, const float *Bp, const float *Cp,
                        const float *D, const float *bias, int softplus, const float *states, Py_ssize_t s_ch,
                        const float *gout, Py_ssize_t g_ld, const float *glast, float *du, float *ddelta, float *dz,
                        float *dh0,
                        double *dA, double *dD, double *dbias, float *dB, float *dC, void *ws) nogil
    void cg_lscan_bwd_d(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, Py_ssize_t K,
                        const double *u,
                        const double *delta, const double *z, const double *A, const double *Bp,
                        const double *Cp, const double *D, const double *bias, int softplus,
                        const double *states, Py_ssize_t s_ch, const double *gout, Py_ssize_t g_ld, const double *glast,
                        double *du, double *ddelta, double *dz, double *dh0, double *dA, double *dD,
                        double *dbias, double *dB, double *dC, void *ws) nogil


# ---------------------------------------------------------------------------------------------
# dtype dispatch

cdef inline void _dt(Py_ssize_t nt, const floating *raw, floating bias, bint softplus, floating *dt,
                     floating *sig) noexcept nogil:
    if floating is float:
        cg_scan_dt_f(nt, raw, bias, softplus, dt, sig)
    else:
        cg_scan_dt_d(nt, raw, bias, softplus, dt, sig)


cdef inline void _fwd_chunk(Py_ssize_t nt, Py_ssize_t np, floating *h, const floating *A, const floating *dt,
                            const floating *u, const floating *Bp, Py_ssize_t bst, const floating *Cp,
                            Py_ssize_t cst, floating *y, floating *E, floating *H, bint keep) noexcept nogil:
    if floating is float:
        cg_scan_fwd_chunk_f(nt, np, h, A, dt, u, Bp, bst, Cp, cst, y, E, H, keep)
    else:
        cg_scan_fwd_chunk_d(nt, np, h, A, dt, u, Bp, bst, Cp, cst, y, E, H, keep)


cdef inline void _out(Py_ssize_t nt, const floating *y, const floating *u, floating Dd, const floating *z,
                      floating *out) noexcept nogil:
    if floating is float:
        cg_scan_out_f(nt, y, u, Dd, z, out)
    else:
        cg_scan_out_d(nt, y, u, Dd, z, out)


cdef inline double _gout(Py_ssize_t nt, const floating *g, const floating *y, const floating *u, floating Dd,
                         const floating *z, floating *gy, floating *dz, floating *dud) noexcept nogil:
    if floating is float:
        return cg_scan_gout_f(nt, g, y, u, Dd, z, gy, dz, dud)
    else:
        return cg_scan_gout_d(nt, g, y, u, Dd, z, gy, dz, dud)


cdef inline void _bwd_chunk(Py_ssize_t nt, Py_ssize_t np, floating *dh, const floating *h0, const floating *A,
                            const floating *dt, const floating *u, const floating *Bp, Py_ssize_t bst,
                            const floating *Cp, Py_ssize_t cst, const floating *E, const floating *H,
                            const floating *gy, floating *ddt, floating *du, double *dA, double *dB,
                            Py_ssize_t dbst, double *dC, Py_ssize_t dcst) noexcept nogil:
    if floating is float:
        cg_scan_bwd_chunk_f(nt, np, dh, h0, A, dt, u, Bp, bst, Cp, cst, E, H, gy, ddt, du, dA, dB, dbst, dC, dcst)
    else:
        cg_scan_bwd_chunk_d(nt, np, dh, h0, A, dt, u, Bp, bst, Cp, cst, E, H, gy, ddt, du, dA, dB, dbst, dC, dcst)


cdef inline void* _alloc(size_t nbytes) noexcept nogil:
    return malloc(nbytes if nbytes > 0 else 1)


# ---------------------------------------------------------------------------------------------
# Forward

def selective_scan_forward(
    const floating[:, :, ::1] u,        # IN (batch, dim, L)
    const floating[:, :, ::1] delta,    # IN (batch, dim, L)
    const floating[:, ::1] A,           # IN (dim, NP), NP % 8 == 0
    const floating[::1] B,              # IN flat rows of NP (see module doc)
    tuple b_geom,                       # IN (sb, q, sg, st)
    const floating[::1] C,              # IN flat rows of NP
    tuple c_geom,                       # IN (sb, q, sg, st)
    const floating[::1] D,              # IN (dim,) or empty (no D term)
    const floating[:, :, ::1] z,        # IN (batch, dim, L) or (0, 0, 0) (no gate)
    const floating[::1] bias,           # IN (dim,) or empty (no delta bias)
    bint softplus,                      # IN
    const floating[:, :, ::1] h0,       # IN (batch, dim, NP) initial state, or (0, 0, 0) for zeros
    floating[:, :, ::1] out,            # OUT (batch, dim, L)
    floating[:, :, :, ::1] states,      # OUT (batch, dim, ceil(L / chunk), NP) entry states, or (0,0,0,0)
    floating[:, :, ::1] last,           # OUT (batch, dim, NP) the state after the last step
    Py_ssize_t chunk,                   # IN >= 1
):
    """Selective scan forward (see the module docstring); shapes are checked by the caller."""
    cdef Py_ssize_t batch = u.shape[0], dim = u.shape[1], L = u.shape[2], NP = A.shape[1]
    cdef Py_ssize_t b_sb = b_geom[0], b_q = b_geom[1], b_sg = b_geom[2], b_st = b_geom[3]
    cdef Py_ssize_t c_sb = c_geom[0], c_q = c_geom[1], c_sg = c_geom[2], c_st = c_geom[3]
    cdef bint has_D = D.shape[0] > 0, has_z = z.shape[0] > 0, has_bias = bias.shape[0] > 0
    cdef bint has_h0 = h0.shape[0] > 0, save = states.shape[0] > 0
    cdef Py_ssize_t n_items = batch * dim, w, b, d, c0, nt, ci
    cdef floating *h
    cdef floating *dt
    cdef floating *sig
    cdef floating *y
    cdef floating *E
    cdef floating Dd, bb
    cdef const floating *zp
    cdef const floating *Bp
    cdef const floating *Cp
    cdef int failed[1]
    failed[0] = 0
    if n_items == 0:
        return
    if chunk < 1 or chunk > 4096:
        raise ValueError(f"chunk must be in [1, 4096], got {chunk}")
    with nogil, parallel(num_threads=n_threads_for(n_items * L * (NP + 4))):
        h = <floating*> _alloc((NP + 3 * chunk + chunk * NP) * sizeof(floating))
        dt = h + NP
        sig = dt + chunk
        y = sig + chunk
        E = y + chunk
        for w in prange(n_items, schedule="dynamic"):
            if h == NULL:
                failed[0] = 1
            else:
                b = w // dim
                d = w % dim
                Dd = D[d] if has_D else 0
                bb = bias[d] if has_bias else 0
                if has_h0:
                    memcpy(h, &h0[b, d, 0], NP * sizeof(floating))
                else:
                    memset(h, 0, NP * sizeof(floating))
                ci = 0
                c0 = 0
                while c0 < L:
                    nt = L - c0 if L - c0 < chunk else chunk
                    if save:
                        memcpy(&states[b, d, ci, 0], h, NP * sizeof(floating))
                    _dt(nt, &delta[b, d, c0], bb, softplus, dt, sig)
                    Bp = &B[0] + b * b_sb + (d // b_q) * b_sg + c0 * b_st
                    Cp = &C[0] + b * c_sb + (d // c_q) * c_sg + c0 * c_st
                    _fwd_chunk(nt, NP, h, &A[d, 0], dt, &u[b, d, c0], Bp, b_st, Cp, c_st, y, E,
                               <floating*> NULL, False)
                    zp = &z[b, d, c0] if has_z else NULL
                    _out(nt, y, &u[b, d, c0], Dd, zp, &out[b, d, c0])
                    c0 = c0 + nt
                    ci = ci + 1
                memcpy(&last[b, d, 0], h, NP * sizeof(floating))
        free(h)
    if failed[0]:
        raise MemoryError("selective_scan: cannot allocate the per-thread buffers")


# ---------------------------------------------------------------------------------------------
# Backward

def selective_scan_backward(
    const floating[:, :, ::1] u,        # IN (batch, dim, L)
    const floating[:, :, ::1] delta,    # IN (batch, dim, L)
    const floating[:, ::1] A,           # IN (dim, NP)
    const floating[::1] B,              # IN
    tuple b_geom,                       # IN (sb, q, sg, st)
    const floating[::1] C,              # IN
    tuple c_geom,                       # IN (sb, q, sg, st)
    const floating[::1] D,              # IN (dim,) or empty
    const floating[:, :, ::1] z,        # IN (batch, dim, L) or (0, 0, 0)
    const floating[::1] bias,           # IN (dim,) or empty
    bint softplus,                      # IN
    const floating[:, :, ::1] h0,       # IN (batch, dim, NP) or (0, 0, 0)
    const floating[:, :, :, ::1] states,  # IN (batch, dim, ceil(L / chunk), NP) from the forward
    const floating[:, :, ::1] gout,     # IN (batch, dim, L) gradient of out
    const floating[:, :, ::1] glast,    # IN (batch, dim, NP) gradient of the last state, or (0, 0, 0)
    Py_ssize_t chunk,                   # IN same as the forward
    const Py_ssize_t[::1] block_start,  # IN channel blocks: block k is [block_start[k], block_start[k+1]);
                                        #    0 = block_start[0] < ... < block_start[n_blocks] = dim
    floating[:, :, ::1] du,             # OUT (batch, dim, L)
    floating[:, :, ::1] ddelta,         # OUT (batch, dim, L)
    floating[:, :, ::1] dz,             # OUT (batch, dim, L) or (0, 0, 0)
    floating[:, :, ::1] dh0,            # OUT (batch, dim, NP) or (0, 0, 0)
    double[:, :, ::1] dA,               # OUT (batch, dim, NP) per-batch partials
    double[:, ::1] dD,                  # OUT (batch, dim) partials (ignored without D)
    double[:, ::1] dbias,               # OUT (batch, dim) partials of the delta-bias gradient
    double[::1] dB,                     # OUT flat partial rows of NP, or empty (not needed)
    tuple db_geom,                      # IN (per_b, by_channel, per_item, st): row of (b, d, t) at
                                        #    b * per_b + (d if by_channel else block) * per_item + t * st
    double[::1] dC,                     # OUT flat partial rows, or empty
    tuple dc_geom,                      # IN as db_geom
):
    """Selective scan backward (see the module docstring). Every OUT array is overwritten."""
    cdef Py_ssize_t batch = u.shape[0], dim = u.shape[1], L = u.shape[2], NP = A.shape[1]
    cdef Py_ssize_t b_sb = b_geom[0], b_q = b_geom[1], b_sg = b_geom[2], b_st = b_geom[3]
    cdef Py_ssize_t c_sb = c_geom[0], c_q = c_geom[1], c_sg = c_geom[2], c_st = c_geom[3]
    cdef Py_ssize_t db_pb = db_geom[0], db_pi = db_geom[2], db_st = db_geom[3]
    cdef Py_ssize_t dc_pb = dc_geom[0], dc_pi = dc_geom[2], dc_st = dc_geom[3]
    cdef bint db_by_channel = db_geom[1] != 0, dc_by_channel = dc_geom[1] != 0
    cdef bint has_D = D.shape[0] > 0, has_z = z.shape[0] > 0, has_bias = bias.shape[0] > 0
    cdef bint has_h0 = h0.shape[0] > 0, has_glast = glast.shape[0] > 0, want_dh0 = dh0.shape[0] > 0
    cdef bint want_dB = dB.shape[0] > 0, want_dC = dC.shape[0] > 0
    cdef Py_ssize_t n_blocks = block_start.shape[0] - 1, n_items, w, b, d, k, c0, nt, ci, n_chunks, t
    cdef floating *buf
    cdef floating *dh
    cdef floating *E
    cdef floating *H
    cdef floating *hs
    cdef floating *dt
    cdef floating *sig
    cdef floating *y
    cdef floating *gy
    cdef floating *ddt
    cdef double *dAacc
    cdef floating Dd, bb
    cdef double sD, sbias
    cdef const floating *zp
    cdef floating *dzp
    cdef floating *dup
    cdef floating *ddp
    cdef const floating *Bp
    cdef const floating *Cp
    cdef double *dBp
    cdef double *dCp
    cdef int failed[1]
    failed[0] = 0
    if batch * dim == 0:
        return
    if chunk < 1 or chunk > 4096:
        raise ValueError(f"chunk must be in [1, 4096], got {chunk}")
    if n_blocks < 1 or block_start[0] != 0 or block_start[n_blocks] != dim:
        raise ValueError(f"channel blocks must start at 0 and end at dim = {dim}")
    for k in range(n_blocks):
        if block_start[k + 1] <= block_start[k]:
            raise ValueError("channel blocks must be non-empty and increasing")
    n_chunks = (L + chunk - 1) // chunk
    n_items = batch * n_blocks
    # The dB / dC partials are accumulated with +=: clear them first.
    if want_dB:
        dB[:] = 0
    if want_dC:
        dC[:] = 0
    with nogil, parallel(num_threads=n_threads_for(batch * dim * L * (2 * NP + 8))):
        buf = <floating*> _alloc((2 * chunk * NP + 2 * NP + 6 * chunk) * sizeof(floating))
        dAacc = <double*> _alloc(NP * sizeof(double))
        E = buf
        H = E + chunk * NP
        dh = H + chunk * NP
        hs = dh + NP
        dt = hs + NP
        sig = dt + chunk
        y = sig + chunk
        gy = y + chunk
        ddt = gy + chunk
        for w in prange(n_items, schedule="dynamic"):
            if buf == NULL or dAacc == NULL:
                failed[0] = 1
            else:
                b = w // n_blocks
                k = w % n_blocks
                for d in range(block_start[k], block_start[k + 1]):
                    Dd = D[d] if has_D else 0
                    bb = bias[d] if has_bias else 0
                    sD = 0
                    sbias = 0
                    memset(dAacc, 0, NP * sizeof(double))
                    if has_glast:
                        memcpy(dh, &glast[b, d, 0], NP * sizeof(floating))
                    else:
                        memset(dh, 0, NP * sizeof(floating))
                    ci = n_chunks - 1
                    while ci >= 0:
                        c0 = ci * chunk
                        nt = L - c0 if L - c0 < chunk else chunk
                        # recompute the chunk from its entry state
                        memcpy(hs, &states[b, d, ci, 0], NP * sizeof(floating))
                        _dt(nt, &delta[b, d, c0], bb, softplus, dt, sig)
                        Bp = &B[0] + b * b_sb + (d // b_q) * b_sg + c0 * b_st
                        Cp = &C[0] + b * c_sb + (d // c_q) * c_sg + c0 * c_st
                        _fwd_chunk(nt, NP, hs, &A[d, 0], dt, &u[b, d, c0], Bp, b_st, Cp, c_st, y, E, H, True)
                        # output side: gradient of y, z, D and the direct u term
                        zp = &z[b, d, c0] if has_z else NULL
                        dzp = &dz[b, d, c0] if has_z else NULL
                        dup = &du[b, d, c0]
                        sD = sD + _gout(nt, &gout[b, d, c0], y, &u[b, d, c0], Dd, zp, gy, dzp, dup)
                        # reverse recurrence
                        dBp = &dB[0] + b * db_pb + (d if db_by_channel else k) * db_pi + c0 * db_st \
                            if want_dB else NULL
                        dCp = &dC[0] + b * dc_pb + (d if dc_by_channel else k) * dc_pi + c0 * dc_st \
                            if want_dC else NULL
                        _bwd_chunk(nt, NP, dh, hs, &A[d, 0], dt, &u[b, d, c0], Bp, b_st, Cp, c_st, E, H, gy,
                                   ddt, dup, dAacc, dBp, db_st, dCp, dc_st)
                        # through softplus
                        ddp = &ddelta[b, d, c0]
                        for t in range(nt):
                            ddp[t] = ddt[t] * sig[t]
                            sbias = sbias + ddp[t]
                        ci = ci - 1
                    if want_dh0:
                        memcpy(&dh0[b, d, 0], dh, NP * sizeof(floating))
                    for t in range(NP):
                        dA[b, d, t] = dAacc[t]
                    dD[b, d] = sD
                    dbias[b, d] = sbias
        free(buf)
        free(dAacc)
    if failed[0]:
        raise MemoryError("selective_scan: cannot allocate the per-thread buffers")


# ---------------------------------------------------------------------------------------------
# Channel lanes (the fast path, _scan_lanes.h): LANES consecutive channels of one batch element
# per work item, one channel per vector lane. Needs time-varying B and C whose groups hold a
# multiple of LANES channels (the caller checks lanes_fit()).

def lane_width(dtype):
    """Channels per work item of the lane kernels for ``dtype`` (float32: 16, float64: 8)."""
    return 16 if dtype.itemsize == 4 else 8


cdef inline size_t _lws(floating dummy, Py_ssize_t chunk, Py_ssize_t NP, Py_ssize_t K) noexcept nogil:
    if floating is float:
        return cg_lscan_ws_bytes_f(chunk, NP, K)
    else:
        return cg_lscan_ws_bytes_d(chunk, NP, K)


cdef inline void _lfwd(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, const floating *u,
                       const floating *delta, const floating *z, const floating *A, const floating *Bp,
                       const floating *Cp, const floating *D, const floating *bias, bint softplus,
                       const floating *h0, floating *out, floating *states, Py_ssize_t s_ch, floating *last,
                       void *ws) noexcept nogil:
    if floating is float:
        cg_lscan_fwd_f(L, n, NP, chunk, u, delta, z, A, Bp, Cp, D, bias, softplus, h0, out, states, s_ch, last, ws)
    else:
        cg_lscan_fwd_d(L, n, NP, chunk, u, delta, z, A, Bp, Cp, D, bias, softplus, h0, out, states, s_ch, last, ws)


cdef inline void _lbwd(Py_ssize_t L, Py_ssize_t n, Py_ssize_t NP, Py_ssize_t chunk, Py_ssize_t K, const floating *u,
                       const floating *delta, const floating *z, const floating *A, const floating *Bp,
                       const floating *Cp, const floating *D, const floating *bias, bint softplus,
                       const floating *states, Py_ssize_t s_ch, const floating *gout, Py_ssize_t g_ld, const floating *glast,
                       floating *du, floating *ddelta, floating *dz, floating *dh0, double *dA, double *dD,
                       double *dbias, floating *dB, floating *dC, void *ws) noexcept nogil:
    if floating is float:
        cg_lscan_bwd_f(L, n, NP, chunk, K, u, delta, z, A, Bp, Cp, D, bias, softplus, states, s_ch, gout, g_ld, glast,
                       du, ddelta, dz, dh0, dA, dD, dbias, dB, dC, ws)
    else:
        cg_lscan_bwd_d(L, n, NP, chunk, K, u, delta, z, A, Bp, Cp, D, bias, softplus, states, s_ch, gout, g_ld, glast,
                       du, ddelta, dz, dh0, dA, dD, dbias, dB, dC, ws)


cdef Py_ssize_t _lane_items(Py_ssize_t dim, Py_ssize_t L, Py_ssize_t NP, Py_ssize_t W, tuple b_geom,
                            tuple c_geom, Py_ssize_t chunk, Py_ssize_t n, Py_ssize_t state_chunks,
                            Py_ssize_t K=1) except -1:
    """Validate the arguments of a lane kernel; return the work items (of K blocks of W channels) per batch
    element.

    ``state_chunks``: the chunks the states array holds, or -1 when there is no states array."""
    if K < 1 or K > 64:
        raise ValueError(f"blocks per item must be in [1, 64], got {K}")
    if chunk < 1 or chunk > 4096:
        raise ValueError(f"chunk must be in [1, 4096], got {chunk}")
    if n < 1 or n > NP:
        raise ValueError(f"state size n = {n} must be in [1, NP = {NP}]")
    for geom, name in ((b_geom, "B"), (c_geom, "C")):
        if geom[3] != NP or geom[1] % (W * K) != 0 or geom[0] == 0:
            raise ValueError(f"lane kernels need time-varying {name} rows of {NP} with groups of a multiple of "
                             f"{W * K} channels, got geometry {geom}")
    if dim % (W * K) != 0:
        raise ValueError(f"lane kernels need dim % {W * K} == 0, got dim = {dim}")
    if state_chunks >= 0 and state_chunks != (L + chunk - 1) // chunk:
        raise ValueError(f"states must hold {(L + chunk - 1) // chunk} chunks, got {state_chunks}")
    return dim // (W * K)


cdef inline void _sum_items(const floating *part, Py_ssize_t count, Py_ssize_t stride, Py_ssize_t L,
                            double *acc, floating *out) noexcept nogil:
    """out[t] := the sum of part[k * stride + t] over k < count, added in double in the order k = 0, 1, ..."""
    cdef Py_ssize_t k, t
    cdef const floating *p
    memset(acc, 0, L * sizeof(double))
    for k in range(count):
        p = part + k * stride
        for t in range(L):
            acc[t] += p[t]
    for t in range(L):
        out[t] = <floating> acc[t]


cdef str _partials_fit(part, out):
    """'' if the (batch, groups, n, L) sums ``out`` fit the (batch, items, n, L) partials ``part``, else why not."""
    if (out.shape[0] != part.shape[0] or out.shape[2] != part.shape[2] or out.shape[3] != part.shape[3]
            or out.shape[1] < 1 or part.shape[1] % out.shape[1] != 0):
        return f"partials {tuple(part.shape)} do not fit the output {tuple(out.shape)}"
    return ""


def selective_scan_forward_lanes(
    const floating[:, :, ::1] u,        # IN (batch, dim, L)
    const floating[:, :, ::1] delta,    # IN (batch, dim, L)
    const floating[:, ::1] A,           # IN (dim, NP)
    const floating[::1] B,              # IN flat rows of NP, time-varying
    tuple b_geom,                       # IN (sb, q, sg, NP), q % LANES == 0
    const floating[::1] C,              # IN
    tuple c_geom,                       # IN
    const floating[::1] D,              # IN (dim,) or empty
    const floating[:, :, ::1] z,        # IN (batch, dim, L) or (0, 0, 0)
    const floating[::1] bias,           # IN (dim,) or empty
    bint softplus,                      # IN
    const floating[:, :, ::1] h0,       # IN (batch, dim, NP) or (0, 0, 0)
    floating[:, :, ::1] out,            # OUT (batch, dim, L)
    floating[:, :, :, ::1] states,      # OUT (batch, dim, ceil(L / chunk), NP) or (0, 0, 0, 0)
    floating[:, :, ::1] last,           # OUT (batch, dim, NP)
    Py_ssize_t chunk,                   # IN >= 1
    Py_ssize_t n,                       # IN real state size, <= NP
):
    """Selective scan forward on channel lanes; same contract as ``selective_scan_forward``."""
    cdef Py_ssize_t batch = u.shape[0], dim = u.shape[1], L = u.shape[2], NP = A.shape[1]
    cdef Py_ssize_t W = 16 if floating is float else 8
    cdef Py_ssize_t b_sb = b_geom[0], b_q = b_geom[1], b_sg = b_geom[2]
    cdef Py_ssize_t c_sb = c_geom[0], c_q = c_geom[1], c_sg = c_geom[2]
    cdef bint has_D = D.shape[0] > 0, has_z = z.shape[0] > 0, has_bias = bias.shape[0] > 0
    cdef bint has_h0 = h0.shape[0] > 0, save = states.shape[0] > 0
    cdef Py_ssize_t per_b, n_items, w, b, d0, s_ch
    cdef void *ws
    cdef int failed[1]
    failed[0] = 0
    if batch * dim == 0 or L == 0:
        return
    per_b = _lane_items(dim, L, NP, W, b_geom, c_geom, chunk, n, states.shape[2] if save else -1)
    n_items = batch * per_b
    s_ch = (L + chunk - 1) // chunk * NP
    with nogil, parallel(num_threads=n_threads_for(n_items * W * L * (NP + 4))):
        ws = cg_lscan_alloc(_lws(<floating> 0, chunk, NP, 1))
        for w in prange(n_items, schedule="dynamic"):
            if ws == NULL:
                failed[0] = 1
            else:
                b = w // per_b
                d0 = (w % per_b) * W
                _lfwd(L, n, NP, chunk, &u[b, d0, 0], &delta[b, d0, 0],
                      &z[b, d0, 0] if has_z else NULL, &A[d0, 0],
                      &B[0] + b * b_sb + (d0 // b_q) * b_sg, &C[0] + c_sb * b + (d0 // c_q) * c_sg,
                      &D[d0] if has_D else NULL,
                      &bias[d0] if has_bias else NULL, softplus,
                      &h0[b, d0, 0] if has_h0 else NULL, &out[b, d0, 0],
                      &states[b, d0, 0, 0] if save else NULL, s_ch, &last[b, d0, 0], ws)
        free(ws)
    if failed[0]:
        raise MemoryError("selective_scan: cannot allocate the per-thread buffers")


def selective_scan_backward_lanes(
    const floating[:, :, ::1] u,        # IN (batch, dim, L)
    const floating[:, :, ::1] delta,    # IN (batch, dim, L)
    const floating[:, ::1] A,           # IN (dim, NP)
    const floating[::1] B,              # IN time-varying rows (as the forward)
    tuple b_geom,                       # IN
    const floating[::1] C,              # IN
    tuple c_geom,                       # IN
    const floating[::1] D,              # IN (dim,) or empty
    const floating[:, :, ::1] z,        # IN (batch, dim, L) or (0, 0, 0)
    const floating[::1] bias,           # IN (dim,) or empty
    bint softplus,                      # IN
    const floating[:, :, :, ::1] states,  # IN (batch, dim, ceil(L / chunk), NP) from the forward
    const floating[:, :, :] gout,       # IN (batch, dim, L), rows contiguous (other strides may be 0)
    const floating[:, :, ::1] glast,    # IN (batch, dim, NP) or (0, 0, 0)
    Py_ssize_t chunk,                   # IN same as the forward
    Py_ssize_t n,                       # IN real state size
    floating[:, :, ::1] du,             # OUT (batch, dim, L)
    floating[:, :, ::1] ddelta,         # OUT (batch, dim, L)
    floating[:, :, ::1] dz,             # OUT (batch, dim, L) or (0, 0, 0)
    floating[:, :, ::1] dh0,            # OUT (batch, dim, NP) or (0, 0, 0)
    double[:, :, ::1] dA,               # OUT (batch, dim, NP) per-batch partials
    double[:, ::1] dD,                  # OUT (batch, dim)
    double[:, ::1] dbias,               # OUT (batch, dim)
    floating[:, :, :, ::1] dB,          # OUT (batch, dim / LANES, n, L) per-item partials, or (0, 0, 0, 0)
    floating[:, :, :, ::1] dC,          # OUT as dB
    floating[:, :, :, ::1] dB_sum,      # OUT (batch, groups of B, n, L) or (0, 0, 0, 0)
    floating[:, :, :, ::1] dC_sum,      # OUT (batch, groups of C, n, L) or (0, 0, 0, 0)
    Py_ssize_t blocks=1,                # IN K: blocks of LANES channels per work item
):
    """Selective scan backward on channel lanes (contract of ``selective_scan_backward``, except that the
    dB / dC partials are one row per (batch, item, step), an item being ``blocks`` blocks of LANES channels
    that share their B / C rows). Given dB_sum / dC_sum, the partials of each group's items are also
    summed into them (in float64, in item order), in the same parallel region."""
    cdef Py_ssize_t batch = u.shape[0], dim = u.shape[1], L = u.shape[2], NP = A.shape[1]
    cdef Py_ssize_t W = 16 if floating is float else 8
    cdef Py_ssize_t b_sb = b_geom[0], b_q = b_geom[1], b_sg = b_geom[2]
    cdef Py_ssize_t c_sb = c_geom[0], c_q = c_geom[1], c_sg = c_geom[2]
    cdef bint has_D = D.shape[0] > 0, has_z = z.shape[0] > 0, has_bias = bias.shape[0] > 0
    cdef bint has_glast = glast.shape[0] > 0, want_dh0 = dh0.shape[0] > 0
    cdef bint want_dB = dB.shape[0] > 0, want_dC = dC.shape[0] > 0
    cdef Py_ssize_t per_b, n_items, w, b, k, d0, s_ch
    cdef void *ws
    cdef int failed[1]
    failed[0] = 0
    if batch * dim == 0 or L == 0:
        return
    per_b = _lane_items(dim, L, NP, W, b_geom, c_geom, chunk, n, states.shape[2], blocks)
    n_items = batch * per_b
    # gout: rows of L contiguous values at any channel / batch stride (0 for an expanded gradient)
    if gout.shape[0] != batch or gout.shape[1] != dim or gout.shape[2] != L:
        raise ValueError(f"gout must have shape {(batch, dim, L)}, got {tuple(gout.shape)[:3]}")
    if (gout.strides[1] < 0 or gout.strides[1] % sizeof(floating) != 0 or gout.strides[0] < 0
            or (gout.strides[2] != sizeof(floating) and L > 1)):
        raise ValueError(f"gout needs contiguous rows at non-negative strides in whole elements, got strides "
                         f"{tuple(gout.strides)[:3]}")
    cdef Py_ssize_t g_ld = gout.strides[1] // sizeof(floating)
    for part, name in ((dB, "dB"), (dC, "dC")):
        if part.shape[0] > 0 and (part.shape[0] != batch or part.shape[1] != per_b or part.shape[2] != n
                                  or part.shape[3] != L):
            raise ValueError(f"{name} partials must have shape {(batch, per_b, n, L)}, got {tuple(part.shape)}")
    cdef bint sum_B = dB_sum.shape[0] > 0 and want_dB, sum_C = dC_sum.shape[0] > 0 and want_dC
    for part, out, use, name in ((dB, dB_sum, sum_B, "dB_sum"), (dC, dC_sum, sum_C, "dC_sum")):
        if use and _partials_fit(part, out):
            raise ValueError(f"{name}: {_partials_fit(part, out)}")
    cdef Py_ssize_t gB = dB_sum.shape[1] if sum_B else 0, gC = dC_sum.shape[1] if sum_C else 0
    cdef Py_ssize_t rows_B = batch * gB * n, rows_C = batch * gC * n, r, g, i
    cdef double *acc
    s_ch = (L + chunk - 1) // chunk * NP
    with nogil, parallel(num_threads=n_threads_for(n_items * W * L * (2 * NP + 8))):
        ws = cg_lscan_alloc(_lws(<floating> 0, chunk, NP, blocks))
        acc = <double*> _alloc(L * sizeof(double)) if rows_B + rows_C > 0 else NULL
        for w in prange(n_items, schedule="dynamic"):
            if ws == NULL:
                failed[0] = 1
            else:
                b = w // per_b
                k = w % per_b
                d0 = k * W * blocks
                _lbwd(L, n, NP, chunk, blocks, &u[b, d0, 0], &delta[b, d0, 0],
                      &z[b, d0, 0] if has_z else NULL, &A[d0, 0],
                      &B[0] + b * b_sb + (d0 // b_q) * b_sg, &C[0] + c_sb * b + (d0 // c_q) * c_sg,
                      &D[d0] if has_D else NULL,
                      &bias[d0] if has_bias else NULL, softplus,
                      &states[b, d0, 0, 0], s_ch, &gout[b, d0, 0], g_ld,
                      &glast[b, d0, 0] if has_glast else NULL,
                      &du[b, d0, 0], &ddelta[b, d0, 0], &dz[b, d0, 0] if has_z else NULL,
                      &dh0[b, d0, 0] if want_dh0 else NULL, &dA[b, d0, 0], &dD[b, d0], &dbias[b, d0],
                      &dB[b, k, 0, 0] if want_dB else NULL, &dC[b, k, 0, 0] if want_dC else NULL, ws)
        # the items' dB / dC partials summed per group (rows of the sums: B's, then C's)
        for r in prange(rows_B + rows_C, schedule="static"):
            if acc == NULL:
                failed[0] = 1
            elif r < rows_B:
                b = r // (gB * n)
                g = (r // n) % gB
                i = r % n
                _sum_items(&dB[b, g * (per_b // gB), i, 0], per_b // gB, n * L, L, acc, &dB_sum[b, g, i, 0])
            else:
                b = (r - rows_B) // (gC * n)
                g = ((r - rows_B) // n) % gC
                i = (r - rows_B) % n
                _sum_items(&dC[b, g * (per_b // gC), i, 0], per_b // gC, n * L, L, acc, &dC_sum[b, g, i, 0])
        free(ws)
        free(acc)
    if failed[0]:
        raise MemoryError("selective_scan: cannot allocate the per-thread buffers")


def lane_exp(float[::1] x):
    """x = exp(x) in place with the float32 lane kernels' exp (for the tests; len(x) % 16 == 0)."""
    if x.shape[0] % 16 != 0:
        raise ValueError(f"lane_exp needs a multiple of 16 values, got {x.shape[0]}")
    if x.shape[0]:
        cg_lexp_array_f(&x[0], x.shape[0])


def lane_decay(float[::1] dt, const float[::1] a):
    """dt = exp(dt * a) in place, as the float32 lane kernels compute their decays (for the tests;
    len(dt) == len(a), a multiple of 16)."""
    if dt.shape[0] % 16 != 0 or a.shape[0] != dt.shape[0]:
        raise ValueError(f"lane_decay needs dt and a of one length, a multiple of 16; got {dt.shape[0]} "
                         f"and {a.shape[0]}")
    if dt.shape[0]:
        cg_ldecay_array_f(&dt[0], &a[0], dt.shape[0])


def lane_softplus(float[::1] x, float[::1] sig):
    """sig = sigmoid(x), then x = softplus(x) in place, as the float32 lane kernels compute them (for the
    tests; len(x) % 16 == 0)."""
    if x.shape[0] % 16 != 0 or sig.shape[0] != x.shape[0]:
        raise ValueError(f"lane_softplus needs x and sig of one length, a multiple of 16; got {x.shape[0]} "
                         f"and {sig.shape[0]}")
    if x.shape[0]:
        cg_lsoftplus_array_f(&x[0], &sig[0], x.shape[0])
