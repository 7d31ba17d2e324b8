"""Spatial-kernel workloads (pool): max / average / adaptive pooling forward + backward, float32."""

from __future__ import annotations

from . import register


@register("pool_mix", target=1.2,
          description="max_pool2d(3, 2, 1) + avg_pool2d(2) + adaptive_avg_pool2d(7) on 32x64x56x56, "
                      "sum of the three means, fwd + bwd, float32")
def pool_mix(lib):
    F = lib.nn.functional
    x = lib.randn(32, 64, 56, 56, requires_grad=True)

    def step():
        x.grad = None
        loss = F.max_pool2d(x, 3, 2, 1).mean() + F.avg_pool2d(x, 2).mean() + F.adaptive_avg_pool2d(x, 7).mean()
        loss.backward()

    return step
