"""Tables for the notebooks and the result files: dataset statistics (Table 4), run results collected from
outputs/, and our numbers beside the paper's. Reads files written by the library; never edits a number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paper
from .errors import DataError, UserError

METRIC_COLS = [f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 10, 20)]


# ------------------------------------------------------------------------------------------ data (notebook 01)

def table4(names: list[str], data_dir: str | None = None, kcore: int = 5) -> tuple[pd.DataFrame, list[str]]:
    """Statistics (as read, and after the k-core filter) for each dataset whose files are present.

    Returns (table, notes): a dataset that cannot be loaded is left out with a note saying why.
    """
    from .data import dataset_stats

    frames, notes = [], []
    for name in names:
        try:
            frames.append(dataset_stats(name, data_dir or None, kcore=kcore))
        except (DataError, UserError) as e:
            notes.append(f"{name}: not available here ({str(e).splitlines()[0]})")
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return table, notes


def exploration_arrays(name: str, data_dir: str | None = None) -> dict[str, Any]:
    """Per-dataset arrays for the exploration figures: sequence lengths, item counts, timestamps (or None)."""
    from .data import load_dataset

    data = load_dataset(name, data_dir or None)
    counts = np.bincount(np.concatenate(data.sequences), minlength=data.n_items + 1)[1:]
    ts = np.concatenate(data.timestamps) if data.timestamps else None
    return {"lengths": data.lengths(), "item_counts": counts, "timestamps": ts, "data": data}


def top_items(data, k: int = 10) -> pd.DataFrame:
    """The k most frequent items with their titles (and genres) where known."""
    counts = np.bincount(np.concatenate(data.sequences), minlength=data.n_items + 1)
    idx = np.argsort(-counts[1:], kind="stable")[:k] + 1
    df = pd.DataFrame({"item": idx, "interactions": counts[idx]})
    if data.item_titles:
        df["title"] = [data.item_titles[i] for i in idx]
    if data.item_genres:
        df["genres"] = [data.item_genres[i] for i in idx]
    return df


# ------------------------------------------------------------------------------------------ runs (notebooks 03, 05)

def load_run(run_dir: str | Path) -> dict[str, Any]:
    """config.json + metrics.json of one finished run as one flat record."""
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    met = json.loads((run_dir / "metrics.json").read_text())
    return {"run_dir": str(run_dir), "config": cfg, "metrics": met}


def collect_runs(runs_root: str | Path) -> pd.DataFrame:
    """One row per finished run under `runs_root` (a folder of run folders holding metrics.json)."""
    rows = []
    for mfile in sorted(Path(runs_root).glob("*/metrics.json")):
        try:
            rec = load_run(mfile.parent)
        except (OSError, ValueError):
            continue
        rows.append(flatten_run(rec))
    return pd.DataFrame(rows)


def flatten_run(rec: dict[str, Any]) -> dict[str, Any]:
    """Pick the fields a results table needs out of a run's config.json and metrics.json."""
    cfg, met = rec["config"], rec["metrics"]
    test = met.get("test", {})
    row = {"model": cfg.get("model"), "dataset": cfg.get("dataset"), "profile": cfg.get("profile"),
           "seed": cfg.get("train", {}).get("seed", cfg.get("seed")),
           **{k: test.get(k) for k in METRIC_COLS},
           **{f"valid_{k}": met.get("valid", {}).get(k) for k in ("ndcg@10", "hr@10")},
           "best_epoch": met.get("best_epoch"), "epochs_run": met.get("epochs_run"),
           "sec_per_epoch": met.get("sec_per_epoch"), "params": met.get("params", cfg.get("params")),
           "params_wo_emb": met.get("params_wo_emb", cfg.get("params_wo_emb")),
           "git_sha": cfg.get("environment", {}).get("git_sha"), "device": cfg.get("environment", {}).get("device",
                                                                                                          cfg.get("train", {}).get("device")),
           "kernel": cfg.get("kernel_path"), "run_dir": rec["run_dir"]}
    proto = met.get("protocol") or met.get("test_protocol") or {}
    row["protocol"] = "; ".join(f"{k}={v}" for k, v in proto.items()) if isinstance(proto, dict) else str(proto)
    return row


def summary(df: pd.DataFrame, metrics=("hr@10", "ndcg@10", "mrr@10")) -> pd.DataFrame:
    """Mean ± sd over seeds per (dataset, model)."""
    if df.empty:
        return df
    g = df.groupby(["dataset", "model"])
    out = g[list(metrics)].agg(["mean", "std", "count"])
    return out


def beside_paper(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our mean test metrics per model next to the paper's row for the same model (paper rows labelled)."""
    ours = df[df["dataset"] == dataset]
    p = paper.table(dataset).set_index("model")
    rows = []
    for model, g in ours.groupby("model"):
        name = paper.MODEL_TO_PAPER.get(model, model)
        r = {"model": model, "source": f"ours ({len(g)} seed{'s' if len(g) > 1 else ''})"}
        for m in ("hr@10", "ndcg@10", "mrr@10"):
            r[m] = g[m].mean()
        r["params"] = g["params"].iloc[0]
        r["params_wo_emb"] = g["params_wo_emb"].iloc[0]
        rows.append(r)
        if name in p.index:
            pr = p.loc[name]
            rows.append({"model": model, "source": "paper", **{m: pr[m] for m in ("hr@10", "ndcg@10", "mrr@10")},
                         "params": pr["params"], "params_wo_emb": pr["params_wo_emb"]})
    return pd.DataFrame(rows)
