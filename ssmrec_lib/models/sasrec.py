"""SASRec (Kang & McAuley 2018): causal self-attention over the item sequence; also the encoder of BERT4Rec.

Glossary: E item table (tied output), P learned position table (max_len rows, anchored at the right end so the
most recent item has position max_len - 1), d = d_model, d_ff = FFN inner width.

    x_0 = Dropout(E[item] + P[pos])            (post-LN adds a LayerNorm here, as RecBole does)
    x_l = TransformerLayer(x_{l-1})            causal attention, padded keys masked
    h   = LN(x_n) (pre-LN)  or  x_n (post-LN)

Parameter count without embeddings (E and P not counted): with d=64, 2 layers, 2 heads, d_ff = 4d = 256 it is
2 x 49,984 + 128 = 100,096 in both LN placements (pre-LN's final LN vs post-LN's input LN), which is the figure
docs/measured_facts.md gives for the paper's SASRec row (RecBole's SASRec, inner_size 256).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .base import SequentialModel
from .layers import TransformerLayer, attention_mask, right_positions
from .registry import register_model


@dataclass(frozen=True)
class SASRecConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256  # 4 d, RecBole's inner_size (the original SASRec uses d)
    dropout: float = 0.2
    attn_dropout: float = 0.2
    norm_first: bool = True  # pre-LN (stable with larger lr); False = post-LN as RecBole / BERT
    # "right": the most recent item sits at position max_len - 1 (SASRec's fixed-width left padding): every new
    # event shifts every position, so no key/value cache is possible. "left": positions count from the first item
    # of the history (needs histories <= max_len); keys and values of old items never change, so streaming
    # inference can cache them (ssmrec_lib/streaming.py).
    positions: Literal["right", "left"] = "right"


class TransformerRec(SequentialModel):
    """Shared body of SASRec (causal) and BERT4Rec (bidirectional)."""

    def __init__(self, config, n_items: int, max_len: int) -> None:
        super().__init__(config, n_items, max_len, config.d_model)
        c = config
        self.pos_emb = nn.Embedding(max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.norm_first)
            for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)  # final LN (pre-LN) or input LN (post-LN)
        self.apply(_init_weights)

    def embedding_parameters(self):
        return [self.item_emb.weight, self.pos_emb.weight]

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """item_seq (B, L), lengths (B,) -> (B, L, d)."""
        e, real = self.embed_items(item_seq, lengths)  # (B, L, d), (B, L)
        x = e + self.pos_emb(self.position_ids(item_seq.shape[1], lengths))
        if not self.config.norm_first:
            x = self.norm(x)
        x = self.drop(x)
        allowed = attention_mask(real, causal=not self.bidirectional)  # (B, 1, L, L)
        for layer in self.layers:
            x = layer(x, allowed)
        return self.norm(x) if self.config.norm_first else x


    def position_ids(self, width: int, lengths: torch.Tensor) -> torch.Tensor:
        """(L,) right-anchored ids, or (B, L) ids counted from each history's first item ("left")."""
        if getattr(self.config, "positions", "right") == "right":
            return right_positions(width, self.max_len, lengths.device)
        if width > self.max_len:
            raise ValueError(f"sequence width {width} exceeds max_len {self.max_len}")
        start = (width - lengths.clamp(max=width)).unsqueeze(1)  # (B, 1) first real position
        return (torch.arange(width, device=lengths.device).unsqueeze(0) - start).clamp(min=0)  # (B, L)


def _init_weights(m: nn.Module) -> None:
    """Truncated-normal(0.02) linears and embeddings, as BERT / RecBole; zero biases; padding row zero."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)
    if isinstance(m, nn.Embedding) and m.padding_idx is not None:
        with torch.no_grad():
            m.weight[m.padding_idx].zero_()


@register_model("sasrec")
class SASRec(TransformerRec):
    config_cls = SASRecConfig
    bidirectional = False
