"""Dataset statistics (the paper's Table 4): users, items, interactions, mean / median sequence length, density.

`stats(data)` gives one dict for a SequenceData; `dataset_stats(name, ...)` gives a two-row DataFrame: the
files *as read* (before dedup and k-core) and the dataset *after the filter*, with the filter named.
density = interactions / (users * items).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .types import SequenceData

COLUMNS = ["dataset", "stage", "filter", "users", "items", "interactions", "mean_len", "median_len", "density"]


def stats(data: SequenceData) -> dict[str, Any]:
    """{"users", "items", "interactions", "mean_len", "median_len", "density"} of the prepared data.

    `items` counts the items that occur (equal to n_items after the pipeline).
    """
    lens = data.lengths()
    n = int(lens.sum())
    occurring = int(len(np.unique(np.concatenate(data.sequences)))) if n else 0
    return {
        "users": data.n_users,
        "items": occurring,
        "interactions": n,
        "mean_len": float(lens.mean()) if n else 0.0,
        "median_len": float(np.median(lens)) if n else 0.0,
        "density": n / (data.n_users * occurring) if n else 0.0,
    }


def stats_rows(data: SequenceData) -> pd.DataFrame:
    """Two rows ("as read", "after filter") from a pipeline-built SequenceData's protocol."""
    proto = data.protocol or {}
    counts = proto.get("counts", {})
    filt = proto.get("filter", "none")
    rows = []
    if "as_read" in counts:
        rows.append({"dataset": data.name, "stage": "as read", "filter": "none", **counts["as_read"]})
    rows.append({"dataset": data.name, "stage": "after filter", "filter": filt, **stats(data)})
    return pd.DataFrame(rows, columns=COLUMNS)


def dataset_stats(name: str, data_dir=None, *, kcore: int = 5, **options) -> pd.DataFrame:
    """Load `name` through `load_dataset` and return its two-row statistics table."""
    from .registry import load_dataset

    return stats_rows(load_dataset(name, data_dir, kcore=kcore, **options))


def format_table(df: pd.DataFrame) -> str:
    """A plain-text table with thousands separators (what `data stats` prints)."""
    out = df.copy()
    for c in ("users", "items", "interactions"):
        out[c] = out[c].map(lambda v: f"{int(v):,}")
    out["mean_len"] = out["mean_len"].map(lambda v: f"{v:.2f}")
    out["median_len"] = out["median_len"].map(lambda v: f"{v:g}")
    out["density"] = out["density"].map(lambda v: f"{100 * v:.4f}%")
    return out.to_string(index=False)
