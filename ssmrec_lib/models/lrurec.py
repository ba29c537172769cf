"""LRURec (Yue et al. 2024, LlamaRec's retriever): linear recurrent units (Orvieto et al. 2023) + PFFN.

Glossary (LRU paper symbols)
    lambda (N,) complex   diagonal recurrence, lambda = exp(-exp(nu) + i exp(theta)); |lambda| init in [r_min, r_max]
    gamma (N,)            normalisation sqrt(1 - |lambda|^2) (stored as log), keeps the state's scale ~ the input's
    B (N, d) complex      input map, C (d, N) complex output map (as a Linear on [Re h, Im h]), D (d,) skip
    N = d_state (defaults to d_model)

Recurrence (causal):  h_t = lambda * h_{t-1} + gamma * (B x_t),   y_t = Re(C h_t) + D * x_t
Layer:                x <- LN(Dropout(y) + x);   then the PFFN  LN(Dropout(W2 Dropout(GELU(W1 x))) + x)
Embedding:            x_0 = Dropout(LN(E[item]))   (no positions: the recurrence orders the items)

The scan: lambda is time-invariant, so h_t = sum_{s<=t} lambda^(t-s) u_s. It is computed with a log-depth
Hillis-Steele scan: for s = 1, 2, 4, ... < L:  h[t] += lambda^s h[t - s]  (ceil(log2 L) vectorised steps; exact up
to rounding). Padded positions have u = 0, so the state stays 0 through the left padding.
Streaming: `allocate_inference_state(batch)` / `step(item_t, state)` run one item at a time (tests check it
against `forward`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import SequentialModel
from .layers import PFFN
from .registry import register_model


@dataclass(frozen=True)
class LRURecConfig:
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 0  # N; 0 = d_model
    d_ff: int = 256  # 4 d
    dropout: float = 0.2
    r_min: float = 0.8  # |lambda| initialised uniformly (in |lambda|^2) in [r_min, r_max], as LRURec
    r_max: float = 0.99
    max_phase: float = 6.283185307179586  # theta initialised in [0, max_phase] (LRU paper default 2 pi)


class LRU(nn.Module):
    """One linear recurrent unit with residual + LayerNorm. (B, L, d), real (B, L) -> (B, L, d)."""

    def __init__(self, d_model: int, d_state: int, dropout: float, r_min: float, r_max: float, max_phase: float):
        super().__init__()
        u1, u2 = torch.rand(d_state), torch.rand(d_state)
        # |lambda|^2 uniform in [r_min^2, r_max^2]  ->  nu_log = log(-log|lambda|)
        nu = -0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)
        self.nu_log = nn.Parameter(torch.log(nu))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2 + 1e-8))
        mod = torch.exp(-nu)
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - mod**2)))
        self.B_re = nn.Linear(d_model, d_state, bias=False)
        self.B_im = nn.Linear(d_model, d_state, bias=False)
        for lin in (self.B_re, self.B_im):
            nn.init.normal_(lin.weight, std=1 / math.sqrt(2 * d_model))
        self.C = nn.Linear(2 * d_state, d_model)  # Re(C h) written on [Re h, Im h]
        self.D = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def log_lambda(self) -> torch.Tensor:
        """(N,) complex: -exp(nu) + i exp(theta)."""
        return torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log))

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d) -> gamma * B x (..., N) complex."""
        g = torch.exp(self.gamma_log)
        return torch.complex(self.B_re(x) * g, self.B_im(x) * g)

    def output(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self.C(torch.cat([h.real, h.imag], dim=-1)) + self.D * x  # (..., d)
        return self.norm(self.drop(y) + x)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        u = self.inputs(x) * real.unsqueeze(-1)  # (B, L, N) complex, 0 at padding
        log_lam = self.log_lambda()
        h, L, s = u, x.shape[1], 1
        while s < L:  # Hillis-Steele: after the step with offset s, h[t] sums u over (t - 2s, t]
            lam_s = torch.exp(s * log_lam)  # (N,)
            h = torch.cat([h[:, :s], h[:, s:] + lam_s * h[:, :-s]], dim=1)
            s *= 2
        return self.output(h, x)

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, d), state h (B, N) complex -> (y_t (B, d), new state)."""
        h = torch.exp(self.log_lambda()) * h + self.inputs(x_t)
        return self.output(h, x_t), h


@register_model("lrurec")
class LRURec(SequentialModel):
    config_cls = LRURecConfig

    def __init__(self, config: LRURecConfig, n_items: int, max_len: int) -> None:
        super().__init__(config, n_items, max_len, config.d_model)
        c = config
        n = c.d_state or c.d_model
        self.emb_norm = nn.LayerNorm(c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.lrus = nn.ModuleList(LRU(c.d_model, n, c.dropout, c.r_min, c.r_max, c.max_phase) for _ in range(c.n_layers))
        self.ffns = nn.ModuleList(PFFN(c.d_model, c.d_ff, c.dropout) for _ in range(c.n_layers))
        nn.init.trunc_normal_(self.item_emb.weight, std=0.02, a=-0.04, b=0.04)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """item_seq (B, L), lengths (B,) -> (B, L, d)."""
        e, real = self.embed_items(item_seq, lengths)
        x = self.drop(self.emb_norm(e))  # (B, L, d)
        for lru, ffn in zip(self.lrus, self.ffns):
            x = ffn(lru(x, real))
        return x

    def allocate_inference_state(self, batch: int) -> list[torch.Tensor]:
        n = self.config.d_state or self.config.d_model
        dev = self.item_emb.weight.device
        return [torch.zeros(batch, n, dtype=torch.complex64, device=dev) for _ in self.lrus]

    def step(self, item_t: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """item_t (B,) -> (h_t (B, d), new state): the output `forward` gives at that position (eval mode)."""
        x = self.drop(self.emb_norm(self.item_emb(item_t)))
        new = []
        for lru, ffn, h in zip(self.lrus, self.ffns, state):
            y, h = lru.step(x, h)
            x = ffn(y)
            new.append(h)
        return x, new
