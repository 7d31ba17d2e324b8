"""Utilities (``torch.utils``): activation checkpointing and data loading."""
from . import checkpoint
from . import data

__all__ = ["checkpoint", "data"]
