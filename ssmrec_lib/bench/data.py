"""`python -m ssmrec_lib bench data`: how long preparing a dataset takes, cold and from the cache, and how much
memory it needs.

For each dataset, in a fresh child process with an empty cache folder:
    1. cold: `load_dataset` locates, parses, dedups, k-cores, re-indexes and writes the cache
    2. cached: `load_dataset` again, which reads the cache folder written in 1.
The figures are wall-clock seconds of each call and the child's peak resident memory (`ru_maxrss`, the whole
process: Python, numpy and torch imports included). A fresh process per dataset keeps one dataset's peak out of
the next one's figure and makes "cold" include no warm file-system state of this process.

`--beauty-sized` adds a generated file the size of Amazon '23 Beauty 5-core rating_only (6,624,441 rows,
729,576 users, 207,649 items; ~384 MB), written to a temporary folder first (not timed).
These are printed figures, never test assertions: wall-clock depends on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BEAUTY_FOLDER, BEAUTY_FILE = "amazon-2023-beauty-and-personal-care", "Beauty_and_Personal_Care.csv"

_CHILD = """
import json, resource, sys
from ssmrec_lib.bench.timer import time_once
from ssmrec_lib.data import load_dataset
name, data_dir, options = sys.argv[1], sys.argv[2] or None, json.loads(sys.argv[3])
out, got = {}, {}
for run in ("cold", "cached"):
    out[run + "_s"] = time_once(lambda: got.update(d=load_dataset(name, data_dir, **options)))
    d = got["d"]
    out[run + "_counts"] = [d.n_users, d.n_items, d.n_interactions]
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


def write_beauty_sized_csv(path: str | Path, n_rows: int = 6_624_441, n_users: int = 729_576,
                           n_items: int = 207_649, seed: int = 0) -> Path:
    """user_id,parent_asin,rating,timestamp rows with Amazon-like id shapes; every user has >= 5 rows.

    Items are drawn from a Zipf-like law (p ~ 1 / rank^0.8), so a 5-core filter drops some rare items.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    alpha = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype="S1")
    uid = np.char.add(b"A", alpha[rng.integers(0, 36, (n_users, 27))].view("S27").ravel())
    iid = np.char.add(b"B0", alpha[rng.integers(0, 36, (n_items, 8))].view("S8").ravel())
    lens = np.full(n_users, 5)
    lens += np.bincount(rng.integers(0, n_users, n_rows - lens.sum()), minlength=n_users)
    u = np.repeat(np.arange(n_users), lens)
    p = 1 / np.arange(1, n_items + 1) ** 0.8
    i = rng.choice(n_items, size=n_rows, p=p / p.sum())
    table = pa.table({
        "user_id": pa.array(uid[u].astype(str)), "parent_asin": pa.array(iid[i].astype(str)),
        "rating": rng.integers(1, 6, n_rows).astype(np.float64),
        "timestamp": 1_400_000_000_000 + rng.integers(0, 300_000_000_000, n_rows)})
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="none"))
    return Path(path)


def measure(name: str, data_dir: str | Path | None = None, options: dict[str, Any] | None = None,
            timeout: float = 1800) -> dict[str, Any]:
    """Cold and cached `load_dataset(name, data_dir, **options)` in a child process with an empty cache folder.

    Returns {"cold_s", "cached_s", "cold_counts", "cached_counts" ([users, items, interactions]),
    "peak_rss_gb"}. `options` must be JSON-serialisable.
    """
    with tempfile.TemporaryDirectory(prefix="ssmrec-bench-data-") as cache:
        env = {**os.environ, "SSMREC_CACHE_DIR": cache}
        res = subprocess.run([sys.executable, "-c", _CHILD, name, str(data_dir or ""), json.dumps(options or {})],
                             capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"bench data: loading {name!r} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_data(datasets: list[str], data_dir: str | Path | None = None, beauty_sized: bool = False,
               log=print) -> pd.DataFrame:
    """One row per dataset: users / items / interactions after the filter, cold and cached seconds, peak RSS."""
    jobs = [(name, name, data_dir, {}) for name in datasets]
    tmp = tempfile.TemporaryDirectory(prefix="ssmrec-beauty-sized-") if beauty_sized else None
    try:
        if tmp is not None:
            folder = Path(tmp.name) / BEAUTY_FOLDER
            folder.mkdir()
            log("writing the Beauty-sized file (not timed) ...")
            write_beauty_sized_csv(folder / BEAUTY_FILE)
            jobs.append(("amazon2023-beauty (generated, 6.6M rows)", "amazon2023-beauty", tmp.name,
                         {"kcore": 5, "meta": False}))
        rows = []
        for label, name, where, options in jobs:
            r = measure(name, where, options)
            users, items, inter = r["cold_counts"]
            rows.append({"dataset": label, "users": users, "items": items, "interactions": inter,
                         "cold_s": r["cold_s"], "cached_s": r["cached_s"], "peak_rss_gb": r["peak_rss_gb"],
                         "cache_matches": r["cold_counts"] == r["cached_counts"]})
            log(f"{label}: {inter:,} interactions; cold {r['cold_s']:.2f} s, cached {r['cached_s']:.2f} s, "
                f"peak RSS {r['peak_rss_gb']:.2f} GB")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return pd.DataFrame(rows)
