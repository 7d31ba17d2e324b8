"""Spatial-kernel workloads (norm): batch, group and layer norm of a CNN activation."""

from __future__ import annotations

from . import register


@register("norm_mix", target=1.2,
          description="BatchNorm2d(64) + GroupNorm(8, 64) + LayerNorm([64, 56, 56]) on 32x64x56x56 float32, "
                      "training mode, forward + backward of the sum of the three means")
def norm_mix(lib):
    nn = lib.nn
    bn, gn, ln = nn.BatchNorm2d(64), nn.GroupNorm(8, 64), nn.LayerNorm([64, 56, 56])
    mods = (bn, gn, ln)
    for m in mods:
        m.train()
    x = lib.randn(32, 64, 56, 56, requires_grad=True)

    def step():
        x.grad = None
        for m in mods:
            m.zero_grad()
        (bn(x).mean() + gn(x).mean() + ln(x).mean()).backward()

    return step
