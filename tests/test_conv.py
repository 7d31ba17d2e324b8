"""Convolutions: conv1d/2d/3d, conv_transpose1d/2d/3d, depthwise, unfold/fold and the conv layers.

gradchecks (float64) over strides / paddings / dilations / groups, gradgradchecks, comparisons
with torch (forward and backward, float32 and float64), a naive NumPy reference of the kernels,
thread-count independence, the modules (repr, parameters, init, padding modes, torch
state_dicts) and bad input.
"""
import itertools
import math

import numpy as np
import pytest

import cygrad
import cygrad.nn.functional as CF
from cygrad._C import conv as K
from cygrad.ops.conv import _same_padding
from conftest import FLOAT_DTYPES, assert_close, compare, gradcheck, gradgradcheck, randn, rng

# torch warns that it copies the input for padding='same' with an even kernel (cygrad does not)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


# ---------------------------------------------------------------------------------------------
# naive NumPy references (direct loops over small shapes)

def _ref_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct-loop convolution of x (N, C, *S) with w (O, C / groups, *k); padding ints or (front, back)."""
    nd = x.ndim - 2
    st = (stride,) * nd if isinstance(stride, int) else tuple(stride)
    dl = (dilation,) * nd if isinstance(dilation, int) else tuple(dilation)
    if isinstance(padding, int):
        pads = [(padding, padding)] * nd
    else:
        pads = [p if isinstance(p, tuple) else (p, p) for p in padding]
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    k = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    out_size = [(xp.shape[2 + i] - dl[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(nd)]
    out = np.zeros((N, O) + tuple(out_size))
    Og = O // groups
    for n in range(N):
        for o in range(O):
            g = o // Og
            for pos in itertools.product(*[range(s) for s in out_size]):
                acc = 0.0
                for c in range(Cg):
                    for tap in itertools.product(*[range(kk) for kk in k]):
                        idx = tuple(pos[i] * st[i] + tap[i] * dl[i] for i in range(nd))
                        acc += w[(o, c) + tap] * xp[(n, g * Cg + c) + idx]
                out[(n, o) + pos] = acc + (0.0 if b is None else b[o])
    return out


def _ref_unfold(x, k, d, p, s):
    """im2col by direct loops: (N, C, H, W) -> (N, C * kh * kw, L)."""
    N, C, H, W = x.shape
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    bh = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    bw = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((N, C * k[0] * k[1], bh * bw))
    for n, c, i, j, a, b in itertools.product(range(N), range(C), range(k[0]), range(k[1]), range(bh), range(bw)):
        out[n, (c * k[0] + i) * k[1] + j, a * bw + b] = xp[n, c, a * s[0] + i * d[0], b * s[1] + j * d[1]]
    return out


# ---------------------------------------------------------------------------------------------
# forward against the naive reference (GEMM and depthwise kernels, all ranks)

REF_CASES = [
    # (input shape, weight shape, kwargs)
    ((2, 3, 7), (4, 3, 3), dict()),
    ((2, 4, 9), (6, 2, 2), dict(stride=2, padding=1, dilation=2, groups=2)),
    ((1, 3, 6), (3, 1, 4), dict(padding=3, groups=3)),                        # depthwise causal-style
    ((2, 2, 8), (6, 1, 3), dict(stride=3, padding=2, dilation=2, groups=2)),  # depthwise, multiplier 3
    ((2, 3, 6, 5), (4, 3, 3, 2), dict(padding=(1, 0))),
    ((2, 4, 7, 6), (4, 2, 3, 3), dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)),
    ((2, 4, 6, 7), (8, 1, 3, 3), dict(stride=2, padding=1, groups=4)),        # depthwise, multiplier 2
    ((1, 3, 5, 5), (3, 1, 2, 2), dict(dilation=2, padding=(2, 1), groups=3)),
    ((2, 3, 5, 6), (5, 3, 1, 1), dict()),                                     # pointwise (no im2col)
    ((2, 3, 5, 6), (5, 3, 1, 1), dict(stride=2)),
    ((1, 2, 4, 5, 4), (3, 2, 2, 3, 2), dict(padding=1)),
    ((2, 4, 5, 4, 6), (4, 2, 3, 2, 3), dict(stride=(1, 2, 2), padding=(1, 0, 2), dilation=(2, 1, 1), groups=2)),
    ((1, 2, 4, 5, 6), (2, 1, 3, 3, 3), dict(padding=1, groups=2)),            # depthwise 3-d
]


@pytest.mark.parametrize("xs,ws,kw", REF_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv_forward_matches_naive_reference(xs, ws, kw, dtype):
    x, w, b = randn(*xs, seed=1), randn(*ws, seed=2), randn(ws[0], seed=3)
    fn = getattr(CF, f"conv{len(xs) - 2}d")
    y = fn(cygrad.tensor(x.astype(dtype)), cygrad.tensor(w.astype(dtype)), cygrad.tensor(b.astype(dtype)), **kw)
    ref = _ref_conv(x, w, b, **kw)
    assert y.dtype == cygrad.float32 if dtype == np.float32 else y.dtype == cygrad.float64
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), ref, **tol)


def test_same_padding_matches_reference_with_asymmetric_padding():
    x, w = randn(2, 2, 7, 6, seed=1), randn(3, 2, 2, 4, seed=2)
    y = CF.conv2d(cygrad.tensor(x), cygrad.tensor(w), padding="same", dilation=(3, 1))
    # total padding d (k - 1): 3 -> (1, 2) and 3 -> (1, 2): the extra zero goes at the end
    ref = _ref_conv(x, w, padding=[(1, 2), (1, 2)], dilation=(3, 1))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert y.shape == (2, 3, 7, 6)


def test_conv_transpose_is_adjoint_of_conv():
    # <conv(x, w), y> == <x, conv_transpose(y, w)> for every geometry (fp64)
    for xs, ws, kw in REF_CASES:
        nd = len(xs) - 2
        x, w = randn(*xs, seed=4), randn(*ws, seed=5)
        y = getattr(CF, f"conv{nd}d")(cygrad.tensor(x), cygrad.tensor(w), **kw).numpy()
        gy = randn(*y.shape, seed=6)
        st = kw.get("stride", 1)
        st = (st,) * nd if isinstance(st, int) else st
        dl = kw.get("dilation", 1)
        dl = (dl,) * nd if isinstance(dl, int) else dl
        pd = kw.get("padding", 0)
        pd = (pd,) * nd if isinstance(pd, int) else pd
        # output_padding recovers the input size exactly
        op = [xs[2 + i] - ((y.shape[2 + i] - 1) * st[i] - 2 * pd[i] + dl[i] * (ws[2 + i] - 1) + 1) for i in range(nd)]
        if any(o >= s and o >= d for o, s, d in zip(op, st, dl)):
            continue
        xt = getattr(CF, f"conv_transpose{nd}d")(cygrad.tensor(gy), cygrad.tensor(w), stride=st, padding=pd,
                                                 output_padding=op, groups=kw.get("groups", 1), dilation=dl).numpy()
        assert xt.shape == x.shape
        np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, xt), rtol=1e-10)


@pytest.mark.parametrize("k,d,p,s", [((2, 3), (1, 1), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 2), (2, 1)),
                                     ((1, 1), (1, 1), (0, 0), (2, 3))])
def test_unfold_matches_naive_reference_and_fold_is_adjoint(k, d, p, s):
    x = randn(2, 3, 6, 7, seed=7)
    col = CF.unfold(cygrad.tensor(x), k, dilation=d, padding=p, stride=s).numpy()
    np.testing.assert_array_equal(col, _ref_unfold(x, k, d, p, s))
    c = randn(*col.shape, seed=8)
    back = CF.fold(cygrad.tensor(c), (6, 7), k, dilation=d, padding=p, stride=s).numpy()
    np.testing.assert_allclose(np.vdot(col, c), np.vdot(x, back), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# gradcheck (float64)

GRAD_CASES = [
    ((2, 2, 6), (3, 2, 3), dict()),
    ((2, 2, 7), (2, 1, 3), dict(stride=2, padding=2, dilation=2, groups=2)),     # depthwise 1-d
    ((1, 2, 6), (4, 1, 4), dict(padding=3, groups=2)),                          # causal depthwise, multiplier 2
    ((2, 4, 7), (2, 2, 2), dict(stride=3, padding=1, groups=2)),
    ((1, 2, 5), (3, 2, 2), dict(padding="same", dilation=3)),
    ((2, 2, 5, 4), (3, 2, 3, 2), dict(padding=(1, 0))),
    ((1, 4, 5, 6), (4, 2, 2, 3), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ((2, 3, 5, 5), (3, 1, 3, 3), dict(padding=1, groups=3)),                    # depthwise 2-d
    ((1, 2, 6, 5), (4, 1, 3, 2), dict(stride=2, dilation=(1, 2), padding=(0, 1), groups=2)),
    ((1, 2, 4, 5), (3, 2, 2, 2), dict(padding="same")),
    ((2, 3, 4, 4), (2, 3, 1, 1), dict()),                                       # pointwise
    ((1, 2, 4, 4, 3), (2, 2, 2, 2, 2), dict(padding=(1, 0, 1))),
    ((1, 2, 5, 4, 4), (2, 1, 3, 2, 2), dict(stride=(2, 1, 2), dilation=(1, 2, 1), groups=2)),  # depthwise 3-d
    ((1, 4, 3, 4, 4), (2, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=1, groups=2)),
]


def _ids(cases):
    return [f"{len(xs) - 2}d-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'plain'}" for xs, ws, kw in cases]


@pytest.mark.parametrize("xs,ws,kw", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_conv_gradcheck(xs, ws, kw):
    nd = len(xs) - 2
    name = f"conv{nd}d"
    gradcheck(lambda T, x, w, b: getattr(T.nn.functional, name)(x, w, b, **kw),
              [randn(*xs, seed=1), randn(*ws, seed=2), randn(ws[0], seed=3)])


TRANSPOSE_CASES = [
    ((2, 2, 4), (2, 3, 3), dict()),
    ((1, 4, 4), (4, 1, 3), dict(stride=2, padding=1, output_padding=1, groups=4)),   # depthwise transpose
    ((2, 4, 3), (4, 2, 2), dict(stride=3, dilation=2, output_padding=1, groups=2)),
    ((1, 2, 3), (2, 2, 3), dict(dilation=2, output_padding=1)),                      # output_padding < dilation
    ((2, 2, 3, 3), (2, 3, 3, 2), dict(stride=2, padding=(1, 0), output_padding=(1, 0))),
    ((1, 4, 3, 4), (4, 1, 2, 3), dict(stride=(1, 2), dilation=(2, 1), groups=2)),
    ((1, 3, 3, 3), (3, 2, 3, 3), dict(padding=1, groups=3)),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), dict(stride=2, padding=(0, 1, 1), output_padding=(1, 0, 1))),
    ((1, 2, 3, 2, 2), (2, 1, 2, 2, 2), dict(dilation=(2, 1, 1), groups=2)),
]


@pytest.mark.parametrize("xs,ws,kw", TRANSPOSE_CASES, ids=_ids(TRANSPOSE_CASES))
def test_conv_transpose_gradcheck(xs, ws, kw):
    nd = len(xs) - 2
    name = f"conv_transpose{nd}d"
    c_out = ws[1] * kw.get("groups", 1)
    gradcheck(lambda T, x, w, b: getattr(T.nn.functional, name)(x, w, b, **kw),
              [randn(*xs, seed=1), randn(*ws, seed=2), randn(c_out, seed=3)])


@pytest.mark.parametrize("case", [
    ("conv2d", (1, 2, 4, 4), (2, 2, 2, 3), dict(stride=(1, 2), padding=1)),
    ("conv2d", (2, 2, 4, 4), (2, 1, 3, 3), dict(padding=1, groups=2)),             # depthwise
    ("conv1d", (1, 2, 5), (2, 2, 2), dict(padding="same", dilation=3)),
    ("conv_transpose2d", (1, 2, 3, 3), (2, 2, 2, 2), dict(stride=2, output_padding=1)),
    ("conv3d", (1, 2, 3, 3, 3), (2, 1, 2, 2, 2), dict(groups=2, padding=(1, 0, 0))),
], ids=lambda c: c[0] + "-" + "-".join(map(str, c[3].keys())))
def test_conv_gradgradcheck(case):
    name, xs, ws, kw = case
    c_out = ws[1] * kw.get("groups", 1) if "transpose" in name else ws[0]
    gradgradcheck(lambda T, x, w, b: getattr(T.nn.functional, name)(x, w, b, **kw),
                  [randn(*xs, seed=1), randn(*ws, seed=2), randn(c_out, seed=3)])


def test_conv_double_backward_graph_uses_conv_functions():
    x = cygrad.tensor(randn(1, 2, 5, 5), requires_grad=True)
    w = cygrad.tensor(randn(3, 2, 3, 3, seed=1), requires_grad=True)
    y = CF.conv2d(x, w, padding=1)
    gx, gw = cygrad.autograd.grad(y.pow(2).sum(), (x, w), create_graph=True)
    assert gx.grad_fn is not None and gw.grad_fn is not None
    (gx.sum() + gw.pow(2).sum()).backward()
    assert x.grad is not None and w.grad is not None


@pytest.mark.parametrize("k,d,p,s", [(2, 1, 0, 1), ((2, 3), (2, 1), (1, 0), (1, 2))])
def test_unfold_fold_gradcheck(k, d, p, s):
    gradcheck(lambda T, x: T.nn.functional.unfold(x, k, dilation=d, padding=p, stride=s), [randn(2, 2, 5, 5)])
    L = CF.unfold(cygrad.zeros(1, 1, 5, 6), k, dilation=d, padding=p, stride=s).shape[-1]
    kv = math.prod(k) if isinstance(k, tuple) else k * k
    gradcheck(lambda T, c: T.nn.functional.fold(c, (5, 6), k, dilation=d, padding=p, stride=s),
              [randn(2, 2 * kv, L)])
    gradgradcheck(lambda T, x: T.nn.functional.unfold(x, k, dilation=d, padding=p, stride=s).pow(2),
                  [randn(1, 1, 4, 5)])


# ---------------------------------------------------------------------------------------------
# torch comparison, forward + backward, float32 / float64

TORCH_CASES = [
    ("conv1d", (3, 4, 20), (6, 2, 3), dict(stride=2, padding=1, groups=2)),
    ("conv1d", (2, 8, 33), (8, 1, 4), dict(padding=3, groups=8)),               # Mamba-style causal depthwise
    ("conv1d", (4, 5, 17), (7, 5, 2), dict(padding="same", dilation=2)),
    ("conv2d", (4, 6, 13, 11), (8, 3, 3, 3), dict(stride=2, padding=(1, 2), dilation=(1, 2), groups=2)),
    ("conv2d", (3, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8)),        # depthwise
    ("conv2d", (3, 4, 12, 12), (8, 1, 5, 5), dict(stride=2, padding=2, groups=4)),  # depthwise x2, stride 2
    ("conv2d", (2, 6, 9, 10), (5, 6, 1, 1), dict()),
    ("conv2d", (1, 6, 9, 10), (5, 6, 2, 4), dict(padding="same")),
    ("conv2d", (1, 3, 40, 40), (16, 3, 3, 3), dict(padding=1)),                 # one image, many chunks
    ("conv3d", (2, 4, 6, 7, 5), (6, 2, 3, 3, 2), dict(padding=(1, 1, 0), stride=(1, 2, 1), groups=2)),
    ("conv3d", (2, 3, 5, 6, 7), (3, 1, 3, 3, 3), dict(padding=1, groups=3)),
    ("conv_transpose1d", (3, 4, 9), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d", (2, 6, 7, 6), (6, 2, 3, 4), dict(stride=(2, 3), padding=1, output_padding=(1, 2),
                                                          groups=3)),
    ("conv_transpose2d", (2, 4, 6, 6), (4, 1, 3, 3), dict(padding=1, groups=4, dilation=2)),
    ("conv_transpose3d", (2, 4, 3, 4, 3), (4, 3, 2, 3, 2), dict(stride=2, padding=(0, 1, 0))),
]


@pytest.mark.parametrize("name,xs,ws,kw", TORCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv_matches_torch(torch, name, xs, ws, kw, dtype):
    c_out = ws[1] * kw.get("groups", 1) if "transpose" in name else ws[0]
    inputs = [randn(*xs, dtype=dtype, seed=1), (randn(*ws, seed=2) * 0.3).astype(dtype),
              randn(c_out, dtype=dtype, seed=3)]
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else {}
    compare(torch, lambda T, x, w, b: getattr(T.nn.functional, name)(x, w, b, **kw), inputs, **tol)


@pytest.mark.parametrize("name,xs,ws,kw", [
    ("conv2d", (5, 7, 7), (4, 5, 3, 3), dict(padding=1)),
    ("conv1d", (3, 9), (3, 1, 2), dict(groups=3, padding=1)),
    ("conv3d", (2, 4, 4, 4), (3, 2, 2, 2, 2), dict()),
    ("conv_transpose2d", (4, 5, 5), (4, 2, 3, 3), dict(stride=2)),
    ("conv_transpose1d", (4, 5), (4, 2, 3), dict()),
])
def test_unbatched_input(torch, name, xs, ws, kw):
    c_out = ws[1] if "transpose" in name else ws[0]
    out, = compare(torch, lambda T, x, w, b: getattr(T.nn.functional, name)(x, w, b, **kw),
                   [randn(*xs), randn(*ws, seed=1), randn(c_out, seed=2)])
    assert out.dim() == len(xs)


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=2)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_unfold_fold_match_torch(torch, kw, dtype):
    x = randn(2, 3, 7, 8, dtype=dtype)
    compare(torch, lambda T, x: T.nn.functional.unfold(x, **kw), [x])
    compare(torch, lambda T, x: T.nn.functional.unfold(x, **kw), [x[0]])
    L = torch.nn.functional.unfold(torch.zeros(1, 1, 7, 8), **kw).shape[-1]
    kv = math.prod(kw["kernel_size"]) if isinstance(kw["kernel_size"], tuple) else kw["kernel_size"] ** 2
    c = randn(2, 3 * kv, L, dtype=dtype, seed=3)
    compare(torch, lambda T, c: T.nn.functional.fold(c, (7, 8), **kw), [c])
    compare(torch, lambda T, c: T.nn.functional.fold(c, (7, 8), **kw), [c[0]])
    # modules
    for make in (lambda T: T.nn.Unfold(**kw), lambda T: T.nn.Fold((7, 8), **kw)):
        assert repr(make(cygrad)) == repr(make(torch))


def test_grad_fn_names(torch):
    x = cygrad.randn(1, 2, 5, 5, requires_grad=True)
    assert CF.conv2d(x, cygrad.randn(3, 2, 3, 3)).grad_fn.name() == "ConvolutionBackward0"
    assert CF.conv_transpose2d(x, cygrad.randn(2, 3, 3, 3)).grad_fn.name() == "ConvolutionBackward0"
    assert CF.unfold(x, 2).grad_fn.name() == "Im2ColBackward0"
    assert CF.fold(CF.unfold(x, 2), 5, 2).grad_fn.name() == "Col2ImBackward0"


def test_integer_and_half_inputs(torch):
    xi = rng(0).integers(-5, 5, (2, 3, 6, 6))
    wi = rng(1).integers(-3, 3, (4, 3, 3, 3))
    bi = rng(2).integers(-3, 3, (4,))
    c = CF.conv2d(cygrad.tensor(xi), cygrad.tensor(wi), cygrad.tensor(bi), padding=1)
    t = torch.nn.functional.conv2d(torch.tensor(xi), torch.tensor(wi), torch.tensor(bi), padding=1)
    assert_close(c, t)
    c = CF.conv_transpose1d(cygrad.tensor(xi[:, :, 0]), cygrad.tensor(wi[:3, :, 0]))
    t = torch.nn.functional.conv_transpose1d(torch.tensor(xi[:, :, 0]), torch.tensor(wi[:3, :, 0]))
    assert_close(c, t)
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        CF.unfold(cygrad.tensor(xi), 2)
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        CF.fold(cygrad.tensor(xi[:, :, 0]), (3, 4), 2)
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        CF.conv2d(cygrad.tensor(xi > 0), cygrad.tensor(wi > 0))


def test_empty_batch(torch):
    out, = compare(torch, lambda T, x, w, b: T.nn.functional.conv2d(x, w, b, padding=1),
                   [randn(0, 3, 5, 5), randn(4, 3, 3, 3, seed=1), randn(4, seed=2)])
    assert out.shape == (0, 4, 5, 5)
    out, = compare(torch, lambda T, x, w: T.nn.functional.conv2d(x, w, groups=3),
                   [randn(0, 3, 5, 5), randn(3, 1, 3, 3, seed=1)])
    assert out.shape == (0, 3, 3, 3)


# ---------------------------------------------------------------------------------------------
# threads: 1 vs 2 agree to rounding; repeated runs are identical

THREAD_CASES = [
    ("conv2d", (4, 8, 20, 20), (16, 8, 3, 3), dict(padding=1)),
    ("conv2d", (1, 8, 40, 40), (16, 4, 3, 3), dict(padding=1, groups=2)),      # one image: split inside
    ("conv2d", (1, 16, 24, 24), (16, 16, 3, 3), dict(padding=1)),               # channels-last / split
    ("conv2d", (3, 16, 20, 20), (16, 1, 3, 3), dict(padding=1, groups=16)),    # depthwise
    ("conv1d", (2, 32, 300), (32, 1, 4), dict(padding=3, groups=32)),         # causal depthwise
    ("conv3d", (2, 4, 8, 12, 12), (8, 4, 3, 3, 3), dict(padding=1)),
    ("conv_transpose2d", (1, 16, 20, 20), (16, 8, 3, 3), dict(stride=2)),
]


def _fwd_bwd(name, x, w, b, kw):
    xt, wt, bt = (cygrad.tensor(a, requires_grad=True) for a in (x, w, b))
    y = getattr(CF, name)(xt, wt, bt, **kw)
    y.backward(cygrad.tensor(randn(*y.shape, dtype=x.dtype, seed=9)))
    return [t.detach().numpy().copy() for t in (y, xt.grad, wt.grad, bt.grad)]


@pytest.mark.parametrize("name,xs,ws,kw", THREAD_CASES, ids=[c[0] + str(i) for i, c in enumerate(THREAD_CASES)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_thread_count_independence(restore_threads, name, xs, ws, kw, dtype):
    c_out = ws[1] * kw.get("groups", 1) if "transpose" in name else ws[0]
    x, w, b = randn(*xs, dtype=dtype, seed=1), randn(*ws, dtype=dtype, seed=2), randn(c_out, dtype=dtype, seed=3)
    cygrad.set_num_threads(1)
    one = _fwd_bwd(name, x, w, b, kw)
    cygrad.set_num_threads(2)
    two = _fwd_bwd(name, x, w, b, kw)
    again = _fwd_bwd(name, x, w, b, kw)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for a, c, r in zip(one, two, again):
        np.testing.assert_array_equal(c, r)      # run to run: identical
        np.testing.assert_allclose(a, c, **tol)  # 1 vs 2 threads: rounding only
    if "transpose" not in name:                  # forward chunks do not depend on the thread count
        np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[3], two[3])  # bias gradient: double sums in a fixed order
    if kw.get("groups", 1) == xs[1]:             # depthwise kernels: bitwise independent of threads
        for a, c in zip(one, two):
            np.testing.assert_array_equal(a, c)


def test_bias_gradient_is_bitwise_thread_independent(restore_threads):
    g = randn(8, 16, 30, 30, dtype=np.float32)
    outs = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        gb = np.empty(16, np.float32)
        K.bias_backward(g.reshape(8, 16, -1), gb)
        outs.append(gb)
    np.testing.assert_array_equal(*outs)
    np.testing.assert_allclose(outs[0], g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-6)


PATH_CASES = [
    # (x shape, w shape, kwargs): chunks of 64 positions start and end inside output rows
    ((2, 3, 11, 13), (4, 3, 3, 3), dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1))),
    ((2, 8, 11, 13), (5, 8, 3, 3), dict(padding=1)),                     # channels-last, row runs
    ((2, 3, 11, 13), (5, 3, 3, 3), dict(padding=1)),                     # NCHW, row runs
    ((2, 16, 9, 10), (6, 8, 3, 2), dict(padding=(1, 0), groups=2, dilation=(1, 2))),
    ((2, 8, 10, 9), (4, 8, 2, 4), dict(padding="same")),
    ((1, 8, 5, 6, 7), (4, 8, 3, 3, 3), dict(padding=1)),
    ((2, 8, 5, 6, 7), (4, 8, 2, 3, 3), dict(padding=(0, 1, 2), stride=(2, 1, 1))),
]


@pytest.mark.parametrize("xs,ws,kw", PATH_CASES, ids=[str(i) for i in range(len(PATH_CASES))])
def test_kernel_paths_agree(xs, ws, kw):
    # small column buffers (many chunks), position-major and channel-major columns: same results
    nd = len(xs) - 2
    name = f"conv{nd}d"
    x, w, b = randn(*xs, seed=1), randn(*ws, seed=2), randn(ws[0], seed=3)
    results = []
    try:
        for nbytes, cl_min in ((1024 * 1024, 8), (1024, 8), (1024, 10 ** 9), (5000, 1)):
            K.set_column_bytes(nbytes)
            K.set_channels_last_min(cl_min)
            results.append(_fwd_bwd(name, x, w, b, kw))
    finally:
        K.set_column_bytes(1024 * 1024)
        K.set_channels_last_min(8)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    pads = kw.get("padding", 0)
    if pads == "same":
        pads = list(zip(*_same_padding(ws[2:], (1,) * nd)))
    np.testing.assert_allclose(results[0][0], _ref_conv(x, w, b, **{**kw, "padding": pads}), rtol=1e-12,
                               atol=1e-12)
    with pytest.raises(ValueError):
        K.set_column_bytes(10)


DIRECT_CASES = [
    # (x shape, w shape, kwargs, (forward, input gradient) by the direct kernel): float32 conv3d with unit
    # stride and dilation and one group; output channel blocks of 12 / 8 / 4, rows of whole and partial
    # 16-vectors
    ((2, 3, 4, 5, 14), (4, 3, 3, 3, 3), dict(padding=1), (1, 0)),    # 3 out-channels of the input gradient
    ((1, 16, 3, 4, 32), (32, 16, 3, 3, 3), dict(padding=1), (1, 1)),
    ((1, 5, 4, 3, 45), (28, 5, 3, 3, 3), dict(padding=1), (1, 0)),    # 5 out-channels of the input gradient
    ((2, 4, 5, 6, 28), (20, 4, 2, 3, 1), dict(padding=(1, 1, 0)), (1, 1)),
    ((1, 8, 4, 4, 40), (12, 8, 3, 1, 2), dict(padding=(2, 0, 1)), (1, 1)),
    ((1, 4, 5, 5, 16), (8, 4, 2, 2, 2), dict(padding="same"), (1, 1)),  # asymmetric padding
    ((1, 12, 4, 5, 18), (16, 12, 3, 3, 3), dict(padding=0), (1, 0)),   # input gradient rows of 18: GEMM
    ((1, 4, 4, 4, 12), (8, 4, 3, 3, 3), dict(padding=3), (1, 0)),    # padding >= kernel: input gradient by GEMM
]


def _with_direct(enabled, fn):
    try:
        K.set_direct(enabled)
        return fn()
    finally:
        K.set_direct(True)


@pytest.mark.parametrize("xs,ws,kw,calls", DIRECT_CASES, ids=[str(i) for i in range(len(DIRECT_CASES))])
def test_direct_conv3d_matches_reference_and_gemm(restore_threads, xs, ws, kw, calls):
    # the direct float32 kernel (forward and input gradient) against the float64 naive forward, the
    # GEMM path, and itself on 1 and 2 threads (its work items are output rows: bitwise equal)
    x, w, b = randn(*xs, dtype=np.float32, seed=1), randn(*ws, dtype=np.float32, seed=2), randn(ws[0], dtype=np.float32, seed=3)
    before = K.direct_calls()
    direct = _with_direct(True, lambda: _fwd_bwd("conv3d", x, w, b, kw))
    assert K.direct_calls() - before == sum(calls)
    gemm = _with_direct(False, lambda: _fwd_bwd("conv3d", x, w, b, kw))
    scale = [max(1.0, float(np.abs(r).max())) for r in gemm]
    for a, r, sc in zip(direct, gemm, scale):
        np.testing.assert_allclose(a / sc, r / sc, rtol=0, atol=2e-6)
    pads = kw["padding"]
    if pads == "same":
        pads = list(zip(*_same_padding(ws[2:], (1, 1, 1))))
    ref = _ref_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=pads)
    np.testing.assert_allclose(direct[0] / scale[0], ref / scale[0], rtol=0, atol=2e-6)
    cygrad.set_num_threads(1)
    one = _fwd_bwd("conv3d", x, w, b, kw)
    for k in range(2):
        if calls[k]:
            np.testing.assert_array_equal(one[k], direct[k])


@pytest.mark.parametrize("dtype,ws,kw", [
    (np.float32, (8, 4, 3, 3, 3), dict(padding=1, stride=(1, 2, 1))),
    (np.float32, (8, 4, 3, 3, 3), dict(padding=2, dilation=(1, 1, 2))),
    (np.float32, (8, 4, 3, 3, 3), dict(padding=1, groups=2)),
    (np.float32, (6, 6, 3, 3, 3), dict(padding=1)),                  # 6 channels: not blocks of 4
    (np.float32, (8, 4, 1, 3, 3), dict(padding=1)),                  # a 2-D kernel
    (np.float64, (8, 4, 3, 3, 3), dict(padding=1)),
])
def test_direct_conv3d_declines_what_it_cannot_run(dtype, ws, kw):
    # the direct kernel ignores strides, dilations and groups: these must take the GEMM path, bitwise
    # the same with the direct kernel allowed or not
    xs = (2, ws[1] * kw.get("groups", 1), 5, 6, 7)
    x, w, b = randn(*xs, dtype=dtype, seed=1), randn(*ws, dtype=dtype, seed=2), randn(ws[0], dtype=dtype, seed=3)
    before = K.direct_calls()
    on = _with_direct(True, lambda: _fwd_bwd("conv3d", x, w, b, kw))
    assert K.direct_calls() == before
    off = _with_direct(False, lambda: _fwd_bwd("conv3d", x, w, b, kw))
    for a, c in zip(on, off):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# modules

def _copy_from_torch(cm, tm):
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})


MODULES = [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1)),
    ("Conv1d", (4, 4, 4), dict(padding="same", groups=4, bias=False)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    ("Conv2d", (3, 5, 3), dict(padding="valid")),
    ("Conv3d", (2, 4, 3), dict(padding=1, bias=False)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, output_padding=1)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, groups=2, dilation=2)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=(1, 2, 2), bias=False)),
]


@pytest.mark.parametrize("name,args,kw", MODULES, ids=[m[0] + str(i) for i, m in enumerate(MODULES)])
def test_module_matches_torch(torch, name, args, kw):
    tm = getattr(torch.nn, name)(*args, **kw)
    cm = getattr(cygrad.nn, name)(*args, **kw)
    assert repr(cm) == repr(tm)
    assert list(cm.state_dict()) == list(tm.state_dict())
    for (cn, cp), (tn, tp) in zip(cm.named_parameters(), tm.named_parameters()):
        assert cn == tn and tuple(cp.shape) == tuple(tp.shape) and cp.dtype == cygrad.float32
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed",
                 "output_padding", "groups", "padding_mode", "_reversed_padding_repeated_twice"):
        assert getattr(cm, attr) == getattr(tm, attr), attr
    _copy_from_torch(cm, tm)
    nd = int(name[-2])
    x = randn(2, args[0], *([7] * nd), dtype=np.float32)
    tx, cx = torch.tensor(x, requires_grad=True), cygrad.tensor(x, requires_grad=True)
    ty, cy = tm(tx), cm(cx)
    assert_close(cy, ty, rtol=1e-4, atol=1e-5)
    g = randn(*ty.shape, dtype=np.float32, seed=4)
    ty.backward(torch.tensor(g))
    cy.backward(cygrad.tensor(g))
    assert_close(cx.grad, tx.grad, rtol=1e-4, atol=1e-4)
    for (_, cp), (_, tp) in zip(cm.named_parameters(), tm.named_parameters()):
        assert_close(cp.grad, tp.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_modes(torch, mode, nd):
    name = f"Conv{nd}d"
    for padding in (1, "same"):
        kw = dict(padding=padding, padding_mode=mode)
        k = 3 if padding == 1 else (2,) * nd  # 'same' with an even kernel: asymmetric padding
        tm = getattr(torch.nn, name)(3, 4, k, **kw).double()
        cm = getattr(cygrad.nn, name)(3, 4, k, dtype=cygrad.float64, **kw)
        assert repr(cm) == repr(tm)
        _copy_from_torch(cm, tm)
        x = randn(2, 3, *([5] * nd))
        tx, cx = torch.tensor(x, requires_grad=True), cygrad.tensor(x, requires_grad=True)
        ty, cy = tm(tx), cm(cx)
        assert_close(cy, ty)
        ty.sum().backward()
        cy.sum().backward()
        assert_close(cx.grad, tx.grad)
        assert_close(cm.weight.grad, tm.weight.grad)


def test_default_init_bounds(torch):
    cygrad.manual_seed(0)
    m = cygrad.nn.Conv2d(8, 16, 3, groups=2)
    fan_in = 4 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) gives the same bound as the bias
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and np.abs(b).std() > 0
    t = cygrad.nn.ConvTranspose2d(8, 16, 3, groups=2)
    assert t.weight.shape == (8, 8, 3, 3)
    fan_in = 8 * 9                 # torch's fan_in of the transposed weight: size(1) * kernel
    assert np.abs(t.weight.detach().numpy()).max() <= 1 / math.sqrt(fan_in)
    assert np.abs(t.bias.detach().numpy()).max() <= 1 / math.sqrt(fan_in)


def test_loading_torch_conv2d_state_dict_gives_same_output(torch, tmp_path):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                             torch.nn.Conv2d(8, 4, 3, stride=2, groups=4), torch.nn.Conv2d(4, 4, 1))
    path = tmp_path / "conv.pt"
    torch.save(tm.state_dict(), path)
    cm = cygrad.nn.Sequential(cygrad.nn.Conv2d(3, 8, 3, padding=1), cygrad.nn.ReLU(),
                              cygrad.nn.Conv2d(8, 4, 3, stride=2, groups=4), cygrad.nn.Conv2d(4, 4, 1))
    cm.load_state_dict(cygrad.load(str(path)))
    x = randn(2, 3, 16, 16, dtype=np.float32)
    assert_close(cm(cygrad.tensor(x)), tm(torch.tensor(x)), rtol=1e-4, atol=1e-5)


def test_conv_transpose_output_size(torch):
    for T in (cygrad, torch):
        T.manual_seed(0)
    tm = torch.nn.ConvTranspose2d(4, 3, 3, stride=2)
    cm = cygrad.nn.ConvTranspose2d(4, 3, 3, stride=2)
    _copy_from_torch(cm, tm)
    x = randn(2, 4, 8, 8, dtype=np.float32)
    for size in ([17, 17], [18, 18], [2, 3, 17, 18], (18, 17)):
        assert_close(cm(cygrad.tensor(x), output_size=size), tm(torch.tensor(x), output_size=size),
                     rtol=1e-4, atol=1e-5)
    assert cm(cygrad.tensor(x[0]), output_size=[3, 18, 18]).shape == (3, 18, 18)
    for size, msg in (([19, 19], "valid sizes range from"), ([17], "output_size must have 2 or 4 elements")):
        with pytest.raises(ValueError, match=msg):
            cm(cygrad.tensor(x), output_size=size)
        with pytest.raises(ValueError, match=msg):
            tm(torch.tensor(x), output_size=size)


def test_module_constructor_errors(torch):
    cases = [
        ("Conv2d", (4, 3, 3), dict(groups=3), "in_channels must be divisible by groups"),
        ("Conv2d", (4, 6, 3), dict(groups=4), "out_channels must be divisible by groups"),
        ("Conv2d", (4, 6, 3), dict(groups=0), "groups must be a positive integer"),
        ("Conv2d", (4, 6, 3), dict(padding="foo"), "Invalid padding string 'foo'"),
        ("Conv2d", (4, 6, 3), dict(padding="same", stride=2), "not supported for strided convolutions"),
        ("Conv2d", (4, 6, 3), dict(padding_mode="foo"), "padding_mode must be one of"),
        ("ConvTranspose2d", (4, 6, 3), dict(padding_mode="reflect"), 'Only "zeros" padding mode'),
    ]
    for name, args, kw, msg in cases:
        for T in (cygrad, torch):
            with pytest.raises(ValueError, match=msg):
                getattr(T.nn, name)(*args, **kw)


# ---------------------------------------------------------------------------------------------
# bad input: the same exception type as torch, messages naming the shapes

def _both_raise(torch, fn, exc, *needles):
    """fn(T) raises ``exc`` for cygrad and for torch; the cygrad message contains ``needles``."""
    with pytest.raises(exc) as info:
        fn(cygrad)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))
    with pytest.raises(exc):
        fn(torch)
    return str(info.value)


def test_bad_input_rank(torch):
    w = randn(6, 4, 3, 3, dtype=np.float32)
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(randn(1, 2, 4, 8, 8, dtype=np.float32)),
                                                        T.tensor(w)),
                RuntimeError, "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: "
                              "[1, 2, 4, 8, 8]")
    _both_raise(torch, lambda T: T.nn.functional.conv1d(T.tensor(randn(2, 4, 8, 8, dtype=np.float32)),
                                                        T.tensor(w[:, :, 0])),
                RuntimeError, "Expected 2D (unbatched) or 3D (batched) input to conv1d", "[2, 4, 8, 8]")
    _both_raise(torch, lambda T: T.nn.functional.conv_transpose3d(T.tensor(randn(4, 8, 8, dtype=np.float32)),
                                                                  T.tensor(randn(4, 2, 3, 3, 3, dtype=np.float32))),
                RuntimeError, "Expected 4D (unbatched) or 5D (batched) input to conv_transpose3d", "[4, 8, 8]")
    with pytest.raises(RuntimeError, match=r"weight of size \[6, 4, 3\]"):
        CF.conv2d(cygrad.randn(2, 4, 8, 8), cygrad.randn(6, 4, 3))


def test_bad_channels_and_groups(torch):
    x = randn(2, 4, 8, 8, dtype=np.float32)

    def conv(xs, ws, **kw):
        return lambda T: T.nn.functional.conv2d(T.tensor(randn(*xs, dtype=np.float32)),
                                                T.tensor(randn(*ws, dtype=np.float32)), **kw)
    _both_raise(torch, conv((2, 5, 8, 8), (6, 4, 3, 3)), RuntimeError,
                "Given groups=1, weight of size [6, 4, 3, 3], expected input[2, 5, 8, 8] to have 4 channels, but got "
                "5 channels instead")
    _both_raise(torch, conv((4, 8, 8), (6, 4, 3, 3), groups=2), RuntimeError, "expected input[1, 4, 8, 8] to have 8")
    _both_raise(torch, conv((2, 4, 8, 8), (5, 2, 3, 3), groups=2), RuntimeError,
                "expected weight to be divisible by 2 at dimension 0", "[5, 2, 3, 3]")
    _both_raise(torch, conv((2, 4, 8, 8), (0, 4, 3, 3)), RuntimeError, "at least 1 at dimension 0")
    _both_raise(torch, conv((2, 4, 8, 8), (6, 4, 3, 3), groups=0), RuntimeError, "non-positive groups")
    _both_raise(torch, conv((2, 4, 8, 8), (6, 4, 3, 3), groups=1.0), TypeError)
    _both_raise(torch, lambda T: T.nn.functional.conv_transpose2d(T.tensor(x), T.tensor(randn(5, 3, 3, 3,
                                                                                             dtype=np.float32))),
                RuntimeError, "Given transposed=1, weight of size [5, 3, 3, 3], expected input[2, 4, 8, 8] to have 5 "
                              "channels, but got 4 channels instead")
    _both_raise(torch, lambda T: T.nn.functional.conv_transpose2d(T.tensor(x), T.tensor(randn(4, 3, 3, 3,
                                                                                             dtype=np.float32)),
                                                                  groups=3),
                RuntimeError, "expected weight to be divisible by 3")


def test_bad_sizes_and_arguments(torch):
    def conv(xs=(2, 4, 8, 8), ws=(6, 4, 3, 3), **kw):
        return lambda T: T.nn.functional.conv2d(T.tensor(randn(*xs, dtype=np.float32)),
                                                T.tensor(randn(*ws, dtype=np.float32)), **kw)
    _both_raise(torch, conv(ws=(6, 4, 9, 9)), RuntimeError,
                "Calculated padded input size per channel: (8 x 8). Kernel size: (9 x 9). Kernel size can't be "
                "greater than actual input size")
    _both_raise(torch, conv(xs=(2, 4, 2, 2), dilation=2, padding=1), RuntimeError, "(4 x 4)", "(5 x 5)")
    _both_raise(torch, conv(xs=(2, 4, 0, 8)), RuntimeError, "(0 x 8)")
    _both_raise(torch, conv(stride=0), RuntimeError, "non-positive stride is not supported")
    _both_raise(torch, conv(stride=(1, -1)), RuntimeError, "non-positive stride is not supported")
    _both_raise(torch, conv(dilation=0), RuntimeError, "non-positive dilation is not supported")
    _both_raise(torch, conv(padding=(1, -1)), RuntimeError, "negative padding is not supported")
    _both_raise(torch, conv(padding="same", stride=2), RuntimeError, "padding='same' is not supported for strided")
    _both_raise(torch, conv(padding="foo"), RuntimeError, "Invalid padding string: 'foo'")
    _both_raise(torch, conv(stride=(1, 2, 3)), RuntimeError, "expected stride to be a single integer value or a "
                                                             "list of 2 values", "stride=[1, 2, 3]")
    _both_raise(torch, conv(padding=1.5), TypeError)
    _both_raise(torch, conv(stride=1.5), TypeError)
    _both_raise(torch, lambda T: T.nn.functional.conv2d([1.0], T.ones(1, 1, 1, 1)), TypeError)


def test_bad_dtypes_and_bias(torch):
    x, w = randn(2, 4, 8, 8, dtype=np.float32), randn(6, 4, 3, 3, dtype=np.float32)
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(x), T.tensor(w.astype(np.float64))), RuntimeError,
                "Input type (torch.FloatTensor) and weight type (torch.DoubleTensor) should be the same")
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(x.astype(np.float64)), T.tensor(w)), RuntimeError)
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(x), T.tensor(w), T.tensor(randn(6))), RuntimeError,
                "Input type (float) and bias type (double) should be the same")
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(x), T.tensor(w), T.tensor(randn(5, dtype=np.float32))),
                RuntimeError, "expected bias to be 1-dimensional with 6 elements, but got bias of size [5] instead")
    _both_raise(torch, lambda T: T.nn.functional.conv2d(T.tensor(x), T.tensor(w), T.ones(6, 1)), RuntimeError,
                "bias of size [6, 1]")
    _both_raise(torch, lambda T: T.nn.functional.conv_transpose2d(T.tensor(x), T.tensor(w[:4]),
                                                                  T.tensor(randn(3, dtype=np.float32))),
                RuntimeError, "Given transposed=1, weight of size [4, 4, 3, 3], expected bias to be 1-dimensional "
                              "with 4 elements, but got bias of size [3] instead")


def test_bad_conv_transpose_arguments(torch):
    x, w = randn(2, 4, 8, 8, dtype=np.float32), randn(4, 3, 3, 3, dtype=np.float32)

    def ct(**kw):
        return lambda T: T.nn.functional.conv_transpose2d(T.tensor(x), T.tensor(w), **kw)
    _both_raise(torch, ct(stride=2, output_padding=2), RuntimeError,
                "output padding must be smaller than either stride or dilation, but got output_padding_height: 2 "
                "output_padding_width: 2 stride_height: 2 stride_width: 2 dilation_height: 1 dilation_width: 1")
    _both_raise(torch, ct(output_padding=1), RuntimeError, "output padding must be smaller")
    _both_raise(torch, ct(output_padding=-1), RuntimeError, "negative output_padding is not supported")
    _both_raise(torch, ct(padding=-1), RuntimeError, "negative padding is not supported")
    _both_raise(torch, ct(stride=0), RuntimeError, "non-positive stride is not supported")
    _both_raise(torch, ct(padding="same"), TypeError, "must be tuple of ints, not str")
    _both_raise(torch, lambda T: T.nn.functional.conv_transpose2d(T.tensor(x.astype(np.float64)),
                                                                  T.tensor(w.astype(np.float64)), padding=6),
                RuntimeError, "Given input size per channel: (8 x 8). Calculated output size per channel: (-2 x -2). "
                              "Output size is too small")
    msg = _both_raise(torch, lambda T: T.nn.functional.conv_transpose3d(
        T.tensor(randn(1, 4, 3, 3, 3, dtype=np.float32)), T.tensor(randn(4, 2, 3, 3, 3, dtype=np.float32)),
        stride=2, output_padding=2), RuntimeError, "output_padding_depth: 2")
    assert "dilation_depth: 1 dilation_height: 1 dilation_width: 1" in msg


def test_bad_unfold_fold(torch):
    x = randn(2, 4, 8, 8, dtype=np.float32)
    c = randn(2, 36, 9, dtype=np.float32)
    U = lambda *a, **k: (lambda T: T.nn.functional.unfold(*[T.tensor(v) if isinstance(v, np.ndarray) else v  # noqa
                                                            for v in a], **k))
    Fo = lambda *a, **k: (lambda T: T.nn.functional.fold(*[T.tensor(v) if isinstance(v, np.ndarray) else v  # noqa
                                                           for v in a], **k))
    _both_raise(torch, U(randn(1, 2, 3, 4, 5, dtype=np.float32), 3), RuntimeError,
                "Expected 3D or 4D (batch mode) tensor", "[1, 2, 3, 4, 5]")
    _both_raise(torch, U(x[0, 0], 3), IndexError)
    _both_raise(torch, U(x, 9), RuntimeError, "Given input with spatial size (8, 8), kernel_size=(9, 9)",
                "calculated shape of the array of sliding blocks as (0, 0)")
    _both_raise(torch, U(x, 3, padding=-1), RuntimeError, "padding should be non-negative")
    _both_raise(torch, U(x, 3, stride=0), RuntimeError, "stride should be greater than zero")
    _both_raise(torch, U(x, 0), RuntimeError, "kernel size should be greater than zero")
    _both_raise(torch, U(x, 3, dilation=0), RuntimeError, "dilation should be greater than zero")
    _both_raise(torch, U(x, (3, 3, 3)), RuntimeError, "It is expected kernel_size equals to 2, but got size 3")
    _both_raise(torch, U(randn(2, 0, 8, 8, dtype=np.float32), 3), RuntimeError, "[2, 0, 8, 8]")
    _both_raise(torch, Fo(c, 6, 3), RuntimeError, "expected size of input's dimension 2 to match the calculated "
                                                  "number of sliding blocks 4 * 4 = 16, but got input.size(2)=9.")
    _both_raise(torch, Fo(randn(2, 35, 9, dtype=np.float32), 5, 3), RuntimeError,
                "input.size(1)=35 and kernel_size=(3, 3)")
    _both_raise(torch, Fo(randn(2, 36, 4, dtype=np.float32), 0, 3), RuntimeError, "(-2, -2), which is too small")
    _both_raise(torch, Fo(randn(2, 3, 4, 5, dtype=np.float32), 5, 3), RuntimeError, "Expected 2D or 3D (batch mode)",
                "[2, 3, 4, 5]")
    _both_raise(torch, Fo(c, (5, 5, 5), 3), RuntimeError, "It is expected output_size equals to 2")
    _both_raise(torch, Fo(c, 5, 3, padding=-1), RuntimeError, "padding should be non-negative")


def test_kernels_reject_inconsistent_shapes():
    geo = (1, 6, 6, 1, 4, 4, 1, 3, 3, 1, 1, 1, 0, 0, 0, 1, 1, 1)
    x = np.zeros((2, 3, 36), np.float32)
    w = np.zeros((4, 27), np.float32)
    b = np.zeros(0, np.float32)
    out = np.zeros((2, 4, 16), np.float32)
    K.conv_forward(x, w, b, out, geo, 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w, b, np.zeros((2, 4, 15), np.float32), geo, 1)
    with pytest.raises(ValueError):
        K.conv_forward(x[:, :, :35].copy(), w, b, out, geo, 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w[:, :26].copy(), b, out, geo, 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w, np.zeros(3, np.float32), out, geo, 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w, b, out, geo[:-1], 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w, b, out, geo[:9] + (0,) + geo[10:], 1)
    with pytest.raises(ValueError):
        K.conv_forward(x, w, b, out, geo, 2)
    with pytest.raises(ValueError):
        K.conv_backward_input(out, w, np.zeros((2, 3, 35), np.float32), geo, 1)
    with pytest.raises(ValueError):
        K.conv_backward_weight(x, out, np.zeros((4, 28), np.float32), geo, 1)
    with pytest.raises(ValueError):
        K.depthwise_forward(x, w, b, out, geo)       # 3 input channels per group is not depthwise
    with pytest.raises(ValueError):
        K.im2col(x, np.zeros((2, 27, 15), np.float32), geo)
    with pytest.raises(ValueError):
        K.bias_backward(out, np.zeros(3, np.float32))
    # a geometry whose output reads far outside the input is still safe (reads are zero)
    far = (1, 6, 6, 1, 4, 4, 1, 3, 3, 1, 5, 5, 0, 9, 9, 1, 1, 1)
    K.conv_forward(x + 1, w + 1, b, out, far, 1)
    assert np.isfinite(out).all()
