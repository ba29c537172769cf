"""Dataset specs: one string names a dataset and its load options, the same on the command line, in the workbook
and in the notebooks.

    NAME                       a registered dataset with its defaults            "ml-1m"
    NAME?KEY=VALUE&...         with options                                       "ml-1m?source=sequences"
    csv:FILE[?KEY=VALUE&...]   your own file (FILE becomes path=)                 "csv:u.data?sep=\\t&header=false&columns=user,item,rating,timestamp"

`parse_dataset_spec(spec) -> DatasetRef(name, label, options)`: `name` is the registry name given to
`load_dataset`, `options` its keyword arguments, and `label` a safe folder name for run ids and report names:
the name itself for a registered dataset without a path ("ml-1m" stays "ml-1m", so existing run ids are
unchanged), `csv-<file stem>` for a file (`csv:data/u.data` -> `csv-u`). `format_dataset_spec(name, options)`
writes the spec back (the CLI builds it from its --path/--sep/... flags), so a run's config.json holds a spec
that reloads the same data.

Values: `sep` takes a character or `\\t` / `tab` (also `comma`, `semicolon`, `space`, `pipe`); `header` takes
true/false (a file without a header needs `columns`); `columns` is a comma-separated list of the file's column
names in order; `time_col=none` reads the file order as the time order; `kcore` the k-core threshold (0 keeps
every interaction). Values are URL-unquoted (`%09` is a tab). A path containing `?` cannot be written as a spec:
use `load_dataset("csv", path=...)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..errors import DataError

SEP_ALIASES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}
SEP_NAMES = {"\t": "tab", " ": "space"}
SAFE_CHARS = ",:/\\._-~"  # kept as written in a formatted spec (everything else is %-quoted)
BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class DatasetRef:
    name: str  # the registry name (load_dataset's first argument)
    label: str  # a safe folder name: run ids, notebook output names, study names
    options: dict[str, Any] = field(default_factory=dict)  # load_dataset's keyword arguments


def _value(key: str, text: str) -> Any:
    text = unquote(text)
    if key == "sep":
        return SEP_ALIASES.get(text.lower(), text)
    if key == "header":
        if text.lower() not in BOOL_WORDS:
            raise DataError(f"dataset spec: header={text!r}; write header=true or header=false")
        return BOOL_WORDS[text.lower()]
    if key == "columns":
        return [c.strip() for c in text.split(",") if c.strip()]
    if key == "kcore":
        try:
            return int(text)
        except ValueError:
            raise DataError(f"dataset spec: kcore={text!r} is not an integer") from None
    if key == "time_col" and text.lower() in ("", "none"):
        return None
    return text


def safe_label(text: str) -> str:
    """Letters, digits, '.', '_' and '-' only (a folder name on every OS)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "data"


def parse_dataset_spec(spec: str) -> DatasetRef:
    """'csv:FILE?sep=\\t&columns=user,item,time' -> DatasetRef('csv', 'csv-FILESTEM', {path, sep, columns})."""
    spec = str(spec).strip()
    if not spec:
        raise DataError("empty dataset spec; give a dataset name (see `data list`) or csv:FILE")
    head, _, query = spec.partition("?")
    name, colon, path = head.partition(":")
    options: dict[str, Any] = {}
    if colon:
        if not path:
            raise DataError(f"dataset spec {spec!r}: nothing after '{name}:'; write {name}:FILE")
        options["path"] = path
    for part in (p for p in query.split("&") if p):
        key, eq, text = part.partition("=")
        if not eq or not key:
            raise DataError(f"dataset spec {spec!r}: {part!r} is not KEY=VALUE")
        options[key] = _value(key, text)
    if "path" in options:
        stem = Path(str(options["path"])).name.split(".")[0]
        label = f"{name}-{safe_label(stem)}"
    else:
        label = safe_label(name)
    return DatasetRef(name, label, options)


def format_dataset_spec(name: str, options: dict[str, Any] | None = None) -> str:
    """The spec string of (name, options): the inverse of `parse_dataset_spec` (options sorted by key)."""
    opts = dict(options or {})
    path = opts.pop("path", None)
    out = f"{name}:{path}" if path is not None else name
    parts = []
    for key in sorted(opts):
        v = opts[key]
        if key == "sep":
            text = SEP_NAMES.get(v, v)
        elif key == "header":
            text = "true" if v else "false"
        elif key == "columns":
            text = ",".join(v) if not isinstance(v, str) else v
        elif v is None:
            text = "none"
        else:
            text = str(v)
        parts.append(f"{key}=" + quote(str(text), safe=SAFE_CHARS))
    return out + ("?" + "&".join(parts) if parts else "")


def split_dataset_specs(text: str, known: list[str] | tuple[str, ...] = ()) -> list[str]:
    """A comma-separated list of specs (the notebooks' `datasets` parameter) -> specs. A comma inside a spec's
    options (`columns=user,item,time`) does not split it: a piece starts a new spec only when it is a `known`
    name, has a NAME: or NAME? prefix, or follows a spec without options."""
    out: list[str] = []
    for piece in (p.strip() for p in str(text).split(",")):
        if not piece:
            continue
        starts = piece in known or re.match(r"^[A-Za-z0-9_.-]+[:?]", piece) or not out or "?" not in out[-1]
        if starts:
            out.append(piece)
        else:
            out[-1] += "," + piece
    return out
