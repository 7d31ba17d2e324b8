"""Reverse-mode automatic differentiation with PyTorch's ``torch.autograd`` API."""
from .function import Function, FunctionCtx, once_differentiable, Node
from .engine import backward, grad
from .grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled,
                        is_inference_mode_enabled)
from .gradcheck import gradcheck, gradgradcheck, GradcheckError
from .anomaly_mode import detect_anomaly, set_detect_anomaly, is_anomaly_enabled

__all__ = ["Function", "FunctionCtx", "once_differentiable", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "inference_mode", "is_grad_enabled", "gradcheck", "gradgradcheck",
           "GradcheckError", "detect_anomaly", "set_detect_anomaly", "Node"]
