"""A seeded synthetic dataset with Zipf popularity and learnable sequential structure.

Each item i has `n_successors` preferred next items (drawn uniformly). A user's next item is, with
probability `p_transition`, one of the previous item's successors, else a fresh draw from the Zipf popularity.
A popularity recommender can only exploit the marginal; a sequence model can learn the transitions, so it
measurably beats popularity: that is what smoke runs and tests check.
"""

from __future__ import annotations

import numpy as np

from .types import SequenceData


def make_synthetic(
    n_users: int = 1000,
    n_items: int = 500,
    min_len: int = 10,
    max_len: int = 60,
    zipf_a: float = 1.1,
    n_successors: int = 3,
    p_transition: float = 0.7,
    seed: int = 0,
) -> SequenceData:
    """Generate `n_users` sequences over items 1..n_items (deterministic for a given seed)."""
    if n_items < n_successors + 1:
        raise ValueError("n_items must exceed n_successors")
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    pop = ranks ** (-zipf_a)
    pop /= pop.sum()
    perm = rng.permutation(n_items)  # item id (perm[k] + 1) has popularity rank k
    p_item = np.empty(n_items)
    p_item[perm] = pop
    # successors are drawn uniformly, not by popularity: the transitions carry information the marginal does not
    successors = np.stack([rng.choice(n_items, size=n_successors, replace=False) for _ in range(n_items)]) + 1
    seqs = []
    for _ in range(n_users):
        length = int(rng.integers(min_len, max_len + 1))
        s = np.empty(length, dtype=np.int64)
        s[0] = rng.choice(n_items, p=p_item) + 1
        trans = rng.random(length) < p_transition
        fresh = rng.choice(n_items, size=length, p=p_item) + 1
        pick = rng.integers(0, n_successors, size=length)
        for t in range(1, length):
            s[t] = successors[s[t - 1] - 1, pick[t]] if trans[t] else fresh[t]
        seqs.append(s)
    return SequenceData(
        name="synthetic",
        sequences=seqs,
        n_items=n_items,
        user_ids=np.array([str(u) for u in range(1, n_users + 1)]),
        item_ids=np.array([str(i) for i in range(1, n_items + 1)]),
        item_titles=[""] + [f"item {i}" for i in range(1, n_items + 1)],
        protocol={
            "source": "synthetic",
            "params": dict(n_users=n_users, n_items=n_items, min_len=min_len, max_len=max_len, zipf_a=zipf_a,
                           n_successors=n_successors, p_transition=p_transition, seed=seed),
            "kcore": None,
        },
    )
