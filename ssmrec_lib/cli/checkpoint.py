"""`python -m ssmrec_lib checkpoint check|upgrade PATH... [--trust]`: read checkpoints with the safe loader, or
rewrite old-format ones (numpy RNG states) in the new tensors-and-plain-values format (checkpoint.py).

PATH: a .pt file, a run folder, a folder of run folders, or a quoted glob ('outputs/full/runs/*/checkpoint_*.pt').
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check", "upgrade"],
                        help="check: load each with the safe loader; upgrade: rewrite old-format files")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint files, run folders or quoted globs")
    parser.add_argument("--trust", action="store_true",
                        help="upgrade only: you trust where these files came from (they are old ssmrec checkpoints)")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import checkpoint_files, load_checkpoint, upgrade_checkpoint
    from ..errors import UserError

    if args.action == "upgrade" and not args.trust:
        raise UserError("checkpoint upgrade reads old-format files that the safe loader refuses; add --trust if you "
                        "trust where they came from (e.g. you wrote them with an older ssmrec)")
    failed = 0
    for path in checkpoint_files(args.paths):
        try:
            if args.action == "check":
                load_checkpoint(path)
                print(f"ok        {path}")
            else:
                print(f"{'upgraded' if upgrade_checkpoint(path, trust=True) else 'current ':9} {path}")
        except UserError as e:
            failed += 1
            print(f"FAILED    {path}: {e}", file=sys.stderr)
    return 1 if failed else 0
