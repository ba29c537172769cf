"""LLM recommenders in `bench latency`: batch-1 wall time per user of the whole pipeline, untrained, CPU.

A recommendation from these models is not one `score(readout(history))` call, so they are timed apart:
    gpt4rec / mamrec   prompt from the last `max_items` titles -> beam search of k queries (max_new_tokens each)
                       -> BM25 top per_query_k per query -> merge to top_k
    llamarec           LRURec top-20 (history masked) -> one LM forward over the ranking prompt -> verbalizer sort
Method: the LLM profile's sizes (`llm_profile`, default quick: d=64, 2 layers), from-scratch backbones with their
random initial weights, n_items titles "item <i>" (a word-level vocabulary of n_items + 6 tokens: ML-1M's title
vocabulary is of the same order), random histories of length L. An untrained LM seldom emits EOS, so beam search
runs to max_new_tokens: an upper bound for a trained model's generation. The prompt holds the last max_items
titles, so L changes only the retriever's input (LlamaRec). Batch 1 only (the paper's latency column); rows carry
the backbone label and the pipeline. Peak memory as latency.measure (process RSS above the pre-call level).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..profiles import LLM_MODELS
from .memory import PeakRSS
from .timer import time_calls, time_once

PIPELINES = {"gpt4rec": "GPT2 beam-search queries -> BM25 -> merge",
             "mamrec": "Mamba LM beam-search queries -> BM25 -> merge",
             "llamarec": "LRURec top-20 -> Llama LM verbalizer ranking (LoRA)"}


def build_pipeline(model: str, n_items: int, max_len: int, profile: str = "quick", seed: int = 0
                   ) -> tuple[Callable[[np.ndarray], list[int]], dict[str, Any]]:
    """-> (recommend(history) -> ranked item ids, info: params, params_wo_emb, backbone label, pipeline)."""
    from ..llm.runs import backbone_label, lm_param_counts

    torch.manual_seed(seed)
    titles = [""] + [f"item {i}" for i in range(1, n_items + 1)]
    if model in ("gpt4rec", "mamrec"):
        from ..llm.gpt4rec import GPT4Rec, gen_config

        rec = GPT4Rec(gen_config(model, profile, {}), titles)
        counts, label, recommend = lm_param_counts(rec.model), backbone_label(rec.backbone.info()), rec.recommend
        extra = {"with_embeddings": 0, "without_embeddings": 0}
    elif model == "llamarec":
        from ..llm.backbones import LETTERS, letter_token_ids, load_backbone
        from ..llm.llamarec import LlamaRecRanker, add_lora, llamarec_config, lora_targets_for
        from ..models.registry import build_model

        cfg = llamarec_config(profile, {})
        retr = build_model("lrurec", n_items, max_len).eval()
        bb = load_backbone(cfg.backbone, titles[1:], extra_tokens=LETTERS, d_model=cfg.d_model, n_layers=cfg.n_layers)
        label = backbone_label(bb.info())  # before LoRA, as the run's label (the adapter is counted in params)
        lm = add_lora(bb.model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, lora_targets_for(bb.model)).eval()
        ranker = LlamaRecRanker(retr, max_len, lm, bb.tokenizer, letter_token_ids(bb.tokenizer), titles,
                                cfg.n_candidates, cfg.max_items, cfg.max_title_words, cfg.max_length)
        counts, recommend = lm_param_counts(lm), ranker.recommend
        extra = {"with_embeddings": retr.n_params(True), "without_embeddings": retr.n_params(False)}
    else:
        raise ValueError(f"not an LLM model: {model!r} (LLM models: {', '.join(LLM_MODELS)})")
    info = {"params": counts["with_embeddings"] + extra["with_embeddings"],
            "params_wo_emb": counts["without_embeddings"] + extra["without_embeddings"],
            "backbone": label, "pipeline": PIPELINES[model], "llm_profile": profile}
    return recommend, info


def measure_pipeline(recommend: Callable[[np.ndarray], Any], length: int, n_items: int, warmup: int = 1,
                     repeats: int = 10, seed: int = 0) -> dict:
    """Median / p95 ms of `repeats` batch-1 calls on fresh random histories of `length` items (after warm-up)."""
    rng = np.random.default_rng(seed)
    hists = [rng.integers(1, n_items + 1, size=length) for _ in range(warmup + repeats)]
    with torch.inference_mode():
        rss = PeakRSS()
        t = time_calls(recommend, repeats, warmup=warmup, args=[(h,) for h in hists], during=rss)
    return {"latency_ms_median": t.median_ms, "latency_ms_p95": t.p95_ms,
            "throughput_users_s": float(1000.0 / t.median_ms), "peak_mem_mb": rss.peak / 2**20,
            "repeats": repeats}


def bench_llm_latency(models: list[str], lengths: list[int], n_items: int, device: str = "cpu",
                      warmup: int = 1, repeats: int = 10, budget_s: float = 5.0, profile: str = "quick",
                      seed: int = 0, log=print) -> list[dict]:
    """Rows (one per model and length, batch 1) in latency.bench_latency's columns plus backbone, pipeline."""
    rows = []
    for name in models:
        recommend, info = build_pipeline(name, n_items, max(lengths), profile, seed)
        base = {"model": name, **info, "kernel": "n/a (transformers, CPU)", "device": "cpu",
                "threads": torch.get_num_threads(), "batch": 1}
        over = False
        for L in sorted(lengths):
            row = {**base, "length": L}
            if device != "cpu":
                rows.append({**row, "status": "cpu only"})
                continue
            if over:
                rows.append({**row, "status": "over budget"})
                continue
            one = time_once(lambda: recommend(np.ones(L, dtype=np.int64)))
            reps = repeats if one * repeats < budget_s * 4 else max(1, int(budget_s * 4 / max(one, 1e-9)))
            row.update(measure_pipeline(recommend, L, n_items, min(warmup, reps), reps, seed), status="ok")
            over = one > budget_s
            rows.append(row)
            log(f"{name:10s} batch    1 L {L:5d}: {row['latency_ms_median']:9.2f} ms "
                f"(p95 {row['latency_ms_p95']:.2f}), {row['throughput_users_s']:9.1f} users/s, "
                f"+{row['peak_mem_mb']:.1f} MB, {info['backbone']}")
    return rows
