"""Optimization algorithms (``torch.optim``): optimizers over fused Cython update kernels,
learning-rate schedulers, and :class:`GradAccumulator` for gradient accumulation."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW, Adamax, NAdam
from .rmsprop import RMSprop
from .adagrad import Adagrad
from . import lr_scheduler
from .accumulate import GradAccumulator
from .surgery import PCGrad, CAGrad, GradNorm

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adamax", "NAdam", "RMSprop", "Adagrad", "lr_scheduler",
           "GradAccumulator", "surgery", "PCGrad", "CAGrad", "GradNorm"]
