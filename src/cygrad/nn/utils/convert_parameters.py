"""Conversion between parameters and one flat vector (``torch.nn.utils.parameters_to_vector``)."""
from ..._tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters):
    """Flatten and concatenate ``parameters`` into one 1-D tensor (differentiable).

    Parameters
    ----------
    parameters : iterable of Tensor
        The tensors.

    Returns
    -------
    Tensor
        Their elements, one tensor after the other.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils import parameters_to_vector
    >>> parameters_to_vector([cygrad.ones(2, 2), cygrad.zeros(1)])
    tensor([1., 1., 1., 1., 0.])
    """
    import cygrad
    return cygrad.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Copy the slices of the 1-D ``vec`` into ``parameters`` (sets each one's ``.data``).

    Parameters
    ----------
    vec : Tensor
        A 1-D tensor with as many elements as the parameters together.
    parameters : iterable of Tensor
        The tensors to overwrite.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils import vector_to_parameters
    >>> a, b = cygrad.zeros(2), cygrad.zeros(1)
    >>> vector_to_parameters(cygrad.tensor([1.0, 2.0, 3.0]), [a, b])
    >>> b
    tensor([3.])
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    pointer = 0
    for param in parameters:
        num = param.numel()
        param.data = vec[pointer:pointer + num].reshape(param.shape).data
        pointer += num
