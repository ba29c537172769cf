"""Small shared helpers: atomic writes, seeding, run provenance (git SHA, device), progress bars."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})  # disk full, file-size limit, quota
WRITE_CHUNK = 1 << 20  # atomic_write_bytes writes in pieces of this many bytes


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def file_size(path: str | os.PathLike) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def is_no_space(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS


def probe_no_space(tmp: Path, need: int) -> bool:
    """True when appending up to `need` bytes to the (doomed) temporary file `tmp` fails for want of space: tells
    a disk-full failure inside a writer that hides the errno (torch.save raises a RuntimeError) from a bug."""
    try:
        with open(tmp, "ab") as f:
            left = max(1, need)
            while left > 0:
                f.write(bytes(min(left, WRITE_CHUNK)))
                left -= WRITE_CHUNK
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return is_no_space(e)
    return False


def disk_full_error(path: Path, need: int, e: BaseException, exact: bool):
    """DiskFullError naming `path`, the space it needs (`need` bytes, `exact` or a lower bound) and the free space."""
    from .errors import DiskFullError

    try:
        free = f"; {human_bytes(shutil.disk_usage(path.parent).free)} free there"
    except OSError:
        free = ""
    size = f"{'' if exact else 'at least '}{human_bytes(need)} ({need:,} bytes)"
    return DiskFullError(
        f"no space to write {path}: it needs {size}{free} ({e.strerror if isinstance(e, OSError) else e}). "
        f"{'The previous ' + path.name + ' is intact' if path.exists() else 'Nothing was written'}. Free disk space "
        "(or raise the quota / file-size limit), or write to another folder, then rerun the same command.")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename.

    For want of space (ENOSPC, EFBIG, EDQUOT) it raises errors.DiskFullError naming the path and len(data); the
    temporary file is removed and a previous `path` stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            view = memoryview(data)
            for start in range(0, len(view), WRITE_CHUNK):
                f.write(view[start:start + WRITE_CHUNK])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_no_space(e):
            raise disk_full_error(path, len(data), e, exact=True) from e
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed onto `path` (for writers that want a filename).

    When the writer fails for want of space (its OSError says so, or, for writers that hide the errno such as
    torch.save, appending to the temporary file fails so), errors.DiskFullError names the path and the space
    needed: at least the larger of what was written and the previous file's size. The previous `path` is never
    touched before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        need = max(file_size(tmp), file_size(path))
        full = is_no_space(e) or (isinstance(e, (OSError, RuntimeError)) and os.path.exists(tmp)
                                  and probe_no_space(Path(tmp), max(need, WRITE_CHUNK)))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(path, need, e, exact=False) from e
        raise


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # one path component; no '/', no leading '.' or '-'


def safe_name(value: Any, what: str) -> str:
    """`value` as one folder / file name component (a model, dataset label, profile, study or run id), or
    UserError: letters, digits, '.', '_', '-', not starting with '.' or '-' (so never '..', never a path)."""
    text = str(value)
    if not SAFE_NAME.fullmatch(text):
        raise UserError(f"{what} {text!r} cannot name a file or folder: use letters, digits, '.', '_' and '-' only "
                        "(no '/', no leading '.' or '-')")
    return text


def child_path(root: str | os.PathLike, name: str, what: str) -> Path:
    """root / name, with `name` checked by safe_name: the result is always directly inside `root`."""
    return Path(root) / safe_name(name, what)
def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The atomic writers' temporary files (`.<name>.<random>.tmp`) left in `folder` by a killed process."""
    folder = Path(folder)
    return sorted(p for p in folder.glob(".*.tmp") if p.is_file()) if folder.is_dir() else []


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete `stale_temporaries(folder)` (call it only where no other process writes); returns how many."""
    n = 0
    for p in stale_temporaries(folder):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """The torch, numpy, python (and CUDA) RNG states, as tensors and plain values only (so a checkpoint holding
    them loads with torch.load(weights_only=True)); set_rng_states restores them exactly."""
    import numpy as np
    import torch

    st = {"torch": torch.get_rng_state(), "numpy": plain_numpy_state(np.random.get_state()),
          "python": plain_python_state(random.getstate())}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def plain_numpy_state(st) -> dict[str, Any]:
    """np.random.get_state()'s tuple (name, keys: uint32 (624,), pos, has_gauss, cached_gaussian) -> a dict of
    plain values and one int64 tensor (uint32 -> int64 is exact). A dict already in this form is returned as is."""
    import numpy as np
    import torch

    if isinstance(st, dict):
        return st
    name, keys, pos, has_gauss, cached = st
    return {"bit_generator": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def numpy_state_tuple(st: dict[str, Any]) -> tuple:
    """The inverse of plain_numpy_state: the tuple np.random.set_state takes."""
    import numpy as np

    keys = st["keys"].numpy() if hasattr(st["keys"], "numpy") else np.asarray(st["keys"])
    return (st["bit_generator"], keys.astype(np.uint32), st["pos"], st["has_gauss"], st["cached_gaussian"])


def plain_python_state(st) -> dict[str, Any]:
    """random.getstate()'s (version, 625 ints, gauss_next) -> {"version", "internal": int64 tensor, "gauss_next"}.
    A dict already in this form is returned as is."""
    import torch

    if isinstance(st, dict):
        return st
    version, internal, gauss_next = st
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next)}


def python_state_tuple(st: dict[str, Any]) -> tuple:
    """The inverse of plain_python_state: the tuple random.setstate takes."""
    return (st["version"], tuple(int(x) for x in st["internal"].tolist()), st["gauss_next"])


def plain_rng_states(st: dict[str, Any]) -> dict[str, Any]:
    """RNG states in the old form (numpy / python tuples, as checkpoints held them before) or the new -> the new."""
    return {**st, "numpy": plain_numpy_state(st["numpy"]), "python": plain_python_state(st["python"])}


def set_rng_states(st: dict[str, Any]) -> None:
    """Restore the states rng_states() returned (the old tuple form is accepted too)."""
    import numpy as np
    import torch

    st = plain_rng_states(st)
    torch.set_rng_state(st["torch"])
    np.random.set_state(numpy_state_tuple(st["numpy"]))
    random.setstate(python_state_tuple(st["python"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def git_sha(short: bool = False, root: Path | None = None) -> str:
    """The checkout's commit (with '-dirty' when tracked files outside outputs/ have uncommitted changes), or 'unknown'.

    outputs/ is left out of the check: results and run folders (a resumed run's committed checkpoint rewritten by its
    own training) do not change what the code computes, and counting them made every run started beside a running
    one '-dirty'.
    """
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)outputs"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_info() -> dict[str, Any]:
    """Provenance recorded beside every result: code version, device, threads, library versions."""
    import torch

    info: dict[str, Any] = {
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    return info


def is_interactive() -> bool:
    """True in a live terminal or a Jupyter kernel a person is looking at; False under papermill / CI / pipes."""
    if os.environ.get("SSMREC_PROGRESS") in ("0", "plain"):
        return False
    if os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("CI"):
        return False
    try:
        from IPython import get_ipython  # noqa: F401

        ip = get_ipython()
        if ip is not None and "IPKernelApp" in getattr(ip, "config", {}):
            return True
    except Exception:
        pass
    return sys.stderr.isatty()


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", **kw):
    """A progress bar that renders well everywhere.

    Interactive (terminal, live Jupyter): tqdm.auto. Batch (papermill, CI, log files): a plain text bar that
    refreshes at most every 30 s, so the rendered HTML holds a few lines rather than hundreds.
    """
    if is_interactive():
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

        kw["leave"] = True  # keep the final state visible in logs and rendered reports
        kw.setdefault("mininterval", 30.0)
        kw.setdefault("ascii", True)
        kw.setdefault("file", sys.stdout)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(iterable, total=total, desc=desc, **kw)


def dict_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys (dotted, nested dicts walked) whose values differ between two dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += dict_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out
