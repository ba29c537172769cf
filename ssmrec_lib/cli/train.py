"""`python -m ssmrec_lib train --model M --dataset D [--profile smoke|quick|full] [--seed S] [--set key=value ...]`

Writes outputs/runs/<run_id>/:
    config.json   resolved train + model config, overrides, parameter counts, objective, evaluation protocol,
                  dataset summary, kernel path, environment (git SHA, torch, threads, device)
    metrics.json  best-epoch validation and final test metrics, each with its protocol
    log.jsonl     one line per epoch (loss, lr, seconds, validation metrics)
    checkpoint_last.pt / checkpoint_best.pt   (git-ignored)
run_id = <model>_<dataset>_<profile>_s<seed>_<hash of the run's identity> (experiment.py: resolved configs,
objective, dataset content, protocol): the same command on the same data and code reuses a finished run (and says
so, with the commit that trained it; --force retrains from scratch) and resumes an interrupted one.

Data-parallel: `torchrun --nproc-per-node N -m ssmrec_lib train ...` (or `make train-ddp NPROC=N TRAIN_ARGS="..."`) trains
the same run on N processes (ssmrec_lib/distributed.py: sharded batches, summed gradients, exact sharded evaluation;
rank 0 writes and prints); the world size and backend enter the run's identity.

Your own data: `--dataset csv --path FILE [--sep S --no-header --columns user,item,rating,timestamp ...]` (or the
spec `--dataset 'csv:FILE?sep=\\t&...'`); the run folder is <model>_csv-<file stem>_..., and its identity holds the
content hash of the prepared data, so another file (or an edited one) trains anew.

--set routing: `model.KEY=V` / `train.KEY=V` go to that config; a plain KEY goes where it exists (an error if
both configs have it). Unknown keys or bad values raise ConfigError listing the valid keys.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from ..config import parse_overrides
from ..distributed import finish, is_writer
from ..errors import UserError
from ..experiment import DEFAULT_OUT, format_result, run_experiment
from ..profiles import PROFILE_NAMES
from .dataset_args import add_file_arguments, dataset_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (sasrec, mamba4rec, mamba2rec, hydra4rec, ...)")
    parser.add_argument("--dataset", required=True,
                        help="dataset name (ml-1m, amazon2014-beauty, synthetic, ...) or csv (your own file: --path)")
    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES, help="training profile (default quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train or model config key (model.d_model=64, lr=1e-3, ...); repeatable")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $SSMREC_DATA_DIR or data/)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"runs folder (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="retrain even if the run already finished")
    parser.add_argument("--from-study", default=None, metavar="DB",
                        help="train the configuration a tuning study chose: its best trial's overrides (a study "
                             "file outputs/<profile>/tuning/<study>.db or a SQLAlchemy URL); --set adds keys the "
                             "study did not choose")
    parser.add_argument("--study", default=None, help="the study's name, where the file holds several")
    add_file_arguments(parser)


def study_overrides(args: argparse.Namespace) -> tuple[dict, dict | None]:
    """(overrides, chosen_by): the --set overrides, on top of the chosen configuration of --from-study (its
    model must be --model; a key set to another value than the study chose is an error: which one trained would
    be unclear)."""
    overrides = parse_overrides(args.overrides)
    if not args.from_study:
        return overrides, None
    from ..tune import chosen_configuration

    chosen, chosen_by = chosen_configuration(args.from_study, args.study)
    if chosen_by.get("model") not in (None, args.model):
        raise UserError(f"study {chosen_by['study']!r} tuned {chosen_by['model']}, not {args.model}")
    both = sorted(k for k in set(chosen) & set(overrides) if str(chosen[k]) != str(overrides[k]))
    if both:
        raise UserError(f"--set {', '.join(both)}: the study {chosen_by['study']!r} chose "
                        f"{', '.join(f'{k}={chosen[k]}' for k in both)}; drop --set or --from-study")
    return {**chosen, **overrides}, chosen_by


def run(args: argparse.Namespace) -> int:
    dataset = dataset_specs([args.dataset], args)[0]
    overrides, chosen_by = study_overrides(args)
    r = run_experiment(args.model, dataset, args.profile, args.seed, overrides,
                       data_dir=args.data_dir, out=args.out, force=args.force, chosen_by=chosen_by)
    finish()  # data-parallel: every rank leaves the process group together (nothing in one process)
    if not is_writer():  # data-parallel: rank 0 alone reports
        return 0
    print(format_result(r))
    print(f"  written to {Path(args.out) / r['run_id']}")
    return 0
