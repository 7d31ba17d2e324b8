"""Spatial-kernel workloads: a LeNet-style CNN training step."""

from __future__ import annotations

from . import register


@register("lenet_step", target=1.3,
          description="LeNet-style CNN on 64x1x28x28: conv5-relu-maxpool x2, 3 Linear, cross-entropy, "
                      "backward, SGD(momentum=0.9) step")
def lenet_step(lib):
    nn = lib.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = lib.randn(64, 1, 28, 28)
    y = lib.randint(0, 10, (64,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step
