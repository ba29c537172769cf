"""One data-parallel training run for tests/unit/test_distributed.py, started there by torchrun (not a test itself).

    torchrun --nproc-per-node 2 tests/unit/ddp_worker.py SPEC_JSON

SPEC_JSON: {"out": run folder parent, "model": name, "data": make_synthetic kwargs, "overrides": --set overrides,
            "die": [rank, epoch, batch] (that rank exits at once after that batch, like a kill) or null,
            "fail": [rank, epoch, batch] (that rank raises RuntimeError there) or null}
Every rank writes <out>/losses_rank<r>.json: the global batch loss after every step, as the batch_end hook sees it.
"""

import json
import os
import sys

import torch

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.distributed import finish
from ssmrec_lib.experiment import run_experiment


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    losses: list[float] = []

    def hook(event: str, info: dict) -> None:
        if event != "batch_end":
            return
        losses.append(info["loss"])
        at = [rank, info["epoch"], info["batch"]]
        if spec.get("die") == at:
            os._exit(9)
        if spec.get("fail") == at:
            raise RuntimeError(f"injected failure on rank {rank} at epoch {info['epoch']} batch {info['batch']}")

    r = run_experiment(spec["model"], "synthetic", "smoke", 0, spec["overrides"], out=spec["out"],
                       data=make_synthetic(**spec["data"]), hooks=[hook])
    with open(os.path.join(spec["out"], f"losses_rank{rank}.json"), "w") as f:
        json.dump({"losses": losses, "run_id": r["run_id"]}, f)
    finish()  # leave the process group together, as `train` does


if __name__ == "__main__":
    main()
