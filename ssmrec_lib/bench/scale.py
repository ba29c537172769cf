"""`python -m ssmrec_lib bench scale`: what training and evaluation would cost at Amazon '23 Beauty's scale
(issue 14, section 3), measured on synthetic data of its shape and projected onto the real set.

The shape (the paper's Table 4, Beauty and Personal Care, 5-core): 750,835 users, 211,452 items, 6,860,059
interactions, so 9.14 per user. Lengths: heavy-tailed, 5 + floor(LogNormal(mu, 1)) with mu set so the mean is
9.14 (every user has >= 5: the 5-core); items: Zipf popularity (exponent 1) over the catalogue, drawn i.i.d. (the
cost of a step depends on shapes, not on what the items are). `scale` multiplies users, items and interactions
(the mean length stays), so a test can run it tiny; the projection is for the real set only at scale 1, because
the catalogue size enters the cost of every step.

Method (compact: never the 6.86M interactions, never 24 GiB):
    1. draw every user's length (750k int64, 6 MB): the epoch's batch count and its number of CE terms follow
    2. generate item sequences only for a sample of `sample_users` users (leave-one-out split, as the trainer's)
    3. per model (SASRec, Mamba4Rec at max length 50, batch `batch_size`, one CPU thread by default) and per loss
       (full CE, sampled softmax with `n_sampled` negatives): the trainer's own objective and bucketed batch
       order (train.Trainer.epoch_batches), `warmup` untimed then `steps` timed optimiser steps (loss, backward,
       Adam) with bench/timer.py; seconds per epoch = mean seconds per batch x batches per epoch (the batches are
       in random order, so the first ones are a random sample: bench/training.py's estimate). A batch whose
       full-softmax logits would exceed `mem_budget_gb` (4 copies of (N, n_items) float32) is not run (counted in
       `skipped`): it would swap or be killed on this machine
    4. full-ranking evaluation (evaluate.evaluate, mode "full") of the sample users' validation targets: seconds per
       user x users; its peak memory is a batch's, independent of the user count
    Peak memory: above the level before the phase: process RSS on CPU (bench/memory.py PeakRSS, so the first phase
    also carries the process's one-time allocations, ~0.1 GB), torch.cuda.max_memory_allocated on CUDA.
    `device="cuda"` runs the same steps on a GPU: the measurement the H200 estimate below stands in for.

H200 projection (no training run on a GPU exists here; an estimate, labelled so): the encoder part from the
H200's measured inference throughput (`outputs/gpu_checks/bench_latency_cuda.log`, 2026-11-26: score(readout) at
batch 256, L 50: SASRec 185,142 and Mamba4Rec 220,574 users/s) times 3 for forward + backward (the usual rule:
backward ~ 2 forwards), plus the catalogue part as FLOPs at `gpu_tflops` (default 67: the H100/H200 SXM datasheet's
FP32 peak, so a lower bound on time): training 6 N D C per epoch (N CE terms, D = d_model, C = n_items for full CE
or K + 1 sampled; forward and two backward products), evaluation 2 U D n_items. Needs a GPU measurement to confirm.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .memory import PeakRSS, malloc_trim, pin_malloc_thresholds
from .timer import device_sync, now, time_calls, time_once

BEAUTY23 = {"users": 750_835, "items": 211_452, "interactions": 6_860_059}  # the paper's Table 4
SCALE_MODELS = ["sasrec", "mamba4rec"]
# users/s of score(readout) on one H200, batch 256, L 50 (outputs/gpu_checks/bench_latency_cuda.log, 2026-11-26)
H200_USERS_PER_S = {"sasrec": 185_142.0, "mamba4rec": 220_574.0}
H200_FP32_TFLOPS = 67.0  # NVIDIA H100/H200 SXM datasheet, FP32 (non-tensor) peak
MIN_LEN = 5  # the 5-core
COLUMNS = ["model", "phase", "timed", "skipped", "sec_per_batch", "batches_per_epoch", "cpu_sec_per_epoch",
           "cpu_hours_per_epoch", "peak_mem_mb", "h200_sec_per_epoch"]


class Peak:
    """Peak memory above the level at entry (bytes, `.peak`): process RSS on CPU (memory.PeakRSS), allocated
    memory on CUDA (torch.cuda.max_memory_allocated)."""

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda")
        self.peak = 0

    def __enter__(self) -> "Peak":
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.rss = PeakRSS().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.rss.__exit__(*exc)
            self.peak = self.rss.peak


def lognormal_mu(mean_extra: float, sigma: float = 1.0) -> float:
    """mu such that E[floor(LogNormal(mu, sigma))] ~= mean_extra (floor loses ~0.5 on average)."""
    return math.log(max(mean_extra + 0.5, 1e-3)) - sigma ** 2 / 2


def draw_lengths(n_users: int, mean_len: float, rng: np.random.Generator, sigma: float = 1.0) -> np.ndarray:
    """(n_users,) int64 history lengths >= MIN_LEN, heavy-tailed, mean ~= mean_len (module docstring)."""
    extra = np.floor(rng.lognormal(lognormal_mu(mean_len - MIN_LEN, sigma), sigma, n_users)).astype(np.int64)
    return MIN_LEN + extra


def zipf_sequences(lengths: np.ndarray, n_items: int, rng: np.random.Generator, a: float = 1.0) -> list[np.ndarray]:
    """One i.i.d. Zipf(a) item sequence (ids 1..n_items, rank = a random permutation) per length."""
    p = np.arange(1, n_items + 1, dtype=np.float64) ** -a
    perm = rng.permutation(n_items) + 1
    flat = perm[rng.choice(n_items, size=int(lengths.sum()), p=p / p.sum())]
    return np.split(flat, np.cumsum(lengths)[:-1])


def shape(scale: float) -> dict[str, int]:
    """Users, items, interactions at `scale` of Beauty '23 (mean length kept)."""
    return {k: max(MIN_LEN + 2 if k == "items" else 1, int(round(v * scale))) for k, v in BEAUTY23.items()}


def h200_estimate(model: str, phase: str, users: int, terms: int, d_model: int, n_items: int, n_sampled: int,
                  tflops: float) -> float:
    """Seconds per epoch on one H200 (module docstring): encoder from measured throughput + catalogue FLOPs."""
    rate = H200_USERS_PER_S.get(model)
    if rate is None:
        return float("nan")
    if phase == "eval full ranking":
        return users / rate + 2.0 * users * d_model * n_items / (tflops * 1e12)
    cols = n_items if phase == "train ce" else n_sampled + 1
    return 3.0 * users / rate + 6.0 * terms * d_model * cols / (tflops * 1e12)


def bench_scale(models: list[str] | None = None, scale: float = 1.0, batch_size: int = 128, max_len: int = 50,
                n_sampled: int = 1000, sampler: str = "uniform", steps: int = 6, warmup: int = 1,
                sample_users: int = 2048, eval_users: int = 1024, mem_budget_gb: float = 8.0,
                gpu_tflops: float = H200_FP32_TFLOPS, threads: int = 1, seed: int = 0, device: str = "cpu",
                log=print) -> pd.DataFrame:
    """-> one row per (model, phase): phases "train ce", "train sampled_softmax", "eval full ranking" (COLUMNS).
    `attrs`: the shape, users / batches / CE terms per epoch and a header line naming the method."""
    from ..data.types import SequenceData
    from ..evaluate import evaluate
    from ..models.registry import build_model
    from ..train import TrainConfig, Trainer

    pin_malloc_thresholds()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    dims = shape(scale)
    mean_len = BEAUTY23["interactions"] / BEAUTY23["users"]
    lengths = draw_lengths(dims["users"], mean_len, rng)
    train_len = lengths - 2  # leave-one-out: the last two items are validation and test targets
    users_per_epoch = int((train_len >= 2).sum())
    terms = int(np.minimum(train_len - 1, max_len).clip(min=0).sum())  # next_item CE terms (windows="last")
    batches_per_epoch = -(-users_per_epoch // batch_size)
    n = min(sample_users, dims["users"])
    pick = rng.choice(dims["users"], size=n, replace=False)
    data = SequenceData(name="beauty23-shape", sequences=zipf_sequences(lengths[pick], dims["items"], rng),
                        n_items=dims["items"], user_ids=np.array([str(u) for u in range(n)]),
                        item_ids=np.array([str(i) for i in range(1, dims["items"] + 1)]))
    split = data.split()
    rows = []
    try:
        for name in models or SCALE_MODELS:
            for loss in ("ce", "sampled_softmax"):
                extra = dict(n_sampled=n_sampled, sampler=sampler) if loss == "sampled_softmax" else {}
                cfg = TrainConfig(batch_size=batch_size, max_len=max_len, progress=False, seed=seed, device=device,
                                  loss=loss, **extra)
                row = time_training(name, cfg, split, steps, warmup, mem_budget_gb, build_model, Trainer)
                rows.append({**row, "batches_per_epoch": batches_per_epoch})
            malloc_trim()
            torch.manual_seed(seed)
            hist, tgt = split.history_and_target("valid")
            k = min(eval_users, len(tgt))
            with Peak(device) as peak:  # the model's weights and one evaluation batch's scores
                net = build_model(name, dims["items"], max_len).to(device)
                secs = time_once(lambda: evaluate(net, hist[:k], tgt[:k], max_len=max_len, device=device),
                                 sync=device_sync(torch.device(device)))
            rows.append({"model": name, "phase": "eval full ranking", "timed": k, "skipped": 0,
                         "sec_per_batch": secs / k * 512, "batches_per_epoch": -(-dims["users"] // 512),
                         "peak_mem_mb": peak.peak / 2**20, "d_model": net.item_emb.weight.shape[1]})
            for r in rows[-3:]:
                r["cpu_sec_per_epoch"] = r["sec_per_batch"] * r["batches_per_epoch"]
                r["cpu_hours_per_epoch"] = r["cpu_sec_per_epoch"] / 3600
                r["h200_sec_per_epoch"] = h200_estimate(name, r["phase"], dims["users"], terms, r["d_model"],
                                                        dims["items"], n_sampled, gpu_tflops)
                log(f"{name:10s} {r['phase']:22s} {r['sec_per_batch']:8.3f} s/batch x {r['batches_per_epoch']} = "
                    f"{r['cpu_hours_per_epoch']:7.2f} h/epoch on CPU, peak +{r['peak_mem_mb']:8.1f} MB")
    finally:
        torch.set_num_threads(old_threads)
    df = pd.DataFrame(rows)[COLUMNS]
    df.attrs.update(shape=dims, users_per_epoch=users_per_epoch, terms_per_epoch=terms, scale=scale,
                    batch_size=batch_size, max_len=max_len, n_sampled=n_sampled, sampler=sampler,
                    gpu_tflops=gpu_tflops,
                    header=(f"Amazon '23 Beauty shape x {scale:g}: {dims['users']:,} users, {dims['items']:,} items, "
                            f"{int(lengths.sum()):,} interactions (mean {lengths.mean():.2f}); {n} users generated; "
                            f"{users_per_epoch:,} training sequences = {batches_per_epoch:,} batches of {batch_size}, "
                            f"{terms:,} CE terms per epoch; max_len {max_len}; sampled softmax K = {n_sampled} "
                            f"({sampler}); CPU threads {threads or torch.get_num_threads()}; H200 = estimate "
                            f"(bench/scale.py docstring: measured inference throughput x 3 + FLOPs at "
                            f"{gpu_tflops:g} TFLOPS), needs a GPU measurement; measured on {device}"))
    return df


def time_training(name: str, cfg, split, steps: int, warmup: int, mem_budget_gb: float, build_model,
                  trainer_cls) -> dict:
    """Time `steps` optimiser steps of `name` under `cfg` on `split` (bucketed batches in the trainer's order)."""
    malloc_trim()
    torch.manual_seed(cfg.seed)
    rss = Peak(cfg.device).__enter__()  # model, Adam state, gradients and the steps' activations
    net = build_model(name, split.n_items, cfg.max_len)
    trainer = trainer_cls(net, split, cfg)
    obj = trainer.make_objective()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    batches, skipped = [], 0
    for ids in trainer.epoch_batches(obj, 0):
        b = obj.batch(ids).to(trainer.device)
        if cfg.loss == "ce" and 4 * int(b.lengths.sum()) * (split.n_items + 1) * 4 > mem_budget_gb * 2**30:
            skipped += 1
            continue
        batches.append((b,))
        if len(batches) == warmup + steps:
            break
    gen = torch.Generator().manual_seed(cfg.seed)

    def step(batch) -> None:
        loss = obj.loss(net, batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    t0 = now()
    try:
        timing = time_calls(step, repeats=max(0, len(batches) - warmup), warmup=min(warmup, len(batches)),
                            args=batches, sync=device_sync(trainer.device))
    finally:
        rss.__exit__(None, None, None)
    row = {"model": name, "phase": f"train {cfg.loss}", "timed": timing.n, "skipped": skipped,
           "sec_per_batch": timing.mean_ms / 1000 if timing.n else float("nan"),
           "batches_per_epoch": None, "peak_mem_mb": rss.peak / 2**20, "wall_s": now() - t0,
           "d_model": net.item_emb.weight.shape[1]}
    return row
