"""Thread control and build/runtime configuration."""
import operator
import os
import sys

from ._C import _parallel

__all__ = ["set_num_threads", "get_num_threads", "show_config"]

_blas_controller = None
_kernel_blas = None


def _blas():
    global _blas_controller
    if _blas_controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS scipy uses)
        from threadpoolctl import ThreadpoolController
        _blas_controller = ThreadpoolController()
    return _blas_controller


def _is_ilp64(lib):
    """Whether a threadpoolctl BLAS controller drives a 64-bit-integer (ILP64) build, such as
    the one numpy ships; scipy's cython_blas, which cygrad's kernels call, is LP64."""
    dynlib = getattr(lib, "dynlib", None)
    return dynlib is not None and any(hasattr(dynlib, f"{p}openblas_get_num_threads{s}")
                                      for p in ("", "scipy_") for s in ("64_", "_64"))


def _limit_kernel_blas():
    """Keep the BLAS behind scipy.linalg.cython_blas at one thread.

    cygrad's gemm kernels split each product over their own OpenMP threads and call BLAS
    single-threaded inside them (``_C/linalg.pyx``), so only one thread pool ever runs. A
    pthreads BLAS pool next to the OpenMP pool would compete with it for the cores: OpenMP
    workers spin after each parallel region, and a gemm right after any OpenMP kernel could
    run several times slower. numpy's own ILP64 BLAS, which cygrad does not use, is left alone.
    """
    global _kernel_blas
    if _kernel_blas is None:
        ctl = _blas()
        libs = [lib for lib in ctl.lib_controllers if lib.user_api == "blas" and not _is_ilp64(lib)]
        _kernel_blas = ctl.select(filepath=[lib.filepath for lib in libs]) if libs else ctl
    _kernel_blas.limit(limits=1, user_api="blas")


def set_num_threads(n):
    """Set the number of threads of cygrad's kernels.

    All of cygrad's parallelism is OpenMP threads: matrix products are split into panels over
    them, each panel a single-threaded BLAS call, so BLAS never starts threads of its own.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.set_num_threads(1); cygrad.get_num_threads()
    1
    """
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):  # ints, NumPy ints
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    n = operator.index(n)
    _parallel.set_num_threads(n)
    _limit_kernel_blas()


def get_num_threads():
    """Threads used by the OpenMP kernels (default: OMP_NUM_THREADS or the usable CPUs).

    Examples
    --------
    >>> import cygrad
    >>> cygrad.get_num_threads() >= 1
    True
    """
    return _parallel.get_num_threads()


def show_config():
    """Print versions, the BLAS in use, OpenMP status and thread counts.

    Examples
    --------
    >>> import cygrad
    >>> cygrad.show_config()  # doctest: +ELLIPSIS
    cygrad ...
    """
    import numpy
    import scipy
    from . import __version__
    lines = [f"cygrad {__version__}", f"  python      {sys.version.split()[0]}",
             f"  numpy       {numpy.__version__}", f"  scipy       {scipy.__version__}",
             f"  OpenMP      {'on' if _parallel.openmp_enabled() else 'off (serial build)'}",
             f"  threads     {get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"]
    try:
        for info in _blas().info():
            if info.get("user_api") == "blas":
                lines.append(f"  BLAS        {info.get('internal_api')} {info.get('version')} "
                             f"({info.get('threading_layer', '?')}, {info.get('num_threads')} threads) "
                             f"{os.path.basename(info.get('filepath', ''))}")
    except Exception as e:  # pragma: no cover - informational only
        lines.append(f"  BLAS        unknown ({e})")
    print("\n".join(lines))


_limit_kernel_blas()
