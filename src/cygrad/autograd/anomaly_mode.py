"""Anomaly detection: a NaN produced by a backward function raises, naming the op."""
from .grad_mode import state

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]


class detect_anomaly:
    """Context manager: record forward tracebacks and raise when a backward returns NaN.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor([0.0], requires_grad=True)
    >>> with cygrad.autograd.detect_anomaly():
    ...     try:
    ...         (x.sqrt() * 0).sum().backward()
    ...     except RuntimeError as e:
    ...         print(str(e).splitlines()[0])
    Function 'SqrtBackward0' returned nan values in its 0th output.
    """

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self.prev = state.anomaly
        state.anomaly = self.check_nan
        return self

    def __exit__(self, *exc):
        state.anomaly = self.prev
        return False


class set_detect_anomaly(detect_anomaly):
    """Turn anomaly detection on or off (function call or context manager)."""

    def __init__(self, mode, check_nan=True):
        self.prev = state.anomaly
        state.anomaly = bool(mode) and check_nan

    def __enter__(self):
        return self


def is_anomaly_enabled():
    """Whether anomaly detection is on."""
    return state.anomaly
