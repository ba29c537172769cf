"""The Mamba (S6) block of Gu & Dao 2023, with left-padding masks and a recurrent `step` for inference.

    [x, z] = in_proj(u)                                          (B, L, 2E) -> two (B, E, L) streams
    x = silu(causal depthwise conv(x))                           (`conv.causal_conv1d`, kernel K = d_conv)
    [dt_r, B, C] = x_proj(x);  delta = dt_proj.weight dt_r       (B, E, L); dt = softplus(delta + dt_proj.bias)
    A = -exp(A_log)
    y = selective_scan(x, dt, A, B, C, D, z)                     (`scan.selective_scan`, includes * silu(z))
    out = out_proj(y)

Glossary (code <-> paper / mamba-ssm): d_model = model width, d_inner = E = expand * d_model, d_state = N,
d_conv = K, dt_rank = R (rank of the dt projection). Parameter names and shapes follow mamba-ssm's
`Mamba` (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj) so checkpoints load into either path.
Discretisation: ZOH for A, Euler for B, as Mamba does (see `scan.py`).

Padding (LEFT padding, mask True = real item): x is zeroed at padded positions before the conv (no padded
embedding enters a real position's conv window) and again after conv + SiLU (so the SSM input u is 0 there:
Bb u = 0 and the state stays exactly 0 through the padding); the output is zeroed at padded positions.
A sequence's real outputs therefore do not depend on how much left padding precedes it.

Recurrent inference: `prefill(x)` (or `forward(..., return_state=True)`) returns the state after the prefix;
`step(x_t, state)` costs O(1) in the history length: conv window (B, E, K) + SSM state (B, E, N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels
from .conv import causal_conv1d, causal_conv1d_update
from .scan import selective_scan

__all__ = ["Mamba", "MambaInferenceState"]


@dataclass
class MambaInferenceState:
    """Recurrent state of one Mamba block: the last K conv inputs and the SSM state (fp32)."""

    conv_state: torch.Tensor  # (B, d_inner, d_conv), oldest input first
    ssm_state: torch.Tensor  # (B, d_inner, d_state)


class Mamba(nn.Module):
    """Mamba block: (B, L, d_model) -> (B, L, d_model). See the module docstring for the maths.

    dt_init: "mamba" = dt_proj.bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max] (mamba-ssm);
             "zero_bias" = dt_proj.bias = 0, i.e. dt = softplus(0) ~ 0.69 at init (Mamba4Rec's `_init_weights`).
    kernel: "auto" | "ref" | "cpu" | "fused" for the conv, the scan and the step's state update (`ssm/kernels.py`);
            only the scan has a C++ kernel, so under "cpu" the conv and the state update run their PyTorch maths.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, dt_init: str = "mamba",
                 kernel: kernels.KernelChoice = "auto"):
        super().__init__()
        if dt_init not in ("mamba", "zero_bias"):
            raise ValueError(f"dt_init must be 'mamba' or 'zero_bias', got {dt_init!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.kernel = kernel
        E, N, R = self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1, bias=True)  # weight (E, 1, K)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        # dt_proj init (mamba-ssm): weight ~ U(-R^-1/2 dt_scale, +), bias = softplus^-1(dt)
        std = R ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        with torch.no_grad():
            if dt_init == "zero_bias":
                self.dt_proj.bias.zero_()
            else:
                dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
                dt = dt.clamp(min=dt_init_floor)
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True
        # S4D-real init: A[d, n] = -(n + 1)
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)  # (E, N)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(E))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(E, d_model, bias=False)

    # ---------------------------------------------------------------- full sequence
    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None, return_state: bool = False):
        """hidden_states (B, L, d_model), mask (B, L) bool (True = real) -> (B, L, d_model)
        [, MambaInferenceState after the last position if `return_state`]."""
        Bsz, L, _ = hidden_states.shape
        N, R, K = self.d_state, self.dt_rank, self.d_conv
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # (B, L, E) each
        x, z = x.transpose(1, 2), z.transpose(1, 2)  # (B, E, L)
        m = None if mask is None else mask[:, None, :].to(x.dtype)  # (B, 1, L)
        if m is not None:
            x = x * m
        x_in = x
        x = causal_conv1d(x, self.conv1d.weight[:, 0, :], self.conv1d.bias, "silu", self.kernel)  # (B, E, L)
        if m is not None:
            x = x * m
        dt_r, B, C = self.x_proj(x.transpose(1, 2)).split([R, N, N], dim=-1)  # (B, L, R), (B, L, N) x 2
        delta = torch.einsum("er,blr->bel", self.dt_proj.weight, dt_r)  # (B, E, L), bias goes in as delta_bias
        A = -torch.exp(self.A_log.float())  # (E, N)
        y, last = selective_scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z,
                                 delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
                                 return_last_state=True, kernel=self.kernel)  # (B, E, L), (B, E, N)
        out = self.out_proj(y.transpose(1, 2))  # (B, L, d_model)
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
        if not return_state:
            return out
        conv_state = F.pad(x_in, (max(0, K - L), 0))[..., -K:]  # (B, E, K): last K (masked) conv inputs
        return out, MambaInferenceState(conv_state.contiguous(), last.float())

    def prefill(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None):
        """Run the prefix (B, L, d_model) and return (outputs (B, L, d_model), state for `step`)."""
        return self.forward(hidden_states, mask, return_state=True)

    # ---------------------------------------------------------------- recurrent inference
    def allocate_inference_state(self, batch_size: int, dtype: torch.dtype | None = None,
                                 device: torch.device | str | None = None) -> MambaInferenceState:
        """Zero state: conv_state (batch, d_inner, d_conv) in `dtype` (default: the weights'), ssm_state
        (batch, d_inner, d_state) in fp32."""
        device = self.in_proj.weight.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        return MambaInferenceState(
            torch.zeros(batch_size, self.d_inner, self.d_conv, dtype=dtype, device=device),
            torch.zeros(batch_size, self.d_inner, self.d_state, dtype=torch.float32, device=device),
        )

    def step(self, x_t: torch.Tensor, state: MambaInferenceState) -> tuple[torch.Tensor, MambaInferenceState]:
        """One position: x_t (B, d_model) -> (y_t (B, d_model), new state). Pure (the old state is untouched).

        1. conv window shift + dot, SiLU;  2. dt, B, C from x;  3. h = exp(dt A) h + dt B x;
        4. y = C . h + D x, * silu(z);  5. out_proj.
        """
        N, R = self.d_state, self.dt_rank
        x, z = self.in_proj(x_t).chunk(2, dim=-1)  # (B, E) each
        x, conv_state = causal_conv1d_update(x, state.conv_state, self.conv1d.weight[:, 0, :], self.conv1d.bias,
                                             "silu", self.kernel)  # (B, E), (B, E, K)
        dt_r, B, C = self.x_proj(x).split([R, N, N], dim=-1)  # (B, R), (B, N), (B, N)
        delta = F.linear(dt_r, self.dt_proj.weight)  # (B, E)
        A = -torch.exp(self.A_log.float())  # (E, N)
        h = state.ssm_state
        if kernels.resolve(self.kernel, "selective_state_update", x_t.device) == "fused":
            h = h.clone()
            y = kernels.fused_kernels().selective_state_update(
                h, x, delta, A, B, C, self.D, z=z, dt_bias=self.dt_proj.bias, dt_softplus=True)  # (B, E)
        else:
            xf, zf, Bf, Cf = x.float(), z.float(), B.float(), C.float()
            dt = F.softplus(delta.float() + self.dt_proj.bias.float())  # (B, E)
            Ab = torch.exp(dt[..., None] * A)  # (B, E, N)
            h = Ab * h + (dt * xf)[..., None] * Bf[:, None, :]  # (B, E, N)
            y = torch.einsum("ben,bn->be", h, Cf) + self.D.float() * xf  # (B, E)
            y = (y * F.silu(zf)).to(x_t.dtype)
        return self.out_proj(y), MambaInferenceState(conv_state, h)
