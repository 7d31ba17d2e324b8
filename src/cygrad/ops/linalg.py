"""Matrix products (BLAS gemm from the Cython kernel ``_C.linalg``) and einsum."""
import string

import numpy as np

from .._tensor import Tensor
from ..autograd.function import Function
from .._C import linalg as _K
from .elementwise import _out
from ..autograd.grad_mode import state


def _as3d(x, batch):
    """View ``x`` (..., r, c) as (prod(batch), r, c), broadcasting its batch dims."""
    r, c = x.shape[-2:]
    if x.shape[:-2] != batch:
        x = np.broadcast_to(x, batch + (r, c))
    x3 = x.reshape((-1, r, c))
    it = x3.itemsize
    s1, s2 = x3.strides[1:]
    if not (s2 == it or c == 1 or s1 == it or r == 1) or s1 == 0 or s2 == 0:  # BLAS needs non-zero strides
        x3 = np.ascontiguousarray(x3)
    return x3


def _gemm(a, b):
    """NumPy-array matmul of >=2-D arrays with broadcast batch dims through the BLAS kernel."""
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        return np.matmul(a, b)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:
        # fold the batch into the rows: one large gemm
        out = np.empty(a.shape[:-1] + (n,), a.dtype)
        if out.size:
            _K.gemm_batched(a.reshape(1, -1, k), _as3d(b, ()).reshape(1, k, n) if b.ndim == 2 else b,
                            out.reshape(1, -1, n), False, False)
        return out
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    out = np.empty(batch + (m, n), a.dtype)
    if out.size == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    _K.gemm_batched(_as3d(a, batch), _as3d(b, batch), out.reshape(-1, m, n), False, False)
    return out


class MatMul(Function):
    _builtin = True
    _node_name_override = "MmBackward0"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _gemm(a._data, b._data)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        gd = g._data
        if n[0] and n[1] and not state.enabled and 0 in gd.strides and gd.size > 1:
            # a broadcast gradient (e.g. from sum()) would be copied for BLAS once per product
            g = Tensor._make(np.ascontiguousarray(gd))
        return (g @ b.mT if n[0] else None), (a.mT @ g if n[1] else None)


def _check_mm(a, b, name="matmul"):
    for t, nm in ((a, "input"), (b, "other")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}(): argument '{nm}' must be Tensor, not {type(t).__name__}")
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_cname(a)} != {_cname(b)}")


def _cname(t):
    return {"float32": "float", "float64": "double", "int64": "long int", "int32": "int"}.get(t.dtype.name, t.dtype.name)


def matmul(input, other, *, out=None):
    """Matrix product with NumPy/PyTorch semantics (1-D promotion, broadcast batch dims).

    Examples
    --------
    >>> import cygrad
    >>> a = cygrad.ones(2, 3); b = cygrad.ones(3, 4)
    >>> (a @ b).shape
    cygrad.Size([2, 4])
    """
    _check_mm(input, other)
    da, db = input._data.ndim, other._data.ndim
    if da == 0 or db == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D")
    if da == 1 and db == 1:
        return _out(dot(input, other), out)
    a = input.unsqueeze(0) if da == 1 else input
    b = other.unsqueeze(-1) if db == 1 else other
    ka, kb = a._data.shape[-1], b._data.shape[-2]
    if ka != kb and da >= 3 and db >= 3:  # torch broadcasts the batch dims before checking the matrices
        from .elementwise import broadcast_shapes
        broadcast_shapes(a._data.shape[:-2], b._data.shape[:-2])
    if ka != kb:
        if da == 2 and db == 1:
            raise RuntimeError(f"size mismatch, got input ({input._data.shape[0]}), mat "
                               f"({input._data.shape[0]}x{ka}), vec ({kb})")
        sa = input._data.shape if da > 1 else (1, ka)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({np.prod(sa[:-1]) if da > 2 and db == 2 else sa[-2]}x{ka} "
                           f"and {kb}x{b._data.shape[-1]})")
    try:
        np.broadcast_shapes(a._data.shape[:-2], b._data.shape[:-2])
    except ValueError:
        from .elementwise import broadcast_shapes
        broadcast_shapes(a._data.shape[:-2], b._data.shape[:-2])
    r = MatMul.apply(a, b)
    if da == 1:
        r = r.squeeze(-2)
    if db == 1:
        r = r.squeeze(-1)
    return _out(r, out)


def mm(input, mat2, *, out=None):
    """Product of two 2-D matrices.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.mm(cygrad.eye(2), cygrad.ones(2, 3)).shape
    cygrad.Size([2, 3])
    """
    _check_mm(input, mat2, "mm")
    if input._data.ndim != 2:
        raise RuntimeError(f"self must be a matrix")
    if mat2._data.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix")
    return matmul(input, mat2, out=out)


def bmm(input, mat2, *, out=None):
    """Batched product of (b, n, m) and (b, m, p) tensors.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.bmm(cygrad.ones(4, 2, 3), cygrad.ones(4, 3, 5)).shape
    cygrad.Size([4, 2, 5])
    """
    _check_mm(input, mat2, "bmm")
    if input._data.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor")
    if mat2._data.ndim != 3:
        raise RuntimeError(f"batch2 must be a 3D tensor")
    b, n, m = input._data.shape
    if mat2._data.shape[:2] != (b, m):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{b}, {m}] but got: "
                           f"[{mat2._data.shape[0]}, {mat2._data.shape[1]}].")
    return _out(MatMul.apply(input, mat2), out)


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat1 @ mat2)``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.addmm(cygrad.zeros(2, 2), cygrad.eye(2), cygrad.eye(2))
    tensor([[1., 0.],
            [0., 1.]])
    """
    p = mm(mat1, mat2)
    if alpha != 1:
        p = p * alpha
    return _out(p + (input if beta == 1 else input * beta) if beta != 0 else p + input * 0, out)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    p = bmm(batch1, batch2)
    return (p * alpha if alpha != 1 else p) + (input * beta if beta != 1 else input)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``."""
    return input * beta + matmul(mat, vec) * alpha


def mv(input, vec):
    """Matrix-vector product."""
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {vec.ndim}")
    return matmul(input, vec)


def outer(input, vec2):
    """Outer product of two 1-D tensors.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.outer(cygrad.tensor([1.0, 2.0]), cygrad.tensor([1.0, 10.0]))
    tensor([[ 1., 10.],
            [ 2., 20.]])
    """
    if input._data.ndim != 1 or vec2._data.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {input._data.ndim}-D and {vec2._data.ndim}-D")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


def dot(input, other, *, out=None):
    """Inner product of two 1-D tensors.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.dot(cygrad.tensor([1.0, 2.0]), cygrad.tensor([3.0, 4.0]))
    tensor(11.)
    """
    if input._data.ndim != 1 or other._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input._data.ndim}D and {other._data.ndim}D tensors")
    if input._data.dtype != other._data.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {_cname(input).capitalize()} "
                           f"and {_cname(other).capitalize()}")
    n, m = input._data.shape[0], other._data.shape[0]
    if n != m:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same number "
                           f"of elements, but got {n} and {m} elements respectively")
    return _out((input * other).sum(), out)


def inner(input, other):
    """Sum-product over the last dimension: shape ``input.shape[:-1] + other.shape[:-1]``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.inner(cygrad.ones(2, 3), cygrad.ones(4, 3)).shape
    cygrad.Size([2, 4])
    """
    if input._data.ndim == 0 or other._data.ndim == 0:
        return input * other
    sa, sb = input._data.shape, other._data.shape
    if sa[-1] != sb[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                           f"{list(sa)} and {list(sb)}")
    if len(sa) == 1 and len(sb) == 1:
        return dot(input, other)
    k = sa[-1]
    return matmul(input.reshape(-1, k), other.reshape(-1, k).mT).reshape(sa[:-1] + sb[:-1])


def vdot(input, other):
    return dot(input, other)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` (``torch.nn.functional.linear``).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.linear(cygrad.ones(5, 3), cygrad.ones(2, 3), cygrad.zeros(2)).shape
    cygrad.Size([5, 2])
    """
    if weight._data.ndim not in (1, 2):
        raise RuntimeError(f"linear(): weight must be 1-D or 2-D, got {weight._data.ndim}-D")
    if input._data.shape[-1:] != weight._data.shape[-1:]:
        sa = input._data.shape
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({int(np.prod(sa[:-1]))}x{sa[-1] if sa else 1} "
                           f"and {weight._data.shape[-1]}x{weight._data.shape[0]})")
    if _linear_fusable(input, weight, bias):
        return Linear.apply(input, weight, bias)
    out = matmul(input, weight.mT if weight._data.ndim == 2 else weight)
    if bias is not None:
        out = out + bias
    return out


def _linear_fusable(x, w, b):
    """Whether ``F.linear`` can run the fused kernel: float32/float64 throughout, a 2-D weight,
    a matching 1-D bias (or none) and at least one input row."""
    xd, wd = x._data, w._data
    dt = xd.dtype
    return (dt.char in "fd" and wd.dtype == dt and wd.ndim == 2 and xd.ndim >= 1 and xd.size > 0
            and wd.size > 0 and (b is None or (isinstance(b, Tensor) and b._data.dtype == dt
                                               and b._data.shape == wd.shape[:1])))


def _rows(a, k):
    """``a`` as a BLAS-compatible 2-D (rows, k) array (a view when possible)."""
    a2 = a.reshape(-1, k)
    if not _K.blas_compatible(a2[None]):
        a2 = np.ascontiguousarray(a2)
    return a2


class Linear(Function):
    """``y = x @ W.T + b``: one gemm forward (the bias preloaded as ``beta * C``); backward
    ``dx = g @ W``, ``dW = g.T @ x`` (in ``W``'s row-major layout) and ``db = g.sum(rows)``."""

    _builtin = True
    _node_name_override = "AddmmBackward0"

    @staticmethod
    def forward(ctx, x, w, b):
        xd, wd = x._data, w._data
        n_out, n_in = wd.shape
        x2 = _rows(xd, n_in)
        out = np.empty((x2.shape[0], n_out), xd.dtype)
        if b is not None:
            out[...] = b._data
        _K.gemm_batched(x2[None], _rows(wd, n_in)[None], out[None], False, True, 1.0,
                        0.0 if b is None else 1.0)
        ctx.save_for_backward(x, w)
        return out.reshape(xd.shape[:-1] + (n_out,))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        need_b = ctx.needs_input_grad[2]
        n_out, n_in = w._data.shape
        if state.enabled:  # differentiable path (create_graph=True)
            g2, x2 = g.reshape(-1, n_out), x.reshape(-1, n_in)
            return (g.matmul(w) if need_x else None, g2.mT.matmul(x2) if need_w else None,
                    g2.sum(0) if need_b else None)
        g2 = _rows(g._data, n_out)
        gx = gw = gb = None
        if need_x:
            gxd = np.empty((g2.shape[0], n_in), g2.dtype)
            _K.gemm_batched(g2[None], _rows(w._data, n_in)[None], gxd[None], False, False)
            gx = Tensor._make(gxd.reshape(x._data.shape))
        if need_w:
            gwd = np.empty((n_out, n_in), g2.dtype)
            _K.gemm_batched(g2[None], _rows(x._data, n_in)[None], gwd[None], True, False)
            gw = Tensor._make(gwd)
        if need_b:
            gb = Tensor._make(g2.sum(0))
        return gx, gw, gb


# ---- einsum ----------------------------------------------------------------------------------------------------
def _parse_einsum(eq, operands):
    eq = eq.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum(): more operands were provided than specified in the equation"
                         if len(operands) > len(terms) else
                         "einsum(): fewer operands were provided than specified in the equation")
    used = set(c for c in eq if c.isalpha())
    free = [c for c in string.ascii_letters if c not in used]
    ell_n = 0
    for t, op in zip(terms, operands):
        if "..." in t:
            ell_n = max(ell_n, op.ndim - (len(t) - 3))
    ell = "".join(free[:ell_n])
    new_terms = []
    for t, op in zip(terms, operands):
        if "..." in t:
            k = op.ndim - (len(t) - 3)
            t = t.replace("...", ell[ell_n - k:] if k else "")
        if len(t) != op.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t)}) does not match the "
                               f"number of dimensions ({op.ndim}) for operand {len(new_terms)}"
                               + (" and no ellipsis was given" if "..." not in t else ""))
        new_terms.append(t)
    sizes = {}
    for i, (t, op) in enumerate(zip(new_terms, operands)):
        for c, n in zip(t, op.shape):
            if sizes.setdefault(c, n) != n and n != 1 and sizes[c] != 1:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} which does not broadcast "
                                   f"with previously seen size {sizes[c]}")
    if rhs is None:
        counts = {}
        for t in new_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        rhs = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        rhs = rhs.replace("...", ell)
    return new_terms, rhs


class Einsum(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, eq, *ops):
        terms, rhs = _parse_einsum(eq, [o._data for o in ops])
        ctx.terms, ctx.rhs = terms, rhs
        ctx.save_for_backward(*ops)
        return np.einsum(",".join(terms) + "->" + rhs, *[o._data for o in ops], optimize=len(ops) > 2)

    @staticmethod
    def backward(ctx, g):
        ops = ctx.saved_tensors
        grads = [None]
        for i, (t, op) in enumerate(zip(ctx.terms, ops)):
            if not ctx.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            full_t = t
            if len(set(t)) != len(t):  # a diagonal: differentiate w.r.t. the unique-index view first
                t = "".join(dict.fromkeys(t))
            others = [(ctx.terms[j], ops[j]) for j in range(len(ops)) if j != i]
            avail = set(ctx.rhs).union(*[set(s) for s, _ in others]) if others else set(ctx.rhs)
            target = "".join(c for c in t if c in avail)
            eq = ",".join([ctx.rhs] + [s for s, _ in others]) + "->" + target
            gi = einsum(eq, g, *[o for _, o in others])
            if target != t:  # indices summed only in this operand: broadcast back
                shape = [op.shape[k] if c in avail else 1 for k, c in enumerate(t)]
                perm_src = [c for c in t if c in avail]
                gi = gi.reshape([op.shape[full_t.index(c)] if c in avail else 1 for c in t]).expand(
                    [op.shape[full_t.index(c)] for c in t])
            if full_t != t:
                gi = _einsum_undiag(gi, t, full_t, op)
            grads.append(gi)
        return tuple(grads)


def _einsum_undiag(g, u, t, op):
    """Place ``g`` (indexed by the unique subscripts ``u``) on the diagonal described by ``t``
    (which repeats some subscripts); zero elsewhere. Differentiable in ``g``."""
    used = set(t)
    fresh = iter(c for c in string.ascii_letters if c not in used)
    seen, out, eyes, terms = set(), [], [], [u]
    for c, n in zip(t, op.shape):
        if c in seen:
            f = next(fresh)
            out.append(f)
            terms.append(c + f)
            eyes.append(Tensor._make(np.eye(n, dtype=op._data.dtype)))
        else:
            seen.add(c)
            out.append(c)
    return einsum(",".join(terms) + "->" + "".join(out), g, *eyes)


def einsum(equation, *operands):
    """Einstein summation (``np.einsum`` semantics, differentiable in every operand).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.einsum("ij,jk->ik", cygrad.ones(2, 3), cygrad.ones(3, 4)).shape
    cygrad.Size([2, 4])
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for i, o in enumerate(operands):
        if not isinstance(o, Tensor):
            raise TypeError(f"einsum(): operand {i} must be a Tensor, not {type(o).__name__}")
    dts = {o._data.dtype for o in operands}
    if len(dts) > 1:
        raise RuntimeError(f"einsum(): operands do not have the same dtype: {[str(o.dtype) for o in operands]}")
    return Einsum.apply(equation, *operands)
