"""Activation kernels: forward / backward pairs, float32 / float64 (see activation.pyx).

Elementwise kernels take 1-D contiguous arrays; backward kernels take the forward input x and
the output gradient grad, and write out = grad * f'(x). Softmax kernels take 2-D C-contiguous
arrays; their backward takes the forward output y.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]

def gelu_forward(x: _Array, out: _Array, tanh_approx: bool) -> None:
    """out := x * Phi(x), or 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) if tanh_approx."""

def gelu_backward(x: _Array, grad: _Array, out: _Array, tanh_approx: bool) -> None:
    """out := grad * (Phi(x) + x * phi(x)), or the derivative of the tanh approximation."""

def silu_forward(x: _Array, out: _Array) -> None:
    """out := x * sigmoid(x)"""

def silu_backward(x: _Array, grad: _Array, out: _Array) -> None:
    """out := grad * s * (1 + x * (1 - s)), s = sigmoid(x)"""

def relu_forward(x: _Array, out: _Array) -> None:
    """out := 0 where x < 0, else x"""

def relu_backward(y: _Array, grad: _Array, out: _Array) -> None:
    """out := 0 where y <= 0, else grad"""

def mish_forward(x: _Array, out: _Array) -> None:
    """out := x * tanh(softplus(x))"""

def mish_backward(x: _Array, grad: _Array, out: _Array) -> None:
    """out := grad * (t + x * sigmoid(x) * (1 - t^2)), t = tanh(softplus(x))"""

def softplus_forward(x: _Array, out: _Array, beta: float, threshold: float) -> None:
    """out := log(1 + exp(beta * x)) / beta, or x where beta * x > threshold"""

def softplus_backward(x: _Array, grad: _Array, out: _Array, beta: float, threshold: float) -> None:
    """out := grad * sigmoid(beta * x), or grad where beta * x > threshold"""

def elu_forward(x: _Array, out: _Array, alpha: float, scale: float, input_scale: float) -> None:
    """out := scale * x if x > 0 else scale * alpha * (exp(input_scale * x) - 1)"""

def elu_backward(
    x: _Array, grad: _Array, out: _Array, alpha: float, scale: float, input_scale: float
) -> None:
    """out := grad * scale if x > 0 else grad * scale * alpha * input_scale * exp(input_scale * x)"""

def logsigmoid_forward(x: _Array, out: _Array) -> None:
    """out := log(sigmoid(x)) = -softplus(-x)"""

def logsigmoid_backward(x: _Array, grad: _Array, out: _Array) -> None:
    """out := grad * sigmoid(-x)"""

def softmax_forward(x: _Array, out: _Array, log: bool) -> None:
    """out[r] := exp(x[r] - m) / sum(exp(x[r] - m)), m = max(x[r]); or its log if log."""

def softmax_backward(y: _Array, grad: _Array, out: _Array, log: bool) -> None:
    """out[r] := y[r] * (g[r] - sum(g[r] * y[r])); if log: g[r] - exp(y[r]) * sum(g[r])."""
