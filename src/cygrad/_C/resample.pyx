"""Separable resampling kernels (interpolate): forward / backward pairs, fused float32 / float64.

Every mode of ``F.interpolate`` (nearest, nearest-exact, linear, bilinear, bicubic, trilinear,
area) is a separable linear map: along each spatial axis, output position ``j`` is a weighted
sum of at most ``K`` input positions,

    y[j] = sum_{k < cnt[j]} wt[j, k] * x[idx[j, k]]

and the N-d operator is the product of the per-axis maps. The Python layer builds the per-axis
tables (``idx``, ``wt``, ``cnt``) once per call; the kernels only run tight loops over them.

Each plane (one (n, c) slice, shape (D, H, W), C-contiguous) is resampled one axis at a time:

    x (D_in, H_in, W_in) --W--> A (D_in, H_in, W_out) --H--> B (D_in, H_out, W_out)
                         --D--> out (D_out, H_out, W_out)

The W pass gathers within each row; the H and D passes combine whole contiguous rows
(``dst_row = sum_k wt * src_row``, loops gcc vectorises). The summation order per output
element is W first, then H, then D, each in tap order: the order torch's CPU kernels use. Axes
whose map is the identity are skipped (flag ``id_*``), and rows of A that no later pass reads
(downsampling) are not computed (``row_used``, ``d_used``).

The backward is the adjoint, in reverse: D^T, H^T (row axpys into zeroed buffers) and W^T
(a scatter-add within each row). Every plane, and every row within a plane, is written by one
thread only, so there are no races, and each element's sum is taken in a fixed order.

Threads: ``prange`` over planes, each thread with its own scratch (A, B) slice; when there are
fewer planes than threads (or a badly balanced count), planes run one after another and each
pass is split instead: rows for the W passes, column blocks for the H and D passes. Both
schedules do the same arithmetic per element, so results are bitwise identical for any thread
count.

Arguments are checked here (shapes, table sizes, index ranges); the caller builds them.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

import numpy as np

from ._parallel cimport n_threads_for


cdef struct Geom:
    Py_ssize_t d_in, h_in, w_in, d_out, h_out, w_out
    Py_ssize_t kw, kh, kd                   # taps per output position (table widths)
    const Py_ssize_t *idx_w
    const Py_ssize_t *idx_h
    const Py_ssize_t *idx_d
    const Py_ssize_t *cnt_w
    const Py_ssize_t *cnt_h
    const Py_ssize_t *cnt_d
    const unsigned char *row_used           # (d_in * h_in): row of A read by a later pass
    const unsigned char *d_used             # (d_in): depth slice of B read by the D pass
    bint id_w, id_h, id_d                   # the axis map is the identity: skip its pass
    bint uni_w                              # every cnt_w[j] == kw


# ---- per-pass loops ------------------------------------------------------------------------------

cdef void _gather_rows(const floating *src, floating *dst, Py_ssize_t r0, Py_ssize_t r1,
                       Py_ssize_t n_in, Py_ssize_t n_out, const Py_ssize_t *idx,
                       const floating *wt, const Py_ssize_t *cnt, Py_ssize_t K, bint uniform,
                       const unsigned char *row_used) noexcept nogil:
    """dst[r, j] = sum_k wt[j, k] * src[r, idx[j, k]] for rows r0 <= r < r1 (used rows only)."""
    cdef Py_ssize_t r, j, k, b
    cdef const floating *s
    cdef floating *d
    cdef floating acc
    for r in range(r0, r1):
        if row_used[r] == 0:
            continue
        s = src + r * n_in
        d = dst + r * n_out
        if uniform and K == 1:
            for j in range(n_out):
                d[j] = wt[j] * s[idx[j]]
        elif uniform and K == 2:
            for j in range(n_out):
                d[j] = wt[2 * j] * s[idx[2 * j]] + wt[2 * j + 1] * s[idx[2 * j + 1]]
        elif uniform and K == 4:
            for j in range(n_out):
                b = 4 * j
                d[j] = (((wt[b] * s[idx[b]] + wt[b + 1] * s[idx[b + 1]]) + wt[b + 2] * s[idx[b + 2]])
                        + wt[b + 3] * s[idx[b + 3]])
        else:
            for j in range(n_out):
                b = K * j
                acc = wt[b] * s[idx[b]]
                for k in range(1, cnt[j]):
                    acc = acc + wt[b + k] * s[idx[b + k]]
                d[j] = acc


cdef void _scatter_rows(const floating *src, floating *dst, Py_ssize_t r0, Py_ssize_t r1,
                        Py_ssize_t n_in, Py_ssize_t n_out, const Py_ssize_t *idx,
                        const floating *wt, const Py_ssize_t *cnt, Py_ssize_t K,
                        const unsigned char *row_used) noexcept nogil:
    """Adjoint of _gather_rows: dst[r, :] = 0; dst[r, idx[j, k]] += wt[j, k] * src[r, j]."""
    cdef Py_ssize_t r, j, k, b
    cdef const floating *s
    cdef floating *d
    cdef floating g
    for r in range(r0, r1):
        d = dst + r * n_in
        memset(d, 0, n_in * sizeof(floating))
        if row_used[r] == 0:
            continue
        s = src + r * n_out
        for j in range(n_out):
            g = s[j]
            b = K * j
            for k in range(cnt[j]):
                d[idx[b + k]] += wt[b + k] * g


cdef void _combine(const floating *src, floating *dst, Py_ssize_t outer, Py_ssize_t n_in,
                   Py_ssize_t n_out, Py_ssize_t inner, Py_ssize_t c0, Py_ssize_t c1,
                   const Py_ssize_t *idx, const floating *wt, const Py_ssize_t *cnt, Py_ssize_t K,
                   const unsigned char *outer_used) noexcept nogil:
    """dst[o, j, c] = sum_k wt[j, k] * src[o, idx[j, k], c] for columns c0 <= c < c1.

    src is (outer, n_in, inner), dst (outer, n_out, inner); outer slices with outer_used[o] == 0
    are skipped (outer_used may be NULL: all used).
    """
    cdef Py_ssize_t o, j, k, c, b
    cdef const floating *s0
    cdef const floating *s1
    cdef floating *d
    cdef floating w0, w1
    for o in range(outer):
        if outer_used != NULL and outer_used[o] == 0:
            continue
        for j in range(n_out):
            d = dst + (o * n_out + j) * inner
            b = K * j
            s0 = src + (o * n_in + idx[b]) * inner
            w0 = wt[b]
            if cnt[j] == 2:
                s1 = src + (o * n_in + idx[b + 1]) * inner
                w1 = wt[b + 1]
                for c in range(c0, c1):
                    d[c] = w0 * s0[c] + w1 * s1[c]
            else:
                for c in range(c0, c1):
                    d[c] = w0 * s0[c]
                for k in range(1, cnt[j]):
                    s1 = src + (o * n_in + idx[b + k]) * inner
                    w1 = wt[b + k]
                    for c in range(c0, c1):
                        d[c] = d[c] + w1 * s1[c]


cdef void _combine_t(const floating *src, floating *dst, Py_ssize_t outer, Py_ssize_t n_in,
                     Py_ssize_t n_out, Py_ssize_t inner, Py_ssize_t c0, Py_ssize_t c1,
                     const Py_ssize_t *idx, const floating *wt, const Py_ssize_t *cnt, Py_ssize_t K,
                     const unsigned char *outer_used) noexcept nogil:
    """Adjoint of _combine on columns c0 <= c < c1: dst (outer, n_in, inner) := 0, then
    dst[o, idx[j, k], c] += wt[j, k] * src[o, j, c] with src (outer, n_out, inner)."""
    cdef Py_ssize_t o, i, j, k, c, b
    cdef const floating *s
    cdef floating *d
    cdef floating w
    for o in range(outer):
        for i in range(n_in):
            d = dst + (o * n_in + i) * inner
            for c in range(c0, c1):
                d[c] = 0
        if outer_used != NULL and outer_used[o] == 0:
            continue
        for j in range(n_out):
            s = src + (o * n_out + j) * inner
            b = K * j
            for k in range(cnt[j]):
                d = dst + (o * n_in + idx[b + k]) * inner
                w = wt[b + k]
                for c in range(c0, c1):
                    d[c] = d[c] + w * s[c]


# ---- one plane, serial ---------------------------------------------------------------------------

cdef inline Py_ssize_t _last_pass(const Geom *g) noexcept nogil:
    """0, 1, 2 for W, H, D: the last non-identity pass of the forward chain (-1 if none)."""
    if not g.id_d:
        return 2
    if not g.id_h:
        return 1
    if not g.id_w:
        return 0
    return -1


cdef inline Py_ssize_t _first_pass(const Geom *g) noexcept nogil:
    """0, 1, 2 for W, H, D: the first non-identity pass of the forward chain (the last of the
    backward chain; -1 if none)."""
    if not g.id_w:
        return 0
    if not g.id_h:
        return 1
    if not g.id_d:
        return 2
    return -1


cdef void _forward_plane(const Geom *g, const floating *x, floating *out, floating *buf_a,
                         floating *buf_b, const floating *wt_w, const floating *wt_h,
                         const floating *wt_d) noexcept nogil:
    cdef Py_ssize_t last = _last_pass(g)
    cdef const floating *cur = x
    cdef floating *dst
    if not g.id_w:
        dst = out if last == 0 else buf_a
        _gather_rows(cur, dst, 0, g.d_in * g.h_in, g.w_in, g.w_out, g.idx_w, wt_w, g.cnt_w, g.kw,
                     g.uni_w, g.row_used)
        cur = dst
    if not g.id_h:
        dst = out if last == 1 else buf_b
        _combine(cur, dst, g.d_in, g.h_in, g.h_out, g.w_out, 0, g.w_out, g.idx_h, wt_h, g.cnt_h,
                 g.kh, g.d_used)
        cur = dst
    if not g.id_d:
        _combine(cur, out, 1, g.d_in, g.d_out, g.h_out * g.w_out, 0, g.h_out * g.w_out, g.idx_d,
                 wt_d, g.cnt_d, g.kd, NULL)


cdef void _backward_plane(const Geom *g, const floating *gout, floating *gin, floating *buf_a,
                          floating *buf_b, const floating *wt_w, const floating *wt_h,
                          const floating *wt_d) noexcept nogil:
    cdef Py_ssize_t first = _first_pass(g)
    cdef const floating *cur = gout
    cdef floating *dst
    if not g.id_d:
        dst = gin if first == 2 else buf_b
        _combine_t(cur, dst, 1, g.d_in, g.d_out, g.h_out * g.w_out, 0, g.h_out * g.w_out, g.idx_d,
                   wt_d, g.cnt_d, g.kd, NULL)
        cur = dst
    if not g.id_h:
        dst = gin if first == 1 else buf_a
        _combine_t(cur, dst, g.d_in, g.h_in, g.h_out, g.w_out, 0, g.w_out, g.idx_h, wt_h, g.cnt_h,
                   g.kh, g.d_used)
        cur = dst
    if not g.id_w:
        _scatter_rows(cur, gin, 0, g.d_in * g.h_in, g.w_in, g.w_out, g.idx_w, wt_w, g.cnt_w, g.kw,
                      g.row_used)


# ---- one plane, each pass split over threads ----------------------------------------------------

cdef inline Py_ssize_t _block(Py_ssize_t n, Py_ssize_t nb, Py_ssize_t i) noexcept nogil:
    return (n * i) // nb


cdef void _forward_plane_split(const Geom *g, const floating *x, floating *out, floating *buf_a,
                               floating *buf_b, const floating *wt_w, const floating *wt_h,
                               const floating *wt_d, int nt) noexcept nogil:
    cdef Py_ssize_t last = _last_pass(g)
    cdef const floating *cur = x
    cdef floating *dst
    cdef Py_ssize_t r, i, nrows = g.d_in * g.h_in, plane = g.h_out * g.w_out
    if not g.id_w:
        dst = out if last == 0 else buf_a
        for r in prange(nrows, num_threads=nt, schedule='static'):
            _gather_rows(cur, dst, r, r + 1, g.w_in, g.w_out, g.idx_w, wt_w, g.cnt_w, g.kw,
                         g.uni_w, g.row_used)
        cur = dst
    if not g.id_h:
        dst = out if last == 1 else buf_b
        for i in prange(nt, num_threads=nt, schedule='static'):
            _combine(cur, dst, g.d_in, g.h_in, g.h_out, g.w_out, _block(g.w_out, nt, i),
                     _block(g.w_out, nt, i + 1), g.idx_h, wt_h, g.cnt_h, g.kh, g.d_used)
        cur = dst
    if not g.id_d:
        for i in prange(nt, num_threads=nt, schedule='static'):
            _combine(cur, out, 1, g.d_in, g.d_out, plane, _block(plane, nt, i),
                     _block(plane, nt, i + 1), g.idx_d, wt_d, g.cnt_d, g.kd, NULL)


cdef void _backward_plane_split(const Geom *g, const floating *gout, floating *gin,
                                floating *buf_a, floating *buf_b, const floating *wt_w,
                                const floating *wt_h, const floating *wt_d, int nt) noexcept nogil:
    cdef Py_ssize_t first = _first_pass(g)
    cdef const floating *cur = gout
    cdef floating *dst
    cdef Py_ssize_t r, i, nrows = g.d_in * g.h_in, plane = g.h_out * g.w_out
    if not g.id_d:
        dst = gin if first == 2 else buf_b
        for i in prange(nt, num_threads=nt, schedule='static'):
            _combine_t(cur, dst, 1, g.d_in, g.d_out, plane, _block(plane, nt, i),
                       _block(plane, nt, i + 1), g.idx_d, wt_d, g.cnt_d, g.kd, NULL)
        cur = dst
    if not g.id_h:
        dst = gin if first == 1 else buf_a
        for i in prange(nt, num_threads=nt, schedule='static'):
            _combine_t(cur, dst, g.d_in, g.h_in, g.h_out, g.w_out, _block(g.w_out, nt, i),
                       _block(g.w_out, nt, i + 1), g.idx_h, wt_h, g.cnt_h, g.kh, g.d_used)
        cur = dst
    if not g.id_w:
        for r in prange(nrows, num_threads=nt, schedule='static'):
            _scatter_rows(cur, gin, r, r + 1, g.w_in, g.w_out, g.idx_w, wt_w, g.cnt_w, g.kw,
                          g.row_used)


# ---- argument checks -----------------------------------------------------------------------------

cdef int _check_table(str name, const Py_ssize_t[:, ::1] idx, const Py_ssize_t[::1] cnt,
                      Py_ssize_t wt_rows, Py_ssize_t wt_cols, Py_ssize_t n_in,
                      Py_ssize_t n_out) except -1:
    cdef Py_ssize_t j, k, K = idx.shape[1]
    if idx.shape[0] != n_out or cnt.shape[0] != n_out or wt_rows != n_out or wt_cols != K or K < 1:
        raise ValueError(
            f"resample: {name} tables must be ({n_out}, K) / ({n_out},) with K >= 1, got idx "
            f"({idx.shape[0]}, {idx.shape[1]}), wt ({wt_rows}, {wt_cols}), cnt ({cnt.shape[0]},)")
    for j in range(n_out):
        if cnt[j] < 1 or cnt[j] > K:
            raise ValueError(f"resample: {name} cnt[{j}] = {cnt[j]} is not in [1, {K}]")
        for k in range(cnt[j]):
            if idx[j, k] < 0 or idx[j, k] >= n_in:
                raise ValueError(
                    f"resample: {name} idx[{j}, {k}] = {idx[j, k]} is out of range for an axis "
                    f"of size {n_in}")
    return 0


cdef int _fill_geom(Geom *g, tuple shape_in, tuple shape_out, const Py_ssize_t[:, ::1] idx_w,
                    const Py_ssize_t[::1] cnt_w, const Py_ssize_t[:, ::1] idx_h,
                    const Py_ssize_t[::1] cnt_h, const Py_ssize_t[:, ::1] idx_d,
                    const Py_ssize_t[::1] cnt_d,
                    const unsigned char[::1] row_used, const unsigned char[::1] d_used,
                    tuple wt_shapes, tuple identity) except -1:
    cdef Py_ssize_t j
    g.d_in, g.h_in, g.w_in = shape_in
    g.d_out, g.h_out, g.w_out = shape_out
    if min(shape_in) < 1 or min(shape_out) < 1:
        raise ValueError(f"resample: spatial sizes must be positive, got {shape_in} -> {shape_out}")
    _check_table("W", idx_w, cnt_w, wt_shapes[0][0], wt_shapes[0][1], g.w_in, g.w_out)
    _check_table("H", idx_h, cnt_h, wt_shapes[1][0], wt_shapes[1][1], g.h_in, g.h_out)
    _check_table("D", idx_d, cnt_d, wt_shapes[2][0], wt_shapes[2][1], g.d_in, g.d_out)
    if row_used.shape[0] != g.d_in * g.h_in or d_used.shape[0] != g.d_in:
        raise ValueError(f"resample: row_used / d_used must have {g.d_in * g.h_in} / {g.d_in} "
                         f"entries, got {row_used.shape[0]} / {d_used.shape[0]}")
    g.id_w, g.id_h, g.id_d = identity
    if (g.id_w and g.w_in != g.w_out) or (g.id_h and g.h_in != g.h_out) or \
            (g.id_d and g.d_in != g.d_out):
        raise ValueError(f"resample: an identity axis must keep its size, got {shape_in} -> {shape_out}")
    g.kw, g.kh, g.kd = idx_w.shape[1], idx_h.shape[1], idx_d.shape[1]
    g.idx_w, g.idx_h, g.idx_d = &idx_w[0, 0], &idx_h[0, 0], &idx_d[0, 0]
    g.cnt_w, g.cnt_h, g.cnt_d = &cnt_w[0], &cnt_h[0], &cnt_d[0]
    g.row_used, g.d_used = &row_used[0], &d_used[0]
    g.uni_w = True
    for j in range(g.w_out):
        if cnt_w[j] != g.kw:
            g.uni_w = False
    return 0


cdef Py_ssize_t _work(const Geom *g) noexcept:
    """Multiply-adds per plane, scaled to the units of n_threads_for (cheap ops count 1/4)."""
    cdef Py_ssize_t w = 0
    if not g.id_w:
        w += g.d_in * g.h_in * g.w_out * g.kw
    if not g.id_h:
        w += g.d_in * g.h_out * g.w_out * g.kh
    if not g.id_d:
        w += g.d_out * g.h_out * g.w_out * g.kd
    return w // 4 + 1


cdef inline bint _split_planes(Py_ssize_t planes, int nt) noexcept:
    """True: run planes in parallel; False: planes one by one, each pass split over threads."""
    return nt <= 1 or planes % nt == 0 or planes >= 4 * nt


# ---- entry points --------------------------------------------------------------------------------

def resample_forward(
    const floating[:, ::1] x,            # IN: (planes, d_in * h_in * w_in)
    floating[:, ::1] out,                # OUT: (planes, d_out * h_out * w_out)
    tuple shape_in,                      # IN: (d_in, h_in, w_in), all >= 1
    tuple shape_out,                     # IN: (d_out, h_out, w_out), all >= 1
    const Py_ssize_t[:, ::1] idx_w,      # IN: (w_out, Kw) source positions along W
    const floating[:, ::1] wt_w,         # IN: (w_out, Kw) weights
    const Py_ssize_t[::1] cnt_w,               # IN: (w_out,) taps used, 1 <= cnt <= Kw
    const Py_ssize_t[:, ::1] idx_h,      # IN: (h_out, Kh)
    const floating[:, ::1] wt_h,         # IN: (h_out, Kh)
    const Py_ssize_t[::1] cnt_h,               # IN: (h_out,)
    const Py_ssize_t[:, ::1] idx_d,      # IN: (d_out, Kd)
    const floating[:, ::1] wt_d,         # IN: (d_out, Kd)
    const Py_ssize_t[::1] cnt_d,               # IN: (d_out,)
    const unsigned char[::1] row_used,   # IN: (d_in * h_in,) 1 where row (d, h) feeds the output
    const unsigned char[::1] d_used,     # IN: (d_in,) 1 where depth d feeds the output
    tuple identity,                      # IN: (id_w, id_h, id_d) axis map is the identity
):
    """out[p] := (D o H o W)(x[p]) for every plane p (see the module docstring)."""
    cdef Geom g
    cdef Py_ssize_t planes = x.shape[0], p, ta, tb
    cdef int nt, t
    cdef floating[:, ::1] scratch
    _fill_geom(&g, shape_in, shape_out, idx_w, cnt_w, idx_h, cnt_h, idx_d, cnt_d, row_used, d_used,
               ((wt_w.shape[0], wt_w.shape[1]), (wt_h.shape[0], wt_h.shape[1]),
                (wt_d.shape[0], wt_d.shape[1])), identity)
    if x.shape[1] != g.d_in * g.h_in * g.w_in or out.shape[0] != planes or \
            out.shape[1] != g.d_out * g.h_out * g.w_out:
        raise ValueError(f"resample_forward: x ({x.shape[0]}, {x.shape[1]}) and out "
                         f"({out.shape[0]}, {out.shape[1]}) do not match {shape_in} -> {shape_out}")
    if planes == 0:
        return
    if g.id_w and g.id_h and g.id_d:
        with nogil:
            for p in range(planes):
                memcpy(&out[p, 0], &x[p, 0], x.shape[1] * sizeof(floating))
        return
    ta = g.d_in * g.h_in * g.w_out
    tb = g.d_in * g.h_out * g.w_out
    nt = n_threads_for(_work(&g) * planes)
    dtype = np.float32 if floating is float else np.float64
    if _split_planes(planes, nt):
        scratch = np.empty((nt, ta + tb), dtype)
        with nogil:
            for p in prange(planes, num_threads=nt, schedule='static'):
                t = threadid()
                _forward_plane(&g, &x[p, 0], &out[p, 0], &scratch[t, 0], &scratch[t, ta],
                               &wt_w[0, 0], &wt_h[0, 0], &wt_d[0, 0])
    else:
        scratch = np.empty((1, ta + tb), dtype)
        with nogil:
            for p in range(planes):
                _forward_plane_split(&g, &x[p, 0], &out[p, 0], &scratch[0, 0], &scratch[0, ta],
                                     &wt_w[0, 0], &wt_h[0, 0], &wt_d[0, 0], nt)


def resample_backward(
    const floating[:, ::1] grad,         # IN: (planes, d_out * h_out * w_out)
    floating[:, ::1] out,                # OUT: (planes, d_in * h_in * w_in), fully written
    tuple shape_in,                      # IN: (d_in, h_in, w_in) of the forward input
    tuple shape_out,                     # IN: (d_out, h_out, w_out) of the forward output
    const Py_ssize_t[:, ::1] idx_w,      # IN: the forward tables (see resample_forward)
    const floating[:, ::1] wt_w,
    const Py_ssize_t[::1] cnt_w,
    const Py_ssize_t[:, ::1] idx_h,
    const floating[:, ::1] wt_h,
    const Py_ssize_t[::1] cnt_h,
    const Py_ssize_t[:, ::1] idx_d,
    const floating[:, ::1] wt_d,
    const Py_ssize_t[::1] cnt_d,
    const unsigned char[::1] row_used,
    const unsigned char[::1] d_used,
    tuple identity,
):
    """out[p] := (D o H o W)^T (grad[p]) for every plane p: the gradient of resample_forward."""
    cdef Geom g
    cdef Py_ssize_t planes = grad.shape[0], p, ta, tb
    cdef int nt, t
    cdef floating[:, ::1] scratch
    _fill_geom(&g, shape_in, shape_out, idx_w, cnt_w, idx_h, cnt_h, idx_d, cnt_d, row_used, d_used,
               ((wt_w.shape[0], wt_w.shape[1]), (wt_h.shape[0], wt_h.shape[1]),
                (wt_d.shape[0], wt_d.shape[1])), identity)
    if grad.shape[1] != g.d_out * g.h_out * g.w_out or out.shape[0] != planes or \
            out.shape[1] != g.d_in * g.h_in * g.w_in:
        raise ValueError(f"resample_backward: grad ({grad.shape[0]}, {grad.shape[1]}) and out "
                         f"({out.shape[0]}, {out.shape[1]}) do not match {shape_in} -> {shape_out}")
    if planes == 0:
        return
    if g.id_w and g.id_h and g.id_d:
        with nogil:
            for p in range(planes):
                memcpy(&out[p, 0], &grad[p, 0], grad.shape[1] * sizeof(floating))
        return
    ta = g.d_in * g.h_in * g.w_out
    tb = g.d_in * g.h_out * g.w_out
    nt = n_threads_for(_work(&g) * planes)
    dtype = np.float32 if floating is float else np.float64
    if _split_planes(planes, nt):
        scratch = np.empty((nt, ta + tb), dtype)
        with nogil:
            for p in prange(planes, num_threads=nt, schedule='static'):
                t = threadid()
                _backward_plane(&g, &grad[p, 0], &out[p, 0], &scratch[t, 0], &scratch[t, ta],
                                &wt_w[0, 0], &wt_h[0, 0], &wt_d[0, 0])
    else:
        scratch = np.empty((1, ta + tb), dtype)
        with nogil:
            for p in range(planes):
                _backward_plane_split(&g, &grad[p, 0], &out[p, 0], &scratch[0, 0], &scratch[0, ta],
                                      &wt_w[0, 0], &wt_h[0, 0], &wt_d[0, 0], nt)
