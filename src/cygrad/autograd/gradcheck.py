"""gradcheck / gradgradcheck: compare analytical and numerical (central difference) Jacobians."""
import warnings

import numpy as np

from .grad_mode import enable_grad, no_grad

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck when the analytical and numerical Jacobians differ."""


def _tensors(x):
    from .._tensor import Tensor
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _diff_outputs(func, inputs):
    from .._tensor import Tensor
    out = func(*inputs)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    return outs


def _numerical(func, inputs, wrt, outs0, eps):
    """J[o][i] of shape (numel(out_o), numel(in_i)), by central differences."""
    jac = [[np.zeros((o._data.size, inputs[i]._data.size)) for i in wrt] for o in outs0]
    with no_grad():
        for col, i in enumerate(wrt):
            data = inputs[i]._data
            flat = data.reshape(-1) if data.flags.c_contiguous else None
            if flat is None:
                raise ValueError(f"gradcheck: input {i} must be contiguous")
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                plus = [np.array(o._data, dtype=np.float64) for o in _diff_outputs(func, inputs)]
                flat[j] = orig - eps
                minus = [np.array(o._data, dtype=np.float64) for o in _diff_outputs(func, inputs)]
                flat[j] = orig
                for k in range(len(outs0)):
                    jac[k][col][:, j] = ((plus[k] - minus[k]) / (2 * eps)).reshape(-1)
    return jac


def _analytical(outs, inputs, wrt):
    from .._tensor import Tensor
    from .engine import grad as _grad
    jac = [[np.zeros((o._data.size, inputs[i]._data.size)) for i in wrt] for o in outs]
    targets = [inputs[i] for i in wrt]
    for k, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for r in range(o._data.size):
            go = np.zeros(o._data.shape, o._data.dtype)
            go.reshape(-1)[r] = 1
            gs = _grad(o, targets, Tensor._make(go), retain_graph=True, allow_unused=True)
            for col, g in enumerate(gs):
                if g is not None:
                    if g.shape != targets[col].shape:
                        raise GradcheckError(f"Gradient for input {wrt[col]} has shape {tuple(g.shape)}, expected "
                                             f"{tuple(targets[col].shape)}")
                    jac[k][col][r, :] = np.asarray(g._data, dtype=np.float64).reshape(-1)
    return jac


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_batched_forward_grad=False, check_forward_ad=False, check_backward_ad=True,
              fast_mode=False, masked=None):
    """Check analytical gradients of ``func`` against central finite differences.

    Inputs that require grad are differentiated; use float64 inputs. Returns True, or raises
    :class:`GradcheckError` ("Jacobian mismatch for output i with respect to input j").

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.randn(3, dtype=cygrad.float64, requires_grad=True)
    >>> cygrad.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
    True
    """
    from .._tensor import Tensor
    inputs = _tensors(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of the them "
                         "have requires_grad=True.")
    for i in wrt:
        if inputs[i].dtype.name != "float64":
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point. This check "
                          "will likely fail if all the inputs are not of double precision floating point.")
    outs = _diff_outputs(func, inputs)
    ana = _analytical(outs, inputs, wrt)
    ana2 = _analytical(_diff_outputs(func, inputs), inputs, wrt)
    num = _numerical(func, inputs, wrt, outs, eps)
    for k in range(len(outs)):
        for col, i in enumerate(wrt):
            a, n = ana[k][col], num[k][col]
            if not outs[k].requires_grad and np.any(n != 0):
                return _fail(raise_exception, f"Jacobian mismatch for output {k} with respect to input {i},\n"
                             f"numerical:{n}\nanalytical:{a}\n(the output does not require grad)\n")
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                return _fail(raise_exception, f"Jacobian mismatch for output {k} with respect to input {i},\n"
                             f"numerical:{n}\nanalytical:{a}\n")
            if np.max(np.abs(a - ana2[k][col]), initial=0) > nondet_tol:
                return _fail(raise_exception, f"Backward is not reentrant, i.e., running backward with same input "
                             f"and grad_output multiple times gives different values, although analytical gradient "
                             f"matches numerical gradient. The tolerance for nondeterminism was {nondet_tol}.")
    return True


def _fail(raise_exception, msg):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, gen_non_contig_grad_outputs=False,
                  raise_exception=True, nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
                  check_batched_grad=False, check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False,
                  masked=False):
    """Check second-order gradients: gradcheck of the vector-Jacobian product of ``func``.

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.randn(3, dtype=cygrad.float64, requires_grad=True)
    >>> cygrad.autograd.gradgradcheck(lambda t: (t * t).sin(), (x,))
    True
    """
    from .._tensor import Tensor
    from .engine import grad as _grad
    from .._creation import randn
    inputs = _tensors(inputs)
    outs = _diff_outputs(func, inputs)
    if grad_outputs is None:
        grad_outputs = tuple(randn(*o.shape, dtype=o.dtype, requires_grad=True) for o in outs if o.requires_grad)
    else:
        grad_outputs = _tensors(grad_outputs)
    n_in = len(inputs)
    wrt_idx = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def vjp(*args):
        # gradcheck evaluates ``vjp`` under no_grad for finite differences; the inner
        # first-order gradient still needs a graph, so grad mode is forced on here.
        ins, gos = args[:n_in], args[n_in:]
        with enable_grad():
            o = [t for t in _diff_outputs(func, ins) if t.requires_grad]
            gs = _grad(o, [ins[i] for i in wrt_idx], gos, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(vjp, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, nondet_tol=nondet_tol)
