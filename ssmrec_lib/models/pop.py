"""Pop: recommend the items most often seen in training, the same list for everyone.

No training loop: `fit(train_sequences)` counts occurrences; `score` returns the counts (column 0 = -inf).
It runs through the same evaluation path as every other model (readout -> score -> rank).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .base import SequentialModel
from .registry import register_model


@dataclass(frozen=True)
class PopConfig:
    pass


@register_model("pop")
class Pop(SequentialModel):
    config_cls = PopConfig
    trainable = False

    def __init__(self, config: PopConfig, n_items: int, max_len: int) -> None:
        nn.Module.__init__(self)  # no item table
        self.config, self.n_items, self.max_len, self.d_model = config, int(n_items), int(max_len), 1
        self.register_buffer("counts", torch.zeros(self.n_items + 1))

    def fit(self, sequences: Sequence[np.ndarray]) -> "Pop":
        """Count each item's occurrences in the training sequences."""
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else np.zeros(0)
        self.counts.copy_(torch.from_numpy(np.bincount(flat.astype(np.int64), minlength=self.n_items + 1)[: self.n_items + 1]).float())
        return self

    def embedding_parameters(self):
        return []

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, 1) zeros: Pop ignores the history."""
        return torch.zeros(*item_seq.shape, 1, device=item_seq.device)

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., 1) -> (..., n_items + 1) popularity counts; column 0 = -inf."""
        s = self.counts.to(h.device).clone()
        s[0] = float("-inf")
        return s.expand(*h.shape[:-1], self.n_items + 1)
