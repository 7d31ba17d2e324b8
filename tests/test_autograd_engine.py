"""The backward engine: deep graphs (no recursion), graph lifetime (no global tape, no reference
cycles), gradient accumulation in diamonds and repeated uses, multiple roots."""
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import cygrad

torch = pytest.importorskip("torch")

from _oracle import _np, assert_same, compare  # noqa: E402

LIBS = [cygrad, torch]


def run_python(code, env=None, timeout=300):
    """Run ``code`` in a fresh interpreter (a crash must not take pytest down)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=e)


# ---- deep graphs -------------------------------------------------------------------------------
def test_deep_graph_backward_and_free_in_subprocess():
    code = """
        import sys, cygrad
        sys.setrecursionlimit(1000)  # the engine and graph teardown must not recurse
        x = cygrad.tensor([1.0, 2.0], requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y * 1.0001
        y.sum().backward()
        print(repr(x.grad.tolist()))
        del y  # free the (already released) graph
        # a graph that was never run: its saved tensors and 100k nodes are freed on del
        y = x
        for _ in range(100_000):
            y = (y + 1.0).exp().log()
        del y
        # a deep graph with saved tensors, run twice with retain_graph
        y = x
        for _ in range(30_000):
            y = y.sin()
        s = y.sum()
        s.backward(retain_graph=True)
        s.backward()
        del s, y
        print("OK")
    """
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split()
    grad = eval(lines[0] if len(lines) == 2 else r.stdout.splitlines()[0])
    np.testing.assert_allclose(grad, [1.0001 ** 100_000] * 2, rtol=1e-2)
    assert r.stdout.strip().endswith("OK")


def test_deep_graph_grad_create_graph():
    x = cygrad.tensor(0.5, dtype=cygrad.float64, requires_grad=True)
    y = x
    for _ in range(2000):
        y = y * 1.0 + 0.0
    y = y ** 2
    g, = cygrad.autograd.grad(y, x, create_graph=True)
    gg, = cygrad.autograd.grad(g, x)
    assert float(g) == pytest.approx(1.0)
    assert float(gg) == pytest.approx(2.0)


# ---- graph lifetime ----------------------------------------------------------------------------
def _builders():
    def plain(x):
        h = x.exp()
        return (h * h).sum(), h

    def saved_output(x):
        h = x * 2
        return h.sigmoid().sum(), h

    def hooked(x):
        h = x.exp()
        h.register_hook(lambda g: g * 2)
        h.retain_grad()
        return (h * x).sum(), h

    def in_place(x):
        h = x * 2
        h.add_(1)
        h.mul_(x)
        h[0] = 3.0
        h[1:] *= 2
        return h.sum(), h

    def custom(x):
        class Twice(cygrad.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                y = a * 2
                ctx.save_for_backward(a, y)
                return y

            @staticmethod
            def backward(ctx, g):
                a, y = ctx.saved_tensors
                return g * 2

        h = x * 3
        return Twice.apply(h).sum(), h

    def second_order(x):
        h = x.exp()
        g, = cygrad.autograd.grad((h * h).sum(), x, create_graph=True)
        return g.sum(), h

    return [plain, saved_output, hooked, in_place, custom, second_order]


@pytest.mark.parametrize("build", _builders(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("run_backward", [False, True])
@pytest.mark.parametrize("collect", [False, True])
def test_graph_freed_after_del_without_global_tape(build, run_backward, collect):
    was = gc.isenabled()
    gc.disable()  # freeing must come from reference counting alone, unless collect
    try:
        x = cygrad.tensor([0.5, 1.5], requires_grad=True)
        out, inter = build(x)
        w_t = weakref.ref(inter)
        w_node = weakref.ref(inter.grad_fn)
        w_out_node = weakref.ref(out.grad_fn)
        if run_backward:
            out.backward()
            assert x.grad is not None
        del inter
        del out
        if collect:
            gc.collect()
        assert w_t() is None, "intermediate tensor kept alive"
        assert w_node() is None, "intermediate node kept alive"
        assert w_out_node() is None, "output node kept alive"
    finally:
        if was:
            gc.enable()


def test_intermediate_alive_while_graph_needs_it():
    x = cygrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    out = (h * h).sum()  # MulBackward0 saved h
    w_node = weakref.ref(h.grad_fn)
    del h
    assert w_node() is not None  # still referenced by the graph of out
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 16.0])


def test_leaf_not_kept_alive_by_its_accumulator():
    gc.collect()
    x = cygrad.tensor([1.0], requires_grad=True)
    (x * 2).sum().backward()
    w = weakref.ref(x)
    del x
    assert w() is None


def test_same_accumulate_grad_node_for_a_leaf():
    x = cygrad.ones(2, requires_grad=True)
    a, b = x * 2, x * 3
    na = [n for n, _ in a.grad_fn.next_functions if n is not None][0]
    nb = [n for n, _ in b.grad_fn.next_functions if n is not None][0]
    assert na is nb


# ---- accumulation ------------------------------------------------------------------------------
def test_diamond_graph():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        a = x * 2
        b = a.exp()
        c = a.sin()
        d = b * c + a
        d.sum().backward()
        return x.grad
    compare(f, rtol=1e-5)


def test_same_tensor_used_twice():
    def f(T):
        x = T.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * x + x
        z = T.stack([y, y]).sum() + (y @ y)
        z.backward()
        return x.grad
    compare(f)


def test_wide_fan_out_fan_in():
    def f(T):
        x = T.tensor([0.5, 1.0], requires_grad=True)
        parts = [x * float(i) for i in range(50)]
        total = parts[0]
        for p in parts[1:]:
            total = total + p * x
        total.sum().backward()
        return x.grad
    compare(f)


def test_multiple_roots_autograd_backward():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y1 = x * 3
        y2 = x ** 2
        T.autograd.backward([y1, y2], [T.tensor([1.0, 0.5]), T.tensor([2.0, 1.0])])
        return x.grad
    compare(f)


def test_multiple_roots_sharing_a_subgraph():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        h = x.exp()
        y1 = (h * 2).sum()
        y2 = (h * h).sum()
        T.autograd.backward([y1, y2])
        return x.grad
    compare(f, rtol=1e-5)


def test_multiple_roots_one_is_ancestor_of_other():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y1 = x * 2
        y2 = (y1 * y1).sum()
        T.autograd.backward([y1, y2], [T.ones(2), None])
        return x.grad
    compare(f)


def test_backward_grad_tensors_count_mismatch():
    for T in LIBS:
        x = T.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError):
            T.autograd.backward([x * 2, x * 3], [T.ones(2)])


def test_backward_through_multi_output_op():
    def f(T):
        x = T.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        a, b = x.unbind(0)
        c, d = (x * 2).chunk(2, dim=1)
        (a * 3 + b.exp()).sum().add((c * d).sum()).backward()
        return x.grad
    compare(f, rtol=1e-5)


def test_unused_output_of_multi_output_op():
    def f(T):
        x = T.tensor([3.0, 1.0, 2.0], requires_grad=True)
        v, i = x.max(dim=0)
        v.backward()
        return [x.grad, i]
    compare(f)


def test_gradient_dtype_follows_input():
    def f(T):
        x = T.tensor([1.0, 2.0], dtype=T.float64, requires_grad=True)
        y = x.float() * 2  # float32 result, float64 leaf
        y.sum().backward()
        return [x.grad, x.grad.dtype == T.float64]
    compare(f)


def test_zero_size_tensor_backward():
    def f(T):
        x = T.ones(0, 3, requires_grad=True)
        (x * 2).sum().backward()
        return x.grad
    compare(f)


def test_no_grad_inside_graph_breaks_path():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        with T.no_grad():
            c = x * 10
        y = (x * c).sum()
        y.backward()
        return x.grad
    compare(f)


def test_backward_reentrant_from_hook():
    # a hook that itself runs a backward pass (reentrant use of the engine)
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        z = T.tensor([3.0], requires_grad=True)
        y = x * 2
        zz = (z * z).sum()

        def hook(g):
            zz.backward()
            with T.enable_grad():
                (z * 2).sum().backward()
            return g

        y.register_hook(hook)
        y.sum().backward()
        return [x.grad, z.grad]
    compare(f)


def test_grad_mode_during_backward_follows_create_graph():
    def f(T):
        seen = []

        class Probe(T.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a * 2

            @staticmethod
            def backward(ctx, g):
                seen.append(("fn", T.is_grad_enabled()))
                return g * 2

        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        y.register_hook(lambda g: seen.append(("hook", T.is_grad_enabled())))
        x.register_hook(lambda g: seen.append(("leaf", T.is_grad_enabled())))
        Probe.apply(y).sum().backward(retain_graph=True)
        g, = T.autograd.grad(Probe.apply(y).sum(), x, create_graph=True)
        return [seen == [("fn", False), ("hook", False), ("leaf", False), ("fn", True), ("hook", True)]
                or seen, T.is_grad_enabled(), g.requires_grad]
    compare(f)


def test_rerun_of_nodes_that_saved_a_scalar():
    # MulBackward0 of ``x * 3`` saves the scalar: a second backward raises (as in torch), while
    # AddBackward0/SumBackward0 save nothing and can run again
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = (x * 3 + 1).sum()
        y.backward()
        y.backward()
    for T in LIBS:
        with pytest.raises(RuntimeError, match="second time"):
            f(T)

    def g(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = (x + 1).sum()
        y.backward()
        y.backward()
        return x.grad
    compare(g)


def test_backward_under_no_grad():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum()
        with T.no_grad():
            y.backward()
        return x.grad
    compare(f, rtol=1e-5)


def test_first_gradient_adopted_only_when_private():
    """A leaf's first gradient becomes its .grad without a copy only when nothing else holds
    it: never the caller's gradient, another leaf's gradient, or one a hook kept."""
    import numpy as np
    a = cygrad.randn(50, requires_grad=True)
    b = cygrad.randn(50, requires_grad=True)
    g = cygrad.randn(50)
    (a + b).backward(g)  # AddBackward passes the same gradient to both inputs
    for leaf in (a, b):
        assert not np.shares_memory(leaf.grad.numpy(), g.numpy())
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.add_(1.0)
    assert cygrad.equal(b.grad, g) and cygrad.equal(a.grad, g + 1)

    x = cygrad.randn(50, requires_grad=True)
    kept = []
    x.register_hook(lambda grad: kept.append(grad))
    (x * 3).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), kept[0].numpy())
    x.grad.zero_()
    assert cygrad.equal(kept[0], cygrad.full((50,), 3.0))

    w = cygrad.randn(50, requires_grad=True)
    w.backward(g)  # a leaf fed directly with the caller's gradient
    assert not np.shares_memory(w.grad.numpy(), g.numpy())
    (w * 2).sum().backward()  # later gradients accumulate in place
    assert cygrad.allclose(w.grad, g + 2)
