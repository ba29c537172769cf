"""`python -m ssmrec_lib bench kernels|latency|streaming|training|data`: benchmarks that print figures (never timed
tests). The measuring lives in ssmrec_lib/bench/ (one timer: bench/timer.py); this file parses and prints."""

from __future__ import annotations

import argparse

HELP = {
    "kernels": "SSM ops: reference vs fast paths, forward and forward+backward",
    "latency": "models: latency, throughput, memory vs sequence length",
    "streaming": "one new event with a per-user state vs re-encoding the history",
    "training": "training cost per model: seconds per epoch, validation, peak memory",
    "data": "dataset preparation: seconds cold and from the cache, peak memory",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    for name, (add, run_) in COMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add(p)
        p.set_defaults(_run=run_)


def run(args: argparse.Namespace) -> int:  # replaced by the sub-command's run via set_defaults
    raise SystemExit("choose a benchmark: kernels, latency, streaming, training or data")


def _floats(fmt: str):
    return lambda v: fmt.format(v)


# ------------------------------------------------------------------------------------------------ kernels
def kernels_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000], help="sequence lengths L")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--d-inner", type=int, default=128, help="channels E (scan) = heads x headdim (SSD)")
    parser.add_argument("--d-state", type=int, default=32)
    parser.add_argument("--headdim", type=int, default=32, help="SSD / Hydra head size P (E / P heads)")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell after one warm-up (best and median)")
    parser.add_argument("--budget-s", type=float, default=60.0,
                        help="skip a cell whose predicted single forward+backward exceeds this many seconds")
    parser.add_argument("--mem-budget-gb", type=float, default=6.0,
                        help="skip a quadratic-form cell whose estimated memory exceeds this")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, one repeat")
    parser.add_argument("--out", default=None, help="also write the table as CSV here")


def kernels_run(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..bench import kernels
    from ..utils import atomic_write_text

    if args.quick:
        for k, v in kernels.QUICK.items():
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    df = kernels.bench_kernels(args.sizes, args.batch, args.d_inner, args.d_state, args.headdim, args.chunk_size,
                               args.repeats, args.budget_s, args.mem_budget_gb, args.device,
                               log=lambda m: print(m, flush=True))
    print(f"\n{df.attrs['header']}\n")
    print(kernels.format_table(df))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        atomic_write_text(args.out, df[kernels.TABLE_COLUMNS + kernels.CSV_EXTRA].to_csv(index=False))
        print(f"\nwrote {args.out}")
    errors = int(df.note.astype(str).str.startswith("error").sum())
    if errors:
        print(f"\n{errors} cell(s) failed: see the note column")
    return 1 if errors else 0


# ------------------------------------------------------------------------------------------------ latency
def latency_arguments(parser: argparse.ArgumentParser) -> None:
    import torch

    parser.add_argument("--models", nargs="+", default=["sasrec", "mamba4rec", "mamba2rec", "hydra4rec", "lrurec",
                                                         "gru4rec"])
    parser.add_argument("--lengths", default="50,200,1000,4000", help="comma-separated sequence lengths")
    parser.add_argument("--batch", default="1,256", help="comma-separated batch sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=5.0, help="stop growing L once one call takes longer")
    parser.add_argument("--out", default="outputs/bench/latency.csv", help="CSV to write (with a .json of provenance)")
    parser.add_argument("--llm-profile", default="quick", choices=("smoke", "quick", "full"),
                        help="sizes of the LLM models (gpt4rec, mamrec, llamarec) when --models names them")


def latency_run(args: argparse.Namespace) -> int:
    from ..bench import latency, save

    lengths = [int(x) for x in str(args.lengths).split(",") if x]
    batches = [int(x) for x in str(args.batch).split(",") if x]
    df = latency.bench_latency(args.models, lengths, batches, device=args.device, repeats=args.repeats,
                               budget_s=args.budget_s, llm_profile=args.llm_profile)
    print(latency.format_table(df))
    print(f"\nwrote {save(df, args.out)}")
    return 0


# ------------------------------------------------------------------------------------------------ streaming
def streaming_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench.streaming import STREAMING_MODELS

    parser.add_argument("--models", nargs="+", default=STREAMING_MODELS)
    parser.add_argument("--lengths", default="200,1000,4000", help="comma-separated history lengths")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="outputs/bench/streaming.csv")


def streaming_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.streaming import bench_streaming

    df = bench_streaming(args.models, [int(x) for x in args.lengths.split(",") if x], batch=args.batch,
                         repeats=args.repeats, device=args.device)
    cols = ["model", "length", "step", "update_ms", "update_python_ms", "reencode_ms", "reencode_over_update",
            "reencode_over_python_update", "state_kb", "prefill_s", "status"]
    print(df[cols].to_string(index=False, float_format=_floats("{:.3f}")))
    print(f"\nwrote {save(df, args.out)}")
    return 0


# ------------------------------------------------------------------------------------------------ training
def training_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench.training import TRAIN_MODELS

    parser.add_argument("--models", nargs="+", default=TRAIN_MODELS)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--profile", default="full", help="training profile whose settings are timed")
    parser.add_argument("--steps", type=int, default=12, help="timed batches per model (0 = a whole epoch)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides as for `train` (e.g. bf16=true)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="outputs/bench/training.csv")
    parser.add_argument("--profile-step", action="store_true",
                        help="instead: one training step cut into data / encoder / output_ce / backward / optimizer")
    parser.add_argument("--compare", nargs="+", default=None, metavar="PATH",
                        help="instead: training paths side by side in one run, each a quoted list of KEY=VALUE "
                             "overrides ('' = today's defaults), e.g. --compare '' 'bf16=true ce_chunk=1024'; "
                             "prints speed (--steps timed steps, interleaved), peak RSS and validation NDCG@10 "
                             "after --curve-steps steps")
    parser.add_argument("--labels", nargs="+", default=None, help="names of the --compare paths (old new ...)")
    parser.add_argument("--curve-steps", type=int, default=60,
                        help="--compare: training steps of each path's quality run (validation curve); 0 = speed only")
    parser.add_argument("--points", type=int, default=3, help="--compare: validations along the --curve-steps")


def training_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.training import bench_training
    from ..config import parse_overrides

    if args.profile_step:
        return profile_step_run(args)
    if args.compare is not None:
        return compare_run(args)
    df = bench_training(args.models, args.dataset, args.profile, args.steps, args.warmup,
                        parse_overrides(args.overrides), args.data_dir)
    cols = ["model", "objective", "sec_per_batch", "batches_per_epoch", "sec_per_epoch", "valid_seconds",
            "peak_mem_mb", "params", "params_wo_emb", "threads"]
    print(df[cols].to_string(index=False, float_format=_floats("{:.3f}")))
    print(f"\nwrote {save(df, args.out)}")
    return 0


def profile_step_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.step import SECTIONS, profile_step
    from ..config import parse_overrides

    df = profile_step(args.models, args.dataset, args.profile, args.steps, args.warmup,
                      parse_overrides(args.overrides), args.data_dir)
    cols = ["model", "objective", *(f"{s}_ms" for s in SECTIONS), "step_ms", "targets_per_step", "targets_per_s",
            "width", "threads"]
    print(df[cols].to_string(index=False, float_format=_floats("{:.1f}")))
    print(f"\nwrote {save(df, args.out.replace('.csv', '_step.csv'))}")
    return 0


def compare_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.compare import compare_training
    from ..config import parse_overrides
    from ..errors import UserError

    labels = args.labels or (["old", "new"] if len(args.compare) == 2 else [f"p{i}" for i in range(len(args.compare))])
    if len(labels) != len(args.compare) or len(set(labels)) != len(labels):
        raise UserError(f"--labels needs {len(args.compare)} distinct names, one per --compare path; got {labels}")
    paths = {lab: parse_overrides(spec.split()) for lab, spec in zip(labels, args.compare)}
    df, curves = compare_training(args.models, paths, args.dataset, args.profile, parse_overrides(args.overrides),
                                  steps=args.curve_steps, points=args.points, warmup=args.warmup, timed=args.steps,
                                  data_dir=args.data_dir)
    cols = ["model", "path", "sec_per_batch", "sec_per_epoch", "targets_per_s", "speedup", "peak_rss_mb",
            "first_batches_s", "valid_ndcg@10", "steps", "timed_batches"]
    print(df[cols].to_string(index=False, float_format=_floats("{:.3f}")))
    if curves.empty:
        print(f"\nwrote {save(df, args.out.replace('.csv', '_compare.csv'))} (speed only: --curve-steps 0)")
        return 0
    print("\nvalidation NDCG@10 by step (the curves)")
    print(curves.pivot_table(index=["model", "step"], columns="path", values="valid_ndcg@10").to_string(
        float_format=_floats("{:.4f}")))
    stem = args.out.replace(".csv", "")
    print(f"\nwrote {save(df, stem + '_compare.csv')}, {save(curves, stem + '_compare_curves.csv')}")
    try:
        from ..report.plotting import compare_curves

        fig = compare_curves(curves)
        fig.savefig(stem + "_compare_curves.png", dpi=110, bbox_inches="tight")
        print(f"wrote {stem}_compare_curves.png")
    except ImportError as e:  # matplotlib missing: the CSV holds the curves
        print(f"no figure ({e})")
    return 0


# ------------------------------------------------------------------------------------------------ data
def data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="*", default=["ml-1m"], help="dataset names (see `data list`)")
    parser.add_argument("--beauty-sized", action="store_true",
                        help="also a generated file the size of Amazon '23 Beauty 5-core (6.6M rows; ~1 min)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="outputs/bench/data.csv")


def data_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.data import bench_data

    df = bench_data(args.datasets, args.data_dir, args.beauty_sized)
    print(df.to_string(index=False, float_format=_floats("{:.2f}")))
    print(f"\nwrote {save(df, args.out)}")
    return 0


COMMANDS = {"kernels": (kernels_arguments, kernels_run), "latency": (latency_arguments, latency_run),
            "streaming": (streaming_arguments, streaming_run), "training": (training_arguments, training_run),
            "data": (data_arguments, data_run)}
