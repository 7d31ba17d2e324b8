"""cygrad.optim.surgery: multi-task gradient surgery (PCGrad, CAGrad, GradNorm)."""
import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

import cygrad
from cygrad._random import rng as _cg_rng
from cygrad.optim.surgery import (CAGrad, GradNorm, PCGrad, cagrad_combine, cagrad_step, gradnorm_scale,
                                  pcgrad, pcgrad_combine)

EPS = 1e-8


def T(a, dtype=cygrad.float64, requires_grad=False):
    return cygrad.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=requires_grad)


def conflicting_pair(r, n=5):
    """Two random vectors with a negative inner product (bounded away from 0)."""
    while True:
        a, b = r.standard_normal(n), r.standard_normal(n)
        if a @ b < -0.1:
            return a, b


# -- numpy references -----------------------------------------------------------------------------
def np_pcgrad(a, b, eps=EPS):
    d = a @ b
    return a - d / (b @ b + eps) * b if d < 0 else a


def np_pcgrad_paper(G, order, eps=EPS, reduction="sum"):
    """Yu et al. 2020, Algorithm 1: project each g_i on the normal plane of every conflicting g_j
    (original g_j, progressively modified g_i), in the given order, then merge."""
    k = len(G)
    out = []
    for i in range(k):
        g = G[i].copy()
        for j in order[i]:
            assert j != i
            d = g @ G[j]
            if d < 0:
                g = g - d / (G[j] @ G[j] + eps) * G[j]
        out.append(g)
    s = np.sum(out, axis=0)
    return s / k if reduction == "mean" else s


def cagrad_dual(G, c, w):
    g0 = G.mean(0)
    gw = w @ G
    return gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw)


def cagrad_direction(G, c, w, rescale=1, eps=EPS):
    g0 = G.mean(0)
    gw = w @ G
    d = g0 + c * np.linalg.norm(g0) / (np.linalg.norm(gw) + eps) * gw
    return d / {0: 1.0, 1: 1 + c * c, 2: 1 + c}[rescale]


def orders_from_seed(seed, k):
    """The visiting orders pcgrad_combine documents for a generator seeded with ``seed``."""
    r = _cg_rng(cygrad.Generator().manual_seed(seed))
    return [r.permutation(np.array([j for j in range(k) if j != i])).tolist() for i in range(k)]


# -- primitives -----------------------------------------------------------------------------------
def test_pcgrad_closed_form_matches_numpy():
    r = np.random.default_rng(0)
    for _ in range(20):
        a, b = conflicting_pair(r)
        out = pcgrad(T(a), T(b))
        np.testing.assert_allclose(out.numpy(), a - (a @ b) / (b @ b + EPS) * b, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(out.numpy(), np_pcgrad(a, b), rtol=1e-13, atol=1e-14)
    # a hand example: [1, 1] against [-1, 0] loses its first coordinate
    np.testing.assert_allclose(pcgrad(T([1.0, 1.0]), T([-1.0, 0.0]), eps=0).numpy(), [0.0, 1.0])


def test_pcgrad_no_conflict_returns_g_a_unchanged():
    a, b = T([1.0, 2.0, -1.0]), T([0.5, 0.0, 0.3])  # a.b = 0.2 > 0
    out = pcgrad(a, b)
    np.testing.assert_array_equal(out.numpy(), a.numpy())
    assert out is not a  # a copy: modifying the result does not touch g_a
    out.add_(1.0)
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0, -1.0])
    # orthogonal gradients do not conflict either
    np.testing.assert_array_equal(pcgrad(T([1.0, 0.0]), T([0.0, 5.0])).numpy(), [1.0, 0.0])


def test_pcgrad_result_orthogonal_to_g_b_after_conflict():
    r = np.random.default_rng(1)
    for _ in range(20):
        a, b = conflicting_pair(r, n=7)
        out = pcgrad(T(a), T(b)).numpy()
        # out . b = (a.b) * eps / (|b|^2 + eps)
        assert abs(out @ b) <= 2 * abs(a @ b) * EPS / (b @ b) + 1e-13
        # the projection never lengthens the gradient
        assert np.linalg.norm(out) <= np.linalg.norm(a)
        np.testing.assert_allclose(pcgrad(T(a), T(b), eps=0).numpy() @ b, 0.0, atol=1e-13)


def test_pcgrad_accepts_any_equal_shape_and_float32():
    r = np.random.default_rng(2)
    a, b = conflicting_pair(r, n=6)
    out = pcgrad(T(a.reshape(2, 3)), T(b.reshape(2, 3)))
    assert tuple(out.shape) == (2, 3)
    np.testing.assert_allclose(out.numpy().reshape(-1), np_pcgrad(a, b), rtol=1e-13)
    out32 = pcgrad(T(a, dtype=cygrad.float32), T(b, dtype=cygrad.float32))
    assert out32.dtype == cygrad.float32
    np.testing.assert_allclose(out32.numpy(), np_pcgrad(a, b), rtol=1e-5, atol=1e-6)


def test_cagrad_step_lambda_cases():
    r = np.random.default_rng(3)
    for _ in range(10):
        a, b = conflicting_pair(r)
        ta, tb = T(a), T(b)
        np.testing.assert_array_equal(cagrad_step(ta, tb, lam=0.0).numpy(), a)
        np.testing.assert_array_equal(cagrad_step(ta, tb, lam=1.0).numpy(), pcgrad(ta, tb).numpy())
        np.testing.assert_array_equal(cagrad_step(ta, tb, lam=-2.5).numpy(), a)
        lam = r.uniform(0, 2)
        np.testing.assert_allclose(cagrad_step(ta, tb, lam=lam).numpy(),
                                   a - lam * (a @ b) / (b @ b + EPS) * b, rtol=1e-13, atol=1e-14)
    # no conflict: unchanged whatever lam
    a, b = T([1.0, 1.0]), T([1.0, -0.5])
    np.testing.assert_array_equal(cagrad_step(a, b, lam=3.0).numpy(), [1.0, 1.0])


def test_gradnorm_scale_values():
    g = T([3.0, -1.0, 2.0])
    assert gradnorm_scale(g, g).item() == 1.0  # identical: exp(0)
    assert gradnorm_scale(g, 7.0 * g).item() == pytest.approx(1.0, abs=1e-9)  # same direction
    for alpha in (0.2, 0.5, 1.3):
        # exp(2 alpha), up to the eps / |g| terms
        assert gradnorm_scale(g, -g, alpha=alpha).item() == pytest.approx(math.exp(2 * alpha), rel=1e-7)
    # closed form, and the 2 sin(theta / 2) reading
    r = np.random.default_rng(4)
    for _ in range(10):
        a, b = r.standard_normal(5), r.standard_normal(5)
        alpha = r.uniform(0.1, 1.0)
        ref = math.exp(alpha * np.linalg.norm(a / (np.linalg.norm(a) + EPS) - b / (np.linalg.norm(b) + EPS)))
        out = gradnorm_scale(T(a), T(b), alpha=alpha)
        assert out.dim() == 0
        assert out.item() == pytest.approx(ref, rel=1e-12)
        theta = math.acos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert out.item() == pytest.approx(math.exp(alpha * 2 * math.sin(theta / 2)), rel=1e-7)


@pytest.mark.parametrize("fn", [pcgrad, cagrad_step, gradnorm_scale])
def test_primitive_input_errors(fn):
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        fn(cygrad.zeros(3), cygrad.zeros(4))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(6,\)"):
        fn(cygrad.zeros(2, 3), cygrad.zeros(6))
    with pytest.raises(TypeError, match="must be Tensor"):
        fn([1.0, 2.0], cygrad.zeros(2))
    with pytest.raises(TypeError, match="g_b"):
        fn(cygrad.zeros(2), np.zeros(2))
    with pytest.raises(TypeError, match="floating-point"):
        fn(cygrad.tensor([1, 2]), cygrad.tensor([1, 2]))
    with pytest.raises(TypeError, match="same dtype"):
        fn(cygrad.zeros(2, dtype=cygrad.float32), cygrad.zeros(2, dtype=cygrad.float64))
    with pytest.raises(ValueError, match="eps"):
        fn(cygrad.ones(2), cygrad.ones(2), eps=-1.0)


@pytest.mark.parametrize("conflict", [True, False])
def test_primitives_gradcheck(conflict):
    r = np.random.default_rng(5 if conflict else 6)
    while True:
        a, b = r.standard_normal(4), r.standard_normal(4)
        if (a @ b < -0.3) if conflict else (a @ b > 0.3):
            break
    for f in (lambda x, y: pcgrad(x, y),
              lambda x, y: cagrad_step(x, y, lam=0.6),
              lambda x, y: gradnorm_scale(x, y, alpha=0.7)):
        inputs = (T(a, requires_grad=True), T(b, requires_grad=True))
        assert cygrad.autograd.gradcheck(f, inputs)
    if conflict:  # the projection really depends on g_b
        x, y = T(a, requires_grad=True), T(b, requires_grad=True)
        pcgrad(x, y).sum().backward()
        assert np.abs(y.grad.numpy()).max() > 1e-3


# -- PCGrad, N tasks --------------------------------------------------------------------------------
def test_pcgrad_combine_two_tasks_is_pair_formula_summed():
    r = np.random.default_rng(7)
    for _ in range(10):
        a, b = conflicting_pair(r, n=6)
        out = pcgrad_combine([T(a), T(b)])
        ref = pcgrad(T(a), T(b)) + pcgrad(T(b), T(a))
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(out.numpy(), np_pcgrad(a, b) + np_pcgrad(b, a), rtol=1e-13, atol=1e-14)
        mean = pcgrad_combine([T(a), T(b)], reduction="mean")
        np.testing.assert_allclose(mean.numpy(), ref.numpy() / 2, rtol=1e-14, atol=1e-15)


def test_pcgrad_combine_without_conflicts_is_plain_sum():
    r = np.random.default_rng(8)
    G = np.abs(r.standard_normal((4, 6)))  # all inner products positive
    out = pcgrad_combine([T(g) for g in G], generator=cygrad.Generator().manual_seed(0))
    np.testing.assert_allclose(out.numpy(), G.sum(0), rtol=1e-14)
    out = pcgrad_combine(T(G), reduction="mean")
    np.testing.assert_allclose(out.numpy(), G.mean(0), rtol=1e-14)


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_pcgrad_combine_matches_numpy_paper_algorithm(k, reduction):
    r = np.random.default_rng(10 + k)
    order_mattered = False
    for trial in range(30):
        G = r.standard_normal((k, 4)) * np.exp(r.standard_normal((k, 1)))
        order = [r.permutation([j for j in range(k) if j != i]).tolist() for i in range(k)]
        out = pcgrad_combine([T(g) for g in G], order=order, reduction=reduction)
        ref = np_pcgrad_paper(G, order, reduction=reduction)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)
        rev = [o[::-1] for o in order]
        if not np.allclose(np_pcgrad_paper(G, rev, reduction=reduction), ref, rtol=1e-9):
            order_mattered = True
            np.testing.assert_allclose(pcgrad_combine(T(G), order=rev, reduction=reduction).numpy(),
                                       np_pcgrad_paper(G, rev, reduction=reduction), rtol=1e-12, atol=1e-13)
    assert order_mattered  # the comparison exercised order-dependent cases


def test_pcgrad_combine_seeded_order_is_reproducible_and_documented():
    r = np.random.default_rng(20)
    G = r.standard_normal((4, 3))
    grads = [T(g) for g in G]
    a = pcgrad_combine(grads, generator=cygrad.Generator().manual_seed(5))
    b = pcgrad_combine(grads, generator=cygrad.Generator().manual_seed(5))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), np_pcgrad_paper(G, orders_from_seed(5, 4)), rtol=1e-12, atol=1e-13)
    # the global generator
    cygrad.manual_seed(11)
    c = pcgrad_combine(grads)
    cygrad.manual_seed(11)
    d = pcgrad_combine(grads)
    np.testing.assert_array_equal(c.numpy(), d.numpy())
    np.testing.assert_allclose(c.numpy(), np_pcgrad_paper(G, orders_from_seed(11, 4)), rtol=1e-12, atol=1e-13)
    # different seeds draw different orders (some of which give different results here)
    results = {tuple(np.round(pcgrad_combine(grads, generator=cygrad.Generator().manual_seed(s)).numpy(), 10))
               for s in range(20)}
    expected = {tuple(np.round(np_pcgrad_paper(G, orders_from_seed(s, 4)), 10)) for s in range(20)}
    assert results == expected and len(results) > 1


def test_pcgrad_combine_shared_mask_and_shapes():
    r = np.random.default_rng(21)
    G = r.standard_normal((3, 2, 4))
    order = [[1, 2], [2, 0], [0, 1]]
    total = np_pcgrad_paper(G.reshape(3, -1), order)
    mask = np.array([True] * 5 + [False] * 3)
    out = pcgrad_combine(T(G), order=order, reduction="mean", shared=mask)
    assert tuple(out.shape) == (2, 4)
    np.testing.assert_allclose(out.numpy().reshape(-1), np.where(mask, total / 3, total), rtol=1e-13)
    out_t = pcgrad_combine(T(G), order=order, reduction="mean", shared=cygrad.tensor(mask))
    np.testing.assert_array_equal(out_t.numpy(), out.numpy())


def test_pcgrad_combine_errors():
    g = [cygrad.ones(3), -cygrad.ones(3)]
    with pytest.raises(ValueError, match="reduction"):
        pcgrad_combine(g, reduction="max")
    with pytest.raises(ValueError, match="at least one"):
        pcgrad_combine([])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(4,\)"):
        pcgrad_combine([cygrad.ones(3), cygrad.ones(4)])
    with pytest.raises(TypeError, match="floating-point"):
        pcgrad_combine([cygrad.tensor([1, 2])])
    with pytest.raises(TypeError, match="must be Tensor"):
        pcgrad_combine([np.ones(3)])
    with pytest.raises(ValueError, match="permutation"):
        pcgrad_combine(g, order=[[0], [0]])
    with pytest.raises(ValueError, match="one sequence per task"):
        pcgrad_combine(g, order=[[1]])
    with pytest.raises(ValueError, match="shared"):
        pcgrad_combine(g, shared=[True, True, True])
    with pytest.raises(ValueError, match="one entry per"):
        pcgrad_combine(g, reduction="mean", shared=[True])
    with pytest.raises(TypeError, match="Generator"):
        pcgrad_combine(g, generator=np.random.default_rng(0))


def test_pcgrad_combine_gradcheck():
    r = np.random.default_rng(22)
    G = r.standard_normal((3, 3))
    order = [[2, 1], [0, 2], [1, 0]]
    # keep away from the kinks: every inner product tested by the algorithm is far from 0
    for i in range(3):
        g = G[i].copy()
        for j in order[i]:
            d = g @ G[j]
            assert abs(d) > 0.05
            if d < 0:
                g = g - d / (G[j] @ G[j] + EPS) * G[j]
    inputs = tuple(T(g, requires_grad=True) for g in G)
    assert cygrad.autograd.gradcheck(lambda *gs: pcgrad_combine(list(gs), order=order), inputs)


# -- CAGrad ---------------------------------------------------------------------------------------
def _grid_weights_k2(G, c):
    """Independent solution for k = 2: brute force over w = (t, 1 - t), refined by a bounded scalar search."""
    ts = np.linspace(0.0, 1.0, 20001)
    W = np.stack([ts, 1 - ts], 1)
    g0 = G.mean(0)
    vals = (W @ G) @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(W @ G, axis=1)
    t0 = ts[np.argmin(vals)]
    lo, hi = max(0.0, t0 - 1e-4), min(1.0, t0 + 1e-4)
    res = minimize_scalar(lambda t: cagrad_dual(G, c, np.array([t, 1 - t])), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-12})
    t = res.x if res.fun <= vals.min() else t0
    return np.array([t, 1 - t])


def test_cagrad_two_tasks_matches_brute_force():
    r = np.random.default_rng(30)
    for trial in range(15):
        G = r.standard_normal((2, 5)) * np.exp(r.standard_normal((2, 1)))
        c = r.uniform(0.1, 1.2)
        d, w = cagrad_combine([T(g) for g in G], c=c, return_weights=True)
        w_ref = _grid_weights_k2(G, c)
        assert cagrad_dual(G, c, w) <= cagrad_dual(G, c, w_ref) + 1e-10 * np.abs(G).max() ** 2
        np.testing.assert_allclose(d.numpy(), cagrad_direction(G, c, w_ref), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(d.numpy(), cagrad_direction(G, c, w), rtol=1e-12, atol=1e-14)


def test_cagrad_c_zero_is_mean_gradient():
    r = np.random.default_rng(31)
    G = r.standard_normal((3, 6))
    for rescale in (0, 1, 2):
        d = cagrad_combine(T(G), c=0.0, rescale=rescale)
        np.testing.assert_allclose(d.numpy(), G.mean(0), rtol=1e-14)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_cagrad_weights_beat_uniform_and_duality_holds(k):
    r = np.random.default_rng(40 + k)
    for trial in range(10):
        G = r.standard_normal((k, 8)) * np.exp(0.5 * r.standard_normal((k, 1)))
        c = r.uniform(0.2, 1.0)
        d, w = cagrad_combine(T(G), c=c, rescale=0, return_weights=True)
        assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
        F = cagrad_dual(G, c, w)
        assert F <= cagrad_dual(G, c, np.full(k, 1 / k)) + 1e-12
        d = d.numpy()
        g0 = G.mean(0)
        # d sits on the trust region's boundary and achieves the dual value (strong duality) ...
        assert np.linalg.norm(d - g0) == pytest.approx(c * np.linalg.norm(g0), rel=1e-6)
        assert (G @ d).min() == pytest.approx(F, rel=1e-6, abs=1e-9)
        # ... which no other point of the ball beats (primal: max_d min_i g_i . d)
        u = r.standard_normal((2000, 8))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        rad = c * np.linalg.norm(g0) * r.uniform(0, 1, (2000, 1)) ** (1 / 8)
        others = (G @ (g0 + rad * u).T).min(0)
        assert others.max() <= (G @ d).min() + 1e-9


def _face_enumeration_weights_k3(G, c):
    """Independent k = 3 solver: best of the vertices, a bounded 1-D search on each edge, and an
    unconstrained Nelder-Mead search inside the triangle (accepted only if it stays inside)."""
    F = lambda v: cagrad_dual(G, c, v)
    E = np.eye(3)
    cands = [E[i] for i in range(3)]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        res = minimize_scalar(lambda t: F(t * E[i] + (1 - t) * E[j]), bounds=(0, 1), method="bounded",
                              options={"xatol": 1e-13})
        cands.append(res.x * E[i] + (1 - res.x) * E[j])
    inner = lambda ab: np.array([ab[0], ab[1], 1 - ab[0] - ab[1]])
    res = minimize(lambda ab: F(inner(ab)) if ab[0] + ab[1] <= 1 else 1e6, [1 / 3, 1 / 3], method="Nelder-Mead",
                   bounds=[(0, 1), (0, 1)], options={"xatol": 1e-13, "fatol": 1e-16, "maxiter": 10000})
    if np.all(inner(res.x) >= 0):
        cands.append(inner(res.x))
    return min(cands, key=F)


def test_cagrad_three_tasks_matches_independent_solver():
    r = np.random.default_rng(50)
    s = np.linspace(0, 1, 301)
    grid = np.array([(a, b, max(1 - a - b, 0.0)) for a in s for b in s if a + b <= 1 + 1e-12])
    for trial in range(10):
        G = r.standard_normal((3, 5))
        c = r.uniform(0.2, 1.0)
        d, w = cagrad_combine(T(G), c=c, return_weights=True)
        g0 = G.mean(0)
        vals = (grid @ G) @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(grid @ G, axis=1)
        w_ref = _face_enumeration_weights_k3(G, c)
        F = cagrad_dual(G, c, w)
        assert F <= vals.min() + 1e-12
        assert F <= cagrad_dual(G, c, w_ref) + 1e-12
        np.testing.assert_allclose(w, w_ref, atol=1e-6)
        np.testing.assert_allclose(d.numpy(), cagrad_direction(G, c, w_ref), rtol=1e-6, atol=1e-8)


def test_cagrad_rescale_and_errors():
    r = np.random.default_rng(51)
    G = [T(g) for g in r.standard_normal((3, 4))]
    c = 0.7
    d0 = cagrad_combine(G, c=c, rescale=0).numpy()
    np.testing.assert_allclose(cagrad_combine(G, c=c, rescale=1).numpy(), d0 / (1 + c * c), rtol=1e-12)
    np.testing.assert_allclose(cagrad_combine(G, c=c, rescale=2).numpy(), d0 / (1 + c), rtol=1e-12)
    np.testing.assert_allclose(cagrad_combine(G, c=c).numpy(), d0 / (1 + c * c), rtol=1e-12)  # default 1
    with pytest.raises(ValueError, match="c must be"):
        cagrad_combine(G, c=-0.1)
    with pytest.raises(ValueError, match="rescale"):
        cagrad_combine(G, rescale=3)
    with pytest.raises(ValueError, match="same shape"):
        cagrad_combine([cygrad.ones(2), cygrad.ones(3)])
    # all-zero gradients give a zero direction (no nan)
    z = cagrad_combine([cygrad.zeros(3, dtype=cygrad.float64)] * 2)
    np.testing.assert_array_equal(z.numpy(), np.zeros(3))


# -- models shared by the wrapper tests -------------------------------------------------------------
def _data(n=48, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 4))
    u, v = r.standard_normal(4), r.standard_normal(4)
    ya = np.tanh(X @ u)[:, None]
    yb = (2.0 * np.sin(X @ v) - 0.5 * (X @ u))[:, None]
    return X, ya, yb


class TwoTask(cygrad.nn.Module):
    def __init__(self, hidden=8, seed=1):
        super().__init__()
        cygrad.manual_seed(seed)
        self.trunk = cygrad.nn.Sequential(cygrad.nn.Linear(4, hidden, dtype=cygrad.float64), cygrad.nn.Tanh())
        self.head_a = cygrad.nn.Linear(hidden, 1, dtype=cygrad.float64)
        self.head_b = cygrad.nn.Linear(hidden, 1, dtype=cygrad.float64)

    def losses(self, X, ya, yb):
        h = self.trunk(T(X))
        return [((self.head_a(h) - T(ya)) ** 2).mean(), ((self.head_b(h) - T(yb)) ** 2).mean()]


def _task_flat_grads(losses, params):
    out = []
    for loss in losses:
        gs = cygrad.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out.append(cygrad.cat([(g if g is not None else cygrad.zeros_like(p)).reshape(-1)
                               for g, p in zip(gs, params)]))
    return out


def _grad_vector(params):
    return np.concatenate([p.grad.numpy().reshape(-1) for p in params])


# -- wrappers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrapper", ["pcgrad", "cagrad"])
def test_wrapper_backward_matches_functional(wrapper):
    X, ya, yb = _data()
    model = TwoTask()
    params = list(model.parameters())
    if wrapper == "pcgrad":
        opt = PCGrad(cygrad.optim.SGD(params, lr=0.1), generator=cygrad.Generator().manual_seed(3))
    else:
        opt = CAGrad(cygrad.optim.SGD(params, lr=0.1), c=0.4)
    losses = model.losses(X, ya, yb)
    flats = _task_flat_grads(losses, params)
    if wrapper == "pcgrad":
        ref = pcgrad_combine(flats, generator=cygrad.Generator().manual_seed(3))
    else:
        ref, w = cagrad_combine(flats, c=0.4, return_weights=True)
    opt.zero_grad()
    opt.backward(losses)
    np.testing.assert_allclose(_grad_vector(params), ref.numpy(), rtol=1e-13, atol=1e-15)
    if wrapper == "cagrad":
        np.testing.assert_allclose(opt.last_weights, w, rtol=1e-12)
    # the two tasks conflict in this setup (seed 1): the result differs from the plain sum
    assert float((flats[0] * flats[1]).sum()) < -0.05
    assert not np.allclose(ref.numpy(), (flats[0] + flats[1]).numpy(), rtol=1e-6)
    before = [p.detach().numpy().copy() for p in params]
    opt.step()
    for p, b, g in zip(params, before, np.split(ref.numpy(), np.cumsum([p.numel() for p in params])[:-1])):
        np.testing.assert_allclose(p.detach().numpy().reshape(-1), b.reshape(-1) - 0.1 * g, rtol=1e-13, atol=1e-15)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.zero_grad(set_to_none=False)


def test_wrapper_unreached_parameters_and_accumulation():
    X, ya, yb = _data()
    model = TwoTask()
    unused = cygrad.zeros(3, dtype=cygrad.float64, requires_grad=True)
    frozen = cygrad.zeros(2, dtype=cygrad.float64)  # does not require grad
    params = list(model.parameters())
    opt = PCGrad(cygrad.optim.SGD(params + [unused, frozen], lr=0.1), generator=cygrad.Generator().manual_seed(0))
    losses = model.losses(X, ya, yb)
    flats = _task_flat_grads(losses, params)
    opt.zero_grad()
    opt.backward(losses)
    assert unused.grad is None and frozen.grad is None
    ref = pcgrad_combine(flats, generator=cygrad.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(_grad_vector(params), ref, rtol=1e-13, atol=1e-15)
    # a loss that reaches only head_a: its gradient is zero for everything else
    opt.backward([(model.head_a.weight ** 2).sum()])
    np.testing.assert_allclose(model.head_a.weight.grad.numpy(),
                               ref[8 * 4 + 8: 8 * 4 + 8 + 8].reshape(1, 8) + 2 * model.head_a.weight.detach().numpy(),
                               rtol=1e-13)
    np.testing.assert_allclose(_grad_vector(model.trunk.parameters()), ref[:40], rtol=1e-13)  # untouched
    # mean reduction: the trunk (shared by both tasks) is averaged, the heads are summed
    opt_m = PCGrad(cygrad.optim.SGD(params, lr=0.1), reduction="mean", generator=cygrad.Generator().manual_seed(0))
    opt_m.zero_grad()
    opt_m.backward(model.losses(X, ya, yb))
    n_trunk = sum(p.numel() for p in model.trunk.parameters())
    expected = np.concatenate([ref[:n_trunk] / 2, ref[n_trunk:]])
    np.testing.assert_allclose(_grad_vector(params), expected, rtol=1e-13, atol=1e-15)


def test_wrapper_delegation_and_errors():
    model = TwoTask()
    base = cygrad.optim.Adam(model.parameters(), lr=0.01)
    opt = CAGrad(base)
    assert opt.param_groups is base.param_groups
    assert opt.state is base.state
    X, ya, yb = _data()
    opt.zero_grad()
    opt.backward(model.losses(X, ya, yb))
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == sorted(base.state_dict()["state"][0])
    model2 = TwoTask(seed=2)
    opt2 = CAGrad(cygrad.optim.Adam(model2.parameters(), lr=0.5))
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01
    np.testing.assert_array_equal(opt2.state[opt2.param_groups[0]["params"][0]]["exp_avg"].numpy(),
                                  base.state[base.param_groups[0]["params"][0]]["exp_avg"].numpy())
    assert "CAGrad(c=0.5" in repr(opt) and "Adam" in repr(opt)
    with pytest.raises(TypeError, match="not an Optimizer"):
        PCGrad([cygrad.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match="sequence of scalar Tensors"):
        opt.backward(model.losses(X, ya, yb)[0])
    with pytest.raises(TypeError, match=r"losses\[1\]"):
        opt.backward([model.losses(X, ya, yb)[0], 1.0])
    with pytest.raises(RuntimeError, match="scalar outputs"):
        opt.backward([cygrad.ones(2, requires_grad=True) * 2])
    with pytest.raises(ValueError, match="reduction"):
        PCGrad(base, reduction="max")
    with pytest.raises(ValueError, match="rescale"):
        CAGrad(base, rescale=5)


@pytest.mark.parametrize("make", [lambda b, m: PCGrad(b, generator=cygrad.Generator().manual_seed(0)),
                                  lambda b, m: CAGrad(b, c=0.5),
                                  lambda b, m: GradNorm(b, 2, m.trunk.parameters(), alpha=1.5, lr=0.025)],
                         ids=["pcgrad", "cagrad", "gradnorm"])
def test_two_task_model_trains(make):
    X, ya, yb = _data()
    model = TwoTask(hidden=16)
    opt = make(cygrad.optim.Adam(model.parameters(), lr=0.02), model)
    first = [l.item() for l in model.losses(X, ya, yb)]
    for _ in range(150):
        opt.zero_grad()
        opt.backward(model.losses(X, ya, yb))
        opt.step()
    last = [l.item() for l in model.losses(X, ya, yb)]
    assert last[0] < 0.3 * first[0] and last[1] < 0.3 * first[1], (first, last)


# -- GradNorm -------------------------------------------------------------------------------------
def test_gradnorm_one_update_matches_formula():
    """Tiny model: shared W (2,), heads a, b; L1 = (a W.x1 - y1)^2, L2 = (b W.x2 - y2)^2."""
    x1, x2, y1, y2 = np.array([1.0, 2.0]), np.array([-1.0, 0.5]), 3.0, -4.0
    W = T([0.3, -0.2], requires_grad=True)
    a = T(1.5, requires_grad=True)
    b = T(-0.7, requires_grad=True)
    lr_model, lr_w, alpha = 0.05, 0.025, 1.5
    opt = GradNorm(cygrad.optim.SGD([W, a, b], lr=lr_model), num_tasks=2, shared_parameters=[W], alpha=alpha,
                   lr=lr_w)
    Wn, an, bn = W.detach().numpy().copy(), 1.5, -0.7
    w = np.ones(2)
    m, v = np.zeros(2), np.zeros(2)
    L0 = None
    for t in range(1, 4):
        h1, h2 = Wn @ x1, Wn @ x2
        r1, r2 = an * h1 - y1, bn * h2 - y2
        L = np.array([r1 ** 2, r2 ** 2])
        gW = [2 * r1 * an * x1, 2 * r2 * bn * x2]
        ga, gb = 2 * r1 * h1, 2 * r2 * h2
        if L0 is None:
            L0 = L.copy()
        # model gradient of w1 L1 + w2 L2
        gW_tot, ga_tot, gb_tot = w[0] * gW[0] + w[1] * gW[1], w[0] * ga, w[1] * gb
        # GradNorm loss gradient w.r.t. the weights
        norms = np.array([np.linalg.norm(gW[0]), np.linalg.norm(gW[1])])
        G = w * norms
        ratio = L / L0
        rr = ratio / ratio.mean()
        target = G.mean() * rr ** alpha
        gw = np.sign(G - target) * norms
        # Adam on w, then renormalise to sum 2
        m = 0.9 * m + 0.1 * gw
        v = 0.999 * v + 0.001 * gw ** 2
        w_new = w - lr_w * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        w_new = np.maximum(w_new, 2e-6)
        w_new = 2 * w_new / w_new.sum()

        losses = [(a * (W * T(x1)).sum() - y1) ** 2, (b * (W * T(x2)).sum() - y2) ** 2]
        opt.zero_grad()
        opt.backward(losses)
        np.testing.assert_allclose(W.grad.numpy(), gW_tot, rtol=1e-13)
        np.testing.assert_allclose(a.grad.item(), ga_tot, rtol=1e-13)
        np.testing.assert_allclose(b.grad.item(), gb_tot, rtol=1e-13)
        assert opt.last_gradnorm_loss == pytest.approx(np.abs(G - target).sum(), rel=1e-12)
        opt.step()
        np.testing.assert_allclose(opt.weights.numpy(), w_new, rtol=1e-12)
        assert opt.initial_losses == pytest.approx(tuple(L0), rel=1e-14)
        Wn, an, bn = Wn - lr_model * gW_tot, an - lr_model * ga_tot, bn - lr_model * gb_tot
        np.testing.assert_allclose(W.detach().numpy(), Wn, rtol=1e-13)
        w = w_new
    assert not np.allclose(w, 1.0)  # the weights really moved


def test_gradnorm_weights_positive_sum_to_k_and_state():
    X, ya, yb = _data()
    model = TwoTask()
    # three tasks of very different scales
    opt = GradNorm(cygrad.optim.SGD(model.parameters(), lr=0.05), num_tasks=3,
                   shared_parameters=model.trunk[0].parameters(), alpha=1.0, lr=0.1)
    assert opt.weights.numpy().tolist() == [1.0, 1.0, 1.0]
    for _ in range(40):
        la, lb = model.losses(X, ya, yb)
        opt.zero_grad()
        opt.backward([la, 20 * lb, 0.01 * (la + lb)])
        opt.step()
        w = opt.weights.numpy()
        assert np.all(w > 0) and w.sum() == pytest.approx(3.0, rel=1e-12)
    assert w.max() / w.min() > 1.5  # the weights adapted to the scales
    sd = opt.state_dict()
    model2 = TwoTask()
    opt2 = GradNorm(cygrad.optim.SGD(model2.parameters(), lr=0.5), 3, model2.trunk[0].parameters())
    opt2.load_state_dict(sd)
    np.testing.assert_array_equal(opt2.weights.numpy(), w)
    assert opt2.initial_losses == opt.initial_losses
    assert opt2.param_groups[0]["lr"] == 0.05
    # modifying the returned weights does not change the optimizer's
    opt.weights.mul_(0)
    np.testing.assert_array_equal(opt.weights.numpy(), w)


def test_gradnorm_errors():
    model = TwoTask()
    base = cygrad.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="num_tasks"):
        GradNorm(base, 0, model.trunk.parameters())
    with pytest.raises(TypeError, match="num_tasks"):
        GradNorm(base, 2.0, model.trunk.parameters())
    with pytest.raises(ValueError, match="empty"):
        GradNorm(base, 2, [])
    with pytest.raises(ValueError, match="require grad"):
        GradNorm(base, 2, [cygrad.zeros(2)])
    opt = GradNorm(base, 2, model.trunk.parameters())
    X, ya, yb = _data()
    with pytest.raises(ValueError, match="expected 2 losses"):
        opt.backward(model.losses(X, ya, yb)[:1])
    la, lb = model.losses(X, ya, yb)
    with pytest.raises(ValueError, match="positive"):
        opt.backward([la, lb * 0])
    assert opt.initial_losses is None


# -- torch as an oracle ---------------------------------------------------------------------------
def _torch_pcgrad(torch, grads, order, eps=EPS):
    out = []
    for i, g in enumerate(grads):
        g = g.clone()
        for j in order[i]:
            d = torch.dot(g, grads[j])
            if d < 0:
                g = g - d / (torch.dot(grads[j], grads[j]) + eps) * grads[j]
        out.append(g)
    return torch.stack(out).sum(0)


def _torch_cagrad(torch, grads, c, rescale=1):
    """The CAGrad authors' algorithm (SLSQP on the k x k Gram matrix), in torch."""
    G = torch.stack(grads, 1)  # (n, k)
    k = G.shape[1]
    GG = (G.t() @ G).numpy()
    g0_norm = math.sqrt(GG.mean())
    x0 = np.ones(k) / k
    cc = c * g0_norm

    def obj(x):
        return x @ GG @ x0 + cc * math.sqrt(x @ GG @ x)
    res = minimize(obj, x0, bounds=[(0, 1)] * k, constraints={"type": "eq", "fun": lambda x: 1 - x.sum()},
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    ww = torch.tensor(res.x, dtype=G.dtype)
    gw = (G * ww.view(1, -1)).sum(1)
    g = G.mean(1) + cc / (gw.norm() + EPS) * gw
    return g / (1 + c ** 2) if rescale == 1 else g


def _three_task_models(torch, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((32, 5))
    Y = np.stack([np.sin(X @ r.standard_normal(5)), -np.tanh(X @ r.standard_normal(5)),
                  X @ r.standard_normal(5)], 1)
    shapes = {"W1": (6, 5), "b1": (6,), "Wh": (3, 6), "bh": (3,)}
    init = {k: r.standard_normal(s) * 0.7 for k, s in shapes.items()}
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    cp = {k: T(v, requires_grad=True) for k, v in init.items()}

    def losses(lib, p):
        x = lib.tensor(X, dtype=lib.float64)
        h = lib.tanh(x @ p["W1"].T + p["b1"])
        out = h @ p["Wh"].T + p["bh"]
        y = lib.tensor(Y, dtype=lib.float64)
        return [((out[:, i] - y[:, i]) ** 2).mean() for i in range(3)]
    return tp, cp, losses


def test_pcgrad_wrapper_matches_torch_implementation(torch):
    tp, cp, losses = _three_task_models(torch)
    names = ["W1", "b1", "Wh", "bh"]
    t_losses = losses(torch, tp)
    t_grads = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(l, [tp[n] for n in names],
                                                                     retain_graph=True)]) for l in t_losses]
    c_params = [cp[n] for n in names]
    for seed in range(4):
        opt = PCGrad(cygrad.optim.SGD(c_params, lr=0.1), generator=cygrad.Generator().manual_seed(seed))
        opt.zero_grad()
        opt.backward(losses(cygrad, cp))
        ref = _torch_pcgrad(torch, t_grads, orders_from_seed(seed, 3))
        np.testing.assert_allclose(_grad_vector(c_params), ref.numpy(), rtol=1e-10, atol=1e-12)
    # the three task gradients conflict (some projection is applied)
    dots = np.array([[float(a @ b) for b in t_grads] for a in t_grads])
    assert (dots < 0).any()


def test_cagrad_wrapper_matches_torch_implementation(torch):
    tp, cp, losses = _three_task_models(torch, seed=1)
    names = ["W1", "b1", "Wh", "bh"]
    t_losses = losses(torch, tp)
    t_grads = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(l, [tp[n] for n in names],
                                                                     retain_graph=True)]) for l in t_losses]
    c_params = [cp[n] for n in names]
    for c in (0.2, 0.5, 0.9):
        opt = CAGrad(cygrad.optim.SGD(c_params, lr=0.1), c=c)
        opt.zero_grad()
        opt.backward(losses(cygrad, cp))
        ref = _torch_cagrad(torch, t_grads, c)
        np.testing.assert_allclose(_grad_vector(c_params), ref.numpy(), rtol=1e-6, atol=1e-8)
