"""Training-toolkit workloads: an MLP training step and optimizer updates on 10M parameters."""

from __future__ import annotations

from . import register


@register("mlp_step", target=1.2,
          description="MLP 784-512-256-10, batch 256, cross-entropy, backward, SGD(momentum=0.9) step")
def mlp_step(lib):
    nn = lib.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = lib.randn(256, 784)
    y = lib.randint(0, 10, (256,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


N_10M = 10 * 1024 * 1024


def _optimizer_step(lib, name):
    # Ten 1M-element parameters with gradients already in place: only the update is timed.
    params = [lib.nn.Parameter(lib.randn(1024, 1024)) for _ in range(N_10M // (1024 * 1024))]
    for p in params:
        p.grad = lib.randn(1024, 1024)
    opt = getattr(lib.optim, name)(params, lr=1e-3, weight_decay=1e-2)
    opt.step()  # state allocated outside the timed steps

    def step():
        opt.step()

    return step


@register("adam_10M", target=1.5, description="Adam(weight_decay=1e-2).step() on 10 x 1M float32 parameters")
def adam_10M(lib):
    return _optimizer_step(lib, "Adam")


@register("adamw_10M", target=1.5, description="AdamW(weight_decay=1e-2).step() on 10 x 1M float32 parameters")
def adamw_10M(lib):
    return _optimizer_step(lib, "AdamW")
