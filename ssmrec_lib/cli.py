"""`python -m ssmrec_lib <command> ...`

Each command lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; this file only
dispatches, so importing the CLI stays cheap and one command's dependencies never slow another down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ssmrec_lib.data.cli", "dataset statistics (the paper's Table 4) and cache preparation"),
    "bench": ("ssmrec_lib.bench", "benchmarks: `bench kernels` (SSM ops), `bench latency` (models)"),
    "train": ("ssmrec_lib.train_cli", "train and evaluate one model on one dataset"),
    "llm": ("ssmrec_lib.llm_cli", "LLM recommenders: GPT4Rec, MamRec, LlamaRec (backbone labelled)"),
    "report": ("ssmrec_lib.reproduce", "the reproduction table of the paper's Table 3 from finished runs"),
    "workbook": ("ssmrec_lib.workbook", "run the notebooks through papermill and render HTML reports"),
}


def add_module_commands(sub, commands: dict[str, tuple[str, str]]) -> None:
    """Add one sub-parser per (module, help) in `commands`; each module gives add_arguments(parser) and run(args).

    A module that does not exist (a command not built yet) is skipped; any other import error is raised.
    """
    for name, (modname, help_) in commands.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ssmrec_lib", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_module_commands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors carry their fix in the message
        from ssmrec_lib.errors import UserError

        if isinstance(e, UserError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
