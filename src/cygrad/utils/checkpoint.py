"""Activation checkpointing (``torch.utils.checkpoint``).

``checkpoint(function, *args)`` returns what ``function(*args)`` returns, but the graph it
leaves behind holds only ``function``'s tensor arguments (and the RNG state), not the
activations computed inside ``function``: one node, ``CheckpointFunctionBackward``, stands for the
whole region. When backward reaches that node it runs ``function`` again with grad enabled and
differentiates the recomputed graph.

How it works
------------
1. *Forward.* ``function`` runs once with grad enabled on detached copies of its tensor arguments.
   The graph it records is walked to find the region's boundary: the arguments, the leaf tensors
   reached (parameters captured by closure or held by modules), and tensors computed before the
   call that ``function`` uses (non-leaf captures; recognised because they survive when the
   region's graph is dropped). The outputs' values are kept and the recorded graph is dropped at
   once, so the activations never outlive this step.
2. The outputs are produced by one ``CheckpointFunction`` node whose edges are that boundary:
   gradients reach parameters through the outer engine like through any other edge, so
   ``loss.backward()``, ``loss.backward(inputs=...)`` and ``cygrad.autograd.grad(loss, [x, w])``
   all see them (no ``.grad`` is written behind the engine's back).
3. *Backward.* The node restores the forward's RNG state, re-runs ``function`` with grad enabled,
   differentiates the recomputed graph up to the boundary (whose edges are temporarily
   redirected, so nothing outside the region runs twice), and returns the boundary's gradients.
   With ``create_graph=True`` the recomputation uses the original inputs, so higher-order
   gradients flow through it.
"""
import gc
import warnings
import weakref

import numpy as np

from .._random import get_rng_state, set_rng_state
from .._tensor import Tensor
from ..autograd.engine import _execute, _target
from ..autograd.function import AccumulateGrad, Function, Node
from ..autograd.grad_mode import enable_grad, no_grad, state

__all__ = ["checkpoint", "checkpoint_sequential", "noop_context_fn", "saved_activation_bytes"]

_DETERMINISM_MODES = ("default", "none")


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def noop_context_fn():
    """The default ``context_fn`` of :func:`checkpoint`: two do-nothing context managers.

    Examples
    --------
    >>> from cygrad.utils.checkpoint import noop_context_fn
    >>> fwd, recompute = noop_context_fn()
    >>> with fwd:
    ...     pass
    """
    return _NullContext(), _NullContext()


# ---- output structures ----------------------------------------------------------------------------
def _flatten(obj, leaves):
    """Replace tensors in nested tuples/lists/dicts by their index in ``leaves``; return the spec."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("T", len(leaves) - 1)
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return ("tuple", [_flatten(o, leaves) for o in obj])
    if isinstance(obj, tuple):  # namedtuple
        return ("named", type(obj), [_flatten(o, leaves) for o in obj])
    if isinstance(obj, list):
        return ("list", [_flatten(o, leaves) for o in obj])
    if isinstance(obj, dict):
        return ("dict", type(obj), [(k, _flatten(v, leaves)) for k, v in obj.items()])
    return ("C", obj)


def _unflatten(spec, leaves):
    kind = spec[0]
    if kind == "T":
        return leaves[spec[1]]
    if kind == "C":
        return spec[1]
    if kind == "tuple":
        return tuple(_unflatten(s, leaves) for s in spec[1])
    if kind == "named":
        return spec[1](*[_unflatten(s, leaves) for s in spec[2]])
    if kind == "list":
        return [_unflatten(s, leaves) for s in spec[1]]
    d = spec[1]()
    for k, s in spec[2]:
        d[k] = _unflatten(s, leaves)
    return d


# ---- the region's boundary ------------------------------------------------------------------------
class _Sink(Node):
    """Stand-in for a boundary node while the recomputed region is differentiated: it has no
    edges, so the engine captures the gradient reaching it and goes no further."""

    _node_name = "CheckpointBoundary"

    def __init__(self, orig):
        self.orig = orig
        self._n_outputs = orig._n_outputs


def _discover(roots, input_accs):
    """Walk the region's graph from ``roots`` ((node, nr) pairs).

    Returns ``(leaves, candidates, adjacency)``: weak references to the leaf tensors reached
    (excluding the detached inputs, whose AccumulateGrad nodes are ``input_accs``), weak
    references to every other node reached, and for each node id its edges as
    ``(child id, nr, shape, dtype)``. Only weak references are kept, so dropping the region's
    outputs frees its nodes; nodes still alive afterwards existed before the call.
    """
    leaves = {}
    cands = {}
    adj = {}
    stack = []
    for node, _ in roots:
        if node.__class__ is AccumulateGrad:
            if id(node) not in input_accs:
                leaves[id(node)] = weakref.ref(node.variable)
        elif id(node) not in cands:
            cands[id(node)] = weakref.ref(node)
            stack.append(node)
    while stack:
        node = stack.pop()
        edges = []
        meta = node._input_meta
        for i, (nxt, nr) in enumerate(node.next_functions):
            if nxt is None:
                continue
            shape, npd = meta[i]
            edges.append((id(nxt), nr, shape, npd))
            if nxt.__class__ is AccumulateGrad:
                if id(nxt) not in input_accs and id(nxt) not in leaves:
                    leaves[id(nxt)] = weakref.ref(nxt.variable)
            elif id(nxt) not in cands:
                cands[id(nxt)] = weakref.ref(nxt)
                stack.append(nxt)
        adj[id(node)] = edges
    return leaves, cands, adj


def _external_edges(root_ids, cands, adj):
    """The (node, nr, shape, dtype) edges from the region into nodes that outlived it."""
    alive = {k for k, r in cands.items() if r() is not None}
    if alive:
        gc.collect()  # a reference cycle may keep some of the region's nodes alive
        alive = {k for k, r in cands.items() if r() is not None}
    if not alive:
        return []
    out = {}
    seen = set()
    stack = []
    for k in root_ids:
        if k in cands and k not in alive and k not in seen:
            seen.add(k)
            stack.append(k)
    while stack:
        k = stack.pop()
        for child, nr, shape, npd in adj.get(k, ()):
            if child in alive:
                node = cands[child]()
                if node is not None and (child, nr) not in out:
                    out[(child, nr)] = (node, nr, shape, npd)
            elif child in cands and child not in seen:
                seen.add(child)
                stack.append(child)
    return list(out.values())


def _proxy(node, nr, shape, npd):
    """A tensor standing for output ``nr`` of ``node`` (no memory: a broadcast zero)."""
    return Tensor._make(np.broadcast_to(np.zeros((), npd), shape), True, node, nr)


def _detached(a):
    t = Tensor._make(a._data, box=a._version_box)
    t._requires_grad = a._requires_grad
    return t


# ---- the node --------------------------------------------------------------------------------------
class _Info:
    __slots__ = ("function", "args", "tensor_idx", "kwargs", "rng_state", "recompute_ctx", "out_meta",
                 "n_inputs", "n_leaves", "check")


class CheckpointFunction(Function):
    """One node for a checkpointed region; its inputs are the region's boundary tensors."""

    @staticmethod
    def forward(ctx, info, outputs, *boundary):
        ctx._ckpt_info = info
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*boundary[:info.n_inputs])
        nondiff = [o for o, (_, _, rg) in zip(outputs, info.out_meta) if not rg]
        if nondiff:
            ctx.mark_non_differentiable(*nondiff)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        info = ctx._ckpt_info
        inputs = ctx.saved_tensors
        n_in = info.n_inputs
        boundary = ctx.next_functions
        n_b = len(boundary) - 2  # the edges of ``info`` and ``outputs`` are empty
        result = [None] * n_b
        if all(g is None for g in grads):
            return (None, None) + tuple(result)
        create_graph = state.enabled
        if create_graph:
            rinputs = list(inputs)
        else:
            rinputs = [_detached(t) for t in inputs]
        args = list(info.args)
        for k, i in enumerate(info.tensor_idx):
            args[i] = rinputs[k]
        outer = get_rng_state() if info.rng_state is not None else None
        try:
            if outer is not None:
                set_rng_state(info.rng_state)
            with enable_grad(), info.recompute_ctx:
                out = info.function(*args, **info.kwargs)
        finally:
            if outer is not None:
                set_rng_state(outer)
        flat = []
        _flatten(out, flat)
        if info.check and (len(flat) != len(info.out_meta) or any(
                t._data.shape != shape or t._data.dtype != npd
                for t, (shape, npd, _) in zip(flat, info.out_meta))):
            raise RuntimeError(
                "checkpoint: recomputing the checkpointed function in backward gave tensor outputs "
                f"{[(tuple(t._data.shape), str(t._data.dtype)) for t in flat]} but the forward gave "
                f"{[(tuple(s), str(d)) for s, d, _ in info.out_meta]}; the function must compute the "
                "same thing both times (pass determinism_check='none' to skip this check)")

        # boundary nodes: key (id(node), nr) -> position among the boundary tensors (first wins)
        where = {}
        nodes = {}
        start = 0 if create_graph else n_in
        for pos in range(start, n_b):
            node, nr = boundary[pos + 2]
            if node is None:
                continue
            while node.__class__ is _Sink:  # redirected by an enclosing checkpoint's backward
                node = node.orig
            nodes[id(node)] = node
            where.setdefault((id(node), nr), pos)
        targets = []
        target_pos = []
        if not create_graph:  # fresh leaves: private, captured directly
            for k, t in enumerate(rinputs):
                if t._requires_grad:
                    targets.append((t._accumulator(), 0))
                    target_pos.append(k)
        # roots, and redirect edges into boundary nodes to sinks
        roots, root_grads = [], []
        for t, g in zip(flat, grads):
            if g is None or not t._requires_grad:
                continue
            node, nr = _target(t)
            pos = where.get((id(node), nr))
            if pos is not None:  # the function returned a boundary tensor itself
                result[pos] = g if result[pos] is None else result[pos] + g
                continue
            roots.append((node, nr))
            root_grads.append(g)
        sinks = {}
        patched = []
        try:
            seen = set()
            stack = [n for n, _ in roots if n.__class__ is not AccumulateGrad]
            while stack:
                node = stack.pop()
                if id(node) in seen:
                    continue
                seen.add(id(node))
                nf = node.next_functions
                new = None
                for i, (nxt, nr) in enumerate(nf):
                    if nxt is None:
                        continue
                    if id(nxt) in nodes:
                        sink = sinks.get(id(nxt))
                        if sink is None:
                            sink = sinks[id(nxt)] = _Sink(nxt)
                        if new is None:
                            new = list(nf)
                        new[i] = (sink, nr)
                    elif nxt.__class__ is not AccumulateGrad and id(nxt) not in seen:
                        stack.append(nxt)
                if new is not None:
                    patched.append((node, nf))
                    node.next_functions = tuple(new)
            for (nid, nr), pos in where.items():
                sink = sinks.get(nid)
                if sink is not None:
                    targets.append((sink, nr))
                    target_pos.append(pos)
            if roots and targets:
                captured = _execute(roots, root_grads, targets, False, create_graph, create_graph)
                for key, pos in zip(targets, target_pos):
                    g = captured.get(key)
                    if g is not None:
                        result[pos] = g if result[pos] is None else result[pos] + g
        finally:
            for node, nf in patched:
                node.next_functions = nf
        return (None, None) + tuple(result)


def _run_checkpointed(function, args, kwargs, preserve_rng_state, context_fn, check):
    fwd_ctx, recompute_ctx = context_fn()
    rng_state = get_rng_state() if preserve_rng_state else None
    tensor_idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    dargs = list(args)
    for i in tensor_idx:
        dargs[i] = _detached(args[i])
    acc_nodes = [dargs[i]._accumulator() for i in tensor_idx if dargs[i]._requires_grad]  # held: ids stay valid
    input_accs = {id(n): None for n in acc_nodes}
    with enable_grad(), fwd_ctx:
        out = function(*dargs, **kwargs)
    flat = []
    spec = _flatten(out, flat)
    if not any(t._requires_grad for t in flat):
        return out  # nothing to differentiate: no graph, nothing to checkpoint
    roots = [_target(t) for t in flat if t._requires_grad]
    leaves, cands, adj = _discover(roots, input_accs)
    root_ids = [id(n) for n, _ in roots]
    out_meta = [(t._data.shape, t._data.dtype, t._requires_grad) for t in flat]
    values = [Tensor._make(t._data) for t in flat]
    del out, flat, roots, dargs, input_accs, acc_nodes
    externals = _external_edges(root_ids, cands, adj)
    leaf_tensors = [t for t in (r() for r in leaves.values()) if t is not None]

    info = _Info()
    info.function = function
    info.args = tuple(None if i in tensor_idx else a for i, a in enumerate(args))
    info.tensor_idx = tensor_idx
    info.kwargs = kwargs
    info.rng_state = rng_state
    info.recompute_ctx = recompute_ctx
    info.out_meta = out_meta
    info.n_inputs = len(tensor_idx)
    info.n_leaves = len(leaf_tensors)
    info.check = check
    boundary = [args[i] for i in tensor_idx] + leaf_tensors + [_proxy(*e) for e in externals]
    res = CheckpointFunction.apply(info, values, *boundary)
    return _unflatten(spec, list(res))


def checkpoint(function, *args, use_reentrant=None, context_fn=noop_context_fn, determinism_check="default",
               debug=False, early_stop=True, preserve_rng_state=True, **kwargs):
    """Run ``function(*args, **kwargs)`` without keeping its activations; recompute them in backward.

    The graph left behind holds ``function``'s tensor arguments instead of every intermediate
    tensor computed inside it (see :func:`saved_activation_bytes`). When backward reaches it,
    ``function`` runs again with grad enabled -- with the RNG state of the forward restored, so
    dropout draws the same mask -- and the recomputed graph is differentiated. Gradients equal
    those of an unchecked run, for the arguments and for every tensor ``function`` uses without
    receiving it: parameters of modules, tensors captured by closure (leaves or not), tensors
    nested in list/dict arguments.

    Parameters
    ----------
    function : callable
        Must compute the same thing when called again (same shapes; randomness only from
        cygrad's default generator, which is restored).
    *args
        Passed to ``function``. Tensors at the top level are saved for the recomputation; they
        need not require grad. Anything else is passed through unchanged.
    use_reentrant : bool, optional
        Accepted for PyTorch compatibility; both values use the implementation described here.
        ``True`` reproduces the restrictions of PyTorch's reentrant variant: keyword arguments,
        ``context_fn`` and ``debug`` raise ``ValueError``, and when no tensor argument requires
        grad it warns ``"None of the inputs have requires_grad=True. Gradients will be None"``
        and runs ``function`` without recording (so parameters get no gradient either).
        ``None`` and ``False`` (recommended) give PyTorch's non-reentrant behaviour: parameters
        receive gradients even when no argument requires grad. cygrad does not warn when
        ``use_reentrant`` is omitted.
    context_fn : callable, optional
        Returns two context managers: the first wraps the forward call, the second the
        recomputation.
    determinism_check : {'default', 'none'}
        ``'default'`` raises ``RuntimeError`` when the recomputed outputs differ in number, shape
        or dtype from the forward's.
    debug, early_stop : bool
        Accepted and ignored (PyTorch debugging / early-stop options).
    preserve_rng_state : bool, default True
        Save the default generator's state at forward time and restore it for the
        recomputation (the generator's state after backward is unchanged).
    **kwargs
        Passed to ``function``.

    Returns
    -------
    The value of ``function(*args, **kwargs)``: a tensor, or tensors inside tuples (including
    namedtuples), lists and dicts, with non-tensor values passed through.

    Notes
    -----
    What works:

    * ``loss.backward()``, ``loss.backward(inputs=...)``, ``cygrad.autograd.grad(loss, tensors)``
      for arguments, parameters and captured tensors alike (unlike PyTorch's reentrant
      variant, ``grad`` never writes any ``.grad``);
    * ``retain_graph=True`` (backward may run several times) and ``create_graph=True``
      (higher-order gradients: the recomputation then uses the original arguments);
    * nested checkpoints, hooks on parameters (each runs once), in-place changes to an argument
      after the call are detected at backward time like for any saved tensor.

    Differences from PyTorch: the forward pass records the region's graph once to find which
    tensors it uses (so its peak memory during the forward is that of one unchecked region,
    as during the recomputation in backward) and drops it before returning. Only the default
    generator's state is preserved (as PyTorch preserves only the default CPU/CUDA states).
    ``function`` must not modify its tensor arguments in place. When ``function`` uses a
    non-leaf tensor computed before the call (a "capture"), recognising it costs a
    ``gc.collect()`` per call.

    Raises
    ------
    ValueError
        For a bad ``determinism_check``, or arguments the reentrant variant rejects.
    RuntimeError
        In backward, when the recomputation's outputs differ from the forward's.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.checkpoint import checkpoint
    >>> block = cygrad.nn.Sequential(cygrad.nn.Linear(4, 4), cygrad.nn.GELU(), cygrad.nn.Linear(4, 4))
    >>> x = cygrad.randn(2, 4, requires_grad=True)
    >>> y = checkpoint(block, x, use_reentrant=False)
    >>> y.sum().backward()
    >>> x.grad.shape, block[0].weight.grad.shape
    (cygrad.Size([2, 4]), cygrad.Size([4, 4]))
    """
    if determinism_check not in _DETERMINISM_MODES:
        raise ValueError(f"determinism_check should be one of {list(_DETERMINISM_MODES)}, "
                         f"but got {determinism_check}")
    if context_fn is None:
        context_fn = noop_context_fn
    if use_reentrant:
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
        if context_fn is not noop_context_fn or debug is not False:
            raise ValueError("Passing `context_fn` or `debug` is only supported when use_reentrant=False.")
    if not callable(function):
        raise TypeError(f"checkpoint(): function must be callable, got {type(function).__name__}")
    if not state.enabled:
        fwd_ctx, _ = context_fn()
        with fwd_ctx:
            return function(*args, **kwargs)
    if use_reentrant and not any(isinstance(a, Tensor) and a._requires_grad for a in args):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", stacklevel=2)
        with no_grad():
            return function(*args)
    return _run_checkpointed(function, args, kwargs, preserve_rng_state, context_fn,
                             determinism_check == "default")


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Run a sequence of modules/functions in ``segments`` chunks, checkpointing all but the last.

    As in PyTorch, each of the first ``segments - 1`` chunks has
    ``len(functions) // segments`` members and is run through :func:`checkpoint` (only its
    input is kept); the last chunk takes the remaining members and runs normally.

    Parameters
    ----------
    functions : nn.Sequential or list of callables
        Applied in order, each to the previous one's output.
    segments : int
        Number of chunks (>= 1).
    input : Tensor
        The input of the first function.
    use_reentrant : bool, optional
        See :func:`checkpoint`.
    preserve_rng_state : bool, default True
        Keyword-only; see :func:`checkpoint`.

    Returns
    -------
    Tensor
        The output of the last function.

    Raises
    ------
    ValueError
        For other keyword arguments or a non-positive ``segments``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.checkpoint import checkpoint_sequential
    >>> model = cygrad.nn.Sequential(*[cygrad.nn.Linear(8, 8) for _ in range(4)])
    >>> x = cygrad.randn(3, 8, requires_grad=True)
    >>> y = checkpoint_sequential(model, 2, x, use_reentrant=False)
    >>> y.shape
    cygrad.Size([3, 8])
    """
    from ..nn import Sequential
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) or segments < 1:
        raise ValueError(f"checkpoint_sequential: segments must be a positive int, got {segments!r}")

    def run_function(start, end, functions):
        def forward(input):
            for j in range(start, end + 1):
                input = functions[j](input)
            return input
        return forward

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    functions = list(functions)
    segment_size = len(functions) // segments
    end = -1
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run_function(start, end, functions), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run_function(end + 1, len(functions) - 1, functions)(input)


# ---- measuring what a graph keeps ------------------------------------------------------------------
_NODE_META = frozenset(("next_functions", "needs_input_grad", "_to_save", "_saved", "_input_meta", "_output_meta",
                        "_non_differentiable", "_dirty", "_pre_hooks", "_node_pre_hooks", "_node_hooks",
                        "_retain", "_metadata", "_ckpt_info", "orig"))


def _root_buffer(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _collect_arrays(obj, out, depth=0):
    if isinstance(obj, Tensor):
        out.append(obj._data)
    elif isinstance(obj, np.ndarray):
        out.append(obj)
    elif depth < 3 and isinstance(obj, (tuple, list)):
        for o in obj:
            _collect_arrays(o, out, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for o in obj.values():
            _collect_arrays(o, out, depth + 1)


def saved_activation_bytes(outputs, exclude=None):
    """Bytes of the arrays the autograd graph behind ``outputs`` keeps for backward (cygrad extension).

    Walks every node reachable from ``outputs`` and adds up the memory of what it holds: the
    tensors given to ``save_for_backward`` and any array or tensor an operation stored on its
    node (builtin operations keep some arrays, e.g. indices, directly on the node). Each
    buffer is counted once, at its full size, however many nodes (or views of it) hold it.
    The leaves' ``.grad``, the tensors of ``outputs`` themselves and the generator state a
    checkpoint keeps (about 130 bytes, not a tensor) are not counted.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
        Where the graph starts (e.g. a loss).
    exclude : iterable of Tensor, optional
        Tensors whose buffers are not counted, e.g. ``model.parameters()``: parameters saved by
        matmul are held anyway, so excluding them leaves the activation memory alone.

    Returns
    -------
    int
        Bytes; 0 when nothing is saved (or a backward pass freed the graph).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.checkpoint import checkpoint, saved_activation_bytes
    >>> lin = cygrad.nn.Linear(100, 100)
    >>> x = cygrad.randn(10, 100, requires_grad=True)
    >>> plain = saved_activation_bytes(lin(lin(x).tanh()).sum(), exclude=lin.parameters())
    >>> ckpt = saved_activation_bytes(checkpoint(lambda t: lin(lin(t).tanh()), x, use_reentrant=False).sum(),
    ...                               exclude=lin.parameters())
    >>> plain   # x (saved by the 1st matmul) + tanh's output (saved by tanh and the 2nd matmul)
    8000
    >>> ckpt    # x only
    4000
    """
    if isinstance(outputs, Tensor):
        outputs = (outputs,)
    skip = set()
    if exclude is not None:
        for t in exclude:
            skip.add(id(_root_buffer(t._data)))
    seen_nodes = set()
    stack = []
    for t in outputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"saved_activation_bytes(): expected Tensors, got {type(t).__name__}")
        if t._grad_fn is not None and id(t._grad_fn) not in seen_nodes:
            seen_nodes.add(id(t._grad_fn))
            stack.append(t._grad_fn)
    counted = set()
    total = 0
    while stack:
        node = stack.pop()
        arrays = []
        saved = node._saved
        if saved is not None:
            for s in saved:
                if s is not None:
                    arrays.append(s.tensor._data if s.tensor is not None else s.data)
        d = getattr(node, "__dict__", None)
        if d:
            for k, v in d.items():
                if k not in _NODE_META:
                    _collect_arrays(v, arrays)
        for a in arrays:
            buf = _root_buffer(a)
            key = id(buf)
            if key in counted or key in skip:
                continue
            counted.add(key)
            total += buf.nbytes
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt.__class__ is not AccumulateGrad and id(nxt) not in seen_nodes:
                seen_nodes.add(id(nxt))
                stack.append(nxt)
    return int(total)
