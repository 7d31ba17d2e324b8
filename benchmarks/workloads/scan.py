"""Sequence-kernel workloads (scan): the selective state-space scan and a Mamba block training step.

PyTorch has no selective scan, so the baseline runs the formulas as Mamba's reference
``selective_scan_ref`` does: the decays ``exp(delta A)`` and inputs ``delta B u`` for all steps
at once, then a Python loop over the sequence (``x = dA_t * x + dBu_t; y_t = einsum(x, C_t)``)
differentiated by autograd. The per-step slices are taken with ``unbind`` rather than
``deltaA[:, :, t]``: with indexing, every step's backward materialises a zero-filled gradient of
the whole (batch, d, L, n) tensor, which makes the reference's backward quadratic in L (tens of
seconds here) -- the baseline would measure that artefact, not the recurrence.
"""

from __future__ import annotations

import math

from . import register


def _is_torch(lib):
    return lib.__name__ == "torch"


def _ref_scan(lib, u, delta, A, B, C, D, z, delta_bias):
    """Mamba's selective_scan_ref (softplus on, time-varying B and C of shape (batch, n, L))."""
    F = lib.nn.functional
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    delta_a = lib.exp(lib.einsum("bdl,dn->bdln", delta, A)).unbind(2)
    delta_b_u = lib.einsum("bdl,bnl,bdl->bdln", delta, B, u).unbind(2)
    cs = C.unbind(2)
    ys = []
    for i in range(u.shape[2]):
        x = delta_a[i] * x + delta_b_u[i]
        ys.append(lib.einsum("bdn,bn->bd", x, cs[i]))
    y = lib.stack(ys, dim=2)
    out = y + u * D[:, None]
    return out * F.silu(z)


def _scan(lib):
    if _is_torch(lib):
        return lambda *a: _ref_scan(lib, *a)
    F = lib.nn.functional
    return lambda u, delta, A, B, C, D, z, bias: F.selective_scan(u, delta, A, B, C, D, z=z, delta_bias=bias,
                                                                  delta_softplus=True)


@register("selective_scan", target=0.02,
          description="selective_scan batch 4, d 256, L 512, n 16, float32, D + z + delta_bias + softplus, "
                      "fwd+bwd (torch: Mamba's selective_scan_ref loop)")
def selective_scan(lib):
    b, d, L, n = 4, 256, 512, 16
    u = lib.randn(b, d, L, requires_grad=True)
    delta = (0.5 * lib.randn(b, d, L)).requires_grad_()
    A = (-lib.rand(d, n) * 2).requires_grad_()
    B = lib.randn(b, n, L, requires_grad=True)
    C = lib.randn(b, n, L, requires_grad=True)
    D = lib.randn(d, requires_grad=True)
    z = lib.randn(b, d, L, requires_grad=True)
    bias = (0.1 * lib.randn(d)).requires_grad_()
    params = [u, delta, A, B, C, D, z, bias]
    scan = _scan(lib)

    def step():
        for p in params:
            p.grad = None
        scan(*params).sum().backward()

    return step


class _TorchMamba:
    """The Mamba block written with torch ops and the reference scan (parameter names as nn.Mamba)."""

    def __init__(self, lib, d_model, d_state=16, d_conv=4, expand=2):
        nn = lib.nn
        self.lib = lib
        self.d_inner = expand * d_model
        self.d_state, self.d_conv = d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        self.A_log = nn.Parameter(lib.log(lib.arange(1, d_state + 1, dtype=lib.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(lib.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def parameters(self):
        ps = [self.A_log, self.D]
        for m in (self.in_proj, self.conv1d, self.x_proj, self.dt_proj, self.out_proj):
            ps += list(m.parameters())
        return ps

    def __call__(self, h):
        lib, F = self.lib, self.lib.nn.functional
        L = h.shape[1]
        xz = self.in_proj(h).transpose(1, 2)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])
        x_dbl = self.x_proj(x.transpose(1, 2))
        dt, B, C = lib.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)
        A = -lib.exp(self.A_log)
        y = _ref_scan(lib, x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z, self.dt_proj.bias)
        return self.out_proj(y.transpose(1, 2))


@register("mamba_step", target=1.0, memory=True,
          description="Mamba block (d_model 256, d_state 16, expand 2) training step: batch 4, L 512, float32, "
                      "MSE, backward, SGD step (torch: same block with the reference scan loop)")
def mamba_step(lib):
    d_model, L, batch = 256, 512, 4
    model = _TorchMamba(lib, d_model) if _is_torch(lib) else lib.nn.Mamba(d_model)
    opt = lib.optim.SGD(model.parameters(), lr=1e-3)
    x = lib.randn(batch, L, d_model)
    target = lib.randn(batch, L, d_model)

    def step():
        opt.zero_grad()
        lib.nn.functional.mse_loss(model(x), target).backward()
        opt.step()

    return step
