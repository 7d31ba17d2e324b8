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
