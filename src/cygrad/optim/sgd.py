"""Stochastic gradient descent (``torch.optim.SGD``)."""
from .optimizer import Optimizer, _zeros_state
from .._C import optim as _K

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (``torch.optim.SGD``).

    Each step is, per parameter, one fused pass: ``g = grad + weight_decay * p`` (negated first
    if ``maximize``); with momentum, ``buf = g`` on the first step, then
    ``buf = momentum * buf + (1 - dampening) * g`` and ``g = g + momentum * buf`` (Nesterov) or
    ``g = buf``; finally ``p -= lr * g``.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 1e-3
        Learning rate.
    momentum : float, default 0
        Momentum factor.
    dampening : float, default 0
        Dampening of the momentum.
    weight_decay : float, default 0
        L2 penalty.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Maximize the objective instead of minimizing it.
    foreach, differentiable, fused : optional
        Accepted for compatibility (stored in the groups); cygrad always uses its fused kernels.

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     loss = (w ** 2).sum()
    ...     loss.backward()
    ...     opt.step()
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        momentum = group["momentum"]
        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            init = buf is None
            if init:
                buf = _zeros_state(p)
                state["momentum_buffer"] = buf
            bufarr = buf._data.reshape(-1)
        else:
            init, bufarr = False, w.param
        _K.sgd_step(w.param, w.grad, bufarr, float(group["lr"]), float(momentum),
                    float(group["dampening"]), float(group["weight_decay"]), bool(group["nesterov"]),
                    bool(group["maximize"]), init)
