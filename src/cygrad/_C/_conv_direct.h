/* Direct convolution for float32 with unit stride and dilation and one group: the fast path of the
 * conv3d forward and input gradient in cygrad._C.conv (included by conv.pyx after CGC_CLONES).
 *
 * One call computes output rows of one sample as a "valid" correlation of a zero-padded input:
 *     y[o, od, oh, ow] = bias[o] + sum_{c, a, b, e} xp[c, od + a, oh + b, ow + e] * w[(a, b, e), c, o]
 * with xp (Cin, Dp, Hp, Wpa) channel-major (rows of Wpa >= 16 * ceil(OW / 16) + kw - 1 values, so that
 * every 16-wide output vector reads inside its row) and w packed as (tap, Cin, Cout). The forward uses
 * x padded by the conv's padding; the input gradient uses the output gradient padded by k - 1 - p and
 * the kernel flipped with in / out channels swapped.
 *
 * The micro-kernel keeps a block of OB output channels times PV vectors of 16 consecutive ow in
 * registers (OB * PV <= 24 accumulators) and, for every tap and input channel, loads PV input vectors
 * and broadcasts OB weights: 2 * OB * PV flops per load, no im2col and no packing; the results are
 * stored straight into the channel-major output rows.
 */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
typedef float cgd_v16 __attribute__((vector_size(64)));
typedef float cgd_v16u __attribute__((vector_size(64), aligned(4)));   /* unaligned loads / stores */

/* 1 where the direct kernel is compiled for and worth running: AVX-512 (the 24 accumulators need its
 * 32 vector registers; with AVX2 they would spill). */
static int cgd_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}

/* acc[q][v] += sum over taps and input channels, for OB output channels from o0 and PV vectors from ow0 */
__attribute__((always_inline)) static inline void cgd_block(const int OB, const int PV, const float *xrow,
    ptrdiff_t plane, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wpa, ptrdiff_t kd, ptrdiff_t kh, ptrdiff_t kw,
    const float *w, ptrdiff_t Cout, ptrdiff_t o0, const float *bias, float *y, ptrdiff_t ystride,
    ptrdiff_t mlast)
{
    cgd_v16 acc[12][2];
    for (int q = 0; q < OB; q++)
        for (int v = 0; v < PV; v++) {
            const float b = bias ? bias[o0 + q] : 0.0f;
            acc[q][v] = (cgd_v16){0} + b;
        }
    const float *wt = w + o0;
    for (ptrdiff_t a = 0; a < kd; a++)
        for (ptrdiff_t b = 0; b < kh; b++)
            for (ptrdiff_t e = 0; e < kw; e++, wt += Cin * Cout) {
                const float *xr = xrow + (a * Hp + b) * Wpa + e;
                for (ptrdiff_t c = 0; c < Cin; c++) {
                    const float *xc = xr + c * plane, *wc = wt + c * Cout;
                    cgd_v16 xv[2];
                    for (int v = 0; v < PV; v++) xv[v] = *(const cgd_v16u *)(xc + 16 * v);
                    for (int q = 0; q < OB; q++) {
                        const cgd_v16 wv = (cgd_v16){0} + wc[q];
                        for (int v = 0; v < PV; v++) acc[q][v] += wv * xv[v];
                    }
                }
            }
    /* rows of output channel o0 + q start ystride apart; the last vector keeps mlast values */
    for (int q = 0; q < OB; q++)
        for (int v = 0; v < PV; v++) {
            float *dst = y + (o0 + q) * ystride + 16 * v;
            if (v == PV - 1 && mlast < 16)
                memcpy(dst, &acc[q][v], (size_t)mlast * sizeof(float));
            else
                *(cgd_v16u *)dst = acc[q][v];
        }
}

/* The output blocks of one (od, oh) row: output channels in blocks of 12 (then 8, 4), positions in
 * pairs of 16-vectors (then one). Needs Cout % 4 == 0. */
__attribute__((always_inline)) static inline void cgd_row_pv(const int PV, const float *xrow, ptrdiff_t plane,
    ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wpa, ptrdiff_t kd, ptrdiff_t kh, ptrdiff_t kw, const float *w,
    ptrdiff_t Cout, const float *bias, float *y, ptrdiff_t ystride, ptrdiff_t mlast)
{
    ptrdiff_t o0 = 0;
    for (; o0 + 12 <= Cout; o0 += 12)
        cgd_block(12, PV, xrow, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, o0, bias, y, ystride, mlast);
    if (o0 + 8 <= Cout) {
        cgd_block(8, PV, xrow, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, o0, bias, y, ystride, mlast);
        o0 += 8;
    }
    if (o0 + 4 <= Cout)
        cgd_block(4, PV, xrow, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, o0, bias, y, ystride, mlast);
}

/* Output row (od, oh) of one sample: y[o, od, oh, 0 .. OW) for every o (y: the sample's output,
 * channel stride ystride = OD * OH * OW). xp: the sample's padded input, plane = Dp * Hp * Wpa. */
__attribute__((target("arch=x86-64-v4"))) static void cgd_row(const float *xp, ptrdiff_t plane, ptrdiff_t Cin,
    ptrdiff_t Hp, ptrdiff_t Wpa, ptrdiff_t kd, ptrdiff_t kh, ptrdiff_t kw, const float *w, ptrdiff_t Cout,
    const float *bias, ptrdiff_t od, ptrdiff_t oh, ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ystride)
{
    const float *xrow = xp + (od * Hp + oh) * Wpa;
    float *yrow = y + (od * OH + oh) * OW;
    ptrdiff_t ow0 = 0;
    for (; ow0 + 32 <= OW; ow0 += 32)
        cgd_row_pv(2, xrow + ow0, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, bias, yrow + ow0, ystride, 16);
    if (ow0 + 16 < OW)
        cgd_row_pv(2, xrow + ow0, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, bias, yrow + ow0, ystride,
                   OW - ow0 - 16);
    else if (ow0 < OW)
        cgd_row_pv(1, xrow + ow0, plane, Cin, Hp, Wpa, kd, kh, kw, w, Cout, bias, yrow + ow0, ystride, OW - ow0);
}
#else
static int cgd_supported(void) { return 0; }
static void cgd_row(const float *xp, ptrdiff_t plane, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wpa, ptrdiff_t kd,
    ptrdiff_t kh, ptrdiff_t kw, const float *w, ptrdiff_t Cout, const float *bias, ptrdiff_t od, ptrdiff_t oh,
    ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ystride)
{
    (void)xp; (void)plane; (void)Cin; (void)Hp; (void)Wpa; (void)kd; (void)kh; (void)kw; (void)w; (void)Cout;
    (void)bias; (void)od; (void)oh; (void)OH; (void)OW; (void)y; (void)ystride;
}
#endif
