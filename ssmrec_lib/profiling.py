"""`python -m ssmrec_lib bench latency`: inference latency, throughput and memory per model against sequence
length and batch size (the paper's "Latency" column, measured properly).

Method: untrained models at the paper's size (d=64, ML-1M's 3,416 items), inference mode, fixed seed, `warmup`
untimed calls, then `repeats` timed calls of `score(readout(history))` (the full next-item scoring a recommender
serves). Batch-1 latency: median and p95 ms. Throughput: users scored per second at the given batch.
Peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the peak process RSS above the pre-call level,
sampled every millisecond by a background thread (torch allocations are invisible to tracemalloc).
A (model, batch) stops growing L once one call exceeds `budget_s` (recorded as "over budget", not guessed).
LLM recommenders (gpt4rec, mamrec, llamarec) are not one score(readout) call: they are timed as a whole pipeline
per user at batch 1 by llm/bench.py, in rows of their own (columns `backbone` and `pipeline` set, printed as a
separate table) in the same CSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .memory import PeakRSS, pin_malloc_thresholds
from .utils import atomic_write_text, environment_info

ML1M_ITEMS = 3416


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def kernel_path(model: torch.nn.Module, device: torch.device) -> str:
    """Which path the model's SSM blocks take on `device` ("fused", "cpu-ext", "ref"; "n/a" without SSM blocks)."""
    from .ssm import kernels

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
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model.score(model.readout(seq, lengths))
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        with PeakRSS() as rss:
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.score(model.readout(seq, lengths))
                _sync(device)
                times.append(time.perf_counter() - t0)
        peak = (torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else rss.peak
    ms = np.array(times) * 1000
    return {"latency_ms_median": float(np.median(ms)), "latency_ms_p95": float(np.percentile(ms, 95)),
            "throughput_users_s": float(batch / (np.median(ms) / 1000)), "peak_mem_mb": peak / 2**20,
            "repeats": repeats}


def bench_latency(models: list[str], lengths: list[int], batches: list[int], n_items: int = ML1M_ITEMS,
                  device: str = "cpu", warmup: int = 2, repeats: int = 10, budget_s: float = 5.0,
                  overrides: dict[str, dict] | None = None, seed: int = 0, log=print,
                  llm_profile: str = "quick") -> pd.DataFrame:
    """One row per (model, batch, length). Models are built at their default (paper-size) configs.

    LLM models in `models` give one row per length at batch 1 (llm.bench.bench_llm_latency, `llm_profile` sizes).
    """
    from .llm.experiment import LLM_MODELS
    from .models.registry import build_model

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
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model.score(model.readout(torch.ones(batch, L, dtype=torch.long, device=dev),
                                              torch.full((batch,), L, device=dev)))
                _sync(dev)
                one = time.perf_counter() - t0
                reps = repeats if one * repeats < budget_s * 4 else max(1, int(budget_s * 4 / max(one, 1e-9)))
                row.update(measure(model, L, batch, n_items, dev, warmup=min(warmup, reps), repeats=reps, seed=seed))
                row["status"] = "ok"
                over = one > budget_s
                rows.append(row)
                log(f"{name:10s} batch {batch:4d} L {L:5d}: {row['latency_ms_median']:9.2f} ms "
                    f"(p95 {row['latency_ms_p95']:.2f}), {row['throughput_users_s']:9.1f} users/s, "
                    f"+{row['peak_mem_mb']:.1f} MB, kernel {info['kernel']}")
    if llm:
        from .llm.bench import bench_llm_latency

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
        parts.append("\n#### LLM recommenders: the whole pipeline per user at batch 1 (untrained, CPU; llm/bench.py)")
        for name, g in df[is_llm].groupby("model", sort=False):
            r = g.iloc[0]
            parts.append(f"\n== {name}: {r['pipeline']}; backbone {r['backbone']}; {r['params']:,} params in all "
                         f"({r['params_wo_emb']:,} without embeddings), LLM profile {r['llm_profile']}, "
                         f"{r['threads']} threads")
            parts.append(g[[c for c in cols if c in g]].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return "\n".join(parts)


def save(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the benchmark CSV and, beside it, a JSON of where it was measured (git SHA, torch, threads, device)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, df.to_csv(index=False))
    atomic_write_text(path.with_suffix(".json"), pd.Series(environment_info()).to_json(indent=2))
    return path


def parameter_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model: parameters with and without embeddings, kernel path (from a latency DataFrame)."""
    return (df.groupby("model", sort=False)[["params", "params_wo_emb", "kernel", "device", "threads"]].first()
            .reset_index())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=["sasrec", "mamba4rec", "mamba2rec", "hydra4rec", "lrurec",
                                                         "gru4rec"])
    parser.add_argument("--lengths", default="50,200,1000,4000", help="comma-separated sequence lengths")
    parser.add_argument("--batch", default="1,256", help="comma-separated batch sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=5.0, help="stop growing L once one call takes longer")
    parser.add_argument("--out", default="outputs/bench/latency.csv", help="CSV to write (with a .json of provenance)")
    parser.add_argument("--llm-profile", default="quick", choices=("smoke", "quick", "full"),
                        help="sizes of the LLM models (gpt4rec, mamrec, llamarec) when --models names them")


def run(args: argparse.Namespace) -> int:
    lengths = [int(x) for x in str(args.lengths).split(",") if x]
    batches = [int(x) for x in str(args.batch).split(",") if x]
    df = bench_latency(args.models, lengths, batches, device=args.device, repeats=args.repeats,
                       budget_s=args.budget_s, llm_profile=args.llm_profile)
    print(format_table(df))
    print(f"\nwrote {save(df, args.out)}")
    return 0
