"""`python -m ssmrec_lib report --runs DIR --dataset D --out DIR`: the reproduction table of the paper's Table 3
from finished run folders (report/reproduce.py writes it; this file parses and prints)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", default="outputs/full/runs", help="folder of run folders")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--out", default="outputs/full")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $SSMREC_DATA_DIR or data/)")


def run(args: argparse.Namespace) -> int:
    from ..report.reproduce import write_report

    paths = write_report(args.runs, args.dataset, args.out, data_dir=args.data_dir)
    print(Path(paths[1]).read_text())
    print("wrote", ", ".join(str(p) for p in paths if p))
    return 0
