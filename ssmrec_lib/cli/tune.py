"""`python -m ssmrec_lib tune --model M --dataset D [--profile full] --trials N [--timeout-minutes T] [--set k=v ...]`

A hyperparameter search on the validation split (tune.py): Optuna TPE with a median pruner on per-epoch validation
NDCG@10; the study lives in SQLite under --out (or --storage, any SQLAlchemy URL such as postgresql://...) and the
same command continues it. `--workers N` runs N local processes on the study; N machines share it through one
`--storage` URL (README). Prints the trials and the best configuration as --set overrides.
"""

from __future__ import annotations

import argparse

from ..config import parse_overrides
from ..profiles import PROFILE_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--profile", default="full", choices=PROFILE_NAMES)
    parser.add_argument("--trials", type=int, default=20, help="trials this call adds (default 20)")
    parser.add_argument("--timeout-minutes", type=float, default=None, help="start no trial after this time")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="fixed for every trial (and left out of the search); repeatable")
    parser.add_argument("--out", default=None, help="study and trial runs (default outputs/<profile>/tuning)")
    parser.add_argument("--storage", default=None, help="SQLAlchemy URL (default sqlite:///<out>/<study>.db)")
    parser.add_argument("--study", default=None, help="study name (default <model>_<dataset>_<profile>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes on the one study, adding --trials in all (default 1); for many "
                             "machines run this command on each with one --storage URL (postgresql://, mysql://)")
    parser.add_argument("--data-dir", default=None)


def run(args: argparse.Namespace) -> int:
    from ..tune import best_overrides, run_study, trials_table

    out = args.out or f"outputs/{args.profile}/tuning"
    st = run_study(args.model, args.dataset, args.profile, trials=args.trials, timeout_minutes=args.timeout_minutes,
                   base=parse_overrides(args.overrides), out=out, storage=args.storage, study=args.study,
                   seed=args.seed, data_dir=args.data_dir, workers=args.workers)
    table = trials_table(st)
    print(table.to_string(index=False, max_colwidth=60))
    best = best_overrides(st)
    print(f"best validation ndcg@10 {st.best_value:.4f} (trial {st.best_trial.number}); as overrides:")
    print(" ".join(f"--set {k}={v}" for k, v in sorted(best.items())))
    return 0
