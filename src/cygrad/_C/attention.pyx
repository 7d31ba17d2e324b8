"""Scaled dot-product attention: a fused, blocked kernel with an online softmax (float32 / float64).

For every output batch element ``b`` (the flattened broadcast batch and head dimensions)::

    S = scale * Q[qi[b]] @ K[ki[b]]^T + mask[mi[b]]      (L, S), -inf where is_causal hides j > i
    P = softmax(S) (rows)                                (a row of -inf only gives P = 0)
    out[b] = dropout(P) @ V[vi[b]]                       (L, Ev)
    lse[b] = logsumexp(S) (rows, -inf for rows without any key)

Layout
------
``q`` (nQ, L, E), ``k`` (nK, S, E), ``v`` (nV, S, Ev): any batch stride (0 too), rows at a
positive stride >= the row length, unit stride along the last axis. ``q_idx``, ``k_idx``,
``v_idx``, ``mask_idx`` (B,) map each output batch element to the batch element of each input:
broadcasting and grouped-query attention (key/value heads shared by several query heads) need no
copies. ``mask`` (nM, L, S) is ADDITIVE (0 / -inf for a boolean mask, converted by the caller)
with any strides (0 for broadcast axes). ``out`` (B, L, Ev) is C-contiguous; ``lse`` (B, L)
float64.

Algorithm (flash-attention style)
---------------------------------
The forward runs one task per (b, block of ``block_q`` query rows) in a ``prange``. A task walks
the key blocks of ``block_k`` keys: ``Q_i K_j^T`` is one gemm into a per-thread buffer, the mask
is added, then each row updates its running maximum ``m`` and running sum ``l`` (rescaling the
partial output by ``exp(m_old - m_new)``) and ``P_ij V_j`` is one more gemm accumulated into the
output rows. With ``is_causal`` key blocks right of the diagonal are skipped. Only the output and
the row logsumexp ``lse = m + log(l)`` are kept.

The backward recomputes P block by block from ``lse``: with ``D_i = rowsum(dO * O)``,
``dV_j += P^T dO_i``, ``dP = dO_i V_j^T``, ``dS = P * (dP - D_i)``, ``dQ_i += scale dS K_j``,
``dK_j += scale dS^T Q_i``, key blocks outside and query blocks inside. A task is one output batch
element, or with fewer than ``MIN_TASKS`` of them a chunk of its key blocks: each task owns its rows
of dK and dV (no races) and a chunk's dQ is a partial, summed in chunk order afterwards. The cut
depends on the sizes only. The gradients are written per output batch element (B, ...): the caller
sums them over broadcast (and grouped-query) dimensions.

Dropout uses a counter-based generator: element (b, i, j) is kept when a splitmix64 hash of
``seed + ((b * L + i) * S + j)`` is at least ``p`` (24-bit resolution), so the backward (and the
mask materialised by ``sdpa_dropout_mask``) sees the same mask without storing it.

Every gemm is a single-threaded BLAS call inside the ``prange``. A task's result does not depend
on which thread runs it, so results are bitwise identical for any thread count.
"""

from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY
from libc.math cimport exp as c_exp, log as c_log
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

import numpy as np

from ._blas cimport gemm
from ._parallel cimport n_threads_for

# Row loops over contiguous arrays, cloned for AVX-512 / AVX2 / baseline (target_clones, as in
# _vmath.h, whose branch-free exp they use). The pragma lets gcc if-convert (vectorise) the
# branch-free selects, as -fno-trapping-math does for activation.pyx; it changes no result.
cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #  pragma GCC push_options
    #  pragma GCC optimize ("no-trapping-math", "no-math-errno")
    #  pragma GCC diagnostic push
    #  pragma GCC diagnostic ignored "-Wunused-function"
    #endif
    #include "_vmath.h"

    #define CG_ATTN_LANES 16

    static inline uint64_t cg_attn_hash(uint64_t z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    #define CG_ATTN_KERNELS(T, S)                                                                  \\
    /* max(init, max_i x[i]), NaN ignored (lane-wise partial maxima, fixed order) */               \\
    CG_CLONES static T cg_attn_rowmax_##S(const T *x, ptrdiff_t n, T init)                         \\
    {                                                                                              \\
        T part[CG_ATTN_LANES];                                                                     \\
        for (int j = 0; j < CG_ATTN_LANES; j++) part[j] = init;                                    \\
        ptrdiff_t i = 0;                                                                           \\
        for (; i + CG_ATTN_LANES <= n; i += CG_ATTN_LANES)                                         \\
            for (int j = 0; j < CG_ATTN_LANES; j++)                                                \\
                part[j] = x[i + j] > part[j] ? x[i + j] : part[j];                                 \\
        T m = init;                                                                                \\
        for (int j = 0; j < CG_ATTN_LANES; j++) m = part[j] > m ? part[j] : m;                     \\
        for (; i < n; i++) m = x[i] > m ? x[i] : m;                                                \\
        return m;                                                                                  \\
    }                                                                                              \\
                                                                                                   \\
    /* x[i] = exp(x[i] - shift) for i < n; returns the sum (lane-wise partials, fixed order) */    \\
    CG_CLONES static double cg_attn_exp_sum_##S(T *x, ptrdiff_t n, T shift)                        \\
    {                                                                                              \\
        CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                 \\
            x[i] = cg_exp_##S(x[i] - shift);                                                       \\
        T part[CG_ATTN_LANES];                                                                     \\
        for (int j = 0; j < CG_ATTN_LANES; j++) part[j] = 0;                                       \\
        ptrdiff_t i = 0;                                                                           \\
        for (; i + CG_ATTN_LANES <= n; i += CG_ATTN_LANES)                                         \\
            for (int j = 0; j < CG_ATTN_LANES; j++)                                                \\
                part[j] += x[i + j];                                                               \\
        double s = 0.0;                                                                            \\
        for (int j = 0; j < CG_ATTN_LANES; j++) s += (double) part[j];                             \\
        for (; i < n; i++) s += (double) x[i];                                                     \\
        return s;                                                                                  \\
    }                                                                                              \\
                                                                                                   \\
    /* x[i] = exp(x[i] - shift) */                                                                 \\
    CG_CLONES static void cg_attn_exp_##S(T *x, ptrdiff_t n, T shift)                              \\
    {                                                                                              \\
        CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                 \\
            x[i] = cg_exp_##S(x[i] - shift);                                                       \\
    }                                                                                              \\
                                                                                                   \\
    /* x[i] *= a */                                                                                \\
    CG_CLONES static void cg_attn_scale_##S(T *x, ptrdiff_t n, T a)                                \\
    {                                                                                              \\
        CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                 \\
            x[i] *= a;                                                                             \\
    }                                                                                              \\
                                                                                                   \\
    /* x[i] += m[i * ms] */                                                                        \\
    CG_CLONES static void cg_attn_add_strided_##S(T *x, const T *m, ptrdiff_t n, ptrdiff_t ms)     \\
    {                                                                                              \\
        if (ms == 1) {                                                                             \\
            CG_IVDEP for (ptrdiff_t i = 0; i < n; i++) x[i] += m[i];                               \\
        } else {                                                                                   \\
            for (ptrdiff_t i = 0; i < n; i++) x[i] += m[i * ms];                                   \\
        }                                                                                          \\
    }                                                                                              \\
                                                                                                   \\
    /* dp[i] = p[i] * (dp[i] - d) */                                                               \\
    CG_CLONES static void cg_attn_ds_##S(const T *p, T *dp, ptrdiff_t n, T d)                      \\
    {                                                                                              \\
        CG_IVDEP for (ptrdiff_t i = 0; i < n; i++)                                                 \\
            dp[i] = p[i] * (dp[i] - d);                                                            \\
    }                                                                                              \\
                                                                                                   \\
    /* sum_i a[i] * b[i] in double */                                                              \\
    static double cg_attn_dot_##S(const T *a, const T *b, ptrdiff_t n)                             \\
    {                                                                                              \\
        double part[4] = {0.0, 0.0, 0.0, 0.0};                                                     \\
        ptrdiff_t i = 0;                                                                           \\
        for (; i + 4 <= n; i += 4)                                                                 \\
            for (int j = 0; j < 4; j++)                                                            \\
                part[j] += (double) a[i + j] * (double) b[i + j];                                  \\
        double s = (part[0] + part[1]) + (part[2] + part[3]);                                      \\
        for (; i < n; i++) s += (double) a[i] * (double) b[i];                                     \\
        return s;                                                                                  \\
    }                                                                                              \\
                                                                                                   \\
    /* dst[i] = keep(ctr + i) ? src[i] * scale : 0, keep(c) = hash(seed + c) >> 40 >= thr */       \\
    static void cg_attn_dropout_##S(const T *src, T *dst, ptrdiff_t n, uint64_t seed,              \\
                                    uint64_t ctr, uint64_t thr, T scale)                           \\
    {                                                                                              \\
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \\
            uint64_t h = cg_attn_hash(seed + (ctr + (uint64_t) i) * 0x9E3779B97F4A7C15ull);        \\
            dst[i] = (h >> 40) >= thr ? src[i] * scale : (T) 0;                                    \\
        }                                                                                          \\
    }

    CG_ATTN_KERNELS(float, f)
    CG_ATTN_KERNELS(double, d)

    #if defined(__GNUC__) && !defined(__clang__)
    #  pragma GCC diagnostic pop
    #  pragma GCC pop_options
    #endif
    """
    float cg_attn_rowmax_f(const float *x, Py_ssize_t n, float init) nogil
    double cg_attn_rowmax_d(const double *x, Py_ssize_t n, double init) nogil
    double cg_attn_exp_sum_f(float *x, Py_ssize_t n, float shift) nogil
    double cg_attn_exp_sum_d(double *x, Py_ssize_t n, double shift) nogil
    void cg_attn_exp_f(float *x, Py_ssize_t n, float shift) nogil
    void cg_attn_exp_d(double *x, Py_ssize_t n, double shift) nogil
    void cg_attn_scale_f(float *x, Py_ssize_t n, float a) nogil
    void cg_attn_scale_d(double *x, Py_ssize_t n, double a) nogil
    void cg_attn_add_strided_f(float *x, const float *m, Py_ssize_t n, Py_ssize_t ms) nogil
    void cg_attn_add_strided_d(double *x, const double *m, Py_ssize_t n, Py_ssize_t ms) nogil
    void cg_attn_ds_f(const float *p, float *dp, Py_ssize_t n, float d) nogil
    void cg_attn_ds_d(const double *p, double *dp, Py_ssize_t n, double d) nogil
    double cg_attn_dot_f(const float *a, const float *b, Py_ssize_t n) nogil
    double cg_attn_dot_d(const double *a, const double *b, Py_ssize_t n) nogil
    void cg_attn_dropout_f(const float *src, float *dst, Py_ssize_t n, uint64_t seed, uint64_t ctr,
                           uint64_t thr, float scale) nogil
    void cg_attn_dropout_d(const double *src, double *dst, Py_ssize_t n, uint64_t seed, uint64_t ctr,
                           uint64_t thr, double scale) nogil


# The backward splits the keys of each batch element into chunks until there are at least this many
# tasks (a function of the sizes only, so results do not depend on the thread count).
cdef enum:
    MIN_TASKS = 8


# ---------------------------------------------------------------------------------------------
# Per-dtype dispatch

cdef inline floating _rowmax(const floating *x, Py_ssize_t n, floating init) noexcept nogil:
    if floating is float:
        return cg_attn_rowmax_f(x, n, init)
    else:
        return cg_attn_rowmax_d(x, n, init)


cdef inline double _exp_sum(floating *x, Py_ssize_t n, floating shift) noexcept nogil:
    if floating is float:
        return cg_attn_exp_sum_f(x, n, shift)
    else:
        return cg_attn_exp_sum_d(x, n, shift)


cdef inline void _exp(floating *x, Py_ssize_t n, floating shift) noexcept nogil:
    if floating is float:
        cg_attn_exp_f(x, n, shift)
    else:
        cg_attn_exp_d(x, n, shift)


cdef inline void _scale(floating *x, Py_ssize_t n, floating a) noexcept nogil:
    if floating is float:
        cg_attn_scale_f(x, n, a)
    else:
        cg_attn_scale_d(x, n, a)


cdef inline void _add_strided(floating *x, const floating *m, Py_ssize_t n, Py_ssize_t ms) noexcept nogil:
    if floating is float:
        cg_attn_add_strided_f(x, m, n, ms)
    else:
        cg_attn_add_strided_d(x, m, n, ms)


cdef inline void _ds(const floating *p, floating *dp, Py_ssize_t n, floating d) noexcept nogil:
    if floating is float:
        cg_attn_ds_f(p, dp, n, d)
    else:
        cg_attn_ds_d(p, dp, n, d)


cdef inline void _add(floating *x, const floating *y, Py_ssize_t n) noexcept nogil:
    """x += y"""
    cdef Py_ssize_t i
    for i in range(n):
        x[i] += y[i]


cdef inline double _dot(const floating *a, const floating *b, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return cg_attn_dot_f(a, b, n)
    else:
        return cg_attn_dot_d(a, b, n)


cdef inline void _dropout(const floating *src, floating *dst, Py_ssize_t n, uint64_t seed, uint64_t ctr,
                          uint64_t thr, floating scale) noexcept nogil:
    if floating is float:
        cg_attn_dropout_f(src, dst, n, seed, ctr, thr, scale)
    else:
        cg_attn_dropout_d(src, dst, n, seed, ctr, thr, scale)


# ---------------------------------------------------------------------------------------------
# Argument checks (the Python layer validates user input; these guard the kernel's promises)

cdef Py_ssize_t _row_ld(const floating[:, :, :] x, str name) except -1:
    """Leading dimension (elements) of the row-major matrices x[n]: unit stride on the last axis."""
    cdef Py_ssize_t rows = x.shape[1], cols = x.shape[2], it = sizeof(floating)
    if cols > 1 and x.strides[2] != it:
        raise ValueError(f"{name}: the last axis must have unit stride, got strides "
                         f"({x.strides[0]}, {x.strides[1]}, {x.strides[2]}) bytes")
    if rows <= 1:
        return max(<Py_ssize_t> 1, cols)
    if x.strides[1] % it != 0 or not max(<Py_ssize_t> 1, cols) <= x.strides[1] // it <= INT_MAX:
        raise ValueError(f"{name}: rows must not overlap, got shape ({x.shape[0]}, {rows}, {cols}) "
                         f"and strides ({x.strides[0]}, {x.strides[1]}, {x.strides[2]}) bytes")
    return x.strides[1] // it


cdef int _check_index(const Py_ssize_t[::1] idx, Py_ssize_t batch, Py_ssize_t n, str name) except -1:
    """idx has batch entries, each in [0, n)."""
    cdef Py_ssize_t i
    if idx.shape[0] != batch:
        raise ValueError(f"{name} has {idx.shape[0]} entries, expected {batch}")
    for i in range(batch):
        if idx[i] < 0 or idx[i] >= n:
            raise ValueError(f"{name}[{i}] = {idx[i]} is out of range for {n} batch elements")
    return 0


cdef int _check_args(
    const floating[:, :, :] q, const floating[:, :, :] k, const floating[:, :, :] v,
    const floating[:, :, :] mask, bint has_mask,
    const Py_ssize_t[::1] q_idx, const Py_ssize_t[::1] k_idx, const Py_ssize_t[::1] v_idx,
    const Py_ssize_t[::1] mask_idx, Py_ssize_t batch, Py_ssize_t block_q, Py_ssize_t block_k,
    double dropout_p,
) except -1:
    cdef Py_ssize_t L = q.shape[1], E = q.shape[2], S = k.shape[1], Ev = v.shape[2]
    if k.shape[2] != E or v.shape[1] != S:
        raise ValueError(f"sdpa: shapes q ({q.shape[0]}, {L}, {E}), k ({k.shape[0]}, {S}, {k.shape[2]}), "
                         f"v ({v.shape[0]}, {v.shape[1]}, {Ev}) do not match")
    if L < 1 or S < 1 or E < 1 or Ev < 1:
        raise ValueError(f"sdpa: sizes must be positive, got L={L}, S={S}, E={E}, Ev={Ev}")
    if L > INT_MAX or S > INT_MAX or E > INT_MAX or Ev > INT_MAX:
        raise ValueError(f"sdpa: sizes L={L}, S={S}, E={E}, Ev={Ev} are too large for BLAS")
    if block_q < 1 or block_k < 1 or block_q > 4096 or block_k > 4096:
        raise ValueError(f"sdpa: block sizes must be in [1, 4096], got {block_q}, {block_k}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"sdpa: dropout_p must be in [0, 1), got {dropout_p}")
    _row_ld(q, "q")
    _row_ld(k, "k")
    _row_ld(v, "v")
    _check_index(q_idx, batch, q.shape[0], "q_idx")
    _check_index(k_idx, batch, k.shape[0], "k_idx")
    _check_index(v_idx, batch, v.shape[0], "v_idx")
    if has_mask:
        if mask.shape[1] != L or mask.shape[2] != S:
            raise ValueError(f"sdpa: mask must have shape (n, {L}, {S}), got "
                             f"({mask.shape[0]}, {mask.shape[1]}, {mask.shape[2]})")
        if (mask.strides[0] % sizeof(floating) or mask.strides[1] % sizeof(floating)
                or mask.strides[2] % sizeof(floating)):
            raise ValueError("sdpa: mask strides must be multiples of the item size")
        _check_index(mask_idx, batch, mask.shape[0], "mask_idx")
    return 0


cdef inline uint64_t _drop_threshold(double p) noexcept nogil:
    """Elements whose 24-bit hash is below this are dropped: P(drop) = p (to 2^-24)."""
    return <uint64_t> (p * 16777216.0 + 0.5)


# ---------------------------------------------------------------------------------------------
# Forward

def sdpa_forward(
    const floating[:, :, :] q,            # IN: (nQ, L, E)
    const floating[:, :, :] k,            # IN: (nK, S, E)
    const floating[:, :, :] v,            # IN: (nV, S, Ev)
    const floating[:, :, :] mask,         # IN: (nM, L, S) additive; ignored unless has_mask
    bint has_mask,                        # IN
    const Py_ssize_t[::1] q_idx,          # IN: (B,) batch element of q for each output element
    const Py_ssize_t[::1] k_idx,          # IN: (B,)
    const Py_ssize_t[::1] v_idx,          # IN: (B,)
    const Py_ssize_t[::1] mask_idx,       # IN: (B,) (ignored unless has_mask)
    floating[:, :, ::1] out,              # OUT: (B, L, Ev)
    double[:, ::1] lse,                   # OUT: (B, L) row logsumexp of the scores
    double scale,                         # IN: multiplies Q K^T
    bint causal,                          # IN: hide keys j > i (top-left aligned)
    double dropout_p,                     # IN: in [0, 1)
    uint64_t seed,                        # IN: dropout seed
    Py_ssize_t block_q=64,                # IN: query rows per task
    Py_ssize_t block_k=64,                # IN: keys per block
):
    """out := dropout(softmax(scale Q K^T + mask)) V and lse := logsumexp rows (see module doc)."""
    cdef Py_ssize_t B = out.shape[0], L = q.shape[1], E = q.shape[2], S = k.shape[1], Ev = v.shape[2]
    if out.shape[1] != L or out.shape[2] != Ev or lse.shape[0] != B or lse.shape[1] != L:
        raise ValueError(f"sdpa_forward: out must be ({B}, {L}, {Ev}) and lse ({B}, {L}), got "
                         f"({out.shape[0]}, {out.shape[1]}, {out.shape[2]}) and ({lse.shape[0]}, {lse.shape[1]})")
    _check_args(q, k, v, mask, has_mask, q_idx, k_idx, v_idx, mask_idx, B, block_q, block_k, dropout_p)
    if B == 0:
        return
    cdef int ldq = <int> _row_ld(q, "q"), ldk = <int> _row_ld(k, "k"), ldv = <int> _row_ld(v, "v")
    cdef Py_ssize_t nqb = (L + block_q - 1) // block_q
    cdef Py_ssize_t ntask = B * nqb
    cdef double work = <double> B * L * S * (E + Ev) / 16.0 + <double> B * L * S
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    if nt > ntask:
        nt = <int> ntask
    if nt < 1:
        nt = 1
    # per-thread buffers: the score block and the running row statistics
    dt = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] sbuf = np.empty((nt, block_q * block_k), dtype=dt)
    cdef double[:, ::1] stat = np.empty((nt, 2 * block_q), dtype=np.float64)
    cdef Py_ssize_t msi = 0, msj = 0
    cdef const floating *mbase = NULL
    if has_mask:
        msi = mask.strides[1] // <Py_ssize_t> sizeof(floating)
        msj = mask.strides[2] // <Py_ssize_t> sizeof(floating)
    cdef uint64_t thr = _drop_threshold(dropout_p)
    cdef floating keep_scale = <floating> (1.0 / (1.0 - dropout_p))
    cdef bint dropout = dropout_p > 0.0
    cdef Py_ssize_t t, b, qb, i0, nq
    cdef int tid
    with nogil:
        for t in prange(ntask, schedule="static", num_threads=nt):
            tid = threadid()
            b = t // nqb
            qb = t - b * nqb
            i0 = qb * block_q
            nq = min(block_q, L - i0)
            mbase = NULL
            if has_mask:
                mbase = &mask[mask_idx[b], 0, 0]
            _forward_block(&q[q_idx[b], 0, 0], ldq, &k[k_idx[b], 0, 0], ldk, &v[v_idx[b], 0, 0], ldv,
                           mbase, msi, msj, &out[b, 0, 0], &lse[b, 0], b, i0, nq, L, S, E, Ev,
                           <floating> scale, causal, dropout, seed, thr, keep_scale,
                           &sbuf[tid, 0], &stat[tid, 0], &stat[tid, block_q], block_k)


cdef void _forward_block(
    const floating *q, int ldq, const floating *k, int ldk, const floating *v, int ldv,
    const floating *mask, Py_ssize_t msi, Py_ssize_t msj,
    floating *out, double *lse, Py_ssize_t b, Py_ssize_t i0, Py_ssize_t nq,
    Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
    floating scale, bint causal, bint dropout, uint64_t seed, uint64_t thr, floating keep_scale,
    floating *s, double *m, double *l, Py_ssize_t bk,
) noexcept nogil:
    """Rows i0 .. i0 + nq - 1 of one output batch element b (out, lse point at its row 0)."""
    cdef Py_ssize_t r, i, j0, nk, nvalid, kend = S
    cdef floating *row
    cdef floating *orow
    cdef floating mx, shift
    cdef double alpha, ssum
    cdef floating *o = out + i0 * Ev
    for r in range(nq):
        m[r] = -INFINITY
        l[r] = 0.0
    memset(o, 0, nq * Ev * sizeof(floating))
    if causal and i0 + nq < S:
        kend = i0 + nq                      # the last row sees keys j <= i0 + nq - 1
    cdef Py_ssize_t jb
    for jb in range((kend + bk - 1) // bk):
        j0 = jb * bk
        nk = min(bk, kend - j0)
        gemm(False, True, <int> nq, <int> nk, <int> E, scale, q + i0 * ldq, ldq, k + j0 * ldk, ldk,
             <floating> 0, s, <int> bk)
        for r in range(nq):
            row = s + r * bk
            i = i0 + r
            if mask != NULL:
                _add_strided(row, mask + i * msi + j0 * msj, nk, msj)
            nvalid = nk
            if causal:
                nvalid = min(nk, max(<Py_ssize_t> 0, i - j0 + 1))
            mx = _rowmax(row, nvalid, <floating> m[r])
            shift = mx if mx > -INFINITY else 0      # a row without any key so far: p = 0
            alpha = c_exp(m[r] - shift)
            ssum = _exp_sum(row, nvalid, shift)
            if nvalid < nk:
                memset(row + nvalid, 0, (nk - nvalid) * sizeof(floating))
            if dropout:
                _dropout(row, row, nvalid, seed, (<uint64_t> b * L + i) * S + j0, thr, keep_scale)
            l[r] = l[r] * alpha + ssum
            m[r] = mx
            if alpha != 1.0:
                _scale(o + r * Ev, Ev, <floating> alpha)
        gemm(False, False, <int> nq, <int> Ev, <int> nk, <floating> 1, s, <int> bk, v + j0 * ldv, ldv,
             <floating> 1, o, <int> Ev)
    for r in range(nq):
        orow = o + r * Ev
        if l[r] == 0.0:                     # no key: torch's zeros (and lse = -inf)
            memset(orow, 0, Ev * sizeof(floating))
            lse[i0 + r] = -INFINITY
        else:
            _scale(orow, Ev, <floating> (1.0 / l[r]))
            lse[i0 + r] = m[r] + c_log(l[r])


# ---------------------------------------------------------------------------------------------
# Backward

def sdpa_backward(
    const floating[:, :, :] q,            # IN: (nQ, L, E)
    const floating[:, :, :] k,            # IN: (nK, S, E)
    const floating[:, :, :] v,            # IN: (nV, S, Ev)
    const floating[:, :, :] mask,         # IN: (nM, L, S) additive; ignored unless has_mask
    bint has_mask,                        # IN
    const Py_ssize_t[::1] q_idx,          # IN: (B,)
    const Py_ssize_t[::1] k_idx,          # IN: (B,)
    const Py_ssize_t[::1] v_idx,          # IN: (B,)
    const Py_ssize_t[::1] mask_idx,       # IN: (B,)
    const floating[:, :, ::1] out,        # IN: (B, L, Ev) the forward output
    const floating[:, :, ::1] dout,       # IN: (B, L, Ev) its gradient
    const double[:, ::1] lse,             # IN: (B, L) from sdpa_forward
    floating[:, :, ::1] dq,               # OUT: (B, L, E)
    floating[:, :, ::1] dk,               # OUT: (B, S, E)
    floating[:, :, ::1] dv,               # OUT: (B, S, Ev)
    double scale,                         # IN
    bint causal,                          # IN
    double dropout_p,                     # IN
    uint64_t seed,                        # IN
    Py_ssize_t block_q=64,                # IN
    Py_ssize_t block_k=64,                # IN
):
    """Gradients of sdpa_forward per output batch element (see module doc)."""
    cdef Py_ssize_t B = out.shape[0], L = q.shape[1], E = q.shape[2], S = k.shape[1], Ev = v.shape[2]
    if (out.shape[1] != L or out.shape[2] != Ev or dout.shape[0] != B or dout.shape[1] != L
            or dout.shape[2] != Ev or lse.shape[0] != B or lse.shape[1] != L
            or dq.shape[0] != B or dq.shape[1] != L or dq.shape[2] != E
            or dk.shape[0] != B or dk.shape[1] != S or dk.shape[2] != E
            or dv.shape[0] != B or dv.shape[1] != S or dv.shape[2] != Ev):
        raise ValueError(f"sdpa_backward: out/dout must be ({B}, {L}, {Ev}), lse ({B}, {L}), dq ({B}, {L}, {E}), "
                         f"dk ({B}, {S}, {E}), dv ({B}, {S}, {Ev})")
    _check_args(q, k, v, mask, has_mask, q_idx, k_idx, v_idx, mask_idx, B, block_q, block_k, dropout_p)
    if B == 0:
        return
    cdef int ldq = <int> _row_ld(q, "q"), ldk = <int> _row_ld(k, "k"), ldv = <int> _row_ld(v, "v")
    # Tasks: (b, chunk of key blocks). With few batch elements the keys are cut into chunks so that
    # there are >= MIN_TASKS tasks; the cut depends on the sizes only (never on the thread count),
    # each chunk owns its rows of dK and dV, and its dQ is a partial summed in chunk order.
    cdef Py_ssize_t nkb = (S + block_k - 1) // block_k
    cdef Py_ssize_t nch = 1, kpc
    if B < MIN_TASKS:
        nch = min(nkb, (MIN_TASKS + B - 1) // B)
    kpc = (nkb + nch - 1) // nch
    nch = (nkb + kpc - 1) // kpc
    cdef Py_ssize_t ntask = B * nch
    cdef double work = <double> B * L * S * (2 * E + 2 * Ev) / 16.0 + <double> B * L * S
    cdef int nt = n_threads_for(<Py_ssize_t> min(work, 1e18))
    if nt > ntask:
        nt = <int> ntask
    if nt < 1:
        nt = 1
    dt = np.float32 if floating is float else np.float64
    cdef Py_ssize_t blk = block_q * block_k
    cdef floating[:, ::1] bufs = np.empty((nt, (3 if dropout_p > 0.0 else 2) * blk), dtype=dt)
    cdef double[:, ::1] dbuf = np.empty((nt, L), dtype=np.float64)
    cdef floating[:, :, :, ::1] dqp = np.empty((B if nch > 1 else 0, nch, L, E), dtype=dt)
    cdef Py_ssize_t msi = 0, msj = 0
    cdef const floating *mbase = NULL
    if has_mask:
        msi = mask.strides[1] // <Py_ssize_t> sizeof(floating)
        msj = mask.strides[2] // <Py_ssize_t> sizeof(floating)
    cdef uint64_t thr = _drop_threshold(dropout_p)
    cdef floating keep_scale = <floating> (1.0 / (1.0 - dropout_p))
    cdef bint dropout = dropout_p > 0.0
    cdef Py_ssize_t t, b, c, i
    cdef floating *dqb
    cdef int tid
    with nogil:
        for t in prange(ntask, schedule="static", num_threads=nt):
            tid = threadid()
            b = t // nch
            c = t - b * nch
            mbase = NULL
            if has_mask:
                mbase = &mask[mask_idx[b], 0, 0]
            dqb = &dq[b, 0, 0] if nch == 1 else &dqp[b, c, 0, 0]
            _backward_one(&q[q_idx[b], 0, 0], ldq, &k[k_idx[b], 0, 0], ldk, &v[v_idx[b], 0, 0], ldv,
                          mbase, msi, msj, &out[b, 0, 0], &dout[b, 0, 0], &lse[b, 0],
                          dqb, &dk[b, 0, 0], &dv[b, 0, 0], b, L, S, E, Ev,
                          <floating> scale, causal, dropout, seed, thr, keep_scale,
                          &bufs[tid, 0], &bufs[tid, blk], &bufs[tid, 2 * blk] if dropout else NULL,
                          &dbuf[tid, 0], block_q, block_k, c * kpc, min(nkb, (c + 1) * kpc))
        if nch > 1:
            for b in prange(B, schedule="static", num_threads=n_threads_for(B * nch * L * E // 16)):
                memcpy(&dq[b, 0, 0], &dqp[b, 0, 0, 0], L * E * sizeof(floating))
                for c in range(1, nch):
                    _add(&dq[b, 0, 0], &dqp[b, c, 0, 0], L * E)


cdef void _backward_one(
    const floating *q, int ldq, const floating *k, int ldk, const floating *v, int ldv,
    const floating *mask, Py_ssize_t msi, Py_ssize_t msj,
    const floating *out, const floating *dout, const double *lse,
    floating *dq, floating *dk, floating *dv, Py_ssize_t b,
    Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
    floating scale, bint causal, bint dropout, uint64_t seed, uint64_t thr, floating keep_scale,
    floating *p, floating *dp, floating *pd, double *D, Py_ssize_t bq, Py_ssize_t bk,
    Py_ssize_t jb0, Py_ssize_t jb1,
) noexcept nogil:
    """Gradients of one output batch element from key blocks jb0 .. jb1 - 1: their rows of dK and dV,
    and their part of dQ (all of dq is written). Key blocks outside, query blocks inside."""
    cdef Py_ssize_t r, i, i0, j0, nq, nk, nvalid, istart
    cdef Py_ssize_t s0 = jb0 * bk, s1 = min(S, jb1 * bk)
    cdef floating *row
    cdef floating *pv
    cdef double li
    for i in range(L):
        D[i] = _dot(dout + i * Ev, out + i * Ev, Ev)
    memset(dq, 0, L * E * sizeof(floating))
    if s1 > s0:
        memset(dk + s0 * E, 0, (s1 - s0) * E * sizeof(floating))
        memset(dv + s0 * Ev, 0, (s1 - s0) * Ev * sizeof(floating))
    cdef Py_ssize_t jb, ib
    for jb in range(jb0, jb1):
        j0 = jb * bk
        nk = min(bk, S - j0)
        istart = 0
        if causal:
            istart = j0 // bq                # blocks of rows i < j0 do not see these keys
            if istart * bq >= L:
                break
        for ib in range(istart, (L + bq - 1) // bq):
            i0 = ib * bq
            nq = min(bq, L - i0)
            gemm(False, True, <int> nq, <int> nk, <int> E, scale, q + i0 * ldq, ldq, k + j0 * ldk, ldk,
                 <floating> 0, p, <int> bk)
            for r in range(nq):
                row = p + r * bk
                i = i0 + r
                li = lse[i]
                nvalid = nk
                if causal:
                    nvalid = min(nk, max(<Py_ssize_t> 0, i - j0 + 1))
                if li == -INFINITY:           # a row without any key: P = 0
                    nvalid = 0
                if nvalid > 0:
                    if mask != NULL:
                        _add_strided(row, mask + i * msi + j0 * msj, nvalid, msj)
                    _exp(row, nvalid, <floating> li)
                if nvalid < nk:
                    memset(row + nvalid, 0, (nk - nvalid) * sizeof(floating))
                if dropout:
                    _dropout(row, pd + r * bk, nk, seed, (<uint64_t> b * L + i) * S + j0, thr, keep_scale)
            pv = pd if dropout else p
            # dV_j += P~^T dO_i
            gemm(True, False, <int> nk, <int> Ev, <int> nq, <floating> 1, pv, <int> bk, dout + i0 * Ev,
                 <int> Ev, <floating> 1, dv + j0 * Ev, <int> Ev)
            # dP = dO_i V_j^T
            gemm(False, True, <int> nq, <int> nk, <int> Ev, <floating> 1, dout + i0 * Ev, <int> Ev,
                 v + j0 * ldv, ldv, <floating> 0, dp, <int> bk)
            for r in range(nq):
                i = i0 + r
                if dropout:
                    _dropout(dp + r * bk, dp + r * bk, nk, seed, (<uint64_t> b * L + i) * S + j0, thr,
                             keep_scale)
                _ds(p + r * bk, dp + r * bk, nk, <floating> D[i])
            # dQ_i += scale dS K_j ; dK_j += scale dS^T Q_i
            gemm(False, False, <int> nq, <int> E, <int> nk, scale, dp, <int> bk, k + j0 * ldk, ldk,
                 <floating> 1, dq + i0 * E, <int> E)
            gemm(True, False, <int> nk, <int> E, <int> nq, scale, dp, <int> bk, q + i0 * ldq, ldq,
                 <floating> 1, dk + j0 * E, <int> E)


# ---------------------------------------------------------------------------------------------
# The dropout mask, materialised (for the differentiable composite backward)

def sdpa_dropout_mask(
    floating[:, :, ::1] out,              # OUT: (B, L, S) keep / (1 - p), or 0
    double dropout_p,                     # IN: in [0, 1)
    uint64_t seed,                        # IN: the seed given to sdpa_forward
):
    """out[b, i, j] := 1 / (1 - p) where sdpa_forward keeps element (b, i, j), else 0."""
    cdef Py_ssize_t B = out.shape[0], L = out.shape[1], S = out.shape[2], b, i
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"sdpa_dropout_mask: dropout_p must be in [0, 1), got {dropout_p}")
    cdef uint64_t thr = _drop_threshold(dropout_p)
    cdef floating keep_scale = <floating> (1.0 / (1.0 - dropout_p))
    if B == 0 or L == 0 or S == 0:
        return
    with nogil:
        for b in prange(B, schedule="static", num_threads=n_threads_for(B * L * S // 4)):
            for i in range(L):
                _fill_keep(&out[b, i, 0], S, seed, (<uint64_t> b * L + i) * S, thr, keep_scale)


cdef inline void _fill_keep(floating *row, Py_ssize_t n, uint64_t seed, uint64_t ctr, uint64_t thr,
                            floating keep_scale) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        row[j] = 1
    _dropout(row, row, n, seed, ctr, thr, keep_scale)
