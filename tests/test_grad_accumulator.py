"""cygrad.optim.GradAccumulator: gradient accumulation over micro-batches."""
import numpy as np
import pytest

import cygrad
from cygrad.optim import GradAccumulator


def _data(n=24, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 5))
    Y = X @ r.standard_normal((5, 3)) + 0.1 * r.standard_normal((n, 3))
    return X, Y


def _model(seed=1):
    r = np.random.default_rng(seed)
    W = cygrad.tensor(r.standard_normal((5, 3)), requires_grad=True)
    b = cygrad.tensor(r.standard_normal(3), requires_grad=True)
    return W, b


def _mse(W, b, X, Y):
    return ((cygrad.tensor(X) @ W + b - cygrad.tensor(Y)) ** 2).mean()


@pytest.mark.parametrize("opt_name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                         ("RMSprop", dict(lr=0.01))])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_micro_batches_reproduce_full_batch(opt_name, kw, clip):
    X, Y = _data()
    n_micro, b = 4, 6
    Wa, ba = _model()
    Wf, bf = _model()
    opt_a = getattr(cygrad.optim, opt_name)([Wa, ba], **kw)
    opt_f = getattr(cygrad.optim, opt_name)([Wf, bf], **kw)
    acc = GradAccumulator(opt_a, n_micro, max_grad_norm=clip)
    for update in range(3):
        Xe, Ye = _data(seed=10 + update)
        for i in range(n_micro):
            _mse(Wa, ba, Xe[i * b:(i + 1) * b], Ye[i * b:(i + 1) * b]).backward()
            applied = acc.step()
            assert applied == (i == n_micro - 1)
            assert acc.current_step == (i + 1) % n_micro
        opt_f.zero_grad()
        _mse(Wf, bf, Xe, Ye).backward()
        if clip is not None:
            cygrad.nn.utils.clip_grad_norm_([Wf, bf], clip)
        opt_f.step()
        np.testing.assert_allclose(Wa.detach().numpy(), Wf.detach().numpy(), rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(ba.detach().numpy(), bf.detach().numpy(), rtol=1e-6, atol=1e-10)
        assert Wa.grad is None and ba.grad is None  # zero_grad after the update
    st = acc.stats()
    assert st == {"micro_batches": 12, "updates": 3, "skipped_updates": 0, "accumulation_steps": 4,
                  "current_step": 0, "num_parameters": 2, "num_elements": 18}


def test_normalize_false_sums_gradients():
    W, b = _model()
    W0 = W.detach().numpy().copy()
    acc = GradAccumulator(cygrad.optim.SGD([W, b], lr=1.0), 3, normalize=False)
    for _ in range(3):
        (W.sum() * 2).backward()
        acc.step()
    np.testing.assert_allclose(W.detach().numpy(), W0 - 6.0)


def test_flush_partial_window_and_reset():
    X, Y = _data()
    W, b = _model()
    Wf, bf = _model()
    opt = cygrad.optim.SGD([W, b], lr=0.1)
    acc = GradAccumulator(opt, 5)
    assert acc.flush() is False and acc.stats()["updates"] == 0  # empty window: no-op
    for i in range(2):
        _mse(W, b, X[i * 6:(i + 1) * 6], Y[i * 6:(i + 1) * 6]).backward()
        assert acc.step() is False
    assert acc.current_step == 2
    assert acc.flush() is True and acc.current_step == 0
    opt_f = cygrad.optim.SGD([Wf, bf], lr=0.1)
    _mse(Wf, bf, X[:12], Y[:12]).backward()
    opt_f.step()
    np.testing.assert_allclose(W.detach().numpy(), Wf.detach().numpy(), rtol=1e-6, atol=1e-12)
    # reset discards the window
    _mse(W, b, X, Y).backward()
    acc.step()
    W1 = W.detach().numpy().copy()
    acc.reset()
    assert acc.current_step == 0 and W.grad is None
    assert acc.flush() is False
    np.testing.assert_array_equal(W.detach().numpy(), W1)


def test_nonfinite_raise_names_parameter_and_leaves_params_untouched():
    W, b = _model()
    opt = cygrad.optim.Adam([W, b], lr=0.1)
    acc = GradAccumulator(opt, 2)
    W0, b0 = W.detach().numpy().copy(), b.detach().numpy().copy()
    (W.sum() + b.sum()).backward()
    acc.step()
    b.sum().backward()
    b.grad[1] = float("nan")
    with pytest.raises(FloatingPointError, match=r"param_groups\[0\]\['params'\]\[1\]"):
        acc.step()
    np.testing.assert_array_equal(W.detach().numpy(), W0)
    np.testing.assert_array_equal(b.detach().numpy(), b0)
    assert len(opt.state) == 0 and W.grad is not None and acc.stats()["updates"] == 0
    acc.reset()
    assert W.grad is None and acc.current_step == 0
    # named parameters are reported by name
    W2, b2 = _model()
    acc2 = GradAccumulator(cygrad.optim.SGD([("layer.weight", W2), ("layer.bias", b2)], lr=0.1), 1)
    W2.sum().backward()
    W2.grad[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="layer.weight"):
        acc2.step()


def test_nonfinite_skip():
    W, b = _model()
    opt = cygrad.optim.SGD([W, b], lr=0.1)
    acc = GradAccumulator(opt, 2, nonfinite="skip")
    W0 = W.detach().numpy().copy()
    W.sum().backward()
    W.grad[0, 0] = float("inf")
    acc.step()
    assert acc.step() is False
    np.testing.assert_array_equal(W.detach().numpy(), W0)
    assert W.grad is None and acc.current_step == 0
    st = acc.stats()
    assert st["skipped_updates"] == 1 and st["updates"] == 0 and st["micro_batches"] == 2
    # the next window updates normally
    W.sum().backward(); acc.step()
    W.sum().backward()
    assert acc.step() is True
    np.testing.assert_allclose(W.detach().numpy(), W0 - 0.1)


def test_properties_and_errors():
    W, b = _model()
    opt = cygrad.optim.SGD([W, b], lr=0.1)
    acc = GradAccumulator(opt, 8)
    assert acc.accumulation_steps == 8 and acc.current_step == 0
    assert acc.effective_batch_size(32) == 256
    assert "accumulation_steps=8" in repr(acc)
    with pytest.raises(ValueError, match="accumulation_steps must be >= 1"):
        GradAccumulator(opt, 0)
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        GradAccumulator(opt, 2, nonfinite="ignore")
    with pytest.raises(ValueError, match="max_grad_norm"):
        GradAccumulator(opt, 2, max_grad_norm=0.0)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        GradAccumulator(object(), 2)
    # accumulation_steps=1 updates after every micro-batch
    acc1 = GradAccumulator(opt, 1)
    W.sum().backward()
    assert acc1.step() is True


def test_clipping_records_norm():
    W, b = _model()
    acc = GradAccumulator(cygrad.optim.SGD([W, b], lr=0.1), 2, max_grad_norm=1e-3)
    for _ in range(2):
        (W.sum() * 10).backward()
        acc.step()
    # normalized grad is 10 everywhere on 15 elements: norm = 10 * sqrt(15)
    assert float(acc.last_grad_norm) == pytest.approx(10 * np.sqrt(15))
