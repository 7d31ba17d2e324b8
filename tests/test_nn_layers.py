"""Layers: outputs and gradients vs torch (weights copied from torch), gradchecks, dropout, embedding."""
import numpy as np
import pytest

import cygrad
from cygrad import nn
from conftest import assert_close, gradcheck, randn, rng


def _run_pair(torch, make, inputs, grad=True, rtol=None, atol=None):
    """Build the module in both libraries, copy torch's weights into cygrad's, compare outputs and grads."""
    tm = make(torch)
    cm = make(cygrad)
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    tin = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in inputs]
    cin = [cygrad.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in inputs]
    tout, cout = tm(*tin), cm(*cin)
    assert_close(cout, tout, rtol=rtol, atol=atol)
    if grad:
        go = rng(5).standard_normal(tuple(tout.shape)).astype(inputs[0].dtype if inputs[0].dtype.kind == "f"
                                                              else tout.detach().numpy().dtype)
        tout.backward(torch.tensor(go))
        cout.backward(cygrad.tensor(go))
        for c, t in zip(cin, tin):
            if t.grad is not None:
                assert_close(c.grad, t.grad, rtol=rtol, atol=atol)
        cp = dict(cm.named_parameters())
        for name, tp in tm.named_parameters():
            if tp.grad is None:
                assert cp[name].grad is None or not cp[name].grad.numpy().any()
            else:
                assert_close(cp[name].grad, tp.grad, rtol=rtol, atol=atol)
    return cm, tm


ACTS = [
    ("ReLU", ()), ("ReLU6", ()), ("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("SELU", ()), ("CELU", (1.3,)),
    ("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("Mish", ()), ("Softplus", (2.0, 5.0)),
    ("Hardtanh", (-0.5, 0.8)), ("Hardsigmoid", ()), ("Hardswish", ()), ("LogSigmoid", ()), ("Softmax", (1,)),
    ("LogSoftmax", (1,)), ("Softmin", (0,)), ("Sigmoid", ()), ("Tanh", ()), ("Softsign", ()), ("Tanhshrink", ()),
    ("Threshold", (0.1, -2.0)), ("GLU", (1,)),
]


# torch's float64 hardsigmoid and celu backward use float32 constants (1/6, 1/alpha), ~3e-8 off
# the exact gradient, which cygrad computes (checked against NumPy's exact formula and by
# gradcheck in tests/test_ops_activation.py)
_TORCH_F32_CONSTANT = {"Hardsigmoid": 1e-7, "CELU": 1e-7}


@pytest.mark.parametrize("name,args", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, id="float64")])
def test_activation_modules(torch, name, args, dtype):
    x = randn(3, 4, dtype=dtype) * 3
    rtol = _TORCH_F32_CONSTANT.get(name) if dtype == np.float64 else None
    cm, tm = _run_pair(torch, lambda T: getattr(T.nn, name)(*args), [x], rtol=rtol)
    assert repr(cm) == repr(tm)


@pytest.mark.parametrize("name,args", [("ReLU", ()), ("LeakyReLU", (0.1,)), ("ELU", ()), ("Hardtanh", ())])
def test_inplace_activation_modules(torch, name, args):
    for T in (cygrad, torch):
        m = getattr(T.nn, name)(*args, inplace=True)
        x = T.tensor(randn(5))
        y = m(x)
        assert y.data_ptr() == x.data_ptr()
    assert repr(getattr(cygrad.nn, name)(*args, inplace=True)) == repr(getattr(torch.nn, name)(*args, inplace=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_and_bilinear(torch, dtype, bias):
    dt = {np.float32: "float32", np.float64: "float64"}[dtype]
    cm, tm = _run_pair(torch, lambda T: T.nn.Linear(5, 3, bias=bias, dtype=getattr(T, dt)),
                       [randn(2, 4, 5, dtype=dtype)])
    assert repr(cm) == repr(tm)
    cm, tm = _run_pair(torch, lambda T: T.nn.Bilinear(4, 3, 2, bias=bias, dtype=getattr(T, dt)),
                       [randn(2, 5, 4, dtype=dtype), randn(2, 5, 3, dtype=dtype, seed=1)])
    assert repr(cm) == repr(tm)


def test_bilinear_and_prelu_gradcheck():
    gradcheck(lambda T, a, b, w, bias: T.nn.functional.bilinear(a, b, w, bias),
              [randn(4, 3), randn(4, 2, seed=1), randn(5, 3, 2, seed=2), randn(5, seed=3)])
    gradcheck(lambda T, x, w: T.nn.functional.prelu(x, w), [randn(3, 4, 2), rng(1).random(4) + 0.1])
    gradcheck(lambda T, x, w: T.nn.functional.prelu(x, w), [randn(3, 4), np.array([0.3])])


@pytest.mark.parametrize("n", [1, 4])
def test_prelu(torch, n):
    cm, tm = _run_pair(torch, lambda T: T.nn.PReLU(n, init=0.3), [randn(3, 4, 2, dtype=np.float32)])
    assert repr(cm) == repr(tm)
    assert cm.weight.shape == (n,) and cm.weight.requires_grad
    with pytest.raises(RuntimeError):
        nn.PReLU(3)(cygrad.randn(2, 4))


def test_flatten_unflatten_identity(torch):
    x = randn(2, 3, 4, 5)
    for make in (lambda T: T.nn.Flatten(), lambda T: T.nn.Flatten(0, 2), lambda T: T.nn.Identity(3, a=1),
                 lambda T: T.nn.Unflatten(2, (2, 2))):
        cm, tm = _run_pair(torch, make, [x])
        assert repr(cm) == repr(tm)


def test_sequential_model_matches_torch(torch):
    make = (lambda T: T.nn.Sequential(T.nn.Linear(6, 8), T.nn.GELU(), T.nn.Linear(8, 8), T.nn.Tanh(),
                                      T.nn.Dropout(0.3), T.nn.Linear(8, 3), T.nn.LogSoftmax(dim=1)).eval())
    _run_pair(torch, make, [randn(5, 6, dtype=np.float32)])


# ---- dropout -------------------------------------------------------------------------------------
def test_dropout_train_eval():
    cygrad.manual_seed(0)
    m = nn.Dropout(0.25)
    x = cygrad.ones(200, 100, requires_grad=True)
    y = m(x)
    d = y.detach().numpy()
    assert set(np.unique(d)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((d == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), d)  # grad = mask * scale
    cygrad.manual_seed(0)
    np.testing.assert_array_equal(m(x).detach().numpy(), d)  # seeded by the default generator
    m.eval()
    assert m(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).detach().numpy().any()
    z = cygrad.ones(10)
    out = cygrad.nn.functional.dropout(z, 0.5, training=True, inplace=True)
    assert out.data_ptr() == z.data_ptr()


def test_dropout_errors(torch):
    for T in (cygrad, torch):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
            T.nn.Dropout(1.5)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            T.nn.functional.dropout(T.ones(2), p=-0.1)
    assert repr(nn.Dropout(0.2, inplace=True)) == repr(torch.nn.Dropout(0.2, inplace=True))


# ---- embedding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
                                {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0}])
def test_embedding(torch, kw):
    idx = np.array([[0, 2, 4], [2, 2, 1]], dtype=np.int64)
    cm, tm = _run_pair(torch, lambda T: T.nn.Embedding(5, 3, **kw), [idx], grad=False)
    assert repr(cm) == repr(tm)
    # gradient wrt the weight (with the weights possibly renormalised in place like torch's)
    tm.weight.grad = None
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    go = rng(1).standard_normal((2, 3, 3)).astype(np.float32)
    tm(torch.tensor(idx)).backward(torch.tensor(go))
    cm(cygrad.tensor(idx)).backward(cygrad.tensor(go))
    assert_close(cm.weight.grad, tm.weight.grad)
    assert_close(cm.weight.detach(), tm.weight.detach())


def test_embedding_init_padding_and_pretrained(torch):
    e = nn.Embedding(6, 4, padding_idx=3)
    assert not e.weight.detach().numpy()[3].any() and e.weight.detach().numpy()[0].any()
    w = cygrad.randn(4, 2)
    p = nn.Embedding.from_pretrained(w)
    assert not p.weight.requires_grad and p.weight.data_ptr() == w.data_ptr()
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    # (padding_idx blocks the padding row's gradient on purpose, so gradcheck runs without it)
    gradcheck(lambda T, w, i: T.nn.functional.embedding(i, w, scale_grad_by_freq=False),
              [randn(5, 3), np.array([[1, 2], [4, 1]], dtype=np.int64)])
    for T in (cygrad, torch):
        with pytest.raises(IndexError, match="index out of range"):
            T.nn.functional.embedding(T.tensor([5]), T.ones(5, 2))
        with pytest.raises(RuntimeError):
            T.nn.functional.embedding(T.tensor([0.0]), T.ones(5, 2))


def test_embedding_double_backward():
    from conftest import gradgradcheck
    gradgradcheck(lambda T, w, i: T.nn.functional.embedding(i, w) ** 2,
                  [randn(5, 3), np.array([1, 1, 4], dtype=np.int64)])
