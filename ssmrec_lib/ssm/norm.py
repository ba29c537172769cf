"""Gated RMSNorm, the normalisation Mamba2 and Hydra put before their output projection.

    norm_before_gate=False (Mamba2):  y = RMSNorm(x * silu(z))
    norm_before_gate=True  (Hydra):   y = RMSNorm(x) * silu(z)
    RMSNorm(v) = v / sqrt(mean(v^2) + eps) * weight, the mean taken over groups of `group_size` channels
    (group_size=None: all channels; Mamba2 uses d_inner / ngroups so each group normalises alone).

Glossary: x (..., d) the SSM output, z (..., d) the gate branch, weight (d,) (mamba-ssm's parameter name).
The fused path is mamba-ssm's Triton `rmsnorm_fn` (CUDA only), with the same parameter, so checkpoints move
between paths; kernel="cpu" runs the reference (there is no C++ norm).
Reference: Dao & Gu 2024 (Mamba2) section 7; mamba_ssm/ops/triton/layernorm_gated.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssmrec_lib.ssm import kernels


def rms_norm_gated_ref(x: torch.Tensor, weight: torch.Tensor, z: torch.Tensor | None = None, eps: float = 1e-5,
                       group_size: int | None = None, norm_before_gate: bool = False) -> torch.Tensor:
    """Reference gated RMSNorm in fp32. x, z (..., d); weight (d,). Returns (..., d) in x's dtype."""
    dtype = x.dtype
    xf = x.float() if x.dtype != torch.float64 else x
    if z is not None and not norm_before_gate:
        xf = xf * F.silu(z.to(xf.dtype))
    d = xf.shape[-1]
    gs = d if group_size is None else group_size
    if d % gs:
        raise ValueError(f"group_size={gs} must divide the hidden size {d}")
    xg = xf.reshape(*xf.shape[:-1], d // gs, gs)  # (..., groups, gs)
    xg = xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + eps)
    out = xg.reshape(xf.shape) * weight.to(xf.dtype)
    if z is not None and norm_before_gate:
        out = out * F.silu(z.to(xf.dtype))
    return out.to(dtype)


class RMSNormGated(nn.Module):
    """Gated RMSNorm module. forward(x (..., d), z (..., d) | None) -> (..., d)."""

    def __init__(self, d: int, eps: float = 1e-5, norm_before_gate: bool = False, group_size: int | None = None,
                 kernel: kernels.KernelChoice = "auto"):
        super().__init__()
        if group_size is not None and d % group_size:
            raise ValueError(f"group_size={group_size} must divide d={d}")
        self.d, self.eps, self.norm_before_gate, self.group_size = d, eps, norm_before_gate, group_size
        self.kernel = kernel
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if kernels.resolve(self.kernel, "rms_norm_gated", x.device) == "fused":
            fn = kernels.fused_kernels().rms_norm_gated_fn
            return fn(x, self.weight, None, z=z, eps=self.eps, group_size=self.group_size,
                      norm_before_gate=self.norm_before_gate)
        return rms_norm_gated_ref(x, self.weight, z, self.eps, self.group_size, self.norm_before_gate)

    def extra_repr(self) -> str:
        return f"{self.d}, eps={self.eps}, norm_before_gate={self.norm_before_gate}, group_size={self.group_size}"
