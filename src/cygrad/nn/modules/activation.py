"""Module wrappers of the activation functions of ``cygrad.nn.functional``."""
from ...ops import activation as A
from ...ops.elementwise import sigmoid as _sigmoid, tanh as _tanh
from .module import Module

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Softplus", "Hardtanh",
           "Hardsigmoid", "Hardswish", "LogSigmoid", "Softmax", "LogSoftmax", "Softmin", "Sigmoid", "Tanh",
           "Softsign", "Tanhshrink", "Threshold", "GLU"]


def _inplace_str(inplace):
    return "inplace=True" if inplace else ""


class _Inplace(Module):
    fn = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return type(self).fn(input, inplace=self.inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace)


class ReLU(_Inplace):
    """``max(0, x)``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.ReLU()(cygrad.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    fn = staticmethod(A.relu)


class SELU(_Inplace):
    """Scaled ELU.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.SELU()(cygrad.randn(3))
    """
    fn = staticmethod(A.selu)


class SiLU(_Inplace):
    """``x * sigmoid(x)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.SiLU()(cygrad.randn(3))
    """
    fn = staticmethod(A.silu)


class Mish(_Inplace):
    """``x * tanh(softplus(x))``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Mish()(cygrad.randn(3))
    """
    fn = staticmethod(A.mish)


class Hardsigmoid(_Inplace):
    """Piecewise-linear sigmoid ``relu6(x + 3) / 6``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Hardsigmoid()(cygrad.randn(3))
    """
    fn = staticmethod(A.hardsigmoid)


class Hardswish(_Inplace):
    """``x * relu6(x + 3) / 6``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Hardswish()(cygrad.randn(3))
    """
    fn = staticmethod(A.hardswish)


class Hardtanh(Module):
    """Clamp to ``[min_val, max_val]``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Hardtanh(-2, 2)(cygrad.randn(3))
    """

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace
        assert self.max_val > self.min_val

    def forward(self, input):
        return A.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"min_val={self.min_val}, max_val={self.max_val}{inplace_str}"


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.ReLU6()(cygrad.randn(3))
    """

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace)


class LeakyReLU(Module):
    """``max(0, x) + negative_slope * min(0, x)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.LeakyReLU(0.1)(cygrad.randn(3))
    """

    def __init__(self, negative_slope=1e-2, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return A.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"negative_slope={self.negative_slope}{inplace_str}"


class ELU(Module):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.ELU()(cygrad.randn(3))
    """

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return A.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"alpha={self.alpha}{inplace_str}"


class CELU(ELU):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.CELU()(cygrad.randn(3))
    """

    def forward(self, input):
        return A.celu(input, self.alpha, self.inplace)


class GELU(Module):
    """Gaussian error linear unit (``approximate='none'`` or ``'tanh'``).

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.GELU(approximate="tanh")(cygrad.randn(3))
    """

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return A.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={repr(self.approximate)}"


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta`` (linear above ``threshold``).

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Softplus(beta=2.0)(cygrad.randn(3))
    """

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return A.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Threshold(Module):
    """``x`` if ``x > threshold`` else ``value``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Threshold(0.1, 20.0)(cygrad.randn(3))
    """

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace

    def forward(self, input):
        return A.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self):
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"threshold={self.threshold}, value={self.value}{inplace_str}"


class _NoArg(Module):
    fn = None

    def forward(self, input):
        return type(self).fn(input)


class LogSigmoid(_NoArg):
    """``log(sigmoid(x))``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.LogSigmoid()(cygrad.randn(3))
    """
    fn = staticmethod(A.logsigmoid)


class Sigmoid(_NoArg):
    """``1 / (1 + exp(-x))``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Sigmoid()(cygrad.randn(3))
    """
    fn = staticmethod(_sigmoid)


class Tanh(_NoArg):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Tanh()(cygrad.randn(3))
    """
    fn = staticmethod(_tanh)


class Softsign(_NoArg):
    """``x / (1 + |x|)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Softsign()(cygrad.randn(3))
    """
    fn = staticmethod(A.softsign)


class Tanhshrink(_NoArg):
    """``x - tanh(x)``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Tanhshrink()(cygrad.randn(3))
    """
    fn = staticmethod(A.tanhshrink)


class _DimModule(Module):
    fn = None

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def __setstate__(self, state):
        super().__setstate__(state)
        if not hasattr(self, "dim"):
            self.dim = None

    def forward(self, input):
        return type(self).fn(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_DimModule):
    """Softmax along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Softmax(dim=1)(cygrad.randn(2, 3))
    """
    fn = staticmethod(A.softmax)


class LogSoftmax(_DimModule):
    """Log-softmax along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.LogSoftmax(dim=1)(cygrad.randn(2, 3))
    """
    fn = staticmethod(A.log_softmax)


class Softmin(_DimModule):
    """Softmax of ``-x`` along ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> y = cygrad.nn.Softmin(dim=1)(cygrad.randn(2, 3))
    """
    fn = staticmethod(A.softmin)


class GLU(Module):
    """Gated linear unit: ``a * sigmoid(b)`` with ``a, b`` the halves of ``dim``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.nn.GLU()(cygrad.randn(4, 2)).shape
    cygrad.Size([4, 1])
    """

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return A.glu(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
