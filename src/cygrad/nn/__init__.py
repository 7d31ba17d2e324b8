"""Neural-network building blocks (``torch.nn``)."""
from . import functional
