"""Differentiable operations, one module per family (each op: public function -> Function -> kernel)."""

from .deform import *  # noqa: E402,F401,F403  (cygrad.ops.deform_conv2d, as torchvision.ops)
