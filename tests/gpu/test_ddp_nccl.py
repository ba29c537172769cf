"""Data-parallel training on CUDA (issue 15, section 1): 2 NCCL processes started by torchrun, each on its own GPU,
with bf16 autocast and the fused kernels (kernel="auto" resolves to mamba-ssm's where installed), against one
process on one GPU with the same global batch and seed.

Needs 2 CUDA devices (NCCL refuses two ranks on one GPU): skipped on a machine with fewer, and without CUDA
(tests/conftest.py). The CPU twin of this test, exact to float rounding, is tests/unit/test_distributed.py.

Tolerance: bf16 autocast and another summation order (each rank's rows, then NCCL's all-reduce) make the runs
agree to bf16 rounding, not bit for bit: 2e-2 relative on the per-step losses and 0.02 absolute on validation
NDCG@10 after the 2 epochs here; evaluation of one set of weights sharded over ranks equals one process exactly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.experiment import run_experiment

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "unit" / "ddp_worker.py"
DATA = dict(n_users=256, n_items=80, min_len=5, max_len=30, seed=0)
OVERRIDES = {"epochs": "2", "batch_size": "32", "dropout": "0", "device": "cuda", "bf16": "true",
             "checkpoint_every": "4", "eval_batch_size": "32"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                    reason="needs 2 CUDA devices: NCCL runs one rank per GPU")
@pytest.mark.parametrize("model", ["sasrec", "mamba4rec"])
def test_two_nccl_ranks_train_like_one_gpu(tmp_path, model):
    spec = {"out": str(tmp_path / "ddp"), "model": model, "data": DATA, "overrides": OVERRIDES, "die": None,
            "fail": None}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SSMREC_PROGRESS": "0", "SSMREC_DIST_TIMEOUT_S": "120"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), str(WORKER), json.dumps(spec)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-8000:]
    ddp_losses = json.loads((tmp_path / "ddp" / "losses_rank0.json").read_text())["losses"]

    single: list[float] = []
    r = run_experiment(model, "synthetic", "smoke", 0, OVERRIDES, out=tmp_path / "single",
                       data=make_synthetic(**DATA),
                       hooks=[lambda ev, info: single.append(info["loss"]) if ev == "batch_end" else None])
    assert len(ddp_losses) == len(single) > 0
    assert torch.allclose(torch.tensor(ddp_losses), torch.tensor(single), rtol=2e-2)
    (ddp_run,) = [p for p in (tmp_path / "ddp").iterdir() if p.is_dir()]
    ddp_metrics = json.loads((ddp_run / "metrics.json").read_text())
    assert json.loads((ddp_run / "config.json").read_text())["identity"]["distributed"]["backend"] == "nccl"
    assert abs(ddp_metrics["valid"]["ndcg@10"] - r["valid"]["ndcg@10"]) < 0.02
