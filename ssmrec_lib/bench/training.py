"""`python -m ssmrec_lib bench training`: the training cost of each model on a dataset (issue 6, section 1):
seconds per epoch, validation seconds and peak memory, with a profile's settings (default: `full` on ML-1M).

For each model the real Trainer runs `steps` training batches of the profile's epoch (after `warmup` batches
that are not timed), then one full validation pass. Seconds per epoch = MEAN seconds per timed batch x batches per
epoch: the epoch's batches come in random order and differ in padded width (length buckets), so the first batches
are a random sample and their mean is an unbiased estimate (a median would not be: short batches are cheap and
common); the more `steps`, the tighter it is. `--steps 0` times a whole epoch instead. Peak memory: CPU = the
process RSS peak above the level before the model was built (bench/memory.py PeakRSS, malloc thresholds
pinned so freed blocks go back), CUDA = torch.cuda.max_memory_allocated. One process runs every model, so the
figures compare side by side (the first model is run once untimed first, so one-time allocations of the process
do not land on its row); run it on a quiet machine (other jobs on the cores inflate every row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .memory import PeakRSS, malloc_trim, pin_malloc_thresholds
from .timer import Timing, now

TRAIN_MODELS = ["sasrec", "mamba4rec", "mamba2rec", "hydra4rec", "gru4rec", "lrurec", "bert4rec"]


def default_dataset(profile: str, dataset: str = "") -> str:
    """The dataset a profile's training cost is measured on: `dataset` if given, synthetic for smoke, else ml-1m."""
    return dataset or ("synthetic" if profile == "smoke" else "ml-1m")


def bench_training(models: list[str], dataset: str = "ml-1m", profile: str = "full", steps: int = 12,
                   warmup: int = 3, overrides: dict | None = None, data_dir: str | None = None, seed: int = 0,
                   log=print) -> pd.DataFrame:
    """-> one row per model: sec_per_batch, batches_per_epoch, sec_per_epoch, valid_seconds, peak_mem_mb, ..."""
    from dataclasses import replace

    from ..config import to_dict
    from ..experiment import kernel_info, load_data, resolve_configs
    from ..models.registry import build_model
    from ..train import Trainer
    from ..utils import seed_everything

    pin_malloc_thresholds()
    data = load_data(dataset, data_dir)
    split = data.split()
    rows = []
    for i, name in enumerate([models[0], *models] if models else []):  # the first pass pays one-time costs, unlogged
        cfg, model_cfg = resolve_configs(name, dataset, profile, seed, overrides or {})
        cfg = replace(cfg, epochs=1, progress=False, max_batches_per_epoch=(warmup + steps) if steps else 0)
        malloc_trim()
        seed_everything(seed)
        stamps: list[float] = []
        records: list[dict] = []

        def hook(event: str, info: dict) -> None:
            if event == "batch_end":
                stamps.append(now())
            else:
                records.append(info)

        with PeakRSS() as rss:
            net = build_model(name, split.n_items, cfg.max_len, to_dict(model_cfg))
            trainer = Trainer(net, split, cfg, hooks=[hook])
            if trainer.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(trainer.device)
            t0 = now()
            trainer.fit()  # the timed batches, one validation pass (timed by the trainer), then test once
            total = now() - t0
        valid_s = records[-1]["eval_seconds"] if records else float("nan")
        n_samples = len(trainer.make_objective().epoch_samples(np.random.default_rng([seed, 0])))
        n_batches = -(-n_samples // cfg.batch_size)  # the whole epoch, not the timed slice
        # the timer's figures over the gaps between batch ends after the warm-up batches (one batch per gap)
        gaps = Timing(tuple(np.diff(stamps)[max(0, warmup - 1):] if len(stamps) > warmup else np.diff(stamps)))
        sec_batch = gaps.mean_ms / 1000 if gaps.n else float("nan")
        peak = (torch.cuda.max_memory_allocated(trainer.device) if trainer.device.type == "cuda" else rss.peak)
        row = {"model": name, "dataset": dataset, "profile": profile, "objective": trainer.objective_name,
               "batch_size": cfg.batch_size, "max_len": cfg.max_len, "bf16": cfg.bf16,
               "batches_per_epoch": n_batches, "sec_per_batch": sec_batch, "sec_per_epoch": sec_batch * n_batches,
               "valid_seconds": valid_s, "peak_mem_mb": peak / 2**20, "timed_batches": gaps.n,
               "params": net.n_params(True), "params_wo_emb": net.n_params(False),
               "device": trainer.device.type, "threads": torch.get_num_threads(),
               "kernel": kernel_info(model_cfg, trainer.device).get("resolved"), "wall_s": total}
        del net, trainer
        if i == 0:
            continue
        rows.append(row)
        log(f"{name:10s} {sec_batch * 1000:8.1f} ms/batch x {n_batches} = {row['sec_per_epoch']:7.1f} s/epoch, "
            f"validation {valid_s:5.1f} s, peak +{row['peak_mem_mb']:7.1f} MB ({row['objective']})")
    return pd.DataFrame(rows)
