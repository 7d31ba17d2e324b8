"""The Mamba block (selective state-space model) over ``F.selective_scan``."""

import math

import numpy as np

from ... import _dtype as _D
from ..._tensor import Tensor
from ...autograd.grad_mode import no_grad
from ..parameter import Parameter
from .. import init
from ...ops.linalg import linear as _linear
from ...ops.activation import silu as _silu
from ...ops.scan import selective_scan, selective_state_update
from .module import Module
from .linear import Linear
from .conv import Conv1d

__all__ = ["Mamba"]


def _check_device(device):
    from ..._tensor import check_device
    check_device(device)


class Mamba(Module):
    """The Mamba block: gated selective state-space layer (Gu & Dao, 2023).

    For ``hidden_states`` of shape ``(batch, L, d_model)``, with ``d_inner = expand * d_model``::

        x, z    = in_proj(hidden_states).chunk(2)                  # (batch, d_inner, L) each
        x       = silu(causal depthwise conv1d(x))                 # kernel d_conv
        dt, B, C = x_proj(x).split([dt_rank, d_state, d_state])
        dt      = dt_proj.weight @ dt                              # (batch, d_inner, L)
        y       = selective_scan(x, dt, -exp(A_log), B, C, D, z=z,
                                 delta_bias=dt_proj.bias, delta_softplus=True)
        out     = out_proj(y)                                      # (batch, L, d_model)

    Parameters and their initialisation follow the reference implementation: ``in_proj``
    (``Linear(d_model, 2 * d_inner, bias=bias)``), ``conv1d`` (``Conv1d(d_inner, d_inner,
    d_conv, groups=d_inner, padding=d_conv - 1, bias=conv_bias)``, its output truncated to
    ``L`` so the convolution is causal), ``x_proj`` (``Linear(d_inner, dt_rank + 2 * d_state,
    bias=False)``), ``dt_proj`` (``Linear(dt_rank, d_inner)``; weight ``U(-s, s)`` with
    ``s = dt_rank ** -0.5 * dt_scale`` for ``dt_init="random"`` or the constant ``s`` for
    ``"constant"``; bias the inverse softplus of ``dt`` drawn log-uniformly in
    ``[dt_min, dt_max]`` and clamped below at ``dt_init_floor``), ``A_log`` (``(d_inner,
    d_state)``, ``log(1..d_state)`` in every row: the S4D-real initialisation, ``A =
    -exp(A_log)``), ``D`` (``(d_inner,)`` ones) and ``out_proj`` (``Linear(d_inner, d_model,
    bias=bias)``).

    Parameters
    ----------
    d_model : int
    d_state : int, default 16
    d_conv : int, default 4
    expand : int or float, default 2
    dt_rank : int or "auto", default "auto"
        ``"auto"`` is ``ceil(d_model / 16)``.
    dt_min, dt_max : float, default 0.001, 0.1
    dt_init : {"random", "constant"}, default "random"
    dt_scale : float, default 1.0
    dt_init_floor : float, default 1e-4
    conv_bias : bool, default True
    bias : bool, default False
        Bias of ``in_proj`` and ``out_proj``.
    use_fast_path, layer_idx :
        Accepted for compatibility with the reference signature; ignored.
    device, dtype :
        As for other modules (``device`` must be the CPU).

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.Mamba(16, d_state=4)
    >>> m(cygrad.randn(2, 5, 16)).shape
    cygrad.Size([2, 5, 16])
    >>> conv_state, ssm_state = m.allocate_inference_cache(2)
    >>> out, conv_state, ssm_state = m.step(cygrad.randn(2, 1, 16), conv_state, ssm_state)
    >>> out.shape, ssm_state.shape
    (cygrad.Size([2, 1, 16]), cygrad.Size([2, 32, 4]))
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False,
                 use_fast_path=True, layer_idx=None, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        for name, v in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Mamba: {name} must be a positive integer, got {v!r}")
        if dt_init not in ("random", "constant"):
            raise NotImplementedError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
        if not (0 < dt_min <= dt_max):
            raise ValueError(f"Mamba: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        if self.d_inner < 1:
            raise ValueError(f"Mamba: expand * d_model must be >= 1, got {expand} * {d_model}")
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        if isinstance(self.dt_rank, bool) or not isinstance(self.dt_rank, int) or self.dt_rank < 1:
            raise ValueError(f"Mamba: dt_rank must be 'auto' or a positive integer, got {dt_rank!r}")
        self.layer_idx = layer_idx
        self.use_fast_path = use_fast_path
        self._dt_init = (dt_init, dt_min, dt_max, dt_scale, dt_init_floor)

        kw = dict(device=device, dtype=dtype)
        self.in_proj = Linear(d_model, self.d_inner * 2, bias=bias, **kw)
        self.conv1d = Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                             padding=d_conv - 1, bias=conv_bias, **kw)
        self.x_proj = Linear(self.d_inner, self.dt_rank + self.d_state * 2, bias=False, **kw)
        self.dt_proj = Linear(self.dt_rank, self.d_inner, bias=True, **kw)
        self._init_dt()
        pdt = _D.to_dtype(dtype) if dtype is not None else _D.get_default_dtype()
        self.A_log = Parameter(Tensor._make(np.zeros((self.d_inner, d_state), pdt.np)))
        self.D = Parameter(Tensor._make(np.ones(self.d_inner, pdt.np)))
        self._init_ssm()
        self.out_proj = Linear(self.d_inner, d_model, bias=bias, **kw)

    def _init_dt(self):
        """dt_proj: weight U(-s, s) or constant s; bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max]."""
        from ..._creation import rand
        dt_init, dt_min, dt_max, dt_scale, floor = self._dt_init
        std = self.dt_rank ** -0.5 * dt_scale
        if dt_init == "constant":
            init.constant_(self.dt_proj.weight, std)
        else:
            init.uniform_(self.dt_proj.weight, -std, std)
        r = rand(self.d_inner, dtype=self.dt_proj.bias.dtype)._data.astype(np.float64)
        dt = np.exp(r * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = np.maximum(dt, floor)
        inv_dt = dt + np.log(-np.expm1(-dt))        # inverse of softplus
        with no_grad():
            self.dt_proj.bias.copy_(Tensor._make(inv_dt))

    def _init_ssm(self):
        """S4D-real A (A_log = log(1..d_state) in every row) and D = 1."""
        with no_grad():
            a = np.log(np.arange(1, self.d_state + 1, dtype=np.float64))
            self.A_log.copy_(Tensor._make(np.broadcast_to(a, (self.d_inner, self.d_state)).copy()))
            self.D.fill_(1.0)

    def reset_parameters(self):
        """Re-draw every parameter with the reference initialisation."""
        for m in (self.in_proj, self.conv1d, self.x_proj, self.dt_proj):
            m.reset_parameters()
        self._init_dt()
        self._init_ssm()
        self.out_proj.reset_parameters()

    def extra_repr(self):
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, expand={self.expand}, "
                f"dt_rank={self.dt_rank}")

    def _check_states(self, batch, conv_state, ssm_state):
        want_c = (batch, self.d_inner, self.d_conv)
        want_s = (batch, self.d_inner, self.d_state)
        if conv_state is not None and tuple(conv_state.shape) != want_c:
            raise ValueError(f"Mamba: conv_state must have shape (batch, d_inner, d_conv) = {want_c}, "
                             f"got {tuple(conv_state.shape)}")
        if ssm_state is not None and tuple(ssm_state.shape) != want_s:
            raise ValueError(f"Mamba: ssm_state must have shape (batch, d_inner, d_state) = {want_s}, "
                             f"got {tuple(ssm_state.shape)}")

    def _ssm_inputs(self, x):
        """dt (pre-bias), B, C from the convolved input x (batch, L, d_inner)."""
        x_dbl = self.x_proj(x)
        n, r = self.d_state, self.dt_rank
        dt, B, C = x_dbl[..., :r], x_dbl[..., r:r + n], x_dbl[..., r + n:]
        return _linear(dt, self.dt_proj.weight), B, C

    def forward(self, hidden_states, conv_state=None, ssm_state=None):
        """Run the block over a sequence.

        Parameters
        ----------
        hidden_states : Tensor
            ``(batch, L, d_model)``.
        conv_state, ssm_state : Tensor, optional
            Inference caches (see :meth:`allocate_inference_cache`) overwritten with the states
            after the last token, so that :meth:`step` can continue the sequence (prefill).

        Returns
        -------
        Tensor
            ``(batch, L, d_model)``.
        """
        if not isinstance(hidden_states, Tensor) or hidden_states.dim() != 3 or \
                hidden_states.shape[2] != self.d_model:
            shape = tuple(hidden_states.shape) if isinstance(hidden_states, Tensor) else type(hidden_states)
            raise ValueError(f"Mamba: expected hidden_states of shape (batch, L, d_model={self.d_model}), "
                             f"got {shape}")
        batch, L, _ = hidden_states.shape
        self._check_states(batch, conv_state, ssm_state)
        xz = self.in_proj(hidden_states).transpose(1, 2)                  # (batch, 2 d_inner, L)
        x, z = xz[:, :self.d_inner], xz[:, self.d_inner:]
        if conv_state is not None:
            from ...ops.shape import pad
            with no_grad():
                conv_state.copy_(pad(x.detach(), (self.d_conv - L, 0)) if L < self.d_conv
                                 else x.detach()[..., L - self.d_conv:])
        x = _silu(self.conv1d(x)[..., :L])                                # causal
        dt, B, C = self._ssm_inputs(x.transpose(1, 2))
        A = -self.A_log.exp()
        res = selective_scan(x, dt.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), self.D, z=z,
                             delta_bias=self.dt_proj.bias, delta_softplus=True,
                             return_last_state=ssm_state is not None)
        if ssm_state is not None:
            y, last = res
            with no_grad():
                ssm_state.copy_(last.detach())
        else:
            y = res
        return self.out_proj(y.transpose(1, 2))

    def step(self, hidden_states, conv_state, ssm_state):
        """Decode one token, updating the caches in place.

        Parameters
        ----------
        hidden_states : Tensor
            ``(batch, 1, d_model)``.
        conv_state : Tensor
            ``(batch, d_inner, d_conv)``: the last ``d_conv`` inputs of the convolution.
        ssm_state : Tensor
            ``(batch, d_inner, d_state)``.

        Returns
        -------
        (Tensor, Tensor, Tensor)
            ``out`` ``(batch, 1, d_model)`` and the (updated) ``conv_state``, ``ssm_state``.
            Feeding a sequence token by token from zero caches gives the outputs of
            :meth:`forward`.
        """
        if not isinstance(hidden_states, Tensor) or hidden_states.dim() != 3 or \
                hidden_states.shape[1] != 1 or hidden_states.shape[2] != self.d_model:
            shape = tuple(hidden_states.shape) if isinstance(hidden_states, Tensor) else type(hidden_states)
            raise ValueError(f"Mamba.step: expected hidden_states of shape (batch, 1, d_model={self.d_model}) "
                             f"(one token at a time), got {shape}")
        batch = hidden_states.shape[0]
        if conv_state is None or ssm_state is None:
            raise ValueError("Mamba.step: conv_state and ssm_state are required (see allocate_inference_cache)")
        self._check_states(batch, conv_state, ssm_state)
        xz = self.in_proj(hidden_states[:, 0])                            # (batch, 2 d_inner)
        x, z = xz[:, :self.d_inner], xz[:, self.d_inner:]
        from ...ops.shape import cat
        window = cat([conv_state[:, :, 1:].detach().to(x.dtype), x[:, :, None]], dim=2)  # (batch, d_inner, d_conv)
        with no_grad():
            conv_state.copy_(window.detach())
        x = (window * self.conv1d.weight[:, 0, :]).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = _silu(x)
        dt, B, C = self._ssm_inputs(x)
        A = -self.A_log.exp()
        y = selective_state_update(ssm_state, x, dt, A, B, C, self.D, z=z, dt_bias=self.dt_proj.bias,
                                   dt_softplus=True)
        return self.out_proj(y)[:, None], conv_state, ssm_state

    def allocate_inference_cache(self, batch_size, max_seqlen=None, dtype=None, **kwargs):
        """Zero caches ``(conv_state (batch, d_inner, d_conv), ssm_state (batch, d_inner, d_state))``.

        ``max_seqlen`` is accepted for compatibility (the caches do not grow with the sequence).
        """
        from ..._creation import zeros
        cdt = dtype if dtype is not None else self.conv1d.weight.dtype
        sdt = dtype if dtype is not None else self.dt_proj.weight.dtype
        return (zeros(batch_size, self.d_inner, self.d_conv, dtype=cdt),
                zeros(batch_size, self.d_inner, self.d_state, dtype=sdt))
