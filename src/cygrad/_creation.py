"""Tensor creation: tensor, as_tensor, from_numpy, zeros, ones, full, arange, rand, ..."""
import builtins
import math

import numpy as np

from . import _dtype as D
from ._random import rng
from ._tensor import Tensor, check_device


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, got {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(int(s))
    return tuple(out)


def _finish(data, requires_grad, device=None):
    check_device(device)
    t = Tensor._make(data)
    if requires_grad:
        if data.dtype.kind != "f":  # the factory functions' wording (requires_grad_ has its own)
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        t.requires_grad_(True)
    return t


def _np_dtype(dtype, default=None):
    if dtype is None:
        return (default or D._default).np
    return D.to_dtype(dtype).np


def _infer(data):
    """NumPy array for ``data`` with torch's dtype inference (Python floats -> default dtype)."""
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    if isinstance(data, (list, tuple)):
        data = _unwrap(data)
    arr = np.array(data)
    if arr.dtype == np.float64 and not _has_np_float64(data):
        arr = arr.astype(D._default.np)
    elif arr.dtype.kind == "i" and arr.dtype != np.int64:
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "biuf":
        raise TypeError(f"Could not infer dtype of {type(data).__name__}" if arr.dtype == object
                        else f"can't convert data of dtype {arr.dtype}")
    return arr


def _has_np_float64(data):
    if isinstance(data, np.ndarray):
        return data.dtype == np.float64
    if isinstance(data, np.float64):
        return True
    if isinstance(data, (list, tuple)) and data:
        return _has_np_float64(data[0])
    return False


def _unwrap(seq):
    out = []
    for x in seq:
        if isinstance(x, Tensor):
            out.append(x._data if x._data.ndim else x._data[()])
        elif isinstance(x, (list, tuple)):
            out.append(_unwrap(x))
        else:
            out.append(x)
    return out


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Create a tensor by copying ``data`` (nested lists, numbers, NumPy arrays, tensors).

    Python floats become the default dtype (float32), ints int64, bools bool.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.tensor([[1, 2], [3, 4]])
    tensor([[1, 2],
            [3, 4]])
    >>> cygrad.tensor([1.5], requires_grad=True)
    tensor([1.5000], requires_grad=True)
    """
    arr = _infer(data)
    arr = np.array(arr, dtype=_np_dtype(dtype, D._FROM_NP.get(arr.dtype)) if dtype is not None else None, copy=True)
    if arr.dtype not in D._FROM_NP:
        arr = arr.astype(D._default.np)
    return _finish(arr, requires_grad, device)


def as_tensor(data, dtype=None, device=None):
    """Convert ``data`` to a tensor, sharing memory with NumPy arrays / tensors when possible.

    Examples
    --------
    >>> import cygrad, numpy as np
    >>> a = np.zeros(2); t = cygrad.as_tensor(a); a[0] = 5; t
    tensor([5., 0.], dtype=cygrad.float64)
    """
    check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype is D.to_dtype(dtype) else data.to(dtype)
    arr = _infer(data)
    if dtype is not None:
        arr = arr.astype(D.to_dtype(dtype).np, copy=False)
    if arr.dtype not in D._FROM_NP:
        raise TypeError(f"can't convert np.ndarray of type {arr.dtype}")
    return Tensor._make(arr)


asarray = as_tensor


def from_numpy(ndarray):
    """A tensor sharing memory with a NumPy array (same dtype).

    Examples
    --------
    >>> import cygrad, numpy as np
    >>> cygrad.from_numpy(np.arange(3)).dtype
    cygrad.int64
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    D.from_numpy_dtype(ndarray.dtype)
    return Tensor._make(ndarray)


def _filled(fill, size, dtype, device, requires_grad, default=None):
    shape = _size(size)
    npd = _np_dtype(dtype, default)
    data = np.zeros(shape, npd) if fill == 0 else (np.ones(shape, npd) if fill == 1 else np.full(shape, fill, npd))
    return _finish(data, requires_grad, device)


def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """A tensor of zeros of the given size.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 3).shape
    cygrad.Size([2, 3])
    """
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """A tensor of ones of the given size.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.ones(2)
    tensor([1., 1.])
    """
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False,
          memory_format=None):
    """An uninitialised tensor of the given size.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.empty(2, 2).shape
    cygrad.Size([2, 2])
    """
    return _finish(np.empty(_size(size), _np_dtype(dtype)), requires_grad, device)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value`` (dtype inferred from it when not given).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.full((2,), 7)
    tensor([7, 7])
    """
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    default = D.bool if isinstance(fill_value, bool) else (D.int64 if isinstance(fill_value, int) else None)
    return _filled(fill_value, (size,) if isinstance(size, int) else size, dtype, device, requires_grad, default)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """Identity matrix (n x m).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.eye(2)
    tensor([[1., 0.],
            [0., 1.]])
    """
    if n < 0 or (m is not None and m < 0):
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    return _finish(np.eye(n, m, dtype=_np_dtype(dtype)), requires_grad, device)


def arange(start, end=None, step=1, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """Values ``start, start+step, ...`` below ``end`` (int64 if all arguments are ints).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.arange(5)
    tensor([0, 1, 2, 3, 4])
    >>> cygrad.arange(0, 1, 0.25)
    tensor([0.0000, 0.2500, 0.5000, 0.7500])
    """
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    all_int = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals)
    npd = _np_dtype(dtype, D.int64 if all_int else None)
    n = max(0, math.ceil((end - start) / step))
    data = (start + np.arange(n, dtype=np.float64 if not all_int else np.int64) * step).astype(npd)
    return _finish(data, requires_grad, device)


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.linspace(0, 1, 3)
    tensor([0.0000, 0.5000, 1.0000])
    """
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _finish(np.linspace(float(start), float(end), int(steps)).astype(_np_dtype(dtype)), requires_grad, device)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    """``base ** linspace(start, end, steps)``."""
    return _finish((base ** np.linspace(start, end, steps)).astype(_np_dtype(dtype)), requires_grad, device)


def _float_dtype_check(dtype, name):
    if dtype is not None and not D.to_dtype(dtype).is_floating_point:
        raise RuntimeError(f"\"{name}\" not implemented for '{D.scalar_name(dtype)}'")


def rand(*size, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1).

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.rand(3); bool(((x >= 0) & (x < 1)).all())
    True
    """
    _float_dtype_check(dtype, "check_uniform_bounds")
    npd = _np_dtype(dtype)
    return _finish(rng(generator).random(_size(size), dtype=npd if npd in (np.float32, np.float64) else np.float64)
                   .astype(npd, copy=False), requires_grad, device)


def randn(*size, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """Standard normal samples.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.randn(2, 3).shape
    cygrad.Size([2, 3])
    """
    _float_dtype_check(dtype, "normal_kernel_cpu")
    npd = _np_dtype(dtype)
    return _finish(rng(generator).standard_normal(_size(size), dtype=npd if npd in (np.float32, np.float64)
                                                  else np.float64).astype(npd, copy=False), requires_grad, device)


def randint(low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None, device=None,
            requires_grad=False):
    """Integers uniform in ``[low, high)`` (int64 by default); ``randint(high, size)`` also works.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.randint(0, 10, (3,)).dtype
    cygrad.int64
    """
    if size is None:
        if isinstance(high, (tuple, list)):
            low, high, size = 0, low, high
        else:
            raise TypeError("randint() missing required argument 'size'")
    if high is None:
        raise TypeError("randint() missing required argument 'high'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return _finish(rng(generator).integers(low, high, _size((size,) if isinstance(size, int) else size))
                   .astype(_np_dtype(dtype, D.int64)), requires_grad, device)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of ``0..n-1``.

    Examples
    --------
    >>> import cygrad
    >>> sorted(cygrad.randperm(4).tolist())
    [0, 1, 2, 3]
    """
    return _finish(rng(generator).permutation(n).astype(_np_dtype(dtype, D.int64)), requires_grad, device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Normal samples with the given mean and std (tensors or numbers)."""
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = _size((size,) if isinstance(size, int) else size) if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    npd = mean._data.dtype if isinstance(mean, Tensor) else (std._data.dtype if isinstance(std, Tensor) else _np_dtype(dtype))
    return _finish((rng(generator).standard_normal(shape) * s + m).astype(npd), requires_grad, device)


def bernoulli(input, p=None, *, generator=None):
    """0/1 samples with probabilities ``input`` (or ``p``)."""
    prob = input._data if p is None else np.full(input._data.shape, p)
    return Tensor._make((rng(generator).random(prob.shape) < prob).astype(input._data.dtype))


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Sample category indices from (rows of) non-negative weights."""
    w = input._data.astype(np.float64)
    two = w.ndim == 2
    w2 = w if two else w[None]
    if not replacement and num_samples > w2.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    r = rng(generator)
    out = np.stack([r.choice(w2.shape[1], num_samples, replace=replacement, p=row / row.sum()) for row in w2])
    return Tensor._make((out if two else out[0]).astype(np.int64))


def _like(fn):
    def f(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None, **kw):
        return fn(*input._data.shape, dtype=dtype if dtype is not None else input.dtype, device=device,
                  requires_grad=requires_grad, **kw)
    f.__name__ = fn.__name__ + "_like"
    f.__doc__ = f"``{fn.__name__}`` with the shape (and by default dtype) of ``input``."
    return f


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    """``full`` with the shape (and by default dtype) of ``input``."""
    return full(input._data.shape, fill_value, dtype=dtype if dtype is not None else input.dtype, device=device,
                requires_grad=requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False, generator=None):
    """``randint`` with the shape (and by default dtype) of ``input``."""
    if high is None:
        low, high = 0, low
    return randint(low, high, input._data.shape, dtype=dtype if dtype is not None else input.dtype, device=device,
                   generator=generator)
