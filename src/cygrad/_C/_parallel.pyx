"""Thread-count control for the OpenMP kernels.

cygrad keeps ONE thread count for all of its ``prange`` loops (``_n_threads``, read by
``n_threads_for`` in ``_parallel.pxd``); it never changes the process-wide OpenMP setting
(``omp_set_num_threads``) so that it does not interfere with other libraries.

The default is ``OMP_NUM_THREADS`` when set to a positive integer, else the number of CPUs
this process may run on (``os.sched_getaffinity``), else ``os.cpu_count()``.

BLAS threads are not handled here: the Python layer limits them with threadpoolctl.
"""

import operator
import os

cdef extern from *:
    """
    #ifdef _OPENMP
    #define CYGRAD_OPENMP_ENABLED 1
    #else
    #define CYGRAD_OPENMP_ENABLED 0
    #endif
    """
    const bint CYGRAD_OPENMP_ENABLED


def _default_num_threads():
    """Return the default thread count: OMP_NUM_THREADS, else the usable CPUs."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    try:
        # OMP_NUM_THREADS may list one count per nesting level ("4,2"); the first is ours.
        n = int(env.split(",")[0])
    except ValueError:
        n = 0
    if n >= 1:
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_n_threads = _default_num_threads()


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP (else every loop is serial)."""
    return bool(CYGRAD_OPENMP_ENABLED)


def get_num_threads():
    """Return the number of threads that large kernel loops use."""
    return _n_threads


def set_num_threads(n):
    """Set the number of threads that large kernel loops use (n >= 1)."""
    global _n_threads
    try:
        if isinstance(n, bool):
            raise TypeError
        count = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads expects a positive integer, got {n!r}") from None
    if count < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n!r}")
    _n_threads = min(count, 1 << 16)
