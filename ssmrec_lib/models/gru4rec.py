"""GRU4Rec (Hidasi et al. 2016; the RecBole variant): embedding -> dropout -> GRU -> linear to d.

Left padding would run the GRU through the padding first (its bias terms move the state away from 0), so the
batch is rolled to right padding, packed (`pack_padded_sequence`, lengths only), run, and rolled back: the
output at a real position depends only on the real items up to it (causal, padding-invariant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import SequentialModel, real_mask
from .registry import register_model


@dataclass(frozen=True)
class GRU4RecConfig:
    d_model: int = 64
    hidden_size: int = 128  # GRU state width (RecBole default 128)
    n_layers: int = 1
    dropout: float = 0.3  # on the embeddings (RecBole dropout_prob)


def roll_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """out[b, t] = x[b, (t + shift[b]) % L] for x (B, L, ...) and shift (B,)."""
    L = x.shape[1]
    idx = (torch.arange(L, device=x.device).unsqueeze(0) + shift.unsqueeze(1)) % L  # (B, L)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


@register_model("gru4rec")
class GRU4Rec(SequentialModel):
    config_cls = GRU4RecConfig

    def __init__(self, config: GRU4RecConfig, n_items: int, max_len: int) -> None:
        super().__init__(config, n_items, max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.d_model, config.hidden_size, config.n_layers, batch_first=True)
        self.proj = nn.Linear(config.hidden_size, config.d_model)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """item_seq (B, L), lengths (B,) >= 1 -> (B, L, d); padded positions give 0."""
        B, L = item_seq.shape
        lengths = lengths.clamp(min=1, max=L)
        e, real = self.embed_items(item_seq, lengths)  # (B, L, d)
        start = L - lengths  # left padding: first real position
        right = roll_rows(self.drop(e), start)  # real items first
        packed = pack_padded_sequence(right, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (B, L, hidden)
        out = roll_rows(out, (L - start) % L)  # back to left padding
        return self.proj(out) * real.unsqueeze(-1)

    # --- streaming: the GRU's hidden state is the whole summary of the history ------------------------------------
    def allocate_inference_state(self, batch: int) -> torch.Tensor:
        """Zero hidden state (n_layers, B, hidden_size)."""
        c = self.config
        return torch.zeros(c.n_layers, batch, c.hidden_size, device=self.item_emb.weight.device)

    def step(self, item_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """item_t (B,) -> (h_t (B, d), new state): what `forward` gives at that position (eval mode), O(1) in L."""
        out, state = self.gru(self.drop(self.item_emb(item_t)).unsqueeze(1), state)  # (B, 1, hidden)
        return self.proj(out[:, 0]), state
