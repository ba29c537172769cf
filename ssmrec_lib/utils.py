"""Small shared helpers: atomic writes, seeding, run provenance (git SHA, device), progress bars."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed onto `path` (for writers that want a filename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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


def git_sha(short: bool = False) -> str:
    """The checkout's commit (with '-dirty' when there are uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
