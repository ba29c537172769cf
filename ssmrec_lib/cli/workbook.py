"""`python -m ssmrec_lib workbook [--profile smoke|quick|full] ...`: run the notebooks through papermill and render
HTML reports (report/workbook.py does it; this file parses)."""

from __future__ import annotations

import argparse

from ..config import parse_overrides
from ..errors import UserError
from ..profiles import WORKBOOK_PROFILES
from ..report.workbook import ROOT, run_workbook
from .dataset_args import add_file_arguments, dataset_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=sorted(WORKBOOK_PROFILES))
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="override the profile's datasets (names or specs: csv:FILE, or csv with --path ...)")
    parser.add_argument("--models", nargs="+", default=None, help="override the profile's models")
    parser.add_argument("--data-dir", default=None, help="dataset folder (else $SSMREC_DATA_DIR, cache, download)")
    parser.add_argument("--out", default=str(ROOT / "outputs"), help="output root (default: outputs/)")
    parser.add_argument("--force", action="store_true", help="retrain even where a finished run exists")
    parser.add_argument("--only", nargs="+", default=None, help="run only notebooks whose output name starts so")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a train or model setting for every sequence-model training step, as for `train` "
                             "(it enters the run identity: runs trained by `train` with the same --set are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the profile's seeds")
    parser.add_argument("--jobs", type=int, default=None,
                        help="training steps run side by side, each on cores/jobs threads (default: one per core; "
                             "1: one after another)")
    add_file_arguments(parser)


def run(args: argparse.Namespace) -> int:
    datasets = dataset_specs(args.datasets or [], args) or None
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be 1 or more, got {args.jobs}")
    run_workbook(args.profile, datasets, args.models, args.out, args.data_dir, args.force, args.only, args.jobs,
                 parse_overrides(args.overrides), args.seeds)
    return 0

