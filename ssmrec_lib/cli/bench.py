"""`python -m ssmrec_lib bench kernels|latency|streaming|training|ddp|data|scale`: benchmarks that print figures
(never timed tests). The measuring lives in ssmrec_lib/bench/ (one timer: bench/timer.py); this file parses and prints."""

from __future__ import annotations

import argparse

HELP = {
    "kernels": "SSM ops: reference vs fast paths, forward and forward+backward",
    "latency": "models: latency, throughput, memory vs sequence length",
    "streaming": "one new event with a per-user state vs re-encoding the history",
    "training": "training cost per model: seconds per epoch, validation, peak memory",
    "ddp": "data-parallel training throughput with 1, 2, ... gloo processes (torchrun) and the speed-up",
    "data": "dataset preparation: seconds cold and from the cache, peak memory",
    "scale": "Amazon '23 Beauty's scale on synthetic data: epoch time and memory, full CE vs sampled softmax",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    for name, (add, run_) in COMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add(p)
        p.set_defaults(_run=run_)


def run(args: argparse.Namespace) -> int:  # replaced by the sub-command's run via set_defaults
    raise SystemExit("choose a benchmark: kernels, latency, streaming, training, ddp, data or scale")


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
    parser.add_argument("--ops", nargs="+", default=None, choices=("selective_scan", "ssd", "hydra_mixer"),
                        help="only these ops (default: all)")
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
                               log=lambda m: print(m, flush=True), ops=args.ops)
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
    parser.add_argument("--kernels", default="",
                        help="comma-separated kernel choices (ref,cpu,fused,auto) to time each SSM model under, side "
                             "by side (e.g. ref,auto); default: each model's own setting, once")
    parser.add_argument("--train-lengths", default="",
                        help="comma-separated lengths at which to also time a training step (fwd + bwd of a "
                             "full-softmax cross-entropy), rows with mode train_step")


def latency_run(args: argparse.Namespace) -> int:
    from ..bench import latency, save
    from ..errors import UserError

    lengths = [int(x) for x in str(args.lengths).split(",") if x]
    batches = [int(x) for x in str(args.batch).split(",") if x]
    choices = [k for k in str(args.kernels).split(",") if k]
    bad = sorted(set(choices) - {"ref", "cpu", "fused", "auto"})
    if bad:
        raise UserError(f"bench latency --kernels: {bad} not among ref, cpu, fused, auto")
    df = latency.bench_latency(args.models, lengths, batches, device=args.device, repeats=args.repeats,
                               budget_s=args.budget_s, llm_profile=args.llm_profile, kernels=choices or None,
                               train_lengths=[int(x) for x in str(args.train_lengths).split(",") if x] or None)
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


# ------------------------------------------------------------------------------------------------ ddp
def ddp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="process counts to time, in order")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--profile", default="quick", help="training profile whose settings are timed")
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides as for `train` (e.g. batch_size=256)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per configuration")
    parser.add_argument("--layouts", nargs="+", default=None, metavar="NxT",
                        help="processes x threads per process to time instead of --nprocs/--threads, e.g. 1x2 2x1: "
                             "one 2-thread process against two 1-thread processes on two cores")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time the layouts in turn this many times; each keeps its median round")
    parser.add_argument("--out", default="outputs/bench/ddp.csv")


def ddp_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.ddp import COLUMNS, bench_ddp
    from ..config import parse_overrides

    df = bench_ddp(args.model, args.dataset, args.profile, tuple(args.nprocs), args.steps, args.warmup,
                   args.threads, parse_overrides(args.overrides), args.data_dir, timeout_s=args.timeout_s,
                   log=lambda m: print(m, flush=True), layouts=parse_layouts(args.layouts), rounds=args.rounds)
    r = df.iloc[0]
    threads = sorted(set(df["threads_per_proc"]))
    print(f"\n{args.model} on {args.dataset} ({args.profile} profile, {r['objective']}), global batch "
          f"{r['batch_size']} samples, {'/'.join(map(str, threads))} thread(s) per process, gloo on CPU; "
          f"{args.steps} timed steps" + (f", median of {args.rounds} rounds" if args.rounds > 1 else ""))
    print(df[COLUMNS].to_string(index=False, float_format=_floats("{:.3f}")))
    print(f"\nwrote {save(df, args.out)}")
    return 0


def parse_layouts(values: list[str] | None) -> tuple[tuple[int, int], ...] | None:
    """['1x2', '2x1'] -> ((1, 2), (2, 1)): processes x threads per process; UserError naming a bad one."""
    from ..errors import UserError

    if not values:
        return None
    out = []
    for v in values:
        n, _, t = v.lower().partition("x")
        if not (n.isdigit() and t.isdigit() and int(n) > 0 and int(t) > 0):
            raise UserError(f"--layouts {v!r}: write processes x threads, e.g. 2x1 (two 1-thread processes)")
        out.append((int(n), int(t)))
    return tuple(out)


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


# ------------------------------------------------------------------------------------------------ scale
def scale_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench.scale import H200_FP32_TFLOPS, SCALE_MODELS

    parser.add_argument("--models", nargs="+", default=SCALE_MODELS)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of Beauty '23's users, items and interactions (1 = the real shape)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--n-sampled", type=int, default=1000, help="sampled softmax: negatives per batch")
    parser.add_argument("--sampler", default="uniform", choices=("uniform", "popularity", "in_batch"))
    parser.add_argument("--steps", type=int, default=6, help="timed training batches per (model, loss)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--sample-users", type=int, default=2048, help="users generated (training batches' pool)")
    parser.add_argument("--eval-users", type=int, default=1024, help="validation users timed (full ranking)")
    parser.add_argument("--mem-budget-gb", type=float, default=8.0,
                        help="skip a full-CE batch whose logits would need more (4 float32 copies)")
    parser.add_argument("--gpu-tflops", type=float, default=H200_FP32_TFLOPS,
                        help="H200 throughput for the catalogue products (default: FP32 datasheet peak)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure what the H200 column estimates")
    parser.add_argument("--out", default="outputs/bench/scale.csv")


def scale_run(args: argparse.Namespace) -> int:
    from ..bench import save
    from ..bench.scale import bench_scale

    df = bench_scale(args.models, args.scale, args.batch_size, args.max_len, args.n_sampled, args.sampler,
                     args.steps, args.warmup, args.sample_users, args.eval_users, args.mem_budget_gb,
                     args.gpu_tflops, args.threads, device=args.device, log=lambda m: print(m, flush=True))
    print(f"\n{df.attrs['header']}\n")
    print(df.to_string(index=False, float_format=_floats("{:.3f}")))
    if args.scale != 1.0:
        print(f"\n(scale {args.scale:g}: the projection is for this reduced shape; run --scale 1 for the real set)")
    print(f"\nwrote {save(df, args.out)}")
    return 0


COMMANDS = {"kernels": (kernels_arguments, kernels_run), "latency": (latency_arguments, latency_run),
            "streaming": (streaming_arguments, streaming_run), "training": (training_arguments, training_run),
            "ddp": (ddp_arguments, ddp_run), "data": (data_arguments, data_run), "scale": (scale_arguments, scale_run)}
