"""Per-epoch progress lines on the workbook's console while a training notebook runs.

papermill runs `03_train` in a kernel whose output goes into the notebook, so for the minutes an epoch takes the
console would show nothing. The Trainer already writes one JSON record per finished epoch to <run>/log.jsonl
(train.py) and the run's config.json before its first epoch (experiment.py), so the workbook watches those files
instead of asking the kernel: while a step runs, `EpochTail` polls <runs>/*/log.jsonl from a thread and prints
each new record as

    "  sasrec epoch 3/30: loss 5.1234, valid ndcg@10 0.1234"

Records already in a log when the step started (a resumed run's earlier epochs, a reused run) are not printed
again; a record is new when the log's record at its position changed (a resumed run that rewrites an epoch prints
it once more: what the log now holds). LLM runs write their log when they finish, so their epochs appear together
at the end of the step (LlamaRec's with its stage).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

VALID_METRIC = "ndcg@10"  # the early-stopping metric (train.VALID_METRIC), shown on each line


def epoch_line(record: dict, model: str, epochs: int | None, first_epoch: int = 0) -> str:
    """One console line for one log.jsonl record, epochs counted from 1 as a reader counts them (`first_epoch`:
    how the log counts: 0 for the Trainer (train.py), 1 for the LLM fine-tuning (llm/lm_train.py))."""
    of = f"/{epochs}" if epochs else ""
    stage = f" ({record['stage']})" if record.get("stage") else ""  # LlamaRec logs two stages
    parts = []
    if isinstance(record.get("loss"), (int, float)):
        parts.append(f"loss {record['loss']:.4f}")
    valid = record.get("valid") or {}
    if isinstance(valid.get(VALID_METRIC), (int, float)):
        parts.append(f"valid {VALID_METRIC} {valid[VALID_METRIC]:.4f}")
    return (f"  {model} epoch {int(record['epoch']) + 1 - first_epoch}{of}{stage}"
            + (f": {', '.join(parts)}" if parts else ""))


def read_records(log_jsonl: Path) -> list[dict]:
    """The complete JSON lines of a log.jsonl (a line still being written, or unreadable, is left out)."""
    try:
        text = log_jsonl.read_text()
    except OSError:
        return []
    out = []
    for ln in text.splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            out.append(rec)
    return out


def run_label(run_dir: Path) -> tuple[str, int | None, int]:
    """(model name, configured epochs, the log's first epoch number) from the run's config.json: an LLM run (its
    config names a `backbone`) counts from 1, the Trainer from 0; (folder name, None, 0) when unreadable."""
    try:
        conf = json.loads((run_dir / "config.json").read_text())
        return (str(conf.get("model") or run_dir.name), (conf.get("train_config") or {}).get("epochs"),
                1 if "backbone" in conf else 0)
    except (OSError, ValueError, AttributeError):
        return run_dir.name, None, 0


class EpochTail:
    """Print new epoch records of <runs>/*/log.jsonl while the `with` block runs (a poll every `interval` s, and
    a last one on exit, so the final epoch is printed before the step's own line).

        with EpochTail(out_dir / "runs"):
            execute(step, out_dir)
    """

    def __init__(self, runs: Path, interval: float = 1.0, stream: TextIO | None = None,
                 printer: Callable[[str], None] | None = None):
        self.runs, self.interval = Path(runs), interval
        self.printer = printer or (lambda line: print(line, file=stream or sys.stdout, flush=True))
        self.seen: dict[Path, list[str]] = {}  # log file -> its records (JSON) as last read, in file order
        self.stamps: dict[Path, tuple[int, int]] = {}  # log file -> (mtime_ns, size) when last read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _logs(self) -> list[Path]:
        return sorted(self.runs.glob("*/log.jsonl")) if self.runs.is_dir() else []

    def poll(self) -> list[str]:
        """Print (and return) the lines of records not seen before."""
        lines = []
        for path in self._logs():
            try:
                stamp = (path.stat().st_mtime_ns, path.stat().st_size)
            except OSError:
                continue
            if self.stamps.get(path) == stamp:  # unchanged since the last poll: not read again
                continue
            self.stamps[path] = stamp
            seen = self.seen.get(path, [])
            records = read_records(path)
            now = [json.dumps(r, sort_keys=True) for r in records]
            new = [r for i, r in enumerate(records) if i >= len(seen) or seen[i] != now[i]]
            self.seen[path] = now
            if new:
                model, epochs, first = run_label(path.parent)
                lines += [epoch_line(r, model, epochs, first) for r in new]
        for line in lines:
            self.printer(line)
        return lines

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as e:  # a progress line must never stop the workbook
                self.printer(f"  (progress lines stopped: {type(e).__name__}: {e})")
                return

    def __enter__(self) -> "EpochTail":
        for path in self._logs():  # what is there already is not news
            self.seen[path] = [json.dumps(r, sort_keys=True) for r in read_records(path)]
        self._thread = threading.Thread(target=self._run, name="ssmrec-epoch-tail", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.poll()
        except Exception as e:  # as in _run: never the reason a step fails
            self.printer(f"  (progress lines stopped: {type(e).__name__}: {e})")
