"""A seeded synthetic dataset with Zipf popularity and learnable sequential structure.

Each item i has `n_successors` preferred next items (drawn uniformly). A user's next item is, with
probability `p_transition`, one of the previous item's successors, else a fresh draw from the Zipf popularity.
A popularity recommender can only exploit the marginal; a sequence model can learn the transitions, so it
measurably beats popularity: that is what smoke runs and tests check.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..errors import DataError
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


def synthetic_options(options: dict) -> dict:
    """`make_synthetic`'s keyword arguments from a dataset spec ("synthetic?n_users=200&zipf_a=1.2": values are
    text), typed like its defaults; an unknown key or a value of the wrong type raises DataError naming it."""
    params = inspect.signature(make_synthetic).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise DataError(f"dataset 'synthetic': unknown option(s) {unknown}; valid: {sorted(params)}")
    out = {}
    for key, value in options.items():
        kind = type(params[key].default)
        try:
            out[key] = kind(value) if not isinstance(value, kind) else value
            if kind is int and isinstance(value, str) and str(out[key]) != value.strip():
                raise ValueError
        except (TypeError, ValueError):
            raise DataError(f"dataset 'synthetic': {key}={value!r} is not {'an integer' if kind is int else 'a number'}"
                            f" (default {params[key].default})") from None
    try:
        make_synthetic_check(**{k: out.get(k, params[k].default) for k in params})
    except ValueError as e:
        raise DataError(f"dataset 'synthetic': {e}") from None
    return out


def make_synthetic_check(n_users, n_items, min_len, max_len, zipf_a, n_successors, p_transition, seed) -> None:
    """The ranges make_synthetic's arguments must lie in (ValueError naming the first that does not)."""
    if n_users < 1 or n_items < 1:
        raise ValueError(f"n_users and n_items must be >= 1 (got {n_users}, {n_items})")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len (got {min_len}, {max_len})")
    if n_items < n_successors + 1 or n_successors < 1:
        raise ValueError(f"need 1 <= n_successors < n_items (got {n_successors}, {n_items})")
    if not 0 <= p_transition <= 1 or zipf_a < 0:
        raise ValueError(f"need 0 <= p_transition <= 1 and zipf_a >= 0 (got {p_transition}, {zipf_a})")
