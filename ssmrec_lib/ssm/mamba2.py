"""The Mamba2 block (Dao & Gu 2024), with padding masks and a recurrent `step` for inference.

    [z, xBC, dt] = in_proj(u)
    xBC = silu(causal depthwise conv(xBC)); [x, B, C] = xBC          (conv over x, B and C together)
    dt = softplus(dt + dt_bias);  A = -exp(A_log)
    y = SSD(x, dt, A, B, C) + D x                                      (per head, `ssd.ssd`)
    out = out_proj(RMSNorm(y * silu(z)))                               (gated RMSNorm, norm after gate)

Glossary (code <-> paper / mamba-ssm): d_model = D, d_inner = expand * d_model = E, headdim = P,
nheads = H = E / P, d_state = N, ngroups = G (B and C are shared by the H / G heads of a group),
conv_dim = E + 2 G N, chunk_size = Q. Parameter names follow mamba-ssm's Mamba2 (in_proj, conv1d, dt_bias,
A_log, D, norm.weight, out_proj), so a checkpoint loads into either path.

Padding (left padding, mask True = real): the xBC stream is zeroed at padded positions before the conv (so no
padded embedding reaches a real position through the conv window) and after conv + SiLU (so the SSM input is 0
there), and dt is 0 there (exp(0 * A) = 1: the state neither decays nor grows). The state is therefore exactly 0
through left padding and the real outputs do not depend on how much padding precedes them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssmrec_lib.errors import UserError
from ssmrec_lib.ssm import kernels
from ssmrec_lib.ssm.conv import causal_conv1d, causal_conv1d_update
from ssmrec_lib.ssm.norm import RMSNormGated
from ssmrec_lib.ssm.ssd import ssd

InferenceState = tuple[torch.Tensor, torch.Tensor]  # conv_state (B, conv_dim, K), ssm_state (B, H, P, N)


def check_headdim(d_inner: int, headdim: int, what: str = "expand * d_model") -> int:
    """nheads = d_inner / headdim, or a UserError that names the divisors one could use instead."""
    if headdim <= 0 or d_inner % headdim:
        divisors = [k for k in range(1, d_inner + 1) if d_inner % k == 0]
        near = sorted(divisors, key=lambda k: abs(k - headdim))[:3]
        raise UserError(f"headdim={headdim} must divide {what} = {d_inner}; try headdim in {sorted(near)}")
    return d_inner // headdim


def init_dt_bias(nheads: int, dt_min: float, dt_max: float, dt_init_floor: float) -> torch.Tensor:
    """dt_bias = softplus^{-1}(dt) with dt log-uniform in [dt_min, dt_max] (Mamba's initialisation)."""
    dt = torch.exp(torch.rand(nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse softplus


def acc_dtype(t: torch.Tensor) -> torch.dtype:
    """Accumulation dtype for the SSM: fp32, or fp64 for fp64 inputs (tests)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def masked(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero t (B, L, ...) where mask (B, L) is False."""
    if mask is None:
        return t
    return t * mask.view(*mask.shape, *([1] * (t.ndim - 2))).to(t.dtype)


class Mamba2(nn.Module):
    """Mamba2 block: forward(u (B, L, d_model), mask (B, L) bool | None) -> (B, L, d_model)."""

    def __init__(self, d_model: int, d_state: int = 64, d_conv: int = 4, expand: int = 2, headdim: int = 64,
                 ngroups: int = 1, chunk_size: int = 64, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, A_init_range: tuple[float, float] = (1.0, 16.0), bias: bool = False,
                 conv_bias: bool = True, kernel: kernels.KernelChoice = "auto"):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.headdim = headdim
        self.nheads = check_headdim(self.d_inner, headdim)
        if self.nheads % ngroups:
            raise UserError(f"ngroups={ngroups} must divide nheads={self.nheads}")
        self.ngroups, self.chunk_size, self.kernel = ngroups, chunk_size, kernel
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        # Order: [z, x, B, C, dt]
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * ngroups * d_state + self.nheads, bias=bias)
        # nn.Conv1d only holds the parameters (mamba-ssm's names and shapes); `conv.causal_conv1d` runs them
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, bias=conv_bias,
                                padding=d_conv - 1)
        self.dt_bias = nn.Parameter(init_dt_bias(self.nheads, dt_min, dt_max, dt_init_floor))
        lo, hi = A_init_range  # A = -exp(A_log), |A| uniform in [1, 16] as in mamba-ssm
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(lo, hi)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = RMSNormGated(self.d_inner, eps=1e-5, norm_before_gate=False,
                                 group_size=self.d_inner // ngroups, kernel=kernel)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    # ---------------------------------------------------------------- full sequence
    def _split(self, zxbcdt: torch.Tensor):
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _conv(self, xBC: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv + SiLU over time. xBC (B, L, conv_dim) -> (B, L, conv_dim)."""
        w = self.conv1d.weight.squeeze(1)  # (conv_dim, K)
        x = xBC.transpose(1, 2).contiguous()  # (B, conv_dim, L); contiguous: any kernel takes this layout
        y = causal_conv1d(x, w, self.conv1d.bias, activation="silu", kernel=self.kernel)
        return y.transpose(1, 2)  # (B, L, conv_dim)

    def _ssm_inputs(self, x_BC: torch.Tensor, lead: tuple[int, ...]):
        x, B, C = torch.split(x_BC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], -1)
        return (x.reshape(*lead, self.nheads, self.headdim), B.reshape(*lead, self.ngroups, self.d_state),
                C.reshape(*lead, self.ngroups, self.d_state))

    def _forward(self, u: torch.Tensor, mask: torch.Tensor | None, return_state: bool):
        b, l, _ = u.shape
        z, xBC_in, dt = self._split(self.in_proj(u))
        xBC_in = masked(xBC_in, mask)  # (B, L, conv_dim): padded steps never enter the conv window
        xBC = masked(self._conv(xBC_in), mask)
        x, B, C = self._ssm_inputs(xBC, (b, l))
        cd = acc_dtype(u)
        dt = masked(F.softplus(dt.to(cd) + self.dt_bias.to(cd)), mask)  # (B, L, H): 0 at padding
        A = -torch.exp(self.A_log.to(cd))  # (H,)
        out = ssd(x, dt, A, B, C, chunk_size=self.chunk_size, D=self.D, return_final_states=return_state,
                  kernel=self.kernel)
        y, ssm_state = out if return_state else (out, None)
        y = self.norm(y.reshape(b, l, self.d_inner), z)
        y = masked(self.out_proj(y), mask)
        if not return_state:
            return y
        K = self.d_conv
        conv_state = F.pad(xBC_in.transpose(1, 2), (max(0, K - l), 0))[..., -K:]  # (B, conv_dim, K)
        return y, (conv_state.contiguous(), ssm_state.to(cd))

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """u (B, L, d_model), mask (B, L) bool (True = real) -> (B, L, d_model), zero at padded positions."""
        return self._forward(u, mask, return_state=False)

    # ---------------------------------------------------------------- recurrent inference
    def allocate_inference_state(self, batch: int, device=None, dtype=None) -> InferenceState:
        """Zero state: conv_state (batch, conv_dim, d_conv), ssm_state (batch, H, P, N) in fp32."""
        device = device or self.in_proj.weight.device
        dtype = dtype or self.in_proj.weight.dtype
        return (torch.zeros(batch, self.conv_dim, self.d_conv, device=device, dtype=dtype),
                torch.zeros(batch, self.nheads, self.headdim, self.d_state, device=device,
                            dtype=acc_dtype(self.in_proj.weight)))

    def prefill(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, InferenceState]:
        """Run the prompt u (B, L, d_model) in parallel; returns (y (B, L, d_model), state after its last step)."""
        return self._forward(u, mask, return_state=True)

    def step(self, u_t: torch.Tensor, state: InferenceState) -> tuple[torch.Tensor, InferenceState]:
        """One time step: u_t (B, d_model) -> (y_t (B, d_model), new state). O(1) in the sequence length."""
        conv_state, ssm_state = state
        b = u_t.shape[0]
        z, xBC, dt = self._split(self.in_proj(u_t))
        # 1. conv: shift the window left, append x_t, dot with the kernel, SiLU
        xBC, conv_state = causal_conv1d_update(xBC, conv_state, self.conv1d.weight.squeeze(1), self.conv1d.bias,
                                               activation="silu", kernel=self.kernel)  # (B, conv_dim)
        x, B, C = self._ssm_inputs(xBC, (b,))
        # 2. SSM: h = exp(dt A) h + dt x B^T;  y = h C + D x
        r = self.nheads // self.ngroups
        cd = ssm_state.dtype
        Bh, Ch = B.repeat_interleave(r, dim=1).to(cd), C.repeat_interleave(r, dim=1).to(cd)  # (B, H, N)
        dt = F.softplus(dt.to(cd) + self.dt_bias.to(cd))  # (B, H)
        decay = torch.exp(dt * -torch.exp(self.A_log.to(cd)))  # (B, H)
        x = x.to(cd)
        ssm_state = ssm_state * decay[..., None, None] + torch.einsum("bh,bhp,bhn->bhpn", dt, x, Bh)
        y = torch.einsum("bhpn,bhn->bhp", ssm_state, Ch) + self.D.to(cd)[:, None] * x
        # 3. gated norm and output projection
        y = self.norm(y.reshape(b, self.d_inner).to(u_t.dtype), z)
        return self.out_proj(y), (conv_state, ssm_state)
