"""State-space duality (SSD, Mamba2): one scalar-times-identity SSM per head, in three equal forms.

Per head h (A_h < 0 a scalar), batch b, time t, with x_t in R^P and state h_t in R^{P x N}:

    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T          (recurrence, `ssd_naive`)
    y_t = h_t C_t  (+ D x_t)
  <=>
    y = M x,  M[t, s] = C_t^T B_s * exp(sum_{k=s+1..t} dt_k A) * dt_s  for s <= t, else 0
                                                        (quadratic / masked-attention form, `ssd_quadratic`)
    M = L o (C B^T) diag(dt),  L[t, s] = exp(segsum(dt A)[t, s])   (1-semiseparable mask)

`ssd_chunked` is the 4-step block decomposition of M (Dao & Gu 2024, listing 1): diagonal blocks as attention,
off-diagonal blocks through the chunk states. `ssd(kernel=)` dispatches: "ref" -> `ssd_chunked`; "cpu" -> the
recurrence in C++ (`ssm/csrc/ssd_cpu.cpp`, one exp per head and step; docs/cpu_ssd.md); "fused" -> mamba-ssm.

Glossary (code <-> paper):
    X   (b, l, h, p)  input per head                    x
    dt  (b, l, h)     step size (after bias/softplus)   Delta
    A   (h,)          negative scalar per head          A (a = exp(dt A) is the decay)
    B   (b, l, g, n)  input projection, g groups        B  (heads h use group h // (H / g))
    C   (b, l, g, n)  output projection                 C
    D   (h,) or (h, p) skip                             D
    z   (b, l, h, p)  gate: y * silu(z)
    H = nheads, P = headdim, N = d_state, g = ngroups, Q = chunk_size
    states (b, h, p, n)                                 h_t

References: Dao & Gu 2024, "Transformers are SSMs" (Mamba2), section 6 and listing 1 (`ssd_minimal`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssmrec_lib.ssm import kernels


def segsum(x: torch.Tensor) -> torch.Tensor:
    """Stable segment sum: out[..., t, s] = sum_{k=s+1..t} x_k for t >= s, -inf for t < s.

    x (..., T) -> (..., T, T). Computed by a masked cumulative sum (no difference of two cumsums, so no
    cancellation), and exp(segsum) is the 1-semiseparable decay mask L with exact zeros above the diagonal.
    """
    T = x.size(-1)
    xx = x.unsqueeze(-1).expand(*x.shape, T)  # (..., T_t, T_s): xx[t, s] = x_t
    strict = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=-1)
    xx = xx.masked_fill(~strict, 0)
    out = torch.cumsum(xx, dim=-2)  # out[t, s] = sum_{s < k <= t} x_k
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=0)
    return out.masked_fill(~causal, float("-inf"))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """fp32 accumulation (fp64 stays fp64, for tests)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def prepare_dt(dt: torch.Tensor, dt_bias: torch.Tensor | None = None, dt_softplus: bool = False) -> torch.Tensor:
    """dt (b, l, h) -> softplus(dt + dt_bias) if asked, in the compute dtype."""
    dt = dt.to(_compute_dtype(dt))
    if dt_bias is not None:
        dt = dt + dt_bias.to(dt.dtype)
    return F.softplus(dt) if dt_softplus else dt


def _check(X, dt, A, B, C):
    b, l, h, p = X.shape
    if dt.shape != (b, l, h):
        raise ValueError(f"dt must be (b, l, h) = {(b, l, h)}, got {tuple(dt.shape)}")
    if A.shape != (h,):
        raise ValueError(f"A must be (h,) = ({h},), one scalar per head; got {tuple(A.shape)}")
    if B.shape != C.shape or B.shape[:2] != (b, l) or B.ndim != 4:
        raise ValueError(f"B and C must be (b, l, g, n) with b, l = {b, l}; got {tuple(B.shape)}, {tuple(C.shape)}")
    if h % B.shape[2]:
        raise ValueError(f"ngroups={B.shape[2]} must divide nheads={h}")


def _heads(B: torch.Tensor, nheads: int) -> torch.Tensor:
    """(b, l, g, n) -> (b, l, h, n): head i reads group i // (h / g)."""
    return B.repeat_interleave(nheads // B.shape[2], dim=2)


def _finish(y, X, D, z):
    """y + D x, then the optional gate y * silu(z); y, X (b, l, h, p)."""
    if D is not None:
        Dv = D.to(y.dtype)
        y = y + X.to(y.dtype) * (Dv.view(1, 1, -1, 1) if Dv.ndim == 1 else Dv)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def ssd_naive(X, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
              initial_states=None, return_final_states=False):
    """The literal recurrence, one time step at a time (the oracle; slow).

    Shapes as in the module docstring; initial_states (b, h, p, n). Returns y (b, l, h, p) [, states (b, h, p, n)].
    """
    _check(X, dt, A, B, C)
    b, l, h, p = X.shape
    cd = _compute_dtype(X)
    dt = prepare_dt(dt, dt_bias, dt_softplus)
    Xc, Bh, Ch, Ac = X.to(cd), _heads(B, h).to(cd), _heads(C, h).to(cd), A.to(cd)
    state = (torch.zeros(b, h, p, B.shape[-1], dtype=cd, device=X.device)
             if initial_states is None else initial_states.to(cd))
    ys = []
    for t in range(l):
        decay = torch.exp(dt[:, t] * Ac)  # (b, h)
        inp = torch.einsum("bh,bhp,bhn->bhpn", dt[:, t], Xc[:, t], Bh[:, t])
        state = decay[..., None, None] * state + inp  # (b, h, p, n)
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = _finish(torch.stack(ys, dim=1), X, D, z).to(X.dtype)
    return (y, state) if return_final_states else y


def semiseparable_matrix(dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The explicit SSD matrix M (b, h, l, l) with y[:, t] = sum_s M[:, :, t, s] X[:, s] (per head).

    M[t, s] = (C_t . B_s) exp(sum_{k=s+1..t} dt_k A) dt_s for s <= t, 0 above the diagonal.
    dt (b, l, h) already biased / softplus-ed; A (h,); B, C (b, l, g, n).
    """
    h = dt.shape[-1]
    cd = _compute_dtype(dt)
    dtc = dt.to(cd)
    Lmask = torch.exp(segsum((dtc * A.to(cd)).transpose(1, 2)))  # (b, h, l, l)
    CB = torch.einsum("bthn,bshn->bhts", _heads(C, h).to(cd), _heads(B, h).to(cd))  # (b, h, l, l)
    return Lmask * CB * dtc.transpose(1, 2).unsqueeze(-2)  # dt_s along the columns


def ssd_quadratic(X, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """The quadratic (attention-like) form y = M X with M from `semiseparable_matrix`. O(l^2) memory.

    Shapes as in the module docstring. Returns y (b, l, h, p).
    """
    _check(X, dt, A, B, C)
    dt = prepare_dt(dt, dt_bias, dt_softplus)
    M = semiseparable_matrix(dt, A, B, C)  # (b, h, l, l)
    y = torch.einsum("bhts,bshp->bthp", M, X.to(M.dtype))
    return _finish(y, X, D, z).to(X.dtype)


def ssd_chunked(X, dt, A, B, C, chunk_size: int = 64, D=None, z=None, dt_bias=None, dt_softplus=False,
                initial_states=None, return_final_states=False):
    """Chunked SSD (Mamba2's algorithm) for any length l; fp32 accumulation.

    X (b, l, h, p), dt (b, l, h), A (h,), B, C (b, l, g, n), D (h,) | (h, p), z (b, l, h, p),
    initial_states (b, h, p, n). Returns y (b, l, h, p) [, final states (b, h, p, n)].

    The chunk length is balanced (ceil(l / ceil(l / chunk_size)) <= chunk_size: the result does not depend on
    it, only the cost does), and the last chunk is padded with dt = 0 and X = 0: a padded step neither decays
    the state (exp(0) = 1) nor adds to it, so the final state is the state after the last real step.
    """
    _check(X, dt, A, B, C)
    b, l, h, p = X.shape
    g, n = B.shape[2], B.shape[3]
    r = h // g  # heads per group
    c = max(1, -(-l // max(1, int(chunk_size))))  # number of chunks
    Q = max(1, -(-l // c))  # balanced chunk length <= chunk_size: l = 200, chunk 64 -> 4 chunks of 50, no padding
    cd = _compute_dtype(X)
    dt = prepare_dt(dt, dt_bias, dt_softplus)
    pad = c * Q - l
    Xdt = X.to(cd) * dt.unsqueeze(-1)  # (b, l, h, p): dt_s x_s, the input of the SSM
    Bc, Cc = B.to(cd), C.to(cd)
    if pad:
        Xdt = F.pad(Xdt, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        Bc = F.pad(Bc, (0, 0, 0, 0, 0, pad))
        Cc = F.pad(Cc, (0, 0, 0, 0, 0, pad))
    Xdt = Xdt.view(b, c, Q, g, r, p)  # (b, c, Q, g, r, p)
    Bc = Bc.view(b, c, Q, g, n)
    Cc = Cc.view(b, c, Q, g, n)
    dA = (dt * A.to(cd)).view(b, c, Q, g, r).permute(0, 3, 4, 1, 2)  # (b, g, r, c, Q)
    dA_cs = torch.cumsum(dA, dim=-1)  # (b, g, r, c, Q): log-decay from the chunk start

    # 1. intra-chunk outputs (diagonal blocks): y = (L o C B^T) (dt x) inside each chunk.
    #    Inside a chunk L[t, s] = exp(cs_t - cs_s) from the chunk-local cumsum (at most Q terms, as the fused
    #    kernel does): cheaper than `segsum`, and the masked entries are set to -inf before exp, so never overflow.
    causal = torch.tril(torch.ones(Q, Q, dtype=torch.bool, device=X.device))
    Lmask = torch.exp((dA_cs.unsqueeze(-1) - dA_cs.unsqueeze(-2)).masked_fill(~causal, float("-inf")))  # (b,g,r,c,Q,Q)
    CB = torch.einsum("bctgn,bcsgn->bgcts", Cc, Bc)  # (b, g, c, Q_t, Q_s)
    W = Lmask * CB.unsqueeze(2)  # (b, g, r, c, Q_t, Q_s)
    y_diag = torch.einsum("bgrcts,bcsgrp->bctgrp", W, Xdt)

    # 2. chunk states: the state each chunk leaves behind, starting from zero
    decay_to_end = torch.exp(dA_cs[..., -1:] - dA_cs)  # (b, g, r, c, Q)
    Xw = Xdt * decay_to_end.permute(0, 3, 4, 1, 2).unsqueeze(-1)  # (b, c, Q, g, r, p)
    states = torch.einsum("bcsgn,bcsgrp->bcgrpn", Bc, Xw)  # (b, c, g, r, p, n)

    # 3. inter-chunk state passing: a (c+1)-step recurrence over chunk boundaries
    if initial_states is None:
        init = torch.zeros_like(states[:, :1])
    else:
        init = initial_states.to(cd).view(b, 1, g, r, p, n)
    states = torch.cat([init, states], dim=1)  # (b, c+1, g, r, p, n)
    chunk_decay = torch.exp(segsum(F.pad(dA_cs[..., -1], (1, 0))))  # (b, g, r, c+1, c+1)
    states = torch.einsum("bgrzc,bcgrpn->bzgrpn", chunk_decay, states)
    prev_states, final = states[:, :-1], states[:, -1]  # state entering each chunk; after the last

    # 4. state -> output: the contribution of everything before the chunk
    decay_in = torch.exp(dA_cs).permute(0, 3, 4, 1, 2).unsqueeze(-1)  # (b, c, Q, g, r, 1)
    y_off = torch.einsum("bctgn,bcgrpn->bctgrp", Cc, prev_states) * decay_in  # (b, c, Q, g, r, p)

    y = (y_diag + y_off).reshape(b, c * Q, h, p)[:, :l]
    y = _finish(y, X, D, z).to(X.dtype)
    if return_final_states:
        return y, final.reshape(b, h, p, n)
    return y


def ssd(X, dt, A, B, C, chunk_size: int = 64, D=None, z=None, dt_bias=None, dt_softplus=False,
        initial_states=None, return_final_states=False, kernel: kernels.KernelChoice = "auto"):
    """Dispatch (`kernels.resolve`): "fused" -> `mamba_chunk_scan_combined` (CUDA, mamba-ssm); "cpu" -> the C++
    recurrence (`cpu_ext.ssd_cpu`: exact, so `chunk_size` does not enter), then D x and the gate here; "ref" ->
    `ssd_chunked`; "auto" -> fused on CUDA when it imports, the C++ recurrence on CPU when it builds. Same
    arguments and shapes as `ssd_chunked`."""
    why_not_cpp = kernels.ssd_cpu_unsupported(X, A) if kernel in ("cpu", "auto") else None
    path = kernels.resolve(kernel, "ssd", X.device, cpu_unsupported=why_not_cpp)
    if path == "fused":
        fn = kernels.fused_kernels().mamba_chunk_scan_combined
        return fn(X, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states,
                  dt_softplus=dt_softplus, return_final_states=return_final_states)
    if path == "cpu":
        _check(X, dt, A, B, C)
        dt = prepare_dt(dt, dt_bias, dt_softplus)  # (b, l, h) in the compute dtype; autograd through softplus
        y, final = kernels.cpu_kernel("ssd")(X, dt, A, B, C, initial_states)
        y = _finish(y, X, D, z).to(X.dtype)
        return (y, final) if return_final_states else y
    return ssd_chunked(X, dt, A, B, C, chunk_size=chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus,
                       initial_states=initial_states, return_final_states=return_final_states)
