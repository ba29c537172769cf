"""LlamaRec experiment: retriever (a finished LRURec run, or one trained now with the project trainer), then
(from-scratch backbones only) full LM training on next-title pairs, then LoRA fine-tuning of the verbalizer
ranking on training-split examples, validation-based epoch selection, one test pass. Files as runs.py.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import to_dict
from .backbones import LETTERS, letter_token_ids, load_backbone
from .llamarec import (LlamaRecRanker, add_lora, llamarec_config, load_retriever, lora_targets_for,
                       retrieve_candidates)
from .lm_train import finetune
from .prompts import next_title_examples, ranking_prompt
from .runs import (ADAPTER_DIR, BACKBONE_DIR, dataset_info, eval_users, latency_ms, llm_protocol,
                   lm_param_counts, save_backbone, write_run)
from .ranking import list_ranks, metrics_from_ranks


def _retriever(cfg, data, dataset, seed, data_dir, out: Path):
    from ..experiment import run_experiment

    run_dir = Path(cfg.retriever_run) if cfg.retriever_run else None
    if run_dir is None:
        r = run_experiment("lrurec", dataset, cfg.retriever_profile, seed, data=data, out=str(out))
        run_dir = out / r["run_id"]
    net, max_len = load_retriever(run_dir, data)
    return net, max_len, str(run_dir)


def run_llamarec(data, dataset, profile, seed, overrides, run_id, run_dir: Path, data_dir,
                 identity: dict, started_sha: str | None = None) -> dict[str, Any]:
    cfg = llamarec_config(profile, overrides)
    split = data.split()
    titles = data.item_titles
    C = cfg.n_candidates
    retr, retr_len, retr_dir = _retriever(cfg, data, dataset, seed, data_dir, run_dir.parent)
    bb = load_backbone(cfg.backbone, titles[1:], extra_tokens=LETTERS, d_model=cfg.d_model, n_layers=cfg.n_layers)
    train = split.train[: cfg.max_train_users] if cfg.max_train_users else split.train
    log: list[dict] = []
    if not bb.pretrained and cfg.pretrain_epochs:  # stage 0: the tiny LM learns the title language
        pairs = next_title_examples(train, titles, 2, cfg.max_items, cfg.max_title_words, seed=seed)
        for lg in finetune(bb.model, bb.tokenizer, pairs, epochs=cfg.pretrain_epochs, lr=cfg.lr,
                           batch_size=32, max_length=cfg.max_length, seed=seed):
            log.append({"stage": "full LM on next-title pairs", **lg})
    # the adapter's base: a from-scratch backbone's weights (after stage 0); a pretrained one's tokenizer only
    save_backbone(bb.model, bb.tokenizer, run_dir / BACKBONE_DIR, weights=not bb.pretrained)
    letters = letter_token_ids(bb.tokenizer)
    model = add_lora(bb.model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, lora_targets_for(bb.model))
    ranker = LlamaRecRanker(retr, retr_len, model, bb.tokenizer, letters, titles, C, cfg.max_items,
                            cfg.max_title_words, cfg.max_length)
    # ranking examples: history s[:-1] -> target s[-1] of each training sequence, kept if retrieved
    tr = [s for s in train if len(s) >= 2]
    cands = retrieve_candidates(retr, [s[:-1] for s in tr], retr_len, C)
    pairs = []
    for s, c in zip(tr, cands):
        hit = np.flatnonzero(c == s[-1])
        if len(hit):
            pairs.append((ranking_prompt(s[:-1], c, titles, cfg.max_items, cfg.max_title_words), f" {LETTERS[hit[0]]}"))
    users = eval_users(len(split.valid_history), cfg.max_eval_users, seed)

    def evaluate(which):
        hs, tg = split.history_and_target(which)
        return metrics_from_ranks(list_ranks(ranker.rank_lists([hs[u] for u in users]), tg[users]))

    best = {"ndcg@10": -1.0}

    def on_epoch(epoch, loss):
        v = evaluate("valid")
        log.append({"stage": "LoRA ranking", "epoch": epoch, "loss": loss, "valid": v})
        if v["ndcg@10"] > best["ndcg@10"]:
            best.update(v, epoch=epoch, state=copy.deepcopy({k: t for k, t in model.state_dict().items() if "lora_" in k}))

    t0 = time.perf_counter()
    logs = finetune(model, bb.tokenizer, pairs, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                    max_length=cfg.max_length, seed=seed, on_epoch=on_epoch) if pairs else []
    train_seconds = time.perf_counter() - t0
    if "state" in best:
        model.load_state_dict(best.pop("state"), strict=False)
    else:  # no training example had its target retrieved: evaluate the untrained ranker once
        best.update(evaluate("valid"), epoch=0)
    best_epoch = best.pop("epoch")
    model.save_pretrained(run_dir / ADAPTER_DIR)  # the selected epoch's LoRA adapter (weights.py reloads it)
    test = evaluate("test")
    lat = latency_ms(ranker.recommend, [split.test_history[u] for u in users])
    examples = [{"user": int(u), "list": ranker.recommend(split.test_history[u])} for u in users[:3]]
    n_trainable = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    n_params = lm_param_counts(model)
    backbone = {**bb.info(), "n_params": n_params["with_embeddings"] - n_trainable, "lora_params": n_trainable,
                "stage0_full_training": bool(not bb.pretrained and cfg.pretrain_epochs)}
    ranking = (f"LRURec top {C} (history masked) re-ranked by LLM verbalizer over letters A..{LETTERS[C - 1]}; "
               f"targets the retriever missed = miss")
    proto = {w: llm_protocol(w, ranking, cfg.max_items, len(users), len(split.valid_history), seed, data.protocol,
                             True) for w in ("valid", "test")}
    # the retriever alone on the same users (LRURec's own order of its C candidates): what the LLM adds
    retr_lists = retrieve_candidates(retr, [split.test_history[u] for u in users], retr_len, C)
    retr_test = metrics_from_ranks(list_ranks(retr_lists, split.test_target[users]))
    recall = 1.0 - retr_test["miss_rate"]
    config = {"run_id": run_id, "model": "llamarec", "dataset": dataset, "profile": profile, "seed": seed,
              "overrides": overrides, "model_config": to_dict(cfg), "backbone": backbone, "retriever_run": retr_dir,
              "objective": "LoRA: CE of the target's letter at the answer position (training split, retrieved only)",
              "n_params": n_params, "protocol": proto, "dataset_info": dataset_info(data, split),
              "train_config": {"max_len": cfg.max_items, "device": "cpu", "n_rank_pairs": len(pairs),
                               "n_train_sequences": len(tr)},
              "weights": {"backbone": BACKBONE_DIR, "adapter": ADAPTER_DIR,
                          "base": "backbone/" if not bb.pretrained else bb.name}}
    metrics = {"run_id": run_id, "model": "llamarec", "dataset": dataset, "profile": profile, "seed": seed,
               "n_params": n_params, "backbone": backbone, "valid": best, "test": test, "best_epoch": best_epoch,
               "epochs_run": len(logs), "seconds_per_epoch": train_seconds / max(1, len(logs)),
               "objective": config["objective"], "protocol": proto, "latency": lat,
               "retriever_test_recall@20": recall, "retriever_test": retr_test,
               "example_lists": examples}  # test lists of the first 3 evaluation users (reload checks)
    return write_run(run_dir, config, metrics, log, identity, started_sha)
