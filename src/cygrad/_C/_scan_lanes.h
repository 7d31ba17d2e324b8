/* Selective scan over channel lanes: the fast path of cygrad._C.scan.
 *
 * Included twice by scan.pyx, after its per-channel kernels (cg_scan_dt_S, cg_scan_out_S,
 * cg_scan_gout_S), with
 *     LT  the scalar type (float / double),    LS  its suffix (f / d),
 *     LW  the lanes per vector (16 / 8: one AVX-512 register), LV  the vector type of LW LTs,
 *     LEXP  the branch-free exp of _vmath.h (with GCC the float lanes use cg_lexp below instead:
 *           a table-driven vector exp, at most 2 ulp off, subnormal results flushed to 0).
 *
 * One work item is LW consecutive channels d0 .. d0 + LW - 1 of one batch element that share
 * their (time-varying) B and C rows. Lane l of every vector holds channel d0 + l, so the
 * recurrence runs on LW channels at once: for each state index i, the decays, states and
 * gradients are vectors over the channels while B_t[i] and C_t[i] are one broadcast scalar.
 * Nothing is summed across lanes in the forward; the backward's dB / dC rows are sums over the
 * item's channels, done with a fixed transpose-and-add tree (cg_lsum), and written as the item's
 * partial rows (the caller adds the items of a group in double, in a fixed order). So the
 * results depend on the shapes only, never on the thread count.
 *
 * Layouts (all pointers already offset to the item):
 *   u, delta, z, out, du, ddelta, dz: rows of L (channel stride L); gout: rows of L at a channel stride
 *   g_ld (0 for an expanded gradient);
 *   A: rows of NP (channel stride NP), n real entries; h0 / last / glast / dh0 / dA: likewise;
 *   B, C: one row of NP per step (step stride NP), from step 0;
 *   states: the state entering chunk ci of channel l at l * s_ch + ci * NP;
 *   dB, dC partials: rows of L, one per state index (n rows).
 * The workspace (cg_lscan_ws_bytes) must be 64-byte aligned (cg_lscan_alloc).
 */

/* 32 / ln 2: the decays' A is stored pre-multiplied by it (cg_lscan_ascale, cg_ldecay) */
#ifndef CG_LEXP_SCALE
#define CG_LEXP_SCALE 46.16624069214f
#endif

#define CG_L_CAT2(a, b) a##_##b
#define CG_L_CAT(a, b) CG_L_CAT2(a, b)
#define CG_L(name) CG_L_CAT(name, LS)

/* helpers are inlined into the ISA clones of the kernels that call them */
#ifndef CG_LINLINE
#if defined(__GNUC__) || defined(__clang__)
#define CG_LINLINE static inline __attribute__((always_inline))
#else
#define CG_LINLINE static inline
#endif
#endif

/* Steps per block of the forward's decay computation (keeps the decays in L1). */
#ifndef CG_LSUB
#define CG_LSUB 8
#endif
/* Buffers of chunk lane vectors in the workspace. */
#define CG_LBUF 13

/* Sums over the LW lanes of LW vectors v[0 .. LW), in a fixed order: lanes i and i + LW/2 first,
 * then i and i + LW/4, ... (a transpose-and-add tree, log2(LW) levels). It runs in two parts so
 * that the vectors need not all be live at once: cg_lsum4 takes the first two levels of four
 * consecutive vectors v[4q .. 4q+3] into one vector x[q] (lanes j*LW/4 .. (j+1)*LW/4 - 1 hold
 * the partial sums of v[4q+j]); cg_lsum_fin finishes the LW/4 vectors x into r[0 .. LW). */
#if (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 16
CG_LINLINE LV CG_L(cg_lsum4)(LV a, LV b, LV c, LV d)
{
    LV w0 = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
          + __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    LV w1 = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
          + __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    return __builtin_shufflevector(w0, w1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
         + __builtin_shufflevector(w0, w1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}
CG_LINLINE void CG_L(cg_lsum_fin)(const LV *x, LT *r)
{
    LV y0 = __builtin_shufflevector(x[0], x[1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29)
          + __builtin_shufflevector(x[0], x[1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    LV y1 = __builtin_shufflevector(x[2], x[3], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29)
          + __builtin_shufflevector(x[2], x[3], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    LV o = __builtin_shufflevector(y0, y1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
         + __builtin_shufflevector(y0, y1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    memcpy(r, &o, sizeof(LV));
}
#elif (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 8
CG_LINLINE LV CG_L(cg_lsum4)(LV a, LV b, LV c, LV d)
{
    LV w0 = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    LV w1 = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    return __builtin_shufflevector(w0, w1, 0, 1, 4, 5, 8, 9, 12, 13)
         + __builtin_shufflevector(w0, w1, 2, 3, 6, 7, 10, 11, 14, 15);
}
CG_LINLINE void CG_L(cg_lsum_fin)(const LV *x, LT *r)
{
    LV o = __builtin_shufflevector(x[0], x[1], 0, 2, 4, 6, 8, 10, 12, 14)
         + __builtin_shufflevector(x[0], x[1], 1, 3, 5, 7, 9, 11, 13, 15);
    memcpy(r, &o, sizeof(LV));
}
#else
/* the same trees, lane by lane */
CG_LINLINE LV CG_L(cg_lsum4)(LV a, LV b, LV c, LV d)
{
    const LV v[4] = {a, b, c, d};
    LV x;
    for (int j = 0; j < 4; j++) {
        LT s[LW];
        memcpy(s, &v[j], sizeof(LV));
        for (int h = LW / 2; h >= LW / 4; h /= 2)
            for (int i = 0; i < h; i++) s[i] = s[i] + s[i + h];
        for (int i = 0; i < LW / 4; i++) x[j * (LW / 4) + i] = s[i];
    }
    return x;
}
CG_LINLINE void CG_L(cg_lsum_fin)(const LV *x, LT *r)
{
    for (int k = 0; k < LW; k++) {
        LT s[LW / 4];
        for (int i = 0; i < LW / 4; i++) s[i] = x[k / 4][(k % 4) * (LW / 4) + i];
        for (int h = LW / 8; h >= 1; h /= 2)
            for (int i = 0; i < h; i++) s[i] = s[i] + s[i + h];
        r[k] = s[0];
    }
}
#endif

/* one stage of the W x W transpose: rows i and i + h swap their off-diagonal h-blocks */
#define CG_LT_STAGE(h, LO, HI)                                                                      \
    for (int i = 0; i < LW; i++)                                                                    \
        if (!(i & (h))) {                                                                           \
            LV a = r[i], b = r[i + (h)];                                                            \
            r[i] = __builtin_shufflevector(a, b, LO);                                               \
            r[i + (h)] = __builtin_shufflevector(a, b, HI);                                         \
        }
#if (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 16
#define CG_LT16_LO8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define CG_LT16_HI8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define CG_LT16_LO4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define CG_LT16_HI4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define CG_LT16_LO2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define CG_LT16_HI2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define CG_LT16_LO1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define CG_LT16_HI1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
CG_LINLINE void CG_L(cg_ltrans)(LV *r)
{
    CG_LT_STAGE(8, CG_LT16_LO8, CG_LT16_HI8)
    CG_LT_STAGE(4, CG_LT16_LO4, CG_LT16_HI4)
    CG_LT_STAGE(2, CG_LT16_LO2, CG_LT16_HI2)
    CG_LT_STAGE(1, CG_LT16_LO1, CG_LT16_HI1)
}
#elif (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 8
#define CG_LT8_LO4 0, 1, 2, 3, 8, 9, 10, 11
#define CG_LT8_HI4 4, 5, 6, 7, 12, 13, 14, 15
#define CG_LT8_LO2 0, 1, 8, 9, 4, 5, 12, 13
#define CG_LT8_HI2 2, 3, 10, 11, 6, 7, 14, 15
#define CG_LT8_LO1 0, 8, 2, 10, 4, 12, 6, 14
#define CG_LT8_HI1 1, 9, 3, 11, 5, 13, 7, 15
CG_LINLINE void CG_L(cg_ltrans)(LV *r)
{
    CG_LT_STAGE(4, CG_LT8_LO4, CG_LT8_HI4)
    CG_LT_STAGE(2, CG_LT8_LO2, CG_LT8_HI2)
    CG_LT_STAGE(1, CG_LT8_LO1, CG_LT8_HI1)
}
#else
CG_LINLINE void CG_L(cg_ltrans)(LV *r)
{
    for (int i = 0; i < LW; i++)
        for (int j = i + 1; j < LW; j++) {
            LT a = r[i][j];
            r[i][j] = r[j][i];
            r[j][i] = a;
        }
}
#endif
#undef CG_LT_STAGE

/* Prefetch src[l * ld + t] for t < nt, l < LW (the item's rows of the next chunk; rw 1: to be
 * written). An item reads and writes LW rows of each array at a stride of L: too many streams
 * for the hardware prefetcher, which left the transposes waiting on memory. */
CG_LINLINE void CG_L(cg_lprefetch)(const LT *src, ptrdiff_t ld, ptrdiff_t nt, int rw)
{
#if defined(__GNUC__) || defined(__clang__)
    if (!src || nt <= 0) return;
    for (int l = 0; l < LW; l++) {
        const LT *row = src + l * ld;
        for (ptrdiff_t t = 0; t < nt; t += 64 / (ptrdiff_t)sizeof(LT)) {
            if (rw) __builtin_prefetch(row + t, 1, 2);
            else __builtin_prefetch(row + t, 0, 2);
        }
        if (rw) __builtin_prefetch(row + nt - 1, 1, 2);
        else __builtin_prefetch(row + nt - 1, 0, 2);
    }
#else
    (void)src; (void)ld; (void)nt; (void)rw;
#endif
}

/* dst[t][l] = src[l * ld + t] for t < nt, l < LW (rows of the item's channels -> lane vectors) */
CG_LINLINE void CG_L(cg_lt_in)(const LT *src, ptrdiff_t ld, ptrdiff_t nt, LV *dst)
{
    LV r[LW];
    ptrdiff_t t0 = 0;
    for (; t0 + LW <= nt; t0 += LW) {
        for (int l = 0; l < LW; l++) memcpy(&r[l], src + l * ld + t0, sizeof(LV));
        CG_L(cg_ltrans)(r);
        for (int k = 0; k < LW; k++) dst[t0 + k] = r[k];
    }
    if (t0 < nt) {
        const ptrdiff_t m = nt - t0;
        memset(r, 0, sizeof(r));
        for (int l = 0; l < LW; l++)
            for (ptrdiff_t k = 0; k < m; k++) r[l][k] = src[l * ld + t0 + k];
        CG_L(cg_ltrans)(r);
        for (ptrdiff_t k = 0; k < m; k++) dst[t0 + k] = r[k];
    }
}

/* dst[l * ld + t] = src[t][l] (the inverse of cg_lt_in) */
CG_LINLINE void CG_L(cg_lt_out)(const LV *src, ptrdiff_t nt, LT *dst, ptrdiff_t ld)
{
    LV r[LW];
    ptrdiff_t t0 = 0;
    for (; t0 + LW <= nt; t0 += LW) {
        for (int k = 0; k < LW; k++) r[k] = src[t0 + k];
        CG_L(cg_ltrans)(r);
        for (int l = 0; l < LW; l++) memcpy(dst + l * ld + t0, &r[l], sizeof(LV));
    }
    if (t0 < nt) {
        const ptrdiff_t m = nt - t0;
        memset(r, 0, sizeof(r));
        for (ptrdiff_t k = 0; k < m; k++) r[k] = src[t0 + k];
        CG_L(cg_ltrans)(r);
        for (int l = 0; l < LW; l++)
            for (ptrdiff_t k = 0; k < m; k++) dst[l * ld + t0 + k] = r[l][k];
    }
}

/* a lane vector of per-channel values p[0 .. LW) (zeros without p) */
CG_LINLINE LV CG_L(cg_lvec)(const LT *p)
{
    LV v = {0};
    if (p) memcpy(&v, p, sizeof(LV));
    return v;
}

/* The workspace is carved into buffers of lane vectors with a gap of CG_LSKEW vectors after each.
 * Without the gaps, buffers whose sizes are multiples of 4 KiB (64 steps of lane vectors, or 64 x 16
 * of them) start at the same address modulo 4 KiB, and a load from one buffer is held up by a store to
 * another at the same offset (the core compares only the low 12 address bits before it knows the
 * full addresses: "4K aliasing"). The reverse recurrence loads e_t and h_{t-1} while it stores the
 * dB / dC terms of step t: without the gaps it took 17-18 cycles per state index and step instead of
 * 12 (AMD Zen 4), the whole backward about 10% longer. 17 vectors (1088 bytes) puts the buffers at
 * offsets modulo 4 KiB that are at least a cache line apart. */
#ifndef CG_LSKEW
#define CG_LSKEW 17
#endif
/* Vectors that a buffer of nvec vectors takes from the workspace, its gap included */
#define CG_LWS(nvec) ((nvec) + CG_LSKEW)
/* The next buffer of nvec vectors from *p (advancing *p past it and the gap). */
CG_LINLINE LV *CG_L(cg_lws_take)(LV **p, ptrdiff_t nvec)
{
    LV *r = *p;
    *p = r + CG_LWS(nvec);
    return r;
}

/* Bytes of workspace for one item (chunk steps per chunk, NP padded state size, K blocks of LW channels
 * in a backward item): the buffers cg_lscan_fwd / cg_lscan_bwd take, term by term. */
static inline size_t CG_L(cg_lscan_ws_bytes)(ptrdiff_t chunk, ptrdiff_t NP, ptrdiff_t K)
{
    const ptrdiff_t fwd = 3 * CG_LWS(NP) + 5 * CG_LWS(chunk) + CG_LWS(CG_LSUB * NP);
    const ptrdiff_t bwd = 3 * CG_LWS(K * NP) + CG_LWS(K) + 2 * CG_LWS(NP) + CG_LBUF * CG_LWS(chunk)
                        + 4 * CG_LWS(chunk * NP);
    const ptrdiff_t nvec = fwd > bwd ? fwd : bwd;
    return (size_t)nvec * sizeof(LV) + (size_t)K * (NP + 2) * LW * sizeof(double) + 64;
}

#if defined(__GNUC__) && !defined(__clang__) && LW == 16
#ifndef CG_V16I_DEFINED
#define CG_V16I_DEFINED
typedef int cg_v16i __attribute__((vector_size(64)));
typedef unsigned int cg_v16u __attribute__((vector_size(64)));
#endif
#define CG_LEXP_VECTOR 1
/* Inputs with |x| <= this take cg_lexp_fast (the scale 2^m then stays a normal number). */
#define CG_LEXP_FAST_MAX 86.0f
/* 2^(j/32) for j = 0 .. 31, in two vectors: a two-source permute picks one entry per lane */
static const LV CG_L(cg_lexp_tlo) = {
    1.0000000000e+00f, 1.0218971968e+00f, 1.0442737341e+00f, 1.0671404600e+00f, 1.0905077457e+00f,
    1.1143867970e+00f, 1.1387885809e+00f, 1.1637248993e+00f, 1.1892070770e+00f, 1.2152473927e+00f,
    1.2418577671e+00f, 1.2690509558e+00f, 1.2968395948e+00f, 1.3252366781e+00f, 1.3542555571e+00f,
    1.3839099407e+00f};
static const LV CG_L(cg_lexp_thi) = {
    1.4142135382e+00f, 1.4451807737e+00f, 1.4768261909e+00f, 1.5091644526e+00f, 1.5422108173e+00f,
    1.5759809017e+00f, 1.6104903221e+00f, 1.6457555294e+00f, 1.6817928553e+00f, 1.7186193466e+00f,
    1.7562521696e+00f, 1.7947090864e+00f, 1.8340080976e+00f, 1.8741676807e+00f, 1.9152065516e+00f,
    1.9571441412e+00f};
#define CG_LEXP_MAGIC 12582912.0f                       /* 1.5 * 2^23: x + MAGIC rounds x to an integer */

/* The exps below write x = k ln 2 / 32 + r for an integer k (its bits in kb: 0x4B400000 + k) and
 * |r| <= ln 2 / 64, then e^x = 2^(k div 32) 2^(j/32) e^r with j = k mod 32. They compute
 * p = 2^(j/32) e^r as T + (T v) q: T the table entry, v = r or r in some unit, and q(v) a polynomial
 * with 1 + v q(v) ~ e^r. */
#define CG_LEXP_TAIL(kb, v, q, p)                                                                \
    const LV T_ = __builtin_shuffle(CG_L(cg_lexp_tlo), CG_L(cg_lexp_thi), kb);                  \
    const LV p = (T_ * (v)) * (q) + T_

/* exp(x) from k = round(32 x / ln 2) and r = x - k ln 2 / 32 (ln 2 / 32 in two parts, the first
 * with 11 bits, so k times it is exact for |k| < 2^13); e^r by its cubic Taylor polynomial
 * (truncation error 6e-10). p and kb as CG_LEXP_TAIL. */
#define CG_LEXP_REDUCE(x, p, kb)                                                                 \
    LV kf_ = (x) * CG_LEXP_SCALE + CG_LEXP_MAGIC;                                               \
    const cg_v16i kb = (cg_v16i)kf_;                                                             \
    kf_ = kf_ - CG_LEXP_MAGIC;                                                                   \
    LV r_ = (x) - kf_ * 2.166748046875e-02f;                                                     \
    r_ = r_ - kf_ * -6.631076303165e-06f;                                                        \
    CG_LEXP_TAIL(kb, r_, (r_ * 0.16666667f + 0.5f) * r_ + 1.0f, p)

/* p 2^(k div 32) for normal results: k div 32 added to p's exponent field. With k << 18 the bits
 * of k above the fifth land in the exponent; the mask drops j. */
#define CG_LEXP_SCALE_FAST(p, kb) ((LV)((cg_v16u)(p) + (((cg_v16u)(kb) << 18) & 0xFF800000u)))

/* p 2^(k div 32) for any k, as two exact factors; +inf where big, 0 where small (NaN stays NaN) */
CG_LINLINE LV CG_L(cg_lexp_scale)(LV p, cg_v16i kb, cg_v16i big, cg_v16i small)
{
    const LV zero = {0};
    const cg_v16i m = (kb - 0x4B400000) >> 5, m1 = m >> 1;
    const LV s1 = (LV)((cg_v16u)(m1 + 127) << 23), s2 = (LV)((cg_v16u)(m - m1 + 127) << 23);
    const LV res = (p * s1) * s2;
    const cg_v16i inf = (cg_v16i)(zero + __builtin_inff());
    return (LV)((((cg_v16i)res & ~big) | (inf & big)) & ~small);
}

/* The general exp: +inf above log(FLT_MAX), 0 below log(2^-126) (results that would be subnormal
 * are flushed); NaN stays NaN. At most 2 ulp off (tests/test_scan.py::test_lane_exp_accuracy). */
CG_LINLINE LV CG_L(cg_lexp)(LV x)
{
    CG_LEXP_REDUCE(x, p, kb);
    return CG_L(cg_lexp_scale)(p, kb, x > 88.7228390f, x < -87.3365448f);
}

/* exp for |x| <= CG_LEXP_FAST_MAX only (k div 32 lies in [-125, 124] there, so the scaled p stays
 * a normal number). Bitwise equal to cg_lexp on that range. */
CG_LINLINE LV CG_L(cg_lexp_fast)(LV x)
{
    CG_LEXP_REDUCE(x, p, kb);
    return CG_LEXP_SCALE_FAST(p, kb);
}

/* The decays exp(dt a), given as = a * CG_LEXP_SCALE: w = dt as is the exponent in units of
 * ln 2 / 32, so k = round(w) and v = w - k need no ln 2 of their own, and a quadratic in v fitted
 * to 2^(v/32) (minimax, relative error 5.3e-8) takes the place of the cubic. Three multiply-adds
 * fewer than cg_lexp(dt a). The price is the rounding of a * 32/ln 2 and of dt as: at most
 * 2.5 + 3 |dt a| ulp from exp(dt a) (tests/test_scan.py::test_lane_decay_accuracy), where exp of
 * the float product dt a is 0.5 + |dt a| ulp off. cg_ldecay_fast needs |dt a| <= CG_LEXP_FAST_MAX. */
#define CG_LDECAY_REDUCE(dt, as, p, kb)                                                          \
    LV kf_ = (dt) * (as) + CG_LEXP_MAGIC;                                                        \
    const cg_v16i kb = (cg_v16i)kf_;                                                             \
    kf_ = kf_ - CG_LEXP_MAGIC;                                                                   \
    const LV v_ = (dt) * (as) - kf_;                                                             \
    CG_LEXP_TAIL(kb, v_, v_ * 2.3459653312e-04f + 2.1661167964e-02f, p)

CG_LINLINE LV CG_L(cg_ldecay_fast)(LV dt, LV as)
{
    CG_LDECAY_REDUCE(dt, as, p, kb);
    return CG_LEXP_SCALE_FAST(p, kb);
}

/* exp(dt a) for any dt a; equal to cg_ldecay_fast where that applies */
CG_LINLINE LV CG_L(cg_ldecay)(LV dt, LV as)
{
    CG_LDECAY_REDUCE(dt, as, p, kb);
    const LV w = dt * as;
    return CG_L(cg_lexp_scale)(p, kb, w > 4096.0f, w < -4032.0f);   /* 128 and -126 times 32 */
}

/* 1 if every lane of |v| * s is <= CG_LEXP_FAST_MAX (0 if any is larger or NaN). */
CG_LINLINE cg_v16i CG_L(cg_lexp_fits)(LV v, LV s)
{
    const LV a = (LV)((cg_v16u)v & 0x7FFFFFFFu);
    return (cg_v16i)(a * s <= CG_LEXP_FAST_MAX);
}

CG_LINLINE int CG_L(cg_lall)(cg_v16i m)
{
    /* an AND tree over the lanes (gcc extracted them one by one from the plain loop) */
    const cg_v16i s8 = {8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7};
    const cg_v16i s4 = {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11};
    const cg_v16i s2 = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
    const cg_v16i s1 = {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};
    m &= __builtin_shuffle(m, s8);
    m &= __builtin_shuffle(m, s4);
    m &= __builtin_shuffle(m, s2);
    m &= __builtin_shuffle(m, s1);
    return m[0] != 0;
}

/* m ? a : b per lane (m: lanes of all ones or all zeros, as comparisons give) */
CG_LINLINE LV CG_L(cg_lsel)(cg_v16i m, LV a, LV b)
{
    return (LV)(((cg_v16i)a & m) | ((cg_v16i)b & ~m));
}

/* exp(-|x|), in [0, 1] (0 where it would be subnormal; NaN stays NaN) */
CG_LINLINE LV CG_L(cg_lexp_negabs)(LV x)
{
    const LV one = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const LV na = (LV)((cg_v16u)x | 0x80000000u);
    return CG_L(cg_lall)(CG_L(cg_lexp_fits)(na, one)) ? CG_L(cg_lexp_fast)(na) : CG_L(cg_lexp)(na);
}

/* sigmoid(x) from e = exp(-|x|): 1 / (1 + e) for x >= 0, e / (1 + e) below */
CG_LINLINE LV CG_L(cg_lsigmoid_e)(LV x, LV e)
{
    const LV zero = {0};
    return CG_L(cg_lsel)(x >= zero, zero + 1.0f, e) / (1.0f + e);
}

/* sigmoid(x) */
CG_LINLINE LV CG_L(cg_lsigmoid)(LV x)
{
    return CG_L(cg_lsigmoid_e)(x, CG_L(cg_lexp_negabs)(x));
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)), and x itself above 20 (torch's threshold); with sig,
 * also its derivative sigmoid(x) (1 above 20). log1p(e) for e in [0, 1] is e P(e), P the degree-10
 * polynomial fitted (weighted least squares, refined towards minimax) to log1p(e) / e: within 2 ulp
 * of log1p in float32, without the divisions of the general log1p. With the exp's error, softplus is
 * within 3 ulp and sigmoid within 3.5 ulp (tests/test_scan.py::test_lane_softplus_accuracy). */
CG_LINLINE LV CG_L(cg_lsoftplus)(LV x, LV *sig)
{
    const LV zero = {0};
    const LV e = CG_L(cg_lexp_negabs)(x);
    LV p = e * 2.089992631226778e-3f - 1.3706356287002563e-2f;
    p = p * e + 4.2113397270441055e-2f;
    p = p * e - 8.31892341375351e-2f;
    p = p * e + 1.2471595406532288e-1f;
    p = p * e - 1.6129089891910553e-1f;
    p = p * e + 1.9897018373012543e-1f;
    p = p * e - 2.4988235533237457e-1f;
    p = p * e + 3.333263397216797e-1f;
    p = p * e - 4.9999985098838806e-1f;
    p = p * e + 1.0f;
    const cg_v16i big = x > 20.0f;
    if (sig) *sig = CG_L(cg_lsel)(big, zero + 1.0f, CG_L(cg_lsigmoid_e)(x, e));
    return CG_L(cg_lsel)(big, x, CG_L(cg_lsel)(x > zero, x, zero) + e * p);
}
#endif

/* The chunk's dt (dtT), its softplus derivative (sigT, unless NULL), u (uT) and x = dt u (xT) as lane
 * vectors; rawT is scratch. */
CG_LINLINE void CG_L(cg_lscan_load)(ptrdiff_t nt, ptrdiff_t L, const LT *u, const LT *delta, const LT *bias,
                                       int softplus, LV *dtT, LV *sigT, LV *uT, LV *xT, LV *rawT)
{
    CG_L(cg_lt_in)(delta, L, nt, rawT);
    if (bias) {
        const LV bv = CG_L(cg_lvec)(bias);
        for (ptrdiff_t t = 0; t < nt; t++) rawT[t] += bv;
    }
#ifdef CG_LEXP_VECTOR
    if (softplus && sigT)
        for (ptrdiff_t t = 0; t < nt; t++) dtT[t] = CG_L(cg_lsoftplus)(rawT[t], &sigT[t]);
    else if (softplus)
        for (ptrdiff_t t = 0; t < nt; t++) dtT[t] = CG_L(cg_lsoftplus)(rawT[t], NULL);
    else
#endif
    CG_L(cg_scan_dt)(nt * LW, (const LT *)rawT, (LT)0, softplus, (LT *)dtT, sigT ? (LT *)sigT : NULL);
    CG_L(cg_lt_in)(u, L, nt, uT);
    for (ptrdiff_t t = 0; t < nt; t++) xT[t] = dtT[t] * uT[t];
}

/* for the tests: x[k] = exp(x[k]) by the exp the decays use (m a multiple of LW) */
CG_CLONES static void CG_L(cg_lexp_array)(LT *x, ptrdiff_t m)
{
#ifdef CG_LEXP_VECTOR
    const LV zero = {0};
    for (ptrdiff_t k = 0; k + LW <= m; k += LW) {
        LV v;
        memcpy(&v, x + k, sizeof(LV));
        v = CG_L(cg_lall)(CG_L(cg_lexp_fits)(v, zero + 1.0f)) ? CG_L(cg_lexp_fast)(v) : CG_L(cg_lexp)(v);
        memcpy(x + k, &v, sizeof(LV));
    }
#else
    CG_IVDEP for (ptrdiff_t k = 0; k < m; k++) x[k] = LEXP(x[k]);
#endif
}

/* for the tests: sig[k] = sigmoid(x[k]), then x[k] = softplus(x[k]) as the lane kernels compute them (m a
 * multiple of LW) */
CG_CLONES static void CG_L(cg_lsoftplus_array)(LT *x, LT *sig, ptrdiff_t m)
{
#ifdef CG_LEXP_VECTOR
    for (ptrdiff_t k = 0; k + LW <= m; k += LW) {
        LV v, s;
        memcpy(&v, x + k, sizeof(LV));
        v = CG_L(cg_lsoftplus)(v, &s);
        memcpy(x + k, &v, sizeof(LV));
        memcpy(sig + k, &s, sizeof(LV));
    }
#else
    CG_L(cg_scan_dt)(m, x, (LT)0, 1, x, sig);
#endif
}

/* The largest |A_i| of each lane (+inf where an A_i is not finite or is huge): |dt A_i| <= |dt| amax. */
CG_LINLINE LV CG_L(cg_lscan_amax)(ptrdiff_t n, const LV *AT)
{
    LV amax = {0};
    for (ptrdiff_t i = 0; i < n; i++)
        for (int l = 0; l < LW; l++) {
            LT a = AT[i][l] < 0 ? -AT[i][l] : AT[i][l];
            if (!(a < (LT)1e30)) a = (LT)__builtin_inf();
            if (a > amax[l]) amax[l] = a;
        }
    return amax;
}

/* AS[i] = AT[i] * CG_LEXP_SCALE (the A the decays' exp takes) */
CG_LINLINE void CG_L(cg_lscan_ascale)(ptrdiff_t n, const LV *AT, LV *AS)
{
    for (ptrdiff_t i = 0; i < n; i++) AS[i] = AT[i] * (LT)CG_LEXP_SCALE;
}

/* Whether every decay exp(dt_t A_i) of the block (t < nt) takes cg_ldecay_fast (float lanes only). */
CG_LINLINE int CG_L(cg_lscan_fast_block)(ptrdiff_t nt, const LV *dtT, LV amax)
{
#ifdef CG_LEXP_VECTOR
    cg_v16i fits = CG_L(cg_lexp_fits)(dtT[0], amax);
    for (ptrdiff_t t = 1; t < nt; t++) fits &= CG_L(cg_lexp_fits)(dtT[t], amax);
    return CG_L(cg_lall)(fits);
#else
    (void)nt; (void)dtT; (void)amax;
    return 0;
#endif
}

/* E[t * n + i] = exp(dt_t A_i) for t < nt (lane vectors); AS from cg_lscan_ascale, amax from
 * cg_lscan_amax. The float lanes take the fast exp when every |dt_t A_i| of the block is small
 * enough (one test per block). */
CG_LINLINE void CG_L(cg_lscan_decay)(ptrdiff_t nt, ptrdiff_t n, const LV *dtT, const LV *AT, const LV *AS,
                                        LV amax, LV *E)
{
#ifdef CG_LEXP_VECTOR
    (void)AT;
    if (CG_L(cg_lscan_fast_block)(nt, dtT, amax)) {
        for (ptrdiff_t t = 0; t < nt; t++)
            for (ptrdiff_t i = 0; i < n; i++) E[t * n + i] = CG_L(cg_ldecay_fast)(dtT[t], AS[i]);
    } else {
        for (ptrdiff_t t = 0; t < nt; t++)
            for (ptrdiff_t i = 0; i < n; i++) E[t * n + i] = CG_L(cg_ldecay)(dtT[t], AS[i]);
    }
#else
    (void)amax;
    (void)AS;
    for (ptrdiff_t t = 0; t < nt; t++)
        for (ptrdiff_t i = 0; i < n; i++) E[t * n + i] = dtT[t] * AT[i];
    LT *e = (LT *)E;
    const ptrdiff_t m = nt * n * LW;
    CG_IVDEP for (ptrdiff_t k = 0; k < m; k++) e[k] = LEXP(e[k]);
#endif
}

/* for the tests: x[k] = exp(x[k] a[k]) as the decays compute it (the fast exp for blocks of LW where that
 * applies; m a multiple of LW) */
CG_CLONES static void CG_L(cg_ldecay_array)(LT *x, const LT *a, ptrdiff_t m)
{
    for (ptrdiff_t k = 0; k + LW <= m; k += LW) {
        LV v, av, as, e;
        memcpy(&v, x + k, sizeof(LV));
        memcpy(&av, a + k, sizeof(LV));
        CG_L(cg_lscan_ascale)(1, &av, &as);
        const LV amax = CG_L(cg_lscan_amax)(1, &av);
        CG_L(cg_lscan_decay)(1, 1, &v, &av, &as, amax, &e);
        memcpy(x + k, &e, sizeof(LV));
    }
}

/* One step of four state indices: hc[j] = e_j hp[j] + x b[j] and y[j] += hc[j] c[j] for j < 4 */
CG_LINLINE void CG_L(cg_lstep4)(LV e0, LV e1, LV e2, LV e3, const LV *hp, LV xv, const LT *b, const LT *c, LV *hc,
                                   LV *y)
{
    const LV v0 = e0 * hp[0] + xv * b[0], v1 = e1 * hp[1] + xv * b[1];
    const LV v2 = e2 * hp[2] + xv * b[2], v3 = e3 * hp[3] + xv * b[3];
    hc[0] = v0;
    hc[1] = v1;
    hc[2] = v2;
    hc[3] = v3;
    y[0] += v0 * c[0];
    y[1] += v1 * c[1];
    y[2] += v2 * c[2];
    y[3] += v3 * c[3];
}

/* Recurrence over nt steps from state h (n vectors). With H, h_t goes to H[t * n + i] and h is
 * left unchanged; without, h becomes the state after the last step. y_t = C_t . h_t -> yT[t]. */
CG_LINLINE void CG_L(cg_lscan_steps)(ptrdiff_t nt, ptrdiff_t n, ptrdiff_t NP, LV *h, const LV *E,
                                        const LV *xT, const LT *Bp, const LT *Cp, LV *yT, LV *H)
{
    for (ptrdiff_t t = 0; t < nt; t++) {
        const LT *b = Bp + t * NP, *c = Cp + t * NP;
        const LV *hp = (H && t) ? H + (t - 1) * n : h;
        LV *hc = H ? H + t * n : h;
        const LV *e = E + t * n;
        const LV xv = xT[t];
        LV y[4] = {{0}, {0}, {0}, {0}};                     /* four chains: y's FMAs overlap */
        ptrdiff_t i = 0;
        for (; i + 4 <= n; i += 4)
            CG_L(cg_lstep4)(e[i], e[i + 1], e[i + 2], e[i + 3], hp + i, xv, b + i, c + i, hc + i, y);
        for (; i < n; i++) {
            LV v = e[i] * hp[i] + xv * b[i];
            hc[i] = v;
            y[0] += v * c[i];
        }
        yT[t] = (y[0] + y[1]) + (y[2] + y[3]);
    }
}

/* cg_lscan_decay then cg_lscan_steps (same arguments, same results bit for bit). Where the block takes the
 * fast exp, each step computes its decays itself: the exp's integer, permute and add work then overlaps
 * the recurrence's multiply-adds instead of running in a pass of its own, and the forward keeps its
 * state in registers (n = 16): about 9 cycles per state index and step instead of 11.5 (decay 6.9 +
 * steps 4.6, AMD Zen 4). E (the decays, nt * n vectors) is written only when H is, for the reverse
 * recurrence. */
CG_LINLINE void CG_L(cg_lscan_decay_steps)(ptrdiff_t nt, ptrdiff_t n, ptrdiff_t NP, LV *h, const LV *dtT,
    const LV *AT, const LV *AS, LV amax, LV *E, const LV *xT, const LT *Bp, const LT *Cp, LV *yT, LV *H)
{
#ifdef CG_LEXP_VECTOR
    if (n == 16 && CG_L(cg_lscan_fast_block)(nt, dtT, amax)) {
        LV hl[16];                                      /* the forward's state (registers) */
        if (!H) memcpy(hl, h, sizeof hl);
        for (ptrdiff_t t = 0; t < nt; t++) {
            const LT *b = Bp + t * NP, *c = Cp + t * NP;
            const LV *hp = !H ? hl : t ? H + (t - 1) * 16 : h;
            LV *hc = H ? H + t * 16 : hl, *e = E + t * 16;
            const LV xv = xT[t], dtv = dtT[t];
            LV y[4] = {{0}, {0}, {0}, {0}};
            for (int i = 0; i < 16; i += 4) {
                const LV e0 = CG_L(cg_ldecay_fast)(dtv, AS[i]), e1 = CG_L(cg_ldecay_fast)(dtv, AS[i + 1]);
                const LV e2 = CG_L(cg_ldecay_fast)(dtv, AS[i + 2]), e3 = CG_L(cg_ldecay_fast)(dtv, AS[i + 3]);
                if (H) {
                    e[i] = e0;
                    e[i + 1] = e1;
                    e[i + 2] = e2;
                    e[i + 3] = e3;
                }
                CG_L(cg_lstep4)(e0, e1, e2, e3, hp + i, xv, b + i, c + i, hc + i, y);
            }
            yT[t] = (y[0] + y[1]) + (y[2] + y[3]);
        }
        if (!H) memcpy(h, hl, sizeof hl);
        return;
    }
#endif
    CG_L(cg_lscan_decay)(nt, n, dtT, AT, AS, amax, E);
    CG_L(cg_lscan_steps)(nt, n, NP, h, E, xT, Bp, Cp, yT, H);
}

/* The reverse recurrence of state indices i0 .. i0 + G - 1 (G <= 4) through one chunk, t = nt - 1 .. 0.
 * Their dh, dA sums and A stay in registers for the whole chunk (and h_t is carried from one step to
 * the next), so each (t, i) loads only e, h_{t-1}, B_t[i], C_t[i] and the PB / PC entries. The
 * group's terms of the per-step sums over i go to S1 / S2 (stored by the first group, added by the
 * others). */
CG_LINLINE void CG_L(cg_lscan_rev_group)(ptrdiff_t nt, ptrdiff_t n, ptrdiff_t NP, ptrdiff_t i0, const int G,
    const LT *b0, const LT *cc0, const LV *E, const LV *H, const LV *hs, const LV *gyT, const LV *dtT,
    const LV *xT, const LV *AT, LV *dh, LV *dAc, LV *PB, LV *PC, const int first, const int s_first,
    LV *S1, LV *S2)
{
    const LV vzero = {0};
    LV d[4], a[4], acc[4], hn[4];
    for (int j = 0; j < G; j++) {
        d[j] = dh[i0 + j];
        a[j] = AT[i0 + j];
        acc[j] = vzero;
        hn[j] = H[(nt - 1) * n + i0 + j];
    }
    for (ptrdiff_t t = nt - 1; t >= 0; t--) {
        const LT *b = b0 + t * NP + i0, *c = cc0 + t * NP + i0;
        const LV *e = E + t * n + i0, *hp = t ? H + (t - 1) * n + i0 : hs + i0;
        LV *pb = PB + t * n + i0, *pc = PC + t * n + i0;
        const LV gv = gyT[t], dtv = dtT[t], xv = xT[t];
        LV s1 = vzero, s2 = vzero;
        for (int j = 0; j < G; j++) {
            const LV hpv = hp[j];
            const LV dv = d[j] + gv * c[j];                 /* gradient of h_t */
            pc[j] = first ? gv * hn[j] : pc[j] + gv * hn[j];
            pb[j] = first ? dv * xv : pb[j] + dv * xv;
            const LV dn = dv * e[j];                        /* gradient of h_{t-1} */
            const LV qv = dn * hpv;                         /* gradient of dt_t A_i */
            acc[j] += qv * dtv;
            s1 += qv * a[j];
            s2 += dv * b[j];
            d[j] = dn;
            hn[j] = hpv;
        }
        S1[t] = s_first ? s1 : S1[t] + s1;
        S2[t] = s_first ? s2 : S2[t] + s2;
    }
    for (int j = 0; j < G; j++) {
        dh[i0 + j] = d[j];
        dAc[i0 + j] = acc[j];
    }
}

/* The reverse recurrence through one chunk (E, H, hs from the recompute; dh: the gradient of the
 * state leaving the chunk, updated to the one entering it), in groups of four state indices. Writes
 * ddtT (through softplus), adds the state's u term to duT and writes dA's chunk part to dAc. The
 * terms of dB / dC (lane vectors over the channels, vector t * n + i) are stored into PB / PC by the
 * item's first block and added by the others; cg_lscan_tree_rows sums their lanes once every block
 * is in. S1, S2: scratch of nt vectors. */
CG_LINLINE void CG_L(cg_lscan_reverse)(ptrdiff_t nt, ptrdiff_t n, ptrdiff_t NP, const LT *b0, const LT *cc0,
    const LV *E, const LV *H, const LV *hs, const LV *gyT, const LV *dtT, const LV *xT, const LV *uT,
    const LV *sigT, const LV *AT, LV *dh, LV *dAc, LV *PB, LV *PC, int first, LV *S1, LV *S2, LV *ddtT,
    LV *duT)
{
    ptrdiff_t i0 = 0;
    for (; i0 + 4 <= n; i0 += 4) {
        if (first)
            CG_L(cg_lscan_rev_group)(nt, n, NP, i0, 4, b0, cc0, E, H, hs, gyT, dtT, xT, AT, dh, dAc, PB, PC, 1,
                                     i0 == 0, S1, S2);
        else
            CG_L(cg_lscan_rev_group)(nt, n, NP, i0, 4, b0, cc0, E, H, hs, gyT, dtT, xT, AT, dh, dAc, PB, PC, 0,
                                     i0 == 0, S1, S2);
    }
    for (; i0 < n; i0++)
        CG_L(cg_lscan_rev_group)(nt, n, NP, i0, 1, b0, cc0, E, H, hs, gyT, dtT, xT, AT, dh, dAc, PB, PC, first,
                                 i0 == 0, S1, S2);
    for (ptrdiff_t t = 0; t < nt; t++) {
        ddtT[t] = (S1[t] + S2[t] * uT[t]) * sigT[t];        /* through softplus */
        duT[t] += S2[t] * dtT[t];
    }
}

/* dst[i * L + c0 + t] = the sum over the lanes of P[t * n + i] (t < nt, i < n), by the fixed tree of
 * cg_lsum4 / cg_lsum_fin. */
CG_LINLINE void CG_L(cg_lscan_tree_rows)(ptrdiff_t nt, ptrdiff_t n, ptrdiff_t L, ptrdiff_t c0, const LV *P, LT *dst)
{
    const LV vzero = {0};
    for (ptrdiff_t t = 0; t < nt; t++)
        for (ptrdiff_t g = 0; g < n; g += LW) {
            LV x[LW / 4];
            for (int q = 0; q < LW / 4; q++) {
                LV v[4];
                for (int j = 0; j < 4; j++) v[j] = g + 4 * q + j < n ? P[t * n + g + 4 * q + j] : vzero;
                x[q] = CG_L(cg_lsum4)(v[0], v[1], v[2], v[3]);
            }
            LT part[LW];
            CG_L(cg_lsum_fin)(x, part);
            const ptrdiff_t m = n - g < LW ? n - g : LW;
            for (ptrdiff_t k = 0; k < m; k++) dst[(g + k) * L + c0 + t] = part[k];
        }
}

CG_CLONES static void CG_L(cg_lscan_fwd)(ptrdiff_t L, ptrdiff_t n, ptrdiff_t NP, ptrdiff_t chunk, const LT *u,
    const LT *delta, const LT *z, const LT *A, const LT *Bp, const LT *Cp, const LT *D, const LT *bias,
    int softplus, const LT *h0, LT *out, LT *states, ptrdiff_t s_ch, LT *last, void *ws)
{
    LV *p = (LV *)ws;
    LV *AT = CG_L(cg_lws_take)(&p, NP), *h = CG_L(cg_lws_take)(&p, NP), *AS = CG_L(cg_lws_take)(&p, NP);
    LV *dtT = CG_L(cg_lws_take)(&p, chunk), *uT = CG_L(cg_lws_take)(&p, chunk), *xT = CG_L(cg_lws_take)(&p, chunk);
    LV *yT = CG_L(cg_lws_take)(&p, chunk), *zT = CG_L(cg_lws_take)(&p, chunk);
    LV *E = CG_L(cg_lws_take)(&p, CG_LSUB * NP);
    const LV Dv = CG_L(cg_lvec)(D);
    for (ptrdiff_t i = 0; i < n; i++)
        for (int l = 0; l < LW; l++) {
            AT[i][l] = A[l * NP + i];
            h[i][l] = h0 ? h0[l * NP + i] : (LT)0;
        }
    const LV amax = CG_L(cg_lscan_amax)(n, AT);
    CG_L(cg_lscan_ascale)(n, AT, AS);
    for (ptrdiff_t i = n; i < NP; i++) h[i] = (LV){0};     /* the padding of the saved states */
    ptrdiff_t ci = 0;
    for (ptrdiff_t c0 = 0; c0 < L; c0 += chunk, ci++) {
        const ptrdiff_t nt = L - c0 < chunk ? L - c0 : chunk;
        if (states) CG_L(cg_lt_out)(h, NP, states + ci * NP, s_ch);
        CG_L(cg_lscan_load)(nt, L, u + c0, delta + c0, bias, softplus, dtT, NULL, uT, xT, zT);
        if (c0 + chunk < L) {
            const ptrdiff_t c1 = c0 + chunk, nn = L - c1 < chunk ? L - c1 : chunk;
            CG_L(cg_lprefetch)(u + c1, L, nn, 0);
            CG_L(cg_lprefetch)(delta + c1, L, nn, 0);
            CG_L(cg_lprefetch)(z ? z + c1 : NULL, L, nn, 0);
            CG_L(cg_lprefetch)(out + c1, L, nn, 1);
        }
        for (ptrdiff_t t0 = 0; t0 < nt; t0 += CG_LSUB) {
            const ptrdiff_t ns = nt - t0 < CG_LSUB ? nt - t0 : CG_LSUB;
            const LT *bt = Bp + (c0 + t0) * NP, *ct = Cp + (c0 + t0) * NP;
            if (n == 16)
                CG_L(cg_lscan_decay_steps)(ns, 16, NP, h, dtT + t0, AT, AS, amax, E, xT + t0, bt, ct, yT + t0, NULL);
            else
                CG_L(cg_lscan_decay_steps)(ns, n, NP, h, dtT + t0, AT, AS, amax, E, xT + t0, bt, ct, yT + t0, NULL);
        }
        /* out = (y + D u) * silu(z) */
        if (D)
            for (ptrdiff_t t = 0; t < nt; t++) yT[t] += Dv * uT[t];
        if (z) CG_L(cg_lt_in)(z + c0, L, nt, zT);
#ifdef CG_LEXP_VECTOR
        if (z)
            for (ptrdiff_t t = 0; t < nt; t++)
                yT[t] = yT[t] * (zT[t] * CG_L(cg_lsigmoid)(zT[t]));
#else
        CG_L(cg_scan_out)(nt * LW, (const LT *)yT, (const LT *)uT, (LT)0, z ? (const LT *)zT : NULL, (LT *)yT);
#endif
        CG_L(cg_lt_out)(yT, nt, out + c0, L);
    }
    for (int l = 0; l < LW; l++)
        for (ptrdiff_t i = 0; i < NP; i++) last[l * NP + i] = i < n ? h[i][l] : (LT)0;
}

/* The backward of one work item: K blocks of LW consecutive channels that share their B / C rows (rows of
 * block k start k * LW rows after the item's pointers). The blocks run one after the other through each
 * chunk; their dB / dC terms are added up as vectors (PB / PC) and summed over the lanes once per chunk,
 * one lane tree per K blocks. */
CG_CLONES static void CG_L(cg_lscan_bwd)(ptrdiff_t L, ptrdiff_t n, ptrdiff_t NP, ptrdiff_t chunk, ptrdiff_t K,
    const LT *u, const LT *delta, const LT *z, const LT *A, const LT *Bp, const LT *Cp, const LT *D, const LT *bias,
    int softplus, const LT *states, ptrdiff_t s_ch, const LT *gout, ptrdiff_t g_ld, const LT *glast, LT *du,
    LT *ddelta, LT *dz,
    LT *dh0, double *dA, double *dD, double *dbias, LT *dB, LT *dC, void *ws)
{
    /* per block: AT, dh, AS (NP vectors each), amax, dAacc (NP * LW doubles), sD, sb (LW doubles each) */
    LV *p = (LV *)ws;
    LV *ATs = CG_L(cg_lws_take)(&p, K * NP), *dhs = CG_L(cg_lws_take)(&p, K * NP), *ASs = CG_L(cg_lws_take)(&p, K * NP);
    LV *amaxs = CG_L(cg_lws_take)(&p, K), *hs = CG_L(cg_lws_take)(&p, NP), *dAc = CG_L(cg_lws_take)(&p, NP);
    /* the CG_LBUF buffers of chunk vectors */
    LV *dtT = CG_L(cg_lws_take)(&p, chunk), *sigT = CG_L(cg_lws_take)(&p, chunk), *uT = CG_L(cg_lws_take)(&p, chunk);
    LV *xT = CG_L(cg_lws_take)(&p, chunk), *yT = CG_L(cg_lws_take)(&p, chunk), *gT = CG_L(cg_lws_take)(&p, chunk);
    LV *zT = CG_L(cg_lws_take)(&p, chunk), *gyT = CG_L(cg_lws_take)(&p, chunk), *dzT = CG_L(cg_lws_take)(&p, chunk);
    LV *ddtT = CG_L(cg_lws_take)(&p, chunk), *duT = CG_L(cg_lws_take)(&p, chunk), *S1 = CG_L(cg_lws_take)(&p, chunk);
    LV *S2 = CG_L(cg_lws_take)(&p, chunk);
    LV *E = CG_L(cg_lws_take)(&p, chunk * NP), *H = CG_L(cg_lws_take)(&p, chunk * NP);
    LV *PC = CG_L(cg_lws_take)(&p, chunk * NP), *PB = CG_L(cg_lws_take)(&p, chunk * NP);
    double *dAaccs = (double *)p, *sDs = dAaccs + K * NP * LW, *sbs = sDs + K * LW;
    const LV vzero = {0};
    const ptrdiff_t n_chunks = (L + chunk - 1) / chunk;
    for (ptrdiff_t k = 0; k < K; k++) {
        LV *AT = ATs + k * NP, *dh = dhs + k * NP;
        const LT *Ak = A + k * LW * NP, *gl = glast ? glast + k * LW * NP : NULL;
        for (ptrdiff_t i = 0; i < n; i++)
            for (int l = 0; l < LW; l++) {
                AT[i][l] = Ak[l * NP + i];
                dh[i][l] = gl ? gl[l * NP + i] : (LT)0;
            }
        amaxs[k] = CG_L(cg_lscan_amax)(n, AT);
        CG_L(cg_lscan_ascale)(n, AT, ASs + k * NP);
    }
    memset(dAaccs, 0, (size_t)K * (NP + 2) * LW * sizeof(double));
    for (ptrdiff_t ci = n_chunks - 1; ci >= 0; ci--) {
        const ptrdiff_t c0 = ci * chunk, nt = L - c0 < chunk ? L - c0 : chunk;
        const LT *b0 = Bp + c0 * NP, *cc0 = Cp + c0 * NP;
        for (ptrdiff_t k = 0; k < K; k++) {
            const ptrdiff_t ro = k * LW * L;                /* block k's rows of the (channel, L) arrays */
            LV *AT = ATs + k * NP, *dh = dhs + k * NP, *AS = ASs + k * NP;
            const LV amax = amaxs[k], Dv = CG_L(cg_lvec)(D ? D + k * LW : NULL);
            /* recompute the chunk from its entry state */
            CG_L(cg_lt_in)(states + k * LW * s_ch + ci * NP, s_ch, NP, hs);
            CG_L(cg_lscan_load)(nt, L, u + ro + c0, delta + ro + c0, bias ? bias + k * LW : NULL, softplus, dtT,
                                sigT, uT, xT, zT);
            /* prefetch what comes next: the next block's rows of this chunk, or the first block's of chunk ci - 1 */
            if (k + 1 < K || ci > 0) {
                const ptrdiff_t r1 = k + 1 < K ? ro + LW * L + c0 : c0 - chunk;
                const ptrdiff_t n1 = k + 1 < K ? nt : chunk;
                CG_L(cg_lprefetch)(u + r1, L, n1, 0);
                CG_L(cg_lprefetch)(delta + r1, L, n1, 0);
                CG_L(cg_lprefetch)(z ? z + r1 : NULL, L, n1, 0);
                CG_L(cg_lprefetch)(gout + (k + 1 < K ? (k + 1) * LW * g_ld + c0 : c0 - chunk), g_ld, n1, 0);
                CG_L(cg_lprefetch)(du + r1, L, n1, 1);
                CG_L(cg_lprefetch)(ddelta + r1, L, n1, 1);
                CG_L(cg_lprefetch)(z ? dz + r1 : NULL, L, n1, 1);
            }
            if (n == 16)
                CG_L(cg_lscan_decay_steps)(nt, 16, NP, hs, dtT, AT, AS, amax, E, xT, b0, cc0, yT, H);
            else
                CG_L(cg_lscan_decay_steps)(nt, n, NP, hs, dtT, AT, AS, amax, E, xT, b0, cc0, yT, H);
            /* output side: gradients of y (gyT), z, D and the direct u term (duT) */
            if (D)
                for (ptrdiff_t t = 0; t < nt; t++) yT[t] += Dv * uT[t];
            CG_L(cg_lt_in)(gout + k * LW * g_ld + c0, g_ld, nt, gT);
            if (z) CG_L(cg_lt_in)(z + ro + c0, L, nt, zT);
#ifdef CG_LEXP_VECTOR
            if (z)
                for (ptrdiff_t t = 0; t < nt; t++) {
                    const LV zz = zT[t], s = CG_L(cg_lsigmoid)(zz);
                    dzT[t] = gT[t] * yT[t] * (s * (1.0f + zz * (1.0f - s)));
                    gyT[t] = gT[t] * (zz * s);
                }
            else
                for (ptrdiff_t t = 0; t < nt; t++) gyT[t] = gT[t];
#else
            CG_L(cg_scan_gout)(nt * LW, (const LT *)gT, (const LT *)yT, (const LT *)uT, (LT)0,
                               z ? (const LT *)zT : NULL, (LT *)gyT, (LT *)dzT, (LT *)duT);
#endif
            if (z) CG_L(cg_lt_out)(dzT, nt, dz + ro + c0, L);
            LV acc = vzero;
            for (ptrdiff_t t = 0; t < nt; t++) {
                acc += gyT[t] * uT[t];
                duT[t] = gyT[t] * Dv;
            }
            for (int l = 0; l < LW; l++) sDs[k * LW + l] += (double)acc[l];
            /* reverse recurrence (n = 16, Mamba's default state size, gets constant loop bounds) */
            if (n == 16)
                CG_L(cg_lscan_reverse)(nt, 16, NP, b0, cc0, E, H, hs, gyT, dtT, xT, uT, sigT, AT, dh, dAc, PB, PC,
                                       k == 0, S1, S2, ddtT, duT);
            else
                CG_L(cg_lscan_reverse)(nt, n, NP, b0, cc0, E, H, hs, gyT, dtT, xT, uT, sigT, AT, dh, dAc, PB, PC,
                                       k == 0, S1, S2, ddtT, duT);
            double *dAacc = dAaccs + k * NP * LW;
            for (ptrdiff_t i = 0; i < n; i++)
                for (int l = 0; l < LW; l++) dAacc[i * LW + l] += (double)dAc[i][l];
            acc = vzero;
            for (ptrdiff_t t = 0; t < nt; t++) acc += ddtT[t];
            for (int l = 0; l < LW; l++) sbs[k * LW + l] += (double)acc[l];
            CG_L(cg_lt_out)(ddtT, nt, ddelta + ro + c0, L);
            CG_L(cg_lt_out)(duT, nt, du + ro + c0, L);
        }
        if (dC) CG_L(cg_lscan_tree_rows)(nt, n, L, c0, PC, dC);
        if (dB) CG_L(cg_lscan_tree_rows)(nt, n, L, c0, PB, dB);
    }
    for (ptrdiff_t k = 0; k < K; k++) {
        const LV *dh = dhs + k * NP;
        const double *dAacc = dAaccs + k * NP * LW;
        for (int l = 0; l < LW; l++) {
            const ptrdiff_t ch = k * LW + l;
            for (ptrdiff_t i = 0; i < NP; i++) {
                dA[ch * NP + i] = i < n ? dAacc[i * LW + l] : 0.0;
                if (dh0) dh0[ch * NP + i] = i < n ? dh[i][l] : (LT)0;
            }
            dD[ch] = sDs[k * LW + l];
            dbias[ch] = sbs[k * LW + l];
        }
    }
}

#undef CG_LEXP_VECTOR
#undef CG_L
#undef CG_L_CAT
#undef CG_L_CAT2
