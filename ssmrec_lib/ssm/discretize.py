"""Discretisation of a continuous linear state-space model, and the two ways to run the discrete one.

Continuous SSM (one input u, one output y):   h'(t) = A h(t) + B u(t),   y(t) = C h(t)
Discrete SSM with step dt:                     h_k = Ab h_{k-1} + Bb u_k,  y_k = C h_k

Glossary (code <-> paper):
    A   (N,) diagonal or (N, N) dense state matrix            A
    B   (N,) or (N, M) input matrix                           B
    C   (N,) output vector                                    C
    dt  step size                                             Delta
    Ab, Bb  discrete matrices                                 A-bar, B-bar
    N   state size (d_state)
    K   convolution kernel (C Bb, C Ab Bb, ..., C Ab^{L-1} Bb)   K-bar (S4)

Methods (`method=`):
    "zoh"       zero-order hold (input held constant over a step): Ab = exp(dt A), Bb = A^{-1}(exp(dt A) - I) B
    "bilinear"  Tustin / trapezoid: Ab = (I - dt/2 A)^{-1}(I + dt/2 A), Bb = (I - dt/2 A)^{-1} dt B
    "euler"     forward Euler: Ab = I + dt A, Bb = dt B
    "mamba"     ZOH for A, Euler for B (Ab = exp(dt A), Bb = dt B), the shortcut Mamba takes: for small dt
                A^{-1}(exp(dt A) - I) = dt I + O(dt^2), so the two agree to first order.

Dense ZOH uses the block-matrix exponential exp(dt [[A, B], [0, 0]]) = [[Ab, Bb], [0, I]] (valid for singular A).

References: Gu et al. 2022 (S4) and the Annotated S4; Gu & Dao 2023 (Mamba) section 2.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Method = Literal["zoh", "bilinear", "euler", "mamba"]
METHODS: tuple[str, ...] = ("zoh", "bilinear", "euler", "mamba")


def _as_tensor(dt, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(dt, dtype=like.dtype, device=like.device)


def _diag_b(factor: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """factor (N,) times B (N,) or (N, M) row-wise."""
    return factor * B if B.ndim == factor.ndim else factor.unsqueeze(-1) * B


def discretize(A: torch.Tensor, B: torch.Tensor, dt, method: Method = "zoh") -> tuple[torch.Tensor, torch.Tensor]:
    """Discretise (A, B) with step dt.

    A: (N,) diagonal (the vector of eigenvalues) or (N, N) dense.  B: (N,) or (N, M).  dt: float or 0-d tensor
    (for diagonal A also anything broadcastable to A, e.g. one dt per state).
    Returns (Ab, Bb) with the shapes of (A, B).
    """
    if method not in METHODS:
        raise ValueError(f"unknown discretisation {method!r}; choose one of {METHODS}")
    dt = _as_tensor(dt, A)
    if A.ndim == 1:
        return _discretize_diag(A, B, dt, method)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be (N,) diagonal or (N, N) square, got {tuple(A.shape)}")
    return _discretize_dense(A, B, dt, method)


def _discretize_diag(A, B, dt, method):
    dA = dt * A  # (N,)
    if method == "zoh":
        Ab = torch.exp(dA)
        # (exp(dt A) - 1) / A, with its limit dt where A = 0
        safe_A = torch.where(A == 0, torch.ones_like(A), A)
        factor = torch.where(A == 0, dt * torch.ones_like(A), torch.expm1(dA) / safe_A)
        return Ab, _diag_b(factor, B)
    if method == "bilinear":
        denom = 1 - dA / 2
        return (1 + dA / 2) / denom, _diag_b(dt / denom, B)
    if method == "euler":
        return 1 + dA, _diag_b(dt * torch.ones_like(A), B)
    # "mamba": ZOH for A, Euler for B
    return torch.exp(dA), _diag_b(dt * torch.ones_like(A), B)


def _discretize_dense(A, B, dt, method):
    N = A.shape[0]
    eye = torch.eye(N, dtype=A.dtype, device=A.device)
    B2 = B.unsqueeze(-1) if B.ndim == 1 else B  # (N, M)
    if method == "zoh":
        M = B2.shape[1]
        block = torch.zeros(N + M, N + M, dtype=A.dtype, device=A.device)
        block[:N, :N] = A
        block[:N, N:] = B2
        E = torch.linalg.matrix_exp(dt * block)
        Ab, Bb = E[:N, :N], E[:N, N:]
    elif method == "bilinear":
        left = eye - dt / 2 * A
        Ab = torch.linalg.solve(left, eye + dt / 2 * A)
        Bb = torch.linalg.solve(left, dt * B2)
    elif method == "euler":
        Ab, Bb = eye + dt * A, dt * B2
    else:  # mamba
        Ab, Bb = torch.linalg.matrix_exp(dt * A), dt * B2
    return Ab, (Bb.squeeze(-1) if B.ndim == 1 else Bb)


def _apply(Ab: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Ab h for diagonal (N,) or dense (N, N) Ab; h (..., N)."""
    return Ab * h if Ab.ndim == 1 else h @ Ab.T


def ssm_kernel(Ab: torch.Tensor, Bb: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Impulse response of the discrete SSM: K = (C Bb, C Ab Bb, ..., C Ab^{L-1} Bb).

    Ab (N,) or (N, N); Bb (N,); C (N,). Returns K (L,).
    """
    out = []
    v = Bb  # Ab^k Bb
    for _ in range(L):
        out.append(C @ v)
        v = _apply(Ab, v)
    return torch.stack(out)


def run_recurrence(Ab: torch.Tensor, Bb: torch.Tensor, C: torch.Tensor, x: torch.Tensor,
                   h0: torch.Tensor | None = None) -> torch.Tensor:
    """The recurrent view: h_k = Ab h_{k-1} + Bb x_k, y_k = C h_k.

    x (..., L) -> y (..., L); h0 (..., N) or None (zeros).
    """
    N = Bb.shape[0]
    h = torch.zeros(*x.shape[:-1], N, dtype=x.dtype, device=x.device) if h0 is None else h0
    ys = []
    for k in range(x.shape[-1]):
        h = _apply(Ab, h) + Bb * x[..., k : k + 1]  # (..., N)
        ys.append(h @ C)
    return torch.stack(ys, dim=-1)


def run_convolution(K: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The convolutional view: y_k = sum_{j=0..k} K_j x_{k-j} (causal, zero initial state).

    K (L_k,), x (..., L) with L_k >= L -> y (..., L).
    """
    L = x.shape[-1]
    if K.shape[0] < L:
        raise ValueError(f"kernel length {K.shape[0]} is shorter than the input length {L}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, 1, L)
    w = K[:L].flip(0).view(1, 1, L)  # conv1d is a correlation: flip for a convolution
    y = F.conv1d(F.pad(x2, (L - 1, 0)), w)
    return y.reshape(*lead, L)


def spectral_radius(Ab: torch.Tensor) -> float:
    """max |eigenvalue| of Ab ((N,) diagonal or (N, N))."""
    eig = Ab if Ab.ndim == 1 else torch.linalg.eigvals(Ab)
    return float(eig.abs().max())


def is_stable(Ab: torch.Tensor) -> bool:
    """A discrete SSM is (asymptotically) stable iff the spectral radius of Ab is < 1."""
    return spectral_radius(Ab) < 1.0


def continuous_impulse_response(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact h(t) = C exp(t A) B of the continuous SSM at times t (T,). A (N,) or (N, N); B, C (N,)."""
    if A.ndim == 1:
        return torch.exp(t.unsqueeze(-1) * A) @ (B * C)
    E = torch.linalg.matrix_exp(t.view(-1, 1, 1) * A)  # (T, N, N)
    return E @ B @ C


def continuous_step_response(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact response to a unit step: integral_0^t C exp(s A) B ds = C A^{-1}(exp(t A) - I) B (diagonal A only)."""
    if A.ndim != 1:
        raise ValueError("continuous_step_response takes a diagonal A (N,)")
    safe_A = torch.where(A == 0, torch.ones_like(A), A)
    tA = t.unsqueeze(-1) * A
    factor = torch.where(A == 0, t.unsqueeze(-1).expand_as(tA), torch.expm1(tA) / safe_A)  # (T, N)
    return factor @ (B * C)


def responses(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dts, T: float,
              kind: Literal["step", "impulse"] = "step", method: Method = "zoh") -> dict[float, tuple]:
    """Step or impulse response of the discretised SSM for several dt, on the time axis [0, T].

    Returns {dt: (t (L,), y (L,))}. The impulse response is K / dt, which approximates h(t) = C exp(tA) B;
    the step response is the output for u = 1 and approximates the integral of h.
    """
    out = {}
    for dt in dts:
        L = max(1, int(round(T / dt)))
        Ab, Bb = discretize(A, B, dt, method)
        t = torch.arange(1, L + 1, dtype=A.dtype) * dt
        if kind == "impulse":
            y = ssm_kernel(Ab, Bb, C, L) / dt
            t = t - dt  # K_0 answers the impulse at time 0
        elif kind == "step":
            y = run_recurrence(Ab, Bb, C, torch.ones(L, dtype=A.dtype))
        else:
            raise ValueError(f"kind must be 'step' or 'impulse', got {kind!r}")
        out[float(dt)] = (t, y)
    return out
