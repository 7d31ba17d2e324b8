"""Datasets, samplers and data loading (``torch.utils.data``).

Map-style datasets (``__getitem__`` + ``__len__``) and iterable-style datasets (``__iter__``)
are read by :class:`DataLoader`, which draws indices from a sampler, groups them into batches
(:class:`BatchSampler`) and merges each batch's samples with :func:`default_collate`.

Differences from PyTorch:

* Loading always happens in the calling process: ``num_workers > 0`` is accepted (and
  validated) but no worker process is started, so ``worker_init_fn`` is never called and
  :func:`get_worker_info` returns None. ``pin_memory`` is ignored (CPU only).
* Shuffling draws from cygrad generators (NumPy PCG64): a given seed always gives the same
  order, but not the order PyTorch gives for that seed.
"""
import bisect
import collections.abc
import copy
import itertools
import math
import re
import warnings

import numpy as np

from .. import _dtype as D
from .._creation import as_tensor, tensor
from .._random import Generator, default_generator, rng
from .._tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "Subset",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate", "default_convert",
           "collate", "default_collate_fn_map", "get_worker_info"]


# ---- datasets --------------------------------------------------------------------------------------
class Dataset:
    """Base class of map-style datasets: subclasses define ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets (:class:`ConcatDataset`).

    Examples
    --------
    >>> from cygrad.utils.data import Dataset
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> [Squares()[i] for i in range(4)], len(Squares() + Squares())
    ([0, 1, 4, 9], 8)
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of iterable-style datasets: subclasses define ``__iter__`` (a stream of samples).

    A :class:`DataLoader` over an iterable dataset takes samples in the order the iterator
    yields them (no sampler, no shuffling). ``a + b`` chains two streams (:class:`ChainDataset`).

    Examples
    --------
    >>> from cygrad.utils.data import IterableDataset, DataLoader
    >>> class Count(IterableDataset):
    ...     def __iter__(self):
    ...         return iter(range(5))
    >>> [b.tolist() for b in DataLoader(Count(), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Dataset of tensors indexed together along their first dimension.

    Parameters
    ----------
    *tensors : Tensor
        Tensors with the same size of dimension 0; sample ``i`` is
        ``tuple(t[i] for t in tensors)``.

    Raises
    ------
    AssertionError
        ``"Size mismatch between tensors"`` when the first dimensions differ (as in PyTorch).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import TensorDataset
    >>> ds = TensorDataset(cygrad.arange(6).reshape(3, 2), cygrad.tensor([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (tensor([2, 3]), tensor(1)))
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: expected Tensors, got {type(t).__name__}")
            if t.dim() == 0:
                raise ValueError("TensorDataset: tensors must have at least one dimension")
        if any(tensors[0].size(0) != t.size(0) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].size(0)


class ConcatDataset(Dataset):
    """The concatenation of several map-style datasets.

    Parameters
    ----------
    datasets : iterable of Dataset
        Non-empty; no :class:`IterableDataset` (use :class:`ChainDataset`).

    Attributes
    ----------
    cumulative_sizes : list of int
        ``cumulative_sizes[k]`` is the total length of the first ``k + 1`` datasets.

    Examples
    --------
    >>> from cygrad.utils.data import ConcatDataset
    >>> ds = ConcatDataset([[1, 2], [3, 4, 5]])
    >>> len(ds), ds[2], ds[-1], ds.cumulative_sizes
    (5, 3, 5, [2, 5])
    """

    @staticmethod
    def cumsum(sequence):
        r, s = [], 0
        for e in sequence:
            n = len(e)
            r.append(n + s)
            s += n
        return r

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        if dataset_idx >= len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length {len(self)}")
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return self.datasets[dataset_idx][sample_idx]


class ChainDataset(IterableDataset):
    """Iterable datasets chained one after the other.

    Examples
    --------
    >>> from cygrad.utils.data import IterableDataset, ChainDataset
    >>> class Range(IterableDataset):
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def __iter__(self):
    ...         return iter(range(self.n))
    >>> list(ChainDataset([Range(2), Range(3)]))
    [0, 1, 0, 1, 2]
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self):
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Parameters
    ----------
    dataset : Dataset
    indices : sequence of int

    Examples
    --------
    >>> from cygrad.utils.data import Subset
    >>> s = Subset(["a", "b", "c", "d"], [3, 0])
    >>> len(s), s[0], s[1]
    (2, 'd', 'a')
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        if type(self).__getitem__ is not Subset.__getitem__ and type(self).__getitems__ is Subset.__getitems__:
            raise NotImplementedError(
                f"{type(self).__name__} overrides __getitem__ but not __getitems__. When subclassing Subset "
                "and overriding __getitem__, you must also override __getitems__ to ensure DataLoader works "
                "correctly with your custom logic. A simple implementation:\n\n"
                "def __getitems__(self, indices):\n    return [self.__getitem__(idx) for idx in indices]")

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=default_generator):
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given lengths.

    Parameters
    ----------
    dataset : Dataset
        Anything with ``len`` and indexing.
    lengths : sequence of int or float
        Lengths summing to ``len(dataset)``, or fractions summing to 1: each split then gets
        ``floor(frac * len(dataset))`` samples and the remainder is dealt out one by one, from
        the first split on (PyTorch's rule, so the lengths equal PyTorch's).
    generator : Generator, optional
        Source of the permutation (default: the default generator). The same seed gives the
        same split; it is not the split PyTorch gives for that seed.

    Returns
    -------
    list of Subset

    Raises
    ------
    ValueError
        When a fraction is outside [0, 1] or the lengths don't add up to ``len(dataset)``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import random_split
    >>> a, b, c = random_split(range(10), [0.5, 0.3, 0.2], generator=cygrad.Generator().manual_seed(0))
    >>> len(a), len(b), len(c), sorted(list(a) + list(b) + list(c)) == list(range(10))
    (5, 3, 2, True)
    """
    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(math.floor(n * frac))
        remainder = n - sum(subset_lengths)
        for i in range(remainder):
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"random_split: length at index {i} must be a non-negative int, got {length!r}")
    indices = rng(generator).permutation(n).tolist()
    return [Subset(dataset, indices[offset - length:offset])
            for offset, length in zip(itertools.accumulate(lengths), lengths)]


# ---- samplers --------------------------------------------------------------------------------------
class Sampler:
    """Base class of samplers: ``__iter__`` yields dataset indices (or lists of them, for batch
    samplers); ``__len__`` is optional.

    Examples
    --------
    >>> from cygrad.utils.data import Sampler
    >>> class Reverse(Sampler):
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def __iter__(self):
    ...         return iter(range(self.n - 1, -1, -1))
    ...     def __len__(self):
    ...         return self.n
    >>> list(Reverse(3))
    [2, 1, 0]
    """

    def __init__(self, data_source=None):
        if data_source is not None:
            warnings.warn("`data_source` argument is not used and will be removed in 2.2.0. "
                          "You may still have custom implementation that utilizes it.", stacklevel=2)

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """Indices from 0 to ``len(data_source) - 1``, in order.

    Examples
    --------
    >>> from cygrad.utils.data import SequentialSampler
    >>> list(SequentialSampler("abc"))
    [0, 1, 2]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _fresh_generator():
    """A generator seeded from the default one (PyTorch's RandomSampler does the same), so that
    ``cygrad.manual_seed`` makes unseeded shuffling reproducible."""
    return Generator().manual_seed(int(rng().integers(0, 2 ** 63)))


class RandomSampler(Sampler):
    """Random indices: a permutation (repeated to reach ``num_samples``), or draws with replacement.

    Parameters
    ----------
    data_source : sized
        The dataset (only its length is used).
    replacement : bool, default False
        Draw ``num_samples`` indices independently with replacement.
    num_samples : int, optional
        Number of indices per epoch (default ``len(data_source)``). Without replacement, more
        than ``len(data_source)`` chains several permutations.
    generator : Generator, optional
        Source of randomness. Without one, each epoch seeds a fresh generator from the default
        generator, so ``cygrad.manual_seed`` fixes the order too. cygrad draws with NumPy, so
        orders differ from PyTorch's for the same seed.

    Raises
    ------
    TypeError, ValueError
        For a non-bool ``replacement`` or a non-positive ``num_samples``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import RandomSampler
    >>> s = RandomSampler(range(5), generator=cygrad.Generator().manual_seed(0))
    >>> sorted(s)
    [0, 1, 2, 3, 4]
    >>> len(RandomSampler(range(5), replacement=True, num_samples=12))
    12
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={self.replacement}")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self):
        if self._num_samples is None:
            return len(self.data_source)
        return self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        g = rng(self.generator if self.generator is not None else _fresh_generator())
        if self.replacement:
            yield from g.integers(0, n, size=self.num_samples).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from g.permutation(n).tolist()
            yield from g.permutation(n).tolist()[:self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a new permutation each epoch).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import SubsetRandomSampler
    >>> sorted(SubsetRandomSampler([10, 20, 30], generator=cygrad.Generator().manual_seed(1)))
    [10, 20, 30]
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        g = rng(self.generator if self.generator is not None else _fresh_generator())
        for i in g.permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import WeightedRandomSampler
    >>> list(WeightedRandomSampler([0.0, 1.0, 0.0], 4, generator=cygrad.Generator().manual_seed(0)))
    [1, 1, 1, 1]
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        w = np.asarray(weights._data if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(w.shape)}")
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (weights must be finite, non-negative, "
                               "with a positive sum)")
        if not replacement and num_samples > np.count_nonzero(w):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        self.weights = as_tensor(w)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        w = self.weights._data
        g = rng(self.generator)
        yield from g.choice(len(w), size=self.num_samples, replace=self.replacement, p=w / w.sum()).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``.

    Parameters
    ----------
    sampler : Sampler or iterable of int
    batch_size : int
        Positive.
    drop_last : bool
        Drop the last batch when it is smaller than ``batch_size``.

    Raises
    ------
    ValueError
        For a non-positive or non-int ``batch_size`` or a non-bool ``drop_last``.

    Examples
    --------
    >>> from cygrad.utils.data import BatchSampler, SequentialSampler
    >>> list(BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=False))
    [[0, 1, 2], [3, 4, 5], [6]]
    >>> len(BatchSampler(range(7), batch_size=3, drop_last=True))
    2
    """

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        it = iter(self.sampler)
        if self.drop_last:
            for batch in zip(*([it] * self.batch_size)):
                yield list(batch)
        else:
            batch = list(itertools.islice(it, self.batch_size))
            while batch:
                yield batch
                batch = list(itertools.islice(it, self.batch_size))

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


# ---- collation -------------------------------------------------------------------------------------
_np_str_obj_array_pattern = re.compile(r"[SaUO]")
_collate_err = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def default_convert(data):
    """Convert NumPy arrays and scalars in ``data`` (recursively) to tensors; leave the rest.

    Used by :class:`DataLoader` when automatic batching is off (``batch_size=None``).

    Examples
    --------
    >>> import numpy as np
    >>> from cygrad.utils.data import default_convert
    >>> default_convert({"x": np.array([1, 2]), "n": 3})
    {'x': tensor([1, 2]), 'n': 3}
    """
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_", "bytes_"):
        if isinstance(data, np.ndarray) and _np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data
        return as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def _collate_tensor(batch, *, collate_fn_map=None):
    from ..ops.shape import stack
    return stack(list(batch), 0)


def _collate_ndarray(batch, *, collate_fn_map=None):
    elem = batch[0]
    if _np_str_obj_array_pattern.search(elem.dtype.str) is not None:
        raise TypeError(_collate_err.format(elem.dtype))
    return collate([as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def _collate_np_scalar(batch, *, collate_fn_map=None):
    return as_tensor(np.array(batch))


def _collate_float(batch, *, collate_fn_map=None):
    return tensor(list(batch), dtype=D.float64)


def _collate_int(batch, *, collate_fn_map=None):
    return tensor(list(batch))


def _collate_str(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map = {
    Tensor: _collate_tensor,
    np.ndarray: _collate_ndarray,
    (np.bool_, np.number, np.object_): _collate_np_scalar,
    float: _collate_float,
    int: _collate_int,
    str: _collate_str,
    bytes: _collate_str,
}


def collate(batch, *, collate_fn_map=None):
    """Merge a list of samples, dispatching on the type of the first one through ``collate_fn_map``.

    ``collate_fn_map`` maps a type (or tuple of types) to ``fn(batch, *, collate_fn_map)``;
    mappings, namedtuples and sequences are collated element-wise, recursively.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import collate, default_collate_fn_map
    >>> as_list = {**default_collate_fn_map, int: lambda b, *, collate_fn_map: list(b)}
    >>> collate([(1, 2.0), (3, 4.0)], collate_fn_map=as_list)
    [[1, 3], tensor([2., 4.], dtype=cygrad.float64)]
    """
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map)
                              for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        elem_size = len(next(it))
        if not all(len(e) == elem_size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(samples, collate_fn_map=collate_fn_map) for samples in transposed])
        except TypeError:
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
    raise TypeError(_collate_err.format(elem_type))


def default_collate(batch):
    """Merge a list of samples into a batch, like PyTorch's ``default_collate``.

    * tensors are stacked along a new dimension 0; NumPy arrays are converted and stacked;
    * Python ``int`` -> int64 tensor (``bool`` -> bool), ``float`` -> float64 tensor, NumPy
      scalars -> a tensor of their dtype;
    * ``str`` / ``bytes`` are returned as they are (the batch's sequence of them);
    * dicts collate per key, namedtuples per field, tuples and lists per position (a tuple
      sample gives a list, as in PyTorch); all samples' sequences must have the same length.

    Raises
    ------
    TypeError
        For element types it cannot merge (e.g. ``None``, object arrays).
    RuntimeError
        For sequences of different lengths.

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import default_collate
    >>> default_collate([(cygrad.tensor([1.0, 2.0]), 0), (cygrad.tensor([3.0, 4.0]), 1)])
    [tensor([[1., 2.],
            [3., 4.]]), tensor([0, 1])]
    >>> default_collate([{"x": 0.5, "name": "a"}, {"x": 1.5, "name": "b"}])
    {'x': tensor([0.5000, 1.5000], dtype=cygrad.float64), 'name': ['a', 'b']}
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)


def get_worker_info():
    """Information about the current data-loading worker: always None (cygrad loads in-process).

    Examples
    --------
    >>> from cygrad.utils.data import get_worker_info
    >>> get_worker_info() is None
    True
    """
    return None


# ---- DataLoader ------------------------------------------------------------------------------------
class _InfiniteConstantSampler(Sampler):
    def __iter__(self):
        while True:
            yield None


def _tensor_dataset_batch(ds, index):
    """``default_collate([ds[i] for i in index])`` in one gather per tensor when ``ds`` is a
    :class:`TensorDataset`, possibly inside plain :class:`Subset` s; None otherwise."""
    while type(ds) is Subset:
        indices = ds.indices
        index = [indices[i] for i in index]
        ds = ds.dataset
    if type(ds) is not TensorDataset or not index:
        return None
    try:
        idx = np.asarray([int(i) for i in index], dtype=np.int64)
    except (TypeError, ValueError):
        return None
    idx = Tensor._make(idx)
    return [t[idx] for t in ds.tensors]


class _LoaderIter:
    """Iterator over one epoch of a DataLoader (in-process)."""

    def __init__(self, loader):
        self._loader = loader
        self._iterable = loader._iterable
        self._auto = loader._auto_collation
        self._drop_last = loader.drop_last
        self._collate = loader.collate_fn
        self._sampler_iter = iter(loader._index_sampler)
        self._data_iter = iter(loader.dataset) if self._iterable else None
        self._ended = False
        self._yielded = 0

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)

    def _fetch(self, index):
        ds = self._loader.dataset
        if self._iterable:
            if self._auto:
                data = list(itertools.islice(self._data_iter, len(index)))
                if not data or (self._drop_last and len(data) < len(index)):
                    raise StopIteration
            else:
                data = next(self._data_iter)
        elif self._auto:
            if self._collate is default_collate:
                rows = _tensor_dataset_batch(ds, index)
                if rows is not None:
                    return rows
            getitems = getattr(ds, "__getitems__", None)
            data = getitems(index) if callable(getitems) else [ds[i] for i in index]
        else:
            data = ds[index]
        return self._collate(data)

    def __next__(self):
        if self._ended:
            raise StopIteration
        try:
            index = next(self._sampler_iter)
            out = self._fetch(index)
        except StopIteration:
            self._ended = True
            raise
        self._yielded += 1
        return out


class DataLoader:
    """Iterate over a dataset in (optionally shuffled) batches.

    Parameters
    ----------
    dataset : Dataset or IterableDataset
        A map-style dataset (``__getitem__`` and ``__len__``; plain lists work) or an
        :class:`IterableDataset`.
    batch_size : int or None, default 1
        Samples per batch; None disables batching (each sample is converted with
        :func:`default_convert` and yielded alone).
    shuffle : bool, optional
        Reshuffle every epoch (map-style datasets only) with a :class:`RandomSampler`.
    sampler : Sampler or iterable, optional
        Indices to load; excludes ``shuffle``.
    batch_sampler : Sampler or iterable of lists, optional
        Batches of indices; excludes ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``.
    num_workers : int, default 0
        Must be >= 0. Loading always runs in the calling process: larger values are accepted
        for compatibility but start no worker (``worker_init_fn`` is not called).
    collate_fn : callable, optional
        Merges a list of samples into a batch (default :func:`default_collate`).
    pin_memory : bool
        Ignored (CPU only).
    drop_last : bool, default False
        Drop the last incomplete batch.
    timeout : float
        Must be >= 0; otherwise unused.
    worker_init_fn, multiprocessing_context, prefetch_factor, persistent_workers
        Validated like PyTorch does, otherwise unused.
    generator : Generator, optional
        Source of the shuffling order; with a seeded generator each epoch's order is
        reproducible (different seeds give different orders). cygrad's orders differ from
        PyTorch's for the same seed.

    Raises
    ------
    ValueError
        For invalid or mutually exclusive options, with PyTorch's messages (e.g.
        ``"sampler option is mutually exclusive with shuffle"``,
        ``"batch_size should be a positive integer value, but got batch_size=0"``).

    Notes
    -----
    ``len(loader)`` is the number of batches: ``ceil(n / batch_size)``, or
    ``floor(n / batch_size)`` with ``drop_last`` (for an iterable dataset it relies on the
    dataset's ``__len__``).

    Examples
    --------
    >>> import cygrad
    >>> from cygrad.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(cygrad.arange(10).float(), cygrad.arange(10) % 2)
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=cygrad.Generator().manual_seed(0))
    >>> len(loader)
    3
    >>> [tuple(x.shape) for x, y in loader]
    [(4,), (4,), (2,)]
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, int):
            raise TypeError(f"num_workers should be an int, got {type(num_workers).__name__}")
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        elif num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None and num_workers == 0:
            raise ValueError("multiprocessing_context can only be used with multi-process loading "
                             f"(num_workers > 0), but got num_workers={num_workers}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"generator must be a cygrad.Generator, got {type(generator).__name__}")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                                 "drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._initialized = True

    def __setattr__(self, attr, val):
        if getattr(self, "_initialized", False) and attr in (
                "batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after {self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        return _LoaderIter(self)

    def __len__(self):
        if self._iterable:
            length = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else math.ceil(length / self.batch_size)
            return length
        return len(self._index_sampler)
