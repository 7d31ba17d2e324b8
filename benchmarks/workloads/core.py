"""Core workloads: autograd overhead, matmul, elementwise activations."""

from __future__ import annotations

from . import register

N_4M = 4 * 1024 * 1024


@register("overhead_small", target=1.5,
          description="100 x (y * 0.5 + 0.1).tanh() on 16 elements, then backward: per-op overhead")
def overhead_small(lib):
    x = lib.randn(16, requires_grad=True)

    def step():
        x.grad = None
        y = x
        for _ in range(100):
            y = (y * 0.5 + 0.1).tanh()
        y.sum().backward()

    return step


@register("matmul_1024", target=1.2,
          description="1024x1024 float32 a @ b, .sum().backward(), both inputs require grad")
def matmul_1024(lib):
    a = lib.randn(1024, 1024, dtype=lib.float32, requires_grad=True)
    b = lib.randn(1024, 1024, dtype=lib.float32, requires_grad=True)

    def step():
        a.grad = None
        b.grad = None
        (a @ b).sum().backward()

    return step


def _activation(lib, name):
    fn = getattr(lib.nn.functional, name)
    x = lib.randn(N_4M, dtype=lib.float32, requires_grad=True)
    g = lib.randn(N_4M, dtype=lib.float32)

    def step():
        x.grad = None
        fn(x).backward(g)

    return step


@register("gelu_4M", target=1.5, description="F.gelu on 4M float32, forward + backward(g)")
def gelu_4M(lib):
    return _activation(lib, "gelu")


@register("silu_4M", target=1.5, description="F.silu on 4M float32, forward + backward(g)")
def silu_4M(lib):
    return _activation(lib, "silu")
