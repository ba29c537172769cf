"""Run folders for the LLM recommenders, in the same layout as `train` (read by report/tables.flatten_run):

    outputs/runs/<run_id>/config.json   model, dataset, profile, seed, overrides, model_config, backbone record
                                        (name, architecture, n_params, pretrained, tokenizer), n_params,
                                        protocol, dataset_info, environment
    outputs/runs/<run_id>/metrics.json  valid (best epoch) and test metrics, n_params, protocol, latency
    outputs/runs/<run_id>/log.jsonl     one line per fine-tuning epoch (loss, seconds, valid metrics)
    outputs/runs/<run_id>/backbone/, adapter/   fine-tuned weights (save_backbone here; weights.py reloads them;
                                                git-ignored)
Model selection: the fine-tuning epoch with the best validation NDCG@10 is kept; the test split is scored once.
Evaluation users: all, or a seeded subset of `max_eval_users` (the same users for valid and test; protocol says).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..evaluate import protocol_dict
from ..utils import atomic_write_json, environment_info
from .ranking import list_ranks, metrics_from_ranks

BACKBONE_DIR = "backbone"
ADAPTER_DIR = "adapter"


def save_backbone(model, tokenizer, folder: Path, weights: bool = True) -> Path:
    """save_pretrained of `model` (unless weights=False) and `tokenizer` into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if weights:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def eval_users(n_users: int, max_eval_users: int, seed: int) -> np.ndarray:
    """Sorted user indices: all, or a seeded subset of max_eval_users."""
    if not max_eval_users or max_eval_users >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed + 12345).choice(n_users, size=max_eval_users, replace=False))


def evaluate_lists(recommend: Callable[[np.ndarray], list[int]], histories: Sequence[np.ndarray],
                   targets: np.ndarray, users: np.ndarray) -> dict[str, float]:
    """Mean HR/NDCG/MRR@5/10/20 (+ miss_rate, n_users) of recommend(history) lists over `users`."""
    lists = [recommend(histories[u]) for u in users]
    return metrics_from_ranks(list_ranks(lists, targets[users]))


def latency_ms(recommend: Callable[[np.ndarray], Any], histories: Sequence[np.ndarray], n: int = 20,
               threads: int = 1) -> dict:
    """Median / mean wall ms per user of one recommendation at batch 1 (after one warm-up call).

    Measured with `threads` torch CPU threads (default 1): at batch 1 a tiny model's ops are microseconds, and on
    a busy 2-core machine 2 threads made the same call 30-300x slower (thread hand-off), which measures the
    machine, not the model. The thread count is recorded.
    """
    import torch

    hs = list(histories[:n])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        recommend(hs[0])
        times = []
        for h in hs:
            t0 = time.perf_counter()
            recommend(h)
            times.append(1000.0 * (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(before)
    return {"median_ms_per_user": float(np.median(times)), "mean_ms_per_user": float(np.mean(times)),
            "n_users": len(times), "batch": 1, "device": "cpu", "threads": threads}


def lm_param_counts(model) -> dict[str, int]:
    """{with_embeddings, without_embeddings}: the second leaves out the token embedding and LM head matrices."""
    total = sum(p.numel() for p in model.parameters())
    emb = {id(model.get_input_embeddings().weight): model.get_input_embeddings().weight.numel()}
    out = model.get_output_embeddings()
    if out is not None:
        emb[id(out.weight)] = out.weight.numel()
    return {"with_embeddings": int(total), "without_embeddings": int(total - sum(emb.values()))}


def llm_protocol(which: str, ranking: str, max_len: int, n_users: int, total_users: int, seed: int,
                 dataset_protocol: dict | None, mask_history: bool = False) -> dict:
    p = protocol_dict(split=which, mode="full", mask_history=mask_history, max_len=max_len, ties="pessimistic",
                      n_negatives=None, negative_sampling=None, dataset_protocol=dataset_protocol)
    p["ranking"] = ranking
    p["eval_users"] = (f"all {total_users}" if n_users == total_users
                       else f"{n_users} of {total_users} (seeded subset, seed {seed})")
    return p


def write_run(run_dir: Path, config: dict, metrics: dict, log: list[dict], identity: dict,
              started_sha: str | None = None) -> dict:
    """Write config.json (with the run's identity), log.jsonl and metrics.json (with `trained`, written last: a
    folder with metrics.json is finished); returns the metrics as written."""
    from ..experiment import identity_hash, trained_stamp

    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**config, "identity": identity, "identity_hash": identity_hash(identity),
              "environment": environment_info()}
    metrics = {**metrics, "trained": trained_stamp(identity, started_sha)}
    atomic_write_json(run_dir / "config.json", config)
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def dataset_info(data, split) -> dict:
    return {"name": data.name, "n_users": data.n_users, "n_items": data.n_items,
            "n_interactions": data.n_interactions, "users_in_split": len(split.train),
            "dropped_users": split.dropped_users, "protocol": data.protocol}


def backbone_label(b: dict | None) -> str | None:
    """'gpt2-tiny (399,744 params, NOT pretrained)' for LLM runs, so no one mistakes it for GPT-2 or Llama-2-7B."""
    if not b:
        return None
    n = b.get("n_params")
    size = f"{n:,} params, " if isinstance(n, int) else ""
    return f"{b.get('name')} ({size}{'pretrained' if b.get('pretrained') else 'NOT pretrained'})"
