"""A workbook interrupted mid-notebook and restarted (issue 16, section 2): it must finish with the same outputs as
an uninterrupted one, and its index must never show a step as ok that did not finish.

The runner (report/workbook.run_workbook) is the real one; only the notebook execution (workbook.execute,
papermill) is replaced by a stand-in that does what the notebooks' heavy step does, in seconds: 03_train trains
through experiment.run_experiment (synthetic data, smoke profile, 2 epochs) and writes the run's metrics as its
output; the other steps write their parameters. Both write a partial output first, as papermill does.
    1. the reference: the whole workbook, uninterrupted, in one folder
    2. the trial: the same in another folder, interrupted (KeyboardInterrupt) after the train step's first epoch;
       the index as it stood when the step began is what a kill -9 would leave
    3. the same command again: it finishes
    4. checked: the step was "pending" (kill -9) and "interrupted" (Ctrl-C) in the index, never "ok"; after the
       restart every step is "ok" and every output equals the reference's.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from unittest import mock

from .trial import Trial

CATEGORY = "interrupted workbook"
DATASET = "synthetic?n_users=100&n_items=50&min_len=5&max_len=20"
TRAIN_OVERRIDES = {"epochs": "2", "num_threads": "1", "checkpoint_every": "2", "progress": "false"}


def index_statuses(index: Path) -> list[str]:
    """The status column of the index's Reports table, in step order."""
    page = Path(index).read_text()
    reports = page[page.index("<h2>Reports</h2>"):page.index("<h2>Runs</h2>")]
    return re.findall(r"<td class='(\w[\w ]*)'>\1</td>", reports)


def fake_execute(interrupt_train: bool, seen_index: list):
    """A stand-in for workbook.execute (module docstring); `interrupt_train` stops the train step mid-way."""
    from ..experiment import run_experiment

    def execute(step, out_dir: Path) -> None:
        dst = Path(out_dir) / f"{step.output}.ipynb"
        dst.write_text("partial output")  # papermill writes the output notebook as the cells run
        if step.notebook == "03_train.ipynb":
            if interrupt_train and (Path(out_dir) / "index.html").exists():
                seen_index.append(index_statuses(Path(out_dir) / "index.html"))

            def stop(event, info):
                if interrupt_train and event == "epoch_end" and info["epoch"] == 0:
                    raise KeyboardInterrupt

            p = step.parameters
            res = run_experiment(p["model"], p["dataset"], p["profile"], p["seed"], dict(TRAIN_OVERRIDES),
                                 out=Path(out_dir) / "runs", hooks=[stop])
            content = {k: res[k] for k in ("run_id", "valid", "test", "best_epoch", "epochs_run")}
        else:
            content = {k: v for k, v in step.parameters.items() if k != "out_dir"}
        dst.write_text(json.dumps(content, sort_keys=True))
        step.status = "ok"
        step.files.append(dst.name)

    return execute


def run(out_root: Path, interrupt_train: bool = False, seen_index: list | None = None):
    from ..report import workbook

    with mock.patch.object(workbook, "execute", fake_execute(interrupt_train, seen_index if seen_index is not None
                                                             else [])), contextlib.redirect_stdout(None):
        return workbook.run_workbook("smoke", datasets=[DATASET], models=["sasrec"], out_root=out_root)


def outputs(out_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(Path(out_dir).glob("*.ipynb"))}


def workbook_trial(root: str | Path) -> Trial:
    root = Path(root)
    run(root / "reference")
    ref = outputs(root / "reference" / "smoke")
    seen: list = []
    interrupted = False
    try:
        run(root / "trial", interrupt_train=True, seen_index=seen)
    except KeyboardInterrupt:
        interrupted = True
    index = root / "trial" / "smoke" / "index.html"
    train_at = next(i for i, name in enumerate(sorted(ref)) if name.startswith("03_train"))
    after_ctrl_c = index_statuses(index)
    at_kill = seen[0] if seen else []
    never_ok = (interrupted and len(at_kill) > train_at and at_kill[train_at] == "pending"
                and after_ctrl_c[train_at] == "interrupted" and "ok" not in after_ctrl_c[train_at + 1:])
    steps = run(root / "trial")
    final = index_statuses(index)
    same = outputs(root / "trial" / "smoke") == ref
    return Trial(CATEGORY, "interrupted in 03_train, restarted", survived=all(s == "ok" for s in final),
                 lost_nothing=never_ok and same,
                 detail=f"index at a kill: {at_kill}; after Ctrl-C: {after_ctrl_c}; after the restart: {final} "
                        f"({len(steps)} steps); outputs equal the uninterrupted workbook's: {same}")
