"""`python -m ssmrec_lib bench streaming`: the cost of one new event with a per-user state against re-encoding
the whole history, at history lengths 200, 1,000 and 4,000 (SASRec: with a key/value cache).

Each model is built at the paper's size (d = 64, ML-1M's 3,416 items), untrained, in eval mode. For each length
L: the state is built once from an L-item history (`streaming.prefill`), then `repeats` new events are timed one by
one (`update` + scoring all items), and re-encoding an (L+1)-item history is timed `repeats` times
(`readout` + scoring). Medians are reported; a re-encode whose single call exceeds `budget_s` stops the longer
lengths for that model ("over budget").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import streaming
from . import ML1M_ITEMS
from .timer import device_sync, time_calls, time_once

STREAMING_MODELS = ["mamba4rec", "mamba2rec", "lrurec", "gru4rec", "sasrec"]


@torch.no_grad()
def bench_streaming(models: list[str], lengths: list[int], n_items: int = ML1M_ITEMS, batch: int = 1,
                    repeats: int = 20, budget_s: float = 10.0, seed: int = 0, log=print,
                    device: str = "cpu") -> pd.DataFrame:
    from ..models.registry import build_model
    from ..ssm import cpu_ext, fused_step

    dev = torch.device(device)
    sync = device_sync(dev)
    rows = []
    max_len = max(lengths) + 4 * repeats + 4

    if dev.type == "cpu":  # build (or load) the C++ kernels before anything is timed
        cpu_ext.available()
        fused_step.available()
    for name in models:
        torch.manual_seed(seed)
        overrides = {"positions": "left"} if name == "sasrec" else None
        model = build_model(name, n_items=n_items, max_len=max_len, overrides=overrides).eval().to(dev)
        over = False
        for L in sorted(lengths):
            g = torch.Generator().manual_seed(seed)
            hist = torch.randint(1, n_items + 1, (batch, L + 4 * repeats + 3), generator=g).to(dev)
            out = {}
            prefill_s = time_once(lambda: out.update(state=streaming.prefill(model, hist[:, :L])[1]))
            state = out["state"]
            nxt = iter(range(L, hist.shape[1]))
            upd = {"state": state}
            fused = streaming.kind(model) == "recurrent" and streaming.fused_stepper(model) is not None
            paths = [False, True] if fused else [None]

            def one_event(path):
                h, upd["state"] = streaming.update(model, upd["state"], hist[:, next(nxt)], fused=path)
                model.score(h)

            times = {}
            for path in paths:
                times[path] = time_calls(one_event, repeats, warmup=1, sync=sync, args=[(path,)] * (repeats + 1)
                                         ).median_ms
            update_ms = times[paths[-1]]
            row = {"model": name, "length": L, "batch": batch, "device": dev.type, "update_ms": update_ms,
                   "update_python_ms": times[paths[0]], "step": "fused C++" if fused else "python",
                   "state_kb": streaming.state_bytes(upd["state"]) / 1024 / batch, "prefill_s": prefill_s}
            if over:
                rows.append({**row, "reencode_ms": np.nan, "status": "re-encode over budget"})
                continue
            full = hist[:, : L + 1]

            def reencode() -> None:
                model.score(streaming.reencode(model, full))

            reencode()  # warm-up (first use may build a C++ kernel)
            one = time_once(reencode, sync)
            reencode_ms = time_calls(reencode, max(1, min(repeats, int(budget_s * 2 / max(one, 1e-9)))),
                                     sync=sync).median_ms
            over = one > budget_s
            rows.append({**row, "reencode_ms": reencode_ms, "status": "ok"})
            log(f"{name:10s} L {L:5d}: update {update_ms:8.3f} ms ({row['step']}; python "
                f"{row['update_python_ms']:.3f}), re-encode {reencode_ms:9.2f} ms (x{reencode_ms / update_ms:6.1f}), "
                f"state {row['state_kb']:8.1f} KiB/user")
    df = pd.DataFrame(rows)
    df["reencode_over_update"] = df["reencode_ms"] / df["update_ms"]
    df["reencode_over_python_update"] = df["reencode_ms"] / df["update_python_ms"]
    return df
