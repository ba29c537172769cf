"""The one timer every benchmark uses: `warmup` untimed calls, then `repeats` timed calls, each timed call
synchronised before and after (CUDA work is asynchronous), wall-clock from `time.perf_counter`.

    t = time_calls(fn, repeats=10, warmup=2, sync=device_sync(device))
    t.median_ms, t.min_ms, t.p95_ms, t.mean_ms          the figures the benchmarks report

`args`: one argument tuple per call (warm-up calls first), for benchmarks that feed each call a fresh input.
`during`: a context manager entered around the timed calls only (a memory sampler such as memory.PeakRSS).
`time_once(fn)`: the seconds of one synchronised call (the budget probes that cap the repeats).
No torch import at module level: `device_sync` imports it when asked for a CUDA device.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable

now = time.perf_counter  # the clock (seconds); bench/training.py stamps the trainer's batches with it


def no_sync() -> None:
    return None


def device_sync(device) -> Callable[[], None]:
    """A function that waits for `device`'s queued work (CUDA), or does nothing (CPU)."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        return lambda: torch.cuda.synchronize(device)
    return no_sync


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call, in order."""

    seconds: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.seconds)

    @property
    def median_ms(self) -> float:
        return 1000.0 * statistics.median(self.seconds)

    @property
    def min_ms(self) -> float:  # the least disturbed by other load on a shared machine
        return 1000.0 * min(self.seconds)

    @property
    def mean_ms(self) -> float:
        return 1000.0 * statistics.fmean(self.seconds)

    @property
    def p95_ms(self) -> float:  # linear interpolation between order statistics (numpy's default percentile)
        import numpy as np

        return float(np.percentile(np.asarray(self.seconds) * 1000.0, 95))


def time_calls(fn: Callable[..., Any], repeats: int, warmup: int = 0, sync: Callable[[], None] = no_sync,
               args: Iterable[tuple] | None = None, during: ContextManager | None = None) -> Timing:
    """`warmup` untimed calls of fn, then `repeats` timed ones (sync before and after each timed call)."""
    calls = iter(args) if args is not None else None

    def call() -> None:
        fn(*next(calls)) if calls is not None else fn()

    for _ in range(warmup):
        call()
    times = []
    with during if during is not None else nullcontext():
        for _ in range(repeats):
            sync()
            t0 = now()
            call()
            sync()
            times.append(now() - t0)
    return Timing(tuple(times))


def time_once(fn: Callable[[], Any], sync: Callable[[], None] = no_sync) -> float:
    """Seconds of one synchronised call of fn."""
    return time_calls(fn, 1, sync=sync).seconds[0]
