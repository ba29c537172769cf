"""`python -m ssmrec_lib data stats|prepare|list`.

  data stats   --dataset NAME [--data-dir DIR] [--kcore K] [--source S] [--json]
               prints users, items, interactions, mean / median length, density: as read and after the filter
  data prepare --dataset NAME [--data-dir DIR] [--kcore K] [--source S]
               builds (or reuses) the prepared cache and prints where it is
  NAME may be your own file: --dataset csv --path FILE [--sep S --no-header --columns ...] or --dataset csv:FILE
  (cli/dataset_args.py, data/spec.py)
  data list    the known dataset names
"""

from __future__ import annotations

import argparse
import json
import time

from .dataset_args import add_file_arguments, dataset_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for action, help_ in (("stats", "dataset statistics, as read and after the filter (the paper's Table 4)"),
                          ("prepare", "build (or reuse) the prepared-data cache")):
        p = sub.add_parser(action, help=help_, description=help_)
        p.add_argument("--dataset", required=True, action="append",
                       help="dataset name or spec (repeatable); see `data list`; csv: your own file")
        p.add_argument("--data-dir", default=None, help="folder with the files (default: $SSMREC_DATA_DIR, "
                                                         "then the cache, then download)")
        p.add_argument("--kcore", type=int, default=5, help="iterated k-core threshold (0 disables; default 5)")
        p.add_argument("--source", default=None, help="which files to read (ml-1m: ratings|sequences; Amazon '23: "
                                                      "rating_only|last_out|reviews|history_sample)")
        p.add_argument("--no-download", action="store_true", help="never download; fail if the files are absent")
        if action == "stats":
            p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
        add_file_arguments(p)
    sub.add_parser("list", help="known dataset names")


def run(args: argparse.Namespace) -> int:
    from ..data.registry import DATASETS, dataset_names, load_dataset
    from ..data.spec import parse_dataset_spec
    from ..data.stats import format_table, stats_rows

    if args.data_command == "list":
        for n in dataset_names():
            print(f"{n:26s} {DATASETS[n].description if n in DATASETS else 'seeded generator (tests, smoke runs)'}")
        return 0
    import pandas as pd

    frames = []
    for name in dataset_specs(args.dataset, args):
        opts = {}
        base = parse_dataset_spec(name).name
        if args.source and base not in ("synthetic", "csv"):
            opts["source"] = args.source
        if args.no_download and base != "synthetic":
            opts["download"] = False
        t0 = time.perf_counter()
        data = load_dataset(name, args.data_dir, kcore=args.kcore, **opts)
        dt = time.perf_counter() - t0
        if args.data_command == "prepare":
            key = data.protocol.get("cache_key", "")
            print(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions "
                  f"({data.protocol.get('filter', 'none')}); ready in {dt:.2f} s; cache key {key[:16]}")
            if name != data.name:
                print(f"  dataset spec (for train / workbook): {name}")
        frames.append(stats_rows(data))
    if args.data_command == "stats":
        df = pd.concat(frames, ignore_index=True)
        if args.json:
            print(json.dumps(df.to_dict(orient="records"), indent=2))
        else:
            print(format_table(df))
    return 0
