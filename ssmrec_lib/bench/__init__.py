"""Benchmarks: printed figures, never timed tests. One timer for all of them (timer.py: warm-up, repeats,
median), one memory sampler (memory.py), one way to save a result table (`save`).

    kernels.py    SSM ops: reference vs fast paths, forward and forward+backward   (`bench kernels`)
    latency.py    models: latency, throughput, memory vs sequence length             (`bench latency`)
    llm.py        the LLM recommenders' whole pipeline per user at batch 1 (rows of `bench latency`)
    streaming.py  one new event with a per-user state vs re-encoding the history    (`bench streaming`)
    training.py   training cost per model: seconds per epoch, validation, memory     (`bench training`)
    ddp.py        data-parallel throughput with 1, 2, ... gloo processes (torchrun)  (`bench ddp`)
    data.py       dataset preparation: seconds cold and from the cache, peak memory  (`bench data`)
    reliability.py  issue 16's trials, counted in one report (`reliability`): kill.py (kill -9 during training),
                  faults.py (disk full, damaged files), workbook_faults.py (an interrupted workbook),
                  bad_inputs.py (the table of malformed inputs); trial.py holds one trial's outcome
    scale.py      Amazon '23 Beauty's shape: epoch time and memory, full vs sampled  (`bench scale`)
The command-line side of each lives in ssmrec_lib/cli/bench.py (reliability: cli/reliability.py).
"""

from __future__ import annotations

from pathlib import Path

ML1M_ITEMS = 3416  # the paper's size for untrained benchmark models


def save(df, path: str | Path) -> Path:
    """Write the benchmark CSV and, beside it, a JSON of where it was measured (git SHA, torch, threads, device)."""
    import pandas as pd

    from ..utils import atomic_write_text, environment_info

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, df.to_csv(index=False))
    atomic_write_text(path.with_suffix(".json"), pd.Series(environment_info()).to_json(indent=2))
    return path
