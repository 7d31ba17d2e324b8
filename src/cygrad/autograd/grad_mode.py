"""Grad mode: no_grad, enable_grad, set_grad_enabled, inference_mode.

The single switch is ``state.enabled``; ops read it to decide whether to record a graph.
"""
import functools
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "is_inference_mode_enabled"]


class _State(threading.local):
    def __init__(self):
        self.enabled = True
        self.inference = False
        self.anomaly = False
        self.anomaly_check_nan = True


state = _State()


def is_grad_enabled():
    """Whether operations currently record the autograd graph.

    Examples
    --------
    >>> import cygrad
    >>> with cygrad.no_grad():
    ...     cygrad.is_grad_enabled()
    False
    """
    return state.enabled


def is_inference_mode_enabled():
    """Whether an ``inference_mode`` block is active."""
    return state.inference


class _Mode:
    """Base of the grad-mode context managers; each instance also works as a decorator."""

    def _target(self):
        raise NotImplementedError

    def __enter__(self):
        self._prev = (state.enabled, state.inference)
        self._apply()

    def _apply(self):
        state.enabled = self._target()

    def __exit__(self, *exc):
        state.enabled, state.inference = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(*self._args()):
                return fn(*args, **kwargs)
        return wrapper

    def _args(self):
        return ()

    def clone(self):
        return self.__class__(*self._args())


class no_grad(_Mode):
    """Context manager and decorator that disables graph recording.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.ones(2, requires_grad=True)
    >>> with cygrad.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __init__(self, orig_func=None):
        # allow bare ``@no_grad`` use as well as ``@no_grad()``
        self._orig = orig_func

    def __new__(cls, orig_func=None):
        self = super().__new__(cls)
        if orig_func is not None and callable(orig_func):
            self.__init__()
            return self(orig_func)
        return self

    def _target(self):
        return False


class enable_grad(_Mode):
    """Context manager and decorator that enables graph recording (inside ``no_grad``).

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.ones(2, requires_grad=True)
    >>> with cygrad.no_grad():
    ...     with cygrad.enable_grad():
    ...         y = x * 2
    >>> y.requires_grad
    True
    """

    def _target(self):
        return True


class set_grad_enabled(_Mode):
    """Set grad mode on or off; works as a function, context manager or decorator.

    Examples
    --------
    >>> import cygrad
    >>> with cygrad.set_grad_enabled(False):
    ...     cygrad.is_grad_enabled()
    False
    """

    def __init__(self, mode):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(): argument 'mode' must be bool, not {type(mode).__name__}")
        self._mode = mode
        self._prev = (state.enabled, state.inference)
        state.enabled = mode

    def _target(self):
        return self._mode

    def _args(self):
        return (self._mode,)

    def __enter__(self):
        # the state was already switched in __init__ (function-call form)
        pass

    def __call__(self, fn):
        state.enabled, state.inference = self._prev
        return super().__call__(fn)


class inference_mode(_Mode):
    """Like ``no_grad``, for code that will never need gradients (``mode=False`` is a no-op).

    Examples
    --------
    >>> import cygrad
    >>> with cygrad.inference_mode():
    ...     y = cygrad.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    False
    """

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):
            self.__init__()
            return self(mode)
        return self

    def __init__(self, mode=True):
        self._mode = bool(mode) if not callable(mode) else True

    def _args(self):
        return (self._mode,)

    def _apply(self):
        if self._mode:
            state.enabled = False
            state.inference = True
