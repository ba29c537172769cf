"""Prepared-dataset cache: one folder per (dataset, source checksums, options, pipeline version).

Layout: `$SSMREC_CACHE_DIR/prepared/<name>-<key16>/` holding
- `arrays.npz`: items (flat int32), offsets (int64, n_users+1), timestamps (flat int64, optional),
  user_ids / item_ids (unicode arrays). Written as a zip with fixed member dates, so the same input gives
  byte-identical files (numpy's own savez stamps the current time).
- `meta.json`: name, n_items, protocol, titles, genres (sorted keys).
Both are written atomically (temporary file + rename); `meta.json` is written last and is the completeness
marker, so a crash never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_path, atomic_write_bytes, child_path
from .pipeline import split_flat
from .sources import cache_root
from .types import SequenceData

log = logging.getLogger(__name__)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def cache_key(name: str, source_records: list[dict], options: dict[str, Any], version: int) -> str:
    blob = json.dumps({"name": name, "sources": [(r["name"], r["bytes"], r["sha256"]) for r in source_records],
                       "options": options, "pipeline_version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_dir(name: str, key: str) -> Path:
    return child_path(cache_root() / "prepared", f"{name}-{key[:16]}", "dataset name")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for k in sorted(arrays):
            info = zipfile.ZipInfo(f"{k}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.ascontiguousarray(arrays[k]), allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue())
    return buf.getvalue()


def save(data: SequenceData, folder: Path) -> None:
    lens = data.lengths()
    arrays = {
        "items": np.concatenate(data.sequences).astype(np.int32) if data.sequences else np.zeros(0, np.int32),
        "offsets": np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        "user_ids": np.asarray(data.user_ids, dtype=str),
        "item_ids": np.asarray(data.item_ids, dtype=str),
    }
    if data.timestamps is not None:
        arrays["timestamps"] = np.concatenate(data.timestamps).astype(np.int64)
    atomic_write_bytes(folder / "arrays.npz", _npz_bytes(arrays))
    meta = {"name": data.name, "n_items": data.n_items, "protocol": data.protocol,
            "item_titles": data.item_titles, "item_genres": data.item_genres}
    with atomic_path(folder / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str), encoding="utf-8")


def load(folder: Path) -> SequenceData | None:
    """The cached SequenceData, or None when the folder is absent or incomplete."""
    meta_p, arr_p = folder / "meta.json", folder / "arrays.npz"
    if not (meta_p.is_file() and arr_p.is_file()):
        return None
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
        with np.load(arr_p, allow_pickle=False) as z:
            items, offsets = z["items"].astype(np.int64), z["offsets"]
            ts = z["timestamps"] if "timestamps" in z.files else None
            user_ids, item_ids = z["user_ids"], z["item_ids"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # damaged by hand or disk: rebuild
        log.warning("ignoring damaged cache folder %s (%s)", folder, e)
        return None
    bounds = offsets[1:-1]
    return SequenceData(
        name=meta["name"], sequences=split_flat(items, bounds), n_items=int(meta["n_items"]),
        user_ids=user_ids, item_ids=item_ids, item_titles=meta["item_titles"], item_genres=meta["item_genres"],
        timestamps=None if ts is None else split_flat(ts, bounds), protocol=meta["protocol"],
    )
