"""Any CSV/TSV with user, item and (optionally) timestamp columns, entering the same pipeline.

`load_dataset("csv", path="events.tsv", user_col="user", item_col="item", time_col="ts")`; `sep` defaults to a
tab for .tsv/.tsv.gz and a comma otherwise. Without `time_col` the file order is the time order.
Timestamps must be integers (any unit; give `time_unit="ms"` for milliseconds so SequenceData holds seconds).

Column names come from the header line, or from `columns` (the names in file order): with `header=False` the
first line is data (MovieLens-100K's u.data: `header=False, columns=["user", "item", "rating", "timestamp"],
sep="\t"`); with a header, `columns` renames it. Unnamed user / item columns are `user_id` or else `user`,
`item_id` or else `item`; other columns (a rating) are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import DataError
from . import sources
from .csvread import read_columns
from .pipeline import RawInteractions
from .textio import encoding_error, open_text, sniff_sep


def default_sep(path: Path) -> str:
    return "\t" if ".tsv" in path.name or ".tab" in path.name else ","


def locate(path=None, data_dir=None) -> list[Path]:
    if path is None:
        raise DataError("dataset 'csv' needs path=... (a CSV/TSV file with user, item and timestamp columns)")
    p = Path(path).expanduser()
    if not p.is_absolute() and data_dir is not None and not p.exists():
        p = Path(data_dir) / p
    if not p.is_file():
        raise DataError(f"dataset 'csv': file not found: {p}. Pass path= to an existing CSV/TSV file.")
    return [p]


DEFAULT_COLUMNS = {"user": ("user_id", "user"), "item": ("item_id", "item")}


def load_interactions_csv(path, *, user_col: str | None = None, item_col: str | None = None,
                          time_col: str | None = "timestamp", sep: str | None = None, header: bool = True,
                          columns: list[str] | str | None = None, encoding: str = "utf-8",
                          time_unit: str = "s") -> RawInteractions:
    """Read a delimited file into RawInteractions (ids as categoricals, time as int64); see the module docstring."""
    path = Path(path)
    sep = sep or default_sep(path)
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    if not header and not columns:
        raise DataError(f"{path}: a file without a header needs its column names: columns=user,item,timestamp "
                        "(in file order; --columns on the command line)")
    try:
        with open_text(path, encoding=encoding) as f:
            header_line = f.readline().rstrip("\r\n")
            empty = not header_line and not f.read(1)
    except UnicodeDecodeError as e:
        raise encoding_error(path, encoding, e) from e
    except (EOFError, OSError) as e:  # gzip.BadGzipFile is an OSError; a cut stream ends in EOFError
        raise DataError(f"{path}: the gzip stream is truncated or damaged ({e}); download or compress the file "
                        "again (`gzip -t FILE` checks it)") from e
    if empty:
        raise DataError(f"{path} is empty: expected a header line (e.g. user_id,item_id,timestamp) and one line "
                        "per interaction")
    first = next(csv.reader([header_line], delimiter=sep)) if header_line else []
    names = list(columns) if columns else first
    if columns and first and len(first) != len(columns):
        other = sniff_sep(header_line, sep)
        hint = f" The line looks {other}-separated: pass sep=... ." if other else ""
        raise DataError(f"{path}, line 1: {header_line[:200]!r} split on {sep!r} gives {len(first)} field(s), but "
                        f"columns= names {len(columns)} ({', '.join(columns)}).{hint}")
    user_col = user_col or next((c for c in DEFAULT_COLUMNS["user"] if c in names), "user_id")
    item_col = item_col or next((c for c in DEFAULT_COLUMNS["item"] if c in names), "item_id")
    need = [c for c in (user_col, item_col, time_col) if c]
    missing = [c for c in need if c not in names]
    if missing:
        if columns:
            raise DataError(f"{path}: columns= names {columns}, which lack {missing}; name the columns to use with "
                            "user_col= / item_col= / time_col= (--user-col, --item-col, --time-col)")
        other = sniff_sep(header_line, sep)
        hint = f" The header looks {other}-separated: pass sep=... ." if other else ""
        raise DataError(f"{path}, line 1: header {header_line[:200]!r} split on {sep!r} gives columns {names}, "
                        f"which lack {missing}; expected columns {need}. A file without a header line needs "
                        f"header=False and columns=... .{hint}")
    return read_columns(
        [path], user_col=user_col, item_col=item_col, time_col=time_col, sep=sep, encoding=encoding,
        column_names=list(columns) if columns else None, header=header, time_unit=time_unit,
        sources=[sources.file_record(path)], order_note="file order",
        notes={"source_format": "generic delimited file",
               "columns": {"user": user_col, "item": item_col, "time": time_col, "sep": sep,
                           **({"names": list(columns), "header": header} if columns else {})}},
    )
