"""Turning ragged item sequences into left-padded tensors.

Left padding puts every user's most recent item at position L-1, so the read-out of a causal model is
always `h[:, -1]`, and padding (id 0) sits before the real items where a causal mixer can be told to ignore it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def pad_left(seqs: Sequence[np.ndarray], max_len: int, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the last `max_len` items of each sequence and left-pad with `pad`.

    Returns (item_seq (B, L) int64, lengths (B,) int64), L = min(max_len, longest sequence) (at least 1).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    lens = np.fromiter((min(len(s), max_len) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(max(1, lens.max(initial=0)))
    out = np.full((len(seqs), width), pad, dtype=np.int64)
    for i, (s, n) in enumerate(zip(seqs, lens)):
        if n:
            out[i, width - n:] = s[len(s) - n:]
    return torch.from_numpy(out), torch.from_numpy(lens)


def padding_mask(item_seq: torch.Tensor, pad: int = 0) -> torch.Tensor:
    """(B, L) bool, True at real positions."""
    return item_seq != pad

