"""In-place ops (``add_``, ``mul_``, ``x[i] = v``, ...) and their autograd rules.

An in-place op that must be recorded runs the out-of-place Function, writes the result into the
tensor's memory, bumps the shared version counter and moves the tensor's history onto the new
node. Unrecorded ones (``no_grad``, or nothing requires grad) write directly with NumPy.
"""
import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function, view_index
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
        raise RuntimeError(f"result type {D.scalar_name(D._FROM_NP[data.dtype])} can't be cast to the desired "
                           f"output type {D.scalar_name(D._FROM_NP[dst.dtype])}")
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
        snap = _snapshot(self)
        out = fn_cls.apply(snap, *(snap if a is self else a for a in args))
        return _rebase(self, out)
    out = fn_cls.apply(self, *args)
    if not record:
        _check_shape(self, out)
        _write(self, out._data)
        return self
    return _rebase(self, out)


def _snapshot(self):
    """Stand-in for ``self`` in a recorded in-place op: same history, a copy of the data and its own
    version counter, so what the op saves for backward is not overwritten (nor seen as modified)
    when the result is written into ``self``."""
    return Tensor._make(self._data.copy(), self._requires_grad, self._grad_fn, self._output_nr)


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
    if fn.__name__ in _METADATA_OPS:
        return _metadata_inplace(fn)

    def method(self, *args, **kwargs):
        record = state.enabled and (self._requires_grad or any(isinstance(a, Tensor) and a._requires_grad
                                                                for a in list(args) + list(kwargs.values())))
        if record:
            _check_leaf(self)
            snap = _snapshot(self)
            return _rebase(self, fn(snap, *(snap if a is self else a for a in args), **kwargs))
        out = fn(self, *args, **kwargs)
        if not record:
            _check_shape(self, out)
            _write(self, out._data)
            return self
        return _rebase(self, out)
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place version of ``{fn.__name__}``."
    return method


_METADATA_OPS = ("t", "transpose", "squeeze", "unsqueeze")


def _metadata_inplace(fn):
    """``t_``/``transpose_``/``squeeze_``/``unsqueeze_``: self becomes the view ``fn(self)`` (same
    memory, new shape and strides) and takes over its history."""
    def method(self, *args, **kwargs):
        if state.enabled and self._requires_grad:
            _check_leaf(self)
        out = fn(self, *args, **kwargs)
        self._data = out._data
        if out._grad_fn is not None:
            self._grad_fn, self._output_nr = out._grad_fn, out._output_nr
        self._version_box[0] += 1
        return self
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place version of ``{fn.__name__}`` (changes the shape/strides only)."
    return method


def _rebase(self, out):
    """Store ``out`` (computed from self) into self and take over its history."""
    _check_shape(self, out)
    base = self._base
    if base is not None and np.shares_memory(base._data, self._data) and (out._requires_grad or base._requires_grad):
        key = view_index(base._data, self._data)  # works for views of views, transposes, ...
        if key is None:
            raise RuntimeError("in-place operations on this view (of a non-contiguous tensor) are not supported "
                               "when gradients are recorded; use the out-of-place operation")
        from .shape import IndexPut, Index
        res = IndexPut.apply(base, out, key, False)
        _write(base, res._data)
        base._grad_fn, base._output_nr, base._requires_grad = res._grad_fn, res._output_nr, True
        fresh = Index.apply(base, key, False, False)
        self._grad_fn, self._output_nr, self._requires_grad = fresh._grad_fn, fresh._output_nr, True
        self._ex()["view_fn"] = base._grad_fn
        return self
    _write(self, out._data)
    _adopt_saved_output(self, out)
    self._grad_fn, self._output_nr, self._requires_grad = out._grad_fn, out._output_nr, out._requires_grad
    return self


def _adopt_saved_output(self, out):
    """If ``out``'s node saved ``out`` (e.g. ``exp_``), that saved value is now ``self``: track
    ``self``'s version counter so a later in-place change of ``self`` is detected."""
    node = out._grad_fn
    saved = node._saved if node is not None else None
    if saved:
        box = self._version_box
        for sv in saved:
            if sv is not None and sv.box is out._version_box:
                sv.box, sv.version = box, box[0]


class _Overwrite(Function):
    """``dst`` replaced by ``src`` (broadcast and cast to ``dst``): recorded ``copy_``/``fill_``.

    ``dst``'s old value gets a zero gradient (its history stays connected, as in torch)."""

    _builtin = True
    _node_name_override = "CopyBackwards"

    @staticmethod
    def forward(ctx, dst, src):
        dd = dst._data
        try:
            return np.array(np.broadcast_to(src._data, dd.shape), dtype=dd.dtype)
        except ValueError:
            raise RuntimeError(f"output with shape {list(dd.shape)} doesn't match the broadcast shape "
                               f"{list(np.broadcast_shapes(dd.shape, src._data.shape))}") from None

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (g * 0 if n[0] else None), (g if n[1] else None)  # the engine reduces/casts for src


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
            return _rebase(self, _Overwrite.apply(self, value))
        value = value.item()
    if state.enabled and self._requires_grad:
        _check_leaf(self)
        return _rebase(self, _Overwrite.apply(self, Tensor._make(np.asarray(value, self._data.dtype))))
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
        return _rebase(self, _Overwrite.apply(self, src))
    try:
        np.copyto(self._data, np.broadcast_to(src._data, self._data.shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self._data.shape[-1] if self._data.ndim else 1}) must match "
                           f"the size of tensor b ({src._data.shape[-1] if src._data.ndim else 1}) at "
                           "non-singleton dimension") from None
    self._version_box[0] += 1
    return self
