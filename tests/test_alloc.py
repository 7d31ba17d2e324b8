"""The array cache (cygrad._alloc): reuse only of arrays nothing else refers to, limits, threads, and
its interplay with the autograd engine (gradients adopted without a copy, never overwritten)."""

import threading

import numpy as np
import pytest

import cygrad
from cygrad import _alloc

BIG = (512, 1024)          # 2 MiB of float32: cached
SMALL = (16, 16)           # below 1 MiB: never cached


@pytest.fixture(autouse=True)
def fresh_cache():
    old = _alloc.get_limit()
    _alloc.set_limit(256 << 20)
    _alloc.clear()
    yield
    _alloc.clear()
    _alloc.set_limit(old)


def test_reuses_a_free_array():
    a = _alloc.empty(BIG, np.float32)
    assert a.shape == BIG and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    ident = id(a)
    del a
    b = _alloc.empty(BIG, np.float32)
    assert id(b) == ident                      # the very same array object came back
    assert _alloc.cache_refs(b) == 1


def test_never_hands_out_an_array_in_use():
    a = _alloc.empty(BIG, np.float32)
    a[...] = 7.0
    b = _alloc.empty(BIG, np.float32)
    assert b is not a and not np.shares_memory(a, b)
    b[...] = 0.0
    assert (a == 7.0).all()
    view = a[1:]                               # a view keeps its base referenced
    del a
    c = _alloc.empty(BIG, np.float32)
    assert not np.shares_memory(c, view)
    c[...] = -1.0
    assert (view == 7.0).all()


def test_shape_and_dtype_are_the_key():
    a = _alloc.empty(BIG, np.float32)
    del a
    b = _alloc.empty(BIG, np.float64)
    c = _alloc.empty((1024, 512), np.float32)
    assert b.dtype == np.float64 and c.shape == (1024, 512)
    assert _alloc.cache_refs(b) == 1 and _alloc.cache_refs(c) == 1


def test_small_arrays_and_limit_zero_are_not_cached():
    s = _alloc.empty(SMALL, np.float32)
    assert _alloc.cache_refs(s) == 0
    _alloc.set_limit(0)
    a = _alloc.empty(BIG, np.float32)
    assert _alloc.cache_refs(a) == 0 and _alloc._cache.nbytes == 0


def test_limit_forgets_least_recently_used_shapes():
    mib = 1 << 20
    _alloc.set_limit(5 * mib)
    a = _alloc.empty((mib // 2,), np.float32)        # 2 MiB
    b = _alloc.empty((mib // 2 + 16,), np.float32)   # 2 MiB + 64 bytes
    assert _alloc._cache.nbytes <= 5 * mib
    c = _alloc.empty((mib // 2 + 32,), np.float32)   # does not fit with a and b: a's shape goes
    assert _alloc._cache.nbytes <= 5 * mib
    assert _alloc.cache_refs(a) == 0 and _alloc.cache_refs(b) == 1 and _alloc.cache_refs(c) == 1
    a[...] = 1.0                                     # forgotten arrays stay valid
    assert (a == 1.0).all()
    with pytest.raises(ValueError, match="nbytes must be >= 0"):
        _alloc.set_limit(-1)


def test_per_shape_count_is_bounded():
    held = [_alloc.empty(BIG, np.float32) for _ in range(_alloc._PER_KEY + 2)]
    assert sum(_alloc.cache_refs(a) for a in held) == _alloc._PER_KEY
    assert len({id(a) for a in held}) == len(held)


def test_caches_are_per_thread():
    a = _alloc.empty(BIG, np.float32)
    ident = id(a)
    del a
    got = {}

    def other():
        b = _alloc.empty(BIG, np.float32)
        got["id"] = id(b)
        got["refs"] = _alloc.cache_refs(b)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert got["id"] != ident and got["refs"] == 1


def test_contiguous_copies_only_when_needed():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert _alloc.contiguous(x, np.float32) is x
    y = _alloc.contiguous(x.T, np.float32)
    assert y.flags.c_contiguous and (y == x.T).all()
    z = _alloc.contiguous(np.broadcast_to(np.float64(2.0), (4, 5)), np.float32)
    assert z.dtype == np.float32 and (z == 2.0).all()


def test_gradients_adopted_and_never_overwritten():
    """A cached output adopted as .grad stays intact through later steps that reuse the cache."""
    cygrad.manual_seed(0)
    b, d, L, n = 2, 512, 512, 16                     # (b, d, L) float32 = 2 MiB: cached
    u = cygrad.randn(b, d, L, requires_grad=True)
    delta = (0.5 * cygrad.randn(b, d, L)).requires_grad_()
    A = (-cygrad.rand(d, n) - 0.5).requires_grad_()
    B = cygrad.randn(b, n, L)
    C = cygrad.randn(b, n, L)

    def step(scale):
        u.grad = delta.grad = None
        out = cygrad.nn.functional.selective_scan(u, delta, A, B, C, delta_softplus=True)
        (out * scale).sum().backward()
        return u.grad, delta.grad

    g1u, g1d = step(1.0)
    assert _alloc.cache_refs(g1u._data) == 1          # adopted without a copy
    keep_u, keep_d = g1u.numpy().copy(), g1d.numpy().copy()
    g2u, g2d = step(2.0)                               # g1u / g1d still referenced here
    assert not np.shares_memory(g2u._data, g1u._data) and not np.shares_memory(g2d._data, g1d._data)
    np.testing.assert_array_equal(g1u.numpy(), keep_u)
    np.testing.assert_array_equal(g1d.numpy(), keep_d)
    np.testing.assert_allclose(g2u.numpy(), 2 * keep_u, rtol=1e-6, atol=1e-6)
    del g1u, g1d, g2u, g2d
    g3u, _ = step(1.0)                                 # arrays free again: reused, same values
    np.testing.assert_allclose(g3u.numpy(), keep_u, rtol=1e-6, atol=1e-6)
