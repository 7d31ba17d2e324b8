"""Spatial-kernel workloads (deform): deformable convolution (DCNv2, with a mask), forward + backward.

PyTorch has no deformable convolution of its own (torchvision's is not a dependency), so the
baseline is the same operation written with PyTorch ops: each kernel tap sampled with
``F.grid_sample`` (bilinear, zeros outside), multiplied by the mask, then one matmul with the
weight. :func:`grid_sample_deform_conv2d` is that implementation; ``setup`` checks once that it
agrees with ``cygrad.ops.deform_conv2d`` (forward and every gradient) before timing.
"""

from __future__ import annotations

import numpy as np

from . import register


def grid_sample_deform_conv2d(torch, x, offset, weight, bias=None, padding=0, mask=None):
    """torchvision's deform_conv2d (stride 1, dilation 1, one offset group) with PyTorch ops.

    ``F.grid_sample(align_corners=False)`` reads normalised coordinate ``u`` at pixel
    ``((u + 1) * W - 1) / 2``, so pixel coordinate ``w`` (pixel centres at integers, as in
    deform_conv2d) is ``u = (2 * w + 1) / W - 1``; ``padding_mode='zeros'`` makes every
    neighbour outside the image read zero, as deform_conv2d's bilinear interpolation does.
    """
    F = torch.nn.functional
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    K = kh * kw
    Ho, Wo = offset.shape[2:]
    off = offset.view(N, K, 2, Ho, Wo)
    ii = torch.arange(kh, dtype=x.dtype).repeat_interleave(kw).view(K, 1, 1)    # tap row i
    jj = torch.arange(kw, dtype=x.dtype).repeat(kh).view(K, 1, 1)               # tap column j
    ys = torch.arange(Ho, dtype=x.dtype).view(1, Ho, 1) - padding
    xs = torch.arange(Wo, dtype=x.dtype).view(1, 1, Wo) - padding
    h = (ys + ii) + off[:, :, 0]                                                 # (N, K, Ho, Wo)
    w = (xs + jj) + off[:, :, 1]
    grid = torch.stack(((2 * w + 1) / W - 1, (2 * h + 1) / H - 1), dim=-1).view(N, K * Ho, Wo, 2)
    cols = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cols = cols.view(N, C, K, Ho * Wo)
    if mask is not None:
        cols = cols * mask.view(N, 1, K, Ho * Wo)
    out = torch.matmul(weight.reshape(O, C * K), cols.reshape(N, C * K, Ho * Wo)).view(N, O, Ho, Wo)
    if bias is not None:
        out = out + bias.view(1, O, 1, 1)
    return out


def check_grid_sample_matches(torch, shape=(2, 4, 9, 7), out_channels=5, kernel=3, padding=1, dtype="float64"):
    """Run both implementations on the same data; return the largest relative difference of the
    output and of the input, offset, mask, weight and bias gradients."""
    import cygrad

    N, C, H, W = shape
    rng = np.random.default_rng(0)
    Ho, Wo = H + 2 * padding - kernel + 1, W + 2 * padding - kernel + 1
    K = kernel * kernel
    arrays = [rng.standard_normal(shape), rng.uniform(-3, 3, (N, 2 * K, Ho, Wo)),
              rng.random((N, K, Ho, Wo)), rng.standard_normal((out_channels, C, kernel, kernel)),
              rng.standard_normal(out_channels)]
    arrays = [a.astype(dtype) for a in arrays]
    gout = rng.standard_normal((N, out_channels, Ho, Wo)).astype(dtype)
    worst = 0.0
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    cs = [cygrad.tensor(a, requires_grad=True) for a in arrays]
    yt = grid_sample_deform_conv2d(torch, ts[0], ts[1], ts[3], ts[4], padding=padding, mask=ts[2])
    yc = cygrad.ops.deform_conv2d(cs[0], cs[1], cs[3], cs[4], padding=padding, mask=cs[2])
    yt.backward(torch.tensor(gout))
    yc.backward(cygrad.tensor(gout))
    pairs = [(yc.detach().numpy(), yt.detach().numpy())] + [(c.grad.numpy(), t.grad.numpy()) for c, t in zip(cs, ts)]
    for a, b in pairs:
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
    return worst


@register("deform_conv2d", target=0.5,
          description="deform_conv2d (DCNv2, mask) 8x64x28x28, 3x3, 64 out, padding 1, fwd + bwd (input, offset, "
                      "mask, weight), float32; torch baseline: one F.grid_sample over all taps + matmul")
def deform_conv2d(lib):
    N, C, H, W, O, k = 8, 64, 28, 28, 64, 3
    K = k * k
    torch_baseline = lib.__name__ == "torch"
    if torch_baseline:
        err = check_grid_sample_matches(lib)
        if err > 1e-9:
            raise AssertionError(f"grid_sample baseline differs from cygrad.ops.deform_conv2d: {err:.3g}")
    x = lib.randn(N, C, H, W, requires_grad=True)
    offset = (lib.rand(N, 2 * K, H, W) * 4 - 2).requires_grad_()
    mask = lib.rand(N, K, H, W).requires_grad_()
    w = (lib.randn(O, C, k, k) * 0.05).requires_grad_()
    g = lib.randn(N, O, H, W)
    if torch_baseline:
        def fn():
            return grid_sample_deform_conv2d(lib, x, offset, w, padding=1, mask=mask)
    else:
        def fn():
            return lib.ops.deform_conv2d(x, offset, w, padding=1, mask=mask)

    def step():
        x.grad = offset.grad = mask.grad = w.grad = None
        fn().backward(g)

    return step
