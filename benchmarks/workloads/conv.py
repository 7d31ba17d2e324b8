"""Spatial-kernel workloads (conv): convolutions forward + backward (input, weight and bias), float32."""

from __future__ import annotations

from . import register


def _conv_step(lib, fn, x_shape, w_shape, **kw):
    x = lib.randn(*x_shape, requires_grad=True)
    w = lib.randn(*w_shape, requires_grad=True)
    b = lib.randn(w_shape[0], requires_grad=True)
    with lib.no_grad():
        w.mul_(0.1)
    y = fn(x, w, b, **kw)
    g = lib.randn(*y.shape)

    def step():
        x.grad = w.grad = b.grad = None
        fn(x, w, b, **kw).backward(g)

    return step


@register("conv2d_64x56", target=1.3,
          description="F.conv2d 32x64x56x56, 3x3, 64 out, padding 1, fwd + bwd (input, weight, bias), float32")
def conv2d_64x56(lib):
    return _conv_step(lib, lib.nn.functional.conv2d, (32, 64, 56, 56), (64, 64, 3, 3), padding=1)


@register("conv3d_16x32", target=1.5,
          description="F.conv3d 4x16x16x32x32, 3x3x3, 32 out, padding 1, fwd + bwd (input, weight, bias), float32")
def conv3d_16x32(lib):
    return _conv_step(lib, lib.nn.functional.conv3d, (4, 16, 16, 32, 32), (32, 16, 3, 3, 3), padding=1)


@register("depthwise_128x56", target=1.5,
          description="depthwise F.conv2d 32x128x56x56, 3x3, padding 1, groups 128, fwd + bwd "
                      "(input, weight, bias), float32")
def depthwise_128x56(lib):
    return _conv_step(lib, lib.nn.functional.conv2d, (32, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128)
