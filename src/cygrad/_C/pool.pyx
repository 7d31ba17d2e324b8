"""Pooling kernels: max / average / adaptive pooling forward and backward, max-index scatter and
gather (max_pool backward, max_unpool), fused float32 / float64.

Every kernel works on C-contiguous arrays of PLANES: the caller reshapes an (N, C, *spatial)
input to (P, D, H, W) with P = N * C (1-d pooling uses D = H = 1, 2-d pooling D = 1), so one
geometry serves 1-d, 2-d and 3-d pooling. Each kernel is a single ``prange`` over the planes
(``schedule='static'``): a plane is read and written by exactly one thread, so the scatters of
the backward passes need no atomics and every result is bitwise independent of the thread count.

Window geometry (per spatial dimension, input size ``n``, output size ``o``):

* max / avg pooling: window ``i`` starts at ``i * stride - padding``; its taps are
  ``start + t * dilation`` for ``t < kernel`` (avg pooling has dilation 1). The caller has checked
  the sizes as torch does; the kernels only ever read taps inside ``[0, n)``, so any positive
  kernel / stride / dilation is memory safe.
* adaptive pooling: window ``i`` covers ``[floor(i * n / o), ceil((i + 1) * n / o))``.

Semantics follow torch's CPU kernels: the max is the first maximum in (d, h, w) order, a NaN
wins over any number (the last NaN of a window is taken), the index is the flat position inside
the plane (``d * H * W + h * W + w``) and a window with no valid tap gives -inf with the index
torch reports (its first non-negative tap). Average pooling sums in (d, h, w) order in the
input's precision and divides by the window size (``count_include_pad``: clipped to the padded
input, otherwise the valid taps only) or by ``divisor_override``. Index kernels skip indices
outside ``[0, plane size)``.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memset

import numpy as np

from ._parallel cimport n_threads_for


# The vectorised inner loop of max pooling: one tap (a fixed input offset) against a row of
# outputs. Plain C so that the pointers are ``restrict`` (no aliasing versions) and strides 1
# and 2 are compile-time constants (vector loads and shuffles instead of element gathers).
cdef extern from *:
    """
    #define CG_POOL_MAX_ROW(NAME, T)                                                           \
    static void NAME(const T *restrict p, T *restrict yr, int *restrict sc, Py_ssize_t a,      \
                     Py_ssize_t b, Py_ssize_t s, int base)                                     \
    {                                                                                          \
        Py_ssize_t ow;                                                                         \
        if (s == 1) {                                                                          \
            for (ow = a; ow < b; ow++) {                                                       \
                T v = p[ow], m = yr[ow];                                                       \
                int take = (v > m) | (v != v);                                                 \
                yr[ow] = take ? v : m;                                                         \
                sc[ow] = take ? base + (int)ow : sc[ow];                                       \
            }                                                                                  \
        } else if (s == 2) {                                                                   \
            for (ow = a; ow < b; ow++) {                                                       \
                T v = p[2 * ow], m = yr[ow];                                                   \
                int take = (v > m) | (v != v);                                                 \
                yr[ow] = take ? v : m;                                                         \
                sc[ow] = take ? base + 2 * (int)ow : sc[ow];                                   \
            }                                                                                  \
        } else {                                                                               \
            int s32 = (int)s;                                                                  \
            for (ow = a; ow < b; ow++) {                                                       \
                T v = p[ow * s], m = yr[ow];                                                   \
                int take = (v > m) | (v != v);                                                 \
                yr[ow] = take ? v : m;                                                         \
                sc[ow] = take ? base + s32 * (int)ow : sc[ow];                                 \
            }                                                                                  \
        }                                                                                      \
    }
    CG_POOL_MAX_ROW(cg_pool_max_row_f, float)
    CG_POOL_MAX_ROW(cg_pool_max_row_d, double)
    """
    void cg_pool_max_row_f(const float *p, float *yr, int *sc, Py_ssize_t a, Py_ssize_t b,
                           Py_ssize_t s, int base) noexcept nogil
    void cg_pool_max_row_d(const double *p, double *yr, int *sc, Py_ssize_t a, Py_ssize_t b,
                           Py_ssize_t s, int base) noexcept nogil


cdef struct Geom:
    Py_ssize_t D, H, W, oD, oH, oW
    Py_ssize_t dD, dH, dW          # dilations (1 for avg / adaptive)


# Per-dimension window tables (one entry per output position):
#   max pooling: lo, hi = range of valid taps, start = first tap's input coordinate (may be < 0)
#   avg pooling: lo, hi = clipped input range, start = window size clipped to the padded input
#   adaptive:    lo, hi = input range
cdef struct Tab:
    const Py_ssize_t *lo
    const Py_ssize_t *hi
    const Py_ssize_t *start


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for a >= 0, b > 0."""
    return (a + b - 1) // b


def _tap_table(Py_ssize_t n, Py_ssize_t o, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p, Py_ssize_t d):
    """(3, o) table of the valid taps of each max-pooling window: lo, hi, start."""
    if k <= 0 or s <= 0 or d <= 0 or o < 0 or n < 0:
        raise ValueError("pool: kernel, stride and dilation must be positive")
    t = np.empty((3, o), dtype=np.intp)
    cdef Py_ssize_t[:, ::1] tv = t
    cdef Py_ssize_t i, start, lo, hi
    for i in range(o):
        start = i * s - p
        lo = 0 if start >= 0 else _ceil_div(-start, d)
        hi = _ceil_div(n - start, d) if n > start else 0
        if hi > k:
            hi = k
        tv[0, i] = lo
        tv[1, i] = hi if hi > lo else lo
        tv[2, i] = start
    return t


def _avg_table(Py_ssize_t n, Py_ssize_t o, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p):
    """(3, o) table of each average-pooling window: clipped lo, hi and the padded window size."""
    if k <= 0 or s <= 0 or o < 0 or n < 0:
        raise ValueError("pool: kernel and stride must be positive")
    t = np.empty((3, o), dtype=np.intp)
    cdef Py_ssize_t[:, ::1] tv = t
    cdef Py_ssize_t i, start, end
    for i in range(o):
        start = i * s - p
        end = start + k
        if end > n + p:
            end = n + p
        tv[2, i] = end - start
        if start < 0:
            start = 0
        if end > n:
            end = n
        tv[0, i] = start
        tv[1, i] = end if end > start else start
    return t


def _adaptive_table(Py_ssize_t n, Py_ssize_t o):
    """(3, o) table of each adaptive window: [floor(i n / o), ceil((i + 1) n / o))."""
    if o < 0 or n < 0 or (o > 0 and n == 0):
        raise ValueError("pool: bad adaptive sizes")
    t = np.empty((3, o), dtype=np.intp)
    cdef Py_ssize_t[:, ::1] tv = t
    cdef Py_ssize_t i
    for i in range(o):
        tv[0, i] = (i * n) // o
        tv[1, i] = _ceil_div((i + 1) * n, o)
        tv[2, i] = tv[1, i] - tv[0, i]
    return t


cdef Tab _tab(const Py_ssize_t[:, ::1] t, Py_ssize_t o) except *:
    if t.shape[0] != 3 or t.shape[1] != o:
        raise ValueError("pool: window table does not match the output size")
    cdef Tab r
    if o == 0:
        r.lo = r.hi = r.start = NULL
    else:
        r.lo = &t[0, 0]
        r.hi = &t[1, 0]
        r.start = &t[2, 0]
    return r


cdef tuple _shape4(Py_ssize_t *shape):
    return (shape[0], shape[1], shape[2], shape[3])


cdef int _check_planes(tuple xs, tuple ys, str name) except -1:
    if xs[0] != ys[0]:
        raise ValueError(f"{name}: input has {xs[0]} planes but output has {ys[0]}")
    return 0


# ---------------------------------------------------------------------------------------------
# Per-plane loops

cdef inline void _max_window(const floating *x, floating *y, long long *ind, const Geom *g,
                             Py_ssize_t ds, Py_ssize_t dlo, Py_ssize_t dhi, Py_ssize_t hs,
                             Py_ssize_t hlo, Py_ssize_t hhi, Py_ssize_t ws, Py_ssize_t wlo,
                             Py_ssize_t whi) noexcept nogil:
    """One window: y, ind := max and its flat index over the taps (d, h, w) = (ds + kd dD,
    hs + kh dH, ws + kw dW), kd in [dlo, dhi) etc., visited in (d, h, w) order."""
    cdef Py_ssize_t kd, kh, kw, row, W = g.W, HW = g.H * g.W, dW = g.dW
    cdef Py_ssize_t mi = (ds + dlo * g.dD) * HW + (hs + hlo * g.dH) * W + ws + wlo * dW
    cdef floating m = -INFINITY, v
    cdef int take
    for kd in range(dlo, dhi):
        for kh in range(hlo, hhi):
            row = (ds + kd * g.dD) * HW + (hs + kh * g.dH) * W + ws
            for kw in range(wlo, whi):
                v = x[row + kw * dW]
                take = (v > m) | (v != v)  # selects, not branches: maxima are unpredictable
                m = v if take else m
                mi = (row + kw * dW) if take else mi
    y[0] = m
    ind[0] = mi


cdef void _max_fwd_plane(const floating *x, floating *y, long long *ind, int *scratch,
                         const Geom *g, const Tab *td, const Tab *th, const Tab *tw,
                         Py_ssize_t kW, Py_ssize_t sW, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Max pooling of one plane, one output row (od, oh) at a time.

    Outputs ow in [a, b) have all kW column taps inside the input. For them the taps are the
    outer loops and the outputs of the row the inner one: a branch-free select over strided
    loads (the index kept as int32 in ``scratch``, so that values and indices fill vector lanes
    alike) that the compiler vectorises, free of the branch mispredictions of a per-window
    running max on unordered data. Taps are visited in the same (d, h, w) order as the
    per-window loop used for the other outputs, so maxima, NaN handling and ties agree with it
    (and with torch). The caller guarantees D * H * W < 2**31 when a < b."""
    cdef Py_ssize_t od, oh, ow, kd, kh, kw, W = g.W, HW = g.H * g.W, oW = g.oW
    cdef Py_ssize_t ds, dlo, dhi, hs, hlo, hhi, row
    cdef int base, first, s32 = <int> sW
    cdef floating *yr
    cdef long long *ir
    for od in range(g.oD):
        ds = td.start[od]
        dlo = td.lo[od]
        dhi = td.hi[od]
        for oh in range(g.oH):
            hs = th.start[oh]
            hlo = th.lo[oh]
            hhi = th.hi[oh]
            yr = y + (od * g.oH + oh) * oW
            ir = ind + (od * g.oH + oh) * oW
            for ow in range(a):
                _max_window(x, yr + ow, ir + ow, g, ds, dlo, dhi, hs, hlo, hhi,
                            tw.start[ow], tw.lo[ow], tw.hi[ow])
            for ow in range(b if b > a else a, oW):
                _max_window(x, yr + ow, ir + ow, g, ds, dlo, dhi, hs, hlo, hhi,
                            tw.start[ow], tw.lo[ow], tw.hi[ow])
            if a >= b:
                continue
            first = <int> ((ds + dlo * g.dD) * HW + (hs + hlo * g.dH) * W + tw.start[0])
            for ow in range(a, b):
                yr[ow] = -INFINITY
                scratch[ow] = first + s32 * <int> ow
            for kd in range(dlo, dhi):
                for kh in range(hlo, hhi):
                    row = (ds + kd * g.dD) * HW + (hs + kh * g.dH) * W + tw.start[0]
                    for kw in range(kW):
                        base = <int> (row + kw * g.dW)
                        if floating is float:
                            cg_pool_max_row_f(x + base, yr, scratch, a, b, sW, base)
                        else:
                            cg_pool_max_row_d(x + base, yr, scratch, a, b, sW, base)
            for ow in range(a, b):
                ir[ow] = scratch[ow]


cdef void _avg_fwd_plane(const floating *x, floating *y, const Geom *g, const Tab *td,
                         const Tab *th, const Tab *tw, bint include_pad,
                         Py_ssize_t divisor) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, HW = g.H * g.W, W = g.W, div
    cdef Py_ssize_t w0, w1
    cdef floating s
    cdef const floating *p
    for od in range(g.oD):
        for oh in range(g.oH):
            for ow in range(g.oW):
                w0 = tw.lo[ow]
                w1 = tw.hi[ow]
                if divisor != 0:
                    div = divisor
                elif include_pad:
                    div = td.start[od] * th.start[oh] * tw.start[ow]
                else:
                    div = (td.hi[od] - td.lo[od]) * (th.hi[oh] - th.lo[oh]) * (w1 - w0)
                s = 0
                for id_ in range(td.lo[od], td.hi[od]):
                    for ih in range(th.lo[oh], th.hi[oh]):
                        p = x + id_ * HW + ih * W
                        for iw in range(w0, w1):
                            s = s + p[iw]
                y[o] = s / div
                o += 1


cdef void _avg_bwd_plane(const floating *gy, floating *gx, const Geom *g, const Tab *td,
                         const Tab *th, const Tab *tw, bint include_pad,
                         Py_ssize_t divisor) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, HW = g.H * g.W, W = g.W, div
    cdef Py_ssize_t w0, w1
    cdef floating v
    cdef floating *p
    memset(gx, 0, g.D * HW * sizeof(floating))
    for od in range(g.oD):
        for oh in range(g.oH):
            for ow in range(g.oW):
                w0 = tw.lo[ow]
                w1 = tw.hi[ow]
                if divisor != 0:
                    div = divisor
                elif include_pad:
                    div = td.start[od] * th.start[oh] * tw.start[ow]
                else:
                    div = (td.hi[od] - td.lo[od]) * (th.hi[oh] - th.lo[oh]) * (w1 - w0)
                v = gy[o] / div
                o += 1
                for id_ in range(td.lo[od], td.hi[od]):
                    for ih in range(th.lo[oh], th.hi[oh]):
                        p = gx + id_ * HW + ih * W
                        for iw in range(w0, w1):
                            p[iw] = p[iw] + v


cdef void _avg_fwd_plane_k2s2(const floating *x, floating *y, const Geom *g) noexcept nogil:
    """2-d, kernel 2 = stride 2, no padding (every window full): y = (a + b + c + d) / 4."""
    cdef Py_ssize_t oh, ow, W = g.W, oW = g.oW
    cdef const floating *r0
    cdef const floating *r1
    cdef floating *yo
    for oh in range(g.oH):
        r0 = x + 2 * oh * W
        r1 = r0 + W
        yo = y + oh * oW
        for ow in range(oW):
            yo[ow] = (((r0[2 * ow] + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) / 4


cdef void _avg_bwd_plane_k2s2(const floating *gy, floating *gx, const Geom *g) noexcept nogil:
    """Adjoint of _avg_fwd_plane_k2s2 (rows / columns past the last window get zero)."""
    cdef Py_ssize_t oh, ow, W = g.W, oW = g.oW, ih
    cdef floating *r0
    cdef floating *r1
    cdef const floating *go
    cdef floating v
    for oh in range(g.oH):
        r0 = gx + 2 * oh * W
        r1 = r0 + W
        go = gy + oh * oW
        for ow in range(oW):
            v = go[ow] / 4
            r0[2 * ow] = v
            r0[2 * ow + 1] = v
            r1[2 * ow] = v
            r1[2 * ow + 1] = v
        if W > 2 * oW:
            r0[W - 1] = 0
            r1[W - 1] = 0
    for ih in range(2 * g.oH, g.H):
        memset(gx + ih * W, 0, W * sizeof(floating))


cdef void _adaptive_avg_fwd_plane(const floating *x, floating *y, const Geom *g, const Tab *td,
                                  const Tab *th, const Tab *tw) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, HW = g.H * g.W, W = g.W, w0, w1
    cdef floating s
    cdef const floating *p
    for od in range(g.oD):
        for oh in range(g.oH):
            for ow in range(g.oW):
                w0 = tw.lo[ow]
                w1 = tw.hi[ow]
                s = 0
                for id_ in range(td.lo[od], td.hi[od]):
                    for ih in range(th.lo[oh], th.hi[oh]):
                        p = x + id_ * HW + ih * W
                        for iw in range(w0, w1):
                            s = s + p[iw]
                y[o] = s / <floating> td.start[od] / <floating> th.start[oh] / <floating> (w1 - w0)
                o += 1


cdef void _adaptive_avg_bwd_plane(const floating *gy, floating *gx, const Geom *g, const Tab *td,
                                  const Tab *th, const Tab *tw) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, HW = g.H * g.W, W = g.W, w0, w1
    cdef floating v
    cdef floating *p
    memset(gx, 0, g.D * HW * sizeof(floating))
    for od in range(g.oD):
        for oh in range(g.oH):
            for ow in range(g.oW):
                w0 = tw.lo[ow]
                w1 = tw.hi[ow]
                v = gy[o] / <floating> td.start[od] / <floating> th.start[oh] / <floating> (w1 - w0)
                o += 1
                for id_ in range(td.lo[od], td.hi[od]):
                    for ih in range(th.lo[oh], th.hi[oh]):
                        p = gx + id_ * HW + ih * W
                        for iw in range(w0, w1):
                            p[iw] = p[iw] + v


cdef void _adaptive_max_fwd_plane(const floating *x, floating *y, long long *ind, const Geom *g,
                                  const Tab *td, const Tab *th, const Tab *tw) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, HW = g.H * g.W, W = g.W, w0, w1, row, mi
    cdef floating m, v
    cdef const floating *p
    for od in range(g.oD):
        for oh in range(g.oH):
            for ow in range(g.oW):
                w0 = tw.lo[ow]
                w1 = tw.hi[ow]
                m = -INFINITY
                mi = td.lo[od] * HW + th.lo[oh] * W + w0
                for id_ in range(td.lo[od], td.hi[od]):
                    for ih in range(th.lo[oh], th.hi[oh]):
                        row = id_ * HW + ih * W
                        p = x + row
                        for iw in range(w0, w1):
                            v = p[iw]
                            if v > m or v != v:
                                m = v
                                mi = row + iw
                y[o] = m
                ind[o] = mi
                o += 1


# ---------------------------------------------------------------------------------------------
# Entry points (the Python layer validates every size before calling them)

cdef Geom _geom(tuple xs, tuple ys, Py_ssize_t dD, Py_ssize_t dH, Py_ssize_t dW):
    cdef Geom g
    g.D, g.H, g.W = xs[1], xs[2], xs[3]
    g.oD, g.oH, g.oW = ys[1], ys[2], ys[3]
    g.dD, g.dH, g.dW = dD, dH, dW
    return g


def max_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                     long long[:, :, :, ::1] indices, tuple kernel, tuple stride, tuple padding,
                     tuple dilation):
    """out, indices := max over each window of each plane of x (P, D, H, W); kernel, stride,
    padding and dilation are (d, h, w) triples."""
    cdef tuple xs = _shape4(x.shape), ys = _shape4(out.shape)
    _check_planes(xs, ys, "max_pool_forward")
    if _shape4(indices.shape) != ys:
        raise ValueError("max_pool_forward: indices and output shapes differ")
    tabs = [_tap_table(xs[i + 1], ys[i + 1], kernel[i], stride[i], padding[i], dilation[i])
            for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, dilation[0], dilation[1], dilation[2])
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_out == 0:
        return
    # outputs [a, b) of a row have every column tap inside the input (int32 indices: the plane
    # must have fewer than 2**31 elements, else every window takes the per-window loop)
    cdef Py_ssize_t a = 0, b = 0, kW = kernel[2], sW = stride[2]
    tw_np = tabs[2]
    full = np.flatnonzero((tw_np[0] == 0) & (tw_np[1] == kW))
    if full.size and n_in < 2**31 - 1:
        a, b = int(full.min()), int(full.max()) + 1
    scratch_np = np.empty((P, max(b, 1)), dtype=np.intc)
    cdef int[:, ::1] scratch = scratch_np
    cdef Py_ssize_t work = P * n_out * kernel[0] * kernel[1] * kernel[2] // 4
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &out[0, 0, 0, 0]
    cdef long long *ip = &indices[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            _max_fwd_plane(xp + i * n_in, yp + i * n_out, ip + i * n_out, &scratch[i, 0], &g, &td, &th, &tw,
                           kW, sW, a, b)


def avg_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, tuple kernel,
                     tuple stride, tuple padding, bint count_include_pad, Py_ssize_t divisor):
    """out := mean of each window of each plane of x (P, D, H, W); divisor 0 = no override."""
    cdef tuple xs = _shape4(x.shape), ys = _shape4(out.shape)
    _check_planes(xs, ys, "avg_pool_forward")
    tabs = [_avg_table(xs[i + 1], ys[i + 1], kernel[i], stride[i], padding[i]) for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, 1, 1, 1)
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_out == 0:
        return
    cdef bint k2s2 = (kernel == (1, 2, 2) and stride == (1, 2, 2) and padding == (0, 0, 0)
                      and g.D == 1 and divisor == 0 and 2 * g.oH <= g.H and 2 * g.oW <= g.W)
    cdef Py_ssize_t work = P * n_out * kernel[0] * kernel[1] * kernel[2] // 4
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &out[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            if k2s2:
                _avg_fwd_plane_k2s2(xp + i * n_in, yp + i * n_out, &g)
            else:
                _avg_fwd_plane(xp + i * n_in, yp + i * n_out, &g, &td, &th, &tw, count_include_pad,
                               divisor)


def avg_pool_backward(const floating[:, :, :, ::1] grad, floating[:, :, :, ::1] out, tuple kernel,
                      tuple stride, tuple padding, bint count_include_pad, Py_ssize_t divisor):
    """out (P, D, H, W) := adjoint of avg_pool_forward applied to grad (P, oD, oH, oW)."""
    cdef tuple xs = _shape4(out.shape), ys = _shape4(grad.shape)
    _check_planes(xs, ys, "avg_pool_backward")
    tabs = [_avg_table(xs[i + 1], ys[i + 1], kernel[i], stride[i], padding[i]) for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, 1, 1, 1)
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_in == 0:
        return
    if n_out == 0:
        out[...] = 0
        return
    cdef bint k2s2 = (kernel == (1, 2, 2) and stride == (1, 2, 2) and padding == (0, 0, 0)
                      and g.D == 1 and divisor == 0 and 2 * g.oH <= g.H and 2 * g.oW <= g.W
                      and g.W - 2 * g.oW <= 1)
    cdef Py_ssize_t work = P * (n_out * kernel[0] * kernel[1] * kernel[2] + n_in) // 4
    cdef const floating *gp = &grad[0, 0, 0, 0]
    cdef floating *op = &out[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            if k2s2:
                _avg_bwd_plane_k2s2(gp + i * n_out, op + i * n_in, &g)
            else:
                _avg_bwd_plane(gp + i * n_out, op + i * n_in, &g, &td, &th, &tw, count_include_pad,
                               divisor)


def adaptive_avg_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out):
    """out := mean of each adaptive window of each plane of x (P, D, H, W)."""
    cdef tuple xs = _shape4(x.shape), ys = _shape4(out.shape)
    _check_planes(xs, ys, "adaptive_avg_pool_forward")
    tabs = [_adaptive_table(xs[i + 1], ys[i + 1]) for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, 1, 1, 1)
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_out == 0:
        return
    cdef Py_ssize_t work = P * (n_in + n_out) // 4
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &out[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            _adaptive_avg_fwd_plane(xp + i * n_in, yp + i * n_out, &g, &td, &th, &tw)


def adaptive_avg_pool_backward(const floating[:, :, :, ::1] grad, floating[:, :, :, ::1] out):
    """out (P, D, H, W) := adjoint of adaptive_avg_pool_forward applied to grad (P, oD, oH, oW)."""
    cdef tuple xs = _shape4(out.shape), ys = _shape4(grad.shape)
    _check_planes(xs, ys, "adaptive_avg_pool_backward")
    tabs = [_adaptive_table(xs[i + 1], ys[i + 1]) for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, 1, 1, 1)
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_in == 0:
        return
    if n_out == 0:
        out[...] = 0
        return
    cdef Py_ssize_t work = P * (n_in + n_out) // 4
    cdef const floating *gp = &grad[0, 0, 0, 0]
    cdef floating *op = &out[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            _adaptive_avg_bwd_plane(gp + i * n_out, op + i * n_in, &g, &td, &th, &tw)


def adaptive_max_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                              long long[:, :, :, ::1] indices):
    """out, indices := max over each adaptive window of each plane of x (P, D, H, W)."""
    cdef tuple xs = _shape4(x.shape), ys = _shape4(out.shape)
    _check_planes(xs, ys, "adaptive_max_pool_forward")
    if _shape4(indices.shape) != ys:
        raise ValueError("adaptive_max_pool_forward: indices and output shapes differ")
    tabs = [_adaptive_table(xs[i + 1], ys[i + 1]) for i in range(3)]
    cdef Tab td = _tab(tabs[0], ys[1]), th = _tab(tabs[1], ys[2]), tw = _tab(tabs[2], ys[3])
    cdef Geom g = _geom(xs, ys, 1, 1, 1)
    cdef Py_ssize_t P = xs[0], n_in = g.D * g.H * g.W, n_out = g.oD * g.oH * g.oW, i
    if P == 0 or n_out == 0:
        return
    cdef Py_ssize_t work = P * (n_in + n_out) // 4
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &out[0, 0, 0, 0]
    cdef long long *ip = &indices[0, 0, 0, 0]
    with nogil:
        for i in prange(P, num_threads=n_threads_for(work), schedule="static"):
            _adaptive_max_fwd_plane(xp + i * n_in, yp + i * n_out, ip + i * n_out, &g, &td, &th, &tw)


def index_scatter_add(const floating[:, ::1] src, const long long[:, ::1] indices,
                      floating[:, ::1] out):
    """out (P, N) := zeros, then out[p, indices[p, j]] += src[p, j] (max pooling's backward).

    Indices outside [0, N) are skipped."""
    cdef Py_ssize_t P = out.shape[0], N = out.shape[1], M = src.shape[1], i, j
    cdef long long t
    if src.shape[0] != P or indices.shape[0] != P or indices.shape[1] != M:
        raise ValueError("index_scatter_add: shapes differ")
    if P == 0 or N == 0:
        return
    cdef floating *o
    with nogil:
        for i in prange(P, num_threads=n_threads_for(P * (N + M) // 4), schedule="static"):
            o = &out[i, 0]
            memset(o, 0, N * sizeof(floating))
            for j in range(M):
                t = indices[i, j]
                if 0 <= t < N:
                    o[t] = o[t] + src[i, j]


def index_scatter(const floating[:, ::1] src, const long long[:, ::1] indices,
                  floating[:, ::1] out):
    """out (P, N) := zeros, then out[p, indices[p, j]] = src[p, j] in order (max_unpool).

    Indices outside [0, N) are skipped."""
    cdef Py_ssize_t P = out.shape[0], N = out.shape[1], M = src.shape[1], i, j
    cdef long long t
    if src.shape[0] != P or indices.shape[0] != P or indices.shape[1] != M:
        raise ValueError("index_scatter: shapes differ")
    if P == 0 or N == 0:
        return
    cdef floating *o
    with nogil:
        for i in prange(P, num_threads=n_threads_for(P * (N + M) // 4), schedule="static"):
            o = &out[i, 0]
            memset(o, 0, N * sizeof(floating))
            for j in range(M):
                t = indices[i, j]
                if 0 <= t < N:
                    o[t] = src[i, j]


def index_gather(const floating[:, ::1] src, const long long[:, ::1] indices,
                 floating[:, ::1] out):
    """out (P, M) := src[p, indices[p, j]] (0 where an index is outside [0, N))."""
    cdef Py_ssize_t P = src.shape[0], N = src.shape[1], M = out.shape[1], i, j
    cdef long long t
    if out.shape[0] != P or indices.shape[0] != P or indices.shape[1] != M:
        raise ValueError("index_gather: shapes differ")
    if P == 0 or M == 0:
        return
    with nogil:
        for i in prange(P, num_threads=n_threads_for(P * M // 4), schedule="static"):
            for j in range(M):
                t = indices[i, j]
                if 0 <= t < N:
                    out[i, j] = src[i, t]
                else:
                    out[i, j] = 0
