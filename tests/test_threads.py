"""Thread control (set_num_threads / get_num_threads / OMP_NUM_THREADS) and show_config."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import cygrad


@pytest.fixture
def restore_threads():
    n = cygrad.get_num_threads()
    yield
    cygrad.set_num_threads(n)


def test_get_num_threads_is_positive_int():
    n = cygrad.get_num_threads()
    assert isinstance(n, int) and n >= 1


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_get_roundtrip(n, restore_threads):
    cygrad.set_num_threads(n)
    assert cygrad.get_num_threads() == n


def test_set_num_threads_accepts_numpy_int(restore_threads):
    cygrad.set_num_threads(np.int64(2))
    assert cygrad.get_num_threads() == 2
    assert type(cygrad.get_num_threads()) is int


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-1, ValueError), (-100, ValueError),
                                     (2.5, TypeError), (2.0, TypeError), ("2", TypeError),
                                     (None, TypeError), (True, TypeError), ([2], TypeError)])
def test_invalid_values_raise_and_keep_setting(bad, exc, restore_threads):
    cygrad.set_num_threads(2)
    with pytest.raises(exc):
        cygrad.set_num_threads(bad)
    assert cygrad.get_num_threads() == 2


def test_results_do_not_depend_on_thread_count(restore_threads):
    rng = np.random.default_rng(0)
    a = cygrad.tensor(rng.standard_normal((64, 300)).astype(np.float32), requires_grad=True)
    b = cygrad.tensor(rng.standard_normal((300, 32)).astype(np.float32))
    res = []
    for n in (1, 2):
        cygrad.set_num_threads(n)
        a.grad = None
        y = (a @ b).relu().softmax(-1)
        (y * y).sum().backward()
        res.append((y.detach().numpy().copy(), a.grad.numpy().copy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-4, atol=1e-6)


def _run(code, **env):
    e = dict(os.environ)
    e.pop("OMP_NUM_THREADS", None)
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_default_honours_omp_num_threads():
    out = _run("import cygrad; print(cygrad.get_num_threads())", OMP_NUM_THREADS="1")
    assert out.strip() == "1"
    out = _run("import cygrad; print(cygrad.get_num_threads())", OMP_NUM_THREADS="3")
    assert out.strip() == "3"


def test_default_without_omp_num_threads_uses_cpus():
    out = _run("import os, cygrad; print(cygrad.get_num_threads(), len(os.sched_getaffinity(0)))")
    n, cpus = map(int, out.split())
    assert n == cpus


def test_invalid_omp_num_threads_falls_back():
    out = _run("import os, cygrad; print(cygrad.get_num_threads(), len(os.sched_getaffinity(0)))",
               OMP_NUM_THREADS="garbage")
    n, cpus = map(int, out.split())
    assert n == cpus


def test_show_config(capsys):
    ret = cygrad.show_config()
    out = capsys.readouterr().out
    assert ret is None
    assert re.search(r"^cygrad " + re.escape(cygrad.__version__), out, re.M)
    assert re.search(r"^\s*OpenMP\s+(on|off)", out, re.M)
    assert re.search(r"^\s*BLAS\s+\S+", out, re.M)
    assert re.search(r"^\s*threads\s+%d\b" % cygrad.get_num_threads(), out, re.M)


def test_show_config_reports_set_threads(capsys, restore_threads):
    cygrad.set_num_threads(1)
    cygrad.show_config()
    out = capsys.readouterr().out
    assert re.search(r"^\s*threads\s+1\b", out, re.M)
    assert re.search(r"^\s*BLAS\s+.*\(.*\b1 threads\)", out, re.M)


def test_show_config_in_subprocess_with_omp_env():
    out = _run("import cygrad; cygrad.show_config()", OMP_NUM_THREADS="1")
    assert "OMP_NUM_THREADS=1" in out
    assert re.search(r"^\s*threads\s+1\b", out, re.M)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_panels_agree_across_thread_counts(dtype, restore_threads):
    """Large products are split into one panel per thread (rows or columns of C, transposed
    operands included): every split gives numpy's product, and the splits agree to rounding."""
    from cygrad._C import linalg as K
    rng = np.random.default_rng(3)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for m, n, k in [(300, 200, 150), (40, 700, 90), (517, 33, 260), (129, 129, 1)]:
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((1, k, m) if ta else (1, m, k)).astype(dtype)
                b = rng.standard_normal((1, n, k) if tb else (1, k, n)).astype(dtype)
                ref = (a.swapaxes(1, 2) if ta else a) @ (b.swapaxes(1, 2) if tb else b)
                outs = []
                for t in (1, 2, 3):
                    cygrad.set_num_threads(t)
                    out = np.full((1, m, n), np.nan, dtype)
                    K.gemm_batched(a, b, out, ta, tb)
                    outs.append(out)
                for out in outs:
                    np.testing.assert_allclose(out, ref, **tol)
                np.testing.assert_allclose(outs[1], outs[0], **tol)
                np.testing.assert_allclose(outs[2], outs[0], **tol)
