"""nn.utils: clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters."""
import math

import numpy as np
import pytest

import cygrad
from cygrad.nn.utils import (clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters,
                             get_total_norm)


def _params(T, dtype=np.float64, scale=1.0, seed=0):
    r = np.random.default_rng(seed)
    ps = []
    for shape in [(3, 4), (5,), (2, 2, 2)]:
        p = T.tensor(r.standard_normal(shape).astype(dtype), requires_grad=True)
        p.grad = T.tensor((r.standard_normal(shape) * scale).astype(dtype))
        ps.append(p)
    return ps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(torch, dtype, norm_type, max_norm):
    ours, ref = _params(cygrad, dtype), _params(torch, dtype)
    tc = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    tt = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert tc.shape == () and tc.numpy().dtype == tt.numpy().dtype
    np.testing.assert_allclose(tc.numpy(), tt.numpy(), **tol)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)


def test_clip_grad_norm_semantics():
    w = cygrad.ones(4, requires_grad=True)
    (3 * w).sum().backward()
    total = clip_grad_norm_(w, max_norm=1.0)  # a single tensor is accepted
    assert float(total) == pytest.approx(6.0)
    np.testing.assert_allclose(w.grad.numpy(), 3 * np.ones(4) / (6.0 + 1e-6))
    # already below max_norm: unchanged
    v = cygrad.ones(2, requires_grad=True)
    v.grad = cygrad.tensor([0.1, 0.1])
    clip_grad_norm_((p for p in [v]), 10.0)
    np.testing.assert_array_equal(v.grad.numpy(), np.float32([0.1, 0.1]))
    # no gradients: a zero norm
    assert float(clip_grad_norm_([cygrad.zeros(2, requires_grad=True)], 1.0)) == 0.0
    assert float(get_total_norm([cygrad.tensor([3.0]), cygrad.tensor([4.0])])) == 5.0


def test_clip_grad_norm_nonfinite(torch):
    for T in (cygrad, torch):
        ps = _params(T)
        ps[1].grad[0] = float("nan")
        with pytest.raises(RuntimeError, match="non-finite"):
            T.nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    ps = _params(cygrad)
    ps[0].grad[0, 0] = float("inf")
    total = clip_grad_norm_(ps, 1.0)
    assert math.isinf(float(total))


@pytest.mark.parametrize("clip", [0.3, 1.0])
def test_clip_grad_value_matches_torch(torch, clip):
    ours, ref = _params(cygrad, scale=2.0), _params(torch, scale=2.0)
    assert clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(ref, clip)
    for a, b in zip(ours, ref):
        assert np.abs(a.grad.numpy()).max() <= clip
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_parameters_vector_roundtrip(torch):
    ours, ref = _params(cygrad), _params(torch)
    vc, vt = parameters_to_vector(ours), torch.nn.utils.parameters_to_vector(ref)
    assert vc.shape == (12 + 5 + 8,)
    np.testing.assert_array_equal(vc.detach().numpy(), vt.detach().numpy())
    # differentiable
    for p in ours:
        p.grad = None
    (vc * cygrad.arange(25, dtype=cygrad.float64)).sum().backward()
    np.testing.assert_array_equal(ours[0].grad.numpy(), np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(ours[2].grad.numpy(), np.arange(17.0, 25).reshape(2, 2, 2))
    new = cygrad.arange(25, dtype=cygrad.float64)
    vector_to_parameters(new, ours)
    np.testing.assert_array_equal(ours[1].detach().numpy(), np.arange(12, 17))
    assert ours[2].shape == (2, 2, 2) and ours[2].requires_grad
    np.testing.assert_array_equal(parameters_to_vector(ours).detach().numpy(), np.arange(25))
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        vector_to_parameters(np.arange(3.0), ours)
