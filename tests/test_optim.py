"""Optimizers: trajectories against torch (the oracle), fused kernels against NumPy references,
the Optimizer base class (param groups, state_dict, errors)."""
import copy
import math

import numpy as np
import pytest

import cygrad
from cygrad import optim

OPT_CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.8), maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.005, centered=True, eps=1e-6, maximize=True)),
    ("Adagrad", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01, eps=1e-8)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01, maximize=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, momentum_decay=0.01, weight_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
]


def _init(seed=0):
    r = np.random.default_rng(seed)
    return dict(W=r.standard_normal((4, 8)) * 0.5, b=r.standard_normal(8) * 0.1,
                V=r.standard_normal((8, 2)) * 0.5, X=r.standard_normal((16, 4)), Y=r.standard_normal((16, 2)))


def _trajectory(T, name, kw, steps=50, dtype=np.float64, two_groups=False):
    d = _init()
    params = [T.tensor(d[k].astype(dtype), requires_grad=True) for k in ("W", "b", "V")]
    X, Y = T.tensor(d["X"].astype(dtype)), T.tensor(d["Y"].astype(dtype))
    if two_groups:
        opt = getattr(T.optim, name)([{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] / 2}], **kw)
    else:
        opt = getattr(T.optim, name)(params, **kw)
    losses = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = (((X @ params[0] + params[1]).tanh() @ params[2] - Y) ** 2).mean()
            if kw.get("maximize"):
                loss = -loss  # maximizing -loss keeps the trajectory bounded
            loss.backward()
            return loss
        losses.append(float(opt.step(closure).detach()))
    return [p.detach().numpy().copy() for p in params], losses, opt


@pytest.mark.parametrize("name,kw", OPT_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPT_CONFIGS)])
def test_trajectory_matches_torch_float64(torch, name, kw):
    ours, lc, opt_c = _trajectory(cygrad, name, kw)
    ref, lt, opt_t = _trajectory(torch, name, kw)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lc, lt, rtol=1e-6, atol=1e-8)
    # the optimizer state has torch's structure and values
    sc, st = opt_c.state_dict(), opt_t.state_dict()
    assert sc["param_groups"][0].keys() == st["param_groups"][0].keys()
    assert [g["params"] for g in sc["param_groups"]] == [g["params"] for g in st["param_groups"]]
    assert sc["state"].keys() == st["state"].keys()
    for i in st["state"]:
        assert sc["state"][i].keys() == st["state"][i].keys()
        for k, v in st["state"][i].items():
            c = sc["state"][i][k]
            assert np.asarray(c.numpy()).dtype == np.asarray(v.numpy()).dtype, k
            np.testing.assert_allclose(c.numpy(), v.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,kw", [OPT_CONFIGS[2], OPT_CONFIGS[5], OPT_CONFIGS[11], OPT_CONFIGS[18]])
def test_trajectory_float32_and_param_groups(torch, name, kw):
    ours, _, _ = _trajectory(cygrad, name, kw, steps=20, dtype=np.float32, two_groups=True)
    ref, _, _ = _trajectory(torch, name, kw, steps=20, dtype=np.float32, two_groups=True)
    for a, b in zip(ours, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Kernels against NumPy references (one optimizer, several steps, float32 and float64).

def _np_sgd(p, g, st, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    if momentum:
        buf = st.get("buf")
        buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        st["buf"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def _np_adam(p, g, st, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled_weight_decay=False):
    b1, b2 = betas
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    v = st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    if amsgrad:
        v = st["vmax"] = np.maximum(st.get("vmax", 0), v)
    return p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)


def _np_rmsprop(p, g, st, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    s = st["s"] = alpha * st.get("s", 0) + (1 - alpha) * g * g
    if centered:
        a = st["a"] = alpha * st.get("a", 0) + (1 - alpha) * g
        avg = np.sqrt(s - a * a) + eps
    else:
        avg = np.sqrt(s) + eps
    if momentum:
        b = st["b"] = momentum * st.get("b", 0) + g / avg
        return p - lr * b
    return p - lr * g / avg


def _np_adagrad(p, g, st, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    g = g + weight_decay * p
    s = st["s"] = st.get("s", initial_accumulator_value) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)


def _np_adamax(p, g, st, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    g = g + weight_decay * p
    m = st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    u = st["u"] = np.maximum(b2 * st.get("u", 0), np.abs(g) + eps)
    return p - lr / (1 - b1 ** t) * m / u


def _np_nadam(p, g, st, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
              decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    # torch keeps mu_product in the step counter's dtype (float32 by default)
    prod = st["prod"] = float(np.float32(st.get("prod", 1.0)) * np.float32(mu))
    m = st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    v = st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    d = np.sqrt(v / (1 - b2 ** t)) + eps
    return p - lr * (1 - mu) / (1 - prod) * g / d - lr * mu_next / (1 - prod * mu_next) * m / d


NP_REF = {"SGD": _np_sgd, "Adam": _np_adam, "AdamW": lambda p, g, st, lr, weight_decay=1e-2, **kw: _np_adam(
    p, g, st, lr, weight_decay=weight_decay, decoupled_weight_decay=True, **kw),
    "RMSprop": _np_rmsprop, "Adagrad": _np_adagrad, "Adamax": _np_adamax, "NAdam": _np_nadam}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", OPT_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPT_CONFIGS)])
def test_kernels_match_numpy_reference(name, kw, dtype):
    r = np.random.default_rng(1)
    p0 = r.standard_normal((7, 5)).astype(dtype)
    # a large parameter too, so that the kernels run their parallel path
    big0 = r.standard_normal(70_001).astype(dtype)
    p, big = cygrad.tensor(p0, requires_grad=True), cygrad.tensor(big0, requires_grad=True)
    opt = getattr(optim, name)([p, big], **kw)
    ref, refb, st, stb = p0.astype(np.float64), big0.astype(np.float64), {}, {}
    for k in range(5):
        g = r.standard_normal(p0.shape).astype(dtype)
        gb = r.standard_normal(big0.shape).astype(dtype)
        p.grad, big.grad = cygrad.tensor(g), cygrad.tensor(gb)
        opt.step()
        ref = NP_REF[name](ref, g.astype(np.float64), st, **kw)
        refb = NP_REF[name](refb, gb.astype(np.float64), stb, **kw)
    tol = dict(rtol=1e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert p.dtype == cygrad.tensor(p0).dtype
    np.testing.assert_allclose(p.detach().numpy(), ref, **tol)
    np.testing.assert_allclose(big.detach().numpy(), refb, **tol)


def test_non_contiguous_parameter_is_updated_in_place():
    base = cygrad.tensor(np.arange(12.0).reshape(3, 4))
    p = base.detach().t()  # non-contiguous leaf view
    p.requires_grad_(True)
    assert not p.is_contiguous()
    opt = optim.SGD([p], lr=0.5)
    p.grad = cygrad.ones(4, 3, dtype=cygrad.float64)
    v = p._version
    opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), np.arange(12.0).reshape(3, 4).T - 0.5)
    np.testing.assert_array_equal(base.numpy(), np.arange(12.0).reshape(3, 4) - 0.5)
    assert p._version > v


# ---------------------------------------------------------------------------------------------
# The Optimizer base class.

def _p(*shape):
    return cygrad.zeros(*shape, requires_grad=True)


def test_param_groups_defaults_and_repr():
    a, b = _p(2), _p(3)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert len(opt.param_groups) == 2
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["params"] == [b] or opt.param_groups[1]["params"][0] is b
    for g in opt.param_groups:
        assert g["momentum"] == 0.9 and g["nesterov"] is False and g["maximize"] is False
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


def test_param_group_keys_match_torch(torch):
    for name, kw in [("SGD", {}), ("Adam", {}), ("AdamW", {}), ("RMSprop", {}), ("Adagrad", {}), ("Adamax", {}),
                     ("NAdam", {})]:
        ours = getattr(optim, name)([_p(2)], **kw).param_groups[0]
        ref = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw).param_groups[0]
        assert ours.keys() == ref.keys(), name
        for k in ref:
            if k != "params":
                assert ours[k] == ref[k], (name, k)


def test_errors_like_torch():
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.Adam([_p(1)], lr=-1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD([_p(1)], lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([_p(1)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid momentum value"):
        optim.SGD([_p(1)], momentum=-0.1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD([_p(1)], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts"):
        optim.SGD(_p(1), lr=0.1)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors"):
        optim.SGD([1.0], lr=0.1)
    x = _p(2)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([x * 2], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {x}}], lr=0.1)
    opt = optim.SGD([x], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [x]})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([x, x], lr=0.1)
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [("w", _p(1))]})


def test_zero_grad_and_step_under_no_grad():
    w = _p(3)
    opt = optim.SGD([w], lr=0.1)
    (w * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and np.all(w.grad.numpy() == 0)
    opt.zero_grad()
    assert w.grad is None
    seen = {}

    def closure():
        seen["grad_enabled"] = cygrad.is_grad_enabled()
        loss = (w - 1).pow(2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert seen["grad_enabled"] is True
    assert float(loss) == 3.0
    assert w.grad_fn is None and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.detach().numpy(), [0.2, 0.2, 0.2])
    assert opt.step() is None
    # parameters without a gradient are skipped
    u = _p(2)
    opt2 = optim.Adam([u])
    opt2.step()
    assert len(opt2.state) == 0 and np.all(u.detach().numpy() == 0)


def test_named_parameters():
    w, b = _p(2), _p(1)
    opt = optim.Adam([("weight", w), ("bias", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("RMSprop", dict(centered=True, momentum=0.1)), ("Adagrad", {}),
                                     ("NAdam", {})])
def test_state_dict_roundtrip_continues_identically(name, kw):
    full, _, _ = _trajectory(cygrad, name, kw, steps=20)
    # 10 steps, save, load into a fresh optimizer over copies of the params, 10 more steps
    d = _init()
    params = [cygrad.tensor(d[k], requires_grad=True) for k in ("W", "b", "V")]
    X, Y = cygrad.tensor(d["X"]), cygrad.tensor(d["Y"])

    def run(opt, ps, n):
        for _ in range(n):
            opt.zero_grad()
            (((X @ ps[0] + ps[1]).tanh() @ ps[2] - Y) ** 2).mean().backward()
            opt.step()

    opt = getattr(optim, name)(params, **kw)
    run(opt, params, 10)
    sd = copy.deepcopy(opt.state_dict())
    assert sorted(sd) == ["param_groups", "state"] and sd["param_groups"][0]["params"] == [0, 1, 2]
    params2 = [cygrad.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    opt2 = getattr(optim, name)(params2, lr=123.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert opt2.param_groups[0]["params"][0] is params2[0]
    run(opt2, params2, 10)
    for a, b in zip(params2, full):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-12, atol=1e-12)


def test_load_state_dict_errors():
    opt = optim.SGD([_p(1), _p(1)], lr=0.1)
    sd = optim.SGD([{"params": [_p(1)]}, {"params": [_p(1)]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(sd)
    sd = optim.SGD([_p(1)], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(sd)


def test_state_dict_loads_torch_layout_into_torch(torch):
    """A cygrad state dict converted to torch tensors loads into torch's optimizer and continues
    the same trajectory."""
    kw = dict(lr=0.01, amsgrad=True)
    _, _, opt_c = _trajectory(cygrad, "Adam", kw, steps=5)
    _, _, opt_t = _trajectory(torch, "Adam", kw, steps=5)
    sd = opt_c.state_dict()
    conv = {"state": {i: {k: torch.tensor(v.numpy()) for k, v in s.items()} for i, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}
    opt_t.load_state_dict(conv)
    for i, s in opt_t.state_dict()["state"].items():
        for k, v in s.items():
            np.testing.assert_allclose(v.numpy(), sd["state"][i][k].numpy(), rtol=1e-6)


@pytest.mark.parametrize("name,kw", [("Adam", dict(lr=0.01, amsgrad=True)), ("RMSprop", dict(centered=True)),
                                     ("NAdam", {})])
def test_kernels_do_not_depend_on_thread_count(restore_threads, name, kw):
    r = np.random.default_rng(3)
    p0, gs = r.standard_normal(100_000), [r.standard_normal(100_000) for _ in range(3)]
    out = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        p = cygrad.tensor(p0, requires_grad=True)
        opt = getattr(optim, name)([p], **kw)
        for g in gs:
            p.grad = cygrad.tensor(g)
            opt.step()
        out.append(p.detach().numpy().copy())
    np.testing.assert_array_equal(out[0], out[1])
