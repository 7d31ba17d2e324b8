"""Learning-rate schedulers: the same lr (and momentum) sequences as torch's."""
import warnings

import numpy as np
import pytest

import cygrad
from cygrad.optim import lr_scheduler as S


def _opt(T, name="SGD", groups=2, **kw):
    ps = [T.zeros(2, requires_grad=True) for _ in range(groups)]
    kw.setdefault("lr", 0.1)
    if groups == 2:
        return getattr(T.optim, name)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": kw["lr"] * 3}], **kw)
    return getattr(T.optim, name)(ps, **kw)


def _run(T, make, steps, opt_name="SGD", opt_kw=None, metrics=None):
    opt = _opt(T, opt_name, **(opt_kw or {}))
    sched = make(T.optim.lr_scheduler, opt)
    lrs, moms = [sched.get_last_lr()], []
    for i in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        lrs.append(list(sched.get_last_lr()))
        g = opt.param_groups[0]
        moms.append(g["betas"][0] if "betas" in g else g.get("momentum"))
    return np.array(lrs, dtype=float), moms, sched


CASES = {
    "lambda": (lambda M, o: M.LambdaLR(o, lambda e: 0.95 ** e + 0.01 * e), 40),
    "lambda_list": (lambda M, o: M.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.9 ** e]), 40),
    "step": (lambda M, o: M.StepLR(o, step_size=7, gamma=0.5), 60),
    "multistep": (lambda M, o: M.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3), 50),
    "exponential": (lambda M, o: M.ExponentialLR(o, gamma=0.93), 60),
    "cosine": (lambda M, o: M.CosineAnnealingLR(o, T_max=17, eta_min=0.001), 100),
    "cosine_warm": (lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01), 80),
    "cosine_warm1": (lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=7), 50),
    "linear": (lambda M, o: M.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=12), 30),
    "linear_default": (lambda M, o: M.LinearLR(o), 30),
    "onecycle_cos": (lambda M, o: M.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=60), 59),
    "onecycle_linear3": (lambda M, o: M.OneCycleLR(o, max_lr=0.5, epochs=5, steps_per_epoch=10,
                                                   anneal_strategy="linear", three_phase=True,
                                                   pct_start=0.25), 49),
    "onecycle_nomom": (lambda M, o: M.OneCycleLR(o, max_lr=0.5, total_steps=40, cycle_momentum=False,
                                                 div_factor=10.0, final_div_factor=100.0), 39),
    "sequential": (lambda M, o: M.SequentialLR(o, [M.LinearLR(o, start_factor=0.1, total_iters=5),
                                                   M.ExponentialLR(o, gamma=0.9),
                                                   M.StepLR(o, step_size=3, gamma=0.5)], milestones=[5, 20]), 45),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schedule_matches_torch(torch, case):
    make, steps = CASES[case]
    opt_kw = dict(momentum=0.9) if case.startswith("onecycle") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, mom_c, _ = _run(cygrad, make, steps, opt_kw=opt_kw)
        ref, mom_t, _ = _run(torch, make, steps, opt_kw=opt_kw)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.array(mom_c, dtype=float), np.array(mom_t, dtype=float), rtol=1e-12)


def test_onecycle_cycles_adam_beta1(torch):
    make = lambda M, o: M.OneCycleLR(o, max_lr=0.01, total_steps=30, base_momentum=0.8, max_momentum=0.9)
    ours, mc, s = _run(cygrad, make, 29, opt_name="Adam")
    ref, mt, _ = _run(torch, make, 29, opt_name="Adam")
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    np.testing.assert_allclose(mc, mt, rtol=1e-12)
    assert s.optimizer.param_groups[0]["betas"][1] == 0.999
    assert min(mc) < 0.81 and max(mc) > 0.89
    with pytest.raises(ValueError, match="Tried to step 31 times"):
        s.step(); s.step()


def test_reduce_lr_on_plateau_matches_torch(torch):
    r = np.random.default_rng(0)
    metrics = list(np.concatenate([np.linspace(1, 0.5, 10), 0.5 + 0.01 * r.random(60)]))
    for kw in [dict(), dict(mode="min", factor=0.5, patience=2, cooldown=3, min_lr=[0.01, 0.05]),
               dict(mode="max", factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", eps=1e-3),
               dict(mode="max", threshold_mode="rel", patience=0, min_lr=1e-3)]:
        make = lambda M, o: M.ReduceLROnPlateau(o, **kw)
        ours, _, sc = _run(cygrad, make, 70, metrics=metrics)
        ref, _, st = _run(torch, make, 70, metrics=metrics)
        np.testing.assert_allclose(ours, ref, rtol=1e-12)
        assert sc.num_bad_epochs == st.num_bad_epochs and sc.best == st.best
    # metric given as a 0-d tensor
    opt = _opt(cygrad)
    s = S.ReduceLROnPlateau(opt, patience=0)
    s.step(cygrad.tensor(1.0)); s.step(cygrad.tensor(2.0))
    assert s.get_last_lr() == pytest.approx([0.01, 0.03])


def test_closed_form_with_epoch_argument(torch):
    def run(T):
        opt = _opt(T)
        s = T.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in [5, 9, 2, 11]:
                s.step(e)
                out.append(s.get_last_lr())
        return np.array(out)
    np.testing.assert_allclose(run(cygrad), run(torch), rtol=1e-12)
    opt = _opt(cygrad)
    s = S.ExponentialLR(opt, gamma=0.9)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        s.step(3)
    assert s.get_last_lr() == pytest.approx([0.1 * 0.9 ** 3, 0.3 * 0.9 ** 3])


def test_state_dict_roundtrip():
    opt = _opt(cygrad)
    s = S.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step(); s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4 and sd["base_lrs"] == [0.1, pytest.approx(0.3)]
    opt2 = _opt(cygrad)
    for g, g0 in zip(opt2.param_groups, opt.param_groups):
        g["lr"] = g0["lr"]
    s2 = S.CosineAnnealingLR(opt2, T_max=10)
    s2.load_state_dict(sd)
    for _ in range(5):
        opt.step(); s.step(); opt2.step(); s2.step()
        assert s.get_last_lr() == s2.get_last_lr()
    seq = S.SequentialLR(opt, [S.ExponentialLR(opt, 0.5), S.StepLR(opt, 2)], milestones=[3])
    sd = seq.state_dict()
    assert isinstance(sd["_schedulers"], list) and len(sd["_schedulers"]) == 2


def test_initial_lr_and_warnings():
    opt = _opt(cygrad)
    s = S.ExponentialLR(opt, gamma=0.5)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and s.last_epoch == 0 and s.get_last_lr() == [0.1, 0.1 * 3]
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        s.get_lr()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(cygrad), step_size=2, last_epoch=3)


def test_errors():
    opt = _opt(cygrad)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode foo is unknown"):
        S.ReduceLROnPlateau(opt, mode="foo")
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        S.OneCycleLR(opt, max_lr=[0.1], total_steps=10)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        S.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="number of milestone points"):
        S.SequentialLR(opt, [S.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        S.OneCycleLR(cygrad.optim.Adagrad([cygrad.zeros(1, requires_grad=True)]), max_lr=0.1, total_steps=5)
