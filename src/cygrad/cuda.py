"""``torch.cuda`` stand-in: cygrad runs on the CPU only, so no CUDA device is ever available.

Lets the common device-selection idiom run unchanged::

    device = "cuda" if torch.cuda.is_available() else "cpu"
"""

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all"]


def is_available():
    """Always False: cygrad has no GPU backend.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.cuda.is_available()
    False
    """
    return False


def device_count():
    """Always 0."""
    return 0


def manual_seed(seed):
    """Accepted for compatibility; there is no CUDA generator to seed."""


def manual_seed_all(seed):
    """Accepted for compatibility; there is no CUDA generator to seed."""
