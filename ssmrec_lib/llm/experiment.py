"""`run_llm_experiment(model, dataset, ...)`: fine-tune, select on validation, test once, write the run folder.

models: "gpt4rec" (default backbone gpt2-tiny), "mamrec" (GPT4Rec pipeline, default backbone mamba-tiny),
"llamarec" (LRURec top-20 + LLM verbalizer ranking, default backbone llama-tiny; see llamarec.py).
Profiles (sizes of the from-scratch backbone and of the fine-tuning / evaluation sets): profiles.py GEN_PROFILES
and LLAMAREC_PROFILES (smoke: seconds, for tests and CI; quick: minutes on 2 CPU cores; full: every user).
run_id = <model>_<dataset>_<profile>_s<seed>_<hash of the run's identity> (experiment.py: the resolved config, the
dataset's content, the seed); a finished run is reused only when its identity matches, and says so.
The run folder keeps the fine-tuned weights (weights.py: backbone/, LlamaRec also adapter/; git-ignored).
"""

from __future__ import annotations

import copy
import shutil
import time
from typing import Any

from ..config import ConfigError, to_dict
from ..errors import UnknownNameError
from ..profiles import LLM_MODELS
from ..utils import child_path, git_sha, seed_everything
from .gpt4rec import GPT4Rec, GPT4RecConfig, gen_config
from .lm_train import finetune
from .prompts import next_title_examples
from .runs import (BACKBONE_DIR, dataset_info, eval_users, evaluate_lists, latency_ms, llm_protocol,
                   lm_param_counts, save_backbone, write_run)


def run_llm_experiment(model: str, dataset: str, profile: str = "quick", seed: int = 0,
                       overrides: dict[str, Any] | None = None, data_dir: str | None = None,
                       out: str = "outputs/runs", force: bool = False, data=None) -> dict[str, Any]:
    """Train + evaluate one LLM recommender; returns the metrics.json payload (see runs.py for the files)."""
    from ..experiment import load_data, make_run_id, reuse_finished, trained_now

    if model not in LLM_MODELS:
        raise UnknownNameError(f"unknown LLM model {model!r}; available: {', '.join(LLM_MODELS)}")
    overrides = dict(overrides or {})
    data = data if data is not None else load_data(dataset, data_dir)
    if not data.item_titles:
        raise ConfigError(f"dataset {dataset!r} has no item titles: the LLM recommenders need item text")
    identity = llm_identity(model, profile, seed, overrides, data)
    run_id = make_run_id(model, dataset, profile, seed, identity)
    run_dir = child_path(out, run_id, "run id")
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    reused = reuse_finished(run_dir, identity)
    if reused is not None:
        return reused
    started = git_sha()  # the code this process runs (metrics.json's `trained`)
    seed_everything(seed)
    if model == "llamarec":
        from .llamarec_run import run_llamarec
        metrics = run_llamarec(data, dataset, profile, seed, overrides, run_id, run_dir, data_dir, identity, started)
    else:
        cfg = gen_config(model, profile, overrides)
        metrics = _run_generative(model, data, dataset, profile, seed, overrides, cfg, run_id, run_dir, identity,
                                  started)
    return trained_now(metrics)


def llm_identity(model: str, profile: str, seed: int, overrides: dict[str, Any], data) -> dict[str, Any]:
    """experiment.run_identity of an LLM run: its resolved config (which fixes the evaluation users, the
    ranking and the budget), the dataset's content and the seed; CPU only."""
    from ..experiment import dataset_fingerprint, run_identity

    if model == "llamarec":
        from .llamarec import llamarec_config
        cfg = llamarec_config(profile, overrides)
    else:
        cfg = gen_config(model, profile, overrides)
    return run_identity(model, seed, {"device": "cpu"}, to_dict(cfg), "llm", dataset_fingerprint(data),
                        {"kind": "llm lists: ranking and users as config.json's protocol, fixed by the config"})


def _run_generative(model, data, dataset, profile, seed, overrides, cfg: GPT4RecConfig, run_id, run_dir,
                    identity, started_sha: str | None = None):
    split = data.split()
    rec = GPT4Rec(cfg, data.item_titles)
    train = split.train[: cfg.max_train_users] if cfg.max_train_users else split.train
    pairs = next_title_examples(train, data.item_titles, cfg.examples_per_user, cfg.max_items, cfg.max_title_words,
                                seed=seed, eos=rec.tokenizer.eos_token or "", **rec.marks())
    users = eval_users(len(split.valid_history), cfg.max_eval_users, seed)
    best = {"ndcg@10": -1.0}
    log: list[dict] = []

    def on_epoch(epoch: int, loss: float) -> None:
        t0 = time.perf_counter()
        v = evaluate_lists(rec.recommend, split.valid_history, split.valid_target, users)
        log.append({"epoch": epoch, "loss": loss, "eval_seconds": time.perf_counter() - t0, "valid": v})
        if v["ndcg@10"] > best["ndcg@10"]:
            best.update(v, epoch=epoch, state=copy.deepcopy(rec.model.state_dict()))

    t_train = time.perf_counter()
    logs = finetune(rec.model, rec.tokenizer, pairs, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                    max_length=cfg.max_length, seed=seed, max_steps_per_epoch=cfg.max_steps_per_epoch,
                    on_epoch=on_epoch)
    train_seconds = time.perf_counter() - t_train
    for rec_log, lg in zip(log, logs):
        rec_log.update(train_seconds=lg["train_seconds"], steps=lg["steps"])
    rec.model.load_state_dict(best.pop("state"))
    best_epoch = best.pop("epoch")
    save_backbone(rec.model, rec.tokenizer, run_dir / BACKBONE_DIR)  # the selected epoch (weights.py reloads it)
    test = evaluate_lists(rec.recommend, split.test_history, split.test_target, users)
    lat = latency_ms(rec.recommend, [split.test_history[u] for u in users])
    titles = data.item_titles
    examples = [{"history_tail": [titles[int(i)] for i in split.test_history[u][-3:]],
                 "queries": rec.generate_queries(split.test_history[u]),
                 "target": titles[int(split.test_target[u])],
                 "list": rec.recommend(split.test_history[u])} for u in users[:3]]
    n_params = lm_param_counts(rec.model)
    ranking = (f"generated list: {cfg.n_queries} beam-search queries -> BM25 top {cfg.per_query_k} each -> "
               f"{cfg.merge} merge to {cfg.top_k}; items not in the list = miss")
    proto = {w: llm_protocol(w, ranking, cfg.max_items, len(users), len(split.valid_history), seed, data.protocol,
                             cfg.exclude_history) for w in ("valid", "test")}
    backbone = rec.backbone.info()
    config = {"run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
              "overrides": overrides, "model_config": to_dict(cfg), "backbone": backbone,
              "objective": "causal LM on (history titles -> next title), training split only",
              "n_params": n_params, "protocol": proto, "dataset_info": dataset_info(data, split),
              "train_config": {"max_len": cfg.max_items, "device": "cpu", "epochs": cfg.epochs, "lr": cfg.lr,
                               "batch_size": cfg.batch_size, "n_pairs": len(pairs)},
              "weights": {"backbone": BACKBONE_DIR}}
    metrics = {"run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
               "n_params": n_params, "backbone": backbone, "valid": best, "test": test, "best_epoch": best_epoch,
               "epochs_run": len(logs), "seconds_per_epoch": train_seconds / max(1, len(logs)),
               "objective": config["objective"], "protocol": proto, "latency": lat,
               "example_queries": examples}  # first 3 evaluation users: queries and test list (reload checks)
    return write_run(run_dir, config, metrics, log, identity, started_sha)
