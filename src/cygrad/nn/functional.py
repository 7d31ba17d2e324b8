"""``cygrad.nn.functional``: activations, linear, pad, ... (``torch.nn.functional``)."""
from ..ops.activation import (relu, relu6, leaky_relu, elu, selu, celu, gelu, silu, mish, softplus, hardtanh,
                              hardsigmoid, hardswish, logsigmoid, softmax, log_softmax, softmin, softsign, tanhshrink,
                              threshold, glu)
from ..ops.linalg import linear
from ..ops.shape import pad
from ..ops.elementwise import sigmoid, tanh

__all__ = ["relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "hardtanh",
           "hardsigmoid", "hardswish", "logsigmoid", "softmax", "log_softmax", "softmin", "softsign", "tanhshrink",
           "threshold", "glu", "linear", "pad", "sigmoid", "tanh"]


def relu_(input):
    """In-place ``relu``."""
    return relu(input, inplace=True)


def leaky_relu_(input, negative_slope=0.01):
    """In-place ``leaky_relu``."""
    return leaky_relu(input, negative_slope, inplace=True)
