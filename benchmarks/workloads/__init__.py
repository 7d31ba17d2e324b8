"""Registry of benchmark workloads.

A workload is written once against a ``lib`` argument that has PyTorch's API, so
the candidate (cygrad) and the baseline (torch) run literally the same code::

    from workloads import register

    @register("my_op", target=1.5, description="F.my_op on 1M float32, fwd+bwd")
    def my_op(lib):
        x = lib.randn(1024 * 1024, requires_grad=True)   # setup: not timed

        def step():                                      # one timed iteration
            x.grad = None
            lib.nn.functional.my_op(x).sum().backward()

        return step

The setup runs once per library (after ``lib.manual_seed(0)``); ``step`` is
called repeatedly by ``benchmarks/run.py``. ``target`` is the largest
acceptable ratio cygrad time / torch time.

Workloads live in modules of this package grouped by issue or op family; add a
new module to ``MODULES`` below to have it loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

# Modules of this package that register workloads, in report order.
MODULES = ["core", "training", "conv", "deform", "pool", "norm", "cnn", "rnn", "attention", "scan"]


@dataclass(frozen=True)
class Workload:
    name: str
    setup: Callable  # setup(lib) -> zero-argument callable running one iteration
    target: float  # largest acceptable cygrad/torch time ratio
    description: str
    group: str  # module that registered it
    memory: bool = False  # also report the peak memory of one step (measured in a subprocess)


REGISTRY: dict[str, Workload] = {}


def register(name: str, *, target: float, description: str = "", memory: bool = False):
    """Decorator: add ``setup(lib) -> step`` to the registry under ``name``.

    With ``memory=True`` the report also gives each library's peak memory during one step.
    """

    def deco(setup):
        if name in REGISTRY:
            raise ValueError(f"benchmark workload {name!r} is registered twice")
        group = setup.__module__.rsplit(".", 1)[-1]
        REGISTRY[name] = Workload(name, setup, float(target), description or (setup.__doc__ or "").strip(), group,
                                  memory)
        return setup

    return deco


def load_all() -> dict[str, Workload]:
    """Import every module in ``MODULES`` and return the filled registry."""
    for mod in MODULES:
        importlib.import_module(f"{__name__}.{mod}")
    return REGISTRY
