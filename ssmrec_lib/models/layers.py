"""Shared layers: the position-wise feed-forward net (PFFN), transformer layer, right-anchored positions.

Glossary
    d = d_model, d_ff = inner width of the PFFN (4d in Mamba4Rec / RecBole SASRec)
    allowed (B, 1, L, L) bool attention mask: True where query i may attend to key j
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PFFN(nn.Module):
    """Mamba4Rec's position-wise FFN with its residual: LN(Dropout(W2 . Dropout(GELU(W1 h))) + h).

    (B, L, d) -> (B, L, d). Parameters: 2 d d_ff + d_ff + d (linears) + 2d (LayerNorm).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.drop(self.w2(self.drop(F.gelu(self.w1(h))))) + h)


def right_positions(width: int, max_len: int, device) -> torch.Tensor:
    """Position ids for a left-padded batch of width L: max_len - L .. max_len - 1 (most recent = max_len - 1).

    Anchoring at the right end makes an item's position independent of how wide the batch is padded, as in
    SASRec's fixed-width left padding.
    """
    if width > max_len:
        raise ValueError(f"sequence width {width} exceeds max_len {max_len}")
    return torch.arange(max_len - width, max_len, device=device)


def attention_mask(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """real (B, L) bool -> allowed (B, 1, L, L) bool.

    Keys must be real (and j <= i when causal). Every query may also attend to itself, so padded query rows
    (whose outputs are never used) are not all -inf (NaN); a real query never attends to a padded key.
    """
    L = real.shape[1]
    i = torch.arange(L, device=real.device)
    allowed = real.unsqueeze(1).expand(-1, L, -1)  # (B, Lq, Lk): key j real
    if causal:
        allowed = allowed & (i.view(1, L, 1) >= i.view(1, 1, L))
    allowed = allowed | torch.eye(L, dtype=torch.bool, device=real.device).unsqueeze(0)
    return allowed.unsqueeze(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention via torch's scaled_dot_product_attention. (B, L, d) -> (B, L, d)."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.attn_dropout = attn_dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, L, P)
        # An additive float mask (0 / -inf), which attends exactly as the bool one would (a speed gap once claimed
        # for the bool mask did not reproduce: docs/measured_facts.md).
        bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, float("-inf"))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, H, L, P)
        return self.out(y.transpose(1, 2).reshape(B, L, d))


class TransformerLayer(nn.Module):
    """One transformer layer, pre-LN (x + Drop(f(LN(x)))) or post-LN (LN(x + Drop(f(x))), RecBole / BERT).

    The FFN is W2 . GELU(W1 x) with inner width d_ff. Parameters: 4d^2 + 4d (attention) + 2 d d_ff + d_ff + d
    (FFN) + 4d (two LayerNorms).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float,
                 norm_first: bool) -> None:
        super().__init__()
        self.attn = SelfAttention(d_model, n_heads, attn_dropout)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff2(self.drop(F.gelu(self.ff1(x))))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), allowed))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, allowed)))
        return self.norm2(x + self.drop(self.ffn(x)))
