"""Bind the ops as ``Tensor`` methods and operators (``x.sum()``, ``x + y``, ``x.add_(y)``, ...)."""
import numpy as np

from ._tensor import Tensor
from .ops import elementwise as E, reduce as R, shape as S, linalg as L, activation as A, inplace as I
from ._random import rng

_SAME = {
    E: "add sub subtract mul multiply div divide true_divide floor_divide remainder fmod pow float_power maximum "
       "minimum exp exp2 log log2 log10 log1p expm1 sqrt rsqrt abs absolute sign sgn neg negative reciprocal sin cos "
       "tan asin acos atan arcsin arccos arctan sinh cosh tanh sigmoid erf erfc floor ceil trunc fix frac round "
       "square where clamp clip clamp_min clamp_max lerp addcmul addcdiv atan2 eq ne lt le gt ge not_equal less "
       "less_equal greater greater_equal bitwise_and bitwise_or bitwise_xor bitwise_not logical_not logical_and "
       "logical_or logical_xor isnan isinf isfinite isclose allclose equal nan_to_num clone",
    R: "sum mean prod amax amin max min argmax argmin var std logsumexp norm cumsum cumprod all any count_nonzero "
       "sum_to_size",
    S: "reshape view view_as reshape_as flatten unflatten squeeze unsqueeze permute transpose swapaxes swapdims t "
       "movedim moveaxis expand expand_as broadcast_to repeat repeat_interleave index_select gather scatter "
       "scatter_add masked_fill masked_select nonzero argwhere narrow select unbind split tensor_split chunk tril "
       "triu flip fliplr flipud roll index_put",
    L: "matmul mm bmm addmm baddbmm addmv mv outer ger dot inner vdot einsum",
    A: "relu softmax log_softmax",
}
for mod, names in _SAME.items():
    for name in names.split():
        setattr(Tensor, name, getattr(mod, name))

Tensor.__getitem__ = S.getitem
Tensor.__setitem__ = S.setitem
Tensor.T = property(lambda self: S.permute(self, tuple(range(self._data.ndim - 1, -1, -1))),
                    doc="The tensor with its dimensions reversed.")
Tensor.mT = property(lambda self: S.transpose(self, -2, -1), doc="Transpose of the last two dimensions.")
Tensor.H = Tensor.T
Tensor.mH = Tensor.mT
Tensor.softmin = A.softmin
# torch's Tensor.where(condition, other): self is the value chosen where condition holds
Tensor.where = lambda self, condition, other: E.where(condition, self, other)


# ---- operators ------------------------------------------------------------------------------------------------
def _swap(fn):
    return lambda self, other: fn(other, self)


Tensor.__add__ = lambda self, other: E.Add.apply(self, other)
Tensor.__radd__ = Tensor.__add__
Tensor.__sub__ = lambda self, other: E.Sub.apply(self, other)
Tensor.__rsub__ = lambda self, other: E.Sub.apply(other, self)
Tensor.__mul__ = lambda self, other: E.Mul.apply(self, other)
Tensor.__rmul__ = Tensor.__mul__
Tensor.__truediv__ = lambda self, other: E.Div.apply(self, other)
Tensor.__rtruediv__ = lambda self, other: E.Div.apply(other, self)
Tensor.__floordiv__ = E.floor_divide
Tensor.__rfloordiv__ = _swap(E.floor_divide)
Tensor.__mod__ = E.remainder
Tensor.__rmod__ = lambda self, other: E.Remainder.apply(other, self)
Tensor.__pow__ = lambda self, other: E.Pow.apply(self, other)
Tensor.__rpow__ = lambda self, other: E.Pow.apply(other, self)
Tensor.__matmul__ = L.matmul
Tensor.__rmatmul__ = _swap(L.matmul)
Tensor.__neg__ = lambda self: E.Neg.apply(self)
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = E.abs
Tensor.__invert__ = E.bitwise_not
Tensor.__and__ = E.bitwise_and
Tensor.__rand__ = _swap(E.bitwise_and)
Tensor.__or__ = E.bitwise_or
Tensor.__ror__ = _swap(E.bitwise_or)
Tensor.__xor__ = E.bitwise_xor
Tensor.__rxor__ = _swap(E.bitwise_xor)
Tensor.__eq__ = E.eq
Tensor.__ne__ = E.ne
Tensor.__lt__ = E.lt
Tensor.__le__ = E.le
Tensor.__gt__ = E.gt
Tensor.__ge__ = E.ge
Tensor.__hash__ = lambda self: id(self)

# ---- in-place -------------------------------------------------------------------------------------------------
for _name in ("add_", "sub_", "mul_", "div_", "zero_", "fill_", "copy_"):
    setattr(Tensor, _name, getattr(I, _name))
Tensor.subtract_ = I.sub_
Tensor.multiply_ = I.mul_
Tensor.divide_ = Tensor.true_divide_ = I.div_
Tensor.__iadd__ = lambda self, other: I.add_(self, other)
Tensor.__isub__ = lambda self, other: I.sub_(self, other)
Tensor.__imul__ = lambda self, other: I.mul_(self, other)
Tensor.__itruediv__ = lambda self, other: I.div_(self, other)

_INPLACE = (
    "pow exp log log1p expm1 sqrt rsqrt abs neg reciprocal sin cos tan tanh sigmoid erf floor ceil trunc round "
    "sign clamp clip clamp_min clamp_max lerp addcmul addcdiv masked_fill scatter scatter_add index_put tril triu "
    "remainder fmod floor_divide maximum minimum relu t transpose squeeze unsqueeze nan_to_num"
)
for _name in _INPLACE.split():
    setattr(Tensor, _name + "_", I._generic(getattr(Tensor, _name)))
Tensor.__ipow__ = lambda self, other: Tensor.pow_(self, other)
Tensor.__ifloordiv__ = lambda self, other: Tensor.floor_divide_(self, other)
Tensor.__imod__ = lambda self, other: Tensor.remainder_(self, other)
Tensor.__iand__ = lambda self, other: I._generic(E.bitwise_and)(self, other)
Tensor.__ior__ = lambda self, other: I._generic(E.bitwise_or)(self, other)
Tensor.__ixor__ = lambda self, other: I._generic(E.bitwise_xor)(self, other)


# ---- in-place random fills (used by nn.init) ------------------------------------------------------------------
def _fill_random(self, values):
    I._check_leaf_fill(self)
    np.copyto(self._data, values, casting="unsafe")
    self._version_box[0] += 1
    return self


def uniform_(self, a=0.0, b=1.0, *, generator=None):
    """Fill with samples from U(a, b)."""
    return _fill_random(self, rng(generator).uniform(a, b, self._data.shape))


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with samples from N(mean, std^2)."""
    return _fill_random(self, rng(generator).normal(mean, std, self._data.shape))


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 0/1 samples, 1 with probability ``p``."""
    pd = p._data if isinstance(p, Tensor) else p
    return _fill_random(self, rng(generator).random(self._data.shape) < pd)


def random_(self, from_=0, to=None, *, generator=None):
    """Fill with integers uniform in ``[from_, to)``."""
    if to is None:
        from_, to = 0, from_ if from_ else 2 ** 24
    return _fill_random(self, rng(generator).integers(from_, to, self._data.shape))


def exponential_(self, lambd=1.0, *, generator=None):
    """Fill with samples from Exp(lambd)."""
    return _fill_random(self, rng(generator).exponential(1.0 / lambd, self._data.shape))


for _f in (uniform_, normal_, bernoulli_, random_, exponential_):
    setattr(Tensor, _f.__name__, _f)
