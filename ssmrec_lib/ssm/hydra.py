"""Hydra (Hwang et al. 2024): a bidirectional SSM whose mixer matrix is quasiseparable.

Quasiseparable mixer, per head (X (b, l, h, p)):

    QS(X) = shift(SS_fw(X)) + flip(shift(SS_bw(flip(X)))) + D_diag * X

SS is the causal SSD of `ssd.py` (on the path `kernel` resolves to: on CPU the C++ recurrence); `shift` moves outputs one step later (y_t <- y_{t-1}, y_0 = 0) so that in
each direction position t sees only s < t (forward) or s > t (backward); the diagonal is a separate,
data-dependent term D_diag_t = fc_D(x_t) + D. As a matrix (`quasiseparable_matrix`), for s < t, s > t, s = t:

    M[t, s] = (C_fw[t-1] . B_fw[s]) exp(A sum_{k=s+1..t-1} dt_fw[k]) dt_fw[s]     (below the diagonal)
    M[t, s] = (C_bw[t+1] . B_bw[s]) exp(A sum_{k=t+1..s-1} dt_bw[k]) dt_bw[s]     (above the diagonal)
    M[t, t] = D_diag[t]

Block (goombalab/hydra `hydra/modules/hydra.py`; this is our own code, read for the layout):

    [z, x, B_fw, C_fw, B_bw, C_bw, dt_fw, dt_bw] = in_proj(u)          width 2E + 4GN + 2H
    [x, B_fw, C_fw, B_bw, C_bw] = silu(NON-causal depthwise conv, kernel d_conv = 7, padding 3)
    dt = softplus(dt + dt_bias) (one dt_bias shared by both directions); A = -exp(A_log) shared, A_log = 0
    y = QS(x);   out = out_proj(RMSNorm(y) * silu(z))                   (gated RMSNorm, norm BEFORE gate)

Glossary: E = d_inner = expand * d_model, P = headdim, H = E / P, N = d_state, G = ngroups, fw/bw = the two
directions, D_diag (b, l, h) the diagonal of the mixer.

Padding (mask True = real; any side): the conv input and output are zeroed at padded positions (a padded
embedding never reaches a real position through the two-sided conv window, and the SSM input there is 0),
and dt is 0 there. So nothing from a padded position reaches a real one in either direction.
Divergences from the public code: it has no mask (it was written for unpadded sequences); chunk_size defaults
to 64 here (256 there); its options dt_limit, learnable_init_states, conv_init, seq_idx and the fused
memory-efficient path are not implemented. Parameters and their names match (44,678 at d=64, N=64, P=64, k=7).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssmrec_lib.errors import UserError
from ssmrec_lib.ssm import kernels
from ssmrec_lib.ssm.mamba2 import acc_dtype, check_headdim, init_dt_bias, masked
from ssmrec_lib.ssm.norm import RMSNormGated
from ssmrec_lib.ssm.ssd import segsum, semiseparable_matrix, ssd


def _shift(y: torch.Tensor) -> torch.Tensor:
    """y (b, l, ...) -> y_t <- y_{t-1}, y_0 = 0 (one step later along time)."""
    return torch.cat([torch.zeros_like(y[:, :1]), y[:, :-1]], dim=1)


def quasiseparable_mixer(X, dt_fw, dt_bw, A, B_fw, C_fw, B_bw, C_bw, D_diag, chunk_size: int = 64,
                         kernel: kernels.KernelChoice = "auto") -> torch.Tensor:
    """QS(X) (see module docstring). All inputs are in natural time order; the backward direction is run on
    the time-flipped sequence. Both directions share one SSD call (stacked along the batch, as Hydra does).

    X (b, l, h, p); dt_fw, dt_bw (b, l, h) (already biased / softplus-ed); A (h,);
    B_*, C_* (b, l, g, n); D_diag (b, l, h). Returns (b, l, h, p).
    """
    b = X.shape[0]
    flip = lambda t: torch.flip(t, (1,))  # noqa: E731
    y = ssd(torch.cat([X, flip(X)]), torch.cat([dt_fw, flip(dt_bw)]), A,
            torch.cat([B_fw, flip(B_bw)]), torch.cat([C_fw, flip(C_bw)]), chunk_size=chunk_size, kernel=kernel)
    y = _shift(y)  # (2b, l, h, p): each direction sees only the strict past of its own time axis
    y_fw, y_bw = y[:b], flip(y[b:])
    return y_fw + y_bw + X * D_diag.unsqueeze(-1).to(X.dtype)


def quasiseparable_matrix(dt_fw, dt_bw, A, B_fw, C_fw, B_bw, C_bw, D_diag) -> torch.Tensor:
    """The explicit mixer matrix M (b, h, l, l), built from the formulas in the module docstring, so that
    QS(X)[:, t] = sum_s M[:, :, t, s] X[:, s]. For checks and figures (O(l^2) memory).
    """
    b, l, h = dt_fw.shape
    # below the diagonal: row t of the forward semiseparable matrix shifted down by one (C_fw[t-1], decay to t-1)
    S_fw = semiseparable_matrix(dt_fw, A, B_fw, C_fw)  # (b, h, l, l), [u, s] for s <= u
    M_fw = torch.cat([torch.zeros_like(S_fw[..., :1, :]), S_fw[..., :-1, :]], dim=-2)  # [t, s] = S_fw[t-1, s]
    # above the diagonal: decay exp(A sum_{k=t+1..s-1} dt_bw[k]) = exp(segsum[s-1, t]); scores C_bw[t+1] . B_bw[s]
    cd = M_fw.dtype
    dt_b = dt_bw.to(cd)
    G = torch.exp(segsum((dt_b * A.to(cd)).transpose(1, 2))).transpose(-1, -2)  # [t, u] = exp(sum_{t<k<=u})
    decay = torch.cat([torch.zeros_like(G[..., :1]), G[..., :-1]], dim=-1)  # [t, s] = G[t, s-1]
    r = h // B_bw.shape[2]
    C_next = torch.cat([C_bw[:, 1:], torch.zeros_like(C_bw[:, :1])], dim=1)  # (b, l, g, n): C_bw[t+1]
    CB = torch.einsum("btgn,bsgn->bgts", C_next.to(cd), B_bw.to(cd)).repeat_interleave(r, dim=1)  # (b, h, l, l)
    M_bw = decay * CB * dt_b.transpose(1, 2).unsqueeze(-2)
    diag = torch.diag_embed(D_diag.to(cd).transpose(1, 2))  # (b, h, l, l)
    return M_fw + M_bw + diag


class Hydra(nn.Module):
    """Hydra block: forward(u (B, L, d_model), mask (B, L) bool | None) -> (B, L, d_model)."""

    def __init__(self, d_model: int, d_state: int = 64, d_conv: int = 7, expand: int = 2, headdim: int = 64,
                 ngroups: int = 1, chunk_size: int = 64, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, bias: bool = False, conv_bias: bool = True,
                 kernel: kernels.KernelChoice = "auto"):
        super().__init__()
        if d_conv % 2 == 0:
            raise UserError(f"Hydra's two-sided conv needs an odd d_conv (the public default is 7), got {d_conv}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.headdim = headdim
        self.nheads = check_headdim(self.d_inner, headdim)
        if self.nheads % ngroups:
            raise UserError(f"ngroups={ngroups} must divide nheads={self.nheads}")
        self.ngroups, self.chunk_size, self.kernel = ngroups, chunk_size, kernel
        GN = ngroups * d_state
        self.conv_dim = self.d_inner + 4 * GN  # [x, B_fw, C_fw, B_bw, C_bw]
        # Order: [z, x, B_fw, C_fw, B_bw, C_bw, dt_fw, dt_bw]
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 4 * GN + 2 * self.nheads, bias=bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, bias=conv_bias,
                                padding=d_conv // 2)  # non-causal: sees d_conv // 2 steps on each side
        self.dt_bias = nn.Parameter(init_dt_bias(self.nheads, dt_min, dt_max, dt_init_floor))
        self.A_log = nn.Parameter(torch.zeros(self.nheads))  # A = -1 for every head, as in Hydra
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.fc_D = nn.Linear(self.d_inner, self.nheads, bias=False)  # data-dependent diagonal
        self.norm = RMSNormGated(self.d_inner, eps=1e-5, norm_before_gate=True, kernel=kernel)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def mixer_inputs(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything the quasiseparable mixer takes, plus the gate z: a dict of tensors (for the notebook)."""
        b, l, _ = u.shape
        H, GN = self.nheads, self.ngroups * self.d_state
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, 2 * H], dim=-1)
        xBC = masked(xBC, mask)  # (B, L, conv_dim): padded embeddings never enter the two-sided window
        xBC = masked(F.silu(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2)), mask)
        x, B_fw, C_fw, B_bw, C_bw = torch.split(xBC, [self.d_inner, GN, GN, GN, GN], dim=-1)
        cd = acc_dtype(u)
        dt = masked(F.softplus(dt.to(cd) + self.dt_bias.to(cd).repeat(2)), mask)  # (B, L, 2H): 0 at padding
        grp = lambda t: t.reshape(b, l, self.ngroups, self.d_state)  # noqa: E731
        return dict(
            X=x.reshape(b, l, H, self.headdim), dt_fw=dt[..., :H], dt_bw=dt[..., H:],
            A=-torch.exp(self.A_log.to(cd)), B_fw=grp(B_fw), C_fw=grp(C_fw), B_bw=grp(B_bw), C_bw=grp(C_bw),
            D_diag=self.fc_D(x) + self.D, z=z,
        )

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """u (B, L, d_model), mask (B, L) bool (True = real) -> (B, L, d_model), zero at padded positions."""
        b, l, _ = u.shape
        inp = self.mixer_inputs(u, mask)
        z = inp.pop("z")
        y = quasiseparable_mixer(**inp, chunk_size=self.chunk_size, kernel=self.kernel)  # (B, L, H, P)
        y = self.norm(y.reshape(b, l, self.d_inner), z)
        return masked(self.out_proj(y), mask)
