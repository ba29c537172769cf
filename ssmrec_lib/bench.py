"""`python -m ssmrec_lib bench kernels|latency|streaming`: benchmarks that print figures (never timed tests)."""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS = {
    "kernels": ("ssmrec_lib.ssm.bench", "SSM ops: reference vs fast paths, forward and forward+backward"),
    "latency": ("ssmrec_lib.profiling", "models: latency, throughput, memory vs sequence length"),
    "streaming": ("ssmrec_lib.stream_bench", "one new event with a per-user state vs re-encoding the history"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    for name, (modname, help_) in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)


def run(args: argparse.Namespace) -> int:  # replaced by the sub-command's run via set_defaults
    raise SystemExit("choose a benchmark: kernels or latency")
