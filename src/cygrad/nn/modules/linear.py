"""Identity, Linear, Bilinear, Flatten, Unflatten, Dropout, Embedding, PReLU."""
import math

import numpy as np

from ..._tensor import Tensor
from ... import _dtype as D
from ..parameter import Parameter
from .. import init
from ... import ops  # noqa: F401
from ...ops.linalg import linear as _linear
from ...ops.nn_misc import bilinear as _bilinear, dropout as _dropout, embedding as _embedding, prelu as _prelu
from ...ops.shape import flatten as _flatten, unflatten as _unflatten
from .module import Module

__all__ = ["Identity", "Linear", "Bilinear", "Flatten", "Unflatten", "Dropout", "Embedding", "PReLU"]


def _empty(*shape, dtype=None):
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    return Tensor._make(np.zeros(shape, dt.np))


def _check_device(device):
    from ..._tensor import check_device
    check_device(device)


class Identity(Module):
    """Returns its input unchanged (extra arguments are ignored).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.Identity(54, unused="x")(cygrad.ones(2)).shape
    cygrad.Size([2])
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x W^T + b`` with ``weight`` (out_features, in_features) and ``bias`` (out_features).

    Initialised like torch: ``kaiming_uniform_(weight, a=sqrt(5))``, bias ~ U(-1/sqrt(in), 1/sqrt(in)).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Linear(20, 30)
    >>> m(cygrad.randn(128, 20)).shape
    cygrad.Size([128, 30])
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(_empty(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(_empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-draw the weights with torch's default initialisation."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return _linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """``y = x1^T A x2 + b`` with ``weight`` (out, in1, in2); weight and bias ~ U(-1/sqrt(in1), 1/sqrt(in1)).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Bilinear(20, 30, 40)
    >>> m(cygrad.randn(128, 20), cygrad.randn(128, 30)).shape
    cygrad.Size([128, 40])
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        self.weight = Parameter(_empty(out_features, in1_features, in2_features, dtype=dtype))
        if bias:
            self.bias = Parameter(_empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-draw the weights with torch's default initialisation."""
        bound = 1 / math.sqrt(self.weight.size(1))
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return _bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flatten dims ``start_dim`` to ``end_dim`` into one.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.Flatten()(cygrad.zeros(32, 1, 5, 5)).shape
    cygrad.Size([32, 25])
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return _flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expand dim ``dim`` into the shape ``unflattened_size``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.Unflatten(1, (2, 5, 5))(cygrad.zeros(2, 50)).shape
    cygrad.Size([2, 2, 5, 5])
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, str):
            raise TypeError("cygrad has no named tensors: dim must be an int")
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be tuple of ints, but found type {type(unflattened_size).__name__}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input):
        return _unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Randomly zero elements with probability ``p`` during training, scaling the rest by ``1/(1-p)``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Dropout(p=0.2)
    >>> m(cygrad.ones(4, 4)).shape
    cygrad.Size([4, 4])
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return _dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1).

    The ``padding_idx`` row is zeroed at initialisation and receives no gradient; with
    ``max_norm`` the looked-up rows are renormalised in place.

    Examples
    --------
    >>> import cygrad
    >>> emb = cygrad.nn.Embedding(10, 3, padding_idx=0)
    >>> emb(cygrad.tensor([[1, 2, 0]])).shape
    cygrad.Size([1, 3, 3])
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            if padding_idx > 0:
                assert padding_idx < self.num_embeddings, "Padding_idx must be within num_embeddings"
            elif padding_idx < 0:
                assert padding_idx >= -self.num_embeddings, "Padding_idx must be within num_embeddings"
                padding_idx = self.num_embeddings + padding_idx
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        if _weight is None:
            self.weight = Parameter(_empty(num_embeddings, embedding_dim, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            assert list(_weight.shape) == [num_embeddings, embedding_dim], \
                "Shape of weight does not match num_embeddings and embedding_dim"
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        self.sparse = sparse

    def reset_parameters(self):
        """Re-draw the weights from N(0, 1) and zero the padding row."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self):
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, input):
        return _embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                          self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        s = "{num_embeddings}, {embedding_dim}"
        if self.padding_idx is not None:
            s += ", padding_idx={padding_idx}"
        if self.max_norm is not None:
            s += ", max_norm={max_norm}"
        if self.norm_type != 2:
            s += ", norm_type={norm_type}"
        if self.scale_grad_by_freq is not False:
            s += ", scale_grad_by_freq={scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s.format(**self.__dict__)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (frozen by default)."""
        assert embeddings.dim() == 2, "Embeddings parameter is expected to be 2-dimensional"
        rows, cols = embeddings.shape
        return cls(num_embeddings=rows, embedding_dim=cols, _weight=embeddings, _freeze=freeze,
                   padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)


class PReLU(Module):
    """``max(0, x) + a * min(0, x)`` with a learnable ``a`` (one, or one per channel).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.PReLU()
    >>> m(cygrad.tensor([-1.0, 1.0]))
    tensor([-0.2500,  1.0000], grad_fn=<WhereBackward0>)
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        _check_device(device)
        self.num_parameters = num_parameters
        super().__init__()
        self.init = init
        self.weight = Parameter(_empty(num_parameters, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init_mod = __import__("cygrad.nn.init", fromlist=["constant_"])
        init_mod.constant_(self.weight, self.init)

    def forward(self, input):
        return _prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
