"""Recurrent layers (nn.RNN / LSTM / GRU, the cells, nn.utils.rnn packing) and the _C.rnn kernels:
vs torch (weights copied from torch modules), float64 gradchecks, NumPy references, threads, bad input."""
import math
import warnings

import numpy as np
import pytest

import cygrad
from cygrad import nn
from cygrad._C import rnn as K
from cygrad.nn.utils import rnn as crnn
from cygrad.ops.rnn import make_plan
from conftest import FLOAT_DTYPES, assert_close, rng

H = 5          # hidden size of most tests
I = 3          # input size


def _dt(lib, dtype):
    return getattr(lib, np.dtype(dtype).name)


def _pair(torch, kind, dtype=np.float64, **kw):
    """The same layer in torch and cygrad, cygrad loaded from torch's state_dict."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(I, H, dtype=_dt(torch, dtype), **kw)
    cm = getattr(nn, kind)(I, H, dtype=_dt(cygrad, dtype), **kw)
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    return tm, cm


def _weighted_sum(lib, outs, dtype):
    """A loss using every output with different weights (so each gradient path is checked)."""
    loss = 0
    for k, o in enumerate(outs):
        w = np.cos(np.arange(o.numel()) * (k + 1.3)).reshape(tuple(o.shape)).astype(dtype)
        loss = loss + (o * lib.tensor(w)).sum()
    return loss


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    if isinstance(out, (crnn.PackedSequence,)) or type(out).__name__ == "PackedSequence":
        return [out.data]
    return [out]


def _run_both(torch, tm, cm, inputs, dtype, call=None, rtol=None, atol=None):
    """Run ``call(lib, module, *inputs)`` in both libraries; compare outputs and all gradients."""
    call = call or (lambda lib, m, x, *h: m(x, *h))
    grads = []
    outs = []
    for lib, m in ((torch, tm), (cygrad, cm)):
        ts = [None if a is None else tuple(lib.tensor(b, requires_grad=True) for b in a) if isinstance(a, tuple)
              else lib.tensor(a, requires_grad=True) for a in inputs]
        out = _flat(call(lib, m, *ts))
        _weighted_sum(lib, out, dtype).backward()
        leaves = [t for a in ts if a is not None for t in (a if isinstance(a, tuple) else (a,))]
        outs.append(out)
        grads.append([t.grad for t in leaves] + [p.grad for _, p in m.named_parameters()])
    for c, t in zip(outs[1], outs[0]):
        assert_close(c, t, rtol=rtol, atol=atol)
    names = [f"input{i}" for i in range(len(grads[0]) - len(list(tm.parameters())))] + \
        [n for n, _ in tm.named_parameters()]
    for name, c, t in zip(names, grads[1], grads[0]):
        assert c is not None, name
        assert_close(c, t, rtol=rtol, atol=atol)


F32_TOL = dict(rtol=2e-4, atol=2e-5)   # float32 recurrences accumulate rounding over the steps


def _tol(dtype):
    return F32_TOL if dtype == np.float32 else {}


# ---------------------------------------------------------------------------------------------
# Modules vs torch

CONFIGS = [
    ("RNN", {}),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
    ("RNN", dict(bias=False, bidirectional=True)),
    ("LSTM", {}),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(bias=False)),
    ("LSTM", dict(proj_size=2)),
    ("LSTM", dict(proj_size=3, num_layers=2, bidirectional=True)),
    ("GRU", {}),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False, num_layers=2)),
]


def _states(kind, tm, B, dtype, seed=3):
    r = rng(seed)
    D = 2 if tm.bidirectional else 1
    Hh = tm.proj_size if kind == "LSTM" and tm.proj_size else H
    h0 = r.standard_normal((tm.num_layers * D, B, Hh)).astype(dtype)
    if kind == "LSTM":
        return (h0, r.standard_normal((tm.num_layers * D, B, H)).astype(dtype))
    return h0


@pytest.mark.parametrize("kind,kw", CONFIGS, ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in v.items())}"
                                                    for k, v in CONFIGS])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_module_vs_torch(torch, kind, kw, dtype, batch_first, with_hx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "LSTM with projections is not supported with oneDNN"
        tm, cm = _pair(torch, kind, dtype, batch_first=batch_first, **kw)
        T, B = 4, 3
        x = rng(1).standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
        inputs = [x, _states(kind, tm, B, dtype)] if with_hx else [x]
        _run_both(torch, tm, cm, inputs, dtype, **_tol(dtype))


@pytest.mark.parametrize("kind,kw", [("RNN", {}), ("LSTM", dict(proj_size=2, bidirectional=True)),
                                     ("GRU", dict(num_layers=2, bidirectional=True))])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_vs_torch(torch, kind, kw, batch_first, enforce_sorted):
    """Packed input: outputs, final states at each sequence's length and all gradients."""
    lengths = [5, 4, 2, 2, 1] if enforce_sorted else [2, 5, 1, 4, 2]
    dtype = np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm, cm = _pair(torch, kind, dtype, batch_first=batch_first, **kw)
        T, B = 5, len(lengths)
        x = rng(1).standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)

        def call(lib, m, x, hx):
            rn = lib.nn.utils.rnn
            p = rn.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
            out, h = m(p, hx)
            assert isinstance(out, rn.PackedSequence)
            padded, lens = rn.pad_packed_sequence(out, batch_first=batch_first)
            assert lens.tolist() == lengths
            return padded, h, out.data

        _run_both(torch, tm, cm, [x, _states(kind, tm, B, dtype)], dtype, call=call)


@pytest.mark.parametrize("hidden", [64, 136])   # whole 64-unit chunks (register kernel), + a partial one
@pytest.mark.parametrize("kind,kw", [("RNN", {}), ("LSTM", dict(bidirectional=True)), ("GRU", {}),
                                     ("LSTM", dict(proj_size=40))])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_full_chunks_vs_torch(torch, hidden, kind, kw, dtype):
    """Hidden sizes with whole chunks run the packed-weight kernel forward and in the backward carry."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(5, hidden, dtype=_dt(torch, dtype), **kw)
    cm = getattr(nn, kind)(5, hidden, dtype=_dt(cygrad, dtype), **kw)
    cm.load_state_dict({k: cygrad.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    lengths = [7, 7, 6, 3, 3, 1]            # runs of prev rows that shrink step by step
    x = rng(3).standard_normal((7, len(lengths), 5)).astype(dtype)

    def call(lib, m, x):
        pk = lib.nn.utils.rnn.pack_padded_sequence(x, lengths)
        out, _ = m(pk)
        return lib.nn.utils.rnn.pad_packed_sequence(out)[0]

    _run_both(torch, tm, cm, [x], dtype, call=call, **_tol(dtype))


def test_full_chunks_gradcheck():
    m = nn.LSTM(3, 64, dtype=cygrad.float64)
    x = cygrad.tensor(rng(4).standard_normal((4, 2, 3)), requires_grad=True)
    h0 = cygrad.tensor(rng(5).standard_normal((1, 2, 64)), requires_grad=True)
    c0 = cygrad.tensor(rng(6).standard_normal((1, 2, 64)), requires_grad=True)
    assert cygrad.autograd.gradcheck(lambda x, h, c: m(x, (h, c))[0], (x, h0, c0))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_vs_torch(torch, kind, batch_first):
    tm, cm = _pair(torch, kind, np.float64, num_layers=2, batch_first=batch_first)
    x = rng(1).standard_normal((4, I))
    r = rng(2)
    hx = (r.standard_normal((2, H)), r.standard_normal((2, H))) if kind == "LSTM" else r.standard_normal((2, H))
    _run_both(torch, tm, cm, [x], np.float64)
    _run_both(torch, tm, cm, [x, hx], np.float64)
    out, h = cm(cygrad.tensor(x))
    assert tuple(out.shape) == (4, H)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_zero_in_train_mode_matches_torch(torch, kind):
    tm, cm = _pair(torch, kind, np.float32, num_layers=3, dropout=0.0)
    tm.train()
    cm.train()
    _run_both(torch, tm, cm, [rng(1).standard_normal((4, 2, I)).astype(np.float32)], np.float32, **F32_TOL)


def test_dropout_between_layers():
    m = nn.GRU(I, H, num_layers=2, dropout=0.5, dtype=cygrad.float64)
    x = cygrad.tensor(rng(1).standard_normal((6, 4, I)))
    cygrad.manual_seed(7)
    a = m(x)[0]
    cygrad.manual_seed(7)
    b = m(x)[0]
    c = m(x)[0]
    assert_close(a, b.detach().numpy(), rtol=0, atol=0)            # seeded from the default generator
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())  # a fresh mask
    m.eval()
    d, e = m(x)[0], m(x)[0]
    assert_close(d, e.detach().numpy(), rtol=0, atol=0)
    # p = 1 drops the whole input of layer 2: its output no longer depends on the sequence
    m1 = nn.LSTM(I, H, num_layers=2, dropout=1.0, dtype=cygrad.float64)
    out = m1(x)[0].detach().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1], out.shape), rtol=1e-12, atol=1e-14)
    m1.eval()
    out = m1(x)[0].detach().numpy()
    assert not np.allclose(out, np.broadcast_to(out[:, :1], out.shape))


@pytest.mark.parametrize("kind,kw", [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")),
                                     ("RNNCell", dict(bias=False)), ("LSTMCell", {}),
                                     ("LSTMCell", dict(bias=False)), ("GRUCell", {}), ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cells_vs_torch(torch, kind, kw, dtype):
    tm, cm = _pair(torch, kind, dtype, **kw)
    assert repr(cm) == repr(tm)
    r = rng(1)
    x = r.standard_normal((4, I)).astype(dtype)
    h = r.standard_normal((4, H)).astype(dtype)
    hx = (h, r.standard_normal((4, H)).astype(dtype)) if kind == "LSTMCell" else h
    _run_both(torch, tm, cm, [x, hx], dtype, **_tol(dtype))
    _run_both(torch, tm, cm, [x], dtype, **_tol(dtype))
    # unbatched
    hx1 = (h[0], hx[1][0]) if kind == "LSTMCell" else h[0]
    _run_both(torch, tm, cm, [x[0], hx1], dtype, **_tol(dtype))
    _run_both(torch, tm, cm, [x[0]], dtype, **_tol(dtype))


def test_cell_sequence_matches_layer():
    """Stepping a cell over a sequence gives the layer's output (same parameters)."""
    layer = nn.LSTM(I, H, dtype=cygrad.float64)
    cell = nn.LSTMCell(I, H, dtype=cygrad.float64)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = cygrad.tensor(rng(1).standard_normal((6, 2, I)))
    out, (h, c) = layer(x)
    hc = None
    for t in range(6):
        hc = cell(x[t], hc)
        assert_close(hc[0], out[t].detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_close(hc[1], c[0].detach().numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Structure: parameters, repr, init, state_dict

@pytest.mark.parametrize("kind,kw", CONFIGS + [("RNN", dict(num_layers=3, batch_first=True, dropout=0.25))],
                         ids=lambda v: str(v))
def test_parameters_repr_state_dict(torch, kind, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm, cm = _pair(torch, kind, np.float32, **kw)
    assert repr(cm) == repr(tm)
    assert [(n, tuple(p.shape)) for n, p in cm.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    assert list(cm.state_dict()) == list(tm.state_dict())
    assert cm._flat_weights_names == tm._flat_weights_names
    assert [[tuple(p.shape) for p in ws] for ws in cm.all_weights] == \
        [[tuple(p.shape) for p in ws] for ws in tm.all_weights]
    fresh = getattr(nn, kind)(I, H, **kw)
    bound = 1 / math.sqrt(H)
    for p in fresh.parameters():
        v = p.detach().numpy()
        assert v.dtype == np.float32 and np.all(np.abs(v) <= bound) and v.std() > 0.2 * bound
    fresh.flatten_parameters()


def test_module_api_details(torch):
    m = nn.LSTM(I, H, 2, True, True, 0.0, True, 2)    # positional arguments in torch's order
    t = torch.nn.LSTM(I, H, 2, True, True, 0.0, True, 2)
    assert repr(m) == repr(t)
    r = nn.RNN(I, H, 2, "relu")
    assert r.nonlinearity == "relu" and r.mode == "RNN_RELU" and repr(r) == repr(torch.nn.RNN(I, H, 2, "relu"))
    g = nn.GRU(I, H).double()
    assert g.weight_hh_l0.dtype == cygrad.float64
    out, h = g(cygrad.randn(2, 1, I, dtype=cygrad.float64))
    assert out.dtype == cygrad.float64
    assert nn.RNNBase is not None and issubclass(nn.GRU, nn.RNNBase) and issubclass(nn.GRUCell, nn.RNNCellBase)


# ---------------------------------------------------------------------------------------------
# Gradchecks (float64)

def _gradcheck_module(m, x, hx=None, packed=None, batch_first=False):
    """gradcheck wrt the input, the initial states and every parameter of ``m``."""
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in m.parameters()]
    hs = [] if hx is None else list(hx) if isinstance(hx, tuple) else [hx]
    n_h = len(hs)
    lstm = isinstance(m, nn.LSTM)

    def fn(x, *rest):
        for name, p in zip(names, rest[n_h:]):
            m._parameters[name] = p
        h = None if not n_h else (tuple(rest[:n_h]) if lstm else rest[0])
        inp = x if packed is None else crnn.pack_padded_sequence(x, packed, batch_first=batch_first,
                                                                 enforce_sorted=False)
        out, hid = m(inp, h)
        if packed is not None:
            out = out.data
        return (out,) + (tuple(hid) if lstm else (hid,))

    assert cygrad.autograd.gradcheck(fn, (x, *hs, *params))


GRADCHECK = [
    ("RNN", dict(nonlinearity="tanh"), True, None),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True), False, None),
    ("LSTM", {}, True, None),
    ("LSTM", dict(num_layers=2, bidirectional=True), True, None),
    ("LSTM", dict(proj_size=2, bidirectional=True), True, None),
    ("LSTM", dict(proj_size=2), False, [3, 1, 2]),
    ("LSTM", dict(bidirectional=True), True, [3, 1, 2]),
    ("GRU", {}, True, None),
    ("GRU", dict(num_layers=2, bidirectional=True, bias=False), True, None),
    ("GRU", dict(bidirectional=True), True, [2, 3, 1]),
    ("RNN", dict(bidirectional=True, batch_first=True), True, [1, 3, 2]),
]


@pytest.mark.parametrize("kind,kw,with_hx,packed", GRADCHECK, ids=[str(i) for i in range(len(GRADCHECK))])
def test_gradcheck(kind, kw, with_hx, packed):
    cygrad.manual_seed(0)
    m = getattr(nn, kind)(2, 3, dtype=cygrad.float64, **kw)
    bf = kw.get("batch_first", False)
    T, B = 3, 3
    r = rng(4)
    x = cygrad.tensor(r.standard_normal((B, T, 2) if bf else (T, B, 2)), requires_grad=True)
    hx = None
    if with_hx:
        D = 2 if m.bidirectional else 1
        Hh = m.proj_size or 3
        h0 = cygrad.tensor(r.standard_normal((m.num_layers * D, B, Hh)), requires_grad=True)
        hx = (h0, cygrad.tensor(r.standard_normal((m.num_layers * D, B, 3)), requires_grad=True)) \
            if kind == "LSTM" else h0
    _gradcheck_module(m, x, hx, packed, bf)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_gradcheck_cells(kind):
    cygrad.manual_seed(0)
    m = getattr(nn, kind)(2, 3, dtype=cygrad.float64)
    r = rng(5)
    x = cygrad.tensor(r.standard_normal((2, 2)), requires_grad=True)
    h = cygrad.tensor(r.standard_normal((2, 3)), requires_grad=True)
    c = cygrad.tensor(r.standard_normal((2, 3)), requires_grad=True)
    ps = [p.detach().clone().requires_grad_(True) for p in m.parameters()]
    names = [n for n, _ in m.named_parameters()]

    def fn(x, h, c, *ps):
        for n, p in zip(names, ps):
            m._parameters[n] = p
        return m(x, (h, c)) if kind == "LSTMCell" else m(x, h)

    assert cygrad.autograd.gradcheck(fn, (x, h, c, *ps))


@pytest.mark.parametrize("kind,kw", [("LSTM", dict(proj_size=2)), ("GRU", dict(bidirectional=True)),
                                     ("RNN", {})])
def test_double_backward(kind, kw):
    """create_graph=True runs the differentiable recomputation: gradgradcheck and torch-free checks."""
    cygrad.manual_seed(0)
    m = getattr(nn, kind)(2, 3, dtype=cygrad.float64, **kw)
    x = cygrad.tensor(rng(6).standard_normal((3, 2, 2)), requires_grad=True)
    assert cygrad.autograd.gradgradcheck(lambda x: m(x)[0], (x,))
    # the create_graph gradient equals the plain one
    out = m(x)[0]
    g1, = cygrad.autograd.grad((out ** 2).sum(), x, create_graph=True)
    g2, = cygrad.autograd.grad((m(x)[0] ** 2).sum(), x)
    assert g1.requires_grad
    assert_close(g1, g2.numpy(), rtol=1e-12, atol=1e-13)


def test_double_backward_vs_torch(torch):
    tm, cm = _pair(torch, "LSTM", np.float64)
    x = rng(1).standard_normal((3, 2, I))
    res = []
    for lib, m in ((torch, tm), (cygrad, cm)):
        xt = lib.tensor(x, requires_grad=True)
        g, = lib.autograd.grad((m(xt)[0] ** 2).sum(), xt, create_graph=True)
        (g ** 2).sum().backward()
        res.append((xt.grad, m.weight_hh_l0.grad))
    for c, t in zip(res[1], res[0]):
        assert_close(c, t)


def test_initial_state_depends_on_input():
    """h0 computed from x: gradients through both paths are counted once (create_graph too)."""
    m = nn.GRU(2, 2, dtype=cygrad.float64)
    x = cygrad.tensor(rng(7).standard_normal((3, 2, 2)), requires_grad=True)

    def fn(x):
        return m(x, x[:1].tanh())[0]

    assert cygrad.autograd.gradcheck(fn, (x,))
    assert cygrad.autograd.gradgradcheck(fn, (x,))


# ---------------------------------------------------------------------------------------------
# NumPy references

def _sig(v):
    return 1 / (1 + np.exp(-v))


def _np_lstm(x, h, c, w_ih, w_hh, b, w_hr=None):
    outs = []
    Hc = w_hh.shape[0] // 4
    for xt in x:
        a = xt @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = _sig(a[:, :Hc]), _sig(a[:, Hc:2 * Hc]), np.tanh(a[:, 2 * Hc:3 * Hc]), _sig(a[:, 3 * Hc:])
        c = f * c + i * g
        h = o * np.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        outs.append(h)
    return np.stack(outs), h, c


def _np_gru(x, h, w_ih, w_hh, b_ih, b_hh):
    outs = []
    Hc = w_hh.shape[0] // 3
    for xt in x:
        gi = xt @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        r = _sig(gi[:, :Hc] + gh[:, :Hc])
        z = _sig(gi[:, Hc:2 * Hc] + gh[:, Hc:2 * Hc])
        n = np.tanh(gi[:, 2 * Hc:] + r * gh[:, 2 * Hc:])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs), h


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("proj", [0, 2])
def test_lstm_vs_numpy(dtype, proj):
    m = nn.LSTM(I, H, proj_size=proj, dtype=_dt(cygrad, dtype))
    r = rng(8)
    x = r.standard_normal((7, 3, I)).astype(dtype)
    h0 = r.standard_normal((1, 3, proj or H)).astype(dtype)
    c0 = r.standard_normal((1, 3, H)).astype(dtype)
    out, (h, c) = m(cygrad.tensor(x), (cygrad.tensor(h0), cygrad.tensor(c0)))
    p = {n: v.detach().numpy().astype(np.float64) for n, v in m.named_parameters()}
    ref = _np_lstm(x.astype(np.float64), h0[0], c0[0], p["weight_ih_l0"], p["weight_hh_l0"],
                   p["bias_ih_l0"] + p["bias_hh_l0"], p.get("weight_hr_l0"))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, e in zip((out, h[0], c[0]), ref):
        np.testing.assert_allclose(a.detach().numpy(), e, **tol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gru_vs_numpy(dtype):
    m = nn.GRU(I, H, dtype=_dt(cygrad, dtype))
    r = rng(9)
    x = r.standard_normal((7, 3, I)).astype(dtype)
    h0 = r.standard_normal((1, 3, H)).astype(dtype)
    out, h = m(cygrad.tensor(x), cygrad.tensor(h0))
    p = {n: v.detach().numpy().astype(np.float64) for n, v in m.named_parameters()}
    ref = _np_gru(x.astype(np.float64), h0[0], p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                  p["bias_hh_l0"])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out.detach().numpy(), ref[0], **tol)
    np.testing.assert_allclose(h[0].detach().numpy(), ref[1], **tol)


@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_packed_vs_numpy(reverse):
    """recurrent_forward on a packed batch: each sequence alone through the NumPy reference."""
    lengths = [6, 4, 4, 1]
    Hc, In = 70, 3                    # two chunks of hidden units
    r = rng(10)
    w_ih = r.standard_normal((4 * Hc, In)) * 0.3
    w_hh = r.standard_normal((4 * Hc, Hc)) * 0.1
    b = r.standard_normal(4 * Hc) * 0.1
    seqs = [r.standard_normal((n, In)) for n in lengths]
    h0 = r.standard_normal((4, Hc))
    c0 = r.standard_normal((4, Hc))
    bs = np.array([sum(n > t for n in lengths) for t in range(6)], np.int64)
    plan = make_plan(bs, reverse)
    x = np.concatenate([np.stack([s[t] for s, n in zip(seqs, lengths) if n > t]) for t in range(6)])
    N, B = x.shape[0], 4
    gates = x @ w_ih.T + b
    hbuf = np.empty((N + B, Hc))
    hbuf[plan.h0_off:plan.h0_off + B] = h0
    cbuf = np.empty((N + B, Hc))
    cbuf[plan.h0_off:plan.h0_off + B] = c0
    tc = np.empty((N, Hc))
    e2, e1 = np.zeros((0, 0)), np.zeros(0)
    K.recurrent_forward(2, gates, hbuf, cbuf, tc, e2, e2, w_hh, e1, e2, plan.bs, plan.prev, plan.out_off, reverse)
    out = hbuf[plan.out_off:plan.out_off + N]
    for k, (s, n) in enumerate(zip(seqs, lengths)):
        seq = s[::-1] if reverse else s
        ref_out, ref_h, ref_c = _np_lstm(seq[:, None], h0[k:k + 1], c0[k:k + 1], w_ih, w_hh, b)
        ref_out = ref_out[:, 0][::-1] if reverse else ref_out[:, 0]
        rows = plan.off[:n] + k
        np.testing.assert_allclose(out[rows], ref_out, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(hbuf[plan.out_off + plan.final[k]], ref_h[0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(cbuf[plan.out_off + plan.final[k]], ref_c[0], rtol=1e-12, atol=1e-13)


def test_kernel_rejects_bad_layouts():
    """The kernels validate every shape and index (they never see an unchecked one)."""
    e2, e1 = np.zeros((0, 0)), np.zeros(0)
    gates, hbuf, w_hh = np.zeros((4, 3)), np.zeros((6, 3)), np.zeros((3, 3))
    ok = (np.array([2, 2], np.int64), np.arange(4, dtype=np.int64))
    K.recurrent_forward(0, gates, hbuf, e2, e2, e2, e2, w_hh, e1, e2, *ok, 2, False)
    bad = [
        ((np.array([2, 3], np.int64), ok[1]), "non-increasing"),
        ((np.array([2, 1], np.int64), ok[1]), "sum to"),
        ((ok[0], np.array([0, 1, 2, 6], np.int64)), "out of range"),
        ((ok[0], np.array([0, 1, -1, 2], np.int64)), "out of range"),
        ((np.array([], np.int64), ok[1]), "at least one step"),
    ]
    for (bs, prev), msg in bad:
        with pytest.raises(ValueError, match=msg):
            K.recurrent_forward(0, gates, hbuf, e2, e2, e2, e2, w_hh, e1, e2, bs, prev, 2, False)
    with pytest.raises(ValueError, match="w_hh"):
        K.recurrent_forward(0, gates, hbuf, e2, e2, e2, e2, np.zeros((2, 3)), e1, e2, *ok, 2, False)
    with pytest.raises(ValueError, match="cbuf"):
        K.recurrent_forward(2, np.zeros((4, 12)), hbuf, e2, e2, e2, e2, np.zeros((12, 3)), e1, e2, *ok, 2, False)
    with pytest.raises(ValueError, match="out_off"):
        K.recurrent_forward(0, gates, hbuf, e2, e2, e2, e2, w_hh, e1, e2, *ok, 1, False)
    with pytest.raises(ValueError, match="dout"):
        K.recurrent_backward(0, gates, hbuf, e2, e2, e2, w_hh, e2, np.zeros((3, 3)), np.zeros((2, 3)), e2,
                             np.zeros((4, 3)), e2, e2, *ok, 2, False)
    with pytest.raises(ValueError, match="inner dimensions"):
        K.matmul_panels(np.zeros((3, 4)), np.zeros((5, 2)), np.zeros((3, 2)), False, False)


# ---------------------------------------------------------------------------------------------
# Threads

@pytest.mark.parametrize("kind,kw", [("LSTM", dict(bidirectional=True)), ("LSTM", dict(proj_size=40)),
                                     ("GRU", {}), ("RNN", {})])
def test_threads_identical(restore_threads, kind, kw):
    """Fixed chunks and panels: 1 and 2 threads give bitwise identical results."""
    cygrad.manual_seed(0)
    m = getattr(nn, kind)(8, 96, **kw)
    x = cygrad.tensor(rng(11).standard_normal((12, 24, 8)).astype(np.float32))
    res = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        m.zero_grad()
        xt = x.clone().requires_grad_(True)
        out, h = m(xt)
        (out * out).sum().backward()
        res.append([out.detach().numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# nn.utils.rnn vs torch

def _to_torch(torch, t):
    return torch.tensor(t.detach().numpy())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted", [([4, 3, 3, 1], True), ([2, 4, 1, 3], False),
                                                    ([2, 2, 2, 2], True)])
def test_pack_pad_vs_torch(torch, batch_first, lengths, enforce_sorted):
    x = rng(12).standard_normal((4, 4, 2) if batch_first else (4, 4, 2))
    res = []
    for lib in (torch, cygrad):
        rn = lib.nn.utils.rnn
        xt = lib.tensor(x, requires_grad=True)
        p = rn.pack_padded_sequence(xt, lib.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted)
        padded, lens = rn.pad_packed_sequence(p, batch_first=batch_first, padding_value=-1.5, total_length=6)
        (padded * lib.tensor(np.arange(padded.numel()).reshape(tuple(padded.shape)) % 5)).sum().backward()
        res.append((p, padded, lens, xt.grad))
    (tp, tpad, tlens, tg), (cp, cpad, clens, cg) = res
    for a, b in ((cp.data, tp.data), (cp.batch_sizes, tp.batch_sizes), (cpad, tpad), (clens, tlens), (cg, tg)):
        assert_close(a, b)
    if enforce_sorted:
        assert cp.sorted_indices is None and cp.unsorted_indices is None
    else:
        assert_close(cp.sorted_indices, tp.sorted_indices)
        assert_close(cp.unsorted_indices, tp.unsorted_indices)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_vs_torch(torch, batch_first, padding_side):
    r = rng(13)
    seqs = [r.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    res = []
    for lib in (torch, cygrad):
        ts = [lib.tensor(s, requires_grad=True) for s in seqs]
        out = lib.nn.utils.rnn.pad_sequence(ts, batch_first=batch_first, padding_value=2.0,
                                            padding_side=padding_side)
        (out * lib.tensor(np.arange(out.numel()).reshape(tuple(out.shape)) % 3)).sum().backward()
        res.append([out] + [t.grad for t in ts])
    for c, t in zip(res[1], res[0]):
        assert_close(c, t)


def test_pack_sequence_unpack_vs_torch(torch):
    seqs = [[1, 2], [3, 4, 5], [6]]
    for enforce in (False,):
        tp = torch.nn.utils.rnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=enforce)
        cp = crnn.pack_sequence([cygrad.tensor(s) for s in seqs], enforce_sorted=enforce)
        assert_close(cp.data, tp.data)
        assert_close(cp.batch_sizes, tp.batch_sizes)
        assert [u.tolist() for u in crnn.unpack_sequence(cp)] == seqs
    p = crnn.pack_sequence([cygrad.tensor(s) for s in [[1, 2, 3], [4, 5], [6]]])
    assert repr(p) == repr(torch.nn.utils.rnn.pack_sequence([torch.tensor(s) for s in [[1, 2, 3], [4, 5], [6]]]))
    padded, lens = crnn.pad_packed_sequence(p)
    assert [u.tolist() for u in crnn.unpad_sequence(padded, lens)] == [[1, 2, 3], [4, 5], [6]]
    assert_close(crnn.invert_permutation(cygrad.tensor([2, 0, 3, 1])),
                 torch.nn.utils.rnn.invert_permutation(torch.tensor([2, 0, 3, 1])))
    q = p.to(cygrad.float64)
    assert q.data.dtype == cygrad.float64 and p.double().data.dtype == cygrad.float64
    assert p.to(cygrad.int64) is p and not p.is_cuda and not p.is_pinned()
    data, bs, si, ui = p
    assert data is p.data and bs is p.batch_sizes and si is None and ui is None
    assert crnn.PackedSequence((p.data, p.batch_sizes)).batch_sizes is p.batch_sizes


def test_packed_sequence_of_module_output():
    m = nn.LSTM(I, H)
    seqs = [cygrad.randn(n, I) for n in (2, 5, 3)]
    out, (h, c) = m(crnn.pack_sequence(seqs, enforce_sorted=False))
    assert isinstance(out, crnn.PackedSequence)
    assert out.batch_sizes.tolist() == [3, 3, 2, 1, 1]
    padded, lens = crnn.pad_packed_sequence(out, batch_first=True)
    assert lens.tolist() == [2, 5, 3]
    for k, s in enumerate(seqs):   # each sequence alone gives the same output and final state
        o, (hk, ck) = m(s)
        assert_close(padded[k, :s.shape[0]], o.detach().numpy(), **F32_TOL)
        assert_close(h[0, k], hk[0].detach().numpy(), **F32_TOL)
        assert_close(c[0, k], ck[0].detach().numpy(), **F32_TOL)


# ---------------------------------------------------------------------------------------------
# Bad input: torch's error types and messages

def _raises(exc, match, fn):
    with pytest.raises(exc, match=match):
        fn()


def test_bad_input_layers(torch):
    for lib in (torch, cygrad):
        lstm = lib.nn.LSTM(10, 20)
        gru = lib.nn.GRU(10, 20)
        rnn = lib.nn.RNN(10, 20)
        x = lib.randn(5, 3, 10)
        _raises(RuntimeError, r"input.size\(-1\) must be equal to input_size. Expected 10, got 11",
                lambda: lstm(lib.randn(5, 3, 11)))
        _raises(RuntimeError, r"Expected hidden\[0\] size \(1, 3, 20\), got \[1, 3, 21\]",
                lambda: lstm(x, (lib.randn(1, 3, 21), lib.randn(1, 3, 20))))
        _raises(RuntimeError, r"Expected hidden\[1\] size \(1, 3, 20\), got \[1, 4, 20\]",
                lambda: lstm(x, (lib.randn(1, 3, 20), lib.randn(1, 4, 20))))
        _raises(RuntimeError, r"Expected hidden size \(1, 3, 20\), got \[1, 3, 21\]",
                lambda: gru(x, lib.randn(1, 3, 21)))
        _raises(RuntimeError, r"Expected hidden size \(1, 3, 20\), got \[2, 3, 20\]",
                lambda: rnn(x, lib.randn(2, 3, 20)))
        _raises(ValueError, "LSTM: Expected input to be 2D or 3D, got 4D instead", lambda: lstm(lib.randn(5, 3, 10, 1)))
        _raises(ValueError, "GRU: Expected input to be 2D or 3D, got 1D instead", lambda: gru(lib.randn(10)))
        _raises(ValueError, "RNN: Expected input to be 2D or 3D, got 4D tensor instead",
                lambda: rnn(lib.randn(5, 3, 10, 2)))
        _raises(ValueError, r"RNN input dtype \(\w+.float64\) does not match weight dtype \(\w+.float32\)",
                lambda: lstm(x.double()))
        _raises(ValueError, r"RNN input dtype \(\w+.int64\) does not match weight dtype",
                lambda: gru(lib.randint(0, 3, (5, 3, 10))))
        _raises(RuntimeError, "For batched 3-D input, hx should also be 3-D but got 2-D tensor",
                lambda: gru(x, lib.randn(3, 20)))
        _raises(RuntimeError, "For unbatched 2-D input, hx should also be 2-D but got 3-D tensor",
                lambda: gru(lib.randn(5, 10), lib.randn(1, 3, 20)))
        _raises(RuntimeError, r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 3-D\) tensors",
                lambda: lstm(x, (lib.randn(3, 20), lib.randn(1, 3, 20))))
        _raises(RuntimeError, "Expected sequence length to be larger than 0 in RNN", lambda: lstm(lib.randn(0, 3, 10)))
        out, (h, c) = lstm(lib.randn(5, 0, 10))   # an empty batch is fine
        assert tuple(out.shape) == (5, 0, 20) and tuple(h.shape) == (1, 0, 20)
    with pytest.raises(RuntimeError, match="dtype"):
        nn.GRU(10, 20)(cygrad.randn(5, 3, 10), cygrad.randn(1, 3, 20, dtype=cygrad.float64))


def test_bad_input_cells(torch):
    for lib in (torch, cygrad):
        lc, gc, rc = lib.nn.LSTMCell(10, 20), lib.nn.GRUCell(10, 20), lib.nn.RNNCell(10, 20)
        x = lib.randn(3, 10)
        _raises(RuntimeError, "input has inconsistent input_size: got 11 expected 10", lambda: lc(lib.randn(3, 11)))
        _raises(RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20",
                lambda: lc(x, (lib.randn(3, 21), lib.randn(3, 20))))
        _raises(RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 4",
                lambda: lc(x, (lib.randn(4, 20), lib.randn(3, 20))))
        _raises(RuntimeError, "hidden1 has inconsistent hidden_size: got 21, expected 20",
                lambda: lc(x, (lib.randn(3, 20), lib.randn(3, 21))))
        _raises(RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 20", lambda: gc(x, lib.randn(20)))
        _raises(RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20",
                lambda: rc(x, lib.randn(3, 21)))
        _raises(RuntimeError, "mat1 and mat2 must have the same dtype, but got Double and Float", lambda: gc(x.double()))
        _raises(RuntimeError, "mat1 and mat2 must have the same dtype, but got Long and Float",
                lambda: rc(lib.randint(0, 2, (3, 10))))
        _raises(ValueError, "GRUCell: Expected input to be 1D or 2D, got 3D instead", lambda: gc(lib.randn(1, 3, 10)))
        _raises(ValueError, "RNNCell: Expected hidden to be 1D or 2D, got 3D instead",
                lambda: rc(x, lib.randn(1, 3, 20)))
        _raises(ValueError, r"LSTMCell: Expected hx\[1\] to be 1D or 2D, got 3D instead",
                lambda: lc(x, (lib.randn(3, 20), lib.randn(1, 3, 20))))
        _raises(RuntimeError, "Unknown nonlinearity: foo", lambda: lib.nn.RNNCell(10, 20, nonlinearity="foo")(x))


def test_bad_constructor_arguments(torch):
    for lib in (torch, cygrad):
        _raises(ValueError, "Unknown nonlinearity 'foo'. Select from 'tanh' or 'relu'.",
                lambda: lib.nn.RNN(10, 20, nonlinearity="foo"))
        _raises(ValueError, "proj_size argument is only supported for LSTM, not RNN or GRU",
                lambda: lib.nn.GRU(10, 20, proj_size=3))
        _raises(ValueError, "proj_size has to be smaller than hidden_size", lambda: lib.nn.LSTM(10, 20, proj_size=30))
        _raises(ValueError, "proj_size should be a positive integer or zero", lambda: lib.nn.LSTM(10, 20, proj_size=-1))
        _raises(ValueError, "hidden_size must be greater than zero", lambda: lib.nn.LSTM(10, 0))
        _raises(ValueError, "input_size must be greater than zero", lambda: lib.nn.LSTM(0, 10))
        _raises(ValueError, "num_layers must be greater than zero", lambda: lib.nn.LSTM(10, 10, 0))
        _raises(ValueError, "dropout should be a number in range", lambda: lib.nn.LSTM(10, 10, dropout=1.5))
        _raises(TypeError, "bias should be of type bool, got: int", lambda: lib.nn.LSTM(10, 10, bias=1))
        _raises(TypeError, "input_size should be of type int, got: float", lambda: lib.nn.LSTM(10.0, 10))
        with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
            lib.nn.GRU(10, 10, dropout=0.5)


def test_bad_packing(torch):
    for lib in (torch, cygrad):
        rn = lib.nn.utils.rnn
        x = lib.randn(4, 3)
        _raises(RuntimeError, "must be sorted in decreasing order", lambda: rn.pack_padded_sequence(x, [4, 2, 3]))
        _raises(RuntimeError, r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 \(batch_size=3\)",
                lambda: rn.pack_padded_sequence(x, [4, 3]))
        _raises(RuntimeError, "Length of all samples has to be greater than 0",
                lambda: rn.pack_padded_sequence(x, [4, 2, 0]))
        _raises(RuntimeError, "'lengths' argument should be a 1D CPU int64 tensor, but got 2D",
                lambda: rn.pack_padded_sequence(x, lib.tensor([[4, 2, 1]])))
        p = rn.pack_padded_sequence(x, [4, 2, 1])
        _raises(ValueError, "Expected total_length to be at least the length of the longest sequence",
                lambda: rn.pad_packed_sequence(p, total_length=2))
        _raises(RuntimeError, "received an empty list of sequences", lambda: rn.pad_sequence([]))
        _raises(RuntimeError, "Expected padding_side to be one of left or right, but got up.",
                lambda: rn.pad_sequence([lib.ones(2)], padding_side="up"))
        _raises(RuntimeError, "Expected iterable for input sequences", lambda: rn.pad_sequence(5))
    # torch reads past the input here; cygrad refuses
    _raises(RuntimeError, "exceeds the padded length 4", lambda: crnn.pack_padded_sequence(cygrad.randn(4, 3), [5, 2, 1]))
    _raises(RuntimeError, r"sequence 1 has size \[1, 3\]",
            lambda: crnn.pad_sequence([cygrad.ones(3, 2), cygrad.ones(1, 3)]))
    m = nn.GRU(3, 4)
    bad = crnn.PackedSequence(cygrad.randn(5, 3), cygrad.tensor([2, 3]))
    _raises(RuntimeError, "non-increasing", lambda: m(bad))
    bad = crnn.PackedSequence(cygrad.randn(6, 3), cygrad.tensor([3, 2]))
    _raises(RuntimeError, "batch_sizes sum to 5 but the packed data has 6 rows", lambda: m(bad))
    bad = crnn.PackedSequence(cygrad.randn(5, 3, 1), cygrad.tensor([3, 2]))
    _raises(RuntimeError, "input must have 2 dimensions, got 3", lambda: m(bad))
