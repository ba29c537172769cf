"""Faults during long work, injected on purpose (issue 16, section 2): disk full while writing a checkpoint or a
report, and damaged files (cache, checkpoint, log.jsonl, metrics.json, config.json, a download). kill -9 is in
kill.py, an interrupted workbook in workbook_faults.py.

Disk full, two ways that need no root and no mount:
    rlimit   the process's own file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) is lowered below the size of the
             next write: the kernel then fails the write with EFBIG exactly where a full disk fails with ENOSPC
             (torch.save turns it into a RuntimeError; utils.atomic_path tells the two apart by probing). The soft
             limit is restored afterwards (a process may raise its soft limit back up to the hard one).
    enospc   the atomic writer's file write raises OSError(ENOSPC) after half the bytes.
Every trial returns a Trial (trial.py): survived = the work ended with the file intact, or with a clear error
naming the path and the fix; lost_nothing = nothing earlier was damaged and nothing damaged was used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

from ..errors import DiskFullError, UserError
from ..utils import atomic_write_text, stale_temporaries
from .trial import Trial

DISK = "disk full"
DAMAGE = "damaged files"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Within the block, this process cannot grow a file beyond `limit` bytes (writes fail with EFBIG)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


@contextlib.contextmanager
def enospc_after_half() -> Iterator[None]:
    """Within the block, files opened with os.fdopen (the atomic writers) take half of the first write, then
    raise OSError(ENOSPC), as a disk that fills up mid-write does."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            self.f.write(bytes(b)[: len(b) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    with mock.patch.object(os, "fdopen", lambda *a, **k: Full(real(*a, **k))):
        yield


def tiny_trainer(run_dir: Path, hooks=(), epochs: int = 2):
    """A Trainer of a 1-layer SASRec (d = 16) on a small synthetic split, checkpoint after every batch."""
    import torch

    from ..data import make_synthetic
    from ..models.registry import build_model
    from ..train import TrainConfig, Trainer

    split = make_synthetic(n_users=120, n_items=60, min_len=5, max_len=20, seed=0).split()
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, max_len=20, progress=False, num_threads=1,
                      checkpoint_every=1, max_batches_per_epoch=5)
    torch.manual_seed(0)
    model = build_model("sasrec", split.n_items, 20, dict(d_model=16, d_ff=32, n_layers=1, n_heads=1))
    return Trainer(model, split, cfg, run_dir, list(hooks))


class Stop(Exception):
    """Raised by a hook to end a Trainer where a trial wants it (as a kill would)."""


def first_batch_after_resume(run_dir: Path) -> tuple[int, int]:
    """(epoch, batch) of the first batch a fresh Trainer trains in `run_dir`: shows where it resumed from."""
    seen = []

    def stop(event, info):
        if event == "batch_end":
            seen.append((info["epoch"], info["batch"]))
            raise Stop

    with contextlib.suppress(Stop):
        tiny_trainer(run_dir, [stop]).fit()
    return seen[0] if seen else (-1, -1)


def checkpoint_disk_full(root: Path) -> Trial:
    """The disk fills up after batch 2's checkpoint: batch 3's checkpoint write fails (rlimit)."""
    run_dir = Path(root) / "checkpoint_full"
    ck = run_dir / "checkpoint_last.pt"
    stack = contextlib.ExitStack()
    before = {}

    def fill_disk(event, info):
        if event == "batch_end" and (info["epoch"], info["batch"]) == (0, 1):
            before["sha"] = sha256(ck)
            stack.enter_context(file_size_limit(ck.stat().st_size // 2))

    err: BaseException | None = None
    try:
        with stack:
            tiny_trainer(run_dir, [fill_disk]).fit()
    except Exception as e:  # noqa: BLE001 - every outcome is recorded
        err = e
    clear = isinstance(err, DiskFullError) and str(ck) in str(err) and "needs at least" in str(err)
    intact = ck.exists() and sha256(ck) == before.get("sha")
    resumed_at = first_batch_after_resume(run_dir) if intact else None  # readable: training resumes from it
    lost_nothing = intact and resumed_at == (0, 2) and not stale_temporaries(run_dir)
    return Trial(DISK, "checkpoint_last.pt (file-size limit, torch.save)", survived=clear, lost_nothing=lost_nothing,
                 detail=f"{type(err).__name__}: {err}; previous checkpoint intact: {intact}, resumed at "
                        f"(epoch, batch) {resumed_at}")


def report_disk_full(root: Path, how: str) -> Trial:
    """A report (report.md) is rewritten with a bigger one while the disk is full (`how`: rlimit | enospc)."""
    path = Path(root) / f"report_{how}" / "report.md"
    old = "# report\n\nthe previous, complete report\n" * 20
    atomic_write_text(path, old)
    new = old + "one more section\n" * 200
    fault = file_size_limit(len(old.encode()) // 2) if how == "rlimit" else enospc_after_half()
    err: BaseException | None = None
    try:
        with fault:
            atomic_write_text(path, new)
    except Exception as e:  # noqa: BLE001
        err = e
    need = f"{len(new.encode()):,} bytes"
    clear = isinstance(err, DiskFullError) and str(path) in str(err) and need in str(err)
    intact = path.read_text() == old
    return Trial(DISK, f"report.md ({'file-size limit' if how == 'rlimit' else 'ENOSPC mid-write'})",
                 survived=clear, lost_nothing=intact and not stale_temporaries(path.parent),
                 detail=f"{type(err).__name__}: {err}; previous report intact: {intact}")


def disk_full_trials(root: str | Path) -> list[Trial]:
    root = Path(root)
    return [checkpoint_disk_full(root), report_disk_full(root, "rlimit"), report_disk_full(root, "enospc")]


# ------------------------------------------------------------------------------------------------ damaged files

def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@contextlib.contextmanager
def cache_dir(path: Path) -> Iterator[None]:
    old = os.environ.get("SSMREC_CACHE_DIR")
    os.environ["SSMREC_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SSMREC_CACHE_DIR", None)
        else:
            os.environ["SSMREC_CACHE_DIR"] = old


def cache_damage(root: Path, file: str, damage: Callable[[Path], None], how: str) -> Trial:
    """Prepare a CSV dataset into the cache, damage one cache file, load again: rebuilt, same data."""
    from ..data import load_dataset
    from ..experiment import dataset_fingerprint

    root = Path(root) / f"cache_{file}_{how}"
    csv = root / "events.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{(u * 7 + t) % 13},{t}\n"
                                                           for u in range(12) for t in range(6)))
    with cache_dir(root / "cache"):
        first = load_dataset(f"csv:{csv}", kcore=0)
        (folder,) = (root / "cache" / "prepared").iterdir()
        damage(folder / file)
        err = None
        try:
            again = load_dataset(f"csv:{csv}", kcore=0)
        except Exception as e:  # noqa: BLE001
            err, again = e, None
        rebuilt = again is not None and (folder / file).exists()
        same = again is not None and dataset_fingerprint(again) == dataset_fingerprint(first)
        from_cache = load_dataset(f"csv:{csv}", kcore=0)  # the rebuilt cache serves the same data
        third_ok = same and dataset_fingerprint(from_cache) == dataset_fingerprint(first)
    return Trial(DAMAGE, f"cache {file} ({how})", survived=err is None and rebuilt, lost_nothing=same and third_ok,
                 detail=(f"{type(err).__name__}: {err}" if err else
                         "detected, ignored and rebuilt; the data equal the first preparation's"))


def run_folder(root: Path, name: str):
    """(train(force=False, hooks=()) -> payload, the run folder): a small run_experiment in root/name."""
    from ..data import make_synthetic
    from ..experiment import run_experiment

    data = make_synthetic(n_users=100, n_items=50, min_len=5, max_len=20, seed=0)
    out = Path(root) / name
    over = {"epochs": "3", "num_threads": "1", "checkpoint_every": "2", "progress": "false"}

    def train(force: bool = False, hooks=()):
        res = run_experiment("sasrec", "synthetic", "smoke", 0, dict(over), out=out, force=force, hooks=list(hooks),
                             data=data)
        return {**res, "_log": log_records(out)}

    return train, out


COMPARED = ("valid", "test", "best_epoch", "epochs_run")


def log_records(out: Path) -> list[dict]:
    """log.jsonl of the one run folder under `out`, without the seconds (they differ between runs)."""
    (run_dir,) = [p for p in Path(out).iterdir() if p.is_dir()]
    return [{k: v for k, v in json.loads(ln).items() if "seconds" not in k}
            for ln in (run_dir / "log.jsonl").read_text().splitlines()]


def same_result(a: dict, b: dict) -> bool:
    """Equal metrics, and equal logs (each payload carries its log under "_log", added by the trials)."""
    return all(a.get(k) == b.get(k) for k in COMPARED + ("_log",))


def interrupted(train, after_epoch: int) -> Path:
    """Start training and stop it after epoch `after_epoch` (as a kill would); returns nothing useful."""
    def stop(event, info):
        if event == "epoch_end" and info["epoch"] == after_epoch:
            raise Stop

    with contextlib.suppress(Stop):
        train(hooks=[stop])


def run_file_damage(root: Path, file: str, damage: Callable[[Path], None], how: str, reference: dict) -> Trial:
    """A run stopped after epoch 1 (or finished, for metrics.json) has `file` damaged; the same command again must
    either finish with the uninterrupted result, or raise a UserError naming the file, after which --force (the fix
    the message gives) finishes with that result."""
    train, out = run_folder(root, f"run_{file}_{how}")
    if file == "metrics.json":
        train()
    else:
        interrupted(train, 1)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    damage(run_dir / file)
    err = None
    try:
        res = train()
    except UserError as e:
        err = e
        res = train(force=True) if "--force" in str(e) else None
    except Exception as e:  # noqa: BLE001 - a bare error is an open defect
        return Trial(DAMAGE, f"{file} ({how})", survived=False, lost_nothing=False,
                     detail=f"bare {type(e).__name__}: {e} (open defect: no UserError naming the file)")
    named = err is None or file in str(err)
    ok = res is not None and same_result(res, reference)
    reused = res is not None and (res.get("provenance") or {}).get("status") == "reused"
    detail = (f"UserError: {err}; then --force: " if err else "") + (
        "finished, identical to the uninterrupted run" if ok else f"result differs or missing: {res and {k: res.get(k) for k in COMPARED}}")
    return Trial(DAMAGE, f"{file} ({how})", survived=named and res is not None, lost_nothing=ok and not reused,
                 detail=detail + ("" if not reused else "; the damaged run was REUSED"))


def download_damage(root: Path) -> list[Trial]:
    """A download that arrives truncated once is discarded and fetched again; one that is always corrupt is never
    kept and the error names the file (data/sources.fetch checks the published sha256)."""
    from ..data import sources
    from ..errors import DataError

    root = Path(root) / "download"
    root.mkdir(parents=True, exist_ok=True)
    src = root / "Beauty.txt"
    src.write_text("1 1\n1 2\n2 1\n" * 50)
    remote = sources.RemoteFile(src.as_uri(), "sha256:" + sha256(src), src.name)
    calls = []

    def truncated_once(url, dest):
        calls.append(url)
        data = src.read_bytes()
        Path(dest).write_bytes(data[: len(data) // 2] if len(calls) == 1 else data)

    got = sources.fetch(remote, root / "dl1", downloader=truncated_once)
    t1 = Trial(DAMAGE, "download truncated once", survived=got.exists(),
               lost_nothing=got.read_bytes() == src.read_bytes() and len(calls) == 2,
               detail=f"checksum mismatch detected, fetched again ({len(calls)} downloads); the file kept is complete")
    err = None
    try:
        sources.fetch(remote, root / "dl2", downloader=lambda url, dest: Path(dest).write_text("garbage"), retries=2)
    except DataError as e:
        err = e
    left = list((root / "dl2").iterdir()) if (root / "dl2").exists() else []
    t2 = Trial(DAMAGE, "download always corrupt", survived=err is not None and "Beauty.txt" in str(err),
               lost_nothing=not left, detail=f"{type(err).__name__}: {err}; files kept: {[p.name for p in left]}")
    return [t1, t2]


def damage_trials(root: str | Path) -> list[Trial]:
    """Every damaged-file trial: cache (truncated, garbage, a flipped byte), the run folder's files, downloads."""
    root = Path(root)
    trials = [cache_damage(root, "arrays.npz", truncate, "truncated"),
              cache_damage(root, "arrays.npz", flip_middle_byte, "one byte flipped"),
              cache_damage(root, "meta.json", lambda p: p.write_text("{not json"), "garbage")]
    train, _ = run_folder(root, "reference")
    reference = train()
    trials += [
        run_file_damage(root, "metrics.json", truncate, "truncated", reference),
        run_file_damage(root, "metrics.json", lambda p: p.write_text("{}"), "empty object", reference),
        run_file_damage(root, "metrics.json", lambda p: p.write_bytes(b""), "half-written run folder: empty", reference),
        run_file_damage(root, "log.jsonl", truncate, "truncated", reference),
        run_file_damage(root, "log.jsonl", lambda p: p.write_text("{not json\n" + p.read_text()), "garbled line",
                        reference),
        run_file_damage(root, "config.json", truncate, "truncated", reference),
        run_file_damage(root, "checkpoint_last.pt", truncate, "truncated", reference),
    ]
    half = half_written_folder(root, reference)
    return trials + [half] + download_damage(root)


def half_written_folder(root: Path, reference: dict) -> Trial:
    """A folder holding config.json only (killed before its first checkpoint) is resumed, never reused."""
    train, out = run_folder(root, "run_config_only")
    interrupted(train, 0)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    for p in run_dir.iterdir():
        if p.name != "config.json":
            p.unlink()
    res = train()
    fresh = (res.get("provenance") or {}).get("status") == "trained now"
    return Trial(DAMAGE, "half-written run folder: config.json only", survived=True,
                 lost_nothing=fresh and same_result(res, reference),
                 detail=f"{'trained' if fresh else 'REUSED'}; identical to the uninterrupted run: "
                        f"{same_result(res, reference)}")

