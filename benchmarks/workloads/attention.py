"""Sequence-kernel workloads (attention)."""

from __future__ import annotations

from . import register


@register("sdpa_causal", target=1.5,
          description="F.scaled_dot_product_attention, q/k/v 8x8x256x64 float32, is_causal=True, "
                      "forward + backward wrt q, k, v")
def sdpa_causal(lib):
    q, k, v = (lib.randn(8, 8, 256, 64, requires_grad=True) for _ in range(3))
    sdpa = lib.nn.functional.scaled_dot_product_attention

    def step():
        q.grad = k.grad = v.grad = None
        sdpa(q, k, v, is_causal=True).sum().backward()

    return step
