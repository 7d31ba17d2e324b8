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

from ..ops.loss import (cross_entropy, nll_loss, mse_loss, l1_loss, smooth_l1_loss, huber_loss,  # noqa: E402
                        binary_cross_entropy, binary_cross_entropy_with_logits, kl_div, cosine_embedding_loss,
                        margin_ranking_loss)
from ..ops.nn_misc import dropout, embedding, bilinear, prelu  # noqa: E402

__all__ += ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
            "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss",
            "margin_ranking_loss", "dropout", "embedding", "bilinear", "prelu"]

# Spatial families: each ops module lists its public functions in ``__all__``.
from ..ops import conv as _conv, pool as _pool, norm as _norm, resample as _resample  # noqa: E402
from ..ops.conv import *  # noqa: E402,F401,F403
from ..ops.pool import *  # noqa: E402,F401,F403
from ..ops.norm import *  # noqa: E402,F401,F403
from ..ops.resample import *  # noqa: E402,F401,F403

__all__ += _conv.__all__ + _pool.__all__ + _norm.__all__ + _resample.__all__

# Sequence families.
from ..ops import attention as _attention, scan as _scan  # noqa: E402
from ..ops.attention import *  # noqa: E402,F401,F403
from ..ops.scan import *  # noqa: E402,F401,F403

__all__ += _attention.__all__ + _scan.__all__
