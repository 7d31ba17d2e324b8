"""cygrad.utils.checkpoint: gradients equal to unchecked runs, memory saved, and torch as oracle."""
import warnings
from collections import namedtuple

import numpy as np
import pytest

import cygrad
from cygrad import nn
from cygrad.utils.checkpoint import checkpoint, checkpoint_sequential, saved_activation_bytes

F64 = cygrad.float64


def mlp(n_blocks=3, width=8, dropout=0.0, dtype=F64, seed=0):
    cygrad.manual_seed(seed)
    layers = []
    for _ in range(n_blocks):
        layers += [nn.Linear(width, width), nn.GELU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers).to(dtype)


def grads(loss, tensors):
    return [None if g is None else g.clone() for g in cygrad.autograd.grad(loss, tensors, allow_unused=True)]


def assert_same(a, b, exact=True):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is None and v is None
        elif exact:
            np.testing.assert_array_equal(u.detach().numpy(), v.detach().numpy())
        else:
            np.testing.assert_allclose(u.detach().numpy(), v.detach().numpy(), rtol=1e-12, atol=1e-14)


def per_block(model, x, n_per=2, **kw):
    h = x
    for i in range(0, len(model), n_per):
        h = checkpoint(model[i:i + n_per], h, **kw)
    return h


# ---- gradients equal the unchecked run -------------------------------------------------------------
@pytest.mark.parametrize("use_reentrant", [None, False, True])
def test_backward_matches_unchecked(use_reentrant):
    model = mlp()
    x = cygrad.randn(5, 8, dtype=F64, requires_grad=True)
    model(x).pow(2).sum().backward()
    ref = [x.grad.clone()] + [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x.grad = None
    out = per_block(model, x, use_reentrant=use_reentrant)
    assert out.grad_fn.name() == "CheckpointFunctionBackward"
    out.pow(2).sum().backward()
    assert_same(ref, [x.grad] + [p.grad for p in model.parameters()])


def test_whole_model_one_checkpoint():
    model = mlp()
    x = cygrad.randn(5, 8, dtype=F64, requires_grad=True)
    params = [x] + list(model.parameters())
    ref = grads(model(x).sum(), params)
    assert_same(ref, grads(checkpoint(model, x, use_reentrant=False).sum(), params))


def test_autograd_grad_inputs_and_parameters_without_touching_dot_grad():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    w = model[2].weight
    ref = grads(model(x).tanh().sum(), [x, w])
    got = grads(per_block(model, x, use_reentrant=False).tanh().sum(), [x, w])
    assert_same(ref, got)
    assert x.grad is None and all(p.grad is None for p in model.parameters())


def test_backward_with_inputs_argument():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    w = model[0].weight
    ref = grads(model(x).sum(), [w])
    per_block(model, x, use_reentrant=False).sum().backward(inputs=[w])
    assert_same(ref, [w.grad])
    assert x.grad is None and model[2].weight.grad is None


def test_gradcheck_and_gradgradcheck():
    cygrad.manual_seed(1)
    w = cygrad.randn(3, 3, dtype=F64, requires_grad=True)

    def f(x, v):
        return checkpoint(lambda t, u: (t @ u).tanh() * t + (t @ w).sin(), x, v, use_reentrant=False)

    x = cygrad.randn(2, 3, dtype=F64, requires_grad=True)
    v = cygrad.randn(3, 3, dtype=F64, requires_grad=True)
    assert cygrad.autograd.gradcheck(f, (x, v))
    assert cygrad.autograd.gradgradcheck(f, (x, v))
    assert cygrad.autograd.gradcheck(lambda x: f(x, v), (x,))  # w and v captured/const


def test_create_graph_second_derivative_matches():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)).to(F64)
    x = cygrad.randn(4, 3, dtype=F64, requires_grad=True)

    def second(run):
        g, = cygrad.autograd.grad(run(x).sum(), x, create_graph=True)
        return grads(g.pow(2).sum(), [x, model[0].weight])

    assert_same(second(model), second(lambda t: checkpoint(model, t, use_reentrant=False)), exact=False)


# ---- randomness --------------------------------------------------------------------------------------
def test_dropout_mask_replayed_with_preserve_rng_state():
    model = mlp(dropout=0.5)
    x = cygrad.randn(6, 8, dtype=F64, requires_grad=True)
    params = [x] + list(model.parameters())
    cygrad.manual_seed(123)
    ref_out = model(x)
    ref = grads(ref_out.sum(), params)
    cygrad.manual_seed(123)
    out = per_block(model, x, n_per=3, use_reentrant=False)
    np.testing.assert_array_equal(out.detach().numpy(), ref_out.detach().numpy())
    after_forward = cygrad.get_rng_state()
    cygrad.rand(7)  # the generator moves on between forward and backward
    got = grads(out.sum(), params)
    assert_same(ref, got)
    # the recomputation leaves the generator where it was
    cygrad.set_rng_state(after_forward)
    expect = cygrad.rand(7)
    cygrad.manual_seed(123)
    out = per_block(model, x, n_per=3, use_reentrant=False)
    cygrad.autograd.grad(out.sum(), x)
    assert bool((cygrad.rand(7) == expect).all())


def test_dropout_without_preserve_rng_state_differs():
    model = mlp(dropout=0.5)
    x = cygrad.randn(6, 8, dtype=F64, requires_grad=True)
    cygrad.manual_seed(7)
    ref, = grads(model(x).sum(), [x])
    cygrad.manual_seed(7)
    got, = grads(checkpoint(model, x, use_reentrant=False, preserve_rng_state=False).sum(), [x])
    assert not np.array_equal(ref.numpy(), got.numpy())


# ---- arguments and outputs ---------------------------------------------------------------------------
def test_tuple_outputs_non_tensor_args_and_kwargs():
    a = cygrad.randn(3, dtype=F64, requires_grad=True)
    b = cygrad.randn(3, dtype=F64)  # does not require grad

    def f(x, y, tag, *, scale=1.0):
        return x * y * scale, tag, (x + y).sin(), cygrad.tensor([1, 2])

    p, tag, s, ints = checkpoint(f, a, b, "label", scale=2.0, use_reentrant=False)
    assert tag == "label"
    assert not ints.requires_grad and ints.dtype == cygrad.int64
    assert p.requires_grad and s.requires_grad
    loss = (p * s).sum()
    ga, = grads(loss, [a])
    a2 = a.detach().requires_grad_()
    p2, _, s2, _ = f(a2, b, "label", scale=2.0)
    ref, = grads((p2 * s2).sum(), [a2])
    assert_same([ref], [ga])


def test_only_some_outputs_used():
    a = cygrad.randn(3, dtype=F64, requires_grad=True)
    u, v = checkpoint(lambda x: (x.exp(), x.sin()), a, use_reentrant=False)
    g, = grads(v.sum(), [a])
    np.testing.assert_allclose(g.numpy(), np.cos(a.detach().numpy()))


def test_dict_and_namedtuple_outputs():
    Pair = namedtuple("Pair", "first second")
    a = cygrad.randn(3, dtype=F64, requires_grad=True)
    out = checkpoint(lambda x: {"p": Pair(x * 2, [x.cos(), 5])}, a, use_reentrant=False)
    assert isinstance(out["p"], Pair) and out["p"].second[1] == 5
    g, = grads(out["p"].first.sum() + out["p"].second[0].sum(), [a])
    np.testing.assert_allclose(g.numpy(), 2 - np.sin(a.detach().numpy()))


def test_inputs_without_grad_parameters_still_get_gradients():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64)
    ref = grads(model(x).sum(), list(model.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = checkpoint(model, x, use_reentrant=False)
    assert out.requires_grad
    assert_same(ref, grads(out.sum(), list(model.parameters())))


def test_reentrant_without_grad_inputs_warns_like_torch():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True. Gradients will be None"):
        out = checkpoint(model, x, use_reentrant=True)
    assert not out.requires_grad


def test_nothing_requires_grad():
    x = cygrad.randn(3, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = checkpoint(lambda t: t * 2, x, use_reentrant=False)
    assert not out.requires_grad and out.grad_fn is None


def test_under_no_grad_just_runs():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    with cygrad.no_grad():
        out = checkpoint(model, x, use_reentrant=False)
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), model(x).detach().numpy())


def test_function_returning_its_input_or_a_parameter():
    w = cygrad.randn(3, dtype=F64, requires_grad=True)
    x = cygrad.randn(3, dtype=F64, requires_grad=True)
    a, b = checkpoint(lambda t: (t, w), x, use_reentrant=False)
    gx, gw = grads((a * 3).sum() + (b * 5).sum(), [x, w])
    np.testing.assert_array_equal(gx.numpy(), np.full(3, 3.0))
    np.testing.assert_array_equal(gw.numpy(), np.full(3, 5.0))


def test_argument_validation():
    x = cygrad.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: scale"):
        checkpoint(lambda t, scale: t * scale, x, scale=2.0, use_reentrant=True)
    with pytest.raises(ValueError, match="context_fn"):
        checkpoint(lambda t: t, x, use_reentrant=True, context_fn=lambda: (None, None))
    with pytest.raises(ValueError, match="determinism_check"):
        checkpoint(lambda t: t, x, use_reentrant=False, determinism_check="always")
    with pytest.raises(TypeError, match="callable"):
        checkpoint(3, x, use_reentrant=False)


def test_context_fn_wraps_forward_and_recompute():
    calls = []

    class Ctx:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            calls.append(self.name)

        def __exit__(self, *exc):
            return False

    x = cygrad.randn(3, dtype=F64, requires_grad=True)
    out = checkpoint(lambda t: t.sin(), x, use_reentrant=False, context_fn=lambda: (Ctx("fwd"), Ctx("re")))
    assert calls == ["fwd"]
    out.sum().backward()
    assert calls == ["fwd", "re"]


def test_recomputation_must_match():
    state = {"n": 3}

    def f(t):
        state["n"] += 1
        return t[:state["n"] % 2 + 1] * 2

    x = cygrad.randn(4, dtype=F64, requires_grad=True)
    out = checkpoint(f, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match="recomputing the checkpointed function"):
        out.sum().backward()


# ---- graph behaviour ---------------------------------------------------------------------------------
def test_nested_checkpoint():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    params = [x] + list(model.parameters())
    ref = grads(model(model(x)).sum(), params)
    got = grads(checkpoint(lambda t: checkpoint(model, model(t), use_reentrant=False), x,
                           use_reentrant=False).sum(), params)
    assert_same(ref, got)
    got = grads(checkpoint(lambda t: model(checkpoint(lambda u: checkpoint(model, u, use_reentrant=False), t,
                                                      use_reentrant=False)), x, use_reentrant=False).sum(), params)
    assert_same(ref, got)


def test_captured_non_leaf_tensor_used_inside_and_outside():
    p = cygrad.randn(3, dtype=F64, requires_grad=True)
    q = cygrad.randn(3, dtype=F64, requires_grad=True)

    def run(ck):
        h = p * 2  # computed before the checkpoint, captured by the closure
        body = lambda t: (t * h).sin() + p  # noqa: E731
        out = checkpoint(body, q, use_reentrant=False) if ck else body(q)
        return (out.sum() + (h ** 2).sum())

    ref = grads(run(False), [p, q])
    assert_same(ref, grads(run(True), [p, q]), exact=False)
    loss = run(True)
    loss.backward()
    assert_same(ref, [p.grad, q.grad], exact=False)


def test_retain_graph_and_freed_graph():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    loss = checkpoint(model, x, use_reentrant=False).sum()
    loss.backward(retain_graph=True)
    first = model[0].weight.grad.clone()
    loss.backward()
    np.testing.assert_allclose(model[0].weight.grad.numpy(), 2 * first.numpy())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_parameter_hooks_run_once():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    w = model[0].weight
    ref, = grads(model(x).sum(), [w])
    calls = []
    h = w.register_hook(lambda g: calls.append(1) or g * 2)
    checkpoint(model, x, use_reentrant=False).sum().backward()
    h.remove()
    assert calls == [1]
    np.testing.assert_array_equal(w.grad.numpy(), 2 * ref.numpy())


def test_inplace_change_of_saved_input_is_detected():
    model = mlp()
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True) * 1
    loss = checkpoint(model, x, use_reentrant=False).sum()
    x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---- checkpoint_sequential ---------------------------------------------------------------------------
@pytest.mark.parametrize("as_list", [False, True])
def test_checkpoint_sequential_all_segment_counts(as_list):
    model = mlp(n_blocks=3)  # 6 modules
    x = cygrad.randn(4, 8, dtype=F64, requires_grad=True)
    params = [x] + list(model.parameters())
    ref = grads(model(x).sum(), params)
    fns = list(model) if as_list else model
    for segments in range(1, len(model) + 1):
        out = checkpoint_sequential(fns, segments, x, use_reentrant=False)
        assert_same(ref, grads(out.sum(), params))


def test_checkpoint_sequential_saves_memory_and_validates():
    model = mlp(n_blocks=4, width=32)
    x = cygrad.randn(16, 32, dtype=F64, requires_grad=True)
    plain = saved_activation_bytes(model(x), exclude=model.parameters())
    seg = saved_activation_bytes(checkpoint_sequential(model, 4, x, use_reentrant=False),
                                 exclude=model.parameters())
    assert seg < plain
    with pytest.raises(ValueError, match="Unexpected keyword arguments: foo"):
        checkpoint_sequential(model, 2, x, use_reentrant=False, foo=1)
    with pytest.raises(ValueError, match="segments"):
        checkpoint_sequential(model, 0, x, use_reentrant=False)


# ---- memory: what the graph keeps --------------------------------------------------------------------
ACT = 64 * 256 * 4  # one float32 activation of the 8-block MLP, in bytes


def test_saved_bytes_deep_mlp():
    model = mlp(n_blocks=8, width=256, dtype=cygrad.float32)
    params = list(model.parameters())
    x = cygrad.randn(64, 256, requires_grad=True)
    ref = grads(model(x).sum(), [x] + params)

    loss = model(x).sum()
    plain_all = saved_activation_bytes(loss)
    plain_act = saved_activation_bytes(loss, exclude=params)
    # x, then per block the Linear output (saved by GELU) and the GELU output (saved by the next
    # matmul) except the last; plus the 8 weight matrices saved by the matmuls
    assert plain_act == 16 * ACT
    assert plain_all == 16 * ACT + 8 * 256 * 256 * 4

    loss = per_block(model, x, use_reentrant=False).sum()
    ck_all = saved_activation_bytes(loss)
    assert ck_all == saved_activation_bytes(loss, exclude=params) == 8 * ACT  # the 8 block inputs
    assert ck_all / plain_act <= 0.5 and ck_all / plain_all < 0.17

    loss2 = per_block(model, x, n_per=4, use_reentrant=False).sum()  # 2-block segments
    assert saved_activation_bytes(loss2) == 4 * ACT
    assert saved_activation_bytes(loss2) / plain_act == 0.25

    assert_same(ref, grads(loss, [x] + params))
    assert saved_activation_bytes(loss) == 0  # freed by the backward pass


def test_saved_bytes_counts_each_buffer_once_and_validates():
    x = cygrad.randn(10, 10, requires_grad=True)
    y = x.sin()  # saves x
    z = (y * x) + y.cos()  # saves y and x again, y again
    assert saved_activation_bytes(z) == 2 * 400
    assert saved_activation_bytes([z, y]) == 2 * 400
    assert saved_activation_bytes(z, exclude=[x]) == 400
    assert saved_activation_bytes(x) == 0
    with pytest.raises(TypeError, match="expected Tensors"):
        saved_activation_bytes([z, 3])


# ---- torch as the oracle -----------------------------------------------------------------------------
def _torch_pair(torch, dtype, n_blocks=8, width=256):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(*[m for _ in range(n_blocks) for m in (torch.nn.Linear(width, width),
                                                                        torch.nn.GELU())]).to(dtype)
    cm = nn.Sequential(*[m for _ in range(n_blocks) for m in (nn.Linear(width, width), nn.GELU())])
    cm = cm.to(F64 if dtype == torch.float64 else cygrad.float32)
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, cm


def _torch_saved_bytes(torch, run, exclude=()):
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in packed}
    return out, sum(n for k, n in storages.items() if k not in skip)


def test_against_torch_checkpoint_grads_float64(torch):
    from torch.utils.checkpoint import checkpoint as tcheckpoint
    tm, cm = _torch_pair(torch, torch.float64, n_blocks=4, width=16)
    xn = np.random.default_rng(0).standard_normal((8, 16))
    tx = torch.tensor(xn, requires_grad=True)
    cx = cygrad.tensor(xn, requires_grad=True)
    th = tx
    for i in range(0, 8, 2):
        th = tcheckpoint(tm[i:i + 2], th, use_reentrant=False)
    th.tanh().sum().backward()
    cygrad_out = per_block(cm, cx, use_reentrant=False)
    cygrad_out.tanh().sum().backward()
    np.testing.assert_allclose(cygrad_out.detach().numpy(), th.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (name, tp), cp in zip(tm.named_parameters(), cm.parameters()):
        np.testing.assert_allclose(cp.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_against_torch_saved_bytes(torch):
    from torch.utils.checkpoint import checkpoint as tcheckpoint
    tm, cm = _torch_pair(torch, torch.float32)
    xn = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    tx = torch.tensor(xn, requires_grad=True)
    cx = cygrad.tensor(xn, requires_grad=True)
    tparams = list(tm.parameters())

    def tblocks(n_per):
        def run():
            h = tx
            for i in range(0, 16, n_per):
                h = tcheckpoint(tm[i:i + n_per], h, use_reentrant=False)
            return h.sum()
        return run

    tloss, t_plain = _torch_saved_bytes(torch, lambda: tm(tx).sum())
    _, t_plain_act = _torch_saved_bytes(torch, lambda: tm(tx).sum(), exclude=tparams)
    tloss_ck, t_ck = _torch_saved_bytes(torch, tblocks(2))
    _, t_ck2 = _torch_saved_bytes(torch, tblocks(4))

    closs = cm(cx).sum()
    closs_ck = per_block(cm, cx, use_reentrant=False).sum()
    assert saved_activation_bytes(closs) == t_plain == 16 * ACT + 8 * 256 * 256 * 4
    assert saved_activation_bytes(closs, exclude=cm.parameters()) == t_plain_act == 16 * ACT
    assert saved_activation_bytes(closs_ck) == t_ck == 8 * ACT
    assert saved_activation_bytes(per_block(cm, cx, n_per=4, use_reentrant=False)) == t_ck2 == 4 * ACT

    tloss_ck.backward()
    closs_ck.backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    for tp, cp in zip(tparams, cm.parameters()):
        np.testing.assert_allclose(cp.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5)
