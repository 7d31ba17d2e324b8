"""MultiheadAttention, TransformerEncoderLayer, TransformerEncoder (torch's parameters, state_dict keys and
semantics; attention runs the fused ``scaled_dot_product_attention`` kernel unless the weights are requested)."""
import copy

import numpy as np

from ..._tensor import Tensor
from ..parameter import Parameter
from .. import init
from ...ops.activation import relu as _relu, gelu as _gelu
from ...ops.attention import multi_head_attention_forward, _canonical_mask, _none_or_dtype
from .module import Module
from .container import ModuleList
from .linear import Linear, Dropout, _empty, _check_device

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder"]


class NonDynamicallyQuantizableLinear(Linear):
    """The output projection of ``MultiheadAttention``: a ``Linear`` (torch's name, kept for ``repr``)."""


class MultiheadAttention(Module):
    """Multi-head attention: ``out_proj(concat_h(attention(Q W_q^h, K W_k^h, V W_v^h)))``.

    Parameters
    ----------
    embed_dim : int
        Model dimension ``E`` (of queries and of the output).
    num_heads : int
        Number of heads; must divide ``embed_dim``.
    dropout : float
        Dropout on the attention weights (training mode only).
    bias : bool
        Add biases to the input and output projections.
    add_bias_kv : bool
        Learn a key and a value row (``bias_k``, ``bias_v``, shape ``(1, 1, E)``) appended to the
        projected keys and values.
    add_zero_attn : bool
        Append a zero key and value.
    kdim, vdim : int, optional
        Feature sizes of key and value (``embed_dim`` by default). When they differ from
        ``embed_dim`` the projections are separate parameters ``q_proj_weight``,
        ``k_proj_weight``, ``v_proj_weight`` instead of the packed ``in_proj_weight``.
    batch_first : bool
        Inputs and outputs are ``(N, L, E)`` instead of ``(L, N, E)``.

    Attributes
    ----------
    in_proj_weight : Parameter
        ``(3E, E)``, xavier-uniform initialised (None with separate projections).
    in_proj_bias : Parameter
        ``(3E,)``, zeros.
    out_proj : Linear
        ``E -> E``, bias initialised to zero.

    Examples
    --------
    >>> import cygrad
    >>> mha = cygrad.nn.MultiheadAttention(16, 4, batch_first=True)
    >>> x = cygrad.randn(2, 5, 16)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    (cygrad.Size([2, 5, 16]), cygrad.Size([2, 5, 5]))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        _check_device(device)
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != self.embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(_empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(_empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(_empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(_empty(3 * embed_dim, embed_dim, dtype=dtype))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(_empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(_empty(1, 1, embed_dim, dtype=dtype))
            self.bias_v = Parameter(_empty(1, 1, embed_dim, dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Attend from ``query`` to ``key`` / ``value``.

        Parameters
        ----------
        query : Tensor
            ``(L, N, E)`` (``(N, L, E)`` with ``batch_first``) or unbatched ``(L, E)``.
        key, value : Tensor
            ``(S, N, kdim)`` and ``(S, N, vdim)`` (batch first / unbatched likewise).
        key_padding_mask : Tensor, optional
            ``(N, S)`` (``(S,)`` unbatched): bool True = ignore that key, or float added to the scores.
        need_weights : bool
            Also return the attention weights (computed without the fused kernel).
        attn_mask : Tensor, optional
            ``(L, S)`` or ``(N * num_heads, L, S)``: bool True = not allowed to attend, or float added.
        average_attn_weights : bool
            Average the returned weights over heads.
        is_causal : bool
            Hint that ``attn_mask`` is the causal mask (it must be given).

        Returns
        -------
        tuple of (Tensor, Tensor or None)
            The output, shaped like ``query`` (with ``E`` features), and the weights ``(N, L, S)``
            (``(N, num_heads, L, S)`` without averaging; no batch dimension unbatched) or None.
        """
        is_batched = query.dim() == 3
        key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", _none_or_dtype(attn_mask),
                                           "attn_mask", query.dtype)
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if self.batch_first and is_batched:
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = (x.transpose(1, 0) for x in (query, key))
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        separate = not self._qkv_same_embed_dim
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=separate,
            q_proj_weight=self.q_proj_weight if separate else None,
            k_proj_weight=self.k_proj_weight if separate else None,
            v_proj_weight=self.v_proj_weight if separate else None,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first and is_batched:
            out = out.transpose(1, 0)
        return out, weights


def _get_activation_fn(activation):
    if activation == "relu":
        return _relu
    if activation == "gelu":
        return _gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def _layer_norm(d_model, eps, bias, dtype):
    from .normalization import LayerNorm   # cygrad.nn.LayerNorm
    return LayerNorm(d_model, eps=eps, bias=bias, dtype=dtype)


def _generate_square_subsequent_mask(sz, dtype):
    """The float causal mask: 0 on and below the diagonal, -inf above."""
    return Tensor._make(np.triu(np.full((sz, sz), -np.inf, dtype=dtype.np), 1))


def _detect_is_causal_mask(mask, is_causal=None, size=None):
    """``is_causal`` if given; else whether ``mask`` equals the square causal mask of ``size`` rows."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.size(-2)
        if tuple(mask.shape) == (sz, sz):
            causal = _generate_square_subsequent_mask(sz, mask.dtype)
            make_causal = bool(np.all(mask._data == causal._data))
        else:
            make_causal = False
    return make_causal


class TransformerEncoderLayer(Module):
    """One Transformer encoder block: self-attention and a feed-forward network, each with a residual
    connection, dropout and layer norm (after the residual, or before the block with ``norm_first``).

    Parameters
    ----------
    d_model : int
        Number of features.
    nhead : int
        Attention heads (must divide ``d_model``).
    dim_feedforward : int
        Hidden size of the feed-forward network.
    dropout : float
        Dropout probability (attention weights, feed-forward hidden layer and both residual branches).
    activation : str or callable
        ``"relu"``, ``"gelu"`` or a callable (e.g. ``F.relu`` or a module).
    layer_norm_eps : float
        ``eps`` of both ``LayerNorm``.
    batch_first : bool
        Inputs and outputs are ``(N, S, E)`` instead of ``(S, N, E)``.
    norm_first : bool
        Pre-norm: ``x + sa(norm1(x))``, ``x + ff(norm2(x))``.
    bias : bool
        Biases in the linear layers and layer norms.

    Examples
    --------
    >>> import cygrad
    >>> layer = cygrad.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)
    >>> layer(cygrad.randn(2, 5, 16)).shape
    cygrad.Size([2, 5, 16])
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=_relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        _check_device(device)
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = _layer_norm(d_model, layer_norm_eps, bias, dtype)
        self.norm2 = _layer_norm(d_model, layer_norm_eps, bias, dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        from .activation import ReLU, GELU
        if activation is _relu or isinstance(activation, ReLU):
            self.activation_relu_or_gelu = 1
        elif activation is _gelu or isinstance(activation, GELU):
            self.activation_relu_or_gelu = 2
        else:
            self.activation_relu_or_gelu = 0
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Run the block.

        Parameters
        ----------
        src : Tensor
            ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``) or unbatched ``(S, E)``.
        src_mask : Tensor, optional
            ``(S, S)`` or ``(N * nhead, S, S)``: bool True = not allowed to attend, or float added.
        src_key_padding_mask : Tensor, optional
            ``(N, S)``: bool True = padding, or float added.
        is_causal : bool
            Hint that ``src_mask`` is the causal mask.

        Returns
        -------
        Tensor
            Shaped like ``src``.
        """
        src_key_padding_mask = _canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                               _none_or_dtype(src_mask), "src_mask", src.dtype)
        src_mask = _canonical_mask(src_mask, "src_mask", None, "", src.dtype, check_other=False)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer``, optionally followed by ``norm``.

    Parameters
    ----------
    encoder_layer : TransformerEncoderLayer
        The layer to copy (deep copies: the layers do not share parameters).
    num_layers : int
        Number of layers.
    norm : Module, optional
        Applied to the output of the last layer.
    enable_nested_tensor : bool
        Accepted for compatibility; cygrad has no nested tensors, so padded positions are computed
        like any other (torch's fast inference path may return zeros there).
    mask_check : bool
        Accepted for compatibility (only used by torch's nested-tensor path).

    Examples
    --------
    >>> import cygrad
    >>> layer = cygrad.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> encoder = cygrad.nn.TransformerEncoder(layer, num_layers=2)
    >>> encoder(cygrad.randn(5, 2, 16)).shape
    cygrad.Size([5, 2, 16])
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = False
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """Run the layers in turn.

        Parameters
        ----------
        src : Tensor
            ``(S, N, E)`` (``(N, S, E)`` if the layers are ``batch_first``) or unbatched ``(S, E)``.
        mask : Tensor, optional
            ``(S, S)`` or ``(N * nhead, S, S)`` attention mask (bool True = not allowed, or float added).
        src_key_padding_mask : Tensor, optional
            ``(N, S)``: bool True = padding, or float added.
        is_causal : bool, optional
            Hint that ``mask`` is the causal mask; by default detected by comparing ``mask`` with
            the square causal mask.

        Returns
        -------
        Tensor
            Shaped like ``src``.
        """
        src_key_padding_mask = _canonical_mask(src_key_padding_mask, "src_key_padding_mask", _none_or_dtype(mask),
                                               "mask", src.dtype)
        mask = _canonical_mask(mask, "mask", None, "", src.dtype, check_other=False)
        output = src
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        shape = tuple(src.shape)
        seq_len = shape[0] if len(shape) == 2 else shape[1 if batch_first else 0]
        is_causal = _detect_is_causal_mask(mask, is_causal, seq_len)
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            output = self.norm(output)
        return output
