"""Adagrad (``torch.optim.Adagrad``)."""
from .optimizer import Optimizer, _zeros_state, _scalar_tensor
from .._C import optim as _K

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``).

    Per parameter and step: ``clr = lr / (1 + (step - 1) * lr_decay)``,
    ``sum += g * g``, ``p -= clr * g / (sqrt(sum) + eps)`` with ``g = grad + weight_decay * p``.
    The state (``step``, ``sum``) is created at construction, as in PyTorch.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 1e-2
        Learning rate.
    lr_decay : float, default 0
        Learning-rate decay.
    weight_decay : float, default 0
        L2 penalty.
    initial_accumulator_value : float, default 0
        Initial value of the sum of squared gradients.
    eps : float, default 1e-10
        Added to the denominator.
    foreach, maximize, differentiable, fused : optional
        As in PyTorch (``maximize`` negates the gradient; the others are stored only).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.Adagrad([w], lr=0.1)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _scalar_tensor(0.0)
                state["sum"] = _zeros_state(p, group["initial_accumulator_value"])

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        state = self.state[p]
        if "step" not in state:
            state["step"] = _scalar_tensor(0.0)
            state["sum"] = _zeros_state(p, group["initial_accumulator_value"])
        state["step"]._data += 1
        step = float(state["step"]._data)
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        _K.adagrad_step(w.param, w.grad, state["sum"]._data.reshape(-1), float(clr), float(group["eps"]),
                        float(group["weight_decay"]), bool(group["maximize"]))
