"""Ranked lists -> HR/NDCG/MRR@K, and GPT4Rec's merge of several queries' results.

A recommender here returns a ranked list of item ids (best first), not a score for every item.
rank(target) = 1 + its position in the list; a target not in the list is a MISS (it ranks after every listed
item; we count it as a miss at every K, the pessimistic choice, even when the list is shorter than K).
    HR@K = [r <= K],  NDCG@K = [r <= K] / log2(r + 1),  MRR@K = [r <= K] / r    (as metrics.py)

Merge rule (GPT4Rec, documented choice "round_robin"): the k queries are in beam order (most probable first);
take the 1st result of query 1, of query 2, ..., of query k, then the 2nd result of each, ...; skip items
already taken (and, optionally, items in the user's history); stop at K. "score_sum" is offered as an
alternative: each item's BM25 scores summed over the queries, highest first.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..metrics import DEFAULT_KS, MetricAccumulator, metrics_from_counts
import torch


def merge_round_robin(results: Sequence[Sequence[int]], top_k: int, exclude: Iterable[int] = ()) -> list[int]:
    """results[q] = item ids of query q, best first -> one list of at most top_k distinct ids."""
    seen, out = set(int(i) for i in exclude), []
    depth = max((len(r) for r in results), default=0)
    for j in range(depth):
        for r in results:
            if j < len(r) and int(r[j]) not in seen:
                seen.add(int(r[j]))
                out.append(int(r[j]))
                if len(out) == top_k:
                    return out
    return out


def merge_score_sum(results: Sequence[tuple[Sequence[int], Sequence[float]]], top_k: int,
                    exclude: Iterable[int] = ()) -> list[int]:
    """results[q] = (ids, scores) -> ids by summed score, ties by first appearance; at most top_k."""
    total: dict[int, float] = {}
    ex = set(int(i) for i in exclude)
    for ids, scores in results:
        for i, s in zip(ids, scores):
            if int(i) not in ex:
                total[int(i)] = total.get(int(i), 0.0) + float(s)
    return [i for i, _ in sorted(total.items(), key=lambda kv: -kv[1])][:top_k]


def list_ranks(ranked: Sequence[Sequence[int]], targets: Sequence[int]) -> np.ndarray:
    """(U,) 1-based rank of each target in its list; 0 = miss."""
    out = np.zeros(len(targets), dtype=np.int64)
    for u, (lst, t) in enumerate(zip(ranked, targets)):
        hits = np.flatnonzero(np.asarray(lst, dtype=np.int64) == int(t))
        out[u] = hits[0] + 1 if len(hits) else 0
    return out


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """ranks (U,) with 0 = miss -> mean metrics {"hr@5": ..., ..., "n_users": U} (a miss gets rank > every K)."""
    r = torch.as_tensor(np.asarray(ranks), dtype=torch.long)
    big = max(ks) + 1
    higher = torch.where(r > 0, r - 1, torch.full_like(r, big))
    acc = MetricAccumulator()
    acc.add(metrics_from_counts(higher, torch.zeros_like(higher), ks, "pessimistic"))
    return {**acc.result(), "n_users": acc.n, "miss_rate": float((r == 0).float().mean())}
