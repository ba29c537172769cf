"""The one model contract every sequential recommender follows (STYLE.md "One model contract").

Glossary
    B batch, L sequence width (left-padded: the most recent item sits at position L-1), D = d_model
    item ids 1..n_items, 0 = padding; bidirectional models add a [MASK] token with id n_items + 1
    item_emb  (n_items + 1 [+ 1], D) item table, tied with the output layer (scores = h . E^T)

A model owns only its maths:
    forward(item_seq (B, L), lengths (B,)) -> (B, L, D)   hidden states; positions before L - lengths are padding
    score(h (..., D)) -> (..., n_items + 1)              logits over items; column 0 (padding) is -inf
    readout(item_seq, lengths) -> (B, D)                 the state that predicts the NEXT item after the history
    n_params(with_embeddings)                            item (and position) tables counted or not

Class attributes:
    bidirectional  False: causal (output at t sees items <= t; trained with next-item CE at every real position).
                   True: sees both sides (trained with the cloze / masked-item objective; read out by appending
                   [MASK] after the history and reading that position, as BERT4Rec does). A bidirectional model
                   whose config has readout="last" reads the last history position instead; it must then be
                   trained on prefixes only (objective last_item, the RecBole protocol), where no input lies
                   after the position read.
    trainable      False for models fitted by counting (Pop).
Padding: which positions are real is decided by `lengths` alone; ids at padded positions are zeroed before the
embedding, so their contents can never matter (tests/unit/test_leakage.py).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


def real_mask(width: int, lengths: torch.Tensor) -> torch.Tensor:
    """(B, width) bool, True at the real (non-padding) positions of a left-padded batch."""
    pos = torch.arange(width, device=lengths.device)
    return pos.unsqueeze(0) >= (width - lengths.clamp(max=width)).unsqueeze(1)


class SequentialModel(nn.Module):
    """Base class: tied item table, scoring, read-out and parameter counting."""

    name: ClassVar[str] = "?"
    config_cls: ClassVar[type]
    bidirectional: ClassVar[bool] = False
    trainable: ClassVar[bool] = True

    def __init__(self, config, n_items: int, max_len: int, d_model: int) -> None:
        super().__init__()
        self.config = config
        self.n_items = int(n_items)
        self.max_len = int(max_len)
        self.d_model = int(d_model)
        rows = self.n_items + 1 + (1 if self.bidirectional else 0)  # + [MASK] for bidirectional models
        self.item_emb = nn.Embedding(rows, d_model, padding_idx=0)

    # --- helpers for subclasses -------------------------------------------------------------------------------
    @property
    def mask_token(self) -> int:
        if not self.bidirectional:
            raise AttributeError(f"{self.name} is causal and has no [MASK] token")
        return self.n_items + 1

    @property
    def readout_mode(self) -> str:
        """'last' (causal models; bidirectional ones with config.readout='last') or 'mask'."""
        if not self.bidirectional:
            return "last"
        return getattr(self.config, "readout", "mask")

    def embed_items(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (item embeddings (B, L, D) with padding rows exactly 0, real mask (B, L) bool)."""
        mask = real_mask(item_seq.shape[1], lengths)
        return self.item_emb(item_seq.masked_fill(~mask, 0)), mask

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters counted as 'embeddings' (item table; subclasses add the position table)."""
        return [self.item_emb.weight]

    # --- the contract -------------------------------------------------------------------------------------------
    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def output_weight(self) -> torch.Tensor:
        """(n_items + 1, D): the item embeddings `score` multiplies with (tied to the input embeddings)."""
        return self.item_emb.weight[: self.n_items + 1]

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., D) -> logits (..., n_items + 1); column 0 (padding) is -inf; [MASK] is never scored."""
        w = self.output_weight()  # (n_items + 1, D)
        logits = h @ w.t()
        logits[..., 0] = float("-inf")  # mm's backward does not need its output, so in place is safe
        return logits

    def readout(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """History (B, L) left-padded -> (B, D) state predicting the next item.

        Causal: the last position. Bidirectional: append [MASK] (dropping the oldest item if the width would
        exceed max_len) and read the [MASK] position, so the model never sees what it predicts.
        """
        if self.readout_mode == "mask":
            item_seq, lengths = append_mask(item_seq, lengths, self.mask_token, self.max_len)
        return self.forward(item_seq, lengths)[:, -1]

    def n_params(self, with_embeddings: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        if with_embeddings:
            return total
        return total - sum(p.numel() for p in self.embedding_parameters())


def append_mask(item_seq: torch.Tensor, lengths: torch.Tensor, mask_token: int, max_len: int):
    """(B, L) -> (B, min(L + 1, max_len)) with [MASK] at the last position; lengths + 1 (capped)."""
    b = item_seq.shape[0]
    tok = torch.full((b, 1), mask_token, dtype=item_seq.dtype, device=item_seq.device)
    out = torch.cat([item_seq, tok], dim=1)[:, -max_len:]
    return out, torch.clamp(lengths + 1, max=out.shape[1])
