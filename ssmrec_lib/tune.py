"""Hyperparameter search on the validation split: Optuna's TPE sampler, a median pruner on per-epoch validation
NDCG@10, the study in SQLite (or any SQLAlchemy URL, e.g. PostgreSQL for many machines).

    python -m ssmrec_lib tune --model mamba4rec --dataset ml-1m --profile full --trials 20 --timeout-minutes 120

Each trial is one run through experiment.run_experiment, with the trial's parameters as --set overrides on top of
the profile (and `base` overrides), in its own run folder under <out>/runs: a trial repeated with the same
parameters reuses its run, and an interrupted study continues where it stopped (same storage, same study name).
The objective is the run's best validation NDCG@10. Trials never score the test split (score_test=False): the
test split is scored once, by the final runs of the chosen configuration.

Many workers, one study: `workers` > 1 starts that many local processes on the same study (each with its own
sampler seed, seed + worker index), which together add `trials` trials; a trial is claimed in the storage, so none
is run twice or lost. Across machines, run the same command on each with `--storage` a PostgreSQL or MySQL URL all
reach (SQLite suits one machine); each machine adds its `trials`. Two trials that draw the same parameters share one
run folder: the second waits on a lock file beside it (runs/<key>.lock) and then reuses the finished run.

Search spaces (SPACES) cover what matters per model: lr, users per step, dropout, layers, weight decay, warm-up, and
the state size of the SSMs. A parameter fixed in `base` is not searched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from .errors import UnknownNameError, UserError
from .utils import safe_name

log = logging.getLogger(__name__)
METRIC = "ndcg@10"

# name -> (kind, choices or (low, high)); kinds: "cat" (categorical), "log" (log-uniform float), "float"
Space = dict[str, tuple[str, Any]]
COMMON: Space = {
    "lr": ("log", (2e-4, 3e-3)),
    "batch_size": ("cat", (16, 32, 64)),
    "dropout": ("float", (0.1, 0.5)),
    "weight_decay": ("cat", (0.0, 1e-5, 1e-4, 1e-3)),
    "warmup_steps": ("cat", (0, 400, 1000)),
    "n_layers": ("cat", (1, 2, 3)),
}
SPACES: dict[str, Space] = {
    "sasrec": {**COMMON, "attn_dropout": ("float", (0.0, 0.5))},
    "mamba4rec": {**COMMON, "d_state": ("cat", (16, 32, 64))},
    "mamba2rec": {**COMMON, "d_state": ("cat", (32, 64, 128))},
    "hydra4rec": {**COMMON, "d_state": ("cat", (32, 64, 128)), "mask_prob": ("float", (0.1, 0.4))},
    "gru4rec": {k: v for k, v in COMMON.items() if k != "n_layers"},
    "bert4rec": {**COMMON, "mask_prob": ("float", (0.1, 0.4))},
    "lrurec": COMMON,
}


def suggest(trial, space: Space, fixed: dict[str, Any]) -> dict[str, str]:
    """The trial's overrides (as --set strings) for every parameter of `space` not fixed in `fixed`."""
    out = {}
    for name, (kind, arg) in space.items():
        if name in fixed:
            continue
        if kind == "cat":
            v = trial.suggest_categorical(name, list(arg))
        elif kind == "log":
            v = trial.suggest_float(name, *arg, log=True)
        elif kind == "float":
            v = trial.suggest_float(name, *arg)
        else:
            raise ValueError(f"unknown search kind {kind!r} for {name}")
        out[name] = f"{v:.6g}" if isinstance(v, float) else str(v)  # rounded: a repeated trial reuses its run
    return out


def default_storage(out: str | Path, study: str) -> str:
    return f"sqlite:///{Path(out) / f'{study}.db'}"


def pruning_hook(trial) -> Callable[[str, dict], None]:
    """Trainer hook: report each epoch's validation NDCG@10 to the trial and stop the run when the pruner says so."""
    import optuna

    def hook(event: str, info: dict) -> None:
        if event != "epoch_end":
            return
        trial.report(float(info["valid"][METRIC]), step=int(info["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {info['epoch']}")

    return hook


@contextmanager
def run_lock(folder: Path, overrides: dict[str, Any]):
    """An exclusive lock on the run of `overrides` (one file per parameter set; released when the process ends,
    even by a kill), so two workers never train the same run folder at once."""
    import fcntl

    key = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_storage(url: str):
    """The study storage at `url`; SQLite waits up to a minute for a lock held by another worker."""
    import optuna

    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def _worker(kwargs: dict[str, Any]) -> None:
    """One local worker process of run_study(workers > 1)."""
    logging.basicConfig(level=logging.WARNING)
    run_study(**kwargs)


def run_study(model: str, dataset: str, profile: str = "full", trials: int = 20, timeout_minutes: float | None = None,
              base: dict[str, Any] | None = None, out: str | Path = "outputs/full/tuning", storage: str | None = None,
              study: str | None = None, seed: int = 0, data=None, data_dir: str | None = None,
              startup_trials: int = 5, warmup_epochs: int = 3, workers: int = 1, worker_index: int = 0):
    """Run (or continue) the study `study` (default <model>_<dataset>_<profile>); returns the optuna Study.

    `trials` counts the trials this call adds; `timeout_minutes` stops starting new ones after that time.
    `base`: overrides every trial shares (fixed parameters leave the search). `data` skips loading (tests).
    `workers` > 1: that many local processes share the study and add `trials` in all, worker i trials // workers
    (+ 1 for the first trials % workers), each with the sampler seed seed + i (`worker_index`).
    """
    import optuna

    from .data.spec import parse_dataset_spec
    from .experiment import load_data, run_experiment

    if model not in SPACES:
        raise UnknownNameError(f"no search space for {model!r}; spaces exist for {sorted(SPACES)}")
    base = dict(base or {})
    study_name = safe_name(study or f"{model}_{parse_dataset_spec(dataset).label}_{profile}", "study name")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(out, study_name)
    data = data if data is not None else load_data(dataset, data_dir)
    sampler = optuna.samplers.TPESampler(seed=seed + worker_index, n_startup_trials=startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    st = optuna.create_study(study_name=study_name, storage=open_storage(storage), direction="maximize",
                             sampler=sampler, pruner=pruner, load_if_exists=True)
    st.set_user_attr("model", model)
    st.set_user_attr("dataset", dataset)
    st.set_user_attr("profile", profile)
    st.set_user_attr("base", json.dumps(base, sort_keys=True))
    st.set_user_attr("seed", seed)

    if workers > 1:
        return _run_workers(workers, trials, dict(
            model=model, dataset=dataset, profile=profile, trials=trials, timeout_minutes=timeout_minutes, base=base,
            out=out, storage=storage, study=study_name, seed=seed, data=data, data_dir=data_dir,
            startup_trials=startup_trials, warmup_epochs=warmup_epochs))

    def objective(trial) -> float:
        overrides = {**base, **suggest(trial, SPACES[model], base)}
        with run_lock(out / "runs", overrides):
            r = run_experiment(model, dataset, profile, seed, overrides, out=str(out / "runs"), data=data,
                               hooks=[pruning_hook(trial)], score_test=False)
        trial.set_user_attr("run_id", r["run_id"])
        trial.set_user_attr("overrides", json.dumps(overrides, sort_keys=True))
        trial.set_user_attr("best_epoch", r["best_epoch"])
        trial.set_user_attr("provenance", r["provenance"]["status"])
        return float(r["valid"][METRIC])

    st.optimize(objective, n_trials=trials, timeout=None if timeout_minutes is None else 60 * timeout_minutes,
                catch=(UserError,), gc_after_trial=True)
    return st


def _run_workers(workers: int, trials: int, kwargs: dict[str, Any]):
    """Start `workers` processes on one study (spawned: no state shared but the storage), adding `trials` in all.
    Raises UserError naming a worker that failed."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    share = [trials // workers + (i < trials % workers) for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=({**kwargs, "trials": share[i], "worker_index": i},),
                         name=f"tune-worker-{i}") for i in range(workers) if share[i]]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise UserError(f"tuning workers failed: {', '.join(bad)}; the study keeps their finished trials, and the "
                        "same command continues it")
    return load_study(kwargs["storage"], kwargs["study"])


def best_overrides(st) -> dict[str, Any]:
    """The --set overrides of the study's best completed trial (base + searched parameters)."""
    try:
        best = st.best_trial
    except ValueError as e:
        raise UserError(f"study {st.study_name!r} has no completed trial yet") from e
    return json.loads(best.user_attrs["overrides"])


def chosen_configuration(storage: str | Path, study: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overrides, chosen_by) of a study's best trial, for the final runs (`train --from-study`).

    `storage`: a SQLAlchemy URL or the path of tune's SQLite file; `study`: its name (None: the file's only study).
    chosen_by names the study, its storage, the best trial, its validation NDCG@10 and the trials completed, so a
    run folder (config.json) and the report say which search chose the configuration."""
    import optuna

    url = str(storage)
    if "://" not in url:
        path = Path(url)
        if not path.is_file():
            raise UserError(f"no study file {path}: run `python -m ssmrec_lib tune ...` first (its default "
                            "storage is outputs/<profile>/tuning/<study>.db)")
        url = f"sqlite:///{path}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=open_storage(url))]
    if study is None:
        if len(names) != 1:
            raise UserError(f"{storage} holds {len(names)} studies ({', '.join(names) or 'none'}): name one (--study)")
        study = names[0]
    elif study not in names:
        raise UserError(f"no study {study!r} in {storage}; it holds: {', '.join(names) or 'none'}")
    st = load_study(url, study)
    overrides = best_overrides(st)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in st.trials)
    chosen_by = {"study": study, "storage": str(storage), "trial": st.best_trial.number,
                 f"valid_{METRIC}": float(st.best_value), "trials_completed": done,
                 **{k: st.user_attrs.get(k) for k in ("model", "dataset", "profile")}}
    return overrides, chosen_by


def trials_table(st):
    """One row per trial: number, state, value (best validation NDCG@10), parameters, run id, seconds."""
    df = st.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    if "duration" in df:
        df["seconds"] = df.pop("duration").dt.total_seconds()
    return df


def load_study(storage: str, study: str):
    import optuna

    return optuna.load_study(study_name=study, storage=open_storage(storage))


def find_studies(folder: str | Path) -> list:
    """Every study in the SQLite files under `folder` (tune's default storage), loaded; [] when none."""
    import optuna

    studies = []
    for db in sorted(Path(folder).glob("*.db")):
        url = f"sqlite:///{db}"
        for summary in optuna.get_all_study_summaries(storage=url):
            studies.append(load_study(url, summary.study_name))
    return studies


def importances(st) -> dict[str, float]:
    """fANOVA importance of each searched parameter over the completed trials ({} with fewer than 2)."""
    import optuna

    done = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2 or not done[0].params:
        return {}
    return optuna.importance.get_param_importances(st)


def study_summary(st) -> dict[str, Any]:
    """What notebook 05 prints for a study: its model, dataset, profile, trials by state, best value and the
    chosen configuration (as --set overrides)."""
    states: dict[str, int] = {}
    for t in st.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    summary = {"study": st.study_name, **{k: st.user_attrs.get(k) for k in ("model", "dataset", "profile")},
               "trials": states}
    try:
        summary.update(best_valid_ndcg10=st.best_value, best_trial=st.best_trial.number,
                       best_run=st.best_trial.user_attrs.get("run_id"), chosen=best_overrides(st))
    except (ValueError, UserError):
        summary["chosen"] = None
    return summary
