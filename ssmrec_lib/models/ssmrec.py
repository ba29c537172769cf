"""The shared body of the SSM recommenders (mamba4rec, mamba2rec, hydra4rec): a sequence mixer block from
ssmrec_lib.ssm (chosen by the subclass's `make_block`) inside Mamba4Rec's layer.

Glossary: E item table (tied output), d = d_model, block = the sequence mixer (Mamba / Mamba2 / Hydra),
PFFN = position-wise FFN with inner width d_ff = 4d.

As in Mamba4Rec's public code (docs/measured_facts.md):
    e   = LN(Dropout(E[item]))                      no positional embedding: the SSM orders the items
    one layer:      h = LN(Dropout(block(x)))       no residual around the block
    several layers: h = LN(Dropout(block(x)) + x)
    then            x' = PFFN(h) = LN(Dropout(W2 Dropout(GELU(W1 h))) + h)
Read-out at the last position (left padding puts the last real item there); scores h . E^T.
Padding: the block gets the real mask and keeps padded positions from reaching real ones.

Initialisation (`init`):
    "mamba4rec": N(0, 0.02) on every Linear weight and on E, zero Linear biases (Mamba4Rec's _init_weights, which
                 reaches inside the block), except the block's dt bias, which follows the block's `dt_init`.
    "block":     the block keeps its own initialisation; only E and the PFFN get N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SequentialModel
from .layers import PFFN


class SSMLayer(nn.Module):
    """block -> Dropout -> (+ x if residual) -> LN -> PFFN. (B, L, d), real (B, L) -> (B, L, d)."""

    def __init__(self, block: nn.Module, d_model: int, d_ff: int, dropout: float, residual: bool) -> None:
        super().__init__()
        self.block = block
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = PFFN(d_model, d_ff, dropout)
        self.residual = residual

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.block(x, real))  # (B, L, d)
        return self.ffn(self.norm(h + x if self.residual else h))

    def step(self, x_t: torch.Tensor, state):
        """One position: x_t (B, d) -> (out (B, d), new block state)."""
        y, state = self.block.step(x_t, state)
        h = self.drop(y)
        return self.ffn(self.norm(h + x_t if self.residual else h)), state


class SSMRec(SequentialModel):
    """Embedding LN/Dropout, n_layers SSMLayer, read-out via the base class. Subclasses define make_block."""

    def __init__(self, config, n_items: int, max_len: int) -> None:
        super().__init__(config, n_items, max_len, config.d_model)
        c = config
        self.emb_drop = nn.Dropout(c.dropout)
        self.emb_norm = nn.LayerNorm(c.d_model)
        self.layers = nn.ModuleList(
            SSMLayer(self.make_block(), c.d_model, c.d_ff, c.dropout, residual=c.n_layers > 1)
            for _ in range(c.n_layers)
        )
        self._init(c.init)

    def make_block(self) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _init(self, how: str) -> None:
        def normal(m: nn.Module) -> None:
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

        if how == "mamba4rec":
            keep = {n: p.detach().clone() for n, p in self.named_parameters() if "dt_proj.bias" in n}
            self.apply(normal)
            with torch.no_grad():
                for n, p in self.named_parameters():
                    if n in keep:
                        p.copy_(keep[n])  # dt bias follows dt_init
        elif how == "block":
            normal(self.item_emb)
            for layer in self.layers:
                layer.ffn.apply(normal)
        else:
            raise ValueError(f"init must be 'mamba4rec' or 'block', got {how!r}")
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """item_seq (B, L), lengths (B,) -> (B, L, d)."""
        e, real = self.embed_items(item_seq, lengths)
        x = self.emb_norm(self.emb_drop(e))  # (B, L, d)
        for layer in self.layers:
            x = layer(x, real)
        return x

    # --- streaming (causal blocks with a recurrent step: Mamba, Mamba2) ---------------------------------------------
    def allocate_inference_state(self, batch: int) -> list:
        """Zero recurrent state, one entry per layer (see the block's allocate_inference_state)."""
        if self.bidirectional or not hasattr(self.layers[0].block, "step"):
            raise NotImplementedError(f"{self.name} has no recurrent step (bidirectional block)")
        return [layer.block.allocate_inference_state(batch) for layer in self.layers]

    def step(self, item_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """item_t (B,) -> (h_t (B, d), new state): what `forward` gives at that position (eval mode), O(1) in L."""
        x = self.emb_norm(self.emb_drop(self.item_emb(item_t)))  # (B, d)
        new = []
        for layer, s in zip(self.layers, state):
            x, s = layer.step(x, s)
            new.append(s)
        return x, new
