"""`python -m ssmrec_lib bench latency`: inference latency, throughput and memory per model against sequence
length and batch size (the paper's "Latency" column, measured properly).

Method: untrained models at the paper's size (d=64, ML-1M's 3,416 items), inference mode, fixed seed, `warmup`
untimed calls, then `repeats` timed calls of `score(readout(history))` (the full next-item scoring a recommender
serves). Batch-1 latency: median and p95 ms. Throughput: users scored per second at the given batch.
Peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the peak process RSS above the pre-call level,
sampled every millisecond by a background thread (torch allocations are invisible to tracemalloc).
A (model, batch) stops growing L once one call exceeds `budget_s` (recorded as "over budget", not guessed).
LLM recommenders (gpt4rec, mamrec, llamarec) are not one score(readout) call: they are timed as a whole pipeline
per user at batch 1 by bench/llm.py, in rows of their own (columns `backbone` and `pipeline` set, printed as a
separate table) in the same CSV.
"""

from __future__ import annotations

import pandas as pd
import torch

from . import ML1M_ITEMS, save  # noqa: F401  (save: re-exported for the notebooks)
from .memory import PeakRSS, pin_malloc_thresholds
from .timer import device_sync, time_calls, time_once


def kernel_path(model: torch.nn.Module, device: torch.device) -> str:
    """Which path the model's SSM blocks take on `device` ("fused", "cpu-ext", "ref"; "n/a" without SSM blocks)."""
    from ..ssm import kernels

    kinds = {type(m).__name__ for m in model.modules()}
    op = ("selective_scan" if "Mamba" in kinds else "ssd" if kinds & {"Mamba2", "Hydra"} else None)
    if op is None:
        return "n/a"
    return kernels.path_name(getattr(getattr(model, "config", None), "kernel", "auto"), op, device)


def measure(model: torch.nn.Module, length: int, batch: int, n_items: int, device: torch.device,
            warmup: int = 2, repeats: int = 10, seed: int = 0) -> dict:
    """Time and measure one (length, batch) cell for an eval-mode model. Returns a dict of figures."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items + 1, (batch, length), generator=g).to(device)
    lengths = torch.full((batch,), length, dtype=torch.long, device=device)
    sync = device_sync(device)

    def call() -> None:
        model.score(model.readout(seq, lengths))

    with torch.inference_mode():
        time_calls(call, 0, warmup=warmup)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        rss = PeakRSS()
        t = time_calls(call, repeats, sync=sync, during=rss)
        peak = (torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else rss.peak
    return {"latency_ms_median": t.median_ms, "latency_ms_p95": t.p95_ms,
            "throughput_users_s": float(batch / (t.median_ms / 1000)), "peak_mem_mb": peak / 2**20,
            "repeats": repeats}


def bench_latency(models: list[str], lengths: list[int], batches: list[int], n_items: int = ML1M_ITEMS,
                  device: str = "cpu", warmup: int = 2, repeats: int = 10, budget_s: float = 5.0,
                  overrides: dict[str, dict] | None = None, seed: int = 0, log=print,
                  llm_profile: str = "quick") -> pd.DataFrame:
    """One row per (model, batch, length). Models are built at their default (paper-size) configs.

    LLM models in `models` give one row per length at batch 1 (bench/llm.py, `llm_profile` sizes).
    """
    from ..models.registry import build_model
    from ..profiles import LLM_MODELS

    dev = torch.device(device)
    if dev.type == "cpu":
        pin_malloc_thresholds()
    rows = []
    max_len = max(lengths)
    llm = [m for m in models if m in LLM_MODELS]
    for name in [m for m in models if m not in LLM_MODELS]:
        torch.manual_seed(seed)
        model = build_model(name, n_items=n_items, max_len=max_len, overrides=(overrides or {}).get(name)).to(dev)
        model.eval()
        info = {"model": name, "params": model.n_params(True), "params_wo_emb": model.n_params(False),
                "kernel": kernel_path(model, dev), "device": str(dev), "threads": torch.get_num_threads()}
        for batch in batches:
            over = False
            for L in sorted(lengths):
                row = {**info, "batch": batch, "length": L}
                if over:
                    rows.append({**row, "status": "over budget"})
                    continue
                with torch.inference_mode():
                    one = time_once(lambda: model.score(model.readout(
                        torch.ones(batch, L, dtype=torch.long, device=dev), torch.full((batch,), L, device=dev))),
                        device_sync(dev))
                reps = repeats if one * repeats < budget_s * 4 else max(1, int(budget_s * 4 / max(one, 1e-9)))
                row.update(measure(model, L, batch, n_items, dev, warmup=min(warmup, reps), repeats=reps, seed=seed))
                row["status"] = "ok"
                over = one > budget_s
                rows.append(row)
                log(f"{name:10s} batch {batch:4d} L {L:5d}: {row['latency_ms_median']:9.2f} ms "
                    f"(p95 {row['latency_ms_p95']:.2f}), {row['throughput_users_s']:9.1f} users/s, "
                    f"+{row['peak_mem_mb']:.1f} MB, kernel {info['kernel']}")
    if llm:
        from .llm import bench_llm_latency

        rows += bench_llm_latency(llm, lengths, n_items, device=str(dev), warmup=min(warmup, 1), repeats=repeats,
                                  budget_s=budget_s, profile=llm_profile, seed=seed, log=log)
    return pd.DataFrame(rows)


def format_table(df: pd.DataFrame) -> str:
    """A per-model text table (what the command prints)."""
    cols = ["batch", "length", "latency_ms_median", "latency_ms_p95", "throughput_users_s", "peak_mem_mb", "status"]
    parts = []
    is_llm = df["pipeline"].notna() if "pipeline" in df else pd.Series(False, index=df.index)
    for name, g in df[~is_llm].groupby("model", sort=False):
        r = g.iloc[0]
        parts.append(f"\n== {name}: {r['params']:,} params ({r['params_wo_emb']:,} without embeddings), "
                     f"kernel {r['kernel']}, device {r['device']}, {r['threads']} threads")
        parts.append(g[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if is_llm.any():
        parts.append("\n#### LLM recommenders: the whole pipeline per user at batch 1 (untrained, CPU; bench/llm.py)")
        for name, g in df[is_llm].groupby("model", sort=False):
            r = g.iloc[0]
            parts.append(f"\n== {name}: {r['pipeline']}; backbone {r['backbone']}; {r['params']:,} params in all "
                         f"({r['params_wo_emb']:,} without embeddings), LLM profile {r['llm_profile']}, "
                         f"{r['threads']} threads")
            parts.append(g[[c for c in cols if c in g]].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return "\n".join(parts)


def parameter_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model: parameters with and without embeddings, kernel path (from a latency DataFrame)."""
    return (df.groupby("model", sort=False)[["params", "params_wo_emb", "kernel", "device", "threads"]].first()
            .reset_index())
