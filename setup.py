"""Build the Cython kernels in ``src/cygrad/_C``.

Metadata lives in ``pyproject.toml``; this file only declares the extension modules.

Environment switches
--------------------
CYGRAD_DEBUG=1
    Compile the kernels with ``boundscheck``, ``wraparound`` and ``initializedcheck`` on
    (slower; used to run the kernel tests against out-of-bounds access).
CYGRAD_NO_OPENMP=1
    Build without OpenMP even if the compiler supports it (``prange`` then runs serially).
"""

import glob
import os
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_DIR = os.path.join("src", "cygrad", "_C")

_OPENMP_TEST_PROGRAM = textwrap.dedent(
    """\
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _openmp_flags():
    """Return (compile_args, link_args) enabling OpenMP, or None if the compiler cannot use it.

    The test compiles and links a tiny OpenMP program with the same compiler setuptools
    will use for the extensions (honouring CC, CFLAGS, LDFLAGS, ...).
    """
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError, LinkError
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    if compiler.compiler_type == "msvc":
        flags = (["/openmp"], [])
    else:
        flags = (["-fopenmp"], ["-fopenmp"])
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "test_openmp.c")
        with open(source, "w") as f:
            f.write(_OPENMP_TEST_PROGRAM)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags[0])
            compiler.link_executable(
                objects, "test_openmp", output_dir=tmp, extra_postargs=flags[1]
            )
        except (CompileError, LinkError):
            return None
    return flags


def _warn_serial(reason):
    bar = "*" * 78
    sys.stderr.write(
        f"\n{bar}\n"
        "WARNING: cygrad is being built WITHOUT OpenMP support.\n"
        f"  Reason: {reason}\n"
        "  The kernels still work, but every prange loop runs on ONE thread and\n"
        "  cygrad.set_num_threads() has no effect on them (BLAS may still use threads).\n"
        "  To build with OpenMP, use a compiler that accepts -fopenmp (gcc, or clang\n"
        "  with libomp installed) and reinstall.\n"
        f"{bar}\n\n"
    )


def _build_mode_changed(mode):
    """Record the build mode in build/; return True if it differs from the previous build.

    Neither cythonize nor build_ext notices a change of directives or OpenMP flags, so a
    switch (e.g. CYGRAD_DEBUG=1 then a normal build) forces cythonize to regenerate everything.
    """
    marker = os.path.join("build", "cygrad-build-mode.txt")
    previous = None
    if os.path.exists(marker):
        with open(marker) as f:
            previous = f.read().strip()
    os.makedirs("build", exist_ok=True)
    with open(marker, "w") as f:
        f.write(mode)
    return previous != mode


# Extra flags per module (gcc / clang only). activation: the loops of _vmath.h use branch-free
# maths, and gcc only if-converts (hence vectorises) their selects without -ftrapping-math.
# Neither flag changes any result (unlike -ffast-math / -ffinite-math-only, never used here).
# ISA: no -march; _vmath.h clones its loops (target_clones, runtime dispatch) on x86-64 Linux.
MODULE_COMPILE_ARGS = {}
if os.name != "nt":
    MODULE_COMPILE_ARGS["activation"] = ["-fno-trapping-math", "-fno-math-errno"]


def _extensions():
    debug = _env_flag("CYGRAD_DEBUG")
    compile_args, link_args = [], []
    flags = None
    if _env_flag("CYGRAD_NO_OPENMP"):
        _warn_serial("CYGRAD_NO_OPENMP is set.")
    else:
        flags = _openmp_flags()
        if flags is None:
            _warn_serial("the C compiler failed to build a test program with OpenMP.")
        else:
            compile_args += flags[0]
            link_args += flags[1]
    mode = f"debug={int(debug)} openmp={int(flags is not None)}"
    force = _build_mode_changed(mode)
    if os.name != "nt":
        compile_args.append("-O3")

    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": True,
    }
    extensions = []
    for pyx in sorted(glob.glob(os.path.join(KERNEL_DIR, "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        extensions.append(
            Extension(
                f"cygrad._C.{name}",
                [pyx],
                depends=sorted(glob.glob(os.path.join(KERNEL_DIR, "*.h"))),
                include_dirs=[numpy.get_include(), KERNEL_DIR],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args + MODULE_COMPILE_ARGS.get(name, []),
                extra_link_args=link_args,
            )
        )
    return cythonize(
        extensions,
        compiler_directives=directives,
        include_path=[os.path.join("src")],
        # Generated C files go to build/ so the source tree stays clean.
        build_dir=os.path.join("build", "cython"),
        # Regenerated C files are newer than the old modules, so build_ext recompiles them.
        force=force,
    )


def _long_description():
    """README.md as the long description (pyproject.toml declares ``readme`` dynamic)."""
    readme = os.path.join(HERE, "README.md")
    text = "cygrad: a CPU tensor and autograd library with PyTorch's API."
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
    return {"long_description": text, "long_description_content_type": "text/markdown"}


if __name__ == "__main__":
    os.chdir(HERE)
    setup(ext_modules=_extensions(), **_long_description())
