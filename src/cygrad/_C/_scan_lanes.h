/* Selective scan over channel lanes: the fast path of cygrad._C.scan.
 *
 * Included twice by scan.pyx, after its per-channel kernels (cg_scan_dt_S, cg_scan_out_S,
 * cg_scan_gout_S), with
 *     LT  the scalar type (float / double),    LS  its suffix (f / d),
 *     LW  the lanes per vector (16 / 8: one AVX-512 register), LV  the vector type of LW LTs,
 *     LEXP  the branch-free exp of _vmath.h.
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
 *   u, delta, z, out, gout, du, ddelta, dz: rows of L (channel stride L);
 *   A: rows of NP (channel stride NP), n real entries; h0 / last / glast / dh0 / dA: likewise;
 *   B, C: one row of NP per step (step stride NP), from step 0;
 *   states: the state entering chunk ci of channel l at l * s_ch + ci * NP;
 *   dB, dC partials: rows of L, one per state index (n rows).
 * The workspace (cg_lscan_ws_bytes) must be 64-byte aligned (cg_lscan_alloc).
 */

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
#define CG_LBUF 11

/* r[k] = sum of the LW lanes of v[k], k < LW, in a fixed order: lanes i and i + LW/2 first, then
 * i and i + LW/4, ... (a transpose-and-add tree, log2(LW) levels). */
CG_LINLINE void CG_L(cg_lsum)(const LV *v, LT *r)
{
#if (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 16
    LV w[8], x[4], y[2], o;
    for (int k = 0; k < 8; k++)
        w[k] = __builtin_shufflevector(v[2 * k], v[2 * k + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
             + __builtin_shufflevector(v[2 * k], v[2 * k + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29,
                                       30, 31);
    for (int k = 0; k < 4; k++)
        x[k] = __builtin_shufflevector(w[2 * k], w[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
             + __builtin_shufflevector(w[2 * k], w[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30,
                                       31);
    for (int k = 0; k < 2; k++)
        y[k] = __builtin_shufflevector(x[2 * k], x[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29)
             + __builtin_shufflevector(x[2 * k], x[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30,
                                       31);
    o = __builtin_shufflevector(y[0], y[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
      + __builtin_shufflevector(y[0], y[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    memcpy(r, &o, sizeof(LV));
#elif (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && LW == 8
    LV w[4], x[2], o;
    for (int k = 0; k < 4; k++)
        w[k] = __builtin_shufflevector(v[2 * k], v[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11)
             + __builtin_shufflevector(v[2 * k], v[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    for (int k = 0; k < 2; k++)
        x[k] = __builtin_shufflevector(w[2 * k], w[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13)
             + __builtin_shufflevector(w[2 * k], w[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15);
    o = __builtin_shufflevector(x[0], x[1], 0, 2, 4, 6, 8, 10, 12, 14)
      + __builtin_shufflevector(x[0], x[1], 1, 3, 5, 7, 9, 11, 13, 15);
    memcpy(r, &o, sizeof(LV));
#else
    /* the same tree, lane by lane */
    for (int k = 0; k < LW; k++) {
        LT s[LW];
        memcpy(s, &v[k], sizeof(LV));
        for (int h = LW / 2; h >= 1; h /= 2)
            for (int i = 0; i < h; i++) s[i] = s[i] + s[i + h];
        r[k] = s[0];
    }
#endif
}

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

/* Bytes of workspace for one item (chunk steps per chunk, NP padded state size). */
static inline size_t CG_L(cg_lscan_ws_bytes)(ptrdiff_t chunk, ptrdiff_t NP)
{
    ptrdiff_t npw = (NP + LW - 1) / LW * LW;            /* vectors of the cg_lsum inputs */
    ptrdiff_t nvec = 4 * NP + 2 * npw + CG_LBUF * chunk + 2 * chunk * NP + CG_LSUB * NP;
    return (size_t)nvec * sizeof(LV) + (size_t)NP * LW * sizeof(double) + 64;
}

/* The chunk's dt (dtT), its softplus derivative (sigT), u (uT) and x = dt u (xT) as lane
 * vectors; rawT is scratch. */
CG_LINLINE void CG_L(cg_lscan_load)(ptrdiff_t nt, ptrdiff_t L, const LT *u, const LT *delta, const LT *bias,
                                       int softplus, LV *dtT, LV *sigT, LV *uT, LV *xT, LV *rawT)
{
    CG_L(cg_lt_in)(delta, L, nt, rawT);
    if (bias) {
        const LV bv = CG_L(cg_lvec)(bias);
        for (ptrdiff_t t = 0; t < nt; t++) rawT[t] += bv;
    }
    CG_L(cg_scan_dt)(nt * LW, (const LT *)rawT, (LT)0, softplus, (LT *)dtT, (LT *)sigT);
    CG_L(cg_lt_in)(u, L, nt, uT);
    for (ptrdiff_t t = 0; t < nt; t++) xT[t] = dtT[t] * uT[t];
}

/* E[t * n + i] = exp(dt_t A_i) for t < nt (lane vectors). */
CG_LINLINE void CG_L(cg_lscan_decay)(ptrdiff_t nt, ptrdiff_t n, const LV *dtT, const LV *AT, LV *E)
{
    for (ptrdiff_t t = 0; t < nt; t++)
        for (ptrdiff_t i = 0; i < n; i++) E[t * n + i] = dtT[t] * AT[i];
    LT *e = (LT *)E;
    const ptrdiff_t m = nt * n * LW;
    CG_IVDEP for (ptrdiff_t k = 0; k < m; k++) e[k] = LEXP(e[k]);
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
        const LV xv = xT[t];
        LV yv = {0};
        for (ptrdiff_t i = 0; i < n; i++) {
            LV hv = E[t * n + i] * hp[i] + xv * b[i];
            hc[i] = hv;
            yv += hv * c[i];
        }
        yT[t] = yv;
    }
}

CG_CLONES static void CG_L(cg_lscan_fwd)(ptrdiff_t L, ptrdiff_t n, ptrdiff_t NP, ptrdiff_t chunk, const LT *u,
    const LT *delta, const LT *z, const LT *A, const LT *Bp, const LT *Cp, const LT *D, const LT *bias,
    int softplus, const LT *h0, LT *out, LT *states, ptrdiff_t s_ch, LT *last, void *ws)
{
    LV *AT = (LV *)ws, *h = AT + NP, *dtT = h + NP, *sigT = dtT + chunk, *uT = sigT + chunk, *xT = uT + chunk;
    LV *yT = xT + chunk, *zT = yT + chunk, *E = zT + chunk;      /* E: CG_LSUB * n vectors */
    const LV Dv = CG_L(cg_lvec)(D);
    for (ptrdiff_t i = 0; i < n; i++)
        for (int l = 0; l < LW; l++) {
            AT[i][l] = A[l * NP + i];
            h[i][l] = h0 ? h0[l * NP + i] : (LT)0;
        }
    ptrdiff_t ci = 0;
    for (ptrdiff_t c0 = 0; c0 < L; c0 += chunk, ci++) {
        const ptrdiff_t nt = L - c0 < chunk ? L - c0 : chunk;
        if (states)
            for (int l = 0; l < LW; l++)
                for (ptrdiff_t i = 0; i < NP; i++) states[l * s_ch + ci * NP + i] = i < n ? h[i][l] : (LT)0;
        CG_L(cg_lscan_load)(nt, L, u + c0, delta + c0, bias, softplus, dtT, sigT, uT, xT, zT);
        for (ptrdiff_t t0 = 0; t0 < nt; t0 += CG_LSUB) {
            const ptrdiff_t ns = nt - t0 < CG_LSUB ? nt - t0 : CG_LSUB;
            CG_L(cg_lscan_decay)(ns, n, dtT + t0, AT, E);
            CG_L(cg_lscan_steps)(ns, n, NP, h, E, xT + t0, Bp + (c0 + t0) * NP, Cp + (c0 + t0) * NP, yT + t0, NULL);
        }
        /* out = (y + D u) * silu(z) */
        if (D)
            for (ptrdiff_t t = 0; t < nt; t++) yT[t] += Dv * uT[t];
        if (z) CG_L(cg_lt_in)(z + c0, L, nt, zT);
        CG_L(cg_scan_out)(nt * LW, (const LT *)yT, (const LT *)uT, (LT)0, z ? (const LT *)zT : NULL, (LT *)yT);
        CG_L(cg_lt_out)(yT, nt, out + c0, L);
    }
    for (int l = 0; l < LW; l++)
        for (ptrdiff_t i = 0; i < NP; i++) last[l * NP + i] = i < n ? h[i][l] : (LT)0;
}

CG_CLONES static void CG_L(cg_lscan_bwd)(ptrdiff_t L, ptrdiff_t n, ptrdiff_t NP, ptrdiff_t chunk, const LT *u,
    const LT *delta, const LT *z, const LT *A, const LT *Bp, const LT *Cp, const LT *D, const LT *bias,
    int softplus, const LT *states, ptrdiff_t s_ch, const LT *gout, const LT *glast, LT *du, LT *ddelta, LT *dz,
    LT *dh0, double *dA, double *dD, double *dbias, LT *dB, LT *dC, void *ws)
{
    const ptrdiff_t npw = (NP + LW - 1) / LW * LW;
    LV *AT = (LV *)ws, *dh = AT + NP, *hs = dh + NP, *dAc = hs + NP, *pb = dAc + NP, *pc = pb + npw;
    LV *dtT = pc + npw, *sigT = dtT + chunk, *uT = sigT + chunk, *xT = uT + chunk, *yT = xT + chunk;
    LV *gT = yT + chunk, *zT = gT + chunk, *gyT = zT + chunk, *dzT = gyT + chunk, *ddtT = dzT + chunk;
    LV *duT = ddtT + chunk, *E = duT + chunk, *H = E + chunk * NP;
    double *dAacc = (double *)(H + chunk * NP + CG_LSUB * NP);
    const LV vzero = {0}, Dv = CG_L(cg_lvec)(D);
    double sD[LW], sb[LW];
    LT part[LW];
    const ptrdiff_t n_chunks = (L + chunk - 1) / chunk;
    for (ptrdiff_t i = 0; i < npw; i++) pb[i] = pc[i] = vzero;
    for (ptrdiff_t i = 0; i < n; i++)
        for (int l = 0; l < LW; l++) {
            AT[i][l] = A[l * NP + i];
            dh[i][l] = glast ? glast[l * NP + i] : (LT)0;
        }
    for (int l = 0; l < LW; l++) sD[l] = sb[l] = 0.0;
    memset(dAacc, 0, (size_t)NP * LW * sizeof(double));
    for (ptrdiff_t ci = n_chunks - 1; ci >= 0; ci--) {
        const ptrdiff_t c0 = ci * chunk, nt = L - c0 < chunk ? L - c0 : chunk;
        const LT *b0 = Bp + c0 * NP, *cc0 = Cp + c0 * NP;
        /* recompute the chunk from its entry state */
        for (ptrdiff_t i = 0; i < n; i++)
            for (int l = 0; l < LW; l++) hs[i][l] = states[l * s_ch + ci * NP + i];
        CG_L(cg_lscan_load)(nt, L, u + c0, delta + c0, bias, softplus, dtT, sigT, uT, xT, zT);
        CG_L(cg_lscan_decay)(nt, n, dtT, AT, E);
        CG_L(cg_lscan_steps)(nt, n, NP, hs, E, xT, b0, cc0, yT, H);
        /* output side: gradients of y (gyT), z, D and the direct u term (duT) */
        if (D)
            for (ptrdiff_t t = 0; t < nt; t++) yT[t] += Dv * uT[t];
        CG_L(cg_lt_in)(gout + c0, L, nt, gT);
        if (z) CG_L(cg_lt_in)(z + c0, L, nt, zT);
        CG_L(cg_scan_gout)(nt * LW, (const LT *)gT, (const LT *)yT, (const LT *)uT, (LT)0,
                           z ? (const LT *)zT : NULL, (LT *)gyT, (LT *)dzT, (LT *)duT);
        if (z) CG_L(cg_lt_out)(dzT, nt, dz + c0, L);
        LV acc = vzero;
        for (ptrdiff_t t = 0; t < nt; t++) {
            acc += gyT[t] * uT[t];
            duT[t] = gyT[t] * Dv;
        }
        for (int l = 0; l < LW; l++) sD[l] += (double)acc[l];
        /* reverse recurrence */
        for (ptrdiff_t i = 0; i < n; i++) dAc[i] = vzero;
        for (ptrdiff_t t = nt - 1; t >= 0; t--) {
            const LT *b = b0 + t * NP, *c = cc0 + t * NP;
            const LV *e = E + t * n, *hc = H + t * n, *hp = t ? H + (t - 1) * n : hs;
            const LV gv = gyT[t], dtv = dtT[t], xv = xT[t];
            LV s1 = vzero, s2 = vzero;
            for (ptrdiff_t i = 0; i < n; i++) {
                LV dv = dh[i] + gv * c[i];                  /* gradient of h_t */
                pc[i] = gv * hc[i];
                pb[i] = dv * xv;
                LV q = dv * hp[i] * e[i];                   /* gradient of dt_t A_i */
                dAc[i] += q * dtv;
                s1 += q * AT[i];
                s2 += dv * b[i];
                dh[i] = dv * e[i];                          /* gradient of h_{t-1} */
            }
            for (ptrdiff_t g = 0; g < n; g += LW) {
                const ptrdiff_t m = n - g < LW ? n - g : LW;
                if (dC) {
                    CG_L(cg_lsum)(pc + g, part);
                    for (ptrdiff_t k = 0; k < m; k++) dC[(g + k) * L + c0 + t] = part[k];
                }
                if (dB) {
                    CG_L(cg_lsum)(pb + g, part);
                    for (ptrdiff_t k = 0; k < m; k++) dB[(g + k) * L + c0 + t] = part[k];
                }
            }
            ddtT[t] = (s1 + s2 * uT[t]) * sigT[t];          /* through softplus */
            duT[t] += s2 * dtv;
        }
        for (ptrdiff_t i = 0; i < n; i++)
            for (int l = 0; l < LW; l++) dAacc[i * LW + l] += (double)dAc[i][l];
        acc = vzero;
        for (ptrdiff_t t = 0; t < nt; t++) acc += ddtT[t];
        for (int l = 0; l < LW; l++) sb[l] += (double)acc[l];
        CG_L(cg_lt_out)(ddtT, nt, ddelta + c0, L);
        CG_L(cg_lt_out)(duT, nt, du + c0, L);
    }
    for (int l = 0; l < LW; l++) {
        for (ptrdiff_t i = 0; i < NP; i++) {
            dA[l * NP + i] = i < n ? dAacc[i * LW + l] : 0.0;
            if (dh0) dh0[l * NP + i] = i < n ? dh[i][l] : (LT)0;
        }
        dD[l] = sD[l];
        dbias[l] = sb[l];
    }
}

#undef CG_L
#undef CG_L_CAT
#undef CG_L_CAT2
