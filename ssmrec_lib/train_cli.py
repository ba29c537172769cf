"""`python -m ssmrec_lib train --model M --dataset D [--profile smoke|quick|full] [--seed S] [--set key=value ...]`

Writes outputs/runs/<run_id>/:
    config.json   resolved train + model config, overrides, parameter counts, objective, evaluation protocol,
                  dataset summary, kernel path, environment (git SHA, torch, threads, device)
    metrics.json  best-epoch validation and final test metrics, each with its protocol
    log.jsonl     one line per epoch (loss, lr, seconds, validation metrics)
    checkpoint_last.pt / checkpoint_best.pt   (git-ignored)
run_id = <model>_<dataset>_<profile>_s<seed>_<hash of the --set overrides>: the same command reuses a finished
run (prints its metrics; --force retrains from scratch) and resumes an interrupted one.

--set routing: `model.KEY=V` / `train.KEY=V` go to that config; a plain KEY goes where it exists (an error if
both configs have it). Unknown keys or bad values raise ConfigError listing the valid keys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import ConfigError, from_dict, parse_overrides, to_dict
from .profiles import PROFILE_NAMES, profile_overrides

DEFAULT_OUT = "outputs/runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (sasrec, mamba4rec, mamba2rec, hydra4rec, ...)")
    parser.add_argument("--dataset", required=True, help="dataset name (ml-1m, amazon2014-beauty, synthetic, ...)")
    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES, help="training profile (default quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train or model config key (model.d_model=64, lr=1e-3, ...); repeatable")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $SSMREC_DATA_DIR or data/)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"runs folder (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="retrain even if the run already finished")


def route_overrides(model: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split {key: value} into (train overrides, model overrides); see the module docstring."""
    from .models.registry import get_model_class
    from .train import TrainConfig

    train_keys = {f.name for f in fields(TrainConfig)}
    model_keys = {f.name for f in fields(get_model_class(model).config_cls)}
    train: dict[str, Any] = {}
    mdl: dict[str, Any] = {}
    valid = sorted(train_keys) + sorted(f"model.{k}" for k in model_keys)
    for key, value in overrides.items():
        if key.startswith("model."):
            k = key[len("model."):]
            if k not in model_keys:
                raise ConfigError(f"unknown model key {key!r} for {model}. Valid keys: {valid}")
            mdl[k] = value
        elif key.startswith("train."):
            k = key[len("train."):]
            if k not in train_keys:
                raise ConfigError(f"unknown train key {key!r}. Valid keys: {valid}")
            train[k] = value
        elif key in train_keys and key in model_keys:
            raise ConfigError(f"{key!r} exists in both configs: write train.{key} or model.{key}")
        elif key in train_keys:
            train[key] = value
        elif key in model_keys:
            mdl[key] = value
        else:
            raise ConfigError(f"unknown key {key!r}. Valid keys: {valid}")
    return train, mdl


def make_run_id(model: str, dataset: str, profile: str, seed: int, overrides: dict[str, Any]) -> str:
    h = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{model}_{dataset}_{profile}_s{seed}_{h}"


def load_data(dataset: str, data_dir: str | None = None):
    """SequenceData for `dataset` via data.load_dataset ("synthetic": make_synthetic's defaults)."""
    from .data import load_dataset

    return load_dataset(dataset, data_dir=data_dir)


def _kernel_info(model_cfg, device) -> dict[str, Any]:
    from .ssm import kernels

    kernel = getattr(model_cfg, "kernel", None)
    if kernel is None:
        return {"kernel": None}
    ops = ("selective_scan", "ssd", "causal_conv1d", "rms_norm_gated")
    return {"kernel": kernel, "resolved": {op: kernels.path_name(kernel, op, device) for op in ops},
            "available": kernels.describe()}


def resolve_configs(model: str, dataset: str, profile: str, seed: int, overrides: dict[str, Any]):
    """-> (TrainConfig, model config): the profile's settings for (model, dataset), then the --set overrides."""
    from .models.registry import make_model_config
    from .train import TrainConfig

    user_train, user_model = route_overrides(model, dict(overrides))
    if "seed" in user_train and int(user_train["seed"]) != seed:
        raise ConfigError("give the seed with --seed, not --set seed=")
    prof_train, prof_model = profile_overrides(profile, model, dataset)
    cfg = from_dict(TrainConfig, {**prof_train, **user_train, "seed": seed})
    return cfg, make_model_config(model, {**prof_model, **user_model})


def run_experiment(model: str, dataset: str, profile: str = "quick", seed: int = 0,
                   overrides: dict[str, Any] | None = None, data_dir: str | None = None, out: str = DEFAULT_OUT,
                   force: bool = False, hooks=None, data=None) -> dict[str, Any]:
    """Resolve configs, train (or resume / reuse), write the run folder; returns the metrics.json payload.

    `data` (SequenceData) skips loading (notebooks, tests); `hooks` go to the Trainer.
    """
    from .models.registry import build_model
    from .train import Trainer
    from .utils import atomic_write_json, environment_info, seed_everything

    overrides = dict(overrides or {})
    cfg, model_cfg = resolve_configs(model, dataset, profile, seed, overrides)
    run_id = make_run_id(model, dataset, profile, seed, overrides)
    run_dir = Path(out) / run_id
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())

    data = data if data is not None else load_data(dataset, data_dir)
    split = data.split()
    seed_everything(seed)
    net = build_model(model, split.n_items, cfg.max_len, to_dict(model_cfg))
    trainer = Trainer(net, split, cfg, run_dir=run_dir, hooks=hooks, dataset_protocol=data.protocol)
    n_params = {"with_embeddings": net.n_params(True), "without_embeddings": net.n_params(False)}
    atomic_write_json(run_dir / "config.json", {
        "run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
        "overrides": overrides, "train_config": to_dict(cfg), "model_config": to_dict(model_cfg),
        "objective": trainer.objective_name, "n_params": n_params,
        "protocol": {"valid": trainer.protocol("valid"), "test": trainer.protocol("test")},
        "dataset_info": {"name": data.name, "n_users": data.n_users, "n_items": data.n_items,
                         "n_interactions": data.n_interactions, "users_in_split": len(split.train),
                         "dropped_users": split.dropped_users, "protocol": data.protocol},
        "kernel_path": _kernel_info(model_cfg, trainer.device), "environment": environment_info(),
    })
    result = trainer.fit()
    payload = {"run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
               "n_params": n_params, **result}
    atomic_write_json(metrics_path, payload)
    return payload


def format_result(r: dict[str, Any]) -> str:
    lines = [f"run {r['run_id']}: best epoch {r['best_epoch']}, {r['epochs_run']} epochs, "
             f"{r['seconds_per_epoch']:.1f} s/epoch, objective {r['objective']}"]
    for which in ("valid", "test"):
        m = r.get(which) or {}
        lines.append(f"  {which:5s} " + "  ".join(f"{k} {m[k]:.4f}" for k in ("hr@10", "ndcg@10", "mrr@10") if k in m)
                     + f"   [{r['protocol'][which]['ranking']}, history masking {r['protocol'][which]['history_masking']}]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    r = run_experiment(args.model, args.dataset, args.profile, args.seed, parse_overrides(args.overrides),
                       data_dir=args.data_dir, out=args.out, force=args.force)
    print(format_result(r))
    print(f"  written to {Path(args.out) / r['run_id']}")
    return 0
