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
from ..errors import DataError, UserError
from ..llm.runs import backbone_label

METRIC_COLS = [f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 10, 20)]


# ------------------------------------------------------------------------------------------ data (notebook 01)

def table4(names: list[str], data_dir: str | None = None, kcore: int = 5) -> tuple[pd.DataFrame, list[str]]:
    """Statistics (as read, and after the k-core filter) for each dataset whose files are present.

    Returns (table, notes): a dataset that cannot be loaded is left out with a note saying why.
    """
    from ..data import dataset_stats

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
    from ..data import load_dataset

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
    test, valid = met.get("test") or {}, met.get("valid") or {}
    n_params = met.get("n_params") or cfg.get("n_params") or {}
    env = cfg.get("environment") or {}
    kernel = cfg.get("kernel_path") or {}
    proto = (met.get("protocol") or {}).get("test") or {}
    tc = cfg.get("train_config") or {}
    trained = met.get("trained") or {}
    return {
        "run_id": cfg.get("run_id"),
        "trained": f"{(trained.get('git_sha') or 'unknown')[:12]} on {(trained.get('finished_at') or '?')[:10]}",
        "identity_hash": cfg.get("identity_hash"),
        "model": cfg.get("model"), "dataset": cfg.get("dataset"), "profile": cfg.get("profile"),
        "seed": cfg.get("seed"), "overrides": json.dumps(cfg.get("overrides") or {}, sort_keys=True), **{k: test.get(k) for k in METRIC_COLS},
        "valid_ndcg@10": valid.get("ndcg@10"), "valid_hr@10": valid.get("hr@10"),
        "best_epoch": met.get("best_epoch"), "epochs_run": met.get("epochs_run"),
        "sec_per_epoch": met.get("seconds_per_epoch"), "stopped_early": met.get("stopped_early"),
        "threads": env.get("torch_threads"),
        "params": n_params.get("with_embeddings"), "params_wo_emb": n_params.get("without_embeddings"),
        "objective": met.get("objective", cfg.get("objective")), "max_len": tc.get("max_len"),
        "device": tc.get("device"), "kernel": ",".join(f"{k}={v}" for k, v in (kernel.get("resolved") or {}).items()),
        "git_sha": env.get("git_sha"), "torch": env.get("torch"),
        "protocol": "; ".join(f"{k}={v}" for k, v in proto.items() if k != "kcore")
                    + (f"; kcore={proto['kcore'].get('user_k')}/{proto['kcore'].get('item_k')}" if isinstance(
                        proto.get("kcore"), dict) else ""),
        "backbone": backbone_label(cfg.get("backbone")),
        "latency_ms_run": (met.get("latency") or {}).get("median_ms_per_user"),
        "run_dir": rec["run_dir"],
    }


def check_identities(runs: pd.DataFrame, data_dir: str | None = None, datasets: dict | None = None) -> pd.DataFrame:
    """`runs` with an `identity` column: "matches this code" where the identity this code computes for each run's
    command (model, dataset, profile, seed, overrides; the dataset loaded once each, or taken from `datasets`)
    equals the one in its config.json, else "STALE: differs in [...]" (or "STALE: <why>"). A stale run was made
    by other code or data and must not be shown as a result of this code."""
    from ..experiment import identity_diff, load_data, read_identity
    from ..runner import expected_identity_any

    if runs.empty:
        return runs.assign(identity=[])
    datasets = dict(datasets or {})
    marks = []
    for _, r in runs.iterrows():
        try:
            if r["dataset"] not in datasets:
                datasets[r["dataset"]] = load_data(r["dataset"], data_dir)
            stored = read_identity(r["run_dir"])
            if stored is None:
                marks.append("STALE: no identity recorded (made before run identity existed)")
                continue
            diff = identity_diff(stored, expected_identity_any(r["run_dir"], datasets[r["dataset"]]))
            marks.append("matches this code" if not diff else f"STALE: differs in {diff}")
        except (UserError, DataError, OSError, ValueError, KeyError) as e:
            marks.append(f"STALE: cannot recompute ({type(e).__name__}: {str(e).splitlines()[0]})")
    return runs.assign(identity=marks)


def current_only(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(the runs whose identity matches this code, one line per run left out and why); see check_identities."""
    if runs.empty or "identity" not in runs:
        return runs, []
    ok = runs["identity"] == "matches this code"
    left = [f"{r['run_id']}: {r['identity']}" for _, r in runs[~ok].iterrows()]
    return runs[ok].reset_index(drop=True), left


def load_log(run_dir: str | Path) -> pd.DataFrame:
    """log.jsonl of a run as a DataFrame: epoch, train_loss, lr, seconds and valid_<metric> columns."""
    rows = []
    path = Path(run_dir) / "log.jsonl"
    for line in (path.read_text().splitlines() if path.exists() else []):
        if not line.strip():
            continue
        r = json.loads(line)
        row = {"epoch": r.get("epoch"), "train_loss": r.get("loss"), "lr": r.get("lr"),
               "train_seconds": r.get("train_seconds"), "eval_seconds": r.get("eval_seconds")}
        row.update({f"valid_{k}": v for k, v in (r.get("valid") or {}).items() if k != "n_users"})
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_table(result: dict[str, Any]) -> pd.DataFrame:
    """Valid and test metrics of one run (metrics.json payload) as a (split x metric) table."""
    return pd.DataFrame({s: {k: v for k, v in (result.get(s) or {}).items() if k in METRIC_COLS}
                         for s in ("valid", "test")}).T[METRIC_COLS]


def protocol_table(result: dict[str, Any]) -> pd.DataFrame:
    """The evaluation protocol written beside the numbers (one column per split)."""
    proto = result.get("protocol") or {}
    return pd.DataFrame({s: {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in p.items()}
                         for s, p in proto.items()})


def summary(df: pd.DataFrame, metrics=("hr@10", "ndcg@10", "mrr@10")) -> pd.DataFrame:
    """Mean, sd and count over the seeds of each (dataset, model)'s chosen configuration (choose_variants: the
    best validation NDCG@10), so the sd is a spread over seeds, never over configurations."""
    if df.empty:
        return df
    g = choose_variants(df).groupby(["dataset", "model"])
    out = g[list(metrics)].agg(["mean", "std", "count"])
    return out


# the language models the paper's LLM rows name (its text and parameter column); ours say what they ran instead
PAPER_BACKBONES = {"GPT4Rec": "GPT-2 (117M, pretrained)", "MamRec": "Mamba-130M (pretrained)",
                   "LlamaRec": "Llama-2-7B (pretrained, LoRA)"}


def choose_variants(runs: pd.DataFrame) -> pd.DataFrame:
    """Where a model was run in several configurations (different --set overrides), keep the one with the best
    mean VALIDATION NDCG@10 (the test split plays no part in the choice), averaged over the seeds that every
    configuration has (so a configuration run with more seeds is not judged on other seeds); `variants` lists
    every candidate with its seeds."""
    if runs.empty:
        return runs
    runs = runs.assign(overrides=runs["overrides"] if "overrides" in runs else "{}")
    kept = []
    for _, g in runs.groupby(["dataset", "model"], sort=False):
        seeds = g.groupby("overrides")["seed"].apply(set)
        common = set.intersection(*seeds)
        basis = g[g["seed"].isin(common)] if common else g
        means = basis.groupby("overrides")["valid_ndcg@10"].mean().sort_values(ascending=False)
        on = f"seed {', '.join(map(str, sorted(common)))}" if common else "all seeds (no seed in common)"
        desc = f"chosen on {on}: " + "; ".join(
            f"{o} valid ndcg@10 {v:.4f} (seeds run: {', '.join(map(str, sorted(seeds[o])))})" for o, v in means.items())
        kept.append(g[g["overrides"] == means.index[0]].assign(variants=desc))
    return pd.concat(kept, ignore_index=True)


def beside_paper(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our mean test metrics per model next to the paper's row for the same model (paper rows labelled).

    A `backbone` column is added when any row has one (LLM models): our label ('gpt2-tiny (... params, NOT
    pretrained)') beside the language model the paper used, so the two are never confused. Where a model was run
    in several configurations, validation picks one (choose_variants) and `overrides` names it."""
    ours = choose_variants(df[df["dataset"] == dataset])
    p = paper.reference(dataset)[1].set_index("model")  # a stand-in: the rows of the table it stands for
    with_backbone = "backbone" in ours and ours["backbone"].notna().any()
    rows = []
    for model, g in ours.groupby("model"):
        name = paper.MODEL_TO_PAPER.get(model, model)
        n = g["seed"].nunique()
        r = {"model": model, "source": f"ours ({n} seed{'s' if n > 1 else ''})", "overrides": g["overrides"].iloc[0]}
        for m in ("hr@10", "ndcg@10", "mrr@10"):
            r[m] = g[m].mean()
        r["params"] = g["params"].iloc[0]
        r["params_wo_emb"] = g["params_wo_emb"].iloc[0]
        if with_backbone:
            r["backbone"] = g["backbone"].iloc[0]
        rows.append(r)
        if name in p.index:
            pr = p.loc[name]
            rows.append({"model": model, "source": "paper", **{m: pr[m] for m in ("hr@10", "ndcg@10", "mrr@10")},
                         "params": pr["params"], "params_wo_emb": pr["params_wo_emb"],
                         **({"backbone": PAPER_BACKBONES.get(name)} if with_backbone else {})})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ result files

def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); floats with `floatfmt`, ints with separators."""
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        if isinstance(v, (float, np.floating)):
            return floatfmt.format(v)
        return str(v).replace("|", "\\|")
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_results(df: pd.DataFrame, out_dir: str | Path, stem: str = "results", title: str = "Results",
                  notes: list[str] | None = None) -> tuple[Path, Path]:
    """Write `df` as <stem>.csv and <stem>.md (with a title, notes and provenance lines) under out_dir."""
    from ..utils import atomic_write_text, environment_info

    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    atomic_write_text(csv_path, df.to_csv(index=False))
    env = environment_info()
    md = [f"# {title}", "", *(notes or []), "",
          f"Generated by ssmrec_lib.report.tables at git {env['git_sha']}, torch {env['torch']}, "
          f"{env['cpu_count']} CPU(s), CUDA {env['cuda']}. Every row comes from a run folder's metrics.json.", "",
          to_markdown(df)]
    atomic_write_text(md_path, "\n".join(md))
    return csv_path, md_path


def join_latency(results: pd.DataFrame, latency: pd.DataFrame, batch: int = 1) -> pd.DataFrame:
    """Add the batch-`batch` median latency (ms) at each run's max_len (nearest measured length) to `results`."""
    if latency.empty or results.empty:
        return results.assign(latency_ms=np.nan)
    lat = latency[(latency["batch"] == batch) & (latency["status"] == "ok")]
    out = results.copy()
    vals = []
    for _, r in out.iterrows():
        m = lat[lat["model"] == r["model"]]
        if m.empty or pd.isna(r.get("max_len")):
            vals.append(np.nan)
            continue
        i = (m["length"] - r["max_len"]).abs().idxmin()
        vals.append(m.loc[i, "latency_ms_median"])
    out["latency_ms"] = vals
    return out
