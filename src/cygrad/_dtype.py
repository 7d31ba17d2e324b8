"""dtypes with PyTorch's names, and PyTorch's type-promotion rules."""
import builtins

import numpy as np

__all__ = ["dtype", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
           "uint8", "bool", "get_default_dtype", "set_default_dtype", "promote_types",
           "result_type", "can_cast"]


class dtype:
    """A tensor element type (``cygrad.float32``, ``cygrad.int64``, ...).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, dtype=cygrad.float64).dtype
    cygrad.float64
    """

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_cat")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = category == 2
        self.is_signed = self.np.kind in "fi"
        self.itemsize = self.np.itemsize
        self._cat = category  # 0 bool, 1 integer, 2 floating

    @property
    def is_complex(self):
        return False

    def __repr__(self):
        return "cygrad." + self.name

    def __reduce__(self):
        return self.name


bool = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

half, float, double = float16, float32, float64
short, int, long = int16, int32, int64

_ALL = (bool, uint8, int8, int16, int32, int64, float16, float32, float64)
_FROM_NP = {d.np: d for d in _ALL}
_BY_NAME = {d.name: d for d in _ALL}
_BY_NAME.update(half=float16, float=float32, double=float64, short=int16, int=int32, long=int64)

_default = float32


def get_default_dtype():
    """Return the default floating point dtype (``cygrad.float32`` unless changed).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.get_default_dtype()
    cygrad.float32
    """
    return _default


def set_default_dtype(d):
    """Set the default floating point dtype; only ``float32`` and ``float64`` are allowed.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.set_default_dtype(cygrad.float64); cygrad.tensor([1.0]).dtype
    cygrad.float64
    >>> cygrad.set_default_dtype(cygrad.float32)
    """
    global _default
    d = to_dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default = d


def to_dtype(d):
    """Convert a cygrad dtype, a torch dtype, a NumPy dtype or a name to a cygrad dtype."""
    if d.__class__ is dtype:
        return d
    if isinstance(d, str):
        r = _BY_NAME.get(d.replace("torch.", "").replace("cygrad.", ""))
        if r is not None:
            return r
    elif d is builtins.float:
        return float64
    elif d is builtins.int:
        return int64
    elif d is builtins.bool:
        return bool
    else:
        name = getattr(d, "name", None) if type(d).__module__ == "torch" else None
        if name is None and type(d).__module__ == "torch":
            name = str(d).replace("torch.", "")
        if name is not None and name in _BY_NAME:
            return _BY_NAME[name]
        try:
            return _FROM_NP[np.dtype(d)]
        except (TypeError, KeyError):
            pass
    raise TypeError(f"unsupported dtype {d!r}; cygrad supports "
                    + ", ".join(x.name for x in _ALL))


def from_numpy_dtype(npd):
    """The cygrad dtype of a NumPy dtype (TypeError for unsupported ones)."""
    try:
        return _FROM_NP[npd]
    except KeyError:
        raise TypeError(f"can't convert np.ndarray of type {npd}. The only supported types are: "
                        + ", ".join(x.name for x in _ALL)) from None


def promote_types(a, b):
    """The smallest dtype to which both ``a`` and ``b`` can be cast (torch.promote_types).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.promote_types(cygrad.int32, cygrad.float32)
    cygrad.float32
    """
    a, b = to_dtype(a), to_dtype(b)
    if a is b:
        return a
    if a._cat == b._cat:
        return _FROM_NP[np.promote_types(a.np, b.np)]
    return a if a._cat > b._cat else b


def _scalar_cat(x):
    t = type(x)
    if t is builtins.bool or t is np.bool_:
        return 0
    if t is builtins.int or isinstance(x, np.integer):
        return 1
    return 2


def result_type(*operands):
    """The dtype of an elementwise op over tensors and Python scalars, with torch's rules.

    Dimensioned tensors decide the dtype unless a zero-dim tensor or a Python scalar is of a
    higher category (bool < integer < floating); then the zero-dim tensor's dtype, or for a
    Python float the default dtype (int64 for a Python int), is used.
    """
    from ._tensor import Tensor
    dim_t = zero_t = None
    scal_cat = -1
    for x in operands:
        if isinstance(x, Tensor):
            d = x.dtype
            if x._data.ndim:
                dim_t = d if dim_t is None else promote_types(dim_t, d)
            else:
                zero_t = d if zero_t is None else promote_types(zero_t, d)
        elif x is not None:
            c = _scalar_cat(x)
            if c > scal_cat:
                scal_cat = c
    res = dim_t
    if zero_t is not None:
        if res is None or zero_t._cat > res._cat:
            res = zero_t
    if scal_cat >= 0:
        if res is None or scal_cat > res._cat:
            res = (bool, int64, _default)[scal_cat]
    return res


def can_cast(from_, to):
    """Whether a value of dtype ``from_`` may be cast to ``to`` by an in-place op (torch.can_cast)."""
    from_, to = to_dtype(from_), to_dtype(to)
    return from_._cat <= to._cat


_SCALAR_NAMES = {"float16": "Half", "float32": "Float", "float64": "Double", "int8": "Char", "int16": "Short",
                 "int32": "Int", "int64": "Long", "uint8": "Byte", "bool": "Bool"}


def scalar_name(d):
    """torch's ScalarType name of a dtype (``Float``, ``Long``, ...), as used in error messages."""
    d = to_dtype(d)
    return _SCALAR_NAMES.get(d.name, d.name.capitalize())


_C_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double", "int8": "signed char",
            "int16": "short int", "int32": "int", "int64": "long int", "uint8": "unsigned char", "bool": "bool"}


def c_name(d):
    """The C type name torch prints for a dtype in some messages (``float``, ``long int``, ...)."""
    d = to_dtype(d)
    return _C_NAMES.get(d.name, d.name)
