"""Speed and memory: ml-1m from the sequence file (default suite) and a generated file the size of Amazon '23
Beauty 5-core rating_only (6.6M rows, ~384 MB; `@pytest.mark.slow`)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from ssmrec_lib.data import load_dataset


def test_ml1m_prepares_in_seconds(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path))
    t0 = time.perf_counter()
    d = load_dataset("ml-1m", shared_data)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    d2 = load_dataset("ml-1m", shared_data)
    cached = time.perf_counter() - t0
    assert d.n_interactions == d2.n_interactions == 999_611
    assert cold < 10 and cached < 3, (cold, cached)


def write_beauty_sized_csv(path, n_rows=6_624_441, n_users=729_576, n_items=207_649, seed=0):
    """user_id,parent_asin,rating,timestamp rows with Amazon-like id shapes; every user has >= 5 rows."""
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


MEASURE = """
import json, resource, sys, time
from ssmrec_lib.data import load_dataset
out = {}
for run in ("cold", "cached"):
    t0 = time.perf_counter()
    d = load_dataset("amazon2023-beauty", sys.argv[1], kcore=5, meta=False)
    out[run] = time.perf_counter() - t0
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
out["counts"] = [d.n_users, d.n_items, d.n_interactions]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_amazon2023_beauty_sized_file(tmp_path):
    folder = tmp_path / "amazon-2023-beauty-and-personal-care"
    folder.mkdir()
    write_beauty_sized_csv(folder / "Beauty_and_Personal_Care.csv")
    res = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)], capture_output=True, text=True,
                         env={"SSMREC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(out)  # the figures, for the log
    assert out["counts"][2] > 6_000_000
    assert out["cold"] < 120 and out["cached"] < 15 and out["peak_rss_gb"] < 4, out
