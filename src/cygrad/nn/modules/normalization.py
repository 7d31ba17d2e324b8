"""Normalization layers: BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, RMSNorm, LocalResponseNorm."""
import numbers
import warnings

import numpy as np

from ..._tensor import Tensor
from ... import _dtype as D
from ..parameter import Parameter
from .. import init
from ...ops import norm as _F
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "GroupNorm", "RMSNorm", "LocalResponseNorm"]


def _check_device(device):
    from ..._tensor import check_device
    check_device(device)


def _new(shape, fill, dtype=None):
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    return Tensor._make(np.full(shape, fill, dt.np))


def _register_affine(module, affine, shape, dtype, bias):
    """``weight`` (ones) and, with ``bias``, ``bias`` (zeros) of ``shape`` when ``affine``, else None."""
    if affine:
        module.weight = Parameter(_new(shape, 1.0, dtype))
        if bias:
            module.bias = Parameter(_new(shape, 0.0, dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module, affine):
    if affine:
        init.ones_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)


class _NormBase(Module):
    """Shared state of batch and instance norm: ``weight`` / ``bias`` (affine), the buffers
    ``running_mean``, ``running_var`` and ``num_batches_tracked`` (track_running_stats)."""

    _version = 2

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        _check_device(device)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, affine, (num_features,), dtype, bias)
        if track_running_stats:
            self.register_buffer("running_mean", _new((num_features,), 0.0, dtype))
            self.register_buffer("running_var", _new((num_features,), 1.0, dtype))
            self.register_buffer("num_batches_tracked", Tensor._make(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        """Zero the running mean and tracked-batch count, set the running variance to one."""
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0
            for t in (self.running_mean, self.running_var, self.num_batches_tracked):
                t._version_box[0] += 1

    def reset_parameters(self):
        """Reset the running statistics and set ``weight`` to ones, ``bias`` to zeros."""
        self.reset_running_stats()
        _reset_affine(self, self.affine)

    def _check_input_dim(self, input):
        raise NotImplementedError

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # checkpoints written before num_batches_tracked existed load with the current count
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict and local_metadata.get("version", None) is None:
            state_dict[key] = self.num_batches_tracked if self.num_batches_tracked is not None else \
                Tensor._make(np.zeros((), np.int64))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class _BatchNorm(_NormBase):
    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data[...] += 1
            self.num_batches_tracked._version_box[0] += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked._data)
        # batch statistics in training, and in eval when no running statistics are kept
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        # the buffers are passed only where they are read or updated
        track = not self.training or self.track_running_stats
        return _F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                             self.weight, self.bias, use_batch, factor, self.eps)


_BN_DOC = """Batch normalization over the channels (dim 1) of a {shape} input.

    In training, each channel is normalised with the batch mean and biased variance (over the
    batch and all spatial positions) and, with ``track_running_stats``, the running estimates
    are updated: ``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased
    variance), or a cumulative average when ``momentum`` is None; ``num_batches_tracked`` counts
    the updates. In eval the running estimates normalise (the batch statistics if they are not
    tracked). ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``.
    eps : float, default 1e-5
        Added to the variance for numerical stability.
    momentum : float or None, default 0.1
        Running-statistics factor; None for a cumulative moving average.
    affine : bool, default True
        Learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
    track_running_stats : bool, default True
        Keep the buffers ``running_mean``, ``running_var`` and ``num_batches_tracked``.
    bias : bool, default True (keyword-only)
        With ``affine``, whether there is a ``bias``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.{name}(4)
    >>> m(cygrad.randn({example})).shape
    cygrad.Size([{example}])
    >>> m.num_batches_tracked
    tensor(1)
    """


class BatchNorm1d(_BatchNorm):
    __doc__ = _BN_DOC.format(shape="``(N, C)`` or ``(N, C, L)``", name="BatchNorm1d", example="8, 4, 5")

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    __doc__ = _BN_DOC.format(shape="``(N, C, H, W)``", name="BatchNorm2d", example="8, 4, 5, 5")

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    __doc__ = _BN_DOC.format(shape="``(N, C, D, H, W)``", name="BatchNorm3d", example="8, 4, 3, 5, 5")

    def _check_input_dim(self, input):
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


class _InstanceNorm(_NormBase):
    _spatial = 1

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _check_input_dim(self, input):
        d, s = input.dim(), self._spatial
        if d not in (s + 1, s + 2):
            raise ValueError(f"expected {s + 1}D or {s + 2}D input (got {d}D input)")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if local_metadata.get("version", None) is None and not self.track_running_stats:
            keys = [prefix + k for k in ("running_mean", "running_var") if prefix + k in state_dict]
            if keys:
                name = type(self).__name__
                names = " and ".join(f'"{k}"' for k in keys)
                error_msgs.append(
                    f"Unexpected running stats buffer(s) {names} for {name} with track_running_stats=False. "
                    f"If state_dict is a checkpoint saved before 0.4.0, this may be expected because {name} "
                    f"does not track running stats by default since 0.4.0. "
                    f"Please remove these keys from state_dict. If the running stats are actually needed, instead "
                    f"set track_running_stats=True in {name} to enable them. See the documentation of {name} for "
                    f"details.")
                for k in keys:
                    state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, input):
        self._check_input_dim(input)
        feature_dim = input.dim() - (self._spatial + 1)
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        unbatched = input.dim() == self._spatial + 1
        x = input.unsqueeze(0) if unbatched else input
        out = _F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               self.training or not self.track_running_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)
        return out.squeeze(0) if unbatched else out


_IN_DOC = """Instance normalization of a {shape} input: every ``(n, c)`` slice is normalised by
    its own mean and biased variance over the spatial positions.

    With ``track_running_stats`` the running mean / variance (batch averages of the instance
    statistics, unbiased variance) are updated in training and used in eval.
    ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``.
    eps : float, default 1e-5
        Added to the variance for numerical stability.
    momentum : float, default 0.1
        Running-statistics factor.
    affine : bool, default False
        Learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
    track_running_stats : bool, default False
        Keep running statistics (used in eval).
    bias : bool, default True (keyword-only)
        With ``affine``, whether there is a ``bias``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.{name}(4, affine=True)
    >>> m(cygrad.randn({example})).shape
    cygrad.Size([{example}])
    """


class InstanceNorm1d(_InstanceNorm):
    __doc__ = _IN_DOC.format(shape="``(N, C, L)`` or ``(C, L)``", name="InstanceNorm1d", example="2, 4, 6")
    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    __doc__ = _IN_DOC.format(shape="``(N, C, H, W)`` or ``(C, H, W)``", name="InstanceNorm2d", example="2, 4, 6, 6")
    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    __doc__ = _IN_DOC.format(shape="``(N, C, D, H, W)`` or ``(C, D, H, W)``", name="InstanceNorm3d",
                             example="2, 4, 3, 6, 6")
    _spatial = 3


def _as_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(normalized_shape)


class LayerNorm(Module):
    """Layer normalization over the trailing dims ``normalized_shape`` (see ``F.layer_norm``).

    Parameters
    ----------
    normalized_shape : int or tuple of int
        Trailing shape to normalise over.
    eps : float, default 1e-5
        Added to the variance for numerical stability.
    elementwise_affine : bool, default True
        Learnable elementwise ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.
    bias : bool, default True
        With ``elementwise_affine``, whether there is a ``bias``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.LayerNorm([4, 5])
    >>> m
    LayerNorm((4, 5), eps=1e-05, elementwise_affine=True, bias=True)
    >>> m(cygrad.randn(3, 4, 5)).shape
    cygrad.Size([3, 4, 5])
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, elementwise_affine, self.normalized_shape, dtype, bias)
        self.reset_parameters()

    def reset_parameters(self):
        """Set ``weight`` to ones and ``bias`` to zeros."""
        _reset_affine(self, self.elementwise_affine)

    def forward(self, input):
        return _F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Group normalization: statistics per sample over ``num_groups`` groups of channels (see
    ``F.group_norm``), with a per-channel affine map.

    Parameters
    ----------
    num_groups : int
        Number of groups; must divide ``num_channels``.
    num_channels : int
        Number of channels ``C`` of the ``(N, C, *)`` input.
    eps : float, default 1e-5
        Added to the variance for numerical stability.
    affine : bool, default True
        Learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
    bias : bool, default True (keyword-only)
        With ``affine``, whether there is a ``bias``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.GroupNorm(2, 6)
    >>> m
    GroupNorm(2, 6, eps=1e-05, affine=True, bias=True)
    >>> m(cygrad.randn(4, 6, 5)).shape
    cygrad.Size([4, 6, 5])
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        _check_device(device)
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, affine, (num_channels,), dtype, bias)
        self.reset_parameters()

    def reset_parameters(self):
        """Set ``weight`` to ones and ``bias`` to zeros."""
        _reset_affine(self, self.affine)

    def forward(self, input):
        return _F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing dims ``normalized_shape`` (see
    ``F.rms_norm``): ``y = x / sqrt(mean(x^2) + eps) * weight``.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        Trailing shape to normalise over.
    eps : float, optional
        Added to the mean square; None (default) uses ``finfo(input.dtype).eps``.
    elementwise_affine : bool, default True
        Learnable elementwise ``weight`` (ones) of shape ``normalized_shape``.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.RMSNorm(4)
    >>> m
    RMSNorm((4,), eps=None, elementwise_affine=True)
    >>> m(cygrad.randn(2, 4)).shape
    cygrad.Size([2, 4])
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_new(self.normalized_shape, 1.0, dtype))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Set ``weight`` to ones."""
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return _F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LocalResponseNorm(Module):
    """Local response normalization across channels (see ``F.local_response_norm``).

    Parameters
    ----------
    size : int
        Number of neighbouring channels in the window.
    alpha : float, default 1e-4
        Multiplicative factor.
    beta : float, default 0.75
        Exponent.
    k : float, default 1.0
        Additive constant.

    Examples
    --------
    >>> import cygrad
    >>> m = cygrad.nn.LocalResponseNorm(2)
    >>> m
    LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)
    >>> m(cygrad.randn(2, 4, 3, 3)).shape
    cygrad.Size([2, 4, 3, 3])
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return _F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
