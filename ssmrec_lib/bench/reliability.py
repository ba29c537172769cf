"""`python -m ssmrec_lib reliability [--slow]`: every fault and bad-input trial of issue 16, one report.

Categories (each a list of Trials, trial.py; the same functions the tests run):
    kill -9 during training   kill.py: the train command SIGKILLed at random moments, rerun to the end, compared
                              with an uninterrupted run (fast: 2 trials on SASRec; --slow: 20 over SASRec,
                              Mamba4Rec, 2Mamba4Rec, Hydra4Rec, up to 2 kills each)
    disk full                 faults.py: a checkpoint and a report written onto a full disk
    damaged files             faults.py: cache, run folder files and downloads damaged
    interrupted workbook      workbook_faults.py
    bad input                 bad_inputs.py: the table of malformed inputs, with the message each got
Writes <out>/report.md (per category: trials run, survived, lost nothing; every trial that failed, named as an
open defect; the bad inputs with their messages) and <out>/trials.json (every trial). The scratch work goes to a
temporary folder, removed afterwards.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from ..utils import atomic_write_text, environment_info
from .trial import Trial

# fast: SASRec only; an SSM child loads the C++ scan kernel, whose build folder other processes on a shared machine
# may hold locked for minutes (ssm/cpu_ext.py), so the SSMs are in the slow series
FAST_KILLS = dict(trials=2, models=("sasrec",), max_kills=1)
SLOW_KILLS = dict(trials=20, models=("sasrec", "mamba4rec", "mamba2rec", "hydra4rec"), max_kills=2)


def categories(slow: bool = False, kill_trials: int | None = None, jobs: int = 1,
               cli=None) -> dict[str, Callable[[Path], list[Trial]]]:
    """{category: run(scratch folder) -> trials}, in report order. `cli`: the ssmrec_lib.cli package, handed in by
    the command (the library never imports it), so command-line rows run in this process (bad_inputs.run_cli)."""
    from . import bad_inputs, faults, kill, workbook_faults

    k = dict(SLOW_KILLS if slow else FAST_KILLS)
    if kill_trials is not None:
        k["trials"] = kill_trials
    return {
        kill.CATEGORY: lambda root: kill.kill_series(root, k["trials"], k["models"], max_kills=k["max_kills"],
                                                     jobs=jobs),
        faults.DISK: faults.disk_full_trials,
        faults.DAMAGE: faults.damage_trials,
        workbook_faults.CATEGORY: lambda root: [workbook_faults.workbook_trial(root)],
        bad_inputs.CATEGORY: lambda root: bad_inputs.bad_input_trials(root, cli),
    }


def run_suite(slow: bool = False, only: list[str] | None = None, kill_trials: int | None = None, jobs: int = 1,
              cli=None, log: Callable[[str], None] = print) -> tuple[list[Trial], dict[str, float]]:
    """Run the categories (those whose name starts with one of `only`, if given) -> (trials, seconds per category)."""
    trials, seconds = [], {}
    with tempfile.TemporaryDirectory(prefix="ssmrec-reliability-") as tmp:
        for i, (name, run) in enumerate(categories(slow, kill_trials, jobs, cli).items()):
            if only and not any(name.startswith(o) for o in only):
                continue
            log(f"{name} ...")
            t0 = time.perf_counter()
            got = run(Path(tmp) / f"c{i}")
            for t in got:  # the scratch folder's name means nothing once it is gone
                t.detail = t.detail.replace(str(Path(tmp).resolve()), "<tmp>").replace(str(tmp), "<tmp>")
            seconds[name] = time.perf_counter() - t0
            trials += got
            log(f"{name}: {sum(t.ok for t in got)}/{len(got)} ok in {seconds[name]:.0f} s")
    return trials, seconds


def summary(trials: list[Trial]) -> list[dict]:
    """One row per category: trials, survived, lost nothing, all good."""
    order = list(dict.fromkeys(t.category for t in trials))
    rows = []
    for c in order:
        ts = [t for t in trials if t.category == c]
        rows.append({"category": c, "trials": len(ts), "survived": sum(t.survived for t in ts),
                     "lost_nothing": sum(t.lost_nothing for t in ts), "ok": sum(t.ok for t in ts)})
    return rows


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(trials: list[Trial], seconds: dict[str, float], slow: bool) -> str:
    env = environment_info()
    rows = summary(trials)
    lines = ["# Reliability report (issue 16)", "",
             f"{'Slow' if slow else 'Fast'} series, git `{env['git_sha']}`, torch {env['torch']}, "
             f"{env['cpu_count']} CPU(s), written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
             f"`python -m ssmrec_lib reliability{' --slow' if slow else ''}`. *Survived*: the work ended usable "
             "(finished, or stopped with a clear error naming the file and the fix). *Lost nothing*: nothing was "
             "lost or damaged and nothing damaged was used (a killed and resumed run's results equal an "
             "uninterrupted run's exactly).", "",
             "| category | trials | survived | lost nothing | seconds |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['category']} | {r['trials']} | {r['survived']} | {r['lost_nothing']} | "
                     f"{seconds.get(r['category'], 0):.0f} |")
    bad = [t for t in trials if not t.ok]
    lines += ["", "## Open defects", ""]
    lines += [f"- **{t.category}: {md_cell(t.name)}**: {md_cell(t.detail)}" for t in bad] or ["None."]
    kills = [t for t in trials if t.data.get("kills")]
    if kills:
        landed = sum(t.data["kills_landed"] for t in kills)
        by_model = Counter(t.data["model"] for t in kills)
        lines += ["", "## kill -9 trials", "",
                  f"{len(kills)} trials ({', '.join(f'{m}: {n}' for m, n in by_model.items())}), "
                  f"{landed} of {sum(t.data['kills'] for t in kills)} kills landed while training ran "
                  f"({sum(t.data.get('kills_after_checkpoint', 0) for t in kills)} after a checkpoint was written, "
                  "so the rerun resumed from it; the others restarted); "
                  f"{sum(t.lost_nothing for t in kills)} resumed runs identical to the uninterrupted one.", "",
                  "| trial | identical | what happened |", "|---|---|---|"]
        lines += [f"| {md_cell(t.name)} | {'yes' if t.lost_nothing else 'NO'} | {md_cell(t.detail)} |" for t in kills]
    for cat in dict.fromkeys(t.category for t in trials):
        ts = [t for t in trials if t.category == cat and not t.data.get("kills")]
        if not ts:
            continue
        lines += ["", f"## {cat}", "", "| trial | survived | lost nothing | message / what happened |",
                  "|---|---|---|---|"]
        lines += [f"| {md_cell(t.name)} | {'yes' if t.survived else 'NO'} | {'yes' if t.lost_nothing else 'NO'} | "
                  f"{md_cell(t.detail)} |" for t in ts]
    return "\n".join(lines) + "\n"


def write_report(trials: list[Trial], seconds: dict[str, float], out: str | Path, slow: bool = False) -> Path:
    """<out>/report.md and <out>/trials.json (module docstring); returns the report's path."""
    out = Path(out)
    atomic_write_text(out / "trials.json", json.dumps([t.as_dict() for t in trials], indent=1, default=str) + "\n")
    path = out / "report.md"
    atomic_write_text(path, report_markdown(trials, seconds, slow))
    return path
