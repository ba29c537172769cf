"""Mamba1 selective scan (S6): reference maths, test oracles, and the kernel dispatcher.

Glossary (code <-> paper, Gu & Dao 2023 "Mamba", Alg. 2):
    u      (B, D, L)   input x of the SSM (after in_proj, conv, SiLU)      D = d_inner channels, L = length
    delta  (B, D, L)   step size before the optional bias + softplus       dt = softplus(delta + delta_bias)
    A      (D, N)      continuous-time diagonal state matrix (real, < 0)   N = d_state
    B, C   (B, N, L)   input-dependent input / output projections (or constant (D, N))
    D      (D,)        skip connection ("D u")
    z      (B, D, L)   gate: y *= silu(z)
    Ab     exp(dt * A)           zero-order hold (ZOH) for A
    Bb u   dt * B * u            Euler for B -- the shortcut Mamba's code takes (not the exact ZOH (Ab - I) A^-1 B)

Recurrence per batch row b and channel d (state h of size N):
    h_t = Ab_t * h_{t-1} + dt_t * B_t * u_t          h_0 = 0 (before t = 1)
    y_t = C_t . h_t + D * u_t
    y_t = y_t * silu(z_t)                              if z is given

Three implementations of the same maths:
    selective_scan_ref     a loop over time on precomputed (B, D, L, N) tensors, inputs unbind-ed once
                           (slicing x[:, :, t] per step is ~25x slower under autograd: docs/measured_facts.md)
    selective_scan_naive   the literal double loop over time and state (test oracle, tiny sizes only)
    selective_scan_matrix  the explicit matrix form y = M u, M[t, s] = C_t^T (prod_{k=s+1..t} Ab_k) dt_s B_s
and `selective_scan(..., kernel=)`, which runs the path `ssm/kernels.py` resolves: "ref" -> selective_scan_ref,
"cpu" -> the C++ kernel (`ssm/csrc/selective_scan_cpu.cpp`), "fused" -> mamba-ssm's CUDA `selective_scan_fn`.

All computation happens in float32 (float64 stays float64); outputs are cast back to u's dtype.
References: mamba-ssm `selective_scan_ref` (shapes and argument names kept so fused kernels interchange).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import kernels

__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_naive", "selective_scan_matrix"]


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Upcast to float32 (keep float64) and compute dt; returns float tensors and the output dtype."""
    out_dtype = u.dtype
    ctype = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (t.to(ctype) for t in (u, delta, A, B, C))
    D = None if D is None else D.to(ctype)
    z = None if z is None else z.to(ctype)
    dt = delta if delta_bias is None else delta + delta_bias.to(ctype)[:, None]  # (B, D, L)
    if delta_softplus:
        dt = F.softplus(dt)
    if torch.is_complex(A):
        raise NotImplementedError("complex A is not supported (real A only, as in Mamba1 defaults)")
    return u, dt, A, B, C, D, z, out_dtype


def _finish(y, u, D, z, out_dtype):
    """y += D u; y *= silu(z); cast back."""
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y.to(out_dtype)


def _discretize(u, dt, A, B):
    """Ab = exp(dt A) (ZOH), Bb u = dt B u (Euler). Returns (B, D, L, N) tensors."""
    Ab = torch.exp(torch.einsum("bdl,dn->bdln", dt, A))  # (B, D, L, N)
    if B.dim() == 2:  # constant B (D, N)
        Bbu = torch.einsum("bdl,dn->bdln", dt * u, B)  # (B, D, L, N)
    else:  # input-dependent B (B, N, L)
        Bbu = torch.einsum("bdl,bnl->bdln", dt * u, B)  # (B, D, L, N)
    return Ab, Bbu


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Reference selective scan: a loop over time with the inputs unbind-ed once.

    Shapes: u, delta, z (B, D, L); A (D, N); B, C (B, N, L) or constant (D, N); D, delta_bias (D,).
    Returns y (B, D, L) in u's dtype, and the final state h_L (B, D, N) if `return_last_state`.
    Discretisation: ZOH for A (Ab = exp(dt A)), Euler for B (Bb = dt B), as Mamba does.
    Memory: holds Ab, Bb u and all states as (B, D, L, N) tensors (autograd needs them anyway).
    """
    u, dt, A, B, C, D, z, out_dtype = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    Ab, Bbu = _discretize(u, dt, A, B)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    states = []
    for Ab_t, Bbu_t in zip(Ab.unbind(2), Bbu.unbind(2)):
        h = Ab_t * h + Bbu_t  # (B, D, N)
        states.append(h)
    H = torch.stack(states, dim=2)  # (B, D, L, N)
    if C.dim() == 2:
        y = torch.einsum("bdln,dn->bdl", H, C)  # (B, D, L)
    else:
        y = torch.einsum("bdln,bnl->bdl", H, C)  # (B, D, L)
    y = _finish(y, u, D, z, out_dtype)
    return (y, h.to(out_dtype)) if return_last_state else y


def selective_scan_naive(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    """The recurrence written literally: for t, for n (vectorised over batch and channel only).

    Same signature and shapes as `selective_scan_ref`. Test oracle for tiny sizes.
    """
    u, dt, A, B, C, D, z, out_dtype = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    Bsz, Dm, L = u.shape
    N = A.shape[1]
    h = [u.new_zeros(Bsz, Dm) for _ in range(N)]  # one (B, D) tensor per state index n
    ys = []
    for t in range(L):
        y_t = u.new_zeros(Bsz, Dm)
        for n in range(N):
            Ab = torch.exp(dt[:, :, t] * A[:, n])  # (B, D)
            B_tn = B[:, n] if B.dim() == 2 else B[:, n, t][:, None]  # (D,) or (B, 1)
            C_tn = C[:, n] if C.dim() == 2 else C[:, n, t][:, None]
            h[n] = Ab * h[n] + dt[:, :, t] * B_tn * u[:, :, t]
            y_t = y_t + C_tn * h[n]
        ys.append(y_t)
    y = _finish(torch.stack(ys, dim=-1), u, D, z, out_dtype)
    return (y, torch.stack(h, dim=-1).to(out_dtype)) if return_last_state else y


def selective_scan_matrix(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    """Explicit matrix form y = M u per (batch, channel), O(L^2 N) memory: test oracle.

    M[t, s] = sum_n C_t[n] * exp(sum_{k=s+1..t} dt_k A[n]) * dt_s B_s[n] u_s for s <= t, 0 above the diagonal.
    h_L[n] = sum_s exp(sum_{k=s+1..L} dt_k A[n]) dt_s B_s[n] u_s.  Same signature as `selective_scan_ref`.
    """
    u, dt, A, B, C, D, z, out_dtype = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    Bsz, Dm, L = u.shape
    if B.dim() == 2:
        B = B[None, :, :, None].expand(Bsz, Dm, -1, L)  # (B, D, N, L)
    else:
        B = B[:, None].expand(-1, Dm, -1, -1)
    if C.dim() == 2:
        C = C[None, :, :, None].expand(Bsz, Dm, -1, L)
    else:
        C = C[:, None].expand(-1, Dm, -1, -1)
    S = torch.cumsum(torch.einsum("bdl,dn->bdln", dt, A), dim=2)  # (B, D, L, N): sum_{k<=t} dt_k A
    seg = S[:, :, :, None, :] - S[:, :, None, :, :]  # (B, D, L_t, L_s, N): sum_{k=s+1..t} dt_k A
    causal = torch.ones(L, L, dtype=torch.bool, device=u.device).tril()
    decay = torch.exp(seg.masked_fill(~causal[None, None, :, :, None], float("-inf")))  # 0 above diagonal
    M = torch.einsum("bdnt,bdtsn,bdns,bds->bdts", C, decay, B, dt)  # (B, D, L, L)
    y = torch.einsum("bdts,bds->bdt", M, u)
    y = _finish(y, u, D, z, out_dtype)
    if not return_last_state:
        return y
    last = torch.exp(S[:, :, -1:, :] - S)  # (B, D, L, N)
    h_L = torch.einsum("bdsn,bdns,bds->bdn", last, B, dt * u)
    return y, h_L.to(out_dtype)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, kernel: kernels.KernelChoice = "auto"):
    """Selective scan on the path `kernel` names (same signature and shapes as `selective_scan_ref`).

    "ref" -> `selective_scan_ref` (any device); "cpu" -> the C++ kernel (CPU tensors, input-dependent B and C,
    real A; raises `kernels.KernelUnavailable` otherwise); "fused" -> mamba-ssm `selective_scan_fn` (CUDA);
    "auto" -> the fastest of those that can run these inputs (`kernels.resolve`).
    """
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    why_not_cpp = kernels.scan_cpu_unsupported(u, A, B, C) if kernel in ("cpu", "auto") else None
    path = kernels.resolve(kernel, "selective_scan", u.device, cpu_unsupported=why_not_cpp)
    if path == "fused":
        return kernels.fused_kernels().selective_scan_fn(*args)
    if path == "cpu":
        return kernels.cpu_kernel("selective_scan")(*args)
    return selective_scan_ref(*args)
