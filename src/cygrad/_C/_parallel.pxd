# Thread-count policy shared by every kernel: ``cimport`` this and write
#     for i in prange(n, num_threads=n_threads_for(n), schedule='static'):
# so that one place decides how many OpenMP threads a loop may use.

# Number of threads a large loop may use; set through set_num_threads() (Python).
cdef int _n_threads

# Loops with less work than this stay on one thread. ``work`` counts element operations of
# the cost of one exp / erf / tanh (~10 ns): starting a parallel region costs a few
# microseconds, and measured on 2 cores a 32768-element SiLU already runs 2x faster on 2
# threads. Kernels doing cheaper operations scale their count down (gemm: multiply-adds / 16).
cdef enum:
    MIN_WORK_PER_PARALLEL_LOOP = 16384


cdef inline int n_threads_for(Py_ssize_t work) noexcept nogil:
    """Threads to use for a loop doing ``work`` element operations (1 if the loop is small)."""
    if work < MIN_WORK_PER_PARALLEL_LOOP:
        return 1
    return _n_threads
