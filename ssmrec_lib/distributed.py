"""Data-parallel training across processes launched by torchrun: who this process is, its shard, exact reductions.

    torchrun --nproc-per-node N -m ssmrec_lib train --model M --dataset D ...     (make train-ddp NPROC=N ...)

torchrun gives every process (rank r of W) WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Without
WORLD_SIZE (a plain `python -m ssmrec_lib`), or with WORLD_SIZE=1, nothing here is active and torch.distributed
is never imported: single-process runs are exactly what they were. Backend: NCCL on CUDA, gloo on CPU.

One optimiser step under W ranks (the Trainer):
    1. every rank builds the same epoch batches (Trainer.epoch_batches: a function of (seed, epoch)) and the same
       global Batch of `batch_size` samples, and takes its rows [r B / W, (r + 1) B / W) (`rows`): disjoint,
       contiguous, covering the batch; the global batch is the configured batch.
    2. its loss is the SUM of its cross-entropy terms over the GLOBAL number of terms N (the objectives'
       `shard_loss`), so the gradients summed over ranks (`all_reduce_grads`) are the gradient of the global
       batch's mean loss, whatever the split of the N terms (padding, cloze masks) between ranks.
    3. the reported loss is that sum all-reduced, so every rank sees the same number (and stops on a NaN together).
Gradients are all-reduced by hand (one flat buffer per step), not through the DistributedDataParallel wrapper: the
objectives read a model through forward, readout and score, and DDP only sees forward.
Evaluation (evaluate.py): the length-sorted user batches are scored round-robin (batch i on rank i mod W); the
per-user metrics are gathered (`gather_objects`) and summed in batch order, so every rank obtains exactly the
single-process metrics. Only rank 0 writes the run folder, logs and checkpoints (`is_writer`); resume reads the
same folder on every rank, so it must be shared storage when ranks run on several machines.
A rank that raises ends its process; torchrun then stops the others (a peer blocked in a collective also fails
once its connection closes, and at the latest after SSMREC_DIST_TIMEOUT_S seconds, default 600).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

TIMEOUT_ENV = "SSMREC_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class Dist:
    world_size: int
    rank: int
    local_rank: int
    backend: str  # "gloo" (CPU) or "nccl" (CUDA)

    def identity(self) -> dict[str, Any]:
        """What enters the run identity (experiment.run_identity) when world_size > 1."""
        return {"world_size": self.world_size, "backend": self.backend}


def from_env(device_type: str) -> Dist | None:
    """The distributed setting torchrun's environment asks for on `device_type`, or None (not launched by torchrun,
    or one process). Reads the environment only; starts nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Dist(world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")),
                "nccl" if device_type == "cuda" else "gloo")


def setup(device_type: str) -> Dist | None:
    """Join the process group torchrun's environment describes (once per process; later calls return it)."""
    d = from_env(device_type)
    if d is None:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        if d.backend == "nccl":
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group(d.backend, timeout=timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "600"))))
        atexit.register(_shutdown)
    return d


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """Leave the process group together, at the end of a run that succeeded on every rank: a barrier, then destroy.
    Without the barrier a rank that is done first tears down its gloo pairs while another still closes its own, and
    that rank dies with SIGABRT ("terminate called without an active exception") after the work is done. (A failing
    rank never gets here: atexit only destroys, so it cannot wait on ranks that will not come.)"""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_writer(d: Dist | None = None) -> bool:
    """True on the process that writes files and logs: rank 0, or the only process. With `d` None the environment
    decides (RANK, as torchrun sets it)."""
    if d is not None:
        return d.rank == 0
    return int(os.environ.get("RANK", "0")) == 0


def rows(n: int, d: Dist) -> slice:
    """This rank's rows of a global batch of n samples: contiguous, disjoint over ranks, sizes differ by <= 1."""
    return slice(d.rank * n // d.world_size, (d.rank + 1) * n // d.world_size)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` (a tensor on this rank's device) over ranks (a new tensor; `x` is left as it is)."""
    import torch.distributed as dist

    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def all_reduce_grads(model: torch.nn.Module) -> None:
    """Sum every trainable parameter's gradient over ranks, in place (a missing gradient counts as zero).

    With each rank's loss already divided by the global number of loss terms (module docstring), the sum is the
    global batch's gradient; one flat buffer, one all-reduce per step."""
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    off = 0
    for p in params:
        n = p.numel()
        p.grad = flat[off: off + n].view_as(p).clone()
        off += n


def broadcast_params(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's parameters and buffers (as DistributedDataParallel does)."""
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def gather_objects(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects; CPU tensors inside travel as they are)."""
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def rank_seed(seed: int, d: Dist) -> int:
    """Each rank's torch seed for dropout (distinct per rank, a function of (seed, rank) only)."""
    return int(seed) * 1_000_003 + 7_919 * (d.rank + 1)
