"""Differentiable operations, one module per family (each op: public function -> Function -> kernel)."""
