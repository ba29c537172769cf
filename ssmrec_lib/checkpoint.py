"""Checkpoint files: written as tensors and plain values only, read with the safe loader only.

A checkpoint (`checkpoint_last.pt`, `checkpoint_best.pt`) is a dict of tensors, dicts, lists, tuples, str, int,
float, bool and None: model / optimiser / scheduler state dicts, the training config as a dict, the run identity,
RNG states as tensors (utils.rng_states). `torch.load(..., weights_only=True)` reads such a file without running
any code from it, so a checkpoint passed around cannot execute anything on load.

    save_checkpoint(path, payload)        refuses a payload holding anything else (a bug), writes atomically
    load_checkpoint(path, map_location)   the one load path: UserError naming the file for a missing, truncated,
                                          corrupt or unsafe file (nothing from it runs)
    upgrade_checkpoint(path)              a checkpoint of the old format (numpy / python RNG states pickled as numpy
                                          arrays and tuples) -> the new format, rewritten atomically after a
                                          verified round trip; only with the user's explicit trust
                                          (`python -m ssmrec_lib checkpoint upgrade PATH... --trust`)

The upgrade reads an old file with the safe loader too, allowing exactly the numpy names old checkpoints hold
(`LEGACY_GLOBALS`: ndarray reconstruction and dtype); a file naming anything else is refused even with --trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .utils import atomic_path, plain_rng_states

UPGRADE_COMMAND = "python -m ssmrec_lib checkpoint upgrade"
# the globals a checkpoint of the old format names (numpy 2 writes numpy._core, numpy 1 numpy.core)
LEGACY_GLOBALS = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
                  "numpy.dtype", "numpy.dtypes.UInt32DType")
PLAIN_TYPES = (str, int, float, bool, type(None), torch.Tensor)


class UnsafeCheckpointError(UserError):
    """A checkpoint the safe loader refuses: it names Python objects to build (code could run on a full load)."""


class LegacyCheckpointError(UnsafeCheckpointError):
    """A checkpoint of the old format (numpy RNG states): upgrade it with the CLI if you trust where it came from."""


def non_plain(obj: Any, where: str = "payload") -> list[str]:
    """Dotted paths of the values in `obj` that are not tensors, plain values, dicts, lists or tuples."""
    if isinstance(obj, PLAIN_TYPES):
        return []
    if isinstance(obj, dict):
        bad = [f"{where} key {k!r}" for k in obj if not isinstance(k, (str, int))]
        return bad + [p for k, v in obj.items() for p in non_plain(v, f"{where}.{k}")]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_plain(v, f"{where}[{i}]")]
    return [f"{where} ({type(obj).__module__}.{type(obj).__qualname__})"]


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """torch.save `payload` to `path` atomically; a value that is not a tensor / plain value raises TypeError
    (the safe loader could not read it back)."""
    bad = non_plain(payload)
    if bad:
        raise TypeError(f"checkpoint {path}: not tensors or plain values: {', '.join(bad[:5])}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def unsafe_globals(path: str | os.PathLike) -> list[str] | None:
    """The Python names a checkpoint would import on a full load (None when the file cannot be scanned)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a torch zip checkpoint: no names to report
        return None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with the safe loader (weights_only=True); its dict.

    Raises UserError (naming `path`) when the file is missing, truncated or corrupt; LegacyCheckpointError for a
    checkpoint of the old format (the message gives the upgrade command); UnsafeCheckpointError when it names
    other Python objects (nothing from it is run).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        names = unsafe_globals(path)
        if names and set(names) <= set(LEGACY_GLOBALS):
            raise LegacyCheckpointError(
                f"checkpoint {path} is in the old format (numpy RNG states, names {names}) that the safe loader "
                f"refuses. If you trust where it came from (e.g. you wrote it with an older ssmrec), upgrade it "
                f"once: {UPGRADE_COMMAND} {path} --trust") from None
        if names:
            raise UnsafeCheckpointError(
                f"checkpoint {path} is refused: it would import {names}. A checkpoint written by ssmrec holds only "
                "tensors and plain values; nothing from it was run. Do not load it unless you know exactly where it "
                "came from; delete it, or train again") from None
        why = [ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln or "GLOBAL" in ln][:1]
        raise UnsafeCheckpointError(
            f"checkpoint {path} is truncated or corrupt, or a pickle ssmrec did not write (the safe loader stopped: "
            f"{(why or ['unreadable'])[0][:200]}); nothing from it was run. Delete it (a run then starts again "
            "from its last good state or from scratch)") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - RuntimeError (zip), EOFError, KeyError, ...: a broken file
        raise UserError(f"checkpoint {path} is truncated or corrupt and cannot be read ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it (a run then "
                        "starts again from its last good state or from scratch)") from None
    if not isinstance(ck, dict):
        raise UserError(f"checkpoint {path} holds a {type(ck).__name__}, not a checkpoint dict; delete it")
    return ck


def legacy_load(path: Path) -> dict[str, Any]:
    """Read an old-format checkpoint: the safe loader with exactly LEGACY_GLOBALS allowed (numpy arrays)."""
    import numpy as np

    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's array-unpickling helper, as numpy itself names it
    allowed = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype"),
               (reconstruct, "numpy._core.multiarray._reconstruct"), (reconstruct, "numpy.core.multiarray._reconstruct")]
    if hasattr(np, "dtypes"):
        allowed.append((np.dtypes.UInt32DType, "numpy.dtypes.UInt32DType"))
    names = unsafe_globals(path)
    if names is None or not set(names) <= set(LEGACY_GLOBALS):
        raise UnsafeCheckpointError(
            f"checkpoint {path} is not an old-format ssmrec checkpoint (it names {names}); not upgraded, nothing "
            "from it was run")
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def to_new_format(ck: dict[str, Any]) -> dict[str, Any]:
    """An old-format checkpoint dict -> the new format (RNG states as tensors and plain values)."""
    out = dict(ck)
    if "rng" in out:
        out["rng"] = plain_rng_states(out["rng"])
    if "rng_ranks" in out:
        out["rng_ranks"] = [plain_rng_states(r) for r in out["rng_ranks"]]
    return out


def same(a: Any, b: Any) -> bool:
    """Deep equality of checkpoint values (tensors: same dtype, shape and bits)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def upgrade_checkpoint(path: str | os.PathLike, trust: bool = False) -> bool:
    """Rewrite an old-format checkpoint in the new format; True if rewritten, False if it was already new.

    `trust` must be True: the caller vouches for the file's origin. Steps: 1. read it (legacy_load); 2. convert
    the RNG states; 3. write the new file to a temporary name; 4. read that back with the plain safe loader and
    check it equals the converted dict, and that the converted RNG states give back the original ones exactly;
    5. rename it over `path` (the old file stays untouched if any step fails).
    """
    path = Path(path)
    if not trust:
        raise UserError(f"upgrading {path} reads an old-format checkpoint; pass --trust (trust=True) if you trust "
                        "where it came from")
    try:
        load_checkpoint(path)
        return False  # already loads with the safe loader
    except LegacyCheckpointError:
        pass
    old = legacy_load(path)
    new = to_new_format(old)
    bad = non_plain(new)
    if bad:
        raise UnsafeCheckpointError(f"checkpoint {path}: after the upgrade still not plain: {', '.join(bad[:5])}")
    with atomic_path(path) as tmp:
        torch.save(new, tmp)
        back = torch.load(tmp, map_location="cpu", weights_only=True)
        if not same(back, new) or not rng_round_trip(old, back):
            raise UserError(f"checkpoint {path}: the upgraded file does not read back equal; the original is kept")
    return True


def rng_round_trip(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The new-format RNG states of `new` convert back to exactly the old tuples of `old`."""
    import numpy as np

    from .utils import numpy_state_tuple, python_state_tuple

    pairs = ([(old["rng"], new["rng"])] if "rng" in old else []) + list(zip(old.get("rng_ranks") or [],
                                                                             new.get("rng_ranks") or []))
    for o, n in pairs:
        if isinstance(o["numpy"], tuple):
            t = numpy_state_tuple(n["numpy"])
            if not (t[0] == o["numpy"][0] and np.array_equal(t[1], o["numpy"][1]) and t[1].dtype == np.uint32
                    and tuple(t[2:]) == tuple(o["numpy"][2:])):
                return False
        if isinstance(o["python"], tuple) and python_state_tuple(n["python"]) != tuple(o["python"]):
            return False
    return len(old.get("rng_ranks") or []) == len(new.get("rng_ranks") or [])


def checkpoint_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Files named by `paths`: a .pt file as it is, a folder -> every *.pt under it (a run folder, a runs folder),
    a glob pattern (quoted, so the shell left it) -> its matches. Sorted, each once; a path matching nothing
    raises UserError."""
    import glob

    out: list[Path] = []
    for p in map(str, paths):
        if Path(p).is_dir():
            hits = sorted(Path(p).rglob("*.pt"))
        elif Path(p).is_file():
            hits = [Path(p)]
        else:
            hits = sorted(Path(h) for h in glob.glob(p, recursive=True) if Path(h).is_file())
        if not hits:
            raise UserError(f"{p}: no checkpoint file (.pt) there")
        out += [h for h in hits if h not in out]
    return out
