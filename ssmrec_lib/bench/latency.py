"""`python -m ssmrec_lib bench latency`: inference latency, throughput and memory per model against sequence
length and batch size (the paper's "Latency" column, measured properly).

Method: untrained models at the paper's size (d=64, ML-1M's 3,416 items), inference mode, fixed seed, `warmup`
untimed calls, then `repeats` timed calls of `score(readout(history))` (the full next-item scoring a recommender
serves). Batch-1 latency: median and p95 ms. Throughput: users scored per second at the given batch.
Peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the peak process RSS above the pre-call level,
sampled every millisecond by a background thread (torch allocations are invisible to tracemalloc).
A (model, batch) stops growing L once one call exceeds `budget_s` (recorded as "over budget", not guessed).
`kernels` (e.g. ["ref", "auto"]) times each SSM model once per kernel choice, side by side in the same run
(column `kernel_choice`; the `kernel` column is the path it resolved to); models without a kernel switch
(SASRec, ...) are timed once.
`train_lengths` adds one row per (model, kernel choice, batch, length) with mode "train_step": the mean ms of
a training step's forward + backward in train mode (dropout on) of a full-softmax cross-entropy over every
position (random next-item targets; no optimizer step, no data loading), the part a kernel path changes.
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


def measure_train_step(model: torch.nn.Module, length: int, batch: int, n_items: int, device: torch.device,
                       warmup: int = 1, repeats: int = 3, seed: int = 0) -> dict:
    """Time forward + backward of a full-softmax cross-entropy at every position (train mode), (batch, length)."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items + 1, (batch, length), generator=g).to(device)
    target = torch.randint(1, n_items + 1, (batch * length,), generator=g).to(device)
    lengths = torch.full((batch,), length, dtype=torch.long, device=device)
    sync = device_sync(device)
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits = model.score(model(seq, lengths))  # (B, L, n_items + 1)
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target).backward()

    time_calls(step, 0, warmup=warmup)
    rss = PeakRSS()
    t = time_calls(step, repeats, sync=sync, during=rss)
    model.zero_grad(set_to_none=True)
    model.eval()
    return {"latency_ms_median": t.median_ms, "latency_ms_p95": t.p95_ms,
            "throughput_users_s": float(batch / (t.median_ms / 1000)), "peak_mem_mb": rss.peak / 2**20,
            "repeats": repeats}


def bench_latency(models: list[str], lengths: list[int], batches: list[int], n_items: int = ML1M_ITEMS,
                  device: str = "cpu", warmup: int = 2, repeats: int = 10, budget_s: float = 5.0,
                  overrides: dict[str, dict] | None = None, seed: int = 0, log=print,
                  llm_profile: str = "quick", kernels: list[str] | None = None,
                  train_lengths: list[int] | None = None) -> pd.DataFrame:
    """One row per (model, kernel choice, batch, length). Models are built at their default (paper-size) configs.

    LLM models in `models` give one row per length at batch 1 (bench/llm.py, `llm_profile` sizes).
    kernels: the kernel choices to time each SSM model under (None: the model's own setting, once).
    train_lengths: also time a training step at these lengths (rows with mode "train_step"; module docstring).
    """
    from dataclasses import fields

    from ..models.registry import build_model, get_model_class
    from ..profiles import LLM_MODELS

    dev = torch.device(device)
    if dev.type == "cpu":
        pin_malloc_thresholds()
    rows = []
    max_len = max([*lengths, *(train_lengths or [])])
    llm = [m for m in models if m in LLM_MODELS]
    runs = []
    for name in [m for m in models if m not in LLM_MODELS]:
        switch = "kernel" in {f.name for f in fields(get_model_class(name).config_cls)}
        for choice in (kernels if kernels and switch else [None]):
            runs.append((name, choice))
    for name, choice in runs:
        torch.manual_seed(seed)
        over = dict((overrides or {}).get(name) or {}) | ({"kernel": choice} if choice else {})
        model = build_model(name, n_items=n_items, max_len=max_len, overrides=over or None).to(dev)
        model.eval()
        info = {"model": name, "kernel_choice": choice,
                "params": model.n_params(True), "params_wo_emb": model.n_params(False),
                "kernel": kernel_path(model, dev), "device": str(dev), "threads": torch.get_num_threads()}
        for batch in batches:
            over = False
            for L in sorted(lengths):
                row = {**info, "mode": "inference", "batch": batch, "length": L}
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
                log(f"{name:10s}{f' [{choice}]' if choice else ''} batch {batch:4d} L {L:5d}: "
                    f"{row['latency_ms_median']:9.2f} ms "
                    f"(p95 {row['latency_ms_p95']:.2f}), {row['throughput_users_s']:9.1f} users/s, "
                    f"+{row['peak_mem_mb']:.1f} MB, kernel {info['kernel']}")
            for L in sorted(train_lengths or []):
                row = {**info, "mode": "train_step", "batch": batch, "length": L, "status": "ok"}
                row.update(measure_train_step(model, L, batch, n_items, dev, warmup=min(warmup, 1),
                                              repeats=max(1, min(repeats, 3)), seed=seed))
                rows.append(row)
                log(f"{name:10s}{f' [{choice}]' if choice else ''} batch {batch:4d} L {L:5d}: "
                    f"{row['latency_ms_median']:9.2f} ms per training step (fwd + bwd)")
    if llm:
        from .llm import bench_llm_latency

        rows += bench_llm_latency(llm, lengths, n_items, device=str(dev), warmup=min(warmup, 1), repeats=repeats,
                                  budget_s=budget_s, profile=llm_profile, seed=seed, log=log)
    return pd.DataFrame(rows)


def format_table(df: pd.DataFrame) -> str:
    """A per-model text table (what the command prints)."""
    cols = ["mode", "batch", "length", "latency_ms_median", "latency_ms_p95", "throughput_users_s", "peak_mem_mb", "status"]
    parts = []
    is_llm = df["pipeline"].notna() if "pipeline" in df else pd.Series(False, index=df.index)
    choice = df["kernel_choice"].fillna("") if "kernel_choice" in df else pd.Series("", index=df.index)
    for (name, kc), g in df[~is_llm].groupby([df["model"], choice], sort=False):
        r = g.iloc[0]
        parts.append(f"\n== {name}{f' (kernel={kc!r})' if kc else ''}: {r['params']:,} params "
                     f"({r['params_wo_emb']:,} without embeddings), kernel path {r['kernel']}, device {r['device']}, "
                     f"{r['threads']} threads")
        parts.append(g[[c for c in cols if c in g]].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
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
