"""`python -m ssmrec_lib bench kernels|latency|streaming|training|data`: benchmarks that print figures (never timed
tests)."""

from __future__ import annotations

import argparse

SUBCOMMANDS = {
    "kernels": ("ssmrec_lib.ssm.bench", "SSM ops: reference vs fast paths, forward and forward+backward"),
    "latency": ("ssmrec_lib.profiling", "models: latency, throughput, memory vs sequence length"),
    "streaming": ("ssmrec_lib.stream_bench", "one new event with a per-user state vs re-encoding the history"),
    "training": ("ssmrec_lib.train_bench", "training cost per model: seconds per epoch, validation, peak memory"),
    "data": ("ssmrec_lib.data_bench", "dataset preparation: seconds cold and from the cache, peak memory"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_module_commands

    add_module_commands(parser.add_subparsers(dest="bench", required=True, metavar="WHAT"), SUBCOMMANDS)


def run(args: argparse.Namespace) -> int:  # replaced by the sub-command's run via set_defaults
    raise SystemExit("choose a benchmark: kernels, latency, streaming, training or data")
