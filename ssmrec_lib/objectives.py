"""Training objectives: what a batch is and how its loss is computed. The trainer owns them; models do not.

    next_item  all-position next-item cross-entropy (SASRec / LRURec): input s[:-1], target s[1:], one CE
               term per REAL position; `windows` = "last" (the last max_len + 1 items per user) or "all" (every
               target, in windows cut from the end; see NextItemCE). The real positions are gathered first, h_real (N, D), and only those are
               scored (one (N, D) x (D, n_items + 1) matmul): no logits are computed for padding.
               Causal models only (a bidirectional model would see the target: a leak).
    last_item  last-position CE over prefix-augmented samples (RecBole / Mamba4Rec): every prefix s[:t] of a
               training sequence with target s[t] is a sample; `prefixes_per_user` > 0 samples that many
               prefixes per user afresh each epoch (all of them when 0). Read out via `model.readout`, so
               bidirectional models predict from an appended [MASK] and never see the target.
    cloze      masked-item CE for bidirectional models (BERT4Rec, Hydra4Rec): each real item is replaced by
               [MASK] with probability `mask_prob`, the last item additionally with `mask_last_prob` (that is
               the read-out situation), and every row gets at least one mask; CE at the masked positions only.
               `windows`: "last" (each user's last max_len items) or "all" (disjoint windows of max_len items
               cut from the end, so the early items of a long history can be masked too).
The loss of the scored positions is `Objective.output_loss`: the full softmax cross-entropy over the catalogue
(chunked when ce_chunk > 0), or, when the trainer sets `criterion` (TrainConfig.loss = "sampled_softmax"), the sampled
softmax with logQ correction (losses.py).
Randomness: the epoch's sample order comes from the numpy Generator the trainer passes (seeded by seed and
epoch); cloze masks from a torch Generator seeded per batch. So a resumed run repeats the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError
from .data.batching import pad_left
from .fused_ce import chunked_linear_cross_entropy
from .models.base import real_mask

OBJECTIVES = ("next_item", "last_item", "cloze")


def resolve_objective(name: str, model) -> str:
    """'auto' -> the model's natural objective; refuse combinations that leak or cannot work.

    A bidirectional model reading the last history position (readout='last') is trained on prefixes only
    (last_item); cloze would train a read-out it never uses.
    """
    last_readout = model.bidirectional and model.readout_mode == "last"
    if name == "auto":
        return "last_item" if last_readout else ("cloze" if model.bidirectional else "next_item")
    if name == "cloze" and last_readout:
        raise ConfigError(f"{model.name} with readout=last must be trained with objective=last_item (prefixes)")
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; valid: {['auto', *OBJECTIVES]}")
    if name == "next_item" and model.bidirectional:
        raise ConfigError(f"{model.name} is bidirectional: next_item CE would let it see the target; "
                          "use objective=cloze or last_item")
    if name == "cloze" and not model.bidirectional:
        raise ConfigError(f"{model.name} is causal and has no [MASK] token; use next_item or last_item")
    return name


@dataclass
class Batch:
    item_seq: torch.Tensor  # (B, L) left-padded inputs
    lengths: torch.Tensor   # (B,)
    targets: torch.Tensor   # next_item: (B, L) aligned with inputs; last_item: (B,); cloze: (B, L) originals

    def to(self, device) -> "Batch":
        return Batch(self.item_seq.to(device), self.lengths.to(device), self.targets.to(device))

    @property
    def size(self) -> int:
        return int(self.item_seq.shape[0])

    def rows(self, sl: slice) -> "Batch":
        """Rows `sl` of the batch, at the batch's width (a data-parallel rank's share: distributed.py)."""
        return Batch(self.item_seq[sl], self.lengths[sl], self.targets[sl])


class Objective:
    """Base: `epoch_samples(rng)` -> sample ids in this epoch's order; `batch(ids)`; `loss(model, batch, gen)`.

    loss = output_loss(model, *hidden_and_targets(model, batch, gen)): the encoder's states at the scored
    positions (N, D) and their targets (N,), then the output softmax CE over all items. `ce_chunk` = 0 scores the
    N rows in one matmul (F.cross_entropy on model.score); > 0 uses fused_ce.chunked_linear_cross_entropy with
    that many rows per block (equal up to float rounding, never holding the (N, n_items + 1) logits)."""

    name = "?"
    ce_chunk = 0
    criterion = None  # None: full-softmax CE; else a callable (model, h, targets, generator, reduction) (losses.py)

    def __init__(self, train: Sequence[np.ndarray], max_len: int) -> None:
        self.max_len = int(max_len)
        self.users = np.array([u for u, s in enumerate(train) if len(s) >= 2], dtype=np.int64)
        self.train = train

    def epoch_samples(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.users)

    def lengths(self, ids: np.ndarray) -> np.ndarray:
        """History length each sample will have in its batch (for length bucketing)."""
        return np.minimum(np.fromiter((len(self.train[u]) for u in ids), np.int64, len(ids)), self.max_len)

    def batch(self, ids: np.ndarray) -> Batch:  # pragma: no cover
        raise NotImplementedError

    def hidden_and_targets(self, model, batch: Batch, generator: torch.Generator | None = None):
        """-> (h (N, D) the states the loss scores, targets (N,))."""
        raise NotImplementedError  # pragma: no cover

    def output_loss(self, model, h: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None,
                    reduction: str = "mean") -> torch.Tensor:
        """CE of hidden states h (N, D) against targets (N,): `criterion`'s sampled estimate when one is set
        (losses.py), else the full softmax over model.score(h) (N, n_items + 1), chunked when ce_chunk > 0."""
        if self.criterion is not None:
            return self.criterion(model, h, targets, generator, reduction)
        if self.ce_chunk > 0:
            return chunked_linear_cross_entropy(h, model.output_weight(), targets, self.ce_chunk, reduction)
        return F.cross_entropy(model.score(h).float(), targets, reduction=reduction)

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.output_loss(model, *self.hidden_and_targets(model, batch, generator), generator)

    def shard_loss(self, model, batch: Batch, rows: slice, generator: torch.Generator | None = None):
        """Data-parallel share of `loss` (distributed.py) -> (sum of the CE terms of rows `rows` of the global
        `batch`, or None when those rows hold none; N, the global batch's number of terms). Sum over ranks / N
        = loss(model, batch, generator), up to float rounding."""
        raise NotImplementedError  # pragma: no cover


def cut_windows(train: Sequence[np.ndarray], users: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each user's history from its end into windows whose exclusive ends are len, len - step, ... (> 1, so
    every window holds at least 2 items). -> (win_user, win_end), one entry per window, newest window first."""
    ends = [np.arange(len(train[u]), 1, -step) for u in users]
    win_user = np.repeat(users, [len(e) for e in ends])
    return win_user, (np.concatenate(ends) if ends else np.zeros(0, np.int64))


class WindowedObjective(Objective):
    """Samples are users (windows="last": each user's newest `span` items) or windows (windows="all": the history
    cut from its end by cut_windows, one sample per (user, window end) pair, `span` items each)."""

    def __init__(self, train: Sequence[np.ndarray], max_len: int, span: int, windows: str) -> None:
        super().__init__(train, max_len)
        if windows not in ("last", "all"):
            raise ConfigError(f"windows must be 'last' or 'all', got {windows!r}")
        self.windows, self.span = windows, int(span)
        if windows == "all":
            self.win_user, self.win_end = cut_windows(train, self.users, self.max_len)

    def epoch_samples(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.users if self.windows == "last" else len(self.win_user))

    def _sequences(self, ids: np.ndarray) -> list[np.ndarray]:
        if self.windows == "last":
            return [self.train[u] for u in ids]
        return [self.train[u][max(0, e - self.span): e] for u, e in zip(self.win_user[ids], self.win_end[ids])]

    def lengths(self, ids: np.ndarray) -> np.ndarray:
        if self.windows == "last":
            return super().lengths(ids)
        return np.fromiter((min(len(s), self.max_len) for s in self._sequences(ids)), np.int64, len(ids))


class NextItemCE(WindowedObjective):
    """windows="last": one sample per user, its last max_len + 1 items (SASRec's "most recent n actions"); the
    earlier targets of a longer history are never trained on (ML-1M at max_len 200: 647,430 of 981,491).
    windows="all": the history is cut from its end into windows of max_len + 1 items that overlap by one, so every
    target is trained on exactly once per epoch (as RecBole's prefix augmentation does), a target at the start of an
    earlier window seeing only the items of its window as context. Sample ids index (user, window end) pairs."""

    name = "next_item"

    def __init__(self, train: Sequence[np.ndarray], max_len: int, windows: str = "last") -> None:
        super().__init__(train, max_len, max_len + 1, windows)  # windows of max_len + 1 items overlap by one

    def batch(self, ids: np.ndarray) -> Batch:
        x, lens = pad_left(self._sequences(ids), self.max_len + 1)  # (B, W + 1)
        return Batch(x[:, :-1], lens - 1, x[:, 1:])

    def hidden_and_targets(self, model, batch: Batch, generator=None):
        h = model(batch.item_seq, batch.lengths)  # (B, L, D)
        real = real_mask(h.shape[1], batch.lengths)  # (B, L)
        return h[real], batch.targets[real]  # (N, D), (N,): real positions only, no logits for padding

    def shard_loss(self, model, batch: Batch, rows: slice, generator=None):
        b = batch.rows(rows)
        if b.size == 0:
            return None, int(batch.lengths.sum())
        h = model(b.item_seq, b.lengths)  # (b, L, D)
        real = real_mask(h.shape[1], b.lengths)  # (b, L)
        n = int(batch.lengths.sum())  # one term per real position of the global batch
        return self.output_loss(model, h[real], b.targets[real], generator, "sum"), n


class LastItemCE(Objective):
    name = "last_item"

    def __init__(self, train: Sequence[np.ndarray], max_len: int, prefixes_per_user: int = 0) -> None:
        super().__init__(train, max_len)
        lens = np.array([len(train[u]) for u in self.users], dtype=np.int64)
        # every (user, t) with 1 <= t < len: history train[u][:t], target train[u][t]
        self.pair_user = np.repeat(self.users, lens - 1)
        starts = np.repeat(np.cumsum(lens - 1) - (lens - 1), lens - 1)
        self.pair_t = np.arange(len(self.pair_user)) - starts + 1
        self.k = int(prefixes_per_user)

    def epoch_samples(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.pair_user)
        if self.k <= 0:
            return rng.permutation(n)
        keys = rng.random(n)
        order = np.lexsort((keys, self.pair_user))  # grouped by user, random within
        grp_start = np.searchsorted(self.pair_user[order], self.pair_user[order], side="left")
        keep = order[(np.arange(n) - grp_start) < self.k]
        return rng.permutation(keep)

    def lengths(self, ids: np.ndarray) -> np.ndarray:
        return np.minimum(self.pair_t[ids], self.max_len)

    def batch(self, ids: np.ndarray) -> Batch:
        hist = [self.train[u][max(0, t - self.max_len): t] for u, t in zip(self.pair_user[ids], self.pair_t[ids])]
        tgt = np.array([self.train[u][t] for u, t in zip(self.pair_user[ids], self.pair_t[ids])], dtype=np.int64)
        seq, lens = pad_left(hist, self.max_len)
        return Batch(seq, lens, torch.from_numpy(tgt))

    def hidden_and_targets(self, model, batch: Batch, generator=None):
        return model.readout(batch.item_seq, batch.lengths), batch.targets  # (B, D), (B,)

    def shard_loss(self, model, batch: Batch, rows: slice, generator=None):
        b = batch.rows(rows)
        if b.size == 0:
            return None, batch.size
        return self.output_loss(model, model.readout(b.item_seq, b.lengths), b.targets, generator, "sum"), batch.size


def cloze_mask(lengths: torch.Tensor, width: int, mask_prob: float, mask_last_prob: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, width) bool: positions to replace by [MASK] (real positions only; >= 1 per row; see module doc)."""
    real = real_mask(width, lengths)
    m = (torch.rand(real.shape, generator=generator) < mask_prob) & real
    last = torch.rand(real.shape[0], generator=generator) < mask_last_prob
    m[:, -1] |= last & real[:, -1]
    none = ~m.any(dim=1) & real[:, -1]
    m[none, -1] = True
    return m


class ClozeCE(WindowedObjective):
    name = "cloze"

    def __init__(self, train: Sequence[np.ndarray], max_len: int, mask_prob: float = 0.2,
                 mask_last_prob: float = 0.5, windows: str = "last") -> None:
        super().__init__(train, max_len, max_len, windows)  # disjoint windows: every item can be masked, once
        self.mask_prob, self.mask_last_prob = float(mask_prob), float(mask_last_prob)

    def batch(self, ids: np.ndarray) -> Batch:
        seq, lens = pad_left(self._sequences(ids), self.max_len)
        return Batch(seq, lens, seq)

    def masked_inputs(self, model, batch: Batch, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (inputs with [MASK] (B, L), mask (B, L) bool). The mask is drawn on CPU (device-independent)."""
        m = cloze_mask(batch.lengths.cpu(), batch.item_seq.shape[1], self.mask_prob, self.mask_last_prob,
                       generator).to(batch.item_seq.device)
        return batch.item_seq.masked_fill(m, model.mask_token), m

    def hidden_and_targets(self, model, batch: Batch, generator=None):
        inp, m = self.masked_inputs(model, batch, generator)
        h = model(inp, batch.lengths)  # (B, L, D)
        return h[m], batch.targets[m]  # (N, D), (N,): masked positions only

    def shard_loss(self, model, batch: Batch, rows: slice, generator=None):
        inp, m = self.masked_inputs(model, batch, generator)  # the GLOBAL batch's masks: one draw, as unsharded
        n = int(m.sum())
        inp, m, b = inp[rows], m[rows], batch.rows(rows)
        if b.size == 0:
            return None, n
        h = model(inp, b.lengths)  # (b, L, D)
        return self.output_loss(model, h[m], b.targets[m], generator, "sum"), n


def make_objective(name: str, train: Sequence[np.ndarray], max_len: int, *, prefixes_per_user: int = 0,
                   mask_prob: float = 0.2, mask_last_prob: float = 0.5, windows: str = "last",
                   ce_chunk: int = 0) -> Objective:
    """The objective `name`; `ce_chunk` > 0 computes its output CE in blocks of that many rows (class Objective)."""
    if ce_chunk < 0:
        raise ConfigError(f"ce_chunk must be >= 0 (0 = one matmul, > 0 = rows per block), got {ce_chunk}")
    if name == "next_item":
        obj: Objective = NextItemCE(train, max_len, windows)
    elif name == "cloze":
        obj = ClozeCE(train, max_len, mask_prob, mask_last_prob, windows)
    elif windows != "last":
        raise ConfigError(f"windows={windows!r} applies to objectives next_item and cloze, not {name!r} "
                          "(last_item already trains on every prefix)")
    elif name == "last_item":
        obj = LastItemCE(train, max_len, prefixes_per_user)
    else:
        raise ConfigError(f"unknown objective {name!r}; valid: {list(OBJECTIVES)}")
    obj.ce_chunk = int(ce_chunk)
    return obj
