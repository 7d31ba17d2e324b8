"""Thread control and build/runtime configuration."""
import operator
import os
import sys

from ._C import _parallel

__all__ = ["set_num_threads", "get_num_threads", "show_config"]

_blas_controller = None


def _blas():
    global _blas_controller
    if _blas_controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS scipy uses)
        from threadpoolctl import ThreadpoolController
        _blas_controller = ThreadpoolController()
    return _blas_controller


def set_num_threads(n):
    """Set the threads used by cygrad's OpenMP kernels and by BLAS.

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
    _blas().limit(limits=n, user_api="blas")


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
