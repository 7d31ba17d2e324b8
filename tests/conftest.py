"""Shared helpers for the op tests: torch oracle comparison, gradcheck wrappers, tolerances.

Op tests are written once against a module ``T`` that is either ``cygrad`` or ``torch``
(cygrad mirrors torch's API, including ``T.nn.functional``), e.g.
``compare(torch, lambda T, x, y: T.maximum(x, y), [a, b])``.
"""
import numpy as np
import pytest

import cygrad

# Per-dtype tolerances for cygrad vs torch (both compute in the same precision).
TOL = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}
FLOAT_DTYPES = [np.float32, np.float64]


@pytest.fixture
def torch():
    """The torch module (test oracle only); the test is skipped when torch is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture
def restore_threads():
    n = cygrad.get_num_threads()
    yield
    cygrad.set_num_threads(n)


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, dtype=np.float64, seed=0):
    return rng(seed).standard_normal(shape).astype(dtype)


def _is_float(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _make(T, a, requires_grad):
    if isinstance(a, np.ndarray):
        t = T.tensor(a.copy())
        if requires_grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        return t
    return a


def _flat_outputs(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flat_outputs(o))
        return res
    return [out]


def to_np(t):
    if hasattr(t, "detach"):
        return t.detach().numpy()
    return np.asarray(t)


def assert_close(actual, expected, dtype=None, rtol=None, atol=None, check_dtype=True):
    """Compare a cygrad tensor/array with a torch tensor/array (values, shape and dtype)."""
    a, e = to_np(actual), to_np(expected)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    if check_dtype:
        assert a.dtype == e.dtype, f"dtype {a.dtype} != expected {e.dtype}"
    if a.dtype.kind in "biu":
        np.testing.assert_array_equal(a, e)
        return
    tol = dict(TOL[np.dtype(dtype if dtype is not None else e.dtype)]) if e.dtype.kind == "f" else \
        dict(rtol=0, atol=0)
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    np.testing.assert_allclose(a, e, equal_nan=True, **tol)


def compare(torch, fn, inputs, *, grad=True, seed=1, rtol=None, atol=None, tfn=None, grad_inputs=None):
    """Run ``fn(T, *inputs)`` with T=cygrad and T=torch; compare outputs and input gradients.

    ``inputs``: numpy arrays (float ones require grad when ``grad``) or plain Python values.
    ``grad_inputs``: indices of the inputs that should require grad (default: all float ones).
    The same random grad_output is used for every floating output. Returns the cygrad outputs.
    """
    tfn = tfn or fn
    want = [grad and _is_float(a) and (grad_inputs is None or i in grad_inputs) for i, a in enumerate(inputs)]
    cin = [_make(cygrad, a, w) for a, w in zip(inputs, want)]
    tin = [_make(torch, a, w) for a, w in zip(inputs, want)]
    cout = _flat_outputs(fn(cygrad, *cin))
    tout = _flat_outputs(tfn(torch, *tin))
    assert len(cout) == len(tout)
    for c, t in zip(cout, tout):
        if isinstance(t, torch.Tensor):
            assert isinstance(c, cygrad.Tensor), f"expected a Tensor, got {type(c)}"
            assert tuple(c.shape) == tuple(t.shape)
            assert str(c.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
            assert_close(c, t, rtol=rtol, atol=atol)
        else:
            assert c == t
    if not any(want):
        return cout
    r = rng(seed)
    cdiff, tdiff, cg, tg = [], [], [], []
    for c, t in zip(cout, tout):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            assert c.requires_grad, "cygrad output does not require grad but torch's does"
            go = r.standard_normal(tuple(t.shape)).astype(to_np(t).dtype)
            cdiff.append(c)
            tdiff.append(t)
            cg.append(cygrad.tensor(go))
            tg.append(torch.tensor(go))
        elif isinstance(c, cygrad.Tensor):
            assert not c.requires_grad or not c.is_floating_point()
    if not tdiff:
        return cout
    torch.autograd.backward(tdiff, tg)
    cygrad.autograd.backward(cdiff, cg)
    for i, (c, t, w) in enumerate(zip(cin, tin, want)):
        if not w:
            continue
        if t.grad is None:
            assert c.grad is None or not np.any(to_np(c.grad)), f"input {i}: unexpected gradient"
            continue
        assert c.grad is not None, f"input {i}: no gradient"
        assert_close(c.grad, t.grad, rtol=rtol, atol=atol)
    return cout


def _cg_inputs(inputs, grad_inputs=None):
    res = []
    for i, a in enumerate(inputs):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            res.append(cygrad.tensor(a.astype(np.float64),
                                     requires_grad=grad_inputs is None or i in grad_inputs))
        elif isinstance(a, np.ndarray):
            res.append(cygrad.tensor(a))
        else:
            res.append(a)
    return res


def _wrap(fn, inputs):
    """gradcheck passes only tensors; plain values stay bound in the closure."""
    idx = [i for i, a in enumerate(inputs) if isinstance(a, cygrad.Tensor)]

    def f(*ts):
        args = list(inputs)
        for i, t in zip(idx, ts):
            args[i] = t
        out = fn(cygrad, *args)
        outs = [o for o in _flat_outputs(out) if isinstance(o, cygrad.Tensor) and o.is_floating_point()]
        return outs[0] if len(outs) == 1 else tuple(outs)
    return f, tuple(inputs[i] for i in idx)


def gradcheck(fn, inputs, grad_inputs=None, **kw):
    """float64 cygrad.autograd.gradcheck of ``fn(cygrad, *inputs)``."""
    f, ts = _wrap(fn, _cg_inputs(inputs, grad_inputs))
    assert cygrad.autograd.gradcheck(f, ts, **kw)


def gradgradcheck(fn, inputs, grad_inputs=None, **kw):
    """float64 cygrad.autograd.gradgradcheck of ``fn(cygrad, *inputs)``."""
    f, ts = _wrap(fn, _cg_inputs(inputs, grad_inputs))
    assert cygrad.autograd.gradgradcheck(f, ts, **kw)
