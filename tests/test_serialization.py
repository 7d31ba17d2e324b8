"""cygrad.save / cygrad.load: round trips, PyTorch checkpoints (torch as the oracle), safety
(crafted pickles must raise and run nothing), corrupt files and atomic writes."""
import io
import json
import os
import pathlib
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import cygrad
from cygrad import nn
from cygrad.serialization import CheckpointError, UnsafeCheckpointError
import cygrad.serialization as ser

ALL_DTYPES = [cygrad.bool, cygrad.uint8, cygrad.int8, cygrad.int16, cygrad.int32, cygrad.int64,
              cygrad.float16, cygrad.float32, cygrad.float64]


def roundtrip(obj):
    buf = io.BytesIO()
    cygrad.save(obj, buf)
    buf.seek(0)
    return cygrad.load(buf)


def sample(dtype, shape, seed=0):
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape) * 50
    if dtype == cygrad.bool:
        a = a > 0
    return cygrad.tensor(a.astype(dtype.np))


def assert_same_tensor(a, b):
    assert isinstance(a, cygrad.Tensor)
    assert a.dtype == b.dtype
    assert tuple(a.shape) == tuple(b.shape)
    assert a.requires_grad == b.requires_grad
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# ------------------------------------------------------------------------------------------------
# round trips in cygrad's format
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
def test_roundtrip_dtypes_shapes(dtype, shape):
    t = sample(dtype, shape)
    u = roundtrip(t)
    assert type(u) is cygrad.Tensor
    assert_same_tensor(u, t)
    assert u.is_contiguous()


def test_roundtrip_special_floats():
    t = cygrad.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45], dtype=cygrad.float32)
    u = roundtrip(t)
    np.testing.assert_array_equal(u.numpy(), t.numpy())
    assert np.signbit(u.numpy()[3])


@pytest.mark.parametrize("make", [
    lambda x: x.t(),
    lambda x: x[:, 1::2],
    lambda x: x[1],
    lambda x: x.unsqueeze(0).expand(3, 4, 6),
    lambda x: x.flip(0),
    lambda x: x.permute(1, 0)[::2],
], ids=["transpose", "strided-slice", "offset-row", "expand", "flip", "permute-step"])
def test_roundtrip_non_contiguous(make):
    x = cygrad.arange(24, dtype=cygrad.float64).reshape(4, 6)
    v = make(x)
    u = roundtrip(v)
    assert_same_tensor(u, v)
    assert u.is_contiguous()


def test_roundtrip_requires_grad_and_non_leaf():
    a = cygrad.randn(3, requires_grad=True)
    b = a * 2  # non-leaf: saved as a leaf that requires grad, like torch
    out = roundtrip({"a": a, "b": b, "c": a.detach()})
    assert out["a"].requires_grad and out["a"].is_leaf
    assert out["b"].requires_grad and out["b"].is_leaf and out["b"].grad_fn is None
    assert not out["c"].requires_grad
    np.testing.assert_array_equal(out["b"].detach().numpy(), b.detach().numpy())


def test_gradient_is_not_saved():
    a = cygrad.randn(3, requires_grad=True)
    a.sum().backward()
    assert roundtrip(a).grad is None


def test_roundtrip_parameter():
    p = nn.Parameter(cygrad.randn(2, 3))
    q = nn.Parameter(cygrad.randn(2), requires_grad=False)
    out = roundtrip([p, q])
    assert type(out[0]) is nn.Parameter and out[0].requires_grad
    assert type(out[1]) is nn.Parameter and not out[1].requires_grad
    assert_same_tensor(out[0], p)


def test_roundtrip_containers_and_scalars():
    t = cygrad.ones(2)
    obj = OrderedDict([
        ("list", [1, 2.5, "x", None, True, False]),
        ("tuple", (1, (2, 3), [])),
        ("int_keys", {0: t, 1: {"n": -(2 ** 80)}, -5: "neg"}),
        ("mixed_keys", {1: "int", "1": "str", True: "bool?", None: 0, 2.5: "float", (1, "a"): "tuple"}),
        ("floats", [float("nan"), float("inf"), -float("inf"), 1e300, -0.0]),
        ("dtype", cygrad.float16),
        ("dtypes", [cygrad.int64, cygrad.bool]),
        ("device", cygrad.device("cpu")),
        ("size", cygrad.Size([2, 3])),
        ("bytes", b"\x00\xffab"),
        ("unicode", "\u00e9\u4e2d\U0001f600"),
        ("empty", {}),
        ("nested", OrderedDict(a=OrderedDict(b=[{"c": (t,)}]))),
    ])
    out = roundtrip(obj)
    assert type(out) is OrderedDict
    assert list(out) == list(obj)
    assert out["list"] == obj["list"] and type(out["list"][4]) is bool and type(out["list"][0]) is int
    assert out["tuple"] == (1, (2, 3), []) and type(out["tuple"]) is tuple and type(out["tuple"][2]) is list
    assert type(out["int_keys"]) is dict and list(out["int_keys"]) == [0, 1, -5]
    assert out["int_keys"][1] == {"n": -(2 ** 80)}
    assert list(out["mixed_keys"].items()) == list(obj["mixed_keys"].items())
    f = out["floats"]
    assert np.isnan(f[0]) and f[1:4] == [float("inf"), -float("inf"), 1e300] and np.signbit(f[4])
    assert out["dtype"] is cygrad.float16 and out["dtypes"] == [cygrad.int64, cygrad.bool]
    assert out["device"] == cygrad.device("cpu")
    assert type(out["size"]) is cygrad.Size and out["size"] == (2, 3)
    assert out["bytes"] == b"\x00\xffab" and out["unicode"] == obj["unicode"] and out["empty"] == {}
    assert type(out["nested"]["a"]) is OrderedDict
    assert_same_tensor(out["nested"]["a"]["b"][0]["c"][0], t)


def test_same_tensor_saved_once_views_copied():
    x = cygrad.arange(6.0)
    v = x[2:]
    out = roundtrip({"a": x, "b": x, "v": v})
    assert out["a"] is out["b"]          # one object in, one object out
    assert out["v"] is not out["a"]      # a view is saved as a separate copy
    out["a"][3] = 100.0
    assert float(out["v"][1]) == 3.0


def test_loaded_tensor_is_independent():
    t = cygrad.arange(4.0)
    buf = io.BytesIO()
    cygrad.save({"t": t}, buf)
    t[0] = 42.0                          # mutate the original after saving
    buf.seek(0)
    a = cygrad.load(buf)["t"]
    buf.seek(0)
    b = cygrad.load(buf)["t"]
    assert float(a[0]) == 0.0
    a.add_(1)                            # loaded tensors are writable and independent
    assert float(b[0]) == 0.0 and float(t[1]) == 1.0
    assert a.numpy().flags.writeable


def test_deterministic_bytes():
    obj = {"w": cygrad.arange(5.0), "s": [1, "x"]}
    b1, b2 = io.BytesIO(), io.BytesIO()
    cygrad.save(obj, b1)
    cygrad.save(obj, b2)
    assert b1.getvalue() == b2.getvalue()


def test_file_layout():
    buf = io.BytesIO()
    cygrad.save({"a": cygrad.ones(2, 3), "b": 1}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        assert zf.namelist() == ["format", "manifest.json", "tensors/0.npy"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("format") == b"cygrad-checkpoint\nversion 1\n"
        m = json.loads(zf.read("manifest.json"))
        assert m["tensors"] == [{"dtype": "float32", "shape": [2, 3], "requires_grad": False, "parameter": False}]
        with zf.open("tensors/0.npy") as fh:
            np.testing.assert_array_equal(np.lib.format.read_array(fh, allow_pickle=False), np.ones((2, 3), "f4"))


# ------------------------------------------------------------------------------------------------
# paths and file objects
# ------------------------------------------------------------------------------------------------

def test_paths_str_pathlib(tmp_path):
    t = cygrad.randn(3, 2)
    p = pathlib.Path(tmp_path) / "w.pt"
    cygrad.save(t, p)
    assert_same_tensor(cygrad.load(p), t)
    assert_same_tensor(cygrad.load(str(p)), t)
    cygrad.save([t], str(p))
    assert_same_tensor(cygrad.load(p)[0], t)
    assert sorted(os.listdir(tmp_path)) == ["w.pt"]


def test_file_objects(tmp_path):
    t = cygrad.randn(4)
    p = tmp_path / "w.pt"
    with open(p, "wb") as fh:
        cygrad.save(t, fh)
    with open(p, "rb") as fh:
        assert_same_tensor(cygrad.load(fh), t)

    class Stream:  # readable but not seekable
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def read(self, n=-1):
            return self._b.read(n)

        def seekable(self):
            return False

    assert_same_tensor(cygrad.load(Stream(p.read_bytes())), t)


def test_save_via_symlink_keeps_link(tmp_path):
    real = tmp_path / "real.pt"
    link = tmp_path / "link.pt"
    cygrad.save(cygrad.zeros(1), real)
    link.symlink_to(real)
    cygrad.save(cygrad.ones(1), link)
    assert link.is_symlink()
    assert float(cygrad.load(real)[0]) == 1.0


def test_bad_f_arguments():
    with pytest.raises(TypeError, match="path or a writable"):
        cygrad.save(cygrad.zeros(1), 123)
    with pytest.raises(TypeError, match="path or a readable"):
        cygrad.load(123)
    with pytest.raises(FileNotFoundError):
        cygrad.load("/nonexistent/dir/x.pt")


# ------------------------------------------------------------------------------------------------
# save errors and atomic writes
# ------------------------------------------------------------------------------------------------

def test_unsupported_type_names_type_and_path():
    obj = {"state": {0: {"foo": [1, 2, {3}]}}}
    with pytest.raises(TypeError, match=r"type set \(at obj\['state'\]\[0\]\['foo'\]\[2\]\)"):
        cygrad.save(obj, io.BytesIO())
    with pytest.raises(TypeError, match=r"numpy.ndarray \(at obj\[1\]\)"):
        cygrad.save([cygrad.zeros(1), np.zeros(2)], io.BytesIO())
    with pytest.raises(TypeError, match="dict key of type"):
        cygrad.save({cygrad.zeros(1): 1}, io.BytesIO())
    with pytest.raises(TypeError, match="function"):
        cygrad.save({"f": lambda: 0}, io.BytesIO())
    with pytest.raises(TypeError, match="Linear"):
        cygrad.save(nn.Linear(2, 2), io.BytesIO())


def test_unsupported_type_writes_nothing():
    buf = io.BytesIO()
    with pytest.raises(TypeError):
        cygrad.save([cygrad.zeros(3), object()], buf)
    assert buf.getvalue() == b""


def test_recursive_structure_rejected():
    a = [1]
    a.append(a)
    with pytest.raises(ValueError, match="recursive"):
        cygrad.save(a, io.BytesIO())
    shared = [1, 2]
    assert roundtrip([shared, shared]) == [[1, 2], [1, 2]]  # shared but not recursive is fine


def test_save_compat_arguments():
    buf = io.BytesIO()
    cygrad.save(cygrad.zeros(1), buf, pickle_protocol=4)
    with pytest.raises(TypeError, match="pickle_module"):
        cygrad.save(cygrad.zeros(1), io.BytesIO(), pickle_module=pickle)
    with pytest.raises(ValueError, match="legacy"):
        cygrad.save(cygrad.zeros(1), io.BytesIO(), _use_new_zipfile_serialization=False)


def _old_file(tmp_path):
    p = tmp_path / "ckpt.pt"
    cygrad.save({"old": cygrad.arange(3.0)}, p)
    return p, p.read_bytes()


def test_atomic_write_failure_midway(tmp_path, monkeypatch):
    p, old = _old_file(tmp_path)
    calls = []
    real = ser._write_tensor

    def flaky(zf, name, array):
        if calls:
            raise OSError("disk full (simulated)")
        calls.append(name)
        real(zf, name, array)

    monkeypatch.setattr(ser, "_write_tensor", flaky)
    with pytest.raises(OSError, match="simulated"):
        cygrad.save({"a": cygrad.zeros(1000), "b": cygrad.ones(1000)}, p)
    assert calls == ["tensors/0.npy"]          # it did fail halfway, after writing a tensor
    assert p.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]
    monkeypatch.undo()
    assert float(cygrad.load(p)["old"][2]) == 2.0


def test_atomic_write_keyboard_interrupt(tmp_path, monkeypatch):
    p, old = _old_file(tmp_path)

    def interrupt(zf, name, array):
        raise KeyboardInterrupt

    monkeypatch.setattr(ser, "_write_tensor", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cygrad.save(cygrad.zeros(2), p)
    assert p.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_atomic_write_unsupported_object(tmp_path):
    p, old = _old_file(tmp_path)
    with pytest.raises(TypeError, match=r"obj\['x'\]\[1\]\['deep'\]"):
        cygrad.save({"t": cygrad.zeros(5), "x": [1, {"deep": {1, 2}}]}, p)
    assert p.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_atomic_write_new_file_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ser, "_write_tensor", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        cygrad.save(cygrad.zeros(1), tmp_path / "new.pt")
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    p, old = _old_file(tmp_path)
    os.chmod(p, 0o640)
    cygrad.save({"new": 1}, p)
    assert cygrad.load(p) == {"new": 1}
    assert (os.stat(p).st_mode & 0o777) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_atomic_write_uses_fsync_and_replace(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(ser.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(ser.os, "replace", lambda a, b: (events.append(("replace", os.path.dirname(a))),
                                                         real_replace(a, b))[1])
    cygrad.save(cygrad.zeros(1), tmp_path / "x.pt")
    assert events[0] == "fsync"
    assert ("replace", str(tmp_path)) in events   # the temporary file is in the target's directory


# ------------------------------------------------------------------------------------------------
# cygrad nn / optim through save and load
# ------------------------------------------------------------------------------------------------

def _cg_model():
    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_module_state_dict_roundtrip(tmp_path):
    cygrad.manual_seed(0)
    m1, m2 = _cg_model(), _cg_model()
    m1.register_buffer("counter", cygrad.tensor(7))
    m2.register_buffer("counter", cygrad.tensor(0))
    cygrad.save(m1.state_dict(), tmp_path / "m.pt")
    sd = cygrad.load(tmp_path / "m.pt")
    assert type(sd) is OrderedDict and list(sd) == list(m1.state_dict())
    m2.load_state_dict(sd)
    idx = cygrad.tensor([[1, 2], [3, 9]])
    np.testing.assert_array_equal(m2(idx).detach().numpy(), m1(idx).detach().numpy())
    assert int(m2.counter) == 7


@pytest.mark.parametrize("make_opt", [
    lambda ps: cygrad.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: cygrad.optim.Adam(ps, lr=0.01),
    lambda ps: cygrad.optim.AdamW(ps, lr=0.01, amsgrad=True),
], ids=["sgd-momentum", "adam", "adamw-amsgrad"])
def test_optimizer_state_dict_roundtrip(make_opt):
    cygrad.manual_seed(0)
    x, y = cygrad.randn(8, 3), cygrad.randn(8, 2)

    def train(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()

    m1 = nn.Linear(3, 2)
    o1 = make_opt(m1.parameters())
    train(m1, o1, 3)
    ckpt = roundtrip({"model": m1.state_dict(), "optim": o1.state_dict()})
    sd = ckpt["optim"]
    assert sorted(sd["state"]) == [0, 1] and all(type(k) is int for k in sd["state"])
    assert sd["param_groups"][0]["params"] == [0, 1]
    m2 = nn.Linear(3, 2)
    o2 = make_opt(m2.parameters())
    m2.load_state_dict(ckpt["model"])
    o2.load_state_dict(sd)
    train(m1, o1, 2)
    train(m2, o2, 2)
    np.testing.assert_array_equal(m2.weight.detach().numpy(), m1.weight.detach().numpy())
    np.testing.assert_array_equal(m2.bias.detach().numpy(), m1.bias.detach().numpy())


# ------------------------------------------------------------------------------------------------
# PyTorch checkpoints (torch is the oracle; loading itself does not need torch)
# ------------------------------------------------------------------------------------------------

def _torch_bytes(torch, obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def _load_bytes(b, **kw):
    return cygrad.load(io.BytesIO(b), **kw)


def _assert_matches_torch(c, t):
    assert isinstance(c, cygrad.Tensor)
    assert c.dtype.name == str(t.dtype).replace("torch.", "")
    assert tuple(c.shape) == tuple(t.shape)
    assert c.requires_grad == t.requires_grad
    np.testing.assert_array_equal(c.detach().numpy(), t.detach().numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_model_state_dict_into_cygrad_model(torch, tmp_path, dtype):
    torch.manual_seed(0)
    tdt, cdt = getattr(torch, dtype), getattr(cygrad, dtype)

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
            self.register_buffer("calls", torch.tensor(5, dtype=torch.int64))
            self.register_buffer("mask", torch.tensor([True, False, True]))

        def forward(self, idx):
            return self.body(self.emb(idx)) * self.mask

    class CNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
            self.register_buffer("calls", cygrad.tensor(0, dtype=cygrad.int64))
            self.register_buffer("mask", cygrad.tensor([False, False, False]))

        def forward(self, idx):
            return self.body(self.emb(idx)) * self.mask

    tm = TNet().to(tdt)
    torch.save(tm.state_dict(), tmp_path / "w.pt")
    sd = cygrad.load(tmp_path / "w.pt")
    tsd = tm.state_dict()
    assert type(sd) is OrderedDict and list(sd) == list(tsd)
    for k in tsd:
        assert type(sd[k]) is cygrad.Tensor  # torch state_dicts hold plain tensors
        _assert_matches_torch(sd[k], tsd[k])
    cm = CNet().to(cdt)
    cm.load_state_dict(sd)
    idx = [[1, 2, 3], [9, 0, 4]]
    expect = tm(torch.tensor(idx)).detach().numpy()
    got = cm(cygrad.tensor(idx)).detach().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-6 if dtype == "float32" else 1e-12, atol=1e-7)
    assert int(cm.calls) == 5


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_torch_optimizer_state_dict(torch, name):
    torch.manual_seed(0)
    kw = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    tm = torch.nn.Linear(3, 2)
    to = getattr(torch.optim, name)(tm.parameters(), **kw)

    def ttrain(n):
        for _ in range(n):
            to.zero_grad()
            ((tm(x) - y) ** 2).mean().backward()
            to.step()

    ttrain(3)
    blob = _torch_bytes(torch, {"model": tm.state_dict(), "optim": to.state_dict()})
    ckpt = _load_bytes(blob)
    sd, tsd = ckpt["optim"], to.state_dict()
    assert sd["param_groups"] == tsd["param_groups"]     # floats, bools, None, tuples (betas), int ids
    assert sorted(sd["state"]) == [0, 1]
    for i in (0, 1):
        assert list(sd["state"][i]) == list(tsd["state"][i])
        for k, v in tsd["state"][i].items():
            _assert_matches_torch(sd["state"][i][k], v)
    if name == "Adam":
        step = sd["state"][0]["step"]
        assert step.dtype == cygrad.float32 and step.dim() == 0 and float(step) == 3.0

    cm = nn.Linear(3, 2)
    co = getattr(cygrad.optim, name)(cm.parameters(), **kw)
    cm.load_state_dict(ckpt["model"])
    co.load_state_dict(sd)
    cx, cy = cygrad.tensor(x.numpy()), cygrad.tensor(y.numpy())
    for _ in range(2):
        co.zero_grad()
        ((cm(cx) - cy) ** 2).mean().backward()
        co.step()
    ttrain(2)
    np.testing.assert_allclose(cm.weight.detach().numpy(), tm.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cm.bias.detach().numpy(), tm.bias.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
                                   "float64"])
@pytest.mark.parametrize("shape", [(), (0,), (2, 0), (7,), (2, 3, 4)])
def test_torch_bare_tensor_dtypes(torch, dtype, shape):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(shape, generator=g) * 50).to(getattr(torch, dtype))
    c = _load_bytes(_torch_bytes(torch, t))
    assert type(c) is cygrad.Tensor
    _assert_matches_torch(c, t)


@pytest.mark.parametrize("make", [
    lambda x: x.t(),
    lambda x: x[1:, 2:],
    lambda x: x[:, ::2],
    lambda x: x[2],
    lambda x: x.unsqueeze(0).expand(2, 4, 6),
    lambda x: x.permute(1, 0)[3:],
], ids=["transpose", "offset-slice", "step", "row", "expand", "permute-offset"])
def test_torch_non_contiguous(torch, make):
    x = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    t = make(x)
    c = _load_bytes(_torch_bytes(torch, t))
    _assert_matches_torch(c, t)
    assert c.is_contiguous()


def test_torch_shared_storage(torch):
    x = torch.arange(20, dtype=torch.float32)
    views = {"all": x, "mid": x[5:9], "mat": x[2:14].view(3, 4).t(), "same": x}
    out = _load_bytes(_torch_bytes(torch, views))
    for k in ("all", "mid", "mat"):
        _assert_matches_torch(out[k], views[k])
    assert out["same"] is out["all"]     # the same tensor object stays one object
    out["all"][6] = -1.0                 # views are loaded as independent copies
    assert float(out["mid"][1]) == 6.0


def test_torch_parameter_and_requires_grad(torch):
    p = torch.nn.Parameter(torch.randn(2, 3))
    q = torch.nn.Parameter(torch.randn(3), requires_grad=False)
    r = torch.randn(2, requires_grad=True)
    out = _load_bytes(_torch_bytes(torch, [p, q, r, p]))
    assert type(out[0]) is nn.Parameter and type(out[1]) is nn.Parameter and type(out[2]) is cygrad.Tensor
    _assert_matches_torch(out[0], p)
    _assert_matches_torch(out[1], q)
    _assert_matches_torch(out[2], r)
    assert out[3] is out[0]


def test_torch_misc_values(torch):
    obj = {"dtype": torch.float16, "size": torch.Size([2, 3]), "dev": torch.device("cpu"), 0: (1, 2.5, None),
           "s": "x", "big": 2 ** 70, "neg": -3, "odict": OrderedDict(a=1)}
    out = _load_bytes(_torch_bytes(torch, obj))
    assert out["dtype"] is cygrad.float16
    assert type(out["size"]) is cygrad.Size and out["size"] == (2, 3)
    assert out["dev"] == cygrad.device("cpu")
    assert out[0] == (1, 2.5, None) and out["big"] == 2 ** 70 and out["neg"] == -3
    assert type(out["odict"]) is OrderedDict


def test_torch_pickle_protocol_4_and_resave(torch):
    t = {"w": torch.randn(3, 2), "k": [1, 2]}
    out = _load_bytes(_torch_bytes(torch, t, pickle_protocol=4))
    _assert_matches_torch(out["w"], t["w"])
    again = roundtrip(out)
    assert_same_tensor(again["w"], out["w"])
    assert again["k"] == [1, 2]


def test_torch_big_endian_record(torch):
    """torch records the byte order; a big-endian writer's storages are byte-swapped."""
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    b = _torch_bytes(torch, t)
    src = zipfile.ZipFile(io.BytesIO(b))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            data = src.read(n)
            if n.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in n and not n.endswith("serialization_id"):
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            dst.writestr(n, data)
    np.testing.assert_array_equal(_load_bytes(out.getvalue()).numpy(), t.numpy())


def test_torch_unsupported_dtype(torch):
    with pytest.raises(CheckpointError, match="BFloat16Storage"):
        _load_bytes(_torch_bytes(torch, torch.zeros(2, dtype=torch.bfloat16)))
    with pytest.raises(CheckpointError, match="bfloat16"):
        _load_bytes(_torch_bytes(torch, {"d": torch.bfloat16}))


def test_torch_whole_module_rejected(torch):
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.nn\.modules.*state_dict"):
        _load_bytes(_torch_bytes(torch, torch.nn.Linear(2, 2)))


def test_torch_legacy_format_rejected(torch):
    b = _torch_bytes(torch, {"w": torch.zeros(2)}, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy"):
        _load_bytes(b)


def test_load_compat_arguments(torch):
    b = _torch_bytes(torch, torch.ones(2))
    for ml in (None, "cpu", torch.device("cpu"), cygrad.device("cpu"), {"cuda:0": "cpu"},
               lambda storage, loc: storage):
        assert _load_bytes(b, map_location=ml).tolist() == [1.0, 1.0]
    for wo in (None, True, False):
        assert _load_bytes(b, weights_only=wo).tolist() == [1.0, 1.0]
    assert _load_bytes(b, mmap=False, encoding="latin1").tolist() == [1.0, 1.0]
    for ml in ("cuda", "cuda:0", torch.device("meta"), {"cpu": "cuda:1"}):
        with pytest.raises(RuntimeError, match="CPU only"):
            _load_bytes(b, map_location=ml)
    with pytest.raises(TypeError, match="pickle_module"):
        _load_bytes(b, pickle_module=pickle)
    with pytest.raises(TypeError, match="weights_only"):
        _load_bytes(b, weights_only="yes")
    with pytest.raises(TypeError, match="unexpected keyword"):
        _load_bytes(b, foo=1)


# ------------------------------------------------------------------------------------------------
# safety: nothing from the file is ever run
# ------------------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _EvilExec:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _torch_like_zip(pkl, storages=None, prefix="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{prefix}/data.pkl", pkl)
        zf.writestr(f"{prefix}/byteorder", "little")
        for k, v in (storages or {}).items():
            zf.writestr(f"{prefix}/data/{k}", v)
        zf.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "code from the checkpoint was executed"


def test_payloads_are_live(tmp_path):
    """The malicious payloads used below do run under plain pickle (so the tests are meaningful)."""
    for cls in (_Evil, _EvilExec):
        m = tmp_path / f"live-{cls.__name__}"
        pickle.loads(pickle.dumps(cls(m), protocol=2))
        assert m.exists()


@pytest.mark.parametrize("cls", [_Evil, _EvilExec])
@pytest.mark.parametrize("protocol", [2, 4])
def test_raw_pickle_file_rejected(tmp_path, marker, cls, protocol):
    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps({"w": cls(marker)}, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match="raw pickle"):
        cygrad.load(p)


@pytest.mark.parametrize("cls", [_Evil, _EvilExec])
@pytest.mark.parametrize("protocol", [2, 4])
def test_torch_like_zip_with_evil_pickle_rejected(marker, cls, protocol):
    blob = _torch_like_zip(pickle.dumps(OrderedDict(w=cls(marker)), protocol=protocol))
    with pytest.raises(UnsafeCheckpointError, match="global") as e:
        _load_bytes(blob)
    assert isinstance(e.value, pickle.UnpicklingError)
    assert "system" in str(e.value) or "exec" in str(e.value)


def test_evil_pickle_in_real_torch_checkpoint(torch, marker):
    blob = _torch_bytes(torch, {"w": torch.ones(2), "evil": _Evil(marker)})
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        _load_bytes(blob, weights_only=False)


# A tiny pickle assembler for hand-crafted data.pkl files (protocol 2 opcodes).
def _s(x):
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _i(n):
    return b"J" + struct.pack("<i", n)


def _g(mod, name):
    return b"c" + f"{mod}\n{name}\n".encode()


def _tup(*parts):
    return b"(" + b"".join(parts) + b"t"


def _tensor_pkl(storage_type="FloatStorage", key="0", numel=4, offset=0, size=(4,), stride=(1,), extra=b""):
    storage = _tup(_s("storage"), _g("torch", storage_type), _s(key), _s("cpu"), _i(numel)) + b"Q"
    args = _tup(storage, _i(offset), _tup(*map(_i, size)), _tup(*map(_i, stride)), b"\x89",
                _g("collections", "OrderedDict") + b")R")
    return _g("torch._utils", "_rebuild_tensor_v2") + args + b"R" + extra


def _pkl(body):
    return b"\x80\x02" + body + b"."


def test_handmade_tensor_pickle_loads():
    data = np.arange(4, dtype="<f4").tobytes()
    out = _load_bytes(_torch_like_zip(_pkl(_tensor_pkl()), {"0": data}))
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("kw,match", [
    (dict(offset=3, size=(2,), stride=(1,)), "past the end"),
    (dict(size=(2, 3), stride=(3, 1)), "past the end"),
    (dict(size=(4,), stride=(1000000,)), "past the end"),
    (dict(offset=-1), "offset"),
    (dict(size=(-2,)), "size"),
    (dict(numel=5), "bytes"),
    (dict(key="../x"), "key"),
    (dict(key="1"), "missing"),
])
def test_handmade_bad_tensor_geometry(kw, match):
    data = np.arange(4, dtype="<f4").tobytes()
    with pytest.raises(CheckpointError, match=match):
        _load_bytes(_torch_like_zip(_pkl(_tensor_pkl(**kw)), {"0": data}))


@pytest.mark.parametrize("body,match", [
    # BUILD on an allowed global, to overwrite its attributes: refused
    (_g("torch._utils", "_rebuild_tensor_v2") + b"}" + _s("fn") + _g("posix", "system") + b"sb", "global"),
    (_g("torch._utils", "_rebuild_tensor_v2") + b"N}" + _s("fn") + _i(1) + b"s\x86b", "BUILD"),
    (_g("torch", "float32") + b"N}" + _s("name") + _s("x") + b"s\x86b", "BUILD"),
    # BUILD on a loaded tensor
    (_tensor_pkl() + b"N}" + _s("array") + _i(1) + b"s\x86b", "BUILD"),
    # opcodes that construct arbitrary objects
    (b"(" + b"i" + b"os\nsystem\n", "opcode INST"),
    (_g("collections", "OrderedDict") + b")\x81", "opcode NEWOBJ"),
    (b"(" + _g("collections", "OrderedDict") + b"o", "opcode OBJ"),
    (b"\x82\x01", "opcode EXT1"),
    (b"P1\n", "opcode PERSID"),
    # globals that are not allowed, also when reached with STACK_GLOBAL
    (_g("builtins", "eval") + _tup(_s("1")) + b"R", "builtins.eval"),
    (_s("os") + _s("system") + b"\x93", "os.system"),
    (_s("collections") + _s("OrderedDict.fromkeys") + b"\x93", "OrderedDict.fromkeys"),
    (_g("torch", "load"), "torch.load"),
    (_g("torch.serialization", "_get_layout"), "_get_layout"),
    # persistent ids that are not storages
    (_tup(_s("module"), _s("x")) + b"Q", "persistent id"),
    (_tup(_s("storage"), _g("torch", "float32"), _s("0"), _s("cpu"), _i(1)) + b"Q", "storage type"),
    # tensors with hooks
    (_g("torch._utils", "_rebuild_tensor_v2") + _tup(
        _tup(_s("storage"), _g("torch", "FloatStorage"), _s("0"), _s("cpu"), _i(4)) + b"Q", _i(0),
        _tup(_i(4)), _tup(_i(1)), b"\x89", b"}" + _s("h") + _i(1) + b"s") + b"R", "hooks"),
])
def test_handmade_malicious_pickles(body, match):
    data = np.arange(4, dtype="<f4").tobytes()
    with pytest.raises(UnsafeCheckpointError, match=match):
        _load_bytes(_torch_like_zip(_pkl(body), {"0": data}))
    # the allowed globals are intact afterwards
    assert _load_bytes(_torch_like_zip(_pkl(_tensor_pkl()), {"0": data})).tolist() == [0, 1, 2, 3]
    assert cygrad.float32.name == "float32"


@pytest.mark.parametrize("body,match", [
    (_g("torch._utils", "_rebuild_tensor_v2") + _tup(_i(1), _i(0), _tup(), _tup()) + b"R", "expected a storage"),
    (_g("collections", "OrderedDict") + _tup(_i(5)) + b"R", "OrderedDict"),
    (_g("torch", "FloatStorage"), "unsupported object"),
    (_tup(_s("storage"), _g("torch", "FloatStorage"), _s("0"), _s("cpu"), _i(4)) + b"Q", "bare storage"),
    (b"]" + b"q\x00" + b"h\x00" + b"a", "recursive"),
    (_g("torch", "device") + _tup(_s("cuda"), _i(0)) + b"R", "CPU device"),
    (b"\xff", "corrupt"),
    (b"X\xff\xff\xff\x7f", "corrupt"),
])
def test_handmade_bad_pickles(body, match):
    data = np.arange(4, dtype="<f4").tobytes()
    with pytest.raises(CheckpointError, match=match):
        _load_bytes(_torch_like_zip(_pkl(body), {"0": data}))


def _cygrad_zip(manifest=None, fmt=b"cygrad-checkpoint\nversion 1\n", entries=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if fmt is not None:
            zf.writestr("format", fmt)
        if manifest is not None:
            zf.writestr("manifest.json", manifest if isinstance(manifest, bytes) else json.dumps(manifest))
        for k, v in (entries or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def _npy(a, allow_pickle=False):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, allow_pickle=allow_pickle)
    return b.getvalue()


def test_cygrad_format_object_npy_with_evil_pickle(marker):
    arr = np.empty(1, dtype=object)
    arr[0] = _Evil(marker)
    man = {"root": {"type": "tensor", "index": 0},
           "tensors": [{"dtype": "float32", "shape": [1], "requires_grad": False, "parameter": False}]}
    with pytest.raises(CheckpointError, match="tensors/0.npy"):
        _load_bytes(_cygrad_zip(man, entries={"tensors/0.npy": _npy(arr, allow_pickle=True)}))


def test_cygrad_format_evil_pickle_as_entries(marker):
    """A pickle dropped in as the manifest or a tensor entry is never unpickled."""
    evil = pickle.dumps(_Evil(marker), protocol=2)
    with pytest.raises(CheckpointError, match="manifest"):
        _load_bytes(_cygrad_zip(evil))
    man = {"root": {"type": "tensor", "index": 0},
           "tensors": [{"dtype": "float32", "shape": [1], "requires_grad": False, "parameter": False}]}
    with pytest.raises(CheckpointError, match="tensors/0.npy"):
        _load_bytes(_cygrad_zip(man, entries={"tensors/0.npy": evil}))


_T0 = {"dtype": "float32", "shape": [2], "requires_grad": False, "parameter": False}


@pytest.mark.parametrize("manifest,match", [
    ({"root": {"type": "pickle", "data": "gASV"}, "tensors": []}, "unknown node type 'pickle'"),
    ({"root": {"type": "global", "name": "os.system"}, "tensors": []}, "unknown node type 'global'"),
    ({"root": {"type": "list", "items": [], "extra": 1}, "tensors": []}, "keys"),
    ({"root": {"type": "tensor", "index": 1}, "tensors": [_T0]}, "out of range"),
    ({"root": {"type": "tensor", "index": "0"}, "tensors": [_T0]}, "out of range"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, dtype="object")]}, "unknown dtype"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, dtype="float64")]}, "manifest says"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, shape=[3])]}, "manifest says"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, shape=[-2])]}, "bad shape"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, dtype="int64", requires_grad=True)]},
     "cannot require grad"),
    ({"root": {"type": "tensor", "index": 0}, "tensors": [dict(_T0, extra=1)]}, "bad entry"),
    ({"root": {"type": "dtype", "name": "__class__"}, "tensors": []}, "unknown dtype"),
    ({"root": {"type": "device", "value": "cuda"}, "tensors": []}, "bad device"),
    ({"root": {"type": "dict", "items": [[[1], 2]]}, "tensors": []}, "bad dict key"),
    ({"root": {"type": "dict", "items": [[1]]}, "tensors": []}, "pair"),
    ({"root": [1, 2], "tensors": []}, "unexpected list node"),
    ({"root": None}, "expected an object"),
    ([1, 2], "expected an object"),
])
def test_cygrad_tampered_manifest(manifest, match):
    entries = {"tensors/0.npy": _npy(np.zeros(2, np.float32))}
    with pytest.raises(CheckpointError, match=match):
        _load_bytes(_cygrad_zip(manifest, entries=entries))


def test_cygrad_format_version_and_missing_entries():
    man = {"root": 1, "tensors": []}
    assert _load_bytes(_cygrad_zip(man)) == 1
    with pytest.raises(CheckpointError, match="newer"):
        _load_bytes(_cygrad_zip(man, fmt=b"cygrad-checkpoint\nversion 99\n"))
    with pytest.raises(CheckpointError, match="not a cygrad checkpoint"):
        _load_bytes(_cygrad_zip(man, fmt=b"something-else\n"))
    with pytest.raises(CheckpointError, match="manifest.json"):
        _load_bytes(_cygrad_zip(None))
    man = {"root": {"type": "tensor", "index": 0}, "tensors": [_T0]}
    with pytest.raises(CheckpointError, match="missing the entry 'tensors/0.npy'"):
        _load_bytes(_cygrad_zip(man))
    with pytest.raises(CheckpointError, match="unexpected data"):
        _load_bytes(_cygrad_zip(man, entries={"tensors/0.npy": _npy(np.zeros(2, np.float32)) + b"x"}))
    with pytest.raises(CheckpointError, match="nested"):
        _load_bytes(_cygrad_zip(b"[" * 100000 + b"]" * 100000))


def test_cygrad_big_endian_npy_is_accepted():
    man = {"root": {"type": "tensor", "index": 0}, "tensors": [_T0]}
    out = _load_bytes(_cygrad_zip(man, entries={"tensors/0.npy": _npy(np.array([1.5, -2], ">f4"))}))
    assert out.dtype == cygrad.float32 and out.tolist() == [1.5, -2.0]


# ------------------------------------------------------------------------------------------------
# corrupt, truncated and foreign files
# ------------------------------------------------------------------------------------------------

def _saved_bytes():
    buf = io.BytesIO()
    cygrad.save({"w": cygrad.arange(100.0), "b": [cygrad.ones(3, dtype=cygrad.int64)]}, buf)
    return buf.getvalue()


def test_truncated_files():
    b = _saved_bytes()
    for n in sorted({1, 3, 10, 40, len(b) // 3, len(b) // 2, len(b) - 30, len(b) - 1}):
        with pytest.raises(CheckpointError):
            _load_bytes(b[:n])


def test_truncated_torch_file(torch):
    b = _torch_bytes(torch, {"w": torch.randn(50)})
    for n in (5, len(b) // 2, len(b) - 10):
        with pytest.raises(CheckpointError):
            _load_bytes(b[:n])


def test_corrupted_tensor_bytes_detected():
    b = bytearray(_saved_bytes())
    i = b.index(b"\x93NUMPY")
    b[i + 200] ^= 0xFF   # flip a byte inside the first tensor's data: the zip CRC catches it
    with pytest.raises(CheckpointError, match="corrupt"):
        _load_bytes(bytes(b))


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (b"hello world, not a checkpoint", "unrecognized"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "unrecognized"),
])
def test_foreign_files(data, match):
    with pytest.raises(CheckpointError, match=match):
        _load_bytes(data)


def test_foreign_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="data.pkl"):
        _load_bytes(buf.getvalue())


def test_exception_hierarchy():
    assert issubclass(CheckpointError, RuntimeError)
    assert issubclass(UnsafeCheckpointError, CheckpointError)
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)
    assert "torch._utils._rebuild_tensor_v2" in ser.ALLOWED_TORCH_GLOBALS


def test_atomic_write_new_file_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        cygrad.save(cygrad.zeros(1), tmp_path / "n.pt")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "n.pt").st_mode & 0o777) == 0o640
