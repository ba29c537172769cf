"""The flags that describe your own data file, shared by `data`, `train` and `workbook`.

    --dataset csv --path FILE [--user-col U --item-col I --time-col T --sep S --no-header --columns a,b,c]

are turned into one dataset spec string (data/spec.py: "csv:/abs/FILE?columns=a,b,c&header=false&sep=\\t"), the
form the library, the workbook's notebooks and a run's config.json share; `--dataset csv:FILE?...` is the same
spec written directly. Relative paths are made absolute, so the spec reloads from any working directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.spec import format_dataset_spec, parse_dataset_spec
from ..errors import UserError

FILE_FLAGS = ("path", "user_col", "item_col", "time_col", "sep", "no_header", "columns", "encoding", "time_unit")


def add_file_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "your own data (with --dataset csv)",
        "a CSV/TSV file of interactions; e.g. MovieLens-100K's u.data: --dataset csv --path u.data --sep '\\t' "
        "--no-header --columns user,item,rating,timestamp")
    g.add_argument("--path", default=None, help="the file (plain or gzipped)")
    g.add_argument("--user-col", default=None, help="user column (default user_id, else user)")
    g.add_argument("--item-col", default=None, help="item column (default item_id, else item)")
    g.add_argument("--time-col", default=None,
                   help="integer timestamp column (default timestamp; 'none': the file order is the time order)")
    g.add_argument("--sep", default=None, help="delimiter: a character or \\t / tab (default: tab for .tsv, else ',')")
    g.add_argument("--no-header", action="store_true", help="the first line is data (needs --columns)")
    g.add_argument("--columns", default=None, help="the file's column names in order, comma-separated")
    g.add_argument("--encoding", default=None, help="text encoding (default utf-8)")
    g.add_argument("--time-unit", default=None, choices=("s", "ms"), help="timestamps in seconds (default) or ms")


def file_options(args: argparse.Namespace) -> dict:
    """The load options the file flags set (only those given)."""
    opts = {}
    for flag in FILE_FLAGS:
        v = getattr(args, flag, None)
        if flag == "no_header":
            if v:
                opts["header"] = False
        elif v is not None:
            opts[flag] = v
    return opts


def dataset_spec(name: str, args: argparse.Namespace) -> str:
    """`name` with the file flags folded in, as a spec string with an absolute path; other names unchanged."""
    ref = parse_dataset_spec(name)
    flags = file_options(args)
    if ref.name != "csv":
        return name
    opts = {**ref.options, **parse_dataset_spec(format_dataset_spec("csv", flags)).options}
    if "path" in opts and Path(opts["path"]).expanduser().exists():
        opts["path"] = str(Path(opts["path"]).expanduser().resolve())
    return format_dataset_spec("csv", opts)


def dataset_specs(names: list[str], args: argparse.Namespace) -> list[str]:
    """dataset_spec for each name; file flags with no csv dataset among `names` are an error (not ignored)."""
    if file_options(args) and not any(parse_dataset_spec(n).name == "csv" for n in names):
        raise UserError("--path / --sep / --columns ... describe a file: use them with --dataset csv")
    return [dataset_spec(n, args) for n in names]
