"""Elementwise Functions: arithmetic with broadcasting and torch's type promotion, unary maths.

Each Function's ``backward`` is written with differentiable tensor ops, so higher-order
gradients come for free. Gradients of broadcast operands are returned at the broadcast shape;
the engine reduces them (one central place).
"""
import math

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor
from ..autograd.function import Function
from ..autograd.grad_mode import state

_scalar_types = (int, float, bool)


# ---- operand preparation ----------------------------------------------------------------------
def broadcast_shapes(*shapes):
    """The broadcast of several shapes, raising torch's RuntimeError when incompatible.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.broadcast_shapes((2, 1), (3,))
    cygrad.Size([2, 3])
    """
    from .._tensor import Size
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for k, s in enumerate(shapes):
        s = (s,) if isinstance(s, int) else tuple(s)
        for i, d in enumerate(s):
            j = ndim - len(s) + i
            if out[j] == 1:
                out[j] = d
            elif d != 1 and d != out[j]:
                a = "ab"[min(k, 1)] if len(shapes) == 2 else "a"
                other = [x for x in shapes[:k] if len(x) >= ndim - j]
                raise RuntimeError(f"The size of tensor a ({out[j]}) must match the size of tensor b ({d}) "
                                   f"at non-singleton dimension {i if len(s) == ndim else j}")
    return Size(out)


def _bcast_error(*arrs):
    shapes = [np.shape(a) for a in arrs]
    broadcast_shapes(*shapes)
    raise RuntimeError(f"shapes {shapes} cannot be broadcast together")


def operands(a, b):
    """Return ``(a_data, b_data)`` with torch's promoted dtype (Python scalars stay scalars)."""
    if a.__class__ is Tensor:
        ad = a._data
        bc = b.__class__
        if bc is Tensor:
            bd = b._data
            if ad.dtype == bd.dtype:
                return ad, bd
        elif bc is float:
            if ad.dtype.kind == "f":
                return ad, b
        elif bc is int:
            if ad.dtype.kind in "fi":
                return ad, b
    elif b.__class__ is Tensor:
        bd = b._data
        ac = a.__class__
        if ac is float:
            if bd.dtype.kind == "f":
                return a, bd
        elif ac is int:
            if bd.dtype.kind in "fi":
                return a, bd
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    rt = D.result_type(a, b)
    if rt is None:
        raise TypeError(f"unsupported operand types: {type(a).__name__} and {type(b).__name__}")
    return _cast_operand(a, rt), _cast_operand(b, rt)


def _cast_operand(x, rt):
    if isinstance(x, Tensor):
        d = x._data
        return d if d.dtype == rt.np else d.astype(rt.np)
    if isinstance(x, _scalar_types):
        return x
    if isinstance(x, np.ndarray):
        return x.astype(rt.np, copy=False)
    raise TypeError(f"unsupported operand type {type(x).__name__}")


def as_tensor_arg(x, like=None):
    """Wrap scalars/arrays as tensors (dtype of ``like`` for Python floats)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._make(x)
    dt = D.result_type(like, x) if like is not None else None
    return Tensor._make(np.asarray(x, dtype=dt.np if dt is not None else None))


def _float_input(xd):
    """Integer/bool inputs of float-valued functions are computed in the default dtype."""
    return xd if xd.dtype.kind == "f" else xd.astype(D._default.np)


def _apply2(ufunc, a, b):
    try:
        return ufunc(a, b)
    except ValueError:
        _bcast_error(a, b)


# ---- arithmetic --------------------------------------------------------------------------------
class Add(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ad, bd = operands(a, b)
        ctx.alpha = alpha
        if alpha != 1:
            bd = bd * alpha
        return _apply2(np.add, ad, bd)

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (g if n[0] else None), ((g if ctx.alpha == 1 else g * ctx.alpha) if n[1] else None), None


class Sub(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ad, bd = operands(a, b)
        if ad.__class__ is np.ndarray and ad.dtype == np.bool_:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                               "Use the `^` or `logical_xor()` operator instead.")
        ctx.alpha = alpha
        if alpha != 1:
            bd = bd * alpha
        return _apply2(np.subtract, ad, bd)

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (g if n[0] else None), ((-g if ctx.alpha == 1 else g * -ctx.alpha) if n[1] else None), None


class Mul(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b):
        ad, bd = operands(a, b)
        if isinstance(b, Tensor):   # Parameter and other subclasses too
            ctx.save_for_backward(a if isinstance(a, Tensor) else None, b)
        else:
            ctx.b = b
            ctx.save_for_backward(None, None)
        return _apply2(np.multiply, ad, bd)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        if b is None:
            b = ctx.b
        return (g * b if n[0] else None), (g * a if n[1] else None)


class Div(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b, rounding_mode=None):
        ad, bd = operands(a, b)
        if rounding_mode is None:
            if np.asarray(ad).dtype.kind != "f" and np.asarray(bd).dtype.kind != "f":  # int/bool tensors or scalars
                ad = np.asarray(ad, dtype=D._default.np)
                if isinstance(bd, np.ndarray):  # int / int tensors: true division in the default dtype
                    bd = bd.astype(D._default.np)
            ctx.b = b
            ctx.save_for_backward(a if isinstance(b, Tensor) else None,
                                  b if isinstance(b, Tensor) else None)
            with np.errstate(divide="ignore", invalid="ignore"):
                return _apply2(np.true_divide, ad, bd)
        ctx.rounded = True  # floor/trunc division: piecewise constant, zero gradient (like torch)
        with np.errstate(divide="ignore", invalid="ignore"):
            if rounding_mode == "floor":
                return _floordiv(ad, bd)
            if rounding_mode == "trunc":
                q = _apply2(np.true_divide, ad, bd)
                r = np.trunc(q)
                if np.asarray(q).dtype.kind != "f":
                    return r
                kind = np.result_type(ad, bd).kind if not isinstance(bd, _scalar_types) else np.asarray(ad).dtype.kind
                return r.astype(np.asarray(ad).dtype) if kind in "iu" else r
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        if getattr(ctx, "rounded", False):
            z = g * 0
            return (z if n[0] else None), (z if n[1] else None), None
        a, b = ctx.saved_tensors
        if b is None:
            b = ctx.b
        ga = g / b if n[0] else None
        gb = -g * a / (b * b) if n[1] else None
        return ga, gb, None


def _floordiv(ad, bd):
    if np.result_type(ad, bd).kind in "iu" or (isinstance(bd, int) and np.asarray(ad).dtype.kind in "iu"):
        if np.any(np.asarray(bd) == 0):
            raise RuntimeError("ZeroDivisionError")
    return _apply2(np.floor_divide, ad, bd)


class Pow(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b):
        if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
            ad = a._data
            if ad.dtype.kind in "iub" and isinstance(b, int) and b < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            if ad.dtype.kind in "iub" and isinstance(b, float):
                ad = ad.astype(D._default.np)
            elif ad.dtype == np.bool_ and not isinstance(b, bool):  # bool ** int is int64 (torch's promotion)
                ad = ad.astype(np.int64)
            elif ad.dtype == np.bool_:  # bool ** bool stays bool: x ** True == x, x ** False == True
                ctx.b = b
                ctx.save_for_backward(a, None)
                return ad.copy() if b else np.ones_like(ad)
            ctx.b = b
            ctx.save_for_backward(a, None)
            if b == 2:
                out = np.multiply(ad, ad)
            elif b == 0.5:
                out = np.sqrt(ad)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    out = np.power(ad, b)
            return out
        ad, bd = operands(a, b)
        if np.asarray(ad).dtype.kind in "iu" and np.any(np.asarray(bd) < 0):
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _apply2(np.power, ad, bd)
        ctx.b = b
        ctx.a = None if isinstance(a, Tensor) else a  # a scalar base is needed for d/db (a**b)
        ctx.save_for_backward(a if isinstance(a, Tensor) else None, b if isinstance(b, Tensor) else None,
                              out if isinstance(b, Tensor) else None)
        return out

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        a, b = saved[0], saved[1]
        n = ctx.needs_input_grad
        if b is None:
            b = ctx.b
        ga = gb = None
        if n[0]:
            if isinstance(b, Tensor):
                ga = where(b == 0, 0.0, g * b * a ** (b - 1))
            elif b == 0:
                ga = g * 0
            elif b == 2:
                ga = g * a * 2
            else:
                ga = g * b * a ** (b - 1)
        if n[1]:
            out = saved[2]
            if isinstance(a, Tensor):
                ga_base = a
            else:
                ga_base = as_tensor_arg(ctx.a, b)
            gb = where((ga_base == 0) & (b >= 0), 0.0, g * out * ga_base.log())
        return ga, gb


class Maximum(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b):
        ad, bd = operands(a, b)
        ctx.save_for_backward(a, b)
        return _apply2(np.maximum, ad, bd)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        half = where(a == b, g / 2, g)
        n = ctx.needs_input_grad
        return (half.masked_fill(a < b, 0) if n[0] else None), (half.masked_fill(a > b, 0) if n[1] else None)


class Minimum(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b):
        ad, bd = operands(a, b)
        ctx.save_for_backward(a, b)
        return _apply2(np.minimum, ad, bd)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        half = where(a == b, g / 2, g)
        n = ctx.needs_input_grad
        return (half.masked_fill(a > b, 0) if n[0] else None), (half.masked_fill(a < b, 0) if n[1] else None)


class Remainder(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, a, b):
        ad, bd = operands(a, b)
        ctx.save_for_backward(a, b if isinstance(b, Tensor) else None)
        ctx.b = b
        with np.errstate(divide="ignore", invalid="ignore"):
            return _apply2(np.remainder, ad, bd)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        gb = None
        if n[1]:
            gb = -g * div(a, b, rounding_mode="floor")
        return (g if n[0] else None), gb


def _binary_entry(fn_cls, a, b, name):
    if not isinstance(a, Tensor):
        if isinstance(b, Tensor):
            a = as_tensor_arg(a, b) if not isinstance(a, _scalar_types) else a
        else:
            raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(a).__name__}")
    return fn_cls.apply(a, b)


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other`` with broadcasting.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.add(cygrad.tensor([1.0, 2.0]), 1.0, alpha=2)
    tensor([3., 4.])
    """
    return _out(Add.apply(input, other, alpha) if alpha != 1 else Add.apply(input, other), out)


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other`` with broadcasting.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.sub(cygrad.tensor([1.0, 2.0]), 1.0)
    tensor([0., 1.])
    """
    return _out(Sub.apply(input, other, alpha) if alpha != 1 else Sub.apply(input, other), out)


subtract = sub


def mul(input, other, *, out=None):
    """Elementwise product with broadcasting.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.mul(cygrad.tensor([1.0, 2.0]), cygrad.tensor([3.0]))
    tensor([3., 6.])
    """
    return _out(Mul.apply(input, other), out)


multiply = mul


def div(input, other, *, rounding_mode=None, out=None):
    """True division (``rounding_mode=None``), or rounded with ``'trunc'`` / ``'floor'``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.div(cygrad.tensor([7, -7]), 2, rounding_mode="floor")
    tensor([ 3, -4])
    """
    if rounding_mode is None:
        return _out(Div.apply(input, other), out)
    return _out(Div.apply(input, other, rounding_mode), out)


divide = true_divide = div


def floor_divide(input, other, *, out=None):
    """Division rounded down (``//``)."""
    return div(input, other, rounding_mode="floor", out=out)


def remainder(input, other, *, out=None):
    """Python-style modulus (result has the sign of the divisor), ``%``."""
    return _out(Remainder.apply(input, other), out)


def fmod(input, other):
    """C-style modulus (result has the sign of the dividend)."""
    return input - div(input, other, rounding_mode="trunc") * other


def pow(input, exponent, *, out=None):
    """``input ** exponent`` elementwise.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.pow(cygrad.tensor([2.0, 3.0]), 2)
    tensor([4., 9.])
    """
    if not isinstance(input, Tensor):
        return _out(Pow.apply(input, exponent), out)
    return _out(Pow.apply(input, exponent), out)


def float_power(input, exponent):
    """``input ** exponent`` computed in float64."""
    return pow(cast(as_tensor_arg(input), D.float64), exponent)


def maximum(input, other, *, out=None):
    """Elementwise maximum (gradient split evenly on ties).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.maximum(cygrad.tensor([1.0, 5.0]), cygrad.tensor([3.0, 2.0]))
    tensor([3., 5.])
    """
    _need_tensor(other, "maximum", "other")
    return _out(Maximum.apply(input, other), out)


def minimum(input, other, *, out=None):
    """Elementwise minimum (gradient split evenly on ties).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.minimum(cygrad.tensor([1.0, 5.0]), cygrad.tensor([3.0, 2.0]))
    tensor([1., 2.])
    """
    _need_tensor(other, "minimum", "other")
    return _out(Minimum.apply(input, other), out)


fmax, fmin = maximum, minimum


def _need_tensor(x, fn, arg):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{arg}' (position 2) must be Tensor, not {type(x).__name__}")


def _out(res, out):
    if out is None:
        return res
    if not isinstance(out, Tensor):
        raise TypeError(f"out= must be a Tensor, got {type(out).__name__}")
    if res.requires_grad and state.enabled:
        raise RuntimeError("functions with out=... arguments don't support automatic differentiation, "
                           "but one of the arguments requires grad.")
    if out._data.shape != res._data.shape:
        out._data = np.empty(res._data.shape, out._data.dtype)
    np.copyto(out._data, res._data, casting="unsafe")
    out._version_box[0] += 1
    return out


class Clone(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x):
        return np.array(x._data, copy=True, order="C")

    @staticmethod
    def backward(ctx, g):
        return g


def clone(input, *, memory_format=None):
    """A copy of ``input`` (differentiable; the copy owns its memory, C-contiguous).

    Examples
    --------
    >>> import cygrad
    >>> a = cygrad.tensor([1.0]); b = a.clone(); b += 1; a
    tensor([1.])
    """
    return Clone.apply(input)


# ---- dtype cast -----------------------------------------------------------------------------
class Cast(Function):
    _builtin = True
    _node_name_override = "ToCopyBackward0"

    @staticmethod
    def forward(ctx, x, dt, copy=False):
        ctx.src = x.dtype
        d = x._data
        if d.dtype == dt.np:
            return np.array(d, copy=True) if copy else d
        return d.astype(dt.np)

    @staticmethod
    def backward(ctx, g):
        return cast(g, ctx.src), None, None


def cast(x, dt, copy=False):
    """Convert ``x`` to dtype ``dt`` (differentiable between float types)."""
    if x._data.dtype == dt.np and not copy:
        return x
    return Cast.apply(x, dt, copy)


# ---- unary maths ----------------------------------------------------------------------------
class _Unary(Function):
    """y = fn(x); ``grad(g, x, y)`` gives dx. ``saves``: which of x, y backward needs."""

    _builtin = True
    saves = "x"
    float_only = True
    quiet = False  # True: fn never warns (skip the errstate block)
    fn = None

    @classmethod
    def forward(cls, ctx, x):
        xd = x._data
        if cls.float_only and xd.dtype.kind != "f":
            xd = xd.astype(D._default.np)
        if cls.quiet:
            y = cls.fn(xd)
        else:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                y = cls.fn(xd)
        if cls.saves == "y":
            ctx.save_for_backward(y)
        elif cls.saves == "x":
            ctx.save_for_backward(x)
        return y

    @classmethod
    def backward(cls, ctx, g):
        t, = ctx.saved_tensors if cls.saves else (None,)
        return cls.grad(g, t)


def _unary(name, fn, grad, saves="x", float_only=True, quiet=False):
    cls = type(name, (_Unary,), {"fn": staticmethod(fn), "grad": staticmethod(grad), "saves": saves,
                                 "float_only": float_only, "quiet": quiet, "_builtin": True})
    return cls


def _zero_grad(g, t):
    return g * 0


_SQRT_2_OVER_PI = 2.0 / math.sqrt(math.pi)

Exp = _unary("Exp", np.exp, lambda g, y: g * y, "y")
Log = _unary("Log", np.log, lambda g, x: g / x)
Log2 = _unary("Log2", np.log2, lambda g, x: g / (x * math.log(2.0)))
Log10 = _unary("Log10", np.log10, lambda g, x: g / (x * math.log(10.0)))
Log1p = _unary("Log1P", np.log1p, lambda g, x: g / (x + 1))
Expm1 = _unary("Expm1", np.expm1, lambda g, y: g * (y + 1), "y")
Exp2 = _unary("Exp2", np.exp2, lambda g, y: g * y * math.log(2.0), "y")
Sqrt = _unary("Sqrt", np.sqrt, lambda g, y: g / (y * 2), "y")
Rsqrt = _unary("Rsqrt", lambda x: 1.0 / np.sqrt(x), lambda g, y: g * y ** 3 * -0.5, "y")
Abs = _unary("Abs", np.abs, lambda g, x: g * x.sign(), "x", False, quiet=True)
Sign = _unary("Sign", np.sign, _zero_grad, None, False, quiet=True)
Neg = _unary("Neg", np.negative, lambda g, t: -g, None, False, quiet=True)
Reciprocal = _unary("Reciprocal", np.reciprocal, lambda g, y: -g * y * y, "y")
Sin = _unary("Sin", np.sin, lambda g, x: g * x.cos(), quiet=True)
Cos = _unary("Cos", np.cos, lambda g, x: -g * x.sin(), quiet=True)
Tan = _unary("Tan", np.tan, lambda g, y: g * (y * y + 1), "y")
Asin = _unary("Asin", np.arcsin, lambda g, x: g * (1 - x * x).rsqrt())
Acos = _unary("Acos", np.arccos, lambda g, x: -g * (1 - x * x).rsqrt())
Atan = _unary("Atan", np.arctan, lambda g, x: g / (x * x + 1), quiet=True)
Sinh = _unary("Sinh", np.sinh, lambda g, x: g * x.cosh())
Cosh = _unary("Cosh", np.cosh, lambda g, x: g * x.sinh())
Tanh = _unary("Tanh", np.tanh, lambda g, y: g * (1 - y * y), "y", quiet=True)
Erf = _unary("Erf", None, lambda g, x: g * _SQRT_2_OVER_PI * (-(x * x)).exp())
Erfc = _unary("Erfc", None, lambda g, x: -g * _SQRT_2_OVER_PI * (-(x * x)).exp())
Floor = _unary("Floor", np.floor, _zero_grad, None, False, quiet=True)
Ceil = _unary("Ceil", np.ceil, _zero_grad, None, False, quiet=True)
Trunc = _unary("Trunc", np.trunc, _zero_grad, None, False, quiet=True)
Frac = _unary("Frac", lambda x: x - np.trunc(x), lambda g, t: g, None)


def _sigmoid_np(x):
    # stable: exp of a non-positive number only
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


Sigmoid = _unary("Sigmoid", _sigmoid_np, lambda g, y: g * y * (1 - y), "y", quiet=True)


def _erf_np(x):
    from scipy.special import erf as _e
    return _e(x).astype(x.dtype, copy=False)


def _erfc_np(x):
    from scipy.special import erfc as _e
    return _e(x).astype(x.dtype, copy=False)


Erf.fn = staticmethod(_erf_np)
Erfc.fn = staticmethod(_erfc_np)


class Round(_Unary):
    _builtin = True
    saves = None
    float_only = False
    fn = staticmethod(np.round)
    grad = staticmethod(_zero_grad)


def _make_unary_fn(cls, name, example=None):
    def f(input, *, out=None):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
        return _out(cls.apply(input), out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Elementwise ``{name}``.\n\n    Examples\n    --------\n    >>> import cygrad\n"
                 f"    >>> cygrad.{name}(cygrad.tensor([{example or '0.5'}])).shape\n    cygrad.Size([1])\n")
    return f


exp = _make_unary_fn(Exp, "exp")
exp2 = _make_unary_fn(Exp2, "exp2")
log = _make_unary_fn(Log, "log")
log2 = _make_unary_fn(Log2, "log2")
log10 = _make_unary_fn(Log10, "log10")
log1p = _make_unary_fn(Log1p, "log1p")
expm1 = _make_unary_fn(Expm1, "expm1")
sqrt = _make_unary_fn(Sqrt, "sqrt")
rsqrt = _make_unary_fn(Rsqrt, "rsqrt")
abs = _make_unary_fn(Abs, "abs")
absolute = abs
sign = _make_unary_fn(Sign, "sign")
sgn = sign
neg = _make_unary_fn(Neg, "neg")
negative = neg
reciprocal = _make_unary_fn(Reciprocal, "reciprocal")
sin = _make_unary_fn(Sin, "sin")
cos = _make_unary_fn(Cos, "cos")
tan = _make_unary_fn(Tan, "tan")
asin = arcsin = _make_unary_fn(Asin, "asin")
acos = arccos = _make_unary_fn(Acos, "acos")
atan = arctan = _make_unary_fn(Atan, "atan")
sinh = _make_unary_fn(Sinh, "sinh")
cosh = _make_unary_fn(Cosh, "cosh")
tanh = _make_unary_fn(Tanh, "tanh")
sigmoid = _make_unary_fn(Sigmoid, "sigmoid")
erf = _make_unary_fn(Erf, "erf")
erfc = _make_unary_fn(Erfc, "erfc")
floor = _make_unary_fn(Floor, "floor")
ceil = _make_unary_fn(Ceil, "ceil")
trunc = _make_unary_fn(Trunc, "trunc")
fix = trunc
frac = _make_unary_fn(Frac, "frac")


def round(input, *, decimals=0, out=None):
    """Round to the nearest integer (half to even) or to ``decimals`` places; zero gradient.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.round(cygrad.tensor([0.5, 1.5, 2.7]))
    tensor([0., 2., 3.])
    """
    if decimals == 0:
        return _out(Round.apply(input), out)
    s = 10.0 ** decimals
    return _out(Round.apply(input * s) / s, out)


def square(input):
    """``input * input``."""
    return pow(input, 2)


# ---- where, clamp, lerp -------------------------------------------------------------------------
class Where(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, cond, a, b):
        ad, bd = operands(a, b)
        c = cond._data
        ctx.save_for_backward(cond)
        try:
            return np.where(c, ad, bd)
        except ValueError:
            _bcast_error(c, ad, bd)

    @staticmethod
    def backward(ctx, g):
        cond, = ctx.saved_tensors
        n = ctx.needs_input_grad
        z = g * 0 if (n[1] or n[2]) else None
        return None, (where(cond, g, z) if n[1] else None), (where(cond, z, g) if n[2] else None)


def where(condition, input=None, other=None, *, out=None):
    """Choose ``input`` where ``condition`` holds, else ``other`` (broadcasting).

    With only ``condition``, the same as ``nonzero(condition, as_tuple=True)``.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor([-1.0, 2.0])
    >>> cygrad.where(x > 0, x, 0.0)
    tensor([0., 2.])
    """
    if input is None and other is None:
        from .shape import nonzero
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        condition = Tensor._make(np.asarray(condition))
    if condition._data.dtype != np.bool_:
        if condition._data.dtype == np.uint8:
            condition = Tensor._make(condition._data.astype(bool))
        else:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with "
                               f"dtype {D.scalar_name(condition.dtype)}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = as_tensor_arg(input)
    return _out(Where.apply(condition, input, other), out)


class Clamp(Function):
    _builtin = True

    @staticmethod
    def forward(ctx, x, lo, hi):
        xd = x._data
        lod = lo._data if isinstance(lo, Tensor) else lo
        hid = hi._data if isinstance(hi, Tensor) else hi
        if isinstance(lod, float) and xd.dtype.kind != "f" or isinstance(hid, float) and xd.dtype.kind != "f":
            xd = xd.astype(D._default.np)
        y = xd
        if lod is not None:
            y = np.maximum(y, lod)
        if hid is not None:
            y = np.minimum(y, hid)
        if y.dtype != xd.dtype and xd.dtype.kind == "f":
            y = y.astype(xd.dtype)
        if y is xd:
            y = y.copy()
        ctx.save_for_backward(x, lo if isinstance(lo, Tensor) else None, hi if isinstance(hi, Tensor) else None)
        ctx.lo, ctx.hi = lo, hi
        return y

    @staticmethod
    def backward(ctx, g):
        x, lo_t, hi_t = ctx.saved_tensors
        lo = lo_t if lo_t is not None else ctx.lo
        hi = hi_t if hi_t is not None else ctx.hi
        mask = None
        if lo is not None:
            mask = x >= lo
        if hi is not None:
            m2 = x <= hi
            mask = m2 if mask is None else mask & m2
        n = ctx.needs_input_grad
        gx = where(mask, g, 0.0) if n[0] else None
        glo = ghi = None
        if n[1]:
            glo = where(x < lo, g, 0.0) if hi is None else where((x < lo) & (lo <= hi), g, 0.0)
        if n[2]:
            ghi = where(x > hi, g, 0.0) if lo is None else where((x > hi) | (lo > hi), g, 0.0)
        return gx, glo, ghi


def clamp(input, min=None, max=None, *, out=None):
    """Clamp every element into ``[min, max]`` (gradient 1 inside the range, inclusive).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.clamp(cygrad.tensor([-2.0, 0.5, 3.0]), min=0.0, max=1.0)
    tensor([0.0000, 0.5000, 1.0000])
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return _out(Clamp.apply(input, min, max), out)


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def lerp(input, end, weight, *, out=None):
    """``input + weight * (end - input)`` (differentiable in all three).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.lerp(cygrad.tensor([0.0]), cygrad.tensor([10.0]), 0.25)
    tensor([2.5000])
    """
    if not isinstance(end, Tensor):
        raise TypeError(f"lerp(): argument 'end' (position 2) must be Tensor, not {type(end).__name__}")
    return _out(input + weight * (end - input), out)


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``."""
    return input + value * tensor1 * tensor2


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``."""
    return input + value * tensor1 / tensor2


def atan2(input, other):
    """Elementwise ``atan2(input, other)``."""
    return _Atan2.apply(input, other)


class _Atan2(Function):
    _builtin = True
    _node_name_override = "Atan2Backward0"

    @staticmethod
    def forward(ctx, a, b):
        ad, bd = operands(a, b)
        if np.asarray(ad).dtype.kind != "f":
            ad = np.asarray(ad, dtype=D._default.np)
        ctx.save_for_backward(a, b)
        return _apply2(np.arctan2, ad, bd)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        den = a * a + b * b
        return g * b / den, -g * a / den


# ---- comparisons and logic (not differentiable) ----------------------------------------------------
def _compare(ufunc, name):
    def f(input, other, *, out=None):
        if not isinstance(input, Tensor):
            input = as_tensor_arg(input)
        od = other._data if isinstance(other, Tensor) else other
        if isinstance(od, (list, tuple)):
            od = np.asarray(od)
        try:
            r = ufunc(input._data, od)
        except ValueError:
            _bcast_error(input._data, od)
        return _out(Tensor._make(np.asarray(r)), out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Elementwise ``{name}`` comparison, returning a bool tensor.\n\n    Examples\n    --------\n"
                 f"    >>> import cygrad\n    >>> cygrad.{name}(cygrad.tensor([1, 2]), 2).dtype\n    cygrad.bool\n")
    return f


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")
not_equal, less, less_equal, greater, greater_equal = ne, lt, le, gt, ge


def _bitwise(ufunc, name):
    def f(input, other):
        ad, bd = operands(input, other)
        if np.asarray(ad).dtype.kind == "f" or (isinstance(bd, float)):
            raise RuntimeError(f"\"{name}_cpu\" not implemented for 'Float'")
        try:
            return Tensor._make(np.asarray(ufunc(ad, bd)))
        except ValueError:
            _bcast_error(ad, bd)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise ``{name}`` of integer or bool tensors."
    return f


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def bitwise_not(input):
    """Elementwise NOT (logical for bool tensors)."""
    if input._data.dtype.kind == "f":
        raise RuntimeError("\"bitwise_not_cpu\" not implemented for 'Float'")
    return Tensor._make(np.invert(input._data))


def logical_not(input):
    """Elementwise logical NOT (bool result)."""
    return Tensor._make(np.logical_not(input._data))


def _logical(ufunc, name):
    def f(input, other):
        od = other._data if isinstance(other, Tensor) else other
        return Tensor._make(np.asarray(ufunc(input._data, od)))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise ``{name}`` (bool result)."
    return f


logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def isnan(input):
    """Elementwise NaN test."""
    return Tensor._make(np.isnan(input._data))


def isinf(input):
    """Elementwise infinity test."""
    return Tensor._make(np.isinf(input._data))


def isfinite(input):
    """Elementwise finiteness test."""
    return Tensor._make(np.isfinite(input._data))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise closeness test."""
    return Tensor._make(np.isclose(input._data, other._data if isinstance(other, Tensor) else other,
                                   rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether all elements are close."""
    return bool(np.allclose(input._data, other._data if isinstance(other, Tensor) else other,
                            rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):
    """True if both tensors have the same shape and elements."""
    return input._data.shape == other._data.shape and bool(np.array_equal(input._data, other._data))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """Replace NaN and infinities (gradient passes where the value was finite)."""
    bad = ~isfinite(input)
    fixed = Tensor._make(np.nan_to_num(input._data, nan=nan, posinf=posinf, neginf=neginf))
    return where(bad, fixed, input)
