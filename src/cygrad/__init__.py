"""cygrad: a fast CPU tensor and autograd library with PyTorch's API.

``import cygrad as torch`` runs CPU code written for PyTorch.
"""
__version__ = "0.1.0"

from ._dtype import (dtype, bool, uint8, int8, int16, int32, int64, float16, float32, float64, half, float,
                     double, short, int, long, get_default_dtype, set_default_dtype, promote_types,
                     result_type as _result_type, can_cast)
from ._tensor import Tensor, Size, device
from .autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled,
                                 is_inference_mode_enabled)
from ._random import (Generator, manual_seed, seed, initial_seed, default_generator, get_rng_state,
                      set_rng_state)
from ._creation import (tensor, as_tensor, asarray, from_numpy, zeros, ones, empty, full, eye, arange, linspace,
                        logspace, rand, randn, randint, randperm, normal, bernoulli, multinomial, zeros_like,
                        ones_like, empty_like, full_like, rand_like, randn_like, randint_like)
from . import _methods  # noqa: F401  (binds Tensor methods and operators)
from .ops.elementwise import (
    add, sub, subtract, mul, multiply, div, divide, true_divide, floor_divide, remainder, fmod, pow, float_power,
    maximum, minimum, fmax, fmin, exp, exp2, log, log2, log10, log1p, expm1, sqrt, rsqrt, abs, absolute, sign, sgn,
    neg, negative, reciprocal, sin, cos, tan, asin, acos, atan, arcsin, arccos, arctan, sinh, cosh, tanh, sigmoid,
    erf, erfc, floor, ceil, trunc, fix, frac, round, square, where, clamp, clip, clamp_min, clamp_max, lerp, addcmul,
    addcdiv, atan2, eq, ne, lt, le, gt, ge, not_equal, less, less_equal, greater, greater_equal, bitwise_and,
    bitwise_or, bitwise_xor, bitwise_not, logical_not, logical_and, logical_or, logical_xor, isnan, isinf, isfinite,
    isclose, allclose, equal, nan_to_num, broadcast_shapes, clone)
from .ops.reduce import (sum, mean, prod, amax, amin, max, min, argmax, argmin, var, std, var_mean, std_mean,
                         logsumexp, norm, cumsum, cumprod, all, any, count_nonzero)
from .ops.shape import (reshape, flatten, unflatten, squeeze, unsqueeze, permute, transpose, swapaxes, swapdims, t,
                        movedim, moveaxis, broadcast_to, broadcast_tensors, repeat_interleave, index_select, gather,
                        scatter, scatter_add, masked_fill, masked_select, nonzero, argwhere, narrow, select, unbind,
                        split, tensor_split, chunk, cat, concat, concatenate, stack, hstack, vstack, tril, triu,
                        flip, fliplr, flipud, roll, index_put)
from .ops.linalg import matmul, mm, bmm, addmm, baddbmm, addmv, mv, outer, ger, dot, inner, vdot, einsum
from .ops.activation import relu, softmax, log_softmax
from . import autograd
from ._config import set_num_threads, get_num_threads, show_config
from . import nn
from . import optim
from . import utils
from . import cuda
from .serialization import save, load

def is_tensor(obj):
    """Whether ``obj`` is a cygrad Tensor.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.is_tensor(cygrad.zeros(1))
    True
    """
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """Whether ``input`` has a floating point dtype."""
    return input.is_floating_point()


def numel(input):
    """Number of elements of ``input``."""
    return input.numel()


def get_num_interop_threads():
    return 1


def set_num_interop_threads(n):
    pass


def result_type(tensor1, tensor2):
    """The dtype an elementwise op of the two operands produces (torch's promotion rules)."""
    return _result_type(tensor1, tensor2)


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Accepted for compatibility: cygrad's kernels are deterministic."""


def compile(model=None, **kwargs):
    """No-op stand-in for ``torch.compile``: returns the model unchanged."""
    if model is None:
        return lambda m: m
    return model


strided = "strided"
contiguous_format = preserve_format = channels_last = None
import math as _math

pi = _math.pi
e = _math.e
inf = _math.inf
nan = _math.nan
