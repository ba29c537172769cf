"""Evaluation of a next-item model on a leave-one-out split: full or sampled ranking, batched and vectorised.

Protocol knobs (all written beside every number by `protocol_dict`):
    mode          "full": the target is ranked against every item 1..n_items (evaluate itself scores the padding
                  column 0 -inf, whatever the model returns there).
                  "sampled": against `n_negatives` items the user never interacted with (SASRec paper: 100),
                  drawn "uniform"ly or by training "popularity", seeded; only for comparison with such papers.
    mask_history  False (default, RecBole / Mamba4Rec / the paper): already-seen items stay rankable.
                  True (LRURec / LlamaRec): items in the history are scored -inf, except the target itself
                  (datasets with repeats would otherwise make a repeated target unreachable).
    ties          see metrics.py ("expected" by default).
    max_len       histories are cut to their last max_len items before the model reads them.
The model is read through its contract: scores = model.score(model.readout(history, lengths)).
A NaN among the ranked scores raises NonFiniteScoreError naming the model, the batch and the users: under `>` and
`==` a NaN is neither above nor tied with anything, so a NaN item would silently drop out of the ranking and a NaN
target would count as rank 1.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

from .data.batching import pad_left
from .errors import UserError
from .metrics import DEFAULT_KS, MetricAccumulator, TieRule, rank_metrics


def sample_negatives(
    histories: Sequence[np.ndarray], targets: np.ndarray, n_items: int, n_negatives: int = 100,
    sampling: Literal["uniform", "popularity"] = "uniform", item_counts: np.ndarray | None = None, seed: int = 0,
) -> np.ndarray:
    """(U, n_negatives) int64 item ids, per user distinct and outside history + target (seeded).

    popularity: probability proportional to `item_counts` (length n_items + 1, entry 0 ignored).
    """
    rng = np.random.default_rng(seed)
    if sampling == "popularity":
        if item_counts is None:
            raise ValueError("popularity sampling needs item_counts")
        p = np.asarray(item_counts[1: n_items + 1], dtype=np.float64)
        p = p / p.sum()
    elif sampling == "uniform":
        p = None
    else:
        raise ValueError(f"negative sampling must be 'uniform' or 'popularity', got {sampling!r}")
    out = np.empty((len(targets), n_negatives), dtype=np.int64)
    for u, (hist, tgt) in enumerate(zip(histories, targets)):
        seen = np.union1d(hist, [tgt])
        if n_items - len(seen) < n_negatives:
            raise ValueError(f"user {u} has seen {len(seen)} of {n_items} items: fewer than {n_negatives} negatives")
        got: list[int] = []
        chosen: set[int] = set()
        while len(got) < n_negatives:
            cand = rng.choice(n_items, size=2 * n_negatives, p=p) + 1
            cand = cand[~np.isin(cand, seen)]
            for c in cand.tolist():
                if c not in chosen:
                    chosen.add(c)
                    got.append(c)
                    if len(got) == n_negatives:
                        break
        out[u] = got
    return out


class NonFiniteScoreError(UserError, FloatingPointError):
    """A model scored NaN for an item that is being ranked."""


def _check_no_nan(ranked: torch.Tensor, model, batch: int, users: np.ndarray) -> None:
    """Raise NonFiniteScoreError if `ranked` (b, C), the scores about to be ranked, holds a NaN."""
    bad = torch.isnan(ranked).any(dim=1)
    if bool(bad.any()):
        rows = users[bad.cpu().numpy()]
        name = getattr(model, "name", None) or type(model).__name__
        raise NonFiniteScoreError(
            f"model {name!r} scored NaN in evaluation batch {batch} for {len(rows)} of {len(users)} users "
            f"(user indices {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''}); a NaN cannot be ranked. "
            "Check the weights (a diverged run?) and the model's score().")


@torch.no_grad()
def evaluate(
    model, histories: Sequence[np.ndarray], targets: np.ndarray, *, max_len: int, batch_size: int = 512,
    ks: Sequence[int] = DEFAULT_KS, mask_history: bool = False, mode: Literal["full", "sampled"] = "full",
    negatives: np.ndarray | None = None, ties: TieRule = "expected", device: torch.device | str | None = None,
    per_user: dict[str, np.ndarray] | None = None, dist=None,
) -> dict[str, float]:
    """Mean HR/NDCG/MRR@ks over users; histories[u] (any length >= 1), targets (U,).

    `per_user` (a dict, filled in place): each metric's (U,) float64 values in the order of `histories`, for
    paired tests between models scored on the same users.

    `dist` (distributed.Dist, data-parallel runs): this rank scores batches i with i mod W == rank; the per-user
    metrics of all ranks are gathered and summed in batch order, so every rank returns the single-process result.

    Returns {"hr@10": ..., "ndcg@10": ..., ..., "n_users": U}. `negatives` (U, n) is required in sampled mode
    (see `sample_negatives`). Users are processed in length-sorted batches (less padding); order-free result.
    Raises NonFiniteScoreError on a NaN among the ranked scores (see the module docstring).
    """
    if mode == "sampled" and negatives is None:
        raise ValueError("sampled mode needs negatives (see sample_negatives)")
    if mode not in ("full", "sampled"):
        raise ValueError(f"mode must be 'full' or 'sampled', got {mode!r}")
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    targets = np.asarray(targets, dtype=np.int64)
    order = np.argsort([len(h) for h in histories], kind="stable")
    acc = MetricAccumulator()
    chunks: list[tuple[int, np.ndarray, dict[str, torch.Tensor]]] = []  # (batch number, users, per-user metrics)
    try:
        for batch_no, start in enumerate(range(0, len(order), batch_size)):
            if dist is not None and batch_no % dist.world_size != dist.rank:
                continue
            idx = order[start: start + batch_size]
            seq, lens = pad_left([histories[i] for i in idx], max_len)
            scores = model.score(model.readout(seq.to(device), lens.to(device))).float()  # (b, n_items + 1)
            tgt = torch.from_numpy(targets[idx]).to(device)
            if mode == "full":
                pad = torch.zeros(1, dtype=torch.long, device=scores.device)
                scores = scores.index_fill(1, pad, float("-inf"))  # padding is never a candidate (out of place)
                if mask_history:
                    full, _ = pad_left([histories[i] for i in idx], max(1, max(len(histories[i]) for i in idx)))
                    keep = scores.gather(1, tgt.view(-1, 1))
                    scores = scores.scatter(1, full.to(device), float("-inf")).scatter(1, tgt.view(-1, 1), keep)
                _check_no_nan(scores, model, batch_no, idx)
                chunks.append((batch_no, idx, rank_metrics(scores, tgt, ks, ties)))
            else:
                neg = torch.from_numpy(negatives[idx]).to(device)
                cand = torch.cat([tgt.view(-1, 1), neg], dim=1)  # (b, 1 + n_negatives), target first
                ranked = scores.gather(1, cand)
                _check_no_nan(ranked, model, batch_no, idx)
                chunks.append((batch_no, idx, rank_metrics(ranked, torch.zeros_like(tgt), ks, ties)))
    finally:
        model.train(was_training)
    if dist is not None:  # every rank's chunks (CPU float64, metrics.py), in batch order
        from .distributed import gather_objects

        chunks = sorted((c for part in gather_objects(chunks) for c in part), key=lambda c: c[0])
    for _, _, m in chunks:
        acc.add(m)
    if per_user is not None and chunks:
        for k in chunks[0][2]:
            vals = np.empty(len(targets), dtype=np.float64)
            for _, idx, m in chunks:
                vals[idx] = m[k].detach().cpu().double().numpy()
            per_user[k] = vals
    return {**acc.result(), "n_users": acc.n}


def _model_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def protocol_dict(*, split: str, mode: str, mask_history: bool, max_len: int, ties: str, n_negatives: int | None,
                  negative_sampling: str | None, dataset_protocol: dict | None = None) -> dict:
    """The evaluation protocol written beside every number (metrics.json, result tables)."""
    dp = dataset_protocol or {}
    return {
        "split": f"leave-one-out ({split}: target = "
                 + ("second-to-last item" if split == "valid" else "last item") + ")",
        "ranking": "full (all items, padding excluded)" if mode == "full"
                   else f"sampled ({n_negatives} {negative_sampling} negatives, seeded)",
        "history_masking": bool(mask_history),
        "max_len": int(max_len),
        "ties": ties,
        "kcore": dp.get("kcore"),
        "filter": dp.get("filter"),
    }
