"""In-place ops (``add_``, ``mul_``, ``x[i] = v``, ...) and their autograd rules.

An in-place op that must be recorded runs the out-of-place Function, writes the result into the
tensor's memory, bumps the shared version counter and moves the tensor's history onto the new
node. Unrecorded ones (``no_grad``, or nothing requires grad) write directly with NumPy.
"""
import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.grad_mode import state


def _check_leaf(self):
    if self._requires_grad and self._grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    base = self._base
    if base is not None and base._requires_grad and base._grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")


def _check_leaf_fill(self):
    """Random fills (``uniform_``, ...) are in-place ops too."""
    if state.enabled and self._requires_grad:
        _check_leaf(self)
        raise RuntimeError("random in-place fills of a tensor that is part of a graph are not supported")


def _write(self, data):
    """Copy ``data`` into self's memory with torch's cast rule for in-place results."""
    dst = self._data
    src_kind, dst_kind = data.dtype.kind, dst.dtype.kind
    rank = {"b": 0, "u": 1, "i": 1, "f": 2}
    if rank.get(src_kind, 2) > rank.get(dst_kind, 2):
        raise RuntimeError(f"result type {D._FROM_NP[data.dtype].name.capitalize()} can't be cast to the desired "
                           f"output type {D._FROM_NP[dst.dtype].name.capitalize()}")
    if not dst.flags.writeable:
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                           "single memory location. Please clone() the tensor before performing the operation.")
    try:
        np.copyto(dst, data, casting="unsafe")
    except ValueError:
        raise RuntimeError(f"output with shape {list(dst.shape)} doesn't match the broadcast shape "
                           f"{list(data.shape)}") from None
    self._version_box[0] += 1


def inplace_apply(self, fn_cls, *args):
    """Apply ``fn_cls`` to ``(self, *args)`` and store the result in ``self``."""
    record = state.enabled and (self._requires_grad or any(isinstance(a, Tensor) and a._requires_grad for a in args))
    if record:
        _check_leaf(self)
    out = fn_cls.apply(self, *args)
    if not record:
        _check_shape(self, out)
        _write(self, out._data)
        return self
    return _rebase(self, out)


def _check_shape(self, out):
    if out._data.shape != self._data.shape:
        raise RuntimeError(f"output with shape {list(self._data.shape)} doesn't match the broadcast shape "
                           f"{list(out._data.shape)}")


def _fast_binary(self, other, ufunc, fn_cls, *extra):
    """``self op= other`` written directly into memory when nothing is recorded."""
    if state.enabled and (self._requires_grad or (isinstance(other, Tensor) and other._requires_grad)):
        return inplace_apply(self, fn_cls, other, *extra)
    od = other._data if isinstance(other, Tensor) else other
    if isinstance(od, np.generic):
        od = od.item()
    dst = self._data
    if dst.dtype.kind != "f" and (isinstance(od, float) or (isinstance(od, np.ndarray) and od.dtype.kind == "f")):
        return inplace_apply(self, fn_cls, other, *extra)  # raises the cast error
    if extra and extra[0] != 1:
        od = od * extra[0]
    if not dst.flags.writeable:
        _write(self, dst)  # raises
    try:
        ufunc(dst, od, out=dst, casting="unsafe")
    except ValueError:
        raise RuntimeError(f"output with shape {list(dst.shape)} doesn't match the broadcast shape "
                           f"{list(np.broadcast_shapes(dst.shape, np.shape(od)))}") from None
    self._version_box[0] += 1
    return self


def add_(self, other, *, alpha=1):
    """In-place ``self += alpha * other``."""
    from .elementwise import Add
    return _fast_binary(self, other, np.add, Add, alpha)


def sub_(self, other, *, alpha=1):
    """In-place ``self -= alpha * other``."""
    from .elementwise import Sub
    return _fast_binary(self, other, np.subtract, Sub, alpha)


def mul_(self, other):
    """In-place ``self *= other``."""
    from .elementwise import Mul
    return _fast_binary(self, other, np.multiply, Mul)


def div_(self, other, *, rounding_mode=None):
    """In-place division."""
    from .elementwise import Div
    if rounding_mode is None and self._data.dtype.kind == "f":
        return _fast_binary(self, other, np.true_divide, Div)
    return inplace_apply(self, Div, other, rounding_mode)


def _generic(fn):
    """Make ``name_`` from an out-of-place function ``fn(self, *args, **kw)``."""
    def method(self, *args, **kwargs):
        record = state.enabled and (self._requires_grad or any(isinstance(a, Tensor) and a._requires_grad
                                                                for a in list(args) + list(kwargs.values())))
        if record:
            _check_leaf(self)
        out = fn(self, *args, **kwargs)
        if not record:
            _check_shape(self, out)
            _write(self, out._data)
            return self
        return _rebase(self, out)
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place version of ``{fn.__name__}``."
    return method


def _rebase(self, out):
    """Store ``out`` (computed from self) into self and take over its history."""
    _check_shape(self, out)
    base = self._base
    if base is not None and np.shares_memory(base._data, self._data) and (out._requires_grad or base._requires_grad):
        view_key = self._extra.get("view_key") if self._extra else None
        if view_key is None:
            raise RuntimeError("in-place operations on views created by reshape/transpose/expand of a tensor are "
                               "not supported when gradients are recorded; use the out-of-place operation")
        from .shape import IndexPut, Index
        res = IndexPut.apply(base, out, view_key, False)
        _write(base, res._data)
        base._grad_fn, base._output_nr, base._requires_grad = res._grad_fn, res._output_nr, True
        fresh = Index.apply(base, view_key, True, False)
        self._grad_fn, self._output_nr, self._requires_grad = fresh._grad_fn, fresh._output_nr, True
        return self
    _write(self, out._data)
    self._grad_fn, self._output_nr, self._requires_grad = out._grad_fn, out._output_nr, out._requires_grad
    return self


def zero_(self):
    """Fill with zeros in place."""
    return fill_(self, 0)


def fill_(self, value):
    """Fill with ``value`` (a number or 0-dim tensor) in place."""
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value._data.ndim} dimensions.")
        if state.enabled and (value._requires_grad or self._requires_grad):
            _check_leaf(self)
            return _rebase(self, value.to(self.dtype).expand(self.shape).clone())
        value = value.item()
    if state.enabled and self._requires_grad:
        _check_leaf(self)
        return _rebase(self, self * 0 + value)
    if not self._data.flags.writeable:
        _write(self, self._data)
    self._data.fill(value)
    self._version_box[0] += 1
    return self


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast, cast) into self in place; differentiable w.r.t. ``src``."""
    if not isinstance(src, Tensor):
        src = Tensor._make(np.asarray(src))
    if state.enabled and (src._requires_grad or self._requires_grad):
        _check_leaf(self)
        s = src if src._data.dtype == self._data.dtype else src.to(self.dtype)
        return _rebase(self, s.expand(self.shape).clone())
    try:
        np.copyto(self._data, np.broadcast_to(src._data, self._data.shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self._data.shape[-1] if self._data.ndim else 1}) must match "
                           f"the size of tensor b ({src._data.shape[-1] if src._data.ndim else 1}) at "
                           "non-singleton dimension") from None
    self._version_box[0] += 1
    return self
