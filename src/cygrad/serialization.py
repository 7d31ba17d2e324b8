"""Saving and loading tensors, state dicts and optimizer states (``torch.save`` / ``torch.load``).

cygrad's own checkpoint format is a zip archive (stored, not compressed) with three kinds of
entries:

``format``
    The magic line ``cygrad-checkpoint`` and the format version (``version 1``).
``manifest.json``
    The object's structure as JSON: containers, Python scalars, dtypes, and tensors referenced
    by index into a tensor table (dtype, shape, ``requires_grad``, Parameter or not).
``tensors/<index>.npy``
    One NumPy ``.npy`` file per tensor (C order), read back with ``allow_pickle=False``.

Loading never executes code from the file. cygrad files contain no pickle at all; PyTorch
checkpoints (``torch.save``'s zip format) are read with a restricted unpickler that resolves
only a fixed list of globals (tensor and parameter rebuild functions, storage types, dtypes,
``torch.Size``, ``torch.device`` and ``collections.OrderedDict``) to cygrad's own
replacements, refuses the pickle opcodes that construct arbitrary objects, and hands the
pickle machine only inert placeholder objects whose state cannot be set; anything else
raises :class:`UnsafeCheckpointError` before it can run.
"""
import collections
import io
import json
import math
import os
import pickle
import pickletools
import stat
import tempfile
import zipfile

import numpy as np

from . import _dtype as D
from ._tensor import Tensor, Size, device

__all__ = ["save", "load", "CheckpointError", "UnsafeCheckpointError"]

FORMAT_VERSION = 1
_MAGIC = "cygrad-checkpoint"
_FORMAT_ENTRY = "format"
_MANIFEST_ENTRY = "manifest.json"
_TENSOR_DIR = "tensors/"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same object always gives the same bytes

# torch's legacy (non-zip, torch < 1.6 default) format starts with this number, pickled.
_TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_TORCH_LEGACY_MAGIC_BYTES = _TORCH_LEGACY_MAGIC.to_bytes(10, "little")


class CheckpointError(RuntimeError):
    """The file is not a valid checkpoint: unknown format, truncated, corrupt or inconsistent."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The checkpoint asks for something cygrad refuses to load (a global it does not allow, an
    opcode that builds arbitrary objects, a raw pickle stream). Nothing from the file was run."""


# ================================================================================================
# save
# ================================================================================================

def _type_name(obj):
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class _Encoder:
    """Turns an object into a JSON-able manifest node tree plus the list of tensor arrays.

    Every check happens here, before a single byte is written."""

    def __init__(self):
        self.tensor_meta = []
        self.arrays = []
        self._tensor_index = {}   # id(tensor) -> index: the same tensor object is stored once
        self._keep = []           # keeps the tensors alive so that their ids stay unique
        self._active = set()      # ids of the containers on the current path (cycle detection)

    def encode(self, obj, path):
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, str):
            return str(obj)
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            v = float(obj)
            if math.isfinite(v):
                return v
            return {"type": "float", "value": repr(v)}   # 'nan', 'inf', '-inf': strict JSON
        if isinstance(obj, Tensor):
            return self._tensor(obj)
        if isinstance(obj, D.dtype):
            return {"type": "dtype", "name": obj.name}
        if isinstance(obj, device):
            return {"type": "device", "value": str(obj)}
        if isinstance(obj, Size):
            return {"type": "size", "items": [int(s) for s in obj]}
        if isinstance(obj, (bytes, bytearray)):
            return {"type": "bytes", "hex": bytes(obj).hex()}
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self._active:
                raise ValueError(f"cygrad.save: cannot save a recursive structure ({path} contains itself)")
            self._active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    kind = "odict" if isinstance(obj, collections.OrderedDict) else "dict"
                    items = []
                    for k, v in obj.items():
                        sub = f"{path}[{k!r}]"
                        items.append([self._key(k, sub), self.encode(v, sub)])
                    return {"type": kind, "items": items}
                kind = "list" if isinstance(obj, list) else "tuple"
                return {"type": kind, "items": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
            finally:
                self._active.discard(id(obj))
        raise TypeError(f"cygrad.save cannot save an object of type {_type_name(obj)} (at {path}); supported: "
                        "Tensor, Parameter, dict, OrderedDict, list, tuple, str, int, float, bool, None, bytes, "
                        "cygrad dtype, device and Size")

    def _key(self, k, path):
        if k is None or isinstance(k, (str, int, float)):   # bool is an int
            return self.encode(k, path)
        if isinstance(k, tuple) and not isinstance(k, Size):
            return {"type": "tuple", "items": [self._key(v, f"{path}[{i}]") for i, v in enumerate(k)]}
        raise TypeError(f"cygrad.save cannot save a dict key of type {_type_name(k)} (at {path}); dict keys "
                        "must be str, int, float, bool, None or tuples of those")

    def _tensor(self, t):
        idx = self._tensor_index.get(id(t))
        if idx is None:
            from .nn.parameter import Parameter
            data = t._data
            if not isinstance(data, np.ndarray):
                data = np.asarray(data)
            dt = D._FROM_NP.get(data.dtype)
            if dt is None:
                raise TypeError(f"cygrad.save: unsupported tensor dtype {data.dtype}")
            idx = len(self.arrays)
            self._tensor_index[id(t)] = idx
            self._keep.append(t)
            self.arrays.append(data)
            self.tensor_meta.append({"dtype": dt.name, "shape": [int(s) for s in data.shape],
                                     "requires_grad": bool(t.requires_grad),
                                     "parameter": isinstance(t, Parameter)})
        return {"type": "tensor", "index": idx}


def _zinfo(name):
    zi = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    zi.compress_type = zipfile.ZIP_STORED
    zi.external_attr = 0o644 << 16
    return zi


def _write_bytes(zf, name, data):
    zf.writestr(_zinfo(name), data)


def _write_tensor(zf, name, array):
    """Write one tensor entry: ``array`` as a ``.npy`` file (C order, no pickle)."""
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)   # write C order (npy would otherwise record Fortran order)
    zi = _zinfo(name)
    with zf.open(zi, "w", force_zip64=array.nbytes > (1 << 31) - (1 << 24)) as out:
        np.lib.format.write_array(out, array, allow_pickle=False)


def _write_archive(fh, manifest_bytes, arrays):
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_bytes(zf, _FORMAT_ENTRY, f"{_MAGIC}\nversion {FORMAT_VERSION}\n".encode("ascii"))
        _write_bytes(zf, _MANIFEST_ENTRY, manifest_bytes)
        for i, a in enumerate(arrays):
            _write_tensor(zf, f"{_TENSOR_DIR}{i}.npy", a)


def _umask():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_dir(dirname):
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path, write):
    """Call ``write(fh)`` on a temporary file next to ``path``, fsync it, then rename it over
    ``path``. On any exception the temporary file is removed and ``path`` is left untouched."""
    target = os.path.realpath(path)   # through a symlink: replace the file it points to
    dirname, base = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=dirname)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


def _is_path(f):
    return isinstance(f, (str, bytes, os.PathLike))


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Save tensors, state dicts and optimizer states to a file (``torch.save``).

    The file is a zip archive holding a JSON manifest of the structure and one ``.npy`` entry
    per tensor; it contains no pickle, so :func:`load` never runs code from it.

    Parameters
    ----------
    obj : object
        A Tensor or Parameter, or nested ``dict`` / ``OrderedDict`` / ``list`` / ``tuple``
        containers of tensors and of ``str``, ``int``, ``float``, ``bool``, ``None``,
        ``bytes``, cygrad dtypes, devices and Sizes (``nn.Module.state_dict()`` and
        ``optim.Optimizer.state_dict()`` are such objects). Dict keys may be ``str``, ``int``,
        ``float``, ``bool``, ``None`` or tuples of those. Each tensor's values, dtype, shape,
        ``requires_grad`` and Parameter-ness are kept, not its gradient. A tensor object that
        appears several times is stored once and loads as one object; distinct tensors that
        are views of the same data are stored as separate copies.
    f : str, os.PathLike or binary file object
        Where to write. A path is written atomically: the data goes to a temporary file in the
        same directory, which is flushed, fsynced and then renamed over ``f``; if anything
        fails, the temporary file is removed and an existing file at ``f`` is unchanged. A file
        object (e.g. ``io.BytesIO``) is written from its current position.
    pickle_module : None
        Not supported (cygrad does not use pickle); must be None.
    pickle_protocol : int, optional
        Accepted for compatibility with ``torch.save`` and ignored.
    _use_new_zipfile_serialization : bool
        Must be True: there is no legacy format.

    Raises
    ------
    TypeError
        If ``obj`` contains an unsupported object; the message names its type and where it is
        (e.g. ``obj['state'][0]['foo'][2]``). Nothing is written in that case.
    ValueError
        If ``obj`` contains itself.

    See Also
    --------
    load

    Examples
    --------
    >>> import io
    >>> import cygrad
    >>> model = cygrad.nn.Linear(3, 2)
    >>> buf = io.BytesIO()
    >>> cygrad.save(model.state_dict(), buf)
    >>> _ = buf.seek(0)
    >>> sd = cygrad.load(buf)
    >>> list(sd)
    ['weight', 'bias']
    >>> cygrad.equal(sd["weight"], model.weight)
    True
    """
    if pickle_module is not None:
        raise TypeError("cygrad.save does not use pickle; the pickle_module argument is not supported")
    if not _use_new_zipfile_serialization:
        raise ValueError("cygrad.save has no legacy (non-zip) format; _use_new_zipfile_serialization must be True")
    enc = _Encoder()
    root = enc.encode(obj, "obj")
    manifest = {"root": root, "tensors": enc.tensor_meta}
    manifest_bytes = json.dumps(manifest, allow_nan=False, ensure_ascii=True,
                                separators=(",", ":")).encode("ascii")
    if _is_path(f):
        _atomic_write(os.fsdecode(os.fspath(f)), lambda fh: _write_archive(fh, manifest_bytes, enc.arrays))
    elif hasattr(f, "write"):
        _write_archive(f, manifest_bytes, enc.arrays)
    else:
        raise TypeError(f"cygrad.save: f must be a path or a writable binary file object, got {_type_name(f)}")


# ================================================================================================
# load: cygrad's own format
# ================================================================================================

def _fail(msg):
    raise CheckpointError(msg)


def _np_native(a):
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


class _CygradReader:
    _NODE_KEYS = {
        "float": {"value"}, "tensor": {"index"}, "dtype": {"name"}, "device": {"value"},
        "size": {"items"}, "bytes": {"hex"}, "list": {"items"}, "tuple": {"items"},
        "dict": {"items"}, "odict": {"items"},
    }

    def __init__(self, zf):
        self.zf = zf
        self.names = set(zf.namelist())
        self.tensors = {}

    def load(self):
        raw = self.zf.read(_FORMAT_ENTRY)
        lines = raw.decode("ascii", "replace").split("\n")
        if len(lines) < 2 or lines[0] != _MAGIC or not lines[1].startswith("version "):
            _fail(f"bad '{_FORMAT_ENTRY}' entry {raw[:64]!r}: not a cygrad checkpoint")
        try:
            version = int(lines[1][len("version "):])
        except ValueError:
            _fail(f"bad format version in {raw[:64]!r}")
        if version > FORMAT_VERSION:
            _fail(f"checkpoint format version {version} is newer than this cygrad supports ({FORMAT_VERSION}); "
                  "upgrade cygrad")
        if version < 1:
            _fail(f"bad format version {version}")
        if _MANIFEST_ENTRY not in self.names:
            _fail(f"cygrad checkpoint has no '{_MANIFEST_ENTRY}' entry")
        try:
            manifest = json.loads(self.zf.read(_MANIFEST_ENTRY).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"corrupt manifest: {e}") from None
        if not isinstance(manifest, dict) or set(manifest) != {"root", "tensors"} \
                or not isinstance(manifest["tensors"], list):
            _fail("corrupt manifest: expected an object with 'root' and 'tensors'")
        self.meta = manifest["tensors"]
        return self.node(manifest["root"], "obj")

    def node(self, n, path):
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if not isinstance(n, dict) or not isinstance(n.get("type"), str):
            _fail(f"corrupt manifest at {path}: unexpected {type(n).__name__} node")
        kind = n["type"]
        want = self._NODE_KEYS.get(kind)
        if want is None:
            _fail(f"corrupt manifest at {path}: unknown node type {kind!r}")
        if set(n) != want | {"type"}:
            _fail(f"corrupt manifest at {path}: {kind} node has keys {sorted(n)}")
        if kind == "float":
            if n["value"] not in ("nan", "inf", "-inf"):
                _fail(f"corrupt manifest at {path}: bad float {n['value']!r}")
            return float(n["value"])
        if kind == "tensor":
            return self.tensor(n["index"], path)
        if kind == "dtype":
            name = n["name"]
            if not isinstance(name, str) or name not in {d.name for d in D._ALL}:
                _fail(f"corrupt manifest at {path}: unknown dtype {name!r}")
            return D._BY_NAME[name]
        if kind == "device":
            v = n["value"]
            if not isinstance(v, str) or not (v == "cpu" or v.startswith("cpu:")):
                _fail(f"corrupt manifest at {path}: bad device {v!r}")
            try:
                return device(v)
            except (RuntimeError, ValueError):
                _fail(f"corrupt manifest at {path}: bad device {v!r}")
        items = n["items"] if kind != "bytes" else None
        if kind == "bytes":
            try:
                return bytes.fromhex(n["hex"])
            except (TypeError, ValueError):
                _fail(f"corrupt manifest at {path}: bad bytes value")
        if not isinstance(items, list):
            _fail(f"corrupt manifest at {path}: {kind} items must be a list")
        if kind == "size":
            if not all(type(s) is int and s >= 0 for s in items):
                _fail(f"corrupt manifest at {path}: bad Size {items!r}")
            return Size(items)
        if kind in ("list", "tuple"):
            vals = [self.node(v, f"{path}[{i}]") for i, v in enumerate(items)]
            return vals if kind == "list" else tuple(vals)
        out = collections.OrderedDict() if kind == "odict" else {}
        for i, kv in enumerate(items):
            if not isinstance(kv, list) or len(kv) != 2:
                _fail(f"corrupt manifest at {path}: item {i} is not a [key, value] pair")
            k = self.key(kv[0], f"{path}<key {i}>")
            out[k] = self.node(kv[1], f"{path}[{k!r}]")
        return out

    def key(self, n, path):
        if isinstance(n, dict) and n.get("type") == "tuple":
            if set(n) != {"type", "items"} or not isinstance(n["items"], list):
                _fail(f"corrupt manifest at {path}: bad tuple key")
            return tuple(self.key(v, path) for v in n["items"])
        if isinstance(n, dict) and n.get("type") == "float":
            return self.node(n, path)
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        _fail(f"corrupt manifest at {path}: bad dict key {n!r}")

    def tensor(self, idx, path):
        if type(idx) is not int or not 0 <= idx < len(self.meta):
            _fail(f"corrupt manifest at {path}: tensor index {idx!r} out of range")
        t = self.tensors.get(idx)
        if t is not None:
            return t
        m = self.meta[idx]
        if not isinstance(m, dict) or set(m) != {"dtype", "shape", "requires_grad", "parameter"}:
            _fail(f"corrupt manifest: bad entry for tensor {idx}")
        dt = D._BY_NAME.get(m["dtype"]) if isinstance(m["dtype"], str) else None
        if dt is None or dt.name != m["dtype"]:
            _fail(f"corrupt manifest: tensor {idx} has unknown dtype {m['dtype']!r}")
        shape = m["shape"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            _fail(f"corrupt manifest: tensor {idx} has bad shape {shape!r}")
        rg, is_param = m["requires_grad"], m["parameter"]
        if type(rg) is not bool or type(is_param) is not bool:
            _fail(f"corrupt manifest: tensor {idx} has non-boolean flags")
        if rg and not dt.is_floating_point:
            _fail(f"corrupt manifest: tensor {idx} of dtype {dt.name} cannot require grad")
        name = f"{_TENSOR_DIR}{idx}.npy"
        if name not in self.names:
            _fail(f"cygrad checkpoint is missing the entry '{name}'")
        try:
            with self.zf.open(name) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
                trailing = fh.read(1)
        except ValueError as e:   # bad header, object dtype, short data
            raise CheckpointError(f"corrupt tensor entry '{name}': {e}") from None
        if trailing:
            _fail(f"corrupt tensor entry '{name}': unexpected data after the array")
        if arr.dtype.fields is not None or arr.dtype.subdtype is not None:
            _fail(f"corrupt tensor entry '{name}': structured dtype {arr.dtype}")
        arr = _np_native(arr)
        if arr.dtype != dt.np or list(arr.shape) != shape:
            _fail(f"tensor entry '{name}' holds {arr.dtype}{list(arr.shape)} but the manifest says "
                  f"{dt.name}{shape}")
        if not (arr.flags.c_contiguous and arr.flags.writeable):
            arr = np.array(arr, order="C", copy=True)   # (not ascontiguousarray: it makes 0-d arrays 1-d)
        t = _make_tensor(arr, rg, is_param)
        self.tensors[idx] = t
        return t


def _make_tensor(arr, requires_grad, parameter):
    t = Tensor._make(arr)
    if parameter:
        from .nn.parameter import Parameter
        return Parameter(t, requires_grad)
    if requires_grad:
        t.requires_grad_(True)
    return t


# ================================================================================================
# load: torch.save's zip format through a restricted unpickler
# ================================================================================================

class _Sealed:
    """Base of every non-builtin object the restricted unpickler gives the pickle machine.

    pickle's BUILD opcode calls ``__setstate__`` when an object has one; here it refuses, so a
    checkpoint cannot set attributes on these objects, on cygrad's classes or on functions."""

    __slots__ = ()

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"checkpoint tries to set the state of {self!r} (pickle BUILD); refused")

    def __reduce_ex__(self, proto):
        raise TypeError(f"{type(self).__name__} cannot be pickled")


class _Global(_Sealed):
    """An allowed global: a callable that the pickle may call (REDUCE) with positional args."""

    __slots__ = ("qualname", "fn")

    def __init__(self, qualname, fn):
        self.qualname = qualname
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return f"<allowed global {self.qualname}>"


class _StorageType(_Sealed):
    __slots__ = ("name", "np", "why")

    def __init__(self, name, np_dtype, why=None):
        self.name = name
        self.np = None if np_dtype is None else np.dtype(np_dtype)
        self.why = why

    def __repr__(self):
        return f"<storage type torch.{self.name}>"


class _TorchDtype(_Sealed):
    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"<torch.{self.name}>"


class _StorageRef(_Sealed):
    __slots__ = ("reader", "stype", "key", "numel")

    def __init__(self, reader, stype, key, numel):
        self.reader = reader
        self.stype = stype
        self.key = key
        self.numel = numel

    def __repr__(self):
        return f"<storage {self.key!r}>"


class _LoadedTensor(_Sealed):
    __slots__ = ("array", "requires_grad", "parameter")

    def __init__(self, array, requires_grad, parameter=False):
        self.array = array
        self.requires_grad = requires_grad
        self.parameter = parameter

    def __repr__(self):
        return "<tensor>"


class _SizeRef(_Sealed):
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __repr__(self):
        return "<torch.Size>"


class _DeviceRef(_Sealed):
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "<torch.device>"


class _ODict(collections.OrderedDict):
    """``collections.OrderedDict`` as built by the unpickler. torch pickles a state dict's
    ``_metadata`` attribute with BUILD; it is accepted (a dict) and dropped."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UnsafeCheckpointError("checkpoint sets a non-dict state on an OrderedDict; refused")

    def __reduce_ex__(self, proto):
        raise TypeError("_ODict cannot be pickled")


def _check(cond, msg):
    if not cond:
        raise CheckpointError(msg)


def _is_int(x):
    return type(x) is int


def _hooks_ok(h):
    return h is None or (isinstance(h, dict) and len(h) == 0)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    _check(isinstance(storage, _StorageRef), f"tensor rebuilt from {storage!r}, expected a storage")
    _check(_is_int(storage_offset) and storage_offset >= 0, f"bad storage offset {storage_offset!r}")
    _check(isinstance(size, (tuple, _SizeRef)) and isinstance(stride, tuple), "bad tensor size or stride")
    if isinstance(size, _SizeRef):
        size = size.items
    _check(len(size) == len(stride) and all(_is_int(s) and s >= 0 for s in size)
           and all(_is_int(s) and s >= 0 for s in stride), f"bad tensor size {size!r} / stride {stride!r}")
    _check(type(requires_grad) is bool, f"bad requires_grad {requires_grad!r}")
    if not _hooks_ok(backward_hooks):
        raise UnsafeCheckpointError("checkpoint holds a tensor with backward hooks; refused")
    _check(metadata is None or (isinstance(metadata, dict) and not metadata),
           "tensors with extra metadata (e.g. conjugate or negative bits) are not supported")
    arr = storage.reader.view(storage, storage_offset, size, stride)
    _check(not requires_grad or arr.dtype.kind == "f", f"a {arr.dtype} tensor cannot require grad")
    return _LoadedTensor(arr, requires_grad)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    _check(isinstance(data, _LoadedTensor), f"parameter rebuilt from {data!r}, expected a tensor")
    _check(type(requires_grad) is bool, f"bad requires_grad {requires_grad!r}")
    if not _hooks_ok(backward_hooks):
        raise UnsafeCheckpointError("checkpoint holds a parameter with backward hooks; refused")
    _check(not requires_grad or data.array.dtype.kind == "f", f"a {data.array.dtype} tensor cannot require grad")
    return _LoadedTensor(data.array, requires_grad, parameter=True)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    _check(state is None or (isinstance(state, dict) and not state),
           "parameters with extra Python state (Parameter subclasses) are not supported")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _make_size(items=()):
    _check(isinstance(items, (tuple, list)) and all(_is_int(s) and s >= 0 for s in items),
           f"bad torch.Size {items!r}")
    return _SizeRef(tuple(items))


def _make_device(type_, index=None):
    _check(isinstance(type_, str) and (index is None or _is_int(index)), "bad torch.device arguments")
    s = type_ if index is None else f"{type_}:{index}"
    return _DeviceRef(s)


def _make_odict(*args):
    _check(len(args) <= 1, "bad OrderedDict arguments")
    if args:
        _check(isinstance(args[0], (list, tuple)), "bad OrderedDict arguments")
    return _ODict(*args)


_TORCH_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_TORCH_UNSUPPORTED_STORAGES = ("BFloat16Storage", "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage",
                               "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage")
_TORCH_UNSUPPORTED_DTYPES = ("bfloat16", "complex32", "complex64", "complex128", "uint16", "uint32", "uint64",
                             "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "qint8",
                             "quint8", "qint32")


def _allowed_globals():
    g = {
        ("collections", "OrderedDict"): _Global("collections.OrderedDict", _make_odict),
        ("torch._utils", "_rebuild_tensor_v2"): _Global("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
        ("torch._utils", "_rebuild_tensor"): _Global("torch._utils._rebuild_tensor", _rebuild_tensor),
        ("torch._utils", "_rebuild_parameter"): _Global("torch._utils._rebuild_parameter", _rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"):
            _Global("torch._utils._rebuild_parameter_with_state", _rebuild_parameter_with_state),
        ("torch", "Size"): _Global("torch.Size", _make_size),
        ("torch", "device"): _Global("torch.device", _make_device),
    }
    for name, npd in _TORCH_STORAGES.items():
        g[("torch", name)] = _StorageType(name, npd)
    for name in _TORCH_UNSUPPORTED_STORAGES:
        g[("torch", name)] = _StorageType(name, None, f"cygrad has no dtype for torch.{name}")
    for d in D._ALL:
        g[("torch", d.name)] = _TorchDtype(d.name, d)
    for name in _TORCH_UNSUPPORTED_DTYPES:
        g[("torch", name)] = _TorchDtype(name, None)
    return g


_GLOBALS = _allowed_globals()

#: The ``module.name`` globals a torch checkpoint may reference.
ALLOWED_TORCH_GLOBALS = tuple(sorted(f"{m}.{n}" for m, n in _GLOBALS))

# Opcodes that only build Python builtins, or call / reference allowed globals.
_ALLOWED_OPCODES = frozenset("""
PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 LONG4
FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS
EMPTY_DICT DICT SETITEM SETITEMS GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL
REDUCE BUILD BINPERSID
""".split())


def _global_error(module, name):
    hint = ""
    if module.startswith("torch.nn") or module == "__main__":
        hint = " (a whole module or a custom object was saved: save and load model.state_dict() instead)"
    return UnsafeCheckpointError(f"checkpoint references the global '{module}.{name}', which cygrad.load does not "
                                 f"allow; it loads only tensors and containers{hint}")


class _TorchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_TORCH_GLOBALS` (to cygrad's own
    replacements) and turns torch's persistent storage ids into storage references."""

    def __init__(self, file, reader):
        super().__init__(file, encoding="utf-8")
        self._reader = reader

    def find_class(self, module, name):
        obj = _GLOBALS.get((module, name))
        if obj is None:
            raise _global_error(module, name)
        return obj

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r} in checkpoint")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType):
            raise UnsafeCheckpointError(f"unsupported storage type {stype!r} in checkpoint")
        if stype.np is None:
            raise CheckpointError(f"cannot load a tensor stored as torch.{stype.name}: {stype.why}")
        _check(isinstance(key, str) and key.isalnum(), f"bad storage key {key!r}")
        _check(isinstance(location, str), f"bad storage location {location!r}")
        _check(_is_int(numel) and numel >= 0, f"bad storage size {numel!r}")
        return _StorageRef(self._reader, stype, key, numel)


class _TorchReader:
    def __init__(self, zf, prefix):
        self.zf = zf
        self.prefix = prefix
        self.names = set(zf.namelist())
        self.raw = {}
        order = "little"
        if prefix + "byteorder" in self.names:
            order = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
            _check(order in ("little", "big"), f"bad byteorder record {order!r}")
        self.order = "<" if order == "little" else ">"

    def storage_bytes(self, key):
        b = self.raw.get(key)
        if b is None:
            name = f"{self.prefix}data/{key}"
            _check(name in self.names, f"checkpoint is missing the storage entry '{name}'")
            b = self.raw[key] = self.zf.read(name)
        return b

    def view(self, storage, offset, size, stride):
        dt = storage.stype.np.newbyteorder(self.order) if storage.stype.np.itemsize > 1 else storage.stype.np
        raw = self.storage_bytes(storage.key)
        _check(len(raw) == storage.numel * dt.itemsize,
               f"storage '{storage.key}' holds {len(raw)} bytes, expected {storage.numel} x {dt.itemsize}")
        numel = math.prod(size)
        if numel == 0:
            return np.empty(size, dtype=storage.stype.np)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        _check(last < storage.numel,
               f"tensor of size {tuple(size)}, stride {tuple(stride)} and offset {offset} reads past the end "
               f"of its storage of {storage.numel} elements")
        base = np.frombuffer(raw, dtype=dt, count=storage.numel)
        strides = tuple(0 if n == 1 else s * dt.itemsize for n, s in zip(size, stride))
        view = np.lib.stride_tricks.as_strided(base[offset:], shape=tuple(size), strides=strides,
                                               writeable=False)
        return np.array(view, dtype=storage.stype.np, order="C")   # copy, native byte order

    def load(self):
        data = self.zf.read(self.prefix + "data.pkl")
        try:
            for op, arg, pos in pickletools.genops(data):
                if op.name == "GLOBAL":   # (STACK_GLOBAL's names are checked by find_class)
                    module, _, name = str(arg).partition(" ")
                    if (module, name) not in _GLOBALS:
                        raise _global_error(module, name)
                elif op.name not in _ALLOWED_OPCODES:
                    raise UnsafeCheckpointError(f"checkpoint's data.pkl uses the pickle opcode {op.name} (at byte "
                                                f"{pos}), which cygrad.load does not allow")
        except UnsafeCheckpointError:
            raise
        except Exception as e:   # genops: unknown opcode, truncated argument
            raise CheckpointError(f"corrupt data.pkl in checkpoint: {e}") from None
        try:
            obj = _TorchUnpickler(io.BytesIO(data), self).load()
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"corrupt or unsupported data.pkl in checkpoint: {type(e).__name__}: {e}") from None
        return _Materializer().convert(obj, "obj")


class _Materializer:
    """Replaces the unpickler's placeholders by cygrad objects and checks every object's type."""

    def __init__(self):
        self.memo = {}
        self.active = set()

    def convert(self, o, path):
        t = type(o)
        if o is None or t in (bool, int, float, str, bytes):
            return o
        r = self.memo.get(id(o))
        if r is not None:
            return r[1]
        if t is _LoadedTensor:
            r = _make_tensor(o.array, o.requires_grad, o.parameter)
        elif t is _TorchDtype:
            _check(o.dtype is not None, f"{path}: cygrad has no dtype torch.{o.name}")
            r = o.dtype
        elif t is _SizeRef:
            r = Size(o.items)
        elif t is _DeviceRef:
            _check(o.value == "cpu" or o.value.startswith("cpu:"),
                   f"{path}: checkpoint holds torch.device('{o.value}'); cygrad has only the CPU device")
            r = device(o.value)
        elif t in (list, tuple, dict, _ODict):
            _check(id(o) not in self.active, f"{path}: recursive structures are not supported")
            self.active.add(id(o))
            try:
                if t is list:
                    r = [self.convert(v, f"{path}[{i}]") for i, v in enumerate(o)]
                elif t is tuple:
                    r = tuple(self.convert(v, f"{path}[{i}]") for i, v in enumerate(o))
                else:
                    r = collections.OrderedDict() if t is _ODict else {}
                    for k, v in o.items():
                        sub = f"{path}[{k!r}]"
                        ck = self.convert(k, sub)
                        _check(ck is None or isinstance(ck, (str, int, float, tuple, bytes, D.dtype)),
                               f"{path}: unsupported dict key of type {type(ck).__name__}")
                        r[ck] = self.convert(v, sub)
            finally:
                self.active.discard(id(o))
        elif t is _StorageRef:
            raise CheckpointError(f"{path}: the checkpoint holds a bare storage; only tensors are supported")
        else:
            raise CheckpointError(f"{path}: unsupported object {o!r} in checkpoint")
        self.memo[id(o)] = (o, r)
        return r


# ================================================================================================
# load
# ================================================================================================

def _check_device_spec(d, what):
    if isinstance(d, device):
        return
    if type(d).__module__ == "torch" and type(d).__name__ == "device":
        d = str(d)
    if isinstance(d, str) and (d == "cpu" or d.startswith("cpu:")):
        return
    if isinstance(d, str):
        raise RuntimeError(f"{what}={d!r}: cygrad runs on the CPU only and always loads tensors to the CPU; "
                           "use map_location=None or 'cpu'")
    raise TypeError(f"{what}: expected a device string or device, got {_type_name(d)}")


def _check_map_location(ml):
    if ml is None or callable(ml):
        return   # a callable is not called: everything loads to the CPU
    if isinstance(ml, dict):
        for v in ml.values():
            _check_device_spec(v, "map_location value")
        return
    _check_device_spec(ml, "map_location")


def _load_stream(fh):
    start = fh.tell()
    head = fh.read(512)
    fh.seek(start)
    if not head:
        raise CheckpointError("the file is empty")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CheckpointError(f"corrupt or truncated checkpoint (bad zip archive: {e})") from None
        with zf:
            try:
                return _load_zip(zf)
            except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
                raise CheckpointError(f"corrupt or truncated checkpoint: {type(e).__name__}: {e}") from None
    if head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC_BYTES in head[:40]:
        raise CheckpointError("this is a checkpoint in torch's legacy format (torch.save with "
                              "_use_new_zipfile_serialization=False, or torch < 1.6), which cygrad cannot read; "
                              "re-save it with torch.save's default zip format")
    if head[:1] == b"\x80":
        raise UnsafeCheckpointError("this is a raw pickle stream, not a cygrad or torch zip checkpoint; "
                                    "cygrad.load never unpickles raw pickle data because that can run code")
    if head[257:262] == b"ustar":
        raise CheckpointError("this is a tar archive (torch's oldest checkpoint format), which cygrad cannot read")
    raise CheckpointError(f"not a cygrad or PyTorch checkpoint (unrecognized header {head[:8]!r})")


def _load_zip(zf):
    names = zf.namelist()
    if _FORMAT_ENTRY in names:
        return _CygradReader(zf).load()
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) == 1:
        return _TorchReader(zf, pkls[0][:-len("data.pkl")]).load()
    if len(pkls) > 1:
        raise CheckpointError(f"zip archive holds several torch records ({', '.join(pkls)})")
    raise CheckpointError(f"zip archive is not a cygrad checkpoint (no '{_FORMAT_ENTRY}' entry) nor a torch "
                          "checkpoint (no '<archive>/data.pkl' entry)")


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Load an object saved by :func:`save` or by ``torch.save`` (``torch.load``).

    Nothing in the file is executed. cygrad files hold no pickle. PyTorch checkpoints (the zip
    format ``torch.save`` writes by default) are read without torch, through a restricted
    unpickler that only allows the globals needed to rebuild tensors, Parameters, dtypes,
    ``torch.Size``, ``torch.device`` and ``OrderedDict``; any other global, or an opcode that
    builds arbitrary objects, raises :class:`UnsafeCheckpointError` before anything runs.

    Parameters
    ----------
    f : str, os.PathLike or binary file object
        The checkpoint (a file object must be readable; it is read from its current position).
    map_location : None, str, device, dict or callable, optional
        Accepted for compatibility. cygrad always loads to the CPU: ``None``, ``'cpu'`` and
        cpu devices are fine, other devices raise ``RuntimeError``; in a dict every target
        must be the CPU; a callable is accepted and not called. Tensors saved on another
        device by torch load to the CPU either way.
    pickle_module : None
        Not supported; must be None.
    weights_only : bool or None, optional
        Accepted for compatibility. cygrad always loads weights only: ``False`` does not
        enable loading arbitrary objects.
    mmap : bool or None, optional
        Accepted and ignored; the tensors are read into memory.
    **pickle_load_args
        Only ``encoding`` is accepted (and ignored).

    Returns
    -------
    object
        The saved structure: dicts (``OrderedDict`` where one was saved), lists, tuples,
        Python scalars, and cygrad Tensors (``nn.Parameter`` where a Parameter was saved), each
        an independent copy of the file's data with its dtype, shape and ``requires_grad``.

    Raises
    ------
    UnsafeCheckpointError
        The file asks for something that is not allowed (also a ``pickle.UnpicklingError``).
    CheckpointError
        The file is not a checkpoint, is corrupt or truncated, or holds data cygrad cannot
        represent (e.g. bfloat16 tensors). A ``RuntimeError``.

    See Also
    --------
    save

    Examples
    --------
    >>> import io
    >>> import cygrad
    >>> buf = io.BytesIO()
    >>> cygrad.save({"step": 3, "w": cygrad.arange(4)}, buf)
    >>> _ = buf.seek(0)
    >>> cygrad.load(buf)
    {'step': 3, 'w': tensor([0, 1, 2, 3])}

    Weights saved by PyTorch load the same way (torch is not needed)::

        torch.save(torch_model.state_dict(), "weights.pt")      # with torch
        model.load_state_dict(cygrad.load("weights.pt"))         # with cygrad
    """
    if pickle_module is not None:
        raise TypeError("cygrad.load does not support a custom pickle_module")
    if weights_only not in (None, True, False):
        raise TypeError(f"weights_only must be a bool or None, got {weights_only!r}")
    if mmap not in (None, True, False):
        raise TypeError(f"mmap must be a bool or None, got {mmap!r}")
    extra = set(pickle_load_args) - {"encoding"}
    if extra:
        raise TypeError(f"cygrad.load got unexpected keyword arguments {sorted(extra)}")
    _check_map_location(map_location)
    if _is_path(f):
        with open(f, "rb") as fh:
            return _load_checked(fh)
    if not hasattr(f, "read"):
        raise TypeError(f"cygrad.load: f must be a path or a readable binary file object, got {_type_name(f)}")
    seekable = getattr(f, "seekable", None)
    if seekable is None or not seekable():
        f = io.BytesIO(f.read())
    return _load_checked(f)


def _load_checked(fh):
    try:
        return _load_stream(fh)
    except RecursionError:
        raise CheckpointError("checkpoint structure is too deeply nested") from None
