"""`python -m ssmrec_lib bench training --profile-step`: where one training step's time goes (issue 13, section 1).

For each model, the Trainer's own objective, batches (epoch 0, in the epoch's order), optimiser and settings
(bf16, ce_chunk, torch_compile, threads) run `steps` training steps after `warmup` untimed ones, each cut into
five sections, each closed by the one clock (bench/timer.py `now`):
    data       sample ids -> padded Batch (and the cloze masks)       objective.batch / masked_inputs
    encoder    the model's forward up to the states at the scored positions (N, D)
    output_ce  scores over all items + cross-entropy (fused with its gradient when ce_chunk > 0)
    backward   loss.backward() (encoder and output head together; with ce_chunk > 0 the head's share was
               already paid in output_ce)
    optimizer  zero_grad, gradient clipping (if set), Adam step, lr schedule
Means over the timed steps, in ms, plus targets per step (N) and targets per second. CPU only measures
honestly here (CUDA work is asynchronous; the sections then need synchronising, which `device_sync` does).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .timer import device_sync, now

SECTIONS = ("data", "encoder", "output_ce", "backward", "optimizer")


class StepRunner:
    """One model's training steps as the Trainer takes them (its objective, epoch-0 batches, optimiser, lr
    schedule, bf16 autocast, ce_chunk, torch_compile, clipping), each step timed by section (module docstring)."""

    def __init__(self, name: str, split, cfg, model_cfg, seed: int = 0) -> None:
        from ..config import to_dict
        from ..models.registry import build_model
        from ..train import Trainer, lr_lambda, param_groups
        from ..utils import seed_everything

        seed_everything(seed)
        self.cfg = cfg
        self.net = build_model(name, split.n_items, cfg.max_len, to_dict(model_cfg))
        self.trainer = Trainer(self.net, split, cfg)
        self.obj = self.trainer.make_objective()
        self.batches = self.trainer.epoch_batches(self.obj, 0)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.opt = opt_cls(param_groups(self.net, cfg.weight_decay), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg, cfg.epochs * len(self.batches)))
        self.sync = device_sync(self.trainer.device)
        self.net.train()

    def step(self, b: int) -> tuple[dict[str, float], int, int]:
        """Train on batch b of epoch 0 -> ({section: seconds}, targets N, padded width). Threads: the caller's."""
        cfg, obj, model, sync = self.cfg, self.obj, self.trainer.train_model, self.sync
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + b)  # the Trainer's mask seed at epoch 0
        sync()
        t0 = now()
        batch = obj.batch(self.batches[b]).to(self.trainer.device)
        t1 = now()
        with torch.autocast(self.trainer.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            h, targets = obj.hidden_and_targets(model, batch, gen)  # (N, D), (N,)
            sync()
            t2 = now()
            loss = obj.output_loss(model, h, targets)
            sync()
            t3 = now()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss {loss.item()} at batch {b}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        t4 = now()
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_norm)
        self.opt.step()
        self.sched.step()
        sync()
        t5 = now()
        secs = dict(zip(SECTIONS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))
        return secs, int(targets.shape[0]), int(batch.item_seq.shape[1])


def thread_count(cfg) -> int:
    """The CPU threads a config trains with (num_threads, or torch's current setting when 0)."""
    return cfg.num_threads if cfg.num_threads > 0 else torch.get_num_threads()


def profile_step(models: list[str], dataset: str = "ml-1m", profile: str = "full", steps: int = 12,
                 warmup: int = 3, overrides: dict | None = None, data_dir: str | None = None, seed: int = 0,
                 log=print) -> pd.DataFrame:
    """-> one row per model: <section>_ms (means), step_ms, targets_per_step, targets_per_s, width, ..."""
    from ..experiment import load_data, resolve_configs

    data = load_data(dataset, data_dir)
    split = data.split()
    rows = []
    for name in models:
        cfg, model_cfg = resolve_configs(name, dataset, profile, seed, overrides or {})
        runner = StepRunner(name, split, cfg, model_cfg, seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(thread_count(cfg))
        acc = {s: [] for s in SECTIONS}
        n_targets, widths = [], []
        try:
            for b in range(min(warmup + steps, len(runner.batches))):
                secs, n, width = runner.step(b)
                if b >= warmup:
                    for s in SECTIONS:
                        acc[s].append(secs[s])
                    n_targets.append(n)
                    widths.append(width)
        finally:
            torch.set_num_threads(threads)
        ms = {f"{s}_ms": 1000 * float(np.mean(v)) if v else float("nan") for s, v in acc.items()}
        step_ms = sum(ms.values())
        row = {"model": name, "objective": runner.obj.name, **ms, "step_ms": step_ms,
               "targets_per_step": float(np.mean(n_targets)) if n_targets else float("nan"),
               "targets_per_s": (sum(n_targets) / (step_ms / 1000 * len(n_targets))) if n_targets else float("nan"),
               "width": float(np.mean(widths)) if widths else float("nan"), "batch_size": cfg.batch_size,
               "max_len": cfg.max_len, "bf16": cfg.bf16, "ce_chunk": cfg.ce_chunk, "torch_compile": cfg.torch_compile,
               "bucket_window": cfg.bucket_window, "threads": thread_count(cfg), "timed_steps": len(n_targets)}
        rows.append(row)
        log(f"{name:10s} " + "  ".join(f"{s} {ms[f'{s}_ms']:7.1f}" for s in SECTIONS)
            + f"  = {step_ms:7.1f} ms/step, {row['targets_per_s']:7.0f} targets/s")
        del runner
    return pd.DataFrame(rows)
