"""The Optimizer base class (``torch.optim.Optimizer``) and helpers shared by the optimizers."""
import functools
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from .._tensor import Tensor
from ..autograd.grad_mode import no_grad, enable_grad
from .._dtype import get_default_dtype

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Singleton class representing a required parameter for an Optimizer."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj):
    if isinstance(obj, Tensor):
        return "cygrad.Tensor"
    return type(obj).__module__ + "." + type(obj).__qualname__ if type(obj).__module__ != "builtins" \
        else type(obj).__qualname__


def _step_no_grad(step):
    """Run an optimizer's ``step`` with graph recording off (the closure runs with it on)."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        with no_grad():
            return step(self, *args, **kwargs)
    return wrapper


def _scalar_tensor(value):
    """A 0-d tensor holding a step counter, in the dtype torch uses (float32, or float64 when that
    is the default dtype)."""
    dt = np.float64 if get_default_dtype().np == np.float64 else np.float32
    return Tensor._make(np.array(value, dtype=dt))


def _zeros_state(p, fill=0.0):
    return Tensor._make(np.full(p._data.shape, fill, dtype=p._data.dtype))


def _flat(a):
    """1-D C-contiguous view of the array ``a`` (which must be C-contiguous)."""
    return a.reshape(-1)


class _Work:
    """Flat kernel operands for one parameter: a view of the parameter when it is contiguous,
    otherwise a contiguous copy written back by :meth:`done`."""

    __slots__ = ("p", "param", "grad", "copied")

    def __init__(self, p):
        data = p._data
        if data.dtype not in (np.float32, np.float64):
            raise RuntimeError(f"cygrad optimizers support float32 and float64 parameters, got {data.dtype}")
        self.p = p
        self.copied = not data.flags.c_contiguous
        self.param = np.ascontiguousarray(data).reshape(-1)
        g = p.grad._data
        self.grad = np.ascontiguousarray(g, dtype=data.dtype).reshape(-1)

    def done(self):
        if self.copied:
            self.p._data[...] = self.param.reshape(self.p._data.shape)
        self.p._bump()


class Optimizer:
    """Base class for all optimizers (``torch.optim.Optimizer``).

    Parameters
    ----------
    params : iterable
        Tensors to optimize, ``(name, tensor)`` pairs, or dicts defining parameter groups (each
        with a ``'params'`` entry and optional per-group options).
    defaults : dict
        Default values of the optimization options, used by groups that do not set them.

    Notes
    -----
    ``state`` maps each parameter to a dict of its optimizer state; ``param_groups`` is a list
    of dicts holding the group's ``'params'`` and options. ``state_dict()`` has PyTorch's layout:
    ``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``.

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.zeros(3, requires_grad=True)
    >>> opt = cygrad.optim.SGD([w], lr=0.1)
    >>> (w - 1.0).pow(2).sum().backward()
    >>> opt.step()
    >>> opt.zero_grad()
    >>> w
    tensor([0.2000, 0.2000, 0.2000], requires_grad=True)
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got " + _typename(params))
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.defaults.setdefault("differentiable", False)

    def __repr__(self):
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    def add_param_group(self, param_group):
        """Add a parameter group to :attr:`param_groups`.

        Parameters
        ----------
        param_group : dict
            The group's ``'params'`` (a tensor or an ordered collection of tensors or
            ``(name, tensor)`` pairs) and the options it overrides.

        Examples
        --------
        >>> import cygrad
        >>> a, b = cygrad.zeros(2, requires_grad=True), cygrad.zeros(2, requires_grad=True)
        >>> opt = cygrad.optim.SGD([a], lr=0.1)
        >>> opt.add_param_group({"params": [b], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)

        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) == len(tensors):
                param_group["param_names"] = names
            else:
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")

        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(param))
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)

        ids = [id(p) for p in param_group["params"]]
        if len(ids) != len(set(ids)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)

        existing = set()
        for group in self.param_groups:
            existing.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                txt = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {txt} to the optimizer")
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized tensors.

        Parameters
        ----------
        set_to_none : bool, default True
            Set ``.grad`` to ``None`` instead of filling it with zeros.

        Examples
        --------
        >>> import cygrad
        >>> w = cygrad.ones(2, requires_grad=True)
        >>> opt = cygrad.optim.SGD([w], lr=0.1)
        >>> w.sum().backward()
        >>> opt.zero_grad()
        >>> w.grad is None
        True
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    g._data[...] = 0
                    g._bump()

    @_step_no_grad
    def step(self, closure=None):
        """Perform one optimization step: ``_update`` on every parameter that has a gradient.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; it runs with grad mode enabled.

        Returns
        -------
        The closure's loss, or ``None``.
        """
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            for p in self._params_with_grad(group):
                w = _Work(p)
                self._update(p, w, group)
                w.done()
        return loss

    def _update(self, p, w, group):
        """Update parameter ``p`` (``w`` holds its flat param/grad arrays) from ``group``'s options."""
        raise NotImplementedError

    def _eval_closure(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def state_dict(self):
        """The optimizer's state as a dict, in PyTorch's layout.

        Returns
        -------
        dict
            ``'state'``: per-parameter state keyed by the parameter's index (counted across
            groups, in order); ``'param_groups'``: the groups' options, with ``'params'`` the list
            of those indices. The state tensors are the optimizer's own (not copies).

        Examples
        --------
        >>> import cygrad
        >>> w = cygrad.zeros(2, requires_grad=True)
        >>> opt = cygrad.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> w.sum().backward()
        >>> opt.step()
        >>> sorted(opt.state_dict()["state"][0])
        ['momentum_buffer']
        """
        mappings = {}
        start = 0

        def pack_group(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mappings.setdefault(id(p), i)
            packed["params"] = [mappings[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(mappings[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Load a state produced by :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            The state to load. Its groups must match this optimizer's in number and sizes.
            State tensors are copied (floating ones cast to their parameter's dtype, except the
            ``'step'`` counters).

        Examples
        --------
        >>> import cygrad
        >>> w = cygrad.zeros(2, requires_grad=True)
        >>> opt = cygrad.optim.Adam([w], lr=0.1)
        >>> opt2 = cygrad.optim.Adam([w], lr=0.5)
        >>> opt2.load_state_dict(opt.state_dict())
        >>> opt2.param_groups[0]["lr"]
        0.1
        """
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def _cast(param, value, key=None):
            if isinstance(value, Tensor):
                data = value._data
                if key != "step" and param.is_floating_point() and data.dtype.kind == "f":
                    data = data.astype(param._data.dtype)
                return Tensor._make(np.array(data, copy=True, order="C"))
            if isinstance(value, dict):
                return {k: _cast(param, v, key=k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(_cast(param, v) for v in value)
            return value

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]


def _check_float(name, value, cond, msg):
    if not cond:
        raise ValueError(msg.format(value))
