"""The Adam family: Adam, AdamW, Adamax, NAdam (``torch.optim``)."""
import numpy as np

from .optimizer import Optimizer, _zeros_state, _scalar_tensor
from .._C import optim as _K

__all__ = ["Adam", "AdamW", "Adamax", "NAdam"]


def _check_common(lr, betas, eps, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``), optionally AMSGrad and decoupled weight decay.

    Per parameter and step ``t`` (one fused pass): ``g = grad + weight_decay * p`` (or
    ``p *= 1 - lr * weight_decay`` when decoupled), ``m = beta1 * m + (1 - beta1) * g``,
    ``v = beta2 * v + (1 - beta2) * g * g`` (AMSGrad: ``v_max = max(v_max, v)`` is used
    instead of ``v``), ``p -= lr / (1 - beta1 ** t) * m / (sqrt(v) / sqrt(1 - beta2 ** t) + eps)``.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 1e-3
        Learning rate.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0
        Weight decay (an L2 penalty, or decoupled).
    amsgrad : bool, default False
        Use the AMSGrad variant.
    foreach, capturable, differentiable, fused : optional
        Accepted for compatibility (stored in the groups).
    maximize : bool, default False
        Maximize the objective.
    decoupled_weight_decay : bool, default False
        Decoupled weight decay (AdamW).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.Adam([w], lr=0.1)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (w ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        _check_common(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        state = self.state[p]
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        if len(state) == 0:
            state["step"] = _scalar_tensor(0.0)
            state["exp_avg"] = _zeros_state(p)
            state["exp_avg_sq"] = _zeros_state(p)
            if amsgrad:
                state["max_exp_avg_sq"] = _zeros_state(p)
        state["step"]._data += 1
        step = float(state["step"]._data)
        ea = state["exp_avg"]._data.reshape(-1)
        eas = state["exp_avg_sq"]._data.reshape(-1)
        mx = state["max_exp_avg_sq"]._data.reshape(-1) if amsgrad else eas
        _K.adam_step(w.param, w.grad, ea, eas, mx, float(group["lr"]), float(beta1), float(beta2),
                     float(group["eps"]), float(group["weight_decay"]),
                     bool(group["decoupled_weight_decay"]), bool(amsgrad), bool(group["maximize"]),
                     1 - beta1 ** step, 1 - beta2 ** step)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

    Each step first shrinks the parameter, ``p *= 1 - lr * weight_decay``, then applies the Adam
    update (see :class:`Adam`).

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 1e-3
        Learning rate.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the moment estimates.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled weight decay coefficient.
    amsgrad : bool, default False
        Use the AMSGrad variant.
    maximize, foreach, capturable, differentiable, fused : optional
        As for :class:`Adam`.

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.AdamW([w], lr=0.1, weight_decay=0.01)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (``torch.optim.Adamax``).

    Per parameter and step ``t``: ``m = beta1 * m + (1 - beta1) * g``,
    ``u = max(beta2 * u, |g| + eps)``, ``p -= lr / (1 - beta1 ** t) * m / u``.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 2e-3
        Learning rate.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the first moment and of the infinity norm.
    eps : float, default 1e-8
        Added to ``|g|``.
    weight_decay : float, default 0
        L2 penalty.
    foreach, maximize, differentiable, capturable : optional
        As in PyTorch (``maximize`` negates the gradient; the others are stored only).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.Adamax([w])
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        _check_common(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        state = self.state[p]
        beta1, beta2 = group["betas"]
        if len(state) == 0:
            state["step"] = _scalar_tensor(0.0)
            state["exp_avg"] = _zeros_state(p)
            state["exp_inf"] = _zeros_state(p)
        state["step"]._data += 1
        step = float(state["step"]._data)
        clr = group["lr"] / (1 - beta1 ** step)
        _K.adamax_step(w.param, w.grad, state["exp_avg"]._data.reshape(-1),
                       state["exp_inf"]._data.reshape(-1), float(clr), float(beta1), float(beta2),
                       float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]))


class NAdam(Optimizer):
    """NAdam, Adam with Nesterov momentum (``torch.optim.NAdam``).

    With ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))`` and ``prod_t`` the product
    of ``mu_1 ... mu_t``, each step updates ``m`` and ``v`` as Adam does and applies
    ``p -= lr * (1 - mu_t) / (1 - prod_t) * g / d + lr * mu_{t+1} / (1 - prod_t * mu_{t+1}) * m / d``
    with ``d = sqrt(v / (1 - beta2 ** t)) + eps``. Like PyTorch, ``mu_product`` is kept in the
    precision of the ``step`` counter (float32 unless the default dtype is float64).

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs or parameter-group dicts.
    lr : float, default 2e-3
        Learning rate.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the moment estimates.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0
        Weight decay.
    momentum_decay : float, default 4e-3
        Momentum decay.
    decoupled_weight_decay : bool, default False
        Decoupled weight decay (as in AdamW).
    foreach, maximize, capturable, differentiable : optional
        As in PyTorch (``maximize`` negates the gradient; the others are stored only).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = cygrad.optim.NAdam([w], lr=0.01)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        _check_common(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _update(self, p, w, group):
        """Update one parameter (one fused kernel pass over it and its state)."""
        state = self.state[p]
        beta1, beta2 = group["betas"]
        lr, md, wd = group["lr"], group["momentum_decay"], group["weight_decay"]
        if len(state) == 0:
            state["step"] = _scalar_tensor(0.0)
            state["mu_product"] = _scalar_tensor(1.0)
            state["exp_avg"] = _zeros_state(p)
            state["exp_avg_sq"] = _zeros_state(p)
        state["step"]._data += 1
        step = float(state["step"]._data)
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * md)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * md)))
        mp = state["mu_product"]._data
        mp[...] = mp * mp.dtype.type(mu)  # in the counter's precision, as torch does
        mu_product = float(mp)
        mu_product_next = mu_product * mu_next
        _K.nadam_step(w.param, w.grad, state["exp_avg"]._data.reshape(-1),
                      state["exp_avg_sq"]._data.reshape(-1), float(beta1), float(beta2),
                      float(group["eps"]), float(wd), bool(group["decoupled_weight_decay"]),
                      float(1 - lr * wd), bool(group["maximize"]), 1 - beta2 ** step,
                      float(-lr * (1.0 - mu) / (1.0 - mu_product)),
                      float((-lr * mu_next) / (1.0 - mu_product_next)))
