"""Run the kernel tests against a build with bounds checks on (``CYGRAD_DEBUG=1``).

The regular build compiles the kernels with ``boundscheck``, ``wraparound`` and
``initializedcheck`` off, so an index the Python layer failed to validate would read or write
out of bounds silently. This test compiles a second copy of the package from the source tree
with those checks on (into a temporary folder, with the same compiler) and runs the small
cases of the kernel test files against it in a subprocess: an out-of-bounds access there
raises ``IndexError`` (or, inside a ``noexcept`` helper, prints "Exception ignored"), and the
subprocess fails.

It needs the source tree (``setup.py`` next to ``tests/``), Cython and a C compiler; it is
skipped otherwise (e.g. when the tests run from an installed sdist without the build tools).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Test files whose kernels run under bounds checks, with a -k expression selecting their small
# cases (everything in these files uses small shapes except the cases named here).
KERNEL_TEST_FILES = [
    "test_kernels.py",
    "test_conv.py",
    "test_deform.py",
    "test_pool.py",
    "test_norm.py",
    "test_resample.py",
    "test_rnn.py",
    "test_attention.py",
    "test_scan.py",
]
DESELECT = "not torch_module and not benchmark and not large"


def _build_tools_missing():
    if not (ROOT / "setup.py").is_file() or not (ROOT / "src" / "cygrad" / "_C").is_dir():
        return "the source tree (setup.py, src/cygrad/_C) is not next to the tests"
    try:
        import Cython  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        return f"building needs Cython and setuptools ({exc})"
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        return "no C compiler found"
    return None


@pytest.fixture(scope="module")
def debug_tree(tmp_path_factory):
    reason = _build_tools_missing()
    if reason:
        pytest.skip(reason)
    tree = tmp_path_factory.mktemp("cygrad_debug_build")
    shutil.copy2(ROOT / "setup.py", tree / "setup.py")
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.egg-info"))
    env = dict(os.environ, CYGRAD_DEBUG="1")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", str(os.cpu_count() or 1)],
        cwd=tree, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, f"debug build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return tree


def _run(tree, args):
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_debug_build_is_the_one_imported(debug_tree):
    proc = _run(debug_tree, ["-c", "import cygrad._C.linalg as m; print(m.__file__)"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(debug_tree / "src")), proc.stdout


def test_bounds_checks_are_on(debug_tree):
    # A kernel handed mismatched buffers directly (bypassing the Python validation) must raise
    # in the debug build: this proves the checks are compiled in.
    code = (
        "import numpy as np\n"
        "from cygrad._C import loss as K\n"
        "x = np.zeros((2, 3)); t = np.array([0, 7], dtype=np.int64)\n"   # class 7 of 3: out of range
        "try:\n"
        "    K.cross_entropy_forward(x, t, np.ones(3), -100, np.empty(2), np.empty(2), np.empty(2))\n"
        "except IndexError as e:\n"
        "    print('IndexError', e)\n"
    )
    proc = _run(debug_tree, ["-c", code])
    assert "IndexError" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)


@pytest.mark.parametrize("test_file", KERNEL_TEST_FILES)
def test_kernel_tests_pass_with_bounds_checks(debug_tree, test_file):
    if not (ROOT / "tests" / test_file).is_file():
        pytest.skip(f"{test_file} is not in this tree")
    proc = _run(debug_tree, ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", DESELECT,
                             str(ROOT / "tests" / test_file)])
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode in (0, 5), output  # 5: every case deselected
    assert "Exception ignored" not in proc.stdout + proc.stderr, output
    assert "IndexError" not in proc.stdout + proc.stderr, output
