"""RMSprop (``torch.optim.RMSprop``)."""
from .optimizer import Optimizer, _zeros_state, _scalar_tensor
from .._C import optim as _K

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``).

    Per parameter and step: ``v = alpha * v + (1 - alpha) * g * g``; the denominator is
    ``sqrt(v) + eps`` or, when ``centered``, ``sqrt(v - mean_g ** 2) + eps`` with ``mean_g`` the
    running mean of ``g``; then ``p -= lr * g / denom``, or with momentum
    ``buf = momentum * buf + g / denom`` and ``p -= lr * buf``.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 1e-2
        Learning rate.
    alpha : float, default 0.99
        Smoothing constant.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0
        L2 penalty.
    momentum : float, default 0
        Momentum factor.
    centered : bool, default False
        Normalize by an estimate of the gradient's variance.
    capturable, foreach, maximize, differentiable : optional
        As in PyTorch (``maximize`` negates the gradient; the others are stored only).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.RMSprop([w], lr=0.01, centered=True)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = _scalar_tensor(0.0)
            state["square_avg"] = _zeros_state(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = _zeros_state(p)
            if group["centered"]:
                state["grad_avg"] = _zeros_state(p)
        state["step"]._data += 1
        sq = state["square_avg"]._data.reshape(-1)
        ga = state["grad_avg"]._data.reshape(-1) if group["centered"] else sq
        mb = state["momentum_buffer"]._data.reshape(-1) if group["momentum"] > 0 else sq
        _K.rmsprop_step(w.param, w.grad, sq, ga, mb, float(group["lr"]), float(group["alpha"]),
                        float(group["eps"]), float(group["weight_decay"]), float(group["momentum"]),
                        bool(group["centered"]), bool(group["maximize"]))
