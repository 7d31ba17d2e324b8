"""Gradient accumulation over micro-batches (cygrad extension; PyTorch has no equivalent)."""
import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.utils.clip_grad import clip_grad_norm_
from .optimizer import Optimizer

__all__ = ["GradAccumulator"]

_NONFINITE_MODES = ("raise", "skip")


class GradAccumulator:
    """Accumulate gradients over several micro-batches before each optimizer update.

    Call ``backward()`` on each micro-batch's loss, then :meth:`step`. Gradients add up in
    ``.grad`` (autograd's accumulation); after ``accumulation_steps`` micro-batches,
    :meth:`step` applies one update:

    1. if ``normalize``, divide every gradient by the number of micro-batches in the window, so
       that ``N`` micro-batches of a mean-reduced loss give the gradient of one batch of ``N``
       times the size;
    2. check that every gradient is finite (see ``nonfinite``);
    3. if ``max_grad_norm`` is set, clip by the global L2 norm
       (:func:`cygrad.nn.utils.clip_grad_norm_`);
    4. ``optimizer.step()`` then ``optimizer.zero_grad()``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to drive.
    accumulation_steps : int
        Micro-batches per update (>= 1; 1 updates after every micro-batch).
    normalize : bool, default True
        Divide the accumulated gradients by the number of micro-batches.
    max_grad_norm : float, optional
        Clip the (normalized) gradients to this global L2 norm before the update.
    nonfinite : {'raise', 'skip'}, default 'raise'
        What to do when a gradient holds nan or inf at update time. ``'raise'``:
        raise ``FloatingPointError`` naming the parameter (its name if the optimizer was given
        named parameters, else its param-group index and position); no parameter, gradient,
        optimizer state or window counter is modified, so the gradients can be inspected, and
        :meth:`reset` discards the window. ``'skip'``: drop the update, zero the gradients,
        restart the window and count it in ``stats()['skipped_updates']``.

    Raises
    ------
    ValueError
        If ``accumulation_steps < 1``, ``max_grad_norm <= 0`` or ``nonfinite`` is unknown.

    Examples
    --------
    >>> import cygrad
    >>> w = cygrad.zeros(3, requires_grad=True)
    >>> opt = cygrad.optim.SGD([w], lr=0.1)
    >>> acc = cygrad.optim.GradAccumulator(opt, accumulation_steps=4, max_grad_norm=1.0)
    >>> x = cygrad.randn(16, 3)
    >>> y = x.sum(1)
    >>> for xb, yb in zip(x.split(4), y.split(4)):
    ...     loss = ((xb @ w - yb) ** 2).mean()
    ...     loss.backward()
    ...     updated = acc.step()
    >>> updated
    True
    >>> acc.stats()["updates"]
    1
    """

    def __init__(self, optimizer, accumulation_steps, normalize=True, max_grad_norm=None, nonfinite="raise"):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, (int, np.integer)):
            raise TypeError(f"accumulation_steps must be an int, got {type(accumulation_steps).__name__}")
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        if max_grad_norm is not None and not float(max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
        if nonfinite not in _NONFINITE_MODES:
            raise ValueError(f"nonfinite must be one of {_NONFINITE_MODES}, got {nonfinite!r}")
        self.optimizer = optimizer
        self._steps = int(accumulation_steps)
        self.normalize = bool(normalize)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.nonfinite = nonfinite
        self._count = 0
        self._micro_batches = 0
        self._updates = 0
        self._skipped = 0
        self.last_grad_norm = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def accumulation_steps(self):
        """Micro-batches per update."""
        return self._steps

    @property
    def current_step(self):
        """Micro-batches accumulated in the current window (0 right after an update)."""
        return self._count

    def effective_batch_size(self, micro_batch_size):
        """The batch size one update corresponds to: ``micro_batch_size * accumulation_steps``.

        Parameters
        ----------
        micro_batch_size : int
            Samples per micro-batch.

        Returns
        -------
        int
        """
        return int(micro_batch_size) * self._steps

    def _params(self):
        for gi, group in enumerate(self.optimizer.param_groups):
            names = group.get("param_names")
            for pi, p in enumerate(group["params"]):
                yield (names[pi] if names is not None else f"param_groups[{gi}]['params'][{pi}]"), p

    def stats(self):
        """Counters of the accumulator.

        Returns
        -------
        dict
            ``micro_batches`` (total :meth:`step` calls), ``updates`` (optimizer steps applied),
            ``skipped_updates`` (non-finite windows dropped), ``accumulation_steps``,
            ``current_step``, ``num_parameters`` (tensors optimized) and ``num_elements``
            (their total number of elements).
        """
        params = [p for _, p in self._params()]
        return {
            "micro_batches": self._micro_batches,
            "updates": self._updates,
            "skipped_updates": self._skipped,
            "accumulation_steps": self._steps,
            "current_step": self._count,
            "num_parameters": len(params),
            "num_elements": int(sum(p.numel() for p in params)),
        }

    # -- stepping -----------------------------------------------------------------------------
    def step(self):
        """Record one micro-batch (call after its ``backward()``); update at the window's end.

        Returns
        -------
        bool
            True if an optimizer update was applied.
        """
        self._count += 1
        self._micro_batches += 1
        if self._count < self._steps:
            return False
        return self._apply()

    def flush(self):
        """Apply an update for a partial window (gradients scaled by 1 / micro-batches so far).

        Returns
        -------
        bool
            True if an update was applied; False if the window is empty (or was skipped).
        """
        if self._count == 0:
            return False
        return self._apply()

    def reset(self):
        """Discard the current window: zero the gradients and the micro-batch counter."""
        self.optimizer.zero_grad()
        self._count = 0

    def _apply(self):
        with no_grad():
            for label, p in self._params():
                g = p.grad
                if g is not None and not np.isfinite(g._data).all():
                    if self.nonfinite == "raise":
                        raise FloatingPointError(
                            f"GradAccumulator: non-finite gradient in parameter {label} (shape "
                            f"{tuple(p.shape)}) after {self._count} micro-batch(es); no update was applied")
                    self._skipped += 1
                    self.reset()
                    return False
            if self.normalize and self._count > 1:
                n = self._count
                for _, p in self._params():
                    if p.grad is not None:
                        p.grad._data /= p.grad._data.dtype.type(n)
                        p.grad._bump()
            if self.max_grad_norm is not None:
                self.last_grad_norm = clip_grad_norm_([p for _, p in self._params()], self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._count = 0
        self._updates += 1
        return True

    def __repr__(self):
        return (f"GradAccumulator(accumulation_steps={self._steps}, normalize={self.normalize}, "
                f"max_grad_norm={self.max_grad_norm}, nonfinite={self.nonfinite!r}, current_step={self._count})")
