"""`python -m ssmrec_lib bench training --compare OLD NEW`: two training paths side by side in ONE process
(issue 13, section 1): speed, memory and validation quality after the same number of steps.

A path is a set of config overrides on top of the profile and the shared `--set`s ("" = today's defaults). For
each model:
    speed       both paths are built from the same seed (same initial weights, same epoch-0 batches) and take
                their training steps INTERLEAVED, one step of each path in turn (bench/step.py StepRunner, the
                Trainer's step), so machine load that comes and goes hits both alike. The first `warmup` steps
                of each path are not timed (torch.compile's compilation, allocator warm-up: first_batches_s);
                then `timed` steps. sec_per_epoch = MEAN step seconds x batches in a whole epoch (the epoch's
                batches come in random order, so the first ones are a random sample, as in bench/training.py);
                targets_per_s = the CE terms of a whole epoch (real positions for next_item, masked positions for
                cloze, samples for last_item) / sec_per_epoch; speedup = targets_per_s / the first path's.
                Each path runs with its own thread count (num_threads; 0 = torch's setting).
    quality     each path then trains with the real Trainer for `steps` batches cut into `points` epochs
                (max_batches_per_epoch = steps / points), validating after each: the curve of validation
                NDCG@10 against steps, and the final value.
    memory      peak RSS of that training run above the level before the model was built (bench/memory.py).
"""


from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from .memory import PeakRSS, malloc_trim, pin_malloc_thresholds
from .timer import Timing


def epoch_terms(cfg, obj, batches: list[np.ndarray], epoch: int = 0) -> int:
    """CE terms in `batches` (a whole epoch under `cfg`): real positions (next_item), masked positions (cloze,
    with the trainer's per-batch mask seeds), samples (last_item)."""
    from ..objectives import cloze_mask

    total = 0
    for b, ids in enumerate(batches):
        batch = obj.batch(ids)
        if obj.name == "cloze":
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 10_007 + b)
            total += int(cloze_mask(batch.lengths, batch.item_seq.shape[1], obj.mask_prob, obj.mask_last_prob,
                                    gen).sum())
        elif obj.name == "next_item":
            total += int(batch.lengths.sum())
        else:
            total += batch.size
    return total


def compare_training(models: list[str], paths: dict[str, dict], dataset: str = "ml-1m", profile: str = "full",
                     overrides: dict | None = None, steps: int = 60, points: int = 3, warmup: int = 3,
                     timed: int = 12, data_dir: str | None = None, seed: int = 0,
                     log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (one row per (model, path): sec_per_batch, sec_per_epoch, targets_per_s, speedup, peak_rss_mb,
    valid_ndcg@10, ...; the curves: one row per (model, path, step) with valid ndcg@10 and the training loss)."""
    from ..experiment import load_data, resolve_configs
    from ..train import epoch_batches

    if steps and (steps < points or points < 1):
        raise ValueError(f"steps ({steps}) must be 0 (speed only) or >= points ({points}) >= 1")
    pin_malloc_thresholds()
    data = load_data(dataset, data_dir)
    split = data.split()
    rows, curves = [], []
    for name in models:
        cfgs = {lab: resolve_configs(name, dataset, profile, seed, {**(overrides or {}), **extra})
                for lab, extra in paths.items()}
        times = interleaved_step_seconds(name, split, cfgs, warmup, timed, seed)
        base = None
        for label, (cfg, model_cfg) in cfgs.items():
            if steps:
                obj, peak, curve = train_for_curve(name, split, cfg, model_cfg, steps, points, seed)
            else:  # speed only: no quality run, no memory figure
                obj, peak, curve = times[label]["objective"], float("nan"), []
            full = epoch_batches(replace(cfg, max_batches_per_epoch=0), obj, 0)
            terms = epoch_terms(cfg, obj, full)
            t = Timing(tuple(times[label]["timed"]))
            sec_batch = t.mean_ms / 1000 if t.n else float("nan")
            sec_epoch = sec_batch * len(full)
            row = {"model": name, "path": label, "overrides": " ".join(f"{k}={v}" for k, v in paths[label].items()),
                   "objective": obj.name, "sec_per_batch": sec_batch,
                   "sec_per_batch_median": t.median_ms / 1000 if t.n else float("nan"),
                   "batches_per_epoch": len(full), "sec_per_epoch": sec_epoch, "targets_per_epoch": terms,
                   "targets_per_s": terms / sec_epoch, "first_batches_s": sum(times[label]["warmup"]),
                   "timed_batches": t.n, "peak_rss_mb": peak / 2**20, "steps": curve[-1]["step"] if curve else 0,
                   "valid_ndcg@10": curve[-1]["valid_ndcg@10"] if curve else float("nan"),
                   "threads": times[label]["threads"], "bf16": cfg.bf16, "ce_chunk": cfg.ce_chunk,
                   "torch_compile": cfg.torch_compile, "bucket_window": cfg.bucket_window}
            base = base or row
            row["speedup"] = row["targets_per_s"] / base["targets_per_s"]
            rows.append(row)
            curves += [{"model": name, "path": label, **c} for c in curve]
            log(f"{name:10s} {label:6s} {sec_batch * 1000:7.1f} ms/batch x {len(full)} = {sec_epoch:7.1f} s/epoch, "
                f"{row['targets_per_s']:7.0f} targets/s ({row['speedup']:.2f}x), peak +{row['peak_rss_mb']:6.0f} MB, "
                f"first {warmup} steps {row['first_batches_s']:5.1f} s, valid NDCG@10 after {row['steps']} steps "
                f"{row['valid_ndcg@10']:.4f}")
    return pd.DataFrame(rows), pd.DataFrame(curves)


def interleaved_step_seconds(name: str, split, cfgs: dict, warmup: int, timed: int, seed: int) -> dict:
    """-> {path: {"warmup": [s, ...], "timed": [s, ...], "threads": n}}: one step of each path in turn."""
    from .step import StepRunner, thread_count

    runners = {lab: StepRunner(name, split, cfg, mc, seed) for lab, (cfg, mc) in cfgs.items()}
    out = {lab: {"warmup": [], "timed": [], "threads": thread_count(r.cfg), "objective": r.obj}
           for lab, r in runners.items()}
    threads = torch.get_num_threads()
    try:
        for b in range(min(warmup + timed, min(len(r.batches) for r in runners.values()))):
            for lab, r in runners.items():
                torch.set_num_threads(out[lab]["threads"])
                secs, _, _ = r.step(b)
                out[lab]["warmup" if b < warmup else "timed"].append(sum(secs.values()))
    finally:
        torch.set_num_threads(threads)
    return out


def train_for_curve(name: str, split, cfg, model_cfg, steps: int, points: int, seed: int):
    """The real Trainer for `steps` batches in `points` epochs, validating after each (no test split) ->
    (the objective, peak RSS bytes, [{"step", "valid_ndcg@10", "train_loss"}, ...])."""
    from ..config import to_dict
    from ..models.registry import build_model
    from ..train import Trainer
    from ..utils import seed_everything

    per = steps // points
    short = replace(cfg, epochs=points, progress=False, max_batches_per_epoch=per, patience=points + 1)
    records: list[dict] = []
    malloc_trim()
    seed_everything(seed)
    with PeakRSS() as rss:
        net = build_model(name, split.n_items, short.max_len, to_dict(model_cfg))
        trainer = Trainer(net, split, short, hooks=[lambda ev, info: records.append(info) if ev == "epoch_end"
                                                    else None], score_test=False)
        trainer.fit()
    curve = [{"step": (r["epoch"] + 1) * per, "valid_ndcg@10": r["valid"]["ndcg@10"], "train_loss": r["loss"]}
             for r in records]
    return trainer.make_objective(), rss.peak, curve
