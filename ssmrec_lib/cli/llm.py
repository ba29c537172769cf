"""`python -m ssmrec_lib llm --model gpt4rec|mamrec|llamarec --dataset D [--profile smoke|quick|full] [--seed S]
[--set key=value ...]`: the LLM-based recommenders (ssmrec_lib/llm/). `--set backbone=NAME_OR_PATH` picks the
language model (gpt2-tiny / mamba-tiny / llama-tiny from scratch, or a local folder of pretrained weights).
Writes outputs/runs/<run_id>/{config.json, metrics.json, log.jsonl} like `train`, and the fine-tuned weights
(backbone/, LlamaRec also adapter/; git-ignored) that `ssmrec_lib.llm.weights.load_run_recommender` reloads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=("gpt4rec", "mamrec", "llamarec"))
    parser.add_argument("--dataset", required=True, help="dataset with item titles (ml-1m, synthetic, ...)")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (backbone=mamba-tiny, epochs=5, max_eval_users=200, ...)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="outputs/runs")
    parser.add_argument("--force", action="store_true", help="rerun even if the run already finished")


def run(args: argparse.Namespace) -> int:
    from ..llm.experiment import run_llm_experiment

    r = run_llm_experiment(args.model, args.dataset, args.profile, args.seed, parse_overrides(args.overrides),
                           data_dir=args.data_dir, out=args.out, force=args.force)
    b = r["backbone"]
    print(f"run {r['run_id']}: backbone {b['name']} ({b['n_params']:,} params, pretrained {b['pretrained']}), "
          f"best epoch {r['best_epoch']}, latency {r['latency']['median_ms_per_user']:.1f} ms/user")
    for which in ("valid", "test"):
        m = r[which]
        print(f"  {which:5s} " + "  ".join(f"{k} {m[k]:.4f}" for k in ("hr@10", "ndcg@10", "mrr@10", "miss_rate")))
    print(f"  written to {Path(args.out) / r['run_id']} (fine-tuned weights in backbone/"
          + (", adapter/)" if r["model"] == "llamarec" else ")"))
    return 0
