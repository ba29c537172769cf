"""`python -m ssmrec_lib <command> ...` (or `ssmrec <command> ...`, the console script of `pip install`)

The only place that parses arguments; nothing in the library imports this package. Each command lives in its own
module here (cli/<command>.py) exposing `add_arguments(parser)` and `run(args) -> int`, and calls the library;
this file only dispatches from a static table, so one command's dependencies never slow another down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ssmrec_lib.cli.data", "dataset statistics (the paper's Table 4) and cache preparation"),
    "bench": ("ssmrec_lib.cli.bench", "benchmarks: kernels (SSM ops), latency (models), streaming, training, data"),
    "train": ("ssmrec_lib.cli.train", "train and evaluate one model on one dataset"),
    "llm": ("ssmrec_lib.cli.llm", "LLM recommenders: GPT4Rec, MamRec, LlamaRec (backbone labelled)"),
    "tune": ("ssmrec_lib.cli.tune", "hyperparameter search on the validation split (Optuna, SQLite study)"),
    "report": ("ssmrec_lib.cli.report", "the reproduction table of the paper's Table 3 from finished runs"),
    "workbook": ("ssmrec_lib.cli.workbook", "run the notebooks through papermill and render HTML reports"),
    "checkpoint": ("ssmrec_lib.cli.checkpoint", "check checkpoints with the safe loader; upgrade old-format ones"),
    "reliability": ("ssmrec_lib.cli.reliability", "fault injection (kill -9, disk full, damaged files) and bad "
                                                  "inputs: outputs/reliability/report.md"),
}


def add_module_commands(sub, commands: dict[str, tuple[str, str]]) -> None:
    """Add one sub-parser per (module, help) in `commands`; each module gives add_arguments(parser) and run(args).

    The table is static: a module that does not exist is a broken install and raises (ModuleNotFoundError).
    """
    for name, (modname, help_) in commands.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)


def build_parser() -> argparse.ArgumentParser:
    prog = "ssmrec" if os.path.basename(sys.argv[0]) == "ssmrec" else "python -m ssmrec_lib"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_module_commands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = os.environ.get("RANK", "0") != "0"  # a data-parallel rank other than 0: warnings only (distributed.py)
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors carry their fix in the message
        from ..errors import UserError

        if isinstance(e, UserError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
