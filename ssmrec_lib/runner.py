"""Any model, sequence or LLM, through one entry (notebook 03_train, the workbook, the report): the right pipeline,
the same run folder layout.

    sequence models (sasrec, mamba4rec, ..., pop)   experiment.run_experiment (the project's one trainer)
    LLM models (gpt4rec, mamrec, llamarec)          llm.experiment.run_llm_experiment (fine-tune, select, test)
Both write <out>/<run_id>/{config.json, metrics.json, log.jsonl}, which report/tables.collect_runs reads the same way;
LLM runs add the `backbone` record (name, size, pretrained or not) that every result row shows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .experiment import expected_identity, format_result, provenance_line, run_experiment
from .llm.runs import backbone_label
from .profiles import LLM_MODELS


def is_llm(model: str) -> bool:
    return model in LLM_MODELS


def run_any_experiment(model: str, dataset: str, profile: str = "quick", seed: int = 0,
                       overrides: dict[str, Any] | None = None, data_dir: str | None = None,
                       out: str = "outputs/runs", force: bool = False) -> dict[str, Any]:
    """Train + evaluate `model` (sequence or LLM) on `dataset`; returns the metrics.json payload.

    `profile` names the budget in the model family's table in ssmrec_lib/profiles.py; a finished run is reused
    unless `force`.
    """
    if is_llm(model):
        from .llm.experiment import run_llm_experiment

        return run_llm_experiment(model, dataset, profile, seed, overrides, data_dir=data_dir, out=out, force=force)
    return run_experiment(model, dataset, profile, seed, overrides, data_dir=data_dir, out=out, force=force)


def expected_identity_any(run_dir, data) -> dict[str, Any]:
    """The identity this code computes for the command that made `run_dir` (any model) on `data`."""
    import json
    from pathlib import Path

    conf = json.loads((Path(run_dir) / "config.json").read_text())
    if is_llm(conf["model"]):
        from .llm.experiment import llm_identity

        return llm_identity(conf["model"], conf["profile"], int(conf["seed"]), conf.get("overrides") or {}, data)
    return expected_identity(run_dir, data)


def format_any_result(r: dict[str, Any]) -> str:
    """Printable summary of a metrics.json payload; LLM runs lead with their backbone label."""
    text = format_result(r)
    b = r.get("backbone")
    if b:
        lat = (r.get("latency") or {}).get("median_ms_per_user")
        text = (f"backbone {backbone_label(b)}; batch-1 latency {lat:.1f} ms/user (full pipeline)\n" if lat else
                f"backbone {backbone_label(b)}\n") + text
    return text


def run_summary(r: dict[str, Any], run_dir) -> pd.DataFrame:
    """One-column table of a run's size, budget and provenance (notebook 03's last cell)."""
    s = {"parameters (with embeddings)": f"{r['n_params']['with_embeddings']:,}",
         "parameters (without embeddings)": f"{r['n_params']['without_embeddings']:,}",
         "best epoch": r["best_epoch"], "epochs run": r["epochs_run"],
         "seconds per epoch": round(r["seconds_per_epoch"], 1), "objective": r["objective"]}
    if r.get("backbone"):
        s["backbone"] = backbone_label(r["backbone"])
        s["ranking"] = (r.get("protocol") or {}).get("test", {}).get("ranking")
        s["evaluation users"] = (r.get("protocol") or {}).get("test", {}).get("eval_users")
        s["batch-1 latency (ms/user)"] = round(r["latency"]["median_ms_per_user"], 2)
    s["provenance"] = provenance_line(r)
    s["run folder"] = str(run_dir)
    return pd.Series(s, name=f"{r['model']} on {r['dataset']}").to_frame()
