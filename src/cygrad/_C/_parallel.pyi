"""Thread-count control for the OpenMP kernels (see _parallel.pyx)."""

def openmp_enabled() -> bool:
    """Return True if the kernels were compiled with OpenMP (else every loop is serial)."""

def get_num_threads() -> int:
    """Return the number of threads that large kernel loops use."""

def set_num_threads(n: int) -> None:
    """Set the number of threads that large kernel loops use (n >= 1)."""
