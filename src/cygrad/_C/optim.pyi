"""Fused optimizer update kernels, float32 / float64 (see optim.pyx).

Every kernel updates one parameter and its state buffers in place, in one pass over 1-D
C-contiguous arrays of equal length and dtype.
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]

def sgd_step(param: _Array, grad: _Array, buf: _Array, lr: float, momentum: float, dampening: float,
             weight_decay: float, nesterov: bool, maximize: bool, init_buf: bool) -> None: ...
def adam_step(param: _Array, grad: _Array, exp_avg: _Array, exp_avg_sq: _Array, max_exp_avg_sq: _Array,
              lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool,
              amsgrad: bool, maximize: bool, bias_correction1: float, bias_correction2: float) -> None: ...
def rmsprop_step(param: _Array, grad: _Array, square_avg: _Array, grad_avg: _Array, momentum_buf: _Array,
                 lr: float, alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
                 maximize: bool) -> None: ...
def adagrad_step(param: _Array, grad: _Array, state_sum: _Array, clr: float, eps: float, weight_decay: float,
                 maximize: bool) -> None: ...
def adamax_step(param: _Array, grad: _Array, exp_avg: _Array, exp_inf: _Array, clr: float, beta1: float,
                beta2: float, eps: float, weight_decay: float, maximize: bool) -> None: ...
def nadam_step(param: _Array, grad: _Array, exp_avg: _Array, exp_avg_sq: _Array, beta1: float, beta2: float,
               eps: float, weight_decay: float, decoupled: bool, decay: float, maximize: bool,
               bias_correction2: float, coef_grad: float, coef_avg: float) -> None: ...
