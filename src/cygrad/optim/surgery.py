"""Multi-task gradient surgery (cygrad extension; PyTorch has no equivalent).

When one model is trained on several losses at once, the per-task gradients can point in
conflicting directions (a negative inner product), and simply summing them lets one task undo
the progress of another. This module provides

* two-gradient primitives on flat tensors, differentiable when their inputs require grad:
  :func:`pcgrad`, :func:`cagrad_step` and :func:`gradnorm_scale`;
* functional N-task combinations of per-task gradients: :func:`pcgrad_combine` (PCGrad,
  Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") and :func:`cagrad_combine`
  (CAGrad, Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning");
* optimizer wrappers that compute each task's gradient with :func:`cygrad.autograd.grad`,
  combine them and write the result to ``.grad``: :class:`PCGrad`, :class:`CAGrad`, and
  :class:`GradNorm` (Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss
  Balancing in Deep Multitask Networks"), which learns loss weights instead.

A wrapper is used like an optimizer, with ``backward`` taking the list of task losses::

    opt = PCGrad(cygrad.optim.Adam(model.parameters(), lr=1e-3))
    opt.zero_grad()
    opt.backward([loss_1, loss_2])
    opt.step()
"""
import math

import numpy as np

from .._random import Generator, rng as _rng
from .._tensor import Tensor
from ..autograd.engine import grad as _autograd_grad
from ..autograd.grad_mode import no_grad
from ..nn.utils.convert_parameters import parameters_to_vector
from .adam import Adam
from .optimizer import Optimizer

__all__ = ["pcgrad", "cagrad_step", "gradnorm_scale", "pcgrad_combine", "cagrad_combine",
           "PCGrad", "CAGrad", "GradNorm"]


# -- validation helpers ------------------------------------------------------------------------
def _check_tensor(fn, name, g):
    if not isinstance(g, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(g).__name__}")
    if not g.is_floating_point():
        raise TypeError(f"{fn}(): expected a floating-point tensor for '{name}', but got {g.dtype}")


def _check_pair(fn, g_a, g_b):
    _check_tensor(fn, "g_a", g_a)
    _check_tensor(fn, "g_b", g_b)
    if tuple(g_a.shape) != tuple(g_b.shape):
        raise ValueError(f"{fn}(): g_a and g_b must have the same shape, but got g_a of shape "
                         f"{tuple(g_a.shape)} and g_b of shape {tuple(g_b.shape)}")
    if g_a.dtype != g_b.dtype:
        raise TypeError(f"{fn}(): g_a and g_b must have the same dtype, but got {g_a.dtype} and {g_b.dtype}")


def _check_nonneg(fn, name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}(): argument '{name}' must be a number, not {type(value).__name__}") from None
    if not v >= 0 or math.isinf(v):
        raise ValueError(f"{fn}(): {name} must be a finite non-negative number, got {value}")
    return v


def _as_grad_list(fn, grads):
    """The task gradients as a list of same-shape, same-dtype floating tensors."""
    if isinstance(grads, Tensor):
        if grads.dim() < 1:
            raise ValueError(f"{fn}(): a tensor of gradients must have the tasks along dim 0, got a 0-d tensor")
        gs = [grads[i] for i in range(grads.shape[0])]
    else:
        try:
            gs = list(grads)
        except TypeError:
            raise TypeError(f"{fn}(): grads must be a sequence of Tensors or a Tensor, "
                            f"not {type(grads).__name__}") from None
    if not gs:
        raise ValueError(f"{fn}(): expected at least one gradient, got an empty sequence")
    for i, g in enumerate(gs):
        _check_tensor(fn, f"grads[{i}]", g)
    shape, dtype = tuple(gs[0].shape), gs[0].dtype
    for i, g in enumerate(gs[1:], 1):
        if tuple(g.shape) != shape:
            raise ValueError(f"{fn}(): all gradients must have the same shape, but grads[0] has shape {shape} "
                             f"and grads[{i}] has shape {tuple(g.shape)}")
        if g.dtype != dtype:
            raise TypeError(f"{fn}(): all gradients must have the same dtype, but grads[0] is {dtype} "
                            f"and grads[{i}] is {g.dtype}")
    return gs


def _dot(a, b):
    """Inner product of two same-shape tensors over all their elements (differentiable)."""
    return (a.reshape(-1) * b.reshape(-1)).sum()


def _project(g_a, g_b, scale, eps):
    """``g_a - scale * (g_a.g_b / (|g_b|^2 + eps)) g_b`` if ``g_a.g_b < 0``, else a copy of ``g_a``."""
    d = _dot(g_a, g_b)
    if scale == 0 or not d.item() < 0:
        return g_a.clone()
    coef = d / (_dot(g_b, g_b) + eps)
    if scale != 1:
        coef = coef * scale
    return g_a - coef * g_b


# -- two-gradient primitives -------------------------------------------------------------------
def pcgrad(g_a, g_b, eps=1e-8):
    r"""Project ``g_a`` onto the normal plane of ``g_b`` if the two conflict (PCGrad's step).

    .. math::

        \operatorname{pcgrad}(g_a, g_b) =
        \begin{cases} g_a - \dfrac{g_a \cdot g_b}{\lVert g_b\rVert^2 + \epsilon}\, g_b
        & \text{if } g_a \cdot g_b < 0 \\ g_a & \text{otherwise.} \end{cases}

    The inner product and norm run over all elements, so any (equal) shapes are accepted; the
    result has that shape. When the gradients conflict the result is orthogonal to ``g_b`` up to
    the ``eps`` term. Built from tensor operations, so it is differentiable when the inputs
    require grad (it is not differentiable at ``g_a . g_b = 0``, where the branch changes).

    Parameters
    ----------
    g_a : Tensor
        The gradient to modify (floating point).
    g_b : Tensor
        The gradient it may conflict with (same shape and dtype).
    eps : float, default 1e-8
        Added to ``|g_b|^2`` to keep the division finite.

    Returns
    -------
    Tensor
        The projected gradient, or a copy of ``g_a`` when ``g_a . g_b >= 0``.

    Raises
    ------
    TypeError
        If an input is not a floating-point tensor, or their dtypes differ.
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.optim.surgery import pcgrad
    >>> pcgrad(cygrad.tensor([1.0, 1.0]), cygrad.tensor([-1.0, 0.0]))
    tensor([0., 1.])
    >>> pcgrad(cygrad.tensor([1.0, 1.0]), cygrad.tensor([1.0, 0.0]))
    tensor([1., 1.])
    """
    _check_pair("pcgrad", g_a, g_b)
    eps = _check_nonneg("pcgrad", "eps", eps)
    return _project(g_a, g_b, 1.0, eps)


def cagrad_step(g_a, g_b, lam=1.0, eps=1e-8):
    r"""A partial PCGrad projection: remove ``max(lam, 0)`` times the conflicting component.

    .. math::

        \operatorname{cagrad\_step}(g_a, g_b) =
        \begin{cases} g_a - \max(\lambda, 0)\,\dfrac{g_a \cdot g_b}{\lVert g_b\rVert^2 + \epsilon}\, g_b
        & \text{if } g_a \cdot g_b < 0 \\ g_a & \text{otherwise.} \end{cases}

    ``lam = 0`` leaves ``g_a`` unchanged, ``lam = 1`` is :func:`pcgrad`, and values in between
    interpolate (a conflict-averse compromise between the raw and the projected gradient);
    negative ``lam`` is treated as 0. This is a two-gradient helper, not the full CAGrad
    algorithm (for that see :func:`cagrad_combine`). Differentiable in ``g_a`` and ``g_b``
    away from ``g_a . g_b = 0``.

    Parameters
    ----------
    g_a, g_b : Tensor
        Floating-point gradients of the same shape and dtype.
    lam : float, default 1.0
        Fraction of the conflicting component to remove (clipped below at 0).
    eps : float, default 1e-8
        Added to ``|g_b|^2``.

    Returns
    -------
    Tensor

    Raises
    ------
    TypeError
        If an input is not a floating-point tensor, their dtypes differ, or ``lam`` is not a number.
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.optim.surgery import cagrad_step
    >>> a, b = cygrad.tensor([1.0, 1.0]), cygrad.tensor([-1.0, 0.0])
    >>> cagrad_step(a, b, lam=0.5)
    tensor([0.5000, 1.0000])
    >>> cagrad_step(a, b, lam=-1.0)
    tensor([1., 1.])
    """
    _check_pair("cagrad_step", g_a, g_b)
    eps = _check_nonneg("cagrad_step", "eps", eps)
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"cagrad_step(): argument 'lam' must be a number, not {type(lam).__name__}") from None
    if math.isnan(lam):
        raise ValueError("cagrad_step(): lam must not be nan")
    return _project(g_a, g_b, max(lam, 0.0), eps)


def gradnorm_scale(g_a, g_b, alpha=0.2, eps=1e-8):
    r"""A conflict score of two gradients: ``exp(alpha * |u_a - u_b|)`` with ``u = g / (|g| + eps)``.

    .. math::

        \operatorname{gradnorm\_scale}(g_a, g_b) = \exp\Bigl(\alpha\,\Bigl\lVert
        \frac{g_a}{\lVert g_a\rVert + \epsilon} - \frac{g_b}{\lVert g_b\rVert + \epsilon}
        \Bigr\rVert\Bigr)

    For non-zero gradients at angle :math:`\theta` the distance between the unit vectors is
    :math:`2\sin(\theta/2)`, so the score grows from 1 (same direction) to about
    :math:`e^{2\alpha}` (opposite directions), independently of the gradients' magnitudes. It
    can be used to scale a loss weight or a learning rate by how much two tasks disagree. This
    is a cygrad helper; the GradNorm algorithm itself is :class:`GradNorm`. Differentiable when
    the inputs require grad (except where ``g_a`` or ``g_b`` is 0, or ``u_a = u_b``).

    Parameters
    ----------
    g_a, g_b : Tensor
        Floating-point gradients of the same shape and dtype.
    alpha : float, default 0.2
        Sensitivity of the score to the angle.
    eps : float, default 1e-8
        Added to each norm.

    Returns
    -------
    Tensor
        A 0-d tensor.

    Raises
    ------
    TypeError
        If an input is not a floating-point tensor or their dtypes differ.
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.optim.surgery import gradnorm_scale
    >>> g = cygrad.tensor([3.0, 4.0], dtype=cygrad.float64)
    >>> round(gradnorm_scale(g, 2 * g).item(), 6)
    1.0
    >>> round(gradnorm_scale(g, -g, alpha=0.5).item(), 6)  # e ** (2 * 0.5)
    2.718282
    """
    _check_pair("gradnorm_scale", g_a, g_b)
    eps = _check_nonneg("gradnorm_scale", "eps", eps)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"gradnorm_scale(): argument 'alpha' must be a number, not {type(alpha).__name__}") from None
    a, b = g_a.reshape(-1), g_b.reshape(-1)
    u_a = a / (_dot(a, a).sqrt() + eps)
    u_b = b / (_dot(b, b).sqrt() + eps)
    diff = u_a - u_b
    return (_dot(diff, diff).sqrt() * alpha).exp()


# -- N-task combinations -----------------------------------------------------------------------
def _pcgrad_order(k, order, generator):
    if order is None:
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"pcgrad_combine(): generator must be a cygrad.Generator or None, "
                            f"not {type(generator).__name__}")
        r = _rng(generator)
        return [[int(j) for j in r.permutation(np.array([j for j in range(k) if j != i], dtype=np.int64))]
                for i in range(k)]
    order = [list(o) for o in order]
    if len(order) != k:
        raise ValueError(f"pcgrad_combine(): order must hold one sequence per task ({k}), got {len(order)}")
    for i, o in enumerate(order):
        if sorted(int(j) for j in o) != [j for j in range(k) if j != i]:
            raise ValueError(f"pcgrad_combine(): order[{i}] must be a permutation of the other tasks' indices "
                             f"{[j for j in range(k) if j != i]}, got {o}")
    return [[int(j) for j in o] for o in order]


def pcgrad_combine(grads, generator=None, reduction="sum", eps=1e-8, order=None, shared=None):
    r"""Combine per-task gradients with PCGrad (Yu et al. 2020, Algorithm 1).

    For each task ``i``, starting from ``g_i^PC = g_i``, the other tasks ``j != i`` are visited
    in a random order; whenever ``g_i^PC . g_j < 0``, ``g_i^PC`` is replaced by its projection
    onto the normal plane of ``g_j``::

        g_i^PC <- g_i^PC - (g_i^PC . g_j) / (|g_j|^2 + eps) * g_j

    The projections are applied to the progressively modified ``g_i^PC`` but always against the
    *original* gradients ``g_j``. The result is ``sum_i g_i^PC`` (``reduction='sum'``), or its
    mean over the tasks (``reduction='mean'``).

    Without ``order``, the visiting order of task ``i`` is
    ``numpy_generator.permutation([j for j in range(k) if j != i])`` for ``i = 0, ..., k-1`` in
    turn, where ``numpy_generator`` is the NumPy generator behind ``generator`` (or behind the
    default cygrad generator, see :func:`cygrad.manual_seed`); so seeded runs are reproducible.
    With two tasks the order does not matter and the result is
    ``pcgrad(g_1, g_2) + pcgrad(g_2, g_1)``. If no pair of gradients conflicts, the result is
    the plain sum.

    The computation is made of tensor operations, so it is differentiable when the gradients
    require grad (away from the ``g_i . g_j = 0`` branch points).

    Parameters
    ----------
    grads : sequence of Tensor, or Tensor
        The ``k`` task gradients (floating point, same shape and dtype), or one tensor with the
        tasks along dim 0. Each gradient is treated as one flat vector.
    generator : cygrad.Generator, optional
        Source of the random visiting orders (default: the global cygrad generator).
    reduction : {'sum', 'mean'}, default 'sum'
        How the projected gradients are merged.
    eps : float, default 1e-8
        Added to ``|g_j|^2`` in each projection.
    order : sequence of sequences of int, optional
        Explicit visiting orders: ``order[i]`` is a permutation of the task indices other than
        ``i``. When given, ``generator`` is not used (and no random numbers are drawn).
    shared : Tensor or array_like of bool, optional
        Only with ``reduction='mean'``: a mask with one entry per gradient element, False where
        the element belongs to a parameter that not every task reaches (a task-specific head).
        Those elements are summed over the tasks instead of averaged, as in the widely used
        PyTorch implementation of PCGrad; the :class:`PCGrad` wrapper fills it in.

    Returns
    -------
    Tensor
        The combined gradient, with the shape of one task gradient.

    Raises
    ------
    TypeError
        If a gradient is not a floating-point tensor, or the dtypes differ.
    ValueError
        If the shapes differ, ``grads`` is empty, ``reduction`` is unknown, or ``order`` or
        ``shared`` is malformed.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.optim.surgery import pcgrad_combine
    >>> g1, g2 = cygrad.tensor([1.0, 1.0]), cygrad.tensor([-1.0, 0.0])
    >>> pcgrad_combine([g1, g2])  # pcgrad(g1, g2) + pcgrad(g2, g1) = [0, 1] + [-0.5, 0.5]
    tensor([-0.5000,  1.5000])
    >>> g3 = cygrad.tensor([0.0, -2.0])
    >>> pcgrad_combine([g1, g2, g3], generator=cygrad.Generator().manual_seed(0), reduction="mean").shape
    cygrad.Size([2])
    """
    fn = "pcgrad_combine"
    gs = _as_grad_list(fn, grads)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"{fn}(): reduction must be 'sum' or 'mean', got {reduction!r}")
    eps = _check_nonneg(fn, "eps", eps)
    k = len(gs)
    shape = gs[0].shape
    flat = [g.reshape(-1) for g in gs]
    n = flat[0].shape[0]
    mask = None
    if shared is not None:
        if reduction != "mean":
            raise ValueError(f"{fn}(): shared is only used with reduction='mean'")
        mask = shared.detach().numpy() if isinstance(shared, Tensor) else np.asarray(shared)
        if mask.dtype != np.bool_:
            raise ValueError(f"{fn}(): shared must be a boolean mask, got dtype {mask.dtype}")
        mask = mask.reshape(-1)
        if mask.size != n:
            raise ValueError(f"{fn}(): shared must have one entry per gradient element ({n}), got {mask.size}")
    order = _pcgrad_order(k, order, generator)
    sq = [_dot(f, f) for f in flat]
    projected = []
    for i in range(k):
        g = flat[i]
        for j in order[i]:
            d = _dot(g, flat[j])
            if d.item() < 0:
                g = g - (d / (sq[j] + eps)) * flat[j]
        projected.append(g)
    total = projected[0]
    for g in projected[1:]:
        total = total + g
    if reduction == "mean":
        if mask is None or mask.all():
            total = total / k
        else:
            scale = np.where(mask, 1.0 / k, 1.0).astype(total.detach().numpy().dtype)
            total = total * Tensor._make(scale)
    return total.reshape(shape)


def _cagrad_objective(A_n, b, sqrt_phi):
    """The CAGrad dual ``F(w) = w^T A b + sqrt_phi * sqrt(w^T A w)`` and its gradient (A normalised)."""
    Ab = A_n @ b

    def f(w):
        q = float(w @ A_n @ w)
        return float(w @ Ab) + sqrt_phi * math.sqrt(max(q, 0.0) + 1e-20)

    def jac(w):
        Aw = A_n @ w
        q = float(w @ Aw)
        return Ab + sqrt_phi * Aw / math.sqrt(max(q, 0.0) + 1e-20)
    return f, jac


def _cagrad_weights(A, c):
    """The simplex weights ``w`` minimising ``g_w . g0 + c |g0| |g_w|`` given the Gram matrix ``A``."""
    from scipy.optimize import minimize
    k = A.shape[0]
    b = np.full(k, 1.0 / k)
    scale = float(np.trace(A)) / k
    if k == 1 or c == 0 or not scale > 0 or not np.isfinite(scale):
        return b
    A_n = A / scale  # F is positively homogeneous in the gradients: normalising leaves w unchanged
    sqrt_phi = c * math.sqrt(max(float(b @ A_n @ b), 0.0))
    f, jac = _cagrad_objective(A_n, b, sqrt_phi)
    res = minimize(f, b, jac=jac, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                   constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones(k)}],
                   options={"ftol": 1e-14, "maxiter": 500})
    w = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, None)
    total = w.sum()
    if not total > 0 or not np.all(np.isfinite(w)):
        return b
    w /= total
    return w if f(w) <= f(b) else b


def cagrad_combine(grads, c=0.5, rescale=1, eps=1e-8, return_weights=False):
    r"""Combine per-task gradients with CAGrad (Liu et al. 2021).

    With ``g_0`` the mean of the ``k`` task gradients and ``g_w = sum_i w_i g_i``, CAGrad looks
    for the update ``d`` that maximises the worst task improvement ``min_i g_i . d`` within the
    ball ``|d - g_0| <= c |g_0|``. It solves the (k-dimensional) dual problem over the simplex

    .. math::

        w^\star = \operatorname*{arg\,min}_{w \in \Delta_k}\;
        g_w^\top g_0 + \sqrt{\phi}\,\lVert g_w\rVert, \qquad \phi = c^2 \lVert g_0\rVert^2,

    using only the ``k x k`` Gram matrix ``G G^T`` (scipy's SLSQP, started from uniform
    weights), and returns

    .. math::

        d = g_0 + \frac{\sqrt{\phi}}{\lVert g_{w^\star}\rVert + \epsilon}\, g_{w^\star},

    divided by ``1 + c^2`` (``rescale=1``, the default of the authors' code), by ``1 + c``
    (``rescale=2``) or not at all (``rescale=0``). ``c = 0`` gives ``g_0``. The weights are
    constants of the computation; ``d`` is otherwise made of tensor operations.

    Parameters
    ----------
    grads : sequence of Tensor, or Tensor
        The ``k`` task gradients (floating point, same shape and dtype), or one tensor with the
        tasks along dim 0. Each gradient is treated as one flat vector.
    c : float, default 0.5
        Radius of the trust region around ``g_0``, relative to ``|g_0|`` (``c >= 0``).
    rescale : {0, 1, 2}, default 1
        Final scaling: none, ``1 / (1 + c^2)`` or ``1 / (1 + c)``.
    eps : float, default 1e-8
        Added to ``|g_w|`` in the division.
    return_weights : bool, default False
        Also return ``w*`` (a float64 NumPy array of ``k`` entries summing to 1).

    Returns
    -------
    Tensor, or (Tensor, numpy.ndarray)
        The combined gradient (shape of one task gradient), and ``w*`` if ``return_weights``.

    Raises
    ------
    TypeError
        If a gradient is not a floating-point tensor, or the dtypes differ.
    ValueError
        If the shapes differ, ``grads`` is empty, ``c < 0`` or ``rescale`` is unknown.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.optim.surgery import cagrad_combine
    >>> g1 = cygrad.tensor([1.0, 0.0], dtype=cygrad.float64)
    >>> g2 = cygrad.tensor([-0.5, 1.0], dtype=cygrad.float64)
    >>> d, w = cagrad_combine([g1, g2], c=0.5, return_weights=True)
    >>> bool(((cygrad.stack([g1, g2]) @ d) > 0).all())  # d improves both tasks
    True
    >>> round(float(w.sum()), 12)
    1.0
    >>> cagrad_combine([g1, g2], c=0.0)  # the mean gradient
    tensor([0.2500, 0.5000], dtype=cygrad.float64)
    """
    fn = "cagrad_combine"
    gs = _as_grad_list(fn, grads)
    c = _check_nonneg(fn, "c", c)
    eps = _check_nonneg(fn, "eps", eps)
    if isinstance(rescale, bool) or rescale not in (0, 1, 2):
        raise ValueError(f"{fn}(): rescale must be 0, 1 or 2, got {rescale!r}")
    shape = gs[0].shape
    k = len(gs)
    flat = [g.reshape(-1) for g in gs]
    G = np.stack([np.asarray(f.detach().numpy(), dtype=np.float64) for f in flat])
    A = G @ G.T
    w = _cagrad_weights(A, c)
    g0 = flat[0]
    for f in flat[1:]:
        g0 = g0 + f
    g0 = g0 / k
    if c == 0:
        d = g0
    else:
        gw = flat[0] * float(w[0])
        for wi, f in zip(w[1:], flat[1:]):
            gw = gw + f * float(wi)
        sqrt_phi = _dot(g0, g0).sqrt() * c
        d = g0 + (sqrt_phi / (_dot(gw, gw).sqrt() + eps)) * gw
        if rescale == 1:
            d = d / (1.0 + c * c)
        elif rescale == 2:
            d = d / (1.0 + c)
    d = d.reshape(shape)
    return (d, w) if return_weights else d


# -- optimizer wrappers ------------------------------------------------------------------------
def _check_losses(cls, losses, num_tasks=None):
    if isinstance(losses, Tensor):
        raise TypeError(f"{cls}.backward(): losses must be a sequence of scalar Tensors (one per task), "
                        "not a single Tensor")
    losses = list(losses)
    if not losses:
        raise ValueError(f"{cls}.backward(): expected at least one loss")
    for i, l in enumerate(losses):
        if not isinstance(l, Tensor):
            raise TypeError(f"{cls}.backward(): losses[{i}] must be a Tensor, not {type(l).__name__}")
        if l.numel() != 1:
            raise RuntimeError(f"{cls}.backward(): losses[{i}] has shape {tuple(l.shape)}; grad can be "
                               "implicitly created only for scalar outputs")
    if num_tasks is not None and len(losses) != num_tasks:
        raise ValueError(f"{cls}.backward(): expected {num_tasks} losses (num_tasks), got {len(losses)}")
    return losses


def _task_gradients(losses, params, retain_graph):
    """``grads[i][p]``: the gradient of ``losses[i]`` w.r.t. ``params[p]`` (None if not reached)."""
    out = []
    last = len(losses) - 1
    for i, loss in enumerate(losses):
        if not loss.requires_grad:
            out.append([None] * len(params))
            continue
        gs = _autograd_grad(loss.reshape(()), params, retain_graph=True if i < last else retain_graph,
                            allow_unused=True)
        out.append(list(gs))
    return out


class _MultiTaskOptimizer:
    """Shared machinery of the wrappers: parameter bookkeeping and delegation to the base optimizer."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

    # -- delegation -----------------------------------------------------------------------------
    @property
    def param_groups(self):
        """The base optimizer's parameter groups."""
        return self.optimizer.param_groups

    @property
    def state(self):
        """The base optimizer's per-parameter state."""
        return self.optimizer.state

    @property
    def defaults(self):
        """The base optimizer's default options."""
        return self.optimizer.defaults

    def add_param_group(self, param_group):
        """Add a parameter group to the base optimizer (see :meth:`Optimizer.add_param_group`)."""
        self.optimizer.add_param_group(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of the base optimizer's parameters (:meth:`Optimizer.zero_grad`)."""
        self.optimizer.zero_grad(set_to_none)

    def step(self, closure=None):
        """Apply the base optimizer's update to the gradients written by :meth:`backward`.

        Parameters
        ----------
        closure : callable, optional
            Passed to the base optimizer's ``step`` (it should call this wrapper's ``backward``).

        Returns
        -------
        The closure's loss, or ``None``.
        """
        return self.optimizer.step(closure)

    def state_dict(self):
        """The base optimizer's :meth:`~Optimizer.state_dict`."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        """Load a state into the base optimizer (:meth:`Optimizer.load_state_dict`)."""
        self.optimizer.load_state_dict(state_dict)

    # -- gradients ------------------------------------------------------------------------------
    def _params(self):
        seen, params = set(), []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    @staticmethod
    def _flat_task_grads(task_grads, params):
        """One flat vector per task (zeros where a parameter is not reached by the task)."""
        flats = []
        for gs in task_grads:
            parts = [g if g is not None else p.new_zeros(tuple(p.shape)) for g, p in zip(gs, params)]
            flats.append(parameters_to_vector(parts))
        return flats

    @staticmethod
    def _write(params, vec, reached):
        """Accumulate the slices of the flat ``vec`` into the ``.grad`` of the reached parameters."""
        off = 0
        with no_grad():
            for p, r in zip(params, reached):
                n = p.numel()
                if r:
                    g = vec[off:off + n].reshape(tuple(p.shape)).to(p.dtype).clone()
                    if p.grad is None:
                        p.grad = g
                    else:
                        p.grad.add_(g)
                off += n

    def backward(self, losses, retain_graph=False):
        """Compute the task gradients, combine them and accumulate the result into ``.grad``.

        Parameters
        ----------
        losses : sequence of Tensor
            One scalar loss per task.
        retain_graph : bool, default False
            Keep the graph after the last task's gradient (it is always kept between tasks).
        """
        self._surgery_backward(losses, retain_graph, self._combine)

    def _surgery_backward(self, losses, retain_graph, combine):
        losses = _check_losses(type(self).__name__, losses)
        params = self._params()
        if not params:
            return None
        task_grads = _task_gradients(losses, params, retain_graph)
        reached_by = [[g is not None for g in gs] for gs in task_grads]
        reached = [any(col) for col in zip(*reached_by)]
        if not any(reached):
            return None
        with no_grad():
            flats = self._flat_task_grads(task_grads, params)
            vec = combine(flats, params, reached_by)
        self._write(params, vec, reached)
        return vec

    def __repr__(self):
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}({self._options()}) wrapping\n{inner}"

    def _options(self):
        return ""


class PCGrad(_MultiTaskOptimizer):
    """Optimizer wrapper applying PCGrad (projecting conflicting gradients) to several task losses.

    :meth:`backward` does, for task losses ``L_1, ..., L_k``:

    1. ``g_i = cygrad.autograd.grad(L_i, params, allow_unused=True)`` for every parameter of
       the base optimizer (that requires grad), flattened into one vector per task with zeros
       for the parameters ``L_i`` does not reach;
    2. ``d = pcgrad_combine([g_1, ..., g_k], generator, reduction, eps, shared=...)`` (see
       :func:`pcgrad_combine`; with ``reduction='mean'``, parameters not reached by every task
       are summed rather than averaged);
    3. the slices of ``d`` are added to the ``.grad`` of the parameters reached by at least one
       task (like ``Tensor.backward``, gradients accumulate; call :meth:`zero_grad` first).
       Parameters reached by no task keep their ``.grad`` (``None`` after ``zero_grad``).

    :meth:`step` then runs the base optimizer's step. ``param_groups``, ``state``,
    ``state_dict`` and ``load_state_dict`` are the base optimizer's. To schedule the learning
    rate, give the base optimizer (``opt.optimizer``) to the scheduler.

    Parameters
    ----------
    optimizer : Optimizer
        The base optimizer holding the model parameters.
    reduction : {'sum', 'mean'}, default 'sum'
        How the projected task gradients are merged.
    generator : cygrad.Generator, optional
        Source of the random projection orders (default: the global cygrad generator).
    eps : float, default 1e-8
        Added to ``|g_j|^2`` in each projection.

    Examples
    --------
    >>> import cygrad
    >>> _ = cygrad.manual_seed(0)
    >>> trunk, head_a, head_b = cygrad.nn.Linear(3, 4), cygrad.nn.Linear(4, 1), cygrad.nn.Linear(4, 1)
    >>> params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    >>> opt = cygrad.optim.PCGrad(cygrad.optim.SGD(params, lr=0.1))
    >>> x = cygrad.randn(8, 3)
    >>> h = trunk(x).tanh()
    >>> loss_a, loss_b = (head_a(h) - 1).pow(2).mean(), (head_b(h) + 1).pow(2).mean()
    >>> opt.zero_grad()
    >>> opt.backward([loss_a, loss_b])
    >>> opt.step()
    >>> trunk.weight.grad.shape
    cygrad.Size([4, 3])
    """

    def __init__(self, optimizer, reduction="sum", generator=None, eps=1e-8):
        super().__init__(optimizer)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"PCGrad: reduction must be 'sum' or 'mean', got {reduction!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"PCGrad: generator must be a cygrad.Generator or None, not {type(generator).__name__}")
        self.reduction = reduction
        self.generator = generator
        self.eps = _check_nonneg("PCGrad", "eps", eps)

    def _combine(self, flats, params, reached_by):
        shared = None
        if self.reduction == "mean":
            mask = [all(col) for col in zip(*reached_by)]
            if not all(mask):
                shared = np.concatenate([np.full(p.numel(), m, dtype=bool) for p, m in zip(params, mask)])
        return pcgrad_combine(flats, generator=self.generator, reduction=self.reduction, eps=self.eps,
                              shared=shared)

    def _options(self):
        return f"reduction={self.reduction!r}, eps={self.eps}"


class CAGrad(_MultiTaskOptimizer):
    """Optimizer wrapper applying CAGrad (conflict-averse gradient descent) to several task losses.

    :meth:`backward` computes each task's flat gradient over the base optimizer's parameters as
    :class:`PCGrad` does (zeros where a task does not reach a parameter), combines them with
    :func:`cagrad_combine` and adds the slices of the result to the ``.grad`` of the
    parameters reached by at least one task. The dual weights of the last call are kept in
    :attr:`last_weights`. :meth:`step` runs the base optimizer's step.

    Parameters
    ----------
    optimizer : Optimizer
        The base optimizer holding the model parameters.
    c : float, default 0.5
        Trust-region radius relative to ``|g_0|`` (``c = 0`` is plain averaging of the tasks).
    rescale : {0, 1, 2}, default 1
        Final scaling of the direction: none, ``1 / (1 + c^2)`` or ``1 / (1 + c)``.
    eps : float, default 1e-8
        Added to ``|g_w|``.

    Attributes
    ----------
    last_weights : numpy.ndarray or None
        The simplex weights ``w*`` found by the last :meth:`backward`.

    Examples
    --------
    >>> import cygrad
    >>> _ = cygrad.manual_seed(0)
    >>> trunk, head_a, head_b = cygrad.nn.Linear(3, 4), cygrad.nn.Linear(4, 1), cygrad.nn.Linear(4, 1)
    >>> params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    >>> opt = cygrad.optim.CAGrad(cygrad.optim.SGD(params, lr=0.1), c=0.4)
    >>> h = trunk(cygrad.randn(8, 3)).tanh()
    >>> opt.zero_grad()
    >>> opt.backward([head_a(h).pow(2).mean(), (head_b(h) - 1).pow(2).mean()])
    >>> opt.step()
    >>> opt.last_weights.shape
    (2,)
    """

    def __init__(self, optimizer, c=0.5, rescale=1, eps=1e-8):
        super().__init__(optimizer)
        self.c = _check_nonneg("CAGrad", "c", c)
        if isinstance(rescale, bool) or rescale not in (0, 1, 2):
            raise ValueError(f"CAGrad: rescale must be 0, 1 or 2, got {rescale!r}")
        self.rescale = int(rescale)
        self.eps = _check_nonneg("CAGrad", "eps", eps)
        self.last_weights = None

    def _combine(self, flats, params, reached_by):
        d, w = cagrad_combine(flats, c=self.c, rescale=self.rescale, eps=self.eps, return_weights=True)
        self.last_weights = w
        return d

    def _options(self):
        return f"c={self.c}, rescale={self.rescale}, eps={self.eps}"


class GradNorm(_MultiTaskOptimizer):
    r"""Optimizer wrapper that learns task-loss weights with GradNorm (Chen et al. 2018).

    The model is trained on ``L = sum_i w_i L_i`` with positive task weights ``w_i``
    (initially 1) that are adapted so that the tasks' gradient norms on a shared layer ``W``
    train at similar rates. With ``k = num_tasks``, :meth:`backward` does:

    1. on its first call, record the initial losses ``L_i(0)`` (they must be positive);
    2. compute each task's gradient ``g_i = grad(L_i)`` over the base optimizer's parameters and
       ``W`` (``cygrad.autograd.grad``), and add ``sum_i w_i g_i`` (the gradient of ``L`` with
       the weights held constant) to the parameters' ``.grad``; parameters no task reaches keep
       their ``.grad``;
    3. compute ``G_i = |grad_W(w_i L_i)| = w_i |g_i restricted to W|`` (one L2 norm over all of
       ``W``'s tensors), the mean ``G_bar``, the relative inverse training rates
       ``r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0))`` and the targets
       ``G_bar * r_i ** alpha``, held constant;
    4. store in the weights' gradient the gradient w.r.t. ``w`` of the GradNorm loss
       ``L_grad = sum_i |G_i - G_bar * r_i ** alpha|``, i.e.
       ``sign(G_i - target_i) * |g_i restricted to W|``; its value is kept in
       :attr:`last_gradnorm_loss`.

    :meth:`step` runs the base optimizer's step, then an Adam step (learning rate ``lr``) on the
    weights, then clamps them to at least ``1e-6 * k`` and renormalises them so that they sum to
    ``k``. Calling :meth:`backward` again before :meth:`step` replaces the weights' gradient.

    ``state_dict()`` is the base optimizer's, with an extra ``'gradnorm'`` entry (weights,
    initial losses and the weights' Adam state); :meth:`load_state_dict` accepts it with or
    without that entry.

    Parameters
    ----------
    optimizer : Optimizer
        The base optimizer holding the model parameters.
    num_tasks : int
        Number of task losses ``k`` (>= 1).
    shared_parameters : iterable of Tensor
        The parameters of the shared layer ``W`` on which gradient norms are measured (usually
        the last shared layer, e.g. ``trunk[-1].parameters()``).
    alpha : float, default 1.5
        Asymmetry: how strongly tasks that train slower are pulled up (0 equalises the norms).
    lr : float, default 0.025
        Learning rate of the Adam optimizer on the weights.

    Attributes
    ----------
    weights : Tensor
        A copy of the current task weights (shape ``(k,)``, positive, summing to ``k``).
    initial_losses : tuple of float or None
        ``L_i(0)``, recorded by the first :meth:`backward`.
    last_gradnorm_loss : float or None
        ``L_grad`` of the last :meth:`backward`.

    Examples
    --------
    >>> import cygrad
    >>> _ = cygrad.manual_seed(0)
    >>> trunk, head_a, head_b = cygrad.nn.Linear(3, 4), cygrad.nn.Linear(4, 1), cygrad.nn.Linear(4, 1)
    >>> params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    >>> opt = cygrad.optim.GradNorm(cygrad.optim.SGD(params, lr=0.1), num_tasks=2,
    ...                             shared_parameters=trunk.parameters())
    >>> x = cygrad.randn(8, 3)
    >>> for _ in range(3):
    ...     h = trunk(x).tanh()
    ...     opt.zero_grad()
    ...     opt.backward([head_a(h).pow(2).mean(), 10 * (head_b(h) - 1).pow(2).mean()])
    ...     opt.step()
    >>> w = opt.weights
    >>> round(w.sum().item(), 5), bool((w > 0).all())
    (2.0, True)
    """

    def __init__(self, optimizer, num_tasks, shared_parameters, alpha=1.5, lr=0.025):
        super().__init__(optimizer)
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)):
            raise TypeError(f"GradNorm: num_tasks must be an int, got {type(num_tasks).__name__}")
        if num_tasks < 1:
            raise ValueError(f"GradNorm: num_tasks must be >= 1, got {num_tasks}")
        if isinstance(shared_parameters, Tensor):
            shared_parameters = [shared_parameters]
        shared = []
        for p in shared_parameters:
            if not isinstance(p, Tensor):
                raise TypeError(f"GradNorm: shared_parameters must be Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError("GradNorm: every shared parameter must require grad")
            if not p.is_floating_point():
                raise TypeError(f"GradNorm: shared parameters must be floating point, got {p.dtype}")
            if all(p is not q for q in shared):
                shared.append(p)
        if not shared:
            raise ValueError("GradNorm: shared_parameters is empty")
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise TypeError(f"GradNorm: alpha must be a number, not {type(alpha).__name__}") from None
        if not math.isfinite(alpha):
            raise ValueError(f"GradNorm: alpha must be finite, got {alpha}")
        lr = _check_nonneg("GradNorm", "lr", lr)
        self.num_tasks = int(num_tasks)
        self.shared_parameters = shared
        self.alpha = alpha
        self.lr = lr
        self._weights = shared[0].new_ones((self.num_tasks,)).requires_grad_(True)
        self._weight_optimizer = Adam([self._weights], lr=lr)
        self.initial_losses = None
        self.last_gradnorm_loss = None

    @property
    def weights(self):
        """A copy of the current task weights (positive, summing to ``num_tasks``)."""
        return self._weights.detach().clone()

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of the base optimizer's parameters and of the task weights."""
        self.optimizer.zero_grad(set_to_none)
        self._weights.grad = None

    def backward(self, losses, retain_graph=False):
        """Accumulate the weighted loss's gradient into ``.grad`` and compute the weights' gradient.

        Parameters
        ----------
        losses : sequence of Tensor
            ``num_tasks`` scalar losses (positive, at least on the first call).
        retain_graph : bool, default False
            Keep the graph after the last task's gradient.
        """
        losses = _check_losses("GradNorm", losses, self.num_tasks)
        values = np.array([float(l.detach().item()) for l in losses], dtype=np.float64)
        if self.initial_losses is None:
            if not np.all(values > 0) or not np.all(np.isfinite(values)):
                raise ValueError(f"GradNorm.backward(): the initial losses must be positive and finite, got "
                                 f"{values.tolist()}")
            self.initial_losses = tuple(values.tolist())
        params = self._params()
        ids = {id(p) for p in params}
        extra = [p for p in self.shared_parameters if id(p) not in ids]
        targets = params + extra
        task_grads = _task_gradients(losses, targets, retain_graph)

        w = self._weights.detach().numpy().astype(np.float64)
        with no_grad():
            # 2. gradient of sum_i w_i L_i for the model
            for pi, p in enumerate(params):
                total = None
                for i in range(self.num_tasks):
                    g = task_grads[i][pi]
                    if g is not None:
                        term = g * float(w[i])
                        total = term if total is None else total + term
                if total is not None:
                    total = total.to(p.dtype)
                    if p.grad is None:
                        p.grad = total.clone()
                    else:
                        p.grad.add_(total)
            # 3. norms of the per-task gradients on the shared layer
            shared_idx = [next(j for j, t in enumerate(targets) if t is p) for p in self.shared_parameters]
            norms = np.zeros(self.num_tasks)
            for i in range(self.num_tasks):
                sq = 0.0
                for j in shared_idx:
                    g = task_grads[i][j]
                    if g is not None:
                        a = np.asarray(g.numpy(), dtype=np.float64)
                        sq += float(np.dot(a.reshape(-1), a.reshape(-1)))
                norms[i] = math.sqrt(sq)
            ratios = values / np.array(self.initial_losses)
            mean_ratio = ratios.mean()
            r = np.maximum(ratios, 0.0) / mean_ratio if mean_ratio > 0 else np.ones(self.num_tasks)
            G = w * norms
            target = G.mean() * r ** self.alpha
        # 4. the GradNorm loss, differentiated w.r.t. the weights only
        np_dtype = self._weights.detach().numpy().dtype
        norms_t = Tensor._make(norms.astype(np_dtype))
        target_t = Tensor._make(target.astype(np_dtype))
        G_t = self._weights * norms_t
        gn_loss = (G_t - target_t).abs().sum()
        (gw,) = _autograd_grad(gn_loss, [self._weights])
        self._weights.grad = gw.detach()
        self.last_gradnorm_loss = float(gn_loss.item())

    def step(self, closure=None):
        """Update the model (base optimizer), then the task weights (Adam, clamp, renormalise).

        Parameters
        ----------
        closure : callable, optional
            Passed to the base optimizer's ``step``.

        Returns
        -------
        The closure's loss, or ``None``.
        """
        loss = self.optimizer.step(closure)
        if self._weights.grad is not None:
            self._weight_optimizer.step()
            with no_grad():
                k = self.num_tasks
                self._weights.clamp_(min=1e-6 * k)
                self._weights.mul_(k / self._weights.sum().item())
            self._weights.grad = None
        return loss

    def state_dict(self):
        """The base optimizer's state dict plus a ``'gradnorm'`` entry (weights, initial losses, Adam state)."""
        sd = self.optimizer.state_dict()
        sd["gradnorm"] = {"weights": self.weights, "initial_losses": self.initial_losses,
                          "weight_optimizer": self._weight_optimizer.state_dict()}
        return sd

    def load_state_dict(self, state_dict):
        """Load a state from :meth:`state_dict` (the ``'gradnorm'`` entry is optional)."""
        state_dict = dict(state_dict)
        gn = state_dict.pop("gradnorm", None)
        self.optimizer.load_state_dict(state_dict)
        if gn is not None:
            weights = gn["weights"]
            if tuple(weights.shape) != (self.num_tasks,):
                raise ValueError(f"GradNorm.load_state_dict(): expected {self.num_tasks} weights, got shape "
                                 f"{tuple(weights.shape)}")
            with no_grad():
                self._weights.copy_(weights.to(self._weights.dtype))
            il = gn.get("initial_losses")
            self.initial_losses = None if il is None else tuple(float(v) for v in il)
            self._weight_optimizer.load_state_dict(gn["weight_optimizer"])

    def _options(self):
        return f"num_tasks={self.num_tasks}, alpha={self.alpha}, lr={self.lr}"
