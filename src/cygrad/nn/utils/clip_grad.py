"""Gradient clipping (``torch.nn.utils.clip_grad_norm_``, ``clip_grad_value_``)."""
import math
import warnings

import numpy as np

from ..._tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _as_list(tensors):
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _vector_norm(a, p):
    a = np.abs(a.reshape(-1))
    if a.size == 0:
        return a.dtype.type(0)
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0:
        return a.dtype.type(np.count_nonzero(a))
    if p == 1:
        return a.sum(dtype=a.dtype)
    if p == 2:
        return np.sqrt(np.dot(a, a))
    return np.sum(a ** p, dtype=a.dtype) ** (1.0 / p)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the norms of ``tensors`` (as if they were concatenated into one vector).

    Parameters
    ----------
    tensors : Tensor or iterable of Tensor
        The tensors (typically gradients).
    norm_type : float, default 2.0
        Order of the norm; ``inf`` for the maximum norm.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` if the total norm is nan or inf.
    foreach : bool, optional
        Ignored (accepted for compatibility).

    Returns
    -------
    Tensor
        The 0-d total norm.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils import get_total_norm
    >>> get_total_norm([cygrad.tensor([3.0]), cygrad.tensor([4.0])])
    tensor(5.)
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return Tensor._make(np.array(0.0, dtype=np.float32))
    arrays = [t._data for t in tensors]
    dtype = np.result_type(*arrays)
    norms = np.array([_vector_norm(a.astype(dtype, copy=False), norm_type) for a in arrays], dtype=dtype)
    total = np.asarray(_vector_norm(norms, norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(np.array(total))


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of ``parameters`` by ``min(1, max_norm / (total_norm + 1e-6))``.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Tensors whose ``.grad`` is scaled in place.
    max_norm : float
        Maximum norm.
    total_norm : Tensor
        The total norm (from :func:`get_total_norm`).
    foreach : bool, optional
        Ignored (accepted for compatibility).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils import get_total_norm, clip_grads_with_norm_
    >>> w = cygrad.ones(4, requires_grad=True)
    >>> (3 * w).sum().backward()
    >>> clip_grads_with_norm_([w], 1.0, get_total_norm([w.grad]))
    """
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    total = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    coef = np.minimum(np.asarray(float(max_norm), dtype=total.dtype) / (total + total.dtype.type(1e-6)),
                      total.dtype.type(1.0))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite grads scale to nan, as in torch
        for g in grads:
            g._data *= coef.astype(g._data.dtype)
            g._bump()


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm`` (``torch.nn.utils.clip_grad_norm_``).

    The total norm is computed over all gradients together; every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Tensors whose ``.grad`` is clipped (those without a gradient are ignored).
    max_norm : float
        Maximum norm of the gradients.
    norm_type : float, default 2.0
        Order of the norm; ``inf`` for the maximum norm.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` if the total norm is nan or inf.
    foreach : bool, optional
        Ignored (accepted for compatibility).

    Returns
    -------
    Tensor
        The total norm of the gradients before clipping (0-d).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.ones(4, requires_grad=True)
    >>> (3 * w).sum().backward()
    >>> cygrad.nn.utils.clip_grad_norm_([w], max_norm=1.0)
    tensor(6.)
    """
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of :func:`clip_grad_norm_`.

    Parameters
    ----------
    parameters, max_norm, norm_type, error_if_nonfinite, foreach
        As for :func:`clip_grad_norm_`.

    Returns
    -------
    Tensor
        The total norm before clipping.
    """
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`torch.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp the gradients of ``parameters`` in place to ``[-clip_value, clip_value]``
    (``torch.nn.utils.clip_grad_value_``).

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Tensors whose ``.grad`` is clamped.
    clip_value : float
        Bound of the gradient values.
    foreach : bool, optional
        Ignored (accepted for compatibility).

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.ones(2, requires_grad=True)
    >>> (5 * w).sum().backward()
    >>> cygrad.nn.utils.clip_grad_value_([w], 1.0)
    >>> w.grad
    tensor([1., 1.])
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad._data
            np.clip(g, -clip_value, clip_value, out=g)
            p.grad._bump()
