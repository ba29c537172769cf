"""One trainer for every model: optimisation, early stopping, checkpoints, resume, logging.

Per epoch:
    1. samples = objective.epoch_samples(Generator(seed, epoch)), cut into batches of batch_size; with length
       bucketing (bucket_window = W > 1) each window of W batches is sorted by history length before cutting
       and the batches are then shuffled, so a batch holds similar lengths and pads little (ML-1M, L = 200,
       B = 128, W = 8: 1.68x fewer padded slots, 2.1x less attention area than plain shuffling)
    2. for each batch: loss (bf16 autocast optional) -> non-finite check -> backward -> clip -> step -> lr schedule
       (a `checkpoint_last.pt` every `checkpoint_every` batches, always at the epoch end)
    3. validation NDCG@10 (full ranking by default); better -> `checkpoint_best.pt`; else patience counter
    4. one JSON line in log.jsonl (loss, lr, seconds, valid metrics)
At the end the best checkpoint is loaded and the test split is scored ONCE.

Resume: checkpoint_last.pt holds model, optimiser, scheduler, RNG states (torch, numpy, python), epoch, the next
batch index within the epoch and the early-stopping state, as tensors and plain values only: it is read with the
safe loader (checkpoint.py; torch.load(weights_only=True)), so nothing in a checkpoint file can run code. Batch
order and cloze masks are functions of (seed, epoch, batch), dropout draws come from the restored torch RNG, so a
run killed mid-epoch and resumed ends with the same metrics as an uninterrupted one (CPU; tests/unit/test_train.py).

Data-parallel (launched by torchrun, WORLD_SIZE > 1; distributed.py): every rank builds the same batches and trains
on its rows of each; gradients are summed over ranks so a step is the global batch's step; evaluation is sharded
and reduced exactly; rank 0 alone writes; each rank's RNG state is checkpointed, so resume is exact there too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from .checkpoint import LegacyCheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, to_dict
from .distributed import all_reduce_grads, all_reduce_sum, broadcast_params, gather_objects, is_writer, rank_seed, rows
from .distributed import setup as setup_distributed
from .errors import UserError
from .evaluate import evaluate, protocol_dict, sample_negatives
from .losses import SampledSoftmax, item_counts
from .objectives import make_objective, resolve_objective
from .utils import atomic_path, dict_diff, progress, rng_states, set_rng_states

log = logging.getLogger(__name__)
VALID_METRIC = "ndcg@10"
TEST_PER_USER = "test_per_user.npz"  # hr/ndcg/mrr@10 of every test user (split order), float32


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200  # upper bound; early stopping usually ends the run first
    batch_size: int = 128  # sequences (next_item, cloze) or prefixes (last_item) per step
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    warmup_steps: int = 0  # linear warm-up from 0
    schedule: Literal["constant", "cosine", "linear"] = "constant"  # decay after warm-up, over all epochs
    min_lr_ratio: float = 0.0  # the decay's floor, as a fraction of lr
    clip_norm: float = 0.0  # max global grad norm; 0 = no clipping
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    max_len: int = 200  # items of history the model reads (the paper: 200 on ML-1M)
    objective: Literal["auto", "next_item", "last_item", "cloze"] = "auto"  # auto: causal->next_item, bidir->cloze
    prefixes_per_user: int = 0  # last_item only: prefixes sampled per user per epoch; 0 = all (RecBole)
    windows: Literal["last", "all"] = "last"  # next_item / cloze: each user's last window, or all (objectives.py)
    mask_prob: float = 0.2  # cloze only
    mask_last_prob: float = 0.5  # cloze only: extra chance to mask the last item (the next-item situation)
    loss: Literal["ce", "sampled_softmax"] = "ce"  # full-softmax CE, or sampled softmax + logQ (losses.py)
    n_sampled: int = 1000  # sampled_softmax only: negatives K per batch (shared by its rows)
    sampler: Literal["uniform", "popularity", "in_batch"] = "uniform"  # sampled_softmax only: the proposal Q
    eval_batch_size: int = 512
    eval_mode: Literal["full", "sampled"] = "full"
    n_negatives: int = 100  # sampled mode only
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    mask_history: bool = False  # False = RecBole / the paper's protocol
    ties: Literal["expected", "pessimistic"] = "expected"
    bf16: bool = False  # bfloat16 autocast for the training forward/backward (evaluation stays fp32)
    # Speed levers (issue 13; docs/training_speed.md). Left out of the run identity while at these defaults.
    ce_chunk: int = 0  # output CE in blocks of this many rows, fused with its gradient (fused_ce.py); 0 = one matmul
    torch_compile: bool = False  # torch.compile the model for the training forward (evaluation stays eager)
    seed: int = 0
    device: str = "auto"  # auto = cuda if available else cpu
    num_threads: int = 0  # torch CPU threads; 0 = leave torch's default
    checkpoint_every: int = 0  # also save checkpoint_last.pt every this many batches; 0 = epoch ends only
    max_batches_per_epoch: int = 0  # cap (smoke / quick profiles); 0 = the whole epoch
    bucket_window: int = 8  # length bucketing: sort each window of this many batches by length (0/1 = off)
    progress: bool = True  # progress bar per epoch

    def __post_init__(self) -> None:
        for k in ("epochs", "batch_size", "max_len", "eval_batch_size", "n_negatives"):
            if getattr(self, k) < 1:
                raise ConfigError(f"TrainConfig.{k} must be >= 1, got {getattr(self, k)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"TrainConfig.lr must be a positive number, got {self.lr}")
        if self.ce_chunk < 0:
            raise ConfigError(f"TrainConfig.ce_chunk must be >= 0 (0 = off), got {self.ce_chunk}")
        if not 0 <= self.mask_prob <= 1 or not 0 <= self.mask_last_prob <= 1:
            raise ConfigError("TrainConfig.mask_prob / mask_last_prob must lie in [0, 1]")
        if self.n_sampled < 1:
            raise ConfigError(f"TrainConfig.n_sampled must be >= 1, got {self.n_sampled}")
        if self.loss == "ce" and (self.n_sampled, self.sampler) != (1000, "uniform"):
            raise ConfigError("TrainConfig.n_sampled / sampler apply to loss=sampled_softmax only; "
                              "set loss=sampled_softmax or drop them")


def evaluation_protocol(c: TrainConfig, which: str, dataset_protocol: dict | None) -> dict:
    """The protocol written beside the `which` ("valid" / "test") numbers of a run trained with `c`."""
    return protocol_dict(split=which, mode=c.eval_mode, mask_history=c.mask_history, max_len=c.max_len,
                         ties=c.ties, n_negatives=c.n_negatives if c.eval_mode == "sampled" else None,
                         negative_sampling=c.negative_sampling if c.eval_mode == "sampled" else None,
                         dataset_protocol=dataset_protocol)


def objective_name(c: TrainConfig, model) -> str:
    """The objective `c` trains `model` with ("none (counted)" for models that only count, such as Pop)."""
    return resolve_objective(c.objective, model) if model.trainable else "none (counted)"


def log_record_epoch(path: Path, n: int, line: str) -> int:
    """The epoch of line `n` of a run's log.jsonl; a line that does not parse (a damaged file) raises UserError
    naming the file and line: the record is never guessed, and the run is not resumed on top of it."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}, line {n}: not a log record ({type(e).__name__}: {e}): {line[:120]!r}. The run's "
                        "log is damaged; retrain the run with force=True (--force), or delete its folder") from None


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN/inf; the message names epoch and batch and the last good checkpoint."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def epoch_batches(cfg: TrainConfig, obj, epoch: int) -> list[np.ndarray]:
    """Epoch `epoch`'s batches of sample ids under `cfg` (seed, batch_size, bucket_window, max_batches_per_epoch):
    a function of (seed, epoch) only (see the module docstring, step 1)."""
    rng = np.random.default_rng([cfg.seed, epoch])
    samples = obj.epoch_samples(rng)
    bs, w = cfg.batch_size, cfg.bucket_window
    if w > 1:
        win = w * bs
        samples = np.concatenate([c[np.argsort(obj.lengths(c), kind="stable")]
                                  for c in (samples[i:i + win] for i in range(0, len(samples), win))])
    batches = [samples[i:i + bs] for i in range(0, len(samples), bs)]
    if w > 1:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if cfg.max_batches_per_epoch:
        batches = batches[: cfg.max_batches_per_epoch]
    return batches


def training_module(model, compile_it: bool):
    """`model`, or torch.compile(model) (dynamic shapes: bucketed batches vary in width) when `compile_it`. The
    wrapper shares the model's parameters and forwards attribute access (score, readout, mask_token) to it."""
    if not compile_it:
        return model
    return torch.compile(model, dynamic=True)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of lr at optimiser step s: linear warm-up, then constant / cosine / linear to min_lr_ratio."""

    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, total_steps - cfg.warmup_steps)
        p = min(1.0, (step - cfg.warmup_steps) / span)
        decay = 0.5 * (1 + math.cos(math.pi * p)) if cfg.schedule == "cosine" else 1 - p
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay

    return f


Hook = Callable[[str, dict], None]  # hook(event, info): events "batch_end" and "epoch_end"


def param_groups(model: torch.nn.Module, weight_decay: float):
    """The trainable parameters for the optimiser. Parameters flagged `_no_weight_decay` (ssm/: Mamba's A_log and D,
    as mamba-ssm flags them) are never decayed: with weight_decay > 0 they form a second group with
    weight_decay = 0. With weight_decay == 0 (the default) it is the one plain list it always was, so the
    optimiser, its steps and its checkpointed state are exactly those of earlier runs."""
    params = [p for p in model.parameters() if p.requires_grad]
    exempt = [p for p in params if getattr(p, "_no_weight_decay", False)]
    if weight_decay == 0 or not exempt:
        return params
    ids = {id(p) for p in exempt}
    return [{"params": [p for p in params if id(p) not in ids]}, {"params": exempt, "weight_decay": 0.0}]


class Trainer:
    """Train `model` on `split.train`, early-stop on `split` valid, score test once with the best weights.

    run_dir: where log.jsonl and the checkpoints go (None: keep everything in memory, no resume).
    identity: the run's identity (experiment.run_identity); a checkpoint of another identity is never resumed.
    hooks: callables hook(event, info) called after every batch ("batch_end": epoch, batch, loss) and epoch
    ("epoch_end": the log record); an exception raised in a hook stops the run like a kill would.
    """

    def __init__(self, model, split, cfg: TrainConfig, run_dir: str | Path | None = None,
                 hooks: list[Hook] | None = None, dataset_protocol: dict | None = None,
                 identity: dict | None = None, score_test: bool = True) -> None:
        self.model, self.split, self.cfg = model, split, cfg
        self.score_test = score_test  # False: a tuning trial, whose test split stays unread (tune.py)
        self.identity = identity  # experiment.run_identity; checkpoints carry it and resume compares it
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.hooks = list(hooks or [])
        self.dataset_protocol = dataset_protocol or {}
        self.device = resolve_device(cfg.device)
        self.dist = setup_distributed(self.device.type)  # None unless torchrun started W > 1 processes
        if self.dist is not None and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.model.to(self.device)
        if self.dist is not None:
            broadcast_params(self.model)
        self.objective_name = objective_name(cfg, model)
        self.best_state: dict[str, torch.Tensor] | None = None
        self._negatives: dict[str, np.ndarray] = {}
        # the module the training loss calls: torch.compile's wrapper (same parameters) or the model itself
        self.train_model = training_module(model, cfg.torch_compile)

    # --- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, which: str, per_user: dict | None = None) -> dict[str, float]:
        cfg = self.cfg
        hist, tgt = self.split.history_and_target(which)
        neg = None
        if cfg.eval_mode == "sampled":
            if which not in self._negatives:
                counts = np.bincount(np.concatenate(self.split.train), minlength=self.split.n_items + 1)
                self._negatives[which] = sample_negatives(hist, tgt, self.split.n_items, cfg.n_negatives,
                                                          cfg.negative_sampling, counts, seed=cfg.seed)
            neg = self._negatives[which]
        return evaluate(self.model, hist, tgt, max_len=cfg.max_len, batch_size=cfg.eval_batch_size,
                        mask_history=cfg.mask_history, mode=cfg.eval_mode, negatives=neg, ties=cfg.ties,
                        device=self.device, per_user=per_user, dist=self.dist)

    def protocol(self, which: str) -> dict:
        return evaluation_protocol(self.cfg, which, self.dataset_protocol)

    # --- checkpoints ----------------------------------------------------------------------------------------------
    def _path(self, name: str) -> Path | None:
        return self.run_dir / name if self.run_dir is not None else None

    def _save(self, name: str, payload: dict) -> None:
        path = self._path(name)
        if path is None or not is_writer(self.dist):
            return
        save_checkpoint(path, payload)

    def _save_last(self, state: dict) -> None:
        rng = rng_states()
        extra = {"rng_ranks": gather_objects(rng)} if self.dist is not None else {}  # every rank's dropout stream
        self._save("checkpoint_last.pt", {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "rng": rng, "state": dict(state), "train_config": to_dict(self.cfg), "identity": self.identity, **extra,
        })

    def _load_last(self) -> dict | None:
        path = self._path("checkpoint_last.pt")
        if path is None or not path.exists():
            return None
        try:
            ck = load_checkpoint(path, map_location=self.device)
        except LegacyCheckpointError:
            raise  # its fix is the upgrade command the message names, not a retrain
        except UserError as e:  # truncated, corrupt or unsafe: never used; the run can always start again
            raise type(e)(f"{e}; or rerun the same command with --force to train this run again from scratch") \
                from None
        if self.identity is not None and ck.get("identity") != self.identity:
            diff = dict_diff(ck.get("identity") or {}, self.identity)
            raise UserError(f"{path} belongs to a run of another identity (differs in {diff}); it is not resumed. "
                            "Delete the run folder or train with force=True (--force)")
        skip = ("progress", "device", "num_threads")
        defaults = to_dict(TrainConfig())  # a field added after the checkpoint was written counts as its default
        saved = {**{k: v for k, v in defaults.items() if k not in skip},
                 **{k: v for k, v in ck["train_config"].items() if k not in skip}}
        now = {k: v for k, v in to_dict(self.cfg).items() if k not in skip}
        if saved != now:
            diff = sorted(k for k in now if saved.get(k) != now[k])
            raise UserError(f"{path} was written with a different training config (differs in {diff}); "
                            "use another run directory or delete it")
        if self.dist is not None and len(ck.get("rng_ranks") or ()) != self.dist.world_size:
            raise UserError(f"{path} was not written by {self.dist.world_size} data-parallel ranks; it is not resumed")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        set_rng_states(ck["rng_ranks"][self.dist.rank] if self.dist is not None else ck["rng"])
        best = self._path("checkpoint_best.pt")
        if best is not None and best.exists():
            self.best_state = load_checkpoint(best, map_location="cpu")["model"]
        log.info("resumed from %s at epoch %d batch %d", path, ck["state"]["epoch"], ck["state"]["batch"])
        return ck["state"]

    def _log(self, record: dict, truncate_from_epoch: int | None = None) -> None:
        path = self._path("log.jsonl")
        if path is None or not is_writer(self.dist):
            return
        lines = path.read_text().splitlines() if path.exists() else []
        if truncate_from_epoch is not None:  # after a resume, drop records the resumed epochs will rewrite
            epochs = [(log_record_epoch(path, n, ln), ln) for n, ln in enumerate(lines, 1) if ln.strip()]
            lines = [ln for e, ln in epochs if e < truncate_from_epoch]
            missing = sorted(set(range(truncate_from_epoch)) - {e for e, _ in epochs})
            if missing:
                raise UserError(f"{path} lacks the records of epoch(s) {missing} that the checkpoint has trained: "
                                "the run's log is damaged; retrain the run with force=True (--force), or delete "
                                "its folder")
        if record:
            lines.append(json.dumps(record, sort_keys=True))
        with atomic_path(path) as tmp:
            tmp.write_text("".join(ln + "\n" for ln in lines))

    # --- the loop -------------------------------------------------------------------------------------------------
    def make_objective(self):
        """The training objective this config asks for (objectives.make_objective)."""
        cfg = self.cfg
        obj = make_objective(self.objective_name, self.split.train, cfg.max_len,
                             prefixes_per_user=cfg.prefixes_per_user, mask_prob=cfg.mask_prob,
                             mask_last_prob=cfg.mask_last_prob, windows=cfg.windows, ce_chunk=cfg.ce_chunk)
        if cfg.loss == "sampled_softmax":  # losses.py; the default "ce" leaves the objective's full softmax
            counts = item_counts(self.split.train, self.split.n_items)
            obj.criterion = SampledSoftmax(cfg.sampler, cfg.n_sampled, counts)
        return obj

    def epoch_batches(self, obj, epoch: int) -> list[np.ndarray]:
        """This epoch's batches of sample ids: a function of (seed, epoch) only (see the module docstring)."""
        return epoch_batches(self.cfg, obj, epoch)

    def fit(self) -> dict[str, Any]:
        """Train to early stopping (or `epochs`), then score test once with the best weights. Returns results.

        `num_threads` > 0 sets torch's CPU threads for the duration of the call (restored afterwards).
        """
        threads = torch.get_num_threads()
        if self.cfg.num_threads > 0:
            torch.set_num_threads(self.cfg.num_threads)
        try:
            return self._fit()
        finally:
            torch.set_num_threads(threads)

    def _fit(self) -> dict[str, Any]:
        cfg, model = self.cfg, self.model
        if not model.trainable:
            model.fit(self.split.train)
            return self._finish({"epoch": 0, "best_epoch": 0, "best_valid": self.evaluate("valid"), "stopped": False,
                                 "train_seconds": []})
        obj = self.make_objective()
        n_batches = len(self.epoch_batches(obj, 0))
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.opt = opt_cls(param_groups(model, cfg.weight_decay), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg, cfg.epochs * n_batches))
        if self.dist is not None:
            torch.manual_seed(rank_seed(cfg.seed, self.dist))
        state = self._load_last()
        if state is None:
            state = {"epoch": 0, "batch": 0, "best_score": -1.0, "best_epoch": -1, "best_valid": None, "bad": 0,
                     "stopped": False, "loss_sum": 0.0, "loss_n": 0, "seconds": 0.0, "train_seconds": []}
            self._log({}, truncate_from_epoch=0)
        else:
            self._log({}, truncate_from_epoch=state["epoch"])
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        while state["epoch"] < cfg.epochs and not state["stopped"]:
            epoch = state["epoch"]
            batches = self.epoch_batches(obj, epoch)
            model.train()
            bar = progress(total=n_batches, initial=state["batch"], desc=f"epoch {epoch}", leave=False,
                           disable=not cfg.progress or not is_writer(self.dist))
            t0 = time.perf_counter()
            for b in range(state["batch"], n_batches):
                batch = obj.batch(batches[b]).to(self.device)
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 10_007 + b)
                with autocast:
                    loss, shown = self._loss(obj, batch, gen)  # to differentiate; the global batch's mean loss
                if not torch.isfinite(shown):
                    last = self._path("checkpoint_last.pt")
                    raise NonFiniteLossError(
                        f"loss is {shown.item()} at epoch {epoch}, batch {b} (lr {self.sched.get_last_lr()[0]:.3g}); "
                        f"training stopped. Last good checkpoint: {last if last and last.exists() else 'none'}. "
                        "Try a lower lr, clip_norm > 0, or bf16=false.")
                self.opt.zero_grad(set_to_none=True)
                if loss.requires_grad:  # a rank whose share of a short last batch is empty only adds zeros
                    loss.backward()
                if self.dist is not None:
                    all_reduce_grads(model)
                if cfg.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                self.opt.step()
                self.sched.step()
                state["loss_sum"] += shown.item() * batch.size
                state["loss_n"] += batch.size
                state["batch"] = b + 1
                bar.update(1)
                if cfg.checkpoint_every and (b + 1) % cfg.checkpoint_every == 0 and b + 1 < n_batches:
                    state["seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self._save_last(state)
                for h in self.hooks:
                    h("batch_end", {"epoch": epoch, "batch": b, "loss": shown.item()})
            bar.close()
            train_s = state["seconds"] + time.perf_counter() - t0
            t1 = time.perf_counter()
            valid = self.evaluate("valid")
            eval_s = time.perf_counter() - t1
            score = valid[VALID_METRIC]
            if score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch, best_valid=valid, bad=0)
                self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                self._save("checkpoint_best.pt", {"model": self.best_state, "epoch": epoch, "valid": valid})
            else:
                state["bad"] += 1
            record = {"epoch": epoch, "loss": state["loss_sum"] / max(1, state["loss_n"]),
                      "lr": self.sched.get_last_lr()[0], "train_seconds": round(train_s, 3),
                      "eval_seconds": round(eval_s, 3), "valid": valid, "best_epoch": state["best_epoch"]}
            self._log(record)
            (log.info if is_writer(self.dist) else log.debug)("epoch %d loss %.4f valid %s %.4f (best %.4f @ %d) %.1fs", epoch, record["loss"],
                     VALID_METRIC, score, state["best_score"], state["best_epoch"], train_s)
            state["train_seconds"] = state["train_seconds"] + [train_s]
            state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0, seconds=0.0,
                         stopped=state["bad"] >= cfg.patience)
            self._save_last(state)
            for h in self.hooks:
                h("epoch_end", record)
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self._finish(state)

    def _loss(self, obj, batch, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss this process differentiates, the global batch's mean loss): the same tensor in one process;
        under W ranks this rank's share of the terms over the global count N, and the all-reduced mean."""
        if self.dist is None:
            loss = obj.loss(self.train_model, batch, gen)
            return loss, loss
        part, n = obj.shard_loss(self.train_model, batch, rows(batch.size, self.dist), gen)
        part = part if part is not None else torch.zeros((), device=self.device)
        return part / n, all_reduce_sum(part.float()) / n

    def _finish(self, state: dict) -> dict[str, Any]:
        per_user: dict[str, np.ndarray] = {}
        test = self.evaluate("test", per_user) if self.score_test else None  # once, with the best weights
        path = self._path(TEST_PER_USER)
        if test is not None and path is not None and is_writer(self.dist):  # for paired tests between models (report/stats.py)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: v.astype(np.float32) for k, v in per_user.items()
                                          if k.endswith("@10")})
        secs = state["train_seconds"]
        return {
            "valid": state["best_valid"], "test": test, "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"], "stopped_early": bool(state["stopped"]),
            "seconds_per_epoch": float(np.mean(secs)) if secs else 0.0, "objective": self.objective_name,
            "protocol": {"valid": self.protocol("valid"), "test": self.protocol("test")},
        }
