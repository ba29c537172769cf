"""`python -m ssmrec_lib reliability [--slow] [--out outputs/reliability]`: the fault-injection and bad-input trials
of issue 16 (bench/reliability.py runs them), summarised in <out>/report.md; exit code 1 when a trial failed."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slow", action="store_true",
                        help="the long kill -9 series (20 trials over the four core models) instead of 2 trials")
    parser.add_argument("--out", default="outputs/reliability", help="folder of report.md and trials.json")
    parser.add_argument("--only", action="append", default=None, metavar="CATEGORY",
                        help="run only the categories starting with this (kill, disk, damaged, interrupted, bad); "
                             "repeatable")
    parser.add_argument("--kill-trials", type=int, default=None, help="number of kill -9 trials (default 2, --slow 20)")
    parser.add_argument("--jobs", type=int, default=1, help="kill -9 trials run side by side (default 1)")


def run(args: argparse.Namespace) -> int:
    from .. import cli
    from ..bench.reliability import run_suite, summary, write_report

    trials, seconds = run_suite(slow=args.slow, only=args.only, kill_trials=args.kill_trials, jobs=args.jobs,
                                cli=cli)
    path = write_report(trials, seconds, args.out, slow=args.slow)
    for r in summary(trials):
        print(f"{r['category']:28s} trials {r['trials']:3d}  survived {r['survived']:3d}  "
              f"lost nothing {r['lost_nothing']:3d}")
    print(f"report: {path}")
    return 0 if all(t.ok for t in trials) else 1
