"""`python -m ssmrec_lib bench streaming`: the cost of one new event with a per-user state against re-encoding
the whole history, at history lengths 200, 1,000 and 4,000 (SASRec: with a key/value cache).

Each model is built at the paper's size (d = 64, ML-1M's 3,416 items), untrained, in eval mode. For each length
L: the state is built once from an L-item history (`streaming.prefill`), then `repeats` new events are timed one by
one (`update` + scoring all items), and re-encoding an (L+1)-item history is timed `repeats` times
(`readout` + scoring). Medians are reported; a re-encode whose single call exceeds `budget_s` stops the longer
lengths for that model ("over budget").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from . import streaming
from .profiling import ML1M_ITEMS, save

STREAMING_MODELS = ["mamba4rec", "mamba2rec", "lrurec", "gru4rec", "sasrec"]


def _median_ms(fn, repeats: int, sync=lambda: None) -> float:
    ts = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))


@torch.no_grad()
def bench_streaming(models: list[str], lengths: list[int], n_items: int = ML1M_ITEMS, batch: int = 1,
                    repeats: int = 20, budget_s: float = 10.0, seed: int = 0, log=print,
                    device: str = "cpu") -> pd.DataFrame:
    from .models.registry import build_model

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    rows = []
    max_len = max(lengths) + 4 * repeats + 4
    from .ssm import cpu_ext, fused_step

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
            t0 = time.perf_counter()
            _, state = streaming.prefill(model, hist[:, :L])
            prefill_s = time.perf_counter() - t0
            nxt = iter(range(L, hist.shape[1]))
            upd = {"state": state}
            fused = streaming.kind(model) == "recurrent" and streaming.fused_stepper(model) is not None
            paths = [False, True] if fused else [None]

            def one_event(path):
                h, upd["state"] = streaming.update(model, upd["state"], hist[:, next(nxt)], fused=path)
                model.score(h)

            times = {}
            for path in paths:
                one_event(path)  # warm-up
                times[path] = _median_ms(lambda: one_event(path), repeats, sync)
            update_ms = times[paths[-1]]
            row = {"model": name, "length": L, "batch": batch, "device": dev.type, "update_ms": update_ms,
                   "update_python_ms": times[paths[0]], "step": "fused C++" if fused else "python",
                   "state_kb": streaming.state_bytes(upd["state"]) / 1024 / batch, "prefill_s": prefill_s}
            if over:
                rows.append({**row, "reencode_ms": np.nan, "status": "re-encode over budget"})
                continue
            full = hist[:, : L + 1]
            model.score(streaming.reencode(model, full))  # warm-up (first use may build a C++ kernel)
            sync()
            t0 = time.perf_counter()
            model.score(streaming.reencode(model, full))
            sync()
            one = time.perf_counter() - t0
            reencode_ms = _median_ms(lambda: model.score(streaming.reencode(model, full)),
                                     max(1, min(repeats, int(budget_s * 2 / max(one, 1e-9)))), sync)
            over = one > budget_s
            rows.append({**row, "reencode_ms": reencode_ms, "status": "ok"})
            log(f"{name:10s} L {L:5d}: update {update_ms:8.3f} ms ({row['step']}; python "
                f"{row['update_python_ms']:.3f}), re-encode {reencode_ms:9.2f} ms (x{reencode_ms / update_ms:6.1f}), "
                f"state {row['state_kb']:8.1f} KiB/user")
    df = pd.DataFrame(rows)
    df["reencode_over_update"] = df["reencode_ms"] / df["update_ms"]
    df["reencode_over_python_update"] = df["reencode_ms"] / df["update_python_ms"]
    return df


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=STREAMING_MODELS)
    parser.add_argument("--lengths", default="200,1000,4000", help="comma-separated history lengths")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="outputs/bench/streaming.csv")


def run(args: argparse.Namespace) -> int:
    df = bench_streaming(args.models, [int(x) for x in args.lengths.split(",") if x], batch=args.batch,
                         repeats=args.repeats, device=args.device)
    cols = ["model", "length", "step", "update_ms", "update_python_ms", "reencode_ms", "reencode_over_update",
            "reencode_over_python_update", "state_kb", "prefill_s", "status"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {save(df, args.out)}")
    return 0
