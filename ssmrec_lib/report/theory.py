"""Computations behind notebook 02 (SSM theory): each function returns plain data (DataFrames, arrays, numbers)
that the notebook shows and `plotting` draws. Nothing here is new maths: it calls ssm/ and checks it.

Glossary (code <-> paper): A, B, C continuous SSM; dt = Delta (step size); Ab, Bb discrete matrices;
K the convolution kernel (C Bb, C Ab Bb, ...); M the (L, L) mixing matrix (semiseparable for SSD, quasiseparable
for Hydra); N = d_state; D = channels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..bench.timer import time_calls
from ..ssm import discretize as disc
from ..ssm import ssd as ssd_mod


def scalar_system(a: float = -1.0, b: float = 1.0, c: float = 1.0):
    """The 1-state system h' = a h + b u, y = c h (float64), as diagonal A, B, C tensors."""
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return t(a), t(b), t(c)


def discretization_responses(a: float = -1.0, dts=(0.1, 0.5, 1.0, 1.5), T: float = 8.0,
                             kind: str = "step") -> pd.DataFrame:
    """Step (or impulse) response of h' = a h + u for each method and step size, beside the exact curve.

    Columns: method, dt, t, y (method == "exact" holds the continuous solution, dt = 0).
    """
    A, B, C = scalar_system(a)
    rows = []
    for method in disc.METHODS:
        for dt, (t, y) in disc.responses(A, B, C, dts, T, kind=kind, method=method).items():
            rows.append(pd.DataFrame({"method": method, "dt": dt, "t": t.numpy(), "y": y.numpy()}))
    t = torch.linspace(0, T, 400, dtype=torch.float64)
    exact = (disc.continuous_step_response(A, B, C, t) if kind == "step"
             else disc.continuous_impulse_response(A, B, C, t))
    rows.append(pd.DataFrame({"method": "exact", "dt": 0.0, "t": t.numpy(), "y": exact.numpy()}))
    return pd.concat(rows, ignore_index=True)


def stability_table(a: float = -1.0, dts=(0.1, 0.5, 1.0, 1.5, 2.5, 5.0)) -> pd.DataFrame:
    """|Ab| (the spectral radius) per method and dt for h' = a h: < 1 means the discrete system is stable.

    ZOH and bilinear keep every stable continuous system stable; Euler does not once dt > 2/|a|.
    """
    A, B, _ = scalar_system(a)
    rows = []
    for method in disc.METHODS:
        for dt in dts:
            Ab, _ = disc.discretize(A, B, dt, method)
            rows.append({"method": method, "dt": dt, "spectral_radius": disc.spectral_radius(Ab),
                         "stable": disc.is_stable(Ab)})
    return pd.DataFrame(rows).pivot(index="dt", columns="method", values="spectral_radius")


def recurrence_vs_convolution(N: int = 4, L: int = 64, dt: float = 0.1, seed: int = 0) -> dict:
    """Run one LTI SSM both ways (h_k = Ab h_{k-1} + Bb x_k, and y = K * x) and compare.

    Returns {"t", "x", "y_recurrence", "y_convolution", "max_abs_diff"}.
    """
    g = torch.Generator().manual_seed(seed)
    A = -torch.rand(N, generator=g, dtype=torch.float64) * 2 - 0.1  # stable diagonal A
    B = torch.randn(N, generator=g, dtype=torch.float64)
    C = torch.randn(N, generator=g, dtype=torch.float64)
    x = torch.randn(L, generator=g, dtype=torch.float64)
    Ab, Bb = disc.discretize(A, B, dt, "zoh")
    y_rec = disc.run_recurrence(Ab, Bb, C, x)
    y_conv = disc.run_convolution(disc.ssm_kernel(Ab, Bb, C, L), x)
    return {"t": np.arange(L), "x": x.numpy(), "y_recurrence": y_rec.numpy(), "y_convolution": y_conv.numpy(),
            "max_abs_diff": float((y_rec - y_conv).abs().max())}


def selectivity_demo(L: int = 60, reset_every: int = 20, seed: int = 0) -> pd.DataFrame:
    """Why input-dependent dt matters: a 1-state SSM must remember a running signal but forget at 'reset' tokens.

    LTI: one fixed dt, so the state cannot tell a reset token from any other input.
    Selective (Mamba's idea): dt_t = softplus(w x_t + b) is large at reset tokens (Ab = exp(dt A) ~ 0: forget)
    and small elsewhere (Ab ~ 1: remember). Columns: t, x, is_reset, dt_selective, h_lti, h_selective.
    """
    g = torch.Generator().manual_seed(seed)
    is_reset = (torch.arange(L) % reset_every) == 0
    x = torch.rand(L, generator=g, dtype=torch.float64)
    x = torch.where(is_reset, torch.full_like(x, 5.0), x)  # reset tokens carry a large marker value
    a = -1.0
    dt_sel = torch.nn.functional.softplus(4.0 * (x - 4.0))  # ~0 for ordinary tokens, ~4 at reset tokens
    u = torch.where(is_reset, torch.zeros_like(x), x)  # the signal to accumulate (reset tokens add nothing)
    h_lti = torch.zeros(L, dtype=torch.float64)
    h_sel = torch.zeros(L, dtype=torch.float64)
    hl = hs = torch.tensor(0.0, dtype=torch.float64)
    for t in range(L):
        hl = np.exp(a * 0.05) * hl + 0.05 * u[t]  # fixed dt = 0.05 ("mamba" rule: ZOH for A, Euler for B)
        d = dt_sel[t].clamp(min=0.05)
        hs = torch.exp(a * d) * hs + 0.05 * u[t]
        h_lti[t], h_sel[t] = hl, hs
    return pd.DataFrame({"t": np.arange(L), "x": x.numpy(), "is_reset": is_reset.numpy(),
                         "dt_selective": dt_sel.clamp(min=0.05).numpy(), "h_lti": h_lti.numpy(),
                         "h_selective": h_sel.numpy()})


def random_ssd_inputs(L: int = 16, heads: int = 1, headdim: int = 2, d_state: int = 4, seed: int = 0):
    """Small random SSD inputs (float64): X (1, L, H, P), dt (1, L, H), A (H,), B, C (1, L, 1, N)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(1, L, heads, headdim, generator=g, dtype=torch.float64)
    dt = torch.nn.functional.softplus(torch.randn(1, L, heads, generator=g, dtype=torch.float64) - 1)
    A = -torch.rand(heads, generator=g, dtype=torch.float64) - 0.2
    B = torch.randn(1, L, 1, d_state, generator=g, dtype=torch.float64)
    C = torch.randn(1, L, 1, d_state, generator=g, dtype=torch.float64)
    return X, dt, A, B, C


def ssd_matrix_demo(L: int = 16, chunk_size: int = 5, seed: int = 0) -> dict:
    """The SSD layer as a matrix: M = L o (C B^T) dt (lower-triangular, semiseparable), and a check that the
    chunked algorithm (chunk_size not dividing L) and the recurrence both compute y = M X.

    Returns {"M": (L, L) array of head 0, "max_diff_chunked", "max_diff_recurrence", "rank_of_offdiag_block"}.
    The rank of any block strictly below the diagonal is at most N (d_state): that is semiseparability.
    """
    X, dt, A, B, C = random_ssd_inputs(L, seed=seed)
    M = ssd_mod.semiseparable_matrix(dt, A, B, C)  # (1, H, L, L)
    y_matrix = torch.einsum("bhts,bshp->bthp", M, X)
    y_chunk = ssd_mod.ssd_chunked(X, dt, A, B, C, chunk_size=chunk_size)
    y_naive = ssd_mod.ssd_naive(X, dt, A, B, C)
    block = M[0, 0, L // 2:, : L // 2]
    return {"M": M[0, 0].numpy(), "max_diff_chunked": float((y_chunk - y_matrix).abs().max()),
            "max_diff_recurrence": float((y_naive - y_matrix).abs().max()),
            "rank_of_offdiag_block": int(torch.linalg.matrix_rank(block)), "d_state": B.shape[-1]}


def hydra_matrix_demo(L: int = 16, chunk_size: int = 5, seed: int = 0) -> dict:
    """Hydra's mixer as a matrix: quasiseparable (forward SSD below the diagonal, backward SSD above it, a
    data-dependent diagonal), and a check that the two-pass chunked mixer computes y = M X.

    Returns {"M": (L, L) array of head 0, "max_diff", "rank_below", "rank_above", "d_state"}.
    """
    from ..ssm import hydra

    X, dt_fw, A, B_fw, C_fw = random_ssd_inputs(L, seed=seed)
    _, dt_bw, _, B_bw, C_bw = random_ssd_inputs(L, seed=seed + 1)
    D_diag = torch.randn(1, L, X.shape[2], generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    M = hydra.quasiseparable_matrix(dt_fw, dt_bw, A, B_fw, C_fw, B_bw, C_bw, D_diag)  # (1, H, L, L)
    y_mixer = hydra.quasiseparable_mixer(X, dt_fw, dt_bw, A, B_fw, C_fw, B_bw, C_bw, D_diag,
                                         chunk_size=chunk_size, kernel="ref")
    y_matrix = torch.einsum("bhts,bshp->bthp", M, X)
    h = L // 2
    return {"M": M[0, 0].numpy(), "max_diff": float((y_mixer - y_matrix).abs().max()),
            "rank_below": int(torch.linalg.matrix_rank(M[0, 0, h:, :h])),
            "rank_above": int(torch.linalg.matrix_rank(M[0, 0, :h, h:])), "d_state": B_fw.shape[-1]}


def cost_table(lengths=(50, 200, 1000, 4000), d_model: int = 64, d_state: int = 32, expand: int = 2) -> pd.DataFrame:
    """Multiply-adds of one token mixer over a sequence of length L (forward, batch 1, leading terms only).

    attention: QK^T and AV, 2 L^2 D;  selective scan: state update and read-out, ~3 L (expand D) N;
    SSD chunked (chunk Q=64): ~ L Q (expand D) + 2 L (expand D) N. Projections (~L D^2 for all) are left out.
    """
    rows = []
    for L in lengths:
        E = expand * d_model
        rows.append({"L": L, "attention O(L^2 D)": 2 * L * L * d_model, "selective scan O(L E N)": 3 * L * E * d_state,
                     "SSD chunked O(L Q E + L E N)": L * 64 * E + 2 * L * E * d_state})
    return pd.DataFrame(rows).set_index("L")


def measured_scaling(lengths=(64, 256, 1024), heads: int = 4, headdim: int = 32, d_state: int = 32,
                     repeats: int = 3) -> pd.DataFrame:
    """Wall-clock ms (best of `repeats`) of SSD chunked (linear in L) vs the quadratic form at batch 1 here."""
    rows = []
    for L in lengths:
        g = torch.Generator().manual_seed(0)
        X = torch.randn(1, L, heads, headdim, generator=g)
        dt = torch.rand(1, L, heads, generator=g) * 0.1
        A = -torch.ones(heads)
        B = torch.randn(1, L, 1, d_state, generator=g)
        C = torch.randn(1, L, 1, d_state, generator=g)
        for name, fn in (("SSD chunked", lambda: ssd_mod.ssd_chunked(X, dt, A, B, C, chunk_size=64)),
                         ("quadratic (attention-like)", lambda: ssd_mod.ssd_quadratic(X, dt, A, B, C))):
            ms = time_calls(fn, repeats, warmup=1).min_ms  # min: least disturbed by load
            rows.append({"L": L, "form": name, "ms": ms})
    return pd.DataFrame(rows)
