"""One run: resolve its configs, compute its identity, train it or reuse it, write its run folder.

Run identity: everything that determines a run's result, as one JSON-able dict (`run_identity`):
    model, seed, the RESOLVED train config (every field except those that cannot change a result: the progress
    bar, the CPU thread count, the checkpoint cadence; `device` resolved to the device type that trains), the
    RESOLVED model config (every default filled in), the training objective, the dataset fingerprint (content
    hash of the prepared sequences, item count and titles: `dataset_fingerprint`), the evaluation protocol,
    IDENTITY_VERSION (bumped by a commit that changes results while every config stays the same), and, for a
    data-parallel run only (torchrun, WORLD_SIZE > 1: distributed.py), "distributed": {world_size, backend}; the
    key is absent from every single-process identity, which is therefore what it always was.
    run_id = <model>_<dataset>_<profile>_s<seed>_<first 12 hex digits of sha256(identity)>

So a changed model default, another CSV file behind the same dataset name, another protocol or another
objective gives another folder, and is trained anew. A folder is reused only when its config.json holds exactly
the identity computed now; a folder of the right name whose identity differs (an older layout, a hand edit)
raises instead of being reused. Resume (Trainer._load_last) compares the same identity.

Files written to <out>/<run_id>/:
    config.json   identity (+ its hash), resolved configs, overrides, parameter counts, objective, protocol,
                  dataset summary and fingerprint, kernel path, environment (git SHA, torch, threads, device)
    metrics.json  best-epoch validation and final test metrics, each with its protocol; `trained`: git SHA,
                  date and identity hash of the code that trained it
    log.jsonl     one line per epoch; checkpoint_last.pt / checkpoint_best.pt (git-ignored)
Every payload returned carries `provenance`: {"status": "trained now" | "reused", "git_sha", "finished_at"}.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, from_dict, to_dict
from .errors import UserError
from .utils import dict_diff as identity_diff
from .profiles import profile_overrides

log = logging.getLogger(__name__)
DEFAULT_OUT = "outputs/runs"
# Bump when a commit changes what a run produces while every config stays the same (a maths fix, a new data
# order). Runs trained before the bump then no longer match, and are trained anew.
IDENTITY_VERSION = 1
# Train-config fields that cannot change a result: display, CPU threads (float rounding only), checkpoint cadence
# (resume is bit-exact: tests/unit/test_train.py).
NOT_IDENTITY = ("progress", "num_threads", "checkpoint_every")
# Train-config fields added after runs were committed (issue 13's speed levers): left out of the identity while
# they hold their TrainConfig default, so every run trained before they existed keeps its identity and run id;
# a run that sets one (it can change results, at least by float rounding) gets its own identity.
OMIT_AT_DEFAULT = ("ce_chunk", "torch_compile")
# Train-config fields added after runs were committed, left out of the identity of a full-softmax run (loss="ce",
# where they must keep their defaults: TrainConfig checks), so those runs keep the identities they were trained under.
LOSS_KEYS = ("loss", "n_sampled", "sampler")


# ------------------------------------------------------------------------------------------------ configs

def route_overrides(model: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split {key: value} into (train overrides, model overrides).

    `model.KEY=V` / `train.KEY=V` go to that config; a plain KEY goes where it exists (an error if both configs
    have it). Unknown keys raise ConfigError listing the valid keys.
    """
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


def load_data(dataset: str, data_dir: str | None = None):
    """SequenceData for `dataset`, a name or a dataset spec ("csv:FILE?sep=\\t&...": data/spec.py), via
    data.load_dataset ("synthetic": make_synthetic's defaults)."""
    from .data import load_dataset

    return load_dataset(dataset, data_dir=data_dir)


def kernel_info(model_cfg, device) -> dict[str, Any]:
    """The kernel switch of an SSM model config and the path each op resolves to on `device` (None otherwise)."""
    from .ssm import kernels

    kernel = getattr(model_cfg, "kernel", None)
    if kernel is None:
        return {"kernel": None}
    ops = ("selective_scan", "ssd", "causal_conv1d", "rms_norm_gated")
    return {"kernel": kernel, "resolved": {op: kernels.path_name(kernel, op, device) for op in ops},
            "available": kernels.describe()}


# ------------------------------------------------------------------------------------------------ identity

def dataset_fingerprint(data) -> str:
    """sha256 of what a model can learn from: item count, every user's sequence (order and length) and titles.

    Original user/item ids, timestamps and the source paths do not enter: two files that prepare to the same
    sequences train the same run. 64 hex digits; ~10 ms for ML-1M.
    """
    h = hashlib.sha256()
    lengths = np.fromiter((len(s) for s in data.sequences), dtype=np.int64, count=len(data.sequences))
    h.update(f"n_items={int(data.n_items)};n_users={len(lengths)};".encode())
    h.update(lengths.tobytes())
    if len(lengths):
        h.update(np.concatenate(data.sequences).astype(np.int64).tobytes())
    h.update(json.dumps(list(data.item_titles or []), ensure_ascii=False).encode())
    return h.hexdigest()


def run_identity(model: str, seed: int, train_config: dict[str, Any], model_config: dict[str, Any],
                 objective: str, fingerprint: str, protocol: dict[str, Any],
                 distributed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity dict (module docstring); every argument must already be resolved (no "auto" left).
    `distributed` ({world_size, backend}) only for a data-parallel run; None leaves the key out."""
    identity = {"identity_version": IDENTITY_VERSION, "model": model, "seed": int(seed),
                "train_config": {k: v for k, v in identity_train_config(train_config).items()
                                 if not (k in LOSS_KEYS and train_config.get("loss", "ce") == "ce")},
                "model_config": dict(sorted(model_config.items())), "objective": objective,
                "dataset_fingerprint": fingerprint, "protocol": protocol}
    if distributed is not None:
        identity["distributed"] = dict(distributed)
    return identity


def identity_train_config(train_config: dict[str, Any]) -> dict[str, Any]:
    """The train-config part of the identity: every field but NOT_IDENTITY, and OMIT_AT_DEFAULT fields only when
    they differ from their default."""
    from .train import TrainConfig

    defaults = to_dict(TrainConfig())
    return {k: v for k, v in sorted(train_config.items()) if k not in NOT_IDENTITY
            and not (k in OMIT_AT_DEFAULT and v == defaults[k])}


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def make_run_id(model: str, dataset: str, profile: str, seed: int, identity: dict[str, Any]) -> str:
    """<model>_<dataset>_<profile>_s<seed>_<12 hex of the identity hash>: readable, and unique per identity.

    <dataset> is the spec's folder-safe label (data/spec.py): a registered name as it is, `csv-<file stem>` for
    a file (`csv:data/u.data` -> `csv-u`), never a path."""
    from .data.spec import parse_dataset_spec
    from .utils import safe_name

    parts = [safe_name(model, "model"), safe_name(parse_dataset_spec(dataset).label, "dataset label"),
             safe_name(profile, "profile"), f"s{int(seed)}", identity_hash(identity)[:12]]
    return "_".join(parts)


def sequence_identity(model: str, dataset: str, profile: str, seed: int, overrides: dict[str, Any], data,
                      split=None):
    """Identity of a sequence-model run -> {identity, run_id, cfg, model_cfg, net, split}.

    Builds the model (cheap) because the objective `auto` resolves from it (causal -> next_item, ...); the caller
    seeds the RNG first when `net` is the one it will train.
    """
    from .distributed import from_env
    from .models.registry import build_model
    from .train import evaluation_protocol, objective_name, resolve_device

    cfg, model_cfg = resolve_configs(model, dataset, profile, seed, overrides)
    split = split if split is not None else data.split()
    net = build_model(model, split.n_items, cfg.max_len, to_dict(model_cfg))
    objective = objective_name(cfg, net)
    train = {**to_dict(cfg), "device": resolve_device(cfg.device).type}
    protocol = {which: evaluation_protocol(cfg, which, data.protocol) for which in ("valid", "test")}
    dist = from_env(train["device"])  # None unless torchrun started W > 1 processes
    identity = run_identity(model, seed, train, to_dict(model_cfg), objective, dataset_fingerprint(data), protocol,
                            dist.identity() if dist is not None else None)
    return {"identity": identity, "run_id": make_run_id(model, dataset, profile, seed, identity), "cfg": cfg,
            "model_cfg": model_cfg, "net": net, "split": split}


FINISHED_KEYS = ("test", "trained")  # every finished metrics.json holds these (written last, atomically)


def finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """metrics.json of `run_dir` when it marks a finished run: present, parses as a JSON object and holds
    FINISHED_KEYS. A missing, half-written, truncated or hand-damaged file is never taken for a finished run
    (None; a damaged one is logged, and retraining overwrites it)."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        log.warning("%s does not parse (%s): the run is not taken as finished and will be (re)trained", path, e)
        return None
    missing = [k for k in FINISHED_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        log.warning("%s lacks %s: the run is not taken as finished and will be (re)trained", path, missing)
        return None
    return payload


def reuse_finished(run_dir: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics payload of a finished run whose identity equals `identity` (marked reused), else None.

    Finished means a metrics.json that parses and is complete (`finished_metrics`); a half-written folder
    (config.json alone, a truncated metrics.json) is resumed or retrained, never reused.
    Raises UserError when the folder is finished but holds another identity (never reused silently).
    """
    payload = finished_metrics(run_dir)
    if payload is None:
        return None
    stored = read_identity(run_dir)
    if stored != identity:
        diff = identity_diff(stored or {}, identity)
        raise UserError(f"{run_dir} is a finished run of another identity (differs in {diff}); it is not reused. "
                        "Retrain it with force=True (--force) or move the folder away.")
    trained = payload.get("trained") or {}
    payload["provenance"] = {"status": "reused", "git_sha": trained.get("git_sha"),
                             "finished_at": trained.get("finished_at")}
    return payload


def read_identity(run_dir: Path) -> dict[str, Any] | None:
    """The identity recorded in `run_dir`/config.json (None without one). A config.json that does not parse
    raises UserError naming it: what the folder holds cannot be told, so it is neither reused nor resumed."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return None
    try:
        conf = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path} does not parse ({e}): the run folder is damaged and is neither reused nor "
                        "resumed. Retrain it with force=True (--force), or delete the folder.") from None
    if not isinstance(conf, dict):
        raise UserError(f"{path} is not a JSON object: the run folder is damaged. Retrain it with force=True "
                        "(--force), or delete the folder.")
    return conf.get("identity")


def trained_stamp(identity: dict[str, Any], started_sha: str | None = None) -> dict[str, Any]:
    """What metrics.json records about the code that trained it: the commit checked out when training STARTED
    (the process runs the code it loaded then; `started_sha`, else asked now), the finish time, the identity."""
    from .utils import git_sha

    return {"git_sha": started_sha or git_sha(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "identity_hash": identity_hash(identity)}


# ------------------------------------------------------------------------------------------------ one run

def run_experiment(model: str, dataset: str, profile: str = "quick", seed: int = 0,
                   overrides: dict[str, Any] | None = None, data_dir: str | None = None, out: str = DEFAULT_OUT,
                   force: bool = False, hooks=None, data=None, score_test: bool = True,
                   chosen_by: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolve configs, train (or resume / reuse by identity), write the run folder; returns the metrics payload.

    `chosen_by` (tune.chosen_configuration): the study whose best trial chose `overrides`, recorded in config.json
    beside them; not part of the identity (the overrides themselves are).

    `score_test=False` (tuning trials, tune.py): the test split is never scored and metrics.json says so; such a
    run is not reused where test metrics are asked for.

    `data` (SequenceData) skips loading (notebooks, tests); its content, not its name, enters the identity.
    `hooks` go to the Trainer. `force` deletes a finished run of the same identity and trains it again.
    """
    from .distributed import barrier, is_writer, setup
    from .train import Trainer
    from .utils import atomic_write_json, child_path, environment_info, remove_stale_temporaries, seed_everything

    overrides = dict(overrides or {})
    data = data if data is not None else load_data(dataset, data_dir)
    seed_everything(seed)  # the model built below is the one trained: its init draws from this seed
    r = sequence_identity(model, dataset, profile, seed, overrides, data)
    identity, run_id, cfg, model_cfg, net, split = (r[k] for k in ("identity", "run_id", "cfg", "model_cfg",
                                                                     "net", "split"))
    run_dir = child_path(out, run_id, "run id")
    setup(identity["train_config"]["device"])  # joins torchrun's process group; nothing without torchrun
    writer = is_writer()  # rank 0 of a data-parallel run, or the only process: the one that writes files
    if force and run_dir.exists() and writer:
        shutil.rmtree(run_dir)
    barrier()  # data-parallel: no rank reads the folder before rank 0 has cleared it
    reused = reuse_finished(run_dir, identity)
    if reused is not None:
        if score_test and reused.get("test") is None:
            raise UserError(f"{run_dir} is a tuning trial (its test split was never scored); train the final run "
                            "into another --out folder, or retrain it here with force=True (--force)")
        return reused
    stored = read_identity(run_dir)
    if stored is not None and stored != identity:  # an unfinished folder of another identity: never resumed
        raise UserError(f"{run_dir} holds an unfinished run of another identity (differs in "
                        f"{identity_diff(stored, identity)}); delete it or pass force=True (--force)")

    if writer and remove_stale_temporaries(run_dir):  # a killed process's half-written files (utils.atomic_path)
        log.info("%s: removed temporary files left by an interrupted process", run_dir)
    trainer = Trainer(net, split, cfg, run_dir=run_dir, hooks=hooks, dataset_protocol=data.protocol,
                      identity=identity, score_test=score_test)
    n_params = {"with_embeddings": net.n_params(True), "without_embeddings": net.n_params(False)}
    conf = {
        "run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
        "overrides": overrides, "identity": identity, "identity_hash": identity_hash(identity),
        "train_config": to_dict(cfg), "model_config": to_dict(model_cfg),
        "objective": trainer.objective_name, "n_params": n_params,
        "protocol": {"valid": trainer.protocol("valid"), "test": trainer.protocol("test")},
        "dataset_info": {"name": data.name, "n_users": data.n_users, "n_items": data.n_items,
                         "n_interactions": data.n_interactions, "users_in_split": len(split.train),
                         "dropped_users": split.dropped_users, "protocol": data.protocol,
                         "fingerprint": identity["dataset_fingerprint"]},
        "kernel_path": kernel_info(model_cfg, trainer.device), "environment": environment_info(),
    }
    if trainer.dist is not None:
        conf["distributed"] = identity["distributed"]
    if chosen_by:
        conf["chosen_by"] = chosen_by
    if writer:
        atomic_write_json(run_dir / "config.json", conf)
    started_sha = conf["environment"]["git_sha"]
    result = trainer.fit()
    payload = {"run_id": run_id, "model": model, "dataset": dataset, "profile": profile, "seed": seed,
               "n_params": n_params, **result, "test_scored": score_test,
               "trained": trained_stamp(identity, started_sha)}
    if writer:
        atomic_write_json(run_dir / "metrics.json", payload)
    return trained_now(payload)


def trained_now(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (a metrics.json just written, with `trained`) marked as trained by this call."""
    return {**payload, "provenance": {"status": "trained now", "git_sha": payload["trained"]["git_sha"],
                                      "finished_at": payload["trained"]["finished_at"]}}


def expected_identity(run_dir: str | Path, data) -> dict[str, Any]:
    """The identity HEAD computes for the command that made `run_dir` (its model, dataset, profile, seed and
    overrides, read from config.json) on `data`. Sequence models only (LLM runs: llm.experiment)."""
    conf = json.loads((Path(run_dir) / "config.json").read_text())
    return sequence_identity(conf["model"], conf["dataset"], conf["profile"], int(conf["seed"]),
                             conf.get("overrides") or {}, data)["identity"]


def provenance_line(payload: dict[str, Any]) -> str:
    """'trained now at <sha> (<date>)' or 'reused: trained at <sha> on <date>, identity matches'."""
    p = payload.get("provenance") or {}
    sha = (p.get("git_sha") or "unknown")[:12]
    when = p.get("finished_at") or "an unknown date"
    if p.get("status") == "reused":
        return f"reused: trained at {sha} on {when} (identity matches this code)"
    return f"trained now at {sha} ({when})"


def format_result(r: dict[str, Any]) -> str:
    """Printable summary of a metrics payload: provenance, epochs, valid and test metrics with their protocol."""
    lines = [f"run {r['run_id']}: {provenance_line(r)}", f"  best epoch {r['best_epoch']}, {r['epochs_run']} epochs, "
             f"{r['seconds_per_epoch']:.1f} s/epoch, objective {r['objective']}"]
    for which in ("valid", "test"):
        m = r.get(which) or {}
        lines.append(f"  {which:5s} " + "  ".join(f"{k} {m[k]:.4f}" for k in ("hr@10", "ndcg@10", "mrr@10") if k in m)
                     + f"   [{r['protocol'][which]['ranking']}, history masking {r['protocol'][which]['history_masking']}]")
    return "\n".join(lines)
