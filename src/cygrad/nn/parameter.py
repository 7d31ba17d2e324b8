"""``nn.Parameter``: a Tensor that a Module registers as one of its parameters."""
import numpy as np

from .._tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A Tensor that is a module parameter (``torch.nn.Parameter``); requires grad by default.

    Parameters
    ----------
    data : Tensor, optional
        The values (shared, not copied). Default: an empty float32 tensor.
    requires_grad : bool, optional
        Default True.

    Examples
    --------
    >>> import cygrad
    >>> p = cygrad.nn.Parameter(cygrad.zeros(2))
    >>> p.requires_grad
    True
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = Tensor._make(np.empty(0, np.float32))
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter data must be a Tensor, got {type(data).__name__}")
        self._data = data._data
        self._requires_grad = False
        self._grad = None
        self._grad_fn = None
        self._output_nr = 0
        self._version_box = data._version_box
        self._base = None
        self._extra = None
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(Tensor._make(np.array(self._data, copy=True)), self._requires_grad)
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (np.array(self._data, copy=True), self._requires_grad))


def _rebuild_parameter(data, requires_grad):
    return Parameter(Tensor._make(data), requires_grad)
