"""`python -m ssmrec_lib workbook`: run the numbered notebooks through papermill and render HTML reports.

For a profile (smoke | quick | full) the runner executes, in order:
  01_data_exploration   once, over the profile's datasets
  02_ssm_theory         once
  03_train              once per (model, dataset, seed), sequence models first, then the LLM models (GPT4Rec,
                        MamRec, LlamaRec; runner.py picks the pipeline); a finished run is reused only when its
                        identity (experiment.py) matches exactly, unless --force; index.html lists which were
  04_latency_profiling  once, over the sequence models (LLM runs time their own pipeline at batch 1; see 05)
  05_results            once, reading everything the runs wrote
into outputs/<profile>/<name>.ipynb, renders each twice (render.py: <name>.html, the reader's report without code,
and <name>.code.html, the whole notebook; maths as MathML, no script from the network), and writes
outputs/<profile>/index.html: the headline (results beside the paper, the figures: landing.py), then every report,
run and result file. Consecutive training steps of sequence models run side by side (`jobs` worker processes,
default: one per CPU core, each kernel on cores/jobs threads: on 2 cores two 1-thread trainings finish sooner than
one 2-thread training after another, docs/training_speed.md); every other step runs alone (04 times inference, the
LLM steps may reuse a run another step trains). The console shows one line per step and, while a training step runs, one per epoch
(progress.py); papermill's and the kernels' messages go to outputs/<profile>/workbook.log. A failing notebook
stops the run with the failing cell's error; its partial output notebook and HTML are kept. The index is rewritten
after every step: a step is "ok" only once its notebook ran to the end (an interrupted one shows "interrupted", a
killed process leaves it "pending"); running the same command again redoes it, and the trained runs it reaches are
resumed or reused by identity.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.spec import format_dataset_spec, parse_dataset_spec
from ..errors import UnknownNameError, UserError
from ..profiles import LLM_MODELS, WORKBOOK_PROFILES
from ..utils import atomic_write_text, child_path, environment_info, safe_name
from .landing import headline_html
from .progress import EpochTail
from .render import CODE_SUFFIX, render_html

ROOT = Path(__file__).resolve().parents[2]  # the repository (ssmrec_lib/report/workbook.py)
NOTEBOOKS = ROOT / "notebooks"

@dataclass
class Step:
    notebook: str  # file name under notebooks/
    output: str  # stem under outputs/<profile>/
    parameters: dict[str, Any]
    title: str
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    files: list[str] = field(default_factory=list)
    side_by_side: int = 1  # how many steps ran at once with this one (its group's worker processes)


def plan(profile: str, datasets: list[str] | None, models: list[str] | None, out_dir: Path,
         data_dir: str | None, force: bool, overrides: dict[str, Any] | None = None,
         seeds: list[int] | None = None) -> list[Step]:
    """The profile's steps in order. `overrides` (--set) go to every sequence-model training step (03_train's
    `overrides`; they enter each run's identity, so runs trained with the same --set by `train` are reused);
    `seeds` replaces the profile's seeds."""
    if profile not in WORKBOOK_PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; known profiles: {sorted(WORKBOOK_PROFILES)}")
    p = WORKBOOK_PROFILES[profile]
    for key, value in (overrides or {}).items():
        if "," in f"{key}{value}":
            raise UserError(f"--set {key}={value}: the workbook passes settings comma-separated, so a value may "
                            "not contain a comma")
    set_text = ",".join(f"{k}={v}" for k, v in (overrides or {}).items())
    datasets = [notebook_spec(d) for d in (datasets or p.datasets)]
    if models:  # an explicit list may mix both families; LLM models train after the sequence models
        llm_models = [m for m in models if m in LLM_MODELS]
        models = [m for m in models if m not in LLM_MODELS]
    else:
        models, llm_models = list(p.models), list(p.llm_models)
    common = {"profile": profile, "out_dir": shown_path(out_dir), "data_dir": data_dir or ""}
    steps = [
        Step("01_data_exploration.ipynb", "01_data_exploration",
             {**common, "datasets": ",".join(datasets)}, "Data exploration (Table 4)"),
        Step("02_ssm_theory.ipynb", "02_ssm_theory", {"profile": profile, "out_dir": shown_path(out_dir)},
             "SSM theory: discretisation, SSD, Hydra"),
    ]
    for dataset in datasets:
        for model in models + llm_models:
            for seed in (seeds if seeds else p.seeds):
                steps.append(Step(
                    "03_train.ipynb",
                    safe_name(f"03_train_{model}_{parse_dataset_spec(dataset).label}_s{seed}", "notebook output"),
                    {**common, "model": model, "dataset": dataset, "seed": seed, "force": force,
                     **({"overrides": set_text} if set_text and model not in LLM_MODELS else {})},
                    f"Train {model} on {dataset} (seed {seed})",
                ))
    steps.append(Step("04_latency_profiling.ipynb", "04_latency_profiling",
                      {**common, "models": ",".join(m for m in models if m != "pop"),
                       "lengths": p.latency_lengths, "batches": p.latency_batches,
                       "stream_lengths": p.stream_lengths, "train_dataset": datasets[0]},
                      "Latency, memory and streaming inference"))
    steps.append(Step("05_results.ipynb", "05_results", {**common, "datasets": ",".join(datasets)},
                      "Results: the paper's tables beside ours"))
    return steps


def notebook_spec(dataset: str) -> str:
    """A dataset spec as the notebooks (run in the repository root) read it: a file's path made relative to the
    root when inside it (shown_path), so the reports name no folder of this machine; names unchanged."""
    ref = parse_dataset_spec(dataset)
    if "path" not in ref.options or not Path(ref.options["path"]).exists():
        return dataset
    return format_dataset_spec(ref.name, {**ref.options, "path": shown_path(Path(ref.options["path"]))})


def shown_path(path: Path) -> str:
    """`path` relative to the repository root when inside it (the notebooks run there): reports committed from
    one machine then name no folder of that machine."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run_provenance(out_dir: Path, since: str) -> list[dict[str, str]]:
    """One record per finished run under <out_dir>/runs: run id, the commit and date that trained it, and
    whether this workbook invocation trained it (finished at or after `since`, UTC ISO) or reused it."""
    rows = []
    for mfile in sorted((out_dir / "runs").glob("*/metrics.json")):
        try:
            trained = json.loads(mfile.read_text()).get("trained") or {}
        except (OSError, ValueError):
            continue
        when = trained.get("finished_at") or ""
        rows.append({"run_id": mfile.parent.name, "git_sha": (trained.get("git_sha") or "unknown")[:12],
                     "finished_at": when or "unknown",
                     "status": "trained in this workbook run" if when and when >= since else "reused"})
    return rows


def _relative_papermill_paths(ipynb: Path) -> None:
    """papermill records the absolute input/output paths in the notebook's metadata: keep them repo-relative."""
    nb = json.loads(ipynb.read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = shown_path(Path(meta[key]))
    atomic_write_text(ipynb, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _cell_error(ipynb: Path) -> str:
    """The first error output of an executed notebook, as 'ename: evalue' (no traceback noise)."""
    try:
        nb = json.loads(ipynb.read_text())
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return f"{o.get('ename')}: {o.get('evalue')}"
    return ""


def execute(step: Step, out_dir: Path) -> None:
    import papermill as pm

    src = NOTEBOOKS / step.notebook
    if not src.exists():
        raise UserError(f"notebook {src} is missing; the workbook expects notebooks/{step.notebook}")
    dst = out_dir / f"{step.output}.ipynb"
    t0 = time.perf_counter()
    os.environ["PAPERMILL_EXECUTION"] = "1"  # plain progress output inside kernels (see utils.progress)
    try:
        pm.execute_notebook(str(src), str(dst), parameters=step.parameters, kernel_name="python3",
                            progress_bar=False, cwd=str(ROOT))
        step.status = "ok"
    except pm.PapermillExecutionError as e:
        step.status = "failed"
        step.error = f"cell {e.exec_count}: {e.ename}: {e.evalue}"
    finally:
        step.seconds = time.perf_counter() - t0
        if dst.exists():
            _relative_papermill_paths(dst)
            step.files.append(dst.name)
            step.files.extend(p.name for p in render_html(dst))
    if step.status == "failed" and not step.error:
        step.error = _cell_error(dst)


def parallel_groups(steps: list[Step]) -> list[list[Step]]:
    """`steps` in order, cut into groups that may run side by side: consecutive training steps of sequence models
    (03_train, not an LLM model: LlamaRec reuses an LRURec run another step may be training) form one group; every
    other step is a group of its own."""
    groups: list[list[Step]] = []
    for step in steps:
        if _trains_sequence_model(step) and groups and _trains_sequence_model(groups[-1][-1]):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _trains_sequence_model(step: Step) -> bool:
    return step.notebook == "03_train.ipynb" and step.parameters.get("model") not in LLM_MODELS


def worker_plan(jobs: int | None, n_steps: int, cpus: int | None = None) -> tuple[int, int]:
    """(worker processes, CPU threads per worker) for a group of `n_steps` steps: `jobs` (None: one per core),
    never more than the steps; the cores shared out among the workers, at least one thread each."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    workers = max(1, min(n_steps, cpus if jobs is None else jobs))
    return workers, max(1, cpus // workers)


def _worker_init(threads: int) -> None:
    """A worker process's kernels inherit its environment: their torch uses `threads` CPU threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _execute_in_worker(step: Step, out_dir: Path) -> Step:
    execute(step, out_dir)
    return step


def run_side_by_side(group: list[Step], out_dir: Path, workers: int, threads: int,
                     on_done=lambda step: None) -> None:
    """Execute the steps of `group` in `workers` processes (spawned: no state of this process is shared), each
    kernel on `threads` threads; each step's fields are filled in place as it finishes, and `on_done(step)` is
    called then. A step whose worker raised is "failed" with the error. Ctrl-C (or any error here) cancels the
    steps not started and propagates; the caller marks what did not finish (run_workbook)."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,))
    futures = {pool.submit(_execute_in_worker, step, out_dir): step for step in group}
    try:
        for fut in as_completed(futures):
            step = futures[fut]
            try:
                done = fut.result()
                step.status, step.seconds, step.error, step.files = done.status, done.seconds, done.error, done.files
            except Exception as e:  # a dead kernel or worker: that step failed, the others go on
                step.status, step.error = "failed", f"{type(e).__name__}: {e}"
            step.side_by_side = min(workers, len(group))
            on_done(step)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def write_index(out_dir: Path, profile: str, steps: list[Step], since: str = "",
                wall_seconds: float | None = None) -> Path:
    """outputs/<profile>/index.html, one static page beside its images: the headline first (our results beside
    the paper's per dataset, with the protocol, and the quality-vs-latency and streaming figures: landing.py),
    the commit, which runs this invocation (started at `since`) trained and which it reused, then every report
    (the reader's report, and the notebook with its code beside it) with status and time, and the result files."""
    env = environment_info()
    runs = run_provenance(out_dir, since)
    n_reused = sum(r["status"] == "reused" for r in runs)
    run_rows = "".join(f"<tr><td><code>{html.escape(r['run_id'])}</code></td><td class="
                       f"'{'ok' if r['status'] != 'reused' else 'reused'}'>{html.escape(r['status'])}</td>"
                       f"<td><code>{html.escape(r['git_sha'])}</code> on {html.escape(r['finished_at'])}</td></tr>"
                       for r in runs)
    rows = []
    for s in steps:
        code = f"{s.output}{CODE_SUFFIX}"
        if s.files:
            link = (f'<a href="{html.escape(s.output)}.html">{html.escape(s.title)}</a>'
                    + (f' <span class="code">(<a href="{html.escape(code)}">with code</a>)</span>'
                       if code in s.files else ""))
        else:
            link = html.escape(s.title)
        err = f'<div class="err">{html.escape(s.error)}</div>' if s.error else ""
        beside = f" ({s.side_by_side} side by side)" if s.side_by_side > 1 else ""
        rows.append(f"<tr><td>{link}{err}</td><td class='{s.status}'>{s.status}</td>"
                    f"<td>{s.seconds:.1f}{beside}</td></tr>")
    results = sorted(p for p in out_dir.rglob("*") if p.suffix in (".csv", ".md", ".json", ".png")
                     and p.is_file() and p.relative_to(out_dir).parts[0] not in ("runs", "screens"))
    res_items = "".join(f'<li><a href="{html.escape(str(p.relative_to(out_dir)))}">'
                        f"{html.escape(str(p.relative_to(out_dir)))}</a></li>" for p in results)
    total = (f" This invocation took {wall_seconds / 60:.1f} minutes of wall time; training steps marked <i>side by "
             "side</i> ran at the same time, so their seconds overlap." if wall_seconds is not None else "")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ssmrec workbook ({profile})</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left}}
table.results{{font-variant-numeric:tabular-nums}}.protocol{{color:#555;font-size:.9em}}
.figures{{display:flex;flex-wrap:wrap;gap:1em}}figure{{flex:1 1 28em;margin:1em 0}}figure img{{width:100%}}
figcaption{{color:#555;font-size:.9em}}.code{{font-size:.85em}}
.ok{{color:#1a7f37}}.reused{{color:#9a6700}}.failed,.interrupted{{color:#cf222e;font-weight:bold}}.pending{{color:#888}}
.err{{color:#cf222e;font-family:monospace;font-size:.85em}}code{{background:#f4f4f4;padding:0 .2em}}</style></head>
<body><h1>ssmrec workbook: <code>{profile}</code> profile</h1>
<p>{html.escape(WORKBOOK_PROFILES[profile].description)}</p>
{headline_html(out_dir)}
<p>This page: git <code>{html.escape(env['git_sha'])}</code>, torch {html.escape(env['torch'])},
{env['cpu_count']} CPU(s), CUDA: {env['cuda']}, generated {time.strftime('%Y-%m-%d %H:%M:%S')}.
Runs: {len(runs) - n_reused} trained by this invocation, {n_reused} reused (list below).</p>
<h2>Reports</h2><p>Each report is the notebook's prose, tables and figures; <i>with code</i> is the whole executed
notebook.{total}</p><table><tr><th>notebook</th><th>status</th><th>seconds</th></tr>{''.join(rows)}</table>
<h2>Runs</h2><p>Each run folder's identity (resolved configs, objective, dataset content, protocol) names it; a
finished run is reused only when its identity matches exactly. A reused run was trained by the commit shown.</p>
<table><tr><th>run</th><th>this workbook run</th><th>trained at</th></tr>{run_rows or
'<tr><td colspan=3>none yet</td></tr>'}</table>
<h2>Result files</h2><ul>{res_items or '<li>none yet</li>'}</ul></body></html>"""
    out = out_dir / "index.html"
    atomic_write_text(out, page)
    return out


LOG_NAME = "workbook.log"
_NOISY_LOGGERS = ("papermill", "traitlets", "nbconvert", "jupyter_client")


@contextlib.contextmanager
def console_to_log(log_path: Path):
    """Send papermill's, nbconvert's and traitlets' log records and everything written to the process's stderr
    (the kernels inherit it: "Kernel is running over TCP without encryption", "Alternative text is missing")
    to `log_path`, appended; stdout, where the workbook prints one line per step, stays on the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    saved = []
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate, list(lg.handlers)))
        lg.handlers, lg.propagate = [handler], False
    sys.stderr.flush()
    stderr_fd = os.dup(2)
    with open(log_path, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        for lg, propagate, handlers in saved:
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()


def run_workbook(profile: str = "smoke", datasets: list[str] | None = None, models: list[str] | None = None,
                 out_root: str | Path = ROOT / "outputs", data_dir: str | None = None, force: bool = False,
                 only: list[str] | None = None, jobs: int | None = None, overrides: dict[str, Any] | None = None,
                 seeds: list[int] | None = None) -> list[Step]:
    """Run the profile's notebooks (or those `only` names) and write the index. `jobs`: worker processes for the
    training steps that may run side by side (None: one per CPU core; 1: every step in this process, in turn)."""
    out_dir = child_path(out_root, profile, "profile")
    out_dir.mkdir(parents=True, exist_ok=True)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    planned = plan(profile, datasets, models, out_dir.resolve(), data_dir, force, overrides, seeds)
    steps = planned
    if only:  # the index still links the other steps' reports from an earlier run, marked as such
        steps = [s for s in planned if any(s.output.startswith(o) for o in only)]
        for s in planned:
            if s not in steps and (out_dir / f"{s.output}.html").exists():
                s.status = "earlier run"
                s.files = [f for f in (f"{s.output}.html", f"{s.output}{CODE_SUFFIX}") if (out_dir / f).exists()]
    print(f"papermill, nbconvert and kernel messages: {out_dir / LOG_NAME}", flush=True)
    number = {id(step): i for i, step in enumerate(steps, 1)}
    index = lambda: write_index(out_dir, profile, planned, since, time.perf_counter() - t0)  # noqa: E731

    def starting(step: Step) -> None:
        print(f"[{number[id(step)]}/{len(steps)}] {step.title} ...", flush=True)

    def finished(step: Step) -> None:
        beside = f" ({step.side_by_side} side by side)" if step.side_by_side > 1 else ""
        print(f"[{number[id(step)]}/{len(steps)}] {step.title}: {step.status} in {step.seconds:.1f} s{beside}",
              flush=True)
        index()

    for group in parallel_groups(steps):
        workers, threads = worker_plan(jobs, len(group))
        if workers > 1:
            first, last = number[id(group[0])], number[id(group[-1])]
            print(f"[{first}-{last}/{len(steps)}] {len(group)} trainings side by side, {workers} at a time, "
                  f"{threads} CPU thread{'s' if threads > 1 else ''} each (--jobs 1: one after another)", flush=True)
            for step in group:
                starting(step)
        started: list[Step] = list(group) if workers > 1 else []
        try:
            with console_to_log(out_dir / LOG_NAME), EpochTail(out_dir / "runs"):  # one line per epoch (progress.py)
                if workers > 1:
                    run_side_by_side(group, out_dir, workers, threads, finished)
                else:
                    for step in group:
                        starting(step)
                        started.append(step)
                        execute(step, out_dir)
                        finished(step)
                        if step.status == "failed":
                            break
        except BaseException as e:  # Ctrl-C, a dead kernel: the index says so, never "ok"
            for step in started:
                if step.status == "pending":
                    step.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
                    step.error = step.error or f"{type(e).__name__}: {e}"
            index()
            raise
        failed = [step for step in group if step.status == "failed"]
        if failed:
            step = failed[0]
            raise UserError(f"notebook {step.notebook} failed ({step.error}); partial output kept in "
                            f"{out_dir / (step.output + '.ipynb')} and its .html")
    print(f"index: {out_dir / 'index.html'} ({(time.perf_counter() - t0) / 60:.1f} min)")
    return steps
