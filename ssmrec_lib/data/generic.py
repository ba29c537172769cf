"""Any CSV/TSV with user, item and (optionally) timestamp columns, entering the same pipeline.

`load_dataset("csv", path="events.tsv", user_col="user", item_col="item", time_col="ts")`; `sep` defaults to a
tab for .tsv/.tsv.gz and a comma otherwise. Without `time_col` the file order is the time order.
Timestamps must be integers (any unit; give `time_unit="ms"` for milliseconds so SequenceData holds seconds).
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


def load_interactions_csv(path, *, user_col: str = "user_id", item_col: str = "item_id",
                          time_col: str | None = "timestamp", sep: str | None = None, encoding: str = "utf-8",
                          time_unit: str = "s") -> RawInteractions:
    """Read a delimited file into RawInteractions (ids as categoricals, time as int64)."""
    path = Path(path)
    sep = sep or default_sep(path)
    try:
        with open_text(path, encoding=encoding) as f:
            header_line = f.readline().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise encoding_error(path, encoding, e) from e
    header = next(csv.reader([header_line], delimiter=sep)) if header_line else []
    need = [c for c in (user_col, item_col, time_col) if c]
    missing = [c for c in need if c not in header]
    if missing:
        other = sniff_sep(header_line, sep)
        hint = f" The header looks {other}-separated: pass sep=... ." if other else ""
        raise DataError(f"{path}, line 1: header {header_line[:200]!r} split on {sep!r} gives columns {header}, "
                        f"which lack {missing}; expected columns {need}.{hint}")
    return read_columns(
        [path], user_col=user_col, item_col=item_col, time_col=time_col, sep=sep, encoding=encoding,
        time_unit=time_unit, sources=[sources.file_record(path)], order_note="file order",
        notes={"source_format": "generic delimited file",
               "columns": {"user": user_col, "item": item_col, "time": time_col, "sep": sep}},
    )
