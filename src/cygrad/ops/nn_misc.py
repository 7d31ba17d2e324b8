"""dropout, embedding, bilinear and prelu (``torch.nn.functional``)."""
import numpy as np

from .._tensor import Tensor
from .._random import rng
from ..autograd.function import Function
from ..autograd.grad_mode import no_grad
from .elementwise import where
from .linalg import matmul
from .shape import IndexAddZeros

__all__ = ["dropout", "embedding", "bilinear", "prelu"]


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (training only).

    The mask is drawn from cygrad's default generator (``cygrad.manual_seed``).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> y = F.dropout(cygrad.ones(4, 4), p=0.5)
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    dt = input._data.dtype
    if p == 1.0:
        mask = np.zeros(input._data.shape, dt)
    else:
        keep = rng().random(input._data.shape) >= p
        mask = keep.astype(dt) * dt.type(1.0 / (1.0 - p))
    m = Tensor._make(mask)
    if inplace:
        return input.mul_(m)
    return input * m


class EmbeddingFn(Function):
    """weight[indices]; the gradient of the padding row is zero."""

    _builtin = True

    @staticmethod
    def forward(ctx, weight, idx, padding_idx, scale_grad_by_freq):
        ctx.idx, ctx.padding_idx, ctx.wshape = idx, padding_idx, weight._data.shape
        ctx.scale = scale_grad_by_freq
        return np.ascontiguousarray(weight._data[idx])

    @staticmethod
    def backward(ctx, g):
        flat = ctx.idx.reshape(-1)
        factor = np.ones(flat.shape, g._data.dtype)
        if ctx.padding_idx is not None:
            factor[flat == ctx.padding_idx] = 0
        if ctx.scale:
            counts = np.bincount(flat, minlength=ctx.wshape[0])
            factor = factor / counts[flat]
        g2 = g.reshape(-1, ctx.wshape[1]) * Tensor._make(factor.astype(g._data.dtype)[:, None])
        return IndexAddZeros.apply(g2, (flat,), False, ctx.wshape), None, None, None


def _embedding_renorm_(weight, idx, max_norm, norm_type):
    with no_grad():
        rows = np.unique(idx.reshape(-1))
        w = weight._data
        sub = w[rows]
        norms = np.linalg.norm(sub, ord=norm_type, axis=1) if norm_type != 2 else np.sqrt((sub * sub).sum(1))
        big = norms > max_norm
        scale = (max_norm / (norms[big] + 1e-7)).astype(w.dtype)
        w[rows[big]] = sub[big] * scale[:, None]
        weight._version_box[0] += 1
    return weight


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of ``weight`` (num_embeddings, dim) at the integer indices ``input``.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.embedding(cygrad.tensor([[0, 2]]), cygrad.randn(3, 4)).shape
    cygrad.Size([1, 2, 4])
    """
    if not isinstance(input, Tensor) or input._data.dtype.kind not in "iu":
        name = type(input).__name__ if not isinstance(input, Tensor) else str(input.dtype)
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar "
                           f"types: Long, Int; but got {name} instead (while checking arguments for embedding)")
    if weight.dim() != 2:
        raise RuntimeError("'weight' must be 2-D")
    n = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < n, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
            padding_idx = n + padding_idx
    idx = input._data.astype(np.int64, copy=False)
    if idx.size and (idx.min() < -n or idx.max() >= n or idx.min() < 0):
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    return EmbeddingFn.apply(weight, idx, padding_idx, scale_grad_by_freq)


def bilinear(input1, input2, weight, bias=None):
    """``y = x1^T A x2 + b`` with ``weight`` (out, in1, in2) over the last dims of the inputs.

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.bilinear(cygrad.randn(5, 3), cygrad.randn(5, 4), cygrad.randn(2, 3, 4)).shape
    cygrad.Size([5, 2])
    """
    if input1.dim() == 0 or input2.dim() == 0:
        raise RuntimeError("bilinear(): input dimensions must be at least 1")
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(input1.shape[:-1])} and "
                           f"{list(input2.shape[:-1])}")
    if weight.dim() != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear(): input sizes {list(input1.shape)}, {list(input2.shape)} do not match "
                           f"weight size {list(weight.shape)}")
    lead = tuple(input1.shape[:-1])
    x1 = input1.reshape(1, -1, input1.shape[-1])
    x2 = input2.reshape(1, -1, input2.shape[-1])
    tmp = matmul(x1, weight)                    # (O, B, J)
    y = (tmp * x2).sum(-1).transpose(0, 1)      # (B, O)
    if bias is not None:
        y = y + bias
    return y.reshape(lead + (weight.shape[0],))


def prelu(input, weight):
    """``max(0, x) + weight * min(0, x)`` with one weight or one per channel (dim 1).

    Examples
    --------
    >>> import cygrad
    >>> import cygrad.nn.functional as F
    >>> F.prelu(cygrad.tensor([-1.0, 2.0]), cygrad.tensor([0.25]))
    tensor([-0.2500,  2.0000])
    """
    n = weight.numel()
    if n != 1:
        ch = 1 if input.dim() >= 2 else 0
        if input.dim() == 0 or input.shape[ch] != n:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{n} and channel size = {input.shape[ch] if input.dim() else 1}.")
        shape = [1] * input.dim()
        shape[ch] = n
        w = weight.reshape(shape)
    else:
        w = weight.reshape(())
    return where(input > 0, input, w * input)
