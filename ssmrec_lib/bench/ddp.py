"""`python -m ssmrec_lib bench ddp`: data-parallel training throughput with 1, 2, ... processes on this machine
(gloo on CPU; distributed.py), the path `torchrun --nproc-per-node N -m ssmrec_lib train ...` takes.

For each process count n:
    1. torchrun (`python -m torch.distributed.run`) starts n workers (`python -m ssmrec_lib.bench.ddp SPEC`), each
       with `threads` torch threads; n = 1 is the plain single-process Trainer (WORLD_SIZE=1: nothing distributed).
    2. every worker builds the same model and Trainer as `train` (the profile's settings, --set overrides, one
       epoch, no run folder) and runs `warmup + steps` optimiser steps of the global batch (`batch_size` samples,
       each rank its rows, gradients all-reduced every step); rank 0 stamps each step's end with bench/timer.now.
       The run stops after the last timed step (no evaluation).
    3. with n > 1 the gradient all-reduce alone is timed (bench/timer.time_calls, 10 calls after 2): one flat
       float32 buffer of every trainable parameter, `grad_mb` = parameters x 4 bytes / 2^20.
Figures per configuration: mean seconds per timed step, targets per step (the loss terms of the global batch:
next_item = real positions, last_item = samples; cloze = NaN, its masks are drawn inside the loss) and per
second, samples per second, and the speed-up over the smallest n (targets/s ratio; the same global batches, so
this is the ratio of step times) with its efficiency = speed-up / n. `load_1min` is the machine's 1-minute load
average when the configuration started: other jobs on the cores slow the larger n first.

What it shows on a CPU machine: whether n ranks keep the one-process result per step (tests/unit/test_distributed.py
checks the numbers) at what cost; with 2 cores, a second rank takes the second core, so at best ~2x, and less
while anything else runs. It does not measure GPU scaling: on N GPUs a step of a global batch of B targets takes
about B / (N x T1) + 2 (N - 1) / N x S / bw seconds (T1: one GPU's targets/s, `bench training` on the GPU;
S: gradient bytes; bw: the all-reduce bus bandwidth; ring all-reduce), see README "Data-parallel throughput".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from .timer import Timing, now, time_calls

ROOT = Path(__file__).resolve().parents[2]  # the checkout whose ssmrec_lib the workers import
COLUMNS = ["nprocs", "threads_per_proc", "sec_per_step", "targets_per_step", "targets_per_s", "samples_per_s", "speedup", "efficiency",
           "allreduce_ms", "grad_mb", "load_1min"]
ALLREDUCE_CALLS, ALLREDUCE_WARMUP = 10, 2


class TimedStepsDone(Exception):
    """Raised by the timing hook after the last timed step: ends Trainer.fit before its evaluation."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def targets_in(objective_name: str, batch) -> float:
    """The number of loss terms in one global batch (objectives.py): NaN where the loss draws them (cloze)."""
    if objective_name == "next_item":
        return float(batch.lengths.sum())
    if objective_name == "last_item":
        return float(batch.size)
    return float("nan")


def worker(spec: dict) -> None:
    """One rank of one configuration (module docstring, steps 2 and 3); rank 0 writes spec["result"] as JSON."""
    from dataclasses import replace

    import torch

    from ..config import to_dict
    from ..distributed import all_reduce_grads, is_writer
    from ..experiment import load_data, resolve_configs
    from ..models.registry import build_model
    from ..train import Trainer
    from ..utils import seed_everything

    torch.set_num_threads(spec["threads"])
    warmup, steps = spec["warmup"], spec["steps"]
    data = load_data(spec["dataset"], spec["data_dir"])
    split = data.split()
    cfg, model_cfg = resolve_configs(spec["model"], spec["dataset"], spec["profile"], spec["seed"],
                                     spec["overrides"])
    cfg = replace(cfg, epochs=1, progress=False, max_batches_per_epoch=warmup + steps, checkpoint_every=0,
                  num_threads=spec["threads"], device="cpu")
    seed_everything(spec["seed"])
    net = build_model(spec["model"], split.n_items, cfg.max_len, to_dict(model_cfg))
    stamps: list[float] = []

    def hook(event: str, info: dict) -> None:
        if event == "batch_end":
            stamps.append(now())
            if len(stamps) == warmup + steps:
                raise TimedStepsDone

    trainer = Trainer(net, split, cfg, hooks=[hook])
    obj = trainer.make_objective()
    batches = trainer.epoch_batches(obj, 0)
    if len(batches) < warmup + steps:
        raise UserError(f"an epoch of {spec['dataset']} has {len(batches)} batches of {cfg.batch_size}: use "
                        f"--steps + --warmup <= {len(batches)}")
    try:
        trainer.fit()
    except TimedStepsDone:
        pass
    allreduce = None
    if trainer.dist is not None:
        allreduce = time_calls(lambda: all_reduce_grads(net), ALLREDUCE_CALLS, ALLREDUCE_WARMUP)
    if not is_writer(trainer.dist):
        return
    timed = [obj.batch(ids) for ids in batches[warmup: warmup + steps]]
    gaps = Timing(tuple(np.diff(stamps)[max(0, warmup - 1):]))  # one step per gap after the warm-up
    n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    result = {"sec_per_step": gaps.mean_ms / 1000, "sec_per_step_median": gaps.median_ms / 1000,
              "timed_steps": gaps.n,
              "targets_per_step": float(np.mean([targets_in(trainer.objective_name, b) for b in timed])),
              "samples_per_step": float(np.mean([b.size for b in timed])),
              "allreduce_ms": allreduce.median_ms if allreduce else float("nan"),
              "grad_mb": n_params * 4 / 2**20, "params": n_params, "objective": trainer.objective_name,
              "batch_size": cfg.batch_size, "backend": trainer.dist.backend if trainer.dist else "none"}
    Path(spec["result"]).write_text(json.dumps(result))


def run_configuration(spec: dict, nprocs: int, timeout_s: float) -> dict:
    """Start `nprocs` workers under torchrun and return rank 0's result (UserError with their output on failure)."""
    with tempfile.TemporaryDirectory(prefix="ssmrec-bench-ddp-") as tmp:
        spec = {**spec, "result": str(Path(tmp) / "result.json")}
        env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "SSMREC_PROGRESS": "0",
               "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nprocs),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               "-m", "ssmrec_lib.bench.ddp", json.dumps(spec)]
        try:
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise UserError(f"bench ddp: {nprocs} process(es) did not finish within {timeout_s:.0f} s; "
                            "use fewer --steps or a smaller --dataset") from e
        if res.returncode != 0 or not Path(spec["result"]).exists():
            raise UserError(f"bench ddp: torchrun with {nprocs} process(es) failed (exit {res.returncode}):\n"
                            f"{(res.stdout + res.stderr)[-4000:]}")
        return json.loads(Path(spec["result"]).read_text())


def bench_ddp(model: str = "sasrec", dataset: str = "synthetic", profile: str = "quick",
              nprocs: tuple[int, ...] = (1, 2), steps: int = 10, warmup: int = 2, threads: int = 1,
              overrides: dict | None = None, data_dir: str | None = None, seed: int = 0,
              timeout_s: float = 600.0, log=print, layouts: tuple[tuple[int, int], ...] | None = None,
              rounds: int = 1) -> pd.DataFrame:
    """-> one row per layout (COLUMNS first, then what the workers reported).

    `layouts`: (processes, threads per process) pairs to time, in order, e.g. ((1, 2), (2, 1)): one 2-thread
    process against two 1-thread processes on the same two cores; default: each of `nprocs` with `threads`.
    `rounds` > 1 times the layouts in turn that many times (one round after another, so load that comes and goes
    meets every layout) and keeps, per layout, the round with the median seconds per step."""
    if warmup < 1 or steps < 1:
        raise UserError("bench ddp needs --warmup >= 1 and --steps >= 1 (the first step pays one-time costs)")
    if rounds < 1:
        raise UserError(f"bench ddp needs --rounds >= 1, got {rounds}")
    layouts = tuple(layouts or ((n, threads) for n in nprocs))
    spec = {"model": model, "dataset": dataset, "profile": profile, "seed": seed, "overrides": overrides or {},
            "data_dir": data_dir, "steps": steps, "warmup": warmup}
    timed: dict[tuple[int, int], list[tuple[dict, float]]] = {lay: [] for lay in layouts}
    for rnd in range(rounds):
        for n, t in layouts:
            load = os.getloadavg()[0]
            r = run_configuration({**spec, "threads": t}, n, timeout_s)
            timed[(n, t)].append((r, load))
            log(f"{n} process(es) x {t} thread(s){f' (round {rnd + 1}/{rounds})' if rounds > 1 else ''}: "
                f"{r['sec_per_step'] * 1000:8.1f} ms/step, {r['targets_per_step'] / r['sec_per_step']:9.1f} "
                f"targets/s (load {load:.1f})")
    rows = []
    for (n, t), results in timed.items():
        results = sorted(results, key=lambda x: x[0]["sec_per_step"])
        r, load = results[(len(results) - 1) // 2]  # the median round (the lower one of an even count)
        rows.append({"nprocs": n, **r, "targets_per_s": r["targets_per_step"] / r["sec_per_step"],
                     "samples_per_s": r["samples_per_step"] / r["sec_per_step"], "load_1min": load,
                     "threads_per_proc": t, "rounds": rounds,
                     "sec_per_step_rounds": ";".join(f"{x['sec_per_step']:.4f}" for x, _ in results),
                     "model": model, "dataset": dataset, "profile": profile})
    df = pd.DataFrame(rows)
    base = df.iloc[0]
    speed = df["samples_per_s"] / base["samples_per_s"]  # = the targets/s ratio: the same global batches
    df["speedup"] = speed
    cores = df["nprocs"] * df["threads_per_proc"]  # CPU threads in use: efficiency per thread, against the first
    df["efficiency"] = speed * (base["nprocs"] * base["threads_per_proc"]) / cores
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


if __name__ == "__main__":  # a worker, started by run_configuration through torchrun
    from ..distributed import finish

    worker(json.loads(sys.argv[1]))
    finish()
