"""``torch.nn.utils.rnn``: PackedSequence, pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence.

A :class:`PackedSequence` stores a batch of variable-length sequences time-major without
padding: ``data`` holds the rows of step 0 of every sequence, then of step 1 of every sequence
still running, and so on; ``batch_sizes[t]`` says how many sequences are running at step ``t``
(the sequences are sorted by decreasing length, ``sorted_indices`` / ``unsorted_indices`` map
to and from the caller's order). The recurrent layers accept and return packed sequences.
"""
from collections import namedtuple
from collections.abc import Iterable

import numpy as np

from ..._tensor import Tensor
from ...ops.shape import IndexPut, index_select, stack, pad as _pad, convert_key

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence",
           "pad_sequence", "unpad_sequence", "pack_sequence", "unpack_sequence"]

_PackedSequenceBase = namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


def _long(a):
    return Tensor._make(np.ascontiguousarray(a, dtype=np.int64))


def invert_permutation(permutation):
    """The inverse of a permutation (a 1-D int64 tensor), or None for None.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import invert_permutation
    >>> invert_permutation(cygrad.tensor([2, 0, 1]))
    tensor([1, 2, 0])
    """
    if permutation is None:
        return None
    p = np.asarray(permutation._data, dtype=np.int64)
    out = np.empty_like(p)
    out[p] = np.arange(p.size, dtype=np.int64)
    return _long(out)


class PackedSequence(_PackedSequenceBase):
    """A batch of variable-length sequences packed time-major (``torch.nn.utils.rnn.PackedSequence``).

    Attributes
    ----------
    data : Tensor
        ``(sum of lengths, *)``: the rows of all sequences, step by step.
    batch_sizes : Tensor
        int64 (max length,): the number of sequences running at each step.
    sorted_indices, unsorted_indices : Tensor or None
        int64 permutations from the original batch order to the sorted one and back.

    Instances are made by :func:`pack_padded_sequence` or :func:`pack_sequence`, not by hand.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pack_sequence
    >>> p = pack_sequence([cygrad.tensor([1, 2, 3]), cygrad.tensor([4, 5]), cygrad.tensor([6])])
    >>> p.data, p.batch_sizes
    (tensor([1, 4, 6, 2, 5, 3]), tensor([3, 2, 1]))
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """Convert ``data`` (dtype / device); returns self if nothing changes."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cpu(self, *args, **kwargs):
        """self (there is only the CPU)."""
        return self.to("cpu")

    def double(self):
        return self.to(dtype=_dtype("float64"))

    def float(self):
        return self.to(dtype=_dtype("float32"))

    def half(self):
        return self.to(dtype=_dtype("float16"))

    def long(self):
        return self.to(dtype=_dtype("int64"))

    def int(self):
        return self.to(dtype=_dtype("int32"))

    def short(self):
        return self.to(dtype=_dtype("int16"))

    def char(self):
        return self.to(dtype=_dtype("int8"))

    def byte(self):
        return self.to(dtype=_dtype("uint8"))

    @property
    def is_cuda(self):
        """False: data lives on the CPU."""
        return False

    def is_pinned(self):
        """False (no pinned memory on the CPU-only build)."""
        return False


def _dtype(name):
    from ... import _dtype as D
    return D.to_dtype(name)


def _lengths_array(lengths):
    if isinstance(lengths, Tensor):
        a = lengths._data
        if a.ndim != 1:
            from ... import _dtype as D
            raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got {a.ndim}D cpu "
                               f"{D.scalar_name(lengths.dtype)} tensor")
        return a.astype(np.int64)
    a = np.asarray(lengths)
    if a.ndim != 1:
        raise RuntimeError(f"'lengths' argument should be a 1D list of integers, got {a.ndim}D")
    return a.astype(np.int64)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch of variable-length sequences.

    Parameters
    ----------
    input : Tensor
        ``(T, B, *)`` padded sequences, or ``(B, T, *)`` with ``batch_first``.
    lengths : Tensor or list of int
        (B,) the length of each sequence (each in [1, T]).
    batch_first : bool, default False
    enforce_sorted : bool, default True
        If True the lengths must be in decreasing order; otherwise the batch is sorted (stably)
        and the permutation kept in ``sorted_indices``.

    Returns
    -------
    PackedSequence

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pack_padded_sequence
    >>> x = cygrad.tensor([[1, 4], [2, 5], [3, 0]])
    >>> pack_padded_sequence(x, [3, 2])
    PackedSequence(data=tensor([1, 4, 2, 5, 3]), batch_sizes=tensor([2, 2, 1]), sorted_indices=None, unsorted_indices=None)
    """
    lens = _lengths_array(lengths)
    sorted_indices = None
    if not enforce_sorted:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        sorted_indices = _long(order)
    if input.dim() < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-{max(input.dim(), 1)}, "
                         f"{max(input.dim(), 1) - 1}], but got 1)")
    batch_dim, time_dim = (0, 1) if batch_first else (1, 0)
    B, T = input.shape[batch_dim], input.shape[time_dim]
    if lens.size != B:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lens.size} "
                           f"(batch_size={B})")
    if lens.size == 0:
        raise RuntimeError("Cannot pack an empty batch of sequences (input size "
                           f"{list(input.shape)})")
    if lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in "
                           "'lengths' that is <= 0")
    if enforce_sorted and np.any(np.diff(lens) > 0):
        raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                           "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                           "sidestep this requirement if you do not need ONNX exportability.")
    if lens.max() > T:
        raise RuntimeError(f"A sequence length {int(lens.max())} exceeds the padded length {T} of the input "
                           f"(input size {list(input.shape)}, batch_first={batch_first})")
    if sorted_indices is not None:
        input = index_select(input, batch_dim, sorted_indices)
    bs = (lens[None, :] > np.arange(int(lens[0]))[:, None]).sum(1).astype(np.int64)
    t_idx = np.repeat(np.arange(bs.size), bs)
    b_idx = np.arange(t_idx.size) - np.repeat(np.cumsum(bs) - bs, bs)
    data = input[(b_idx, t_idx) if batch_first else (t_idx, b_idx)]
    return PackedSequence(data, _long(bs), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Unpack a :class:`PackedSequence` into a padded tensor (the inverse of :func:`pack_padded_sequence`).

    Parameters
    ----------
    sequence : PackedSequence
    batch_first : bool, default False
        Return ``(B, T, *)`` instead of ``(T, B, *)``.
    padding_value : float, default 0
    total_length : int, optional
        Pad to this length (at least the longest sequence; ValueError otherwise).

    Returns
    -------
    tuple of Tensor
        The padded batch, in the original order, and the lengths (int64, (B,)).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pack_sequence, pad_packed_sequence
    >>> p = pack_sequence([cygrad.tensor([1., 2.]), cygrad.tensor([3.])])
    >>> pad_packed_sequence(p, batch_first=True)
    (tensor([[1., 2.],
            [3., 0.]]), tensor([2, 1]))
    """
    bs = np.asarray(sequence.batch_sizes._data, dtype=np.int64)
    data = sequence.data
    max_len = bs.size
    if total_length is not None:
        if total_length < max_len:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {max_len}")
        max_len = int(total_length)
    B = int(bs[0]) if bs.size else 0
    if int(bs.sum()) != data.shape[0]:
        raise RuntimeError(f"batch_sizes sum to {int(bs.sum())} but the packed data has {data.shape[0]} rows")
    t_idx = np.repeat(np.arange(bs.size), bs)
    b_idx = np.arange(t_idx.size) - np.repeat(np.cumsum(bs) - bs, bs)
    shape = ((B, max_len) if batch_first else (max_len, B)) + tuple(data.shape[1:])
    base = Tensor._make(np.full(shape, padding_value, dtype=data._data.dtype))
    key, _ = convert_key((b_idx, t_idx) if batch_first else (t_idx, b_idx))
    padded = IndexPut.apply(base, data, key, False)
    lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1).astype(np.int64)
    if sequence.unsorted_indices is not None:
        un = sequence.unsorted_indices
        padded = index_select(padded, 0 if batch_first else 1, un)
        lengths = lengths[np.asarray(un._data, dtype=np.int64)]
    return padded, _long(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack variable-length tensors ``(L_i, *)`` into one padded tensor.

    Parameters
    ----------
    sequences : list of Tensor
        Same trailing shape; the result has the first one's dtype.
    batch_first : bool, default False
        Return ``(B, T, *)`` instead of ``(T, B, *)``, T the longest length.
    padding_value : float, default 0
    padding_side : {"right", "left"}, default "right"

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pad_sequence
    >>> pad_sequence([cygrad.tensor([1, 2, 3]), cygrad.tensor([4])], batch_first=True)
    tensor([[1, 2, 3],
            [4, 0, 0]])
    """
    if isinstance(sequences, Tensor):
        sequences = [sequences[i] for i in range(sequences.shape[0])]
    elif not isinstance(sequences, Iterable):
        raise RuntimeError("pad_sequence: Expected iterable for input sequences, but got arg of type: "
                           f"{type(sequences)}")
    seqs = list(sequences)
    if not seqs:
        raise RuntimeError("received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    first = seqs[0]
    if first.dim() < 1:
        raise RuntimeError("pad_sequence: the sequences must have at least one dimension, got a 0-D tensor")
    trailing = tuple(first.shape[1:])
    for i, s in enumerate(seqs):
        if s.dim() < 1 or tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: sequence {i} has size {list(s.shape)}, expected trailing "
                               f"dimensions {list(trailing)} as the first sequence (size {list(first.shape)})")
    T = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        if s.dtype != first.dtype:
            s = s.to(first.dtype)
        extra = T - s.shape[0]
        if extra:
            spec = [0, 0] * len(trailing) + ([extra, 0] if padding_side == "left" else [0, extra])
            s = _pad(s, tuple(spec), value=padding_value)
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """Split a padded batch back into a list of tensors of the given lengths.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import unpad_sequence
    >>> unpad_sequence(cygrad.tensor([[1, 2], [3, 0]]), cygrad.tensor([2, 1]), batch_first=True)
    [tensor([1, 2]), tensor([3])]
    """
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    lens = _lengths_array(lengths)
    if lens.size != x.shape[0]:
        raise ValueError(f"unpad_sequence: got {lens.size} lengths for a batch of {x.shape[0]} "
                         f"(padded size {list(padded_sequences.shape)})")
    return [x[i, :int(n)] for i, n in enumerate(lens)]


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of variable-length tensors (``pad_sequence`` then ``pack_padded_sequence``).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pack_sequence
    >>> pack_sequence([cygrad.tensor([1, 2]), cygrad.tensor([3, 4, 5])], enforce_sorted=False).batch_sizes
    tensor([2, 2, 1])
    """
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of tensors a :class:`PackedSequence` holds, in the original order.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.nn.utils.rnn import pack_sequence, unpack_sequence
    >>> unpack_sequence(pack_sequence([cygrad.tensor([1, 2]), cygrad.tensor([3])]))
    [tensor([1, 2]), tensor([3])]
    """
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
