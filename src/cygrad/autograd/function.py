"""``Function`` (forward and backward side by side) and the graph nodes it creates.

A call ``F.apply(*args)`` runs ``F.forward(ctx, *args)``; when grad mode is on and an input
requires grad it also records a node: ``ctx`` *is* that node (as in PyTorch), an instance of a
per-Function subclass of :class:`Node` named ``<F>Backward``. The engine later calls
``F.backward(ctx, *grad_outputs)`` through it.
"""
import functools
import weakref

import numpy as np

from .grad_mode import state, no_grad

__all__ = ["Function", "FunctionCtx", "Node", "once_differentiable", "InplaceFunction"]

_NO_EDGE = (None, 0)
Tensor = None  # set by cygrad._tensor once the class exists (avoids an import cycle)
_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
          "backward through the graph a second time or if you need to access saved tensors after "
          "calling backward.")


class RemovableHandle:
    """Handle returned by ``register_hook``; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks_dict):
        # a plain dict can't be weakly referenced; holding it costs only the (small) hooks dict
        self._dict = hooks_dict
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id

    def remove(self):
        d = self._dict
        if d is not None:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _add_hook(d, fn):
    h = RemovableHandle(d)
    d[h.id] = fn
    return h


class _Saved:
    """One saved tensor: the tensor (an input) or, for an output, its data only.

    Outputs are stored without their Tensor so that no cycle output -> node -> output exists;
    unpacking rebuilds a tensor whose ``grad_fn`` is the node itself.
    """

    __slots__ = ("tensor", "data", "box", "version", "output_nr", "requires_grad")

    def __init__(self, tensor, output_nr=None):
        self.box = tensor._version_box
        self.version = self.box[0]
        self.output_nr = output_nr
        if output_nr is None:
            self.tensor = tensor
            self.data = None
        else:
            self.tensor = None
            self.data = tensor._data
            self.requires_grad = tensor._requires_grad

    def unpack(self, node):
        if self.box[0] != self.version:
            t = self.tensor if self.tensor is not None else Tensor._make(self.data)
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{t._type_name()} {list(t._data.shape)}], which is "
                f"{'output ' + str(self.output_nr) + ' of ' + node.name() if self.output_nr is not None else 'an input of ' + node.name()}"
                f", is at version {self.box[0]}; expected version {self.version} instead. Hint: "
                "the operation that produced it must not be followed by an in-place change of "
                "the same tensor (or of a view of it) before backward.")
        if self.output_nr is None:
            return self.tensor
        return Tensor._make(self.data, self.requires_grad, node if self.requires_grad else None,
                            self.output_nr, self.box)


class Node:
    """A node of the backward graph (``tensor.grad_fn``)."""

    _fn_cls = None
    _node_name = "Node"

    # class-level defaults: a node only stores what differs (creating nodes is on the hot path)
    next_functions = ()
    needs_input_grad = ()
    _to_save = None
    _saved = None
    _input_meta = ()
    _materialize_grads = True
    _non_differentiable = None
    _dirty = None
    _n_outputs = 1
    _output_meta = ()
    _pre_hooks = None       # {output_nr: {id: fn}} tensor hooks of outputs
    _node_pre_hooks = None  # {id: fn(grad_outputs)}
    _node_hooks = None      # {id: fn(grad_inputs, grad_outputs)}
    _anomaly_trace = None
    _retain = None          # {output_nr: fn(grad)} retain_grad hooks, run last
    _had_saved = False
    _recorded = False

    # ---- metadata -----------------------------------------------------------------------
    def name(self):
        """The node's name, e.g. ``MulBackward0``."""
        return self._node_name

    def __repr__(self):
        return f"<{self._node_name} object at {hex(id(self))}>"

    def metadata(self):
        if not hasattr(self, "_metadata"):
            self._metadata = {}
        return self._metadata

    def register_hook(self, fn):
        """Register ``fn(grad_inputs, grad_outputs)`` called after this node's backward."""
        if self._node_hooks is None:
            self._node_hooks = {}
        return _add_hook(self._node_hooks, fn)

    def register_prehook(self, fn):
        """Register ``fn(grad_outputs)`` called before this node's backward."""
        if self._node_pre_hooks is None:
            self._node_pre_hooks = {}
        return _add_hook(self._node_pre_hooks, fn)

    def _tensor_pre_hooks(self, nr):
        if self._pre_hooks is None:
            self._pre_hooks = {}
        return self._pre_hooks.setdefault(nr, {})

    # ---- ctx API (torch.autograd.function.FunctionCtx) ---------------------------------------
    def save_for_backward(self, *tensors):
        """Save tensors (inputs or outputs of ``forward``) for use in ``backward``."""
        self._to_save = tensors

    @property
    def saved_tensors(self):
        """The tensors given to ``save_for_backward``; raises once the graph has been freed."""
        saved = self._saved
        if saved is None:
            if self._to_save is not None and self._saved_pending():
                return tuple(self._to_save)
            raise RuntimeError(_FREED)
        return tuple(s.unpack(self) if s is not None else None for s in saved)

    def _saved_pending(self):
        return not self._recorded

    def mark_non_differentiable(self, *tensors):
        """Mark outputs (tensors or arrays returned by ``forward``) as not requiring grad."""
        self._non_differentiable = tensors

    def mark_dirty(self, *tensors):
        """Declare inputs modified in place by ``forward``."""
        self._dirty = tensors

    def set_materialize_grads(self, value):
        """If False, ``backward`` receives None (not zeros) for outputs that got no gradient."""
        self._materialize_grads = bool(value)

    def _release(self):
        self._saved = None
        self._to_save = None

    # ---- called by the engine -------------------------------------------------------------
    def _call(self, grads):
        """Run backward for output grads ``grads`` (a list); return a tuple aligned with edges."""
        if self._saved is None and self._had_saved:
            raise RuntimeError(_FREED)
        if self._materialize_grads and len(grads) > 1:  # a lone output grad is never None here
            for i, g in enumerate(grads):
                if g is None:
                    shape, npd = self._output_meta[i]
                    grads[i] = Tensor._make(np.zeros(shape, npd))
        res = self._fn_cls.backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n = len(self.next_functions)
        if len(res) != n:
            if len(res) > n and all(r is None for r in res[n:]):
                res = res[:n]
            else:
                raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                                   f"(expected {n}, got {len(res)})")
        return res


def view_index(base_data, view_data):
    """Advanced index (a tuple of int arrays) of the elements of ``base_data`` that ``view_data``, a
    view of its memory, shows; None when it can't be expressed (non C-contiguous base)."""
    if not base_data.flags.c_contiguous:
        return None
    item = base_data.itemsize
    off = view_data.__array_interface__["data"][0] - base_data.__array_interface__["data"][0]
    if view_data.itemsize != item or off % item or any(st % item for st in view_data.strides):
        return None
    flat = np.full(view_data.shape, off // item, dtype=np.intp)
    nd = view_data.ndim
    for k, (n, st) in enumerate(zip(view_data.shape, view_data.strides)):
        shape = [1] * nd
        shape[k] = n
        flat += (np.arange(n, dtype=np.intp) * (st // item)).reshape(shape)
    if flat.size and (flat.min() < 0 or flat.max() >= base_data.size):
        return None
    return np.unravel_index(flat, base_data.shape)


def view_grad_fn(t):
    """``t._grad_fn`` for a view ``t``, replayed from its base when an in-place op changed the base's
    history after the view was created (torch's view replay), so gradients flow through that op."""
    ex = t._extra
    base = t._base
    if ex is None or "view_fn" not in ex or ex["view_fn"] is base._grad_fn or not base._requires_grad:
        return t._grad_fn
    key = view_index(base._data, t._data)
    if key is None:
        return t._grad_fn
    from ..ops.shape import Index
    prev = state.enabled
    state.enabled = True
    try:
        fresh = Index.apply(base, key, False, False)
    finally:
        state.enabled = prev
    t._grad_fn, t._output_nr, t._requires_grad = fresh._grad_fn, fresh._output_nr, True
    ex["view_fn"] = base._grad_fn
    return t._grad_fn


class _AccumulateGradBase(Node):
    pass


class AccumulateGrad(_AccumulateGradBase):
    """The node that adds incoming gradients to a leaf tensor's ``.grad``."""

    _node_name = "AccumulateGrad"

    def __init__(self, variable):
        self.variable = variable

    def _call(self, grads):  # handled by the engine
        raise AssertionError


class _FunctionMeta(type):
    def __init__(cls, name, bases, ns):
        super().__init__(name, bases, ns)
        suffix = "Backward0" if ns.get("_builtin", False) else "Backward"
        node_name = ns.get("_node_name_override") or name + suffix
        cls._node_cls = type(node_name, (Node,), {"_fn_cls": cls, "_node_name": node_name})


class Function(metaclass=_FunctionMeta):
    """Base class for differentiable operations, with PyTorch's ``torch.autograd.Function`` API.

    Subclasses define ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` as static
    methods and are called with ``apply``. ``backward`` returns one gradient (or None) per
    ``forward`` argument.

    Examples
    --------
    >>> import cygrad
    >>> class Cube(cygrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         x, = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> x = cygrad.tensor([2.0], requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> x.grad
    tensor([12.])
    """

    _builtin = False  # builtin ops compute on ndarrays in forward (no no_grad block needed)

    def __init__(self, *args, **kwargs):
        raise RuntimeError("Function objects are not instantiated; call the class's apply() method")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your "
                                  "custom autograd.Function to use it with backward mode AD.")

    setup_context = None
    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls._node_cls()
        record = False
        if state.enabled:
            for a in args:
                if isinstance(a, Tensor) and a._requires_grad:
                    record = True
                    break
        if record:
            edges = []
            needs = []
            meta = []
            for a in args:
                if isinstance(a, Tensor) and a._requires_grad:
                    fn = a._grad_fn if a._base is None else view_grad_fn(a)
                    edges.append((fn, a._output_nr) if fn is not None else (a._accumulator(), 0))
                    needs.append(True)
                    meta.append((a._data.shape, a._data.dtype))
                else:
                    edges.append(_NO_EDGE)
                    needs.append(False)
                    meta.append(None)
            ctx.needs_input_grad = tuple(needs)
        elif not cls._builtin:
            ctx.needs_input_grad = (False,) * len(args)
        if cls.setup_context is not None:
            with no_grad():
                out = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, out)
        elif cls._builtin:
            out = cls.forward(ctx, *args, **kwargs)
            if out.__class__ is np.ndarray:  # fast path: one array output
                if not record:
                    return Tensor._make(out)
                if out.dtype.kind == "f" and ctx._non_differentiable is None:
                    t = Tensor._make(out, True, ctx, 0)
                    ctx.next_functions = tuple(edges)
                    ctx._input_meta = tuple(meta)
                    ctx._recorded = True
                    to_save = ctx._to_save
                    if to_save is not None:
                        ctx._had_saved = True
                        ctx._saved = [None if s is None else _Saved(t, 0) if (s is out or s is t) else
                                      _Saved(s) if isinstance(s, Tensor) else _Saved(Tensor._make(np.asarray(s)))
                                      for s in to_save]
                        ctx._to_save = None
                    if state.anomaly:
                        import traceback
                        ctx._anomaly_trace = "".join(traceback.format_stack()[:-1])
                    return t
        else:
            with no_grad():
                out = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        results = []
        nondiff = ctx._non_differentiable
        dirty = ctx._dirty
        for nr, o in enumerate(outs):
            if isinstance(o, Tensor):
                if dirty is not None and any(o is d for d in dirty):
                    t = o  # in-place custom function: the input object becomes the output
                    t._version_box[0] += 1
                else:
                    t = Tensor._make(o._data, False, None, 0, None)
            elif isinstance(o, np.ndarray):
                t = Tensor._make(o)
            elif o is None:
                t = None
            elif isinstance(o, np.generic):
                t = Tensor._make(np.asarray(o))
            else:
                results.append(o)
                continue
            if record and t is not None and t._data.dtype.kind == "f" and not (
                    nondiff is not None and any(o is d or (isinstance(d, Tensor) and d._data is t._data)
                                                for d in nondiff)):
                t._requires_grad = True
                t._grad_fn = ctx
                t._output_nr = nr
            results.append(t)
        if record:
            ctx.next_functions = tuple(edges)
            ctx._input_meta = tuple(meta)
            ctx._n_outputs = len(outs)
            if len(outs) > 1:  # used to materialise missing output grads as zeros
                ctx._output_meta = tuple((r._data.shape, r._data.dtype) if isinstance(r, Tensor) else
                                         ((), np.float32) for r in results)
            ctx._recorded = True
            if state.anomaly:
                import traceback
                ctx._anomaly_trace = "".join(traceback.format_stack()[:-1])
            to_save = ctx._to_save
            if to_save is not None:
                ctx._had_saved = True
                saved = []
                for s in to_save:
                    if s is None:
                        saved.append(None)
                        continue
                    onr = None
                    for nr, r in enumerate(results):
                        if r is not None and (s is r or s is outs[nr] or
                                              (isinstance(s, np.ndarray) and s is r._data)):
                            onr = nr
                            break
                    if onr is not None:
                        saved.append(_Saved(results[onr], onr))
                    elif isinstance(s, Tensor):
                        saved.append(_Saved(s))
                    else:
                        saved.append(_Saved(Tensor._make(np.asarray(s))))
                ctx._saved = saved
                ctx._to_save = None
        return results[0] if single else tuple(results)


class InplaceFunction(Function):
    """Base for functions with an ``inplace`` flag (kept for API compatibility)."""


def once_differentiable(fn):
    """Decorator for ``backward``: runs it without recording, and makes a second
    differentiation through it raise a clear error.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.autograd.function import once_differentiable
    >>> class Sq(cygrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     @once_differentiable
    ...     def backward(ctx, g):
    ...         x, = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = cygrad.tensor([3.0], requires_grad=True)
    >>> Sq.apply(x).sum().backward(); x.grad
    tensor([6.])
    """

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            outs = fn(ctx, *args)
        if not state.enabled:
            return outs
        if not any(isinstance(a, Tensor) and a._requires_grad for a in args):
            return outs
        single = not isinstance(outs, tuple)
        tup = (outs,) if single else outs
        name = ctx.name()
        res = tuple(_OnceDiffError.apply(o, *args, name=name) if isinstance(o, Tensor) else o
                    for o in tup)
        return res[0] if single else res
    return wrapper


class _OnceDiffError(Function):
    _builtin = True
    _node_name_override = "DelayedError"

    @staticmethod
    def forward(ctx, out, *grads, name=""):
        ctx.fn_name = name
        return out._data

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           f"@once_differentiable ({ctx.fn_name})")


FunctionCtx = Node
BackwardCFunction = Node
