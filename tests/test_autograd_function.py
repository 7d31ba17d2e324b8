"""Custom ``autograd.Function``s, once_differentiable, gradcheck/gradgradcheck and anomaly
detection, checked against PyTorch (installed as a test oracle)."""
import numpy as np
import pytest

import cygrad

torch = pytest.importorskip("torch")

from _oracle import _np, assert_same, compare, raises_like  # noqa: E402

LIBS = [cygrad, torch]

pytestmark = [pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled"),
              pytest.mark.filterwarnings("ignore:Error detected in")]


# ---- Function definitions, built for either library ------------------------------------------
def make_functions(T):
    F = T.autograd.Function
    once = T.autograd.function.once_differentiable

    class Cube(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * g

    class ExpOut(F):  # saves its output
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y

    class ScaleAdd(F):  # non-tensor args; backward returns None for them
        @staticmethod
        def forward(ctx, x, y, alpha, name):
            ctx.alpha = alpha
            ctx.name = name
            ctx.record = list(ctx.needs_input_grad)
            return x + alpha * y

        @staticmethod
        def backward(ctx, g):
            nx, ny = ctx.needs_input_grad[:2]
            return (g if nx else None), (g * ctx.alpha if ny else None), None, None

    class SplitSum(F):  # two outputs
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2, x.sum()

        @staticmethod
        def backward(ctx, g1, g2):
            x, = ctx.saved_tensors
            return g1 * 2 + g2 * T.ones_like(x)

    class WithFloor(F):  # a float output marked non-differentiable, and an integer output
        @staticmethod
        def forward(ctx, x):
            fl = x.floor()
            i = x.argmax()
            ctx.mark_non_differentiable(fl)
            return x * 2, fl, i

        @staticmethod
        def backward(ctx, g, gfl, gi):
            return g * 2

    class NoMaterialize(F):  # backward sees None for unused outputs
        seen = []

        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x.clone(), x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            NoMaterialize.seen.append((g1 is None, g2 is None))
            r = T.zeros_like(g1 if g1 is not None else g2)
            if g1 is not None:
                r = r + g1
            if g2 is not None:
                r = r + g2 * 3
            return r

    class Materialize(F):  # default: zeros for unused outputs
        seen = []

        @staticmethod
        def forward(ctx, x):
            return x.clone(), x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            Materialize.seen.append((g1 is None, g2 is None, float(g1.abs().sum())))
            return g1 + g2 * 3

    class OnceSquare(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g

    class SetupCube(F):  # forward without ctx + setup_context
        @staticmethod
        def forward(x, k):
            return x ** 3 * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, k = inputs
            ctx.k = k
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * g * ctx.k, None

    class WrongCube(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x ** 2 * g  # wrong factor

    class Mul2(F):  # two tensor inputs, differentiable backward (for gradgradcheck)
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b.sin()

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g * b.sin(), g * a * b.cos()

    return {k: v for k, v in locals().items() if isinstance(v, type)}


FN = {lib: make_functions(lib) for lib in LIBS}
GE = {cygrad: cygrad.autograd.GradcheckError, torch: torch.autograd.gradcheck.__globals__["GradcheckError"]}
ANOMALY = {cygrad: cygrad.autograd.is_anomaly_enabled, torch: torch.is_anomaly_enabled}


# ---- basic Function behaviour -------------------------------------------------------------------
def test_custom_function_forward_backward_and_node_name():
    def f(T):
        x = T.tensor([1.0, -2.0, 0.5], requires_grad=True)
        y = FN[T]["Cube"].apply(x)
        y.sum().backward()
        return [y, x.grad, type(y.grad_fn).__name__, y.requires_grad, y.is_leaf]
    compare(f)


def test_saved_output():
    def f(T):
        x = T.tensor([0.0, 1.0], requires_grad=True)
        y = FN[T]["ExpOut"].apply(x)
        (y * 2).sum().backward()
        return [y, x.grad]
    compare(f)


def test_saved_tensors_freed_after_backward():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = FN[T]["Cube"].apply(x)
        y.sum().backward()
        y.grad_fn.saved_tensors
    raises_like(f, RuntimeError, "after they have already been freed")

    def g(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = FN[T]["Cube"].apply(x)
        y.sum().backward(retain_graph=True)
        s, = y.grad_fn.saved_tensors
        return [s, s is x]
    compare(g)


def test_saved_tensor_modified_in_place():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        h = x * 1
        y = FN[T]["Cube"].apply(h)
        h.add_(1)
        y.sum().backward()
    raises_like(f, RuntimeError, "modified by an inplace operation")


def test_non_tensor_args_and_needs_input_grad():
    def f(T):
        a = T.tensor([1.0, 2.0], requires_grad=True)
        b = T.tensor([3.0, 4.0])
        y = FN[T]["ScaleAdd"].apply(a, b, 0.5, "nm")
        y.sum().backward()
        return [y, a.grad, b.grad, y.grad_fn.record == [True, False, False, False], y.grad_fn.name == "nm"]
    compare(f)

    def g(T):
        a = T.tensor([1.0, 2.0])
        b = T.tensor([3.0, 4.0], requires_grad=True)
        y = FN[T]["ScaleAdd"].apply(a, b, 2.0, "nm")
        y.sum().backward()
        return [a.grad, b.grad, y.grad_fn.record == [False, True, False, False]]
    compare(g)


def test_no_recording_when_no_input_requires_grad():
    def f(T):
        y = FN[T]["Cube"].apply(T.tensor([2.0]))
        with T.no_grad():
            z = FN[T]["Cube"].apply(T.tensor([2.0], requires_grad=True))
        return [y, y.requires_grad, y.grad_fn is None, z.requires_grad]
    compare(f)


def test_forward_runs_without_recording():
    for T in LIBS:
        seen = []

        class Probe(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                seen.append(T.is_grad_enabled())
                y = x * 2
                seen.append(y.requires_grad)
                return y

            @staticmethod
            def backward(ctx, g):
                return g * 2

        Probe.apply(T.ones(2, requires_grad=True))
        assert seen == [False, False]


def test_multiple_outputs():
    def f(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        a, s = FN[T]["SplitSum"].apply(x)
        (a * a).sum().add(s * 10).backward()
        return [a, s, x.grad, a.grad_fn is s.grad_fn]
    compare(f)


def test_mark_non_differentiable():
    def f(T):
        x = T.tensor([3.5, 1.0, 2.0], requires_grad=True)
        v, fl, i = FN[T]["WithFloor"].apply(x)
        (v * T.tensor([1.0, 10.0, 100.0])).sum().backward()
        return [v, fl, i, v.requires_grad, fl.requires_grad, i.requires_grad, fl.grad_fn is None, x.grad]
    compare(f)


def test_set_materialize_grads_false_passes_none():
    for T in LIBS:
        NM = FN[T]["NoMaterialize"]
        NM.seen.clear()
        x = T.tensor([1.0, 2.0], requires_grad=True)
        a, b = NM.apply(x)
        b.sum().backward()
        assert NM.seen == [(True, False)]
        np.testing.assert_allclose(_np(x.grad), [3.0, 3.0])


def test_materialize_grads_default_passes_zeros():
    for T in LIBS:
        M = FN[T]["Materialize"]
        M.seen.clear()
        x = T.tensor([1.0, 2.0], requires_grad=True)
        a, b = M.apply(x)
        b.sum().backward()
        assert M.seen == [(False, False, 0.0)]
        np.testing.assert_allclose(_np(x.grad), [3.0, 3.0])


def test_setup_context_style():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = FN[T]["SetupCube"].apply(x, 2.0)
        y.sum().backward()
        return [y, x.grad]
    compare(f)


def test_function_cannot_be_instantiated_wrongly_and_wrong_grad_count():
    for T in LIBS:
        class Bad(T.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x * y

            @staticmethod
            def backward(ctx, g):
                return g  # one gradient for two inputs

        with pytest.raises(RuntimeError, match="incorrect number of gradients"):
            Bad.apply(T.ones(2, requires_grad=True), T.ones(2, requires_grad=True)).sum().backward()


def test_backward_returning_wrong_shape():
    for T in LIBS:
        class BadShape(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, g):
                return T.ones(5)

        with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
            BadShape.apply(T.ones(2, 3, requires_grad=True)).sum().backward()


def test_custom_function_higher_order():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = FN[T]["Cube"].apply(x)
        g, = T.autograd.grad(y.sum(), x, create_graph=True)
        gg, = T.autograd.grad(g.sum(), x)
        return [g, gg]
    compare(f)


def test_once_differentiable():
    def f(T):
        x = T.tensor([1.0, 3.0], requires_grad=True)
        y = FN[T]["OnceSquare"].apply(x)
        y.sum().backward()
        return x.grad
    compare(f)

    def g(T):
        x = T.tensor([1.0, 3.0], requires_grad=True)
        y = FN[T]["OnceSquare"].apply(x)
        gx, = T.autograd.grad((y * y).sum(), x, create_graph=True)  # grad_output 2y requires grad
        assert gx.requires_grad
        gx.sum().backward()
    raises_like(g, RuntimeError, "trying to differentiate twice a function that was marked with @once_differentiable")

    def h(T):  # without create_graph the result doesn't require grad
        x = T.tensor([1.0, 3.0], requires_grad=True)
        gx, = T.autograd.grad(FN[T]["OnceSquare"].apply(x).sum(), x)
        return [gx, gx.requires_grad]
    compare(h)

    def k(T):  # grad_outputs that don't require grad: nothing to differentiate, no error node
        x = T.tensor([1.0, 3.0], requires_grad=True)
        gx, = T.autograd.grad(FN[T]["OnceSquare"].apply(x).sum(), x, create_graph=True)
        return [gx, gx.requires_grad]
    compare(k)


# ---- gradcheck ---------------------------------------------------------------------------------
def test_gradcheck_and_gradgradcheck_custom_function():
    for T in LIBS:
        fns = FN[T]
        x = T.tensor([0.3, -1.2, 2.0], dtype=T.float64, requires_grad=True)
        y = T.tensor([0.7, 0.1, -0.4], dtype=T.float64, requires_grad=True)
        assert T.autograd.gradcheck(fns["Cube"].apply, (x,))
        assert T.autograd.gradcheck(fns["Mul2"].apply, (x, y))
        assert T.autograd.gradgradcheck(fns["Cube"].apply, (x,))
        assert T.autograd.gradgradcheck(fns["Mul2"].apply, (x, y))
        assert T.autograd.gradcheck(lambda a: fns["SplitSum"].apply(a), (x,))


def test_gradcheck_detects_wrong_backward():
    for T in LIBS:
        x = T.tensor([0.3, -1.2, 2.0], dtype=T.float64, requires_grad=True)
        with pytest.raises(GE[T],
                           match="Jacobian mismatch for output 0 with respect to input 0"):
            T.autograd.gradcheck(FN[T]["WrongCube"].apply, (x,))
        assert T.autograd.gradcheck(FN[T]["WrongCube"].apply, (x,), raise_exception=False) is False
        assert issubclass(GE[T], RuntimeError)


def test_gradcheck_second_input_mismatch():
    for T in LIBS:
        class WrongB(T.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                ctx.save_for_backward(a, b)
                return a * b

            @staticmethod
            def backward(ctx, g):
                a, b = ctx.saved_tensors
                return g * b, g * b  # wrong for b

        a = T.tensor([1.0, 2.0], dtype=T.float64, requires_grad=True)
        b = T.tensor([3.0, 5.0], dtype=T.float64, requires_grad=True)
        with pytest.raises(GE[T], match="with respect to input 1"):
            T.autograd.gradcheck(WrongB.apply, (a, b))


def test_gradgradcheck_detects_wrong_double_backward():
    for T in LIBS:
        class BadDouble(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x ** 3

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                # right value, wrong derivative: x.detach() cuts the second-order path
                return 3 * x.detach() ** 2 * g

        x = T.tensor([0.5, 1.5], dtype=T.float64, requires_grad=True)
        assert T.autograd.gradcheck(BadDouble.apply, (x,))
        with pytest.raises(GE[T], match="Jacobian mismatch"):
            T.autograd.gradgradcheck(BadDouble.apply, (x,))


def test_gradcheck_builtin_ops():
    x = cygrad.tensor([[0.3, 1.2], [0.8, 2.0]], dtype=cygrad.float64, requires_grad=True)
    w = cygrad.tensor([[0.5], [-1.0]], dtype=cygrad.float64, requires_grad=True)
    assert cygrad.autograd.gradcheck(lambda a, b: (a @ b).tanh() * a.log(), (x, w))
    assert cygrad.autograd.gradgradcheck(lambda a, b: (a @ b).tanh() * a.log(), (x, w))


# ---- anomaly detection ---------------------------------------------------------------------------
def test_detect_anomaly_names_the_op():
    for T in LIBS:
        x = T.tensor([0.0, 1.0], requires_grad=True)
        with pytest.warns(UserWarning) if T is torch else _nullcontext():
            with T.autograd.detect_anomaly():
                y = (x.sqrt() * 0).sum()
                with pytest.raises(RuntimeError, match=r"Function 'SqrtBackward0' returned nan values in its 0th output."):
                    y.backward()
        assert not ANOMALY[T]()
        # outside anomaly mode the NaN passes silently
        x.grad = None
        (x.sqrt() * 0).sum().backward()
        assert np.isnan(_np(x.grad)[0])


def test_set_detect_anomaly():
    for T in LIBS:
        x = T.tensor([0.0], requires_grad=True)
        T.autograd.set_detect_anomaly(True)
        try:
            assert ANOMALY[T]()
            y = (x.sqrt() * 0).sum()
            with pytest.raises(RuntimeError, match="SqrtBackward0"):
                y.backward()
        finally:
            T.autograd.set_detect_anomaly(False)
        assert not ANOMALY[T]()


def test_anomaly_custom_function_name():
    for T in LIBS:
        class NanBack(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, g):
                return g * float("nan")

        x = T.ones(2, requires_grad=True)
        with T.autograd.detect_anomaly(check_nan=True):
            with pytest.raises(RuntimeError, match="Function 'NanBackBackward' returned nan values in its 0th output"):
                NanBack.apply(x).sum().backward()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
