"""Fused optimizer update kernels, float32 / float64.

Every kernel updates one parameter in ONE pass over its elements: it reads the gradient, updates
the optimizer state buffers in place and writes the new parameter value in place. All arrays are
1-D, C-contiguous, of the same length and dtype (the caller passes ``a.reshape(-1)`` views of
C-contiguous arrays). Scalars (learning rate, bias corrections, ...) are computed once per step
by the caller in double precision and passed in, so the per-element work follows PyTorch's
single-tensor formulas term by term (``torch/optim/*.py``, ``_single_tensor_*``).

Each loop is a ``prange`` over independent elements, so results do not depend on the thread
count.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf, fabs, fabsf

from ._parallel cimport n_threads_for

# Elementwise updates are cheap (a few flops, no transcendental except sqrt): scale the work count
# down so that only large parameters go parallel.
cdef enum:
    WORK_DIVISOR = 4


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _lerp(floating a, floating b, floating w) noexcept nogil:
    """a + w * (b - a), evaluated as PyTorch's lerp kernel does (from the nearer end)."""
    if _abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


def sgd_step(floating[::1] param, const floating[::1] grad, floating[::1] buf, double lr,
             double momentum, double dampening, double weight_decay, bint nesterov, bint maximize,
             bint init_buf):
    """SGD: ``g = +-grad + wd * p``; ``buf = g`` (first step, ``init_buf``) or
    ``momentum * buf + (1 - dampening) * g``; ``p -= lr * (g + momentum * buf if nesterov else
    buf)``. With ``momentum == 0``, ``buf`` is not touched (pass any array) and ``p -= lr * g``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, b
    cdef floating f_lr = <floating>lr, f_mom = <floating>momentum
    cdef floating f_damp = <floating>(1.0 - dampening), f_wd = <floating>weight_decay
    cdef bint use_mom = momentum != 0
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + f_wd * param[i]
            if use_mom:
                if init_buf:
                    b = g
                else:
                    b = buf[i] * f_mom + f_damp * g
                buf[i] = b
                if nesterov:
                    g = g + f_mom * b
                else:
                    g = b
            param[i] = param[i] - f_lr * g


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq, double lr, double beta1,
              double beta2, double eps, double weight_decay, bint decoupled, bint amsgrad,
              bint maximize, double bias_correction1, double bias_correction2):
    """Adam / AdamW. ``bias_correction{1,2} = 1 - beta{1,2} ** step`` (step already incremented).
    ``max_exp_avg_sq`` is only used with ``amsgrad``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, m, v, p, denom
    cdef floating f_w1 = <floating>(1.0 - beta1), f_b2 = <floating>beta2
    cdef floating f_w2 = <floating>(1.0 - beta2), f_wd = <floating>weight_decay
    cdef floating f_decay = <floating>(1.0 - lr * weight_decay)
    cdef floating f_step = <floating>(lr / bias_correction1)
    cdef floating f_bc2s = <floating>(bias_correction2 ** 0.5), f_eps = <floating>eps
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            p = param[i]
            if weight_decay != 0:
                if decoupled:
                    p = p * f_decay
                else:
                    g = g + f_wd * p
            m = exp_avg[i]
            m = _lerp(m, g, f_w1)
            exp_avg[i] = m
            v = exp_avg_sq[i] * f_b2 + f_w2 * g * g
            exp_avg_sq[i] = v
            if amsgrad:
                if max_exp_avg_sq[i] > v:
                    v = max_exp_avg_sq[i]
                max_exp_avg_sq[i] = v
            denom = _sqrt(v) / f_bc2s + f_eps
            param[i] = p - f_step * (m / denom)


def rmsprop_step(floating[::1] param, const floating[::1] grad, floating[::1] square_avg,
                 floating[::1] grad_avg, floating[::1] momentum_buf, double lr, double alpha,
                 double eps, double weight_decay, double momentum, bint centered, bint maximize):
    """RMSprop. ``grad_avg`` is used when ``centered``, ``momentum_buf`` when ``momentum > 0``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, s, a, avg, b
    cdef floating f_alpha = <floating>alpha, f_w = <floating>(1.0 - alpha)
    cdef floating f_lr = <floating>lr, f_eps = <floating>eps, f_wd = <floating>weight_decay
    cdef floating f_mom = <floating>momentum
    cdef bint use_mom = momentum > 0
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + f_wd * param[i]
            s = square_avg[i] * f_alpha + f_w * g * g
            square_avg[i] = s
            if centered:
                a = grad_avg[i]
                a = _lerp(a, g, f_w)
                grad_avg[i] = a
                avg = _sqrt(s - a * a) + f_eps
            else:
                avg = _sqrt(s) + f_eps
            if use_mom:
                b = momentum_buf[i] * f_mom + g / avg
                momentum_buf[i] = b
                param[i] = param[i] - f_lr * b
            else:
                param[i] = param[i] - f_lr * (g / avg)


def adagrad_step(floating[::1] param, const floating[::1] grad, floating[::1] state_sum,
                 double clr, double eps, double weight_decay, bint maximize):
    """Adagrad with the decayed rate ``clr = lr / (1 + (step - 1) * lr_decay)``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, s
    cdef floating f_clr = <floating>clr, f_eps = <floating>eps, f_wd = <floating>weight_decay
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + f_wd * param[i]
            s = state_sum[i] + g * g
            state_sum[i] = s
            param[i] = param[i] - f_clr * (g / (_sqrt(s) + f_eps))


def adamax_step(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
                floating[::1] exp_inf, double clr, double beta1, double beta2, double eps,
                double weight_decay, bint maximize):
    """Adamax with ``clr = lr / (1 - beta1 ** step)``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, m, u, a
    cdef floating f_w1 = <floating>(1.0 - beta1), f_b2 = <floating>beta2
    cdef floating f_clr = <floating>clr, f_eps = <floating>eps, f_wd = <floating>weight_decay
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + f_wd * param[i]
            m = exp_avg[i]
            m = _lerp(m, g, f_w1)
            exp_avg[i] = m
            u = exp_inf[i] * f_b2
            a = _abs(g) + f_eps
            if a > u:
                u = a
            exp_inf[i] = u
            param[i] = param[i] - f_clr * (m / u)


def nadam_step(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
               floating[::1] exp_avg_sq, double beta1, double beta2, double eps,
               double weight_decay, bint decoupled, double decay, bint maximize,
               double bias_correction2, double coef_grad, double coef_avg):
    """NAdam. ``decay = 1 - lr * weight_decay`` (decoupled), ``coef_grad = -lr * (1 - mu) /
    (1 - mu_product)``, ``coef_avg = -lr * mu_next / (1 - mu_product * mu_next)``."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, m, v, p, denom
    cdef floating f_w1 = <floating>(1.0 - beta1), f_b2 = <floating>beta2
    cdef floating f_w2 = <floating>(1.0 - beta2), f_wd = <floating>weight_decay
    cdef floating f_decay = <floating>decay, f_bc2 = <floating>bias_correction2
    cdef floating f_eps = <floating>eps, f_cg = <floating>coef_grad, f_ca = <floating>coef_avg
    with nogil:
        for i in prange(n, num_threads=n_threads_for(n // WORK_DIVISOR), schedule='static'):
            g = grad[i]
            if maximize:
                g = -g
            p = param[i]
            if weight_decay != 0:
                if decoupled:
                    p = p * f_decay
                else:
                    g = g + f_wd * p
            m = exp_avg[i]
            m = _lerp(m, g, f_w1)
            exp_avg[i] = m
            v = exp_avg_sq[i] * f_b2 + f_w2 * g * g
            exp_avg_sq[i] = v
            denom = _sqrt(v / f_bc2) + f_eps
            p = p + f_cg * (g / denom)
            param[i] = p + f_ca * (m / denom)
