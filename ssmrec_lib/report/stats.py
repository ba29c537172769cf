"""Paired significance tests between models scored on the same test users.

Each finished run keeps every test user's HR/NDCG/MRR@10 (`test_per_user.npz`, train.TEST_PER_USER, users in split
order). For two models A and B on one dataset, with the per-user metric averaged over each model's seeds:
    d_u = m_A(u) - m_B(u)                   (U,) paired differences
    mean_diff = mean(d)
    95% CI: paired bootstrap over users (resample users with replacement, `n_boot` times, seeded; percentiles)
    p_value: paired sign-flip permutation test (each d_u's sign flipped at random, `n_perm` times, seeded;
             two-sided, with the +1 correction so p is never 0)
numpy only; no normality assumption. Reads run folders, never trains or re-scores.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ..train import TEST_PER_USER


def per_user(run_dirs: list[str | Path], metric: str = "ndcg@10") -> np.ndarray | None:
    """(U,) the metric per test user averaged over the runs (seeds), or None if a run has no per-user file."""
    arrays = []
    for d in run_dirs:
        path = Path(d) / TEST_PER_USER
        if not path.is_file():
            return None
        with np.load(path) as z:
            arrays.append(z[metric].astype(np.float64))
    if not arrays or len({a.shape for a in arrays}) != 1:
        return None
    return np.mean(arrays, axis=0)


def paired_test(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, n_perm: int = 10_000,
                seed: int = 0) -> dict[str, float]:
    """Mean paired difference a - b over users, its bootstrap 95% CI and the sign-flip permutation p-value."""
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same users: shapes {a.shape} and {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    n = len(d)
    boot = np.array([d[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
    observed = abs(d.mean())
    flips = np.array([abs((d * rng.choice((-1.0, 1.0), n)).mean()) for _ in range(n_perm)])
    return {"mean_diff": float(d.mean()), "ci_low": float(np.percentile(boot, 2.5)),
            "ci_high": float(np.percentile(boot, 97.5)),
            "p_value": float((1 + np.sum(flips >= observed - 1e-15)) / (n_perm + 1)), "n_users": int(n)}


def pairwise_table(runs: pd.DataFrame, dataset: str, metric: str = "ndcg@10", **kw) -> pd.DataFrame:
    """One row per pair of models on `dataset`: paired_test on the seed-averaged per-user metric.

    `runs`: one row per run (tables.collect_runs, after choose_variants so each model has one configuration),
    with `model` and `run_dir`. Models whose runs lack per-user files are left out."""
    g = runs[runs["dataset"] == dataset].groupby("model")["run_dir"].apply(list)
    values = {m: v for m, dirs in g.items() if (v := per_user(dirs, metric)) is not None}
    rows = []
    for ma, mb in combinations(sorted(values), 2):
        rows.append({"model_a": ma, "model_b": mb, "metric": metric, **paired_test(values[ma], values[mb], **kw)})
    return pd.DataFrame(rows)
