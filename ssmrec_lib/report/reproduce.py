"""`python -m ssmrec_lib report`: the reproduction table of the paper's Table 3 (issue 4, section 6) from finished
runs, beside the paper's rows and the targets, with seconds per epoch and the best epoch; plus the validation
curves of those runs.

    python -m ssmrec_lib report --runs outputs/full/runs --dataset ml-1m --out outputs/full

writes <out>/reproduction_<dataset>.csv / .md (every number read from a run folder's metrics.json and
config.json; the Markdown carries the protocol, each run's training config, git SHA and kernel path) and
<out>/reproduction_<dataset>_curves.png. Nothing here trains or tunes: it reads what the runs wrote.

Targets (TARGETS): the paper's Table 3 value for each SSM row; for SASRec an HR@10 of 0.30, what a well-tuned
SASRec reaches under this protocol (the paper's 0.224 is a weak baseline). "gap" = ours - target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import paper
from .tables import check_identities, choose_variants, collect_runs, current_only, load_log, to_markdown

METRICS = ("hr@10", "ndcg@10", "mrr@10")
CORE_MODELS = ("sasrec", "mamba4rec", "mamba2rec", "hydra4rec")
TARGETS: dict[str, dict[str, float]] = {  # ML-1M (issue 4, section 6); other datasets: the paper's row (targets_for)
    "sasrec": {"hr@10": 0.30},
    "mamba4rec": {"hr@10": 0.306, "ndcg@10": 0.178, "mrr@10": 0.138},
    "mamba2rec": {"hr@10": 0.340, "ndcg@10": 0.193, "mrr@10": 0.148},
    "hydra4rec": {"hr@10": 0.308, "ndcg@10": 0.179, "mrr@10": 0.140},
}


# Published results on the same protocol (leave-one-out, full ranking, history not masked), as issue 13 lists them;
# shown beside ours, never used as targets. (dataset -> [(who, hr@10, ndcg@10, mrr@10, source)])
ANCHORS: dict[str, list[tuple[str, float | None, float | None, float | None, str]]] = {
    "ml-1m": [
        ("Mamba4Rec, its own paper", 0.3121, 0.1822, 0.1425, "Liu et al. 2024 (RecBole, full ranking, unmasked)"),
        ("SASRec, CE-trained reproductions", 0.31, None, None, "about 0.31 HR@10 (issue 13)"),
        ("HSTU-large (generative-recommenders)", 0.33, 0.19, None, "near 0.33 HR@10 / 0.19 NDCG@10 (issue 13)"),
    ],
}


def anchor_lines(dataset: str) -> list[str]:
    """Markdown lines listing the published anchors for `dataset` (empty when none are known)."""
    rows = ANCHORS.get(dataset, [])
    if not rows:
        return []
    fmt = lambda v: "-" if v is None else f"{v:.4f}".rstrip("0").rstrip(".")  # noqa: E731
    return ["Public anchors on the same protocol (others' published numbers, for scale; not targets):", "",
            "| who | hr@10 | ndcg@10 | mrr@10 | source |", "|---|---|---|---|---|",
            *(f"| {w} | {fmt(h)} | {fmt(n)} | {fmt(m)} | {s} |" for w, h, n, m, s in rows), ""]


def targets_for(dataset: str, model: str) -> dict[str, float]:
    """ML-1M: TARGETS. Elsewhere: the paper's row for the model on that dataset (or its stand-in's), if any."""
    if dataset == "ml-1m":
        return TARGETS.get(model, {})
    if paper.is_offline_sample(dataset):  # a few dozen users: no target means anything there
        return {}
    p = paper.reference(dataset)[1].set_index("model")
    name = paper.MODEL_TO_PAPER.get(model, model)
    if name not in p.index:
        return {}
    return {m: float(p.loc[name, m]) for m in METRICS if pd.notna(p.loc[name, m])}


def _mean_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def reproduction_table(runs: pd.DataFrame, dataset: str, models=CORE_MODELS) -> pd.DataFrame:
    """Per model: our test metrics (mean over seeds), the paper's row, the target and the gap, best epoch,
    epochs run, seconds per epoch, validation NDCG@10, parameters. runs: tables.collect_runs(...); where a
    model has several configurations the validation picks one (choose_variants). `models`: the rows, in order
    (write_report: the four core models, then every other model that has runs)."""
    p = paper.reference(dataset)[1].set_index("model")
    runs = choose_variants(runs)
    rows = []
    for model in models:
        g = runs[(runs["dataset"] == dataset) & (runs["model"] == model)] if not runs.empty else runs
        if g.empty:
            continue
        name = paper.MODEL_TO_PAPER.get(model, model)
        r: dict = {"model": model, "paper_name": name, "seeds": int(g["seed"].nunique()),
                   "overrides": g["overrides"].iloc[0], "variants": g["variants"].iloc[0]}
        for m in METRICS:
            r[m] = float(g[m].mean())
            r[f"sd_{m}"] = float(g[m].std(ddof=1)) if len(g) > 1 else None  # sample sd over seeds
        for m in METRICS:
            r[f"paper_{m}"] = float(p.loc[name, m]) if name in p.index and pd.notna(p.loc[name, m]) else None
        target = targets_for(dataset, model)
        for m in METRICS:
            r[f"target_{m}"] = target.get(m)
            r[f"gap_{m}"] = r[m] - target[m] if m in target else None
        r["targets_met"] = all(r[m] >= t for m, t in target.items()) if target else None
        r.update({"valid_ndcg@10": float(g["valid_ndcg@10"].mean()), "best_epoch": int(g["best_epoch"].iloc[0]),
                  "best_epochs": ", ".join(str(int(e)) for e in g.sort_values("seed")["best_epoch"]),
                  "epochs_run": int(g["epochs_run"].iloc[0]), "sec_per_epoch": float(g["sec_per_epoch"].mean()),
                  # converged: early stopping fired (best epoch >= patience epochs before the last), every seed
                  "converged": bool(g["stopped_early"].fillna(False).astype(bool).all())
                  if "stopped_early" in g and (g["epochs_run"].fillna(0) > 0).any() else None,  # Pop: not trained
                  "cpu_hours_to_best": _mean_or_none([cpu_hours_to_best(d, int(b), t) for d, b, t in zip(
                      g["run_dir"], g["best_epoch"], g["threads"] if "threads" in g else [None] * len(g))]),
                  "objective": g["objective"].iloc[0], "params": g["params"].iloc[0],
                  "params_wo_emb": g["params_wo_emb"].iloc[0], "kernel": g["kernel"].iloc[0],
                  "git_sha": g["git_sha"].iloc[0], "run_dir": ";".join(g["run_dir"])})
        rows.append(r)
    return pd.DataFrame(rows)


def cpu_hours_to_best(run_dir: str | Path, best_epoch: int, threads: int | None) -> float | None:
    """Core-hours a run spent up to and including its best epoch: (training + validation seconds of epochs
    0..best_epoch, summed over every sitting, from log.jsonl) x the torch threads it ran on / 3600. None without a
    log (Pop, which trains nothing, has none)."""
    log = load_log(run_dir)
    if log.empty or "epoch" not in log:
        return None
    upto = log[log["epoch"] <= best_epoch].drop_duplicates("epoch", keep="last")
    seconds = float(upto["train_seconds"].fillna(0).sum() + upto["eval_seconds"].fillna(0).sum())
    return seconds * max(1, int(threads or 1)) / 3600.0


def _run_notes(table: pd.DataFrame) -> list[str]:
    notes = []
    for run_dir in ";".join(table["run_dir"]).split(";"):
        cfg = json.loads((Path(run_dir) / "config.json").read_text())
        tc, mc = cfg["train_config"], cfg["model_config"]
        keep = ("epochs", "batch_size", "lr", "schedule", "warmup_steps", "optimizer", "weight_decay", "clip_norm",
                "patience", "max_len", "bf16", "mask_prob", "mask_last_prob")
        met = json.loads((Path(run_dir) / "metrics.json").read_text())
        trained = met.get("trained") or {}
        notes.append(f"- `{cfg['run_id']}` (trained at {trained.get('git_sha', '?')[:12]} on "
                     f"{trained.get('finished_at', '?')[:10]}; {cfg['objective']}, seed {cfg['seed']}, threads "
                     f"{cfg['environment'].get('torch_threads', '?')}): train "
                     + ", ".join(f"{k}={tc[k]}" for k in keep if k in tc)
                     + "; model " + ", ".join(f"{k}={v}" for k, v in mc.items())
                     + chosen_note(cfg.get("chosen_by")))
    return notes


def chosen_note(chosen_by: dict | None) -> str:
    """'; configuration chosen by study S (trial t of n completed, valid ndcg@10 v)' for a run trained with
    `train --from-study`, else ''."""
    if not chosen_by:
        return ""
    v = chosen_by.get("valid_ndcg@10")
    return (f"; configuration chosen by study `{chosen_by.get('study')}` (`{chosen_by.get('storage')}`: trial "
            f"{chosen_by.get('trial')} of {chosen_by.get('trials_completed')} completed"
            + (f", valid ndcg@10 {v:.4f})" if isinstance(v, (int, float)) else ")"))


def curves_figure(table: pd.DataFrame):
    """The validation curves of each row's first run (reproduction_table's `run_dir`), or None without logs."""
    from .plotting import learning_curves_by_model

    logs = {m: load_log(d.split(";")[0]) for m, d in zip(table["model"], table["run_dir"])}
    return learning_curves_by_model(logs) if any(not lg.empty for lg in logs.values()) else None


def paired_section(runs: pd.DataFrame, dataset: str) -> list[str]:
    """Markdown lines: the paired tests between the chosen configurations (report/stats.py), or why there are none."""
    from .stats import pairwise_table

    chosen = choose_variants(runs[runs["dataset"] == dataset]) if not runs.empty else runs
    table = pairwise_table(chosen, dataset) if not chosen.empty else pd.DataFrame()
    if table.empty:
        return ["Paired tests: none (they need two models whose runs kept per-user test metrics).", ""]
    return ["Paired tests over test users (per-user NDCG@10 averaged over each model's seeds; mean difference "
            "A - B, paired-bootstrap 95% CI, sign-flip permutation p-value; report/stats.py):", "",
            to_markdown(table), ""]


def missing_rows(table: pd.DataFrame, dataset: str) -> list[str]:
    """Markdown lines: each row of the paper's table for `dataset` that has no row of ours, and why (a text model on
    data without item titles, an unidentified baseline, or no finished run yet)."""
    ours = set(table["paper_name"]) if not table.empty else set()
    name = paper.dataset_name(dataset)
    lines = []
    for _, r in paper.reference(dataset)[1].iterrows():
        if r["model"] in ours:
            continue
        model = next((k for k, v in paper.MODEL_TO_PAPER.items() if v == r["model"]), r["model"].lower())
        if r["model"] in paper.UNIDENTIFIED:
            why = paper.UNIDENTIFIED[r["model"]]
        elif model in paper.TEXT_MODELS and name in paper.STAND_INS:
            why = "needs item text: not available offline (the Amazon 2014 stand-in files carry no titles)"
        elif model in paper.TEXT_MODELS:
            why = f"no finished run yet: `python -m ssmrec_lib llm --model {model} --dataset '{dataset}'`"
        else:
            why = f"no finished run yet: `python -m ssmrec_lib train --model {model} --dataset '{dataset}'`"
        fig = ", ".join(f"{m} {r[m]:.3f}" for m in METRICS if pd.notna(r[m]))
        lines.append(f"- {r['model']} (paper: {fig or 'no figures'}): {why}")
    return ["Rows of the paper's table without a row of ours:", *lines, ""] if lines else []


def protocol_lines(runs: pd.DataFrame) -> list[str]:
    """One 'Protocol: ...' line per distinct evaluation protocol among `runs`, naming its models when several differ
    (the sequence models rank every item; the text models rank a generated list)."""
    groups = runs.groupby("protocol", sort=False)["model"].apply(lambda m: ", ".join(sorted(set(m))))
    if len(groups) == 1:
        return [f"Protocol: {groups.index[0]}."]
    return [f"Protocol ({models}): {proto}." for proto, models in groups.items()]


def data_line(runs: pd.DataFrame, dataset: str) -> list[str]:
    """The data every row was trained on (from the first run's config.json), and the warning when it is only the
    Amazon '23 offline sample (paper.subset_note)."""
    info = json.loads((Path(runs["run_dir"].iloc[0]) / "config.json").read_text()).get("dataset_info") or {}
    src = (info.get("protocol") or {}).get("source_format")
    line = (f"Data: `{dataset}`: {info.get('n_users', 0):,} users, {info.get('n_items', 0):,} items, "
            f"{info.get('n_interactions', 0):,} interactions" + (f" ({src})" if src else "") + ".")
    note = paper.subset_note(dataset, info)
    return [*([f"**{note}**", ""] if note else []), line]


def write_report(runs_root: str | Path, dataset: str, out: str | Path,
                 data_dir: str | None = None) -> tuple[Path, Path, Path | None]:
    """Write reproduction_<dataset>.csv/.md (and the validation-curve figure) under `out`.

    Only runs whose identity matches this code enter (tables.check_identities); the others are listed as left
    out, with the reason."""
    from ..data.spec import safe_label
    from ..utils import atomic_write_text, environment_info

    runs = collect_runs(runs_root)
    if not runs.empty:
        runs = runs[runs["dataset"] == dataset].reset_index(drop=True)
    runs, stale = current_only(check_identities(runs, data_dir))
    present = [] if runs.empty else sorted(set(runs["model"]))
    table = reproduction_table(runs, dataset, [*CORE_MODELS, *(m for m in present if m not in CORE_MODELS)])
    if table.empty:
        raise SystemExit(f"no finished runs for {dataset} whose identity matches this code under {runs_root} "
                         f"(looked for */metrics.json; left out: {stale or 'none'})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"reproduction_{safe_label(dataset)}"  # a spec's '?', '&', '=' and '/' never reach a file name
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    atomic_write_text(csv_path, table.to_csv(index=False))
    short = table[["model", "overrides", "seeds", *METRICS, *(f"sd_{m}" for m in METRICS),
                   *(f"paper_{m}" for m in METRICS), *(f"gap_{m}" for m in METRICS),
                   "targets_met", "valid_ndcg@10", "best_epochs", "epochs_run", "converged", "sec_per_epoch",
                   "cpu_hours_to_best", "params", "params_wo_emb"]].assign(
        sec_per_epoch=lambda d: d["sec_per_epoch"].map("{:.1f}".format),
        cpu_hours_to_best=lambda d: d["cpu_hours_to_best"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"))
    env = environment_info()
    title, _, stand_in = paper.reference(dataset)
    target_line = ("targets: the paper's row; SASRec: HR@10 0.30" if dataset == "ml-1m"
                   else "none: an offline sample is no benchmark" if paper.is_offline_sample(dataset)
                   else "targets: the paper's row for the model, where it has one")
    md = [f"# Reproduction of the paper's {title} on {dataset}", "",
          *([f"**{stand_in}**", ""] if stand_in else []),
          *data_line(runs, dataset),
          "Test metrics with the best-validation checkpoint, scored once.", *protocol_lines(runs),
          "Metrics are means over the seeds run; sd_* = their sample standard deviation. "
          f"gap = ours - target ({target_line}). sec_per_epoch = mean training "
          "seconds per epoch as logged by each run (validation excluded). converged = early stopping fired in "
          "every seed (the best epoch lies `patience` epochs before the last). cpu_hours_to_best = core-hours to "
          "the best epoch (training + validation seconds of epochs 0..best, every sitting, x the run's torch "
          "threads; mean over seeds; on a shared machine, so an upper bound of the cost).", "",
          to_markdown(short), "", *missing_rows(table, dataset), *anchor_lines(dataset),
          *paired_section(runs, dataset),
          "Configurations compared on validation (the row above uses the best):",
          *(f"- {m}: {v}" for m, v in zip(table["model"], table["variants"])), "",
          "Runs (each one's identity, recomputed by this code from its command and the dataset, matches the one "
          "it was trained under):", *_run_notes(table), "",
          *(["Left out (identity does not match this code):", *(f"- {s}" for s in stale), ""] if stale else []),
          f"Written by `python -m ssmrec_lib report` at git {env['git_sha']} from the run folders above "
          f"(runs trained at git {', '.join(sorted(set(table['git_sha'].astype(str))))}; kernel paths: "
          f"{'; '.join(sorted(set(k for k in table['kernel'].astype(str) if k)))})."]
    atomic_write_text(md_path, "\n".join(md) + "\n")
    fig_path = None
    fig = curves_figure(table)
    if fig is not None:
        fig_path = out / f"{stem}_curves.png"
        fig.savefig(fig_path, dpi=110, bbox_inches="tight")
    return csv_path, md_path, fig_path
