"""Loss modules over the functional losses of ``cygrad.nn.functional``."""
from ...ops import loss as L
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss"]


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            self.reduction = L._legacy_reduction(size_average, reduce, reduction)
        else:
            self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.weight = weight


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy between logits and class indices or class probabilities.

    Examples
    --------
    >>> import cygrad
    >>> loss = cygrad.nn.CrossEntropyLoss()
    >>> out = loss(cygrad.randn(3, 5, requires_grad=True), cygrad.tensor([1, 0, 4]))
    >>> out.backward()
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return L.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities and class indices.

    Examples
    --------
    >>> import cygrad
    >>> logp = cygrad.nn.LogSoftmax(dim=1)(cygrad.randn(3, 5))
    >>> out = cygrad.nn.NLLLoss()(logp, cygrad.tensor([1, 0, 4]))
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return L.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.MSELoss()(cygrad.randn(3, 5), cygrad.randn(3, 5))
    """

    def forward(self, input, target):
        return L.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.L1Loss()(cygrad.randn(3, 5), cygrad.randn(3, 5))
    """

    def forward(self, input, target):
        return L.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Smooth L1 loss with threshold ``beta``.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.SmoothL1Loss(beta=0.5)(cygrad.randn(3, 5), cygrad.randn(3, 5))
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return L.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Huber loss with threshold ``delta``.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.HuberLoss(delta=0.5)(cygrad.randn(3, 5), cygrad.randn(3, 5))
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return L.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.BCELoss()(cygrad.rand(3), cygrad.tensor([1.0, 0.0, 1.0]))
    """

    def forward(self, input, target):
        return L.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy, numerically stable.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.BCEWithLogitsLoss()(cygrad.randn(3), cygrad.tensor([1.0, 0.0, 1.0]))
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.weight = weight
        self.pos_weight = pos_weight

    def forward(self, input, target):
        return L.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence (``input`` is log-probabilities).

    Examples
    --------
    >>> import cygrad
    >>> logp = cygrad.nn.LogSoftmax(dim=1)(cygrad.randn(3, 5))
    >>> out = cygrad.nn.KLDivLoss(reduction="batchmean")(logp, cygrad.nn.Softmax(dim=1)(cygrad.randn(3, 5)))
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return L.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineEmbeddingLoss(_Loss):
    """Cosine embedding loss with ``margin``.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.CosineEmbeddingLoss()(cygrad.randn(3, 4), cygrad.randn(3, 4), cygrad.tensor([1, -1, 1]))
    """

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return L.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """Margin ranking loss ``max(0, -y (x1 - x2) + margin)``.

    Examples
    --------
    >>> import cygrad
    >>> out = cygrad.nn.MarginRankingLoss()(cygrad.randn(3), cygrad.randn(3), cygrad.tensor([1.0, -1.0, 1.0]))
    """

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return L.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)
