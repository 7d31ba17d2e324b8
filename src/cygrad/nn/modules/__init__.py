"""``cygrad.nn`` modules."""
from .module import Module
from .container import Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict
from .linear import Identity, Linear, Bilinear, Flatten, Unflatten, Dropout, Embedding, PReLU
from .activation import (ReLU, ReLU6, LeakyReLU, ELU, SELU, CELU, GELU, SiLU, Mish, Softplus, Hardtanh,
                         Hardsigmoid, Hardswish, LogSigmoid, Softmax, LogSoftmax, Softmin, Sigmoid, Tanh, Softsign,
                         Tanhshrink, Threshold, GLU)
from .loss import (CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, SmoothL1Loss, HuberLoss, BCELoss, BCEWithLogitsLoss,
                   KLDivLoss, CosineEmbeddingLoss, MarginRankingLoss)

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Identity", "Linear",
           "Bilinear", "Flatten", "Unflatten", "Dropout", "Embedding", "PReLU", "ReLU", "ReLU6", "LeakyReLU", "ELU",
           "SELU", "CELU", "GELU", "SiLU", "Mish", "Softplus", "Hardtanh", "Hardsigmoid", "Hardswish", "LogSigmoid",
           "Softmax", "LogSoftmax", "Softmin", "Sigmoid", "Tanh", "Softsign", "Tanhshrink", "Threshold", "GLU",
           "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss"]

# Spatial layers: each module lists its classes in ``__all__``.
from . import conv as _conv, pooling as _pooling, normalization as _normalization, upsampling as _upsampling  # noqa: E402
from . import deform as _deform  # noqa: E402
from .conv import *  # noqa: E402,F401,F403
from .pooling import *  # noqa: E402,F401,F403
from .normalization import *  # noqa: E402,F401,F403
from .upsampling import *  # noqa: E402,F401,F403
from .deform import *  # noqa: E402,F401,F403

__all__ += _conv.__all__ + _pooling.__all__ + _normalization.__all__ + _upsampling.__all__ + _deform.__all__

# Sequence layers.
from . import rnn as _rnn, transformer as _transformer, mamba as _mamba  # noqa: E402
from .rnn import *  # noqa: E402,F401,F403
from .transformer import *  # noqa: E402,F401,F403
from .mamba import *  # noqa: E402,F401,F403

__all__ += _rnn.__all__ + _transformer.__all__ + _mamba.__all__
