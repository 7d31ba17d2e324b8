"""Shape and indexing ops: views (reshape, permute, expand, indexing) and copies (cat, pad, ...).

Most ops here are one of four primitives with adjoint pairs:
``Reshape`` <-> reshape back, ``Permute`` <-> inverse permutation, ``Expand`` <-> sum (done by the
engine's broadcast reduction), ``Index`` <-> ``IndexAddZeros`` (scatter-add into zeros).
"""
import builtins
import math

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor, Size, _wrap_dim
from ..autograd.function import Function
from ..autograd.grad_mode import state
from .elementwise import where, as_tensor_arg


def _as_view(out, x):
    """Make ``out`` share ``x``'s version counter (it is a view of the same memory)."""
    out._version_box = x._version_box
    base = out._base = x._base if x._base is not None else x
    if out._requires_grad:
        out._ex()["view_fn"] = base._grad_fn  # see autograd.function.view_grad_fn
    return out


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = math.prod(s for s in shape if s != -1)
    if any(s < -1 for s in shape):
        raise RuntimeError(f"invalid shape dimension {min(shape)}")
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


# ---- reshape / view -----------------------------------------------------------------------------------
class Reshape(Function):
    _builtin = True
    _node_name_override = "ViewBackward0"

    @staticmethod
    def forward(ctx, x, shape, strict_view):
        xd = x._data
        ctx.shape = xd.shape
        if strict_view:
            v = xd.view()
            try:
                v.shape = shape
            except AttributeError:
                raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                                   "dimension spans across two contiguous subspaces). Use .reshape(...) "
                                   "instead.") from None
            return v
        return xd.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None, None


def _reshape(x, shape, strict):
    shape = _infer_shape(shape, x._data.size)
    if shape == x._data.shape:
        out = Reshape.apply(x, shape, False) if x._requires_grad and state.enabled else Tensor._make(x._data)
    else:
        out = Reshape.apply(x, shape, strict)
    if np.shares_memory(out._data, x._data) if out._data.size else True:
        _as_view(out, x)
    return out


def reshape(input, *shape):
    """A tensor with the same data and a new shape (a view when possible; -1 is inferred).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.arange(6).reshape(2, -1).shape
    cygrad.Size([2, 3])
    """
    return _reshape(input, _shape_arg(shape), False)


def view(input, *shape):
    """Like :func:`reshape` but always a view; raises if the strides don't allow it.

    ``view(dtype)`` reinterprets the bytes as another dtype of the same size.
    """
    if len(shape) == 1 and (isinstance(shape[0], D.dtype) or type(shape[0]).__module__ == "torch" and
                            not isinstance(shape[0], (tuple, list))):
        dt = D.to_dtype(shape[0])
        return _as_view(Tensor._make(input._data.view(dt.np)), input)
    return _reshape(input, _shape_arg(shape), True)


def view_as(input, other):
    """``input.view(other.shape)``."""
    return view(input, other.shape)


def reshape_as(input, other):
    """``input.reshape(other.shape)``."""
    return reshape(input, other.shape)


def flatten(input, start_dim=0, end_dim=-1):
    """Flatten dims ``start_dim..end_dim`` into one.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 3, 4).flatten(1).shape
    cygrad.Size([2, 12])
    """
    nd = input._data.ndim
    if nd == 0:
        return reshape(input, 1)
    s, e = _wrap_dim(start_dim, nd), _wrap_dim(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    sh = input._data.shape
    return reshape(input, sh[:s] + (math.prod(sh[s:e + 1]),) + sh[e + 1:])


def unflatten(input, dim, sizes):
    """Expand dimension ``dim`` into ``sizes``."""
    sh = input._data.shape
    d = _wrap_dim(dim, len(sh))
    sizes = tuple(sizes)
    if -1 in sizes:
        sizes = _infer_shape(sizes, sh[d])
    elif math.prod(sizes) != sh[d]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({sh[d]}) in the input tensor")
    return reshape(input, sh[:d] + sizes + sh[d + 1:])


def squeeze(input, dim=None):
    """Remove dimensions of size 1 (only ``dim``, if given).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 1, 3).squeeze().shape
    cygrad.Size([2, 3])
    """
    sh = input._data.shape
    if dim is None:
        new = tuple(s for s in sh if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {_wrap_dim(d, len(sh)) for d in dims}
        new = tuple(s for i, s in enumerate(sh) if not (i in dims and s == 1))
    return reshape(input, new)


def unsqueeze(input, dim):
    """Insert a dimension of size 1 at ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(3).unsqueeze(0).shape
    cygrad.Size([1, 3])
    """
    sh = input._data.shape
    d = _wrap_dim(dim, len(sh) + 1)
    return reshape(input, sh[:d] + (1,) + sh[d:])


# ---- permutations ---------------------------------------------------------------------------------------
class Permute(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, perm):
        ctx.perm = perm
        return np.transpose(x._data, perm)

    @staticmethod
    def backward(ctx, g):
        return g.permute(tuple(np.argsort(ctx.perm))), None


def permute(input, *dims):
    """Reorder dimensions (a view).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 3, 4).permute(2, 0, 1).shape
    cygrad.Size([4, 2, 3])
    """
    dims = _shape_arg(dims)
    nd = input._data.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
                           f"len(dims) = {len(dims)}")
    perm = tuple(_wrap_dim(d, nd) for d in dims)
    if len(set(perm)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _as_view(Permute.apply(input, perm), input)


def transpose(input, dim0, dim1):
    """Swap two dimensions (a view).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 3).transpose(0, 1).shape
    cygrad.Size([3, 2])
    """
    nd = input._data.ndim
    if nd == 0:
        _wrap_dim(dim0, 0), _wrap_dim(dim1, 0)
        return _as_view(Tensor._make(input._data) if not input._requires_grad else Permute.apply(input, ()), input)
    perm = list(range(nd))
    a, b = _wrap_dim(dim0, nd), _wrap_dim(dim1, nd)
    perm[a], perm[b] = perm[b], perm[a]
    return _as_view(Permute.apply(input, tuple(perm)), input)


swapaxes = swapdims = transpose


def t(input):
    """Transpose a tensor of at most 2 dimensions."""
    if input._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input._data.ndim}D")
    return transpose(input, 0, 1) if input._data.ndim == 2 else input


def movedim(input, source, destination):
    """Move dimension(s) ``source`` to position(s) ``destination``."""
    nd = input._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [_wrap_dim(s, nd) for s in src]
    dst = [_wrap_dim(d, nd) for d in dst]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, order)


moveaxis = movedim


# ---- expand / repeat ------------------------------------------------------------------------------------------
class Expand(Function):
    """Broadcast view; its backward returns the broadcast gradient, reduced by the engine."""

    _builtin = True

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x._data, shape)

    @staticmethod
    def backward(ctx, g):
        return g, None


def expand(input, *sizes):
    """Broadcast to ``sizes`` without copying (-1 keeps a dimension).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.tensor([[1.0], [2.0]]).expand(2, 3)
    tensor([[1., 1., 1.],
            [2., 2., 2.]])
    """
    sizes = _shape_arg(sizes)
    sh = input._data.shape
    if len(sizes) < len(sh):
        raise RuntimeError(f"expand(torch.FloatTensor{{{list(sh)}}}, size={list(sizes)}): the number of sizes provided "
                           f"({len(sizes)}) must be greater or equal to the number of dimensions in the tensor ({len(sh)})")
    lead = len(sizes) - len(sh)
    out = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                                   "non-existing dimension 0")
            out.append(s)
            continue
        cur = sh[i - lead]
        if s == -1:
            out.append(cur)
        elif cur == 1 or cur == s:
            out.append(s)
        else:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(sh)}")
    out = tuple(out)
    if out == sh:
        return input
    return _as_view(Expand.apply(input, out), input)


def expand_as(input, other):
    """``input.expand(other.shape)``."""
    return expand(input, other.shape)


def broadcast_to(input, shape):
    """``input.expand(shape)``."""
    return expand(input, shape)


def broadcast_tensors(*tensors):
    """Expand all tensors to their common broadcast shape."""
    from .elementwise import broadcast_shapes
    shape = broadcast_shapes(*[t._data.shape for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


class Repeat(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, reps):
        xd = x._data
        xd = xd.reshape((1,) * (len(reps) - xd.ndim) + xd.shape)
        ctx.shape, ctx.reps = xd.shape, reps
        ctx.orig = x._data.shape
        return np.tile(xd, reps)

    @staticmethod
    def backward(ctx, g):
        inter = []
        for r, s in zip(ctx.reps, ctx.shape):
            inter += [r, s]
        gs = g.reshape(inter).sum(tuple(range(0, 2 * len(ctx.reps), 2)))
        return gs.reshape(ctx.orig), None


def repeat(input, *sizes):
    """Tile the tensor ``sizes[i]`` times along each dimension (copies).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.tensor([1, 2]).repeat(2)
    tensor([1, 2, 1, 2])
    """
    reps = _shape_arg(sizes)
    if len(reps) < input._data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    return Repeat.apply(input, reps)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times along ``dim`` (flattened if None).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.tensor([1, 2]).repeat_interleave(2)
    tensor([1, 1, 2, 2])
    """
    if repeats is None:  # repeat_interleave(repeats_tensor)
        r = input._data.astype(np.int64)
        return Tensor._make(np.repeat(np.arange(r.size, dtype=np.int64), r))
    x = input
    if dim is None:
        x = flatten(x)
        dim = 0
    d = _wrap_dim(dim, x._data.ndim)
    n = x._data.shape[d]
    r = repeats._data if isinstance(repeats, Tensor) else repeats
    r = np.asarray(r, dtype=np.int64)
    if r.ndim and r.size not in (1, n):
        raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                           f"{r.size} and input.size({d}) = {n}")
    if np.any(r < 0):
        raise RuntimeError("repeats can not be negative")
    idx = np.repeat(np.arange(n, dtype=np.int64), r.reshape(-1) if r.ndim else int(r))
    return index_select(x, d, Tensor._make(idx))


# ---- indexing ---------------------------------------------------------------------------------------------------
def _conv_key_item(k):
    if isinstance(k, Tensor):
        kd = k._data
        if kd.dtype.kind == "f":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        if kd.dtype == np.uint8:
            kd = kd.astype(bool)
        if kd.ndim == 0 and kd.dtype.kind in "iu":
            return int(kd)
        return kd
    if isinstance(k, (list,)):
        a = np.asarray([int(v) if isinstance(v, Tensor) else v for v in k])
        if a.dtype.kind == "f":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return a
    if isinstance(k, np.ndarray) and k.dtype.kind == "f":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    if isinstance(k, (bool, np.bool_)):
        return np.asarray(k)
    return k


def convert_key(key):
    """Turn a Python/tensor index into a NumPy index; also return whether it is basic (a view)."""
    if isinstance(key, tuple):
        k = tuple(_conv_key_item(x) for x in key)
    else:
        k = _conv_key_item(key)
    items = k if isinstance(k, tuple) else (k,)
    basic = all(x is None or x is Ellipsis or isinstance(x, (int, slice, np.integer)) for x in items)
    for x in items:
        if isinstance(x, slice) and x.step is not None and x.step <= 0:
            raise ValueError("step must be greater than zero")
    return k, basic


class Index(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, key, basic, copy):
        xd = x._data
        ctx.shape, ctx.key, ctx.basic = xd.shape, key, basic
        ctx.npd = xd.dtype
        try:
            out = xd[key]
        except IndexError as e:
            msg = str(e).replace("axis", "dimension")
            if msg.startswith("too many indices"):
                msg = f"too many indices for tensor of dimension {xd.ndim}"
            raise IndexError(msg) from None
        if basic and not copy and not isinstance(out, np.ndarray):
            kt = key if isinstance(key, tuple) else (key,)
            if not any(k is Ellipsis for k in kt):
                out = xd[kt + (Ellipsis,)]  # a 0-dim view instead of a NumPy scalar (as torch)
        if basic and isinstance(out, np.ndarray) and not copy:
            return out
        return np.array(out, copy=True) if isinstance(out, np.ndarray) else np.asarray(out)

    @staticmethod
    def backward(ctx, g):
        return IndexAddZeros.apply(g, ctx.key, ctx.basic, ctx.shape), None, None, None


class IndexAddZeros(Function):
    """zeros(shape) with ``g`` added at ``key`` (repeated indices accumulate): Index's adjoint."""

    _builtin = True
    _node_name_override = "IndexBackward0"

    @staticmethod
    def forward(ctx, g, key, basic, shape):
        gd = g._data
        z = np.zeros(shape, gd.dtype)
        if basic:
            z[key] = gd
        else:
            np.add.at(z, key, gd)
        ctx.key, ctx.basic = key, basic
        return z

    @staticmethod
    def backward(ctx, gg):
        return Index.apply(gg, ctx.key, ctx.basic, False), None, None, None


def _split_int_key(k):
    """torch applies integer indices before advanced (tensor) ones; NumPy treats them as advanced.

    They differ in where the indexed dimensions go when an int and an index array are separated
    by a slice (``x[1, :, idx]``). Returns (basic key, rest) to index in two steps, or None.
    """
    items = k if isinstance(k, tuple) else (k,)
    if not any(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in items) or \
            not any(isinstance(x, np.ndarray) for x in items) or \
            any(isinstance(x, np.ndarray) and x.ndim == 0 for x in items):
        return None
    k1, k2 = [], []
    for x in items:
        if isinstance(x, np.ndarray):
            k1.extend([slice(None)] * (x.ndim if x.dtype == np.bool_ else 1))
            k2.append(x)
        elif x is None:
            k1.append(None)
            k2.append(slice(None))
        elif x is Ellipsis:
            k1.append(x)
            k2.append(x)
        elif isinstance(x, slice):
            k1.append(x)
            k2.append(slice(None))
        else:  # an int: its dimension is removed by the first step
            k1.append(x)
    return tuple(k1), tuple(k2)


def getitem(input, key):
    """``input[key]``: basic indexing gives a view; integer/bool tensor indexing a copy."""
    k, basic = convert_key(key)
    if not basic:
        split = _split_int_key(k)
        if split is not None:
            return getitem(getitem(input, split[0]), split[1])
    out = Index.apply(input, k, basic, False)
    if basic:
        _as_view(out, input)
        out._ex()["view_key"] = k
    return out


class IndexPut(Function):
    """Out-of-place ``x[key] = v`` (``__setitem__`` applies it in place)."""

    _builtin = True
    _node_name_override = "IndexPutBackward0"

    @staticmethod
    def forward(ctx, x, v, key, accumulate):
        xd = x._data
        out = xd.copy()
        vd = v._data if isinstance(v, Tensor) else v
        if isinstance(vd, np.ndarray) and vd.dtype != xd.dtype:
            vd = vd.astype(xd.dtype)
        try:
            if accumulate:
                np.add.at(out, key, vd)
            else:
                out[key] = vd
        except ValueError as e:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(np.shape(vd))} cannot be broadcast "
                               f"to indexing result of shape {list(np.shape(out[key]))}") from None
        except IndexError as e:
            raise IndexError(str(e).replace("axis", "dimension")) from None
        ctx.key, ctx.accumulate, ctx.shape = key, accumulate, xd.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gx = None
        n = ctx.needs_input_grad
        if n[0]:
            if ctx.accumulate:
                gx = g
            else:
                mask = np.ones(ctx.shape, dtype=bool)
                mask[ctx.key] = False
                gx = where(Tensor._make(mask), g, 0.0)
        gv = None
        if n[1]:
            gv = Index.apply(g, ctx.key, False, True)
        return gx, gv, None, None


def index_put(input, indices, values, accumulate=False):
    """Out-of-place ``input[indices] = values`` (or ``+=`` with ``accumulate=True``)."""
    k, _ = convert_key(tuple(indices))
    if not isinstance(values, Tensor):
        values = as_tensor_arg(values, input)
    return IndexPut.apply(input, values, k, accumulate)


def setitem(self, key, value):
    """``self[key] = value`` in place (differentiable for non-leaf tensors)."""
    from .inplace import inplace_apply
    k, _ = convert_key(key)
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        value = Tensor._make(value)
    if isinstance(value, Tensor) and value._data.dtype != self._data.dtype and value._data.dtype.kind == "f" \
            and self._data.dtype.kind == "f":
        value = value.to(self.dtype)
    inplace_apply(self, IndexPut, value, k, False)


def index_select(input, dim, index):
    """Select entries along ``dim`` at the integer ``index`` (a 1-D tensor).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.arange(6).reshape(2, 3).index_select(1, cygrad.tensor([2, 0]))
    tensor([[2, 0],
            [5, 3]])
    """
    d = _wrap_dim(dim, input._data.ndim)
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if idx.dtype.kind not in "iu":
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    key = (slice(None),) * d + (idx.reshape(-1),)
    return Index.apply(input, key, False, False)


def _along_key(index, dim):
    """A NumPy advanced index addressing ``out[i][j][index[i][j][k]]`` along ``dim`` (gather/scatter)."""
    nd = index.ndim
    key = []
    for d in range(nd):
        if d == dim:
            key.append(index)
        else:
            shape = [1] * nd
            shape[d] = index.shape[d]
            key.append(np.arange(index.shape[d]).reshape(shape))
    return tuple(key)


def _check_along(name, input, dim, index):
    if not isinstance(index, Tensor) or index._data.dtype not in (np.int64, np.int32):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    if index._data.ndim != input._data.ndim and not (index._data.ndim <= 1 and input._data.ndim <= 1):
        raise RuntimeError(f"Index tensor must have the same number of dimensions as {'input' if name == 'gather' else 'self'} tensor")
    d = _wrap_dim(dim, input._data.ndim)
    for i, (a, b) in enumerate(zip(index._data.shape, input._data.shape)):
        if i != d and a > b:
            raise RuntimeError(f"Size does not match at dimension {i} expected index {list(index._data.shape)} to be "
                               f"smaller than self {list(input._data.shape)} apart from dimension {d}")
    idx = index._data
    n = input._data.shape[d] if input._data.ndim else 1
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise RuntimeError(f"index {int(idx.max()) if idx.max() >= n else int(idx.min())} is out of bounds for "
                           f"dimension {d} with size {n}")
    return d


def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j] = input[i][index[i][j]]`` along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.gather(cygrad.tensor([[1, 2], [3, 4]]), 1, cygrad.tensor([[0, 0], [1, 0]]))
    tensor([[1, 1],
            [4, 3]])
    """
    d = _check_along("gather", input, dim, index)
    return Index.apply(input, _along_key(index._data, d), False, False)


class ScatterAddZeros(Function):
    """zeros(shape) with ``src`` added along ``dim`` at ``index``: gather's adjoint."""

    _builtin = True
    _node_name_override = "ScatterAddBackward0"

    @staticmethod
    def forward(ctx, src, key, shape):
        z = np.zeros(shape, src._data.dtype)
        np.add.at(z, key, _crop(src._data, np.broadcast_shapes(*[k.shape for k in key])))
        ctx.key = key
        return z

    @staticmethod
    def backward(ctx, gg):
        return Index.apply(gg, ctx.key, False, False), None, None


def _crop(a, shape):
    return a[tuple(slice(0, s) for s in shape)]


def zeros_scatter(g, dim, index, shape):
    """zeros(shape) with ``g`` scattered (added) along ``dim`` at ``index``."""
    return ScatterAddZeros.apply(g, _along_key(index._data, dim), shape)


def scatter_add(input, dim, index, src):
    """``input`` plus ``src`` added along ``dim`` at ``index`` (repeated indices accumulate).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(3).scatter_add(0, cygrad.tensor([0, 0, 2]), cygrad.ones(3))
    tensor([2., 0., 1.])
    """
    d = _check_along("scatter_add", input, dim, index)
    return input + ScatterAddZeros.apply(src, _along_key(index._data, d), input._data.shape)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """``input`` with values from ``src`` (or the scalar ``value``) written along ``dim`` at ``index``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(3).scatter(0, cygrad.tensor([2]), cygrad.tensor([5.0]))
    tensor([0., 0., 5.])
    """
    if src is not None and not isinstance(src, Tensor):
        value, src = src, None
    d = _check_along("scatter", input, dim, index)
    key = _along_key(index._data, d)
    if reduce is not None:
        if reduce == "add":
            s = src if src is not None else as_tensor_arg(value, input).expand(index.shape)
            return scatter_add(input, d, index, s)
        if reduce == "multiply":
            s = src if src is not None else as_tensor_arg(value, input).expand(index.shape)
            factors = np.ones(input._data.shape, input._data.dtype)
            np.multiply.at(factors, key, _crop(s._data, index._data.shape))
            return input * Tensor._make(factors)
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
    if src is None:
        v = as_tensor_arg(value, input)
        if v._data.dtype != input._data.dtype:
            v = Tensor._make(v._data.astype(input._data.dtype))
        return IndexPut.apply(input, v, key, False)
    sub = Index.apply(src, tuple(np.ogrid[tuple(slice(0, n) for n in index._data.shape)]), False, False) \
        if src._data.shape != index._data.shape else src
    return IndexPut.apply(input, sub, key, False)


def masked_fill(input, mask, value):
    """``input`` with ``value`` where the bool ``mask`` is True (mask broadcasts).

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor([1.0, 2.0, 3.0])
    >>> x.masked_fill(x > 1.5, 0.0)
    tensor([1., 0., 0.])
    """
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        dt = D.c_name(mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {dt}")
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value._data.ndim} dimension(s).")
        v = value if value._data.dtype == input._data.dtype else value.to(input.dtype)
    else:
        v = Tensor._make(np.asarray(value, dtype=input._data.dtype))
    out = where(mask, v, input)
    if out._data.shape != input._data.shape:
        raise RuntimeError(f"The size of tensor a ({mask._data.shape}) must match the size of tensor b "
                           f"({input._data.shape}) at non-singleton dimension 0")
    return out


def masked_select(input, mask):
    """1-D tensor of the elements of ``input`` where ``mask`` is True (both broadcast)."""
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask")
    x, m = broadcast_tensors_(input, mask)
    return Index.apply(x, m._data, False, False)


def broadcast_tensors_(a, b):
    from .elementwise import broadcast_shapes
    shape = broadcast_shapes(a._data.shape, b._data.shape)
    return expand(a, shape), expand(b, shape)


def nonzero(input, *, as_tuple=False):
    """Indices of non-zero elements: an (n, ndim) int64 tensor, or a tuple of 1-D tensors.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nonzero(cygrad.tensor([0, 3, 0, 4]))
    tensor([[1],
            [3]])
    """
    nz = np.nonzero(input._data) if input._data.ndim else np.nonzero(input._data.reshape(1))
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64)) for i in nz)
    return Tensor._make(np.stack(nz, axis=1).astype(np.int64) if nz else np.zeros((0, 0), np.int64))


def argwhere(input):
    """``nonzero(input)``."""
    return nonzero(input)


def narrow(input, dim, start, length):
    """The view ``input[..., start:start+length, ...]`` along ``dim``."""
    d = _wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    if isinstance(start, Tensor):
        start = int(start)
    if start < 0:
        start += n
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


def select(input, dim, index):
    """The view ``input[..., index, ...]`` along ``dim`` (that dimension removed)."""
    d = _wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(input._data.shape)} "
                         f"at dimension {d}")
    return getitem(input, (slice(None),) * d + (int(index),))


def unbind(input, dim=0):
    """Tuple of all slices along ``dim``."""
    d = _wrap_dim(dim, input._data.ndim)
    return tuple(select(input, d, i) for i in range(input._data.shape[d]))


def split(tensor, split_size_or_sections, dim=0):
    """Split into chunks of ``split_size`` (last may be smaller) or of the given section sizes.

    Examples
    --------
    >>> import cygrad
    >>> [t.tolist() for t in cygrad.arange(5).split(2)]
    [[0, 1], [2, 3], [4]]
    """
    d = _wrap_dim(dim, tensor._data.ndim)
    n = tensor._data.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0 and not (s == 0 and n == 0):
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if s else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


def tensor_split(input, indices_or_sections, dim=0):
    """Split into ``n`` nearly equal parts or at the given indices."""
    d = _wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    else:
        idx = [0] + list(indices_or_sections) + [n]
        sizes = [builtins.max(0, builtins.min(b, n) - builtins.min(a, n)) for a, b in zip(idx[:-1], idx[1:])]
    return split(input, sizes, d)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of size ``ceil(n / chunks)`` (fewer if it divides so)."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    d = _wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    size = -(-n // chunks) if n else 0
    if size == 0:
        return tuple(narrow(input, d, 0, 0) for _ in range(builtins.min(chunks, 1) if n == 0 else chunks))
    return split(input, size, d)


class Cat(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, dim, *tensors):
        arrs = [t._data for t in tensors]
        rt = D.result_type(*[t for t in tensors if t._data.ndim]) or D.result_type(*tensors)
        arrs = [a if a.dtype == rt.np else a.astype(rt.np) for a in arrs]
        ctx.sizes = [a.shape[dim] for a in arrs]
        ctx.dim = dim
        return np.concatenate(arrs, axis=dim)

    @staticmethod
    def backward(ctx, g):
        out, start = [None], 0
        for s in ctx.sizes:
            out.append(narrow(g, ctx.dim, start, s))
            start += s
        return tuple(out)


def cat(tensors, dim=0, *, out=None):
    """Concatenate tensors along an existing dimension.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.cat([cygrad.zeros(1, 2), cygrad.ones(1, 2)]).shape
    cygrad.Size([2, 2])
    """
    if isinstance(tensors, Tensor):
        raise TypeError("cat(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    # legacy: 1-D empty tensors are skipped
    kept = [t for t in tensors if not (t._data.ndim == 1 and t._data.shape[0] == 0)] or tensors[:1]
    if len(kept) < len(tensors):  # skipped empty tensors still take part in type promotion
        rt = D.result_type(*tensors)
        kept = [t if t.dtype == rt else t.to(rt) for t in kept]
    ref = kept[0]
    nd = ref._data.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _wrap_dim(dim, nd)
    for i, t in enumerate(kept):
        if t._data.ndim != nd:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {nd} and {t._data.ndim}")
        for j in range(nd):
            if j != d and t._data.shape[j] != ref._data.shape[j]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref._data.shape[j]} but got size {t._data.shape[j]} for tensor number {i} "
                                   "in the list.")
    from .elementwise import _out
    return _out(Cat.apply(d, *kept), out)


concat = concatenate = cat


def stack(tensors, dim=0, *, out=None):
    """Stack equally-shaped tensors along a new dimension.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.stack([cygrad.zeros(2), cygrad.ones(2)], dim=1).shape
    cygrad.Size([2, 2])
    """
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = tensors[0]._data.shape
    for i, t in enumerate(tensors):
        if t._data.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} at entry 0 and "
                               f"{list(t._data.shape)} at entry {i}")
    d = _wrap_dim(dim, len(s0) + 1)
    from .elementwise import _out
    return _out(cat([unsqueeze(t, d) for t in tensors], d), out)


def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t if t.ndim > 1 else t.unsqueeze(0) for t in tensors], 0)


def _tri(input, diagonal, lower):
    if input._data.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    r, c = input._data.shape[-2:]
    m = np.tri(r, c, diagonal, dtype=bool) if lower else ~np.tri(r, c, diagonal - 1, dtype=bool)
    z = Tensor._make(np.zeros((), input._data.dtype))
    return where(Tensor._make(m), input, z)


def tril(input, diagonal=0):
    """Lower triangle of the last two dimensions (the rest zeroed).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.tril(cygrad.ones(2, 2))
    tensor([[1., 0.],
            [1., 1.]])
    """
    return _tri(input, diagonal, True)


def triu(input, diagonal=0):
    """Upper triangle of the last two dimensions (the rest zeroed).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.triu(cygrad.ones(2, 2))
    tensor([[1., 1.],
            [0., 1.]])
    """
    return _tri(input, diagonal, False)


def flip(input, dims):
    """Reverse the order of elements along ``dims`` (a copy, as in torch).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.flip(cygrad.tensor([1, 2, 3]), [0])
    tensor([3, 2, 1])
    """
    nd = input._data.ndim
    dims = [dims] if isinstance(dims, int) else list(dims)
    ds = {_wrap_dim(d, nd) for d in dims}
    key = tuple(slice(None, None, -1) if i in ds else slice(None) for i in range(nd))
    return Index.apply(input, key, True, True)


def fliplr(input):
    return flip(input, [1])


def flipud(input):
    return flip(input, [0])


class Roll(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return np.roll(x._data, shifts, dims)

    @staticmethod
    def backward(ctx, g):
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return Roll.apply(g, neg, ctx.dims), None, None


def roll(input, shifts, dims=None):
    """Roll elements along ``dims`` (the flattened tensor when None) by ``shifts``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.roll(cygrad.tensor([1, 2, 3]), 1)
    tensor([3, 1, 2])
    """
    if dims is None:
        return roll(input.flatten(), shifts, 0).view(input.shape)
    if isinstance(shifts, (tuple, list)) != isinstance(dims, (tuple, list)) or \
            (isinstance(shifts, (tuple, list)) and len(shifts) != len(dims)):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {shifts}, dims:{dims}")
    nd = input._data.ndim
    if isinstance(dims, (tuple, list)):
        dims = tuple(_wrap_dim(d, nd) for d in dims)
        shifts = tuple(int(s) for s in shifts)
    else:
        dims = _wrap_dim(dims, nd)
    return Roll.apply(input, shifts, dims)


class ConstantPad(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, widths, value):
        xd = x._data
        ctx.key = tuple(slice(a, a + s) for (a, _), s in zip(widths, xd.shape))
        return np.pad(xd, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return Index.apply(g, ctx.key, True, False), None, None


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dimensions; ``pad = (left_last, right_last, left_prev, ...)``.

    Modes: ``'constant'`` (with ``value``; negative pads crop), ``'reflect'``, ``'replicate'``,
    ``'circular'``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.pad(cygrad.tensor([[1.0, 2.0]]), (1, 1), value=0.0)
    tensor([[0., 1., 2., 0.]])
    """
    pad = tuple(int(p) for p in pad)
    nd = input._data.ndim
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > nd:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {nd}")
    pairs = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        pairs[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        x = input
        if any(a < 0 or b < 0 for a, b in pairs):
            key = tuple(slice(builtins.max(-a, 0), s - builtins.max(-b, 0)) for (a, b), s in zip(pairs, x._data.shape))
            x = getitem(x, key)
            pairs = [(builtins.max(a, 0), builtins.max(b, 0)) for a, b in pairs]
        return ConstantPad.apply(x, tuple(pairs), 0 if value is None else value)
    if value not in (None, 0, 0.0):
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    npmode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(mode)
    if npmode is None:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    key = []
    padded = [i for i, p in enumerate(pairs) if p != (0, 0)]
    for i, (a, b) in enumerate(pairs):
        n = input._data.shape[i]
        if i not in padded:
            key.append(slice(None))
            continue
        if mode == "reflect" and (a >= n or b >= n):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({a}, {b}) at dimension {i} of input {list(input._data.shape)}")
        if mode == "circular" and (a > n or b > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if n == 0:
            raise RuntimeError(f"{mode} padding of an empty dimension {i} is not possible")
        idx = np.pad(np.arange(n), (a, b), mode=npmode)
        key.append(idx)
    # turn the per-dimension index arrays into an open mesh
    arrays = [k for k in key if isinstance(k, np.ndarray)]
    mesh = np.ix_(*arrays)
    it = iter(mesh)
    full = []
    for k in key:
        full.append(next(it) if isinstance(k, np.ndarray) else k)
    if builtins.any(isinstance(k, slice) for k in full[padded[0]:padded[-1] + 1]):
        # keep advanced indices adjacent: index the padded dims one at a time
        out = input
        for i in padded:
            k = [slice(None)] * nd
            k[i] = key[i]
            out = Index.apply(out, tuple(k), False, False)
        return out
    return Index.apply(input, tuple(full), False, False)
