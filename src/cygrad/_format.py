"""``repr`` of tensors in PyTorch's style: ``tensor([1., 2.], requires_grad=True)``."""
import numpy as np

from . import _dtype as D


def _summarized(data, threshold=1000, edge=3):
    """The values torch's formatter looks at: only the printed edge items of a large tensor."""
    if data.size <= threshold:
        return data
    for ax in range(data.ndim):
        if data.shape[ax] > 2 * edge:
            idx = np.r_[0:edge, data.shape[ax] - edge:data.shape[ax]]
            data = np.take(data, idx, axis=ax)
    return data


def _float_formatter(data):
    data = _summarized(data)
    fmt = _float_format(data)
    finite = data[np.isfinite(data)]
    if finite.size == 0:  # torch does not pad when there is no finite value
        return fmt
    cands = [fmt(float(v)) for v in (finite.max(), finite.min())] if finite.size else []
    cands += [fmt(float(v)) for v in data[~np.isfinite(data)][:1]] + (["-inf"] if np.any(np.isneginf(data)) else [])
    width = max((len(c) for c in cands), default=0)
    return lambda v: fmt(v).rjust(width)


def _float_format(data):
    finite = data[np.isfinite(data)] if data.size else data
    if finite.size == 0:
        return lambda v: _special(v) or f"{v:.4f}"
    amax = float(np.abs(finite).max())
    amin = float(np.abs(finite[finite != 0]).min()) if np.any(finite != 0) else 0.0
    integral = bool(np.all(finite == np.round(finite)))
    big_range = amin > 0 and amax / amin > 1000
    if integral and not (big_range or amax > 1e8):
        return lambda v: _special(v) or f"{v:.0f}."
    sci = amax > 1e8 or big_range or (not integral and amin > 0 and amin < 1e-4)
    if sci:
        return lambda v: _special(v) or f"{v:.4e}"
    return lambda v: _special(v) or f"{v:.4f}"


def _special(v):
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def _body(data):
    kw = dict(separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, max_line_width=80)
    if data.dtype.kind == "f":
        kw["formatter"] = {"float_kind": _float_formatter(data.astype(np.float64))}
    elif data.dtype == np.bool_:
        w = 5 if not data.all() else 4  # torch pads True to the width of False
        kw["formatter"] = {"bool": lambda v: ("True" if v else "False").rjust(w)}
    if data.size == 0:
        return "[]"
    return np.array2string(data, **kw).replace(", ..., ", ",  ..., ")  # torch: two spaces before ...


def tensor_repr(t):
    data = t._data
    suffix = []
    dt = t.dtype
    if data.size == 0 and data.shape != (0,):
        suffix.append(f"size={tuple(data.shape)}")
    if dt not in (D._default, D.int64, D.bool) or (data.size == 0 and dt is not D._default):
        suffix.append(f"dtype={dt}")
    if t._grad_fn is not None:
        suffix.append(f"grad_fn=<{t._grad_fn.name()}>")
    elif t._requires_grad:
        suffix.append("requires_grad=True")
    body = _body(data)
    return "tensor(" + body + "".join(", " + s for s in suffix) + ")"
