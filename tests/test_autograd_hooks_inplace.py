"""Tensor hooks and in-place safety (version counters, leaf checks, in-place on non-leaves and
views), checked against PyTorch (installed as a test oracle)."""
import numpy as np
import pytest

import cygrad

torch = pytest.importorskip("torch")

from _oracle import _np, assert_same, compare, raises_like  # noqa: E402

LIBS = [cygrad, torch]


# ---- tensor hooks --------------------------------------------------------------------------------
def test_leaf_hook_modifies_gradient_and_remove():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        seen = []
        h = x.register_hook(lambda g: seen.append(g.clone()) or g * 10)
        (x * x).sum().backward()
        g1 = x.grad.clone()
        h.remove()
        x.grad = None
        (x * x).sum().backward()
        return [g1, x.grad, seen]
    compare(f)


def test_non_leaf_hook_modifies_downstream_gradient():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        seen = []
        y.register_hook(lambda g: seen.append(g.clone()))  # observe only (returns None)
        y.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
        return [x.grad, seen]
    compare(f)


def test_hooks_run_in_registration_order_and_chain():
    def f(T):
        x = T.tensor([1.0], requires_grad=True)
        y = x * 1
        order = []
        y.register_hook(lambda g: order.append("a") or g * 2)
        y.register_hook(lambda g: order.append("b") or g + 1)
        x.register_hook(lambda g: order.append("x") or None)
        y.sum().backward()
        return [order == ["a", "b", "x"], x.grad]
    compare(f)


def test_hook_removed_mid_list_and_handle_context_manager():
    for T in LIBS:
        x = T.tensor([1.0], requires_grad=True)
        calls = []
        h1 = x.register_hook(lambda g: calls.append(1))
        h2 = x.register_hook(lambda g: calls.append(2))
        h3 = x.register_hook(lambda g: calls.append(3))
        h2.remove()
        h2.remove()  # idempotent
        (x * 2).sum().backward()
        assert calls == [1, 3]
        h1.remove(), h3.remove()
        with x.register_hook(lambda g: g * 0):
            (x * 2).sum().backward()
        (x * 2).sum().backward()
        np.testing.assert_allclose(_np(x.grad), [4.0])


def test_register_hook_on_tensor_without_grad():
    raises_like(lambda T: T.ones(2).register_hook(lambda g: g), RuntimeError,
                "cannot register a hook on a tensor that doesn't require gradient")


def test_hook_with_retain_grad_sees_modified_gradient():
    # retain_grad's .grad reflects hooks registered before and after it (torch runs it last)
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        y.register_hook(lambda g: g * 2)
        y.retain_grad()
        y.register_hook(lambda g: g + 100)
        y.sum().backward()
        return [y.grad, x.grad]
    compare(f)


def test_hook_on_multi_use_tensor_fires_once_with_total():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        seen = []
        y.register_hook(lambda g: seen.append(g.clone()))
        (y * 2 + y * 3).sum().backward()
        return [seen, x.grad]
    compare(f)


def test_post_accumulate_grad_hook():
    def f(T):
        p = T.tensor([1.0, 2.0], requires_grad=True)
        seen = []

        def hook(t):
            seen.append(t.grad.clone())
            with T.no_grad():
                t -= 0.5 * t.grad  # the optimizer-in-backward pattern
            t.grad = None

        p.register_post_accumulate_grad_hook(hook)
        (p * p).sum().backward()
        return [seen, p, p.grad]
    compare(f)


def test_post_accumulate_grad_hook_errors():
    def f(T):
        x = T.ones(2, requires_grad=True)
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    raises_like(f, RuntimeError, "post accumulate grad hooks cannot be registered on non-leaf tensors")


def test_leaf_hook_runs_before_accumulation():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        snap = []
        x.register_hook(lambda g: snap.append(x.grad))
        (x * 2).sum().backward()
        (x * 2).sum().backward()
        return [snap[0], snap[1], x.grad]
    compare(f)


def test_grad_fn_hooks():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        log = []
        y.grad_fn.register_prehook(lambda gout: log.append(("pre", gout[0].clone())))
        y.grad_fn.register_hook(lambda gin, gout: log.append(("post", gin[0].clone())) or (gin[0] * 2,) + tuple(gin[1:]))
        y.sum().backward()
        return [[t for _, t in log], [k for k, _ in log] == ["pre", "post"], x.grad]
    compare(f)


# ---- version counter ----------------------------------------------------------------------------
def test_version_counter_increments():
    def f(T):
        x = T.zeros(3)
        r = [x._version]
        x.add_(1)
        r.append(x._version)
        x[0] = 5
        r.append(x._version)
        x.mul_(2).sub_(1)
        r.append(x._version)
        v = x[1:]
        v.fill_(7)
        r += [x._version, v._version, x]
        y = x + 1  # out-of-place: no bump
        r.append(x._version)
        return r
    compare(f)


def test_in_place_on_saved_tensor_raises():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        z = y.exp()  # saves its output
        z.add_(1)
        z.sum().backward()
    raises_like(f, RuntimeError, "modified by an inplace operation")

    def g(T):
        a = T.tensor([1.0, 2.0], requires_grad=True)
        b = a * 1
        c = b * b  # saves its input b
        b.mul_(2)
        c.sum().backward()
    raises_like(g, RuntimeError, "modified by an inplace operation")

    def h(T):
        a = T.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        b = a * 1
        c = b.sigmoid()
        b[0].zero_()  # through a view: shares the counter
        c = c * b  # b is saved after the change: fine
        b.add_(1)
        c.sum().backward()
    raises_like(h, RuntimeError, "modified by an inplace operation")


def test_in_place_on_unsaved_tensor_is_fine():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x + 1  # add saves nothing
        z = y * 2  # mul by a python scalar saves nothing about y
        y.mul_(5)
        z.sum().backward()
        return [x.grad, y]
    compare(f)


def test_in_place_modification_message_mentions_versions():
    a = cygrad.tensor([1.0, 2.0], requires_grad=True)
    b = a.exp()
    b.add_(1)
    with pytest.raises(RuntimeError, match=r"is at version 1; expected version 0 instead"):
        b.sum().backward()


# ---- in-place on leaves --------------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda x: x.add_(1), lambda x: x.mul_(2), lambda x: x.sub_(1), lambda x: x.div_(2),
    lambda x: x.zero_(), lambda x: x.fill_(1.0), lambda x: x.exp_(), lambda x: x.clamp_(0, 1),
    lambda x: x.copy_(x.detach() * 2), lambda x: x.__setitem__(0, 3.0), lambda x: x.__iadd__(1),
])
def test_in_place_on_leaf_requiring_grad_raises(op):
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        op(x)
    raises_like(f, RuntimeError, "a leaf Variable that requires grad is being used in an in-place operation.")


def test_in_place_on_view_of_leaf_raises():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        x[0:1].mul_(2)
    raises_like(f, RuntimeError, "a view of a leaf Variable that requires grad is being used in an in-place operation.")


def test_sgd_update_under_no_grad():
    def f(T):
        p = T.tensor([1.0, -2.0, 3.0], requires_grad=True)
        lr = 0.1
        hist = []
        for _ in range(3):
            loss = ((p - 1.0) ** 2).sum()
            loss.backward()
            with T.no_grad():
                p -= lr * p.grad
                p.grad.zero_()
            hist.append(p.clone())
        return [hist, p.requires_grad, p.is_leaf, p.grad, p._version]
    compare(f)


def test_in_place_on_leaf_not_requiring_grad_with_grad_operand():
    # a leaf without requires_grad becomes part of the graph
    def f(T):
        w = T.tensor([1.0, 2.0], requires_grad=True)
        buf = T.zeros(2)
        buf.add_(w * 3)
        buf.mul_(w)
        buf.sum().backward()
        return [buf.requires_grad, buf.is_leaf, type(buf.grad_fn).__name__, w.grad]
    compare(f)


# ---- in-place on non-leaves ----------------------------------------------------------------------
def test_in_place_chain_on_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y.add_(1)
        y.mul_(3)
        y.pow_(2)
        y.sum().backward()
        return [y, x.grad, y.is_leaf]
    compare(f)


def test_in_place_with_tensor_operand_on_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w = T.tensor([0.5, -1.0, 2.0], requires_grad=True)
        y = x * 2  # a mul by a Python number saves nothing about x's result
        y.mul_(w)
        y.add_(w, alpha=2)
        y.div_(x)
        y.sum().backward()
        return [y, x.grad, w.grad]
    compare(f)


def test_in_place_after_op_that_saved_its_output_raises():
    # exp/relu/sigmoid save their result: changing it in place (even by another in-place op) is caught
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x.exp()
        y.mul_(T.tensor([0.5, -1.0, 2.0], requires_grad=True))
        y.sum().backward()
    raises_like(f, RuntimeError, "modified by an inplace operation")

    def g(T):
        x = T.tensor([-1.0, 0.5, 2.0], requires_grad=True)
        y = x * 3
        y.relu_()  # saves its result (which is y)
        y.clamp_(max=4.0)
        y.sum().backward()
    raises_like(g, RuntimeError, "modified by an inplace operation")

    def h(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        y.exp_()
        y.add_(1)
        y.sum().backward()
    raises_like(h, RuntimeError, "modified by an inplace operation")


def test_in_place_op_saving_its_own_input():
    # y.mul_(w) / y.pow_(2) need the *old* y for backward
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w = T.tensor([2.0, 3.0, 4.0], requires_grad=True)
        y = x + 1
        y.mul_(w)
        y.pow_(2)
        y.sin_()
        y.sum().backward()
        return [y, x.grad, w.grad]
    compare(f, rtol=1e-5)


def test_setitem_on_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y[0] = 0
        (y * y).sum().backward()
        return [y, x.grad]
    compare(f)


def test_setitem_with_grad_value():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        v = T.tensor([10.0, 20.0], requires_grad=True)
        y = x * 1
        y[1:3] = v * v
        y[T.tensor([0])] = 7.0
        (y * T.arange(1.0, 5.0)).sum().backward()
        return [y, x.grad, v.grad]
    compare(f)


def test_in_place_through_view_of_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y[1:] *= 2
        (y * y).sum().backward()
        return [y, x.grad]
    compare(f)


def test_in_place_through_view_updates_base_grad_fn():
    def f(T):
        x = T.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * 2
        row = y[0]
        row.mul_(x[1])  # in-place on a view with a grad-requiring operand
        z = y.sum() + row.sum()
        z.backward()
        return [y, row, x.grad]
    compare(f)


def test_in_place_on_view_then_use_base_saved_before_raises():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        z = y.sigmoid()  # saves output z
        z[0].mul_(2)
        z.sum().backward()
    raises_like(f, RuntimeError, "modified by an inplace operation")


def test_in_place_relu_and_clamp_non_leaf():
    def f(T):
        x = T.tensor([-1.0, 0.5, 2.0], requires_grad=True)
        y = x * 3
        y.clamp_(max=4.0)  # clamp saves its input (the old y)
        y.relu_()
        y.sum().backward()
        return [y, x.grad]
    compare(f)


def test_copy_into_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        s = T.tensor([5.0], requires_grad=True)
        y = x * 2
        y.copy_(s * 3)  # broadcasts
        (y * T.tensor([1.0, 2.0])).sum().backward()
        return [y, x.grad, s.grad]
    compare(f)


def test_zero_and_fill_non_leaf():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        z = x * 3
        y.zero_()
        z.fill_(4.0)
        (y + z + x).sum().backward()
        return [y, z, x.grad]
    compare(f)


# ---- .data --------------------------------------------------------------------------------------
def test_data_in_place_on_leaf_allowed():
    def f(T):
        p = T.tensor([1.0, 2.0], requires_grad=True)
        p.data.mul_(3)
        p.data.add_(T.ones(2))
        r = [p, p.requires_grad, p.grad_fn is None]
        (p * p).sum().backward()
        return r + [p.grad]
    compare(f)


def test_data_setter_keeps_requires_grad_and_hooks():
    def f(T):
        p = T.tensor([1.0, 2.0], requires_grad=True)
        p.register_hook(lambda g: g * 2)
        p.data = T.tensor([3.0, 4.0])
        (p * p).sum().backward()
        return [p, p.grad, p.requires_grad]
    compare(f)


# ---- views: nested, non-slice views, view replay -------------------------------------------------
def test_in_place_through_nested_view():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
        y = x * 1
        v = y[::2]
        w = v[1:]
        w.mul_(5)
        (y * y).sum().backward()
        return [x.grad, y, v, w]
    compare(f)


def test_in_place_through_transpose_and_reshape_views():
    def f(T):
        x = T.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * 1
        y.t().mul_(T.tensor([1.0, 10.0]))
        z = x * 1
        z.view(4)[0] = 10.0
        (y * y + z * z).sum().backward()
        return [x.grad, y, z]
    compare(f)


def test_in_place_on_zero_dim_view():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        e = y[1]
        e.mul_(3)
        r = [y, e._version == y._version]
        (y * y).sum().backward()
        with T.no_grad():
            x0 = x[0]
            x[0] = 5.0
        return r + [x.grad, x0]  # x0 is a view: sees the write
    compare(f)


def test_view_replay_after_base_modified():
    # a view created before an in-place op on its base must see that op in backward
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        v = y[1:]
        y.mul_(3)
        (v * v).sum().backward()
        return [x.grad, v]
    compare(f)

    def g(T):
        x = T.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * 1
        r0, r1 = y[0], y[1]
        r0.mul_(x[1])  # through one view; r1 is another view of the same base
        (r1 * r1).sum().add((y * y).sum()).backward()
        return [x.grad, y, type(r1.grad_fn).__name__ != "NoneType"]
    compare(g)


def test_metadata_in_place_ops():
    def f(T):
        x = T.ones(2, 2, requires_grad=True)
        y = x * T.tensor([[1.0, 2.0], [3.0, 4.0]])
        v = y._version
        y.unsqueeze_(0)
        r = [y.shape == (1, 2, 2)]
        y.transpose_(1, 2)
        y.squeeze_()
        y.t_()
        y.t_()
        r += [y.shape == (2, 2), y, y._version > v]
        (y * T.tensor([[1.0, 10.0], [100.0, 1000.0]])).sum().backward()
        return r + [x.grad]
    compare(f)

    def g(T):
        z = T.zeros(2, 3)
        z.unsqueeze_(1)
        z.t_() if z.dim() <= 2 else z.squeeze_(1)
        return [z.shape == (2, 3)]
    compare(g)
    raises_like(lambda T: T.ones(2, 2, requires_grad=True).t_(), RuntimeError, "a leaf Variable that requires grad")
