"""Amazon Reviews 2023 (McAuley Lab, Hou et al. 2024): Video_Games and Beauty_and_Personal_Care.

Sources (option `source=`), each plain or gzipped, looked up in the dataset folder:
- "rating_only": the 5-core benchmark CSV `<Category>.csv` (user_id,parent_asin,rating,timestamp).
- "last_out":    the 5-core `last_out[_w_his]` split CSVs `<Category>.{train,valid,test}.csv`; their rows are
                 united (the `history` column is not needed: each row is one interaction).
- "reviews":     raw reviews `<Category>.jsonl` (one JSON object a line: user_id, parent_asin, timestamp in ms),
                 or any `.json` file holding one JSON array of such objects (e.g. the offline review sample).
- "history_sample": `user_histories_5core_sample.jsonl` (one user a line: history[] + heldout, each with
                 parent_asin, timestamp_ms and product.title): the offline sample for tiny smoke runs.
- "auto" (default): rating_only, else last_out, else the raw `<Category>.jsonl`, else download rating_only.
  The offline samples are never picked silently: ask for them by name.
Titles come from `meta_<Category>.jsonl` or `meta_top200_by_rating_number.csv` when present (parent_asin ->
title), and from the history sample itself. Timestamps are milliseconds; SequenceData holds seconds.
CSVs are read columnar (pyarrow, ids as dictionary codes): see `csvread`.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from . import sources
from .csvread import read_columns
from .pipeline import RawInteractions
from .textio import encoding_error, malformed, open_text, sniff_sep

log = logging.getLogger(__name__)

HF = "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main/"
CATEGORIES = {  # name -> (category, folder, rating_only size, sha256)  (from OFFICIAL_FILES_LFS_POINTERS.tsv)
    "amazon2023-video-games": ("Video_Games", "amazon-2023-video-games", 47_244_051,
                               "2fb8fd6fb8b93a1a555e1aa4d46e3327e2bf345e9fb02a3bea184a9bce2ba4fa"),
    "amazon2023-beauty": ("Beauty_and_Personal_Care", "amazon-2023-beauty-and-personal-care", 384_249_280,
                          "14a2bacd6b4e18521ba45705d0a0e672ea82d2878fff2c8897ec8056c24cd6c1"),
}
SOURCES = ("auto", "rating_only", "last_out", "reviews", "history_sample")
CSV_COLS = ("user_id", "parent_asin", "timestamp")


def _patterns(cat: str) -> dict[str, list[str]]:
    return {
        "rating_only": [f"{cat}.csv", f"{cat}.csv.gz"],
        "last_out": [f"{cat}.train.csv", f"{cat}.train.csv.gz"],
        "reviews": [f"{cat}.jsonl", f"{cat}.jsonl.gz", "reviews_*.json", "reviews_*.json.gz"],
        "history_sample": ["user_histories_5core_sample.jsonl", "user_histories_5core_sample.jsonl.gz"],
        "meta": [f"meta_{cat}.jsonl", f"meta_{cat}.jsonl.gz", "meta_top200_by_rating_number.csv"],
    }


def remote(name: str) -> sources.RemoteFile:
    cat, _, size, sha = CATEGORIES[name]
    return sources.RemoteFile(f"{HF}benchmark/5core/rating_only/{cat}.csv", f"sha256:{sha}", f"{cat}.csv", size)


def locate(name: str, data_dir=None, *, source: str = "auto", download: bool = True, downloader=None,
           meta: bool = True) -> list[Path]:
    """[interaction file(s)..., meta file (optional, last)]."""
    if source not in SOURCES:
        raise DataError(f"{name}: source must be one of {SOURCES}, got {source!r}")
    cat, folder, _, _ = CATEGORIES[name]
    pats = _patterns(cat)
    order = ["rating_only", "last_out", "reviews"] if source == "auto" else [source]
    wanted = [p for s in order for p in pats[s]]
    if source == "auto":  # the offline review sample must be asked for by name
        wanted = [p for p in wanted if not p.startswith("reviews_")]
    found = sources.find_files(folder, wanted, data_dir)
    if found is None and download and source in ("auto", "rating_only"):
        rem = remote(name)
        try:
            path = sources.fetch(rem, sources.cache_root() / "raw" / folder, downloader=downloader, dataset=name)
            found = (path.parent, [path])
        except DataError as e:
            raise _missing(name, folder, wanted, data_dir, extra=str(e)) from e
    if found is None:
        raise _missing(name, folder, wanted, data_dir)
    d, files = found
    if files[0].name.startswith(f"{cat}.train."):
        files = [d / files[0].name.replace(".train.", f".{s}.") for s in ("train", "valid", "test")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{name}: {d} has {cat}.train.csv but not {', '.join(missing)}; the last_out split "
                            f"needs all three files.")
    else:
        files = files[:1]
    if meta:
        m = sources.find_files(folder, pats["meta"], d)
        if m is not None and m[0] == d:
            files.append(m[1][0])
    return files


def _missing(name, folder, wanted, data_dir, extra="") -> DataError:
    samples = sources.find_files(folder, ["user_histories_5core_sample.jsonl*", "reviews_*.json*"], data_dir)
    if samples is not None:
        extra += (f"\nOnly the small offline samples are there ({', '.join(p.name for p in samples[1])}); use "
                  f"source='history_sample' or source='reviews' (with kcore=0) to load them.")
    return sources.missing_files_error(name, folder, wanted, data_dir, remote(name).url, extra=extra.strip())


def parse(paths: list[Path], *, name: str = "amazon2023") -> RawInteractions:
    meta = [p for p in paths if p.name.startswith("meta_")]
    main = [p for p in paths if not p.name.startswith("meta_")]
    first = main[0].name
    if first.startswith("user_histories"):
        raw = read_history_jsonl(main[0])
    elif ".json" in first:
        raw = read_reviews_json(main[0])
    else:
        raw = read_benchmark_csv(main)
    if meta:
        titles = read_meta_titles(meta[0])
        raw.item_titles = {**titles, **(raw.item_titles or {})}
        raw.sources.append(sources.file_record(meta[0]))
    return raw


# ---------------------------------------------------------------- benchmark CSVs


def _check_header(path: Path, required=CSV_COLS) -> None:
    try:
        with open_text(path) as f:
            header = f.readline().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise encoding_error(path, "utf-8", e) from e
    cols = next(csv.reader([header])) if header else []
    missing = [c for c in required if c not in cols]
    if missing:
        other = sniff_sep(header, ",")
        hint = f" The header looks {other}-separated: wrong delimiter?" if other else ""
        raise DataError(f"{path}, line 1: header {header[:200]!r} lacks the column(s) {missing}; expected a "
                        f"comma-separated header with {', '.join(required)}.{hint}")


def read_benchmark_csv(paths: list[Path]) -> RawInteractions:
    """5-core benchmark CSV(s) -> RawInteractions; several files (train, valid, test) are concatenated."""
    for p in paths:
        _check_header(p)
    return read_columns(
        paths, user_col="user_id", item_col="parent_asin", time_col="timestamp", sep=",", time_unit="ms",
        sources=[sources.file_record(p) for p in paths], order_note="file order (files in the order given)",
        notes={"source_format": "Amazon Reviews 2023 5-core benchmark CSV"},
    )


# ---------------------------------------------------------------- JSON: raw reviews, history sample, meta


def _iter_json_records(path: Path, what: str):
    """Yield (line number or array index label, dict) from JSONL, or from a file holding one JSON array."""
    try:
        with open_text(path) as f:
            head = f.read(1024).lstrip()
            f.seek(0)
            if head.startswith("["):
                try:
                    arr = json.load(f)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}, line {e.lineno}: invalid JSON ({e.msg}); expected one JSON array "
                                    f"of {what}") from e
                for k, obj in enumerate(arr):
                    yield f"element {k}", obj
                return
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"line {n}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise malformed(path, n, line.rstrip("\r\n"), f"invalid JSON ({e.msg}); expected {what}") from e
    except UnicodeDecodeError as e:
        raise encoding_error(path, "utf-8", e) from e


def read_reviews_json(path: Path) -> RawInteractions:
    """Raw review JSONL (or a JSON array) -> RawInteractions (user_id, parent_asin, timestamp ms).

    JSONL goes through pyarrow's multi-threaded JSON reader (only the needed fields); when it rejects the file,
    the line-by-line reader below runs instead and names the first bad line.
    """
    kw = dict(time_unit="ms", sources=[sources.file_record(path)], order_note="file order",
              notes={"source_format": "Amazon Reviews 2023 raw reviews"})
    if not _is_json_array(path):
        fast = _read_reviews_arrow(path, **kw)
        if fast is not None:
            return fast
    users, items, times = [], [], []
    what = "an object with user_id, parent_asin and an integer timestamp (ms)"
    for where, obj in _iter_json_records(path, what):
        try:
            users.append(obj["user_id"])
            items.append(obj.get("parent_asin") or obj["asin"])
            times.append(int(obj["timestamp"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{path}, {where}: expected {what}; problem: {type(e).__name__} {e}") from e
    return RawInteractions.from_columns(users, items, time=np.asarray(times, dtype=np.int64), **kw)


def _is_json_array(path: Path) -> bool:
    try:
        with open_text(path) as f:
            return f.read(1024).lstrip().startswith("[")
    except UnicodeDecodeError:
        return False


def _read_reviews_arrow(path: Path, **kw) -> RawInteractions | None:
    """Columnar JSONL read of user_id, parent_asin (else asin), timestamp; None if pyarrow can't read it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    schema = pa.schema([("user_id", pa.string()), ("parent_asin", pa.string()), ("asin", pa.string()),
                        ("timestamp", pa.int64())])
    try:
        t = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema,
                                                             unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    item = pc.coalesce(t["parent_asin"], t["asin"])
    if t["user_id"].null_count or item.null_count or t["timestamp"].null_count:
        return None

    def codes_vocab(col):
        d = col.combine_chunks().dictionary_encode() if t.num_rows else pa.array([], pa.string()).dictionary_encode()
        return (d.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                np.asarray(d.dictionary.to_numpy(zero_copy_only=False)))

    u, uv = codes_vocab(t["user_id"])
    i, iv = codes_vocab(item)
    time = t["timestamp"].to_numpy().astype(np.int64)
    return RawInteractions(user=u, item=i, user_vocab=uv, item_vocab=iv, time=time, **kw)


def read_history_jsonl(path: Path) -> RawInteractions:
    """user_histories_5core_sample.jsonl -> RawInteractions (history then heldout, per user), titles too."""
    users, items, times, titles = [], [], [], {}
    what = "an object with user_id, history[] and heldout, each entry with parent_asin and timestamp_ms"
    for where, obj in _iter_json_records(path, what):
        try:
            for h in list(obj["history"]) + [obj["heldout"]]:
                users.append(obj["user_id"])
                items.append(h["parent_asin"])
                times.append(int(h["timestamp_ms"]))
                t = (h.get("product") or {}).get("title")
                if t:
                    titles.setdefault(h["parent_asin"], t)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{path}, {where}: expected {what}; problem: {type(e).__name__} {e}") from e
    return RawInteractions.from_columns(
        users, items, time=np.asarray(times, dtype=np.int64), time_unit="ms", item_titles=titles,
        sources=[sources.file_record(path)], order_note="file order (history, then heldout)",
        notes={"source_format": "Amazon Reviews 2023 5-core user-history sample"},
    )


def read_meta_titles(path: Path) -> dict[str, str]:
    """parent_asin -> title from meta JSONL or the meta CSV (pandas-written, same columns)."""
    if path.name.endswith((".csv", ".csv.gz")):
        _check_header(path, required=("parent_asin", "title"))
        df = pd.read_csv(path, usecols=["parent_asin", "title"], dtype=str, keep_default_na=False)
        return dict(zip(df["parent_asin"], df["title"]))
    fast = _read_meta_arrow(path)
    if fast is not None:
        return fast
    out: dict[str, str] = {}
    for where, obj in _iter_json_records(path, "an item-metadata object with parent_asin and title"):
        try:
            out[obj["parent_asin"]] = obj.get("title") or ""
        except (KeyError, TypeError) as e:
            raise DataError(f"{path}, {where}: expected an object with parent_asin and title") from e
    return out


def _read_meta_arrow(path: Path) -> dict[str, str] | None:
    """parent_asin -> title via pyarrow's JSON reader (only those two fields); None if it can't read the file."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([("parent_asin", pa.string()), ("title", pa.string())])
    try:
        t = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema,
                                                             unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if t["parent_asin"].null_count:
        return None
    return dict(zip(t["parent_asin"].to_pylist(), (x or "" for x in t["title"].to_pylist())))
