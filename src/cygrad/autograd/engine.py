"""The backward engine: one iterative sweep over the graph in dependency order.

It is the single place where broadcast gradients are reduced to their input's shape (and cast
to its dtype): ``Function.backward`` may return a gradient of the broadcast output's shape.
"""
import sys

import numpy as np

from .. import _alloc
from . import function as _function
from .function import AccumulateGrad, Node, view_grad_fn
from .grad_mode import state

__all__ = ["backward", "grad"]


def _tensor_cls():
    return _function.Tensor


def _fit(node, i, g, shape, npd):
    """Reduce a gradient to the input's shape (sum over broadcast dims) and cast its dtype."""
    Tensor = _tensor_cls()
    if not isinstance(g, Tensor):
        raise TypeError(f"function {node.name()} returned a gradient of type {type(g).__name__} "
                        f"at index {i}; expected a Tensor or None")
    gs = g._data.shape
    if gs != shape:
        n = len(gs) - len(shape)
        if n < 0 or any(s != 1 and s != d for s, d in zip(shape, gs[n:])):
            raise RuntimeError(f"Function {node.name()} returned an invalid gradient at index {i} - "
                               f"got {list(gs)} but expected shape compatible with {list(shape)}")
        g = g.sum_to_size(shape)
    if g._data.dtype != npd:
        g = g.to(npd)
    return g


def _run_hooks(hooks, g):
    for h in list(hooks.values()):
        r = h(g)
        if r is not None:
            g = r
    return g


# References to a gradient tensor that is private to the engine, while _accumulate runs: the
# slot of the node's gradient list, _accumulate's argument and _adoptable's argument, plus the
# one sys.getrefcount itself adds.
_PRIVATE_REFS = 4


def _adoptable(var, g):
    """Whether the first gradient of a leaf can become its ``.grad`` without a copy, as torch
    does when nothing else references the gradient.

    True only for a plain tensor owning a fresh, writable array in the leaf's layout, that no
    one outside the engine references: not the caller (``backward(gradient=g)``), not another
    graph edge (a Function returning the same tensor twice), not a view, hook or retained
    ``.grad``. Any reference we do not account for makes the count larger and forces the copy,
    so a miscount can only cost a copy, never alias a gradient.
    """
    if g.__class__ is not _tensor_cls() or g._base is not None or g._requires_grad:
        return False
    d = g._data
    if d.base is not None or not d.flags.writeable or not d.flags.owndata:
        return False
    vd = var._data
    if vd.flags.c_contiguous and not d.flags.c_contiguous:
        return False
    if not vd.flags.c_contiguous and d.strides != vd.strides:
        return False
    # d: the tensor's slot, this local and getrefcount's argument (and the array cache's list, which
    # never hands out an array someone else references)
    return sys.getrefcount(g) <= _PRIVATE_REFS and sys.getrefcount(d) <= 3 + _alloc.cache_refs(d)


def _accumulate(var, g, create_graph):
    """Add ``g`` into ``var.grad`` (AccumulateGrad) and run post-accumulate hooks."""
    Tensor = _tensor_cls()
    old = var._grad
    if old is None:
        if create_graph:
            var._grad = g
        else:
            if _adoptable(var, g):
                var._grad = g
            else:  # a copy in the leaf's layout, so that optimizers update it without another copy
                order = "C" if var._data.flags.c_contiguous else "K"
                var._grad = Tensor._make(np.array(g._data, copy=True, order=order))
    elif create_graph or old._requires_grad or g._requires_grad:
        var._grad = old + g
    else:
        np.add(old._data, g._data, out=old._data)
        old._version_box[0] += 1
    ex = var._extra
    if ex is not None and ex.get("post_acc_hooks"):
        for h in list(ex["post_acc_hooks"].values()):
            h(var)


def _leaf_hooks(var):
    ex = var._extra
    return ex.get("hooks") if ex is not None else None


def _execute(roots, root_grads, targets, accumulate, retain_graph, create_graph):
    """Run backward from ``roots`` ((node, output_nr) pairs) seeded with ``root_grads``.

    ``targets``: (node, output_nr) pairs whose incoming gradient is captured and returned, or
    None. ``accumulate``: whether AccumulateGrad nodes add into leaves' ``.grad``.
    """
    # 1. discover the graph and count each node's incoming edges
    deps = {}
    seen = set()
    stack = []
    for node, _ in roots:
        if node not in seen:
            seen.add(node)
            stack.append(node)
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is not None:
                deps[nxt] = deps.get(nxt, 0) + 1
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)

    # 2. with targets, only nodes on a path to a target need to run
    needed = None
    target_map = {}
    if targets is not None:
        for node, nr in targets:
            if node is not None:
                target_map.setdefault(node, []).append(nr)
        order = _topo_order(roots, deps)
        reach, needed = set(), set()  # reach: leads to a target; needed: must run to feed one
        for node in reversed(order):
            if any(n in reach for n, _ in node.next_functions if n is not None):
                needed.add(node)
                reach.add(node)
            elif node in target_map:
                reach.add(node)

    # 3. seed and sweep
    buffers = {}
    for (node, nr), g in zip(roots, root_grads):
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node._n_outputs
        buf[nr] = g if buf[nr] is None else buf[nr] + g
    ready = []
    for node in buffers:
        if deps.get(node, 0) == 0:
            ready.append(node)
    captured = {}
    prev_enabled = state.enabled
    anomaly = state.anomaly
    Tensor = _tensor_cls()
    state.enabled = create_graph
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None)
            is_acc = node.__class__ is AccumulateGrad
            if grads is not None:
                if is_acc:
                    hooks = _leaf_hooks(node.variable)
                    if hooks and grads[0] is not None:
                        grads[0] = _run_hooks(hooks, grads[0])
                else:
                    if node._pre_hooks:
                        for nr, hooks in node._pre_hooks.items():
                            if grads[nr] is not None and hooks:
                                grads[nr] = _run_hooks(hooks, grads[nr])
                    if node._retain:
                        for nr, fn in node._retain.items():
                            if grads[nr] is not None:
                                fn(grads[nr])
                nrs = target_map.get(node)
                if nrs is not None:
                    for nr in nrs:
                        captured[(node, nr)] = grads[nr]
            if is_acc:
                if grads is not None and accumulate and grads[0] is not None:
                    _accumulate(node.variable, grads[0], create_graph)
                continue
            run = grads is not None and (needed is None or node in needed) and \
                (grads[0] is not None if len(grads) == 1 else any(g is not None for g in grads))
            in_grads = None
            if run:
                if node._node_pre_hooks:
                    for h in list(node._node_pre_hooks.values()):
                        r = h(tuple(grads))
                        if r is not None:
                            grads = list(r)
                in_grads = node._call(grads)
                if node._node_hooks:
                    for h in list(node._node_hooks.values()):
                        r = h(in_grads, tuple(grads))
                        if r is not None:
                            in_grads = tuple(r)
                if anomaly:
                    _check_anomaly(node, in_grads)
                if not retain_graph:
                    node._release()
            for i, (nxt, nr) in enumerate(node.next_functions):
                if nxt is None:
                    continue
                if in_grads is not None:
                    g = in_grads[i]
                    if g is not None:
                        shape, npd = node._input_meta[i]
                        gd = g._data if g.__class__ is Tensor else None
                        if gd is None or gd.shape != shape or gd.dtype != npd:
                            g = _fit(node, i, g, shape, npd)
                        buf = buffers.get(nxt)
                        if buf is None:
                            buf = buffers[nxt] = [None] * nxt._n_outputs
                        old = buf[nr]
                        buf[nr] = g if old is None else old + g
                d = deps[nxt] - 1
                deps[nxt] = d
                if d == 0:
                    ready.append(nxt)
            # drop this node's gradients from the locals: a leaf's first gradient is adopted
            # without a copy only when the engine holds the sole references (_adoptable)
            in_grads = g = gd = buf = old = None
    finally:
        state.enabled = prev_enabled
    return captured


def _topo_order(roots, deps):
    """Kahn's order over the discovered graph (roots first)."""
    deps = dict(deps)
    order = []
    ready = list({id(n): n for n, _ in roots if deps.get(n, 0) == 0}.values())
    while ready:
        node = ready.pop()
        order.append(node)
        for nxt, _ in node.next_functions:
            if nxt is not None:
                deps[nxt] -= 1
                if deps[nxt] == 0:
                    ready.append(nxt)
    return order


def _check_anomaly(node, in_grads):
    Tensor = _tensor_cls()
    for i, g in enumerate(in_grads):
        if isinstance(g, Tensor) and g._data.dtype.kind == "f" and np.isnan(g._data).any():
            msg = f"Function '{node.name()}' returned nan values in its {i}th output."
            if node._anomaly_trace:
                msg += "\nTraceback of forward call that caused the error:\n" + node._anomaly_trace
            raise RuntimeError(msg)


def _as_tuple(x):
    Tensor = _tensor_cls()
    if x is None:
        return None
    if isinstance(x, (Tensor, np.ndarray)) or not isinstance(x, (tuple, list)):
        return (x,)
    return tuple(x)


def _make_grads(outputs, grads, is_grads_batched=False):
    Tensor = _tensor_cls()
    res = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if out._data.dtype.kind != "f":
                raise RuntimeError("grad can be implicitly created only for real scalar outputs "
                                   f"but got {out.dtype}")
            g = Tensor._make(np.ones(out._data.shape, out._data.dtype))
        else:
            if not isinstance(g, Tensor):
                if isinstance(g, (int, float)) and out._data.size == 1:
                    g = Tensor._make(np.full(out._data.shape, g, out._data.dtype))
                else:
                    raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
            if g._data.shape != out._data.shape:
                from .._tensor import Size
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{Size(g._data.shape)!r} and output[{i}] has a shape of "
                                   f"{Size(out._data.shape)!r}.")
            if g._data.dtype != out._data.dtype:
                if out._data.dtype.kind != "f":
                    raise RuntimeError(f"For output {i}: expected a gradient of dtype {out.dtype}, got {g.dtype}")
                g = g.to(out._data.dtype)  # torch casts the given gradient to the output's dtype
        res.append(g)
    return res


def _roots(outputs):
    roots = []
    for i, t in enumerate(outputs):
        if not t._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        fn = t._grad_fn if t._base is None else view_grad_fn(t)
        if fn is not None:
            roots.append((fn, t._output_nr))
        else:
            roots.append((t._accumulator(), 0))
    return roots


def _target(t):
    fn = t._grad_fn if t._base is None else view_grad_fn(t)
    return (fn, t._output_nr) if fn is not None else (t._accumulator(), 0)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
             inputs=None):
    """Compute the sum of gradients of ``tensors`` and accumulate them into leaves' ``.grad``.

    Parameters
    ----------
    tensors : Tensor or sequence of Tensor
        Outputs to differentiate.
    grad_tensors : Tensor or sequence, optional
        Gradients with respect to ``tensors`` (None allowed for one-element outputs).
    retain_graph : bool, optional
        Keep saved tensors so the graph can be differentiated again (default: ``create_graph``).
    create_graph : bool
        Record the backward computation, for higher-order derivatives.
    inputs : Tensor or sequence of Tensor, optional
        Accumulate only into these tensors' ``.grad``.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor([1.0, 2.0], requires_grad=True)
    >>> cygrad.autograd.backward((x * x).sum())
    >>> x.grad
    tensor([2., 4.])
    """
    Tensor = _tensor_cls()
    if grad_variables is not None:
        grad_tensors = grad_variables
    outputs = _as_tuple(tensors)
    if grad_tensors is None:
        grads = [None] * len(outputs)
    else:
        grads = list(_as_tuple(grad_tensors))
        if len(grads) != len(outputs):
            raise RuntimeError(f"grad_tensors has {len(grads)} elements but tensors has {len(outputs)}")
    if retain_graph is None:
        retain_graph = create_graph
    grads = _make_grads(outputs, grads)
    roots = _roots(outputs)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if len(inputs) == 0:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        for t in inputs:
            if not isinstance(t, Tensor) or not t._requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
        targets = [_target(t) for t in inputs]
        captured = _execute(roots, grads, targets, False, retain_graph, create_graph)
        for t, key in zip(inputs, targets):
            g = captured.get(key)
            if g is not None:
                _accumulate(t, g, create_graph)
        return None
    _execute(roots, grads, None, True, retain_graph, create_graph)
    return None


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` (no ``.grad`` is touched).

    Parameters
    ----------
    outputs, inputs : Tensor or sequence of Tensor
    grad_outputs : Tensor or sequence, optional
        Vector in the vector-Jacobian product (None allowed for one-element outputs).
    retain_graph : bool, optional
        Defaults to ``create_graph``.
    create_graph : bool
        Record the derivative's graph (higher-order derivatives).
    allow_unused : bool, optional
        Return None for inputs that do not reach the outputs instead of raising.
    materialize_grads : bool
        Return zeros instead of None for unused inputs.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor(3.0, requires_grad=True)
    >>> (dx,) = cygrad.autograd.grad(x ** 3, x, create_graph=True)
    >>> dx, cygrad.autograd.grad(dx, x)[0]
    (tensor(27., grad_fn=<MulBackward0>), tensor(18.))
    """
    Tensor = _tensor_cls()
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported")
    if allow_unused is None:
        allow_unused = materialize_grads
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False.")
    outs = _as_tuple(outputs)
    ins = _as_tuple(inputs)
    for t in ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad(): inputs must be Tensors, got {type(t).__name__}")
        if not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if grad_outputs is None:
        grads = [None] * len(outs)
    else:
        grads = list(_as_tuple(grad_outputs))
        if len(grads) != len(outs):
            raise RuntimeError(f"grad requires one grad_output per output: got {len(grads)} "
                               f"grad_outputs and {len(outs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    # outputs that don't require grad contribute nothing (torch raises for them)
    grads = _make_grads(outs, grads)
    roots = _roots(outs)
    targets = [_target(t) for t in ins]
    captured = _execute(roots, grads, targets, False, retain_graph, create_graph)
    res = []
    for t, key in zip(ins, targets):
        g = captured.get(key)
        if g is None:
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in "
                                   "the graph. Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                g = Tensor._make(np.zeros(t._data.shape, t._data.dtype))
        elif not create_graph and g._requires_grad:
            g = g.detach()
        res.append(g)
    return tuple(res)

