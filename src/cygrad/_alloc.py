"""Reuse of large result arrays between calls: a small caching allocator for the kernels' outputs.

A kernel writes its result into a fresh array. A fresh array of a few MB gets new pages from the
OS each time (glibc hands blocks that large back to the OS when they are freed), and the page
faults that fill them in cost about as much as some kernels themselves: 2-3 ms of a 10 ms
selective-scan step. A training loop allocates the same shapes step after step, so
:func:`empty` keeps the large arrays it hands out and hands one out again once nothing but the
cache refers to it any more (its reference count says so: a gradient dropped by ``zero_grad``, an
activation freed with its graph).

The cache is per thread (an array is only ever handed out by the thread that made it), holds
arrays of at least 1 MiB, at most ``_PER_KEY`` per shape and dtype, and at most
:func:`get_limit` bytes per thread (256 MiB by default; the ``CYGRAD_ARRAY_CACHE_MB`` environment
variable or :func:`set_limit` change it, 0 turns the cache off). When full, it forgets the
shapes used least recently. Contents of a reused array are undefined, as with ``np.empty``.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections import OrderedDict

import numpy as np

_MIN_BYTES = 1 << 20
_PER_KEY = 4


def _env_limit():
    raw = os.environ.get("CYGRAD_ARRAY_CACHE_MB", "")
    try:
        return max(0, int(raw)) << 20 if raw.strip() else 256 << 20
    except ValueError:
        return 256 << 20


_limit = _env_limit()


def _free_count():
    """sys.getrefcount of a list item that nothing else refers to (2 on CPython 3.11)."""
    probe = [object()]
    return sys.getrefcount(probe[0])


_FREE = _free_count()


class _Cache(threading.local):
    def __init__(self):
        self.arrays = OrderedDict()   # (shape, dtype) -> [arrays], least recently used first
        self.nbytes = 0


_cache = _Cache()


def get_limit():
    """Bytes the array cache may hold per thread (0: off)."""
    return _limit


def set_limit(nbytes):
    """Set the bytes the array cache may hold per thread (0 turns it off and empties it).

    Examples
    --------
    >>> from cygrad import _alloc
    >>> old = _alloc.get_limit()
    >>> _alloc.set_limit(0)
    >>> _alloc.set_limit(old)
    """
    global _limit
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError(f"set_limit: nbytes must be >= 0, got {nbytes}")
    _limit = nbytes
    _shrink(_cache, 0)


def clear():
    """Forget every cached array of this thread (arrays still in use stay valid)."""
    _cache.arrays.clear()
    _cache.nbytes = 0


def _shrink(c, need):
    """Forget the least recently used shapes until ``need`` more bytes fit under the limit."""
    while c.arrays and c.nbytes + need > _limit:
        _, lst = c.arrays.popitem(last=False)
        c.nbytes -= sum(a.nbytes for a in lst)


def empty(shape, dtype):
    """An uninitialised C-contiguous array, reused from the cache when one of this shape is free.

    Examples
    --------
    >>> import numpy as np
    >>> from cygrad import _alloc
    >>> a = _alloc.empty((512, 1024), np.float32)
    >>> a.shape, a.dtype, a.flags.c_contiguous
    ((512, 1024), dtype('float32'), True)
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _MIN_BYTES or nbytes > _limit:
        return np.empty(shape, dtype)
    c = _cache
    key = (shape, dtype)
    lst = c.arrays.get(key)
    if lst is not None:
        c.arrays.move_to_end(key)
        for i in range(len(lst)):
            if sys.getrefcount(lst[i]) <= _FREE:     # only the cache refers to it
                return lst[i]
        if len(lst) >= _PER_KEY:
            return np.empty(shape, dtype)
    _shrink(c, nbytes)
    a = np.empty(shape, dtype)
    lst = c.arrays.get(key)
    if lst is None:
        lst = c.arrays[key] = []
    lst.append(a)
    c.nbytes += nbytes
    return a


def cache_refs(a):
    """The references this thread's cache holds to the array ``a`` (0 or 1); lets the autograd
    engine's reference count test (adopting a gradient without a copy) discount the cache."""
    lst = _cache.arrays.get((a.shape, a.dtype))
    if lst:
        for x in lst:
            if x is a:
                return 1
    return 0


def contiguous(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``: ``a`` itself when it is one, else a copy into
    :func:`empty` (broadcast gradients such as the one of ``sum`` are the common case)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype and a.flags.c_contiguous:
        return a
    out = empty(a.shape, dtype)
    np.copyto(out, a, casting="unsafe")
    return out
