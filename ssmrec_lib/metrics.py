"""Top-K ranking metrics for one held-out target per user (leave-one-out), vectorised over a batch.

Glossary
    scores (B, C)   a score per candidate (C = all items, or the target + sampled negatives)
    higher (B,)     number of candidates scoring strictly higher than the target
    ties (B,)       number of OTHER candidates scoring exactly as high as the target
    rank            1-based position of the target in the sorted list (1 = best)

Metrics for one target at rank r (docs/measured_facts.md, as RecBole computes them):
    HR@K   = [r <= K]            (hit ratio; = recall@K with one target)
    NDCG@K = [r <= K] / log2(r + 1)
    MRR@K  = [r <= K] / r

Ties (documented choice). A model can give the target and other items the same score (Pop does, and so does a
model that collapsed). Sorting would then break ties arbitrarily (RecBole: torch.topk's order). Two exact,
order-free rules are offered:
    "pessimistic": r = 1 + higher + ties   (the target is placed after every item it ties with)
    "expected":    the metric's EXPECTATION over a uniformly random tie order, i.e. r uniform on
                   {1 + higher, ..., 1 + higher + ties}: mean of f(r) over that range (NOT f(mean rank)).
                   Computed exactly with a cumulative table of f: (F[hi] - F[lo - 1]) / (ties + 1).
Both equal the plain rank when there are no ties. Default: "expected" (a constant scorer gets HR@K = K / C,
the random baseline, instead of 0).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

TieRule = Literal["expected", "pessimistic"]
METRIC_NAMES = ("hr", "ndcg", "mrr")
DEFAULT_KS = (5, 10, 20)


def count_higher_and_ties(scores: torch.Tensor, target_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B, C) float, target_index (B,) long -> (higher (B,), ties (B,)) long.

    -inf scores (masked items) are never counted as higher or tied unless the target itself is -inf (then every
    other -inf candidate ties with it: a masked target ranks among the masked items).
    """
    t = scores.gather(1, target_index.view(-1, 1))  # (B, 1)
    higher = (scores > t).sum(dim=1)
    ties = (scores == t).sum(dim=1) - 1  # minus the target itself
    return higher.long(), ties.long()


def _per_user(higher: torch.Tensor, ties: torch.Tensor, k: int, rule: TieRule) -> dict[str, torch.Tensor]:
    """Per-user HR/NDCG/MRR@k (float64, shape (B,)) from counts."""
    higher = higher.double()
    ties = ties.double()
    if rule == "pessimistic":
        r = 1.0 + higher + ties
        hit = (r <= k).double()
        return {"hr": hit, "ndcg": hit / torch.log2(r + 1.0), "mrr": hit / r}
    if rule != "expected":
        raise ValueError(f"ties must be 'expected' or 'pessimistic', got {rule!r}")
    # r uniform on [lo, hi]; only ranks <= k contribute. Cumulative tables over r = 0..k (entry 0 is 0).
    lo = 1.0 + higher
    hi = lo + ties
    n = ties + 1.0
    r = torch.arange(1, k + 1, dtype=torch.float64)
    cum_ndcg = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1.0 / torch.log2(r + 1.0), 0)])
    cum_mrr = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1.0 / r, 0)])
    top = torch.clamp(hi, max=k)  # last rank that counts
    valid = lo <= k
    a = torch.clamp(lo - 1.0, 0, k).long()  # F[lo - 1]
    b = torch.clamp(top, 0, k).long()       # F[min(hi, k)]
    hits = torch.where(valid, top - lo + 1.0, torch.zeros_like(lo))
    ndcg = torch.where(valid, cum_ndcg[b] - cum_ndcg[a], torch.zeros_like(lo))
    mrr = torch.where(valid, cum_mrr[b] - cum_mrr[a], torch.zeros_like(lo))
    return {"hr": hits / n, "ndcg": ndcg / n, "mrr": mrr / n}


def metrics_from_counts(
    higher: torch.Tensor, ties: torch.Tensor, ks: Sequence[int] = DEFAULT_KS, ties_rule: TieRule = "expected"
) -> dict[str, torch.Tensor]:
    """Per-user metrics {"hr@5": (B,), "ndcg@5": (B,), ...} (float64) from `count_higher_and_ties`."""
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        for name, v in _per_user(higher.cpu(), ties.cpu(), int(k), ties_rule).items():
            out[f"{name}@{k}"] = v
    return out


def rank_metrics(
    scores: torch.Tensor, target_index: torch.Tensor, ks: Sequence[int] = DEFAULT_KS, ties_rule: TieRule = "expected"
) -> dict[str, torch.Tensor]:
    """scores (B, C), target_index (B,) -> per-user metrics (float64 (B,) each)."""
    h, t = count_higher_and_ties(scores.float(), target_index)
    return metrics_from_counts(h, t, ks, ties_rule)


class MetricAccumulator:
    """Sums per-user metrics over batches; `result()` gives the means and the user count."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, per_user: dict[str, torch.Tensor]) -> None:
        for k, v in per_user.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.sum())
        self.n += int(next(iter(per_user.values())).numel()) if per_user else 0

    def result(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no users were evaluated")
        return {k: v / self.n for k, v in sorted(self.sums.items())}
