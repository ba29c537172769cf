"""Shared helpers for the raw parsers: open plain or gzipped text, read delimited tables fast (pandas C
engine), and, only when that fails, find the first bad line so the error names file, line number and the
expected format.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ..errors import DataError

COMMON_SEPS = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "::": "'::'", " ": "space"}


def open_text(path: str | os.PathLike, encoding: str = "utf-8") -> io.TextIOBase:
    """Open a plain or gzipped (by magic bytes) text file."""
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def sniff_sep(first_line: str, expected: str) -> str | None:
    """If `first_line` lacks `expected` but holds another common delimiter, name that one."""
    if expected in first_line:
        return None
    for sep, label in COMMON_SEPS.items():
        if sep != expected and sep in first_line:
            return label
    return None


def encoding_error(path, encoding: str, e: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path}: cannot decode as {encoding} at byte {e.start} ({e.reason}). Wrong encoding? "
        f"Pass encoding=... (e.g. 'latin-1' for MovieLens .dat files)."
    )


def first_bad_line(lines: Sequence[str] | io.TextIOBase, check: Callable[[str], str | None],
                   skip: int = 0) -> tuple[int, str, str] | None:
    """(1-based line number, line, problem) of the first line for which `check` returns a problem."""
    for n, line in enumerate(lines, start=1):
        if n <= skip:
            continue
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        problem = check(line)
        if problem:
            return n, line, problem
    return None


def int_fields_check(sep: str, n_fields: int, int_fields: Sequence[int], what: str) -> Callable[[str], str | None]:
    """A line check for `first_bad_line`: `n_fields` fields split on `sep`, integers where asked."""
    def check(line: str) -> str | None:
        parts = line.split(sep) if sep != " " else line.split()
        if len(parts) != n_fields:
            return f"expected {n_fields} fields separated by {COMMON_SEPS.get(sep, repr(sep))} ({what}), got {len(parts)}"
        for k in int_fields:
            try:
                int(parts[k])
            except ValueError:
                return f"expected an integer in field {k + 1} ({what}), got {parts[k]!r}"
        return None

    return check


def malformed(path, n: int, line: str, problem: str) -> DataError:
    shown = line if len(line) <= 200 else line[:200] + "..."
    return DataError(f"{path}, line {n}: malformed line: {problem}.\n  line: {shown!r}")


def read_int_table(path, sep: str, names: Sequence[str], what: str, header: bool = False,
                   encoding: str = "utf-8") -> pd.DataFrame:
    """Read a delimited all-integer table with the C parser; on failure, report the first bad line.

    `sep` may be multi-character ("::"): it is replaced by a tab in memory first, so the C engine can read it.
    """
    data = read_bytes(path)
    try:
        text_head = data[:4096].decode(encoding)
    except UnicodeDecodeError as e:
        raise encoding_error(path, encoding, e) from e
    first = text_head.splitlines()[1 if header and len(text_head.splitlines()) > 1 else 0] if text_head else ""
    other = sniff_sep(first, sep if sep != " " else " ")
    if first and other:
        raise DataError(f"{path}: line {2 if header else 1} has no {COMMON_SEPS.get(sep, repr(sep))} delimiter "
                        f"but looks {other}-separated. Expected {what}. Wrong file or delimiter?")
    c_sep, orig = sep, data
    if len(sep) > 1:
        data, c_sep = data.replace(sep.encode(), b"\t"), "\t"
    try:
        df = pd.read_csv(io.BytesIO(data), sep=c_sep if c_sep != " " else r"\s+", header=0 if header else None,
                         names=list(names), dtype="int64", encoding=encoding, engine="c" if c_sep != " " else None,
                         skip_blank_lines=True)
        if df.isna().any().any():
            raise ValueError("missing field")
        return df
    except (ValueError, pd.errors.ParserError) as e:
        try:
            lines = orig.decode(encoding).splitlines()
        except UnicodeDecodeError as ue:
            raise encoding_error(path, encoding, ue) from ue
        bad = first_bad_line(lines, int_fields_check(sep, len(names), range(len(names)), what),
                             skip=1 if header else 0)
        if bad:
            raise malformed(path, *bad) from e
        raise DataError(f"{path}: could not parse ({e}); expected {what}") from e
