"""The data contract every later layer reads: `SequenceData` (one time-ordered item sequence per user) and
its leave-one-out `Split`.

Ids: items are contiguous 1..n_items; 0 is the padding id everywhere (embeddings, batches, targets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SequenceData:
    """Per-user chronological item sequences after the pipeline (dedup, order, k-core, re-indexing).

    sequences[u]: int64 array of internal item ids in 1..n_items, oldest first.
    user_ids[u]:  the user's original id (str).
    item_ids[i-1]: the original id of internal item i (str).
    item_titles:  optional, item_titles[i] is the title of internal item i; item_titles[0] == "".
    item_genres:  optional, like item_titles (e.g. "Animation|Children's|Comedy").
    protocol:     how it was built (source files and checksums, k-core, tie-break, counts before/after).
    """

    name: str
    sequences: list[np.ndarray]
    n_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_titles: list[str] | None = None
    item_genres: list[str] | None = None
    timestamps: list[np.ndarray] | None = None  # per user, aligned with sequences (seconds), if known
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=len(self.sequences))

    def split(self) -> "Split":
        return leave_one_out(self)


@dataclass
class Split:
    """Leave-one-out split (the SASRec / RecBole protocol).

    train[u]:        sequence[:-2]  (every training target lies inside it)
    valid_history[u] = sequence[:-2], valid_target[u] = sequence[-2]
    test_history[u]  = sequence[:-1], test_target[u]  = sequence[-1]
    Users with fewer than 3 interactions are dropped (counted in `dropped_users`).
    """

    train: list[np.ndarray]
    valid_history: list[np.ndarray]
    valid_target: np.ndarray
    test_history: list[np.ndarray]
    test_target: np.ndarray
    n_items: int
    dropped_users: int = 0

    def history_and_target(self, which: str) -> tuple[list[np.ndarray], np.ndarray]:
        if which in ("valid", "validation"):
            return self.valid_history, self.valid_target
        if which == "test":
            return self.test_history, self.test_target
        raise ValueError(f"split must be 'valid' or 'test', got {which!r}")


def leave_one_out(data: SequenceData) -> Split:
    keep = [s for s in data.sequences if len(s) >= 3]
    return Split(
        train=[s[:-2] for s in keep],
        valid_history=[s[:-2] for s in keep],
        valid_target=np.array([s[-2] for s in keep], dtype=np.int64),
        test_history=[s[:-1] for s in keep],
        test_target=np.array([s[-1] for s in keep], dtype=np.int64),
        n_items=data.n_items,
        dropped_users=len(data.sequences) - len(keep),
    )
