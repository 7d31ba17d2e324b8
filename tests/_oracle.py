"""Helpers for tests that run the same snippet on cygrad and on torch (the test oracle)."""
import numpy as np
import pytest

import cygrad


def _np(t):
    if t is None:
        return None
    return np.asarray(t.detach().numpy()) if hasattr(t, "detach") else np.asarray(t)


def assert_same(a, b, rtol=1e-6, atol=1e-6):
    """``a`` (cygrad) and ``b`` (torch): nested results with equal values, shapes and dtypes."""
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            assert_same(x, y, rtol, atol)
        return
    if a is None or b is None:
        assert a is None and b is None, (a, b)
        return
    if isinstance(a, (bool, int, float, str)):
        assert a == b, (a, b)
        return
    an, bn = _np(a), _np(b)
    assert an.shape == bn.shape, (an.shape, bn.shape)
    assert an.dtype == bn.dtype, (an.dtype, bn.dtype)
    np.testing.assert_allclose(an, bn, rtol=rtol, atol=atol)


def compare(fn, **kw):
    """Run ``fn(lib)`` with cygrad and torch and compare the results."""
    import torch
    assert_same(fn(cygrad), fn(torch), **kw)


def raises_like(fn, exc=RuntimeError, match=None):
    """``fn(lib)`` raises ``exc`` (matching ``match``) in both cygrad and torch."""
    import torch
    for lib in (cygrad, torch):
        with pytest.raises(exc, match=match):
            fn(lib)
