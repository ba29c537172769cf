"""Fused, chunked output cross-entropy: the loss of `F.cross_entropy(h @ Wᵀ, t)` and its gradients, computed
chunk by chunk so the (N, V) logits are never held in memory at once (issue 13, section 1).

Glossary: h (N, D) the hidden states of the N scored positions (real positions only: the objective gathers
them), W (V, D) the output item embeddings (V = n_items + 1; column 0 is padding, its logit is -inf), t (N,) the
targets, c the chunk (rows per block).

Maths (one row; p = softmax(z), z = h Wᵀ):
    loss = logsumexp(z) - z[t]
    dloss/dz = p - onehot(t) =: G          (so dloss/dh = G W,  dloss/dW = Gᵀ h)
Because the loss is the last node of the graph, the gradients can be formed in the forward pass:
    for each chunk of c rows:   1. z = h_c Wᵀ (c, V); z[:, 0] = -inf
                                2. lse = logsumexp(z); loss += sum(lse - z[t])
                                3. G = exp(z - lse) - onehot(t)
                                4. dh_c = G W (c, D);  dW += Gᵀ h_c (V, D)
and backward only scales dh and dW by the incoming gradient (and 1/N for the mean). Three matmuls as the
unfused path (z, G W, Gᵀ h), but the only (·, V) tensors alive are one chunk's z and G, instead of the full
logits, their log-softmax and its gradient (3 x N x V floats; N ≈ 3,200 x V = 3,417 at ML-1M, B = 16, L = 200).
Exact: equal to the unfused path up to float rounding (tests/unit/test_fused_ce.py). Under CPU/CUDA bf16
autocast the matmuls run in bf16, as the unfused `h @ Wᵀ` does, and softmax and the sums stay in fp32.
The same shortcut as Liger-Kernel's FusedLinearCrossEntropy and Apple's Cut Cross-Entropy (references, not code).
"""

from __future__ import annotations

import torch


def chunked_linear_cross_entropy(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, chunk: int = 1024,
                                 reduction: str = "mean") -> torch.Tensor:
    """CE of logits h Wᵀ (column 0 = padding, masked to -inf) against `targets`, `chunk` rows at a time.

    h (N, D), w (V, D), targets (N,) int64 in [1, V) -> scalar (mean or sum over the N rows). N = 0 gives 0 (sum)
    or nan (mean), as F.cross_entropy does."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return ChunkedLinearCE.apply(h, w, targets, int(chunk), reduction == "mean")


class ChunkedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, targets, chunk, mean):
        n = h.shape[0]
        dh = torch.empty_like(h) if h.requires_grad else None
        acc = torch.promote_types(w.dtype, torch.float32)  # dW accumulates in fp32 (or better) over the chunks
        dw = torch.zeros(w.shape, dtype=acc, device=w.device) if w.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for i in range(0, n, chunk):
            h_c, t_c = h[i:i + chunk], targets[i:i + chunk]
            z = (h_c @ w.t()).float()  # (c, V); bf16 matmul under autocast, like the unfused path
            z[:, 0] = float("-inf")
            lse = torch.logsumexp(z, dim=1)  # (c,)
            rows = torch.arange(len(t_c), device=h.device)
            total += (lse - z[rows, t_c]).sum()
            g = torch.exp(z.sub_(lse[:, None]))  # softmax, in place of z: (c, V)
            g[rows, t_c] -= 1.0  # G = p - onehot(t)
            if dh is not None:
                dh[i:i + chunk] = g.to(w.dtype) @ w  # (c, D); bf16 under autocast; stored in h's dtype
            if dw is not None:
                dw += (g.to(h.dtype).t() @ h_c).to(acc)  # (V, D)
        scale = 1.0 / n if (mean and n) else 1.0
        ctx.scale = scale
        ctx.save_for_backward(dh if dh is not None else torch.empty(0), dw if dw is not None else torch.empty(0))
        ctx.has, ctx.w_dtype = (dh is not None, dw is not None), w.dtype
        return total / n if mean else total

    @staticmethod
    def backward(ctx, grad_out):
        dh, dw = ctx.saved_tensors
        k = grad_out * ctx.scale
        gh = (dh * k).to(dh.dtype) if ctx.has[0] else None
        gw = (dw * k).to(ctx.w_dtype) if ctx.has[1] else None
        return gh, gw, None, None, None
