"""Deformable convolution (cygrad.ops.deform_conv2d, nn.DeformConv2d): naive NumPy reference, gradchecks,
zero offsets = conv2d, the grid_sample formulation in PyTorch (the benchmark baseline), threads, bad input."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import cygrad
from cygrad import nn
from cygrad.ops import deform_conv2d
from conftest import assert_close, gradcheck, rng


# ---------------------------------------------------------------------------------------------
# naive reference: torchvision's semantics written as plain loops

def _bilinear(img, h, w):
    """Bilinear sample of img (H, W) at (h, w); zero outside, neighbours outside read zero."""
    H, W = img.shape
    if not (-1 < h < H and -1 < w < W):
        return 0.0
    h0, w0 = math.floor(h), math.floor(w)
    lh, lw = h - h0, w - w0
    v = 0.0
    for yy, xx, wt in ((h0, w0, (1 - lh) * (1 - lw)), (h0, w0 + 1, (1 - lh) * lw),
                       (h0 + 1, w0, lh * (1 - lw)), (h0 + 1, w0 + 1, lh * lw)):
        if 0 <= yy < H and 0 <= xx < W:
            v += wt * img[yy, xx]
    return v


def naive_deform_conv2d(x, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None):
    x, offset, weight = (np.asarray(a, np.float64) for a in (x, offset, weight))
    N, C, H, W = x.shape
    O, Cw, kh, kw = weight.shape
    K = kh * kw
    G = offset.shape[1] // (2 * K)
    WG = C // Cw
    Ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = np.zeros((N, C, K, Ho, Wo))
    for n in range(N):
        for c in range(C):
            g = c // (C // G)
            for i in range(kh):
                for j in range(kw):
                    k = i * kw + j
                    for y in range(Ho):
                        for xo in range(Wo):
                            dy = offset[n, 2 * (g * K + k), y, xo]
                            dx = offset[n, 2 * (g * K + k) + 1, y, xo]
                            m = 1.0 if mask is None else float(mask[n, g * K + k, y, xo])
                            h = y * stride[0] - padding[0] + i * dilation[0] + dy
                            w = xo * stride[1] - padding[1] + j * dilation[1] + dx
                            cols[n, c, k, y, xo] = m * _bilinear(x[n, c], h, w)
    out = np.zeros((N, O, Ho, Wo))
    Og = O // WG
    for wg in range(WG):
        wgt = weight[wg * Og:(wg + 1) * Og].reshape(Og, Cw, K)
        out[:, wg * Og:(wg + 1) * Og] = np.einsum("ock,nckyx->noyx", wgt, cols[:, wg * Cw:(wg + 1) * Cw])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def _out_size(H, W, k, s, p, d):
    return (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1


def _offsets(shape, r, scale=1.6):
    """Random offsets whose fractional part keeps away from 0 (bilinear is not smooth at integers)."""
    off = r.uniform(-scale, scale, shape)
    frac = off - np.floor(off)
    off = np.where(frac < 0.08, off + 0.1, off)
    off = np.where(frac > 0.92, off - 0.1, off)
    return off


def _case(N=2, C=4, H=6, W=5, O=3, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), G=1, WG=1,
          use_mask=True, use_bias=True, seed=0, dtype=np.float64, scale=1.6):
    r = rng(seed)
    Ho, Wo = _out_size(H, W, k, stride, padding, dilation)
    K = k[0] * k[1]
    x = r.standard_normal((N, C, H, W))
    off = _offsets((N, 2 * G * K, Ho, Wo), r, scale)
    w = r.standard_normal((O, C // WG) + tuple(k))
    b = r.standard_normal(O) if use_bias else None
    m = r.uniform(0.1, 1.0, (N, G * K, Ho, Wo)) if use_mask else None
    arrs = [x, off, w, b, m]
    return [None if a is None else a.astype(dtype) for a in arrs], dict(stride=stride, padding=padding,
                                                                        dilation=dilation)


CASES = {
    "basic": dict(),
    "no_mask": dict(use_mask=False),
    "no_bias_no_mask": dict(use_mask=False, use_bias=False),
    "stride2": dict(H=7, W=6, stride=(2, 2)),
    "stride_pad_dil": dict(H=8, W=7, stride=(2, 1), padding=(2, 0), dilation=(2, 1)),
    "kernel_2x3": dict(k=(2, 3), padding=(0, 1)),
    "offset_groups": dict(C=4, G=2),
    "offset_groups_4": dict(C=4, G=4, use_mask=False),
    "weight_groups": dict(C=4, O=4, WG=2),
    "both_groups": dict(C=6, O=4, G=3, WG=2),
    "large_offsets": dict(scale=4.0),
    "1x1": dict(k=(1, 1), padding=(0, 0)),
}


def _kwargs_for(kw, mask):
    return dict(kw, mask=mask)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_naive_reference(name, dtype):
    (x, off, w, b, m), kw = _case(dtype=dtype, **CASES[name])
    t = lambda a: None if a is None else cygrad.tensor(a)  # noqa: E731
    y = deform_conv2d(t(x), t(off), t(w), t(b), mask=t(m), **kw)
    ref = naive_deform_conv2d(x, off, w, b, mask=m, **kw)
    assert y.dtype == (cygrad.float32 if dtype == np.float32 else cygrad.float64)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), ref, **tol)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    (x, off, w, b, m), kw = _case(N=1 if name != "basic" else 2, H=5, W=5, **{
        k: v for k, v in CASES[name].items() if k not in ("H", "W")})
    inputs = [a for a in (x, off, w, b, m) if a is not None]
    has_b, has_m = b is not None, m is not None

    def fn(T, x, off, w, *rest):
        rest = list(rest)
        bias = rest.pop(0) if has_b else None
        mask = rest.pop(0) if has_m else None
        return T.ops.deform_conv2d(x, off, w, bias, mask=mask, **kw)
    gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_match_reference_by_finite_differences_of_naive():
    """Cross-check the analytic offset and mask gradients against the naive reference itself."""
    (x, off, w, b, m), kw = _case(N=1, C=2, H=4, W=4, O=2, seed=3)
    ts = [cygrad.tensor(a, requires_grad=True) for a in (x, off, w, b, m)]
    y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
    go = rng(4).standard_normal(y.shape)
    y.backward(cygrad.tensor(go))
    eps = 1e-6
    for idx, a in ((1, off), (4, m), (0, x)):
        flat = a.reshape(-1)
        num = np.empty_like(flat)
        for i in range(flat.size):
            vals = []
            for s in (eps, -eps):
                pert = flat.copy()
                pert[i] += s
                args = [x, off, w, b, m]
                args[idx] = pert.reshape(a.shape)
                vals.append((naive_deform_conv2d(args[0], args[1], args[2], args[3], mask=args[4], **kw) * go).sum())
            num[i] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(ts[idx].grad.numpy().reshape(-1), num, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# zero offsets: an ordinary convolution

CONV_CASES = [
    dict(),
    dict(stride=(2, 2), padding=(0, 0)),
    dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
    dict(WG=2, O=4),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("mask", ["none", "ones"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_offset_equals_conv2d(case, mask, dtype):
    c = dict(CONV_CASES[case])
    WG = c.pop("WG", 1)
    (x, off, w, b, m), kw = _case(H=8, W=7, WG=WG, use_mask=mask == "ones", dtype=dtype, **c)
    off = np.zeros_like(off)
    if m is not None:
        m = np.ones_like(m)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    ts = [None if a is None else cygrad.tensor(a, requires_grad=True) for a in (x, off, w, b, m)]
    y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
    xs, ws, bs = (cygrad.tensor(a, requires_grad=True) for a in (x, w, b))
    yc = cygrad.nn.functional.conv2d(xs, ws, bs, groups=WG, **kw)
    np.testing.assert_allclose(y.detach().numpy(), yc.detach().numpy(), **tol)
    go = cygrad.tensor(rng(9).standard_normal(tuple(y.shape)).astype(dtype))
    y.backward(go)
    yc.backward(go)
    for a, c_ in ((ts[0], xs), (ts[2], ws), (ts[3], bs)):
        np.testing.assert_allclose(a.grad.numpy(), c_.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_offset_equals_torch_conv2d(torch, dtype):
    (x, off, w, b, m), kw = _case(H=8, W=7, WG=2, O=4, use_mask=False, dtype=dtype, stride=(2, 1),
                                  padding=(1, 2), dilation=(1, 2))
    y = deform_conv2d(cygrad.tensor(x), cygrad.tensor(np.zeros_like(off)), cygrad.tensor(w), cygrad.tensor(b), **kw)
    yt = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), groups=2, **kw)
    assert_close(y, yt, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_integer_offsets_shift_the_input():
    """An offset of (1, 0) everywhere samples one row lower: the result is conv2d of the input shifted up."""
    (x, off, w, b, m), kw = _case(N=1, C=2, H=6, W=6, O=2, padding=(0, 0), use_mask=False, use_bias=False)
    off = np.zeros_like(off)
    off[:, 0::2] = 1.0
    y = deform_conv2d(cygrad.tensor(x), cygrad.tensor(off), cygrad.tensor(w), **kw).numpy()
    shifted = np.zeros_like(x)
    shifted[:, :, :-1] = x[:, :, 1:]
    ref = naive_deform_conv2d(shifted, np.zeros_like(off), w, **kw)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# PyTorch: the benchmark baseline (grid_sample per tap + matmul) agrees with the op

def _benchmark_module():
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    if not (root / "workloads" / "deform.py").is_file():
        pytest.skip("benchmarks/ is not next to the tests")
    sys.path.insert(0, str(root))
    try:
        from workloads import deform
    finally:
        sys.path.remove(str(root))
    return deform


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("shape,out_channels,kernel,padding",
                         [((2, 4, 9, 7), 5, 3, 1), ((3, 6, 5, 8), 2, 3, 0), ((1, 3, 6, 6), 4, 1, 0)])
def test_benchmark_grid_sample_baseline_matches(torch, dtype, tol, shape, out_channels, kernel, padding):
    deform = _benchmark_module()
    err = deform.check_grid_sample_matches(torch, shape, out_channels, kernel, padding, dtype)
    assert err < tol


# ---------------------------------------------------------------------------------------------
# threads, layouts, edge cases

@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("use_mask", [True, False])
def test_threads_agree(restore_threads, N, use_mask):
    # large enough for two threads; N=1 spreads chunks of one sample (private input-gradient copies),
    # N=3 spreads samples
    (x, off, w, b, m), kw = _case(N=N, C=8, H=20, W=18, O=16, G=2, WG=2, use_mask=use_mask, seed=5,
                                  dtype=np.float32)
    res = []
    for nt in (1, 2, 1):
        cygrad.set_num_threads(nt)
        ts = [None if a is None else cygrad.tensor(a, requires_grad=True) for a in (x, off, w, b, m)]
        y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
        y.backward(cygrad.ones(y.shape))
        res.append([y.detach().numpy()] + [t.grad.numpy() for t in ts if t is not None])
    for a, c in zip(res[0], res[2]):
        np.testing.assert_array_equal(a, c)           # repeated runs are identical
    for a, c in zip(res[0], res[1]):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_non_contiguous_inputs():
    (x, off, w, b, m), kw = _case()
    xt = cygrad.tensor(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(2, 3)
    offt = cygrad.tensor(off[:, ::-1].copy()).flip(1)
    y = deform_conv2d(xt, offt, cygrad.tensor(w), cygrad.tensor(b), mask=cygrad.tensor(m), **kw)
    np.testing.assert_allclose(y.numpy(), naive_deform_conv2d(x, off, w, b, mask=m, **kw), rtol=1e-12, atol=1e-12)


def test_offsets_outside_the_image_give_the_bias():
    (x, off, w, b, m), kw = _case(N=1)
    ts = [cygrad.tensor(a, requires_grad=True) for a in (x, np.full_like(off, 1e6), w, b, m)]
    y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(b[None, :, None, None], y.shape))
    y.sum().backward()
    for t in (ts[0], ts[1], ts[2], ts[4]):
        assert not t.grad.numpy().any()
    # NaN offsets read zeros too (no out-of-bounds access)
    off_nan = np.full_like(off, np.nan)
    y = deform_conv2d(cygrad.tensor(x), cygrad.tensor(off_nan), cygrad.tensor(w), cygrad.tensor(b), **kw)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(b[None, :, None, None], y.shape))


def test_inf_input_does_not_leak_into_samples_outside_it():
    """A non-finite pixel only affects samples that read it (neighbours outside the image read exact zeros)."""
    (x, off, w, b, m), kw = _case(N=1, use_mask=False)
    x[0, :, 0, 0] = np.inf
    off = np.full_like(off, -30.0)                    # every point far outside
    y = deform_conv2d(cygrad.tensor(x), cygrad.tensor(off), cygrad.tensor(w), cygrad.tensor(b), **kw)
    assert np.isfinite(y.numpy()).all()


def test_empty_batch():
    (x, off, w, b, m), kw = _case()
    ts = [cygrad.tensor(a, requires_grad=True) for a in (x[:0], off[:0], w, b, m[:0])]
    y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
    assert tuple(y.shape) == (0, 3, 6, 5)
    y.sum().backward()
    assert tuple(ts[0].grad.shape) == (0, 4, 6, 5)
    assert not ts[2].grad.numpy().any() and not ts[3].grad.numpy().any()


def test_zero_height_input_with_padding():
    r = rng(0)
    x = cygrad.tensor(np.zeros((1, 2, 0, 4)), requires_grad=True)
    w = cygrad.tensor(r.standard_normal((3, 2, 1, 1)), requires_grad=True)
    b = cygrad.tensor(r.standard_normal(3))
    off = cygrad.tensor(r.uniform(-1, 1, (1, 2, 2, 6)), requires_grad=True)
    y = deform_conv2d(x, off, w, b, padding=1)
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(b.numpy()[None, :, None, None], (1, 3, 2, 6)))
    y.sum().backward()
    assert not off.grad.numpy().any() and not w.grad.numpy().any()


def test_only_some_inputs_require_grad():
    (x, off, w, b, m), kw = _case()
    full = [cygrad.tensor(a, requires_grad=True) for a in (x, off, w, b, m)]
    deform_conv2d(full[0], full[1], full[2], full[3], mask=full[4], **kw).sum().backward()
    for i in range(5):
        ts = [cygrad.tensor(a, requires_grad=(j == i)) for j, a in enumerate((x, off, w, b, m))]
        deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw).sum().backward()
        np.testing.assert_allclose(ts[i].grad.numpy(), full[i].grad.numpy(), rtol=1e-12, atol=1e-12)
        assert all(t.grad is None for j, t in enumerate(ts) if j != i)


def test_float32_gradients_close_to_float64():
    (x, off, w, b, m), kw = _case(seed=7)
    res = []
    for dt in (np.float32, np.float64):
        ts = [cygrad.tensor(a.astype(dt), requires_grad=True) for a in (x, off, w, b, m)]
        y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
        y.backward(cygrad.ones(y.shape, dtype=y.dtype))
        res.append([y.detach().numpy()] + [t.grad.numpy() for t in ts])
        assert all(t.grad.dtype == ts[0].dtype for t in ts)
    for a, c in zip(*res):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


def test_no_double_backward():
    (x, off, w, b, m), kw = _case(N=1)
    ts = [cygrad.tensor(a, requires_grad=True) for a in (x, off, w, b, m)]
    y = deform_conv2d(ts[0], ts[1], ts[2], ts[3], mask=ts[4], **kw)
    go = cygrad.ones(y.shape, requires_grad=True)
    gx, = cygrad.autograd.grad(y, ts[1], go, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gx.sum().backward()


def test_stride_padding_dilation_accept_ints_and_pairs():
    (x, off, w, b, m), _ = _case(H=9, W=9, stride=(2, 2), padding=(1, 1), dilation=(2, 2))
    t = [cygrad.tensor(a) for a in (x, off, w, b, m)]
    y1 = deform_conv2d(t[0], t[1], t[2], t[3], stride=2, padding=1, dilation=2, mask=t[4])
    y2 = deform_conv2d(t[0], t[1], t[2], t[3], stride=[2, 2], padding=(1, 1), dilation=(2, 2), mask=t[4])
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())


# ---------------------------------------------------------------------------------------------
# bad input

def _bad(**over):
    (x, off, w, b, m), kw = _case()
    args = dict(input=x, offset=off, weight=w, bias=b, mask=m)
    args.update({k: v for k, v in over.items() if k in args})
    kw.update({k: v for k, v in over.items() if k not in args})
    t = {k: (v if not isinstance(v, np.ndarray) else cygrad.tensor(v)) for k, v in args.items()}
    return lambda: deform_conv2d(t["input"], t["offset"], t["weight"], t["bias"], mask=t["mask"], **kw)


R = np.random.default_rng(0).standard_normal
BAD = [
    ("input_rank", dict(input=R((4, 6, 5))), r"4-D input.*\(4, 6, 5\)"),
    ("offset_rank", dict(offset=R((2, 18, 30))), r"4-D offset.*\(2, 18, 30\)"),
    ("weight_rank", dict(weight=R((3, 4, 9))), r"4-D weight.*\(3, 4, 9\)"),
    ("mask_rank", dict(mask=R((2, 9, 30))), r"4-D mask.*\(2, 9, 30\)"),
    ("offset_channels_not_multiple", dict(offset=R((2, 17, 6, 5))), r"offset.shape\[1\] is not valid: got: 17.*18"),
    ("offset_channels_too_few", dict(offset=R((2, 4, 6, 5))), r"offset.shape\[1\] is not valid: got: 4.*\(2, 4, 6, 5\)"),
    ("offset_groups_do_not_divide", dict(offset=R((2, 54, 6, 5)), mask=R((2, 27, 6, 5))),
     r"in_channels \(4\).*\(2, 4, 6, 5\).*offset groups \(3"),
    ("weight_groups_do_not_divide", dict(weight=R((3, 3, 3, 3))), r"weight of shape \(3, 3, 3, 3\)"),
    ("out_channels_not_divisible", dict(weight=R((3, 2, 3, 3))), r"out_channels \(3\)"),
    ("mask_channels", dict(mask=R((2, 8, 6, 5))), r"mask.shape\[1\] is not valid: got: 8 expected: 9.*\(2, 8, 6, 5\)"),
    ("offset_batch", dict(offset=R((3, 18, 6, 5))), r"batch size of offset.*\(3, 18, 6, 5\).*\(2, 4, 6, 5\)"),
    ("mask_batch", dict(mask=R((1, 9, 6, 5))), r"batch size of mask.*\(1, 9, 6, 5\)"),
    ("offset_spatial", dict(offset=R((2, 18, 6, 6))), r"offset output dims: \(6, 6\) - computed output dims: \(6, 5\)"),
    ("mask_spatial", dict(mask=R((2, 9, 5, 5))), r"mask output dims: \(5, 5\) - computed output dims: \(6, 5\)"),
    ("output_too_small", dict(padding=0, input=R((2, 4, 2, 5))), r"output size too small.*\(2, 4, 2, 5\).*\(3, 4, 3, 3\)"),
    ("bias_size", dict(bias=R(4)), r"bias of shape \(4,\).*out_channels = 3"),
    ("stride_zero", dict(stride=0), r"stride_h: 0 stride_w: 0"),
    ("padding_negative", dict(padding=(-1, 1)), r"pad_h: -1 pad_w: 1"),
    ("dilation_zero", dict(dilation=(1, 0)), r"dilation_h: 1 dilation_w: 0"),
    ("empty_kernel", dict(weight=R((3, 4, 0, 3))), r"weight_h: 0 weight_w: 3"),
    ("dtype_mismatch", dict(offset=R((2, 18, 6, 5)).astype(np.float32)), r"Double but found Float for offset"),
    ("integer_input", dict(input=np.ones((2, 4, 6, 5), np.int64)), r"not implemented for 'Long'"),
]


@pytest.mark.parametrize("name,over,match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises(name, over, match):
    with pytest.raises(RuntimeError, match=match):
        _bad(**over)()


def test_bad_argument_types():
    (x, off, w, b, m), kw = _case()
    with pytest.raises(TypeError, match="offset"):
        deform_conv2d(cygrad.tensor(x), off, cygrad.tensor(w))
    with pytest.raises(TypeError, match="stride"):
        deform_conv2d(cygrad.tensor(x), cygrad.tensor(off), cygrad.tensor(w), stride=1.5)
    with pytest.raises(ValueError, match="padding"):
        deform_conv2d(cygrad.tensor(x), cygrad.tensor(off), cygrad.tensor(w), padding=(1, 1, 1))


def test_kernel_rejects_inconsistent_shapes():
    """The kernel checks the shapes it is given against the geometry (defence in depth)."""
    from cygrad._C import deform as K
    xp = np.zeros((1, 2, 9 * 8), np.float64)
    off = np.zeros((1, 18, 36))
    w = np.zeros((3, 18))
    out = np.zeros((1, 3, 36))
    geom = (6, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    K.deform_forward(xp, off, np.zeros((1, 0, 36)), w, np.zeros(0), out, geom)
    with pytest.raises(ValueError, match="offset has shape"):
        K.deform_forward(xp, off[:, :17], np.zeros((1, 0, 36)), w, np.zeros(0), out, geom)
    with pytest.raises(ValueError, match="xp has shape"):
        K.deform_forward(np.zeros((1, 2, 70)), off, np.zeros((1, 0, 36)), w, np.zeros(0), out, geom)
    with pytest.raises(ValueError, match="geometry"):
        K.deform_forward(xp, off, np.zeros((1, 0, 36)), w, np.zeros(0), out, geom[:13])
    with pytest.raises(ValueError, match="offset groups"):
        K.deform_forward(xp, off, np.zeros((1, 0, 36)), w, np.zeros(0), out, geom[:12] + (3, 1))


# ---------------------------------------------------------------------------------------------
# the module

def test_module_parameters_init_and_repr():
    cygrad.manual_seed(0)
    m = nn.DeformConv2d(4, 6, 3, padding=1)
    assert tuple(m.weight.shape) == (6, 4, 3, 3) and tuple(m.bias.shape) == (6,)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(m.weight.detach().numpy()).max() <= bound + 1e-7       # kaiming_uniform_(a=sqrt(5)) bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound + 1e-7
    assert repr(m) == "DeformConv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    m2 = nn.DeformConv2d(4, 6, (3, 2), stride=2, dilation=(2, 1), groups=2, bias=False)
    assert repr(m2) == ("DeformConv2d(4, 6, kernel_size=(3, 2), stride=(2, 2), dilation=(2, 1), groups=2, "
                        "bias=False)")
    assert m2.bias is None and tuple(m2.weight.shape) == (6, 2, 3, 2)
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.DeformConv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.DeformConv2d(4, 5, 3, groups=2)


def test_module_forward_matches_functional():
    cygrad.manual_seed(1)
    layer = nn.DeformConv2d(4, 6, 3, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    r = rng(2)
    x = cygrad.tensor(r.standard_normal((2, 4, 7, 8)).astype(np.float32))
    Ho, Wo = _out_size(7, 8, (3, 3), (2, 1), (1, 1), (1, 2))
    off = cygrad.tensor(_offsets((2, 18, Ho, Wo), r).astype(np.float32))
    mask = cygrad.tensor(r.random((2, 9, Ho, Wo)).astype(np.float32))
    for msk in (None, mask):
        y = layer(x, off, msk)
        ref = naive_deform_conv2d(x.numpy(), off.numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                                  stride=(2, 1), padding=(1, 1), dilation=(1, 2),
                                  mask=None if msk is None else msk.numpy())
        np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-5)


def test_module_with_predicted_offsets_trains():
    """The documented pattern: an ordinary Conv2d predicts the offsets (zero-initialised, so the layer
    starts as a plain convolution); gradients reach both layers and a few steps lower the loss."""
    cygrad.manual_seed(0)
    offset_net = nn.Conv2d(2, 2 * 9, 3, padding=1)
    nn.init.zeros_(offset_net.weight)
    nn.init.zeros_(offset_net.bias)
    layer = nn.DeformConv2d(2, 3, 3, padding=1)
    x = cygrad.randn(4, 2, 8, 8)
    target = cygrad.randn(4, 3, 8, 8)
    y0 = layer(x, offset_net(x))
    np.testing.assert_allclose(y0.detach().numpy(),
                               cygrad.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    opt = cygrad.optim.Adam(list(offset_net.parameters()) + list(layer.parameters()), lr=0.02)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = ((layer(x, offset_net(x)) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert offset_net.weight.grad is not None and offset_net.weight.grad.abs().sum().item() > 0
    assert losses[-1] < losses[0]


def test_state_dict_roundtrip():
    a = nn.DeformConv2d(2, 4, 3)
    b = nn.DeformConv2d(2, 4, 3)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    assert list(a.state_dict()) == ["weight", "bias"]


def test_exported_names():
    assert cygrad.ops.deform_conv2d is deform_conv2d
    assert "deform_conv2d" in cygrad.ops.deform.__all__
    assert cygrad.nn.DeformConv2d is nn.modules.deform.DeformConv2d


def test_sizes_too_large_for_the_kernel():
    x = cygrad.zeros(1, 1, 1, 1)
    with pytest.raises(RuntimeError, match=r"too large.*\(1, 1, 1, 1\).*stride \(2147483648, 1\)"):
        deform_conv2d(x, cygrad.zeros(1, 2, 1, 1), cygrad.zeros(1, 1, 1, 1), stride=(2 ** 31, 1))
