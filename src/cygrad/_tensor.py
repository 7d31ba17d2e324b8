"""``Tensor``: a NumPy array plus autograd state (requires_grad, grad, grad_fn, version)."""
import numpy as np

from . import _dtype as D
from .autograd.grad_mode import state
from .autograd.function import AccumulateGrad, _add_hook, view_grad_fn

__all__ = ["Tensor", "Size", "device"]


class Size(tuple):
    """A tensor shape (a tuple), like ``torch.Size``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.zeros(2, 3).shape
    cygrad.Size([2, 3])
    """

    def numel(self):
        """Number of elements of a tensor of this shape."""
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r

    def __repr__(self):
        return f"cygrad.Size({list(self)})"

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))


class device:
    """A device; cygrad has only ``device('cpu')``.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.device("cpu")
    device(type='cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        t = str(type)
        if ":" in t:
            t, _, idx = t.partition(":")
            index = int(idx)
        if t != "cpu":
            known = ("cuda", "mps", "xpu", "meta", "hip", "xla", "vulkan", "ipu", "mtia", "privateuseone")
            if t in known:
                raise RuntimeError(f"cygrad runs on the CPU only; device '{type}' is not available "
                                   "(use device='cpu')")
            raise RuntimeError("Expected one of cpu, cuda, ipu, xpu, mkldnn, opengl, opencl, ideep, hip, ve, "
                               f"fpga, maia, xla, lazy, vulkan, mps, meta, hpu, mtia, privateuseone device type "
                               f"at start of device string: {type}")
        self.type = "cpu"
        self.index = index

    def __repr__(self):
        return "device(type='cpu')" if self.index is None else f"device(type='cpu', index={self.index})"

    def __str__(self):
        return "cpu" if self.index is None else f"cpu:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and other.index == self.index

    def __hash__(self):
        return hash(("cpu", self.index))


_CPU = device("cpu")


def check_device(d):
    """Accept None, 'cpu', ``device('cpu')`` or a torch cpu device; raise for anything else."""
    if d is None or d is _CPU or d == "cpu":
        return
    if type(d).__module__ == "torch":
        d = str(d)
    if isinstance(d, int):
        raise RuntimeError(f"cygrad runs on the CPU only; device {d} is not available (use device='cpu')")
    device(d)


class Tensor:
    """A multi-dimensional array with autograd support (PyTorch's ``torch.Tensor``).

    Create tensors with :func:`cygrad.tensor`, :func:`cygrad.zeros`, ... ; ``Tensor(data)`` is the
    legacy constructor (float32, like ``torch.Tensor``).

    Examples
    --------
    >>> import cygrad
    >>> x = cygrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x @ x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([[ 7., 11.],
            [ 9., 13.]])
    """

    __slots__ = ("_data", "_requires_grad", "_grad", "_grad_fn", "_output_nr", "_version_box",
                 "_base", "_extra", "__weakref__")
    __array_priority__ = 1000
    __array_ufunc__ = None  # NumPy defers to our reflected operators

    def __init__(self, *args, dtype=None, device=None):
        check_device(device)
        if len(args) == 1 and not isinstance(args[0], int):
            data = np.array(args[0], dtype=D.to_dtype(dtype).np if dtype else None)
            if dtype is None and data.dtype.kind in "fiub":
                data = data.astype(np.float32)
        else:
            shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            data = np.zeros(tuple(shape), D.to_dtype(dtype).np if dtype else np.float32)
        self._data = data
        self._requires_grad = False
        self._grad = None
        self._grad_fn = None
        self._output_nr = 0
        self._version_box = [0]
        self._base = None
        self._extra = None

    @staticmethod
    def _make(data, requires_grad=False, grad_fn=None, output_nr=0, box=None, base=None):
        t = object.__new__(Tensor)
        t._data = data
        t._requires_grad = requires_grad
        t._grad = None
        t._grad_fn = grad_fn
        t._output_nr = output_nr
        t._version_box = [0] if box is None else box
        t._base = base
        t._extra = None
        return t

    def _ex(self):
        ex = self._extra
        if ex is None:
            ex = self._extra = {}
        return ex

    def _accumulator(self):
        """This leaf's AccumulateGrad node (created on first use, held weakly)."""
        ex = self._ex()
        ref = ex.get("acc")
        node = ref() if ref is not None else None
        if node is None:
            import weakref
            node = AccumulateGrad(self)
            ex["acc"] = weakref.ref(node)
        return node

    # ---- basic attributes -------------------------------------------------------------------
    @property
    def shape(self):
        """The tensor's shape, a :class:`Size`."""
        return Size(self._data.shape)

    def size(self, dim=None):
        """The shape, or the size of dimension ``dim``."""
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def dtype(self):
        """The element type (``cygrad.float32``, ...)."""
        return D._FROM_NP[self._data.dtype]

    @property
    def device(self):
        """Always ``device(type='cpu')``."""
        return _CPU

    is_cuda = False
    is_cpu = True
    is_sparse = False
    is_quantized = False
    is_meta = False

    @property
    def ndim(self):
        """Number of dimensions."""
        return self._data.ndim

    def dim(self):
        """Number of dimensions."""
        return self._data.ndim

    ndimension = dim

    def numel(self):
        """Number of elements."""
        return self._data.size

    nelement = numel

    def element_size(self):
        """Bytes per element."""
        return self._data.itemsize

    def stride(self, dim=None):
        """Strides in elements (as in PyTorch, not bytes)."""
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self._data.ndim)]

    def is_contiguous(self, memory_format=None):
        """Whether the elements are laid out in C order without gaps."""
        return self._data.flags.c_contiguous

    def contiguous(self, memory_format=None):
        """This tensor if C-contiguous, else a contiguous copy (differentiable)."""
        if self._data.flags.c_contiguous:
            return self
        return self.clone()

    def is_floating_point(self):
        """Whether the dtype is a floating point type."""
        return self._data.dtype.kind == "f"

    def is_complex(self):
        return False

    def data_ptr(self):
        """Address of the first element."""
        return self._data.ctypes.data

    def untyped_storage(self):
        base = self._data
        while base.base is not None and isinstance(base.base, np.ndarray):
            base = base.base
        return base

    @property
    def is_leaf(self):
        """True for tensors not created by a recorded op (``grad_fn is None``)."""
        return self._grad_fn is None

    @property
    def grad_fn(self):
        """The node that created this tensor, or None for leaves."""
        return self._grad_fn if self._base is None else view_grad_fn(self)

    @property
    def requires_grad(self):
        """Whether gradients are computed for this tensor."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(bool(value))

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if self._grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want "
                               "to use a computed variable in a subgraph that doesn't require differentiation "
                               "use var_no_grad = var.detach().")
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self):
        """The accumulated gradient (leaves, or tensors that called ``retain_grad``)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError("assigned grad has data of a different size")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError("assigned grad has data of a different type")
        self._grad = value

    @grad.deleter
    def grad(self):
        self._grad = None

    @property
    def data(self):
        """A tensor sharing this one's memory, detached and with its own version counter."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def _version(self):
        return self._version_box[0]

    def _bump(self):
        self._version_box[0] += 1

    @property
    def retains_grad(self):
        """Whether this non-leaf tensor keeps its ``.grad``."""
        ex = self._extra
        return bool(ex and ex.get("retains_grad"))

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor during backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is None or self.retains_grad:
            return
        import weakref
        ref = weakref.ref(self)

        def hook(g):
            t = ref()
            if t is None:
                return None
            if t._grad is None:
                t._grad = g if state.enabled else Tensor._make(np.array(g._data))
            else:
                t._grad = t._grad + g
            return None
        # retain hooks run after the user's tensor hooks (the engine calls them last)
        node = self._grad_fn
        if node._retain is None:
            node._retain = {}
        node._retain[self._output_nr] = hook
        self._ex()["retains_grad"] = True

    def register_hook(self, hook):
        """Register ``hook(grad) -> Tensor or None`` run when this tensor's gradient is computed.

        Returns a handle whose ``remove()`` unregisters it.

        Examples
        --------
        >>> import cygrad
        >>> x = cygrad.ones(2, requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 10)
        >>> (x * 2).sum().backward(); x.grad
        tensor([20., 20.])
        >>> h.remove()
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            d = self._ex().setdefault("hooks", {})
        else:
            d = self._grad_fn._tensor_pre_hooks(self._output_nr)
        return _add_hook(d, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Register ``hook(tensor)`` run after a leaf's ``.grad`` has been accumulated."""
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        return _add_hook(self._ex().setdefault("post_acc_hooks", {}), hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate the gradient of this tensor into the leaves' ``.grad``.

        See :func:`cygrad.autograd.backward`.

        Examples
        --------
        >>> import cygrad
        >>> x = cygrad.tensor([1.0, 2.0], requires_grad=True)
        >>> (x ** 2).sum().backward(); x.grad
        tensor([2., 4.])
        """
        from .autograd.engine import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self):
        """A tensor sharing memory (and version counter) with this one, outside the graph."""
        return Tensor._make(self._data, box=self._version_box, base=self._base)

    def detach_(self):
        """Detach this tensor from the graph in place."""
        self._grad_fn = None
        self._requires_grad = False
        return self

    # ---- conversion ---------------------------------------------------------------------------
    def numpy(self, *, force=False):
        """The underlying NumPy array (shares memory); raises if the tensor requires grad."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return np.array(a, copy=True) if copy else a

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        """The data as (nested) Python lists."""
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()).item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __hash__(self):
        return id(self)

    def __contains__(self, element):
        return bool((self == element).any())

    def __reduce_ex__(self, proto):
        return (_rebuild, (self._data, self._requires_grad))

    def __deepcopy__(self, memo):
        if self._grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol at the moment.")
        t = Tensor._make(np.array(self._data, copy=True), self._requires_grad)
        if type(self) is not Tensor:
            t2 = object.__new__(type(self))
            for s in Tensor.__slots__[:-1]:
                setattr(t2, s, getattr(t, s))
            if hasattr(self, "__dict__"):
                import copy
                t2.__dict__.update(copy.deepcopy(self.__dict__, memo))
            t = t2
        if self._grad is not None:
            t._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t

    def to(self, *args, **kwargs):
        """Convert dtype and/or device: ``to(dtype)``, ``to('cpu')``, ``to(other)``, ``to(device, dtype)``."""
        dt = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {list(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dt = a.dtype
            elif isinstance(a, (str, device)) or type(a).__name__ == "device":
                if isinstance(a, str) and a.replace("torch.", "").replace("cygrad.", "") in D._BY_NAME \
                        and a not in ("cpu",):
                    dt = a
                else:
                    dev = a
            elif isinstance(a, bool):
                continue
            elif a is not None:
                dt = a
        check_device(dev)
        if dt is None:
            return self.clone() if copy else self
        from .ops.elementwise import cast
        return cast(self, D.to_dtype(dt), copy)

    def type(self, dtype=None):
        """Without argument, the type name (``'torch.FloatTensor'``); else convert."""
        if dtype is None:
            return self._type_name()
        return self.to(dtype)

    def _type_name(self):
        return {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "int64": "torch.LongTensor",
                "int32": "torch.IntTensor", "bool": "torch.BoolTensor", "float16": "torch.HalfTensor",
                "int16": "torch.ShortTensor", "int8": "torch.CharTensor",
                "uint8": "torch.ByteTensor"}[self.dtype.name]

    def type_as(self, other):
        """Convert to ``other``'s dtype."""
        return self.to(other.dtype)

    def float(self):
        """Convert to float32."""
        return self.to(D.float32)

    def double(self):
        """Convert to float64."""
        return self.to(D.float64)

    def half(self):
        return self.to(D.float16)

    def long(self):
        """Convert to int64."""
        return self.to(D.int64)

    def int(self):
        """Convert to int32."""
        return self.to(D.int32)

    def short(self):
        return self.to(D.int16)

    def bool(self):
        """Convert to bool."""
        return self.to(D.bool)

    def byte(self):
        return self.to(D.uint8)

    def char(self):
        return self.to(D.int8)

    def cpu(self):
        """This tensor (cygrad is CPU-only)."""
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("cygrad runs on the CPU only; .cuda() is not available")

    def pin_memory(self):
        return self

    def share_memory_(self):
        return self

    def is_shared(self):
        return False

    def __repr__(self):
        from ._format import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # ---- new_* constructors -------------------------------------------------------------------
    def _like(self, dtype):
        return self.dtype if dtype is None else D.to_dtype(dtype)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from . import _creation as C
        return C.zeros(*size, dtype=self._like(dtype), device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from . import _creation as C
        return C.ones(*size, dtype=self._like(dtype), device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        from . import _creation as C
        return C.empty(*size, dtype=self._like(dtype), device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from . import _creation as C
        return C.full(size, fill_value, dtype=self._like(dtype), device=device, requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from . import _creation as C
        return C.tensor(data, dtype=self._like(dtype), device=device, requires_grad=requires_grad)


from .autograd import function as _function  # noqa: E402
_function.Tensor = Tensor


def _rebuild(data, requires_grad):
    return Tensor._make(data, requires_grad)


def _wrap_dim(dim, ndim):
    """Normalise a possibly negative dim, raising IndexError like torch."""
    n = ndim if ndim > 0 else 1
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n if ndim > 0 else 0
