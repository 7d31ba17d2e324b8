"""Recurrent layers: RNN, LSTM, GRU and the cells RNNCell, LSTMCell, GRUCell.

Arguments, parameter names and shapes, initialisation, gate order, error messages and outputs
follow PyTorch, so a torch ``state_dict`` loads unchanged and gives the same results. Each layer
and direction runs as one autograd Function over a compiled kernel (``cygrad.ops.rnn``).
"""
import math
import numbers
import warnings

import numpy as np

from ..._tensor import Tensor
from ... import _dtype as D
from ..parameter import Parameter
from .. import init
from ...ops.rnn import rnn_layers, rnn_cell
from ...ops.shape import index_select
from .module import Module
from ..utils.rnn import PackedSequence

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


def _empty(*shape, dtype=None):
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    return Tensor._make(np.zeros(shape, dt.np))


def _check_device(device):
    from ..._tensor import check_device
    check_device(device)


def _permute(hx, perm, lstm):
    if perm is None or hx is None:
        return hx
    if lstm:
        return index_select(hx[0], 1, perm), index_select(hx[1], 1, perm)
    return index_select(hx, 1, perm)


class RNNBase(Module):
    """Base class of :class:`RNN`, :class:`LSTM` and :class:`GRU` (``torch.nn.RNNBase``).

    Parameters
    ----------
    mode : {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"}
    input_size, hidden_size : int
    num_layers : int
    bias : bool
    batch_first : bool
    dropout : float
    bidirectional : bool
    proj_size : int
        LSTM only: size of the projected hidden state (0: no projection).
    device, dtype
        Factory arguments of the parameters.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.RNNBase("GRU", 4, 3)
    >>> [name for name, _ in m.named_parameters()]
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of "
                             "an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=2)
        if not isinstance(bias, bool):
            raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first should be of type bool, got: {type(batch_first).__name__}")
        if not isinstance(input_size, int):
            raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        gate_size = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}.get(mode)
        if gate_size is None:
            raise ValueError("Unrecognized RNN mode: " + mode)
        gate_size *= hidden_size

        self._flat_weights_names = []
        self._all_weights = []
        real_hidden = proj_size if proj_size > 0 else hidden_size
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else real_hidden * num_directions
                suffix = "_reverse" if direction == 1 else ""
                params = [("weight_ih_l{}{}", (gate_size, layer_input)),
                          ("weight_hh_l{}{}", (gate_size, real_hidden))]
                if bias:
                    params += [("bias_ih_l{}{}", (gate_size,)), ("bias_hh_l{}{}", (gate_size,))]
                if proj_size > 0:
                    params += [("weight_hr_l{}{}", (proj_size, hidden_size))]
                names = []
                for fmt, shape in params:
                    name = fmt.format(layer, suffix)
                    setattr(self, name, Parameter(_empty(*shape, dtype=dtype)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _flat_weights(self):
        return [getattr(self, n) if hasattr(self, n) else None for n in self._flat_weights_names]

    @property
    def all_weights(self):
        """The parameters, one list per layer and direction."""
        return [[getattr(self, w) for w in weights] for weights in self._all_weights]

    def flatten_parameters(self):
        """No-op (kept for API compatibility: the weights are always used in place)."""

    def reset_parameters(self):
        """Re-draw every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    # ---- argument checks (torch's messages) ---------------------------------------------------
    def check_input(self, input, batch_sizes):
        """Raise if ``input``'s dtype, rank or feature size does not fit the layer."""
        w = self._flat_weights[0]
        if input.dtype != w.dtype:
            raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({w.dtype}). "
                             f"Convert input: input.to({w.dtype}), or convert model: model.to({input.dtype})")
        expected_input_dim = 2 if batch_sizes is not None else 3
        if input.dim() != expected_input_dim:
            raise RuntimeError(f"input must have {expected_input_dim} dimensions, got {input.dim()}")
        if self.input_size != input.size(-1):
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.size(-1)}")

    def get_expected_hidden_size(self, input, batch_sizes):
        """(num_layers * num_directions, batch, Hh) for ``input``."""
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.size(0) if self.batch_first else input.size(1)
        num_directions = 2 if self.bidirectional else 1
        size = self.proj_size if self.proj_size > 0 else self.hidden_size
        return (self.num_layers * num_directions, mini_batch, size)

    def check_hidden_size(self, hx, expected_hidden_size, msg="Expected hidden size {}, got {}"):
        """Raise RuntimeError unless ``hx`` has the expected shape and the weights' dtype."""
        if tuple(hx.shape) != tuple(expected_hidden_size):
            raise RuntimeError(msg.format(tuple(expected_hidden_size), list(hx.shape)))
        w = self._flat_weights[0]
        if hx.dtype != w.dtype:
            raise RuntimeError(f"Expected the hidden state to have the weights' dtype {w.dtype}, got "
                               f"{hx.dtype} (hidden size {list(hx.shape)})")

    def check_forward_args(self, input, hidden, batch_sizes):
        """Check ``input`` and the hidden state ``hidden``."""
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden, self.get_expected_hidden_size(input, batch_sizes))

    def permute_hidden(self, hx, permutation):
        """Reorder the batch dimension of ``hx`` by ``permutation`` (None: unchanged)."""
        return _permute(hx, permutation, False)

    # ---- forward ------------------------------------------------------------------------------
    def _weights(self):
        num_directions = 2 if self.bidirectional else 1
        res = []
        for layer in range(self.num_layers):
            for d in range(num_directions):
                suffix = "_reverse" if d == 1 else ""
                get = lambda fmt: getattr(self, fmt.format(layer, suffix), None)  # noqa: E731
                res.append((get("weight_ih_l{}{}"), get("weight_hh_l{}{}"),
                            get("bias_ih_l{}{}") if self.bias else None,
                            get("bias_hh_l{}{}") if self.bias else None,
                            get("weight_hr_l{}{}") if self.proj_size > 0 else None))
        return res

    def _packed_sizes(self, data, batch_sizes):
        bs = np.asarray(batch_sizes._data if isinstance(batch_sizes, Tensor) else batch_sizes)
        if bs.ndim != 1 or bs.size == 0 or bs.dtype.kind not in "iu":
            raise RuntimeError(f"batch_sizes must be a non-empty 1-D integer tensor, got shape {list(bs.shape)}")
        bs = bs.astype(np.int64)
        if bs.min() < 1 or np.any(np.diff(bs) > 0):
            raise RuntimeError(f"batch_sizes must be positive and non-increasing, got {bs.tolist()}")
        if int(bs.sum()) != data.shape[0]:
            raise RuntimeError(f"batch_sizes sum to {int(bs.sum())} but the packed data has "
                               f"{data.shape[0]} rows (data size {list(data.shape)})")
        return bs

    def _run(self, input, hx, lstm):
        """Shared forward of RNN / LSTM / GRU; ``hx`` is a Tensor, a pair (LSTM) or None."""
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)
        packed = isinstance(input, PackedSequence)
        is_batched = True
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            self.check_input(data, batch_sizes)
            bs = self._packed_sizes(data, batch_sizes)
            if hx is not None:
                self._check_hx(data, hx, bs, lstm)
                hx = _permute(hx, sorted_indices, lstm)
        else:
            sorted_indices = unsorted_indices = None
            if input.dim() not in (2, 3):
                tail = " tensor instead" if name == "RNN" else " instead"
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{tail}")
            is_batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            if not is_batched:
                input = input.unsqueeze(batch_dim)
            if hx is not None:
                if lstm:
                    want = 3 if is_batched else 2
                    if hx[0].dim() != want or hx[1].dim() != want:
                        kind = "batched 3-D" if is_batched else "unbatched 2-D"
                        raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got "
                                           f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                    if not is_batched:
                        hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
                elif is_batched and hx.dim() != 3:
                    raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
                elif not is_batched:
                    if hx.dim() != 2:
                        raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                           f"{hx.dim()}-D tensor")
                    hx = hx.unsqueeze(1)
            self.check_input(input, None)
            if hx is not None:
                self._check_hx(input, hx, None, lstm)
            if self.batch_first:
                B, T = input.shape[0], input.shape[1]
                data = input.transpose(0, 1).reshape(T * B, self.input_size)
            else:
                T, B = input.shape[0], input.shape[1]
                data = input.reshape(T * B, self.input_size)
            if T == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            bs = np.full(T, B, np.int64)

        B = int(bs[0])
        if B == 0:
            out_data, hidden = self._empty_result(data, lstm)
        else:
            out_data, hidden = rnn_layers(self.mode, data, bs, hx, self._weights(), self.num_layers,
                                          self.bidirectional, self.dropout, self.training)
        if packed:
            return (PackedSequence(out_data, batch_sizes, sorted_indices, unsorted_indices),
                    _permute(hidden, unsorted_indices, lstm))
        out = out_data.reshape(T, B, out_data.shape[-1])
        if self.batch_first:
            out = out.transpose(0, 1)
        if not is_batched:
            out = out.squeeze(0 if self.batch_first else 1)
            hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if lstm else hidden.squeeze(1)
        return out, hidden

    def _check_hx(self, input, hx, batch_sizes, lstm):
        if lstm:
            self.check_hidden_size(hx[0], self.get_expected_hidden_size(input, batch_sizes),
                                   "Expected hidden[0] size {}, got {}")
            exp = self.get_expected_hidden_size(input, batch_sizes)[:2] + (self.hidden_size,)
            self.check_hidden_size(hx[1], exp, "Expected hidden[1] size {}, got {}")
        else:
            self.check_hidden_size(hx, self.get_expected_hidden_size(input, batch_sizes))

    def _empty_result(self, data, lstm):
        """Outputs for a batch of zero sequences."""
        D_ = 2 if self.bidirectional else 1
        Hh = self.proj_size if self.proj_size > 0 else self.hidden_size
        dt = data._data.dtype
        out = Tensor._make(np.zeros((data.shape[0], D_ * Hh), dt))
        h = Tensor._make(np.zeros((self.num_layers * D_, 0, Hh), dt))
        if lstm:
            return out, (h, Tensor._make(np.zeros((self.num_layers * D_, 0, self.hidden_size), dt)))
        return out, h


class RNN(RNNBase):
    r"""Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act = tanh or ReLU.

    Parameters
    ----------
    input_size : int
    hidden_size : int
    num_layers : int, default 1
    nonlinearity : {"tanh", "relu"}, default "tanh"
    bias : bool, default True
    batch_first : bool, default False
        Input and output as (batch, seq, feature) instead of (seq, batch, feature).
    dropout : float, default 0
        Dropout on the outputs of each layer but the last (training only).
    bidirectional : bool, default False
    device, dtype
        Factory arguments of the parameters.

    Input: ``(input, h_0)`` with input (L, N, H_in) (or (N, L, H_in) with ``batch_first``,
    (L, H_in) unbatched, or a ``PackedSequence``) and ``h_0`` (D * num_layers, N, H_out) or None.
    Returns ``(output, h_n)``: output (L, N, D * H_out) (or packed), ``h_n`` (D * num_layers, N, H_out).

    Examples
    --------
    >>> import cygrad
    >>> rnn = cygrad.nn.RNN(10, 20, 2)
    >>> output, hn = rnn(cygrad.randn(5, 3, 10), cygrad.randn(2, 3, 20))
    >>> output.shape, hn.shape
    (cygrad.Size([5, 3, 20]), cygrad.Size([2, 3, 20]))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)

    def forward(self, input, hx=None):
        return self._run(input, hx, False)


class LSTM(RNNBase):
    r"""Long short-term memory, PyTorch's gates (i, f, g, o) and optional projection ``proj_size``.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)`` (then ``h_t W_hr^T`` with a projection).

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    bias : bool, default True
    batch_first : bool, default False
    dropout : float, default 0
    bidirectional : bool, default False
    proj_size : int, default 0
        If > 0, the hidden state is projected to this size by ``weight_hr_l{k}``.
    device, dtype
        Factory arguments of the parameters.

    Input: ``(input, (h_0, c_0))``, states (D * num_layers, N, H_out) and (D * num_layers, N,
    hidden_size), or None for zeros. Returns ``(output, (h_n, c_n))``.

    Examples
    --------
    >>> import cygrad
    >>> lstm = cygrad.nn.LSTM(10, 20, 2)
    >>> output, (hn, cn) = lstm(cygrad.randn(5, 3, 10))
    >>> output.shape, hn.shape, cn.shape
    (cygrad.Size([5, 3, 20]), cygrad.Size([2, 3, 20]), cygrad.Size([2, 3, 20]))
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def get_expected_cell_size(self, input, batch_sizes):
        """(num_layers * num_directions, batch, hidden_size) for ``input``."""
        return self.get_expected_hidden_size(input, batch_sizes)[:2] + (self.hidden_size,)

    def check_forward_args(self, input, hidden, batch_sizes):
        """Check ``input`` and the states ``hidden = (h, c)``."""
        self.check_input(input, batch_sizes)
        self._check_hx(input, hidden, batch_sizes, True)

    def permute_hidden(self, hx, permutation):
        """Reorder the batch dimension of both states by ``permutation``."""
        return _permute(hx, permutation, True)

    def forward(self, input, hx=None):
        return self._run(input, hx, True)


class GRU(RNNBase):
    r"""Gated recurrent unit, PyTorch's gates (r, z, n).

    ``r, z = sigmoid(...)``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    bias : bool, default True
    batch_first : bool, default False
    dropout : float, default 0
    bidirectional : bool, default False
    device, dtype
        Factory arguments of the parameters.

    Examples
    --------
    >>> import cygrad
    >>> gru = cygrad.nn.GRU(10, 20, 2, batch_first=True)
    >>> output, hn = gru(cygrad.randn(3, 5, 10))
    >>> output.shape, hn.shape
    (cygrad.Size([3, 5, 20]), cygrad.Size([2, 3, 20]))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input, hx=None):
        return self._run(input, hx, False)


# ---- cells ----------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Base class of the cells: ``weight_ih`` (chunks * hidden, input), ``weight_hh``, ``bias_ih``,
    ``bias_hh``, all drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    Examples
    --------
    >>> import cygrad
    >>> cell = cygrad.nn.RNNCellBase(3, 2, True, num_chunks=4)
    >>> cell.weight_ih.shape
    cygrad.Size([8, 3])
    """

    _mode = None

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(_empty(num_chunks * hidden_size, input_size, dtype=dtype))
        self.weight_hh = Parameter(_empty(num_chunks * hidden_size, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(_empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(_empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if "bias" in self.__dict__ and self.bias is not True:
            s += ", bias={bias}"
        if "nonlinearity" in self.__dict__ and self.nonlinearity != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def reset_parameters(self):
        """Re-draw every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _check_cell(self, input, states):
        """torch's checks of a cell's (batched) input and states."""
        w = self.weight_ih
        if input.dtype != w.dtype or input._data.dtype.kind != "f":
            raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {D.scalar_name(input.dtype)} "
                               f"and {D.scalar_name(w.dtype)}")
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} expected "
                               f"{self.input_size}")
        for i, h in enumerate(states):
            if h.dim() < 1 or h.shape[0] != input.shape[0]:
                got = h.shape[0] if h.dim() else 0
                raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match hidden{i} batch size {got}")
            if h.dim() != 2 or h.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got {h.shape[1]}, expected "
                                   f"{self.hidden_size}")
            if h.dtype != w.dtype:
                raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {D.scalar_name(h.dtype)} "
                                   f"and {D.scalar_name(w.dtype)}")

    def _zeros(self, input):
        return Tensor._make(np.zeros((input.shape[0], self.hidden_size), input._data.dtype))

    def _prepare(self, name, input, states, what):
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for label, h in states:
            if h is not None and h.dim() not in (1, 2):
                raise ValueError(f"{name}: Expected {label} to be 1D or 2D, got {h.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        hs = [(self._zeros(input) if h is None else h if is_batched else h.unsqueeze(0)) for _, h in states]
        self._check_cell(input, hs)
        return input, hs, is_batched

    def _forward_one_state(self, name, mode, input, hx):
        """forward of RNNCell / GRUCell (one hidden state); ``mode`` None: unknown nonlinearity."""
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None and hx.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")
        if mode is None:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        input, (h,), is_batched = self._prepare(name, input, [("hidden", hx)], None)
        if input.shape[0] == 0:
            return self._zeros(input) if is_batched else self._zeros(input).squeeze(0)
        out = rnn_cell(mode, input, h, None, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if is_batched else out.squeeze(0)


class RNNCell(RNNCellBase):
    r"""One step of an Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default True
    nonlinearity : {"tanh", "relu"}, default "tanh"
    device, dtype
        Factory arguments of the parameters.

    Examples
    --------
    >>> import cygrad
    >>> cell = cygrad.nn.RNNCell(10, 20)
    >>> cell(cygrad.randn(3, 10), cygrad.randn(3, 20)).shape
    cygrad.Size([3, 20])
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        mode = "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU" if self.nonlinearity == "relu" else None
        return self._forward_one_state("RNNCell", mode, input, hx)


class LSTMCell(RNNCellBase):
    r"""One LSTM step: returns ``(h', c')`` with PyTorch's gate order (i, f, g, o).

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default True
    device, dtype
        Factory arguments of the parameters.

    Examples
    --------
    >>> import cygrad
    >>> cell = cygrad.nn.LSTMCell(10, 20)
    >>> h, c = cell(cygrad.randn(3, 10))
    >>> h.shape, c.shape
    (cygrad.Size([3, 20]), cygrad.Size([3, 20]))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        states = [("hx[0]", None), ("hx[1]", None)] if hx is None else [("hx[0]", hx[0]), ("hx[1]", hx[1])]
        input, (h, c), is_batched = self._prepare("LSTMCell", input, states, None)
        if input.shape[0] == 0:
            z = self._zeros(input)
            return (z, z.clone()) if is_batched else (z.squeeze(0), z.squeeze(0))
        h, c = rnn_cell("LSTM", input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    r"""One GRU step: ``h' = (1 - z) * n + z * h`` with PyTorch's gate order (r, z, n).

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default True
    device, dtype
        Factory arguments of the parameters.

    Examples
    --------
    >>> import cygrad
    >>> cell = cygrad.nn.GRUCell(10, 20)
    >>> cell(cygrad.randn(3, 10)).shape
    cygrad.Size([3, 20])
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._forward_one_state("GRUCell", "GRU", input, hx)
