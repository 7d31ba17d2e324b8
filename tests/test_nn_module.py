"""nn.Module semantics, containers, state_dict, hooks, repr and nn.init, compared with torch."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import cygrad
from cygrad import nn


def _model(T):
    N = T.nn
    return N.Sequential(OrderedDict([
        ("fc1", N.Linear(4, 8)),
        ("act", N.ReLU()),
        ("blocks", N.ModuleList([N.Linear(8, 8), N.Dropout(0.1)])),
        ("heads", N.ModuleDict({"a": N.Linear(8, 3), "b": N.Sequential(N.Linear(8, 2, bias=False), N.GELU())})),
        ("emb", N.Embedding(10, 4, padding_idx=1)),
        ("pr", N.PReLU(3)),
        ("bil", N.Bilinear(2, 3, 4)),
        ("params", N.ParameterList([N.Parameter(T.zeros(2, 2))])),
        ("pdict", N.ParameterDict({"p": N.Parameter(T.ones(3))})),
        ("loss", N.CrossEntropyLoss(weight=T.ones(3))),
    ]))


def _copy_from_torch(cmodel, tmodel):
    sd = OrderedDict((k, cygrad.tensor(v.detach().numpy().copy())) for k, v in tmodel.state_dict().items())
    return cmodel.load_state_dict(sd)


def test_state_dict_keys_and_repr_match_torch(torch):
    c, t = _model(cygrad), _model(torch)
    assert list(c.state_dict().keys()) == list(t.state_dict().keys())
    assert [n for n, _ in c.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in c.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in c.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in c.named_children()] == [n for n, _ in t.named_children()]
    # cygrad names its dtypes cygrad.float32 where torch says torch.float32
    assert repr(c).replace("cygrad.", "torch.") == repr(t)
    res = _copy_from_torch(c, t)
    assert res.missing_keys == [] and res.unexpected_keys == []
    for (k, a), (_, b) in zip(c.state_dict().items(), t.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert type(c.state_dict()) is OrderedDict
    assert not any(v.requires_grad for v in c.state_dict().values())


def test_small_model_repr_variants(torch):
    mk = [
        lambda T: T.nn.Sequential(T.nn.Linear(3, 3), T.nn.LeakyReLU(0.2, inplace=True), T.nn.Softplus(2.0, 10.0),
                                  T.nn.Hardtanh(-2.0, 2.0), T.nn.ReLU6(), T.nn.ELU(alpha=0.5), T.nn.Softmax(dim=1),
                                  T.nn.LogSoftmax(), T.nn.Threshold(0.1, 20.0), T.nn.GLU(), T.nn.Flatten(),
                                  T.nn.Unflatten(1, (2, 5)), T.nn.Identity(), T.nn.Tanh(), T.nn.SELU(inplace=True),
                                  T.nn.GELU("tanh"), T.nn.Embedding(5, 2, max_norm=1.0, scale_grad_by_freq=True)),
        lambda T: T.nn.ModuleList([T.nn.Linear(2, 2) for _ in range(3)] + [T.nn.ReLU()]),
        lambda T: T.nn.ModuleList(),
        lambda T: T.nn.HuberLoss(delta=0.5),
    ]
    for f in mk:
        assert repr(f(cygrad)) == repr(f(torch))


def test_parameter():
    p = nn.Parameter(cygrad.tensor([1.0, 2.0]))
    assert p.requires_grad and isinstance(p, cygrad.Tensor) and p.is_leaf
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    q = nn.Parameter(cygrad.zeros(2), requires_grad=False)
    assert not q.requires_grad
    y = (p * 2).sum()
    y.backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])
    assert type(p * 2) is cygrad.Tensor
    import copy
    p2 = copy.deepcopy(p)
    assert isinstance(p2, nn.Parameter) and p2.requires_grad and p2.data_ptr() != p.data_ptr()


def test_registration_and_attributes():
    m = nn.Module()
    m.w = nn.Parameter(cygrad.ones(2))
    m.register_buffer("running", cygrad.zeros(2))
    m.register_buffer("tmp", cygrad.zeros(1), persistent=False)
    m.sub = nn.Linear(2, 2)
    m.register_parameter("none_p", None)
    assert set(m._parameters) == {"w", "none_p"} and m.none_p is None
    assert list(m.state_dict().keys()) == ["w", "running", "sub.weight", "sub.bias"]
    assert [n for n, _ in m.named_buffers()] == ["running", "tmp"]
    assert [n for n, _ in m.named_parameters(prefix="model")] == ["model.w", "model.sub.weight", "model.sub.bias"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["w"]
    with pytest.raises(TypeError):
        m.w = cygrad.ones(2)
    with pytest.raises(KeyError):
        m.register_buffer("a.b", cygrad.zeros(1))
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        m.missing
    del m.sub
    assert "sub" not in m._modules
    # shared parameters appear once unless remove_duplicate=False
    lin = nn.Linear(2, 2)
    s = nn.Sequential(lin, lin)
    assert len(list(s.parameters())) == 2
    assert len(list(s.named_parameters(remove_duplicate=False))) == 4
    m2 = nn.Module()
    m2.register_module("child", nn.ReLU())
    m2.add_module("child2", nn.Tanh())
    assert [n for n, _ in m2.named_children()] == ["child", "child2"]
    assert m2.get_submodule("child") is m2.child


def test_train_eval_zero_grad_requires_grad_apply():
    m = nn.Sequential(nn.Linear(3, 2), nn.Dropout())
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    m.train()
    assert m[1].training
    m(cygrad.ones(1, 3)).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m[0].weight.grad.numpy(), 0)
    m.zero_grad()
    assert m[0].weight.grad is None
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Sequential"]


def test_to_double_float_keep_parameter_objects():
    m = nn.Sequential(nn.Linear(3, 2))
    w = m[0].weight
    assert m.double() is m
    assert m[0].weight is w and w.dtype == cygrad.float64 and isinstance(w, nn.Parameter) and w.requires_grad
    m.to(cygrad.float32)
    assert w.dtype == cygrad.float32
    m.to("cpu")
    m.float()
    assert w.dtype == cygrad.float32
    with pytest.raises(TypeError):
        m.to(cygrad.int64)


def test_load_state_dict_errors(torch):
    for T in (cygrad, torch):
        m = T.nn.Sequential(T.nn.Linear(3, 2), T.nn.ReLU(), T.nn.Linear(2, 1))
        sd = m.state_dict()
        sd.pop("2.bias")
        sd["extra.weight"] = T.zeros(1)
        with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.bias"') as e:
            m.load_state_dict(sd)
        assert 'Unexpected key(s) in state_dict: "extra.weight"' in str(e.value)
        res = m.load_state_dict(sd, strict=False)
        assert res.missing_keys == ["2.bias"] and res.unexpected_keys == ["extra.weight"]
        bad = m.state_dict()
        bad["0.weight"] = T.zeros(4, 4)
        with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
            m.load_state_dict(bad)
    # messages identical to torch's
    msgs = []
    for T in (cygrad, torch):
        m = T.nn.Sequential(T.nn.Linear(3, 2))
        with pytest.raises(RuntimeError) as e:
            m.load_state_dict({"0.weight": T.zeros(2, 3), "x": T.zeros(1)})
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_load_state_dict_copies_values():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    w = b.weight
    b.load_state_dict(a.state_dict())
    assert b.weight is w
    np.testing.assert_array_equal(b.weight.detach().numpy(), a.weight.detach().numpy())
    assert repr(b.load_state_dict(a.state_dict())) == "<All keys matched successfully>"


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    y = m(cygrad.ones(1, 2))
    np.testing.assert_allclose(y.detach().numpy(), m.bias.detach().numpy()[None] + 1, rtol=1e-6)
    assert calls == [cygrad.Size([1, 2])]
    h1.remove()
    h2.remove()
    y = m(cygrad.ones(1, 2))
    assert len(calls) == 1
    np.testing.assert_allclose(y.detach().numpy(), (m.weight.sum(1) + m.bias).detach().numpy()[None], rtol=1e-6)


def test_full_backward_hook_matches_torch(torch):
    x = np.random.default_rng(0).standard_normal((3, 4))
    res = []
    for T in (cygrad, torch):
        T.manual_seed(0)
        m = T.nn.Sequential(T.nn.Linear(4, 3), T.nn.Tanh())
        lin = T.nn.Linear(4, 3)
        m[0].load_state_dict({"weight": T.tensor(np.arange(12.0).reshape(3, 4) / 10, dtype=T.float32),
                              "bias": T.zeros(3)})
        seen = []
        h = m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
        xt = T.tensor(x, dtype=T.float32, requires_grad=True)
        m(xt).sum().backward()
        (gi,), (go,) = seen[0]
        res.append((gi.numpy().copy(), go.numpy().copy(), xt.grad.numpy().copy()))
        h.remove()
        # a hook that replaces grad_input
        m.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 2,))
        xt.grad = None
        m(xt).sum().backward()
        res.append(xt.grad.numpy().copy())
        del lin
    for a, b in zip(res[0], res[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[1], res[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[1], 2 * res[0][2], rtol=1e-6)


def test_full_backward_hook_input_without_grad():
    m = nn.Linear(2, 2)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    m(cygrad.ones(1, 2)).sum().backward()
    assert seen[0][0] == (None,) and seen[0][1][0].shape == (1, 2)


def test_containers():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(s) == 3 and isinstance(s[-1], nn.Linear) and isinstance(s[1:], nn.Sequential) and len(s[1:]) == 2
    s.append(nn.Sigmoid())
    assert len(s) == 4 and [type(x).__name__ for x in s] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    del s[1]
    assert list(s._modules) == ["0", "1", "2"]
    od = nn.Sequential(OrderedDict([("a", nn.ReLU()), ("b", nn.Tanh())]))
    assert od.a is od[0]
    with pytest.raises(IndexError):
        s[10]
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh()).extend([nn.Sigmoid()])
    ml.insert(0, nn.Identity())
    assert [type(x).__name__ for x in ml] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    md = nn.ModuleDict({"x": nn.ReLU()})
    md["y"] = nn.Tanh()
    assert list(md.keys()) == ["x", "y"] and "x" in md and len(md) == 2
    pl = nn.ParameterList([cygrad.zeros(2)])
    pl.append(nn.Parameter(cygrad.ones(1)))
    assert len(pl) == 2 and all(isinstance(p, nn.Parameter) for p in pl)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    pd = nn.ParameterDict({"b": cygrad.zeros(1), "a": cygrad.ones(1)})
    assert list(pd.keys()) == ["a", "b"] and isinstance(pd["a"], nn.Parameter)


def test_container_reprs_match_torch(torch):
    for f in (lambda T: T.nn.ParameterList([T.nn.Parameter(T.zeros(2, 3))]),
              lambda T: T.nn.ParameterDict({"w": T.nn.Parameter(T.zeros(4))}),
              lambda T: T.nn.ModuleDict({"a": T.nn.ReLU(), "b": T.nn.Linear(1, 1, bias=False)})):
        assert repr(f(cygrad)).replace("cygrad.", "torch.") == repr(f(torch))


# ---- nn.init ------------------------------------------------------------------------------------
def test_init_gain_and_fans(torch):
    for nl, p in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                  ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert nn.init.calculate_gain(nl, p) == torch.nn.init.calculate_gain(nl, p)
    with pytest.raises(ValueError):
        nn.init.calculate_gain("foo")
    for shape in [(3, 4), (5, 2, 3, 3)]:
        assert nn.init._calculate_fan_in_and_fan_out(cygrad.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    with pytest.raises(ValueError):
        nn.init._calculate_fan_in_and_fan_out(cygrad.empty(3))


def test_init_distributions():
    g = cygrad.Generator().manual_seed(0)
    w = cygrad.empty(200, 300, requires_grad=True)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
    bound = math.sqrt(6 / ((1 + 5) * 300))
    d = w.detach().numpy()
    assert d.max() <= bound and d.min() >= -bound and d.max() > 0.95 * bound
    assert w.requires_grad and w.is_leaf
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.detach().numpy().std() - math.sqrt(2 / 200)) < 0.005
    nn.init.xavier_uniform_(w, gain=2.0)
    assert np.abs(w.detach().numpy()).max() <= 2 * math.sqrt(6 / 500)
    nn.init.xavier_normal_(w)
    assert abs(w.detach().numpy().std() - math.sqrt(2 / 500)) < 0.003
    nn.init.normal_(w, 1.0, 0.5)
    assert abs(w.detach().numpy().mean() - 1.0) < 0.01
    nn.init.uniform_(w, 2.0, 3.0)
    assert w.detach().numpy().min() >= 2.0
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.detach().numpy()).max() <= 0.5
    nn.init.constant_(w, 0.3)
    np.testing.assert_allclose(w.detach().numpy(), 0.3, rtol=1e-6)
    nn.init.zeros_(w)
    assert not w.detach().numpy().any()
    nn.init.ones_(w)
    assert (w.detach().numpy() == 1).all()
    e = nn.init.eye_(cygrad.empty(3, 4))
    np.testing.assert_array_equal(e.numpy(), np.eye(3, 4))
    q = nn.init.orthogonal_(cygrad.empty(4, 6), gain=2.0).numpy().astype(np.float64)
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(4), atol=1e-5)
    # generator reproducibility
    a = nn.init.uniform_(cygrad.empty(5), generator=cygrad.Generator().manual_seed(3)).numpy()
    b = nn.init.uniform_(cygrad.empty(5), generator=cygrad.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(a, b)


def test_linear_default_init_bounds():
    m = nn.Linear(50, 40)
    b = 1 / math.sqrt(50)
    assert np.abs(m.weight.detach().numpy()).max() <= b and np.abs(m.bias.detach().numpy()).max() <= b
    assert m.weight.dtype == cygrad.float32 and m.weight.shape == (40, 50)
    bl = nn.Bilinear(4, 5, 6)
    assert bl.weight.shape == (6, 4, 5) and np.abs(bl.weight.detach().numpy()).max() <= 0.5
    assert nn.Linear(2, 3, dtype=cygrad.float64).weight.dtype == cygrad.float64


def test_deepcopy_and_pickle():
    import copy
    import pickle
    m = nn.Sequential(nn.Linear(3, 2), nn.Embedding(4, 2))
    m.register_buffer("b", cygrad.ones(2))
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert isinstance(m2[0].weight, nn.Parameter) and m2[0].weight.requires_grad
        assert m2[0].weight.data_ptr() != m[0].weight.data_ptr()
        assert list(m2.state_dict()) == list(m.state_dict())
        for (k, a), (_, b) in zip(m2.state_dict().items(), m.state_dict().items()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
