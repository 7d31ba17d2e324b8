/* Branch-free float32 / float64 maths for the activation kernels (activation.pyx).
 *
 * glibc's expf / erff / tanhf are opaque scalar calls, so a loop calling them cannot be
 * vectorised (libmvec's vector versions are only declared under -ffast-math, which would also
 * change NaN / inf semantics). The functions below are static inline, contain no branches
 * (special cases are handled with selects, which gcc turns into vector blends) and use only
 * +, -, *, /, comparisons and integer bit operations, so a plain loop calling them
 * auto-vectorises with baseline SSE2 (and with anything wider the compiler targets).
 *
 * Semantics (tested in tests/test_kernels.py):
 *   - NaN in -> NaN out; -inf / +inf give the limits (exp(-inf) = 0, exp(+inf) = inf, ...);
 *   - intermediate values stay finite for every finite input: arguments are clamped to the
 *     range where the result is finite, and out-of-range results are selected afterwards;
 *   - subnormal results of exp are rounded correctly (2^n is applied in two halves).
 * Accuracy: float32 within ~2 ulp, float64 within ~2 ulp (exp, expm1, log1p), erf/erfc from
 * Cephes (float32 ~2e-7 absolute; float64 ~1e-16 absolute, ~1e-14 relative for erfc).
 *
 * Identical inputs give identical bits whether a lane is computed by the vector loop body or
 * its scalar remainder: both evaluate the same IEEE operations in the same order (no
 * -ffast-math reassociation).
 */
#ifndef CYGRAD_VMATH_H
#define CYGRAD_VMATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t cg_asuint(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float cg_asfloat(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline uint64_t cg_asuint64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double cg_asdouble(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* ------------------------------------------------------------------------------------------ */
/* exp and expm1 together: e = exp(x), em = exp(x) - 1 (accurate near 0).
 * x = n ln2 + r, |r| <= ln2 / 2; expm1(r) by a polynomial (float, Cephes expf minimax) or a
 * Pade form (double, Cephes exp); 2^n = 2^n1 * 2^n2 with n1 = floor(n / 2), both normal. */

#define CG_EXPF_HI 88.7228317f    /* < log(FLT_MAX): exp is finite here */
#define CG_EXPF_OVF 88.72283905f  /* exp overflows above this */
#define CG_EXPF_LO -104.0f        /* exp(x) rounds to 0 below this */

static inline void cg_expf2(float x, float *e, float *em)
{
    float xc = x < CG_EXPF_LO ? CG_EXPF_LO : x;     /* NaN stays NaN (comparisons false) */
    xc = xc > CG_EXPF_HI ? CG_EXPF_HI : xc;
    const float shift = 12582912.0f;                /* 1.5 * 2^23: round to integer */
    float kf = xc * 1.44269504088896341f + shift;
    uint32_t bits = cg_asuint(kf);                  /* = bits(shift) + n, |n| <= 151 */
    kf = kf - shift;
    float r = xc - kf * 0.693359375f;               /* Cody-Waite: exact product */
    r = r - kf * -2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float pm1 = p * r2 + r;                         /* expm1(r) */
    uint32_t m = bits - 0x4B400000u + 256u;         /* n + 256 >= 0 */
    uint32_t h = m >> 1;                            /* n1 + 128 */
    float s1 = cg_asfloat((h - 1u) << 23);          /* 2^n1 */
    float s2 = cg_asfloat((m - h - 1u) << 23);      /* 2^n2, n1 + n2 = n */
    float t = pm1 * s1;
    float ev = (t + s1) * s2;                       /* 2^n (1 + expm1(r)) */
    float emv = t * s2 + (s1 * s2 - 1.0f);          /* 2^n expm1(r) + (2^n - 1) */
    float inf = cg_asfloat(0x7F800000u);
    *e = x > CG_EXPF_OVF ? inf : ev;
    *em = x > CG_EXPF_OVF ? inf : emv;
}

#define CG_EXP_HI 709.78271289338397   /* < log(DBL_MAX) */
#define CG_EXP_OVF 709.782712893384
#define CG_EXP_LO -746.0

static inline void cg_exp2(double x, double *e, double *em)
{
    double xc = x < CG_EXP_LO ? CG_EXP_LO : x;
    xc = xc > CG_EXP_HI ? CG_EXP_HI : xc;
    const double shift = 6755399441055744.0;        /* 1.5 * 2^52 */
    double kd = xc * 1.4426950408889634074 + shift;
    uint64_t bits = cg_asuint64(kd);                /* = bits(shift) + n, |n| <= 1077 */
    kd = kd - shift;
    double r = xc - kd * 6.93145751953125E-1;       /* Cody-Waite (Cephes) */
    r = r - kd * 1.42860682030941723212E-6;
    double r2 = r * r;
    double px = 1.26177193074810590878E-4;
    px = px * r2 + 3.02994407707441961300E-2;
    px = px * r2 + 9.99999999999999999910E-1;
    px = px * r;
    double qx = 3.00198505138664455042E-6;
    qx = qx * r2 + 2.52448340349684104192E-3;
    qx = qx * r2 + 2.27265548208155028766E-1;
    qx = qx * r2 + 2.00000000000000000009E0;
    double pm1 = 2.0 * px / (qx - px);              /* expm1(r), Pade */
    uint64_t m = bits - 0x4338000000000000ull + 2048u;
    uint64_t h = m >> 1;                            /* n1 + 1024 */
    double s1 = cg_asdouble((h - 1u) << 52);
    double s2 = cg_asdouble((m - h - 1u) << 52);
    double t = pm1 * s1;
    double ev = (t + s1) * s2;
    double emv = t * s2 + (s1 * s2 - 1.0);
    double inf = cg_asdouble(0x7FF0000000000000ull);
    *e = x > CG_EXP_OVF ? inf : ev;
    *em = x > CG_EXP_OVF ? inf : emv;
}

static inline float cg_expf(float x) { float e, em; cg_expf2(x, &e, &em); return e; }
static inline float cg_expm1f(float x) { float e, em; cg_expf2(x, &e, &em); return em; }
static inline double cg_exp(double x) { double e, em; cg_exp2(x, &e, &em); return e; }
static inline double cg_expm1(double x) { double e, em; cg_exp2(x, &e, &em); return em; }

/* ------------------------------------------------------------------------------------------ */
/* log1p(u) for u in [0, 1] (or NaN): the arguments log1p(exp(-|x|)) of softplus / logsigmoid.
 * w = 1 + u = 2^k (1 + f), k in {0, 1}, 1 + f in [sqrt(2)/2, sqrt(2)); c corrects the rounding
 * of 1 + u; log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f) (fdlibm log1p). */

static inline float cg_log1pf_unit(float u)
{
    float w = 1.0f + u;
    float c = (u - (w - 1.0f)) / w;                 /* (1 + u) - w exactly, over w */
    int big = w > 1.41421356f;
    float mw = big ? 0.5f * w : w;
    float k = big ? 1.0f : 0.0f;
    float f = mw - 1.0f;
    float hfsq = 0.5f * f * f;
    float s = f / (2.0f + f);
    float z = s * s;
    float R = 1.4798198640e-01f;
    R = R * z + 1.5313838422e-01f;
    R = R * z + 1.8183572590e-01f;
    R = R * z + 2.2222198546e-01f;
    R = R * z + 2.8571429849e-01f;
    R = R * z + 4.0000000596e-01f;
    R = R * z + 6.6666668653e-01f;
    R = R * z;
    return k * 6.9313812256e-01f + (f - (hfsq - (s * (hfsq + R) + (k * 9.0580006145e-06f + c))));
}

static inline double cg_log1p_unit(double u)
{
    double w = 1.0 + u;
    double c = (u - (w - 1.0)) / w;
    int big = w > 1.4142135623730951;
    double mw = big ? 0.5 * w : w;
    double k = big ? 1.0 : 0.0;
    double f = mw - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = 1.479819860511658591e-01;
    R = R * z + 1.531383769920937332e-01;
    R = R * z + 1.818357216161805012e-01;
    R = R * z + 2.222219843214978396e-01;
    R = R * z + 2.857142874366239149e-01;
    R = R * z + 3.999999999940941908e-01;
    R = R * z + 6.666666666666735130e-01;
    R = R * z;
    return k * 6.93147180369123816490e-01
        + (f - (hfsq - (s * (hfsq + R) + (k * 1.90821492927058770002e-10 + c))));
}

/* ------------------------------------------------------------------------------------------ */
/* Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt 2) / 2, without the cancellation of 1 + erf for
 * x < 0; also returns g = exp(-x^2 / 2) (for the density x phi(x) of the GELU gradient).
 * |z| < 1: erf(z) = z T(z^2) (/ U(z^2)); |z| >= 1: erfc(z) = exp(-z^2) * rational (Cephes). */

static inline void cg_phif(float x, float *phi, float *g)
{
    float z = x * 0.70710678118654752f;
    float a = z < 0.0f ? -z : z;                    /* |z| (NaN stays NaN) */
    float a2 = a * a;
    float ez = cg_expf(-a2);                        /* exp(-z^2) = exp(-x^2 / 2) */
    /* |z| < 1 (the argument clamped to 1 keeps the unused lanes finite) */
    float as = a < 1.0f ? a : 1.0f;
    float as2 = as * as;
    float T = 7.853861353153693E-5f;
    T = T * as2 + -8.010193625184903E-4f;
    T = T * as2 + 5.188327685732524E-3f;
    T = T * as2 + -2.685381193529856E-2f;
    T = T * as2 + 1.128358514861418E-1f;
    T = T * as2 + -3.761262582423300E-1f;
    T = T * as2 + 1.128379165726710E+0f;
    float erf_a = as * T;
    /* |z| >= 1: erfc(a) = exp(-a^2) / a * P(1 / a^2) */
    float ac = a < 1.0f ? 1.0f : a;                 /* keep 1 / a finite */
    float q = 1.0f / ac;
    float y = q * q;
    float P = 2.326819970068386E-2f;
    P = P * y + -1.387039388740657E-1f;
    P = P * y + 3.687424674597105E-1f;
    P = P * y + -5.824733027278666E-1f;
    P = P * y + 6.210004621745983E-1f;
    P = P * y + -4.944515323274145E-1f;
    P = P * y + 3.404879937665872E-1f;
    P = P * y + -2.741127028184656E-1f;
    P = P * y + 5.638259427386472E-1f;
    float R = -1.047766399936249E+1f;
    R = R * y + 1.297719955372516E+1f;
    R = R * y + -7.495518717768503E+0f;
    R = R * y + 2.921019019210786E+0f;
    R = R * y + -1.015265279202700E+0f;
    R = R * y + 4.218463358204948E-1f;
    R = R * y + -2.820767439740514E-1f;
    R = R * y + 5.641895067754075E-1f;
    float half_erfc = 0.5f * (ez * q) * (a < 2.0f ? P : R);   /* erfc(a) / 2 */
    float half_erf = 0.5f * erf_a;
    int small = a < 1.0f;
    /* x >= 0: 1 - erfc(a)/2 = 1/2 + erf(a)/2; x < 0: erfc(a)/2 = 1/2 - erf(a)/2 */
    float upper = small ? 0.5f + half_erf : 1.0f - half_erfc;
    float lower = small ? 0.5f - half_erf : half_erfc;
    *phi = x < 0.0f ? lower : upper;                /* NaN -> upper = NaN */
    *g = ez;
}

static inline void cg_phi(double x, double *phi, double *g)
{
    double z = x * 0.70710678118654752440;
    double a = z < 0.0 ? -z : z;
    double a2 = a * a;
    double ez = cg_exp(-a2);
    /* |z| < 1: erf(a) = a T(a^2) / U(a^2) (argument clamped to 1 in the unused lanes) */
    double as = a < 1.0 ? a : 1.0;
    double as2 = as * as;
    double T = 9.60497373987051638749E0;
    T = T * as2 + 9.00260197203842689217E1;
    T = T * as2 + 2.23200534594684319226E3;
    T = T * as2 + 7.00332514112805075473E3;
    T = T * as2 + 5.55923013010394962768E4;
    double U = as2 + 3.35617141647503099647E1;
    U = U * as2 + 5.21357949780152679795E2;
    U = U * as2 + 4.59432382970980127987E3;
    U = U * as2 + 2.26290000613890934246E4;
    U = U * as2 + 4.92673942608635921086E4;
    /* 1 <= |z| < 8: erfc(a) = exp(-a^2) P(a) / Q(a); |z| >= 8: exp(-a^2) R(a) / S(a) */
    double ac = a > 30.0 ? 30.0 : a;                /* keep the polynomials finite */
    double P = 2.46196981473530512524E-10;
    P = P * ac + 5.64189564831068821977E-1;
    P = P * ac + 7.46321056442269912687E0;
    P = P * ac + 4.86371970985681366614E1;
    P = P * ac + 1.96520832956077098242E2;
    P = P * ac + 5.26445194995477358631E2;
    P = P * ac + 9.34528527171957607540E2;
    P = P * ac + 1.02755188689515710272E3;
    P = P * ac + 5.57535335369399327526E2;
    double Q = ac + 1.32281951154744992508E1;
    Q = Q * ac + 8.67072140885989742329E1;
    Q = Q * ac + 3.54937778887819891062E2;
    Q = Q * ac + 9.75708501743205489753E2;
    Q = Q * ac + 1.82390916687909736289E3;
    Q = Q * ac + 2.24633760818710981792E3;
    Q = Q * ac + 1.65666309194161350182E3;
    Q = Q * ac + 5.57535340817727675546E2;
    double R = 5.64189583547755073984E-1;
    R = R * ac + 1.27536670759978104416E0;
    R = R * ac + 5.01905042251180477414E0;
    R = R * ac + 6.16021097993053585195E0;
    R = R * ac + 7.40974269950448939160E0;
    R = R * ac + 2.97886665372100240670E0;
    double S = ac + 2.26052863220117276590E0;
    S = S * ac + 9.39603524938001434673E0;
    S = S * ac + 1.20489539808096656605E1;
    S = S * ac + 1.70814450747565897222E1;
    S = S * ac + 9.60896809063285878198E0;
    S = S * ac + 3.36907645100081516050E0;
    int small = a < 1.0;
    int mid = a < 8.0;
    /* one division: small -> erf(a) = (a T) / U, else erfc(a) = (ez P) / Q */
    double num = small ? as * T : ez * (mid ? P : R);
    double den = small ? U : (mid ? Q : S);
    double ratio = num / den;
    double half = 0.5 * ratio;
    double upper = small ? 0.5 + half : 1.0 - half;
    double lower = small ? 0.5 - half : half;
    *phi = x < 0.0 ? lower : upper;
    *g = ez;
}

/* ========================================================================================== */
/* Block kernels: one plain loop over n contiguous elements, called by activation.pyx on fixed
 * blocks inside its prange. On x86-64 Linux with gcc each is compiled three times
 * (target_clones: x86-64-v4 = AVX-512, x86-64-v3 = AVX2 + FMA, baseline SSE2) and the best one
 * for the running CPU is picked once at load time (ifunc), so any x86-64 runs the module. The
 * choice is the same for every thread, and block boundaries do not depend on the thread
 * count, so results are bitwise identical for any number of threads.
 * out may be the same array as x (or grad): each iteration reads element i before writing it,
 * so the loop carries no dependence (CG_IVDEP lets gcc vectorise it without overlap checks). */

#include <stddef.h>

/* (define CG_CLONES empty before including this file to build one ISA only, e.g. in tests) */
#if !defined(CG_CLONES) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
    && defined(__linux__) && defined(__has_attribute)
#  if __has_attribute(target_clones)
#    define CG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#  endif
#endif
#ifndef CG_CLONES
#  define CG_CLONES
#endif
#if defined(__GNUC__) && !defined(__clang__)
#  define CG_IVDEP _Pragma("GCC ivdep")
#elif defined(__clang__)
#  define CG_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#else
#  define CG_IVDEP
#endif

static inline float cg_fabs_f(float x) { return __builtin_fabsf(x); }
static inline double cg_fabs_d(double x) { return __builtin_fabs(x); }
static inline float cg_exp_f(float x) { return cg_expf(x); }
static inline double cg_exp_d(double x) { return cg_exp(x); }
static inline void cg_exp2_f(float x, float *e, float *em) { cg_expf2(x, e, em); }
static inline void cg_exp2_d(double x, double *e, double *em) { cg_exp2(x, e, em); }
static inline float cg_log1p_unit_f(float u) { return cg_log1pf_unit(u); }
static inline double cg_log1p_unit_d(double u) { return cg_log1p_unit(u); }
static inline void cg_phi_f(float x, float *p, float *g) { cg_phif(x, p, g); }
static inline void cg_phi_d(double x, double *p, double *g) { cg_phi(x, p, g); }

#define CG_SQRT_2_OVER_PI 0.79788456080286535588
#define CG_INV_SQRT_2PI 0.39894228040143267794
#define CG_GELU_KAPPA 0.044715

/* CG_KERNELS(T, S): helpers and kernels for the floating type T, names suffixed _S. */
#define CG_KERNELS(T, S)                                                                        \
                                                                                                \
/* 1 / (1 + exp(-x)), exponentiating only non-positive numbers */                               \
static inline T cg_sigmoid_##S(T x)                                                             \
{                                                                                               \
    T z = cg_exp_##S(-cg_fabs_##S(x));                                                          \
    T d = (T)1 / ((T)1 + z);                                                                    \
    return x >= 0 ? d : z * d;                                                                  \
}                                                                                               \
                                                                                                \
/* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) (NaN -> NaN) */                               \
static inline T cg_log1pexp_##S(T x)                                                            \
{                                                                                               \
    T l = cg_log1p_unit_##S(cg_exp_##S(-cg_fabs_##S(x)));                                       \
    return (x > 0 ? x : (T)0) + l;                                                              \
}                                                                                               \
                                                                                                \
/* t = tanh(y), sech2 = 1 - t^2 without cancellation: with e = exp(-2|y|),                      \
   tanh|y| = -expm1(-2|y|) / (1 + e), 1 - tanh|y| = 2 e / (1 + e) */                            \
static inline void cg_tanh_sech2_##S(T y, T *t, T *sech2)                                       \
{                                                                                               \
    T e, em;                                                                                    \
    cg_exp2_##S((T)-2 * cg_fabs_##S(y), &e, &em);                                               \
    T d = (T)1 / ((T)1 + e);                                                                    \
    T ta = -em * d;                                                                             \
    *t = y >= 0 ? ta : -ta;                                                                     \
    *sech2 = ((T)2 * e * d) * ((T)1 + ta);                                                      \
}                                                                                               \
                                                                                                \
/* t = tanh(softplus(x)), 1 - t^2, s = sigmoid(x): with e = exp(x), n = e (e + 2),              \
   t = n / (n + 2), 1 - t = 2 / (n + 2); t is 1 (to double precision) for x > 20, so e is       \
   taken of min(x, 20) */                                                                       \
static inline void cg_mish_parts_##S(T x, T *t, T *omt2, T *s)                                  \
{                                                                                               \
    T e = cg_exp_##S(x < 20 ? x : (T)20);                                                       \
    T n = e * (e + (T)2);                                                                       \
    T d = (T)1 / (n + (T)2);                                                                    \
    T tt = n * d;                                                                               \
    *t = tt;                                                                                    \
    *omt2 = x <= 20 ? ((T)2 * d) * ((T)1 + tt) : (T)0;                                          \
    *s = e / ((T)1 + e);                                                                        \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_gelu_fwd_##S(const T *x, T *out, ptrdiff_t n)                          \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T v = x[i], p, g;                                                                       \
        cg_phi_##S(v, &p, &g);                                                                  \
        out[i] = v * p;                                                                         \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_gelu_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n)           \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T v = x[i], p, g;                                                                       \
        cg_phi_##S(v, &p, &g);                                                                  \
        out[i] = grad[i] * (p + v * (T)CG_INV_SQRT_2PI * g);                                    \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_gelu_tanh_fwd_##S(const T *x, T *out, ptrdiff_t n)                     \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T v = x[i], t, sech2;                                                                   \
        cg_tanh_sech2_##S((T)CG_SQRT_2_OVER_PI * (v + (T)CG_GELU_KAPPA * v * v * v), &t, &sech2); \
        out[i] = (T)0.5 * v * ((T)1 + t);                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_gelu_tanh_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n)      \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T v = x[i], t, sech2;                                                                   \
        cg_tanh_sech2_##S((T)CG_SQRT_2_OVER_PI * (v + (T)CG_GELU_KAPPA * v * v * v), &t, &sech2); \
        T inner_grad = (T)CG_SQRT_2_OVER_PI * ((T)1 + (T)(3 * CG_GELU_KAPPA) * v * v);          \
        T tail = v * sech2 * inner_grad;                                                        \
        /* where sech2 == 0, v * v may be inf, and 0 * inf is nan */                            \
        out[i] = grad[i] * (T)0.5 * (((T)1 + t) + (sech2 != 0 ? tail : (T)0));                  \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* relu: x < 0 -> 0, else x (nan passes); backward: y <= 0 -> 0, else grad (as torch) */      \
CG_CLONES static void cg_relu_fwd_##S(const T *x, T *out, ptrdiff_t n)                          \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = x[i] < 0 ? (T)0 : x[i];                                                        \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_relu_bwd_##S(const T *y, const T *grad, T *out, ptrdiff_t n)           \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = y[i] <= 0 ? (T)0 : grad[i];                                                    \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_silu_fwd_##S(const T *x, T *out, ptrdiff_t n)                          \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = x[i] * cg_sigmoid_##S(x[i]);                                                   \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_silu_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n)           \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T s = cg_sigmoid_##S(x[i]);                                                             \
        out[i] = grad[i] * s * ((T)1 + x[i] * ((T)1 - s));                                      \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_mish_fwd_##S(const T *x, T *out, ptrdiff_t n)                          \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T t, omt2, s;                                                                           \
        cg_mish_parts_##S(x[i], &t, &omt2, &s);                                                 \
        out[i] = x[i] * t;                                                                      \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_mish_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n)           \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T t, omt2, s;                                                                           \
        cg_mish_parts_##S(x[i], &t, &omt2, &s);                                                 \
        out[i] = grad[i] * (t + x[i] * s * omt2);                                               \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_softplus_fwd_##S(const T *x, T *out, ptrdiff_t n, T beta, T threshold) \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T xi = x[i], bx = beta * xi;                                                            \
        T soft = cg_log1pexp_##S(bx) / beta;                                                    \
        out[i] = bx > threshold ? xi : soft;                                                    \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_softplus_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n,       \
                                          T beta, T threshold)                                  \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T gi = grad[i], bx = beta * x[i];                                                       \
        T sg = gi * cg_sigmoid_##S(bx);                                                         \
        out[i] = bx > threshold ? gi : sg;                                                      \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_elu_fwd_##S(const T *x, T *out, ptrdiff_t n, T neg_coef, T scale,      \
                                     T input_scale)                                             \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T xi = x[i], e, em;                                                                     \
        cg_exp2_##S(input_scale * xi, &e, &em);                                                 \
        T neg = neg_coef * em;                                                                  \
        out[i] = xi > 0 ? scale * xi : neg;                                                     \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_elu_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n,            \
                                     T neg_coef, T scale, T input_scale)                        \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) {                                                \
        T xi = x[i], gi = grad[i];                                                              \
        T neg = gi * neg_coef * cg_exp_##S(input_scale * xi);                                   \
        out[i] = xi > 0 ? gi * scale : neg;                                                     \
    }                                                                                           \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_logsigmoid_fwd_##S(const T *x, T *out, ptrdiff_t n)                    \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = -cg_log1pexp_##S(-x[i]);                                                       \
}                                                                                               \
                                                                                                \
CG_CLONES static void cg_logsigmoid_bwd_##S(const T *x, const T *grad, T *out, ptrdiff_t n)     \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = grad[i] * cg_sigmoid_##S(-x[i]);                                               \
}                                                                                               \
                                                                                                \
/* out = exp(x - shift) (softmax rows) */                                                       \
CG_CLONES static void cg_exp_shifted_##S(const T *x, T *out, ptrdiff_t n, T shift)              \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = cg_exp_##S(x[i] - shift);                                                      \
}                                                                                               \
                                                                                                \
/* out = grad - exp(y) * s (log_softmax backward rows) */                                       \
CG_CLONES static void cg_log_softmax_bwd_row_##S(const T *y, const T *grad, T *out,             \
                                                  ptrdiff_t n, T s)                             \
{                                                                                               \
    CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                  \
        out[i] = grad[i] - cg_exp_##S(y[i]) * s;                                                \
}

CG_KERNELS(float, f)
CG_KERNELS(double, d)

#endif /* CYGRAD_VMATH_H */
